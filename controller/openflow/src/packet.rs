//! Packet-in and packet-out (spec 7.4.1, 7.3.7).
//!
//! ```text
//! ofp_packet_in body:  | buffer_id: u32 | total_len: u16 | reason: u8 | table_id: u8 | cookie: u64 |
//!                      | ofp_match (padded) | pad: 2 | frame data |
//! ofp_packet_out body: | buffer_id: u32 | in_port: u32 | actions_len: u16 | pad: 6 | actions | data |
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::action::{actions_len, emit_actions, parse_actions, Action};
use crate::error::Result;
use crate::oxm::Match;
use crate::types::{port_no, NO_BUFFER};
use crate::wire::{len16, put_zeros, Reader, Wire};

/// `ofp_packet_in_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketInReason {
    /// No matching flow (table-miss flow entry).
    NoMatch,
    /// An explicit output-to-controller action.
    Action,
    /// TTL expired.
    InvalidTtl,
    Unknown(u8),
}

impl From<u8> for PacketInReason {
    fn from(v: u8) -> Self {
        match v {
            0 => PacketInReason::NoMatch,
            1 => PacketInReason::Action,
            2 => PacketInReason::InvalidTtl,
            n => PacketInReason::Unknown(n),
        }
    }
}

impl From<PacketInReason> for u8 {
    fn from(v: PacketInReason) -> u8 {
        match v {
            PacketInReason::NoMatch => 0,
            PacketInReason::Action => 1,
            PacketInReason::InvalidTtl => 2,
            PacketInReason::Unknown(n) => n,
        }
    }
}

/// OFPT_PACKET_IN body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PacketIn {
    /// `NO_BUFFER` when the whole frame is in `data`.
    pub buffer_id: u32,
    /// Full length of the frame (`data` may be truncated to miss_send_len).
    pub total_len: u16,
    pub reason: PacketInReason,
    pub table_id: u8,
    /// Cookie of the flow entry that sent the packet.
    pub cookie: u64,
    /// Pipeline fields: at least IN_PORT, plus metadata/tunnel_id when set.
    pub match_: Match,
    pub data: Bytes,
}

impl PacketIn {
    /// The ingress port from the match, if the switch sent it (OF1.3 switches must).
    pub fn in_port(&self) -> Option<u32> {
        self.match_.in_port()
    }

    /// Parses the OFPT_PACKET_IN body that is `buf[body_start..]` like
    /// [`Wire::parse`], except that `data` is `buf` itself, advanced to the
    /// frame, instead of a copy: the frame is the bulk of a packet-in, and
    /// the flow-setup path reads it once. On success `buf` is left empty
    /// (taking it over costs no reference count); on error it is untouched.
    #[inline]
    pub fn parse_shared(buf: &mut Bytes, body_start: usize) -> Result<Self> {
        let body = buf.get(body_start..).unwrap_or_default();
        let mut r = Reader::new(body, "OFPT_PACKET_IN");
        let head = Head::parse(&mut r)?;
        // In bounds: the head parsed from `buf[body_start..]`.
        let data_start = body_start + r.position();
        let mut data = std::mem::take(buf);
        data.advance(data_start);
        Ok(head.with_data(data))
    }
}

/// A packet-in's fields before the frame.
struct Head {
    buffer_id: u32,
    total_len: u16,
    reason: PacketInReason,
    table_id: u8,
    cookie: u64,
    match_: Match,
}

impl Head {
    #[inline(always)]
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        // The fixed part in one bounds check.
        let [b0, b1, b2, b3, l0, l1, reason, table_id, cookie @ ..] = r.array::<16>()?;
        let match_ = Match::parse(r)?;
        r.skip(2)?;
        Ok(Head {
            buffer_id: u32::from_be_bytes([b0, b1, b2, b3]),
            total_len: u16::from_be_bytes([l0, l1]),
            reason: PacketInReason::from(reason),
            table_id,
            cookie: u64::from_be_bytes(cookie),
            match_,
        })
    }

    #[inline(always)]
    fn with_data(self, data: Bytes) -> PacketIn {
        PacketIn {
            buffer_id: self.buffer_id,
            total_len: self.total_len,
            reason: self.reason,
            table_id: self.table_id,
            cookie: self.cookie,
            match_: self.match_,
            data,
        }
    }
}

