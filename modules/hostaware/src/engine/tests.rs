use std::time::UNIX_EPOCH;

use serde_json::json;

use super::*;
use crate::model::Rule;

fn rule(extra: serde_json::Value) -> Rule {
    let mut base = json!({
        "id": 1, "hosts": {"host": "web1"}, "metric": "load_one",
        "comparator": ">", "threshold": 4.0, "action": {"type": "notify"}
    });
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    let rule: Rule = serde_json::from_value(base).unwrap();
    rule.validate().unwrap();
    rule
}

fn at(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_000_000 + s)
}

fn value(v: f64, s: u64) -> Reading {
    Ok(Sample {
        value: v,
        at: at(s),
    })
}

/// Feeds `values` one per 10 s from `start`; the transitions with the
/// second they happened at.
fn feed(e: &mut Engine, r: &Rule, start: u64, values: &[f64]) -> Vec<(u64, Transition)> {
    let mut out = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let s = start + 10 * i as u64;
        for t in e.observe(r, "web1", value(*v, s), at(s)) {
            out.push((s, t));
        }
    }
    out
}

#[test]
fn consecutive_polls_trigger_and_a_break_restarts_the_count() {
    let r = rule(json!({"for": 3}));
    let mut e = Engine::default();
    assert!(feed(&mut e, &r, 0, &[5.0, 5.0, 3.0, 5.0, 5.0]).is_empty());
    let t = feed(&mut e, &r, 50, &[5.0]);
    assert_eq!(t, [(50, Transition::ThresholdMet { value: 5.0 })]);
    assert!(e.is_active(1, "web1"));
    // Still high: nothing more.
    assert!(feed(&mut e, &r, 60, &[9.0, 9.0]).is_empty());
}

#[test]
fn hysteresis_needs_the_clear_threshold_for_the_same_number_of_polls() {
    let r = rule(json!({"for": 2, "clear": 2.0}));
    let mut e = Engine::default();
    feed(&mut e, &r, 0, &[5.0, 5.0]);
    // Between clear and threshold: still active; one low poll is not enough.
    assert!(feed(&mut e, &r, 20, &[3.0, 3.5, 1.0, 3.0, 1.0]).is_empty());
    let t = feed(&mut e, &r, 70, &[1.5]);
    assert_eq!(t, [(70, Transition::Recovered { value: 1.5 })]);
    assert!(!e.is_active(1, "web1"));
}

#[test]
fn a_downward_rule_fires_below_and_recovers_above() {
    let r =
        rule(json!({"metric": "cpu_idle", "comparator": "<", "threshold": 10.0, "clear": 30.0}));
    let mut e = Engine::default();
    assert_eq!(
        feed(&mut e, &r, 0, &[5.0]),
        [(0, Transition::ThresholdMet { value: 5.0 })]
    );
    assert!(feed(&mut e, &r, 10, &[20.0]).is_empty());
    assert_eq!(
        feed(&mut e, &r, 20, &[31.0]),
        [(20, Transition::Recovered { value: 31.0 })]
    );
}

#[test]
fn cooldown_holds_a_new_activation_once_reported() {
    let r = rule(json!({"cooldown_s": 60}));
    let mut e = Engine::default();
    feed(&mut e, &r, 0, &[5.0]);
    feed(&mut e, &r, 10, &[1.0]);
    let t = feed(&mut e, &r, 20, &[5.0, 5.0, 5.0]);
    assert_eq!(
        t,
        [(
            20,
            Transition::HeldByCooldown {
                value: 5.0,
                until: at(70)
            }
        )]
    );
    assert_eq!(
        feed(&mut e, &r, 70, &[5.0]),
        [(70, Transition::ThresholdMet { value: 5.0 })]
    );
}

