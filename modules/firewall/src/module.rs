//! The firewall as a runtime module: it owns the ACL table of every
//! connected switch and turns each configuration change into the smallest
//! set of desired-state changes (the reconciler then sends only those).

use std::collections::BTreeSet;
use std::time::Instant;

use flowgate_controller::cookie::Owner;
use flowgate_controller::desired::FlowEntry;
use flowgate_controller::module::{Ctx, Event, Module};

use crate::compile::{base_entries, compile_rule, compile_switch, diff};
use crate::config::{FirewallConfig, Policy, RuleSet};
use crate::rule::Rule;

/// A configuration change, already validated (and persisted) by the caller.
#[derive(Debug, Clone)]
pub enum FirewallOp {
    /// Add a rule or replace the rule with its id.
    Upsert(Rule),
    Delete(u32),
    /// Replace every rule.
    ReplaceAll(RuleSet),
    SetPolicy(Policy),
}

/// What an operation changed, for the REST answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Entries the touched rule has on connected switches afterwards (the
    /// whole firewall's for bulk and policy changes).
    pub flows: usize,
    /// Desired-state changes (installs + removals) handed to the runtime.
    pub flow_changes: usize,
    /// Time spent compiling and diffing.
    pub compile_micros: u64,
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

    /// Applies `op` and declares the resulting entry changes on every
    /// connected switch.
    pub fn apply(&mut self, op: FirewallOp, ctx: &mut Ctx) -> ApplyReport {
        let started = Instant::now();
        let switches: Vec<u64> = self.switches.iter().copied().collect();
        // One rule changes: compare only that rule's entries and the
        // firewall's own (which depend on whether any rule is stateful).
        let touched = match &op {
            FirewallOp::Upsert(rule) => Some(rule.id),
            FirewallOp::Delete(id) => Some(*id),
            FirewallOp::ReplaceAll(_) | FirewallOp::SetPolicy(_) => None,
        };
        let entries = |config: &FirewallConfig, dpid: u64| -> Vec<FlowEntry> {
            match touched {
                None => compile_switch(config, dpid),
                Some(_) if !config.policy.enabled => Vec::new(),
                Some(id) => {
                    let mut e = base_entries(config, dpid);
                    if let Some(rule) = config.rules.get(id) {
                        e.extend(compile_rule(rule, dpid));
                    }
                    e
                }
            }
        };
        let before: Vec<Vec<FlowEntry>> =
            switches.iter().map(|d| entries(&self.config, *d)).collect();
        match op {
            FirewallOp::Upsert(rule) => {
                self.config.rules.insert(rule);
            }
            FirewallOp::Delete(id) => {
                self.config.rules.remove(id);
            }
            FirewallOp::ReplaceAll(rules) => self.config.rules = rules,
            FirewallOp::SetPolicy(policy) => self.config.policy = policy,
        }
        let mut report = ApplyReport::default();
        for (dpid, old) in switches.iter().zip(&before) {
            let new = entries(&self.config, *dpid);
            report.flows += match touched {
                None => new.len(),
                Some(id) => self
                    .config
                    .rules
                    .get(id)
                    .filter(|_| self.config.policy.enabled)
                    .map_or(0, |rule| compile_rule(rule, *dpid).len()),
            };
            let delta = diff(old, &new);
            report.flow_changes += delta.len();
            for key in delta.remove {
                ctx.remove(*dpid, key);
            }
            for entry in delta.install {
                ctx.install(*dpid, entry);
            }
        }
        report.compile_micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        report
    }

    fn switch_up(&mut self, dpid: u64, ctx: &mut Ctx) {
        self.switches.insert(dpid);
        // Everything the switch should have; the runtime's full
        // reconciliation leaves identical entries (and their counters)
        // alone and removes firewall entries nobody declared.
        for entry in compile_switch(&self.config, dpid) {
            ctx.install(dpid, entry);
        }
    }
}

impl Module for Firewall {
    fn owner(&self) -> Owner {
        Owner::Firewall
    }

    fn handle(&mut self, event: &Event<'_>, ctx: &mut Ctx) {
        match event {
            Event::SwitchUp { dpid, .. } => self.switch_up(*dpid, ctx),
            Event::SwitchDown { dpid } => {
                self.switches.remove(dpid);
            }
            // The firewall is proactive: no packet-ins, no timeouts.
            Event::PortStatus { .. }
            | Event::PacketIn { .. }
            | Event::FlowRemoved { .. }
            | Event::Tick
            | Event::Notice { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests;
