//! The network view: LLDP link discovery, the link graph (petgraph), host
//! tracking, shortest paths and the broadcast spanning tree.
//!
//! - [`lldp`]: the probe frames (our own small TLV codec).
//! - [`auth`]: the probes' tags (HMAC, per-instance secret, freshness).
//! - [`prober`]: per-switch probe queues, rate-limited.
//! - [`graph`]: pure graph logic: routes, paths, spanning tree.
//! - [`hosts`]: the host table (MAC, VLAN, addresses, attachment point).
//! - [`packet`]: what a packet-in reveals about its sender; ARP frames.
//! - [`view`]: the immutable snapshot other modules and REST read.
//! - [`module`]: the [`Topology`] module that keeps all of it current.
//! - [`api`]: `GET /topology`, `/hosts`, `/paths`.

pub mod api;
pub mod auth;
pub mod graph;
pub mod hosts;
pub mod lldp;
pub mod module;
pub mod packet;
pub mod prober;
pub mod view;

pub use graph::{Endpoint, Hop, Link, NetGraph};
pub use hosts::Host;
pub use module::{Topology, TopologyConfig};
pub use view::{PortRole, PortView, SwitchView, TopologyView};
