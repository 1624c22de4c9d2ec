//! Proptest strategies for codec values that survive `emit` → `parse`
//! unchanged (shared by every module's round-trip tests, multipart included).
//!
//! Raw/unknown variants are generated only in shapes the parser keeps raw
//! (e.g. unknown type numbers, lengths that keep 8-byte alignment).

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::Union;

use crate::action::Action;
use crate::flow::{FlowMod, FlowModCommand, FlowRemoved};
use crate::group::{Bucket, GroupMod, GroupModCommand, GroupType};
use crate::instruction::Instruction;
use crate::message::Message;
use crate::meter::{MeterBand, MeterMod, MeterModCommand};
use crate::multipart::{MultipartRequest, MultipartRequestBody};
use crate::nicira::{
    learn_flags, set_ct_mark, Controller2Prop, Ct, CtZone, FieldId, Learn, LearnDst, LearnResult,
    LearnSpec, LearnSrc, Nat, NxAction, Sample, StackField,
};
use crate::oxm::{Match, Oxm, OFPXMC_EXPERIMENTER, OFPXMC_NXM_1, OFPXMC_OPENFLOW_BASIC};
use crate::packet::{PacketIn, PacketInReason, PacketOut};
use crate::port::{Port, PortMod, PortReason, PortStatus};
use crate::switch::{
    AsyncConfig, ErrorMsg, Experimenter, Hello, HelloElement, PacketQueue, QueueGetConfigReply,
    QueueGetConfigRequest, QueueProperty, RoleMsg, SwitchConfig, SwitchFeatures, TableMod,
};
use crate::types::MacAddr;
use crate::wire::{Reader, Wire};

/// Arbitrary bytes with a length in `len`.
pub(crate) fn arb_bytes(len: std::ops::Range<usize>) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), len).prop_map(Bytes::from)
}

/// Bytes whose length is `8 * k + rem` for `k < 4`: the payload of a TLV
/// whose total length must stay a multiple of 8.
pub(crate) fn arb_aligned_bytes(rem: usize) -> impl Strategy<Value = Bytes> {
    (0usize..4).prop_flat_map(move |k| vec(any::<u8>(), 8 * k + rem).prop_map(Bytes::from))
}

pub(crate) fn arb_mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>().prop_map(MacAddr)
}

fn arb_v4() -> impl Strategy<Value = Ipv4Addr> {
    any::<[u8; 4]>().prop_map(Ipv4Addr::from)
}

fn arb_v6() -> impl Strategy<Value = Ipv6Addr> {
    any::<[u8; 16]>().prop_map(Ipv6Addr::from)
}

fn opt<S: Strategy>(s: S) -> impl Strategy<Value = Option<S::Value>> {
    proptest::option::of(s)
}

