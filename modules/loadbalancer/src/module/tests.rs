//! The load balancer on a fake switch: connections are followed packet by
//! packet through conntrack (with NAT) and the VIP's select group.
//!
//! One switch: the client 10.0.0.1 on port 1, members 10.0.0.2/.3/.4 (port
//! 8080) on ports 2/3/4; VIP 10.0.0.100:80. Forwarding is stood in for by
//! `eth_dst → port` entries in the forward table.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use flowgate_controller::module::Change;
use flowgate_controller::pipeline::FORWARD;
use flowgate_controller::tenants::{TenantNetwork, TenantPort};
use flowgate_controller::testing::{FakeSwitch, Packet, Trace};
use flowgate_controller::topology::{Endpoint, Host};
use flowgate_openflow::{Instruction, Match, Oxm, PacketInReason, OFPXMC_OPENFLOW_BASIC};

use super::*;
use crate::model::MonitorType;

const DPID: u64 = 1;
const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const SOURCE: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 250);

fn mac(n: u8) -> MacAddr {
    MacAddr([0, 0, 0, 0, 0, n])
}

fn host_ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, n)
}

fn vmac() -> MacAddr {
    Settings::default().virtual_mac
}

fn member(n: u8, weight: u16) -> Member {
    Member {
        address: IpAddr::V4(host_ip(n)),
        port: 8080,
        weight,
        admin_state: AdminState::Enabled,
        origin: None,
        held: None,
    }
}

fn key(n: u8) -> MemberKey {
    MemberKey {
        address: IpAddr::V4(host_ip(n)),
        port: 8080,
    }
}

fn config(method: Method, members: Vec<Member>) -> Config {
    let mut c = Config::default();
    c.pools.insert(
        "web".into(),
        Pool {
            id: "web".into(),
            members,
            load_aware: None,
            description: String::new(),
        },
    );
    c.vips.insert(
        "web".into(),
        Vip {
            id: "web".into(),
            address: IpAddr::V4(VIP),
            protocol: Protocol::Tcp,
            port: 80,
            pool: "web".into(),
            method,
            network: None,
            affinity_timeout: None,
            description: String::new(),
            index: 7,
            origin: None,
        },
    );
    c
}

/// Hosts 1-4 on ports 1-4.
fn topology() -> Arc<TopologyView> {
    Arc::new(TopologyView {
        hosts: (1..=4)
            .map(|n| Host {
                mac: mac(n),
                vlan: None,
                ipv4: vec![host_ip(n)],
                ipv6: vec![],
                at: Endpoint::new(DPID, u32::from(n)),
            })
            .collect(),
        ..TopologyView::default()
    })
}

struct Rig {
    lb: LoadBalancer,
    sw: FakeSwitch,
    now: Instant,
    /// Every packet-out the module asked for.
    packet_outs: Vec<(u64, PacketOut)>,
}

impl Rig {
    fn new(config: Config) -> Rig {
        let mut sw = FakeSwitch::new(DPID);
        for n in 1..=4u8 {
            sw.install(flowgate_controller::desired::FlowEntry::new(
                FORWARD,
                100,
                Match::new().with(Oxm::EthDst(mac(n), None)),
                flowgate_controller::desired::FlowSpec::new(
                    Owner::Forwarding.cookie(u64::from(n)),
                    flowgate_controller::desired::output_to(u32::from(n)),
                ),
            ));
        }
        let mut rig = Rig {
            lb: LoadBalancer::new(
                Settings::default(),
                Loaded {
                    config,
                    ..Loaded::default()
                },
            ),
            sw,
            now: Instant::now(),
            packet_outs: Vec::new(),
        };
        let view = topology();
        rig.event(&Event::Notice {
            from: Owner::Topology,
            payload: &view,
        });
        rig.event(&Event::SwitchUp {
            dpid: DPID,
            ports: &[],
            installed: &[],
            groups: &[],
            meters: &[],
        });
        rig
    }

    fn event(&mut self, event: &Event<'_>) -> Vec<Change> {
        let mut ctx = Ctx::new(self.now);
        self.lb.handle(event, &mut ctx);
        self.apply(ctx)
    }

