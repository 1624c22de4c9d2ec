//! The load balancer as a runtime module: it owns the configuration (the
//! one copy; the service and REST read it here), what it resolved about
//! members (MAC, location), their health and leastconn weights, and the
//! `lb` table and VIP groups of every connected switch.
//!
//! Scopes: one per VIP (its entries and its group) and one for the shared
//! entries; a change recompiles everything (cheap) and re-declares only the
//! scopes whose plan changed, so the switches get only differences and a
//! VIP's group is changed in place (MODIFY).
//!
//! Restart: what decides the entries — resolved MACs, tenant VNIs, health —
//! is persisted (off the core, as effects) and loaded at start, leastconn
//! weights and affinity entries are taken back from the switch, so a
//! restarted controller declares exactly what the switches hold and sends
//! nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use flowgate_controller::cookie::Owner;
use flowgate_controller::events::{BusEvent, Level};
use flowgate_controller::module::{Ctx, Event, Followed, Module, Scope, StoreSync};
use flowgate_controller::neighbor::nd;
use flowgate_controller::runtime::tasks::{Task, TaskCtx};
use flowgate_controller::store::Op;
use flowgate_controller::tenants::TenantNetworks;
use flowgate_controller::topology::{PortRole, TopologyView};
use flowgate_openflow::{
    port_no, Action, FlowRemoved, FlowStats, GroupDesc, MacAddr, PacketIn, PacketOut, NO_BUFFER,
};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::compile::{self, compile_shared, compile_vip, Kind, PlannedMember, PlannedVip, Shared};
use crate::health::{Check, CheckKind, Health, Out, ProbePacket, Prober, Target, TargetKey};
use crate::leastconn;
use crate::model::{
    source_for, AdminState, Config, Context, Invalid, Member, MemberKey, Method, Monitor,
    MonitorType, Pool, Protocol, Vip,
};
use crate::persist;
use crate::probe;

/// The shared entries' scope.
const SHARED: Scope = Scope::new("shared", 0);

fn vip_scope(index: u32) -> Scope {
    Scope::new("vip", u64::from(index))
}

/// How often the clock task ticks the module.
pub const TICK: Duration = Duration::from_millis(250);

/// The module's settings (`[loadbalancer]` in the configuration file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The MAC VIPs and probe sources answer ARP/ND with.
    pub virtual_mac: MacAddr,
    /// Default probe source for IPv4 / IPv6 members.
    pub monitor_source_v4: Option<IpAddr>,
    pub monitor_source_v6: Option<IpAddr>,
    /// How often leastconn weights are recomputed.
    pub leastconn_interval: Duration,
    /// How often a member nobody has located is asked for (ARP).
    pub resolve_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            virtual_mac: MacAddr([0x02, 0xf0, 0x05, 0, 0, 0x01]),
            monitor_source_v4: None,
            monitor_source_v6: None,
            leastconn_interval: Duration::from_secs(2),
            resolve_interval: Duration::from_secs(2),
        }
    }
}

/// The clock task's message.
#[derive(Debug, Clone, Copy)]
pub struct ClockTick;

/// Per-member connection counters of a leastconn VIP, summed over the
/// switches (the sampler task's message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeastconnSample {
    pub index: u32,
    /// Connections accepted and closed so far, per member.
    pub counts: BTreeMap<MemberKey, (u64, u64)>,
}

/// A change of the configuration.
#[derive(Debug, Clone)]
pub enum LbOp {
    PutVip(Vip),
    DeleteVip(String),
    PutPool(Pool),
    DeletePool(String),
    PutMonitor(Monitor),
    DeleteMonitor(String),
}

/// A member and its MAC, once resolved.
pub type ResolvedMember = (MemberKey, Option<MacAddr>);

/// Where a member is: scope (tenant network id or plain) and address.
pub type MemberAt = (Option<String>, IpAddr);

/// A health state as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredHealth {
    pub health: Health,
    /// Seconds since the epoch.
    pub since: u64,
}

/// What the module loads from the store at start.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub config: Config,
    pub macs: BTreeMap<MemberAt, MacAddr>,
    pub vnis: BTreeMap<String, u32>,
    pub health: HashMap<TargetKey, (Health, SystemTime)>,
}

/// A client pinned to a member (session affinity), and the switches
/// holding the pin entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pin {
    member: MemberKey,
    at: BTreeSet<u64>,
}

