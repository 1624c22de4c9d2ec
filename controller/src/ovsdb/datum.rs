//! OVSDB's JSON notation for values (RFC 7047 §5.1): atoms are JSON
//! scalars or `["uuid", "..."]` / `["named-uuid", "..."]`; a set is a single
//! atom or `["set", [atoms]]`; a map is `["map", [[key, value], ...]]`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// `["uuid", u]` → `u`.
pub fn uuid(value: &Value) -> Option<&str> {
    match value.as_array().map(Vec::as_slice) {
        Some([tag, Value::String(u)]) if tag == "uuid" => Some(u),
        _ => None,
    }
}

/// The elements of a set column (a lone atom is a one-element set).
pub fn set(value: &Value) -> Vec<&Value> {
    match value.as_array().map(Vec::as_slice) {
        Some([tag, Value::Array(items)]) if tag == "set" => items.iter().collect(),
        _ => vec![value],
    }
}

/// Uuids in a set-of-references column.
pub fn uuid_set(value: &Value) -> Vec<String> {
    set(value)
        .into_iter()
        .filter_map(uuid)
        .map(str::to_owned)
        .collect()
}

/// Strings in a set-of-strings column (an empty optional value is `[]`).
pub fn string_set(value: &Value) -> Vec<String> {
    set(value)
        .into_iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// An optional string column (`["set", []]` when empty).
pub fn opt_string(value: &Value) -> Option<String> {
    string_set(value).into_iter().next()
}

/// An optional integer column.
pub fn opt_int(value: &Value) -> Option<i64> {
    set(value).into_iter().find_map(Value::as_i64)
}

/// A string→string map column; other pairs are skipped.
pub fn string_map(value: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some([tag, Value::Array(pairs)]) = value.as_array().map(Vec::as_slice) {
        if tag == "map" {
            for pair in pairs {
                if let Some([Value::String(k), Value::String(v)]) =
                    pair.as_array().map(Vec::as_slice)
                {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
    }
    out
}

/// An integer→uuid map column (`QoS.queues`); other pairs are skipped.
pub fn uuid_by_int(value: &Value) -> BTreeMap<u32, String> {
    let mut out = BTreeMap::new();
    if let Some([tag, Value::Array(pairs)]) = value.as_array().map(Vec::as_slice) {
        if tag == "map" {
            for pair in pairs {
                if let Some([k, v]) = pair.as_array().map(Vec::as_slice) {
                    let key = k.as_u64().and_then(|k| u32::try_from(k).ok());
                    if let (Some(key), Some(u)) = (key, uuid(v)) {
                        out.insert(key, u.to_owned());
                    }
                }
            }
        }
    }
    out
}

/// Encodes a string→string map.
pub fn map_of<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
    let pairs: Vec<Value> = pairs.into_iter().map(|(k, v)| json!([k, v])).collect();
    json!(["map", pairs])
}

/// Encodes a set of atoms.
pub fn set_of(items: impl IntoIterator<Item = Value>) -> Value {
    json!(["set", items.into_iter().collect::<Vec<_>>()])
}

/// `["uuid", u]`.
pub fn uuid_ref(u: &str) -> Value {
    json!(["uuid", u])
}

/// `["named-uuid", name]`, a row inserted earlier in the same transaction.
pub fn named_ref(name: &str) -> Value {
    json!(["named-uuid", name])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_and_atoms() {
        assert_eq!(string_set(&json!("a")), vec!["a"]);
        assert_eq!(string_set(&json!(["set", ["a", "b"]])), vec!["a", "b"]);
        assert_eq!(opt_string(&json!(["set", []])), None);
        assert_eq!(opt_int(&json!(5)), Some(5));
        assert_eq!(opt_int(&json!(["set", []])), None);
        assert_eq!(
            uuid_set(&json!(["set", [["uuid", "u1"], ["uuid", "u2"]]])),
            vec!["u1", "u2"]
        );
        assert_eq!(uuid_set(&json!(["uuid", "u1"])), vec!["u1"]);
    }

    #[test]
    fn maps() {
        let m = string_map(&json!(["map", [["iface-id", "vm1"], ["n", 1]]]));
        assert_eq!(m.len(), 1);
        assert_eq!(m["iface-id"], "vm1");
        assert_eq!(map_of([("key", "flow")]), json!(["map", [["key", "flow"]]]));
        assert!(string_map(&json!(["set", []])).is_empty());
        let queues = uuid_by_int(&json!([
            "map",
            [
                [0, ["uuid", "q0"]],
                [7, ["uuid", "q7"]],
                [-1, ["uuid", "x"]]
            ]
        ]));
        assert_eq!(queues.len(), 2);
        assert_eq!(queues[&7], "q7");
    }
}
