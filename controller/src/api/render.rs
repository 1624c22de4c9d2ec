//! Human-readable text for matches, actions and instructions.
//!
//! Names and value formats follow `ovs-ofctl dump-flows` (OXM field names:
//! `eth_dst`, `ipv4_src`, ...) so operators can compare the API's view of a
//! switch with what OVS prints. These strings are a stable part of the REST
//! output: modules and operator scripts match on them.
//!
//! Value conventions:
//! - ports: decimal, reserved ports by name (`LOCAL`, `CONTROLLER`, ...);
//! - ethertypes and other protocol codes: `0x0800`; small numbers decimal;
//! - addresses as usual text; masks as `/prefix-length` when contiguous,
//!   else `/mask`; masked integers as `0xvalue/0xmask`;
//! - `vlan_vid`: the VLAN id in decimal when OFPVID_PRESENT is set and
//!   unmasked, `none` for "no tag", else the raw `0xvalue[/0xmask]`;
//! - fields the codec keeps raw: key `0x<class>:<field>` and value the
//!   payload in hex (`/`-split into value and mask for masked non-experimenter
//!   fields).

use flowgate_openflow::{port_no, Action, Instruction, MacAddr, Match, Oxm};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

/// OXM class of experimenter fields, whose payload starts with a 4-byte
/// experimenter id (so it cannot be split in value/mask halves).
const OFPXMC_EXPERIMENTER: u16 = 0xffff;
const OFPVID_PRESENT: u16 = 0x1000;

/// A port number, with reserved ports named as ovs-ofctl does.
pub fn port_name(port: u32) -> String {
    let name = match port {
        port_no::IN_PORT => "IN_PORT",
        port_no::TABLE => "TABLE",
        port_no::NORMAL => "NORMAL",
        port_no::FLOOD => "FLOOD",
        port_no::ALL => "ALL",
        port_no::CONTROLLER => "CONTROLLER",
        port_no::LOCAL => "LOCAL",
        port_no::ANY => "ANY",
        n => return n.to_string(),
    };
    name.to_owned()
}

/// Lowercase hex of `bytes` with a `0x` prefix (`0x` alone when empty).
pub fn hex_bytes(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 + 2 * bytes.len());
    s.push_str("0x");
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn masked_hex(value: u64, mask: Option<u64>) -> String {
    match mask {
        None => format!("{value:#x}"),
        Some(m) => format!("{value:#x}/{m:#x}"),
    }
}

fn masked_mac(value: MacAddr, mask: Option<MacAddr>) -> String {
    match mask {
        None => value.to_string(),
        Some(m) => format!("{value}/{m}"),
    }
}

fn masked_ipv4(value: Ipv4Addr, mask: Option<Ipv4Addr>) -> String {
    match mask {
        None => value.to_string(),
        Some(m) => prefix_len(u32::from(m).into(), 32).map_or_else(
            || format!("{value}/{m}"),
            |len| format_prefix(value, len, 32),
        ),
    }
}

fn masked_ipv6(value: Ipv6Addr, mask: Option<Ipv6Addr>) -> String {
    match mask {
        None => value.to_string(),
        Some(m) => prefix_len(u128::from(m), 128).map_or_else(
            || format!("{value}/{m}"),
            |len| format_prefix(value, len, 128),
        ),
    }
}

/// `addr` alone for a full-length prefix, else `addr/len`.
fn format_prefix(addr: impl std::fmt::Display, len: u32, bits: u32) -> String {
    if len == bits {
        addr.to_string()
    } else {
        format!("{addr}/{len}")
    }
}

/// The prefix length of a contiguous `bits`-wide mask held in the low bits
/// of `mask`, or `None` if the ones are not contiguous from the top.
fn prefix_len(mask: u128, bits: u32) -> Option<u32> {
    let shifted = mask << (128 - bits);
    let len = shifted.leading_ones();
    (shifted.checked_shl(len).unwrap_or(0) == 0).then_some(len)
}

