//! JSON-RPC 1.0 message shapes as OVSDB uses them (RFC 7047 §4):
//! requests `{"method", "params", "id"}`, responses `{"result", "error",
//! "id"}`, notifications = requests with `"id": null`.

use serde_json::{json, Value};
use thiserror::Error;

/// One message received from the peer.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// The peer asks something of us (`echo` is the one we must answer).
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    /// A notification (`update` for our monitor, `locked`, ...).
    Notification { method: String, params: Value },
    /// The answer to one of our requests.
    Response {
        id: Value,
        result: Value,
        error: Value,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("malformed JSON-RPC message: {0}")]
pub struct RpcError(pub String);

impl Incoming {
    pub fn parse(message: Value) -> Result<Incoming, RpcError> {
        let Value::Object(mut obj) = message else {
            return Err(RpcError("not an object".into()));
        };
        let id = obj.remove("id").unwrap_or(Value::Null);
        if let Some(method) = obj.remove("method") {
            let Value::String(method) = method else {
                return Err(RpcError("method is not a string".into()));
            };
            let params = obj.remove("params").unwrap_or(Value::Null);
            return Ok(if id.is_null() {
                Incoming::Notification { method, params }
            } else {
                Incoming::Request { id, method, params }
            });
        }
        if obj.contains_key("result") || obj.contains_key("error") {
            if id.is_null() {
                return Err(RpcError("response without id".into()));
            }
            return Ok(Incoming::Response {
                id,
                result: obj.remove("result").unwrap_or(Value::Null),
                error: obj.remove("error").unwrap_or(Value::Null),
            });
        }
        Err(RpcError("neither request nor response".into()))
    }
}

/// A request we send.
pub fn request(id: u64, method: &str, params: Value) -> Value {
    json!({"id": id, "method": method, "params": params})
}

/// A successful response to the peer's request `id`.
pub fn response(id: Value, result: Value) -> Value {
    json!({"id": id, "result": result, "error": null})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(
            Incoming::parse(json!({"id":"echo","method":"echo","params":[]})).unwrap(),
            Incoming::Request {
                id: json!("echo"),
                method: "echo".into(),
                params: json!([])
            }
        );
        assert!(matches!(
            Incoming::parse(json!({"id":null,"method":"update","params":[1,{}]})).unwrap(),
            Incoming::Notification { .. }
        ));
        assert!(matches!(
            Incoming::parse(json!({"id":3,"result":{},"error":null})).unwrap(),
            Incoming::Response { .. }
        ));
        assert!(Incoming::parse(json!({"id":3})).is_err());
        assert!(Incoming::parse(json!({"id":null,"result":1})).is_err());
        assert!(Incoming::parse(json!({"method":7})).is_err());
    }
}
