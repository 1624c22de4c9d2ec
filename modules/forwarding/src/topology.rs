//! Topology-aware forwarding: proactive shortest paths per destination MAC
//! and broadcast along a spanning tree, computed from the topology module's
//! [`TopologyView`] every time it changes.
//!
//! - `forward` (T5): on every switch, `eth_dst=<host>` → the port towards
//!   it (its edge port on its own switch). Installed as soon as the host is
//!   known; equal-cost choices are spread by destination MAC
//!   ([`NetGraph::routes_to`]), so the REST path query shows the real path.
//! - `flood` (T6): one entry per flooding in-port (edge ports and
//!   spanning-tree ports): `in_port=p` → output to every other flooding
//!   port. A packet arriving on any other port (a link off the tree, a
//!   pending port) matches nothing and is dropped: that is what breaks
//!   loops. Explicit output lists rather than an ALL group: a flood list
//!   differs per in-port (split horizon), so a group per in-port would
//!   double the entries without saving a message.
//! - `learn` (T4), with proxy-ARP on: ARP requests arriving on edge ports
//!   go to the controller, which answers from the host table when it knows
//!   the target and otherwise floods the request along the tree.
//!
//! Each recomputation declares three scopes per ready switch (routes,
//! flood, ARP traps); the core sends only what changed, so a link failure
//! sends only the flows whose port changed. Until the topology says a
//! switch is ready (its first discovery period), the flows found on it are
//! kept as they are (adopted): a restarted controller leaves traffic
//! alone, then recomputes the same flows and sends nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use flowgate_controller::cookie::Owner;
use flowgate_controller::desired::{FlowEntry, FlowSpec};
use flowgate_controller::module::{Adoption, Ctx, Event, Module, Scope};
use flowgate_controller::pipeline::{FLOOD, FORWARD, LEARN};
use flowgate_controller::topology::graph::tree_ports;
use flowgate_controller::topology::packet::{Arp, ARP_REQUEST, ETH_TYPE_ARP};
use flowgate_controller::topology::{Endpoint, PortRole, TopologyView};
use flowgate_openflow::{
    port_no, Action, FlowStats, Instruction, MacAddr, Match, Oxm, PacketIn, PacketOut, NO_BUFFER,
    OFPCML_NO_BUFFER,
};
use tracing::debug;

use crate::miss::{self, awaits_us};

/// Priority of per-destination entries (T5) and flood entries (T6).
const ROUTE_PRIORITY: u16 = 100;
const FLOOD_PRIORITY: u16 = 100;
/// Priority of the ARP-request trap (T4).
const ARP_TRAP_PRIORITY: u16 = 200;
/// Cookie objects: host entries use the MAC; these live in the multicast
/// half of the 48-bit space, which no host MAC occupies.
const OBJ_ARP_TRAP: u64 = 0x0300_0000_0000;
/// The Ethernet group bit, matched by the ARP traps: only broadcast
/// requests come to the controller. A unicast request (a host re-checking
/// a neighbour it knows) is forwarded by the switch like any frame to that
/// address, so it needs no packet-out and is answered even while no
/// controller may write to the switch (a restart, a failover, a cluster
/// without etcd quorum).
const GROUP_BIT: flowgate_openflow::MacAddr = flowgate_openflow::MacAddr([0x01, 0, 0, 0, 0, 0]);
const OBJ_FLOOD: u64 = 0x0400_0000_0000;

/// The scopes of a ready switch.
const ROUTES: Scope = Scope::new("routes", 0);
const FLOODING: Scope = Scope::new("flood", 0);
const ARP_TRAPS: Scope = Scope::new("arp-traps", 0);

#[derive(Debug, Clone)]
pub struct TopologyForwardingConfig {
    /// Answer ARP requests for known hosts from the controller.
    pub proxy_arp: bool,
}

impl Default for TopologyForwardingConfig {
    fn default() -> Self {
        TopologyForwardingConfig { proxy_arp: true }
    }
}

