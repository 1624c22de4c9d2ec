//! Clustering decisions for Flowgate controllers sharing switches through
//! etcd (issue 22), as pure code: no I/O, no async, no clock. Time comes in
//! as `Instant` arguments, etcd as the values read from it, the switch as
//! the messages it sent; everything else is a return value. The etcd client
//! and the switch sessions that drive it live elsewhere.
//!
//! The pieces, each with its reasons in its module docs:
//! - [`assign`](mod@assign): the cluster leader's choice of one master per
//!   switch among the live nodes connected to it, balanced, with as few
//!   moves as it can, deterministic.
//! - [`generation`]: role generation ids are etcd revisions, so a later
//!   mastership always has a larger one and a switch fences the older.
//! - [`lease`]: a node's own lease deadline, past which it stops writing
//!   before anyone can have replaced it (self-fence).
//! - [`recovery`]: after an etcd error, keep the lease while it is valid
//!   (a hiccup costs no switch) or register again.
//! - [`role`]: one node's OpenFlow role on one switch: which ROLE_REQUEST
//!   to send, when it may write, when it must reconcile or stop.
//! - [`keys`]: the etcd key layout and who writes what.
//! - [`eligible`]: when a node offers itself as a switch's master (once its
//!   view of the network can be complete).
//! - [`actor`](mod@actor): the one node that takes the actions a cluster
//!   must take once (host-aware reactions), and why that one.
//!
//! Everything public here is the API the wiring uses; nothing else is
//! exported.

#![forbid(unsafe_code)]

pub mod actor;
pub mod assign;
pub mod eligible;
pub mod generation;
pub mod keys;
pub mod lease;
pub mod node;
pub mod recovery;
pub mod role;

#[cfg(test)]
mod tests;

pub use actor::{actor, acts};
pub use assign::{assign, commit, Masters, Mastership, Move, StaleRevision};
pub use eligible::Eligibility;
pub use generation::Generation;
pub use lease::{Lease, LeaseId};
pub use node::{Dpid, NodeId};
pub use recovery::{after_error, Recovery};
pub use role::{DemoteReason, Role, RoleAnswer, RoleEvent, RoleState, SwitchRole};
