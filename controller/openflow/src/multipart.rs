//! Multipart messages (OpenFlow 1.3.5 spec 7.3.5): statistics, descriptions and
//! features that do not fit one message.
//!
//! Both directions share an 8-byte prefix after the OpenFlow header:
//! ```text
//!  0               2               4                               8
//! +---------------+---------------+-------------------------------+
//! |     type      |     flags     |             pad               |
//! +---------------+---------------+-------------------------------+
//! |                         body (type specific)                  |
//! ```
//! A reply with [`multipart_flags::REPLY_MORE`] set is followed by more parts of
//! the same type; [`MultipartReplyBody::merge`] glues them back together.
//!
//! Parsing consumes the whole reader it is given (the message body), and any byte
//! left over after a fixed-size body is a decode error, so `emit(parse(b)) == b`
//! for every accepted `b` whose padding bytes are zero.

use crate::error::{DecodeError, Result};
use crate::group::{buckets_len, emit_buckets, parse_buckets, Bucket, GroupMod, GroupType};
use crate::instruction::{emit_instructions, instructions_len, parse_instructions, Instruction};
use crate::meter::{bands_len, emit_bands, parse_bands, MeterBand, MeterMod};
use crate::oxm::Match;
use crate::port::{put_fixed_str, read_fixed_str, Port};
use crate::wire::{len16, put_zeros, Reader, Wire};
use bytes::{BufMut, Bytes, BytesMut};

/// `ofp_multipart_type` numbers (spec 7.3.5).
pub mod multipart_type {
    pub const DESC: u16 = 0;
    pub const FLOW: u16 = 1;
    pub const AGGREGATE: u16 = 2;
    pub const TABLE: u16 = 3;
    pub const PORT_STATS: u16 = 4;
    pub const QUEUE: u16 = 5;
    pub const GROUP: u16 = 6;
    pub const GROUP_DESC: u16 = 7;
    pub const GROUP_FEATURES: u16 = 8;
    pub const METER: u16 = 9;
    pub const METER_CONFIG: u16 = 10;
    pub const METER_FEATURES: u16 = 11;
    pub const TABLE_FEATURES: u16 = 12;
    pub const PORT_DESC: u16 = 13;
    pub const EXPERIMENTER: u16 = 0xffff;
}

/// `ofp_multipart_request_flags` / `ofp_multipart_reply_flags`.
pub mod multipart_flags {
    /// More requests follow this one (table features only).
    pub const REQUEST_MORE: u16 = 1;
    /// More replies follow this one: keep merging until a part without it.
    pub const REPLY_MORE: u16 = 1;
}

/// Length of the type/flags/pad prefix that precedes every multipart body.
const PREFIX_LEN: usize = 8;
/// `DESC_STR_LEN` and `SERIAL_NUM_LEN` (spec 7.3.5.1).
const DESC_STR_LEN: usize = 256;
const SERIAL_NUM_LEN: usize = 32;
const DESC_LEN: usize = 4 * DESC_STR_LEN + SERIAL_NUM_LEN;
/// Fixed parts of the records below, before their variable tails.
const FLOW_STATS_REQUEST_FIXED: usize = 32;
const FLOW_STATS_FIXED: usize = 48;
const AGGREGATE_LEN: usize = 24;
const TABLE_STATS_LEN: usize = 24;
const PORT_STATS_LEN: usize = 112;
const QUEUE_STATS_LEN: usize = 40;
const GROUP_STATS_FIXED: usize = 40;
const BUCKET_COUNTER_LEN: usize = 16;
const GROUP_DESC_FIXED: usize = 8;
const GROUP_FEATURES_LEN: usize = 40;
const METER_STATS_FIXED: usize = 40;
const METER_BAND_STATS_LEN: usize = 16;
const METER_CONFIG_FIXED: usize = 8;
const METER_FEATURES_LEN: usize = 16;

/// OFPT_MULTIPART_REQUEST body (spec 7.3.5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MultipartRequest {
    /// [`multipart_flags::REQUEST_MORE`] or 0.
    pub flags: u16,
    pub body: MultipartRequestBody,
}

/// What is asked for; each variant is one `ofp_multipart_type`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MultipartRequestBody {
    /// Switch description (7.3.5.1): empty body.
    Desc,
    /// Individual flow statistics (7.3.5.2).
    Flow(FlowStatsRequest),
    /// Aggregate flow statistics (7.3.5.3): same body as `Flow`.
    Aggregate(FlowStatsRequest),
    /// Table statistics (7.3.5.4): empty body.
    Table,
    /// Port statistics (7.3.5.6); `port_no` may be `port_no::ANY`.
    PortStats { port_no: u32 },
    /// Queue statistics (7.3.5.8).
    Queue { port_no: u32, queue_id: u32 },
    /// Group statistics (7.3.5.9); `group_id` may be `OFPG_ALL`.
    Group { group_id: u32 },
    /// Group descriptions (7.3.5.10): empty body.
    GroupDesc,
    /// Group features (7.3.5.11): empty body.
    GroupFeatures,
    /// Meter statistics (7.3.5.12); `meter_id` may be `OFPM_ALL`.
    Meter { meter_id: u32 },
    /// Meter configuration (7.3.5.13).
    MeterConfig { meter_id: u32 },
    /// Meter features (7.3.5.14): empty body.
    MeterFeatures,
    /// Table features (7.3.5.5): the `ofp_table_features` array, kept raw
    /// (empty asks for the current features).
    TableFeatures(Bytes),
    /// Port descriptions (7.3.5.7): empty body.
    PortDesc,
    /// Experimenter multipart (7.3.5.15); `data` follows the 8-byte header.
    Experimenter {
        experimenter: u32,
        exp_type: u32,
        data: Bytes,
    },
    /// A multipart type this codec does not know, body kept byte-exact.
    Unknown { mp_type: u16, data: Bytes },
}

/// `ofp_flow_stats_request` (also the aggregate request), spec 7.3.5.2:
/// ```text
/// table_id u8 | pad 3 | out_port u32 | out_group u32 | pad 4 |
/// cookie u64 | cookie_mask u64 | ofp_match (padded to 8)
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlowStatsRequest {
    pub table_id: u8,
    pub out_port: u32,
    pub out_group: u32,
    pub cookie: u64,
    pub cookie_mask: u64,
    pub match_: Match,
}

/// OFPT_MULTIPART_REPLY body (spec 7.3.5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MultipartReply {
    /// `flags & REPLY_MORE != 0` means more parts follow.
    pub flags: u16,
    pub body: MultipartReplyBody,
}

/// A reply body; each variant is one `ofp_multipart_type`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MultipartReplyBody {
    Desc(DescStats),
    Flow(Vec<FlowStats>),
    Aggregate(AggregateStats),
    Table(Vec<TableStats>),
    PortStats(Vec<PortStats>),
    Queue(Vec<QueueStats>),
    Group(Vec<GroupStats>),
    GroupDesc(Vec<GroupDesc>),
    GroupFeatures(GroupFeatures),
    Meter(Vec<MeterStats>),
    MeterConfig(Vec<MeterConfig>),
    MeterFeatures(MeterFeatures),
    /// The `ofp_table_features` array, kept raw (OVS splits it over many parts).
    TableFeatures(Bytes),
    PortDesc(Vec<Port>),
    Experimenter {
        experimenter: u32,
        exp_type: u32,
        data: Bytes,
    },
    Unknown {
        mp_type: u16,
        data: Bytes,
    },
}

/// `ofp_desc` (spec 7.3.5.1): five NUL-padded ASCII strings, 1056 bytes.
///
/// Strings are cut at the first NUL; a byte that is not valid UTF-8 decodes as
/// `'?'` so a string never grows past its field. Longer strings are cut on emit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct DescStats {
    pub mfr_desc: String,
    pub hw_desc: String,
    pub sw_desc: String,
    pub serial_num: String,
    pub dp_desc: String,
}

/// `ofp_flow_stats` (spec 7.3.5.2): one installed flow.
/// ```text
/// length u16 | table_id u8 | pad 1 | duration_sec u32 | duration_nsec u32 |
/// priority u16 | idle_timeout u16 | hard_timeout u16 | flags u16 | pad 4 |
/// cookie u64 | packet_count u64 | byte_count u64 | ofp_match | instructions
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlowStats {
    pub table_id: u8,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub priority: u16,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub flags: u16,
    pub cookie: u64,
    pub packet_count: u64,
    pub byte_count: u64,
    pub match_: Match,
    pub instructions: Vec<Instruction>,
}

