//! The top level: OpenFlow header, stream framing, and the [`Message`] enum
//! with [`decode`] / [`encode`] (spec 7.1).
//!
//! ```text
//! ofp_header: | version: u8 | type: u8 | length: u16 (header + body) | xid: u32 |
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{message_len16, DecodeError, EncodeError, Result};
use crate::flow::{FlowMod, FlowModRef, FlowRemoved};
use crate::group::GroupMod;
use crate::meter::MeterMod;
use crate::multipart::{MultipartReply, MultipartRequest};
use crate::packet::{PacketIn, PacketOut, PacketOutRef};
use crate::port::{PortMod, PortStatus};
use crate::switch::{
    AsyncConfig, ErrorMsg, Experimenter, Hello, QueueGetConfigReply, QueueGetConfigRequest,
    RoleMsg, SwitchConfig, SwitchFeatures, TableMod,
};
use crate::types::OFP_VERSION_1_3;
use crate::wire::{Reader, Wire};

/// `ofp_type` numbers for OpenFlow 1.3.
pub mod msg_type {
    pub const HELLO: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const ECHO_REQUEST: u8 = 2;
    pub const ECHO_REPLY: u8 = 3;
    pub const EXPERIMENTER: u8 = 4;
    pub const FEATURES_REQUEST: u8 = 5;
    pub const FEATURES_REPLY: u8 = 6;
    pub const GET_CONFIG_REQUEST: u8 = 7;
    pub const GET_CONFIG_REPLY: u8 = 8;
    pub const SET_CONFIG: u8 = 9;
    pub const PACKET_IN: u8 = 10;
    pub const FLOW_REMOVED: u8 = 11;
    pub const PORT_STATUS: u8 = 12;
    pub const PACKET_OUT: u8 = 13;
    pub const FLOW_MOD: u8 = 14;
    pub const GROUP_MOD: u8 = 15;
    pub const PORT_MOD: u8 = 16;
    pub const TABLE_MOD: u8 = 17;
    pub const MULTIPART_REQUEST: u8 = 18;
    pub const MULTIPART_REPLY: u8 = 19;
    pub const BARRIER_REQUEST: u8 = 20;
    pub const BARRIER_REPLY: u8 = 21;
    pub const QUEUE_GET_CONFIG_REQUEST: u8 = 22;
    pub const QUEUE_GET_CONFIG_REPLY: u8 = 23;
    pub const ROLE_REQUEST: u8 = 24;
    pub const ROLE_REPLY: u8 = 25;
    pub const GET_ASYNC_REQUEST: u8 = 26;
    pub const GET_ASYNC_REPLY: u8 = 27;
    pub const SET_ASYNC: u8 = 28;
    pub const METER_MOD: u8 = 29;
}

/// Spec name of a message type (`"OFPT_FLOW_MOD"`), for logs and errors.
pub fn msg_type_name(t: u8) -> &'static str {
    const NAMES: [&str; 30] = [
        "OFPT_HELLO",
        "OFPT_ERROR",
        "OFPT_ECHO_REQUEST",
        "OFPT_ECHO_REPLY",
        "OFPT_EXPERIMENTER",
        "OFPT_FEATURES_REQUEST",
        "OFPT_FEATURES_REPLY",
        "OFPT_GET_CONFIG_REQUEST",
        "OFPT_GET_CONFIG_REPLY",
        "OFPT_SET_CONFIG",
        "OFPT_PACKET_IN",
        "OFPT_FLOW_REMOVED",
        "OFPT_PORT_STATUS",
        "OFPT_PACKET_OUT",
        "OFPT_FLOW_MOD",
        "OFPT_GROUP_MOD",
        "OFPT_PORT_MOD",
        "OFPT_TABLE_MOD",
        "OFPT_MULTIPART_REQUEST",
        "OFPT_MULTIPART_REPLY",
        "OFPT_BARRIER_REQUEST",
        "OFPT_BARRIER_REPLY",
        "OFPT_QUEUE_GET_CONFIG_REQUEST",
        "OFPT_QUEUE_GET_CONFIG_REPLY",
        "OFPT_ROLE_REQUEST",
        "OFPT_ROLE_REPLY",
        "OFPT_GET_ASYNC_REQUEST",
        "OFPT_GET_ASYNC_REPLY",
        "OFPT_SET_ASYNC",
        "OFPT_METER_MOD",
    ];
    NAMES.get(usize::from(t)).copied().unwrap_or("OFPT_UNKNOWN")
}

