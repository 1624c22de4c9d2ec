//! The OpenFlow 1.0 match (`ofp_match`, spec 1.0.0 §5.2.3) and port
//! numbers, translated to and from the OXM [`Match`] and 32-bit ports.
//!
//! ```text
//! ofp_match (40 bytes): | wildcards: u32 | in_port: u16 | dl_src: [6] | dl_dst: [6] |
//!   | dl_vlan: u16 | dl_vlan_pcp: u8 | pad | dl_type: u16 | nw_tos: u8 | nw_proto: u8 |
//!   | pad: 2 | nw_src: u32 | nw_dst: u32 | tp_src: u16 | tp_dst: u16 |
//! ```

use std::net::Ipv4Addr;

use bytes::{BufMut, BytesMut};

use super::Unsupported;
use crate::error::Result;
use crate::oxm::{Match, MatchFields, Oxm};
use crate::types::{MacAddr, OFPVID_PRESENT};
use crate::wire::{put_zeros, Reader};

/// Encoded size of `ofp_match`.
pub const MATCH_LEN: usize = 40;

/// `ofp_flow_wildcards` bits.
pub mod wildcards {
    pub const IN_PORT: u32 = 1 << 0;
    pub const DL_VLAN: u32 = 1 << 1;
    pub const DL_SRC: u32 = 1 << 2;
    pub const DL_DST: u32 = 1 << 3;
    pub const DL_TYPE: u32 = 1 << 4;
    pub const NW_PROTO: u32 = 1 << 5;
    pub const TP_SRC: u32 = 1 << 6;
    pub const TP_DST: u32 = 1 << 7;
    pub const NW_SRC_SHIFT: u32 = 8;
    pub const NW_DST_SHIFT: u32 = 14;
    pub const DL_VLAN_PCP: u32 = 1 << 20;
    pub const NW_TOS: u32 = 1 << 21;
    pub const ALL: u32 = (1 << 22) - 1;
}

/// `OFP_VLAN_NONE`: the packet has no VLAN tag.
const VLAN_NONE: u16 = 0xffff;
const ETH_IPV4: u16 = 0x0800;
const ETH_ARP: u16 = 0x0806;

/// A 1.0 port number as a 1.3 one: reserved ports (from `0xff00` up) keep
/// their meaning (`0xfffd` CONTROLLER → `0xfffffffd`, `0xffff` NONE → ANY).
pub fn port_from_10(port: u16) -> u32 {
    if port >= 0xff00 {
        0xffff_0000 | u32::from(port)
    } else {
        u32::from(port)
    }
}

/// A 1.3 port number in 1.0's 16 bits, if it has one.
pub fn port_to_10(port: u32) -> std::result::Result<u16, Unsupported> {
    match port {
        0..=0xff00 => Ok(port as u16),
        0xffff_ff00.. => Ok((port & 0xffff) as u16),
        _ => Err(Unsupported::Port(port)),
    }
}

/// Number of wildcarded low bits for an IPv4 mask, if it is a prefix.
fn prefix_wildcard(mask: Option<Ipv4Addr>) -> std::result::Result<u32, Unsupported> {
    let Some(mask) = mask else {
        return Ok(0);
    };
    let bits = u32::from(mask);
    if bits.leading_ones() + bits.trailing_zeros() != 32 {
        return Err(Unsupported::Field("non-prefix IPv4 mask"));
    }
    Ok(bits.trailing_zeros())
}

fn prefix_mask(wildcarded: u32) -> Option<Ipv4Addr> {
    match wildcarded.min(32) {
        0 => None,
        n => Some(Ipv4Addr::from(u32::MAX.checked_shl(n).unwrap_or(0))),
    }
}

/// The fields of a 1.0 match, exactly as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Match10 {
    wildcards: u32,
    in_port: u16,
    dl_src: [u8; 6],
    dl_dst: [u8; 6],
    dl_vlan: u16,
    dl_vlan_pcp: u8,
    dl_type: u16,
    nw_tos: u8,
    nw_proto: u8,
    nw_src: u32,
    nw_dst: u32,
    tp_src: u16,
    tp_dst: u16,
}

