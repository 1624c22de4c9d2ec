//! Learning switch for OpenFlow 1.0 switches: one table, reactive, the way
//! 1.0 controllers always did it (and what the cbench tool expects).
//!
//! A 1.0 switch sends every table miss to the controller. For each one the
//! module learns the source's port; if the destination is known it installs
//! a flow for this (in_port, source, destination) and sends the packet on,
//! else it floods the packet. Every packet-in is answered with a
//! PACKET_OUT (releasing the switch's buffer when it kept one), so a
//! switch never waits. Flows idle out and report their removal.

use std::collections::HashMap;

use bytes::Bytes;
use flowgate_controller::cookie::Owner;
use flowgate_controller::desired::{output_to, FlowEntry, FlowSpec};
use flowgate_controller::module::{Ctx, Event, Module};
use flowgate_openflow::{
    port_no, Action, MacAddr, Match, Oxm, PacketIn, PacketOut, PortReason, PortStatus, NO_BUFFER,
    OFP_VERSION_1_0,
};

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
    /// dpid → host MAC → port it was learned on.
    macs: HashMap<u64, HashMap<MacAddr, u32>>,
}

impl L2Single {
    pub fn new(config: L2SingleConfig) -> Self {
        L2Single {
            config,
            macs: HashMap::new(),
        }
    }

    /// Where `mac` was learned on `dpid`.
    pub fn port_of(&self, dpid: u64, mac: MacAddr) -> Option<u32> {
        self.macs.get(&dpid)?.get(&mac).copied()
    }

    fn packet_in(&mut self, dpid: u64, packet_in: &PacketIn, ctx: &mut Ctx) {
        let Some(in_port) = packet_in.in_port() else {
            return;
        };
        let (Some(dst), Some(src)) = (mac_at(&packet_in.data, 0), mac_at(&packet_in.data, 6))
        else {
            return;
        };
        let table = self.macs.entry(dpid).or_default();
        if !src.is_multicast() && src != MacAddr::ZERO {
            table.insert(src, in_port);
        }
        let out_port = match table.get(&dst) {
            _ if dst.is_multicast() => port_no::FLOOD,
            // Both ends behind the same port: not ours to forward.
            Some(port) if *port == in_port => return,
            Some(port) => {
                let key = Match::new()
                    .with(Oxm::InPort(in_port))
                    .with(Oxm::EthSrc(src, None))
                    .with(Oxm::EthDst(dst, None));
                let spec =
                    FlowSpec::new(Owner::Forwarding.cookie(mac_object(dst)), output_to(*port))
                        .idle_timeout(self.config.idle_timeout)
                        .notify_removal();
                // A miss for a flow we installed means the switch lacks it.
                ctx.reassert(dpid, FlowEntry::new(0, PAIR_PRIORITY, key, spec));
                *port
            }
            None => port_no::FLOOD,
        };
        let actions = vec![Action::Output {
            port: out_port,
            max_len: 0,
        }];
        let packet_out = if packet_in.buffer_id == NO_BUFFER {
            PacketOut {
                buffer_id: NO_BUFFER,
                in_port,
                actions,
                data: packet_in.data.clone(),
            }
        } else {
            // The switch still holds the packet: release it through the actions.
            PacketOut {
                buffer_id: packet_in.buffer_id,
                in_port,
                actions,
                data: Bytes::new(),
            }
        };
        ctx.packet_out(dpid, packet_out);
    }

    fn port_status(&mut self, dpid: u64, status: &PortStatus) {
        let down = status.reason == PortReason::Delete
            || status.desc.state & flowgate_openflow::port_state::LINK_DOWN != 0;
        if let (true, Some(table)) = (down, self.macs.get_mut(&dpid)) {
            table.retain(|_, port| *port != status.desc.port_no);
        }
    }
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
            } => {
                self.macs.insert(*dpid, HashMap::new());
                // Keep learned flows that survived a controller restart.
                for flow in installed.iter().filter(|f| f.priority == PAIR_PRIORITY) {
                    ctx.install(*dpid, FlowEntry::from_stats(flow));
                }
            }
            Event::SwitchDown { dpid } => {
                self.macs.remove(dpid);
            }
            Event::PacketIn { dpid, packet_in } => self.packet_in(*dpid, packet_in, ctx),
            Event::PortStatus { dpid, status } => self.port_status(*dpid, status),
            Event::FlowRemoved { .. }
            | Event::Tick
            | Event::Notice { .. }
            | Event::Rejected { .. }
            | Event::Task { .. }
            | Event::Bus { .. } => {}
        }
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
