//! The reconciler: pure functions from (desired, installed) to the OpenFlow
//! messages that make the switch match desired state, and nothing more.
//!
//! Only Flowgate's own flows (cookie owned by a known module, see
//! [`crate::cookie`]) are ever compared or deleted; anything an operator added
//! by hand with a foreign cookie is left alone. Groups and meters have no
//! cookie: Flowgate owns the group and meter tables of its switches.

use std::collections::{HashMap, HashSet};

use flowgate_openflow::{
    FlowModCommand, GroupMod, GroupModCommand, Message, MeterMod, MeterModCommand,
};
use serde::Serialize;

use crate::cookie;
use crate::desired::{delete_strict, flow_mod, FlowEntry, FlowKey, FlowSpec, GroupSpec, MeterSpec};
use crate::runtime::session::SwitchSync;

/// Flow, group and meter entries of one switch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwitchTables {
    pub flows: HashMap<FlowKey, FlowSpec>,
    pub groups: HashMap<u32, GroupSpec>,
    pub meters: HashMap<u32, MeterSpec>,
}

impl SwitchTables {
    /// What is installed on a switch that just connected, from its sync
    /// dumps: Flowgate-owned flows, and all groups and meters.
    pub fn from_sync(sync: &SwitchSync) -> Self {
        let flows = sync
            .flows
            .iter()
            .filter(|f| cookie::owner_of(f.cookie).is_some())
            .map(|f| {
                let e = FlowEntry::from_stats(f);
                (e.key, e.spec)
            })
            .collect();
        let groups = sync
            .groups
            .iter()
            .map(|g| {
                let spec = GroupSpec {
                    group_type: g.group_type,
                    buckets: g.buckets.clone(),
                };
                (g.group_id, spec)
            })
            .collect();
        let meters = sync
            .meters
            .iter()
            .map(|m| {
                let spec = MeterSpec {
                    flags: m.flags,
                    bands: m.bands.clone(),
                };
                (m.meter_id, spec)
            })
            .collect();
        SwitchTables {
            flows,
            groups,
            meters,
        }
    }
}

/// How many mods a reconciliation sent, by kind; exported as metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileCounts {
    pub flow_adds: u64,
    pub flow_modifies: u64,
    pub flow_deletes: u64,
    pub group_mods: u64,
    pub meter_mods: u64,
}

impl ReconcileCounts {
    pub fn total(&self) -> u64 {
        self.flow_adds + self.flow_modifies + self.flow_deletes + self.group_mods + self.meter_mods
    }

    pub fn add(&mut self, other: &ReconcileCounts) {
        self.flow_adds += other.flow_adds;
        self.flow_modifies += other.flow_modifies;
        self.flow_deletes += other.flow_deletes;
        self.group_mods += other.group_mods;
        self.meter_mods += other.meter_mods;
    }
}

/// Messages to send, in an order that never leaves a flow pointing at a
/// missing group or meter: meters and groups are added first and deleted last.
#[derive(Debug, Default)]
pub struct Plan {
    pub messages: Vec<Message>,
    pub counts: ReconcileCounts,
    late: Vec<Message>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.late.is_empty()
    }

    fn finish(mut self) -> Plan {
        self.messages.append(&mut self.late);
        self
    }
}

/// Brings `installed` to `desired` for every entry, returning the messages.
/// `installed` is updated as if every message succeeds; switch errors are
/// reported separately and repaired by the next full reconciliation.
pub fn reconcile_all(desired: &SwitchTables, installed: &mut SwitchTables) -> Plan {
    let mut plan = Plan::default();
    let meter_ids: HashSet<u32> = desired
        .meters
        .keys()
        .chain(installed.meters.keys())
        .copied()
        .collect();
    for id in sorted(meter_ids) {
        meter(&mut plan, id, desired, installed);
    }
    let group_ids: HashSet<u32> = desired
        .groups
        .keys()
        .chain(installed.groups.keys())
        .copied()
        .collect();
    for id in sorted(group_ids) {
        group(&mut plan, id, desired, installed);
    }
    let stale: Vec<FlowKey> = installed
        .flows
        .keys()
        .filter(|k| !desired.flows.contains_key(*k))
        .cloned()
        .collect();
    for key in stale.iter().chain(desired.flows.keys()) {
        flow(&mut plan, key, desired, installed);
    }
    plan.finish()
}

/// Brings only the given flow keys in line, after a module changed them.
pub fn reconcile_flows<'a>(
    keys: impl IntoIterator<Item = &'a FlowKey>,
    desired: &SwitchTables,
    installed: &mut SwitchTables,
) -> Plan {
    let mut plan = Plan::default();
    for key in keys {
        flow(&mut plan, key, desired, installed);
    }
    plan.finish()
}

