//! The role state machine on its own: answers fed by hand.

use flowgate_openflow::{controller_role, error_code, error_type, RoleMsg};

use super::{node, Clock};
use crate::role::{DemoteReason, Role, RoleAnswer, RoleEvent, RoleState, SwitchRole};
use crate::{Generation, Mastership};

fn at(id: &str, generation: u64) -> Option<Mastership> {
    Some(Mastership {
        node: node(id),
        generation: Generation(generation),
    })
}

fn events(state: &mut RoleState) -> Vec<RoleEvent> {
    std::iter::from_fn(|| state.poll_event()).collect()
}

/// The token of the single request among `events`, checking what it asks.
fn request(events: &[RoleEvent], role: Role, generation: u64) -> u64 {
    let asked: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            RoleEvent::Request {
                token,
                role,
                generation,
            } => Some((*token, *role, *generation)),
            _ => None,
        })
        .collect();
    assert_eq!(asked.len(), 1, "one request in {events:?}");
    assert_eq!((asked[0].1, asked[0].2), (role, Generation(generation)));
    asked[0].0
}

fn reply(role: u32, generation: u64) -> RoleAnswer {
    RoleAnswer::Reply(RoleMsg {
        role,
        generation_id: generation,
    })
}

fn stale() -> RoleAnswer {
    RoleAnswer::Error {
        err_type: error_type::ROLE_REQUEST_FAILED,
        code: error_code::role_request_failed::STALE,
    }
}

/// Node "a", connected, lease valid until 100 s, master at `generation`
/// confirmed; events drained.
fn master_a(clock: Clock, generation: u64) -> RoleState {
    let mut a = RoleState::new(node("a"));
    a.handle_lease(clock.at(0.0), Some(clock.at(100.0)));
    a.handle_connected(clock.at(0.0));
    a.handle_assignment(clock.at(0.0), at("a", generation));
    let token = request(&events(&mut a), Role::Master, generation);
    a.handle_answer(
        clock.at(0.0),
        token,
        reply(controller_role::MASTER, generation),
    );
    assert_eq!(
        events(&mut a),
        vec![RoleEvent::BecameMaster {
            generation: Generation(generation)
        }]
    );
    a
}

#[test]
fn connected_without_an_assignment_asks_nothing_and_does_not_write() {
    let clock = Clock::new();
    let mut a = RoleState::new(node("a"));
    a.handle_lease(clock.at(0.0), Some(clock.at(100.0)));
    a.handle_connected(clock.at(0.0));
    assert_eq!(events(&mut a), vec![]);
    assert_eq!(a.switch_role(), Some(SwitchRole::Equal));
    assert!(!a.may_write(clock.at(1.0)));
}

#[test]
fn an_assignment_before_the_connection_is_asked_for_once_connected() {
    let clock = Clock::new();
    let mut a = RoleState::new(node("a"));
    a.handle_lease(clock.at(0.0), Some(clock.at(100.0)));
    a.handle_assignment(clock.at(0.0), at("a", 5));
    assert_eq!(events(&mut a), vec![]);
    a.handle_connected(clock.at(1.0));
    request(&events(&mut a), Role::Master, 5);
}

#[test]
fn master_writes_only_once_the_switch_confirms_its_generation() {
    let clock = Clock::new();
    let mut a = RoleState::new(node("a"));
    a.handle_lease(clock.at(0.0), Some(clock.at(100.0)));
    a.handle_connected(clock.at(0.0));
    a.handle_assignment(clock.at(0.0), at("a", 5));
    let token = request(&events(&mut a), Role::Master, 5);
    assert!(!a.may_write(clock.at(0.0)), "not before the reply");
    assert!(!a.is_master());

    a.handle_answer(clock.at(0.0), token, reply(controller_role::MASTER, 5));
    assert_eq!(
        events(&mut a),
        vec![RoleEvent::BecameMaster {
            generation: Generation(5)
        }]
    );
    assert!(a.may_write(clock.at(1.0)));
    assert!(a.is_master());
    assert_eq!(a.switch_role(), Some(SwitchRole::Master));
}

#[test]
fn a_reply_with_another_generation_or_role_confirms_nothing() {
    let clock = Clock::new();
    for answer in [
        reply(controller_role::MASTER, 6),
        reply(controller_role::EQUAL, 5),
    ] {
        let mut a = RoleState::new(node("a"));
        a.handle_lease(clock.at(0.0), Some(clock.at(100.0)));
        a.handle_connected(clock.at(0.0));
        a.handle_assignment(clock.at(0.0), at("a", 5));
        let token = request(&events(&mut a), Role::Master, 5);
        a.handle_answer(clock.at(0.0), token, answer);
        assert_eq!(events(&mut a), vec![]);
        assert!(!a.may_write(clock.at(0.0)));
    }
}

