//! The topology as other modules and the REST API see it: an immutable
//! snapshot the topology module publishes (as `Arc<TopologyView>`, see
//! [`crate::module::Ctx::publish`]) every time switches, links, port roles
//! or hosts change.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use flowgate_openflow::MacAddr;
use serde::Serialize;
use utoipa::ToSchema;

use super::graph::{Endpoint, Link, NetGraph};
use super::hosts::Host;

/// What a port is for, as far as discovery knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PortRole {
    /// A link to another switch was discovered on it.
    Link,
    /// No link: hosts live here.
    Edge,
    /// Just came up; probed, not yet known to be an edge port. Neither
    /// floods nor learns, so an undiscovered link cannot loop broadcast.
    Pending,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortView {
    pub name: String,
    pub hw_addr: MacAddr,
    pub role: PortRole,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchView {
    /// The switch's first discovery period is over: every port had the
    /// time to show a link. Until then forwarding keeps whatever it found
    /// installed (a controller restart must not disturb traffic).
    pub ready: bool,
    /// Ports that are up (the LOCAL port excluded), by number.
    pub ports: BTreeMap<u32, PortView>,
}

/// One published state of the network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopologyView {
    pub switches: BTreeMap<u64, SwitchView>,
    /// Links as discovered: (sender's port, receiver's port), sorted. A
    /// link seen in one direction only is still a link.
    pub links: Vec<(Endpoint, Endpoint)>,
    /// Sorted by MAC.
    pub hosts: Vec<Host>,
}

impl TopologyView {
    /// Every link once, whichever direction(s) it was seen in.
    pub fn undirected_links(&self) -> BTreeSet<Link> {
        self.links.iter().map(|(s, d)| Link::new(*s, *d)).collect()
    }

    pub fn graph(&self) -> NetGraph {
        NetGraph::new(self.switches.keys().copied(), self.undirected_links())
    }

    pub fn host(&self, mac: MacAddr) -> Option<&Host> {
        self.hosts
            .binary_search_by_key(&mac, |h| h.mac)
            .ok()
            .map(|i| &self.hosts[i])
    }

    pub fn host_by_ip(&self, ip: IpAddr) -> Option<&Host> {
        self.hosts.iter().find(|h| h.has_ip(ip))
    }

    /// Port numbers of `dpid` with `role`, sorted.
    pub fn ports_with_role(&self, dpid: u64, role: PortRole) -> Vec<u32> {
        self.switches
            .get(&dpid)
            .map(|s| {
                s.ports
                    .iter()
                    .filter(|(_, p)| p.role == role)
                    .map(|(n, _)| *n)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn is_ready(&self, dpid: u64) -> bool {
        self.switches.get(&dpid).is_some_and(|s| s.ready)
    }
}
