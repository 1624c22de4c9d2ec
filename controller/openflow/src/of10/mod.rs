//! OpenFlow 1.0 (wire version 1) for basic forwarding, as a second wire
//! dialect of the same [`Message`] model.
//!
//! The subset a learning switch and the standard cbench tool need: HELLO,
//! ERROR, ECHO, FEATURES (with the port list), SET/GET_CONFIG, PACKET_IN,
//! PACKET_OUT, FLOW_MOD with the 1.0 match, FLOW_REMOVED, PORT_STATUS,
//! STATS desc/flow/port and BARRIER. Decoding yields 1.3 types (the match
//! as OXM fields, 16-bit ports widened, a packet-in with cookie 0 from
//! table 0, flow stats with one apply-actions instruction), so everything
//! above the session works unchanged; encoding accepts what 1.0 can
//! express and says why otherwise ([`Unsupported`]). Differences the model
//! hides: 1.0 has one table, no cookie mask (a strict delete matches by
//! match and priority only) and no flow flags in flow stats.
//!
//! Message layouts: OpenFlow Switch Specification 1.0.0, §5.

mod matching;

use bytes::{BufMut, BytesMut};
use thiserror::Error;

pub use matching::{emit_match, parse_match, port_from_10, port_to_10, wildcards, MATCH_LEN};

use crate::action::Action;
use crate::error::{message_len16, DecodeError, EncodeError, Result};
use crate::flow::{FlowMod, FlowModCommand, FlowRemoved};
use crate::instruction::Instruction;
use crate::message::{msg_type_name, Header, Message};
use crate::multipart::{
    DescStats, FlowStats, MultipartReply, MultipartReplyBody, MultipartRequestBody, PortStats,
};
use crate::packet::{PacketIn, PacketInReason, PacketOutRef};
use crate::port::{port_config, port_state, read_fixed_str, Port, PortReason, PortStatus};
use crate::switch::{error_type, ErrorMsg, Hello, SwitchConfig, SwitchFeatures};
use crate::types::{MacAddr, OFP_VERSION_1_0};
use crate::wire::{len16, patch_u16, put_zeros, Reader, Wire};

/// `ofp_type` numbers of OpenFlow 1.0 (they differ from 1.3 after 13).
pub mod msg_type {
    pub const HELLO: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const ECHO_REQUEST: u8 = 2;
    pub const ECHO_REPLY: u8 = 3;
    pub const VENDOR: u8 = 4;
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
    pub const PORT_MOD: u8 = 15;
    pub const STATS_REQUEST: u8 = 16;
    pub const STATS_REPLY: u8 = 17;
    pub const BARRIER_REQUEST: u8 = 18;
    pub const BARRIER_REPLY: u8 = 19;
}

/// `ofp_stats_types` of 1.0 that the subset uses.
mod stats_type {
    pub const DESC: u16 = 0;
    pub const FLOW: u16 = 1;
    pub const PORT: u16 = 4;
}

/// Size of `ofp_phy_port`.
const PHY_PORT_LEN: usize = 48;
/// Fixed part of `ofp_flow_stats` before the actions.
const FLOW_STATS_LEN: usize = 88;

