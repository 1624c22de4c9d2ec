//! Arbitrary and mutated bytes never make the codec panic (house style #3),
//! checked inside plain `cargo test` with proptest. The cargo-fuzz target in
//! `fuzz/` runs the same idea for millions of inputs (see FUZZING.md).

use std::net::Ipv4Addr;

use bytes::{Bytes, BytesMut};
use flowgate_openflow::*;
use proptest::prelude::*;

/// Valid messages of many types, built with the public API, to mutate.
fn seeds() -> Vec<Vec<u8>> {
    let port = Port {
        port_no: 1,
        hw_addr: MacAddr([0, 1, 2, 3, 4, 5]),
        name: "eth1".into(),
        ..Port::default()
    };
    let flow_match = Match::new()
        .with(Oxm::InPort(1))
        .with(Oxm::EthType(0x0800))
        .with(Oxm::Ipv4Src(
            Ipv4Addr::new(10, 0, 0, 0),
            Some(Ipv4Addr::new(255, 0, 0, 0)),
        ))
        .with(Oxm::Raw {
            class: OFPXMC_NXM_1,
            field: 0,
            hasmask: false,
            payload: Bytes::from_static(&[0, 0, 0, 5]),
        });
    let actions = vec![
        Action::SetField(Oxm::EthDst(MacAddr([2, 0, 0, 0, 0, 1]), None)),
        Action::Experimenter {
            experimenter: NX_EXPERIMENTER_ID,
            data: Bytes::from_static(&[0, 14, 0, 0, 0, 0, 0, 0]),
        },
        Action::output(2),
    ];
    let instructions = vec![
        Instruction::Meter(1),
        Instruction::ApplyActions(actions.clone()),
        Instruction::WriteMetadata {
            metadata: 1,
            mask: 1,
        },
        Instruction::GotoTable(2),
    ];
    let flow_stats = FlowStats {
        table_id: 0,
        duration_sec: 1,
        duration_nsec: 2,
        priority: 3,
        idle_timeout: 4,
        hard_timeout: 5,
        flags: 0,
        cookie: 6,
        packet_count: 7,
        byte_count: 8,
        match_: flow_match.clone(),
        instructions: instructions.clone(),
    };
    let buckets = vec![
        Bucket {
            weight: 3,
            ..Bucket::new(actions.clone())
        },
        Bucket::new(vec![Action::Group(4)]),
    ];
    let bands = vec![
        MeterBand::Drop {
            rate: 1,
            burst_size: 2,
        },
        MeterBand::DscpRemark {
            rate: 3,
            burst_size: 4,
            prec_level: 1,
        },
    ];
    let messages = vec![
        Message::Hello(Hello::with_versions(&[1, 4])),
        Message::FlowMod(FlowMod {
            cookie: 1,
            cookie_mask: 0,
            table_id: 0,
            command: FlowModCommand::Add,
            idle_timeout: 0,
            hard_timeout: 0,
            priority: 10,
            buffer_id: NO_BUFFER,
            out_port: port_no::ANY,
            out_group: OFPG_ANY,
            flags: 0,
            match_: flow_match.clone(),
            instructions: instructions.clone(),
        }),
        Message::GroupMod(GroupMod {
            command: GroupModCommand::Add,
            group_type: GroupType::Select,
            group_id: 1,
            buckets: buckets.clone(),
        }),
        Message::MeterMod(MeterMod {
            command: MeterModCommand::Add,
            flags: meter_flags::KBPS,
            meter_id: 1,
            bands: bands.clone(),
        }),
        Message::PacketIn(PacketIn {
            buffer_id: NO_BUFFER,
            total_len: 4,
            reason: PacketInReason::NoMatch,
            table_id: 0,
            cookie: 0,
            match_: flow_match.clone(),
            data: Bytes::from_static(&[1, 2, 3, 4]),
        }),
        Message::PacketOut(PacketOut {
            buffer_id: NO_BUFFER,
            in_port: port_no::CONTROLLER,
            actions: actions.clone(),
            data: Bytes::from_static(&[1, 2, 3, 4]),
        }),
        Message::PortStatus(PortStatus {
            reason: PortReason::Modify,
            desc: port.clone(),
        }),
        Message::MultipartRequest(MultipartRequest::new(MultipartRequestBody::Flow(
            FlowStatsRequest {
                table_id: OFPTT_ALL,
                out_port: port_no::ANY,
                out_group: OFPG_ANY,
                cookie: 0,
                cookie_mask: 0,
                match_: flow_match.clone(),
            },
        ))),
        Message::MultipartReply(Box::new(MultipartReply::new(MultipartReplyBody::Flow(
            vec![flow_stats.clone(), flow_stats],
        )))),
        Message::MultipartReply(Box::new(MultipartReply::new(
            MultipartReplyBody::GroupDesc(vec![GroupDesc {
                group_type: GroupType::All,
                group_id: 1,
                buckets,
            }]),
        ))),
        Message::MultipartReply(Box::new(MultipartReply::new(
            MultipartReplyBody::MeterConfig(vec![MeterConfig {
                flags: 1,
                meter_id: 1,
                bands,
            }]),
        ))),
        Message::MultipartReply(Box::new(MultipartReply::new(MultipartReplyBody::Group(
            vec![GroupStats {
                group_id: 1,
                bucket_stats: vec![BucketCounter::default(); 2],
                ..GroupStats::default()
            }],
        )))),
        Message::MultipartReply(Box::new(MultipartReply::new(MultipartReplyBody::Meter(
            vec![MeterStats {
                meter_id: 1,
                band_stats: vec![MeterBandStats::default(); 2],
                ..MeterStats::default()
            }],
        )))),
        Message::MultipartReply(Box::new(MultipartReply::new(MultipartReplyBody::PortDesc(
            vec![port],
        )))),
    ];
    messages
        .iter()
        .map(|m| {
            let mut out = BytesMut::new();
            encode(7, m, &mut out).expect("seeds fit");
            out.to_vec()
        })
        .collect()
}

