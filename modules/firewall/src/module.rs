//! The firewall as a runtime module: it owns the configuration (the one
//! copy; the service and REST read it here) and the ACL table of every
//! connected switch. Each rule is a declaration scope of its own and the
//! firewall's own entries another, so a change to one rule recompiles and
//! sends only that rule's entries (and the base entries if they change).

use std::collections::{BTreeMap, BTreeSet};

use flowgate_controller::cookie::Owner;
use flowgate_controller::module::{
    decode_followed, Ctx, Event, Followed, Module, Scope, StoreSync,
};
use flowgate_controller::service::{check_owner, Origin, Staged};
use flowgate_controller::store::Op;
use tracing::warn;

use crate::compile::{base_entries, compile_rule};
use crate::config::{FirewallConfig, Policy, RuleError, RuleSet};
use crate::persist::{
    describe, put_policy, put_rule, replace_rules, rule_id, rule_key, POLICY_KEY, RULES_PREFIX,
};
use crate::rule::{FieldError, Rule};

/// The firewall's own entries (pass-through, conntrack, default action).
const BASE: Scope = Scope::new("base", 0);

/// The scope of rule `id`'s entries.
fn rule_scope(id: u32) -> Scope {
    Scope::new("rule", u64::from(id))
}

/// A configuration change.
#[derive(Debug, Clone)]
pub enum FirewallOp {
    /// Add a rule or replace the rule with its id.
    Upsert(Rule),
    Delete(u32),
    /// Replace every rule.
    ReplaceAll(RuleSet),
    SetPolicy(Policy),
}

/// Why the firewall refused a change (nothing was changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirewallError {
    Rule(RuleError),
    NoSuchRule(u32),
    /// The rule belongs to the module that created it.
    Owned(FieldError),
}

impl From<RuleError> for FirewallError {
    fn from(e: RuleError) -> Self {
        FirewallError::Rule(e)
    }
}

/// What an operation changed, for the answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Entries the touched rule has on connected switches afterwards (the
    /// whole firewall's for bulk and policy changes).
    pub flows: usize,
}

/// The firewall module.
#[derive(Debug, Default)]
pub struct Firewall {
    config: FirewallConfig,
    switches: BTreeSet<u64>,
}

impl Firewall {
    pub fn new(config: FirewallConfig) -> Firewall {
        Firewall {
            config,
            switches: BTreeSet::new(),
        }
    }

    pub fn config(&self) -> &FirewallConfig {
        &self.config
    }

    /// Whether `op`, asked for by `by`, may be applied to the current
    /// configuration.
    pub fn check(&self, op: &FirewallOp, by: &Origin) -> Result<(), FirewallError> {
        let owned_by = |id: u32| {
            let origin = self.config.rules.get(id).and_then(|r| r.origin.as_ref());
            check_owner(origin, by).map_err(|reason| {
                FirewallError::Owned(FieldError::new("origin", format!("rule {id} is {reason}")))
            })
        };
        match op {
            FirewallOp::Upsert(rule) => {
                owned_by(rule.id)?;
                self.config.rules.check(rule)?;
            }
            FirewallOp::Delete(id) => {
                if self.config.rules.get(*id).is_none() {
                    return Err(FirewallError::NoSuchRule(*id));
                }
                owned_by(*id)?;
            }
            FirewallOp::ReplaceAll(rules) => {
                // A bulk replace keeps rules modules own only as they are.
                for rule in self.config.rules.iter().filter(|r| r.origin.is_some()) {
                    if rules.get(rule.id) != Some(rule) {
                        owned_by(rule.id)?;
                    }
                }
            }
            FirewallOp::SetPolicy(_) => {}
        }
        Ok(())
    }

    /// Validates, applies, persists and declares `op`; the staged write
    /// undoes itself with the inverse operation.
    pub fn stage(
        &mut self,
        op: FirewallOp,
        by: &Origin,
        ctx: &mut Ctx,
    ) -> Result<Staged<Firewall, ApplyReport>, FirewallError> {
        self.check(&op, by)?;
        let undo = self.apply(op, ctx);
        let report = ApplyReport {
            flows: self.flows_of(&undo),
        };
        Ok(Staged::new(report, move |fw: &mut Firewall, ctx| {
            fw.apply(undo, ctx);
        }))
    }

