//! The pure planner of the OVSDB reconciler: one host's view and every
//! owner's declared objects in, the operations of one transaction out
//! (empty when the host is as declared), plus the objects that cannot be
//! realised now and why.
//!
//! Rows are matched to objects by their tags (`flowgate-owner`,
//! `flowgate-key`), or, for rows an earlier Flowgate version marked
//! otherwise ([`OwnerPolicy::legacy_mark`]), by name; such rows are
//! adopted and tagged in place, never recreated. A registered owner's rows
//! that no declaration names are kept as they are until the owner settles
//! the host, then removed. Everything else on the host (the operator's
//! rows, unknown owners') is left alone.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use super::columns;
use super::datum;
use super::objects::{
    BridgeSpec, Kind, Object, ObjectId, PortSpec, QosSpec, QueueSpec, OBJECT_KEY, OWNER_KEY,
};
use super::ops;
use super::view::{BridgeView, HostView, PortView, QosView};
use crate::cookie::Owner;

/// How the reconciler treats a registered owner's rows on one host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OwnerPolicy {
    /// The owner declared everything it wants on the host: its rows that
    /// no declaration names go. Until then they stay as they are (a
    /// restarted controller does not know yet what it wants).
    pub settled: bool,
    /// An `external_ids` key an earlier Flowgate version marked this
    /// owner's rows with, instead of the tags.
    pub legacy_mark: Option<&'static str>,
}

/// What the owners want on one host.
#[derive(Debug, Clone, Default)]
pub struct HostDesired {
    /// Each object once, with the owner that declared it.
    pub objects: BTreeMap<ObjectId, (Owner, Object)>,
    /// Registered owners; rows of others are never touched.
    pub owners: BTreeMap<Owner, OwnerPolicy>,
}

/// One transaction's operations for a host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub ops: Vec<Value>,
    pub blocked: Vec<Blocked>,
}

/// A declared object that cannot be realised now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub owner: Owner,
    pub id: ObjectId,
    pub reason: String,
}

/// Plans the transaction that brings `view` to `desired`.
pub fn plan(view: &HostView, desired: &HostDesired) -> Plan {
    let mut planner = Planner {
        view,
        desired,
        plan: Plan::default(),
        rows: 0,
    };
    let creating = planner.bridges();
    planner.ports(&creating);
    if view.columns.covers(columns::QOS) {
        planner.qos();
    } else {
        for (id, (owner, _)) in desired
            .objects
            .iter()
            .filter(|(id, _)| id.kind == Kind::Qos)
        {
            planner.block(*owner, id, "the QoS tables are not monitored yet".into());
        }
    }
    planner.plan
}

/// Whose a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag<'a> {
    /// A registered owner's, for the object of that name.
    Of(Owner, &'a str),
    /// The operator's, or an owner's not registered in this run.
    Other,
}

struct Planner<'a> {
    view: &'a HostView,
    desired: &'a HostDesired,
    plan: Plan,
    /// `uuid-name`s handed out.
    rows: usize,
}

