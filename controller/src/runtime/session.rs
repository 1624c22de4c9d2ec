//! The per-switch OpenFlow session as a sans-IO state machine.
//!
//! The tokio driver feeds it bytes ([`Session::handle_bytes`]) and timer
//! wake-ups ([`Session::handle_timeout`]); it answers with bytes to write
//! ([`Session::poll_transmit`]) and events ([`Session::poll_event`]). No
//! sockets and no clock live here, so every path is unit-tested with fake
//! time and fake bytes.
//!
//! Lifecycle: HELLO negotiation (version bitmaps, OF spec 1.3.5 §6.3.1) →
//! FEATURES → SET_CONFIG → the sync dumps the reconciler needs (port desc,
//! desc, all flows, group desc, meter config), closed by a BARRIER →
//! [`SessionEvent::Ready`]. The dumps are optional: a switch that answers
//! the barrier but not a dump (cbench answers only desc stats), or answers
//! nothing within [`SessionConfig::sync_timeout`], becomes ready with what
//! is known ([`SwitchSync::unknown`]). Asynchronous messages that arrive
//! before that (packet-ins from the first millisecond) are held and passed
//! up right after Ready; a switch that sends more of them than the session
//! holds before answering its dumps is taken as one that does not answer
//! them. Afterwards asynchronous messages are
//! passed up, requests made through [`Session::request`] are matched to
//! their replies by xid (multipart replies reassembled), and echo
//! keepalives run both ways.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use flowgate_openflow::{
    self as of, error_type, frame_len, DecodeError, ErrorMsg, FlowStatsRequest, Header, Hello,
    Message, MultipartReplyBody, MultipartRequest, MultipartRequestBody, SwitchConfig,
};

/// Xids the session allocates for its own requests have the top bit set, so
/// they never collide with xids the runtime picks for flow-mods.
const SESSION_XID_BASE: u32 = 0x8000_0000;
/// `flags` bit of a multipart reply that says more parts follow.
const REPLY_MORE: u16 = 1;
/// OFPET_HELLO_FAILED code: no common version.
const OFPHFC_INCOMPATIBLE: u16 = 0;
/// Versions Flowgate speaks, highest preferred. OpenFlow 1.0 switches get
/// basic forwarding only (see `flowgate_openflow::of10`).
pub const SUPPORTED_VERSIONS: &[u8] = &[of::OFP_VERSION_1_3, of::OFP_VERSION_1_0];

/// Encodes `message` in the dialect of `version`; false (nothing written)
/// if OpenFlow 1.0 can not express it or it is too long for any version.
pub fn encode_for(version: u8, xid: u32, message: &Message, out: &mut BytesMut) -> bool {
    encoded(if version == of::OFP_VERSION_1_0 {
        of::of10::encode(xid, message, out)
    } else {
        of::encode(xid, message, out)
    })
}

/// Whether an encoder appended its message; logs why not (it appended
/// nothing then).
pub fn encoded(result: Result<(), of::EncodeError>) -> bool {
    match result {
        Ok(()) => true,
        Err(e @ of::EncodeError::Unsupported(_)) => {
            tracing::debug!(error = %e, "not sent to an OpenFlow 1.0 switch");
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "message dropped: it cannot be encoded");
            false
        }
    }
}

/// Sets the `buffer_id` of an encoded FLOW_MOD (header first) of wire
/// `version`: cached encodings are re-sent with the buffer of the packet-in
/// they answer. Its place: after header, cookie, cookie mask, table,
/// command, timeouts and priority in 1.3 (byte 32, spec 7.3.4.1); after
/// header, 40-byte match, cookie, command, timeouts and priority in 1.0
/// (byte 64). A buffer too short to hold it is left alone.
pub fn set_flow_mod_buffer_id(version: u8, flow_mod: &mut [u8], buffer_id: u32) {
    let at = if version == of::OFP_VERSION_1_0 {
        64
    } else {
        32
    };
    if let Some(field) = flow_mod.get_mut(at..at + 4) {
        field.copy_from_slice(&buffer_id.to_be_bytes());
    }
}