    fn apply(&mut self, mut ctx: Ctx) -> Vec<Change> {
        let changes = ctx.take_changes();
        self.sw.apply(&changes);
        for c in &changes {
            if let Change::PacketOut { dpid, packet_out } = c {
                self.packet_outs.push((*dpid, packet_out.clone()));
            }
        }
        changes
    }

    fn write(&mut self, op: LbOp) {
        let mut ctx = Ctx::new(self.now);
        self.lb.stage(op, &mut ctx).expect("valid change");
        self.apply(ctx);
    }

    fn pool(&self) -> Pool {
        self.lb.config().pools["web"].clone()
    }

    fn group(&self) -> &flowgate_controller::desired::GroupSpec {
        &self.sw.groups[&compile::group_id(7)]
    }

    fn tick(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
        let tick = ClockTick;
        self.event(&Event::Task { payload: &tick });
    }
}

fn tcp(
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    eth_src: MacAddr,
    eth_dst: MacAddr,
) -> Packet {
    Packet::new(vec![
        Oxm::EthSrc(eth_src, None),
        Oxm::EthDst(eth_dst, None),
        Oxm::EthType(0x0800),
        Oxm::Ipv4Src(src, None),
        Oxm::Ipv4Dst(dst, None),
        Oxm::IpProto(6),
        Oxm::TcpSrc(sport),
        Oxm::TcpDst(dport),
    ])
}

/// The client's packet of connection `sport` to the VIP.
fn to_vip(sport: u16) -> Packet {
    tcp(CLIENT, sport, VIP, 80, mac(1), vmac())
}

fn field(p: &Packet, field: u8) -> Option<Oxm> {
    p.get(OFPXMC_OPENFLOW_BASIC, field).cloned()
}

/// The one place a packet went, and how it looked there.
fn delivered(trace: &Trace) -> (u32, Packet) {
    assert_eq!(trace.emitted.len(), 1, "exactly one output: {trace:?}");
    trace.emitted[0].clone()
}

/// Which member (by host number) a delivered packet went to, checking it
/// was translated to that member completely.
fn member_of(trace: &Trace) -> u8 {
    let (port, p) = delivered(trace);
    let n = port as u8;
    assert!((2..=4).contains(&n), "went to port {port}");
    assert_eq!(field(&p, 3), Some(Oxm::EthDst(mac(n), None)));
    assert_eq!(field(&p, 12), Some(Oxm::Ipv4Dst(host_ip(n), None)));
    assert_eq!(field(&p, 14), Some(Oxm::TcpDst(8080)));
    n
}

#[test]
fn a_new_connections_packets_reach_exactly_one_member_and_replies_come_from_the_vip() {
    let rig = Rig::new(config(Method::Hash, vec![member(2, 1), member(3, 1)]));
    let mut used = BTreeSet::new();
    for sport in 40000..40100u16 {
        let first = rig.sw.process(1, &to_vip(sport));
        assert_eq!(first.buckets.len(), 1, "the first packet enters the group");
        let n = member_of(&first);
        used.insert(n);
        // Before any reply (a retransmitted SYN: conntrack still calls it
        // new) and after, the connection's packets skip the group.
        for _ in 0..3 {
            let next = rig.sw.process(1, &to_vip(sport));
            assert!(next.buckets.is_empty(), "later packets skip the group");
            assert_eq!(member_of(&next), n, "the connection stays on its member");
        }
        let reply = rig.sw.process(
            u32::from(n),
            &tcp(host_ip(n), 8080, CLIENT, sport, mac(n), mac(1)),
        );
        let (port, p) = delivered(&reply);
        assert_eq!(port, 1);
        assert_eq!(
            field(&p, 11),
            Some(Oxm::Ipv4Src(VIP, None)),
            "un-NATed to the VIP"
        );
        assert_eq!(field(&p, 13), Some(Oxm::TcpSrc(80)));
        assert_eq!(field(&p, 4), Some(Oxm::EthSrc(vmac(), None)));
    }
    assert_eq!(used, BTreeSet::from([2, 3]), "both members get connections");
    // Traffic to a member directly is not balanced (and passes).
    let direct = rig
        .sw
        .process(1, &tcp(CLIENT, 5000, host_ip(2), 8080, mac(1), mac(2)));
    assert_eq!(delivered(&direct).0, 2);
    assert!(direct.buckets.is_empty());
}

