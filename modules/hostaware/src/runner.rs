//! The module's background task: polls what the rules need when they are
//! due, runs the engine, and converges the reactions in place on what the
//! engine wants — applying and reverting through the owning modules,
//! recording each in the store and the audit trail.
//!
//! It also sets the weights of load-aware pools ([`crate::loadaware`]).
//!
//! Restart: reactions in place are read back (the store's records, checked
//! against the resources the modules hold; resources whose record was lost
//! in a crash are adopted by their origin) and marked active in the engine,
//! so nothing is applied again and nothing reverts until the metric says so.
//!
//! Clustered, one node acts for the cluster (`Runtime::is_cluster_actor`,
//! `flowgate_cluster::actor`): the reactions are resources of the shared
//! configuration, so every node's runner acting on the same metric would
//! apply each of them once per node. The others stand by: they poll nothing,
//! apply nothing, write no audit event, and follow the actor's records in
//! the store (so REST lists the reactions on every node; metric values
//! only on the actor's). A node that
//! becomes the actor starts as a restarted controller does, from those
//! records; one that stops forgets what its engine knew and stands by.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use flowgate_controller::store::{Op, Store, StoreExt};
use flowgate_controller::topology::TopologyView;
use tokio::sync::watch;
use tracing::warn;

use flowgate_loadbalancer::model::LoadAware;
use flowgate_loadbalancer::{Member, MemberKey, Pool};

use crate::actions::{self, Actuator, Resource};
use crate::audit::{AuditEvent, AuditLog, Kind};
use crate::engine::{Engine, Reading, Transition};
use crate::loadaware;
use crate::metrics::{Metrics, Want};
use crate::model::{Config, MonitoredHost, Rule, Slot};
use crate::status::{Board, Reaction};

pub const REACTIONS: &str = "hostaware/reactions/";

/// How often the runner wakes to see what is due.
pub const TICK: Duration = Duration::from_secs(1);
/// How long a failed action waits before it is tried again.
pub const RETRY: Duration = Duration::from_secs(30);

/// What the runner works from; the module publishes a new one whenever
/// its configuration or the topology changes.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub config: Config,
    pub view: Arc<TopologyView>,
}

fn reaction_key(host: &str, slot: Slot) -> String {
    let slot = actions::origin(0, host, slot);
    // The origin's last segment names the slot.
    let name = slot.as_str().rsplit('/').next().unwrap_or_default();
    format!("{REACTIONS}{host}/{name}")
}

pub struct Runner<M: Metrics, A: Actuator> {
    metrics: M,
    actuator: A,
    store: Arc<dyn Store>,
    audit: AuditLog,
    board: Board,
    engine: Engine,
    plan: Plan,
    /// Reactions in place, by (host, slot).
    applied: BTreeMap<(String, Slot), Reaction>,
    /// Rule → when it is polled next.
    due: BTreeMap<u32, SystemTime>,
    /// (host, slot) → no new attempt before this (a failed apply).
    backoff: BTreeMap<(String, Slot), SystemTime>,
    /// Load-aware pools: when each is read next, its members' smoothed
    /// weights, and the pools whose last round was already reported as
    /// failing.
    balance_due: BTreeMap<String, SystemTime>,
    smoothed: BTreeMap<(String, MemberKey), f64>,
    balance_failing: BTreeSet<String>,
    /// This node acts for the cluster (see the module docs).
    acting: bool,
}

impl<M: Metrics, A: Actuator> Runner<M, A> {
    pub fn new(
        metrics: M,
        actuator: A,
        store: Arc<dyn Store>,
        audit: AuditLog,
        board: Board,
    ) -> Self {
        Runner {
            metrics,
            actuator,
            store,
            audit,
            board,
            engine: Engine::default(),
            plan: Plan::default(),
            applied: BTreeMap::new(),
            due: BTreeMap::new(),
            backoff: BTreeMap::new(),
            balance_due: BTreeMap::new(),
            smoothed: BTreeMap::new(),
            balance_failing: BTreeSet::new(),
            acting: true,
        }
    }

