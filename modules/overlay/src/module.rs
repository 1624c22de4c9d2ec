//! The overlay module: owns the [`World`] (configuration included: the one
//! copy the service and REST read), recompiles what a change concerns and
//! declares it, one scope per network and switch plus the switch's own
//! entries. Learned addresses are persisted as effects (off the core).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowgate_controller::cookie::Owner;
use flowgate_controller::module::{Adoption, Ctx, Event, Followed, Module, Scope, StoreSync};
use flowgate_controller::pipeline::metadata;
use flowgate_controller::runtime::tasks::Task;
use flowgate_controller::store::{Op, Store, StoreExt};
use flowgate_controller::tenants::TenantNetworks;
use flowgate_controller::topology::TopologyView;
use flowgate_openflow::{FlowStats, MacAddr, Oxm, PacketIn, PacketOut, Port as OfPort, PortReason};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::compile::{self, compile, Kind, Networks};
use crate::fabric::Fabric;
use crate::model::{Config, Network, Port};
use crate::nd;
use crate::provision::{ChassisList, Provisioning};
use crate::world::{key, Chassis, Learned, PortKey, World};

/// Most addresses learned per port (a VM spraying sources cannot grow
/// the ARP responder without bound).
const MAX_LEARNED_IPS: usize = 8;
/// How long the flows found on a (re)connecting switch are kept as they
/// are while the host it belongs to is not known again (OVSDB reconnects
/// after a controller restart).
pub const ADOPT_GRACE: Duration = Duration::from_secs(60);
/// Store prefix of learned addresses: `overlay/learned/<network>/<port>`.
pub const LEARNED_PREFIX: &str = "overlay/learned/";

/// A learned MAC/IP set as stored, so a restarted controller compiles the
/// same flows it had before instead of learning again.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LearnedRecord {
    mac: Option<String>,
    ips: Vec<IpAddr>,
}

/// The store key of a port's learned addresses.
pub fn learned_key(network: &str, port: &str) -> String {
    format!("{LEARNED_PREFIX}{network}/{port}")
}

/// The scope of a network's flows on a switch; VNI 0 is the switch's own.
fn network_scope(vni: u32) -> Scope {
    Scope::new("network", u64::from(vni))
}

/// The overlay module (see the crate docs).
#[derive(Debug, Default)]
pub struct Overlay {
    world: World,
    /// The networks (VNIs, 0 for the switch's own flows) declared on each
    /// connected switch, so a network that leaves a switch is withdrawn.
    declared: HashMap<u64, BTreeSet<u32>>,
    /// Switches that came up with overlay flows before their host was
    /// known: those flows stay untouched (adopted) until it is, or for
    /// [`ADOPT_GRACE`].
    adopted: HashMap<u64, Adopted>,
    /// Switches whose adopted flows are not settled yet.
    unsettled: BTreeSet<u64>,
    /// The fabric as last compiled.
    fabric: Fabric,
    /// The tenant networks as last published to other modules.
    published: Option<Arc<TenantNetworks>>,
    /// The OVSDB side, until the runtime starts it as a task.
    provisioning: Option<Provisioning>,
}

#[derive(Debug)]
struct Adopted {
    since: Instant,
    installed: Vec<FlowStats>,
}

impl Overlay {
    /// A module starting from stored configuration.
    pub fn new(config: Config) -> Self {
        Overlay {
            world: World {
                config,
                ..Default::default()
            },
            ..Overlay::default()
        }
    }

    /// A module starting from stored configuration and what it learned in
    /// earlier runs.
    pub fn load(config: Config, store: &dyn Store) -> anyhow::Result<Self> {
        let mut m = Overlay::new(config);
        for (k, rec) in store.list_json::<LearnedRecord>(LEARNED_PREFIX)? {
            let Some((network, port)) = k
                .strip_prefix(LEARNED_PREFIX)
                .and_then(|rest| rest.split_once('/'))
            else {
                continue;
            };
            let k = (network.to_owned(), port.to_owned());
            if m.world.config.ports.contains_key(&k) {
                m.world.learned.insert(
                    k,
                    Learned {
                        mac: rec.mac.and_then(|s| s.parse().ok()),
                        ips: rec.ips.into_iter().collect(),
                    },
                );
            }
        }
        Ok(m)
    }

    /// Runs `provisioning` as the module's task: the hosts the module
    /// works with come from it.
    pub fn with_provisioning(mut self, provisioning: Provisioning) -> Self {
        self.provisioning = Some(provisioning);
        self
    }

