//! `/lb/...` REST endpoints: thin callers of the [`LoadBalancerService`].
//!
//! Writes validate (400 for a body not of the documented shape, 422 naming
//! the field whose value is refused, 404 for an unknown object the path or
//! body names, 409 for conflicts), persist and apply, and answer once every touched
//! switch confirmed, with what was applied; `?dry_run=true` validates and
//! answers with the object as it would be stored. VIPs, pools (with their
//! members) and monitors are collections the pusher (`flowgate-push`)
//! handles; `/lb/pools/{id}/members/{member}` changes one member
//! (`member` = `address:port`, `[v6]:port`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use flowgate_controller::api::{
    ApiError, ApiJson, ApiPath, ApiState, AppliedInfo, DryRun, ErrorBody, OpenApiRouter,
};
use flowgate_controller::service::{Origin, Written};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::health::{rfc3339, Health, Transition};
use crate::model::{Invalid, Member, MemberKey, Monitor, Pool, Vip};
use crate::service::{LoadBalancerService, MemberStats, MemberView, Wrote};

/// The load balancer's endpoints.
pub fn routes(service: LoadBalancerService) -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_vips, create_vip))
        .routes(routes!(get_vip, put_vip, delete_vip))
        .routes(routes!(vip_stats))
        .routes(routes!(list_pools, create_pool))
        .routes(routes!(get_pool, put_pool, delete_pool))
        .routes(routes!(list_members, create_member))
        .routes(routes!(get_member, put_member, delete_member))
        .routes(routes!(list_monitors, create_monitor))
        .routes(routes!(get_monitor, put_monitor, delete_monitor))
        .with_state(service)
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> ApiError {
        match e {
            Invalid::Bad { field, reason } => ApiError::invalid(field, reason),
            Invalid::Missing { field, reason } => ApiError::not_found(field, reason),
            Invalid::Conflict { field, reason } => ApiError::conflict(field, reason),
        }
    }
}

/// Answer to a VIP write; `applied` is null for a dry run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VipWrite {
    pub vip: Vip,
    pub applied: Option<AppliedInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PoolWrite {
    pub pool: Pool,
    pub applied: Option<AppliedInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemberWrite {
    pub member: Member,
    pub applied: Option<AppliedInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MonitorWrite {
    pub monitor: Monitor,
    pub applied: Option<AppliedInfo>,
}

/// A member's health as its monitor sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HealthView {
    pub state: Health,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String)]
    pub since: std::time::SystemTime,
    pub reason: String,
    /// The last transitions, oldest first.
    pub transitions: Vec<Transition>,
}

/// A member with its state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberStatus {
    #[serde(flatten)]
    pub member: Member,
    /// Null without a monitor (the member counts as up).
    pub health: Option<HealthView>,
    /// Its MAC once resolved (topology or the overlay).
    pub mac: Option<String>,
    /// Whether new connections may go to it now.
    pub in_rotation: bool,
    /// Its current bucket weight, per VIP.
    pub bucket_weights: std::collections::BTreeMap<String, u16>,
}

/// `GET /lb/vips/{id}/stats`: per member.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VipStatsBody {
    pub id: String,
    #[schema(value_type = String)]
    pub address: std::net::IpAddr,
    pub port: u16,
    pub members: Vec<MemberStatsBody>,
    /// Switches that could not be read, as "dpid: reason".
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberStatsBody {
    #[serde(flatten)]
    pub status: MemberStatus,
    /// New connections its bucket took, summed over the switches.
    pub connections: u64,
    /// Packets and bytes of its connections (both directions), summed
    /// over the switches.
    pub packets: u64,
    pub bytes: u64,
}

fn status(view: MemberView) -> MemberStatus {
    MemberStatus {
        member: view.member,
        health: view.health.map(|s| HealthView {
            state: s.health,
            since: s.since,
            reason: s.reason,
            transitions: s.transitions.into_iter().collect(),
        }),
        mac: view.mac.map(|m| m.to_string()),
        in_rotation: view.in_rotation,
        bucket_weights: view.bucket_weights,
    }
}

fn stats_body(s: MemberStats) -> MemberStatsBody {
    MemberStatsBody {
        status: status(s.view),
        connections: s.connections,
        packets: s.packets,
        bytes: s.bytes,
    }
}

