//! Prefix-filtered change notification shared by the store backends.

use super::{StoreEvent, WATCH_CAPACITY};
use std::sync::{Mutex, PoisonError};
use tokio::sync::broadcast;

/// One broadcast channel per watched prefix; a committed event is sent to
/// every channel whose prefix it matches, so receivers only see their keys.
#[derive(Debug, Default)]
pub(super) struct Watchers {
    subs: Mutex<Vec<(String, broadcast::Sender<StoreEvent>)>>,
}

impl Watchers {
    /// A receiver for future events under `prefix`.
    pub(super) fn subscribe(&self, prefix: &str) -> broadcast::Receiver<StoreEvent> {
        let mut subs = self.subs.lock().unwrap_or_else(PoisonError::into_inner);
        subs.retain(|(_, tx)| tx.receiver_count() > 0);
        if let Some((_, tx)) = subs.iter().find(|(p, _)| p == prefix) {
            return tx.subscribe();
        }
        let (tx, rx) = broadcast::channel(WATCH_CAPACITY);
        subs.push((prefix.to_owned(), tx));
        rx
    }

    /// Delivers `events` (already committed) to matching watchers. Channels
    /// whose receivers are all gone are dropped.
    pub(super) fn notify(&self, events: &[StoreEvent]) {
        if events.is_empty() {
            return;
        }
        let mut subs = self.subs.lock().unwrap_or_else(PoisonError::into_inner);
        subs.retain(|(_, tx)| tx.receiver_count() > 0);
        for (prefix, tx) in subs.iter() {
            for event in events.iter().filter(|e| e.key.starts_with(prefix.as_str())) {
                // Err only means every receiver went away meanwhile.
                let _ = tx.send(event.clone());
            }
        }
    }
}
