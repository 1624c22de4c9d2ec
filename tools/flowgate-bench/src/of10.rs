//! The OpenFlow 1.0 side of the bench (spec 1.0.0 §5): what an emulated
//! 1.0 switch sends, built by hand the way cbench builds it, and where the
//! fields the bench reads sit in the controller's 1.0 messages.

/// Wire version of OpenFlow 1.0.
pub const VERSION: u8 = 1;

/// OpenFlow 1.0 message types the bench sends or reads (FLOW_MOD and
/// PACKET_OUT have 1.3's numbers).
pub mod msg_type {
    pub const HELLO: u8 = 0;
    pub const ECHO_REQUEST: u8 = 2;
    pub const ECHO_REPLY: u8 = 3;
    pub const FEATURES_REQUEST: u8 = 5;
    pub const FEATURES_REPLY: u8 = 6;
    pub const PACKET_IN: u8 = 10;
    pub const STATS_REQUEST: u8 = 16;
    pub const STATS_REPLY: u8 = 17;
    pub const BARRIER_REQUEST: u8 = 18;
    pub const BARRIER_REPLY: u8 = 19;
}

/// `ofp_stats_types` the bench answers.
const OFPST_DESC: u16 = 0;
const OFPST_FLOW: u16 = 1;
/// Match wildcard bits of the Ethernet addresses.
const OFPFW_DL_SRC: u32 = 1 << 2;
const OFPFW_DL_DST: u32 = 1 << 3;

/// Byte offsets in the controller's messages: a FLOW_MOD's match (40
/// bytes after the header: wildcards, in_port, dl_src, dl_dst, ...), its
/// command and buffer id; a PACKET_OUT's buffer id and actions length.
pub const FLOW_MOD_WILDCARDS: usize = 8;
pub const FLOW_MOD_DL_SRC: usize = 14;
pub const FLOW_MOD_DL_DST: usize = 20;
pub const FLOW_MOD_COMMAND: usize = 56;
pub const FLOW_MOD_BUFFER_ID: usize = 64;
pub const PACKET_OUT_ACTIONS_LEN: usize = 14;
pub const PACKET_OUT_ACTIONS: usize = 16;
/// Where a packet-in's fields sit (header, buffer_id, total_len, in_port,
/// reason, pad, then the frame).
pub const PACKET_IN_IN_PORT: usize = 14;
pub const PACKET_IN_FRAME: usize = 18;

/// Appends one message: the header, then `body`.
pub fn message(msg_type: u8, xid: u32, body: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&[VERSION, msg_type]);
    out.extend_from_slice(&(8 + body.len() as u16).to_be_bytes());
    out.extend_from_slice(&xid.to_be_bytes());
    out.extend_from_slice(body);
}

/// FEATURES_REPLY: `dpid`, `n_buffers`, one table, and `ports` ports.
pub fn features_reply(xid: u32, dpid: u64, n_buffers: u32, ports: u32, out: &mut Vec<u8>) {
    let mut body = dpid.to_be_bytes().to_vec();
    body.extend_from_slice(&n_buffers.to_be_bytes());
    body.extend_from_slice(&[1, 0, 0, 0]); // n_tables, pad
    body.extend_from_slice(&0xc7u32.to_be_bytes()); // capabilities
    body.extend_from_slice(&0xfffu32.to_be_bytes()); // actions
    for port in 1..=ports {
        body.extend_from_slice(&(port as u16).to_be_bytes());
        body.extend_from_slice(&[0x02, 0xff, 0, 0, 0, port as u8]);
        let mut name = format!("eth{port}").into_bytes();
        name.resize(16, 0);
        body.extend_from_slice(&name);
        body.extend_from_slice(&[0; 24]); // config, state, four feature sets
    }
    message(msg_type::FEATURES_REPLY, xid, &body, out);
}

