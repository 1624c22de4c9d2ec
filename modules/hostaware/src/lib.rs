//! Host-aware reactions: metrics of the hosts Flowgate serves (Ganglia's
//! RRD files and gmond, the switches' own counters) feed threshold rules
//! whose actions go through the other modules (firewall quarantine and
//! blocks, QoS rate limits and queues, load-balancer drain and weights)
//! and are undone when the host recovers.
//!
//! - [`sources`]: where metric values come from, and when they are stale.
//! - [`model`]: monitored hosts, rules, actions, settings.
//! - [`engine`]: the pure rule engine.

pub mod actions;
pub mod engine;
pub mod model;
pub mod sources;
