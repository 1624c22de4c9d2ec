//! A node's own etcd lease, seen from the node: until when it may still act
//! as a master.
//!
//! etcd expires a lease TTL seconds after the last keepalive it *received*.
//! The node cannot know that instant, but it knows when it *sent* each
//! keepalive, which is earlier: `sent_at + ttl` is a lower bound of the
//! server's expiry. (The ack's arrival is later than the server's refresh;
//! counting from it would overestimate the lease by a round trip — in a
//! partition, by however long the ack took.) `margin` covers the rest:
//! clock rate differences and the time between a check and the write it
//! guards.
//!
//! Past that deadline the node self-fences: it stops writing before the
//! leader can even see its lease expire and give its switches away, so two
//! masters never write at once even if a switch's generation fence were
//! missing. The switch's fence (a stale generation is refused) remains for
//! what self-fencing cannot see: a process paused between its check and
//! its write.

use std::time::{Duration, Instant};

/// An etcd lease id.
pub type LeaseId = i64;

/// One node's lease as far as the node knows it.
#[derive(Debug, Clone)]
pub struct Lease {
    margin: Duration,
    id: Option<LeaseId>,
    /// `sent_at + ttl - margin` of the newest acknowledged keepalive.
    valid_until: Option<Instant>,
}

impl Lease {
    /// No lease yet: not valid.
    pub fn new(margin: Duration) -> Lease {
        Lease {
            margin,
            id: None,
            valid_until: None,
        }
    }

    /// A lease was granted (LeaseGrant answered) for a request sent at
    /// `sent_at`. It replaces any earlier lease: acks of that one no longer
    /// count.
    pub fn granted(&mut self, id: LeaseId, sent_at: Instant, ttl: Duration) {
        self.id = Some(id);
        self.valid_until = None;
        self.extend(sent_at, ttl);
    }

    /// A keepalive sent at `sent_at` was answered with `ttl` remaining. A TTL
    /// of zero means the lease is gone (expired or revoked): fenced at once.
    /// Acks of another lease are ignored; an ack that arrives after a newer
    /// one never shortens the deadline (both are lower bounds).
    pub fn keepalive_acked(&mut self, id: LeaseId, sent_at: Instant, ttl: Duration) {
        if self.id != Some(id) {
            return;
        }
        if ttl.is_zero() {
            self.lost();
        } else {
            self.extend(sent_at, ttl);
        }
    }

    /// The lease is known to be gone (revoked, "lease not found").
    pub fn lost(&mut self) {
        self.id = None;
        self.valid_until = None;
    }

    fn extend(&mut self, sent_at: Instant, ttl: Duration) {
        let until = (sent_at + ttl).checked_sub(self.margin);
        self.valid_until = self.valid_until.max(until);
    }

    /// The lease this node holds, if it holds one.
    pub fn id(&self) -> Option<LeaseId> {
        self.id
    }

    /// The instant the node must stop writing, unless a keepalive is acked
    /// first; `None` when it holds no lease (not valid at all). The deadline
    /// a [`crate::RoleState`] is given.
    pub fn valid_until(&self) -> Option<Instant> {
        self.valid_until
    }

    pub fn is_valid(&self, now: Instant) -> bool {
        self.valid_until.is_some_and(|until| now < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(10);
    const MARGIN: Duration = Duration::from_secs(1);

    fn secs(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    #[test]
    fn no_lease_is_not_valid() {
        let t0 = Instant::now();
        let lease = Lease::new(MARGIN);
        assert!(!lease.is_valid(t0));
        assert_eq!(lease.valid_until(), None);
    }

    #[test]
    fn valid_until_ttl_minus_margin_after_the_send() {
        let t0 = Instant::now();
        let mut lease = Lease::new(MARGIN);
        lease.granted(7, t0, TTL);
        assert!(lease.is_valid(secs(t0, 8)));
        assert!(!lease.is_valid(secs(t0, 9)));
        assert_eq!(lease.valid_until(), Some(secs(t0, 9)));
    }

    #[test]
    fn a_keepalive_counts_from_its_send_not_its_ack() {
        let t0 = Instant::now();
        let mut lease = Lease::new(MARGIN);
        lease.granted(7, t0, TTL);
        // Sent at 5 s, answered (late) at 8 s: valid until 5 + 10 - 1.
        lease.keepalive_acked(7, secs(t0, 5), TTL);
        assert_eq!(lease.valid_until(), Some(secs(t0, 14)));
        assert!(!lease.is_valid(secs(t0, 14)));
    }

    #[test]
    fn a_late_ack_of_an_older_keepalive_does_not_shorten() {
        let t0 = Instant::now();
        let mut lease = Lease::new(MARGIN);
        lease.granted(7, t0, TTL);
        lease.keepalive_acked(7, secs(t0, 6), TTL);
        lease.keepalive_acked(7, secs(t0, 3), TTL);
        assert_eq!(lease.valid_until(), Some(secs(t0, 15)));
    }

    #[test]
    fn zero_ttl_or_loss_fences_at_once() {
        let t0 = Instant::now();
        let mut lease = Lease::new(MARGIN);
        lease.granted(7, t0, TTL);
        lease.keepalive_acked(7, secs(t0, 2), Duration::ZERO);
        assert!(!lease.is_valid(secs(t0, 2)));
        assert_eq!(lease.id(), None);

        lease.granted(8, secs(t0, 3), TTL);
        assert!(lease.is_valid(secs(t0, 3)));
        lease.lost();
        assert!(!lease.is_valid(secs(t0, 3)));
    }

    #[test]
    fn acks_of_a_replaced_lease_are_ignored() {
        let t0 = Instant::now();
        let mut lease = Lease::new(MARGIN);
        lease.granted(7, t0, TTL);
        lease.granted(8, secs(t0, 1), TTL);
        lease.keepalive_acked(7, secs(t0, 5), TTL);
        assert_eq!(lease.valid_until(), Some(secs(t0, 10)));
        assert_eq!(lease.id(), Some(8));
    }

    #[test]
    fn a_margin_longer_than_the_ttl_never_validates() {
        let t0 = Instant::now();
        let mut lease = Lease::new(Duration::from_secs(20));
        lease.granted(7, t0, TTL);
        assert!(!lease.is_valid(t0));
    }
}
