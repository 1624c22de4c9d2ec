use serde_json::json;

use super::*;

fn rule(v: serde_json::Value) -> Result<Rule, String> {
    let rule: Rule = serde_json::from_value(v).map_err(|e| e.to_string())?;
    rule.validate()
        .map_err(|e| format!("{}: {}", e.field, e.reason))?;
    Ok(rule)
}

#[test]
fn metrics_parse_and_print_back() {
    for text in [
        "load_one",
        "gmond:cpu_idle",
        "switch:rx_bps",
        "switch:tx_pps",
        "switch:firewall_pps:12",
    ] {
        let m: Metric = text.parse().unwrap();
        assert_eq!(m.to_string(), text);
    }
    assert_eq!(
        "ganglia:load_one".parse::<Metric>().unwrap(),
        Metric::Rrd("load_one".into())
    );
    assert!("switch:rx_bits"
        .parse::<Metric>()
        .unwrap_err()
        .contains("rx_bps"));
    assert!(
        "../etc".parse::<Metric>().is_err(),
        "metric names are file names"
    );
    assert!("switch:firewall_pps:0".parse::<Metric>().is_err());
}

#[test]
fn rules_are_checked_field_by_field() {
    let base = json!({"hosts": {"host": "web1"}, "metric": "load_one", "comparator": ">",
                      "threshold": 4.0, "action": {"type": "rate_limit", "kbps": 1000}});
    let with = |k: &str, v: serde_json::Value| {
        let mut r = base.clone();
        r[k] = v;
        rule(r)
    };
    let ok = rule(base.clone()).unwrap();
    assert_eq!(
        (ok.for_polls, ok.interval_s, ok.enabled),
        (1, 10, true),
        "defaults"
    );
    assert!(with("clear", json!(5.0))
        .unwrap_err()
        .starts_with("clear: must be at most"));
    assert!(with("for", json!(0)).unwrap_err().starts_with("for:"));
    assert!(with("interval_s", json!(0))
        .unwrap_err()
        .starts_with("interval_s:"));
    assert!(with("priority", json!(501))
        .unwrap_err()
        .starts_with("priority:"));
    assert!(with("hosts", json!({})).unwrap_err().starts_with("hosts:"));
    assert!(with("action", json!({"type": "rate_limit", "kbps": 0}))
        .unwrap_err()
        .starts_with("action.kbps"));
    assert!(with("action", json!({"type": "lb_weight", "factor": 1.5}))
        .unwrap_err()
        .starts_with("action.factor"));
    assert!(with("action", json!({"type": "lb_drain", "pool": "a/b"}))
        .unwrap_err()
        .starts_with("action.pool"));
    assert!(with("action", json!({"type": "lb_drain"})).is_ok());
    assert!(with(
        "action",
        json!({"type": "block", "match": {"dst_port": 80}})
    )
    .unwrap_err()
    .starts_with("action.match."));
    assert!(with("metric", json!("switch:rx_bps")).is_ok());
    let mut switch_window = base.clone();
    switch_window["metric"] = json!("switch:rx_bps");
    switch_window["window_s"] = json!(60);
    assert!(rule(switch_window).unwrap_err().starts_with("window_s:"));
    assert!(with("comparator", json!("=>")).is_err());
    assert!(with("revert", json!({"type": "after", "seconds": 0}))
        .unwrap_err()
        .starts_with("revert.seconds"));
    // A variant without fields takes no other key either (as the OpenAPI
    // document says); its answer is the tag alone.
    for (field, value) in [
        ("action", json!({"type": "notify", "extra": 1})),
        ("action", json!({"type": "lb_drain", "factor": 0.5})),
        ("revert", json!({"type": "never", "seconds": 1})),
    ] {
        assert!(with(field, value.clone()).is_err(), "{value}");
    }
    let notify = with("action", json!({"type": "notify"})).unwrap();
    assert_eq!(
        serde_json::to_value(&notify.action).unwrap(),
        json!({"type": "notify"})
    );
}

#[test]
fn recovery_uses_the_clear_threshold_or_the_threshold() {
    let r = rule(
        json!({"hosts": {"host": "a"}, "metric": "load_one", "comparator": ">=",
                        "threshold": 4.0, "action": {"type": "notify"}}),
    )
    .unwrap();
    assert!(r.breached(4.0) && !r.recovered(4.0) && r.recovered(3.9));
    let r = Rule {
        clear: Some(2.0),
        ..r
    };
    assert!(!r.recovered(3.0) && r.recovered(2.0));
}

#[test]
fn actions_on_addresses_need_every_selected_host_to_have_one() {
    let r = rule(
        json!({"hosts": {"cluster": "web"}, "metric": "load_one", "comparator": ">",
                        "threshold": 4.0, "action": {"type": "quarantine", "allow": ["10.0.0.1"]}}),
    )
    .unwrap();
    let host = |id: &str, ip: Option<&str>| MonitoredHost {
        id: id.into(),
        ganglia_name: None,
        cluster: Some("web".into()),
        ip: ip.map(|s| s.parse().unwrap()),
        mac: None,
        tenant: None,
        description: None,
    };
    assert!(r.check_hosts(&[host("a", Some("10.0.0.2"))]).is_ok());
    let err = r
        .check_hosts(&[host("a", Some("10.0.0.2")), host("b", None)])
        .unwrap_err();
    assert_eq!(err.field, "action");
    assert!(err.reason.contains("host b has no ip"), "{}", err.reason);
}

#[test]
fn host_names_are_safe_file_names() {
    let host = |id: &str| MonitoredHost {
        id: id.into(),
        ganglia_name: None,
        cluster: None,
        ip: None,
        mac: None,
        tenant: None,
        description: None,
    };
    assert!(host("web-1.example_2").validate().is_ok());
    for bad in ["", "..", "a/b", "a b", &"x".repeat(65)] {
        assert_eq!(host(bad).validate().unwrap_err().field, "id", "{bad:?}");
    }
}
