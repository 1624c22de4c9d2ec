//! What a policy (a firewall rule, a QoS policy) matches, its validation
//! and its compilation to OpenFlow matches.

use bytes::Bytes;
use flowgate_openflow::{oxm_field, Match, Oxm, OFPXMC_OPENFLOW_BASIC};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::values::*;

/// What a policy matches. Absent fields match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PacketMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "00:00:00:00:00:01")]
    pub eth_src: Option<Mac>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "00:00:00:00:00:02")]
    pub eth_dst: Option<Mac>,
    /// Ethertype as a number or `0x`-hex string. Implied by the IP fields;
    /// ARP and LLDP always pass policies (Flowgate needs them) and cannot
    /// be matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eth_type: Option<EthType>,
    /// IPv4 or IPv6 prefix, `10.0.0.0/24`, `2001:db8::/32`, or an address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "10.0.0.0/24")]
    pub ip_src: Option<Cidr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "10.0.0.2")]
    pub ip_dst: Option<Cidr>,
    /// `tcp`, `udp`, `icmp`, `icmpv6` or a protocol number. Without an IP
    /// version (from `eth_type` or an address), the rule covers both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_proto: Option<IpProto>,
    /// TCP/UDP source port or range (`1024-65535`); needs ip_proto tcp/udp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_port: Option<PortRange>,
    /// TCP/UDP destination port or range; needs ip_proto tcp/udp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<PortRange>,
    /// ICMP (or ICMPv6) type; needs ip_proto icmp/icmpv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_code: Option<u8>,
    /// The IP DSCP (0..63); needs IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 63)]
    pub dscp: Option<u8>,
}

impl PacketMatch {
    /// Whether some packet matches both (`a`, `b`: their ethertypes as
    /// validated): every field both constrain must admit a common value.
    pub fn overlaps(&self, a: EthTypes, other: &PacketMatch, b: EthTypes) -> bool {
        fn both<T>(x: &Option<T>, y: &Option<T>, common: impl Fn(&T, &T) -> bool) -> bool {
            match (x, y) {
                (Some(x), Some(y)) => common(x, y),
                _ => true,
            }
        }
        let (ma, mb) = (self, other);
        both(&ma.eth_src, &mb.eth_src, PartialEq::eq)
            && both(&ma.eth_dst, &mb.eth_dst, PartialEq::eq)
            && a.intersects(b)
            && both(&ma.ip_src, &mb.ip_src, |x, y| x.intersects(*y))
            && both(&ma.ip_dst, &mb.ip_dst, |x, y| x.intersects(*y))
            && both(&ma.ip_proto, &mb.ip_proto, PartialEq::eq)
            && both(&ma.src_port, &mb.src_port, |x, y| x.intersects(*y))
            && both(&ma.dst_port, &mb.dst_port, |x, y| x.intersects(*y))
            && both(&ma.icmp_type, &mb.icmp_type, PartialEq::eq)
            && both(&ma.icmp_code, &mb.icmp_code, PartialEq::eq)
            && both(&ma.dscp, &mb.dscp, PartialEq::eq)
    }

    /// The ethertypes the match implies, or the field that contradicts.
    pub fn eth_types(&self) -> Result<EthTypes, FieldError> {
        // Each constraint narrows the set of possible IP versions.
        let mut v4 = true;
        let mut v6 = true;
        let mut ip_needed: Option<&str> = None;
        let mut narrow = |field: &str, family: Family| -> Result<(), FieldError> {
            let (keep4, keep6) = (family == Family::V4, family == Family::V6);
            if !(v4 && keep4 || v6 && keep6) {
                return Err(FieldError::new(
                    field,
                    format!("is {} but other fields of the match are not", family.name()),
                ));
            }
            v4 &= keep4;
            v6 &= keep6;
            Ok(())
        };
        for (field, cidr) in [
            ("match.ip_src", &self.ip_src),
            ("match.ip_dst", &self.ip_dst),
        ] {
            if let Some(c) = cidr {
                ip_needed.get_or_insert(field);
                narrow(field, c.family())?;
            }
        }
        if let Some(dscp) = self.dscp {
            if dscp > MAX_DSCP {
                return Err(FieldError::new(
                    "match.dscp",
                    format!("{dscp} is not a DSCP (0..{MAX_DSCP})"),
                ));
            }
            ip_needed.get_or_insert("match.dscp");
        }
        if let Some(proto) = self.ip_proto {
            ip_needed.get_or_insert("match.ip_proto");
            match proto.0 {
                PROTO_ICMP => narrow("match.ip_proto", Family::V4)?,
                PROTO_ICMPV6 => narrow("match.ip_proto", Family::V6)?,
                _ => {}
            }
        }
        let proto = self.ip_proto.map(|p| p.0);
        for (field, set) in [
            ("match.src_port", self.src_port.is_some()),
            ("match.dst_port", self.dst_port.is_some()),
        ] {
            if set && !matches!(proto, Some(PROTO_TCP | PROTO_UDP)) {
                return Err(FieldError::new(
                    field,
                    "ports need ip_proto tcp (6) or udp (17)",
                ));
            }
        }
        for (field, set) in [
            ("match.icmp_type", self.icmp_type.is_some()),
            ("match.icmp_code", self.icmp_code.is_some()),
        ] {
            if set && !matches!(proto, Some(PROTO_ICMP | PROTO_ICMPV6)) {
                return Err(FieldError::new(
                    field,
                    "needs ip_proto icmp (1) or icmpv6 (58)",
                ));
            }
        }
        match self.eth_type.map(|e| e.0) {
            Some(ETH_TYPE_ARP | ETH_TYPE_LLDP) => Err(FieldError::new(
                "match.eth_type",
                "ARP and LLDP always pass policies (Flowgate needs them); \
                 they cannot be matched",
            )),
            Some(ETH_TYPE_IPV4) => narrow("match.eth_type", Family::V4).map(|_| EthTypes::Ip {
                v4: true,
                v6: false,
            }),
            Some(ETH_TYPE_IPV6) => narrow("match.eth_type", Family::V6).map(|_| EthTypes::Ip {
                v4: false,
                v6: true,
            }),
            Some(other) => match ip_needed {
                Some(field) => Err(FieldError::new(
                    field,
                    format!("needs IP, but match.eth_type is {other:#06x}"),
                )),
                None => Ok(EthTypes::Other(other)),
            },
            None if ip_needed.is_some() => Ok(EthTypes::Ip { v4, v6 }),
            None => Ok(EthTypes::Any),
        }
    }

