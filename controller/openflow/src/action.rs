//! Actions (spec 7.2.5): `| type: u16 | len: u16 | body | pad to 8 |`.
//!
//! Every action's `len` covers its padding and must be a non-zero multiple
//! of 8. A known action type whose length is not the spec's size is kept as
//! [`Action::Unknown`] so it still re-emits byte for byte.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::Result;
use crate::oxm::Oxm;
use crate::wire::{len16, pad8, put_zeros, round8, Reader, Wire};

/// Action type numbers (`enum ofp_action_type`).
pub mod action_type {
    pub const OUTPUT: u16 = 0;
    pub const COPY_TTL_OUT: u16 = 11;
    pub const COPY_TTL_IN: u16 = 12;
    pub const SET_MPLS_TTL: u16 = 15;
    pub const DEC_MPLS_TTL: u16 = 16;
    pub const PUSH_VLAN: u16 = 17;
    pub const POP_VLAN: u16 = 18;
    pub const PUSH_MPLS: u16 = 19;
    pub const POP_MPLS: u16 = 20;
    pub const SET_QUEUE: u16 = 21;
    pub const GROUP: u16 = 22;
    pub const SET_NW_TTL: u16 = 23;
    pub const DEC_NW_TTL: u16 = 24;
    pub const SET_FIELD: u16 = 25;
    pub const PUSH_PBB: u16 = 26;
    pub const POP_PBB: u16 = 27;
    pub const EXPERIMENTER: u16 = 0xffff;
}

/// Nicira's experimenter id (OVS extension actions such as ct, nat, resubmit).
pub const NX_EXPERIMENTER_ID: u32 = 0x0000_2320;

/// One OpenFlow 1.3 action.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    Output {
        port: u32,
        max_len: u16,
    },
    CopyTtlOut,
    CopyTtlIn,
    SetMplsTtl(u8),
    DecMplsTtl,
    /// Ethertype of the new tag (0x8100 or 0x88a8).
    PushVlan(u16),
    PopVlan,
    PushMpls(u16),
    /// Ethertype of the payload after the popped label.
    PopMpls(u16),
    SetQueue(u32),
    Group(u32),
    SetNwTtl(u8),
    DecNwTtl,
    SetField(Oxm),
    PushPbb(u16),
    PopPbb,
    /// OFPAT_EXPERIMENTER (0xffff): `data` is everything after the 4-byte
    /// experimenter id, including padding, byte-exact (Nicira ct/nat/resubmit
    /// live here until typed). `8 + data.len()` must be a multiple of 8.
    Experimenter {
        experimenter: u32,
        data: Bytes,
    },
    /// Any other type, or a known type with a non-standard length: `data` =
    /// bytes after the 4-byte type/len header (`4 + data.len()` a multiple of 8).
    Unknown {
        action_type: u16,
        data: Bytes,
    },
}

impl Action {
    /// Output to a port with the default "whole packet" max_len for the controller.
    pub fn output(port: u32) -> Action {
        Action::Output {
            port,
            max_len: crate::types::OFPCML_NO_BUFFER,
        }
    }

    /// The wire type number.
    pub fn action_type(&self) -> u16 {
        use action_type::*;
        match self {
            Action::Output { .. } => OUTPUT,
            Action::CopyTtlOut => COPY_TTL_OUT,
            Action::CopyTtlIn => COPY_TTL_IN,
            Action::SetMplsTtl(_) => SET_MPLS_TTL,
            Action::DecMplsTtl => DEC_MPLS_TTL,
            Action::PushVlan(_) => PUSH_VLAN,
            Action::PopVlan => POP_VLAN,
            Action::PushMpls(_) => PUSH_MPLS,
            Action::PopMpls(_) => POP_MPLS,
            Action::SetQueue(_) => SET_QUEUE,
            Action::Group(_) => GROUP,
            Action::SetNwTtl(_) => SET_NW_TTL,
            Action::DecNwTtl => DEC_NW_TTL,
            Action::SetField(_) => SET_FIELD,
            Action::PushPbb(_) => PUSH_PBB,
            Action::PopPbb => POP_PBB,
            Action::Experimenter { .. } => EXPERIMENTER,
            Action::Unknown { action_type, .. } => *action_type,
        }
    }

