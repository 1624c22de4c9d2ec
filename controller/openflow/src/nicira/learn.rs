//! NXAST_LEARN (16) and NXAST_LEARN2 (45): add or modify a flow from the
//! packet being processed (Open vSwitch `ofp-actions.c`, `nx_action_learn`).
//!
//! ```text
//! LEARN, 32 bytes + specs:  | subtype:16 | idle:16 | hard:16 | priority:16 | cookie:64 |
//!                           | flags:16 | table:8 | pad:8 | fin_idle:16 | fin_hard:16 |
//! LEARN2, 40 bytes + ...:   | LEARN's fields | limit:32 | result_dst_ofs:16 | pad:16 |
//!                           | [result_dst header, with flag WRITE_RESULT] |
//! then flow_mod_specs, then zero padding to 8 (a zero spec header ends the list):
//!   | 0:2 | src:1 | dst:2 | n_bits:11 | src: field:32 ofs:16 or value (n_bits+15)/16*2 bytes |
//!   | dst: field:32 ofs:16 (match, load) or nothing (output) |
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use super::field::FieldId;
use crate::error::Result;
use crate::wire::Reader;

/// `flags` of [`Learn`].
pub mod learn_flags {
    /// The learned flow has SEND_FLOW_REM.
    pub const SEND_FLOW_REM: u16 = 1 << 0;
    /// Delete the learned flows when the learning flow goes away.
    pub const DELETE_LEARNED: u16 = 1 << 1;
    /// NXAST_LEARN2: set by the codec when [`super::Learn::result_dst`] is
    /// given; not kept in `flags` then.
    pub const WRITE_RESULT: u16 = 1 << 2;
}

/// Spec header bits.
const SRC_VALUE: u16 = 1 << 13;
const DST_MASK: u16 = 3 << 11;
const DST_MATCH: u16 = 0;
const DST_LOAD: u16 = 1 << 11;
const DST_OUTPUT: u16 = 2 << 11;
const N_BITS_MASK: u16 = 0x7ff;

/// `learn(...)`: the flow to add or modify, built by `specs`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Learn {
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub priority: u16,
    pub cookie: u64,
    /// [`learn_flags`] bits.
    pub flags: u16,
    pub table_id: u8,
    /// Timeouts the learned flow takes once it sees a TCP FIN or RST (0: none).
    pub fin_idle_timeout: u16,
    pub fin_hard_timeout: u16,
    /// At most this many flows learned (0: no limit). Non-zero encodes
    /// NXAST_LEARN2.
    pub limit: u32,
    /// Where to write one bit: 1 if the flow was learned, 0 if `limit`
    /// stopped it (`result_dst=reg0[3]`). Encodes NXAST_LEARN2.
    pub result_dst: Option<LearnResult>,
    pub specs: Vec<LearnSpec>,
}

/// The bit [`Learn::result_dst`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LearnResult {
    pub field: FieldId,
    pub ofs: u16,
}

/// One `flow_mod_spec`: copies `n_bits` bits (1..=2047; a spec whose header
/// is zero would read as the end of the list) from `src` to `dst`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LearnSpec {
    pub n_bits: u16,
    pub src: LearnSrc,
    pub dst: LearnDst,
}

/// Where a [`LearnSpec`]'s bits come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LearnSrc {
    /// `field[ofs..ofs + n_bits]` of the packet being processed.
    Field { field: FieldId, ofs: u16 },
    /// A constant: big-endian, `(n_bits + 15) / 16 * 2` bytes on the wire
    /// (a shorter value is zero-extended on the left, a longer one keeps its
    /// last bytes).
    Value(Bytes),
}

/// What a [`LearnSpec`] makes of its bits in the learned flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LearnDst {
    /// Match `field[ofs..]` against them (`NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[]`).
    Match { field: FieldId, ofs: u16 },
    /// Load them into `field[ofs..]` (`load:NXM_OF_IN_PORT[]->NXM_NX_REG0[]`).
    Load { field: FieldId, ofs: u16 },
    /// Output to the port they name (`output:NXM_OF_IN_PORT[]`).
    Output,
}

/// Bytes of a constant source of `n_bits` bits.
fn value_len(n_bits: u16) -> usize {
    usize::from(n_bits.div_ceil(16)) * 2
}

impl Learn {
    /// Whether this needs NXAST_LEARN2.
    pub(crate) fn is_learn2(&self) -> bool {
        self.limit != 0 || self.result_dst.is_some()
    }

