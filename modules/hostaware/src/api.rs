//! `/hostaware/...` REST endpoints: thin callers of the
//! [`HostAwareService`]. Reads of values, reactions and events never wait
//! on sources or switches.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use flowgate_controller::api::dpid::format_dpid;
use flowgate_controller::api::{
    no_origin, same_id, ApiError, ApiJson, ApiPath, ApiQuery, ApiState, Deleted, DryRun, ErrorBody,
    OpenApiRouter, WriteAnswer,
};
use flowgate_controller::service::Origin;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

use crate::audit::{AuditEvent, Kind};
use crate::model::{Metric, MonitoredHost, Rule, Settings};
use crate::module::HostAwareError;
use crate::service::{EventFilter, HostAwareService};
use crate::status::{MetricStatus, Reaction};

/// The host-aware endpoints, relative to `/api/v1`.
pub fn routes(service: HostAwareService) -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(get_settings, put_settings))
        .routes(routes!(list_hosts, create_host))
        .routes(routes!(get_host, put_host, delete_host))
        .routes(routes!(host_metric))
        .routes(routes!(list_rules, create_rule))
        .routes(routes!(get_rule, put_rule, delete_rule))
        .routes(routes!(list_reactions))
        .routes(routes!(list_events))
        .with_state(service)
}

impl From<HostAwareError> for ApiError {
    fn from(e: HostAwareError) -> ApiError {
        match e {
            HostAwareError::Invalid(f) => ApiError::invalid(f.field, f.reason),
            HostAwareError::Conflict(f) => ApiError::conflict(f.field, f.reason),
            HostAwareError::Missing(f) => ApiError::not_found(f.field, f.reason),
        }
    }
}

/// A monitored host with what is known of it now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HostView {
    #[serde(flatten)]
    pub host: MonitoredHost,
    pub status: HostStatus,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HostStatus {
    /// Where the topology's host table has it.
    pub location: Option<Location>,
    /// Each metric a rule polls: the newest value, or why there is none.
    pub metrics: BTreeMap<String, MetricStatus>,
    /// Rules whose threshold it is past (acting, or overridden by a
    /// higher-priority rule in the same slot).
    pub active_rules: Vec<u32>,
    pub reactions: Vec<Reaction>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Location {
    pub dpid: String,
    pub port: u32,
}

/// A rule with where it stands.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuleView {
    #[serde(flatten)]
    pub rule: Rule,
    pub status: RuleStatus,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuleStatus {
    /// The newest value per host it watches (absent: no value yet).
    pub values: BTreeMap<String, f64>,
    /// Hosts past its threshold.
    pub active_on: Vec<String>,
    /// Hosts where its action is in place.
    pub acting_on: Vec<String>,
}

/// `GET /hostaware/hosts/{id}/metrics/{metric}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MetricHistory {
    pub host: String,
    pub metric: String,
    pub window_s: u64,
    /// Oldest first.
    pub points: Vec<Point>,
    /// The rules over this metric on this host, to draw with it.
    pub thresholds: Vec<Threshold>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Point {
    #[serde(with = "crate::status::time")]
    #[schema(value_type = String)]
    pub time: SystemTime,
    pub value: f64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Threshold {
    pub rule: u32,
    pub comparator: String,
    pub threshold: f64,
    pub clear: f64,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WindowQuery {
    /// Seconds of history (default 600).
    pub window: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// Only events after this sequence number.
    pub since: Option<u64>,
    /// At most this many (default 1000).
    pub limit: Option<u32>,
    pub host: Option<String>,
    pub rule: Option<u32>,
    /// `INFO`, `WARN`, `THRESHOLD_MET`, `ACTION_APPLIED`, `REVERTED`,
    /// `SOURCE_STALE`.
    pub kind: Option<String>,
}

/// Settings: whether rules run, and where the Ganglia sources are.
#[utoipa::path(get, path = "/hostaware/settings", tag = "hostaware",
    responses((status = 200, description = "Settings", body = Settings)))]
async fn get_settings(State(ha): State<HostAwareService>) -> Result<Json<Settings>, ApiError> {
    Ok(Json(ha.config().await?.settings))
}

/// Replace the settings (`enabled: false` reverts every reaction).
#[utoipa::path(put, path = "/hostaware/settings", tag = "hostaware", request_body = Settings,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Stored", body = WriteAnswer<Settings>),
        (status = 422, description = "Invalid settings (field named)", body = ErrorBody),
    ))]
