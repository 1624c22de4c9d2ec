//! The load balancer's REST API end to end inside one process: the real
//! runtime with the module, a fake switch behind a real OpenFlow connection
//! (`testing::wire`) that applies flow and group mods and balances packets
//! the test sends through it, the real router, an in-memory store. No Open
//! vSwitch needed.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use flowgate_controller::api::{self, ApiState};
use flowgate_controller::cookie::{owner_of, Owner};
use flowgate_controller::desired::{output_to, FlowEntry, FlowSpec};
use flowgate_controller::module::{Ctx, Event, Module};
use flowgate_controller::pipeline::FORWARD;
use flowgate_controller::runtime::{Runtime, RuntimeConfig};
use flowgate_controller::store::{MemoryStore, Store};
use flowgate_controller::testing::wire::{self, SharedSwitch, WireSwitch};
use flowgate_controller::testing::{Packet, Trace};
use flowgate_controller::topology::{Endpoint, Host, TopologyView};
use flowgate_loadbalancer::{LoadBalancer, LoadBalancerService, Settings};
use flowgate_openflow::{GroupModCommand, MacAddr, Match, Message, Oxm};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tower::ServiceExt;

const WAIT: Duration = Duration::from_secs(10);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);

fn mac(n: u8) -> MacAddr {
    MacAddr([0, 0, 0, 0, 0, n])
}

/// Stands in for topology: publishes hosts 10.0.0.1-4 (ports 1-4 of
/// switch 1) once a switch is up.
struct Hosts;

impl Module for Hosts {
    fn owner(&self) -> Owner {
        Owner::Topology
    }

    fn handle(&mut self, event: &Event<'_>, ctx: &mut Ctx) {
        if let Event::SwitchUp { .. } = event {
            let view = TopologyView {
                hosts: (1..=4)
                    .map(|n| Host {
                        mac: mac(n),
                        vlan: None,
                        ipv4: vec![Ipv4Addr::new(10, 0, 0, n)],
                        ipv6: vec![],
                        at: Endpoint::new(1, u32::from(n)),
                    })
                    .collect(),
                ..TopologyView::default()
            };
            ctx.publish(Arc::new(view));
        }
    }
}

/// A switch whose forwarding table reaches hosts 1-4 on ports 1-4.
fn switch_to_hosts() -> SharedSwitch {
    let switch = WireSwitch::shared(1);
    {
        let mut s = switch.lock().unwrap();
        for n in 1..=4u8 {
            s.switch.install(FlowEntry::new(
                FORWARD,
                100,
                Match::new().with(Oxm::EthDst(mac(n), None)),
                // A foreign cookie: the runtime leaves it alone.
                FlowSpec::new(0x42_0000 + u64::from(n), output_to(u32::from(n))),
            ));
        }
    }
    switch
}

struct Lab {
    app: Router,
    runtime: Runtime,
    switch: SharedSwitch,
    link: tokio::task::JoinHandle<()>,
}

impl Lab {
    /// A runtime with the load balancer over `store`, and `switch`
    /// connected to it.
    async fn start(store: Arc<MemoryStore>, switch: SharedSwitch) -> Lab {
        Lab::start_with(store, switch, Settings::default()).await
    }