#[test]
fn a_slave_asks_slave_with_the_generation_and_never_writes() {
    let clock = Clock::new();
    let mut b = RoleState::new(node("b"));
    b.handle_lease(clock.at(0.0), Some(clock.at(100.0)));
    b.handle_connected(clock.at(0.0));
    b.handle_assignment(clock.at(0.0), at("a", 5));
    let token = request(&events(&mut b), Role::Slave, 5);
    b.handle_answer(clock.at(0.0), token, reply(controller_role::SLAVE, 5));
    assert_eq!(events(&mut b), vec![]);
    assert_eq!(b.switch_role(), Some(SwitchRole::Slave));
    assert!(!b.may_write(clock.at(0.0)));
    assert_eq!(b.poll_timeout(), None);
}

#[test]
fn an_answer_to_a_superseded_request_is_ignored() {
    let clock = Clock::new();
    let mut a = RoleState::new(node("a"));
    a.handle_lease(clock.at(0.0), Some(clock.at(100.0)));
    a.handle_connected(clock.at(0.0));
    a.handle_assignment(clock.at(0.0), at("a", 5));
    let old = request(&events(&mut a), Role::Master, 5);
    a.handle_assignment(clock.at(0.0), at("b", 9));
    let new = request(&events(&mut a), Role::Slave, 9);
    a.handle_answer(clock.at(0.0), old, reply(controller_role::MASTER, 5));
    assert_eq!(events(&mut a), vec![]);
    assert!(!a.may_write(clock.at(0.0)));
    a.handle_answer(clock.at(0.0), new, reply(controller_role::SLAVE, 9));
    assert_eq!(a.switch_role(), Some(SwitchRole::Slave));
}

#[test]
fn moved_away_demotes_and_asks_slave() {
    let clock = Clock::new();
    let mut a = master_a(clock, 5);
    a.handle_assignment(clock.at(1.0), at("b", 9));
    let seen = events(&mut a);
    assert_eq!(
        seen[0],
        RoleEvent::Demoted {
            reason: DemoteReason::Reassigned
        }
    );
    request(&seen, Role::Slave, 9);
    assert!(!a.may_write(clock.at(1.0)));
}

#[test]
fn unassigned_demotes_and_asks_nothing() {
    let clock = Clock::new();
    let mut a = master_a(clock, 5);
    a.handle_assignment(clock.at(1.0), None);
    assert_eq!(
        events(&mut a),
        vec![RoleEvent::Demoted {
            reason: DemoteReason::Reassigned
        }]
    );
    assert!(!a.may_write(clock.at(1.0)));
}

#[test]
fn a_new_generation_for_the_same_master_is_confirmed_before_writing_again() {
    let clock = Clock::new();
    let mut a = master_a(clock, 5);
    a.handle_assignment(clock.at(1.0), at("a", 12));
    assert_eq!(
        events(&mut a),
        vec![
            RoleEvent::Demoted {
                reason: DemoteReason::Reassigned
            },
            RoleEvent::Request {
                token: 1,
                role: Role::Master,
                generation: Generation(12)
            },
        ]
    );
    assert!(!a.may_write(clock.at(1.0)));
    a.handle_answer(clock.at(1.0), 1, reply(controller_role::MASTER, 12));
    assert_eq!(
        events(&mut a),
        vec![RoleEvent::BecameMaster {
            generation: Generation(12)
        }]
    );
}

#[test]
fn the_lease_deadline_ends_writing_even_before_the_timer_fires() {
    let clock = Clock::new();
    let mut a = master_a(clock, 5);
    assert_eq!(a.poll_timeout(), Some(clock.at(100.0)));
    assert!(a.may_write(clock.at(99.9)));
    assert!(!a.may_write(clock.at(100.0)), "self-fenced at the deadline");

    a.handle_timeout(clock.at(100.0));
    let seen = events(&mut a);
    assert!(seen.contains(&RoleEvent::Demoted {
        reason: DemoteReason::LeaseExpired
    }));
    request(&seen, Role::Slave, 5);
    assert_eq!(a.poll_timeout(), None, "no busy timer once fenced");
}

#[test]
fn a_renewed_lease_keeps_the_master_writing_without_events() {
    let clock = Clock::new();
    let mut a = master_a(clock, 5);
    a.handle_lease(clock.at(50.0), Some(clock.at(150.0)));
    assert_eq!(events(&mut a), vec![]);
    assert!(a.may_write(clock.at(120.0)));
    assert_eq!(a.poll_timeout(), Some(clock.at(150.0)));
}