/// `ofp_header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    pub version: u8,
    pub msg_type: u8,
    /// Whole message length including this header.
    pub length: u16,
    /// Transaction id: replies carry the request's xid.
    pub xid: u32,
}

impl Header {
    pub const LEN: usize = 8;
}

impl Wire for Header {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Header {
            version: r.u8()?,
            msg_type: r.u8()?,
            length: r.u16()?,
            xid: r.u32()?,
        })
    }

    fn buffer_len(&self) -> usize {
        Self::LEN
    }

    fn emit(&self, out: &mut BytesMut) {
        out.put_u8(self.version);
        out.put_u8(self.msg_type);
        out.put_u16(self.length);
        out.put_u32(self.xid);
    }
}

/// Framing: given the start of a stream buffer, `Ok(None)` if fewer bytes
/// than a full message are buffered, `Ok(Some(len))` when a whole message of
/// `len` bytes is available; `Err` for a header length below 8 (the stream
/// can not be resynchronised and should be closed).
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>> {
    if buf.len() < Header::LEN {
        return Ok(None);
    }
    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    if len < Header::LEN {
        return Err(DecodeError::BadLength {
            what: "ofp_header",
            len,
        });
    }
    Ok((buf.len() >= len).then_some(len))
}

/// One OpenFlow 1.3 message (body only; the xid travels beside it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Hello(Hello),
    Error(ErrorMsg),
    EchoRequest(Bytes),
    EchoReply(Bytes),
    Experimenter(Experimenter),
    FeaturesRequest,
    FeaturesReply(SwitchFeatures),
    GetConfigRequest,
    GetConfigReply(SwitchConfig),
    SetConfig(SwitchConfig),
    PacketIn(PacketIn),
    FlowRemoved(FlowRemoved),
    PortStatus(PortStatus),
    PacketOut(PacketOut),
    FlowMod(FlowMod),
    GroupMod(GroupMod),
    PortMod(PortMod),
    TableMod(TableMod),
    MultipartRequest(MultipartRequest),
    MultipartReply(Box<MultipartReply>),
    BarrierRequest,
    BarrierReply,
    QueueGetConfigRequest(QueueGetConfigRequest),
    QueueGetConfigReply(QueueGetConfigReply),
    RoleRequest(RoleMsg),
    RoleReply(RoleMsg),
    GetAsyncRequest,
    GetAsyncReply(AsyncConfig),
    SetAsync(AsyncConfig),
    MeterMod(MeterMod),
    /// Any message type this codec does not know: body kept raw.
    Unknown {
        msg_type: u8,
        body: Bytes,
    },
}

/// Object-safe view of a body so `Message` can size and emit any variant
/// through one match.
trait Body {
    fn len(&self) -> usize;
    fn put(&self, out: &mut BytesMut);
}

impl<T: Wire> Body for T {
    fn len(&self) -> usize {
        self.buffer_len()
    }

    fn put(&self, out: &mut BytesMut) {
        self.emit(out)
    }
}

impl Body for Bytes {
    fn len(&self) -> usize {
        Bytes::len(self)
    }

    fn put(&self, out: &mut BytesMut) {
        out.put_slice(self)
    }
}