/// Typed OXM fields (basic and NXM_NX), every variant.
fn arb_typed_oxm() -> BoxedStrategy<Oxm> {
    use Oxm::*;
    let u24 = 0u32..0x0100_0000;
    Union::new(vec![
        any::<u32>().prop_map(InPort).boxed(),
        any::<u32>().prop_map(InPhyPort).boxed(),
        (any::<u64>(), opt(any::<u64>()))
            .prop_map(|(v, m)| Metadata(v, m))
            .boxed(),
        (arb_mac(), opt(arb_mac()))
            .prop_map(|(v, m)| EthDst(v, m))
            .boxed(),
        (arb_mac(), opt(arb_mac()))
            .prop_map(|(v, m)| EthSrc(v, m))
            .boxed(),
        any::<u16>().prop_map(EthType).boxed(),
        (any::<u16>(), opt(any::<u16>()))
            .prop_map(|(v, m)| VlanVid(v, m))
            .boxed(),
        any::<u8>().prop_map(VlanPcp).boxed(),
        any::<u8>().prop_map(IpDscp).boxed(),
        any::<u8>().prop_map(IpEcn).boxed(),
        any::<u8>().prop_map(IpProto).boxed(),
        (arb_v4(), opt(arb_v4()))
            .prop_map(|(v, m)| Ipv4Src(v, m))
            .boxed(),
        (arb_v4(), opt(arb_v4()))
            .prop_map(|(v, m)| Ipv4Dst(v, m))
            .boxed(),
        any::<u16>().prop_map(TcpSrc).boxed(),
        any::<u16>().prop_map(TcpDst).boxed(),
        any::<u16>().prop_map(UdpSrc).boxed(),
        any::<u16>().prop_map(UdpDst).boxed(),
        any::<u16>().prop_map(SctpSrc).boxed(),
        any::<u16>().prop_map(SctpDst).boxed(),
        any::<u8>().prop_map(Icmpv4Type).boxed(),
        any::<u8>().prop_map(Icmpv4Code).boxed(),
        any::<u16>().prop_map(ArpOp).boxed(),
        (arb_v4(), opt(arb_v4()))
            .prop_map(|(v, m)| ArpSpa(v, m))
            .boxed(),
        (arb_v4(), opt(arb_v4()))
            .prop_map(|(v, m)| ArpTpa(v, m))
            .boxed(),
        (arb_mac(), opt(arb_mac()))
            .prop_map(|(v, m)| ArpSha(v, m))
            .boxed(),
        (arb_mac(), opt(arb_mac()))
            .prop_map(|(v, m)| ArpTha(v, m))
            .boxed(),
        (arb_v6(), opt(arb_v6()))
            .prop_map(|(v, m)| Ipv6Src(v, m))
            .boxed(),
        (arb_v6(), opt(arb_v6()))
            .prop_map(|(v, m)| Ipv6Dst(v, m))
            .boxed(),
        (any::<u32>(), opt(any::<u32>()))
            .prop_map(|(v, m)| Ipv6Flabel(v, m))
            .boxed(),
        any::<u8>().prop_map(Icmpv6Type).boxed(),
        any::<u8>().prop_map(Icmpv6Code).boxed(),
        arb_v6().prop_map(Ipv6NdTarget).boxed(),
        arb_mac().prop_map(Ipv6NdSll).boxed(),
        arb_mac().prop_map(Ipv6NdTll).boxed(),
        any::<u32>().prop_map(MplsLabel).boxed(),
        any::<u8>().prop_map(MplsTc).boxed(),
        any::<u8>().prop_map(MplsBos).boxed(),
        (u24.clone(), opt(u24))
            .prop_map(|(v, m)| PbbIsid(v, m))
            .boxed(),
        (any::<u64>(), opt(any::<u64>()))
            .prop_map(|(v, m)| TunnelId(v, m))
            .boxed(),
        (any::<u16>(), opt(any::<u16>()))
            .prop_map(|(v, m)| Ipv6Exthdr(v, m))
            .boxed(),
        (0u8..16, any::<u32>(), opt(any::<u32>()))
            .prop_map(|(n, v, m)| Reg(n, v, m))
            .boxed(),
        (arb_v4(), opt(arb_v4()))
            .prop_map(|(v, m)| TunIpv4Src(v, m))
            .boxed(),
        (arb_v4(), opt(arb_v4()))
            .prop_map(|(v, m)| TunIpv4Dst(v, m))
            .boxed(),
        (any::<u32>(), opt(any::<u32>()))
            .prop_map(|(v, m)| PktMark(v, m))
            .boxed(),
        any::<u32>().prop_map(ConjId).boxed(),
        (any::<u32>(), opt(any::<u32>()))
            .prop_map(|(v, m)| CtState(v, m))
            .boxed(),
        any::<u16>().prop_map(CtZone).boxed(),
        (any::<u32>(), opt(any::<u32>()))
            .prop_map(|(v, m)| CtMark(v, m))
            .boxed(),
        (any::<[u8; 16]>(), opt(any::<[u8; 16]>()))
            .prop_map(|(v, m)| CtLabel(v, m))
            .boxed(),
    ])
    .boxed()
}

