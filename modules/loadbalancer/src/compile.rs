//! The pure compiler: VIPs (with their members resolved, their health and
//! weights) → the `lb` table's entries and one select group per VIP. Every
//! switch gets the same entries (a client may sit behind any switch); a
//! VIP's entries and group are one declaration scope, the entries VIPs
//! share (address responders, reply tracking, probe traps) another.
//!
//! Layout of table 3 (`lb`), `Z` = conntrack zone 0xf005 (61445, apart from
//! the firewall's 0xf004), `[t]` = `metadata=tenant(vni)/TENANT_MASK` for a
//! VIP inside a tenant network, `metadata=0/TENANT` otherwise:
//!
//! | prio | match | actions |
//! |------|-------|---------|
//! | 1000 | [t] ip(v6)_dst=probe source | CONTROLLER (health-probe answers) |
//! | 900  | [t] ICMPv6 NS, nd_target=VIP or probe source | CONTROLLER (answered with an NA) |
//! | 800  | `ct_zone=Z,+trk+new`, [t] ip_src=client, VIP:port (affinity, reactive, idle timeout) | eth_dst=member, `ct(commit,zone=Z,nat(dst=member:port),exec(ct_mark=index),table=4)` |
//! | 310  | `ct_zone=Z,+trk-rpl,ct_mark=index`, [t] member:port, `tcp_flags=+fin` / `+rst` (leastconn) | as the 300 entry (counts closes) |
//! | 310  | `ct_zone=Z,+trk+est+rpl,ct_mark=index`, [t] eth_src=member, `tcp_flags=+syn` (leastconn) | as the 300 reply entry (counts accepted connections) |
//! | 300  | `ct_zone=Z,+trk+new`, [t] VIP:port | `group:0x05<index>` (affinity: CONTROLLER) |
//! | 300  | `ct_zone=Z,+trk-rpl,ct_mark=index`, [t] member:port | eth_dst=member MAC, goto learn (drop when disabled) |
//! | 300  | `ct_zone=Z,+trk+rpl,ct_mark=index`, [t] eth_src=member MAC | eth_src=virtual MAC, goto learn |
//! | 290  | `ct_zone=Z,+trk+rpl,ct_mark=index`, [t] | eth_src=virtual MAC, goto learn |
//! | 250  | `ct_zone=Z,+trk` | goto learn |
//! | 200  | [t] VIP:port | `ct(zone=Z,nat,table=3)` |
//! | 200  | [t] member:port as source | `ct(zone=Z,nat,table=3)` (un-NAT of replies) |
//! | 100  | [t] ARP request for VIP or probe source | ARP reply with the virtual MAC, out of the ingress port |
//! | 100  | [t] ARP reply to VIP or probe source | drop (answers to our resolution requests; topology saw them in classify) |
//!
//! Group `0x05<index>` (select): one bucket per member in rotation
//! (enabled, not down, MAC known), weight by method:
//! `eth_dst=member MAC, ct(commit,zone=Z,nat(dst=member:port),exec(ct_mark=index),table=4)`.
//! So the first packet of a connection is tracked, enters the group, is
//! committed with its member's NAT and goes on to forwarding; every later
//! packet is NATed by conntrack and never touches the group again, and
//! replies are un-NATed back to the VIP. "Later" includes a retransmitted
//! SYN whose first copy was lost past the commit: conntrack still calls
//! it new, but NATs it and gives it the VIP's mark, so the member entry
//! (not `+est`) takes it to the member the connection was committed to. Changing buckets moves no
//! established connection.

use std::collections::BTreeSet;
use std::net::IpAddr;

use bytes::{BufMut, BytesMut};
use flowgate_controller::cookie::Owner;
use flowgate_controller::desired::{FlowEntry, FlowKey, FlowSpec, GroupEntry, GroupSpec};
use flowgate_controller::module::Desired;
use flowgate_controller::neighbor::arp;
use flowgate_controller::pipeline::{metadata, LB, LEARN};
use flowgate_openflow::{
    ct_mark_match, ct_state, ct_state_match, ct_zone_match, nat_flags, port_no, set_ct_mark,
    Action, Bucket, Ct, GroupType, Instruction, MacAddr, Match, Nat, NxAction, Oxm,
    OFPCML_NO_BUFFER, OFPG_ANY, OFPXMC_EXPERIMENTER,
};