async fn put_settings(
    State(ha): State<HostAwareService>,
    ApiJson(settings): ApiJson<Settings>,
) -> Result<(StatusCode, Json<WriteAnswer<Settings>>), ApiError> {
    let wrote = ha.put_settings(settings, Origin::rest()).await?;
    Ok(WriteAnswer::reply(
        wrote.value,
        false,
        wrote.written.as_ref(),
    ))
}

async fn host_view(ha: &HostAwareService, host: MonitoredHost) -> Result<HostView, ApiError> {
    let location = ha
        .location(host.clone())
        .await?
        .map(|(dpid, port)| Location {
            dpid: format_dpid(dpid),
            port,
        });
    let board = ha.board().await?;
    let board = board
        .read()
        .map_err(|_| ApiError::internal(anyhow::anyhow!("status poisoned")))?;
    let status = HostStatus {
        location,
        metrics: board.metrics.get(&host.id).cloned().unwrap_or_default(),
        active_rules: board.active.get(&host.id).cloned().unwrap_or_default(),
        reactions: board
            .reactions
            .iter()
            .filter(|r| r.host == host.id)
            .cloned()
            .collect(),
    };
    drop(board);
    Ok(HostView { host, status })
}

/// Monitored hosts with their metric values, location and reactions.
#[utoipa::path(get, path = "/hostaware/hosts", tag = "hostaware",
    responses((status = 200, description = "Hosts", body = [HostView])))]
async fn list_hosts(State(ha): State<HostAwareService>) -> Result<Json<Vec<HostView>>, ApiError> {
    let mut out = Vec::new();
    for host in ha.config().await?.hosts.into_values() {
        out.push(host_view(&ha, host).await?);
    }
    Ok(Json(out))
}

/// Watch a host.
#[utoipa::path(post, path = "/hostaware/hosts", tag = "hostaware", params(DryRun),
    request_body = MonitoredHost, security(("bearer" = [])),
    responses(
        (status = 201, description = "Stored", body = WriteAnswer<MonitoredHost>),
        (status = 200, description = "Dry run", body = WriteAnswer<MonitoredHost>),
        (status = 422, description = "Invalid host (field named)", body = ErrorBody),
        (status = 409, description = "Id exists", body = ErrorBody),
    ))]
async fn create_host(
    State(ha): State<HostAwareService>,
    dry: DryRun,
    ApiJson(host): ApiJson<MonitoredHost>,
) -> Result<(StatusCode, Json<WriteAnswer<MonitoredHost>>), ApiError> {
    let wrote = ha.put_host(host, true, Origin::rest(), dry.dry_run).await?;
    Ok(WriteAnswer::reply(
        wrote.value,
        wrote.created,
        wrote.written.as_ref(),
    ))
}

/// One host.
#[utoipa::path(get, path = "/hostaware/hosts/{id}", tag = "hostaware",
    params(("id" = String, Path, description = "Host id")),
    responses(
        (status = 200, description = "The host", body = HostView),
        (status = 404, description = "No such host", body = ErrorBody),
    ))]
async fn get_host(
    State(ha): State<HostAwareService>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<HostView>, ApiError> {
    let host = ha
        .config()
        .await?
        .hosts
        .remove(&id)
        .ok_or_else(|| ApiError::not_found("id", format!("no host-aware host {id:?}")))?;
    Ok(Json(host_view(&ha, host).await?))
}

/// Create or replace host `id`.
#[utoipa::path(put, path = "/hostaware/hosts/{id}", tag = "hostaware",
    params(("id" = String, Path, description = "Host id"), DryRun), request_body = MonitoredHost,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Replaced (or dry run)", body = WriteAnswer<MonitoredHost>),
        (status = 201, description = "Created", body = WriteAnswer<MonitoredHost>),
        (status = 422, description = "Invalid host (field named)", body = ErrorBody),
        (status = 409, description = "A rule needs what the change removes", body = ErrorBody),
    ))]
async fn put_host(
    State(ha): State<HostAwareService>,
    ApiPath(id): ApiPath<String>,
    dry: DryRun,
    ApiJson(mut host): ApiJson<MonitoredHost>,
) -> Result<(StatusCode, Json<WriteAnswer<MonitoredHost>>), ApiError> {
    same_id(&mut host.id, id)?;
    let wrote = ha
        .put_host(host, false, Origin::rest(), dry.dry_run)
        .await?;
    Ok(WriteAnswer::reply(
        wrote.value,
        wrote.created,
        wrote.written.as_ref(),
    ))
}

/// Stop watching a host; its reactions are reverted.
#[utoipa::path(delete, path = "/hostaware/hosts/{id}", tag = "hostaware",
    params(("id" = String, Path, description = "Host id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 404, description = "No such host", body = ErrorBody),
    ))]
