//! Persistence behind one trait (DESIGN.md §6).
//!
//! A [`Store`] is an ordered map from `String` keys to byte values with
//! prefix listing, atomic multi-key writes ([`Store::apply`]) and change
//! notification ([`Store::watch`]). Keys are `/`-separated paths owned by
//! one module each, e.g. `firewall/rules/42`; values are usually JSON written
//! through the typed helpers of [`StoreExt`].
//!
//! Backends:
//! - [`RedbStore`]: the default, an embedded crash-safe file (`flowgate.redb`)
//!   in the data directory. No server to run.
//! - [`EtcdStore`]: etcd (v3 API) under a key prefix, shared by every
//!   controller pointed at it; watchers see changes from any writer.
//! - [`MemoryStore`]: the same semantics in memory, for tests.
//!
//! # Blocking
//! The trait is synchronous. Reads take microseconds; every write commits
//! durably (fsync) before it returns, which takes around a millisecond on an
//! SSD and more on slow disks. Async code doing a single write on a request
//! path may call the store directly; bulk work or writes in a hot loop should
//! go through `tokio::task::spawn_blocking` so they do not stall a runtime
//! worker. An etcd store's calls take a network round trip (bounded by its
//! timeout) and block the same way.

mod etcd_endpoints;
mod etcd_store;
mod memory;
mod redb_store;
mod watch;

#[cfg(test)]
pub(crate) mod tests;

pub(crate) use etcd_endpoints::{Endpoints, Pinned};
pub(crate) use etcd_store::connect_options;
pub use etcd_store::{EtcdConfig, EtcdStore, EtcdTls};
pub use memory::MemoryStore;
pub use redb_store::RedbStore;

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use tokio::sync::broadcast;

/// Everything a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The embedded database failed (I/O error, corruption, ...). Boxed:
    /// redb's error is large and would bloat every `Result` of the store.
    #[error("store backend error: {0}")]
    Backend(Box<redb::Error>),
    /// The backend cannot be reached or did not answer in time (etcd down,
    /// no quorum, too much contention): the write was not acknowledged
    /// (when only etcd's answer was lost it may still have been committed,
    /// and watchers then see it), and trying again later may work. `cause`
    /// says what happened.
    #[error("store unavailable: {cause}")]
    Unavailable { cause: String },
    /// etcd refused a request or the etcd store could not be set up.
    #[error("etcd store: {0}")]
    Etcd(String),
    /// The data directory (or a file the store reads) could not be opened.
    #[error("store directory {path}: {source}")]
    Dir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// A value could not be serialized for `key`.
    #[error("cannot encode value for key {key:?}: {source}")]
    Encode {
        key: String,
        source: serde_json::Error,
    },
    /// The blocking task performing a write failed (panicked or was
    /// cancelled at shutdown).
    #[error("store write task failed: {0}")]
    Task(String),
    /// A stored value under `key` is not valid for the requested type
    /// (usually a schema change without a migration).
    #[error("cannot decode value of key {key:?}: {source}")]
    Decode {
        key: String,
        source: serde_json::Error,
    },
    /// A batch's [`Guard`] failed: `key` changed at `revision`, after the
    /// revision the writer had read. Nothing of the batch was written.
    #[error("store key {key:?} changed at revision {revision}, after revision {since}")]
    Conflict {
        key: String,
        revision: i64,
        since: i64,
    },
}

/// Result alias for store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One write inside an atomic [`Store::apply`] batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Sets `key` to `value`, replacing any previous value.
    Put { key: String, value: Vec<u8> },
    /// Removes `key` if present.
    Delete { key: String },
    /// Removes every key starting with `prefix`. Followed by `Put`s in the
    /// same batch this is an atomic bulk replace of a module's objects.
    DeletePrefix { prefix: String },
}