    /// This node starts or stops acting for the cluster (see the module
    /// docs).
    pub async fn set_acting(&mut self, acting: bool, now: SystemTime) {
        if acting == self.acting {
            return;
        }
        self.acting = acting;
        if acting {
            self.audit.resume();
            self.restore(now).await;
        } else {
            self.engine = Engine::default();
            self.due.clear();
            self.backoff.clear();
            self.balance_due.clear();
            self.smoothed.clear();
            self.balance_failing.clear();
            // Values this node polled while it acted would only grow stale.
            if let Ok(mut board) = self.board.write() {
                board.metrics.clear();
                board.history.clear();
            }
            self.follow_records();
            self.publish();
        }
    }

    /// Standing by: the reactions in place are the actor's records.
    fn follow_records(&mut self) {
        match self.store.list_json::<Reaction>(REACTIONS) {
            Ok(list) => {
                self.applied = list
                    .into_iter()
                    .map(|(_, r)| ((r.host.clone(), r.slot), r))
                    .collect();
            }
            Err(e) => warn!(error = %e, "could not read host-aware reactions"),
        }
    }

    /// Reads back the reactions in place (see the module docs).
    pub async fn restore(&mut self, now: SystemTime) {
        self.applied.clear();
        let mut records: BTreeMap<(String, Slot), Reaction> =
            match self.store.list_json::<Reaction>(REACTIONS) {
                Ok(list) => list
                    .into_iter()
                    .map(|(_, r)| ((r.host.clone(), r.slot), r))
                    .collect(),
                Err(e) => {
                    warn!(error = %e, "could not read host-aware reactions");
                    BTreeMap::new()
                }
            };
        let existing = match self.actuator.existing().await {
            Ok(existing) => existing,
            Err(e) => {
                // Without the modules' view, trust the records.
                warn!(error = %e, "could not list host-aware resources; keeping the records");
                self.install(records);
                return;
            }
        };
        let held: BTreeSet<&Resource> = existing.iter().map(|(_, r)| r).collect();
        // A record whose resources are all gone was reverted before a crash.
        records
            .retain(|_, r| r.resources.is_empty() || r.resources.iter().any(|x| held.contains(x)));
        let recorded: BTreeSet<Resource> = records
            .values()
            .flat_map(|r| r.resources.iter().cloned())
            .collect();
        for (origin, resource) in existing {
            if recorded.contains(&resource) {
                continue;
            }
            let Some((rule, host, slot)) = actions::parse_origin(&origin) else {
                continue;
            };
            let adopted = records
                .entry((host.clone(), slot))
                .or_insert_with(|| Reaction {
                    rule,
                    host: host.clone(),
                    slot,
                    action: "adopted".into(),
                    since: now,
                    resources: Vec::new(),
                });
            adopted.resources.push(resource);
        }
        self.install(records);
    }

    fn install(&mut self, records: BTreeMap<(String, Slot), Reaction>) {
        for (key, reaction) in records {
            self.engine
                .restore(reaction.rule, &reaction.host, reaction.since);
            self.persist(&reaction);
            self.applied.insert(key, reaction);
        }
        self.publish();
    }

    /// Takes a new plan: forgets rules and hosts that went away.
    pub fn set_plan(&mut self, plan: Plan) {
        self.audit.set_keep(plan.config.settings.keep_events);
        let config = &plan.config;
        let enabled = config.settings.enabled;
        self.engine.retain(|(rule, host)| {
            enabled
                && config.rules.get(rule).is_some_and(|r| {
                    r.enabled && config.hosts.get(host).is_some_and(|h| r.hosts.matches(h))
                })
        });
        self.due.retain(|id, _| config.rules.contains_key(id));
        self.plan = plan;
    }

    /// One round: poll the due rules, expire, converge.
    pub async fn tick(&mut self, now: SystemTime) {
        if !self.acting {
            self.follow_records();
            self.publish();
            return;
        }
        let config = self.plan.config.clone();
        if config.settings.enabled {
            self.poll(&config, now).await;
            for ((rule, host), t) in self.engine.expire(&config.rules, now) {
                if let Some(rule) = config.rules.get(&rule) {
                    self.transition(rule, &host, t, now);
                }
            }
        }
        self.converge(&config, now).await;
        if config.settings.enabled {
            self.balance(&config, now).await;
        }
        self.publish();
    }

