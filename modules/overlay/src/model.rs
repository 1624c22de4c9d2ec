//! Networks and ports as the REST API and the store hold them, and their
//! validation. Everything here is checked before anything is stored or
//! sent; an error names the request field at fault.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use flowgate_controller::api::dpid::{format_dpid, parse_dpid};
use flowgate_openflow::MacAddr;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;

use crate::fabric::vlan_of;

/// Largest VXLAN/Geneve network identifier (24 bits).
pub const MAX_VNI: u32 = (1 << 24) - 1;
/// First VNI handed out when a network is created without one; lower
/// values stay free for operators who pick their own.
pub const FIRST_AUTO_VNI: u32 = 4096;

/// A tenant network: one isolated L2 segment, carried as `tun_id = vni`
/// between hosts. Isolation is per network; `tenant` names the owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Network {
    #[schema(example = "blue")]
    pub id: String,
    #[schema(example = "blue web tier")]
    pub name: String,
    #[schema(example = "acme")]
    pub tenant: String,
    #[schema(example = 100)]
    pub vni: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "10.0.0.0/24")]
    pub subnet: Option<Cidr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "10.0.0.254")]
    pub gateway: Option<IpAddr>,
}

/// Body of `POST /networks` and `PUT /networks/{network}`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkInput {
    /// Letters, digits, `.`, `_`, `-` (1–64); generated when absent on POST.
    pub id: Option<String>,
    /// Defaults to the id.
    pub name: Option<String>,
    pub tenant: String,
    /// 1–16777215; allocated (from 4096 up) when absent.
    #[schema(minimum = 1, maximum = 16777215)]
    pub vni: Option<u32>,
    /// IPv4 or IPv6 CIDR; port addresses must lie inside it.
    pub subnet: Option<String>,
    /// Must lie inside `subnet`.
    pub gateway: Option<String>,
}

/// Where a port attaches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Binding {
    /// The OVS interface whose `external_ids:iface-id` is this value, on
    /// whichever OVSDB host has it (the OpenStack/OVN convention).
    IfaceId(String),
    /// A named port of a switch (for switches Flowgate knows only through
    /// OpenFlow).
    Switch(SwitchPort),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct SwitchPort {
    #[serde(serialize_with = "ser_dpid", deserialize_with = "de_dpid")]
    #[schema(value_type = String, example = "00:00:00:00:00:00:00:01")]
    pub dpid: u64,
    #[schema(example = "s1-eth1")]
    pub port: String,
}

impl fmt::Display for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Binding::IfaceId(id) => write!(f, "iface-id {id}"),
            Binding::Switch(sp) => write!(f, "{} port {}", format_dpid(sp.dpid), sp.port),
        }
    }
}

/// A VM interface bound to a network. Port ids are unique across
/// networks. JSON: the binding's key (`iface_id` or `switch`) sits beside
/// the other fields, as in the request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Port {
    #[schema(example = "vm1")]
    pub id: String,
    #[schema(example = "blue")]
    pub network: String,
    #[serde(flatten)]
    pub binding: Binding,
    /// Configured MAC; learned from the port's first packet when absent.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_mac")]
    #[schema(value_type = Option<String>, example = "02:00:00:00:00:01")]
    pub mac: Option<MacAddr>,
    /// Configured addresses; learned from ARP/IP when empty.
    #[serde(default)]
    #[schema(value_type = Vec<String>, example = json!(["10.0.0.1"]))]
    pub ips: Vec<IpAddr>,
}

/// Body of `POST /networks/{network}/ports` and `PUT .../ports/{port}`:
/// exactly one of `iface_id` and `switch`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortInput {
    /// Unique across networks; defaults to `iface_id`, or `<dpid>-<port>`
    /// for a switch binding.
    pub id: Option<String>,
    /// The network; required on `/ports`, must match the URL's otherwise.
    pub network: Option<String>,
    pub iface_id: Option<String>,
    pub switch: Option<SwitchPortInput>,
    pub mac: Option<String>,
    pub ips: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchPortInput {
    /// Decimal, `0x` hex or `00:00:00:00:00:00:00:01`.
    pub dpid: String,
    /// The OpenFlow port name, e.g. `s1-eth1`.
    pub port: String,
}

/// An IP prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

