use std::time::Instant;

use flowgate_controller::module::Change;
use flowgate_controller::testing::FakeSwitch;
use flowgate_controller::topology::{Endpoint, Host, PortRole, PortView, SwitchView};
use flowgate_openflow::MacAddr;
use serde_json::json;

use super::*;
use crate::compile::{meter_id, policy_cookie};

/// A ring of four switches (port 1 to the next, port 2 to the previous,
/// port 3 the host's), hosts h1 on s1 and h3 on s3, driven by one QoS module.
struct Ring {
    qos: Qos,
    switches: BTreeMap<u64, FakeSwitch>,
    cut: Option<(u64, u64)>,
}

fn mac(i: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, 0, i])
}

impl Ring {
    fn new(config: crate::config::QosConfig) -> Ring {
        let mut ring = Ring {
            qos: Qos::new(config),
            switches: (1..=4).map(|d| (d, FakeSwitch::new(d))).collect(),
            cut: None,
        };
        for dpid in 1..=4 {
            let ports: Vec<Port> = (1..=3)
                .map(|n| Port {
                    port_no: n,
                    name: format!("s{dpid}-eth{n}"),
                    ..Default::default()
                })
                .collect();
            ring.event(&Event::SwitchUp {
                dpid,
                ports: &ports,
                installed: &[],
                groups: &[],
                meters: &[],
            });
        }
        ring.publish();
        ring
    }

    fn view(&self) -> TopologyView {
        let next = |d: u64| d % 4 + 1;
        let mut links = Vec::new();
        for d in 1..=4u64 {
            if self.cut == Some((d, next(d))) {
                continue;
            }
            links.push((Endpoint::new(d, 1), Endpoint::new(next(d), 2)));
            links.push((Endpoint::new(next(d), 2), Endpoint::new(d, 1)));
        }
        links.sort();
        let switches = (1..=4)
            .map(|d| {
                let ports = (1..=3)
                    .map(|n| {
                        let role = if n == 3 {
                            PortRole::Edge
                        } else {
                            PortRole::Link
                        };
                        let view = PortView {
                            name: format!("s{d}-eth{n}"),
                            hw_addr: MacAddr::ZERO,
                            role,
                        };
                        (n, view)
                    })
                    .collect();
                (d, SwitchView { ready: true, ports })
            })
            .collect();
        let host = |i: u8, dpid: u64| Host {
            mac: mac(i),
            vlan: None,
            ipv4: vec![[10, 0, 0, i].into()],
            ipv6: Vec::new(),
            at: Endpoint::new(dpid, 3),
        };
        TopologyView {
            switches,
            links,
            hosts: vec![host(1, 1), host(3, 3)],
        }
    }

    fn publish(&mut self) -> Vec<Change> {
        let view = Arc::new(self.view());
        self.event(&Event::Notice {
            from: Owner::Topology,
            payload: &view,
        })
    }

    fn event(&mut self, event: &Event<'_>) -> Vec<Change> {
        let mut ctx = Ctx::new(Instant::now());
        self.qos.handle(event, &mut ctx);
        self.land(ctx.take_changes())
    }

    fn land(&mut self, changes: Vec<Change>) -> Vec<Change> {
        self.switches
            .values_mut()
            .flat_map(|sw| sw.apply(&changes))
            .collect()
    }

    fn stage(&mut self, op: QosOp, by: &Origin) -> Result<Staged<Qos, ()>, QosError> {
        let mut ctx = Ctx::new(Instant::now());
        let staged = self.qos.stage(op, by, &mut ctx);
        let changes = ctx.take_changes();
        self.land(changes);
        staged
    }

    /// Switches holding entries of policy `id`.
    fn holding(&self, id: u32) -> Vec<u64> {
        self.switches
            .values()
            .filter(|sw| sw.flows.values().any(|s| s.cookie == policy_cookie(id)))
            .map(|sw| sw.dpid)
            .collect()
    }
}

fn policy(v: serde_json::Value) -> Policy {
    serde_json::from_value(v).unwrap()
}

