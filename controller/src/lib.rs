//! Flowgate controller core.
//!
//! - [`runtime`]: per-switch sessions (sans-IO) and their tokio drivers, the
//!   switch registry, event dispatch to modules, and the reconciler.
//! - [`pipeline`]: the fixed multi-table map every switch gets.
//! - [`policy`]: the match language policies share (firewall, QoS).
//! - [`cookie`]: the cookie scheme naming each flow's owner module and object.
//! - [`module`]: the trait application modules implement.
//! - [`api`]: the axum REST server.
//! - [`store`]: persistence behind one trait (embedded redb by default).
//! - [`cluster`]: what the runtime needs from a cluster of controllers
//!   (issue 22): the [`cluster::Coordinator`] trait; off by default.
//! - [`ovsdb`]: the OVSDB (RFC 7047) client for cloud hosts' Open vSwitch.
//! - [`desired`]: desired-state entries and their canonical form.
//! - [`declare`]: which module scope declared which entry, and what a new
//!   declaration changes.
//! - [`events`]: the typed event bus.
//! - [`service`]: module services, the one write path to a module's
//!   resources (validate, persist, apply, confirm or roll back).
//! - [`neighbor`]: ARP and IPv6 neighbour-discovery responders.
//! - [`tenants`]: the tenant networks notice (what the overlay publishes).
//! - [`testing`] (tests and the `testing` feature only): a fake switch for
//!   module tests.
//! - [`topology`]: LLDP discovery, link graph, hosts, paths, spanning tree.

pub mod api;
pub mod cache;
pub mod cluster;
pub mod cookie;
pub mod declare;
pub mod desired;
pub mod events;
pub mod module;
pub mod neighbor;
pub mod ovsdb;
pub mod pipeline;
pub mod policy;
pub mod runtime;
pub mod service;
pub mod store;
pub mod tenants;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod topology;
