//! The topology module: discovers links with LLDP, classifies ports (link,
//! edge, pending), tracks hosts on edge ports, and publishes a
//! [`TopologyView`] whenever any of that changes.
//!
//! Its entries in the classify table (T0), highest priority first:
//!
//! | prio | match                         | action                         |
//! |------|-------------------------------|--------------------------------|
//! | 1000 | `eth_type=0x88cc` (LLDP)      | controller (whole frame)       |
//! | 500  | `in_port=<link port>`         | goto 1 (transit: never learned)|
//! | 300  | ARP; ICMPv6 NS / NA           | controller (128 B) + goto 1    |
//! | 100  | `in_port, eth_src` of a host  | goto 1, idle timeout, FLOW_REM |
//! | 1    | miss                          | controller (128 B) + goto 1    |
//!
//! So the first packet of an unknown source on an edge port is copied to
//! the controller while the switch forwards it, and then no more; address
//! resolution traffic is always copied, which keeps IP addresses current.
//! A host's entry expiring on the switch (idle timeout) expires the host.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowgate_openflow::{
    port_no, port_state, Action, FlowRemoved, FlowStats, Instruction, MacAddr, Match, Oxm,
    PacketIn, PacketOut, Port, PortReason, PortStatus, NO_BUFFER, OFPCML_NO_BUFFER,
};
use tracing::{debug, info, warn};

use super::auth::{ProbeKey, Refusal};
use super::graph::Endpoint;
use super::hosts::{Addresses, HostTable, Learned};
use super::lldp::{Probe, ProbeAuth, ETH_TYPE_LLDP};
use super::packet::{Sighting, ETH_TYPE_ARP, ETH_TYPE_IPV6, ICMPV6_NA, ICMPV6_NS, IP_PROTO_ICMPV6};
use super::prober::ProbeQueue;
use super::view::{PortRole, PortView, SwitchView, TopologyView};
use crate::cookie::{self, Owner};
use crate::desired::{FlowEntry, FlowSpec};
use crate::events::{BusEvent, HostChange};
use crate::module::{Adoption, Ctx, Event, Module, Scope};
use crate::pipeline::{ACL, CLASSIFY, MODULE_MISS_PRIORITY};
use crate::store::{Op, Store, StoreExt};

pub const LLDP_PRIORITY: u16 = 1000;
pub const LINK_PORT_PRIORITY: u16 = 500;
pub const RESOLUTION_PRIORITY: u16 = 300;
pub const HOST_PRIORITY: u16 = 100;
/// Bytes of a copied packet: enough for Ethernet, VLAN, IPv6 and an ND header.
const COPY_LEN: u16 = 128;

/// Scopes: the traps every switch gets at once, and the link-port and host
/// entries written once the switch is ready.
const FIXED: Scope = Scope::new("fixed", 0);
const LINKS: Scope = Scope::new("links", 0);
const HOSTS: Scope = Scope::new("hosts", 0);

/// Cookie objects. Host entries use the host's MAC; the others live in the
/// multicast half of the 48-bit space, which no host MAC occupies.
const OBJ_LLDP: u64 = 0x0100_0000_0001;
const OBJ_ARP: u64 = 0x0100_0000_0002;
const OBJ_NS: u64 = 0x0100_0000_0003;
const OBJ_NA: u64 = 0x0100_0000_0004;
const OBJ_MISS: u64 = 0x0100_0000_0005;
const OBJ_LINK_PORT: u64 = 0x0300_0000_0000;

#[derive(Debug, Clone)]
pub struct TopologyConfig {
    /// Period of LLDP rounds on every port.
    pub lldp_interval: Duration,
    /// How long a port that came up waits for a link to show before it is
    /// an edge port (pending ports are probed every second meanwhile).
    pub edge_delay: Duration,
    /// Seconds without traffic from a host before it is forgotten.
    pub host_idle_timeout: u16,
    /// This controller instance, carried in every probe.
    pub controller_id: u64,
    /// Bridges that are never probed and never have links, by name (a
    /// switch's LOCAL port carries its bridge's name): the overlay's
    /// integration bridges, whose ports are VMs and tunnels.
    pub unprobed_bridges: Vec<String>,
}

impl Default for TopologyConfig {
    fn default() -> Self {
        TopologyConfig {
            lldp_interval: Duration::from_secs(5),
            edge_delay: Duration::from_secs(3),
            host_idle_timeout: 300,
            controller_id: 0,
            unprobed_bridges: Vec::new(),
        }
    }
}

