//! `/firewall/...` REST endpoints.
//!
//! Every write: validate (400 naming the field, 409 for conflicts) →
//! persist to the store atomically → apply to the module on the core, which
//! returns once every touched switch confirmed by barrier → answer with
//! what was applied. A change a switch rejects is rolled back (store and
//! flows) and answered with 502 naming the switch and the OpenFlow error.
//! Writes are serialized by one lock, so validation always sees the state
//! the change is applied to. `?dry_run=true` validates and returns the rule
//! as it would be stored, changing nothing (the pusher's `diff` uses it).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use flowgate_controller::api::dpid::format_dpid;
use flowgate_controller::api::{
    ApiError, ApiJson, ApiPath, ApiState, ErrorBody, OpenApiRouter, SwitchQueryError,
};
use flowgate_controller::pipeline::ACL;
use flowgate_controller::runtime::{Applied, Runtime};
use flowgate_controller::store::{Op, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::compile::{applies_to, rule_cookie};
use crate::config::{FirewallConfig, Policy, RuleError, RuleSet};
use crate::module::{ApplyReport, Firewall, FirewallOp};
use crate::persist::{put_policy, put_rule, replace_rules, rule_key};
use crate::rule::{FieldError, Rule};

/// What the handlers share.
#[derive(Clone)]
struct FwState {
    runtime: Runtime,
    store: Arc<dyn Store>,
    /// The configuration as stored; its lock serializes writes.
    config: Arc<Mutex<FirewallConfig>>,
}

/// The firewall's endpoints. `config` must be what the [`Firewall`] module
/// was created with (both come from [`crate::load`]).
pub fn routes(
    runtime: Runtime,
    store: Arc<dyn Store>,
    config: FirewallConfig,
) -> OpenApiRouter<ApiState> {
    let state = FwState {
        runtime,
        store,
        config: Arc::new(Mutex::new(config)),
    };
    OpenApiRouter::new()
        .routes(routes!(list_rules, create_rule, replace_all_rules))
        .routes(routes!(get_rule, put_rule_by_id, delete_rule))
        .routes(routes!(rule_stats))
        .routes(routes!(get_policy, put_policy_handler))
        .with_state(state)
}

/// What a write did on the switches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AppliedInfo {
    /// Switches that confirmed the change (barrier reply), colon form, sorted.
    pub switches: Vec<String>,
    /// Switches that did not confirm in time; they get the change with the
    /// next reconciliation (at the latest when they reconnect).
    pub unconfirmed: Vec<String>,
    /// Flow entries of the written rule on connected switches (of the
    /// whole firewall for bulk and policy writes).
    pub flows: usize,
    /// Flow entries added, changed or removed (on all switches) by this
    /// write; unchanged entries are not sent again.
    pub flow_changes: usize,
    /// Controller time spent compiling and diffing, in milliseconds.
    pub compile_ms: f64,
}

/// Answer to a rule write. `applied` is null for a dry run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RuleWrite {
    pub rule: Rule,
    pub applied: Option<AppliedInfo>,
}

/// Answer to a bulk replace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RulesWrite {
    /// Rules now stored.
    pub count: usize,
    pub applied: Option<AppliedInfo>,
}

/// Answer to a policy write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PolicyWrite {
    pub policy: Policy,
    pub applied: Option<AppliedInfo>,
}

/// `GET /firewall/rules/{id}/stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RuleStats {
    pub id: u32,
    /// Sums over the rule's flows on every switch that answered.
    pub packets: u64,
    pub bytes: u64,
    pub flows: usize,
    pub switches: Vec<SwitchCounters>,
    /// Switches that could not be read, as "dpid: reason".
    pub errors: Vec<String>,
}

/// One switch's share of a rule's counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SwitchCounters {
    pub dpid: String,
    pub flows: usize,
    pub packets: u64,
    pub bytes: u64,
}

/// `dry_run` from the query string (`true`/`1`/`false`/`0`).
fn dry_run(query: &Option<String>) -> Result<bool, ApiError> {
    let mut dry = false;
    for pair in query.as_deref().unwrap_or("").split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, "true"));
        match key {
            "" => {}
            "dry_run" => {
                dry = match value {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(ApiError::bad_field(
                            "dry_run",
                            format!("expected true or false, got {value:?}"),
                        ))
                    }
                }
            }
            other => {
                return Err(ApiError::bad_field(
                    other,
                    "unknown query parameter (only dry_run)",
                ))
            }
        }
    }
    Ok(dry)
}

