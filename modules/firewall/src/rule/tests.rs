use super::*;
use flowgate_controller::api::extract::decode_json;
use flowgate_controller::api::ApiError;
use serde_json::json;
use std::net::Ipv4Addr;

/// Decodes a rule as the REST API does; `Err((field, reason))` on failure.
fn parse(v: serde_json::Value) -> Result<Rule, (Option<String>, String)> {
    decode_json::<Rule>(v.to_string().as_bytes()).map_err(|e| match e {
        ApiError::BadRequest { field, reason } => (field, reason),
        ApiError::Invalid { field, reason } => (Some(field), reason),
        other => panic!("unexpected error {other:?}"),
    })
}

fn valid(v: serde_json::Value) -> Rule {
    let rule = parse(v).expect("parses");
    rule.validate().expect("valid");
    rule
}

/// The field a rule's validation names.
fn invalid_field(v: serde_json::Value) -> String {
    let rule = parse(v.clone()).expect("parses");
    match rule.validate() {
        Ok(types) => panic!("{v} is valid ({types:?})"),
        Err(e) => e.field,
    }
}

#[test]
fn full_rule_round_trips_in_canonical_form() {
    let rule = valid(json!({
        "id": 7, "priority": 100,
        "scope": {"tenant": 5, "dpid": 1, "in_port": 3},
        "match": {
            "eth_src": "00:00:00:00:00:01", "eth_dst": "00:00:00:00:00:02",
            "ip_src": "10.0.0.0/24", "ip_dst": "10.0.1.5",
            "ip_proto": 6, "src_port": "1024-65535", "dst_port": "80"
        },
        "action": "allow-related",
        "description": "web"
    }));
    assert_eq!(rule.scope.dpid, Some(Dpid(1)));
    assert_eq!(rule.match_.dst_port, Some(PortRange { lo: 80, hi: 80 }));
    let out = serde_json::to_value(&rule).expect("serializes");
    assert_eq!(
        out,
        json!({
            "id": 7, "priority": 100,
            "scope": {"tenant": 5, "dpid": "00:00:00:00:00:00:00:01", "in_port": 3},
            "match": {
                "eth_src": "00:00:00:00:00:01", "eth_dst": "00:00:00:00:00:02",
                "ip_src": "10.0.0.0/24", "ip_dst": "10.0.1.5",
                "ip_proto": "tcp", "src_port": "1024-65535", "dst_port": 80
            },
            "action": "allow-related",
            "description": "web"
        })
    );
    // What is served parses back to the same rule.
    assert_eq!(valid(out), rule);
}

#[test]
fn minimal_rule_and_alternative_spellings() {
    let rule = valid(json!({"id": 1, "priority": 1, "action": "deny"}));
    assert!(rule.scope.is_empty());
    assert_eq!(rule.match_, PacketMatch::default());
    assert_eq!(
        serde_json::to_value(&rule).expect("json"),
        json!({"id": 1, "priority": 1, "match": {}, "action": "deny"})
    );
    let rule = valid(json!({
        "id": 2, "priority": 5, "action": "allow",
        "scope": {"dpid": "0x1f"},
        "match": {"eth_type": "0x86dd", "ip_proto": "UDP", "dst_port": 53}
    }));
    assert_eq!(rule.scope.dpid, Some(Dpid(0x1f)));
    assert_eq!(rule.match_.eth_type, Some(EthType(0x86dd)));
    assert_eq!(rule.match_.ip_proto, Some(IpProto(PROTO_UDP)));
    assert_eq!(
        rule.eth_types(),
        EthTypes::Ip {
            v4: false,
            v6: true
        }
    );
}