/// `ofp_aggregate_stats_reply` (spec 7.3.5.3), 24 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AggregateStats {
    pub packet_count: u64,
    pub byte_count: u64,
    pub flow_count: u32,
}

/// `ofp_table_stats` (spec 7.3.5.4), 24 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TableStats {
    pub table_id: u8,
    pub active_count: u32,
    pub lookup_count: u64,
    pub matched_count: u64,
}

/// `ofp_port_stats` (spec 7.3.5.6), 112 bytes. Unsupported counters are all ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PortStats {
    pub port_no: u32,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_frame_err: u64,
    pub rx_over_err: u64,
    pub rx_crc_err: u64,
    pub collisions: u64,
    pub duration_sec: u32,
    pub duration_nsec: u32,
}

/// `ofp_queue_stats` (spec 7.3.5.8), 40 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct QueueStats {
    pub port_no: u32,
    pub queue_id: u32,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub duration_sec: u32,
    pub duration_nsec: u32,
}

/// `ofp_group_stats` (spec 7.3.5.9): 40 bytes plus one counter per bucket.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct GroupStats {
    pub group_id: u32,
    pub ref_count: u32,
    pub packet_count: u64,
    pub byte_count: u64,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub bucket_stats: Vec<BucketCounter>,
}

/// `ofp_bucket_counter`, 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BucketCounter {
    pub packet_count: u64,
    pub byte_count: u64,
}

/// `ofp_group_desc` (spec 7.3.5.10): `length u16 | type u8 | pad 1 | group_id u32 | buckets`.
///
/// Open vSwitch reports a group exactly as the GROUP_MOD that made it sent
/// it: type, id and every bucket's weight, watch port, watch group and
/// actions (`tests/ovs_bridge_oracle.rs`), so [`GroupDesc::from`] a
/// [`GroupMod`] is what the switch will report. Select-group properties are
/// not part of it in OpenFlow 1.3 (see [`crate::group`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupDesc {
    pub group_type: GroupType,
    pub group_id: u32,
    pub buckets: Vec<Bucket>,
}

impl From<&GroupMod> for GroupDesc {
    /// The group `group_mod` installs, as the switch reports it.
    fn from(group_mod: &GroupMod) -> GroupDesc {
        GroupDesc {
            group_type: group_mod.group_type,
            group_id: group_mod.group_id,
            buckets: group_mod.buckets.clone(),
        }
    }
}

/// `ofp_group_features` (spec 7.3.5.11), 40 bytes. Arrays are indexed by group type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GroupFeatures {
    pub types: u32,
    pub capabilities: u32,
    pub max_groups: [u32; 4],
    pub actions: [u32; 4],
}

/// `ofp_meter_stats` (spec 7.3.5.12): 40 bytes plus one counter per band.
/// ```text
/// meter_id u32 | len u16 | pad 6 | flow_count u32 | packet_in_count u64 |
/// byte_in_count u64 | duration_sec u32 | duration_nsec u32 | band_stats
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct MeterStats {
    pub meter_id: u32,
    pub flow_count: u32,
    pub packet_in_count: u64,
    pub byte_in_count: u64,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub band_stats: Vec<MeterBandStats>,
}

/// `ofp_meter_band_stats`, 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MeterBandStats {
    pub packet_band_count: u64,
    pub byte_band_count: u64,
}

/// `ofp_meter_config` (spec 7.3.5.13): `length u16 | flags u16 | meter_id u32 | bands`.
///
/// Open vSwitch reports `flags` as the METER_MOD sent them (it adds no
/// OFPMF_STATS; flags it does not support are refused) and the bands in
/// their order, with one change: its userspace (netdev) datapath gives a
/// band whose `burst_size` is 0 a burst of its rate and reports that,
/// whatever OFPMF_BURST says (`dpif-netdev.c`, `dp_netdev_meter_set`); the
/// kernel datapath reports the 0. So a desired meter compares equal to the
/// installed one band by band as [`MeterBand::canonical`]
/// (`tests/ovs_bridge_oracle.rs`). The userspace datapath refuses bands
/// other than drop (OFPMMFC_BAD_BAND).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MeterConfig {
    pub flags: u16,
    pub meter_id: u32,
    pub bands: Vec<MeterBand>,
}

impl From<&MeterMod> for MeterConfig {
    /// The meter `meter_mod` installs, as sent (see [`MeterConfig`] for
    /// what a switch may change).
    fn from(meter_mod: &MeterMod) -> MeterConfig {
        MeterConfig {
            flags: meter_mod.flags,
            meter_id: meter_mod.meter_id,
            bands: meter_mod.bands.clone(),
        }
    }
}

/// `ofp_meter_features` (spec 7.3.5.14), 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MeterFeatures {
    pub max_meter: u32,
    pub band_types: u32,
    pub capabilities: u32,
    pub max_bands: u8,
    pub max_color: u8,
}

/// Why two reply parts cannot be merged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// The next part has another multipart type than the first: the switch
    /// interleaved replies or the xid was reused.
    #[error("multipart reply type mismatch: have {have}, next part is {next}")]
    TypeMismatch { have: u16, next: u16 },
    /// This type's body is a single record, so a second part has nothing to join.
    #[error("multipart reply type {0} is not a list and cannot span parts")]
    NotAList(u16),
}

// ---------------------------------------------------------------------------
// Small helpers shared by the bodies.

/// Reads the type/flags/pad prefix.
fn parse_prefix(r: &mut Reader<'_>) -> Result<(u16, u16)> {
    let mp_type = r.u16()?;
    let flags = r.u16()?;
    r.skip(4)?;
    Ok((mp_type, flags))
}

fn emit_prefix(out: &mut BytesMut, mp_type: u16, flags: u16) {
    out.put_u16(mp_type);
    out.put_u16(flags);
    put_zeros(out, 4);
}

/// Parses records until the reader is empty. A record parser that consumes
/// nothing would loop forever, so that is turned into an error.
fn parse_all<T: Wire>(r: &mut Reader<'_>, what: &'static str) -> Result<Vec<T>> {
    let mut items = Vec::new();
    while !r.is_empty() {
        let before = r.remaining();
        items.push(T::parse(r)?);
        if r.remaining() == before {
            return Err(DecodeError::BadLength { what, len: 0 });
        }
    }
    Ok(items)
}

fn all_len<T: Wire>(items: &[T]) -> usize {
    items.iter().map(Wire::buffer_len).sum()
}

fn emit_all<T: Wire>(items: &[T], out: &mut BytesMut) {
    for item in items {
        item.emit(out);
    }
}

/// Takes a record whose u16 length sits `at` bytes into it, checking that the
/// length covers at least the record's fixed part.
fn record<'a>(
    r: &mut Reader<'a>,
    at: usize,
    fixed: usize,
    what: &'static str,
) -> Result<Reader<'a>> {
    let len = usize::from(r.peek_u16(at)?);
    if len < fixed {
        return Err(DecodeError::BadLength { what, len });
    }
    r.sub(len, what)
}

// ---------------------------------------------------------------------------
// Requests.

impl MultipartRequestBody {
    /// The `ofp_multipart_type` this body is sent as.
    pub fn mp_type(&self) -> u16 {
        use multipart_type as t;
        match self {
            Self::Desc => t::DESC,
            Self::Flow(_) => t::FLOW,
            Self::Aggregate(_) => t::AGGREGATE,
            Self::Table => t::TABLE,
            Self::PortStats { .. } => t::PORT_STATS,
            Self::Queue { .. } => t::QUEUE,
            Self::Group { .. } => t::GROUP,
            Self::GroupDesc => t::GROUP_DESC,
            Self::GroupFeatures => t::GROUP_FEATURES,
            Self::Meter { .. } => t::METER,
            Self::MeterConfig { .. } => t::METER_CONFIG,
            Self::MeterFeatures => t::METER_FEATURES,
            Self::TableFeatures(_) => t::TABLE_FEATURES,
            Self::PortDesc => t::PORT_DESC,
            Self::Experimenter { .. } => t::EXPERIMENTER,
            Self::Unknown { mp_type, .. } => *mp_type,
        }
    }