#[derive(Debug)]
struct PortState {
    name: String,
    hw_addr: MacAddr,
    /// Set while the port waits to become an edge port.
    pending_since: Option<Instant>,
}

#[derive(Debug)]
struct SwitchState {
    up_since: Instant,
    /// Shared discovery only: when this node lost its connection to the
    /// switch, which other nodes may still have (see `switch_down`).
    down_since: Option<Instant>,
    ready: bool,
    /// Up ports, LOCAL excluded.
    ports: BTreeMap<u32, PortState>,
    /// What a previous run left on the switch was settled (dropped unless
    /// declared again): done at the first publish after it is ready.
    settled: bool,
    /// An integration bridge: no probes out of it, no links to it.
    unprobed: bool,
    probes: ProbeQueue,
}

/// A link a valid probe claimed between ports where hosts live: not taken
/// (a pair of hosts relaying probes would otherwise splice themselves into
/// the network), but shown to the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuspectLink {
    pub from: Endpoint,
    pub to: Endpoint,
    /// Hosts behind either end when it was last claimed.
    pub hosts: usize,
    pub last_seen: Instant,
}

/// LLDP discovery, port roles and host tracking.
#[derive(Debug)]
pub struct Topology {
    config: TopologyConfig,
    key: ProbeKey,
    switches: BTreeMap<u64, SwitchState>,
    /// Directed links (sender port, receiver port) and when last seen.
    links: BTreeMap<(Endpoint, Endpoint), Instant>,
    /// How many links touch each port: a port's role without a scan.
    link_ends: HashMap<Endpoint, usize>,
    suspects: BTreeMap<(Endpoint, Endpoint), SuspectLink>,
    /// Probes refused (forged, stale, another instance's), for the log.
    refused: u64,
    /// Discovery shared with a cluster ([`Topology::shared_discovery`]).
    shared: bool,
    /// Per switch, since when its probes have been heard without a gap,
    /// and when last (valid probes only).
    heard: HashMap<u64, (Instant, Instant)>,
    hosts: HostTable,
    next_round: Option<Instant>,
    /// Something changed since the last published view.
    dirty: bool,
    view: Arc<TopologyView>,
    /// Link and host events for the bus, emitted at the end of the event.
    events: Vec<BusEvent>,
    /// Hosts' addresses as stored (see [`Topology::with_addresses`]).
    addresses: BTreeMap<MacAddr, Addresses>,
    /// Store writes for those addresses, made at the end of the event.
    address_ops: Vec<Op>,
}

/// Where host addresses are kept: `topology/hosts/<mac>`.
pub const ADDRESSES: &str = "topology/hosts/";

fn address_key(mac: MacAddr) -> String {
    format!("{ADDRESSES}{mac}")
}

impl Topology {
    pub fn new(config: TopologyConfig) -> Self {
        Topology {
            config,
            key: ProbeKey::generate(Instant::now()),
            switches: BTreeMap::new(),
            links: BTreeMap::new(),
            link_ends: HashMap::new(),
            suspects: BTreeMap::new(),
            refused: 0,
            shared: false,
            heard: HashMap::new(),
            hosts: HostTable::default(),
            next_round: None,
            dirty: false,
            view: Arc::default(),
            events: Vec::new(),
            addresses: BTreeMap::new(),
            address_ops: Vec::new(),
        }
    }

    /// Discovery as one node of a cluster, where only a switch's master
    /// sends its probes and every node hears them (packet-ins reach slaves
    /// too), so that all nodes learn the same links:
    /// - probes are signed and checked with the cluster's shared `key`
    ///   ([`ProbeKey::shared`]) and carry its id;
    /// - a link ages only while probes from its sending switch are heard
    ///   elsewhere: while the switch has no master writing (no lease, a
    ///   failover) nobody probes, and the link is not lost for it;
    /// - a new port stays pending at least one probe round: a node that
    ///   connects between two of the master's rounds hears a link only at
    ///   the next (an edge port would have it learn hosts where a link is).
    pub fn shared_discovery(mut self, key: ProbeKey) -> Self {
        self.config.controller_id = key.id();
        self.config.edge_delay = self
            .config
            .edge_delay
            .max(self.config.lldp_interval + Duration::from_secs(1));
        self.key = key;
        self.shared = true;
        self
    }

