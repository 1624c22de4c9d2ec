//! Fixtures captured from `ovs-ofctl -O OpenFlow13 add-flow` (Open vSwitch
//! 3.1) against a fake switch: the action bytes OVS sends for each text
//! form. `tests/nicira_oracle.rs` repeats the capture live.

use super::*;
use crate::wire::Wire;

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex fixture"))
        .collect()
}

fn emit(a: &Action) -> Vec<u8> {
    let mut out = BytesMut::new();
    a.emit(&mut out);
    out.to_vec()
}

/// The raw bytes parse as the typed action, and the typed action emits
/// exactly those bytes.
fn check(hex: &str, want: NxAction) {
    let bytes = unhex(hex);
    let mut r = Reader::new(&bytes, "fixture");
    let raw = Action::parse(&mut r).expect("codec parses the action");
    r.finish().expect("one action");
    assert_eq!(NxAction::from_action(&raw), Some(want.clone()), "{hex}");
    assert_eq!(emit(&want.to_action()), bytes, "{want:?}");
    assert_eq!(Action::from(want), raw);
}

#[test]
fn ct_recirculate() {
    // ct(table=1,zone=1)
    check(
        "ffff0018 00002320 0023 0000 00000000 0001 01 000000 0000",
        NxAction::Ct(Ct::recirculate(1, 1)),
    );
}

#[test]
fn ct_commit_setting_ct_mark() {
    // ct(commit,zone=1,exec(set_field:0x5->ct_mark))
    check(
        "ffff0028 00002320 0023 0001 00000000 0001 ff 000000 0000
         0019 0010 0001d604 00000005 00000000",
        NxAction::Ct(Ct::commit(1).with_actions(vec![set_ct_mark(5)])),
    );
}

#[test]
fn ct_zone_from_register_with_alg_and_plain_nat() {
    // ct(commit,zone=NXM_NX_REG0[0..15],alg=ftp,nat)
    check(
        "ffff0028 00002320 0023 0001 00010004 000f ff 000000 0015
         ffff0010 00002320 0024 0000 0000 0000",
        NxAction::Ct(Ct {
            flags: ct_flags::COMMIT,
            zone: CtZone::Field {
                header: 0x0001_0004,
                ofs: 0,
                n_bits: 16,
            },
            recirc_table: None,
            alg: 21,
            actions: vec![NxAction::Nat(Nat::default()).to_action()],
        }),
    );
}

#[test]
fn ct_with_ipv4_source_nat() {
    // ct(commit,nat(src=10.0.0.1-10.0.0.5:1000-2000,random))
    let nat = Nat {
        flags: nat_flags::SRC | nat_flags::PROTO_RANDOM,
        ipv4_min: Some(Ipv4Addr::new(10, 0, 0, 1)),
        ipv4_max: Some(Ipv4Addr::new(10, 0, 0, 5)),
        proto_min: Some(1000),
        proto_max: Some(2000),
        ..Nat::default()
    };
    check(
        "ffff0020 00002320 0024 0000 0011 0033 0a000001 0a000005 03e8 07d0 00000000",
        NxAction::Nat(nat.clone()),
    );
    check(
        "ffff0038 00002320 0023 0001 00000000 0000 ff 000000 0000
         ffff0020 00002320 0024 0000 0011 0033 0a000001 0a000005 03e8 07d0 00000000",
        NxAction::Ct(Ct::commit(0).with_actions(vec![NxAction::Nat(nat).to_action()])),
    );
}

#[test]
fn ct_force_recirculate_with_ipv6_destination_nat() {
    // ct(commit,force,table=3,nat(dst=[2001:db8::1]-[2001:db8::9]:80,persistent,hash))
    let nat = Nat {
        flags: nat_flags::DST | nat_flags::PERSISTENT | nat_flags::PROTO_HASH,
        ipv6_min: Some("2001:db8::1".parse().expect("v6")),
        ipv6_max: Some("2001:db8::9".parse().expect("v6")),
        proto_min: Some(80),
        ..Nat::default()
    };
    check(
        "ffff0050 00002320 0023 0003 00000000 0000 03 000000 0000
         ffff0038 00002320 0024 0000 000e 001c
         20010db8000000000000000000000001 20010db8000000000000000000000009
         0050 000000000000",
        NxAction::Ct(Ct {
            flags: ct_flags::COMMIT | ct_flags::FORCE,
            recirc_table: Some(3),
            actions: vec![NxAction::Nat(nat).to_action()],
            ..Ct::default()
        }),
    );
}

#[test]
fn ct_clear_and_resubmit() {
    check("ffff0010 00002320 002b 000000000000", NxAction::CtClear);
    // resubmit(,3)
    check(
        "ffff0010 00002320 000e fff8 03 000000",
        NxAction::resubmit(3),
    );
    // resubmit(2,4)
    check(
        "ffff0010 00002320 000e 0002 04 000000",
        NxAction::ResubmitTable {
            in_port: 2,
            table: 4,
        },
    );
}

