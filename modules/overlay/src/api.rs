//! REST: `/networks`, `/ports` (also as `/networks/{id}/ports`),
//! `/chassis`: thin callers of the [`OverlayService`]. Port ids are unique
//! across networks; `PUT /ports/{id}` with another network moves a port in
//! one step. `PUT` on a network or a port takes `?dry_run=true` (validate,
//! answer with the canonical object, change nothing), which the pusher
//! tool uses.
//!
//! Writes are serialized, validated against the module's current
//! configuration (4xx naming the field, nothing changed), persisted and
//! applied; the answer comes after the switches confirmed the flows by
//! barrier and says which did (`applied`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use flowgate_controller::api::{
    ApiError, ApiJson, ApiPath, ApiState, AppliedInfo, DryRun, ErrorBody, OpenApiRouter,
};
use flowgate_controller::ovsdb::hosts::Hosts;
use flowgate_controller::runtime::Runtime;
use flowgate_controller::service::{Origin, Written};
use flowgate_controller::store::{Store, StoreExt};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::model::{Config, Invalid, Network, NetworkInput, Port, PortInput};
use crate::provision::{ChassisStatus, StatusBoard};
use crate::service::{OverlayService, PortView, Wrote, NETWORKS, PORTS};

const CONNECTIONS: &str = "overlay/connections/";

/// What the overlay's handlers share.
#[derive(Clone)]
pub struct OverlayApi {
    pub service: OverlayService,
    pub store: Arc<dyn Store>,
    pub hosts: Hosts,
    pub board: StatusBoard,
    /// Serializes OVSDB target registrations.
    connections: Arc<tokio::sync::Mutex<()>>,
}

impl OverlayApi {
    pub fn new(runtime: Runtime, store: Arc<dyn Store>, hosts: Hosts, board: StatusBoard) -> Self {
        OverlayApi {
            service: OverlayService::new(runtime),
            store,
            hosts,
            board,
            connections: Arc::default(),
        }
    }
}

/// The configuration persisted by earlier runs.
pub fn load_config(store: &dyn Store) -> anyhow::Result<Config> {
    let mut config = Config::default();
    for (_, n) in store.list_json::<Network>(NETWORKS)? {
        config.networks.insert(n.id.clone(), n);
    }
    for (_, p) in store.list_json::<Port>(PORTS)? {
        config.ports.insert((p.network.clone(), p.id.clone()), p);
    }
    Ok(config)
}

/// Active OVSDB targets registered by earlier runs.
pub fn load_targets(store: &dyn Store) -> anyhow::Result<Vec<String>> {
    Ok(store
        .list_json::<String>(CONNECTIONS)?
        .into_iter()
        .map(|(_, t)| t)
        .collect())
}

/// The overlay's routes, relative to `/api/v1`.
pub fn routes(api: OverlayApi) -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_networks, create_network))
        .routes(routes!(get_network, put_network, delete_network))
        .routes(routes!(list_network_ports, create_network_port))
        .routes(routes!(
            get_network_port,
            put_network_port,
            delete_network_port
        ))
        .routes(routes!(list_ports, post_port))
        .routes(routes!(get_port, put_port, delete_port))
        .routes(routes!(list_chassis))
        .routes(routes!(list_connections, add_connection))
        .routes(routes!(delete_connection))
        .with_state(api)
}

/// A written network and what applying it did (`applied` is null for a
/// dry run).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NetworkWritten {
    #[serde(flatten)]
    pub network: Network,
    pub applied: Option<AppliedInfo>,
}

/// A written port and what applying it did (`applied` is null for a dry
/// run).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PortWritten {
    #[serde(flatten)]
    pub port: PortView,
    pub applied: Option<AppliedInfo>,
}

/// A deletion and what it did.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = OverlayDeleted)]
pub struct Deleted {
    pub deleted: String,
    /// Ports removed with a network.
    pub ports: Vec<String>,
    pub applied: AppliedInfo,
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> ApiError {
        match e {
            Invalid::Bad { field, reason } => ApiError::invalid(field, reason),
            Invalid::Conflict { field, reason } => ApiError::conflict(field, reason),
            Invalid::Missing { field, reason } => ApiError::not_found(field, reason),
        }
    }
}

fn applied(written: &Written<()>) -> AppliedInfo {
    AppliedInfo::of(written, 0)
}

fn no_network(id: &str) -> ApiError {
    ApiError::not_found("network", format!("no network {id:?}"))
}

fn no_port(id: &str) -> ApiError {
    ApiError::not_found("port", format!("no port {id:?}"))
}

/// 201 for a creation, 200 otherwise (and for a dry run).
fn answer<T: Serialize>(
    wrote: Wrote<T>,
    written: impl FnOnce(T, Option<AppliedInfo>) -> axum::response::Response,
) -> (StatusCode, axum::response::Response) {
    let status = if wrote.created && wrote.written.is_some() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let applied = wrote.written.as_ref().map(applied);
    (status, written(wrote.value, applied))
}