/// Tunables of one session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Send an ECHO_REQUEST after this long without hearing from the switch.
    pub echo_interval: Duration,
    /// Declare the switch dead after this long without any bytes from it.
    pub dead_after: Duration,
    /// The handshake (HELLO to Ready) must finish within this time.
    pub handshake_timeout: Duration,
    /// A request unanswered for this long fails with [`RequestError::Timeout`].
    pub request_timeout: Duration,
    /// `miss_send_len` sent in SET_CONFIG.
    pub miss_send_len: u16,
    /// A sync dump still unanswered this long after the last sync reply
    /// (or the requests, if none came) is given up: the switch becomes
    /// ready without it. The barrier after the dumps usually ends the wait
    /// sooner; this covers switches that answer neither.
    pub sync_timeout: Duration,
    /// Most asynchronous messages held while the switch is not ready. One
    /// more during the sync dumps makes the switch ready with what is known
    /// (the dumps still unanswered are unknown); before FEATURES_REPLY it
    /// closes the connection, as a switch that does not do the handshake.
    pub held_limit: usize,
    /// Wire bytes one multipart reply may span, all its parts together.
    pub max_reply_bytes: usize,
    /// Parts one multipart reply may span (tiny parts cost more decoded
    /// than on the wire).
    pub max_reply_parts: usize,
    /// Wire bytes the session may hold for a connection at once: the parts
    /// of unfinished multipart replies and the messages held until ready.
    /// (The receive buffer holds at most one partial message besides: a
    /// frame is at most 65535 bytes.)
    pub max_buffered_bytes: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            echo_interval: Duration::from_secs(5),
            dead_after: Duration::from_secs(15),
            handshake_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            miss_send_len: of::OFPCML_NO_BUFFER,
            sync_timeout: Duration::from_secs(2),
            held_limit: 4096,
            max_reply_bytes: 32 << 20,
            max_reply_parts: 4096,
            max_buffered_bytes: 64 << 20,
        }
    }
}

/// What the switch reported during the sync phase, for the reconciler.
#[derive(Debug, Clone)]
pub struct SwitchSync {
    pub version: u8,
    pub features: of::SwitchFeatures,
    pub desc: Option<of::DescStats>,
    pub ports: Vec<of::Port>,
    pub flows: Vec<of::FlowStats>,
    pub groups: Vec<of::GroupDesc>,
    pub meters: Vec<of::MeterConfig>,
    /// Dumps the switch did not answer (or refused, for flows): what they
    /// would list is unknown, not empty.
    pub unknown: Vec<SyncDump>,
}

/// One of the dumps of the sync phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncDump {
    PortDesc,
    Desc,
    Flows,
    Groups,
    Meters,
}

impl SyncDump {
    fn request(self) -> MultipartRequestBody {
        match self {
            SyncDump::PortDesc => MultipartRequestBody::PortDesc,
            SyncDump::Desc => MultipartRequestBody::Desc,
            SyncDump::Flows => MultipartRequestBody::Flow(FlowStatsRequest {
                table_id: of::OFPTT_ALL,
                out_port: of::port_no::ANY,
                out_group: of::OFPG_ANY,
                cookie: 0,
                cookie_mask: 0,
                match_: of::Match::default(),
            }),
            SyncDump::Groups => MultipartRequestBody::GroupDesc,
            SyncDump::Meters => MultipartRequestBody::MeterConfig {
                meter_id: of::OFPM_ALL,
            },
        }
    }

    /// Whether an error reply means "none of these": a switch without
    /// groups or meters refuses those dumps.
    fn refused_means_none(self) -> bool {
        matches!(self, SyncDump::Groups | SyncDump::Meters)
    }
}

/// Why a request made through [`Session::request`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// The switch answered with an OpenFlow ERROR.
    Switch {
        err_type: u16,
        code: u16,
    },
    Timeout,
    /// The session closed before the reply arrived.
    Closed,
}

/// Something the driver must act on.
#[derive(Debug)]
pub enum SessionEvent {
    /// Handshake and sync finished: the switch can be programmed.
    Ready(Box<SwitchSync>),
    /// A run of asynchronous messages (PACKET_IN, PORT_STATUS, FLOW_REMOVED,
    /// an ERROR or BARRIER_REPLY answering a runtime-chosen xid, ...), in
    /// order, to be taken with [`Session::take_messages`]. Consecutive
    /// messages share one vector (up to [`RUN_LEN`]) that goes to the core
    /// whole: a read's packet-ins are not moved message by message.
    Messages,
    /// The answer to a request made with [`Session::request`].
    Reply {
        token: u64,
        result: Result<Message, RequestError>,
    },
    /// The session is over; the driver closes the socket.
    Closed { reason: CloseReason },
}

