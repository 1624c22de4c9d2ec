//! The rule schema (the JSON of the REST API, the bootstrap file and the
//! store) and per-rule validation.
//!
//! Values that have a text form (MACs, CIDRs, dpids, port ranges, protocol
//! names) are parsed while deserializing, so a malformed one is a 400 naming
//! its JSON path (`match.ip_src`); rules that parse are then checked as a
//! whole by [`Rule::validate`] (fields that contradict each other).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use flowgate_controller::api::dpid::{format_dpid, parse_dpid};
use flowgate_controller::service::Origin;
use flowgate_openflow::MacAddr;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;

/// Highest rule priority (the compiler doubles it into OpenFlow priorities
/// below the firewall's own infrastructure entries).
pub const MAX_PRIORITY: u16 = 30_000;
/// Highest tenant network id (a 24-bit VNI, see `pipeline::metadata`).
pub const MAX_TENANT: u32 = 0x00ff_ffff;
/// Most flow entries one rule may expand to on a switch (port ranges and
/// both IP versions multiply).
pub const MAX_FLOWS_PER_RULE: usize = 512;

pub const ETH_TYPE_IPV4: u16 = 0x0800;
pub const ETH_TYPE_IPV6: u16 = 0x86dd;
pub const ETH_TYPE_ARP: u16 = 0x0806;
pub const ETH_TYPE_LLDP: u16 = 0x88cc;
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;

/// One firewall rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// 1..4294967295; the rule's flows carry it in their cookie. Optional
    /// when creating with POST (the next free id is used).
    #[serde(default)]
    #[schema(example = 10)]
    pub id: u32,
    /// 1..30000, higher wins. Two rules of the same priority may not
    /// overlap (match a common packet in a common scope).
    #[schema(example = 100)]
    pub priority: u16,
    /// Where the rule applies; empty = everywhere.
    #[serde(default, skip_serializing_if = "Scope::is_empty")]
    pub scope: Scope,
    /// What packets it matches; empty = all.
    #[serde(default, rename = "match")]
    pub match_: RuleMatch,
    pub action: RuleAction,
    /// Free text for the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Set by the controller for a rule another module created (e.g.
    /// `hostaware/rule-7`): only that module changes or removes it. Absent
    /// for rules written over REST; a REST write may not set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, read_only, example = "hostaware/quarantine-h3")]
    pub origin: Option<Origin>,
}

/// Where a rule applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Only traffic of this tenant network, by VNI (the overlay's classify
    /// table marks tenant packets in metadata). 1..16777215.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<u32>,
    /// Only this switch (`1`, `0x1` or `00:00:00:00:00:00:00:01`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "00:00:00:00:00:00:00:01")]
    pub dpid: Option<Dpid>,
    /// Only packets entering on this port number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_port: Option<u32>,
}

impl Scope {
    pub fn is_empty(&self) -> bool {
        *self == Scope::default()
    }
}

/// What a rule matches. Absent fields match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "00:00:00:00:00:01")]
    pub eth_src: Option<Mac>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "00:00:00:00:00:02")]
    pub eth_dst: Option<Mac>,
    /// Ethertype as a number or `0x`-hex string. Implied by the IP fields;
    /// ARP and LLDP always pass the firewall and cannot be matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u16>, example = 2048)]
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
    #[schema(value_type = Option<String>, example = "tcp")]
    pub ip_proto: Option<IpProto>,
    /// TCP/UDP source port or range (`1024-65535`); needs ip_proto tcp/udp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "1024-65535")]
    pub src_port: Option<PortRange>,
    /// TCP/UDP destination port or range; needs ip_proto tcp/udp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "80")]
    pub dst_port: Option<PortRange>,
    /// ICMP (or ICMPv6) type; needs ip_proto icmp/icmpv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_code: Option<u8>,
}

/// What happens to matching packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RuleAction {
    /// Continue through the pipeline.
    Allow,
    /// Drop.
    Deny,
    /// Allow new connections matching the rule and everything belonging to
    /// them (replies, related ICMP errors), through conntrack. The other
    /// side cannot open connections unless another rule allows it.
    AllowRelated,
}