use crate::model::{AdminState, MemberKey, Protocol};

/// The load balancer's conntrack zone (its owner id, 0xf005).
pub const ZONE: u16 = 0xf005;

pub const PRIO_PROBE_TRAP: u16 = 1000;
pub const PRIO_ND: u16 = 900;
pub const PRIO_AFFINITY: u16 = 800;
pub const PRIO_COUNT: u16 = 310;
pub const PRIO_TRACKED: u16 = 300;
pub const PRIO_REPLY_ANY: u16 = 290;
pub const PRIO_TRACKED_OTHER: u16 = 250;
pub const PRIO_TRACK: u16 = 200;
pub const PRIO_ARP: u16 = 100;

const ETH_TYPE_IPV4: u16 = 0x0800;
const ETH_TYPE_IPV6: u16 = 0x86dd;
const ETH_TYPE_ARP: u16 = 0x0806;
const IP_PROTO_ICMPV6: u8 = 58;
const ND_SOLICITATION: u8 = 135;

/// TCP flag bits (`tcp_flags`).
pub mod tcp_flag {
    pub const FIN: u16 = 0x001;
    pub const SYN: u16 = 0x002;
    pub const RST: u16 = 0x004;
}

/// What an entry is for: bits 32..40 of the cookie object; the VIP's index
/// in the low 24 bits (0 for shared entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Kind {
    /// A VIP's own entries: tracking, new connections into the group.
    Vip = 1,
    /// Per-member entries of a VIP: established and reply paths.
    Member = 2,
    /// Shared entries: reply tracking, the tracked catch-all, responders.
    Base = 3,
    /// Health-probe answers trapped to the controller.
    Probe = 4,
    /// Affinity entries (reactive, with an idle timeout).
    Affinity = 5,
    /// Neighbour solicitations for VIPs and probe sources.
    Nd = 6,
    /// A new connection to an affinity VIP, sent to the controller.
    AffinityMiss = 7,
    /// Leastconn counting entries (SYNs accepted, FIN/RST sent).
    Count = 8,
}

pub fn cookie(kind: Kind, index: u32) -> u64 {
    Owner::LoadBalancer.cookie(((kind as u64) << 32) | u64::from(index & 0xff_ffff))
}

/// The kind part of a load-balancer cookie.
pub fn kind_of(cookie: u64) -> u64 {
    (cookie >> 32) & 0xff
}

/// The VIP index of a load-balancer cookie.
pub fn index_of(cookie: u64) -> u32 {
    (cookie & 0xff_ffff) as u32
}

/// The group of VIP `index`.
pub fn group_id(index: u32) -> u32 {
    Owner::LoadBalancer.group_id(index)
}

/// A member as compiled: where it is, whether it takes new connections,
/// with which weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedMember {
    pub key: MemberKey,
    /// Its MAC, once resolved.
    pub mac: Option<MacAddr>,
    pub admin: AdminState,
    /// Enabled, not down, resolved: it gets a bucket.
    pub in_rotation: bool,
    /// Its bucket weight (≥ 1).
    pub weight: u16,
}

/// A VIP as compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedVip {
    pub index: u32,
    pub address: IpAddr,
    pub protocol: Protocol,
    pub port: u16,
    /// The tenant network's VNI, for a VIP inside one.
    pub vni: Option<u32>,
    /// Session affinity: new connections go to the controller.
    pub affinity: bool,
    /// Leastconn (TCP): count accepted and closed connections per member.
    pub count: bool,
    /// Sorted by key: bucket order.
    pub members: Vec<PlannedMember>,
}

/// What the shared entries cover.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shared {
    /// Addresses answered to ARP/ND with the virtual MAC: VIPs and probe
    /// sources, by tenant (None: plain).
    pub answered: BTreeSet<(Option<u32>, IpAddr)>,
    /// Probe sources: what is sent to them goes to the controller.
    pub probe_sources: BTreeSet<(Option<u32>, IpAddr)>,
    /// Members serving some VIP: their replies go through conntrack.
    pub member_sources: BTreeSet<(Option<u32>, Protocol, MemberKey)>,
}