/// Proactive shortest-path forwarding with spanning-tree flooding.
#[derive(Debug, Default)]
pub struct TopologyForwarding {
    config: TopologyForwardingConfig,
    view: Arc<TopologyView>,
    /// Per connected switch: the outputs of its flood entry per in-port,
    /// as found on it until it is ready, as computed afterwards.
    flooding: HashMap<u64, Flooding>,
}

#[derive(Debug, Default)]
struct Flooding {
    /// The switch was recomputed once: what was adopted is settled.
    settled: bool,
    outputs: HashMap<u32, Vec<Action>>,
    /// The outputs of its route entries by destination MAC (adopted, then
    /// computed), for table misses sent on where the entries would send them.
    routes: HashMap<MacAddr, Vec<Action>>,
}

/// The destination and outputs of a route entry.
fn route_outputs(e: &FlowEntry) -> Option<(MacAddr, Vec<Action>)> {
    let dst = e.key.match_().fields.iter().find_map(|f| match *f {
        Oxm::EthDst(mac, None) => Some(mac),
        _ => None,
    })?;
    match e.spec.instructions.as_slice() {
        [Instruction::ApplyActions(actions)] if !actions.is_empty() => Some((dst, actions.clone())),
        _ => None,
    }
}

impl TopologyForwarding {
    pub fn new(config: TopologyForwardingConfig) -> Self {
        TopologyForwarding {
            config,
            ..TopologyForwarding::default()
        }
    }

    fn switch_up(&mut self, dpid: u64, installed: &[FlowStats]) {
        // Until the switch is ready its adopted flood entries decide where
        // a request the controller cannot answer goes.
        let outputs = installed
            .iter()
            .map(FlowEntry::from_stats)
            .filter(|e| e.key.table_id == FLOOD && e.key.priority == FLOOD_PRIORITY)
            .filter_map(|e| Some((e.key.match_().in_port()?, flood_outputs(&e)?.to_vec())))
            .collect();
        let routes = installed
            .iter()
            .map(FlowEntry::from_stats)
            .filter(|e| e.key.table_id == FORWARD && e.key.priority == ROUTE_PRIORITY)
            .filter_map(|e| route_outputs(&e))
            .collect();
        self.flooding.insert(
            dpid,
            Flooding {
                settled: false,
                outputs,
                routes,
            },
        );
    }

    /// Declares every ready switch's entries for the current view.
    fn recompute(&mut self, ctx: &mut Ctx) {
        let wanted = desired(
            &self.view,
            self.config.proxy_arp,
            self.flooding.keys().copied(),
        );
        for (dpid, flows) in wanted {
            let Some(flooding) = self.flooding.get_mut(&dpid) else {
                continue;
            };
            flooding.outputs = flows
                .flood
                .iter()
                .filter_map(|e| Some((e.key.match_().in_port()?, flood_outputs(e)?.to_vec())))
                .collect();
            flooding.routes = flows.routes.iter().filter_map(route_outputs).collect();
            ctx.declare_flows(dpid, ROUTES, flows.routes);
            ctx.declare_flows(dpid, FLOODING, flows.flood);
            ctx.declare_flows(dpid, ARP_TRAPS, flows.arp_traps);
            if !flooding.settled {
                ctx.settle(dpid);
                flooding.settled = true;
            }
        }
    }

