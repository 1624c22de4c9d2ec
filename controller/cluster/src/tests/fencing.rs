//! Fencing end to end: two nodes, one switch with OpenFlow's role rules.
//! Node A masters the switch at generation 5 and is cut off from etcd; the
//! leader gives the switch to B at generation 9.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::fake_switch::{FakeSwitch, Write};
use super::{node, Clock};
use crate::role::{DemoteReason, Role, RoleEvent, RoleState, SwitchRole};
use crate::{assign, commit, Generation, Lease, Masters, NodeId};

const DPID: u64 = 1;
const TTL: Duration = Duration::from_secs(10);
const MARGIN: Duration = Duration::from_secs(1);

struct Node {
    id: NodeId,
    lease: Lease,
    role: RoleState,
}

impl Node {
    fn new(id: &str, clock: Clock) -> Node {
        let mut lease = Lease::new(MARGIN);
        lease.granted(1, clock.at(0.0), TTL);
        let mut role = RoleState::new(node(id));
        role.handle_lease(clock.at(0.0), lease.valid_until());
        Node {
            id: node(id),
            lease,
            role,
        }
    }
}

/// The leader's decision over the nodes it sees live, written at `revision`.
fn leader(live: &[&str], current: &Masters, revision: i64) -> Masters {
    let live: BTreeSet<NodeId> = live.iter().map(|id| node(id)).collect();
    let connections = BTreeMap::from([(DPID, BTreeSet::from([node("a"), node("b")]))]);
    let moves = assign(&live, &connections, current);
    commit(current, &moves, revision).expect("revisions grow")
}

/// A and B connected, A master at 5 and confirmed, B slave at 5.
fn a_master_at_5(clock: Clock) -> (Node, Node, FakeSwitch, Masters) {
    let mut switch = FakeSwitch::default();
    let mut a = Node::new("a", clock);
    let mut b = Node::new("b", clock);
    let masters = leader(&["a", "b"], &Masters::new(), 5);
    assert_eq!(masters[&DPID].node, node("a"), "lowest id wins the tie");
    for n in [&mut a, &mut b] {
        switch.connect(&n.id);
        n.role.handle_connected(clock.at(0.0));
        n.role
            .handle_assignment(clock.at(0.0), masters.get(&DPID).cloned());
    }
    let seen = switch.pump(&a.id, &mut a.role, clock.at(0.0));
    assert!(seen.contains(&RoleEvent::BecameMaster {
        generation: Generation(5)
    }));
    switch.pump(&b.id, &mut b.role, clock.at(0.0));
    assert_eq!(switch.role_of(&b.id), Some(SwitchRole::Slave));
    assert_eq!(
        switch.try_write(&a.id, &mut a.role, clock.at(1.0)),
        Write::Done
    );
    assert_eq!(
        switch.try_write(&b.id, &mut b.role, clock.at(1.0)),
        Write::NotAttempted
    );
    (a, b, switch, masters)
}

/// B's keepalives go on; the leader, seeing only B, moves the switch to B at
/// generation 9 and B takes it.
fn b_takes_over(b: &mut Node, switch: &mut FakeSwitch, masters: &Masters, clock: Clock, t: f64) {
    b.lease.keepalive_acked(1, clock.at(t - 1.0), TTL);
    b.role.handle_lease(clock.at(t), b.lease.valid_until());
    let masters = leader(&["b"], masters, 9);
    assert_eq!(masters[&DPID].node, node("b"));
    b.role
        .handle_assignment(clock.at(t), masters.get(&DPID).cloned());
    let seen = switch.pump(&b.id, &mut b.role, clock.at(t));
    assert!(seen.contains(&RoleEvent::BecameMaster {
        generation: Generation(9)
    }));
    assert_eq!(switch.masters(), vec![&b.id]);
}

#[test]
fn a_partitioned_master_whose_clock_lags_is_fenced_by_the_switch() {
    let clock = Clock::new();
    let (mut a, mut b, mut switch, masters) = a_master_at_5(clock);

    // A is cut off from etcd at 0 s: its lease ends on the server at 10 s.
    // Its clock runs at half speed, more than the margin covers, so at real
    // time t it believes it is t/2 and still master.
    let a_now = |real: f64| clock.at(real / 2.0);
    b_takes_over(&mut b, &mut switch, &masters, clock, 11.0);
    assert_eq!(
        switch.role_of(&a.id),
        Some(SwitchRole::Slave),
        "demoted by the switch"
    );

    // A writes: the switch says it is a slave.
    assert!(a.role.may_write(a_now(12.0)), "A still believes");
    assert_eq!(
        switch.try_write(&a.id, &mut a.role, a_now(12.0)),
        Write::RefusedIsSlave
    );
    // It stops, asks MASTER again at 5, and is told it is stale.
    let seen = switch.pump(&a.id, &mut a.role, a_now(12.0));
    assert_eq!(
        seen,
        vec![
            RoleEvent::Demoted {
                reason: DemoteReason::SwitchSaysSlave
            },
            RoleEvent::Request {
                token: 1,
                role: Role::Master,
                generation: Generation(5)
            },
            RoleEvent::Fenced {
                role: Role::Master,
                generation: Generation(5)
            },
        ]
    );
    assert!(!a.role.may_write(a_now(12.0)));
    assert_eq!(
        switch.try_write(&a.id, &mut a.role, a_now(12.0)),
        Write::NotAttempted
    );
    assert_eq!(
        switch.try_write(&b.id, &mut b.role, clock.at(12.0)),
        Write::Done
    );

    // A's own deadline (9 s on its clock) passes: it was already fenced, and
    // asks nothing more at a generation the switch refuses.
    assert_eq!(a.role.poll_timeout(), None);
    a.role.handle_timeout(a_now(18.0));
    assert_eq!(switch.pump(&a.id, &mut a.role, a_now(18.0)), vec![]);
    assert!(!a.role.may_write(a_now(18.0)));

    assert_eq!(switch.writes, vec![a.id.clone(), b.id.clone()]);
    assert_eq!(switch.masters(), vec![&b.id]);
}

