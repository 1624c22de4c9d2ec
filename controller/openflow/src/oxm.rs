//! OXM flow match fields and `ofp_match` (spec 7.2.3).
//!
//! ```text
//! OXM TLV:  | class: u16 | field: 7 bits | hasmask: 1 bit | length: u8 | value [mask] |
//! ofp_match:| type: u16 = OFPMT_OXM (1) | length: u16 (excl. padding) | OXM TLVs... | pad to 8 |
//! ```
//! Basic-class (0x8000) fields and the Nicira `NXM_NX` (class 0x0001) fields
//! Flowgate uses (registers, tunnel addresses, packet mark, conjunction id,
//! conntrack state/zone/mark/label) are typed when their width and mask flag
//! fit; everything else (other NXM fields, experimenter OXMs, odd widths) is
//! kept as [`Oxm::Raw`] so a switch's match re-emits byte for byte.

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, Result};
use crate::nicira::nxm_nx_field;
use crate::types::MacAddr;
use crate::wire::{pad8, put_zeros, round8, Reader, Wire};

/// OXM class of the standard fields.
pub const OFPXMC_OPENFLOW_BASIC: u16 = 0x8000;
/// Nicira NXM class 0 (OF1.0-era fields such as NXM_OF_IN_PORT).
pub const OFPXMC_NXM_0: u16 = 0x0000;
/// Nicira NXM class 1 (NXM_NX_REG*, ct_state, tun_*, ...).
pub const OFPXMC_NXM_1: u16 = 0x0001;
/// Experimenter class: the payload starts with a 4-byte experimenter id.
pub const OFPXMC_EXPERIMENTER: u16 = 0xffff;
/// `ofp_match.type` for OXM matches, the only one OF1.3 defines for use.
pub const OFPMT_OXM: u16 = 1;

/// Field numbers of `OFPXMC_OPENFLOW_BASIC` (`enum oxm_ofb_match_fields`).
pub mod oxm_field {
    pub const IN_PORT: u8 = 0;
    pub const IN_PHY_PORT: u8 = 1;
    pub const METADATA: u8 = 2;
    pub const ETH_DST: u8 = 3;
    pub const ETH_SRC: u8 = 4;
    pub const ETH_TYPE: u8 = 5;
    pub const VLAN_VID: u8 = 6;
    pub const VLAN_PCP: u8 = 7;
    pub const IP_DSCP: u8 = 8;
    pub const IP_ECN: u8 = 9;
    pub const IP_PROTO: u8 = 10;
    pub const IPV4_SRC: u8 = 11;
    pub const IPV4_DST: u8 = 12;
    pub const TCP_SRC: u8 = 13;
    pub const TCP_DST: u8 = 14;
    pub const UDP_SRC: u8 = 15;
    pub const UDP_DST: u8 = 16;
    pub const SCTP_SRC: u8 = 17;
    pub const SCTP_DST: u8 = 18;
    pub const ICMPV4_TYPE: u8 = 19;
    pub const ICMPV4_CODE: u8 = 20;
    pub const ARP_OP: u8 = 21;
    pub const ARP_SPA: u8 = 22;
    pub const ARP_TPA: u8 = 23;
    pub const ARP_SHA: u8 = 24;
    pub const ARP_THA: u8 = 25;
    pub const IPV6_SRC: u8 = 26;
    pub const IPV6_DST: u8 = 27;
    pub const IPV6_FLABEL: u8 = 28;
    pub const ICMPV6_TYPE: u8 = 29;
    pub const ICMPV6_CODE: u8 = 30;
    pub const IPV6_ND_TARGET: u8 = 31;
    pub const IPV6_ND_SLL: u8 = 32;
    pub const IPV6_ND_TLL: u8 = 33;
    pub const MPLS_LABEL: u8 = 34;
    pub const MPLS_TC: u8 = 35;
    pub const MPLS_BOS: u8 = 36;
    pub const PBB_ISID: u8 = 37;
    pub const TUNNEL_ID: u8 = 38;
    pub const IPV6_EXTHDR: u8 = 39;
}