/// Something of the 1.3 model that has no 1.0 form here.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Unsupported {
    #[error("{0} has no OpenFlow 1.0 form")]
    Message(&'static str),
    #[error("{0}")]
    Field(&'static str),
    #[error("port {0:#x} has no OpenFlow 1.0 number")]
    Port(u32),
    #[error("table {0}: OpenFlow 1.0 switches have a single table (0)")]
    Table(u8),
    #[error("only an apply-actions instruction has an OpenFlow 1.0 form")]
    Instruction,
    #[error("only the output action has an OpenFlow 1.0 form here")]
    Action,
}

/// 1.0 error types that moved in 1.3 (FLOW_MOD_FAILED 3 → 5, PORT_MOD_FAILED
/// 4 → 7, QUEUE_OP_FAILED 5 → 9); the others kept their numbers.
fn error_type_from_10(t: u16) -> u16 {
    match t {
        3 => error_type::FLOW_MOD_FAILED,
        4 => error_type::PORT_MOD_FAILED,
        5 => error_type::QUEUE_OP_FAILED,
        t => t,
    }
}

fn error_type_to_10(t: u16) -> std::result::Result<u16, Unsupported> {
    match t {
        0..=2 => Ok(t),
        error_type::FLOW_MOD_FAILED => Ok(3),
        error_type::PORT_MOD_FAILED => Ok(4),
        error_type::QUEUE_OP_FAILED => Ok(5),
        _ => Err(Unsupported::Field(
            "error type without an OpenFlow 1.0 number",
        )),
    }
}

/// Decodes one OpenFlow 1.0 message (`buf` = header + body, as framed by
/// [`crate::frame_len`], which is the same for every version).
pub fn decode(buf: &[u8]) -> Result<(Header, Message)> {
    let mut r = Reader::new(buf, "ofp_header");
    let header = Header::parse(&mut r)?;
    if usize::from(header.length) != buf.len() {
        return Err(DecodeError::BadLength {
            what: "ofp_header",
            len: usize::from(header.length),
        });
    }
    if header.version != OFP_VERSION_1_0 && header.msg_type != msg_type::HELLO {
        return Err(DecodeError::BadVersion(header.version));
    }
    let mut body = Reader::new(r.rest(), "OpenFlow 1.0 message");
    let message = parse_body(header.msg_type, &mut body)?;
    body.finish()?;
    Ok((header, message))
}

/// Bytes of a 1.0 PACKET_IN before its frame: header, buffer_id,
/// total_len, in_port, reason, pad.
const PACKET_IN_HEAD: usize = 18;

/// [`decode`], taking `frame` over as a PACKET_IN's packet data instead of
/// copying it (the bytes of the frame are shared); other messages decode
/// as [`decode`] does. `frame` is left empty after a PACKET_IN.
pub fn decode_shared(frame: &mut bytes::Bytes) -> Result<(Header, Message)> {
    let head: [u8; PACKET_IN_HEAD] = match frame.get(..PACKET_IN_HEAD) {
        Some(head) if head[0] == OFP_VERSION_1_0 && head[1] == msg_type::PACKET_IN => {
            head.try_into().unwrap_or([0; PACKET_IN_HEAD])
        }
        _ => return decode(frame),
    };
    let [_, _, l0, l1, x0, x1, x2, x3, b0, b1, b2, b3, t0, t1, p0, p1, reason, _] = head;
    let length = u16::from_be_bytes([l0, l1]);
    if usize::from(length) != frame.len() {
        return decode(frame);
    }
    let header = Header {
        version: OFP_VERSION_1_0,
        msg_type: msg_type::PACKET_IN,
        length,
        xid: u32::from_be_bytes([x0, x1, x2, x3]),
    };
    let mut data = std::mem::take(frame);
    bytes::Buf::advance(&mut data, PACKET_IN_HEAD);
    let in_port = port_from_10(u16::from_be_bytes([p0, p1]));
    let packet_in = PacketIn {
        buffer_id: u32::from_be_bytes([b0, b1, b2, b3]),
        total_len: u16::from_be_bytes([t0, t1]),
        reason: PacketInReason::from(reason),
        table_id: 0,
        cookie: 0,
        // Built in place: the field stays inline, nothing is moved twice.
        match_: crate::oxm::Match {
            fields: smallvec::smallvec![crate::oxm::Oxm::InPort(in_port)],
        },
        data,
    };
    Ok((header, Message::PacketIn(packet_in)))
}

fn parse_body(t: u8, r: &mut Reader<'_>) -> Result<Message> {
    use msg_type::*;
    Ok(match t {
        HELLO => {
            r.rest();
            Message::Hello(Hello::default())
        }
        ERROR => {
            let err_type = error_type_from_10(r.u16()?);
            let code = r.u16()?;
            Message::Error(ErrorMsg::Standard {
                err_type,
                code,
                data: r.rest_owned(),
            })
        }
        ECHO_REQUEST => Message::EchoRequest(r.rest_owned()),
        ECHO_REPLY => Message::EchoReply(r.rest_owned()),
        FEATURES_REPLY => Message::FeaturesReply(parse_features(r)?.0),
        GET_CONFIG_REPLY => Message::GetConfigReply(SwitchConfig::parse(r)?),
        PACKET_IN => {
            let buffer_id = r.u32()?;
            let total_len = r.u16()?;
            let in_port = port_from_10(r.u16()?);
            let reason = PacketInReason::from(r.u8()?);
            r.skip(1)?;
            Message::PacketIn(PacketIn {
                buffer_id,
                total_len,
                reason,
                table_id: 0,
                cookie: 0,
                match_: crate::oxm::Match::new().with(crate::oxm::Oxm::InPort(in_port)),
                data: r.rest_owned(),
            })
        }
        FLOW_REMOVED => Message::FlowRemoved(parse_flow_removed(r)?),
        PORT_STATUS => {
            let reason = PortReason::from(r.u8()?);
            r.skip(7)?;
            Message::PortStatus(PortStatus {
                reason,
                desc: parse_phy_port(r)?,
            })
        }
        STATS_REPLY => Message::MultipartReply(Box::new(parse_stats_reply(r)?)),
        BARRIER_REPLY => Message::BarrierReply,
        other => Message::Unknown {
            msg_type: other,
            body: r.rest_owned(),
        },
    })
}

/// The FEATURES_REPLY of a 1.0 switch with its port list (1.3 moved ports
/// to a multipart request). `buf` is the whole message.
pub fn decode_features_reply(buf: &[u8]) -> Result<(SwitchFeatures, Vec<Port>)> {
    let mut r = Reader::new(buf, "ofp_switch_features");
    r.skip(8)?;
    let parsed = parse_features(&mut r)?;
    r.finish()?;
    Ok(parsed)
}

fn parse_features(r: &mut Reader<'_>) -> Result<(SwitchFeatures, Vec<Port>)> {
    let datapath_id = r.u64()?;
    let n_buffers = r.u32()?;
    let n_tables = r.u8()?;
    r.skip(3)?;
    let capabilities = r.u32()?;
    let actions = r.u32()?;
    let mut ports = Vec::with_capacity(r.remaining() / PHY_PORT_LEN);
    while !r.is_empty() {
        ports.push(parse_phy_port(r)?);
    }
    let features = SwitchFeatures {
        datapath_id,
        n_buffers,
        n_tables,
        auxiliary_id: 0,
        capabilities,
        // 1.0's supported-actions bitmap sits where 1.3 has `reserved`.
        reserved: actions,
    };
    Ok((features, ports))
}

/// `ofp_phy_port` as a 1.3 [`Port`]: config and state keep the bits both
/// versions share (a port that is not down is reported LIVE); speed bits
/// keep the rates both define.
fn parse_phy_port(r: &mut Reader<'_>) -> Result<Port> {
    let port_no = port_from_10(r.u16()?);
    let hw_addr = MacAddr(r.array()?);
    let name = read_fixed_str(r, 16)?;
    let config = r.u32()?
        & (port_config::PORT_DOWN
            | port_config::NO_RECV
            | port_config::NO_FWD
            | port_config::NO_PACKET_IN);
    let down = r.u32()? & port_state::LINK_DOWN;
    let state = if down != 0 { down } else { port_state::LIVE };
    let mut speeds = || r.u32().map(|v| v & 0x7f);
    Ok(Port {
        port_no,
        hw_addr,
        name,
        config,
        state,
        curr: speeds()?,
        advertised: speeds()?,
        supported: speeds()?,
        peer: speeds()?,
        curr_speed: 0,
        max_speed: 0,
    })
}

fn parse_flow_removed(r: &mut Reader<'_>) -> Result<FlowRemoved> {
    let match_ = parse_match(r)?;
    let cookie = r.u64()?;
    let priority = r.u16()?;
    let reason = r.u8()?;
    r.skip(1)?;
    let duration_sec = r.u32()?;
    let duration_nsec = r.u32()?;
    let idle_timeout = r.u16()?;
    r.skip(2)?;
    Ok(FlowRemoved {
        cookie,
        priority,
        reason,
        table_id: 0,
        duration_sec,
        duration_nsec,
        idle_timeout,
        hard_timeout: 0,
        packet_count: r.u64()?,
        byte_count: r.u64()?,
        match_,
    })
}

fn parse_stats_reply(r: &mut Reader<'_>) -> Result<MultipartReply> {
    let stats = r.u16()?;
    let flags = r.u16()?;
    let body = match stats {
        stats_type::DESC => MultipartReplyBody::Desc(DescStats::parse(r)?),
        stats_type::FLOW => {
            let mut flows = Vec::new();
            while !r.is_empty() {
                let len = usize::from(r.peek_u16(0)?);
                if len < FLOW_STATS_LEN {
                    return Err(DecodeError::BadLength {
                        what: "ofp_flow_stats",
                        len,
                    });
                }
                flows.push(parse_flow_stats(&mut r.sub(len, "ofp_flow_stats")?)?);
            }
            MultipartReplyBody::Flow(flows)
        }
        stats_type::PORT => {
            let mut ports = Vec::new();
            while !r.is_empty() {
                let port_no = port_from_10(r.u16()?);
                r.skip(6)?;
                let mut c = [0u64; 12];
                for v in &mut c {
                    *v = r.u64()?;
                }
                ports.push(PortStats {
                    port_no,
                    rx_packets: c[0],
                    tx_packets: c[1],
                    rx_bytes: c[2],
                    tx_bytes: c[3],
                    rx_dropped: c[4],
                    tx_dropped: c[5],
                    rx_errors: c[6],
                    tx_errors: c[7],
                    rx_frame_err: c[8],
                    rx_over_err: c[9],
                    rx_crc_err: c[10],
                    collisions: c[11],
                    duration_sec: 0,
                    duration_nsec: 0,
                });
            }
            MultipartReplyBody::PortStats(ports)
        }
        other => MultipartReplyBody::Unknown {
            mp_type: other,
            data: r.rest_owned(),
        },
    };
    Ok(MultipartReply { flags, body })
}

fn parse_flow_stats(r: &mut Reader<'_>) -> Result<FlowStats> {
    r.skip(2)?;
    let table_id = r.u8()?;
    r.skip(1)?;
    let match_ = parse_match(r)?;
    let duration_sec = r.u32()?;
    let duration_nsec = r.u32()?;
    let priority = r.u16()?;
    let idle_timeout = r.u16()?;
    let hard_timeout = r.u16()?;
    r.skip(6)?;
    let cookie = r.u64()?;
    let packet_count = r.u64()?;
    let byte_count = r.u64()?;
    let actions = parse_actions(r)?;
    let instructions = if actions.is_empty() {
        Vec::new()
    } else {
        vec![Instruction::ApplyActions(actions)]
    };
    Ok(FlowStats {
        table_id,
        duration_sec,
        duration_nsec,
        priority,
        idle_timeout,
        hard_timeout,
        flags: 0,
        cookie,
        packet_count,
        byte_count,
        match_,
        instructions,
    })
}

/// 1.0 actions: OUTPUT typed, anything else kept raw.
fn parse_actions(r: &mut Reader<'_>) -> Result<Vec<Action>> {
    let mut actions = Vec::new();
    while !r.is_empty() {
        let (action_type, _, mut body) = r.tlv("ofp_action", 8, 8)?;
        actions.push(match action_type {
            0 => Action::Output {
                port: port_from_10(body.u16()?),
                max_len: body.u16()?,
            },
            _ => Action::Unknown {
                action_type,
                data: body.rest_owned(),
            },
        });
    }
    Ok(actions)
}

fn emit_actions(actions: &[Action], out: &mut BytesMut) -> std::result::Result<(), Unsupported> {
    for action in actions {
        match action {
            Action::Output { port, max_len } => {
                out.put_u16(0);
                out.put_u16(8);
                out.put_u16(port_to_10(*port)?);
                out.put_u16(*max_len);
            }
            _ => return Err(Unsupported::Action),
        }
    }
    Ok(())
}

/// The actions of a 1.3 instruction list, if 1.0 can express it.
fn instruction_actions(
    instructions: &[Instruction],
) -> std::result::Result<&[Action], Unsupported> {
    match instructions {
        [] => Ok(&[]),
        [Instruction::ApplyActions(actions)] => Ok(actions),
        _ => Err(Unsupported::Instruction),
    }
}

/// Appends `msg` as an OpenFlow 1.0 message; on error nothing is appended:
/// [`EncodeError::Unsupported`] when 1.0 cannot express it,
/// [`EncodeError::TooLong`] when it is longer than 65535 bytes.
pub fn encode(xid: u32, msg: &Message, out: &mut BytesMut) -> std::result::Result<(), EncodeError> {
    framed(xid, out, || msg.name(), |out| encode_body(msg, out))
}

/// Appends one OpenFlow 1.0 PACKET_OUT from borrowed parts; the same bytes
/// and errors as [`encode`] of the owned message.
pub fn encode_packet_out(
    xid: u32,
    packet_out: &PacketOutRef<'_>,
    out: &mut BytesMut,
) -> std::result::Result<(), EncodeError> {
    let name = || msg_type_name(crate::message::msg_type::PACKET_OUT);
    framed(xid, out, name, |out| {
        emit_packet_out(packet_out, out)?;
        Ok(msg_type::PACKET_OUT)
    })
}

/// Appends a header, the body `body` writes (returning its 1.0 type) and
/// the length; on error nothing is appended.
fn framed(
    xid: u32,
    out: &mut BytesMut,
    name: impl FnOnce() -> &'static str,
    body: impl FnOnce(&mut BytesMut) -> std::result::Result<u8, Unsupported>,
) -> std::result::Result<(), EncodeError> {
    let start = out.len();
    out.put_u8(OFP_VERSION_1_0);
    out.put_u8(0);
    out.put_u16(0);
    out.put_u32(xid);
    let encoded = body(out)
        .map_err(EncodeError::from)
        // The 1.0 length is only known once the body is written.
        .and_then(|t| Ok((t, message_len16(out.len() - start, name)?)));
    match encoded {
        Ok((t, len)) => {
            out[start + 1] = t;
            patch_u16(out, start + 2, len);
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

fn emit_packet_out(
    p: &PacketOutRef<'_>,
    out: &mut BytesMut,
) -> std::result::Result<(), Unsupported> {
    out.put_u32(p.buffer_id);
    out.put_u16(port_to_10(p.in_port)?);
    let at = out.len();
    out.put_u16(0);
    emit_actions(p.actions, out)?;
    patch_u16(out, at, len16(out.len() - at - 2));
    out.put_slice(p.data);
    Ok(())
}

/// Writes the body of `msg`; returns its 1.0 type.
fn encode_body(msg: &Message, out: &mut BytesMut) -> std::result::Result<u8, Unsupported> {
    use msg_type::*;
    Ok(match msg {
        Message::Hello(_) => HELLO,
        Message::Error(ErrorMsg::Standard {
            err_type,
            code,
            data,
        }) => {
            out.put_u16(error_type_to_10(*err_type)?);
            out.put_u16(*code);
            out.put_slice(data);
            ERROR
        }
        Message::EchoRequest(data) => {
            out.put_slice(data);
            ECHO_REQUEST
        }
        Message::EchoReply(data) => {
            out.put_slice(data);
            ECHO_REPLY
        }
        Message::FeaturesRequest => FEATURES_REQUEST,
        Message::GetConfigRequest => GET_CONFIG_REQUEST,
        Message::SetConfig(config) => {
            config.emit(out);
            SET_CONFIG
        }
        Message::PacketOut(p) => {
            emit_packet_out(&p.borrowed(), out)?;
            PACKET_OUT
        }
        Message::FlowMod(fm) => {
            emit_flow_mod(fm, out)?;
            FLOW_MOD
        }
        Message::MultipartRequest(request) => {
            emit_stats_request(&request.body, request.flags, out)?;
            STATS_REQUEST
        }
        Message::BarrierRequest => BARRIER_REQUEST,
        other => return Err(Unsupported::Message(other.name())),
    })
}

fn emit_flow_mod(fm: &FlowMod, out: &mut BytesMut) -> std::result::Result<(), Unsupported> {
    let command: u16 = match fm.command {
        FlowModCommand::Add => 0,
        FlowModCommand::Modify => 1,
        FlowModCommand::ModifyStrict => 2,
        FlowModCommand::Delete => 3,
        FlowModCommand::DeleteStrict => 4,
        FlowModCommand::Unknown(_) => return Err(Unsupported::Field("unknown flow-mod command")),
    };
    let deleting = command >= 3;
    if fm.table_id != 0 && !(deleting && fm.table_id == crate::types::OFPTT_ALL) {
        return Err(Unsupported::Table(fm.table_id));
    }
    let actions = instruction_actions(&fm.instructions)?;
    emit_match(&fm.match_, out)?;
    out.put_u64(fm.cookie);
    out.put_u16(command);
    out.put_u16(fm.idle_timeout);
    out.put_u16(fm.hard_timeout);
    out.put_u16(fm.priority);
    out.put_u32(fm.buffer_id);
    out.put_u16(port_to_10(fm.out_port)?);
    // SEND_FLOW_REM and CHECK_OVERLAP mean the same in 1.0; 1.3's counter
    // flags have no 1.0 form (and 1.0's bit 4 is EMERG).
    out.put_u16(fm.flags & 0b11);
    emit_actions(actions, out)
}

fn emit_stats_request(
    body: &MultipartRequestBody,
    flags: u16,
    out: &mut BytesMut,
) -> std::result::Result<(), Unsupported> {
    match body {
        MultipartRequestBody::Desc => {
            out.put_u16(stats_type::DESC);
            out.put_u16(flags);
        }
        MultipartRequestBody::Flow(request) => {
            out.put_u16(stats_type::FLOW);
            out.put_u16(flags);
            emit_match(&request.match_, out)?;
            out.put_u8(request.table_id);
            put_zeros(out, 1);
            out.put_u16(port_to_10(request.out_port)?);
        }
        MultipartRequestBody::PortStats { port_no } => {
            out.put_u16(stats_type::PORT);
            out.put_u16(flags);
            out.put_u16(port_to_10(*port_no)?);
            put_zeros(out, 6);
        }
        _ => return Err(Unsupported::Message("this multipart request")),
    }
    Ok(())
}

#[cfg(test)]
mod tests;
