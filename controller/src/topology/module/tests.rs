use std::collections::HashMap;

use bytes::Bytes;
use flowgate_openflow::PacketInReason;

use super::*;
use crate::module::Change;
use crate::testing::{reported_stats, FakeSwitch, Packet};
use crate::topology::packet::{Arp, ARP_REQUEST};
use crate::topology::prober::PROBES_PER_TICK;

const H1: MacAddr = MacAddr([0, 0, 0, 0, 0, 0x01]);
const ID: u64 = 0xf10e;

fn port(no: u32) -> Port {
    Port {
        port_no: no,
        hw_addr: MacAddr([0x02, 0, 0, 0, 0, no as u8]),
        name: format!("eth{no}"),
        config: 0,
        state: 0,
        curr: 0,
        advertised: 0,
        supported: 0,
        peer: 0,
        curr_speed: 0,
        max_speed: 0,
    }
}

/// A topology module on simulated switches whose LLDP probes travel over
/// simulated wires, with a simulated clock.
struct Lab {
    topo: Topology,
    now: Instant,
    wires: HashMap<Endpoint, Endpoint>,
    switches: HashMap<u64, FakeSwitch>,
    changes: Vec<Change>,
}

impl Lab {
    fn new() -> Self {
        Lab {
            topo: Topology::new(TopologyConfig {
                controller_id: ID,
                ..TopologyConfig::default()
            }),
            now: Instant::now(),
            wires: HashMap::new(),
            switches: HashMap::new(),
            changes: Vec::new(),
        }
    }

    fn wire(&mut self, a: (u64, u32), b: (u64, u32)) {
        let (a, b) = (Endpoint::new(a.0, a.1), Endpoint::new(b.0, b.1));
        self.wires.insert(a, b);
        self.wires.insert(b, a);
    }

    /// One event, as a batch of its own (the view is published at its end).
    fn event(&mut self, event: &Event<'_>) {
        let mut ctx = Ctx::new(self.now);
        self.topo.handle(event, &mut ctx);
        self.topo.batch_end(&mut ctx);
        let changes = ctx.take_changes();
        for sw in self.switches.values_mut() {
            sw.apply(&changes);
        }
        let mut probes = Vec::new();
        for change in &changes {
            if let Change::PacketOut { dpid, packet_out } = change {
                if let [Action::Output { port, .. }] = packet_out.actions[..] {
                    probes.push((Endpoint::new(*dpid, port), packet_out.data.clone()));
                }
            }
        }
        self.changes.extend(changes);
        for (from, frame) in probes {
            if let Some(to) = self.wires.get(&from).copied() {
                if self.switches.contains_key(&to.dpid) {
                    self.packet_in(to, OBJ_LLDP, frame);
                }
            }
        }
    }

    fn packet_in(&mut self, at: Endpoint, object: u64, data: Bytes) {
        let packet_in = PacketIn {
            buffer_id: NO_BUFFER,
            total_len: data.len() as u16,
            reason: PacketInReason::Action,
            table_id: CLASSIFY,
            cookie: Owner::Topology.cookie(object),
            match_: Match::new().with(Oxm::InPort(at.port)),
            data,
        };
        self.event(&Event::PacketIn {
            dpid: at.dpid,
            packet_in: &packet_in,
        });
    }

    fn up(&mut self, dpid: u64, ports: &[u32], installed: &[FlowStats]) {
        self.switches.insert(dpid, FakeSwitch::new(dpid));
        let ports: Vec<Port> = ports.iter().map(|&n| port(n)).collect();
        self.event(&Event::SwitchUp {
            dpid,
            ports: &ports,
            installed,
            groups: &[],
            meters: &[],
        });
    }

    fn tick(&mut self, secs: u64) {
        for _ in 0..secs {
            self.now += Duration::from_secs(1);
            self.event(&Event::Tick);
        }
    }

    fn view(&self) -> Arc<TopologyView> {
        self.topo.view()
    }

