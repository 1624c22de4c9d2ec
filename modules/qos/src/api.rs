//! `/qos/...` REST endpoints: thin callers of the [`QosService`].
//!
//! Every write: validate (400 for a body not of the documented shape, 422
//! naming the field whose value is refused, 404 for unknown
//! references, 409 for conflicts and for resources another module owns)
//! → persist → apply, answered once every touched switch confirmed by
//! barrier. `?dry_run=true` validates and answers with the object as it
//! would be stored, changing nothing.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use flowgate_controller::api::dpid::format_dpid;
use flowgate_controller::api::{
    no_origin, same_id, ApiError, ApiJson, ApiPath, ApiState, Deleted, DryRun, ErrorBody,
    OpenApiRouter, WriteAnswer,
};
use flowgate_controller::pipeline::QOS;
use flowgate_controller::service::{Origin, Written};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::compile::{meter_id, policy_cookie};
use crate::config::QosError;
use crate::model::{Binding, Policy, Profile};
use crate::service::{QosService, Wrote};

/// The QoS endpoints, relative to `/api/v1`.
pub fn routes(service: QosService) -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_policies, create_policy))
        .routes(routes!(get_policy, put_policy, delete_policy))
        .routes(routes!(policy_stats))
        .routes(routes!(list_profiles, create_profile))
        .routes(routes!(get_profile, put_profile, delete_profile))
        .routes(routes!(list_bindings, create_binding))
        .routes(routes!(get_binding, put_binding, delete_binding))
        .with_state(service)
}

impl From<QosError> for ApiError {
    fn from(e: QosError) -> ApiError {
        match e {
            QosError::Invalid(f) => ApiError::invalid(f.field, f.reason),
            QosError::Conflict(f) => ApiError::conflict(f.field, f.reason),
            QosError::Missing(f) => ApiError::not_found(f.field, f.reason),
        }
    }
}

/// A policy with where it is placed now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyView {
    #[serde(flatten)]
    pub policy: Policy,
    /// Switches holding its entries now.
    pub switches: Vec<String>,
    /// Why it is on no switch (an unknown host of a path, no path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unplaced: Option<String>,
}

/// `GET /qos/policies/{id}/stats`: the policy's flows and its meter.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyStats {
    pub id: u32,
    /// Sums over the policy's flows on every switch that answered.
    pub packets: u64,
    pub bytes: u64,
    pub switches: Vec<SwitchStats>,
    /// Switches that could not be read, as "dpid: reason".
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SwitchStats {
    pub dpid: String,
    pub flows: usize,
    pub packets: u64,
    pub bytes: u64,
    /// The meter's counters, when the policy meters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter: Option<MeterCounters>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MeterCounters {
    pub packets_in: u64,
    pub bytes_in: u64,
    /// Packets and bytes over the rate (dropped or remarked), per band.
    pub band_packets: Vec<u64>,
    pub band_bytes: Vec<u64>,
}

fn answer<T>(wrote: Wrote<T>) -> (StatusCode, Json<WriteAnswer<T>>) {
    WriteAnswer::reply(wrote.value, wrote.created, wrote.written.as_ref())
}

fn deleted(id: String, written: &Written<()>) -> Json<Deleted> {
    Deleted::reply(id, written)
}

async fn policy_view(qos: &QosService, policy: Policy) -> Result<PolicyView, ApiError> {
    let placed = qos.placement(policy.id).await?;
    let (switches, unplaced) = match placed {
        Some(Ok(dpids)) => (dpids.into_iter().map(format_dpid).collect(), None),
        Some(Err(why)) => (Vec::new(), Some(why)),
        None => (Vec::new(), None),
    };
    Ok(PolicyView {
        policy,
        switches,
        unplaced,
    })
}

/// Policies by id, with where each is placed.
#[utoipa::path(get, path = "/qos/policies", tag = "qos",
    responses((status = 200, description = "Policies", body = [PolicyView])))]
async fn list_policies(State(qos): State<QosService>) -> Result<Json<Vec<PolicyView>>, ApiError> {
    let config = qos.config().await?;
    let mut out = Vec::new();
    for policy in config.policies.into_values() {
        out.push(policy_view(&qos, policy).await?);
    }
    Ok(Json(out))
}