/// Sends `key` as an ADD whatever the switch is believed to have, and records
/// it installed: the caller holds evidence the switch lacks it (a packet-in
/// the entry would have absorbed). No diff and no spec comparison: on the
/// packet-in path every avoided lookup is a cache miss saved.
pub fn reassert_flow(
    plan: &mut Plan,
    key: &FlowKey,
    desired: &SwitchTables,
    installed: &mut SwitchTables,
) {
    // The stored key shares its match with the installed table's key, which
    // then compares equal without reading it.
    let Some((key, spec)) = desired.flows.get_key_value(key) else {
        return;
    };
    plan.messages
        .push(Message::FlowMod(flow_mod(key, spec, FlowModCommand::Add)));
    plan.counts.flow_adds += 1;
    match installed.flows.get_mut(key) {
        Some(have) => {
            if have != spec {
                have.clone_from(spec);
            }
        }
        None => {
            installed.flows.insert(key.clone(), spec.clone());
        }
    }
}

/// Brings only the given groups and meters in line.
pub fn reconcile_groups_meters(
    groups: impl IntoIterator<Item = u32>,
    meters: impl IntoIterator<Item = u32>,
    desired: &SwitchTables,
    installed: &mut SwitchTables,
) -> Plan {
    let mut plan = Plan::default();
    for id in meters {
        meter(&mut plan, id, desired, installed);
    }
    for id in groups {
        group(&mut plan, id, desired, installed);
    }
    plan.finish()
}

fn sorted(ids: HashSet<u32>) -> Vec<u32> {
    let mut ids: Vec<u32> = ids.into_iter().collect();
    ids.sort_unstable();
    ids
}

fn flow(plan: &mut Plan, key: &FlowKey, desired: &SwitchTables, installed: &mut SwitchTables) {
    match (desired.flows.get_key_value(key), installed.flows.get(key)) {
        (Some((_, want)), Some(have)) if want == have => {}
        (Some((stored, want)), have) => {
            let command = match have {
                Some(have) if want.differs_only_in_instructions(have) => {
                    plan.counts.flow_modifies += 1;
                    FlowModCommand::ModifyStrict
                }
                // A new entry, or one whose cookie/timeouts/flags changed:
                // ADD replaces an identical match+priority entry outright.
                _ => {
                    plan.counts.flow_adds += 1;
                    FlowModCommand::Add
                }
            };
            plan.messages
                .push(Message::FlowMod(flow_mod(key, want, command)));
            // The desired table's own key: both tables then share its match.
            match installed.flows.get_mut(key) {
                Some(have) => *have = want.clone(),
                None => {
                    installed.flows.insert(stored.clone(), want.clone());
                }
            }
        }
        (None, Some(have)) => {
            plan.counts.flow_deletes += 1;
            plan.messages
                .push(Message::FlowMod(delete_strict(key, have.cookie)));
            installed.flows.remove(key);
        }
        (None, None) => {}
    }
}

fn group(plan: &mut Plan, id: u32, desired: &SwitchTables, installed: &mut SwitchTables) {
    let (command, spec) = match (desired.groups.get(&id), installed.groups.get(&id)) {
        (Some(want), Some(have)) if want == have => return,
        (Some(want), Some(_)) => (GroupModCommand::Modify, want.clone()),
        (Some(want), None) => (GroupModCommand::Add, want.clone()),
        (None, Some(have)) => (GroupModCommand::Delete, have.clone()),
        (None, None) => return,
    };
    plan.counts.group_mods += 1;
    let delete = command == GroupModCommand::Delete;
    let message = Message::GroupMod(GroupMod {
        command,
        group_type: spec.group_type,
        group_id: id,
        buckets: if delete {
            Vec::new()
        } else {
            spec.buckets.clone()
        },
    });
    if delete {
        plan.late.push(message);
        installed.groups.remove(&id);
    } else {
        plan.messages.push(message);
        installed.groups.insert(id, spec);
    }
}

fn meter(plan: &mut Plan, id: u32, desired: &SwitchTables, installed: &mut SwitchTables) {
    let (command, spec) = match (desired.meters.get(&id), installed.meters.get(&id)) {
        (Some(want), Some(have)) if want == have => return,
        (Some(want), Some(_)) => (MeterModCommand::Modify, want.clone()),
        (Some(want), None) => (MeterModCommand::Add, want.clone()),
        (None, Some(have)) => (MeterModCommand::Delete, have.clone()),
        (None, None) => return,
    };
    plan.counts.meter_mods += 1;
    let delete = command == MeterModCommand::Delete;
    let message = Message::MeterMod(MeterMod {
        command,
        flags: spec.flags,
        meter_id: id,
        bands: if delete {
            Vec::new()
        } else {
            spec.bands.clone()
        },
    });
    if delete {
        // Meters go last, after the flows and groups that used them.
        plan.late.push(message);
        installed.meters.remove(&id);
    } else {
        // Meters must exist before groups and flows refer to them.
        plan.messages.insert(0, message);
        installed.meters.insert(id, spec);
    }
}

#[cfg(test)]
mod tests;
