//! Group table modification (spec 7.3.4.3).
//!
//! ```text
//! ofp_group_mod body: | command: u16 | type: u8 | pad: 1 | group_id: u32 | buckets... |
//! ofp_bucket:         | len: u16 | weight: u16 | watch_port: u32 | watch_group: u32 | pad: 4 | actions |
//! ```
//!
//! OpenFlow 1.3 has no group properties, and Open vSwitch adds none to it:
//! its select-group `selection_method` (`hash`, `dp_hash`),
//! `selection_method_param` and `fields(...)` travel only in OpenFlow 1.5
//! group mods and GROUP_DESC replies (a Netronome experimenter property,
//! NTR_VENDOR_ID 0x0000154d / NTRT_SELECTION_METHOD, after the bucket list)
//! and in its OpenFlow 1.0 `NXT_GROUP_MOD` (`ofp-group.c`,
//! `ofputil_encode_ofp11_group_mod` vs `ofputil_encode_ofp15_group_mod`).
//! Over 1.3, `ovs-ofctl add-group` drops them and the switch's GROUP_DESC
//! reply leaves them out, even for a group given them over 1.5
//! (`tests/ovs_bridge_oracle.rs`). A 1.3 select group gets OVS's default
//! method: `dp_hash` over the 5-tuple (2.10 and later, while the bucket
//! weights map onto at most 256 hash values), else `hash`.

use bytes::{BufMut, BytesMut};

use crate::action::{actions_len, emit_actions, parse_actions, Action};
use crate::error::{DecodeError, Result};
use crate::types::{port_no, OFPG_ANY};
use crate::wire::{len16, put_zeros, Reader, Wire};

/// `ofp_group_mod_command`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupModCommand {
    Add,
    Modify,
    Delete,
    Unknown(u16),
}

impl From<u16> for GroupModCommand {
    fn from(v: u16) -> Self {
        match v {
            0 => GroupModCommand::Add,
            1 => GroupModCommand::Modify,
            2 => GroupModCommand::Delete,
            n => GroupModCommand::Unknown(n),
        }
    }
}

impl From<GroupModCommand> for u16 {
    fn from(v: GroupModCommand) -> u16 {
        match v {
            GroupModCommand::Add => 0,
            GroupModCommand::Modify => 1,
            GroupModCommand::Delete => 2,
            GroupModCommand::Unknown(n) => n,
        }
    }
}

/// `ofp_group_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupType {
    /// Every bucket (multicast/flood).
    All,
    /// One bucket chosen by the switch (load balancing).
    Select,
    /// Exactly one bucket.
    Indirect,
    /// First live bucket.
    FastFailover,
    Unknown(u8),
}

impl From<u8> for GroupType {
    fn from(v: u8) -> Self {
        match v {
            0 => GroupType::All,
            1 => GroupType::Select,
            2 => GroupType::Indirect,
            3 => GroupType::FastFailover,
            n => GroupType::Unknown(n),
        }
    }
}

impl From<GroupType> for u8 {
    fn from(v: GroupType) -> u8 {
        match v {
            GroupType::All => 0,
            GroupType::Select => 1,
            GroupType::Indirect => 2,
            GroupType::FastFailover => 3,
            GroupType::Unknown(n) => n,
        }
    }
}

/// One group bucket.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bucket {
    /// Relative weight (select groups only; 0 otherwise).
    pub weight: u16,
    /// Port whose liveness gates this bucket (fast-failover), or `port_no::ANY`.
    pub watch_port: u32,
    /// Group whose liveness gates this bucket, or `OFPG_ANY`.
    pub watch_group: u32,
    pub actions: Vec<Action>,
}

impl Bucket {
    /// Fixed header size before the actions.
    pub const HEADER_LEN: usize = 16;

    /// A bucket with no weight and no watch, for ALL/INDIRECT groups.
    pub fn new(actions: Vec<Action>) -> Self {
        Bucket {
            weight: 0,
            watch_port: port_no::ANY,
            watch_group: OFPG_ANY,
            actions,
        }
    }
}

