use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use flowgate_openflow::{
    self as of, DescStats, FlowStats, Hello, Match, Message, MultipartReply, MultipartReplyBody,
    MultipartRequestBody, SwitchFeatures,
};

use super::*;

const DPID: u64 = 0x0000_0000_0000_00a1;

/// Decodes every message in a transmit buffer.
fn decode_all(bytes: &[u8]) -> Vec<(of::Header, Message)> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Ok(Some(len)) = of::frame_len(rest) {
        out.push(of::decode(&rest[..len]).expect("session emitted an undecodable message"));
        rest = &rest[len..];
    }
    assert!(rest.is_empty(), "partial message in transmit buffer");
    out
}

fn sent(s: &mut Session) -> Vec<(of::Header, Message)> {
    s.poll_transmit()
        .map(|b| decode_all(&b))
        .unwrap_or_default()
}

fn wire(xid: u32, m: &Message) -> Bytes {
    let mut b = BytesMut::new();
    of::encode(xid, m, &mut b).expect("test messages fit");
    b.freeze()
}

fn wire_version(version: u8, xid: u32, m: &Message) -> Bytes {
    let mut b = BytesMut::new();
    of::encode_with_version(version, xid, m, &mut b).expect("test messages fit");
    b.freeze()
}

fn features() -> SwitchFeatures {
    SwitchFeatures {
        datapath_id: DPID,
        n_buffers: 0,
        n_tables: 254,
        auxiliary_id: 0,
        capabilities: 0x4f,
        reserved: 0,
    }
}

fn reply(body: MultipartReplyBody, more: bool) -> Message {
    Message::MultipartReply(Box::new(MultipartReply {
        flags: u16::from(more),
        body,
    }))
}

fn flow(priority: u16) -> FlowStats {
    FlowStats {
        table_id: 0,
        duration_sec: 1,
        duration_nsec: 0,
        priority,
        idle_timeout: 0,
        hard_timeout: 0,
        flags: 0,
        cookie: 0,
        packet_count: 0,
        byte_count: 0,
        match_: Match::default(),
        instructions: vec![],
    }
}

/// The messages of the next event, which must be a run of messages.
fn next_messages(s: &mut Session) -> Vec<(u32, Message)> {
    match s.poll_event() {
        Some(SessionEvent::Messages) => s.take_messages(),
        other => panic!("expected messages, got {other:?}"),
    }
}

/// Drives a session through handshake and sync; returns it ready.
fn ready_session(now: Instant) -> Session {
    let mut s = Session::new(now, SessionConfig::default());
    let hello = sent(&mut s);
    assert!(matches!(hello[0].1, Message::Hello(_)));
    s.handle_bytes(
        now,
        &wire(1, &Message::Hello(Hello::with_versions(&[1, 4]))),
    );
    let out = sent(&mut s);
    let (h, m) = &out[0];
    assert_eq!(*m, Message::FeaturesRequest);
    s.handle_bytes(now, &wire(h.xid, &Message::FeaturesReply(features())));
    let out = sent(&mut s);
    assert!(matches!(out[0].1, Message::SetConfig(_)));
    let (last, dumps) = out[1..].split_last().unwrap();
    assert_eq!(
        last.1,
        Message::BarrierRequest,
        "a barrier closes the dumps"
    );
    for (h, m) in dumps {
        let Message::MultipartRequest(req) = m else {
            panic!("expected a sync dump, got {m:?}")
        };
        let body = match req.body {
            MultipartRequestBody::PortDesc => MultipartReplyBody::PortDesc(vec![]),
            MultipartRequestBody::Desc => MultipartReplyBody::Desc(DescStats {
                mfr_desc: "Nicira, Inc.".into(),
                hw_desc: "Open vSwitch".into(),
                sw_desc: "3.1.0".into(),
                serial_num: "None".into(),
                dp_desc: "s1".into(),
            }),
            MultipartRequestBody::Flow(_) => MultipartReplyBody::Flow(vec![flow(0)]),
            MultipartRequestBody::GroupDesc => MultipartReplyBody::GroupDesc(vec![]),
            MultipartRequestBody::MeterConfig { .. } => MultipartReplyBody::MeterConfig(vec![]),
            ref other => panic!("unexpected sync dump {other:?}"),
        };
        s.handle_bytes(now, &wire(h.xid, &reply(body, false)));
    }
    // Every dump answered: ready before the barrier's reply, which is
    // absorbed when it comes.
    match s.poll_event() {
        Some(SessionEvent::Ready(sync)) => {
            assert!(sync.unknown.is_empty(), "{:?}", sync.unknown);
            assert_eq!(sync.features.datapath_id, DPID);
            assert_eq!(sync.flows.len(), 1);
            assert_eq!(sync.desc.as_ref().unwrap().dp_desc, "s1");
        }
        other => panic!("expected Ready, got {other:?}"),
    }
    assert!(s.is_ready());
    s.handle_bytes(now, &wire(last.0.xid, &Message::BarrierReply));
    assert!(
        s.poll_event().is_none(),
        "the sync barrier's reply stays here"
    );
    s
}

#[test]
fn handshake_negotiates_and_syncs() {
    ready_session(Instant::now());
}

