//! QoS: queues provisioned on ports, policies that enqueue, meter or mark
//! flows — on one switch, on every switch, or along the path between two
//! hosts (placed again when the path moves).
//!
//! - [`model`]: profiles (a port's QoS and its queues), bindings (where a
//!   profile applies), policies; their validation.
//! - [`config`]: the checks that span resources (references, overlaps,
//!   queues a policy needs where its packets leave).
//! - [`compile`]: the pure compiler, policy → `qos` table entries and a
//!   meter per switch, and placement.
//! - [`ports`]: profiles on ports over OVSDB — the hosts' ports, and the
//!   QoS and Queue rows each binding declares to the shared OVSDB
//!   reconciler.
//! - [`module`]: the module owning the configuration, the `qos` table and
//!   the meters; it stages every change.
//! - [`service`]: [`QosService`], for REST and other modules
//!   ([`QosService::rate_limit`]).
//! - [`api`]: `/api/v1/qos/...`; [`floodlight`]: Floodlight's
//!   `/wm/qos/...` for existing scripts; [`persist`]: store layout.
//!
//! Wiring:
//! ```text
//! let qos = Qos::new(flowgate_qos::persist::load(store.as_ref())?).with_ovsdb(&reconciler, hosts);
//! modules.push(Box::new(qos));
//! // after Runtime::start:
//! let qos = QosService::new(runtime.clone());
//! api::router_with(state, vec![flowgate_qos::api::routes(qos.clone())],
//!                  vec![flowgate_qos::floodlight::routes(qos)]);
//! ```

pub mod api;
pub mod compile;
pub mod config;
pub mod floodlight;
pub mod model;
pub mod module;
pub mod persist;
pub mod ports;
pub mod service;

pub use config::QosConfig;
pub use module::Qos;
pub use service::QosService;
