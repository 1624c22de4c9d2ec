//! Following a shared store: each module that names
//! [`Module::followed_prefixes`] gets a task that watches them and hands
//! what other writers changed to [`Module::follow_store`] on the core, as
//! a module call (so the declarations it makes are diffed, sent and
//! confirmed like a service write's).
//!
//! Watch events are only hints of which keys changed: the task re-reads
//! those keys from the store and the module compares the store's value
//! with its own. That one rule tells this node's writes apart from other
//! writers' without tracking them: the task holds the module's service
//! write lock while it reads and calls, so no local write is between
//! staging (the module already holds the value) and persisting, and a
//! value equal to the module's is either this node's write coming back or
//! a change already followed. Reading instead of using the event's value
//! also means an old event can never undo a newer change. When the watch
//! falls behind ([`RecvError::Lagged`]) and when following starts (changes
//! made between the module's load and the watch), the task re-reads the
//! whole of the module's prefixes instead.
//!
//! With a store only this controller writes (redb), every event is this
//! node's own, and following changes nothing.
//!
//! Each sync moves the revision the module's state is current to
//! ([`Runtime::followed_to`]): the highest revision of the events it
//! handled (one watch over the prefixes delivers them in revision order,
//! so no change below that revision is still on its way), or the store's
//! revision taken before a full re-read. In a
//! cluster the follower then tells the others how far this node applied
//! the module, with the switches that did not confirm
//! ([`crate::cluster::Coordinator::applied`]): a write on another node
//! waits for that when it changed switches this node masters. A sync the
//! module refused moves neither.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::Runtime;
use crate::cluster::AppliedRecord;
use crate::cookie::Owner;
use crate::module::{Followed, StoreSync};
use crate::store::{Store, StoreError};

/// Hints buffered between the watchers and the follower; a full buffer
/// makes the store's watch lag, which ends in a full re-read.
const HINTS: usize = 1024;
/// Wait before reading again after the store failed (etcd unreachable).
const RETRY: Duration = Duration::from_secs(1);

/// What a watch told the follower.
enum Hint {
    /// A key changed at a revision.
    Changed(String, i64),
    /// Events were lost: re-read everything.
    Lagged,
}