    fn parse(mp_type: u16, r: &mut Reader<'_>) -> Result<Self> {
        use multipart_type as t;
        let body = match mp_type {
            t::DESC => Self::Desc,
            t::FLOW => Self::Flow(FlowStatsRequest::parse(r)?),
            t::AGGREGATE => Self::Aggregate(FlowStatsRequest::parse(r)?),
            t::TABLE => Self::Table,
            t::PORT_STATS => {
                let port_no = r.u32()?;
                r.skip(4)?;
                Self::PortStats { port_no }
            }
            t::QUEUE => Self::Queue {
                port_no: r.u32()?,
                queue_id: r.u32()?,
            },
            t::GROUP => {
                let group_id = r.u32()?;
                r.skip(4)?;
                Self::Group { group_id }
            }
            t::GROUP_DESC => Self::GroupDesc,
            t::GROUP_FEATURES => Self::GroupFeatures,
            t::METER | t::METER_CONFIG => {
                let meter_id = r.u32()?;
                r.skip(4)?;
                if mp_type == t::METER {
                    Self::Meter { meter_id }
                } else {
                    Self::MeterConfig { meter_id }
                }
            }
            t::METER_FEATURES => Self::MeterFeatures,
            t::TABLE_FEATURES => Self::TableFeatures(Bytes::copy_from_slice(r.rest())),
            t::PORT_DESC => Self::PortDesc,
            t::EXPERIMENTER => Self::Experimenter {
                experimenter: r.u32()?,
                exp_type: r.u32()?,
                data: Bytes::copy_from_slice(r.rest()),
            },
            _ => Self::Unknown {
                mp_type,
                data: Bytes::copy_from_slice(r.rest()),
            },
        };
        r.finish()?;
        Ok(body)
    }

    fn buffer_len(&self) -> usize {
        match self {
            Self::Desc
            | Self::Table
            | Self::GroupDesc
            | Self::GroupFeatures
            | Self::MeterFeatures
            | Self::PortDesc => 0,
            Self::Flow(req) | Self::Aggregate(req) => req.buffer_len(),
            Self::PortStats { .. }
            | Self::Queue { .. }
            | Self::Group { .. }
            | Self::Meter { .. }
            | Self::MeterConfig { .. } => 8,
            Self::TableFeatures(data) | Self::Unknown { data, .. } => data.len(),
            Self::Experimenter { data, .. } => 8 + data.len(),
        }
    }

    fn emit(&self, out: &mut BytesMut) {
        match self {
            Self::Desc
            | Self::Table
            | Self::GroupDesc
            | Self::GroupFeatures
            | Self::MeterFeatures
            | Self::PortDesc => {}
            Self::Flow(req) | Self::Aggregate(req) => req.emit(out),
            Self::PortStats { port_no: id }
            | Self::Group { group_id: id }
            | Self::Meter { meter_id: id }
            | Self::MeterConfig { meter_id: id } => {
                out.put_u32(*id);
                put_zeros(out, 4);
            }
            Self::Queue { port_no, queue_id } => {
                out.put_u32(*port_no);
                out.put_u32(*queue_id);
            }
            Self::TableFeatures(data) | Self::Unknown { data, .. } => out.put_slice(data),
            Self::Experimenter {
                experimenter,
                exp_type,
                data,
            } => {
                out.put_u32(*experimenter);
                out.put_u32(*exp_type);
                out.put_slice(data);
            }
        }
    }
}

impl MultipartRequest {
    /// A request without the REQUEST_MORE flag.
    pub fn new(body: MultipartRequestBody) -> Self {
        MultipartRequest { flags: 0, body }
    }
}

/// Parses the whole message body (everything after the OpenFlow header).
impl Wire for MultipartRequest {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let (mp_type, flags) = parse_prefix(r)?;
        let body = MultipartRequestBody::parse(mp_type, r)?;
        Ok(MultipartRequest { flags, body })
    }

    fn buffer_len(&self) -> usize {
        PREFIX_LEN + self.body.buffer_len()
    }

    fn emit(&self, out: &mut BytesMut) {
        emit_prefix(out, self.body.mp_type(), self.flags);
        self.body.emit(out);
    }
}

impl Wire for FlowStatsRequest {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let table_id = r.u8()?;
        r.skip(3)?;
        let out_port = r.u32()?;
        let out_group = r.u32()?;
        r.skip(4)?;
        let cookie = r.u64()?;
        let cookie_mask = r.u64()?;
        let match_ = Match::parse(r)?;
        Ok(FlowStatsRequest {
            table_id,
            out_port,
            out_group,
            cookie,
            cookie_mask,
            match_,
        })
    }

    fn buffer_len(&self) -> usize {
        FLOW_STATS_REQUEST_FIXED + self.match_.buffer_len()
    }

    fn emit(&self, out: &mut BytesMut) {
        out.put_u8(self.table_id);
        put_zeros(out, 3);
        out.put_u32(self.out_port);
        out.put_u32(self.out_group);
        put_zeros(out, 4);
        out.put_u64(self.cookie);
        out.put_u64(self.cookie_mask);
        self.match_.emit(out);
    }
}

// ---------------------------------------------------------------------------
// Replies.

impl MultipartReplyBody {
    /// The `ofp_multipart_type` this body is sent as.
    pub fn mp_type(&self) -> u16 {
        use multipart_type as t;
        match self {
            Self::Desc(_) => t::DESC,
            Self::Flow(_) => t::FLOW,
            Self::Aggregate(_) => t::AGGREGATE,
            Self::Table(_) => t::TABLE,
            Self::PortStats(_) => t::PORT_STATS,
            Self::Queue(_) => t::QUEUE,
            Self::Group(_) => t::GROUP,
            Self::GroupDesc(_) => t::GROUP_DESC,
            Self::GroupFeatures(_) => t::GROUP_FEATURES,
            Self::Meter(_) => t::METER,
            Self::MeterConfig(_) => t::METER_CONFIG,
            Self::MeterFeatures(_) => t::METER_FEATURES,
            Self::TableFeatures(_) => t::TABLE_FEATURES,
            Self::PortDesc(_) => t::PORT_DESC,
            Self::Experimenter { .. } => t::EXPERIMENTER,
            Self::Unknown { mp_type, .. } => *mp_type,
        }
    }

    /// Appends the next part of a REPLY_MORE sequence (same type) to this one.
    ///
    /// List bodies concatenate (raw table features concatenate their bytes,
    /// which is the same array split elsewhere). Single-record bodies
    /// (desc, aggregate, features, experimenter, unknown) cannot span parts.
    pub fn merge(&mut self, next: MultipartReplyBody) -> core::result::Result<(), MergeError> {
        match (self, next) {
            (Self::Flow(a), Self::Flow(b)) => a.extend(b),
            (Self::Table(a), Self::Table(b)) => a.extend(b),
            (Self::PortStats(a), Self::PortStats(b)) => a.extend(b),
            (Self::Queue(a), Self::Queue(b)) => a.extend(b),
            (Self::Group(a), Self::Group(b)) => a.extend(b),
            (Self::GroupDesc(a), Self::GroupDesc(b)) => a.extend(b),
            (Self::Meter(a), Self::Meter(b)) => a.extend(b),
            (Self::MeterConfig(a), Self::MeterConfig(b)) => a.extend(b),
            (Self::PortDesc(a), Self::PortDesc(b)) => a.extend(b),
            (Self::TableFeatures(a), Self::TableFeatures(b)) => {
                let mut joined = BytesMut::with_capacity(a.len() + b.len());
                joined.put_slice(a);
                joined.put_slice(&b);
                *a = joined.freeze();
            }
            (this, next) => {
                let (have, next) = (this.mp_type(), next.mp_type());
                return Err(if have == next {
                    MergeError::NotAList(have)
                } else {
                    MergeError::TypeMismatch { have, next }
                });
            }
        }
        Ok(())
    }

