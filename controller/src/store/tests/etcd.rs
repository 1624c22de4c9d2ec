//! etcd backend tests against a real etcd: each test starts its own server
//! (`etcd` from PATH, loopback ports picked free, data in a temp dir) and
//! stops it by PID. They are `#[ignore]`d so a plain `cargo test` on a
//! machine without etcd stays green and says so ("ignored");
//! tools/test-all.sh installs etcd-server and runs them with `--ignored`.
//! Run by hand: `cargo test -p flowgate-controller store::tests -- --ignored`.
//! [`TestEtcd`] also serves the cluster coordinator's tests.
//! Without an etcd binary they fail, naming what to install.

use super::super::*;
use super::plain;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// One etcd server for one test, killed (by its PID) when dropped.
pub(crate) struct TestEtcd {
    child: Option<Child>,
    client_url: String,
    peer_url: String,
    dir: tempfile::TempDir,
    /// Clients must use TLS with this CA (the server serves `server.pem`).
    tls: Option<EtcdTls>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

impl TestEtcd {
    pub(crate) fn start() -> TestEtcd {
        let mut etcd = TestEtcd {
            child: None,
            client_url: format!("http://127.0.0.1:{}", free_port()),
            peer_url: format!("http://127.0.0.1:{}", free_port()),
            dir: tempfile::tempdir().expect("tempdir"),
            tls: None,
        };
        etcd.run(&[]);
        etcd
    }

