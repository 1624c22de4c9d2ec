use std::collections::VecDeque;

use flowgate_controller::module::Change;
use flowgate_controller::testing::{reported_stats, FakeSwitch, Packet};
use flowgate_controller::topology::{Host, PortView, SwitchView};
use flowgate_openflow::{FlowModCommand, FlowStats, MacAddr, PacketInReason};

use super::*;

/// A network of fake switches joined by wires, with hosts on the ports
/// that have no wire, driven by one forwarding module.
struct Net {
    module: TopologyForwarding,
    switches: BTreeMap<u64, FakeSwitch>,
    wires: HashMap<Endpoint, Endpoint>,
    hosts: BTreeMap<Endpoint, MacAddr>,
    ports: BTreeMap<u64, Vec<u32>>,
    changes: Vec<Change>,
}

impl Net {
    /// `links`: (a, port, b, port); `hosts`: (dpid, port) each gets host
    /// MAC 00:..:<index+1> and IP 10.0.0.<index+1>.
    fn new(n: u64, links: &[(u64, u32, u64, u32)], hosts: &[(u64, u32)]) -> Net {
        let mut net = Net {
            module: TopologyForwarding::new(TopologyForwardingConfig::default()),
            switches: BTreeMap::new(),
            wires: HashMap::new(),
            hosts: BTreeMap::new(),
            ports: BTreeMap::new(),
            changes: Vec::new(),
        };
        for &(a, pa, b, pb) in links {
            net.wires.insert(Endpoint::new(a, pa), Endpoint::new(b, pb));
            net.wires.insert(Endpoint::new(b, pb), Endpoint::new(a, pa));
            net.ports.entry(a).or_default().push(pa);
            net.ports.entry(b).or_default().push(pb);
        }
        for (i, &(d, p)) in hosts.iter().enumerate() {
            net.hosts.insert(Endpoint::new(d, p), mac(i as u8 + 1));
            net.ports.entry(d).or_default().push(p);
        }
        for dpid in 1..=n {
            net.up(dpid, &[]);
        }
        net
    }

    fn up(&mut self, dpid: u64, installed: &[FlowStats]) {
        let mut switch = FakeSwitch::new(dpid);
        switch.adopt(installed);
        self.switches.insert(dpid, switch);
        self.event(&Event::SwitchUp {
            dpid,
            ports: &[],
            installed,
            groups: &[],
            meters: &[],
        });
    }

    /// Runs the module on `event`; returns what the switches saw (flow
    /// installs and removals) and the module's other changes (packet-outs).
    fn event(&mut self, event: &Event<'_>) -> Vec<Change> {
        let mut ctx = Ctx::new(std::time::Instant::now());
        self.module.handle(event, &mut ctx);
        let changes = ctx.take_changes();
        let mut seen: Vec<Change> = Vec::new();
        for sw in self.switches.values_mut() {
            seen.extend(sw.apply(&changes));
        }
        seen.extend(
            changes
                .iter()
                .filter(|c| matches!(c, Change::PacketOut { .. }))
                .cloned(),
        );
        self.changes.extend(seen.iter().cloned());
        seen
    }

    /// The view the topology module would publish: wired ports are links,
    /// the others edge ports; every host known.
    fn view(&self) -> TopologyView {
        let switches = self
            .ports
            .iter()
            .map(|(&dpid, ports)| {
                let ports = ports
                    .iter()
                    .map(|&p| {
                        let role = if self.wires.contains_key(&Endpoint::new(dpid, p)) {
                            PortRole::Link
                        } else {
                            PortRole::Edge
                        };
                        let view = PortView {
                            name: format!("s{dpid}-eth{p}"),
                            hw_addr: MacAddr::ZERO,
                            role,
                        };
                        (p, view)
                    })
                    .collect();
                (dpid, SwitchView { ready: true, ports })
            })
            .collect();
        let mut links: Vec<(Endpoint, Endpoint)> =
            self.wires.iter().map(|(a, b)| (*a, *b)).collect();
        links.sort();
        let mut hosts: Vec<Host> = self
            .hosts
            .iter()
            .map(|(at, mac)| Host {
                mac: *mac,
                vlan: None,
                ipv4: vec![ip(mac_index(*mac)).into()],
                ipv6: Vec::new(),
                at: *at,
            })
            .collect();
        hosts.sort_by_key(|h| h.mac);
        TopologyView {
            switches,
            links,
            hosts,
        }
    }

