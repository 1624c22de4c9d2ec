//! The dashboard's files through the whole router: paths, content types,
//! security headers, revalidation, and the token rules.

use super::*;
use crate::api::{router, ApiState, ControllerView, QueryFuture, SwitchQueryError, SwitchSnapshot};
use crate::store::MemoryStore;
use axum::body::Body;
use axum::http::{Method, Request};
use http_body_util::BodyExt;
use std::sync::Arc;
use tower::ServiceExt;

struct NoSwitches;

impl ControllerView for NoSwitches {
    fn switches(&self) -> Vec<SwitchSnapshot> {
        Vec::new()
    }
    fn switch(&self, _dpid: u64) -> Option<SwitchSnapshot> {
        None
    }
    fn port_stats(&self, dpid: u64) -> QueryFuture<Vec<flowgate_openflow::PortStats>> {
        Box::pin(async move { Err(SwitchQueryError::NotConnected(dpid)) })
    }
    fn flow_stats(&self, dpid: u64) -> QueryFuture<Vec<flowgate_openflow::FlowStats>> {
        Box::pin(async move { Err(SwitchQueryError::NotConnected(dpid)) })
    }
}

fn state(token: Option<&str>) -> ApiState {
    ApiState::new(
        Arc::new(NoSwitches),
        Arc::new(MemoryStore::new()),
        token.map(str::to_owned),
    )
}

async fn get(
    state: ApiState,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut request = Request::builder().method(Method::GET).uri(path);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = router(state)
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

fn content_type(headers: &HeaderMap) -> &str {
    headers[header::CONTENT_TYPE].to_str().unwrap()
}

#[tokio::test]
async fn the_page_and_its_files_are_served_with_their_types() {
    let (status, headers, body) = get(state(None), "/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type(&headers), "text/html; charset=utf-8");
    let page = String::from_utf8(body).unwrap();
    assert!(page.contains("/dashboard/app.mjs"), "{page}");
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");

    for (path, want) in [
        ("/dashboard/", "text/html; charset=utf-8"),
        ("/dashboard/index.html", "text/html; charset=utf-8"),
        ("/dashboard/app.mjs", "text/javascript; charset=utf-8"),
        ("/dashboard/logic.mjs", "text/javascript; charset=utf-8"),
        ("/dashboard/style.css", "text/css; charset=utf-8"),
        ("/dashboard/favicon.svg", "image/svg+xml"),
        ("/favicon.ico", "image/svg+xml"),
    ] {
        let (status, headers, body) = get(state(None), path, &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(content_type(&headers), want, "{path}");
        assert!(!body.is_empty(), "{path}");
    }
}

#[tokio::test]
async fn every_file_the_page_names_is_embedded() {
    let page = std::str::from_utf8(find("index.html").unwrap().body).unwrap();
    let app = std::str::from_utf8(find("app.mjs").unwrap().body).unwrap();
    for asset in ASSETS {
        if asset.name != "index.html" && asset.name != "logic.mjs" {
            assert!(
                page.contains(&format!("/dashboard/{}", asset.name)),
                "{}",
                asset.name
            );
        }
    }
    assert!(app.contains("from \"./logic.mjs\""));
}

#[tokio::test]
async fn unknown_files_are_json_404s_and_the_bare_prefix_redirects() {
    for path in ["/dashboard/nope.js", "/dashboard/..%2FCargo.toml"] {
        let (status, headers, body) = get(state(None), path, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            content_type(&headers).starts_with("application/json"),
            "{path}"
        );
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"], "not_found", "{json}");
    }
    let (status, headers, _) = get(state(None), "/dashboard", &[]).await;
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(headers[header::LOCATION], "/");
}

#[tokio::test]
async fn an_unchanged_file_is_not_sent_again() {
    let (_, headers, _) = get(state(None), "/dashboard/app.mjs", &[]).await;
    let tag = headers[header::ETAG].to_str().unwrap().to_owned();
    let (status, headers, body) = get(
        state(None),
        "/dashboard/app.mjs",
        &[("if-none-match", &tag)],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert_eq!(headers[header::ETAG].to_str().unwrap(), tag);
    assert!(body.is_empty());
    let (status, _, _) = get(
        state(None),
        "/dashboard/app.mjs",
        &[("if-none-match", "\"other\"")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_shell_is_open_but_data_needs_the_token_when_reads_do() {
    let locked = || state(Some("s3cret")).with_read_auth(true);
    let (status, _, _) = get(locked(), "/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = get(locked(), "/dashboard/app.mjs", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = get(locked(), "/api/v1/switches", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = get(
        locked(),
        "/api/v1/switches",
        &[("authorization", "Bearer s3cret")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Writes to the dashboard's paths are not a way around the token.
    let response = router(locked())
        .oneshot(
            Request::builder()
                .method(Method::POST)
                .uri("/")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn it_can_be_switched_off() {
    let (status, headers, _) = get(state(None).with_dashboard(false), "/", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(content_type(&headers).starts_with("application/json"));
    let (status, _, _) = get(state(None).with_dashboard(false), "/dashboard/app.mjs", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
