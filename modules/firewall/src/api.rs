//! `/firewall/...` REST endpoints: thin callers of the [`FirewallService`].
//!
//! Every write: validate (400 naming the field, 409 for conflicts and for
//! rules another module owns) → persist → apply, answered once every
//! touched switch confirmed by barrier, with what was applied. A change a
//! switch rejects is rolled back (store and flows) and answered with 502
//! naming the switch and the OpenFlow error. `?dry_run=true` validates and
//! returns the rule as it would be stored, changing nothing (the pusher's
//! `diff` uses it). Reads never wait for switches or for a write.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use flowgate_controller::api::dpid::format_dpid;
use flowgate_controller::api::{
    ApiError, ApiJson, ApiPath, ApiState, AppliedInfo, DryRun, ErrorBody, OpenApiRouter,
};
use flowgate_controller::pipeline::ACL;
use flowgate_controller::service::Origin;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::compile::{applies_to, rule_cookie};
use crate::config::{Policy, RuleError};
use crate::module::FirewallError;
use crate::rule::{FieldError, Rule};
use crate::service::{FirewallService, RuleWritten};

/// The firewall's endpoints.
pub fn routes(service: FirewallService) -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_rules, create_rule, replace_all_rules))
        .routes(routes!(get_rule, put_rule_by_id, delete_rule))
        .routes(routes!(rule_stats))
        .routes(routes!(get_policy, put_policy_handler))
        .with_state(service)
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

impl From<FirewallError> for ApiError {
    fn from(e: FirewallError) -> ApiError {
        match e {
            FirewallError::Rule(RuleError::Invalid(FieldError { field, reason })) => {
                ApiError::invalid(field, reason)
            }
            FirewallError::Rule(RuleError::Conflict(FieldError { field, reason }))
            | FirewallError::Owned(FieldError { field, reason }) => {
                ApiError::conflict(field, reason)
            }
            FirewallError::NoSuchRule(id) => {
                ApiError::not_found("id", format!("no firewall rule {id}"))
            }
        }
    }
}

/// A REST client may not claim a module's origin.
fn from_rest(rule: &Rule) -> Result<(), ApiError> {
    match &rule.origin {
        Some(_) => Err(ApiError::invalid(
            "origin",
            "set by the controller for rules modules create; leave it out",
        )),
        None => Ok(()),
    }
}

fn rule_answer(written: RuleWritten) -> RuleWrite {
    let applied = written
        .written
        .as_ref()
        .map(|w| AppliedInfo::of(w, w.value.flows));
    RuleWrite {
        rule: written.rule,
        applied,
    }
}

/// All rules, highest priority first.
#[utoipa::path(
    get,
    path = "/firewall/rules",
    tag = "firewall",
    responses((status = 200, description = "Rules in evaluation order", body = [Rule]))
)]
async fn list_rules(State(fw): State<FirewallService>) -> Result<Json<Vec<Rule>>, ApiError> {
    Ok(Json(fw.rules().await?))
}

/// Create a rule (the next free id when the body has none).
#[utoipa::path(
    post,
    path = "/firewall/rules",
    tag = "firewall",
    params(DryRun),
    request_body = Rule,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Stored and confirmed by the switches", body = RuleWrite),
        (status = 200, description = "Dry run: the rule as it would be stored", body = RuleWrite),
        (status = 422, description = "Invalid rule (field named)", body = ErrorBody),
        (status = 409, description = "Id exists, or a same-priority rule overlaps", body = ErrorBody),
        (status = 502, description = "A switch rejected it; rolled back", body = ErrorBody),
    )
)]
async fn create_rule(
    State(fw): State<FirewallService>,
    dry: DryRun,
    ApiJson(rule): ApiJson<Rule>,
) -> Result<(StatusCode, Json<RuleWrite>), ApiError> {
    from_rest(&rule)?;
    let written = fw.create(rule, Origin::rest(), dry.dry_run).await?;
    let status = if dry.dry_run {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(rule_answer(written))))
}

