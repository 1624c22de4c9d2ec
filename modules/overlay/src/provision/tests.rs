use super::*;
use flowgate_controller::ovsdb::{InterfaceView, PortView};

fn config() -> ProvisionConfig {
    ProvisionConfig::default()
}

fn iface(name: &str, kind: &str, ids: &[(&str, &str)], options: &[(&str, &str)]) -> PortView {
    let map = |kv: &[(&str, &str)]| {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    PortView {
        uuid: format!("port-{name}"),
        name: name.into(),
        external_ids: Default::default(),
        interfaces: vec![InterfaceView {
            uuid: format!("iface-{name}"),
            name: name.into(),
            kind: kind.into(),
            ofport: Some(1),
            options: map(options),
            external_ids: map(ids),
            ..Default::default()
        }],
        qos: None,
    }
}

fn host(bridge: Option<BridgeView>) -> HostView {
    HostView {
        root_uuid: Some("root".into()),
        external_ids: Default::default(),
        bridges: [
            Some(BridgeView {
                uuid: "phy".into(),
                name: "br-phy".into(),
                datapath_type: "netdev".into(),
                ..Default::default()
            }),
            bridge,
        ]
        .into_iter()
        .flatten()
        .collect(),
        ..Default::default()
    }
}

fn ready_bridge(ports: Vec<PortView>) -> BridgeView {
    BridgeView {
        uuid: "int".into(),
        name: "br-int".into(),
        datapath_id: Some(0xc001),
        datapath_type: "netdev".into(),
        fail_mode: Some("secure".into()),
        protocols: vec!["OpenFlow13".into()],
        controllers: vec![flowgate_controller::ovsdb::view::ControllerView {
            target: "tcp:198.18.0.254:6653".into(),
            is_connected: true,
        }],
        ports,
        ..Default::default()
    }
}

const CTL: Option<&str> = Some("tcp:198.18.0.254:6653");

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn peers() -> BTreeMap<String, IpAddr> {
    [
        ("h1", "198.18.0.11"),
        ("h2", "198.18.0.12"),
        ("h3", "198.18.0.13"),
    ]
    .into_iter()
    .map(|(h, a)| (h.to_owned(), ip(a)))
    .collect()
}

fn tunnel(peer: &str, remote: &str) -> PortView {
    iface(
        &tunnel_name(ip(remote)),
        "vxlan",
        &[(PEER_KEY, peer)],
        &[
            ("key", "flow"),
            ("local_ip", "198.18.0.11"),
            ("remote_ip", remote),
        ],
    )
}

fn ops_of(plan: &[Value]) -> Vec<String> {
    plan.iter()
        .map(|o| {
            format!(
                "{} {}",
                o["op"].as_str().unwrap(),
                o["table"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[test]
fn a_missing_integration_bridge_is_created_like_the_others() {
    let plan = plan(
        &host(None),
        "h1",
        Some(ip("198.18.0.11")),
        &peers(),
        CTL,
        &config(),
        false,
    );
    assert_eq!(
        ops_of(&plan),
        [
            "insert Interface",
            "insert Port",
            "insert Controller",
            "insert Bridge",
            "mutate Open_vSwitch"
        ]
    );
    let bridge = &plan[3]["row"];
    assert_eq!(bridge["datapath_type"], "netdev");
    assert_eq!(bridge["fail_mode"], "secure");
    assert_eq!(bridge["protocols"], "OpenFlow13");
    assert_eq!(plan[2]["row"]["target"], "tcp:198.18.0.254:6653");
}

#[test]
fn bridge_settings_are_fixed_and_tunnels_added_per_peer() {
    let mut br = ready_bridge(vec![iface("vm1", "", &[("iface-id", "vm1")], &[])]);
    br.fail_mode = None;
    br.protocols = vec!["OpenFlow10".into()];
    br.controllers.clear();
    let plan = plan(
        &host(Some(br)),
        "h1",
        Some(ip("198.18.0.11")),
        &peers(),
        CTL,
        &config(),
        false,
    );
    let kinds = ops_of(&plan);
    assert_eq!(kinds[0], "insert Controller");
    assert_eq!(kinds[1], "update Bridge");
    let row = &plan[1]["row"];
    assert_eq!(row["fail_mode"], "secure");
    assert_eq!(
        row["protocols"],
        serde_json::json!(["set", ["OpenFlow10", "OpenFlow13"]])
    );
    // Two peers: interface, port, bridge mutation each.
    assert_eq!(kinds.len(), 2 + 6);
    let tun = &plan[2]["row"];
    assert_eq!(tun["name"], "fgt-c612000c");
    assert_eq!(tun["type"], "vxlan");
    assert_eq!(
        tun["options"],
        serde_json::json!([
            "map",
            [
                ["key", "flow"],
                ["local_ip", "198.18.0.11"],
                ["remote_ip", "198.18.0.12"]
            ]
        ])
    );
}

#[test]
fn nothing_to_do_when_everything_is_in_place() {
    let br = ready_bridge(vec![
        tunnel("h2", "198.18.0.12"),
        tunnel("h3", "198.18.0.13"),
    ]);
    assert!(plan(
        &host(Some(br)),
        "h1",
        Some(ip("198.18.0.11")),
        &peers(),
        CTL,
        &config(),
        false
    )
    .is_empty());
}

#[test]
fn departed_and_changed_peers_lose_their_tunnels() {
    let br = ready_bridge(vec![
        tunnel("h2", "198.18.0.12"),
        tunnel("h3", "198.18.0.13"),
    ]);
    let mut peers = peers();
    peers.remove("h3");
    peers.insert("h2".into(), ip("198.18.0.22"));
    let plan = plan(
        &host(Some(br.clone())),
        "h1",
        Some(ip("198.18.0.11")),
        &peers,
        CTL,
        &config(),
        false,
    );
    let kinds = ops_of(&plan);
    assert_eq!(
        kinds,
        [
            "mutate Bridge",
            "mutate Bridge",
            "insert Interface",
            "insert Port",
            "mutate Bridge"
        ]
    );
    assert_eq!(plan[0]["mutations"][0][1], "delete");
    // Right after a controller start, unknown peers keep their tunnels.
    let mut only_h2 = BTreeMap::new();
    only_h2.insert("h2".to_owned(), ip("198.18.0.12"));
    assert!(plan_keep(&br, &only_h2).is_empty());
    // Geneve selected: every tunnel is replaced.
    let geneve = ProvisionConfig {
        tunnel_type: TunnelType::Geneve,
        ..config()
    };
    let plan = super::plan(
        &host(Some(br)),
        "h1",
        Some(ip("198.18.0.11")),
        &super::tests::peers(),
        CTL,
        &geneve,
        false,
    );
    assert_eq!(
        plan.iter().filter(|o| o["row"]["type"] == "geneve").count(),
        2
    );
}

fn plan_keep(br: &BridgeView, peers: &BTreeMap<String, IpAddr>) -> Vec<Value> {
    plan(
        &host(Some(br.clone())),
        "h1",
        Some(ip("198.18.0.11")),
        peers,
        CTL,
        &config(),
        true,
    )
}

#[test]
fn tunnel_names_fit_linux() {
    assert_eq!(tunnel_name(ip("10.0.0.2")), "fgt-0a000002");
    let v6 = tunnel_name(ip("fd00::2"));
    assert!(v6.len() <= 15 && v6.starts_with("fgt-"), "{v6}");
    assert_ne!(v6, tunnel_name(ip("fd00::3")));
}

#[test]
fn the_grace_period_counts_from_the_round_that_finds_a_host_gone() {
    let grace = Duration::from_secs(3);
    let last_seen = Instant::now();
    let noticed = last_seen + Duration::from_millis(900);
    let gone = Presence::Present.unconfirmed(noticed);
    assert_eq!(gone, Presence::GoneSince(noticed));
    // Later rounds keep the first notice.
    assert_eq!(gone.unconfirmed(noticed + Duration::from_secs(1)), gone);
    assert!(
        !gone.expired(last_seen + grace, grace),
        "expired counting from the last sighting"
    );
    assert!(!gone.expired(noticed + grace - Duration::from_millis(1), grace));
    assert!(gone.expired(noticed + grace, grace));
    assert!(!Presence::Present.expired(noticed + grace * 10, grace));
}