fn bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl Cidr {
    fn width(&self) -> u32 {
        if self.addr.is_ipv4() {
            32
        } else {
            128
        }
    }

    /// The host part of an address in this prefix: `ip & !mask`.
    fn host_bits(&self, ip: IpAddr) -> u128 {
        let host_len = self.width() - u32::from(self.prefix);
        let host_mask = if host_len >= 128 {
            !0
        } else {
            (1u128 << host_len) - 1
        };
        bits(ip) & host_mask
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.addr.is_ipv4() == ip.is_ipv4()
            && bits(self.addr) - self.host_bits(self.addr) == bits(ip) - self.host_bits(ip)
    }

    /// The prefix written with its host bits cleared.
    pub fn network(&self) -> Cidr {
        let net = bits(self.addr) - self.host_bits(self.addr);
        let addr = match self.addr {
            IpAddr::V4(_) => IpAddr::V4((net as u32).into()),
            IpAddr::V6(_) => IpAddr::V6(net.into()),
        };
        Cidr {
            addr,
            prefix: self.prefix,
        }
    }

    /// Why `ip` cannot be a host's address here: the network address (all
    /// host bits 0; IPv6's subnet-router anycast) or, in IPv4, the
    /// broadcast address (all 1). Prefixes with two addresses or fewer
    /// (/31, /32, /127, /128) have neither.
    pub fn reserved(&self, ip: IpAddr) -> Option<&'static str> {
        let host_len = self.width() - u32::from(self.prefix);
        if host_len < 2 || !self.contains(ip) {
            return None;
        }
        let host = self.host_bits(ip);
        if host == 0 {
            Some("the network's own address")
        } else if self.addr.is_ipv4() && host == (1u128 << host_len) - 1 {
            Some("the network's broadcast address")
        } else {
            None
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR (want 10.0.0.0/24)"))?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{addr:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("prefix {prefix:?} is not 0..={max}"))?;
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn ser_dpid<S: Serializer>(dpid: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_dpid(*dpid))
}

fn de_dpid<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let s = String::deserialize(d)?;
    parse_dpid(&s).map_err(serde::de::Error::custom)
}

mod opt_mac {
    use super::*;