#[test]
fn handshake_survives_one_byte_reads() {
    let now = Instant::now();
    let mut s = Session::new(now, SessionConfig::default());
    sent(&mut s);
    for b in wire(1, &Message::Hello(Hello::with_versions(&[4]))).iter() {
        s.handle_bytes(now, &[*b]);
    }
    assert_eq!(sent(&mut s)[0].1, Message::FeaturesRequest);
}

#[test]
fn no_common_version_sends_hello_failed_and_closes() {
    let now = Instant::now();
    let mut s = Session::new(now, SessionConfig::default());
    sent(&mut s);
    s.handle_bytes(
        now,
        &wire_version(6, 9, &Message::Hello(Hello::with_versions(&[6]))),
    );
    let out = s.poll_transmit().unwrap();
    // The error is sent in the peer's version, echoing its xid.
    assert_eq!(out[0], 6);
    assert_eq!(&out[4..8], &9u32.to_be_bytes());
    assert_eq!(out[1], 1, "message type ERROR");
    assert_eq!(
        &out[8..12],
        &[0, 0, 0, 0],
        "OFPET_HELLO_FAILED/OFPHFC_INCOMPATIBLE"
    );
    match s.poll_event() {
        Some(SessionEvent::Closed { reason }) => {
            assert_eq!(reason, CloseReason::NoCommonVersion { offered: vec![6] });
            let text = reason.to_string();
            assert!(text.contains("HELLO_FAILED"), "{text}");
            assert!(text.contains("no common OpenFlow version"), "{text}");
            assert!(text.contains("1.5") && text.contains("1.3"), "{text}");
        }
        other => panic!("expected Closed, got {other:?}"),
    }
}

#[test]
fn hello_without_bitmap_negotiates_the_lower_version() {
    let now = Instant::now();
    let mut s = Session::new(now, SessionConfig::default());
    sent(&mut s);
    s.handle_bytes(
        now,
        &wire_version(5, 1, &Message::Hello(Hello { elements: vec![] })),
    );
    assert_eq!(sent(&mut s)[0].1, Message::FeaturesRequest);

    // OpenFlow 1.0 is spoken; 1.1 (wire 2) is not.
    let mut of10 = Session::new(now, SessionConfig::default());
    sent(&mut of10);
    of10.handle_bytes(
        now,
        &wire_version(1, 1, &Message::Hello(Hello { elements: vec![] })),
    );
    assert_eq!(of10.version(), of::OFP_VERSION_1_0);
    let mut old = Session::new(now, SessionConfig::default());
    sent(&mut old);
    old.handle_bytes(
        now,
        &wire_version(2, 1, &Message::Hello(Hello { elements: vec![] })),
    );
    assert!(old.is_closed());
}

/// A raw OpenFlow 1.0 message.
fn raw10(t: u8, xid: u32, body: &[u8]) -> Bytes {
    let mut b = vec![1, t];
    b.extend_from_slice(&(8 + body.len() as u16).to_be_bytes());
    b.extend_from_slice(&xid.to_be_bytes());
    b.extend_from_slice(body);
    Bytes::from(b)
}

/// Headers of every message in a transmit buffer (any version).
fn headers(bytes: &[u8]) -> Vec<of::Header> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Ok(Some(len)) = of::frame_len(rest) {
        let b = &rest[..len];
        out.push(of::Header {
            version: b[0],
            msg_type: b[1],
            length: len as u16,
            xid: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        });
        rest = &rest[len..];
    }
    out
}