#[test]
fn a_path_policy_follows_its_path_when_a_link_fails() {
    let mut ring = Ring::new(Default::default());
    let p = policy(
        json!({"id": 1, "priority": 10, "match": {"ip_src": "10.0.0.1"},
        "actions": {"meter": {"rate": 2000}},
        "placement": {"path": {"src": "10.0.0.1", "dst": "10.0.0.3"}}}),
    );
    ring.stage(QosOp::PutPolicy(p), &Origin::rest()).unwrap();
    let before = ring.holding(1);
    assert_eq!(
        before.len(),
        3,
        "h1 to h3 is two hops around the ring: {before:?}"
    );
    assert!(before.contains(&1) && before.contains(&3));
    let via = if before.contains(&2) { 2 } else { 4 };
    assert!(ring.switches[&via].meters.contains_key(&meter_id(1)));
    // Cut the link the path used between s1 and its middle switch.
    ring.cut = Some(if via == 2 { (1, 2) } else { (4, 1) });
    ring.publish();
    let other = 6 - via;
    let after = ring.holding(1);
    assert!(after.contains(&other) && !after.contains(&via), "{after:?}");
    assert!(!ring.switches[&via].meters.contains_key(&meter_id(1)));
    assert!(ring.switches[&other].meters.contains_key(&meter_id(1)));
}

#[test]
fn a_path_to_an_unknown_host_is_placed_nowhere_and_says_why() {
    let mut ring = Ring::new(Default::default());
    let p = policy(json!({"id": 2, "priority": 10, "actions": {"dscp": 8},
        "placement": {"path": {"src": "10.0.0.1", "dst": "10.0.0.99"}}}));
    ring.stage(QosOp::PutPolicy(p), &Origin::rest()).unwrap();
    assert!(ring.holding(2).is_empty());
    assert!(ring
        .qos
        .placed(2)
        .unwrap()
        .as_ref()
        .unwrap_err()
        .contains("10.0.0.99"));
}

#[test]
fn a_refused_write_changes_nothing_and_an_undo_restores_everything() {
    let mut ring = Ring::new(Default::default());
    let all = policy(json!({"id": 1, "priority": 10, "actions": {"meter": {"rate": 100}}}));
    ring.stage(QosOp::PutPolicy(all.clone()), &Origin::rest())
        .unwrap();
    assert_eq!(ring.holding(1), vec![1, 2, 3, 4]);
    // Same priority, overlapping: refused, nothing sent.
    let clash = policy(json!({"id": 2, "priority": 10, "actions": {"dscp": 1}}));
    let mut ctx = Ctx::new(Instant::now());
    assert!(matches!(
        ring.qos
            .stage(QosOp::PutPolicy(clash), &Origin::rest(), &mut ctx),
        Err(QosError::Conflict(_))
    ));
    assert!(ctx.take_changes().is_empty());
    // A new rate, then undone: the meter is back as it was.
    let mut faster = all.clone();
    faster.actions.meter.as_mut().unwrap().rate = 5000;
    let staged = ring
        .stage(QosOp::PutPolicy(faster), &Origin::rest())
        .unwrap();
    let rate = |ring: &Ring| ring.switches[&1].meters[&meter_id(1)].bands.clone();
    assert_ne!(
        rate(&ring),
        crate::compile::meter_spec(all.actions.meter.as_ref().unwrap()).bands
    );
    let mut ctx = Ctx::new(Instant::now());
    staged.undo(&mut ring.qos, &mut ctx);
    let changes = ctx.take_changes();
    assert!(
        changes.iter().any(|c| matches!(c, Change::Persist(_))),
        "the store is restored too"
    );
    ring.land(changes);
    assert_eq!(
        rate(&ring),
        crate::compile::meter_spec(all.actions.meter.as_ref().unwrap()).bands
    );
    assert_eq!(ring.qos.config().policies[&1], all);
}

#[test]
fn a_policy_another_module_created_is_that_modules_to_change() {
    let mut ring = Ring::new(Default::default());
    let hostaware = Origin::module(Owner::HostAware, "limit-h1");
    let mut p = policy(json!({"id": 3, "priority": 10, "actions": {"meter": {"rate": 100}}}));
    p.origin = Some(hostaware.clone());
    ring.stage(QosOp::PutPolicy(p), &hostaware).unwrap();
    assert!(matches!(
        ring.stage(QosOp::DeletePolicy(3), &Origin::rest()),
        Err(QosError::Conflict(f)) if f.field == "origin"
    ));
    assert!(ring.stage(QosOp::DeletePolicy(3), &hostaware).is_ok());
    assert!(ring.holding(3).is_empty());
}