    /// A host frame (ARP request from `mac` for 10.0.0.99) arriving at `at`.
    fn host_sends(&mut self, at: (u64, u32), mac: MacAddr, ip: [u8; 4]) {
        let arp = Arp {
            op: ARP_REQUEST,
            sha: mac,
            spa: ip.into(),
            tha: MacAddr::ZERO,
            tpa: [10, 0, 0, 99].into(),
        };
        self.packet_in(Endpoint::new(at.0, at.1), OBJ_ARP, arp.to_frame(None));
    }
}

/// s1 - s2 - s3 - s1 (ports 2 and 3), a host port 1 on each.
fn triangle() -> Lab {
    let mut lab = Lab::new();
    lab.wire((1, 2), (2, 3));
    lab.wire((2, 2), (3, 3));
    lab.wire((3, 2), (1, 3));
    for s in 1..=3 {
        lab.up(s, &[1, 2, 3], &[]);
    }
    lab.tick(3);
    lab
}

#[test]
fn discovers_links_in_both_directions_and_classifies_ports() {
    let lab = triangle();
    let view = lab.view();
    assert_eq!(
        view.links.len(),
        6,
        "3 links, each seen both ways: {:?}",
        view.links
    );
    assert_eq!(view.undirected_links().len(), 3);
    for s in 1..=3 {
        assert!(view.is_ready(s));
        assert_eq!(view.ports_with_role(s, PortRole::Link), vec![2, 3]);
        assert_eq!(view.ports_with_role(s, PortRole::Edge), vec![1]);
    }
}

#[test]
fn a_switch_that_connects_later_is_found_by_its_own_probes() {
    let mut lab = Lab::new();
    lab.wire((1, 2), (2, 2));
    lab.up(1, &[1, 2], &[]);
    // s1's probe on port 2 went nowhere: s2 is not connected.
    assert!(lab.view().links.is_empty());
    lab.up(2, &[1, 2], &[]);
    assert_eq!(
        lab.view().links,
        vec![(Endpoint::new(2, 2), Endpoint::new(1, 2))]
    );
    lab.tick(3);
    assert_eq!(lab.view().ports_with_role(1, PortRole::Link), vec![2]);
    assert_eq!(lab.view().ports_with_role(2, PortRole::Link), vec![2]);
}

#[test]
fn ports_stay_pending_until_the_edge_delay_passes() {
    let mut lab = Lab::new();
    lab.up(1, &[1, 2], &[]);
    let view = lab.view();
    assert!(!view.is_ready(1));
    assert_eq!(view.ports_with_role(1, PortRole::Pending), vec![1, 2]);
    lab.tick(2);
    assert_eq!(lab.view().ports_with_role(1, PortRole::Pending), vec![1, 2]);
    lab.tick(1);
    assert_eq!(lab.view().ports_with_role(1, PortRole::Edge), vec![1, 2]);
    assert!(lab.view().is_ready(1));
}

#[test]
fn pending_ports_are_probed_every_tick_and_all_ports_every_round() {
    let mut lab = Lab::new();
    lab.up(1, &[1, 2], &[]);
    let probes = |lab: &Lab| {
        lab.changes
            .iter()
            .filter(|c| matches!(c, Change::PacketOut { .. }))
            .count()
    };
    assert_eq!(probes(&lab), 2, "both ports probed at switch-up");
    lab.tick(1); // first tick: a full round
    assert_eq!(probes(&lab), 4);
    lab.tick(1); // pending ports again
    assert_eq!(probes(&lab), 6);
    lab.tick(2); // now edge ports: nothing until the next round
    assert_eq!(probes(&lab), 6);
    lab.tick(2); // 5 s after the first round
    assert_eq!(probes(&lab), 8);
}

