//! OpenFlow role generation ids, taken from etcd revisions.
//!
//! A switch remembers the largest generation id of the MASTER and SLAVE
//! requests it accepted and refuses an older one with
//! `OFPET_ROLE_REQUEST_FAILED/OFPRRFC_STALE` (OpenFlow 1.3.5 §6.3.6). That is
//! the fence against a node that lost mastership but does not know it yet,
//! and it only works if every new mastership carries a larger id than every
//! earlier one of that switch. etcd gives exactly that for free: the
//! generation of a switch's mastership is the revision at which the leader
//! wrote its `/flowgate/cluster/masters/<dpid>` key (the key's
//! `mod_revision`). Revisions grow with every write to the cluster, so a
//! later assignment always has a larger one, and every node reading the key
//! reads the same number — no counter of our own to keep consistent.

/// A role request's generation id (`ofp_role_request.generation_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Generation(pub u64);

impl Generation {
    /// The generation of an assignment written at etcd `revision`. etcd
    /// revisions are positive `i64`s, so the conversion is exact.
    pub fn from_revision(revision: i64) -> Generation {
        Generation(revision as u64)
    }

    /// Whether a switch that cached `cached` refuses `self` as stale. The
    /// spec compares as a wrapping signed difference,
    /// `(int64_t)(gen - cached) < 0`, so ids may wrap around 2^64; equal is
    /// not stale (a node re-asserting its own mastership is accepted).
    pub fn is_stale_against(self, cached: Generation) -> bool {
        (self.0.wrapping_sub(cached.0) as i64) < 0
    }

    /// Whether `self` comes strictly after `earlier` in the switch's order.
    pub fn is_newer_than(self, earlier: Generation) -> bool {
        (self.0.wrapping_sub(earlier.0) as i64) > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_is_stale_equal_is_not() {
        assert!(Generation(4).is_stale_against(Generation(5)));
        assert!(!Generation(5).is_stale_against(Generation(5)));
        assert!(!Generation(9).is_stale_against(Generation(5)));
        assert!(Generation(9).is_newer_than(Generation(5)));
        assert!(!Generation(5).is_newer_than(Generation(5)));
    }

    #[test]
    fn comparison_wraps_as_the_spec_says() {
        // Just past the wrap, a small id is newer than a huge one.
        assert!(Generation(2).is_newer_than(Generation(u64::MAX - 1)));
        assert!(Generation(u64::MAX - 1).is_stale_against(Generation(2)));
        // Half the space away the order flips: it is a window, not a total order.
        assert!(Generation(1 << 63).is_stale_against(Generation(0)));
    }

    #[test]
    fn revisions_map_to_generations_in_order() {
        assert!(Generation::from_revision(9).is_newer_than(Generation::from_revision(5)));
    }
}