/// Raw OXMs the parser keeps raw: other classes, experimenter OXMs (with
/// room for the id), unknown basic or NXM_NX fields and typed ones of odd
/// shape.
fn arb_raw_oxm() -> impl Strategy<Value = Oxm> {
    let class = prop_oneof![
        any::<u16>(),
        Just(OFPXMC_OPENFLOW_BASIC),
        Just(OFPXMC_NXM_1),
        Just(OFPXMC_EXPERIMENTER)
    ];
    (class, 0u8..128, any::<bool>(), arb_bytes(4..40))
        .prop_map(|(class, field, hasmask, payload)| Oxm::Raw {
            class,
            field,
            hasmask,
            payload,
        })
        .prop_filter("shape would parse as a typed field", |o| {
            let mut b = BytesMut::new();
            o.emit(&mut b);
            matches!(Oxm::parse(&mut Reader::new(&b, "oxm")), Ok(Oxm::Raw { .. }))
        })
}

pub(crate) fn arb_oxm() -> impl Strategy<Value = Oxm> {
    prop_oneof![4 => arb_typed_oxm(), 1 => arb_raw_oxm()]
}

pub(crate) fn arb_match() -> impl Strategy<Value = Match> {
    vec(arb_oxm(), 0..6).prop_map(Match::from_iter)
}

fn arb_field_id() -> impl Strategy<Value = FieldId> {
    prop_oneof![
        any::<u32>()
            .prop_filter("experimenter class takes 8 bytes", |h| h >> 16 != 0xffff)
            .prop_map(FieldId::Header),
        (any::<u16>(), any::<u32>()).prop_map(|(low, experimenter)| FieldId::Experimenter {
            header: 0xffff_0000 | u32::from(low),
            experimenter,
        }),
    ]
}

fn arb_nat() -> impl Strategy<Value = Nat> {
    (
        any::<u16>(),
        opt(arb_v4()),
        opt(arb_v4()),
        opt(arb_v6()),
        opt(arb_v6()),
        opt(any::<u16>()),
        opt(any::<u16>()),
    )
        .prop_map(|(flags, a, b, c, d, lo, hi)| Nat {
            flags,
            ipv4_min: a,
            ipv4_max: b,
            ipv6_min: c,
            ipv6_max: d,
            proto_min: lo,
            proto_max: hi,
        })
}

fn arb_ct() -> impl Strategy<Value = Ct> {
    let zone = prop_oneof![
        any::<u16>().prop_map(CtZone::Immediate),
        (1u32.., 0u16..1024, 1u8..=64).prop_map(|(header, ofs, n_bits)| CtZone::Field {
            header,
            ofs,
            n_bits
        }),
    ];
    (
        any::<u16>(),
        zone,
        opt(0u8..0xff),
        any::<u16>(),
        opt(any::<u32>()),
        opt(arb_nat()),
    )
        .prop_map(|(flags, zone, recirc_table, alg, mark, nat)| {
            let mut actions = Vec::new();
            actions.extend(mark.map(set_ct_mark));
            actions.extend(nat.map(|n| NxAction::Nat(n).to_action()));
            Ct {
                flags,
                zone,
                recirc_table,
                alg,
                actions,
            }
        })
}

fn arb_learn_spec() -> impl Strategy<Value = LearnSpec> {
    let field = || (arb_field_id(), any::<u16>());
    // A zero spec header ends the list: n_bits is at least 1.
    (1u16..0x800).prop_flat_map(move |n_bits| {
        let value_len = usize::from(n_bits.div_ceil(16)) * 2;
        let src = prop_oneof![
            field().prop_map(|(field, ofs)| LearnSrc::Field { field, ofs }),
            vec(any::<u8>(), value_len).prop_map(|v| LearnSrc::Value(Bytes::from(v))),
        ];
        let dst = prop_oneof![
            field().prop_map(|(field, ofs)| LearnDst::Match { field, ofs }),
            field().prop_map(|(field, ofs)| LearnDst::Load { field, ofs }),
            Just(LearnDst::Output),
        ];
        (src, dst).prop_map(move |(src, dst)| LearnSpec { n_bits, src, dst })
    })
}

