//! The OVSDB side of the overlay. For every connected host it makes the
//! integration bridge what the overlay needs (created if missing; our
//! controller, `fail_mode=secure`, OpenFlow 1.3) and keeps one tunnel port
//! per peer host (`key=flow`, local/remote underlay addresses); it hands
//! the module the resulting [`Chassis`] list.
//!
//! A host is "present" while its OVSDB connection is up. A host that
//! disconnects keeps its tunnels and its place in the chassis list for a
//! grace period (a controller or ovsdb-server restart is not a host
//! leaving); after that its peers lose their tunnels to it. Right after
//! Flowgate starts, tunnels to hosts not yet reconnected are kept for the
//! same period.
//!
//! The underlay address of a host (its "encap IP") is
//! `Open_vSwitch external_ids:flowgate-encap-ip`, else `ovn-encap-ip`, else
//! the address its OVSDB connection comes from.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use flowgate_controller::ovsdb::hosts::{HostSnapshot, Hosts, Mode};
use flowgate_controller::ovsdb::{datum, ops, BridgeView, HostView};
use flowgate_controller::runtime::Runtime;
use serde::Serialize;
use serde_json::{json, Value};
use tracing::{info, warn};
use utoipa::ToSchema;

use crate::module::Overlay;
use crate::world::Chassis;

/// `external_ids` key marking the tunnel ports Flowgate manages.
pub const PEER_KEY: &str = "flowgate-peer";
/// How long a failed transaction waits before it is tried again.
const RETRY: Duration = Duration::from_secs(5);

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

