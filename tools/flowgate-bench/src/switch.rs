//! One emulated switch: it does the handshake a real switch does (HELLO,
//! FEATURES, the sync dumps it answers, echo, barrier), reports when it is
//! ready, and then sends packet-ins for its hosts and counts the FLOW_MOD /
//! PACKET_OUT responses. OpenFlow 1.3 by default; shaped like the stock
//! tools on demand ([`SwitchKind`]): OpenFlow 1.0, buffered packets, only
//! description stats answered, packet-ins from the first millisecond.
//!
//! The protocol logic lives in [`SwitchLogic`] (no sockets, unit-tested);
//! [`run`] is the thin task that moves bytes for it. One task serves both
//! directions with non-blocking reads and writes, so the switch never stops
//! reading while the controller is still writing.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use flowgate_openflow::{self as of, msg_type, Hello, Message};
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::of10;
use crate::wire::{self, Handshake, Packet, PacketInTemplate, PORTS};

/// What the switches should be doing; the driver of the run moves it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Connected, handshake only.
    Idle,
    /// Send packet-ins and count responses.
    Run,
    /// Stop sending; keep counting the answers still on their way.
    Drain,
}

/// Counters one switch shares with the driver of the run.
#[derive(Debug, Default)]
pub struct SwitchStats {
    pub packet_ins: AtomicU64,
    pub responses: AtomicU64,
    /// FLOW_MODs that add a flow: flows installed.
    pub flows: AtomicU64,
    /// Packet-ins whose host a response named (`--verify` only).
    pub answered: AtomicU64,
}

/// What kind of switch to emulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwitchKind {
    pub handshake: Handshake,
    /// Packet-ins carry a buffer id (the host's index + 1).
    pub buffered: bool,
    /// Packet-ins start right after FEATURES_REPLY and are counted from
    /// then on, instead of once the controller has programmed the switch.
    pub early: bool,
    /// cbench's traffic: first a gratuitous ARP from one more host on
    /// port 2, then every packet from a host on port 1 to that one.
    pub learn_dst: bool,
}

/// Settings of one emulated switch.
#[derive(Debug, Clone)]
pub struct SwitchSpec {
    /// 0-based; it also makes the switch's host MACs unique.
    pub index: u16,
    pub dpid: u64,
    /// Distinct source MACs, used round-robin.
    pub macs: u32,
    /// Most packet-ins awaiting a response: 1 is cbench's latency mode.
    pub window: u32,
    /// Track which packet-in each response answers, by host MAC.
    pub verify: bool,
    pub kind: SwitchKind,
}

/// Most packet-ins appended per write, so a wide window still interleaves
/// reads and writes.
const SEND_BURST: u32 = 256;
/// The host index of the learned destination (`learn_dst`): beyond any
/// host's, so nothing credits it.
const GATEWAY: u32 = 0xff_ffff;

/// The emulated switch's state, fed with the controller's bytes.
#[derive(Debug)]
pub struct SwitchLogic {
    spec: SwitchSpec,
    template: Arc<PacketInTemplate>,
    /// Ready to count: the controller has programmed the switch (its
    /// first FLOW_MOD or PACKET_OUT), or, for an early switch, FEATURES
    /// was answered.
    pub ready: bool,
    next: u64,
    outstanding: u32,
    /// Per host: packet-ins not yet named by a response (`verify`).
    unanswered: Vec<u32>,
}

/// What one batch of controller bytes amounted to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    pub responses: u64,
    pub flows: u64,
    pub answered: u64,
    /// The batch made the switch ready.
    pub became_ready: bool,
}

impl SwitchLogic {
    pub fn new(spec: SwitchSpec, template: Arc<PacketInTemplate>) -> Self {
        let unanswered = if spec.verify {
            vec![0; spec.macs as usize]
        } else {
            Vec::new()
        };
        SwitchLogic {
            spec,
            template,
            ready: false,
            next: 0,
            outstanding: 0,
            unanswered,
        }
    }

    /// The switch's HELLO: OpenFlow 1.3 offered by bitmap, or a plain 1.0
    /// header as cbench sends it.
    pub fn hello(version: u8) -> Vec<u8> {
        let mut out = Vec::new();
        if version == of10::VERSION {
            of10::message(of10::msg_type::HELLO, 0, &[], &mut out);
        } else {
            let mut hello = BytesMut::new();
            let message = Message::Hello(Hello::with_versions(&[of::OFP_VERSION_1_3]));
            of::encode(0, &message, &mut hello).expect("the message fits");
            out.extend_from_slice(&hello);
        }
        out
    }