#[test]
fn malformed_values_name_their_field() {
    let cases = [
        (
            json!({"ip_src": "10.0.0.300/24"}),
            "match.ip_src",
            "invalid IP",
        ),
        (
            json!({"ip_src": "10.0.0.1/24"}),
            "match.ip_src",
            "10.0.0.0/24",
        ),
        (
            json!({"ip_dst": "10.0.0.0/33"}),
            "match.ip_dst",
            "prefix length",
        ),
        (json!({"ip_dst": 5}), "match.ip_dst", "expected a string"),
        (
            json!({"dst_port": "90-80"}),
            "match.dst_port",
            "start after end",
        ),
        (json!({"dst_port": 70000}), "match.dst_port", "invalid port"),
        (
            json!({"src_port": "http"}),
            "match.src_port",
            "invalid port",
        ),
        (
            json!({"ip_proto": "tcpp"}),
            "match.ip_proto",
            "unknown IP protocol",
        ),
        (
            json!({"eth_src": "00:00:00:00:00"}),
            "match.eth_src",
            "invalid MAC",
        ),
        (
            json!({"eth_type": "0xzz"}),
            "match.eth_type",
            "invalid ethertype",
        ),
        (
            json!({"ip_source": "10.0.0.1"}),
            "match.ip_source",
            "unknown field",
        ),
    ];
    for (m, field, reason) in cases {
        let (f, r) = parse(json!({"id": 1, "priority": 1, "action": "allow", "match": m}))
            .expect_err("rejected");
        assert_eq!(f.as_deref(), Some(field), "{r}");
        assert!(r.contains(reason), "{field}: {r}");
    }
    let (f, _) =
        parse(json!({"id": 1, "priority": 1, "action": "permit"})).expect_err("bad action");
    assert_eq!(f.as_deref(), Some("action"));
    let (f, _) = parse(json!({"id": 1, "priority": 1, "action": "allow", "scope": {"dpid": "zz"}}))
        .expect_err("bad dpid");
    assert_eq!(f.as_deref(), Some("scope.dpid"));
    let (f, _) = parse(json!({"id": 1, "priority": 1, "action": "allow", "extra": 1}))
        .expect_err("unknown field");
    assert_eq!(f.as_deref(), Some("extra"));
}

#[test]
fn contradictions_name_their_field() {
    let rule =
        |m: serde_json::Value| json!({"id": 1, "priority": 10, "action": "allow", "match": m});
    let cases = [
        (
            rule(json!({"ip_proto": "icmp", "dst_port": 80})),
            "match.dst_port",
        ),
        (rule(json!({"src_port": 80})), "match.src_port"),
        (
            rule(json!({"ip_proto": "tcp", "icmp_type": 8})),
            "match.icmp_type",
        ),
        (rule(json!({"icmp_code": 0})), "match.icmp_code"),
        (
            rule(json!({"ip_src": "10.0.0.0/8", "ip_dst": "2001:db8::/32"})),
            "match.ip_dst",
        ),
        (
            rule(json!({"ip_src": "2001:db8::/32", "ip_proto": "icmp"})),
            "match.ip_proto",
        ),
        (
            rule(json!({"eth_type": 2048, "ip_dst": "2001:db8::1"})),
            "match.eth_type",
        ),
        (
            rule(json!({"eth_type": "0x8847", "ip_proto": 6})),
            "match.ip_proto",
        ),
        (rule(json!({"eth_type": "0x0806"})), "match.eth_type"),
        (rule(json!({"eth_type": 35020})), "match.eth_type"),
        (json!({"id": 0, "priority": 10, "action": "allow"}), "id"),
        (
            json!({"id": 1, "priority": 0, "action": "allow"}),
            "priority",
        ),
        (
            json!({"id": 1, "priority": 30001, "action": "allow"}),
            "priority",
        ),
        (
            json!({"id": 1, "priority": 1, "action": "allow", "scope": {"tenant": 0}}),
            "scope.tenant",
        ),
        (
            json!({"id": 1, "priority": 1, "action": "allow", "scope": {"tenant": 16777216}}),
            "scope.tenant",
        ),
        (
            json!({"id": 1, "priority": 1, "action": "allow", "scope": {"in_port": 0}}),
            "scope.in_port",
        ),
        (
            json!({"id": 1, "priority": 1, "action": "allow-related", "match": {"eth_type": "0x8847"}}),
            "action",
        ),
        (
            // 1-65534 is 30 blocks each way: 900 flows per IP version.
            rule(json!({"ip_proto": "tcp", "src_port": "1-65534", "dst_port": "1-65534"})),
            "match",
        ),
    ];
    for (v, field) in cases {
        assert_eq!(invalid_field(v.clone()), field, "{v}");
    }
}

