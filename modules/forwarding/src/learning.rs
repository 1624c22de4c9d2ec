//! The L2 learning module; see the crate docs for the table layout.

use std::collections::HashMap;

use flowgate_controller::cookie::Owner;
use flowgate_controller::desired::{output_to, FlowEntry, FlowKey, FlowSpec};
use flowgate_controller::module::{Ctx, Event, Module, PacketIns, Scope};
use flowgate_controller::pipeline::{FLOOD, FORWARD, LEARN, MODULE_MISS_PRIORITY};
use flowgate_openflow::{
    port_no, Action, FlowStats, Instruction, MacAddr, Match, Oxm, PacketIn, PortReason, PortStatus,
    NO_BUFFER,
};
use hosts::{HostHash, HostTable, Learned};

use crate::miss::awaits_us;

/// Priority of learned host entries.
const HOST_PRIORITY: u16 = 100;
/// Bytes of a packet sent to the controller: the Ethernet header is enough.
const LEARN_MAX_LEN: u16 = 64;
/// Cookie objects of the two miss entries (host entries use the MAC, whose
/// 48 bits never collide with these because they are multicast addresses).
const LEARN_MISS_OBJECT: u64 = 0x0100_0000_0001;
const FLOOD_MISS_OBJECT: u64 = 0x0100_0000_0002;
/// The two miss entries, declared when a switch comes up.
const MISSES: Scope = Scope::new("misses", 0);

#[derive(Debug, Clone)]
pub struct L2LearningConfig {
    /// Seconds a learned host's entries live without traffic.
    pub idle_timeout: u16,
}

impl Default for L2LearningConfig {
    fn default() -> Self {
        L2LearningConfig { idle_timeout: 300 }
    }
}

/// Per-switch MAC learning.
#[derive(Debug, Default)]
pub struct L2Learning {
    config: L2LearningConfig,
    /// dpid → the switch's host table.
    macs: HashMap<u64, HostTable, foldhash::quality::RandomState>,
    /// The sources of the packet-in run being handled, one per packet-in,
    /// with their hashes (a buffer every run reuses).
    run: Vec<Option<Source>>,
}

/// Where a packet-in's packet came from: its ingress port and source MAC,
/// hashed for the switch's host table; and whether the switch holds the
/// packet for us ([`awaits_us`]), in which buffer.
#[derive(Debug, Clone, Copy)]
struct Source {
    in_port: u32,
    mac: MacAddr,
    hash: HostHash,
    awaits: bool,
    buffer_id: u32,
}

impl Source {
    /// The source of `packet_in`, hashed in `table` (and its entry
    /// prefetched, with `prefetch`).
    fn of(table: &HostTable, packet_in: &PacketIn, prefetch: bool) -> Option<Source> {
        let (in_port, mac) = source(packet_in)?;
        let hash = if prefetch {
            table.prefetch(&mac)
        } else {
            table.hash(&mac)
        };
        Some(Source {
            in_port,
            mac,
            hash,
            awaits: awaits_us(packet_in),
            buffer_id: packet_in.buffer_id,
        })
    }
}

impl L2Learning {
    pub fn new(config: L2LearningConfig) -> Self {
        L2Learning {
            config,
            macs: HashMap::default(),
            run: Vec::new(),
        }
    }

    /// Where `mac` was learned on `dpid`.
    pub fn port_of(&self, dpid: u64, mac: MacAddr) -> Option<u32> {
        self.macs.get(&dpid)?.get(&mac).map(|l| l.port)
    }