    pub fn serialize<S: Serializer>(mac: &Option<MacAddr>, s: S) -> Result<S::Ok, S::Error> {
        match mac {
            Some(m) => s.collect_str(m),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<MacAddr>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| s.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// A validation failure: the field and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// The request itself is wrong (400).
    Bad { field: String, reason: String },
    /// It clashes with what exists (409).
    Conflict { field: String, reason: String },
    /// It refers to something that does not exist (404).
    Missing { field: String, reason: String },
}

impl Invalid {
    fn bad(field: &str, reason: impl Into<String>) -> Invalid {
        Invalid::Bad {
            field: field.into(),
            reason: reason.into(),
        }
    }

    fn conflict(field: &str, reason: impl Into<String>) -> Invalid {
        Invalid::Conflict {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// What validation checks against: the current configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub networks: BTreeMap<String, Network>,
    /// By (network id, port id).
    pub ports: BTreeMap<(String, String), Port>,
}

fn check_id(field: &str, id: &str) -> Result<(), Invalid> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Invalid::bad(
            field,
            format!("{id:?}: use 1-64 letters, digits, '.', '_' or '-'"),
        ))
    }
}

impl Config {
    /// The network `input` describes, checked against every other network.
    /// `path_id` is the id in the URL for PUT (the body's id, if any, must
    /// agree).
    pub fn validate_network(
        &self,
        input: NetworkInput,
        path_id: Option<&str>,
    ) -> Result<Network, Invalid> {
        let id = match (path_id, input.id) {
            (Some(p), Some(b)) if p != b => {
                return Err(Invalid::bad(
                    "id",
                    format!("body id {b:?} differs from the URL's {p:?}"),
                ))
            }
            (Some(p), _) => p.to_owned(),
            (None, Some(b)) => b,
            (None, None) => self.free_id(),
        };
        check_id("id", &id)?;
        let tenant = input.tenant.trim().to_owned();
        if tenant.is_empty() || tenant.len() > 64 {
            return Err(Invalid::bad("tenant", "must be 1-64 characters"));
        }
        let name = input.name.unwrap_or_else(|| id.clone());
        if name.len() > 256 {
            return Err(Invalid::bad("name", "at most 256 characters"));
        }
        let existing = self.networks.get(&id);
        let vni = match input.vni {
            Some(v) if v == 0 || v > MAX_VNI => {
                return Err(Invalid::bad("vni", format!("{v} is not 1..={MAX_VNI}")))
            }
            Some(v) => v,
            None => match existing {
                Some(n) => n.vni,
                None => self
                    .free_vni()
                    .ok_or_else(|| Invalid::conflict("vni", "no VNI left"))?,
            },
        };
        if let Some(other) = self.networks.values().find(|n| n.vni == vni && n.id != id) {
            return Err(Invalid::conflict(
                "vni",
                format!("VNI {vni} is used by network {:?}", other.id),
            ));
        }
        let vlan = vlan_of(vni);
        if let Some(other) = self
            .networks
            .values()
            .find(|n| vlan_of(n.vni) == vlan && n.id != id)
        {
            return Err(Invalid::conflict(
                "vni",
                format!(
                    "VNI {vni} would share fabric VLAN {vlan} (2048 + VNI mod 2047) with \
                     network {:?} (VNI {}); pick another VNI",
                    other.id, other.vni
                ),
            ));
        }
        let subnet = input
            .subnet
            .map(|s| s.parse::<Cidr>().map_err(|e| Invalid::bad("subnet", e)))
            .transpose()?;
        if let Some(s) = subnet.filter(|s| s.network() != *s) {
            return Err(Invalid::bad(
                "subnet",
                format!("{s} has host bits set; did you mean {}?", s.network()),
            ));
        }
        let gateway = input
            .gateway
            .map(|g| {
                g.parse::<IpAddr>()
                    .map_err(|_| Invalid::bad("gateway", format!("{g:?} is not an IP address")))
            })
            .transpose()?;
        if let Some(gw) = gateway {
            match subnet {
                None => return Err(Invalid::bad("gateway", "needs a subnet")),
                Some(s) if !s.contains(gw) => {
                    return Err(Invalid::bad("gateway", format!("{gw} is outside {s}")))
                }
                Some(s) => {
                    if let Some(what) = s.reserved(gw) {
                        return Err(Invalid::bad("gateway", format!("{gw} is {what}")));
                    }
                }
            }
        }
        if let Some(s) = subnet {
            let outside = self
                .ports
                .values()
                .filter(|p| p.network == id)
                .flat_map(|p| p.ips.iter().map(move |ip| (p, *ip)))
                .find(|(_, ip)| ip.is_ipv4() == s.addr.is_ipv4() && !s.contains(*ip));
            if let Some((port, ip)) = outside {
                return Err(Invalid::conflict(
                    "subnet",
                    format!("port {:?} has {ip}, outside {s}", port.id),
                ));
            }
        }
        Ok(Network {
            id,
            name,
            tenant,
            vni,
            subnet,
            gateway,
        })
    }

    fn free_id(&self) -> String {
        (1..)
            .map(|n| format!("net-{n}"))
            .find(|id| !self.networks.contains_key(id))
            .unwrap_or_default()
    }

    /// The lowest VNI from [`FIRST_AUTO_VNI`] whose fabric VLAN no
    /// network uses.
    pub fn free_vni(&self) -> Option<u32> {
        (FIRST_AUTO_VNI..=MAX_VNI).find(|v| {
            self.networks
                .values()
                .all(|n| vlan_of(n.vni) != vlan_of(*v))
        })
    }

