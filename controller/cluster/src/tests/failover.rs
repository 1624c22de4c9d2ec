//! Failover and rebalancing on a fake etcd and fake switches, on a
//! simulated clock: nodes register with leases and report connections, the
//! leader assigns, every node follows the masters keys.

use std::collections::BTreeMap;
use std::time::Duration;

use super::fake_etcd::FakeEtcd;
use super::fake_switch::{FakeSwitch, Write};
use super::{node, Clock};
use crate::role::{RoleEvent, RoleState};
use crate::{keys, Dpid, Lease, LeaseId, Move, NodeId};

const TTL: Duration = Duration::from_secs(10);
const MARGIN: Duration = Duration::from_secs(1);

struct SimNode {
    lease_id: LeaseId,
    lease: Lease,
    roles: BTreeMap<Dpid, RoleState>,
    alive: bool,
}

/// What the wiring will do, done by hand: etcd, nodes, switches.
struct Sim {
    clock: Clock,
    t: f64,
    etcd: FakeEtcd,
    nodes: BTreeMap<NodeId, SimNode>,
    switches: BTreeMap<Dpid, FakeSwitch>,
    /// Non-request role events per (node, switch), in order.
    seen: BTreeMap<(NodeId, Dpid), Vec<RoleEvent>>,
}

impl Sim {
    fn new(switches: std::ops::Range<Dpid>) -> Sim {
        Sim {
            clock: Clock::new(),
            t: 0.0,
            etcd: FakeEtcd::default(),
            nodes: BTreeMap::new(),
            switches: switches.map(|d| (d, FakeSwitch::default())).collect(),
            seen: BTreeMap::new(),
        }
    }

    /// A node starts: lease, membership key, connections to every switch.
    fn start(&mut self, id: &str) {
        let now = self.clock.at(self.t);
        let id = node(id);
        let lease_id = self.etcd.grant(now, TTL);
        let mut lease = Lease::new(MARGIN);
        lease.granted(lease_id, now, TTL);
        self.etcd.put(keys::node(&id), "", Some(lease_id));
        let mut roles = BTreeMap::new();
        for (&dpid, switch) in self.switches.iter_mut() {
            switch.connect(&id);
            self.etcd
                .put(keys::connection(&id, dpid), "", Some(lease_id));
            let mut role = RoleState::new(id.clone());
            role.handle_lease(now, lease.valid_until());
            role.handle_connected(now);
            roles.insert(dpid, role);
        }
        self.nodes.insert(
            id,
            SimNode {
                lease_id,
                lease,
                roles,
                alive: true,
            },
        );
    }

    /// A node's process dies: no more keepalives, its connections close.
    fn kill(&mut self, id: &str) {
        let id = node(id);
        for switch in self.switches.values_mut() {
            switch.disconnect(&id);
        }
        self.nodes.get_mut(&id).unwrap().alive = false;
    }

    /// Time passes in 1 s steps; live nodes keep their leases alive.
    fn advance_to(&mut self, t: f64) {
        while self.t < t {
            self.t += 1.0;
            let now = self.clock.at(self.t);
            for sim in self.nodes.values_mut().filter(|n| n.alive) {
                let ttl = self.etcd.keepalive(now, sim.lease_id);
                sim.lease.keepalive_acked(sim.lease_id, now, ttl);
                for role in sim.roles.values_mut() {
                    role.handle_lease(now, sim.lease.valid_until());
                }
            }
            self.etcd.tick(now);
        }
    }

    /// The leader assigns; every live node reads the masters keys and talks
    /// to its switches.
    fn leader_step(&mut self) -> Vec<Move> {
        let moves = self.etcd.leader_step();
        let now = self.clock.at(self.t);
        let masters = self.etcd.masters();
        for (id, sim) in self.nodes.iter_mut().filter(|(_, n)| n.alive) {
            for (dpid, role) in sim.roles.iter_mut() {
                role.handle_assignment(now, masters.get(dpid).cloned());
                let switch = self.switches.get_mut(dpid).unwrap();
                let events = switch.pump(id, role, now);
                self.seen.entry((id.clone(), *dpid)).or_default().extend(
                    events
                        .into_iter()
                        .filter(|e| !matches!(e, RoleEvent::Request { .. })),
                );
            }
        }
        moves
    }

    fn take_seen(&mut self) -> BTreeMap<(NodeId, Dpid), Vec<RoleEvent>> {
        std::mem::take(&mut self.seen)
            .into_iter()
            .filter(|(_, events)| !events.is_empty())
            .collect()
    }