    fn packet_in(&self, dpid: u64, packet_in: &PacketIn, ctx: &mut Ctx) {
        let Some(in_port) = packet_in.match_.in_port() else {
            return;
        };
        let Some((arp, vlan)) = Arp::from_frame(&packet_in.data) else {
            if awaits_us(packet_in) {
                self.send_on(dpid, in_port, packet_in, ctx);
            }
            return;
        };
        let gratuitous = arp.spa == arp.tpa;
        if self.config.proxy_arp && arp.op == ARP_REQUEST && !gratuitous {
            if let Some(target) = self.view.host_by_ip(IpAddr::V4(arp.tpa)) {
                if target.mac != arp.sha {
                    debug!(ip = %arp.tpa, mac = %target.mac, "proxy-ARP reply");
                    ctx.packet_out(
                        dpid,
                        PacketOut {
                            buffer_id: NO_BUFFER,
                            in_port: port_no::CONTROLLER,
                            actions: vec![Action::Output {
                                port: in_port,
                                max_len: 0,
                            }],
                            data: arp.reply_from(target.mac).to_frame(vlan),
                        },
                    );
                    return;
                }
            }
        }
        // Not ours to answer: on along the tree, as the switch would have.
        if let Some(actions) = self.flood_actions(dpid, in_port) {
            ctx.packet_out(
                dpid,
                PacketOut {
                    buffer_id: NO_BUFFER,
                    in_port,
                    actions: actions.to_vec(),
                    data: packet_in.data.clone(),
                },
            );
        }
    }

    /// Sends a table miss's packet where this module's entries send its
    /// kind: towards its destination if known, else along the tree. Never
    /// back through the switch's tables: whatever missed there may miss
    /// again.
    fn send_on(&self, dpid: u64, in_port: u32, packet_in: &PacketIn, ctx: &mut Ctx) {
        let route = packet_in
            .data
            .get(..6)
            .and_then(|dst| self.route_actions(dpid, MacAddr(dst.try_into().ok()?)));
        if let Some(actions) = route.or_else(|| self.flood_actions(dpid, in_port)) {
            ctx.packet_out(dpid, miss::release(packet_in, in_port, actions.to_vec()));
        }
    }

    /// The outputs of the switch's route entry towards `dst`, if any.
    fn route_actions(&self, dpid: u64, dst: MacAddr) -> Option<&[Action]> {
        Some(self.flooding.get(&dpid)?.routes.get(&dst)?.as_slice())
    }

    /// The outputs of the switch's flood entry for `in_port`: computed once
    /// the switch is ready, adopted from the switch before that, so address
    /// resolution keeps working while a restarted controller rediscovers
    /// the network. None where the switch would drop a broadcast.
    fn flood_actions(&self, dpid: u64, in_port: u32) -> Option<&[Action]> {
        let outputs = self.flooding.get(&dpid)?.outputs.get(&in_port)?;
        (!outputs.is_empty()).then_some(outputs.as_slice())
    }
}

impl Module for TopologyForwarding {
    fn owner(&self) -> Owner {
        Owner::Forwarding
    }

    fn handle(&mut self, event: &Event<'_>, ctx: &mut Ctx) {
        match event {
            Event::SwitchUp {
                dpid, installed, ..
            } => self.switch_up(*dpid, installed),
            Event::SwitchDown { dpid } => {
                self.flooding.remove(dpid);
            }
            Event::Notice { payload, .. } => {
                if let Some(view) = payload.downcast_ref::<Arc<TopologyView>>() {
                    self.view = view.clone();
                    self.recompute(ctx);
                }
            }
            Event::PacketIn { dpid, packet_in } => self.packet_in(*dpid, packet_in, ctx),
            Event::PortStatus { .. }
            | Event::FlowRemoved { .. }
            | Event::Tick
            | Event::Rejected { .. }
            | Event::Task { .. }
            | Event::Bus { .. } => {}
        }
    }

    /// A restarted controller keeps a switch's forwarding as it is until
    /// discovery has run there (see [`TopologyForwarding::recompute`]).
    fn adoption(&self) -> Adoption {
        Adoption::Keep
    }
}

/// One ready switch's entries, by scope.
#[derive(Debug, Default)]
pub struct SwitchFlows {
    pub routes: Vec<FlowEntry>,
    pub flood: Vec<FlowEntry>,
    pub arp_traps: Vec<FlowEntry>,
}