    /// Knows the addresses of the hosts an earlier run learned (kept in
    /// `store` from then on), so hosts adopted from a switch's entries
    /// after a restart are found by IP at once, not at their next ARP.
    pub fn with_addresses(mut self, store: &dyn Store) -> anyhow::Result<Self> {
        for (key, addresses) in store.list_json::<Addresses>(ADDRESSES)? {
            if let Ok(mac) = key[ADDRESSES.len()..].parse::<MacAddr>() {
                self.addresses.insert(mac, addresses);
            }
        }
        Ok(self)
    }

    /// Queues a store write if `mac`'s addresses changed.
    fn remember(&mut self, mac: MacAddr) {
        let Some(addresses) = self.hosts.get(mac).map(|h| h.addresses()) else {
            return;
        };
        if self.addresses.get(&mac) == Some(&addresses) {
            return;
        }
        match Op::put_json(address_key(mac), &addresses) {
            Ok(op) => self.address_ops.push(op),
            Err(e) => warn!(error = %e, "could not encode a host's addresses"),
        }
        self.addresses.insert(mac, addresses);
    }

    /// The last published view.
    pub fn view(&self) -> Arc<TopologyView> {
        self.view.clone()
    }

    /// Links claimed by valid probes between ports where hosts live.
    pub fn suspect_links(&self) -> Vec<SuspectLink> {
        self.suspects.values().cloned().collect()
    }

    fn switch_up(&mut self, dpid: u64, ports: &[Port], installed: &[FlowStats], ctx: &mut Ctx) {
        let now = ctx.now();
        if self.shared && self.switches.contains_key(&dpid) {
            self.switch_back(dpid, ports, ctx);
            return;
        }
        self.forget_switch(dpid, now);
        let unprobed = ports
            .iter()
            .any(|p| p.port_no == port_no::LOCAL && self.config.unprobed_bridges.contains(&p.name));
        let ports = ports
            .iter()
            .filter(|p| is_up(p))
            .map(|p| {
                let state = PortState {
                    name: p.name.clone(),
                    hw_addr: p.hw_addr,
                    pending_since: Some(now),
                };
                (p.port_no, state)
            })
            .collect();
        let mut state = SwitchState {
            up_since: now,
            down_since: None,
            ready: false,
            ports,
            settled: false,
            unprobed,
            probes: ProbeQueue::default(),
        };
        if unprobed {
            info!(
                dpid = format_args!("{dpid:016x}"),
                "integration bridge: no discovery probes"
            );
        }
        ctx.declare_flows(dpid, FIXED, fixed_entries());
        // What a previous run left stays as it is until the switch is ready
        // (adopted, see `Module::adoption`); host entries bring their hosts.
        for flow in installed
            .iter()
            .filter(|f| f.table_id == CLASSIFY && f.priority == HOST_PRIORITY)
        {
            if let (Some(port), Some((mac, None))) = (flow.match_.in_port(), flow.match_.eth_src())
            {
                self.hosts
                    .adopt(mac, Endpoint::new(dpid, port), self.addresses.get(&mac));
            }
        }
        if !unprobed {
            for &no in state.ports.keys() {
                state.probes.push(no);
            }
        }
        self.switches.insert(dpid, state);
        self.send_probes(dpid, ctx);
        self.dirty = true;
    }

    /// This node lost its connection to `dpid`. A single controller
    /// forgets the switch. In a cluster the switch is likely still there,
    /// mastered by another node, whose view keeps its links and hosts: so
    /// does this one's, or a node that masters other switches after a
    /// short cut would route around a switch the others still use. It is
    /// forgotten if it stays away longer than a link would (`tick`).
    fn switch_down(&mut self, dpid: u64, now: Instant) {
        match self.switches.get_mut(&dpid) {
            Some(switch) if self.shared => {
                switch.down_since = Some(now);
                switch.probes = ProbeQueue::default();
            }
            _ => self.forget_switch(dpid, now),
        }
    }

