//! The firewall's service: the one way to read and change its rules and
//! policy, for its REST handlers and for other modules (host-aware
//! quarantines a host by creating a rule here, with its own origin).
//! Writes are staged on the core by [`Firewall::stage`] and confirmed or
//! rolled back by [`flowgate_controller::service::Service`].

use flowgate_controller::cookie::Owner;
use flowgate_controller::events::ResourceAction;
use flowgate_controller::runtime::Runtime;
use flowgate_controller::service::{Origin, Service, WriteError, Written};

use crate::config::{Policy, RuleError, RuleSet};
use crate::module::{ApplyReport, Firewall, FirewallError, FirewallOp};
use crate::rule::{FieldError, Rule};

pub type FwWrite<T> = Result<T, WriteError<FirewallError>>;

/// A written rule (or, for a dry run, the rule as it would be stored).
#[derive(Debug, Clone)]
pub struct RuleWritten {
    pub rule: Rule,
    /// False when the write replaced a rule of the same id.
    pub created: bool,
    /// `None` for a dry run.
    pub written: Option<Written<ApplyReport>>,
}

/// The firewall's service; cheap to clone.
#[derive(Clone)]
pub struct FirewallService {
    service: Service<Firewall>,
}

impl FirewallService {
    pub fn new(runtime: Runtime) -> FirewallService {
        FirewallService {
            service: Service::new(runtime, Owner::Firewall),
        }
    }

    pub fn runtime(&self) -> &Runtime {
        self.service.runtime()
    }

    /// All rules, highest priority first.
    pub async fn rules(&self) -> FwWrite<Vec<Rule>> {
        Ok(self
            .service
            .read(|fw| fw.config().rules.in_order().into_iter().cloned().collect())
            .await?)
    }

    pub async fn rule(&self, id: u32) -> FwWrite<Rule> {
        self.service
            .read(move |fw| fw.config().rules.get(id).cloned())
            .await?
            .ok_or(WriteError::Invalid(FirewallError::NoSuchRule(id)))
    }

    pub async fn policy(&self) -> FwWrite<Policy> {
        Ok(self.service.read(|fw| fw.config().policy).await?)
    }

    /// Creates `rule` (with the next free id when it has none); a rule
    /// with its id must not exist.
    pub async fn create(&self, rule: Rule, by: Origin, dry_run: bool) -> FwWrite<RuleWritten> {
        self.upsert(rule, by, dry_run, false).await
    }

    /// Creates or replaces rule `rule.id`.
    pub async fn put(&self, rule: Rule, by: Origin, dry_run: bool) -> FwWrite<RuleWritten> {
        self.upsert(rule, by, dry_run, true).await
    }

    async fn upsert(
        &self,
        mut rule: Rule,
        by: Origin,
        dry_run: bool,
        replace: bool,
    ) -> FwWrite<RuleWritten> {
        rule.origin = by.owner().map(|_| by.clone());
        let prepared = {
            let by = by.clone();
            move |fw: &Firewall, mut rule: Rule| -> Result<(Rule, bool), FirewallError> {
                let exists = fw.config().rules.get(rule.id).is_some();
                if rule.id == 0 {
                    rule.id = fw.config().rules.next_id().ok_or_else(|| {
                        FirewallError::Rule(RuleError::Invalid(FieldError::new(
                            "id",
                            "no free id above the highest; give one",
                        )))
                    })?;
                } else if exists && !replace {
                    return Err(FirewallError::Rule(RuleError::Conflict(FieldError::new(
                        "id",
                        format!(
                            "rule {} exists; PUT /firewall/rules/{} replaces it",
                            rule.id, rule.id
                        ),
                    ))));
                }
                fw.check(&FirewallOp::Upsert(rule.clone()), &by)?;
                Ok((rule, !exists))
            }
        };
        if dry_run {
            let (rule, created) = self
                .service
                .read(move |fw| prepared(fw, rule))
                .await?
                .map_err(WriteError::Invalid)?;
            return Ok(RuleWritten {
                rule,
                created,
                written: None,
            });
        }
        let stage_by = by.clone();
        let written = self
            .service
            .write(move |fw, ctx| {
                let (rule, created) = prepared(fw, rule)?;
                let staged = fw.stage(FirewallOp::Upsert(rule.clone()), &stage_by, ctx)?;
                Ok(staged.map(|report| (report, rule, created)))
            })
            .await?;
        let (report, rule, created) = written.value.clone();
        let action = if created {
            ResourceAction::Created
        } else {
            ResourceAction::Updated
        };
        self.service.announce("rule", rule.id, action, &by).await;
        Ok(RuleWritten {
            rule,
            created,
            written: Some(written.with_value(report)),
        })
    }

    /// Deletes rule `id`; its flows leave every switch before this returns.
    pub async fn delete(&self, id: u32, by: Origin) -> FwWrite<(Rule, Written<ApplyReport>)> {
        let stage_by = by.clone();
        let written = self
            .service
            .write(move |fw, ctx| {
                let old = fw
                    .config()
                    .rules
                    .get(id)
                    .cloned()
                    .ok_or(FirewallError::NoSuchRule(id))?;
                let staged = fw.stage(FirewallOp::Delete(id), &stage_by, ctx)?;
                Ok(staged.map(|report| (report, old)))
            })
            .await?;
        self.service
            .announce("rule", id, ResourceAction::Deleted, &by)
            .await;
        let (report, old) = written.value.clone();
        Ok((old, written.with_value(report)))
    }

    /// Replaces every rule with `rules` (validated as a list: errors name
    /// `[index].field`). Returns how many rules are stored.
    pub async fn replace_all(
        &self,
        rules: Vec<Rule>,
        by: Origin,
        dry_run: bool,
    ) -> FwWrite<(usize, Option<Written<ApplyReport>>)> {
        let set =
            RuleSet::from_rules(rules).map_err(|e| WriteError::Invalid(FirewallError::Rule(e)))?;
        let count = set.len();
        let op = FirewallOp::ReplaceAll(set);
        if dry_run {
            self.service
                .read(move |fw| fw.check(&op, &by))
                .await?
                .map_err(WriteError::Invalid)?;
            return Ok((count, None));
        }
        let written = self
            .service
            .write(move |fw, ctx| fw.stage(op, &by, ctx))
            .await?;
        Ok((count, Some(written)))
    }

    pub async fn set_policy(
        &self,
        policy: Policy,
        by: Origin,
        dry_run: bool,
    ) -> FwWrite<Option<Written<ApplyReport>>> {
        if dry_run {
            return Ok(None);
        }
        let written = self
            .service
            .write(move |fw, ctx| fw.stage(FirewallOp::SetPolicy(policy), &by, ctx))
            .await?;
        Ok(Some(written))
    }
}
