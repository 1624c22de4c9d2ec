//! `GET /metrics`: Prometheus text exposition of the runtime counters plus
//! the REST API's own request counts and latency (DESIGN.md §7).

use super::ApiState;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Request counters by status class (1xx..5xx) and total handling time.
/// Classes, not routes, keep the label set small and fixed.
#[derive(Debug, Default)]
pub struct RestMetrics {
    by_class: [AtomicU64; 5],
    micros: AtomicU64,
}

impl RestMetrics {
    fn record(&self, status: StatusCode, took: Duration) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.by_class[class].fetch_add(1, Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.micros.fetch_add(micros, Relaxed);
    }

    /// Prometheus text for the REST counters.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "# HELP flowgate_rest_requests_total REST requests answered, by status class.\n\
             # TYPE flowgate_rest_requests_total counter"
        );
        for (i, count) in self.by_class.iter().enumerate() {
            let _ = writeln!(
                out,
                "flowgate_rest_requests_total{{code=\"{}xx\"}} {}",
                i + 1,
                count.load(Relaxed)
            );
        }
        let secs = self.micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "# HELP flowgate_rest_request_seconds_total Time spent answering REST requests.\n\
             # TYPE flowgate_rest_request_seconds_total counter\n\
             flowgate_rest_request_seconds_total {secs}"
        );
        out
    }
}

/// Middleware: counts every request and its latency.
pub(super) async fn track(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let response = next.run(req).await;
    state
        .rest_metrics
        .record(response.status(), start.elapsed());
    response
}

/// Runtime counters (when wired), this node's cluster figures (when
/// clustered), then the REST counters.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "core",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4",
        body = String, content_type = "text/plain; version=0.0.4"))
)]
pub(super) async fn metrics(State(state): State<ApiState>) -> Response {
    let mut text = match &state.metrics {
        Some(m) => m.render(state.view.switches().len()),
        None => String::new(),
    };
    if let Some(coordinator) = &state.cluster {
        text.push_str(&crate::cluster::metrics::render(
            &coordinator.status(),
            std::time::Instant::now(),
        ));
    }
    text.push_str(&state.rest_metrics.render());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_status_class() {
        let m = RestMetrics::default();
        m.record(StatusCode::OK, Duration::from_millis(1500));
        m.record(StatusCode::CREATED, Duration::ZERO);
        m.record(StatusCode::NOT_FOUND, Duration::ZERO);
        m.record(StatusCode::GATEWAY_TIMEOUT, Duration::from_millis(500));
        let text = m.render();
        assert!(
            text.contains("flowgate_rest_requests_total{code=\"2xx\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("flowgate_rest_requests_total{code=\"4xx\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("flowgate_rest_requests_total{code=\"5xx\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("flowgate_rest_requests_total{code=\"1xx\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("flowgate_rest_request_seconds_total 2\n"),
            "{text}"
        );
    }
}
