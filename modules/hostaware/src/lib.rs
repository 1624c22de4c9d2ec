//! Host-aware reactions: metrics of the hosts Flowgate serves (Ganglia's
//! RRD files and gmond, the switches' own counters) feed threshold rules
//! whose actions go through the other modules (firewall quarantine and
//! blocks, QoS rate limits and queues, load-balancer drain and weights)
//! and are undone when the host recovers.
//!
//! - [`sources`]: where metric values come from, and when they are stale.
//! - [`model`]: monitored hosts, rules, actions, settings.
//! - [`engine`]: the pure rule engine.
//! - [`actions`]: actions as resources of the firewall, QoS and
//!   load-balancer modules.
//! - [`metrics`]: reading what rules ask for (Ganglia, switch counters).
//! - [`runner`]: the background task: polls, engine, reactions, audit,
//!   and load-aware pool weights ([`loadaware`]: the pure computation).
//! - [`audit`]: the persisted audit trail; [`status`]: what REST shows.

pub mod actions;
pub mod api;
pub mod audit;
pub mod engine;
pub mod loadaware;
pub mod metrics;
pub mod model;
pub mod module;
pub mod persist;
pub mod runner;
pub mod service;
pub mod sources;
pub mod status;
