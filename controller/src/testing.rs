//! A fake switch for module tests: it holds a flow table built from desired
//! entries and answers "where does this packet go?" by walking the pipeline
//! the way an OpenFlow 1.3 switch does. No sockets, no OVS.
//!
//! It also has a minimal connection tracker for Open vSwitch's `ct` action
//! (see [`FakeSwitch::process`]), enough to test stateful rules.

use std::cell::RefCell;
use std::collections::HashMap;

use bytes::BytesMut;
use flowgate_openflow::wire::Wire;
use flowgate_openflow::{
    ct_flags, ct_mark_match, ct_state, ct_state_match, ct_zone_match, nx_u32_value, nxm_nx_field,
    port_no, Action, CtZone, FlowModCommand, FlowStats, Instruction, NxAction, Oxm,
};

use crate::desired::{FlowEntry, FlowKey, FlowSpec, GroupSpec};
use crate::module::Change;
use crate::pipeline;

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

/// A connection as the tracker keys it: (zone, addresses, protocol, ports),
/// in the direction of the packet that committed it.
type ConnKey = (u16, Vec<u8>, Vec<u8>, u8, u16, u16);

/// One switch's tables, fed with module changes.
#[derive(Debug, Clone, Default)]
pub struct FakeSwitch {
    pub dpid: u64,
    pub flows: HashMap<FlowKey, FlowSpec>,
    pub groups: HashMap<u32, GroupSpec>,
    /// Entries the switch lost (see [`FakeSwitch::lose`]) that the runtime
    /// still holds as desired, so [`Change::ResendFlow`] can restore them.
    lost: HashMap<FlowKey, FlowSpec>,
    /// Committed connections and their `ct_mark`.
    connections: RefCell<HashMap<ConnKey, u32>>,
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

    /// Applies the changes addressed to this switch.
    pub fn apply(&mut self, changes: &[Change]) {
        for change in changes {
            match change {
                Change::InstallFlow { dpid, entry } if *dpid == self.dpid => {
                    self.install(entry.clone())
                }
                Change::RemoveFlow { dpid, key } if *dpid == self.dpid => {
                    self.flows.remove(key);
                    self.lost.remove(key);
                }
                Change::ResendFlow { dpid, id, .. } if *dpid == self.dpid => {
                    let lost = self.lost.keys().find(|k| k.id() == *id).cloned();
                    if let Some((key, spec)) = lost.and_then(|k| self.lost.remove_entry(&k)) {
                        self.flows.insert(key, spec);
                    }
                }
                Change::InstallGroup { dpid, id, spec } if *dpid == self.dpid => {
                    self.groups.insert(*id, spec.clone());
                }
                Change::RemoveGroup { dpid, id } if *dpid == self.dpid => {
                    self.groups.remove(id);
                }
                _ => {}
            }
        }
    }

