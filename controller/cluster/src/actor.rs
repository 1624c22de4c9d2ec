//! Which node takes the actions a cluster must take once, not once per
//! node: host-aware reactions (a quarantine, a rate limit) and load-aware
//! pool weights are written to the shared configuration, so every node
//! would otherwise apply each of them again.
//!
//! The rule: **the master of the lowest-numbered switch acts**, while its
//! own lease is valid. Why this one:
//! - Deterministic: every node reads the same masters keys, so at most one
//!   node sees itself there (two views differ only while a masters change
//!   is on its way to them).
//! - Failover-safe with no new keys: when the actor dies its lease
//!   deadline passes first (it stops acting, self-fenced as for switch
//!   writes, see [`crate::lease`]), then the leader gives its switches to
//!   live nodes, and the new master of that switch acts. A node that masters
//!   nothing never acts, so a cluster with no switch acts nowhere, which
//!   costs nothing: reactions are enforced on switches.
//! - It moves only when that switch's master does (rare: `assign` avoids
//!   churn), and the new actor starts as a restarted controller does, from
//!   the reactions its predecessor recorded.

use std::time::Instant;

use crate::assign::Masters;
use crate::node::NodeId;

/// The node that acts for the cluster, as `masters` say.
pub fn actor(masters: &Masters) -> Option<&NodeId> {
    masters.values().next().map(|m| &m.node)
}

/// Whether `node` acts for the cluster at `now`: it is [`actor`] and its
/// lease (valid until `lease_until`) has not run out.
pub fn acts(node: &NodeId, masters: &Masters, lease_until: Option<Instant>, now: Instant) -> bool {
    actor(masters) == Some(node) && lease_until.is_some_and(|until| now < until)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::assign::Mastership;
    use crate::generation::Generation;

    fn masters(of: &[(u64, &str)]) -> Masters {
        of.iter()
            .map(|(dpid, node)| {
                let m = Mastership {
                    node: NodeId::new(*node).unwrap(),
                    generation: Generation::from_revision(1),
                };
                (*dpid, m)
            })
            .collect()
    }

    #[test]
    fn the_master_of_the_lowest_switch_acts_while_its_lease_lasts() {
        let now = Instant::now();
        let valid = Some(now + Duration::from_secs(3));
        let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
        let m = masters(&[(7, "a"), (3, "b"), (9, "b")]);
        assert_eq!(actor(&m), Some(&b));
        assert!(acts(&b, &m, valid, now));
        assert!(!acts(&a, &m, valid, now), "exactly one acts");
        assert!(!acts(&b, &m, Some(now), now), "a lease run out fences");
        assert!(!acts(&b, &m, None, now), "no lease, no action");
        // Switch 3 fails over to a: a acts, b no longer does.
        let m = masters(&[(7, "a"), (3, "a"), (9, "b")]);
        assert!(acts(&a, &m, valid, now) && !acts(&b, &m, valid, now));
        assert_eq!(actor(&Masters::new()), None, "no switch, no actor");
    }
}
