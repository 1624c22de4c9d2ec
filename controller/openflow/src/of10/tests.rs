use super::*;
use crate::oxm::{Match, Oxm};
use crate::packet::PacketOut;
use crate::types::{port_no, NO_BUFFER};

/// A raw 1.0 message as a switch would send it.
fn frame(t: u8, xid: u32, body: &[u8]) -> Vec<u8> {
    let mut out = vec![OFP_VERSION_1_0, t];
    out.extend_from_slice(&(8 + body.len() as u16).to_be_bytes());
    out.extend_from_slice(&xid.to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn phy_port(no: u16, name: &str, state: u32) -> Vec<u8> {
    let mut b = no.to_be_bytes().to_vec();
    b.extend_from_slice(&[2, 0, 0, 0, 0, no as u8]);
    let mut n = [0u8; 16];
    n[..name.len()].copy_from_slice(name.as_bytes());
    b.extend_from_slice(&n);
    b.extend_from_slice(&0u32.to_be_bytes()); // config
    b.extend_from_slice(&state.to_be_bytes());
    b.extend_from_slice(&(1u32 << 6 | 1 << 7).to_be_bytes()); // 10GB_FD | copper
    b.extend_from_slice(&[0; 12]);
    b
}

#[test]
fn packet_in_becomes_a_table_miss_with_in_port() {
    let mut body = vec![0, 0, 1, 0, 0, 4, 0, 3, 0, 0]; // buffer 256, total 4, port 3, NO_MATCH
    body.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    let (h, m) = decode(&frame(msg_type::PACKET_IN, 9, &body)).unwrap();
    assert_eq!((h.version, h.xid), (1, 9));
    let want = PacketIn {
        buffer_id: 256,
        total_len: 4,
        reason: PacketInReason::NoMatch,
        table_id: 0,
        cookie: 0,
        match_: Match::new().with(Oxm::InPort(3)),
        data: bytes::Bytes::from_static(&[0xde, 0xad, 0xbe, 0xef]),
    };
    assert_eq!(m, Message::PacketIn(want.clone()));
    assert!(decode(&frame(msg_type::PACKET_IN, 9, &body[..9])).is_err());
    // Sharing the frame gives the same message, its data a view of it.
    let mut shared = bytes::Bytes::from(frame(msg_type::PACKET_IN, 9, &body));
    let at = shared.as_ptr() as usize;
    let (h, m) = decode_shared(&mut shared).unwrap();
    assert_eq!((h.version, h.xid, h.length), (1, 9, 8 + 14));
    let Message::PacketIn(p) = &m else {
        panic!("{m:?}")
    };
    assert_eq!(p.data.as_ptr() as usize, at + 18, "not copied");
    assert_eq!(m, Message::PacketIn(want));
    // Anything else, or a short packet-in, decodes as `decode` does.
    let mut short = bytes::Bytes::from(frame(msg_type::PACKET_IN, 9, &body[..9]));
    assert!(decode_shared(&mut short).is_err());
    let mut echo = bytes::Bytes::from(frame(msg_type::ECHO_REQUEST, 2, b"x"));
    assert!(matches!(
        decode_shared(&mut echo),
        Ok((_, Message::EchoRequest(_)))
    ));
}

#[test]
fn features_reply_carries_the_ports() {
    let mut body = 0x42u64.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 0, 1, 0, 1, 0, 0, 0]); // 256 buffers, 1 table, pad
    body.extend_from_slice(&0xc7u32.to_be_bytes());
    body.extend_from_slice(&0xfffu32.to_be_bytes());
    body.extend(phy_port(1, "s1-eth1", 0));
    body.extend(phy_port(0xfffe, "s1", 1));
    let bytes = frame(msg_type::FEATURES_REPLY, 2, &body);
    let (features, ports) = decode_features_reply(&bytes).unwrap();
    assert_eq!((features.datapath_id, features.n_tables), (0x42, 1));
    assert_eq!(ports.len(), 2);
    assert_eq!((ports[0].port_no, ports[0].name.as_str()), (1, "s1-eth1"));
    assert_eq!(ports[0].state, port_state::LIVE);
    assert_eq!(ports[0].curr, 1 << 6, "copper is not a rate");
    assert_eq!(ports[1].port_no, port_no::LOCAL);
    assert_eq!(ports[1].state, port_state::LINK_DOWN);
    assert!(matches!(decode(&bytes), Ok((_, Message::FeaturesReply(f))) if f == features));
}

