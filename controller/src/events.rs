//! The event bus: one typed stream of what happens in the controller —
//! switches, ports, links, hosts, resources changed through module
//! services, switch rejections, module events (health transitions,
//! reactions). It feeds modules that subscribe ([`crate::module::Module::subscriptions`]),
//! the `/metrics` counters and the live REST stream (`GET /api/v1/events`).
//!
//! The core puts events on the bus in the order it handles them; each gets
//! a sequence number and a wall-clock time. External subscribers get a
//! bounded broadcast receiver: one that falls behind loses the oldest
//! events and is told how many.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Serialize, Serializer};
use tokio::sync::broadcast;

use crate::runtime::rejection::Rejected;

/// Events an external subscriber may fall behind by before losing some.
pub const BUS_CAPACITY: usize = 4096;

/// Something that happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BusEvent {
    SwitchUp {
        #[serde(serialize_with = "hex_dpid")]
        dpid: u64,
        version: u8,
    },
    SwitchDown {
        #[serde(serialize_with = "hex_dpid")]
        dpid: u64,
    },
    Port {
        #[serde(serialize_with = "hex_dpid")]
        dpid: u64,
        port: u32,
        name: String,
        change: PortChange,
    },
    /// A directed link as discovery sees it.
    Link {
        #[serde(serialize_with = "hex_dpid")]
        src_dpid: u64,
        src_port: u32,
        #[serde(serialize_with = "hex_dpid")]
        dst_dpid: u64,
        dst_port: u32,
        up: bool,
    },
    Host {
        mac: String,
        #[serde(serialize_with = "hex_dpid")]
        dpid: u64,
        port: u32,
        change: HostChange,
    },
    /// A module resource changed through its service.
    Resource {
        module: String,
        kind: String,
        id: String,
        action: ResourceAction,
        /// Who asked: `rest`, or the module (and object) that did.
        origin: String,
    },
    /// A switch refused something a module wanted.
    Rejected {
        #[serde(serialize_with = "hex_dpid")]
        dpid: u64,
        owner: String,
        error: String,
        what: Rejected,
    },
    /// Anything else a module reports (health transitions, reactions).
    Module {
        module: String,
        kind: String,
        level: Level,
        message: String,
        #[serde(skip_serializing_if = "serde_json::Value::is_null")]
        detail: serde_json::Value,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PortChange {
    Added,
    Deleted,
    Up,
    Down,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostChange {
    Appeared,
    Moved,
    Gone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceAction {
    Created,
    Updated,
    Deleted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    Info,
    Warn,
}

fn hex_dpid<S: Serializer>(dpid: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::api::dpid::format_dpid(*dpid))
}

/// A set of event kinds, for subscriptions and filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topics(u32);

impl Topics {
    pub const NONE: Topics = Topics(0);
    pub const SWITCH: Topics = Topics(1);
    pub const PORT: Topics = Topics(1 << 1);
    pub const LINK: Topics = Topics(1 << 2);
    pub const HOST: Topics = Topics(1 << 3);
    pub const RESOURCE: Topics = Topics(1 << 4);
    pub const REJECTED: Topics = Topics(1 << 5);
    pub const MODULE: Topics = Topics(1 << 6);
    pub const ALL: Topics = Topics((1 << 7) - 1);

    /// Topic names as the REST filter spells them.
    pub const NAMES: [(&'static str, Topics); 7] = [
        ("switch", Topics::SWITCH),
        ("port", Topics::PORT),
        ("link", Topics::LINK),
        ("host", Topics::HOST),
        ("resource", Topics::RESOURCE),
        ("rejected", Topics::REJECTED),
        ("module", Topics::MODULE),
    ];

    pub const fn union(self, other: Topics) -> Topics {
        Topics(self.0 | other.0)
    }

    pub const fn contains(self, other: Topics) -> bool {
        other.0 != 0 && self.0 & other.0 == other.0
    }

    /// Parses a comma-separated list of topic names.
    pub fn parse(list: &str) -> Result<Topics, String> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .try_fold(Topics::NONE, |acc, name| {
                Topics::NAMES
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, t)| acc.union(*t))
                    .ok_or_else(|| {
                        let known: Vec<&str> = Topics::NAMES.iter().map(|(n, _)| *n).collect();
                        format!("unknown topic {name:?} (one of {})", known.join(", "))
                    })
            })
    }
}