/// The scope match part: a tenant, or "no tenant".
fn scope(vni: Option<u32>) -> Oxm {
    match vni {
        Some(vni) => Oxm::Metadata(metadata::tenant(vni), Some(metadata::TENANT_MASK)),
        None => Oxm::Metadata(0, Some(metadata::TENANT)),
    }
}

fn eth_type(ip: IpAddr) -> u16 {
    if ip.is_ipv4() {
        ETH_TYPE_IPV4
    } else {
        ETH_TYPE_IPV6
    }
}

fn ip_dst(ip: IpAddr) -> Oxm {
    match ip {
        IpAddr::V4(a) => Oxm::Ipv4Dst(a, None),
        IpAddr::V6(a) => Oxm::Ipv6Dst(a, None),
    }
}

fn ip_src(ip: IpAddr) -> Oxm {
    match ip {
        IpAddr::V4(a) => Oxm::Ipv4Src(a, None),
        IpAddr::V6(a) => Oxm::Ipv6Src(a, None),
    }
}

fn l4_dst(protocol: Protocol, port: u16) -> Oxm {
    match protocol {
        Protocol::Tcp => Oxm::TcpDst(port),
        Protocol::Udp => Oxm::UdpDst(port),
    }
}

fn l4_src(protocol: Protocol, port: u16) -> Oxm {
    match protocol {
        Protocol::Tcp => Oxm::TcpSrc(port),
        Protocol::Udp => Oxm::UdpSrc(port),
    }
}

/// `tcp_flags=value/mask` in OpenFlow 1.3's form (the ONF experimenter
/// OXM `ONFOXM_ET_TCP_FLAGS`, see `pipeline::field::TCP_FLAGS`).
pub fn tcp_flags(value: u16, mask: u16) -> Oxm {
    let mut payload = BytesMut::with_capacity(8);
    payload.put_u32(ONF_EXPERIMENTER_ID);
    payload.put_u16(value);
    payload.put_u16(mask);
    Oxm::Raw {
        class: OFPXMC_EXPERIMENTER,
        field: 42,
        hasmask: true,
        payload: payload.freeze(),
    }
}

/// The Open Networking Foundation's experimenter id.
const ONF_EXPERIMENTER_ID: u32 = 0x4f4e_4600;

/// `ct_state` with the bits of `on` set and those of `off` clear.
fn state(on: u32, off: u32) -> Oxm {
    ct_state_match(on, on | off)
}

fn tracked(vni: Option<u32>) -> Match {
    Match::new().with(ct_zone_match(ZONE)).with(scope(vni))
}

/// `ct(zone=Z, nat, table=lb)`: track (un-NAT what is known) and come back.
fn track() -> Action {
    NxAction::Ct(
        Ct::recirculate(ZONE, LB).with_actions(vec![NxAction::Nat(Nat::default()).to_action()]),
    )
    .to_action()
}

/// The bucket (and affinity) actions sending a new connection to `member`.
pub fn to_member(index: u32, member: MemberKey, mac: MacAddr) -> Vec<Action> {
    let mut nat = Nat {
        flags: nat_flags::DST,
        proto_min: Some(member.port),
        ..Nat::default()
    };
    match member.address {
        IpAddr::V4(a) => nat.ipv4_min = Some(a),
        IpAddr::V6(a) => nat.ipv6_min = Some(a),
    }
    let commit = Ct {
        recirc_table: Some(LEARN),
        ..Ct::commit(ZONE)
    }
    .with_actions(vec![NxAction::Nat(nat).to_action(), set_ct_mark(index)]);
    vec![
        Action::SetField(Oxm::EthDst(mac, None)),
        NxAction::Ct(commit).to_action(),
    ]
}

fn to_controller() -> Action {
    Action::Output {
        port: port_no::CONTROLLER,
        max_len: OFPCML_NO_BUFFER,
    }
}

fn entry(priority: u16, m: Match, cookie: u64, instructions: Vec<Instruction>) -> FlowEntry {
    FlowEntry::new(LB, priority, m, FlowSpec::new(cookie, instructions))
}

