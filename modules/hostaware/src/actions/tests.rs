use serde_json::json;

use super::*;

fn rule(action: serde_json::Value, priority: u16) -> Rule {
    serde_json::from_value(
        json!({"id": 7, "hosts": {"host": "web1"}, "metric": "load_one",
        "comparator": ">", "threshold": 4.0, "priority": priority, "action": action}),
    )
    .unwrap()
}

fn host(tenant: Option<u32>) -> MonitoredHost {
    MonitoredHost {
        id: "web1".into(),
        ganglia_name: None,
        cluster: None,
        ip: Some("10.0.0.3".parse().unwrap()),
        mac: None,
        tenant,
        description: None,
    }
}

#[test]
fn origins_name_rule_host_and_slot_and_parse_back() {
    assert_eq!(
        serde_json::to_value(Resource::LbMember {
            pool: "web".into(),
            member: "10.0.0.3:80".into()
        })
        .unwrap(),
        json!({"kind": "lb_member", "pool": "web", "member": "10.0.0.3:80"})
    );
    for slot in [
        Slot::Quarantine,
        Slot::Qos,
        Slot::LbWeight,
        Slot::Block(7),
        Slot::Notify(9),
    ] {
        let o = origin(7, "web-1.a", slot);
        assert!(o.as_str().starts_with("hostaware/rule-7/web-1.a/"), "{o}");
        assert_eq!(o.owner(), Some(Owner::HostAware));
        assert_eq!(parse_origin(&o), Some((7, "web-1.a".to_owned(), slot)));
    }
    assert_eq!(parse_origin(&Origin::rest()), None);
    assert_eq!(
        parse_origin(&Origin::module(Owner::HostAware, "rule-x/h/qos")),
        None
    );
}

#[test]
fn a_quarantine_allows_its_list_one_priority_above_the_drop_in_the_hosts_tenant() {
    let r = rule(
        json!({"type": "quarantine", "allow": ["10.0.0.1", "10.0.1.0/24"]}),
        10,
    );
    let steps = plan(&r, &host(Some(100)), &[]).unwrap();
    let rules: Vec<FwRule> = steps
        .into_iter()
        .map(|s| match s {
            Step::Firewall(r) => r,
            _ => panic!("a quarantine is firewall rules"),
        })
        .collect();
    assert_eq!(rules.len(), 3);
    let base = firewall_priority(10);
    for allow in &rules[..2] {
        assert_eq!(
            (allow.priority, allow.action),
            (base + 1, RuleAction::Allow)
        );
        assert_eq!(allow.match_.ip_src.unwrap().to_string(), "10.0.0.3");
    }
    assert_eq!(rules[1].match_.ip_dst.unwrap().to_string(), "10.0.1.0/24");
    let drop = &rules[2];
    assert_eq!((drop.priority, drop.action), (base, RuleAction::Deny));
    assert_eq!(drop.match_.ip_dst, None);
    assert!(rules.iter().all(|r| r.scope.tenant == Some(100)));
    assert!(
        firewall_priority(crate::model::MAX_PRIORITY) < 30_000,
        "within the firewall's range"
    );
}

#[test]
fn rate_limits_and_queues_are_qos_policies_on_the_hosts_traffic() {
    let steps = plan(
        &rule(json!({"type": "rate_limit", "kbps": 2000}), 3),
        &host(None),
        &[],
    )
    .unwrap();
    let [Step::Qos(p)] = steps.as_slice() else {
        panic!("one QoS policy")
    };
    assert_eq!(p.priority, qos_priority(3));
    assert_eq!(p.actions.meter.as_ref().unwrap().rate, 2000);
    assert_eq!(p.match_.ip_src.unwrap().to_string(), "10.0.0.3");
    assert_eq!(p.placement, Placement::All);
    let steps = plan(
        &rule(json!({"type": "enqueue", "queue": 2}), 3),
        &host(Some(5)),
        &[],
    )
    .unwrap();
    let [Step::Qos(p)] = steps.as_slice() else {
        panic!("one QoS policy")
    };
    assert_eq!(
        (p.actions.queue.as_ref().unwrap().id, p.tenant),
        (2, Some(5))
    );
}