fn vlan_vid(value: u16, mask: Option<u16>) -> String {
    match mask {
        None if value & OFPVID_PRESENT != 0 => (value & 0x0fff).to_string(),
        None if value == 0 => "none".to_owned(),
        None => format!("{value:#06x}"),
        Some(m) => format!("{value:#06x}/{m:#06x}"),
    }
}

/// Raw field payload: value/mask halves when masked (non-experimenter).
fn raw_payload(class: u16, hasmask: bool, payload: &[u8]) -> String {
    let half = payload.len() / 2;
    if hasmask && class != OFPXMC_EXPERIMENTER && half > 0 && half * 2 == payload.len() {
        let (v, m) = payload.split_at(half);
        format!("{}/{}", hex_bytes(v), hex_bytes(m))
    } else {
        hex_bytes(payload)
    }
}

/// The ovs-ofctl name and value text of one match field.
pub fn oxm_text(oxm: &Oxm) -> (String, String) {
    let (name, value) = match oxm {
        Oxm::InPort(p) => ("in_port", port_name(*p)),
        Oxm::InPhyPort(p) => ("in_phy_port", port_name(*p)),
        Oxm::Metadata(v, m) => ("metadata", masked_hex(*v, *m)),
        Oxm::EthDst(v, m) => ("eth_dst", masked_mac(*v, *m)),
        Oxm::EthSrc(v, m) => ("eth_src", masked_mac(*v, *m)),
        Oxm::EthType(t) => ("eth_type", format!("{t:#06x}")),
        Oxm::VlanVid(v, m) => ("vlan_vid", vlan_vid(*v, *m)),
        Oxm::VlanPcp(v) => ("vlan_pcp", v.to_string()),
        Oxm::IpDscp(v) => ("ip_dscp", v.to_string()),
        Oxm::IpEcn(v) => ("ip_ecn", v.to_string()),
        Oxm::IpProto(v) => ("ip_proto", v.to_string()),
        Oxm::Ipv4Src(v, m) => ("ipv4_src", masked_ipv4(*v, *m)),
        Oxm::Ipv4Dst(v, m) => ("ipv4_dst", masked_ipv4(*v, *m)),
        Oxm::TcpSrc(v) => ("tcp_src", v.to_string()),
        Oxm::TcpDst(v) => ("tcp_dst", v.to_string()),
        Oxm::UdpSrc(v) => ("udp_src", v.to_string()),
        Oxm::UdpDst(v) => ("udp_dst", v.to_string()),
        Oxm::SctpSrc(v) => ("sctp_src", v.to_string()),
        Oxm::SctpDst(v) => ("sctp_dst", v.to_string()),
        Oxm::Icmpv4Type(v) => ("icmpv4_type", v.to_string()),
        Oxm::Icmpv4Code(v) => ("icmpv4_code", v.to_string()),
        Oxm::ArpOp(v) => ("arp_op", v.to_string()),
        Oxm::ArpSpa(v, m) => ("arp_spa", masked_ipv4(*v, *m)),
        Oxm::ArpTpa(v, m) => ("arp_tpa", masked_ipv4(*v, *m)),
        Oxm::ArpSha(v, m) => ("arp_sha", masked_mac(*v, *m)),
        Oxm::ArpTha(v, m) => ("arp_tha", masked_mac(*v, *m)),
        Oxm::Ipv6Src(v, m) => ("ipv6_src", masked_ipv6(*v, *m)),
        Oxm::Ipv6Dst(v, m) => ("ipv6_dst", masked_ipv6(*v, *m)),
        Oxm::Ipv6Flabel(v, m) => ("ipv6_label", masked_hex((*v).into(), m.map(u64::from))),
        Oxm::Icmpv6Type(v) => ("icmpv6_type", v.to_string()),
        Oxm::Icmpv6Code(v) => ("icmpv6_code", v.to_string()),
        Oxm::Ipv6NdTarget(v) => ("nd_target", v.to_string()),
        Oxm::Ipv6NdSll(v) => ("nd_sll", v.to_string()),
        Oxm::Ipv6NdTll(v) => ("nd_tll", v.to_string()),
        Oxm::MplsLabel(v) => ("mpls_label", v.to_string()),
        Oxm::MplsTc(v) => ("mpls_tc", v.to_string()),
        Oxm::MplsBos(v) => ("mpls_bos", v.to_string()),
        Oxm::PbbIsid(v, m) => ("pbb_isid", masked_hex((*v).into(), m.map(u64::from))),
        Oxm::TunnelId(v, m) => ("tunnel_id", masked_hex(*v, *m)),
        Oxm::Ipv6Exthdr(v, m) => ("ipv6_exthdr", masked_hex((*v).into(), m.map(u64::from))),
        Oxm::Reg(n, v, m) => return (format!("reg{n}"), masked_hex((*v).into(), m.map(u64::from))),
        Oxm::TunIpv4Src(v, m) => ("tun_src", masked_ipv4(*v, *m)),
        Oxm::TunIpv4Dst(v, m) => ("tun_dst", masked_ipv4(*v, *m)),
        Oxm::PktMark(v, m) => ("pkt_mark", masked_hex((*v).into(), m.map(u64::from))),
        Oxm::ConjId(v) => ("conj_id", v.to_string()),
        Oxm::CtState(v, m) => ("ct_state", masked_hex((*v).into(), m.map(u64::from))),
        Oxm::CtZone(v) => ("ct_zone", v.to_string()),
        Oxm::CtMark(v, m) => ("ct_mark", masked_hex((*v).into(), m.map(u64::from))),
        Oxm::CtLabel(v, m) => (
            "ct_label",
            match m {
                None => hex_bytes(v),
                Some(m) => format!("{}/{}", hex_bytes(v), hex_bytes(m)),
            },
        ),
        Oxm::Raw {
            class,
            field,
            hasmask,
            payload,
        } => {
            return (
                format!("{class:#06x}:{field}"),
                raw_payload(*class, *hasmask, payload),
            )
        }
    };
    (name.to_owned(), value)
}

