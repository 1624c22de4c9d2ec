//! Nicira (Open vSwitch) extensions: typed actions (conntrack, NAT,
//! resubmit, learn, conjunction, register loads and moves, controller2,
//! truncated output, note, sample, dec_ttl with controller ids,
//! fin_timeout, stack push/pop) and the `NXM_NX` match fields.
//!
//! On the wire a Nicira action is an `OFPAT_EXPERIMENTER` action with
//! experimenter id `0x00002320` ([`NX_EXPERIMENTER_ID`]); the codec keeps it
//! as [`Action::Experimenter`] and this module converts between that raw
//! form and [`NxAction`]. The conversion is byte-exact: [`NxAction::from_action`]
//! only types an action whose re-encoding gives back the same bytes, so
//! anything unusual (non-zero padding, unknown NAT range bits, a longer
//! encoding) stays raw and is re-emitted unchanged.
//!
//! Layouts (from Open vSwitch's `ofp-actions.c`; every action starts with
//! `type=0xffff, len, experimenter=0x2320, subtype` = 10 bytes):
//!
//! ```text
//! NXAST_RESUBMIT_TABLE (14), 16 bytes:  | in_port:16 | table:8 | pad:24 |
//! NXAST_CT (35), 24 bytes + actions:    | flags:16 | zone_src:32 | zone_imm or ofs_nbits:16 |
//!                                       | recirc_table:8 | pad:24 | alg:16 | nested actions |
//! NXAST_NAT (36), 16 bytes + ranges:    | pad:16 | flags:16 | range_present:16 |
//!                                       | [ipv4_min:32] [ipv4_max:32] [ipv6_min:128] [ipv6_max:128]
//!                                       | [proto_min:16] [proto_max:16] | pad to 8 |
//! NXAST_CT_CLEAR (43), 16 bytes:        | pad:48 |
//! NXAST_REG_LOAD (7), 24 bytes:         | ofs_nbits:16 | dst header:32 | value:64 |
//! NXAST_REG_LOAD2 (33):                 | OXM TLV (value and mask) | pad to 8 |
//! NXAST_REG_MOVE (6):                   | n_bits:16 | src_ofs:16 | dst_ofs:16 |
//!                                       | src header:32 or 64 | dst header:32 or 64 | pad to 8 |
//! NXAST_NOTE (8):                       | note bytes | zero pad to 8 (at least 16 in all) |
//! NXAST_FIN_TIMEOUT (19), 16 bytes:     | fin_idle:16 | fin_hard:16 | pad:16 |
//! NXAST_DEC_TTL_CNT_IDS (21):           | n_controllers:16 | pad:32 | ids:16 each | pad to 8 |
//! NXAST_STACK_PUSH/POP (27/28), 24 b.:  | ofs:16 | header:32 or 64 | n_bits:16 | pad to 24 |
//! NXAST_SAMPLE (29), 24 bytes:          | probability:16 | collector_set:32 | obs_domain:32 |
//!                                       | obs_point:32 |
//! NXAST_SAMPLE2/3 (38/41), 32 bytes:    | SAMPLE's fields | sampling_port:16 | direction:8 (3) |
//!                                       | pad:40 |
//! NXAST_CONJUNCTION (34), 16 bytes:     | clause:8 | n_clauses:8 | id:32 |
//! NXAST_OUTPUT_TRUNC (39), 16 bytes:    | port:16 | max_len:32 |
//! ```
//! NXAST_LEARN/LEARN2 and NXAST_CONTROLLER2 are laid out in their modules.
//! Where Open vSwitch has two encodings of one thing (SAMPLE/2/3, LEARN/2)
//! the typed form picks the one OVS picks for it, so what OVS sends types
//! and re-encodes byte for byte.
//!
//! Match fields: the `NXM_NX` (class 0x0001) fields Flowgate uses are typed
//! [`Oxm`] variants (`Reg`, `TunIpv4Src/Dst`, `PktMark`, `ConjId`,
//! `CtState`, `CtZone`, `CtMark`, `CtLabel`; numbers in [`nxm_nx_field`]);
//! the constructors here spell the conntrack ones as `ovs-ofctl` does.

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, Bytes, BytesMut};