    /// Checks that every switch has exactly one master, the one the keys
    /// name, which alone may write.
    fn check_one_writer(&mut self) {
        let now = self.clock.at(self.t);
        let masters = self.etcd.masters();
        for (&dpid, switch) in self.switches.iter_mut() {
            let master = &masters[&dpid].node;
            assert_eq!(switch.masters(), vec![master], "switch {dpid}");
            for (id, sim) in self.nodes.iter_mut().filter(|(_, n)| n.alive) {
                let role = sim.roles.get_mut(&dpid).unwrap();
                let expected = if id == master {
                    Write::Done
                } else {
                    Write::NotAttempted
                };
                assert_eq!(switch.try_write(id, role, now), expected, "{id} on {dpid}");
            }
        }
    }

    fn count(&self, id: &str) -> usize {
        let id = node(id);
        self.etcd
            .masters()
            .values()
            .filter(|m| m.node == id)
            .count()
    }
}

fn became_master(events: &[RoleEvent]) -> bool {
    matches!(events, [RoleEvent::BecameMaster { .. }])
}

#[test]
fn a_dead_masters_switches_move_to_live_nodes_and_nothing_else_moves() {
    let mut sim = Sim::new(0..6);
    for id in ["a", "b", "c"] {
        sim.start(id);
    }
    assert_eq!(sim.leader_step().len(), 6);
    assert_eq!((sim.count("a"), sim.count("b"), sim.count("c")), (2, 2, 2));
    let initial = sim.take_seen();
    assert_eq!(initial.len(), 6, "one BecameMaster per switch: {initial:?}");
    assert!(initial.values().all(|e| became_master(e)));
    sim.check_one_writer();
    let before = sim.etcd.masters();

    sim.kill("c");
    sim.advance_to(5.0);
    assert_eq!(sim.leader_step(), vec![], "c's lease is still good");
    sim.advance_to(11.0);
    let moves = sim.leader_step();
    let c_had: Vec<Dpid> = before
        .iter()
        .filter(|(_, m)| m.node == node("c"))
        .map(|(d, _)| *d)
        .collect();
    assert_eq!(moves.iter().map(|m| m.dpid).collect::<Vec<_>>(), c_had);
    assert!(moves.iter().all(|m| m.from == Some(node("c"))));
    assert_eq!((sim.count("a"), sim.count("b")), (3, 3));

    // Each new master was told to reconcile from the switch's tables; no
    // other (node, switch) saw anything.
    let seen = sim.take_seen();
    assert_eq!(seen.len(), moves.len(), "{seen:?}");
    for m in &moves {
        let to = m.to.clone().unwrap();
        assert!(became_master(&seen[&(to, m.dpid)]));
    }
    // Unmoved switches keep their master and generation.
    let after = sim.etcd.masters();
    for (dpid, m) in &before {
        if m.node != node("c") {
            assert_eq!(&after[dpid], m);
        } else {
            assert!(after[dpid].generation.is_newer_than(m.generation));
        }
    }
    sim.check_one_writer();
    assert_eq!(sim.leader_step(), vec![], "stable afterwards");
}

#[test]
fn a_joining_node_takes_switches_only_up_to_the_bound() {
    let mut sim = Sim::new(0..7);
    sim.start("a");
    sim.start("b");
    sim.leader_step();
    assert_eq!((sim.count("a"), sim.count("b")), (4, 3));
    sim.take_seen();

    sim.advance_to(3.0);
    sim.start("c");
    let moves = sim.leader_step();
    assert_eq!(moves.len(), 2, "{moves:?}");
    assert!(moves.iter().all(|m| m.to == Some(node("c"))));
    assert_eq!((sim.count("a"), sim.count("b"), sim.count("c")), (3, 2, 2));

    // The node that lost each switch was demoted, c became master.
    let seen = sim.take_seen();
    assert_eq!(seen.len(), 4, "{seen:?}");
    for m in &moves {
        assert!(became_master(&seen[&(node("c"), m.dpid)]));
        assert!(matches!(
            seen[&(m.from.clone().unwrap(), m.dpid)][..],
            [RoleEvent::Demoted { .. }]
        ));
    }
    sim.check_one_writer();
}

#[test]
fn leases_kept_alive_keep_the_assignment_for_ever() {
    let mut sim = Sim::new(0..4);
    sim.start("a");
    sim.start("b");
    sim.leader_step();
    sim.take_seen();
    let generations = sim.etcd.masters();
    let revision = sim.etcd.revision();
    sim.advance_to(120.0);
    assert_eq!(sim.leader_step(), vec![]);
    assert_eq!(sim.etcd.masters(), generations);
    assert_eq!(sim.etcd.revision(), revision, "no write without a move");
    assert_eq!(sim.take_seen(), BTreeMap::new());
    sim.check_one_writer();
}
