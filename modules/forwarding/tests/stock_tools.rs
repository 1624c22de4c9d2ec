//! Forwarding behind the runtime, over loopback TCP, against switches
//! shaped like the field's benchmark tools: an OpenFlow 1.0 switch that
//! answers only description stats and sends buffered packet-ins from its
//! first millisecond (stock cbench), and an OpenFlow 1.3 switch that sends
//! cookie-0 table-miss packet-ins and never answers its flow dump.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use flowgate_controller::module::Module;
use flowgate_controller::runtime::{Runtime, RuntimeConfig};
use flowgate_forwarding::{L2Learning, L2LearningConfig, L2Single, L2SingleConfig};
use flowgate_openflow::{
    self as of, Hello, Match, Message, MultipartReply, MultipartReplyBody, MultipartRequestBody,
    Oxm, PacketIn, PacketInReason, SwitchFeatures,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);
/// OpenFlow 1.0 message types (spec 1.0.0 §5.1).
const OF10_PACKET_IN: u8 = 10;
const OF10_PACKET_OUT: u8 = 13;
const OF10_FLOW_MOD: u8 = 14;
const OF10_STATS_REQUEST: u8 = 16;
const OF10_STATS_REPLY: u8 = 17;
const OF10_BARRIER_REQUEST: u8 = 18;
const OF10_BARRIER_REPLY: u8 = 19;
const OFPST_DESC: u16 = 0;

/// The MAC cbench's switches learn first (its gratuitous ARP's source).
const LEARNED: [u8; 6] = [0x80, 0, 0, 0, 0, 1];
const HOST: [u8; 6] = [0, 5, 0, 0, 0, 1];

async fn start(modules: Vec<Box<dyn Module>>) -> (Runtime, std::net::SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (
        Runtime::start(
            listener,
            RuntimeConfig::default(),
            modules,
            std::sync::Arc::new(flowgate_controller::store::MemoryStore::new()),
        ),
        addr,
    )
}

/// One end of a switch connection that reads whole messages.
struct Peer {
    stream: TcpStream,
    buf: BytesMut,
}

impl Peer {
    async fn connect(addr: std::net::SocketAddr) -> Peer {
        Peer {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: BytesMut::new(),
        }
    }

    /// The next message (any version), whole.
    async fn recv(&mut self) -> Bytes {
        loop {
            if let Ok(Some(len)) = of::frame_len(&self.buf) {
                return self.buf.split_to(len).freeze();
            }
            let read = timeout(WAIT, self.stream.read_buf(&mut self.buf));
            let n = read.await.expect("controller went quiet").unwrap();
            assert!(n > 0, "controller closed the connection");
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }
}

fn xid(frame: &[u8]) -> u32 {
    u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]])
}

/// An OpenFlow 1.0 message of type `t`.
fn of10(t: u8, xid: u32, body: &[u8]) -> Vec<u8> {
    let mut m = vec![1, t];
    m.extend_from_slice(&(8 + body.len() as u16).to_be_bytes());
    m.extend_from_slice(&xid.to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16) -> Vec<u8> {
    let mut frame = dst.to_vec();
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.resize(60, 0);
    frame
}

/// A 1.0 table-miss packet-in (buffer, total length, in_port, reason).
fn of10_packet_in(xid: u32, buffer_id: u32, in_port: u16, frame: &[u8]) -> Vec<u8> {
    let mut body = buffer_id.to_be_bytes().to_vec();
    body.extend_from_slice(&(frame.len() as u16).to_be_bytes());
    body.extend_from_slice(&in_port.to_be_bytes());
    body.extend_from_slice(&[0, 0]);
    body.extend_from_slice(frame);
    of10(OF10_PACKET_IN, xid, &body)
}

/// What a cbench switch answers with its FEATURES_REPLY: dpid and no ports.
fn of10_features_reply(xid: u32, dpid: u64) -> Vec<u8> {
    let mut body = dpid.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0xc7, 0, 0, 0x0f, 0xff]);
    of10(6, xid, &body)
}

/// Plays a cbench switch's part in what the controller sends: description
/// stats and barriers answered, every other request ignored, until `n`
/// FLOW_MODs came. Returns the buffer ids of the FLOW_MODs and of the
/// PACKET_OUTs seen meanwhile.
async fn serve_like_cbench(peer: &mut Peer, n: usize) -> (Vec<u32>, Vec<u32>) {
    let (mut flow_mods, mut packet_outs) = (Vec::new(), Vec::new());
    let buffer_at =
        |m: &[u8], at: usize| u32::from_be_bytes([m[at], m[at + 1], m[at + 2], m[at + 3]]);
    while flow_mods.len() < n {
        let m = peer.recv().await;
        match m[1] {
            OF10_FLOW_MOD => flow_mods.push(buffer_at(&m, 64)),
            OF10_PACKET_OUT => packet_outs.push(buffer_at(&m, 8)),
            OF10_STATS_REQUEST if u16::from_be_bytes([m[8], m[9]]) == OFPST_DESC => {
                let mut body = vec![0, 0, 0, 0];
                body.resize(4 + 1056, 0);
                body[4..8].copy_from_slice(b"cben");
                peer.send(&of10(OF10_STATS_REPLY, xid(&m), &body)).await;
            }
            OF10_BARRIER_REQUEST => peer.send(&of10(OF10_BARRIER_REPLY, xid(&m), &[])).await,
            _ => {}
        }
    }
    (flow_mods, packet_outs)
}