    /// A switch this node knew connects again (shared discovery): its
    /// links and hosts stay; ports gone since are dropped, new ones are
    /// pending and probed. The new connection's entries are declared and
    /// settled again at the next publish.
    fn switch_back(&mut self, dpid: u64, ports: &[Port], ctx: &mut Ctx) {
        let now = ctx.now();
        let up: BTreeMap<u32, &Port> = ports
            .iter()
            .filter(|p| is_up(p))
            .map(|p| (p.port_no, p))
            .collect();
        let Some(switch) = self.switches.get_mut(&dpid) else {
            return;
        };
        switch.down_since = None;
        switch.settled = false;
        let gone: Vec<u32> = switch
            .ports
            .keys()
            .filter(|no| !up.contains_key(no))
            .copied()
            .collect();
        for no in &gone {
            switch.ports.remove(no);
        }
        for (&no, port) in &up {
            let state = switch.ports.entry(no).or_insert_with(|| {
                if !switch.unprobed {
                    switch.probes.push(no);
                }
                PortState {
                    name: port.name.clone(),
                    hw_addr: port.hw_addr,
                    pending_since: Some(now),
                }
            });
            state.name.clone_from(&port.name);
            state.hw_addr = port.hw_addr;
        }
        for no in gone {
            let end = Endpoint::new(dpid, no);
            self.drop_links(|s, d| s == end || d == end, now);
            let hosts = self.hosts.remove_at(end);
            self.hosts_gone(hosts);
        }
        ctx.declare_flows(dpid, FIXED, fixed_entries());
        self.send_probes(dpid, ctx);
        self.dirty = true;
    }

    /// Drops a switch's links, hosts and state.
    fn forget_switch(&mut self, dpid: u64, now: Instant) {
        if self.switches.remove(&dpid).is_some() {
            self.dirty = true;
        }
        self.heard.remove(&dpid);
        self.drop_links(|s, d| s.dpid == dpid || d.dpid == dpid, now);
        self.suspects
            .retain(|(s, d), _| s.dpid != dpid && d.dpid != dpid);
        let gone = self.hosts.remove_on_switch(dpid);
        self.hosts_gone(gone);
    }

    fn hosts_gone(&mut self, gone: Vec<super::hosts::Host>) {
        for host in &gone {
            self.host_event(host.mac, host.at, HostChange::Gone);
        }
        if !gone.is_empty() {
            self.dirty = true;
        }
    }

    /// One port's change: a few map operations, whatever the number of
    /// ports, links and hosts (a switch may report thousands of changes
    /// in a row).
    fn port_status(&mut self, dpid: u64, status: &PortStatus, ctx: &mut Ctx) {
        let port = &status.desc;
        if port.port_no > port_no::MAX {
            return;
        }
        let Some(switch) = self.switches.get_mut(&dpid) else {
            return;
        };
        let up = status.reason != PortReason::Delete && is_up(port);
        match (up, switch.ports.get_mut(&port.port_no)) {
            (true, Some(known)) => {
                if known.name != port.name || known.hw_addr != port.hw_addr {
                    known.name.clone_from(&port.name);
                    known.hw_addr = port.hw_addr;
                    self.dirty = true;
                }
            }
            (true, None) => {
                debug!(
                    dpid = format_args!("{dpid:016x}"),
                    port = port.port_no,
                    "port up"
                );
                switch.ports.insert(
                    port.port_no,
                    PortState {
                        name: port.name.clone(),
                        hw_addr: port.hw_addr,
                        pending_since: Some(ctx.now()),
                    },
                );
                if !switch.unprobed {
                    switch.probes.push(port.port_no);
                    self.send_probes(dpid, ctx);
                }
                self.dirty = true;
            }
            (false, Some(_)) => {
                debug!(
                    dpid = format_args!("{dpid:016x}"),
                    port = port.port_no,
                    "port down"
                );
                switch.ports.remove(&port.port_no);
                let end = Endpoint::new(dpid, port.port_no);
                if self.link_ends.contains_key(&end) {
                    self.drop_links(|s, d| s == end || d == end, ctx.now());
                }
                let gone = self.hosts.remove_at(end);
                self.hosts_gone(gone);
                self.dirty = true;
            }
            (false, None) => {}
        }
    }

    fn add_link(&mut self, from: Endpoint, to: Endpoint, now: Instant) {
        if self.links.insert((from, to), now).is_none() {
            for end in [from, to] {
                *self.link_ends.entry(end).or_default() += 1;
            }
            info!(
                src = format_args!("{:016x}:{}", from.dpid, from.port),
                dst = format_args!("{:016x}:{}", to.dpid, to.port),
                "link up"
            );
            self.link_event(from, to, true);
            self.dirty = true;
        }
    }

