use std::time::Instant;

use flowgate_controller::desired::FlowEntry;

use super::*;
use crate::compile::{compile_switch, rule_cookie};
use crate::config::DefaultAction;
use crate::rule::RuleAction;
use flowgate_controller::module::{Change, Followed, StoreSync};
use flowgate_controller::service::{Origin, Staged};
use flowgate_controller::testing::FakeSwitch;
use serde_json::json;

fn rule(v: serde_json::Value) -> Rule {
    let r: Rule = serde_json::from_value(v).expect("rule parses");
    r.validate().expect("rule is valid");
    r
}

fn icmp(id: u32, priority: u16) -> Rule {
    rule(json!({"id": id, "priority": priority, "action": "allow",
        "match": {"ip_proto": "icmp", "ip_src": format!("10.0.0.{id}")}}))
}

/// A firewall with two switches up, and the fake switches its changes land on.
struct Harness {
    fw: Firewall,
    switches: Vec<FakeSwitch>,
}

impl Harness {
    fn new(config: FirewallConfig) -> Harness {
        let mut h = Harness {
            fw: Firewall::new(config),
            switches: vec![FakeSwitch::new(1), FakeSwitch::new(2)],
        };
        for dpid in [1, 2] {
            h.event(&Event::SwitchUp {
                dpid,
                ports: &[],
                installed: &[],
                groups: &[],
                meters: &[],
            });
        }
        h
    }

    /// What the switches saw of `changes`.
    fn land(&mut self, changes: &[Change]) -> Vec<Change> {
        self.switches
            .iter_mut()
            .flat_map(|sw| sw.apply(changes))
            .collect()
    }

    fn event(&mut self, event: &Event<'_>) -> Vec<Change> {
        let mut ctx = Ctx::new(Instant::now());
        self.fw.handle(event, &mut ctx);
        let changes = ctx.take_changes();
        self.land(&changes)
    }

    /// Stages `op` as an operator's write; the report and what the
    /// switches saw.
    fn apply(&mut self, op: FirewallOp) -> (ApplyReport, Vec<Change>) {
        let (staged, changes) = self.stage(op, &Origin::rest());
        (staged.expect("valid").value, changes)
    }

    fn stage(
        &mut self,
        op: FirewallOp,
        by: &Origin,
    ) -> (
        Result<Staged<Firewall, ApplyReport>, FirewallError>,
        Vec<Change>,
    ) {
        let mut ctx = Ctx::new(Instant::now());
        let staged = self.fw.stage(op, by, &mut ctx);
        let changes = ctx.take_changes();
        (staged, self.land(&changes))
    }

    /// Runs a staged write's undo; what the switches saw.
    fn undo(&mut self, staged: Staged<Firewall, ApplyReport>) -> Vec<Change> {
        let mut ctx = Ctx::new(Instant::now());
        staged.undo(&mut self.fw, &mut ctx);
        let changes = ctx.take_changes();
        self.land(&changes)
    }

    /// The firewall entries on switch `i` equal a fresh compilation.
    fn assert_consistent(&self) {
        for sw in &self.switches {
            let mut have: Vec<FlowEntry> = sw
                .flows
                .iter()
                .filter(|(_, s)| {
                    flowgate_controller::cookie::owner_of(s.cookie) == Some(Owner::Firewall)
                })
                .map(|(k, s)| FlowEntry {
                    key: k.clone(),
                    spec: s.clone(),
                })
                .collect();
            let mut want = compile_switch(self.fw.config(), sw.dpid);
            let order = |e: &FlowEntry| (e.key.priority, format!("{:?}", e.key));
            have.sort_by_key(order);
            want.sort_by_key(order);
            assert_eq!(have, want, "switch {}", sw.dpid);
        }
    }
}

fn deny_by_default(rules: Vec<Rule>) -> FirewallConfig {
    FirewallConfig {
        policy: Policy {
            enabled: true,
            default_action: DefaultAction::Deny,
        },
        rules: RuleSet::from_rules(rules).expect("valid"),
    }
}

fn installs(changes: &[Change]) -> usize {
    changes
        .iter()
        .filter(|c| matches!(c, Change::InstallFlow { .. }))
        .count()
}

fn removes(changes: &[Change]) -> usize {
    changes
        .iter()
        .filter(|c| matches!(c, Change::RemoveFlow { .. }))
        .count()
}

#[test]
fn switch_up_declares_everything() {
    let h = Harness::new(deny_by_default(vec![icmp(1, 10), icmp(2, 20)]));
    h.assert_consistent();
    // 6 infrastructure entries + default deny + 2 rules.
    let fw_entries = h.switches[0]
        .flows
        .values()
        .filter(|s| s.cookie >> 48 == u64::from(Owner::Firewall.id()))
        .count();
    assert_eq!(fw_entries, 9);
}