/// The answer to a STATS_REQUEST (`request` is the whole message): desc
/// always, an empty flow dump unless `desc_only` (cbench answers nothing
/// else); `None` for what goes unanswered.
pub fn stats_reply(request: &[u8], dpid: u64, desc_only: bool, out: &mut Vec<u8>) -> Option<()> {
    let xid = crate::wire::xid(request);
    let stats_type = u16::from_be_bytes(request.get(8..10)?.try_into().ok()?);
    let mut body = stats_type.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 0]); // flags: last part
    match stats_type {
        OFPST_DESC => {
            for (text, len) in [
                ("Flowgate".to_string(), 256),
                ("flowgate-bench emulated switch".to_string(), 256),
                (env!("CARGO_PKG_VERSION").to_string(), 256),
                (String::new(), 32),
                (format!("bench switch {dpid:016x}"), 256),
            ] {
                let mut field = text.into_bytes();
                field.resize(len, 0);
                body.extend_from_slice(&field);
            }
        }
        OFPST_FLOW if !desc_only => {}
        _ => return None,
    }
    message(msg_type::STATS_REPLY, xid, &body, out);
    Some(())
}

/// The Ethernet source a FLOW_MOD matches, else its destination.
pub fn flow_mod_mac(frame: &[u8]) -> Option<&[u8]> {
    let wildcards = u32::from_be_bytes(
        frame
            .get(FLOW_MOD_WILDCARDS..FLOW_MOD_WILDCARDS + 4)?
            .try_into()
            .ok()?,
    );
    if wildcards & OFPFW_DL_SRC == 0 {
        frame.get(FLOW_MOD_DL_SRC..FLOW_MOD_DL_SRC + 6)
    } else if wildcards & OFPFW_DL_DST == 0 {
        frame.get(FLOW_MOD_DL_DST..FLOW_MOD_DL_DST + 6)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowgate_openflow::{self as of, Message, MultipartReplyBody};

    #[test]
    fn the_switch_side_decodes_with_flowgates_codec() {
        let mut out = Vec::new();
        features_reply(3, 0xab, 256, 4, &mut out);
        let (features, ports) = of::of10::decode_features_reply(&out).unwrap();
        assert_eq!((features.datapath_id, features.n_buffers), (0xab, 256));
        assert_eq!(ports.len(), 4);
        assert_eq!(ports[3].name, "eth4");

        let mut request = Vec::new();
        message(msg_type::STATS_REQUEST, 9, &[0, 0, 0, 0], &mut request);
        let mut out = Vec::new();
        stats_reply(&request, 0xab, true, &mut out).unwrap();
        match of::of10::decode(&out).unwrap() {
            (h, Message::MultipartReply(reply)) => {
                assert_eq!(h.xid, 9);
                assert!(
                    matches!(reply.body, MultipartReplyBody::Desc(ref d) if d.mfr_desc == "Flowgate")
                );
            }
            other => panic!("{other:?}"),
        }
        // The flow dump: answered unless desc-only.
        let mut flows = Vec::new();
        let body = [0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff];
        message(msg_type::STATS_REQUEST, 10, &body, &mut flows);
        assert!(stats_reply(&flows, 1, true, &mut Vec::new()).is_none());
        let mut out = Vec::new();
        stats_reply(&flows, 1, false, &mut out).unwrap();
        assert!(matches!(
            of::of10::decode(&out),
            Ok((_, Message::MultipartReply(r))) if matches!(r.body, MultipartReplyBody::Flow(ref f) if f.is_empty())
        ));
    }

    #[test]
    fn a_flow_mod_names_its_source_or_destination() {
        let flow_mod = |wildcards: u32| {
            let mut m = vec![0u8; 72];
            m[FLOW_MOD_WILDCARDS..FLOW_MOD_WILDCARDS + 4].copy_from_slice(&wildcards.to_be_bytes());
            m[FLOW_MOD_DL_SRC..FLOW_MOD_DL_SRC + 6].copy_from_slice(&[1; 6]);
            m[FLOW_MOD_DL_DST..FLOW_MOD_DL_DST + 6].copy_from_slice(&[2; 6]);
            m
        };
        assert_eq!(flow_mod_mac(&flow_mod(0)), Some(&[1u8; 6][..]));
        assert_eq!(flow_mod_mac(&flow_mod(OFPFW_DL_SRC)), Some(&[2u8; 6][..]));
        assert_eq!(flow_mod_mac(&flow_mod(OFPFW_DL_SRC | OFPFW_DL_DST)), None);
        assert_eq!(flow_mod_mac(&[0; 10]), None);
    }
}
