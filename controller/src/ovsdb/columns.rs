//! Which tables and columns a connection monitors: the base the client
//! itself reads (bridges, ports, interfaces, controllers) plus what modules
//! register ([`crate::ovsdb::Hosts::watch`]), e.g. the QoS and Queue tables
//! and `Port.qos`. The monitor request of every connection is built from it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

/// The columns the client reads whatever modules register. Every column
/// named here exists in every Open_vSwitch schema since OVS 2.0.
const BASE: &[(&str, &[&str])] = &[
    (
        "Open_vSwitch",
        &["bridges", "external_ids", "manager_options"],
    ),
    (
        "Bridge",
        &[
            "name",
            "datapath_id",
            "datapath_type",
            "fail_mode",
            "protocols",
            "controller",
            "ports",
            "external_ids",
        ],
    ),
    ("Port", &["name", "interfaces", "external_ids"]),
    (
        "Interface",
        &[
            "name",
            "type",
            "ofport",
            "options",
            "external_ids",
            "mac_in_use",
            "link_state",
            "error",
        ],
    ),
    ("Controller", &["target", "is_connected"]),
];

/// QoS rows with their queues and the ports they are attached to: what the
/// QoS module registers and the reconciler needs to plan QoS objects.
pub const QOS: &[(&str, &[&str])] = &[
    ("Port", &["qos"]),
    ("QoS", &["type", "other_config", "queues", "external_ids"]),
    ("Queue", &["other_config", "external_ids"]),
];

/// Monitored columns by table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns(BTreeMap<String, BTreeSet<String>>);

impl Default for Columns {
    /// The base set.
    fn default() -> Self {
        let mut columns = Columns(BTreeMap::new());
        columns.add(BASE);
        columns
    }
}

impl Columns {
    /// Adds `tables` (table, columns); true if anything was new.
    pub fn add(&mut self, tables: &[(&str, &[&str])]) -> bool {
        let mut changed = false;
        for (table, columns) in tables {
            let known = self.0.entry((*table).to_owned()).or_default();
            for column in *columns {
                changed |= known.insert((*column).to_owned());
            }
        }
        changed
    }

    /// True if every column of `tables` is monitored.
    pub fn covers(&self, tables: &[(&str, &[&str])]) -> bool {
        tables.iter().all(|(table, columns)| {
            self.0
                .get(*table)
                .is_some_and(|known| columns.iter().all(|c| known.contains(*c)))
        })
    }

    /// The `<monitor-requests>` object of a `monitor` request (RFC 7047
    /// §4.1.5).
    pub fn monitor_requests(&self) -> Value {
        let tables: Map<String, Value> = self
            .0
            .iter()
            .map(|(table, columns)| (table.clone(), json!({ "columns": columns })))
            .collect();
        Value::Object(tables)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_add_to_the_base() {
        let mut columns = Columns::default();
        assert!(columns.covers(BASE));
        assert!(!columns.covers(QOS));
        assert!(columns.add(QOS));
        assert!(!columns.add(QOS), "nothing new the second time");
        assert!(columns.covers(QOS) && columns.covers(BASE));
        let request = columns.monitor_requests();
        assert_eq!(
            request["Queue"],
            json!({"columns": ["external_ids", "other_config"]})
        );
        let port = request["Port"]["columns"].as_array().unwrap();
        assert!(port.contains(&json!("qos")) && port.contains(&json!("name")));
    }
}