    /// Flow entries per IP version: the product of the port ranges' prefix
    /// blocks.
    pub fn flows_per_family(&self) -> usize {
        let blocks = |p: &Option<PortRange>| p.map_or(1, |r| r.blocks().len());
        blocks(&self.src_port) * blocks(&self.dst_port)
    }
}

impl PacketMatch {
    /// The OpenFlow matches of this match, each with the fields of `scope`:
    /// one per IP version of `types` and port block (or one without an
    /// ethertype when it constrains none).
    pub fn to_matches(&self, types: EthTypes, scope: &Match) -> Vec<Match> {
        let m = self;
        let mut base = scope.clone();
        if let Some(mac) = m.eth_src {
            base = base.with(Oxm::EthSrc(mac.0, None));
        }
        if let Some(mac) = m.eth_dst {
            base = base.with(Oxm::EthDst(mac.0, None));
        }
        let families = types.families();
        if families.is_empty() {
            if let Some(t) = m.eth_type {
                base = base.with(Oxm::EthType(t.0));
            }
            return vec![base];
        }
        let mut out = Vec::new();
        for family in families {
            let mut fm = base.clone().with(Oxm::EthType(family.eth_type()));
            fm.fields.extend(m.dscp.map(Oxm::IpDscp));
            for (cidr, src) in [(m.ip_src, true), (m.ip_dst, false)] {
                let Some(c) = cidr.filter(|c| !c.is_any()) else {
                    continue;
                };
                let field = match (family, src) {
                    (Family::V4, true) => c.v4().map(|(a, k)| Oxm::Ipv4Src(a, k)),
                    (Family::V4, false) => c.v4().map(|(a, k)| Oxm::Ipv4Dst(a, k)),
                    (Family::V6, true) => c.v6().map(|(a, k)| Oxm::Ipv6Src(a, k)),
                    (Family::V6, false) => c.v6().map(|(a, k)| Oxm::Ipv6Dst(a, k)),
                };
                fm.fields.extend(field);
            }
            let Some(proto) = m.ip_proto else {
                out.push(fm);
                continue;
            };
            fm = fm.with(Oxm::IpProto(proto.0));
            match family {
                Family::V4 => {
                    fm.fields.extend(m.icmp_type.map(Oxm::Icmpv4Type));
                    fm.fields.extend(m.icmp_code.map(Oxm::Icmpv4Code));
                }
                Family::V6 => {
                    fm.fields.extend(m.icmp_type.map(Oxm::Icmpv6Type));
                    fm.fields.extend(m.icmp_code.map(Oxm::Icmpv6Code));
                }
            }
            let tcp = proto.0 == PROTO_TCP;
            let blocks = |range: Option<PortRange>, src: bool| -> Vec<Option<Oxm>> {
                match range {
                    None => vec![None],
                    Some(r) => r
                        .blocks()
                        .into_iter()
                        .map(|(value, mask)| port_field(tcp, src, value, mask))
                        .collect(),
                }
            };
            for s in blocks(m.src_port, true) {
                for d in blocks(m.dst_port, false) {
                    let mut pm = fm.clone();
                    pm.fields.extend(s.clone());
                    pm.fields.extend(d);
                    out.push(pm);
                }
            }
        }
        out
    }
}

/// A TCP/UDP port match: exact as the typed field, a block as a masked
/// OXM (Open vSwitch accepts masks on L4 ports), none for all ports.
fn port_field(tcp: bool, src: bool, value: u16, mask: u16) -> Option<Oxm> {
    let exact = match (tcp, src) {
        (true, true) => Oxm::TcpSrc(value),
        (true, false) => Oxm::TcpDst(value),
        (false, true) => Oxm::UdpSrc(value),
        (false, false) => Oxm::UdpDst(value),
    };
    match mask {
        0 => None,
        0xffff => Some(exact),
        _ => {
            let mut payload = Vec::with_capacity(4);
            payload.extend_from_slice(&value.to_be_bytes());
            payload.extend_from_slice(&mask.to_be_bytes());
            Some(Oxm::Raw {
                class: OFPXMC_OPENFLOW_BASIC,
                field: match (tcp, src) {
                    (true, true) => oxm_field::TCP_SRC,
                    (true, false) => oxm_field::TCP_DST,
                    (false, true) => oxm_field::UDP_SRC,
                    (false, false) => oxm_field::UDP_DST,
                },
                hasmask: true,
                payload: Bytes::from(payload),
            })
        }
    }
}