    /// Removes the links `pred` selects. Their ends that are still up and
    /// on no other link go back to pending: probed again before anyone
    /// floods on them, in case the link is in fact still there.
    fn drop_links(&mut self, pred: impl Fn(Endpoint, Endpoint) -> bool, now: Instant) {
        let gone: Vec<(Endpoint, Endpoint)> = self
            .links
            .keys()
            .filter(|(s, d)| pred(*s, *d))
            .copied()
            .collect();
        if gone.is_empty() {
            return;
        }
        for key in &gone {
            self.links.remove(key);
            for end in [key.0, key.1] {
                if let Some(n) = self.link_ends.get_mut(&end) {
                    *n -= 1;
                    if *n == 0 {
                        self.link_ends.remove(&end);
                    }
                }
            }
            info!(
                src = format_args!("{:016x}:{}", key.0.dpid, key.0.port),
                dst = format_args!("{:016x}:{}", key.1.dpid, key.1.port),
                "link down"
            );
            self.link_event(key.0, key.1, false);
        }
        for end in gone.iter().flat_map(|(s, d)| [*s, *d]) {
            if self.link_ends.contains_key(&end) {
                continue;
            }
            if let Some(port) = self
                .switches
                .get_mut(&end.dpid)
                .and_then(|s| s.ports.get_mut(&end.port))
            {
                port.pending_since = Some(now);
            }
        }
        self.dirty = true;
    }

    fn role(&self, end: Endpoint) -> Option<PortRole> {
        let port = self.switches.get(&end.dpid)?.ports.get(&end.port)?;
        Some(if self.link_ends.contains_key(&end) {
            PortRole::Link
        } else if port.pending_since.is_some() {
            PortRole::Pending
        } else {
            PortRole::Edge
        })
    }

    fn packet_in(&mut self, dpid: u64, packet_in: &PacketIn, ctx: &mut Ctx) {
        let Some(in_port) = packet_in.match_.in_port() else {
            return;
        };
        let here = Endpoint::new(dpid, in_port);
        if cookie::object_of(packet_in.cookie) == OBJ_LLDP {
            self.lldp_in(here, &packet_in.data, ctx.now());
            return;
        }
        if self.role(here) != Some(PortRole::Edge) {
            return;
        }
        let Some(sighting) = Sighting::from_frame(&packet_in.data) else {
            return;
        };
        if sighting.mac.is_multicast() || sighting.mac == MacAddr::ZERO {
            return;
        }
        match self.hosts.learn(here, &sighting) {
            Learned::New => {
                info!(mac = %sighting.mac, dpid = format_args!("{dpid:016x}"), port = in_port, "host found");
                self.host_event(sighting.mac, here, HostChange::Appeared);
                self.remember(sighting.mac);
                self.dirty = true;
            }
            Learned::Moved { from } => {
                info!(mac = %sighting.mac, from = format_args!("{:016x}:{}", from.dpid, from.port),
                    to = format_args!("{dpid:016x}:{in_port}"), "host moved");
                self.host_event(sighting.mac, here, HostChange::Moved);
                self.dirty = true;
            }
            Learned::Updated => {
                self.remember(sighting.mac);
                self.dirty = true;
            }
            Learned::Unchanged => {}
        }
    }

