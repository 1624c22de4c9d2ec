//! What makes a discovery probe unforgeable and unreplayable: an HMAC-SHA256
//! over who sent it from where and when, keyed by a secret nobody outside
//! the controller sees: drawn by a single controller at start, or shared
//! by every node of a cluster (through etcd, see
//! `cluster::shared_probe_secret`), whose slaves hear the probes their
//! switches' masters send and must believe them too.
//!
//! Hosts receive probes (they go out of every edge port) and may send LLDP
//! of their own; without the secret they cannot make a tag for another
//! switch's port, and a probe they captured is stale after
//! [`FRESHNESS`] and names the port it was sent from — which is where
//! they received it.

use std::time::{Duration, Instant, SystemTime};

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// Bytes of the tag carried in a probe (a truncated HMAC-SHA256: 128 bits
/// leave nothing to guess).
pub const TAG_LEN: usize = 16;

/// How long after it was sent a probe is believed: a probe crosses one
/// link in milliseconds; a second of slack covers a busy controller.
pub const FRESHNESS: Duration = Duration::from_secs(2);

/// How far apart the clocks of a cluster's hosts may be (NTP keeps them
/// within milliseconds): a shared key takes a probe stamped up to this
/// much in the future, and this much older than [`FRESHNESS`].
pub const CLOCK_SKEW: Duration = Duration::from_secs(1);

/// Why a probe is not believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The tag does not match: forged, or signed by another instance.
    BadTag,
    /// Signed by us, but longer ago than [`FRESHNESS`] (or in the future),
    /// give or take the clock skew a shared key allows.
    Stale,
}

/// The probe key and time base of one controller, or of every node of a
/// cluster.
pub struct ProbeKey {
    key: hmac::Key,
    /// Probe times are `base` plus milliseconds since this instant.
    epoch: Instant,
    /// 0 for a single controller (its own monotonic clock); wall-clock
    /// milliseconds at `epoch` for a shared key, so every node stamps on
    /// one time line.
    base: u64,
    /// Clock difference between nodes tolerated, in milliseconds.
    skew: u64,
    /// The controller id its probes carry.
    id: u64,
}

impl std::fmt::Debug for ProbeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("ProbeKey").finish_non_exhaustive()
    }
}

impl ProbeKey {
    /// A key with a fresh random secret.
    pub fn generate(epoch: Instant) -> ProbeKey {
        let mut secret = [0u8; 32];
        // The system generator fails only without an entropy source, where
        // nothing could be trusted anyway.
        SystemRandom::new()
            .fill(&mut secret)
            .expect("the system random generator works");
        ProbeKey::from_secret(&secret, epoch)
    }

    /// A key from a given secret (tests).
    pub fn from_secret(secret: &[u8], epoch: Instant) -> ProbeKey {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
        ProbeKey {
            id: key_id(&key),
            key,
            epoch,
            base: 0,
            skew: 0,
        }
    }

    /// A cluster's key: the secret every node shares, and the wall clock
    /// (`wall` read at `epoch`) as time base, [`CLOCK_SKEW`] tolerated.
    pub fn shared(secret: &[u8], epoch: Instant, wall: SystemTime) -> ProbeKey {
        let since_unix = wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        ProbeKey {
            base: millis(since_unix),
            skew: millis(CLOCK_SKEW),
            ..ProbeKey::from_secret(secret, epoch)
        }
    }

    /// The controller id its probes carry: derived from the secret, so
    /// the nodes of a cluster carry one id, and a probe of another
    /// controller (or cluster) is told apart before its tag is checked.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The time stamp a probe sent at `now` carries.
    pub fn stamp(&self, now: Instant) -> u64 {
        self.base
            .saturating_add(millis(now.saturating_duration_since(self.epoch)))
    }

    /// The tag of a probe from switch `dpid`, port `port`, stamped `stamp`.
    pub fn sign(&self, dpid: u64, port: u32, stamp: u64) -> [u8; TAG_LEN] {
        let tag = hmac::sign(&self.key, &signed_bytes(dpid, port, stamp));
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(&tag.as_ref()[..TAG_LEN]);
        out
    }