    /// Writes (or removes) a port's learned addresses in the store.
    fn persist_learned(&self, k: &PortKey, ctx: &mut Ctx) {
        let key = learned_key(&k.0, &k.1);
        let op = match self.world.learned.get(k) {
            Some(l) => Op::put_json(
                key,
                &LearnedRecord {
                    mac: l.mac.map(|m| m.to_string()),
                    ips: l.ips.iter().copied().collect(),
                },
            ),
            None => Ok(Op::delete(key)),
        };
        match op {
            Ok(op) => ctx.persist(vec![op]),
            Err(e) => warn!(error = %e, "could not encode learned addresses"),
        }
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    pub fn config(&self) -> &Config {
        &self.world.config
    }

    /// The VNI of network `id`, if it exists.
    fn vni(&self, id: &str) -> Option<u32> {
        self.world.config.networks.get(id).map(|n| n.vni)
    }

    /// Creates or replaces a network (already validated).
    pub fn put_network(&mut self, network: Network, ctx: &mut Ctx) {
        let mut vnis: BTreeSet<u32> = self.vni(&network.id).into_iter().collect();
        vnis.insert(network.vni);
        self.world
            .config
            .networks
            .insert(network.id.clone(), network);
        self.sync_networks(&vnis, ctx);
    }

    /// Deletes a network and its ports; returns what was removed.
    pub fn delete_network(&mut self, id: &str, ctx: &mut Ctx) -> Option<(Network, Vec<Port>)> {
        let network = self.world.config.networks.remove(id)?;
        let keys: Vec<PortKey> = self
            .world
            .config
            .ports
            .keys()
            .filter(|(n, _)| n == id)
            .cloned()
            .collect();
        let mut ports = Vec::new();
        for k in keys {
            if self.world.learned.remove(&k).is_some() {
                self.persist_learned(&k, ctx);
            }
            if let Some(p) = self.world.config.ports.remove(&k) {
                ports.push(p);
            }
        }
        self.sync_networks(&BTreeSet::from([network.vni]), ctx);
        Some((network, ports))
    }

    /// Creates or replaces a port (already validated); a port of the same
    /// id in another network is removed (a move). Learned addresses are
    /// forgotten when the binding or the network changes.
    pub fn put_port(&mut self, port: Port, ctx: &mut Ctx) {
        let k = key(&port);
        let mut vnis: BTreeSet<u32> = self.vni(&port.network).into_iter().collect();
        let elsewhere: Vec<PortKey> = self
            .world
            .config
            .ports
            .keys()
            .filter(|(n, i)| *i == port.id && *n != port.network)
            .cloned()
            .collect();
        for old in elsewhere {
            vnis.extend(self.vni(&old.0));
            self.world.config.ports.remove(&old);
            if self.world.learned.remove(&old).is_some() {
                self.persist_learned(&old, ctx);
            }
        }
        if self
            .world
            .config
            .ports
            .get(&k)
            .is_some_and(|old| old.binding != port.binding)
            && self.world.learned.remove(&k).is_some()
        {
            self.persist_learned(&k, ctx);
        }
        self.world.config.ports.insert(k, port);
        self.sync_networks(&vnis, ctx);
    }

    pub fn delete_port(&mut self, network: &str, id: &str, ctx: &mut Ctx) -> Option<Port> {
        let k = (network.to_owned(), id.to_owned());
        let port = self.world.config.ports.remove(&k)?;
        if self.world.learned.remove(&k).is_some() {
            self.persist_learned(&k, ctx);
        }
        let vnis: BTreeSet<u32> = self.vni(network).into_iter().collect();
        self.sync_networks(&vnis, ctx);
        Some(port)
    }

    /// Replaces the set of known hosts (from the provisioning task).
    pub fn set_chassis(&mut self, chassis: Vec<Chassis>, ctx: &mut Ctx) {
        let chassis: BTreeMap<String, Chassis> =
            chassis.into_iter().map(|c| (c.id.clone(), c)).collect();
        if chassis != self.world.chassis {
            self.world.chassis = chassis;
            self.sync(ctx);
        }
    }

    /// Publishes the tenant networks (`Arc<TenantNetworks>`) when they
    /// changed since the last time, so other modules (the load balancer)
    /// scope their entries to tenants without depending on this crate.
    fn publish(&mut self, ctx: &mut Ctx) {
        let now = self.world.tenants();
        if self.published.as_deref() != Some(&now) {
            let now = Arc::new(now);
            self.published = Some(now.clone());
            ctx.publish(now);
        }
    }

    /// Recompiles and declares every network on every connected switch.
    fn sync(&mut self, ctx: &mut Ctx) {
        self.fabric = Fabric::compute(&self.world);
        for dpid in self.ready_switches(ctx) {
            let flows = compile(&self.world, &self.fabric, dpid, Networks::All);
            let before = self.declared.remove(&dpid).unwrap_or_default();
            for gone in before.iter().filter(|v| !flows.contains_key(v)) {
                ctx.declare_flows(dpid, network_scope(*gone), []);
            }
            self.declared.insert(dpid, flows.keys().copied().collect());
            for (vni, entries) in flows {
                ctx.declare_flows(dpid, network_scope(vni), entries);
            }
            self.settle(dpid, ctx);
        }
        self.publish(ctx);
    }

    /// Recompiles and declares networks `vnis` (and the switches' own
    /// flows) on every connected switch; everything if the fabric changed.
    fn sync_networks(&mut self, vnis: &BTreeSet<u32>, ctx: &mut Ctx) {
        if Fabric::compute(&self.world) != self.fabric {
            return self.sync(ctx);
        }
        for dpid in self.ready_switches(ctx) {
            let mut flows = compile(&self.world, &self.fabric, dpid, Networks::Only(vnis));
            let declared = self.declared.entry(dpid).or_default();
            for vni in vnis.iter().chain([&0]) {
                let entries = flows.remove(vni).unwrap_or_default();
                if entries.is_empty() {
                    declared.remove(vni);
                } else {
                    declared.insert(*vni);
                }
                ctx.declare_flows(dpid, network_scope(*vni), entries);
            }
            self.settle(dpid, ctx);
        }
        self.publish(ctx);
    }

    /// Connected switches to compile for, in order: not those whose flows
    /// stay adopted while their host is unknown (within [`ADOPT_GRACE`]).
    fn ready_switches(&mut self, ctx: &Ctx) -> Vec<u64> {
        self.declared
            .retain(|d, _| self.world.switches.contains_key(d));
        let overlay = self.world.overlay_switches();
        let mut dpids: Vec<u64> = self.world.switches.keys().copied().collect();
        dpids.sort_unstable();
        dpids.retain(|dpid| {
            let Some(adopted) = self.adopted.remove(dpid) else {
                return true;
            };
            if overlay.contains(dpid) {
                // Its host is known again: take back what was learned.
                self.adopt_learned(*dpid, &adopted.installed);
            } else if ctx.now().saturating_duration_since(adopted.since) < ADOPT_GRACE {
                self.adopted.insert(*dpid, adopted);
                return false;
            }
            true
        });
        dpids
    }

    /// Ends adoption on a switch once it is compiled for the first time.
    fn settle(&mut self, dpid: u64, ctx: &mut Ctx) {
        if self.unsettled.remove(&dpid) {
            ctx.settle(dpid);
        }
    }

    fn switch_up(&mut self, dpid: u64, ports: &[OfPort], installed: &[FlowStats], ctx: &mut Ctx) {
        self.world.switches.insert(
            dpid,
            ports.iter().map(|p| (p.name.clone(), p.port_no)).collect(),
        );
        self.declared.remove(&dpid);
        self.adopted.remove(&dpid);
        self.unsettled.insert(dpid);
        if !installed.is_empty() && !self.world.overlay_switches().contains(&dpid) {
            // Keep the switch exactly as it is (adopted) until its host is
            // known.
            self.adopted.insert(
                dpid,
                Adopted {
                    since: ctx.now(),
                    installed: installed.to_vec(),
                },
            );
        } else {
            self.adopt_learned(dpid, installed);
        }
        self.sync(ctx);
    }

    /// After a controller restart, what was learned before is still in the
    /// switch's flows: MACs in the classify entries, addresses in the ARP
    /// entries that keep a port's own probes unanswered. Take them back
    /// instead of rewriting those entries and learning again.
    fn adopt_learned(&mut self, dpid: u64, installed: &[FlowStats]) {
        for flow in installed {
            if compile::kind_of(flow.cookie) == Kind::Arp as u64
                && flow.priority == compile::PRIO_ARP_OWNER
            {
                let (Some(in_port), Some((ip, None))) = (flow.match_.in_port(), arp_tpa(flow))
                else {
                    continue;
                };
                if let Some(k) = self.port_at(dpid, in_port) {
                    let configured = self
                        .world
                        .config
                        .ports
                        .get(&k)
                        .is_some_and(|p| !p.ips.is_empty());
                    if !configured {
                        let learned = self.world.learned.entry(k).or_default();
                        if learned.ips.len() < MAX_LEARNED_IPS {
                            learned.ips.insert(IpAddr::V4(ip));
                        }
                    }
                }
                continue;
            }
            if compile::kind_of(flow.cookie) != Kind::Port as u64
                || flow.priority != compile::PRIO_PORT
            {
                continue;
            }
            let (Some(in_port), Some((mac, None))) = (flow.match_.in_port(), eth_src(flow)) else {
                continue;
            };
            if let Some(k) = self.port_at(dpid, in_port) {
                let configured = self.world.config.ports.get(&k).and_then(|p| p.mac);
                if configured.is_none() {
                    self.world.learned.entry(k).or_default().mac = Some(mac);
                }
            }
        }
    }

    /// The configured port located at (dpid, port_no).
    fn port_at(&self, dpid: u64, port_no: u32) -> Option<PortKey> {
        self.world.config.ports.values().find_map(|p| {
            let loc = self.world.locate(p);
            (loc.dpid == Some(dpid) && loc.port_no == Some(port_no)).then(|| key(p))
        })
    }

    fn port_status(&mut self, dpid: u64, reason: PortReason, port: &OfPort, ctx: &mut Ctx) {
        let Some(names) = self.world.switches.get_mut(&dpid) else {
            return;
        };
        match reason {
            PortReason::Delete => {
                names.retain(|_, n| *n != port.port_no);
            }
            _ => {
                names.retain(|name, n| *n != port.port_no || *name == port.name);
                names.insert(port.name.clone(), port.port_no);
            }
        }
        self.sync(ctx);
    }

    /// A Neighbor Solicitation for a known address: answer it out of the
    /// ingress port. The network comes from the cookie (its VNI).
    fn neighbor_solicitation(&self, dpid: u64, packet_in: &PacketIn, ctx: &mut Ctx) {
        let vni = (packet_in.cookie & metadata::VNI_MASK) as u32;
        let (Some(in_port), Some(ns)) = (
            packet_in.match_.in_port(),
            nd::Solicitation::parse(&packet_in.data),
        ) else {
            return;
        };
        let w = &self.world;
        let owner = w.config.ports.values().find(|p| {
            w.config.networks.get(&p.network).map(|n| n.vni) == Some(vni)
                && w.ips(p).contains(&IpAddr::V6(ns.target))
        });
        let Some(na) = owner
            .and_then(|p| w.mac(p))
            .and_then(|mac| nd::advertisement(&ns, mac))
        else {
            return;
        };
        ctx.packet_out(
            dpid,
            PacketOut {
                buffer_id: flowgate_openflow::NO_BUFFER,
                in_port,
                actions: vec![flowgate_openflow::Action::Output {
                    port: flowgate_openflow::port_no::IN_PORT,
                    max_len: 0,
                }],
                data: bytes::Bytes::from(na),
            },
        );
    }

    /// A learning copy from a port without configured MAC or IPs.
    fn packet_in(&mut self, dpid: u64, packet_in: &PacketIn, ctx: &mut Ctx) {
        if compile::kind_of(packet_in.cookie) == Kind::Nd as u64 {
            self.neighbor_solicitation(dpid, packet_in, ctx);
            return;
        }
        if compile::kind_of(packet_in.cookie) != Kind::Port as u64 {
            return;
        }
        let (Some(in_port), Some(frame)) =
            (packet_in.match_.in_port(), Frame::parse(&packet_in.data))
        else {
            return;
        };
        let Some(k) = self.port_at(dpid, in_port) else {
            return;
        };
        let Some(port) = self.world.config.ports.get(&k) else {
            return;
        };
        if frame.src.is_multicast() || frame.src == MacAddr::ZERO {
            return;
        }
        let subnet = self
            .world
            .config
            .networks
            .get(&port.network)
            .and_then(|n| n.subnet);
        let mac = port.mac;
        let learn_ips = port.ips.is_empty();
        let learned = self.world.learned.entry(k.clone()).or_default();
        let before = learned.clone();
        let effective = match mac.or(learned.mac) {
            Some(m) => m,
            None => {
                learned.mac = Some(frame.src);
                frame.src
            }
        };
        if learn_ips && frame.src == effective {
            if let Some(ip) = frame.sender_ip.filter(|ip| !ip.is_unspecified()) {
                let ip = IpAddr::V4(ip);
                if subnet.is_none_or(|s| s.contains(ip)) && learned.ips.len() < MAX_LEARNED_IPS {
                    learned.ips.insert(ip);
                }
            }
        }
        if *learned != before {
            info!(network = %k.0, port = %k.1, mac = %effective, ips = ?learned.ips, "overlay learned port address");
            self.persist_learned(&k, ctx);
            let vnis: BTreeSet<u32> = self.vni(&k.0).into_iter().collect();
            self.sync_networks(&vnis, ctx);
        } else {
            debug!(network = %k.0, port = %k.1, "learning packet taught nothing new");
        }
    }
}

fn arp_tpa(flow: &FlowStats) -> Option<(Ipv4Addr, Option<Ipv4Addr>)> {
    flow.match_.fields.iter().find_map(|f| match f {
        Oxm::ArpTpa(ip, mask) => Some((*ip, *mask)),
        _ => None,
    })
}

fn eth_src(flow: &FlowStats) -> Option<(MacAddr, Option<MacAddr>)> {
    flow.match_.fields.iter().find_map(|f| match f {
        Oxm::EthSrc(m, mask) => Some((*m, *mask)),
        _ => None,
    })
}

/// The parts of a frame learning looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame {
    src: MacAddr,
    /// ARP sender address, or IPv4 source.
    sender_ip: Option<Ipv4Addr>,
}

