//! Tenants across plain OpenFlow switches: s1 (transit) joins s2 and s3,
//! each with a blue and a red port using the same addresses; a rogue host
//! hangs off s1 and an unbound port off s2.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use flowgate_controller::cookie::Owner;
use flowgate_controller::module::{Change, Ctx, Event, Module};
use flowgate_controller::testing::{FakeSwitch, Packet};
use flowgate_controller::topology::{Endpoint, PortRole, PortView, SwitchView, TopologyView};
use flowgate_openflow::{MacAddr, Oxm, Port as OfPort};

use super::*;
use crate::model::{Binding, Network, Port, SwitchPort};
use crate::Overlay;

const BLUE: u32 = 100;
const RED: u32 = 200;
const UPLINK: u32 = 3;
const ROGUE: u32 = 4;

fn mac(net: u8, sw: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, net, sw])
}

/// s1 port 1 ↔ s2 port 3, s1 port 2 ↔ s3 port 3.
fn far_end(dpid: u64, port: u32) -> Option<(u64, u32)> {
    match (dpid, port) {
        (1, 1) => Some((2, UPLINK)),
        (1, 2) => Some((3, UPLINK)),
        (2, UPLINK) => Some((1, 1)),
        (3, UPLINK) => Some((1, 2)),
        _ => None,
    }
}

fn ports_of(dpid: u64) -> Vec<u32> {
    if dpid == 1 {
        vec![1, 2, ROGUE]
    } else {
        vec![1, 2, UPLINK, ROGUE]
    }
}

fn view() -> TopologyView {
    let switches = (1..=3)
        .map(|d| {
            let ports = ports_of(d)
                .into_iter()
                .map(|p| {
                    let role = if far_end(d, p).is_some() {
                        PortRole::Link
                    } else {
                        PortRole::Edge
                    };
                    (
                        p,
                        PortView {
                            name: format!("s{d}-eth{p}"),
                            hw_addr: MacAddr::ZERO,
                            role,
                        },
                    )
                })
                .collect();
            (d, SwitchView { ready: true, ports })
        })
        .collect();
    TopologyView {
        switches,
        links: vec![
            (Endpoint::new(1, 1), Endpoint::new(2, UPLINK)),
            (Endpoint::new(1, 2), Endpoint::new(3, UPLINK)),
        ],
        hosts: vec![],
    }
}

fn bound(net: &str, sw: u64, port: u32, m: MacAddr, host: u8) -> Port {
    Port {
        id: format!("{net}-s{sw}"),
        network: net.into(),
        binding: Binding::Switch(SwitchPort {
            dpid: sw,
            port: format!("s{sw}-eth{port}"),
        }),
        mac: Some(m),
        ips: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, host))],
    }
}

struct Net {
    module: Overlay,
    switches: BTreeMap<u64, FakeSwitch>,
}

impl Net {
    fn new() -> Net {
        let mut n = Net {
            module: Overlay::default(),
            switches: (1..=3).map(|d| (d, FakeSwitch::new(d))).collect(),
        };
        for d in 1..=3u64 {
            let ports: Vec<OfPort> = ports_of(d)
                .into_iter()
                .map(|p| OfPort {
                    port_no: p,
                    name: format!("s{d}-eth{p}"),
                    ..Default::default()
                })
                .collect();
            n.event(&Event::SwitchUp {
                dpid: d,
                ports: &ports,
                installed: &[],
                groups: &[],
                meters: &[],
            });
        }
        let topo: Arc<TopologyView> = Arc::new(view());
        n.event(&Event::Notice {
            from: Owner::Topology,
            payload: &topo,
        });
        n.call(|m, ctx| {
            for (id, vni) in [("blue", BLUE), ("red", RED)] {
                m.put_network(
                    Network {
                        id: id.into(),
                        name: id.into(),
                        tenant: id.into(),
                        vni,
                        subnet: None,
                        gateway: None,
                    },
                    ctx,
                );
            }
            for sw in [2u64, 3] {
                m.put_port(bound("blue", sw, 1, mac(1, sw as u8), sw as u8), ctx);
                m.put_port(bound("red", sw, 2, mac(2, sw as u8), sw as u8), ctx);
            }
        });
        n
    }

    fn apply(&mut self, changes: Vec<Change>) {
        for sw in self.switches.values_mut() {
            sw.apply(&changes);
        }
    }

    fn event(&mut self, e: &Event<'_>) {
        let mut ctx = Ctx::new(Instant::now());
        self.module.handle(e, &mut ctx);
        self.apply(ctx.take_changes());
    }

    fn call(&mut self, f: impl FnOnce(&mut Overlay, &mut Ctx)) {
        let mut ctx = Ctx::new(Instant::now());
        f(&mut self.module, &mut ctx);
        self.apply(ctx.take_changes());
    }

    /// Host-side deliveries (switch, port, packet) of a frame entering
    /// `dpid` at `port`, following links.
    fn send(&self, dpid: u64, port: u32, packet: Packet) -> Vec<(u64, u32, Packet)> {
        let mut out = Vec::new();
        let mut work = vec![(dpid, port, packet)];
        let mut hops = 0;
        while let Some((d, p, pkt)) = work.pop() {
            hops += 1;
            assert!(hops < 50, "loop");
            for (o, emitted) in self.switches[&d].process(p, &pkt).emitted {
                let fields: Vec<Oxm> = emitted
                    .fields
                    .into_iter()
                    .filter(|f| !matches!(f, Oxm::InPort(_) | Oxm::Metadata(..)))
                    .collect();
                match far_end(d, o) {
                    Some((fd, fp)) => work.push((fd, fp, Packet::new(fields))),
                    None => out.push((d, o, Packet::new(fields))),
                }
            }
        }
        out.sort_by_key(|(d, p, _)| (*d, *p));
        out
    }

