//! What a packet-in tells about the host that sent it, and the ARP frames
//! proxy-ARP reads and writes. Ethernet, VLAN, IPv4 and IPv6 are parsed by
//! `etherparse` (lax: packet-ins are truncated copies); ARP, which it does
//! not cover, is parsed here.

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, Bytes, BytesMut};
use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, LinkSlice, VlanSlice};
use flowgate_openflow::MacAddr;

pub const ETH_TYPE_ARP: u16 = 0x0806;
pub const ETH_TYPE_IPV6: u16 = 0x86dd;
const ETH_TYPE_VLAN: u16 = 0x8100;
pub const ARP_REQUEST: u16 = 1;
pub const ARP_REPLY: u16 = 2;
/// ICMPv6 neighbour solicitation and advertisement (RFC 4861).
pub const ICMPV6_NS: u8 = 135;
pub const ICMPV6_NA: u8 = 136;
pub const IP_PROTO_ICMPV6: u8 = 58;

/// Addresses a frame reveals about its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sighting {
    pub mac: MacAddr,
    /// Outer VLAN id, when tagged.
    pub vlan: Option<u16>,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
}

impl Sighting {
    /// Reads the sender of an Ethernet frame: its source MAC, VLAN, and the
    /// source address of ARP (sender protocol address), IPv4 or IPv6
    /// (ND included). Unspecified, multicast and broadcast addresses are not
    /// a host's own and are left out. `None` when the frame is not Ethernet.
    pub fn from_frame(frame: &[u8]) -> Option<Sighting> {
        let packet = LaxSlicedPacket::from_ethernet(frame).ok()?;
        let mac = match &packet.link {
            Some(LinkSlice::Ethernet2(eth)) => MacAddr(eth.source()),
            _ => return None,
        };
        let vlan = packet.vlan.as_ref().map(|v| match v {
            VlanSlice::SingleVlan(s) => s.vlan_identifier().value(),
            VlanSlice::DoubleVlan(d) => d.outer().vlan_identifier().value(),
        });
        let mut sighting = Sighting {
            mac,
            vlan,
            ipv4: None,
            ipv6: None,
        };
        match &packet.net {
            Some(LaxNetSlice::Ipv4(ip)) => {
                sighting.ipv4 = Some(ip.header().source_addr()).filter(is_host_v4);
            }
            Some(LaxNetSlice::Ipv6(ip)) => {
                sighting.ipv6 = Some(ip.header().source_addr()).filter(is_host_v6);
            }
            None => {
                let payload = packet.ether_payload()?;
                if payload.ether_type == EtherType::ARP {
                    sighting.ipv4 = Arp::parse(payload.payload)
                        .map(|arp| arp.spa)
                        .filter(is_host_v4);
                }
            }
        }
        Some(sighting)
    }
}

fn is_host_v4(ip: &Ipv4Addr) -> bool {
    !(ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast())
}

fn is_host_v6(ip: &Ipv6Addr) -> bool {
    !(ip.is_unspecified() || ip.is_multicast())
}

/// An Ethernet/IPv4 ARP packet (RFC 826), the only kind hosts send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    pub op: u16,
    pub sha: MacAddr,
    pub spa: Ipv4Addr,
    pub tha: MacAddr,
    pub tpa: Ipv4Addr,
}

const ARP_LEN: usize = 28;
/// hardware type 1 (Ethernet), protocol 0x0800, hlen 6, plen 4.
const ARP_PREFIX: [u8; 6] = [0, 1, 0x08, 0x00, 6, 4];

impl Arp {
    /// Parses an ARP payload (after the EtherType); `None` unless it is
    /// Ethernet/IPv4 ARP of full length.
    pub fn parse(payload: &[u8]) -> Option<Arp> {
        let p: &[u8; ARP_LEN] = payload.get(..ARP_LEN)?.try_into().ok()?;
        if p[..6] != ARP_PREFIX {
            return None;
        }
        let mac =
            |at: usize| MacAddr([p[at], p[at + 1], p[at + 2], p[at + 3], p[at + 4], p[at + 5]]);
        let ip = |at: usize| Ipv4Addr::new(p[at], p[at + 1], p[at + 2], p[at + 3]);
        Some(Arp {
            op: u16::from_be_bytes([p[6], p[7]]),
            sha: mac(8),
            spa: ip(14),
            tha: mac(18),
            tpa: ip(24),
        })
    }

    /// The ARP packet of an Ethernet frame, with the frame's VLAN id if it
    /// carries one 802.1Q tag.
    pub fn from_frame(frame: &[u8]) -> Option<(Arp, Option<u16>)> {
        let eth_type = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
        match eth_type {
            ETH_TYPE_ARP => Some((Arp::parse(frame.get(14..)?)?, None)),
            ETH_TYPE_VLAN => {
                let tci = u16::from_be_bytes([*frame.get(14)?, *frame.get(15)?]);
                let inner = u16::from_be_bytes([*frame.get(16)?, *frame.get(17)?]);
                (inner == ETH_TYPE_ARP)
                    .then(|| Arp::parse(frame.get(18..)?))
                    .flatten()
                    .map(|arp| (arp, Some(tci & 0x0fff)))
            }
            _ => None,
        }
    }

    /// The reply that `owner` (who holds `self.tpa`) would send to this request.
    pub fn reply_from(&self, owner: MacAddr) -> Arp {
        Arp {
            op: ARP_REPLY,
            sha: owner,
            spa: self.tpa,
            tha: self.sha,
            tpa: self.spa,
        }
    }

