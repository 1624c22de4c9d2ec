//! Compiles the [`World`] into the flows one switch needs, by network: the
//! module declares each network's flows (and the switch's own) as a scope,
//! and a change to one network recompiles only that network. Pure.
//!
//! Layout on an overlay switch (priorities are far above forwarding's, so
//! tenant traffic never meets a forwarding entry):
//!
//! | table    | prio  | match                                   | action |
//! |----------|-------|-----------------------------------------|--------|
//! | classify | 38100 | in_port=VM, eth_src=MAC, arp (IP unknown) | copy to controller, metadata=tenant(v), goto acl |
//! | classify | 38000 | in_port=VM[, eth_src=MAC]               | metadata=tenant(v) [copy to controller while the MAC is unknown], goto acl |
//! | classify | 38000 | in_port=TUNNEL, tun_id=v                | metadata=tenant(v)+FROM_TUNNEL, goto acl |
//! | learn    | 38000 | metadata=TENANT                         | goto forward (tenant traffic skips learning) |
//! | learn    | 37000 | any                                     | drop (untenanted traffic never reaches forwarding here) |
//! | forward  | 40100 | metadata=tenant(v) local, arp request for the owner's own IP from its port | goto flood |
//! | forward  | 40000 | metadata=tenant(v) local, arp request for a known IP | ARP reply out of IN_PORT |
//! | forward  | 39000 | metadata=tenant(v), eth_dst=local MAC   | output VM port |
//! | forward  | 39000 | metadata=tenant(v) local, eth_dst=remote MAC | tun_id=v, output tunnel |
//! | forward  | 38000 | metadata=TENANT                         | goto flood |
//! | flood    | 39000 | metadata=tenant(v) local                | output local ports of v; tun_id=v, output tunnels to hosts with ports of v |
//! | flood    | 39000 | metadata=tenant(v)+FROM_TUNNEL          | output local ports of v (split horizon) |
//! | flood    | 38000 | metadata=TENANT                         | drop |
//!
//! Between plain switches ([`crate::fabric`]) a network's frames carry its
//! fabric VLAN on tree links: classify pops it on ingress from such a link
//! (38000, metadata as from a local port), forward and flood push it on
//! the way out, and every fabric switch drops other frames tagged in the
//! fabric range (37500). Switches that only carry a network through get
//! the gate's tenant half but not its drop-all.
//!
//! The tenant is the network's VNI: isolation is per network.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use flowgate_controller::cookie::Owner;
use flowgate_controller::desired::{FlowEntry, FlowSpec};
use flowgate_controller::pipeline::{metadata, ACL, CLASSIFY, FLOOD, FORWARD, LEARN};
use flowgate_openflow::{port_no, Action, Instruction, MacAddr, Match, Oxm};

use crate::arp;
use crate::fabric::{Fabric, VID_PRESENT, VLAN_BASE};
use crate::model::Port;
use crate::world::World;

pub const PRIO_ARP_OWNER: u16 = 40100;
pub const PRIO_ARP: u16 = 40000;
pub const PRIO_HOST: u16 = 39000;
pub const PRIO_FLOOD: u16 = 39000;
pub const PRIO_LEARN_ARP: u16 = 38100;
pub const PRIO_PORT: u16 = 38000;
pub const PRIO_TENANT_MISS: u16 = 38000;
pub const PRIO_GATE: u16 = 38000;
pub const PRIO_GATE_DROP: u16 = 37000;
pub const PRIO_FABRIC_GUARD: u16 = 37500;

/// Bytes of a learning packet sent to the controller: Ethernet + ARP/IPv4
/// headers are enough.
pub const LEARN_MAX_LEN: u16 = 128;

const ETH_TYPE_ARP: u16 = 0x0806;
const ETH_TYPE_IPV6: u16 = 0x86dd;
const IP_PROTO_ICMPV6: u8 = 58;
const ND_SOLICITATION: u8 = 135;
const ARP_REQUEST: u16 = 1;

/// What a flow is for; bits 32..40 of the cookie object, the VNI in the
/// low 24 bits, so `cookie & 0xffffff` names the network of every
/// network-scoped flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Kind {
    Gate = 1,
    Port = 2,
    Tunnel = 3,
    Host = 4,
    Arp = 5,
    TenantMiss = 6,
    Flood = 7,
    Fabric = 8,
    Nd = 9,
}

pub fn cookie(kind: Kind, vni: u32) -> u64 {
    Owner::Overlay.cookie(((kind as u64) << 32) | u64::from(vni))
}

/// The kind part of an overlay cookie.
pub fn kind_of(cookie: u64) -> u64 {
    (cookie >> 32) & 0xff
}

