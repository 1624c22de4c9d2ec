//! The pure compiler: (policy, rules, switch) → the flow entries of the ACL
//! table. No I/O and no state, so it is tested on its own and the module
//! can recompute any rule's old entries instead of remembering them.
//!
//! OpenFlow priorities in the ACL table:
//!
//! | priority          | entries                                             |
//! |-------------------|-----------------------------------------------------|
//! | 65000 `INFRA`     | ARP, LLDP, IPv6 neighbour discovery → next table (once anything can be dropped: default deny, or any rule on the switch) |
//! | 64000 `TRACK`     | IPv4/IPv6 with `ct_state=-trk` → `ct(zone, table=1)` (only when an allow-related rule applies to the switch) |
//! | 2·p + 1           | connections of allow-related rule p: `ct_mark=<id>` and `+est`, or `+rel-est` → next table |
//! | 2·p               | rule p's own entries (allow → next table, deny → drop, allow-related → `+new`: `ct(commit, exec(ct_mark=<id>))` → next table) |
//! | 1                 | default deny: empty match, no instructions (drop)   |
//! | 0                 | the core's miss entry → next table (default allow)  |
//!
//! A rule's priority p is 1..30000, so user entries sit in 2..60001. The
//! connection entries of a rule sit just above its own entries: replies of a
//! connection a rule admitted pass unless a *higher* rule denies them, and
//! deleting the rule stops its connections at once (their entries go with
//! it). The conntrack mark ties a connection to the rule that admitted it,
//! and the tenant scope is matched again on the connection entries, so a
//! tuple that collides in the shared zone can never borrow another tenant's
//! connection.

use flowgate_controller::cookie::Owner;
use flowgate_controller::desired::{FlowEntry, FlowSpec};
use flowgate_controller::pipeline::{metadata, ACL, MODULE_MISS_PRIORITY, QOS};
use flowgate_openflow::{
    ct_mark_match, ct_state, ct_state_match, set_ct_mark, Ct, Instruction, Match, NxAction, Oxm,
};

use crate::config::{DefaultAction, FirewallConfig};
use crate::rule::{
    Family, Rule, RuleAction, ETH_TYPE_ARP, ETH_TYPE_IPV6, ETH_TYPE_LLDP, PROTO_ICMPV6,
};

/// Priority of the entries that always pass (ARP, LLDP, ND).
pub const INFRA_PRIORITY: u16 = 65_000;
/// Priority of the entries sending untracked IP packets through conntrack.
pub const TRACK_PRIORITY: u16 = 64_000;
/// The conntrack zone of the firewall's connections: its owner id.
pub const CT_ZONE: u16 = Owner::Firewall.id();

/// Cookie objects of the firewall's own entries; rule ids are below 2^32.
const INFRA_OBJECT: u64 = 1 << 32;
const TRACK_OBJECT: u64 = (1 << 32) | 0x100;
const DEFAULT_OBJECT: u64 = (1 << 32) | 0x200;
/// ICMPv6 neighbour discovery: router/neighbour solicitation/advertisement.
const ND_TYPES: [u8; 4] = [133, 134, 135, 136];

/// The OpenFlow priority of a rule's own entries.
pub fn rule_priority(priority: u16) -> u16 {
    priority.saturating_mul(2)
}

/// The OpenFlow priority of a rule's connection entries.
pub fn connection_priority(priority: u16) -> u16 {
    rule_priority(priority).saturating_add(1)
}

/// The cookie of every entry compiled from rule `id`.
pub fn rule_cookie(id: u32) -> u64 {
    Owner::Firewall.cookie(u64::from(id))
}

/// Whether the rule has entries on switch `dpid`.
pub fn applies_to(rule: &Rule, dpid: u64) -> bool {
    rule.scope.dpid.is_none_or(|d| d.0 == dpid)
}

/// Every entry the firewall wants in the ACL table of switch `dpid`.
pub fn compile_switch(config: &FirewallConfig, dpid: u64) -> Vec<FlowEntry> {
    let mut entries = base_entries(config, dpid);
    if config.policy.enabled {
        for rule in config.rules.iter() {
            entries.extend(compile_rule(rule, dpid));
        }
    }
    entries
}