impl<'a> Planner<'a> {
    fn tag(&self, ids: &'a BTreeMap<String, String>, name: &'a str) -> Tag<'a> {
        let owners = &self.desired.owners;
        let owner = match ids.get(OWNER_KEY) {
            Some(tagged) => Owner::ALL
                .into_iter()
                .find(|o| o.name() == tagged)
                .zip(ids.get(OBJECT_KEY).map(String::as_str)),
            None => owners
                .iter()
                .find(|(_, p)| p.legacy_mark.is_some_and(|m| ids.contains_key(m)))
                .map(|(o, _)| (*o, name)),
        };
        match owner {
            Some((owner, key)) if owners.contains_key(&owner) => Tag::Of(owner, key),
            _ => Tag::Other,
        }
    }

    fn settled(&self, owner: Owner) -> bool {
        self.desired.owners.get(&owner).is_some_and(|p| p.settled)
    }

    fn declares(&self, owner: Owner, kind: Kind, name: &str) -> bool {
        let id = ObjectId {
            kind,
            name: name.to_owned(),
        };
        self.desired
            .objects
            .get(&id)
            .is_some_and(|(o, _)| *o == owner)
    }

    fn block(&mut self, owner: Owner, id: &ObjectId, reason: String) {
        self.plan.blocked.push(Blocked {
            owner,
            id: id.clone(),
            reason,
        });
    }

    fn push(&mut self, op: Value) {
        self.plan.ops.push(op);
    }

    /// A fresh `uuid-name` for a row inserted by this transaction.
    fn row_name(&mut self) -> String {
        self.rows += 1;
        format!("row{}", self.rows)
    }

    /// Declared bridges: settings of those there, creation of those
    /// missing (returned: their ports wait for the next round); removal of
    /// undeclared bridges created for a settled owner.
    fn bridges(&mut self) -> BTreeSet<&'a str> {
        let (view, desired) = (self.view, self.desired);
        let mut creating = BTreeSet::new();
        for (id, (owner, object)) in &desired.objects {
            let Object::Bridge(spec) = object else {
                continue;
            };
            match view.bridge(&spec.name) {
                Some(bridge) => self.bridge_settings(bridge, spec),
                None => match &view.root_uuid {
                    Some(root) => {
                        self.create_bridge(*owner, spec, root);
                        creating.insert(spec.name.as_str());
                    }
                    None => self.block(*owner, id, "the database has no Open_vSwitch row".into()),
                },
            }
        }
        for bridge in &view.bridges {
            let Tag::Of(owner, _) = self.tag(&bridge.external_ids, &bridge.name) else {
                continue;
            };
            let declared = desired.objects.contains_key(&ObjectId {
                kind: Kind::Bridge,
                name: bridge.name.clone(),
            });
            // Other owners' and the operator's ports would go with it.
            let only_its_own = bridge.ports.iter().all(|p| {
                p.name == bridge.name
                    || self.tag(&p.external_ids, &p.name) == Tag::Of(owner, &p.name)
            });
            if let (false, true, true, Some(root)) =
                (declared, only_its_own, self.settled(owner), &view.root_uuid)
            {
                let op = ops::set_delete(
                    "Open_vSwitch",
                    root,
                    "bridges",
                    vec![datum::uuid_ref(&bridge.uuid)],
                );
                self.push(op);
            }
        }
        creating
    }

    fn bridge_settings(&mut self, bridge: &BridgeView, spec: &BridgeSpec) {
        let mut row = Map::new();
        if bridge.fail_mode.as_deref() != Some("secure") {
            row.insert("fail_mode".into(), json!("secure"));
        }
        if !bridge.protocols.iter().any(|p| p == "OpenFlow13") {
            let mut protocols: Vec<Value> = bridge.protocols.iter().map(|p| json!(p)).collect();
            protocols.push(json!("OpenFlow13"));
            row.insert("protocols".into(), datum::set_of(protocols));
        }
        if let Some(target) = &spec.controller {
            let targets: Vec<&str> = bridge
                .controllers
                .iter()
                .map(|c| c.target.as_str())
                .collect();
            if targets != [target.as_str()] {
                let ctl = self.row_name();
                self.push(ops::insert("Controller", json!({"target": target}), &ctl));
                row.insert("controller".into(), datum::named_ref(&ctl));
            }
        }
        if !row.is_empty() {
            self.push(ops::update("Bridge", &bridge.uuid, Value::Object(row)));
        }
    }

    fn create_bridge(&mut self, owner: Owner, spec: &BridgeSpec, root: &str) {
        let types: BTreeSet<&str> = self
            .view
            .bridges
            .iter()
            .map(|b| b.datapath_type.as_str())
            .collect();
        let datapath_type = match types.into_iter().collect::<Vec<_>>()[..] {
            [only] => only,
            _ => "",
        };
        let name = spec.name.as_str();
        let (iface, port, br) = (self.row_name(), self.row_name(), self.row_name());
        self.push(ops::insert(
            "Interface",
            json!({"name": name, "type": "internal"}),
            &iface,
        ));
        self.push(ops::insert(
            "Port",
            json!({"name": name, "interfaces": datum::named_ref(&iface)}),
            &port,
        ));
        let mut row = json!({
            "name": name,
            "datapath_type": datapath_type,
            "fail_mode": "secure",
            "protocols": "OpenFlow13",
            "ports": datum::named_ref(&port),
            "other_config": datum::map_of([("disable-in-band", "true")]),
            "external_ids": tags_map(&BTreeMap::new(), owner, name),
        });
        if let Some(target) = &spec.controller {
            let ctl = self.row_name();
            self.push(ops::insert("Controller", json!({"target": target}), &ctl));
            row["controller"] = datum::named_ref(&ctl);
        }
        self.push(ops::insert("Bridge", row, &br));
        self.push(ops::set_insert(
            "Open_vSwitch",
            root,
            "bridges",
            vec![datum::named_ref(&br)],
        ));
    }

    /// Declared ports: updated in place, replaced or inserted; registered
    /// owners' undeclared ports removed once settled.
    fn ports(&mut self, creating: &BTreeSet<&str>) {
        let (view, desired) = (self.view, self.desired);
        let mut owned: BTreeMap<(Owner, &str), Vec<(&BridgeView, &PortView)>> = BTreeMap::new();
        for bridge in &view.bridges {
            for port in &bridge.ports {
                if let Tag::Of(owner, key) = self.tag(&port.external_ids, &port.name) {
                    owned.entry((owner, key)).or_default().push((bridge, port));
                }
            }
        }
        for (id, (owner, object)) in &desired.objects {
            let Object::Port(spec) = object else {
                continue;
            };
            let mut rows = owned
                .remove(&(*owner, spec.name.as_str()))
                .unwrap_or_default();
            if let Some((_, taken)) = view.port(&spec.name) {
                if !rows.iter().any(|(_, p)| p.uuid == taken.uuid) {
                    self.block(
                        *owner,
                        id,
                        format!("port {} belongs to someone else", spec.name),
                    );
                    self.remove_ports(&rows);
                    continue;
                }
            }
            if creating.contains(spec.bridge.as_str()) {
                // Next round, on the bridge's uuid.
                continue;
            }
            let Some(bridge) = view.bridge(&spec.bridge) else {
                self.block(*owner, id, format!("no bridge {}", spec.bridge));
                continue;
            };
            let keeper = rows.iter().position(|(b, p)| {
                b.uuid == bridge.uuid
                    && p.name == spec.name
                    && matches!(&p.interfaces[..], [i] if i.name == spec.name)
            });
            let keeper = keeper.map(|i| rows.remove(i).1);
            self.remove_ports(&rows);
            match keeper {
                Some(port) => self.update_port(*owner, spec, port),
                None => self.insert_port(*owner, spec, bridge),
            }
        }
        for ((owner, _), rows) in owned {
            if self.settled(owner) {
                self.remove_ports(&rows);
            }
        }
    }

    fn remove_ports(&mut self, rows: &[(&BridgeView, &PortView)]) {
        for (bridge, port) in rows {
            let op = ops::set_delete(
                "Bridge",
                &bridge.uuid,
                "ports",
                vec![datum::uuid_ref(&port.uuid)],
            );
            self.push(op);
        }
    }

    fn update_port(&mut self, owner: Owner, spec: &PortSpec, port: &PortView) {
        let iface = &port.interfaces[0];
        if iface.kind != spec.kind || iface.options != spec.options {
            let row = json!({"type": spec.kind, "options": string_map(&spec.options)});
            self.push(ops::update("Interface", &iface.uuid, row));
        }
        let wanted = with_tags(&spec.external_ids, owner, &spec.name);
        if !contains_all(&iface.external_ids, &wanted) {
            let op = ops::map_put("Interface", &iface.uuid, "external_ids", &wanted);
            self.push(op);
        }
        if !contains_all(&port.external_ids, &wanted) {
            self.push(ops::map_put("Port", &port.uuid, "external_ids", &wanted));
        }
    }

    fn insert_port(&mut self, owner: Owner, spec: &PortSpec, bridge: &BridgeView) {
        let ids = tags_map(&spec.external_ids, owner, &spec.name);
        let (iface, port) = (self.row_name(), self.row_name());
        self.push(ops::insert(
            "Interface",
            json!({
                "name": spec.name,
                "type": spec.kind,
                "options": string_map(&spec.options),
                "external_ids": ids,
            }),
            &iface,
        ));
        self.push(ops::insert(
            "Port",
            json!({"name": spec.name, "interfaces": datum::named_ref(&iface), "external_ids": ids}),
            &port,
        ));
        self.push(ops::set_insert(
            "Bridge",
            &bridge.uuid,
            "ports",
            vec![datum::named_ref(&port)],
        ));
    }

    /// Declared QoS objects: updated, attached or inserted with their
    /// queues; QoS rows of ours not wanted any more detached and deleted;
    /// Queue rows of ours that no QoS row keeps deleted.
    fn qos(&mut self) {
        let (view, desired) = (self.view, self.desired);
        let mut owned: BTreeMap<(Owner, &str), Vec<&QosView>> = BTreeMap::new();
        for row in &view.qos {
            if let Tag::Of(owner, key) = self.tag(&row.external_ids, &row.uuid) {
                owned.entry((owner, key)).or_default().push(row);
            }
        }
        // Which queues each QoS row refers to once this transaction is done.
        let mut refs: BTreeMap<&str, BTreeSet<&str>> = view
            .qos
            .iter()
            .map(|q| {
                (
                    q.uuid.as_str(),
                    q.queues.values().map(String::as_str).collect(),
                )
            })
            .collect();
        for (id, (owner, object)) in &desired.objects {
            let Object::Qos(spec) = object else {
                continue;
            };
            let mut rows = owned
                .remove(&(*owner, spec.port.as_str()))
                .unwrap_or_default();
            let Some((_, port)) = view.port(&spec.port) else {
                self.block(*owner, id, format!("no port {}", spec.port));
                self.remove_qos(&rows, &mut refs);
                continue;
            };
            let keeper = match &port.qos {
                None => (!rows.is_empty()).then(|| rows.remove(0)),
                Some(attached) => match rows.iter().position(|q| q.uuid == *attached) {
                    Some(i) => Some(rows.remove(i)),
                    None => {
                        let reason = format!("port {} has a QoS row of someone else", spec.port);
                        self.block(*owner, id, reason);
                        self.remove_qos(&rows, &mut refs);
                        continue;
                    }
                },
            };
            self.remove_qos(&rows, &mut refs);
            match keeper {
                Some(row) => self.update_qos(*owner, spec, row, port, &mut refs),
                None => self.insert_qos(*owner, spec, port),
            }
        }
        for ((owner, _), rows) in owned {
            if self.settled(owner) {
                self.remove_qos(&rows, &mut refs);
            }
        }
        let referenced: BTreeSet<&str> = refs.into_values().flatten().collect();
        for queue in &view.queues {
            let Tag::Of(owner, key) = self.tag(&queue.external_ids, &queue.uuid) else {
                continue;
            };
            let garbage = self.settled(owner) || self.declares(owner, Kind::Qos, key);
            if garbage && !referenced.contains(queue.uuid.as_str()) {
                self.push(ops::delete("Queue", &queue.uuid));
            }
        }
    }

    /// Detaches `rows` from every port and deletes them; their queues are
    /// left to the orphan pass.
    fn remove_qos(
        &mut self,
        rows: &[&'a QosView],
        refs: &mut BTreeMap<&'a str, BTreeSet<&'a str>>,
    ) {
        let view = self.view;
        for row in rows {
            for bridge in &view.bridges {
                for port in bridge
                    .ports
                    .iter()
                    .filter(|p| p.qos.as_ref() == Some(&row.uuid))
                {
                    self.push(ops::update(
                        "Port",
                        &port.uuid,
                        json!({"qos": datum::set_of([])}),
                    ));
                }
            }
            self.push(ops::delete("QoS", &row.uuid));
            refs.remove(row.uuid.as_str());
        }
    }

    fn update_qos(
        &mut self,
        owner: Owner,
        spec: &QosSpec,
        row: &'a QosView,
        port: &PortView,
        refs: &mut BTreeMap<&'a str, BTreeSet<&'a str>>,
    ) {
        let view = self.view;
        let mut queues = Vec::new();
        let mut kept = BTreeSet::new();
        let mut remapped = row.queues.keys().ne(spec.queues.keys());
        for (n, queue) in &spec.queues {
            let ours = row
                .queues
                .get(n)
                .and_then(|u| view.queue_row(u))
                .filter(|q| self.tag(&q.external_ids, &q.uuid) == Tag::Of(owner, &spec.port));
            match ours {
                Some(existing) => {
                    let config = queue.other_config();
                    if existing.other_config != config {
                        let op = ops::update(
                            "Queue",
                            &existing.uuid,
                            json!({"other_config": string_map(&config)}),
                        );
                        self.push(op);
                    }
                    kept.insert(existing.uuid.as_str());
                    queues.push(json!([n, datum::uuid_ref(&existing.uuid)]));
                }
                None => {
                    let name = self.insert_queue(owner, &spec.port, queue);
                    queues.push(json!([n, datum::named_ref(&name)]));
                    remapped = true;
                }
            }
        }
        let mut columns = Map::new();
        if row.kind != spec.kind.as_str() {
            columns.insert("type".into(), json!(spec.kind.as_str()));
        }
        let config = spec.other_config();
        if row.other_config != config {
            columns.insert("other_config".into(), string_map(&config));
        }
        if remapped {
            columns.insert("queues".into(), json!(["map", queues]));
            refs.insert(row.uuid.as_str(), kept);
        }
        if !columns.is_empty() {
            self.push(ops::update("QoS", &row.uuid, Value::Object(columns)));
        }
        if port.qos.as_deref() != Some(row.uuid.as_str()) {
            let op = ops::update(
                "Port",
                &port.uuid,
                json!({"qos": datum::uuid_ref(&row.uuid)}),
            );
            self.push(op);
        }
    }

    fn insert_qos(&mut self, owner: Owner, spec: &QosSpec, port: &PortView) {
        let queues: Vec<Value> = spec
            .queues
            .iter()
            .map(|(n, queue)| {
                json!([
                    n,
                    datum::named_ref(&self.insert_queue(owner, &spec.port, queue))
                ])
            })
            .collect();
        let name = self.row_name();
        self.push(ops::insert(
            "QoS",
            json!({
                "type": spec.kind.as_str(),
                "other_config": string_map(&spec.other_config()),
                "queues": ["map", queues],
                "external_ids": tags_map(&BTreeMap::new(), owner, &spec.port),
            }),
            &name,
        ));
        let op = ops::update("Port", &port.uuid, json!({"qos": datum::named_ref(&name)}));
        self.push(op);
    }

    fn insert_queue(&mut self, owner: Owner, key: &str, queue: &QueueSpec) -> String {
        let name = self.row_name();
        self.push(ops::insert(
            "Queue",
            json!({
                "other_config": string_map(&queue.other_config()),
                "external_ids": tags_map(&BTreeMap::new(), owner, key),
            }),
            &name,
        ));
        name
    }
}

/// `ids` plus the owner's tags for the object `key`.
fn with_tags(ids: &BTreeMap<String, String>, owner: Owner, key: &str) -> BTreeMap<String, String> {
    let mut out = ids.clone();
    out.insert(OWNER_KEY.into(), owner.name().into());
    out.insert(OBJECT_KEY.into(), key.into());
    out
}

fn tags_map(ids: &BTreeMap<String, String>, owner: Owner, key: &str) -> Value {
    string_map(&with_tags(ids, owner, key))
}

fn string_map(map: &BTreeMap<String, String>) -> Value {
    datum::map_of(map.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

fn contains_all(have: &BTreeMap<String, String>, want: &BTreeMap<String, String>) -> bool {
    want.iter().all(|(k, v)| have.get(k) == Some(v))
}

#[cfg(test)]
mod tests;
