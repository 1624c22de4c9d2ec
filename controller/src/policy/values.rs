//! Values of the policy match language with text forms (MACs, dpids,
//! ethertypes, IP protocols, port ranges, IP prefixes), parsed while
//! deserializing so a malformed one is a 422 naming its JSON path, and the
//! field error every policy validation returns. Those given as a number or
//! as text say so in the OpenAPI document ([`number_or_text`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use flowgate_openflow::MacAddr;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::api::dpid::{format_dpid, parse_dpid};

pub const ETH_TYPE_IPV4: u16 = 0x0800;
pub const ETH_TYPE_IPV6: u16 = 0x86dd;
pub const ETH_TYPE_ARP: u16 = 0x0806;
pub const ETH_TYPE_LLDP: u16 = 0x88cc;
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;
/// Highest DSCP (6 bits).
pub const MAX_DSCP: u8 = 63;

/// A policy that is invalid as a whole: the field at fault and why.
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
/// An IP version a policy's flows match.
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

    pub fn name(self) -> &'static str {
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
    /// The prefix of one address (/32 or /128).
    pub fn host(addr: IpAddr) -> Cidr {
        let len = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        Cidr { addr, len }
    }

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

/// The OpenAPI schema of a value written as a JSON number (0..=`max`) or
/// as text (what the text may be goes in `description`).
fn number_or_text(
    description: &str,
    max: u64,
    examples: [serde_json::Value; 2],
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0))
                .maximum(Some(max as usize)),
        )
        .item(ObjectBuilder::new().schema_type(Type::String))
        .description(Some(description))
        .examples(examples)
        .into()
}

macro_rules! number_or_text_schema {
    ($ty:ty, $description:expr, $max:expr, $examples:expr) => {
        impl utoipa::PartialSchema for $ty {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                number_or_text($description, $max, $examples)
            }
        }

        impl utoipa::ToSchema for $ty {}
    };
}

number_or_text_schema!(
    Dpid,
    "A datapath id: a number, or text: `1`, `0x1` or `00:00:00:00:00:00:00:01`",
    u64::MAX,
    [
        serde_json::json!("00:00:00:00:00:00:00:01"),
        serde_json::json!(1)
    ]
);
number_or_text_schema!(
    EthType,
    "An ethertype: a number, or text in decimal or `0x` hex",
    u64::from(u16::MAX),
    [serde_json::json!(2048), serde_json::json!("0x86dd")]
);
number_or_text_schema!(
    IpProto,
    "An IP protocol: a number, or text: `tcp`, `udp`, `icmp`, `icmpv6` or a number",
    u64::from(u8::MAX),
    [serde_json::json!("tcp"), serde_json::json!(17)]
);
number_or_text_schema!(
    PortRange,
    "A TCP/UDP port: a number, or text: a port or a range `lo-hi`",
    u64::from(u16::MAX),
    [serde_json::json!(80), serde_json::json!("8000-8999")]
);

impl Serialize for Dpid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_dpid(self.0))
    }
}
