//! Fields as Nicira actions name them: an NXM/OXM header with `hasmask = 0`,
//! and bit ranges of it (`NXM_NX_REG0[0..15]`).
//!
//! ```text
//! NXM/OXM header:     | class:16 | field:7 | hasmask:1 | length:8 |
//! experimenter class: | 0xffff:16 | field:7 | hasmask:1 | length:8 | experimenter:32 |
//! ofs_nbits:          | ofs:10 | n_bits - 1:6 |   (REG_LOAD, CT zone)
//! ```

use bytes::{BufMut, BytesMut};

use crate::error::Result;
use crate::oxm::{OFPXMC_EXPERIMENTER, OFPXMC_NXM_1};
use crate::wire::Reader;

/// The header of a field without mask: `class << 16 | field << 9 | len`,
/// where `len` is the field's width in bytes.
pub const fn nxm_header(class: u16, field: u8, len: u8) -> u32 {
    (class as u32) << 16 | ((field as u32) & 0x7f) << 9 | len as u32
}

/// A field named by an action (`move`, `push`/`pop`, `learn`): 4 bytes on
/// the wire, 8 for an experimenter OXM (class 0xffff).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldId {
    /// NXM or OXM header of any class but 0xffff.
    Header(u32),
    /// Experimenter OXM: its header (class 0xffff) and experimenter id.
    Experimenter { header: u32, experimenter: u32 },
}

impl FieldId {
    /// `NXM_NX_REG<n>` (`reg<n>`), 32 bits.
    pub const fn reg(n: u8) -> FieldId {
        FieldId::Header(nxm_header(OFPXMC_NXM_1, n, 4))
    }

    /// The 4-byte header (class, field, width).
    pub fn header(&self) -> u32 {
        match *self {
            FieldId::Header(h) | FieldId::Experimenter { header: h, .. } => h,
        }
    }

    /// Encoded size: 4, or 8 with the experimenter id.
    pub fn wire_len(&self) -> usize {
        match self {
            FieldId::Header(_) => 4,
            FieldId::Experimenter { .. } => 8,
        }
    }

    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<FieldId> {
        let header = r.u32()?;
        Ok(if header >> 16 == u32::from(OFPXMC_EXPERIMENTER) {
            FieldId::Experimenter {
                header,
                experimenter: r.u32()?,
            }
        } else {
            FieldId::Header(header)
        })
    }

    pub(crate) fn emit(&self, out: &mut BytesMut) {
        out.put_u32(self.header());
        if let FieldId::Experimenter { experimenter, .. } = self {
            out.put_u32(*experimenter);
        }
    }
}

/// Packs a bit range as `ofs << 6 | (n_bits - 1)`; `n_bits` is 1..=64
/// (0 packs as 1, and larger values are cut to 6 bits, rather than panic).
pub(crate) fn ofs_nbits(ofs: u16, n_bits: u8) -> u16 {
    (ofs << 6) | u16::from(n_bits.saturating_sub(1) & 0x3f)
}

/// Unpacks [`ofs_nbits`]: `(ofs, n_bits)`.
pub(crate) fn split_ofs_nbits(v: u16) -> (u16, u8) {
    (v >> 6, (v & 0x3f) as u8 + 1)
}