#[test]
fn stale_and_missing_readings_neither_trigger_nor_revert_and_break_the_run() {
    let r = rule(json!({"for": 2}));
    let mut e = Engine::default();
    feed(&mut e, &r, 0, &[5.0]);
    let stale = SourceError::Stale {
        age: Duration::from_secs(90),
    };
    let t = e.observe(&r, "web1", Err(stale.clone()), at(10));
    assert_eq!(t, [Transition::SourceFailing(stale)]);
    // A staler file is the same failure: reported once.
    let staler = SourceError::Stale {
        age: Duration::from_secs(100),
    };
    assert!(e.observe(&r, "web1", Err(staler), at(20)).is_empty());
    let t = e.observe(&r, "web1", value(5.0, 30), at(30));
    assert_eq!(
        t,
        [Transition::SourceBack],
        "the run restarted: one poll of two"
    );
    assert_eq!(
        feed(&mut e, &r, 40, &[5.0]),
        [(40, Transition::ThresholdMet { value: 5.0 })]
    );
    // Active; the source fails: no revert, however long.
    let gone = SourceError::Unavailable("connection refused".into());
    for s in [50, 60, 70, 80] {
        e.observe(&r, "web1", Err(gone.clone()), at(s));
    }
    assert!(e.is_active(1, "web1"));
}

#[test]
fn revert_after_expires_whatever_the_metric_and_never_only_with_the_rule() {
    let after = rule(json!({"revert": {"type": "after", "seconds": 30}}));
    let never = rule(json!({"id": 2, "revert": {"type": "never"}}));
    let rules: BTreeMap<u32, Rule> = [(1, after.clone()), (2, never.clone())].into();
    let mut e = Engine::default();
    feed(&mut e, &after, 0, &[5.0]);
    feed(&mut e, &never, 0, &[5.0]);
    // Low values do not revert either.
    feed(&mut e, &after, 10, &[1.0]);
    feed(&mut e, &never, 10, &[1.0, 1.0, 1.0, 1.0]);
    assert!(e.expire(&rules, at(29)).is_empty());
    assert_eq!(
        e.expire(&rules, at(30)),
        [((1, "web1".to_owned()), Transition::Expired)]
    );
    assert!(e.is_active(2, "web1"));
    e.retain(|(rule, _)| *rule != 2);
    assert!(!e.is_active(2, "web1"));
}

#[test]
fn the_higher_priority_wins_a_slot_then_the_lower_id_and_blocks_add_up() {
    let limit = |id: u32, priority: u16, kbps: u32| {
        rule(
            json!({"id": id, "priority": priority, "action": {"type": "rate_limit", "kbps": kbps}}),
        )
    };
    let block = |id: u32| rule(json!({"id": id, "action": {"type": "block"}}));
    let rules: BTreeMap<u32, Rule> = [
        (1, limit(1, 10, 1000)),
        (2, limit(2, 20, 500)),
        (3, limit(3, 20, 200)),
        (4, block(4)),
        (5, block(5)),
    ]
    .into();
    let mut e = Engine::default();
    for r in rules.values() {
        feed(&mut e, r, 0, &[5.0]);
    }
    let desired = e.desired(&rules);
    let host = |slot| ("web1".to_owned(), slot);
    assert_eq!(
        desired[&host(Slot::Qos)],
        2,
        "priority 20 beats 10; id 2 beats 3"
    );
    assert_eq!(desired[&host(Slot::Block(4))], 4);
    assert_eq!(desired[&host(Slot::Block(5))], 5);
    // The winner recovers: the next one takes the slot.
    feed(&mut e, &rules[&2], 10, &[1.0]);
    assert_eq!(e.desired(&rules)[&host(Slot::Qos)], 3);
}

#[test]
fn a_restored_activation_is_active_without_a_new_trigger() {
    let r = rule(json!({}));
    let mut e = Engine::default();
    e.restore(1, "web1", at(0));
    assert!(
        feed(&mut e, &r, 10, &[5.0, 5.0]).is_empty(),
        "not applied again"
    );
    assert_eq!(
        feed(&mut e, &r, 30, &[1.0]),
        [(30, Transition::Recovered { value: 1.0 })]
    );
}

#[test]
fn a_rate_warming_up_is_not_a_failure() {
    let r = rule(json!({"for": 2}));
    let mut e = Engine::default();
    feed(&mut e, &r, 0, &[5.0]);
    let warming = SourceError::NotYet("first poll".into());
    assert!(e.observe(&r, "web1", Err(warming), at(10)).is_empty());
    assert_eq!(
        feed(&mut e, &r, 20, &[5.0]),
        [(20, Transition::ThresholdMet { value: 5.0 })],
        "the run goes on"
    );
}