impl Default for Match10 {
    fn default() -> Self {
        Match10 {
            wildcards: wildcards::ALL,
            in_port: 0,
            dl_src: [0; 6],
            dl_dst: [0; 6],
            dl_vlan: 0,
            dl_vlan_pcp: 0,
            dl_type: 0,
            nw_tos: 0,
            nw_proto: 0,
            nw_src: 0,
            nw_dst: 0,
            tp_src: 0,
            tp_dst: 0,
        }
    }
}

impl Match10 {
    fn exact(&mut self, bit: u32) {
        self.wildcards &= !bit;
    }

    fn has(&self, bit: u32) -> bool {
        self.wildcards & bit == 0
    }
}

/// Encodes an OXM match as a 1.0 `ofp_match`, or says which field 1.0 can
/// not express (IPv6, metadata, tunnel ids, masked MACs, ...).
pub fn emit_match(m: &Match, out: &mut BytesMut) -> std::result::Result<(), Unsupported> {
    use wildcards::*;
    let mut w = Match10::default();
    for field in &m.fields {
        match *field {
            Oxm::InPort(p) => {
                w.in_port = port_to_10(p)?;
                w.exact(IN_PORT);
            }
            Oxm::EthSrc(mac, None) => {
                w.dl_src = mac.0;
                w.exact(DL_SRC);
            }
            Oxm::EthDst(mac, None) => {
                w.dl_dst = mac.0;
                w.exact(DL_DST);
            }
            Oxm::EthType(t) => {
                w.dl_type = t;
                w.exact(DL_TYPE);
            }
            Oxm::VlanVid(v, None) => {
                w.dl_vlan = if v & OFPVID_PRESENT == 0 {
                    VLAN_NONE
                } else {
                    v & 0x0fff
                };
                w.exact(DL_VLAN);
            }
            Oxm::VlanPcp(p) => {
                w.dl_vlan_pcp = p;
                w.exact(DL_VLAN_PCP);
            }
            Oxm::IpDscp(d) => {
                w.nw_tos = d << 2;
                w.exact(NW_TOS);
            }
            Oxm::IpProto(p) => {
                w.nw_proto = p;
                w.exact(NW_PROTO);
            }
            Oxm::ArpOp(op) => {
                w.nw_proto = op as u8;
                w.exact(NW_PROTO);
            }
            Oxm::Ipv4Src(a, mask) | Oxm::ArpSpa(a, mask) => {
                w.nw_src = u32::from(a);
                w.wildcards = (w.wildcards & !(0x3f << NW_SRC_SHIFT))
                    | (prefix_wildcard(mask)? << NW_SRC_SHIFT);
            }
            Oxm::Ipv4Dst(a, mask) | Oxm::ArpTpa(a, mask) => {
                w.nw_dst = u32::from(a);
                w.wildcards = (w.wildcards & !(0x3f << NW_DST_SHIFT))
                    | (prefix_wildcard(mask)? << NW_DST_SHIFT);
            }
            Oxm::TcpSrc(p) | Oxm::UdpSrc(p) => {
                w.tp_src = p;
                w.exact(TP_SRC);
            }
            Oxm::TcpDst(p) | Oxm::UdpDst(p) => {
                w.tp_dst = p;
                w.exact(TP_DST);
            }
            Oxm::Icmpv4Type(t) => {
                w.tp_src = u16::from(t);
                w.exact(TP_SRC);
            }
            Oxm::Icmpv4Code(c) => {
                w.tp_dst = u16::from(c);
                w.exact(TP_DST);
            }
            _ => {
                return Err(Unsupported::Field(
                    "match field without an OpenFlow 1.0 form",
                ))
            }
        }
    }
    out.put_u32(w.wildcards);
    out.put_u16(w.in_port);
    out.put_slice(&w.dl_src);
    out.put_slice(&w.dl_dst);
    out.put_u16(w.dl_vlan);
    out.put_u8(w.dl_vlan_pcp);
    put_zeros(out, 1);
    out.put_u16(w.dl_type);
    out.put_u8(w.nw_tos);
    out.put_u8(w.nw_proto);
    put_zeros(out, 2);
    out.put_u32(w.nw_src);
    out.put_u32(w.nw_dst);
    out.put_u16(w.tp_src);
    out.put_u16(w.tp_dst);
    Ok(())
}

