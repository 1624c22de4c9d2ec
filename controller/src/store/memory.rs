//! In-memory [`Store`] with the same semantics as the file store, for tests.

use super::watch::Watchers;
use super::{run_ops, Guard, LocalRevisions, Op, Result, Store, StoreEvent, WriteTxn};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Mutex, PoisonError};
use tokio::sync::broadcast;

/// A [`Store`] kept in a `BTreeMap`; nothing survives the process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    data: Mutex<(BTreeMap<String, Vec<u8>>, LocalRevisions)>,
    watchers: Watchers,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }
}

/// A batch runs on a copy that replaces the map only when every op
/// succeeded, mirroring a transaction that is dropped on error.
struct MemTxn(BTreeMap<String, Vec<u8>>);

impl WriteTxn for MemTxn {
    fn insert(&mut self, key: &str, value: &[u8]) -> Result<bool> {
        Ok(self.0.insert(key.to_owned(), value.to_vec()).is_some())
    }

    fn remove(&mut self, key: &str) -> Result<bool> {
        Ok(self.0.remove(key).is_some())
    }

    fn keys_with_prefix(&mut self, prefix: &str) -> Result<Vec<String>> {
        Ok(self
            .0
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let data = self.data.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(data.0.get(key).cloned())
    }

    fn list_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let data = self.data.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(data
            .0
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn apply_guarded(&self, ops: Vec<Op>, guard: Option<&Guard>) -> Result<Vec<StoreEvent>> {
        // Holding the lock through notify keeps event order == commit order.
        let mut data = self.data.lock().unwrap_or_else(PoisonError::into_inner);
        let (map, revisions) = &mut *data;
        revisions.check(guard)?;
        let mut txn = MemTxn(map.clone());
        let mut events = run_ops(&mut txn, ops)?;
        *map = txn.0;
        revisions.commit(&mut events);
        self.watchers.notify(&events);
        Ok(events)
    }

    fn changed_at(&self, key: &str) -> Result<i64> {
        Ok(self
            .data
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .changed_at(key))
    }

    fn revision(&self) -> Result<i64> {
        Ok(self
            .data
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .last)
    }

    fn watch(&self, prefix: &str) -> broadcast::Receiver<StoreEvent> {
        self.watchers.subscribe(prefix)
    }
}
