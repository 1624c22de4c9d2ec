//! REST: `/networks`, `/ports` (also as `/networks/{id}/ports`),
//! `/chassis`. Port ids are unique across networks; `PUT /ports/{id}`
//! with another network moves a port in one step. `PUT` on a network or a
//! port takes `?dry_run=true` (validate, answer with the canonical object,
//! change nothing), which the pusher tool uses.
//!
//! Writes are serialized, validated against the module's current
//! configuration (4xx naming the field, nothing changed), persisted, then
//! applied; the answer comes after the switches confirmed the flows by
//! barrier and says which did (`applied`).

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use flowgate_controller::api::{ApiError, ApiJson, ApiPath, ApiState, ErrorBody, OpenApiRouter};
use flowgate_controller::ovsdb::hosts::{valid_target, Hosts};
use flowgate_controller::runtime::{Applied, Runtime};
use flowgate_controller::store::{Op, Store, StoreExt};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

use crate::model::{Config, Invalid, Network, NetworkInput, Port, PortInput};
use crate::module::Overlay;
use crate::provision::{ChassisStatus, StatusBoard};
use crate::world::World;

const NETWORKS: &str = "overlay/networks/";
const PORTS: &str = "overlay/ports/";
const CONNECTIONS: &str = "overlay/connections/";

/// What the overlay's handlers share.
#[derive(Clone)]
pub struct OverlayApi {
    pub runtime: Runtime,
    pub store: Arc<dyn Store>,
    pub hosts: Hosts,
    pub board: StatusBoard,
    writes: Arc<tokio::sync::Mutex<()>>,
}

impl OverlayApi {
    pub fn new(runtime: Runtime, store: Arc<dyn Store>, hosts: Hosts, board: StatusBoard) -> Self {
        OverlayApi {
            runtime,
            store,
            hosts,
            board,
            writes: Arc::default(),
        }
    }

    async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Overlay, &mut flowgate_controller::module::Ctx) -> R + Send + 'static,
    ) -> Result<Applied<R>, ApiError> {
        self.runtime
            .call::<Overlay, R>(f)
            .await
            .map_err(ApiError::internal)
    }

    async fn config(&self) -> Result<Config, ApiError> {
        Ok(self.call(|m, _| m.config().clone()).await?.value)
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

/// What a write did on the switches.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AppliedInfo {
    /// Switches that confirmed every flow change by barrier.
    pub confirmed: Vec<String>,
    /// Switches that did not confirm in time; they converge on reconnect.
    pub unconfirmed: Vec<String>,
    /// Errors switches returned.
    pub errors: Vec<String>,
}

impl<R> From<&Applied<R>> for AppliedInfo {
    fn from(a: &Applied<R>) -> Self {
        let fmt = |v: &[u64]| {
            v.iter()
                .map(|d| flowgate_controller::api::dpid::format_dpid(*d))
                .collect()
        };
        AppliedInfo {
            confirmed: fmt(&a.confirmed),
            unconfirmed: fmt(&a.unconfirmed),
            errors: a.errors.clone(),
        }
    }
}

/// A written network and what applying it did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NetworkWritten {
    #[serde(flatten)]
    pub network: Network,
    pub applied: AppliedInfo,
}

/// A port with where it is and the addresses in effect.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PortView {
    #[serde(flatten)]
    pub port: Port,
    pub status: PortState,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PortState {
    /// True when the port's switch is connected and the port exists.
    pub bound: bool,
    pub dpid: Option<String>,
    pub port_no: Option<u32>,
    /// The chassis (host) it is on.
    pub chassis: Option<String>,
    /// Configured or learned.
    pub mac: Option<String>,
    /// Configured or learned.
    #[schema(value_type = Vec<String>)]
    pub ips: Vec<IpAddr>,
}

/// A written port and what applying it did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PortWritten {
    #[serde(flatten)]
    pub port: PortView,
    pub applied: AppliedInfo,
}

/// A deletion and what it did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Deleted {
    pub deleted: String,
    /// Ports removed with a network.
    pub ports: Vec<String>,
    pub applied: AppliedInfo,
}

fn port_view(world: &World, port: &Port) -> PortView {
    let loc = world.locate(port);
    PortView {
        status: PortState {
            bound: loc.port_no.is_some(),
            dpid: loc.dpid.map(flowgate_controller::api::dpid::format_dpid),
            port_no: loc.port_no,
            chassis: loc.chassis,
            mac: world.mac(port).map(|m| m.to_string()),
            ips: world.ips(port),
        },
        port: port.clone(),
    }
}

