//! Nicira (Open vSwitch) extensions used by Flowgate: typed conntrack,
//! NAT and resubmit actions, and the conntrack match fields.
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
//! ```
//!
//! Match fields: `ct_state` (NXM_NX class 0x0001, field 105, 4 bytes,
//! maskable), `ct_zone` (106, 2 bytes) and `ct_mark` (107, 4 bytes,
//! maskable) are [`Oxm::Raw`]; the constructors here build them.

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, Bytes, BytesMut};

use crate::action::{emit_actions, parse_actions, Action, NX_EXPERIMENTER_ID};
use crate::error::Result;
use crate::oxm::{Oxm, OFPXMC_NXM_1};
use crate::wire::{pad8, put_zeros, Reader};

/// Nicira action subtypes this module types.
pub mod nx_action_subtype {
    pub const RESUBMIT_TABLE: u16 = 14;
    pub const CT: u16 = 35;
    pub const NAT: u16 = 36;
    pub const CT_CLEAR: u16 = 43;
}

/// NXM_NX (class 0x0001) field numbers of the conntrack match fields.
pub mod nxm_nx_field {
    pub const CT_STATE: u8 = 105;
    pub const CT_ZONE: u8 = 106;
    pub const CT_MARK: u8 = 107;
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
    pub fn subtype(&self) -> u16 {
        match self {
            NxAction::ResubmitTable { .. } => nx_action_subtype::RESUBMIT_TABLE,
            NxAction::Ct(_) => nx_action_subtype::CT,
            NxAction::CtClear => nx_action_subtype::CT_CLEAR,
            NxAction::Nat(_) => nx_action_subtype::NAT,
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
        match self {
            NxAction::ResubmitTable { in_port, table } => {
                data.put_u16(*in_port);
                data.put_u8(*table);
                put_zeros(&mut data, 3);
            }
            NxAction::CtClear => put_zeros(&mut data, 6),
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
                        data.put_u16((ofs << 6) | u16::from(n_bits.saturating_sub(1) & 0x3f));
                    }
                }
                data.put_u8(ct.recirc_table.unwrap_or(RECIRC_NONE));
                put_zeros(&mut data, 3);
                data.put_u16(ct.alg);
                emit_actions(&ct.actions, &mut data);
            }
            NxAction::Nat(nat) => {
                put_zeros(&mut data, 2);
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
                let pad = pad8(8 + data.len());
                put_zeros(&mut data, pad);
            }
        }
        Action::Experimenter {
            experimenter: NX_EXPERIMENTER_ID,
            data: data.freeze(),
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
/// for a subtype this module does not type.
fn parse_nx(r: &mut Reader<'_>) -> Result<Option<NxAction>> {
    let subtype = r.u16()?;
    let action = match subtype {
        nx_action_subtype::RESUBMIT_TABLE => {
            let in_port = r.u16()?;
            let table = r.u8()?;
            NxAction::ResubmitTable { in_port, table }
        }
        nx_action_subtype::CT_CLEAR => NxAction::CtClear,
        nx_action_subtype::CT => {
            let flags = r.u16()?;
            let zone_src = r.u32()?;
            let zone_value = r.u16()?;
            let zone = if zone_src == 0 {
                CtZone::Immediate(zone_value)
            } else {
                CtZone::Field {
                    header: zone_src,
                    ofs: zone_value >> 6,
                    n_bits: (zone_value & 0x3f) as u8 + 1,
                }
            };
            let recirc = r.u8()?;
            r.skip(3)?;
            let alg = r.u16()?;
            let len = r.remaining();
            let actions = parse_actions(r, len)?;
            NxAction::Ct(Ct {
                flags,
                zone,
                recirc_table: (recirc != RECIRC_NONE).then_some(recirc),
                alg,
                actions,
            })
        }
        nx_action_subtype::NAT => {
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
            NxAction::Nat(Nat {
                flags,
                ipv4_min,
                ipv4_max,
                ipv6_min,
                ipv6_max,
                proto_min,
                proto_max,
            })
        }
        _ => return Ok(None),
    };
    // Padding is checked by the caller's byte-exact re-encoding.
    Ok(Some(action))
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
    nx_u32(nxm_nx_field::CT_STATE, value, Some(mask))
}

/// `ct_zone=zone`.
pub fn ct_zone_match(zone: u16) -> Oxm {
    Oxm::Raw {
        class: OFPXMC_NXM_1,
        field: nxm_nx_field::CT_ZONE,
        hasmask: false,
        payload: Bytes::copy_from_slice(&zone.to_be_bytes()),
    }
}

/// `ct_mark=value[/mask]`.
pub fn ct_mark_match(value: u32, mask: Option<u32>) -> Oxm {
    nx_u32(nxm_nx_field::CT_MARK, value, mask)
}

/// `set_field:value->ct_mark`, valid inside a committing [`Ct`].
pub fn set_ct_mark(value: u32) -> Action {
    Action::SetField(ct_mark_match(value, None))
}

fn nx_u32(field: u8, value: u32, mask: Option<u32>) -> Oxm {
    let mut payload = BytesMut::with_capacity(8);
    payload.put_u32(value);
    if let Some(mask) = mask {
        payload.put_u32(mask);
    }
    Oxm::Raw {
        class: OFPXMC_NXM_1,
        field,
        hasmask: mask.is_some(),
        payload: payload.freeze(),
    }
}

/// `(value, mask)` of a 4-byte NXM_NX field `field` (ct_state, ct_mark).
pub fn nx_u32_value(oxm: &Oxm, field: u8) -> Option<(u32, Option<u32>)> {
    let Oxm::Raw {
        class: OFPXMC_NXM_1,
        field: f,
        hasmask,
        payload,
    } = oxm
    else {
        return None;
    };
    if *f != field {
        return None;
    }
    let word = |i: usize| -> Option<u32> {
        Some(u32::from_be_bytes(payload.get(i..i + 4)?.try_into().ok()?))
    };
    match (hasmask, payload.len()) {
        (false, 4) => Some((word(0)?, None)),
        (true, 8) => Some((word(0)?, Some(word(4)?))),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