/// Why a session ended; the driver logs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// HELLO negotiation found no common version (OFPET_HELLO_FAILED sent).
    NoCommonVersion {
        offered: Vec<u8>,
    },
    /// The stream could not be framed or the first message was not HELLO.
    Protocol(String),
    /// Nothing heard from the switch within `dead_after`.
    EchoTimeout,
    HandshakeTimeout,
    /// The driver asked to close (replaced by a newer connection, shutdown).
    Requested(String),
    /// The switch made the session hold more than its limits allow (see
    /// [`SessionConfig::max_reply_bytes`] and the fields after it).
    LimitExceeded(String),
    /// The switch closed the connection or the socket failed.
    Peer(String),
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::NoCommonVersion { offered } => write!(
                f,
                "HELLO_FAILED: no common OpenFlow version (switch offers {}, Flowgate speaks {})",
                version_list(offered),
                version_list(SUPPORTED_VERSIONS)
            ),
            CloseReason::Protocol(why) => write!(f, "protocol error: {why}"),
            CloseReason::EchoTimeout => write!(f, "switch stopped answering echo requests"),
            CloseReason::HandshakeTimeout => write!(f, "handshake did not complete in time"),
            CloseReason::Requested(why) => write!(f, "closed by controller: {why}"),
            CloseReason::LimitExceeded(why) => write!(f, "limit exceeded: {why}"),
            CloseReason::Peer(why) => write!(f, "{why}"),
        }
    }
}

/// Largest HELLO accepted: a version bitmap element fits many times over.
const MAX_HELLO_LEN: usize = 1024;

/// Checks the header of the first message once 8 bytes are in: it must be a
/// HELLO of a known OpenFlow version (1.0 to 1.5) and of plausible length.
fn check_first_header(buf: &[u8]) -> Result<(), String> {
    let Some(header) = buf.get(..8) else {
        return Ok(());
    };
    let (version, msg_type) = (header[0], header[1]);
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if !(1..=6).contains(&version) {
        return Err(format!(
            "not OpenFlow: first byte {version:#04x} is no OpenFlow version"
        ));
    }
    if msg_type != 0 {
        return Err(format!("expected HELLO first, got message type {msg_type}"));
    }
    if !(8..=MAX_HELLO_LEN).contains(&length) {
        return Err(format!("implausible HELLO length {length}"));
    }
    Ok(())
}

fn version_list(versions: &[u8]) -> String {
    let names: Vec<String> = versions.iter().map(|v| version_name(*v)).collect();
    format!("[{}]", names.join(", "))
}

/// "1.3" for wire version 4, and so on.
pub fn version_name(version: u8) -> String {
    match version {
        1 => "1.0".into(),
        2 => "1.1".into(),
        3 => "1.2".into(),
        4 => "1.3".into(),
        5 => "1.4".into(),
        6 => "1.5".into(),
        v => format!("wire {v}"),
    }
}

#[derive(Debug)]
enum State {
    AwaitHello,
    AwaitFeatures,
    Syncing(Box<SyncProgress>),
    Ready,
    Closed,
}

#[derive(Debug)]
struct SyncProgress {
    sync: SwitchSync,
    /// Dumps not answered yet, by xid.
    waiting: Vec<(u32, SyncDump)>,
    /// When to give up on the dumps still waiting.
    deadline: Instant,
}

/// Who is waiting for the reply to an xid.
#[derive(Debug)]
enum Pending {
    Features,
    /// One of the sync dumps; replies fill the [`SwitchSync`].
    Sync(SyncDump),
    /// The barrier closing the sync dumps.
    SyncBarrier,
    Echo,
    User {
        token: u64,
        deadline: Instant,
    },
}

#[derive(Debug)]
struct Outstanding {
    pending: Pending,
    /// Parts of a multipart reply received so far (REPLY_MORE).
    parts: Option<MultipartReplyBody>,
    /// How many parts, and their wire bytes (counted in
    /// [`Session::buffered`] until the reply completes).
    part_count: usize,
    part_bytes: usize,
}

/// Most messages in one [`SessionEvent::Messages`] run: a run's vector is
/// allocated at this size (8.7 KB), which bounds what a connection holds and
/// the core's work per event.
pub const RUN_LEN: usize = 64;

