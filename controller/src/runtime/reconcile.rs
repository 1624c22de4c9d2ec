//! The reconciler: from (desired, installed) to the OpenFlow messages that
//! make the switch match desired state, and nothing more.
//!
//! Each switch has one table per kind (flows, groups, meters) whose entries
//! hold both sides, desired and installed, under one key: the packet-in path
//! changes a desired entry and records what it sent with a single hash
//! lookup, and an entry sent as desired shares its spec (one `Arc`) with the
//! installed side, so "is it installed as desired?" is a pointer comparison.
//!
//! Only Flowgate's own flows (cookie owned by a known module, see
//! [`crate::cookie`]) are ever compared or deleted; anything an operator added
//! by hand with a foreign cookie is left alone. Groups and meters have no
//! cookie: their ids carry the owner instead ([`crate::cookie::Owner::group_id`]),
//! and groups and meters outside those ranges are left alone too.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::BytesMut;
use flowgate_openflow::{
    self as of, FlowModCommand, GroupMod, GroupModCommand, Message, MeterMod, MeterModCommand,
    OFP_VERSION_1_3,
};
use hashbrown::hash_table::{Entry, HashTable};
use serde::Serialize;

use crate::cache;
use crate::cookie;
use crate::desired::{
    delete_strict, flow_mod, FlowEntry, FlowId, FlowKey, FlowSpec, GroupSpec, MeterSpec,
};
use crate::runtime::session::{encode_for, encoded, SwitchSync};

/// One entry's two sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot<T> {
    /// What the owning module wants; `None` once it no longer does.
    pub desired: Option<T>,
    /// What the switch is believed to have (as if every message succeeded).
    pub installed: Option<T>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot {
            desired: None,
            installed: None,
        }
    }
}

impl<T> Slot<T> {
    fn is_vacant(&self) -> bool {
        self.desired.is_none() && self.installed.is_none()
    }
}

/// A flow entry's two sides, and its encoded ADD once it was re-sent.
#[derive(Debug, Clone, Default)]
pub struct FlowSlot {
    pub desired: Option<Arc<FlowSpec>>,
    pub installed: Option<Arc<FlowSpec>>,
    /// The desired entry's ADD (xid 0), encoded on its first re-send for
    /// the switch's wire version. A reactive entry that keeps missing (the
    /// cbench pattern) is then re-sent by copying one buffer instead of
    /// reading its spec, match and instructions from three allocations.
    resend: Option<Box<[u8]>>,
}

impl FlowSlot {
    fn is_vacant(&self) -> bool {
        self.desired.is_none() && self.installed.is_none()
    }

    fn set_desired(&mut self, spec: Option<Arc<FlowSpec>>) {
        self.desired = spec;
        self.resend = None;
    }
}

/// Flow slots by key, hashed with the key's precomputed, randomly keyed
/// hash ([`FlowKey::slot_hash`]), and found by key or by [`FlowId`].
#[derive(Debug, Clone, Default)]
struct FlowMap(HashTable<(FlowKey, FlowSlot)>);

impl FlowMap {
    fn get(&self, key: &FlowKey) -> Option<&FlowSlot> {
        self.0
            .find(key.slot_hash(), |(k, _)| k == key)
            .map(|(_, s)| s)
    }

    /// Runs `f` on the key and slot found by `eq` (one lookup), then drops
    /// the slot if both its sides are empty.
    fn update<R>(
        &mut self,
        hash: u64,
        eq: impl Fn(&FlowKey) -> bool,
        f: impl FnOnce(&FlowKey, &mut FlowSlot) -> R,
    ) -> Option<R> {
        let mut found = self.0.find_entry(hash, |(k, _)| eq(k)).ok()?;
        let (key, slot) = found.get_mut();
        let result = f(key, slot);
        if slot.is_vacant() {
            found.remove();
        }
        Some(result)
    }

    fn update_key<R>(
        &mut self,
        key: &FlowKey,
        f: impl FnOnce(&FlowKey, &mut FlowSlot) -> R,
    ) -> Option<R> {
        self.update(key.slot_hash(), |k| k == key, f)
    }

    /// The slot of `key`, made empty if missing. The stored key becomes
    /// `key` itself (same match, maybe another allocation), so the ids of
    /// the key the declarer keeps name the slot.
    fn slot(&mut self, key: FlowKey) -> &mut FlowSlot {
        let hash = key.slot_hash();
        match self
            .0
            .entry(hash, |(k, _)| *k == key, |(k, _)| k.slot_hash())
        {
            Entry::Occupied(e) => {
                let (stored, slot) = e.into_mut();
                if stored.id() != key.id() {
                    *stored = key;
                }
                slot
            }
            Entry::Vacant(e) => &mut e.insert((key, FlowSlot::default())).into_mut().1,
        }
    }