    async fn start_with(store: Arc<MemoryStore>, switch: SharedSwitch, settings: Settings) -> Lab {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let loaded = flowgate_loadbalancer::persist::load(store.as_ref()).expect("load");
        let modules: Vec<Box<dyn Module>> = vec![
            Box::new(Hosts),
            Box::new(LoadBalancer::new(settings, loaded)),
        ];
        let dyn_store: Arc<dyn Store> = store;
        let runtime = Runtime::start(
            listener,
            RuntimeConfig::default(),
            modules,
            dyn_store.clone(),
        );
        let state = ApiState::new(Arc::new(runtime.clone()), dyn_store, None);
        let app = api::router_with_modules(
            state,
            vec![flowgate_loadbalancer::routes(LoadBalancerService::new(
                runtime.clone(),
            ))],
        );
        let link = wire::spawn(addr, switch.clone());
        let lab = Lab {
            app,
            runtime,
            switch,
            link,
        };
        // Up once the runtime lists it (its sync dumps were answered; the
        // initial reconciliation may have nothing to send).
        tokio::time::timeout(WAIT, async {
            while lab.runtime.registry().list().is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the switch did not connect");
        lab
    }

    async fn new() -> Lab {
        Lab::start(Arc::new(MemoryStore::default()), switch_to_hosts()).await
    }

    async fn wait(&self, cond: impl Fn(&WireSwitch) -> bool) {
        tokio::time::timeout(WAIT, async {
            while !cond(&self.switch.lock().unwrap()) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("switch condition not met in time");
    }

    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let resp = self
            .app
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, value)
    }

    async fn ok(&self, method: Method, uri: &str, body: Value) -> Value {
        let (s, v) = self.call(method, uri, Some(body)).await;
        assert!(s.is_success(), "{s} {v}");
        v
    }

    /// A pool web (10.0.0.2 and .3 on 8080) behind VIP web 10.0.0.100:80.
    async fn web(&self) {
        self.ok(
            Method::POST,
            "/api/v1/lb/pools",
            json!({"id": "web", "members": [
                {"address": "10.0.0.2", "port": 8080},
                {"address": "10.0.0.3", "port": 8080}]}),
        )
        .await;
        self.ok(
            Method::POST,
            "/api/v1/lb/vips",
            json!({"id": "web", "address": "10.0.0.100", "port": 80, "pool": "web"}),
        )
        .await;
    }

    /// Mods the switch received of the load balancer since it was cleared.
    fn lb_mods(&self) -> Vec<String> {
        let s = self.switch.lock().unwrap();
        s.received
            .iter()
            .filter_map(|m| match m {
                Message::GroupMod(g) if owner_of_group(g.group_id) => {
                    Some(format!("group {:?}", g.command))
                }
                Message::FlowMod(f) if owner_of(f.cookie) == Some(Owner::LoadBalancer) => {
                    Some(format!("flow {:?}", f.command))
                }
                _ => None,
            })
            .collect()
    }

    fn clear(&self) {
        self.switch.lock().unwrap().clear_received();
    }

    fn process(&self, in_port: u32, packet: &Packet) -> Trace {
        self.switch.lock().unwrap().switch.process(in_port, packet)
    }
}

fn owner_of_group(id: u32) -> bool {
    flowgate_controller::cookie::owner_of_id(id) == Some(Owner::LoadBalancer)
}

fn to_vip(sport: u16) -> Packet {
    Packet::new(vec![
        Oxm::EthSrc(mac(1), None),
        Oxm::EthDst(Settings::default().virtual_mac, None),
        Oxm::EthType(0x0800),
        Oxm::Ipv4Src(Ipv4Addr::new(10, 0, 0, 1), None),
        Oxm::Ipv4Dst(VIP, None),
        Oxm::IpProto(6),
        Oxm::TcpSrc(sport),
        Oxm::TcpDst(80),
    ])
}

fn port_of(trace: &Trace) -> u32 {
    assert_eq!(trace.outputs.len(), 1, "{trace:?}");
    trace.outputs[0]
}

#[tokio::test]
async fn a_vip_is_created_balanced_and_its_group_changed_in_place() {
    let lab = Lab::new().await;
    lab.web().await;
    lab.wait(|s| s.switch.groups.len() == 1).await;
    assert_eq!(
        lab.lb_mods()
            .iter()
            .filter(|m| m.starts_with("group"))
            .count(),
        1
    );
    // Connections are balanced over both members.
    let mut ports = std::collections::BTreeSet::new();
    for sport in 1000..1050 {
        ports.insert(port_of(&lab.process(1, &to_vip(sport))));
    }
    assert_eq!(ports, [2, 3].into());

    // A member joins, one is drained, a weight changes: every group change
    // is a MODIFY of the same group.
    lab.clear();
    let (s, body) = lab
        .call(
            Method::POST,
            "/api/v1/lb/pools/web/members",
            Some(json!({"address": "10.0.0.4", "port": 8080})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["applied"]["switches"],
        json!(["00:00:00:00:00:00:00:01"])
    );
    lab.ok(
        Method::PUT,
        "/api/v1/lb/pools/web/members/10.0.0.2:8080",
        json!({"address": "10.0.0.2", "port": 8080, "admin_state": "drain"}),
    )
    .await;
    let mods = lab.lb_mods();
    let groups: Vec<&String> = mods.iter().filter(|m| m.starts_with("group")).collect();
    assert_eq!(groups, vec!["group Modify", "group Modify"], "{mods:?}");
    assert!(!mods
        .iter()
        .any(|m| m.contains("Delete") && m.starts_with("group")));
    let group = lab.switch.lock().unwrap().switch.groups[&0x0500_0001].clone();
    assert_eq!(group.buckets.len(), 2, "10.0.0.3 and .4; .2 drains");

    // Members with their state.
    let (_, members) = lab
        .call(Method::GET, "/api/v1/lb/pools/web/members", None)
        .await;
    let drained = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["address"] == "10.0.0.2")
        .unwrap();
    assert_eq!(drained["admin_state"], "drain");
    assert_eq!(drained["in_rotation"], false);
    assert_eq!(drained["mac"], "00:00:00:00:00:02");
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_and_changes_nothing() {
    let lab = Lab::new().await;
    lab.web().await;
    lab.wait(|s| s.switch.groups.len() == 1).await;
    lab.clear();
    let cases = [
        (
            Method::POST,
            "/api/v1/lb/vips",
            json!({"id": "x", "address": "10.0.0.101", "port": 80, "pool": "nope"}),
            404,
            "pool",
        ),
        (
            Method::POST,
            "/api/v1/lb/vips",
            json!({"id": "dup", "address": "10.0.0.100", "port": 80, "pool": "web"}),
            409,
            "address",
        ),
        (
            Method::POST,
            "/api/v1/lb/vips",
            json!({"id": "h2", "address": "10.0.0.2", "port": 80, "pool": "web"}),
            409,
            "address",
        ),
        (
            Method::POST,
            "/api/v1/lb/pools",
            json!({"id": "p", "members": [{"address": "10.0.0.2", "port": 80, "weight": 0}]}),
            422,
            "members[0].weight",
        ),
        (
            Method::PUT,
            "/api/v1/lb/pools/web/members/10.0.0.3:8080",
            json!({"address": "10.0.0.3", "port": 8080, "weight": 1001}),
            422,
            "weight",
        ),
        (
            Method::POST,
            "/api/v1/lb/monitors",
            json!({"id": "m", "pool": "web", "type": "tcp", "interval": 1, "timeout": 1,
                   "source_ip": "10.0.0.250"}),
            422,
            "timeout",
        ),
        (
            Method::POST,
            "/api/v1/lb/vips",
            json!({"id": "t", "address": "10.0.0.101", "port": 80, "pool": "web",
                   "network": "blue"}),
            404,
            "network",
        ),
        (
            Method::POST,
            "/api/v1/lb/vips",
            json!({"id": "u", "address": "10.0.0.101", "port": 80, "pool": "web",
                   "protocol": "sctp"}),
            400,
            "protocol",
        ),
        (
            Method::POST,
            "/api/v1/lb/pools",
            json!({"id": "l", "load_aware": {"metric": "load_one", "busy": 4, "min_weight": 50,
                   "max_weight": 20}}),
            422,
            "load_aware.max_weight",
        ),
        (
            Method::POST,
            "/api/v1/lb/pools",
            json!({"id": "l", "load_aware": {"metric": "cpu", "source": "switch", "busy": 4}}),
            422,
            "load_aware.metric",
        ),
        (
            Method::POST,
            "/api/v1/lb/pools",
            json!({"id": "l", "load_aware": {"metric": "load_one", "busy": 0}}),
            422,
            "load_aware.busy",
        ),
        (
            Method::POST,
            "/api/v1/lb/pools",
            json!({"id": "l", "load_aware": {"metric": "load_one", "busy": 4, "smoothing": 0}}),
            422,
            "load_aware.smoothing",
        ),
        (
            Method::POST,
            "/api/v1/lb/pools",
            json!({"id": "l", "load_aware": {"metric": "load_one", "busy": 4, "sources": 1}}),
            400,
            "load_aware.sources",
        ),
        (
            // VIP web balances by hash: weights would mean nothing.
            Method::PUT,
            "/api/v1/lb/pools/web",
            json!({"members": [{"address": "10.0.0.2", "port": 8080}],
                   "load_aware": {"metric": "load_one", "busy": 4}}),
            409,
            "load_aware",
        ),
    ];
    for (method, uri, body, status, field) in cases {
        let (s, answer) = lab.call(method.clone(), uri, Some(body.clone())).await;
        assert_eq!(s.as_u16(), status, "{method} {uri} {body}: {answer}");
        assert_eq!(answer["field"], field, "{answer}");
        // A dry run says the same.
        let dry = format!("{uri}?dry_run=true");
        let (s, _) = lab.call(method, &dry, Some(body)).await;
        assert_eq!(s.as_u16(), status);
    }
    assert!(lab.lb_mods().is_empty(), "nothing was sent");
    let (_, vips) = lab.call(Method::GET, "/api/v1/lb/vips", None).await;
    assert_eq!(vips.as_array().unwrap().len(), 1);
    let (_, pool) = lab.call(Method::GET, "/api/v1/lb/pools/web", None).await;
    assert_eq!(pool["members"][1]["weight"], 1);
    let (s, _) = lab.call(Method::GET, "/api/v1/lb/monitors/m", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // A pool in use cannot go; an unknown member is a 404.
    let (s, body) = lab.call(Method::DELETE, "/api/v1/lb/pools/web", None).await;
    assert_eq!((s, &body["field"]), (StatusCode::CONFLICT, &json!("id")));
    let (s, _) = lab
        .call(
            Method::DELETE,
            "/api/v1/lb/pools/web/members/10.0.0.9:80",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn stats_count_connections_per_member_from_the_bucket_counters() {
    let lab = Lab::new().await;
    lab.web().await;
    lab.wait(|s| s.switch.groups.len() == 1).await;
    let mut per_port = std::collections::BTreeMap::new();
    for sport in 2000..2100 {
        let port = port_of(&lab.process(1, &to_vip(sport)));
        *per_port.entry(port).or_insert(0u64) += 1;
        // Two more packets of the connection (established entries).
        lab.process(1, &to_vip(sport));
        lab.process(1, &to_vip(sport));
    }
    let (s, stats) = lab
        .call(Method::GET, "/api/v1/lb/vips/web/stats", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{stats}");
    for m in stats["members"].as_array().unwrap() {
        let port = u32::from(m["address"].as_str().unwrap().ends_with(".3")) + 2;
        assert_eq!(m["connections"], per_port[&port], "{m}");
        assert_eq!(m["packets"], per_port[&port] * 2, "{m}");
        assert_eq!(m["health"], Value::Null, "no monitor");
        assert_eq!(m["in_rotation"], true);
    }
    assert_eq!(stats["errors"], json!([]));
}

#[tokio::test]
async fn a_restarted_controller_rewrites_nothing() {
    let store = Arc::new(MemoryStore::default());
    let switch = WireSwitch::shared(1);
    let lab = Lab::start(store.clone(), switch.clone()).await;
    lab.web().await;
    lab.ok(
        Method::POST,
        "/api/v1/lb/pools",
        json!({"id": "lc", "members": [
            {"address": "10.0.0.3", "port": 9000}, {"address": "10.0.0.4", "port": 9000}]}),
    )
    .await;
    lab.ok(
        Method::POST,
        "/api/v1/lb/vips",
        json!({"id": "lc", "address": "10.0.0.101", "port": 9000, "pool": "lc",
               "method": "leastconn"}),
    )
    .await;
    lab.wait(|s| s.switch.groups.len() == 2).await;
    let before = {
        let s = lab.switch.lock().unwrap();
        (s.switch.flows.clone(), s.switch.groups.clone())
    };
    // The controller goes away (its connection with it); a new one starts
    // from the same store, and the switch connects to it with its tables.
    lab.link.abort();
    lab.runtime.shutdown(Duration::from_secs(1)).await;
    lab.clear();
    let again = Lab::start(store, switch).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(again.lb_mods(), Vec::<String>::new(), "nothing rewritten");
    let s = again.switch.lock().unwrap();
    assert_eq!(s.switch.groups, before.1);
    assert_eq!(s.switch.flows, before.0);
    assert!(!s
        .received
        .iter()
        .any(|m| matches!(m, Message::GroupMod(g) if g.command != GroupModCommand::Modify)));
}

/// A TCP packet with its flags (as the switch sees them: `tcp_flags`).
fn with_flags(mut p: Packet, flags: u16) -> Packet {
    let mut payload = vec![0x4f, 0x4e, 0x46, 0x00];
    payload.extend_from_slice(&flags.to_be_bytes());
    p.fields.push(Oxm::Raw {
        class: 0xffff,
        field: 42,
        hasmask: false,
        payload: payload.into(),
    });
    p
}

fn reply(member: u8, sport: u16) -> Packet {
    Packet::new(vec![
        Oxm::EthSrc(mac(member), None),
        Oxm::EthDst(mac(1), None),
        Oxm::EthType(0x0800),
        Oxm::Ipv4Src(Ipv4Addr::new(10, 0, 0, member), None),
        Oxm::Ipv4Dst(Ipv4Addr::new(10, 0, 0, 1), None),
        Oxm::IpProto(6),
        Oxm::TcpSrc(8080),
        Oxm::TcpDst(sport),
    ])
}

#[tokio::test]
async fn leastconn_weights_follow_live_connections_counted_in_the_switch() {
    let switch = WireSwitch::shared(1);
    {
        let mut s = switch.lock().unwrap();
        for n in 1..=4u8 {
            s.switch.install(FlowEntry::new(
                FORWARD,
                100,
                Match::new().with(Oxm::EthDst(mac(n), None)),
                FlowSpec::new(0x42_0000 + u64::from(n), output_to(u32::from(n))),
            ));
        }
    }
    let lab = Lab::start_with(
        Arc::new(MemoryStore::default()),
        switch,
        Settings {
            leastconn_interval: Duration::from_millis(100),
            ..Settings::default()
        },
    )
    .await;
    lab.web().await;
    let mut vip = lab.call(Method::GET, "/api/v1/lb/vips/web", None).await.1;
    vip["method"] = json!("leastconn");
    lab.ok(Method::PUT, "/api/v1/lb/vips/web", vip).await;
    let weights = |lab: &Lab| -> Vec<u16> {
        let s = lab.switch.lock().unwrap();
        s.switch.groups[&0x0500_0001]
            .buckets
            .iter()
            .map(|b| b.weight)
            .collect()
    };
    // Twenty connections: each SYN balanced, answered with SYN-ACK.
    let mut conns = Vec::new();
    for sport in 3000..3020u16 {
        let member = port_of(&lab.process(1, &with_flags(to_vip(sport), 0x002))) as u8;
        lab.process(u32::from(member), &with_flags(reply(member, sport), 0x012));
        conns.push((sport, member));
    }
    let on = |m: u8| conns.iter().filter(|(_, x)| *x == m).count();
    let (busy, idle) = if on(2) >= on(3) { (2u8, 3u8) } else { (3, 2) };
    // The busier member gets the lower weight.
    let want = |live_busy: usize, live_idle: usize| -> Vec<u16> {
        let least = live_busy.min(live_idle) as f64;
        let w = |live: usize| ((100.0 * (1.0 + least) / (1.0 + live as f64)).round() as u16).max(1);
        let mut by_member = [(2u8, 0u16), (3, 0)];
        for (m, weight) in &mut by_member {
            *weight = w(if *m == busy { live_busy } else { live_idle });
        }
        by_member.iter().map(|(_, w)| *w).collect()
    };
    let expected = want(on(busy), on(idle));
    tokio::time::timeout(WAIT, async {
        while weights(&lab) != expected {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("weights {:?}, expected {expected:?}", weights(&lab)));
    if on(busy) > on(idle) {
        assert!(weights(&lab)[usize::from(busy - 2)] < 100);
    }
    // Every client closes (FIN): nobody is loaded, the weights are even.
    for (sport, _) in &conns {
        lab.process(1, &with_flags(to_vip(*sport), 0x011));
    }
    tokio::time::timeout(WAIT, async {
        while weights(&lab) != vec![100, 100] {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("weights {:?} after every close", weights(&lab)));
    let mods = lab.lb_mods();
    assert!(mods
        .iter()
        .filter(|m| m.starts_with("group"))
        .all(|m| m == "group Modify" || m == "group Add"));
}

#[tokio::test]
async fn a_modules_hold_of_a_member_keeps_what_it_had_refuses_others_and_is_released() {
    use flowgate_controller::service::Origin;
    use flowgate_loadbalancer::{AdminState, MemberKey};
    let lab = Lab::new().await;
    lab.web().await;
    lab.wait(|s| s.switch.groups.len() == 1).await;
    let lb = LoadBalancerService::new(lab.runtime.clone());
    let key: MemberKey = "10.0.0.2:8080".parse().unwrap();
    let rule = Origin::module(Owner::HostAware, "rule-1/web2/lb");
    lb.set_admin_state("web".into(), key, AdminState::Drain, rule.clone())
        .await
        .unwrap();
    let member = |pool: Value| pool["members"][0].clone();
    let (_, pool) = lab.call(Method::GET, "/api/v1/lb/pools/web", None).await;
    let held = member(pool.clone());
    assert_eq!(held["admin_state"], "drain");
    assert_eq!(held["origin"], "hostaware/rule-1/web2/lb");
    assert_eq!(held["held"], json!({"weight": 1, "admin_state": "enabled"}));
    // Its weight too, by the same module: still one hold of the original.
    lb.set_weight("web".into(), key, 3, rule.clone())
        .await
        .unwrap();
    // Nobody else changes it meanwhile.
    let other = Origin::module(Owner::HostAware, "rule-2/web2/lb");
    let e = lb
        .set_weight("web".into(), key, 5, other.clone())
        .await
        .unwrap_err();
    assert!(format!("{e:?}").contains("origin"), "{e:?}");
    let (s, body) = lab
        .call(
            Method::PUT,
            "/api/v1/lb/pools/web/members/10.0.0.2:8080",
            Some(json!({"address": "10.0.0.2", "port": 8080, "admin_state": "enabled"})),
        )
        .await;
    assert_eq!(
        (s, &body["field"]),
        (StatusCode::CONFLICT, &json!("weight"))
    );
    // The pool sent back as read keeps the hold; a new description is fine.
    let mut edited = pool.clone();
    edited["members"][0]["weight"] = json!(3);
    edited["description"] = json!("edited");
    lab.ok(Method::PUT, "/api/v1/lb/pools/web", edited).await;
    let mut changed = pool.clone();
    changed["members"][0]["admin_state"] = json!("enabled");
    changed["members"][0]["weight"] = json!(3);
    let (s, body) = lab
        .call(Method::PUT, "/api/v1/lb/pools/web", Some(changed))
        .await;
    assert_eq!(
        (s, &body["field"]),
        (StatusCode::CONFLICT, &json!("members[0].admin_state"))
    );
    // Only the holder releases it; then it is the operator's as before.
    assert!(lb
        .release_member("web".into(), key, other)
        .await
        .unwrap()
        .is_none());
    assert!(lb
        .release_member("web".into(), key, rule.clone())
        .await
        .unwrap()
        .is_some());
    let (_, pool) = lab.call(Method::GET, "/api/v1/lb/pools/web", None).await;
    assert_eq!(
        member(pool.clone()),
        json!({"address": "10.0.0.2", "port": 8080, "weight": 1, "admin_state": "enabled"})
    );
    assert_eq!(pool["description"], "edited");
    assert!(lb
        .release_member("web".into(), key, rule)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn load_weights_change_unheld_members_of_a_weighted_pool_in_one_write() {
    use flowgate_controller::service::Origin;
    use flowgate_loadbalancer::{AdminState, MemberKey};
    let lab = Lab::new().await;
    lab.ok(
        Method::POST,
        "/api/v1/lb/pools",
        json!({"id": "web", "members": [
            {"address": "10.0.0.2", "port": 8080, "weight": 100},
            {"address": "10.0.0.3", "port": 8080, "weight": 100}],
            "load_aware": {"metric": "load_one", "busy": 4}}),
    )
    .await;
    let (s, body) = lab
        .call(
            Method::POST,
            "/api/v1/lb/vips",
            Some(json!({"id": "web", "address": "10.0.0.100", "port": 80, "pool": "web"})),
        )
        .await;
    assert_eq!(
        (s, &body["field"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("method"))
    );
    lab.ok(
        Method::POST,
        "/api/v1/lb/vips",
        json!({"id": "web", "address": "10.0.0.100", "port": 80, "pool": "web",
               "method": "weighted"}),
    )
    .await;
    lab.wait(|s| s.switch.groups.len() == 1).await;
    let lb = LoadBalancerService::new(lab.runtime.clone());
    let k2: MemberKey = "10.0.0.2:8080".parse().unwrap();
    let k3: MemberKey = "10.0.0.3:8080".parse().unwrap();
    let by = Origin::module(Owner::HostAware, "load-aware/web");
    lb.set_admin_state(
        "web".into(),
        k3,
        AdminState::Drain,
        Origin::module(Owner::HostAware, "rule-1/web3/lb"),
    )
    .await
    .unwrap();
    let weights = [(k2, 40), (k3, 10)].into_iter().collect();
    assert!(lb
        .set_load_weights("web".into(), weights, by.clone())
        .await
        .unwrap()
        .is_some());
    let pool = lb.pool("web".into()).await.unwrap();
    assert_eq!(
        (pool.members[0].weight, pool.members[0].origin.as_ref()),
        (40, Some(&by))
    );
    assert_eq!(pool.members[1].weight, 100, "held: left to its rule");
    // The group follows: 40 and nothing (the drained member).
    lab.wait(|s| {
        s.switch
            .groups
            .values()
            .any(|g| g.buckets.len() == 1 && g.buckets[0].weight == 40)
    })
    .await;
    let same = [(k2, 40)].into_iter().collect();
    assert!(lb
        .set_load_weights("web".into(), same, by)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_vip_written_on_one_node_is_followed_by_another_sharing_the_store() {
    let store = Arc::new(MemoryStore::default());
    let one = Lab::start(store.clone(), switch_to_hosts()).await;
    let two = Lab::start(store, switch_to_hosts()).await;
    one.web().await;
    two.wait(|s| s.switch.groups.len() == 1).await;
    let (_, vips) = two.call(Method::GET, "/api/v1/lb/vips", None).await;
    assert_eq!(vips[0]["id"], "web", "{vips}");
    let mut ports = std::collections::BTreeSet::new();
    for sport in 1000..1050 {
        ports.insert(port_of(&two.process(1, &to_vip(sport))));
    }
    assert_eq!(ports, [2, 3].into(), "node two balances over both members");

    // A member drained on node two leaves node one's group too.
    two.ok(
        Method::PUT,
        "/api/v1/lb/pools/web/members/10.0.0.2:8080",
        json!({"address": "10.0.0.2", "port": 8080, "admin_state": "drain"}),
    )
    .await;
    one.wait(|s| s.switch.groups.values().all(|g| g.buckets.len() == 1))
        .await;

    let (s, body) = one.call(Method::DELETE, "/api/v1/lb/vips/web", None).await;
    assert!(s.is_success(), "{body}");
    two.wait(|s| s.switch.groups.is_empty()).await;
    let (_, vips) = two.call(Method::GET, "/api/v1/lb/vips", None).await;
    assert_eq!(vips, json!([]));
}