/// A rule that is invalid as a whole: the field at fault and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error inside a list (`[3].match.ip_src`).
    pub fn at_index(self, i: usize) -> FieldError {
        FieldError {
            field: format!("[{i}].{}", self.field),
            reason: self.reason,
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// An IP version a rule's flows match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn eth_type(self) -> u16 {
        match self {
            Family::V4 => ETH_TYPE_IPV4,
            Family::V6 => ETH_TYPE_IPV6,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// The ethertypes a rule's flows match, after validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EthTypes {
    /// No ethertype constraint (only MAC / scope fields).
    Any,
    /// One non-IP ethertype.
    Other(u16),
    /// IP, one or both versions (one flow set each).
    Ip { v4: bool, v6: bool },
}

impl EthTypes {
    /// Whether two rules' ethertype sets share a value.
    pub fn intersects(self, other: EthTypes) -> bool {
        use EthTypes::*;
        match (self, other) {
            (Any, _) | (_, Any) => true,
            (Other(a), Other(b)) => a == b,
            (Ip { v4: a4, v6: a6 }, Ip { v4: b4, v6: b6 }) => (a4 && b4) || (a6 && b6),
            (Other(_), Ip { .. }) | (Ip { .. }, Other(_)) => false,
        }
    }

    /// The IP versions, in order.
    pub fn families(self) -> Vec<Family> {
        match self {
            EthTypes::Ip { v4, v6 } => [(v4, Family::V4), (v6, Family::V6)]
                .into_iter()
                .filter_map(|(on, f)| on.then_some(f))
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl Rule {
    /// Checks the rule as a whole (an id of 0 is invalid: POST allocates
    /// one before validating). Returns the ethertypes it compiles to.
    pub fn validate(&self) -> Result<EthTypes, FieldError> {
        if self.id == 0 {
            return Err(FieldError::new("id", "must be between 1 and 4294967295"));
        }
        if self.priority == 0 || self.priority > MAX_PRIORITY {
            return Err(FieldError::new(
                "priority",
                format!("must be between 1 and {MAX_PRIORITY}"),
            ));
        }
        if let Some(t) = self.scope.tenant {
            if t == 0 || t > MAX_TENANT {
                return Err(FieldError::new(
                    "scope.tenant",
                    format!("must be between 1 and {MAX_TENANT}"),
                ));
            }
        }
        if let Some(p) = self.scope.in_port {
            if p == 0 || p > flowgate_openflow::port_no::MAX {
                return Err(FieldError::new(
                    "scope.in_port",
                    "must be a physical port number (1..4294967040)",
                ));
            }
        }
        let matched = self.match_.eth_types()?;
        if self.action == RuleAction::AllowRelated && matches!(matched, EthTypes::Other(_)) {
            return Err(FieldError::new(
                "action",
                "allow-related tracks IPv4/IPv6 connections; this rule matches another ethertype",
            ));
        }
        let types = self.eth_types();
        let flows = self.match_.flows_per_family() * types.families().len().max(1);
        if flows > MAX_FLOWS_PER_RULE {
            return Err(FieldError::new(
                "match",
                format!(
                    "the port ranges expand to {flows} flow entries per switch \
                     (limit {MAX_FLOWS_PER_RULE}); use fewer or aligned ranges"
                ),
            ));
        }
        Ok(types)
    }

    /// The ethertypes, for a rule already validated (never fails then).
    pub fn eth_types(&self) -> EthTypes {
        let types = self.match_.eth_types().unwrap_or(EthTypes::Any);
        match (self.action, types) {
            // Connections are IP: an allow-related rule without a version covers both.
            (RuleAction::AllowRelated, EthTypes::Any) => EthTypes::Ip { v4: true, v6: true },
            _ => types,
        }
    }
}

impl RuleMatch {
    /// The ethertypes the match implies, or the field that contradicts.
    fn eth_types(&self) -> Result<EthTypes, FieldError> {
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
                "ARP and LLDP always pass the firewall (Flowgate needs them); \
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

// ---------------------------------------------------------------------------
// Value types with text forms.

/// A MAC address, `aa:bb:cc:dd:ee:ff` in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac(pub MacAddr);

/// A datapath id; accepts every form the API does, prints the colon form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dpid(pub u64);

/// An ethertype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthType(pub u16);

/// An IP protocol number; names for the common ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpProto(pub u8);

/// An inclusive port range; one port when `lo == hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

/// An IP prefix with no host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub len: u8,
}

const PROTO_NAMES: [(&str, u8); 4] = [
    ("icmp", PROTO_ICMP),
    ("tcp", PROTO_TCP),
    ("udp", PROTO_UDP),
    ("icmpv6", PROTO_ICMPV6),
];

impl IpProto {
    fn name(self) -> Option<&'static str> {
        PROTO_NAMES
            .iter()
            .find(|(_, n)| *n == self.0)
            .map(|(name, _)| *name)
    }
}

impl PortRange {
    /// Value/mask blocks covering exactly the range (at most 30 for a
    /// 16-bit range): each is the largest aligned power-of-two block that
    /// starts at the next uncovered port and does not pass `hi`.
    pub fn blocks(self) -> Vec<(u16, u16)> {
        let (mut lo, hi) = (u32::from(self.lo), u32::from(self.hi));
        let mut out = Vec::new();
        while lo <= hi {
            let mut size: u32 = 1;
            while size < 0x1_0000 && lo % (size * 2) == 0 && lo + size * 2 - 1 <= hi {
                size *= 2;
            }
            // Both fit in 16 bits: lo <= hi <= 0xffff and size <= 0x10000.
            let mask = (0x1_0000 - size) as u16;
            out.push((lo as u16, mask));
            lo += size;
        }
        out
    }

    /// Whether the two ranges share a port.
    pub fn intersects(self, other: PortRange) -> bool {
        self.lo <= other.hi && other.lo <= self.hi
    }
}

impl Cidr {
    pub fn family(self) -> Family {
        match self.addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Whether the prefixes share an address (one contains the other).
    pub fn intersects(self, other: Cidr) -> bool {
        if self.family() != other.family() {
            return false;
        }
        let len = self.len.min(other.len);
        let bits = |a: IpAddr| -> u128 {
            match a {
                IpAddr::V4(v4) => u128::from(u32::from(v4)) << 96,
                IpAddr::V6(v6) => u128::from(v6),
            }
        };
        let mask = prefix_mask(len);
        bits(self.addr) & mask == bits(other.addr) & mask
    }

    /// The IPv4 network and netmask (`None` mask for a /32).
    pub fn v4(self) -> Option<(Ipv4Addr, Option<Ipv4Addr>)> {
        match self.addr {
            IpAddr::V4(a) => Some((
                a,
                (self.len < 32).then(|| Ipv4Addr::from((prefix_mask(self.len) >> 96) as u32)),
            )),
            IpAddr::V6(_) => None,
        }
    }

    /// The IPv6 network and netmask (`None` mask for a /128).
    pub fn v6(self) -> Option<(Ipv6Addr, Option<Ipv6Addr>)> {
        match self.addr {
            IpAddr::V6(a) => Some((
                a,
                (self.len < 128).then(|| Ipv6Addr::from(prefix_mask(self.len))),
            )),
            IpAddr::V4(_) => None,
        }
    }

    /// A /0: matches every address of its family.
    pub fn is_any(self) -> bool {
        self.len == 0
    }
}

/// The top `len` bits of a 128-bit value set (IPv4 lives in the top 32).
fn prefix_mask(len: u8) -> u128 {
    match len {
        0 => 0,
        n => u128::MAX << (128 - u32::from(n.min(128))),
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("invalid IP address in {s:?}"))?;
        let max = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let len = match len {
            None => max,
            Some(l) => l
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("invalid prefix length in {s:?} (0..{max})"))?,
        };
        let cidr = Cidr { addr, len };
        let host_bits = match addr {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96) & !prefix_mask(len),
            IpAddr::V6(v6) => u128::from(v6) & !prefix_mask(len),
        };
        if host_bits != 0 {
            let network = match addr {
                IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(
                    u32::from(v4) & ((prefix_mask(len) >> 96) as u32),
                )),
                IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & prefix_mask(len))),
            };
            return Err(format!(
                "{s:?} has host bits set; did you mean {network}/{len}?"
            ));
        }
        Ok(cidr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let max = match self.family() {
            Family::V4 => 32,
            Family::V6 => 128,
        };
        if self.len == max {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.len)
        }
    }
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<PortRange, String> {
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .map_err(|_| format!("invalid port {p:?} (0..65535)"))
        };
        let range = match s.split_once('-') {
            Some((lo, hi)) => PortRange {
                lo: port(lo)?,
                hi: port(hi)?,
            },
            None => {
                let p = port(s)?;
                PortRange { lo: p, hi: p }
            }
        };
        if range.lo > range.hi {
            return Err(format!("empty port range {s:?}: start after end"));
        }
        Ok(range)
    }
}

