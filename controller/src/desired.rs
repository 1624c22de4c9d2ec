//! Desired-state entries: what a module wants on a switch, independent of how
//! it gets there. Modules build these; the reconciler turns the difference
//! between desired and installed entries into flow/group/meter mods.
//!
//! Entries are kept in a canonical form ([`FlowKey::new`], [`FlowSpec::new`])
//! so an entry read back from a switch's flow stats compares equal to the
//! entry a module asked for, whatever order or mask spelling the switch uses.

use flowgate_openflow::{
    self as of, flow_mod_flags, Action, Bucket, FlowMod, FlowModCommand, FlowModRef, FlowStats,
    GroupDesc, GroupType, Instruction, Match, MeterBand, MeterConfig, Oxm,
};

/// Identity of a flow entry in OpenFlow terms: table, priority and match.
///
/// The match's hash is computed once, when the key is made: desired and
/// installed tables look keys up several times per packet-in, and hashing
/// a list of OXM fields each time dominated the flow-setup path. The match
/// is shared, not copied, between clones of a key (the desired table, the
/// installed table, the diff's work list), so a clone costs no allocation
/// and two clones compare equal without reading the match.
#[derive(Clone, Eq)]
pub struct FlowKey {
    pub table_id: u8,
    pub priority: u16,
    /// Hash of `match_` (compared first, so unequal keys differ fast).
    match_hash: u64,
    match_: std::sync::Arc<Match>,
}

impl PartialEq for FlowKey {
    fn eq(&self, other: &Self) -> bool {
        self.table_id == other.table_id
            && self.priority == other.priority
            && self.match_hash == other.match_hash
            && (std::sync::Arc::ptr_eq(&self.match_, &other.match_) || self.match_ == other.match_)
    }
}

impl FlowKey {
    pub fn new(table_id: u8, priority: u16, match_: Match) -> Self {
        let match_ = canonical_match(match_);
        FlowKey {
            table_id,
            priority,
            match_hash: std::hash::BuildHasher::hash_one(match_hasher(), &match_),
            match_: std::sync::Arc::new(match_),
        }
    }

    pub fn match_(&self) -> &Match {
        &self.match_
    }

    /// This key's identity: which allocation of its match it shares.
    pub fn id(&self) -> FlowId {
        FlowId {
            slot_hash: self.slot_hash(),
            match_ptr: std::sync::Arc::as_ptr(&self.match_) as usize,
        }
    }

    /// Hash of the whole key, for tables that find keys by [`FlowId`] too.
    pub fn slot_hash(&self) -> u64 {
        slot_hash(self.table_id, self.priority, self.match_hash)
    }
}

/// Names one [`FlowKey`] allocation and its clones without holding it (no
/// reference count to touch, so it is `Copy` and free to pass around): the
/// packet-in path re-sends entries by id, where every atomic reference-count
/// operation waited for the cache misses of the table lookups before it.
/// An id is meaningful while someone keeps a clone of its key (the module
/// that declared the entry, or the desired table).
///
/// Two words: the slot hash, which differs between keys of one match
/// allocation with another table or priority ([`slot_hash`] puts them in
/// distinct bits), and the allocation's address. Small and word-aligned, it
/// is copied in whole words: the packet-in path records one per re-send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowId {
    slot_hash: u64,
    match_ptr: usize,
}

impl FlowId {
    pub fn slot_hash(&self) -> u64 {
        self.slot_hash
    }
}

/// The match hash is keyed and well mixed; table and priority go in the
/// high bits, which the hash tables use for their control bytes too.
fn slot_hash(table_id: u8, priority: u16, match_hash: u64) -> u64 {
    match_hash ^ (u64::from(table_id) << 56) ^ (u64::from(priority) << 40)
}

impl std::hash::Hash for FlowKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.table_id.hash(state);
        self.priority.hash(state);
        state.write_u64(self.match_hash);
    }
}

impl std::fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowKey")
            .field("table_id", &self.table_id)
            .field("priority", &self.priority)
            .field("match_", &self.match_)
            .finish()
    }
}

/// Keyed once per process (random keys), so match hashes can not be chosen
/// by whoever sends the packets that become matches.
fn match_hasher() -> &'static std::collections::hash_map::RandomState {
    static HASHER: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    HASHER.get_or_init(Default::default)
}

/// Everything about a flow entry besides its identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlowSpec {
    /// Owner module and object, see [`crate::cookie`].
    pub cookie: u64,
    pub instructions: Vec<Instruction>,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    /// Only the persistent flags (SEND_FLOW_REM, NO_PKT/BYT_COUNTS) are kept.
    pub flags: u16,
}