    /// Applies a checked `op`: the configuration, its store writes and the
    /// declarations it changes. Returns the operation that undoes it.
    fn apply(&mut self, op: FirewallOp, ctx: &mut Ctx) -> FirewallOp {
        let persisted = match &op {
            FirewallOp::Upsert(rule) => put_rule(rule).map(|op| vec![op]),
            FirewallOp::Delete(id) => Ok(vec![Op::delete(rule_key(*id))]),
            FirewallOp::ReplaceAll(rules) => replace_rules(rules.iter()),
            FirewallOp::SetPolicy(policy) => put_policy(policy).map(|op| vec![op]),
        };
        match persisted {
            Ok(ops) => ctx.persist(ops),
            // Serializing our own types does not fail; if it ever does, the
            // change must not look durable.
            Err(e) => warn!(error = %e, "could not encode a firewall change for the store"),
        }
        self.change(op, ctx)
    }

    /// Applies a checked `op` to the configuration and declares what it
    /// changes, without writing the store. Returns the undo operation.
    fn change(&mut self, op: FirewallOp, ctx: &mut Ctx) -> FirewallOp {
        match op {
            FirewallOp::Upsert(rule) => {
                let id = rule.id;
                let old = self.config.rules.insert(rule);
                self.declare_rule(id, ctx);
                old.map_or(FirewallOp::Delete(id), FirewallOp::Upsert)
            }
            FirewallOp::Delete(id) => {
                let old = self.config.rules.remove(id);
                self.declare_rule(id, ctx);
                old.map_or(FirewallOp::Delete(id), FirewallOp::Upsert)
            }
            FirewallOp::ReplaceAll(rules) => {
                let old = std::mem::replace(&mut self.config.rules, rules);
                let ids: BTreeSet<u32> = old
                    .iter()
                    .chain(self.config.rules.iter())
                    .map(|r| r.id)
                    .collect();
                for id in ids {
                    self.declare_rule(id, ctx);
                }
                FirewallOp::ReplaceAll(old)
            }
            FirewallOp::SetPolicy(policy) => {
                let old = std::mem::replace(&mut self.config.policy, policy);
                self.declare_all(ctx);
                FirewallOp::SetPolicy(old)
            }
        }
    }

    /// The configuration the store holds after `sync` (see
    /// [`Module::follow_store`]), validated as a whole like a bulk write: a
    /// value that does not decode leaves the module's own for its key.
    fn followed(&self, sync: &StoreSync) -> Result<FirewallConfig, RuleError> {
        let current = &self.config;
        let mut policy = if sync.complete {
            Policy::default()
        } else {
            current.policy
        };
        let mut rules: BTreeMap<u32, Rule> = if sync.complete {
            BTreeMap::new()
        } else {
            current.rules.iter().map(|r| (r.id, r.clone())).collect()
        };
        for (key, value) in &sync.changed {
            if key == POLICY_KEY {
                policy = match value.as_deref() {
                    None => Policy::default(),
                    Some(bytes) => {
                        decode_followed(key, bytes, |_: &Policy| true).unwrap_or(current.policy)
                    }
                };
            } else if let Some(id) = rule_id(key) {
                let rule = match value.as_deref() {
                    None => None,
                    Some(bytes) => decode_followed(key, bytes, |r: &Rule| r.id == id)
                        .or_else(|| current.rules.get(id).cloned()),
                };
                match rule {
                    Some(rule) => rules.insert(id, rule),
                    None => rules.remove(&id),
                };
            } else if key.starts_with(RULES_PREFIX) {
                warn!(key, "ignoring a store key that names no firewall rule");
            }
        }
        let rules = RuleSet::from_rules(rules.into_values().collect())?;
        Ok(FirewallConfig { policy, rules })
    }