/// A match as `{field: value}`. A field repeated in one match (only
/// possible with raw fields) keeps its values joined by `,`.
pub fn match_fields(m: &Match) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for oxm in &m.fields {
        let (name, value) = oxm_text(oxm);
        out.entry(name)
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    out
}

/// One action, ovs-ofctl style (`output:2`, `CONTROLLER:65535`,
/// `set_field:10.0.0.1->ipv4_dst`, `group:3`, ...).
pub fn action_text(action: &Action) -> String {
    match action {
        Action::Output { port, max_len } => match *port {
            port_no::CONTROLLER => format!("CONTROLLER:{max_len}"),
            p if p > port_no::MAX => port_name(p),
            p => format!("output:{p}"),
        },
        Action::CopyTtlOut => "copy_ttl_out".to_owned(),
        Action::CopyTtlIn => "copy_ttl_in".to_owned(),
        Action::SetMplsTtl(t) => format!("set_mpls_ttl:{t}"),
        Action::DecMplsTtl => "dec_mpls_ttl".to_owned(),
        Action::PushVlan(t) => format!("push_vlan:{t:#06x}"),
        Action::PopVlan => "pop_vlan".to_owned(),
        Action::PushMpls(t) => format!("push_mpls:{t:#06x}"),
        Action::PopMpls(t) => format!("pop_mpls:{t:#06x}"),
        Action::SetQueue(q) => format!("set_queue:{q}"),
        Action::Group(g) => format!("group:{g}"),
        Action::SetNwTtl(t) => format!("set_nw_ttl:{t}"),
        Action::DecNwTtl => "dec_ttl".to_owned(),
        Action::SetField(oxm) => {
            let (name, value) = oxm_text(oxm);
            format!("set_field:{value}->{name}")
        }
        Action::PushPbb(t) => format!("push_pbb:{t:#06x}"),
        Action::PopPbb => "pop_pbb".to_owned(),
        Action::Experimenter { experimenter, data } => {
            format!("experimenter({experimenter:#010x},{})", hex_bytes(data))
        }
        Action::Unknown { action_type, data } => {
            format!("unknown_action({action_type},{})", hex_bytes(data))
        }
    }
}