fn arb_learn() -> impl Strategy<Value = Learn> {
    let flags = any::<u16>().prop_map(|f| f & !learn_flags::WRITE_RESULT);
    let result =
        opt((arb_field_id(), any::<u16>()).prop_map(|(field, ofs)| LearnResult { field, ofs }));
    (
        (any::<[u16; 5]>(), any::<u64>(), flags, any::<u8>()),
        any::<u32>(),
        result,
        vec(arb_learn_spec(), 0..4),
    )
        .prop_map(
            |(
                ([idle, hard, priority, fin_idle, fin_hard], cookie, flags, table_id),
                limit,
                result_dst,
                specs,
            )| Learn {
                idle_timeout: idle,
                hard_timeout: hard,
                priority,
                cookie,
                flags,
                table_id,
                fin_idle_timeout: fin_idle,
                fin_hard_timeout: fin_hard,
                limit,
                result_dst,
                specs,
            },
        )
}

/// Controller2 properties, typed and raw in the shapes the parser keeps raw.
fn arb_controller2_prop() -> impl Strategy<Value = Controller2Prop> {
    prop_oneof![
        any::<u16>().prop_map(Controller2Prop::MaxLen),
        any::<u16>().prop_map(Controller2Prop::ControllerId),
        any::<u8>().prop_map(Controller2Prop::Reason),
        arb_bytes(0..12).prop_map(Controller2Prop::Userdata),
        Just(Controller2Prop::Pause),
        any::<u32>().prop_map(Controller2Prop::MeterId),
        (any::<u16>(), arb_bytes(0..12))
            .prop_map(|(prop_type, data)| Controller2Prop::Unknown { prop_type, data })
            .prop_filter("shape would parse as a typed property", |p| {
                let mut b = BytesMut::new();
                p.emit(&mut b);
                matches!(
                    Controller2Prop::parse(&mut Reader::new(&b, "prop")),
                    Ok(Controller2Prop::Unknown { .. })
                )
            }),
    ]
}

/// Nicira actions, every variant, in shapes that re-encode byte for byte.
pub(crate) fn arb_nx_action() -> impl Strategy<Value = NxAction> {
    let sample = (1u16.., any::<[u32; 3]>(), opt(0u16..0xffff), 0u8..3).prop_map(
        |(probability, [set, domain, point], sampling_port, direction)| Sample {
            probability,
            collector_set_id: set,
            obs_domain_id: domain,
            obs_point_id: point,
            sampling_port,
            direction,
        },
    );
    let stack =
        || {
            (arb_field_id(), any::<u16>(), any::<u16>())
                .prop_map(|(field, ofs, n_bits)| StackField { field, ofs, n_bits })
        };
    Union::new(vec![
        (any::<u16>(), any::<u8>())
            .prop_map(|(in_port, table)| NxAction::ResubmitTable { in_port, table })
            .boxed(),
        Just(NxAction::CtClear).boxed(),
        arb_nat().prop_map(NxAction::Nat).boxed(),
        arb_ct().prop_map(NxAction::Ct).boxed(),
        arb_learn().prop_map(NxAction::Learn).boxed(),
        (any::<u32>(), any::<u8>(), any::<u8>())
            .prop_map(|(id, clause, n_clauses)| NxAction::Conjunction {
                id,
                clause,
                n_clauses,
            })
            .boxed(),
        (any::<u32>(), 0u16..1024, 1u8..=64, any::<u64>())
            .prop_map(|(dst, ofs, n_bits, value)| NxAction::RegLoad {
                dst,
                ofs,
                n_bits,
                value,
            })
            .boxed(),
        arb_oxm().prop_map(NxAction::RegLoad2).boxed(),
        (any::<[u16; 3]>(), arb_field_id(), arb_field_id())
            .prop_map(|([n_bits, src_ofs, dst_ofs], src, dst)| NxAction::RegMove {
                n_bits,
                src,
                src_ofs,
                dst,
                dst_ofs,
            })
            .boxed(),
        vec(arb_controller2_prop(), 0..4)
            .prop_map(NxAction::Controller2)
            .boxed(),
        (any::<u16>(), any::<u32>())
            .prop_map(|(port, max_len)| NxAction::OutputTrunc { port, max_len })
            .boxed(),
        vec(any::<u8>(), 0..20)
            .prop_map(|mut note| {
                // Trailing zeros are the wire's padding, not the note.
                while note.last() == Some(&0) {
                    note.pop();
                }
                NxAction::Note(Bytes::from(note))
            })
            .boxed(),
        sample.prop_map(NxAction::Sample).boxed(),
        vec(any::<u16>(), 0..6)
            .prop_map(NxAction::DecTtlCntIds)
            .boxed(),
        (any::<u16>(), any::<u16>())
            .prop_map(|(idle_timeout, hard_timeout)| NxAction::FinTimeout {
                idle_timeout,
                hard_timeout,
            })
            .boxed(),
        stack().prop_map(NxAction::StackPush).boxed(),
        stack().prop_map(NxAction::StackPop).boxed(),
    ])
}