    /// Entries the write touched have on connected switches: the rule's
    /// (named by its undo), or the whole firewall's.
    fn flows_of(&self, undo: &FirewallOp) -> usize {
        let id = match undo {
            FirewallOp::Upsert(rule) => rule.id,
            FirewallOp::Delete(id) => *id,
            FirewallOp::ReplaceAll(_) | FirewallOp::SetPolicy(_) => {
                return self
                    .switches
                    .iter()
                    .map(|d| {
                        base_entries(&self.config, *d).len()
                            + self
                                .config
                                .rules
                                .iter()
                                .map(|r| self.rule_entries(r, *d))
                                .sum::<usize>()
                    })
                    .sum();
            }
        };
        let Some(rule) = self.config.rules.get(id) else {
            return 0;
        };
        self.switches
            .iter()
            .map(|d| self.rule_entries(rule, *d))
            .sum()
    }

    fn rule_entries(&self, rule: &Rule, dpid: u64) -> usize {
        if self.config.policy.enabled {
            compile_rule(rule, dpid).len()
        } else {
            0
        }
    }

    /// Declares rule `id` (empty if it is gone or the firewall is off) and
    /// the base entries on every switch.
    fn declare_rule(&self, id: u32, ctx: &mut Ctx) {
        for &dpid in &self.switches {
            self.declare_rule_on(id, dpid, ctx);
            ctx.declare_flows(dpid, BASE, base_entries(&self.config, dpid));
        }
    }

    fn declare_rule_on(&self, id: u32, dpid: u64, ctx: &mut Ctx) {
        let entries = match self.config.rules.get(id) {
            Some(rule) if self.config.policy.enabled => compile_rule(rule, dpid),
            _ => Vec::new(),
        };
        ctx.declare_flows(dpid, rule_scope(id), entries);
    }

    fn declare_all(&self, ctx: &mut Ctx) {
        for &dpid in &self.switches {
            self.declare_switch(dpid, ctx);
        }
    }

    /// Everything the switch should have. After a restart the runtime's
    /// full reconciliation leaves identical entries (and their counters)
    /// alone and removes firewall entries nobody declared.
    fn declare_switch(&self, dpid: u64, ctx: &mut Ctx) {
        ctx.declare_flows(dpid, BASE, base_entries(&self.config, dpid));
        for rule in self.config.rules.iter() {
            self.declare_rule_on(rule.id, dpid, ctx);
        }
    }
}

impl Module for Firewall {
    fn owner(&self) -> Owner {
        Owner::Firewall
    }

    fn handle(&mut self, event: &Event<'_>, ctx: &mut Ctx) {
        match event {
            Event::SwitchUp { dpid, .. } => {
                self.switches.insert(*dpid);
                self.declare_switch(*dpid, ctx);
            }
            Event::SwitchDown { dpid } => {
                self.switches.remove(dpid);
            }
            // The firewall is proactive: no packet-ins, no timeouts.
            Event::PortStatus { .. }
            | Event::PacketIn { .. }
            | Event::FlowRemoved { .. }
            | Event::Tick
            | Event::Notice { .. }
            | Event::Rejected { .. }
            | Event::Task { .. }
            | Event::Bus { .. } => {}
        }
    }

    fn followed_prefixes(&self) -> Vec<&'static str> {
        vec![RULES_PREFIX, POLICY_KEY]
    }

    fn follow_store(&mut self, sync: &StoreSync, ctx: &mut Ctx) -> Followed {
        let next = match self.followed(sync) {
            Ok(next) => next,
            Err(e) => {
                warn!(
                    error = describe(e),
                    "the store holds firewall rules that do not validate; keeping the current ones"
                );
                return Followed::Refused;
            }
        };
        // Only what differs is declared: this node's own writes coming
        // back change nothing.
        let ids: BTreeSet<u32> = self
            .config
            .rules
            .iter()
            .chain(next.rules.iter())
            .map(|r| r.id)
            .collect();
        for id in ids {
            match (self.config.rules.get(id), next.rules.get(id)) {
                (old, new) if old == new => {}
                (_, Some(rule)) => {
                    self.change(FirewallOp::Upsert(rule.clone()), ctx);
                }
                (_, None) => {
                    self.change(FirewallOp::Delete(id), ctx);
                }
            }
        }
        if next.policy != self.config.policy {
            self.change(FirewallOp::SetPolicy(next.policy), ctx);
        }
        Followed::Taken
    }
}

#[cfg(test)]
mod tests;
