//! etcd as the cluster uses it, on a simulated clock: a global revision
//! bumped by every write transaction, keys with an optional lease, leases
//! that expire TTL after the last keepalive received and take their keys
//! with them. Plus the leader's step as the wiring will run it: read the
//! keys, [`assign`], write the moves in one transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::{assign, keys, Dpid, Generation, LeaseId, Masters, Mastership, Move, NodeId};

#[derive(Debug)]
struct Entry {
    value: String,
    mod_revision: i64,
    lease: Option<LeaseId>,
}

#[derive(Debug)]
struct ServerLease {
    ttl: Duration,
    expires: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct FakeEtcd {
    revision: i64,
    next_lease: LeaseId,
    leases: BTreeMap<LeaseId, ServerLease>,
    kv: BTreeMap<String, Entry>,
}

impl FakeEtcd {
    pub(crate) fn revision(&self) -> i64 {
        self.revision
    }

    pub(crate) fn grant(&mut self, now: Instant, ttl: Duration) -> LeaseId {
        self.next_lease += 1;
        let id = self.next_lease;
        self.leases.insert(
            id,
            ServerLease {
                ttl,
                expires: now + ttl,
            },
        );
        id
    }

    /// A keepalive received at `now`: the TTL left, zero if the lease is gone.
    pub(crate) fn keepalive(&mut self, now: Instant, id: LeaseId) -> Duration {
        match self.leases.get_mut(&id) {
            Some(lease) => {
                lease.expires = now + lease.ttl;
                lease.ttl
            }
            None => Duration::ZERO,
        }
    }

    /// Expires the leases whose time has come, deleting their keys (one
    /// revision per lease, as etcd does).
    pub(crate) fn tick(&mut self, now: Instant) {
        let expired: Vec<LeaseId> = self
            .leases
            .iter()
            .filter(|(_, l)| l.expires <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.leases.remove(&id);
            self.revision += 1;
            self.kv.retain(|_, e| e.lease != Some(id));
        }
    }

    /// One transaction of puts (`Some`) and deletes (`None`); its revision.
    pub(crate) fn txn(&mut self, ops: &[(String, Option<String>, Option<LeaseId>)]) -> i64 {
        self.revision += 1;
        for (key, value, lease) in ops {
            match value {
                Some(value) => {
                    self.kv.insert(
                        key.clone(),
                        Entry {
                            value: value.clone(),
                            mod_revision: self.revision,
                            lease: *lease,
                        },
                    );
                }
                None => {
                    self.kv.remove(key);
                }
            }
        }
        self.revision
    }

    pub(crate) fn put(&mut self, key: String, value: &str, lease: Option<LeaseId>) -> i64 {
        self.txn(&[(key, Some(value.to_string()), lease)])
    }

    fn prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a String, &'a Entry)> {
        self.kv
            .range(prefix.to_string()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
    }

    pub(crate) fn live(&self) -> BTreeSet<NodeId> {
        self.prefix(keys::NODES)
            .filter_map(|(k, _)| keys::parse_node(k))
            .collect()
    }

    pub(crate) fn connections(&self) -> BTreeMap<Dpid, BTreeSet<NodeId>> {
        let mut by_switch: BTreeMap<Dpid, BTreeSet<NodeId>> = BTreeMap::new();
        for (node, dpid) in self
            .prefix(keys::CONNECTIONS)
            .filter_map(|(k, _)| keys::parse_connection(k))
        {
            by_switch.entry(dpid).or_default().insert(node);
        }
        by_switch
    }

    /// The masters keys: node id as the value, generation = `mod_revision`.
    pub(crate) fn masters(&self) -> Masters {
        self.prefix(keys::MASTERS)
            .filter_map(|(k, e)| {
                Some((
                    keys::parse_master(k)?,
                    Mastership {
                        node: NodeId::new(e.value.clone())?,
                        generation: Generation::from_revision(e.mod_revision),
                    },
                ))
            })
            .collect()
    }

    /// The leader's step: assign from what the keys say and write the moves
    /// in one transaction (none if nothing moves: unchanged keys are never
    /// rewritten, which would bump their generation for nothing).
    pub(crate) fn leader_step(&mut self) -> Vec<Move> {
        let moves = assign(&self.live(), &self.connections(), &self.masters());
        if !moves.is_empty() {
            let ops: Vec<_> = moves
                .iter()
                .map(|m| {
                    (
                        keys::master(m.dpid),
                        m.to.as_ref().map(|n| n.to_string()),
                        None,
                    )
                })
                .collect();
            self.txn(&ops);
        }
        moves
    }
}
