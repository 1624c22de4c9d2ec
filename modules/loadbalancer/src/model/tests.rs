use std::net::IpAddr;

use flowgate_controller::tenants::{TenantNetwork, TenantNetworks, TenantPort};
use flowgate_controller::topology::{Endpoint, Host, TopologyView};
use flowgate_openflow::MacAddr;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(crate) fn member(addr: &str, port: u16) -> Member {
    Member {
        address: ip(addr),
        port,
        weight: 1,
        admin_state: AdminState::Enabled,
        origin: None,
        held: None,
    }
}

pub(crate) fn vip(id: &str, addr: &str, port: u16, pool: &str) -> Vip {
    Vip {
        id: id.into(),
        address: ip(addr),
        protocol: Protocol::Tcp,
        port,
        pool: pool.into(),
        method: Method::Hash,
        network: None,
        affinity_timeout: None,
        description: String::new(),
        index: 1,
        origin: None,
    }
}

pub(crate) fn monitor(id: &str, pool: &str) -> Monitor {
    Monitor {
        id: id.into(),
        pool: pool.into(),
        kind: MonitorType::Tcp,
        interval: 1.0,
        timeout: 0.5,
        rise: 2,
        fall: 2,
        port: None,
        source_ip: Some(ip("10.0.0.250")),
        http_path: None,
        expected_status: None,
    }
}

fn config() -> Config {
    let mut c = Config::default();
    c.pools.insert(
        "web".into(),
        Pool {
            id: "web".into(),
            members: vec![member("10.0.0.2", 8080), member("10.0.0.3", 8080)],
            load_aware: None,
            description: String::new(),
        },
    );
    c.vips
        .insert("web".into(), vip("web", "10.0.0.100", 80, "web"));
    c
}

fn topology() -> TopologyView {
    TopologyView {
        hosts: vec![Host {
            mac: MacAddr([0, 0, 0, 0, 0, 1]),
            vlan: None,
            ipv4: vec!["10.0.0.1".parse().unwrap()],
            ipv6: vec![],
            at: Endpoint::new(1, 1),
        }],
        ..TopologyView::default()
    }
}

fn tenants() -> TenantNetworks {
    let mut t = TenantNetworks::default();
    t.networks.insert(
        "blue".into(),
        TenantNetwork {
            id: "blue".into(),
            vni: 100,
            subnet: Some((ip("10.1.0.0"), 24)),
            ports: vec![TenantPort {
                id: "vm1".into(),
                mac: None,
                ips: vec![ip("10.1.0.1")],
                dpid: Some(1),
                port_no: Some(1),
            }],
        },
    );
    t
}

fn field_of(e: Invalid) -> (u16, String) {
    match e {
        Invalid::Bad { field, .. } => (422, field),
        Invalid::Missing { field, .. } => (404, field),
        Invalid::Conflict { field, .. } => (409, field),
    }
}

#[test]
fn a_valid_vip_passes() {
    let c = config();
    let topo = topology();
    let cx = Context {
        topology: Some(&topo),
        ..Context::default()
    };
    c.check_vip(&vip("web", "10.0.0.100", 80, "web"), &cx)
        .unwrap();
    // Same address, another port: a second service on the VIP address.
    c.check_vip(&vip("web-tls", "10.0.0.100", 443, "web"), &cx)
        .unwrap();
}

#[test]
fn bad_vips_are_refused_naming_the_field() {
    let c = config();
    let topo = topology();
    let t = tenants();
    let cx = Context {
        topology: Some(&topo),
        tenants: Some(&t),
        ..Context::default()
    };
    let refused = |v: Vip| field_of(c.check_vip(&v, &cx).unwrap_err());
    assert_eq!(
        refused(vip("other", "10.0.0.100", 80, "web")),
        (409, "address".into()),
        "the same address and port as VIP web"
    );
    assert_eq!(
        refused(vip("h1", "10.0.0.1", 80, "web")),
        (409, "address".into()),
        "a host's address"
    );
    assert_eq!(
        refused(vip("x", "10.0.0.101", 80, "nope")),
        (404, "pool".into())
    );
    assert_eq!(
        refused(vip("x y", "10.0.0.101", 80, "web")),
        (422, "id".into())
    );
    assert_eq!(
        refused(vip("x", "224.0.0.1", 80, "web")),
        (422, "address".into())
    );
    assert_eq!(
        refused(vip("x", "10.0.0.101", 0, "web")),
        (422, "port".into())
    );
    let mut v6 = vip("x", "fd00::100", 80, "web");
    v6.index = 2;
    assert_eq!(refused(v6), (422, "pool".into()), "IPv4 members");
    let mut tenant = vip("t", "10.1.0.100", 80, "web");
    tenant.network = Some("blue".into());
    let e = c.check_vip(&tenant, &cx).unwrap_err();
    assert!(e.to_string().contains("outside tenant network"), "{e}");
    assert_eq!(
        field_of(e),
        (422, "pool".into()),
        "members 10.0.0.x are outside blue"
    );
    tenant.network = Some("red".into());
    assert_eq!(refused(tenant), (404, "network".into()));
    let mut sticky = vip("s", "10.0.0.101", 80, "web");
    sticky.affinity_timeout = Some(0);
    assert_eq!(refused(sticky), (422, "affinity_timeout".into()));
}

