//! The `flowgate` binary starts with every module and its defaults, and
//! serves its API document: every module's routes together (schema names
//! that clash between modules stop the process at start).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Controller(Child);

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(port: u16, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

#[test]
fn the_controller_starts_with_every_module_and_documents_their_routes() {
    let data = tempfile::tempdir().unwrap();
    let rest = free_port();
    let mut controller = Controller(
        Command::new(env!("CARGO_BIN_EXE_flowgate"))
            .arg(format!("--rest-listen=127.0.0.1:{rest}"))
            .arg(format!("--openflow-listen=127.0.0.1:{}", free_port()))
            .arg(format!("--ovsdb-listen=127.0.0.1:{}", free_port()))
            .arg("--data-dir")
            .arg(data.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let doc = loop {
        if let Some(status) = controller.0.try_wait().unwrap() {
            panic!("the controller exited at start: {status}");
        }
        if let Ok(answer) = get(rest, "/api/v1/openapi.json") {
            break answer;
        }
        assert!(Instant::now() < deadline, "the API never answered");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        doc.starts_with("HTTP/1.1 200"),
        "{}",
        &doc[..doc.len().min(200)]
    );
    for path in [
        "/api/v1/switches",
        "/api/v1/networks",
        "/api/v1/firewall/rules",
        "/api/v1/lb/vips",
        "/api/v1/qos/policies",
        "/api/v1/hostaware/rules",
        "/api/v1/cluster",
    ] {
        assert!(doc.contains(&format!("\"{path}\"")), "{path} undocumented");
    }
    // Alone (the default), the node says it is not clustered.
    let cluster = get(rest, "/api/v1/cluster").unwrap();
    assert!(cluster.contains("\"enabled\":false"), "{cluster}");
}

/// Clustering without the etcd store is refused at start, saying why.
#[test]
fn clustering_needs_the_etcd_store() {
    let out = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .arg(format!("--rest-listen=127.0.0.1:{}", free_port()))
        .arg(format!("--openflow-listen=127.0.0.1:{}", free_port()))
        .arg(format!("--ovsdb-listen=127.0.0.1:{}", free_port()))
        .arg("--cluster")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("needs the etcd store"), "{stderr}");
}

/// `--store etcd` with no etcd answering: the process exits at once (within
/// the request timeout), saying which store it could not open and why.
#[test]
fn the_controller_refuses_to_start_without_its_etcd() {
    let etcd = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .arg(format!("--rest-listen=127.0.0.1:{}", free_port()))
        .arg(format!("--openflow-listen=127.0.0.1:{}", free_port()))
        .arg(format!("--ovsdb-listen=127.0.0.1:{}", free_port()))
        .args(["--store", "etcd", "--etcd-timeout-ms", "500"])
        .args(["--etcd-endpoints", &etcd])
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("opening the etcd store (endpoints {etcd}"))
            && stderr.contains("store unavailable"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}
