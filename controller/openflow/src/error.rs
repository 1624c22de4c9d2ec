//! Typed decode and encode errors. Every parse failure names what was being
//! parsed so a live connection can log it and answer with the matching
//! OpenFlow error; every encode failure names the message.

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

/// Why a message was not encoded. The encoders append nothing on error.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The message is longer than `ofp_header.length` (16 bits) can say,
    /// so no switch could frame it (e.g. thousands of actions).
    #[error("{msg_type} of {len} bytes is longer than an OpenFlow message can be (65535)")]
    TooLong { msg_type: &'static str, len: usize },
    /// The OpenFlow 1.0 dialect cannot express the message.
    #[error(transparent)]
    Unsupported(#[from] crate::of10::Unsupported),
}

/// Checks a whole message's length (header included) against the 16-bit
/// length field; `msg_type` names the message, asked only on error.
#[inline]
pub(crate) fn message_len16(
    len: usize,
    msg_type: impl FnOnce() -> &'static str,
) -> core::result::Result<u16, EncodeError> {
    match u16::try_from(len) {
        Ok(len) => Ok(len),
        Err(_) => Err(too_long(msg_type(), len)),
    }
}

// Out of line: the encoders inline the check into every caller.
#[cold]
#[inline(never)]
fn too_long(msg_type: &'static str, len: usize) -> EncodeError {
    EncodeError::TooLong { msg_type, len }
}
