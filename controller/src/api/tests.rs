//! Router tests: every endpoint through `oneshot` against a fake runtime.

use super::*;
use crate::cookie::Owner;
use crate::store::MemoryStore;
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Json;
use flowgate_openflow::{
    port_no, Action, DescStats, FlowStats, Instruction, MacAddr, Match, Oxm, Port, PortStats,
    SwitchFeatures,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime};
use tower::ServiceExt;
use utoipa::ToSchema;

/// How the fake answers a live query for one switch.
#[derive(Clone)]
enum Answer<T> {
    Ok(T),
    Timeout,
    Error(&'static str),
    Gone,
}

impl<T: Send + 'static> Answer<T> {
    fn future(self, dpid: u64) -> QueryFuture<T> {
        Box::pin(async move {
            match self {
                Answer::Ok(v) => Ok(v),
                Answer::Timeout => Err(SwitchQueryError::Timeout(Duration::from_secs(2))),
                Answer::Error(e) => Err(SwitchQueryError::SwitchError(e.into())),
                Answer::Gone => Err(SwitchQueryError::NotConnected(dpid)),
            }
        })
    }
}

#[derive(Default)]
struct FakeView {
    switches: Vec<SwitchSnapshot>,
    ports: HashMap<u64, Answer<Vec<PortStats>>>,
    flows: HashMap<u64, Answer<Vec<FlowStats>>>,
}

impl ControllerView for FakeView {
    fn switches(&self) -> Vec<SwitchSnapshot> {
        self.switches.clone()
    }

    fn switch(&self, dpid: u64) -> Option<SwitchSnapshot> {
        self.switches.iter().find(|s| s.dpid == dpid).cloned()
    }

    fn port_stats(&self, dpid: u64) -> QueryFuture<Vec<PortStats>> {
        self.ports
            .get(&dpid)
            .cloned()
            .unwrap_or(Answer::Gone)
            .future(dpid)
    }

    fn flow_stats(&self, dpid: u64) -> QueryFuture<Vec<FlowStats>> {
        self.flows
            .get(&dpid)
            .cloned()
            .unwrap_or(Answer::Gone)
            .future(dpid)
    }
}

fn port(port_no: u32, name: &str, mac_last: u8, config: u32, state: u32) -> Port {
    Port {
        port_no,
        hw_addr: MacAddr([0xaa, 0xbb, 0xcc, 0, 0, mac_last]),
        name: name.into(),
        config,
        state,
        curr: 0,
        advertised: 0,
        supported: 0,
        peer: 0,
        curr_speed: 10_000_000,
        max_speed: 0,
    }
}

fn snapshot(dpid: u64, peer_port: u16) -> SwitchSnapshot {
    SwitchSnapshot {
        dpid,
        peer: SocketAddr::from(([127, 0, 0, 1], peer_port)),
        connected_since: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        version: 4,
        features: SwitchFeatures {
            datapath_id: dpid,
            n_buffers: 0,
            n_tables: 254,
            auxiliary_id: 0,
            capabilities: 0x4f,
            reserved: 0,
        },
        desc: None,
        ports: vec![],
        unavailable_modules: vec![],
    }
}

fn port_stats(port_no: u32, base: u64) -> PortStats {
    PortStats {
        port_no,
        rx_packets: base,
        tx_packets: base + 1,
        rx_bytes: base + 2,
        tx_bytes: base + 3,
        rx_dropped: base + 4,
        tx_dropped: base + 5,
        rx_errors: base + 6,
        tx_errors: base + 7,
        rx_frame_err: 0,
        rx_over_err: 0,
        rx_crc_err: 0,
        collisions: 0,
        duration_sec: 42,
        duration_nsec: 0,
    }
}

fn flow(table_id: u8, priority: u16, cookie: u64) -> FlowStats {
    FlowStats {
        table_id,
        duration_sec: 7,
        duration_nsec: 0,
        priority,
        idle_timeout: 0,
        hard_timeout: 0,
        flags: 0,
        cookie,
        packet_count: 0,
        byte_count: 0,
        match_: Match::new(),
        instructions: vec![],
    }
}