#[test]
fn a_binding_to_a_port_the_switch_lacks_is_refused() {
    let mut ring = Ring::new(Default::default());
    let profile: Profile = serde_json::from_value(json!({"id": "p", "max_rate": 1000})).unwrap();
    ring.stage(QosOp::PutProfile(profile), &Origin::rest())
        .unwrap();
    let binding: Binding =
        serde_json::from_value(json!({"id": "b", "profile": "p", "dpid": 1, "port": "s1-eth9"}))
            .unwrap();
    assert!(matches!(
        ring.stage(QosOp::PutBinding(binding), &Origin::rest()),
        Err(QosError::Missing(f)) if f.field == "port"
    ));
}

/// Binding, changing and unbinding a profile are declared to the OVSDB
/// reconciler with the write itself, not at the next host or topology event.
#[test]
fn a_binding_write_declares_the_hosts_rows_at_once() {
    use crate::ports::{HostPorts, PortInfo};
    use flowgate_controller::ovsdb::Object;

    let hosts = Hosts::default();
    let mut ring = Ring::new(Default::default());
    ring.qos = std::mem::take(&mut ring.qos).with_ovsdb(&Reconciler::new(hosts.clone()), hosts);
    let vm = PortInfo {
        dpid: Some(1),
        iface_id: Some("vm1".into()),
        ..PortInfo::default()
    };
    let host = HostPorts {
        dpids: [1].into(),
        ports: [("tap1".to_owned(), vm)].into(),
    };
    let index = HostIndex {
        hosts: [("a".to_owned(), host)].into(),
    };
    ring.event(&Event::Task { payload: &index });
    let declared = |ring: &Ring| -> Vec<(String, Option<u64>)> {
        let rows = &ring.qos.ovsdb.as_ref().unwrap().rows;
        rows.declared("a")
            .into_values()
            .flatten()
            .filter_map(|o| match o {
                Object::Qos(q) => Some((q.port, q.max_rate)),
                _ => None,
            })
            .collect()
    };
    let profile = |rate: u64| -> Profile {
        serde_json::from_value(json!({"id": "p", "max_rate": rate})).unwrap()
    };
    ring.stage(QosOp::PutProfile(profile(1000)), &Origin::rest())
        .unwrap();
    assert!(declared(&ring).is_empty(), "a profile alone is no row");
    let binding: Binding =
        serde_json::from_value(json!({"id": "b", "profile": "p", "iface_id": "vm1"})).unwrap();
    ring.stage(QosOp::PutBinding(binding), &Origin::rest())
        .unwrap();
    assert_eq!(declared(&ring), [("tap1".to_owned(), Some(1000))]);
    ring.stage(QosOp::PutProfile(profile(2000)), &Origin::rest())
        .unwrap();
    assert_eq!(declared(&ring), [("tap1".to_owned(), Some(2000))]);
    let undo = ring
        .stage(QosOp::DeleteBinding("b".into()), &Origin::rest())
        .unwrap();
    assert!(declared(&ring).is_empty());
    let mut ctx = Ctx::new(Instant::now());
    undo.undo(&mut ring.qos, &mut ctx);
    assert_eq!(declared(&ring), [("tap1".to_owned(), Some(2000))], "undone");
}

impl Ring {
    /// Follows `sync`; whether it was taken, and what the switches saw.
    fn follow(&mut self, sync: &StoreSync) -> (Followed, Vec<Change>) {
        let mut ctx = Ctx::new(Instant::now());
        let followed = self.qos.follow_store(sync, &mut ctx);
        let changes = ctx.take_changes();
        assert!(
            !changes.iter().any(|c| matches!(c, Change::Persist(_))),
            "following the store never writes it"
        );
        (followed, self.land(changes))
    }
}

fn stored<T: serde::Serialize>(key: String, value: &T) -> (String, Option<Vec<u8>>) {
    (key, Some(serde_json::to_vec(value).unwrap()))
}