    /// Load-aware pools (see [`crate::loadaware`]): reads the members'
    /// metric of each pool that is due and writes the weights that moved.
    async fn balance(&mut self, config: &Config, now: SystemTime) {
        let pools = match self.actuator.load_aware_pools().await {
            Ok(pools) => pools,
            Err(e) => {
                warn!(error = %e, "could not list load-aware pools");
                return;
            }
        };
        let ids: BTreeSet<String> = pools.iter().map(|p| p.id.clone()).collect();
        self.balance_due.retain(|id, _| ids.contains(id));
        self.balance_failing.retain(|id| ids.contains(id));
        self.smoothed.retain(|(id, _), _| ids.contains(id));
        for pool in pools {
            let Some(cfg) = pool.load_aware.clone() else {
                continue;
            };
            let next = self.balance_due.entry(pool.id.clone()).or_insert(now);
            if *next > now {
                continue;
            }
            *next = now + Duration::from_secs(cfg.interval_s);
            if let Err(e) = self.balance_pool(config, &pool, &cfg, now).await {
                if self.balance_failing.insert(pool.id.clone()) {
                    let event = AuditEvent::new(
                        Kind::Warn,
                        format!(
                            "load-aware pool {}: {e}; its weights stay as they are",
                            pool.id
                        ),
                    );
                    self.audit.record(event, now);
                }
            } else {
                self.balance_failing.remove(&pool.id);
            }
        }
    }

    async fn balance_pool(
        &mut self,
        config: &Config,
        pool: &Pool,
        cfg: &LoadAware,
        now: SystemTime,
    ) -> Result<(), String> {
        let metric = loadaware::metric(cfg)?;
        // Members a host-aware rule holds are that rule's.
        let members: Vec<&Member> = pool.members.iter().filter(|m| m.held.is_none()).collect();
        if members.is_empty() {
            return Ok(());
        }
        let wants = members
            .iter()
            .map(|m| Want {
                host: loadaware::host_of(config, m.address),
                metric: metric.clone(),
                consolidation: Default::default(),
                window: Duration::ZERO,
            })
            .collect::<Vec<_>>();
        let hosts: Vec<MonitoredHost> = wants.iter().map(|w| w.host.clone()).collect();
        let readings = self
            .metrics
            .read(wants, config.settings.clone(), self.plan.view.clone(), now)
            .await;
        let mut weights = BTreeMap::new();
        let mut moves = Vec::new();
        let mut failed = Vec::new();
        for ((member, host), reading) in members.iter().zip(&hosts).zip(readings) {
            if config.hosts.contains_key(&host.id) {
                self.board_record(&host.id, &metric.to_string(), &reading);
            }
            let value = match reading {
                Ok(sample) => sample.value,
                // A rate's first poll: normal, the next one has it.
                Err(crate::sources::SourceError::NotYet(_)) => continue,
                Err(e) => {
                    failed.push(format!("{}: {e}", member.key()));
                    continue;
                }
            };
            let key = (pool.id.clone(), member.key());
            let (smoothed, set) =
                loadaware::step(cfg, value, self.smoothed.get(&key).copied(), member.weight);
            self.smoothed.insert(key, smoothed);
            if let Some(w) = set {
                weights.insert(member.key(), w);
                moves.push(format!(
                    "{} {}→{w} ({metric} {value})",
                    member.key(),
                    member.weight
                ));
            }
        }
        if !weights.is_empty() && self.actuator.set_load_weights(&pool.id, weights).await? {
            let event = AuditEvent::new(
                Kind::Info,
                format!("load-aware pool {}: {}", pool.id, moves.join(", ")),
            );
            self.audit.record(event, now);
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(format!("no value for {}", failed.join("; ")))
        }
    }