fn applied(written: &Option<Written<usize>>) -> Option<AppliedInfo> {
    written.as_ref().map(|w| AppliedInfo::of(w, w.value))
}

fn write_status<T>(wrote: &Wrote<T>, dry: DryRun) -> StatusCode {
    if wrote.created && !dry.dry_run {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

/// A REST client may not claim a module's origin.
fn no_origin<T>(origin: &Option<T>) -> Result<(), ApiError> {
    match origin {
        Some(_) => Err(ApiError::invalid(
            "origin",
            "set by the controller for objects modules create; leave it out",
        )),
        None => Ok(()),
    }
}

/// Nor a module's hold of a member.
fn not_held(member: &Member) -> Result<(), ApiError> {
    no_origin(&member.origin)?;
    match member.held {
        Some(_) => Err(ApiError::bad_field(
            "held",
            "set by the controller while a module holds the member; leave it out",
        )),
        None => Ok(()),
    }
}

/// The id from the path; the body's, if given, must match.
fn same_id(body: &mut String, path: String) -> Result<(), ApiError> {
    if !body.is_empty() && *body != path {
        return Err(ApiError::invalid(
            "id",
            format!("the body's id {body:?} differs from the path's {path:?}"),
        ));
    }
    *body = path;
    Ok(())
}

fn member_key(text: &str) -> Result<MemberKey, ApiError> {
    text.parse()
        .map_err(|e: String| ApiError::invalid("member", e))
}

// --- VIPs -------------------------------------------------------------------

/// All VIPs.
#[utoipa::path(get, path = "/lb/vips", tag = "loadbalancer",
    responses((status = 200, description = "VIPs by id", body = [Vip])))]
async fn list_vips(State(lb): State<LoadBalancerService>) -> Result<Json<Vec<Vip>>, ApiError> {
    Ok(Json(lb.vips().await?))
}

/// Create a VIP.
#[utoipa::path(post, path = "/lb/vips", tag = "loadbalancer", params(DryRun), request_body = Vip,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Stored and confirmed by the switches", body = VipWrite),
        (status = 200, description = "Dry run: the VIP as it would be stored", body = VipWrite),
        (status = 422, description = "Invalid (field named), a member outside the VIP's tenant", body = ErrorBody),
        (status = 404, description = "Unknown pool or tenant network", body = ErrorBody),
        (status = 409, description = "Id exists; address taken by another VIP or a host", body = ErrorBody),
        (status = 502, description = "A switch rejected it; rolled back", body = ErrorBody),
    ))]
async fn create_vip(
    State(lb): State<LoadBalancerService>,
    dry: DryRun,
    ApiJson(vip): ApiJson<Vip>,
) -> Result<(StatusCode, Json<VipWrite>), ApiError> {
    no_origin(&vip.origin)?;
    let wrote = lb.put_vip(vip, true, Origin::rest(), dry.dry_run).await?;
    let status = if dry.dry_run {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(VipWrite {
            applied: applied(&wrote.written),
            vip: wrote.value,
        }),
    ))
}

/// One VIP.
#[utoipa::path(get, path = "/lb/vips/{id}", tag = "loadbalancer",
    params(("id" = String, Path, description = "VIP id")),
    responses((status = 200, description = "The VIP", body = Vip),
              (status = 404, description = "No such VIP", body = ErrorBody)))]
async fn get_vip(
    State(lb): State<LoadBalancerService>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vip>, ApiError> {
    Ok(Json(lb.vip(id).await?))
}

/// Create or replace a VIP (its index, hence its group, stays).
#[utoipa::path(put, path = "/lb/vips/{id}", tag = "loadbalancer",
    params(("id" = String, Path, description = "VIP id"), DryRun), request_body = Vip,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Replaced (or dry run)", body = VipWrite),
        (status = 201, description = "Created", body = VipWrite),
        (status = 422, description = "Invalid (field named)", body = ErrorBody),
        (status = 404, description = "Unknown pool or tenant network", body = ErrorBody),
        (status = 409, description = "Address taken; or a module owns the VIP", body = ErrorBody),
        (status = 502, description = "A switch rejected it; rolled back", body = ErrorBody),
    ))]
