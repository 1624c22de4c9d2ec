//! Actions as resources of the modules that own them: a quarantine is
//! firewall rules, a rate limit a QoS policy, a drain or a lower weight a
//! load-balancer member held by host-aware. Each resource carries the
//! origin `hostaware/rule-<id>/<host>/<slot>`, so it shows in its module's
//! API as host-aware's (refused for manual edits), and after a crash the
//! reactions in place are found again from the resources themselves.
//!
//! Load balancer: the host is a member wherever a pool has a member whose
//! address is the host's ip (any port; every pool, or only the action's
//! `pool`). Each such member is held (`LoadBalancerService::set_admin_state`
//! / `set_weight` by host-aware's origin): the load balancer keeps, with
//! the member and in its store, the weight and admin state it had, and
//! puts them back on release — so a revert after a restart restores them
//! too, and nobody else changes a held member meanwhile.

use std::collections::BTreeMap;
use std::future::Future;

use flowgate_controller::api::ApiError;
use flowgate_controller::cookie::Owner;
use flowgate_controller::policy::{Cidr, PacketMatch};
use flowgate_controller::service::{Origin, WriteError};
use flowgate_firewall::module::FirewallError;
use flowgate_firewall::rule::{Rule as FwRule, RuleAction, Scope};
use flowgate_firewall::FirewallService;
use flowgate_loadbalancer::model::{Invalid, Pool, MAX_WEIGHT};
use flowgate_loadbalancer::{AdminState, LoadBalancerService, MemberKey};
use flowgate_qos::config::QosError;
use flowgate_qos::model::{Actions, Band, MeterAction, Placement, Policy, QueueAction, RateUnit};
use flowgate_qos::QosService;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::{Action, MonitoredHost, Rule, Slot};

/// A resource another module holds for a reaction.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Resource {
    FirewallRule {
        id: u32,
    },
    QosPolicy {
        id: u32,
    },
    /// A load-balancer member held (drained or weighted) by the reaction.
    LbMember {
        pool: String,
        member: String,
    },
}

/// Firewall priorities of host-aware's rules: above what operators
/// usually use, ordered by the rule's priority; a quarantine's allow list
/// sits one above its drop.
pub fn firewall_priority(rule_priority: u16) -> u16 {
    28_900 + 2 * rule_priority
}

/// QoS priorities of host-aware's policies.
pub fn qos_priority(rule_priority: u16) -> u16 {
    29_000 + rule_priority
}

/// The origin of the resources of `rule`'s reaction on `host`.
pub fn origin(rule: u32, host: &str, slot: Slot) -> Origin {
    Origin::module(
        Owner::HostAware,
        format!("rule-{rule}/{host}/{}", slot_name(slot)),
    )
}

fn slot_name(slot: Slot) -> String {
    match slot {
        Slot::Quarantine => "quarantine".into(),
        Slot::Qos => "qos".into(),
        Slot::LbWeight => "lb".into(),
        Slot::Block(rule) => format!("block-{rule}"),
        Slot::Notify(rule) => format!("notify-{rule}"),
    }
}

/// (rule, host, slot) of a host-aware origin.
pub fn parse_origin(origin: &Origin) -> Option<(u32, String, Slot)> {
    let rest = origin.as_str().strip_prefix("hostaware/rule-")?;
    let mut parts = rest.splitn(3, '/');
    let rule: u32 = parts.next()?.parse().ok()?;
    let host = parts.next()?.to_owned();
    let slot = match parts.next()? {
        "quarantine" => Slot::Quarantine,
        "qos" => Slot::Qos,
        "lb" => Slot::LbWeight,
        other => {
            let (kind, id) = other.split_once('-')?;
            let id = id.parse().ok()?;
            match kind {
                "block" => Slot::Block(id),
                "notify" => Slot::Notify(id),
                _ => return None,
            }
        }
    };
    Some((rule, host, slot))
}