#[test]
fn flow_mod_layout() {
    let fm = FlowMod {
        cookie: 0xf002_0000_0000_0001,
        cookie_mask: 0,
        table_id: 0,
        command: FlowModCommand::Add,
        idle_timeout: 300,
        hard_timeout: 0,
        priority: 100,
        buffer_id: NO_BUFFER,
        out_port: port_no::ANY,
        out_group: crate::types::OFPG_ANY,
        flags: crate::flow::flow_mod_flags::SEND_FLOW_REM,
        match_: Match::new()
            .with(Oxm::InPort(1))
            .with(Oxm::EthDst(MacAddr([2, 0, 0, 0, 0, 2]), None)),
        instructions: vec![Instruction::ApplyActions(vec![Action::Output {
            port: 2,
            max_len: 0,
        }])],
    };
    let mut out = BytesMut::new();
    encode(7, &Message::FlowMod(fm.clone()), &mut out).unwrap();
    let mut want = vec![1, 14, 0, 80, 0, 0, 0, 7];
    let wild = wildcards::ALL & !(wildcards::IN_PORT | wildcards::DL_DST);
    want.extend_from_slice(&wild.to_be_bytes());
    want.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2]); // in_port, dl_src, dl_dst
    want.extend_from_slice(&[0; 22]); // vlan .. tp_dst
    want.extend_from_slice(&0xf002_0000_0000_0001u64.to_be_bytes());
    want.extend_from_slice(&[0, 0, 1, 44, 0, 0, 0, 100]); // ADD, idle 300, hard 0, prio 100
    want.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 1]); // no buffer, out NONE, SEND_FLOW_REM
    want.extend_from_slice(&[0, 0, 0, 8, 0, 2, 0, 0]); // output:2
    assert_eq!(out.to_vec(), want);

    // What 1.0 can not say is refused and nothing is written.
    let mut goto = fm.clone();
    goto.instructions.push(Instruction::GotoTable(1));
    let mut table = fm.clone();
    table.table_id = 4;
    let mut out = BytesMut::new();
    assert_eq!(
        encode(1, &Message::FlowMod(goto), &mut out),
        Err(EncodeError::Unsupported(Unsupported::Instruction))
    );
    assert_eq!(
        encode(1, &Message::FlowMod(table), &mut out),
        Err(EncodeError::Unsupported(Unsupported::Table(4)))
    );
    assert!(encode(
        1,
        &Message::GroupMod(crate::group::GroupMod {
            command: crate::group::GroupModCommand::Add,
            group_type: crate::group::GroupType::All,
            group_id: 1,
            buckets: vec![],
        }),
        &mut out
    )
    .is_err());
    assert!(out.is_empty());
}

#[test]
fn packet_out_layout() {
    let po = PacketOut {
        buffer_id: 5,
        in_port: 3,
        actions: vec![Action::Output {
            port: port_no::FLOOD,
            max_len: 0,
        }],
        data: bytes::Bytes::new(),
    };
    let mut out = BytesMut::new();
    encode(2, &Message::PacketOut(po), &mut out).unwrap();
    assert_eq!(
        out.to_vec(),
        vec![1, 13, 0, 24, 0, 0, 0, 2, 0, 0, 0, 5, 0, 3, 0, 8, 0, 0, 0, 8, 0xff, 0xfb, 0, 0]
    );
}