#[test]
fn an_openflow_10_switch_is_synced_in_its_own_dialect() {
    use flowgate_openflow::of10::msg_type as t10;
    use flowgate_openflow::wire::Wire;
    let now = Instant::now();
    let mut s = Session::new(now, SessionConfig::default());
    let hello = sent(&mut s);
    assert!(matches!(&hello[0].1, Message::Hello(h) if h.versions() == Some(vec![1, 4])));
    s.handle_bytes(now, &raw10(t10::HELLO, 1, &[]));
    let out = headers(&s.poll_transmit().unwrap());
    assert_eq!(
        (out[0].version, out[0].msg_type),
        (1, t10::FEATURES_REQUEST)
    );
    // FEATURES_REPLY with one port.
    let mut body = DPID.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0xc7, 0, 0, 0x0f, 0xff]);
    body.extend_from_slice(&[0, 1, 2, 0, 0, 0, 0, 1]);
    body.extend_from_slice(b"s1-eth1\0\0\0\0\0\0\0\0\0");
    body.extend_from_slice(&[0; 24]);
    s.handle_bytes(now, &raw10(t10::FEATURES_REPLY, out[0].xid, &body));
    let out = headers(&s.poll_transmit().unwrap());
    let kinds: Vec<(u8, u8)> = out.iter().map(|h| (h.version, h.msg_type)).collect();
    assert_eq!(
        kinds,
        vec![
            (1, t10::SET_CONFIG),
            (1, t10::STATS_REQUEST),
            (1, t10::STATS_REQUEST),
            (1, t10::BARRIER_REQUEST)
        ]
    );
    let mut desc = BytesMut::from(&[0u8, 0, 0, 0][..]);
    DescStats {
        mfr_desc: "Nicira, Inc.".into(),
        hw_desc: "Open vSwitch".into(),
        sw_desc: "3.1.0".into(),
        serial_num: "None".into(),
        dp_desc: "s1".into(),
    }
    .emit(&mut desc);
    s.handle_bytes(now, &raw10(t10::STATS_REPLY, out[1].xid, &desc));
    s.handle_bytes(now, &raw10(t10::STATS_REPLY, out[2].xid, &[0, 1, 0, 0]));
    match s.poll_event() {
        Some(SessionEvent::Ready(sync)) => {
            assert_eq!((sync.version, sync.features.datapath_id), (1, DPID));
            assert_eq!(sync.ports.len(), 1);
            assert_eq!(sync.ports[0].name, "s1-eth1");
            assert_eq!(sync.desc.as_ref().unwrap().dp_desc, "s1");
        }
        other => panic!("expected Ready, got {other:?}"),
    }
    // Echo is answered in 1.0; a request 1.0 can't express fails at once.
    s.handle_bytes(now, &raw10(t10::ECHO_REQUEST, 77, b"x"));
    let out = headers(&s.poll_transmit().unwrap());
    assert_eq!(
        (out[0].version, out[0].msg_type, out[0].xid),
        (1, t10::ECHO_REPLY, 77)
    );
    let group_desc = Message::MultipartRequest(MultipartRequest {
        flags: 0,
        body: MultipartRequestBody::GroupDesc,
    });
    s.request(now, group_desc, 5);
    assert!(matches!(
        s.poll_event(),
        Some(SessionEvent::Reply {
            token: 5,
            result: Err(RequestError::Switch { .. })
        })
    ));
    assert!(s.poll_transmit().is_none());
    // A packet-in arrives as a 1.3 table miss on port 1.
    s.handle_bytes(
        now,
        &raw10(
            t10::PACKET_IN,
            9,
            &[0xff, 0xff, 0xff, 0xff, 0, 2, 0, 1, 0, 0, 0xab, 0xcd],
        ),
    );
    match next_messages(&mut s).as_slice() {
        [(_, Message::PacketIn(p))] => assert_eq!(
            (p.in_port(), p.cookie, &p.data[..]),
            (Some(1), 0, &[0xab, 0xcd][..])
        ),
        other => panic!("expected a packet-in, got {other:?}"),
    }
}

#[test]
fn garbage_closes_the_session() {
    let now = Instant::now();
    let mut s = Session::new(now, SessionConfig::default());
    s.handle_bytes(now, &[0xde, 0xad, 0x00, 0x02, 0, 0, 0, 0]);
    assert!(s.is_closed());
    assert!(matches!(
        s.poll_event(),
        Some(SessionEvent::Closed {
            reason: CloseReason::Protocol(_)
        })
    ));
}

#[test]
fn first_message_must_be_hello() {
    let now = Instant::now();
    let mut s = Session::new(now, SessionConfig::default());
    s.handle_bytes(now, &wire(1, &Message::BarrierRequest));
    assert!(s.is_closed());
}

#[test]
fn undecodable_message_gets_bad_request_and_keeps_the_session() {
    let now = Instant::now();
    let mut s = ready_session(now);
    // A FLOW_MOD whose body is far too short for its fixed part.
    let bad = [4u8, 14, 0, 12, 0, 0, 0, 77, 1, 2, 3, 4];
    s.handle_bytes(now, &bad);
    let out = sent(&mut s);
    match &out[..] {
        [(h, Message::Error(ErrorMsg::Standard { err_type, data, .. }))] => {
            assert_eq!(h.xid, 77);
            assert_eq!(*err_type, error_type::BAD_REQUEST);
            assert_eq!(&data[..], &bad[..]);
        }
        other => panic!("expected one BAD_REQUEST error, got {other:?}"),
    }
    assert!(s.is_ready());
}

#[test]
fn echo_requests_from_the_switch_are_answered() {
    let now = Instant::now();
    let mut s = ready_session(now);
    s.handle_bytes(
        now,
        &wire(42, &Message::EchoRequest(Bytes::from_static(b"hi"))),
    );
    let out = sent(&mut s);
    assert_eq!(out[0].0.xid, 42);
    assert_eq!(out[0].1, Message::EchoReply(Bytes::from_static(b"hi")));
}

#[test]
fn idle_switch_is_probed_then_declared_dead() {
    let now = Instant::now();
    let config = SessionConfig::default();
    let mut s = ready_session(now);
    let probe_at = now + config.echo_interval;
    assert_eq!(s.poll_timeout(), Some(probe_at));
    s.handle_timeout(probe_at);
    assert!(matches!(sent(&mut s)[0].1, Message::EchoRequest(_)));
    s.handle_timeout(now + config.dead_after);
    assert!(matches!(
        s.poll_event(),
        Some(SessionEvent::Closed {
            reason: CloseReason::EchoTimeout
        })
    ));
}

#[test]
fn an_answer_keeps_the_switch_alive() {
    let now = Instant::now();
    let config = SessionConfig::default();
    let mut s = ready_session(now);
    s.handle_timeout(now + config.echo_interval);
    let probe = sent(&mut s);
    let later = now + config.echo_interval + Duration::from_millis(5);
    s.handle_bytes(
        later,
        &wire(probe[0].0.xid, &Message::EchoReply(Bytes::new())),
    );
    s.handle_timeout(now + config.dead_after);
    assert!(!s.is_closed());
}