/// Runs forever: reacts to OVSDB changes (and a 1 s clock for grace expiry).
pub async fn run(hosts: Hosts, runtime: Runtime, config: ProvisionConfig, board: StatusBoard) {
    let started = Instant::now();
    let mut changes = hosts.subscribe();
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    let mut failed: BTreeMap<String, (Instant, String)> = BTreeMap::new();
    let mut pushed: Option<Vec<Chassis>> = None;
    loop {
        let now = Instant::now();
        let snapshots = present_hosts(hosts.snapshots());
        for s in seen.values_mut() {
            s.presence = s.presence.unconfirmed(now);
            s.status.connected = false;
        }
        for (id, snap) in &snapshots {
            let chassis = chassis_of(id, snap, &config);
            let mut status = status_of(id, snap, &chassis, &config);
            status.last_error = failed.get(id).map(|(_, e)| e.clone());
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
                info!(chassis = %id, "host gone past its grace period; removing its tunnels");
            }
            keep
        });
        let peers: BTreeMap<String, IpAddr> = seen
            .iter()
            .filter_map(|(id, s)| Some((id.clone(), s.chassis.encap_ip?)))
            .collect();
        let keep_unknown = now.duration_since(started) < config.grace;
        for (id, snap) in &snapshots {
            if failed
                .get(id)
                .is_some_and(|(at, _)| now.duration_since(*at) < RETRY)
            {
                continue;
            }
            let Some(me) = seen.get(id) else { continue };
            let target = controller_target(snap, &config);
            let plan = plan(
                &snap.view,
                id,
                me.chassis.encap_ip,
                &peers,
                target.as_deref(),
                &config,
                keep_unknown,
            );
            if plan.is_empty() {
                failed.remove(id);
                continue;
            }
            let Some(handle) = hosts.handle(snap.conn_id) else {
                continue;
            };
            let mut txn = vec![ops::comment("flowgate: overlay provisioning")];
            txn.extend(plan);
            match handle.transact(txn).await {
                Ok(_) => {
                    failed.remove(id);
                }
                Err(e) => {
                    warn!(chassis = %id, error = %e, "OVSDB provisioning failed; will retry");
                    failed.insert(id.clone(), (Instant::now(), e.to_string()));
                }
            }
        }
        board.set(seen.values().map(|s| s.status.clone()).collect());
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
            let list = chassis.clone();
            match runtime
                .call::<Overlay, _>(move |m, ctx| m.set_chassis(list, ctx))
                .await
            {
                Ok(_) => pushed = Some(chassis),
                Err(e) => warn!(error = %e, "overlay module unavailable"),
            }
        }
        tokio::select! {
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

/// Connected hosts by chassis id; of two connections of one host the
/// newer wins.
fn present_hosts(snapshots: Vec<HostSnapshot>) -> BTreeMap<String, HostSnapshot> {
    let mut out: BTreeMap<String, HostSnapshot> = BTreeMap::new();
    for snap in snapshots {
        let Some(id) = snap.view.host_id() else {
            continue;
        };
        match out.get(&id) {
            Some(old) if old.conn_id > snap.conn_id => {}
            _ => {
                out.insert(id, snap);
            }
        }
    }
    out
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

/// The operations that bring one host's OVSDB to what the overlay needs;
/// empty when it is already there.
pub fn plan(
    view: &HostView,
    me: &str,
    my_ip: Option<IpAddr>,
    peers: &BTreeMap<String, IpAddr>,
    controller: Option<&str>,
    config: &ProvisionConfig,
    keep_unknown: bool,
) -> Vec<Value> {
    let Some(bridge) = view.bridge(&config.bridge) else {
        return create_bridge(view, controller, config);
    };
    let mut out = bridge_settings(bridge, controller);
    let Some(my_ip) = my_ip else {
        return out;
    };
    // Desired tunnels: peer id → (name, options).
    let mut want: BTreeMap<&str, (String, BTreeMap<String, String>)> = BTreeMap::new();
    for (peer, ip) in peers {
        if peer == me || ip.is_ipv4() != my_ip.is_ipv4() {
            continue;
        }
        let options: BTreeMap<String, String> = [
            ("key", "flow".to_owned()),
            ("local_ip", my_ip.to_string()),
            ("remote_ip", ip.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        want.insert(peer, (tunnel_name(*ip), options));
    }
    let mut have: BTreeSet<&str> = BTreeSet::new();
    for port in &bridge.ports {
        let Some(iface) = port
            .interfaces
            .iter()
            .find(|i| i.external_ids.contains_key(PEER_KEY))
        else {
            continue;
        };
        let peer = iface
            .external_ids
            .get(PEER_KEY)
            .map(String::as_str)
            .unwrap_or("");
        let keep = match want.get(peer) {
            Some((name, options)) => {
                iface.name == *name
                    && iface.kind == config.tunnel_type.as_str()
                    && iface.options == *options
                    && !have.contains(peer)
            }
            None => keep_unknown && !peers.contains_key(peer),
        };
        if keep {
            have.insert(peer);
        } else {
            out.push(ops::set_delete(
                "Bridge",
                &bridge.uuid,
                "ports",
                vec![datum::uuid_ref(&port.uuid)],
            ));
        }
    }
    for (i, (peer, (name, options))) in want.iter().enumerate() {
        if have.contains(peer) {
            continue;
        }
        let (iface, port) = (format!("ti{i}"), format!("tp{i}"));
        let ids = datum::map_of([(PEER_KEY, *peer)]);
        out.push(ops::insert(
            "Interface",
            json!({
                "name": name,
                "type": config.tunnel_type.as_str(),
                "options": datum::map_of(options.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
                "external_ids": ids.clone(),
            }),
            &iface,
        ));
        out.push(ops::insert(
            "Port",
            json!({"name": name, "interfaces": datum::named_ref(&iface), "external_ids": ids}),
            &port,
        ));
        out.push(ops::set_insert(
            "Bridge",
            &bridge.uuid,
            "ports",
            vec![datum::named_ref(&port)],
        ));
    }
    out
}

/// Controller, fail mode and protocols of an existing bridge.
fn bridge_settings(bridge: &BridgeView, controller: Option<&str>) -> Vec<Value> {
    let mut row = serde_json::Map::new();
    let mut out = Vec::new();
    if bridge.fail_mode.as_deref() != Some("secure") {
        row.insert("fail_mode".into(), json!("secure"));
    }
    if !bridge.protocols.iter().any(|p| p == "OpenFlow13") {
        let mut protocols: Vec<Value> = bridge.protocols.iter().map(|p| json!(p)).collect();
        protocols.push(json!("OpenFlow13"));
        row.insert("protocols".into(), datum::set_of(protocols));
    }
    if let Some(target) = controller {
        let targets: Vec<&str> = bridge
            .controllers
            .iter()
            .map(|c| c.target.as_str())
            .collect();
        if targets != [target] {
            out.push(ops::insert("Controller", json!({"target": target}), "ctl"));
            row.insert("controller".into(), datum::named_ref("ctl"));
        }
    }
    if !row.is_empty() {
        out.push(ops::update("Bridge", &bridge.uuid, Value::Object(row)));
    }
    out
}

/// Creates the integration bridge, with the datapath type the host's other
/// bridges use (so a userspace-datapath host gets a userspace bridge).
fn create_bridge(
    view: &HostView,
    controller: Option<&str>,
    config: &ProvisionConfig,
) -> Vec<Value> {
    let Some(root) = &view.root_uuid else {
        return Vec::new();
    };
    let types: BTreeSet<&str> = view
        .bridges
        .iter()
        .map(|b| b.datapath_type.as_str())
        .collect();
    let datapath_type = match types.into_iter().collect::<Vec<_>>()[..] {
        [only] => only.to_owned(),
        _ => String::new(),
    };
    let name = config.bridge.as_str();
    let mut bridge = json!({
        "name": name,
        "datapath_type": datapath_type,
        "fail_mode": "secure",
        "protocols": "OpenFlow13",
        "ports": datum::named_ref("lp"),
        "other_config": datum::map_of([("disable-in-band", "true")]),
    });
    let mut out = vec![
        ops::insert("Interface", json!({"name": name, "type": "internal"}), "li"),
        ops::insert(
            "Port",
            json!({"name": name, "interfaces": datum::named_ref("li")}),
            "lp",
        ),
    ];
    if let Some(target) = controller {
        out.push(ops::insert("Controller", json!({"target": target}), "ctl"));
        bridge["controller"] = datum::named_ref("ctl");
    }
    out.push(ops::insert("Bridge", bridge, "br"));
    out.push(ops::set_insert(
        "Open_vSwitch",
        root,
        "bridges",
        vec![datum::named_ref("br")],
    ));
    info!(bridge = name, datapath_type = %datapath_type, "creating the integration bridge");
    out
}

#[cfg(test)]
mod tests;