#[test]
fn ethertypes_follow_from_the_match() {
    let types = |m: serde_json::Value, action: &str| {
        valid(json!({"id": 1, "priority": 1, "action": action, "match": m})).eth_types()
    };
    let both = EthTypes::Ip { v4: true, v6: true };
    let v4 = EthTypes::Ip {
        v4: true,
        v6: false,
    };
    let v6 = EthTypes::Ip {
        v4: false,
        v6: true,
    };
    assert_eq!(types(json!({}), "allow"), EthTypes::Any);
    assert_eq!(types(json!({}), "allow-related"), both);
    assert_eq!(types(json!({"ip_proto": "tcp"}), "deny"), both);
    assert_eq!(types(json!({"ip_proto": "icmp"}), "deny"), v4);
    assert_eq!(types(json!({"ip_proto": 58}), "deny"), v6);
    assert_eq!(types(json!({"ip_dst": "10.0.0.1"}), "deny"), v4);
    assert_eq!(types(json!({"eth_type": 34525}), "deny"), v6);
    assert_eq!(
        types(json!({"eth_type": "0x8847"}), "deny"),
        EthTypes::Other(0x8847)
    );
}

#[test]
fn port_ranges_become_aligned_blocks() {
    let blocks = |lo, hi| PortRange { lo, hi }.blocks();
    assert_eq!(blocks(80, 80), vec![(80, 0xffff)]);
    assert_eq!(blocks(0, 65535), vec![(0, 0)]);
    assert_eq!(
        blocks(1024, 65535),
        vec![
            (1024, 0xfc00),
            (2048, 0xf800),
            (4096, 0xf000),
            (8192, 0xe000),
            (16384, 0xc000),
            (32768, 0x8000),
        ]
    );
    assert_eq!(blocks(1000, 1999).len(), 7);
    // Every port in the range is covered exactly once, none outside.
    for (lo, hi) in [(1, 1), (3, 17), (1000, 1999), (65530, 65535), (0, 1)] {
        let b = blocks(lo, hi);
        for port in lo.saturating_sub(3)..=hi.saturating_add(3) {
            let hits = b.iter().filter(|(v, m)| port & m == *v).count();
            let inside = (lo..=hi).contains(&port);
            assert_eq!(hits, usize::from(inside), "port {port} in {lo}-{hi}: {b:?}");
        }
        // Values carry no bits outside their mask.
        assert!(b.iter().all(|(v, m)| v & !m == 0));
    }
}

#[test]
fn cidr_helpers() {
    let c = |s: &str| s.parse::<Cidr>().expect("cidr");
    assert!(c("10.0.0.0/8").intersects(c("10.1.2.3")));
    assert!(!c("10.0.0.0/16").intersects(c("10.1.0.0/16")));
    assert!(c("0.0.0.0/0").intersects(c("192.168.0.0/16")));
    assert!(!c("10.0.0.0/8").intersects(c("::/0")));
    assert!(c("2001:db8::/32").intersects(c("2001:db8:1::/48")));
    assert_eq!(
        c("10.1.0.0/16").v4(),
        Some((
            Ipv4Addr::new(10, 1, 0, 0),
            Some(Ipv4Addr::new(255, 255, 0, 0))
        ))
    );
    assert_eq!(c("10.1.0.1").v4(), Some((Ipv4Addr::new(10, 1, 0, 1), None)));
    assert_eq!(
        c("2001:db8::/32").v6().map(|(_, m)| m),
        Some(Some("ffff:ffff::".parse().expect("v6")))
    );
    assert_eq!(c("10.1.0.1").to_string(), "10.1.0.1");
    assert_eq!(c("2001:db8::/32").to_string(), "2001:db8::/32");
    assert!(c("0.0.0.0/0").is_any());
    assert!("2001:db8::1/64".parse::<Cidr>().is_err());
}
