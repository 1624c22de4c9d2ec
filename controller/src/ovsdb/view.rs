//! Typed reading of a host's replica: the Open_vSwitch row, bridges with
//! datapath ids, their ports and interfaces, and QoS and Queue rows when
//! they are monitored. These are what the rest of Flowgate reasons about;
//! the raw JSON stays inside this module.

use std::collections::BTreeMap;

use serde::Serialize;

use super::columns::Columns;
use super::datum;
use super::replica::{Replica, Row};

/// One host as its OVSDB shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HostView {
    /// The Open_vSwitch row's uuid (stable for the life of the database).
    pub root_uuid: Option<String>,
    /// `Open_vSwitch.external_ids`, e.g. `system-id`, `hostname`.
    pub external_ids: BTreeMap<String, String>,
    pub bridges: Vec<BridgeView>,
    /// Every QoS row, attached to a port or not (QoS is a root table: an
    /// unreferenced row stays), by uuid. Empty unless monitored.
    pub qos: Vec<QosView>,
    /// Every Queue row (a root table too), by uuid.
    pub queues: Vec<QueueView>,
    /// The columns this view was read from.
    #[serde(skip)]
    pub columns: Columns,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BridgeView {
    pub uuid: String,
    pub name: String,
    /// `datapath_id` as the switch reports it over OpenFlow.
    pub datapath_id: Option<u64>,
    pub datapath_type: String,
    pub fail_mode: Option<String>,
    pub protocols: Vec<String>,
    /// Controller targets with their connection state.
    pub controllers: Vec<ControllerView>,
    pub external_ids: BTreeMap<String, String>,
    pub ports: Vec<PortView>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ControllerView {
    pub uuid: String,
    pub target: String,
    pub is_connected: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PortView {
    pub uuid: String,
    pub name: String,
    pub external_ids: BTreeMap<String, String>,
    pub interfaces: Vec<InterfaceView>,
    /// `qos`: the uuid of the QoS row attached, if any (and monitored).
    pub qos: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct InterfaceView {
    pub uuid: String,
    pub name: String,
    /// `type`: "" (system), "internal", "vxlan", "geneve", ...
    pub kind: String,
    /// OpenFlow port number; absent or -1 while the port is not up.
    pub ofport: Option<i64>,
    pub options: BTreeMap<String, String>,
    pub external_ids: BTreeMap<String, String>,
    pub mac_in_use: Option<String>,
    pub link_state: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QosView {
    pub uuid: String,
    /// `type`: "linux-htb", "linux-hfsc", ...
    pub kind: String,
    pub other_config: BTreeMap<String, String>,
    pub external_ids: BTreeMap<String, String>,
    /// Queue number → Queue row uuid.
    pub queues: BTreeMap<u32, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueView {
    pub uuid: String,
    /// `min-rate`, `max-rate`, `burst`, `priority`, ...
    pub other_config: BTreeMap<String, String>,
    pub external_ids: BTreeMap<String, String>,
}

impl InterfaceView {
    /// The OpenFlow port number once OVS assigned one.
    pub fn port_no(&self) -> Option<u32> {
        self.ofport
            .filter(|p| *p > 0)
            .and_then(|p| u32::try_from(p).ok())
    }
}

impl HostView {
    /// Reads the typed view out of a replica; dangling references (a row a
    /// later update will bring) are skipped.
    pub fn from_replica(replica: &Replica) -> HostView {
        let root = replica.table("Open_vSwitch").and_then(|t| t.iter().next());
        let mut view = HostView {
            root_uuid: root.map(|(u, _)| u.clone()),
            columns: replica.columns.clone(),
            ..Default::default()
        };
        for (uuid, row) in replica.table("QoS").into_iter().flatten() {
            view.qos.push(QosView {
                uuid: uuid.clone(),
                kind: col_string(row, "type").unwrap_or_default(),
                other_config: col_map(row, "other_config"),
                external_ids: col_map(row, "external_ids"),
                queues: row
                    .get("queues")
                    .map(datum::uuid_by_int)
                    .unwrap_or_default(),
            });
        }
        for (uuid, row) in replica.table("Queue").into_iter().flatten() {
            view.queues.push(QueueView {
                uuid: uuid.clone(),
                other_config: col_map(row, "other_config"),
                external_ids: col_map(row, "external_ids"),
            });
        }
        let Some((_, root)) = root else {
            return view;
        };
        view.external_ids = col_map(root, "external_ids");
        for uuid in col_uuids(root, "bridges") {
            if let Some(row) = replica.row("Bridge", &uuid) {
                view.bridges.push(bridge(replica, uuid, row));
            }
        }
        view.bridges.sort_by(|a, b| a.name.cmp(&b.name));
        view
    }

    pub fn bridge(&self, name: &str) -> Option<&BridgeView> {
        self.bridges.iter().find(|b| b.name == name)
    }

    /// The port named `name` on any bridge (port names are unique on a
    /// host), with its bridge.
    pub fn port(&self, name: &str) -> Option<(&BridgeView, &PortView)> {
        self.bridges
            .iter()
            .find_map(|b| Some((b, b.ports.iter().find(|p| p.name == name)?)))
    }

    /// True if a row with `uuid` is in the view (whatever its table).
    pub fn has_row(&self, uuid: &str) -> bool {
        self.bridges.iter().any(|b| {
            b.uuid == uuid
                || b.controllers.iter().any(|c| c.uuid == uuid)
                || b.ports
                    .iter()
                    .any(|p| p.uuid == uuid || p.interfaces.iter().any(|i| i.uuid == uuid))
        }) || self.qos.iter().any(|q| q.uuid == uuid)
            || self.queues.iter().any(|q| q.uuid == uuid)
    }

    pub fn qos_row(&self, uuid: &str) -> Option<&QosView> {
        self.qos.iter().find(|q| q.uuid == uuid)
    }

    pub fn queue_row(&self, uuid: &str) -> Option<&QueueView> {
        self.queues.iter().find(|q| q.uuid == uuid)
    }

    /// `external_ids:system-id`, falling back to the database's root uuid:
    /// a name for the host that survives reconnects.
    pub fn host_id(&self) -> Option<String> {
        self.external_ids
            .get("system-id")
            .filter(|s| !s.is_empty())
            .cloned()
            .or_else(|| self.root_uuid.clone())
    }
}

impl BridgeView {
    pub fn interfaces(&self) -> impl Iterator<Item = &InterfaceView> {
        self.ports.iter().flat_map(|p| p.interfaces.iter())
    }
}

fn bridge(replica: &Replica, uuid: String, row: &Row) -> BridgeView {
    let mut ports: Vec<PortView> = col_uuids(row, "ports")
        .into_iter()
        .filter_map(|u| {
            let prow = replica.row("Port", &u)?;
            let mut interfaces: Vec<InterfaceView> = col_uuids(prow, "interfaces")
                .into_iter()
                .filter_map(|iu| {
                    let irow = replica.row("Interface", &iu)?;
                    Some(interface(iu, irow))
                })
                .collect();
            interfaces.sort_by(|a, b| a.name.cmp(&b.name));
            Some(PortView {
                uuid: u,
                name: col_string(prow, "name").unwrap_or_default(),
                external_ids: col_map(prow, "external_ids"),
                interfaces,
                qos: col_uuids(prow, "qos").into_iter().next(),
            })
        })
        .collect();
    ports.sort_by(|a, b| a.name.cmp(&b.name));
    let controllers = col_uuids(row, "controller")
        .into_iter()
        .filter_map(|u| {
            let c = replica.row("Controller", &u)?;
            Some(ControllerView {
                uuid: u,
                target: col_string(c, "target").unwrap_or_default(),
                is_connected: c.get("is_connected").and_then(|v| v.as_bool()) == Some(true),
            })
        })
        .collect();
    BridgeView {
        uuid,
        name: col_string(row, "name").unwrap_or_default(),
        datapath_id: col_string(row, "datapath_id").and_then(|s| u64::from_str_radix(&s, 16).ok()),
        datapath_type: col_string(row, "datapath_type").unwrap_or_default(),
        fail_mode: col_string(row, "fail_mode"),
        protocols: row
            .get("protocols")
            .map(datum::string_set)
            .unwrap_or_default(),
        controllers,
        external_ids: col_map(row, "external_ids"),
        ports,
    }
}

fn interface(uuid: String, row: &Row) -> InterfaceView {
    InterfaceView {
        uuid,
        name: col_string(row, "name").unwrap_or_default(),
        kind: col_string(row, "type").unwrap_or_default(),
        ofport: row.get("ofport").and_then(datum::opt_int),
        options: col_map(row, "options"),
        external_ids: col_map(row, "external_ids"),
        mac_in_use: col_string(row, "mac_in_use"),
        link_state: col_string(row, "link_state"),
        error: col_string(row, "error"),
    }
}

fn col_string(row: &Row, column: &str) -> Option<String> {
    row.get(column).and_then(datum::opt_string)
}

fn col_map(row: &Row, column: &str) -> BTreeMap<String, String> {
    row.get(column).map(datum::string_map).unwrap_or_default()
}

fn col_uuids(row: &Row, column: &str) -> Vec<String> {
    row.get(column).map(datum::uuid_set).unwrap_or_default()
}