    fn switch_up(&mut self, dpid: u64, installed: &[FlowStats], ctx: &mut Ctx) {
        let to_controller_and_on = vec![
            Instruction::ApplyActions(vec![Action::Output {
                port: port_no::CONTROLLER,
                max_len: LEARN_MAX_LEN,
            }]),
            Instruction::GotoTable(FORWARD),
        ];
        ctx.declare_flows(
            dpid,
            MISSES,
            [
                miss_entry(LEARN, LEARN_MISS_OBJECT, to_controller_and_on),
                miss_entry(FLOOD, FLOOD_MISS_OBJECT, output_to(port_no::FLOOD)),
            ],
        );
        let table = self.macs.entry(dpid).or_default();
        table.clear();
        // Adopt host entries that survived a controller restart: declaring
        // them exactly as installed leaves them (and their counters) alone.
        let adopted = installed.iter().filter(|f| {
            f.priority == HOST_PRIORITY
                && f.idle_timeout != 0
                && (f.table_id == FORWARD || f.table_id == LEARN)
        });
        for flow in adopted.clone().filter(|f| f.table_id == FORWARD) {
            if let (Some(mac), Some(port)) = (eth_dst(&flow.match_), output_port(flow)) {
                let learn = learn_key(mac, port);
                table.insert(mac, Learned { port, learn });
            }
        }
        for flow in adopted {
            let mut entry = FlowEntry::from_stats(flow);
            // A source entry is declared with the very key the host table
            // keeps: re-sends name it by that key's id.
            let learned = eth_src_field(&flow.match_).and_then(|mac| table.get(&mac));
            if let Some(known) = learned.filter(|l| l.learn == entry.key) {
                entry.key = known.learn.clone();
            }
            ctx.install(dpid, entry);
        }
    }

    /// Learns from a packet of `dpid`, whose hosts are `table`; true if a
    /// FLOW_MOD released the packet the switch holds.
    fn learn(
        config: &L2LearningConfig,
        table: &mut HostTable,
        dpid: u64,
        source: Source,
        ctx: &mut Ctx,
    ) -> bool {
        let Source {
            in_port,
            mac: src,
            hash,
            ..
        } = source;
        match table.get_hashed(&src, hash) {
            // A table miss elsewhere says nothing of the source entry: the
            // packet never reached the learn table.
            Some(known) if known.port == in_port && source.awaits => return false,
            // Already learned here, yet the learn table missed: the switch
            // lacks the source entry (or the packet raced its flow-mod).
            // Re-send it; the forward entry is not in question.
            Some(known) if known.port == in_port => {
                ctx.resend(dpid, &known.learn);
                return false;
            }
            // The host moved: its old source entry must stop matching.
            Some(known) => ctx.remove(dpid, known.learn.clone()),
            None => {}
        }
        let spec = |instructions| {
            FlowSpec::new(Owner::Forwarding.cookie(mac_object(src)), instructions)
                .idle_timeout(config.idle_timeout)
                .notify_removal()
        };
        let learn = FlowEntry {
            key: learn_key(src, in_port),
            spec: spec(vec![Instruction::GotoTable(FORWARD)]),
        };
        table.insert(
            src,
            Learned {
                port: in_port,
                learn: learn.key.clone(),
            },
        );
        ctx.install(
            dpid,
            FlowEntry {
                key: forward_key(src),
                spec: spec(output_to(in_port)),
            },
        );
        if source.awaits && source.buffer_id != NO_BUFFER {
            // Sent after the forward entry, so the released packet meets both.
            ctx.reassert_releasing(dpid, learn, source.buffer_id);
            true
        } else {
            ctx.install(dpid, learn);
            false
        }
    }

    /// Learns from one packet-in and, if the switch holds its packet and
    /// no FLOW_MOD released it, sends it through the switch's tables
    /// again, which now know its source.
    fn answer(
        config: &L2LearningConfig,
        table: &mut HostTable,
        dpid: u64,
        packet_in: &PacketIn,
        source: Option<Source>,
        ctx: &mut Ctx,
    ) {
        let released = source.is_some_and(|s| Self::learn(config, table, dpid, s, ctx));
        if awaits_us(packet_in) && !released {
            let in_port = packet_in.match_.in_port().unwrap_or(port_no::CONTROLLER);
            ctx.resubmit(dpid, packet_in, in_port);
        }
    }

    /// Forgets `mac` on `dpid` and removes both of its entries.
    fn forget(&mut self, dpid: u64, mac: MacAddr, ctx: &mut Ctx) {
        if let Some(known) = self.macs.get_mut(&dpid).and_then(|t| t.remove(&mac)) {
            ctx.remove(dpid, known.learn);
            ctx.remove(dpid, forward_key(mac));
        }
    }

    fn port_status(&mut self, dpid: u64, status: &PortStatus, ctx: &mut Ctx) {
        let down = status.reason == PortReason::Delete
            || status.desc.state & flowgate_openflow::port_state::LINK_DOWN != 0;
        if !down {
            return;
        }
        let gone: Vec<MacAddr> = self
            .macs
            .get(&dpid)
            .map(|t| {
                t.iter()
                    .filter(|(_, l)| l.port == status.desc.port_no)
                    .map(|(m, _)| *m)
                    .collect()
            })
            .unwrap_or_default();
        for mac in gone {
            self.forget(dpid, mac, ctx);
        }
    }
}