/// The load balancer module (see the crate docs).
#[derive(Debug)]
pub struct LoadBalancer {
    settings: Settings,
    config: Config,
    topology: Option<Arc<TopologyView>>,
    tenants: Option<Arc<TenantNetworks>>,
    /// Resolved member MACs (persisted).
    macs: BTreeMap<MemberAt, MacAddr>,
    /// Tenant network VNIs as last known (persisted).
    vnis: BTreeMap<String, u32>,
    prober: Prober,
    restored: HashMap<TargetKey, (Health, SystemTime)>,
    /// Leastconn bucket weights by VIP index.
    weights: HashMap<u32, BTreeMap<MemberKey, u16>>,
    /// Session affinity: (VIP index, client) → member.
    pins: HashMap<(u32, IpAddr), Pin>,
    switches: BTreeSet<u64>,
    /// What was declared last, by VIP index, and the shared entries.
    plans: BTreeMap<u32, PlannedVip>,
    shared: Shared,
    last_resolve: Option<Instant>,
}

impl LoadBalancer {
    pub fn new(settings: Settings, loaded: Loaded) -> Self {
        LoadBalancer {
            settings,
            config: loaded.config,
            topology: None,
            tenants: None,
            macs: loaded.macs,
            vnis: loaded.vnis,
            prober: Prober::default(),
            restored: loaded.health,
            weights: HashMap::new(),
            pins: HashMap::new(),
            switches: BTreeSet::new(),
            plans: BTreeMap::new(),
            shared: Shared::default(),
            last_resolve: None,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn prober(&self) -> &Prober {
        &self.prober
    }

    /// The validation context: what topology and the overlay told us.
    pub fn context(&self) -> Context<'_> {
        Context {
            topology: self.topology.as_deref(),
            tenants: self.tenants.as_deref(),
            monitor_source_v4: self.settings.monitor_source_v4,
            monitor_source_v6: self.settings.monitor_source_v6,
        }
    }

    /// The plan of VIP `index` as last declared.
    pub fn plan(&self, index: u32) -> Option<&PlannedVip> {
        self.plans.get(&index)
    }

    /// The health of a pool member: its monitor's view, `None` without one.
    pub fn health(&self, pool: &str, member: MemberKey) -> Option<&crate::health::Status> {
        self.prober.status(&TargetKey {
            pool: pool.to_owned(),
            member,
        })
    }

    /// The MAC a member resolved to, if it did.
    pub fn mac_of(&self, network: Option<&str>, ip: IpAddr) -> Option<MacAddr> {
        self.live_mac(network, ip)
            .or_else(|| self.macs.get(&(network.map(str::to_owned), ip)).copied())
    }

    fn live_mac(&self, network: Option<&str>, ip: IpAddr) -> Option<MacAddr> {
        match network {
            None => self.topology.as_ref()?.host_by_ip(ip).map(|h| h.mac),
            Some(n) => self.tenants.as_ref()?.network(n)?.port_with_ip(ip)?.mac,
        }
    }

    /// Where a member is: switch and port, for probes and resolution.
    fn location(&self, network: Option<&str>, ip: IpAddr) -> Option<(u64, u32)> {
        match network {
            None => {
                let host = self.topology.as_ref()?.host_by_ip(ip)?;
                Some((host.at.dpid, host.at.port))
            }
            Some(n) => {
                let port = self.tenants.as_ref()?.network(n)?.port_with_ip(ip)?;
                Some((port.dpid?, port.port_no?))
            }
        }
    }

    fn vni(&self, network: &str) -> Option<u32> {
        self.tenants
            .as_ref()
            .and_then(|t| t.network(network))
            .map(|n| n.vni)
            .or_else(|| self.vnis.get(network).copied())
    }

    // --- configuration changes -------------------------------------------

    /// Whether `op` may be applied to the current configuration; returns
    /// it completed (a new VIP's index, a monitor's defaults).
    pub fn check(&self, op: LbOp) -> Result<LbOp, Invalid> {
        let cx = self.context();
        match op {
            LbOp::PutVip(mut vip) => {
                vip.index = match self.config.vips.get(&vip.id) {
                    Some(old) => old.index,
                    None => self
                        .config
                        .free_index()
                        .ok_or_else(|| Invalid::conflict("id", "no VIP index left"))?,
                };
                if vip.method == Method::Leastconn && vip.protocol != Protocol::Tcp {
                    return Err(Invalid::bad(
                        "method",
                        "leastconn counts TCP connections; use hash or weighted for udp",
                    ));
                }
                self.config.check_vip(&vip, &cx)?;
                Ok(LbOp::PutVip(vip))
            }
            LbOp::DeleteVip(id) => {
                if !self.config.vips.contains_key(&id) {
                    return Err(Invalid::missing("id", format!("no VIP {id:?}")));
                }
                Ok(LbOp::DeleteVip(id))
            }
            LbOp::PutPool(pool) => {
                self.config.check_pool(&pool, &cx)?;
                if let Some(monitor) = self.config.monitor_of_pool(&pool.id) {
                    let mut next = self.config.clone();
                    next.pools.insert(pool.id.clone(), pool.clone());
                    next.check_monitor(monitor, &cx).map_err(|e| match e {
                        Invalid::Bad { reason, .. } => Invalid::bad(
                            "members",
                            format!("monitor {:?} cannot probe them: {reason}", monitor.id),
                        ),
                        other => other,
                    })?;
                }
                Ok(LbOp::PutPool(pool))
            }
            LbOp::DeletePool(id) => {
                if !self.config.pools.contains_key(&id) {
                    return Err(Invalid::missing("id", format!("no pool {id:?}")));
                }
                if let Some(vip) = self.config.vips_of_pool(&id).next() {
                    return Err(Invalid::conflict(
                        "id",
                        format!("VIP {:?} uses pool {id:?}", vip.id),
                    ));
                }
                if let Some(monitor) = self.config.monitor_of_pool(&id) {
                    return Err(Invalid::conflict(
                        "id",
                        format!(
                            "monitor {:?} checks pool {id:?}; delete it first",
                            monitor.id
                        ),
                    ));
                }
                Ok(LbOp::DeletePool(id))
            }
            LbOp::PutMonitor(monitor) => {
                let monitor = monitor.normalized();
                self.config.check_monitor(&monitor, &cx)?;
                Ok(LbOp::PutMonitor(monitor))
            }
            LbOp::DeleteMonitor(id) => {
                if !self.config.monitors.contains_key(&id) {
                    return Err(Invalid::missing("id", format!("no monitor {id:?}")));
                }
                Ok(LbOp::DeleteMonitor(id))
            }
        }
    }

    /// Validates, applies, persists and declares `op`; the staged write
    /// undoes itself with the inverse operation.
    pub fn stage(
        &mut self,
        op: LbOp,
        ctx: &mut Ctx,
    ) -> Result<flowgate_controller::service::Staged<LoadBalancer, LbOp>, Invalid> {
        let op = self.check(op)?;
        let applied = op.clone();
        let undo = self.apply(op, ctx);
        Ok(flowgate_controller::service::Staged::new(
            applied,
            move |lb: &mut LoadBalancer, ctx| {
                lb.apply(undo, ctx);
            },
        ))
    }

    /// Applies a checked `op`; returns the operation that undoes it.
    fn apply(&mut self, op: LbOp, ctx: &mut Ctx) -> LbOp {
        let undo = match op {
            LbOp::PutVip(vip) => {
                persist::put(ctx, persist::vip_key(&vip.id), &vip);
                if let Some(network) = &vip.network {
                    if let Some(vni) = self.vni(network) {
                        if self.vnis.get(network) != Some(&vni) {
                            self.vnis.insert(network.clone(), vni);
                            persist::put(ctx, persist::vni_key(network), &vni);
                        }
                    }
                }
                let id = vip.id.clone();
                match self.config.vips.insert(id.clone(), vip) {
                    Some(old) => LbOp::PutVip(old),
                    None => LbOp::DeleteVip(id),
                }
            }
            LbOp::DeleteVip(id) => {
                ctx.persist(vec![Op::delete(persist::vip_key(&id))]);
                let old = self.config.vips.remove(&id);
                if let Some(old) = &old {
                    self.weights.remove(&old.index);
                }
                match old {
                    Some(old) => LbOp::PutVip(old),
                    None => LbOp::DeleteVip(id),
                }
            }
            LbOp::PutPool(pool) => {
                persist::put(ctx, persist::pool_key(&pool.id), &pool);
                let id = pool.id.clone();
                match self.config.pools.insert(id.clone(), pool) {
                    Some(old) => LbOp::PutPool(old),
                    None => LbOp::DeletePool(id),
                }
            }
            LbOp::DeletePool(id) => {
                ctx.persist(vec![Op::delete(persist::pool_key(&id))]);
                match self.config.pools.remove(&id) {
                    Some(old) => LbOp::PutPool(old),
                    None => LbOp::DeletePool(id),
                }
            }
            LbOp::PutMonitor(monitor) => {
                persist::put(ctx, persist::monitor_key(&monitor.id), &monitor);
                let id = monitor.id.clone();
                match self.config.monitors.insert(id.clone(), monitor) {
                    Some(old) => LbOp::PutMonitor(old),
                    None => LbOp::DeleteMonitor(id),
                }
            }
            LbOp::DeleteMonitor(id) => {
                ctx.persist(vec![Op::delete(persist::monitor_key(&id))]);
                match self.config.monitors.remove(&id) {
                    Some(old) => LbOp::PutMonitor(old),
                    None => LbOp::DeleteMonitor(id),
                }
            }
        };
        self.sync(ctx);
        undo
    }

    // --- planning and declaring -------------------------------------------

    /// The probe targets the monitors ask for.
    fn targets(&self) -> Vec<Target> {
        let cx = self.context();
        let mut out = Vec::new();
        for monitor in self.config.monitors.values() {
            let Some(pool) = self.config.pools.get(&monitor.pool) else {
                continue;
            };
            for member in &pool.members {
                let Some(source) = source_for(monitor, member.address, &cx) else {
                    continue;
                };
                let port = monitor.port.unwrap_or(member.port);
                let kind = match monitor.kind {
                    MonitorType::Tcp => CheckKind::Tcp { port },
                    MonitorType::Http => CheckKind::Http {
                        port,
                        path: monitor.http_path.clone().unwrap_or_else(|| "/".into()),
                        expected: monitor.expected_status.unwrap_or(200),
                    },
                    MonitorType::Icmp => CheckKind::Icmp,
                };
                out.push(Target {
                    key: TargetKey {
                        pool: pool.id.clone(),
                        member: member.key(),
                    },
                    source,
                    check: Check {
                        kind,
                        interval: Duration::from_secs_f64(monitor.interval),
                        timeout: Duration::from_secs_f64(monitor.timeout),
                        rise: monitor.rise,
                        fall: monitor.fall,
                    },
                });
            }
        }
        out
    }

    /// The VIP as it compiles now; `None` while its tenant network's VNI
    /// is unknown.
    fn plan_vip(&self, vip: &Vip) -> Option<PlannedVip> {
        let vni = match &vip.network {
            Some(n) => Some(self.vni(n)?),
            None => None,
        };
        let pool = self.config.pools.get(&vip.pool);
        let weights = self.weights.get(&vip.index);
        let mut members: Vec<PlannedMember> = pool
            .map(|p| p.members.iter())
            .into_iter()
            .flatten()
            .map(|m| {
                let mac = self.mac_of(vip.network.as_deref(), m.address);
                let health = self.health(&vip.pool, m.key()).map(|s| s.health);
                let weight = match vip.method {
                    Method::Hash => 1,
                    Method::Weighted => m.weight,
                    Method::Leastconn => weights
                        .and_then(|w| w.get(&m.key()))
                        .copied()
                        .unwrap_or(leastconn::FULL),
                };
                PlannedMember {
                    key: m.key(),
                    mac,
                    admin: m.admin_state,
                    in_rotation: m.admin_state == AdminState::Enabled
                        && health != Some(Health::Down)
                        && mac.is_some(),
                    weight,
                }
            })
            .collect();
        members.sort_by_key(|m| m.key);
        Some(PlannedVip {
            index: vip.index,
            address: vip.address,
            protocol: vip.protocol,
            port: vip.port,
            vni,
            affinity: vip.affinity_timeout.is_some(),
            count: vip.method == Method::Leastconn,
            members,
        })
    }

    fn plan_shared(&self) -> Shared {
        let mut shared = Shared::default();
        let cx = self.context();
        for vip in self.config.vips.values() {
            let vni = match &vip.network {
                Some(n) => match self.vni(n) {
                    Some(v) => Some(v),
                    None => continue,
                },
                None => None,
            };
            shared.answered.insert((vni, vip.address));
            if let Some(pool) = self.config.pools.get(&vip.pool) {
                for m in &pool.members {
                    shared.member_sources.insert((vni, vip.protocol, m.key()));
                }
                if let Some(monitor) = self.config.monitor_of_pool(&pool.id) {
                    for m in &pool.members {
                        if let Some(source) = source_for(monitor, m.address, &cx) {
                            shared.answered.insert((vni, source));
                            shared.probe_sources.insert((vni, source));
                        }
                    }
                }
            }
        }
        shared
    }

    /// Recomputes everything and declares what changed on every switch.
    fn sync(&mut self, ctx: &mut Ctx) {
        self.remember(ctx);
        let targets = self.targets();
        self.prober
            .set_targets(targets, ctx.now(), SystemTime::now(), &self.restored);
        let plans: BTreeMap<u32, PlannedVip> = self
            .config
            .vips
            .values()
            .filter_map(|v| self.plan_vip(v).map(|p| (v.index, p)))
            .collect();
        let shared = self.plan_shared();
        self.unpin_stale(&plans, ctx);
        let vmac = self.settings.virtual_mac;
        for &dpid in &self.switches {
            if shared != self.shared {
                ctx.declare_flows(dpid, SHARED, compile_shared(&shared, vmac));
            }
            for (index, plan) in &plans {
                if self.plans.get(index) != Some(plan) {
                    ctx.declare(dpid, vip_scope(*index), compile_vip(plan, vmac));
                }
            }
            for index in self.plans.keys().filter(|i| !plans.contains_key(i)) {
                ctx.declare(dpid, vip_scope(*index), Default::default());
            }
        }
        self.plans = plans;
        self.shared = shared;
    }

    /// Everything a switch should have (it just connected).
    fn declare_switch(&self, dpid: u64, ctx: &mut Ctx) {
        let vmac = self.settings.virtual_mac;
        ctx.declare_flows(dpid, SHARED, compile_shared(&self.shared, vmac));
        for (index, plan) in &self.plans {
            ctx.declare(dpid, vip_scope(*index), compile_vip(plan, vmac));
        }
    }

    // --- events -------------------------------------------------------------

    fn switch_up(
        &mut self,
        dpid: u64,
        installed: &[FlowStats],
        groups: &[GroupDesc],
        ctx: &mut Ctx,
    ) {
        // Leastconn weights as the switch has them (after a restart).
        for vip in self.config.vips.values() {
            if vip.method != Method::Leastconn || self.weights.contains_key(&vip.index) {
                continue;
            }
            let id = compile::group_id(vip.index);
            if let Some(group) = groups.iter().find(|g| g.group_id == id) {
                let weights = leastconn::weights_in(group);
                if !weights.is_empty() {
                    self.weights.insert(vip.index, weights);
                }
            }
        }
        self.switches.remove(&dpid);
        self.sync(ctx);
        self.switches.insert(dpid);
        self.declare_switch(dpid, ctx);
        // Affinity entries stay as they are.
        for flow in installed {
            if compile::kind_of(flow.cookie) == Kind::Affinity as u64 {
                let entry = flowgate_controller::desired::FlowEntry::from_stats(flow);
                if let Some((client, member)) = affinity_pin(flow) {
                    let pin = self
                        .pins
                        .entry((compile::index_of(flow.cookie), client))
                        .or_insert(Pin {
                            member,
                            at: BTreeSet::new(),
                        });
                    pin.at.insert(dpid);
                }
                ctx.install(dpid, entry);
            }
        }
    }

    fn packet_in(&mut self, dpid: u64, packet_in: &PacketIn, ctx: &mut Ctx) {
        let kind = compile::kind_of(packet_in.cookie);
        if kind == Kind::Probe as u64 {
            if let Some(answer) = probe::answer(&packet_in.data) {
                let out = self.prober.on_answer(&answer, SystemTime::now());
                self.handle_outs(out, ctx);
            }
        } else if kind == Kind::Nd as u64 {
            self.neighbor_solicitation(dpid, packet_in, ctx);
        } else if kind == Kind::AffinityMiss as u64 {
            self.affinity_miss(dpid, compile::index_of(packet_in.cookie), packet_in, ctx);
        }
    }

    /// Answers an NS for a VIP or probe source with the virtual MAC.
    fn neighbor_solicitation(&self, dpid: u64, packet_in: &PacketIn, ctx: &mut Ctx) {
        let (Some(in_port), Some(ns)) = (
            packet_in.match_.in_port(),
            nd::Solicitation::parse(&packet_in.data),
        ) else {
            return;
        };
        let answered = self
            .shared
            .answered
            .iter()
            .any(|(_, ip)| *ip == IpAddr::V6(ns.target));
        let Some(na) = answered
            .then(|| nd::advertisement(&ns, self.settings.virtual_mac))
            .flatten()
        else {
            return;
        };
        ctx.packet_out(
            dpid,
            PacketOut {
                buffer_id: NO_BUFFER,
                in_port,
                actions: vec![Action::Output {
                    port: port_no::IN_PORT,
                    max_len: 0,
                }],
                data: bytes::Bytes::from(na),
            },
        );
    }

    /// A new connection to an affinity VIP whose client is not pinned on
    /// this switch: pin it (the member its earlier connections went to, or
    /// a weighted pick), install the pin, and send the packet back through
    /// the pipeline, where the pin now takes it.
    fn affinity_miss(&mut self, dpid: u64, index: u32, packet_in: &PacketIn, ctx: &mut Ctx) {
        let Some(vip) = self.config.vips.values().find(|v| v.index == index) else {
            return;
        };
        let (Some(timeout), Some(plan), Some(in_port)) = (
            vip.affinity_timeout,
            self.plans.get(&index),
            packet_in.match_.in_port(),
        ) else {
            return;
        };
        let Some(client) = client_of(&packet_in.data) else {
            return;
        };
        let eligible: Vec<&PlannedMember> = plan.members.iter().filter(|m| m.in_rotation).collect();
        let pinned = self
            .pins
            .get(&(index, client))
            .and_then(|p| eligible.iter().find(|m| m.key == p.member).copied());
        let Some(member) = pinned.or_else(|| leastconn::pick(&eligible, client)) else {
            return;
        };
        let Some(mac) = member.mac else {
            return;
        };
        let key = member.key;
        let entry = compile::affinity_entry(plan, client, key, mac, timeout);
        let pin = self.pins.entry((index, client)).or_insert(Pin {
            member: key,
            at: BTreeSet::new(),
        });
        pin.member = key;
        pin.at.insert(dpid);
        ctx.install(dpid, entry);
        ctx.packet_out(
            dpid,
            PacketOut {
                buffer_id: NO_BUFFER,
                in_port,
                actions: vec![Action::Output {
                    port: port_no::TABLE,
                    max_len: 0,
                }],
                data: packet_in.data.clone(),
            },
        );
    }

    fn flow_removed(&mut self, dpid: u64, removed: &FlowRemoved) {
        if compile::kind_of(removed.cookie) != Kind::Affinity as u64 {
            return;
        }
        let Some(client) = affinity_client(&removed.match_) else {
            return;
        };
        let key = (compile::index_of(removed.cookie), client);
        if let Some(pin) = self.pins.get_mut(&key) {
            pin.at.remove(&dpid);
            if pin.at.is_empty() {
                self.pins.remove(&key);
            }
        }
    }

    /// Withdraws pins that no longer hold: their VIP is gone or changed,
    /// or their member left the rotation (its clients pin again on their
    /// next connection).
    fn unpin_stale(&mut self, plans: &BTreeMap<u32, PlannedVip>, ctx: &mut Ctx) {
        let stale: Vec<(u32, IpAddr)> = self
            .pins
            .iter()
            .filter(|((index, _), pin)| {
                let (Some(old), Some(new)) = (self.plans.get(index), plans.get(index)) else {
                    return true;
                };
                let same_vip = (old.address, old.protocol, old.port, old.vni, old.affinity)
                    == (new.address, new.protocol, new.port, new.vni, new.affinity);
                !same_vip
                    || !new
                        .members
                        .iter()
                        .any(|m| m.key == pin.member && m.in_rotation)
            })
            .map(|(k, _)| *k)
            .collect();
        for (index, client) in stale {
            let Some(pin) = self.pins.remove(&(index, client)) else {
                continue;
            };
            let Some(old) = self.plans.get(&index) else {
                continue;
            };
            let key = compile::affinity_key(old, client);
            for dpid in pin.at {
                ctx.remove(dpid, key.clone());
            }
        }
    }

    /// Stores MACs and VNIs learned live that differ from what is stored,
    /// so a restarted controller compiles the same entries at once.
    fn remember(&mut self, ctx: &mut Ctx) {
        let mut ops = Vec::new();
        let mut wanted: BTreeSet<MemberAt> = BTreeSet::new();
        for vip in self.config.vips.values() {
            if let Some(pool) = self.config.pools.get(&vip.pool) {
                for m in &pool.members {
                    wanted.insert((vip.network.clone(), m.address));
                }
            }
            if let Some(network) = &vip.network {
                let live = self
                    .tenants
                    .as_ref()
                    .and_then(|t| t.network(network))
                    .map(|n| n.vni);
                if let Some(vni) = live.filter(|v| self.vnis.get(network) != Some(v)) {
                    self.vnis.insert(network.clone(), vni);
                    if let Ok(op) = Op::put_json(persist::vni_key(network), &vni) {
                        ops.push(op);
                    }
                }
            }
        }
        for at in wanted {
            let Some(mac) = self.live_mac(at.0.as_deref(), at.1) else {
                continue;
            };
            if self.macs.get(&at) != Some(&mac) {
                info!(network = ?at.0, ip = %at.1, %mac, "load balancer member resolved");
                if let Ok(op) =
                    Op::put_json(persist::mac_key(at.0.as_deref(), at.1), &mac.to_string())
                {
                    ops.push(op);
                }
                self.macs.insert(at, mac);
            }
        }
        ctx.persist(ops);
    }

    fn tick(&mut self, ctx: &mut Ctx) {
        let out = self.prober.poll(ctx.now(), SystemTime::now());
        self.handle_outs(out, ctx);
        let due = self.last_resolve.is_none_or(|t| {
            ctx.now().saturating_duration_since(t) >= self.settings.resolve_interval
        });
        if due {
            self.last_resolve = Some(ctx.now());
            self.resolve_silent(ctx);
        }
    }

    /// Sends probes and acts on health transitions.
    fn handle_outs(&mut self, outs: Vec<Out>, ctx: &mut Ctx) {
        let mut changed = false;
        for out in outs {
            match out {
                Out::Send { key, packet } => {
                    if !self.send_probe(&key, &packet, ctx) {
                        self.prober.abandon(&key);
                    }
                }
                Out::Changed {
                    key,
                    from,
                    to,
                    reason,
                } => {
                    changed = true;
                    let level = if to == Health::Down {
                        warn!(pool = %key.pool, member = %key.member, ?from, ?to, ?reason, "load balancer member health changed");
                        Level::Warn
                    } else {
                        info!(pool = %key.pool, member = %key.member, ?from, ?to, ?reason, "load balancer member health changed");
                        Level::Info
                    };
                    let since = SystemTime::now();
                    self.restored.insert(key.clone(), (to, since));
                    persist::put(
                        ctx,
                        persist::health_key(&key.pool, key.member),
                        &StoredHealth {
                            health: to,
                            since: since
                                .duration_since(SystemTime::UNIX_EPOCH)
                                .map_or(0, |d| d.as_secs()),
                        },
                    );
                    ctx.emit(BusEvent::Module {
                        module: Owner::LoadBalancer.name().into(),
                        kind: "health".into(),
                        level,
                        message: format!(
                            "pool {} member {} is {} ({reason})",
                            key.pool,
                            key.member,
                            match to {
                                Health::Up => "up",
                                Health::Down => "down",
                                Health::Unknown => "unknown",
                            }
                        ),
                        detail: serde_json::json!({
                            "pool": key.pool,
                            "member": key.member.to_string(),
                            "from": from,
                            "to": to,
                            "reason": reason,
                        }),
                    });
                }
            }
        }
        if changed {
            self.sync(ctx);
        }
    }

    /// The tenant network a pool's members live in (that of its VIPs).
    fn pool_network(&self, pool: &str) -> Option<String> {
        self.config
            .vips_of_pool(pool)
            .find_map(|v| v.network.clone())
    }

    /// Sends a probe toward its member; false when the member is not
    /// located (yet), so nothing could be sent.
    fn send_probe(&self, key: &TargetKey, packet: &ProbePacket, ctx: &mut Ctx) -> bool {
        let network = self.pool_network(&key.pool);
        let ip = key.member.address;
        let (Some(mac), Some((dpid, port))) = (
            self.mac_of(network.as_deref(), ip),
            self.location(network.as_deref(), ip),
        ) else {
            return false;
        };
        let Some(frame) = probe::frame(packet, self.settings.virtual_mac, mac) else {
            return false;
        };
        ctx.packet_out(dpid, out_of(port, frame));
        true
    }

    /// Asks for members nobody has located yet: an ARP request from the
    /// load balancer (a probe source or the VIP) out of every edge port, or
    /// out of the tenant port the member is bound to.
    fn resolve_silent(&self, ctx: &mut Ctx) {
        let cx = self.context();
        let mut asked: BTreeSet<MemberAt> = BTreeSet::new();
        for vip in self.config.vips.values() {
            let Some(pool) = self.config.pools.get(&vip.pool) else {
                continue;
            };
            let monitor = self.config.monitor_of_pool(&pool.id);
            for m in &pool.members {
                let at = (vip.network.clone(), m.address);
                let IpAddr::V4(target) = m.address else {
                    continue;
                };
                if self.live_mac(at.0.as_deref(), m.address).is_some() || !asked.insert(at) {
                    continue;
                }
                let sender = monitor
                    .and_then(|mon| source_for(mon, m.address, &cx))
                    .or(Some(vip.address));
                let Some(IpAddr::V4(sender)) = sender else {
                    continue;
                };
                let frame = probe::arp_request(self.settings.virtual_mac, sender, target);
                match &vip.network {
                    None => self.flood_edges(&frame, ctx),
                    Some(n) => {
                        let port = self
                            .tenants
                            .as_ref()
                            .and_then(|t| t.network(n))
                            .and_then(|net| net.port_with_ip(m.address));
                        if let Some((Some(dpid), Some(no))) = port.map(|p| (p.dpid, p.port_no)) {
                            ctx.packet_out(dpid, out_of(no, frame));
                        }
                    }
                }
            }
        }
    }

    fn flood_edges(&self, frame: &bytes::Bytes, ctx: &mut Ctx) {
        let Some(view) = &self.topology else {
            return;
        };
        for &dpid in &self.switches {
            if !view.is_ready(dpid) {
                continue;
            }
            let ports = view.ports_with_role(dpid, PortRole::Edge);
            if ports.is_empty() {
                continue;
            }
            ctx.packet_out(
                dpid,
                PacketOut {
                    buffer_id: NO_BUFFER,
                    in_port: port_no::CONTROLLER,
                    actions: ports
                        .into_iter()
                        .map(|port| Action::Output { port, max_len: 0 })
                        .collect(),
                    data: frame.clone(),
                },
            );
        }
    }

    fn leastconn_sample(&mut self, sample: &LeastconnSample, ctx: &mut Ctx) {
        let Some(vip) = self.config.vips.values().find(|v| v.index == sample.index) else {
            return;
        };
        if vip.method != Method::Leastconn {
            return;
        }
        let weights = leastconn::weights(&sample.counts);
        if self.weights.get(&sample.index) != Some(&weights) {
            self.weights.insert(sample.index, weights);
            self.sync(ctx);
        }
    }

    /// Leastconn VIPs: (index, pool members with their MACs) for the
    /// sampler task.
    pub fn leastconn_vips(&self) -> Vec<(u32, Vec<ResolvedMember>)> {
        self.config
            .vips
            .values()
            .filter(|v| v.method == Method::Leastconn)
            .filter_map(|v| {
                let pool = self.config.pools.get(&v.pool)?;
                Some((
                    v.index,
                    pool.members
                        .iter()
                        .map(|m| (m.key(), self.mac_of(v.network.as_deref(), m.address)))
                        .collect(),
                ))
            })
            .collect()
    }

    /// The connected switches.
    pub fn switches(&self) -> &BTreeSet<u64> {
        &self.switches
    }

    /// A member's configured weight and admin state (for the service).
    pub fn member(&self, pool: &str, key: MemberKey) -> Option<&Member> {
        self.config.pools.get(pool)?.member(key)
    }

    /// Live leastconn weights of VIP `index` (for REST).
    pub fn leastconn_weights(&self, index: u32) -> Option<&BTreeMap<MemberKey, u16>> {
        self.weights.get(&index)
    }
}

/// A packet-out of `frame` through `port`.
fn out_of(port: u32, frame: bytes::Bytes) -> PacketOut {
    PacketOut {
        buffer_id: NO_BUFFER,
        in_port: port_no::CONTROLLER,
        actions: vec![Action::Output { port, max_len: 0 }],
        data: frame,
    }
}

/// The source address of an IP frame.
fn client_of(frame: &[u8]) -> Option<IpAddr> {
    let packet = etherparse::SlicedPacket::from_ethernet(frame).ok()?;
    match packet.net? {
        etherparse::NetSlice::Ipv4(ip) => Some(IpAddr::V4(ip.header().source_addr())),
        etherparse::NetSlice::Ipv6(ip) => Some(IpAddr::V6(ip.header().source_addr())),
    }
}

/// The client an affinity entry pins.
fn affinity_client(m: &flowgate_openflow::Match) -> Option<IpAddr> {
    m.fields.iter().find_map(|f| match f {
        flowgate_openflow::Oxm::Ipv4Src(a, None) => Some(IpAddr::V4(*a)),
        flowgate_openflow::Oxm::Ipv6Src(a, None) => Some(IpAddr::V6(*a)),
        _ => None,
    })
}

/// (client, member) of an affinity entry, from its match and actions.
fn affinity_pin(flow: &FlowStats) -> Option<(IpAddr, MemberKey)> {
    use flowgate_openflow::Instruction;
    let client = affinity_client(&flow.match_)?;
    let member = flow
        .instructions
        .iter()
        .find_map(|i| match i {
            Instruction::ApplyActions(actions) => actions.iter().find_map(leastconn::nat_target),
            _ => None,
        })
        .unwrap_or(MemberKey {
            address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 0,
        });
    Some((client, member))
}

impl Module for LoadBalancer {
    fn owner(&self) -> Owner {
        Owner::LoadBalancer
    }