/// Action type numbers OF1.3 does not define.
fn unknown_action_type() -> impl Strategy<Value = u16> {
    prop_oneof![1u16..=10, 13u16..=14, 28u16..0xffff]
}

pub(crate) fn arb_action() -> impl Strategy<Value = Action> {
    Union::new(vec![
        (any::<u32>(), any::<u16>())
            .prop_map(|(port, max_len)| Action::Output { port, max_len })
            .boxed(),
        Just(Action::CopyTtlOut).boxed(),
        Just(Action::CopyTtlIn).boxed(),
        any::<u8>().prop_map(Action::SetMplsTtl).boxed(),
        Just(Action::DecMplsTtl).boxed(),
        any::<u16>().prop_map(Action::PushVlan).boxed(),
        Just(Action::PopVlan).boxed(),
        any::<u16>().prop_map(Action::PushMpls).boxed(),
        any::<u16>().prop_map(Action::PopMpls).boxed(),
        any::<u32>().prop_map(Action::SetQueue).boxed(),
        any::<u32>().prop_map(Action::Group).boxed(),
        any::<u8>().prop_map(Action::SetNwTtl).boxed(),
        Just(Action::DecNwTtl).boxed(),
        arb_oxm().prop_map(Action::SetField).boxed(),
        any::<u16>().prop_map(Action::PushPbb).boxed(),
        Just(Action::PopPbb).boxed(),
        (any::<u32>(), arb_aligned_bytes(0))
            .prop_map(|(experimenter, data)| Action::Experimenter { experimenter, data })
            .boxed(),
        arb_nx_action().prop_map(Action::from).boxed(),
        (unknown_action_type(), arb_aligned_bytes(4))
            .prop_map(|(action_type, data)| Action::Unknown { action_type, data })
            .boxed(),
    ])
}

pub(crate) fn arb_actions() -> impl Strategy<Value = Vec<Action>> {
    vec(arb_action(), 0..4)
}

pub(crate) fn arb_instruction() -> impl Strategy<Value = Instruction> {
    Union::new(vec![
        any::<u8>().prop_map(Instruction::GotoTable).boxed(),
        (any::<u64>(), any::<u64>())
            .prop_map(|(metadata, mask)| Instruction::WriteMetadata { metadata, mask })
            .boxed(),
        arb_actions().prop_map(Instruction::WriteActions).boxed(),
        arb_actions().prop_map(Instruction::ApplyActions).boxed(),
        Just(Instruction::ClearActions).boxed(),
        any::<u32>().prop_map(Instruction::Meter).boxed(),
        (any::<u32>(), arb_aligned_bytes(0))
            .prop_map(|(experimenter, data)| Instruction::Experimenter { experimenter, data })
            .boxed(),
        (prop_oneof![Just(0u16), 7u16..0xffff], arb_aligned_bytes(4))
            .prop_map(|(instruction_type, data)| Instruction::Unknown {
                instruction_type,
                data,
            })
            .boxed(),
    ])
}

pub(crate) fn arb_instructions() -> impl Strategy<Value = Vec<Instruction>> {
    vec(arb_instruction(), 0..4)
}

