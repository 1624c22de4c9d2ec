//! The thin tokio driver around a [`Session`]: one task reads the socket and
//! runs the session, one task writes. The writer takes already-encoded
//! batches from a bounded queue and coalesces whatever is queued into one
//! buffered write, so many flow-mods cost one syscall. A switch whose queue
//! is full is too slow to keep up and is disconnected rather than allowed to
//! stall the core (see [`super::core`]); it is fully reconciled when it
//! comes back.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use flowgate_openflow::{Message, PortReason};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn, Instrument};

use crate::runtime::core::CoreEvent;
use crate::runtime::registry::{Registry, SwitchCmd, SwitchEntry, SwitchHandle, SwitchInfo};
use crate::runtime::session::{CloseReason, RequestError, Session, SessionConfig, SessionEvent};

/// Most messages of one switch handed to the core in one event (bounds the
/// core's work between two flushes).
const CORE_BATCH: usize = 64;
/// Size of one socket read.
const READ_CHUNK: usize = 64 * 1024;
/// Writer buffer: everything queued is flushed in writes of up to this size.
const WRITE_BUFFER: usize = 256 * 1024;

/// Per-connection settings.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    pub session: SessionConfig,
    /// Capacity of the writer queue, in batches.
    pub send_queue: usize,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            session: SessionConfig::default(),
            send_queue: 4096,
        }
    }
}

/// Runs one switch connection until it closes.
pub async fn run_connection(
    stream: TcpStream,
    peer: SocketAddr,
    config: DriverConfig,
    registry: Arc<Registry>,
    core: mpsc::Sender<CoreEvent>,
) {
    let conn_id = registry.new_conn_id();
    let span = tracing::info_span!("switch", %peer, conn = conn_id, dpid = tracing::field::Empty);
    Connection::new(stream, peer, conn_id, config, registry, core)
        .run()
        .instrument(span)
        .await;
}

struct Connection {
    peer: SocketAddr,
    conn_id: u64,
    session: Session,
    registry: Arc<Registry>,
    core: mpsc::Sender<CoreEvent>,
    reader: tokio::net::tcp::OwnedReadHalf,
    writer: tokio::task::JoinHandle<()>,
    stop_writer: oneshot::Sender<()>,
    tx: mpsc::Sender<Bytes>,
    cmd_tx: mpsc::Sender<SwitchCmd>,
    cmd_rx: mpsc::Receiver<SwitchCmd>,
    replies: HashMap<u64, oneshot::Sender<Result<Message, RequestError>>>,
    next_token: u64,
    dpid: Option<u64>,
}

impl Connection {
    fn new(
        stream: TcpStream,
        peer: SocketAddr,
        conn_id: u64,
        config: DriverConfig,
        registry: Arc<Registry>,
        core: mpsc::Sender<CoreEvent>,
    ) -> Self {
        let _ = stream.set_nodelay(true);
        let (reader, write_half) = stream.into_split();
        let (tx, rx) = mpsc::channel(config.send_queue);
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let (stop_writer, stop) = oneshot::channel();
        let writer = tokio::spawn(write_loop(write_half, rx, stop).in_current_span());
        Connection {
            peer,
            conn_id,
            session: Session::new(Instant::now(), config.session),
            registry,
            core,
            reader,
            writer,
            stop_writer,
            tx,
            cmd_tx,
            cmd_rx,
            replies: HashMap::new(),
            next_token: 0,
            dpid: None,
        }
    }

    async fn run(mut self) {
        debug!("connected");
        let mut buf = vec![0u8; READ_CHUNK];
        // One timer for the connection's life. It is re-armed only when the
        // session wants an earlier wake-up than the armed one: a later
        // deadline (every read moves the keepalive deadline) just lets it
        // fire early, and `handle_timeout` then finds nothing due. Arming a
        // timer per read took the timer driver's lock once per message.
        let timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        loop {
            self.flush_session().await;
            if self.dispatch_events().await {
                break;
            }
            if let Some(deadline) = self.session.poll_timeout() {
                if armed.is_none_or(|at| deadline < at) {
                    timer.as_mut().reset(deadline.into());
                    armed = Some(deadline);
                }
            }
            tokio::select! {
                read = self.reader.read(&mut buf) => match read {
                    Ok(0) => self.session.close(CloseReason::Peer("connection closed by switch".into())),
                    Ok(n) => self.session.handle_bytes(Instant::now(), &buf[..n]),
                    Err(e) => self.session.close(CloseReason::Peer(format!("read error: {e}"))),
                },
                Some(cmd) = self.cmd_rx.recv() => self.handle_cmd(cmd),
                _ = &mut timer, if armed.is_some() => {
                    armed = None;
                    self.session.handle_timeout(Instant::now());
                }
            }
        }
        self.finish().await;
    }

    fn handle_cmd(&mut self, cmd: SwitchCmd) {
        match cmd {
            SwitchCmd::Request { message, reply } => {
                self.next_token += 1;
                self.replies.insert(self.next_token, reply);
                self.session
                    .request(Instant::now(), message, self.next_token);
            }
            SwitchCmd::Close(why) => self.session.close(CloseReason::Requested(why)),
        }
    }

    async fn flush_session(&mut self) {
        if let Some(bytes) = self.session.poll_transmit() {
            // Only this switch waits if its queue is full.
            let _ = self.tx.send(bytes).await;
        }
    }