/// Puts actions in place and takes them away, through the owning modules.
pub trait Actuator: Send + Sync + 'static {
    /// Applies `rule`'s action to `host`; the resources it created.
    fn apply(
        &self,
        rule: &Rule,
        host: &MonitoredHost,
    ) -> impl Future<Output = Result<Vec<Resource>, String>> + Send;

    /// Removes `resources` (those already gone count as removed).
    fn revert(
        &self,
        resources: &[Resource],
        by: &Origin,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// Every resource with a host-aware origin, as the modules have them.
    fn existing(&self) -> impl Future<Output = Result<Vec<(Origin, Resource)>, String>> + Send;

    /// The load balancer's pools with `load_aware` (none without one).
    fn load_aware_pools(&self) -> impl Future<Output = Result<Vec<Pool>, String>> + Send {
        async { Ok(Vec::new()) }
    }

    /// Sets load-aware weights of `pool`'s members; whether any changed.
    fn set_load_weights(
        &self,
        pool: &str,
        weights: BTreeMap<MemberKey, u16>,
    ) -> impl Future<Output = Result<bool, String>> + Send {
        let _ = (pool, weights);
        async { Ok(false) }
    }
}

/// The real one: the firewall's, QoS's and load balancer's services.
#[derive(Clone)]
pub struct Modules {
    pub firewall: FirewallService,
    pub qos: QosService,
    pub lb: LoadBalancerService,
}

fn describe<E: Into<ApiError>>(e: WriteError<E>) -> String {
    match ApiError::from(e) {
        ApiError::BadRequest {
            field: Some(f),
            reason,
        }
        | ApiError::Invalid { field: f, reason }
        | ApiError::Conflict {
            field: Some(f),
            reason,
        }
        | ApiError::NotFound {
            field: Some(f),
            reason,
        } => format!("{f}: {reason}"),
        other => other.to_string(),
    }
}

impl Modules {
    async fn firewall_rule(&self, rule: FwRule, by: &Origin) -> Result<Resource, String> {
        let written = self
            .firewall
            .create(rule, by.clone(), false)
            .await
            .map_err(describe)?;
        Ok(Resource::FirewallRule {
            id: written.rule.id,
        })
    }

    async fn qos_policy(&self, policy: Policy, by: &Origin) -> Result<Resource, String> {
        let written = self
            .qos
            .put_policy(policy, true, by.clone(), false)
            .await
            .map_err(describe)?;
        Ok(Resource::QosPolicy {
            id: written.value.id,
        })
    }

    async fn lb_member(
        &self,
        pool: String,
        key: MemberKey,
        change: LbChange,
        by: &Origin,
    ) -> Result<Resource, String> {
        let result = match change {
            LbChange::Drain => {
                self.lb
                    .set_admin_state(pool.clone(), key, AdminState::Drain, by.clone())
                    .await
            }
            LbChange::Weight(w) => self.lb.set_weight(pool.clone(), key, w, by.clone()).await,
        };
        result.map_err(describe)?;
        Ok(Resource::LbMember {
            pool,
            member: key.to_string(),
        })
    }

    /// Creates each resource in turn; on a failure, removes those made.
    async fn all_or_nothing(&self, by: &Origin, steps: Vec<Step>) -> Result<Vec<Resource>, String> {
        let mut made = Vec::new();
        for step in steps {
            let result = match step {
                Step::Firewall(rule) => self.firewall_rule(rule, by).await,
                Step::Qos(policy) => self.qos_policy(policy, by).await,
                Step::Lb { pool, key, change } => self.lb_member(pool, key, change, by).await,
            };
            match result {
                Ok(resource) => made.push(resource),
                Err(e) => {
                    if let Err(undo) = self.revert(&made, by).await {
                        tracing::warn!(error = %undo, "could not remove a half-applied action");
                    }
                    return Err(e);
                }
            }
        }
        Ok(made)
    }
}