    fn publish(&mut self, view: TopologyView) -> Vec<Change> {
        let view = Arc::new(view);
        self.event(&Event::Notice {
            from: Owner::Topology,
            payload: &view,
        })
    }

    /// Sends a frame from the host at `from` and follows every copy through
    /// the network; returns the host ports it reached, in order. Panics if
    /// the frame circulates (more switch visits than a loop-free network
    /// can cause).
    fn send(&self, from: Endpoint, dst: MacAddr) -> Vec<Endpoint> {
        self.deliver(from, dst, &[Oxm::EthType(0x0800)])
    }

    /// [`Net::send`] of a frame with `fields` besides its addresses.
    fn deliver(&self, from: Endpoint, dst: MacAddr, fields: &[Oxm]) -> Vec<Endpoint> {
        let mut oxms = vec![Oxm::EthSrc(self.hosts[&from], None), Oxm::EthDst(dst, None)];
        oxms.extend_from_slice(fields);
        let packet = Packet::new(oxms);
        let mut queue = VecDeque::from([from]);
        let mut reached = Vec::new();
        let mut visits = 0;
        while let Some(at) = queue.pop_front() {
            visits += 1;
            assert!(
                visits <= 4 * self.switches.len() * self.switches.len(),
                "frame loops"
            );
            let trace = self.switches[&at.dpid].process(at.port, &packet);
            for port in trace.outputs {
                let out = Endpoint::new(at.dpid, port);
                if let Some(next) = self.wires.get(&out) {
                    queue.push_back(*next);
                } else if self.hosts.contains_key(&out) {
                    reached.push(out);
                }
            }
        }
        reached
    }

    /// Hands the controller an ARP packet-in from `at`; returns the
    /// packet-outs it answers with.
    fn arp_in(&mut self, at: Endpoint, arp: Arp) -> Vec<(u64, PacketOut)> {
        let pi = arp_packet_in(at, arp);
        let changes = self.event(&Event::PacketIn {
            dpid: at.dpid,
            packet_in: &pi,
        });
        packet_outs(&changes)
    }

    fn host_ports(&self) -> Vec<Endpoint> {
        self.hosts.keys().copied().collect()
    }
}

fn mac(i: u8) -> MacAddr {
    MacAddr([0, 0, 0, 0, 0, i])
}

fn mac_index(m: MacAddr) -> u8 {
    m.0[5]
}

fn ip(i: u8) -> [u8; 4] {
    [10, 0, 0, i]
}

/// Ring of n: switch i port 2 to switch i+1 port 3; a host on port 1 of each.
fn ring(n: u64) -> Net {
    let links: Vec<_> = (1..=n).map(|i| (i, 2, i % n + 1, 3)).collect();
    let hosts: Vec<_> = (1..=n).map(|i| (i, 1)).collect();
    Net::new(n, &links, &hosts)
}

/// The lab's k=4 fat-tree (see the controller's graph tests for the wiring).
fn fat_tree() -> Net {
    let mut links = Vec::new();
    let mut hosts = Vec::new();
    for p in 0..4u64 {
        for a in 0..2u64 {
            let agg = 5 + 4 * p + a;
            for e in 0..2u64 {
                links.push((7 + 4 * p + e, 3 + a as u32, agg, 1 + e as u32));
            }
            for c in 0..2u64 {
                links.push((agg, 3 + c as u32, 1 + 2 * a + c, 1 + p as u32));
            }
        }
        for e in 0..2u64 {
            hosts.push((7 + 4 * p + e, 1));
            hosts.push((7 + 4 * p + e, 2));
        }
    }
    Net::new(20, &links, &hosts)
}

/// Every broadcast reaches every other host exactly once; every unicast
/// reaches exactly its destination.
fn assert_exact_delivery(net: &Net) {
    let hosts = net.host_ports();
    for &src in &hosts {
        let mut got = net.send(src, MacAddr::BROADCAST);
        got.sort();
        let want: Vec<Endpoint> = hosts.iter().copied().filter(|h| *h != src).collect();
        assert_eq!(got, want, "broadcast from {src:?}");
        for &dst in &hosts {
            if dst != src {
                assert_eq!(
                    net.send(src, net.hosts[&dst]),
                    vec![dst],
                    "{src:?} -> {dst:?}"
                );
            }
        }
    }
}