    fn rules_due(&mut self, config: &Config, now: SystemTime) -> Vec<Rule> {
        let mut out = Vec::new();
        for rule in config.rules.values().filter(|r| r.enabled) {
            let next = self.due.entry(rule.id).or_insert(now);
            if *next <= now {
                *next = now + rule.interval();
                out.push(rule.clone());
            }
        }
        out
    }

    async fn poll(&mut self, config: &Config, now: SystemTime) {
        let mut asked: Vec<(Rule, MonitoredHost)> = Vec::new();
        for rule in self.rules_due(config, now) {
            for host in config.hosts.values().filter(|h| rule.hosts.matches(h)) {
                asked.push((rule.clone(), host.clone()));
            }
        }
        if asked.is_empty() {
            return;
        }
        let wants = asked
            .iter()
            .map(|(rule, host)| Want {
                host: host.clone(),
                metric: rule.metric.clone(),
                consolidation: rule.consolidation,
                window: rule.window(),
            })
            .collect();
        let readings = self
            .metrics
            .read(wants, config.settings.clone(), self.plan.view.clone(), now)
            .await;
        for ((rule, host), reading) in asked.iter().zip(readings) {
            self.board_record(&host.id, &rule.metric.to_string(), &reading);
            for t in self.engine.observe(rule, &host.id, reading, now) {
                self.transition(rule, &host.id, t, now);
            }
        }
    }

    fn board_record(&self, host: &str, metric: &str, reading: &Reading) {
        if let Ok(mut board) = self.board.write() {
            board.record(host, metric, reading);
        }
    }

    /// Puts an engine transition in the audit trail.
    fn transition(&mut self, rule: &Rule, host: &str, t: Transition, now: SystemTime) {
        let metric = rule.metric.to_string();
        let event = match t {
            Transition::ThresholdMet { value } => AuditEvent::new(
                Kind::ThresholdMet,
                format!(
                    "{metric} of {host} is {value} ({} {} for {} poll(s))",
                    rule.comparator.symbol(),
                    rule.threshold,
                    rule.for_polls
                ),
            )
            .reading(metric, Some(value), rule.threshold),
            Transition::Recovered { value } => AuditEvent::new(
                Kind::Info,
                format!(
                    "{metric} of {host} recovered: {value} (clear threshold {})",
                    rule.clear_threshold()
                ),
            )
            .reading(metric, Some(value), rule.clear_threshold()),
            Transition::Expired => AuditEvent::new(
                Kind::Info,
                format!("rule {}'s action on {host} ran its time", rule.id),
            ),
            Transition::HeldByCooldown { value, until } => AuditEvent::new(
                Kind::Info,
                format!(
                    "{metric} of {host} is {value} again; rule {} is cooling down until {}",
                    rule.id,
                    humantime::format_rfc3339_seconds(until)
                ),
            )
            .reading(metric, Some(value), rule.threshold),
            Transition::SourceFailing(e) => AuditEvent::new(
                match e {
                    crate::sources::SourceError::Missing(_) => Kind::Warn,
                    _ => Kind::SourceStale,
                },
                format!(
                    "{metric} of {host}: {e}; rule {} neither acts nor reverts",
                    rule.id
                ),
            )
            .reading(metric, None, rule.threshold),
            Transition::SourceBack => {
                AuditEvent::new(Kind::Info, format!("{metric} of {host} is reported again"))
            }
        };
        self.audit.record(event.host(host).rule(rule.id), now);
    }