#[test]
fn a_block_adds_the_host_to_its_match_and_notify_touches_nothing() {
    let r = rule(
        json!({"type": "block", "match": {"ip_proto": "tcp", "dst_port": 22}}),
        0,
    );
    let steps = plan(&r, &host(None), &[]).unwrap();
    let [Step::Firewall(b)] = steps.as_slice() else {
        panic!("one firewall rule")
    };
    assert_eq!(b.action, RuleAction::Deny);
    assert_eq!(b.match_.ip_src.unwrap().to_string(), "10.0.0.3");
    assert!(b.match_.dst_port.is_some());
    assert!(plan(&rule(json!({"type": "notify"}), 0), &host(None), &[])
        .unwrap()
        .is_empty());
    let mut no_ip = host(None);
    no_ip.ip = None;
    assert!(plan(&r, &no_ip, &[]).unwrap_err().contains("no ip"));
}

fn pools() -> Vec<Pool> {
    serde_json::from_value(json!([
        {"id": "web", "members": [
            {"address": "10.0.0.3", "port": 80, "weight": 10},
            {"address": "10.0.0.3", "port": 8080, "weight": 7},
            {"address": "10.0.0.4", "port": 80}]},
        {"id": "api", "members": [{"address": "10.0.0.3", "port": 9000, "weight": 3}]},
        {"id": "other", "members": [{"address": "10.0.0.9", "port": 80}]},
    ]))
    .unwrap()
}

fn lb_steps(steps: Vec<Step>) -> Vec<(String, String, LbChange)> {
    steps
        .into_iter()
        .map(|s| match s {
            Step::Lb { pool, key, change } => (pool, key.to_string(), change),
            other => panic!("not a member: {other:?}"),
        })
        .collect()
}

#[test]
fn a_drain_holds_every_member_at_the_hosts_address_or_those_of_the_named_pool() {
    let steps = plan(&rule(json!({"type": "lb_drain"}), 0), &host(None), &pools()).unwrap();
    assert_eq!(
        lb_steps(steps),
        [
            ("web".into(), "10.0.0.3:80".into(), LbChange::Drain),
            ("web".into(), "10.0.0.3:8080".into(), LbChange::Drain),
            ("api".into(), "10.0.0.3:9000".into(), LbChange::Drain),
        ]
    );
    let only = rule(json!({"type": "lb_drain", "pool": "api"}), 0);
    assert_eq!(
        lb_steps(plan(&only, &host(None), &pools()).unwrap()),
        [("api".into(), "10.0.0.3:9000".into(), LbChange::Drain)]
    );
    let missing = rule(json!({"type": "lb_drain", "pool": "nope"}), 0);
    assert!(plan(&missing, &host(None), &pools())
        .unwrap_err()
        .contains("no load-balancer pool"));
    let elsewhere = rule(json!({"type": "lb_drain", "pool": "other"}), 0);
    assert!(plan(&elsewhere, &host(None), &pools())
        .unwrap_err()
        .contains("not a member of pool \"other\""));
    assert!(
        plan(&rule(json!({"type": "lb_drain"}), 0), &host(None), &[])
            .unwrap_err()
            .contains("member of no load-balancer pool")
    );
}

#[test]
fn a_weight_scales_what_the_member_had_before_this_reactions_hold_never_twice() {
    let r = rule(
        json!({"type": "lb_weight", "factor": 0.25, "pool": "web"}),
        0,
    );
    let mut pools = pools();
    assert_eq!(
        lb_steps(plan(&r, &host(None), &pools).unwrap()),
        [
            ("web".into(), "10.0.0.3:80".into(), LbChange::Weight(3)),
            ("web".into(), "10.0.0.3:8080".into(), LbChange::Weight(2)),
        ]
    );
    // Held by this very reaction already (applied again after a restart):
    // scaled from the weight it had before, not from the scaled one.
    let by = origin(7, "web1", Slot::LbWeight);
    let m = &mut pools[0].members[0];
    m.held = Some(flowgate_loadbalancer::model::Before {
        weight: 10,
        admin_state: AdminState::Enabled,
        origin: None,
    });
    m.weight = 3;
    m.origin = Some(by);
    // Weights never drop below 1.
    pools[0].members[1].weight = 1;
    assert_eq!(
        lb_steps(plan(&r, &host(None), &pools).unwrap()),
        [
            ("web".into(), "10.0.0.3:80".into(), LbChange::Weight(3)),
            ("web".into(), "10.0.0.3:8080".into(), LbChange::Weight(1)),
        ]
    );
}