#[test]
fn adding_changing_deleting_one_rule_touches_only_its_entries() {
    let mut h = Harness::new(deny_by_default(vec![icmp(1, 10), icmp(2, 20)]));
    // Add: one entry per switch, nothing else.
    let (report, changes) = h.apply(FirewallOp::Upsert(icmp(3, 30)));
    assert_eq!((installs(&changes), removes(&changes)), (2, 0));
    assert!(changes.iter().all(|c| matches!(c,
        Change::InstallFlow { entry, .. } if entry.spec.cookie == rule_cookie(3))));
    assert_eq!(report.flows, 2);
    h.assert_consistent();

    // Change its priority: the old key goes, the new comes.
    let (_, changes) = h.apply(FirewallOp::Upsert(icmp(3, 40)));
    assert_eq!((installs(&changes), removes(&changes)), (2, 2));
    h.assert_consistent();

    // Re-applying the same rule changes nothing.
    let (_, changes) = h.apply(FirewallOp::Upsert(icmp(3, 40)));
    assert!(changes.is_empty());

    // Delete.
    let (report, changes) = h.apply(FirewallOp::Delete(3));
    assert_eq!((installs(&changes), removes(&changes)), (0, 2));
    assert_eq!(report.flows, 0);
    h.assert_consistent();
}

#[test]
fn first_and_last_stateful_rule_bring_and_take_conntrack_entries() {
    let mut h = Harness::new(deny_by_default(vec![icmp(1, 10)]));
    let web = rule(json!({"id": 5, "priority": 50, "action": "allow-related",
        "match": {"ip_proto": "tcp", "dst_port": 80}}));
    let (report, changes) = h.apply(FirewallOp::Upsert(web));
    // Per switch: 2 +new entries (IPv4, IPv6), 2 connection entries, 2 track entries.
    assert_eq!((installs(&changes), removes(&changes)), (12, 0));
    assert_eq!(report.flows, 8);
    h.assert_consistent();
    let (_, changes) = h.apply(FirewallOp::Delete(5));
    assert_eq!((installs(&changes), removes(&changes)), (0, 12));
    h.assert_consistent();
}

#[test]
fn bulk_replace_and_policy_changes_send_only_differences() {
    let rules: Vec<Rule> = (1..=50).map(|i| icmp(i, 10 + i as u16)).collect();
    let mut h = Harness::new(deny_by_default(rules.clone()));
    // Same set again: nothing.
    let set = RuleSet::from_rules(rules.clone()).expect("valid");
    let (report, changes) = h.apply(FirewallOp::ReplaceAll(set));
    assert!(changes.is_empty());
    assert_eq!(report.flows, 2 * (50 + 7));
    // One rule replaced, one removed.
    let mut next = rules.clone();
    next[0].action = RuleAction::Deny;
    next.pop();
    let (_, changes) = h.apply(FirewallOp::ReplaceAll(
        RuleSet::from_rules(next).expect("valid"),
    ));
    assert_eq!((installs(&changes), removes(&changes)), (2, 2));
    h.assert_consistent();

    // Default allow: the drop entry goes.
    let (_, changes) = h.apply(FirewallOp::SetPolicy(Policy::default()));
    assert_eq!((installs(&changes), removes(&changes)), (0, 2));
    h.assert_consistent();
    // Disabled: every firewall entry goes; rules are kept.
    let off = Policy {
        enabled: false,
        ..Policy::default()
    };
    let (report, changes) = h.apply(FirewallOp::SetPolicy(off));
    assert_eq!(removes(&changes), 2 * (49 + 6));
    assert_eq!(report.flows, 0);
    assert_eq!(h.fw.config().rules.len(), 49);
    // A rule change while disabled sends nothing.
    let (_, changes) = h.apply(FirewallOp::Upsert(icmp(60, 70)));
    assert!(changes.is_empty());
    h.assert_consistent();
}

#[test]
fn a_switch_that_goes_down_gets_nothing_until_it_returns() {
    let mut h = Harness::new(deny_by_default(vec![]));
    h.event(&Event::SwitchDown { dpid: 2 });
    let (_, changes) = h.apply(FirewallOp::Upsert(icmp(1, 10)));
    assert!(changes
        .iter()
        .all(|c| matches!(c, Change::InstallFlow { dpid: 1, .. })));
    let changes = h.event(&Event::SwitchUp {
        dpid: 2,
        ports: &[],
        installed: &[],
        groups: &[],
        meters: &[],
    });
    assert!(changes.iter().any(|c| matches!(c,
        Change::InstallFlow { dpid: 2, entry } if entry.spec.cookie == rule_cookie(1))));
}