async fn delete_host(
    State(ha): State<HostAwareService>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Deleted>, ApiError> {
    let written = ha.delete_host(id.clone(), Origin::rest()).await?;
    Ok(Deleted::reply(id, &written))
}

/// A metric's recent values on a host, with the thresholds of the rules
/// over it.
#[utoipa::path(get, path = "/hostaware/hosts/{id}/metrics/{metric}", tag = "hostaware",
    params(("id" = String, Path, description = "Host id"),
           ("metric" = String, Path, description = "Metric as rules name it (`load_one`, `switch:rx_bps`)"),
           WindowQuery),
    responses(
        (status = 200, description = "Values, oldest first", body = MetricHistory),
        (status = 422, description = "Not a metric name", body = ErrorBody),
        (status = 404, description = "No such host", body = ErrorBody),
    ))]
async fn host_metric(
    State(ha): State<HostAwareService>,
    ApiPath((id, metric)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<WindowQuery>,
) -> Result<Json<MetricHistory>, ApiError> {
    let parsed: Metric = metric
        .parse()
        .map_err(|e: String| ApiError::invalid("metric", e))?;
    let config = ha.config().await?;
    let host = config
        .hosts
        .get(&id)
        .ok_or_else(|| ApiError::not_found("id", format!("no host-aware host {id:?}")))?;
    let window = q.window.unwrap_or(600);
    let board = ha.board().await?;
    let points = board
        .read()
        .map_err(|_| ApiError::internal(anyhow::anyhow!("status poisoned")))?
        .history(
            &id,
            &parsed.to_string(),
            Duration::from_secs(window),
            SystemTime::now(),
        )
        .into_iter()
        .map(|(time, value)| Point { time, value })
        .collect();
    let thresholds = config
        .rules
        .values()
        .filter(|r| r.metric == parsed && r.hosts.matches(host))
        .map(|r| Threshold {
            rule: r.id,
            comparator: r.comparator.symbol().into(),
            threshold: r.threshold,
            clear: r.clear_threshold(),
        })
        .collect();
    Ok(Json(MetricHistory {
        host: id,
        metric: parsed.to_string(),
        window_s: window,
        points,
        thresholds,
    }))
}

async fn rule_view(ha: &HostAwareService, rule: Rule) -> Result<RuleView, ApiError> {
    let board = ha.board().await?;
    let board = board
        .read()
        .map_err(|_| ApiError::internal(anyhow::anyhow!("status poisoned")))?;
    let metric = rule.metric.to_string();
    let values = board
        .metrics
        .iter()
        .filter_map(|(host, m)| {
            m.get(&metric)
                .and_then(|s| s.value)
                .map(|v| (host.clone(), v))
        })
        .collect();
    let active_on = board
        .active
        .iter()
        .filter(|(_, rules)| rules.contains(&rule.id))
        .map(|(host, _)| host.clone())
        .collect();
    let acting_on = board
        .reactions
        .iter()
        .filter(|r| r.rule == rule.id)
        .map(|r| r.host.clone())
        .collect();
    drop(board);
    Ok(RuleView {
        rule,
        status: RuleStatus {
            values,
            active_on,
            acting_on,
        },
    })
}

/// Rules by id, with the values they see and where they act.
#[utoipa::path(get, path = "/hostaware/rules", tag = "hostaware",
    responses((status = 200, description = "Rules", body = [RuleView])))]
async fn list_rules(State(ha): State<HostAwareService>) -> Result<Json<Vec<RuleView>>, ApiError> {
    let mut out = Vec::new();
    for rule in ha.config().await?.rules.into_values() {
        out.push(rule_view(&ha, rule).await?);
    }
    Ok(Json(out))
}

/// Add a rule (the next free id when it has none).
#[utoipa::path(post, path = "/hostaware/rules", tag = "hostaware", params(DryRun),
    request_body = Rule, security(("bearer" = [])),
    responses(
        (status = 201, description = "Stored", body = WriteAnswer<Rule>),
        (status = 200, description = "Dry run", body = WriteAnswer<Rule>),
        (status = 422, description = "Invalid rule (field named)", body = ErrorBody),
        (status = 409, description = "Id exists, or a selected host cannot take the action", body = ErrorBody),
    ))]
