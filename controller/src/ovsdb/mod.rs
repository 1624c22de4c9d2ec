//! OVSDB (RFC 7047) client: how Flowgate learns and configures cloud hosts'
//! Open vSwitch (DESIGN.md §4).
//!
//! Hosts either point their `ovsdb-server` at Flowgate
//! (`ovs-vsctl set-manager tcp:CTRL:6640`, Flowgate listens) or expose
//! `ptcp:6640` and Flowgate connects ([`Hosts::connect`]). Either way one
//! connection per host runs the same code:
//!
//! - [`framing`]: a JSON-RPC stream is concatenated JSON values with no
//!   length prefix; the framer buffers bytes until a whole value is there.
//! - [`rpc`]: request / response / notification shapes (§4.1).
//! - [`datum`]: OVSDB's JSON encoding of atoms, sets and maps (§5.1).
//! - [`replica`]: a local copy of the monitored tables kept current by
//!   `monitor` updates (§4.1.5–4.1.6).
//! - [`columns`]: which tables and columns connections monitor: a base set
//!   plus what modules register ([`Hosts::watch`]).
//! - [`view`]: typed reading of that copy: bridges with their datapath ids,
//!   ports and interfaces (`ofport`, `external_ids:iface-id`), QoS and
//!   Queue rows.
//! - [`ops`]: builders for `transact` operations (§5.2).
//! - [`session`]: the sans-IO protocol core: echo, monitor, transact
//!   bookkeeping. Unit-tested with captured `ovsdb-server` JSON.
//! - [`conn`]: the thin tokio driver around a session.
//! - [`hosts`]: connected hosts, the listener and active connections, and
//!   what other parts of Flowgate use: snapshots, change notification,
//!   `transact`.
//! - [`objects`], [`plan`], [`reconciler`]: desired state for OVSDB rows.
//!   Modules declare typed objects (bridge settings, ports, QoS with
//!   queues) per host, owner and scope; the pure planner diffs all owners'
//!   declarations against a host's view into one transaction; the
//!   reconciler task runs it for every connected host, retries with
//!   backoff and re-applies when the host's rows change.
//!
//! We write our own client (STYLE.md): the `ovsdb` crate panics on a
//! server-initiated echo, and we need only a small part of the protocol.

pub mod columns;
pub mod conn;
pub mod datum;
pub mod framing;
pub mod hosts;
pub mod objects;
pub mod ops;
pub mod plan;
pub mod reconciler;
pub mod replica;
pub mod rpc;
pub mod session;
pub mod view;

#[cfg(test)]
mod tests;

pub use columns::Columns;
pub use framing::Limits;
pub use hosts::{HostHandle, HostSnapshot, Hosts, ListenerLimits, OvsdbError};
pub use objects::{BridgeSpec, Object, PortSpec, QosSpec, QosType, QueueSpec};
pub use reconciler::{OwnerRows, Reconciler, Registration};
pub use view::{BridgeView, HostView, InterfaceView, PortView, QosView, QueueView};

/// The database every Open vSwitch host serves.
pub const DATABASE: &str = "Open_vSwitch";
/// The IANA port for OVSDB (RFC 7047 §6).
pub const DEFAULT_PORT: u16 = 6640;
