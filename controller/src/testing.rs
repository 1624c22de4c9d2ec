//! A fake switch for module tests: it holds a flow table built from desired
//! entries and answers "where does this packet go?" by walking the pipeline
//! the way an OpenFlow 1.3 switch does. No sockets, no OVS.

use std::collections::HashMap;

use bytes::BytesMut;
use flowgate_openflow::wire::Wire;
use flowgate_openflow::{port_no, Action, Instruction, Oxm};

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

/// One switch's tables, fed with module changes.
#[derive(Debug, Clone, Default)]
pub struct FakeSwitch {
    pub dpid: u64,
    pub flows: HashMap<FlowKey, FlowSpec>,
    pub groups: HashMap<u32, GroupSpec>,
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
        self.flows.insert(entry.key, entry.spec);
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
    pub fn process(&self, in_port: u32, packet: &Packet) -> Trace {
        let mut packet = packet.clone();
        packet.set(Oxm::InPort(in_port));
        if packet.get(0x8000, 2).is_none() {
            // OXM_OF_METADATA starts at zero.
            packet.set(Oxm::Metadata(0, None));
        }
        let mut trace = Trace::default();
        let mut table = 0u8;
        loop {
            trace.tables.push(table);
            let Some((_, spec)) = self
                .flows
                .iter()
                .filter(|(k, _)| k.table_id == table && matches(k, &packet))
                .max_by_key(|(k, _)| k.priority)
            else {
                return trace;
            };
            trace.cookies.push(spec.cookie);
            let mut next = None;
            for instruction in &spec.instructions {
                match instruction {
                    Instruction::ApplyActions(actions) | Instruction::WriteActions(actions) => {
                        self.run_actions(actions, in_port, &mut packet, &mut trace)
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
                None => return trace,
            }
        }
    }

    fn run_actions(
        &self,
        actions: &[Action],
        in_port: u32,
        packet: &mut Packet,
        trace: &mut Trace,
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
                Action::Group(id) => {
                    if let Some(group) = self.groups.get(id) {
                        for bucket in &group.buckets {
                            self.run_actions(&bucket.actions, in_port, &mut packet.clone(), trace);
                        }
                    }
                }
                _ => {}
            }
        }
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
}