    fn handle(&mut self, event: &Event<'_>, ctx: &mut Ctx) {
        match event {
            Event::SwitchUp {
                dpid,
                installed,
                groups,
                ..
            } => self.switch_up(*dpid, installed, groups, ctx),
            Event::SwitchDown { dpid } => {
                self.switches.remove(dpid);
            }
            Event::PacketIn { dpid, packet_in } => self.packet_in(*dpid, packet_in, ctx),
            Event::FlowRemoved { dpid, removed } => self.flow_removed(*dpid, removed),
            Event::Notice { from, payload } => {
                if *from == Owner::Topology {
                    if let Some(view) = payload.downcast_ref::<Arc<TopologyView>>() {
                        self.topology = Some(view.clone());
                        self.sync(ctx);
                    }
                } else if let Some(tenants) = payload.downcast_ref::<Arc<TenantNetworks>>() {
                    self.tenants = Some(tenants.clone());
                    self.sync(ctx);
                }
            }
            Event::Task { payload } => {
                if payload.downcast_ref::<ClockTick>().is_some() {
                    self.tick(ctx);
                } else if let Some(sample) = payload.downcast_ref::<LeastconnSample>() {
                    self.leastconn_sample(sample, ctx);
                }
            }
            Event::PortStatus { .. } | Event::Rejected { .. } | Event::Tick | Event::Bus { .. } => {
            }
        }
    }

    /// The configuration; learned MACs, VNIs and health are this node's.
    fn followed_prefixes(&self) -> Vec<&'static str> {
        follow::FOLLOWED.to_vec()
    }

    fn follow_store(&mut self, sync: &StoreSync, ctx: &mut Ctx) -> Followed {
        self.follow(sync, ctx)
    }

    fn tasks(&mut self) -> Vec<Task> {
        let interval = self.settings.leastconn_interval;
        vec![
            Task::new("lb-clock", |mut ctx: TaskCtx| async move {
                let mut clock = tokio::time::interval(TICK);
                clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = clock.tick() => {}
                        _ = ctx.stopped() => return,
                    }
                    if !ctx.send(ClockTick).await {
                        return;
                    }
                }
            }),
            Task::new("lb-leastconn", move |ctx: TaskCtx| {
                leastconn::sampler(ctx, interval)
            }),
        ]
    }
}

mod follow;

/// Whether an action is a `ct`.
#[cfg(test)]
fn is_ct(action: &Action) -> bool {
    use flowgate_openflow::NxAction;
    matches!(NxAction::from_action(action), Some(NxAction::Ct(_)))
}

#[cfg(test)]
mod tests;
