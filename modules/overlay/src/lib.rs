//! Isolated private overlays: tenant networks that span cloud hosts.
//!
//! - [`model`]: networks and ports (REST/store shapes) and their validation.
//! - [`world`]: what flows are compiled from: configuration, hosts from
//!   OVSDB ([`Chassis`]), connected switches' ports, learned addresses.
//! - [`compile`]: the pure compiler, world → one switch's flows (table
//!   layout in its docs).
//! - [`module`]: the [`Overlay`] module, declaring only differences.
//! - [`arp`], [`nd`]: the in-switch ARP responder (Nicira `move` actions)
//!   and the IPv6 neighbour-discovery responder (NS → NA from the
//!   controller, out of the ingress port), shared with other modules in
//!   `flowgate_controller::neighbor`.
//! - [`fabric`]: tenant traffic between plain OpenFlow switches, one VLAN
//!   per network on the topology's spanning-tree links.
//! - [`provision`]: the OVSDB side, the module's background task: declares
//!   integration bridge settings and one tunnel port per peer host to the
//!   shared OVSDB reconciler, and sends the module the [`Chassis`] list it
//!   works from.
//! - [`service`]: [`service::OverlayService`], the one way to read and
//!   change networks and ports (REST and other modules).
//! - [`api`]: `/networks`, `/networks/{id}/ports`, `/chassis`.
//!
//! # Interplay with forwarding
//! On an overlay switch (a host's integration bridge, or any switch with a
//! bound port) classify marks tenant traffic in metadata
//! (`pipeline::metadata`) and continues to the ACL, QoS and LB tables like
//! any traffic. In the learn table the overlay's gate sends tenant traffic
//! straight to the forward table and drops everything else, so forwarding
//! never learns, forwards or floods on such a switch, and traffic from
//! unbound ports reaches no tenant. Overlay entries in forward and flood
//! match the tenant metadata at priorities far above forwarding's.

pub mod api;
pub mod compile;
pub mod fabric;
pub mod model;
pub mod module;
pub mod provision;
pub mod service;
pub mod world;

pub use flowgate_controller::neighbor::{arp, nd};

pub use model::{Binding, Config, Network, Port};
pub use module::Overlay;
pub use world::Chassis;
