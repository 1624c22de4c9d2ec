//! The default [`Store`]: one embedded, crash-safe redb file.
//!
//! redb is a copy-on-write B-tree with checksummed commits: a crash leaves
//! the last committed transaction intact. Every write transaction here uses
//! redb's default `Durability::Immediate`, so `commit` fsyncs before a write
//! call returns (DESIGN.md §5: 2xx only after the write is persisted).

use super::watch::Watchers;
use super::{run_ops, Guard, LocalRevisions, Op, Result, Store, StoreError, StoreEvent, WriteTxn};
use redb::{Database, ReadableTable, Table, TableDefinition};
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use tokio::sync::broadcast;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "flowgate.redb";

/// All keys live in one table; modules separate themselves by key prefix.
const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");

/// A [`Store`] in `<dir>/flowgate.redb`.
pub struct RedbStore {
    db: Database,
    /// Serializes commit + notify so watchers see events in commit order
    /// (redb serializes writers itself, but notification happens after),
    /// and numbers the commits.
    write_lock: Mutex<LocalRevisions>,
    watchers: Watchers,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore").finish_non_exhaustive()
    }
}

fn backend(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Backend(Box::new(e.into()))
}

impl RedbStore {
    /// Opens (or creates) the store in `dir`, creating the directory. Fails
    /// if another process holds the file open.
    pub fn open(dir: &Path) -> Result<RedbStore> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
            path: dir.to_owned(),
            source,
        })?;
        let db = Database::create(dir.join(DB_FILE)).map_err(backend)?;
        // Create the table up front so readers never see "table missing".
        let txn = db.begin_write().map_err(backend)?;
        txn.open_table(KV).map_err(backend)?;
        txn.commit().map_err(backend)?;
        Ok(RedbStore {
            db,
            write_lock: Mutex::default(),
            watchers: Watchers::default(),
        })
    }
}

impl WriteTxn for Table<'_, &'static str, &'static [u8]> {
    fn insert(&mut self, key: &str, value: &[u8]) -> Result<bool> {
        Ok(Table::insert(self, key, value).map_err(backend)?.is_some())
    }

    fn remove(&mut self, key: &str) -> Result<bool> {
        Ok(Table::remove(self, key).map_err(backend)?.is_some())
    }

    fn keys_with_prefix(&mut self, prefix: &str) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        for entry in self.range(prefix..).map_err(backend)? {
            let (k, _) = entry.map_err(backend)?;
            let k = k.value();
            if !k.starts_with(prefix) {
                break;
            }
            keys.push(k.to_owned());
        }
        Ok(keys)
    }
}

impl Store for RedbStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(KV).map_err(backend)?;
        let value = table.get(key).map_err(backend)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn list_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(KV).map_err(backend)?;
        let mut out = Vec::new();
        for entry in table.range(prefix..).map_err(backend)? {
            let (k, v) = entry.map_err(backend)?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_owned(), v.value().to_vec()));
        }
        Ok(out)
    }

    fn apply_guarded(&self, ops: Vec<Op>, guard: Option<&Guard>) -> Result<Vec<StoreEvent>> {
        let mut revisions = self
            .write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        revisions.check(guard)?;
        let txn = self.db.begin_write().map_err(backend)?;
        let mut events = {
            let mut table = txn.open_table(KV).map_err(backend)?;
            run_ops(&mut table, ops)?
        };
        // On any error above `txn` is dropped, which aborts it.
        txn.commit().map_err(backend)?;
        revisions.commit(&mut events);
        self.watchers.notify(&events);
        Ok(events)
    }

    fn changed_at(&self, key: &str) -> Result<i64> {
        Ok(self
            .write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .changed_at(key))
    }

    fn revision(&self) -> Result<i64> {
        Ok(self
            .write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last)
    }

    fn watch(&self, prefix: &str) -> broadcast::Receiver<StoreEvent> {
        self.watchers.subscribe(prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `apply` relies on redb discarding a write transaction that is dropped
    /// without commit (any `?` inside the batch does that).
    #[test]
    fn dropped_transaction_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = RedbStore::open(dir.path()).expect("open");
        let txn = s.db.begin_write().expect("begin");
        {
            let mut t = txn.open_table(KV).expect("table");
            WriteTxn::insert(&mut t, "ghost", b"x").expect("insert");
        }
        drop(txn);
        assert_eq!(s.get("ghost").expect("get"), None);
    }
}
