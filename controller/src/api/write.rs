//! What every module's write endpoints share: the `?dry_run=` query, the
//! `applied` part of an answer, the mapping of a service's [`WriteError`]
//! to HTTP, and [`run_to_completion`]: a write the client stops waiting
//! for still finishes.

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::dpid::format_dpid;
use super::view::SwitchQueryError;
use super::ApiError;
use crate::service::{Origin, WriteError, Written};

/// `?dry_run=true`: validate and answer with the object as it would be
/// stored, changing nothing. No other query parameter is accepted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DryRun {
    /// Validate only; store and send nothing.
    #[serde(default)]
    pub dry_run: bool,
}

impl DryRun {
    /// Parses a query string strictly (`true`/`1`/`false`/`0`, no other
    /// parameter), naming the parameter at fault.
    pub fn parse(query: Option<&str>) -> Result<DryRun, ApiError> {
        let mut dry = DryRun::default();
        for pair in query.unwrap_or("").split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, "true"));
            match key {
                "" => {}
                "dry_run" => {
                    dry.dry_run = match value {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => {
                            return Err(ApiError::bad_field(
                                "dry_run",
                                format!("expected true or false, got {value:?}"),
                            ))
                        }
                    }
                }
                other => {
                    return Err(ApiError::bad_field(
                        other,
                        "unknown query parameter (only dry_run)",
                    ))
                }
            }
        }
        Ok(dry)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for DryRun {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        DryRun::parse(parts.uri.query())
    }
}

/// Middleware: a request that may change something (any method but GET,
/// HEAD, OPTIONS) runs in its own task, from its handler's validation
/// through the service's write, its confirmation and the announcement of
/// the change, to the answer. An HTTP client that hangs up drops only the
/// wait for that answer: the write is never cut between two of its steps
/// (issue 19 item 6: a firewall rule stored and enforced but missing from
/// the service's view until a restart). Runs after the body was read and
/// the token checked, so nothing is spawned for a request refused there.
pub(super) async fn run_to_completion(req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    match tokio::spawn(next.run(req)).await {
        Ok(response) => response,
        Err(e) => ApiError::internal(anyhow::anyhow!("a write's task failed: {e}")).into_response(),
    }
}

/// What a write did on the switches (`applied` in every write answer;
/// null for a dry run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AppliedInfo {
    /// Switches that confirmed the change (barrier reply), colon form,
    /// sorted. In a cluster this includes the switches another controller
    /// masters, once that controller applied the write and its switches
    /// confirmed it.
    pub switches: Vec<String>,
    /// Switches that did not confirm in time; they get the change with the
    /// next reconciliation (at the latest when they reconnect).
    pub unconfirmed: Vec<String>,
    /// Flow entries of the written resource on connected switches (of the
    /// whole module for bulk and policy writes).
    #[schema(minimum = 0)]
    pub flows: u64,
    /// Flow, group and meter changes sent (on all switches) by this
    /// write; unchanged entries are not sent again.
    #[schema(minimum = 0)]
    pub flow_changes: u64,
    /// Controller time validating, compiling and diffing the write, in
    /// milliseconds (the core's work; the switches' confirmation is not in it).
    pub compile_ms: f64,
}

impl AppliedInfo {
    /// The answer's `applied` for a confirmed write whose resource has
    /// `flows` entries on connected switches.
    pub fn of<R>(written: &Written<R>, flows: usize) -> AppliedInfo {
        let dpids = |v: &[u64]| v.iter().copied().map(format_dpid).collect();
        AppliedInfo {
            switches: dpids(&written.confirmed),
            unconfirmed: dpids(&written.unconfirmed),
            flows: flows as u64,
            flow_changes: written.sent.total(),
            compile_ms: written.core_time.as_secs_f64() * 1000.0,
        }
    }
}

/// A written resource and what the write did on the switches (`applied`
/// is null for a dry run).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WriteAnswer<T> {
    #[serde(flatten)]
    pub value: T,
    pub applied: Option<AppliedInfo>,
}