pub(crate) fn arb_bucket() -> impl Strategy<Value = Bucket> {
    (any::<u16>(), any::<u32>(), any::<u32>(), arb_actions()).prop_map(
        |(weight, watch_port, watch_group, actions)| Bucket {
            weight,
            watch_port,
            watch_group,
            actions,
        },
    )
}

pub(crate) fn arb_group_type() -> impl Strategy<Value = GroupType> {
    any::<u8>().prop_map(GroupType::from)
}

pub(crate) fn arb_group_mod() -> impl Strategy<Value = GroupMod> {
    (
        any::<u16>().prop_map(GroupModCommand::from),
        arb_group_type(),
        any::<u32>(),
        vec(arb_bucket(), 0..4),
    )
        .prop_map(|(command, group_type, group_id, buckets)| GroupMod {
            command,
            group_type,
            group_id,
            buckets,
        })
}

pub(crate) fn arb_meter_band() -> impl Strategy<Value = MeterBand> {
    let unknown_type = any::<u16>().prop_filter("known band type", |t| ![1, 2, 0xffff].contains(t));
    prop_oneof![
        (any::<u32>(), any::<u32>())
            .prop_map(|(rate, burst_size)| MeterBand::Drop { rate, burst_size }),
        (any::<u32>(), any::<u32>(), any::<u8>()).prop_map(|(rate, burst_size, prec_level)| {
            MeterBand::DscpRemark {
                rate,
                burst_size,
                prec_level,
            }
        }),
        (
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            arb_aligned_bytes(0)
        )
            .prop_map(
                |(rate, burst_size, experimenter, data)| MeterBand::Experimenter {
                    rate,
                    burst_size,
                    experimenter,
                    data,
                }
            ),
        (
            unknown_type,
            any::<u32>(),
            any::<u32>(),
            arb_aligned_bytes(4)
        )
            .prop_map(|(band_type, rate, burst_size, data)| MeterBand::Unknown {
                band_type,
                rate,
                burst_size,
                data,
            }),
    ]
}

pub(crate) fn arb_meter_bands() -> impl Strategy<Value = Vec<MeterBand>> {
    vec(arb_meter_band(), 0..4)
}

pub(crate) fn arb_meter_mod() -> impl Strategy<Value = MeterMod> {
    (
        any::<u16>().prop_map(MeterModCommand::from),
        any::<u16>(),
        any::<u32>(),
        arb_meter_bands(),
    )
        .prop_map(|(command, flags, meter_id, bands)| MeterMod {
            command,
            flags,
            meter_id,
            bands,
        })
}

pub(crate) fn arb_port() -> impl Strategy<Value = Port> {
    (
        any::<u32>(),
        arb_mac(),
        "[a-z0-9-]{0,15}",
        any::<[u32; 8]>(),
    )
        .prop_map(|(port_no, hw_addr, name, v)| Port {
            port_no,
            hw_addr,
            name,
            config: v[0],
            state: v[1],
            curr: v[2],
            advertised: v[3],
            supported: v[4],
            peer: v[5],
            curr_speed: v[6],
            max_speed: v[7],
        })
}

pub(crate) fn arb_flow_mod() -> impl Strategy<Value = FlowMod> {
    (
        (any::<u64>(), any::<u64>(), any::<u8>(), any::<u8>()),
        (any::<u16>(), any::<u16>(), any::<u16>()),
        (any::<u32>(), any::<u32>(), any::<u32>(), any::<u16>()),
        arb_match(),
        arb_instructions(),
    )
        .prop_map(
            |(
                (cookie, cookie_mask, table_id, command),
                (idle_timeout, hard_timeout, priority),
                (buffer_id, out_port, out_group, flags),
                match_,
                instructions,
            )| FlowMod {
                cookie,
                cookie_mask,
                table_id,
                command: FlowModCommand::from(command),
                idle_timeout,
                hard_timeout,
                priority,
                buffer_id,
                out_port,
                out_group,
                flags,
                match_,
                instructions,
            },
        )
}

