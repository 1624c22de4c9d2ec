//! Frames on the wire for health checks and member resolution: the probes
//! the controller sends (built with `etherparse`, checksums included), the
//! answers it traps back, and the ARP request that finds a silent member.

use std::net::{IpAddr, Ipv4Addr};

use bytes::Bytes;
use etherparse::{Icmpv4Type, Icmpv6Type, NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use flowgate_controller::topology::packet::{Arp, ARP_REQUEST};
use flowgate_openflow::MacAddr;

use crate::health::{Answer, ProbePacket};

const TTL: u8 = 64;
const WINDOW: u16 = 64240;

/// The Ethernet frame of `packet`, from `src_mac` to `dst_mac`; `None` for
/// mixed address families.
pub fn frame(packet: &ProbePacket, src_mac: MacAddr, dst_mac: MacAddr) -> Option<Bytes> {
    let eth = PacketBuilder::ethernet2(src_mac.0, dst_mac.0);
    let mut out = Vec::with_capacity(128);
    match packet {
        ProbePacket::Tcp {
            src,
            dst,
            seq,
            ack,
            syn,
            rst,
            payload,
        } => {
            let ip = match (src.ip(), dst.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), TTL),
                (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), TTL),
                _ => return None,
            };
            let mut tcp = ip.tcp(src.port(), dst.port(), *seq, WINDOW);
            if *syn {
                tcp = tcp.syn();
            }
            if *rst {
                tcp = tcp.rst();
            }
            if let Some(ack) = ack {
                tcp = tcp.ack(*ack);
            }
            if !payload.is_empty() {
                tcp = tcp.psh();
            }
            tcp.write(&mut out, payload).ok()?;
        }
        ProbePacket::Echo { src, dst, id, seq } => match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => eth
                .ipv4(s.octets(), d.octets(), TTL)
                .icmpv4_echo_request(*id, *seq)
                .write(&mut out, b"flowgate-lb")
                .ok()?,
            (IpAddr::V6(s), IpAddr::V6(d)) => eth
                .ipv6(s.octets(), d.octets(), TTL)
                .icmpv6_echo_request(*id, *seq)
                .write(&mut out, b"flowgate-lb")
                .ok()?,
            _ => return None,
        },
    }
    Some(Bytes::from(out))
}

/// A probe answer in a trapped frame, if it is one.
pub fn answer(frame: &[u8]) -> Option<Answer> {
    let packet = SlicedPacket::from_ethernet(frame).ok()?;
    let (src, dst) = match packet.net.as_ref()? {
        NetSlice::Ipv4(ip) => (
            IpAddr::V4(ip.header().source_addr()),
            IpAddr::V4(ip.header().destination_addr()),
        ),
        NetSlice::Ipv6(ip) => (
            IpAddr::V6(ip.header().source_addr()),
            IpAddr::V6(ip.header().destination_addr()),
        ),
    };
    match packet.transport.as_ref()? {
        TransportSlice::Tcp(tcp) => Some(Answer::Tcp {
            src: (src, tcp.source_port()).into(),
            dst: (dst, tcp.destination_port()).into(),
            seq: tcp.sequence_number(),
            ack: tcp.ack().then(|| tcp.acknowledgment_number()),
            syn: tcp.syn(),
            rst: tcp.rst(),
            payload: tcp.payload().to_vec(),
        }),
        TransportSlice::Icmpv4(icmp) => match icmp.icmp_type() {
            Icmpv4Type::EchoReply(echo) => Some(Answer::EchoReply {
                src,
                id: echo.id,
                seq: echo.seq,
            }),
            _ => None,
        },
        TransportSlice::Icmpv6(icmp) => match icmp.icmp_type() {
            Icmpv6Type::EchoReply(echo) => Some(Answer::EchoReply {
                src,
                id: echo.id,
                seq: echo.seq,
            }),
            _ => None,
        },
        TransportSlice::Udp(_) => None,
    }
}