impl Message {
    /// The `ofp_type` number.
    pub fn msg_type(&self) -> u8 {
        use msg_type::*;
        match self {
            Message::Hello(_) => HELLO,
            Message::Error(_) => ERROR,
            Message::EchoRequest(_) => ECHO_REQUEST,
            Message::EchoReply(_) => ECHO_REPLY,
            Message::Experimenter(_) => EXPERIMENTER,
            Message::FeaturesRequest => FEATURES_REQUEST,
            Message::FeaturesReply(_) => FEATURES_REPLY,
            Message::GetConfigRequest => GET_CONFIG_REQUEST,
            Message::GetConfigReply(_) => GET_CONFIG_REPLY,
            Message::SetConfig(_) => SET_CONFIG,
            Message::PacketIn(_) => PACKET_IN,
            Message::FlowRemoved(_) => FLOW_REMOVED,
            Message::PortStatus(_) => PORT_STATUS,
            Message::PacketOut(_) => PACKET_OUT,
            Message::FlowMod(_) => FLOW_MOD,
            Message::GroupMod(_) => GROUP_MOD,
            Message::PortMod(_) => PORT_MOD,
            Message::TableMod(_) => TABLE_MOD,
            Message::MultipartRequest(_) => MULTIPART_REQUEST,
            Message::MultipartReply(_) => MULTIPART_REPLY,
            Message::BarrierRequest => BARRIER_REQUEST,
            Message::BarrierReply => BARRIER_REPLY,
            Message::QueueGetConfigRequest(_) => QUEUE_GET_CONFIG_REQUEST,
            Message::QueueGetConfigReply(_) => QUEUE_GET_CONFIG_REPLY,
            Message::RoleRequest(_) => ROLE_REQUEST,
            Message::RoleReply(_) => ROLE_REPLY,
            Message::GetAsyncRequest => GET_ASYNC_REQUEST,
            Message::GetAsyncReply(_) => GET_ASYNC_REPLY,
            Message::SetAsync(_) => SET_ASYNC,
            Message::MeterMod(_) => METER_MOD,
            Message::Unknown { msg_type, .. } => *msg_type,
        }
    }