/// One OXM match field (or set-field value).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Oxm {
    InPort(u32),
    InPhyPort(u32),
    Metadata(u64, Option<u64>),
    EthDst(MacAddr, Option<MacAddr>),
    EthSrc(MacAddr, Option<MacAddr>),
    EthType(u16),
    /// Value includes the OFPVID_PRESENT (0x1000) bit as on the wire.
    VlanVid(u16, Option<u16>),
    VlanPcp(u8),
    IpDscp(u8),
    IpEcn(u8),
    IpProto(u8),
    Ipv4Src(Ipv4Addr, Option<Ipv4Addr>),
    Ipv4Dst(Ipv4Addr, Option<Ipv4Addr>),
    TcpSrc(u16),
    TcpDst(u16),
    UdpSrc(u16),
    UdpDst(u16),
    SctpSrc(u16),
    SctpDst(u16),
    Icmpv4Type(u8),
    Icmpv4Code(u8),
    ArpOp(u16),
    ArpSpa(Ipv4Addr, Option<Ipv4Addr>),
    ArpTpa(Ipv4Addr, Option<Ipv4Addr>),
    ArpSha(MacAddr, Option<MacAddr>),
    ArpTha(MacAddr, Option<MacAddr>),
    Ipv6Src(Ipv6Addr, Option<Ipv6Addr>),
    Ipv6Dst(Ipv6Addr, Option<Ipv6Addr>),
    Ipv6Flabel(u32, Option<u32>),
    Icmpv6Type(u8),
    Icmpv6Code(u8),
    Ipv6NdTarget(Ipv6Addr),
    Ipv6NdSll(MacAddr),
    Ipv6NdTll(MacAddr),
    MplsLabel(u32),
    MplsTc(u8),
    MplsBos(u8),
    /// PBB I-SID: 3 bytes on the wire; only the low 24 bits are emitted.
    PbbIsid(u32, Option<u32>),
    TunnelId(u64, Option<u64>),
    Ipv6Exthdr(u16, Option<u16>),
    /// `NXM_NX_REG0..15` (`reg0`..`reg15`): register `n` (0..=15), 32 bits.
    Reg(u8, u32, Option<u32>),
    /// `NXM_NX_TUN_IPV4_SRC` (`tun_src`): outer source of the tunnel the
    /// packet arrived on, or to set for its next encapsulation.
    TunIpv4Src(Ipv4Addr, Option<Ipv4Addr>),
    /// `NXM_NX_TUN_IPV4_DST` (`tun_dst`).
    TunIpv4Dst(Ipv4Addr, Option<Ipv4Addr>),
    /// `NXM_NX_PKT_MARK` (`pkt_mark`): the datapath's packet mark (skb mark).
    PktMark(u32, Option<u32>),
    /// `NXM_NX_CONJ_ID` (`conj_id`): the id of the `conjunction` that matched.
    ConjId(u32),
    /// `NXM_NX_CT_STATE` (`ct_state`), bits in [`crate::nicira::ct_state`].
    CtState(u32, Option<u32>),
    /// `NXM_NX_CT_ZONE` (`ct_zone`).
    CtZone(u16),
    /// `NXM_NX_CT_MARK` (`ct_mark`).
    CtMark(u32, Option<u32>),
    /// `NXM_NX_CT_LABEL` (`ct_label`): 128 bits, big-endian as on the wire
    /// (see [`crate::nicira::ct_label_match`] for a `u128`).
    CtLabel([u8; 16], Option<[u8; 16]>),
    /// Any other class/field (other Nicira NXM fields, experimenter 0xffff
    /// with its 4-byte experimenter id inside payload) or a field whose
    /// hasmask/length does not fit the typed form: kept byte-exact.
    /// `payload` = everything after the 4-byte OXM header (at most 255
    /// bytes; `field` is 7 bits).
    Raw {
        class: u16,
        field: u8,
        hasmask: bool,
        payload: Bytes,
    },
}

/// Value width in bytes of a typed `NXM_NX` field (without mask), and
/// whether it is maskable (Open vSwitch `meta-flow.h`).
fn nxm_nx_width(field: u8) -> Option<(usize, bool)> {
    use nxm_nx_field::*;
    Some(match field {
        REG0..=REG15 | TUN_IPV4_SRC | TUN_IPV4_DST | PKT_MARK | CT_STATE | CT_MARK => (4, true),
        CONJ_ID => (4, false),
        CT_ZONE => (2, false),
        CT_LABEL => (16, true),
        _ => return None,
    })
}

/// Builds the typed form of an `NXM_NX` field, or `None` when it is not
/// one of those typed or its width or mask flag does not fit.
fn typed_nxm_nx(field: u8, hasmask: bool, payload: &[u8]) -> Option<Oxm> {
    use nxm_nx_field::*;
    use Oxm::*;
    let (width, maskable) = nxm_nx_width(field)?;
    if (hasmask && !maskable) || payload.len() != width * (1 + usize::from(hasmask)) {
        return None;
    }
    let r = &mut Reader::new(payload, "nxm value");
    let m = hasmask;
    let oxm = match field {
        REG0..=REG15 => masked(r, m, Reader::u32)
            .map(|(v, k)| Reg(field, v, k))
            .ok()?,
        TUN_IPV4_SRC => masked(r, m, ipv4).map(|(v, k)| TunIpv4Src(v, k)).ok()?,
        TUN_IPV4_DST => masked(r, m, ipv4).map(|(v, k)| TunIpv4Dst(v, k)).ok()?,
        PKT_MARK => masked(r, m, Reader::u32).map(|(v, k)| PktMark(v, k)).ok()?,
        CONJ_ID => ConjId(r.u32().ok()?),
        CT_STATE => masked(r, m, Reader::u32).map(|(v, k)| CtState(v, k)).ok()?,
        CT_ZONE => CtZone(r.u16().ok()?),
        CT_MARK => masked(r, m, Reader::u32).map(|(v, k)| CtMark(v, k)).ok()?,
        CT_LABEL => masked(r, m, Reader::array::<16>)
            .map(|(v, k)| CtLabel(v, k))
            .ok()?,
        _ => return None,
    };
    Some(oxm)
}

/// Value width in bytes of a typed basic field (without mask).
fn basic_width(field: u8) -> Option<usize> {
    use oxm_field::*;
    Some(match field {
        IN_PORT | IN_PHY_PORT | IPV4_SRC | IPV4_DST | ARP_SPA | ARP_TPA | IPV6_FLABEL
        | MPLS_LABEL => 4,
        METADATA | TUNNEL_ID => 8,
        ETH_DST | ETH_SRC | ARP_SHA | ARP_THA | IPV6_ND_SLL | IPV6_ND_TLL => 6,
        ETH_TYPE | VLAN_VID | TCP_SRC | TCP_DST | UDP_SRC | UDP_DST | SCTP_SRC | SCTP_DST
        | ARP_OP | IPV6_EXTHDR => 2,
        VLAN_PCP | IP_DSCP | IP_ECN | IP_PROTO | ICMPV4_TYPE | ICMPV4_CODE | ICMPV6_TYPE
        | ICMPV6_CODE | MPLS_TC | MPLS_BOS => 1,
        IPV6_SRC | IPV6_DST | IPV6_ND_TARGET => 16,
        PBB_ISID => 3,
        _ => return None,
    })
}