impl Op {
    /// A `Put` of raw bytes.
    pub fn put(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Op {
        Op::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    /// A `Put` of `value` serialized as JSON.
    pub fn put_json<T: Serialize + ?Sized>(key: impl Into<String>, value: &T) -> Result<Op> {
        let key = key.into();
        match serde_json::to_vec(value) {
            Ok(value) => Ok(Op::Put { key, value }),
            Err(source) => Err(StoreError::Encode { key, source }),
        }
    }

    /// A `Delete` of one key.
    pub fn delete(key: impl Into<String>) -> Op {
        Op::Delete { key: key.into() }
    }

    /// A `DeletePrefix`.
    pub fn delete_prefix(prefix: impl Into<String>) -> Op {
        Op::DeletePrefix {
            prefix: prefix.into(),
        }
    }
}

/// The condition of a guarded batch ([`Store::apply_guarded`]): `key` was
/// last changed at or before revision `since` (an absent key counts as
/// never changed), else the batch fails with [`StoreError::Conflict`].
/// Compare-and-swap for writers that validated against what they had read
/// up to `since`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    pub key: String,
    pub since: i64,
}

/// A committed change, as seen by watchers and returned by [`Store::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreEvent {
    pub key: String,
    pub kind: EventKind,
    /// The store revision of the commit (every event of one batch has the
    /// same): etcd's revision, or a counter of the local stores' commits
    /// since they were opened (they have one writer). Revisions grow with
    /// commit order.
    pub revision: i64,
}

/// What happened to a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// The key now holds this value.
    Put(Vec<u8>),
    /// The key existed and was removed.
    Delete,
}

/// How many events a watcher may fall behind before it sees
/// [`broadcast::error::RecvError::Lagged`]; a lagging watcher should re-read
/// its prefix with [`Store::list_prefix`].
pub const WATCH_CAPACITY: usize = 1024;

/// The persistence interface every module uses. See the module docs on
/// blocking.
pub trait Store: Send + Sync + 'static {
    /// The value of `key`, if any.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Every `(key, value)` whose key starts with `prefix`, sorted by key.
    /// An empty prefix lists everything.
    fn list_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>>;

    /// Applies `ops` in order inside one transaction: either all of them are
    /// durably committed or none is. Returns the net change per key, in the
    /// order keys were first touched: `Put` for every key left holding a
    /// value, `Delete` for every key that existed and is now gone (deleting
    /// an absent key yields no event). Watchers receive the same events.
    fn apply(&self, ops: Vec<Op>) -> Result<Vec<StoreEvent>> {
        self.apply_guarded(ops, None)
    }

    /// [`Store::apply`] if `guard` holds, checked in the same transaction;
    /// else nothing is written and the call fails with
    /// [`StoreError::Conflict`].
    fn apply_guarded(&self, ops: Vec<Op>, guard: Option<&Guard>) -> Result<Vec<StoreEvent>>;

    /// The store's current revision: every commit up to it is visible to
    /// reads made after this returns.
    fn revision(&self) -> Result<i64>;

    /// The revision `key` was last changed at (0: absent; for the local
    /// stores also: not changed since the store was opened).
    fn changed_at(&self, key: &str) -> Result<i64>;

    /// Events for committed changes to keys starting with `prefix`, in commit
    /// order. Only changes after this call are delivered.
    fn watch(&self, prefix: &str) -> broadcast::Receiver<StoreEvent>;

    /// Sets `key` to `value` (durable when this returns).
    fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.apply(vec![Op::put(key, value)]).map(drop)
    }

    /// Removes `key`; `true` if it existed.
    fn delete(&self, key: &str) -> Result<bool> {
        Ok(!self.apply(vec![Op::delete(key)])?.is_empty())
    }

    /// Sets several keys atomically.
    fn put_batch(&self, entries: Vec<(String, Vec<u8>)>) -> Result<()> {
        let ops = entries
            .into_iter()
            .map(|(key, value)| Op::Put { key, value })
            .collect();
        self.apply(ops).map(drop)
    }
}

