use super::*;
use crate::model::{Actions, QueueAction, QueueSpec};
use flowgate_controller::policy::{Dpid, PacketMatch};
use serde_json::json;

fn policy(id: u32, priority: u16, m: serde_json::Value, placement: Placement) -> Policy {
    Policy {
        id,
        name: None,
        priority,
        match_: serde_json::from_value::<PacketMatch>(m).unwrap(),
        tenant: None,
        in_port: None,
        actions: Actions {
            dscp: Some(10),
            ..Actions::default()
        },
        placement,
        description: None,
        origin: None,
    }
}

fn with_queue(mut p: Policy, id: u32, port: Option<&str>) -> Policy {
    p.actions.queue = Some(QueueAction {
        id,
        port: port.map(str::to_owned),
    });
    p
}

fn no_other_queues(_: &Policy, _: u32) -> bool {
    false
}

fn config() -> QosConfig {
    let mut c = QosConfig::default();
    c.profiles.insert(
        "p".into(),
        Profile {
            id: "p".into(),
            kind: Default::default(),
            max_rate: 10_000_000,
            queues: [(1, QueueSpec::default())].into_iter().collect(),
            origin: None,
        },
    );
    c.bindings.insert(
        "b".into(),
        serde_json::from_value(json!({"id": "b", "profile": "p", "dpid": 1, "port": "s1-eth2"}))
            .unwrap(),
    );
    c
}

#[test]
fn same_priority_policies_may_not_overlap_in_a_common_place() {
    let mut c = config();
    let a = policy(1, 10, json!({"ip_src": "10.0.0.0/24"}), Placement::All);
    c.policies.insert(1, a);
    let overlapping = policy(
        2,
        10,
        json!({"ip_src": "10.0.0.5"}),
        Placement::Switch(Dpid(2)),
    );
    assert!(
        matches!(c.check_policy(&overlapping, &no_other_queues), Err(QosError::Conflict(f)) if f.field == "priority")
    );
    let disjoint = policy(2, 10, json!({"ip_src": "10.0.1.0/24"}), Placement::All);
    assert!(c.check_policy(&disjoint, &no_other_queues).is_ok());
    let other_priority = policy(2, 11, json!({"ip_src": "10.0.0.5"}), Placement::All);
    assert!(c.check_policy(&other_priority, &no_other_queues).is_ok());
    let a_switch = policy(1, 10, json!({}), Placement::Switch(Dpid(1)));
    let other_switch = policy(3, 10, json!({}), Placement::Switch(Dpid(2)));
    assert!(!overlaps(&a_switch, &other_switch));
}

#[test]
fn a_queue_must_be_provisioned_where_the_packets_leave() {
    let c = config();
    let on = |p: Placement, port: Option<&str>, q: u32| {
        c.check_policy(
            &with_queue(policy(5, 1, json!({}), p), q, port),
            &no_other_queues,
        )
    };
    assert!(on(Placement::Switch(Dpid(1)), Some("s1-eth2"), 1).is_ok());
    assert!(on(Placement::Switch(Dpid(1)), None, 1).is_ok());
    assert!(on(Placement::All, None, 1).is_ok());
    for refused in [
        on(Placement::Switch(Dpid(1)), Some("s1-eth3"), 1),
        on(Placement::Switch(Dpid(2)), None, 1),
        on(Placement::All, None, 2),
    ] {
        let Err(QosError::Conflict(f)) = refused else {
            panic!("accepted: {refused:?}");
        };
        assert_eq!(f.field, "actions.queue.id");
        assert!(f.reason.contains("not provisioned"), "{}", f.reason);
    }
}

#[test]
fn what_policies_use_stays() {
    let mut c = config();
    c.policies.insert(
        5,
        with_queue(
            policy(5, 1, json!({}), Placement::Switch(Dpid(1))),
            1,
            Some("s1-eth2"),
        ),
    );
    assert!(matches!(
        c.check_binding_removal("b"),
        Err(QosError::Conflict(_))
    ));
    assert!(matches!(
        c.check_profile_unused("p"),
        Err(QosError::Conflict(_))
    ));
    let mut fewer = c.profiles["p"].clone();
    fewer.queues.clear();
    assert!(matches!(c.check_profile(&fewer), Err(QosError::Conflict(f)) if f.field == "queues"));
    c.policies.clear();
    assert!(c.check_binding_removal("b").is_ok());
    assert!(c.check_profile(&fewer).is_ok());
}

#[test]
fn bindings_need_their_profile_and_a_free_port() {
    let c = config();
    let binding = |v: serde_json::Value| -> Binding { serde_json::from_value(v).unwrap() };
    assert!(matches!(
        c.check_binding(&binding(json!({"id": "c", "profile": "nope", "dpid": 1, "port": "x"}))),
        Err(QosError::Missing(f)) if f.field == "profile"
    ));
    assert!(matches!(
        c.check_binding(&binding(json!({"id": "c", "profile": "p", "dpid": 1, "port": "s1-eth2"}))),
        Err(QosError::Conflict(f)) if f.field == "port"
    ));
    assert!(c
        .check_binding(&binding(
            json!({"id": "b", "profile": "p", "dpid": 1, "port": "s1-eth2"})
        ))
        .is_ok());
}

#[test]
fn queues_made_outside_flowgate_count() {
    let c = config();
    let p = with_queue(
        policy(5, 1, json!({}), Placement::Switch(Dpid(3))),
        7,
        Some("s3-eth1"),
    );
    assert!(c.check_policy(&p, &no_other_queues).is_err());
    assert!(c.check_policy(&p, &|_, q| q == 7).is_ok());
}