#[test]
fn nothing_is_forwarded_before_the_topology_is_known() {
    let net = ring(3);
    assert!(net.send(Endpoint::new(1, 1), MacAddr::BROADCAST).is_empty());
}

#[test]
fn ring_floods_along_the_tree_and_routes_every_host() {
    let mut net = ring(5);
    net.publish(net.view());
    assert_exact_delivery(&net);
}

#[test]
fn fat_tree_floods_along_the_tree_and_routes_every_host() {
    let mut net = fat_tree();
    net.publish(net.view());
    assert_exact_delivery(&net);
}

#[test]
fn unknown_unicast_is_flooded_once() {
    let mut net = ring(4);
    net.publish(net.view());
    let got = net.send(Endpoint::new(1, 1), mac(99));
    assert_eq!(got.len(), 3);
}

#[test]
fn unicast_follows_the_path_the_graph_reports() {
    let mut net = fat_tree();
    let view = net.view();
    net.publish(view.clone());
    let graph = view.graph();
    let (src, dst) = (Endpoint::new(7, 1), Endpoint::new(20, 2));
    let dst_mac = net.hosts[&dst];
    let path = graph.path(src, dst, dst_mac.to_u64()).unwrap();
    let packet = Packet::new(vec![Oxm::EthDst(dst_mac, None), Oxm::EthType(0x0800)]);
    for hop in path {
        let trace = net.switches[&hop.dpid].process(hop.in_port, &packet);
        assert_eq!(trace.outputs, vec![hop.out_port], "at {:?}", hop);
    }
}

#[test]
fn link_failure_recomputes_and_sends_only_what_changed() {
    let mut net = ring(5);
    net.publish(net.view());
    // s1 reaches h3 (on s3) over s2; cut s1-s2.
    assert_eq!(
        net.send(Endpoint::new(1, 1), mac(3)),
        vec![Endpoint::new(3, 1)]
    );
    net.wires.remove(&Endpoint::new(1, 2));
    net.wires.remove(&Endpoint::new(2, 3));
    let changes = net.publish(net.view());
    assert_exact_delivery(&net);
    // Far fewer changes than a full reinstall (5 switches x 5 hosts routes,
    // plus flood and ARP entries).
    let total: usize = net
        .switches
        .values()
        .map(|s| s.flows.keys().filter(|k| k.table_id >= LEARN).count())
        .sum();
    assert!(!changes.is_empty());
    assert!(
        changes.len() < total / 2,
        "{} changes of {total} entries",
        changes.len()
    );
    assert!(
        net.publish(net.view()).is_empty(),
        "same view, nothing sent"
    );
}

#[test]
fn pending_ports_neither_flood_nor_receive_floods() {
    let mut net = ring(3);
    let mut view = net.view();
    if let Some(p) = view.switches.get_mut(&2).and_then(|s| s.ports.get_mut(&1)) {
        p.role = PortRole::Pending;
    }
    net.publish(view);
    let got = net.send(Endpoint::new(1, 1), MacAddr::BROADCAST);
    assert_eq!(
        got,
        vec![Endpoint::new(3, 1)],
        "h2's pending port gets nothing"
    );
    assert!(net.send(Endpoint::new(2, 1), MacAddr::BROADCAST).is_empty());
}

#[test]
fn switches_not_ready_keep_their_adopted_flows() {
    let mut net = ring(3);
    let stale = route_entry(mac(42), 1);
    let fm = stale.to_flow_mod(FlowModCommand::Add);
    let installed = [FlowStats {
        table_id: fm.table_id,
        duration_sec: 10,
        duration_nsec: 0,
        priority: fm.priority,
        idle_timeout: 0,
        hard_timeout: 0,
        flags: 0,
        cookie: fm.cookie,
        packet_count: 3,
        byte_count: 300,
        match_: fm.match_,
        instructions: fm.instructions,
    }];
    net.up(1, &installed);
    let mut view = net.view();
    if let Some(s) = view.switches.get_mut(&1) {
        s.ready = false;
    }
    let changes = net.publish(view);
    assert!(
        !changes.iter().any(|c| matches!(
            c,
            Change::RemoveFlow { dpid: 1, .. } | Change::InstallFlow { dpid: 1, .. }
        )),
        "s1 untouched while not ready"
    );
    let changes = net.publish(net.view());
    assert!(changes
        .iter()
        .any(|c| matches!(c, Change::RemoveFlow { dpid: 1, key } if *key == stale.key)));
}