    fn version(&self) -> u8 {
        self.spec.kind.handshake.version
    }

    /// Handles every whole message in `buf`, appending answers (echo,
    /// barrier, handshake) to `out`; returns the bytes consumed, or an error
    /// if the stream can not be framed. Responses count only once the
    /// switch is ready and `counting`.
    pub fn handle(
        &mut self,
        buf: &[u8],
        out: &mut Vec<u8>,
        counting: bool,
    ) -> io::Result<(usize, Batch)> {
        let mut batch = Batch::default();
        let was_ready = self.ready;
        let version = self.version();
        let used = wire::for_each_frame(buf, |t, frame| match t {
            msg_type::FLOW_MOD | msg_type::PACKET_OUT => {
                self.ready = true;
                if counting {
                    batch.responses += 1;
                    if t == msg_type::FLOW_MOD && wire::is_flow_add(version, frame) {
                        batch.flows += 1;
                    }
                    if self.spec.verify && self.credit(t, frame) {
                        batch.answered += 1;
                    }
                }
            }
            _ => {
                let kind = self.spec.kind;
                if wire::answer(kind.handshake, self.spec.dpid, t, frame, out).is_some()
                    && t == msg_type::FEATURES_REQUEST
                    && kind.early
                {
                    self.ready = true;
                    if kind.learn_dst {
                        self.teach_destination(out);
                    }
                }
            }
        })
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "unframeable stream"))?;
        let answered = if self.spec.verify {
            batch.answered
        } else {
            batch.responses
        };
        self.outstanding = self
            .outstanding
            .saturating_sub(answered.min(u64::from(u32::MAX)) as u32);
        batch.became_ready = self.ready && !was_ready;
        Ok((used, batch))
    }

    /// Marks the packet-in of the host a response names (by the buffer it
    /// releases, else by MAC) as answered.
    fn credit(&mut self, t: u8, frame: &[u8]) -> bool {
        let version = self.version();
        let by_buffer = wire::response_buffer(version, t, frame)
            .filter(|b| *b != of::NO_BUFFER)
            .map(|b| b.wrapping_sub(1));
        let by_mac = || {
            wire::response_mac(version, t, frame).and_then(|m| wire::host_index(self.spec.index, m))
        };
        let Some(index) = by_buffer.or_else(by_mac) else {
            return false;
        };
        match self.unanswered.get_mut(index as usize) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    /// cbench's first packet-in: a gratuitous ARP reply from the host every
    /// later packet goes to, so the controller knows where it is.
    fn teach_destination(&self, out: &mut Vec<u8>) {
        let gateway = wire::host_mac(self.spec.index, GATEWAY);
        let packet = Packet {
            in_port: 2,
            src: gateway,
            dst: [0xff; 6],
            buffer_id: of::NO_BUFFER,
        };
        self.template.write(out, 0, packet);
    }

    /// The packet host `index` sends.
    fn packet(&self, index: u32) -> Packet {
        let kind = self.spec.kind;
        let src = wire::host_mac(self.spec.index, index);
        let (in_port, dst) = if kind.learn_dst {
            (1, wire::host_mac(self.spec.index, GATEWAY))
        } else {
            let peer = (index + 1) % self.spec.macs;
            (1 + index % PORTS, wire::host_mac(self.spec.index, peer))
        };
        let buffer_id = if kind.buffered {
            index + 1
        } else {
            of::NO_BUFFER
        };
        Packet {
            in_port,
            src,
            dst,
            buffer_id,
        }
    }

    /// Appends as many packet-ins as the window allows (at most a burst);
    /// returns how many.
    pub fn fill(&mut self, out: &mut Vec<u8>) -> u64 {
        let room = self
            .spec
            .window
            .saturating_sub(self.outstanding)
            .min(SEND_BURST);
        for _ in 0..room {
            let index = (self.next % u64::from(self.spec.macs)) as u32;
            self.template
                .write(out, self.next as u32, self.packet(index));
            if let Some(n) = self.unanswered.get_mut(index as usize) {
                *n += 1;
            }
            self.next += 1;
        }
        self.outstanding += room;
        u64::from(room)
    }

    /// Forgets responses still owed from before counting started (setup
    /// messages must not open the window).
    pub fn start_counting(&mut self) {
        self.outstanding = 0;
        self.unanswered.iter_mut().for_each(|n| *n = 0);
    }

    pub fn can_send(&self) -> bool {
        self.outstanding < self.spec.window
    }

    /// Whether the switch sends packet-ins in `phase`: an early switch from
    /// the moment it is ready, others in the run phase.
    fn sends(&self, phase: Phase) -> bool {
        if self.spec.kind.early {
            self.ready && phase != Phase::Drain
        } else {
            phase == Phase::Run
        }
    }

    /// Whether responses count in `phase`: an early switch counts all.
    fn counts(&self, phase: Phase) -> bool {
        self.spec.kind.early || phase != Phase::Idle
    }
}

