//! The overlay's REST endpoints through `oneshot`, on a real runtime with
//! no switches and a memory store.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use flowgate_controller::api::{router_with_modules, ApiState};
use flowgate_controller::module::Module;
use flowgate_controller::runtime::RuntimeConfig;
use flowgate_controller::store::MemoryStore;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::*;

struct App {
    router: Router,
    store: Arc<MemoryStore>,
}

async fn app() -> App {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let modules: Vec<Box<dyn Module>> = vec![Box::new(crate::Overlay::default())];
    let store = Arc::new(MemoryStore::new());
    let runtime = Runtime::start(listener, RuntimeConfig::default(), modules, store.clone());
    let state = ApiState::new(Arc::new(runtime.clone()), store.clone(), None);
    let api = OverlayApi::new(
        runtime,
        store.clone(),
        Hosts::default(),
        StatusBoard::default(),
    );
    App {
        router: router_with_modules(state, vec![routes(api)]),
        store,
    }
}

impl App {
    async fn req(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut r = Request::builder()
            .method(method)
            .uri(format!("/api/v1{path}"));
        let body = match body {
            Some(b) => {
                r = r.header("content-type", "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let resp = self
            .router
            .clone()
            .oneshot(r.body(body).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn keys(&self) -> Vec<String> {
        self.store
            .list_prefix("overlay/")
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }
}

#[tokio::test]
async fn networks_and_ports_lifecycle() {
    let a = app().await;
    let (s, net) = a
        .req(
            "POST",
            "/networks",
            Some(json!({"id": "blue", "tenant": "acme", "vni": 100, "subnet": "10.0.0.0/24"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{net}");
    assert_eq!(net["vni"], 100);
    assert!(net["applied"]["switches"].as_array().unwrap().is_empty());
    let (s, auto) = a
        .req("POST", "/networks", Some(json!({"tenant": "globex"})))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(auto["vni"], 4096);
    let (s, port) = a
        .req(
            "POST",
            "/networks/blue/ports",
            Some(json!({"iface_id": "vm1", "mac": "02:00:00:00:00:01", "ips": ["10.0.0.1"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{port}");
    assert_eq!(port["id"], "vm1");
    assert_eq!(port["iface_id"], "vm1");
    assert_eq!(port["status"]["bound"], false);
    let (s, ports) = a.req("GET", "/networks/blue/ports", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ports.as_array().unwrap().len(), 1);
    let (s, _) = a.req("GET", "/networks/blue/ports/vm1", None).await;
    assert_eq!(s, StatusCode::OK);
    // Replace by PUT, then delete the network with its port.
    let (s, _) = a
        .req(
            "PUT",
            "/networks/blue",
            Some(json!({"tenant": "acme", "name": "Blue"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, got) = a.req("GET", "/networks/blue", None).await;
    assert_eq!(
        (got["name"].clone(), got["vni"].clone()),
        (json!("Blue"), json!(100))
    );
    assert_eq!(a.keys().len(), 3);
    let (s, del) = a.req("DELETE", "/networks/blue", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(del["ports"], json!(["vm1"]));
    assert_eq!(a.keys(), vec!["overlay/networks/net-1".to_owned()]);
    let (s, _) = a.req("GET", "/networks/blue", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_input_names_the_field_and_changes_nothing() {
    let a = app().await;
    a.req(
        "POST",
        "/networks",
        Some(json!({"id": "blue", "tenant": "acme", "vni": 100})),
    )
    .await;
    a.req(
        "POST",
        "/networks/blue/ports",
        Some(json!({"iface_id": "vm1"})),
    )
    .await;
    let before = a.keys();
    let cases = [
        (
            "POST",
            "/networks",
            json!({"id": "red", "tenant": "x", "vni": 100}),
            409,
            "vni",
        ),
        (
            "POST",
            "/networks",
            json!({"id": "blue", "tenant": "x"}),
            409,
            "id",
        ),
        (
            "POST",
            "/networks",
            json!({"tenant": "x", "colour": 1}),
            400,
            "colour",
        ),
        ("POST", "/networks", json!({"id": "red"}), 400, "tenant"),
        (
            "POST",
            "/networks/nope/ports",
            json!({"iface_id": "vm9"}),
            404,
            "network",
        ),
        (
            "POST",
            "/networks/blue/ports",
            json!({"id": "again", "iface_id": "vm1"}),
            409,
            "iface_id",
        ),
        (
            "POST",
            "/networks/blue/ports",
            json!({"iface_id": "vm2", "mac": "zz"}),
            422,
            "mac",
        ),
        (
            "PUT",
            "/networks/blue/ports/vm2",
            json!({"id": "vm3", "iface_id": "vm2"}),
            422,
            "id",
        ),
    ];
    for (method, path, body, status, field) in cases {
        let (s, err) = a.req(method, path, Some(body.clone())).await;
        assert_eq!(s.as_u16(), status, "{method} {path} {body}: {err}");
        assert_eq!(err["field"], field, "{method} {path} {body}: {err}");
    }
    let (s, err) = a.req("DELETE", "/networks/blue/ports/nope", None).await;
    assert_eq!(
        (s, err["field"].clone()),
        (StatusCode::NOT_FOUND, json!("port"))
    );
    assert_eq!(a.keys(), before);
    let (_, nets) = a.req("GET", "/networks", None).await;
    assert_eq!(nets.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn flat_ports_move_between_networks_in_one_step() {
    let a = app().await;
    for (id, vni) in [("blue", 100), ("red", 200)] {
        let (s, _) = a
            .req(
                "POST",
                "/networks",
                Some(json!({"id": id, "tenant": "t", "vni": vni})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let (s, err) = a
        .req("POST", "/ports", Some(json!({"iface_id": "vm1"})))
        .await;
    assert_eq!(
        (s, err["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("network"))
    );
    let (s, p) = a
        .req(
            "POST",
            "/ports",
            Some(json!({"network": "blue", "iface_id": "vm1", "ips": ["10.0.0.1"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    // The binding's key sits beside the other fields, as in the request.
    assert_eq!(p["iface_id"], "vm1");
    assert_eq!(p["network"], "blue");
    // Ids are unique across networks.
    let (s, err) = a
        .req(
            "POST",
            "/networks/red/ports",
            Some(json!({"id": "vm1", "iface_id": "other"})),
        )
        .await;
    assert_eq!(
        (s, err["field"].clone()),
        (StatusCode::CONFLICT, json!("id"))
    );
    // A dry run answers with the canonical port and changes nothing.
    let body = json!({"network": "red", "iface_id": "vm1", "mac": "02:00:00:00:00:AA"});
    let (s, dry) = a
        .req("PUT", "/ports/vm1?dry_run=true", Some(body.clone()))
        .await;
    assert_eq!(s, StatusCode::OK, "{dry}");
    assert_eq!(dry["mac"], "02:00:00:00:00:aa");
    assert_eq!(dry["applied"], Value::Null, "{dry}");
    assert!(dry.as_object().unwrap().contains_key("applied"));
    assert_eq!(a.req("GET", "/ports/vm1", None).await.1["network"], "blue");
    // The move itself.
    let (s, moved) = a.req("PUT", "/ports/vm1", Some(body)).await;
    assert_eq!(s, StatusCode::OK, "{moved}");
    assert_eq!(
        a.req("GET", "/networks/blue/ports", None).await.1,
        json!([])
    );
    let (_, red) = a.req("GET", "/networks/red/ports", None).await;
    assert_eq!(red[0]["id"], "vm1");
    assert_eq!(
        a.keys()
            .iter()
            .filter(|k| k.starts_with("overlay/ports/"))
            .count(),
        1
    );
    let (_, all) = a.req("GET", "/ports", None).await;
    assert_eq!(all.as_array().unwrap().len(), 1);
    let (s, _) = a.req("DELETE", "/ports/vm1", None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, err) = a.req("GET", "/ports/vm1", None).await;
    assert_eq!(
        (s, err["field"].clone()),
        (StatusCode::NOT_FOUND, json!("port"))
    );
}

#[tokio::test]
async fn chassis_connections_are_validated_and_persisted() {
    let a = app().await;
    let (s, err) = a
        .req(
            "POST",
            "/chassis/connections",
            Some(json!({"target": "ssl:1.2.3.4"})),
        )
        .await;
    assert_eq!(
        (s, err["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("target"))
    );
    let (s, _) = a
        .req(
            "POST",
            "/chassis/connections",
            Some(json!({"target": "tcp:127.0.0.1:1"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, list) = a.req("GET", "/chassis/connections", None).await;
    assert_eq!(list, json!([{"target": "tcp:127.0.0.1:1"}]));
    assert_eq!(
        load_targets(a.store.as_ref()).unwrap(),
        vec!["tcp:127.0.0.1:1".to_owned()]
    );
    let (s, _) = a
        .req("DELETE", "/chassis/connections/tcp:127.0.0.1:1", None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = a
        .req("DELETE", "/chassis/connections/tcp:127.0.0.1:1", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, chassis) = a.req("GET", "/chassis", None).await;
    assert_eq!((s, chassis), (StatusCode::OK, json!([])));
}

#[test]
fn stored_configuration_loads_back() {
    let store = MemoryStore::new();
    let net = Network {
        id: "blue".into(),
        name: "blue".into(),
        tenant: "acme".into(),
        vni: 7,
        subnet: None,
        gateway: None,
    };
    store.put_json("overlay/networks/blue", &net).unwrap();
    let port = Port {
        id: "vm1".into(),
        network: "blue".into(),
        binding: crate::model::Binding::IfaceId("vm1".into()),
        mac: None,
        ips: vec![],
    };
    store.put_json("overlay/ports/blue/vm1", &port).unwrap();
    let config = load_config(&store).unwrap();
    assert_eq!(config.networks["blue"], net);
    assert_eq!(config.ports[&("blue".to_owned(), "vm1".to_owned())], port);
}