#[test]
fn a_restarted_controller_recomputes_exactly_what_is_installed() {
    let mut net = fat_tree();
    net.publish(net.view());
    let mut fresh = fat_tree();
    for (dpid, sw) in &net.switches {
        fresh.up(*dpid, &forwarding_flows(sw));
    }
    let changes = fresh.publish(fresh.view());
    assert!(changes.is_empty(), "{} changes", changes.len());
}

/// The flows of ours a switch reports in its flow stats.
fn forwarding_flows(sw: &FakeSwitch) -> Vec<FlowStats> {
    sw.flows
        .iter()
        .filter(|(_, s)| flowgate_controller::cookie::owner_of(s.cookie) == Some(Owner::Forwarding))
        .map(|(k, s)| {
            reported_stats(&FlowEntry {
                key: k.clone(),
                spec: s.clone(),
            })
        })
        .collect()
}

fn arp_packet_in(at: Endpoint, arp: Arp) -> PacketIn {
    PacketIn {
        buffer_id: NO_BUFFER,
        total_len: 60,
        reason: PacketInReason::Action,
        table_id: LEARN,
        cookie: Owner::Forwarding.cookie(OBJ_ARP_TRAP | u64::from(at.port)),
        match_: Match::new().with(Oxm::InPort(at.port)),
        data: arp.to_frame(None),
    }
}

fn request(from: u8, target: u8) -> Arp {
    Arp {
        op: ARP_REQUEST,
        sha: mac(from),
        spa: ip(from).into(),
        tha: MacAddr::ZERO,
        tpa: ip(target).into(),
    }
}