    /// The port `input` describes in `network`, checked against every
    /// other port. `path_id` as for networks.
    ///
    /// With `path_id` (a PUT) a port of that id in another network is
    /// replaced: the port moves.
    pub fn validate_port(
        &self,
        network: &str,
        input: PortInput,
        path_id: Option<&str>,
    ) -> Result<Port, Invalid> {
        if input.network.as_deref().is_some_and(|n| n != network) {
            return Err(Invalid::bad(
                "network",
                format!("body network differs from the URL's {network:?}"),
            ));
        }
        let Some(net) = self.networks.get(network) else {
            return Err(Invalid::Missing {
                field: "network".into(),
                reason: format!("no network {network:?}"),
            });
        };
        let binding = match (input.iface_id, input.switch) {
            (Some(_), Some(_)) => {
                return Err(Invalid::bad(
                    "switch",
                    "give either iface_id or switch, not both",
                ))
            }
            (None, None) => return Err(Invalid::bad("iface_id", "give iface_id or switch")),
            (Some(iface), None) => {
                if iface.is_empty() || iface.len() > 256 {
                    return Err(Invalid::bad("iface_id", "must be 1-256 characters"));
                }
                Binding::IfaceId(iface)
            }
            (None, Some(sw)) => {
                let dpid =
                    parse_dpid(&sw.dpid).map_err(|e| Invalid::bad("switch.dpid", e.to_string()))?;
                if sw.port.is_empty() || sw.port.len() > 15 {
                    return Err(Invalid::bad(
                        "switch.port",
                        "must be a port name of 1-15 characters",
                    ));
                }
                Binding::Switch(SwitchPort {
                    dpid,
                    port: sw.port,
                })
            }
        };
        let default_id = match &binding {
            Binding::IfaceId(i) => i.clone(),
            Binding::Switch(sp) => format!("{:x}-{}", sp.dpid, sp.port),
        };
        let id = match (path_id, input.id) {
            (Some(p), Some(b)) if p != b => {
                return Err(Invalid::bad(
                    "id",
                    format!("body id {b:?} differs from the URL's {p:?}"),
                ))
            }
            (Some(p), _) => p.to_owned(),
            (None, Some(b)) => b,
            (None, None) => default_id,
        };
        check_id("id", &id)?;
        let mac = input
            .mac
            .map(|m| {
                let mac: MacAddr = m.parse().map_err(|e: flowgate_openflow::ParseMacError| {
                    Invalid::bad("mac", e.to_string())
                })?;
                if mac.is_multicast() || mac == MacAddr::ZERO {
                    return Err(Invalid::bad(
                        "mac",
                        format!("{mac} is not a unicast address"),
                    ));
                }
                Ok(mac)
            })
            .transpose()?;
        let mut ips = Vec::new();
        for (i, raw) in input.ips.unwrap_or_default().into_iter().enumerate() {
            let field = format!("ips[{i}]");
            let ip: IpAddr = raw
                .parse()
                .map_err(|_| Invalid::bad(&field, format!("{raw:?} is not an IP address")))?;
            // The subnet constrains addresses of its own family only
            // (an IPv4 network may also carry IPv6 addresses).
            if let Some(s) = net.subnet.filter(|s| s.addr.is_ipv4() == ip.is_ipv4()) {
                if !s.contains(ip) {
                    return Err(Invalid::bad(
                        &field,
                        format!("{ip} is outside the network's {s}"),
                    ));
                }
                if let Some(what) = s.reserved(ip) {
                    return Err(Invalid::bad(&field, format!("{ip} is {what} ({s})")));
                }
            }
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        // A PUT replaces the port of that id (or moves it here).
        let others = || {
            self.ports
                .values()
                .filter(|o| !(o.id == id && path_id.is_some()))
        };
        for other in others() {
            if other.binding == binding {
                let field = match binding {
                    Binding::IfaceId(_) => "iface_id",
                    Binding::Switch(_) => "switch",
                };
                return Err(Invalid::conflict(
                    field,
                    format!(
                        "{binding} is already bound to port {:?} of network {:?}",
                        other.id, other.network
                    ),
                ));
            }
            if other.network == network {
                if let (Some(m), Some(om)) = (mac, other.mac) {
                    if m == om {
                        return Err(Invalid::conflict(
                            "mac",
                            format!("{m} is used by port {:?}", other.id),
                        ));
                    }
                }
                if let Some(ip) = ips.iter().find(|ip| other.ips.contains(ip)) {
                    return Err(Invalid::conflict(
                        "ips",
                        format!("{ip} is used by port {:?}", other.id),
                    ));
                }
            }
        }
        if let Some(other) = others().find(|o| o.id == id) {
            return Err(Invalid::conflict(
                "id",
                format!("port {id:?} exists in network {:?}", other.network),
            ));
        }
        Ok(Port {
            id,
            network: network.to_owned(),
            binding,
            mac,
            ips,
        })
    }
}

#[cfg(test)]
mod tests;