#[test]
fn anything_else_stays_raw() {
    let raw = |hex: &str| Action::Experimenter {
        experimenter: NX_EXPERIMENTER_ID,
        data: Bytes::from(unhex(hex)),
    };
    let cases = [
        // Non-zero padding after the resubmit table.
        raw("000e fff8 03 000001"),
        // Unknown subtype (NXAST_LEARN).
        raw("0010 0000 0000 0000"),
        // NAT with an unknown range_present bit.
        raw("0024 0000 0000 0040 0000 0000"),
        // NAT padded past the minimum.
        raw("0024 0000 0000 0000 0000 0000 0000 0000"),
        // Truncated ct.
        raw("0023 0001 0000"),
        // Nested action list that does not parse.
        raw("0023 0001 00000000 0001 ff 000000 0000 0019 0000"),
    ];
    for action in cases {
        assert_eq!(NxAction::from_action(&action), None, "{action:?}");
    }
    // Another experimenter's action.
    let other = Action::Experimenter {
        experimenter: 0x00d0_f0d0,
        data: Bytes::from(unhex("000e fff8 03 000000")),
    };
    assert_eq!(NxAction::from_action(&other), None);
    assert_eq!(NxAction::from_action(&Action::PopVlan), None);
}

#[test]
fn conntrack_match_fields() {
    let encode = |oxm: &Oxm| {
        let mut out = BytesMut::new();
        oxm.emit(&mut out);
        out.to_vec()
    };
    // ct_state=+new+trk, ct_mark=5, ct_zone=7 as OVS encodes them.
    let state = ct_state_match(ct_state::NEW | ct_state::TRK, ct_state::NEW | ct_state::TRK);
    assert_eq!(encode(&state), unhex("0001d308 00000021 00000021"));
    assert_eq!(encode(&ct_mark_match(5, None)), unhex("0001d604 00000005"));
    assert_eq!(encode(&ct_zone_match(7)), unhex("0001d402 0007"));
    // The codec parses them back to the same values.
    let bytes = unhex("0001d308 00000021 00000021");
    let parsed = Oxm::parse(&mut Reader::new(&bytes, "t")).expect("oxm");
    assert_eq!(parsed, state);
    assert_eq!(
        nx_u32_value(&parsed, nxm_nx_field::CT_STATE),
        Some((0x21, Some(0x21)))
    );
    assert_eq!(
        nx_u32_value(&ct_mark_match(9, None), nxm_nx_field::CT_MARK),
        Some((9, None))
    );
    assert_eq!(nx_u32_value(&parsed, nxm_nx_field::CT_MARK), None);
    assert_eq!(
        nx_u32_value(&Oxm::EthType(0x800), nxm_nx_field::CT_MARK),
        None
    );
}

mod round_trip {
    use super::*;
    use proptest::prelude::*;

    fn arb_nat() -> impl Strategy<Value = Nat> {
        (
            any::<u16>(),
            proptest::option::of(any::<[u8; 4]>()),
            proptest::option::of(any::<[u8; 4]>()),
            proptest::option::of(any::<[u8; 16]>()),
            proptest::option::of(any::<[u8; 16]>()),
            proptest::option::of(any::<u16>()),
            proptest::option::of(any::<u16>()),
        )
            .prop_map(|(flags, a, b, c, d, lo, hi)| Nat {
                flags,
                ipv4_min: a.map(Ipv4Addr::from),
                ipv4_max: b.map(Ipv4Addr::from),
                ipv6_min: c.map(Ipv6Addr::from),
                ipv6_max: d.map(Ipv6Addr::from),
                proto_min: lo,
                proto_max: hi,
            })
    }

    fn arb_zone() -> impl Strategy<Value = CtZone> {
        prop_oneof![
            any::<u16>().prop_map(CtZone::Immediate),
            (1u32.., 0u16..1024, 1u8..=64).prop_map(|(header, ofs, n_bits)| CtZone::Field {
                header,
                ofs,
                n_bits
            }),
        ]
    }

    fn arb_nx() -> impl Strategy<Value = NxAction> {
        prop_oneof![
            (any::<u16>(), any::<u8>())
                .prop_map(|(in_port, table)| NxAction::ResubmitTable { in_port, table }),
            Just(NxAction::CtClear),
            arb_nat().prop_map(NxAction::Nat),
            (
                any::<u16>(),
                arb_zone(),
                proptest::option::of(0u8..0xff),
                any::<u16>(),
                proptest::option::of(any::<u32>()),
                proptest::option::of(arb_nat()),
            )
                .prop_map(|(flags, zone, recirc_table, alg, mark, nat)| {
                    let mut actions = Vec::new();
                    actions.extend(mark.map(set_ct_mark));
                    actions.extend(nat.map(|n| NxAction::Nat(n).to_action()));
                    NxAction::Ct(Ct {
                        flags,
                        zone,
                        recirc_table,
                        alg,
                        actions,
                    })
                }),
        ]
    }

    proptest! {
        #[test]
        fn typed_actions_survive_the_wire(nx in arb_nx()) {
            let bytes = emit(&nx.to_action());
            prop_assert_eq!(bytes.len() % 8, 0);
            let mut r = Reader::new(&bytes, "prop");
            let raw = Action::parse(&mut r).expect("codec parses what we emit");
            prop_assert_eq!(NxAction::from_action(&raw), Some(nx));
        }

        #[test]
        fn from_action_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = NxAction::from_action(&Action::Experimenter {
                experimenter: NX_EXPERIMENTER_ID,
                data: Bytes::from(data),
            });
        }
    }
}