    /// Spec name of this message's type.
    pub fn name(&self) -> &'static str {
        msg_type_name(self.msg_type())
    }

    fn body(&self) -> Option<&dyn Body> {
        Some(match self {
            Message::Hello(b) => b,
            Message::Error(b) => b,
            Message::EchoRequest(b) | Message::EchoReply(b) => b,
            Message::Experimenter(b) => b,
            Message::FeaturesReply(b) => b,
            Message::GetConfigReply(b) | Message::SetConfig(b) => b,
            Message::PacketIn(b) => b,
            Message::FlowRemoved(b) => b,
            Message::PortStatus(b) => b,
            Message::PacketOut(b) => b,
            Message::FlowMod(b) => b,
            Message::GroupMod(b) => b,
            Message::PortMod(b) => b,
            Message::TableMod(b) => b,
            Message::MultipartRequest(b) => b,
            Message::MultipartReply(b) => b.as_ref(),
            Message::QueueGetConfigRequest(b) => b,
            Message::QueueGetConfigReply(b) => b,
            Message::RoleRequest(b) | Message::RoleReply(b) => b,
            Message::GetAsyncReply(b) | Message::SetAsync(b) => b,
            Message::MeterMod(b) => b,
            Message::Unknown { body, .. } => body,
            Message::FeaturesRequest
            | Message::GetConfigRequest
            | Message::BarrierRequest
            | Message::BarrierReply
            | Message::GetAsyncRequest => return None,
        })
    }

    /// Encoded body length (the message is `Header::LEN` more).
    pub fn body_len(&self) -> usize {
        self.body().map_or(0, Body::len)
    }

    /// Encoded length including the header. OpenFlow lengths are 16-bit:
    /// [`encode`] refuses a message longer than 65535 bytes.
    pub fn encoded_len(&self) -> usize {
        Header::LEN + self.body_len()
    }

    /// Parses a body of type `t` from `r`, consuming all of it.
    fn parse_body(version: u8, t: u8, r: &mut Reader<'_>) -> Result<Message> {
        use msg_type::*;
        let msg = match t {
            HELLO => match Hello::parse(&mut r.clone()) {
                Ok(h) => {
                    r.rest();
                    Message::Hello(h)
                }
                // Other versions' HELLO bodies are not ours to police: what
                // matters for negotiation is the header version.
                Err(_) if version != OFP_VERSION_1_3 => {
                    r.rest();
                    Message::Hello(Hello::default())
                }
                Err(e) => return Err(e),
            },
            ERROR => Message::Error(ErrorMsg::parse(r)?),
            ECHO_REQUEST => Message::EchoRequest(r.rest_owned()),
            ECHO_REPLY => Message::EchoReply(r.rest_owned()),
            EXPERIMENTER => Message::Experimenter(Experimenter::parse(r)?),
            FEATURES_REQUEST => Message::FeaturesRequest,
            FEATURES_REPLY => Message::FeaturesReply(SwitchFeatures::parse(r)?),
            GET_CONFIG_REQUEST => Message::GetConfigRequest,
            GET_CONFIG_REPLY => Message::GetConfigReply(SwitchConfig::parse(r)?),
            SET_CONFIG => Message::SetConfig(SwitchConfig::parse(r)?),
            PACKET_IN => Message::PacketIn(PacketIn::parse(r)?),
            FLOW_REMOVED => Message::FlowRemoved(FlowRemoved::parse(r)?),
            PORT_STATUS => Message::PortStatus(PortStatus::parse(r)?),
            PACKET_OUT => Message::PacketOut(PacketOut::parse(r)?),
            FLOW_MOD => Message::FlowMod(FlowMod::parse(r)?),
            GROUP_MOD => Message::GroupMod(GroupMod::parse(r)?),
            PORT_MOD => Message::PortMod(PortMod::parse(r)?),
            TABLE_MOD => Message::TableMod(TableMod::parse(r)?),
            MULTIPART_REQUEST => Message::MultipartRequest(MultipartRequest::parse(r)?),
            MULTIPART_REPLY => Message::MultipartReply(Box::new(MultipartReply::parse(r)?)),
            BARRIER_REQUEST => Message::BarrierRequest,
            BARRIER_REPLY => Message::BarrierReply,
            QUEUE_GET_CONFIG_REQUEST => {
                Message::QueueGetConfigRequest(QueueGetConfigRequest::parse(r)?)
            }
            QUEUE_GET_CONFIG_REPLY => Message::QueueGetConfigReply(QueueGetConfigReply::parse(r)?),
            ROLE_REQUEST => Message::RoleRequest(RoleMsg::parse(r)?),
            ROLE_REPLY => Message::RoleReply(RoleMsg::parse(r)?),
            GET_ASYNC_REQUEST => Message::GetAsyncRequest,
            GET_ASYNC_REPLY => Message::GetAsyncReply(AsyncConfig::parse(r)?),
            SET_ASYNC => Message::SetAsync(AsyncConfig::parse(r)?),
            METER_MOD => Message::MeterMod(MeterMod::parse(r)?),
            other => Message::Unknown {
                msg_type: other,
                body: r.rest_owned(),
            },
        };
        Ok(msg)
    }
}

/// Decodes exactly one OF1.3 message (`buf` = header + body,
/// `header.length == buf.len()`, see [`frame_len`]).
///
/// Version != 4 is [`DecodeError::BadVersion`], except HELLO, which decodes
/// for any version: negotiation must read a peer's HELLO whatever its
/// version, so the returned header carries it. Bytes left after a
/// fixed-size body are a length error.
pub fn decode(buf: &[u8]) -> Result<(Header, Message)> {
    let mut r = Reader::new(buf, "ofp_header");
    let header = Header::parse(&mut r)?;
    if usize::from(header.length) != buf.len() {
        return Err(DecodeError::BadLength {
            what: "ofp_header",
            len: usize::from(header.length),
        });
    }
    if header.version != OFP_VERSION_1_3 && header.msg_type != msg_type::HELLO {
        return Err(DecodeError::BadVersion(header.version));
    }
    let mut body = Reader::new(r.rest(), msg_type_name(header.msg_type));
    let msg = Message::parse_body(header.version, header.msg_type, &mut body)?;
    body.finish()?;
    Ok((header, msg))
}

/// Same as [`decode`]; named for callers that want to stress they use the
/// header (e.g. a HELLO's version).
pub fn decode_with_header(buf: &[u8]) -> Result<(Header, Message)> {
    decode(buf)
}

