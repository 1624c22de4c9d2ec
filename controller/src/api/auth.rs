//! Optional bearer-token auth for writes (DESIGN.md §5).
//!
//! Reads (GET, HEAD, OPTIONS) are always open: operators and monitoring
//! need them without secrets. Any other method needs
//! `Authorization: Bearer <token>` when [`ApiState::auth_token`] is set.

use super::error::ApiError;
use super::ApiState;
use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Middleware: rejects unauthenticated writes with 401.
pub(super) async fn require_token(
    State(state): State<ApiState>,
    req: Request,
    next: Next,
) -> Response {
    let Some(token) = state.auth_token.as_deref() else {
        return next.run(req).await;
    };
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(p) if constant_time_eq(p.as_bytes(), token.as_bytes()) => next.run(req).await,
        Some(_) => ApiError::Unauthorized("invalid bearer token".into()).into_response(),
        None => ApiError::Unauthorized(
            "write requests need an Authorization: Bearer <token> header".into(),
        )
        .into_response(),
    }
}

/// Compares without an early exit so response timing does not reveal how
/// much of the token a guess got right (only its length).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn compares_whole_tokens() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(constant_time_eq(b"", b""));
    }
}
