use super::*;

fn input(tenant: &str) -> NetworkInput {
    NetworkInput {
        tenant: tenant.into(),
        ..Default::default()
    }
}

fn with_blue() -> Config {
    let mut c = Config::default();
    let blue = c
        .validate_network(
            NetworkInput {
                id: Some("blue".into()),
                vni: Some(100),
                subnet: Some("10.0.0.0/24".into()),
                ..input("acme")
            },
            None,
        )
        .unwrap();
    c.networks.insert(blue.id.clone(), blue);
    c
}

fn field(e: Invalid) -> (&'static str, String) {
    match e {
        Invalid::Bad { field, .. } => ("bad", field),
        Invalid::Conflict { field, .. } => ("conflict", field),
        Invalid::Missing { field, .. } => ("missing", field),
    }
}

#[test]
fn vni_and_id_are_allocated_when_absent() {
    let c = with_blue();
    let n = c.validate_network(input("acme"), None).unwrap();
    assert_eq!(n.id, "net-1");
    assert_eq!(n.vni, FIRST_AUTO_VNI);
    assert_eq!(n.name, "net-1");
}

#[test]
fn network_errors_name_the_field() {
    let c = with_blue();
    let cases: Vec<(NetworkInput, (&str, &str))> = vec![
        (
            NetworkInput {
                vni: Some(100),
                ..input("x")
            },
            ("conflict", "vni"),
        ),
        (
            NetworkInput {
                vni: Some(0),
                ..input("x")
            },
            ("bad", "vni"),
        ),
        (
            NetworkInput {
                vni: Some(1 << 24),
                ..input("x")
            },
            ("bad", "vni"),
        ),
        (input(" "), ("bad", "tenant")),
        (
            NetworkInput {
                id: Some("a b".into()),
                ..input("x")
            },
            ("bad", "id"),
        ),
        (
            NetworkInput {
                subnet: Some("10.0.0.0/33".into()),
                ..input("x")
            },
            ("bad", "subnet"),
        ),
        (
            NetworkInput {
                subnet: Some("10.0.0.0".into()),
                ..input("x")
            },
            ("bad", "subnet"),
        ),
        (
            NetworkInput {
                gateway: Some("10.0.0.1".into()),
                ..input("x")
            },
            ("bad", "gateway"),
        ),
        (
            NetworkInput {
                subnet: Some("10.0.0.0/24".into()),
                gateway: Some("10.0.1.1".into()),
                ..input("x")
            },
            ("bad", "gateway"),
        ),
    ];
    for (i, (bad, (kind, name))) in cases.into_iter().enumerate() {
        let (k, f) = field(c.validate_network(bad, None).unwrap_err());
        assert_eq!((k, f.as_str()), (kind, name), "case {i}");
    }
    // The URL's id and the body's must agree.
    let (k, f) = field(
        c.validate_network(
            NetworkInput {
                id: Some("x".into()),
                ..input("x")
            },
            Some("y"),
        )
        .unwrap_err(),
    );
    assert_eq!((k, f.as_str()), ("bad", "id"));
    // Replacing blue keeps its VNI.
    assert_eq!(
        c.validate_network(input("acme"), Some("blue")).unwrap().vni,
        100
    );
}

fn port_input(iface: &str) -> PortInput {
    PortInput {
        iface_id: Some(iface.into()),
        ..Default::default()
    }
}