/// [`decode`] for a message held in [`Bytes`]: a PACKET_IN takes `frame`
/// over as its packet's data instead of copying it
/// ([`PacketIn::parse_shared`]). `frame` is left empty when a PACKET_IN is
/// decoded, and untouched otherwise (e.g. for an error reply quoting it).
pub fn decode_shared(frame: &mut Bytes) -> Result<(Header, Message)> {
    match *frame.get(..Header::LEN).unwrap_or_default() {
        [OFP_VERSION_1_3, msg_type::PACKET_IN, l0, l1, x0, x1, x2, x3]
            if usize::from(u16::from_be_bytes([l0, l1])) == frame.len() =>
        {
            let header = Header {
                version: OFP_VERSION_1_3,
                msg_type: msg_type::PACKET_IN,
                length: u16::from_be_bytes([l0, l1]),
                xid: u32::from_be_bytes([x0, x1, x2, x3]),
            };
            Ok((
                header,
                Message::PacketIn(PacketIn::parse_shared(frame, Header::LEN)?),
            ))
        }
        _ => decode(frame),
    }
}

/// Appends one message with version 4 and the given xid. Length is computed.
///
/// A message longer than 65535 bytes is [`EncodeError::TooLong`] and
/// nothing is appended.
pub fn encode(
    xid: u32,
    msg: &Message,
    out: &mut BytesMut,
) -> core::result::Result<(), EncodeError> {
    encode_with_version(OFP_VERSION_1_3, xid, msg, out)
}

/// Appends one OpenFlow 1.3 FLOW_MOD from borrowed parts; the same bytes as
/// [`encode`] of the owned message, and the same error when it is too long.
pub fn encode_flow_mod(
    xid: u32,
    flow_mod: &FlowModRef<'_>,
    out: &mut BytesMut,
) -> core::result::Result<(), EncodeError> {
    // The length is computed before anything is written anyway (it goes in
    // the header), so checking it costs one comparison per message.
    let length = message_len16(Header::LEN + flow_mod.body_len(), || {
        msg_type_name(msg_type::FLOW_MOD)
    })?;
    out.reserve(usize::from(length));
    Header {
        version: OFP_VERSION_1_3,
        msg_type: msg_type::FLOW_MOD,
        length,
        xid,
    }
    .emit(out);
    flow_mod.emit_body(out);
    Ok(())
}

/// Appends one OpenFlow 1.3 PACKET_OUT from borrowed parts; the same bytes
/// as [`encode`] of the owned message, and the same error when it is too
/// long.
pub fn encode_packet_out(
    xid: u32,
    packet_out: &PacketOutRef<'_>,
    out: &mut BytesMut,
) -> core::result::Result<(), EncodeError> {
    let length = message_len16(Header::LEN + packet_out.body_len(), || {
        msg_type_name(msg_type::PACKET_OUT)
    })?;
    out.reserve(usize::from(length));
    Header {
        version: OFP_VERSION_1_3,
        msg_type: msg_type::PACKET_OUT,
        length,
        xid,
    }
    .emit(out);
    packet_out.emit_body(out);
    Ok(())
}

