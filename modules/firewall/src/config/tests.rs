use super::*;
use serde_json::json;

fn rule(id: u32, priority: u16, m: serde_json::Value) -> Rule {
    rule_with(id, priority, m, json!({}), "allow")
}

fn rule_with(
    id: u32,
    priority: u16,
    m: serde_json::Value,
    scope: serde_json::Value,
    action: &str,
) -> Rule {
    let r: Rule = serde_json::from_value(json!({
        "id": id, "priority": priority, "match": m, "scope": scope, "action": action
    }))
    .expect("rule parses");
    r.validate().expect("rule is valid");
    r
}

#[test]
fn overlap_needs_every_field_to_intersect() {
    let pairs = [
        // (a, b, overlap?)
        (json!({}), json!({"ip_proto": "tcp"}), true),
        (
            json!({"ip_src": "10.0.0.0/8"}),
            json!({"ip_src": "10.1.0.0/16"}),
            true,
        ),
        (
            json!({"ip_src": "10.0.0.0/16"}),
            json!({"ip_src": "10.1.0.0/16"}),
            false,
        ),
        (
            json!({"ip_dst": "10.0.0.1"}),
            json!({"ip_dst": "2001:db8::1"}),
            false,
        ),
        (
            json!({"ip_proto": "tcp"}),
            json!({"ip_proto": "udp"}),
            false,
        ),
        (
            json!({"ip_proto": "icmp"}),
            json!({"ip_proto": "icmpv6"}),
            false,
        ),
        (
            json!({"ip_proto": "tcp"}),
            json!({"ip_dst": "2001:db8::1"}),
            true,
        ),
        (
            json!({"ip_proto": "tcp", "dst_port": "80-90"}),
            json!({"ip_proto": "tcp", "dst_port": "90-100"}),
            true,
        ),
        (
            json!({"ip_proto": "tcp", "dst_port": "80-89"}),
            json!({"ip_proto": "tcp", "dst_port": "90-100"}),
            false,
        ),
        (
            json!({"ip_proto": "icmp", "icmp_type": 8}),
            json!({"ip_proto": "icmp", "icmp_type": 0}),
            false,
        ),
        (
            json!({"eth_src": "00:00:00:00:00:01"}),
            json!({"eth_src": "00:00:00:00:00:02"}),
            false,
        ),
        (
            json!({"eth_src": "00:00:00:00:00:01"}),
            json!({"eth_dst": "00:00:00:00:00:02"}),
            true,
        ),
        (
            json!({"eth_type": "0x8847"}),
            json!({"ip_proto": "tcp"}),
            false,
        ),
        (json!({"eth_type": "0x8847"}), json!({}), true),
    ];
    for (a, b, want) in pairs {
        let (ra, rb) = (rule(1, 10, a.clone()), rule(2, 10, b.clone()));
        assert_eq!(overlaps(&ra, &rb), want, "{a} vs {b}");
        assert_eq!(overlaps(&rb, &ra), want, "{b} vs {a}");
    }
}

#[test]
fn scopes_separate_rules() {
    let m = json!({"ip_proto": "tcp"});
    let scoped = |scope| rule_with(1, 10, m.clone(), scope, "deny");
    let cases = [
        (json!({"tenant": 1}), json!({"tenant": 2}), false),
        (json!({"tenant": 1}), json!({}), true),
        (json!({"dpid": 1}), json!({"dpid": "0x2"}), false),
        (
            json!({"dpid": 1}),
            json!({"dpid": "00:00:00:00:00:00:00:01"}),
            true,
        ),
        (json!({"in_port": 1}), json!({"in_port": 2}), false),
        (json!({"in_port": 1, "dpid": 1}), json!({"dpid": 1}), true),
    ];
    for (a, b, want) in cases {
        let (ra, mut rb) = (scoped(a.clone()), scoped(b.clone()));
        rb.id = 2;
        assert_eq!(overlaps(&ra, &rb), want, "{a} vs {b}");
    }
}

#[test]
fn same_priority_overlap_is_a_conflict() {
    let mut set = RuleSet::default();
    let web = rule(1, 100, json!({"ip_proto": "tcp", "dst_port": 80}));
    set.check(&web).expect("first rule");
    set.insert(web.clone());
    // Another priority: fine.
    let all_tcp = rule(2, 50, json!({"ip_proto": "tcp"}));
    set.check(&all_tcp).expect("lower priority");
    // Same priority, overlapping: refused naming the other rule.
    let clash = rule(3, 100, json!({"ip_proto": "tcp", "dst_port": "1-1024"}));
    match set.check(&clash) {
        Err(RuleError::Conflict(e)) => {
            assert_eq!(e.field, "priority");
            assert!(e.reason.contains("rule 1"), "{}", e.reason);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Replacing rule 1 by itself is not a conflict.
    let mut web2 = web.clone();
    web2.match_.dst_port = Some("81".parse().expect("port"));
    set.check(&web2)
        .expect("a rule does not conflict with its old self");
    // Invalid rules are Invalid, not Conflict.
    let mut bad = web.clone();
    bad.priority = 0;
    assert!(matches!(set.check(&bad), Err(RuleError::Invalid(_))));
}

#[test]
fn rule_sets_from_lists_name_the_index() {
    let ok = RuleSet::from_rules(vec![
        rule(5, 10, json!({"ip_proto": "tcp"})),
        rule(2, 20, json!({"ip_proto": "tcp"})),
        rule(9, 20, json!({"ip_proto": "udp"})),
    ])
    .expect("valid set");
    assert_eq!(ok.len(), 3);
    let order: Vec<u32> = ok.in_order().iter().map(|r| r.id).collect();
    assert_eq!(order, vec![2, 9, 5]);
    assert_eq!(ok.next_id(), Some(10));

    let dup = RuleSet::from_rules(vec![rule(1, 10, json!({})), rule(1, 20, json!({}))]);
    assert_eq!(
        dup,
        Err(RuleError::Conflict(FieldError::new(
            "[1].id",
            "duplicate id 1 (also at [0])"
        )))
    );
    let overlap = RuleSet::from_rules(vec![rule(1, 10, json!({})), rule(2, 10, json!({}))]);
    assert!(matches!(overlap, Err(RuleError::Conflict(e)) if e.field == "[1].priority"));
    let mut bad = rule(3, 10, json!({}));
    bad.priority = 40_000;
    let invalid = RuleSet::from_rules(vec![rule(1, 10, json!({})), bad]);
    assert!(matches!(invalid, Err(RuleError::Invalid(e)) if e.field == "[1].priority"));
}

#[test]
fn insert_and_remove_keep_the_priority_index() {
    let mut set = RuleSet::default();
    set.insert(rule(1, 10, json!({})));
    set.insert(rule(2, 20, json!({})));
    // Moving rule 1 to priority 20 leaves nothing at 10.
    let moved = rule(1, 30, json!({}));
    assert!(set.insert(moved).is_some());
    assert_eq!(
        set.in_order()
            .iter()
            .map(|r| (r.id, r.priority))
            .collect::<Vec<_>>(),
        vec![(1, 30), (2, 20)]
    );
    assert!(set.remove(2).is_some());
    assert!(set.remove(2).is_none());
    // A new rule at 20 no longer meets rule 2.
    set.check(&rule(3, 20, json!({})))
        .expect("priority 20 is free");
    assert_eq!(set.len(), 1);
}