async fn put_vip(
    State(lb): State<LoadBalancerService>,
    ApiPath(id): ApiPath<String>,
    dry: DryRun,
    ApiJson(mut vip): ApiJson<Vip>,
) -> Result<(StatusCode, Json<VipWrite>), ApiError> {
    no_origin(&vip.origin)?;
    same_id(&mut vip.id, id)?;
    let wrote = lb.put_vip(vip, false, Origin::rest(), dry.dry_run).await?;
    let status = write_status(&wrote, dry);
    Ok((
        status,
        Json(VipWrite {
            applied: applied(&wrote.written),
            vip: wrote.value,
        }),
    ))
}

/// Delete a VIP: its entries and group leave every switch.
#[utoipa::path(delete, path = "/lb/vips/{id}", tag = "loadbalancer",
    params(("id" = String, Path, description = "VIP id")), security(("bearer" = [])),
    responses((status = 200, description = "Deleted; `vip` is what was removed", body = VipWrite),
              (status = 404, description = "No such VIP", body = ErrorBody),
              (status = 409, description = "A module owns the VIP", body = ErrorBody),
              (status = 502, description = "A switch rejected it; rolled back", body = ErrorBody)))]
async fn delete_vip(
    State(lb): State<LoadBalancerService>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<VipWrite>, ApiError> {
    let (vip, written) = lb.delete_vip(id, Origin::rest()).await?;
    Ok(Json(VipWrite {
        vip,
        applied: Some(AppliedInfo::of(&written, written.value)),
    }))
}

/// Per member: health (state, since, transitions), new connections (its
/// bucket's counters) and packets/bytes (its entries), live from every
/// switch.
#[utoipa::path(get, path = "/lb/vips/{id}/stats", tag = "loadbalancer",
    params(("id" = String, Path, description = "VIP id")),
    responses((status = 200, description = "Counters per member", body = VipStatsBody),
              (status = 404, description = "No such VIP", body = ErrorBody)))]
async fn vip_stats(
    State(lb): State<LoadBalancerService>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<VipStatsBody>, ApiError> {
    let stats = lb.stats(id).await?;
    Ok(Json(VipStatsBody {
        id: stats.vip.id,
        address: stats.vip.address,
        port: stats.vip.port,
        members: stats.members.into_iter().map(stats_body).collect(),
        errors: stats.errors,
    }))
}

// --- pools --------------------------------------------------------------------

/// All pools, with their members.
#[utoipa::path(get, path = "/lb/pools", tag = "loadbalancer",
    responses((status = 200, description = "Pools by id", body = [Pool])))]
async fn list_pools(State(lb): State<LoadBalancerService>) -> Result<Json<Vec<Pool>>, ApiError> {
    Ok(Json(lb.pools().await?))
}

/// Create a pool (members included).
#[utoipa::path(post, path = "/lb/pools", tag = "loadbalancer", params(DryRun), request_body = Pool,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Stored and confirmed", body = PoolWrite),
        (status = 200, description = "Dry run", body = PoolWrite),
        (status = 422, description = "Invalid (e.g. `members[1].weight`)", body = ErrorBody),
        (status = 409, description = "Id exists, a member twice, or `load_aware` while a VIP of the pool is not `weighted`", body = ErrorBody),
        (status = 502, description = "A switch rejected it; rolled back", body = ErrorBody),
    ))]
async fn create_pool(
    State(lb): State<LoadBalancerService>,
    dry: DryRun,
    ApiJson(pool): ApiJson<Pool>,
) -> Result<(StatusCode, Json<PoolWrite>), ApiError> {
    if pool.members.iter().any(|m| m.origin.is_some()) {
        return Err(ApiError::invalid(
            "members.origin",
            "set by the controller; leave it out",
        ));
    }
    if pool.members.iter().any(|m| m.held.is_some()) {
        return Err(ApiError::bad_field(
            "members.held",
            "set by the controller; leave it out",
        ));
    }
    let wrote = lb.put_pool(pool, true, Origin::rest(), dry.dry_run).await?;
    let status = if dry.dry_run {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(PoolWrite {
            applied: applied(&wrote.written),
            pool: wrote.value,
        }),
    ))
}