/// The firewall's own entries on switch `dpid`: what always passes (once
/// anything can be dropped: default deny or any rule here), conntrack
/// recirculation when an allow-related rule applies here, and the default
/// action. None when disabled, or with default allow and no rules.
pub fn base_entries(config: &FirewallConfig, dpid: u64) -> Vec<FlowEntry> {
    let policy = &config.policy;
    if !policy.enabled {
        return Vec::new();
    }
    let (mut any_rule, mut stateful) = (false, false);
    for rule in config.rules.iter().filter(|r| applies_to(r, dpid)) {
        any_rule = true;
        stateful |= rule.action == RuleAction::AllowRelated;
    }
    if !any_rule && policy.default_action == DefaultAction::Allow {
        return Vec::new();
    }
    let pass = || vec![Instruction::GotoTable(QOS)];
    let mut entries = Vec::new();
    let mut infra = |object: u64, m: Match| {
        entries.push(entry(
            INFRA_PRIORITY,
            m,
            Owner::Firewall.cookie(INFRA_OBJECT + object),
            pass(),
        ))
    };
    infra(1, Match::new().with(Oxm::EthType(ETH_TYPE_ARP)));
    infra(2, Match::new().with(Oxm::EthType(ETH_TYPE_LLDP)));
    for t in ND_TYPES {
        infra(
            u64::from(t),
            Match::new()
                .with(Oxm::EthType(ETH_TYPE_IPV6))
                .with(Oxm::IpProto(PROTO_ICMPV6))
                .with(Oxm::Icmpv6Type(t)),
        );
    }
    if stateful {
        for (i, family) in [Family::V4, Family::V6].into_iter().enumerate() {
            entries.push(entry(
                TRACK_PRIORITY,
                Match::new()
                    .with(Oxm::EthType(family.eth_type()))
                    .with(ct_state_match(0, ct_state::TRK)),
                Owner::Firewall.cookie(TRACK_OBJECT + i as u64),
                vec![Instruction::ApplyActions(vec![NxAction::Ct(
                    Ct::recirculate(CT_ZONE, ACL),
                )
                .to_action()])],
            ));
        }
    }
    if policy.default_action == DefaultAction::Deny {
        entries.push(entry(
            MODULE_MISS_PRIORITY,
            Match::default(),
            Owner::Firewall.cookie(DEFAULT_OBJECT),
            Vec::new(),
        ));
    }
    entries
}

/// The entries of one (valid) rule on switch `dpid`; none when it is
/// scoped to another switch.
pub fn compile_rule(rule: &Rule, dpid: u64) -> Vec<FlowEntry> {
    if !applies_to(rule, dpid) {
        return Vec::new();
    }
    let cookie = rule_cookie(rule.id);
    let mut scope = Match::new();
    if let Some(port) = rule.scope.in_port {
        scope = scope.with(Oxm::InPort(port));
    }
    if let Some(tenant) = rule.scope.tenant {
        scope = scope.with(tenant_field(tenant));
    }
    let (instructions, extra) = match rule.action {
        RuleAction::Allow => (vec![Instruction::GotoTable(QOS)], None),
        RuleAction::Deny => (Vec::new(), None),
        RuleAction::AllowRelated => (
            vec![
                Instruction::ApplyActions(vec![NxAction::Ct(
                    Ct::commit(CT_ZONE).with_actions(vec![set_ct_mark(rule.id)]),
                )
                .to_action()]),
                Instruction::GotoTable(QOS),
            ],
            Some(ct_state_match(
                ct_state::TRK | ct_state::NEW,
                ct_state::TRK | ct_state::NEW,
            )),
        ),
    };
    let mut entries: Vec<FlowEntry> = rule
        .match_
        .to_matches(rule.eth_types(), &scope)
        .into_iter()
        .map(|m| {
            let m = match &extra {
                Some(field) => m.with(field.clone()),
                None => m,
            };
            entry(
                rule_priority(rule.priority),
                m,
                cookie,
                instructions.clone(),
            )
        })
        .collect();
    if rule.action == RuleAction::AllowRelated {
        // Packets of the rule's connections, in both directions, and
        // packets related to them (ICMP errors, ALG data channels).
        let tenant = rule.scope.tenant.map(tenant_field);
        for (state, mask) in [
            (ct_state::TRK | ct_state::EST, ct_state::TRK | ct_state::EST),
            (
                ct_state::TRK | ct_state::REL,
                ct_state::TRK | ct_state::REL | ct_state::EST,
            ),
        ] {
            let mut m = Match::new()
                .with(ct_state_match(state, mask))
                .with(ct_mark_match(rule.id, None));
            if let Some(t) = &tenant {
                m = m.with(t.clone());
            }
            entries.push(entry(
                connection_priority(rule.priority),
                m,
                cookie,
                vec![Instruction::GotoTable(QOS)],
            ));
        }
    }
    entries
}

/// "Tenant network `vni`" in the metadata layout classify writes.
fn tenant_field(vni: u32) -> Oxm {
    Oxm::Metadata(metadata::tenant(vni), Some(metadata::TENANT_MASK))
}

fn entry(priority: u16, m: Match, cookie: u64, instructions: Vec<Instruction>) -> FlowEntry {
    FlowEntry::new(ACL, priority, m, FlowSpec::new(cookie, instructions))
}

#[cfg(test)]
mod tests;
