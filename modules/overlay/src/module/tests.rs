//! Pipeline compilation checked on fake switches: three hosts' integration
//! bridges joined by tunnels; a packet enters a port and we follow it
//! through tunnels to every port it reaches.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use flowgate_controller::cookie::{owner_of, Owner};
use flowgate_controller::module::{Change, Followed, StoreSync};
use flowgate_controller::testing::{FakeSwitch, Packet};
use flowgate_openflow::{port_no, Match, PacketInReason, PortStatus};

use super::*;
use crate::model::{Binding, Cidr, SwitchPort};
use crate::service::{NETWORKS, PORTS};

const VNI_BLUE: u32 = 100;
const VNI_RED: u32 = 200;
/// VM ports on every host: blue vm = 1, red vm = 2, an unbound port = 3.
const BLUE_VM: u32 = 1;
const RED_VM: u32 = 2;
const ROGUE: u32 = 3;

fn dpid(host: usize) -> u64 {
    0xc000 + host as u64
}

/// Tunnel port on `host` towards `peer`.
fn tunnel(_host: usize, peer: usize) -> u32 {
    10 + peer as u32
}

fn blue_mac(host: usize) -> MacAddr {
    MacAddr([2, 0, 0, 0, 1, host as u8])
}

fn red_mac(host: usize) -> MacAddr {
    MacAddr([2, 0, 0, 0, 2, host as u8])
}

fn ip(host: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, host as u8)
}

fn chassis(host: usize) -> Chassis {
    Chassis {
        id: format!("h{host}"),
        name: format!("h{host}"),
        dpid: Some(dpid(host)),
        encap_ip: Some(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10 + host as u8))),
        ifaces: [
            (format!("blue-h{host}"), "vmb".to_owned()),
            (format!("red-h{host}"), "vmr".to_owned()),
        ]
        .into_iter()
        .collect(),
        tunnels: (1..=3)
            .filter(|p| *p != host)
            .map(|p| (format!("h{p}"), format!("tun{p}")))
            .collect(),
    }
}

fn of_ports(host: usize) -> Vec<OfPort> {
    let mut ports = vec![("vmb", BLUE_VM), ("vmr", RED_VM), ("rogue", ROGUE)]
        .into_iter()
        .map(|(n, p)| OfPort {
            port_no: p,
            name: n.into(),
            ..Default::default()
        })
        .collect::<Vec<_>>();
    for peer in (1..=3).filter(|p| *p != host) {
        ports.push(OfPort {
            port_no: tunnel(host, peer),
            name: format!("tun{peer}"),
            ..Default::default()
        });
    }
    ports
}

fn network(id: &str, vni: u32) -> Network {
    Network {
        id: id.into(),
        name: id.into(),
        tenant: format!("tenant-{id}"),
        vni,
        subnet: Some(Cidr {
            addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)),
            prefix: 24,
        }),
        gateway: None,
    }
}

/// Blue ports have configured MAC and IP; red ports are learned.
fn blue_port(host: usize) -> Port {
    Port {
        id: format!("blue-h{host}"),
        network: "blue".into(),
        binding: Binding::IfaceId(format!("blue-h{host}")),
        mac: Some(blue_mac(host)),
        ips: vec![IpAddr::V4(ip(host))],
    }
}

fn red_port(host: usize) -> Port {
    Port {
        id: format!("red-h{host}"),
        network: "red".into(),
        binding: Binding::IfaceId(format!("red-h{host}")),
        mac: None,
        ips: vec![],
    }
}

struct Cloud {
    module: Overlay,
    switches: BTreeMap<u64, FakeSwitch>,
    /// What the switches saw of the last event, for "what did it touch"
    /// checks.
    last: Vec<Change>,
    /// Where the module's store writes go, if anywhere.
    store: Option<Arc<dyn flowgate_controller::store::Store>>,
}

impl Cloud {
    /// Three hosts, both networks, every port bound.
    fn new() -> Self {
        Cloud::with(Overlay::default())
    }

    /// Three hosts, both networks, every port bound, on `module`.
    fn with(module: Overlay) -> Self {
        let mut c = Cloud::empty(module);
        c.call(|m, ctx| {
            m.set_chassis((1..=3).map(chassis).collect(), ctx);
            m.put_network(network("blue", VNI_BLUE), ctx);
            m.put_network(network("red", VNI_RED), ctx);
            for h in 1..=3 {
                m.put_port(blue_port(h), ctx);
                m.put_port(red_port(h), ctx);
            }
        });
        c
    }