/// Replace the whole rule set with the list in the body.
#[utoipa::path(
    put,
    path = "/firewall/rules",
    tag = "firewall",
    params(DryRun),
    request_body = [Rule],
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Stored and confirmed; only changed flows were sent", body = RulesWrite),
        (status = 422, description = "Invalid rule (field named as `[index].field`)", body = ErrorBody),
        (status = 409, description = "Duplicate id, same-priority overlap, or a rule a module owns changed", body = ErrorBody),
        (status = 502, description = "A switch rejected it; rolled back", body = ErrorBody),
    )
)]
async fn replace_all_rules(
    State(fw): State<FirewallService>,
    dry: DryRun,
    ApiJson(rules): ApiJson<Vec<Rule>>,
) -> Result<Json<RulesWrite>, ApiError> {
    let (count, written) = fw.replace_all(rules, Origin::rest(), dry.dry_run).await?;
    Ok(Json(RulesWrite {
        count,
        applied: written.as_ref().map(|w| AppliedInfo::of(w, w.value.flows)),
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
    State(fw): State<FirewallService>,
    ApiPath(id): ApiPath<u32>,
) -> Result<Json<Rule>, ApiError> {
    Ok(Json(fw.rule(id).await?))
}

/// Create or replace rule `id` (the body's `id`, if any, must match).
#[utoipa::path(
    put,
    path = "/firewall/rules/{id}",
    tag = "firewall",
    params(("id" = u32, Path, description = "Rule id"), DryRun),
    request_body = Rule,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Replaced (or dry run)", body = RuleWrite),
        (status = 201, description = "Created", body = RuleWrite),
        (status = 422, description = "Invalid rule (field named)", body = ErrorBody),
        (status = 409, description = "A same-priority rule overlaps, or a module owns the rule", body = ErrorBody),
        (status = 502, description = "A switch rejected it; rolled back", body = ErrorBody),
    )
)]
async fn put_rule_by_id(
    State(fw): State<FirewallService>,
    ApiPath(id): ApiPath<u32>,
    dry: DryRun,
    ApiJson(mut rule): ApiJson<Rule>,
) -> Result<(StatusCode, Json<RuleWrite>), ApiError> {
    from_rest(&rule)?;
    if rule.id != 0 && rule.id != id {
        return Err(ApiError::invalid(
            "id",
            format!("the body's id {} differs from the path's {id}", rule.id),
        ));
    }
    rule.id = id;
    let written = fw.put(rule, Origin::rest(), dry.dry_run).await?;
    let status = if written.created && !dry.dry_run {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(rule_answer(written))))
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
        (status = 409, description = "A module owns the rule", body = ErrorBody),
        (status = 502, description = "A switch rejected it; rolled back", body = ErrorBody),
    )
)]
async fn delete_rule(
    State(fw): State<FirewallService>,
    ApiPath(id): ApiPath<u32>,
) -> Result<Json<RuleWrite>, ApiError> {
    let (rule, written) = fw.delete(id, Origin::rest()).await?;
    Ok(Json(RuleWrite {
        rule,
        applied: Some(AppliedInfo::of(&written, written.value.flows)),
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
    State(fw): State<FirewallService>,
    ApiPath(id): ApiPath<u32>,
) -> Result<Json<RuleStats>, ApiError> {
    let rule = fw.rule(id).await?;
    let runtime = fw.runtime();
    let mut queries = tokio::task::JoinSet::new();
    for sw in runtime.registry().list() {
        let dpid = sw.info.dpid;
        if applies_to(&rule, dpid) {
            let query = runtime.flow_stats_by_cookie(dpid, ACL, rule_cookie(id), u64::MAX);
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
async fn get_policy(State(fw): State<FirewallService>) -> Result<Json<Policy>, ApiError> {
    Ok(Json(fw.policy().await?))
}

/// Set the policy. With default deny, ARP, LLDP and IPv6 neighbour
/// discovery still pass.
#[utoipa::path(
    put,
    path = "/firewall/policy",
    tag = "firewall",
    params(DryRun),
    request_body = Policy,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Stored and confirmed by the switches", body = PolicyWrite),
        (status = 422, description = "Invalid policy (field named)", body = ErrorBody),
        (status = 502, description = "A switch rejected it; rolled back", body = ErrorBody),
    )
)]
async fn put_policy_handler(
    State(fw): State<FirewallService>,
    dry: DryRun,
    ApiJson(policy): ApiJson<Policy>,
) -> Result<Json<PolicyWrite>, ApiError> {
    let written = fw.set_policy(policy, Origin::rest(), dry.dry_run).await?;
    Ok(Json(PolicyWrite {
        policy,
        applied: written.as_ref().map(|w| AppliedInfo::of(w, w.value.flows)),
    }))
}
