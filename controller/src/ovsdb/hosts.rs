//! Connected OVSDB hosts: the listener for hosts that dial in
//! (`set-manager tcp:CTRL:6640`), active connections to hosts that listen
//! (`ptcp:6640`, registered by REST), and the registry everything else
//! reads: typed snapshots, a change counter to wait on, `transact`, and
//! the columns every connection monitors ([`Hosts::watch`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::columns::Columns;
use super::conn::{self, Command, ConnError};
use super::session::{SessionConfig, TransactError};
use super::view::HostView;

/// What the listener for hosts that dial in accepts (connections Flowgate
/// opens itself are not counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Connections accepted at once, in all.
    pub max_connections: usize,
    /// Connections accepted at once from one address (a host needs one).
    pub max_per_address: usize,
    /// Time a connection has to send its database's contents (the monitor
    /// reply); one that does not is closed.
    pub handshake_timeout: Duration,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            max_connections: 256,
            max_per_address: 4,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}
/// Delay between attempts to reach a `ptcp` host.
const RECONNECT: Duration = Duration::from_secs(2);
/// How long a transaction may take.
const TRANSACT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OvsdbError {
    #[error("no OVSDB connection {0}")]
    NoSuchConnection(u64),
    #[error(transparent)]
    Transact(#[from] TransactError),
    #[error("the host did not answer within {0:?}")]
    Timeout(Duration),
    #[error("bad target {0:?}: expected tcp:IP:PORT, ssl:IP:PORT or unix:PATH")]
    BadTarget(String),
    #[error("target {0:?} needs OVSDB over TLS configured ([ovsdb] tls_cert, tls_key, tls_ca)")]
    NoTls(String),
}

/// Who opened the connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The host dialled us (`set-manager`).
    Passive,
    /// We dialled the host's `ptcp` remote.
    Active { target: String },
}

/// One connected host as the rest of Flowgate sees it.
#[derive(Debug, Clone)]
pub struct HostSnapshot {
    /// Unique per connection (a reconnecting host gets a new one).
    pub conn_id: u64,
    pub mode: Mode,
    /// The host's address as we see it (`unix` connections have none).
    pub peer: Option<SocketAddr>,
    /// Our address on that connection: where the host reaches Flowgate.
    pub local: Option<SocketAddr>,
    pub connected_since: SystemTime,
    pub view: Arc<HostView>,
}

impl HostSnapshot {
    pub fn peer_ip(&self) -> Option<IpAddr> {
        self.peer.map(|p| p.ip())
    }
}

/// A transaction endpoint of one connection.
#[derive(Debug, Clone)]
pub struct HostHandle {
    pub conn_id: u64,
    cmd: mpsc::Sender<Command>,
}

impl HostHandle {
    /// Runs `ops` as one transaction; `Ok` holds per-operation results.
    pub async fn transact(&self, ops: Vec<Value>) -> Result<Vec<Value>, OvsdbError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::Transact { ops, reply: tx })
            .await
            .map_err(|_| OvsdbError::NoSuchConnection(self.conn_id))?;
        match tokio::time::timeout(TRANSACT_TIMEOUT, rx).await {
            Err(_) => Err(OvsdbError::Timeout(TRANSACT_TIMEOUT)),
            Ok(Err(_)) => Err(TransactError::Closed.into()),
            Ok(Ok(outcome)) => Ok(outcome?),
        }
    }
}

struct Conn {
    mode: Mode,
    peer: Option<SocketAddr>,
    local: Option<SocketAddr>,
    since: SystemTime,
    view: Option<Arc<HostView>>,
    cmd: mpsc::Sender<Command>,
}

