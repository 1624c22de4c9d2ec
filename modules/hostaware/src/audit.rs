//! The audit trail: every threshold met, action applied or reverted,
//! stale source and failure, persisted (the newest `keep_events`) and put
//! on the controller's event bus for the live stream.

use std::sync::Arc;
use std::time::SystemTime;

use flowgate_controller::events::{Bus, BusEvent, Level};
use flowgate_controller::store::{Op, Store, StoreExt};
use serde::{Deserialize, Serialize};
use tracing::warn;
use utoipa::ToSchema;

use crate::actions::Resource;

pub const PREFIX: &str = "hostaware/events/";

/// What kind of event, as Floodlight's host-aware prototype named them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Kind {
    Info,
    Warn,
    ThresholdMet,
    ActionApplied,
    Reverted,
    SourceStale,
}

impl Kind {
    fn level(self) -> Level {
        match self {
            Kind::Warn | Kind::SourceStale => Level::Warn,
            _ => Level::Info,
        }
    }
}

/// One entry of the trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    pub seq: u64,
    #[serde(with = "crate::status::time")]
    #[schema(value_type = String, example = "2026-12-06T07:00:00.000Z")]
    pub time: SystemTime,
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    pub message: String,
    /// What the event touched in other modules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
}

impl AuditEvent {
    pub fn new(kind: Kind, message: impl Into<String>) -> AuditEvent {
        AuditEvent {
            seq: 0,
            time: SystemTime::UNIX_EPOCH,
            kind,
            host: None,
            rule: None,
            metric: None,
            value: None,
            threshold: None,
            message: message.into(),
            resources: Vec::new(),
        }
    }

    pub fn host(mut self, host: &str) -> Self {
        self.host = Some(host.to_owned());
        self
    }

    pub fn rule(mut self, rule: u32) -> Self {
        self.rule = Some(rule);
        self
    }

    pub fn reading(mut self, metric: String, value: Option<f64>, threshold: f64) -> Self {
        self.metric = Some(metric);
        self.value = value;
        self.threshold = Some(threshold);
        self
    }

    pub fn resources(mut self, resources: Vec<Resource>) -> Self {
        self.resources = resources;
        self
    }
}

/// The number after the newest event in `store`.
fn next_seq(store: &dyn Store) -> u64 {
    match store.list_prefix(PREFIX) {
        Ok(entries) => entries
            .last()
            .and_then(|(k, _)| k[PREFIX.len()..].parse::<u64>().ok())
            .map_or(1, |n| n + 1),
        Err(e) => {
            warn!(error = %e, "could not read the host-aware audit trail; numbering from 1");
            1
        }
    }
}

fn key(seq: u64) -> String {
    format!("{PREFIX}{seq:020}")
}

/// Where events go.
pub struct AuditLog {
    store: Arc<dyn Store>,
    bus: Option<Bus>,
    next: u64,
    keep: u64,
}

impl AuditLog {
    /// Continues the trail in `store` after its newest event.
    pub fn open(store: Arc<dyn Store>, bus: Option<Bus>, keep: u32) -> AuditLog {
        let next = next_seq(store.as_ref());
        AuditLog {
            store,
            bus,
            next,
            keep: u64::from(keep),
        }
    }

    /// Continues after the newest event in the store again: another node
    /// (the cluster's previous actor) may have written since.
    pub fn resume(&mut self) {
        self.next = next_seq(self.store.as_ref()).max(self.next);
    }

    pub fn set_keep(&mut self, keep: u32) {
        self.keep = u64::from(keep);
    }

    /// Stamps, stores and broadcasts `event`; drops the oldest beyond
    /// `keep`.
    pub fn record(&mut self, mut event: AuditEvent, now: SystemTime) -> AuditEvent {
        event.seq = self.next;
        event.time = now;
        self.next += 1;
        let mut ops = Vec::with_capacity(2);
        match Op::put_json(key(event.seq), &event) {
            Ok(op) => ops.push(op),
            Err(e) => warn!(error = %e, "could not encode a host-aware event"),
        }
        if event.seq > self.keep {
            ops.push(Op::delete(key(event.seq - self.keep)));
        }
        if let Err(e) = self.store.apply(ops) {
            warn!(error = %e, seq = event.seq, "could not store a host-aware event");
        }
        if let Some(bus) = &self.bus {
            bus.send(BusEvent::Module {
                module: "hostaware".into(),
                kind: serde_json::to_value(event.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                level: event.kind.level(),
                message: event.message.clone(),
                detail: serde_json::to_value(&event).unwrap_or_default(),
            });
        }
        event
    }
}

/// Events in `store` after `since`, oldest first, at most `limit`, that
/// `keep` accepts.
pub fn list(
    store: &dyn Store,
    since: u64,
    limit: usize,
    keep: impl Fn(&AuditEvent) -> bool,
) -> anyhow::Result<Vec<AuditEvent>> {
    Ok(store
        .list_json::<AuditEvent>(PREFIX)?
        .into_iter()
        .map(|(_, e)| e)
        .filter(|e| e.seq > since && keep(e))
        .take(limit)
        .collect())
}

#[cfg(test)]
mod tests {
    use flowgate_controller::store::MemoryStore;

    use super::*;

    #[test]
    fn the_trail_keeps_the_newest_and_numbers_on_after_a_restart() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let bus = Bus::default();
        let mut seen = bus.subscribe();
        let mut log = AuditLog::open(store.clone(), Some(bus.clone()), 100);
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        for i in 0..150 {
            let e = AuditEvent::new(Kind::ThresholdMet, format!("event {i}"))
                .host("web1")
                .rule(3)
                .reading("load_one".into(), Some(5.0), 4.0);
            log.record(e, now);
        }
        let kept = list(store.as_ref(), 0, usize::MAX, |_| true).unwrap();
        assert_eq!(kept.len(), 100);
        assert_eq!((kept[0].seq, kept[99].seq), (51, 150));
        let first = seen.try_recv().unwrap();
        let BusEvent::Module { module, kind, .. } = &first.event else {
            panic!("a module event")
        };
        assert_eq!(
            (module.as_str(), kind.as_str()),
            ("hostaware", "THRESHOLD_MET")
        );
        let mut again = AuditLog::open(store.clone(), None, 100);
        assert_eq!(
            again.record(AuditEvent::new(Kind::Info, "back"), now).seq,
            151
        );
        let tail = list(store.as_ref(), 149, 10, |e| e.kind == Kind::Info).unwrap();
        assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), [151]);
    }
}
