//! What a clustered node hears from a switch, in any role (OFPT_SET_ASYNC,
//! OpenFlow 1.3 §7.3.10).
//!
//! By default a switch tells a slave only of port changes. A cluster wants
//! every node to hold the same view of the network — links, hosts, and so
//! the same desired state for every switch — so that a new master finds
//! its switches' tables already as it wants them. So every node hears the
//! packet-ins (discovery probes, hosts' first packets, address
//! resolution), port changes and flow removals (hosts' entries expiring)
//! of every switch it is connected to, and the write gate
//! (`SwitchState::may_write`) keeps all but the master from answering.

use flowgate_openflow::{flow_removed_reason, AsyncConfig, PacketInReason, PortReason};

/// The masks sent on every clustered connection: one per role slot
/// (master or equal, slave), both what the spec gives a master by default.
pub fn shared_async_config() -> AsyncConfig {
    let packet_in = bits(
        [PacketInReason::NoMatch, PacketInReason::Action]
            .into_iter()
            .map(u8::from),
    );
    let port_status = bits(
        [PortReason::Add, PortReason::Delete, PortReason::Modify]
            .into_iter()
            .map(u8::from),
    );
    let flow_removed = bits([
        flow_removed_reason::IDLE_TIMEOUT,
        flow_removed_reason::HARD_TIMEOUT,
        flow_removed_reason::DELETE,
        flow_removed_reason::GROUP_DELETE,
    ]);
    AsyncConfig {
        packet_in_mask: [packet_in; 2],
        port_status_mask: [port_status; 2],
        flow_removed_mask: [flow_removed; 2],
    }
}

/// A mask with bit `1 << reason` set for each reason.
fn bits(reasons: impl IntoIterator<Item = u8>) -> u32 {
    reasons.into_iter().fold(0, |mask, r| mask | 1 << r)
}

#[cfg(test)]
mod tests {
    use flowgate_openflow::{decode, encode, Message};

    use super::*;

    #[test]
    fn a_slave_hears_what_a_master_hears() {
        let config = shared_async_config();
        assert_eq!(config.packet_in_mask, [0b11, 0b11]);
        assert_eq!(config.port_status_mask, [0b111, 0b111]);
        assert_eq!(config.flow_removed_mask, [0b1111, 0b1111]);
    }

    #[test]
    fn it_is_sent_as_ofpt_set_async() {
        let mut out = bytes::BytesMut::new();
        encode(7, &Message::SetAsync(shared_async_config()), &mut out).unwrap();
        #[rustfmt::skip]
        let expected: [u8; 32] = [
            4, 28, 0, 32, 0, 0, 0, 7,       // OpenFlow 1.3, OFPT_SET_ASYNC, length, xid
            0, 0, 0, 3, 0, 0, 0, 3,         // packet-in: master/equal, slave
            0, 0, 0, 7, 0, 0, 0, 7,         // port status
            0, 0, 0, 15, 0, 0, 0, 15,       // flow removed
        ];
        assert_eq!(&out[..], &expected);
        let (_, decoded) = decode(&out).unwrap();
        assert_eq!(decoded, Message::SetAsync(shared_async_config()));
    }
}
