//! Learning switch for OpenFlow 1.0 switches: one table, reactive, the way
//! 1.0 controllers always did it (and what the cbench tool expects).
//!
//! A 1.0 switch sends every table miss to the controller. For each one the
//! module learns the source's port; if the destination is known it installs
//! a flow for this (in_port, source, destination), else it floods the
//! packet. Every packet-in is answered with one message where the protocol
//! allows it: when the switch buffered the packet, the FLOW_MOD carries the
//! buffer id and the switch forwards the packet by the new flow; a
//! PACKET_OUT goes only where there is no flow to install (flooding) or no
//! buffer (the packet travels back with it). Flows idle out and report
//! their removal.

use std::collections::HashMap;

use flowgate_controller::cookie::Owner;
use flowgate_controller::desired::{output_to, FlowEntry, FlowSpec};
use flowgate_controller::module::{Ctx, Event, Module, PacketIns};
use flowgate_openflow::{
    port_no, Action, FlowRemoved, FlowStats, Instruction, MacAddr, Match, Oxm, PacketIn,
    PortReason, PortStatus, NO_BUFFER, OFP_VERSION_1_0,
};
use hosts::{Flow, Host, HostHash, HostTable};

use crate::miss;

/// Priority of the learned (in_port, source, destination) entries.
const PAIR_PRIORITY: u16 = 100;

#[derive(Debug, Clone)]
pub struct L2SingleConfig {
    /// Seconds a learned flow lives without traffic.
    pub idle_timeout: u16,
}

impl Default for L2SingleConfig {
    fn default() -> Self {
        L2SingleConfig { idle_timeout: 300 }
    }
}

/// Per-switch MAC learning in a single table, for OpenFlow 1.0 switches.
#[derive(Debug, Default)]
pub struct L2Single {
    config: L2SingleConfig,
    /// dpid → the switch's hosts.
    switches: HashMap<u64, HostTable, foldhash::quality::RandomState>,
    /// What the packet-ins of the run being handled carry (a buffer every
    /// run reuses).
    run: Vec<Option<Seen>>,
}

/// A packet-in's packet: where it came from and where it goes, its MACs
/// hashed for the switch's host table.
#[derive(Debug, Clone, Copy)]
struct Seen {
    in_port: u32,
    src: MacAddr,
    dst: MacAddr,
    src_hash: HostHash,
    dst_hash: HostHash,
}

/// Where a packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forward {
    Flood,
    Port(u32),
    /// Its destination is behind the port it came in on.
    Drop,
}

impl L2Single {
    pub fn new(config: L2SingleConfig) -> Self {
        L2Single {
            config,
            ..L2Single::default()
        }
    }

    /// Where `mac` was learned on `dpid`.
    pub fn port_of(&self, dpid: u64, mac: MacAddr) -> Option<u32> {
        let hosts = self.switches.get(&dpid)?;
        hosts.get(&mac, hosts.hash(&mac)).map(|h| h.port)
    }

    /// Learns the source of one packet-in and answers it with one message:
    /// the flow towards a known destination (carrying the switch's buffer,
    /// or followed by the packet when there is none), else the packet
    /// flooded.
    fn answer(
        config: &L2SingleConfig,
        hosts: &mut HostTable,
        dpid: u64,
        packet_in: &PacketIn,
        seen: Seen,
        ctx: &mut Ctx,
    ) {
        let Seen {
            in_port, src, dst, ..
        } = seen;
        // Where it goes, as if its source were learned first: a packet to
        // itself stays behind its port.
        let forward = if dst == src {
            Forward::Drop
        } else {
            forward(hosts, in_port, dst, seen.dst_hash)
        };
        let learnable = !src.is_multicast() && src != MacAddr::ZERO;
        let source = learnable.then(|| hosts.learn(src, seen.src_hash, in_port));
        let out_port = match (forward, source) {
            (Forward::Drop, _) => return,
            (Forward::Port(port), Some(source)) => {
                let buffer_id = packet_in.buffer_id;
                Self::install(config, source, dpid, seen, port, buffer_id, ctx);
                if buffer_id != NO_BUFFER {
                    // The FLOW_MOD releases the packet: nothing more to send.
                    return;
                }
                port
            }
            (Forward::Port(port), None) => port,
            (Forward::Flood, _) => port_no::FLOOD,
        };
        let output = Action::Output {
            port: out_port,
            max_len: 0,
        };
        ctx.packet_out(dpid, miss::release(packet_in, in_port, vec![output]));
    }