    /// A complete Ethernet frame carrying this packet from `sha` to `tha`,
    /// tagged with `vlan` when given, padded to the Ethernet minimum.
    pub fn to_frame(&self, vlan: Option<u16>) -> Bytes {
        let mut out = BytesMut::with_capacity(64);
        let dst = if self.op == ARP_REQUEST && self.tha == MacAddr::ZERO {
            MacAddr::BROADCAST
        } else {
            self.tha
        };
        out.put_slice(&dst.0);
        out.put_slice(&self.sha.0);
        if let Some(vid) = vlan {
            out.put_u16(ETH_TYPE_VLAN);
            out.put_u16(vid & 0x0fff);
        }
        out.put_u16(ETH_TYPE_ARP);
        out.put_slice(&ARP_PREFIX);
        out.put_u16(self.op);
        out.put_slice(&self.sha.0);
        out.put_slice(&self.spa.octets());
        out.put_slice(&self.tha.0);
        out.put_slice(&self.tpa.octets());
        if out.len() < 60 {
            out.put_bytes(0, 60 - out.len());
        }
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    const A: MacAddr = MacAddr([0x00, 0, 0, 0, 0, 0x0a]);
    const B: MacAddr = MacAddr([0x00, 0, 0, 0, 0, 0x0b]);
    const IP_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const IP_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn request() -> Arp {
        Arp {
            op: ARP_REQUEST,
            sha: A,
            spa: IP_A,
            tha: MacAddr::ZERO,
            tpa: IP_B,
        }
    }

    #[test]
    fn arp_round_trips_with_and_without_vlan() {
        let frame = request().to_frame(None);
        assert_eq!(frame.len(), 60);
        assert_eq!(&frame[0..6], &MacAddr::BROADCAST.0);
        assert_eq!(Arp::from_frame(&frame), Some((request(), None)));
        let tagged = request().to_frame(Some(42));
        assert_eq!(&tagged[12..16], &[0x81, 0x00, 0, 42]);
        assert_eq!(Arp::from_frame(&tagged), Some((request(), Some(42))));
    }

    #[test]
    fn reply_answers_the_asker() {
        let reply = request().reply_from(B);
        assert_eq!(
            reply,
            Arp {
                op: ARP_REPLY,
                sha: B,
                spa: IP_B,
                tha: A,
                tpa: IP_A
            }
        );
        let frame = reply.to_frame(None);
        assert_eq!(&frame[0..6], &A.0, "unicast to the asker");
        assert_eq!(&frame[6..12], &B.0);
    }

    #[test]
    fn short_or_foreign_arp_is_refused() {
        let frame = request().to_frame(None);
        assert_eq!(Arp::parse(&frame[14..14 + 27]), None);
        let mut other = frame.to_vec();
        other[14 + 4] = 8; // hlen 8
        assert_eq!(Arp::from_frame(&other), None);
        assert_eq!(Arp::from_frame(&frame[..13]), None);
    }

    #[test]
    fn sighting_reads_arp_sender() {
        let s = Sighting::from_frame(&request().to_frame(Some(7))).unwrap();
        assert_eq!(
            s,
            Sighting {
                mac: A,
                vlan: Some(7),
                ipv4: Some(IP_A),
                ipv6: None
            }
        );
        // An ARP probe (sender 0.0.0.0) names no address.
        let probe = Arp {
            spa: Ipv4Addr::UNSPECIFIED,
            ..request()
        };
        assert_eq!(
            Sighting::from_frame(&probe.to_frame(None)).unwrap().ipv4,
            None
        );
    }

    #[test]
    fn sighting_reads_ipv4_and_ipv6_sources_even_truncated() {
        let mut v4 = Vec::new();
        PacketBuilder::ethernet2(A.0, B.0)
            .ipv4(IP_A.octets(), IP_B.octets(), 64)
            .udp(1000, 2000)
            .write(&mut v4, &[0u8; 200])
            .unwrap();
        let s = Sighting::from_frame(&v4[..64]).unwrap();
        assert_eq!((s.mac, s.ipv4, s.ipv6), (A, Some(IP_A), None));

        let src6: Ipv6Addr = "fe80::a".parse().unwrap();
        let mut ns = Vec::new();
        PacketBuilder::ethernet2(A.0, [0x33, 0x33, 0xff, 0, 0, 0x0b])
            .ipv6(
                src6.octets(),
                "ff02::1:ff00:b".parse::<Ipv6Addr>().unwrap().octets(),
                255,
            )
            .icmpv6(etherparse::Icmpv6Type::Unknown {
                type_u8: ICMPV6_NS,
                code_u8: 0,
                bytes5to8: [0; 4],
            })
            .write(&mut ns, &[0u8; 24])
            .unwrap();
        let s = Sighting::from_frame(&ns).unwrap();
        assert_eq!((s.mac, s.ipv4, s.ipv6), (A, None, Some(src6)));

        // Duplicate address detection sends from "::": no address learned.
        let mut dad = Vec::new();
        PacketBuilder::ethernet2(A.0, B.0)
            .ipv6(
                [0; 16],
                "ff02::1".parse::<Ipv6Addr>().unwrap().octets(),
                255,
            )
            .udp(1, 2)
            .write(&mut dad, &[])
            .unwrap();
        assert_eq!(Sighting::from_frame(&dad).unwrap().ipv6, None);
    }

    #[test]
    fn garbage_is_not_a_sighting() {
        assert_eq!(Sighting::from_frame(&[1, 2, 3]), None);
        for len in 0..60 {
            let _ = Sighting::from_frame(&request().to_frame(None)[..len]);
            let _ = Arp::from_frame(&request().to_frame(Some(3))[..len]);
        }
    }
}