/// One pool with its members.
#[utoipa::path(get, path = "/lb/pools/{id}", tag = "loadbalancer",
    params(("id" = String, Path, description = "Pool id")),
    responses((status = 200, description = "The pool", body = Pool),
              (status = 404, description = "No such pool", body = ErrorBody)))]
async fn get_pool(
    State(lb): State<LoadBalancerService>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Pool>, ApiError> {
    Ok(Json(lb.pool(id).await?))
}

/// Create or replace a pool with its member list: members added get
/// buckets, members removed lose theirs (established connections through
/// the others are untouched).
/// `origin` and `held` of members are the controller's and ignored here;
/// a member a module holds (host-aware's `lb_drain`) keeps its weight and
/// admin state until released (409 naming `members[i].weight` /
/// `admin_state` otherwise). With `load_aware`, the controller sets the
/// members' weights from their hosts' load.
#[utoipa::path(put, path = "/lb/pools/{id}", tag = "loadbalancer",
    params(("id" = String, Path, description = "Pool id"), DryRun), request_body = Pool,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Replaced (or dry run)", body = PoolWrite),
        (status = 201, description = "Created", body = PoolWrite),
        (status = 422, description = "Invalid (field named)", body = ErrorBody),
        (status = 409, description = "A member twice; a held member's weight or admin state changed; `load_aware` while a VIP of the pool is not `weighted`", body = ErrorBody),
        (status = 502, description = "A switch rejected it; rolled back", body = ErrorBody),
    ))]
async fn put_pool(
    State(lb): State<LoadBalancerService>,
    ApiPath(id): ApiPath<String>,
    dry: DryRun,
    ApiJson(mut pool): ApiJson<Pool>,
) -> Result<(StatusCode, Json<PoolWrite>), ApiError> {
    same_id(&mut pool.id, id)?;
    // The controller's fields (a GET's answer sent back): a held member
    // keeps its hold (service::keep_holds), anything else is the operator's.
    for m in &mut pool.members {
        m.origin = None;
        m.held = None;
    }
    let wrote = lb
        .put_pool(pool, false, Origin::rest(), dry.dry_run)
        .await?;
    let status = write_status(&wrote, dry);
    Ok((
        status,
        Json(PoolWrite {
            applied: applied(&wrote.written),
            pool: wrote.value,
        }),
    ))
}

/// Delete a pool no VIP and no monitor uses.
#[utoipa::path(delete, path = "/lb/pools/{id}", tag = "loadbalancer",
    params(("id" = String, Path, description = "Pool id")), security(("bearer" = [])),
    responses((status = 200, description = "Deleted", body = PoolWrite),
              (status = 404, description = "No such pool", body = ErrorBody),
              (status = 409, description = "A VIP or monitor uses it", body = ErrorBody),
              (status = 502, description = "A switch rejected it; rolled back", body = ErrorBody)))]
async fn delete_pool(
    State(lb): State<LoadBalancerService>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<PoolWrite>, ApiError> {
    let (pool, written) = lb.delete_pool(id, Origin::rest()).await?;
    Ok(Json(PoolWrite {
        pool,
        applied: Some(AppliedInfo::of(&written, written.value)),
    }))
}

// --- members ------------------------------------------------------------------

/// A pool's members with their health, MAC, rotation and bucket weights.
#[utoipa::path(get, path = "/lb/pools/{id}/members", tag = "loadbalancer",
    params(("id" = String, Path, description = "Pool id")),
    responses((status = 200, description = "Members with their state", body = [MemberStatus]),
              (status = 404, description = "No such pool", body = ErrorBody)))]
async fn list_members(
    State(lb): State<LoadBalancerService>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<MemberStatus>>, ApiError> {
    Ok(Json(
        lb.members(id).await?.into_iter().map(status).collect(),
    ))
}

/// Add a member.
#[utoipa::path(post, path = "/lb/pools/{id}/members", tag = "loadbalancer",
    params(("id" = String, Path, description = "Pool id"), DryRun), request_body = Member,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Added; its bucket is in the VIPs' groups", body = MemberWrite),
        (status = 200, description = "Dry run", body = MemberWrite),
        (status = 422, description = "Invalid (`weight`, `address` outside the VIP's tenant)", body = ErrorBody),
        (status = 404, description = "No such pool", body = ErrorBody),
        (status = 409, description = "Already a member", body = ErrorBody),
        (status = 502, description = "A switch rejected it; rolled back", body = ErrorBody),
    ))]