    fn empty(module: Overlay) -> Self {
        let mut c = Cloud {
            module,
            switches: (1..=3)
                .map(|h| (dpid(h), FakeSwitch::new(dpid(h))))
                .collect(),
            last: Vec::new(),
            store: None,
        };
        for h in 1..=3 {
            let ports = of_ports(h);
            c.event(&Event::SwitchUp {
                dpid: dpid(h),
                ports: &ports,
                installed: &[],
                groups: &[],
                meters: &[],
            });
        }
        c
    }

    fn apply(&mut self, changes: Vec<Change>) {
        self.last = self
            .switches
            .values_mut()
            .flat_map(|sw| sw.apply(&changes))
            .collect();
        persist(self.store.as_deref(), &changes);
    }

    fn event(&mut self, event: &Event<'_>) {
        let mut ctx = Ctx::new(Instant::now());
        self.module.handle(event, &mut ctx);
        self.apply(ctx.take_changes());
    }

    fn call<R>(&mut self, f: impl FnOnce(&mut Overlay, &mut Ctx) -> R) -> R {
        let mut ctx = Ctx::new(Instant::now());
        let r = f(&mut self.module, &mut ctx);
        self.apply(ctx.take_changes());
        r
    }

    /// Where a packet entering `host` at `in_port` ends up: (host, port)
    /// of every VM-side output, following tunnels. Copies to the
    /// controller are fed back to the module as packet-ins.
    fn send(
        &mut self,
        host: usize,
        in_port: u32,
        packet: Packet,
        frame: &[u8],
    ) -> Vec<(usize, u32)> {
        let mut out = Vec::new();
        let mut work = vec![(host, in_port, packet)];
        let mut packet_ins = Vec::new();
        let mut hops = 0;
        while let Some((h, port, pkt)) = work.pop() {
            hops += 1;
            assert!(hops < 50, "forwarding loop");
            let trace = self.switches[&dpid(h)].process(port, &pkt);
            for (p, emitted) in trace.emitted {
                if p == port_no::CONTROLLER {
                    let cookie = trace
                        .cookies
                        .iter()
                        .copied()
                        .find(|c| owner_of(*c) == Some(Owner::Overlay))
                        .unwrap();
                    packet_ins.push((h, port, cookie));
                } else if p >= 10 {
                    let peer = (p - 10) as usize;
                    // The tunnel carries the packet with its tun_id; the
                    // receiving side sees it on its tunnel to us.
                    let fields: Vec<Oxm> = emitted
                        .fields
                        .into_iter()
                        .filter(|f| !matches!(f, Oxm::InPort(_) | Oxm::Metadata(..)))
                        .collect();
                    if !fields.iter().any(|f| matches!(f, Oxm::TunnelId(..))) {
                        panic!("tunnel output without tun_id: {fields:?}");
                    }
                    work.push((peer, tunnel(peer, h), Packet::new(fields)));
                } else {
                    out.push((h, p));
                }
            }
        }
        for (h, port, cookie) in packet_ins {
            let pi = PacketIn {
                buffer_id: flowgate_openflow::NO_BUFFER,
                total_len: frame.len() as u16,
                reason: PacketInReason::Action,
                table_id: 0,
                cookie,
                match_: Match::new().with(Oxm::InPort(port)),
                data: Bytes::copy_from_slice(frame),
            };
            self.event(&Event::PacketIn {
                dpid: dpid(h),
                packet_in: &pi,
            });
        }
        out.sort_unstable();
        out
    }

    /// Every overlay flow (cookie) on every switch.
    fn overlay_cookies(&self) -> Vec<u64> {
        self.switches
            .values()
            .flat_map(|s| s.flows.values().map(|f| f.cookie))
            .filter(|c| owner_of(*c) == Some(Owner::Overlay))
            .collect()
    }
}

fn eth(src: MacAddr, dst: MacAddr) -> Packet {
    Packet::new(vec![
        Oxm::EthSrc(src, None),
        Oxm::EthDst(dst, None),
        Oxm::EthType(0x0800),
    ])
}

fn arp_request(src: MacAddr, spa: Ipv4Addr, tpa: Ipv4Addr) -> (Packet, Vec<u8>) {
    let packet = Packet::new(vec![
        Oxm::EthSrc(src, None),
        Oxm::EthDst(MacAddr::BROADCAST, None),
        Oxm::EthType(0x0806),
        Oxm::ArpOp(1),
        Oxm::ArpSpa(spa, None),
        Oxm::ArpTpa(tpa, None),
    ]);
    let mut frame = Vec::new();
    frame.extend_from_slice(&MacAddr::BROADCAST.0);
    frame.extend_from_slice(&src.0);
    frame.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    frame.extend_from_slice(&src.0);
    frame.extend_from_slice(&spa.octets());
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&tpa.octets());
    (packet, frame)
}