fn network_answer(wrote: Wrote<Network>) -> (StatusCode, axum::response::Response) {
    answer(wrote, |network, applied| {
        Json(NetworkWritten { network, applied }).into_response()
    })
}

fn port_answer(wrote: Wrote<PortView>) -> (StatusCode, axum::response::Response) {
    answer(wrote, |port, applied| {
        Json(PortWritten { port, applied }).into_response()
    })
}

/// All networks, by id.
#[utoipa::path(get, path = "/networks", tag = "overlay",
    responses((status = 200, description = "Networks", body = [Network])))]
async fn list_networks(State(api): State<OverlayApi>) -> Result<Json<Vec<Network>>, ApiError> {
    Ok(Json(
        api.service.config().await?.networks.into_values().collect(),
    ))
}

/// Create a network (VNI allocated when absent).
#[utoipa::path(post, path = "/networks", tag = "overlay", request_body = NetworkInput,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created and on the switches", body = NetworkWritten),
        (status = 422, description = "Invalid value (field named)", body = ErrorBody),
        (status = 409, description = "Duplicate id or VNI", body = ErrorBody),
    ))]
async fn create_network(
    State(api): State<OverlayApi>,
    ApiJson(input): ApiJson<NetworkInput>,
) -> Result<(StatusCode, axum::response::Response), ApiError> {
    let wrote = api
        .service
        .put_network(input, None, true, Origin::rest(), false)
        .await?;
    Ok(network_answer(wrote))
}

/// One network.
#[utoipa::path(get, path = "/networks/{id}", tag = "overlay",
    params(("id" = String, Path, description = "Network id")),
    responses(
        (status = 200, description = "The network", body = Network),
        (status = 404, description = "No such network", body = ErrorBody),
    ))]
async fn get_network(
    State(api): State<OverlayApi>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Network>, ApiError> {
    api.service
        .config()
        .await?
        .networks
        .remove(&id)
        .map(Json)
        .ok_or_else(|| no_network(&id))
}

/// Create or replace a network.
#[utoipa::path(put, path = "/networks/{id}", tag = "overlay", request_body = NetworkInput,
    params(("id" = String, Path, description = "Network id"), DryRun),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Replaced (or, with dry_run, valid)", body = NetworkWritten),
        (status = 201, description = "Created", body = NetworkWritten),
        (status = 422, description = "Invalid value (field named)", body = ErrorBody),
        (status = 409, description = "Duplicate VNI", body = ErrorBody),
    ))]
async fn put_network(
    State(api): State<OverlayApi>,
    ApiPath(id): ApiPath<String>,
    dry: DryRun,
    ApiJson(input): ApiJson<NetworkInput>,
) -> Result<(StatusCode, axum::response::Response), ApiError> {
    let wrote = api
        .service
        .put_network(input, Some(id), false, Origin::rest(), dry.dry_run)
        .await?;
    Ok(network_answer(wrote))
}

/// Delete a network with all its ports; its flows leave every switch.
#[utoipa::path(delete, path = "/networks/{id}", tag = "overlay",
    params(("id" = String, Path, description = "Network id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 404, description = "No such network", body = ErrorBody),
    ))]
async fn delete_network(
    State(api): State<OverlayApi>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Deleted>, ApiError> {
    let (ports, written) = api
        .service
        .delete_network(id.clone(), Origin::rest())
        .await?;
    Ok(Json(Deleted {
        deleted: id,
        ports,
        applied: applied(&written),
    }))
}

/// Ports of a network with their state.
#[utoipa::path(get, path = "/networks/{id}/ports", tag = "overlay",
    params(("id" = String, Path, description = "Network id")),
    responses(
        (status = 200, description = "Ports", body = [PortView]),
        (status = 404, description = "No such network", body = ErrorBody),
    ))]
async fn list_network_ports(
    State(api): State<OverlayApi>,
    ApiPath(network): ApiPath<String>,
) -> Result<Json<Vec<PortView>>, ApiError> {
    api.service
        .ports(Some(network.clone()))
        .await?
        .map(Json)
        .ok_or_else(|| no_network(&network))
}

/// Bind a VM interface to the network.
#[utoipa::path(post, path = "/networks/{id}/ports", tag = "overlay", request_body = PortInput,
    params(("id" = String, Path, description = "Network id")),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Bound", body = PortWritten),
        (status = 422, description = "Invalid value (field named)", body = ErrorBody),
        (status = 404, description = "No such network", body = ErrorBody),
        (status = 409, description = "Duplicate id, interface bound twice, duplicate MAC/IP", body = ErrorBody),
    ))]
