//! Health, the OpenAPI document, and the JSON fallbacks for unknown routes.

use super::error::ApiError;
use super::model::Health;
use super::ApiState;
use axum::extract::{Extension, State};
use axum::http::Uri;
use axum::Json;
use std::sync::Arc;
use std::time::SystemTime;
use utoipa::openapi::OpenApi;

/// Liveness and a one-line summary.
#[utoipa::path(
    get,
    path = "/health",
    tag = "core",
    responses((status = 200, description = "The controller is up", body = Health))
)]
pub(super) async fn health(State(state): State<ApiState>) -> Json<Health> {
    let uptime = SystemTime::now()
        .duration_since(state.started)
        .unwrap_or_default();
    Json(Health {
        status: "ok".into(),
        switches: state.view.switches().len(),
        uptime_secs: uptime.as_secs(),
    })
}

/// This API's OpenAPI 3 document, including every module's endpoints.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "core",
    responses((status = 200, description = "The OpenAPI document", body = Object,
        content_type = "application/json"))
)]
pub(super) async fn openapi_json(Extension(doc): Extension<Arc<OpenApi>>) -> Json<OpenApi> {
    Json(OpenApi::clone(&doc))
}

/// Unknown route: 404 in the error shape instead of axum's empty body.
pub(super) async fn no_route(uri: Uri) -> ApiError {
    ApiError::NotFound {
        field: None,
        reason: format!("no such endpoint: {}", uri.path()),
    }
}

/// Known route, wrong method.
pub(super) async fn wrong_method() -> ApiError {
    ApiError::MethodNotAllowed
}
