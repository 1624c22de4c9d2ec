//! The host-aware module on the core: it owns the configuration (settings,
//! monitored hosts, rules), stages every change with its store writes, and
//! publishes a [`Plan`] (configuration and topology) to its runner task,
//! which does everything that waits: polling sources and acting through
//! other modules' services. It declares no flows of its own.

use std::sync::Arc;

use flowgate_controller::cookie::Owner;
use flowgate_controller::module::{Ctx, Event, Followed, Module, StoreSync};
use flowgate_controller::policy::FieldError;
use flowgate_controller::runtime::tasks::{Task, TaskCtx};
use flowgate_controller::service::{check_owner, Origin, Staged};
use flowgate_controller::topology::TopologyView;
use flowgate_firewall::FirewallService;
use flowgate_loadbalancer::LoadBalancerService;
use flowgate_qos::QosService;
use tokio::sync::watch;
use tracing::warn;

use crate::actions::Modules;
use crate::audit::AuditLog;
use crate::metrics::LiveMetrics;
use crate::model::{Config, MonitoredHost, Rule, Settings};
use crate::persist;
use crate::runner::{Plan, Runner};
use crate::status::Board;

/// A change to the configuration.
#[derive(Debug, Clone)]
pub enum HostAwareOp {
    PutSettings(Settings),
    PutHost(MonitoredHost),
    DeleteHost(String),
    PutRule(Rule),
    DeleteRule(u32),
}

/// Why a change is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum HostAwareError {
    /// A value refused, or fields that contradict each other (422).
    Invalid(FieldError),
    /// Clashes with what exists (409).
    Conflict(FieldError),
    /// Refers to something that does not exist (404).
    Missing(FieldError),
}

impl From<FieldError> for HostAwareError {
    fn from(e: FieldError) -> Self {
        HostAwareError::Invalid(e)
    }
}

pub struct HostAware {
    config: Config,
    view: Arc<TopologyView>,
    plans: watch::Sender<Plan>,
    board: Board,
}