/// Red VMs announce themselves so their MAC and IP are learned.
fn learn_red(c: &mut Cloud) {
    for h in 1..=3 {
        let (p, f) = arp_request(red_mac(h), ip(h), Ipv4Addr::new(10, 0, 0, 99));
        c.send(h, RED_VM, p, &f);
    }
}

#[test]
fn broadcast_reaches_the_tenants_ports_on_every_host_and_nothing_else() {
    let mut c = Cloud::new();
    let got = c.send(1, BLUE_VM, eth(blue_mac(1), MacAddr::BROADCAST), &[]);
    assert_eq!(got, vec![(2, BLUE_VM), (3, BLUE_VM)]);
    // The tunnel copies carry the blue VNI.
    let trace = c.switches[&dpid(1)].process(BLUE_VM, &eth(blue_mac(1), MacAddr::BROADCAST));
    let vnis: Vec<_> = trace
        .emitted
        .iter()
        .filter(|(p, _)| *p >= 10)
        .map(|(p, pkt)| (*p, pkt.get(0x8000, 38).cloned()))
        .collect();
    assert_eq!(
        vnis,
        vec![
            (tunnel(1, 2), Some(Oxm::TunnelId(u64::from(VNI_BLUE), None))),
            (tunnel(1, 3), Some(Oxm::TunnelId(u64::from(VNI_BLUE), None)))
        ]
    );
}

#[test]
fn unicast_goes_through_one_tunnel_to_the_right_port() {
    let mut c = Cloud::new();
    assert_eq!(
        c.send(1, BLUE_VM, eth(blue_mac(1), blue_mac(3)), &[]),
        vec![(3, BLUE_VM)]
    );
    let trace = c.switches[&dpid(1)].process(BLUE_VM, &eth(blue_mac(1), blue_mac(3)));
    assert_eq!(trace.outputs, vec![tunnel(1, 3)]);
}

#[test]
fn tenants_with_the_same_addresses_stay_apart() {
    let mut c = Cloud::new();
    learn_red(&mut c);
    // Red learned its MACs: unicast works within red.
    assert_eq!(
        c.send(1, RED_VM, eth(red_mac(1), red_mac(2)), &[]),
        vec![(2, RED_VM)]
    );
    // Red cannot reach blue by MAC, nor blue red.
    assert_eq!(
        c.send(1, RED_VM, eth(red_mac(1), blue_mac(2)), &[]),
        vec![(2, RED_VM), (3, RED_VM)]
    );
    assert_eq!(
        c.send(2, BLUE_VM, eth(blue_mac(2), red_mac(3)), &[]),
        vec![(1, BLUE_VM), (3, BLUE_VM)]
    );
    // Red broadcast stays red.
    assert_eq!(
        c.send(3, RED_VM, eth(red_mac(3), MacAddr::BROADCAST), &[]),
        vec![(1, RED_VM), (2, RED_VM)]
    );
}

#[test]
fn unbound_ports_and_spoofed_sources_reach_nobody() {
    let mut c = Cloud::new();
    assert!(c
        .send(
            1,
            ROGUE,
            eth(MacAddr([2, 9, 9, 9, 9, 9]), MacAddr::BROADCAST),
            &[]
        )
        .is_empty());
    assert!(c
        .send(1, ROGUE, eth(blue_mac(1), blue_mac(2)), &[])
        .is_empty());
    // A blue VM sending with another MAC than its own is not blue traffic.
    assert!(c
        .send(
            1,
            BLUE_VM,
            eth(MacAddr([2, 9, 9, 9, 9, 9]), blue_mac(2)),
            &[]
        )
        .is_empty());
    // A tunnel packet with an unknown VNI goes nowhere.
    let mut p = eth(blue_mac(1), MacAddr::BROADCAST);
    p.fields.push(Oxm::TunnelId(999, None));
    assert!(c.send(2, tunnel(2, 1), p, &[]).is_empty());
}

#[test]
fn tunnel_traffic_is_not_flooded_back_into_tunnels() {
    let mut c = Cloud::new();
    let mut p = eth(blue_mac(1), MacAddr::BROADCAST);
    p.fields.push(Oxm::TunnelId(u64::from(VNI_BLUE), None));
    let trace = c.switches[&dpid(2)].process(tunnel(2, 1), &p);
    assert_eq!(trace.outputs, vec![BLUE_VM]);
    assert_eq!(c.send(2, tunnel(2, 1), p, &[]), vec![(2, BLUE_VM)]);
}

