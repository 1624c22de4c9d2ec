//! The planner against constructed views. What the operations do to a
//! real database is checked by the live test in `ovsdb/tests.rs`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;
use crate::ovsdb::objects::QosType;
use crate::ovsdb::view::{ControllerView, InterfaceView, QueueView};
use crate::ovsdb::Columns;

const PEER: &str = "flowgate-peer";
const CTL: &str = "tcp:198.18.0.254:6653";

fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn tags(owner: &str, key: &str) -> Vec<(String, String)> {
    vec![
        (OWNER_KEY.into(), owner.into()),
        (OBJECT_KEY.into(), key.into()),
    ]
}

fn port(name: &str, kind: &str, ids: &[(&str, &str)], options: &[(&str, &str)]) -> PortView {
    PortView {
        uuid: format!("port-{name}"),
        name: name.into(),
        external_ids: map(ids),
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

fn tunnel_options(remote: &str) -> Vec<(&'static str, String)> {
    vec![
        ("key", "flow".into()),
        ("local_ip", "198.18.0.11".into()),
        ("remote_ip", remote.into()),
    ]
}

/// The tunnel port the overlay declares to `remote`.
fn tunnel_spec(name: &str, peer: &str, remote: &str) -> Object {
    Object::Port(PortSpec {
        bridge: "br-int".into(),
        name: name.into(),
        kind: "vxlan".into(),
        options: tunnel_options(remote)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        external_ids: map(&[(PEER, peer)]),
    })
}

/// That tunnel as this version leaves it on a host.
fn tunnel_row(name: &str, peer: &str, remote: &str) -> PortView {
    let mut ids = tags("overlay", name);
    ids.push((PEER.into(), peer.into()));
    let ids: Vec<(&str, &str)> = ids.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let options = tunnel_options(remote);
    let options: Vec<(&str, &str)> = options.iter().map(|(k, v)| (*k, v.as_str())).collect();
    port(name, "vxlan", &ids, &options)
}

fn br_int(ports: Vec<PortView>) -> BridgeView {
    BridgeView {
        uuid: "int".into(),
        name: "br-int".into(),
        datapath_id: Some(0xc001),
        datapath_type: "netdev".into(),
        fail_mode: Some("secure".into()),
        protocols: vec!["OpenFlow13".into()],
        controllers: vec![ControllerView {
            uuid: "ctl".into(),
            target: CTL.into(),
            is_connected: true,
        }],
        ports,
        ..Default::default()
    }
}

fn host(bridges: Vec<BridgeView>) -> HostView {
    let mut columns = Columns::default();
    columns.add(columns::QOS);
    let phy = BridgeView {
        uuid: "phy".into(),
        name: "br-phy".into(),
        datapath_type: "netdev".into(),
        ports: vec![port("eth0", "", &[], &[])],
        ..Default::default()
    };
    HostView {
        root_uuid: Some("root".into()),
        bridges: std::iter::once(phy).chain(bridges).collect(),
        columns,
        ..Default::default()
    }
}

fn integration_bridge() -> Object {
    Object::Bridge(BridgeSpec {
        name: "br-int".into(),
        controller: Some(CTL.into()),
    })
}

/// The overlay's declarations, settled or not.
fn overlay(objects: Vec<Object>, settled: bool) -> HostDesired {
    let mut desired = HostDesired::default();
    for object in objects {
        desired
            .objects
            .insert(object.id(), (Owner::Overlay, object));
    }
    desired.owners.insert(
        Owner::Overlay,
        OwnerPolicy {
            settled,
            legacy_mark: Some(PEER),
        },
    );
    desired
}

/// "op table" of each operation, for a quick look at a plan.
fn shape(plan: &Plan) -> Vec<String> {
    plan.ops
        .iter()
        .map(|o| {
            format!(
                "{} {}",
                o["op"].as_str().unwrap(),
                o["table"].as_str().unwrap_or("")
            )
        })
        .collect()
}

fn ids_of(row: &Value) -> BTreeMap<String, String> {
    crate::ovsdb::datum::string_map(&row["external_ids"])
}

#[test]
fn a_missing_bridge_is_created_like_the_others_and_tagged() {
    let desired = overlay(
        vec![
            integration_bridge(),
            tunnel_spec("fgt-c612000c", "h2", "198.18.0.12"),
        ],
        true,
    );
    let plan = plan(&host(vec![]), &desired);
    assert_eq!(
        shape(&plan),
        [
            "insert Interface",
            "insert Port",
            "insert Controller",
            "insert Bridge",
            "mutate Open_vSwitch"
        ]
    );
    let bridge = &plan.ops[3]["row"];
    assert_eq!(bridge["datapath_type"], "netdev");
    assert_eq!(bridge["fail_mode"], "secure");
    assert_eq!(bridge["protocols"], "OpenFlow13");
    assert_eq!(
        bridge["other_config"],
        json!(["map", [["disable-in-band", "true"]]])
    );
    assert_eq!(
        ids_of(bridge),
        map(&[(OWNER_KEY, "overlay"), (OBJECT_KEY, "br-int")])
    );
    assert_eq!(plan.ops[2]["row"]["target"], CTL);
    // Its ports follow once the bridge is there.
    assert!(plan.blocked.is_empty());
}

#[test]
fn settings_of_an_existing_bridge_are_fixed_whoever_made_it() {
    let mut br = br_int(vec![]);
    br.fail_mode = None;
    br.protocols = vec!["OpenFlow10".into()];
    br.controllers.clear();
    let plan = plan(&host(vec![br]), &overlay(vec![integration_bridge()], true));
    assert_eq!(shape(&plan), ["insert Controller", "update Bridge"]);
    let row = &plan.ops[1]["row"];
    assert_eq!(row["fail_mode"], "secure");
    assert_eq!(
        row["protocols"],
        json!(["set", ["OpenFlow10", "OpenFlow13"]])
    );
    assert_eq!(
        row["controller"],
        json!(["named-uuid", plan.ops[0]["uuid-name"]])
    );
    assert!(row.get("external_ids").is_none(), "not tagged: not ours");
}

#[test]
fn a_port_is_inserted_with_its_interface_both_tagged() {
    let desired = overlay(
        vec![
            integration_bridge(),
            tunnel_spec("fgt-c612000c", "h2", "198.18.0.12"),
        ],
        true,
    );
    let plan = plan(&host(vec![br_int(vec![])]), &desired);
    assert_eq!(
        shape(&plan),
        ["insert Interface", "insert Port", "mutate Bridge"]
    );
    let (iface, port) = (&plan.ops[0]["row"], &plan.ops[1]["row"]);
    assert_eq!(iface["name"], "fgt-c612000c");
    assert_eq!(iface["type"], "vxlan");
    assert_eq!(
        iface["options"],
        json!([
            "map",
            [
                ["key", "flow"],
                ["local_ip", "198.18.0.11"],
                ["remote_ip", "198.18.0.12"]
            ]
        ])
    );
    let want = map(&[
        (OWNER_KEY, "overlay"),
        (OBJECT_KEY, "fgt-c612000c"),
        (PEER, "h2"),
    ]);
    assert_eq!(ids_of(iface), want);
    assert_eq!(ids_of(port), want);
    assert_eq!(plan.ops[2]["mutations"][0][1], "insert");
    assert!(plan.blocked.is_empty());
}

#[test]
fn rows_as_declared_need_nothing_after_a_restart() {
    // A restarted controller declares what it declared before: no ops,
    // settled or not.
    let rows = vec![
        tunnel_row("fgt-c612000c", "h2", "198.18.0.12"),
        tunnel_row("fgt-c612000d", "h3", "198.18.0.13"),
    ];
    let objects = vec![
        integration_bridge(),
        tunnel_spec("fgt-c612000c", "h2", "198.18.0.12"),
        tunnel_spec("fgt-c612000d", "h3", "198.18.0.13"),
    ];
    for settled in [false, true] {
        let plan = plan(
            &host(vec![br_int(rows.clone())]),
            &overlay(objects.clone(), settled),
        );
        assert_eq!(plan, Plan::default());
    }
}

#[test]
fn changed_columns_are_updated_in_place() {
    let view = host(vec![br_int(vec![tunnel_row(
        "fgt-c612000c",
        "h2",
        "198.18.0.12",
    )])]);
    let Object::Port(mut spec) = tunnel_spec("fgt-c612000c", "h2", "198.18.0.12") else {
        unreachable!()
    };
    spec.kind = "geneve".into();
    spec.options.insert("csum".into(), "true".into());
    spec.external_ids.insert("note".into(), "x".into());
    let plan = plan(&view, &overlay(vec![Object::Port(spec)], true));
    assert_eq!(
        shape(&plan),
        ["update Interface", "mutate Interface", "mutate Port"]
    );
    assert_eq!(
        plan.ops[0]["where"][0][2],
        json!(["uuid", "iface-fgt-c612000c"])
    );
    assert_eq!(plan.ops[0]["row"]["type"], "geneve");
    // External ids are set key by key: others' keys on the row stay.
    assert_eq!(
        plan.ops[2]["mutations"][1],
        json!([
            "external_ids",
            "insert",
            [
                "map",
                [
                    ["flowgate-key", "fgt-c612000c"],
                    ["flowgate-owner", "overlay"],
                    ["flowgate-peer", "h2"],
                    ["note", "x"]
                ]
            ]
        ])
    );
}

#[test]
fn undeclared_rows_stay_until_the_owner_settles_then_go() {
    let view = host(vec![br_int(vec![
        tunnel_row("fgt-c612000c", "h2", "198.18.0.12"),
        tunnel_row("fgt-c612000d", "h3", "198.18.0.13"),
    ])]);
    let objects = vec![tunnel_spec("fgt-c612000c", "h2", "198.18.0.12")];
    assert_eq!(
        plan(&view, &overlay(objects.clone(), false)),
        Plan::default()
    );
    let plan = plan(&view, &overlay(objects, true));
    assert_eq!(shape(&plan), ["mutate Bridge"]);
    assert_eq!(
        plan.ops[0]["mutations"][0],
        json!(["ports", "delete", ["set", [["uuid", "port-fgt-c612000d"]]]])
    );
}

#[test]
fn foreign_rows_are_never_touched() {
    let operators = port("vm1", "", &[("iface-id", "vm1")], &[]);
    let unloaded = port(
        "q1",
        "internal",
        &[(OWNER_KEY, "qos"), (OBJECT_KEY, "q1")],
        &[],
    );
    let newer = port(
        "n1",
        "internal",
        &[(OWNER_KEY, "mystery"), (OBJECT_KEY, "n1")],
        &[],
    );
    let view = host(vec![br_int(vec![operators, unloaded, newer])]);
    // Nothing declared, settled: only the overlay's rows could go.
    assert_eq!(plan(&view, &overlay(vec![], true)), Plan::default());
    // A declared port whose name is taken by someone else's row waits.
    let Object::Port(mut spec) = tunnel_spec("vm1", "h2", "198.18.0.12") else {
        unreachable!()
    };
    spec.name = "vm1".into();
    let plan = plan(&view, &overlay(vec![Object::Port(spec)], true));
    assert!(plan.ops.is_empty());
    assert!(
        plan.blocked[0].reason.contains("someone else"),
        "{:?}",
        plan.blocked
    );
}

#[test]
fn tunnels_of_the_previous_version_are_adopted_in_place() {
    // Marked with flowgate-peer only: tagged, not recreated.
    let legacy = |name: &str, peer: &str, remote: &str| {
        let options = tunnel_options(remote);
        let options: Vec<(&str, &str)> = options.iter().map(|(k, v)| (*k, v.as_str())).collect();
        port(name, "vxlan", &[(PEER, peer)], &options)
    };
    let view = host(vec![br_int(vec![
        legacy("fgt-c612000c", "h2", "198.18.0.12"),
        legacy("fgt-c612000d", "h3", "198.18.0.13"),
    ])]);
    let objects = vec![
        integration_bridge(),
        tunnel_spec("fgt-c612000c", "h2", "198.18.0.12"),
    ];
    let unsettled = plan(&view, &overlay(objects.clone(), false));
    assert_eq!(shape(&unsettled), ["mutate Interface", "mutate Port"]);
    assert!(unsettled.ops.iter().all(|o| o["where"][0][2][1]
        .as_str()
        .unwrap()
        .ends_with("fgt-c612000c")));
    // Settled, the legacy tunnel nobody declares goes like any other.
    let settled = plan(&view, &overlay(objects, true));
    assert_eq!(
        shape(&settled),
        ["mutate Interface", "mutate Port", "mutate Bridge"]
    );
}

#[test]
fn a_port_on_the_wrong_bridge_is_replaced() {
    let mut phy_port = tunnel_row("fgt-c612000c", "h2", "198.18.0.12");
    phy_port.uuid = "stray".into();
    let mut view = host(vec![br_int(vec![])]);
    view.bridges[0].ports.push(phy_port);
    let plan = plan(
        &view,
        &overlay(vec![tunnel_spec("fgt-c612000c", "h2", "198.18.0.12")], true),
    );
    assert_eq!(
        shape(&plan),
        [
            "mutate Bridge",
            "insert Interface",
            "insert Port",
            "mutate Bridge"
        ]
    );
    assert_eq!(plan.ops[0]["where"][0][2], json!(["uuid", "phy"]));
    assert_eq!(plan.ops[3]["where"][0][2], json!(["uuid", "int"]));
}

#[test]
fn a_bridge_created_for_an_owner_goes_with_it_unless_others_use_it() {
    let mut ours = br_int(vec![
        port("br-int", "internal", &[], &[]),
        tunnel_row("fgt-c612000c", "h2", "198.18.0.12"),
    ]);
    ours.external_ids = tags("overlay", "br-int").into_iter().collect();
    let plan_of =
        |bridge: &BridgeView, settled| plan(&host(vec![bridge.clone()]), &overlay(vec![], settled));
    assert_eq!(plan_of(&ours, false), Plan::default());
    let gone = plan_of(&ours, true);
    assert_eq!(shape(&gone), ["mutate Open_vSwitch", "mutate Bridge"]);
    assert_eq!(
        gone.ops[0]["mutations"][0],
        json!(["bridges", "delete", ["set", [["uuid", "int"]]]])
    );
    // A VM port on it keeps it (and the VM its bridge).
    ours.ports
        .push(port("vm1", "", &[("iface-id", "vm1")], &[]));
    assert_eq!(shape(&plan_of(&ours, true)), ["mutate Bridge"]);
}

// --- QoS -------------------------------------------------------------------

fn qos_owner(objects: Vec<Object>, settled: bool) -> HostDesired {
    let mut desired = HostDesired::default();
    for object in objects {
        desired.objects.insert(object.id(), (Owner::Qos, object));
    }
    desired.owners.insert(
        Owner::Qos,
        OwnerPolicy {
            settled,
            legacy_mark: None,
        },
    );
    desired
}

fn shaping(max: u64, queues: &[(u32, u64, u64)]) -> Object {
    Object::Qos(QosSpec {
        port: "eth0".into(),
        kind: QosType::LinuxHtb,
        max_rate: Some(max),
        queues: queues
            .iter()
            .map(|(n, min, max)| {
                let queue = QueueSpec {
                    min_rate: Some(*min),
                    max_rate: Some(*max),
                    ..QueueSpec::default()
                };
                (*n, queue)
            })
            .collect(),
    })
}

/// `view` with eth0 shaped as `shaping(max, queues)` declared it, by `owner`.
fn shaped(owner: &str, max: u64, queues: &[(u32, u64, u64)]) -> HostView {
    let mut view = host(vec![]);
    let ids: BTreeMap<String, String> = tags(owner, "eth0").into_iter().collect();
    for (n, min, qmax) in queues {
        view.queues.push(QueueView {
            uuid: format!("queue{n}"),
            other_config: map(&[
                ("min-rate", &min.to_string()),
                ("max-rate", &qmax.to_string()),
            ]),
            external_ids: ids.clone(),
        });
    }
    view.qos.push(QosView {
        uuid: "qos1".into(),
        kind: "linux-htb".into(),
        other_config: map(&[("max-rate", &max.to_string())]),
        external_ids: ids,
        queues: queues
            .iter()
            .map(|(n, _, _)| (*n, format!("queue{n}")))
            .collect(),
    });
    view.bridges[0].ports[0].qos = Some("qos1".into());
    view
}

#[test]
fn qos_is_created_with_its_queues_and_attached() {
    let plan = plan(
        &host(vec![]),
        &qos_owner(
            vec![shaping(
                20_000_000,
                &[(0, 1_000_000, 5_000_000), (1, 2_000_000, 20_000_000)],
            )],
            true,
        ),
    );
    assert_eq!(
        shape(&plan),
        ["insert Queue", "insert Queue", "insert QoS", "update Port"]
    );
    assert_eq!(
        plan.ops[0]["row"]["other_config"],
        json!(["map", [["max-rate", "5000000"], ["min-rate", "1000000"]]])
    );
    assert_eq!(
        ids_of(&plan.ops[1]["row"]),
        map(&[(OWNER_KEY, "qos"), (OBJECT_KEY, "eth0")])
    );
    let qos = &plan.ops[2]["row"];
    assert_eq!(qos["type"], "linux-htb");
    assert_eq!(
        qos["other_config"],
        json!(["map", [["max-rate", "20000000"]]])
    );
    assert_eq!(
        qos["queues"],
        json!([
            "map",
            [
                [0, ["named-uuid", plan.ops[0]["uuid-name"]]],
                [1, ["named-uuid", plan.ops[1]["uuid-name"]]]
            ]
        ])
    );
    assert_eq!(plan.ops[3]["where"][0][2], json!(["uuid", "port-eth0"]));
    assert_eq!(
        plan.ops[3]["row"]["qos"],
        json!(["named-uuid", plan.ops[2]["uuid-name"]])
    );
}

#[test]
fn qos_as_declared_needs_nothing() {
    let queues = [(0, 1_000_000, 5_000_000), (1, 2_000_000, 20_000_000)];
    let view = shaped("qos", 20_000_000, &queues);
    for settled in [false, true] {
        assert_eq!(
            plan(
                &view,
                &qos_owner(vec![shaping(20_000_000, &queues)], settled)
            ),
            Plan::default()
        );
    }
}

#[test]
fn qos_changes_update_rows_and_drop_the_queues_it_no_longer_has() {
    let view = shaped(
        "qos",
        20_000_000,
        &[(0, 1_000_000, 5_000_000), (1, 2_000_000, 20_000_000)],
    );
    // max-rate changes, queue 0 changes, queue 1 goes, queue 2 is new.
    let wanted = shaping(
        30_000_000,
        &[(0, 1_000_000, 6_000_000), (2, 3_000_000, 30_000_000)],
    );
    let plan = plan(&view, &qos_owner(vec![wanted], false));
    assert_eq!(
        shape(&plan),
        ["update Queue", "insert Queue", "update QoS", "delete Queue"]
    );
    assert_eq!(plan.ops[0]["where"][0][2], json!(["uuid", "queue0"]));
    assert_eq!(
        plan.ops[2]["row"]["queues"],
        json!([
            "map",
            [
                [0, ["uuid", "queue0"]],
                [2, ["named-uuid", plan.ops[1]["uuid-name"]]]
            ]
        ])
    );
    assert_eq!(
        plan.ops[2]["row"]["other_config"],
        json!(["map", [["max-rate", "30000000"]]])
    );
    assert_eq!(
        plan.ops[3]["where"][0][2],
        json!(["uuid", "queue1"]),
        "no orphan queue"
    );
}

#[test]
fn removed_qos_leaves_no_row_behind() {
    let view = shaped(
        "qos",
        20_000_000,
        &[(0, 1_000_000, 5_000_000), (1, 2_000_000, 20_000_000)],
    );
    assert_eq!(
        plan(&view, &qos_owner(vec![], false)),
        Plan::default(),
        "kept until settled"
    );
    let plan = plan(&view, &qos_owner(vec![], true));
    assert_eq!(
        shape(&plan),
        ["update Port", "delete QoS", "delete Queue", "delete Queue"]
    );
    assert_eq!(plan.ops[0]["row"]["qos"], json!(["set", []]));
}

#[test]
fn orphans_of_a_previous_run_are_removed_once_settled() {
    // A crash between creating rows and attaching them: an unattached QoS
    // row with its queue, and a queue no QoS refers to.
    let mut view = shaped("qos", 20_000_000, &[(0, 1_000_000, 5_000_000)]);
    view.bridges[0].ports[0].qos = None;
    view.queues.push(QueueView {
        uuid: "stray".into(),
        external_ids: tags("qos", "eth9").into_iter().collect(),
        ..QueueView::default()
    });
    assert_eq!(plan(&view, &qos_owner(vec![], false)), Plan::default());
    let plan = plan(&view, &qos_owner(vec![], true));
    assert_eq!(shape(&plan), ["delete QoS", "delete Queue", "delete Queue"]);
    // Declared again instead, the unattached row is attached, not recreated.
    let again = super::plan(
        &view,
        &qos_owner(
            vec![shaping(20_000_000, &[(0, 1_000_000, 5_000_000)])],
            false,
        ),
    );
    assert_eq!(shape(&again), ["update Port"]);
    assert_eq!(again.ops[0]["row"]["qos"], json!(["uuid", "qos1"]));
}

#[test]
fn someone_elses_qos_is_left_alone() {
    let view = shaped(
        "operator-was-here",
        20_000_000,
        &[(0, 1_000_000, 5_000_000)],
    );
    let mut view = view;
    for q in &mut view.qos {
        q.external_ids.clear();
    }
    for q in &mut view.queues {
        q.external_ids.clear();
    }
    let plan = plan(&view, &qos_owner(vec![shaping(10, &[])], true));
    assert!(plan.ops.is_empty(), "{:?}", plan.ops);
    assert!(plan.blocked[0].reason.contains("someone else"));
}

#[test]
fn qos_on_a_missing_port_waits_and_keeps_no_rows() {
    let mut view = shaped("qos", 20_000_000, &[(0, 1_000_000, 5_000_000)]);
    view.bridges[0].ports.clear();
    let plan = plan(
        &view,
        &qos_owner(
            vec![shaping(20_000_000, &[(0, 1_000_000, 5_000_000)])],
            false,
        ),
    );
    assert_eq!(shape(&plan), ["delete QoS", "delete Queue"]);
    assert!(plan.blocked[0].reason.contains("no port eth0"));
}

#[test]
fn qos_waits_for_its_columns() {
    let mut view = host(vec![]);
    view.columns = Columns::default();
    let plan = plan(&view, &qos_owner(vec![shaping(10, &[])], true));
    assert!(plan.ops.is_empty());
    assert!(plan.blocked[0].reason.contains("not monitored"));
}
