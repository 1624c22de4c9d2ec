//! What a node does when its etcd session fails (a keepalive or watch
//! stream broke, a request timed out).
//!
//! Dropping the lease at the first hiccup would cost the node its switches:
//! its keys vanish and the leader moves them, for an error that a retry a
//! moment later would not have seen. So the node keeps the lease and
//! re-establishes its streams on it, retrying within the lease deadline
//! ([`Lease::valid_until`]) while that is ahead. The deadline stays the
//! safety bound: it moves only with acknowledged keepalives, and past it
//! the node writes nothing whatever the session does. Past it the node
//! still tries the same lease: the deadline is a lower bound of etcd's
//! expiry, so the lease may well be alive (etcd slow to answer, or
//! restarting), and then the node's switches need not move at all. Only a
//! lease etcd says is gone (a keepalive answered with TTL 0, "lease not
//! found") makes the node register again under a new one.

use std::time::{Duration, Instant};

use crate::lease::{Lease, LeaseId};

/// The next step after a failed session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// The lease is not known to be gone: keep it, and with it the
    /// switches; start a session on it again at `at` (before the deadline
    /// while that is ahead).
    Resume { lease: LeaseId, at: Instant },
    /// The lease is gone: register under a new lease at `at`.
    Rejoin { at: Instant },
}

/// Decides after a session failed at `now`. `pause` is the usual wait
/// before a retry; while the deadline is ahead but closer than that, the
/// retry comes halfway to it, so it still fits in the lease.
pub fn after_error(lease: &Lease, now: Instant, pause: Duration) -> Recovery {
    let Some(id) = lease.id() else {
        return Recovery::Rejoin { at: now + pause };
    };
    let wait = match lease.valid_until() {
        Some(until) if now < until => pause.min((until - now) / 2),
        _ => pause,
    };
    Recovery::Resume {
        lease: id,
        at: now + wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(3);
    const MARGIN: Duration = Duration::from_millis(600);
    const PAUSE: Duration = Duration::from_millis(500);

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    fn granted_at(t0: Instant) -> Lease {
        let mut lease = Lease::new(MARGIN);
        lease.granted(7, t0, TTL);
        lease
    }

    #[test]
    fn a_hiccup_within_the_lease_keeps_it() {
        let t0 = Instant::now();
        let lease = granted_at(t0);
        // Valid until 2.4 s; failed at 1 s: retry after the usual pause.
        assert_eq!(
            after_error(&lease, ms(t0, 1000), PAUSE),
            Recovery::Resume {
                lease: 7,
                at: ms(t0, 1500)
            }
        );
    }

    #[test]
    fn close_to_the_deadline_the_retry_comes_sooner() {
        let t0 = Instant::now();
        let lease = granted_at(t0);
        // 400 ms left: retry halfway, 200 ms later, still within the lease.
        assert_eq!(
            after_error(&lease, ms(t0, 2000), PAUSE),
            Recovery::Resume {
                lease: 7,
                at: ms(t0, 2200)
            }
        );
    }

    #[test]
    fn past_the_deadline_the_lease_is_still_tried() {
        let t0 = Instant::now();
        let lease = granted_at(t0);
        // The node writes nothing now (the deadline passed), but etcd may
        // still hold the lease: it is tried again, at the usual pace.
        assert!(!lease.is_valid(ms(t0, 2400)));
        assert_eq!(
            after_error(&lease, ms(t0, 2400), PAUSE),
            Recovery::Resume {
                lease: 7,
                at: ms(t0, 2900)
            }
        );
    }

    #[test]
    fn an_acknowledged_keepalive_moves_the_bound() {
        let t0 = Instant::now();
        let mut lease = granted_at(t0);
        lease.keepalive_acked(7, ms(t0, 2000), TTL);
        // Valid until 4.4 s now: an error at 3 s is a hiccup.
        assert!(matches!(
            after_error(&lease, ms(t0, 3000), PAUSE),
            Recovery::Resume { lease: 7, .. }
        ));
    }

    #[test]
    fn a_lease_etcd_says_is_gone_is_not_resumed() {
        let t0 = Instant::now();
        let mut lease = granted_at(t0);
        lease.keepalive_acked(7, ms(t0, 1000), Duration::ZERO);
        assert_eq!(
            after_error(&lease, ms(t0, 1000), PAUSE),
            Recovery::Rejoin { at: ms(t0, 1500) }
        );
    }

    #[test]
    fn no_lease_yet_means_registering() {
        let t0 = Instant::now();
        assert!(matches!(
            after_error(&Lease::new(MARGIN), t0, PAUSE),
            Recovery::Rejoin { .. }
        ));
    }

    /// Repeated failures on a simulated clock: while the deadline is ahead
    /// every retry falls within it (ever closer), after it at the usual
    /// pace; the node rejoins only once etcd says the lease is gone.
    #[test]
    fn retries_fit_in_the_lease_and_rejoin_waits_for_etcd() {
        let t0 = Instant::now();
        let mut lease = granted_at(t0);
        let until = lease.valid_until().unwrap();
        let mut now = ms(t0, 100);
        let mut within = 0;
        while now < until {
            let Recovery::Resume { at, .. } = after_error(&lease, now, PAUSE) else {
                panic!("rejoined with the lease still valid");
            };
            assert!(at < until, "retry at {:?} past the deadline", at - t0);
            within += 1;
            // Each retry fails after a short timeout.
            now = at + Duration::from_millis(50);
        }
        assert!(within >= 4, "{within}");
        let Recovery::Resume { at, .. } = after_error(&lease, now, PAUSE) else {
            panic!("rejoined before etcd said the lease was gone");
        };
        assert_eq!(at, now + PAUSE);
        // The retry's keepalive is answered: the lease is gone.
        lease.keepalive_acked(7, at, Duration::ZERO);
        assert_eq!(
            after_error(&lease, at, PAUSE),
            Recovery::Rejoin { at: at + PAUSE }
        );
    }
}