#[test]
fn classify_table_traps_lldp_and_marks_link_ports_as_transit() {
    let lab = triangle();
    let sw = &lab.switches[&1];
    let lldp = Packet::new(vec![Oxm::EthType(ETH_TYPE_LLDP)]);
    let t = sw.process(2, &lldp);
    assert!(t.to_controller());
    assert_eq!(t.tables, vec![0], "LLDP goes no further");
    // An unknown source on a link port: transit, not copied.
    let frame = Packet::new(vec![Oxm::EthSrc(H1, None), Oxm::EthType(0x0800)]);
    let t = sw.process(2, &frame);
    assert!(!t.to_controller());
    assert_eq!(t.tables[..2], [0, 1]);
    // The same frame on the edge port is copied and continues.
    let t = sw.process(1, &frame);
    assert!(t.to_controller());
    assert_eq!(t.tables[..2], [0, 1]);
}

#[test]
fn hosts_are_learned_on_edge_ports_only() {
    let mut lab = triangle();
    lab.host_sends((1, 2), H1, [10, 0, 0, 1]); // a link port
    assert!(lab.view().hosts.is_empty());
    lab.host_sends((1, 1), H1, [10, 0, 0, 1]);
    let view = lab.view();
    let host = view.host(H1).unwrap();
    assert_eq!(host.at, Endpoint::new(1, 1));
    assert_eq!(host.ipv4, vec![std::net::Ipv4Addr::new(10, 0, 0, 1)]);
    assert_eq!(
        view.host_by_ip("10.0.0.1".parse().unwrap()).unwrap().mac,
        H1
    );
    // Its classify entry stops further copies of its ordinary traffic.
    let frame = Packet::new(vec![Oxm::EthSrc(H1, None), Oxm::EthType(0x0800)]);
    assert!(!lab.switches[&1].process(1, &frame).to_controller());
    // ARP is still copied (addresses stay current).
    let arp = Packet::new(vec![Oxm::EthSrc(H1, None), Oxm::EthType(ETH_TYPE_ARP)]);
    assert!(lab.switches[&1].process(1, &arp).to_controller());
}

#[test]
fn pending_ports_learn_nothing() {
    let mut lab = Lab::new();
    lab.up(1, &[1], &[]);
    lab.host_sends((1, 1), H1, [10, 0, 0, 1]);
    assert!(lab.view().hosts.is_empty());
}

#[test]
fn a_moved_host_follows_and_its_old_entry_goes() {
    let mut lab = triangle();
    lab.host_sends((1, 1), H1, [10, 0, 0, 1]);
    lab.host_sends((3, 1), H1, [10, 0, 0, 1]);
    assert_eq!(lab.view().host(H1).unwrap().at, Endpoint::new(3, 1));
    let old = host_entry(H1, 1, 300).key;
    assert!(!lab.switches[&1].flows.contains_key(&old));
    assert!(lab.switches[&3].flows.contains_key(&old));
}

#[test]
fn port_down_removes_the_link_at_once_and_the_far_end_is_reprobed() {
    let mut lab = triangle();
    let mut down = port(2);
    down.state = port_state::LINK_DOWN;
    let status = PortStatus {
        reason: PortReason::Modify,
        desc: down,
    };
    lab.event(&Event::PortStatus {
        dpid: 1,
        status: &status,
    });
    let view = lab.view();
    assert_eq!(view.undirected_links().len(), 2);
    assert!(!view.switches[&1].ports.contains_key(&2));
    assert_eq!(view.ports_with_role(2, PortRole::Pending), vec![3]);
    // s1's classify entry for its old link port is gone.
    assert!(!lab.switches[&1].flows.contains_key(&link_port_entry(2).key));
}

#[test]
fn port_up_probes_and_rediscovers() {
    let mut lab = triangle();
    let mut desc = port(2);
    desc.state = port_state::LINK_DOWN;
    for (reason, state) in [
        (PortReason::Modify, port_state::LINK_DOWN),
        (PortReason::Modify, 0),
    ] {
        desc.state = state;
        let status = PortStatus {
            reason,
            desc: desc.clone(),
        };
        lab.event(&Event::PortStatus {
            dpid: 1,
            status: &status,
        });
    }
    assert_eq!(
        lab.view().undirected_links().len(),
        3,
        "found again by the port-up probe"
    );
}

