//! One switch's learned hosts: a hash table whose lookups a batch of
//! packet-ins can prefetch before making them.

use std::hash::BuildHasher;

use flowgate_controller::cache;
use flowgate_controller::desired::FlowKey;
use flowgate_openflow::MacAddr;
use hashbrown::HashTable;

/// A host learned on one switch.
#[derive(Debug, Clone)]
pub(super) struct Learned {
    pub port: u32,
    /// Key of its source entry, as declared: a repeated miss re-sends the
    /// entry by this key's id, without rebuilding or cloning the key.
    pub learn: FlowKey,
}

/// A MAC's hash in one [`HostTable`]: a run of packet-ins hashes each
/// source once, to prefetch it and then to look it up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct HostHash(u64);

/// Host MAC → where it was learned. Keyed hashing: MACs come from packets.
#[derive(Debug, Default)]
pub(super) struct HostTable {
    hasher: foldhash::quality::RandomState,
    hosts: HashTable<(MacAddr, Learned)>,
}

impl HostTable {
    pub fn hash(&self, mac: &MacAddr) -> HostHash {
        HostHash(self.hasher.hash_one(mac))
    }

    pub fn get(&self, mac: &MacAddr) -> Option<&Learned> {
        self.get_hashed(mac, self.hash(mac))
    }

    /// [`HostTable::get`] with `mac`'s hash at hand.
    pub fn get_hashed(&self, mac: &MacAddr, hash: HostHash) -> Option<&Learned> {
        self.hosts.find(hash.0, |(m, _)| m == mac).map(|(_, l)| l)
    }

    /// Starts loading what a lookup of `mac` will read; returns its hash.
    pub fn prefetch(&self, mac: &MacAddr) -> HostHash {
        let hash = self.hash(mac);
        cache::prefetch_candidates(&self.hosts, hash.0);
        hash
    }

    pub fn insert(&mut self, mac: MacAddr, learned: Learned) {
        let hasher = &self.hasher;
        let hash = hasher.hash_one(mac);
        match self
            .hosts
            .entry(hash, |(m, _)| *m == mac, |(m, _)| hasher.hash_one(m))
        {
            hashbrown::hash_table::Entry::Occupied(mut e) => e.get_mut().1 = learned,
            hashbrown::hash_table::Entry::Vacant(e) => {
                e.insert((mac, learned));
            }
        }
    }

    pub fn remove(&mut self, mac: &MacAddr) -> Option<Learned> {
        let found = self.hosts.find_entry(self.hash(mac).0, |(m, _)| m == mac);
        found.ok().map(|e| e.remove().0 .1)
    }

    pub fn clear(&mut self) {
        self.hosts.clear();
    }

    pub fn iter(&self) -> impl Iterator<Item = (&MacAddr, &Learned)> {
        self.hosts.iter().map(|(m, l)| (m, l))
    }
}

#[cfg(test)]
mod tests {
    use flowgate_openflow::{Match, Oxm};

    use super::*;

    fn learned(port: u32) -> Learned {
        let key = FlowKey::new(0, 1, Match::new().with(Oxm::InPort(port)));
        Learned { port, learn: key }
    }

    #[test]
    fn insert_replaces_and_remove_forgets() {
        let a = MacAddr([0, 0, 0, 0, 0, 1]);
        let b = MacAddr([0, 0, 0, 0, 0, 2]);
        let mut hosts = HostTable::default();
        hosts.insert(a, learned(1));
        hosts.insert(b, learned(2));
        hosts.insert(a, learned(3));
        let hash = hosts.prefetch(&a);
        assert_eq!(hash, hosts.hash(&a));
        assert_eq!(hosts.get_hashed(&a, hash).map(|l| l.port), Some(3));
        assert_eq!(hosts.get(&a).map(|l| l.port), Some(3));
        assert_eq!(hosts.iter().count(), 2);
        assert_eq!(hosts.remove(&b).map(|l| l.port), Some(2));
        assert!(hosts.get(&b).is_none());
        assert!(hosts.remove(&b).is_none());
        hosts.clear();
        assert!(hosts.get(&a).is_none());
    }
}
