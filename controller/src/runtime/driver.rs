//! The thin tokio driver around a [`Session`]: one task reads the socket and
//! runs the session. Output goes through the connection's [`SwitchWriter`]:
//! the core and this task write their already-encoded batches straight to
//! the socket (many flow-mods per syscall), and a small flusher task writes
//! only what the socket would not take at once. A switch whose backlog is
//! full is too slow to keep up and is disconnected rather than allowed to
//! stall the core (see [`super::core`]); it is fully reconciled when it
//! comes back.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use flowgate_openflow::{Message, PortStatus};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn, Instrument};

use crate::runtime::core::CoreEvent;
use crate::runtime::registry::{
    PortUpdate, Registry, SwitchCmd, SwitchEntry, SwitchHandle, SwitchInfo,
};
use crate::runtime::session::{CloseReason, RequestError, Session, SessionConfig, SessionEvent};
use crate::runtime::writer::{SendError, SwitchWriter};

/// Room made in the receive buffer when it runs low ...
const MIN_READ: usize = 4 * 1024;
/// ... and how much.
const READ_CHUNK: usize = 64 * 1024;
/// How long a closing connection may take to write its last bytes: a peer
/// that stopped reading must not keep the task alive.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Per-connection settings.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    pub session: SessionConfig,
    /// Most bytes a switch's output backlog may hold (bytes accepted for the
    /// switch that its socket has not taken yet); beyond it the switch is
    /// disconnected as too slow.
    pub send_backlog: usize,
    /// Most ports of one switch the controller tracks. A switch reporting
    /// more keeps working on the first ones; the rest are ignored (logged).
    /// Topology forwarding lists a switch's flooding ports in one flow
    /// entry, which one OpenFlow message fits for about 4000 of them.
    pub max_ports: usize,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            session: SessionConfig::default(),
            send_backlog: 64 << 20,
            max_ports: 4096,
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
    reader: OwnedReadHalf,
    writer: SwitchWriter,
    flusher: tokio::task::JoinHandle<()>,
    cmd_tx: mpsc::Sender<SwitchCmd>,
    cmd_rx: mpsc::Receiver<SwitchCmd>,
    replies: HashMap<u64, oneshot::Sender<Result<Message, RequestError>>>,
    next_token: u64,
    dpid: Option<u64>,
    max_ports: usize,
    /// Port additions ignored for being past `max_ports`.
    ports_ignored: u64,
    /// Another connection claimed this dpid; this one waits aside.
    set_aside: bool,
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
        // The halves share the socket; reading through `AsyncRead` (not
        // `readable` + `try_read`) lets a short read clear readiness, saving
        // a read that would only say EAGAIN after every message.
        let (reader, write_half) = stream.into_split();
        let (writer, flusher) = SwitchWriter::new(write_half, config.send_backlog);
        let flusher = tokio::spawn(flusher.run().in_current_span());
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        Connection {
            peer,
            conn_id,
            session: Session::new(Instant::now(), config.session),
            registry,
            core,
            reader,
            writer,
            flusher,
            cmd_tx,
            cmd_rx,
            replies: HashMap::new(),
            next_token: 0,
            dpid: None,
            max_ports: config.max_ports,
            ports_ignored: 0,
            set_aside: false,
        }
    }

    async fn run(mut self) {
        debug!("connected");
        // One timer for the connection's life. It is re-armed only when the
        // session wants an earlier wake-up than the armed one: a later
        // deadline (every read moves the keepalive deadline) just lets it
        // fire early, and `handle_timeout` then finds nothing due. Arming a
        // timer per read took the timer driver's lock once per message.
        let timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        loop {
            self.flush_session();
            if self.dispatch_events().await {
                break;
            }
            if let Some(deadline) = self.session.poll_timeout() {
                if armed.is_none_or(|at| deadline < at) {
                    timer.as_mut().reset(deadline.into());
                    armed = Some(deadline);
                }
            }
            // Reads land in the session's buffer, without a copy. It grows
            // only when nearly full: earlier frames may still share its
            // allocation (packet-in data on its way to the core), so every
            // reserve that can not reuse it allocates a new one.
            let rx = self.session.recv_buffer();
            if rx.capacity() - rx.len() < MIN_READ {
                rx.reserve(READ_CHUNK);
            }
            // The socket first, with no random draw per wake-up. Commands
            // and the timer are served after every read as well (a busy
            // socket is always readable and must not starve them); they are
            // only waited on, registering wakers, when the socket is idle.
            tokio::select! {
                biased;
                read = self.reader.read_buf(self.session.recv_buffer()) => {
                    let now = Instant::now();
                    match read {
                        Ok(0) => self.session.close(CloseReason::Peer("connection closed by switch".into())),
                        Ok(_) => self.session.handle_received(now),
                        Err(e) => self.session.close(CloseReason::Peer(format!("read error: {e}"))),
                    }
                    while let Ok(cmd) = self.cmd_rx.try_recv() {
                        self.handle_cmd(cmd);
                    }
                    if armed.is_some_and(|at| at <= now) {
                        armed = None;
                        self.session.handle_timeout(now);
                    }
                }
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
            SwitchCmd::SetAside => {
                warn!("another connection claims this switch's dpid; this one waits aside");
                self.set_aside = true;
            }
            SwitchCmd::Resync => {
                if !self.set_aside && !self.session.resync(Instant::now()) {
                    debug!("re-dump asked of a session that is not ready");
                }
            }
            SwitchCmd::Restore => {
                if self.session.resync(Instant::now()) {
                    info!("the connection that claimed this dpid is gone: restoring this one");
                }
            }
        }
    }

    fn flush_session(&mut self) {
        if let Some(bytes) = self.session.poll_transmit() {
            match self.writer.send(&bytes) {
                Ok(()) => {}
                Err(SendError::Full) => self
                    .session
                    .close(CloseReason::Requested("send queue full".into())),
                Err(SendError::Closed) => self
                    .session
                    .close(CloseReason::Peer("connection closed for writing".into())),
            }
        }
    }

    /// Handles session events; true once the session is closed.
    async fn dispatch_events(&mut self) -> bool {
        while let Some(event) = self.session.poll_event() {
            match event {
                SessionEvent::Ready(mut sync) => {
                    let dpid = sync.features.datapath_id;
                    if sync.ports.len() > self.max_ports {
                        warn!(
                            ports = sync.ports.len(),
                            max_ports = self.max_ports,
                            "switch reports more ports than the limit; the rest are ignored"
                        );
                        sync.ports.truncate(self.max_ports);
                    }
                    self.dpid = Some(dpid);
                    tracing::Span::current().record("dpid", format_args!("{dpid:016x}"));
                    let handle = SwitchHandle {
                        conn_id: self.conn_id,
                        writer: self.writer.clone(),
                        cmd: self.cmd_tx.clone(),
                    };
                    let info = SwitchInfo {
                        dpid,
                        peer: self.peer,
                        connected_since: SystemTime::now(),
                        version: sync.version,
                        features: sync.features.clone(),
                        desc: sync.desc.clone(),
                        ports: sync.ports.iter().map(|p| (p.port_no, p.clone())).collect(),
                    };
                    self.set_aside = false;
                    let replaced = self.registry.insert(SwitchEntry {
                        handle: handle.clone(),
                        info,
                    });
                    // A re-dump of this same connection replaces nothing.
                    if let Some(old) = replaced.filter(|old| old.handle.conn_id != self.conn_id) {
                        // Not closed: if this newcomer is an impostor (or
                        // fails), the old connection is restored. A switch
                        // that really reconnected leaves the old one dead:
                        // it times out.
                        warn!(
                            old_conn = old.handle.conn_id,
                            old_peer = %old.info.peer,
                            "a new connection claims this dpid: it takes over, the old one is set aside"
                        );
                        let _ = old.handle.cmd.try_send(SwitchCmd::SetAside);
                        self.registry.set_aside(dpid, old.handle);
                    }
                    info!(
                        ports = sync.ports.len(),
                        flows = sync.flows.len(),
                        "switch ready"
                    );
                    if !sync.unknown.is_empty() {
                        info!(
                            unanswered = ?sync.unknown,
                            "switch did not answer every sync dump; ready with what is known (an unknown flow table gets Flowgate's entries replaced)"
                        );
                    }
                    let _ = self
                        .core
                        .send(CoreEvent::SwitchUp { dpid, handle, sync })
                        .await;
                }
                SessionEvent::Messages => {
                    let mut run = self.session.take_messages();
                    // Nothing goes to the core before the switch is ready,
                    // nor while this connection is set aside.
                    let Some(dpid) = self.dpid.filter(|_| !self.set_aside) else {
                        self.session.recycle_run(run);
                        continue;
                    };
                    run.retain(|(_, message)| match message {
                        Message::PortStatus(status) => self.note_port_status(dpid, status),
                        _ => true,
                    });
                    if run.is_empty() {
                        self.session.recycle_run(run);
                        continue;
                    }
                    let conn_id = self.conn_id;
                    let event = match run.as_slice() {
                        // A lone message travels alone; its run's vector is
                        // kept for the next run.
                        [_] => {
                            let Some((xid, message)) = run.pop() else {
                                continue;
                            };
                            self.session.recycle_run(run);
                            CoreEvent::Message {
                                dpid,
                                conn_id,
                                xid,
                                message,
                            }
                        }
                        _ => CoreEvent::Messages {
                            dpid,
                            conn_id,
                            messages: run,
                        },
                    };
                    self.send_to_core(event).await;
                }
                SessionEvent::Reply { token, result } => {
                    if let Some(reply) = self.replies.remove(&token) {
                        let _ = reply.send(result);
                    }
                }
                SessionEvent::Closed { reason } => {
                    match &reason {
                        CloseReason::NoCommonVersion { .. }
                        | CloseReason::Protocol(_)
                        | CloseReason::LimitExceeded(_) => {
                            warn!("closing connection: {reason}")
                        }
                        _ => info!("disconnected: {reason}"),
                    }
                    return true;
                }
            }
        }
        self.session.is_closed()
    }

    /// Keeps the registry's port list current (the REST API reads it);
    /// false if the status is to go no further: about a port that is not
    /// tracked, or adding one past the limit.
    fn note_port_status(&mut self, dpid: u64, status: &PortStatus) -> bool {
        match self
            .registry
            .port_status(dpid, self.conn_id, status, self.max_ports)
        {
            PortUpdate::Applied => true,
            PortUpdate::Ignored => false,
            PortUpdate::OverLimit => {
                self.ports_ignored += 1;
                // The first, then every thousandth: a port storm must not
                // become a log storm.
                if self.ports_ignored % 1000 == 1 {
                    warn!(
                        port = status.desc.port_no,
                        max_ports = self.max_ports,
                        ignored = self.ports_ignored,
                        "switch has more ports than the limit; new port ignored"
                    );
                }
                false
            }
        }
    }

    /// Hands a run of the switch's messages, in order, to the core: one
    /// queue operation per run, not per message.
    async fn send_to_core(&mut self, event: CoreEvent) {
        if self.core.send(event).await.is_err() {
            self.session
                .close(CloseReason::Requested("controller shutting down".into()));
        }
    }

    async fn finish(mut self) {
        // Let the final bytes (e.g. HELLO_FAILED) reach the peer, then FIN.
        self.flush_session();
        self.writer.close();
        let abort = self.flusher.abort_handle();
        if tokio::time::timeout(CLOSE_GRACE, &mut self.flusher)
            .await
            .is_err()
        {
            abort.abort();
        }
        self.writer.shutdown();
        if let Some(dpid) = self.dpid {
            if self.set_aside {
                self.registry.drop_set_aside(dpid, self.conn_id);
            } else if self.registry.remove_if_current(dpid, self.conn_id) {
                let _ = self
                    .core
                    .send(CoreEvent::SwitchDown {
                        dpid,
                        conn_id: self.conn_id,
                    })
                    .await;
                // The connection this one replaced, if it is still there,
                // is the switch's again.
                if let Some(previous) = self.registry.take_set_aside(dpid) {
                    let _ = previous.cmd.try_send(SwitchCmd::Restore);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