    /// [`FlowMap::update`] of the slot whose stored key has this identity.
    fn update_id<R>(
        &mut self,
        id: FlowId,
        f: impl FnOnce(&FlowKey, &mut FlowSlot) -> R,
    ) -> Option<R> {
        self.update(id.slot_hash(), |k| k.id() == id, f)
    }

    fn slots(&self) -> impl Iterator<Item = &FlowSlot> {
        self.0.iter().map(|(_, s)| s)
    }
}

/// Flow, group and meter entries of one switch, desired and installed.
#[derive(Debug, Clone, Default)]
pub struct SwitchTables {
    flows: FlowMap,
    groups: BTreeMap<u32, Slot<GroupSpec>>,
    meters: BTreeMap<u32, Slot<MeterSpec>>,
}

/// Sets one side of the slot at `id`, dropping the slot once both are empty.
fn set_side<T>(
    map: &mut BTreeMap<u32, Slot<T>>,
    id: u32,
    side: fn(&mut Slot<T>) -> &mut Option<T>,
    value: Option<T>,
) {
    let slot = map.entry(id).or_default();
    *side(slot) = value;
    if slot.is_vacant() {
        map.remove(&id);
    }
}

/// [`SwitchTables::reinstall`] of groups or meters.
fn reinstall_side<T>(ours: &mut BTreeMap<u32, Slot<T>>, dumped: BTreeMap<u32, Slot<T>>) {
    for slot in ours.values_mut() {
        slot.installed = None;
    }
    for (id, slot) in dumped {
        ours.entry(id).or_default().installed = slot.installed;
    }
    ours.retain(|_, s| !s.is_vacant());
}

impl SwitchTables {
    /// What is installed on a switch that just connected, from its sync
    /// dumps: Flowgate-owned flows, groups and meters (by cookie and id,
    /// see [`crate::cookie`]); anything else is not ours to touch.
    pub fn from_sync(sync: &SwitchSync) -> Self {
        let mut tables = SwitchTables::default();
        for stats in sync
            .flows
            .iter()
            .filter(|f| cookie::owner_of(f.cookie).is_some())
        {
            let entry = FlowEntry::from_stats(stats);
            tables.flows.slot(entry.key).installed = Some(Arc::new(entry.spec));
        }
        let owned = |id: u32| cookie::owner_of_id(id).is_some();
        for g in sync.groups.iter().filter(|g| owned(g.group_id)) {
            tables.groups.entry(g.group_id).or_default().installed = Some(GroupSpec::from_desc(g));
        }
        for m in sync.meters.iter().filter(|m| owned(m.meter_id)) {
            tables.meters.entry(m.meter_id).or_default().installed =
                Some(MeterSpec::from_config(m));
        }
        tables
    }

    /// The same switch dumped again (its node became master and another
    /// may have written meanwhile): the installed side becomes the dump,
    /// the desired side stays as the modules built it.
    pub fn reinstall(&mut self, sync: &SwitchSync) {
        let dumped = SwitchTables::from_sync(sync);
        for (_, slot) in self.flows.0.iter_mut() {
            slot.installed = None;
        }
        for (key, slot) in dumped.flows.0 {
            self.flows.slot(key).installed = slot.installed;
        }
        self.flows.0.retain(|(_, s)| !s.is_vacant());
        reinstall_side(&mut self.groups, dumped.groups);
        reinstall_side(&mut self.meters, dumped.meters);
    }

    /// Declares the desired entry at `key`. An unchanged spec keeps the
    /// stored one; a spec equal to the installed one shares it.
    pub fn desire_flow(&mut self, key: FlowKey, spec: FlowSpec) {
        let slot = self.flows.slot(key);
        if slot.desired.as_deref() == Some(&spec) {
            return;
        }
        let shared = match &slot.installed {
            Some(have) if **have == spec => Arc::clone(have),
            _ => Arc::new(spec),
        };
        slot.set_desired(Some(shared));
    }

    /// Withdraws the desired entry at `key`; what remains installed is
    /// deleted by the next reconciliation of that key.
    pub fn undesire_flow(&mut self, key: &FlowKey) {
        self.flows.update_key(key, |_, slot| slot.set_desired(None));
    }

