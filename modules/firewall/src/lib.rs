//! The firewall: ACL rules compiled proactively into the pipeline's `acl`
//! table (table 1), so a rule holds from the moment its REST call returns —
//! no packet-in decides anything.
//!
//! - [`rule`]: the rule schema (REST body, bootstrap file, store) and its
//!   validation; [`config`]: policy, rule set, same-priority overlap check.
//! - [`compile`]: the pure compiler, rules → flow entries per switch.
//! - [`module`]: the runtime module owning the configuration and the ACL
//!   table; it stages every change (validate, persist, declare, undo).
//! - [`service`]: [`FirewallService`], the one way to read and change the
//!   firewall, for its REST handlers and for other modules.
//! - [`api`]: `/api/v1/firewall/...`; [`persist`]: store layout and
//!   `--firewall-rules` loading.
//!
//! Stateless rules allow or deny; `allow-related` rules commit connections
//! to Open vSwitch's conntrack (Nicira `ct` actions) so replies and related
//! packets pass while the other side still cannot open connections. See
//! [`compile`] for the priority layout.
//!
//! Wiring:
//! ```text
//! let config = flowgate_firewall::load(store.as_ref(), rules_file)?;
//! modules.push(Box::new(Firewall::new(config)));
//! // after Runtime::start:
//! let firewall = FirewallService::new(runtime.clone());
//! let routes = flowgate_firewall::routes(firewall.clone());
//! ```

pub mod api;
pub mod compile;
pub mod config;
pub mod module;
pub mod persist;
pub mod rule;
pub mod service;

pub use api::routes;
pub use config::{DefaultAction, FirewallConfig, Policy, RuleSet};
pub use module::Firewall;
pub use persist::load;
pub use rule::{Rule, RuleAction};
pub use service::FirewallService;
