//! The null controller: the smallest responder that plays the controller's
//! part of a run (HELLO, FEATURES_REQUEST, echo, one fixed FLOW_MOD per
//! PACKET_IN, one write per read batch), in the version the switch's HELLO
//! names (OpenFlow 1.3, or 1.0 for cbench-shaped switches). Whatever it
//! reaches is what the machine and the bench tool allow; controllers are
//! reported as a ratio to it.

use std::io;

use bytes::BytesMut;
use flowgate_openflow::{
    self as of, msg_type, FlowMod, FlowModCommand, Hello, Match, Message, Oxm,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{of10, wire};

/// The responder's fixed bytes and its per-batch logic (no sockets).
#[derive(Debug, Clone)]
pub struct NullResponder {
    flow_mod: Vec<u8>,
}

impl NullResponder {
    /// The responder for switches speaking `version` (1.0 or 1.3).
    pub fn new(version: u8) -> Self {
        // The size of a learned-host entry: two match fields, one instruction.
        let fm = FlowMod {
            cookie: 1,
            cookie_mask: 0,
            table_id: 0,
            command: FlowModCommand::Add,
            idle_timeout: 0,
            hard_timeout: 0,
            priority: 1,
            buffer_id: of::NO_BUFFER,
            out_port: of::port_no::ANY,
            out_group: of::OFPG_ANY,
            flags: 0,
            match_: Match::new()
                .with(Oxm::InPort(1))
                .with(Oxm::EthDst(of::MacAddr([0, 0, 0, 0, 0, 1]), None)),
            instructions: vec![of::Instruction::ApplyActions(vec![of::Action::Output {
                port: 1,
                max_len: 0,
            }])],
        };
        let mut out = BytesMut::new();
        if version == of10::VERSION {
            // A FLOW_MOD with a match and an output always has a 1.0 form.
            let _ = of::of10::encode(0, &Message::FlowMod(fm), &mut out);
        } else {
            of::encode(0, &Message::FlowMod(fm), &mut out).expect("the message fits");
        }
        NullResponder {
            flow_mod: out.to_vec(),
        }
    }

    /// HELLO and FEATURES_REQUEST, sent once the switch's HELLO names its
    /// version.
    pub fn greeting(version: u8) -> Vec<u8> {
        let mut out = Vec::new();
        if version == of10::VERSION {
            of10::message(of10::msg_type::HELLO, 0, &[], &mut out);
            of10::message(of10::msg_type::FEATURES_REQUEST, 1, &[], &mut out);
        } else {
            let mut b = BytesMut::new();
            let hello = Message::Hello(Hello::with_versions(&[of::OFP_VERSION_1_3]));
            of::encode(0, &hello, &mut b).expect("the message fits");
            of::encode(1, &Message::FeaturesRequest, &mut b).expect("the message fits");
            out.extend_from_slice(&b);
        }
        out
    }

    /// Answers every whole message of `buf` into `out`; returns the bytes
    /// consumed.
    pub fn handle(&self, buf: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
        // ECHO, FEATURES_REPLY and PACKET_IN have the same type numbers in
        // OpenFlow 1.0 and 1.3.
        wire::for_each_frame(buf, |t, frame| match t {
            msg_type::ECHO_REQUEST => {
                let at = out.len();
                out.extend_from_slice(frame);
                out[at + 1] = msg_type::ECHO_REPLY;
            }
            // The switch is programmed with one entry after the handshake,
            // and each packet-in gets the same entry.
            msg_type::FEATURES_REPLY | msg_type::PACKET_IN => out.extend_from_slice(&self.flow_mod),
            _ => {}
        })
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "unframeable stream"))
    }
}

/// Serves switches on `listener` until the process ends.
pub async fn serve(listener: TcpListener) -> io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = connection(stream).await;
        });
    }
}

async fn connection(mut stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut inbuf = vec![0u8; 256 * 1024];
    // The switch's HELLO names the version to speak.
    let mut filled = stream.read(&mut inbuf).await?;
    if filled == 0 {
        return Ok(());
    }
    let version = inbuf[0];
    let responder = NullResponder::new(version);
    stream.write_all(&NullResponder::greeting(version)).await?;
    let mut out = Vec::with_capacity(256 * 1024);
    loop {
        out.clear();
        let used = responder.handle(&inbuf[..filled], &mut out)?;
        inbuf.copy_within(used..filled, 0);
        filled -= used;
        if filled == inbuf.len() {
            inbuf.resize(inbuf.len() * 2, 0);
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
        }
        let n = stream.read(&mut inbuf[filled..]).await?;
        if n == 0 {
            return Ok(());
        }
        filled += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Packet, PacketInShape, PacketInTemplate};
    use bytes::Bytes;
    use flowgate_openflow::PacketInReason;

    fn packet(i: u32) -> Packet {
        Packet {
            in_port: 1,
            src: wire::host_mac(0, i),
            dst: wire::host_mac(0, 0),
            buffer_id: of::NO_BUFFER,
        }
    }

    #[test]
    fn one_flow_mod_per_packet_in_and_echo_answered() {
        let r = NullResponder::new(of::OFP_VERSION_1_3);
        let template = PacketInTemplate::new(PacketInShape {
            cookie: 0,
            table_id: 0,
            reason: PacketInReason::NoMatch,
        });
        let mut input = Vec::new();
        for i in 0..3 {
            template.write(&mut input, i, packet(i));
        }
        let mut echo = BytesMut::new();
        of::encode(
            9,
            &Message::EchoRequest(Bytes::from_static(b"hi")),
            &mut echo,
        )
        .unwrap();
        input.extend_from_slice(&echo);
        let partial = input.len();
        template.write(&mut input, 4, packet(4));
        let mut out = Vec::new();
        let used = r.handle(&input[..input.len() - 1], &mut out).unwrap();
        assert_eq!(used, partial, "the cut packet-in waits for its last byte");
        let mut seen = Vec::new();
        wire::for_each_frame(&out, |t, f| seen.push((t, wire::xid(f)))).unwrap();
        let fm = msg_type::FLOW_MOD;
        assert_eq!(
            seen,
            vec![(fm, 0), (fm, 0), (fm, 0), (msg_type::ECHO_REPLY, 9)]
        );
        let (_, reply) = of::decode(&out[3 * r.flow_mod.len()..]).unwrap();
        assert_eq!(reply, Message::EchoReply(Bytes::from_static(b"hi")));
        assert!(matches!(
            of::decode(&r.flow_mod),
            Ok((_, Message::FlowMod(_)))
        ));
    }

    #[test]
    fn an_openflow_10_switch_is_answered_in_10() {
        let greeting = NullResponder::greeting(of10::VERSION);
        assert_eq!((greeting[0], greeting[1]), (1, of10::msg_type::HELLO));
        let r = NullResponder::new(of10::VERSION);
        let mut input = Vec::new();
        PacketInTemplate::of10().write(&mut input, 1, packet(1));
        let mut out = Vec::new();
        r.handle(&input, &mut out).unwrap();
        assert_eq!((out[0], out[1]), (1, msg_type::FLOW_MOD));
        assert!(of::frame_len(&out).unwrap() == Some(out.len()));
    }
}