struct Inner {
    config: SessionConfig,
    limits: ListenerLimits,
    /// Hosts dial in over TLS with a certificate of the CA (none: TCP),
    /// and `ssl:` targets are reached with it.
    tls: Option<crate::runtime::tls::OvsdbTls>,
    /// Accepted connections open now, by peer address.
    accepted: Mutex<BTreeMap<IpAddr, usize>>,
    conns: Mutex<BTreeMap<u64, Conn>>,
    active: Mutex<BTreeMap<String, JoinHandle<()>>>,
    next_id: AtomicU64,
    changed: watch::Sender<u64>,
    columns: watch::Sender<Columns>,
}

/// The registry of OVSDB hosts; cheap to clone.
#[derive(Clone)]
pub struct Hosts {
    inner: Arc<Inner>,
}

impl Default for Hosts {
    fn default() -> Self {
        Hosts::new(SessionConfig::default())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data; keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Hosts {
    pub fn new(config: SessionConfig) -> Hosts {
        Hosts::with_limits(config, ListenerLimits::default())
    }

    pub fn with_limits(config: SessionConfig, limits: ListenerLimits) -> Hosts {
        Hosts::with_tls(config, limits, None)
    }

    /// Hosts whose connections to the listener are TLS with a client
    /// certificate (`acceptor`: [`crate::runtime::tls::mutual_acceptor`];
    /// `ovs-vsctl set-manager ssl:CTRL:6640` after `set-ssl`).
    pub fn with_tls(
        config: SessionConfig,
        limits: ListenerLimits,
        tls: Option<crate::runtime::tls::OvsdbTls>,
    ) -> Hosts {
        Hosts {
            inner: Arc::new(Inner {
                config,
                limits,
                tls,
                accepted: Mutex::new(BTreeMap::new()),
                conns: Mutex::new(BTreeMap::new()),
                active: Mutex::new(BTreeMap::new()),
                next_id: AtomicU64::new(1),
                changed: watch::channel(0).0,
                columns: watch::channel(Columns::default()).0,
            }),
        }
    }

    /// Monitors `tables` (table, columns) on every connection from now on,
    /// besides the base set and what others registered; connections
    /// already up monitor again, and their views show the new columns
    /// once the host sent them.
    pub fn watch(&self, tables: &[(&str, &[&str])]) {
        self.inner.columns.send_if_modified(|c| c.add(tables));
    }

    /// Hosts whose initial monitor contents arrived, by connection id.
    pub fn snapshots(&self) -> Vec<HostSnapshot> {
        lock(&self.inner.conns)
            .iter()
            .filter_map(|(id, c)| {
                Some(HostSnapshot {
                    conn_id: *id,
                    mode: c.mode.clone(),
                    peer: c.peer,
                    local: c.local,
                    connected_since: c.since,
                    view: c.view.clone()?,
                })
            })
            .collect()
    }

    /// Connected hosts by chassis id ([`HostView::host_id`]); of two
    /// connections of one host the newer wins.
    pub fn by_host(&self) -> BTreeMap<String, HostSnapshot> {
        let mut out: BTreeMap<String, HostSnapshot> = BTreeMap::new();
        for snap in self.snapshots() {
            let Some(id) = snap.view.host_id() else {
                continue;
            };
            match out.get(&id) {
                Some(old) if old.conn_id > snap.conn_id => {}
                _ => {
                    out.insert(id, snap);
                }
            }
        }
        out
    }

    /// The transaction endpoint of connection `conn_id`.
    pub fn handle(&self, conn_id: u64) -> Option<HostHandle> {
        lock(&self.inner.conns).get(&conn_id).map(|c| HostHandle {
            conn_id,
            cmd: c.cmd.clone(),
        })
    }

    /// A counter bumped on every connect, disconnect and database change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    fn bump(&self) {
        self.inner.changed.send_modify(|n| *n += 1);
    }

    /// Accepts hosts that dial in, until the listener fails for good,
    /// within [`ListenerLimits`]: a connection over them is closed at once.
    pub async fn listen(self, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let Some(slot) = self.admit(peer.ip()) else {
                        warn!(%peer, "OVSDB connection limit reached; refusing host");
                        continue;
                    };
                    let local = stream.local_addr().ok();
                    info!(%peer, "OVSDB host connected");
                    let hosts = self.clone();
                    tokio::spawn(async move {
                        let _slot = slot;
                        let Some(tls) = hosts.inner.tls.as_ref().map(|t| t.acceptor.clone()) else {
                            hosts.serve(stream, Mode::Passive, Some(peer), local).await;
                            return;
                        };
                        let limit = hosts.inner.limits.handshake_timeout;
                        match tokio::time::timeout(limit, tls.accept(stream)).await {
                            Ok(Ok(stream)) => {
                                hosts.serve(stream, Mode::Passive, Some(peer), local).await;
                            }
                            Ok(Err(e)) => {
                                warn!(%peer, error = ?e.to_string(), "OVSDB TLS handshake failed");
                            }
                            Err(_) => warn!(%peer, "OVSDB TLS handshake timed out"),
                        }
                    });
                }
                Err(e) => {
                    warn!(error = %e, "OVSDB accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// A place for one more accepted connection from `ip`, freed when the
    /// returned slot is dropped; `None` over the limits.
    fn admit(&self, ip: IpAddr) -> Option<Slot> {
        let limits = self.inner.limits;
        let mut accepted = lock(&self.inner.accepted);
        let total: usize = accepted.values().sum();
        let from_ip = accepted.get(&ip).copied().unwrap_or(0);
        if total >= limits.max_connections || from_ip >= limits.max_per_address {
            return None;
        }
        *accepted.entry(ip).or_default() += 1;
        Some(Slot {
            hosts: self.clone(),
            ip,
        })
    }

    /// Accepted connections open now.
    pub fn accepted(&self) -> usize {
        lock(&self.inner.accepted).values().sum()
    }

    /// Whether [`Hosts::connect`] would take `target`: its syntax, and TLS
    /// configured for an `ssl:` one.
    pub fn check_target(&self, target: &str) -> Result<(), OvsdbError> {
        match Target::parse(target)? {
            Target::Ssl(_) if self.inner.tls.is_none() => Err(OvsdbError::NoTls(target.to_owned())),
            _ => Ok(()),
        }
    }

    /// Keeps a connection to the host listening at `target` (`tcp:IP:PORT`
    /// or `unix:PATH`), reconnecting when it drops, until [`Hosts::disconnect`].
    pub fn connect(&self, target: &str) -> Result<(), OvsdbError> {
        let parsed = Target::parse(target)?;
        let connector = match (&parsed, &self.inner.tls) {
            (Target::Ssl(_), None) => return Err(OvsdbError::NoTls(target.to_owned())),
            (Target::Ssl(_), Some(tls)) => Some(tls.connector.clone()),
            _ => None,
        };
        let mut active = lock(&self.inner.active);
        if active.contains_key(target) {
            return Ok(());
        }
        let hosts = self.clone();
        let name = target.to_owned();
        let task = tokio::spawn(async move {
            loop {
                let mode = Mode::Active {
                    target: name.clone(),
                };
                match &parsed {
                    Target::Tcp(addr) => match TcpStream::connect(addr).await {
                        Ok(stream) => {
                            let local = stream.local_addr().ok();
                            info!(target = ?name, "connected to OVSDB host");
                            hosts.serve(stream, mode, Some(*addr), local).await;
                        }
                        Err(e) => warn!(target = ?name, error = %e, "OVSDB host unreachable"),
                    },
                    Target::Ssl(addr) => match TcpStream::connect(addr).await {
                        Ok(stream) => {
                            let local = stream.local_addr().ok();
                            let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
                            let Some(connector) = &connector else {
                                return;
                            };
                            match connector.connect(name, stream).await {
                                Ok(tls) => {
                                    info!(target = ?name_of(&mode), "connected to OVSDB host over TLS");
                                    hosts.serve(tls, mode, Some(*addr), local).await;
                                }
                                Err(e) => warn!(target = ?name_of(&mode), error = ?e.to_string(),
                                                "OVSDB host TLS handshake failed"),
                            }
                        }
                        Err(e) => {
                            warn!(target = ?name_of(&mode), error = %e, "OVSDB host unreachable")
                        }
                    },
                    Target::Unix(path) => match tokio::net::UnixStream::connect(path).await {
                        Ok(stream) => {
                            info!(target = ?name, "connected to OVSDB host");
                            hosts.serve(stream, mode, None, None).await;
                        }
                        Err(e) => warn!(target = ?name, error = %e, "OVSDB host unreachable"),
                    },
                }
                tokio::time::sleep(RECONNECT).await;
            }
        });
        active.insert(target.to_owned(), task);
        Ok(())
    }

    /// Stops connecting to `target` and closes its connection; `false` if
    /// it was not registered.
    pub fn disconnect(&self, target: &str) -> bool {
        let Some(task) = lock(&self.inner.active).remove(target) else {
            return false;
        };
        task.abort();
        let wanted = Mode::Active {
            target: target.to_owned(),
        };
        lock(&self.inner.conns).retain(|_, c| c.mode != wanted);
        self.bump();
        true
    }

    /// Targets Flowgate keeps connections to.
    pub fn targets(&self) -> Vec<String> {
        lock(&self.inner.active).keys().cloned().collect()
    }

    async fn serve<S>(
        &self,
        stream: S,
        mode: Mode,
        peer: Option<SocketAddr>,
        local: Option<SocketAddr>,
    ) where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (cmd, commands) = mpsc::channel(64);
        let passive = mode == Mode::Passive;
        lock(&self.inner.conns).insert(
            id,
            Conn {
                mode,
                peer,
                local,
                since: SystemTime::now(),
                view: None,
                cmd,
            },
        );
        let hosts = self.clone();
        let columns = self.inner.columns.subscribe();
        let (seen, mut first_view) = watch::channel(false);
        let drive = conn::drive(stream, self.inner.config, columns, commands, move |view| {
            if let Some(c) = lock(&hosts.inner.conns).get_mut(&id) {
                c.view = Some(view);
            }
            seen.send_replace(true);
            hosts.bump();
        });
        // A host that dialled in has its handshake time to show its
        // database; then the connection lives as long as the peer answers.
        let deadline = passive.then_some(self.inner.limits.handshake_timeout);
        let why = match deadline {
            None => drive.await,
            Some(limit) => {
                tokio::pin!(drive);
                // Ready when the contents arrived (never if the connection
                // ended first: then `drive` is the branch taken).
                let shown = async move {
                    if first_view.wait_for(|seen| *seen).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                };
                let handshake = tokio::time::timeout(limit, shown);
                tokio::select! {
                    why = &mut drive => why,
                    shown = handshake => match shown {
                        Ok(_) => drive.await,
                        Err(_) => ConnError::Handshake(limit),
                    },
                }
            }
        };
        lock(&self.inner.conns).remove(&id);
        self.bump();
        match why {
            ConnError::Stopped => info!(conn = id, "OVSDB connection closed"),
            e => warn!(conn = id, peer = ?peer, error = ?e.to_string(), "OVSDB connection lost"),
        }
    }
}

fn name_of(mode: &Mode) -> &str {
    match mode {
        Mode::Active { target } => target,
        Mode::Passive => "",
    }
}

/// An accepted connection's place in the listener's limits.
struct Slot {
    hosts: Hosts,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut accepted = lock(&self.hosts.inner.accepted);
        if let Some(n) = accepted.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                accepted.remove(&self.ip);
            }
        }
    }
}

