//! The one error type every handler returns.
//!
//! Status codes (the same rule for core and module endpoints):
//! - 400 `bad_request`: the request does not have the shape the OpenAPI
//!   document gives it — a body that is not JSON, a value of the wrong JSON
//!   type, a missing or unknown field, a path or query parameter that is
//!   not of its declared type (a number, a boolean).
//! - 422 `invalid`: the request has that shape, but a value is refused — a
//!   string that is no MAC, CIDR or dpid, a number out of range, fields
//!   that contradict each other. So a request the document allows is never
//!   a 400; what the document can only say in words is a 422.
//! - 401 `unauthorized`: a request without the configured bearer token.
//! - 404 `not_found`: unknown switch (dpid) or resource, or unknown route.
//! - 405 `method_not_allowed`, 408 `request_timeout` (the body did not
//!   arrive in time), 409 `conflict`, 413 `payload_too_large`,
//!   415 `unsupported_media_type` (a body without `Content-Type: application/json`).
//! - 502 `switch_error` / 504 `switch_timeout`: the switch answered a live
//!   query with an error, or did not answer in time.
//! - 503 `unavailable`: the store cannot be reached (etcd down or without
//!   quorum); the reason names the cause, the write was not acknowledged,
//!   and the same request may succeed later.
//! - 500 `internal`: our bug or any other store failure; the details are
//!   logged with `tracing` and the caller gets a generic message.
//!
//! Body: `{"error": "<kind>", "field": "<field>" | null, "reason": "<text>"}`.

use super::view::SwitchQueryError;
use crate::store::StoreError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Machine-readable kind: `bad_request`, `invalid`, `unauthorized`, `not_found`,
    /// `method_not_allowed`, `request_timeout`, `conflict`, `payload_too_large`,
    /// `unsupported_media_type`, `switch_error`, `switch_timeout`, `unavailable`,
    /// `internal`.
    #[schema(example = "not_found")]
    pub error: String,
    /// The request field at fault (path parameter, JSON path such as
    /// `rules[0].port`, or header), when there is one.
    #[schema(example = "dpid")]
    pub field: Option<String>,
    /// Human-readable explanation.
    #[schema(example = "switch 00:00:00:00:00:00:00:09 is not connected")]
    pub reason: String,
}

/// Everything a handler can fail with. Module handlers return it too.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed or invalid.
    #[error("{reason}")]
    BadRequest {
        field: Option<String>,
        reason: String,
    },
    /// 422: a well-formed request with a value that is refused.
    #[error("{reason}")]
    Invalid { field: String, reason: String },
    /// 401: a request without a valid bearer token.
    #[error("{0}")]
    Unauthorized(String),
    /// 404: unknown resource.
    #[error("{reason}")]
    NotFound {
        field: Option<String>,
        reason: String,
    },
    /// 405: the route exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: the request conflicts with current state (e.g. duplicate id).
    #[error("{reason}")]
    Conflict {
        field: Option<String>,
        reason: String,
    },
    /// 408: the body did not arrive in time.
    #[error("{0}")]
    RequestTimeout(String),
    /// 413: body over the size limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415: body is not declared as JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 502 / 504 (or 404 if the switch went away): a live query failed.
    #[error(transparent)]
    Switch(#[from] SwitchQueryError),
    /// 503: the store is unavailable; the cause is shown (it names the
    /// store, never a secret) so an operator sees what to fix.
    #[error("{0}")]
    Unavailable(String),
    /// 500: anything else. Logged, never shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// 400 naming `field`.
    pub fn bad_field(field: impl Into<String>, reason: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            field: Some(field.into()),
            reason: reason.into(),
        }
    }

    /// 422 naming `field`: the value there is refused.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ApiError {
        ApiError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// 404 naming `field`.
    pub fn not_found(field: impl Into<String>, reason: impl Into<String>) -> ApiError {
        ApiError::NotFound {
            field: Some(field.into()),
            reason: reason.into(),
        }
    }

    /// 409 naming `field`.
    pub fn conflict(field: impl Into<String>, reason: impl Into<String>) -> ApiError {
        ApiError::Conflict {
            field: Some(field.into()),
            reason: reason.into(),
        }
    }

    /// 500 for any error; the cause is logged, not returned.
    pub fn internal(e: impl Into<anyhow::Error>) -> ApiError {
        ApiError::Internal(e.into())
    }

    /// Status code and body for this error.
    fn parts(&self) -> (StatusCode, ErrorBody) {
        let body = |kind: &str, field: Option<&str>, reason: String| ErrorBody {
            error: kind.to_owned(),
            field: field.map(str::to_owned),
            reason,
        };
        match self {
            ApiError::BadRequest { field, reason } => (
                StatusCode::BAD_REQUEST,
                body("bad_request", field.as_deref(), reason.clone()),
            ),
            ApiError::Invalid { field, reason } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                body("invalid", Some(field), reason.clone()),
            ),
            ApiError::Unauthorized(reason) => (
                StatusCode::UNAUTHORIZED,
                body("unauthorized", Some("authorization"), reason.clone()),
            ),
            ApiError::NotFound { field, reason } => (
                StatusCode::NOT_FOUND,
                body("not_found", field.as_deref(), reason.clone()),
            ),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                body("method_not_allowed", None, self.to_string()),
            ),
            ApiError::Conflict { field, reason } => (
                StatusCode::CONFLICT,
                body("conflict", field.as_deref(), reason.clone()),
            ),
            ApiError::RequestTimeout(reason) => (
                StatusCode::REQUEST_TIMEOUT,
                body("request_timeout", None, reason.clone()),
            ),
            ApiError::PayloadTooLarge(reason) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                body("payload_too_large", None, reason.clone()),
            ),
            ApiError::UnsupportedMediaType(reason) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                body("unsupported_media_type", None, reason.clone()),
            ),
            ApiError::Switch(e @ SwitchQueryError::NotConnected(_)) => (
                StatusCode::NOT_FOUND,
                body("not_found", Some("dpid"), e.to_string()),
            ),
            ApiError::Switch(e @ SwitchQueryError::Timeout(_)) => (
                StatusCode::GATEWAY_TIMEOUT,
                body("switch_timeout", None, e.to_string()),
            ),
            ApiError::Switch(e @ SwitchQueryError::SwitchError(_)) => (
                StatusCode::BAD_GATEWAY,
                body("switch_error", None, e.to_string()),
            ),
            ApiError::Unavailable(reason) => (
                StatusCode::SERVICE_UNAVAILABLE,
                body("unavailable", None, reason.clone()),
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                body(
                    "internal",
                    None,
                    "internal error; see the controller log".into(),
                ),
            ),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        Arc::new(e).into()
    }
}