    /// Whether a probe received at `now` is ours, intact and fresh.
    pub fn verify(
        &self,
        dpid: u64,
        port: u32,
        stamp: u64,
        tag: &[u8],
        now: Instant,
    ) -> Result<(), Refusal> {
        // Constant-time comparison of the full HMAC's prefix.
        let expected = self.sign(dpid, port, stamp);
        if tag.len() != TAG_LEN || !constant_time_eq(&expected, tag) {
            return Err(Refusal::BadTag);
        }
        let now = self.stamp(now);
        let fresh = millis(FRESHNESS) + self.skew;
        if stamp > now.saturating_add(self.skew) || now.saturating_sub(stamp) > fresh {
            return Err(Refusal::Stale);
        }
        Ok(())
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The first 8 bytes of the key's tag over a fixed label.
fn key_id(key: &hmac::Key) -> u64 {
    let tag = hmac::sign(key, b"flowgate probe controller id");
    let mut id = [0u8; 8];
    id.copy_from_slice(&tag.as_ref()[..8]);
    u64::from_be_bytes(id)
}

/// dpid, port and time stamp, big-endian: everything a probe claims.
fn signed_bytes(dpid: u64, port: u32, stamp: u64) -> [u8; 20] {
    let mut bytes = [0u8; 20];
    bytes[..8].copy_from_slice(&dpid.to_be_bytes());
    bytes[8..12].copy_from_slice(&port.to_be_bytes());
    bytes[12..].copy_from_slice(&stamp.to_be_bytes());
    bytes
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(epoch: Instant) -> ProbeKey {
        ProbeKey::from_secret(b"a secret of this instance", epoch)
    }

    #[test]
    fn a_probe_it_signed_verifies_while_fresh() {
        let epoch = Instant::now();
        let k = key(epoch);
        let sent = epoch + Duration::from_secs(10);
        let stamp = k.stamp(sent);
        let tag = k.sign(7, 3, stamp);
        assert_eq!(k.verify(7, 3, stamp, &tag, sent), Ok(()));
        assert_eq!(k.verify(7, 3, stamp, &tag, sent + FRESHNESS), Ok(()));
        assert_eq!(
            k.verify(
                7,
                3,
                stamp,
                &tag,
                sent + FRESHNESS + Duration::from_millis(1)
            ),
            Err(Refusal::Stale),
            "a replay after the window"
        );
        assert_eq!(
            k.verify(7, 3, stamp, &tag, sent - Duration::from_millis(1)),
            Err(Refusal::Stale),
            "a time stamp from the future"
        );
    }

    #[test]
    fn any_changed_claim_breaks_the_tag() {
        let epoch = Instant::now();
        let k = key(epoch);
        let stamp = k.stamp(epoch);
        let tag = k.sign(7, 3, stamp);
        assert_eq!(k.verify(8, 3, stamp, &tag, epoch), Err(Refusal::BadTag));
        assert_eq!(k.verify(7, 4, stamp, &tag, epoch), Err(Refusal::BadTag));
        assert_eq!(k.verify(7, 3, stamp + 1, &tag, epoch), Err(Refusal::BadTag));
        let mut flipped = tag;
        flipped[15] ^= 1;
        assert_eq!(k.verify(7, 3, stamp, &flipped, epoch), Err(Refusal::BadTag));
        assert_eq!(
            k.verify(7, 3, stamp, &tag[..8], epoch),
            Err(Refusal::BadTag)
        );
    }

    #[test]
    fn another_instance_cannot_sign_for_this_one() {
        let epoch = Instant::now();
        let ours = ProbeKey::generate(epoch);
        let theirs = ProbeKey::generate(epoch);
        let stamp = ours.stamp(epoch);
        let tag = theirs.sign(7, 3, stamp);
        assert_eq!(ours.verify(7, 3, stamp, &tag, epoch), Err(Refusal::BadTag));
    }

    #[test]
    fn every_node_of_a_cluster_believes_a_probe_any_node_sent() {
        // Node a started at wall time W; node b 10 s later, on a host whose
        // clock runs 300 ms ahead. Their monotonic clocks share nothing.
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let a_epoch = Instant::now();
        let a = ProbeKey::shared(b"the cluster's secret", a_epoch, wall);
        let b_epoch = a_epoch + Duration::from_secs(10);
        let b_wall = wall + Duration::from_secs(10) + Duration::from_millis(300);
        let b = ProbeKey::shared(b"the cluster's secret", b_epoch, b_wall);
        assert_eq!(a.id(), b.id(), "one controller id for the cluster");

        let sent = a_epoch + Duration::from_secs(20);
        let stamp = a.stamp(sent);
        let tag = a.sign(7, 3, stamp);
        assert_eq!(b.verify(7, 3, stamp, &tag, sent), Ok(()));
        assert_eq!(a.verify(7, 3, stamp, &tag, sent), Ok(()));
        // b's probes, stamped by its fast clock, are not "from the future" on a.
        let b_stamp = b.stamp(sent);
        let b_tag = b.sign(7, 3, b_stamp);
        assert_eq!(a.verify(7, 3, b_stamp, &b_tag, sent), Ok(()));
        // A replay is still stale once the window and the skew have passed.
        let late = sent + FRESHNESS + CLOCK_SKEW;
        assert_eq!(
            b.verify(7, 3, stamp, &tag, late),
            Err(Refusal::Stale),
            "a replay after the window"
        );
    }

    #[test]
    fn another_cluster_or_a_single_controller_is_not_believed() {
        let epoch = Instant::now();
        let wall = SystemTime::now();
        let ours = ProbeKey::shared(b"our secret", epoch, wall);
        let theirs = ProbeKey::shared(b"their secret", epoch, wall);
        let single = ProbeKey::generate(epoch);
        assert_ne!(ours.id(), theirs.id());
        assert_ne!(ours.id(), single.id());
        let stamp = theirs.stamp(epoch);
        let tag = theirs.sign(7, 3, stamp);
        assert_eq!(ours.verify(7, 3, stamp, &tag, epoch), Err(Refusal::BadTag));
    }

    #[test]
    fn signing_is_cheap_next_to_a_discovery_round() {
        // 10,000 probes (a round over the largest allowed switches) must
        // cost well under the time a round's packet-outs take.
        let k = ProbeKey::generate(Instant::now());
        let started = Instant::now();
        for port in 0..10_000 {
            std::hint::black_box(k.sign(1, port, 5));
        }
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(200),
            "10,000 tags took {took:?}"
        );
    }
}