#[test]
fn arp_for_a_known_address_is_answered_locally() {
    let mut c = Cloud::new();
    let (p, f) = arp_request(blue_mac(1), ip(1), ip(3));
    let trace = c.switches[&dpid(1)].process(BLUE_VM, &p);
    assert_eq!(
        trace.outputs,
        vec![BLUE_VM],
        "reply out of the ingress port only"
    );
    let (_, reply) = &trace.emitted[0];
    assert!(reply.fields.contains(&Oxm::ArpOp(2)));
    assert!(reply.fields.contains(&Oxm::EthSrc(blue_mac(3), None)));
    assert!(reply.fields.contains(&Oxm::ArpSha(blue_mac(3), None)));
    assert!(reply.fields.contains(&Oxm::ArpSpa(ip(3), None)));
    // Nothing crossed a tunnel.
    assert_eq!(c.send(1, BLUE_VM, p, &f), vec![(1, BLUE_VM)]);
    // Red asks for the same address and gets red's answer once learned.
    learn_red(&mut c);
    let (p, _) = arp_request(red_mac(1), ip(1), ip(3));
    let trace = c.switches[&dpid(1)].process(RED_VM, &p);
    assert_eq!(trace.outputs, vec![RED_VM]);
    assert!(trace.emitted[0]
        .1
        .fields
        .contains(&Oxm::ArpSha(red_mac(3), None)));
    // A VM probing its own address is not answered on its behalf.
    let (p, _) = arp_request(blue_mac(1), Ipv4Addr::UNSPECIFIED, ip(1));
    let trace = c.switches[&dpid(1)].process(BLUE_VM, &p);
    assert!(!trace.outputs.contains(&BLUE_VM));
}

#[test]
fn learning_stops_once_mac_and_ip_are_known() {
    let mut c = Cloud::new();
    let first = c.switches[&dpid(1)].process(RED_VM, &eth(red_mac(1), MacAddr::BROADCAST));
    assert!(first.to_controller());
    learn_red(&mut c);
    let w = c.module.world();
    let port = &w.config.ports[&("red".to_owned(), "red-h1".to_owned())];
    assert_eq!(w.mac(port), Some(red_mac(1)));
    assert_eq!(w.ips(port), vec![IpAddr::V4(ip(1))]);
    let later = c.switches[&dpid(1)].process(RED_VM, &eth(red_mac(1), MacAddr::BROADCAST));
    assert!(!later.to_controller());
    let (arp, _) = arp_request(red_mac(1), ip(1), ip(2));
    assert!(!c.switches[&dpid(1)].process(RED_VM, &arp).to_controller());
}

#[test]
fn a_moved_port_leaves_its_old_network_at_once() {
    let mut c = Cloud::new();
    learn_red(&mut c);
    // blue-h2's interface is rebound into red (delete + create, as over REST).
    c.call(|m, ctx| {
        m.delete_port("blue", "blue-h2", ctx);
        m.put_port(
            Port {
                id: "moved".into(),
                network: "red".into(),
                binding: Binding::IfaceId("blue-h2".into()),
                mac: Some(blue_mac(2)),
                ips: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 12))],
            },
            ctx,
        );
    });
    assert_eq!(
        c.send(1, BLUE_VM, eth(blue_mac(1), MacAddr::BROADCAST), &[]),
        vec![(3, BLUE_VM)]
    );
    assert!(c
        .send(1, BLUE_VM, eth(blue_mac(1), blue_mac(2)), &[])
        .iter()
        .all(|d| *d != (2, BLUE_VM)));
    assert_eq!(
        c.send(1, RED_VM, eth(red_mac(1), blue_mac(2)), &[]),
        vec![(2, BLUE_VM)]
    );
}

#[test]
fn deleting_a_network_removes_all_its_flows() {
    let mut c = Cloud::new();
    learn_red(&mut c);
    let vni_of = |cookie: u64| (cookie & 0xff_ffff) as u32;
    assert!(c.overlay_cookies().iter().any(|ck| vni_of(*ck) == VNI_RED));
    let removed = c.call(|m, ctx| m.delete_network("red", ctx)).unwrap();
    assert_eq!(removed.1.len(), 3);
    assert!(c.overlay_cookies().iter().all(|ck| vni_of(*ck) != VNI_RED));
    assert!(c
        .last
        .iter()
        .all(|ch| matches!(ch, Change::RemoveFlow { .. })));
    // Blue is untouched.
    assert_eq!(
        c.send(1, BLUE_VM, eth(blue_mac(1), MacAddr::BROADCAST), &[]),
        vec![(2, BLUE_VM), (3, BLUE_VM)]
    );
}