/// Decoding must not panic; what decodes must re-encode to something that
/// decodes again, of the same message type.
fn exercise(buf: &[u8]) {
    if let Ok((header, msg)) = decode(buf) {
        let mut out = BytesMut::new();
        encode_with_version(header.version, header.xid, &msg, &mut out)
            .expect("a decoded message fits");
        let (h2, _) = decode(&out).expect("our encoding of a decoded message decodes");
        assert_eq!(h2.msg_type, header.msg_type);
    }
    // As a stream: framing never claims more than is buffered.
    let mut rest = buf;
    while let Ok(Some(len)) = frame_len(rest) {
        assert!((8..=rest.len()).contains(&len));
        let _ = decode(&rest[..len]);
        rest = &rest[len..];
    }
}

/// Sets the header length to the buffer length so the body parser is reached.
fn fix_length(buf: &mut [u8]) {
    if buf.len() >= 4 {
        let len = u16::try_from(buf.len()).unwrap_or(u16::MAX).to_be_bytes();
        buf[2..4].copy_from_slice(&len);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..512)) {
        exercise(&buf);
    }

    /// A valid OF1.3 header of every type in front of random bytes.
    #[test]
    fn random_bodies_never_panic(
        msg_type in 0u8..=31,
        body in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let mut buf = vec![OFP_VERSION_1_3, msg_type, 0, 0, 0, 0, 0, 1];
        buf.extend(body);
        fix_length(&mut buf);
        exercise(&buf);
    }

    /// Valid messages with bytes overwritten and tails cut: nested length
    /// fields that disagree with their container are the interesting case.
    #[test]
    fn mutated_messages_never_panic(
        seed in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        fix in any::<bool>(),
    ) {
        let seeds = seeds();
        let mut buf = seed.get(&seeds).clone();
        for (at, byte) in edits {
            let i = at.index(buf.len());
            buf[i] = byte;
        }
        let keep = 8 + cut.index(buf.len() - 7);
        buf.truncate(keep);
        if fix {
            fix_length(&mut buf);
        }
        exercise(&buf);
    }
}

#[test]
fn seeds_are_valid_messages() {
    for s in seeds() {
        let (_, msg) = decode(&s).expect("seed decodes");
        let mut out = BytesMut::new();
        encode(7, &msg, &mut out).expect("seeds fit");
        assert_eq!(out.to_vec(), s);
    }
}
