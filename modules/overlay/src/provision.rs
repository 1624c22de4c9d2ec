//! The OVSDB side of the overlay, a background task of the module. For
//! every connected host it declares to the shared OVSDB reconciler
//! ([`Reconciler`]) the integration bridge the overlay needs (created if
//! missing; our controller, `fail_mode=secure`, OpenFlow 1.3) and one
//! tunnel port per peer host (`key=flow`, local/remote underlay addresses,
//! `external_ids:flowgate-peer=<peer>`); it hands the module the
//! resulting [`Chassis`] list ([`ChassisList`], a task message) and
//! publishes a [`StatusBoard`] for `GET /chassis`.
//!
//! A host is "present" while its OVSDB connection is up. A host that
//! disconnects keeps its tunnels and its place in the chassis list for a
//! grace period (a controller or ovsdb-server restart is not a host
//! leaving); after that its peers lose their tunnels to it. Right after
//! Flowgate starts, a host's tunnels to hosts not yet reconnected are kept
//! for the same period: the task settles a host with the reconciler only
//! once every peer its tunnels lead to is known again, or the period ends.
//!
//! Tunnel ports of Flowgate versions before the reconciler carry
//! `flowgate-peer` only; the reconciler adopts them as the overlay's
//! (registered as its legacy mark) and tags them in place.
//!
//! The underlay address of a host (its "encap IP") is
//! `Open_vSwitch external_ids:flowgate-encap-ip`, else `ovn-encap-ip`, else
//! the address its OVSDB connection comes from.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use flowgate_controller::cookie::Owner;
use flowgate_controller::module::Scope;
use flowgate_controller::ovsdb::hosts::{HostSnapshot, Hosts, Mode};
use flowgate_controller::ovsdb::{
    BridgeSpec, Object, OwnerRows, PortSpec, Reconciler, Registration,
};
use flowgate_controller::runtime::tasks::{Task, TaskCtx};
use serde::Serialize;
use tracing::info;
use utoipa::ToSchema;

use crate::world::Chassis;

/// `external_ids` key naming the peer chassis a tunnel port leads to.
pub const PEER_KEY: &str = "flowgate-peer";
/// The reconciler scope of everything the overlay wants on a host.
const SCOPE: Scope = Scope::new("chassis", 0);

/// Tunnel encapsulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TunnelType {
    #[default]
    Vxlan,
    Geneve,
}

impl TunnelType {
    pub fn as_str(self) -> &'static str {
        match self {
            TunnelType::Vxlan => "vxlan",
            TunnelType::Geneve => "geneve",
        }
    }
}