fn mac(r: &mut Reader<'_>) -> Result<MacAddr> {
    r.array().map(MacAddr)
}

fn ipv4(r: &mut Reader<'_>) -> Result<Ipv4Addr> {
    r.array::<4>().map(Ipv4Addr::from)
}

fn ipv6(r: &mut Reader<'_>) -> Result<Ipv6Addr> {
    r.array::<16>().map(Ipv6Addr::from)
}

fn u24(r: &mut Reader<'_>) -> Result<u32> {
    let [a, b, c] = r.array::<3>()?;
    Ok(u32::from_be_bytes([0, a, b, c]))
}

/// Reads a value and, when `hasmask`, a mask of the same kind.
fn masked<'a, T>(
    r: &mut Reader<'a>,
    hasmask: bool,
    read: fn(&mut Reader<'a>) -> Result<T>,
) -> Result<(T, Option<T>)> {
    let v = read(r)?;
    let m = if hasmask { Some(read(r)?) } else { None };
    Ok((v, m))
}

/// Builds the typed form of a basic field, or `None` when the width or mask
/// flag does not fit (the caller then keeps it raw).
fn typed(field: u8, hasmask: bool, payload: &[u8]) -> Option<Oxm> {
    use oxm_field::*;
    use Oxm::*;
    let width = basic_width(field)?;
    let maskable = matches!(
        field,
        METADATA
            | ETH_DST
            | ETH_SRC
            | VLAN_VID
            | IPV4_SRC
            | IPV4_DST
            | ARP_SPA
            | ARP_TPA
            | ARP_SHA
            | ARP_THA
            | IPV6_SRC
            | IPV6_DST
            | IPV6_FLABEL
            | PBB_ISID
            | TUNNEL_ID
            | IPV6_EXTHDR
    );
    if hasmask && !maskable {
        return None;
    }
    if payload.len() != width * (1 + usize::from(hasmask)) {
        return None;
    }
    let r = &mut Reader::new(payload, "oxm value");
    let m = hasmask;
    let oxm = match field {
        IN_PORT => InPort(r.u32().ok()?),
        IN_PHY_PORT => InPhyPort(r.u32().ok()?),
        METADATA => masked(r, m, Reader::u64)
            .map(|(v, k)| Metadata(v, k))
            .ok()?,
        ETH_DST => masked(r, m, mac).map(|(v, k)| EthDst(v, k)).ok()?,
        ETH_SRC => masked(r, m, mac).map(|(v, k)| EthSrc(v, k)).ok()?,
        ETH_TYPE => EthType(r.u16().ok()?),
        VLAN_VID => masked(r, m, Reader::u16).map(|(v, k)| VlanVid(v, k)).ok()?,
        VLAN_PCP => VlanPcp(r.u8().ok()?),
        IP_DSCP => IpDscp(r.u8().ok()?),
        IP_ECN => IpEcn(r.u8().ok()?),
        IP_PROTO => IpProto(r.u8().ok()?),
        IPV4_SRC => masked(r, m, ipv4).map(|(v, k)| Ipv4Src(v, k)).ok()?,
        IPV4_DST => masked(r, m, ipv4).map(|(v, k)| Ipv4Dst(v, k)).ok()?,
        TCP_SRC => TcpSrc(r.u16().ok()?),
        TCP_DST => TcpDst(r.u16().ok()?),
        UDP_SRC => UdpSrc(r.u16().ok()?),
        UDP_DST => UdpDst(r.u16().ok()?),
        SCTP_SRC => SctpSrc(r.u16().ok()?),
        SCTP_DST => SctpDst(r.u16().ok()?),
        ICMPV4_TYPE => Icmpv4Type(r.u8().ok()?),
        ICMPV4_CODE => Icmpv4Code(r.u8().ok()?),
        ARP_OP => ArpOp(r.u16().ok()?),
        ARP_SPA => masked(r, m, ipv4).map(|(v, k)| ArpSpa(v, k)).ok()?,
        ARP_TPA => masked(r, m, ipv4).map(|(v, k)| ArpTpa(v, k)).ok()?,
        ARP_SHA => masked(r, m, mac).map(|(v, k)| ArpSha(v, k)).ok()?,
        ARP_THA => masked(r, m, mac).map(|(v, k)| ArpTha(v, k)).ok()?,
        IPV6_SRC => masked(r, m, ipv6).map(|(v, k)| Ipv6Src(v, k)).ok()?,
        IPV6_DST => masked(r, m, ipv6).map(|(v, k)| Ipv6Dst(v, k)).ok()?,
        IPV6_FLABEL => masked(r, m, Reader::u32)
            .map(|(v, k)| Ipv6Flabel(v, k))
            .ok()?,
        ICMPV6_TYPE => Icmpv6Type(r.u8().ok()?),
        ICMPV6_CODE => Icmpv6Code(r.u8().ok()?),
        IPV6_ND_TARGET => Ipv6NdTarget(ipv6(r).ok()?),
        IPV6_ND_SLL => Ipv6NdSll(mac(r).ok()?),
        IPV6_ND_TLL => Ipv6NdTll(mac(r).ok()?),
        MPLS_LABEL => MplsLabel(r.u32().ok()?),
        MPLS_TC => MplsTc(r.u8().ok()?),
        MPLS_BOS => MplsBos(r.u8().ok()?),
        PBB_ISID => masked(r, m, u24).map(|(v, k)| PbbIsid(v, k)).ok()?,
        TUNNEL_ID => masked(r, m, Reader::u64)
            .map(|(v, k)| TunnelId(v, k))
            .ok()?,
        IPV6_EXTHDR => masked(r, m, Reader::u16)
            .map(|(v, k)| Ipv6Exthdr(v, k))
            .ok()?,
        _ => return None,
    };
    Some(oxm)
}