/// One switch connection's protocol state.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    state: State,
    version: u8,
    rx: BytesMut,
    tx: BytesMut,
    events: VecDeque<SessionEvent>,
    /// The runs of the queued [`SessionEvent::Messages`], in order.
    runs: VecDeque<Vec<(u32, Message)>>,
    /// A run vector given back empty ([`Session::recycle_run`]), for reuse.
    spare_run: Option<Vec<(u32, Message)>>,
    outstanding: HashMap<u32, Outstanding>,
    next_xid: u32,
    started: Instant,
    last_rx: Instant,
    echo_sent: bool,
    /// Ports from an OpenFlow 1.0 FEATURES_REPLY (1.3 has a port-desc dump).
    of10_ports: Vec<of::Port>,
    /// The switch's FEATURES_REPLY, once it came (for [`Session::resync`]).
    features: Option<of::SwitchFeatures>,
    /// Asynchronous messages that arrived before the switch was ready, in
    /// order; passed up right after [`SessionEvent::Ready`].
    held: Vec<(u32, Message)>,
    /// Wire bytes of `held`.
    held_bytes: usize,
    /// Wire bytes of unfinished multipart replies, all requests together.
    reply_bytes: usize,
}

impl Session {
    /// A new session; the HELLO is queued for transmission immediately.
    pub fn new(now: Instant, config: SessionConfig) -> Self {
        let mut session = Session {
            config,
            state: State::AwaitHello,
            version: of::OFP_VERSION_1_3,
            rx: BytesMut::with_capacity(64 * 1024),
            tx: BytesMut::with_capacity(64 * 1024),
            events: VecDeque::new(),
            runs: VecDeque::new(),
            spare_run: None,
            outstanding: HashMap::new(),
            next_xid: SESSION_XID_BASE,
            started: now,
            last_rx: now,
            echo_sent: false,
            of10_ports: Vec::new(),
            features: None,
            held: Vec::new(),
            held_bytes: 0,
            reply_bytes: 0,
        };
        let hello = Message::Hello(Hello::with_versions(SUPPORTED_VERSIONS));
        let xid = session.alloc_xid();
        encode_for(of::OFP_VERSION_1_3, xid, &hello, &mut session.tx);
        session
    }