    /// Handles session events; true once the session is closed.
    async fn dispatch_events(&mut self) -> bool {
        // Consecutive messages travel to the core together: one queue
        // operation per read instead of one per message.
        let mut batch = Vec::new();
        while let Some(event) = self.session.poll_event() {
            if !matches!(event, SessionEvent::Message { .. }) {
                self.send_to_core(&mut batch).await;
            }
            match event {
                SessionEvent::Ready(sync) => {
                    let dpid = sync.features.datapath_id;
                    self.dpid = Some(dpid);
                    tracing::Span::current().record("dpid", format_args!("{dpid:016x}"));
                    let handle = SwitchHandle {
                        conn_id: self.conn_id,
                        tx: self.tx.clone(),
                        cmd: self.cmd_tx.clone(),
                    };
                    let info = SwitchInfo {
                        dpid,
                        peer: self.peer,
                        connected_since: SystemTime::now(),
                        version: sync.version,
                        features: sync.features.clone(),
                        desc: sync.desc.clone(),
                        ports: sync.ports.clone(),
                    };
                    if let Some(old) = self.registry.insert(SwitchEntry {
                        handle: handle.clone(),
                        info,
                    }) {
                        info!(
                            old_conn = old.handle.conn_id,
                            "switch reconnected: replacing old connection"
                        );
                        let _ = old
                            .handle
                            .cmd
                            .try_send(SwitchCmd::Close("replaced by a newer connection".into()));
                    }
                    info!(
                        ports = sync.ports.len(),
                        flows = sync.flows.len(),
                        "switch ready"
                    );
                    let _ = self
                        .core
                        .send(CoreEvent::SwitchUp { dpid, handle, sync })
                        .await;
                }
                SessionEvent::Message { xid, message } => {
                    let Some(dpid) = self.dpid else { continue };
                    if let Message::PortStatus(status) = &message {
                        self.registry.update_ports(dpid, self.conn_id, |ports| {
                            ports.retain(|p| p.port_no != status.desc.port_no);
                            if status.reason != PortReason::Delete {
                                ports.push(status.desc.clone());
                                ports.sort_by_key(|p| p.port_no);
                            }
                        });
                    }
                    batch.push((xid, message));
                    if batch.len() >= CORE_BATCH {
                        self.send_to_core(&mut batch).await;
                    }
                }
                SessionEvent::Reply { token, result } => {
                    if let Some(reply) = self.replies.remove(&token) {
                        let _ = reply.send(result);
                    }
                }
                SessionEvent::Closed { reason } => {
                    match &reason {
                        CloseReason::NoCommonVersion { .. } | CloseReason::Protocol(_) => {
                            warn!("closing connection: {reason}")
                        }
                        _ => info!("disconnected: {reason}"),
                    }
                    return true;
                }
            }
        }
        self.send_to_core(&mut batch).await;
        self.session.is_closed()
    }

    /// Hands the switch's messages, in order, to the core.
    async fn send_to_core(&mut self, batch: &mut Vec<(u32, Message)>) {
        let Some(dpid) = self.dpid else {
            batch.clear();
            return;
        };
        let event = match batch.len() {
            0 => return,
            1 => {
                let Some((xid, message)) = batch.pop() else {
                    return;
                };
                CoreEvent::Message {
                    dpid,
                    conn_id: self.conn_id,
                    xid,
                    message,
                }
            }
            _ => CoreEvent::Messages {
                dpid,
                conn_id: self.conn_id,
                messages: std::mem::take(batch),
            },
        };
        if self.core.send(event).await.is_err() {
            self.session
                .close(CloseReason::Requested("controller shutting down".into()));
        }
    }

    async fn finish(mut self) {
        // Let the final bytes (e.g. HELLO_FAILED) reach the peer.
        self.flush_session().await;
        let _ = self.stop_writer.send(());
        let writer = self.writer;
        let abort = writer.abort_handle();
        // A peer that stopped reading must not keep this task alive.
        if tokio::time::timeout(std::time::Duration::from_secs(1), writer)
            .await
            .is_err()
        {
            abort.abort();
        }
        if let Some(dpid) = self.dpid {
            if self.registry.remove_if_current(dpid, self.conn_id) {
                let _ = self
                    .core
                    .send(CoreEvent::SwitchDown {
                        dpid,
                        conn_id: self.conn_id,
                    })
                    .await;
            }
        }
    }
}

/// Writes queued batches, coalescing everything already queued into one
/// flush. Ends when every sender is gone or the socket fails.
/// Ends when the session task says so (after writing what is already
/// queued), when every sender is gone, or when the socket fails.
async fn write_loop(
    write_half: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Bytes>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut writer = BufWriter::with_capacity(WRITE_BUFFER, write_half);
    let mut batch = Vec::with_capacity(64);
    loop {
        let stopping = tokio::select! {
            n = rx.recv_many(&mut batch, 64) => n == 0,
            _ = &mut stop => {
                while let Ok(bytes) = rx.try_recv() {
                    batch.push(bytes);
                }
                true
            }
        };
        for bytes in batch.drain(..) {
            if writer.write_all(&bytes).await.is_err() {
                return;
            }
        }
        if (stopping || rx.is_empty()) && writer.flush().await.is_err() {
            return;
        }
        if stopping {
            let _ = writer.shutdown().await;
            return;
        }
    }
}