    /// Sends the flow of `seen`'s packets (from `source`) towards
    /// `out_port`, releasing `buffer_id`: a miss for a flow we declared
    /// means the switch lacks it, so it is re-sent as it is, or declared
    /// anew if it is new or its port changed.
    fn install(
        config: &L2SingleConfig,
        source: &mut Host,
        dpid: u64,
        seen: Seen,
        out_port: u32,
        buffer_id: u32,
        ctx: &mut Ctx,
    ) {
        match source.flow(seen.in_port, seen.dst) {
            Some(flow) if flow.out_port == out_port => {
                ctx.resend_releasing(dpid, &flow.key, buffer_id)
            }
            _ => {
                let entry = pair_entry(config, seen.in_port, seen.src, seen.dst, out_port);
                source.declare(Flow {
                    in_port: seen.in_port,
                    dst: seen.dst,
                    out_port,
                    key: entry.key.clone(),
                });
                ctx.reassert_releasing(dpid, entry, buffer_id);
            }
        }
    }

    fn flow_removed(&mut self, dpid: u64, removed: &FlowRemoved) {
        let Some((in_port, src, dst)) = pair_of(&removed.match_) else {
            return;
        };
        let Some(hosts) = self.switches.get_mut(&dpid) else {
            return;
        };
        if let Some(host) = hosts.get_mut(&src, hosts.hash(&src)) {
            host.flows
                .retain(|f| !(f.in_port == in_port && f.dst == dst));
        }
    }

    fn port_status(&mut self, dpid: u64, status: &PortStatus) {
        let down = status.reason == PortReason::Delete
            || status.desc.state & flowgate_openflow::port_state::LINK_DOWN != 0;
        if let (true, Some(hosts)) = (down, self.switches.get_mut(&dpid)) {
            hosts.forget_port(status.desc.port_no);
        }
    }

    /// Keeps learned flows that survived a controller restart: their
    /// sources are known on their in_port again, the flows by the keys
    /// they are adopted with.
    fn switch_up(&mut self, dpid: u64, installed: &[FlowStats], ctx: &mut Ctx) {
        let hosts = self.switches.entry(dpid).or_default();
        *hosts = HostTable::default();
        for flow in installed.iter().filter(|f| f.priority == PAIR_PRIORITY) {
            let entry = FlowEntry::from_stats(flow);
            if let (Some((in_port, src, dst)), Some(out_port)) =
                (pair_of(&flow.match_), output_port(flow))
            {
                let hash = hosts.hash(&src);
                hosts.learn(src, hash, in_port).declare(Flow {
                    in_port,
                    dst,
                    out_port,
                    key: entry.key.clone(),
                });
            }
            ctx.install(dpid, entry);
        }
    }
}

/// Where a packet for `dst` arriving on `in_port` goes.
fn forward(hosts: &HostTable, in_port: u32, dst: MacAddr, dst_hash: HostHash) -> Forward {
    if dst.is_multicast() {
        return Forward::Flood;
    }
    match hosts.get(&dst, dst_hash) {
        Some(host) if host.port == in_port => Forward::Drop,
        Some(host) => Forward::Port(host.port),
        None => Forward::Flood,
    }
}