    fn parse(mp_type: u16, r: &mut Reader<'_>) -> Result<Self> {
        use multipart_type as t;
        let body = match mp_type {
            t::DESC => Self::Desc(DescStats::parse(r)?),
            t::FLOW => Self::Flow(parse_all(r, "flow stats")?),
            t::AGGREGATE => Self::Aggregate(AggregateStats::parse(r)?),
            t::TABLE => Self::Table(parse_all(r, "table stats")?),
            t::PORT_STATS => Self::PortStats(parse_all(r, "port stats")?),
            t::QUEUE => Self::Queue(parse_all(r, "queue stats")?),
            t::GROUP => Self::Group(parse_all(r, "group stats")?),
            t::GROUP_DESC => Self::GroupDesc(parse_all(r, "group desc")?),
            t::GROUP_FEATURES => Self::GroupFeatures(GroupFeatures::parse(r)?),
            t::METER => Self::Meter(parse_all(r, "meter stats")?),
            t::METER_CONFIG => Self::MeterConfig(parse_all(r, "meter config")?),
            t::METER_FEATURES => Self::MeterFeatures(MeterFeatures::parse(r)?),
            t::TABLE_FEATURES => Self::TableFeatures(Bytes::copy_from_slice(r.rest())),
            t::PORT_DESC => Self::PortDesc(parse_all(r, "port desc")?),
            t::EXPERIMENTER => Self::Experimenter {
                experimenter: r.u32()?,
                exp_type: r.u32()?,
                data: Bytes::copy_from_slice(r.rest()),
            },
            _ => Self::Unknown {
                mp_type,
                data: Bytes::copy_from_slice(r.rest()),
            },
        };
        r.finish()?;
        Ok(body)
    }

    fn buffer_len(&self) -> usize {
        match self {
            Self::Desc(_) => DESC_LEN,
            Self::Flow(v) => all_len(v),
            Self::Aggregate(_) => AGGREGATE_LEN,
            Self::Table(v) => all_len(v),
            Self::PortStats(v) => all_len(v),
            Self::Queue(v) => all_len(v),
            Self::Group(v) => all_len(v),
            Self::GroupDesc(v) => all_len(v),
            Self::GroupFeatures(_) => GROUP_FEATURES_LEN,
            Self::Meter(v) => all_len(v),
            Self::MeterConfig(v) => all_len(v),
            Self::MeterFeatures(_) => METER_FEATURES_LEN,
            Self::TableFeatures(data) | Self::Unknown { data, .. } => data.len(),
            Self::PortDesc(v) => all_len(v),
            Self::Experimenter { data, .. } => 8 + data.len(),
        }
    }

    fn emit(&self, out: &mut BytesMut) {
        match self {
            Self::Desc(d) => d.emit(out),
            Self::Flow(v) => emit_all(v, out),
            Self::Aggregate(a) => a.emit(out),
            Self::Table(v) => emit_all(v, out),
            Self::PortStats(v) => emit_all(v, out),
            Self::Queue(v) => emit_all(v, out),
            Self::Group(v) => emit_all(v, out),
            Self::GroupDesc(v) => emit_all(v, out),
            Self::GroupFeatures(g) => g.emit(out),
            Self::Meter(v) => emit_all(v, out),
            Self::MeterConfig(v) => emit_all(v, out),
            Self::MeterFeatures(m) => m.emit(out),
            Self::TableFeatures(data) | Self::Unknown { data, .. } => out.put_slice(data),
            Self::PortDesc(v) => emit_all(v, out),
            Self::Experimenter {
                experimenter,
                exp_type,
                data,
            } => {
                out.put_u32(*experimenter);
                out.put_u32(*exp_type);
                out.put_slice(data);
            }
        }
    }
}

impl MultipartReply {
    /// A final (not REPLY_MORE) reply part.
    pub fn new(body: MultipartReplyBody) -> Self {
        MultipartReply { flags: 0, body }
    }

    /// True when the switch will send more parts of this reply.
    pub fn more(&self) -> bool {
        self.flags & multipart_flags::REPLY_MORE != 0
    }
}

/// Parses the whole message body (everything after the OpenFlow header).
impl Wire for MultipartReply {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let (mp_type, flags) = parse_prefix(r)?;
        let body = MultipartReplyBody::parse(mp_type, r)?;
        Ok(MultipartReply { flags, body })
    }

    fn buffer_len(&self) -> usize {
        PREFIX_LEN + self.body.buffer_len()
    }

    fn emit(&self, out: &mut BytesMut) {
        emit_prefix(out, self.body.mp_type(), self.flags);
        self.body.emit(out);
    }
}

impl Wire for DescStats {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        Ok(DescStats {
            mfr_desc: read_fixed_str(r, DESC_STR_LEN)?,
            hw_desc: read_fixed_str(r, DESC_STR_LEN)?,
            sw_desc: read_fixed_str(r, DESC_STR_LEN)?,
            serial_num: read_fixed_str(r, SERIAL_NUM_LEN)?,
            dp_desc: read_fixed_str(r, DESC_STR_LEN)?,
        })
    }

    fn buffer_len(&self) -> usize {
        DESC_LEN
    }

    fn emit(&self, out: &mut BytesMut) {
        put_fixed_str(out, &self.mfr_desc, DESC_STR_LEN);
        put_fixed_str(out, &self.hw_desc, DESC_STR_LEN);
        put_fixed_str(out, &self.sw_desc, DESC_STR_LEN);
        put_fixed_str(out, &self.serial_num, SERIAL_NUM_LEN);
        put_fixed_str(out, &self.dp_desc, DESC_STR_LEN);
    }
}

impl Wire for FlowStats {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let mut s = record(r, 0, FLOW_STATS_FIXED, "flow stats")?;
        s.skip(2)?;
        let table_id = s.u8()?;
        s.skip(1)?;
        let duration_sec = s.u32()?;
        let duration_nsec = s.u32()?;
        let priority = s.u16()?;
        let idle_timeout = s.u16()?;
        let hard_timeout = s.u16()?;
        let flags = s.u16()?;
        s.skip(4)?;
        let cookie = s.u64()?;
        let packet_count = s.u64()?;
        let byte_count = s.u64()?;
        let match_ = Match::parse(&mut s)?;
        let rest = s.remaining();
        let instructions = parse_instructions(&mut s, rest)?;
        s.finish()?;
        Ok(FlowStats {
            table_id,
            duration_sec,
            duration_nsec,
            priority,
            idle_timeout,
            hard_timeout,
            flags,
            cookie,
            packet_count,
            byte_count,
            match_,
            instructions,
        })
    }

    fn buffer_len(&self) -> usize {
        FLOW_STATS_FIXED + self.match_.buffer_len() + instructions_len(&self.instructions)
    }

    fn emit(&self, out: &mut BytesMut) {
        out.put_u16(len16(self.buffer_len()));
        out.put_u8(self.table_id);
        put_zeros(out, 1);
        out.put_u32(self.duration_sec);
        out.put_u32(self.duration_nsec);
        out.put_u16(self.priority);
        out.put_u16(self.idle_timeout);
        out.put_u16(self.hard_timeout);
        out.put_u16(self.flags);
        put_zeros(out, 4);
        out.put_u64(self.cookie);
        out.put_u64(self.packet_count);
        out.put_u64(self.byte_count);
        self.match_.emit(out);
        emit_instructions(&self.instructions, out);
    }
}

impl Wire for AggregateStats {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let packet_count = r.u64()?;
        let byte_count = r.u64()?;
        let flow_count = r.u32()?;
        r.skip(4)?;
        Ok(AggregateStats {
            packet_count,
            byte_count,
            flow_count,
        })
    }

    fn buffer_len(&self) -> usize {
        AGGREGATE_LEN
    }

    fn emit(&self, out: &mut BytesMut) {
        out.put_u64(self.packet_count);
        out.put_u64(self.byte_count);
        out.put_u32(self.flow_count);
        put_zeros(out, 4);
    }
}

impl Wire for TableStats {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let table_id = r.u8()?;
        r.skip(3)?;
        Ok(TableStats {
            table_id,
            active_count: r.u32()?,
            lookup_count: r.u64()?,
            matched_count: r.u64()?,
        })
    }

    fn buffer_len(&self) -> usize {
        TABLE_STATS_LEN
    }

    fn emit(&self, out: &mut BytesMut) {
        out.put_u8(self.table_id);
        put_zeros(out, 3);
        out.put_u32(self.active_count);
        out.put_u64(self.lookup_count);
        out.put_u64(self.matched_count);
    }
}