    /// Writes the body after the subtype (NXAST_LEARN or NXAST_LEARN2 by
    /// [`Learn::is_learn2`]); the caller pads the action.
    pub(crate) fn emit(&self, out: &mut BytesMut) {
        out.put_u16(self.idle_timeout);
        out.put_u16(self.hard_timeout);
        out.put_u16(self.priority);
        out.put_u64(self.cookie);
        let flags = match self.result_dst {
            Some(_) => self.flags | learn_flags::WRITE_RESULT,
            None => self.flags,
        };
        out.put_u16(flags);
        out.put_u8(self.table_id);
        out.put_u8(0);
        out.put_u16(self.fin_idle_timeout);
        out.put_u16(self.fin_hard_timeout);
        if self.is_learn2() {
            out.put_u32(self.limit);
            out.put_u16(self.result_dst.map_or(0, |r| r.ofs));
            out.put_u16(0);
            if let Some(result) = self.result_dst {
                result.field.emit(out);
            }
        }
        for spec in &self.specs {
            spec.emit(out);
        }
    }

    /// Parses the body after the subtype; `learn2` for NXAST_LEARN2. `None`
    /// for a spec this type cannot hold (undefined destination type).
    pub(crate) fn parse(r: &mut Reader<'_>, learn2: bool) -> Result<Option<Learn>> {
        let mut learn = Learn {
            idle_timeout: r.u16()?,
            hard_timeout: r.u16()?,
            priority: r.u16()?,
            cookie: r.u64()?,
            flags: r.u16()?,
            table_id: r.u8()?,
            ..Learn::default()
        };
        r.skip(1)?;
        learn.fin_idle_timeout = r.u16()?;
        learn.fin_hard_timeout = r.u16()?;
        if learn2 {
            learn.limit = r.u32()?;
            let result_ofs = r.u16()?;
            r.skip(2)?;
            if learn.flags & learn_flags::WRITE_RESULT != 0 {
                learn.flags &= !learn_flags::WRITE_RESULT;
                learn.result_dst = Some(LearnResult {
                    field: FieldId::parse(r)?,
                    ofs: result_ofs,
                });
            }
        }
        // Specs until the padding: a zero header, or less than one header left.
        while let Ok(header) = r.peek_u16(0) {
            if header == 0 {
                break;
            }
            match LearnSpec::parse(r)? {
                Some(spec) => learn.specs.push(spec),
                None => return Ok(None),
            }
        }
        Ok(Some(learn))
    }
}

impl LearnSpec {
    fn emit(&self, out: &mut BytesMut) {
        let n_bits = self.n_bits & N_BITS_MASK;
        let src = match self.src {
            LearnSrc::Field { .. } => 0,
            LearnSrc::Value(_) => SRC_VALUE,
        };
        let dst = match self.dst {
            LearnDst::Match { .. } => DST_MATCH,
            LearnDst::Load { .. } => DST_LOAD,
            LearnDst::Output => DST_OUTPUT,
        };
        out.put_u16(src | dst | n_bits);
        match &self.src {
            LearnSrc::Field { field, ofs } => {
                field.emit(out);
                out.put_u16(*ofs);
            }
            LearnSrc::Value(value) => {
                let len = value_len(n_bits);
                let kept = &value[value.len().saturating_sub(len)..];
                out.put_bytes(0, len - kept.len());
                out.put_slice(kept);
            }
        }
        match self.dst {
            LearnDst::Match { field, ofs } | LearnDst::Load { field, ofs } => {
                field.emit(out);
                out.put_u16(ofs);
            }
            LearnDst::Output => {}
        }
    }

    fn parse(r: &mut Reader<'_>) -> Result<Option<LearnSpec>> {
        let header = r.u16()?;
        if header & !(SRC_VALUE | DST_MASK | N_BITS_MASK) != 0 {
            return Ok(None);
        }
        let n_bits = header & N_BITS_MASK;
        let src = if header & SRC_VALUE != 0 {
            LearnSrc::Value(r.owned(value_len(n_bits))?)
        } else {
            LearnSrc::Field {
                field: FieldId::parse(r)?,
                ofs: r.u16()?,
            }
        };
        let dst = match header & DST_MASK {
            DST_MATCH => LearnDst::Match {
                field: FieldId::parse(r)?,
                ofs: r.u16()?,
            },
            DST_LOAD => LearnDst::Load {
                field: FieldId::parse(r)?,
                ofs: r.u16()?,
            },
            DST_OUTPUT => LearnDst::Output,
            _ => return Ok(None),
        };
        Ok(Some(LearnSpec { n_bits, src, dst }))
    }
}