#[test]
fn the_switch_answers_arp_for_the_vip() {
    let rig = Rig::new(config(Method::Hash, vec![member(2, 1)]));
    let request = Packet::new(vec![
        Oxm::EthSrc(mac(1), None),
        Oxm::EthDst(MacAddr::BROADCAST, None),
        Oxm::EthType(0x0806),
        Oxm::ArpOp(1),
        Oxm::ArpSpa(CLIENT, None),
        Oxm::ArpTpa(VIP, None),
    ]);
    let trace = rig.sw.process(1, &request);
    let (port, reply) = delivered(&trace);
    assert_eq!(port, 1, "back out of the asking port");
    assert_eq!(field(&reply, 21), Some(Oxm::ArpOp(2)));
    assert_eq!(field(&reply, 24), Some(Oxm::ArpSha(vmac(), None)));
    assert_eq!(field(&reply, 4), Some(Oxm::EthSrc(vmac(), None)));
}

#[test]
fn membership_changes_leave_established_connections_alone() {
    let mut rig = Rig::new(config(Method::Hash, vec![member(2, 1), member(3, 1)]));
    let conns: Vec<(u16, u8)> = (41000..41060u16)
        .map(|sport| (sport, member_of(&rig.sw.process(1, &to_vip(sport)))))
        .collect();
    // A member joins: new bucket, in place.
    let mut pool = rig.pool();
    pool.members.push(member(4, 1));
    rig.write(LbOp::PutPool(pool));
    assert_eq!(rig.group().buckets.len(), 3);
    for (sport, n) in &conns {
        let trace = rig.sw.process(1, &to_vip(*sport));
        assert!(trace.buckets.is_empty());
        assert_eq!(member_of(&trace), *n, "connection {sport} moved");
    }
    // New connections reach the new member too.
    let fresh: BTreeSet<u8> = (42000..42100u16)
        .map(|s| member_of(&rig.sw.process(1, &to_vip(s))))
        .collect();
    assert_eq!(fresh, BTreeSet::from([2, 3, 4]));
    // Member 3 leaves: connections on 2 are untouched.
    let mut pool = rig.pool();
    pool.members.retain(|m| m.key() != key(3));
    rig.write(LbOp::PutPool(pool));
    assert_eq!(rig.group().buckets.len(), 2);
    for (sport, n) in conns.iter().filter(|(_, n)| *n == 2) {
        assert_eq!(member_of(&rig.sw.process(1, &to_vip(*sport))), *n);
    }
    let fresh: BTreeSet<u8> = (43000..43100u16)
        .map(|s| member_of(&rig.sw.process(1, &to_vip(s))))
        .collect();
    assert_eq!(fresh, BTreeSet::from([2, 4]));
}

#[test]
fn weights_three_to_one_split_new_connections_three_to_one() {
    let rig = Rig::new(config(Method::Weighted, vec![member(2, 3), member(3, 1)]));
    let weights: Vec<u16> = rig.group().buckets.iter().map(|b| b.weight).collect();
    assert_eq!(weights, vec![3, 1]);
    let mut on_2 = 0;
    for sport in 1000..5000u16 {
        if member_of(&rig.sw.process(1, &to_vip(sport))) == 2 {
            on_2 += 1;
        }
    }
    let share = f64::from(on_2) / 4000.0;
    assert!((0.70..0.80).contains(&share), "3:1 gave {share}");
    // The same method with `hash` ignores the weights.
    let even = Rig::new(config(Method::Hash, vec![member(2, 3), member(3, 1)]));
    let weights: Vec<u16> = even.group().buckets.iter().map(|b| b.weight).collect();
    assert_eq!(weights, vec![1, 1]);
}

