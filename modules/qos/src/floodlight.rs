//! Floodlight's QoS REST API, so a `qospusher.py`-style script works
//! against Flowgate unchanged: `/wm/qos/policy/json` (GET lists, POST
//! adds, DELETE `{"policy-id": N}` removes) and `/wm/qos/tool/.../json`.
//! Policies land in Flowgate's QoS service like any other.
//!
//! Mapping of a Floodlight policy (values as strings or numbers):
//!
//! | Floodlight       | Flowgate policy                                       |
//! |------------------|-------------------------------------------------------|
//! | `name`           | `name`                                                |
//! | `eth-type`       | `match.eth_type` (decimal or `0x` hex)                |
//! | `protocol`       | `match.ip_proto`                                      |
//! | `ingress-port`   | `in_port`                                             |
//! | `ip-src`/`ip-dst`| `match.ip_src`/`ip_dst`                               |
//! | `tos`            | `match.dscp`: a 6-digit binary DSCP (`"101000"`) or the ToS byte as a number (DSCP = ToS >> 2) |
//! | `eth-src`/`eth-dst` | `match.eth_src`/`eth_dst`                          |
//! | `sw`             | `placement.switch` (absent: every switch)             |
//! | `queue`          | `actions.queue.id`                                    |
//! | `enqueue-port`   | `actions.queue.port` (out of that port, Floodlight's `enqueue`) |
//! | `priority`       | `priority` (default 100)                              |

use axum::extract::State;
use axum::Json;
use flowgate_controller::api::dpid::format_dpid;
use flowgate_controller::api::{ApiError, ApiJson, ApiState, OpenApiRouter};
use flowgate_controller::policy::{Cidr, Dpid, EthType, IpProto, Mac, PacketMatch};
use flowgate_controller::service::Origin;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::model::{Actions, Placement, Policy, QueueAction};
use crate::service::QosService;

/// Priority of a Floodlight policy that gives none.
const DEFAULT_PRIORITY: u16 = 100;

/// The compatibility routes, mounted at the server's root.
pub fn routes(service: QosService) -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list, add, remove))
        .routes(routes!(status))
        .routes(routes!(enable))
        .with_state(service)
}

/// A Floodlight QoS policy as `qospusher.py` sends it.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FloodlightPolicy {
    pub name: Option<String>,
    #[serde(rename = "eth-type")]
    #[schema(value_type = Option<String>)]
    pub eth_type: Option<Value>,
    #[schema(value_type = Option<String>)]
    pub protocol: Option<Value>,
    #[serde(rename = "ingress-port")]
    #[schema(value_type = Option<String>)]
    pub ingress_port: Option<Value>,
    #[serde(rename = "ip-src")]
    pub ip_src: Option<String>,
    #[serde(rename = "ip-dst")]
    pub ip_dst: Option<String>,
    #[schema(value_type = Option<String>)]
    pub tos: Option<Value>,
    #[serde(rename = "eth-src")]
    pub eth_src: Option<String>,
    #[serde(rename = "eth-dst")]
    pub eth_dst: Option<String>,
    pub sw: Option<String>,
    #[schema(value_type = Option<String>)]
    pub queue: Option<Value>,
    #[serde(rename = "enqueue-port")]
    #[schema(value_type = Option<String>)]
    pub enqueue_port: Option<Value>,
    #[schema(value_type = Option<String>)]
    pub priority: Option<Value>,
}

/// Floodlight's answer to a write.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Status {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u32>,
}

/// `DELETE /wm/qos/policy/json` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct PolicyRef {
    #[serde(rename = "policy-id")]
    #[schema(value_type = String)]
    pub policy_id: Value,
}

/// A value Floodlight sends as a string or a number.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.trim().to_owned(),
        other => other.to_string(),
    }
}

fn number<T: std::str::FromStr>(field: &str, v: &Value) -> Result<T, ApiError> {
    let t = text(v);
    t.parse()
        .map_err(|_| ApiError::invalid(field, format!("{t:?} is not a valid number here")))
}

/// Parses one of our text-form values the way the native API does.
fn typed<T: serde::de::DeserializeOwned>(field: &str, v: &str) -> Result<T, ApiError> {
    serde_json::from_value(Value::String(v.to_owned()))
        .map_err(|e| ApiError::invalid(field, e.to_string()))
}

/// The DSCP of Floodlight's `tos`: six binary digits are the DSCP itself,
/// a number is the whole ToS byte.
fn dscp(v: &Value) -> Result<u8, ApiError> {
    let t = text(v);
    if t.len() == 6 && t.chars().all(|c| c == '0' || c == '1') {
        return u8::from_str_radix(&t, 2).map_err(|e| ApiError::invalid("tos", e.to_string()));
    }
    let tos: u8 = number("tos", v)?;
    Ok(tos >> 2)
}

