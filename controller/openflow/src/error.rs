//! Typed decode errors. Every parse failure names what was being parsed so a
//! live connection can log it and answer with the matching OpenFlow error.

use thiserror::Error;

/// Why a byte sequence could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The buffer ended before `what` was complete.
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    /// A length field is impossible (too small, not aligned, or past the end).
    #[error("bad length in {what}: {len}")]
    BadLength { what: &'static str, len: usize },
    /// The header carries a protocol version this codec does not decode.
    #[error("unsupported OpenFlow version {0:#04x}")]
    BadVersion(u8),
    /// A field holds a value that cannot be represented.
    #[error("invalid {what}: {value}")]
    Invalid { what: &'static str, value: u64 },
}

impl DecodeError {
    /// The OpenFlow 1.3 error (type, code) a switch-facing peer should send
    /// back for this decode failure (spec 7.4.4: OFPET_BAD_REQUEST).
    pub fn ofp_error(&self) -> (u16, u16) {
        const OFPET_BAD_REQUEST: u16 = 1;
        const OFPBRC_BAD_VERSION: u16 = 0;
        const OFPBRC_BAD_LEN: u16 = 6;
        match self {
            DecodeError::BadVersion(_) => (OFPET_BAD_REQUEST, OFPBRC_BAD_VERSION),
            _ => (OFPET_BAD_REQUEST, OFPBRC_BAD_LEN),
        }
    }
}

pub type Result<T> = core::result::Result<T, DecodeError>;