#[test]
fn drain_keeps_established_connections_and_takes_no_new_ones() {
    let mut rig = Rig::new(config(Method::Hash, vec![member(2, 1), member(3, 1)]));
    let conns: Vec<(u16, u8)> = (1000..1060u16)
        .map(|sport| (sport, member_of(&rig.sw.process(1, &to_vip(sport)))))
        .collect();
    assert!(conns.iter().any(|(_, n)| *n == 2));
    let mut pool = rig.pool();
    pool.members[0].admin_state = AdminState::Drain;
    rig.write(LbOp::PutPool(pool));
    assert_eq!(rig.group().buckets.len(), 1);
    for (sport, n) in &conns {
        assert_eq!(member_of(&rig.sw.process(1, &to_vip(*sport))), *n);
        let reply = rig.sw.process(
            u32::from(*n),
            &tcp(host_ip(*n), 8080, CLIENT, *sport, mac(*n), mac(1)),
        );
        assert_eq!(
            delivered(&reply).0,
            1,
            "replies of drained connections pass"
        );
    }
    for sport in 2000..2200u16 {
        assert_eq!(
            member_of(&rig.sw.process(1, &to_vip(sport))),
            3,
            "new goes to 3"
        );
    }
    // Disabled: its established connections are cut too.
    let mut pool = rig.pool();
    pool.members[0].admin_state = AdminState::Disabled;
    rig.write(LbOp::PutPool(pool));
    for (sport, _) in conns.iter().filter(|(_, n)| *n == 2) {
        assert!(rig.sw.process(1, &to_vip(*sport)).dropped());
    }
}

/// The SYN-ACK (or RST) `member` sends back to the probe in `out`.
fn answer_probe(out: &PacketOut, listening: bool) -> PacketIn {
    let answer = match probe::answer(&out.data) {
        Some(crate::health::Answer::Tcp { src, dst, seq, .. }) => ProbePacket::Tcp {
            src: dst,
            dst: src,
            seq: 77,
            ack: Some(seq.wrapping_add(1)),
            syn: listening,
            rst: !listening,
            payload: vec![],
        },
        other => panic!("not a SYN: {other:?}"),
    };
    let IpAddr::V4(from) = (match &answer {
        ProbePacket::Tcp { src, .. } => src.ip(),
        _ => unreachable!(),
    }) else {
        panic!()
    };
    let n = from.octets()[3];
    PacketIn {
        buffer_id: NO_BUFFER,
        total_len: 0,
        reason: PacketInReason::Action,
        table_id: flowgate_controller::pipeline::LB,
        cookie: compile::cookie(Kind::Probe, 0),
        match_: Match::new().with(Oxm::InPort(u32::from(n))),
        data: probe::frame(&answer, mac(n), vmac()).unwrap(),
    }
}

#[test]
fn a_member_that_fails_its_checks_leaves_the_buckets_and_comes_back() {
    let mut c = config(Method::Hash, vec![member(2, 1), member(3, 1)]);
    c.monitors.insert(
        "m".into(),
        Monitor {
            id: "m".into(),
            pool: "web".into(),
            kind: MonitorType::Tcp,
            interval: 1.0,
            timeout: 0.5,
            rise: 2,
            fall: 2,
            port: None,
            source_ip: Some(IpAddr::V4(SOURCE)),
            http_path: None,
            expected_status: None,
        },
    );
    let mut rig = Rig::new(c);
    // The probe source answers ARP, its traffic is trapped.
    let to_source = rig
        .sw
        .process(2, &tcp(host_ip(2), 8080, SOURCE, 40000, mac(2), vmac()));
    assert!(to_source.to_controller(), "{to_source:?}");
    let established = (1000..1040u16)
        .map(|s| (s, member_of(&rig.sw.process(1, &to_vip(s)))))
        .find(|(_, n)| *n == 2)
        .expect("a connection on member 2");
    let round = |rig: &mut Rig, listening_2: bool| {
        rig.packet_outs.clear();
        rig.tick(1000);
        let probes: Vec<PacketOut> = rig.packet_outs.iter().map(|(_, p)| p.clone()).collect();
        assert_eq!(probes.len(), 2, "one SYN per member: {probes:?}");
        for p in probes {
            let Action::Output { port, .. } = p.actions[0] else {
                panic!()
            };
            let pi = answer_probe(&p, port != 2 || listening_2);
            rig.event(&Event::PacketIn {
                dpid: DPID,
                packet_in: &pi,
            });
        }
    };
    round(&mut rig, true);
    assert_eq!(rig.lb.health("web", key(2)).unwrap().health, Health::Up);
    assert_eq!(rig.group().buckets.len(), 2);
    round(&mut rig, false);
    assert_eq!(rig.group().buckets.len(), 2, "one failure (fall 2)");
    round(&mut rig, false);
    assert_eq!(rig.lb.health("web", key(2)).unwrap().health, Health::Down);
    assert_eq!(rig.group().buckets.len(), 1, "member 2 is out");
    for s in 3000..3100u16 {
        assert_eq!(member_of(&rig.sw.process(1, &to_vip(s))), 3);
    }
    assert_eq!(
        member_of(&rig.sw.process(1, &to_vip(established.0))),
        2,
        "its established connection is untouched"
    );
    round(&mut rig, true);
    round(&mut rig, true);
    assert_eq!(rig.lb.health("web", key(2)).unwrap().health, Health::Up);
    assert_eq!(rig.group().buckets.len(), 2);
    let history: Vec<(Health, Health)> = rig
        .lb
        .health("web", key(2))
        .unwrap()
        .transitions
        .iter()
        .map(|t| (t.from, t.to))
        .collect();
    assert_eq!(
        history,
        vec![
            (Health::Unknown, Health::Up),
            (Health::Up, Health::Down),
            (Health::Down, Health::Up)
        ]
    );
}