    /// A server that speaks TLS to clients, with a certificate for
    /// 127.0.0.1 signed by a CA made for the test (`openssl` CLI).
    fn start_tls() -> TestEtcd {
        let dir = tempfile::tempdir().expect("tempdir");
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .unwrap_or_else(|e| panic!("cannot run `openssl` ({e}): apt-get install openssl"));
            assert!(out.status.success(), "openssl {args:?}: {out:?}");
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let ca = [
            "req",
            "-x509",
            "-days",
            "2",
            "-subj",
            "/CN=flowgate test CA",
        ];
        openssl(&[&ca[..], &ec[..], &["-keyout", "ca.key", "-out", "ca.pem"]].concat());
        let csr = ["req", "-subj", "/CN=127.0.0.1"];
        openssl(
            &[
                &csr[..],
                &ec[..],
                &["-keyout", "server.key", "-out", "server.csr"],
            ]
            .concat(),
        );
        std::fs::write(dir.path().join("ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext",
            "-out",
            "server.pem",
        ]);
        let mut etcd = TestEtcd {
            child: None,
            client_url: format!("https://127.0.0.1:{}", free_port()),
            peer_url: format!("http://127.0.0.1:{}", free_port()),
            tls: Some(EtcdTls {
                ca_file: dir.path().join("ca.pem"),
                identity: None,
            }),
            dir,
        };
        let cert = etcd.dir.path().join("server.pem");
        let key = etcd.dir.path().join("server.key");
        etcd.run(&[
            "--cert-file".as_ref(),
            cert.as_os_str(),
            "--key-file".as_ref(),
            key.as_os_str(),
        ]);
        etcd
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// Starts the server (again, on the same ports and data) and waits
    /// until it answers.
    fn run(&mut self, extra: &[&std::ffi::OsStr]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("etcd log file");
        let child = Command::new("etcd")
            .args(["--name", "test", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &self.client_url])
            .args(["--advertise-client-urls", &self.client_url])
            .args(["--listen-peer-urls", &self.peer_url])
            .args(["--initial-advertise-peer-urls", &self.peer_url])
            .args(["--initial-cluster", &format!("test={}", self.peer_url)])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `etcd` from PATH ({e}): the etcd store tests need an etcd \
                     3.4+ server binary (Debian: apt-get install etcd-server; \
                     tools/test-all.sh installs it)"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match EtcdStore::connect(&self.config("/probe/", Duration::from_millis(500))) {
                Ok(_) => return,
                Err(e) if Instant::now() > deadline => panic!(
                    "etcd did not answer within 20 s ({e}); its log:\n{}",
                    std::fs::read_to_string(self.log()).unwrap_or_default()
                ),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Kills the server (SIGKILL to the PID we started) and reaps it.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) fn config(&self, prefix: &str, timeout: Duration) -> EtcdConfig {
        EtcdConfig {
            endpoints: vec![self.client_url.clone()],
            prefix: prefix.to_owned(),
            timeout,
            tls: self.tls.clone(),
        }
    }

    pub(super) fn store(&self, prefix: &str) -> EtcdStore {
        EtcdStore::connect(&self.config(prefix, Duration::from_secs(5))).expect("connect")
    }
}

impl Drop for TestEtcd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The next event on `rx` within 10 s (events written by another store
/// arrive asynchronously).
fn next_event(rx: &mut broadcast::Receiver<StoreEvent>) -> StoreEvent {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match rx.try_recv() {
            Ok(event) => return event,
            Err(broadcast::error::TryRecvError::Empty) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("no event within 10 s: {e:?}"),
        }
    }
}

fn put(key: &str, value: &[u8]) -> StoreEvent {
    StoreEvent {
        key: key.into(),
        kind: EventKind::Put(value.to_vec()),
        revision: 0,
    }
}

#[test]
#[ignore = "needs etcd on PATH; tools/test-all.sh runs it (see README)"]
fn changes_by_another_instance_reach_watchers_and_prefixes_are_separate() {
    let etcd = TestEtcd::start();
    let a = etcd.store("/flowgate/");
    let b = etcd.store("/flowgate/");
    let other = etcd.store("/elsewhere/");
    let mut fw = a.watch("fw/");
    b.put("fw/rules/1", b"r1").unwrap();
    other.put("fw/rules/2", b"not ours").unwrap();
    b.apply(vec![
        Op::delete_prefix("fw/"),
        Op::put("fw/rules/3", b"r3".to_vec()),
    ])
    .unwrap();
    assert_eq!(plain(next_event(&mut fw)), put("fw/rules/1", b"r1"));
    assert_eq!(
        plain(next_event(&mut fw)),
        StoreEvent {
            key: "fw/rules/1".into(),
            kind: EventKind::Delete,
            revision: 0,
        }
    );
    assert_eq!(plain(next_event(&mut fw)), put("fw/rules/3", b"r3"));
    assert_eq!(
        a.list_prefix("").unwrap(),
        [("fw/rules/3".into(), b"r3".to_vec())]
    );
    // A second store on the same prefix sees what the first one wrote, as a
    // controller restarted on the same etcd does.
    drop((a, b));
    let again = etcd.store("/flowgate/");
    assert_eq!(
        again.get("fw/rules/3").unwrap().as_deref(),
        Some(&b"r3"[..])
    );
}

/// Two controllers that both read a guard key at revision r: the first
/// guarded write commits, the second fails with a conflict and writes
/// nothing, and it sees the first's revision through its watch.
#[test]
#[ignore = "needs etcd on PATH; tools/test-all.sh runs it (see README)"]
fn guarded_writes_from_two_stores_conflict() {
    let etcd = TestEtcd::start();
    let a = etcd.store("/guard/");
    let b = etcd.store("/guard/");
    let mut seen_by_b = b.watch("m/");
    let r = a.apply(vec![Op::put("serial", b"a".to_vec())]).unwrap()[0].revision;
    let guard = Guard {
        key: "serial".into(),
        since: r,
    };
    let won = a
        .apply_guarded(
            vec![
                Op::put("serial", b"a".to_vec()),
                Op::put("m/1", b"1".to_vec()),
            ],
            Some(&guard),
        )
        .unwrap();
    match b.apply_guarded(
        vec![
            Op::put("serial", b"b".to_vec()),
            Op::put("m/2", b"2".to_vec()),
        ],
        Some(&guard),
    ) {
        Err(StoreError::Conflict { revision, .. }) => assert_eq!(revision, won[0].revision),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(keys_of(&a.list_prefix("m/").unwrap()), ["m/1"]);
    assert_eq!(next_event(&mut seen_by_b).revision, won[0].revision);
}

fn keys_of(entries: &[(String, Vec<u8>)]) -> Vec<&str> {
    entries.iter().map(|(k, _)| k.as_str()).collect()
}

/// Concurrent bulk replaces (delete the prefix, put one key) from two
/// stores: the compare on revisions serializes them, so each key is
/// reported deleted exactly once, by the batch that really deleted it, and
/// one key is left.
#[test]
#[ignore = "needs etcd on PATH; tools/test-all.sh runs it (see README)"]
fn concurrent_batches_are_serialized() {
    let etcd = TestEtcd::start();
    let stores = [Arc::new(etcd.store("/cas/")), Arc::new(etcd.store("/cas/"))];
    const WRITERS: usize = 4;
    const BATCHES: usize = 15;
    let deleted = Arc::new(std::sync::Mutex::new(Vec::new()));
    std::thread::scope(|scope| {
        for w in 0..WRITERS {
            let store = stores[w % 2].clone();
            let deleted = deleted.clone();
            scope.spawn(move || {
                for i in 0..BATCHES {
                    let key = format!("c/{w}-{i}");
                    let events = store
                        .apply(vec![
                            Op::delete_prefix("c/"),
                            Op::put(key.clone(), b"x".to_vec()),
                        ])
                        .expect("apply");
                    assert_eq!(events.last().cloned().map(plain), Some(put(&key, b"x")));
                    let mut deleted = deleted.lock().unwrap();
                    for e in &events[..events.len() - 1] {
                        assert_eq!(e.kind, EventKind::Delete);
                        deleted.push(e.key.clone());
                    }
                }
            });
        }
    });
    let mut deleted = deleted.lock().unwrap().clone();
    let total = deleted.len();
    deleted.sort();
    deleted.dedup();
    assert_eq!(deleted.len(), total, "a key was reported deleted twice");
    assert_eq!(total, WRITERS * BATCHES - 1);
    assert_eq!(stores[0].list_prefix("c/").unwrap().len(), 1);
}

#[test]
#[ignore = "needs etcd on PATH; tools/test-all.sh runs it (see README)"]
fn unavailable_etcd_fails_fast_naming_the_cause_then_recovers() {
    let mut etcd = TestEtcd::start();
    let timeout = Duration::from_secs(1);
    let store = EtcdStore::connect(&etcd.config("/flowgate/", timeout)).expect("connect");
    let mut rx = store.watch("");
    store.put("kept", b"1").unwrap();
    assert_eq!(plain(next_event(&mut rx)), put("kept", b"1"));

    etcd.stop();
    for attempt in [
        Box::new(|| store.put("lost", b"2").map(drop)) as Box<dyn Fn() -> Result<()>>,
        Box::new(|| store.get("kept").map(drop)),
    ] {
        let started = Instant::now();
        match attempt() {
            Err(StoreError::Unavailable { cause }) => {
                assert!(cause.contains(&etcd.client_url), "{cause}")
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
        assert!(started.elapsed() < timeout * 3, "{:?}", started.elapsed());
    }

    // Back on the same data: the same store writes again, nothing
    // acknowledged was lost, and the watch resumed.
    etcd.run(&[]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while let Err(e) = store.put("after", b"3") {
        assert!(Instant::now() < deadline, "no recovery: {e}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(store.get("kept").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(store.get("lost").unwrap(), None);
    assert_eq!(plain(next_event(&mut rx)), put("after", b"3"));
}

#[test]
#[ignore = "needs etcd on PATH; tools/test-all.sh runs it (see README)"]
fn tls_to_etcd_with_the_servers_ca() {
    let etcd = TestEtcd::start_tls();
    let store = etcd.store("/tls/");
    store.put("k", b"v").unwrap();
    assert_eq!(store.get("k").unwrap().as_deref(), Some(&b"v"[..]));
    // Without TLS the server is not reachable, and the error says so.
    let mut plain = etcd.config("/tls/", Duration::from_secs(2));
    plain.tls = None;
    plain.endpoints = vec![etcd.client_url.replace("https://", "")];
    assert!(matches!(
        EtcdStore::connect(&plain),
        Err(StoreError::Unavailable { .. })
    ));
}

/// No etcd needed: nobody listens on the port.
#[test]
fn connect_fails_when_etcd_is_unreachable() {
    let endpoint = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let err = EtcdStore::connect(&EtcdConfig {
        endpoints: vec![endpoint.clone()],
        prefix: "/flowgate/".into(),
        timeout: Duration::from_millis(500),
        tls: None,
    })
    .expect_err("nothing listens there");
    assert!(
        matches!(&err, StoreError::Unavailable { cause } if cause.contains(&endpoint)),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn connect_refuses_an_empty_prefix_or_no_endpoint() {
    for (endpoints, prefix) in [(vec![], "/flowgate/"), (vec!["127.0.0.1:2379".into()], "")] {
        let config = EtcdConfig {
            endpoints,
            prefix: prefix.into(),
            timeout: Duration::from_secs(1),
            tls: None,
        };
        assert!(matches!(
            EtcdStore::connect(&config),
            Err(StoreError::Etcd(_))
        ));
    }
}

/// A store dropped inside async code (the runtime it owns must not be
/// waited for there, which would panic).
#[tokio::test]
async fn a_store_can_be_dropped_in_async_code() {
    let err = EtcdStore::connect(&EtcdConfig {
        endpoints: vec![format!("127.0.0.1:{}", free_port())],
        prefix: "/p/".into(),
        timeout: Duration::from_millis(200),
        tls: None,
    });
    assert!(err.is_err());
}
