//! A minimal connection tracker for Open vSwitch's `ct` action, enough to
//! test stateful rules and load balancing: a packet of a committed
//! connection is `+trk+est` (`+rpl` in the reply direction), any other IP
//! packet `+trk+new`, a non-IP packet `+trk+inv`; `commit` records the
//! connection with the `ct_mark` its nested `set_field` gives.
//!
//! NAT as Open vSwitch does it: a committing `ct` with a nested
//! `nat(dst=A[:P])` (or `src=`) records the translation with the
//! connection and applies it to the packet; afterwards any `ct(nat)`
//! applies it to the connection's packets (destination rewritten in the
//! original direction, the source restored in the reply direction).

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;

use flowgate_openflow::{
    ct_flags, ct_mark_match, ct_state, ct_zone_match, nat_flags, nx_u32_value, nxm_nx_field,
    Action, Ct, CtZone, Nat, NxAction, Oxm,
};

use super::Packet;

/// A connection as the tracker keys it: (zone, addresses, protocol, ports),
/// in the direction of the packet that committed it.
type ConnKey = (u16, Vec<u8>, Vec<u8>, u8, u16, u16);

/// A committed connection.
#[derive(Debug, Clone)]
struct Conn {
    mark: u32,
    nat: Option<Translation>,
    /// A reply was seen: until then the original direction is still new
    /// (a retransmitted SYN is), as in Linux and OVS conntrack.
    replied: bool,
}

/// A connection's address translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Translation {
    /// Source NAT (else destination NAT).
    snat: bool,
    /// The address (and port) the original direction is translated to.
    to: (IpAddr, Option<u16>),
    /// What it was: restored in the reply direction.
    from: (IpAddr, u16),
}

/// Which way a packet goes in its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Orig,
    Reply,
}

/// Committed connections, their `ct_mark` and translation.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    conns: RefCell<Vec<Conn>>,
    /// Original-direction and reply-direction keys of each connection.
    keys: RefCell<HashMap<ConnKey, (usize, Dir)>>,
}

impl Tracker {
    /// Connections committed so far.
    pub fn len(&self) -> usize {
        self.conns.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every connection (as a switch restart would).
    pub fn clear(&self) {
        self.conns.borrow_mut().clear();
        self.keys.borrow_mut().clear();
    }

    /// The packet as the connection tracker returns it; commits and
    /// translates if asked.
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
        let nat_asked = ct.actions.iter().find_map(nat_of);
        let found = self.keys.borrow().get(&key).copied();
        let (state, mark) = match found {
            Some((i, dir)) => {
                if dir == Dir::Reply {
                    self.conns.borrow_mut()[i].replied = true;
                }
                let conn = self.conns.borrow()[i].clone();
                let mut state = ct_state::TRK;
                state |= if conn.replied {
                    ct_state::EST
                } else {
                    ct_state::NEW
                };
                if dir == Dir::Reply {
                    state |= ct_state::RPL;
                }
                if let (Some(_), Some(t)) = (nat_asked.as_ref(), conn.nat) {
                    translate(&mut tracked, t, dir);
                    state |= if t.snat {
                        ct_state::SNAT
                    } else {
                        ct_state::DNAT
                    };
                }
                (state, conn.mark)
            }
            None => (ct_state::TRK | ct_state::NEW, 0),
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
            match found {
                Some((i, _)) => self.conns.borrow_mut()[i].mark = new_mark,
                None => {
                    let translation = nat_asked.and_then(|nat| translation_of(nat, packet));
                    if let Some(t) = translation {
                        translate(&mut tracked, t, Dir::Orig);
                    }
                    let reply = conn_key(zone, &tracked)
                        .map(|k| (k.0, k.2, k.1, k.3, k.5, k.4))
                        .unwrap_or_else(|| {
                            (zone, key.2.clone(), key.1.clone(), key.3, key.5, key.4)
                        });
                    let mut conns = self.conns.borrow_mut();
                    conns.push(Conn {
                        mark: new_mark,
                        nat: translation,
                        replied: false,
                    });
                    let i = conns.len() - 1;
                    let mut keys = self.keys.borrow_mut();
                    keys.insert(key, (i, Dir::Orig));
                    keys.insert(reply, (i, Dir::Reply));
                }
            }
            tracked.set(ct_mark_match(new_mark, None));
        }
        tracked
    }
}

/// The `nat` nested in a `ct`, if any.
fn nat_of(action: &Action) -> Option<Nat> {
    match NxAction::from_action(action) {
        Some(NxAction::Nat(nat)) => Some(nat),
        _ => None,
    }
}

/// The translation a committing `nat(...)` asks for (none for a bare
/// `nat`, which only applies existing translations).
fn translation_of(nat: Nat, packet: &Packet) -> Option<Translation> {
    let addr = nat
        .ipv4_min
        .map(IpAddr::V4)
        .or(nat.ipv6_min.map(IpAddr::V6))?;
    let snat = nat.flags & nat_flags::SRC != 0;
    Some(Translation {
        snat,
        to: (addr, nat.proto_min),
        from: endpoint(packet, snat)?,
    })
}

/// A packet's source or destination address and port (0 without ports).
fn endpoint(packet: &Packet, src: bool) -> Option<(IpAddr, u16)> {
    let addr = packet.fields.iter().find_map(|f| match (f, src) {
        (Oxm::Ipv4Src(a, _), true) | (Oxm::Ipv4Dst(a, _), false) => Some(IpAddr::V4(*a)),
        (Oxm::Ipv6Src(a, _), true) | (Oxm::Ipv6Dst(a, _), false) => Some(IpAddr::V6(*a)),
        _ => None,
    })?;
    let port = packet
        .fields
        .iter()
        .find_map(|f| match (f, src) {
            (Oxm::TcpSrc(p) | Oxm::UdpSrc(p), true) | (Oxm::TcpDst(p) | Oxm::UdpDst(p), false) => {
                Some(*p)
            }
            _ => None,
        })
        .unwrap_or(0);
    Some((addr, port))
}

/// Rewrites a packet of a translated connection for its direction: the
/// original direction gets the new address (destination for DNAT, source
/// for SNAT), the reply direction gets the old one back on the other side.
fn translate(packet: &mut Packet, t: Translation, dir: Dir) {
    match dir {
        Dir::Orig => {
            set_addr(packet, t.to.0, t.snat);
            if let Some(port) = t.to.1 {
                set_port(packet, port, t.snat);
            }
        }
        Dir::Reply => {
            set_addr(packet, t.from.0, !t.snat);
            set_port(packet, t.from.1, !t.snat);
        }
    }
}

fn set_addr(packet: &mut Packet, addr: IpAddr, src: bool) {
    packet.set(match (addr, src) {
        (IpAddr::V4(a), true) => Oxm::Ipv4Src(a, None),
        (IpAddr::V4(a), false) => Oxm::Ipv4Dst(a, None),
        (IpAddr::V6(a), true) => Oxm::Ipv6Src(a, None),
        (IpAddr::V6(a), false) => Oxm::Ipv6Dst(a, None),
    });
}

fn set_port(packet: &mut Packet, port: u16, src: bool) {
    let field = packet.fields.iter().find_map(|f| match (f, src) {
        (Oxm::TcpSrc(_), true) => Some(Oxm::TcpSrc(port)),
        (Oxm::TcpDst(_), false) => Some(Oxm::TcpDst(port)),
        (Oxm::UdpSrc(_), true) => Some(Oxm::UdpSrc(port)),
        (Oxm::UdpDst(_), false) => Some(Oxm::UdpDst(port)),
        _ => None,
    });
    if let Some(field) = field {
        packet.set(field);
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