#[test]
fn a_silent_member_is_asked_for_with_arp() {
    let mut c = config(Method::Hash, vec![member(2, 1), member(9, 1)]);
    c.pools.get_mut("web").unwrap().members[1].address = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9));
    let mut rig = Rig::new(c);
    // Host 9 is unknown: no bucket, and an ARP request goes out of edge
    // ports (none are edge ports in this view, so none is sent) ...
    assert_eq!(rig.group().buckets.len(), 1);
    // ... with edge ports, one request per switch.
    let mut view = (*topology()).clone();
    view.switches.insert(
        DPID,
        flowgate_controller::topology::SwitchView {
            ready: true,
            ports: (1..=4)
                .map(|n| {
                    (
                        n,
                        flowgate_controller::topology::PortView {
                            name: format!("p{n}"),
                            hw_addr: mac(0x40),
                            role: PortRole::Edge,
                        },
                    )
                })
                .collect(),
        },
    );
    let view = Arc::new(view);
    rig.event(&Event::Notice {
        from: Owner::Topology,
        payload: &view,
    });
    rig.packet_outs.clear();
    rig.tick(3000);
    let arps: Vec<&PacketOut> = rig
        .packet_outs
        .iter()
        .map(|(_, p)| p)
        .filter(|p| flowgate_controller::topology::packet::Arp::from_frame(&p.data).is_some())
        .collect();
    assert_eq!(arps.len(), 1, "{arps:?}");
    let (arp, _) = flowgate_controller::topology::packet::Arp::from_frame(&arps[0].data).unwrap();
    assert_eq!(
        (arp.spa, arp.tpa, arp.sha),
        (VIP, Ipv4Addr::new(10, 0, 0, 9), vmac())
    );
    assert_eq!(arps[0].actions.len(), 4, "out of every edge port");
    // Once topology knows it, it gets its bucket.
    let mut view = (*view).clone();
    view.hosts.push(Host {
        mac: mac(9),
        vlan: None,
        ipv4: vec![Ipv4Addr::new(10, 0, 0, 9)],
        ipv6: vec![],
        at: Endpoint::new(DPID, 4),
    });
    view.hosts.sort_by_key(|h| h.mac);
    let view = Arc::new(view);
    let changes = rig.event(&Event::Notice {
        from: Owner::Topology,
        payload: &view,
    });
    assert_eq!(rig.group().buckets.len(), 2);
    assert!(
        changes.iter().any(|c| matches!(c, Change::Persist(_))),
        "the resolved MAC is stored"
    );
}

