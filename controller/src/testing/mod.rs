//! A fake switch for module tests: it holds flow, group and meter tables
//! built from a module's changes (or from the OpenFlow messages the core
//! sends) and answers "where does this packet go?" by walking the pipeline
//! the way an OpenFlow 1.3 switch does. No sockets, no OVS.
//!
//! It enforces the pipeline contract ([`pipeline::check`]): a module's
//! change that breaks it panics in [`FakeSwitch::apply`], and a flow-mod
//! that breaks it is refused by [`FakeSwitch::handle_message`] with an
//! OpenFlow error, as a real switch refuses what it cannot take.
//!
//! Groups behave as on Open vSwitch: `all` runs every bucket, `select`
//! one bucket chosen by a hash of the packet's 5-tuple weighted by bucket
//! weight, `indirect` its bucket, `ff` the first live one. Meters are
//! recorded in the trace. `ct` actions go through a small connection
//! tracker ([`conntrack`], with NAT). Groups count the packets each bucket
//! took and flows the packets they matched, as a switch's stats do.
//!
//! [`wire`] puts a fake switch behind a real OpenFlow connection, for
//! tests of a module together with the runtime and its REST API.

mod conntrack;
pub mod wire;

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::BuildHasher;

use bytes::BytesMut;
use flowgate_openflow::wire::Wire;
use flowgate_openflow::{
    ct_mark_match, ct_zone_match, error_type, port_no, Action, BucketCounter, FlowModCommand,
    FlowStats, GroupModCommand, GroupStats, GroupType, Instruction, Message, MeterModCommand,
    NxAction, Oxm,
};

use crate::cookie::{self, Owner};
use crate::declare::Declarations;
use crate::desired::{FlowEntry, FlowKey, FlowSpec, GroupSpec, MeterSpec};
use crate::module::Change;
use crate::pipeline;

pub use conntrack::Tracker;

/// A packet as the set of header fields a match can look at (exact values).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Packet {
    pub fields: Vec<Oxm>,
}

impl Packet {
    pub fn new(fields: Vec<Oxm>) -> Self {
        Packet { fields }
    }

    /// The value of a field, if the packet has it.
    pub fn get(&self, class: u16, field: u8) -> Option<&Oxm> {
        self.fields
            .iter()
            .find(|f| (f.class(), f.field()) == (class, field))
    }

    fn set(&mut self, field: Oxm) {
        self.fields
            .retain(|f| (f.class(), f.field()) != (field.class(), field.field()));
        self.fields.push(field);
    }
}

/// What the switch did with a packet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    /// Ports the packet was output to (reserved ports as their numbers).
    pub outputs: Vec<u32>,
    /// Tables visited, in order.
    pub tables: Vec<u8>,
    /// Cookies of the entries that matched, in order.
    pub cookies: Vec<u64>,
    /// Each output with the packet's fields at that moment (after any
    /// set-field), e.g. to check the `tun_id` a tunnel output carries.
    pub emitted: Vec<(u32, Packet)>,
    /// Meters the packet went through, in order.
    pub meters: Vec<u32>,
    /// Groups the packet went through, with the bucket index each chose.
    pub buckets: Vec<(u32, usize)>,
}

impl Trace {
    pub fn to_controller(&self) -> bool {
        self.outputs.contains(&port_no::CONTROLLER)
    }

    pub fn dropped(&self) -> bool {
        self.outputs.is_empty()
    }
}

/// Most recirculations (`ct(table=..)`) one packet may go through.
const MAX_RECIRCULATIONS: usize = 8;

/// One switch's tables, fed with module changes or OpenFlow messages.
#[derive(Debug, Clone, Default)]
pub struct FakeSwitch {
    pub dpid: u64,
    pub flows: HashMap<FlowKey, FlowSpec>,
    pub groups: HashMap<u32, GroupSpec>,
    pub meters: HashMap<u32, MeterSpec>,
    /// Ports whose link is down (fast-failover buckets watching them are
    /// not live).
    pub down_ports: Vec<u32>,
    /// Entries the switch lost (see [`FakeSwitch::lose`]) that the runtime
    /// still holds as desired, so [`Change::ResendFlow`] can restore them.
    lost: HashMap<FlowKey, FlowSpec>,
    /// What each scope declared, as the core keeps it (by scope alone: a
    /// fake switch is fed by one module at a time).
    declared: Declarations,
    tracker: Tracker,
    /// Packets each bucket of each group took.
    bucket_hits: RefCell<HashMap<u32, Vec<u64>>>,
    /// Packets each flow entry matched.
    flow_hits: RefCell<HashMap<FlowKey, u64>>,
}