pub(crate) fn arb_flow_removed() -> impl Strategy<Value = FlowRemoved> {
    (
        (any::<u64>(), any::<u16>(), any::<u8>(), any::<u8>()),
        (any::<u32>(), any::<u32>(), any::<u16>(), any::<u16>()),
        (any::<u64>(), any::<u64>()),
        arb_match(),
    )
        .prop_map(
            |(
                (cookie, priority, reason, table_id),
                (duration_sec, duration_nsec, idle_timeout, hard_timeout),
                (packet_count, byte_count),
                match_,
            )| FlowRemoved {
                cookie,
                priority,
                reason,
                table_id,
                duration_sec,
                duration_nsec,
                idle_timeout,
                hard_timeout,
                packet_count,
                byte_count,
                match_,
            },
        )
}

pub(crate) fn arb_packet_in() -> impl Strategy<Value = PacketIn> {
    (
        (
            any::<u32>(),
            any::<u16>(),
            any::<u8>(),
            any::<u8>(),
            any::<u64>(),
        ),
        arb_match(),
        arb_bytes(0..100),
    )
        .prop_map(
            |((buffer_id, total_len, reason, table_id, cookie), match_, data)| PacketIn {
                buffer_id,
                total_len,
                reason: PacketInReason::from(reason),
                table_id,
                cookie,
                match_,
                data,
            },
        )
}

pub(crate) fn arb_packet_out() -> impl Strategy<Value = PacketOut> {
    (any::<u32>(), any::<u32>(), arb_actions(), arb_bytes(0..100)).prop_map(
        |(buffer_id, in_port, actions, data)| PacketOut {
            buffer_id,
            in_port,
            actions,
            data,
        },
    )
}

fn arb_hello() -> impl Strategy<Value = Hello> {
    let element = prop_oneof![
        vec(any::<u32>(), 0..3).prop_map(HelloElement::VersionBitmap),
        (2u16.., arb_bytes(0..12))
            .prop_map(|(elem_type, data)| HelloElement::Unknown { elem_type, data }),
    ];
    vec(element, 0..3).prop_map(|elements| Hello { elements })
}

fn arb_error() -> impl Strategy<Value = ErrorMsg> {
    prop_oneof![
        (0u16..0xffff, any::<u16>(), arb_bytes(0..64)).prop_map(|(err_type, code, data)| {
            ErrorMsg::Standard {
                err_type,
                code,
                data,
            }
        }),
        (any::<u16>(), any::<u32>(), arb_bytes(0..64)).prop_map(
            |(exp_type, experimenter, data)| ErrorMsg::Experimenter {
                exp_type,
                experimenter,
                data,
            }
        ),
    ]
}

fn arb_queue_property() -> impl Strategy<Value = QueueProperty> {
    prop_oneof![
        any::<u16>().prop_map(QueueProperty::MinRate),
        any::<u16>().prop_map(QueueProperty::MaxRate),
        (any::<u32>(), arb_bytes(0..20))
            .prop_map(|(experimenter, data)| QueueProperty::Experimenter { experimenter, data }),
        (3u16..0xffff, arb_bytes(4..24))
            .prop_map(|(property, data)| QueueProperty::Unknown { property, data }),
    ]
}

fn arb_queue_reply() -> impl Strategy<Value = QueueGetConfigReply> {
    let queue = (any::<u32>(), any::<u32>(), vec(arb_queue_property(), 0..3)).prop_map(
        |(queue_id, port, properties)| PacketQueue {
            queue_id,
            port,
            properties,
        },
    );
    (any::<u32>(), vec(queue, 0..3)).prop_map(|(port, queues)| QueueGetConfigReply { port, queues })
}

fn arb_async() -> impl Strategy<Value = AsyncConfig> {
    any::<[u32; 6]>().prop_map(|v| AsyncConfig {
        packet_in_mask: [v[0], v[1]],
        port_status_mask: [v[2], v[3]],
        flow_removed_mask: [v[4], v[5]],
    })
}

fn arb_role() -> impl Strategy<Value = RoleMsg> {
    (any::<u32>(), any::<u64>()).prop_map(|(role, generation_id)| RoleMsg {
        role,
        generation_id,
    })
}

