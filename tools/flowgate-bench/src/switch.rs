//! One emulated OpenFlow 1.3 switch: it does the full handshake a real
//! switch does (HELLO, FEATURES, PORT_DESC and the other sync dumps, echo,
//! barrier), reports when the controller has programmed it, and then sends
//! packet-ins for its hosts and counts the FLOW_MOD / PACKET_OUT responses.
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

use crate::wire::{self, PacketInTemplate, PORTS};

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
    /// Packet-ins whose host a response named (`--verify` only).
    pub answered: AtomicU64,
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
}

/// Most packet-ins appended per write, so a wide window still interleaves
/// reads and writes.
const SEND_BURST: u32 = 256;

/// The emulated switch's state, fed with the controller's bytes.
#[derive(Debug)]
pub struct SwitchLogic {
    spec: SwitchSpec,
    template: Arc<PacketInTemplate>,
    /// The controller has answered FEATURES and sent its first FLOW_MOD or
    /// BARRIER: the switch is programmed.
    pub programmed: bool,
    next: u64,
    outstanding: u32,
    /// Per host: packet-ins not yet named by a response (`verify`).
    unanswered: Vec<u32>,
    answers: BytesMut,
}

/// What one batch of controller bytes amounted to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    pub responses: u64,
    pub answered: u64,
    /// The batch completed the handshake.
    pub became_programmed: bool,
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
            programmed: false,
            next: 0,
            outstanding: 0,
            unanswered,
            answers: BytesMut::new(),
        }
    }

    /// The switch's HELLO, offering OpenFlow 1.3.
    pub fn hello() -> Vec<u8> {
        let mut out = BytesMut::new();
        let hello = Message::Hello(Hello::with_versions(&[of::OFP_VERSION_1_3]));
        of::encode(0, &hello, &mut out).expect("a HELLO fits");
        out.to_vec()
    }

    /// Handles every whole message in `buf`, appending answers (echo,
    /// barrier, handshake) to `out`; returns the bytes consumed, or an error
    /// if the stream can not be framed.
    pub fn handle(
        &mut self,
        buf: &[u8],
        out: &mut Vec<u8>,
        counting: bool,
    ) -> io::Result<(usize, Batch)> {
        let mut batch = Batch::default();
        let programmed = self.programmed;
        let used = wire::for_each_frame(buf, |t, frame| match t {
            msg_type::FLOW_MOD | msg_type::PACKET_OUT => {
                self.programmed = true;
                if counting {
                    batch.responses += 1;
                    if self.spec.verify && self.credit(t, frame) {
                        batch.answered += 1;
                    }
                }
            }
            _ => {
                if t == msg_type::BARRIER_REQUEST {
                    self.programmed = true;
                }
                if wire::answer(self.spec.dpid, t, frame, &mut self.answers).is_some() {
                    out.extend_from_slice(&self.answers);
                    self.answers.clear();
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
        batch.became_programmed = self.programmed && !programmed;
        Ok((used, batch))
    }

    /// Marks the packet-in of the host a response names as answered.
    fn credit(&mut self, t: u8, frame: &[u8]) -> bool {
        let Some(index) =
            wire::response_mac(t, frame).and_then(|m| wire::host_index(self.spec.index, m))
        else {
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
            let peer = (index + 1) % self.spec.macs;
            let src = wire::host_mac(self.spec.index, index);
            let dst = wire::host_mac(self.spec.index, peer);
            self.template
                .write(out, self.next as u32, 1 + index % PORTS, src, dst);
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
}

/// Runs one emulated switch until the connection fails or the task is
/// aborted. `programmed` hears the switch's index once the controller has
/// programmed it.
pub async fn run(
    controller: SocketAddr,
    spec: SwitchSpec,
    template: Arc<PacketInTemplate>,
    stats: Arc<SwitchStats>,
    mut phase: watch::Receiver<Phase>,
    programmed: mpsc::UnboundedSender<(u16, Instant)>,
) -> io::Result<()> {
    let index = spec.index;
    let stream = TcpStream::connect(controller).await?;
    stream.set_nodelay(true)?;
    let mut logic = SwitchLogic::new(spec, template);
    let mut out = SwitchLogic::hello();
    let mut written = 0;
    let mut inbuf = vec![0u8; 256 * 1024];
    let mut filled = 0;
    let mut current = *phase.borrow();
    loop {
        if current == Phase::Run && written == out.len() && logic.can_send() {
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
            ready = stream.ready(interest) => {
                let ready = ready?;
                if ready.is_readable() {
                    match stream.try_read(&mut inbuf[filled..]) {
                        Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "controller closed the connection")),
                        Ok(n) => {
                            filled += n;
                            if written == out.len() {
                                out.clear();
                                written = 0;
                            }
                            let counting = current != Phase::Idle;
                            let (used, batch) = logic.handle(&inbuf[..filled], &mut out, counting)?;
                            inbuf.copy_within(used..filled, 0);
                            filled -= used;
                            if filled == inbuf.len() {
                                inbuf.resize(inbuf.len() * 2, 0);
                            }
                            stats.responses.fetch_add(batch.responses, Ordering::Relaxed);
                            stats.answered.fetch_add(batch.answered, Ordering::Relaxed);
                            if batch.became_programmed {
                                let _ = programmed.send((index, Instant::now()));
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                }
                if ready.is_writable() && written < out.len() {
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
                if current == Phase::Idle && next != Phase::Idle {
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

    fn logic(window: u32, verify: bool) -> SwitchLogic {
        let template = PacketInTemplate::new(PacketInShape {
            cookie: 0,
            table_id: 0,
            reason: PacketInReason::NoMatch,
        });
        SwitchLogic::new(
            SwitchSpec {
                index: 3,
                dpid: 4,
                macs: 10,
                window,
                verify,
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
        .unwrap();
        let mut out = Vec::new();
        let (_, batch) = s.handle(&input, &mut out, false).unwrap();
        assert!(!batch.became_programmed);
        let mut kinds = Vec::new();
        wire::for_each_frame(&out, |t, f| kinds.push((t, wire::xid(f)))).unwrap();
        assert_eq!(
            kinds,
            vec![(msg_type::FEATURES_REPLY, 1), (msg_type::ECHO_REPLY, 2)]
        );
        // Setup flow-mods before counting starts are not responses.
        let (_, batch) = s.handle(&flow_mod_for([0; 6]), &mut out, false).unwrap();
        assert!(batch.became_programmed);
        assert_eq!(batch.responses, 0);
        let mut barrier = BytesMut::new();
        of::encode(5, &Message::BarrierRequest, &mut barrier).unwrap();
        out.clear();
        s.handle(&barrier, &mut out, false).unwrap();
        wire::for_each_frame(&out, |t, _| assert_eq!(t, msg_type::BARRIER_REPLY)).unwrap();
    }
}