#[test]
fn multipart_parts_are_reassembled_into_one_reply() {
    let now = Instant::now();
    let mut s = ready_session(now);
    let req = Message::MultipartRequest(of::MultipartRequest {
        flags: 0,
        body: MultipartRequestBody::PortDesc,
    });
    s.request(now, req, 5);
    let xid = sent(&mut s)[0].0.xid;
    s.handle_bytes(
        now,
        &wire(xid, &reply(MultipartReplyBody::Flow(vec![flow(1)]), true)),
    );
    assert!(s.poll_event().is_none());
    s.handle_bytes(
        now,
        &wire(xid, &reply(MultipartReplyBody::Flow(vec![flow(2)]), false)),
    );
    match s.poll_event() {
        Some(SessionEvent::Reply {
            token: 5,
            result: Ok(Message::MultipartReply(r)),
        }) => match r.body {
            MultipartReplyBody::Flow(flows) => {
                let prios: Vec<u16> = flows.iter().map(|f| f.priority).collect();
                assert_eq!(prios, vec![1, 2]);
            }
            other => panic!("unexpected body {other:?}"),
        },
        other => panic!("expected the reassembled reply, got {other:?}"),
    }
}

#[test]
fn requests_fail_on_switch_error_and_on_timeout() {
    let now = Instant::now();
    let mut s = ready_session(now);
    s.request(now, Message::BarrierRequest, 1);
    s.request(now, Message::BarrierRequest, 2);
    let out = sent(&mut s);
    let error = Message::Error(ErrorMsg::Standard {
        err_type: error_type::BAD_REQUEST,
        code: 1,
        data: Bytes::new(),
    });
    s.handle_bytes(now, &wire(out[0].0.xid, &error));
    assert!(matches!(
        s.poll_event(),
        Some(SessionEvent::Reply {
            token: 1,
            result: Err(RequestError::Switch {
                err_type: 1,
                code: 1
            })
        })
    ));
    s.handle_timeout(now + SessionConfig::default().request_timeout);
    assert!(matches!(
        s.poll_event(),
        Some(SessionEvent::Reply {
            token: 2,
            result: Err(RequestError::Timeout)
        })
    ));
}

#[test]
fn unsolicited_messages_are_passed_up() {
    let now = Instant::now();
    let mut s = ready_session(now);
    s.handle_bytes(now, &wire(3, &Message::BarrierReply));
    assert_eq!(next_messages(&mut s), vec![(3, Message::BarrierReply)]);
}

#[test]
fn message_runs_keep_their_order_around_replies() {
    let now = Instant::now();
    let mut s = ready_session(now);
    s.request(now, Message::BarrierRequest, 7);
    let request_xid = sent(&mut s)[0].0.xid;
    let mut bytes = BytesMut::new();
    for m in [
        wire(1, &Message::BarrierReply),
        wire(2, &Message::BarrierReply),
        wire(request_xid, &Message::BarrierReply),
        wire(3, &Message::BarrierReply),
    ] {
        bytes.extend_from_slice(&m);
    }
    s.handle_bytes(now, &bytes);
    // Two messages, the reply, then the third: taken a run at a time.
    let xids = |run: Vec<(u32, Message)>| run.iter().map(|(x, _)| *x).collect::<Vec<_>>();
    assert_eq!(xids(next_messages(&mut s)), [1, 2]);
    assert!(matches!(
        s.poll_event(),
        Some(SessionEvent::Reply { token: 7, .. })
    ));
    assert_eq!(xids(next_messages(&mut s)), [3]);
    assert!(s.poll_event().is_none());
}

#[test]
fn long_runs_are_split_and_lone_runs_recycled() {
    let now = Instant::now();
    let mut s = ready_session(now);
    let mut bytes = BytesMut::new();
    for xid in 0..RUN_LEN as u32 + 1 {
        bytes.extend_from_slice(&wire(xid, &Message::BarrierReply));
    }
    s.handle_bytes(now, &bytes);
    let first = next_messages(&mut s);
    assert_eq!(first.len(), RUN_LEN);
    assert_eq!(first.capacity(), RUN_LEN, "allocated once, at full size");
    let mut last = next_messages(&mut s);
    assert_eq!(last.pop().map(|(x, _)| x), Some(RUN_LEN as u32));
    // Given back, the vector serves the next run.
    let spare = last.as_ptr();
    s.recycle_run(last);
    s.handle_bytes(now, &wire(99, &Message::BarrierReply));
    let reused = next_messages(&mut s);
    assert_eq!(reused.as_ptr(), spare);
}

#[test]
fn a_stalled_handshake_times_out() {
    let now = Instant::now();
    let mut s = Session::new(now, SessionConfig::default());
    s.handle_timeout(now + SessionConfig::default().handshake_timeout);
    assert!(s.is_closed());
}

#[test]
fn a_peer_that_is_not_speaking_openflow_is_dropped_on_its_first_header() {
    let now = Instant::now();
    let mut s = Session::new(now, SessionConfig::default());
    s.handle_bytes(now, b"GET / HT");
    match s.poll_event() {
        Some(SessionEvent::Closed {
            reason: CloseReason::Protocol(why),
        }) => assert!(why.contains("not OpenFlow"), "{why}"),
        other => panic!("expected a protocol close, got {other:?}"),
    }
}