impl Wire for Bucket {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let len = usize::from(r.peek_u16(0)?);
        if len < Self::HEADER_LEN || len % 8 != 0 {
            return Err(DecodeError::BadLength {
                what: "bucket",
                len,
            });
        }
        let mut b = r.sub(len, "bucket")?;
        b.skip(2)?;
        let weight = b.u16()?;
        let watch_port = b.u32()?;
        let watch_group = b.u32()?;
        b.skip(4)?;
        let actions = parse_actions(&mut b, len - Self::HEADER_LEN)?;
        Ok(Bucket {
            weight,
            watch_port,
            watch_group,
            actions,
        })
    }

    fn buffer_len(&self) -> usize {
        Self::HEADER_LEN + actions_len(&self.actions)
    }

    fn emit(&self, out: &mut BytesMut) {
        out.put_u16(len16(self.buffer_len()));
        out.put_u16(self.weight);
        out.put_u32(self.watch_port);
        out.put_u32(self.watch_group);
        put_zeros(out, 4);
        emit_actions(&self.actions, out);
    }
}

/// Parses buckets until `r` is exhausted.
pub fn parse_buckets(r: &mut Reader<'_>) -> Result<Vec<Bucket>> {
    let mut out = Vec::new();
    while !r.is_empty() {
        out.push(Bucket::parse(r)?);
    }
    Ok(out)
}

/// Encoded length of a bucket list.
pub fn buckets_len(buckets: &[Bucket]) -> usize {
    buckets.iter().map(Wire::buffer_len).sum()
}

/// Appends a bucket list.
pub fn emit_buckets(buckets: &[Bucket], out: &mut BytesMut) {
    for b in buckets {
        b.emit(out);
    }
}

/// OFPT_GROUP_MOD body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupMod {
    pub command: GroupModCommand,
    pub group_type: GroupType,
    pub group_id: u32,
    pub buckets: Vec<Bucket>,
}

impl Wire for GroupMod {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let command = GroupModCommand::from(r.u16()?);
        let group_type = GroupType::from(r.u8()?);
        r.skip(1)?;
        let group_id = r.u32()?;
        let buckets = parse_buckets(r)?;
        Ok(GroupMod {
            command,
            group_type,
            group_id,
            buckets,
        })
    }

    fn buffer_len(&self) -> usize {
        8 + buckets_len(&self.buckets)
    }

    fn emit(&self, out: &mut BytesMut) {
        out.put_u16(self.command.into());
        out.put_u8(self.group_type.into());
        put_zeros(out, 1);
        out.put_u32(self.group_id);
        emit_buckets(&self.buckets, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategies::arb_group_mod;
    use proptest::prelude::*;

    #[test]
    fn group_mod_fixture() {
        let bytes = [
            0, 0, 1, 0, 0, 0, 0, 7, // ADD, SELECT, group 7
            0, 32, 0, 5, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, // bucket
            0, 0, 0, 16, 0, 0, 0, 2, 0xff, 0xff, 0, 0, 0, 0, 0, 0, // output:2
        ];
        let want = GroupMod {
            command: GroupModCommand::Add,
            group_type: GroupType::Select,
            group_id: 7,
            buckets: vec![Bucket {
                weight: 5,
                ..Bucket::new(vec![Action::Output {
                    port: 2,
                    max_len: 0xffff,
                }])
            }],
        };
        let mut r = Reader::new(&bytes, "t");
        assert_eq!(GroupMod::parse(&mut r).unwrap(), want);
        assert!(r.is_empty());
        let mut out = BytesMut::new();
        want.emit(&mut out);
        assert_eq!(out.to_vec(), bytes);
    }

    #[test]
    fn bucket_errors() {
        let zero = [0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            parse_buckets(&mut Reader::new(&zero, "t")),
            Err(DecodeError::BadLength { .. })
        ));
        let unaligned = [
            0u8, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert!(matches!(
            parse_buckets(&mut Reader::new(&unaligned, "t")),
            Err(DecodeError::BadLength { .. })
        ));
        let past_end = [0u8, 24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            parse_buckets(&mut Reader::new(&past_end, "t")),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(parse_buckets(&mut Reader::new(&[0, 16, 0], "t")).is_err());
    }

    proptest! {
        #[test]
        fn group_mod_round_trip(gm in arb_group_mod()) {
            let mut out = BytesMut::new();
            gm.emit(&mut out);
            prop_assert_eq!(out.len(), gm.buffer_len());
            let mut r = Reader::new(&out, "t");
            prop_assert_eq!(GroupMod::parse(&mut r).unwrap(), gm);
            prop_assert!(r.is_empty());
        }
    }
}
