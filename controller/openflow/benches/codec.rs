//! Codec throughput on the flow-setup path, one core: FLOW_MOD encodes (owned,
//! and borrowed as the reconciler sends them) and PACKET_IN decodes per second (`cargo bench -p flowgate-openflow`).
//! The messages are the ones the L2 learning path exchanges with the bench
//! tool: a learned-host FLOW_MOD and a 102-byte PACKET_IN.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flowgate_openflow::{
    self as of, FlowMod, FlowModCommand, Instruction, MacAddr, Match, Message, Oxm, PacketIn,
    PacketInReason,
};

fn learned_host_flow_mod() -> FlowMod {
    FlowMod {
        cookie: 0xf002_0200_0000_0001,
        cookie_mask: 0,
        table_id: 4,
        command: FlowModCommand::Add,
        idle_timeout: 300,
        hard_timeout: 0,
        priority: 100,
        buffer_id: of::NO_BUFFER,
        out_port: of::port_no::ANY,
        out_group: of::OFPG_ANY,
        flags: of::flow_mod_flags::SEND_FLOW_REM,
        match_: Match::new()
            .with(Oxm::InPort(3))
            .with(Oxm::EthSrc(MacAddr([2, 0, 0, 0, 0, 1]), None)),
        instructions: vec![Instruction::GotoTable(5)],
    }
}

fn packet_in() -> Bytes {
    let mut frame = vec![0u8; 60];
    frame[..12].copy_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
    let message = Message::PacketIn(PacketIn {
        buffer_id: of::NO_BUFFER,
        total_len: 60,
        reason: PacketInReason::Action,
        table_id: 4,
        cookie: 0xf002_0100_0000_0001,
        match_: Match::new().with(Oxm::InPort(3)),
        data: Bytes::from(frame),
    });
    let mut out = BytesMut::new();
    of::encode(9, &message, &mut out).expect("fits");
    out.freeze()
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(1));
    let owned = learned_host_flow_mod();
    let flow_mod = Message::FlowMod(owned.clone());
    let mut out = BytesMut::with_capacity(1 << 20);
    group.bench_function("flow_mod_encode", |b| {
        b.iter(|| {
            if out.len() > 1 << 19 {
                out.clear();
            }
            of::encode(7, black_box(&flow_mod), &mut out).expect("fits");
        })
    });
    let borrowed = owned.borrowed();
    group.bench_function("flow_mod_encode_borrowed", |b| {
        b.iter(|| {
            if out.len() > 1 << 19 {
                out.clear();
            }
            of::encode_flow_mod(7, black_box(&borrowed), &mut out).expect("fits");
        })
    });
    let bytes = packet_in();
    group.bench_function("packet_in_decode_shared", |b| {
        b.iter(|| black_box(of::decode_shared(&mut black_box(bytes.clone()))))
    });
    group.bench_function("packet_in_decode_copying", |b| {
        b.iter(|| black_box(of::decode(black_box(&bytes))))
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