    /// Makes the reactions in place those the engine wants.
    async fn converge(&mut self, config: &Config, now: SystemTime) {
        let desired = if config.settings.enabled {
            self.engine.desired(&config.rules)
        } else {
            BTreeMap::new()
        };
        let stale: Vec<(String, Slot)> = self
            .applied
            .iter()
            .filter(|(key, r)| desired.get(*key) != Some(&r.rule))
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            let reaction = self.applied[&key].clone();
            let by = actions::origin(reaction.rule, &reaction.host, reaction.slot);
            match self.actuator.revert(&reaction.resources, &by).await {
                Ok(()) => {
                    self.applied.remove(&key);
                    self.unpersist(&reaction);
                    let why = if desired.contains_key(&key) {
                        "a higher-priority rule takes its place"
                    } else {
                        "the rule no longer applies"
                    };
                    let event = AuditEvent::new(
                        Kind::Reverted,
                        format!(
                            "{} of rule {} on {} reverted: {why}",
                            reaction.action, reaction.rule, reaction.host
                        ),
                    )
                    .host(&reaction.host)
                    .rule(reaction.rule)
                    .resources(reaction.resources);
                    self.audit.record(event, now);
                }
                Err(e) => self.warn_once(
                    &key,
                    &reaction.host,
                    reaction.rule,
                    format!("could not revert {}: {e}", reaction.action),
                    now,
                ),
            }
        }
        for ((host_id, slot), rule_id) in desired {
            let key = (host_id.clone(), slot);
            if self.applied.contains_key(&key) {
                continue;
            }
            if self.backoff.get(&key).is_some_and(|until| now < *until) {
                continue;
            }
            let (Some(rule), Some(host)) = (config.rules.get(&rule_id), config.hosts.get(&host_id))
            else {
                continue;
            };
            match self.actuator.apply(rule, host).await {
                Ok(resources) => {
                    self.backoff.remove(&key);
                    let reaction = Reaction {
                        rule: rule.id,
                        host: host.id.clone(),
                        slot,
                        action: rule.action.kind().into(),
                        since: now,
                        resources: resources.clone(),
                    };
                    self.persist(&reaction);
                    self.applied.insert(key, reaction);
                    let event = AuditEvent::new(
                        Kind::ActionApplied,
                        format!(
                            "{} applied to {} by rule {}",
                            rule.action.kind(),
                            host.id,
                            rule.id
                        ),
                    )
                    .host(&host.id)
                    .rule(rule.id)
                    .resources(resources);
                    self.audit.record(event, now);
                }
                Err(e) => self.warn_once(
                    &key,
                    &host.id,
                    rule.id,
                    format!("could not apply {}: {e}", rule.action.kind()),
                    now,
                ),
            }
        }
    }

    /// A failed apply or revert: reported, and not tried again for a while.
    fn warn_once(
        &mut self,
        key: &(String, Slot),
        host: &str,
        rule: u32,
        message: String,
        now: SystemTime,
    ) {
        self.backoff.insert(key.clone(), now + RETRY);
        let event = AuditEvent::new(Kind::Warn, message).host(host).rule(rule);
        self.audit.record(event, now);
    }

    fn persist(&self, reaction: &Reaction) {
        let key = reaction_key(&reaction.host, reaction.slot);
        if let Err(e) = self.store.put_json(&key, reaction) {
            warn!(error = %e, key, "could not record a host-aware reaction");
        }
    }

    fn unpersist(&self, reaction: &Reaction) {
        let key = reaction_key(&reaction.host, reaction.slot);
        if let Err(e) = self.store.apply(vec![Op::delete(key.clone())]) {
            warn!(error = %e, key, "could not drop a host-aware reaction record");
        }
    }

    fn publish(&self) {
        if let Ok(mut board) = self.board.write() {
            board.reactions = self.applied.values().cloned().collect();
            let mut active: BTreeMap<String, Vec<u32>> = BTreeMap::new();
            for ((rule, host), _) in self.engine.active() {
                active.entry(host.clone()).or_default().push(*rule);
            }
            board.active = active;
        }
    }

    /// Runs until `stopped` resolves: a tick a second, a new plan whenever
    /// the module publishes one; `acting` says, at every tick, whether this
    /// node acts for the cluster.
    pub async fn run(
        mut self,
        mut plans: watch::Receiver<Plan>,
        acting: impl Fn() -> bool,
        stopped: impl std::future::Future<Output = ()>,
    ) {
        self.set_plan(plans.borrow_and_update().clone());
        if acting() {
            self.restore(SystemTime::now()).await;
        } else {
            self.set_acting(false, SystemTime::now()).await;
        }
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                _ = &mut stopped => return,
                changed = plans.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    self.set_plan(plans.borrow_and_update().clone());
                }
                _ = ticks.tick() => {
                    let now = SystemTime::now();
                    self.set_acting(acting(), now).await;
                    self.tick(now).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