#[test]
fn affinity_pins_a_clients_connections_with_one_packet_in_per_client() {
    let mut c = config(Method::Hash, vec![member(2, 1), member(3, 1), member(4, 1)]);
    c.vips.get_mut("web").unwrap().affinity_timeout = Some(60);
    let mut rig = Rig::new(c);
    let first = rig.sw.process(1, &to_vip(1000));
    assert!(
        first.to_controller(),
        "an unpinned client's new connection: {first:?}"
    );
    let frame = {
        let mut out = Vec::new();
        etherparse::PacketBuilder::ethernet2(mac(1).0, vmac().0)
            .ipv4(CLIENT.octets(), VIP.octets(), 64)
            .tcp(1000, 80, 1, 1000)
            .syn()
            .write(&mut out, &[])
            .unwrap();
        Bytes::from(out)
    };
    let pi = PacketIn {
        buffer_id: NO_BUFFER,
        total_len: frame.len() as u16,
        reason: PacketInReason::Action,
        table_id: flowgate_controller::pipeline::LB,
        cookie: compile::cookie(Kind::AffinityMiss, 7),
        match_: Match::new().with(Oxm::InPort(1)),
        data: frame,
    };
    let changes = rig.event(&Event::PacketIn {
        dpid: DPID,
        packet_in: &pi,
    });
    assert!(changes
        .iter()
        .any(|c| matches!(c, Change::InstallFlow { .. })));
    assert!(matches!(
        rig.packet_outs.last(),
        Some((_, PacketOut { actions, .. })) if actions == &vec![Action::Output { port: port_no::TABLE, max_len: 0 }]
    ));
    // The re-injected packet (and every later connection) takes the pin.
    let pinned = member_of(&rig.sw.process(1, &to_vip(1000)));
    for sport in 1001..1050u16 {
        let trace = rig.sw.process(1, &to_vip(sport));
        assert!(!trace.to_controller());
        assert_eq!(member_of(&trace), pinned);
    }
    // Another client is not pinned yet.
    let other = tcp(Ipv4Addr::new(10, 0, 0, 5), 1000, VIP, 80, mac(5), vmac());
    assert!(rig.sw.process(1, &other).to_controller());
    let pin = rig
        .sw
        .flows
        .iter()
        .find(|(_, s)| compile::kind_of(s.cookie) == Kind::Affinity as u64)
        .expect("the pin entry");
    assert_eq!(pin.1.idle_timeout, 60);
    assert!(matches!(
        &pin.1.instructions[..],
        [Instruction::ApplyActions(a)] if a.iter().any(is_ct)
    ));
    // The pinned member is drained: the pin goes, the client pins again.
    let mut pool = rig.pool();
    for m in pool.members.iter_mut().filter(|m| m.key() == key(pinned)) {
        m.admin_state = AdminState::Drain;
    }
    rig.write(LbOp::PutPool(pool));
    assert!(!rig
        .sw
        .flows
        .values()
        .any(|s| compile::kind_of(s.cookie) == Kind::Affinity as u64));
    assert!(rig.sw.process(1, &to_vip(1100)).to_controller());
}

#[test]
fn a_tenant_vip_balances_only_its_tenants_traffic() {
    let mut c = config(Method::Hash, vec![member(2, 1), member(3, 1)]);
    c.vips.get_mut("web").unwrap().network = Some("blue".into());
    let mut rig = Rig::new(c);
    let tenants = Arc::new(TenantNetworks {
        networks: [(
            "blue".to_owned(),
            TenantNetwork {
                id: "blue".into(),
                vni: 100,
                subnet: None,
                ports: (1..=3u8)
                    .map(|n| TenantPort {
                        id: format!("vm{n}"),
                        mac: Some(mac(n)),
                        ips: vec![IpAddr::V4(host_ip(n))],
                        dpid: Some(DPID),
                        port_no: Some(u32::from(n)),
                    })
                    .collect(),
            },
        )]
        .into(),
    });
    rig.event(&Event::Notice {
        from: Owner::Overlay,
        payload: &tenants,
    });
    let tenant = |mut p: Packet| {
        p.fields.push(Oxm::Metadata(
            flowgate_controller::pipeline::metadata::tenant(100),
            None,
        ));
        p
    };
    let n = member_of(&rig.sw.process(1, &tenant(to_vip(5000))));
    assert!(n == 2 || n == 3);
    let reply = rig.sw.process(
        u32::from(n),
        &tenant(tcp(host_ip(n), 8080, CLIENT, 5000, mac(n), mac(1))),
    );
    assert_eq!(
        field(&delivered(&reply).1, 11),
        Some(Oxm::Ipv4Src(VIP, None))
    );
    // Untenanted traffic to the same address is not balanced.
    let plain = rig.sw.process(1, &to_vip(5001));
    assert!(plain.buckets.is_empty() && plain.dropped(), "{plain:?}");
}