    /// An LLDP frame trapped at `here`. It makes a link only if it is a
    /// probe this controller (or cluster) sent (its tag checks out) not long ago, from
    /// another port than `here`, between ports where no hosts live.
    fn lldp_in(&mut self, here: Endpoint, frame: &[u8], now: Instant) {
        let probe = match Probe::from_frame(frame) {
            Ok(probe) => probe,
            Err(e) => {
                debug!(error = ?e.to_string(), "ignored LLDP frame");
                return;
            }
        };
        if probe.controller != Some(self.config.controller_id) {
            debug!(
                from = probe.dpid,
                "ignored LLDP probe of another controller"
            );
            return;
        }
        let verdict = match probe.auth {
            Some(auth) => self
                .key
                .verify(probe.dpid, probe.port, auth.stamp, &auth.tag, now),
            None => Err(Refusal::BadTag),
        };
        if let Err(refusal) = verdict {
            self.refused += 1;
            // The first, then every thousandth: a forger must not flood the log.
            if self.refused % 1000 == 1 {
                warn!(
                    at = format_args!("{:016x}:{}", here.dpid, here.port),
                    claims = format_args!("{:016x}:{}", probe.dpid, probe.port),
                    ?refusal,
                    refused = self.refused,
                    "refused an LLDP probe carrying this controller's id: forged, replayed or stale"
                );
            }
            return;
        }
        let gap = self.config.lldp_interval * 2;
        let streak = self.heard.entry(probe.dpid).or_insert((now, now));
        if now.duration_since(streak.1) > gap {
            streak.0 = now;
        }
        streak.1 = now;
        let from = Endpoint::new(probe.dpid, probe.port);
        if from == here || self.role(from).is_none() || self.role(here).is_none() {
            return;
        }
        if [from.dpid, here.dpid]
            .iter()
            .any(|d| self.switches.get(d).is_some_and(|s| s.unprobed))
        {
            return;
        }
        let hosts = self.hosts.count_at(from) + self.hosts.count_at(here);
        if hosts > 0 {
            let suspect = SuspectLink {
                from,
                to: here,
                hosts,
                last_seen: now,
            };
            if self.suspects.insert((from, here), suspect).is_none() {
                warn!(
                    src = format_args!("{:016x}:{}", from.dpid, from.port),
                    dst = format_args!("{:016x}:{}", here.dpid, here.port),
                    hosts,
                    "link claimed between ports where hosts live: not taken (GET /topology lists it)"
                );
            }
            return;
        }
        self.suspects.remove(&(from, here));
        self.add_link(from, here, now);
    }

    fn flow_removed(&mut self, dpid: u64, removed: &FlowRemoved) {
        if removed.table_id != CLASSIFY || removed.priority != HOST_PRIORITY {
            return;
        }
        let (Some(port), Some((mac, None))) = (removed.match_.in_port(), removed.match_.eth_src())
        else {
            return;
        };
        if self
            .hosts
            .get(mac)
            .is_some_and(|h| h.at == Endpoint::new(dpid, port))
        {
            info!(%mac, "host expired");
            self.hosts.remove(mac);
            if self.addresses.remove(&mac).is_some() {
                self.address_ops.push(Op::delete(address_key(mac)));
            }
            self.host_event(mac, Endpoint::new(dpid, port), HostChange::Gone);
            self.dirty = true;
        }
    }

    fn tick(&mut self, ctx: &mut Ctx) {
        let now = ctx.now();
        let delay = self.config.edge_delay;
        let round_due = self.next_round.is_none_or(|at| now >= at);
        let max_age = self.config.lldp_interval * 3 + Duration::from_secs(1);
        let long_gone: Vec<u64> = self
            .switches
            .iter()
            .filter(|(_, s)| {
                s.down_since
                    .is_some_and(|at| now.duration_since(at) > max_age)
            })
            .map(|(dpid, _)| *dpid)
            .collect();
        for dpid in long_gone {
            self.forget_switch(dpid, now);
        }
        for switch in self
            .switches
            .values_mut()
            .filter(|s| s.down_since.is_none())
        {
            if !switch.ready && now.duration_since(switch.up_since) >= delay {
                switch.ready = true;
                self.dirty = true;
            }
            switch.probes.refill();
            for (&no, port) in &mut switch.ports {
                if port
                    .pending_since
                    .is_some_and(|since| now.duration_since(since) >= delay)
                {
                    port.pending_since = None;
                    self.dirty = true;
                }
                // Every port each round, pending ones every tick.
                if !switch.unprobed && (round_due || port.pending_since.is_some()) {
                    switch.probes.push(no);
                }
            }
        }
        // A link is gone after three rounds without a probe (plus one tick
        // of slack: probes go out on ticks); in a cluster, three rounds in
        // which its sending switch's probes kept being heard elsewhere.
        let gap = self.config.lldp_interval * 2;
        let probed = |from: &Endpoint| {
            !self.shared
                || self.heard.get(&from.dpid).is_some_and(|(since, last)| {
                    now.duration_since(*last) <= gap && now.duration_since(*since) > max_age
                })
        };
        let stale: Vec<(Endpoint, Endpoint)> = self
            .links
            .iter()
            .filter(|((from, _), seen)| now.duration_since(**seen) > max_age && probed(from))
            .map(|(k, _)| *k)
            .collect();
        if !stale.is_empty() {
            self.drop_links(|s, d| stale.contains(&(s, d)), now);
        }
        self.suspects
            .retain(|_, s| now.duration_since(s.last_seen) <= max_age);
        let dpids: Vec<u64> = self.switches.keys().copied().collect();
        for dpid in dpids {
            self.send_probes(dpid, ctx);
        }
        if round_due {
            self.next_round = Some(now + self.config.lldp_interval);
        }
    }

