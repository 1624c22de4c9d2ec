//! The server over real loopback sockets: limits, timeouts, shutdown.

use super::*;
use axum::routing::get;
use std::net::Ipv4Addr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server and the way to stop it.
struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<io::Result<()>>,
}

fn app() -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        // An answer far larger than the socket buffers.
        .route("/big", get(|| async { vec![b'x'; 64 << 20] }))
}

async fn start(config: ServerConfig) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, app(), config, None, async {
        let _ = stopped.await;
    }));
    Running { addr, stop, task }
}

fn quick() -> ServerConfig {
    ServerConfig {
        header_timeout: Duration::from_millis(300),
        write_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    }
}

/// A connection from `source` (any 127/8 address is this host).
async fn connect_from(source: Ipv4Addr, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((source, 0)))
        .expect("bind source");
    socket.connect(addr).await.expect("connect")
}

async fn request(conn: &mut TcpStream, path: &str) -> String {
    conn.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    let mut response = String::new();
    let _ = conn.read_to_string(&mut response).await;
    response
}

/// True when the server closes `conn` within `within` (EOF or reset).
async fn closed_within(conn: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    matches!(
        tokio::time::timeout(within, conn.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

#[tokio::test]
async fn answers_over_tcp_and_shuts_down() {
    let server = start(ServerConfig::default()).await;
    let mut conn = connect_from(LOCAL, server.addr).await;
    let response = request(&mut conn, "/health").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("ok"), "{response}");

    // An idle kept-alive connection does not hold shutdown up.
    let _idle = connect_from(LOCAL, server.addr).await;
    server.stop.send(()).expect("server still running");
    let result = tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .expect("server stops after shutdown")
        .expect("server task");
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn idle_and_slow_header_connections_are_closed() {
    let server = start(quick()).await;
    let mut idle = connect_from(LOCAL, server.addr).await;
    assert!(closed_within(&mut idle, Duration::from_secs(3)).await);

    // Headers trickling in, a byte every 100 ms: closed although it talks.
    let mut slow = connect_from(LOCAL, server.addr).await;
    let trickle = async {
        for b in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa" {
            if slow.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let started = std::time::Instant::now();
    trickle.await;
    assert!(closed_within(&mut slow, Duration::from_secs(3)).await);
    assert!(started.elapsed() < Duration::from_secs(4));

    // A kept-alive connection is closed once idle after its answer.
    let mut kept = connect_from(LOCAL, server.addr).await;
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    let n = kept.read(&mut buf).await.expect("answer");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    assert!(closed_within(&mut kept, Duration::from_secs(3)).await);
}

#[tokio::test]
async fn a_client_over_its_share_is_refused_and_others_are_served() {
    let server = start(ServerConfig {
        max_connections_per_client: 3,
        ..ServerConfig::default()
    })
    .await;
    let hostile = Ipv4Addr::new(127, 0, 0, 2);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from(hostile, server.addr).await);
    }
    // The server counts a connection once it accepted it: wait for that.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut over = connect_from(hostile, server.addr).await;
    let refused = request(&mut over, "/health").await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(
        refused.contains("too many connections from your address"),
        "{refused}"
    );

    let mut other = connect_from(LOCAL, server.addr).await;
    assert!(request(&mut other, "/health")
        .await
        .starts_with("HTTP/1.1 200"));

    // A closed connection gives its place back.
    held.pop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = connect_from(hostile, server.addr).await;
    assert!(request(&mut again, "/health")
        .await
        .starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn many_idle_connections_do_not_lock_out_others() {
    // More than the 256 connections that used to block every request.
    let server = start(ServerConfig::default()).await;
    let mut held = Vec::new();
    for i in 0..300u32 {
        let source = Ipv4Addr::new(127, 0, 1, (i % 10 + 1) as u8);
        held.push(connect_from(source, server.addr).await);
    }
    let mut conn = connect_from(LOCAL, server.addr).await;
    let response = tokio::time::timeout(Duration::from_secs(5), request(&mut conn, "/health"))
        .await
        .expect("answered while 300 connections idle");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[tokio::test]
async fn a_client_that_does_not_read_its_answer_is_dropped() {
    let server = start(ServerConfig {
        max_connections_per_client: 1,
        ..quick()
    })
    .await;
    let mut reader_gone = connect_from(LOCAL, server.addr).await;
    reader_gone
        .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    // It never reads; once the write timeout dropped it, its one place is
    // free again.
    let answered = async {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut next = connect_from(LOCAL, server.addr).await;
            let response = request(&mut next, "/health").await;
            if response.starts_with("HTTP/1.1 200") {
                return;
            }
            assert!(response.starts_with("HTTP/1.1 503"), "{response}");
        }
    };
    tokio::time::timeout(Duration::from_secs(5), answered)
        .await
        .expect("the stalled connection was dropped");
    drop(reader_gone);
}
