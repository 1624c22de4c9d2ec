//! The policy match language modules share: what a firewall rule or a QoS
//! policy matches (MACs, ethertype, IP prefixes, protocol, port ranges,
//! ICMP type/code), its validation (fields that contradict each other are
//! named), and its compilation to OpenFlow matches (port ranges become
//! aligned masked blocks, unconstrained IP versions both).

mod matching;
mod values;

pub use matching::PacketMatch;
pub use values::*;