async fn create_member(
    State(lb): State<LoadBalancerService>,
    ApiPath(id): ApiPath<String>,
    dry: DryRun,
    ApiJson(member): ApiJson<Member>,
) -> Result<(StatusCode, Json<MemberWrite>), ApiError> {
    not_held(&member)?;
    let wrote = lb
        .put_member(id, member, true, Origin::rest(), dry.dry_run)
        .await?;
    let status = if dry.dry_run {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(MemberWrite {
            applied: applied(&wrote.written),
            member: wrote.value,
        }),
    ))
}

/// One member with its state.
#[utoipa::path(get, path = "/lb/pools/{id}/members/{member}", tag = "loadbalancer",
    params(("id" = String, Path, description = "Pool id"),
           ("member" = String, Path, description = "address:port")),
    responses((status = 200, description = "The member", body = MemberStatus),
              (status = 404, description = "No such pool or member", body = ErrorBody)))]
async fn get_member(
    State(lb): State<LoadBalancerService>,
    ApiPath((id, member)): ApiPath<(String, String)>,
) -> Result<Json<MemberStatus>, ApiError> {
    let key = member_key(&member)?;
    lb.members(id)
        .await?
        .into_iter()
        .find(|v| v.member.key() == key)
        .map(|v| Json(status(v)))
        .ok_or_else(|| ApiError::not_found("member", format!("no member {key}")))
}

/// Add or replace a member: weight and admin state (`drain`: no new
/// connections, established ones go on).
#[utoipa::path(put, path = "/lb/pools/{id}/members/{member}", tag = "loadbalancer",
    params(("id" = String, Path, description = "Pool id"),
           ("member" = String, Path, description = "address:port"), DryRun),
    request_body = Member, security(("bearer" = [])),
    responses(
        (status = 200, description = "Replaced (or dry run)", body = MemberWrite),
        (status = 201, description = "Added", body = MemberWrite),
        (status = 422, description = "Invalid (field named)", body = ErrorBody),
        (status = 404, description = "No such pool", body = ErrorBody),
        (status = 409, description = "A module holds the member: its `weight` / `admin_state` cannot change until released; or the address is the pool monitor's source", body = ErrorBody),
        (status = 502, description = "A switch rejected it; rolled back", body = ErrorBody),
    ))]
async fn put_member(
    State(lb): State<LoadBalancerService>,
    ApiPath((id, member_path)): ApiPath<(String, String)>,
    dry: DryRun,
    ApiJson(member): ApiJson<Member>,
) -> Result<(StatusCode, Json<MemberWrite>), ApiError> {
    not_held(&member)?;
    let key = member_key(&member_path)?;
    if member.key() != key {
        return Err(ApiError::invalid(
            "address",
            format!("the body names {}, the path {key}", member.key()),
        ));
    }
    let wrote = lb
        .put_member(id, member, false, Origin::rest(), dry.dry_run)
        .await?;
    let status = write_status(&wrote, dry);
    Ok((
        status,
        Json(MemberWrite {
            applied: applied(&wrote.written),
            member: wrote.value,
        }),
    ))
}

/// Remove a member (its established connections end; drain it first to
/// let them finish).
#[utoipa::path(delete, path = "/lb/pools/{id}/members/{member}", tag = "loadbalancer",
    params(("id" = String, Path, description = "Pool id"),
           ("member" = String, Path, description = "address:port")),
    security(("bearer" = [])),
    responses((status = 200, description = "Removed", body = AppliedInfo),
              (status = 404, description = "No such pool or member", body = ErrorBody),
              (status = 502, description = "A switch rejected it; rolled back", body = ErrorBody)))]
async fn delete_member(
    State(lb): State<LoadBalancerService>,
    ApiPath((id, member)): ApiPath<(String, String)>,
) -> Result<Json<AppliedInfo>, ApiError> {
    let key = member_key(&member)?;
    let written = lb.delete_member(id, key, Origin::rest()).await?;
    Ok(Json(AppliedInfo::of(&written, written.value)))
}

