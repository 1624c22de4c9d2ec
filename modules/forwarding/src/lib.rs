//! Forwarding modules, over the pipeline's learn / forward / flood tables.
//!
//! [`TopologyForwarding`] (the default) installs shortest paths per known
//! host and floods along a spanning tree, from the topology module's view;
//! it works on any topology, loops included (see `topology.rs`).
//!
//! [`L2Learning`] is per-switch L2 learning, reactive; loop-free topologies
//! only:
//!
//! - `learn` (T4): `in_port, eth_src` of every known host → goto forward. The
//!   module's miss entry copies the packet to the controller *and* continues
//!   to forward, so the switch forwards the first packet itself (no
//!   packet-out round trip) while the controller learns its source.
//! - `forward` (T5): `eth_dst` of a known host → output to its port.
//! - `flood` (T6): the module's miss entry floods.
//!
//! Learned entries have idle timeouts and ask for FLOW_REMOVED, so a host
//! that goes quiet is forgotten on the switch and here together. After a
//! controller restart the learned entries still on the switch are adopted,
//! not rewritten.
//!
//! [`L2Single`] serves OpenFlow 1.0 switches (which have one table and no
//! pipeline): reactive learning with a flow per (in_port, source,
//! destination), one message per packet-in (a FLOW_MOD carrying the
//! switch's buffer, or a PACKET_OUT where there is no flow or no buffer).
//!
//! Every forwarding module also answers table misses that carry no Flowgate
//! cookie (`miss.rs`): a 1.3 switch's table-miss entry installed by someone
//! else, and benchmark tools, send them; the switch holds such a packet
//! until told what to do with it. L2 learning learns the source and sends
//! the packet back through the tables (in the FLOW_MOD of a new source's
//! entry when the switch buffered it, else by PACKET_OUT to TABLE: a known
//! source's miss in a table before ours installs nothing); topology
//! forwarding sends it where its entries send its kind.

mod learning;
mod miss;
mod single;
mod topology;

pub use learning::{L2Learning, L2LearningConfig};
pub use single::{L2Single, L2SingleConfig};
pub use topology::{TopologyForwarding, TopologyForwardingConfig};
