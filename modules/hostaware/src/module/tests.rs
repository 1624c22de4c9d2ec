use std::time::Instant;

use flowgate_controller::module::Ctx;
use serde_json::json;

use super::*;

fn host(id: &str, ip: Option<&str>) -> MonitoredHost {
    serde_json::from_value(json!({"id": id, "ip": ip, "cluster": "web"})).unwrap()
}

fn rule(id: u32, action: serde_json::Value) -> Rule {
    serde_json::from_value(
        json!({"id": id, "hosts": {"cluster": "web"}, "metric": "load_one",
        "comparator": ">", "threshold": 4.0, "action": action}),
    )
    .unwrap()
}

fn stage(
    m: &mut HostAware,
    op: HostAwareOp,
    by: &Origin,
) -> Result<Staged<HostAware, ()>, HostAwareError> {
    let mut ctx = Ctx::new(Instant::now());
    let staged = m.stage(op, by, &mut ctx);
    let persisted = ctx.take_changes();
    assert_eq!(
        staged.is_ok(),
        !persisted.is_empty(),
        "stored exactly when applied"
    );
    staged
}

#[test]
fn an_action_on_addresses_is_refused_for_a_host_without_one_either_way_round() {
    let rest = Origin::rest();
    let mut m = HostAware::new(Config::default());
    stage(
        &mut m,
        HostAwareOp::PutHost(host("web1", Some("10.0.0.1"))),
        &rest,
    )
    .unwrap();
    stage(&mut m, HostAwareOp::PutHost(host("web2", None)), &rest).unwrap();
    let quarantine = rule(1, json!({"type": "quarantine"}));
    let Err(HostAwareError::Conflict(e)) =
        stage(&mut m, HostAwareOp::PutRule(quarantine.clone()), &rest)
    else {
        panic!("web2 has no ip")
    };
    assert!(e.reason.contains("web2"), "{}", e.reason);
    stage(
        &mut m,
        HostAwareOp::PutRule(rule(2, json!({"type": "notify"}))),
        &rest,
    )
    .unwrap();
    stage(&mut m, HostAwareOp::DeleteHost("web2".into()), &rest).unwrap();
    stage(&mut m, HostAwareOp::PutRule(quarantine), &rest).unwrap();
    // Now the rule holds: web1 may not lose its address.
    let Err(HostAwareError::Conflict(e)) =
        stage(&mut m, HostAwareOp::PutHost(host("web1", None)), &rest)
    else {
        panic!("rule 1 acts on web1")
    };
    assert_eq!(e.field, "ip");
}

#[test]
fn writes_publish_a_plan_and_undo_restores_the_previous_state() {
    let rest = Origin::rest();
    let mut m = HostAware::new(Config::default());
    let mut plans = m.plans.subscribe();
    stage(
        &mut m,
        HostAwareOp::PutHost(host("web1", Some("10.0.0.1"))),
        &rest,
    )
    .unwrap();
    assert!(plans.has_changed().unwrap());
    assert_eq!(plans.borrow_and_update().config.hosts.len(), 1);
    let before = m.config().clone();
    let staged = stage(
        &mut m,
        HostAwareOp::PutRule(rule(1, json!({"type": "rate_limit", "kbps": 100}))),
        &rest,
    )
    .unwrap();
    assert_eq!(m.next_rule_id(), Some(2));
    staged.undo(&mut m, &mut Ctx::new(Instant::now()));
    assert_eq!(m.config(), &before);
    assert!(
        plans.borrow_and_update().config.rules.is_empty(),
        "the runner sees the undo"
    );
}

