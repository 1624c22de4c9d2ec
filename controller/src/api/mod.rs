//! The REST API (DESIGN.md §5): axum, JSON, under `/api/v1`, with an
//! OpenAPI document at `/api/v1/openapi.json` and Prometheus metrics at
//! `/metrics`.
//!
//! Wiring (in `main`):
//! ```text
//! let state = ApiState::new(view, store, token).with_metrics(runtime.metrics().clone());
//! let app = api::router_with_modules(state, vec![firewall::routes(), lb::routes()]);
//! api::serve(TcpListener::bind(addr).await?, app, shutdown).await?;
//! ```
//! ([`router`] is the same without module routes.)
//!
//! Module endpoints: a module builds an [`OpenApiRouter<ApiState>`] with
//! `#[utoipa::path]`-annotated handlers (paths relative to `/api/v1`, e.g.
//! `/firewall/rules`) registered through `utoipa_axum::routes!`, and hands it
//! to [`router_with_modules`]. A module with its own state builds an
//! `OpenApiRouter<MyState>` and calls `.with_state(my_state)` to turn it into
//! an `OpenApiRouter<ApiState>`. Handlers return `Result<_, ApiError>`, take
//! bodies through [`ApiJson`] and path parameters through [`ApiPath`], so
//! every error has the same shape (see [`error`]). Write routes are covered by
//! the bearer-token check automatically; document them with
//! `security(("bearer" = []))`.
//!
//! Layout: [`view`] (what the runtime exposes), [`error`], [`extract`],
//! [`dpid`], [`render`] (flow text), [`model`] (JSON shapes), handlers in
//! `meta`/`switches`, the token check in `auth`, [`metrics`], and [`serve()`].

mod auth;
mod body;
mod contract;
mod dashboard;
pub mod dpid;
pub mod error;
mod events;
pub mod extract;
mod meta;
pub mod metrics;
pub mod model;
pub mod render;
pub mod server;
mod strict;
mod switches;
pub mod view;
pub mod write;

#[cfg(test)]
mod tests;

pub use error::{ApiError, ErrorBody};
pub use extract::{ApiJson, ApiPath, ApiQuery};
pub use server::{serve, ServerConfig};
pub use strict::strict_field;
pub use utoipa_axum::router::OpenApiRouter;
pub use view::{ControllerView, QueryFuture, SwitchQueryError, SwitchSnapshot};
pub use write::{no_origin, same_id, AppliedInfo, Deleted, DryRun, WriteAnswer};

use crate::runtime::metrics::Metrics;
use crate::store::Store;
use axum::{middleware, Extension, Router};
use metrics::RestMetrics;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::routes;

/// Prefix of every endpoint.
pub const API_PREFIX: &str = "/api/v1";

/// Default of [`ApiState::body_timeout`].
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// What handlers (core and module) share. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    /// The runtime: switches and live stats.
    pub view: Arc<dyn ControllerView>,
    /// Persistent configuration. Calls block briefly (see [`crate::store`]).
    pub store: Arc<dyn Store>,
    /// Process start, for `uptime_secs`.
    pub started: SystemTime,
    /// When set, writes need `Authorization: Bearer <token>`.
    pub auth_token: Option<String>,
    /// With a token: reads need it too (all but health and this document).
    pub auth_reads: bool,
    /// Runtime counters for `/metrics`, when wired.
    pub metrics: Option<Arc<Metrics>>,
    /// The API's own request counters.
    pub rest_metrics: Arc<RestMetrics>,
    /// The runtime's event bus, for `GET /events`, when wired.
    pub bus: Option<crate::events::Bus>,
    /// Time a request body has to arrive whole (408 otherwise).
    pub body_timeout: Duration,
    /// Serve the web dashboard at `/` (on by default; the `dashboard` module).
    pub dashboard: bool,
    /// This node's cluster coordinator, whose figures `/metrics` adds.
    pub cluster: Option<Arc<crate::cluster::EtcdCoordinator>>,
}

impl ApiState {
    /// State with `started` = now. `auth_token`: `None` or empty means
    /// writes need no token.
    pub fn new(
        view: Arc<dyn ControllerView>,
        store: Arc<dyn Store>,
        auth_token: Option<String>,
    ) -> ApiState {
        ApiState {
            view,
            store,
            started: SystemTime::now(),
            auth_token: auth_token.filter(|t| !t.is_empty()),
            auth_reads: false,
            metrics: None,
            rest_metrics: Arc::default(),
            bus: None,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            dashboard: true,
            cluster: None,
        }
    }

    /// Serves the web dashboard at `/` and `/dashboard/` (or not).
    pub fn with_dashboard(mut self, on: bool) -> ApiState {
        self.dashboard = on;
        self
    }