fn packet_outs(changes: &[Change]) -> Vec<(u64, PacketOut)> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::PacketOut { dpid, packet_out } => Some((*dpid, packet_out.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn arp_requests_on_edge_ports_go_to_the_controller() {
    let mut net = ring(3);
    net.publish(net.view());
    let arp = Packet::new(vec![
        Oxm::EthSrc(mac(1), None),
        Oxm::EthDst(MacAddr::BROADCAST, None),
        Oxm::EthType(ETH_TYPE_ARP),
        Oxm::ArpOp(ARP_REQUEST),
    ]);
    let trace = net.switches[&1].process(1, &arp);
    assert_eq!(trace.outputs, vec![port_no::CONTROLLER]);
    // Arriving over a link (flooded by another switch): not trapped again.
    let trace = net.switches[&1].process(2, &arp);
    assert!(!trace.to_controller());
    assert!(!trace.outputs.is_empty());
}

#[test]
fn unicast_arp_requests_are_forwarded_by_the_switch() {
    let mut net = ring(3);
    net.publish(net.view());
    // A host re-checking a neighbour it knows asks it directly: the switches
    // take the request to it, with no controller involved.
    let arp = [Oxm::EthType(ETH_TYPE_ARP), Oxm::ArpOp(ARP_REQUEST)];
    let from = Endpoint::new(1, 1);
    assert_eq!(net.deliver(from, mac(3), &arp), vec![Endpoint::new(3, 1)]);
    let probe = Packet::new(vec![
        Oxm::EthSrc(mac(1), None),
        Oxm::EthDst(mac(3), None),
        arp[0].clone(),
        arp[1].clone(),
    ]);
    assert!(!net.switches[&1].process(1, &probe).to_controller());
}

#[test]
fn proxy_arp_answers_known_hosts_from_the_controller() {
    let mut net = ring(3);
    net.publish(net.view());
    let outs = net.arp_in(Endpoint::new(1, 1), request(1, 3));
    assert_eq!(outs.len(), 1);
    let (dpid, po) = &outs[0];
    assert_eq!(*dpid, 1);
    assert_eq!(
        po.actions,
        vec![Action::Output {
            port: 1,
            max_len: 0
        }]
    );
    let (reply, _) = Arp::from_frame(&po.data).unwrap();
    assert_eq!(reply, request(1, 3).reply_from(mac(3)));
}

#[test]
fn unknown_or_gratuitous_requests_are_flooded_along_the_tree() {
    let mut net = ring(3);
    net.publish(net.view());
    let at = Endpoint::new(1, 1);
    for arp in [request(1, 77), request(1, 1)] {
        let outs = net.arp_in(at, arp);
        assert_eq!(outs.len(), 1);
        let (_, po) = &outs[0];
        assert_eq!(po.in_port, 1);
        assert_eq!(po.actions, switch_flood(&net.switches[&1], 1));
        assert_eq!(po.data, arp.to_frame(None));
    }
}

/// Where `sw` sends a broadcast (not ARP) arriving on `in_port`.
fn switch_flood(sw: &FakeSwitch, in_port: u32) -> Vec<Action> {
    let broadcast = Packet::new(vec![
        Oxm::EthSrc(mac(1), None),
        Oxm::EthDst(MacAddr::BROADCAST, None),
        Oxm::EthType(0x0800),
    ]);
    let trace = sw.process(in_port, &broadcast);
    assert!(!trace.outputs.is_empty(), "s{} floods nothing", sw.dpid);
    trace
        .outputs
        .into_iter()
        .map(|port| Action::Output { port, max_len: 0 })
        .collect()
}

#[test]
fn a_restarted_controller_floods_requests_by_the_adopted_entries_until_ready() {
    let mut net = ring(3);
    net.publish(net.view());
    // Restarted: the flows are adopted, the topology is not known yet, so
    // nothing is ready and no host can be answered for.
    let mut fresh = ring(3);
    for (dpid, sw) in &net.switches {
        fresh.up(*dpid, &forwarding_flows(sw));
    }
    let outs = fresh.arp_in(Endpoint::new(1, 1), request(1, 3));
    assert_eq!(outs.len(), 1, "the request is dropped");
    let (dpid, po) = &outs[0];
    assert_eq!((*dpid, po.in_port), (1, 1));
    assert_eq!(po.actions, switch_flood(&net.switches[&1], 1));
}

#[test]
fn without_proxy_arp_there_is_no_trap() {
    let mut net = ring(3);
    net.module = TopologyForwarding::new(TopologyForwardingConfig { proxy_arp: false });
    for dpid in 1..=3 {
        net.up(dpid, &[]);
    }
    net.publish(net.view());
    assert!(net.switches[&1]
        .flows
        .keys()
        .all(|k| k.table_id != LEARN || k.priority == 0));
    assert_exact_delivery(&net);
}

/// A table miss from a table-miss entry someone else installed: cookie 0,
/// table 0, the switch's buffer `buffer_id`.
fn table_miss(at: Endpoint, dst: MacAddr, buffer_id: u32) -> PacketIn {
    let mut frame = vec![0u8; 60];
    frame[..6].copy_from_slice(&dst.0);
    frame[6..12].copy_from_slice(&mac(at.dpid as u8).0);
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    PacketIn {
        buffer_id,
        total_len: 60,
        reason: PacketInReason::NoMatch,
        table_id: 0,
        cookie: 0,
        match_: Match::new().with(Oxm::InPort(at.port)),
        data: frame.into(),
    }
}

#[test]
fn a_table_miss_goes_where_the_entries_send_its_kind_by_one_packet_out() {
    let mut net = ring(3);
    net.publish(net.view());
    let at = Endpoint::new(1, 1);
    let answer = |net: &mut Net, dst, buffer_id| {
        let miss = table_miss(at, dst, buffer_id);
        let changes = net.event(&Event::PacketIn {
            dpid: 1,
            packet_in: &miss,
        });
        let outs = packet_outs(&changes);
        assert_eq!(outs.len(), 1, "{changes:?}");
        assert_eq!(changes.len(), 1, "nothing but the packet-out");
        outs[0].1.clone()
    };
    // Towards a known host: its route's port; the buffer is released.
    let known = answer(&mut net, mac(3), 9);
    let route = net.switches[&1].process(1, &Packet::new(vec![Oxm::EthDst(mac(3), None)]));
    let port = |a: &Action| match a {
        Action::Output { port, .. } => *port,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        known.actions.iter().map(port).collect::<Vec<_>>(),
        route.outputs
    );
    assert_eq!((known.buffer_id, known.data.len()), (9, 0));
    // Unknown or broadcast: along the tree, with the bytes if unbuffered.
    for dst in [mac(77), MacAddr::BROADCAST] {
        let flooded = answer(&mut net, dst, NO_BUFFER);
        assert_eq!(flooded.actions, switch_flood(&net.switches[&1], 1));
        assert_eq!(flooded.data.len(), 60);
    }
}