use crate::action::{emit_actions, parse_actions, Action, NX_EXPERIMENTER_ID};
use crate::error::Result;
use crate::oxm::{Oxm, OFPXMC_NXM_1};
use crate::wire::{pad8, put_zeros, Reader, Wire};

mod controller;
mod field;
mod learn;

pub use controller::{controller2_prop, Controller2Prop};
pub use field::{nxm_header, FieldId};
pub use learn::{learn_flags, Learn, LearnDst, LearnResult, LearnSpec, LearnSrc};

use field::{ofs_nbits, split_ofs_nbits};

/// Nicira action subtypes this module types.
pub mod nx_action_subtype {
    pub const REG_MOVE: u16 = 6;
    pub const REG_LOAD: u16 = 7;
    pub const NOTE: u16 = 8;
    pub const RESUBMIT_TABLE: u16 = 14;
    pub const LEARN: u16 = 16;
    pub const FIN_TIMEOUT: u16 = 19;
    pub const DEC_TTL_CNT_IDS: u16 = 21;
    pub const STACK_PUSH: u16 = 27;
    pub const STACK_POP: u16 = 28;
    pub const SAMPLE: u16 = 29;
    pub const REG_LOAD2: u16 = 33;
    pub const CONJUNCTION: u16 = 34;
    pub const CT: u16 = 35;
    pub const NAT: u16 = 36;
    pub const CONTROLLER2: u16 = 37;
    pub const SAMPLE2: u16 = 38;
    pub const OUTPUT_TRUNC: u16 = 39;
    pub const SAMPLE3: u16 = 41;
    pub const CT_CLEAR: u16 = 43;
    pub const LEARN2: u16 = 45;
}

/// `direction` of [`Sample`] (`nx_action_sample_direction`).
pub mod sample_direction {
    /// Exported as the bridge's IPFIX configuration says.
    pub const DEFAULT: u8 = 0;
    pub const INGRESS: u8 = 1;
    pub const EGRESS: u8 = 2;
}

/// NXM_NX (class 0x0001) field numbers of the fields typed in
/// [`Oxm`] (Open vSwitch `meta-flow.h`).
pub mod nxm_nx_field {
    /// `reg0`; `reg<n>` is `REG0 + n` up to [`REG15`].
    pub const REG0: u8 = 0;
    pub const REG15: u8 = 15;
    pub const TUN_IPV4_SRC: u8 = 31;
    pub const TUN_IPV4_DST: u8 = 32;
    pub const PKT_MARK: u8 = 33;
    pub const CONJ_ID: u8 = 37;
    pub const CT_STATE: u8 = 105;
    pub const CT_ZONE: u8 = 106;
    pub const CT_MARK: u8 = 107;
    pub const CT_LABEL: u8 = 108;
}

/// Bits of the `ct_state` match field.
pub mod ct_state {
    /// First packet of a connection not yet committed.
    pub const NEW: u32 = 0x01;
    /// Part of a committed connection.
    pub const EST: u32 = 0x02;
    /// Related to a committed connection (ICMP error, ALG data channel).
    pub const REL: u32 = 0x04;
    /// In the reply direction of its connection.
    pub const RPL: u32 = 0x08;
    /// Invalid for conntrack (bad state transition, unparsable).
    pub const INV: u32 = 0x10;
    /// Went through conntrack; the other bits are meaningful.
    pub const TRK: u32 = 0x20;
    pub const SNAT: u32 = 0x40;
    pub const DNAT: u32 = 0x80;
}