impl std::str::FromStr for TunnelType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "vxlan" => Ok(TunnelType::Vxlan),
            "geneve" => Ok(TunnelType::Geneve),
            other => Err(format!("unknown tunnel type {other:?} (vxlan or geneve)")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ProvisionConfig {
    /// Name of the integration bridge on every host.
    pub bridge: String,
    pub tunnel_type: TunnelType,
    /// Flowgate's OpenFlow port; the controller target is
    /// `tcp:<address the host reached us at>:<port>`.
    pub openflow_port: u16,
    /// Overrides that target (e.g. `tcp:192.0.2.1:6653`).
    pub controller: Option<String>,
    /// How long a departed host keeps its tunnels.
    pub grace: Duration,
}

impl Default for ProvisionConfig {
    fn default() -> Self {
        ProvisionConfig {
            bridge: "br-int".into(),
            tunnel_type: TunnelType::Vxlan,
            openflow_port: 6653,
            controller: None,
            grace: Duration::from_secs(30),
        }
    }
}

/// A host as `GET /chassis` shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChassisStatus {
    pub id: String,
    pub name: String,
    /// False while a departed host is in its grace period.
    pub connected: bool,
    /// `passive` (the host dialled us) or `active` (we dialled it).
    pub mode: String,
    /// The active connection's target, for hosts Flowgate dials.
    pub target: Option<String>,
    #[schema(value_type = Option<String>)]
    pub peer: Option<SocketAddr>,
    #[schema(value_type = Option<String>)]
    pub encap_ip: Option<IpAddr>,
    pub bridge: Option<BridgeStatus>,
    pub tunnels: Vec<TunnelStatus>,
    /// VM interfaces with an `iface-id`.
    pub ifaces: Vec<IfaceStatus>,
    /// The last OVSDB transaction error, if the last one failed.
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BridgeStatus {
    pub name: String,
    pub dpid: Option<String>,
    pub datapath_type: String,
    pub fail_mode: Option<String>,
    pub protocols: Vec<String>,
    pub controllers: Vec<ControllerStatus>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ControllerStatus {
    pub target: String,
    pub connected: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TunnelStatus {
    pub name: String,
    /// Peer chassis id.
    pub peer: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub remote_ip: Option<String>,
    pub local_ip: Option<String>,
    pub ofport: Option<i64>,
    pub link_state: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IfaceStatus {
    pub iface_id: String,
    pub name: String,
    pub ofport: Option<i64>,
}

/// What the provisioner last saw, for the REST API.
#[derive(Debug, Clone, Default)]
pub struct StatusBoard {
    inner: Arc<Mutex<Vec<ChassisStatus>>>,
}

impl StatusBoard {
    pub fn list(&self) -> Vec<ChassisStatus> {
        lock(&self.inner).clone()
    }

    fn set(&self, list: Vec<ChassisStatus>) {
        *lock(&self.inner) = list;
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One host as the provisioner tracks it.
#[derive(Debug, Clone)]
struct Seen {
    presence: Presence,
    chassis: Chassis,
    status: ChassisStatus,
}

/// Whether a host is connected and, once it is not, since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presence {
    Present,
    /// The first round that found it gone. Counting the grace period from
    /// the last round that saw it instead would shorten it by up to a round.
    GoneSince(Instant),
}

impl Presence {
    /// This round has not found the host (yet).
    fn unconfirmed(self, now: Instant) -> Presence {
        match self {
            Presence::Present => Presence::GoneSince(now),
            gone => gone,
        }
    }

    fn expired(self, now: Instant, grace: Duration) -> bool {
        match self {
            Presence::Present => false,
            Presence::GoneSince(at) => now.duration_since(at) >= grace,
        }
    }
}

/// What the provisioning task works with.
pub struct Provisioning {
    hosts: Hosts,
    reconciler: Reconciler,
    rows: OwnerRows,
    config: ProvisionConfig,
    board: StatusBoard,
}

impl std::fmt::Debug for Provisioning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioning")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Provisioning {
    /// Registers the overlay's rows with `reconciler`.
    pub fn new(
        hosts: Hosts,
        reconciler: &Reconciler,
        config: ProvisionConfig,
        board: StatusBoard,
    ) -> Provisioning {
        let registration = Registration {
            legacy_mark: Some(PEER_KEY),
            ..Registration::default()
        };
        Provisioning {
            rows: reconciler.register(Owner::Overlay, registration),
            reconciler: reconciler.clone(),
            hosts,
            config,
            board,
        }
    }

    /// The task that runs it, stopped at shutdown.
    pub fn task(self) -> Task {
        Task::new("provision", move |ctx| run(ctx, self))
    }
}

/// The hosts the overlay works with, from its provisioning task to the
/// module ([`flowgate_controller::module::Event::Task`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChassisList(pub Vec<Chassis>);

/// Reacts to OVSDB changes (and a 1 s clock for grace expiry) until the
/// runtime stops.
async fn run(mut ctx: TaskCtx, p: Provisioning) {
    let config = &p.config;
    let started = Instant::now();
    let mut changes = p.hosts.subscribe();
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    let mut pushed: Option<Vec<Chassis>> = None;
    loop {
        let now = Instant::now();
        let snapshots = p.hosts.by_host();
        for (id, s) in &mut seen {
            s.presence = s.presence.unconfirmed(now);
            s.status.connected = false;
            if !snapshots.contains_key(id) {
                // Declared again when it is back: until then the reconciler
                // has nothing stale to apply to it.
                p.rows.forget(id);
            }
        }
        for (id, snap) in &snapshots {
            let chassis = chassis_of(id, snap, config);
            let mut status = status_of(id, snap, &chassis, config);
            status.last_error = p.reconciler.status(id).last_error;
            seen.insert(
                id.clone(),
                Seen {
                    presence: Presence::Present,
                    chassis,
                    status,
                },
            );
        }
        seen.retain(|id, s| {
            let keep = !s.presence.expired(now, config.grace);
            if !keep {
                info!(chassis = ?id, "host gone past its grace period; removing its tunnels");
            }
            keep
        });
        let peers: BTreeMap<String, IpAddr> = seen
            .iter()
            .filter_map(|(id, s)| Some((id.clone(), s.chassis.encap_ip?)))
            .collect();
        let keep_unknown = now.duration_since(started) < config.grace;
        for (id, snap) in &snapshots {
            let Some(me) = seen.get(id) else { continue };
            let target = controller_target(snap, config);
            let wanted = objects(id, me.chassis.encap_ip, &peers, target.as_deref(), config);
            p.rows.declare(id, SCOPE, wanted);
            // Its tunnels to hosts not back yet stay until they are.
            if !keep_unknown
                || me
                    .chassis
                    .tunnels
                    .keys()
                    .all(|peer| peers.contains_key(peer))
            {
                p.rows.settle(id);
            }
        }
        p.board
            .set(seen.values().map(|s| s.status.clone()).collect());
        let chassis: Vec<Chassis> = seen.values().map(|s| s.chassis.clone()).collect();
        // Right after a start, wait until every host that present hosts
        // have tunnels to is back, so the module compiles once, with the
        // whole picture, instead of removing and re-adding flows.
        let settled = !keep_unknown
            || chassis
                .iter()
                .flat_map(|c| c.tunnels.keys())
                .all(|peer| seen.contains_key(peer));
        if settled && pushed.as_ref() != Some(&chassis) {
            if !ctx.send(ChassisList(chassis.clone())).await {
                return;
            }
            pushed = Some(chassis);
        }
        tokio::select! {
            _ = ctx.stopped() => return,
            r = changes.changed() => {
                if r.is_err() {
                    return;
                }
                // Let a burst of updates settle into one round.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

fn encap_ip(snap: &HostSnapshot) -> Option<IpAddr> {
    ["flowgate-encap-ip", "ovn-encap-ip"]
        .iter()
        .find_map(|k| snap.view.external_ids.get(*k)?.parse().ok())
        .or_else(|| snap.peer_ip())
}

fn controller_target(snap: &HostSnapshot, config: &ProvisionConfig) -> Option<String> {
    if let Some(t) = &config.controller {
        return Some(t.clone());
    }
    let local = snap.local?;
    Some(format!(
        "tcp:{}",
        SocketAddr::new(local.ip(), config.openflow_port)
    ))
}

fn chassis_of(id: &str, snap: &HostSnapshot, config: &ProvisionConfig) -> Chassis {
    let bridge = snap.view.bridge(&config.bridge);
    let mut ifaces = BTreeMap::new();
    let mut tunnels = BTreeMap::new();
    for iface in bridge.iter().flat_map(|b| b.interfaces()) {
        if let Some(peer) = iface.external_ids.get(PEER_KEY) {
            tunnels.insert(peer.clone(), iface.name.clone());
        } else if let Some(iface_id) = iface.external_ids.get("iface-id") {
            ifaces.insert(iface_id.clone(), iface.name.clone());
        }
    }
    Chassis {
        id: id.to_owned(),
        name: snap
            .view
            .external_ids
            .get("hostname")
            .cloned()
            .or_else(|| snap.peer.map(|p| p.ip().to_string()))
            .unwrap_or_else(|| id.to_owned()),
        dpid: bridge.and_then(|b| b.datapath_id),
        encap_ip: encap_ip(snap),
        ifaces,
        tunnels,
    }
}

fn status_of(
    id: &str,
    snap: &HostSnapshot,
    chassis: &Chassis,
    config: &ProvisionConfig,
) -> ChassisStatus {
    let bridge = snap.view.bridge(&config.bridge);
    let (mode, target) = match &snap.mode {
        Mode::Passive => ("passive", None),
        Mode::Active { target } => ("active", Some(target.clone())),
    };
    ChassisStatus {
        id: id.to_owned(),
        name: chassis.name.clone(),
        connected: true,
        mode: mode.into(),
        target,
        peer: snap.peer,
        encap_ip: chassis.encap_ip,
        bridge: bridge.map(|b| BridgeStatus {
            name: b.name.clone(),
            dpid: b
                .datapath_id
                .map(flowgate_controller::api::dpid::format_dpid),
            datapath_type: b.datapath_type.clone(),
            fail_mode: b.fail_mode.clone(),
            protocols: b.protocols.clone(),
            controllers: b
                .controllers
                .iter()
                .map(|c| ControllerStatus {
                    target: c.target.clone(),
                    connected: c.is_connected,
                })
                .collect(),
        }),
        tunnels: bridge
            .iter()
            .flat_map(|b| b.interfaces())
            .filter_map(|i| {
                Some(TunnelStatus {
                    name: i.name.clone(),
                    peer: i.external_ids.get(PEER_KEY)?.clone(),
                    kind: i.kind.clone(),
                    remote_ip: i.options.get("remote_ip").cloned(),
                    local_ip: i.options.get("local_ip").cloned(),
                    ofport: i.ofport,
                    link_state: i.link_state.clone(),
                    error: i.error.clone(),
                })
            })
            .collect(),
        ifaces: bridge
            .iter()
            .flat_map(|b| b.interfaces())
            .filter(|i| !i.external_ids.contains_key(PEER_KEY))
            .filter_map(|i| {
                Some(IfaceStatus {
                    iface_id: i.external_ids.get("iface-id")?.clone(),
                    name: i.name.clone(),
                    ofport: i.ofport,
                })
            })
            .collect(),
        last_error: None,
    }
}

/// The name of the tunnel port to `remote`: `fgt-` and the IPv4 address
/// in hex (12 characters, within Linux's 15), or a hash for IPv6.
pub fn tunnel_name(remote: IpAddr) -> String {
    match remote {
        IpAddr::V4(v4) => format!("fgt-{:08x}", u32::from(v4)),
        IpAddr::V6(v6) => {
            // FNV-1a, stable across runs and versions.
            let hash = v6.octets().iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
            });
            format!("fgt-{:011x}", hash & 0xfff_ffff_ffff)
        }
    }
}

/// What the overlay wants on host `me`: its integration bridge and, once
/// the host's underlay address is known, a tunnel to every peer of the
/// same address family.
pub fn objects(
    me: &str,
    my_ip: Option<IpAddr>,
    peers: &BTreeMap<String, IpAddr>,
    controller: Option<&str>,
    config: &ProvisionConfig,
) -> Vec<Object> {
    let mut out = vec![Object::Bridge(BridgeSpec {
        name: config.bridge.clone(),
        controller: controller.map(str::to_owned),
    })];
    let Some(my_ip) = my_ip else {
        return out;
    };
    for (peer, ip) in peers {
        if peer == me || ip.is_ipv4() != my_ip.is_ipv4() {
            continue;
        }
        let options = [
            ("key", "flow".to_owned()),
            ("local_ip", my_ip.to_string()),
            ("remote_ip", ip.to_string()),
        ];
        out.push(Object::Port(PortSpec {
            bridge: config.bridge.clone(),
            name: tunnel_name(*ip),
            kind: config.tunnel_type.as_str().to_owned(),
            options: options
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            external_ids: [(PEER_KEY.to_owned(), peer.clone())].into(),
        }));
    }
    out
}

#[cfg(test)]
mod tests;