async fn create_rule(
    State(ha): State<HostAwareService>,
    dry: DryRun,
    ApiJson(rule): ApiJson<Rule>,
) -> Result<(StatusCode, Json<WriteAnswer<Rule>>), ApiError> {
    no_origin(&rule.origin)?;
    let wrote = ha.put_rule(rule, true, Origin::rest(), dry.dry_run).await?;
    Ok(WriteAnswer::reply(
        wrote.value,
        wrote.created,
        wrote.written.as_ref(),
    ))
}

/// One rule.
#[utoipa::path(get, path = "/hostaware/rules/{id}", tag = "hostaware",
    params(("id" = u32, Path, description = "Rule id")),
    responses(
        (status = 200, description = "The rule", body = RuleView),
        (status = 404, description = "No such rule", body = ErrorBody),
    ))]
async fn get_rule(
    State(ha): State<HostAwareService>,
    ApiPath(id): ApiPath<u32>,
) -> Result<Json<RuleView>, ApiError> {
    let rule = ha
        .config()
        .await?
        .rules
        .remove(&id)
        .ok_or_else(|| ApiError::not_found("id", format!("no host-aware rule {id}")))?;
    Ok(Json(rule_view(&ha, rule).await?))
}

/// Create or replace rule `id`.
#[utoipa::path(put, path = "/hostaware/rules/{id}", tag = "hostaware",
    params(("id" = u32, Path, description = "Rule id"), DryRun), request_body = Rule,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Replaced (or dry run)", body = WriteAnswer<Rule>),
        (status = 201, description = "Created", body = WriteAnswer<Rule>),
        (status = 422, description = "Invalid rule (field named)", body = ErrorBody),
        (status = 409, description = "Owned by a module, or a selected host cannot take the action", body = ErrorBody),
    ))]
async fn put_rule(
    State(ha): State<HostAwareService>,
    ApiPath(id): ApiPath<u32>,
    dry: DryRun,
    ApiJson(mut rule): ApiJson<Rule>,
) -> Result<(StatusCode, Json<WriteAnswer<Rule>>), ApiError> {
    no_origin(&rule.origin)?;
    same_id(&mut rule.id, id)?;
    let wrote = ha
        .put_rule(rule, false, Origin::rest(), dry.dry_run)
        .await?;
    Ok(WriteAnswer::reply(
        wrote.value,
        wrote.created,
        wrote.written.as_ref(),
    ))
}

/// Delete a rule; its reactions are reverted.
#[utoipa::path(delete, path = "/hostaware/rules/{id}", tag = "hostaware",
    params(("id" = u32, Path, description = "Rule id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 404, description = "No such rule", body = ErrorBody),
        (status = 409, description = "Owned by a module", body = ErrorBody),
    ))]
async fn delete_rule(
    State(ha): State<HostAwareService>,
    ApiPath(id): ApiPath<u32>,
) -> Result<Json<Deleted>, ApiError> {
    let written = ha.delete_rule(id, Origin::rest()).await?;
    Ok(Deleted::reply(id, &written))
}

/// Reactions in place: which rule acts on which host, since when, through
/// which resources of other modules.
#[utoipa::path(get, path = "/hostaware/reactions", tag = "hostaware",
    responses((status = 200, description = "Reactions", body = [Reaction])))]
async fn list_reactions(
    State(ha): State<HostAwareService>,
) -> Result<Json<Vec<Reaction>>, ApiError> {
    let board = ha.board().await?;
    let reactions = board
        .read()
        .map_err(|_| ApiError::internal(anyhow::anyhow!("status poisoned")))?
        .reactions
        .clone();
    Ok(Json(reactions))
}

/// The audit trail, oldest first.
#[utoipa::path(get, path = "/hostaware/events", tag = "hostaware", params(EventQuery),
    responses(
        (status = 200, description = "Events", body = [AuditEvent]),
        (status = 422, description = "Unknown kind", body = ErrorBody),
    ))]
async fn list_events(
    State(ha): State<HostAwareService>,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> Result<Json<Vec<AuditEvent>>, ApiError> {
    let kind = match q.kind {
        Some(k) => Some(
            serde_json::from_value::<Kind>(serde_json::Value::String(k.clone())).map_err(|_| {
                ApiError::invalid(
                    "kind",
                    format!("{k:?}: one of INFO, WARN, THRESHOLD_MET, ACTION_APPLIED, REVERTED, SOURCE_STALE"),
                )
            })?,
        ),
        None => None,
    };
    let filter = EventFilter {
        since: q.since.unwrap_or(0),
        limit: q.limit.map_or(1000, |n| n as usize),
        host: q.host,
        rule: q.rule,
        kind,
    };
    Ok(Json(ha.events(filter).await.map_err(ApiError::internal)?))
}