#[test]
fn links_expire_after_three_silent_rounds() {
    let mut lab = triangle();
    lab.wires.remove(&Endpoint::new(1, 2));
    lab.wires.remove(&Endpoint::new(2, 3));
    lab.tick(15);
    assert_eq!(
        lab.view().undirected_links().len(),
        3,
        "3 rounds not missed yet"
    );
    lab.tick(5);
    assert_eq!(lab.view().undirected_links().len(), 2);
}

#[test]
fn in_a_cluster_a_link_ages_only_while_its_switch_is_probed() {
    let mut lab = Lab::new();
    let key = ProbeKey::shared(
        b"the cluster's secret",
        lab.now,
        std::time::SystemTime::now(),
    );
    lab.topo = Topology::new(TopologyConfig::default()).shared_discovery(key);
    lab.wire((1, 2), (2, 3));
    lab.wire((2, 2), (3, 3));
    lab.wire((3, 2), (1, 3));
    for s in 1..=3 {
        lab.up(s, &[1, 2, 3], &[]);
    }
    lab.tick(6);
    assert_eq!(lab.view().undirected_links().len(), 3);
    assert!((1..=3).all(|s| lab.view().is_ready(s)));

    // No master writes (no lease anywhere): no probe goes out, none is
    // heard, and no link is lost for it.
    let wires = std::mem::take(&mut lab.wires);
    lab.tick(40);
    assert_eq!(lab.view().undirected_links().len(), 3, "nothing was probed");

    // Probes again from the next round on, but s1 - s2 is cut: lost once
    // its switches' probes were heard elsewhere for three rounds.
    lab.wires = wires;
    lab.wires.remove(&Endpoint::new(1, 2));
    lab.wires.remove(&Endpoint::new(2, 3));
    lab.tick(15);
    assert_eq!(
        lab.view().undirected_links().len(),
        3,
        "3 rounds not over yet"
    );
    lab.tick(10);
    assert_eq!(lab.view().undirected_links().len(), 2);
}

#[test]
fn in_a_cluster_a_switch_that_reconnects_keeps_its_links_and_hosts() {
    let mut lab = Lab::new();
    let key = ProbeKey::shared(
        b"the cluster's secret",
        lab.now,
        std::time::SystemTime::now(),
    );
    lab.topo = Topology::new(TopologyConfig::default()).shared_discovery(key);
    lab.wire((1, 2), (2, 3));
    lab.wire((2, 2), (3, 3));
    lab.wire((3, 2), (1, 3));
    for s in 1..=3 {
        lab.up(s, &[1, 2, 3], &[]);
    }
    lab.tick(6);
    lab.host_sends((1, 1), H1, [10, 0, 0, 1]);
    let before = lab.view();
    assert_eq!(before.undirected_links().len(), 3);

    // This node's connection to s1 drops (another node still masters
    // it) and comes back: nothing of the network was lost meanwhile.
    lab.event(&Event::SwitchDown { dpid: 1 });
    lab.tick(2);
    assert_eq!(lab.view().undirected_links().len(), 3);
    assert_eq!(lab.view().hosts.len(), 1);
    lab.changes.clear();
    lab.up(1, &[1, 2, 3], &[]);
    let after = lab.view();
    assert_eq!(after.undirected_links().len(), 3);
    assert_eq!(after.hosts.len(), 1);
    assert!(after.is_ready(1));
    assert!(lab
        .changes
        .iter()
        .any(|c| matches!(c, Change::Settle { dpid: 1 })));

    // Away for longer than a link lives: forgotten.
    lab.event(&Event::SwitchDown { dpid: 1 });
    lab.tick(17);
    assert!(!lab.view().switches.contains_key(&1));
    assert!(lab.view().hosts.is_empty());
}