/// Flags a switch stores with a flow and reports back in flow stats.
const PERSISTENT_FLAGS: u16 =
    flow_mod_flags::SEND_FLOW_REM | flow_mod_flags::NO_PKT_COUNTS | flow_mod_flags::NO_BYT_COUNTS;

impl FlowSpec {
    pub fn new(cookie: u64, instructions: Vec<Instruction>) -> Self {
        FlowSpec {
            cookie,
            instructions: canonical_instructions(instructions),
            idle_timeout: 0,
            hard_timeout: 0,
            flags: 0,
        }
    }

    pub fn idle_timeout(mut self, secs: u16) -> Self {
        self.idle_timeout = secs;
        self
    }

    pub fn hard_timeout(mut self, secs: u16) -> Self {
        self.hard_timeout = secs;
        self
    }

    /// Ask the switch for FLOW_REMOVED when this entry expires or is deleted.
    pub fn notify_removal(mut self) -> Self {
        self.flags |= flow_mod_flags::SEND_FLOW_REM;
        self
    }

    /// Same entry except for the instructions: a MODIFY_STRICT suffices and
    /// the switch keeps the entry's counters.
    pub fn differs_only_in_instructions(&self, other: &FlowSpec) -> bool {
        self.cookie == other.cookie
            && self.idle_timeout == other.idle_timeout
            && self.hard_timeout == other.hard_timeout
            && self.flags == other.flags
            && self.instructions != other.instructions
    }
}

/// One desired flow entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowEntry {
    pub key: FlowKey,
    pub spec: FlowSpec,
}

impl FlowEntry {
    pub fn new(table_id: u8, priority: u16, match_: Match, spec: FlowSpec) -> Self {
        FlowEntry {
            key: FlowKey::new(table_id, priority, match_),
            spec,
        }
    }

    /// The entry as a switch reported it in a flow-stats reply.
    pub fn from_stats(stats: &FlowStats) -> Self {
        FlowEntry {
            key: FlowKey::new(stats.table_id, stats.priority, stats.match_.clone()),
            spec: FlowSpec {
                cookie: stats.cookie,
                instructions: canonical_instructions(stats.instructions.clone()),
                idle_timeout: stats.idle_timeout,
                hard_timeout: stats.hard_timeout,
                flags: stats.flags & PERSISTENT_FLAGS,
            },
        }
    }

    /// The FLOW_MOD that installs (or replaces) this entry.
    pub fn to_flow_mod(&self, command: FlowModCommand) -> FlowMod {
        flow_mod(&self.key, &self.spec, command).to_owned()
    }
}

/// The FLOW_MOD that installs (or replaces) the entry `key` → `spec`,
/// borrowing the entry's match and instructions.
pub fn flow_mod<'a>(
    key: &'a FlowKey,
    spec: &'a FlowSpec,
    command: FlowModCommand,
) -> FlowModRef<'a> {
    FlowModRef {
        cookie: spec.cookie,
        cookie_mask: 0,
        table_id: key.table_id,
        command,
        idle_timeout: spec.idle_timeout,
        hard_timeout: spec.hard_timeout,
        priority: key.priority,
        buffer_id: of::NO_BUFFER,
        out_port: of::port_no::ANY,
        out_group: of::OFPG_ANY,
        flags: spec.flags,
        match_: key.match_(),
        instructions: &spec.instructions,
    }
}

/// The DELETE_STRICT for an installed entry, restricted to its exact cookie
/// so it can never remove an entry someone else wrote meanwhile.
pub fn delete_strict(key: &FlowKey, cookie: u64) -> FlowModRef<'_> {
    FlowModRef {
        cookie,
        cookie_mask: u64::MAX,
        table_id: key.table_id,
        command: FlowModCommand::DeleteStrict,
        idle_timeout: 0,
        hard_timeout: 0,
        priority: key.priority,
        buffer_id: of::NO_BUFFER,
        out_port: of::port_no::ANY,
        out_group: of::OFPG_ANY,
        flags: 0,
        match_: key.match_(),
        instructions: &[],
    }
}

/// A desired group (OpenFlow group table entry), in canonical form: what
/// Open vSwitch reports back in a GROUP_DESC reply for the group it was
/// sent ([`GroupSpec::from_desc`] of that reply compares equal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    pub group_type: GroupType,
    pub buckets: Vec<Bucket>,
}

impl GroupSpec {
    pub fn new(group_type: GroupType, buckets: Vec<Bucket>) -> GroupSpec {
        let buckets = buckets
            .into_iter()
            .map(|b| canonical_bucket(group_type, b))
            .collect();
        GroupSpec {
            group_type,
            buckets,
        }
    }