/// `flags` of [`Ct`].
pub mod ct_flags {
    /// Commit the connection to the connection tracking table.
    pub const COMMIT: u16 = 1 << 0;
    /// Tear down a connection in the other direction first (with COMMIT).
    pub const FORCE: u16 = 1 << 1;
}

/// `flags` of [`Nat`].
pub mod nat_flags {
    pub const SRC: u16 = 1 << 0;
    pub const DST: u16 = 1 << 1;
    pub const PERSISTENT: u16 = 1 << 2;
    pub const PROTO_HASH: u16 = 1 << 3;
    pub const PROTO_RANDOM: u16 = 1 << 4;
}

/// `range_present` bits of NXAST_NAT.
mod nat_range {
    pub const IPV4_MIN: u16 = 1 << 0;
    pub const IPV4_MAX: u16 = 1 << 1;
    pub const IPV6_MIN: u16 = 1 << 2;
    pub const IPV6_MAX: u16 = 1 << 3;
    pub const PROTO_MIN: u16 = 1 << 4;
    pub const PROTO_MAX: u16 = 1 << 5;
    pub const ALL: u16 = 0x3f;
}

/// `recirc_table` value meaning "no recirculation".
const RECIRC_NONE: u8 = 0xff;
/// OF1.0 `OFPP_IN_PORT`, what `resubmit(,T)` puts in `in_port`.
pub const NX_IN_PORT: u16 = 0xfff8;

/// A typed Nicira action.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NxAction {
    /// `resubmit(in_port, table)`: look the packet up again in `table` as if
    /// it came from `in_port` ([`NX_IN_PORT`] = its real input port).
    ResubmitTable { in_port: u16, table: u8 },
    /// `ct(...)`: send the packet through the connection tracker.
    Ct(Ct),
    /// `ct_clear`: forget the packet's conntrack state.
    CtClear,
    /// `nat(...)`, only valid nested inside [`Ct`].
    Nat(Nat),
    /// `learn(...)` (NXAST_LEARN, or NXAST_LEARN2 with a limit or result).
    Learn(Learn),
    /// `conjunction(id, clause/n_clauses)`: this flow is clause `clause`
    /// of conjunctive match `id`. `clause` is 0-based as on the wire
    /// (`ovs-ofctl` writes it 1-based).
    Conjunction { id: u32, clause: u8, n_clauses: u8 },
    /// `load:value->dst[ofs..ofs+n_bits]` (NXAST_REG_LOAD): `dst` is an NXM
    /// header ([`nxm_header`]), `n_bits` 1..=64. Open vSwitch sends a
    /// masked `set_field` of an NXM field as this too.
    RegLoad {
        dst: u32,
        ofs: u16,
        n_bits: u8,
        value: u64,
    },
    /// `set_field:value/mask->field` as NXAST_REG_LOAD2: what Open vSwitch
    /// sends for fields NXAST_REG_LOAD cannot name (variable-length ones
    /// such as `tun_metadata0`, experimenter OXMs).
    RegLoad2(Oxm),
    /// `move:src[src_ofs..]->dst[dst_ofs..]` of `n_bits` bits (NXAST_REG_MOVE).
    RegMove {
        n_bits: u16,
        src: FieldId,
        src_ofs: u16,
        dst: FieldId,
        dst_ofs: u16,
    },
    /// `controller(...)` with properties (NXAST_CONTROLLER2), in wire order.
    Controller2(Vec<Controller2Prop>),
    /// `output(port=port,max_len=max_len)`: output the first `max_len`
    /// bytes of the packet.
    OutputTrunc { port: u16, max_len: u32 },
    /// `note:...`: opaque bytes, without the zero padding the wire adds
    /// (trailing zero bytes of a note are indistinguishable from it).
    Note(Bytes),
    /// `sample(...)`.
    Sample(Sample),
    /// `dec_ttl(id, ...)`: decrement the IP TTL; at zero send a packet-in to
    /// these controller ids.
    DecTtlCntIds(Vec<u16>),
    /// `fin_timeout(idle_timeout=, hard_timeout=)`: shorten this flow's
    /// timeouts once it sees a TCP FIN or RST (0: leave it).
    FinTimeout {
        idle_timeout: u16,
        hard_timeout: u16,
    },
    /// `push:field[ofs..ofs+n_bits]` onto the action stack.
    StackPush(StackField),
    /// `pop:field[ofs..ofs+n_bits]` from the action stack.
    StackPop(StackField),
}

