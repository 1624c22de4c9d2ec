//! A minimal connection tracker for Open vSwitch's `ct` action, enough to
//! test stateful rules: a packet of a committed connection is `+trk+est`
//! (`+rpl` in the reply direction), any other IP packet `+trk+new`, a
//! non-IP packet `+trk+inv`; `commit` records the connection with the
//! `ct_mark` its nested `set_field` gives.

use std::cell::RefCell;
use std::collections::HashMap;

use flowgate_openflow::{
    ct_flags, ct_mark_match, ct_state, ct_zone_match, nx_u32_value, nxm_nx_field, Action, Ct,
    CtZone, Oxm,
};

use super::Packet;

/// A connection as the tracker keys it: (zone, addresses, protocol, ports),
/// in the direction of the packet that committed it.
type ConnKey = (u16, Vec<u8>, Vec<u8>, u8, u16, u16);

/// Committed connections and their `ct_mark`.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    connections: RefCell<HashMap<ConnKey, u32>>,
}

impl Tracker {
    /// The packet as the connection tracker returns it; commits if asked.
    pub fn track(&self, ct: &Ct, packet: &Packet) -> Packet {
        let zone = match ct.zone {
            CtZone::Immediate(zone) => zone,
            CtZone::Field { .. } => 0,
        };
        let mut tracked = packet.clone();
        tracked.set(ct_zone_match(zone));
        let Some(key) = conn_key(zone, packet) else {
            tracked.set(ct_state_value(ct_state::TRK | ct_state::INV));
            return tracked;
        };
        let reverse = (zone, key.2.clone(), key.1.clone(), key.3, key.5, key.4);
        let mut connections = self.connections.borrow_mut();
        let (state, mark) = if let Some(mark) = connections.get(&key) {
            (ct_state::TRK | ct_state::EST, *mark)
        } else if let Some(mark) = connections.get(&reverse) {
            (ct_state::TRK | ct_state::EST | ct_state::RPL, *mark)
        } else {
            (ct_state::TRK | ct_state::NEW, 0)
        };
        tracked.set(ct_state_value(state));
        tracked.set(ct_mark_match(mark, None));
        if ct.flags & ct_flags::COMMIT != 0 {
            let new_mark = ct
                .actions
                .iter()
                .find_map(|a| match a {
                    Action::SetField(f) => nx_u32_value(f, nxm_nx_field::CT_MARK),
                    _ => None,
                })
                .map_or(mark, |(value, _)| value);
            let existing = if connections.contains_key(&reverse) {
                reverse
            } else {
                key
            };
            connections.insert(existing, new_mark);
            tracked.set(ct_mark_match(new_mark, None));
        }
        tracked
    }
}

/// An unmasked `ct_state` field, as a packet carries it.
pub(super) fn ct_state_value(state: u32) -> Oxm {
    Oxm::CtState(state, None)
}

/// The tracker's key for an IP packet: zone, addresses, protocol, ports.
fn conn_key(zone: u16, packet: &Packet) -> Option<ConnKey> {
    let find = |want: fn(&Oxm) -> Option<Vec<u8>>| packet.fields.iter().find_map(want);
    let src = find(|f| match f {
        Oxm::Ipv4Src(a, _) => Some(a.octets().to_vec()),
        Oxm::Ipv6Src(a, _) => Some(a.octets().to_vec()),
        _ => None,
    })?;
    let dst = find(|f| match f {
        Oxm::Ipv4Dst(a, _) => Some(a.octets().to_vec()),
        Oxm::Ipv6Dst(a, _) => Some(a.octets().to_vec()),
        _ => None,
    })?;
    let proto = packet
        .fields
        .iter()
        .find_map(|f| match f {
            Oxm::IpProto(p) => Some(*p),
            _ => None,
        })
        .unwrap_or(0);
    let port = |want: fn(&Oxm) -> Option<u16>| packet.fields.iter().find_map(want).unwrap_or(0);
    let sport = port(|f| match f {
        Oxm::TcpSrc(p) | Oxm::UdpSrc(p) | Oxm::SctpSrc(p) => Some(*p),
        _ => None,
    });
    let dport = port(|f| match f {
        Oxm::TcpDst(p) | Oxm::UdpDst(p) | Oxm::SctpDst(p) => Some(*p),
        _ => None,
    });
    Some((zone, src, dst, proto, sport, dport))
}
