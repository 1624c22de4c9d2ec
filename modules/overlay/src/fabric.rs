//! Tenant traffic between plain OpenFlow switches (no tunnels): the links
//! the topology module discovered carry it with one VLAN tag per network.
//!
//! - The fabric is every connected switch the topology knows that is not a
//!   cloud host's integration bridge, with the links among them.
//! - Each network uses the links of the topology's broadcast spanning tree
//!   that join its switches (a link is used when switches with ports of
//!   the network lie on both sides of it), tagged with its fabric VLAN
//!   `0x800 + vni % 2047` (2048-4094; when two networks collide, the lower
//!   VNI keeps it and the other is not carried between switches).
//! - Every fabric switch drops frames tagged with a VLAN in 2048-4095 that
//!   did not come in on a tree link of their network, so a host on any
//!   port cannot inject into a tenant by tagging.
//!
//! Unicast follows the tree towards the switch of the destination MAC.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use flowgate_controller::topology::{Endpoint, Link, NetGraph};

use crate::world::World;

/// First fabric VLAN; the range is [`VLAN_BASE`]..=4094.
pub const VLAN_BASE: u16 = 0x800;
/// OFPVID_PRESENT: a `vlan_vid` match/set with a tag.
pub const VID_PRESENT: u16 = 0x1000;

/// The fabric VLAN of network `vni` (before collision handling).
pub fn vlan_of(vni: u32) -> u16 {
    // 2047 values: 0x800..=0xffe (4095 is reserved).
    VLAN_BASE + (vni % 2047) as u16
}

/// Which links carry which network, computed once per change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fabric {
    /// Fabric switch → network VNI → its tree ports there.
    pub ports: BTreeMap<u64, BTreeMap<u32, BTreeSet<u32>>>,
    /// (switch, destination switch) → port towards it along the tree.
    pub next_hop: HashMap<(u64, u64), u32>,
    /// VNI → fabric VLAN, for the networks carried.
    pub vlans: BTreeMap<u32, u16>,
    /// Switches that drop stray fabric-tagged frames.
    pub guarded: BTreeSet<u64>,
}

impl Fabric {
    pub fn compute(world: &World) -> Fabric {
        let mut fabric = Fabric::default();
        let Some(view) = &world.topology else {
            return fabric;
        };
        let chassis: BTreeSet<u64> = world.chassis.values().filter_map(|c| c.dpid).collect();
        let switches: BTreeSet<u64> = view
            .switches
            .keys()
            .copied()
            .filter(|d| !chassis.contains(d) && world.switches.contains_key(d))
            .collect();
        let links: Vec<Link> = view
            .undirected_links()
            .into_iter()
            .filter(|l| switches.contains(&l.a.dpid) && switches.contains(&l.b.dpid))
            .collect();
        let tree = NetGraph::new(switches.iter().copied(), links).spanning_tree();
        let mut adjacency: BTreeMap<u64, Vec<(u32, Endpoint)>> = BTreeMap::new();
        for l in &tree {
            adjacency.entry(l.a.dpid).or_default().push((l.a.port, l.b));
            adjacency.entry(l.b.dpid).or_default().push((l.b.port, l.a));
        }

        // Switches with ports of each network, per VNI.
        let mut members: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
        for port in world.config.ports.values() {
            let (Some(net), Some(dpid)) = (
                world.config.networks.get(&port.network),
                world.locate(port).dpid,
            ) else {
                continue;
            };
            if switches.contains(&dpid) {
                members.entry(net.vni).or_default().insert(dpid);
            }
        }
        let mut used_vlans: BTreeSet<u16> = BTreeSet::new();
        for (vni, on) in &members {
            if on.len() < 2 || !used_vlans.insert(vlan_of(*vni)) {
                continue;
            }
            fabric.vlans.insert(*vni, vlan_of(*vni));
            for l in &tree {
                let side = reachable_without(&adjacency, l.a.dpid, l);
                if on.iter().any(|d| side.contains(d)) && on.iter().any(|d| !side.contains(d)) {
                    for end in [l.a, l.b] {
                        fabric
                            .ports
                            .entry(end.dpid)
                            .or_default()
                            .entry(*vni)
                            .or_default()
                            .insert(end.port);
                    }
                }
            }
            for dst in on {
                for (from, port) in towards(&adjacency, *dst) {
                    fabric.next_hop.insert((from, *dst), port);
                }
            }
        }
        if !fabric.vlans.is_empty() {
            fabric.guarded = switches;
        }
        fabric
    }

    /// Networks carried through `dpid`, with its tree ports for each.
    pub fn at(&self, dpid: u64) -> Option<&BTreeMap<u32, BTreeSet<u32>>> {
        self.ports.get(&dpid)
    }
}

/// Switches reachable from `start` over the tree without crossing `cut`.
fn reachable_without(
    adjacency: &BTreeMap<u64, Vec<(u32, Endpoint)>>,
    start: u64,
    cut: &Link,
) -> BTreeSet<u64> {
    let mut seen = BTreeSet::from([start]);
    let mut queue = VecDeque::from([start]);
    while let Some(u) = queue.pop_front() {
        for (port, far) in adjacency.get(&u).into_iter().flatten() {
            let this = Link::new(Endpoint::new(u, *port), *far);
            if this == *cut {
                continue;
            }
            if seen.insert(far.dpid) {
                queue.push_back(far.dpid);
            }
        }
    }
    seen
}

/// For every switch of `dst`'s tree component: the port leading to `dst`.
fn towards(adjacency: &BTreeMap<u64, Vec<(u32, Endpoint)>>, dst: u64) -> Vec<(u64, u32)> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::from([dst]);
    let mut queue = VecDeque::from([dst]);
    while let Some(u) = queue.pop_front() {
        for (_, far) in adjacency.get(&u).into_iter().flatten() {
            if seen.insert(far.dpid) {
                // `far` reaches `u` (and so `dst`) through its own end.
                out.push((far.dpid, far.port));
                queue.push_back(far.dpid);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