#[test]
fn in_a_cluster_new_ports_wait_a_probe_round_before_they_are_edge_ports() {
    let mut lab = Lab::new();
    let key = ProbeKey::shared(
        b"the cluster's secret",
        lab.now,
        std::time::SystemTime::now(),
    );
    lab.topo = Topology::new(TopologyConfig::default()).shared_discovery(key);
    lab.up(1, &[1], &[]);
    lab.tick(5);
    assert!(lab.view().ports_with_role(1, PortRole::Edge).is_empty());
    lab.tick(1);
    assert_eq!(lab.view().ports_with_role(1, PortRole::Edge), vec![1]);
}

#[test]
fn probes_of_another_controller_are_ignored() {
    let mut lab = Lab::new();
    lab.up(1, &[1], &[]);
    lab.up(2, &[1], &[]);
    let foreign = Probe {
        dpid: 2,
        port: 1,
        ttl: 10,
        controller: Some(ID + 1),
        auth: None,
    };
    lab.packet_in(Endpoint::new(1, 1), OBJ_LLDP, foreign.to_frame(H1));
    assert!(lab.view().links.is_empty());
}

#[test]
fn an_expired_host_entry_expires_the_host() {
    let mut lab = triangle();
    lab.host_sends((2, 1), H1, [10, 0, 0, 1]);
    let entry = host_entry(H1, 1, 300);
    let removed = FlowRemoved {
        cookie: entry.spec.cookie,
        priority: HOST_PRIORITY,
        reason: 0,
        table_id: CLASSIFY,
        duration_sec: 300,
        duration_nsec: 0,
        idle_timeout: 300,
        hard_timeout: 0,
        packet_count: 1,
        byte_count: 60,
        match_: entry.key.match_().clone(),
    };
    lab.event(&Event::FlowRemoved {
        dpid: 2,
        removed: &removed,
    });
    assert!(lab.view().hosts.is_empty());
}

#[test]
fn switch_down_forgets_its_links_and_hosts() {
    let mut lab = triangle();
    lab.host_sends((2, 1), H1, [10, 0, 0, 1]);
    lab.switches.remove(&2);
    lab.event(&Event::SwitchDown { dpid: 2 });
    let view = lab.view();
    assert_eq!(view.undirected_links().len(), 1);
    assert!(view.hosts.is_empty());
    assert!(!view.switches.contains_key(&2));
}