/// Accepts a JSON number or string; `from_num`/`from_str` say what is valid.
struct NumOrStr<T> {
    expecting: &'static str,
    from_num: fn(u64) -> Result<T, String>,
    from_str: fn(&str) -> Result<T, String>,
}

impl<T> Visitor<'_> for NumOrStr<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        (self.from_num)(v).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        let v = u64::try_from(v).map_err(|_| E::custom(format!("{v} is negative")))?;
        self.visit_u64(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.from_str)(v).map_err(E::custom)
    }
}

fn no_number<T>(_: u64) -> Result<T, String> {
    Err("expected a string".into())
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumOrStr {
            expecting: "an IP prefix such as \"10.0.0.0/24\"",
            from_num: no_number,
            from_str: str::parse,
        })
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumOrStr {
            expecting: "a port number or a range such as \"8000-8999\"",
            from_num: |n| {
                u16::try_from(n)
                    .map(|p| PortRange { lo: p, hi: p })
                    .map_err(|_| format!("invalid port {n} (0..65535)"))
            },
            from_str: str::parse,
        })
    }
}

impl Serialize for PortRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.lo == self.hi {
            s.serialize_u16(self.lo)
        } else {
            s.collect_str(&format_args!("{}-{}", self.lo, self.hi))
        }
    }
}

