use super::*;
use flowgate_controller::api::extract::decode_json;
use flowgate_controller::api::ApiError;
use serde_json::json;

fn parse<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, String> {
    decode_json::<T>(v.to_string().as_bytes()).map_err(|e| match e {
        ApiError::BadRequest { field: Some(f), .. } => f,
        other => other.to_string(),
    })
}

fn policy(v: serde_json::Value) -> Policy {
    parse(v).expect("policy parses")
}

fn invalid_field(p: &Policy) -> String {
    p.validate().expect_err("invalid").field
}

#[test]
fn a_full_policy_round_trips() {
    let v = json!({"id": 3, "name": "backup", "priority": 100,
        "match": {"ip_src": "10.0.0.1", "ip_proto": "tcp", "dst_port": "5000-5999", "dscp": 10},
        "tenant": 7, "in_port": 2,
        "actions": {"queue": {"id": 1, "port": "s1-eth2"},
                    "meter": {"rate": 2000, "unit": "kbps", "burst": 200, "band": {"dscp_remark": {"prec_level": 1}}},
                    "dscp": 46},
        "placement": {"switch": "00:00:00:00:00:00:00:01"}});
    let p = policy(v.clone());
    assert_eq!(p.placement, Placement::Switch(Dpid(1)));
    assert_eq!(serde_json::to_value(&p).unwrap(), v);
    assert!(policy(json!({"priority": 1, "actions": {"dscp": 0}})).placement == Placement::All);
    let path = policy(json!({"priority": 1, "actions": {"dscp": 0},
        "placement": {"path": {"src": "10.0.0.1", "dst": "00:00:00:00:00:02"}}}));
    assert!(matches!(path.placement, Placement::Path(_)));
}

#[test]
fn malformed_values_name_their_field() {
    assert_eq!(
        parse::<Policy>(json!({"priority": 1, "actions": {}, "placement": "everywhere"}))
            .unwrap_err(),
        "placement"
    );
    assert_eq!(
        parse::<Policy>(json!({"priority": 1, "actions": {"meter": {"rate": 1, "unit": "mbps"}}}))
            .unwrap_err(),
        "actions.meter.unit"
    );
    assert_eq!(
        parse::<Profile>(json!({"id": "p", "type": "linux-fq", "max_rate": 1})).unwrap_err(),
        "type"
    );
}

#[test]
fn contradictions_name_their_field() {
    let base = json!({"id": 1, "priority": 10, "actions": {"dscp": 1}});
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = base.clone();
        f(&mut v);
        policy(v)
    };
    assert!(with(&|_| {}).validate().is_ok());
    assert_eq!(
        invalid_field(&with(&|v| v["priority"] = json!(0))),
        "priority"
    );
    assert_eq!(
        invalid_field(&with(&|v| v["actions"] = json!({}))),
        "actions"
    );
    assert_eq!(
        invalid_field(&with(&|v| v["actions"] = json!({"meter": {"rate": 0}}))),
        "actions.meter.rate"
    );
    assert_eq!(
        invalid_field(&with(&|v| v["actions"] = json!({"dscp": 64}))),
        "actions.dscp"
    );
    assert_eq!(
        invalid_field(&with(
            &|v| v["actions"] = json!({"queue": {"id": 1, "port": "s1-eth1"}})
        )),
        "actions.queue.port"
    );
    assert_eq!(
        invalid_field(&with(&|v| v["match"] = json!({"dst_port": 80}))),
        "match.dst_port"
    );
    assert_eq!(
        invalid_field(&with(
            &|v| v["placement"] = json!({"path": {"src": "h1", "dst": "10.0.0.2"}})
        )),
        "placement.path.src"
    );
    assert_eq!(invalid_field(&with(&|v| v["tenant"] = json!(0))), "tenant");
}

#[test]
fn profiles_check_their_rates() {
    let profile = |queues: serde_json::Value| -> Profile {
        parse(json!({"id": "p", "max_rate": 10_000_000, "queues": queues})).unwrap()
    };
    assert!(profile(json!({"0": {"min_rate": 1000, "max_rate": 2000}}))
        .validate()
        .is_ok());
    assert_eq!(
        profile(json!({"1": {"min_rate": 3000, "max_rate": 2000}}))
            .validate()
            .unwrap_err()
            .field,
        "queues.1.min_rate"
    );
    assert_eq!(
        profile(json!({"1": {"max_rate": 0}}))
            .validate()
            .unwrap_err()
            .field,
        "queues.1.max_rate"
    );
    assert_eq!(
        profile(json!({"2": {"max_rate": 20_000_000}}))
            .validate()
            .unwrap_err()
            .field,
        "queues.2.max_rate"
    );
    let zero: Profile = parse(json!({"id": "p", "max_rate": 0})).unwrap();
    assert_eq!(zero.validate().unwrap_err().field, "max_rate");
    let bad_id: Profile = parse(json!({"id": "a/b", "max_rate": 1})).unwrap();
    assert_eq!(bad_id.validate().unwrap_err().field, "id");
}

#[test]
fn a_binding_names_one_target() {
    let binding = |v: serde_json::Value| -> Result<Target, String> {
        parse::<Binding>(v).unwrap().target().map_err(|e| e.field)
    };
    assert_eq!(
        binding(json!({"id": "b", "profile": "p", "dpid": 1, "port": "s1-eth1"})),
        Ok(Target::Port {
            dpid: 1,
            port: "s1-eth1".into()
        })
    );
    assert_eq!(
        binding(json!({"id": "b", "profile": "p", "dpid": "0x2", "edge": true})),
        Ok(Target::Edge { dpid: 2 })
    );
    assert_eq!(
        binding(json!({"id": "b", "profile": "p", "iface_id": "vm1"})),
        Ok(Target::IfaceId("vm1".into()))
    );
    assert_eq!(
        binding(json!({"id": "b", "profile": "p"})),
        Err("dpid".into())
    );
    assert_eq!(
        binding(json!({"id": "b", "profile": "p", "dpid": 1})),
        Err("port".into())
    );
    assert_eq!(
        binding(json!({"id": "b", "profile": "p", "dpid": 1, "port": "x", "iface_id": "vm1"})),
        Err("iface_id".into())
    );
}
