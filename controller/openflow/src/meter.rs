//! Meter modification (spec 7.3.4.4).
//!
//! ```text
//! ofp_meter_mod body: | command: u16 | flags: u16 | meter_id: u32 | bands... |
//! band header:        | type: u16 | len: u16 | rate: u32 | burst_size: u32 | type-specific |
//! ```
//! Bands are at least 16 bytes and 8-byte aligned.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::Result;
use crate::wire::{len16, put_zeros, Reader, Wire};

/// `ofp_meter_mod_command`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MeterModCommand {
    Add,
    Modify,
    Delete,
    Unknown(u16),
}

impl From<u16> for MeterModCommand {
    fn from(v: u16) -> Self {
        match v {
            0 => MeterModCommand::Add,
            1 => MeterModCommand::Modify,
            2 => MeterModCommand::Delete,
            n => MeterModCommand::Unknown(n),
        }
    }
}

impl From<MeterModCommand> for u16 {
    fn from(v: MeterModCommand) -> u16 {
        match v {
            MeterModCommand::Add => 0,
            MeterModCommand::Modify => 1,
            MeterModCommand::Delete => 2,
            MeterModCommand::Unknown(n) => n,
        }
    }
}

/// `ofp_meter_flags`.
pub mod meter_flags {
    /// Rates in kb/s.
    pub const KBPS: u16 = 1 << 0;
    /// Rates in packets/s.
    pub const PKTPS: u16 = 1 << 1;
    /// Honour burst_size.
    pub const BURST: u16 = 1 << 2;
    /// Collect statistics.
    pub const STATS: u16 = 1 << 3;
}

/// `ofp_meter_band_type` numbers.
pub mod meter_band_type {
    pub const DROP: u16 = 1;
    pub const DSCP_REMARK: u16 = 2;
    pub const EXPERIMENTER: u16 = 0xffff;
}

/// One meter band.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MeterBand {
    Drop {
        rate: u32,
        burst_size: u32,
    },
    DscpRemark {
        rate: u32,
        burst_size: u32,
        prec_level: u8,
    },
    /// `data` = bytes after the experimenter id (`16 + data.len()` a multiple of 8).
    Experimenter {
        rate: u32,
        burst_size: u32,
        experimenter: u32,
        data: Bytes,
    },
    /// Other band types, or a known type with a non-standard length: `data` =
    /// bytes after the 12-byte band header.
    Unknown {
        band_type: u16,
        rate: u32,
        burst_size: u32,
        data: Bytes,
    },
}

impl MeterBand {
    /// The wire band type.
    pub fn band_type(&self) -> u16 {
        match self {
            MeterBand::Drop { .. } => meter_band_type::DROP,
            MeterBand::DscpRemark { .. } => meter_band_type::DSCP_REMARK,
            MeterBand::Experimenter { .. } => meter_band_type::EXPERIMENTER,
            MeterBand::Unknown { band_type, .. } => *band_type,
        }
    }

    /// This band as Open vSwitch's userspace datapath installs and reports
    /// it (see [`crate::MeterConfig`]): a drop band with a zero
    /// `burst_size` gets its rate as burst. Other bands (which that
    /// datapath refuses) are returned unchanged.
    pub fn canonical(&self) -> MeterBand {
        match *self {
            MeterBand::Drop {
                rate,
                burst_size: 0,
            } => MeterBand::Drop {
                rate,
                burst_size: rate,
            },
            _ => self.clone(),
        }
    }

    /// (rate, burst_size), common to all bands.
    pub fn rate_burst(&self) -> (u32, u32) {
        match self {
            MeterBand::Drop { rate, burst_size }
            | MeterBand::DscpRemark {
                rate, burst_size, ..
            }
            | MeterBand::Experimenter {
                rate, burst_size, ..
            }
            | MeterBand::Unknown {
                rate, burst_size, ..
            } => (*rate, *burst_size),
        }
    }
}

impl Wire for MeterBand {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let (band_type, len, mut b) = r.tlv("meter band", 16, 8)?;
        let rate = b.u32()?;
        let burst_size = b.u32()?;
        Ok(match band_type {
            meter_band_type::DROP if len == 16 => MeterBand::Drop { rate, burst_size },
            meter_band_type::DSCP_REMARK if len == 16 => MeterBand::DscpRemark {
                rate,
                burst_size,
                prec_level: b.u8()?,
            },
            meter_band_type::EXPERIMENTER => MeterBand::Experimenter {
                rate,
                burst_size,
                experimenter: b.u32()?,
                data: b.rest_owned(),
            },
            _ => MeterBand::Unknown {
                band_type,
                rate,
                burst_size,
                data: b.rest_owned(),
            },
        })
    }

    fn buffer_len(&self) -> usize {
        match self {
            MeterBand::Drop { .. } | MeterBand::DscpRemark { .. } => 16,
            MeterBand::Experimenter { data, .. } => 16 + data.len(),
            MeterBand::Unknown { data, .. } => 12 + data.len(),
        }
    }

    fn emit(&self, out: &mut BytesMut) {
        let (rate, burst) = self.rate_burst();
        out.put_u16(self.band_type());
        out.put_u16(len16(self.buffer_len()));
        out.put_u32(rate);
        out.put_u32(burst);
        match self {
            MeterBand::Drop { .. } => put_zeros(out, 4),
            MeterBand::DscpRemark { prec_level, .. } => {
                out.put_u8(*prec_level);
                put_zeros(out, 3);
            }
            MeterBand::Experimenter {
                experimenter, data, ..
            } => {
                out.put_u32(*experimenter);
                out.put_slice(data);
            }
            MeterBand::Unknown { data, .. } => out.put_slice(data),
        }
    }
}