impl<'de> Deserialize<'de> for IpProto {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumOrStr {
            expecting: "tcp, udp, icmp, icmpv6 or a protocol number",
            from_num: |n| {
                u8::try_from(n)
                    .map(IpProto)
                    .map_err(|_| format!("invalid IP protocol {n} (0..255)"))
            },
            from_str: |s| {
                let lower = s.trim().to_ascii_lowercase();
                PROTO_NAMES
                    .iter()
                    .find(|(name, _)| *name == lower)
                    .map(|(_, n)| IpProto(*n))
                    .or_else(|| lower.parse().ok().map(IpProto))
                    .ok_or_else(|| {
                        format!("unknown IP protocol {s:?}: use tcp, udp, icmp, icmpv6 or a number")
                    })
            },
        })
    }
}

impl Serialize for IpProto {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.name() {
            Some(name) => s.serialize_str(name),
            None => s.serialize_u8(self.0),
        }
    }
}

impl<'de> Deserialize<'de> for EthType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumOrStr {
            expecting: "an ethertype number such as 2048 or \"0x0800\"",
            from_num: |n| {
                u16::try_from(n)
                    .map(EthType)
                    .map_err(|_| format!("invalid ethertype {n} (0..65535)"))
            },
            from_str: |s| {
                let t = s.trim();
                let hex = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X"));
                match hex {
                    Some(h) => u16::from_str_radix(h, 16).ok(),
                    None => t.parse().ok(),
                }
                .map(EthType)
                .ok_or_else(|| format!("invalid ethertype {s:?}"))
            },
        })
    }
}

impl Serialize for EthType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(self.0)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumOrStr {
            expecting: "a MAC address such as \"00:00:00:00:00:01\"",
            from_num: no_number,
            from_str: |s| {
                s.trim()
                    .parse()
                    .map(Mac)
                    .map_err(|_| format!("invalid MAC address {s:?}"))
            },
        })
    }
}

impl Serialize for Mac {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Dpid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumOrStr {
            expecting: "a dpid: 1, \"0x1\" or \"00:00:00:00:00:00:00:01\"",
            from_num: |n| Ok(Dpid(n)),
            from_str: |s| parse_dpid(s).map(Dpid).map_err(|e| e.to_string()),
        })
    }
}

impl Serialize for Dpid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_dpid(self.0))
    }
}

#[cfg(test)]
mod tests;