impl Oxm {
    /// OXM class: 0x8000 for the basic fields, 0x0001 for the `NXM_NX` ones.
    #[inline]
    pub fn class(&self) -> u16 {
        use Oxm::*;
        match self {
            Raw { class, .. } => *class,
            Reg(..) | TunIpv4Src(..) | TunIpv4Dst(..) | PktMark(..) | ConjId(_) | CtState(..)
            | CtZone(_) | CtMark(..) | CtLabel(..) => OFPXMC_NXM_1,
            _ => OFPXMC_OPENFLOW_BASIC,
        }
    }

    /// OXM field number within its class (7 bits).
    #[inline]
    pub fn field(&self) -> u8 {
        use oxm_field::*;
        use Oxm::*;
        match self {
            InPort(_) => IN_PORT,
            InPhyPort(_) => IN_PHY_PORT,
            Metadata(..) => METADATA,
            EthDst(..) => ETH_DST,
            EthSrc(..) => ETH_SRC,
            EthType(_) => ETH_TYPE,
            VlanVid(..) => VLAN_VID,
            VlanPcp(_) => VLAN_PCP,
            IpDscp(_) => IP_DSCP,
            IpEcn(_) => IP_ECN,
            IpProto(_) => IP_PROTO,
            Ipv4Src(..) => IPV4_SRC,
            Ipv4Dst(..) => IPV4_DST,
            TcpSrc(_) => TCP_SRC,
            TcpDst(_) => TCP_DST,
            UdpSrc(_) => UDP_SRC,
            UdpDst(_) => UDP_DST,
            SctpSrc(_) => SCTP_SRC,
            SctpDst(_) => SCTP_DST,
            Icmpv4Type(_) => ICMPV4_TYPE,
            Icmpv4Code(_) => ICMPV4_CODE,
            ArpOp(_) => ARP_OP,
            ArpSpa(..) => ARP_SPA,
            ArpTpa(..) => ARP_TPA,
            ArpSha(..) => ARP_SHA,
            ArpTha(..) => ARP_THA,
            Ipv6Src(..) => IPV6_SRC,
            Ipv6Dst(..) => IPV6_DST,
            Ipv6Flabel(..) => IPV6_FLABEL,
            Icmpv6Type(_) => ICMPV6_TYPE,
            Icmpv6Code(_) => ICMPV6_CODE,
            Ipv6NdTarget(_) => IPV6_ND_TARGET,
            Ipv6NdSll(_) => IPV6_ND_SLL,
            Ipv6NdTll(_) => IPV6_ND_TLL,
            MplsLabel(_) => MPLS_LABEL,
            MplsTc(_) => MPLS_TC,
            MplsBos(_) => MPLS_BOS,
            PbbIsid(..) => PBB_ISID,
            TunnelId(..) => TUNNEL_ID,
            Ipv6Exthdr(..) => IPV6_EXTHDR,
            Reg(n, ..) => *n & 0x7f,
            TunIpv4Src(..) => nxm_nx_field::TUN_IPV4_SRC,
            TunIpv4Dst(..) => nxm_nx_field::TUN_IPV4_DST,
            PktMark(..) => nxm_nx_field::PKT_MARK,
            ConjId(_) => nxm_nx_field::CONJ_ID,
            CtState(..) => nxm_nx_field::CT_STATE,
            CtZone(_) => nxm_nx_field::CT_ZONE,
            CtMark(..) => nxm_nx_field::CT_MARK,
            CtLabel(..) => nxm_nx_field::CT_LABEL,
            Raw { field, .. } => *field & 0x7f,
        }
    }

    /// Whether a mask follows the value on the wire.
    #[inline]
    pub fn hasmask(&self) -> bool {
        use Oxm::*;
        match self {
            Metadata(_, m) | TunnelId(_, m) => m.is_some(),
            EthDst(_, m) | EthSrc(_, m) | ArpSha(_, m) | ArpTha(_, m) => m.is_some(),
            VlanVid(_, m) | Ipv6Exthdr(_, m) => m.is_some(),
            Ipv4Src(_, m) | Ipv4Dst(_, m) | ArpSpa(_, m) | ArpTpa(_, m) => m.is_some(),
            Ipv6Src(_, m) | Ipv6Dst(_, m) => m.is_some(),
            Ipv6Flabel(_, m) | PbbIsid(_, m) => m.is_some(),
            Reg(_, _, m) | PktMark(_, m) | CtState(_, m) | CtMark(_, m) => m.is_some(),
            TunIpv4Src(_, m) | TunIpv4Dst(_, m) => m.is_some(),
            CtLabel(_, m) => m.is_some(),
            Raw { hasmask, .. } => *hasmask,
            _ => false,
        }
    }