/// An ARP request for `target` from `sender` (the load balancer's virtual
/// MAC and an address it answers for): a silent member answers it, and
/// topology learns where it is from that answer.
pub fn arp_request(sender_mac: MacAddr, sender_ip: Ipv4Addr, target: Ipv4Addr) -> Bytes {
    Arp {
        op: ARP_REQUEST,
        sha: sender_mac,
        spa: sender_ip,
        tha: MacAddr::ZERO,
        tpa: target,
    }
    .to_frame(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    const A: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const B: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_syn_reads_back_as_what_was_sent() {
        let syn = ProbePacket::Tcp {
            src: sa("10.0.0.250:40000"),
            dst: sa("10.0.0.2:80"),
            seq: 7,
            ack: None,
            syn: true,
            rst: false,
            payload: vec![],
        };
        let f = frame(&syn, A, B).unwrap();
        assert_eq!(&f[0..6], &B.0);
        assert_eq!(&f[6..12], &A.0);
        let back = answer(&f).unwrap();
        assert_eq!(
            back,
            Answer::Tcp {
                src: sa("10.0.0.250:40000"),
                dst: sa("10.0.0.2:80"),
                seq: 7,
                ack: None,
                syn: true,
                rst: false,
                payload: vec![],
            }
        );
        // The checksums are right: etherparse's checked parse accepts them.
        let parsed = SlicedPacket::from_ethernet(&f).unwrap();
        if let Some(TransportSlice::Tcp(tcp)) = parsed.transport {
            let NetSlice::Ipv4(ip) = parsed.net.unwrap() else {
                panic!("v4")
            };
            let sum = tcp
                .to_header()
                .calc_checksum_ipv4(&ip.header().to_header(), tcp.payload())
                .unwrap();
            assert_eq!(sum, tcp.checksum());
        } else {
            panic!("tcp");
        }
    }

    #[test]
    fn data_and_echo_frames_round_trip() {
        let get = ProbePacket::Tcp {
            src: sa("[fd00::fa]:40001"),
            dst: sa("[fd00::2]:80"),
            seq: 8,
            ack: Some(100),
            syn: false,
            rst: false,
            payload: b"GET / HTTP/1.0\r\n\r\n".to_vec(),
        };
        match answer(&frame(&get, A, B).unwrap()).unwrap() {
            Answer::Tcp { ack, payload, .. } => {
                assert_eq!(ack, Some(100));
                assert_eq!(payload, b"GET / HTTP/1.0\r\n\r\n");
            }
            other => panic!("{other:?}"),
        }
        let echo = ProbePacket::Echo {
            src: "10.0.0.250".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            id: 3,
            seq: 4,
        };
        // Our own request is not an answer.
        assert_eq!(answer(&frame(&echo, A, B).unwrap()), None);
        let mixed = ProbePacket::Echo {
            src: "10.0.0.250".parse().unwrap(),
            dst: "fd00::2".parse().unwrap(),
            id: 3,
            seq: 4,
        };
        assert_eq!(frame(&mixed, A, B), None);
        assert_eq!(answer(&[0u8; 10]), None);
    }

    #[test]
    fn an_echo_reply_is_an_answer() {
        let mut out = Vec::new();
        PacketBuilder::ethernet2(B.0, A.0)
            .ipv4([10, 0, 0, 2], [10, 0, 0, 250], 64)
            .icmpv4(Icmpv4Type::EchoReply(etherparse::IcmpEchoHeader {
                id: 3,
                seq: 4,
            }))
            .write(&mut out, b"x")
            .unwrap();
        assert_eq!(
            answer(&out),
            Some(Answer::EchoReply {
                src: "10.0.0.2".parse().unwrap(),
                id: 3,
                seq: 4
            })
        );
    }

    #[test]
    fn the_arp_request_asks_for_the_member() {
        let f = arp_request(A, Ipv4Addr::new(10, 0, 0, 250), Ipv4Addr::new(10, 0, 0, 2));
        let (arp, vlan) = Arp::from_frame(&f).unwrap();
        assert_eq!(vlan, None);
        assert_eq!(
            (arp.op, arp.sha, arp.tpa),
            (ARP_REQUEST, A, Ipv4Addr::new(10, 0, 0, 2))
        );
        assert_eq!(&f[0..6], &MacAddr::BROADCAST.0);
    }
}
