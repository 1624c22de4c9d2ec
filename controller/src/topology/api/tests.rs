use std::collections::BTreeMap;

use super::*;
use crate::topology::view::{PortView, SwitchView};

const A: MacAddr = MacAddr([0, 0, 0, 0, 0, 0x0a]);
const B: MacAddr = MacAddr([0, 0, 0, 0, 0, 0x0b]);

/// s1 -(2:2)- s2, hosts A on s1:1 (10.0.0.1) and B on s2:1.
fn view() -> TopologyView {
    let ports = |roles: &[(u32, PortRole)]| {
        roles
            .iter()
            .map(|&(no, role)| {
                let p = PortView {
                    name: format!("eth{no}"),
                    hw_addr: MacAddr([2, 0, 0, 0, 0, no as u8]),
                    role,
                };
                (no, p)
            })
            .collect::<BTreeMap<_, _>>()
    };
    let sw = |roles: &[(u32, PortRole)]| SwitchView {
        ready: true,
        ports: ports(roles),
    };
    let host = |mac, dpid, ipv4: Vec<[u8; 4]>| Host {
        mac,
        vlan: None,
        ipv4: ipv4.into_iter().map(Into::into).collect(),
        ipv6: Vec::new(),
        at: Endpoint::new(dpid, 1),
    };
    TopologyView {
        switches: BTreeMap::from([
            (
                1,
                sw(&[
                    (1, PortRole::Edge),
                    (2, PortRole::Link),
                    (3, PortRole::Pending),
                ]),
            ),
            (2, sw(&[(1, PortRole::Edge), (2, PortRole::Link)])),
        ]),
        links: vec![
            (Endpoint::new(1, 2), Endpoint::new(2, 2)),
            (Endpoint::new(2, 2), Endpoint::new(1, 2)),
        ],
        hosts: vec![host(A, 1, vec![[10, 0, 0, 1]]), host(B, 2, vec![])],
    }
}

fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn field_of(err: ApiError) -> Option<String> {
    match err {
        ApiError::BadRequest { field, .. } | ApiError::NotFound { field, .. } => field,
        ApiError::Invalid { field, .. } => Some(field),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn topology_lists_roles_links_and_the_tree() {
    let doc = topology_doc(&view(), &[]);
    assert_eq!(doc.switches.len(), 2);
    let s1 = &doc.switches[0];
    assert_eq!(s1.dpid, "00:00:00:00:00:00:00:01");
    let floods: Vec<(u32, bool)> = s1.ports.iter().map(|p| (p.port_no, p.floods)).collect();
    assert_eq!(floods, vec![(1, true), (2, true), (3, false)]);
    assert_eq!(doc.links.len(), 2);
    assert!(doc.links.iter().all(|l| l.tree));
    let json = serde_json::to_value(&doc).unwrap();
    assert_eq!(json["switches"][0]["ports"][2]["role"], "pending");
    assert_eq!(json["links"][0]["src"]["port"], 2);
}

#[test]
fn hosts_filter_by_mac_ip_and_dpid() {
    let v = view();
    assert_eq!(find_hosts(&v, &[]).unwrap().len(), 2);
    let by_ip = find_hosts(&v, &q(&[("ip", "10.0.0.1")])).unwrap();
    assert_eq!(by_ip.len(), 1);
    assert_eq!(by_ip[0].mac, "00:00:00:00:00:0a");
    assert_eq!(by_ip[0].ipv4, vec!["10.0.0.1"]);
    let by_dpid = find_hosts(&v, &q(&[("dpid", "2")])).unwrap();
    assert_eq!(by_dpid[0].mac, "00:00:00:00:00:0b");
    assert!(
        find_hosts(&v, &q(&[("mac", "00:00:00:00:00:0b"), ("dpid", "1")]))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn bad_host_filters_name_the_parameter() {
    let v = view();
    assert_eq!(
        field_of(find_hosts(&v, &q(&[("mac", "zz")])).unwrap_err()).as_deref(),
        Some("mac")
    );
    assert_eq!(
        field_of(find_hosts(&v, &q(&[("ip", "10.0.0")])).unwrap_err()).as_deref(),
        Some("ip")
    );
    assert_eq!(
        field_of(find_hosts(&v, &q(&[("dpid", "x")])).unwrap_err()).as_deref(),
        Some("dpid")
    );
    assert_eq!(
        field_of(find_hosts(&v, &q(&[("vlan", "1")])).unwrap_err()).as_deref(),
        Some("vlan")
    );
}

#[test]
fn path_between_hosts_by_ip_or_mac() {
    let v = view();
    let path = find_path(&v, &q(&[("src", "10.0.0.1"), ("dst", "00:00:00:00:00:0b")])).unwrap();
    assert_eq!(path.src.mac, "00:00:00:00:00:0a");
    let hops: Vec<(String, u32, u32)> = path
        .hops
        .iter()
        .map(|h| (h.dpid.clone(), h.in_port, h.out_port))
        .collect();
    assert_eq!(
        hops,
        vec![
            ("00:00:00:00:00:00:00:01".to_string(), 1, 2),
            ("00:00:00:00:00:00:00:02".to_string(), 2, 1),
        ]
    );
}

#[test]
fn path_errors_name_the_end_at_fault() {
    let v = view();
    assert_eq!(
        field_of(find_path(&v, &q(&[("dst", "10.0.0.1")])).unwrap_err()).as_deref(),
        Some("src")
    );
    let unknown = find_path(&v, &q(&[("src", "10.0.0.1"), ("dst", "10.9.9.9")])).unwrap_err();
    assert!(matches!(unknown, ApiError::NotFound { .. }));
    let bad = find_path(&v, &q(&[("src", "nope"), ("dst", "10.0.0.1")])).unwrap_err();
    assert_eq!(field_of(bad).as_deref(), Some("src"));
    // No link: no path.
    let mut island = v.clone();
    island.links.clear();
    let none = find_path(
        &island,
        &q(&[("src", "10.0.0.1"), ("dst", "00:00:00:00:00:0b")]),
    )
    .unwrap_err();
    assert!(matches!(none, ApiError::NotFound { .. }));
}