/// NXAST_SAMPLE, NXAST_SAMPLE2 with a sampling port, NXAST_SAMPLE3 with a
/// direction: sample packets to IPFIX collectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Sample {
    /// Packets sampled out of 65535.
    pub probability: u16,
    pub collector_set_id: u32,
    pub obs_domain_id: u32,
    pub obs_point_id: u32,
    /// Port whose egress tunnel is reported (`sampling_port=`); on the wire
    /// `None` is OFPP_NONE (0xffff).
    pub sampling_port: Option<u16>,
    /// [`sample_direction`].
    pub direction: u8,
}

/// OFPP_NONE in 16 bits: no sampling port.
const SAMPLE_NO_PORT: u16 = 0xffff;

/// The bits a stack action pushes or pops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StackField {
    pub field: FieldId,
    pub ofs: u16,
    pub n_bits: u16,
}

/// NXAST_CT.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Ct {
    /// [`ct_flags`] bits.
    pub flags: u16,
    pub zone: CtZone,
    /// Recirculate a copy of the packet, with its conntrack fields set, to
    /// this table; the original continues untracked with the next action.
    /// `None`: no recirculation.
    pub recirc_table: Option<u8>,
    /// Application layer gateway by well-known port (21 = FTP), 0 = none.
    pub alg: u16,
    /// Nested actions run on commit (set_field to ct_mark/ct_label, nat).
    pub actions: Vec<Action>,
}

/// Where a [`Ct`] action takes its zone from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CtZone {
    Immediate(u16),
    /// A subfield of a match field: NXM/OXM `header`, bit offset and width
    /// (on the wire `ofs << 6 | (n_bits - 1)`).
    Field {
        header: u32,
        ofs: u16,
        n_bits: u8,
    },
}

impl Default for CtZone {
    fn default() -> Self {
        CtZone::Immediate(0)
    }
}

/// NXAST_NAT: translation ranges; each bound is optional on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Nat {
    /// [`nat_flags`] bits.
    pub flags: u16,
    pub ipv4_min: Option<Ipv4Addr>,
    pub ipv4_max: Option<Ipv4Addr>,
    pub ipv6_min: Option<Ipv6Addr>,
    pub ipv6_max: Option<Ipv6Addr>,
    pub proto_min: Option<u16>,
    pub proto_max: Option<u16>,
}

impl Nat {
    fn range_present(&self) -> u16 {
        let bit = |present: bool, b: u16| if present { b } else { 0 };
        bit(self.ipv4_min.is_some(), nat_range::IPV4_MIN)
            | bit(self.ipv4_max.is_some(), nat_range::IPV4_MAX)
            | bit(self.ipv6_min.is_some(), nat_range::IPV6_MIN)
            | bit(self.ipv6_max.is_some(), nat_range::IPV6_MAX)
            | bit(self.proto_min.is_some(), nat_range::PROTO_MIN)
            | bit(self.proto_max.is_some(), nat_range::PROTO_MAX)
    }
}

