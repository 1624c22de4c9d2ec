//! Sans-IO OpenFlow 1.3 codec (OpenFlow Switch Specification 1.3.5).
//!
//! Bytes in, typed messages out, and back. No sockets, no clock, no panics on
//! wire input: malformed bytes yield a [`DecodeError`]. Unknown message types,
//! OXM fields, actions, instructions and properties are kept as raw bytes and
//! re-emitted unchanged.
#![forbid(unsafe_code)]

pub mod error;
pub mod wire;

pub use error::{DecodeError, Result};