#[test]
fn changes_touch_only_the_switches_they_concern() {
    let mut c = Cloud::new();
    let dpids = |changes: &[Change]| -> Vec<u64> {
        let mut d: Vec<u64> = changes
            .iter()
            .filter_map(|ch| match ch {
                Change::InstallFlow { dpid, .. } | Change::RemoveFlow { dpid, .. } => Some(*dpid),
                _ => None,
            })
            .collect();
        d.sort_unstable();
        d.dedup();
        d
    };
    // A network with a port on host 1 only: only host 1 changes.
    c.call(|m, ctx| {
        m.put_network(network("green", 300), ctx);
        m.put_port(
            Port {
                id: "g1".into(),
                network: "green".into(),
                binding: Binding::Switch(SwitchPort {
                    dpid: dpid(1),
                    port: "rogue".into(),
                }),
                mac: Some(MacAddr([2, 0, 0, 0, 3, 1])),
                ips: vec![],
            },
            ctx,
        );
    });
    assert_eq!(dpids(&c.last), vec![dpid(1)]);
    // Re-declaring the same thing sends nothing.
    c.call(|m, ctx| m.put_network(network("green", 300), ctx));
    assert!(c.last.is_empty());
    // A new blue address changes the ARP responder everywhere blue lives.
    let mut p = blue_port(3);
    p.ips.push(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 33)));
    c.call(|m, ctx| m.put_port(p, ctx));
    assert_eq!(dpids(&c.last), vec![dpid(1), dpid(2), dpid(3)]);
    assert!(
        c.last.len() <= 4,
        "one ARP entry per host: {:?}",
        c.last.len()
    );
}

#[test]
fn a_host_leaving_loses_its_tunnels_and_ports() {
    let mut c = Cloud::new();
    // The hosts come from the provisioning task.
    let list = ChassisList(vec![chassis(1), chassis(2)]);
    c.event(&Event::Task { payload: &list });
    // Host 1 no longer sends to host 3's tunnel.
    let trace = c.switches[&dpid(1)].process(BLUE_VM, &eth(blue_mac(1), MacAddr::BROADCAST));
    assert_eq!(trace.outputs, vec![tunnel(1, 2)]);
    let flows_of_h1: Vec<_> = c.switches[&dpid(1)]
        .flows
        .values()
        .flat_map(|f| f.instructions.iter())
        .filter(|i| format!("{i:?}").contains(&format!("port: {}", tunnel(1, 3))))
        .collect();
    assert!(flows_of_h1.is_empty());
}

#[test]
fn a_tunnel_port_deleted_on_the_switch_is_forgotten() {
    let mut c = Cloud::new();
    let gone = OfPort {
        port_no: tunnel(1, 3),
        name: "tun3".into(),
        ..Default::default()
    };
    c.event(&Event::PortStatus {
        dpid: dpid(1),
        status: &PortStatus {
            reason: PortReason::Delete,
            desc: gone,
        },
    });
    let trace = c.switches[&dpid(1)].process(BLUE_VM, &eth(blue_mac(1), MacAddr::BROADCAST));
    assert_eq!(trace.outputs, vec![tunnel(1, 2)]);
}

/// The overlay flows a switch holds, as the flow stats it would report.
fn stats_of(sw: &FakeSwitch) -> Vec<FlowStats> {
    sw.flows
        .iter()
        .filter(|(_, s)| owner_of(s.cookie) == Some(Owner::Overlay))
        .map(|(k, s)| FlowStats {
            table_id: k.table_id,
            duration_sec: 1,
            duration_nsec: 0,
            priority: k.priority,
            idle_timeout: 0,
            hard_timeout: 0,
            flags: 0,
            cookie: s.cookie,
            packet_count: 0,
            byte_count: 0,
            match_: k.match_().clone(),
            instructions: s.instructions.clone(),
        })
        .collect()
}

/// Performs the store writes among `changes`, as the runtime does.
fn persist(store: Option<&dyn flowgate_controller::store::Store>, changes: &[Change]) {
    for change in changes {
        if let (Some(store), Change::Persist(ops)) = (store, change) {
            store.apply(ops.clone()).expect("store write");
        }
    }
}

