//! The host table: which MAC sits behind which edge port, with the VLAN and
//! IP addresses it was seen using. Pure: the topology module feeds it
//! sightings from edge ports only and decides when hosts expire (their
//! classify entry's idle timeout on the switch).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use flowgate_openflow::MacAddr;

use super::graph::Endpoint;
use super::packet::Sighting;

/// Most addresses kept per host and family; the oldest goes first (a
/// router's MAC would otherwise collect every address it forwards for).
pub const MAX_ADDRESSES: usize = 8;

/// A known host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub mac: MacAddr,
    pub vlan: Option<u16>,
    /// Oldest first.
    pub ipv4: Vec<Ipv4Addr>,
    pub ipv6: Vec<Ipv6Addr>,
    /// Attachment point: the edge port it was last seen on.
    pub at: Endpoint,
}

/// A host's addresses, kept in the store so that a restarted controller
/// knows the hosts it adopts from the switches by IP too.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Addresses {
    pub ipv4: Vec<Ipv4Addr>,
    pub ipv6: Vec<Ipv6Addr>,
}

impl Host {
    pub fn addresses(&self) -> Addresses {
        Addresses {
            ipv4: self.ipv4.clone(),
            ipv6: self.ipv6.clone(),
        }
    }

    pub fn has_ip(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => self.ipv4.contains(&v4),
            IpAddr::V6(v6) => self.ipv6.contains(&v6),
        }
    }
}

/// What a sighting changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    New,
    /// The host appeared on another edge port.
    Moved {
        from: Endpoint,
    },
    /// Same place, new address or VLAN.
    Updated,
    Unchanged,
}

#[derive(Debug, Clone, Default)]
pub struct HostTable {
    hosts: BTreeMap<MacAddr, Host>,
    /// Hosts by attachment point: what a port or switch going away takes
    /// with it is found without a scan.
    by_port: BTreeMap<Endpoint, BTreeSet<MacAddr>>,
}

impl HostTable {
    /// Records that `sighting.mac` sent from edge port `at`. An address now
    /// used by this host is taken away from any other host (the address moved
    /// to a new NIC or VM).
    pub fn learn(&mut self, at: Endpoint, sighting: &Sighting) -> Learned {
        let mut learned = match self.hosts.get_mut(&sighting.mac) {
            None => {
                self.by_port.entry(at).or_default().insert(sighting.mac);
                self.hosts.insert(
                    sighting.mac,
                    Host {
                        mac: sighting.mac,
                        vlan: sighting.vlan,
                        ipv4: Vec::new(),
                        ipv6: Vec::new(),
                        at,
                    },
                );
                Learned::New
            }
            Some(host) => {
                let mut learned = Learned::Unchanged;
                if host.at != at {
                    learned = Learned::Moved { from: host.at };
                    unindex(&mut self.by_port, host.at, host.mac);
                    self.by_port.entry(at).or_default().insert(host.mac);
                    host.at = at;
                }
                if host.vlan != sighting.vlan {
                    host.vlan = sighting.vlan;
                    if learned == Learned::Unchanged {
                        learned = Learned::Updated;
                    }
                }
                learned
            }
        };
        let mut added = false;
        if let Some(ip) = sighting.ipv4 {
            added |= self.add_address(sighting.mac, IpAddr::V4(ip));
        }
        if let Some(ip) = sighting.ipv6 {
            added |= self.add_address(sighting.mac, IpAddr::V6(ip));
        }
        if added && learned == Learned::Unchanged {
            learned = Learned::Updated;
        }
        learned
    }

    /// Adds `ip` to `mac`'s addresses; returns whether anything changed.
    fn add_address(&mut self, mac: MacAddr, ip: IpAddr) -> bool {
        if self.hosts.get(&mac).is_some_and(|h| h.has_ip(ip)) {
            return false;
        }
        for other in self.hosts.values_mut().filter(|h| h.mac != mac) {
            match ip {
                IpAddr::V4(v4) => other.ipv4.retain(|a| *a != v4),
                IpAddr::V6(v6) => other.ipv6.retain(|a| *a != v6),
            }
        }
        let Some(host) = self.hosts.get_mut(&mac) else {
            return false;
        };
        match ip {
            IpAddr::V4(v4) => push_bounded(&mut host.ipv4, v4),
            IpAddr::V6(v6) => push_bounded(&mut host.ipv6, v6),
        }
        true
    }

    /// Adds a host known only by MAC and place (adopted from a switch's
    /// flows after a restart), unless it is already known.
    /// A host found as an entry a previous run left on a switch, with the
    /// addresses that run knew it by; false if it is known already.
    pub fn adopt(&mut self, mac: MacAddr, at: Endpoint, known: Option<&Addresses>) -> bool {
        if self.hosts.contains_key(&mac) {
            return false;
        }
        let known = known.cloned().unwrap_or_default();
        self.by_port.entry(at).or_default().insert(mac);
        self.hosts.insert(
            mac,
            Host {
                mac,
                vlan: None,
                ipv4: known.ipv4,
                ipv6: known.ipv6,
                at,
            },
        );
        true
    }

    pub fn get(&self, mac: MacAddr) -> Option<&Host> {
        self.hosts.get(&mac)
    }

    pub fn remove(&mut self, mac: MacAddr) -> Option<Host> {
        let host = self.hosts.remove(&mac)?;
        unindex(&mut self.by_port, host.at, mac);
        Some(host)
    }

    /// How many hosts sit behind `at`.
    pub fn count_at(&self, at: Endpoint) -> usize {
        self.by_port.get(&at).map_or(0, BTreeSet::len)
    }

