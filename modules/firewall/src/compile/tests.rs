use super::*;
use crate::config::{Policy, RuleSet};
use bytes::Bytes;
use flowgate_controller::desired::output_to;
use flowgate_controller::pipeline::{self, FLOOD};
use flowgate_controller::testing::{FakeSwitch, Packet};
use flowgate_openflow::{oxm_field, MacAddr, OFPXMC_OPENFLOW_BASIC};
use serde_json::json;
use std::net::{Ipv4Addr, Ipv6Addr};

const DPID: u64 = 1;
/// Where the fake switch's last table sends what the ACL let through.
const OUT: u32 = 99;

fn rule(v: serde_json::Value) -> Rule {
    let r: Rule = serde_json::from_value(v).expect("rule parses");
    r.validate().expect("rule is valid");
    r
}

fn config(default: DefaultAction, rules: Vec<Rule>) -> FirewallConfig {
    FirewallConfig {
        policy: Policy {
            enabled: true,
            default_action: default,
        },
        rules: RuleSet::from_rules(rules).expect("valid set"),
    }
}

/// A fake switch with the firewall's entries and a last table that outputs
/// everything to [`OUT`].
fn switch(config: &FirewallConfig) -> FakeSwitch {
    let mut sw = FakeSwitch::new(DPID);
    for e in compile_switch(config, DPID) {
        pipeline::check(Owner::Firewall, &e).expect("entries obey the pipeline");
        sw.install(e);
    }
    sw.install(FlowEntry::new(
        FLOOD,
        1,
        Match::default(),
        FlowSpec::new(Owner::Forwarding.cookie(1), output_to(OUT)),
    ));
    sw
}

fn passes(sw: &FakeSwitch, in_port: u32, p: &Packet) -> bool {
    sw.process(in_port, p).outputs == vec![OUT]
}

const H1: [u8; 4] = [10, 0, 0, 1];
const H2: [u8; 4] = [10, 0, 0, 2];

fn ip4(src: [u8; 4], dst: [u8; 4], proto: u8) -> Vec<Oxm> {
    vec![
        Oxm::EthType(0x0800),
        Oxm::Ipv4Src(Ipv4Addr::from(src), None),
        Oxm::Ipv4Dst(Ipv4Addr::from(dst), None),
        Oxm::IpProto(proto),
    ]
}

fn tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Packet {
    let mut f = ip4(src, dst, 6);
    f.extend([Oxm::TcpSrc(sport), Oxm::TcpDst(dport)]);
    Packet::new(f)
}

fn ping(src: [u8; 4], dst: [u8; 4], icmp_type: u8) -> Packet {
    let mut f = ip4(src, dst, 1);
    f.extend([Oxm::Icmpv4Type(icmp_type), Oxm::Icmpv4Code(0)]);
    Packet::new(f)
}

fn arp() -> Packet {
    Packet::new(vec![Oxm::EthType(0x0806)])
}

#[test]
fn one_stateless_rule_compiles_to_one_exact_entry() {
    let r = rule(json!({
        "id": 42, "priority": 100, "action": "allow",
        "scope": {"in_port": 3},
        "match": {"eth_src": "00:00:00:00:00:01", "ip_dst": "10.0.0.0/24",
                  "ip_proto": "tcp", "dst_port": 80}
    }));
    let entries = compile_rule(&r, DPID);
    let want = FlowEntry::new(
        ACL,
        200,
        Match::new()
            .with(Oxm::InPort(3))
            .with(Oxm::EthSrc(MacAddr([0, 0, 0, 0, 0, 1]), None))
            .with(Oxm::EthType(0x0800))
            .with(Oxm::Ipv4Dst(
                Ipv4Addr::new(10, 0, 0, 0),
                Some(Ipv4Addr::new(255, 255, 255, 0)),
            ))
            .with(Oxm::IpProto(6))
            .with(Oxm::TcpDst(80)),
        FlowSpec::new(
            Owner::Firewall.cookie(42),
            vec![Instruction::GotoTable(QOS)],
        ),
    );
    assert_eq!(entries, vec![want]);
    // Deny: same match, no instructions (drop).
    let mut deny = r.clone();
    deny.action = RuleAction::Deny;
    let entries = compile_rule(&deny, DPID);
    assert_eq!(entries.len(), 1);
    assert!(entries[0].spec.instructions.is_empty());
}