impl<T> WriteAnswer<T> {
    /// 201 for a resource a (non-dry-run) write created, else 200.
    pub fn reply(
        value: T,
        created: bool,
        written: Option<&Written<()>>,
    ) -> (StatusCode, Json<WriteAnswer<T>>) {
        let status = if created && written.is_some() {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let applied = written.map(|w| AppliedInfo::of(w, 0));
        (status, Json(WriteAnswer { value, applied }))
    }
}

/// A deletion's answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Deleted {
    pub deleted: String,
    pub applied: AppliedInfo,
}

impl Deleted {
    pub fn reply(id: impl ToString, written: &Written<()>) -> Json<Deleted> {
        Json(Deleted {
            deleted: id.to_string(),
            applied: AppliedInfo::of(written, 0),
        })
    }
}

/// A REST client may not claim a module's origin (`origin` is read-only).
pub fn no_origin(origin: &Option<Origin>) -> Result<(), ApiError> {
    match origin {
        Some(_) => Err(ApiError::invalid(
            "origin",
            "set by the controller for resources modules create; leave it out",
        )),
        None => Ok(()),
    }
}

/// A body's id must be absent (default) or the path's; it becomes the path's.
pub fn same_id<T: PartialEq + std::fmt::Display + Default>(
    body: &mut T,
    path: T,
) -> Result<(), ApiError> {
    if *body != T::default() && *body != path {
        return Err(ApiError::invalid(
            "id",
            format!("the body's id {body} differs from the path's {path}"),
        ));
    }
    *body = path;
    Ok(())
}

impl<E: Into<ApiError>> From<WriteError<E>> for ApiError {
    fn from(e: WriteError<E>) -> ApiError {
        match e {
            WriteError::Invalid(e) => e.into(),
            WriteError::Rejected(rejections) => {
                let list: Vec<String> = rejections.iter().map(ToString::to_string).collect();
                ApiError::Switch(SwitchQueryError::SwitchError(format!(
                    "the change was rolled back because a switch rejected it: {}",
                    list.join("; ")
                )))
            }
            WriteError::Store(e) => e.into(),
            WriteError::Stopped => {
                ApiError::internal(anyhow::anyhow!("the controller is stopping"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_write_goes_on_when_its_caller_stops_waiting_a_read_does_not() {
        let (wrote, read) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let slow = |done: Arc<AtomicBool>| {
            move || async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                done.store(true, Ordering::SeqCst);
            }
        };
        let app = axum::Router::new()
            .route(
                "/x",
                axum::routing::post(slow(wrote.clone())).get(slow(read.clone())),
            )
            .layer(axum::middleware::from_fn(run_to_completion));
        for method in [Method::POST, Method::GET] {
            let req = axum::http::Request::builder()
                .method(method)
                .uri("/x")
                .body(axum::body::Body::empty())
                .unwrap();
            let call = app.clone().oneshot(req);
            assert!(tokio::time::timeout(Duration::from_millis(20), call)
                .await
                .is_err());
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(wrote.load(Ordering::SeqCst), "the write was cut short");
        assert!(
            !read.load(Ordering::SeqCst),
            "a read runs only while awaited"
        );
    }

    #[test]
    fn dry_run_parses_strictly() {
        assert!(!DryRun::parse(None).unwrap().dry_run);
        assert!(DryRun::parse(Some("dry_run=true")).unwrap().dry_run);
        assert!(DryRun::parse(Some("dry_run")).unwrap().dry_run);
        assert!(!DryRun::parse(Some("dry_run=0")).unwrap().dry_run);
        let bad = DryRun::parse(Some("dry_run=maybe")).unwrap_err();
        assert!(matches!(bad, ApiError::BadRequest { field: Some(f), .. } if f == "dry_run"));
        let unknown = DryRun::parse(Some("verbose=1")).unwrap_err();
        assert!(matches!(unknown, ApiError::BadRequest { field: Some(f), .. } if f == "verbose"));
    }
}