/// s1 (dpid 1): described, three ports, stats for port 1 only, three flows.
/// s2 (dpid 0x0a0b): ports time out, flows error. s3 (dpid 3): connected
/// but gone by the time live queries run.
fn fake_view() -> FakeView {
    let mut s1 = snapshot(1, 40000);
    s1.desc = Some(DescStats {
        mfr_desc: "Nicira, Inc.".into(),
        hw_desc: "Open vSwitch".into(),
        sw_desc: "3.3.0".into(),
        serial_num: "None".into(),
        dp_desc: "s1".into(),
    });
    s1.ports = vec![
        port(port_no::LOCAL, "s1", 0xff, 1, 1),
        port(2, "s1-eth2", 2, 0, 1),
        port(1, "s1-eth1", 1, 0, 4),
    ];
    s1.unavailable_modules = vec!["qos".into()];
    let s2 = snapshot(0x0a0b, 40001);
    let s3 = snapshot(3, 40002);

    let web = FlowStats {
        packet_count: 10,
        byte_count: 980,
        idle_timeout: 60,
        hard_timeout: 300,
        match_: Match::new()
            .with(Oxm::InPort(1))
            .with(Oxm::EthType(0x0800))
            .with(Oxm::Ipv4Src(
                Ipv4Addr::new(10, 0, 0, 0),
                Some(Ipv4Addr::new(255, 0, 0, 0)),
            ))
            .with(Oxm::TcpDst(80)),
        instructions: vec![
            Instruction::WriteMetadata {
                metadata: 1,
                mask: 0xff,
            },
            Instruction::ApplyActions(vec![Action::Output {
                port: 2,
                max_len: 0,
            }]),
            Instruction::GotoTable(5),
        ],
        ..flow(4, 100, Owner::Forwarding.cookie(0x1234))
    };
    let miss = FlowStats {
        instructions: vec![Instruction::GotoTable(1)],
        ..flow(0, 0, 0)
    };
    let lldp = FlowStats {
        match_: Match::new().with(Oxm::EthType(0x88cc)),
        instructions: vec![Instruction::ApplyActions(vec![Action::Output {
            port: port_no::CONTROLLER,
            max_len: 0xffff,
        }])],
        ..flow(0, 1000, 0x0001_0000_0000_0001)
    };

    FakeView {
        switches: vec![s2, s3, s1],
        ports: HashMap::from([
            (1, Answer::Ok(vec![port_stats(1, 100), port_stats(99, 0)])),
            (0x0a0b, Answer::Timeout),
            (3, Answer::Gone),
        ]),
        flows: HashMap::from([
            (1, Answer::Ok(vec![web, miss, lldp])),
            (0x0a0b, Answer::Error("OFPET_BAD_REQUEST/OFPBRC_BAD_STAT")),
            (3, Answer::Gone),
        ]),
    }
}

fn state_with_token(token: Option<&str>) -> ApiState {
    let mut state = ApiState::new(
        Arc::new(fake_view()),
        Arc::new(MemoryStore::new()),
        token.map(str::to_owned),
    );
    state.started = SystemTime::now() - Duration::from_secs(90);
    state
}

/// A body type for the dummy module route.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct EchoBody {
    name: String,
    rules: Vec<EchoRule>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct EchoRule {
    port: u16,
}

/// A stand-in for a module write endpoint.
#[utoipa::path(
    post,
    path = "/test/echo",
    tag = "test",
    request_body = EchoBody,
    responses((status = 200, body = EchoBody), (status = 400, body = ErrorBody)),
    security(("bearer" = []))
)]
async fn echo(ApiJson(body): ApiJson<EchoBody>) -> Json<EchoBody> {
    Json(body)
}

fn extra() -> Vec<OpenApiRouter<ApiState>> {
    vec![OpenApiRouter::new().routes(routes!(echo))]
}

fn app() -> Router {
    router_with_modules(state_with_token(None), extra())
}