/// Watches `prefixes` for the `index`-th module (`owner`) and follows
/// them for as long as the runtime runs.
pub(super) fn start(runtime: Runtime, index: usize, owner: Owner, prefixes: &[&'static str]) {
    let (tx, rx) = mpsc::channel(HINTS);
    let prefixes = prefixes.to_vec();
    // One watch for all the prefixes, so hints arrive in revision order: a
    // hint of a later revision never overtakes an earlier one on another
    // prefix, and the revision a sync reports covers every change below it.
    // Subscribed before the first full read, so nothing committed after
    // that read is missed.
    let mut watch = runtime.store().watch(common_prefix(&prefixes));
    let watched = prefixes.clone();
    tokio::spawn(async move {
        loop {
            let hint = match watch.recv().await {
                Ok(event) if watched.iter().any(|p| event.key.starts_with(p)) => {
                    Hint::Changed(event.key, event.revision)
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(missed)) => {
                    warn!(?owner, missed, "store watch fell behind; re-reading");
                    Hint::Lagged
                }
                Err(RecvError::Closed) => return,
            };
            if tx.send(hint).await.is_err() {
                return;
            }
        }
    });
    // Present from now on: this node's writes of the module are guarded
    // (by revision 0, never read, until the first full read is done).
    runtime.followed_to(owner, 0);
    tokio::spawn(follow(runtime, index, owner, prefixes, rx));
}

async fn follow(
    runtime: Runtime,
    index: usize,
    owner: Owner,
    prefixes: Vec<&'static str>,
    mut hints: mpsc::Receiver<Hint>,
) {
    let mut complete = true;
    let mut keys = BTreeSet::new();
    // The highest revision of the events in `keys`.
    let mut revision = 0;
    // The module refused the last sync: the next one re-reads everything,
    // so the keys it held are not lost.
    let mut refused = false;
    loop {
        if !complete && keys.is_empty() {
            match hints.recv().await {
                Some(hint) => take(hint, &mut complete, &mut keys, &mut revision),
                None => return,
            }
            complete |= std::mem::take(&mut refused);
        }
        // One read and one call for everything that is waiting.
        while let Ok(hint) = hints.try_recv() {
            take(hint, &mut complete, &mut keys, &mut revision);
        }
        let serialized = runtime.write_lock(owner).lock_owned().await;
        let (sync, read_at) = match read(runtime.store().clone(), &prefixes, complete, &keys).await
        {
            Ok(read) => read,
            Err(e) => {
                warn!(?owner, error = %e, "cannot read followed store keys; retrying");
                drop(serialized);
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let changed = sync.changed.len();
        match runtime
            .call_index(index, move |module, ctx| module.follow_store(&sync, ctx))
            .await
        {
            Ok(applied) => {
                refused = applied.value == Followed::Refused;
                if !refused {
                    let reached = revision.max(read_at);
                    runtime.followed_to(owner, reached);
                    if let Some(coordinator) = runtime.coordinator() {
                        let mut failed = applied.unconfirmed.clone();
                        failed.extend(applied.rejections.iter().map(|r| r.dpid));
                        failed.sort_unstable();
                        failed.dedup();
                        let record = AppliedRecord {
                            revision: runtime.followed_revision(owner).unwrap_or(reached),
                            failed,
                        };
                        coordinator.applied(owner.name(), record);
                    }
                }
                debug!(?owner, changed, complete, ?applied.value, sent = ?applied.sent, "followed the store");
                for rejection in &applied.rejections {
                    warn!(
                        ?owner,
                        ?rejection,
                        "a switch refused a followed store change"
                    );
                }
            }
            Err(_) => return,
        }
        complete = false;
        keys.clear();
    }
}

/// The longest prefix every one of `prefixes` starts with.
fn common_prefix<'a>(prefixes: &[&'a str]) -> &'a str {
    let Some((first, rest)) = prefixes.split_first() else {
        return "";
    };
    let len = rest.iter().fold(first.len(), |len, p| {
        first[..len]
            .char_indices()
            .zip(p.chars())
            .find(|((_, a), b)| a != b)
            .map_or(len.min(p.len()), |((i, _), _)| i)
    });
    &first[..len]
}

fn take(hint: Hint, complete: &mut bool, keys: &mut BTreeSet<String>, revision: &mut i64) {
    match hint {
        Hint::Changed(key, at) => {
            keys.insert(key);
            *revision = (*revision).max(at);
        }
        Hint::Lagged => *complete = true,
    }
}

/// The store's current values: of `keys`, or of everything under
/// `prefixes` when `complete`, with the store's revision before a complete
/// read (the read reflects every commit up to it; 0 otherwise).
async fn read(
    store: Arc<dyn Store>,
    prefixes: &[&'static str],
    complete: bool,
    keys: &BTreeSet<String>,
) -> Result<(StoreSync, i64), StoreError> {
    let prefixes = prefixes.to_vec();
    let keys: Vec<String> = keys.iter().cloned().collect();
    let read = tokio::task::spawn_blocking(move || {
        let mut changed = Vec::new();
        let mut read_at = 0;
        if complete {
            read_at = store.revision()?;
            for prefix in prefixes {
                changed.extend(
                    store
                        .list_prefix(prefix)?
                        .into_iter()
                        .map(|(key, value)| (key, Some(value))),
                );
            }
        } else {
            for key in keys {
                let value = store.get(&key)?;
                changed.push((key, value));
            }
        }
        Ok((StoreSync { changed, complete }, read_at))
    });
    read.await
        .unwrap_or_else(|e| Err(StoreError::Task(e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::common_prefix;

    #[test]
    fn one_watch_covers_every_followed_prefix() {
        assert_eq!(
            common_prefix(&["firewall/rules/", "firewall/policy"]),
            "firewall/"
        );
        assert_eq!(common_prefix(&["overlay/networks/"]), "overlay/networks/");
        assert_eq!(common_prefix(&["lb/vips/", "qos/"]), "");
        assert_eq!(common_prefix(&["a/b", "a/"]), "a/");
        assert_eq!(common_prefix(&[]), "");
    }
}
