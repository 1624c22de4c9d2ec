//! When a node offers itself as a switch's master: only once its view of
//! the network can be complete.
//!
//! Every node builds desired state from its own discovery (probes, host
//! packets), and a new master writes what its view wants. A node that
//! just (re)started or came back from a partition hears the network
//! piecemeal: Open vSwitch dials it back one switch at a time with a
//! growing backoff, and a link is known only after a probe round over it.
//! Were it given switches at once, it would rewrite routes from a partial
//! view (seen in the three-node fattree test: routes and link-port entries
//! deleted and re-added on six switches after a partition).
//!
//! So a node reports a switch connection to the cluster (the `connections`
//! key the leader assigns from) only when
//! - it has been connected to that switch for a whole probe round (so that
//!   switch's links were probed both ways while it listened), and
//! - it is connected to every switch the cluster has a master for (its
//!   view spans the whole network), or it has waited `patience` since its
//!   first connection (a switch that cannot reach this node must not keep
//!   it out of the cluster for ever).
//!
//! Once reported, a switch stays reported until it disconnects. Survivors
//! of a failover are reported long before it, so the gate costs a failover
//! nothing; it delays only a node's joining, by about one probe round.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::node::Dpid;

/// The connections of one node and which of them it has reported.
#[derive(Debug, Clone)]
pub struct Eligibility {
    round: Duration,
    patience: Duration,
    first_connected: Option<Instant>,
    /// Connected switches, with when they connected.
    connected: BTreeMap<Dpid, Instant>,
    reported: BTreeSet<Dpid>,
}

impl Eligibility {
    /// `round`: one probe round (the probe interval and the slack a link
    /// needs to be learnt); `patience`: the longest a node waits for
    /// switches the cluster knows and it does not see.
    pub fn new(round: Duration, patience: Duration) -> Self {
        Eligibility {
            round,
            patience,
            first_connected: None,
            connected: BTreeMap::new(),
            reported: BTreeSet::new(),
        }
    }

    /// `dpid` (re)connected to this node at `now`.
    pub fn connected(&mut self, dpid: Dpid, now: Instant) {
        self.first_connected.get_or_insert(now);
        self.connected.insert(dpid, now);
    }

    /// `dpid`'s connection is gone; `true` if it had been reported (the
    /// cluster must hear that it is gone).
    pub fn disconnected(&mut self, dpid: Dpid) -> bool {
        self.connected.remove(&dpid);
        self.reported.remove(&dpid)
    }

    /// The switches to report now (each once), given the switches the
    /// cluster has masters for (`known`).
    pub fn due(&mut self, known: impl IntoIterator<Item = Dpid>, now: Instant) -> Vec<Dpid> {
        let Some(first) = self.first_connected else {
            return Vec::new();
        };
        let sees_all = known
            .into_iter()
            .all(|dpid| self.connected.contains_key(&dpid));
        if !sees_all && now.saturating_duration_since(first) < self.patience {
            return Vec::new();
        }
        let due: Vec<Dpid> = self
            .connected
            .iter()
            .filter(|(dpid, since)| {
                !self.reported.contains(dpid)
                    && now.saturating_duration_since(**since) >= self.round
            })
            .map(|(dpid, _)| *dpid)
            .collect();
        self.reported.extend(&due);
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUND: Duration = Duration::from_secs(6);
    const PATIENCE: Duration = Duration::from_secs(30);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_switch_is_reported_after_one_probe_round_and_only_once() {
        let t0 = Instant::now();
        let mut e = Eligibility::new(ROUND, PATIENCE);
        e.connected(1, t0);
        assert!(e.due([], t0 + secs(5)).is_empty());
        assert_eq!(e.due([], t0 + secs(6)), vec![1]);
        assert!(e.due([], t0 + secs(7)).is_empty());
    }

    #[test]
    fn a_node_waits_until_it_sees_every_switch_the_cluster_knows() {
        let t0 = Instant::now();
        let mut e = Eligibility::new(ROUND, PATIENCE);
        // Open vSwitch dials the node back one switch at a time.
        e.connected(1, t0);
        e.connected(2, t0 + secs(8));
        assert!(
            e.due([1, 2, 3], t0 + secs(10)).is_empty(),
            "3 not connected yet"
        );
        e.connected(3, t0 + secs(12));
        assert_eq!(
            e.due([1, 2, 3], t0 + secs(14)),
            vec![1, 2],
            "3 still in its round"
        );
        assert_eq!(e.due([1, 2, 3], t0 + secs(18)), vec![3]);
    }

    #[test]
    fn a_switch_that_never_comes_does_not_keep_the_node_out_for_ever() {
        let t0 = Instant::now();
        let mut e = Eligibility::new(ROUND, PATIENCE);
        e.connected(1, t0);
        assert!(e.due([1, 9], t0 + secs(29)).is_empty());
        assert_eq!(e.due([1, 9], t0 + secs(30)), vec![1]);
    }

    #[test]
    fn a_reconnection_starts_its_round_again_and_only_reported_switches_are_withdrawn() {
        let t0 = Instant::now();
        let mut e = Eligibility::new(ROUND, PATIENCE);
        e.connected(1, t0);
        e.connected(2, t0 + secs(5));
        assert_eq!(e.due([], t0 + secs(6)), vec![1]);
        assert!(e.disconnected(1));
        assert!(!e.disconnected(2), "2 was never reported");
        e.connected(1, t0 + secs(7));
        assert!(e.due([], t0 + secs(12)).is_empty());
        assert_eq!(e.due([], t0 + secs(13)), vec![1]);
    }

    #[test]
    fn nothing_is_due_before_the_first_connection() {
        let mut e = Eligibility::new(ROUND, PATIENCE);
        assert!(e.due([1], Instant::now() + secs(100)).is_empty());
    }
}