/// A failed write's store error (shared: the runtime hands it to every
/// waiter of the write).
impl From<Arc<StoreError>> for ApiError {
    fn from(e: Arc<StoreError>) -> ApiError {
        match *e {
            StoreError::Conflict {
                revision, since, ..
            } => ApiError::Conflict {
                field: None,
                reason: format!(
                    "another controller of the cluster changed this module (store revision \
                     {revision}) after this node's state of it (revision {since}); retry"
                ),
            },
            StoreError::Unavailable { .. } => {
                tracing::warn!(error = %e, "REST request failed: store unavailable");
                ApiError::Unavailable(e.to_string())
            }
            _ => ApiError::internal(anyhow::anyhow!(e)),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = self.parts();
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = format!("{e:#}"), "REST request failed");
        }
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn render(e: ApiError) -> (StatusCode, ErrorBody) {
        let r = e.into_response();
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16)
            .await
            .expect("body");
        (
            status,
            serde_json::from_slice(&bytes).expect("error body is JSON"),
        )
    }

    #[tokio::test]
    async fn statuses_and_kinds() {
        let cases = [
            (ApiError::bad_field("dpid", "x"), 400, "bad_request"),
            (ApiError::invalid("dpid", "x"), 422, "invalid"),
            (ApiError::Unauthorized("x".into()), 401, "unauthorized"),
            (ApiError::not_found("dpid", "x"), 404, "not_found"),
            (ApiError::MethodNotAllowed, 405, "method_not_allowed"),
            (ApiError::conflict("id", "x"), 409, "conflict"),
            (ApiError::RequestTimeout("x".into()), 408, "request_timeout"),
            (
                ApiError::PayloadTooLarge("x".into()),
                413,
                "payload_too_large",
            ),
            (
                ApiError::UnsupportedMediaType("x".into()),
                415,
                "unsupported_media_type",
            ),
            (SwitchQueryError::NotConnected(1).into(), 404, "not_found"),
            (
                SwitchQueryError::Timeout(Duration::from_secs(2)).into(),
                504,
                "switch_timeout",
            ),
            (
                SwitchQueryError::SwitchError("bad".into()).into(),
                502,
                "switch_error",
            ),
        ];
        for (e, status, kind) in cases {
            let (s, body) = render(e).await;
            assert_eq!((s.as_u16(), body.error.as_str()), (status, kind));
        }
    }

    #[tokio::test]
    async fn internal_errors_are_hidden() {
        let (s, body) = render(ApiError::internal(anyhow::anyhow!(
            "disk /secret/path full"
        )))
        .await;
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body.error, "internal");
        assert_eq!(body.field, None);
        assert!(!body.reason.contains("secret"), "{}", body.reason);
    }

    #[tokio::test]
    async fn an_unavailable_store_is_a_503_naming_the_cause() {
        let e = StoreError::Unavailable {
            cause: "etcd (127.0.0.1:2379) did not answer within 5000 ms".into(),
        };
        let (s, body) = render(e.into()).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body.error, "unavailable");
        assert_eq!(
            body.reason,
            "store unavailable: etcd (127.0.0.1:2379) did not answer within 5000 ms"
        );
        // Other store failures stay hidden.
        let e = StoreError::Etcd("refused".into());
        assert_eq!(render(e.into()).await.0, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[tokio::test]
    async fn a_cluster_write_conflict_is_a_409_saying_to_retry() {
        let e = StoreError::Conflict {
            key: "cluster/serial/firewall".into(),
            revision: 42,
            since: 40,
        };
        let (s, body) = render(e.into()).await;
        assert_eq!(s, StatusCode::CONFLICT);
        assert_eq!(body.error, "conflict");
        assert!(
            body.reason.contains("revision 42") && body.reason.ends_with("retry"),
            "{}",
            body.reason
        );
    }

    #[tokio::test]
    async fn field_is_null_when_absent() {
        let r = ApiError::BadRequest {
            field: None,
            reason: "bad JSON".into(),
        }
        .into_response();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": "bad_request", "field": null, "reason": "bad JSON"})
        );
    }
}