    /// Sends the probes `dpid`'s queue lets out this tick.
    fn send_probes(&mut self, dpid: u64, ctx: &mut Ctx) {
        let Some(switch) = self.switches.get_mut(&dpid) else {
            return;
        };
        let ttl = self.config.lldp_interval.as_secs().saturating_mul(3) + 1;
        let stamp = self.key.stamp(ctx.now());
        while let Some(no) = switch.probes.pop() {
            // A port that went down while it waited is skipped.
            let Some(state) = switch.ports.get(&no) else {
                continue;
            };
            let probe = Probe {
                dpid,
                port: no,
                ttl: u16::try_from(ttl).unwrap_or(u16::MAX),
                controller: Some(self.config.controller_id),
                auth: Some(ProbeAuth {
                    stamp,
                    tag: self.key.sign(dpid, no, stamp),
                }),
            };
            ctx.packet_out(
                dpid,
                PacketOut {
                    buffer_id: NO_BUFFER,
                    in_port: port_no::CONTROLLER,
                    actions: vec![Action::Output {
                        port: no,
                        max_len: 0,
                    }],
                    data: probe.to_frame(state.hw_addr),
                },
            );
        }
    }

    /// Brings ready switches' link-port and host entries in line and
    /// publishes the new view.
    fn publish(&mut self, ctx: &mut Ctx) {
        self.dirty = false;
        let mut hosts: BTreeMap<u64, Vec<FlowEntry>> = BTreeMap::new();
        for host in self.hosts.iter() {
            let entry = host_entry(host.mac, host.at.port, self.config.host_idle_timeout);
            hosts.entry(host.at.dpid).or_default().push(entry);
        }
        for (&dpid, switch) in &mut self.switches {
            if !switch.ready || switch.down_since.is_some() {
                continue;
            }
            let links = switch
                .ports
                .keys()
                .filter(|no| self.link_ends.contains_key(&Endpoint::new(dpid, **no)))
                .map(|no| link_port_entry(*no));
            ctx.declare_flows(dpid, LINKS, links);
            ctx.declare_flows(dpid, HOSTS, hosts.remove(&dpid).unwrap_or_default());
            if !switch.settled {
                ctx.settle(dpid);
                switch.settled = true;
            }
        }
        let view = Arc::new(self.build_view());
        self.view = view.clone();
        ctx.publish(view);
    }

    fn host_event(&mut self, mac: MacAddr, at: Endpoint, change: HostChange) {
        self.events.push(BusEvent::Host {
            mac: mac.to_string(),
            dpid: at.dpid,
            port: at.port,
            change,
        });
    }

    fn link_event(&mut self, from: Endpoint, to: Endpoint, up: bool) {
        self.events.push(BusEvent::Link {
            src_dpid: from.dpid,
            src_port: from.port,
            dst_dpid: to.dpid,
            dst_port: to.port,
            up,
        });
    }

    fn build_view(&self) -> TopologyView {
        let switches = self
            .switches
            .iter()
            .map(|(&dpid, s)| {
                let ports = s
                    .ports
                    .iter()
                    .map(|(&no, p)| {
                        let role = self
                            .role(Endpoint::new(dpid, no))
                            .unwrap_or(PortRole::Pending);
                        let view = PortView {
                            name: p.name.clone(),
                            hw_addr: p.hw_addr,
                            role,
                        };
                        (no, view)
                    })
                    .collect();
                (
                    dpid,
                    SwitchView {
                        ready: s.ready,
                        ports,
                    },
                )
            })
            .collect();
        TopologyView {
            switches,
            links: self.links.keys().copied().collect(),
            hosts: self.hosts.iter().cloned().collect(),
        }
    }
}

impl Module for Topology {
    fn owner(&self) -> Owner {
        Owner::Topology
    }