fn rule_error(e: RuleError) -> ApiError {
    match e {
        RuleError::Invalid(FieldError { field, reason }) => ApiError::bad_field(field, reason),
        RuleError::Conflict(FieldError { field, reason }) => ApiError::conflict(field, reason),
    }
}

fn no_rule(id: u32) -> ApiError {
    ApiError::not_found("id", format!("no firewall rule {id}"))
}

/// Persists `ops` atomically (off the async workers: a commit fsyncs).
async fn persist(store: &Arc<dyn Store>, ops: Vec<Op>) -> Result<(), ApiError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.apply(ops))
        .await
        .map_err(ApiError::internal)??;
    Ok(())
}

async fn call(runtime: &Runtime, op: FirewallOp) -> Result<Applied<ApplyReport>, ApiError> {
    runtime
        .call::<Firewall, _>(move |fw, ctx| fw.apply(op, ctx))
        .await
        .map_err(ApiError::internal)
}

/// Persists and applies a change; on switch rejection restores the
/// previous state (`undo_*`) and fails with 502.
async fn execute(
    state: &FwState,
    ops: Vec<Op>,
    op: FirewallOp,
    undo_ops: Vec<Op>,
    undo: FirewallOp,
) -> Result<AppliedInfo, ApiError> {
    persist(&state.store, ops).await?;
    let applied = call(&state.runtime, op).await?;
    if !applied.errors.is_empty() {
        persist(&state.store, undo_ops).await?;
        call(&state.runtime, undo).await?;
        return Err(ApiError::Switch(SwitchQueryError::SwitchError(format!(
            "the change was rolled back because a switch rejected it: {}",
            applied.errors.join("; ")
        ))));
    }
    let dpids = |v: &[u64]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v.into_iter().map(format_dpid).collect()
    };
    Ok(AppliedInfo {
        switches: dpids(&applied.confirmed),
        unconfirmed: dpids(&applied.unconfirmed),
        flows: applied.value.flows,
        flow_changes: applied.value.flow_changes,
        compile_ms: applied.value.compile_micros as f64 / 1000.0,
    })
}

/// Validates, stores and applies `rule` (new, or replacing its id).
async fn write_rule(
    state: &FwState,
    config: &mut FirewallConfig,
    rule: Rule,
    dry: bool,
) -> Result<RuleWrite, ApiError> {
    config.rules.check(&rule).map_err(rule_error)?;
    if dry {
        return Ok(RuleWrite {
            rule,
            applied: None,
        });
    }
    let old = config.rules.get(rule.id).cloned();
    let (undo_ops, undo) = match &old {
        Some(old) => (
            vec![put_rule(old).map_err(ApiError::internal)?],
            FirewallOp::Upsert(old.clone()),
        ),
        None => (
            vec![Op::delete(rule_key(rule.id))],
            FirewallOp::Delete(rule.id),
        ),
    };
    let ops = vec![put_rule(&rule).map_err(ApiError::internal)?];
    let applied = execute(state, ops, FirewallOp::Upsert(rule.clone()), undo_ops, undo).await?;
    config.rules.insert(rule.clone());
    Ok(RuleWrite {
        rule,
        applied: Some(applied),
    })
}

/// All rules, highest priority first.
#[utoipa::path(
    get,
    path = "/firewall/rules",
    tag = "firewall",
    responses((status = 200, description = "Rules in evaluation order", body = [Rule]))
)]
async fn list_rules(State(state): State<FwState>) -> Json<Vec<Rule>> {
    let config = state.config.lock().await;
    Json(config.rules.in_order().into_iter().cloned().collect())
}

/// Create a rule (the next free id when the body has none).
#[utoipa::path(
    post,
    path = "/firewall/rules",
    tag = "firewall",
    params(("dry_run" = Option<bool>, Query, description = "Validate only; store and send nothing")),
    request_body = Rule,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Stored and confirmed by the switches", body = RuleWrite),
        (status = 200, description = "Dry run: the rule as it would be stored", body = RuleWrite),
        (status = 400, description = "Invalid rule (field named)", body = ErrorBody),
        (status = 409, description = "Id exists, or a same-priority rule overlaps", body = ErrorBody),
        (status = 502, description = "A switch rejected it; rolled back", body = ErrorBody),
    )
)]
async fn create_rule(
    State(state): State<FwState>,
    RawQuery(query): RawQuery,
    ApiJson(mut rule): ApiJson<Rule>,
) -> Result<(StatusCode, Json<RuleWrite>), ApiError> {
    let dry = dry_run(&query)?;
    let mut config = state.config.lock().await;
    if rule.id == 0 {
        rule.id = config
            .rules
            .next_id()
            .ok_or_else(|| ApiError::bad_field("id", "no free id above the highest; give one"))?;
    } else if config.rules.get(rule.id).is_some() {
        return Err(ApiError::conflict(
            "id",
            format!(
                "rule {} exists; PUT /firewall/rules/{} replaces it",
                rule.id, rule.id
            ),
        ));
    }
    let written = write_rule(&state, &mut config, rule, dry).await?;
    let status = if dry {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(written)))
}

