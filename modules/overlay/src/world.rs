//! Everything the overlay compiles flows from: the configuration (networks,
//! ports), the cloud hosts OVSDB reports ([`Chassis`]), the connected
//! switches' port names, and what was learned from traffic.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use flowgate_controller::tenants::{TenantNetwork, TenantNetworks, TenantPort};
use flowgate_controller::topology::TopologyView;
use flowgate_openflow::MacAddr;
use serde::Serialize;
use utoipa::ToSchema;

use crate::model::{Binding, Config, Port};

/// A cloud host as the overlay needs it: which switch is its integration
/// bridge, which interface carries which `iface-id`, and which tunnel port
/// leads to which peer. Built from OVSDB by the provisioner.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Chassis {
    /// `external_ids:system-id`, else the OVSDB root row uuid.
    pub id: String,
    /// `external_ids:hostname` or the peer address, for people.
    pub name: String,
    /// The integration bridge's datapath id.
    #[schema(value_type = Option<String>)]
    #[serde(serialize_with = "ser_opt_dpid")]
    pub dpid: Option<u64>,
    /// Underlay address tunnels to this host use.
    #[schema(value_type = Option<String>)]
    pub encap_ip: Option<IpAddr>,
    /// `iface-id` → interface (= OpenFlow port) name.
    pub ifaces: BTreeMap<String, String>,
    /// Peer chassis id → tunnel interface name on this host.
    pub tunnels: BTreeMap<String, String>,
}

fn ser_opt_dpid<S: serde::Serializer>(dpid: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match dpid {
        Some(d) => s.serialize_str(&flowgate_controller::api::dpid::format_dpid(*d)),
        None => s.serialize_none(),
    }
}

/// What traffic taught us about a port configured without MAC or IPs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Learned {
    pub mac: Option<MacAddr>,
    pub ips: BTreeSet<IpAddr>,
}

/// Where a port is right now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    pub dpid: Option<u64>,
    /// The OpenFlow port number, once its switch is connected.
    pub port_no: Option<u32>,
    pub chassis: Option<String>,
}

/// The overlay's whole input.
#[derive(Debug, Clone, Default)]
pub struct World {
    pub config: Config,
    pub chassis: BTreeMap<String, Chassis>,
    /// Connected switches: port name → OpenFlow port number.
    pub switches: HashMap<u64, BTreeMap<String, u32>>,
    /// By (network id, port id).
    pub learned: HashMap<(String, String), Learned>,
    /// The topology module's last view (links between plain switches).
    pub topology: Option<Arc<TopologyView>>,
}

/// Key of a port in [`Config::ports`] and [`World::learned`].
pub type PortKey = (String, String);

pub fn key(port: &Port) -> PortKey {
    (port.network.clone(), port.id.clone())
}

impl World {
    /// The chassis whose integration bridge is `dpid`.
    pub fn chassis_of_dpid(&self, dpid: u64) -> Option<&Chassis> {
        self.chassis.values().find(|c| c.dpid == Some(dpid))
    }

    /// The OpenFlow number of port `name` on connected switch `dpid`.
    pub fn port_no(&self, dpid: u64, name: &str) -> Option<u32> {
        self.switches.get(&dpid)?.get(name).copied()
    }

    pub fn locate(&self, port: &Port) -> Location {
        match &port.binding {
            Binding::IfaceId(iface) => {
                let Some((chassis, name)) = self
                    .chassis
                    .values()
                    .find_map(|c| c.ifaces.get(iface).map(|n| (c, n)))
                else {
                    return Location::default();
                };
                Location {
                    dpid: chassis.dpid,
                    port_no: chassis.dpid.and_then(|d| self.port_no(d, name)),
                    chassis: Some(chassis.id.clone()),
                }
            }
            Binding::Switch(sp) => Location {
                dpid: Some(sp.dpid),
                port_no: self.port_no(sp.dpid, &sp.port),
                chassis: self.chassis_of_dpid(sp.dpid).map(|c| c.id.clone()),
            },
        }
    }

    /// The port's MAC: configured, else learned.
    pub fn mac(&self, port: &Port) -> Option<MacAddr> {
        port.mac
            .or_else(|| self.learned.get(&key(port)).and_then(|l| l.mac))
    }

    /// The port's addresses: configured, else learned.
    pub fn ips(&self, port: &Port) -> Vec<IpAddr> {
        if !port.ips.is_empty() {
            return port.ips.clone();
        }
        self.learned
            .get(&key(port))
            .map(|l| l.ips.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Networks and ports as other modules see them (the notice the
    /// overlay publishes): VNI, subnet, each port's addresses in effect
    /// and location.
    pub fn tenants(&self) -> TenantNetworks {
        let mut out = TenantNetworks::default();
        for network in self.config.networks.values() {
            let ports = self
                .config
                .ports
                .values()
                .filter(|p| p.network == network.id)
                .map(|p| {
                    let loc = self.locate(p);
                    TenantPort {
                        id: p.id.clone(),
                        mac: self.mac(p),
                        ips: self.ips(p),
                        dpid: loc.dpid,
                        port_no: loc.port_no,
                    }
                })
                .collect();
            out.networks.insert(
                network.id.clone(),
                TenantNetwork {
                    id: network.id.clone(),
                    vni: network.vni,
                    subnet: network.subnet.map(|c| (c.addr, c.prefix)),
                    ports,
                },
            );
        }
        out
    }

    /// Connected switches the overlay programs: integration bridges of
    /// known hosts, and any switch with a port bound to a network.
    pub fn overlay_switches(&self) -> BTreeSet<u64> {
        let mut out: BTreeSet<u64> = self
            .chassis
            .values()
            .filter_map(|c| c.dpid)
            .filter(|d| self.switches.contains_key(d))
            .collect();
        for port in self.config.ports.values() {
            if let Some(d) = self.locate(port).dpid {
                if self.switches.contains_key(&d) {
                    out.insert(d);
                }
            }
        }
        out
    }
}