#[test]
fn a_tenant_vips_members_must_be_in_its_network() {
    let mut c = config();
    let t = tenants();
    let cx = Context {
        tenants: Some(&t),
        ..Context::default()
    };
    c.pools.insert(
        "blue".into(),
        Pool {
            id: "blue".into(),
            members: vec![member("10.1.0.1", 80), member("10.1.0.7", 80)],
            load_aware: None,
            description: String::new(),
        },
    );
    let mut v = vip("t", "10.1.0.100", 80, "blue");
    v.network = Some("blue".into());
    c.check_vip(&v, &cx).unwrap();
    // The VIP may not take a port's address in its network.
    let mut taken = v.clone();
    taken.address = ip("10.1.0.1");
    assert_eq!(
        field_of(c.check_vip(&taken, &cx).unwrap_err()),
        (409, "address".into())
    );
    c.vips.insert("t".into(), v);
    // Adding a member outside the tenant to the pool is refused.
    let mut pool = c.pools["blue"].clone();
    pool.members.push(member("192.0.2.1", 80));
    let (status, field) = field_of(c.check_pool(&pool, &cx).unwrap_err());
    assert_eq!((status, field.as_str()), (422, "members[2].address"));
}

#[test]
fn member_weights_are_1_to_1000() {
    let c = config();
    let cx = Context::default();
    for (weight, ok) in [(0, false), (1, true), (1000, true), (1001, false)] {
        let mut pool = c.pools["web"].clone();
        pool.members[1].weight = weight;
        match c.check_pool(&pool, &cx) {
            Ok(()) => assert!(ok, "weight {weight} accepted"),
            Err(e) => {
                assert!(!ok, "weight {weight} refused: {e}");
                assert_eq!(field_of(e), (422, "members[1].weight".into()));
            }
        }
    }
    let mut twice = c.pools["web"].clone();
    twice.members.push(member("10.0.0.2", 8080));
    assert_eq!(
        field_of(c.check_pool(&twice, &cx).unwrap_err()),
        (409, "members[2].address".into())
    );
}

#[test]
fn monitors_need_a_timeout_below_the_interval() {
    let c = config();
    let cx = Context::default();
    c.check_monitor(&monitor("m", "web"), &cx).unwrap();
    let refused = |m: Monitor| field_of(c.check_monitor(&m, &cx).unwrap_err());
    let mut slow = monitor("m", "web");
    slow.timeout = 1.0;
    assert_eq!(refused(slow), (422, "timeout".into()));
    let mut nowhere = monitor("m", "nope");
    nowhere.timeout = 0.1;
    assert_eq!(refused(nowhere), (404, "pool".into()));
    let mut rise = monitor("m", "web");
    rise.rise = 0;
    assert_eq!(refused(rise), (422, "rise".into()));
    let mut icmp = monitor("m", "web");
    icmp.kind = MonitorType::Icmp;
    icmp.port = Some(80);
    assert_eq!(refused(icmp), (422, "port".into()));
    let mut path = monitor("m", "web");
    path.http_path = Some("/x".into());
    assert_eq!(refused(path), (422, "http_path".into()), "only for http");
    let mut sourceless = monitor("m", "web");
    sourceless.source_ip = None;
    assert_eq!(refused(sourceless.clone()), (422, "source_ip".into()));
    let defaults = Context {
        monitor_source_v4: Some(ip("10.0.0.251")),
        ..Context::default()
    };
    c.check_monitor(&sourceless, &defaults).unwrap();
    let mut on_vip = monitor("m", "web");
    on_vip.source_ip = Some(ip("10.0.0.100"));
    assert_eq!(refused(on_vip), (409, "source_ip".into()));
    let mut second = c.clone();
    second.monitors.insert("m".into(), monitor("m", "web"));
    assert_eq!(
        field_of(second.check_monitor(&monitor("n", "web"), &cx).unwrap_err()),
        (409, "pool".into())
    );
    let http = Monitor {
        kind: MonitorType::Http,
        ..monitor("h", "web")
    }
    .normalized();
    assert_eq!(
        (http.http_path.as_deref(), http.expected_status),
        (Some("/"), Some(200))
    );
}

#[test]
fn member_keys_print_and_parse() {
    let v4: MemberKey = "10.0.0.2:8080".parse().unwrap();
    assert_eq!(v4.to_string(), "10.0.0.2:8080");
    let v6: MemberKey = "[fd00::2]:80".parse().unwrap();
    assert_eq!(v6.to_string(), "[fd00::2]:80");
    assert!("10.0.0.2".parse::<MemberKey>().is_err());
    assert!("x:80".parse::<MemberKey>().is_err());
}