/// What a packet-in carries, its MACs hashed (and their entries
/// prefetched, with `prefetch`) in `hosts`.
fn seen(hosts: &HostTable, packet_in: &PacketIn, prefetch: bool) -> Option<Seen> {
    let in_port = packet_in.in_port()?;
    let (dst, src) = (mac_at(&packet_in.data, 0)?, mac_at(&packet_in.data, 6)?);
    let hash = |mac: &MacAddr| {
        if prefetch {
            hosts.prefetch(mac)
        } else {
            hosts.hash(mac)
        }
    };
    Some(Seen {
        in_port,
        src,
        dst,
        src_hash: hash(&src),
        dst_hash: hash(&dst),
    })
}

fn pair_entry(
    config: &L2SingleConfig,
    in_port: u32,
    src: MacAddr,
    dst: MacAddr,
    out_port: u32,
) -> FlowEntry {
    let key = Match::new()
        .with(Oxm::InPort(in_port))
        .with(Oxm::EthSrc(src, None))
        .with(Oxm::EthDst(dst, None));
    let spec = FlowSpec::new(
        Owner::Forwarding.cookie(mac_object(dst)),
        output_to(out_port),
    )
    .idle_timeout(config.idle_timeout)
    .notify_removal();
    FlowEntry::new(0, PAIR_PRIORITY, key, spec)
}

impl Module for L2Single {
    fn owner(&self) -> Owner {
        Owner::Forwarding
    }

    fn supports(&self, version: u8) -> bool {
        version == OFP_VERSION_1_0
    }

    /// Starts every packet's host lookups before making the first: a run's
    /// misses then overlap, where thousands of hosts outgrow the cache.
    fn handle_packet_ins(&mut self, dpid: u64, batch: PacketIns<'_>, ctx: &mut Ctx) {
        let L2Single {
            config,
            switches,
            run,
        } = self;
        let hosts = switches.entry(dpid).or_default();
        run.clear();
        run.extend(batch.iter().map(|p| seen(hosts, p, true)));
        for (packet_in, seen) in batch.iter().zip(run.iter()) {
            if let Some(seen) = seen {
                Self::answer(config, hosts, dpid, packet_in, *seen, ctx);
            }
        }
    }

    fn handle(&mut self, event: &Event<'_>, ctx: &mut Ctx) {
        match event {
            Event::SwitchUp {
                dpid, installed, ..
            } => self.switch_up(*dpid, installed, ctx),
            Event::SwitchDown { dpid } => {
                self.switches.remove(dpid);
            }
            Event::PacketIn { dpid, packet_in } => {
                let hosts = self.switches.entry(*dpid).or_default();
                if let Some(seen) = seen(hosts, packet_in, false) {
                    Self::answer(&self.config, hosts, *dpid, packet_in, seen, ctx);
                }
            }
            Event::PortStatus { dpid, status } => self.port_status(*dpid, status),
            Event::FlowRemoved { dpid, removed } => self.flow_removed(*dpid, removed),
            Event::Tick
            | Event::Notice { .. }
            | Event::Rejected { .. }
            | Event::Task { .. }
            | Event::Bus { .. } => {}
        }
    }
}

/// The (in_port, source, destination) a learned flow matches.
fn pair_of(m: &Match) -> Option<(u32, MacAddr, MacAddr)> {
    let (mut in_port, mut src, mut dst) = (None, None, None);
    for field in m.fields.iter() {
        match field {
            Oxm::InPort(port) => in_port = Some(*port),
            Oxm::EthSrc(mac, None) => src = Some(*mac),
            Oxm::EthDst(mac, None) => dst = Some(*mac),
            _ => return None,
        }
    }
    Some((in_port?, src?, dst?))
}

fn output_port(flow: &FlowStats) -> Option<u32> {
    match flow.instructions.as_slice() {
        [Instruction::ApplyActions(actions)] => match actions.as_slice() {
            [Action::Output { port, .. }] => Some(*port),
            _ => None,
        },
        _ => None,
    }
}

fn mac_at(frame: &[u8], at: usize) -> Option<MacAddr> {
    Some(MacAddr(frame.get(at..at + 6)?.try_into().ok()?))
}

fn mac_object(mac: MacAddr) -> u64 {
    mac.0.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

mod hosts;
#[cfg(test)]
mod tests;