#[test]
fn port_ranges_compile_to_masked_matches() {
    let r = rule(json!({
        "id": 1, "priority": 10, "action": "deny",
        "match": {"ip_proto": "udp", "ip_src": "10.0.0.0/8", "dst_port": "1024-2047", "src_port": "53"}
    }));
    let entries = compile_rule(&r, DPID);
    assert_eq!(entries.len(), 1);
    let fields = &entries[0].key.match_().fields;
    assert!(fields.contains(&Oxm::UdpSrc(53)));
    assert!(fields.contains(&Oxm::Raw {
        class: OFPXMC_OPENFLOW_BASIC,
        field: oxm_field::UDP_DST,
        hasmask: true,
        payload: Bytes::from_static(&[0x04, 0x00, 0xfc, 0x00]),
    }));
    // 1000-1999 is 7 blocks; full range is no port field at all.
    let r = rule(json!({
        "id": 1, "priority": 10, "action": "allow",
        "match": {"ip_proto": "tcp", "dst_port": "1000-1999", "src_port": "0-65535"}
    }));
    let entries = compile_rule(&r, DPID);
    // tcp without an IP version: both versions.
    assert_eq!(entries.len(), 14);
    assert!(entries.iter().all(|e| !e
        .key
        .match_()
        .fields
        .iter()
        .any(|f| f.field() == oxm_field::TCP_SRC)));
    // The fake switch agrees with the blocks: 999 and 2000 miss, the edges hit.
    let sw = switch(&config(DefaultAction::Deny, vec![r]));
    for (port, want) in [
        (999, false),
        (1000, true),
        (1500, true),
        (1999, true),
        (2000, false),
    ] {
        assert_eq!(
            passes(&sw, 1, &tcp(H1, H2, 5000, port)),
            want,
            "port {port}"
        );
    }
}

#[test]
fn ipv6_rules_and_icmp_types() {
    let r = rule(json!({
        "id": 3, "priority": 10, "action": "allow",
        "match": {"ip_src": "2001:db8::/32", "ip_proto": "icmpv6", "icmp_type": 128}
    }));
    let entries = compile_rule(&r, DPID);
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0].key.match_().fields.as_slice(),
        [
            Oxm::EthType(0x86dd),
            Oxm::IpProto(58),
            Oxm::Ipv6Src(
                "2001:db8::".parse::<Ipv6Addr>().expect("v6"),
                Some("ffff:ffff::".parse().expect("v6"))
            ),
            Oxm::Icmpv6Type(128),
        ]
    );
    // A /0 prefix is no address field; an address is unmasked.
    let r = rule(json!({
        "id": 4, "priority": 10, "action": "deny",
        "match": {"ip_src": "0.0.0.0/0", "ip_dst": "10.0.0.1"}
    }));
    let fields = compile_rule(&r, DPID)[0].key.match_().fields.to_vec();
    assert_eq!(
        fields,
        vec![
            Oxm::EthType(0x0800),
            Oxm::Ipv4Dst(Ipv4Addr::new(10, 0, 0, 1), None)
        ]
    );
}

#[test]
fn scopes_select_switches_ports_and_tenants() {
    let r = rule(json!({
        "id": 5, "priority": 10, "action": "allow",
        "scope": {"dpid": 2, "tenant": 100},
        "match": {"ip_proto": "icmp"}
    }));
    assert!(compile_rule(&r, 1).is_empty());
    let entries = compile_rule(&r, 2);
    assert_eq!(entries.len(), 1);
    assert!(entries[0].key.match_().fields.contains(&Oxm::Metadata(
        metadata::tenant(100),
        Some(metadata::TENANT_MASK)
    )));
    // On a default-deny switch the rule admits only its tenant's pings.
    let mut unscoped = r.clone();
    unscoped.scope.dpid = None;
    let sw = switch(&config(DefaultAction::Deny, vec![unscoped]));
    let tenant = |vni: u32| {
        let mut p = ping(H1, H2, 8);
        p.fields.push(Oxm::Metadata(metadata::tenant(vni), None));
        p
    };
    assert!(passes(&sw, 1, &tenant(100)));
    assert!(!passes(&sw, 1, &tenant(101)));
    assert!(!passes(&sw, 1, &ping(H1, H2, 8)), "no tenant");
}

#[test]
fn default_deny_keeps_arp_lldp_and_neighbour_discovery() {
    let sw = switch(&config(DefaultAction::Deny, vec![]));
    assert!(passes(&sw, 1, &arp()));
    assert!(passes(&sw, 1, &Packet::new(vec![Oxm::EthType(0x88cc)])));
    let nd = |t| {
        Packet::new(vec![
            Oxm::EthType(0x86dd),
            Oxm::IpProto(58),
            Oxm::Icmpv6Type(t),
        ])
    };
    assert!(passes(&sw, 1, &nd(135)));
    assert!(
        !passes(&sw, 1, &nd(128)),
        "ICMPv6 echo is not infrastructure"
    );
    assert!(!passes(&sw, 1, &ping(H1, H2, 8)));
    assert!(!passes(&sw, 1, &Packet::new(vec![Oxm::EthType(0x8847)])));
    // Default allow: no drop entry; disabled: no entries at all.
    let open = config(DefaultAction::Allow, vec![]);
    assert!(passes(&switch(&open), 1, &ping(H1, H2, 8)));
    let mut off = config(DefaultAction::Deny, vec![]);
    off.policy.enabled = false;
    assert!(compile_switch(&off, DPID).is_empty());
}