/// Another node's policies reach this node's switches, and its profiles
/// and bindings this node's OVSDB rows, through the code a REST write
/// runs; this node's own writes coming back and bad values change nothing.
#[test]
fn following_the_store_declares_what_other_nodes_wrote() {
    use crate::persist::{policy_key, BINDINGS, PROFILES};
    use crate::ports::{HostPorts, PortInfo};
    use flowgate_controller::ovsdb::Object;

    let hosts = Hosts::default();
    let mut ring = Ring::new(Default::default());
    ring.qos = std::mem::take(&mut ring.qos).with_ovsdb(&Reconciler::new(hosts.clone()), hosts);
    let vm = PortInfo {
        dpid: Some(1),
        iface_id: Some("vm1".into()),
        ..PortInfo::default()
    };
    let host = HostPorts {
        dpids: [1].into(),
        ports: [("tap1".to_owned(), vm)].into(),
    };
    let index = HostIndex {
        hosts: [("a".to_owned(), host)].into(),
    };
    ring.event(&Event::Task { payload: &index });
    let keys = |changed| StoreSync {
        changed,
        complete: false,
    };
    let own = policy(json!({"id": 1, "priority": 10, "actions": {"meter": {"rate": 100}}}));
    ring.stage(QosOp::PutPolicy(own.clone()), &Origin::rest())
        .unwrap();

    // This node's own write coming back: nothing to do.
    let (followed, seen) = ring.follow(&keys(vec![stored(policy_key(1), &own)]));
    assert_eq!(followed, Followed::Taken);
    assert!(seen.is_empty(), "{seen:?}");

    // Another node's policy: its entries and meter on every switch.
    let theirs = policy(json!({"id": 2, "priority": 20, "actions": {"meter": {"rate": 300}}}));
    let (followed, seen) = ring.follow(&keys(vec![stored(policy_key(2), &theirs)]));
    assert_eq!(followed, Followed::Taken);
    assert!(!seen.is_empty());
    assert_eq!(ring.holding(2), vec![1, 2, 3, 4]);
    assert!(ring.switches[&3].meters.contains_key(&meter_id(2)));
    assert_eq!(ring.qos.config().policies.get(&2), Some(&theirs));

    // A value that does not decode, or sits under another's key, keeps
    // what the module has for that key.
    let (followed, seen) = ring.follow(&keys(vec![
        (policy_key(2), Some(b"{".to_vec())),
        stored(policy_key(5), &theirs),
    ]));
    assert_eq!(followed, Followed::Taken);
    assert!(seen.is_empty());
    assert_eq!(
        ring.qos.config().policies.keys().collect::<Vec<_>>(),
        [&1, &2]
    );

    // A state that does not validate (policy 3 overlaps policy 1 at its
    // priority) is refused whole, the valid policy 4 of the same sync too.
    let clash = policy(json!({"id": 3, "priority": 10, "actions": {"dscp": 8}}));
    let fine = policy(json!({"id": 4, "priority": 40, "actions": {"dscp": 8}}));
    let (followed, seen) = ring.follow(&keys(vec![
        stored(policy_key(3), &clash),
        stored(policy_key(4), &fine),
    ]));
    assert_eq!(followed, Followed::Refused);
    assert!(seen.is_empty());
    assert!(ring.holding(4).is_empty());
    // So is a binding whose profile is nowhere.
    let binding: Binding =
        serde_json::from_value(json!({"id": "b", "profile": "p", "iface_id": "vm1"})).unwrap();
    let bind = stored(format!("{BINDINGS}b"), &binding);
    let (followed, _) = ring.follow(&keys(vec![bind.clone()]));
    assert_eq!(followed, Followed::Refused);

    // A profile and its binding: the host's QoS row, as a REST write
    // declares it.
    let profile: Profile = serde_json::from_value(json!({"id": "p", "max_rate": 1000})).unwrap();
    let (followed, _) = ring.follow(&keys(vec![stored(format!("{PROFILES}p"), &profile), bind]));
    assert_eq!(followed, Followed::Taken);
    let rows: Vec<(String, Option<u64>)> = ring
        .qos
        .ovsdb
        .as_ref()
        .unwrap()
        .rows
        .declared("a")
        .into_values()
        .flatten()
        .filter_map(|o| match o {
            Object::Qos(q) => Some((q.port, q.max_rate)),
            _ => None,
        })
        .collect();
    assert_eq!(rows, [("tap1".to_owned(), Some(1000))]);

    // A complete re-read without policy 1 removes it from the switches.
    let (followed, _) = ring.follow(&StoreSync {
        changed: vec![
            stored(policy_key(2), &theirs),
            stored(format!("{PROFILES}p"), &profile),
            stored(format!("{BINDINGS}b"), &binding),
        ],
        complete: true,
    });
    assert_eq!(followed, Followed::Taken);
    assert!(ring.holding(1).is_empty());
    assert!(!ring.switches[&1].meters.contains_key(&meter_id(1)));
    assert_eq!(ring.holding(2), vec![1, 2, 3, 4]);
}