    /// The group as a switch reported it.
    pub fn from_desc(desc: &GroupDesc) -> GroupSpec {
        GroupSpec::new(desc.group_type, desc.buckets.clone())
    }
}

/// Only select groups weigh their buckets, and only fast-failover groups
/// watch ports or groups: anything else in those fields is not kept by a
/// switch, so it is not part of the group's identity either.
fn canonical_bucket(group_type: GroupType, mut bucket: Bucket) -> Bucket {
    if group_type != GroupType::Select {
        bucket.weight = 0;
    }
    if group_type != GroupType::FastFailover {
        bucket.watch_port = of::port_no::ANY;
        bucket.watch_group = of::OFPG_ANY;
    }
    bucket
}

/// A desired group under its (owner-namespaced, see
/// [`crate::cookie::Owner::group_id`]) wire id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub id: u32,
    pub spec: GroupSpec,
}

/// A desired meter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterSpec {
    pub flags: u16,
    pub bands: Vec<MeterBand>,
}

impl MeterSpec {
    /// A meter in canonical form: bands as Open vSwitch reports them back
    /// (its userspace datapath reports a drop band's burst 0 as the rate).
    pub fn new(flags: u16, bands: Vec<MeterBand>) -> MeterSpec {
        MeterSpec {
            flags,
            bands: bands.iter().map(MeterBand::canonical).collect(),
        }
    }

    /// The meter as a switch reported it.
    pub fn from_config(config: &MeterConfig) -> MeterSpec {
        MeterSpec::new(config.flags, config.bands.clone())
    }
}

/// A desired meter under its owner-namespaced wire id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterEntry {
    pub id: u32,
    pub spec: MeterSpec,
}

/// Sorts OXM fields by (class, field) and drops all-ones masks, which mean
/// the same as no mask; switches report matches in their own order.
pub fn canonical_match(m: Match) -> Match {
    let mut m: Match = m.fields.into_iter().map(drop_exact_mask).collect();
    m.fields.sort_by_key(|f| (f.class(), f.field()));
    m
}

fn drop_exact_mask(field: Oxm) -> Oxm {
    fn exact<T: PartialEq>(mask: &Option<T>, full: T) -> bool {
        mask.as_ref() == Some(&full)
    }
    use std::net::{Ipv4Addr, Ipv6Addr};
    let full_mac = of::MacAddr([0xff; 6]);
    let full_v4 = Ipv4Addr::BROADCAST;
    let full_v6 = Ipv6Addr::from([0xff; 16]);
    match field {
        Oxm::Metadata(v, m) if exact(&m, u64::MAX) => Oxm::Metadata(v, None),
        Oxm::EthDst(v, m) if exact(&m, full_mac) => Oxm::EthDst(v, None),
        Oxm::EthSrc(v, m) if exact(&m, full_mac) => Oxm::EthSrc(v, None),
        Oxm::Ipv4Src(v, m) if exact(&m, full_v4) => Oxm::Ipv4Src(v, None),
        Oxm::Ipv4Dst(v, m) if exact(&m, full_v4) => Oxm::Ipv4Dst(v, None),
        Oxm::ArpSpa(v, m) if exact(&m, full_v4) => Oxm::ArpSpa(v, None),
        Oxm::ArpTpa(v, m) if exact(&m, full_v4) => Oxm::ArpTpa(v, None),
        Oxm::Ipv6Src(v, m) if exact(&m, full_v6) => Oxm::Ipv6Src(v, None),
        Oxm::Ipv6Dst(v, m) if exact(&m, full_v6) => Oxm::Ipv6Dst(v, None),
        Oxm::TunnelId(v, m) if exact(&m, u64::MAX) => Oxm::TunnelId(v, None),
        Oxm::Reg(n, v, m) if exact(&m, u32::MAX) => Oxm::Reg(n, v, None),
        Oxm::TunIpv4Src(v, m) if exact(&m, full_v4) => Oxm::TunIpv4Src(v, None),
        Oxm::TunIpv4Dst(v, m) if exact(&m, full_v4) => Oxm::TunIpv4Dst(v, None),
        Oxm::PktMark(v, m) if exact(&m, u32::MAX) => Oxm::PktMark(v, None),
        Oxm::CtState(v, m) if exact(&m, u32::MAX) => Oxm::CtState(v, None),
        Oxm::CtMark(v, m) if exact(&m, u32::MAX) => Oxm::CtMark(v, None),
        Oxm::CtLabel(v, m) if exact(&m, [0xff; 16]) => Oxm::CtLabel(v, None),
        other => other,
    }
}

