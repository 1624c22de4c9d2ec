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

#[test]
fn subnets_are_written_without_host_bits() {
    let c = Config::default();
    let (k, f) = field(
        c.validate_network(
            NetworkInput {
                subnet: Some("10.0.0.1/24".into()),
                ..input("x")
            },
            None,
        )
        .unwrap_err(),
    );
    assert_eq!((k, f.as_str()), ("bad", "subnet"));
    let Err(Invalid::Bad { reason, .. }) = c.validate_network(
        NetworkInput {
            subnet: Some("2001:db8::1/64".into()),
            ..input("x")
        },
        None,
    ) else {
        panic!("IPv6 host bits accepted");
    };
    assert!(reason.contains("did you mean 2001:db8::/64"), "{reason}");
    for ok in ["10.0.0.0/24", "10.0.0.7/32", "0.0.0.0/0", "2001:db8::/64"] {
        let n = NetworkInput {
            subnet: Some(ok.into()),
            ..input("x")
        };
        assert!(c.validate_network(n, None).is_ok(), "{ok}");
    }
}

#[test]
fn network_and_broadcast_addresses_are_no_port_addresses() {
    let c = with_blue();
    for (ip, ok) in [
        ("10.0.0.0", false),
        ("10.0.0.255", false),
        ("10.0.0.1", true),
        ("10.0.0.254", true),
    ] {
        let port = PortInput {
            ips: Some(vec![ip.into()]),
            ..port_input("vm9")
        };
        match c.validate_port("blue", port, None) {
            Ok(_) => assert!(ok, "{ip} accepted"),
            Err(e) => {
                assert!(!ok, "{ip} refused: {e:?}");
                assert_eq!(field(e), ("bad", "ips[0]".into()));
            }
        }
    }
    // Nor the gateway.
    let gw = NetworkInput {
        subnet: Some("10.1.0.0/24".into()),
        gateway: Some("10.1.0.255".into()),
        ..input("x")
    };
    assert_eq!(
        field(c.validate_network(gw, None).unwrap_err()),
        ("bad", "gateway".into())
    );
    // A /31 or a /32 has neither.
    let tiny = Cidr::from_str("10.2.0.0/31").unwrap();
    assert_eq!(tiny.reserved("10.2.0.0".parse().unwrap()), None);
    let v6 = Cidr::from_str("2001:db8::/64").unwrap();
    assert!(v6.reserved("2001:db8::".parse().unwrap()).is_some());
    assert_eq!(
        v6.reserved("2001:db8::ffff:ffff:ffff:ffff".parse().unwrap()),
        None
    );
}

#[test]
fn vnis_sharing_a_fabric_vlan_are_refused() {
    let c = with_blue();
    let clash = NetworkInput {
        vni: Some(100 + 2047),
        ..input("x")
    };
    let Err(Invalid::Conflict { field, reason }) = c.validate_network(clash, None) else {
        panic!("a VNI on blue's VLAN was accepted");
    };
    assert_eq!(field, "vni");
    assert!(reason.contains("\"blue\""), "{reason}");
    // Blue itself keeps its VNI, and allocation skips taken VLANs.
    assert!(c.validate_network(input("acme"), Some("blue")).is_ok());
    let mut c = Config::default();
    let first = c.validate_network(input("a"), None).unwrap();
    c.networks.insert(first.id.clone(), first);
    let taken = FIRST_AUTO_VNI + 1 + 2047;
    let second = c
        .validate_network(
            NetworkInput {
                vni: Some(taken),
                ..input("b")
            },
            None,
        )
        .unwrap();
    c.networks.insert(second.id.clone(), second);
    // FIRST_AUTO_VNI + 1 shares its VLAN with `taken`.
    assert_eq!(c.free_vni(), Some(FIRST_AUTO_VNI + 2));
}