fn flow_changes(changes: &[Change]) -> (usize, usize) {
    let installs = changes
        .iter()
        .filter(|c| matches!(c, Change::InstallFlow { .. }))
        .count();
    let removes = changes
        .iter()
        .filter(|c| matches!(c, Change::RemoveFlow { .. }))
        .count();
    (installs, removes)
}

#[test]
fn a_restart_rewrites_nothing_even_before_hosts_are_known_again() {
    let store: Arc<dyn flowgate_controller::store::Store> =
        Arc::new(flowgate_controller::store::MemoryStore::new());
    let mut c = Cloud::empty(Overlay::default());
    c.store = Some(store.clone());
    c.call(|m, ctx| {
        m.set_chassis((1..=3).map(chassis).collect(), ctx);
        m.put_network(network("blue", VNI_BLUE), ctx);
        m.put_network(network("red", VNI_RED), ctx);
        for h in 1..=3 {
            m.put_port(blue_port(h), ctx);
            m.put_port(red_port(h), ctx);
        }
    });
    learn_red(&mut c);
    let before: BTreeMap<u64, FakeSwitch> = c.switches.clone();

    // A restarted controller: configuration and learned addresses from the
    // store; switches reconnect before OVSDB tells which host is which.
    let mut fresh = Overlay::load(c.module.config().clone(), store.as_ref()).unwrap();
    let mut restarted = BTreeMap::new();
    for h in 1..=3 {
        let installed = stats_of(&before[&dpid(h)]);
        let ports = of_ports(h);
        let mut ctx = Ctx::new(Instant::now());
        fresh.handle(
            &Event::SwitchUp {
                dpid: dpid(h),
                ports: &ports,
                installed: &installed,
                groups: &[],
                meters: &[],
            },
            &mut ctx,
        );
        let mut sw = FakeSwitch::new(dpid(h));
        sw.adopt(&installed);
        let seen = sw.apply(&ctx.take_changes());
        assert_eq!(flow_changes(&seen), (0, 0), "host {h} untouched");
        assert_eq!(sw.flows, before[&dpid(h)].flows, "host {h} keeps its flows");
        restarted.insert(dpid(h), sw);
    }
    // The hosts are known again: the compiled flows equal what is there.
    let mut ctx = Ctx::new(Instant::now());
    fresh.set_chassis((1..=3).map(chassis).collect(), &mut ctx);
    let changes = ctx.take_changes();
    for sw in restarted.values_mut() {
        assert_eq!(flow_changes(&sw.apply(&changes)), (0, 0));
    }
    let w = fresh.world();
    let port = &w.config.ports[&("red".to_owned(), "red-h2".to_owned())];
    assert_eq!(w.mac(port), Some(red_mac(2)));
    assert_eq!(w.ips(port), vec![IpAddr::V4(ip(2))]);
}

#[test]
fn learned_addresses_are_taken_back_from_flows_without_a_store() {
    let mut c = Cloud::new();
    learn_red(&mut c);
    let installed = stats_of(&c.switches[&dpid(1)]);
    let mut fresh = Overlay::new(c.module.config().clone());
    let mut ctx = Ctx::new(Instant::now());
    fresh.set_chassis((1..=3).map(chassis).collect(), &mut ctx);
    let ports = of_ports(1);
    fresh.handle(
        &Event::SwitchUp {
            dpid: dpid(1),
            ports: &ports,
            installed: &installed,
            groups: &[],
            meters: &[],
        },
        &mut ctx,
    );
    let w = fresh.world();
    let port = &w.config.ports[&("red".to_owned(), "red-h1".to_owned())];
    assert_eq!(w.mac(port), Some(red_mac(1)));
    assert_eq!(w.ips(port), vec![IpAddr::V4(ip(1))]);
}

#[test]
fn flows_of_a_host_that_never_returns_go_after_the_grace() {
    let mut c = Cloud::new();
    let installed = stats_of(&c.switches[&dpid(1)]);
    let mut fresh = Overlay::new(c.module.config().clone());
    let ports = of_ports(1);
    let start = Instant::now();
    let mut ctx = Ctx::new(start);
    fresh.handle(
        &Event::SwitchUp {
            dpid: dpid(1),
            ports: &ports,
            installed: &installed,
            groups: &[],
            meters: &[],
        },
        &mut ctx,
    );
    let mut sw = FakeSwitch::new(dpid(1));
    sw.adopt(&installed);
    assert_eq!(flow_changes(&sw.apply(&ctx.take_changes())), (0, 0));
    let mut ctx = Ctx::new(start + ADOPT_GRACE);
    fresh.handle(&Event::Tick, &mut ctx);
    let seen = sw.apply(&ctx.take_changes());
    assert_eq!(flow_changes(&seen), (0, installed.len()));
    c.apply(seen);
}

