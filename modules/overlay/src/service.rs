//! The overlay's service: the one way to read and change networks and
//! ports, for its REST handlers and for other modules. Each write is
//! staged on the core against the module's own configuration (validated,
//! persisted as an effect, declared), confirmed by the switches or rolled
//! back (see [`flowgate_controller::service`]).

use std::net::IpAddr;

use flowgate_controller::cookie::Owner;
use flowgate_controller::events::ResourceAction;
use flowgate_controller::module::Ctx;
use flowgate_controller::runtime::Runtime;
use flowgate_controller::service::{Origin, Service, Staged, WriteError, Written};
use flowgate_controller::store::Op;
use serde::Serialize;
use tracing::warn;
use utoipa::ToSchema;

use crate::model::{Config, Invalid, Network, NetworkInput, Port, PortInput};
use crate::module::Overlay;
use crate::world::World;

/// Store prefixes: `overlay/networks/<id>`, `overlay/ports/<network>/<id>`.
pub const NETWORKS: &str = "overlay/networks/";
pub const PORTS: &str = "overlay/ports/";

pub type OverlayWrite<T> = Result<T, WriteError<Invalid>>;

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

pub fn port_view(world: &World, port: &Port) -> PortView {
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

fn network_key(id: &str) -> String {
    format!("{NETWORKS}{id}")
}

fn port_key(network: &str, id: &str) -> String {
    format!("{PORTS}{network}/{id}")
}

/// Stores `value` under `key` (as part of the write `ctx` is staging).
fn persist_json(ctx: &mut Ctx, key: String, value: &impl Serialize) {
    match Op::put_json(key, value) {
        Ok(op) => ctx.persist(vec![op]),
        // Our own types always serialize; if one ever does not, the write
        // must not look durable.
        Err(e) => warn!(error = %e, "could not encode an overlay object for the store"),
    }
}

fn persist_network(ctx: &mut Ctx, network: &Network) {
    persist_json(ctx, network_key(&network.id), network);
}

fn persist_port(ctx: &mut Ctx, port: &Port) {
    persist_json(ctx, port_key(&port.network, &port.id), port);
}

/// A network or port write's result: created (or replaced), and the
/// confirmation (`None` for a dry run).
#[derive(Debug, Clone)]
pub struct Wrote<T> {
    pub value: T,
    pub created: bool,
    pub written: Option<Written<()>>,
}

/// Validates `input` as network `id` (a new one if `None`); `create` refuses
/// an existing id.
fn check_network(
    config: &Config,
    input: NetworkInput,
    id: Option<&str>,
    create: bool,
) -> Result<(Network, bool), Invalid> {
    let exists = |id: &str| config.networks.contains_key(id);
    let named = id.or(input.id.as_deref()).map(str::to_owned);
    if let Some(id) = named.as_deref().filter(|id| create && exists(id)) {
        return Err(Invalid::Conflict {
            field: "id".into(),
            reason: format!("network {id:?} exists"),
        });
    }
    let network = config.validate_network(input, id)?;
    let created = !exists(&network.id);
    Ok((network, created))
}

/// Stages `network`: stored, applied, undone by restoring what was there.
fn stage_network(m: &mut Overlay, network: Network, ctx: &mut Ctx) -> Staged<Overlay, ()> {
    let old = m.config().networks.get(&network.id).cloned();
    persist_network(ctx, &network);
    let id = network.id.clone();
    m.put_network(network, ctx);
    Staged::new((), move |m: &mut Overlay, ctx| match old {
        Some(old) => {
            persist_network(ctx, &old);
            m.put_network(old, ctx);
        }
        None => {
            ctx.persist(vec![Op::delete(network_key(&id))]);
            m.delete_network(&id, ctx);
        }
    })
}

/// Validates `input` as port `id` of `network`.
fn check_port(
    config: &Config,
    network: &str,
    input: PortInput,
    id: Option<&str>,
    create: bool,
) -> Result<(Port, bool), Invalid> {
    let port = config.validate_port(network, input, id)?;
    let exists = config.ports.values().any(|p| p.id == port.id);
    if create && exists {
        return Err(Invalid::Conflict {
            field: "id".into(),
            reason: format!("port {:?} exists", port.id),
        });
    }
    Ok((port, !exists))
}

/// Stages `port` (moving it out of another network that has it): stored,
/// applied, undone by restoring the ports it replaced.
fn stage_port(m: &mut Overlay, port: Port, ctx: &mut Ctx) -> Staged<Overlay, ()> {
    let replaced: Vec<Port> = m
        .config()
        .ports
        .values()
        .filter(|p| p.id == port.id)
        .cloned()
        .collect();
    ctx.persist(
        replaced
            .iter()
            .filter(|p| p.network != port.network)
            .map(|p| Op::delete(port_key(&p.network, &p.id)))
            .collect(),
    );
    persist_port(ctx, &port);
    let (network, id) = (port.network.clone(), port.id.clone());
    m.put_port(port, ctx);
    Staged::new((), move |m: &mut Overlay, ctx| {
        ctx.persist(vec![Op::delete(port_key(&network, &id))]);
        m.delete_port(&network, &id, ctx);
        for old in replaced {
            persist_port(ctx, &old);
            m.put_port(old, ctx);
        }
    })
}

/// The overlay's service; cheap to clone.
#[derive(Clone)]
pub struct OverlayService {
    service: Service<Overlay>,
}

impl OverlayService {
    pub fn new(runtime: Runtime) -> OverlayService {
        OverlayService {
            service: Service::new(runtime, Owner::Overlay),
        }
    }

    pub async fn config(&self) -> OverlayWrite<Config> {
        Ok(self.service.read(|m| m.config().clone()).await?)
    }

    /// Every port (of `network`, if given) with its state; `None` when the
    /// network does not exist.
    pub async fn ports(&self, network: Option<String>) -> OverlayWrite<Option<Vec<PortView>>> {
        Ok(self
            .service
            .read(move |m| {
                let w = m.world();
                if network
                    .as_ref()
                    .is_some_and(|n| !w.config.networks.contains_key(n))
                {
                    return None;
                }
                Some(
                    w.config
                        .ports
                        .values()
                        .filter(|p| network.as_ref().is_none_or(|n| p.network == *n))
                        .map(|p| port_view(w, p))
                        .collect(),
                )
            })
            .await?)
    }

    pub async fn port(&self, id: String) -> OverlayWrite<Option<PortView>> {
        Ok(self
            .service
            .read(move |m| {
                let w = m.world();
                w.config
                    .ports
                    .values()
                    .find(|p| p.id == id)
                    .map(|p| port_view(w, p))
            })
            .await?)
    }

    /// Creates (`create`: refusing an existing id) or replaces network `id`
    /// (from the body when `None`).
    pub async fn put_network(
        &self,
        input: NetworkInput,
        id: Option<String>,
        create: bool,
        by: Origin,
        dry_run: bool,
    ) -> OverlayWrite<Wrote<Network>> {
        if dry_run {
            let (network, created) = self
                .service
                .read(move |m| check_network(m.config(), input, id.as_deref(), create))
                .await?
                .map_err(WriteError::Invalid)?;
            return Ok(Wrote {
                value: network,
                created,
                written: None,
            });
        }
        let written = self
            .service
            .write(move |m, ctx| {
                let (network, created) = check_network(m.config(), input, id.as_deref(), create)?;
                Ok(stage_network(m, network.clone(), ctx).map(|()| (network, created)))
            })
            .await?;
        let (network, created) = written.value.clone();
        let action = if created {
            ResourceAction::Created
        } else {
            ResourceAction::Updated
        };
        self.service
            .announce("network", &network.id, action, &by)
            .await;
        Ok(Wrote {
            value: network,
            created,
            written: Some(written.with_value(())),
        })
    }

    /// Deletes network `id` with its ports; returns the ports' ids.
    pub async fn delete_network(
        &self,
        id: String,
        by: Origin,
    ) -> OverlayWrite<(Vec<String>, Written<()>)> {
        let net = id.clone();
        let written = self
            .service
            .write(move |m, ctx| {
                let Some((network, ports)) = m.delete_network(&net, ctx) else {
                    return Err(Invalid::Missing {
                        field: "network".into(),
                        reason: format!("no network {net:?}"),
                    });
                };
                ctx.persist(vec![
                    Op::delete(network_key(&net)),
                    Op::delete_prefix(format!("{PORTS}{net}/")),
                ]);
                let ids = ports.iter().map(|p| p.id.clone()).collect::<Vec<_>>();
                Ok(Staged::new(ids, move |m: &mut Overlay, ctx| {
                    persist_network(ctx, &network);
                    m.put_network(network, ctx);
                    for port in ports {
                        persist_port(ctx, &port);
                        m.put_port(port, ctx);
                    }
                }))
            })
            .await?;
        self.service
            .announce("network", &id, ResourceAction::Deleted, &by)
            .await;
        let ids = written.value.clone();
        Ok((ids, written.with_value(())))
    }

    /// Creates or replaces port `id` (from the body when `None`) of
    /// `network`, moving it there from another network.
    pub async fn put_port(
        &self,
        network: String,
        input: PortInput,
        id: Option<String>,
        create: bool,
        by: Origin,
        dry_run: bool,
    ) -> OverlayWrite<Wrote<PortView>> {
        if dry_run {
            let (view, created) = self
                .service
                .read(move |m| {
                    let (port, created) =
                        check_port(m.config(), &network, input, id.as_deref(), create)?;
                    Ok((port_view(m.world(), &port), created))
                })
                .await?
                .map_err(WriteError::Invalid)?;
            return Ok(Wrote {
                value: view,
                created,
                written: None,
            });
        }
        let written = self
            .service
            .write(move |m, ctx| {
                let (port, created) =
                    check_port(m.config(), &network, input, id.as_deref(), create)?;
                let staged = stage_port(m, port.clone(), ctx);
                let view = port_view(m.world(), &port);
                Ok(staged.map(|()| (view, created)))
            })
            .await?;
        let (view, created) = written.value.clone();
        let action = if created {
            ResourceAction::Created
        } else {
            ResourceAction::Updated
        };
        self.service
            .announce("port", &view.port.id, action, &by)
            .await;
        Ok(Wrote {
            value: view,
            created,
            written: Some(written.with_value(())),
        })
    }

    /// Unbinds port `id` (of `network`, when given).
    pub async fn delete_port(
        &self,
        network: Option<String>,
        id: String,
        by: Origin,
    ) -> OverlayWrite<Written<()>> {
        let port_id = id.clone();
        let written = self
            .service
            .write(move |m, ctx| {
                if let Some(n) = network
                    .as_ref()
                    .filter(|n| !m.config().networks.contains_key(*n))
                {
                    return Err(Invalid::Missing {
                        field: "network".into(),
                        reason: format!("no network {n:?}"),
                    });
                }
                let Some(port) = m
                    .config()
                    .ports
                    .values()
                    .find(|p| p.id == port_id && network.as_ref().is_none_or(|n| p.network == *n))
                    .cloned()
                else {
                    return Err(Invalid::Missing {
                        field: "port".into(),
                        reason: format!("no port {port_id:?}"),
                    });
                };
                ctx.persist(vec![Op::delete(port_key(&port.network, &port.id))]);
                m.delete_port(&port.network, &port.id, ctx);
                Ok(Staged::new((), move |m: &mut Overlay, ctx| {
                    persist_port(ctx, &port);
                    m.put_port(port, ctx);
                }))
            })
            .await?;
        self.service
            .announce("port", &id, ResourceAction::Deleted, &by)
            .await;
        Ok(written)
    }
}