/// The VIP's part of a switch: its entries and its group.
pub fn compile_vip(vip: &PlannedVip, vmac: MacAddr) -> Desired {
    let index = vip.index;
    let et = eth_type(vip.address);
    let proto = vip.protocol.ip_proto();
    let mut flows = Vec::new();
    let to_vip = |m: Match| {
        m.with(Oxm::EthType(et))
            .with(Oxm::IpProto(proto))
            .with(ip_dst(vip.address))
            .with(l4_dst(vip.protocol, vip.port))
    };
    flows.push(entry(
        PRIO_TRACK,
        to_vip(Match::new().with(scope(vip.vni))),
        cookie(Kind::Vip, index),
        vec![Instruction::ApplyActions(vec![track()])],
    ));
    let (new_action, new_kind) = if vip.affinity {
        (to_controller(), Kind::AffinityMiss)
    } else {
        (Action::Group(group_id(index)), Kind::Vip)
    };
    flows.push(entry(
        PRIO_TRACKED,
        to_vip(tracked(vip.vni).with(state(ct_state::TRK | ct_state::NEW, 0))),
        cookie(new_kind, index),
        vec![Instruction::ApplyActions(vec![new_action])],
    ));
    let reply_to_client = vec![
        Instruction::ApplyActions(vec![Action::SetField(Oxm::EthSrc(vmac, None))]),
        Instruction::GotoTable(LEARN),
    ];
    flows.push(entry(
        PRIO_REPLY_ANY,
        tracked(vip.vni)
            .with(state(ct_state::TRK | ct_state::RPL, 0))
            .with(ct_mark_match(index, None)),
        cookie(Kind::Vip, index),
        reply_to_client.clone(),
    ));
    let mut reply_macs = BTreeSet::new();
    let mut buckets = Vec::new();
    for member in &vip.members {
        // Committed connections' packets towards the member (marked, so
        // not a new connection to the VIP), established or not yet.
        let committed = tracked(vip.vni)
            .with(state(ct_state::TRK, ct_state::RPL))
            .with(ct_mark_match(index, None))
            .with(Oxm::EthType(et))
            .with(Oxm::IpProto(proto))
            .with(ip_dst(member.key.address))
            .with(l4_dst(vip.protocol, member.key.port));
        let forward = match (member.admin, member.mac) {
            (AdminState::Disabled, _) => Some(Vec::new()),
            (_, Some(mac)) => Some(vec![
                Instruction::ApplyActions(vec![Action::SetField(Oxm::EthDst(mac, None))]),
                Instruction::GotoTable(LEARN),
            ]),
            (_, None) => None,
        };
        if let Some(forward) = forward {
            if vip.count && vip.protocol == Protocol::Tcp {
                for flag in [tcp_flag::FIN, tcp_flag::RST] {
                    flows.push(entry(
                        PRIO_COUNT,
                        committed.clone().with(tcp_flags(flag, flag)),
                        cookie(Kind::Count, index),
                        forward.clone(),
                    ));
                }
            }
            flows.push(entry(
                PRIO_TRACKED,
                committed,
                cookie(Kind::Member, index),
                forward,
            ));
        }
        if let Some(mac) = member.mac {
            if reply_macs.insert(mac) {
                let reply = tracked(vip.vni)
                    .with(state(ct_state::TRK | ct_state::RPL, 0))
                    .with(ct_mark_match(index, None))
                    .with(Oxm::EthSrc(mac, None));
                if vip.count && vip.protocol == Protocol::Tcp {
                    flows.push(entry(
                        PRIO_COUNT,
                        reply
                            .clone()
                            .with(Oxm::EthType(et))
                            .with(Oxm::IpProto(proto))
                            .with(tcp_flags(tcp_flag::SYN, tcp_flag::SYN)),
                        cookie(Kind::Count, index),
                        reply_to_client.clone(),
                    ));
                }
                flows.push(entry(
                    PRIO_TRACKED,
                    reply,
                    cookie(Kind::Member, index),
                    reply_to_client.clone(),
                ));
            }
            if member.in_rotation {
                buckets.push(Bucket {
                    weight: member.weight.max(1),
                    watch_port: port_no::ANY,
                    watch_group: OFPG_ANY,
                    actions: to_member(index, member.key, mac),
                });
            }
        }
    }
    Desired {
        flows,
        groups: vec![GroupEntry {
            id: group_id(index),
            spec: GroupSpec::new(GroupType::Select, buckets),
        }],
        meters: Vec::new(),
    }
}