async fn create_network_port(
    State(api): State<OverlayApi>,
    ApiPath(network): ApiPath<String>,
    ApiJson(input): ApiJson<PortInput>,
) -> Result<(StatusCode, axum::response::Response), ApiError> {
    let wrote = api
        .service
        .put_port(network, input, None, true, Origin::rest(), false)
        .await?;
    Ok(port_answer(wrote))
}

/// One port of a network.
#[utoipa::path(get, path = "/networks/{id}/ports/{port}", tag = "overlay",
    params(("id" = String, Path, description = "Network id"),
           ("port" = String, Path, description = "Port id")),
    responses(
        (status = 200, description = "The port", body = PortView),
        (status = 404, description = "No such network or port", body = ErrorBody),
    ))]
async fn get_network_port(
    State(api): State<OverlayApi>,
    ApiPath((network, id)): ApiPath<(String, String)>,
) -> Result<Json<PortView>, ApiError> {
    let view = api.service.port(id.clone()).await?;
    match view {
        Some(view) if view.port.network == network => Ok(Json(view)),
        _ if !api.service.config().await?.networks.contains_key(&network) => {
            Err(no_network(&network))
        }
        _ => Err(no_port(&id)),
    }
}

/// Create or replace a port of this network (moving it here if it is in
/// another).
#[utoipa::path(put, path = "/networks/{id}/ports/{port}", tag = "overlay", request_body = PortInput,
    params(("id" = String, Path, description = "Network id"),
           ("port" = String, Path, description = "Port id"), DryRun),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Replaced or moved (or, with dry_run, valid)", body = PortWritten),
        (status = 201, description = "Created", body = PortWritten),
        (status = 422, description = "Invalid value (field named)", body = ErrorBody),
        (status = 404, description = "No such network", body = ErrorBody),
        (status = 409, description = "Interface bound elsewhere, duplicate MAC/IP", body = ErrorBody),
    ))]
async fn put_network_port(
    State(api): State<OverlayApi>,
    ApiPath((network, id)): ApiPath<(String, String)>,
    dry: DryRun,
    ApiJson(input): ApiJson<PortInput>,
) -> Result<(StatusCode, axum::response::Response), ApiError> {
    let wrote = api
        .service
        .put_port(network, input, Some(id), false, Origin::rest(), dry.dry_run)
        .await?;
    Ok(port_answer(wrote))
}

/// Unbind a port of this network; its flows leave every switch.
#[utoipa::path(delete, path = "/networks/{id}/ports/{port}", tag = "overlay",
    params(("id" = String, Path, description = "Network id"),
           ("port" = String, Path, description = "Port id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 404, description = "No such network or port", body = ErrorBody),
    ))]
async fn delete_network_port(
    State(api): State<OverlayApi>,
    ApiPath((network, id)): ApiPath<(String, String)>,
) -> Result<Json<Deleted>, ApiError> {
    remove_port(&api, Some(network), id).await
}

async fn remove_port(
    api: &OverlayApi,
    network: Option<String>,
    id: String,
) -> Result<Json<Deleted>, ApiError> {
    let written = api
        .service
        .delete_port(network, id.clone(), Origin::rest())
        .await?;
    Ok(Json(Deleted {
        deleted: id,
        ports: Vec::new(),
        applied: applied(&written),
    }))
}

/// Every port of every network, with its state.
#[utoipa::path(get, path = "/ports", tag = "overlay",
    responses((status = 200, description = "Ports", body = [PortView])))]
async fn list_ports(State(api): State<OverlayApi>) -> Result<Json<Vec<PortView>>, ApiError> {
    Ok(Json(api.service.ports(None).await?.unwrap_or_default()))
}

fn required_network(input: &PortInput) -> Result<String, ApiError> {
    input
        .network
        .clone()
        .ok_or_else(|| ApiError::invalid("network", "name the network the port belongs to"))
}

/// Bind a VM interface to the network the body names.
#[utoipa::path(post, path = "/ports", tag = "overlay", request_body = PortInput,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Bound", body = PortWritten),
        (status = 422, description = "Invalid value (field named)", body = ErrorBody),
        (status = 404, description = "No such network", body = ErrorBody),
        (status = 409, description = "Duplicate id, interface bound twice, duplicate MAC/IP", body = ErrorBody),
    ))]
async fn post_port(
    State(api): State<OverlayApi>,
    ApiJson(input): ApiJson<PortInput>,
) -> Result<(StatusCode, axum::response::Response), ApiError> {
    let network = required_network(&input)?;
    let wrote = api
        .service
        .put_port(network, input, None, true, Origin::rest(), false)
        .await?;
    Ok(port_answer(wrote))
}

/// One port.
#[utoipa::path(get, path = "/ports/{id}", tag = "overlay",
    params(("id" = String, Path, description = "Port id")),
    responses(
        (status = 200, description = "The port", body = PortView),
        (status = 404, description = "No such port", body = ErrorBody),
    ))]
