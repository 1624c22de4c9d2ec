//! Metric sources. Each answers "the value of metric M of host H, now",
//! or says why it cannot (stale, missing, unreachable): a source that
//! stops updating never triggers or reverts anything by itself.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How values over a window are combined (RRD consolidation functions).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Consolidation {
    #[default]
    Average,
    Max,
    Min,
}

/// One value of a metric and the time it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub value: f64,
    pub at: SystemTime,
}

/// Why a source has no usable value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SourceError {
    /// The newest value is older than the source's staleness bound.
    #[error("stale: last updated {age:?} ago")]
    Stale { age: Duration },
    /// No such host or metric at this source.
    #[error("missing: {0}")]
    Missing(String),
    /// No value yet, and that is normal (a rate's first poll).
    #[error("no value yet: {0}")]
    NotYet(String),
    /// The source could not be read (I/O, connection, parse).
    #[error("unavailable: {0}")]
    Unavailable(String),
}
