//! The network as a graph: switches are nodes, discovered links are edges
//! that remember the port number on each end. Pure functions, no switch:
//! shortest paths (hop count, equal-cost choices spread by a hash), and the
//! spanning tree that broadcast follows.
//!
//! Everything here is deterministic: the same switches and links give the
//! same routes and the same tree, whatever order they were discovered in.
//! That is what lets a restarted controller recompute exactly the flows its
//! predecessor installed, so reconciliation sends nothing.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use petgraph::graph::{NodeIndex, UnGraph};

/// One end of a link: a switch port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub dpid: u64,
    pub port: u32,
}

impl Endpoint {
    pub const fn new(dpid: u64, port: u32) -> Self {
        Endpoint { dpid, port }
    }
}

/// An undirected link, stored with its smaller endpoint first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Link {
    pub a: Endpoint,
    pub b: Endpoint,
}

impl Link {
    pub fn new(x: Endpoint, y: Endpoint) -> Self {
        if x <= y {
            Link { a: x, b: y }
        } else {
            Link { a: y, b: x }
        }
    }

    /// The end of this link on `dpid`'s side, and the far end.
    fn ends_from(&self, dpid: u64) -> (Endpoint, Endpoint) {
        if self.a.dpid == dpid {
            (self.a, self.b)
        } else {
            (self.b, self.a)
        }
    }
}

/// One switch a packet crosses: where it enters and leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop {
    pub dpid: u64,
    pub in_port: u32,
    pub out_port: u32,
}

/// Switches and links, ready for path and tree queries.
#[derive(Debug, Clone, Default)]
pub struct NetGraph {
    graph: UnGraph<u64, Link>,
    nodes: BTreeMap<u64, NodeIndex>,
}

impl NetGraph {
    /// Builds the graph. Links whose ends are not both among `switches`, and
    /// self-loops, are left out; links given twice (both directions) count once.
    pub fn new(
        switches: impl IntoIterator<Item = u64>,
        links: impl IntoIterator<Item = Link>,
    ) -> Self {
        let mut graph = UnGraph::default();
        let mut nodes = BTreeMap::new();
        let switches: BTreeSet<u64> = switches.into_iter().collect();
        for dpid in switches {
            nodes.insert(dpid, graph.add_node(dpid));
        }
        let links: BTreeSet<Link> = links.into_iter().collect();
        for link in links {
            if link.a.dpid == link.b.dpid {
                continue;
            }
            if let (Some(&a), Some(&b)) = (nodes.get(&link.a.dpid), nodes.get(&link.b.dpid)) {
                graph.add_edge(a, b, link);
            }
        }
        NetGraph { graph, nodes }
    }

    pub fn switches(&self) -> impl Iterator<Item = u64> + '_ {
        self.nodes.keys().copied()
    }

    /// Links leaving `dpid` as (local port, far end), sorted by local port.
    pub fn neighbours(&self, dpid: u64) -> Vec<(u32, Endpoint)> {
        let Some(&node) = self.nodes.get(&dpid) else {
            return Vec::new();
        };
        let mut out: Vec<(u32, Endpoint)> = self
            .graph
            .edges(node)
            .map(|e| {
                let (near, far) = e.weight().ends_from(dpid);
                (near.port, far)
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// Hop counts from every reachable switch to `dst` (breadth-first).
    pub fn distances_to(&self, dst: u64) -> BTreeMap<u64, u32> {
        let mut dist = BTreeMap::new();
        if !self.nodes.contains_key(&dst) {
            return dist;
        }
        dist.insert(dst, 0);
        let mut queue = VecDeque::from([dst]);
        while let Some(u) = queue.pop_front() {
            let d = dist[&u];
            for (_, far) in self.neighbours(u) {
                if let std::collections::btree_map::Entry::Vacant(e) = dist.entry(far.dpid) {
                    e.insert(d + 1);
                    queue.push_back(far.dpid);
                }
            }
        }
        dist
    }

    /// Every shortest next hop towards `dst`: for each switch that can
    /// reach it, the local ports of links that bring the packet one hop
    /// closer (more than one where there are equal-cost paths), sorted.
    pub fn next_hops(&self, dst: u64) -> BTreeMap<u64, Vec<u32>> {
        let dist = self.distances_to(dst);
        let mut out = BTreeMap::new();
        for (&u, &d) in &dist {
            if u == dst {
                continue;
            }
            let ports: Vec<u32> = self
                .neighbours(u)
                .into_iter()
                .filter(|(_, far)| dist.get(&far.dpid) == Some(&(d - 1)))
                .map(|(port, _)| port)
                .collect();
            out.insert(u, ports);
        }
        out
    }

    /// One output port per switch towards `dst`. Where several are equally
    /// short, `flow_hash` (e.g. the destination MAC) picks one, so different
    /// destinations spread over equal-cost paths while each destination's
    /// tree stays loop-free: every choice strictly shortens the distance.
    pub fn routes_to(&self, dst: u64, flow_hash: u64) -> BTreeMap<u64, u32> {
        self.next_hops(dst)
            .into_iter()
            .filter_map(|(u, ports)| {
                let n = ports.len() as u64;
                let i = mix(flow_hash ^ u.rotate_left(29)).checked_rem(n)?;
                Some((u, ports[i as usize]))
            })
            .collect()
    }

    /// The path a packet takes from port `src` to port `dst` (both edge
    /// ports) along [`NetGraph::routes_to`]; `None` when unreachable.
    pub fn path(&self, src: Endpoint, dst: Endpoint, flow_hash: u64) -> Option<Vec<Hop>> {
        let routes = self.routes_to(dst.dpid, flow_hash);
        let mut hops = Vec::new();
        let mut at = src;
        // A simple path visits each switch at most once.
        for _ in 0..=self.nodes.len() {
            if at.dpid == dst.dpid {
                hops.push(Hop {
                    dpid: at.dpid,
                    in_port: at.port,
                    out_port: dst.port,
                });
                return Some(hops);
            }
            let out_port = *routes.get(&at.dpid)?;
            hops.push(Hop {
                dpid: at.dpid,
                in_port: at.port,
                out_port,
            });
            at = self.far_end(Endpoint::new(at.dpid, out_port))?;
        }
        None
    }

    /// The other end of the (first) link on `end`.
    pub fn far_end(&self, end: Endpoint) -> Option<Endpoint> {
        self.neighbours(end.dpid)
            .into_iter()
            .find(|(port, _)| *port == end.port)
            .map(|(_, far)| far)
    }

    /// The broadcast tree: a breadth-first spanning tree of every connected
    /// component, rooted at its lowest dpid, children taken in (local port)
    /// order; where two links join the same pair, the first one is used.
    /// Returns the tree's links.
    pub fn spanning_tree(&self) -> BTreeSet<Link> {
        let mut seen = BTreeSet::new();
        let mut tree = BTreeSet::new();
        for root in self.nodes.keys().copied() {
            if !seen.insert(root) {
                continue;
            }
            let mut queue = VecDeque::from([root]);
            while let Some(u) = queue.pop_front() {
                for (port, far) in self.neighbours(u) {
                    if seen.insert(far.dpid) {
                        tree.insert(Link::new(Endpoint::new(u, port), far));
                        queue.push_back(far.dpid);
                    }
                }
            }
        }
        tree
    }
}

/// Ports that belong to the links of `tree`.
pub fn tree_ports(tree: &BTreeSet<Link>) -> BTreeSet<Endpoint> {
    tree.iter().flat_map(|l| [l.a, l.b]).collect()
}

/// SplitMix64's finalizer: spreads similar inputs (consecutive MACs) apart.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests;
