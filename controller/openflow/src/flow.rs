//! Flow table modification and flow-removed messages (spec 7.3.4.2, 7.4.2).
//!
//! ```text
//! ofp_flow_mod body (after the 8-byte header):
//! | cookie: u64 | cookie_mask: u64 | table_id: u8 | command: u8 | idle: u16 | hard: u16 |
//! | priority: u16 | buffer_id: u32 | out_port: u32 | out_group: u32 | flags: u16 | pad: 2 |
//! | ofp_match (padded to 8) | instructions to the end of the message |
//! ```

use bytes::{BufMut, BytesMut};

use crate::error::Result;
use crate::instruction::{emit_instructions, instructions_len, parse_instructions, Instruction};
use crate::oxm::Match;
use crate::types::{port_no, NO_BUFFER, OFPG_ANY};
use crate::wire::{put_zeros, Reader, Wire};

/// `ofp_flow_mod_command`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FlowModCommand {
    #[default]
    Add,
    Modify,
    ModifyStrict,
    Delete,
    DeleteStrict,
    Unknown(u8),
}

impl From<u8> for FlowModCommand {
    fn from(v: u8) -> Self {
        match v {
            0 => FlowModCommand::Add,
            1 => FlowModCommand::Modify,
            2 => FlowModCommand::ModifyStrict,
            3 => FlowModCommand::Delete,
            4 => FlowModCommand::DeleteStrict,
            n => FlowModCommand::Unknown(n),
        }
    }
}

impl From<FlowModCommand> for u8 {
    fn from(v: FlowModCommand) -> u8 {
        match v {
            FlowModCommand::Add => 0,
            FlowModCommand::Modify => 1,
            FlowModCommand::ModifyStrict => 2,
            FlowModCommand::Delete => 3,
            FlowModCommand::DeleteStrict => 4,
            FlowModCommand::Unknown(n) => n,
        }
    }
}

/// `ofp_flow_mod_flags`.
pub mod flow_mod_flags {
    pub const SEND_FLOW_REM: u16 = 1 << 0;
    pub const CHECK_OVERLAP: u16 = 1 << 1;
    pub const RESET_COUNTS: u16 = 1 << 2;
    pub const NO_PKT_COUNTS: u16 = 1 << 3;
    pub const NO_BYT_COUNTS: u16 = 1 << 4;
}

/// `ofp_flow_removed_reason`.
pub mod flow_removed_reason {
    pub const IDLE_TIMEOUT: u8 = 0;
    pub const HARD_TIMEOUT: u8 = 1;
    pub const DELETE: u8 = 2;
    pub const GROUP_DELETE: u8 = 3;
    pub const METER_DELETE: u8 = 4;
}

/// Default flow priority (`OFP_DEFAULT_PRIORITY`).
pub const DEFAULT_PRIORITY: u16 = 0x8000;

/// OFPT_FLOW_MOD body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlowMod {
    pub cookie: u64,
    pub cookie_mask: u64,
    pub table_id: u8,
    pub command: FlowModCommand,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub priority: u16,
    pub buffer_id: u32,
    pub out_port: u32,
    pub out_group: u32,
    pub flags: u16,
    pub match_: Match,
    pub instructions: Vec<Instruction>,
}

impl Default for FlowMod {
    /// An ADD in table 0 at the default priority, unbuffered, no filters.
    fn default() -> Self {
        FlowMod {
            cookie: 0,
            cookie_mask: 0,
            table_id: 0,
            command: FlowModCommand::Add,
            idle_timeout: 0,
            hard_timeout: 0,
            priority: DEFAULT_PRIORITY,
            buffer_id: NO_BUFFER,
            out_port: port_no::ANY,
            out_group: OFPG_ANY,
            flags: 0,
            match_: Match::default(),
            instructions: Vec::new(),
        }
    }
}

impl FlowMod {
    /// Size of the fixed part of the body (before the match).
    pub const FIXED_LEN: usize = 40;

    /// An ADD of (table, priority, match) with these instructions.
    pub fn add(table_id: u8, priority: u16, match_: Match, instructions: Vec<Instruction>) -> Self {
        FlowMod {
            table_id,
            priority,
            match_,
            instructions,
            ..FlowMod::default()
        }
    }

    /// A DELETE_STRICT of exactly (table, priority, match).
    pub fn delete_strict(table_id: u8, priority: u16, match_: Match) -> Self {
        FlowMod {
            command: FlowModCommand::DeleteStrict,
            table_id,
            priority,
            match_,
            ..FlowMod::default()
        }
    }
}