#[test]
fn an_oversized_hello_is_refused_before_its_body_arrives() {
    let now = Instant::now();
    let mut s = Session::new(now, SessionConfig::default());
    s.handle_bytes(now, &[4, 0, 0xff, 0xff, 0, 0, 0, 1]);
    assert!(s.is_closed());
}

#[test]
fn a_packet_in_sharing_a_request_xid_answers_nothing() {
    let now = Instant::now();
    let mut s = ready_session(now);
    s.request(now, Message::BarrierRequest, 7);
    let xid = sent(&mut s)[0].0.xid;
    let packet_in = Message::PacketIn(of::PacketIn {
        buffer_id: of::NO_BUFFER,
        total_len: 14,
        reason: of::PacketInReason::NoMatch,
        table_id: 0,
        cookie: 0,
        match_: Match::new().with(of::Oxm::InPort(1)),
        data: Bytes::from_static(&[0xff; 14]),
    });
    s.handle_bytes(now, &wire(xid, &packet_in));
    assert_eq!(next_messages(&mut s), vec![(xid, packet_in)]);
    // The real reply still completes the request.
    s.handle_bytes(now, &wire(xid, &Message::BarrierReply));
    assert!(matches!(
        s.poll_event(),
        Some(SessionEvent::Reply {
            token: 7,
            result: Ok(Message::BarrierReply)
        })
    ));
}

fn packet_in(port: u32) -> Message {
    Message::PacketIn(of::PacketIn {
        buffer_id: of::NO_BUFFER,
        total_len: 14,
        reason: of::PacketInReason::NoMatch,
        table_id: 0,
        cookie: 0,
        match_: Match::new().with(of::Oxm::InPort(port)),
        data: Bytes::from_static(&[0xff; 14]),
    })
}

/// A 1.3 session that has sent its sync dumps; returns them (xid, dump
/// request) and the barrier's xid.
fn syncing_session(now: Instant, config: SessionConfig) -> (Session, Vec<(u32, Message)>, u32) {
    let mut s = Session::new(now, config);
    sent(&mut s);
    s.handle_bytes(now, &wire(1, &Message::Hello(Hello::with_versions(&[4]))));
    let xid = sent(&mut s)[0].0.xid;
    s.handle_bytes(now, &wire(xid, &Message::FeaturesReply(features())));
    let out = sent(&mut s);
    let (barrier, dumps) = out[1..].split_last().unwrap();
    assert_eq!(barrier.1, Message::BarrierRequest);
    let dumps = dumps.iter().map(|(h, m)| (h.xid, m.clone())).collect();
    (s, dumps, barrier.0.xid)
}

fn ready_sync(s: &mut Session) -> Box<SwitchSync> {
    match s.poll_event() {
        Some(SessionEvent::Ready(sync)) => sync,
        other => panic!("expected Ready, got {other:?}"),
    }
}

fn is_flow_dump(m: &Message) -> bool {
    matches!(m, Message::MultipartRequest(r) if matches!(r.body, MultipartRequestBody::Flow(_)))
}

#[test]
fn a_switch_that_answers_the_barrier_but_not_the_flow_dump_is_ready_at_once() {
    // cbench's way: description stats only, every other dump ignored.
    let now = Instant::now();
    let (mut s, dumps, barrier) = syncing_session(now, SessionConfig::default());
    for (xid, m) in &dumps {
        let Message::MultipartRequest(req) = m else {
            panic!("{m:?}")
        };
        if let MultipartRequestBody::Desc = req.body {
            let desc = MultipartReplyBody::Desc(DescStats {
                mfr_desc: "Cbench - controller I/O benchmark".into(),
                hw_desc: String::new(),
                sw_desc: String::new(),
                serial_num: String::new(),
                dp_desc: String::new(),
            });
            s.handle_bytes(now, &wire(*xid, &reply(desc, false)));
        }
    }
    assert!(s.poll_event().is_none(), "still waiting");
    s.handle_bytes(now, &wire(barrier, &Message::BarrierReply));
    let sync = ready_sync(&mut s);
    assert!(sync.desc.is_some());
    assert_eq!(
        sync.unknown,
        [
            SyncDump::PortDesc,
            SyncDump::Flows,
            SyncDump::Groups,
            SyncDump::Meters
        ]
    );
    // A late flow dump is absorbed, never passed up.
    let (flows_xid, _) = dumps.iter().find(|(_, m)| is_flow_dump(m)).unwrap();
    s.handle_bytes(
        now,
        &wire(*flows_xid, &reply(MultipartReplyBody::Flow(vec![]), false)),
    );
    assert!(s.poll_event().is_none());
}