impl Frame {
    fn parse(data: &[u8]) -> Option<Frame> {
        let src = MacAddr(data.get(6..12)?.try_into().ok()?);
        let mut ethertype = u16::from_be_bytes(data.get(12..14)?.try_into().ok()?);
        let mut l3 = 14;
        if ethertype == 0x8100 {
            ethertype = u16::from_be_bytes(data.get(16..18)?.try_into().ok()?);
            l3 = 18;
        }
        let ip_at = |off: usize| -> Option<Ipv4Addr> {
            let b: [u8; 4] = data.get(l3 + off..l3 + off + 4)?.try_into().ok()?;
            Some(Ipv4Addr::from(b))
        };
        let sender_ip = match ethertype {
            0x0806 => ip_at(14),
            0x0800 => ip_at(12),
            _ => None,
        };
        Some(Frame { src, sender_ip })
    }
}

impl Module for Overlay {
    fn owner(&self) -> Owner {
        Owner::Overlay
    }

    fn handle(&mut self, event: &Event<'_>, ctx: &mut Ctx) {
        match event {
            Event::SwitchUp {
                dpid,
                ports,
                installed,
                ..
            } => self.switch_up(*dpid, ports, installed, ctx),
            Event::SwitchDown { dpid } => {
                self.world.switches.remove(dpid);
                self.declared.remove(dpid);
                self.adopted.remove(dpid);
                self.unsettled.remove(dpid);
                self.sync(ctx);
            }
            Event::PortStatus { dpid, status } => {
                self.port_status(*dpid, status.reason, &status.desc, ctx)
            }
            Event::PacketIn { dpid, packet_in } => self.packet_in(*dpid, packet_in, ctx),
            Event::Tick => {
                let now = ctx.now();
                if self
                    .adopted
                    .values()
                    .any(|a| now.saturating_duration_since(a.since) >= ADOPT_GRACE)
                {
                    self.sync(ctx);
                }
            }
            Event::Notice { from, payload } => {
                if *from != Owner::Topology {
                    return;
                }
                let Some(view) = payload.downcast_ref::<Arc<TopologyView>>() else {
                    return;
                };
                self.world.topology = Some(view.clone());
                // Host sightings change the view often; recompile only
                // when what the fabric uses changed.
                if Fabric::compute(&self.world) != self.fabric {
                    self.sync(ctx);
                }
            }
            Event::Task { payload } => {
                if let Some(ChassisList(list)) = payload.downcast_ref::<ChassisList>() {
                    self.set_chassis(list.clone(), ctx);
                }
            }
            Event::FlowRemoved { .. } | Event::Rejected { .. } | Event::Bus { .. } => {}
        }
        self.publish(ctx);
    }

    fn tasks(&mut self) -> Vec<Task> {
        self.provisioning
            .take()
            .map(Provisioning::task)
            .into_iter()
            .collect()
    }

    /// A switch's overlay flows stay as they are until its host is known
    /// (an OVSDB reconnect after a controller restart) or for
    /// [`ADOPT_GRACE`].
    fn adoption(&self) -> Adoption {
        Adoption::Keep
    }

    /// Networks and ports; learned addresses and OVSDB connections are
    /// this node's own.
    fn followed_prefixes(&self) -> Vec<&'static str> {
        vec![crate::service::NETWORKS, crate::service::PORTS]
    }

    fn follow_store(&mut self, sync: &StoreSync, ctx: &mut Ctx) -> Followed {
        self.follow(sync, ctx)
    }
}

mod follow;
#[cfg(test)]
mod tests;