fn invalid(e: Invalid) -> ApiError {
    match e {
        Invalid::Bad { field, reason } => ApiError::bad_field(field, reason),
        Invalid::Conflict { field, reason } => ApiError::conflict(field, reason),
        Invalid::Missing { field, reason } => ApiError::not_found(field, reason),
    }
}

fn no_network(id: &str) -> ApiError {
    ApiError::not_found("network", format!("no network {id:?}"))
}

/// `?dry_run=true`: validate and answer with the object as it would be
/// stored, changing nothing.
#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DryRun {
    /// Only validate; nothing is stored or sent.
    #[serde(default)]
    pub dry_run: bool,
}

fn dry_run(q: Result<Query<DryRun>, QueryRejection>) -> Result<bool, ApiError> {
    q.map(|Query(d)| d.dry_run)
        .map_err(|e| ApiError::bad_field("dry_run", e.body_text()))
}

/// All networks, by id.
#[utoipa::path(get, path = "/networks", tag = "overlay",
    responses((status = 200, description = "Networks", body = [Network])))]
async fn list_networks(State(api): State<OverlayApi>) -> Result<Json<Vec<Network>>, ApiError> {
    Ok(Json(api.config().await?.networks.into_values().collect()))
}

/// Create a network (VNI allocated when absent).
#[utoipa::path(post, path = "/networks", tag = "overlay", request_body = NetworkInput,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created and on the switches", body = NetworkWritten),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 409, description = "Duplicate id or VNI", body = ErrorBody),
    ))]
async fn create_network(
    State(api): State<OverlayApi>,
    ApiJson(input): ApiJson<NetworkInput>,
) -> Result<(StatusCode, Json<NetworkWritten>), ApiError> {
    let _write = api.writes.lock().await;
    let config = api.config().await?;
    if let Some(id) = &input.id {
        if config.networks.contains_key(id) {
            return Err(ApiError::conflict("id", format!("network {id:?} exists")));
        }
    }
    let network = config.validate_network(input, None).map_err(invalid)?;
    write_network(&api, network)
        .await
        .map(|w| (StatusCode::CREATED, Json(w)))
}

async fn write_network(api: &OverlayApi, network: Network) -> Result<NetworkWritten, ApiError> {
    api.store
        .put_json(&format!("{NETWORKS}{}", network.id), &network)?;
    let n = network.clone();
    let applied = api.call(move |m, ctx| m.put_network(n, ctx)).await?;
    Ok(NetworkWritten {
        network,
        applied: AppliedInfo::from(&applied),
    })
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
    api.config()
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
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 409, description = "Duplicate VNI", body = ErrorBody),
    ))]
