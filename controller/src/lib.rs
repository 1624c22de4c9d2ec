//! Flowgate controller core.
//!
//! - [`runtime`]: per-switch sessions (sans-IO) and their tokio drivers, the
//!   switch registry, event dispatch to modules, and the reconciler.
//! - [`pipeline`]: the fixed multi-table map every switch gets.
//! - [`cookie`]: the cookie scheme naming each flow's owner module and object.
//! - [`module`]: the trait application modules implement.
//! - [`api`]: the axum REST server.
//! - [`store`]: persistence behind one trait (embedded redb by default).
//! - [`ovsdb`]: the OVSDB (RFC 7047) client for cloud hosts' Open vSwitch.
//! - [`desired`]: desired-state entries and their canonical form.
//! - [`testing`]: a fake switch for module tests.
//! - [`topology`]: LLDP discovery, link graph, hosts, paths, spanning tree.

pub mod api;
pub mod cache;
pub mod cookie;
pub mod desired;
pub mod module;
pub mod ovsdb;
pub mod pipeline;
pub mod runtime;
pub mod store;
pub mod testing;
pub mod topology;
