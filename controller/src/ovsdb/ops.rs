//! Builders for `transact` operations (RFC 7047 §5.2). A transaction is
//! `["Open_vSwitch", op, op, ...]`, applied atomically by the server.

use serde_json::{json, Value};

use super::datum;

/// `where` clause selecting one row by uuid.
pub fn by_uuid(uuid: &str) -> Value {
    json!([["_uuid", "==", datum::uuid_ref(uuid)]])
}

/// Inserts `row` into `table`; later operations refer to it as
/// `["named-uuid", name]`.
pub fn insert(table: &str, row: Value, name: &str) -> Value {
    json!({"op": "insert", "table": table, "row": row, "uuid-name": name})
}

/// Sets columns of the row with `uuid`.
pub fn update(table: &str, uuid: &str, row: Value) -> Value {
    json!({"op": "update", "table": table, "where": by_uuid(uuid), "row": row})
}

/// Inserts `values` into the set column `column` of the row with `uuid`.
pub fn set_insert(table: &str, uuid: &str, column: &str, values: Vec<Value>) -> Value {
    json!({"op": "mutate", "table": table, "where": by_uuid(uuid),
           "mutations": [[column, "insert", datum::set_of(values)]]})
}

/// Deletes `values` from the set column `column` of the row with `uuid`.
pub fn set_delete(table: &str, uuid: &str, column: &str, values: Vec<Value>) -> Value {
    json!({"op": "mutate", "table": table, "where": by_uuid(uuid),
           "mutations": [[column, "delete", datum::set_of(values)]]})
}

/// Sets `pairs` in the string→string map column `column` of the row with
/// `uuid`, leaving its other keys alone (a map `insert` never overwrites a
/// key, so the keys are deleted first).
pub fn map_put(
    table: &str,
    uuid: &str,
    column: &str,
    pairs: &std::collections::BTreeMap<String, String>,
) -> Value {
    let keys = datum::set_of(pairs.keys().map(|k| json!(k)));
    let map = datum::map_of(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    json!({"op": "mutate", "table": table, "where": by_uuid(uuid),
           "mutations": [[column, "delete", keys], [column, "insert", map]]})
}

/// Deletes the row with `uuid` (it must not be referenced any more when
/// the transaction commits).
pub fn delete(table: &str, uuid: &str) -> Value {
    json!({"op": "delete", "table": table, "where": by_uuid(uuid)})
}

/// A comment recorded in the server's log with the transaction.
pub fn comment(text: &str) -> Value {
    json!({"op": "comment", "comment": text})
}

/// The `transact` params for `ops` against the Open_vSwitch database.
pub fn transaction(ops: Vec<Value>) -> Value {
    let mut params = vec![Value::String(super::DATABASE.to_owned())];
    params.extend(ops);
    Value::Array(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(
            set_insert("Bridge", "u1", "ports", vec![datum::named_ref("p")]),
            json!({"op":"mutate","table":"Bridge","where":[["_uuid","==",["uuid","u1"]]],
                   "mutations":[["ports","insert",["set",[["named-uuid","p"]]]]]})
        );
        let pairs = [("a".to_owned(), "1".to_owned())].into_iter().collect();
        assert_eq!(
            map_put("Port", "u1", "external_ids", &pairs)["mutations"],
            json!([
                ["external_ids", "delete", ["set", ["a"]]],
                ["external_ids", "insert", ["map", [["a", "1"]]]]
            ])
        );
        assert_eq!(
            transaction(vec![comment("x")]),
            json!(["Open_vSwitch", {"op":"comment","comment":"x"}])
        );
    }
}