/// The flows of one switch by network VNI; VNI 0 holds the switch's own
/// (the gate, the fabric guard, the tenant misses).
pub type FlowSets = BTreeMap<u32, Vec<FlowEntry>>;

/// Which networks to compile; the switch's own flows always are.
#[derive(Debug, Clone, Copy)]
pub enum Networks<'a> {
    All,
    Only(&'a BTreeSet<u32>),
}

impl Networks<'_> {
    fn wants(&self, vni: u32) -> bool {
        match self {
            Networks::All => true,
            Networks::Only(vnis) => vnis.contains(&vni),
        }
    }
}

struct Builder<'a> {
    networks: Networks<'a>,
    flows: FlowSets,
}

impl Builder<'_> {
    fn add(&mut self, table: u8, priority: u16, m: Match, cookie: u64, ins: Vec<Instruction>) {
        let vni = vni_of(cookie);
        if vni != 0 && !self.networks.wants(vni) {
            return;
        }
        let entry = FlowEntry::new(table, priority, m, FlowSpec::new(cookie, ins));
        self.flows.entry(vni).or_default().push(entry);
    }
}

/// The network part of an overlay cookie (0 for switch-wide flows).
pub fn vni_of(cookie: u64) -> u32 {
    (cookie & metadata::VNI_MASK) as u32
}

fn md(value: u64, mask: u64) -> Oxm {
    Oxm::Metadata(value, Some(mask))
}

fn output(port: u32) -> Action {
    Action::Output { port, max_len: 0 }
}

fn to_controller() -> Action {
    Action::Output {
        port: port_no::CONTROLLER,
        max_len: LEARN_MAX_LEN,
    }
}

fn set_tenant(value: u64) -> Instruction {
    Instruction::WriteMetadata {
        metadata: value,
        mask: metadata::OVERLAY_MASK,
    }
}

/// A port of the configuration located on this switch.
struct Local {
    vni: u32,
    port_no: u32,
    mac: Option<MacAddr>,
    ips: Vec<IpAddr>,
}

/// `push_vlan`, `set vlan_vid`: the frame leaves on a fabric link.
fn tag(vlan: u16) -> [Action; 2] {
    [
        Action::PushVlan(0x8100),
        Action::SetField(Oxm::VlanVid(VID_PRESENT | vlan, None)),
    ]
}