    pub fn desired_flow(&self, key: &FlowKey) -> Option<&FlowSpec> {
        self.flows.get(key)?.desired.as_deref()
    }

    pub fn installed_flow(&self, key: &FlowKey) -> Option<&FlowSpec> {
        self.flows.get(key)?.installed.as_deref()
    }

    /// Number of desired flow entries.
    pub fn desired_flow_count(&self) -> usize {
        self.flows.slots().filter(|s| s.desired.is_some()).count()
    }

    /// The switch does not have the entry of the key `id` names (it
    /// rejected it): the next reconciliation of that key sends it again.
    /// Returns the entry's table, priority and cookie, if it is known.
    pub fn forget_installed_flow(&mut self, id: FlowId) -> Option<(u8, u16, u64)> {
        self.flows.update_id(id, |key, slot| {
            let cookie = slot
                .installed
                .take()
                .or_else(|| slot.desired.clone())
                .map_or(0, |spec| spec.cookie);
            (key.table_id, key.priority, cookie)
        })
    }

    /// The switch removed the entry at `key` carrying `cookie` (timeout or
    /// delete): it is neither installed nor, if that was the desired entry,
    /// desired any more. An entry under a different cookie is left alone (an
    /// ADD replacing it with a new cookie also reports the removal).
    pub fn flow_removed(&mut self, key: &FlowKey, cookie: u64) {
        self.flows.update_key(key, |_, slot| {
            if slot.installed.as_ref().is_some_and(|s| s.cookie == cookie) {
                slot.installed = None;
                if slot.desired.as_ref().is_some_and(|s| s.cookie == cookie) {
                    slot.set_desired(None);
                }
            }
        });
    }

    pub fn desire_group(&mut self, id: u32, spec: Option<GroupSpec>) {
        set_side(&mut self.groups, id, |s| &mut s.desired, spec);
    }

    pub fn forget_installed_group(&mut self, id: u32) {
        set_side(&mut self.groups, id, |s| &mut s.installed, None);
    }

    pub fn desire_meter(&mut self, id: u32, spec: Option<MeterSpec>) {
        set_side(&mut self.meters, id, |s| &mut s.desired, spec);
    }

    pub fn forget_installed_meter(&mut self, id: u32) {
        set_side(&mut self.meters, id, |s| &mut s.installed, None);
    }

    /// True when every entry is installed as desired.
    pub fn in_sync(&self) -> bool {
        self.flows.slots().all(|s| s.desired == s.installed)
            && self.groups.values().all(|s| s.desired == s.installed)
            && self.meters.values().all(|s| s.desired == s.installed)
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

    /// What was counted since `before` (a snapshot of this count).
    pub fn minus(&self, before: &ReconcileCounts) -> ReconcileCounts {
        ReconcileCounts {
            flow_adds: self.flow_adds - before.flow_adds,
            flow_modifies: self.flow_modifies - before.flow_modifies,
            flow_deletes: self.flow_deletes - before.flow_deletes,
            group_mods: self.group_mods - before.group_mods,
            meter_mods: self.meter_mods - before.meter_mods,
        }
    }

    pub fn add(&mut self, other: &ReconcileCounts) {
        self.flow_adds += other.flow_adds;
        self.flow_modifies += other.flow_modifies;
        self.flow_deletes += other.flow_deletes;
        self.group_mods += other.group_mods;
        self.meter_mods += other.meter_mods;
    }
}

/// One mod to send. Flow mods hold the tables' own key and spec (two
/// reference counts, no copies) and are encoded straight from them.
#[derive(Debug, Clone)]
pub enum Planned {
    Flow {
        command: FlowModCommand,
        key: FlowKey,
        spec: Arc<FlowSpec>,
    },
    /// DELETE_STRICT of the entry installed under `cookie`.
    DeleteFlow {
        key: FlowKey,
        cookie: u64,
    },
    Group(GroupMod),
    Meter(MeterMod),
}

impl Planned {
    /// The owned message (copies the match and instructions).
    pub fn to_message(&self) -> Message {
        match self {
            Planned::Flow { command, key, spec } => {
                Message::FlowMod(flow_mod(key, spec, *command).to_owned())
            }
            Planned::DeleteFlow { key, cookie } => {
                Message::FlowMod(delete_strict(key, *cookie).to_owned())
            }
            Planned::Group(gm) => Message::GroupMod(gm.clone()),
            Planned::Meter(mm) => Message::MeterMod(mm.clone()),
        }
    }