/// Typed JSON helpers for any [`Store`], including `dyn Store`.
pub trait StoreExt: Store {
    /// The value of `key` decoded from JSON.
    fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.get(key)? {
            None => Ok(None),
            Some(bytes) => decode(key, &bytes).map(Some),
        }
    }

    /// Stores `value` as JSON under `key`.
    fn put_json<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        self.apply(vec![Op::put_json(key, value)?]).map(drop)
    }

    /// Every value under `prefix` decoded from JSON, sorted by key. One
    /// undecodable value fails the whole listing (naming its key) rather than
    /// silently hiding an object.
    fn list_json<T: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<(String, T)>> {
        self.list_prefix(prefix)?
            .into_iter()
            .map(|(key, bytes)| {
                let value = decode(&key, &bytes)?;
                Ok((key, value))
            })
            .collect()
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Decode {
        key: key.to_owned(),
        source,
    })
}

/// The key-value primitives of one open write transaction. Both backends
/// implement it so [`run_ops`] gives them identical batch semantics.
trait WriteTxn {
    /// Inserts; `true` if the key existed before.
    fn insert(&mut self, key: &str, value: &[u8]) -> Result<bool>;
    /// Removes; `true` if the key existed before.
    fn remove(&mut self, key: &str) -> Result<bool>;
    /// The keys currently starting with `prefix`.
    fn keys_with_prefix(&mut self, prefix: &str) -> Result<Vec<String>>;
}

/// Revisions of a store with one writer (redb, memory): a commit counter,
/// and the revision each key was last changed at since the store opened.
#[derive(Debug, Default)]
struct LocalRevisions {
    last: i64,
    changed: HashMap<String, i64>,
}

impl LocalRevisions {
    fn changed_at(&self, key: &str) -> i64 {
        self.changed.get(key).copied().unwrap_or(0)
    }

    fn check(&self, guard: Option<&Guard>) -> Result<()> {
        let Some(guard) = guard else { return Ok(()) };
        match self.changed.get(&guard.key) {
            Some(&revision) if revision > guard.since => Err(StoreError::Conflict {
                key: guard.key.clone(),
                revision,
                since: guard.since,
            }),
            _ => Ok(()),
        }
    }

    /// Gives committed `events` the next revision (none if nothing changed).
    fn commit(&mut self, events: &mut [StoreEvent]) {
        if events.is_empty() {
            return;
        }
        self.last += 1;
        for event in events {
            event.revision = self.last;
            self.changed.insert(event.key.clone(), self.last);
        }
    }
}

/// Applies `ops` to `txn` and computes the net events (see [`Store::apply`]),
/// at revision 0: the backend sets it when it commits. The caller commits
/// (or drops, on error) the transaction.
fn run_ops(txn: &mut impl WriteTxn, ops: Vec<Op>) -> Result<Vec<StoreEvent>> {
    /// Per touched key: did it exist before the batch, and its final value.
    struct Touched {
        existed: bool,
        value: Option<Vec<u8>>,
    }
    let mut order: Vec<String> = Vec::new();
    let mut touched: HashMap<String, Touched> = HashMap::new();
    let mut record = |key: &str, existed: bool, value: Option<Vec<u8>>| match touched.get_mut(key) {
        Some(t) => t.value = value,
        None => {
            order.push(key.to_owned());
            touched.insert(key.to_owned(), Touched { existed, value });
        }
    };
    for op in ops {
        match op {
            Op::Put { key, value } => {
                let existed = txn.insert(&key, &value)?;
                record(&key, existed, Some(value));
            }
            Op::Delete { key } => {
                let existed = txn.remove(&key)?;
                record(&key, existed, None);
            }
            Op::DeletePrefix { prefix } => {
                for key in txn.keys_with_prefix(&prefix)? {
                    txn.remove(&key)?;
                    record(&key, true, None);
                }
            }
        }
    }
    Ok(order
        .into_iter()
        .filter_map(|key| {
            let t = touched.remove(&key)?;
            let kind = match t.value {
                Some(v) => EventKind::Put(v),
                None if t.existed => EventKind::Delete,
                None => return None,
            };
            Some(StoreEvent {
                key,
                kind,
                revision: 0,
            })
        })
        .collect())
}