/// Where an active connection goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Tcp(SocketAddr),
    /// TLS with Flowgate's certificate, the host's checked against the CA.
    Ssl(SocketAddr),
    Unix(std::path::PathBuf),
}

impl Target {
    fn parse(target: &str) -> Result<Target, OvsdbError> {
        let bad = || OvsdbError::BadTarget(target.to_owned());
        for (scheme, make) in [
            ("tcp:", Target::Tcp as fn(SocketAddr) -> Target),
            ("ssl:", Target::Ssl),
        ] {
            if let Some(rest) = target.strip_prefix(scheme) {
                // IP:PORT, [v6]:PORT; the port defaults to 6640.
                let with_port = if rest.parse::<IpAddr>().is_ok() {
                    format!("{rest}:{}", super::DEFAULT_PORT)
                } else {
                    rest.to_owned()
                };
                return with_port.parse().map(make).map_err(|_| bad());
            }
        }
        if let Some(path) = target.strip_prefix("unix:") {
            if !path.is_empty() {
                return Ok(Target::Unix(path.into()));
            }
        }
        Err(bad())
    }
}

/// Checks an active target's syntax (for REST validation).
pub fn valid_target(target: &str) -> Result<(), OvsdbError> {
    Target::parse(target).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            Target::parse("tcp:10.0.0.1:6641"),
            Ok(Target::Tcp("10.0.0.1:6641".parse().unwrap()))
        );
        assert_eq!(
            Target::parse("ssl:10.0.0.1"),
            Ok(Target::Ssl("10.0.0.1:6640".parse().unwrap()))
        );
        assert_eq!(
            Target::parse("tcp:10.0.0.1"),
            Ok(Target::Tcp("10.0.0.1:6640".parse().unwrap()))
        );
        assert_eq!(
            Target::parse("tcp:[::1]:6640"),
            Ok(Target::Tcp("[::1]:6640".parse().unwrap()))
        );
        assert_eq!(
            Target::parse("unix:/x/db.sock"),
            Ok(Target::Unix("/x/db.sock".into()))
        );
        assert!(Target::parse("ssl:1.2.3.4:6640").is_ok());
        assert!(Target::parse("udp:1.2.3.4:6640").is_err());
        assert!(Target::parse("tcp:host:6640").is_err());
        assert!(Target::parse("unix:").is_err());
    }
}