    fn reached(&self, dpid: u64, port: u32, packet: Packet) -> Vec<(u64, u32)> {
        self.send(dpid, port, packet)
            .into_iter()
            .map(|(d, p, _)| (d, p))
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

#[test]
fn the_tree_carries_each_network_under_its_own_vlan() {
    let n = Net::new();
    let f = Fabric::compute(n.module.world());
    assert_eq!(f.vlans[&BLUE], vlan_of(BLUE));
    assert_eq!(f.vlans[&RED], vlan_of(RED));
    assert_eq!(f.ports[&1][&BLUE], [1, 2].into_iter().collect());
    assert_eq!(f.ports[&2][&BLUE], [UPLINK].into_iter().collect());
    assert_eq!(f.next_hop[&(2, 3)], UPLINK);
    assert_eq!(f.next_hop[&(1, 3)], 2);
    // On the wire between switches the frame is tagged.
    let trace = n.switches[&2].process(1, &eth(mac(1, 2), MacAddr::BROADCAST));
    let (port, pkt) = &trace.emitted[0];
    assert_eq!(*port, UPLINK);
    assert!(pkt
        .fields
        .contains(&Oxm::VlanVid(VID_PRESENT | vlan_of(BLUE), None)));
}

#[test]
fn broadcast_and_unicast_stay_in_their_network_across_switches() {
    let n = Net::new();
    let got = n.send(2, 1, eth(mac(1, 2), MacAddr::BROADCAST));
    assert_eq!(
        got.iter().map(|(d, p, _)| (*d, *p)).collect::<Vec<_>>(),
        vec![(3, 1)]
    );
    // Delivered untagged.
    assert!(!got[0]
        .2
        .fields
        .iter()
        .any(|f| matches!(f, Oxm::VlanVid(..))));
    assert_eq!(n.reached(2, 1, eth(mac(1, 2), mac(1, 3))), vec![(3, 1)]);
    assert_eq!(n.reached(3, 2, eth(mac(2, 3), mac(2, 2))), vec![(2, 2)]);
    // Blue cannot reach red's MAC (unknown in blue: flooded in blue only).
    assert_eq!(n.reached(2, 1, eth(mac(1, 2), mac(2, 3))), vec![(3, 1)]);
}

#[test]
fn hosts_cannot_inject_into_a_tenant() {
    let n = Net::new();
    let rogue = MacAddr([2, 9, 9, 9, 9, 9]);
    // Tagged with blue's fabric VLAN, from an edge port of the transit switch.
    let mut tagged = eth(rogue, MacAddr::BROADCAST);
    tagged
        .fields
        .push(Oxm::VlanVid(VID_PRESENT | vlan_of(BLUE), None));
    assert!(n.reached(1, ROGUE, tagged.clone()).is_empty());
    // And from an unbound port of a switch with tenant ports.
    assert!(n.reached(2, ROGUE, tagged).is_empty());
    assert!(n
        .reached(2, ROGUE, eth(rogue, MacAddr::BROADCAST))
        .is_empty());
}

#[test]
fn a_transit_switch_still_forwards_other_traffic() {
    let n = Net::new();
    let trace =
        n.switches[&1].process(ROGUE, &eth(MacAddr([2, 9, 9, 9, 9, 9]), MacAddr::BROADCAST));
    assert!(
        trace
            .tables
            .contains(&flowgate_controller::pipeline::FORWARD),
        "untenanted traffic continues to forwarding on s1: {:?}",
        trace.tables
    );
    // While s2, which has tenant ports, admits no untenanted traffic.
    let trace =
        n.switches[&2].process(ROGUE, &eth(MacAddr([2, 9, 9, 9, 9, 9]), MacAddr::BROADCAST));
    assert!(!trace
        .tables
        .contains(&flowgate_controller::pipeline::FORWARD));
}

#[test]
fn a_network_on_one_switch_uses_no_link() {
    let mut n = Net::new();
    n.call(|m, ctx| {
        m.delete_port("red", "red-s3", ctx);
    });
    let f = Fabric::compute(n.module.world());
    assert!(!f.vlans.contains_key(&RED));
    assert!(f.ports.values().all(|by_vni| !by_vni.contains_key(&RED)));
    assert!(n
        .reached(2, 2, eth(mac(2, 2), MacAddr::BROADCAST))
        .is_empty());
}

#[test]
fn colliding_vlans_keep_the_lower_vni() {
    let mut n = Net::new();
    let clash = BLUE + 2047;
    assert_eq!(vlan_of(clash), vlan_of(BLUE));
    n.call(|m, ctx| {
        m.put_network(
            Network {
                id: "red".into(),
                name: "red".into(),
                tenant: "red".into(),
                vni: clash,
                subnet: None,
                gateway: None,
            },
            ctx,
        )
    });
    let f = Fabric::compute(n.module.world());
    assert_eq!(f.vlans.keys().copied().collect::<Vec<_>>(), vec![BLUE]);
    // Red stays on its switches; blue is carried as before.
    assert!(n
        .reached(2, 2, eth(mac(2, 2), MacAddr::BROADCAST))
        .is_empty());
    assert_eq!(
        n.reached(2, 1, eth(mac(1, 2), MacAddr::BROADCAST)),
        vec![(3, 1)]
    );
}