    pub fn is_ready(&self) -> bool {
        matches!(self.state, State::Ready)
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// The negotiated OpenFlow wire version.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// Feeds bytes read from the socket. One read is not one message: bytes
    /// are buffered until a whole message is framed.
    pub fn handle_bytes(&mut self, now: Instant, data: &[u8]) {
        self.rx.extend_from_slice(data);
        self.handle_received(now);
    }

    /// The receive buffer: a driver may read into its spare capacity
    /// directly (saving a copy of every byte) and then call
    /// [`Session::handle_received`], instead of [`Session::handle_bytes`].
    pub fn recv_buffer(&mut self) -> &mut BytesMut {
        &mut self.rx
    }

    /// Handles the bytes a driver added to [`Session::recv_buffer`].
    pub fn handle_received(&mut self, now: Instant) {
        if self.is_closed() {
            return;
        }
        self.last_rx = now;
        self.echo_sent = false;
        if matches!(self.state, State::AwaitHello) {
            // Judge the first header before buffering its body, so a peer
            // that is not speaking OpenFlow (an HTTP probe reads as version
            // 0x47, length 21536) is dropped at once.
            if let Err(why) = check_first_header(&self.rx) {
                self.close(CloseReason::Protocol(why));
                return;
            }
        }
        loop {
            let len = match frame_len(&self.rx) {
                Ok(Some(len)) => len,
                Ok(None) => break,
                Err(e) => {
                    self.close(CloseReason::Protocol(format!("unframeable stream: {e}")));
                    return;
                }
            };
            let frame = self.rx.split_to(len).freeze();
            self.handle_frame(now, frame);
            if self.is_closed() {
                return;
            }
        }
    }

    /// Advances timers: echo keepalive, dead-switch detection, request and
    /// handshake timeouts.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_closed() {
            return;
        }
        if !self.is_ready() && now >= self.started + self.config.handshake_timeout {
            self.close(CloseReason::HandshakeTimeout);
            return;
        }
        if matches!(&self.state, State::Syncing(p) if now >= p.deadline) {
            self.finish_sync();
        }
        if now >= self.last_rx + self.config.dead_after {
            self.close(CloseReason::EchoTimeout);
            return;
        }
        if self.is_ready() && !self.echo_sent && now >= self.last_rx + self.config.echo_interval {
            self.echo_sent = true;
            self.send_tracked(Message::EchoRequest(Bytes::new()), Pending::Echo);
        }
        let expired: Vec<u32> = self
            .outstanding
            .iter()
            .filter_map(|(xid, o)| match o.pending {
                Pending::User { deadline, .. } if deadline <= now => Some(*xid),
                _ => None,
            })
            .collect();
        for xid in expired {
            if let Some(Outstanding {
                pending: Pending::User { token, .. },
                ..
            }) = self.outstanding.remove(&xid)
            {
                self.events.push_back(SessionEvent::Reply {
                    token,
                    result: Err(RequestError::Timeout),
                });
            }
        }
    }

    /// When the driver should call [`Session::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_closed() {
            return None;
        }
        let mut next = self.last_rx + self.config.dead_after;
        match &self.state {
            State::Ready if !self.echo_sent => {
                next = next.min(self.last_rx + self.config.echo_interval)
            }
            State::Ready => {}
            State::Syncing(progress) => next = next.min(progress.deadline),
            _ => next = next.min(self.started + self.config.handshake_timeout),
        }
        for o in self.outstanding.values() {
            if let Pending::User { deadline, .. } = o.pending {
                next = next.min(deadline);
            }
        }
        Some(next)
    }

    /// Bytes to write to the socket, all queued messages in one buffer so the
    /// driver makes one write per batch.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if self.tx.is_empty() {
            None
        } else {
            Some(self.tx.split().freeze())
        }
    }

    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// The run a [`SessionEvent::Messages`] announced.
    pub fn take_messages(&mut self) -> Vec<(u32, Message)> {
        self.runs.pop_front().unwrap_or_default()
    }

    /// Gives back a run vector the caller emptied (a lone message's run),
    /// so the next run does not allocate.
    pub fn recycle_run(&mut self, mut run: Vec<(u32, Message)>) {
        run.clear();
        if run.capacity() == RUN_LEN {
            self.spare_run = Some(run);
        }
    }

    /// At the bound of held messages, a syncing switch becomes ready with
    /// what is known (so messages go straight up again), and one that has
    /// not answered FEATURES is closed.
    fn check_held_bound(&mut self) {
        if self.held.len() < self.config.held_limit {
            return;
        }
        if matches!(self.state, State::Syncing(_)) {
            tracing::info!(
                held = self.held.len(),
                "switch sent this many messages before answering its sync dumps; ready with what is known"
            );
            self.finish_sync();
        } else {
            let why = format!("{} messages before FEATURES_REPLY", self.held.len());
            self.close(CloseReason::Protocol(why));
        }
    }

    /// Queues an asynchronous message of `len` wire bytes, extending the
    /// last run of them; held until the switch is ready.
    fn push_message(&mut self, xid: u32, message: Message, len: u16) {
        if !self.is_ready() {
            self.check_held_bound();
            if self.is_closed() {
                return;
            }
            if !self.is_ready() {
                self.held_bytes += usize::from(len);
                if let Err(why) = self.check_buffered() {
                    self.close(CloseReason::LimitExceeded(why));
                    return;
                }
                self.held.push((xid, message));
                return;
            }
        }
        let open = matches!(self.events.back(), Some(SessionEvent::Messages))
            && self.runs.back().is_some_and(|run| run.len() < RUN_LEN);
        if !open {
            let run = self
                .spare_run
                .take()
                .unwrap_or_else(|| Vec::with_capacity(RUN_LEN));
            self.runs.push_back(run);
            self.events.push_back(SessionEvent::Messages);
        }
        if let Some(run) = self.runs.back_mut() {
            run.push((xid, message));
        }
    }

    /// Queues a request whose reply (multipart parts reassembled, or the
    /// switch's ERROR) comes back as [`SessionEvent::Reply`] with `token`.
    pub fn request(&mut self, now: Instant, message: Message, token: u64) {
        if self.is_closed() {
            self.events.push_back(SessionEvent::Reply {
                token,
                result: Err(RequestError::Closed),
            });
            return;
        }
        let deadline = now + self.config.request_timeout;
        self.send_tracked(message, Pending::User { token, deadline });
    }

    /// Queues bytes of already-encoded messages (the runtime's flow-mods).
    pub fn send_raw(&mut self, encoded: &[u8]) {
        if !self.is_closed() {
            self.tx.extend_from_slice(encoded);
        }
    }

    /// Ends the session; pending requests fail with [`RequestError::Closed`].
    pub fn close(&mut self, reason: CloseReason) {
        if self.is_closed() {
            return;
        }
        self.state = State::Closed;
        // What the peer made us hold goes now, not when the driver drops
        // the session.
        self.held = Vec::new();
        self.held_bytes = 0;
        self.reply_bytes = 0;
        self.rx = BytesMut::new();
        for (_, o) in std::mem::take(&mut self.outstanding) {
            if let Pending::User { token, .. } = o.pending {
                self.events.push_back(SessionEvent::Reply {
                    token,
                    result: Err(RequestError::Closed),
                });
            }
        }
        self.events.push_back(SessionEvent::Closed { reason });
    }

    fn alloc_xid(&mut self) -> u32 {
        let xid = self.next_xid;
        self.next_xid = SESSION_XID_BASE | (self.next_xid.wrapping_add(1) & !SESSION_XID_BASE);
        xid
    }

    /// Sends `message` in the negotiated dialect; `None` if it has no form
    /// there (a 1.3-only request to a 1.0 switch).
    fn send(&mut self, message: &Message) -> Option<u32> {
        let xid = self.alloc_xid();
        encode_for(self.version, xid, message, &mut self.tx).then_some(xid)
    }

    /// Sends a request whose reply goes to `pending`; its xid, or `None` if
    /// the dialect can not express it (then answered at once with an error).
    fn send_tracked(&mut self, message: Message, pending: Pending) -> Option<u32> {
        let Some(xid) = self.send(&message) else {
            // Answered as the switch would answer a request it can't parse.
            let error = Message::Error(ErrorMsg::Standard {
                err_type: error_type::BAD_REQUEST,
                code: of::error_code::bad_request::BAD_TYPE,
                data: Bytes::new(),
            });
            let now = self.last_rx;
            self.complete(now, pending, error);
            return None;
        };
        self.outstanding.insert(
            xid,
            Outstanding {
                pending,
                parts: None,
                part_count: 0,
                part_bytes: 0,
            },
        );
        Some(xid)
    }

    fn handle_frame(&mut self, now: Instant, mut frame: Bytes) {
        let decoded =
            if self.version == of::OFP_VERSION_1_0 && !matches!(self.state, State::AwaitHello) {
                if frame.get(1) == Some(&of::of10::msg_type::FEATURES_REPLY) {
                    if let Ok((_, ports)) = of::of10::decode_features_reply(&frame) {
                        self.of10_ports = ports;
                    }
                }
                of::of10::decode_shared(&mut frame)
            } else {
                of::decode_shared(&mut frame)
            };
        if matches!(self.state, State::AwaitHello) {
            self.handle_hello(decoded);
            return;
        }
        match decoded {
            Ok((header, message)) => self.handle_message(now, header, message),
            Err(e) => self.reject(&frame, &e),
        }
    }

    /// A well-framed message we cannot decode gets OFPET_BAD_REQUEST carrying
    /// its first 64 bytes (spec 7.4.4); the connection stays up.
    fn reject(&mut self, frame: &[u8], error: &DecodeError) {
        tracing::debug!(%error, "undecodable message from switch");
        let (err_type, code) = error.ofp_error();
        let data = Bytes::copy_from_slice(&frame[..frame.len().min(64)]);
        // Framing guarantees at least a full header.
        let xid = frame
            .get(4..8)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or(0);
        let error = Message::Error(ErrorMsg::Standard {
            err_type,
            code,
            data,
        });
        encode_for(self.version, xid, &error, &mut self.tx);
    }

    fn handle_hello(&mut self, decoded: Result<(Header, Message), DecodeError>) {
        let (header, hello) = match decoded {
            Ok((header, Message::Hello(hello))) => (header, hello),
            Ok((_, other)) => {
                let why = format!("expected HELLO, got message type {}", other.msg_type());
                self.close(CloseReason::Protocol(why));
                return;
            }
            Err(e) => {
                self.close(CloseReason::Protocol(format!("bad first message: {e}")));
                return;
            }
        };
        let offered = hello.versions().unwrap_or_else(|| vec![header.version]);
        let common = match hello.versions() {
            Some(bitmap) => SUPPORTED_VERSIONS
                .iter()
                .copied()
                .find(|v| bitmap.contains(v)),
            // Without a bitmap the negotiated version is the lower of the two
            // header versions, which must be one we speak.
            None => {
                let ours = SUPPORTED_VERSIONS.iter().copied().max().unwrap_or(0);
                Some(ours.min(header.version)).filter(|v| SUPPORTED_VERSIONS.contains(v))
            }
        };
        let Some(version) = common else {
            let text = format!(
                "Flowgate speaks OpenFlow {}",
                version_list(SUPPORTED_VERSIONS)
            );
            let error = Message::Error(ErrorMsg::Standard {
                err_type: error_type::HELLO_FAILED,
                code: OFPHFC_INCOMPATIBLE,
                data: Bytes::from(text),
            });
            // The error goes out in the peer's version so it can read it.
            encoded(of::encode_with_version(
                header.version,
                header.xid,
                &error,
                &mut self.tx,
            ));
            self.close(CloseReason::NoCommonVersion { offered });
            return;
        };
        self.version = version;
        self.state = State::AwaitFeatures;
        self.send_tracked(Message::FeaturesRequest, Pending::Features);
    }

    fn handle_message(&mut self, now: Instant, header: Header, message: Message) {
        match message {
            Message::EchoRequest(data) => {
                encode_for(
                    self.version,
                    header.xid,
                    &Message::EchoReply(data),
                    &mut self.tx,
                );
                return;
            }
            Message::Hello(_) => return,
            _ => {}
        }
        // Asynchronous messages answer no request, whatever their xid.
        let is_async = matches!(
            message,
            Message::PacketIn(_) | Message::PortStatus(_) | Message::FlowRemoved(_)
        );
        let entry = (!is_async)
            .then(|| self.outstanding.remove(&header.xid))
            .flatten();
        let Some(mut entry) = entry else {
            self.push_message(header.xid, message, header.length);
            return;
        };
        // Reassemble multipart replies until the last part.
        let message = match message {
            Message::MultipartReply(reply) if reply.flags & REPLY_MORE != 0 => {
                if let Err(why) = self.count_part(&mut entry, header.length) {
                    // Put back, so closing fails its request too.
                    self.outstanding.insert(header.xid, entry);
                    self.close(CloseReason::LimitExceeded(why));
                    return;
                }
                match entry.parts.as_mut() {
                    Some(parts) => {
                        if let Err(e) = parts.merge(reply.body) {
                            tracing::warn!(error = ?e, "inconsistent multipart reply parts");
                        }
                    }
                    None => entry.parts = Some(reply.body),
                }
                if matches!(entry.pending, Pending::Sync(_)) {
                    self.sync_progress(now);
                }
                self.outstanding.insert(header.xid, entry);
                return;
            }
            Message::MultipartReply(mut reply) => {
                self.reply_bytes -= entry.part_bytes;
                if let Some(mut parts) = entry.parts.take() {
                    if let Err(e) = parts.merge(reply.body) {
                        tracing::warn!(error = ?e, "inconsistent multipart reply parts");
                    }
                    reply.body = parts;
                }
                Message::MultipartReply(reply)
            }
            other => other,
        };
        self.complete(now, entry.pending, message);
    }

    /// Counts one more part of `entry`'s multipart reply against the
    /// limits; why not, if it breaks one.
    fn count_part(&mut self, entry: &mut Outstanding, len: u16) -> Result<(), String> {
        let len = usize::from(len);
        entry.part_count += 1;
        entry.part_bytes += len;
        self.reply_bytes += len;
        let limits = &self.config;
        if entry.part_count > limits.max_reply_parts {
            return Err(format!(
                "a multipart reply of more than {} parts",
                limits.max_reply_parts
            ));
        }
        if entry.part_bytes > limits.max_reply_bytes {
            return Err(format!(
                "a multipart reply of more than {} bytes",
                limits.max_reply_bytes
            ));
        }
        self.check_buffered()
    }

    /// Whether what the session holds for this connection is within
    /// [`SessionConfig::max_buffered_bytes`].
    fn check_buffered(&self) -> Result<(), String> {
        let buffered = self.reply_bytes + self.held_bytes;
        if buffered > self.config.max_buffered_bytes {
            return Err(format!(
                "{buffered} bytes of unfinished replies and held messages (limit {})",
                self.config.max_buffered_bytes
            ));
        }
        Ok(())
    }

    fn complete(&mut self, now: Instant, pending: Pending, message: Message) {
        match pending {
            Pending::Echo => {}
            Pending::User { token, .. } => {
                let result = match message {
                    Message::Error(ErrorMsg::Standard { err_type, code, .. }) => {
                        Err(RequestError::Switch { err_type, code })
                    }
                    Message::Error(ErrorMsg::Experimenter { exp_type, .. }) => {
                        Err(RequestError::Switch {
                            err_type: error_type::EXPERIMENTER,
                            code: exp_type,
                        })
                    }
                    other => Ok(other),
                };
                self.events.push_back(SessionEvent::Reply { token, result });
            }
            Pending::Features => match message {
                Message::FeaturesReply(features) => self.start_sync(now, features),
                other => self.close(CloseReason::Protocol(format!(
                    "expected FEATURES_REPLY, got message type {}",
                    other.msg_type()
                ))),
            },
            Pending::Sync(dump) => self.record_sync(now, dump, message),
            Pending::SyncBarrier => self.finish_sync(),
        }
    }

    /// Runs the sync dumps again on a ready session, ending in a new
    /// [`SessionEvent::Ready`]: a connection that was set aside (another
    /// connection claimed its dpid) and is the switch's again reports what
    /// the switch holds now. False if the session is not ready.
    pub fn resync(&mut self, now: Instant) -> bool {
        match (&self.state, self.features.clone()) {
            (State::Ready, Some(features)) => {
                self.start_sync(now, features);
                true
            }
            _ => false,
        }
    }

    fn start_sync(&mut self, now: Instant, features: of::SwitchFeatures) {
        self.features = Some(features.clone());
        let config = SwitchConfig {
            flags: 0,
            miss_send_len: self.config.miss_send_len,
        };
        self.send(&Message::SetConfig(config));
        // OpenFlow 1.0 reported its ports with the features and has no
        // groups or meters.
        let dumps: &[SyncDump] = if self.version == of::OFP_VERSION_1_0 {
            &[SyncDump::Desc, SyncDump::Flows]
        } else {
            &[
                SyncDump::PortDesc,
                SyncDump::Desc,
                SyncDump::Flows,
                SyncDump::Groups,
                SyncDump::Meters,
            ]
        };
        self.state = State::Syncing(Box::new(SyncProgress {
            sync: SwitchSync {
                version: self.version,
                features,
                desc: None,
                ports: std::mem::take(&mut self.of10_ports),
                flows: Vec::new(),
                groups: Vec::new(),
                meters: Vec::new(),
                unknown: Vec::new(),
            },
            waiting: Vec::new(),
            deadline: now + self.config.sync_timeout,
        }));
        for &dump in dumps {
            let request = Message::MultipartRequest(MultipartRequest {
                flags: 0,
                body: dump.request(),
            });
            let xid = self.send_tracked(request, Pending::Sync(dump));
            if let (Some(xid), State::Syncing(progress)) = (xid, &mut self.state) {
                progress.waiting.push((xid, dump));
            }
        }
        // A switch processes messages in order (spec 7.3.8): once the
        // barrier is answered, so is every dump it will ever answer.
        self.send_tracked(Message::BarrierRequest, Pending::SyncBarrier);
    }

    /// A sync reply (part) arrived: the switch is answering, so the wait
    /// for the rest starts again.
    fn sync_progress(&mut self, now: Instant) {
        if let State::Syncing(progress) = &mut self.state {
            progress.deadline = now + self.config.sync_timeout;
        }
    }

    fn record_sync(&mut self, now: Instant, dump: SyncDump, message: Message) {
        self.sync_progress(now);
        let State::Syncing(progress) = &mut self.state else {
            return;
        };
        progress.waiting.retain(|(_, d)| *d != dump);
        match message {
            Message::MultipartReply(reply) => match reply.body {
                MultipartReplyBody::PortDesc(ports) => progress.sync.ports = ports,
                MultipartReplyBody::Desc(desc) => progress.sync.desc = Some(desc),
                MultipartReplyBody::Flow(flows) => progress.sync.flows = flows,
                MultipartReplyBody::GroupDesc(groups) => progress.sync.groups = groups,
                MultipartReplyBody::MeterConfig(meters) => progress.sync.meters = meters,
                _ => progress.sync.unknown.push(dump),
            },
            Message::Error(_) if dump.refused_means_none() => {
                tracing::debug!(?dump, "sync dump refused by switch: none installed")
            }
            _ => progress.sync.unknown.push(dump),
        }
        if progress.waiting.is_empty() {
            self.finish_sync();
        }
    }

    /// Ends the sync phase with what is known: dumps still unanswered are
    /// unknown. Their requests and the barrier stay outstanding, so late
    /// replies are absorbed here instead of reaching the core. The
    /// messages held meanwhile follow [`SessionEvent::Ready`].
    fn finish_sync(&mut self) {
        let State::Syncing(mut progress) = std::mem::replace(&mut self.state, State::Ready) else {
            return;
        };
        let unanswered = progress.waiting.drain(..).map(|(_, dump)| dump);
        progress.sync.unknown.extend(unanswered);
        self.events
            .push_back(SessionEvent::Ready(Box::new(progress.sync)));
        self.held_bytes = 0;
        for (xid, message) in std::mem::take(&mut self.held) {
            // Ready now: nothing is held any more.
            self.push_message(xid, message, 0);
        }
    }
}

#[cfg(test)]
mod tests;