impl Wire for PacketIn {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Head::parse(r)?.with_data(r.rest_owned()))
    }

    fn buffer_len(&self) -> usize {
        16 + self.match_.buffer_len() + 2 + self.data.len()
    }

    fn emit(&self, out: &mut BytesMut) {
        out.put_u32(self.buffer_id);
        out.put_u16(self.total_len);
        out.put_u8(self.reason.into());
        out.put_u8(self.table_id);
        out.put_u64(self.cookie);
        self.match_.emit(out);
        put_zeros(out, 2);
        out.put_slice(&self.data);
    }
}

/// OFPT_PACKET_OUT body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PacketOut {
    /// A switch buffer to release, or `NO_BUFFER` with the frame in `data`.
    pub buffer_id: u32,
    /// Ingress port for the actions' purposes (`port_no::CONTROLLER` if none).
    pub in_port: u32,
    pub actions: Vec<Action>,
    pub data: Bytes,
}

impl PacketOut {
    /// Sends `data` (an unbuffered frame) through `actions`, as if from the controller.
    pub fn with_data(actions: Vec<Action>, data: Bytes) -> Self {
        PacketOut {
            buffer_id: NO_BUFFER,
            in_port: port_no::CONTROLLER,
            actions,
            data,
        }
    }

    /// This PACKET_OUT as a [`PacketOutRef`].
    pub fn borrowed(&self) -> PacketOutRef<'_> {
        PacketOutRef {
            buffer_id: self.buffer_id,
            in_port: self.in_port,
            actions: &self.actions,
            data: &self.data,
        }
    }
}

/// A PACKET_OUT whose actions and frame are borrowed: answering a
/// packet-in with the same actions every time (a constant slice) needs no
/// allocation (see [`crate::encode_packet_out`]). Same fields as
/// [`PacketOut`].
#[derive(Debug, Clone, Copy)]
pub struct PacketOutRef<'a> {
    pub buffer_id: u32,
    pub in_port: u32,
    pub actions: &'a [Action],
    pub data: &'a [u8],
}

impl PacketOutRef<'_> {
    /// Length of the body (everything after the OpenFlow header).
    pub fn body_len(&self) -> usize {
        16 + actions_len(self.actions) + self.data.len()
    }

    pub(crate) fn emit_body(&self, out: &mut BytesMut) {
        out.put_u32(self.buffer_id);
        out.put_u32(self.in_port);
        out.put_u16(len16(actions_len(self.actions)));
        put_zeros(out, 6);
        emit_actions(self.actions, out);
        out.put_slice(self.data);
    }
}