    /// Streams the runtime's events on `GET /events`.
    pub fn with_bus(mut self, bus: crate::events::Bus) -> ApiState {
        self.bus = Some(bus);
        self
    }

    /// Reads need the token too (when one is set).
    pub fn with_read_auth(mut self, reads: bool) -> ApiState {
        self.auth_reads = reads;
        self
    }

    /// Request bodies must arrive whole within `timeout`.
    pub fn with_body_timeout(mut self, timeout: Duration) -> ApiState {
        self.body_timeout = timeout;
        self
    }

    /// Adds this node's cluster figures to `/metrics`.
    pub fn with_cluster(mut self, coordinator: Arc<crate::cluster::EtcdCoordinator>) -> ApiState {
        self.cluster = Some(coordinator);
        self
    }

    /// Exports the runtime's counters on `/metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> ApiState {
        self.metrics = Some(metrics);
        self
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Flowgate REST API",
        description = "OpenFlow 1.3 controller. Errors: `{\"error\", \"field\", \"reason\"}` \
            with 400 for a request that does not have the shape this document gives it \
            (not JSON, a wrong type, a missing or unknown field), 422 for one that has \
            it but a value this document describes only in words is refused (a MAC, a \
            CIDR, fields that contradict each other), 401 without the bearer token where \
            the operation's security asks for it, 404 for unknown switches/resources, \
            408/413/415 for a body that is late, too large or not JSON, 409 for \
            conflicts with the current state, 502/504 when a switch errs or times out, \
            503 `unavailable` when the store (etcd) cannot be reached (the reason names \
            the cause; the write was not acknowledged), 500 (details only in the controller log). \
            A client over its connection limit gets 503 before any request is read."
    ),
    tags(
        (name = "core", description = "Health and this document"),
        (name = "switches", description = "Connected switches, ports and flows"),
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// Declares the `bearer` security scheme; which operations need it is
/// added from the configuration ([`contract`]).
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The core endpoints, relative to [`API_PREFIX`].
fn core_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(meta::health))
        .routes(routes!(meta::openapi_json))
        .routes(routes!(events::stream))
        .routes(routes!(switches::list_switches))
        .routes(routes!(switches::get_switch))
        .routes(routes!(switches::switch_ports))
        .routes(routes!(switches::switch_flows))
}

/// The core application; see [`router_with_modules`].
pub fn router(state: ApiState) -> Router {
    router_with_modules(state, Vec::new())
}

/// The whole HTTP application: core endpoints plus each module's router
/// under [`API_PREFIX`], `/metrics`, the OpenAPI document covering all of
/// them, the web dashboard at `/` (when [`ApiState::dashboard`]), JSON
/// 404/405 fallbacks, the write-auth check, writes that run to completion
/// when their client hangs up, request counting and request tracing.
pub fn router_with_modules(state: ApiState, modules: Vec<OpenApiRouter<ApiState>>) -> Router {
    router_with(state, modules, Vec::new())
}

/// [`router_with_modules`] plus `root` routers mounted outside
/// [`API_PREFIX`] (compatibility endpoints of other controllers' APIs,
/// such as Floodlight's `/wm/qos/...`), under the same auth and counting.
pub fn router_with(
    state: ApiState,
    modules: Vec<OpenApiRouter<ApiState>>,
    root: Vec<OpenApiRouter<ApiState>>,
) -> Router {
    let core = core_routes();
    let clashes = contract::clashes(
        std::iter::once(&core)
            .chain(&modules)
            .chain(&root)
            .map(OpenApiRouter::get_openapi),
    );
    assert!(
        clashes.is_empty(),
        "different OpenAPI schemas under one name: {clashes:?}; rename one with #[schema(as = ...)]"
    );
    let v1 = modules.into_iter().fold(core, OpenApiRouter::merge);
    let top = root.into_iter().fold(
        OpenApiRouter::with_openapi(ApiDoc::openapi()).routes(routes!(metrics::metrics)),
        OpenApiRouter::merge,
    );
    let (app, mut doc) = top.nest(API_PREFIX, v1).split_for_parts();
    contract::complete(&mut doc, |method, path| {
        state.auth_token.is_some() && auth::needs_token(state.auth_reads, method, path)
    });
    let app = if state.dashboard {
        app.merge(dashboard::routes())
    } else {
        app
    };
    app.fallback(meta::no_route)
        .method_not_allowed_fallback(meta::wrong_method)
        .layer(middleware::from_fn(write::run_to_completion))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            body::read_in_time,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(Extension(Arc::new(doc)))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