/// Parses a 1.0 `ofp_match` into OXM fields (prerequisite-aware: transport
/// ports become TCP, UDP or ICMP fields by `nw_proto`, IP fields become ARP
/// fields for ARP).
pub fn parse_match(r: &mut Reader<'_>) -> Result<Match> {
    use wildcards::*;
    let w = Match10 {
        wildcards: r.u32()?,
        in_port: r.u16()?,
        dl_src: r.array()?,
        dl_dst: r.array()?,
        dl_vlan: r.u16()?,
        dl_vlan_pcp: {
            let pcp = r.u8()?;
            r.skip(1)?;
            pcp
        },
        dl_type: r.u16()?,
        nw_tos: r.u8()?,
        nw_proto: {
            let proto = r.u8()?;
            r.skip(2)?;
            proto
        },
        nw_src: r.u32()?,
        nw_dst: r.u32()?,
        tp_src: r.u16()?,
        tp_dst: r.u16()?,
    };
    let mut fields = MatchFields::new();
    if w.has(IN_PORT) {
        fields.push(Oxm::InPort(port_from_10(w.in_port)));
    }
    if w.has(DL_DST) {
        fields.push(Oxm::EthDst(MacAddr(w.dl_dst), None));
    }
    if w.has(DL_SRC) {
        fields.push(Oxm::EthSrc(MacAddr(w.dl_src), None));
    }
    if w.has(DL_TYPE) {
        fields.push(Oxm::EthType(w.dl_type));
    }
    if w.has(DL_VLAN) {
        let vid = if w.dl_vlan == VLAN_NONE {
            0
        } else {
            OFPVID_PRESENT | (w.dl_vlan & 0x0fff)
        };
        fields.push(Oxm::VlanVid(vid, None));
    }
    if w.has(DL_VLAN_PCP) {
        fields.push(Oxm::VlanPcp(w.dl_vlan_pcp));
    }
    let ip = w.has(DL_TYPE) && w.dl_type == ETH_IPV4;
    let arp = w.has(DL_TYPE) && w.dl_type == ETH_ARP;
    if w.has(NW_TOS) && ip {
        fields.push(Oxm::IpDscp(w.nw_tos >> 2));
    }
    if w.has(NW_PROTO) {
        if arp {
            fields.push(Oxm::ArpOp(u16::from(w.nw_proto)));
        } else if ip {
            fields.push(Oxm::IpProto(w.nw_proto));
        }
    }
    let src_wild = (w.wildcards >> NW_SRC_SHIFT) & 0x3f;
    let dst_wild = (w.wildcards >> NW_DST_SHIFT) & 0x3f;
    if src_wild < 32 && (ip || arp) {
        let (a, m) = (Ipv4Addr::from(w.nw_src), prefix_mask(src_wild));
        fields.push(if arp {
            Oxm::ArpSpa(a, m)
        } else {
            Oxm::Ipv4Src(a, m)
        });
    }
    if dst_wild < 32 && (ip || arp) {
        let (a, m) = (Ipv4Addr::from(w.nw_dst), prefix_mask(dst_wild));
        fields.push(if arp {
            Oxm::ArpTpa(a, m)
        } else {
            Oxm::Ipv4Dst(a, m)
        });
    }
    if ip && w.has(NW_PROTO) {
        let (src, dst) = (w.has(TP_SRC), w.has(TP_DST));
        match w.nw_proto {
            6 => {
                src.then(|| fields.push(Oxm::TcpSrc(w.tp_src)));
                dst.then(|| fields.push(Oxm::TcpDst(w.tp_dst)));
            }
            17 => {
                src.then(|| fields.push(Oxm::UdpSrc(w.tp_src)));
                dst.then(|| fields.push(Oxm::UdpDst(w.tp_dst)));
            }
            1 => {
                src.then(|| fields.push(Oxm::Icmpv4Type(w.tp_src as u8)));
                dst.then(|| fields.push(Oxm::Icmpv4Code(w.tp_dst as u8)));
            }
            _ => {}
        }
    }
    Ok(Match { fields })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(m: &Match) -> Match {
        let mut out = BytesMut::new();
        emit_match(m, &mut out).unwrap();
        assert_eq!(out.len(), MATCH_LEN);
        let mut r = Reader::new(&out, "t");
        let back = parse_match(&mut r).unwrap();
        assert!(r.is_empty());
        back
    }

    fn sorted(mut m: Match) -> Match {
        m.fields.sort_by_key(|f| (f.class(), f.field()));
        m
    }

    #[test]
    fn expressible_matches_round_trip() {
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let net = Ipv4Addr::new(10, 1, 0, 0);
        for m in [
            Match::new(),
            Match::new()
                .with(Oxm::InPort(3))
                .with(Oxm::EthDst(mac, None)),
            Match::new()
                .with(Oxm::EthSrc(mac, None))
                .with(Oxm::EthType(0x0800))
                .with(Oxm::IpProto(6))
                .with(Oxm::Ipv4Dst(net, Some(Ipv4Addr::new(255, 255, 0, 0))))
                .with(Oxm::TcpDst(80)),
            Match::new()
                .with(Oxm::EthType(0x0806))
                .with(Oxm::ArpOp(1))
                .with(Oxm::ArpTpa(net, None)),
            Match::new()
                .with(Oxm::EthType(0x0800))
                .with(Oxm::IpProto(17))
                .with(Oxm::UdpSrc(53))
                .with(Oxm::VlanVid(OFPVID_PRESENT | 10, None)),
        ] {
            assert_eq!(sorted(round_trip(&m)), sorted(m.clone()), "{m:?}");
        }
    }

    #[test]
    fn wildcards_of_an_empty_match_are_all_set() {
        let mut out = BytesMut::new();
        emit_match(&Match::new(), &mut out).unwrap();
        assert_eq!(&out[..4], &wildcards::ALL.to_be_bytes());
    }

    #[test]
    fn inexpressible_fields_are_refused() {
        let mut out = BytesMut::new();
        let v6 = Match::new().with(Oxm::Ipv6Src(std::net::Ipv6Addr::LOCALHOST, None));
        assert!(emit_match(&v6, &mut out).is_err());
        let masked = Match::new().with(Oxm::EthDst(
            MacAddr::BROADCAST,
            Some(MacAddr([1, 0, 0, 0, 0, 0])),
        ));
        assert!(emit_match(&masked, &mut out).is_err());
        let holes = Match::new().with(Oxm::Ipv4Src(
            Ipv4Addr::UNSPECIFIED,
            Some(Ipv4Addr::new(255, 0, 255, 0)),
        ));
        assert!(emit_match(&holes, &mut out).is_err());
        assert!(emit_match(&Match::new().with(Oxm::InPort(0x1_0000)), &mut out).is_err());
    }

    #[test]
    fn reserved_ports_keep_their_meaning() {
        assert_eq!(port_from_10(0xfffd), crate::types::port_no::CONTROLLER);
        assert_eq!(port_from_10(0xfffb), crate::types::port_no::FLOOD);
        assert_eq!(port_from_10(0xffff), crate::types::port_no::ANY);
        assert_eq!(port_from_10(7), 7);
        assert_eq!(port_to_10(crate::types::port_no::FLOOD), Ok(0xfffb));
        assert_eq!(port_to_10(12), Ok(12));
    }
}
