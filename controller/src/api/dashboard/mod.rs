//! The web dashboard (issue 18): a single page served at `/`, its assets
//! under `/dashboard/`, embedded in the binary with `include_bytes!` — no
//! build step, no files to install, no third-party JavaScript.
//!
//! The page is plain ES modules and SVG (`assets/`): `logic.mjs` holds
//! what can be tested without a browser (the graph model from the REST
//! documents, bus events applied to it, the force layout, cookie
//! decoding, SSE framing, filters, plot scales; `node --test
//! controller/src/api/dashboard/test/logic.test.mjs`), `app.mjs` the DOM
//! and the I/O.
//! It reads everything through the REST API and `GET /api/v1/events`
//! with the token the operator enters (kept in `sessionStorage`), so it
//! sees exactly what the token allows.
//!
//! The shell itself is open even with `rest.auth_reads`: it is the same
//! static text for everyone and holds no state (like the OpenAPI
//! document), and a browser cannot send a bearer header when it
//! navigates; every request the page makes for data is checked as usual.
//! Answers carry a strict Content-Security-Policy (scripts, styles and
//! connections to this origin only, no inline code), `nosniff`, and an
//! `ETag` for cheap revalidation.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use super::error::ApiError;
use super::ApiState;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:literal) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!("assets/", $name)),
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.mjs", "text/javascript; charset=utf-8"),
    asset!("logic.mjs", "text/javascript; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
];

/// What the page may load and connect to: this origin only, no inline
/// scripts or styles, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Whether `path` is part of the dashboard (open even when reads need
/// the token).
pub(super) fn is_dashboard_path(path: &str) -> bool {
    path == "/" || path == "/favicon.ico" || path == "/dashboard" || path.starts_with("/dashboard/")
}

/// The dashboard's routes, merged into the application when enabled.
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/", get(index))
        .route("/favicon.ico", get(favicon))
        .route("/dashboard", get(|| async { Redirect::permanent("/") }))
        .route("/dashboard/", get(index))
        .route("/dashboard/{file}", get(file))
}

fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// FNV-1a over the file: its version, for `ETag`.
fn etag(body: &[u8]) -> String {
    let hash = body.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("\"{hash:016x}\"")
}

fn serve(asset: &'static Asset, request: &HeaderMap) -> Response {
    let tag = etag(asset.body);
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.body.into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&tag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

async fn index(request: HeaderMap) -> Response {
    serve(
        find("index.html").expect("index.html is embedded"),
        &request,
    )
}

async fn favicon(request: HeaderMap) -> Response {
    serve(
        find("favicon.svg").expect("favicon.svg is embedded"),
        &request,
    )
}

async fn file(Path(name): Path<String>, request: HeaderMap) -> Response {
    match find(&name) {
        Some(asset) => serve(asset, &request),
        None => ApiError::not_found("file", format!("no dashboard file {name:?}")).into_response(),
    }
}

#[cfg(test)]
mod tests;