/// Replace the whole rule set with the list in the body.
#[utoipa::path(
    put,
    path = "/firewall/rules",
    tag = "firewall",
    params(("dry_run" = Option<bool>, Query, description = "Validate only; store and send nothing")),
    request_body = [Rule],
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Stored and confirmed; only changed flows were sent", body = RulesWrite),
        (status = 400, description = "Invalid rule (field named as `[index].field`)", body = ErrorBody),
        (status = 409, description = "Duplicate id or same-priority overlap", body = ErrorBody),
        (status = 502, description = "A switch rejected it; rolled back", body = ErrorBody),
    )
)]
async fn replace_all_rules(
    State(state): State<FwState>,
    RawQuery(query): RawQuery,
    ApiJson(rules): ApiJson<Vec<Rule>>,
) -> Result<Json<RulesWrite>, ApiError> {
    let dry = dry_run(&query)?;
    let new = RuleSet::from_rules(rules).map_err(rule_error)?;
    let count = new.len();
    if dry {
        return Ok(Json(RulesWrite {
            count,
            applied: None,
        }));
    }
    let mut config = state.config.lock().await;
    let ops = replace_rules(new.iter()).map_err(ApiError::internal)?;
    let undo_ops = replace_rules(config.rules.iter()).map_err(ApiError::internal)?;
    let applied = execute(
        &state,
        ops,
        FirewallOp::ReplaceAll(new.clone()),
        undo_ops,
        FirewallOp::ReplaceAll(config.rules.clone()),
    )
    .await?;
    config.rules = new;
    Ok(Json(RulesWrite {
        count,
        applied: Some(applied),
    }))
}

/// One rule.
#[utoipa::path(
    get,
    path = "/firewall/rules/{id}",
    tag = "firewall",
    params(("id" = u32, Path, description = "Rule id")),
    responses(
        (status = 200, description = "The rule", body = Rule),
        (status = 404, description = "No such rule", body = ErrorBody),
    )
)]
async fn get_rule(
    State(state): State<FwState>,
    ApiPath(id): ApiPath<u32>,
) -> Result<Json<Rule>, ApiError> {
    let config = state.config.lock().await;
    config
        .rules
        .get(id)
        .cloned()
        .map(Json)
        .ok_or_else(|| no_rule(id))
}

/// Create or replace rule `id` (the body's `id`, if any, must match).
#[utoipa::path(
    put,
    path = "/firewall/rules/{id}",
    tag = "firewall",
    params(
        ("id" = u32, Path, description = "Rule id"),
        ("dry_run" = Option<bool>, Query, description = "Validate only; store and send nothing"),
    ),
    request_body = Rule,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Replaced (or dry run)", body = RuleWrite),
        (status = 201, description = "Created", body = RuleWrite),
        (status = 400, description = "Invalid rule (field named)", body = ErrorBody),
        (status = 409, description = "A same-priority rule overlaps", body = ErrorBody),
        (status = 502, description = "A switch rejected it; rolled back", body = ErrorBody),
    )
)]
async fn put_rule_by_id(
    State(state): State<FwState>,
    ApiPath(id): ApiPath<u32>,
    RawQuery(query): RawQuery,
    ApiJson(mut rule): ApiJson<Rule>,
) -> Result<(StatusCode, Json<RuleWrite>), ApiError> {
    let dry = dry_run(&query)?;
    if rule.id != 0 && rule.id != id {
        return Err(ApiError::bad_field(
            "id",
            format!("the body's id {} differs from the path's {id}", rule.id),
        ));
    }
    rule.id = id;
    let mut config = state.config.lock().await;
    let created = config.rules.get(id).is_none();
    let written = write_rule(&state, &mut config, rule, dry).await?;
    let status = if created && !dry {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(written)))
}