#[tokio::test]
async fn stock_cbench_is_answered_one_flow_mod_per_buffered_packet_in() {
    let modules: Vec<Box<dyn Module>> = vec![Box::new(L2Single::new(L2SingleConfig::default()))];
    let (_runtime, addr) = start(modules).await;
    let mut peer = Peer::connect(addr).await;
    peer.send(&of10(0, 1, &[])).await;
    let features = loop {
        let m = peer.recv().await;
        if m[1] == 5 {
            break xid(&m);
        }
    };
    // Right after its features: the gratuitous ARP that teaches the
    // destination, then a buffered packet towards it.
    let mut burst = of10_features_reply(features, 1);
    burst.extend(of10_packet_in(
        2,
        of::NO_BUFFER,
        2,
        &ethernet([0xff; 6], LEARNED, 0x0806),
    ));
    burst.extend(of10_packet_in(
        3,
        0x101,
        1,
        &ethernet(LEARNED, HOST, 0x0800),
    ));
    peer.send(&burst).await;
    let (flow_mods, mut packet_outs) = serve_like_cbench(&mut peer, 1).await;
    assert_eq!(flow_mods, [0x101], "the FLOW_MOD releases the buffer");
    // The next packet of that flow: one FLOW_MOD again.
    peer.send(&of10_packet_in(
        4,
        0x102,
        1,
        &ethernet(LEARNED, HOST, 0x0800),
    ))
    .await;
    let (flow_mods, later) = serve_like_cbench(&mut peer, 1).await;
    assert_eq!(flow_mods, [0x102]);
    // Of all the controller sent, only the broadcast ARP was flooded.
    packet_outs.extend(later);
    assert_eq!(packet_outs, [of::NO_BUFFER]);
}

fn of13(xid: u32, message: &Message) -> BytesMut {
    let mut out = BytesMut::new();
    of::encode(xid, message, &mut out).expect("a test message fits");
    out
}

#[tokio::test]
async fn an_openflow_13_table_miss_is_answered_though_the_flow_dump_never_is() {
    let modules: Vec<Box<dyn Module>> =
        vec![Box::new(L2Learning::new(L2LearningConfig::default()))];
    let (_runtime, addr) = start(modules).await;
    let mut peer = Peer::connect(addr).await;
    peer.send(&of13(1, &Message::Hello(Hello::with_versions(&[4]))))
        .await;
    let mut flow_mods = Vec::new();
    let mut packet_outs = Vec::new();
    while packet_outs.is_empty() {
        let m = peer.recv().await;
        let (header, message) = of::decode(&m).unwrap();
        let reply = match message {
            Message::FeaturesRequest => {
                let features = SwitchFeatures {
                    datapath_id: 2,
                    n_buffers: 0,
                    n_tables: 254,
                    auxiliary_id: 0,
                    capabilities: 0,
                    reserved: 0,
                };
                let mut out = of13(header.xid, &Message::FeaturesReply(features));
                // From the first millisecond: a cookie-0 table miss.
                let miss = PacketIn {
                    buffer_id: of::NO_BUFFER,
                    total_len: 60,
                    reason: PacketInReason::NoMatch,
                    table_id: 0,
                    cookie: 0,
                    match_: Match::new().with(Oxm::InPort(3)),
                    data: ethernet(LEARNED, HOST, 0x0800).into(),
                };
                out.extend_from_slice(&of13(7, &Message::PacketIn(miss)));
                out
            }
            Message::MultipartRequest(request) => match request.body {
                MultipartRequestBody::Desc => {
                    let desc = MultipartReplyBody::Desc(of::DescStats {
                        mfr_desc: "a 1.3 bench".into(),
                        hw_desc: String::new(),
                        sw_desc: String::new(),
                        serial_num: String::new(),
                        dp_desc: String::new(),
                    });
                    let reply = Message::MultipartReply(Box::new(MultipartReply::new(desc)));
                    of13(header.xid, &reply)
                }
                _ => continue,
            },
            Message::BarrierRequest => of13(header.xid, &Message::BarrierReply),
            Message::FlowMod(fm) => {
                flow_mods.push(fm);
                continue;
            }
            Message::PacketOut(po) => {
                packet_outs.push(po);
                continue;
            }
            _ => continue,
        };
        peer.send(&reply).await;
    }
    assert_eq!(output_ports(&packet_outs), [of::port_no::TABLE]);
    // The host's source entry went out before the packet.
    assert!(flow_mods.iter().any(|fm| {
        fm.command == of::FlowModCommand::Add
            && fm
                .match_
                .fields
                .contains(&Oxm::EthSrc(of::MacAddr(HOST), None))
    }));
    assert!(
        flow_mods
            .iter()
            .any(|fm| fm.command == of::FlowModCommand::Delete),
        "an unknown table: Flowgate's entries replaced"
    );
}

/// The output ports of packet-outs.
fn output_ports(packet_outs: &[of::PacketOut]) -> Vec<u32> {
    packet_outs
        .iter()
        .flat_map(|po| {
            po.actions.iter().filter_map(|a| match a {
                of::Action::Output { port, .. } => Some(*port),
                _ => None,
            })
        })
        .collect()
}
