//! The role machines of three nodes against one switch with OpenFlow's
//! role rules, under random interleavings: assignments that reach nodes
//! late, leases lost and renewed, time passing, reconnections, writes.

use proptest::prelude::*;

use super::fake_switch::{FakeSwitch, Write};
use super::{node, Clock};
use crate::role::{RoleEvent, RoleState, SwitchRole};
use crate::{Generation, Mastership, NodeId};

const NODES: usize = 3;
const LEASE_SECS: f64 = 10.0;

#[derive(Debug, Clone)]
enum Op {
    /// The leader gives the switch to a node at the next generation.
    Assign(usize),
    /// A node's watch delivers the next assignment it has not seen (watches
    /// deliver in order, some nodes later than others).
    Deliver(usize),
    /// A keepalive is acked: the lease deadline moves to now + 10 s.
    Renew(usize),
    /// The lease is known lost.
    Lose(usize),
    /// Seconds pass; due timers fire.
    Tick(u8),
    Write(usize),
    Reconnect(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..NODES).prop_map(Op::Assign),
        (0..NODES).prop_map(Op::Deliver),
        (0..NODES).prop_map(Op::Renew),
        (0..NODES).prop_map(Op::Lose),
        (1u8..8).prop_map(Op::Tick),
        (0..NODES).prop_map(Op::Write),
        (0..NODES).prop_map(Op::Reconnect),
    ]
}

struct World {
    clock: Clock,
    t: f64,
    ids: Vec<NodeId>,
    roles: Vec<RoleState>,
    /// `BecameMaster` / `Demoted` per node, to check they alternate.
    writing: Vec<bool>,
    switch: FakeSwitch,
    /// Every assignment the leader made, in order.
    history: Vec<Mastership>,
    /// How many of them each node's watch has delivered.
    delivered: Vec<usize>,
}

impl World {
    fn new() -> World {
        let clock = Clock::new();
        let ids: Vec<NodeId> = ["a", "b", "c"].iter().map(|id| node(id)).collect();
        let mut switch = FakeSwitch::default();
        let roles = ids
            .iter()
            .map(|id| {
                let mut role = RoleState::new(id.clone());
                role.handle_lease(clock.at(0.0), Some(clock.at(LEASE_SECS)));
                role.handle_connected(clock.at(0.0));
                switch.connect(id);
                role
            })
            .collect();
        World {
            clock,
            t: 0.0,
            ids,
            roles,
            writing: vec![false; NODES],
            switch,
            history: Vec::new(),
            delivered: vec![0; NODES],
        }
    }

    fn now(&self) -> std::time::Instant {
        self.clock.at(self.t)
    }

    fn pump(&mut self, i: usize) -> Result<(), TestCaseError> {
        let now = self.now();
        for event in self.switch.pump(&self.ids[i], &mut self.roles[i], now) {
            match event {
                RoleEvent::BecameMaster { .. } => {
                    prop_assert!(!self.writing[i], "BecameMaster twice");
                    self.writing[i] = true;
                }
                RoleEvent::Demoted { .. } => {
                    prop_assert!(self.writing[i], "Demoted without BecameMaster");
                    self.writing[i] = false;
                }
                _ => {}
            }
        }
        prop_assert_eq!(self.writing[i], self.roles[i].may_write(now));
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let now = self.now();
        match *op {
            Op::Assign(i) => {
                let generation = Generation(self.history.len() as u64 + 1);
                self.history.push(Mastership {
                    node: self.ids[i].clone(),
                    generation,
                });
            }
            Op::Deliver(i) => {
                if let Some(next) = self.history.get(self.delivered[i]).cloned() {
                    self.delivered[i] += 1;
                    self.roles[i].handle_assignment(now, Some(next));
                }
            }
            Op::Renew(i) => {
                self.roles[i].handle_lease(now, Some(self.clock.at(self.t + LEASE_SECS)))
            }
            Op::Lose(i) => self.roles[i].handle_lease(now, None),
            Op::Tick(seconds) => {
                self.t += f64::from(seconds);
                let now = self.now();
                for role in &mut self.roles {
                    if role.poll_timeout().is_some_and(|at| at <= now) {
                        role.handle_timeout(now);
                    }
                }
            }
            Op::Write(i) => {
                if self.roles[i].may_write(now) {
                    let on_switch = self.switch.role_of(&self.ids[i]);
                    let done = self
                        .switch
                        .write_unchecked(&self.ids[i], &mut self.roles[i], now);
                    if done == Write::Done {
                        prop_assert_eq!(
                            on_switch,
                            Some(SwitchRole::Master),
                            "{} wrote",
                            &self.ids[i]
                        );
                    }
                }
            }
            Op::Reconnect(i) => {
                self.switch.disconnect(&self.ids[i]);
                self.roles[i].handle_disconnected(now);
                self.pump(i)?;
                self.switch.connect(&self.ids[i]);
                self.roles[i].handle_connected(now);
            }
        }
        for i in 0..NODES {
            self.pump(i)?;
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn only_the_switchs_master_writes_and_the_cluster_converges(
        ops in proptest::collection::vec(op(), 0..40)
    ) {
        let mut world = World::new();
        for op in &ops {
            world.apply(op)?;
        }
        // Every watch catches up, every lease is renewed: the latest
        // assignment's master, and it alone, writes.
        for i in 0..NODES {
            world.apply(&Op::Renew(i))?;
            while world.delivered[i] < world.history.len() {
                world.apply(&Op::Deliver(i))?;
            }
        }
        let now = world.now();
        let latest = world.history.last().map(|m| m.node.clone());
        for i in 0..NODES {
            let master = latest.as_ref() == Some(&world.ids[i]);
            let expected = if master { Write::Done } else { Write::NotAttempted };
            let id = world.ids[i].clone();
            prop_assert_eq!(world.switch.try_write(&id, &mut world.roles[i], now), expected, "{}", id);
        }
    }
}