/// What a switch reports in flow stats for `entry` once it is installed
/// (and has seen some traffic).
pub fn reported_stats(entry: &FlowEntry) -> FlowStats {
    let fm = entry.to_flow_mod(FlowModCommand::Add);
    FlowStats {
        table_id: fm.table_id,
        duration_sec: 60,
        duration_nsec: 0,
        priority: fm.priority,
        idle_timeout: fm.idle_timeout,
        hard_timeout: fm.hard_timeout,
        flags: fm.flags,
        cookie: fm.cookie,
        packet_count: 1,
        byte_count: 64,
        match_: fm.match_,
        instructions: fm.instructions,
    }
}

/// An OpenFlow error a switch answers with: (type, code).
pub type OfError = (u16, u16);

impl FakeSwitch {
    /// A switch with the pipeline's core miss entries installed.
    pub fn new(dpid: u64) -> Self {
        let mut switch = FakeSwitch {
            dpid,
            ..Default::default()
        };
        for entry in pipeline::core_entries() {
            switch.install(entry);
        }
        switch
    }

    pub fn install(&mut self, entry: FlowEntry) {
        self.lost.remove(&entry.key);
        self.flows.insert(entry.key, entry.spec);
    }

    /// The switch drops the entry at `key` on its own (as after a failed
    /// flow-mod or a switch-side delete); desired state still has it.
    pub fn lose(&mut self, key: &FlowKey) -> bool {
        match self.flows.remove_entry(key) {
            Some((key, spec)) => {
                self.lost.insert(key, spec);
                true
            }
            None => false,
        }
    }

    /// Applies a module's changes addressed to this switch, as the core
    /// would: declarations replace their scope, reactive entries install
    /// and go, re-sends restore lost entries. Returns what the switch saw,
    /// as the reactive changes that would have had the same effect: an
    /// `InstallFlow` per new or changed entry, a `RemoveFlow` per deleted
    /// one (what the core would have sent; unchanged entries are not).
    ///
    /// # Panics
    /// On an entry that breaks the pipeline contract: the module is wrong.
    pub fn apply(&mut self, changes: &[Change]) -> Vec<Change> {
        let mut seen = Vec::new();
        for change in changes {
            match change {
                Change::Declare {
                    dpid,
                    scope,
                    desired,
                } if *dpid == self.dpid => {
                    for entry in &desired.flows {
                        assert_contract(entry);
                    }
                    let delta = self.declared.declare(Owner::Core, *scope, desired.clone());
                    self.apply_delta(delta, &mut seen);
                }
                Change::Settle { dpid } if *dpid == self.dpid => {
                    let delta = self.declared.settle(Owner::Core);
                    self.apply_delta(delta, &mut seen);
                }
                Change::InstallFlow { dpid, entry } if *dpid == self.dpid => {
                    assert_contract(entry);
                    self.put(entry.clone(), &mut seen);
                }
                Change::RemoveFlow { dpid, key } if *dpid == self.dpid => {
                    self.lost.remove(key);
                    self.take(key, &mut seen);
                }
                Change::ResendFlow { dpid, id, .. } if *dpid == self.dpid => {
                    let lost = self.lost.keys().find(|k| k.id() == *id).cloned();
                    if let Some((key, spec)) = lost.and_then(|k| self.lost.remove_entry(&k)) {
                        self.flows.insert(key, spec);
                    }
                }
                _ => {}
            }
        }
        seen
    }

    /// What a connecting switch had, adopted as the core adopts it for a
    /// module with [`crate::module::Adoption::Keep`]: installed, and held
    /// until the module settles the switch.
    pub fn adopt(&mut self, installed: &[FlowStats]) {
        let entries: Vec<FlowEntry> = installed.iter().map(FlowEntry::from_stats).collect();
        self.declared
            .adopt(Owner::Core, entries.iter().map(|e| e.key.clone()), [], []);
        for entry in entries {
            self.install(entry);
        }
    }