impl FloodlightPolicy {
    /// The Flowgate policy this describes.
    pub fn to_policy(&self) -> Result<Policy, ApiError> {
        let eth_type = match &self.eth_type {
            Some(v) => Some(typed::<EthType>("eth-type", &text(v))?),
            None => None,
        };
        let match_ = PacketMatch {
            eth_type,
            ip_proto: match &self.protocol {
                Some(v) => Some(typed::<IpProto>("protocol", &text(v))?),
                None => None,
            },
            ip_src: self
                .ip_src
                .as_deref()
                .map(|s| typed::<Cidr>("ip-src", s))
                .transpose()?,
            ip_dst: self
                .ip_dst
                .as_deref()
                .map(|s| typed::<Cidr>("ip-dst", s))
                .transpose()?,
            eth_src: self
                .eth_src
                .as_deref()
                .map(|s| typed::<Mac>("eth-src", s))
                .transpose()?,
            eth_dst: self
                .eth_dst
                .as_deref()
                .map(|s| typed::<Mac>("eth-dst", s))
                .transpose()?,
            dscp: self.tos.as_ref().map(dscp).transpose()?,
            ..PacketMatch::default()
        };
        let placement = match &self.sw {
            Some(sw) => Placement::Switch(typed::<Dpid>("sw", sw)?),
            None => Placement::All,
        };
        let queue = match &self.queue {
            Some(q) => Some(QueueAction {
                id: number("queue", q)?,
                port: self.enqueue_port.as_ref().map(text),
            }),
            None if self.enqueue_port.is_some() => {
                return Err(ApiError::invalid("queue", "enqueue-port needs a queue"))
            }
            None => None,
        };
        if queue.is_none() {
            return Err(ApiError::invalid(
                "queue",
                "Flowgate's Floodlight compatibility takes enqueue policies (queue and \
                 optionally enqueue-port); use /api/v1/qos/policies for meters and marking",
            ));
        }
        Ok(Policy {
            id: 0,
            name: self.name.clone(),
            priority: match &self.priority {
                Some(p) => number("priority", p)?,
                None => DEFAULT_PRIORITY,
            },
            match_,
            tenant: None,
            in_port: self
                .ingress_port
                .as_ref()
                .map(|p| number("ingress-port", p))
                .transpose()?,
            actions: Actions {
                queue,
                ..Actions::default()
            },
            placement,
            description: None,
            origin: None,
        })
    }
}

/// A policy in Floodlight's listing shape.
fn floodlight_view(p: &Policy) -> Value {
    let mut obj = serde_json::Map::new();
    let mut put = |k: &str, v: Value| {
        obj.insert(k.to_owned(), v);
    };
    put("policyid", Value::from(p.id));
    put("name", Value::from(p.name.clone().unwrap_or_default()));
    put("priority", Value::from(p.priority));
    let m = &p.match_;
    if let Some(t) = m.eth_type {
        put("ethtype", Value::from(t.0));
    }
    if let Some(proto) = m.ip_proto {
        put("protocol", Value::from(proto.0));
    }
    if let Some(port) = p.in_port {
        put("ingressport", Value::from(port));
    }
    if let Some(ip) = m.ip_src {
        put("ipsrc", Value::from(ip.to_string()));
    }
    if let Some(ip) = m.ip_dst {
        put("ipdst", Value::from(ip.to_string()));
    }
    if let Some(d) = m.dscp {
        put("tos", Value::from(d << 2));
    }
    if let Placement::Switch(d) = &p.placement {
        put("sw", Value::from(format_dpid(d.0)));
    }
    if let Some(q) = &p.actions.queue {
        put("queue", Value::from(q.id));
        if let Some(port) = &q.port {
            put("enqueueport", Value::from(port.clone()));
        }
    }
    Value::Object(obj)
}

/// Every QoS policy, as Floodlight lists them.
#[utoipa::path(get, path = "/wm/qos/policy/json", tag = "floodlight",
    responses((status = 200, description = "Policies in Floodlight's shape", body = [Object])))]
async fn list(State(qos): State<QosService>) -> Result<Json<Vec<Value>>, ApiError> {
    let config = qos.config().await?;
    Ok(Json(
        config.policies.values().map(floodlight_view).collect(),
    ))
}

/// Add a Floodlight QoS policy.
#[utoipa::path(post, path = "/wm/qos/policy/json", tag = "floodlight", request_body = FloodlightPolicy,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Added and confirmed by the switches", body = Status),
        (status = 422, description = "Invalid policy (field named)", body = flowgate_controller::api::ErrorBody),
        (status = 409, description = "Overlap, or the queue is not provisioned", body = flowgate_controller::api::ErrorBody),
    ))]
async fn add(
    State(qos): State<QosService>,
    ApiJson(policy): ApiJson<FloodlightPolicy>,
) -> Result<Json<Status>, ApiError> {
    let policy = policy.to_policy()?;
    let wrote = qos.put_policy(policy, true, Origin::rest(), false).await?;
    Ok(Json(Status {
        status: format!(
            "Policy added: {}",
            wrote.value.name.clone().unwrap_or_default()
        ),
        id: Some(wrote.value.id),
    }))
}

/// Remove a policy by `policy-id`.
#[utoipa::path(delete, path = "/wm/qos/policy/json", tag = "floodlight", request_body = PolicyRef,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Removed", body = Status),
        (status = 404, description = "No such policy", body = flowgate_controller::api::ErrorBody),
    ))]
async fn remove(
    State(qos): State<QosService>,
    ApiJson(which): ApiJson<PolicyRef>,
) -> Result<Json<Status>, ApiError> {
    let id: u32 = number("policy-id", &which.policy_id)?;
    qos.delete_policy(id, Origin::rest()).await?;
    Ok(Json(Status {
        status: format!("Policy {id} removed"),
        id: Some(id),
    }))
}

/// Flowgate's QoS is always on.
#[utoipa::path(get, path = "/wm/qos/tool/status/json", tag = "floodlight",
    responses((status = 200, description = "Always enabled", body = Object)))]
async fn status() -> Json<Value> {
    Json(serde_json::json!({"enabled": true}))
}

/// Accepted for compatibility: Flowgate's QoS is always on.
#[utoipa::path(get, path = "/wm/qos/tool/enable/json", tag = "floodlight",
    responses((status = 200, description = "Enabled", body = Status)))]
async fn enable() -> Json<Status> {
    Json(Status {
        status: "Quality of Service is enabled".into(),
        id: None,
    })
}
