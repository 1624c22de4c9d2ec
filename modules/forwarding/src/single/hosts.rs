//! One switch's hosts for single-table learning: by MAC, the port each was
//! learned on and the flows declared for its packets, in one hash table
//! whose lookups a run of packet-ins can prefetch before making them.

use std::hash::BuildHasher;

use flowgate_controller::cache;
use flowgate_controller::desired::FlowKey;
use flowgate_openflow::MacAddr;
use hashbrown::hash_table::Entry;
use hashbrown::HashTable;
use smallvec::SmallVec;

/// A host: where it was learned, and the flows declared for its packets.
#[derive(Debug)]
pub(super) struct Host {
    pub mac: MacAddr,
    pub port: u32,
    /// Few per host (a miss comes only for a flow the switch lacks), and
    /// one inline: a lookup reads a single entry.
    pub flows: SmallVec<[Flow; 1]>,
}

/// A flow declared for a host's packets arriving on `in_port` for `dst`.
#[derive(Debug)]
pub(super) struct Flow {
    pub in_port: u32,
    pub dst: MacAddr,
    pub out_port: u32,
    /// The key it was declared with: a re-send names the entry by it.
    pub key: FlowKey,
}

impl Host {
    pub fn flow(&self, in_port: u32, dst: MacAddr) -> Option<&Flow> {
        self.flows
            .iter()
            .find(|f| f.in_port == in_port && f.dst == dst)
    }

    /// Records `flow`, replacing one for the same in_port and destination.
    pub fn declare(&mut self, flow: Flow) {
        self.flows
            .retain(|f| !(f.in_port == flow.in_port && f.dst == flow.dst));
        self.flows.push(flow);
    }
}

/// A MAC's hash in one [`HostTable`]: a run of packet-ins hashes each MAC
/// once, to prefetch it and then to look it up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct HostHash(u64);

/// Host MAC → [`Host`]. Keyed hashing: MACs come from packets.
#[derive(Debug, Default)]
pub(super) struct HostTable {
    hasher: foldhash::quality::RandomState,
    hosts: HashTable<Host>,
}

impl HostTable {
    pub fn hash(&self, mac: &MacAddr) -> HostHash {
        HostHash(self.hasher.hash_one(mac))
    }

    /// Starts loading what a lookup of `mac` will read; returns its hash.
    pub fn prefetch(&self, mac: &MacAddr) -> HostHash {
        let hash = self.hash(mac);
        cache::prefetch_candidates(&self.hosts, hash.0);
        hash
    }

    pub fn get(&self, mac: &MacAddr, hash: HostHash) -> Option<&Host> {
        self.hosts.find(hash.0, |h| h.mac == *mac)
    }

    /// The host `mac`, learned on `port` now (its flows kept).
    pub fn learn(&mut self, mac: MacAddr, hash: HostHash, port: u32) -> &mut Host {
        let hasher = &self.hasher;
        match self
            .hosts
            .entry(hash.0, |h| h.mac == mac, |h| hasher.hash_one(h.mac))
        {
            Entry::Occupied(e) => {
                let host = e.into_mut();
                host.port = port;
                host
            }
            Entry::Vacant(e) => e
                .insert(Host {
                    mac,
                    port,
                    flows: SmallVec::new(),
                })
                .into_mut(),
        }
    }

    pub fn get_mut(&mut self, mac: &MacAddr, hash: HostHash) -> Option<&mut Host> {
        self.hosts.find_mut(hash.0, |h| h.mac == *mac)
    }

    /// Forgets the hosts learned on `port`.
    pub fn forget_port(&mut self, port: u32) {
        self.hosts.retain(|h| h.port != port);
    }
}

#[cfg(test)]
mod tests {
    use flowgate_openflow::{Match, Oxm};

    use super::*;

    fn flow(in_port: u32, dst: MacAddr, out_port: u32) -> Flow {
        let key = FlowKey::new(0, 100, Match::new().with(Oxm::InPort(in_port)));
        Flow {
            in_port,
            dst,
            out_port,
            key,
        }
    }

    #[test]
    fn learning_keeps_flows_and_moves_the_port() {
        let (a, b) = (MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2]));
        let mut hosts = HostTable::default();
        let hash = hosts.prefetch(&a);
        hosts.learn(a, hash, 1).declare(flow(1, b, 2));
        hosts.learn(a, hash, 3);
        let host = hosts.get(&a, hash).unwrap();
        assert_eq!(host.port, 3);
        assert_eq!(host.flow(1, b).map(|f| f.out_port), Some(2));
        assert!(host.flow(3, b).is_none());
        // A flow for the same in_port and destination replaces the old one.
        hosts.get_mut(&a, hash).unwrap().declare(flow(1, b, 4));
        let host = hosts.get(&a, hash).unwrap();
        assert_eq!((host.flows.len(), host.flows[0].out_port), (1, 4));
        hosts.forget_port(3);
        assert!(hosts.get(&a, hash).is_none());
    }
}