    fn apply_delta(&mut self, delta: crate::declare::Delta, seen: &mut Vec<Change>) {
        for key in &delta.dropped_flows {
            self.lost.remove(key);
            self.take(key, seen);
        }
        for id in delta.dropped_groups {
            self.groups.remove(&id);
        }
        for id in delta.dropped_meters {
            self.meters.remove(&id);
        }
        for entry in delta.flows {
            self.put(entry, seen);
        }
        for g in delta.groups {
            self.groups.insert(g.id, g.spec);
        }
        for m in delta.meters {
            self.meters.insert(m.id, m.spec);
        }
    }

    /// Installs `entry`, noting it in `seen` if the switch did not have it.
    fn put(&mut self, entry: FlowEntry, seen: &mut Vec<Change>) {
        if self.flows.get(&entry.key) != Some(&entry.spec) {
            seen.push(Change::InstallFlow {
                dpid: self.dpid,
                entry: entry.clone(),
            });
        }
        self.install(entry);
    }

    fn take(&mut self, key: &FlowKey, seen: &mut Vec<Change>) {
        if self.flows.remove(key).is_some() {
            seen.push(Change::RemoveFlow {
                dpid: self.dpid,
                key: key.clone(),
            });
        }
    }

    /// Executes a message as a switch would; `Err` is the OpenFlow error it
    /// answers with (nothing changed). Only what the core sends to program
    /// a switch is understood: flow-mods, group-mods and meter-mods.
    pub fn handle_message(&mut self, message: &Message) -> Result<(), OfError> {
        match message {
            Message::FlowMod(fm) => self.flow_mod(fm),
            Message::GroupMod(gm) => {
                let exists = self.groups.contains_key(&gm.group_id);
                match gm.command {
                    GroupModCommand::Add if exists => Err((error_type::GROUP_MOD_FAILED, 0)),
                    GroupModCommand::Modify if !exists => Err((error_type::GROUP_MOD_FAILED, 8)),
                    GroupModCommand::Add | GroupModCommand::Modify => {
                        let spec = GroupSpec::new(gm.group_type, gm.buckets.clone());
                        self.groups.insert(gm.group_id, spec);
                        Ok(())
                    }
                    GroupModCommand::Delete => {
                        self.groups.remove(&gm.group_id);
                        // Open vSwitch deletes the flows that used the group.
                        let id = gm.group_id;
                        self.flows.retain(|_, spec| !uses_group(spec, id));
                        Ok(())
                    }
                    GroupModCommand::Unknown(_) => Err((error_type::GROUP_MOD_FAILED, 9)),
                }
            }
            Message::MeterMod(mm) => {
                let exists = self.meters.contains_key(&mm.meter_id);
                match mm.command {
                    MeterModCommand::Add if exists => Err((error_type::METER_MOD_FAILED, 1)),
                    MeterModCommand::Modify if !exists => Err((error_type::METER_MOD_FAILED, 7)),
                    MeterModCommand::Add | MeterModCommand::Modify => {
                        let spec = MeterSpec::new(mm.flags, mm.bands.clone());
                        self.meters.insert(mm.meter_id, spec);
                        Ok(())
                    }
                    MeterModCommand::Delete => {
                        self.meters.remove(&mm.meter_id);
                        let id = mm.meter_id;
                        self.flows.retain(|_, spec| !uses_meter(spec, id));
                        Ok(())
                    }
                    MeterModCommand::Unknown(_) => Err((error_type::METER_MOD_FAILED, 2)),
                }
            }
            _ => Ok(()),
        }
    }