    /// Parses the typed body of a known action whose length is the spec's
    /// size; `None` means "keep it raw".
    fn typed(ty: u16, len: usize, body: &mut Reader<'_>) -> Result<Option<Action>> {
        use action_type::*;
        let fixed = |size: usize| len == size;
        let a = match ty {
            OUTPUT if fixed(16) => {
                let port = body.u32()?;
                let max_len = body.u16()?;
                Action::Output { port, max_len }
            }
            COPY_TTL_OUT if fixed(8) => Action::CopyTtlOut,
            COPY_TTL_IN if fixed(8) => Action::CopyTtlIn,
            SET_MPLS_TTL if fixed(8) => Action::SetMplsTtl(body.u8()?),
            DEC_MPLS_TTL if fixed(8) => Action::DecMplsTtl,
            PUSH_VLAN if fixed(8) => Action::PushVlan(body.u16()?),
            POP_VLAN if fixed(8) => Action::PopVlan,
            PUSH_MPLS if fixed(8) => Action::PushMpls(body.u16()?),
            POP_MPLS if fixed(8) => Action::PopMpls(body.u16()?),
            SET_QUEUE if fixed(8) => Action::SetQueue(body.u32()?),
            GROUP if fixed(8) => Action::Group(body.u32()?),
            SET_NW_TTL if fixed(8) => Action::SetNwTtl(body.u8()?),
            DEC_NW_TTL if fixed(8) => Action::DecNwTtl,
            PUSH_PBB if fixed(8) => Action::PushPbb(body.u16()?),
            POP_PBB if fixed(8) => Action::PopPbb,
            SET_FIELD => {
                let oxm = Oxm::parse(body)?;
                // Only the minimal zero padding is typed; anything else stays raw.
                if round8(4 + oxm.buffer_len()) != len || body.rest().iter().any(|b| *b != 0) {
                    return Ok(None);
                }
                Action::SetField(oxm)
            }
            EXPERIMENTER => {
                let experimenter = body.u32()?;
                Action::Experimenter {
                    experimenter,
                    data: body.rest_owned(),
                }
            }
            _ => return Ok(None),
        };
        Ok(Some(a))
    }
}

impl Wire for Action {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let (ty, len, body) = r.tlv("action", 8, 8)?;
        match Action::typed(ty, len, &mut body.clone())? {
            Some(a) => Ok(a),
            None => Ok(Action::Unknown {
                action_type: ty,
                data: body.clone().rest_owned(),
            }),
        }
    }

    fn buffer_len(&self) -> usize {
        match self {
            Action::Output { .. } => 16,
            Action::SetField(oxm) => round8(4 + oxm.buffer_len()),
            Action::Experimenter { data, .. } => 8 + data.len(),
            Action::Unknown { data, .. } => 4 + data.len(),
            _ => 8,
        }
    }

    fn emit(&self, out: &mut BytesMut) {
        out.put_u16(self.action_type());
        out.put_u16(len16(self.buffer_len()));
        match self {
            Action::Output { port, max_len } => {
                out.put_u32(*port);
                out.put_u16(*max_len);
                put_zeros(out, 6);
            }
            Action::CopyTtlOut
            | Action::CopyTtlIn
            | Action::DecMplsTtl
            | Action::PopVlan
            | Action::DecNwTtl
            | Action::PopPbb => put_zeros(out, 4),
            Action::SetMplsTtl(ttl) | Action::SetNwTtl(ttl) => {
                out.put_u8(*ttl);
                put_zeros(out, 3);
            }
            Action::PushVlan(et)
            | Action::PushMpls(et)
            | Action::PopMpls(et)
            | Action::PushPbb(et) => {
                out.put_u16(*et);
                put_zeros(out, 2);
            }
            Action::SetQueue(id) | Action::Group(id) => out.put_u32(*id),
            Action::SetField(oxm) => {
                oxm.emit(out);
                put_zeros(out, pad8(4 + oxm.buffer_len()));
            }
            Action::Experimenter { experimenter, data } => {
                out.put_u32(*experimenter);
                out.put_slice(data);
            }
            Action::Unknown { data, .. } => out.put_slice(data),
        }
    }
}

/// Parses an action list occupying exactly `len` bytes of `r`.
pub fn parse_actions(r: &mut Reader<'_>, len: usize) -> Result<Vec<Action>> {
    let mut sub = r.sub(len, "action list")?;
    let mut out = Vec::new();
    while !sub.is_empty() {
        out.push(Action::parse(&mut sub)?);
    }
    Ok(out)
}

/// Encoded length of an action list.
pub fn actions_len(actions: &[Action]) -> usize {
    actions.iter().map(Wire::buffer_len).sum()
}