#[test]
fn a_restarted_controller_adopts_hosts_and_rewrites_nothing() {
    // What the previous run left on s1 of a two-switch network.
    let installed: Vec<FlowStats> = fixed_entries()
        .iter()
        .chain([link_port_entry(2), host_entry(H1, 1, 300)].iter())
        .map(reported_stats)
        .collect();
    let mut lab = Lab::new();
    lab.wire((1, 2), (2, 2));
    lab.up(2, &[1, 2], &[]);
    lab.changes.clear();
    lab.up(1, &[1, 2], &installed);
    assert_eq!(lab.view().host(H1).unwrap().at, Endpoint::new(1, 1));
    lab.tick(4);
    let s1_changes: Vec<&Change> = lab
        .changes
        .iter()
        .filter(|c| {
            matches!(
                c,
                Change::InstallFlow { dpid: 1, .. } | Change::RemoveFlow { dpid: 1, .. }
            )
        })
        .collect();
    // Every install on s1 re-declares exactly what is installed; nothing removed.
    for change in &s1_changes {
        match change {
            Change::InstallFlow { entry, .. } => {
                assert!(
                    installed.iter().any(|f| FlowEntry::from_stats(f) == *entry),
                    "{entry:?}"
                )
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn host_addresses_are_stored_and_given_back_to_the_hosts_a_restart_adopts() {
    use crate::store::MemoryStore;

    let store = MemoryStore::new();
    let mut lab = Lab::new();
    lab.up(1, &[1], &[]);
    lab.tick(4);
    lab.host_sends((1, 1), H1, [10, 0, 0, 1]);
    let ops: Vec<Op> = lab
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::Persist(ops) => Some(ops.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(ops.len(), 1, "one write for the new host");
    store.apply(ops).unwrap();
    // The same address again writes nothing.
    lab.changes.clear();
    lab.host_sends((1, 1), H1, [10, 0, 0, 1]);
    assert!(!lab.changes.iter().any(|c| matches!(c, Change::Persist(_))));

    // A restarted controller: the host entry is all the switch shows.
    let mut again = Lab::new();
    again.topo = Topology::new(TopologyConfig {
        controller_id: ID,
        ..TopologyConfig::default()
    })
    .with_addresses(&store)
    .unwrap();
    let installed = [reported_stats(&host_entry(H1, 1, 300))];
    again.up(1, &[1], &installed);
    again.tick(1);
    let found = again
        .view()
        .host_by_ip("10.0.0.1".parse().unwrap())
        .cloned();
    assert_eq!(found.map(|h| h.mac), Some(H1), "known by IP before any ARP");
}

/// The probes the module sent out of `dpid`, as (port, frame).
fn probes_sent(changes: &[Change], dpid: u64) -> Vec<(u32, Bytes)> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::PacketOut {
                dpid: d,
                packet_out,
            } if *d == dpid => match packet_out.actions[..] {
                [Action::Output { port, .. }] => Some((port, packet_out.data.clone())),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// s1 and s2, not wired: a host on s1 port 1 and one on s2 port 1, past
/// the edge delay.
fn two_switches_with_hosts() -> Lab {
    let mut lab = Lab::new();
    lab.up(1, &[1, 2], &[]);
    lab.up(2, &[1, 2], &[]);
    lab.tick(3);
    lab.host_sends((1, 1), H1, [10, 0, 0, 1]);
    lab
}

#[test]
fn a_forged_probe_with_the_copied_controller_id_makes_no_link() {
    // The attack: a host on s1 port 1 sees a probe (and so the instance
    // id) and sends one claiming to be s2 port 2.
    let mut lab = two_switches_with_hosts();
    let seen = probes_sent(&lab.changes, 1);
    let (_, genuine) = seen.iter().find(|(p, _)| *p == 1).unwrap();
    let copied = Probe::from_frame(genuine).unwrap();
    let forged = Probe {
        dpid: 2,
        port: 2,
        ..copied
    };
    lab.packet_in(Endpoint::new(1, 2), OBJ_LLDP, forged.to_frame(H1));
    let unsigned = Probe {
        auth: None,
        ..forged
    };
    lab.packet_in(Endpoint::new(1, 2), OBJ_LLDP, unsigned.to_frame(H1));
    assert!(lab.view().links.is_empty());
    assert_eq!(lab.topo.refused, 2);
}

#[test]
fn a_captured_probe_is_useless_after_the_freshness_window_and_on_its_own_port() {
    let mut lab = two_switches_with_hosts();
    lab.changes.clear();
    lab.tick(3); // a round: s2 port 2 probed
    let (_, frame) = probes_sent(&lab.changes, 2)
        .into_iter()
        .find(|(p, _)| *p == 2)
        .unwrap();
    // Where it was sent from: ignored.
    lab.packet_in(Endpoint::new(2, 2), OBJ_LLDP, frame.clone());
    assert!(lab.view().links.is_empty());
    // Replayed elsewhere later: stale.
    lab.now += crate::topology::auth::FRESHNESS + Duration::from_millis(1);
    lab.packet_in(Endpoint::new(1, 2), OBJ_LLDP, frame.clone());
    assert!(lab.view().links.is_empty());
    assert_eq!(lab.topo.refused, 1);
}

#[test]
fn a_link_claimed_where_hosts_live_is_flagged_not_taken() {
    // Two hosts relaying genuine probes between their ports: each probe
    // is valid, but hosts live on the port it arrives at.
    let mut lab = two_switches_with_hosts();
    lab.changes.clear();
    lab.tick(3); // a round
    let (_, frame) = probes_sent(&lab.changes, 2)
        .into_iter()
        .find(|(p, _)| *p == 1)
        .unwrap();
    lab.packet_in(Endpoint::new(1, 1), OBJ_LLDP, frame);
    assert!(lab.view().links.is_empty());
    let suspects = lab.topo.suspect_links();
    assert_eq!(suspects.len(), 1);
    assert_eq!(
        (suspects[0].from, suspects[0].to, suspects[0].hosts),
        (Endpoint::new(2, 1), Endpoint::new(1, 1), 1)
    );
    assert_eq!(lab.view().host(H1).unwrap().at, Endpoint::new(1, 1));
    // Once the port is down (its hosts forgotten), a real link is taken.
    lab.wire((1, 1), (2, 1));
    let mut down = port(1);
    down.state = port_state::LINK_DOWN;
    for desc in [down, port(1)] {
        let status = PortStatus {
            reason: PortReason::Modify,
            desc,
        };
        lab.event(&Event::PortStatus {
            dpid: 1,
            status: &status,
        });
    }
    assert_eq!(lab.view().undirected_links().len(), 1);
}

#[test]
fn an_integration_bridge_is_never_probed_and_never_linked() {
    let mut lab = Lab::new();
    lab.topo = Topology::new(TopologyConfig {
        controller_id: ID,
        unprobed_bridges: vec!["br-int".into()],
        ..TopologyConfig::default()
    });
    lab.switches.insert(5, FakeSwitch::new(5));
    let mut ports: Vec<Port> = [1, 2].iter().map(|&n| port(n)).collect();
    ports.push(Port {
        port_no: port_no::LOCAL,
        name: "br-int".into(),
        ..port(9)
    });
    lab.event(&Event::SwitchUp {
        dpid: 5,
        ports: &ports,
        installed: &[],
        groups: &[],
        meters: &[],
    });
    lab.up(1, &[1], &[]);
    lab.tick(12);
    assert!(
        probes_sent(&lab.changes, 5).is_empty(),
        "no probe to VMs or tunnels"
    );
    // Even a genuine probe of ours arriving there makes no link.
    let (_, frame) = probes_sent(&lab.changes, 1).pop().unwrap();
    lab.now -= Duration::from_secs(1);
    lab.packet_in(Endpoint::new(5, 1), OBJ_LLDP, frame);
    assert!(lab.view().links.is_empty());
}

fn port_added(no: u32) -> PortStatus {
    PortStatus {
        reason: PortReason::Add,
        desc: port(no),
    }
}

#[test]
fn a_port_storm_is_cheap_publishes_once_and_probes_at_a_bounded_rate() {
    let mut lab = Lab::new();
    lab.up(1, &[1], &[]);
    lab.changes.clear();
    // 4000 ports come up in one batch.
    let mut ctx = Ctx::new(lab.now);
    let started = Instant::now();
    for no in 2..4002 {
        let status = port_added(no);
        lab.topo.handle(
            &Event::PortStatus {
                dpid: 1,
                status: &status,
            },
            &mut ctx,
        );
    }
    lab.topo.batch_end(&mut ctx);
    let took = started.elapsed();
    let changes = ctx.take_changes();
    let publishes = changes
        .iter()
        .filter(|c| matches!(c, Change::Publish(_)))
        .count();
    assert_eq!(publishes, 1, "one view for the whole batch");
    assert_eq!(lab.view().switches[&1].ports.len(), 4001);
    assert_eq!(
        probes_sent(&changes, 1).len(),
        PROBES_PER_TICK - 1,
        "one probe went at switch-up; the rest of the tick's budget now"
    );
    // Debug build, shared machine: still far from the quadratic cost.
    assert!(
        took < Duration::from_secs(2),
        "4000 port events took {took:?}"
    );
    lab.changes.clear();
    lab.tick(1);
    assert_eq!(probes_sent(&lab.changes, 1).len(), PROBES_PER_TICK);
}