#[test]
fn a_lease_back_after_expiry_asks_master_again_and_reconciles_again() {
    let clock = Clock::new();
    let mut a = master_a(clock, 5);
    a.handle_timeout(clock.at(100.0));
    let token = request(&events(&mut a), Role::Slave, 5);
    a.handle_answer(clock.at(100.0), token, reply(controller_role::SLAVE, 5));

    a.handle_lease(clock.at(101.0), Some(clock.at(200.0)));
    let token = request(&events(&mut a), Role::Master, 5);
    assert!(!a.may_write(clock.at(101.0)));
    a.handle_answer(clock.at(101.0), token, reply(controller_role::MASTER, 5));
    assert_eq!(
        events(&mut a),
        vec![RoleEvent::BecameMaster {
            generation: Generation(5)
        }]
    );
}

#[test]
fn losing_the_lease_outright_demotes_at_once() {
    let clock = Clock::new();
    let mut a = master_a(clock, 5);
    a.handle_lease(clock.at(1.0), None);
    let seen = events(&mut a);
    assert!(seen.contains(&RoleEvent::Demoted {
        reason: DemoteReason::LeaseExpired
    }));
    assert!(!a.may_write(clock.at(1.0)));
}

#[test]
fn disconnect_demotes_and_reconnect_asks_again() {
    let clock = Clock::new();
    let mut a = master_a(clock, 5);
    a.handle_disconnected(clock.at(1.0));
    assert_eq!(
        events(&mut a),
        vec![RoleEvent::Demoted {
            reason: DemoteReason::Disconnected
        }]
    );
    assert_eq!(a.switch_role(), None);
    a.handle_connected(clock.at(2.0));
    assert_eq!(a.switch_role(), Some(SwitchRole::Equal));
    request(&events(&mut a), Role::Master, 5);
    assert!(!a.may_write(clock.at(2.0)));
}

#[test]
fn stale_is_fenced_and_not_asked_again_until_a_newer_generation() {
    let clock = Clock::new();
    let mut a = RoleState::new(node("a"));
    a.handle_lease(clock.at(0.0), Some(clock.at(100.0)));
    a.handle_connected(clock.at(0.0));
    a.handle_assignment(clock.at(0.0), at("a", 5));
    let token = request(&events(&mut a), Role::Master, 5);
    a.handle_answer(clock.at(0.0), token, stale());
    assert_eq!(
        events(&mut a),
        vec![RoleEvent::Fenced {
            role: Role::Master,
            generation: Generation(5)
        }]
    );
    assert!(!a.may_write(clock.at(0.0)));

    // Stepping down at 5 would be refused too: not sent.
    a.handle_timeout(clock.at(100.0));
    assert_eq!(events(&mut a), vec![]);

    a.handle_assignment(clock.at(101.0), at("b", 9));
    request(&events(&mut a), Role::Slave, 9);
}

#[test]
fn other_refusals_are_reported_and_never_write() {
    let clock = Clock::new();
    let mut a = RoleState::new(node("a"));
    a.handle_lease(clock.at(0.0), Some(clock.at(100.0)));
    a.handle_connected(clock.at(0.0));
    a.handle_assignment(clock.at(0.0), at("a", 5));
    let token = request(&events(&mut a), Role::Master, 5);
    let unsup = RoleAnswer::Error {
        err_type: error_type::ROLE_REQUEST_FAILED,
        code: error_code::role_request_failed::UNSUP,
    };
    a.handle_answer(clock.at(0.0), token, unsup);
    assert_eq!(
        events(&mut a),
        vec![RoleEvent::Refused {
            role: Role::Master,
            generation: Generation(5),
            err_type: error_type::ROLE_REQUEST_FAILED,
            code: error_code::role_request_failed::UNSUP,
        }]
    );
    assert!(!a.may_write(clock.at(0.0)));
}

#[test]
fn an_unanswered_request_is_sent_again() {
    let clock = Clock::new();
    let mut a = RoleState::new(node("a"));
    a.handle_lease(clock.at(0.0), Some(clock.at(100.0)));
    a.handle_connected(clock.at(0.0));
    a.handle_assignment(clock.at(0.0), at("a", 5));
    let first = request(&events(&mut a), Role::Master, 5);
    a.handle_answer(clock.at(10.0), first, RoleAnswer::Timeout);
    let second = request(&events(&mut a), Role::Master, 5);
    assert_ne!(first, second);
}

#[test]
fn is_slave_on_a_write_demotes_and_asks_master_again_once() {
    let clock = Clock::new();
    let mut a = master_a(clock, 5);
    a.handle_write_refused(clock.at(1.0));
    assert_eq!(
        events(&mut a),
        vec![
            RoleEvent::Demoted {
                reason: DemoteReason::SwitchSaysSlave
            },
            RoleEvent::Request {
                token: 1,
                role: Role::Master,
                generation: Generation(5)
            },
        ]
    );
    assert_eq!(a.switch_role(), Some(SwitchRole::Slave));
    // More refusals of writes already in flight: nothing new.
    a.handle_write_refused(clock.at(1.0));
    assert_eq!(events(&mut a), vec![]);
    assert!(!a.may_write(clock.at(1.0)));
}
