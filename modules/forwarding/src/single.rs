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
use flowgate_controller::desired::{output_to, FlowEntry, FlowKey, FlowSpec};
use flowgate_controller::module::{Ctx, Event, Module};
use flowgate_openflow::{
    port_no, Action, FlowRemoved, FlowStats, Instruction, MacAddr, Match, Oxm, PacketIn,
    PortReason, PortStatus, NO_BUFFER, OFP_VERSION_1_0,
};

use crate::miss;

/// Priority of the learned (in_port, source, destination) entries.
const PAIR_PRIORITY: u16 = 100;

type FastMap<K, V> = HashMap<K, V, foldhash::quality::RandomState>;

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
    switches: FastMap<u64, Switch>,
}

/// What the module knows of one switch.
#[derive(Debug, Default)]
struct Switch {
    /// Host MAC → port it was learned on.
    ports: FastMap<MacAddr, u32>,
    /// The flows declared for (in_port, source, destination), by the very
    /// key they were declared with: a re-send names the entry by that key.
    flows: FastMap<Pair, Declared>,
}

/// The match of a learned flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Pair {
    in_port: u32,
    src: MacAddr,
    dst: MacAddr,
}

#[derive(Debug)]
struct Declared {
    key: FlowKey,
    out_port: u32,
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
            switches: FastMap::default(),
        }
    }

    /// Where `mac` was learned on `dpid`.
    pub fn port_of(&self, dpid: u64, mac: MacAddr) -> Option<u32> {
        self.switches.get(&dpid)?.ports.get(&mac).copied()
    }

    fn packet_in(&mut self, dpid: u64, packet_in: &PacketIn, ctx: &mut Ctx) {
        let Some(in_port) = packet_in.in_port() else {
            return;
        };
        let (Some(dst), Some(src)) = (mac_at(&packet_in.data, 0), mac_at(&packet_in.data, 6))
        else {
            return;
        };
        let switch = self.switches.entry(dpid).or_default();
        if !src.is_multicast() && src != MacAddr::ZERO {
            switch.ports.insert(src, in_port);
        }
        let out_port = match switch.forward(in_port, dst) {
            Forward::Drop => return,
            Forward::Flood => port_no::FLOOD,
            Forward::Port(port) => {
                let pair = Pair { in_port, src, dst };
                switch.install(&self.config, dpid, pair, port, packet_in.buffer_id, ctx);
                if packet_in.buffer_id != NO_BUFFER {
                    // The FLOW_MOD releases the packet: nothing more to send.
                    return;
                }
                port
            }
        };
        let output = Action::Output {
            port: out_port,
            max_len: 0,
        };
        ctx.packet_out(dpid, miss::release(packet_in, in_port, vec![output]));
    }

    fn flow_removed(&mut self, dpid: u64, removed: &FlowRemoved) {
        if let (Some(switch), Some(pair)) = (self.switches.get_mut(&dpid), pair_of(&removed.match_))
        {
            switch.flows.remove(&pair);
        }
    }

    fn port_status(&mut self, dpid: u64, status: &PortStatus) {
        let down = status.reason == PortReason::Delete
            || status.desc.state & flowgate_openflow::port_state::LINK_DOWN != 0;
        if let (true, Some(switch)) = (down, self.switches.get_mut(&dpid)) {
            switch.ports.retain(|_, port| *port != status.desc.port_no);
        }
    }

    /// Keeps learned flows that survived a controller restart.
    fn switch_up(&mut self, dpid: u64, installed: &[FlowStats], ctx: &mut Ctx) {
        let switch = self.switches.entry(dpid).or_default();
        *switch = Switch::default();
        for flow in installed.iter().filter(|f| f.priority == PAIR_PRIORITY) {
            let entry = FlowEntry::from_stats(flow);
            if let (Some(pair), Some(out_port)) = (pair_of(&flow.match_), output_port(flow)) {
                let key = entry.key.clone();
                switch.flows.insert(pair, Declared { key, out_port });
            }
            ctx.install(dpid, entry);
        }
    }
}

impl Switch {
    fn forward(&self, in_port: u32, dst: MacAddr) -> Forward {
        if dst.is_multicast() {
            return Forward::Flood;
        }
        match self.ports.get(&dst) {
            Some(port) if *port == in_port => Forward::Drop,
            Some(port) => Forward::Port(*port),
            None => Forward::Flood,
        }
    }

    /// Sends the flow of `pair` towards `out_port`, releasing `buffer_id`:
    /// a miss for a flow we declared means the switch lacks it, so it is
    /// re-sent as it is, or declared anew if it is new or its port changed.
    fn install(
        &mut self,
        config: &L2SingleConfig,
        dpid: u64,
        pair: Pair,
        out_port: u32,
        buffer_id: u32,
        ctx: &mut Ctx,
    ) {
        match self.flows.get(&pair) {
            Some(declared) if declared.out_port == out_port => {
                ctx.resend_releasing(dpid, &declared.key, buffer_id)
            }
            _ => {
                let entry = pair_entry(config, pair, out_port);
                let key = entry.key.clone();
                self.flows.insert(pair, Declared { key, out_port });
                ctx.reassert_releasing(dpid, entry, buffer_id);
            }
        }
    }
}

fn pair_entry(config: &L2SingleConfig, pair: Pair, out_port: u32) -> FlowEntry {
    let key = Match::new()
        .with(Oxm::InPort(pair.in_port))
        .with(Oxm::EthSrc(pair.src, None))
        .with(Oxm::EthDst(pair.dst, None));
    let spec = FlowSpec::new(
        Owner::Forwarding.cookie(mac_object(pair.dst)),
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

    fn handle(&mut self, event: &Event<'_>, ctx: &mut Ctx) {
        match event {
            Event::SwitchUp {
                dpid, installed, ..
            } => self.switch_up(*dpid, installed, ctx),
            Event::SwitchDown { dpid } => {
                self.switches.remove(dpid);
            }
            Event::PacketIn { dpid, packet_in } => self.packet_in(*dpid, packet_in, ctx),
            Event::PortStatus { dpid, status } => self.port_status(*dpid, status),
            Event::FlowRemoved { dpid, removed } => self.flow_removed(*dpid, removed),
            Event::Tick | Event::Notice { .. } => {}
        }
    }
}

/// The (in_port, source, destination) a learned flow matches.
fn pair_of(m: &Match) -> Option<Pair> {
    let (mut in_port, mut src, mut dst) = (None, None, None);
    for field in m.fields.iter() {
        match field {
            Oxm::InPort(port) => in_port = Some(*port),
            Oxm::EthSrc(mac, None) => src = Some(*mac),
            Oxm::EthDst(mac, None) => dst = Some(*mac),
            _ => return None,
        }
    }
    Some(Pair {
        in_port: in_port?,
        src: src?,
        dst: dst?,
    })
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

#[cfg(test)]
mod tests;