/// Runs one emulated switch until the connection fails or the task is
/// aborted. `ready` hears the switch's index once it is ready.
pub async fn run(
    controller: SocketAddr,
    spec: SwitchSpec,
    template: Arc<PacketInTemplate>,
    stats: Arc<SwitchStats>,
    mut phase: watch::Receiver<Phase>,
    ready: mpsc::UnboundedSender<(u16, Instant)>,
) -> io::Result<()> {
    let index = spec.index;
    let stream = TcpStream::connect(controller).await?;
    stream.set_nodelay(true)?;
    let early = spec.kind.early;
    let mut logic = SwitchLogic::new(spec.clone(), template);
    let mut out = SwitchLogic::hello(spec.kind.handshake.version);
    let mut written = 0;
    let mut inbuf = vec![0u8; 256 * 1024];
    let mut filled = 0;
    let mut current = *phase.borrow();
    loop {
        if logic.sends(current) && written == out.len() && logic.can_send() {
            out.clear();
            written = 0;
            let sent = logic.fill(&mut out);
            stats.packet_ins.fetch_add(sent, Ordering::Relaxed);
        }
        let interest = if written < out.len() {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        tokio::select! {
            ready_io = stream.ready(interest) => {
                let ready_io = ready_io?;
                if ready_io.is_readable() {
                    match stream.try_read(&mut inbuf[filled..]) {
                        Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "controller closed the connection")),
                        Ok(n) => {
                            filled += n;
                            if written == out.len() {
                                out.clear();
                                written = 0;
                            }
                            let counting = logic.counts(current);
                            let (used, batch) = logic.handle(&inbuf[..filled], &mut out, counting)?;
                            inbuf.copy_within(used..filled, 0);
                            filled -= used;
                            if filled == inbuf.len() {
                                inbuf.resize(inbuf.len() * 2, 0);
                            }
                            stats.responses.fetch_add(batch.responses, Ordering::Relaxed);
                            stats.flows.fetch_add(batch.flows, Ordering::Relaxed);
                            stats.answered.fetch_add(batch.answered, Ordering::Relaxed);
                            if batch.became_ready {
                                let _ = ready.send((index, Instant::now()));
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                }
                if ready_io.is_writable() && written < out.len() {
                    match stream.try_write(&out[written..]) {
                        Ok(n) => written += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            changed = phase.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let next = *phase.borrow();
                if current == Phase::Idle && next != Phase::Idle && !early {
                    logic.start_counting();
                }
                current = next;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::PacketInShape;
    use bytes::Bytes;
    use flowgate_openflow::{FlowMod, FlowModCommand, Match, Oxm, PacketInReason};

    const OWN: SwitchKind = SwitchKind {
        handshake: Handshake {
            version: 4,
            n_buffers: 0,
            desc_only: false,
        },
        buffered: false,
        early: false,
        learn_dst: false,
    };

    /// A cbench-shaped switch.
    const CBENCH: SwitchKind = SwitchKind {
        handshake: Handshake {
            version: 1,
            n_buffers: 256,
            desc_only: true,
        },
        buffered: true,
        early: true,
        learn_dst: true,
    };

    fn logic(window: u32, verify: bool) -> SwitchLogic {
        logic_of(OWN, window, verify)
    }

    fn logic_of(kind: SwitchKind, window: u32, verify: bool) -> SwitchLogic {
        let template = if kind.handshake.version == of10::VERSION {
            PacketInTemplate::of10()
        } else {
            PacketInTemplate::new(PacketInShape {
                cookie: 0,
                table_id: 0,
                reason: PacketInReason::NoMatch,
            })
        };
        SwitchLogic::new(
            SwitchSpec {
                index: 3,
                dpid: 4,
                macs: 10,
                window,
                verify,
                kind,
            },
            Arc::new(template),
        )
    }

    fn flow_mod_for(src: [u8; 6]) -> Vec<u8> {
        let mut out = BytesMut::new();
        let fm = FlowMod {
            cookie: 0,
            cookie_mask: 0,
            table_id: 0,
            command: FlowModCommand::Add,
            idle_timeout: 0,
            hard_timeout: 0,
            priority: 1,
            buffer_id: of::NO_BUFFER,
            out_port: of::port_no::ANY,
            out_group: of::OFPG_ANY,
            flags: 0,
            match_: Match::new().with(Oxm::EthSrc(of::MacAddr(src), None)),
            instructions: Vec::new(),
        };
        of::encode(7, &Message::FlowMod(fm), &mut out).unwrap();
        out.to_vec()
    }

    #[test]
    fn latency_mode_keeps_one_packet_in_outstanding() {
        let mut s = logic(1, false);
        let mut out = Vec::new();
        assert_eq!(s.fill(&mut out), 1);
        assert!(!s.can_send());
        assert_eq!(s.fill(&mut out), 0, "window full");
        // Two flow-mods in one read answer it; the extra does not open the
        // window wider than one.
        let mut two = flow_mod_for(wire::host_mac(3, 0));
        two.extend(flow_mod_for(wire::host_mac(3, 0)));
        let (used, batch) = s.handle(&two, &mut out, true).unwrap();
        assert_eq!((used, batch.responses), (two.len(), 2));
        assert_eq!(s.fill(&mut out), 1);
        assert_eq!(s.fill(&mut out), 0);
    }

    #[test]
    fn throughput_mode_fills_the_window_in_bursts() {
        let mut s = logic(1000, false);
        let mut out = Vec::new();
        assert_eq!(s.fill(&mut out), u64::from(SEND_BURST));
        let mut rest = 0;
        while s.can_send() {
            rest += s.fill(&mut out);
        }
        assert_eq!(rest + u64::from(SEND_BURST), 1000);
        assert_eq!(out.len(), 1000 * s.template.len());
    }

    #[test]
    fn macs_cycle_and_ports_stay_fixed() {
        let mut s = logic(25, false);
        let mut out = Vec::new();
        s.fill(&mut out);
        let mut seen = Vec::new();
        wire::for_each_frame(&out, |_, f| {
            let Ok((_, Message::PacketIn(p))) = of::decode(f) else {
                panic!("not a packet-in");
            };
            let index = wire::host_index(3, &p.data[6..12]).unwrap();
            assert_eq!(p.in_port(), Some(1 + index % PORTS));
            seen.push(index);
        })
        .unwrap();
        let want: Vec<u32> = (0..25).map(|i| i % 10).collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn verify_credits_each_packet_in_once() {
        let mut s = logic(2, true);
        let mut out = Vec::new();
        s.fill(&mut out); // hosts 0 and 1
        let mut replies = flow_mod_for(wire::host_mac(3, 0));
        replies.extend(flow_mod_for(wire::host_mac(3, 0))); // a second answer: not a new credit
        replies.extend(flow_mod_for(wire::host_mac(9, 1))); // another switch's host
        let (_, batch) = s.handle(&replies, &mut out, true).unwrap();
        assert_eq!((batch.responses, batch.answered), (3, 1));
        assert_eq!(
            s.fill(&mut out),
            1,
            "only the answered packet-in frees the window"
        );
        let (_, batch) = s
            .handle(&flow_mod_for(wire::host_mac(3, 1)), &mut out, true)
            .unwrap();
        assert_eq!(batch.answered, 1);
    }

    #[test]
    fn handshake_is_answered_and_programming_noticed() {
        let mut s = logic(1, false);
        let mut input = BytesMut::new();
        of::encode(1, &Message::FeaturesRequest, &mut input).unwrap();
        of::encode(
            2,
            &Message::EchoRequest(Bytes::from_static(b"x")),
            &mut input,
        )
        .expect("the message fits");
        of::encode(3, &Message::BarrierRequest, &mut input).expect("the message fits");
        let mut out = Vec::new();
        let (_, batch) = s.handle(&input, &mut out, false).unwrap();
        assert!(!batch.became_ready, "a barrier closes the sync dumps too");
        let mut kinds = Vec::new();
        wire::for_each_frame(&out, |t, f| kinds.push((t, wire::xid(f)))).unwrap();
        assert_eq!(
            kinds,
            vec![
                (msg_type::FEATURES_REPLY, 1),
                (msg_type::ECHO_REPLY, 2),
                (msg_type::BARRIER_REPLY, 3)
            ]
        );
        // Setup flow-mods before counting starts are not responses.
        let (_, batch) = s.handle(&flow_mod_for([0; 6]), &mut out, false).unwrap();
        assert!(batch.became_ready);
        assert_eq!((batch.responses, batch.flows), (0, 0));
        let (_, batch) = s.handle(&flow_mod_for([0; 6]), &mut out, true).unwrap();
        assert_eq!((batch.responses, batch.flows), (1, 1));
    }

    /// An OpenFlow 1.0 FLOW_MOD releasing `buffer_id`, for `src`.
    fn of10_flow_mod(src: [u8; 6], buffer_id: u32) -> Vec<u8> {
        let fm = FlowMod {
            cookie: 0,
            cookie_mask: 0,
            table_id: 0,
            command: FlowModCommand::Add,
            idle_timeout: 0,
            hard_timeout: 0,
            priority: 1,
            buffer_id,
            out_port: of::port_no::ANY,
            out_group: of::OFPG_ANY,
            flags: 0,
            match_: Match::new().with(Oxm::EthSrc(of::MacAddr(src), None)),
            instructions: Vec::new(),
        };
        let mut out = BytesMut::new();
        of::of10::encode(9, &Message::FlowMod(fm), &mut out).unwrap();
        out.to_vec()
    }

    #[test]
    fn a_cbench_shaped_switch_starts_right_after_its_features() {
        let mut s = logic_of(CBENCH, 1, true);
        let mut request = Vec::new();
        of10::message(of10::msg_type::FEATURES_REQUEST, 1, &[], &mut request);
        let mut out = Vec::new();
        let (_, batch) = s.handle(&request, &mut out, false).unwrap();
        assert!(batch.became_ready && s.sends(Phase::Idle) && s.counts(Phase::Idle));
        // FEATURES_REPLY, then the broadcast that teaches the destination.
        let mut seen = Vec::new();
        wire::for_each_frame(&out, |t, f| seen.push((f[0], t, f.to_vec()))).unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!((seen[0].0, seen[0].1), (1, of10::msg_type::FEATURES_REPLY));
        let (_, message) = of::of10::decode(&seen[1].2).unwrap();
        let Message::PacketIn(teach) = message else {
            panic!("{message:?}")
        };
        let gateway = wire::host_mac(3, GATEWAY);
        assert_eq!(
            (teach.in_port(), &teach.data[6..12]),
            (Some(2), &gateway[..])
        );
        // Every later packet goes from port 1 to it, buffered.
        out.clear();
        s.fill(&mut out);
        let (_, message) = of::of10::decode(&out).unwrap();
        let Message::PacketIn(p) = message else {
            panic!("{message:?}")
        };
        assert_eq!((p.in_port(), p.buffer_id), (Some(1), 1));
        assert_eq!(&p.data[..6], &gateway[..]);
        // A FLOW_MOD releasing the buffer answers it.
        let (_, batch) = s
            .handle(&of10_flow_mod([0; 6], 1), &mut Vec::new(), true)
            .unwrap();
        assert_eq!((batch.responses, batch.flows, batch.answered), (1, 1, 1));
        assert!(s.can_send());
    }

    #[test]
    fn a_desc_only_switch_ignores_the_flow_dump() {
        let mut s = logic_of(CBENCH, 1, false);
        let mut dump = Vec::new();
        of10::message(of10::msg_type::STATS_REQUEST, 2, &[0, 1, 0, 0], &mut dump);
        let mut out = Vec::new();
        s.handle(&dump, &mut out, false).unwrap();
        assert!(out.is_empty());
    }
}
