//! The firewall's whole configuration — policy and rule set — with the
//! checks that span rules (ids, same-priority overlaps).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::rule::{FieldError, Rule};

/// `GET/PUT /firewall/policy`: a PUT replaces the whole policy, so both
/// fields are required (an empty object must not turn deny into allow).
/// A controller starts with `{"enabled": true, "default_action": "allow"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(default = json!({"enabled": true, "default_action": "allow"}))]
pub struct Policy {
    /// When false the ACL table has no firewall entries at all: everything
    /// passes; rules are kept and come back when re-enabled.
    pub enabled: bool,
    /// What happens to packets no rule matches.
    pub default_action: DefaultAction,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            enabled: true,
            default_action: DefaultAction::Allow,
        }
    }
}

/// The policy's action for unmatched packets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DefaultAction {
    #[default]
    Allow,
    Deny,
}

/// Why a rule (or rule set) was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleError {
    /// Malformed or self-contradicting (400).
    Invalid(FieldError),
    /// Conflicts with another rule: duplicate id or same-priority overlap (409).
    Conflict(FieldError),
}

impl RuleError {
    fn at_index(self, i: usize) -> RuleError {
        match self {
            RuleError::Invalid(e) => RuleError::Invalid(e.at_index(i)),
            RuleError::Conflict(e) => RuleError::Conflict(e.at_index(i)),
        }
    }
}

/// Validated rules by id, indexed by priority for the overlap check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSet {
    rules: BTreeMap<u32, Rule>,
    by_priority: BTreeMap<u16, BTreeSet<u32>>,
}

impl RuleSet {
    /// A set from a list (a bulk replace or the bootstrap file): every rule
    /// valid, ids unique, no same-priority overlap. Errors name the list
    /// index (`[3].match.ip_src`).
    pub fn from_rules(rules: Vec<Rule>) -> Result<RuleSet, RuleError> {
        let mut set = RuleSet::default();
        let mut index_of = BTreeMap::new();
        for (i, rule) in rules.into_iter().enumerate() {
            if let Some(first) = index_of.insert(rule.id, i) {
                return Err(RuleError::Conflict(FieldError::new(
                    format!("[{i}].id"),
                    format!("duplicate id {} (also at [{first}])", rule.id),
                )));
            }
            set.check(&rule).map_err(|e| e.at_index(i))?;
            set.insert(rule);
        }
        Ok(set)
    }

    pub fn get(&self, id: u32) -> Option<&Rule> {
        self.rules.get(&id)
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Rules by id.
    pub fn iter(&self) -> impl Iterator<Item = &Rule> {
        self.rules.values()
    }

    /// Rules in evaluation order: priority descending, then id.
    pub fn in_order(&self) -> Vec<&Rule> {
        self.by_priority
            .iter()
            .rev()
            .flat_map(|(_, ids)| ids.iter().filter_map(|id| self.rules.get(id)))
            .collect()
    }

    /// The id POST gives a rule without one: one more than the highest.
    pub fn next_id(&self) -> Option<u32> {
        match self.rules.keys().next_back() {
            None => Some(1),
            Some(max) => max.checked_add(1),
        }
    }

    /// Whether `rule` may be added, or replace the rule with its id.
    pub fn check(&self, rule: &Rule) -> Result<(), RuleError> {
        rule.validate().map_err(RuleError::Invalid)?;
        let same_priority = self.by_priority.get(&rule.priority);
        for other in same_priority
            .into_iter()
            .flatten()
            .filter(|id| **id != rule.id)
            .filter_map(|id| self.rules.get(id))
        {
            if overlaps(rule, other) {
                return Err(RuleError::Conflict(FieldError::new(
                    "priority",
                    format!(
                        "rule {} has the same priority ({}) and matches some of the same \
                         packets; give one of them a different priority or make them disjoint",
                        other.id, rule.priority
                    ),
                )));
            }
        }
        Ok(())
    }

    /// Adds or replaces (unchecked: call [`RuleSet::check`] first).
    pub fn insert(&mut self, rule: Rule) -> Option<Rule> {
        let old = self.remove(rule.id);
        self.by_priority
            .entry(rule.priority)
            .or_default()
            .insert(rule.id);
        self.rules.insert(rule.id, rule);
        old
    }

    pub fn remove(&mut self, id: u32) -> Option<Rule> {
        let old = self.rules.remove(&id)?;
        if let Some(ids) = self.by_priority.get_mut(&old.priority) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_priority.remove(&old.priority);
            }
        }
        Some(old)
    }
}

/// The firewall's configuration as stored and served.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirewallConfig {
    pub policy: Policy,
    pub rules: RuleSet,
}

/// Whether some packet, in some place, matches both rules: their scopes
/// share a place and their matches a packet.
pub fn overlaps(a: &Rule, b: &Rule) -> bool {
    fn both<T: PartialEq>(x: &Option<T>, y: &Option<T>) -> bool {
        match (x, y) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        }
    }
    let (sa, sb) = (&a.scope, &b.scope);
    both(&sa.tenant, &sb.tenant)
        && both(&sa.dpid, &sb.dpid)
        && both(&sa.in_port, &sb.in_port)
        && a.match_.overlaps(a.eth_types(), &b.match_, b.eth_types())
}

#[cfg(test)]
mod tests;
