//! Sans-IO OpenFlow 1.3 codec (OpenFlow Switch Specification 1.3.5).
//!
//! Bytes in, typed messages out, and back. No sockets, no clock, no panics on
//! wire input: malformed bytes yield a [`DecodeError`]. Unknown message types,
//! OXM fields, actions, instructions and properties are kept as raw bytes and
//! re-emitted unchanged.
//!
//! Entry points: [`frame_len`] to cut a TCP stream into messages, [`decode`]
//! and [`encode`] for one message ([`EncodeError`], appending nothing, for
//! a message longer than its 16-bit length can say). Every structure also
//! implements [`wire::Wire`] (`parse` / `buffer_len` / `emit`) over its own
//! bytes.
//!
//! Round trips are byte-exact: a known TLV type with an unexpected length
//! is kept raw rather than "repaired". Padding bytes are skipped on parse and
//! written as zeros, so only inputs with non-zero padding re-encode
//! differently. Proptest strategies for every structure live in the
//! test-only `strategies` module.
#![forbid(unsafe_code)]

pub mod action;
pub mod error;
pub mod flow;
pub mod group;
pub mod instruction;
pub mod message;
pub mod meter;
pub mod multipart;
pub mod nicira;
pub mod of10;
pub mod oxm;
pub mod packet;
pub mod port;
pub mod switch;
pub mod types;
pub mod wire;

#[cfg(test)]
pub(crate) mod strategies;

pub use action::{
    action_type, actions_len, emit_actions, parse_actions, Action, NX_EXPERIMENTER_ID,
};
pub use error::{DecodeError, EncodeError, Result};
pub use flow::{
    flow_mod_flags, flow_removed_reason, FlowMod, FlowModCommand, FlowModRef, FlowRemoved,
    DEFAULT_PRIORITY,
};
pub use group::{
    buckets_len, emit_buckets, parse_buckets, Bucket, GroupMod, GroupModCommand, GroupType,
};
pub use instruction::{
    emit_instructions, instruction_type, instructions_len, parse_instructions, Instruction,
};
pub use message::{
    decode, decode_shared, decode_with_header, encode, encode_flow_mod, encode_packet_out,
    encode_with_version, frame_len, msg_type, msg_type_name, Header, Message,
};
pub use meter::{
    bands_len, emit_bands, meter_band_type, meter_flags, parse_bands, MeterBand, MeterMod,
    MeterModCommand,
};
pub use multipart::{
    multipart_flags, multipart_type, AggregateStats, BucketCounter, DescStats, FlowStats,
    FlowStatsRequest, GroupDesc, GroupFeatures, GroupStats, MergeError, MeterBandStats,
    MeterConfig, MeterFeatures, MeterStats, MultipartReply, MultipartReplyBody, MultipartRequest,
    MultipartRequestBody, PortStats, QueueStats, TableStats,
};
pub use nicira::{
    controller2_prop, ct_flags, ct_label_match, ct_mark_match, ct_state, ct_state_match,
    ct_zone_match, learn_flags, nat_flags, nx_action_subtype, nx_u32_value, nxm_header,
    nxm_nx_field, sample_direction, set_ct_mark, Controller2Prop, Ct, CtZone, FieldId, Learn,
    LearnDst, LearnResult, LearnSpec, LearnSrc, Nat, NxAction, Sample, StackField, NX_IN_PORT,
};
pub use oxm::{
    oxm_field, Match, MatchFields, Oxm, OFPMT_OXM, OFPXMC_EXPERIMENTER, OFPXMC_NXM_0, OFPXMC_NXM_1,
    OFPXMC_OPENFLOW_BASIC,
};
pub use packet::{PacketIn, PacketInReason, PacketOut, PacketOutRef};
pub use port::{port_config, port_features, port_state, Port, PortMod, PortReason, PortStatus};
pub use switch::{
    capabilities, config_flags, controller_role, describe, error_code, error_type, queue_property,
    AsyncConfig, ErrorMsg, Experimenter, Hello, HelloElement, PacketQueue, QueueGetConfigReply,
    QueueGetConfigRequest, QueueProperty, RoleMsg, SwitchConfig, SwitchFeatures, TableMod,
    OFPHET_VERSIONBITMAP,
};
pub use types::{
    port_no, MacAddr, ParseMacError, NO_BUFFER, OFPCML_MAX, OFPCML_NO_BUFFER, OFPG_ALL, OFPG_ANY,
    OFPG_MAX, OFPM_ALL, OFPM_MAX, OFPTT_ALL, OFPVID_NONE, OFPVID_PRESENT, OFP_VERSION_1_0,
    OFP_VERSION_1_3,
};