    /// Appends the mod encoded for wire `version`; false (nothing written)
    /// if that version can not express it or it is too long (see
    /// [`encode_for`]).
    pub fn encode(&self, version: u8, xid: u32, out: &mut BytesMut) -> bool {
        match self {
            Planned::Flow { command, key, spec } => {
                encode_flow(version, xid, key, spec, *command, out)
            }
            Planned::DeleteFlow { key, cookie } if version == OFP_VERSION_1_3 => {
                encoded(of::encode_flow_mod(xid, &delete_strict(key, *cookie), out))
            }
            _ => encode_for(version, xid, &self.to_message(), out),
        }
    }
}

/// Appends the FLOW_MOD for `key` → `spec` encoded for wire `version`
/// (OpenFlow 1.3 straight from the borrowed entry); false if that version
/// can not express it or it is too long.
fn encode_flow(
    version: u8,
    xid: u32,
    key: &FlowKey,
    spec: &FlowSpec,
    command: FlowModCommand,
    out: &mut BytesMut,
) -> bool {
    let flow_mod = flow_mod(key, spec, command);
    if version == OFP_VERSION_1_3 {
        encoded(of::encode_flow_mod(xid, &flow_mod, out))
    } else {
        encode_for(version, xid, &Message::FlowMod(flow_mod.to_owned()), out)
    }
}

/// Messages to send, in an order that never leaves a flow pointing at a
/// missing group or meter: meters and groups are added first and deleted last.
#[derive(Debug, Default)]
pub struct Plan {
    pub messages: Vec<Planned>,
    pub counts: ReconcileCounts,
    late: Vec<Planned>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.late.is_empty()
    }

    fn finish(mut self) -> Plan {
        self.messages.append(&mut self.late);
        self
    }

    /// Takes the mods out in sending order (deletions of groups and meters
    /// last), leaving the plan empty with its buffers kept.
    pub fn drain(&mut self) -> impl Iterator<Item = Planned> + '_ {
        self.counts = ReconcileCounts::default();
        self.messages.drain(..).chain(self.late.drain(..))
    }
}

impl SwitchTables {
    /// Brings every entry in line (a switch that just connected). The
    /// installed side is updated as if every message succeeds; switch errors
    /// are reported separately and repaired by the next reconciliation.
    pub fn reconcile_all(&mut self) -> Plan {
        let mut plan = Plan::default();
        // Groups first: adds of meters go to the front anyway, and
        // deletions end with the meters.
        let groups: Vec<u32> = self.groups.keys().copied().collect();
        for id in groups {
            group(&mut plan, &mut self.groups, id);
        }
        let meters: Vec<u32> = self.meters.keys().copied().collect();
        for id in meters {
            meter(&mut plan, &mut self.meters, id);
        }
        // Stale entries go first, then the desired ones.
        for (key, slot) in self.flows.0.iter_mut().filter(|(_, s)| s.desired.is_none()) {
            flow(&mut plan, key, slot);
        }
        for (key, slot) in self.flows.0.iter_mut().filter(|(_, s)| s.desired.is_some()) {
            flow(&mut plan, key, slot);
        }
        self.flows.0.retain(|(_, s)| !s.is_vacant());
        plan.finish()
    }

    /// Appends to `plan` what brings the given flow keys in line, after a
    /// module changed them.
    pub fn reconcile_flows(&mut self, keys: &[FlowKey], plan: &mut Plan) {
        for key in keys {
            self.flows.update_key(key, |_, slot| flow(plan, key, slot));
        }
    }

    /// The desired entry of the key `id` names, as an ADD encoded for wire
    /// `version` with xid 0, to send whatever the switch is believed to
    /// have: the caller holds evidence the switch lacks it (a packet-in the
    /// entry would have absorbed). The entry is recorded installed. `None`
    /// if nothing is desired there (or `version` can not express it).
    ///
    /// No owner check: re-sending desired state is idempotent, whoever asks.
    /// No spec comparison and no reference counting: on the packet-in path
    /// this is one lookup, and from the second re-send on one copy (see
    /// [`FlowSlot`]).
    pub fn resend_flow(&mut self, id: FlowId, version: u8) -> Option<&[u8]> {
        let (key, slot) = self
            .flows
            .0
            .find_mut(id.slot_hash(), |(k, _)| k.id() == id)?;
        let want = slot.desired.as_ref()?;
        if !slot
            .installed
            .as_ref()
            .is_some_and(|have| Arc::ptr_eq(have, want))
        {
            slot.installed = Some(Arc::clone(want));
        }
        if slot.resend.is_none() {
            let mut out = BytesMut::new();
            if !encode_flow(version, 0, key, want, FlowModCommand::Add, &mut out) {
                return None;
            }
            slot.resend = Some(out.to_vec().into_boxed_slice());
        }
        slot.resend.as_deref()
    }