/// What `dpid` needs of `networks`, and its own flows; empty when it is
/// neither an overlay switch nor part of the fabric.
pub fn compile(world: &World, fabric: &Fabric, dpid: u64, networks: Networks<'_>) -> FlowSets {
    let mut b = Builder {
        networks,
        flows: BTreeMap::new(),
    };
    let overlay_switch = world.overlay_switches().contains(&dpid);
    let guarded = fabric.guarded.contains(&dpid);
    let empty = BTreeMap::new();
    let trunks = fabric.at(dpid).unwrap_or(&empty);
    if !overlay_switch && !guarded && trunks.is_empty() {
        return b.flows;
    }
    let here = world.chassis_of_dpid(dpid);
    let vni_of_port = |p: &Port| world.config.networks.get(&p.network).map(|n| n.vni);

    // The gate: only tenant traffic goes on, straight to forward; on an
    // overlay switch nothing else does.
    b.add(
        LEARN,
        PRIO_GATE,
        Match::new().with(md(metadata::TENANT, metadata::TENANT)),
        cookie(Kind::Gate, 0),
        vec![Instruction::GotoTable(FORWARD)],
    );
    if overlay_switch {
        b.add(
            LEARN,
            PRIO_GATE_DROP,
            Match::new(),
            cookie(Kind::Gate, 0),
            vec![],
        );
    }
    if guarded {
        let range = VID_PRESENT | VLAN_BASE;
        b.add(
            CLASSIFY,
            PRIO_FABRIC_GUARD,
            Match::new().with(Oxm::VlanVid(range, Some(range))),
            cookie(Kind::Fabric, 0),
            vec![],
        );
    }
    // Ingress from fabric links: untag, then as if from a local port.
    for (vni, ports) in trunks {
        let Some(vlan) = fabric.vlans.get(vni) else {
            continue;
        };
        for port in ports {
            b.add(
                CLASSIFY,
                PRIO_PORT,
                Match::new()
                    .with(Oxm::InPort(*port))
                    .with(Oxm::VlanVid(VID_PRESENT | vlan, None)),
                cookie(Kind::Fabric, *vni),
                vec![
                    Instruction::ApplyActions(vec![Action::PopVlan]),
                    set_tenant(metadata::tenant(*vni)),
                    Instruction::GotoTable(ACL),
                ],
            );
        }
    }

    // Ports bound here.
    let mut locals: Vec<Local> = Vec::new();
    for port in world.config.ports.values() {
        let loc = world.locate(port);
        let (Some(d), Some(port_no), Some(vni)) = (loc.dpid, loc.port_no, vni_of_port(port)) else {
            continue;
        };
        if d == dpid {
            locals.push(Local {
                vni,
                port_no,
                mac: world.mac(port),
                ips: world.ips(port),
            });
        }
    }
    let local_vnis: BTreeSet<u32> = locals.iter().map(|l| l.vni).collect();
    // Networks this switch handles: its own, and those it carries.
    let carried: BTreeSet<u32> = local_vnis
        .iter()
        .copied()
        .chain(trunks.keys().copied())
        .collect();

    // Tunnels from here: peer chassis id → OpenFlow port.
    let tunnels: BTreeMap<&str, u32> = here
        .map(|c| {
            c.tunnels
                .iter()
                .filter_map(|(peer, name)| Some((peer.as_str(), world.port_no(dpid, name)?)))
                .collect()
        })
        .unwrap_or_default();

    for l in &locals {
        let tenant = metadata::tenant(l.vni);
        let in_port = Match::new().with(Oxm::InPort(l.port_no));
        match l.mac {
            Some(mac) => {
                let m = in_port.with(Oxm::EthSrc(mac, None));
                b.add(
                    CLASSIFY,
                    PRIO_PORT,
                    m.clone(),
                    cookie(Kind::Port, l.vni),
                    vec![set_tenant(tenant), Instruction::GotoTable(ACL)],
                );
                if l.ips.is_empty() {
                    b.add(
                        CLASSIFY,
                        PRIO_LEARN_ARP,
                        m.with(Oxm::EthType(ETH_TYPE_ARP)),
                        cookie(Kind::Port, l.vni),
                        vec![
                            Instruction::ApplyActions(vec![to_controller()]),
                            set_tenant(tenant),
                            Instruction::GotoTable(ACL),
                        ],
                    );
                }
                b.add(
                    FORWARD,
                    PRIO_HOST,
                    Match::new()
                        .with(md(tenant, metadata::TENANT_MASK))
                        .with(Oxm::EthDst(mac, None)),
                    cookie(Kind::Host, l.vni),
                    vec![Instruction::ApplyActions(vec![output(l.port_no)])],
                );
                // A port's ARP for its own address (a duplicate-address
                // probe) must not be answered on its behalf.
                for ip in &l.ips {
                    if let IpAddr::V4(v4) = ip {
                        b.add(
                            FORWARD,
                            PRIO_ARP_OWNER,
                            arp_request(tenant, *v4).with(Oxm::InPort(l.port_no)),
                            cookie(Kind::Arp, l.vni),
                            vec![Instruction::GotoTable(FLOOD)],
                        );
                    }
                }
            }
            None => b.add(
                CLASSIFY,
                PRIO_PORT,
                in_port,
                cookie(Kind::Port, l.vni),
                vec![
                    Instruction::ApplyActions(vec![to_controller()]),
                    set_tenant(tenant),
                    Instruction::GotoTable(ACL),
                ],
            ),
        }
    }

    // Tunnel ingress for the networks present here.
    for port in tunnels.values() {
        for vni in &local_vnis {
            b.add(
                CLASSIFY,
                PRIO_PORT,
                Match::new()
                    .with(Oxm::InPort(*port))
                    .with(Oxm::TunnelId(u64::from(*vni), None)),
                cookie(Kind::Tunnel, *vni),
                vec![
                    set_tenant(metadata::tenant(*vni) | metadata::FROM_TUNNEL),
                    Instruction::GotoTable(ACL),
                ],
            );
        }
    }

    // Ports elsewhere in the networks present here: unicast through the
    // tunnel to their host, ARP answered here, flooding to their hosts.
    let mut flood_tunnels: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    for port in world.config.ports.values() {
        let Some(vni) = vni_of_port(port).filter(|v| carried.contains(v) && networks.wants(*v))
        else {
            continue;
        };
        let tenant = metadata::tenant(vni);
        let loc = world.locate(port);
        let mac = world.mac(port);
        if let Some(mac) = mac.filter(|_| local_vnis.contains(&vni)) {
            for ip in world.ips(port) {
                match ip {
                    IpAddr::V4(v4) => b.add(
                        FORWARD,
                        PRIO_ARP,
                        arp_request(tenant, v4),
                        cookie(Kind::Arp, vni),
                        vec![Instruction::ApplyActions(arp::responder(v4, mac))],
                    ),
                    IpAddr::V6(v6) => b.add(
                        FORWARD,
                        PRIO_ARP,
                        Match::new()
                            .with(md(tenant, metadata::OVERLAY_MASK))
                            .with(Oxm::EthType(ETH_TYPE_IPV6))
                            .with(Oxm::IpProto(IP_PROTO_ICMPV6))
                            .with(Oxm::Icmpv6Type(ND_SOLICITATION))
                            .with(Oxm::Ipv6NdTarget(v6)),
                        cookie(Kind::Nd, vni),
                        vec![Instruction::ApplyActions(vec![Action::Output {
                            port: port_no::CONTROLLER,
                            max_len: flowgate_openflow::OFPCML_NO_BUFFER,
                        }])],
                    ),
                }
            }
        }
        if loc.dpid == Some(dpid) {
            continue;
        }
        let via_fabric = loc.dpid.and_then(|there| {
            let vlan = fabric.vlans.get(&vni)?;
            Some((*vlan, *fabric.next_hop.get(&(dpid, there))?))
        });
        if let (Some((vlan, port)), Some(mac)) = (via_fabric, mac) {
            let mut actions = tag(vlan).to_vec();
            actions.push(output(port));
            b.add(
                FORWARD,
                PRIO_HOST,
                Match::new()
                    .with(md(tenant, metadata::OVERLAY_MASK))
                    .with(Oxm::EthDst(mac, None)),
                cookie(Kind::Host, vni),
                vec![Instruction::ApplyActions(actions)],
            );
        }
        let Some(tunnel) = loc.chassis.as_deref().and_then(|c| tunnels.get(c).copied()) else {
            continue;
        };
        flood_tunnels.entry(vni).or_default().insert(tunnel);
        if let Some(mac) = mac {
            b.add(
                FORWARD,
                PRIO_HOST,
                Match::new()
                    .with(md(tenant, metadata::OVERLAY_MASK))
                    .with(Oxm::EthDst(mac, None)),
                cookie(Kind::Host, vni),
                vec![Instruction::ApplyActions(vec![
                    Action::SetField(Oxm::TunnelId(u64::from(vni), None)),
                    output(tunnel),
                ])],
            );
        }
    }

    if !carried.is_empty() {
        b.add(
            FORWARD,
            PRIO_TENANT_MISS,
            Match::new().with(md(metadata::TENANT, metadata::TENANT)),
            cookie(Kind::TenantMiss, 0),
            vec![Instruction::GotoTable(FLOOD)],
        );
    }
    b.add(
        FLOOD,
        PRIO_TENANT_MISS,
        Match::new().with(md(metadata::TENANT, metadata::TENANT)),
        cookie(Kind::TenantMiss, 0),
        vec![],
    );
    for vni in &carried {
        let mut ports: Vec<u32> = locals
            .iter()
            .filter(|l| l.vni == *vni)
            .map(|l| l.port_no)
            .collect();
        ports.sort_unstable();
        ports.dedup();
        let to_locals: Vec<Action> = ports.iter().map(|p| output(*p)).collect();
        let mut everywhere = to_locals.clone();
        if let Some(tunnels) = flood_tunnels.get(vni) {
            everywhere.push(Action::SetField(Oxm::TunnelId(u64::from(*vni), None)));
            everywhere.extend(tunnels.iter().map(|t| output(*t)));
        }
        if let (Some(vlan), Some(links)) = (fabric.vlans.get(vni), trunks.get(vni)) {
            everywhere.extend(tag(*vlan));
            everywhere.extend(links.iter().map(|p| output(*p)));
        }
        let tenant = metadata::tenant(*vni);
        b.add(
            FLOOD,
            PRIO_FLOOD,
            Match::new().with(md(tenant, metadata::OVERLAY_MASK)),
            cookie(Kind::Flood, *vni),
            vec![Instruction::ApplyActions(everywhere)],
        );
        b.add(
            FLOOD,
            PRIO_FLOOD,
            Match::new().with(md(tenant | metadata::FROM_TUNNEL, metadata::OVERLAY_MASK)),
            cookie(Kind::Flood, *vni),
            vec![Instruction::ApplyActions(to_locals)],
        );
    }
    b.flows
}

/// ARP requests for `ip` from local ports of the tenant network.
fn arp_request(tenant: u64, ip: std::net::Ipv4Addr) -> Match {
    Match::new()
        .with(md(tenant, metadata::OVERLAY_MASK))
        .with(Oxm::EthType(ETH_TYPE_ARP))
        .with(Oxm::ArpOp(ARP_REQUEST))
        .with(Oxm::ArpTpa(ip, None))
}