    /// The OXM header's length byte: value plus mask.
    pub fn payload_len(&self) -> usize {
        use Oxm::*;
        // `width` bytes of value, as many again of mask when there is one.
        fn masked<T>(width: usize, mask: &Option<T>) -> usize {
            width << usize::from(mask.is_some())
        }
        // One match straight to the length (not through `field()` and the
        // parser's width tables): this runs for every field of every match
        // encoded, twice (length, then emit).
        match self {
            VlanPcp(_) | IpDscp(_) | IpEcn(_) | IpProto(_) | Icmpv4Type(_) | Icmpv4Code(_)
            | Icmpv6Type(_) | Icmpv6Code(_) | MplsTc(_) | MplsBos(_) => 1,
            EthType(_) | TcpSrc(_) | TcpDst(_) | UdpSrc(_) | UdpDst(_) | SctpSrc(_)
            | SctpDst(_) | ArpOp(_) | CtZone(_) => 2,
            InPort(_) | InPhyPort(_) | MplsLabel(_) | ConjId(_) => 4,
            Ipv6NdSll(_) | Ipv6NdTll(_) => 6,
            Ipv6NdTarget(_) => 16,
            VlanVid(_, m) | Ipv6Exthdr(_, m) => masked(2, m),
            PbbIsid(_, m) => masked(3, m),
            Ipv4Src(_, m)
            | Ipv4Dst(_, m)
            | ArpSpa(_, m)
            | ArpTpa(_, m)
            | TunIpv4Src(_, m)
            | TunIpv4Dst(_, m) => masked(4, m),
            Ipv6Flabel(_, m) | Reg(_, _, m) | PktMark(_, m) | CtState(_, m) | CtMark(_, m) => {
                masked(4, m)
            }
            EthDst(_, m) | EthSrc(_, m) | ArpSha(_, m) | ArpTha(_, m) => masked(6, m),
            Metadata(_, m) | TunnelId(_, m) => masked(8, m),
            Ipv6Src(_, m) | Ipv6Dst(_, m) => masked(16, m),
            CtLabel(_, m) => masked(16, m),
            Raw { payload, .. } => payload.len(),
        }
    }

    /// Sort key used to compare matches independently of field order.
    pub fn sort_key(&self) -> (u16, u8) {
        (self.class(), self.field())
    }

    fn emit_payload(&self, out: &mut BytesMut) {
        use Oxm::*;
        fn put_mac(out: &mut BytesMut, v: &MacAddr, m: &Option<MacAddr>) {
            out.put_slice(&v.0);
            if let Some(m) = m {
                out.put_slice(&m.0);
            }
        }
        fn put_v4(out: &mut BytesMut, v: &Ipv4Addr, m: &Option<Ipv4Addr>) {
            out.put_slice(&v.octets());
            if let Some(m) = m {
                out.put_slice(&m.octets());
            }
        }
        fn put_v6(out: &mut BytesMut, v: &Ipv6Addr, m: &Option<Ipv6Addr>) {
            out.put_slice(&v.octets());
            if let Some(m) = m {
                out.put_slice(&m.octets());
            }
        }
        match self {
            InPort(v) | InPhyPort(v) | MplsLabel(v) | ConjId(v) => out.put_u32(*v),
            Reg(_, v, m) | PktMark(v, m) | CtState(v, m) | CtMark(v, m) => {
                out.put_u32(*v);
                if let Some(m) = m {
                    out.put_u32(*m);
                }
            }
            TunIpv4Src(v, m) | TunIpv4Dst(v, m) => put_v4(out, v, m),
            CtZone(v) => out.put_u16(*v),
            CtLabel(v, m) => {
                out.put_slice(v);
                if let Some(m) = m {
                    out.put_slice(m);
                }
            }
            Metadata(v, m) | TunnelId(v, m) => {
                out.put_u64(*v);
                if let Some(m) = m {
                    out.put_u64(*m);
                }
            }
            EthDst(v, m) | EthSrc(v, m) | ArpSha(v, m) | ArpTha(v, m) => put_mac(out, v, m),
            Ipv6NdSll(v) | Ipv6NdTll(v) => out.put_slice(&v.0),
            EthType(v) | TcpSrc(v) | TcpDst(v) | UdpSrc(v) | UdpDst(v) | SctpSrc(v)
            | SctpDst(v) | ArpOp(v) => out.put_u16(*v),
            VlanVid(v, m) | Ipv6Exthdr(v, m) => {
                out.put_u16(*v);
                if let Some(m) = m {
                    out.put_u16(*m);
                }
            }
            VlanPcp(v) | IpDscp(v) | IpEcn(v) | IpProto(v) | Icmpv4Type(v) | Icmpv4Code(v)
            | Icmpv6Type(v) | Icmpv6Code(v) | MplsTc(v) | MplsBos(v) => out.put_u8(*v),
            Ipv4Src(v, m) | Ipv4Dst(v, m) | ArpSpa(v, m) | ArpTpa(v, m) => put_v4(out, v, m),
            Ipv6Src(v, m) | Ipv6Dst(v, m) => put_v6(out, v, m),
            Ipv6NdTarget(v) => out.put_slice(&v.octets()),
            Ipv6Flabel(v, m) => {
                out.put_u32(*v);
                if let Some(m) = m {
                    out.put_u32(*m);
                }
            }
            PbbIsid(v, m) => {
                out.put_slice(&v.to_be_bytes()[1..]);
                if let Some(m) = m {
                    out.put_slice(&m.to_be_bytes()[1..]);
                }
            }
            Raw { payload, .. } => out.put_slice(payload),
        }
    }
}

impl Wire for Oxm {
    #[inline]
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let class = r.u16()?;
        let fh = r.u8()?;
        let len = usize::from(r.u8()?);
        let (field, hasmask) = (fh >> 1, fh & 1 == 1);
        // No OXM has an empty payload, and experimenter OXMs carry a 4-byte id.
        let min = if class == OFPXMC_EXPERIMENTER { 4 } else { 1 };
        if len < min {
            return Err(DecodeError::BadLength { what: "oxm", len });
        }
        let payload = r.bytes(len)?;
        let typed = match class {
            OFPXMC_OPENFLOW_BASIC => typed(field, hasmask, payload),
            OFPXMC_NXM_1 => typed_nxm_nx(field, hasmask, payload),
            _ => None,
        };
        if let Some(oxm) = typed {
            return Ok(oxm);
        }
        Ok(Oxm::Raw {
            class,
            field,
            hasmask,
            payload: Bytes::copy_from_slice(payload),
        })
    }

    fn buffer_len(&self) -> usize {
        4 + self.payload_len()
    }

    fn emit(&self, out: &mut BytesMut) {
        out.put_u16(self.class());
        out.put_u8((self.field() << 1) | u8::from(self.hasmask()));
        out.put_u8(u8::try_from(self.payload_len()).unwrap_or(u8::MAX));
        self.emit_payload(out);
    }
}