    /// Starts loading the slots a lookup of `id` would compare; changes
    /// nothing. The first of two stages over a batch of packet-ins, the
    /// second being [`SwitchTables::prefetch_flow`] (see
    /// `SwitchState::resend_all` in the core).
    pub fn probe_flow(&self, id: FlowId) {
        cache::prefetch_candidates(&self.flows.0, id.slot_hash());
    }

    /// Brings the slot of the key `id` names, and its cached re-send, into
    /// the cache; changes nothing.
    pub fn prefetch_flow(&self, id: FlowId) {
        let Some(entry) = self.flows.0.find(id.slot_hash(), |(k, _)| k.id() == id) else {
            return;
        };
        // The whole entry and the whole encoding: either may straddle two
        // cache lines, and the lookup only read the key.
        cache::prefetch_value(entry);
        if let Some(bytes) = entry.1.resend.as_deref() {
            cache::prefetch_value(bytes);
        }
    }

    /// Appends to `plan` what brings the given groups and meters in line
    /// (call before adding the flows that may use them).
    pub fn reconcile_groups_meters(&mut self, groups: &[u32], meters: &[u32], plan: &mut Plan) {
        // Groups first, as in `reconcile_all`: meters are added before and
        // deleted after them.
        for id in groups {
            group(plan, &mut self.groups, *id);
        }
        for id in meters {
            meter(plan, &mut self.meters, *id);
        }
    }
}

fn flow(plan: &mut Plan, key: &FlowKey, slot: &mut FlowSlot) {
    match (&slot.desired, &slot.installed) {
        // `Arc` equality compares pointers first: an entry sent as desired
        // shares its spec with the installed side.
        (Some(want), Some(have)) if want == have => {}
        (Some(want), have) => {
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
            plan.messages.push(Planned::Flow {
                command,
                key: key.clone(),
                spec: Arc::clone(want),
            });
            slot.installed = Some(Arc::clone(want));
        }
        (None, Some(have)) => {
            plan.counts.flow_deletes += 1;
            plan.messages.push(Planned::DeleteFlow {
                key: key.clone(),
                cookie: have.cookie,
            });
            slot.installed = None;
        }
        (None, None) => {}
    }
}

fn group(plan: &mut Plan, groups: &mut BTreeMap<u32, Slot<GroupSpec>>, id: u32) {
    let Some(slot) = groups.get_mut(&id) else {
        return;
    };
    match (&slot.desired, &slot.installed) {
        (Some(want), have) if Some(want) != have.as_ref() => {
            let command = if have.is_some() {
                GroupModCommand::Modify
            } else {
                GroupModCommand::Add
            };
            plan.messages.push(Planned::Group(GroupMod {
                command,
                group_type: want.group_type,
                group_id: id,
                buckets: want.buckets.clone(),
            }));
            slot.installed = Some(want.clone());
        }
        (None, Some(have)) => {
            // Groups go after the flows that used them.
            plan.late.push(Planned::Group(GroupMod {
                command: GroupModCommand::Delete,
                group_type: have.group_type,
                group_id: id,
                buckets: Vec::new(),
            }));
            groups.remove(&id);
        }
        _ => return,
    }
    plan.counts.group_mods += 1;
}

fn meter(plan: &mut Plan, meters: &mut BTreeMap<u32, Slot<MeterSpec>>, id: u32) {
    let Some(slot) = meters.get_mut(&id) else {
        return;
    };
    match (&slot.desired, &slot.installed) {
        (Some(want), have) if Some(want) != have.as_ref() => {
            let command = if have.is_some() {
                MeterModCommand::Modify
            } else {
                MeterModCommand::Add
            };
            // Meters must exist before groups and flows refer to them.
            plan.messages.insert(
                0,
                Planned::Meter(MeterMod {
                    command,
                    flags: want.flags,
                    meter_id: id,
                    bands: want.bands.clone(),
                }),
            );
            slot.installed = Some(want.clone());
        }
        (None, Some(have)) => {
            // Meters go last, after the flows and groups that used them.
            plan.late.push(Planned::Meter(MeterMod {
                command: MeterModCommand::Delete,
                flags: have.flags,
                meter_id: id,
                bands: Vec::new(),
            }));
            meters.remove(&id);
        }
        _ => return,
    }
    plan.counts.meter_mods += 1;
}

#[cfg(test)]
mod tests;