#[cfg(test)]
mod listener_tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Whether the listener closed `stream` within `within`.
    async fn closed(stream: &mut TcpStream, within: Duration) -> bool {
        let mut byte = [0u8; 4096];
        let read = async {
            loop {
                match stream.read(&mut byte).await {
                    Ok(0) | Err(_) => return,
                    // The monitor request Flowgate sends first.
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(within, read).await.is_ok()
    }

    #[tokio::test]
    async fn the_listener_caps_connections_per_address_and_in_all_and_closes_silent_ones() {
        let limits = ListenerLimits {
            max_connections: 3,
            max_per_address: 2,
            handshake_timeout: Duration::from_millis(500),
        };
        let hosts = Hosts::with_limits(SessionConfig::default(), limits);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(hosts.clone().listen(listener));
        let mut first = TcpStream::connect(addr).await.unwrap();
        let mut second = TcpStream::connect(addr).await.unwrap();
        let mut third = TcpStream::connect(addr).await.unwrap();
        // The third from the same address is closed at once; the others
        // are kept until their handshake time is up.
        assert!(closed(&mut third, Duration::from_millis(300)).await);
        assert_eq!(hosts.accepted(), 2);
        // Another address (127.0.0.2 is loopback too) gets the last place.
        let other = tokio::net::TcpSocket::new_v4().unwrap();
        other.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut fourth = other.connect(addr).await.unwrap();
        let mut fifth = TcpStream::connect(addr).await.unwrap();
        assert!(closed(&mut fifth, Duration::from_millis(300)).await);
        assert_eq!(hosts.accepted(), 3);
        // Nobody sends a database: all closed after the handshake time,
        // and their places are free again.
        for stream in [&mut first, &mut second, &mut fourth] {
            assert!(closed(stream, Duration::from_secs(2)).await);
        }
        tokio::time::timeout(Duration::from_secs(2), async {
            while hosts.accepted() > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("places freed");
        let mut again = TcpStream::connect(addr).await.unwrap();
        assert!(!closed(&mut again, Duration::from_millis(200)).await);
    }
}

#[cfg(test)]
mod tls_tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::AsyncReadExt;

    use super::*;

    fn file(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("src/runtime/tls")
            .join(name)
    }

    fn connector(client_cert: bool) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(file("ca.pem")).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = if client_cert {
            config
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_file(file("switch1.pem")).unwrap()],
                    PrivateKeyDer::from_pem_file(file("switch1.key")).unwrap(),
                )
                .unwrap()
        } else {
            config.with_no_client_auth()
        };
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    #[tokio::test]
    async fn hosts_dial_in_over_tls_with_a_certificate_of_the_ca() {
        let tls = crate::runtime::tls::OvsdbTls::new(
            &file("controller.pem"),
            &file("controller.key"),
            &file("ca.pem"),
        )
        .unwrap();
        let hosts = Hosts::with_tls(
            SessionConfig::default(),
            ListenerLimits::default(),
            Some(tls),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(hosts.clone().listen(listener));
        let name = || ServerName::try_from("127.0.0.1").unwrap();
        // With a certificate: Flowgate's monitor request arrives over TLS.
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut tls = connector(true).connect(name(), tcp).await.unwrap();
        let mut buf = vec![0u8; 65536];
        let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
            .await
            .expect("a monitor request")
            .unwrap();
        let request: Value = serde_json::from_slice(&buf[..n]).unwrap();
        assert_eq!(request["method"], "monitor");
        // Without one: no session (TLS 1.3 reports it on the first read).
        let tcp = TcpStream::connect(addr).await.unwrap();
        let refused = match connector(false).connect(name(), tcp).await {
            Err(_) => true,
            Ok(mut tls) => matches!(
                tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf)).await,
                Ok(Ok(0)) | Ok(Err(_))
            ),
        };
        assert!(refused);
        // Plain JSON-RPC on the TLS port gets a TLS alert (record type
        // 0x15) or nothing, never an answer.
        let mut plain = TcpStream::connect(addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(
            &mut plain,
            b"{\"id\":1,\"method\":\"echo\",\"params\":[]}",
        )
        .await
        .unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(2), plain.read(&mut buf)).await;
        match answer {
            Ok(Ok(n)) if n > 0 => assert_eq!(buf[0], 0x15, "{:?}", &buf[..n]),
            _ => {}
        }
    }

    #[tokio::test]
    async fn ssl_targets_are_reached_over_tls_and_need_tls_configured() {
        // A host listening for TLS (`pssl:`) with a certificate of the CA,
        // asking for Flowgate's.
        let server = crate::runtime::tls::mutual_acceptor(
            &file("controller.pem"),
            &file("controller.key"),
            &file("ca.pem"),
            "test host",
        )
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (got, monitor) = oneshot::channel();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = server.accept(tcp).await.expect("Flowgate's certificate");
            let mut buf = vec![0u8; 65536];
            let n = tls.read(&mut buf).await.unwrap();
            let _ = got.send(serde_json::from_slice::<Value>(&buf[..n]).unwrap());
        });
        // Flowgate's side, with a client certificate of the CA.
        let tls = crate::runtime::tls::OvsdbTls::new(
            &file("switch1.pem"),
            &file("switch1.key"),
            &file("ca.pem"),
        )
        .unwrap();
        let hosts = Hosts::with_tls(
            SessionConfig::default(),
            ListenerLimits::default(),
            Some(tls),
        );
        hosts.connect(&format!("ssl:{addr}")).unwrap();
        let request = tokio::time::timeout(Duration::from_secs(5), monitor)
            .await
            .expect("a monitor request over TLS")
            .unwrap();
        assert_eq!(request["method"], "monitor");
        // Without TLS configured an ssl: target is refused up front.
        assert_eq!(
            Hosts::default().connect("ssl:127.0.0.1:6640"),
            Err(OvsdbError::NoTls("ssl:127.0.0.1:6640".into()))
        );
    }
}