#[test]
fn small_messages_and_requests() {
    let cases: Vec<(Message, Vec<u8>)> = vec![
        (
            Message::Hello(Hello::default()),
            vec![1, 0, 0, 8, 0, 0, 0, 1],
        ),
        (Message::FeaturesRequest, vec![1, 5, 0, 8, 0, 0, 0, 1]),
        (Message::BarrierRequest, vec![1, 18, 0, 8, 0, 0, 0, 1]),
        (
            Message::SetConfig(SwitchConfig {
                flags: 0,
                miss_send_len: 128,
            }),
            vec![1, 9, 0, 12, 0, 0, 0, 1, 0, 0, 0, 128],
        ),
        (
            Message::MultipartRequest(crate::multipart::MultipartRequest {
                flags: 0,
                body: MultipartRequestBody::Desc,
            }),
            vec![1, 16, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0],
        ),
        (
            Message::MultipartRequest(crate::multipart::MultipartRequest {
                flags: 0,
                body: MultipartRequestBody::PortStats {
                    port_no: port_no::ANY,
                },
            }),
            vec![
                1, 16, 0, 20, 0, 0, 0, 1, 0, 4, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0,
            ],
        ),
    ];
    for (m, want) in cases {
        let mut out = BytesMut::new();
        encode(1, &m, &mut out).unwrap();
        assert_eq!(out.to_vec(), want, "{m:?}");
    }
    let error = frame(msg_type::ERROR, 3, &[0, 3, 0, 1, 0xaa]);
    assert_eq!(
        decode(&error).unwrap().1,
        Message::Error(ErrorMsg::Standard {
            err_type: error_type::FLOW_MOD_FAILED,
            code: 1,
            data: bytes::Bytes::from_static(&[0xaa]),
        })
    );
    assert_eq!(
        decode(&frame(msg_type::BARRIER_REPLY, 4, &[])).unwrap().1,
        Message::BarrierReply
    );
    // A 1.3 message on a 1.0 connection is a version error.
    assert!(matches!(
        decode(&[4, 21, 0, 8, 0, 0, 0, 1]),
        Err(DecodeError::BadVersion(4))
    ));
}

#[test]
fn flow_stats_and_flow_removed_read_back_as_13() {
    let m = Match::new()
        .with(Oxm::InPort(1))
        .with(Oxm::EthDst(MacAddr([2, 0, 0, 0, 0, 2]), None));
    let mut raw_match = BytesMut::new();
    emit_match(&m, &mut raw_match).unwrap();
    let mut entry = vec![0, 96, 0, 0];
    entry.extend_from_slice(&raw_match);
    entry.extend_from_slice(&[
        0, 0, 0, 9, 0, 0, 0, 0, 0, 100, 1, 44, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    entry.extend_from_slice(&7u64.to_be_bytes()); // cookie
    entry.extend_from_slice(&[0; 16]); // counters
    entry.extend_from_slice(&[0, 0, 0, 8, 0, 2, 0, 0]);
    let mut body = vec![0, 1, 0, 0];
    body.extend(entry);
    let (_, reply) = decode(&frame(msg_type::STATS_REPLY, 5, &body)).unwrap();
    let Message::MultipartReply(reply) = reply else {
        panic!("{reply:?}");
    };
    let MultipartReplyBody::Flow(flows) = reply.body else {
        panic!("{reply:?}");
    };
    assert_eq!(flows.len(), 1);
    let f = &flows[0];
    assert_eq!(
        (f.cookie, f.priority, f.idle_timeout, f.duration_sec),
        (7, 100, 300, 9)
    );
    assert_eq!(f.match_.fields.len(), 2);
    assert_eq!(
        f.instructions,
        vec![Instruction::ApplyActions(vec![Action::Output {
            port: 2,
            max_len: 0
        }])]
    );

    let mut removed = raw_match.to_vec();
    removed.extend_from_slice(&7u64.to_be_bytes());
    removed.extend_from_slice(&[0, 100, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 44, 0, 0]);
    removed.extend_from_slice(&[0; 16]);
    let (_, m2) = decode(&frame(msg_type::FLOW_REMOVED, 6, &removed)).unwrap();
    assert!(
        matches!(m2, Message::FlowRemoved(r) if r.cookie == 7 && r.priority == 100 && r.idle_timeout == 300 && r.match_ == f.match_)
    );
}

#[test]
fn truncated_input_never_panics() {
    let mut body = 0x42u64.to_be_bytes().to_vec();
    body.extend_from_slice(&[0; 16]);
    body.extend(phy_port(1, "p", 0));
    for t in 0..=20u8 {
        for cut in 0..body.len() {
            let _ = decode(&frame(t, 1, &body[..cut]));
        }
    }
}
