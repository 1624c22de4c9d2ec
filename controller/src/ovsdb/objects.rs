//! What modules declare to the OVSDB reconciler ([`super::reconciler`]):
//! typed objects, each named on its host by an [`ObjectId`] (kind and
//! name). The rows of an object carry `external_ids`
//! `flowgate-owner=<owner name>` and `flowgate-key=<object name>`, so a
//! restarted controller knows them as its own and rows of other owners or
//! of the operator are never touched.

use std::collections::BTreeMap;

/// `external_ids` key naming the module that owns a row.
pub const OWNER_KEY: &str = "flowgate-owner";
/// `external_ids` key naming the object a row belongs to.
pub const OBJECT_KEY: &str = "flowgate-key";

/// What a declared object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Bridge,
    Port,
    Qos,
}

/// An object's name on its host: two declarations of one id are one
/// object (bridge, port and interface names are unique on a host; a QoS
/// object is named by its port).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId {
    pub kind: Kind,
    pub name: String,
}

/// One thing a module wants in a host's database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    Bridge(BridgeSpec),
    Port(PortSpec),
    Qos(QosSpec),
}

impl Object {
    pub fn id(&self) -> ObjectId {
        let (kind, name) = match self {
            Object::Bridge(b) => (Kind::Bridge, &b.name),
            Object::Port(p) => (Kind::Port, &p.name),
            Object::Qos(q) => (Kind::Qos, &q.port),
        };
        ObjectId {
            kind,
            name: name.clone(),
        }
    }
}

/// A bridge Flowgate programs over OpenFlow: `fail_mode=secure` (it keeps
/// its flows while Flowgate is away), OpenFlow 1.3 among its protocols,
/// and `controller` as its only controller. A missing bridge is created
/// with the datapath type of the host's other bridges (a userspace host
/// gets a userspace bridge) and `other_config:disable-in-band=true`. An
/// existing bridge of that name gets the settings whoever created it; only
/// a bridge created for its owner, with nothing of anyone else on it, is
/// removed when no longer declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSpec {
    pub name: String,
    /// `tcp:IP:PORT`; `None` leaves the bridge's controllers alone.
    pub controller: Option<String>,
}

/// A port with one interface of the same name on `bridge` (a tunnel:
/// `kind` "vxlan" or "geneve" with `options` `remote_ip`, `local_ip`,
/// `key`). Columns that differ are updated in place; a port on another
/// bridge is replaced. `external_ids` go on the port and its interface;
/// keys the row has besides them are left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub bridge: String,
    pub name: String,
    /// `Interface.type`.
    pub kind: String,
    pub options: BTreeMap<String, String>,
    pub external_ids: BTreeMap<String, String>,
}

/// Egress QoS on an existing port (`Port.qos`): a QoS row and its Queue
/// rows. Removing it clears `Port.qos` and deletes the QoS and Queue rows
/// in the same transaction (Open vSwitch never garbage-collects them).
/// A port that already has a QoS row of someone else is left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QosSpec {
    /// The port's name; it must exist (on any bridge).
    pub port: String,
    pub kind: QosType,
    /// `other_config:max-rate`, bits/s: the port's total.
    pub max_rate: Option<u64>,
    /// Queue number (what `set_queue` selects) → its settings.
    pub queues: BTreeMap<u32, QueueSpec>,
}

/// `QoS.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosType {
    LinuxHtb,
    LinuxHfsc,
}

impl QosType {
    pub fn as_str(self) -> &'static str {
        match self {
            QosType::LinuxHtb => "linux-htb",
            QosType::LinuxHfsc => "linux-hfsc",
        }
    }
}

/// One queue's `other_config` (rates in bits/s, burst in bits).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueSpec {
    pub min_rate: Option<u64>,
    pub max_rate: Option<u64>,
    pub burst: Option<u64>,
    /// linux-htb: lower is served first.
    pub priority: Option<u32>,
}

impl QosSpec {
    pub(crate) fn other_config(&self) -> BTreeMap<String, String> {
        config([("max-rate", self.max_rate)])
    }
}

impl QueueSpec {
    pub(crate) fn other_config(&self) -> BTreeMap<String, String> {
        config([
            ("min-rate", self.min_rate),
            ("max-rate", self.max_rate),
            ("burst", self.burst),
            ("priority", self.priority.map(u64::from)),
        ])
    }
}

fn config<const N: usize>(pairs: [(&str, Option<u64>); N]) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_owned(), v?.to_string())))
        .collect()
}