#[test]
fn a_write_checked_before_a_pause_is_refused_after_the_takeover() {
    let clock = Clock::new();
    let (mut a, mut b, mut switch, masters) = a_master_at_5(clock);
    // A checks at 8.5 s (its lease is good until 9 s) and then stalls.
    assert!(a.role.may_write(clock.at(8.5)));
    b_takes_over(&mut b, &mut switch, &masters, clock, 11.0);
    // The write lands at 12 s.
    assert_eq!(
        switch.write_unchecked(&a.id, &mut a.role, clock.at(12.0)),
        Write::RefusedIsSlave
    );
    // Its lease is gone by now, so it steps down (SLAVE at 5), which the
    // switch refuses as stale too.
    let seen = switch.pump(&a.id, &mut a.role, clock.at(12.0));
    assert_eq!(
        seen,
        vec![
            RoleEvent::Demoted {
                reason: DemoteReason::SwitchSaysSlave
            },
            RoleEvent::Request {
                token: 1,
                role: Role::Slave,
                generation: Generation(5)
            },
            RoleEvent::Fenced {
                role: Role::Slave,
                generation: Generation(5)
            },
        ]
    );
    assert_eq!(switch.masters(), vec![&b.id]);
}

#[test]
fn a_partitioned_master_stops_on_its_own_before_anyone_replaces_it() {
    let clock = Clock::new();
    let (mut a, mut b, mut switch, masters) = a_master_at_5(clock);
    // Cut off at 0 s with a correct clock: self-fence at 10 - 1 = 9 s, before
    // the server expires the lease (10 s) and the leader can move the switch.
    assert_eq!(a.role.poll_timeout(), Some(clock.at(9.0)));
    assert_eq!(
        switch.try_write(&a.id, &mut a.role, clock.at(8.9)),
        Write::Done
    );
    a.role.handle_timeout(clock.at(9.0));
    let seen = switch.pump(&a.id, &mut a.role, clock.at(9.0));
    assert_eq!(
        seen[0],
        RoleEvent::Demoted {
            reason: DemoteReason::LeaseExpired
        }
    );
    assert_eq!(
        switch.role_of(&a.id),
        Some(SwitchRole::Slave),
        "stepped down"
    );
    assert_eq!(switch.masters(), Vec::<&NodeId>::new());
    assert_eq!(
        switch.try_write(&a.id, &mut a.role, clock.at(9.5)),
        Write::NotAttempted
    );

    b_takes_over(&mut b, &mut switch, &masters, clock, 11.0);
    assert_eq!(
        switch.try_write(&b.id, &mut b.role, clock.at(12.0)),
        Write::Done
    );

    // The partition heals: A gets a new lease before its watch delivers the
    // new assignment, so it first asks MASTER at 5 — refused as stale —
    // then settles as B's slave at 9.
    a.lease.granted(2, clock.at(20.0), TTL);
    a.role.handle_lease(clock.at(20.0), a.lease.valid_until());
    let seen = switch.pump(&a.id, &mut a.role, clock.at(20.0));
    assert_eq!(
        seen,
        vec![
            RoleEvent::Request {
                token: 2,
                role: Role::Master,
                generation: Generation(5)
            },
            RoleEvent::Fenced {
                role: Role::Master,
                generation: Generation(5)
            },
        ]
    );
    assert!(!a.role.may_write(clock.at(20.0)));
    let now = leader(&["a", "b"], &leader(&["b"], &masters, 9), 30);
    assert_eq!(now[&DPID].node, node("b"), "no churn back to A");
    a.role
        .handle_assignment(clock.at(20.0), now.get(&DPID).cloned());
    let seen = switch.pump(&a.id, &mut a.role, clock.at(20.0));
    assert_eq!(
        seen,
        vec![RoleEvent::Request {
            token: 3,
            role: Role::Slave,
            generation: Generation(9)
        }]
    );
    assert_eq!(switch.role_of(&a.id), Some(SwitchRole::Slave));
    assert_eq!(
        switch.writes,
        vec![a.id.clone(), a.id.clone(), b.id.clone()]
    );
}
