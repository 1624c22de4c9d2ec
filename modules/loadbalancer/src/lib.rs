//! Flow-hash load balancing in the switches: VIPs in front of pools of
//! weighted members, health-checked through the data plane,
//! connection-sticky through conntrack (issue 15).
//!
//! An OpenFlow 1.3 select group per VIP hashes each new connection to a
//! member; the bucket commits the connection to Open vSwitch's conntrack
//! with NAT to that member, so every later packet of the connection follows
//! it without touching the group, replies are un-NATed back to the VIP,
//! and changing buckets (membership, weights, health) moves no established
//! connection. The controller only reprograms buckets, in place (MODIFY).
//!
//! - [`model`]: VIPs, pools and members, monitors; validation.
//! - [`compile`]: the pure compiler to the `lb` table (table 3) and the
//!   VIP groups (layout in its docs).
//! - [`health`]: the probe state machine (TCP, HTTP, ICMP; rise/fall),
//!   pure, driven by a simulated clock in tests; [`probe`]: the frames.
//! - [`leastconn`]: weights from live connection counts, the sampler task,
//!   and the weighted pick session affinity uses.
//! - [`module`]: the [`LoadBalancer`] module; [`service`]:
//!   [`LoadBalancerService`], the one way to read and change it (REST and
//!   other modules: drain, weights); [`api`]: `/api/v1/lb/...`;
//!   [`persist`]: store layout.
//!
//! Wiring:
//! ```text
//! let loaded = flowgate_loadbalancer::persist::load(store.as_ref())?;
//! modules.push(Box::new(LoadBalancer::new(settings, loaded)));
//! // after Runtime::start:
//! let routes = flowgate_loadbalancer::routes(LoadBalancerService::new(runtime.clone()));
//! ```

pub mod api;
pub mod compile;
pub mod health;
pub mod leastconn;
pub mod model;
pub mod module;
pub mod persist;
pub mod probe;
pub mod service;

pub use api::routes;
pub use model::{AdminState, Member, MemberKey, Method, Monitor, MonitorType, Pool, Protocol, Vip};
pub use module::{LoadBalancer, Settings};
pub use service::LoadBalancerService;