#[test]
fn a_write_persists_itself_and_its_undo_restores_everything() {
    let mut h = Harness::new(deny_by_default(vec![icmp(1, 10)]));
    let mut ctx = Ctx::new(Instant::now());
    let staged =
        h.fw.stage(FirewallOp::Upsert(icmp(1, 15)), &Origin::rest(), &mut ctx)
            .unwrap();
    let changes = ctx.take_changes();
    let persisted: Vec<&Change> = changes
        .iter()
        .filter(|c| matches!(c, Change::Persist(ops) if ops.len() == 1))
        .collect();
    assert_eq!(persisted.len(), 1, "the rule's store write: {changes:?}");
    h.land(&changes);
    assert_eq!(h.fw.config().rules.get(1).unwrap().priority, 15);
    let seen = h.undo(staged);
    assert_eq!((installs(&seen), removes(&seen)), (2, 2));
    assert_eq!(h.fw.config().rules.get(1), Some(&icmp(1, 10)));
    h.assert_consistent();
}

#[test]
fn a_rule_a_module_created_is_that_modules_to_change() {
    let mut h = Harness::new(deny_by_default(vec![]));
    let hostaware = Origin::module(Owner::HostAware, "quarantine-h3");
    let mut quarantine = icmp(7, 100);
    quarantine.origin = Some(hostaware.clone());
    h.stage(FirewallOp::Upsert(quarantine.clone()), &hostaware)
        .0
        .unwrap();
    for op in [FirewallOp::Upsert(icmp(7, 100)), FirewallOp::Delete(7)] {
        let (refused, seen) = h.stage(op, &Origin::rest());
        assert!(
            matches!(&refused, Err(FirewallError::Owned(e)) if e.reason.contains("hostaware/quarantine-h3")),
            "{:?}",
            refused.err()
        );
        assert!(seen.is_empty());
    }
    // A bulk replace may keep it as it is, not drop it.
    let keep = RuleSet::from_rules(vec![quarantine.clone()]).unwrap();
    assert!(h
        .stage(FirewallOp::ReplaceAll(keep), &Origin::rest())
        .0
        .is_ok());
    let drop = RuleSet::from_rules(vec![]).unwrap();
    assert!(h
        .stage(FirewallOp::ReplaceAll(drop), &Origin::rest())
        .0
        .is_err());
    assert!(h.stage(FirewallOp::Delete(7), &hostaware).0.is_ok());
}

impl Harness {
    /// Follows `sync`; whether it was taken, and what the switches saw.
    fn follow(&mut self, sync: &StoreSync) -> (Followed, Vec<Change>) {
        let mut ctx = Ctx::new(Instant::now());
        let followed = self.fw.follow_store(sync, &mut ctx);
        let changes = ctx.take_changes();
        assert!(
            !changes.iter().any(|c| matches!(c, Change::Persist(_))),
            "following the store never writes it"
        );
        (followed, self.land(&changes))
    }
}

fn stored(rule: &Rule) -> (String, Option<Vec<u8>>) {
    (
        rule_key(rule.id),
        Some(serde_json::to_vec(rule).expect("json")),
    )
}

#[test]
fn following_the_store_sends_only_what_differs() {
    let mut h = Harness::new(deny_by_default(vec![icmp(1, 10)]));
    let keys = |changed| StoreSync {
        changed,
        complete: false,
    };

    // This node's own write coming back: nothing to do.
    let (followed, seen) = h.follow(&keys(vec![stored(&icmp(1, 10))]));
    assert_eq!(followed, Followed::Taken);
    assert!(seen.is_empty(), "{seen:?}");

    // Another node's rule: its entries, on every switch.
    let (followed, seen) = h.follow(&keys(vec![stored(&icmp(2, 10))]));
    assert_eq!(followed, Followed::Taken);
    assert_eq!(installs(&seen), 2 * compile_rule(&icmp(2, 10), 1).len());
    assert!(h.fw.config().rules.get(2).is_some());
    h.assert_consistent();

    // Values that do not decode keep what the module has for their key.
    let (followed, seen) = h.follow(&keys(vec![(rule_key(2), Some(b"{".to_vec()))]));
    assert_eq!(followed, Followed::Taken);
    assert!(seen.is_empty());
    assert!(h.fw.config().rules.get(2).is_some());

    // A state that does not validate (rule 3 overlaps rule 2) is refused
    // whole, the valid rule 4 of the same sync too.
    let mut overlapping = icmp(3, 10);
    overlapping.match_ = icmp(2, 10).match_;
    let (followed, seen) = h.follow(&keys(vec![stored(&overlapping), stored(&icmp(4, 20))]));
    assert_eq!(followed, Followed::Refused);
    assert!(seen.is_empty());
    assert_eq!(h.fw.config().rules.len(), 2);

    // A complete re-read without rule 1 (and a policy gone: the default)
    // removes it.
    let (followed, _) = h.follow(&StoreSync {
        changed: vec![stored(&icmp(2, 10))],
        complete: true,
    });
    assert_eq!(followed, Followed::Taken);
    assert!(h.fw.config().rules.get(1).is_none());
    assert_eq!(h.fw.config().policy, Policy::default());
    h.assert_consistent();
}
