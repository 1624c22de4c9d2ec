//! Packets the switch holds for the controller: table misses, answered by
//! whichever forwarding module runs.

use bytes::Bytes;
use flowgate_controller::cookie;
use flowgate_openflow::{Action, PacketIn, PacketInReason, PacketOut, NO_BUFFER};

/// Whether the switch holds the packet for us: a table miss (reason
/// no-match, no Flowgate cookie), which the switch forwards only as told.
/// A table-miss entry someone else gave the switch sends these, every
/// OpenFlow 1.0 switch does, and so do the benchmark tools. Packets our
/// own entries copy to the controller were forwarded by the switch.
pub fn awaits_us(packet_in: &PacketIn) -> bool {
    packet_in.reason == PacketInReason::NoMatch && cookie::owner_of(packet_in.cookie).is_none()
}

/// The PACKET_OUT that applies `actions` to the packet of `packet_in`: the
/// switch's buffer if it kept the packet, else the packet's bytes.
pub fn release(packet_in: &PacketIn, in_port: u32, actions: Vec<Action>) -> PacketOut {
    let data = if packet_in.buffer_id == NO_BUFFER {
        packet_in.data.clone()
    } else {
        Bytes::new()
    };
    PacketOut {
        buffer_id: packet_in.buffer_id,
        in_port,
        actions,
        data,
    }
}