fn action_list(actions: &[Action]) -> String {
    actions
        .iter()
        .map(action_text)
        .collect::<Vec<_>>()
        .join(",")
}

/// One instruction (`goto_table:1`, `apply_actions(output:2)`, `meter:1`,
/// `write_metadata:0x1/0xff`, `clear_actions`, ...). A write_metadata with
/// an all-ones mask omits the mask.
pub fn instruction_text(instruction: &Instruction) -> String {
    match instruction {
        Instruction::GotoTable(t) => format!("goto_table:{t}"),
        Instruction::WriteMetadata { metadata, mask } => {
            let mask = (*mask != u64::MAX).then_some(*mask);
            format!("write_metadata:{}", masked_hex(*metadata, mask))
        }
        Instruction::WriteActions(a) => format!("write_actions({})", action_list(a)),
        Instruction::ApplyActions(a) => format!("apply_actions({})", action_list(a)),
        Instruction::ClearActions => "clear_actions".to_owned(),
        Instruction::Meter(m) => format!("meter:{m}"),
        Instruction::Experimenter { experimenter, data } => {
            format!("experimenter({experimenter:#010x},{})", hex_bytes(data))
        }
        Instruction::Unknown {
            instruction_type,
            data,
        } => format!(
            "unknown_instruction({instruction_type},{})",
            hex_bytes(data)
        ),
    }
}