impl Wire for PortStats {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let port_no = r.u32()?;
        r.skip(4)?;
        Ok(PortStats {
            port_no,
            rx_packets: r.u64()?,
            tx_packets: r.u64()?,
            rx_bytes: r.u64()?,
            tx_bytes: r.u64()?,
            rx_dropped: r.u64()?,
            tx_dropped: r.u64()?,
            rx_errors: r.u64()?,
            tx_errors: r.u64()?,
            rx_frame_err: r.u64()?,
            rx_over_err: r.u64()?,
            rx_crc_err: r.u64()?,
            collisions: r.u64()?,
            duration_sec: r.u32()?,
            duration_nsec: r.u32()?,
        })
    }

    fn buffer_len(&self) -> usize {
        PORT_STATS_LEN
    }

    fn emit(&self, out: &mut BytesMut) {
        out.put_u32(self.port_no);
        put_zeros(out, 4);
        for counter in [
            self.rx_packets,
            self.tx_packets,
            self.rx_bytes,
            self.tx_bytes,
            self.rx_dropped,
            self.tx_dropped,
            self.rx_errors,
            self.tx_errors,
            self.rx_frame_err,
            self.rx_over_err,
            self.rx_crc_err,
            self.collisions,
        ] {
            out.put_u64(counter);
        }
        out.put_u32(self.duration_sec);
        out.put_u32(self.duration_nsec);
    }
}

impl Wire for QueueStats {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        Ok(QueueStats {
            port_no: r.u32()?,
            queue_id: r.u32()?,
            tx_bytes: r.u64()?,
            tx_packets: r.u64()?,
            tx_errors: r.u64()?,
            duration_sec: r.u32()?,
            duration_nsec: r.u32()?,
        })
    }

    fn buffer_len(&self) -> usize {
        QUEUE_STATS_LEN
    }

    fn emit(&self, out: &mut BytesMut) {
        out.put_u32(self.port_no);
        out.put_u32(self.queue_id);
        out.put_u64(self.tx_bytes);
        out.put_u64(self.tx_packets);
        out.put_u64(self.tx_errors);
        out.put_u32(self.duration_sec);
        out.put_u32(self.duration_nsec);
    }
}

impl Wire for GroupStats {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let mut s = record(r, 0, GROUP_STATS_FIXED, "group stats")?;
        let len = s.u16()?;
        s.skip(2)?;
        let group_id = s.u32()?;
        let ref_count = s.u32()?;
        s.skip(4)?;
        let packet_count = s.u64()?;
        let byte_count = s.u64()?;
        let duration_sec = s.u32()?;
        let duration_nsec = s.u32()?;
        if s.remaining() % BUCKET_COUNTER_LEN != 0 {
            return Err(DecodeError::BadLength {
                what: "group stats",
                len: usize::from(len),
            });
        }
        let bucket_stats = parse_all(&mut s, "bucket counter")?;
        Ok(GroupStats {
            group_id,
            ref_count,
            packet_count,
            byte_count,
            duration_sec,
            duration_nsec,
            bucket_stats,
        })
    }

    fn buffer_len(&self) -> usize {
        GROUP_STATS_FIXED + BUCKET_COUNTER_LEN * self.bucket_stats.len()
    }

    fn emit(&self, out: &mut BytesMut) {
        out.put_u16(len16(self.buffer_len()));
        put_zeros(out, 2);
        out.put_u32(self.group_id);
        out.put_u32(self.ref_count);
        put_zeros(out, 4);
        out.put_u64(self.packet_count);
        out.put_u64(self.byte_count);
        out.put_u32(self.duration_sec);
        out.put_u32(self.duration_nsec);
        emit_all(&self.bucket_stats, out);
    }
}

impl Wire for BucketCounter {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        Ok(BucketCounter {
            packet_count: r.u64()?,
            byte_count: r.u64()?,
        })
    }

    fn buffer_len(&self) -> usize {
        BUCKET_COUNTER_LEN
    }

    fn emit(&self, out: &mut BytesMut) {
        out.put_u64(self.packet_count);
        out.put_u64(self.byte_count);
    }
}

impl Wire for GroupDesc {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let mut s = record(r, 0, GROUP_DESC_FIXED, "group desc")?;
        s.skip(2)?;
        let group_type = GroupType::from(s.u8()?);
        s.skip(1)?;
        let group_id = s.u32()?;
        let buckets = parse_buckets(&mut s)?;
        Ok(GroupDesc {
            group_type,
            group_id,
            buckets,
        })
    }

    fn buffer_len(&self) -> usize {
        GROUP_DESC_FIXED + buckets_len(&self.buckets)
    }

    fn emit(&self, out: &mut BytesMut) {
        out.put_u16(len16(self.buffer_len()));
        out.put_u8(u8::from(self.group_type));
        put_zeros(out, 1);
        out.put_u32(self.group_id);
        emit_buckets(&self.buckets, out);
    }
}

impl Wire for GroupFeatures {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let types = r.u32()?;
        let capabilities = r.u32()?;
        let mut max_groups = [0u32; 4];
        for slot in &mut max_groups {
            *slot = r.u32()?;
        }
        let mut actions = [0u32; 4];
        for slot in &mut actions {
            *slot = r.u32()?;
        }
        Ok(GroupFeatures {
            types,
            capabilities,
            max_groups,
            actions,
        })
    }

    fn buffer_len(&self) -> usize {
        GROUP_FEATURES_LEN
    }

    fn emit(&self, out: &mut BytesMut) {
        out.put_u32(self.types);
        out.put_u32(self.capabilities);
        for v in self.max_groups.iter().chain(&self.actions) {
            out.put_u32(*v);
        }
    }
}

impl Wire for MeterStats {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let mut s = record(r, 4, METER_STATS_FIXED, "meter stats")?;
        let meter_id = s.u32()?;
        let len = s.u16()?;
        s.skip(6)?;
        let flow_count = s.u32()?;
        let packet_in_count = s.u64()?;
        let byte_in_count = s.u64()?;
        let duration_sec = s.u32()?;
        let duration_nsec = s.u32()?;
        if s.remaining() % METER_BAND_STATS_LEN != 0 {
            return Err(DecodeError::BadLength {
                what: "meter stats",
                len: usize::from(len),
            });
        }
        let band_stats = parse_all(&mut s, "meter band stats")?;
        Ok(MeterStats {
            meter_id,
            flow_count,
            packet_in_count,
            byte_in_count,
            duration_sec,
            duration_nsec,
            band_stats,
        })
    }

    fn buffer_len(&self) -> usize {
        METER_STATS_FIXED + METER_BAND_STATS_LEN * self.band_stats.len()
    }

    fn emit(&self, out: &mut BytesMut) {
        out.put_u32(self.meter_id);
        out.put_u16(len16(self.buffer_len()));
        put_zeros(out, 6);
        out.put_u32(self.flow_count);
        out.put_u64(self.packet_in_count);
        out.put_u64(self.byte_in_count);
        out.put_u32(self.duration_sec);
        out.put_u32(self.duration_nsec);
        emit_all(&self.band_stats, out);
    }
}

impl Wire for MeterBandStats {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        Ok(MeterBandStats {
            packet_band_count: r.u64()?,
            byte_band_count: r.u64()?,
        })
    }

    fn buffer_len(&self) -> usize {
        METER_BAND_STATS_LEN
    }

    fn emit(&self, out: &mut BytesMut) {
        out.put_u64(self.packet_band_count);
        out.put_u64(self.byte_band_count);
    }
}

impl Wire for MeterConfig {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let mut s = record(r, 0, METER_CONFIG_FIXED, "meter config")?;
        s.skip(2)?;
        let flags = s.u16()?;
        let meter_id = s.u32()?;
        let bands = parse_bands(&mut s)?;
        Ok(MeterConfig {
            flags,
            meter_id,
            bands,
        })
    }

    fn buffer_len(&self) -> usize {
        METER_CONFIG_FIXED + bands_len(&self.bands)
    }

    fn emit(&self, out: &mut BytesMut) {
        out.put_u16(len16(self.buffer_len()));
        out.put_u16(self.flags);
        out.put_u32(self.meter_id);
        emit_bands(&self.bands, out);
    }
}

impl Wire for MeterFeatures {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let out = MeterFeatures {
            max_meter: r.u32()?,
            band_types: r.u32()?,
            capabilities: r.u32()?,
            max_bands: r.u8()?,
            max_color: r.u8()?,
        };
        r.skip(2)?;
        Ok(out)
    }

    fn buffer_len(&self) -> usize {
        METER_FEATURES_LEN
    }

    fn emit(&self, out: &mut BytesMut) {
        out.put_u32(self.max_meter);
        out.put_u32(self.band_types);
        out.put_u32(self.capabilities);
        out.put_u8(self.max_bands);
        out.put_u8(self.max_color);
        put_zeros(out, 2);
    }
}