/// Delete a rule; its flows leave every switch before this answers.
#[utoipa::path(
    delete,
    path = "/firewall/rules/{id}",
    tag = "firewall",
    params(("id" = u32, Path, description = "Rule id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Deleted; `rule` is what was removed", body = RuleWrite),
        (status = 404, description = "No such rule", body = ErrorBody),
        (status = 502, description = "A switch rejected it; rolled back", body = ErrorBody),
    )
)]
async fn delete_rule(
    State(state): State<FwState>,
    ApiPath(id): ApiPath<u32>,
) -> Result<Json<RuleWrite>, ApiError> {
    let mut config = state.config.lock().await;
    let old = config.rules.get(id).cloned().ok_or_else(|| no_rule(id))?;
    let applied = execute(
        &state,
        vec![Op::delete(rule_key(id))],
        FirewallOp::Delete(id),
        vec![put_rule(&old).map_err(ApiError::internal)?],
        FirewallOp::Upsert(old.clone()),
    )
    .await?;
    config.rules.remove(id);
    Ok(Json(RuleWrite {
        rule: old,
        applied: Some(applied),
    }))
}

/// Packet and byte counters of a rule's flows, live from every switch.
#[utoipa::path(
    get,
    path = "/firewall/rules/{id}/stats",
    tag = "firewall",
    params(("id" = u32, Path, description = "Rule id")),
    responses(
        (status = 200, description = "Counters summed over the rule's flows", body = RuleStats),
        (status = 404, description = "No such rule", body = ErrorBody),
    )
)]
async fn rule_stats(
    State(state): State<FwState>,
    ApiPath(id): ApiPath<u32>,
) -> Result<Json<RuleStats>, ApiError> {
    let rule = {
        let config = state.config.lock().await;
        config.rules.get(id).cloned().ok_or_else(|| no_rule(id))?
    };
    let mut queries = tokio::task::JoinSet::new();
    for sw in state.runtime.registry().list() {
        let dpid = sw.info.dpid;
        if applies_to(&rule, dpid) {
            let query = state
                .runtime
                .flow_stats_by_cookie(dpid, ACL, rule_cookie(id), u64::MAX);
            queries.spawn(async move { (dpid, query.await) });
        }
    }
    let mut stats = RuleStats {
        id,
        packets: 0,
        bytes: 0,
        flows: 0,
        switches: Vec::new(),
        errors: Vec::new(),
    };
    while let Some(done) = queries.join_next().await {
        let (dpid, answer) = done.map_err(ApiError::internal)?;
        match answer {
            Ok(flows) => {
                let counters = SwitchCounters {
                    dpid: format_dpid(dpid),
                    flows: flows.len(),
                    packets: flows.iter().map(|f| f.packet_count).sum(),
                    bytes: flows.iter().map(|f| f.byte_count).sum(),
                };
                stats.packets += counters.packets;
                stats.bytes += counters.bytes;
                stats.flows += counters.flows;
                stats.switches.push(counters);
            }
            Err(e) => stats.errors.push(format!("{}: {e}", format_dpid(dpid))),
        }
    }
    stats.switches.sort_by(|a, b| a.dpid.cmp(&b.dpid));
    Ok(Json(stats))
}

/// Whether the firewall is on, and what it does with unmatched packets.
#[utoipa::path(
    get,
    path = "/firewall/policy",
    tag = "firewall",
    responses((status = 200, description = "The policy", body = Policy))
)]
async fn get_policy(State(state): State<FwState>) -> Json<Policy> {
    Json(state.config.lock().await.policy)
}

/// Set the policy. With default deny, ARP, LLDP and IPv6 neighbour
/// discovery still pass.
#[utoipa::path(
    put,
    path = "/firewall/policy",
    tag = "firewall",
    params(("dry_run" = Option<bool>, Query, description = "Validate only; store and send nothing")),
    request_body = Policy,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Stored and confirmed by the switches", body = PolicyWrite),
        (status = 400, description = "Invalid policy (field named)", body = ErrorBody),
        (status = 502, description = "A switch rejected it; rolled back", body = ErrorBody),
    )
)]
async fn put_policy_handler(
    State(state): State<FwState>,
    RawQuery(query): RawQuery,
    ApiJson(policy): ApiJson<Policy>,
) -> Result<Json<PolicyWrite>, ApiError> {
    if dry_run(&query)? {
        return Ok(Json(PolicyWrite {
            policy,
            applied: None,
        }));
    }
    let mut config = state.config.lock().await;
    let old = config.policy;
    let applied = execute(
        &state,
        vec![put_policy(&policy).map_err(ApiError::internal)?],
        FirewallOp::SetPolicy(policy),
        vec![put_policy(&old).map_err(ApiError::internal)?],
        FirewallOp::SetPolicy(old),
    )
    .await?;
    config.policy = policy;
    Ok(Json(PolicyWrite {
        policy,
        applied: Some(applied),
    }))
}