impl NxAction {
    /// The subtype this action encodes as.
    pub fn subtype(&self) -> u16 {
        use nx_action_subtype::*;
        match self {
            NxAction::ResubmitTable { .. } => RESUBMIT_TABLE,
            NxAction::Ct(_) => CT,
            NxAction::CtClear => CT_CLEAR,
            NxAction::Nat(_) => NAT,
            NxAction::Learn(learn) if learn.is_learn2() => LEARN2,
            NxAction::Learn(_) => LEARN,
            NxAction::Conjunction { .. } => CONJUNCTION,
            NxAction::RegLoad { .. } => REG_LOAD,
            NxAction::RegLoad2(_) => REG_LOAD2,
            NxAction::RegMove { .. } => REG_MOVE,
            NxAction::Controller2(_) => CONTROLLER2,
            NxAction::OutputTrunc { .. } => OUTPUT_TRUNC,
            NxAction::Note(_) => NOTE,
            NxAction::Sample(sample) if sample.direction != sample_direction::DEFAULT => SAMPLE3,
            NxAction::Sample(Sample {
                sampling_port: Some(_),
                ..
            }) => SAMPLE2,
            NxAction::Sample(_) => SAMPLE,
            NxAction::DecTtlCntIds(_) => DEC_TTL_CNT_IDS,
            NxAction::FinTimeout { .. } => FIN_TIMEOUT,
            NxAction::StackPush(_) => STACK_PUSH,
            NxAction::StackPop(_) => STACK_POP,
        }
    }

    /// `resubmit(,table)`.
    pub fn resubmit(table: u8) -> NxAction {
        NxAction::ResubmitTable {
            in_port: NX_IN_PORT,
            table,
        }
    }

    /// Encodes as the [`Action::Experimenter`] the codec emits.
    pub fn to_action(&self) -> Action {
        // `data` follows the 8-byte type/len/experimenter header.
        let mut data = BytesMut::new();
        data.put_u16(self.subtype());
        self.emit_body(&mut data);
        // Every Nicira action is padded with zeros to a multiple of 8.
        let pad = pad8(8 + data.len());
        put_zeros(&mut data, pad);
        Action::Experimenter {
            experimenter: NX_EXPERIMENTER_ID,
            data: data.freeze(),
        }
    }