/// Strategies for multipart values that survive `emit` → `parse` unchanged
/// (usable by other modules' tests, e.g. a whole-message strategy).
#[cfg(test)]
pub(crate) mod strategies {
    use super::*;
    use crate::strategies::{
        arb_bucket, arb_bytes, arb_group_type, arb_instructions, arb_match, arb_meter_bands,
        arb_port,
    };
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn arb_flow_stats_request() -> impl Strategy<Value = FlowStatsRequest> {
        (any::<(u8, u32, u32, u64, u64)>(), arb_match()).prop_map(
            |((table_id, out_port, out_group, cookie, cookie_mask), match_)| FlowStatsRequest {
                table_id,
                out_port,
                out_group,
                cookie,
                cookie_mask,
                match_,
            },
        )
    }

    /// A multipart type number this codec does not know.
    fn unknown_type() -> impl Strategy<Value = u16> {
        (multipart_type::PORT_DESC + 1)..multipart_type::EXPERIMENTER
    }

    pub(crate) fn arb_multipart_request() -> impl Strategy<Value = MultipartRequest> {
        use MultipartRequestBody as B;
        let body = prop_oneof![
            Just(B::Desc),
            arb_flow_stats_request().prop_map(B::Flow),
            arb_flow_stats_request().prop_map(B::Aggregate),
            Just(B::Table),
            any::<u32>().prop_map(|port_no| B::PortStats { port_no }),
            any::<(u32, u32)>().prop_map(|(port_no, queue_id)| B::Queue { port_no, queue_id }),
            any::<u32>().prop_map(|group_id| B::Group { group_id }),
            Just(B::GroupDesc),
            Just(B::GroupFeatures),
            any::<u32>().prop_map(|meter_id| B::Meter { meter_id }),
            any::<u32>().prop_map(|meter_id| B::MeterConfig { meter_id }),
            Just(B::MeterFeatures),
            arb_bytes(0..200).prop_map(B::TableFeatures),
            Just(B::PortDesc),
            (any::<(u32, u32)>(), arb_bytes(0..40)).prop_map(|((experimenter, exp_type), data)| {
                B::Experimenter {
                    experimenter,
                    exp_type,
                    data,
                }
            }),
            (unknown_type(), arb_bytes(0..40))
                .prop_map(|(mp_type, data)| B::Unknown { mp_type, data }),
        ];
        (any::<u16>(), body).prop_map(|(flags, body)| MultipartRequest { flags, body })
    }

    fn arb_desc() -> impl Strategy<Value = DescStats> {
        // Up to the full field width (no NUL needed), any Unicode.
        (
            "\\PC{0,60}",
            "[ -~]{0,256}",
            "\\PC{0,20}",
            "[ -~]{0,32}",
            "[ -~]{0,256}",
        )
            .prop_map(
                |(mfr_desc, hw_desc, sw_desc, serial_num, dp_desc)| DescStats {
                    mfr_desc,
                    hw_desc,
                    sw_desc,
                    serial_num,
                    dp_desc,
                },
            )
    }

    fn arb_flow_stats() -> impl Strategy<Value = FlowStats> {
        (
            any::<(u8, u32, u32, u16, u16, u16, u16)>(),
            any::<(u64, u64, u64)>(),
            arb_match(),
            arb_instructions(),
        )
            .prop_map(
                |(
                    (
                        table_id,
                        duration_sec,
                        duration_nsec,
                        priority,
                        idle_timeout,
                        hard_timeout,
                        flags,
                    ),
                    (cookie, packet_count, byte_count),
                    match_,
                    instructions,
                )| FlowStats {
                    table_id,
                    duration_sec,
                    duration_nsec,
                    priority,
                    idle_timeout,
                    hard_timeout,
                    flags,
                    cookie,
                    packet_count,
                    byte_count,
                    match_,
                    instructions,
                },
            )
    }

    fn arb_port_stats() -> impl Strategy<Value = PortStats> {
        (any::<u32>(), any::<[u64; 12]>(), any::<(u32, u32)>()).prop_map(
            |(port_no, c, (duration_sec, duration_nsec))| PortStats {
                port_no,
                rx_packets: c[0],
                tx_packets: c[1],
                rx_bytes: c[2],
                tx_bytes: c[3],
                rx_dropped: c[4],
                tx_dropped: c[5],
                rx_errors: c[6],
                tx_errors: c[7],
                rx_frame_err: c[8],
                rx_over_err: c[9],
                rx_crc_err: c[10],
                collisions: c[11],
                duration_sec,
                duration_nsec,
            },
        )
    }

    fn arb_group_stats() -> impl Strategy<Value = GroupStats> {
        (
            any::<(u32, u32, u64, u64, u32, u32)>(),
            vec(any::<(u64, u64)>(), 0..4),
        )
            .prop_map(
                |(
                    (group_id, ref_count, packet_count, byte_count, duration_sec, duration_nsec),
                    b,
                )| {
                    GroupStats {
                        group_id,
                        ref_count,
                        packet_count,
                        byte_count,
                        duration_sec,
                        duration_nsec,
                        bucket_stats: b
                            .into_iter()
                            .map(|(packet_count, byte_count)| BucketCounter {
                                packet_count,
                                byte_count,
                            })
                            .collect(),
                    }
                },
            )
    }

    fn arb_meter_stats() -> impl Strategy<Value = MeterStats> {
        (
            any::<(u32, u32, u64, u64, u32, u32)>(),
            vec(any::<(u64, u64)>(), 0..4),
        )
            .prop_map(
                |(
                    (
                        meter_id,
                        flow_count,
                        packet_in_count,
                        byte_in_count,
                        duration_sec,
                        duration_nsec,
                    ),
                    b,
                )| {
                    MeterStats {
                        meter_id,
                        flow_count,
                        packet_in_count,
                        byte_in_count,
                        duration_sec,
                        duration_nsec,
                        band_stats: b
                            .into_iter()
                            .map(|(packet_band_count, byte_band_count)| MeterBandStats {
                                packet_band_count,
                                byte_band_count,
                            })
                            .collect(),
                    }
                },
            )
    }

    pub(crate) fn arb_multipart_reply_body() -> impl Strategy<Value = MultipartReplyBody> {
        use MultipartReplyBody as R;
        prop_oneof![
            arb_desc().prop_map(R::Desc),
            vec(arb_flow_stats(), 0..3).prop_map(R::Flow),
            any::<(u64, u64, u32)>().prop_map(|(packet_count, byte_count, flow_count)| {
                R::Aggregate(AggregateStats {
                    packet_count,
                    byte_count,
                    flow_count,
                })
            }),
            vec(any::<(u8, u32, u64, u64)>(), 0..4).prop_map(|v| R::Table(
                v.into_iter()
                    .map(
                        |(table_id, active_count, lookup_count, matched_count)| TableStats {
                            table_id,
                            active_count,
                            lookup_count,
                            matched_count,
                        }
                    )
                    .collect()
            )),
            vec(arb_port_stats(), 0..3).prop_map(R::PortStats),
            vec(any::<(u32, u32, u64, u64, u64, u32, u32)>(), 0..3).prop_map(|v| R::Queue(
                v.into_iter()
                    .map(
                        |(port_no, queue_id, tx_bytes, tx_packets, tx_errors, s, ns)| QueueStats {
                            port_no,
                            queue_id,
                            tx_bytes,
                            tx_packets,
                            tx_errors,
                            duration_sec: s,
                            duration_nsec: ns,
                        }
                    )
                    .collect()
            )),
            vec(arb_group_stats(), 0..3).prop_map(R::Group),
            vec(
                (arb_group_type(), any::<u32>(), vec(arb_bucket(), 0..3)).prop_map(
                    |(group_type, group_id, buckets)| GroupDesc {
                        group_type,
                        group_id,
                        buckets,
                    }
                ),
                0..3
            )
            .prop_map(R::GroupDesc),
            any::<(u32, u32, [u32; 4], [u32; 4])>().prop_map(
                |(types, capabilities, max_groups, actions)| R::GroupFeatures(GroupFeatures {
                    types,
                    capabilities,
                    max_groups,
                    actions,
                })
            ),
            vec(arb_meter_stats(), 0..3).prop_map(R::Meter),
            vec(
                (any::<(u16, u32)>(), arb_meter_bands()).prop_map(|((flags, meter_id), bands)| {
                    MeterConfig {
                        flags,
                        meter_id,
                        bands,
                    }
                }),
                0..3
            )
            .prop_map(R::MeterConfig),
            any::<(u32, u32, u32, u8, u8)>().prop_map(
                |(max_meter, band_types, capabilities, max_bands, max_color)| {
                    R::MeterFeatures(MeterFeatures {
                        max_meter,
                        band_types,
                        capabilities,
                        max_bands,
                        max_color,
                    })
                }
            ),
            arb_bytes(0..200).prop_map(R::TableFeatures),
            vec(arb_port(), 0..4).prop_map(R::PortDesc),
            (any::<(u32, u32)>(), arb_bytes(0..40)).prop_map(|((experimenter, exp_type), data)| {
                R::Experimenter {
                    experimenter,
                    exp_type,
                    data,
                }
            }),
            (unknown_type(), arb_bytes(0..40))
                .prop_map(|(mp_type, data)| R::Unknown { mp_type, data }),
        ]
    }