    /// Runs a packet arriving on `in_port` through the pipeline.
    ///
    /// Pipeline fields a packet always has on a switch (`metadata`,
    /// `ct_state`, `ct_zone`, `ct_mark`) start at zero unless the packet
    /// sets them. `ct(...)` actions use a tiny connection tracker: a packet
    /// of a committed connection is `+trk+est` (`+rpl` in the reply
    /// direction), any other IP packet `+trk+new`, a non-IP packet
    /// `+trk+inv`; `commit` records the connection with the `ct_mark` its
    /// nested `set_field` gives; `table=T` continues a tracked copy in
    /// table T while the original goes on untracked, as Open vSwitch does.
    pub fn process(&self, in_port: u32, packet: &Packet) -> Trace {
        let mut packet = packet.clone();
        packet.set(Oxm::InPort(in_port));
        for zero in [
            Oxm::Metadata(0, None),
            ct_state_value(0),
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
            let Some((_, spec)) = self
                .flows
                .iter()
                .filter(|(k, _)| k.table_id == table && matches(k, &packet))
                .max_by_key(|(k, _)| k.priority)
            else {
                return;
            };
            trace.cookies.push(spec.cookie);
            let mut next = None;
            for instruction in &spec.instructions {
                match instruction {
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
                    if let Some(group) = self.groups.get(id) {
                        for bucket in &group.buckets {
                            self.run_actions(
                                &bucket.actions,
                                in_port,
                                &mut packet.clone(),
                                trace,
                                depth,
                            );
                        }
                    }
                }
                Action::Experimenter { .. } => {
                    if let Some(NxAction::Ct(ct)) = NxAction::from_action(action) {
                        let tracked = self.conntrack(&ct, packet);
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

    /// The packet as the connection tracker returns it; commits if asked.
    fn conntrack(&self, ct: &flowgate_openflow::Ct, packet: &Packet) -> Packet {
        let zone = match ct.zone {
            CtZone::Immediate(zone) => zone,
            CtZone::Field { .. } => 0,
        };
        let mut tracked = packet.clone();
        tracked.set(ct_zone_match(zone));
        let Some(key) = conn_key(zone, packet) else {
            tracked.set(ct_state_value(ct_state::TRK | ct_state::INV));
            return tracked;
        };
        let reverse = (zone, key.2.clone(), key.1.clone(), key.3, key.5, key.4);
        let mut connections = self.connections.borrow_mut();
        let (state, mark) = if let Some(mark) = connections.get(&key) {
            (ct_state::TRK | ct_state::EST, *mark)
        } else if let Some(mark) = connections.get(&reverse) {
            (ct_state::TRK | ct_state::EST | ct_state::RPL, *mark)
        } else {
            (ct_state::TRK | ct_state::NEW, 0)
        };
        tracked.set(ct_state_value(state));
        tracked.set(ct_mark_match(mark, None));
        if ct.flags & ct_flags::COMMIT != 0 {
            let new_mark = ct
                .actions
                .iter()
                .find_map(|a| match a {
                    Action::SetField(f) => nx_u32_value(f, nxm_nx_field::CT_MARK),
                    _ => None,
                })
                .map_or(mark, |(value, _)| value);
            let existing = if connections.contains_key(&reverse) {
                reverse
            } else {
                key
            };
            connections.insert(existing, new_mark);
            tracked.set(ct_mark_match(new_mark, None));
        }
        tracked
    }
}

/// An unmasked `ct_state` field, as a packet carries it.
fn ct_state_value(state: u32) -> Oxm {
    match ct_state_match(state, u32::MAX) {
        Oxm::Raw {
            class,
            field,
            payload,
            ..
        } => Oxm::Raw {
            class,
            field,
            hasmask: false,
            payload: payload.slice(..4),
        },
        other => other,
    }
}

/// The tracker's key for an IP packet: zone, addresses, protocol, ports.
fn conn_key(zone: u16, packet: &Packet) -> Option<ConnKey> {
    let find = |want: fn(&Oxm) -> Option<Vec<u8>>| packet.fields.iter().find_map(want);
    let src = find(|f| match f {
        Oxm::Ipv4Src(a, _) => Some(a.octets().to_vec()),
        Oxm::Ipv6Src(a, _) => Some(a.octets().to_vec()),
        _ => None,
    })?;
    let dst = find(|f| match f {
        Oxm::Ipv4Dst(a, _) => Some(a.octets().to_vec()),
        Oxm::Ipv6Dst(a, _) => Some(a.octets().to_vec()),
        _ => None,
    })?;
    let proto = packet
        .fields
        .iter()
        .find_map(|f| match f {
            Oxm::IpProto(p) => Some(*p),
            _ => None,
        })
        .unwrap_or(0);
    let port = |want: fn(&Oxm) -> Option<u16>| packet.fields.iter().find_map(want).unwrap_or(0);
    let sport = port(|f| match f {
        Oxm::TcpSrc(p) | Oxm::UdpSrc(p) | Oxm::SctpSrc(p) => Some(*p),
        _ => None,
    });
    let dport = port(|f| match f {
        Oxm::TcpDst(p) | Oxm::UdpDst(p) | Oxm::SctpDst(p) => Some(*p),
        _ => None,
    });
    Some((zone, src, dst, proto, sport, dport))
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
    let payload = out.get(4..).unwrap_or_default();
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
    use flowgate_openflow::{MacAddr, Match};
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
}
