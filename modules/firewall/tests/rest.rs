//! The firewall's REST API end to end inside one process: the real runtime
//! on loopback with the firewall module, a fake OpenFlow switch that keeps a
//! flow table (and can be told to reject flow-mods), the real router, and
//! an in-memory store. No Open vSwitch needed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use bytes::{Bytes, BytesMut};
use flowgate_controller::api::{self, ApiState};
use flowgate_controller::cookie::{owner_of, Owner};
use flowgate_controller::desired::FlowKey;
use flowgate_controller::desired::{FlowEntry, FlowSpec};
use flowgate_controller::module::{Ctx, Event, Module, Scope};
use flowgate_controller::pipeline;
use flowgate_controller::runtime::tasks::Task;
use flowgate_controller::runtime::{Runtime, RuntimeConfig};
use flowgate_controller::service::Origin;
use flowgate_controller::store::{MemoryStore, Store};
use flowgate_firewall::{Firewall, FirewallConfig, FirewallService, Rule};
use flowgate_openflow::{
    self as of, ErrorMsg, FlowModCommand, FlowStats, Hello, Message, MultipartReply,
    MultipartReplyBody, MultipartRequestBody, SwitchFeatures,
};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

const DPID: u64 = 1;
const WAIT: Duration = Duration::from_secs(10);
/// Counters the fake switch reports for every flow.
const PACKETS: u64 = 10;
const BYTES: u64 = 1000;

/// What the fake switch holds, shared with the test.
#[derive(Default)]
struct Table {
    flows: HashMap<FlowKey, (u64, of::FlowMod)>,
    barriers: usize,
    /// Flow-mods at these OpenFlow priorities are refused with an error.
    reject_priority: Option<u16>,
    rejected: usize,
    /// Barriers after the first are never answered (a switch that hangs).
    silent: bool,
}

/// A switch that speaks OpenFlow through our codec and applies flow-mods.
async fn fake_switch(addr: std::net::SocketAddr, table: Arc<Mutex<Table>>) {
    fake_switch_with_dpid(addr, table, DPID).await
}