/// What every ready switch among `dpids` should hold for `view`.
pub fn desired(
    view: &TopologyView,
    proxy_arp: bool,
    dpids: impl Iterator<Item = u64>,
) -> BTreeMap<u64, SwitchFlows> {
    let graph = view.graph();
    let tree = tree_ports(&graph.spanning_tree());
    // Per host: the output port on every switch that can reach it.
    let routes: Vec<(flowgate_openflow::MacAddr, BTreeMap<u64, u32>)> = view
        .hosts
        .iter()
        .map(|h| {
            let mut r = graph.routes_to(h.at.dpid, h.mac.to_u64());
            r.insert(h.at.dpid, h.at.port);
            (h.mac, r)
        })
        .collect();
    let mut out = BTreeMap::new();
    for dpid in dpids.filter(|d| view.is_ready(*d)) {
        let mut flows = SwitchFlows::default();
        let edge = view.ports_with_role(dpid, PortRole::Edge);
        let flood: BTreeSet<u32> = edge
            .iter()
            .copied()
            .chain(
                view.ports_with_role(dpid, PortRole::Link)
                    .into_iter()
                    .filter(|p| tree.contains(&Endpoint::new(dpid, *p))),
            )
            .collect();
        for &in_port in &flood {
            let outputs: Vec<Action> = flood
                .iter()
                .filter(|p| **p != in_port)
                .map(|&port| Action::Output { port, max_len: 0 })
                .collect();
            if !outputs.is_empty() {
                flows.flood.push(flood_entry(in_port, outputs));
            }
        }
        if proxy_arp {
            flows.arp_traps = edge.iter().map(|&port| arp_trap_entry(port)).collect();
        }
        for (mac, r) in &routes {
            if let Some(&port) = r.get(&dpid) {
                flows.routes.push(route_entry(*mac, port));
            }
        }
        out.insert(dpid, flows);
    }
    out
}

/// The outputs of a flood entry.
fn flood_outputs(entry: &FlowEntry) -> Option<&[Action]> {
    match entry.spec.instructions.as_slice() {
        [Instruction::ApplyActions(actions)] => Some(actions),
        _ => None,
    }
}

fn flood_match(in_port: u32) -> Match {
    Match::new().with(Oxm::InPort(in_port))
}

fn flood_entry(in_port: u32, outputs: Vec<Action>) -> FlowEntry {
    FlowEntry::new(
        FLOOD,
        FLOOD_PRIORITY,
        flood_match(in_port),
        FlowSpec::new(
            Owner::Forwarding.cookie(OBJ_FLOOD | u64::from(in_port)),
            vec![Instruction::ApplyActions(outputs)],
        ),
    )
}

fn arp_trap_entry(port: u32) -> FlowEntry {
    FlowEntry::new(
        LEARN,
        ARP_TRAP_PRIORITY,
        Match::new()
            .with(Oxm::InPort(port))
            .with(Oxm::EthDst(GROUP_BIT, Some(GROUP_BIT)))
            .with(Oxm::EthType(ETH_TYPE_ARP))
            .with(Oxm::ArpOp(ARP_REQUEST)),
        FlowSpec::new(
            Owner::Forwarding.cookie(OBJ_ARP_TRAP | u64::from(port)),
            vec![Instruction::ApplyActions(vec![Action::Output {
                port: port_no::CONTROLLER,
                max_len: OFPCML_NO_BUFFER,
            }])],
        ),
    )
}

fn route_entry(mac: flowgate_openflow::MacAddr, port: u32) -> FlowEntry {
    FlowEntry::new(
        FORWARD,
        ROUTE_PRIORITY,
        Match::new().with(Oxm::EthDst(mac, None)),
        FlowSpec::new(
            Owner::Forwarding.cookie(mac.to_u64()),
            vec![Instruction::ApplyActions(vec![Action::Output {
                port,
                max_len: 0,
            }])],
        ),
    )
}

#[cfg(test)]
mod tests;