/// Appends one message with an explicit header version (a HELLO offering
/// other versions, or HELLO_FAILED sent to a peer in its own version).
///
/// A message longer than 65535 bytes can not be framed: it is
/// [`EncodeError::TooLong`] and nothing is appended. Every length field
/// nested inside a message that fits fits too.
pub fn encode_with_version(
    version: u8,
    xid: u32,
    msg: &Message,
    out: &mut BytesMut,
) -> core::result::Result<(), EncodeError> {
    let header = Header {
        version,
        msg_type: msg.msg_type(),
        length: message_len16(msg.encoded_len(), || msg.name())?,
        xid,
    };
    out.reserve(usize::from(header.length));
    header.emit(out);
    if let Some(body) = msg.body() {
        body.put(out);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::Action;
    use crate::flow::FlowModCommand;
    use crate::oxm::{Match, Oxm};
    use crate::strategies::arb_message;
    use crate::switch::error_type;
    use proptest::prelude::*;

    fn enc(xid: u32, m: &Message) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(xid, m, &mut out).expect("test messages fit");
        assert_eq!(out.len(), Header::LEN + m.body_len());
        out.to_vec()
    }

    proptest! {
        #[test]
        fn shared_decode_equals_decode(m in arb_message(), cut in 0usize..16) {
            let bytes = Bytes::from(enc(3, &m));
            prop_assert_eq!(decode_shared(&mut bytes.clone()).ok(), decode(&bytes).ok());
            // A cut message (header length now wrong) fails both ways, and
            // stays with the caller.
            let short = bytes.slice(..bytes.len().saturating_sub(cut + 1));
            let mut kept = short.clone();
            prop_assert!(decode_shared(&mut kept).is_err() && decode(&short).is_err());
            prop_assert_eq!(kept, short);
        }
    }

    #[test]
    fn header_only_messages() {
        for (t, m) in [
            (5u8, Message::FeaturesRequest),
            (7, Message::GetConfigRequest),
            (20, Message::BarrierRequest),
            (21, Message::BarrierReply),
            (26, Message::GetAsyncRequest),
        ] {
            let bytes = [4, t, 0, 8, 0, 0, 0, 42];
            let (h, got) = decode(&bytes).unwrap();
            assert_eq!(h.xid, 42);
            assert_eq!(got, m);
            assert_eq!(enc(42, &m), bytes);
            // Trailing junk after an empty body.
            let long = [4, t, 0, 9, 0, 0, 0, 42, 0];
            assert!(matches!(decode(&long), Err(DecodeError::BadLength { .. })));
        }
    }

    #[test]
    fn hello_any_version() {
        // OF1.0 HELLO without elements.
        let (h, m) = decode(&[1, 0, 0, 8, 0, 0, 0, 1]).unwrap();
        assert_eq!(h.version, 1);
        assert_eq!(m, Message::Hello(Hello::default()));
        // Future-version HELLO with a bitmap for 4 and 6.
        let bytes = [6, 0, 0, 16, 0, 0, 0, 2, 0, 1, 0, 8, 0, 0, 0, 0x50];
        let (h, m) = decode(&bytes).unwrap();
        assert_eq!(h.version, 6);
        let Message::Hello(hello) = &m else {
            panic!("not a hello: {m:?}")
        };
        assert_eq!(hello.versions(), Some(vec![4, 6]));
        let mut out = BytesMut::new();
        encode_with_version(6, 2, &m, &mut out).expect("fits");
        assert_eq!(out.to_vec(), bytes);
        // Other messages in another version are refused.
        assert_eq!(
            decode(&[1, 5, 0, 8, 0, 0, 0, 1]),
            Err(DecodeError::BadVersion(1))
        );
        // A garbled OF1.3 HELLO is an error, not silently empty.
        assert!(decode(&[4, 0, 0, 12, 0, 0, 0, 1, 0, 1, 0, 0]).is_err());
    }

    #[test]
    fn echo_and_unknown_keep_bytes() {
        let bytes = [4, 2, 0, 11, 0, 0, 0, 3, b'a', b'b', b'c'];
        let (_, m) = decode(&bytes).unwrap();
        assert_eq!(m, Message::EchoRequest(Bytes::from_static(b"abc")));
        assert_eq!(enc(3, &m), bytes);
        let bytes = [4, 200, 0, 10, 0, 0, 0, 3, 1, 2];
        let (_, m) = decode(&bytes).unwrap();
        assert_eq!(
            m,
            Message::Unknown {
                msg_type: 200,
                body: Bytes::from_static(&[1, 2])
            }
        );
        assert_eq!(enc(3, &m), bytes);
    }

    #[test]
    fn length_must_match_buffer() {
        assert!(decode(&[4, 2, 0, 12, 0, 0, 0, 3, 0, 0]).is_err());
        assert!(decode(&[4, 2, 0, 8, 0, 0, 0, 3, 0, 0]).is_err());
        assert!(decode(&[4, 2, 0, 4]).is_err());
        assert!(decode(&[]).is_err());
    }

    #[test]
    fn framing() {
        assert_eq!(frame_len(&[]), Ok(None));
        assert_eq!(frame_len(&[4, 0, 0, 16, 0, 0, 0]), Ok(None));
        assert_eq!(frame_len(&[4, 0, 0, 16, 0, 0, 0, 0, 0]), Ok(None));
        assert_eq!(frame_len(&[4, 0, 0, 8, 0, 0, 0, 0, 9, 9]), Ok(Some(8)));
        assert!(frame_len(&[4, 0, 0, 7, 0, 0, 0, 0]).is_err());
        assert!(frame_len(&[4, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn flow_mod_message_fixture() {
        let fm = FlowMod {
            command: FlowModCommand::Add,
            match_: Match::new().with(Oxm::InPort(1)),
            instructions: vec![crate::instruction::Instruction::ApplyActions(vec![
                Action::output(2),
            ])],
            ..FlowMod::default()
        };
        let m = Message::FlowMod(fm);
        let bytes = enc(7, &m);
        assert_eq!(&bytes[..4], &[4, 14, 0, 88]);
        assert_eq!(
            decode(&bytes).unwrap(),
            (
                Header {
                    version: 4,
                    msg_type: 14,
                    length: 88,
                    xid: 7
                },
                m
            )
        );
    }

    #[test]
    fn error_message_fixture() {
        let bytes = [4, 1, 0, 16, 0, 0, 0, 9, 0, 1, 0, 6, 4, 14, 0, 80];
        let (_, m) = decode(&bytes).unwrap();
        let Message::Error(e) = &m else {
            panic!("{m:?}")
        };
        assert_eq!(e.describe(), "OFPET_BAD_REQUEST/OFPBRC_BAD_LEN");
        assert!(matches!(
            e,
            ErrorMsg::Standard {
                err_type: error_type::BAD_REQUEST,
                ..
            }
        ));
        assert_eq!(enc(9, &m), bytes);
    }

    #[test]
    fn names() {
        assert_eq!(msg_type_name(14), "OFPT_FLOW_MOD");
        assert_eq!(msg_type_name(29), "OFPT_METER_MOD");
        assert_eq!(msg_type_name(30), "OFPT_UNKNOWN");
        assert_eq!(Message::BarrierRequest.name(), "OFPT_BARRIER_REQUEST");
    }

    /// Directory of the os-ken OF1.3 captures kept in the repository.
    fn fixture_dir() -> std::path::PathBuf {
        std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/of13"))
    }

    /// Every non-multipart capture decodes and re-encodes byte for byte.
    #[test]
    fn real_captures_round_trip() {
        let dir = fixture_dir();
        let mut checked = 0;
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "packet"))
            .collect();
        entries.sort();
        for path in entries {
            let bytes = std::fs::read(&path).unwrap();
            if bytes.len() > 1 && matches!(bytes[1], 18 | 19) {
                continue;
            }
            let (h, m) = decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let mut out = BytesMut::new();
            encode_with_version(h.version, h.xid, &m, &mut out).expect("a decoded message fits");
            assert_eq!(out.to_vec(), bytes, "{}: {m:?}", path.display());
            checked += 1;
        }
        assert!(checked >= 30, "only {checked} fixtures checked");
    }

    #[test]
    fn captured_hello_and_features_decode_to_expected_values() {
        let dir = fixture_dir();
        let hello = std::fs::read(dir.join("4-10-ofp_hello.packet")).unwrap();
        let (h, m) = decode(&hello).unwrap();
        assert_eq!((h.version, h.length), (4, 16));
        let Message::Hello(hello) = m else {
            panic!("{m:?}")
        };
        assert_eq!(hello.versions(), Some(vec![1, 2, 3, 9, 10, 30]));

        let features = std::fs::read(dir.join("4-6-ofp_features_reply.packet")).unwrap();
        let (_, m) = decode(&features).unwrap();
        assert_eq!(
            m,
            Message::FeaturesReply(SwitchFeatures {
                datapath_id: 0x0000_0860_6e7f_74e7,
                n_buffers: 0,
                n_tables: 255,
                auxiliary_id: 99,
                capabilities: 0x4f,
                reserved: 0,
            })
        );
    }

    #[test]
    fn a_borrowed_flow_mod_encodes_like_the_owned_one() {
        let fm = FlowMod {
            cookie: 0xf002_0000_0000_0007,
            idle_timeout: 300,
            flags: 1,
            ..FlowMod::add(
                4,
                100,
                crate::Match::new().with(crate::Oxm::InPort(3)),
                vec![crate::Instruction::GotoTable(5)],
            )
        };
        let mut borrowed = BytesMut::new();
        encode_flow_mod(9, &fm.borrowed(), &mut borrowed).expect("fits");
        assert_eq!(borrowed, enc(9, &Message::FlowMod(fm.clone())));
        assert_eq!(fm.borrowed().to_owned(), fm);
    }

    /// Thousands of outputs: more than a 16-bit length can say, even in
    /// OpenFlow 1.0's 8-byte output actions.
    fn oversized_actions() -> Vec<Action> {
        (0..9000).map(Action::output).collect()
    }

    #[test]
    fn a_message_too_long_for_its_length_field_is_refused_and_nothing_is_written() {
        let fm = FlowMod::add(
            0,
            1,
            Match::new(),
            vec![crate::Instruction::ApplyActions(oversized_actions())],
        );
        let group = Message::GroupMod(crate::GroupMod {
            command: crate::GroupModCommand::Add,
            group_type: crate::GroupType::All,
            group_id: 1,
            buckets: vec![crate::Bucket::new(oversized_actions())],
        });
        let before = BytesMut::from(&b"earlier messages"[..]);
        let flow = Message::FlowMod(fm.clone());
        for (msg, name) in [(&flow, "OFPT_FLOW_MOD"), (&group, "OFPT_GROUP_MOD")] {
            let mut out = before.clone();
            assert_eq!(
                encode(1, msg, &mut out),
                Err(EncodeError::TooLong {
                    msg_type: name,
                    len: msg.encoded_len()
                })
            );
            assert_eq!(out, before);
        }
        let mut out = before.clone();
        assert_eq!(
            encode_flow_mod(1, &fm.borrowed(), &mut out),
            Err(EncodeError::TooLong {
                msg_type: "OFPT_FLOW_MOD",
                len: flow.encoded_len()
            })
        );
        assert_eq!(out, before);
        // The OpenFlow 1.0 encoder learns the length only once the body is
        // written, and takes it back.
        let mut out = before.clone();
        assert!(matches!(
            crate::of10::encode(1, &flow, &mut out),
            Err(EncodeError::TooLong {
                msg_type: "OFPT_FLOW_MOD",
                ..
            })
        ));
        assert_eq!(out, before);
    }

    #[test]
    fn the_longest_message_that_fits_is_encoded() {
        // Exactly 65535 bytes with its header.
        let data = Bytes::from(vec![7u8; usize::from(u16::MAX) - Header::LEN]);
        let m = Message::EchoRequest(data);
        let bytes = enc(1, &m);
        assert_eq!(bytes.len(), 65535);
        assert_eq!(decode(&bytes).unwrap().1, m);
    }

    #[test]
    fn encoded_len_matches_output() {
        let m = Message::EchoRequest(Bytes::from_static(b"ping"));
        assert_eq!(m.encoded_len(), 12);
        assert_eq!(enc(1, &m).len(), m.encoded_len());
    }

    proptest! {
        #[test]
        fn message_round_trip(xid in any::<u32>(), m in arb_message()) {
            let bytes = enc(xid, &m);
            prop_assert_eq!(frame_len(&bytes).unwrap(), Some(bytes.len()));
            let (h, got) = decode(&bytes).unwrap();
            prop_assert_eq!(h.xid, xid);
            prop_assert_eq!(got, m);
        }

        #[test]
        fn decode_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 8..200),
                               t in 0u8..32) {
            bytes[0] = 4;
            bytes[1] = t;
            let len = bytes.len() as u16;
            bytes[2..4].copy_from_slice(&len.to_be_bytes());
            let _ = decode(&bytes);
        }
    }
}