/// Parses OXM TLVs until `r` is exhausted (a trailing partial header is an error).
#[inline]
pub fn parse_oxms(r: &mut Reader<'_>) -> Result<MatchFields> {
    let mut out = MatchFields::new();
    while !r.is_empty() {
        out.push(Oxm::parse(r)?);
    }
    Ok(out)
}

/// `ofp_match` with OXM fields. An empty match matches every packet.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Match {
    pub fields: MatchFields,
}

/// A match's fields. One is held inline: a packet-in's match (its
/// `in_port`) parses without an allocation.
pub type MatchFields = smallvec::SmallVec<[Oxm; 1]>;

/// Generates `Option` accessors for typed single-value fields.
macro_rules! exact_accessors {
    ($($(#[$doc:meta])* $name:ident => $variant:ident : $ty:ty;)*) => {$(
        $(#[$doc])*
        pub fn $name(&self) -> Option<$ty> {
            self.fields.iter().find_map(|f| match f {
                Oxm::$variant(v) => Some(*v),
                _ => None,
            })
        }
    )*};
}

/// Generates accessors for maskable fields returning `(value, mask)`.
macro_rules! masked_accessors {
    ($($(#[$doc:meta])* $name:ident => $variant:ident : $ty:ty;)*) => {$(
        $(#[$doc])*
        pub fn $name(&self) -> Option<($ty, Option<$ty>)> {
            self.fields.iter().find_map(|f| match f {
                Oxm::$variant(v, m) => Some((*v, *m)),
                _ => None,
            })
        }
    )*};
}

impl Match {
    /// [`Wire::parse`] of any match, field by field.
    #[inline(never)]
    fn parse_fields(r: &mut Reader<'_>) -> Result<Self> {
        let ty = r.u16()?;
        if ty != OFPMT_OXM {
            return Err(DecodeError::Invalid {
                what: "match type",
                value: u64::from(ty),
            });
        }
        let len = usize::from(r.u16()?);
        if len < 4 {
            return Err(DecodeError::BadLength { what: "match", len });
        }
        let mut body = r.sub(len - 4, "match fields")?;
        let fields = parse_oxms(&mut body)?;
        r.skip(pad8(len))?;
        Ok(Match { fields })
    }

    /// The empty (match-all) match.
    pub fn new() -> Self {
        Match::default()
    }

    /// Builder: appends a field.
    pub fn with(mut self, field: Oxm) -> Self {
        self.fields.push(field);
        self
    }

    /// Appends a field.
    pub fn push(&mut self, field: Oxm) {
        self.fields.push(field);
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The first field with this class and field number.
    pub fn get(&self, class: u16, field: u8) -> Option<&Oxm> {
        self.fields
            .iter()
            .find(|f| f.class() == class && f.field() == field)
    }

    /// The first `OFPXMC_OPENFLOW_BASIC` field with this number (see [`oxm_field`]).
    pub fn get_basic(&self, field: u8) -> Option<&Oxm> {
        self.get(OFPXMC_OPENFLOW_BASIC, field)
    }

    /// The same fields sorted by (class, field). Switches may return a flow's
    /// match in another order than it was sent; the reconciler compares
    /// normalized matches.
    pub fn normalized(&self) -> Match {
        let mut fields = self.fields.clone();
        fields.sort_by_key(Oxm::sort_key);
        Match { fields }
    }

    /// Length of the `ofp_match` excluding trailing padding (its `length` field).
    pub fn unpadded_len(&self) -> usize {
        4 + self.fields.iter().map(Wire::buffer_len).sum::<usize>()
    }

    exact_accessors! {
        in_port => InPort: u32;
        in_phy_port => InPhyPort: u32;
        eth_type => EthType: u16;
        vlan_pcp => VlanPcp: u8;
        ip_dscp => IpDscp: u8;
        ip_proto => IpProto: u8;
        tcp_src => TcpSrc: u16;
        tcp_dst => TcpDst: u16;
        udp_src => UdpSrc: u16;
        udp_dst => UdpDst: u16;
        icmpv4_type => Icmpv4Type: u8;
        icmpv4_code => Icmpv4Code: u8;
        arp_op => ArpOp: u16;
        mpls_label => MplsLabel: u32;
    }

    masked_accessors! {
        metadata => Metadata: u64;
        eth_dst => EthDst: MacAddr;
        eth_src => EthSrc: MacAddr;
        /// VLAN_VID including the OFPVID_PRESENT bit.
        vlan_vid => VlanVid: u16;
        ipv4_src => Ipv4Src: Ipv4Addr;
        ipv4_dst => Ipv4Dst: Ipv4Addr;
        arp_spa => ArpSpa: Ipv4Addr;
        arp_tpa => ArpTpa: Ipv4Addr;
        ipv6_src => Ipv6Src: Ipv6Addr;
        ipv6_dst => Ipv6Dst: Ipv6Addr;
        tunnel_id => TunnelId: u64;
    }
}

impl FromIterator<Oxm> for Match {
    fn from_iter<I: IntoIterator<Item = Oxm>>(iter: I) -> Self {
        Match {
            fields: iter.into_iter().collect(),
        }
    }
}

impl Wire for Match {
    #[inline(always)]
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        // The match of nearly every packet-in: OXM_OF_IN_PORT alone,
        // padded to 16 bytes. Read whole, skipping the field-by-field walk,
        // and inlined into the packet-in parser, whose result then stays in
        // registers instead of being copied through memory.
        if let Some([0, 1, 0, 12, 0x80, 0, 0, 4, p0, p1, p2, p3, ..]) = r.peek_array::<16>() {
            r.skip(16)?;
            let port = u32::from_be_bytes([p0, p1, p2, p3]);
            return Ok(Match {
                fields: smallvec::smallvec![Oxm::InPort(port)],
            });
        }
        Match::parse_fields(r)
    }

    fn buffer_len(&self) -> usize {
        round8(self.unpadded_len())
    }

    fn emit(&self, out: &mut BytesMut) {
        let len = self.unpadded_len();
        out.put_u16(OFPMT_OXM);
        out.put_u16(crate::wire::len16(len));
        for f in &self.fields {
            f.emit(out);
        }
        put_zeros(out, pad8(len));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategies::{arb_match, arb_oxm};
    use proptest::prelude::*;

    fn emit<W: Wire>(w: &W) -> Vec<u8> {
        let mut out = BytesMut::new();
        w.emit(&mut out);
        assert_eq!(out.len(), w.buffer_len());
        out.to_vec()
    }

    fn parse_all<W: Wire>(b: &[u8]) -> Result<W> {
        let mut r = Reader::new(b, "test");
        let w = W::parse(&mut r)?;
        r.finish()?;
        Ok(w)
    }

    #[test]
    fn in_port_fixture() {
        let bytes = [0x80, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x07];
        let oxm: Oxm = parse_all(&bytes).unwrap();
        assert_eq!(oxm, Oxm::InPort(7));
        assert_eq!(emit(&oxm), bytes);
    }

    #[test]
    fn masked_eth_dst_fixture() {
        let bytes = [
            0x80, 0x00, 0x07, 0x0c, // class, field 3 << 1 | 1, len 12
            0x01, 0x00, 0x5e, 0x00, 0x00, 0x01, // value
            0xff, 0xff, 0xff, 0x00, 0x00, 0x00, // mask
        ];
        let oxm: Oxm = parse_all(&bytes).unwrap();
        assert_eq!(
            oxm,
            Oxm::EthDst(
                MacAddr([1, 0, 0x5e, 0, 0, 1]),
                Some(MacAddr([0xff, 0xff, 0xff, 0, 0, 0]))
            )
        );
        assert_eq!(emit(&oxm), bytes);
    }

    #[test]
    fn pbb_isid_is_three_bytes() {
        let bytes = [0x80, 0x00, 0x4a, 0x03, 0x12, 0x34, 0x56];
        let oxm: Oxm = parse_all(&bytes).unwrap();
        assert_eq!(oxm, Oxm::PbbIsid(0x12_3456, None));
        assert_eq!(emit(&oxm), bytes);
    }

    #[test]
    fn nicira_fields_typed_by_class_and_field() {
        // NXM_NX_REG0 (class 1, field 0), 4 bytes: not the basic IN_PORT.
        let bytes = [0x00, 0x01, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef];
        let oxm: Oxm = parse_all(&bytes).unwrap();
        assert_eq!(oxm, Oxm::Reg(0, 0xdead_beef, None));
        assert_eq!(emit(&oxm), bytes);
        // NXM_NX_REG15 masked (field 15 << 1 | 1).
        let bytes = [0x00, 0x01, 0x1f, 0x08, 0, 0, 0, 5, 0, 0, 0, 0xff];
        let oxm: Oxm = parse_all(&bytes).unwrap();
        assert_eq!(oxm, Oxm::Reg(15, 5, Some(0xff)));
        assert_eq!(emit(&oxm), bytes);
        // NXM_NX_TUN_IPV4_DST (field 32).
        let bytes = [0x00, 0x01, 0x40, 0x04, 192, 0, 2, 1];
        let oxm: Oxm = parse_all(&bytes).unwrap();
        assert_eq!(oxm, Oxm::TunIpv4Dst(Ipv4Addr::new(192, 0, 2, 1), None));
        assert_eq!(emit(&oxm), bytes);
    }

    #[test]
    fn nicira_fields_of_odd_shape_or_unknown_kept_raw() {
        let cases: [&[u8]; 4] = [
            // ct_zone with a mask: not maskable.
            &[0x00, 0x01, 0xd5, 0x04, 0, 7, 0xff, 0xff],
            // conj_id with a mask.
            &[0x00, 0x01, 0x4b, 0x08, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff],
            // reg1 of 2 bytes.
            &[0x00, 0x01, 0x02, 0x02, 0, 1],
            // NXM_NX_TUN_ID (field 16), not typed here.
            &[0x00, 0x01, 0x20, 0x08, 0, 0, 0, 0, 0, 0, 0, 9],
        ];
        for bytes in cases {
            let oxm: Oxm = parse_all(bytes).unwrap();
            assert!(
                matches!(
                    oxm,
                    Oxm::Raw {
                        class: OFPXMC_NXM_1,
                        ..
                    }
                ),
                "{oxm:?}"
            );
            assert_eq!(emit(&oxm), bytes);
        }
        // The basic class's field 0 stays IN_PORT.
        assert_eq!(
            parse_all::<Oxm>(&[0x80, 0x00, 0x00, 0x04, 0, 0, 0, 1]).unwrap(),
            Oxm::InPort(1)
        );
    }

    #[test]
    fn basic_field_with_odd_shape_kept_raw() {
        // IN_PORT with hasmask set (not maskable) and an 8-byte payload.
        let bytes = [0x80, 0x00, 0x01, 0x08, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff];
        let oxm: Oxm = parse_all(&bytes).unwrap();
        assert!(matches!(
            oxm,
            Oxm::Raw {
                class: 0x8000,
                field: 0,
                hasmask: true,
                ..
            }
        ));
        assert_eq!(emit(&oxm), bytes);
        // ETH_TYPE with 3 bytes.
        let bytes = [0x80, 0x00, 0x0a, 0x03, 0x08, 0x00, 0x00];
        let oxm: Oxm = parse_all(&bytes).unwrap();
        assert!(matches!(oxm, Oxm::Raw { field: 5, .. }));
        assert_eq!(emit(&oxm), bytes);
    }

    #[test]
    fn oxm_errors() {
        // Zero length.
        assert!(matches!(
            parse_all::<Oxm>(&[0x80, 0x00, 0x00, 0x00]),
            Err(DecodeError::BadLength { .. })
        ));
        // Experimenter class without room for the experimenter id.
        assert!(matches!(
            parse_all::<Oxm>(&[0xff, 0xff, 0x00, 0x02, 0, 0]),
            Err(DecodeError::BadLength { .. })
        ));
        // Length past the end.
        assert!(matches!(
            parse_all::<Oxm>(&[0x80, 0x00, 0x00, 0x04, 0, 0]),
            Err(DecodeError::Truncated { .. })
        ));
        // Truncated header.
        assert!(parse_all::<Oxm>(&[0x80, 0x00]).is_err());
    }

    #[test]
    fn match_fixture() {
        // in_port=1, eth_type=0x0800: length 4 + 8 + 6 = 18, padded to 24.
        let bytes = [
            0x00, 0x01, 0x00, 0x12, // OFPMT_OXM, len 18
            0x80, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01, // in_port
            0x80, 0x00, 0x0a, 0x02, 0x08, 0x00, // eth_type
            0, 0, 0, 0, 0, 0, // pad
        ];
        let m: Match = parse_all(&bytes).unwrap();
        let want = Match::new().with(Oxm::InPort(1)).with(Oxm::EthType(0x0800));
        assert_eq!(m, want);
        assert_eq!(m.in_port(), Some(1));
        assert_eq!(m.eth_type(), Some(0x0800));
        assert_eq!(m.ip_proto(), None);
        assert_eq!(emit(&m), bytes);
    }

    #[test]
    fn an_in_port_only_match_reads_as_the_field_walk_would() {
        // The packet-in shape, read whole: in_port=0x01020304, padded to 16.
        let bytes = [
            0x00, 0x01, 0x00, 0x0c, 0x80, 0x00, 0x00, 0x04, 1, 2, 3, 4, 0, 0, 0, 0,
        ];
        let m: Match = parse_all(&bytes).unwrap();
        assert_eq!(m, Match::new().with(Oxm::InPort(0x0102_0304)));
        assert_eq!(emit(&m), bytes);
        // Cut short, it is an error, never a partial read.
        assert!(parse_all::<Match>(&bytes[..15]).is_err());
        // The same length with a masked field is no in_port.
        let mut masked = bytes;
        masked[6] = 0x01;
        assert_ne!(parse_all::<Match>(&masked).ok(), Some(m));
    }

    #[test]
    fn empty_match_is_eight_bytes() {
        let bytes = [0, 1, 0, 4, 0, 0, 0, 0];
        let m: Match = parse_all(&bytes).unwrap();
        assert!(m.is_empty());
        assert_eq!(emit(&m), bytes);
    }

    #[test]
    fn match_errors() {
        // OFPMT_STANDARD is not OF1.3.
        assert!(matches!(
            parse_all::<Match>(&[0, 0, 0, 4, 0, 0, 0, 0]),
            Err(DecodeError::Invalid { .. })
        ));
        // Length below the header.
        assert!(matches!(
            parse_all::<Match>(&[0, 1, 0, 2, 0, 0, 0, 0]),
            Err(DecodeError::BadLength { .. })
        ));
        // Missing padding.
        assert!(parse_all::<Match>(&[0, 1, 0, 6, 0x80, 0]).is_err());
        // A field that straddles the declared match length.
        let bytes = [0, 1, 0, 6, 0x80, 0, 0, 4, 0, 0, 0, 1];
        assert!(parse_all::<Match>(&bytes).is_err());
    }

    #[test]
    fn normalized_sorts_by_class_then_field() {
        let raw = Oxm::Raw {
            class: OFPXMC_NXM_1,
            field: 3,
            hasmask: false,
            payload: Bytes::from_static(&[0; 4]),
        };
        let m = Match::new()
            .with(Oxm::TcpDst(80))
            .with(Oxm::InPort(2))
            .with(raw.clone())
            .with(Oxm::EthType(0x800));
        let n = m.normalized();
        assert_eq!(
            n.fields.as_slice(),
            [raw, Oxm::InPort(2), Oxm::EthType(0x800), Oxm::TcpDst(80)]
        );
        assert_eq!(n.normalized(), n);
    }

    proptest! {
        #[test]
        fn oxm_round_trip(oxm in arb_oxm()) {
            let bytes = emit(&oxm);
            prop_assert_eq!(parse_all::<Oxm>(&bytes).unwrap(), oxm);
        }

        #[test]
        fn match_round_trip(m in arb_match()) {
            let bytes = emit(&m);
            prop_assert_eq!(bytes.len() % 8, 0);
            prop_assert_eq!(parse_all::<Match>(&bytes).unwrap(), m);
        }

        #[test]
        fn oxm_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = parse_all::<Oxm>(&bytes);
            let _ = parse_all::<Match>(&bytes);
        }
    }
}