/// The entries VIPs share on a switch; none without VIPs (a switch of a
/// controller with no VIP has no load-balancer entry at all).
pub fn compile_shared(shared: &Shared, vmac: MacAddr) -> Vec<FlowEntry> {
    if *shared == Shared::default() {
        return Vec::new();
    }
    let mut flows = vec![entry(
        PRIO_TRACKED_OTHER,
        Match::new()
            .with(ct_zone_match(ZONE))
            .with(state(ct_state::TRK, 0)),
        cookie(Kind::Base, 0),
        vec![Instruction::GotoTable(LEARN)],
    )];
    for (vni, proto, member) in &shared.member_sources {
        flows.push(entry(
            PRIO_TRACK,
            Match::new()
                .with(scope(*vni))
                .with(Oxm::EthType(eth_type(member.address)))
                .with(Oxm::IpProto(proto.ip_proto()))
                .with(ip_src(member.address))
                .with(l4_src(*proto, member.port)),
            cookie(Kind::Base, 0),
            vec![Instruction::ApplyActions(vec![track()])],
        ));
    }
    for (vni, ip) in &shared.answered {
        match ip {
            IpAddr::V4(v4) => {
                let arp = |op: u16| {
                    Match::new()
                        .with(scope(*vni))
                        .with(Oxm::EthType(ETH_TYPE_ARP))
                        .with(Oxm::ArpOp(op))
                        .with(Oxm::ArpTpa(*v4, None))
                };
                flows.push(entry(
                    PRIO_ARP,
                    arp(1),
                    cookie(Kind::Base, 0),
                    vec![Instruction::ApplyActions(arp::responder(*v4, vmac))],
                ));
                flows.push(entry(PRIO_ARP, arp(2), cookie(Kind::Base, 0), vec![]));
            }
            IpAddr::V6(v6) => flows.push(entry(
                PRIO_ND,
                Match::new()
                    .with(scope(*vni))
                    .with(Oxm::EthType(ETH_TYPE_IPV6))
                    .with(Oxm::IpProto(IP_PROTO_ICMPV6))
                    .with(Oxm::Icmpv6Type(ND_SOLICITATION))
                    .with(Oxm::Ipv6NdTarget(*v6)),
                cookie(Kind::Nd, 0),
                vec![Instruction::ApplyActions(vec![to_controller()])],
            )),
        }
    }
    for (vni, ip) in &shared.probe_sources {
        flows.push(entry(
            PRIO_PROBE_TRAP,
            Match::new()
                .with(scope(*vni))
                .with(Oxm::EthType(eth_type(*ip)))
                .with(ip_dst(*ip)),
            cookie(Kind::Probe, 0),
            vec![Instruction::ApplyActions(vec![to_controller()])],
        ));
    }
    flows
}

/// Where the affinity entry of `client` sits (its key).
pub fn affinity_key(vip: &PlannedVip, client: IpAddr) -> FlowKey {
    let m = tracked(vip.vni)
        .with(state(ct_state::TRK | ct_state::NEW, 0))
        .with(Oxm::EthType(eth_type(vip.address)))
        .with(Oxm::IpProto(vip.protocol.ip_proto()))
        .with(ip_src(client))
        .with(ip_dst(vip.address))
        .with(l4_dst(vip.protocol, vip.port));
    FlowKey::new(LB, PRIO_AFFINITY, m)
}

/// The affinity entry pinning `client`'s new connections to `member`
/// (reactive: it lives while the client opens connections, `timeout`
/// seconds idle at most).
pub fn affinity_entry(
    vip: &PlannedVip,
    client: IpAddr,
    member: MemberKey,
    mac: MacAddr,
    timeout: u16,
) -> FlowEntry {
    let mut spec = FlowSpec::new(
        cookie(Kind::Affinity, vip.index),
        vec![Instruction::ApplyActions(to_member(vip.index, member, mac))],
    );
    spec.idle_timeout = timeout;
    spec.flags = flowgate_openflow::flow_mod_flags::SEND_FLOW_REM;
    FlowEntry {
        key: affinity_key(vip, client),
        spec,
    }
}

#[cfg(test)]
mod tests;