impl Wire for FlowMod {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let cookie = r.u64()?;
        let cookie_mask = r.u64()?;
        let table_id = r.u8()?;
        let command = FlowModCommand::from(r.u8()?);
        let idle_timeout = r.u16()?;
        let hard_timeout = r.u16()?;
        let priority = r.u16()?;
        let buffer_id = r.u32()?;
        let out_port = r.u32()?;
        let out_group = r.u32()?;
        let flags = r.u16()?;
        r.skip(2)?;
        let match_ = Match::parse(r)?;
        let n = r.remaining();
        let instructions = parse_instructions(r, n)?;
        Ok(FlowMod {
            cookie,
            cookie_mask,
            table_id,
            command,
            idle_timeout,
            hard_timeout,
            priority,
            buffer_id,
            out_port,
            out_group,
            flags,
            match_,
            instructions,
        })
    }

    fn buffer_len(&self) -> usize {
        self.borrowed().body_len()
    }

    fn emit(&self, out: &mut BytesMut) {
        self.borrowed().emit_body(out);
    }
}

/// A FLOW_MOD whose match and instructions are borrowed: a controller that
/// keeps its entries in its own tables encodes one without copying them
/// (see [`crate::encode_flow_mod`]). Same fields as [`FlowMod`].
#[derive(Debug, Clone, Copy)]
pub struct FlowModRef<'a> {
    pub cookie: u64,
    pub cookie_mask: u64,
    pub table_id: u8,
    pub command: FlowModCommand,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub priority: u16,
    pub buffer_id: u32,
    pub out_port: u32,
    pub out_group: u32,
    pub flags: u16,
    pub match_: &'a Match,
    pub instructions: &'a [Instruction],
}

impl FlowMod {
    /// This FLOW_MOD as a [`FlowModRef`].
    pub fn borrowed(&self) -> FlowModRef<'_> {
        FlowModRef {
            cookie: self.cookie,
            cookie_mask: self.cookie_mask,
            table_id: self.table_id,
            command: self.command,
            idle_timeout: self.idle_timeout,
            hard_timeout: self.hard_timeout,
            priority: self.priority,
            buffer_id: self.buffer_id,
            out_port: self.out_port,
            out_group: self.out_group,
            flags: self.flags,
            match_: &self.match_,
            instructions: &self.instructions,
        }
    }
}

impl FlowModRef<'_> {
    /// Length of the body (everything after the OpenFlow header).
    pub fn body_len(&self) -> usize {
        FlowMod::FIXED_LEN + self.match_.buffer_len() + instructions_len(self.instructions)
    }

    pub(crate) fn emit_body(&self, out: &mut BytesMut) {
        out.put_u64(self.cookie);
        out.put_u64(self.cookie_mask);
        out.put_u8(self.table_id);
        out.put_u8(self.command.into());
        out.put_u16(self.idle_timeout);
        out.put_u16(self.hard_timeout);
        out.put_u16(self.priority);
        out.put_u32(self.buffer_id);
        out.put_u32(self.out_port);
        out.put_u32(self.out_group);
        out.put_u16(self.flags);
        put_zeros(out, 2);
        self.match_.emit(out);
        emit_instructions(self.instructions, out);
    }

    /// The owned [`FlowMod`] (copies the match and instructions).
    pub fn to_owned(&self) -> FlowMod {
        FlowMod {
            cookie: self.cookie,
            cookie_mask: self.cookie_mask,
            table_id: self.table_id,
            command: self.command,
            idle_timeout: self.idle_timeout,
            hard_timeout: self.hard_timeout,
            priority: self.priority,
            buffer_id: self.buffer_id,
            out_port: self.out_port,
            out_group: self.out_group,
            flags: self.flags,
            match_: self.match_.clone(),
            instructions: self.instructions.to_vec(),
        }
    }
}

/// OFPT_FLOW_REMOVED body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlowRemoved {
    pub cookie: u64,
    pub priority: u16,
    /// See [`flow_removed_reason`].
    pub reason: u8,
    pub table_id: u8,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub packet_count: u64,
    pub byte_count: u64,
    pub match_: Match,
}

