use super::*;
use flowgate_controller::ovsdb::plan::{plan, HostDesired, OwnerPolicy, Plan};
use flowgate_controller::ovsdb::view::ControllerView;
use flowgate_controller::ovsdb::{BridgeView, HostView, InterfaceView, PortView};

fn config() -> ProvisionConfig {
    ProvisionConfig::default()
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

fn wanted(peers: &BTreeMap<String, IpAddr>, config: &ProvisionConfig) -> Vec<Object> {
    objects("h1", Some(ip("198.18.0.11")), peers, CTL, config)
}

fn tunnels(objects: &[Object]) -> Vec<&PortSpec> {
    objects
        .iter()
        .filter_map(|o| match o {
            Object::Port(p) => Some(p),
            _ => None,
        })
        .collect()
}

#[test]
fn the_integration_bridge_and_a_tunnel_per_peer() {
    let objects = wanted(&peers(), &config());
    assert_eq!(
        objects[0],
        Object::Bridge(BridgeSpec {
            name: "br-int".into(),
            controller: CTL.map(str::to_owned),
        })
    );
    let tunnels = tunnels(&objects);
    let names: Vec<&str> = tunnels.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["fgt-c612000c", "fgt-c612000d"], "none to itself");
    let to_h2 = tunnels[0];
    assert_eq!(
        (to_h2.bridge.as_str(), to_h2.kind.as_str()),
        ("br-int", "vxlan")
    );
    assert_eq!(to_h2.external_ids[PEER_KEY], "h2");
    let options: Vec<(&str, &str)> = to_h2
        .options
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        options,
        [
            ("key", "flow"),
            ("local_ip", "198.18.0.11"),
            ("remote_ip", "198.18.0.12")
        ]
    );
}

#[test]
fn tunnels_need_an_underlay_address_of_the_same_family() {
    let objects = objects("h1", None, &peers(), CTL, &config());
    assert_eq!(objects.len(), 1, "the bridge only");
    let mut mixed = peers();
    mixed.insert("h6".into(), ip("fd00::6"));
    assert_eq!(tunnels(&wanted(&mixed, &config())).len(), 2);
}

#[test]
fn geneve_is_declared_when_selected() {
    let geneve = ProvisionConfig {
        tunnel_type: TunnelType::Geneve,
        ..config()
    };
    assert!(tunnels(&wanted(&peers(), &geneve))
        .iter()
        .all(|t| t.kind == "geneve"));
}

/// br-int as the previous Flowgate version left it: created untagged,
/// tunnels marked `flowgate-peer` only, a VM port.
fn previous_versions_host() -> HostView {
    let port = |name: &str, kind: &str, ids: &[(&str, &str)], options: Vec<(&str, String)>| {
        let map = |kv: Vec<(&str, String)>| {
            kv.into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect::<BTreeMap<_, _>>()
        };
        let ids = map(ids.iter().map(|(k, v)| (*k, v.to_string())).collect());
        PortView {
            uuid: format!("port-{name}"),
            name: name.into(),
            external_ids: ids.clone(),
            interfaces: vec![InterfaceView {
                uuid: format!("iface-{name}"),
                name: name.into(),
                kind: kind.into(),
                ofport: Some(1),
                options: map(options),
                external_ids: ids,
                ..Default::default()
            }],
            qos: None,
        }
    };
    let tunnel = |peer: &str, remote: &str| {
        port(
            &tunnel_name(ip(remote)),
            "vxlan",
            &[(PEER_KEY, peer)],
            vec![
                ("key", "flow".into()),
                ("local_ip", "198.18.0.11".into()),
                ("remote_ip", remote.into()),
            ],
        )
    };
    let br_int = BridgeView {
        uuid: "int".into(),
        name: "br-int".into(),
        datapath_id: Some(0xc001),
        datapath_type: "netdev".into(),
        fail_mode: Some("secure".into()),
        protocols: vec!["OpenFlow13".into()],
        controllers: vec![ControllerView {
            uuid: "ctl".into(),
            target: CTL.unwrap().into(),
            is_connected: true,
        }],
        ports: vec![
            port("br-int", "internal", &[], vec![]),
            tunnel("h2", "198.18.0.12"),
            tunnel("h3", "198.18.0.13"),
            port("vm1", "", &[("iface-id", "vm1")], vec![]),
        ],
        ..Default::default()
    };
    HostView {
        root_uuid: Some("root".into()),
        bridges: vec![br_int],
        ..Default::default()
    }
}

fn desired(objects: Vec<Object>, settled: bool) -> HostDesired {
    let mut desired = HostDesired::default();
    for object in objects {
        desired
            .objects
            .insert(object.id(), (Owner::Overlay, object));
    }
    let policy = OwnerPolicy {
        settled,
        legacy_mark: Some(PEER_KEY),
    };
    desired.owners.insert(Owner::Overlay, policy);
    desired
}

fn shape(plan: &Plan) -> Vec<String> {
    plan.ops
        .iter()
        .map(|o| {
            format!(
                "{} {}",
                o["op"].as_str().unwrap(),
                o["table"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn an_upgraded_controller_adopts_the_previous_versions_tunnels_in_place() {
    let view = previous_versions_host();
    let plan = plan(&view, &desired(wanted(&peers(), &config()), true));
    // Tags added to the two tunnels' rows; nothing recreated, the bridge
    // and the VM port untouched.
    assert_eq!(
        shape(&plan),
        [
            "mutate Interface",
            "mutate Port",
            "mutate Interface",
            "mutate Port"
        ]
    );
    let touched: Vec<&str> = plan
        .ops
        .iter()
        .map(|o| o["where"][0][2][1].as_str().unwrap())
        .collect();
    assert_eq!(
        touched,
        [
            "iface-fgt-c612000c",
            "port-fgt-c612000c",
            "iface-fgt-c612000d",
            "port-fgt-c612000d"
        ]
    );
    assert!(plan.blocked.is_empty());
}

#[test]
fn a_departed_peers_tunnel_goes_once_the_host_is_settled() {
    let view = previous_versions_host();
    let mut without_h3 = peers();
    without_h3.remove("h3");
    let objects = wanted(&without_h3, &config());
    // Unsettled (h3 may still come back after a restart): kept.
    let kept = plan(&view, &desired(objects.clone(), false));
    assert!(kept
        .ops
        .iter()
        .all(|o| o["op"] == "mutate" && o["table"] != "Bridge"));
    let gone = plan(&view, &desired(objects, true));
    let last = gone.ops.last().unwrap();
    assert_eq!(last["table"], "Bridge");
    assert_eq!(
        last["mutations"][0],
        serde_json::json!(["ports", "delete", ["set", [["uuid", "port-fgt-c612000d"]]]])
    );
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
