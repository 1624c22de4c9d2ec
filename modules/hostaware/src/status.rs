//! What the runner knows now, for the REST API: each host's latest metric
//! values with a short history, and the reactions in place. REST reads a
//! copy; it never waits on sources or switches.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use utoipa::ToSchema;

use crate::actions::Resource;
use crate::model::Slot;

/// Points kept per (host, metric): an hour at a 10 s poll.
pub const HISTORY: usize = 360;

/// A metric's latest state on one host.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct MetricStatus {
    /// The newest value, if the source gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_time")]
    #[schema(value_type = Option<String>)]
    pub at: Option<SystemTime>,
    /// Why the last poll gave no value (stale, missing, unavailable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A reaction in place.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, ToSchema)]
pub struct Reaction {
    pub rule: u32,
    pub host: String,
    #[schema(value_type = String)]
    pub slot: Slot,
    /// The action's type (`quarantine`, `rate_limit`, ...).
    pub action: String,
    #[serde(with = "time")]
    #[schema(value_type = String)]
    pub since: SystemTime,
    pub resources: Vec<Resource>,
}

#[derive(Debug, Default)]
pub struct Status {
    /// host → metric name → state.
    pub metrics: BTreeMap<String, BTreeMap<String, MetricStatus>>,
    /// (host, metric name) → the values of the last polls, oldest first.
    pub history: BTreeMap<(String, String), VecDeque<(SystemTime, f64)>>,
    pub reactions: Vec<Reaction>,
    /// Rules active per host (acting or overridden by a higher priority).
    pub active: BTreeMap<String, Vec<u32>>,
}

/// Shared between the runner (writer) and REST (readers).
pub type Board = Arc<RwLock<Status>>;

impl Status {
    pub fn record(&mut self, host: &str, metric: &str, reading: &crate::engine::Reading) {
        let m = self
            .metrics
            .entry(host.to_owned())
            .or_default()
            .entry(metric.to_owned())
            .or_default();
        match reading {
            Ok(sample) => {
                m.value = Some(sample.value);
                m.at = Some(sample.at);
                m.error = None;
                let history = self
                    .history
                    .entry((host.to_owned(), metric.to_owned()))
                    .or_default();
                if history.back().is_none_or(|(t, _)| *t != sample.at) {
                    history.push_back((sample.at, sample.value));
                }
                if history.len() > HISTORY {
                    history.pop_front();
                }
            }
            Err(e) => m.error = Some(e.to_string()),
        }
    }

    /// The points of `metric` on `host` within `window` before `now`.
    pub fn history(
        &self,
        host: &str,
        metric: &str,
        window: Duration,
        now: SystemTime,
    ) -> Vec<(SystemTime, f64)> {
        let since = now.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
        self.history
            .get(&(host.to_owned(), metric.to_owned()))
            .map(|h| h.iter().filter(|(t, _)| *t >= since).copied().collect())
            .unwrap_or_default()
    }
}

pub mod time {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

mod opt_time {
    use std::time::SystemTime;

    use serde::Serializer;

    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::time::serialize(t, s),
            None => s.serialize_none(),
        }
    }
}
