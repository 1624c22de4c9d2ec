use std::net::Ipv4Addr;

use flowgate_controller::pipeline;
use flowgate_openflow::wire::Wire;

use super::*;

fn vip(members: Vec<PlannedMember>) -> PlannedVip {
    PlannedVip {
        index: 5,
        address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100)),
        protocol: Protocol::Tcp,
        port: 80,
        vni: None,
        affinity: false,
        count: true,
        members,
    }
}

fn member(n: u8, admin: AdminState, in_rotation: bool) -> PlannedMember {
    PlannedMember {
        key: MemberKey {
            address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)),
            port: 8080,
        },
        mac: Some(MacAddr([0, 0, 0, 0, 0, n])),
        admin,
        in_rotation,
        weight: u16::from(n),
    }
}

const VMAC: MacAddr = MacAddr([2, 0xf0, 5, 0, 0, 1]);

#[test]
fn every_entry_keeps_the_pipeline_contract() {
    let desired = compile_vip(
        &vip(vec![
            member(2, AdminState::Enabled, true),
            member(3, AdminState::Drain, false),
            member(4, AdminState::Disabled, false),
        ]),
        VMAC,
    );
    let mut shared = Shared::default();
    shared
        .answered
        .insert((None, "10.0.0.100".parse().unwrap()));
    shared
        .answered
        .insert((Some(7), "fd00::100".parse().unwrap()));
    shared
        .probe_sources
        .insert((None, "10.0.0.250".parse().unwrap()));
    shared.member_sources.insert((
        None,
        Protocol::Tcp,
        MemberKey {
            address: "10.0.0.2".parse().unwrap(),
            port: 8080,
        },
    ));
    for entry in desired.flows.iter().chain(&compile_shared(&shared, VMAC)) {
        pipeline::check(Owner::LoadBalancer, entry).unwrap_or_else(|e| panic!("{e}: {entry:?}"));
        assert_eq!(
            flowgate_controller::cookie::owner_of(entry.spec.cookie),
            Some(Owner::LoadBalancer)
        );
    }
    // One group, owned: only members in rotation have buckets, weighted.
    let group = &desired.groups[0];
    assert_eq!(group.id, 0x0500_0005);
    assert_eq!(group.spec.buckets.len(), 1);
    assert_eq!(group.spec.buckets[0].weight, 2);
}

#[test]
fn a_disabled_member_is_dropped_and_a_drained_one_forwarded() {
    let desired = compile_vip(
        &vip(vec![
            member(3, AdminState::Drain, false),
            member(4, AdminState::Disabled, false),
        ]),
        VMAC,
    );
    let established = |n: u8| {
        desired
            .flows
            .iter()
            .filter(|e| e.key.priority == PRIO_TRACKED)
            .find(|e| {
                e.key
                    .match_()
                    .fields
                    .contains(&Oxm::Ipv4Dst(Ipv4Addr::new(10, 0, 0, n), None))
            })
            .expect("its entry")
            .spec
            .instructions
            .clone()
    };
    assert_eq!(established(3).len(), 2, "eth_dst, goto learn");
    assert!(established(4).is_empty(), "dropped");
}

#[test]
fn tcp_flags_use_the_onf_experimenter_field() {
    let mut out = bytes::BytesMut::new();
    tcp_flags(tcp_flag::FIN, tcp_flag::FIN).emit(&mut out);
    // class 0xffff, field 42 with mask, length 8, ONF id, value, mask.
    assert_eq!(
        &out[..],
        &[0xff, 0xff, 0x55, 0x08, 0x4f, 0x4e, 0x46, 0x00, 0x00, 0x01, 0x00, 0x01]
    );
    let f = tcp_flags(1, 1);
    assert_eq!((f.class(), f.field()), (0xffff, 42));
}

#[test]
fn cookies_name_kind_and_vip() {
    let c = cookie(Kind::Member, 0x12_3456);
    assert_eq!(kind_of(c), Kind::Member as u64);
    assert_eq!(index_of(c), 0x12_3456);
    assert_eq!(c >> 48, 0xf005);
}

#[test]
fn without_vips_there_is_no_entry() {
    assert!(compile_shared(&Shared::default(), VMAC).is_empty());
}