/// Create a policy (the next free id when the body has none).
#[utoipa::path(post, path = "/qos/policies", tag = "qos", params(DryRun), request_body = Policy,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Stored and confirmed by the switches", body = WriteAnswer<Policy>),
        (status = 200, description = "Dry run: the policy as it would be stored", body = WriteAnswer<Policy>),
        (status = 422, description = "Invalid policy (field named)", body = ErrorBody),
        (status = 409, description = "Id exists, same-priority overlap, or the queue is not provisioned", body = ErrorBody),
        (status = 502, description = "A switch rejected it; rolled back", body = ErrorBody),
    ))]
async fn create_policy(
    State(qos): State<QosService>,
    dry: DryRun,
    ApiJson(policy): ApiJson<Policy>,
) -> Result<(StatusCode, Json<WriteAnswer<Policy>>), ApiError> {
    no_origin(&policy.origin)?;
    Ok(answer(
        qos.put_policy(policy, true, Origin::rest(), dry.dry_run)
            .await?,
    ))
}

/// One policy, with where it is placed.
#[utoipa::path(get, path = "/qos/policies/{id}", tag = "qos",
    params(("id" = u32, Path, description = "Policy id")),
    responses(
        (status = 200, description = "The policy", body = PolicyView),
        (status = 404, description = "No such policy", body = ErrorBody),
    ))]
async fn get_policy(
    State(qos): State<QosService>,
    ApiPath(id): ApiPath<u32>,
) -> Result<Json<PolicyView>, ApiError> {
    let policy = qos
        .config()
        .await?
        .policies
        .remove(&id)
        .ok_or_else(|| ApiError::not_found("id", format!("no QoS policy {id}")))?;
    Ok(Json(policy_view(&qos, policy).await?))
}

/// Create or replace policy `id`.
#[utoipa::path(put, path = "/qos/policies/{id}", tag = "qos",
    params(("id" = u32, Path, description = "Policy id"), DryRun), request_body = Policy,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Replaced (or dry run)", body = WriteAnswer<Policy>),
        (status = 201, description = "Created", body = WriteAnswer<Policy>),
        (status = 422, description = "Invalid policy (field named)", body = ErrorBody),
        (status = 409, description = "Overlap, queue not provisioned, or owned by a module", body = ErrorBody),
        (status = 502, description = "A switch rejected it; rolled back", body = ErrorBody),
    ))]
async fn put_policy(
    State(qos): State<QosService>,
    ApiPath(id): ApiPath<u32>,
    dry: DryRun,
    ApiJson(mut policy): ApiJson<Policy>,
) -> Result<(StatusCode, Json<WriteAnswer<Policy>>), ApiError> {
    no_origin(&policy.origin)?;
    same_id(&mut policy.id, id)?;
    Ok(answer(
        qos.put_policy(policy, false, Origin::rest(), dry.dry_run)
            .await?,
    ))
}

/// Delete a policy; its entries and meter leave every switch.
#[utoipa::path(delete, path = "/qos/policies/{id}", tag = "qos",
    params(("id" = u32, Path, description = "Policy id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 404, description = "No such policy", body = ErrorBody),
        (status = 409, description = "Owned by a module", body = ErrorBody),
    ))]
async fn delete_policy(
    State(qos): State<QosService>,
    ApiPath(id): ApiPath<u32>,
) -> Result<Json<Deleted>, ApiError> {
    let written = qos.delete_policy(id, Origin::rest()).await?;
    Ok(deleted(id.to_string(), &written))
}

/// Counters of a policy's flows and meter, live from its switches.
#[utoipa::path(get, path = "/qos/policies/{id}/stats", tag = "qos",
    params(("id" = u32, Path, description = "Policy id")),
    responses(
        (status = 200, description = "Counters", body = PolicyStats),
        (status = 404, description = "No such policy", body = ErrorBody),
    ))]