/// Orders instructions the way the spec executes them (§5.9: meter, apply,
/// clear, write, write-metadata, goto), which is also how switches report them.
pub fn canonical_instructions(mut instructions: Vec<Instruction>) -> Vec<Instruction> {
    fn rank(i: &Instruction) -> u8 {
        match i {
            Instruction::Meter(_) => 0,
            Instruction::ApplyActions(_) => 1,
            Instruction::ClearActions => 2,
            Instruction::WriteActions(_) => 3,
            Instruction::WriteMetadata { .. } => 4,
            Instruction::GotoTable(_) => 5,
            _ => 6,
        }
    }
    instructions.sort_by_key(rank);
    instructions
}

/// `apply_actions(output:port)`, the most common instruction list.
pub fn output_to(port: u32) -> Vec<Instruction> {
    vec![Instruction::ApplyActions(vec![Action::Output {
        port,
        max_len: 0,
    }])]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn match_order_and_exact_masks_do_not_matter() {
        let a = Match::from_iter([
            Oxm::Ipv4Dst(Ipv4Addr::new(10, 0, 0, 1), Some(Ipv4Addr::BROADCAST)),
            Oxm::EthType(0x0800),
            Oxm::InPort(3),
        ]);
        let b = Match::from_iter([
            Oxm::InPort(3),
            Oxm::EthType(0x0800),
            Oxm::Ipv4Dst(Ipv4Addr::new(10, 0, 0, 1), None),
        ]);
        assert_eq!(FlowKey::new(1, 10, a), FlowKey::new(1, 10, b));
    }

    #[test]
    fn exact_masks_of_nicira_fields_do_not_matter_either() {
        let masked = Match::from_iter([
            Oxm::Reg(3, 7, Some(u32::MAX)),
            Oxm::CtMark(9, Some(u32::MAX)),
            Oxm::CtLabel([1; 16], Some([0xff; 16])),
        ]);
        let exact = Match::from_iter([
            Oxm::Reg(3, 7, None),
            Oxm::CtMark(9, None),
            Oxm::CtLabel([1; 16], None),
        ]);
        assert_eq!(FlowKey::new(1, 1, masked), FlowKey::new(1, 1, exact));
    }

    #[test]
    fn a_meter_compares_as_the_switch_reports_it() {
        let declared = MeterSpec::new(
            flowgate_openflow::meter_flags::KBPS,
            vec![MeterBand::Drop {
                rate: 2000,
                burst_size: 0,
            }],
        );
        let reported = MeterConfig {
            flags: flowgate_openflow::meter_flags::KBPS,
            meter_id: 1,
            bands: vec![MeterBand::Drop {
                rate: 2000,
                burst_size: 2000,
            }],
        };
        assert_eq!(MeterSpec::from_config(&reported), declared);
    }

    #[test]
    fn partial_masks_are_kept() {
        let m = Match::from_iter([Oxm::Ipv4Dst(
            Ipv4Addr::new(10, 0, 0, 0),
            Some(Ipv4Addr::new(255, 0, 0, 0)),
        )]);
        assert_eq!(canonical_match(m.clone()), m);
    }

    #[test]
    fn instructions_follow_execution_order() {
        let spec = FlowSpec::new(
            1,
            vec![
                Instruction::GotoTable(3),
                Instruction::ApplyActions(vec![]),
                Instruction::Meter(1),
            ],
        );
        assert_eq!(
            spec.instructions,
            vec![
                Instruction::Meter(1),
                Instruction::ApplyActions(vec![]),
                Instruction::GotoTable(3)
            ]
        );
    }

    #[test]
    fn stats_round_trip_to_the_same_entry() {
        let entry = FlowEntry::new(
            4,
            100,
            Match::from_iter([Oxm::EthDst(of::MacAddr([0, 0, 0, 0, 0, 1]), None)]),
            FlowSpec::new(7, output_to(2))
                .idle_timeout(300)
                .notify_removal(),
        );
        let fm = entry.to_flow_mod(FlowModCommand::Add);
        let stats = FlowStats {
            table_id: fm.table_id,
            duration_sec: 5,
            duration_nsec: 0,
            priority: fm.priority,
            idle_timeout: fm.idle_timeout,
            hard_timeout: fm.hard_timeout,
            // Switches may report transient flags; they are not identity.
            flags: fm.flags | flow_mod_flags::CHECK_OVERLAP,
            cookie: fm.cookie,
            packet_count: 9,
            byte_count: 900,
            match_: fm.match_.clone(),
            instructions: fm.instructions.clone(),
        };
        assert_eq!(FlowEntry::from_stats(&stats), entry);
    }
}