async fn put_network(
    State(api): State<OverlayApi>,
    ApiPath(id): ApiPath<String>,
    query: Result<Query<DryRun>, QueryRejection>,
    ApiJson(input): ApiJson<NetworkInput>,
) -> Result<(StatusCode, axum::response::Response), ApiError> {
    let dry = dry_run(query)?;
    let _write = api.writes.lock().await;
    let config = api.config().await?;
    let status = if config.networks.contains_key(&id) {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let network = config.validate_network(input, Some(&id)).map_err(invalid)?;
    if dry {
        return Ok((StatusCode::OK, Json(network).into_response()));
    }
    let written = write_network(&api, network).await?;
    Ok((status, Json(written).into_response()))
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
    let _write = api.writes.lock().await;
    if !api.config().await?.networks.contains_key(&id) {
        return Err(no_network(&id));
    }
    api.store.apply(vec![
        Op::delete(format!("{NETWORKS}{id}")),
        Op::delete_prefix(format!("{PORTS}{id}/")),
    ])?;
    let net = id.clone();
    let applied = api.call(move |m, ctx| m.delete_network(&net, ctx)).await?;
    let ports = applied
        .value
        .as_ref()
        .map(|(_, ports)| ports.iter().map(|p| p.id.clone()).collect())
        .unwrap_or_default();
    Ok(Json(Deleted {
        deleted: id,
        ports,
        applied: AppliedInfo::from(&applied),
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
    let net = network.clone();
    let ports = api
        .call(move |m, _| {
            let w = m.world();
            w.config.networks.contains_key(&net).then(|| {
                w.config
                    .ports
                    .values()
                    .filter(|p| p.network == net)
                    .map(|p| port_view(w, p))
                    .collect::<Vec<_>>()
            })
        })
        .await?
        .value;
    ports.map(Json).ok_or_else(|| no_network(&network))
}

/// Bind a VM interface to the network.
#[utoipa::path(post, path = "/networks/{id}/ports", tag = "overlay", request_body = PortInput,
    params(("id" = String, Path, description = "Network id")),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Bound", body = PortWritten),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 404, description = "No such network", body = ErrorBody),
        (status = 409, description = "Duplicate id, interface bound twice, duplicate MAC/IP", body = ErrorBody),
    ))]
async fn create_network_port(
    State(api): State<OverlayApi>,
    ApiPath(network): ApiPath<String>,
    ApiJson(input): ApiJson<PortInput>,
) -> Result<(StatusCode, Json<PortWritten>), ApiError> {
    create_port(&api, &network, input).await
}

async fn create_port(
    api: &OverlayApi,
    network: &str,
    input: PortInput,
) -> Result<(StatusCode, Json<PortWritten>), ApiError> {
    let _write = api.writes.lock().await;
    let config = api.config().await?;
    let port = config
        .validate_port(network, input, None)
        .map_err(invalid)?;
    write_port(api, &config, port)
        .await
        .map(|w| (StatusCode::CREATED, Json(w)))
}

/// Stores and applies a validated port, removing a port of the same id
/// from another network in the same store batch and module call (a move).
async fn write_port(
    api: &OverlayApi,
    config: &Config,
    port: Port,
) -> Result<PortWritten, ApiError> {
    let mut ops: Vec<Op> = config
        .ports
        .values()
        .filter(|p| p.id == port.id && p.network != port.network)
        .map(|p| Op::delete(format!("{PORTS}{}/{}", p.network, p.id)))
        .collect();
    ops.push(Op::put_json(
        format!("{PORTS}{}/{}", port.network, port.id),
        &port,
    )?);
    api.store.apply(ops)?;
    let p = port.clone();
    let applied = api
        .call(move |m, ctx| {
            m.put_port(p.clone(), ctx);
            port_view(m.world(), &p)
        })
        .await?;
    Ok(PortWritten {
        applied: AppliedInfo::from(&applied),
        port: applied.value,
    })
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
    let view = find_port(&api, &id).await?;
    if view.port.network != network {
        if !api.config().await?.networks.contains_key(&network) {
            return Err(no_network(&network));
        }
        return Err(no_port(&id));
    }
    Ok(Json(view))
}

async fn find_port(api: &OverlayApi, id: &str) -> Result<PortView, ApiError> {
    let i = id.to_owned();
    api.call(move |m, _| {
        let w = m.world();
        w.config
            .ports
            .values()
            .find(|p| p.id == i)
            .map(|p| port_view(w, p))
    })
    .await?
    .value
    .ok_or_else(|| no_port(id))
}

fn no_port(id: &str) -> ApiError {
    ApiError::not_found("port", format!("no port {id:?}"))
}

/// Create or replace a port of this network (moving it here if it is in
/// another).
#[utoipa::path(put, path = "/networks/{id}/ports/{port}", tag = "overlay", request_body = PortInput,
    params(("id" = String, Path, description = "Network id"),
           ("port" = String, Path, description = "Port id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Replaced or moved", body = PortWritten),
        (status = 201, description = "Created", body = PortWritten),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 404, description = "No such network", body = ErrorBody),
        (status = 409, description = "Interface bound elsewhere, duplicate MAC/IP", body = ErrorBody),
    ))]
async fn put_network_port(
    State(api): State<OverlayApi>,
    ApiPath((network, id)): ApiPath<(String, String)>,
    ApiJson(input): ApiJson<PortInput>,
) -> Result<(StatusCode, axum::response::Response), ApiError> {
    replace_port(&api, &network, &id, input, false).await
}