impl Wire for PacketOut {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let buffer_id = r.u32()?;
        let in_port = r.u32()?;
        let alen = usize::from(r.u16()?);
        r.skip(6)?;
        let actions = parse_actions(r, alen)?;
        Ok(PacketOut {
            buffer_id,
            in_port,
            actions,
            data: r.rest_owned(),
        })
    }

    fn buffer_len(&self) -> usize {
        self.borrowed().body_len()
    }

    fn emit(&self, out: &mut BytesMut) {
        self.borrowed().emit_body(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::DecodeError;
    use crate::oxm::Oxm;
    use crate::strategies::{arb_packet_in, arb_packet_out};
    use proptest::prelude::*;

    #[test]
    fn packet_in_fixture() {
        let mut b = vec![0xff, 0xff, 0xff, 0xff, 0, 4, 0, 0]; // no buffer, total 4, NO_MATCH, t0
        b.extend_from_slice(&7u64.to_be_bytes());
        b.extend_from_slice(&[0, 1, 0, 12, 0x80, 0, 0, 4, 0, 0, 0, 3, 0, 0, 0, 0]); // in_port=3
        b.extend_from_slice(&[0, 0]); // pad
        b.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let want = PacketIn {
            buffer_id: NO_BUFFER,
            total_len: 4,
            reason: PacketInReason::NoMatch,
            table_id: 0,
            cookie: 7,
            match_: Match::new().with(Oxm::InPort(3)),
            data: Bytes::from_static(&[0xde, 0xad, 0xbe, 0xef]),
        };
        let got = PacketIn::parse(&mut Reader::new(&b, "t")).unwrap();
        assert_eq!(got, want);
        assert_eq!(got.in_port(), Some(3));
        let mut out = BytesMut::new();
        want.emit(&mut out);
        assert_eq!(out.to_vec(), b);
        // Missing the two pad bytes after the match.
        assert!(PacketIn::parse(&mut Reader::new(&b[..33], "t")).is_err());
    }

    #[test]
    fn packet_out_fixture() {
        let mut b = vec![
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfd, 0, 16, 0, 0, 0, 0, 0, 0,
        ];
        b.extend_from_slice(&[0, 0, 0, 16, 0xff, 0xff, 0xff, 0xfb, 0, 0, 0, 0, 0, 0, 0, 0]);
        b.extend_from_slice(b"frame");
        let want = PacketOut::with_data(
            vec![Action::Output {
                port: port_no::FLOOD,
                max_len: 0,
            }],
            Bytes::from_static(b"frame"),
        );
        assert_eq!(PacketOut::parse(&mut Reader::new(&b, "t")).unwrap(), want);
        let mut out = BytesMut::new();
        want.emit(&mut out);
        assert_eq!(out.to_vec(), b);
    }

    #[test]
    fn packet_out_bad_actions_len() {
        // actions_len past the end.
        let b = [
            0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16,
        ];
        assert!(matches!(
            PacketOut::parse(&mut Reader::new(&b, "t")),
            Err(DecodeError::Truncated { .. })
        ));
        // actions_len cutting an action.
        let mut b = vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&[0, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(PacketOut::parse(&mut Reader::new(&b, "t")).is_err());
    }

    proptest! {
        #[test]
        fn packet_in_round_trip(p in arb_packet_in()) {
            let mut out = BytesMut::new();
            p.emit(&mut out);
            prop_assert_eq!(out.len(), p.buffer_len());
            prop_assert_eq!(PacketIn::parse(&mut Reader::new(&out, "t")).unwrap(), p);
        }

        #[test]
        fn shared_parse_equals_copying_parse(p in arb_packet_in(), cut in 0usize..64) {
            let mut out = BytesMut::new();
            p.emit(&mut out);
            let body = out.freeze();
            let shared = PacketIn::parse_shared(&mut body.clone(), 0).unwrap();
            let mut framed = BytesMut::from(&b"headr..."[..]);
            framed.extend_from_slice(&body);
            let mut framed = framed.freeze();
            prop_assert_eq!(&PacketIn::parse_shared(&mut framed, 8).unwrap(), &p);
            prop_assert!(framed.is_empty(), "taken over");
            prop_assert_eq!(&shared, &p);
            // Truncated bodies fail the same way, and stay with the caller.
            let mut short = body.slice(..body.len().saturating_sub(cut + p.data.len() + 1));
            let kept = short.clone();
            prop_assert_eq!(
                PacketIn::parse_shared(&mut short, 0).is_err(),
                PacketIn::parse(&mut Reader::new(&kept, "t")).is_err()
            );
            if short.is_empty() != kept.is_empty() {
                prop_assert!(false, "a failed parse took the buffer");
            }
        }

        #[test]
        fn packet_out_round_trip(p in arb_packet_out()) {
            let mut out = BytesMut::new();
            p.emit(&mut out);
            prop_assert_eq!(out.len(), p.buffer_len());
            prop_assert_eq!(PacketOut::parse(&mut Reader::new(&out, "t")).unwrap(), p);
        }

        /// The borrowed encoders write what the owned message's do, in
        /// both versions, including refusing what 1.0 cannot express.
        #[test]
        fn borrowed_packet_out_encodes_as_the_owned_one(p in arb_packet_out(), xid: u32) {
            let owned = crate::Message::PacketOut(p.clone());
            let (mut want, mut got) = (BytesMut::new(), BytesMut::new());
            prop_assert_eq!(
                crate::encode(xid, &owned, &mut want).is_ok(),
                crate::encode_packet_out(xid, &p.borrowed(), &mut got).is_ok()
            );
            prop_assert_eq!(&want, &got);
            let (mut want, mut got) = (BytesMut::new(), BytesMut::new());
            prop_assert_eq!(
                crate::of10::encode(xid, &owned, &mut want).is_ok(),
                crate::of10::encode_packet_out(xid, &p.borrowed(), &mut got).is_ok()
            );
            prop_assert_eq!(want, got);
        }
    }
}
