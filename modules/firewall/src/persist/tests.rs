use super::*;
use crate::config::DefaultAction;
use flowgate_controller::store::MemoryStore;
use serde_json::json;

fn rule(v: serde_json::Value) -> Rule {
    serde_json::from_value(v).expect("rule parses")
}

fn write(dir: &tempfile::TempDir, v: serde_json::Value) -> std::path::PathBuf {
    let path = dir.path().join("rules.json");
    std::fs::write(&path, v.to_string()).expect("write file");
    path
}

#[test]
fn empty_store_gives_the_default_policy_and_no_rules() {
    let config = load(&MemoryStore::default(), None).expect("loads");
    assert_eq!(config, FirewallConfig::default());
    assert!(config.policy.enabled);
    assert_eq!(config.policy.default_action, DefaultAction::Allow);
}

#[test]
fn stored_rules_and_policy_come_back() {
    let store = MemoryStore::default();
    let r = rule(json!({"id": 12, "priority": 5, "action": "deny", "match": {"ip_proto": "udp"}}));
    let policy = Policy {
        enabled: true,
        default_action: DefaultAction::Deny,
    };
    store
        .apply(vec![
            put_rule(&r).expect("op"),
            put_policy(&policy).expect("op"),
        ])
        .expect("stored");
    assert!(store
        .get("firewall/rules/0000000012")
        .expect("get")
        .is_some());
    let config = load(&store, None).expect("loads");
    assert_eq!(config.policy, policy);
    assert_eq!(config.rules.get(12), Some(&r));
}

#[test]
fn bootstrap_file_rules_replace_same_ids_and_are_stored() {
    let store = MemoryStore::default();
    let old = rule(json!({"id": 1, "priority": 5, "action": "deny"}));
    let kept = rule(json!({"id": 2, "priority": 6, "action": "deny"}));
    store
        .apply(vec![
            put_rule(&old).expect("op"),
            put_rule(&kept).expect("op"),
        ])
        .expect("stored");
    let dir = tempfile::tempdir().expect("tmp");
    let path = write(
        &dir,
        json!([
            {"id": 1, "priority": 7, "action": "allow", "match": {"ip_proto": "icmp"}},
            {"id": 3, "priority": 8, "action": "allow-related", "match": {"ip_proto": "tcp", "dst_port": 80}}
        ]),
    );
    let config = load(&store, Some(&path)).expect("loads");
    assert_eq!(config.rules.len(), 3);
    assert_eq!(config.rules.get(1).map(|r| r.priority), Some(7));
    assert_eq!(config.rules.get(2), Some(&kept));
    // The file's rules are in the store: a restart without the flag keeps them.
    let again = load(&store, None).expect("loads");
    assert_eq!(again, config);
}

#[test]
fn a_bad_bootstrap_file_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().expect("tmp");
    let cases = [
        (
            json!([{"id": 1, "priority": 7, "action": "allow", "match": {"ip_src": "10.0.0.1/8"}}]),
            "[0].match.ip_src",
        ),
        (
            json!([{"id": 1, "priority": 7, "action": "allow", "colour": "red"}]),
            "[0].colour",
        ),
        (json!([{"priority": 7, "action": "allow"}]), "[0].id"),
        (
            json!([{"id": 1, "priority": 7, "action": "allow"}, {"id": 2, "priority": 7, "action": "deny"}]),
            "[1].priority",
        ),
        (json!({"id": 1}), "rules file"),
    ];
    for (file, needle) in cases {
        let store = MemoryStore::default();
        let path = write(&dir, file.clone());
        let err = load(&store, Some(&path)).expect_err("refused");
        let text = format!("{err:#}");
        assert!(text.contains(needle), "{file}: {text}");
        assert!(
            store.list_prefix("firewall/").expect("list").is_empty(),
            "nothing stored"
        );
    }
    let err = load(
        &MemoryStore::default(),
        Some(&dir.path().join("missing.json")),
    )
    .expect_err("missing file");
    assert!(format!("{err:#}").contains("missing.json"));
}

#[test]
fn a_file_rule_overlapping_a_stored_rule_is_refused() {
    let store = MemoryStore::default();
    let stored =
        rule(json!({"id": 1, "priority": 5, "action": "deny", "match": {"ip_proto": "tcp"}}));
    store
        .apply(vec![put_rule(&stored).expect("op")])
        .expect("stored");
    let dir = tempfile::tempdir().expect("tmp");
    let path = write(&dir, json!([{"id": 9, "priority": 5, "action": "allow"}]));
    let err = load(&store, Some(&path)).expect_err("overlap");
    assert!(format!("{err:#}").contains("rule 1"), "{err:#}");
    assert!(store.get(&rule_key(9)).expect("get").is_none());
}