/// Parses meter bands until `r` is exhausted.
pub fn parse_bands(r: &mut Reader<'_>) -> Result<Vec<MeterBand>> {
    let mut out = Vec::new();
    while !r.is_empty() {
        out.push(MeterBand::parse(r)?);
    }
    Ok(out)
}

/// Encoded length of a band list.
pub fn bands_len(bands: &[MeterBand]) -> usize {
    bands.iter().map(Wire::buffer_len).sum()
}

/// Appends a band list.
pub fn emit_bands(bands: &[MeterBand], out: &mut BytesMut) {
    for b in bands {
        b.emit(out);
    }
}

/// OFPT_METER_MOD body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MeterMod {
    pub command: MeterModCommand,
    /// See [`meter_flags`].
    pub flags: u16,
    pub meter_id: u32,
    pub bands: Vec<MeterBand>,
}

impl Wire for MeterMod {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let command = MeterModCommand::from(r.u16()?);
        let flags = r.u16()?;
        let meter_id = r.u32()?;
        let bands = parse_bands(r)?;
        Ok(MeterMod {
            command,
            flags,
            meter_id,
            bands,
        })
    }

    fn buffer_len(&self) -> usize {
        8 + bands_len(&self.bands)
    }

    fn emit(&self, out: &mut BytesMut) {
        out.put_u16(self.command.into());
        out.put_u16(self.flags);
        out.put_u32(self.meter_id);
        emit_bands(&self.bands, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::DecodeError;
    use crate::strategies::arb_meter_mod;
    use proptest::prelude::*;

    #[test]
    fn meter_mod_fixture() {
        let bytes = [
            0, 0, 0, 5, 0, 0, 0, 1, // ADD, KBPS|BURST, meter 1
            0, 1, 0, 16, 0, 0, 0x03, 0xe8, 0, 0, 0, 100, 0, 0, 0, 0, // drop 1000/100
            0, 2, 0, 16, 0, 0, 0x07, 0xd0, 0, 0, 0, 200, 2, 0, 0, 0, // dscp_remark
        ];
        let want = MeterMod {
            command: MeterModCommand::Add,
            flags: meter_flags::KBPS | meter_flags::BURST,
            meter_id: 1,
            bands: vec![
                MeterBand::Drop {
                    rate: 1000,
                    burst_size: 100,
                },
                MeterBand::DscpRemark {
                    rate: 2000,
                    burst_size: 200,
                    prec_level: 2,
                },
            ],
        };
        let mut r = Reader::new(&bytes, "t");
        assert_eq!(MeterMod::parse(&mut r).unwrap(), want);
        let mut out = BytesMut::new();
        want.emit(&mut out);
        assert_eq!(out.to_vec(), bytes);
    }

    #[test]
    fn band_errors() {
        let zero = [0u8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            parse_bands(&mut Reader::new(&zero, "t")),
            Err(DecodeError::BadLength { .. })
        ));
        let short = [0u8, 1, 0, 8, 0, 0, 0, 0];
        assert!(parse_bands(&mut Reader::new(&short, "t")).is_err());
        let unaligned = [
            0u8, 1, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert!(parse_bands(&mut Reader::new(&unaligned, "t")).is_err());
        let past_end = [0u8, 1, 0, 24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(parse_bands(&mut Reader::new(&past_end, "t")).is_err());
    }

    #[test]
    fn a_drop_band_without_burst_is_canonically_bursting_at_its_rate() {
        let drop = |rate, burst_size| MeterBand::Drop { rate, burst_size };
        assert_eq!(drop(1000, 0).canonical(), drop(1000, 1000));
        assert_eq!(drop(1000, 300).canonical(), drop(1000, 300));
        let remark = MeterBand::DscpRemark {
            rate: 5,
            burst_size: 0,
            prec_level: 1,
        };
        assert_eq!(remark.canonical(), remark);
        let other = MeterBand::Unknown {
            band_type: 7,
            rate: 5,
            burst_size: 0,
            data: Bytes::new(),
        };
        assert_eq!(other.canonical(), other);
    }

    #[test]
    fn long_drop_band_kept_raw() {
        let mut bytes = vec![0u8, 1, 0, 24, 0, 0, 0, 1, 0, 0, 0, 2];
        bytes.resize(24, 0);
        let b = MeterBand::parse(&mut Reader::new(&bytes, "t")).unwrap();
        assert!(matches!(
            b,
            MeterBand::Unknown {
                band_type: 1,
                rate: 1,
                burst_size: 2,
                ..
            }
        ));
        let mut out = BytesMut::new();
        b.emit(&mut out);
        assert_eq!(out.to_vec(), bytes);
    }

    proptest! {
        #[test]
        fn meter_mod_round_trip(mm in arb_meter_mod()) {
            let mut out = BytesMut::new();
            mm.emit(&mut out);
            prop_assert_eq!(out.len(), mm.buffer_len());
            prop_assert_eq!(MeterMod::parse(&mut Reader::new(&out, "t")).unwrap(), mm);
        }
    }
}