#[derive(Debug, PartialEq)]
enum Step {
    Firewall(FwRule),
    Qos(Policy),
    Lb {
        pool: String,
        key: MemberKey,
        change: LbChange,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum LbChange {
    Drain,
    Weight(u16),
}

/// The members `host` is in `pools` (see the module docs), each held as
/// the action says. A weight is scaled from what the member had before
/// any hold of this reaction (applying again scales nothing twice).
fn plan_lb(
    action: &Action,
    host: &MonitoredHost,
    by: &Origin,
    pools: &[Pool],
) -> Result<Vec<Step>, String> {
    let ip = host
        .ip
        .ok_or_else(|| format!("host {} has no ip to act on", host.id))?;
    let (named, factor) = match action {
        Action::LbDrain { pool } => (pool, None),
        Action::LbWeight { factor, pool } => (pool, Some(*factor)),
        _ => return Ok(Vec::new()),
    };
    if let Some(name) = named {
        if !pools.iter().any(|p| p.id == *name) {
            return Err(format!("action.pool: no load-balancer pool {name:?}"));
        }
    }
    let mut steps = Vec::new();
    for pool in pools
        .iter()
        .filter(|p| named.as_ref().is_none_or(|n| *n == p.id))
    {
        for member in pool.members.iter().filter(|m| m.address == ip) {
            let change = match factor {
                None => LbChange::Drain,
                Some(f) => {
                    let ours = member
                        .held
                        .as_ref()
                        .filter(|_| member.origin.as_ref() == Some(by));
                    let base = ours.map_or(member.weight, |b| b.weight);
                    let scaled = (f64::from(base) * f)
                        .round()
                        .clamp(1.0, f64::from(MAX_WEIGHT));
                    LbChange::Weight(scaled as u16)
                }
            };
            steps.push(Step::Lb {
                pool: pool.id.clone(),
                key: member.key(),
                change,
            });
        }
    }
    if steps.is_empty() {
        return Err(match named {
            Some(name) => format!("{ip} ({}) is not a member of pool {name:?}", host.id),
            None => format!("{ip} ({}) is a member of no load-balancer pool", host.id),
        });
    }
    Ok(steps)
}

/// The resources `rule`'s action on `host` consists of (`pools`: the load
/// balancer's, for its actions).
fn plan(rule: &Rule, host: &MonitoredHost, pools: &[Pool]) -> Result<Vec<Step>, String> {
    let ip = host
        .ip
        .ok_or_else(|| format!("host {} has no ip to act on", host.id))?;
    let from_host = PacketMatch {
        ip_src: Some(Cidr::host(ip)),
        ..PacketMatch::default()
    };
    let scope = Scope {
        tenant: host.tenant,
        ..Scope::default()
    };
    let describe = format!(
        "host-aware rule {}: {} {} {} on {}",
        rule.id,
        rule.metric,
        rule.comparator.symbol(),
        rule.threshold,
        host.id
    );
    let fw = |priority: u16, match_: PacketMatch, action: RuleAction| {
        Step::Firewall(FwRule {
            id: 0,
            priority,
            scope: scope.clone(),
            match_,
            action,
            description: Some(describe.clone()),
            origin: None,
        })
    };
    let qos = |actions: Actions| {
        Step::Qos(Policy {
            id: 0,
            name: None,
            priority: qos_priority(rule.priority),
            match_: from_host.clone(),
            tenant: host.tenant,
            in_port: None,
            actions,
            placement: Placement::All,
            description: Some(describe.clone()),
            origin: None,
        })
    };
    let base = firewall_priority(rule.priority);
    Ok(match &rule.action {
        Action::Quarantine { allow } => {
            let mut steps: Vec<Step> = allow
                .iter()
                .map(|peer| {
                    let m = PacketMatch {
                        ip_dst: Some(*peer),
                        ..from_host.clone()
                    };
                    fw(base + 1, m, RuleAction::Allow)
                })
                .collect();
            steps.push(fw(base, from_host.clone(), RuleAction::Deny));
            steps
        }
        Action::Block { match_ } => {
            let m = PacketMatch {
                ip_src: Some(Cidr::host(ip)),
                ..match_.clone()
            };
            vec![fw(base, m, RuleAction::Deny)]
        }
        Action::RateLimit { kbps } => vec![qos(Actions {
            meter: Some(MeterAction {
                rate: *kbps,
                unit: RateUnit::Kbps,
                burst: None,
                band: Band::Drop,
            }),
            ..Actions::default()
        })],
        Action::Enqueue { queue } => vec![qos(Actions {
            queue: Some(QueueAction {
                id: *queue,
                port: None,
            }),
            ..Actions::default()
        })],
        Action::LbDrain { .. } | Action::LbWeight { .. } => {
            let by = origin(rule.id, &host.id, rule.action.slot(rule.id));
            plan_lb(&rule.action, host, &by, pools)?
        }
        Action::Notify {} => Vec::new(),
    })
}

impl Actuator for Modules {
    async fn apply(&self, rule: &Rule, host: &MonitoredHost) -> Result<Vec<Resource>, String> {
        let by = origin(rule.id, &host.id, rule.action.slot(rule.id));
        let pools = match rule.action {
            Action::LbDrain { .. } | Action::LbWeight { .. } => {
                self.lb.pools().await.map_err(describe)?
            }
            _ => Vec::new(),
        };
        let steps = plan(rule, host, &pools)?;
        self.all_or_nothing(&by, steps).await
    }

    async fn revert(&self, resources: &[Resource], by: &Origin) -> Result<(), String> {
        let mut failed = Vec::new();
        for resource in resources.iter().rev() {
            let result = match resource {
                Resource::FirewallRule { id } => {
                    match self.firewall.delete(*id, by.clone()).await {
                        Ok(_) => Ok(()),
                        Err(WriteError::Invalid(FirewallError::NoSuchRule(_))) => Ok(()),
                        Err(e) => Err(describe(e)),
                    }
                }
                Resource::QosPolicy { id } => match self.qos.delete_policy(*id, by.clone()).await {
                    Ok(_) => Ok(()),
                    Err(WriteError::Invalid(QosError::Missing(_))) => Ok(()),
                    Err(e) => Err(describe(e)),
                },
                Resource::LbMember { pool, member } => match member.parse::<MemberKey>() {
                    // Released, or gone (the pool or member removed): done.
                    Ok(key) => match self.lb.release_member(pool.clone(), key, by.clone()).await {
                        Ok(_) | Err(WriteError::Invalid(Invalid::Missing { .. })) => Ok(()),
                        Err(e) => Err(describe(e)),
                    },
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = result {
                failed.push(e);
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    }

    async fn load_aware_pools(&self) -> Result<Vec<Pool>, String> {
        let pools = self.lb.pools().await.map_err(describe)?;
        Ok(pools
            .into_iter()
            .filter(|p| p.load_aware.is_some())
            .collect())
    }

    async fn set_load_weights(
        &self,
        pool: &str,
        weights: BTreeMap<MemberKey, u16>,
    ) -> Result<bool, String> {
        let by = crate::loadaware::origin(pool);
        let written = self
            .lb
            .set_load_weights(pool.to_owned(), weights, by)
            .await
            .map_err(describe)?;
        Ok(written.is_some())
    }

    async fn existing(&self) -> Result<Vec<(Origin, Resource)>, String> {
        let mut out = Vec::new();
        for rule in self.firewall.rules().await.map_err(describe)? {
            if let Some(origin) = rule.origin.filter(|o| o.owner() == Some(Owner::HostAware)) {
                out.push((origin, Resource::FirewallRule { id: rule.id }));
            }
        }
        for policy in self
            .qos
            .config()
            .await
            .map_err(describe)?
            .policies
            .into_values()
        {
            if let Some(origin) = policy
                .origin
                .filter(|o| o.owner() == Some(Owner::HostAware))
            {
                out.push((origin, Resource::QosPolicy { id: policy.id }));
            }
        }
        for pool in self.lb.pools().await.map_err(describe)? {
            for member in pool.members.iter().filter(|m| m.held.is_some()) {
                if let Some(origin) = member
                    .origin
                    .clone()
                    .filter(|o| o.owner() == Some(Owner::HostAware))
                {
                    let member = member.key().to_string();
                    let pool = pool.id.clone();
                    out.push((origin, Resource::LbMember { pool, member }));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