async fn policy_stats(
    State(qos): State<QosService>,
    ApiPath(id): ApiPath<u32>,
) -> Result<Json<PolicyStats>, ApiError> {
    let config = qos.config().await?;
    let policy = config
        .policies
        .get(&id)
        .ok_or_else(|| ApiError::not_found("id", format!("no QoS policy {id}")))?;
    let metered = policy.actions.meter.is_some();
    let dpids = match qos.placement(id).await? {
        Some(Ok(dpids)) => dpids,
        _ => Vec::new(),
    };
    let runtime = qos.runtime().clone();
    let mut queries = tokio::task::JoinSet::new();
    for dpid in dpids {
        let flows = runtime.flow_stats_by_cookie(dpid, QOS, policy_cookie(id), u64::MAX);
        let meter = metered.then(|| runtime.meter_stats(dpid, meter_id(id)));
        queries.spawn(async move {
            let meter = match meter {
                Some(q) => Some(q.await),
                None => None,
            };
            (dpid, flows.await, meter)
        });
    }
    let mut stats = PolicyStats {
        id,
        packets: 0,
        bytes: 0,
        switches: Vec::new(),
        errors: Vec::new(),
    };
    while let Some(done) = queries.join_next().await {
        let (dpid, flows, meter) = done.map_err(ApiError::internal)?;
        let flows = match flows {
            Ok(flows) => flows,
            Err(e) => {
                stats.errors.push(format!("{}: {e}", format_dpid(dpid)));
                continue;
            }
        };
        let meter = match meter {
            Some(Ok(m)) => m.first().map(|m| MeterCounters {
                packets_in: m.packet_in_count,
                bytes_in: m.byte_in_count,
                band_packets: m.band_stats.iter().map(|b| b.packet_band_count).collect(),
                band_bytes: m.band_stats.iter().map(|b| b.byte_band_count).collect(),
            }),
            Some(Err(e)) => {
                stats
                    .errors
                    .push(format!("{} meter: {e}", format_dpid(dpid)));
                None
            }
            None => None,
        };
        let s = SwitchStats {
            dpid: format_dpid(dpid),
            flows: flows.len(),
            packets: flows.iter().map(|f| f.packet_count).sum(),
            bytes: flows.iter().map(|f| f.byte_count).sum(),
            meter,
        };
        stats.packets += s.packets;
        stats.bytes += s.bytes;
        stats.switches.push(s);
    }
    stats.switches.sort_by(|a, b| a.dpid.cmp(&b.dpid));
    Ok(Json(stats))
}

/// Queue profiles by id.
#[utoipa::path(get, path = "/qos/profiles", tag = "qos",
    responses((status = 200, description = "Profiles", body = [Profile])))]
async fn list_profiles(State(qos): State<QosService>) -> Result<Json<Vec<Profile>>, ApiError> {
    Ok(Json(qos.config().await?.profiles.into_values().collect()))
}

/// Create a queue profile.
#[utoipa::path(post, path = "/qos/profiles", tag = "qos", params(DryRun), request_body = Profile,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Stored", body = WriteAnswer<Profile>),
        (status = 200, description = "Dry run", body = WriteAnswer<Profile>),
        (status = 422, description = "Invalid profile (field named)", body = ErrorBody),
        (status = 409, description = "Id exists", body = ErrorBody),
    ))]
async fn create_profile(
    State(qos): State<QosService>,
    dry: DryRun,
    ApiJson(profile): ApiJson<Profile>,
) -> Result<(StatusCode, Json<WriteAnswer<Profile>>), ApiError> {
    no_origin(&profile.origin)?;
    Ok(answer(
        qos.put_profile(profile, true, Origin::rest(), dry.dry_run)
            .await?,
    ))
}

/// One queue profile.
#[utoipa::path(get, path = "/qos/profiles/{id}", tag = "qos",
    params(("id" = String, Path, description = "Profile id")),
    responses(
        (status = 200, description = "The profile", body = Profile),
        (status = 404, description = "No such profile", body = ErrorBody),
    ))]
async fn get_profile(
    State(qos): State<QosService>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Profile>, ApiError> {
    qos.config()
        .await?
        .profiles
        .remove(&id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("id", format!("no QoS profile {id:?}")))
}

/// Create or replace profile `id` (the bound ports' queues follow).
#[utoipa::path(put, path = "/qos/profiles/{id}", tag = "qos",
    params(("id" = String, Path, description = "Profile id"), DryRun), request_body = Profile,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Replaced (or dry run)", body = WriteAnswer<Profile>),
        (status = 201, description = "Created", body = WriteAnswer<Profile>),
        (status = 422, description = "Invalid profile (field named)", body = ErrorBody),
        (status = 409, description = "A policy uses a queue it drops", body = ErrorBody),
    ))]