    fn handle(&mut self, event: &Event<'_>, ctx: &mut Ctx) {
        match event {
            Event::SwitchUp {
                dpid,
                ports,
                installed,
                ..
            } => self.switch_up(*dpid, ports, installed, ctx),
            Event::SwitchDown { dpid } => self.switch_down(*dpid, ctx.now()),
            Event::PortStatus { dpid, status } => self.port_status(*dpid, status, ctx),
            Event::PacketIn { dpid, packet_in } => self.packet_in(*dpid, packet_in, ctx),
            Event::FlowRemoved { dpid, removed } => self.flow_removed(*dpid, removed),
            Event::Tick => self.tick(ctx),
            Event::Notice { .. }
            | Event::Rejected { .. }
            | Event::Task { .. }
            | Event::Bus { .. } => {}
        }
        for event in self.events.drain(..) {
            ctx.emit(event);
        }
        if !self.address_ops.is_empty() {
            ctx.persist(std::mem::take(&mut self.address_ops));
        }
    }

    /// The view is published once per batch of events: a burst of port
    /// changes costs one view and one recomputation by its readers.
    fn batch_end(&mut self, ctx: &mut Ctx) {
        if self.dirty {
            self.publish(ctx);
        }
    }

    /// Entries found on a connecting switch stay as they are until it is
    /// ready: link ports are not known before discovery has run.
    fn adoption(&self) -> Adoption {
        Adoption::Keep
    }
}

fn is_up(port: &Port) -> bool {
    port.port_no <= port_no::MAX
        && port.state & port_state::LINK_DOWN == 0
        && port.config & flowgate_openflow::port_config::PORT_DOWN == 0
}

fn spec(object: u64, instructions: Vec<Instruction>) -> FlowSpec {
    FlowSpec::new(Owner::Topology.cookie(object), instructions)
}

fn copy_and_continue() -> Vec<Instruction> {
    vec![
        Instruction::ApplyActions(vec![Action::Output {
            port: port_no::CONTROLLER,
            max_len: COPY_LEN,
        }]),
        Instruction::GotoTable(ACL),
    ]
}

/// The entries every switch gets at once.
fn fixed_entries() -> Vec<FlowEntry> {
    let nd = |icmp_type| {
        Match::new()
            .with(Oxm::EthType(ETH_TYPE_IPV6))
            .with(Oxm::IpProto(IP_PROTO_ICMPV6))
            .with(Oxm::Icmpv6Type(icmp_type))
    };
    vec![
        FlowEntry::new(
            CLASSIFY,
            LLDP_PRIORITY,
            Match::new().with(Oxm::EthType(ETH_TYPE_LLDP)),
            spec(
                OBJ_LLDP,
                vec![Instruction::ApplyActions(vec![Action::Output {
                    port: port_no::CONTROLLER,
                    max_len: OFPCML_NO_BUFFER,
                }])],
            ),
        ),
        FlowEntry::new(
            CLASSIFY,
            RESOLUTION_PRIORITY,
            Match::new().with(Oxm::EthType(ETH_TYPE_ARP)),
            spec(OBJ_ARP, copy_and_continue()),
        ),
        FlowEntry::new(
            CLASSIFY,
            RESOLUTION_PRIORITY,
            nd(ICMPV6_NS),
            spec(OBJ_NS, copy_and_continue()),
        ),
        FlowEntry::new(
            CLASSIFY,
            RESOLUTION_PRIORITY,
            nd(ICMPV6_NA),
            spec(OBJ_NA, copy_and_continue()),
        ),
        FlowEntry::new(
            CLASSIFY,
            MODULE_MISS_PRIORITY,
            Match::new(),
            spec(OBJ_MISS, copy_and_continue()),
        ),
    ]
}

fn link_port_entry(port: u32) -> FlowEntry {
    FlowEntry::new(
        CLASSIFY,
        LINK_PORT_PRIORITY,
        Match::new().with(Oxm::InPort(port)),
        spec(
            OBJ_LINK_PORT | u64::from(port),
            vec![Instruction::GotoTable(ACL)],
        ),
    )
}

fn host_entry(mac: MacAddr, port: u32, idle_timeout: u16) -> FlowEntry {
    FlowEntry::new(
        CLASSIFY,
        HOST_PRIORITY,
        Match::new()
            .with(Oxm::InPort(port))
            .with(Oxm::EthSrc(mac, None)),
        spec(mac.to_u64(), vec![Instruction::GotoTable(ACL)])
            .idle_timeout(idle_timeout)
            .notify_removal(),
    )
}

#[cfg(test)]
mod tests;