    fn flow_mod(&mut self, fm: &flowgate_openflow::FlowMod) -> Result<(), OfError> {
        let entry = FlowEntry::new(
            fm.table_id,
            fm.priority,
            fm.match_.clone(),
            FlowSpec {
                cookie: fm.cookie,
                instructions: crate::desired::canonical_instructions(fm.instructions.clone()),
                idle_timeout: fm.idle_timeout,
                hard_timeout: fm.hard_timeout,
                flags: fm.flags,
            },
        );
        match fm.command {
            FlowModCommand::Add | FlowModCommand::ModifyStrict => {
                let owner = cookie::owner_of(fm.cookie).unwrap_or(Owner::Core);
                if pipeline::check(owner, &entry).is_err() {
                    return Err((error_type::BAD_MATCH, 0));
                }
                for instruction in &entry.spec.instructions {
                    if let Instruction::Meter(id) = instruction {
                        if !self.meters.contains_key(id) {
                            // OFPMMFC_UNKNOWN_METER
                            return Err((error_type::METER_MOD_FAILED, 2));
                        }
                    }
                }
                if fm.command == FlowModCommand::ModifyStrict {
                    if let Some(spec) = self.flows.get_mut(&entry.key) {
                        spec.instructions = entry.spec.instructions;
                        return Ok(());
                    }
                }
                self.install(entry);
                Ok(())
            }
            FlowModCommand::DeleteStrict => {
                let mask = fm.cookie_mask;
                if self
                    .flows
                    .get(&entry.key)
                    .is_some_and(|have| have.cookie & mask == fm.cookie & mask)
                {
                    self.flows.remove(&entry.key);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Runs a packet arriving on `in_port` through the pipeline.
    ///
    /// Pipeline fields a packet always has on a switch (`metadata`,
    /// `ct_state`, `ct_zone`, `ct_mark`) start at zero unless the packet
    /// sets them. `table=T` in a `ct` action continues a tracked copy in
    /// table T while the original goes on untracked, as Open vSwitch does.
    pub fn process(&self, in_port: u32, packet: &Packet) -> Trace {
        let mut packet = packet.clone();
        packet.set(Oxm::InPort(in_port));
        for zero in [
            Oxm::Metadata(0, None),
            conntrack::ct_state_value(0),
            ct_zone_match(0),
            ct_mark_match(0, None),
        ] {
            if packet.get(zero.class(), zero.field()).is_none() {
                packet.set(zero);
            }
        }
        let mut trace = Trace::default();
        self.walk(0, in_port, packet, &mut trace, 0);
        trace
    }

    /// The connection tracker the switch's `ct` actions use.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// Group statistics as the switch reports them: packets per bucket
    /// (bytes counted as 64 per packet), for every group it has.
    pub fn group_stats(&self) -> Vec<GroupStats> {
        let hits = self.bucket_hits.borrow();
        let mut out: Vec<GroupStats> = self
            .groups
            .iter()
            .map(|(id, group)| {
                let mut counts = hits.get(id).cloned().unwrap_or_default();
                counts.resize(group.buckets.len(), 0);
                let bucket_stats: Vec<BucketCounter> = counts
                    .iter()
                    .map(|n| BucketCounter {
                        packet_count: *n,
                        byte_count: n * 64,
                    })
                    .collect();
                GroupStats {
                    group_id: *id,
                    ref_count: 0,
                    packet_count: counts.iter().sum(),
                    byte_count: counts.iter().sum::<u64>() * 64,
                    duration_sec: 60,
                    duration_nsec: 0,
                    bucket_stats,
                }
            })
            .collect();
        out.sort_by_key(|g| g.group_id);
        out
    }

    /// Packets the entry at `key` matched so far.
    pub fn flow_packets(&self, key: &FlowKey) -> u64 {
        self.flow_hits.borrow().get(key).copied().unwrap_or(0)
    }

    /// Flow statistics as the switch reports them, counters included.
    pub fn flow_stats(&self) -> Vec<FlowStats> {
        self.flows
            .iter()
            .map(|(key, spec)| {
                let mut stats = reported_stats(&FlowEntry {
                    key: key.clone(),
                    spec: spec.clone(),
                });
                stats.packet_count = self.flow_packets(key);
                stats.byte_count = stats.packet_count * 64;
                stats
            })
            .collect()
    }

    fn walk(
        &self,
        mut table: u8,
        in_port: u32,
        mut packet: Packet,
        trace: &mut Trace,
        depth: usize,
    ) {
        loop {
            trace.tables.push(table);
            let Some((key, spec)) = self
                .flows
                .iter()
                .filter(|(k, _)| k.table_id == table && matches(k, &packet))
                .max_by_key(|(k, _)| k.priority)
            else {
                return;
            };
            *self.flow_hits.borrow_mut().entry(key.clone()).or_default() += 1;
            trace.cookies.push(spec.cookie);
            let mut next = None;
            for instruction in &spec.instructions {
                match instruction {
                    Instruction::Meter(id) => trace.meters.push(*id),
                    Instruction::ApplyActions(actions) | Instruction::WriteActions(actions) => {
                        self.run_actions(actions, in_port, &mut packet, trace, depth)
                    }
                    Instruction::GotoTable(t) => next = Some(*t),
                    Instruction::WriteMetadata { metadata, mask } => {
                        let old = match packet.get(0x8000, 2) {
                            Some(Oxm::Metadata(v, _)) => *v,
                            _ => 0,
                        };
                        packet.set(Oxm::Metadata((old & !mask) | (metadata & mask), None));
                    }
                    _ => {}
                }
            }
            match next {
                Some(t) => table = t,
                None => return,
            }
        }
    }

    fn run_actions(
        &self,
        actions: &[Action],
        in_port: u32,
        packet: &mut Packet,
        trace: &mut Trace,
        depth: usize,
    ) {
        for action in actions {
            match action {
                // Like a switch: output to the ingress port itself is
                // dropped unless it is asked for as IN_PORT (spec 7.2.5).
                Action::Output { port, .. } if *port == in_port => {}
                Action::Output { port, .. } => {
                    let port = if *port == port_no::IN_PORT {
                        in_port
                    } else {
                        *port
                    };
                    trace.outputs.push(port);
                    trace.emitted.push((port, packet.clone()));
                }
                Action::SetField(field) => packet.set(field.clone()),
                Action::PushVlan(_) => packet.set(Oxm::VlanVid(0x1000, None)),
                Action::PopVlan => packet.fields.retain(|f| !matches!(f, Oxm::VlanVid(..))),
                Action::Group(id) => {
                    let Some(group) = self.groups.get(id) else {
                        continue;
                    };
                    for i in self.chosen_buckets(group, packet) {
                        trace.buckets.push((*id, i));
                        let mut hits = self.bucket_hits.borrow_mut();
                        let counts = hits.entry(*id).or_default();
                        if counts.len() < group.buckets.len() {
                            counts.resize(group.buckets.len(), 0);
                        }
                        counts[i] += 1;
                        drop(hits);
                        let mut copy = packet.clone();
                        self.run_actions(
                            &group.buckets[i].actions,
                            in_port,
                            &mut copy,
                            trace,
                            depth,
                        );
                    }
                }
                Action::Experimenter { .. } => {
                    if let Some(NxAction::Ct(ct)) = NxAction::from_action(action) {
                        let tracked = self.tracker.track(&ct, packet);
                        if let Some(table) = ct.recirc_table {
                            if depth < MAX_RECIRCULATIONS {
                                self.walk(table, in_port, tracked, trace, depth + 1);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// The buckets of `group` a packet goes through.
    fn chosen_buckets(&self, group: &GroupSpec, packet: &Packet) -> Vec<usize> {
        let buckets = &group.buckets;
        match group.group_type {
            GroupType::Select => {
                let total: u64 = buckets.iter().map(|b| u64::from(b.weight)).sum();
                if total == 0 {
                    return Vec::new();
                }
                let mut point = five_tuple_hash(packet) % total;
                let chosen = buckets.iter().position(|b| {
                    let weight = u64::from(b.weight);
                    if point < weight {
                        true
                    } else {
                        point -= weight;
                        false
                    }
                });
                chosen.into_iter().collect()
            }
            GroupType::FastFailover => buckets
                .iter()
                .position(|b| !self.down_ports.contains(&b.watch_port))
                .into_iter()
                .collect(),
            GroupType::Indirect => (0..buckets.len().min(1)).collect(),
            GroupType::All | GroupType::Unknown(_) => (0..buckets.len()).collect(),
        }
    }
}

/// Whether a flow's actions refer to group `id`.
fn uses_group(spec: &FlowSpec, id: u32) -> bool {
    spec.instructions.iter().any(|i| match i {
        Instruction::ApplyActions(a) | Instruction::WriteActions(a) => {
            a.iter().any(|a| matches!(a, Action::Group(g) if *g == id))
        }
        _ => false,
    })
}

fn uses_meter(spec: &FlowSpec, id: u32) -> bool {
    spec.instructions
        .iter()
        .any(|i| matches!(i, Instruction::Meter(m) if *m == id))
}

/// The selection hash of a packet: its addresses, protocol and ports, as
/// Open vSwitch's default `select` hash uses them (a fixed hasher, so a
/// test sees the same choice every run).
fn five_tuple_hash(packet: &Packet) -> u64 {
    let hasher =
        std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
    let mut fields: Vec<Vec<u8>> = packet
        .fields
        .iter()
        .filter(|f| {
            f.class() == flowgate_openflow::OFPXMC_OPENFLOW_BASIC
                && matches!(f.field(), 10..=18 | 26 | 27)
        })
        .map(|f| {
            let mut out = BytesMut::new();
            f.emit(&mut out);
            out.to_vec()
        })
        .collect();
    fields.sort();
    hasher.hash_one(&fields)
}

/// # Panics
/// If `entry` breaks the pipeline contract for the module its cookie names.
fn assert_contract(entry: &FlowEntry) {
    let owner = cookie::owner_of(entry.spec.cookie).unwrap_or(Owner::Core);
    if let Err(e) = pipeline::check(owner, entry) {
        panic!("{owner:?} declared an entry that breaks the pipeline contract: {e}\n{entry:?}");
    }
}

/// Whether every field of the entry's match is satisfied by the packet.
fn matches(key: &FlowKey, packet: &Packet) -> bool {
    key.match_().fields.iter().all(|want| {
        packet
            .fields
            .iter()
            .find(|have| (have.class(), have.field()) == (want.class(), want.field()))
            .is_some_and(|have| field_matches(want, have))
    })
}

/// Compares wire encodings: (packet value & mask) == (match value & mask).
fn field_matches(want: &Oxm, have: &Oxm) -> bool {
    let (want_value, mask) = value_and_mask(want);
    let (have_value, _) = value_and_mask(have);
    if want_value.len() != have_value.len() {
        return false;
    }
    want_value
        .iter()
        .zip(&have_value)
        .enumerate()
        .all(|(i, (w, h))| {
            let m = mask.as_ref().map_or(0xff, |m| m[i]);
            w & m == h & m
        })
}

fn value_and_mask(field: &Oxm) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut out = BytesMut::new();
    field.emit(&mut out);
    let hasmask = out.get(2).is_some_and(|b| b & 1 == 1);
    // An experimenter field carries its experimenter id before the value;
    // it must be equal, and is compared with the value.
    let class = out.get(..2).map_or(0, |c| u16::from_be_bytes([c[0], c[1]]));
    let skip = if class == flowgate_openflow::OFPXMC_EXPERIMENTER {
        8
    } else {
        4
    };
    let payload = out.get(skip..).unwrap_or_default();
    if class == flowgate_openflow::OFPXMC_EXPERIMENTER {
        let id = out.get(4..8).unwrap_or_default().to_vec();
        let (value, mask) = if hasmask {
            let half = payload.len() / 2;
            (&payload[..half], Some(payload[half..].to_vec()))
        } else {
            (payload, None)
        };
        let mut with_id = id.clone();
        with_id.extend_from_slice(value);
        let mask = mask.map(|m| {
            let mut full = vec![0xff; id.len()];
            full.extend_from_slice(&m);
            full
        });
        return (with_id, mask);
    }
    if hasmask {
        let half = payload.len() / 2;
        (payload[..half].to_vec(), Some(payload[half..].to_vec()))
    } else {
        (payload.to_vec(), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cookie::Owner;
    use crate::desired::output_to;
    use flowgate_openflow::{ct_state, ct_state_match, Bucket, MacAddr, Match, MeterBand};
    use std::net::Ipv4Addr;

    #[test]
    fn empty_pipeline_walks_every_table_then_drops() {
        let sw = FakeSwitch::new(1);
        let trace = sw.process(1, &Packet::default());
        assert_eq!(trace.tables, vec![0, 1, 2, 3, 4, 5, 6]);
        assert!(trace.dropped());
    }

    #[test]
    fn highest_priority_masked_match_wins() {
        let mut sw = FakeSwitch::new(1);
        let net = Match::new().with(Oxm::Ipv4Dst(
            Ipv4Addr::new(10, 0, 0, 0),
            Some(Ipv4Addr::new(255, 0, 0, 0)),
        ));
        sw.install(FlowEntry::new(
            pipeline::FORWARD,
            10,
            net,
            FlowSpec::new(Owner::Forwarding.cookie(1), output_to(1)),
        ));
        sw.install(FlowEntry::new(
            pipeline::FORWARD,
            20,
            Match::new().with(Oxm::EthDst(MacAddr([2, 0, 0, 0, 0, 2]), None)),
            FlowSpec::new(Owner::Forwarding.cookie(2), output_to(2)),
        ));
        let to_net = Packet::new(vec![Oxm::Ipv4Dst(Ipv4Addr::new(10, 1, 2, 3), None)]);
        assert_eq!(sw.process(5, &to_net).outputs, vec![1]);
        let both = Packet::new(vec![
            Oxm::Ipv4Dst(Ipv4Addr::new(10, 1, 2, 3), None),
            Oxm::EthDst(MacAddr([2, 0, 0, 0, 0, 2]), None),
        ]);
        assert_eq!(sw.process(5, &both).outputs, vec![2]);
        let other = Packet::new(vec![Oxm::Ipv4Dst(Ipv4Addr::new(11, 0, 0, 1), None)]);
        assert!(sw.process(5, &other).dropped());
    }

    /// Table 1 tracks untracked IP packets, commits new ones from port 1
    /// with mark 7, passes established ones (any direction) on to table 6's
    /// output to port 9, and drops everything else.
    fn stateful_switch() -> FakeSwitch {
        use flowgate_openflow::Ct;
        let mut sw = FakeSwitch::new(1);
        let entry = |priority, match_: Match, instructions| {
            FlowEntry::new(
                pipeline::ACL,
                priority,
                match_,
                FlowSpec::new(Owner::Firewall.cookie(priority.into()), instructions),
            )
        };
        let ip = || Match::new().with(Oxm::EthType(0x0800));
        sw.install(entry(
            30,
            ip().with(ct_state_match(0, ct_state::TRK)),
            vec![Instruction::ApplyActions(vec![NxAction::Ct(
                Ct::recirculate(5, pipeline::ACL),
            )
            .to_action()])],
        ));
        sw.install(entry(
            20,
            ip().with(Oxm::InPort(1)).with(ct_state_match(
                ct_state::TRK | ct_state::NEW,
                ct_state::TRK | ct_state::NEW,
            )),
            vec![
                Instruction::ApplyActions(vec![NxAction::Ct(
                    Ct::commit(5).with_actions(vec![flowgate_openflow::set_ct_mark(7)]),
                )
                .to_action()]),
                Instruction::GotoTable(pipeline::QOS),
            ],
        ));
        sw.install(entry(
            20,
            ip().with(ct_mark_match(7, None)).with(ct_state_match(
                ct_state::TRK | ct_state::EST,
                ct_state::TRK | ct_state::EST,
            )),
            vec![Instruction::GotoTable(pipeline::QOS)],
        ));
        sw.install(entry(1, Match::default(), Vec::new()));
        sw.install(FlowEntry::new(
            pipeline::FLOOD,
            1,
            Match::default(),
            FlowSpec::new(Owner::Forwarding.cookie(1), output_to(9)),
        ));
        sw
    }

    fn tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Packet {
        Packet::new(vec![
            Oxm::EthType(0x0800),
            Oxm::Ipv4Src(src.into(), None),
            Oxm::Ipv4Dst(dst.into(), None),
            Oxm::IpProto(6),
            Oxm::TcpSrc(sport),
            Oxm::TcpDst(dport),
        ])
    }

    #[test]
    fn conntrack_commits_and_recognises_replies() {
        let sw = stateful_switch();
        let (a, b) = ([10, 0, 0, 1], [10, 0, 0, 2]);
        // Nothing committed yet: a new connection from port 2 is dropped.
        let trace = sw.process(2, &tcp(b, a, 80, 40000));
        assert!(trace.dropped(), "{trace:?}");
        // From port 1 it is committed and passes; it was recirculated.
        let trace = sw.process(1, &tcp(a, b, 40000, 80));
        assert_eq!(trace.outputs, vec![9]);
        assert_eq!(trace.tables, vec![0, 1, 1, 2, 3, 4, 5, 6]);
        // The reply now passes from port 2, as does the next packet from 1.
        assert_eq!(sw.process(2, &tcp(b, a, 80, 40000)).outputs, vec![9]);
        assert_eq!(sw.process(1, &tcp(a, b, 40000, 80)).outputs, vec![9]);
        // Another connection from port 2 is still new and dropped.
        assert!(sw.process(2, &tcp(b, a, 81, 40000)).dropped());
        // Non-IP packets are not tracked by these entries.
        assert_eq!(sw.process(2, &Packet::default()).tables, vec![0, 1]);
    }

    fn select_group(weights: &[u16]) -> GroupSpec {
        GroupSpec::new(
            GroupType::Select,
            weights
                .iter()
                .enumerate()
                .map(|(i, w)| Bucket {
                    weight: *w,
                    watch_port: port_no::ANY,
                    watch_group: flowgate_openflow::OFPG_ANY,
                    actions: vec![Action::Output {
                        port: 10 + i as u32,
                        max_len: 0,
                    }],
                })
                .collect(),
        )
    }

    /// Forward table: everything through meter 7 into group 5.
    fn balancing_switch(weights: &[u16]) -> FakeSwitch {
        let mut sw = FakeSwitch::new(1);
        let group = Owner::LoadBalancer.group_id(5);
        sw.groups.insert(group, select_group(weights));
        sw.meters.insert(
            7,
            MeterSpec {
                flags: 0,
                bands: vec![MeterBand::Drop {
                    rate: 1000,
                    burst_size: 0,
                }],
            },
        );
        sw.install(FlowEntry::new(
            pipeline::FORWARD,
            10,
            Match::default(),
            FlowSpec::new(
                Owner::Forwarding.cookie(1),
                vec![
                    Instruction::Meter(7),
                    Instruction::ApplyActions(vec![Action::Group(group)]),
                ],
            ),
        ));
        sw
    }

    #[test]
    fn a_select_group_runs_one_bucket_per_connection_by_weight() {
        let sw = balancing_switch(&[3, 1]);
        let mut hits = [0usize; 2];
        for sport in 0..4000 {
            let trace = sw.process(1, &tcp([10, 0, 0, 1], [10, 0, 0, 9], sport, 80));
            assert_eq!(trace.outputs.len(), 1, "exactly one bucket: {trace:?}");
            assert_eq!(trace.meters, vec![7]);
            hits[(trace.outputs[0] - 10) as usize] += 1;
            // The same connection always takes the same bucket.
            assert_eq!(
                sw.process(1, &tcp([10, 0, 0, 1], [10, 0, 0, 9], sport, 80))
                    .outputs,
                trace.outputs
            );
        }
        let share = hits[0] as f64 / 4000.0;
        assert!((0.70..0.80).contains(&share), "3:1 weights gave {hits:?}");
    }

    #[test]
    fn messages_program_the_switch_as_ovs_does() {
        use flowgate_openflow::{FlowMod, GroupMod, MeterMod};
        let mut sw = FakeSwitch::new(1);
        let group = Owner::LoadBalancer.group_id(1);
        let spec = select_group(&[1, 1]);
        let group_mod = |command| {
            Message::GroupMod(GroupMod {
                command,
                group_type: GroupType::Select,
                group_id: group,
                buckets: spec.buckets.clone(),
            })
        };
        assert!(sw
            .handle_message(&group_mod(GroupModCommand::Modify))
            .is_err());
        sw.handle_message(&group_mod(GroupModCommand::Add)).unwrap();
        assert!(sw.handle_message(&group_mod(GroupModCommand::Add)).is_err());
        let uses_missing_meter = FlowMod {
            table_id: pipeline::LB,
            priority: 10,
            cookie: Owner::LoadBalancer.cookie(1),
            instructions: vec![
                Instruction::Meter(9),
                Instruction::ApplyActions(vec![Action::Group(group)]),
            ],
            ..FlowMod::default()
        };
        assert_eq!(
            sw.handle_message(&Message::FlowMod(uses_missing_meter.clone())),
            Err((error_type::METER_MOD_FAILED, 2))
        );
        sw.handle_message(&Message::MeterMod(MeterMod {
            command: MeterModCommand::Add,
            flags: 0,
            meter_id: 9,
            bands: vec![],
        }))
        .unwrap();
        sw.handle_message(&Message::FlowMod(uses_missing_meter))
            .unwrap();
        // A flow outside its module's band is refused like a bad match.
        let outside = FlowMod {
            table_id: pipeline::LEARN,
            priority: 5000,
            cookie: Owner::Forwarding.cookie(1),
            ..FlowMod::default()
        };
        assert!(sw.handle_message(&Message::FlowMod(outside)).is_err());
        // Deleting the group deletes the flow that used it.
        let lb_flows = |sw: &FakeSwitch| {
            sw.flows
                .values()
                .filter(|spec| cookie::owner_of(spec.cookie) == Some(Owner::LoadBalancer))
                .count()
        };
        assert_eq!(lb_flows(&sw), 1);
        sw.handle_message(&group_mod(GroupModCommand::Delete))
            .unwrap();
        assert_eq!(lb_flows(&sw), 0);
    }

    #[test]
    #[should_panic(expected = "breaks the pipeline contract")]
    fn a_module_change_outside_the_contract_panics() {
        let mut sw = FakeSwitch::new(1);
        sw.apply(&[Change::InstallFlow {
            dpid: 1,
            entry: FlowEntry::new(
                pipeline::ACL,
                10,
                Match::default(),
                FlowSpec::new(Owner::Forwarding.cookie(1), vec![]),
            ),
        }]);
    }
}