async fn replace_port(
    api: &OverlayApi,
    network: &str,
    id: &str,
    input: PortInput,
    dry: bool,
) -> Result<(StatusCode, axum::response::Response), ApiError> {
    let _write = api.writes.lock().await;
    let config = api.config().await?;
    let port = config
        .validate_port(network, input, Some(id))
        .map_err(invalid)?;
    let status = if config.ports.values().any(|p| p.id == id) {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    if dry {
        let p = port.clone();
        let view = api.call(move |m, _| port_view(m.world(), &p)).await?.value;
        return Ok((StatusCode::OK, Json(view).into_response()));
    }
    let written = write_port(api, &config, port).await?;
    Ok((status, Json(written).into_response()))
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
    remove_port(&api, Some(&network), &id).await
}

async fn remove_port(
    api: &OverlayApi,
    network: Option<&str>,
    id: &str,
) -> Result<Json<Deleted>, ApiError> {
    let _write = api.writes.lock().await;
    let config = api.config().await?;
    if let Some(n) = network {
        if !config.networks.contains_key(n) {
            return Err(no_network(n));
        }
    }
    let Some(port) = config
        .ports
        .values()
        .find(|p| p.id == id && network.is_none_or(|n| p.network == n))
    else {
        return Err(no_port(id));
    };
    let n = port.network.clone();
    api.store.delete(&format!("{PORTS}{n}/{id}"))?;
    let i = id.to_owned();
    let applied = api.call(move |m, ctx| m.delete_port(&n, &i, ctx)).await?;
    Ok(Json(Deleted {
        deleted: id.to_owned(),
        ports: Vec::new(),
        applied: AppliedInfo::from(&applied),
    }))
}

/// Every port of every network, with its state.
#[utoipa::path(get, path = "/ports", tag = "overlay",
    responses((status = 200, description = "Ports", body = [PortView])))]
async fn list_ports(State(api): State<OverlayApi>) -> Result<Json<Vec<PortView>>, ApiError> {
    let ports = api
        .call(|m, _| {
            let w = m.world();
            w.config
                .ports
                .values()
                .map(|p| port_view(w, p))
                .collect::<Vec<_>>()
        })
        .await?
        .value;
    Ok(Json(ports))
}

fn required_network(input: &PortInput) -> Result<String, ApiError> {
    input
        .network
        .clone()
        .ok_or_else(|| ApiError::bad_field("network", "missing field `network`"))
}

/// Bind a VM interface to the network the body names.
#[utoipa::path(post, path = "/ports", tag = "overlay", request_body = PortInput,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Bound", body = PortWritten),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 404, description = "No such network", body = ErrorBody),
        (status = 409, description = "Duplicate id, interface bound twice, duplicate MAC/IP", body = ErrorBody),
    ))]
async fn post_port(
    State(api): State<OverlayApi>,
    ApiJson(input): ApiJson<PortInput>,
) -> Result<(StatusCode, Json<PortWritten>), ApiError> {
    let network = required_network(&input)?;
    create_port(&api, &network, input).await
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
    find_port(&api, &id).await.map(Json)
}

/// Create or replace a port; naming another network than the port's
/// moves it there in one step (its old network loses it when this answers).
#[utoipa::path(put, path = "/ports/{id}", tag = "overlay", request_body = PortInput,
    params(("id" = String, Path, description = "Port id"), DryRun),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Replaced or moved (or, with dry_run, valid)", body = PortWritten),
        (status = 201, description = "Created", body = PortWritten),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 404, description = "No such network", body = ErrorBody),
        (status = 409, description = "Interface bound elsewhere, duplicate MAC/IP", body = ErrorBody),
    ))]
async fn put_port(
    State(api): State<OverlayApi>,
    ApiPath(id): ApiPath<String>,
    query: Result<Query<DryRun>, QueryRejection>,
    ApiJson(input): ApiJson<PortInput>,
) -> Result<(StatusCode, axum::response::Response), ApiError> {
    let dry = dry_run(query)?;
    let network = required_network(&input)?;
    replace_port(&api, &network, &id, input, dry).await
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
    remove_port(&api, None, &id).await
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
    /// `tcp:IP:PORT` (port defaults to 6640) or `unix:PATH`.
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
        (status = 400, description = "Bad target", body = ErrorBody),
        (status = 409, description = "Already registered", body = ErrorBody),
    ))]
async fn add_connection(
    State(api): State<OverlayApi>,
    ApiJson(conn): ApiJson<Connection>,
) -> Result<(StatusCode, Json<Connection>), ApiError> {
    let _write = api.writes.lock().await;
    valid_target(&conn.target).map_err(|e| ApiError::bad_field("target", e.to_string()))?;
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
        .map_err(|e| ApiError::bad_field("target", e.to_string()))?;
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
    let _write = api.writes.lock().await;
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