async fn send(app: Router, req: Request<Body>) -> (StatusCode, Value) {
    let response = app.oneshot(req).await.expect("router is infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("non-JSON body ({e}): {}", String::from_utf8_lossy(&bytes)));
    (status, value)
}

async fn get(app: Router, uri: &str) -> (StatusCode, Value) {
    let req = Request::get(uri).body(Body::empty()).expect("request");
    send(app, req).await
}

async fn post_json(app: Router, uri: &str, body: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    send(app, req.body(Body::from(body.to_owned())).expect("request")).await
}

fn assert_error(body: &Value, kind: &str, field: Option<&str>) {
    assert_eq!(body["error"], kind, "{body}");
    assert_eq!(body["field"], json!(field), "{body}");
    assert!(
        body["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn health_counts_switches_and_uptime() {
    let (status, body) = get(app(), "/api/v1/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["switches"], 3);
    let uptime = body["uptime_secs"].as_u64().expect("uptime is a number");
    assert!((90..100).contains(&uptime), "{uptime}");
}

fn s1_json() -> Value {
    json!({
        "dpid": "00:00:00:00:00:00:00:01",
        "dpid_int": 1,
        "address": "127.0.0.1:40000",
        "connected_since": "2023-11-14T22:13:20Z",
        "version": "1.3",
        "n_tables": 254,
        "n_buffers": 0,
        "capabilities": 0x4f,
        "desc": {"mfr": "Nicira, Inc.", "hw": "Open vSwitch", "sw": "3.3.0",
                 "serial": "None", "dp": "s1"},
        "ports": [
            {"port_no": 1, "name": "s1-eth1", "hw_addr": "aa:bb:cc:00:00:01", "link_up": true,
             "admin_up": true, "curr_speed_kbps": 10_000_000, "local": false},
            {"port_no": 2, "name": "s1-eth2", "hw_addr": "aa:bb:cc:00:00:02", "link_up": false,
             "admin_up": true, "curr_speed_kbps": 10_000_000, "local": false},
            {"port_no": 0xffff_fffe_u32, "name": "s1", "hw_addr": "aa:bb:cc:00:00:ff",
             "link_up": false, "admin_up": false, "curr_speed_kbps": 10_000_000, "local": true},
        ],
        "unavailable_modules": ["qos"],
    })
}

#[tokio::test]
async fn lists_switches_sorted_by_dpid() {
    let (status, body) = get(app(), "/api/v1/switches").await;
    assert_eq!(status, StatusCode::OK);
    let list = body.as_array().expect("array");
    let dpids: Vec<&str> = list.iter().filter_map(|s| s["dpid"].as_str()).collect();
    assert_eq!(
        dpids,
        [
            "00:00:00:00:00:00:00:01",
            "00:00:00:00:00:00:00:03",
            "00:00:00:00:00:00:0a:0b"
        ]
    );
    assert_eq!(list[0], s1_json());
    assert_eq!(list[2]["desc"], Value::Null);
    assert_eq!(list[2]["dpid_int"], 0x0a0b);
}

#[tokio::test]
async fn one_switch_in_every_dpid_form() {
    for form in ["1", "0x1", "0X01", "00:00:00:00:00:00:00:01"] {
        let (status, body) = get(app(), &format!("/api/v1/switches/{form}")).await;
        assert_eq!(status, StatusCode::OK, "{form}");
        assert_eq!(body, s1_json(), "{form}");
    }
    let (status, body) = get(app(), "/api/v1/switches/2571").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["dpid"], "00:00:00:00:00:00:0a:0b");
}

#[tokio::test]
async fn bad_dpid_is_422_naming_dpid_on_every_switch_route() {
    for bad in ["s1", "0x", "1:2", "-1", "000000000000000a", "0x1g"] {
        for suffix in ["", "/ports", "/flows"] {
            let uri = format!("/api/v1/switches/{bad}{suffix}");
            let (status, body) = get(app(), &uri).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{uri}");
            assert_error(&body, "invalid", Some("dpid"));
        }
    }
}

#[tokio::test]
async fn unknown_dpid_is_404_naming_dpid() {
    for suffix in ["", "/ports", "/flows"] {
        let uri = format!("/api/v1/switches/0x99{suffix}");
        let (status, body) = get(app(), &uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert_error(&body, "not_found", Some("dpid"));
        assert!(body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("00:00:00:00:00:00:00:99")));
    }
}

#[tokio::test]
async fn ports_carry_live_stats_or_null() {
    let (status, body) = get(app(), "/api/v1/switches/1/ports").await;
    assert_eq!(status, StatusCode::OK);
    let ports = body.as_array().expect("array");
    assert_eq!(ports.len(), 3, "stats for unknown port 99 add no port");
    assert_eq!(
        ports[0],
        json!({
            "port_no": 1, "name": "s1-eth1", "hw_addr": "aa:bb:cc:00:00:01", "link_up": true,
            "admin_up": true, "curr_speed_kbps": 10_000_000, "local": false,
            "stats": {"rx_packets": 100, "tx_packets": 101, "rx_bytes": 102, "tx_bytes": 103,
                      "rx_dropped": 104, "tx_dropped": 105, "rx_errors": 106, "tx_errors": 107,
                      "duration_sec": 42}
        })
    );
    assert_eq!(ports[1]["port_no"], 2);
    assert_eq!(ports[1]["stats"], Value::Null);
    assert_eq!(ports[2]["local"], true);
    assert_eq!(ports[2]["stats"], Value::Null);
}

#[tokio::test]
async fn flows_are_rendered_and_sorted() {
    let (status, body) = get(app(), "/api/v1/switches/00:00:00:00:00:00:00:01/flows").await;
    assert_eq!(status, StatusCode::OK);
    let flows = body.as_array().expect("array");
    let order: Vec<(u64, u64)> = flows
        .iter()
        .map(|f| {
            (
                f["table_id"].as_u64().unwrap_or(99),
                f["priority"].as_u64().unwrap_or(99),
            )
        })
        .collect();
    assert_eq!(order, [(0, 1000), (0, 0), (4, 100)]);
    assert_eq!(
        flows[2],
        json!({
            "table_id": 4, "priority": 100,
            "cookie": "0xf002000000001234", "owner": "forwarding", "object": 0x1234,
            "match": {"in_port": "1", "eth_type": "0x0800", "ipv4_src": "10.0.0.0/8",
                      "tcp_dst": "80"},
            "instructions": ["write_metadata:0x1/0xff", "apply_actions(output:2)", "goto_table:5"],
            "packet_count": 10, "byte_count": 980, "duration_sec": 7,
            "idle_timeout": 60, "hard_timeout": 300,
        })
    );
    assert_eq!(
        flows[0]["owner"],
        Value::Null,
        "foreign cookie has no owner"
    );
    assert_eq!(flows[0]["cookie"], "0x0001000000000001");
    assert_eq!(
        flows[0]["instructions"],
        json!(["apply_actions(CONTROLLER:65535)"])
    );
    assert_eq!(flows[1]["match"], json!({}));
}

#[tokio::test]
async fn live_query_failures_map_to_gateway_errors() {
    let (status, body) = get(app(), "/api/v1/switches/0xa0b/ports").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_error(&body, "switch_timeout", None);

    let (status, body) = get(app(), "/api/v1/switches/0xa0b/flows").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_error(&body, "switch_error", None);
    assert!(body["reason"]
        .as_str()
        .is_some_and(|r| r.contains("OFPBRC_BAD_STAT")));

    // Disconnected between the lookup and the query.
    for suffix in ["ports", "flows"] {
        let (status, body) = get(app(), &format!("/api/v1/switches/3/{suffix}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_error(&body, "not_found", Some("dpid"));
    }
}

#[tokio::test]
async fn unknown_route_and_wrong_method_use_error_shape() {
    let (status, body) = get(app(), "/api/v1/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "not_found", None);

    let req = Request::delete("/api/v1/switches")
        .body(Body::empty())
        .expect("request");
    let (status, body) = send(app(), req).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_error(&body, "method_not_allowed", None);
}

#[tokio::test]
async fn openapi_document_lists_every_route_and_schema() {
    let (status, doc) = get(app(), "/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with('3')));
    let paths: Vec<&str> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = vec![
        "/api/v1/events",
        "/api/v1/health",
        "/api/v1/openapi.json",
        "/api/v1/switches",
        "/api/v1/switches/{dpid}",
        "/api/v1/switches/{dpid}/flows",
        "/api/v1/switches/{dpid}/ports",
        "/api/v1/test/echo",
        "/metrics",
    ];
    expected.sort_unstable();
    let mut paths_sorted = paths.clone();
    paths_sorted.sort_unstable();
    assert_eq!(paths_sorted, expected);

    // Every documented GET path answers (no doc-only routes).
    for path in paths
        .iter()
        .filter(|p| !p.contains("echo") && **p != "/metrics" && **p != "/api/v1/events")
    {
        let uri = path.replace("{dpid}", "1");
        let (status, _) = get(app(), &uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
    }

    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for name in [
        "ErrorBody",
        "Health",
        "SwitchInfo",
        "SwitchDesc",
        "PortInfo",
        "PortWithStats",
        "PortCounters",
        "FlowInfo",
        "EchoBody",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert_eq!(
        doc["paths"]["/api/v1/switches/{dpid}"]["get"]["parameters"][0]["name"],
        "dpid"
    );
}

#[tokio::test]
async fn the_document_says_who_needs_the_token_and_what_each_operation_answers() {
    let doc_of = |state: ApiState| async move {
        let (status, doc) = get(router_with_modules(state, extra()), "/api/v1/openapi.json").await;
        assert_eq!(status, StatusCode::OK);
        doc
    };
    let secured = |doc: &Value, path: &str, method: &str| {
        let op = &doc["paths"][path][method];
        let needs = op["security"].is_array();
        assert_eq!(needs, op["responses"]["401"].is_object(), "{method} {path}");
        needs
    };
    // Without a token nothing needs one, whatever the handlers say.
    let open = doc_of(state_with_token(None)).await;
    assert!(!secured(&open, "/api/v1/test/echo", "post"));
    // With one, writes do; reads too when asked, but never /health.
    let writes = doc_of(state_with_token(Some("t"))).await;
    assert!(secured(&writes, "/api/v1/test/echo", "post"));
    assert!(!secured(&writes, "/api/v1/switches", "get"));
    let reads = doc_of(state_with_token(Some("t")).with_read_auth(true)).await;
    assert!(secured(&reads, "/api/v1/switches", "get"));
    assert!(secured(&reads, "/metrics", "get"));
    assert!(!secured(&reads, "/api/v1/health", "get"));

    // A body can be malformed, late, too large, not JSON or refused; a
    // parameter malformed or refused.
    let echo = &open["paths"]["/api/v1/test/echo"]["post"]["responses"];
    for status in ["400", "408", "413", "415", "422"] {
        assert!(echo[status].is_object(), "{status}");
    }
    let by_dpid = &open["paths"]["/api/v1/switches/{dpid}"]["get"]["responses"];
    for status in ["400", "404", "422"] {
        assert!(by_dpid[status].is_object(), "{status}");
    }
    assert!(open["paths"]["/api/v1/health"]["get"]["responses"]["400"].is_null());
}

#[tokio::test]
async fn reads_need_the_token_when_asked_except_health() {
    let app = || {
        router_with_modules(
            state_with_token(Some("s3cret")).with_read_auth(true),
            extra(),
        )
    };
    let (status, err) = get(app(), "/api/v1/switches").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&err, "unauthorized", Some("authorization"));
    let (status, _) = get(app(), "/api/v1/health").await;
    assert_eq!(status, StatusCode::OK);
    let authorized = Request::get("/api/v1/switches")
        .header(header::AUTHORIZATION, "bearer s3cret")
        .body(Body::empty())
        .expect("request");
    let (status, _) = send(app(), authorized).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn json_body_errors_name_the_field() {
    let ok = r#"{"name": "web", "rules": [{"port": 80}]}"#;
    let (status, body) = post_json(app(), "/api/v1/test/echo", ok, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"name": "web", "rules": [{"port": 80}]}));

    let cases = [
        (
            r#"{"name": "web", "rules": [{"port": "x"}]}"#,
            Some("rules[0].port"),
        ),
        (r#"{"name": "web", "rules": [{}]}"#, Some("rules[0].port")),
        (r#"{"name": "web", "rules": [[80]]}"#, Some("rules[0]")),
        (r#"["web", []]"#, None),
        (r#"{"rules": []}"#, Some("name")),
        (r#"{"name": "a", "rules": [], "extra": 1}"#, Some("extra")),
        (r#"{"name": 5, "rules": []}"#, Some("name")),
        (r#""just a string""#, None),
        (r#"{"name": "web", "#, None),
        (r#"{"name": "web", "rules": []} trailing"#, None),
        ("", None),
    ];
    for (input, field) in cases {
        let (status, body) = post_json(app(), "/api/v1/test/echo", input, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{input}");
        assert_error(&body, "bad_request", field);
    }
    // The right type, a refused value.
    let out_of_range = r#"{"name": "web", "rules": [{"port": 70000}]}"#;
    let (status, body) = post_json(app(), "/api/v1/test/echo", out_of_range, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&body, "invalid", Some("rules[0].port"));
}

#[tokio::test]
async fn body_without_json_content_type_is_415() {
    let req = Request::post("/api/v1/test/echo")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(r#"{"name": "web", "rules": []}"#))
        .expect("request");
    let (status, body) = send(app(), req).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_error(&body, "unsupported_media_type", None);
}

#[tokio::test]
async fn oversized_body_is_413() {
    let big = format!(r#"{{"name": "{}", "rules": []}}"#, "x".repeat(3 << 20));
    let (status, body) = post_json(app(), "/api/v1/test/echo", &big, None).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&body, "payload_too_large", None);
}

#[tokio::test]
async fn bearer_token_guards_writes_only() {
    let secured = || router_with_modules(state_with_token(Some("s3cret")), extra());
    let body = r#"{"name": "web", "rules": []}"#;

    let (status, err) = post_json(secured(), "/api/v1/test/echo", body, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&err, "unauthorized", Some("authorization"));

    let (status, err) = post_json(secured(), "/api/v1/test/echo", body, Some("wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&err, "unauthorized", Some("authorization"));

    let (status, _) = post_json(secured(), "/api/v1/test/echo", body, Some("s3cret")).await;
    assert_eq!(status, StatusCode::OK);

    let (status, _) = get(secured(), "/api/v1/switches").await;
    assert_eq!(status, StatusCode::OK, "reads need no token");

    let response = secured()
        .oneshot(
            Request::builder()
                .method(Method::PUT)
                .uri("/api/v1/test/echo")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");

    // Without a configured token (or with an empty one) writes are open.
    let open = router_with_modules(state_with_token(Some("")), extra());
    let (status, _) = post_json(open, "/api/v1/test/echo", body, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_body_must_arrive_within_the_body_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = router_with_modules(
        state_with_token(None).with_body_timeout(Duration::from_millis(500)),
        extra(),
    );
    tokio::spawn(serve(
        listener,
        app,
        ServerConfig::default(),
        None,
        std::future::pending(),
    ));
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    conn.write_all(
        b"POST /api/v1/test/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 40\r\n\r\n{",
    )
    .await
    .expect("write");
    // One byte every 200 ms: each arrives in time, the whole body does not.
    let started = std::time::Instant::now();
    let mut response = String::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            tokio::select! {
                n = conn.read(&mut buf) => {
                    let n = n.unwrap_or(0);
                    response.push_str(&String::from_utf8_lossy(&buf[..n]));
                    if n == 0 || response.contains("}") {
                        return;
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    let _ = conn.write_all(b" ").await;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("answered");
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("request_timeout"), "{response}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn metrics_export_runtime_and_rest_counters() {
    let runtime_metrics = Arc::new(crate::runtime::metrics::Metrics::default());
    runtime_metrics.record_batch(1, &Default::default());
    let app = router(state_with_token(None).with_metrics(runtime_metrics));
    let (status, _) = get(app.clone(), "/api/v1/health").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = get(app.clone(), "/api/v1/switches/0x99").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let response = app
        .oneshot(
            Request::get("/metrics")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()[header::CONTENT_TYPE]
        .to_str()
        .is_ok_and(|v| v.starts_with("text/plain")));
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("flowgate_switches 3\n"), "{text}");
    assert!(text.contains("flowgate_packet_ins_total 1\n"), "{text}");
    assert!(
        text.contains("flowgate_rest_requests_total{code=\"2xx\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("flowgate_rest_requests_total{code=\"4xx\"} 1\n"),
        "{text}"
    );
}

#[tokio::test]
async fn metrics_without_runtime_still_reports_rest() {
    let app = router(state_with_token(None));
    let response = app
        .oneshot(
            Request::get("/metrics")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains("flowgate_switches"), "{text}");
    assert!(text.contains("flowgate_rest_requests_total"), "{text}");
}

#[tokio::test]
async fn events_stream_as_server_sent_events_filtered_by_topic() {
    use crate::events::{Bus, BusEvent};
    use http_body_util::BodyExt;

    let bus = Bus::default();
    let app = router_with_modules(state_with_token(None).with_bus(bus.clone()), extra());
    let req = Request::get("/api/v1/events?topics=switch")
        .body(Body::empty())
        .expect("request");
    let response = app
        .clone()
        .oneshot(req)
        .await
        .expect("router is infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    bus.send(BusEvent::Port {
        dpid: 1,
        port: 2,
        name: "s1-eth2".into(),
        change: crate::events::PortChange::Up,
    });
    bus.send(BusEvent::SwitchDown { dpid: 1 });
    let mut body = response.into_body();
    let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("an event within 5 s")
        .expect("a frame")
        .expect("no error");
    let text = String::from_utf8(frame.into_data().expect("data").to_vec()).unwrap();
    assert!(text.starts_with("event: switch\nid: 2\n"), "{text}");
    assert!(text.contains("\"type\":\"switch_down\""), "{text}");
    let (status, body) = get(app, "/api/v1/events?topics=links").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "bad_request", Some("topics"));
}