#[test]
fn a_switch_that_never_answers_its_flow_stats_becomes_ready_after_the_deadline() {
    let now = Instant::now();
    let config = SessionConfig::default();
    let (mut s, dumps, _) = syncing_session(now, config.clone());
    assert_eq!(s.poll_timeout(), Some(now + config.sync_timeout));
    // A reply part is progress: the wait starts again from it.
    let later = now + config.sync_timeout / 2;
    let (flows_xid, _) = dumps.iter().find(|(_, m)| is_flow_dump(m)).unwrap();
    s.handle_bytes(
        later,
        &wire(
            *flows_xid,
            &reply(MultipartReplyBody::Flow(vec![flow(5)]), true),
        ),
    );
    s.handle_timeout(now + config.sync_timeout);
    assert!(s.poll_event().is_none() && !s.is_ready());
    assert_eq!(s.poll_timeout(), Some(later + config.sync_timeout));
    s.handle_timeout(later + config.sync_timeout);
    let sync = ready_sync(&mut s);
    assert_eq!(sync.unknown.len(), 5, "{:?}", sync.unknown);
    assert!(sync.flows.is_empty(), "a partial dump is no dump");
    assert!(s.is_ready() && !s.is_closed());
}

#[test]
fn a_refused_flow_dump_is_unknown_and_refused_groups_are_none() {
    let now = Instant::now();
    let (mut s, dumps, _) = syncing_session(now, SessionConfig::default());
    let refusal = Message::Error(ErrorMsg::Standard {
        err_type: error_type::BAD_REQUEST,
        code: of::error_code::bad_request::BAD_MULTIPART,
        data: Bytes::new(),
    });
    for (xid, m) in &dumps {
        let Message::MultipartRequest(req) = m else {
            panic!("{m:?}")
        };
        let answer = match req.body {
            MultipartRequestBody::PortDesc => reply(MultipartReplyBody::PortDesc(vec![]), false),
            MultipartRequestBody::MeterConfig { .. } => {
                reply(MultipartReplyBody::MeterConfig(vec![]), false)
            }
            _ => refusal.clone(),
        };
        s.handle_bytes(now, &wire(*xid, &answer));
    }
    let sync = ready_sync(&mut s);
    assert_eq!(sync.unknown, [SyncDump::Desc, SyncDump::Flows]);
}

#[test]
fn packet_ins_during_the_handshake_follow_ready_in_order() {
    let now = Instant::now();
    let (mut s, _, barrier) = syncing_session(now, SessionConfig::default());
    let mut bytes = BytesMut::new();
    for port in 1..=3 {
        bytes.extend_from_slice(&wire(port, &packet_in(port)));
    }
    bytes.extend_from_slice(&wire(barrier, &Message::BarrierReply));
    bytes.extend_from_slice(&wire(4, &packet_in(4)));
    s.handle_bytes(now, &bytes);
    ready_sync(&mut s);
    let xids: Vec<u32> = next_messages(&mut s).iter().map(|(x, _)| *x).collect();
    assert_eq!(xids, [1, 2, 3, 4]);
    assert!(s.poll_event().is_none());
}

#[test]
fn a_switch_flooding_packet_ins_before_its_dumps_are_answered_is_ready_at_the_bound() {
    let now = Instant::now();
    let config = SessionConfig {
        held_limit: 2,
        ..SessionConfig::default()
    };
    let (mut s, _, barrier) = syncing_session(now, config);
    let mut bytes = BytesMut::new();
    for port in 1..=5 {
        bytes.extend_from_slice(&wire(port, &packet_in(port)));
    }
    bytes.extend_from_slice(&wire(barrier, &Message::BarrierReply));
    s.handle_bytes(now, &bytes);
    // The third packet-in finds two held: ready with nothing answered.
    let sync = ready_sync(&mut s);
    assert_eq!(sync.unknown.len(), 5, "{:?}", sync.unknown);
    let xids: Vec<u32> = next_messages(&mut s).iter().map(|(x, _)| *x).collect();
    assert_eq!(xids, [1, 2, 3, 4, 5], "none lost, in order");
    assert!(
        s.poll_event().is_none(),
        "the late barrier reply is absorbed"
    );
}

#[test]
fn a_switch_flooding_packet_ins_before_its_features_is_closed() {
    let now = Instant::now();
    let config = SessionConfig {
        held_limit: 2,
        ..SessionConfig::default()
    };
    let mut s = Session::new(now, config);
    sent(&mut s);
    s.handle_bytes(now, &wire(1, &Message::Hello(Hello::with_versions(&[4]))));
    let mut bytes = BytesMut::new();
    for port in 1..=3 {
        bytes.extend_from_slice(&wire(port, &packet_in(port)));
    }
    s.handle_bytes(now, &bytes);
    assert!(matches!(
        s.poll_event(),
        Some(SessionEvent::Closed {
            reason: CloseReason::Protocol(_)
        })
    ));
}