impl Wire for FlowRemoved {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        Ok(FlowRemoved {
            cookie: r.u64()?,
            priority: r.u16()?,
            reason: r.u8()?,
            table_id: r.u8()?,
            duration_sec: r.u32()?,
            duration_nsec: r.u32()?,
            idle_timeout: r.u16()?,
            hard_timeout: r.u16()?,
            packet_count: r.u64()?,
            byte_count: r.u64()?,
            match_: Match::parse(r)?,
        })
    }

    fn buffer_len(&self) -> usize {
        40 + self.match_.buffer_len()
    }

    fn emit(&self, out: &mut BytesMut) {
        out.put_u64(self.cookie);
        out.put_u16(self.priority);
        out.put_u8(self.reason);
        out.put_u8(self.table_id);
        out.put_u32(self.duration_sec);
        out.put_u32(self.duration_nsec);
        out.put_u16(self.idle_timeout);
        out.put_u16(self.hard_timeout);
        out.put_u64(self.packet_count);
        out.put_u64(self.byte_count);
        self.match_.emit(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::Action;
    use crate::oxm::Oxm;
    use crate::strategies::arb_flow_mod;
    use proptest::prelude::*;

    fn flow_mod_fixture() -> (Vec<u8>, FlowMod) {
        let mut b = Vec::new();
        b.extend_from_slice(&0x0102_0304_0506_0708u64.to_be_bytes()); // cookie
        b.extend_from_slice(&0u64.to_be_bytes()); // cookie_mask
        b.extend_from_slice(&[1, 0]); // table 1, ADD
        b.extend_from_slice(&[0, 30, 0, 0]); // idle 30, hard 0
        b.extend_from_slice(&[0x01, 0x00]); // priority 256
        b.extend_from_slice(&[0xff; 4]); // buffer_id
        b.extend_from_slice(&[0xff; 4]); // out_port
        b.extend_from_slice(&[0xff; 4]); // out_group
        b.extend_from_slice(&[0, 1, 0, 0]); // flags SEND_FLOW_REM, pad
        b.extend_from_slice(&[0, 1, 0, 12, 0x80, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 0]); // in_port=5
        b.extend_from_slice(&[0, 4, 0, 24, 0, 0, 0, 0]); // apply-actions
        b.extend_from_slice(&[0, 0, 0, 16, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0]); // output:6
        b.extend_from_slice(&[0, 1, 0, 8, 2, 0, 0, 0]); // goto 2
        let fm = FlowMod {
            cookie: 0x0102_0304_0506_0708,
            table_id: 1,
            idle_timeout: 30,
            priority: 256,
            flags: flow_mod_flags::SEND_FLOW_REM,
            match_: Match::new().with(Oxm::InPort(5)),
            instructions: vec![
                Instruction::ApplyActions(vec![Action::Output {
                    port: 6,
                    max_len: 0,
                }]),
                Instruction::GotoTable(2),
            ],
            ..FlowMod::default()
        };
        (b, fm)
    }

    #[test]
    fn flow_mod_fixture_round_trip() {
        let (bytes, want) = flow_mod_fixture();
        let mut r = Reader::new(&bytes, "t");
        assert_eq!(FlowMod::parse(&mut r).unwrap(), want);
        assert!(r.is_empty());
        let mut out = BytesMut::new();
        want.emit(&mut out);
        assert_eq!(out.len(), want.buffer_len());
        assert_eq!(out.to_vec(), bytes);
    }

    #[test]
    fn flow_mod_errors() {
        let (bytes, _) = flow_mod_fixture();
        // Cut inside the fixed part, the match, and an instruction.
        for cut in [10, 44, 60, bytes.len() - 4] {
            assert!(
                FlowMod::parse(&mut Reader::new(&bytes[..cut], "t")).is_err(),
                "{cut}"
            );
        }
        // Instruction with zero length.
        let mut bad = bytes[..56].to_vec();
        bad.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        assert!(FlowMod::parse(&mut Reader::new(&bad, "t")).is_err());
    }

    #[test]
    fn flow_removed_fixture() {
        let mut b = Vec::new();
        b.extend_from_slice(&9u64.to_be_bytes());
        b.extend_from_slice(&[0x80, 0x00, 0, 3]); // priority, reason IDLE, table 3
        b.extend_from_slice(&[0, 0, 0, 10, 0, 0, 0, 20]); // duration
        b.extend_from_slice(&[0, 60, 0, 0]); // timeouts
        b.extend_from_slice(&5u64.to_be_bytes());
        b.extend_from_slice(&500u64.to_be_bytes());
        b.extend_from_slice(&[0, 1, 0, 4, 0, 0, 0, 0]); // empty match
        let want = FlowRemoved {
            cookie: 9,
            priority: 0x8000,
            reason: flow_removed_reason::IDLE_TIMEOUT,
            table_id: 3,
            duration_sec: 10,
            duration_nsec: 20,
            idle_timeout: 60,
            hard_timeout: 0,
            packet_count: 5,
            byte_count: 500,
            match_: Match::new(),
        };
        let mut r = Reader::new(&b, "t");
        assert_eq!(FlowRemoved::parse(&mut r).unwrap(), want);
        assert!(r.is_empty());
        let mut out = BytesMut::new();
        want.emit(&mut out);
        assert_eq!(out.to_vec(), b);
        assert!(FlowRemoved::parse(&mut Reader::new(&b[..42], "t")).is_err());
    }

    proptest! {
        #[test]
        fn flow_mod_round_trip(fm in arb_flow_mod()) {
            let mut out = BytesMut::new();
            fm.emit(&mut out);
            prop_assert_eq!(out.len(), fm.buffer_len());
            let mut r = Reader::new(&out, "t");
            prop_assert_eq!(FlowMod::parse(&mut r).unwrap(), fm);
            prop_assert!(r.is_empty());
        }
    }
}