#[test]
fn port_errors_name_the_field() {
    let mut c = with_blue();
    let p = c
        .validate_port(
            "blue",
            PortInput {
                mac: Some("02:00:00:00:00:01".into()),
                ips: Some(vec!["10.0.0.1".into()]),
                ..port_input("vm1")
            },
            None,
        )
        .unwrap();
    assert_eq!(p.id, "vm1");
    c.ports.insert(("blue".into(), "vm1".into()), p);
    let cases: Vec<(&str, PortInput, (&str, &str))> = vec![
        ("nope", port_input("vm2"), ("missing", "network")),
        (
            "blue",
            PortInput {
                id: Some("other".into()),
                ..port_input("vm1")
            },
            ("conflict", "iface_id"),
        ),
        ("blue", PortInput::default(), ("bad", "iface_id")),
        (
            "blue",
            PortInput {
                switch: Some(SwitchPortInput {
                    dpid: "1".into(),
                    port: "s1-eth1".into(),
                }),
                ..port_input("vm2")
            },
            ("bad", "switch"),
        ),
        (
            "blue",
            PortInput {
                iface_id: None,
                switch: Some(SwitchPortInput {
                    dpid: "zz".into(),
                    port: "s1-eth1".into(),
                }),
                ..Default::default()
            },
            ("bad", "switch.dpid"),
        ),
        (
            "blue",
            PortInput {
                mac: Some("01:00:00:00:00:01".into()),
                ..port_input("vm2")
            },
            ("bad", "mac"),
        ),
        (
            "blue",
            PortInput {
                mac: Some("nope".into()),
                ..port_input("vm2")
            },
            ("bad", "mac"),
        ),
        (
            "blue",
            PortInput {
                mac: Some("02:00:00:00:00:01".into()),
                ..port_input("vm2")
            },
            ("conflict", "mac"),
        ),
        (
            "blue",
            PortInput {
                ips: Some(vec!["10.0.0.1".into()]),
                ..port_input("vm2")
            },
            ("conflict", "ips"),
        ),
        (
            "blue",
            PortInput {
                ips: Some(vec!["10.0.1.1".into()]),
                ..port_input("vm2")
            },
            ("bad", "ips[0]"),
        ),
        (
            "blue",
            PortInput {
                ips: Some(vec!["x".into()]),
                ..port_input("vm2")
            },
            ("bad", "ips[0]"),
        ),
    ];
    for (i, (net, bad, (kind, name))) in cases.into_iter().enumerate() {
        let (k, f) = field(c.validate_port(net, bad, None).unwrap_err());
        assert_eq!((k, f.as_str()), (kind, name), "case {i}");
    }
    // Replacing vm1 itself is not a conflict with itself.
    assert!(c
        .validate_port(
            "blue",
            PortInput {
                ips: Some(vec!["10.0.0.1".into()]),
                ..port_input("vm1")
            },
            Some("vm1")
        )
        .is_ok());
    // A subnet change that would leave vm1 outside is refused.
    let (k, f) = field(
        c.validate_network(
            NetworkInput {
                subnet: Some("10.9.0.0/16".into()),
                ..input("acme")
            },
            Some("blue"),
        )
        .unwrap_err(),
    );
    assert_eq!((k, f.as_str()), ("conflict", "subnet"));
}

#[test]
fn switch_bindings_default_their_id() {
    let c = with_blue();
    let p = c
        .validate_port(
            "blue",
            PortInput {
                switch: Some(SwitchPortInput {
                    dpid: "00:00:00:00:00:00:00:1f".into(),
                    port: "s1-eth2".into(),
                }),
                ..Default::default()
            },
            None,
        )
        .unwrap();
    assert_eq!(p.id, "1f-s1-eth2");
    assert_eq!(
        serde_json::to_value(&p.binding).unwrap(),
        serde_json::json!({"switch": {"dpid": "00:00:00:00:00:00:00:1f", "port": "s1-eth2"}})
    );
}

#[test]
fn cidr_contains() {
    let v4: Cidr = "10.0.0.0/24".parse().unwrap();
    assert!(v4.contains("10.0.0.255".parse().unwrap()));
    assert!(!v4.contains("10.0.1.0".parse().unwrap()));
    assert!(!v4.contains("::1".parse().unwrap()));
    let all: Cidr = "0.0.0.0/0".parse().unwrap();
    assert!(all.contains("192.0.2.1".parse().unwrap()));
    let v6: Cidr = "fd00::/64".parse().unwrap();
    assert!(v6.contains("fd00::5".parse().unwrap()));
    assert!(!v6.contains("fd01::5".parse().unwrap()));
    assert_eq!(v6.to_string(), "fd00::/64");
}

#[test]
fn stored_shapes_round_trip() {
    let c = with_blue();
    let n = &c.networks["blue"];
    let json = serde_json::to_value(n).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"id":"blue","name":"blue","tenant":"acme","vni":100,"subnet":"10.0.0.0/24"})
    );
    assert_eq!(&serde_json::from_value::<Network>(json).unwrap(), n);
}