    /// Removes the hosts behind `at`; returns them.
    pub fn remove_at(&mut self, at: Endpoint) -> Vec<Host> {
        let macs = self.by_port.remove(&at).unwrap_or_default();
        macs.into_iter()
            .filter_map(|mac| self.hosts.remove(&mac))
            .collect()
    }

    /// Removes the hosts behind any port of switch `dpid`; returns them.
    pub fn remove_on_switch(&mut self, dpid: u64) -> Vec<Host> {
        let ports: Vec<Endpoint> = self
            .by_port
            .range(Endpoint::new(dpid, 0)..=Endpoint::new(dpid, u32::MAX))
            .map(|(at, _)| *at)
            .collect();
        ports
            .into_iter()
            .flat_map(|at| self.remove_at(at))
            .collect()
    }

    /// Hosts sorted by MAC.
    pub fn iter(&self) -> impl Iterator<Item = &Host> {
        self.hosts.values()
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}

fn unindex(by_port: &mut BTreeMap<Endpoint, BTreeSet<MacAddr>>, at: Endpoint, mac: MacAddr) {
    if let Some(macs) = by_port.get_mut(&at) {
        macs.remove(&mac);
        if macs.is_empty() {
            by_port.remove(&at);
        }
    }
}

fn push_bounded<T>(list: &mut Vec<T>, item: T) {
    if list.len() >= MAX_ADDRESSES {
        list.remove(0);
    }
    list.push(item);
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: MacAddr = MacAddr([0, 0, 0, 0, 0, 0x0a]);
    const B: MacAddr = MacAddr([0, 0, 0, 0, 0, 0x0b]);
    const P1: Endpoint = Endpoint::new(1, 1);
    const P2: Endpoint = Endpoint::new(2, 1);

    fn seen(mac: MacAddr, ipv4: Option<[u8; 4]>) -> Sighting {
        Sighting {
            mac,
            vlan: None,
            ipv4: ipv4.map(Ipv4Addr::from),
            ipv6: None,
        }
    }

    #[test]
    fn learns_then_recognizes() {
        let mut t = HostTable::default();
        assert_eq!(t.learn(P1, &seen(A, None)), Learned::New);
        assert_eq!(t.learn(P1, &seen(A, None)), Learned::Unchanged);
        assert_eq!(t.learn(P1, &seen(A, Some([10, 0, 0, 1]))), Learned::Updated);
        assert_eq!(
            t.learn(P1, &seen(A, Some([10, 0, 0, 1]))),
            Learned::Unchanged
        );
        let host = t.get(A).unwrap();
        assert_eq!(host.at, P1);
        assert_eq!(host.ipv4, vec![Ipv4Addr::new(10, 0, 0, 1)]);
        assert!(host.has_ip("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn a_host_on_another_edge_port_moved() {
        let mut t = HostTable::default();
        t.learn(P1, &seen(A, Some([10, 0, 0, 1])));
        assert_eq!(t.learn(P2, &seen(A, None)), Learned::Moved { from: P1 });
        let host = t.get(A).unwrap();
        assert_eq!(host.at, P2);
        assert_eq!(host.ipv4.len(), 1, "addresses move with the host");
    }

    #[test]
    fn an_address_belongs_to_one_host() {
        let mut t = HostTable::default();
        t.learn(P1, &seen(A, Some([10, 0, 0, 9])));
        assert_eq!(t.learn(P2, &seen(B, Some([10, 0, 0, 9]))), Learned::New);
        assert!(t.get(A).unwrap().ipv4.is_empty());
        assert_eq!(t.get(B).unwrap().ipv4, vec![Ipv4Addr::new(10, 0, 0, 9)]);
    }

    #[test]
    fn vlan_change_is_an_update() {
        let mut t = HostTable::default();
        t.learn(P1, &seen(A, None));
        let tagged = Sighting {
            vlan: Some(5),
            ..seen(A, None)
        };
        assert_eq!(t.learn(P1, &tagged), Learned::Updated);
        assert_eq!(t.get(A).unwrap().vlan, Some(5));
    }

    #[test]
    fn addresses_are_bounded_oldest_dropped() {
        let mut t = HostTable::default();
        for i in 0..(MAX_ADDRESSES as u8 + 3) {
            t.learn(P1, &seen(A, Some([10, 0, 1, i])));
        }
        let host = t.get(A).unwrap();
        assert_eq!(host.ipv4.len(), MAX_ADDRESSES);
        assert_eq!(host.ipv4[0], Ipv4Addr::new(10, 0, 1, 3));
    }

    #[test]
    fn adopt_and_remove() {
        let mut t = HostTable::default();
        assert!(t.adopt(A, P1, None));
        assert!(!t.adopt(A, P2, None), "a known host keeps its place");
        t.learn(P2, &seen(B, None));
        let gone = t.remove_on_switch(2);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].mac, B);
        assert_eq!(t.len(), 1);
        assert!(t.remove(A).is_some());
        assert!(t.is_empty());
    }

    #[test]
    fn hosts_are_indexed_by_port_through_moves_and_removals() {
        let mut t = HostTable::default();
        t.learn(P1, &seen(A, None));
        t.learn(P1, &seen(B, None));
        assert_eq!(t.count_at(P1), 2);
        t.learn(P2, &seen(B, None));
        assert_eq!((t.count_at(P1), t.count_at(P2)), (1, 1), "B moved");
        assert_eq!(t.remove_at(P1).len(), 1);
        assert_eq!(t.count_at(P1), 0);
        t.remove(B);
        assert_eq!(t.count_at(P2), 0);
        assert!(t.is_empty());
    }
}