    /// Writes what follows the subtype, before the final padding.
    fn emit_body(&self, data: &mut BytesMut) {
        match self {
            NxAction::ResubmitTable { in_port, table } => {
                data.put_u16(*in_port);
                data.put_u8(*table);
            }
            NxAction::CtClear => put_zeros(data, 6),
            NxAction::Ct(ct) => {
                data.put_u16(ct.flags);
                match ct.zone {
                    CtZone::Immediate(zone) => {
                        data.put_u32(0);
                        data.put_u16(zone);
                    }
                    CtZone::Field {
                        header,
                        ofs,
                        n_bits,
                    } => {
                        data.put_u32(header);
                        data.put_u16(ofs_nbits(ofs, n_bits));
                    }
                }
                data.put_u8(ct.recirc_table.unwrap_or(RECIRC_NONE));
                put_zeros(data, 3);
                data.put_u16(ct.alg);
                emit_actions(&ct.actions, data);
            }
            NxAction::Nat(nat) => {
                put_zeros(data, 2);
                data.put_u16(nat.flags);
                data.put_u16(nat.range_present());
                for v4 in [nat.ipv4_min, nat.ipv4_max].into_iter().flatten() {
                    data.put_slice(&v4.octets());
                }
                for v6 in [nat.ipv6_min, nat.ipv6_max].into_iter().flatten() {
                    data.put_slice(&v6.octets());
                }
                for port in [nat.proto_min, nat.proto_max].into_iter().flatten() {
                    data.put_u16(port);
                }
            }
            NxAction::Learn(learn) => learn.emit(data),
            NxAction::Conjunction {
                id,
                clause,
                n_clauses,
            } => {
                data.put_u8(*clause);
                data.put_u8(*n_clauses);
                data.put_u32(*id);
            }
            NxAction::RegLoad {
                dst,
                ofs,
                n_bits,
                value,
            } => {
                data.put_u16(ofs_nbits(*ofs, *n_bits));
                data.put_u32(*dst);
                data.put_u64(*value);
            }
            NxAction::RegLoad2(oxm) => oxm.emit(data),
            NxAction::RegMove {
                n_bits,
                src,
                src_ofs,
                dst,
                dst_ofs,
            } => {
                data.put_u16(*n_bits);
                data.put_u16(*src_ofs);
                data.put_u16(*dst_ofs);
                src.emit(data);
                dst.emit(data);
            }
            NxAction::Controller2(props) => {
                put_zeros(data, 6);
                for prop in props {
                    prop.emit(data);
                }
            }
            NxAction::OutputTrunc { port, max_len } => {
                data.put_u16(*port);
                data.put_u32(*max_len);
            }
            NxAction::Note(note) => {
                data.put_slice(note);
                // At least the 6 bytes of `nx_action_note.note`.
                put_zeros(data, 6usize.saturating_sub(note.len()));
            }
            NxAction::Sample(sample) => {
                data.put_u16(sample.probability);
                data.put_u32(sample.collector_set_id);
                data.put_u32(sample.obs_domain_id);
                data.put_u32(sample.obs_point_id);
                if self.subtype() != nx_action_subtype::SAMPLE {
                    data.put_u16(sample.sampling_port.unwrap_or(SAMPLE_NO_PORT));
                    data.put_u8(sample.direction);
                }
            }
            NxAction::DecTtlCntIds(ids) => {
                data.put_u16(u16::try_from(ids.len()).unwrap_or(u16::MAX));
                put_zeros(data, 4);
                for id in ids {
                    data.put_u16(*id);
                }
            }
            NxAction::FinTimeout {
                idle_timeout,
                hard_timeout,
            } => {
                data.put_u16(*idle_timeout);
                data.put_u16(*hard_timeout);
            }
            NxAction::StackPush(stack) | NxAction::StackPop(stack) => {
                data.put_u16(stack.ofs);
                stack.field.emit(data);
                data.put_u16(stack.n_bits);
                // `nx_action_stack` is 24 bytes whatever the header's size.
                put_zeros(data, 16usize.saturating_sub(data.len()));
            }
        }
    }

    /// The typed form of a Nicira action this module knows, if its bytes
    /// are exactly what [`NxAction::to_action`] would emit; `None` for any
    /// other action (which then stays raw).
    pub fn from_action(action: &Action) -> Option<NxAction> {
        let Action::Experimenter { experimenter, data } = action else {
            return None;
        };
        if *experimenter != NX_EXPERIMENTER_ID {
            return None;
        }
        let typed = parse_nx(&mut Reader::new(data, "nicira action")).ok()??;
        match typed.to_action() {
            Action::Experimenter { data: again, .. } if again == *data => Some(typed),
            _ => None,
        }
    }
}

impl From<NxAction> for Action {
    fn from(nx: NxAction) -> Action {
        nx.to_action()
    }
}

