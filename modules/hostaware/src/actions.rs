//! Actions as resources of the modules that own them: a quarantine is
//! firewall rules, a rate limit a QoS policy. Each resource carries the
//! origin `hostaware/rule-<id>/<host>/<slot>`, so it shows in its module's
//! API as host-aware's (refused for manual edits), and after a crash the
//! reactions in place are found again from the resources themselves.

use std::future::Future;

use flowgate_controller::api::ApiError;
use flowgate_controller::cookie::Owner;
use flowgate_controller::policy::{Cidr, PacketMatch};
use flowgate_controller::service::{Origin, WriteError};
use flowgate_firewall::module::FirewallError;
use flowgate_firewall::rule::{Rule as FwRule, RuleAction, Scope};
use flowgate_firewall::FirewallService;
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
    FirewallRule { id: u32 },
    QosPolicy { id: u32 },
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
}

/// The real one: the firewall's and QoS's services.
#[derive(Clone)]
pub struct Modules {
    pub firewall: FirewallService,
    pub qos: QosService,
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

    /// Creates each resource in turn; on a failure, removes those made.
    async fn all_or_nothing(&self, by: &Origin, steps: Vec<Step>) -> Result<Vec<Resource>, String> {
        let mut made = Vec::new();
        for step in steps {
            let result = match step {
                Step::Firewall(rule) => self.firewall_rule(rule, by).await,
                Step::Qos(policy) => self.qos_policy(policy, by).await,
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

#[derive(Debug)]
enum Step {
    Firewall(FwRule),
    Qos(Policy),
}

/// The resources `rule`'s action on `host` consists of.
fn plan(rule: &Rule, host: &MonitoredHost) -> Result<Vec<Step>, String> {
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
        Action::LbDrain {} | Action::LbWeight { .. } => {
            return Err("no load balancer is loaded in this controller".into())
        }
        Action::Notify {} => Vec::new(),
    })
}

impl Actuator for Modules {
    async fn apply(&self, rule: &Rule, host: &MonitoredHost) -> Result<Vec<Resource>, String> {
        let by = origin(rule.id, &host.id, rule.action.slot(rule.id));
        let steps = plan(rule, host)?;
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
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