impl Module for L2Learning {
    fn owner(&self) -> Owner {
        Owner::Forwarding
    }

    /// Starts every packet's host lookup before making the first: a run's
    /// misses then overlap, where thousands of hosts outgrow the cache.
    fn handle_packet_ins(&mut self, dpid: u64, batch: PacketIns<'_>, ctx: &mut Ctx) {
        let L2Learning { config, macs, run } = self;
        let table = macs.entry(dpid).or_default();
        run.clear();
        run.extend(batch.iter().map(|p| Source::of(table, p, true)));
        for (packet_in, source) in batch.iter().zip(run.iter()) {
            Self::answer(config, table, dpid, packet_in, *source, ctx);
        }
    }

    fn handle(&mut self, event: &Event<'_>, ctx: &mut Ctx) {
        match event {
            Event::SwitchUp {
                dpid, installed, ..
            } => self.switch_up(*dpid, installed, ctx),
            Event::SwitchDown { dpid } => {
                self.macs.remove(dpid);
            }
            Event::PacketIn { dpid, packet_in } => {
                let table = self.macs.entry(*dpid).or_default();
                let source = Source::of(table, packet_in, false);
                Self::answer(&self.config, table, *dpid, packet_in, source, ctx);
            }
            Event::FlowRemoved { dpid, removed } => {
                let mac = eth_src_field(&removed.match_).or_else(|| eth_dst(&removed.match_));
                if let Some(mac) = mac {
                    self.forget(*dpid, mac, ctx);
                }
            }
            Event::PortStatus { dpid, status } => self.port_status(*dpid, status, ctx),
            Event::Tick
            | Event::Notice { .. }
            | Event::Rejected { .. }
            | Event::Task { .. }
            | Event::Bus { .. } => {}
        }
    }
}

fn miss_entry(table: u8, object: u64, instructions: Vec<Instruction>) -> FlowEntry {
    FlowEntry::new(
        table,
        MODULE_MISS_PRIORITY,
        Match::default(),
        FlowSpec::new(Owner::Forwarding.cookie(object), instructions),
    )
}

fn learn_key(mac: MacAddr, port: u32) -> FlowKey {
    FlowKey::new(
        LEARN,
        HOST_PRIORITY,
        Match::new()
            .with(Oxm::InPort(port))
            .with(Oxm::EthSrc(mac, None)),
    )
}

fn forward_key(mac: MacAddr) -> FlowKey {
    FlowKey::new(
        FORWARD,
        HOST_PRIORITY,
        Match::new().with(Oxm::EthDst(mac, None)),
    )
}

fn mac_object(mac: MacAddr) -> u64 {
    mac.0.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// The ingress port and source MAC of a packet to learn from: not a
/// multicast or zero source.
fn source(packet_in: &PacketIn) -> Option<(u32, MacAddr)> {
    let src = eth_src(&packet_in.data).filter(|m| !m.is_multicast() && *m != MacAddr::ZERO)?;
    Some((packet_in.match_.in_port()?, src))
}

fn eth_src(frame: &[u8]) -> Option<MacAddr> {
    let bytes: [u8; 6] = frame.get(6..12)?.try_into().ok()?;
    Some(MacAddr(bytes))
}

fn eth_dst(m: &Match) -> Option<MacAddr> {
    m.fields.iter().find_map(|f| match f {
        Oxm::EthDst(mac, None) => Some(*mac),
        _ => None,
    })
}

fn eth_src_field(m: &Match) -> Option<MacAddr> {
    m.fields.iter().find_map(|f| match f {
        Oxm::EthSrc(mac, None) => Some(*mac),
        _ => None,
    })
}

fn output_port(flow: &FlowStats) -> Option<u32> {
    flow.instructions.iter().find_map(|i| match i {
        Instruction::ApplyActions(actions) => actions.iter().find_map(|a| match a {
            Action::Output { port, .. } => Some(*port),
            _ => None,
        }),
        _ => None,
    })
}

mod hosts;
#[cfg(test)]
mod tests;
