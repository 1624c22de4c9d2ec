use super::*;
use crate::model::{Binding, Profile, QueueSpec as ModelQueue};
use flowgate_controller::topology::{PortView, SwitchView};
use flowgate_openflow::MacAddr;
use serde_json::json;

/// Host "a" has bridge 1 (ports s1-eth1, s1-eth2 and vm1's port tap1),
/// host "b" bridge 2 (s2-eth1, with someone's QoS queue 5).
fn index() -> HostIndex {
    let port = |dpid, iface: Option<&str>, queues: &[u32]| PortInfo {
        dpid: Some(dpid),
        iface_id: iface.map(str::to_owned),
        ofport: Some(1),
        queues: queues.iter().copied().collect(),
    };
    let a = HostPorts {
        dpids: [1].into(),
        ports: [
            ("s1-eth1".to_owned(), port(1, None, &[])),
            ("s1-eth2".to_owned(), port(1, None, &[])),
            ("tap1".to_owned(), port(1, Some("vm1"), &[])),
        ]
        .into(),
    };
    let b = HostPorts {
        dpids: [2].into(),
        ports: [("s2-eth1".to_owned(), port(2, None, &[5]))].into(),
    };
    HostIndex {
        hosts: [("a".to_owned(), a), ("b".to_owned(), b)].into(),
    }
}

/// Switch 1: port 1 an edge port, port 2 a link; port 3 is vm1's.
fn view() -> TopologyView {
    let port = |name: &str, role| PortView {
        name: name.into(),
        hw_addr: MacAddr::ZERO,
        role,
    };
    let ports = [
        (1, port("s1-eth1", PortRole::Edge)),
        (2, port("s1-eth2", PortRole::Link)),
    ]
    .into();
    TopologyView {
        switches: [(1, SwitchView { ready: true, ports })].into(),
        ..TopologyView::default()
    }
}

fn names() -> BTreeMap<u64, BTreeMap<u32, String>> {
    [(
        1,
        [
            (1, "s1-eth1".to_owned()),
            (2, "s1-eth2".to_owned()),
            (3, "tap1".to_owned()),
        ]
        .into(),
    )]
    .into()
}

fn config(bindings: &[serde_json::Value]) -> QosConfig {
    let mut c = QosConfig::default();
    let profile = Profile {
        id: "p".into(),
        kind: QosKind::LinuxHtb,
        max_rate: 5_000_000,
        queues: [(
            1,
            ModelQueue {
                min_rate: Some(1_000_000),
                ..ModelQueue::default()
            },
        )]
        .into(),
        origin: None,
    };
    c.profiles.insert("p".into(), profile);
    for b in bindings {
        let b: Binding = serde_json::from_value(b.clone()).unwrap();
        c.bindings.insert(b.id.clone(), b);
    }
    c
}

fn ports_of(objects: &[Object]) -> Vec<String> {
    objects
        .iter()
        .map(|o| match o {
            Object::Qos(q) => q.port.clone(),
            other => panic!("not a QoS object: {other:?}"),
        })
        .collect()
}

#[test]
fn each_kind_of_binding_finds_its_ports() {
    let c = config(&[
        json!({"id": "port", "profile": "p", "dpid": 2, "port": "s2-eth1"}),
        json!({"id": "edge", "profile": "p", "dpid": 1, "edge": true}),
        json!({"id": "vm", "profile": "p", "iface_id": "vm1"}),
    ]);
    let out = objects(&c, &index(), &view(), &names());
    assert_eq!(
        ports_of(&out["a"]),
        ["s1-eth1", "tap1"],
        "the edge port and the VM's"
    );
    assert_eq!(ports_of(&out["b"]), ["s2-eth1"]);
    let Object::Qos(spec) = &out["b"][0] else {
        unreachable!()
    };
    assert_eq!(spec.max_rate, Some(5_000_000));
    assert_eq!(spec.queues[&1].min_rate, Some(1_000_000));
}

#[test]
fn a_host_without_bindings_is_declared_empty_and_unknown_ports_are_skipped() {
    let c = config(&[json!({"id": "x", "profile": "p", "dpid": 1, "port": "s1-eth9"})]);
    let out = objects(&c, &index(), &view(), &names());
    assert!(out["a"].is_empty() && out["b"].is_empty());
}

#[test]
fn queues_anyone_made_are_known_by_port() {
    let i = index();
    assert_eq!(i.queues_at(2, "s2-eth1"), [5].into());
    assert_eq!(i.queues_at(2, "1"), [5].into(), "by port number");
    assert!(i.queues_at(2, "7").is_empty());
    assert!(i.queues_at(1, "s1-eth1").is_empty());
    assert_eq!(i.host_of(2).map(|(c, _)| c), Some("b"));
}