#[test]
fn higher_priority_wins() {
    let allow_icmp = rule(json!({"id": 1, "priority": 10, "action": "allow",
        "match": {"ip_proto": "icmp"}}));
    let deny_h1 = rule(json!({"id": 2, "priority": 20, "action": "deny",
        "match": {"ip_src": "10.0.0.1"}}));
    let sw = switch(&config(
        DefaultAction::Deny,
        vec![allow_icmp.clone(), deny_h1],
    ));
    assert!(!passes(&sw, 1, &ping(H1, H2, 8)));
    assert!(passes(&sw, 1, &ping(H2, H1, 8)));
    let deny_low = rule(json!({"id": 2, "priority": 5, "action": "deny",
        "match": {"ip_src": "10.0.0.1"}}));
    let sw = switch(&config(DefaultAction::Deny, vec![allow_icmp, deny_low]));
    assert!(passes(&sw, 1, &ping(H1, H2, 8)));
}

#[test]
fn allow_related_admits_replies_but_not_the_other_side() {
    let web = rule(json!({"id": 7, "priority": 100, "action": "allow-related",
        "match": {"ip_src": "10.0.0.1", "ip_dst": "10.0.0.2", "ip_proto": "tcp", "dst_port": 80}}));
    let cfg = config(DefaultAction::Deny, vec![web]);
    let entries = compile_switch(&cfg, DPID);
    // Conntrack recirculation for both IP versions, the rule's +new entry,
    // and its two connection entries.
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.key.priority == TRACK_PRIORITY)
            .count(),
        2
    );
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.spec.cookie == rule_cookie(7))
            .count(),
        3
    );
    let sw = switch(&cfg);
    // h2 cannot open a connection to h1 (nor to h1's port 80).
    assert!(!passes(&sw, 2, &tcp(H2, H1, 80, 40000)));
    assert!(!passes(&sw, 2, &tcp(H2, H1, 50000, 80)));
    // h1 opens to h2:80; replies and later packets flow both ways.
    assert!(passes(&sw, 1, &tcp(H1, H2, 40000, 80)));
    assert!(passes(&sw, 2, &tcp(H2, H1, 80, 40000)));
    assert!(passes(&sw, 1, &tcp(H1, H2, 40000, 80)));
    // Port 22 is not part of the rule.
    assert!(!passes(&sw, 1, &tcp(H1, H2, 40001, 22)));
    // Still no new connection from h2.
    assert!(!passes(&sw, 2, &tcp(H2, H1, 50001, 22)));
}

#[test]
fn replies_obey_higher_priority_denies_and_die_with_their_rule() {
    let web = rule(json!({"id": 7, "priority": 100, "action": "allow-related",
        "match": {"ip_proto": "tcp", "dst_port": 80}}));
    let deny_h2 = rule(json!({"id": 8, "priority": 200, "action": "deny",
        "match": {"ip_src": "10.0.0.2"}}));
    let sw = switch(&config(DefaultAction::Deny, vec![web.clone(), deny_h2]));
    assert!(passes(&sw, 1, &tcp(H1, H2, 40000, 80)));
    assert!(!passes(&sw, 2, &tcp(H2, H1, 80, 40000)), "higher deny wins");

    // The same connection state without the rule's entries: blocked.
    let mut sw = switch(&config(DefaultAction::Deny, vec![web.clone()]));
    assert!(passes(&sw, 1, &tcp(H1, H2, 40000, 80)));
    assert!(passes(&sw, 2, &tcp(H2, H1, 80, 40000)));
    for e in compile_rule(&web, DPID) {
        sw.flows.remove(&e.key);
    }
    assert!(!passes(&sw, 2, &tcp(H2, H1, 80, 40000)));
    assert!(!passes(&sw, 1, &tcp(H1, H2, 40000, 80)));
}

#[test]
fn connection_entries_match_the_tenant_again() {
    let r = rule(json!({"id": 9, "priority": 10, "action": "allow-related",
        "scope": {"tenant": 5}, "match": {"ip_proto": "tcp"}}));
    let conn: Vec<FlowEntry> = compile_rule(&r, DPID)
        .into_iter()
        .filter(|e| e.key.priority == connection_priority(10))
        .collect();
    assert_eq!(conn.len(), 2);
    for e in conn {
        let fields = &e.key.match_().fields;
        assert!(fields.contains(&Oxm::Metadata(
            metadata::tenant(5),
            Some(metadata::TENANT_MASK)
        )));
        assert!(fields.contains(&ct_mark_match(9, None)));
    }
}