/// Every instruction of a flow, in order.
pub fn instructions_text(instructions: &[Instruction]) -> Vec<String> {
    instructions.iter().map(instruction_text).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn mac(s: &str) -> MacAddr {
        s.parse().expect("test mac")
    }

    fn text(oxm: Oxm) -> (String, String) {
        oxm_text(&oxm)
    }

    fn pair(name: &str, value: &str) -> (String, String) {
        (name.to_owned(), value.to_owned())
    }

    #[test]
    fn ports_and_reserved_ports() {
        assert_eq!(text(Oxm::InPort(1)), pair("in_port", "1"));
        assert_eq!(text(Oxm::InPort(port_no::LOCAL)), pair("in_port", "LOCAL"));
        assert_eq!(port_name(port_no::MAX), "4294967040");
        assert_eq!(port_name(port_no::CONTROLLER), "CONTROLLER");
        assert_eq!(port_name(port_no::ANY), "ANY");
    }

    #[test]
    fn ethernet_fields() {
        let m = mac("aa:bb:cc:dd:ee:ff");
        assert_eq!(
            text(Oxm::EthDst(m, None)),
            pair("eth_dst", "aa:bb:cc:dd:ee:ff")
        );
        assert_eq!(
            text(Oxm::EthSrc(m, Some(mac("ff:ff:ff:00:00:00")))),
            pair("eth_src", "aa:bb:cc:dd:ee:ff/ff:ff:ff:00:00:00")
        );
        assert_eq!(text(Oxm::EthType(0x0800)), pair("eth_type", "0x0800"));
        assert_eq!(text(Oxm::EthType(0x88cc)), pair("eth_type", "0x88cc"));
    }

    #[test]
    fn vlan_forms() {
        assert_eq!(
            text(Oxm::VlanVid(0x1000 | 10, None)),
            pair("vlan_vid", "10")
        );
        assert_eq!(text(Oxm::VlanVid(0, None)), pair("vlan_vid", "none"));
        assert_eq!(
            text(Oxm::VlanVid(0x1000, Some(0x1000))),
            pair("vlan_vid", "0x1000/0x1000")
        );
        assert_eq!(text(Oxm::VlanVid(5, None)), pair("vlan_vid", "0x0005"));
    }

    #[test]
    fn ipv4_prefixes_and_odd_masks() {
        let a = Ipv4Addr::new(10, 0, 0, 0);
        assert_eq!(text(Oxm::Ipv4Src(a, None)), pair("ipv4_src", "10.0.0.0"));
        assert_eq!(
            text(Oxm::Ipv4Src(a, Some(Ipv4Addr::new(255, 0, 0, 0)))),
            pair("ipv4_src", "10.0.0.0/8")
        );
        assert_eq!(
            text(Oxm::Ipv4Dst(a, Some(Ipv4Addr::BROADCAST))),
            pair("ipv4_dst", "10.0.0.0")
        );
        assert_eq!(
            text(Oxm::Ipv4Dst(a, Some(Ipv4Addr::UNSPECIFIED))),
            pair("ipv4_dst", "10.0.0.0/0")
        );
        assert_eq!(
            text(Oxm::ArpTpa(a, Some(Ipv4Addr::new(255, 0, 255, 0)))),
            pair("arp_tpa", "10.0.0.0/255.0.255.0")
        );
    }

    #[test]
    fn ipv6_prefixes() {
        let a: Ipv6Addr = "2001:db8::".parse().unwrap();
        let m64: Ipv6Addr = "ffff:ffff:ffff:ffff::".parse().unwrap();
        assert_eq!(
            text(Oxm::Ipv6Src(a, Some(m64))),
            pair("ipv6_src", "2001:db8::/64")
        );
        assert_eq!(text(Oxm::Ipv6Dst(a, None)), pair("ipv6_dst", "2001:db8::"));
        let odd: Ipv6Addr = "ffff::ffff".parse().unwrap();
        assert_eq!(
            text(Oxm::Ipv6Dst(a, Some(odd))),
            pair("ipv6_dst", "2001:db8::/ffff::ffff")
        );
    }

    #[test]
    fn numbers_and_masked_integers() {
        assert_eq!(text(Oxm::TcpDst(80)), pair("tcp_dst", "80"));
        assert_eq!(text(Oxm::UdpSrc(53)), pair("udp_src", "53"));
        assert_eq!(text(Oxm::IpProto(6)), pair("ip_proto", "6"));
        assert_eq!(
            text(Oxm::Metadata(1, Some(0xff))),
            pair("metadata", "0x1/0xff")
        );
        assert_eq!(text(Oxm::Metadata(0x10, None)), pair("metadata", "0x10"));
        assert_eq!(text(Oxm::TunnelId(0x64, None)), pair("tunnel_id", "0x64"));
        assert_eq!(
            text(Oxm::Ipv6Flabel(0x12345, Some(0xfffff))),
            pair("ipv6_label", "0x12345/0xfffff")
        );
    }

    #[test]
    fn raw_fields_keep_class_and_field() {
        // NXM_NX_REG0 = class 0x0001, field 0, 4 bytes.
        let reg0 = Oxm::Raw {
            class: 0x0001,
            field: 0,
            hasmask: false,
            payload: Bytes::from_static(&[0, 0, 0, 5]),
        };
        assert_eq!(text(reg0), pair("0x0001:0", "0x00000005"));
        let masked = Oxm::Raw {
            class: 0x0001,
            field: 105,
            hasmask: true,
            payload: Bytes::from_static(&[0x21, 0x00, 0xff, 0x00]),
        };
        assert_eq!(text(masked), pair("0x0001:105", "0x2100/0xff00"));
        let exp = Oxm::Raw {
            class: 0xffff,
            field: 1,
            hasmask: true,
            payload: Bytes::from_static(&[0, 0, 0x23, 0x20, 1, 2]),
        };
        assert_eq!(text(exp), pair("0xffff:1", "0x000023200102"));
    }

    #[test]
    fn match_object_and_repeated_raw_fields() {
        let m = Match::new()
            .with(Oxm::InPort(2))
            .with(Oxm::EthType(0x0800))
            .with(Oxm::Ipv4Dst(
                Ipv4Addr::new(10, 0, 0, 1),
                Some(Ipv4Addr::new(255, 255, 255, 0)),
            ));
        let fields = match_fields(&m);
        assert_eq!(fields.len(), 3);
        assert_eq!(fields["in_port"], "2");
        assert_eq!(fields["eth_type"], "0x0800");
        assert_eq!(fields["ipv4_dst"], "10.0.0.1/24");
        assert!(match_fields(&Match::new()).is_empty());

        let raw = |b: u8| Oxm::Raw {
            class: 1,
            field: 3,
            hasmask: false,
            payload: Bytes::copy_from_slice(&[b]),
        };
        let twice = Match::new().with(raw(1)).with(raw(2));
        assert_eq!(match_fields(&twice)["0x0001:3"], "0x01,0x02");
    }

    #[test]
    fn actions() {
        assert_eq!(
            action_text(&Action::Output {
                port: 2,
                max_len: 0
            }),
            "output:2"
        );
        assert_eq!(
            action_text(&Action::Output {
                port: port_no::CONTROLLER,
                max_len: 0xffff
            }),
            "CONTROLLER:65535"
        );
        assert_eq!(
            action_text(&Action::Output {
                port: port_no::FLOOD,
                max_len: 0
            }),
            "FLOOD"
        );
        assert_eq!(
            action_text(&Action::SetField(Oxm::Ipv4Dst(
                Ipv4Addr::new(10, 0, 0, 9),
                None
            ))),
            "set_field:10.0.0.9->ipv4_dst"
        );
        assert_eq!(
            action_text(&Action::SetField(Oxm::EthDst(
                mac("00:00:00:00:00:01"),
                None
            ))),
            "set_field:00:00:00:00:00:01->eth_dst"
        );
        assert_eq!(action_text(&Action::PushVlan(0x8100)), "push_vlan:0x8100");
        assert_eq!(action_text(&Action::PopVlan), "pop_vlan");
        assert_eq!(action_text(&Action::Group(7)), "group:7");
        assert_eq!(action_text(&Action::SetQueue(1)), "set_queue:1");
        assert_eq!(action_text(&Action::DecNwTtl), "dec_ttl");
        assert_eq!(
            action_text(&Action::Experimenter {
                experimenter: 0x2320,
                data: Bytes::from_static(&[0, 0x23])
            }),
            "experimenter(0x00002320,0x0023)"
        );
        assert_eq!(
            action_text(&Action::Unknown {
                action_type: 99,
                data: Bytes::new()
            }),
            "unknown_action(99,0x)"
        );
    }

    #[test]
    fn instructions() {
        let apply = Instruction::ApplyActions(vec![
            Action::SetField(Oxm::VlanVid(0x1000 | 5, None)),
            Action::Output {
                port: 2,
                max_len: 0,
            },
        ]);
        assert_eq!(
            instructions_text(&[
                Instruction::GotoTable(1),
                apply,
                Instruction::Meter(1),
                Instruction::WriteMetadata {
                    metadata: 1,
                    mask: 0xff
                },
                Instruction::WriteMetadata {
                    metadata: 2,
                    mask: u64::MAX
                },
                Instruction::ClearActions,
                Instruction::WriteActions(vec![]),
            ]),
            [
                "goto_table:1",
                "apply_actions(set_field:5->vlan_vid,output:2)",
                "meter:1",
                "write_metadata:0x1/0xff",
                "write_metadata:0x2",
                "clear_actions",
                "write_actions()",
            ]
        );
    }

    #[test]
    fn prefix_len_edges() {
        assert_eq!(prefix_len(0, 32), Some(0));
        assert_eq!(prefix_len(0xffff_ffff, 32), Some(32));
        assert_eq!(prefix_len(0xffff_ff00, 32), Some(24));
        assert_eq!(prefix_len(0xff00_ff00, 32), None);
        assert_eq!(prefix_len(1, 32), None);
        assert_eq!(prefix_len(u128::MAX, 128), Some(128));
    }
}
