//! A local copy of the monitored tables, kept current by the `monitor`
//! reply (the initial contents) and `update` notifications (RFC 7047
//! §4.1.5–4.1.6).
//!
//! Update format: `{table: {uuid: {"old": row?, "new": row?}}}`. No `new`
//! deletes the row; a `new` carries the row's columns after the change,
//! which we merge into the copy (a modify may omit unchanged columns).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::columns::Columns;
use super::rpc::RpcError;

/// One row: column name → OVSDB datum.
pub type Row = Map<String, Value>;

/// Monitored tables by name, rows by uuid.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replica {
    pub tables: BTreeMap<String, BTreeMap<String, Row>>,
    /// What the monitor asked for: a column missing from a row is empty
    /// only if it is monitored.
    pub columns: Columns,
}

impl Replica {
    /// An empty copy of a monitor of `columns`.
    pub fn new(columns: Columns) -> Replica {
        Replica {
            tables: BTreeMap::new(),
            columns,
        }
    }

    /// Applies a `<table-updates>` object.
    pub fn apply(&mut self, updates: &Value) -> Result<(), RpcError> {
        let Value::Object(tables) = updates else {
            return Err(RpcError("table-updates is not an object".into()));
        };
        for (table, rows) in tables {
            let Value::Object(rows) = rows else {
                return Err(RpcError(format!("updates of table {table} not an object")));
            };
            let copy = self.tables.entry(table.clone()).or_default();
            for (uuid, update) in rows {
                match update.get("new") {
                    Some(Value::Object(new)) => {
                        let row = copy.entry(uuid.clone()).or_default();
                        for (column, value) in new {
                            row.insert(column.clone(), value.clone());
                        }
                    }
                    Some(_) => {
                        return Err(RpcError(format!("row {uuid} of {table}: bad \"new\"")));
                    }
                    None => {
                        copy.remove(uuid);
                    }
                }
            }
        }
        Ok(())
    }

    /// Rows of every table.
    pub fn rows(&self) -> usize {
        self.tables.values().map(BTreeMap::len).sum()
    }

    pub fn table(&self, name: &str) -> Option<&BTreeMap<String, Row>> {
        self.tables.get(name)
    }

    pub fn row(&self, table: &str, uuid: &str) -> Option<&Row> {
        self.tables.get(table)?.get(uuid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn insert_modify_delete() {
        let mut r = Replica::default();
        r.apply(&json!({"Bridge": {"u1": {"new": {"name": "br-int", "fail_mode": "secure"}}}}))
            .unwrap();
        assert_eq!(r.row("Bridge", "u1").unwrap()["name"], json!("br-int"));
        r.apply(&json!({"Bridge": {"u1": {"old": {"fail_mode": "secure"}, "new": {"fail_mode": ["set", []]}}}}))
            .unwrap();
        let row = r.row("Bridge", "u1").unwrap();
        assert_eq!(row["name"], json!("br-int"), "unchanged column kept");
        assert_eq!(row["fail_mode"], json!(["set", []]));
        r.apply(&json!({"Bridge": {"u1": {"old": {"name": "br-int"}}}}))
            .unwrap();
        assert!(r.row("Bridge", "u1").is_none());
        assert!(r.apply(&json!([1])).is_err());
        assert!(r.apply(&json!({"Bridge": {"u2": {"new": 3}}})).is_err());
    }
}