#[test]
fn an_openflow_10_switch_answering_only_desc_stats_is_ready_with_its_table_unknown() {
    use flowgate_openflow::of10::msg_type as t10;
    use flowgate_openflow::wire::Wire;
    let now = Instant::now();
    let mut s = Session::new(now, SessionConfig::default());
    sent(&mut s);
    s.handle_bytes(now, &raw10(t10::HELLO, 1, &[]));
    let features_xid = headers(&s.poll_transmit().unwrap())[0].xid;
    let mut body = DPID.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0xc7, 0, 0, 0x0f, 0xff]);
    s.handle_bytes(now, &raw10(t10::FEATURES_REPLY, features_xid, &body));
    // cbench sends its first packet-in right after FEATURES_REPLY.
    let early = raw10(
        t10::PACKET_IN,
        7,
        &[0, 0, 1, 1, 0, 2, 0, 2, 0, 0, 0xab, 0xcd],
    );
    s.handle_bytes(now, &early);
    let out = headers(&s.poll_transmit().unwrap());
    let mut desc = BytesMut::from(&[0u8, 0, 0, 0][..]);
    DescStats {
        mfr_desc: "Cbench - controller I/O benchmark".into(),
        hw_desc: String::new(),
        sw_desc: String::new(),
        serial_num: String::new(),
        dp_desc: String::new(),
    }
    .emit(&mut desc);
    s.handle_bytes(now, &raw10(t10::STATS_REPLY, out[1].xid, &desc));
    s.handle_bytes(now, &raw10(t10::BARRIER_REPLY, out[3].xid, &[]));
    let sync = ready_sync(&mut s);
    assert_eq!(sync.unknown, [SyncDump::Flows]);
    match next_messages(&mut s).as_slice() {
        [(7, Message::PacketIn(p))] => {
            assert_eq!((p.buffer_id, p.in_port()), (0x101, Some(2)))
        }
        other => panic!("expected the early packet-in, got {other:?}"),
    }
}

#[test]
fn a_flow_mods_buffer_id_is_set_in_place_in_both_dialects() {
    let mut flow_mod = of::FlowMod {
        cookie: 0xf002_0000_0000_0001,
        cookie_mask: 0,
        table_id: 0,
        command: of::FlowModCommand::Add,
        idle_timeout: 300,
        hard_timeout: 0,
        priority: 100,
        buffer_id: of::NO_BUFFER,
        out_port: of::port_no::ANY,
        out_group: of::OFPG_ANY,
        flags: 1,
        match_: Match::new()
            .with(of::Oxm::InPort(1))
            .with(of::Oxm::EthDst(of::MacAddr([2, 0, 0, 0, 0, 1]), None)),
        instructions: vec![of::Instruction::ApplyActions(vec![of::Action::Output {
            port: 2,
            max_len: 0,
        }])],
    };
    for version in [of::OFP_VERSION_1_3, of::OFP_VERSION_1_0] {
        let mut unbuffered = BytesMut::new();
        assert!(encode_for(
            version,
            9,
            &Message::FlowMod(flow_mod.clone()),
            &mut unbuffered
        ));
        flow_mod.buffer_id = 0x0102_0304;
        let mut buffered = BytesMut::new();
        encode_for(
            version,
            9,
            &Message::FlowMod(flow_mod.clone()),
            &mut buffered,
        );
        flow_mod.buffer_id = of::NO_BUFFER;
        set_flow_mod_buffer_id(version, &mut unbuffered, 0x0102_0304);
        assert_eq!(unbuffered, buffered, "version {version}");
    }
    let mut short = [0u8; 20];
    set_flow_mod_buffer_id(of::OFP_VERSION_1_3, &mut short, 7);
    assert_eq!(short, [0; 20]);
}

fn port(no: u32) -> of::Port {
    of::Port {
        port_no: no,
        name: format!("p{no}"),
        ..of::Port::default()
    }
}

/// A ready session with a PORT_DESC request out; its xid.
fn port_desc_requested(now: Instant, config: SessionConfig) -> (Session, u32) {
    let (mut s, dumps, barrier) = syncing_session(now, config);
    for (xid, _) in &dumps {
        s.handle_bytes(
            now,
            &wire(*xid, &reply(MultipartReplyBody::Flow(vec![]), false)),
        );
    }
    s.handle_bytes(now, &wire(barrier, &Message::BarrierReply));
    while s.poll_event().is_some() {}
    let req = Message::MultipartRequest(of::MultipartRequest {
        flags: 0,
        body: MultipartRequestBody::PortDesc,
    });
    s.request(now, req, 9);
    let xid = sent(&mut s)[0].0.xid;
    (s, xid)
}

fn closed_for_limit(s: &mut Session) -> String {
    loop {
        match s.poll_event() {
            Some(SessionEvent::Closed {
                reason: CloseReason::LimitExceeded(why),
            }) => return why,
            Some(SessionEvent::Reply { .. }) => continue,
            other => panic!("expected a close for a limit, got {other:?}"),
        }
    }
}

#[test]
fn a_reply_of_endless_parts_closes_the_connection_at_the_parts_limit() {
    let now = Instant::now();
    let config = SessionConfig {
        max_reply_parts: 3,
        ..SessionConfig::default()
    };
    let (mut s, xid) = port_desc_requested(now, config);
    for _ in 0..3 {
        s.handle_bytes(
            now,
            &wire(xid, &reply(MultipartReplyBody::PortDesc(vec![]), true)),
        );
        assert!(!s.is_closed());
    }
    s.handle_bytes(
        now,
        &wire(xid, &reply(MultipartReplyBody::PortDesc(vec![]), true)),
    );
    assert!(s.is_closed());
    assert!(
        matches!(
            s.poll_event(),
            Some(SessionEvent::Reply {
                token: 9,
                result: Err(RequestError::Closed)
            })
        ),
        "the waiting request fails"
    );
    assert!(closed_for_limit(&mut s).contains("more than 3 parts"));
    assert_eq!(s.reply_bytes, 0, "the parts are dropped with the session");
}