// --- monitors -------------------------------------------------------------------

/// All health monitors.
#[utoipa::path(get, path = "/lb/monitors", tag = "loadbalancer",
    responses((status = 200, description = "Monitors by id", body = [Monitor])))]
async fn list_monitors(
    State(lb): State<LoadBalancerService>,
) -> Result<Json<Vec<Monitor>>, ApiError> {
    Ok(Json(lb.monitors().await?))
}

/// Create a health monitor for a pool.
#[utoipa::path(post, path = "/lb/monitors", tag = "loadbalancer", params(DryRun),
    request_body = Monitor, security(("bearer" = [])),
    responses(
        (status = 201, description = "Stored; probing starts", body = MonitorWrite),
        (status = 200, description = "Dry run", body = MonitorWrite),
        (status = 422, description = "Invalid (e.g. `timeout` not below `interval`)", body = ErrorBody),
        (status = 404, description = "No such pool", body = ErrorBody),
        (status = 409, description = "Id exists; the pool has a monitor; the source address is taken", body = ErrorBody),
        (status = 502, description = "A switch rejected it; rolled back", body = ErrorBody),
    ))]
async fn create_monitor(
    State(lb): State<LoadBalancerService>,
    dry: DryRun,
    ApiJson(monitor): ApiJson<Monitor>,
) -> Result<(StatusCode, Json<MonitorWrite>), ApiError> {
    let wrote = lb
        .put_monitor(monitor, true, Origin::rest(), dry.dry_run)
        .await?;
    let status = if dry.dry_run {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(MonitorWrite {
            applied: applied(&wrote.written),
            monitor: wrote.value,
        }),
    ))
}

/// One monitor.
#[utoipa::path(get, path = "/lb/monitors/{id}", tag = "loadbalancer",
    params(("id" = String, Path, description = "Monitor id")),
    responses((status = 200, description = "The monitor", body = Monitor),
              (status = 404, description = "No such monitor", body = ErrorBody)))]
async fn get_monitor(
    State(lb): State<LoadBalancerService>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Monitor>, ApiError> {
    Ok(Json(lb.monitor(id).await?))
}

/// Create or replace a monitor.
#[utoipa::path(put, path = "/lb/monitors/{id}", tag = "loadbalancer",
    params(("id" = String, Path, description = "Monitor id"), DryRun), request_body = Monitor,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Replaced (or dry run)", body = MonitorWrite),
        (status = 201, description = "Created", body = MonitorWrite),
        (status = 422, description = "Invalid (field named)", body = ErrorBody),
        (status = 404, description = "No such pool", body = ErrorBody),
        (status = 409, description = "The pool has another monitor; the source address is taken", body = ErrorBody),
        (status = 502, description = "A switch rejected it; rolled back", body = ErrorBody),
    ))]
async fn put_monitor(
    State(lb): State<LoadBalancerService>,
    ApiPath(id): ApiPath<String>,
    dry: DryRun,
    ApiJson(mut monitor): ApiJson<Monitor>,
) -> Result<(StatusCode, Json<MonitorWrite>), ApiError> {
    same_id(&mut monitor.id, id)?;
    let wrote = lb
        .put_monitor(monitor, false, Origin::rest(), dry.dry_run)
        .await?;
    let status = write_status(&wrote, dry);
    Ok((
        status,
        Json(MonitorWrite {
            applied: applied(&wrote.written),
            monitor: wrote.value,
        }),
    ))
}

/// Delete a monitor: its members count as up again.
#[utoipa::path(delete, path = "/lb/monitors/{id}", tag = "loadbalancer",
    params(("id" = String, Path, description = "Monitor id")), security(("bearer" = [])),
    responses((status = 200, description = "Deleted", body = MonitorWrite),
              (status = 404, description = "No such monitor", body = ErrorBody),
              (status = 502, description = "A switch rejected it; rolled back", body = ErrorBody)))]
async fn delete_monitor(
    State(lb): State<LoadBalancerService>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<MonitorWrite>, ApiError> {
    let (monitor, written) = lb.delete_monitor(id, Origin::rest()).await?;
    Ok(Json(MonitorWrite {
        monitor,
        applied: Some(AppliedInfo::of(&written, written.value)),
    }))
}