    pub(crate) fn arb_multipart_reply() -> impl Strategy<Value = MultipartReply> {
        (any::<u16>(), arb_multipart_reply_body())
            .prop_map(|(flags, body)| MultipartReply { flags, body })
    }
}

#[cfg(test)]
mod tests {
    use super::strategies::{arb_multipart_reply, arb_multipart_reply_body, arb_multipart_request};
    use super::*;
    use crate::action::Action;
    use crate::types::MacAddr;
    use proptest::prelude::*;

    fn emit<W: Wire>(w: &W) -> Vec<u8> {
        let mut out = BytesMut::new();
        w.emit(&mut out);
        assert_eq!(out.len(), w.buffer_len(), "buffer_len agrees with emit");
        out.to_vec()
    }

    fn parse<W: Wire>(bytes: &[u8]) -> Result<W> {
        W::parse(&mut Reader::new(bytes, "test"))
    }

    /// Asserts `bytes` parses to `want` and `want` emits exactly `bytes`.
    fn round_trip<W: Wire + PartialEq + core::fmt::Debug>(bytes: &[u8], want: &W) {
        assert_eq!(parse::<W>(bytes).as_ref(), Ok(want));
        assert_eq!(emit(want), bytes);
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex literal"))
            .collect()
    }

    #[test]
    fn empty_requests_are_just_the_prefix() {
        for (ty, body) in [
            (0u8, MultipartRequestBody::Desc),
            (3, MultipartRequestBody::Table),
            (7, MultipartRequestBody::GroupDesc),
            (8, MultipartRequestBody::GroupFeatures),
            (11, MultipartRequestBody::MeterFeatures),
            (13, MultipartRequestBody::PortDesc),
        ] {
            let bytes = [0, ty, 0, 0, 0, 0, 0, 0];
            round_trip(&bytes, &MultipartRequest::new(body));
            // A body where none belongs is a length error, not ignored.
            let mut long = bytes.to_vec();
            long.extend([0; 8]);
            assert!(matches!(
                parse::<MultipartRequest>(&long),
                Err(DecodeError::BadLength { .. })
            ));
        }
    }