async fn get_port(
    State(api): State<OverlayApi>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<PortView>, ApiError> {
    api.service
        .port(id.clone())
        .await?
        .map(Json)
        .ok_or_else(|| no_port(&id))
}

/// Create or replace a port; naming another network than the port's
/// moves it there in one step (its old network loses it when this answers).
#[utoipa::path(put, path = "/ports/{id}", tag = "overlay", request_body = PortInput,
    params(("id" = String, Path, description = "Port id"), DryRun),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Replaced or moved (or, with dry_run, valid)", body = PortWritten),
        (status = 201, description = "Created", body = PortWritten),
        (status = 422, description = "Invalid value (field named)", body = ErrorBody),
        (status = 404, description = "No such network", body = ErrorBody),
        (status = 409, description = "Interface bound elsewhere, duplicate MAC/IP", body = ErrorBody),
    ))]
async fn put_port(
    State(api): State<OverlayApi>,
    ApiPath(id): ApiPath<String>,
    dry: DryRun,
    ApiJson(input): ApiJson<PortInput>,
) -> Result<(StatusCode, axum::response::Response), ApiError> {
    let network = required_network(&input)?;
    let wrote = api
        .service
        .put_port(network, input, Some(id), false, Origin::rest(), dry.dry_run)
        .await?;
    Ok(port_answer(wrote))
}

/// Unbind a port; its flows leave every switch.
#[utoipa::path(delete, path = "/ports/{id}", tag = "overlay",
    params(("id" = String, Path, description = "Port id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 404, description = "No such port", body = ErrorBody),
    ))]
async fn delete_port(
    State(api): State<OverlayApi>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Deleted>, ApiError> {
    remove_port(&api, None, id).await
}

/// Cloud hosts known through OVSDB: integration bridge, tunnels, VM
/// interfaces, and their state.
#[utoipa::path(get, path = "/chassis", tag = "overlay",
    responses((status = 200, description = "Hosts by id", body = [ChassisStatus])))]
async fn list_chassis(State(api): State<OverlayApi>) -> Json<Vec<ChassisStatus>> {
    Json(api.board.list())
}

/// An OVSDB target Flowgate dials (a host exposing `ptcp:6640`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    /// `tcp:IP:PORT` (port defaults to 6640), `ssl:IP:PORT` (with OVSDB
    /// over TLS configured; the host listens with `pssl:`) or `unix:PATH`.
    #[schema(example = "tcp:192.0.2.10:6640")]
    pub target: String,
}

/// Targets Flowgate keeps OVSDB connections to.
#[utoipa::path(get, path = "/chassis/connections", tag = "overlay",
    responses((status = 200, description = "Targets", body = [Connection])))]
async fn list_connections(State(api): State<OverlayApi>) -> Json<Vec<Connection>> {
    Json(
        api.hosts
            .targets()
            .into_iter()
            .map(|target| Connection { target })
            .collect(),
    )
}

/// Register a host Flowgate connects to.
#[utoipa::path(post, path = "/chassis/connections", tag = "overlay", request_body = Connection,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Registered; Flowgate connects and keeps reconnecting", body = Connection),
        (status = 422, description = "Bad target", body = ErrorBody),
        (status = 409, description = "Already registered", body = ErrorBody),
    ))]
async fn add_connection(
    State(api): State<OverlayApi>,
    ApiJson(conn): ApiJson<Connection>,
) -> Result<(StatusCode, Json<Connection>), ApiError> {
    let _write = api.connections.lock().await;
    api.hosts
        .check_target(&conn.target)
        .map_err(|e| ApiError::invalid("target", e.to_string()))?;
    if api.hosts.targets().contains(&conn.target) {
        return Err(ApiError::conflict(
            "target",
            format!("{:?} is registered", conn.target),
        ));
    }
    api.store
        .put_json(&format!("{CONNECTIONS}{}", conn.target), &conn.target)?;
    api.hosts
        .connect(&conn.target)
        .map_err(|e| ApiError::invalid("target", e.to_string()))?;
    Ok((StatusCode::CREATED, Json(conn)))
}

/// Stop connecting to a host (its tunnels go after the grace period).
#[utoipa::path(delete, path = "/chassis/connections/{target}", tag = "overlay",
    params(("target" = String, Path, description = "The target, URL-encoded")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Unregistered"),
        (status = 404, description = "Not registered", body = ErrorBody),
    ))]
async fn delete_connection(
    State(api): State<OverlayApi>,
    ApiPath(target): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let _write = api.connections.lock().await;
    if !api.hosts.targets().contains(&target) {
        return Err(ApiError::not_found(
            "target",
            format!("{target:?} is not registered"),
        ));
    }
    api.store.delete(&format!("{CONNECTIONS}{target}"))?;
    api.hosts.disconnect(&target);
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests;
