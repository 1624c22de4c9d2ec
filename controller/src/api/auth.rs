//! Optional bearer-token auth (DESIGN.md §5).
//!
//! With [`ApiState::auth_token`] set, writes need `Authorization: Bearer
//! <token>` (the scheme name in any case, RFC 7235 §2.1). Reads (GET,
//! HEAD) are open unless [`ApiState::auth_reads`] is set too; even then
//! `/api/v1/health` (liveness probes) and `/api/v1/openapi.json` (what the
//! API is, no state) stay open.

use super::error::ApiError;
use super::ApiState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The endpoints that never need a token.
const OPEN_PATHS: [&str; 2] = ["/api/v1/health", "/api/v1/openapi.json"];

/// Middleware: rejects requests that need the token and lack it with 401.
pub(super) async fn require_token(
    State(state): State<ApiState>,
    req: Request,
    next: Next,
) -> Response {
    let Some(token) = state.auth_token.as_deref() else {
        return next.run(req).await;
    };
    if !needs_token(state.auth_reads, req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    match bearer(req.headers()) {
        Some(p) if constant_time_eq(p.as_bytes(), token.as_bytes()) => next.run(req).await,
        Some(_) => ApiError::Unauthorized("invalid bearer token".into()).into_response(),
        None => ApiError::Unauthorized(
            "this request needs an Authorization: Bearer <token> header".into(),
        )
        .into_response(),
    }
}

/// Whether a request of `method` on `path` needs the token (when one is
/// configured), reads too with `auth_reads`.
pub(super) fn needs_token(auth_reads: bool, method: &Method, path: &str) -> bool {
    let read = matches!(*method, Method::GET | Method::HEAD);
    !read
        || (auth_reads && !OPEN_PATHS.contains(&path) && !super::dashboard::is_dashboard_path(path))
}

/// The credentials of an `Authorization: Bearer ...` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = value.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim())
}

/// Compares without an early exit so response timing does not reveal how
/// much of the token a guess got right (only its length).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn compares_whole_tokens() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn the_scheme_name_is_case_insensitive() {
        let of = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(v));
            bearer(&h).map(str::to_owned)
        };
        for v in [
            "Bearer s3cret",
            "bearer s3cret",
            "BEARER  s3cret ",
            "bEaReR s3cret",
        ] {
            assert_eq!(of(v).as_deref(), Some("s3cret"), "{v}");
        }
        assert_eq!(of("Basic czNjcmV0"), None);
        assert_eq!(of("Bearers3cret"), None);
    }
}