async fn fake_switch_with_dpid(addr: std::net::SocketAddr, table: Arc<Mutex<Table>>, dpid: u64) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    send(&mut stream, 1, &Message::Hello(Hello::with_versions(&[4]))).await;
    let mut buf = BytesMut::new();
    loop {
        while let Ok(Some(len)) = of::frame_len(&buf) {
            let frame = buf.split_to(len);
            let (h, m) = of::decode(&frame).expect("controller sent an undecodable message");
            if let Some(reply) = answer(&table, m, dpid) {
                send(&mut stream, h.xid, &reply).await;
            }
        }
        let mut chunk = [0u8; 65536];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn send(stream: &mut TcpStream, xid: u32, m: &Message) {
    let mut out = BytesMut::new();
    of::encode(xid, m, &mut out).expect("test messages fit");
    let _ = stream.write_all(&out).await;
}

fn answer(table: &Arc<Mutex<Table>>, m: Message, dpid: u64) -> Option<Message> {
    let mut t = table.lock().expect("table lock");
    Some(match m {
        Message::FeaturesRequest => Message::FeaturesReply(SwitchFeatures {
            datapath_id: dpid,
            n_buffers: 0,
            n_tables: 254,
            auxiliary_id: 0,
            capabilities: 0,
            reserved: 0,
        }),
        Message::MultipartRequest(req) => {
            let body = match req.body {
                MultipartRequestBody::PortDesc => MultipartReplyBody::PortDesc(vec![]),
                MultipartRequestBody::Desc => MultipartReplyBody::Desc(of::DescStats {
                    mfr_desc: "fake".into(),
                    hw_desc: "fake".into(),
                    sw_desc: "fake".into(),
                    serial_num: "1".into(),
                    dp_desc: "fake".into(),
                }),
                MultipartRequestBody::Flow(q) => MultipartReplyBody::Flow(
                    t.flows
                        .values()
                        .filter(|(c, fm)| {
                            c & q.cookie_mask == q.cookie & q.cookie_mask
                                && (q.table_id == of::OFPTT_ALL || q.table_id == fm.table_id)
                        })
                        .map(|(cookie, fm)| FlowStats {
                            table_id: fm.table_id,
                            duration_sec: 1,
                            duration_nsec: 0,
                            priority: fm.priority,
                            idle_timeout: fm.idle_timeout,
                            hard_timeout: fm.hard_timeout,
                            flags: fm.flags,
                            cookie: *cookie,
                            packet_count: PACKETS,
                            byte_count: BYTES,
                            match_: fm.match_.clone(),
                            instructions: fm.instructions.clone(),
                        })
                        .collect(),
                ),
                MultipartRequestBody::GroupDesc => MultipartReplyBody::GroupDesc(vec![]),
                MultipartRequestBody::MeterConfig { .. } => MultipartReplyBody::MeterConfig(vec![]),
                _ => return None,
            };
            Message::MultipartReply(Box::new(MultipartReply { flags: 0, body }))
        }
        Message::BarrierRequest => {
            t.barriers += 1;
            if t.silent && t.barriers > 1 {
                return None;
            }
            Message::BarrierReply
        }
        Message::EchoRequest(data) => Message::EchoReply(data),
        Message::FlowMod(fm) => {
            if t.reject_priority == Some(fm.priority) {
                t.rejected += 1;
                return Some(Message::Error(ErrorMsg::Standard {
                    err_type: of::error_type::BAD_MATCH,
                    code: of::error_code::bad_match::BAD_PREREQ,
                    data: Bytes::new(),
                }));
            }
            let key = FlowKey::new(fm.table_id, fm.priority, fm.match_.clone());
            match fm.command {
                FlowModCommand::Add | FlowModCommand::ModifyStrict => {
                    t.flows.insert(key, (fm.cookie, fm));
                }
                FlowModCommand::DeleteStrict => {
                    t.flows.remove(&key);
                }
                _ => {}
            }
            return None;
        }
        _ => return None,
    })
}

struct Lab {
    app: Router,
    runtime: Runtime,
    store: Arc<MemoryStore>,
    table: Arc<Mutex<Table>>,
    addr: std::net::SocketAddr,
}

impl Lab {
    async fn start(config: FirewallConfig) -> Lab {
        Lab::start_with(
            config,
            Vec::new(),
            RuntimeConfig::default(),
            Arc::new(MemoryStore::default()),
        )
        .await
    }

    /// The firewall and `others` in a runtime over `store`, one fake switch.
    async fn start_with(
        config: FirewallConfig,
        others: Vec<Box<dyn Module>>,
        runtime_config: RuntimeConfig,
        store: Arc<MemoryStore>,
    ) -> Lab {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut modules: Vec<Box<dyn Module>> = vec![Box::new(Firewall::new(config))];
        modules.extend(others);
        let dyn_store: Arc<dyn Store> = store.clone();
        let runtime = Runtime::start(listener, runtime_config, modules, dyn_store.clone());
        let state = ApiState::new(Arc::new(runtime.clone()), dyn_store, None)
            .with_metrics(runtime.metrics().clone());
        let app = api::router_with_modules(
            state,
            vec![flowgate_firewall::routes(FirewallService::new(
                runtime.clone(),
            ))],
        );
        let table = Arc::new(Mutex::new(Table::default()));
        tokio::spawn(fake_switch(addr, table.clone()));
        let lab = Lab {
            app,
            runtime,
            store,
            table,
            addr,
        };
        // Up once the initial reconciliation was confirmed: one barrier
        // closes the sync dumps, the next the reconciliation.
        lab.wait(|t| t.barriers >= 2).await;
        lab
    }

    async fn wait_for_switches(&self, n: usize) {
        tokio::time::timeout(WAIT, async {
            while self.runtime.registry().list().len() < n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("switches did not connect in time");
    }

    async fn wait(&self, cond: impl Fn(&Table) -> bool) {
        tokio::time::timeout(WAIT, async {
            while !cond(&self.table.lock().expect("lock")) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("fake switch condition not met in time");
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
            .oneshot(req.body(body).expect("request"))
            .await
            .expect("infallible");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON body")
        };
        (status, value)
    }

    /// The fake switch's firewall flows: (priority, cookie).
    fn firewall_flows(&self) -> Vec<(u16, u64)> {
        let t = self.table.lock().expect("lock");
        let mut flows: Vec<(u16, u64)> = t
            .flows
            .values()
            .filter(|(c, _)| owner_of(*c) == Some(Owner::Firewall))
            .map(|(c, fm)| (fm.priority, *c))
            .collect();
        flows.sort_unstable();
        flows
    }

    fn stored_rules(&self) -> usize {
        self.store
            .list_prefix("firewall/rules/")
            .expect("list")
            .len()
    }
}

fn cookie(id: u64) -> u64 {
    Owner::Firewall.cookie(id)
}

fn web_rule(id: u32, priority: u16) -> Value {
    json!({"id": id, "priority": priority, "action": "allow",
           "match": {"ip_proto": "tcp", "ip_dst": "10.0.0.2", "dst_port": 80}})
}

#[tokio::test]
async fn writes_are_stored_confirmed_by_the_switch_and_incremental() {
    let lab = Lab::start(FirewallConfig::default()).await;
    let adds_before = lab.runtime.metrics().sent().flow_adds;

    let (s, body) = lab
        .call(
            Method::POST,
            "/api/v1/firewall/rules",
            Some(web_rule(10, 100)),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(body["rule"]["id"], 10);
    assert_eq!(
        body["applied"]["switches"],
        json!(["00:00:00:00:00:00:00:01"])
    );
    assert_eq!(body["applied"]["flows"], 1);
    // The first rule also brings what always passes (ARP, LLDP, ND: 6).
    assert_eq!(body["applied"]["flow_changes"], 7);
    // When the answer comes, the flow is on the switch and in the store.
    assert!(lab.firewall_flows().contains(&(200, cookie(10))));
    assert_eq!(lab.firewall_flows().len(), 7);
    assert_eq!(lab.stored_rules(), 1);
    assert_eq!(lab.runtime.metrics().sent().flow_adds - adds_before, 7);

    // A second rule (without an id: it gets the next one) sends exactly
    // its own flow-mods, per the reconciler's counters.
    let adds_before = lab.runtime.metrics().sent().flow_adds;
    let (s, body) = lab
        .call(
            Method::POST,
            "/api/v1/firewall/rules",
            Some(json!({"priority": 50, "action": "deny", "match": {"ip_proto": "udp"}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(body["rule"]["id"], 11);
    assert_eq!(body["applied"]["flows"], 2, "udp for IPv4 and IPv6");
    assert_eq!(body["applied"]["flow_changes"], 2);
    assert_eq!(lab.runtime.metrics().sent().flow_adds - adds_before, 2);

    let (s, list) = lab.call(Method::GET, "/api/v1/firewall/rules", None).await;
    assert_eq!(s, StatusCode::OK);
    let ids: Vec<u64> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|r| r["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, vec![10, 11], "highest priority first");

    // Replace rule 10 with another priority: its old flow goes, the new comes.
    let (s, body) = lab
        .call(
            Method::PUT,
            "/api/v1/firewall/rules/10",
            Some(web_rule(10, 120)),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["applied"]["flow_changes"], 2);
    let flows = lab.firewall_flows();
    assert!(flows.contains(&(240, cookie(10))) && !flows.contains(&(200, cookie(10))));
    let (s, got) = lab
        .call(Method::GET, "/api/v1/firewall/rules/10", None)
        .await;
    assert_eq!((s, got["priority"].clone()), (StatusCode::OK, json!(120)));

    // PUT of a new id creates.
    let (s, _) = lab
        .call(
            Method::PUT,
            "/api/v1/firewall/rules/12",
            Some(web_rule(0, 130)),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);

    // Delete: flow and stored rule gone when it answers; one delete sent.
    let deletes_before = lab.runtime.metrics().sent().flow_deletes;
    let (s, body) = lab
        .call(Method::DELETE, "/api/v1/firewall/rules/10", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        lab.runtime.metrics().sent().flow_deletes - deletes_before,
        1
    );
    assert_eq!(body["rule"]["priority"], 120);
    assert!(!lab.firewall_flows().iter().any(|(_, c)| *c == cookie(10)));
    assert_eq!(lab.stored_rules(), 2);
    let (s, body) = lab
        .call(Method::DELETE, "/api/v1/firewall/rules/10", None)
        .await;
    assert_eq!(
        (s, body["field"].clone()),
        (StatusCode::NOT_FOUND, json!("id"))
    );
    let (s, _) = lab
        .call(Method::GET, "/api/v1/firewall/rules/10", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn invalid_writes_name_the_field_and_change_nothing() {
    let lab = Lab::start(FirewallConfig::default()).await;
    let (s, _) = lab
        .call(
            Method::POST,
            "/api/v1/firewall/rules",
            Some(web_rule(1, 100)),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let flows = lab.firewall_flows();
    let cases = [
        (
            Method::POST,
            "/api/v1/firewall/rules",
            json!({"id": 2, "priority": 5, "action": "allow", "match": {"ip_src": "10.0.0.1/33"}}),
            422,
            "match.ip_src",
        ),
        (
            Method::POST,
            "/api/v1/firewall/rules",
            json!({"id": 2, "priority": 5, "action": "allow", "match": {"ip_proto": "icmp", "dst_port": "1-9"}}),
            422,
            "match.dst_port",
        ),
        (
            Method::POST,
            "/api/v1/firewall/rules",
            json!({"id": 2, "priority": 5, "action": "allow", "verdict": "yes"}),
            400,
            "verdict",
        ),
        (
            Method::POST,
            "/api/v1/firewall/rules",
            json!({"id": 2, "priority": 100, "action": "deny", "match": {"ip_proto": "tcp"}}),
            409,
            "priority",
        ),
        (
            Method::POST,
            "/api/v1/firewall/rules",
            web_rule(1, 7),
            409,
            "id",
        ),
        (
            Method::PUT,
            "/api/v1/firewall/rules/3",
            web_rule(4, 7),
            422,
            "id",
        ),
        (
            Method::PUT,
            "/api/v1/firewall/rules",
            json!([web_rule(5, 7), web_rule(6, 7)]),
            409,
            "[1].priority",
        ),
        (
            Method::PUT,
            "/api/v1/firewall/rules",
            json!([web_rule(5, 7), {"id": 6, "priority": "high", "action": "deny"}]),
            400,
            "[1].priority",
        ),
        (
            Method::PUT,
            "/api/v1/firewall/policy",
            json!({"enabled": true, "default_action": "reject"}),
            400,
            "default_action",
        ),
        // A policy is replaced whole: nothing left to defaults, no array
        // for an object, no array for a match.
        (
            Method::PUT,
            "/api/v1/firewall/policy",
            json!({}),
            400,
            "enabled",
        ),
        (
            Method::POST,
            "/api/v1/firewall/rules",
            json!({"id": 2, "priority": 5, "action": "deny", "match": []}),
            400,
            "match",
        ),
        (
            Method::POST,
            "/api/v1/firewall/rules?dry_run=maybe",
            web_rule(9, 9),
            400,
            "dry_run",
        ),
    ];
    for (method, uri, body, status, field) in cases {
        let (s, got) = lab.call(method.clone(), uri, Some(body.clone())).await;
        assert_eq!(s.as_u16(), status, "{method} {uri} {body}: {got}");
        assert_eq!(got["field"], json!(field), "{method} {uri} {body}: {got}");
    }
    let (s, got) = lab
        .call(Method::PUT, "/api/v1/firewall/policy", Some(json!([false])))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{got}");
    assert!(
        got["reason"]
            .as_str()
            .unwrap()
            .starts_with("invalid type: sequence"),
        "{got}"
    );
    let (s, _) = lab
        .call(Method::GET, "/api/v1/firewall/rules/abc", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(lab.stored_rules(), 1, "nothing stored");
    assert_eq!(lab.firewall_flows(), flows, "nothing sent");
    let (_, policy) = lab.call(Method::GET, "/api/v1/firewall/policy", None).await;
    assert_eq!(policy, json!({"enabled": true, "default_action": "allow"}));
}

#[tokio::test]
async fn dry_runs_return_the_canonical_rule_and_change_nothing() {
    let lab = Lab::start(FirewallConfig::default()).await;
    let (s, body) = lab
        .call(
            Method::PUT,
            "/api/v1/firewall/rules/4?dry_run=true",
            Some(json!({"priority": 5, "action": "allow",
                        "match": {"ip_proto": 6, "dst_port": "80", "ip_dst": "10.0.0.2/32"}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"rule": {"id": 4, "priority": 5, "action": "allow",
                        "match": {"ip_proto": "tcp", "dst_port": 80, "ip_dst": "10.0.0.2"}},
               "applied": null})
    );
    let (s, body) = lab
        .call(
            Method::PUT,
            "/api/v1/firewall/rules?dry_run=1",
            Some(json!([web_rule(1, 1)])),
        )
        .await;
    assert_eq!((s, body["count"].clone()), (StatusCode::OK, json!(1)));
    assert_eq!(lab.stored_rules(), 0);
    assert!(lab.firewall_flows().is_empty());
}

#[tokio::test]
async fn bulk_replace_policy_and_counters() {
    let lab = Lab::start(FirewallConfig::default()).await;
    let rules = json!([
        web_rule(1, 10),
        {"id": 2, "priority": 20, "action": "allow-related",
         "match": {"ip_src": "10.0.0.1", "ip_proto": "tcp"}},
        {"id": 3, "priority": 30, "action": "deny", "match": {"eth_src": "00:00:00:00:00:09"}}
    ]);
    let (s, body) = lab
        .call(Method::PUT, "/api/v1/firewall/rules", Some(rules.clone()))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["count"], 3);
    // ARP/LLDP/ND (6) + conntrack (2) + web (1) + stateful (1 + 2) + deny (1).
    assert_eq!(body["applied"]["flows"], 13);
    assert_eq!(lab.firewall_flows().len(), 13);
    assert_eq!(lab.stored_rules(), 3);

    // The same set again sends nothing.
    let (_, body) = lab
        .call(Method::PUT, "/api/v1/firewall/rules", Some(rules))
        .await;
    assert_eq!(body["applied"]["flow_changes"], 0);

    // Default deny adds exactly the drop entry.
    let (s, body) = lab
        .call(
            Method::PUT,
            "/api/v1/firewall/policy",
            Some(json!({"enabled": true, "default_action": "deny"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        body["policy"],
        json!({"enabled": true, "default_action": "deny"})
    );
    assert_eq!(body["applied"]["flow_changes"], 1);
    assert!(lab.firewall_flows().iter().any(|(p, _)| *p == 1));
    assert!(lab.store.get("firewall/policy").expect("get").is_some());

    // Counters: the stateful rule has 3 flows on the switch.
    let (s, stats) = lab
        .call(Method::GET, "/api/v1/firewall/rules/2/stats", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{stats}");
    assert_eq!(stats["flows"], 3);
    assert_eq!(stats["packets"], 3 * PACKETS);
    assert_eq!(stats["bytes"], 3 * BYTES);
    assert_eq!(stats["switches"][0]["dpid"], "00:00:00:00:00:00:00:01");
    let (s, _) = lab
        .call(Method::GET, "/api/v1/firewall/rules/99/stats", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Disabled: no firewall flows, rules kept.
    let (_, body) = lab
        .call(
            Method::PUT,
            "/api/v1/firewall/policy",
            Some(json!({"enabled": false, "default_action": "deny"})),
        )
        .await;
    assert_eq!(body["applied"]["flows"], 0);
    assert!(lab.firewall_flows().is_empty());
    assert_eq!(lab.stored_rules(), 3);
}

#[tokio::test]
async fn a_change_the_switch_rejects_is_rolled_back() {
    let lab = Lab::start(FirewallConfig::default()).await;
    let (s, _) = lab
        .call(
            Method::POST,
            "/api/v1/firewall/rules",
            Some(web_rule(1, 10)),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let before = lab.firewall_flows();
    lab.table.lock().expect("lock").reject_priority = Some(2 * 77);

    let (s, body) = lab
        .call(
            Method::POST,
            "/api/v1/firewall/rules",
            Some(web_rule(2, 77)),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{body}");
    assert!(
        body["reason"].as_str().is_some_and(
            |r| r.contains("OFPET_BAD_MATCH/OFPBMC_BAD_PREREQ") && r.contains("rolled back")
        ),
        "{body}"
    );
    let (s, _) = lab
        .call(Method::GET, "/api/v1/firewall/rules/2", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(lab.stored_rules(), 1);

    // Replacing rule 1 with a rejected version restores the old one.
    let (s, _) = lab
        .call(
            Method::PUT,
            "/api/v1/firewall/rules/1",
            Some(web_rule(1, 77)),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_GATEWAY);
    let (_, got) = lab
        .call(Method::GET, "/api/v1/firewall/rules/1", None)
        .await;
    assert_eq!(got["priority"], 10);
    assert_eq!(lab.firewall_flows(), before);
    assert!(before.contains(&(20, cookie(1))));
}

/// A load balancer stand-in: on a message from its task it declares one
/// flow, which the fake switch refuses; it records the refusals it hears.
#[derive(Default)]
struct Noisy {
    rejections: Vec<String>,
}

const NOISY_PRIORITY: u16 = 4242;

impl Module for Noisy {
    fn owner(&self) -> Owner {
        Owner::LoadBalancer
    }

    fn handle(&mut self, event: &Event<'_>, ctx: &mut Ctx) {
        match event {
            Event::Task { .. } => {
                let entry = FlowEntry::new(
                    pipeline::LB,
                    NOISY_PRIORITY,
                    of::Match::new().with(of::Oxm::TcpDst(80)),
                    FlowSpec::new(Owner::LoadBalancer.cookie(1), vec![]),
                );
                ctx.declare_flows(DPID, Scope::new("vip", 1), [entry]);
            }
            Event::Rejected { rejection } => self.rejections.push(rejection.to_string()),
            _ => {}
        }
    }
}

#[tokio::test]
async fn another_modules_rejected_flow_does_not_fail_a_firewall_write() {
    let lab = Lab::start_with(
        FirewallConfig::default(),
        vec![Box::new(Noisy::default())],
        RuntimeConfig::default(),
        Arc::new(MemoryStore::default()),
    )
    .await;
    lab.table.lock().expect("lock").reject_priority = Some(NOISY_PRIORITY);
    lab.runtime.spawn_task(
        Owner::LoadBalancer,
        Task::new("poke", |ctx| async move {
            ctx.send(()).await;
        }),
    );
    lab.wait(|t| t.rejected == 1).await;
    // The refusal arrived before the firewall's write; no barrier has
    // closed it yet. The write gets only its own errors: none.
    let (s, body) = lab
        .call(
            Method::POST,
            "/api/v1/firewall/rules",
            Some(web_rule(1, 10)),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let heard = lab
        .runtime
        .call::<Noisy, _>(|m, _| m.rejections.clone())
        .await
        .unwrap()
        .value;
    assert_eq!(heard.len(), 1, "the owner heard of its refusal: {heard:?}");
    assert!(heard[0].contains("OFPET_BAD_MATCH") && heard[0].contains("priority=4242"));
}

/// A lab whose writes wait `timeout` for `silent` extra switches that
/// never answer a barrier.
async fn lab_with_silent_switches(timeout: Duration, silent: u64) -> Lab {
    let lab = Lab::start_with(
        FirewallConfig::default(),
        Vec::new(),
        RuntimeConfig {
            confirm_timeout: timeout,
            ..RuntimeConfig::default()
        },
        Arc::new(MemoryStore::default()),
    )
    .await;
    let table = Arc::new(Mutex::new(Table {
        silent: true,
        ..Table::default()
    }));
    for dpid in 2..2 + silent {
        tokio::spawn(fake_switch_with_dpid(lab.addr, table.clone(), dpid));
    }
    lab.wait_for_switches(1 + silent as usize).await;
    lab
}

#[tokio::test]
async fn ten_silent_switches_cost_one_deadline_and_reads_do_not_wait() {
    let timeout = Duration::from_millis(1500);
    let lab = lab_with_silent_switches(timeout, 10).await;
    let started = std::time::Instant::now();
    let write = lab.call(
        Method::POST,
        "/api/v1/firewall/rules",
        Some(web_rule(1, 10)),
    );
    // Reads while the write waits for the switches: answered at once (no
    // lock is held across the wait), and they see the rule once it is
    // staged (the write's own answer comes after the deadline).
    let reads = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut slowest = Duration::ZERO;
        for _ in 0..5 {
            let asked = std::time::Instant::now();
            let (s, rules) = lab.call(Method::GET, "/api/v1/firewall/rules", None).await;
            assert_eq!(s, StatusCode::OK);
            assert_eq!(rules.as_array().map(Vec::len), Some(1), "{rules}");
            let (s, _) = lab.call(Method::GET, "/api/v1/switches", None).await;
            assert_eq!(s, StatusCode::OK);
            slowest = slowest.max(asked.elapsed());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (slowest, started.elapsed())
    };
    let ((s, body), (slowest_read, reads_done)) = tokio::join!(write, reads);
    let took = started.elapsed();
    println!(
        "write with 10 silent switches: {took:?}; slowest of 10 reads during it: {slowest_read:?}"
    );
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(body["applied"]["unconfirmed"].as_array().unwrap().len(), 10);
    assert_eq!(body["applied"]["switches"].as_array().unwrap().len(), 1);
    // One shared deadline: ten waits in turn would take ten times as long.
    assert!(took >= timeout && took < timeout * 2, "took {took:?}");
    assert!(reads_done < timeout, "reads done at {reads_done:?}");
    assert!(
        slowest_read < Duration::from_millis(200),
        "a read during the write took {slowest_read:?}"
    );
}

#[tokio::test]
async fn a_write_whose_client_hangs_up_still_completes() {
    // The write waits one deadline for a silent switch; the client gives
    // up long before.
    let timeout = Duration::from_millis(1500);
    let lab = lab_with_silent_switches(timeout, 1).await;
    let mut events = lab.runtime.bus().subscribe();
    let flows_before = lab.firewall_flows();
    let hung_up = tokio::time::timeout(
        Duration::from_millis(300),
        lab.call(
            Method::POST,
            "/api/v1/firewall/rules",
            Some(web_rule(1, 10)),
        ),
    )
    .await;
    assert!(hung_up.is_err(), "the write answered before the deadline");
    // The whole write goes on: confirmation, store, and its announcement
    // (the service's last step, after the switches' deadline).
    let announced = tokio::time::timeout(WAIT, async {
        loop {
            let event = events.recv().await.expect("bus");
            if let flowgate_controller::events::BusEvent::Resource {
                module, id, action, ..
            } = &event.event
            {
                if module == "firewall" && id == "1" {
                    return format!("{action:?}");
                }
            }
        }
    })
    .await
    .expect("the write was not announced");
    assert_eq!(announced, "Created");
    let (s, rules) = lab.call(Method::GET, "/api/v1/firewall/rules", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(rules[0]["id"], 1, "{rules}");
    assert_eq!(lab.stored_rules(), 1);
    assert!(lab.firewall_flows().len() > flows_before.len());
    // And it is an ordinary rule: deletable.
    let (s, body) = lab
        .call(Method::DELETE, "/api/v1/firewall/rules/1", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (_, rules) = lab.call(Method::GET, "/api/v1/firewall/rules", None).await;
    assert_eq!(rules, json!([]));
    assert_eq!(lab.stored_rules(), 0);
    assert_eq!(lab.firewall_flows(), flows_before);
}

#[tokio::test]
async fn a_rule_another_module_creates_is_stored_listed_owned_and_survives_a_restart() {
    let store = Arc::new(MemoryStore::default());
    let lab = Lab::start_with(
        FirewallConfig::default(),
        Vec::new(),
        RuntimeConfig::default(),
        store.clone(),
    )
    .await;
    // A host-aware task quarantines a host through the firewall's service.
    let service = FirewallService::new(lab.runtime.clone());
    let (done, created) = tokio::sync::oneshot::channel();
    lab.runtime.spawn_task(
        Owner::HostAware,
        Task::new("quarantine", move |_ctx| async move {
            let rule: Rule = serde_json::from_value(json!({"priority": 29000, "action": "deny",
                "match": {"ip_src": "10.0.0.3"}}))
            .unwrap();
            let origin = Origin::module(Owner::HostAware, "quarantine-h3");
            let _ = done.send(service.create(rule, origin, false).await.map(|w| w.rule.id));
        }),
    );
    let id = created.await.unwrap().expect("created");
    let (_, rules) = lab.call(Method::GET, "/api/v1/firewall/rules", None).await;
    assert_eq!(rules[0]["origin"], "hostaware/quarantine-h3", "{rules}");
    assert!(lab
        .firewall_flows()
        .contains(&(58000, cookie(u64::from(id)))));
    // Not the operator's to change or delete.
    let (s, body) = lab
        .call(
            Method::DELETE,
            &format!("/api/v1/firewall/rules/{id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["field"], "origin");
    // Nor to forge.
    let mut forged = web_rule(5, 10);
    forged["origin"] = json!("hostaware/x");
    let (s, body) = lab
        .call(Method::POST, "/api/v1/firewall/rules", Some(forged))
        .await;
    assert_eq!(
        (s, body["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("origin"))
    );
    // A restarted controller loads it from the store, origin and all.
    let reloaded = flowgate_firewall::load(store.as_ref(), None).expect("load");
    let rule = reloaded.rules.get(id).expect("stored");
    assert_eq!(
        rule.origin,
        Some(Origin::module(Owner::HostAware, "quarantine-h3"))
    );
    let again = Lab::start_with(reloaded, Vec::new(), RuntimeConfig::default(), store).await;
    let (_, rules) = again
        .call(Method::GET, "/api/v1/firewall/rules", None)
        .await;
    assert_eq!(rules[0]["origin"], "hostaware/quarantine-h3");
}

/// Two controllers sharing one store (as two nodes share an etcd prefix),
/// each with its own switch.
async fn two_nodes() -> (Lab, Lab, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::default());
    let one = Lab::start_with(
        FirewallConfig::default(),
        Vec::new(),
        RuntimeConfig::default(),
        store.clone(),
    )
    .await;
    let two = Lab::start_with(
        FirewallConfig::default(),
        Vec::new(),
        RuntimeConfig::default(),
        store.clone(),
    )
    .await;
    (one, two, store)
}

impl Lab {
    /// Waits until this node's REST API lists `n` rules.
    async fn wait_for_rules(&self, n: usize) -> Value {
        tokio::time::timeout(WAIT, async {
            loop {
                let (_, list) = self.call(Method::GET, "/api/v1/firewall/rules", None).await;
                if list.as_array().map(Vec::len) == Some(n) {
                    return list;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("rules not followed in time")
    }
}

#[tokio::test]
async fn a_rule_written_on_one_node_is_followed_by_the_other() {
    let (one, two, _store) = two_nodes().await;

    let (s, body) = one
        .call(
            Method::POST,
            "/api/v1/firewall/rules",
            Some(web_rule(10, 100)),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let adds_on_one = one.runtime.metrics().sent().flow_adds;
    let list = two.wait_for_rules(1).await;
    assert_eq!(list[0]["id"], 10);
    two.wait(|t| t.flows.values().any(|(c, _)| *c == cookie(10)))
        .await;
    assert_eq!(two.firewall_flows(), one.firewall_flows());
    // Node one's own write coming back through the watch sends nothing.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(one.runtime.metrics().sent().flow_adds, adds_on_one);

    // A change made on node two travels the other way.
    let (s, body) = two
        .call(
            Method::PUT,
            "/api/v1/firewall/policy",
            Some(json!({"enabled": true, "default_action": "deny"})),
        )
        .await;
    assert!(s.is_success(), "{body}");
    tokio::time::timeout(WAIT, async {
        while one.firewall_flows() != two.firewall_flows() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("policy not followed in time");
    let (_, policy) = one.call(Method::GET, "/api/v1/firewall/policy", None).await;
    assert_eq!(policy["default_action"], "deny", "{policy}");

    let (s, body) = one
        .call(Method::DELETE, "/api/v1/firewall/rules/10", None)
        .await;
    assert!(s.is_success(), "{body}");
    two.wait_for_rules(0).await;
    two.wait(|t| !t.flows.values().any(|(c, _)| *c == cookie(10)))
        .await;
    assert_eq!(two.firewall_flows(), one.firewall_flows());
}

#[tokio::test]
async fn a_bad_value_in_the_store_is_ignored_and_following_goes_on() {
    let (one, two, store) = two_nodes().await;
    let (s, body) = one
        .call(
            Method::POST,
            "/api/v1/firewall/rules",
            Some(web_rule(10, 100)),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    two.wait_for_rules(1).await;
    let flows = two.firewall_flows();

    // Written by hand: not JSON, a rule under another id's key, and (in
    // one batch with a valid rule) a rule that overlaps rule 10 at its
    // priority.
    store
        .put("firewall/rules/0000000010", b"not json")
        .expect("put");
    let other_id = serde_json::to_vec(&web_rule(12, 100)).expect("json");
    store
        .put("firewall/rules/0000000011", &other_id)
        .expect("put");
    let overlapping = serde_json::to_vec(&web_rule(13, 100)).expect("json");
    let valid = serde_json::to_vec(&web_rule(14, 80)).expect("json");
    store
        .put_batch(vec![
            ("firewall/rules/0000000013".into(), overlapping),
            ("firewall/rules/0000000014".into(), valid),
        ])
        .expect("put");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, list) = two.call(Method::GET, "/api/v1/firewall/rules", None).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["id"], 10);
    assert_eq!(two.firewall_flows(), flows);

    // Repaired, the store is followed again, the refused batch's valid
    // rule included.
    store.delete("firewall/rules/0000000013").expect("delete");
    store.delete("firewall/rules/0000000011").expect("delete");
    let list = two.wait_for_rules(2).await;
    assert_eq!(list[1]["id"], 14, "{list}");
    let (s, body) = one
        .call(
            Method::PUT,
            "/api/v1/firewall/rules/10",
            Some(web_rule(10, 90)),
        )
        .await;
    assert!(s.is_success(), "{body}");
    tokio::time::timeout(WAIT, async {
        loop {
            let (_, list) = two.call(Method::GET, "/api/v1/firewall/rules", None).await;
            if list[0]["priority"] == 90 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("repaired store not followed");
}

// Single-threaded on purpose: the batch below is committed before the
// follower's watch can take an event, so the watch falls behind.
#[tokio::test]
async fn a_watch_that_falls_behind_re_reads_the_whole_prefix() {
    let (_one, two, store) = two_nodes().await;
    let rules = (1..=1500u32).map(|id| {
        let rule = json!({"id": id, "priority": 100, "action": "allow",
            "match": {"ip_proto": "tcp", "ip_src": format!("10.{}.{}.1", id / 256, id % 256)}});
        flowgate_controller::store::Op::put(
            format!("firewall/rules/{id:010}"),
            serde_json::to_vec(&rule).expect("json"),
        )
    });
    store.apply(rules.collect()).expect("apply");
    two.wait_for_rules(1500).await;
}