#[test]
fn a_reply_past_its_byte_limit_closes_the_connection() {
    let now = Instant::now();
    let part = wire(
        1,
        &reply(
            MultipartReplyBody::PortDesc((1..=100).map(port).collect()),
            true,
        ),
    );
    let config = SessionConfig {
        // Two parts fit, the third does not.
        max_reply_bytes: part.len() * 2 + 10,
        ..SessionConfig::default()
    };
    let (mut s, xid) = port_desc_requested(now, config);
    let part = wire(
        xid,
        &reply(
            MultipartReplyBody::PortDesc((1..=100).map(port).collect()),
            true,
        ),
    );
    s.handle_bytes(now, &part);
    s.handle_bytes(now, &part);
    assert!(!s.is_closed());
    assert_eq!(s.reply_bytes, part.len() * 2);
    s.handle_bytes(now, &part);
    assert!(closed_for_limit(&mut s).contains("bytes"));
}

#[test]
fn a_finished_reply_gives_its_bytes_back() {
    let now = Instant::now();
    let (mut s, xid) = port_desc_requested(now, SessionConfig::default());
    s.handle_bytes(
        now,
        &wire(
            xid,
            &reply(MultipartReplyBody::PortDesc(vec![port(1)]), true),
        ),
    );
    assert!(s.reply_bytes > 0);
    s.handle_bytes(
        now,
        &wire(
            xid,
            &reply(MultipartReplyBody::PortDesc(vec![port(2)]), false),
        ),
    );
    assert_eq!(s.reply_bytes, 0);
    match s.poll_event() {
        Some(SessionEvent::Reply {
            result: Ok(Message::MultipartReply(r)),
            ..
        }) => assert_eq!(r.body, MultipartReplyBody::PortDesc(vec![port(1), port(2)])),
        other => panic!("expected the reply, got {other:?}"),
    }
}

#[test]
fn the_connection_budget_counts_every_unfinished_reply_together() {
    let now = Instant::now();
    let part_len = wire(
        1,
        &reply(
            MultipartReplyBody::PortDesc((1..=50).map(port).collect()),
            true,
        ),
    )
    .len();
    let config = SessionConfig {
        // Each reply alone is allowed three parts; together they may hold four.
        max_reply_bytes: part_len * 3,
        max_buffered_bytes: part_len * 4,
        ..SessionConfig::default()
    };
    let (mut s, first) = port_desc_requested(now, config);
    let req = Message::MultipartRequest(of::MultipartRequest {
        flags: 0,
        body: MultipartRequestBody::PortDesc,
    });
    s.request(now, req, 10);
    let second = sent(&mut s)[0].0.xid;
    let part = |xid| {
        wire(
            xid,
            &reply(
                MultipartReplyBody::PortDesc((1..=50).map(port).collect()),
                true,
            ),
        )
    };
    for xid in [first, second, first, second] {
        s.handle_bytes(now, &part(xid));
    }
    assert!(!s.is_closed());
    s.handle_bytes(now, &part(first));
    assert!(closed_for_limit(&mut s).contains("unfinished replies and held messages"));
}

#[test]
fn messages_held_before_ready_count_against_the_budget() {
    let now = Instant::now();
    let one = wire(1, &packet_in(1)).len();
    let config = SessionConfig {
        max_buffered_bytes: one * 3,
        ..SessionConfig::default()
    };
    let (mut s, _, _) = syncing_session(now, config);
    for port in 1..=3 {
        s.handle_bytes(now, &wire(port, &packet_in(port)));
    }
    assert!(!s.is_closed());
    s.handle_bytes(now, &wire(4, &packet_in(4)));
    assert!(closed_for_limit(&mut s).contains("held messages"));
    assert!(s.held.is_empty() && s.held_bytes == 0, "freed at the close");
}

#[test]
fn the_receive_buffer_never_holds_more_than_one_partial_message() {
    // However the peer cuts its stream, whole messages leave the buffer at
    // once: what stays is less than one frame (at most 65535 bytes).
    let now = Instant::now();
    let mut s = ready_session(now);
    let big = wire(1, &Message::EchoRequest(Bytes::from(vec![7u8; 65_000])));
    let mut stream = BytesMut::new();
    for _ in 0..20 {
        stream.extend_from_slice(&big);
    }
    for chunk in stream.chunks(50_000) {
        s.handle_bytes(now, chunk);
        assert!(s.recv_buffer().len() < big.len());
    }
    assert!(s.recv_buffer().is_empty());
}

#[test]
fn a_ready_session_syncs_again_on_request() {
    let now = Instant::now();
    let mut s = ready_session(now);
    while s.poll_event().is_some() {}
    assert!(s.resync(now));
    let out = sent(&mut s);
    let (barrier, dumps) = out[1..].split_last().unwrap();
    assert!(matches!(out[0].1, Message::SetConfig(_)));
    assert_eq!(dumps.len(), 5, "every dump again");
    s.handle_bytes(now, &wire(barrier.0.xid, &Message::BarrierReply));
    let sync = ready_sync(&mut s);
    assert_eq!(sync.features.datapath_id, DPID);
    assert_eq!(sync.unknown.len(), 5, "none answered this time");
}
