//! Request bodies arrive whole, within a deadline and a size limit, before
//! any handler runs: a client trickling its body (one byte every few
//! seconds) holds its connection for at most the deadline.

use super::error::ApiError;
use super::ApiState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::LengthLimitError;
use std::error::Error as _;

/// Largest request body (a bulk replace of 10,000 firewall rules is 1 MiB).
pub const MAX_BODY: usize = 2 << 20;

/// Middleware: reads the whole body under [`ApiState::body_timeout`] and
/// [`MAX_BODY`] (408 and 413 otherwise), then hands it on.
pub(super) async fn read_in_time(
    State(state): State<ApiState>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let read = axum::body::to_bytes(body, MAX_BODY);
    match tokio::time::timeout(state.body_timeout, read).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(e)) if e.source().is_some_and(|s| s.is::<LengthLimitError>()) => {
            ApiError::PayloadTooLarge(format!("the body is over {MAX_BODY} bytes")).into_response()
        }
        Ok(Err(e)) => ApiError::BadRequest {
            field: None,
            reason: format!("reading the body: {e}"),
        }
        .into_response(),
        Err(_) => ApiError::RequestTimeout(format!(
            "the body did not arrive within {} s",
            state.body_timeout.as_secs_f64()
        ))
        .into_response(),
    }
}
