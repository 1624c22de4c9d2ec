//! Tenant networks as other modules see them: the notice the overlay
//! publishes (`Arc<TenantNetworks>`, see [`crate::module::Ctx::publish`])
//! whenever a network, a port, a port's addresses or its location change.
//!
//! It is the small, typed contract between the overlay and modules that
//! scope their entries to a tenant (the load balancer puts VIPs and members
//! inside a private network): which VNI a network id stands for (match its
//! traffic with `pipeline::metadata::tenant(vni)` under
//! `pipeline::metadata::TENANT_MASK`), which addresses its ports have, and
//! where each port is. Receivers never depend on the overlay crate.

use std::collections::BTreeMap;
use std::net::IpAddr;

use flowgate_openflow::MacAddr;

/// Every tenant network, by network id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantNetworks {
    pub networks: BTreeMap<String, TenantNetwork>,
}

/// One tenant network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantNetwork {
    pub id: String,
    /// Its VNI: the tenant id in the pipeline's metadata.
    pub vni: u32,
    /// Its subnet (address, prefix length), when it has one.
    pub subnet: Option<(IpAddr, u8)>,
    /// Sorted by port id.
    pub ports: Vec<TenantPort>,
}

/// A port of a tenant network, with the addresses in effect (configured or
/// learned) and where it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantPort {
    pub id: String,
    pub mac: Option<MacAddr>,
    pub ips: Vec<IpAddr>,
    /// The switch it is on, once known.
    pub dpid: Option<u64>,
    /// Its OpenFlow port number there, once its switch is connected.
    pub port_no: Option<u32>,
}

impl TenantNetworks {
    pub fn network(&self, id: &str) -> Option<&TenantNetwork> {
        self.networks.get(id)
    }
}

impl TenantNetwork {
    /// The port holding `ip`, if one does.
    pub fn port_with_ip(&self, ip: IpAddr) -> Option<&TenantPort> {
        self.ports.iter().find(|p| p.ips.contains(&ip))
    }

    /// Whether `ip` lies inside the network's subnet (false without one).
    pub fn in_subnet(&self, ip: IpAddr) -> bool {
        self.subnet
            .is_some_and(|(net, len)| prefix_contains(net, len, ip))
    }
}

/// Whether `ip` is inside `net/len` (same family).
pub fn prefix_contains(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let len = u32::from(len.min(32));
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let len = u32::from(len.min(128));
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_contain_their_addresses_only() {
        let v4 = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(prefix_contains(v4("10.0.0.0"), 24, v4("10.0.0.9")));
        assert!(!prefix_contains(v4("10.0.0.0"), 24, v4("10.0.1.9")));
        assert!(prefix_contains(v4("10.0.0.0"), 0, v4("192.0.2.1")));
        assert!(prefix_contains(v4("fd00::"), 64, v4("fd00::5")));
        assert!(!prefix_contains(v4("fd00::"), 64, v4("fd01::5")));
        assert!(!prefix_contains(v4("10.0.0.0"), 8, v4("fd00::5")));
    }
}