#[test]
fn an_ipv6_udp_vip_balances_and_answers_neighbour_solicitations() {
    use std::net::Ipv6Addr;
    let v6 = |n: u8| Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(n));
    let mut c = config(Method::Hash, vec![]);
    c.pools.get_mut("web").unwrap().members = (2..=3)
        .map(|n| Member {
            address: IpAddr::V6(v6(n)),
            port: 5353,
            weight: 1,
            admin_state: AdminState::Enabled,
            origin: None,
            held: None,
        })
        .collect();
    let vip = c.vips.get_mut("web").unwrap();
    vip.address = IpAddr::V6(v6(100));
    vip.protocol = Protocol::Udp;
    vip.port = 53;
    let mut rig = Rig::new(c);
    let mut view = (*topology()).clone();
    for host in &mut view.hosts {
        host.ipv6 = vec![v6(host.mac.0[5])];
    }
    let view = Arc::new(view);
    rig.event(&Event::Notice {
        from: Owner::Topology,
        payload: &view,
    });
    let udp = |sport: u16| {
        Packet::new(vec![
            Oxm::EthSrc(mac(1), None),
            Oxm::EthDst(vmac(), None),
            Oxm::EthType(0x86dd),
            Oxm::Ipv6Src(v6(1), None),
            Oxm::Ipv6Dst(v6(100), None),
            Oxm::IpProto(17),
            Oxm::UdpSrc(sport),
            Oxm::UdpDst(53),
        ])
    };
    let mut used = BTreeSet::new();
    for sport in 3000..3040u16 {
        let (port, p) = delivered(&rig.sw.process(1, &udp(sport)));
        assert_eq!(field(&p, 27), Some(Oxm::Ipv6Dst(v6(port as u8), None)));
        assert_eq!(field(&p, 16), Some(Oxm::UdpDst(5353)));
        assert_eq!(delivered(&rig.sw.process(1, &udp(sport))).0, port, "sticky");
        used.insert(port);
    }
    assert_eq!(used, BTreeSet::from([2, 3]));
    // A neighbour solicitation for the VIP goes to the controller, which
    // answers with the virtual MAC out of the asking port.
    let ns = Packet::new(vec![
        Oxm::EthType(0x86dd),
        Oxm::IpProto(58),
        Oxm::Icmpv6Type(135),
        Oxm::Ipv6NdTarget(v6(100)),
    ]);
    assert!(rig.sw.process(1, &ns).to_controller());
    let mut frame = vec![0x33, 0x33, 0xff, 0, 0, 0x64];
    frame.extend_from_slice(&mac(1).0);
    frame.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 32, 58, 255]);
    frame.extend_from_slice(&v6(1).octets());
    frame.extend_from_slice(&"ff02::1:ff00:64".parse::<Ipv6Addr>().unwrap().octets());
    frame.extend_from_slice(&[135, 0, 0, 0, 0, 0, 0, 0]);
    frame.extend_from_slice(&v6(100).octets());
    frame.extend_from_slice(&[1, 1]);
    frame.extend_from_slice(&mac(1).0);
    let pi = PacketIn {
        buffer_id: NO_BUFFER,
        total_len: frame.len() as u16,
        reason: PacketInReason::Action,
        table_id: flowgate_controller::pipeline::LB,
        cookie: compile::cookie(Kind::Nd, 0),
        match_: Match::new().with(Oxm::InPort(1)),
        data: Bytes::from(frame),
    };
    rig.packet_outs.clear();
    rig.event(&Event::PacketIn {
        dpid: DPID,
        packet_in: &pi,
    });
    let (_, na) = rig.packet_outs.last().expect("an NA");
    assert_eq!(&na.data[0..6], &mac(1).0, "to the asker");
    assert_eq!(&na.data[6..12], &vmac().0, "from the virtual MAC");
    assert_eq!(na.data[54], 136, "a neighbour advertisement");
}