/// Parses the body of a Nicira action (after the experimenter id); `None`
/// for a subtype this module does not type, or a shape its type cannot hold.
/// Padding and trailing bytes are left to the caller's byte-exact check.
fn parse_nx(r: &mut Reader<'_>) -> Result<Option<NxAction>> {
    use nx_action_subtype::*;
    let subtype = r.u16()?;
    let action = match subtype {
        RESUBMIT_TABLE => {
            let in_port = r.u16()?;
            let table = r.u8()?;
            NxAction::ResubmitTable { in_port, table }
        }
        CT_CLEAR => NxAction::CtClear,
        CT => NxAction::Ct(parse_ct(r)?),
        NAT => match parse_nat(r)? {
            Some(nat) => NxAction::Nat(nat),
            None => return Ok(None),
        },
        LEARN | LEARN2 => match Learn::parse(r, subtype == LEARN2)? {
            Some(learn) => NxAction::Learn(learn),
            None => return Ok(None),
        },
        CONJUNCTION => {
            let clause = r.u8()?;
            let n_clauses = r.u8()?;
            let id = r.u32()?;
            NxAction::Conjunction {
                id,
                clause,
                n_clauses,
            }
        }
        REG_LOAD => {
            let (ofs, n_bits) = split_ofs_nbits(r.u16()?);
            let dst = r.u32()?;
            let value = r.u64()?;
            NxAction::RegLoad {
                dst,
                ofs,
                n_bits,
                value,
            }
        }
        REG_LOAD2 => NxAction::RegLoad2(Oxm::parse(r)?),
        REG_MOVE => {
            let n_bits = r.u16()?;
            let src_ofs = r.u16()?;
            let dst_ofs = r.u16()?;
            let src = FieldId::parse(r)?;
            let dst = FieldId::parse(r)?;
            NxAction::RegMove {
                n_bits,
                src,
                src_ofs,
                dst,
                dst_ofs,
            }
        }
        CONTROLLER2 => {
            r.skip(6)?;
            let mut props = Vec::new();
            while !r.is_empty() {
                props.push(Controller2Prop::parse(r)?);
            }
            NxAction::Controller2(props)
        }
        OUTPUT_TRUNC => {
            let port = r.u16()?;
            let max_len = r.u32()?;
            NxAction::OutputTrunc { port, max_len }
        }
        NOTE => {
            let note = r.rest();
            let len = note.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
            NxAction::Note(Bytes::copy_from_slice(&note[..len]))
        }
        SAMPLE | SAMPLE2 | SAMPLE3 => {
            let mut sample = Sample {
                probability: r.u16()?,
                collector_set_id: r.u32()?,
                obs_domain_id: r.u32()?,
                obs_point_id: r.u32()?,
                ..Sample::default()
            };
            if subtype != SAMPLE {
                let port = r.u16()?;
                sample.sampling_port = (port != SAMPLE_NO_PORT).then_some(port);
                sample.direction = r.u8()?;
            }
            NxAction::Sample(sample)
        }
        DEC_TTL_CNT_IDS => {
            let n = r.u16()?;
            r.skip(4)?;
            let ids = (0..n).map(|_| r.u16()).collect::<Result<_>>()?;
            NxAction::DecTtlCntIds(ids)
        }
        FIN_TIMEOUT => {
            let idle_timeout = r.u16()?;
            let hard_timeout = r.u16()?;
            NxAction::FinTimeout {
                idle_timeout,
                hard_timeout,
            }
        }
        STACK_PUSH | STACK_POP => {
            let ofs = r.u16()?;
            let field = FieldId::parse(r)?;
            let n_bits = r.u16()?;
            let stack = StackField { field, ofs, n_bits };
            if subtype == STACK_PUSH {
                NxAction::StackPush(stack)
            } else {
                NxAction::StackPop(stack)
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(action))
}

fn parse_ct(r: &mut Reader<'_>) -> Result<Ct> {
    let flags = r.u16()?;
    let zone_src = r.u32()?;
    let zone_value = r.u16()?;
    let zone = if zone_src == 0 {
        CtZone::Immediate(zone_value)
    } else {
        let (ofs, n_bits) = split_ofs_nbits(zone_value);
        CtZone::Field {
            header: zone_src,
            ofs,
            n_bits,
        }
    };
    let recirc = r.u8()?;
    r.skip(3)?;
    let alg = r.u16()?;
    let len = r.remaining();
    let actions = parse_actions(r, len)?;
    Ok(Ct {
        flags,
        zone,
        recirc_table: (recirc != RECIRC_NONE).then_some(recirc),
        alg,
        actions,
    })
}

/// `None` for range bits this type does not know.
fn parse_nat(r: &mut Reader<'_>) -> Result<Option<Nat>> {
    r.skip(2)?;
    let flags = r.u16()?;
    let present = r.u16()?;
    if present & !nat_range::ALL != 0 {
        return Ok(None);
    }
    let has = |bit: u16| present & bit != 0;
    let mut v4 = |bit| -> Result<Option<Ipv4Addr>> {
        has(bit).then(|| r.array().map(Ipv4Addr::from)).transpose()
    };
    let (ipv4_min, ipv4_max) = (v4(nat_range::IPV4_MIN)?, v4(nat_range::IPV4_MAX)?);
    let mut v6 = |bit| -> Result<Option<Ipv6Addr>> {
        has(bit).then(|| r.array().map(Ipv6Addr::from)).transpose()
    };
    let (ipv6_min, ipv6_max) = (v6(nat_range::IPV6_MIN)?, v6(nat_range::IPV6_MAX)?);
    let mut port = |bit| -> Result<Option<u16>> { has(bit).then(|| r.u16()).transpose() };
    let (proto_min, proto_max) = (port(nat_range::PROTO_MIN)?, port(nat_range::PROTO_MAX)?);
    Ok(Some(Nat {
        flags,
        ipv4_min,
        ipv4_max,
        ipv6_min,
        ipv6_max,
        proto_min,
        proto_max,
    }))
}

impl Ct {
    /// `ct(commit, zone=zone)`.
    pub fn commit(zone: u16) -> Ct {
        Ct {
            flags: ct_flags::COMMIT,
            zone: CtZone::Immediate(zone),
            ..Ct::default()
        }
    }

    /// `ct(table=table, zone=zone)`: track and recirculate.
    pub fn recirculate(zone: u16, table: u8) -> Ct {
        Ct {
            zone: CtZone::Immediate(zone),
            recirc_table: Some(table),
            ..Ct::default()
        }
    }

    /// Adds nested actions (`exec(...)`, `nat`).
    pub fn with_actions(mut self, actions: Vec<Action>) -> Ct {
        self.actions = actions;
        self
    }
}

/// `ct_state=value/mask` (see [`ct_state`] for the bits).
pub fn ct_state_match(value: u32, mask: u32) -> Oxm {
    Oxm::CtState(value, Some(mask))
}

/// `ct_zone=zone`.
pub fn ct_zone_match(zone: u16) -> Oxm {
    Oxm::CtZone(zone)
}

/// `ct_mark=value[/mask]`.
pub fn ct_mark_match(value: u32, mask: Option<u32>) -> Oxm {
    Oxm::CtMark(value, mask)
}

/// `ct_label=value[/mask]`.
pub fn ct_label_match(value: u128, mask: Option<u128>) -> Oxm {
    Oxm::CtLabel(value.to_be_bytes(), mask.map(u128::to_be_bytes))
}

/// `set_field:value->ct_mark`, valid inside a committing [`Ct`].
pub fn set_ct_mark(value: u32) -> Action {
    Action::SetField(ct_mark_match(value, None))
}

/// `(value, mask)` of a 4-byte `NXM_NX` field numbered `field` (ct_state,
/// ct_mark, pkt_mark, conj_id, a register), typed or raw.
pub fn nx_u32_value(oxm: &Oxm, field: u8) -> Option<(u32, Option<u32>)> {
    if oxm.class() != OFPXMC_NXM_1 || oxm.field() != field {
        return None;
    }
    match oxm {
        Oxm::Reg(_, v, m) | Oxm::PktMark(v, m) | Oxm::CtState(v, m) | Oxm::CtMark(v, m) => {
            Some((*v, *m))
        }
        Oxm::ConjId(v) => Some((*v, None)),
        Oxm::Raw {
            hasmask, payload, ..
        } => {
            let word = |i: usize| -> Option<u32> {
                Some(u32::from_be_bytes(payload.get(i..i + 4)?.try_into().ok()?))
            };
            match (hasmask, payload.len()) {
                (false, 4) => Some((word(0)?, None)),
                (true, 8) => Some((word(0)?, Some(word(4)?))),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