async fn put_profile(
    State(qos): State<QosService>,
    ApiPath(id): ApiPath<String>,
    dry: DryRun,
    ApiJson(mut profile): ApiJson<Profile>,
) -> Result<(StatusCode, Json<WriteAnswer<Profile>>), ApiError> {
    no_origin(&profile.origin)?;
    same_id(&mut profile.id, id)?;
    Ok(answer(
        qos.put_profile(profile, false, Origin::rest(), dry.dry_run)
            .await?,
    ))
}

/// Delete a queue profile (no binding may use it).
#[utoipa::path(delete, path = "/qos/profiles/{id}", tag = "qos",
    params(("id" = String, Path, description = "Profile id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 404, description = "No such profile", body = ErrorBody),
        (status = 409, description = "A binding uses it", body = ErrorBody),
    ))]
async fn delete_profile(
    State(qos): State<QosService>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Deleted>, ApiError> {
    let written = qos.delete_profile(id.clone(), Origin::rest()).await?;
    Ok(deleted(id, &written))
}

/// Profiles bound to ports.
#[utoipa::path(get, path = "/qos/ports", tag = "qos",
    responses((status = 200, description = "Bindings", body = [Binding])))]
async fn list_bindings(State(qos): State<QosService>) -> Result<Json<Vec<Binding>>, ApiError> {
    Ok(Json(qos.config().await?.bindings.into_values().collect()))
}

/// Bind a profile to a switch port, every edge port of a switch, or an
/// overlay VM port.
#[utoipa::path(post, path = "/qos/ports", tag = "qos", params(DryRun), request_body = Binding,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Stored", body = WriteAnswer<Binding>),
        (status = 200, description = "Dry run", body = WriteAnswer<Binding>),
        (status = 422, description = "Invalid binding (field named)", body = ErrorBody),
        (status = 404, description = "Unknown profile or port", body = ErrorBody),
        (status = 409, description = "Id exists, or the port is bound", body = ErrorBody),
    ))]
async fn create_binding(
    State(qos): State<QosService>,
    dry: DryRun,
    ApiJson(binding): ApiJson<Binding>,
) -> Result<(StatusCode, Json<WriteAnswer<Binding>>), ApiError> {
    no_origin(&binding.origin)?;
    Ok(answer(
        qos.put_binding(binding, true, Origin::rest(), dry.dry_run)
            .await?,
    ))
}

/// One binding.
#[utoipa::path(get, path = "/qos/ports/{id}", tag = "qos",
    params(("id" = String, Path, description = "Binding id")),
    responses(
        (status = 200, description = "The binding", body = Binding),
        (status = 404, description = "No such binding", body = ErrorBody),
    ))]
async fn get_binding(
    State(qos): State<QosService>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Binding>, ApiError> {
    qos.config()
        .await?
        .bindings
        .remove(&id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("id", format!("no QoS binding {id:?}")))
}

/// Create or replace binding `id`.
#[utoipa::path(put, path = "/qos/ports/{id}", tag = "qos",
    params(("id" = String, Path, description = "Binding id"), DryRun), request_body = Binding,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Replaced (or dry run)", body = WriteAnswer<Binding>),
        (status = 201, description = "Created", body = WriteAnswer<Binding>),
        (status = 422, description = "Invalid binding (field named)", body = ErrorBody),
        (status = 404, description = "Unknown profile or port", body = ErrorBody),
        (status = 409, description = "The port is bound", body = ErrorBody),
    ))]
async fn put_binding(
    State(qos): State<QosService>,
    ApiPath(id): ApiPath<String>,
    dry: DryRun,
    ApiJson(mut binding): ApiJson<Binding>,
) -> Result<(StatusCode, Json<WriteAnswer<Binding>>), ApiError> {
    no_origin(&binding.origin)?;
    same_id(&mut binding.id, id)?;
    Ok(answer(
        qos.put_binding(binding, false, Origin::rest(), dry.dry_run)
            .await?,
    ))
}

/// Unbind; the port's QoS and queues are removed.
#[utoipa::path(delete, path = "/qos/ports/{id}", tag = "qos",
    params(("id" = String, Path, description = "Binding id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 404, description = "No such binding", body = ErrorBody),
        (status = 409, description = "A policy sends packets to its queues", body = ErrorBody),
    ))]
async fn delete_binding(
    State(qos): State<QosService>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Deleted>, ApiError> {
    let written = qos.delete_binding(id.clone(), Origin::rest()).await?;
    Ok(deleted(id, &written))
}
