//! Where the firewall keeps its configuration in the store, and loading it
//! at start (with the optional `--firewall-rules` bootstrap file).
//!
//! Keys: `firewall/policy` (JSON [`Policy`]) and `firewall/rules/<id>`
//! (JSON [`Rule`], id zero-padded to 10 digits so keys sort by id).

use std::path::Path;

use anyhow::Context;
use flowgate_controller::api::{extract::decode_json, ApiError};
use flowgate_controller::store::{Op, Store, StoreExt};

use crate::config::{FirewallConfig, Policy, RuleError, RuleSet};
use crate::rule::Rule;

pub const RULES_PREFIX: &str = "firewall/rules/";
pub const POLICY_KEY: &str = "firewall/policy";

pub fn rule_key(id: u32) -> String {
    format!("{RULES_PREFIX}{id:010}")
}

/// The rule id a key under [`RULES_PREFIX`] names.
pub fn rule_id(key: &str) -> Option<u32> {
    key.strip_prefix(RULES_PREFIX)?.parse().ok()
}

/// Store writes that put `rule`.
pub fn put_rule(rule: &Rule) -> anyhow::Result<Op> {
    Ok(Op::put_json(rule_key(rule.id), rule)?)
}

/// Store writes that make the stored rules exactly `rules`.
pub fn replace_rules<'a>(rules: impl IntoIterator<Item = &'a Rule>) -> anyhow::Result<Vec<Op>> {
    let mut ops = vec![Op::delete_prefix(RULES_PREFIX)];
    for rule in rules {
        ops.push(put_rule(rule)?);
    }
    Ok(ops)
}

/// Store write that puts the policy.
pub fn put_policy(policy: &Policy) -> anyhow::Result<Op> {
    Ok(Op::put_json(POLICY_KEY, policy)?)
}

/// The stored configuration, plus the rules of `bootstrap` (a JSON list of
/// rules, the REST schema): a file rule replaces the stored rule with its
/// id, other stored rules stay. The merged set is validated like a REST
/// bulk write and stored before the controller starts; any error names the
/// file and the field.
pub fn load(store: &dyn Store, bootstrap: Option<&Path>) -> anyhow::Result<FirewallConfig> {
    let policy = store
        .get_json::<Policy>(POLICY_KEY)
        .context("reading the firewall policy from the store")?
        .unwrap_or_default();
    let stored: Vec<Rule> = store
        .list_json::<Rule>(RULES_PREFIX)
        .context("reading firewall rules from the store")?
        .into_iter()
        .map(|(_, rule)| rule)
        .collect();
    let mut rules = RuleSet::from_rules(stored)
        .map_err(|e| anyhow::anyhow!("stored firewall rules are invalid: {}", describe(e)))?;
    if let Some(path) = bootstrap {
        let text = std::fs::read(path)
            .with_context(|| format!("reading firewall rules file {}", path.display()))?;
        let file_rules: Vec<Rule> = decode_json(&text).map_err(|e| {
            anyhow::anyhow!("firewall rules file {}: {}", path.display(), api_error(e))
        })?;
        let in_file = RuleSet::from_rules(file_rules.clone()).map_err(|e| {
            anyhow::anyhow!("firewall rules file {}: {}", path.display(), describe(e))
        })?;
        for (i, rule) in file_rules.into_iter().enumerate() {
            rules.check(&rule).map_err(|e| {
                anyhow::anyhow!(
                    "firewall rules file {}: [{i}] conflicts with the stored rules: {}",
                    path.display(),
                    describe(e)
                )
            })?;
            rules.insert(rule);
        }
        let ops = in_file
            .iter()
            .map(put_rule)
            .collect::<anyhow::Result<_>>()?;
        store
            .apply(ops)
            .context("storing the firewall rules file")?;
    }
    Ok(FirewallConfig { policy, rules })
}

pub(crate) fn describe(e: RuleError) -> String {
    match e {
        RuleError::Invalid(f) | RuleError::Conflict(f) => f.to_string(),
    }
}

fn api_error(e: ApiError) -> String {
    match e {
        ApiError::BadRequest {
            field: Some(field),
            reason,
        }
        | ApiError::Invalid { field, reason } => format!("{field}: {reason}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