impl BusEvent {
    pub fn topic(&self) -> Topics {
        match self {
            BusEvent::SwitchUp { .. } | BusEvent::SwitchDown { .. } => Topics::SWITCH,
            BusEvent::Port { .. } => Topics::PORT,
            BusEvent::Link { .. } => Topics::LINK,
            BusEvent::Host { .. } => Topics::HOST,
            BusEvent::Resource { .. } => Topics::RESOURCE,
            BusEvent::Rejected { .. } => Topics::REJECTED,
            BusEvent::Module { .. } => Topics::MODULE,
        }
    }
}

/// An event as subscribers receive it.
#[derive(Debug, Clone, Serialize)]
pub struct Stamped {
    pub seq: u64,
    #[serde(serialize_with = "rfc3339")]
    pub time: SystemTime,
    #[serde(flatten)]
    pub event: BusEvent,
}

fn rfc3339<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*t))
}

/// The sending side of the bus; cheap to clone.
#[derive(Debug, Clone)]
pub struct Bus {
    tx: broadcast::Sender<Arc<Stamped>>,
    seq: Arc<AtomicU64>,
    counts: Arc<[AtomicU64; 7]>,
}

impl Default for Bus {
    fn default() -> Self {
        Bus {
            tx: broadcast::channel(BUS_CAPACITY).0,
            seq: Arc::default(),
            counts: Arc::new(Default::default()),
        }
    }
}

impl Bus {
    /// Stamps and broadcasts `event`.
    pub fn send(&self, event: BusEvent) -> Arc<Stamped> {
        let topic = event.topic();
        if let Some(i) = Topics::NAMES.iter().position(|(_, t)| *t == topic) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        let stamped = Arc::new(Stamped {
            seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            time: SystemTime::now(),
            event,
        });
        // Err only means nobody listens.
        let _ = self.tx.send(stamped.clone());
        stamped
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Stamped>> {
        self.tx.subscribe()
    }

    /// Events sent so far, by topic name (for `/metrics`).
    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        Topics::NAMES
            .iter()
            .zip(self.counts.iter())
            .map(|((name, _), n)| (*name, n.load(Ordering::Relaxed)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_parse_and_contain() {
        let t = Topics::parse("link, host").unwrap();
        assert!(t.contains(Topics::LINK) && t.contains(Topics::HOST));
        assert!(!t.contains(Topics::SWITCH));
        assert!(Topics::ALL.contains(Topics::MODULE));
        assert!(!Topics::ALL.contains(Topics::NONE));
        assert!(Topics::parse("links")
            .unwrap_err()
            .contains("unknown topic"));
    }

    #[tokio::test]
    async fn subscribers_get_stamped_events_in_order() {
        let bus = Bus::default();
        let mut rx = bus.subscribe();
        bus.send(BusEvent::SwitchUp {
            dpid: 1,
            version: 4,
        });
        bus.send(BusEvent::SwitchDown { dpid: 1 });
        let a = rx.recv().await.unwrap();
        let b = rx.recv().await.unwrap();
        assert!(a.seq < b.seq);
        let json = serde_json::to_value(&*a).unwrap();
        assert_eq!(json["type"], "switch_up");
        assert_eq!(json["dpid"], "00:00:00:00:00:00:00:01");
        assert_eq!(
            bus.counts().iter().find(|(n, _)| *n == "switch"),
            Some(&("switch", 2))
        );
    }
}