fn arb_config() -> impl Strategy<Value = SwitchConfig> {
    (any::<u16>(), any::<u16>()).prop_map(|(flags, miss_send_len)| SwitchConfig {
        flags,
        miss_send_len,
    })
}

/// Every non-multipart message type (multipart gets two simple requests so
/// the dispatch is covered; its own strategies live with its codec).
pub(crate) fn arb_message() -> impl Strategy<Value = Message> {
    Union::new(vec![
        arb_hello().prop_map(Message::Hello).boxed(),
        arb_error().prop_map(Message::Error).boxed(),
        arb_bytes(0..32).prop_map(Message::EchoRequest).boxed(),
        arb_bytes(0..32).prop_map(Message::EchoReply).boxed(),
        (any::<u32>(), any::<u32>(), arb_bytes(0..32))
            .prop_map(|(experimenter, exp_type, data)| {
                Message::Experimenter(Experimenter {
                    experimenter,
                    exp_type,
                    data,
                })
            })
            .boxed(),
        Just(Message::FeaturesRequest).boxed(),
        (
            any::<u64>(),
            any::<u32>(),
            any::<u8>(),
            any::<u8>(),
            any::<u32>(),
            any::<u32>(),
        )
            .prop_map(
                |(datapath_id, n_buffers, n_tables, auxiliary_id, capabilities, reserved)| {
                    Message::FeaturesReply(SwitchFeatures {
                        datapath_id,
                        n_buffers,
                        n_tables,
                        auxiliary_id,
                        capabilities,
                        reserved,
                    })
                },
            )
            .boxed(),
        Just(Message::GetConfigRequest).boxed(),
        arb_config().prop_map(Message::GetConfigReply).boxed(),
        arb_config().prop_map(Message::SetConfig).boxed(),
        arb_packet_in().prop_map(Message::PacketIn).boxed(),
        arb_flow_removed().prop_map(Message::FlowRemoved).boxed(),
        (any::<u8>(), arb_port())
            .prop_map(|(reason, desc)| {
                Message::PortStatus(PortStatus {
                    reason: PortReason::from(reason),
                    desc,
                })
            })
            .boxed(),
        arb_packet_out().prop_map(Message::PacketOut).boxed(),
        arb_flow_mod().prop_map(Message::FlowMod).boxed(),
        arb_group_mod().prop_map(Message::GroupMod).boxed(),
        (any::<u32>(), arb_mac(), any::<[u32; 3]>())
            .prop_map(|(port_no, hw_addr, v)| {
                Message::PortMod(PortMod {
                    port_no,
                    hw_addr,
                    config: v[0],
                    mask: v[1],
                    advertise: v[2],
                })
            })
            .boxed(),
        (any::<u8>(), any::<u32>())
            .prop_map(|(table_id, config)| Message::TableMod(TableMod { table_id, config }))
            .boxed(),
        prop_oneof![
            Just(MultipartRequestBody::Desc),
            Just(MultipartRequestBody::PortDesc)
        ]
        .prop_map(|b| Message::MultipartRequest(MultipartRequest::new(b)))
        .boxed(),
        Just(Message::BarrierRequest).boxed(),
        Just(Message::BarrierReply).boxed(),
        any::<u32>()
            .prop_map(|port| Message::QueueGetConfigRequest(QueueGetConfigRequest { port }))
            .boxed(),
        arb_queue_reply()
            .prop_map(Message::QueueGetConfigReply)
            .boxed(),
        arb_role().prop_map(Message::RoleRequest).boxed(),
        arb_role().prop_map(Message::RoleReply).boxed(),
        Just(Message::GetAsyncRequest).boxed(),
        arb_async().prop_map(Message::GetAsyncReply).boxed(),
        arb_async().prop_map(Message::SetAsync).boxed(),
        arb_meter_mod().prop_map(Message::MeterMod).boxed(),
        (30u8.., arb_bytes(0..32))
            .prop_map(|(msg_type, body)| Message::Unknown { msg_type, body })
            .boxed(),
    ])
}