/// Appends an action list.
pub fn emit_actions(actions: &[Action], out: &mut BytesMut) {
    for a in actions {
        a.emit(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::DecodeError;
    use crate::strategies::arb_action;
    use crate::types::port_no;
    use proptest::prelude::*;

    fn emit(a: &Action) -> Vec<u8> {
        let mut out = BytesMut::new();
        a.emit(&mut out);
        assert_eq!(out.len(), a.buffer_len());
        out.to_vec()
    }

    fn parse(b: &[u8]) -> Result<Action> {
        let mut r = Reader::new(b, "test");
        let a = Action::parse(&mut r)?;
        r.finish()?;
        Ok(a)
    }

    #[test]
    fn output_fixture() {
        let bytes = [
            0x00, 0x00, 0x00, 0x10, 0xff, 0xff, 0xff, 0xfd, 0xff, 0xff, 0, 0, 0, 0, 0, 0,
        ];
        let a = parse(&bytes).unwrap();
        assert_eq!(a, Action::output(port_no::CONTROLLER));
        assert_eq!(emit(&a), bytes);
    }

    #[test]
    fn small_fixtures() {
        let cases: [(&[u8], Action); 6] = [
            (&[0, 17, 0, 8, 0x81, 0x00, 0, 0], Action::PushVlan(0x8100)),
            (&[0, 18, 0, 8, 0, 0, 0, 0], Action::PopVlan),
            (&[0, 21, 0, 8, 0, 0, 0, 3], Action::SetQueue(3)),
            (&[0, 22, 0, 8, 0, 0, 0, 9], Action::Group(9)),
            (&[0, 23, 0, 8, 64, 0, 0, 0], Action::SetNwTtl(64)),
            (&[0, 24, 0, 8, 0, 0, 0, 0], Action::DecNwTtl),
        ];
        for (bytes, want) in cases {
            assert_eq!(parse(bytes).unwrap(), want);
            assert_eq!(emit(&want), bytes);
        }
    }

    #[test]
    fn set_field_fixture() {
        // set_field(vlan_vid=0x1005): 4 + 6 = 10, padded to 16.
        let bytes = [
            0x00, 0x19, 0x00, 0x10, 0x80, 0x00, 0x0c, 0x02, 0x10, 0x05, 0, 0, 0, 0, 0, 0,
        ];
        let a = parse(&bytes).unwrap();
        assert_eq!(a, Action::SetField(Oxm::VlanVid(0x1005, None)));
        assert_eq!(emit(&a), bytes);
    }

    #[test]
    fn set_field_with_extra_or_dirty_padding_kept_raw() {
        // Same OXM, padded to 24 instead of 16.
        let mut long = vec![0x00, 0x19, 0x00, 0x18, 0x80, 0x00, 0x0c, 0x02, 0x10, 0x05];
        long.resize(24, 0);
        // Minimal length but a non-zero pad byte.
        let dirty = [
            0x00, 0x19, 0x00, 0x10, 0x80, 0x00, 0x0c, 0x02, 0x10, 0x05, 0, 0, 0, 0, 0, 1,
        ];
        for bytes in [&long[..], &dirty[..]] {
            let a = parse(bytes).unwrap();
            assert!(
                matches!(
                    a,
                    Action::Unknown {
                        action_type: 25,
                        ..
                    }
                ),
                "{a:?}"
            );
            assert_eq!(emit(&a), bytes);
        }
    }

    #[test]
    fn nicira_experimenter_kept_raw() {
        // NXAST_RESUBMIT_TABLE (subtype 14): in_port=0xfff8, table 2.
        let bytes = [
            0xff, 0xff, 0x00, 0x10, 0x00, 0x00, 0x23, 0x20, 0x00, 0x0e, 0xff, 0xf8, 0x02, 0, 0, 0,
        ];
        let a = parse(&bytes).unwrap();
        assert_eq!(
            a,
            Action::Experimenter {
                experimenter: NX_EXPERIMENTER_ID,
                data: Bytes::copy_from_slice(&bytes[8..]),
            }
        );
        assert_eq!(emit(&a), bytes);
    }

    #[test]
    fn odd_length_known_type_kept_raw() {
        // OUTPUT padded to 24 bytes.
        let mut bytes = vec![0, 0, 0, 24, 0, 0, 0, 1, 0xff, 0xe5];
        bytes.resize(24, 0);
        let a = parse(&bytes).unwrap();
        assert!(matches!(a, Action::Unknown { action_type: 0, .. }));
        assert_eq!(emit(&a), bytes);
    }

    #[test]
    fn action_errors() {
        // Zero length must not loop.
        assert!(matches!(
            parse(&[0, 0, 0, 0]),
            Err(DecodeError::BadLength { .. })
        ));
        // Not a multiple of 8.
        assert!(matches!(
            parse(&[0, 18, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(DecodeError::BadLength { .. })
        ));
        // Past the end.
        assert!(matches!(
            parse(&[0, 0, 0, 16, 0, 0, 0, 1]),
            Err(DecodeError::Truncated { .. })
        ));
        // Set-field whose OXM overruns the action.
        assert!(parse(&[0, 25, 0, 8, 0x80, 0, 0, 8]).is_err());
        // Experimenter too short for its id.
        assert!(parse(&[0xff, 0xff, 0, 4]).is_err());
    }

    #[test]
    fn action_list() {
        let list = vec![Action::PopVlan, Action::output(1)];
        let mut out = BytesMut::new();
        emit_actions(&list, &mut out);
        assert_eq!(out.len(), actions_len(&list));
        let mut r = Reader::new(&out, "t");
        assert_eq!(parse_actions(&mut r, out.len()).unwrap(), list);
        // A list length that cuts an action in half.
        let mut r = Reader::new(&out, "t");
        assert!(parse_actions(&mut r, 12).is_err());
    }

    proptest! {
        #[test]
        fn action_round_trip(a in arb_action()) {
            let bytes = emit(&a);
            prop_assert_eq!(bytes.len() % 8, 0);
            prop_assert_eq!(parse(&bytes).unwrap(), a);
        }

        #[test]
        fn action_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
            let mut r = Reader::new(&bytes, "fuzz");
            let _ = parse_actions(&mut r, bytes.len());
        }
    }
}