#[test]
fn a_rule_another_module_made_is_that_modules_and_unknown_ids_are_404() {
    let mut m = HostAware::new(Config::default());
    stage(
        &mut m,
        HostAwareOp::PutHost(host("web1", Some("10.0.0.1"))),
        &Origin::rest(),
    )
    .unwrap();
    let lb = Origin::module(Owner::LoadBalancer, "pool-1");
    let mut r = rule(5, json!({"type": "notify"}));
    r.origin = Some(lb.clone());
    stage(&mut m, HostAwareOp::PutRule(r), &lb).unwrap();
    assert!(matches!(
        stage(&mut m, HostAwareOp::DeleteRule(5), &Origin::rest()),
        Err(HostAwareError::Conflict(e)) if e.field == "origin"
    ));
    assert!(stage(&mut m, HostAwareOp::DeleteRule(5), &lb).is_ok());
    assert!(matches!(
        stage(&mut m, HostAwareOp::DeleteRule(5), &lb),
        Err(HostAwareError::Missing(_))
    ));
    let bad = Settings {
        gmond: "nowhere".into(),
        ..Settings::default()
    };
    assert!(matches!(
        stage(&mut m, HostAwareOp::PutSettings(bad), &Origin::rest()),
        Err(HostAwareError::Invalid(e)) if e.field == "gmond"
    ));
}

fn json<T: serde::Serialize>(value: &T) -> Option<Vec<u8>> {
    Some(serde_json::to_vec(value).unwrap())
}

/// Another node's hosts, rules and settings reach this node's runner; its
/// own writes coming back and bad values change nothing.
#[test]
fn following_the_store_hands_the_runner_what_other_nodes_wrote() {
    use flowgate_controller::module::{Change, Followed, StoreSync};

    use crate::persist::{rule_key, HOSTS, SETTINGS};

    let mut m = HostAware::new(Config::default());
    let mut plans = m.plans.subscribe();
    let web1 = host("web1", Some("10.0.0.1"));
    stage(&mut m, HostAwareOp::PutHost(web1.clone()), &Origin::rest()).unwrap();
    plans.borrow_and_update();
    let follow = |m: &mut HostAware, changed: Vec<(String, Option<Vec<u8>>)>, complete| {
        let mut ctx = Ctx::new(Instant::now());
        let followed = m.follow_store(&StoreSync { changed, complete }, &mut ctx);
        assert!(
            !ctx.take_changes()
                .iter()
                .any(|c| matches!(c, Change::Persist(_))),
            "following the store never writes it"
        );
        followed
    };
    let host_key = |id: &str| format!("{HOSTS}{id}");

    // This node's own write coming back: no new plan.
    let own = vec![(host_key("web1"), json(&web1))];
    assert_eq!(follow(&mut m, own, false), Followed::Taken);
    assert!(!plans.has_changed().unwrap());

    // Another node's rule and settings: in the runner's plan.
    let quarantine = rule(1, json!({"type": "quarantine"}));
    let quiet = Settings {
        enabled: false,
        ..Settings::default()
    };
    let theirs = vec![
        (rule_key(1), json(&quarantine)),
        (SETTINGS.to_owned(), json(&quiet)),
    ];
    assert_eq!(follow(&mut m, theirs, false), Followed::Taken);
    let plan = plans.borrow_and_update().clone();
    assert_eq!(plan.config.rules.get(&1), Some(&quarantine));
    assert!(!plan.config.settings.enabled);

    // Undecodable, or under another's key: this node keeps what it has.
    let bad = vec![
        (rule_key(1), Some(b"{".to_vec())),
        (rule_key(7), json(&quarantine)),
    ];
    assert_eq!(follow(&mut m, bad, false), Followed::Taken);
    assert_eq!(m.config().rules.keys().collect::<Vec<_>>(), [&1]);

    // A state that does not validate (the quarantine needs web2's
    // address, which it lacks) is refused whole.
    let web2 = host("web2", None);
    let refused = vec![(host_key("web2"), json(&web2))];
    assert_eq!(follow(&mut m, refused, false), Followed::Refused);
    assert_eq!(m.config().hosts.len(), 1);

    // A complete re-read without the rule and the settings: both gone.
    let all = vec![(host_key("web1"), json(&web1))];
    assert_eq!(follow(&mut m, all, true), Followed::Taken);
    assert!(m.config().rules.is_empty());
    assert!(m.config().settings.enabled, "default settings");
}