#[test]
fn frames_are_parsed_for_learning() {
    let (_, arp) = arp_request(red_mac(1), ip(1), ip(2));
    assert_eq!(
        Frame::parse(&arp),
        Some(Frame {
            src: red_mac(1),
            sender_ip: Some(ip(1))
        })
    );
    let mut ipv4 = vec![0u8; 34];
    ipv4[6..12].copy_from_slice(&red_mac(2).0);
    ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
    ipv4[26..30].copy_from_slice(&[10, 0, 0, 2]);
    assert_eq!(Frame::parse(&ipv4).unwrap().sender_ip, Some(ip(2)));
    assert_eq!(Frame::parse(&[0; 10]), None);
}

#[test]
fn neighbor_solicitation_for_a_known_address_is_answered_by_the_controller() {
    let mut c = Cloud::new();
    let v6: std::net::Ipv6Addr = "fd00::3".parse().unwrap();
    let mut p = blue_port(3);
    p.ips.push(IpAddr::V6(v6));
    c.call(|m, ctx| m.put_port(p, ctx));
    let ns = Packet::new(vec![
        Oxm::EthSrc(blue_mac(1), None),
        Oxm::EthDst(MacAddr([0x33, 0x33, 0xff, 0, 0, 3]), None),
        Oxm::EthType(0x86dd),
        Oxm::IpProto(58),
        Oxm::Icmpv6Type(135),
        Oxm::Ipv6NdTarget(v6),
    ]);
    let trace = c.switches[&dpid(1)].process(BLUE_VM, &ns);
    assert_eq!(trace.outputs, vec![port_no::CONTROLLER], "not flooded");
    // The same question in red goes the ordinary way (red has no fd00::3).
    let mut red_ns = ns.clone();
    red_ns.fields[0] = Oxm::EthSrc(red_mac(1), None);
    learn_red(&mut c);
    assert!(!c.switches[&dpid(1)]
        .process(RED_VM, &red_ns)
        .to_controller());

    // The frame Linux sends, as the packet-in carries it.
    let mut frame = vec![0x33, 0x33, 0xff, 0, 0, 3];
    frame.extend_from_slice(&blue_mac(1).0);
    frame.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 32, 58, 255]);
    frame.extend_from_slice(&"fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
    frame.extend_from_slice(
        &"ff02::1:ff00:3"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    frame.extend_from_slice(&[135, 0, 0, 0, 0, 0, 0, 0]);
    frame.extend_from_slice(&v6.octets());
    frame.extend_from_slice(&[1, 1]);
    frame.extend_from_slice(&blue_mac(1).0);
    let cookie = trace.cookies[trace.cookies.len() - 1];
    let pi = PacketIn {
        buffer_id: flowgate_openflow::NO_BUFFER,
        total_len: frame.len() as u16,
        reason: PacketInReason::Action,
        table_id: 5,
        cookie,
        match_: Match::new().with(Oxm::InPort(BLUE_VM)),
        data: Bytes::from(frame),
    };
    let mut ctx = Ctx::new(Instant::now());
    c.module.handle(
        &Event::PacketIn {
            dpid: dpid(1),
            packet_in: &pi,
        },
        &mut ctx,
    );
    let outs: Vec<_> = ctx
        .take_changes()
        .into_iter()
        .filter_map(|ch| match ch {
            Change::PacketOut { dpid, packet_out } => Some((dpid, packet_out)),
            _ => None,
        })
        .collect();
    assert_eq!(outs.len(), 1);
    let (d, po) = &outs[0];
    assert_eq!((*d, po.in_port), (dpid(1), BLUE_VM));
    assert_eq!(&po.data[0..6], &blue_mac(1).0, "to the asker");
    assert_eq!(&po.data[6..12], &blue_mac(3).0, "from the owner's MAC");
    assert_eq!(po.data[54], 136);
}

#[test]
fn tenant_networks_are_published_when_they_change() {
    let mut c = Cloud::new();
    let published = |m: &mut Overlay, f: &dyn Fn(&mut Overlay, &mut Ctx)| {
        let mut ctx = Ctx::new(Instant::now());
        f(m, &mut ctx);
        ctx.take_changes()
            .into_iter()
            .filter_map(|change| match change {
                Change::Publish(p) => p.downcast_ref::<Arc<TenantNetworks>>().cloned(),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let view = c.module.published.clone().expect("published at start");
    let blue = &view.networks["blue"];
    assert_eq!(
        (blue.vni, blue.subnet),
        (VNI_BLUE, Some((IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)), 24)))
    );
    let port = blue.ports.iter().find(|p| p.id == "blue-h2").unwrap();
    assert_eq!(port.mac, Some(blue_mac(2)));
    assert_eq!(port.ips, vec![IpAddr::V4(ip(2))]);
    assert_eq!((port.dpid, port.port_no), (Some(dpid(2)), Some(BLUE_VM)));
    // Nothing changed: nothing published.
    assert!(published(&mut c.module, &|m, ctx| m.handle(&Event::Tick, ctx)).is_empty());
    // A port goes: the next notice lacks it.
    let again = published(&mut c.module, &|m, ctx| {
        m.delete_port("blue", "blue-h2", ctx);
    });
    assert_eq!(again.len(), 1);
    assert!(again[0].networks["blue"]
        .ports
        .iter()
        .all(|p| p.id != "blue-h2"));
}

/// What the store holds for `config` (the service's keys), as a sync.
fn stored(config: &Config, complete: bool) -> StoreSync {
    let mut changed: Vec<(String, Option<Vec<u8>>)> = config
        .networks
        .values()
        .map(|n| (format!("{NETWORKS}{}", n.id), json(n)))
        .collect();
    changed.extend(
        config
            .ports
            .values()
            .map(|p| (format!("{PORTS}{}/{}", p.network, p.id), json(p))),
    );
    StoreSync { changed, complete }
}

fn json(value: &impl Serialize) -> Option<Vec<u8>> {
    Some(serde_json::to_vec(value).expect("json"))
}

#[test]
fn another_nodes_networks_and_ports_are_followed_from_the_store() {
    let written = Cloud::new();
    let mut follower = Cloud::empty(Overlay::default());
    follower.call(|m, ctx| m.set_chassis((1..=3).map(chassis).collect(), ctx));

    let sync = stored(written.module.config(), true);
    let followed = follower.call(|m, ctx| m.follow_store(&sync, ctx));
    assert_eq!(followed, Followed::Taken);
    assert_eq!(follower.module.config(), written.module.config());
    let sorted = |mut cookies: Vec<u64>| {
        cookies.sort_unstable();
        cookies
    };
    assert_eq!(
        sorted(follower.overlay_cookies()),
        sorted(written.overlay_cookies())
    );
    assert_eq!(
        follower.send(1, BLUE_VM, eth(blue_mac(1), MacAddr::BROADCAST), &[]),
        vec![(2, BLUE_VM), (3, BLUE_VM)]
    );

    // The same state again (this node's own write coming back): nothing.
    let followed = follower.call(|m, ctx| m.follow_store(&sync, ctx));
    assert_eq!(followed, Followed::Taken);
    assert!(follower.last.is_empty(), "{:?}", follower.last);

    // A value that does not decode keeps what the module has.
    let garbage = StoreSync {
        changed: vec![(format!("{NETWORKS}blue"), Some(b"{".to_vec()))],
        complete: false,
    };
    assert_eq!(
        follower.call(|m, ctx| m.follow_store(&garbage, ctx)),
        Followed::Taken
    );
    assert!(follower.module.config().networks.contains_key("blue"));

    // Two networks with one VNI do not validate: refused, nothing changes.
    let mut clash = network("green", VNI_BLUE);
    clash.name = "green".into();
    let clash = StoreSync {
        changed: vec![(
            format!("{NETWORKS}green"),
            Some(serde_json::to_vec(&clash).expect("json")),
        )],
        complete: false,
    };
    assert_eq!(
        follower.call(|m, ctx| m.follow_store(&clash, ctx)),
        Followed::Refused
    );
    assert!(follower.last.is_empty());

    // The red network deleted elsewhere (its ports with it).
    let mut deleted = StoreSync {
        changed: vec![(format!("{NETWORKS}red"), None)],
        complete: false,
    };
    deleted
        .changed
        .extend((1..=3).map(|h| (format!("{PORTS}red/red-h{h}"), None)));
    assert_eq!(
        follower.call(|m, ctx| m.follow_store(&deleted, ctx)),
        Followed::Taken
    );
    assert!(!follower.module.config().networks.contains_key("red"));
    assert!(follower
        .module
        .config()
        .ports
        .keys()
        .all(|(n, _)| n != "red"));
    let vni_of = |cookie: u64| (cookie & 0xff_ffff) as u32;
    assert!(follower
        .overlay_cookies()
        .iter()
        .all(|ck| vni_of(*ck) != VNI_RED));
}