impl HostAware {
    /// The module with `config` (from [`persist::load`]).
    pub fn new(config: Config) -> HostAware {
        let plan = Plan {
            config: config.clone(),
            view: Arc::default(),
        };
        HostAware {
            config,
            view: Arc::default(),
            plans: watch::channel(plan).0,
            board: Board::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// What the runner knows now (values, reactions), for REST.
    pub fn board(&self) -> Board {
        self.board.clone()
    }

    pub fn view(&self) -> &Arc<TopologyView> {
        &self.view
    }

    fn publish(&self) {
        self.plans.send_replace(Plan {
            config: self.config.clone(),
            view: self.view.clone(),
        });
    }

    /// Whether `op`, asked for by `by`, may be applied now.
    pub fn check(&self, op: &HostAwareOp, by: &Origin) -> Result<(), HostAwareError> {
        let c = &self.config;
        match op {
            HostAwareOp::PutSettings(s) => Ok(s.validate()?),
            HostAwareOp::PutHost(h) => {
                h.validate()?;
                for rule in c.rules.values() {
                    rule.check_hosts([h]).map_err(|e| {
                        HostAwareError::Conflict(FieldError::new(
                            "ip",
                            format!("rule {} acts on this host: {}", rule.id, e.reason),
                        ))
                    })?;
                }
                Ok(())
            }
            HostAwareOp::DeleteHost(id) => c
                .hosts
                .contains_key(id)
                .then_some(())
                .ok_or_else(|| missing("host", id)),
            HostAwareOp::PutRule(r) => {
                r.validate()?;
                if let Some(old) = c.rules.get(&r.id) {
                    owned(old, by)?;
                }
                r.check_hosts(c.hosts.values())
                    .map_err(HostAwareError::Conflict)
            }
            HostAwareOp::DeleteRule(id) => match c.rules.get(id) {
                None => Err(missing("rule", id)),
                Some(old) => owned(old, by),
            },
        }
    }

    /// Validates, applies and persists `op`; the staged write undoes itself.
    pub fn stage(
        &mut self,
        op: HostAwareOp,
        by: &Origin,
        ctx: &mut Ctx,
    ) -> Result<Staged<HostAware, ()>, HostAwareError> {
        self.check(&op, by)?;
        let undo = self.apply(op, ctx);
        Ok(Staged::new((), move |m: &mut HostAware, ctx| {
            m.apply(undo, ctx);
        }))
    }

    /// Applies a checked `op`; returns the operation that undoes it.
    fn apply(&mut self, op: HostAwareOp, ctx: &mut Ctx) -> HostAwareOp {
        match persist::ops(&op) {
            Ok(ops) => ctx.persist(ops),
            Err(e) => warn!(error = %e, "could not encode a host-aware change for the store"),
        }
        let c = &mut self.config;
        let undo = match op {
            HostAwareOp::PutSettings(s) => {
                HostAwareOp::PutSettings(std::mem::replace(&mut c.settings, s))
            }
            HostAwareOp::PutHost(h) => {
                let id = h.id.clone();
                match c.hosts.insert(id.clone(), h) {
                    Some(old) => HostAwareOp::PutHost(old),
                    None => HostAwareOp::DeleteHost(id),
                }
            }
            HostAwareOp::DeleteHost(id) => match c.hosts.remove(&id) {
                Some(old) => HostAwareOp::PutHost(old),
                None => HostAwareOp::DeleteHost(id),
            },
            HostAwareOp::PutRule(r) => {
                let id = r.id;
                match c.rules.insert(id, r) {
                    Some(old) => HostAwareOp::PutRule(old),
                    None => HostAwareOp::DeleteRule(id),
                }
            }
            HostAwareOp::DeleteRule(id) => match c.rules.remove(&id) {
                Some(old) => HostAwareOp::PutRule(old),
                None => HostAwareOp::DeleteRule(id),
            },
        };
        self.publish();
        undo
    }

    /// The next free rule id.
    pub fn next_rule_id(&self) -> Option<u32> {
        match self.config.rules.keys().next_back() {
            None => Some(1),
            Some(last) => last.checked_add(1),
        }
    }
}

fn missing(kind: &str, id: impl std::fmt::Display) -> HostAwareError {
    HostAwareError::Missing(FieldError::new("id", format!("no host-aware {kind} {id}")))
}

fn owned(rule: &Rule, by: &Origin) -> Result<(), HostAwareError> {
    check_owner(rule.origin.as_ref(), by).map_err(|reason| {
        HostAwareError::Conflict(FieldError::new(
            "origin",
            format!("rule {} is {reason}", rule.id),
        ))
    })
}

impl Module for HostAware {
    fn owner(&self) -> Owner {
        Owner::HostAware
    }

    fn handle(&mut self, event: &Event<'_>, _ctx: &mut Ctx) {
        if let Event::Notice {
            from: Owner::Topology,
            payload,
        } = event
        {
            if let Some(view) = payload.downcast_ref::<Arc<TopologyView>>() {
                self.view = view.clone();
                self.publish();
            }
        }
    }

    /// The runner: polls, evaluates, acts through the firewall, QoS and
    /// the load balancer.
    fn tasks(&mut self) -> Vec<Task> {
        let plans = self.plans.subscribe();
        let board = self.board.clone();
        vec![Task::new(
            "hostaware-runner",
            move |mut ctx: TaskCtx| async move {
                let runtime = ctx.runtime().clone();
                let keep = plans.borrow().config.settings.keep_events;
                let audit =
                    AuditLog::open(runtime.store().clone(), Some(runtime.bus().clone()), keep);
                let modules = Modules {
                    firewall: FirewallService::new(runtime.clone()),
                    qos: QosService::new(runtime.clone()),
                    lb: LoadBalancerService::new(runtime.clone()),
                };
                let metrics = LiveMetrics::new(runtime.clone());
                let runner = Runner::new(metrics, modules, runtime.store().clone(), audit, board);
                let acting = move || runtime.is_cluster_actor();
                runner
                    .run(plans, acting, async move { ctx.stopped().await })
                    .await;
            },
        )]
    }

    fn followed_prefixes(&self) -> Vec<&'static str> {
        follow::FOLLOWED.to_vec()
    }

    fn follow_store(&mut self, sync: &StoreSync, ctx: &mut Ctx) -> Followed {
        self.follow(sync, ctx)
    }
}

mod follow;
#[cfg(test)]
mod tests;