    #[test]
    fn flow_stats_request_layout() {
        // table 1, out_port ANY, out_group ANY, cookie 0x1200/0xff00, match in_port=5.
        let bytes = hex("0001 0000 00000000
             01 000000 ffffffff ffffffff 00000000
             0000000000001200 000000000000ff00
             0001 000c 80000004 00000005 00000000");
        let want = MultipartRequest::new(MultipartRequestBody::Flow(FlowStatsRequest {
            table_id: 1,
            out_port: 0xffff_ffff,
            out_group: 0xffff_ffff,
            cookie: 0x1200,
            cookie_mask: 0xff00,
            match_: Match::new().with(crate::oxm::Oxm::InPort(5)),
        }));
        round_trip(&bytes, &want);
    }

    #[test]
    fn id_requests_layout() {
        round_trip(
            &hex("0004 0000 00000000 00000002 00000000"),
            &MultipartRequest::new(MultipartRequestBody::PortStats { port_no: 2 }),
        );
        round_trip(
            &hex("0005 0000 00000000 ffffffff 00000003"),
            &MultipartRequest::new(MultipartRequestBody::Queue {
                port_no: 0xffff_ffff,
                queue_id: 3,
            }),
        );
        round_trip(
            &hex("0006 0000 00000000 fffffffc 00000000"),
            &MultipartRequest::new(MultipartRequestBody::Group {
                group_id: 0xffff_fffc,
            }),
        );
        round_trip(
            &hex("0009 0000 00000000 00000001 00000000"),
            &MultipartRequest::new(MultipartRequestBody::Meter { meter_id: 1 }),
        );
        round_trip(
            &hex("000a 0001 00000000 ffffffff 00000000"),
            &MultipartRequest {
                flags: multipart_flags::REQUEST_MORE,
                body: MultipartRequestBody::MeterConfig {
                    meter_id: 0xffff_ffff,
                },
            },
        );
        round_trip(
            &hex("ffff 0000 00000000 00002320 00000007 abcd"),
            &MultipartRequest::new(MultipartRequestBody::Experimenter {
                experimenter: 0x2320,
                exp_type: 7,
                data: Bytes::from_static(&[0xab, 0xcd]),
            }),
        );
        round_trip(
            &hex("0063 0000 00000000 0102"),
            &MultipartRequest::new(MultipartRequestBody::Unknown {
                mp_type: 0x63,
                data: Bytes::from_static(&[1, 2]),
            }),
        );
    }

    #[test]
    fn flow_stats_reply_layout() {
        // One flow: table 0, 1.5 s, priority 10, cookie 7, 3 packets / 180 bytes,
        // match empty, apply-actions output:2.
        let bytes = hex("0001 0001 00000000
             0050 00 00 00000001 1dcd6500 000a 0000 0000 0000 00000000
             0000000000000007 0000000000000003 00000000000000b4
             0001 0004 00000000
             0004 0018 00000000 0000 0010 00000002 0000 000000000000");
        let want = MultipartReply {
            flags: multipart_flags::REPLY_MORE,
            body: MultipartReplyBody::Flow(vec![FlowStats {
                table_id: 0,
                duration_sec: 1,
                duration_nsec: 500_000_000,
                priority: 10,
                idle_timeout: 0,
                hard_timeout: 0,
                flags: 0,
                cookie: 7,
                packet_count: 3,
                byte_count: 180,
                match_: Match::new(),
                instructions: vec![Instruction::ApplyActions(vec![Action::Output {
                    port: 2,
                    max_len: 0,
                }])],
            }]),
        };
        round_trip(&bytes, &want);
        assert!(want.more());
    }

    #[test]
    fn variable_records_reject_bad_lengths() {
        // Flow stats with a length below its fixed part, past the body, or
        // with bytes after the instructions that are not an instruction.
        for len in ["0000", "0020", "0050"] {
            let bytes = hex(&format!(
                "0001 0000 00000000 {len} 0000 00000000 00000000 0000 0000 0000 0000 00000000
                 0000000000000000 0000000000000000 0000000000000000 0001 0004 00000000"
            ));
            assert!(parse::<MultipartReply>(&bytes).is_err(), "length {len}");
        }
        // Group stats whose tail is not a whole number of bucket counters.
        let bytes = hex("0006 0000 00000000 0030 0000 00000001 00000000 00000000
             0000000000000000 0000000000000000 00000000 00000000 0000000000000000");
        assert!(matches!(
            parse::<MultipartReply>(&bytes),
            Err(DecodeError::BadLength { .. })
        ));
        // Meter stats carry their length at offset 4; 0 is impossible.
        let bytes = hex("0009 0000 00000000 00000001 0000 000000000000 00000000
             0000000000000000 0000000000000000 00000000 00000000");
        assert!(matches!(
            parse::<MultipartReply>(&bytes),
            Err(DecodeError::BadLength { len: 0, .. })
        ));
        // A fixed-size list body with a partial trailing record.
        let mut bytes = hex("0003 0000 00000000");
        bytes.extend([0; 24 + 5]);
        assert!(parse::<MultipartReply>(&bytes).is_err());
    }

    #[test]
    fn group_desc_and_meter_config_layout() {
        let bytes = hex("0007 0000 00000000
             0028 01 00 00000005
             0020 0003 ffffffff ffffffff 00000000 0000 0010 00000001 0000 000000000000
             0018 000e 00000064
             0001 0010 000003e8 0000000a 00000000");
        let reply: MultipartReply = parse(&bytes[..48]).expect("group desc");
        assert_eq!(
            reply.body,
            MultipartReplyBody::GroupDesc(vec![GroupDesc {
                group_type: GroupType::Select,
                group_id: 5,
                buckets: vec![Bucket {
                    weight: 3,
                    watch_port: 0xffff_ffff,
                    watch_group: 0xffff_ffff,
                    actions: vec![Action::Output {
                        port: 1,
                        max_len: 0
                    }],
                }],
            }])
        );
        assert_eq!(emit(&reply), &bytes[..48]);
        let mut mc = hex("000a 0000 00000000");
        mc.extend_from_slice(&bytes[48..]);
        round_trip(
            &mc,
            &MultipartReply::new(MultipartReplyBody::MeterConfig(vec![MeterConfig {
                flags: 14,
                meter_id: 100,
                bands: vec![MeterBand::Drop {
                    rate: 1000,
                    burst_size: 10,
                }],
            }])),
        );
    }

    #[test]
    fn desc_strings_are_nul_padded_and_never_grow() {
        let desc = DescStats {
            mfr_desc: "Nicira, Inc.".into(),
            hw_desc: "Open vSwitch".into(),
            sw_desc: "3.1.0".into(),
            serial_num: "x".repeat(SERIAL_NUM_LEN),
            dp_desc: String::new(),
        };
        let bytes = emit(&desc);
        assert_eq!(bytes.len(), DESC_LEN);
        assert_eq!(&bytes[..13], b"Nicira, Inc.\0");
        // A field filled to the brim has no NUL and still round-trips.
        assert_eq!(parse::<DescStats>(&bytes), Ok(desc));

        // Invalid UTF-8 becomes one '?' per byte; text after a NUL is dropped.
        let mut raw = vec![0u8; DESC_LEN];
        raw[..6].copy_from_slice(&[b'a', 0xff, 0xfe, b'b', 0, b'z']);
        let d = parse::<DescStats>(&raw).expect("desc");
        assert_eq!(d.mfr_desc, "a??b");

        // Over-long strings are cut on a char boundary, never mid-character.
        let long = DescStats {
            serial_num: "é".repeat(20), // 40 bytes of 2-byte chars
            ..DescStats::default()
        };
        let d = parse::<DescStats>(&emit(&long)).expect("desc");
        assert_eq!(d.serial_num, "é".repeat(16));
    }

    #[test]
    fn fixed_size_replies_layout() {
        round_trip(
            &hex("0002 0000 00000000 0000000000000007 000000000000023e 00000006 00000000"),
            &MultipartReply::new(MultipartReplyBody::Aggregate(AggregateStats {
                packet_count: 7,
                byte_count: 574,
                flow_count: 6,
            })),
        );
        round_trip(
            &hex("000b 0000 00000000 01000000 80000006 0000000f ff 00 0000"),
            &MultipartReply::new(MultipartReplyBody::MeterFeatures(MeterFeatures {
                max_meter: 0x0100_0000,
                band_types: 0x8000_0006,
                capabilities: 15,
                max_bands: 255,
                max_color: 0,
            })),
        );
        // Truncated fixed bodies are errors.
        assert!(matches!(
            parse::<MultipartReply>(&hex("0002 0000 00000000 0000000000000007")),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn merge_concatenates_same_type_lists() {
        let port = |n| Port {
            port_no: n,
            hw_addr: MacAddr([0, 0, 0, 0, 0, n as u8]),
            ..Port::default()
        };
        let mut body = MultipartReplyBody::PortDesc(vec![port(1)]);
        body.merge(MultipartReplyBody::PortDesc(vec![port(2), port(3)]))
            .expect("same type");
        assert_eq!(
            body,
            MultipartReplyBody::PortDesc(vec![port(1), port(2), port(3)])
        );

        let mut tf = MultipartReplyBody::TableFeatures(Bytes::from_static(b"ab"));
        tf.merge(MultipartReplyBody::TableFeatures(Bytes::from_static(b"cd")))
            .expect("raw lists join");
        assert_eq!(
            tf,
            MultipartReplyBody::TableFeatures(Bytes::from_static(b"abcd"))
        );

        let mut flows = MultipartReplyBody::Flow(vec![]);
        assert_eq!(
            flows.merge(MultipartReplyBody::Table(vec![])),
            Err(MergeError::TypeMismatch { have: 1, next: 3 })
        );
        assert_eq!(
            flows,
            MultipartReplyBody::Flow(vec![]),
            "unchanged on error"
        );

        let mut agg = MultipartReplyBody::Aggregate(AggregateStats::default());
        assert_eq!(
            agg.merge(MultipartReplyBody::Aggregate(AggregateStats::default())),
            Err(MergeError::NotAList(multipart_type::AGGREGATE))
        );
        let mut desc = MultipartReplyBody::Desc(DescStats::default());
        assert_eq!(
            desc.merge(MultipartReplyBody::Desc(DescStats::default())),
            Err(MergeError::NotAList(multipart_type::DESC))
        );
    }

    proptest! {
        #[test]
        fn request_round_trips(req in arb_multipart_request()) {
            let bytes = emit(&req);
            prop_assert_eq!(parse::<MultipartRequest>(&bytes), Ok(req));
        }

        #[test]
        fn reply_round_trips(rep in arb_multipart_reply()) {
            let bytes = emit(&rep);
            let back = parse::<MultipartReply>(&bytes);
            prop_assert_eq!(back.as_ref(), Ok(&rep));
            // And byte-exact from the other side.
            prop_assert_eq!(emit(&back.expect("parsed")), bytes);
        }

        /// Every strict prefix of a valid encoding is rejected without panicking,
        /// except where the prefix is itself a whole list (cut between records).
        #[test]
        fn truncations_error_or_parse_fewer_records(rep in arb_multipart_reply()) {
            let bytes = emit(&rep);
            for cut in 0..bytes.len() {
                if let Ok(short) = parse::<MultipartReply>(&bytes[..cut]) {
                    prop_assert_eq!(emit(&short), &bytes[..cut]);
                }
            }
        }

        /// Merging two parts gives the same list as one reply holding both.
        #[test]
        fn merge_is_concatenation(a in arb_multipart_reply_body(), b in arb_multipart_reply_body()) {
            let mut merged = a.clone();
            match merged.merge(b.clone()) {
                Ok(()) => {
                    prop_assert_eq!(a.mp_type(), b.mp_type());
                    // The merged body's bytes are the two bodies' bytes joined.
                    let mut joined = BytesMut::new();
                    a.emit(&mut joined);
                    b.emit(&mut joined);
                    let mut out = BytesMut::new();
                    merged.emit(&mut out);
                    prop_assert_eq!(out, joined);
                }
                Err(MergeError::TypeMismatch { have, next }) => {
                    prop_assert_eq!((have, next), (a.mp_type(), b.mp_type()));
                    prop_assert_ne!(have, next);
                    prop_assert_eq!(merged, a);
                }
                Err(MergeError::NotAList(t)) => {
                    prop_assert_eq!(t, a.mp_type());
                    prop_assert_eq!(a.mp_type(), b.mp_type());
                }
            }
        }

        #[test]
        fn arbitrary_bodies_never_panic(ty in 0u16..16, flags: u16, body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut bytes = vec![0u8; 8];
            bytes[..2].copy_from_slice(&ty.to_be_bytes());
            bytes[2..4].copy_from_slice(&flags.to_be_bytes());
            bytes.extend(body);
            if let Ok(req) = parse::<MultipartRequest>(&bytes) {
                prop_assert_eq!(parse::<MultipartRequest>(&emit(&req)), Ok(req));
            }
            if let Ok(rep) = parse::<MultipartReply>(&bytes) {
                prop_assert_eq!(parse::<MultipartReply>(&emit(&rep)), Ok(rep));
            }
        }
    }
}
