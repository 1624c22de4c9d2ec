use flowgate_openflow::{
    Action, Bucket, FlowModCommand, GroupModCommand, GroupType, Instruction, MacAddr, Match,
    Message, MeterBand, MeterModCommand, Oxm,
};

use super::*;
use crate::cookie::Owner;
use crate::desired::{output_to, FlowEntry, FlowSpec, GroupSpec, MeterSpec};

fn host(n: u8, port: u32) -> FlowEntry {
    FlowEntry::new(
        5,
        100,
        Match::new().with(Oxm::EthDst(MacAddr([2, 0, 0, 0, 0, n]), None)),
        FlowSpec::new(Owner::Forwarding.cookie(u64::from(n)), output_to(port)),
    )
}

fn tables(entries: &[FlowEntry]) -> SwitchTables {
    let mut t = SwitchTables::default();
    for e in entries {
        t.flows.insert(e.key.clone(), e.spec.clone());
    }
    t
}

fn commands(plan: &Plan) -> Vec<FlowModCommand> {
    plan.messages
        .iter()
        .filter_map(|m| match m {
            Message::FlowMod(fm) => Some(fm.command),
            _ => None,
        })
        .collect()
}

#[test]
fn nothing_to_do_sends_nothing() {
    let desired = tables(&[host(1, 1), host(2, 2)]);
    let mut installed = desired.clone();
    let plan = reconcile_all(&desired, &mut installed);
    assert!(plan.is_empty());
    assert_eq!(plan.counts.total(), 0);
}

#[test]
fn missing_changed_and_stale_entries_are_repaired() {
    let desired = tables(&[host(1, 1), host(2, 2), host(3, 3)]);
    // 1 is right, 2 points at the wrong port, 3 is missing, 4 is stale.
    let mut installed = tables(&[host(1, 1), host(2, 9), host(4, 4)]);
    let plan = reconcile_all(&desired, &mut installed);
    assert_eq!(
        plan.counts,
        ReconcileCounts {
            flow_adds: 1,
            flow_modifies: 1,
            flow_deletes: 1,
            ..Default::default()
        }
    );
    let mut cmds = commands(&plan);
    cmds.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(
        cmds,
        vec![
            FlowModCommand::Add,
            FlowModCommand::DeleteStrict,
            FlowModCommand::ModifyStrict
        ]
    );
    assert_eq!(installed, desired);
}

#[test]
fn deletes_are_strict_and_cookie_exact() {
    let mut installed = tables(&[host(4, 4)]);
    let plan = reconcile_all(&SwitchTables::default(), &mut installed);
    match &plan.messages[..] {
        [Message::FlowMod(fm)] => {
            assert_eq!(fm.command, FlowModCommand::DeleteStrict);
            assert_eq!(fm.cookie, Owner::Forwarding.cookie(4));
            assert_eq!(fm.cookie_mask, u64::MAX);
            assert_eq!(fm.priority, 100);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_changed_timeout_replaces_the_entry_with_add() {
    let desired = tables(&[FlowEntry {
        spec: host(1, 1).spec.idle_timeout(30),
        ..host(1, 1)
    }]);
    let mut installed = tables(&[host(1, 1)]);
    let plan = reconcile_all(&desired, &mut installed);
    assert_eq!(commands(&plan), vec![FlowModCommand::Add]);
}

#[test]
fn incremental_reconcile_touches_only_the_given_keys() {
    let desired = tables(&[host(1, 1), host(2, 2)]);
    let mut installed = SwitchTables::default();
    let key = host(1, 1).key;
    let plan = reconcile_flows([&key], &desired, &mut installed);
    assert_eq!(plan.counts.flow_adds, 1);
    assert_eq!(installed.flows.len(), 1);
}

#[test]
fn groups_and_meters_come_before_flows_and_leave_after_them() {
    let group = GroupSpec {
        group_type: GroupType::All,
        buckets: vec![Bucket {
            weight: 0,
            watch_port: flowgate_openflow::port_no::ANY,
            watch_group: flowgate_openflow::OFPG_ANY,
            actions: vec![Action::Output {
                port: 1,
                max_len: 0,
            }],
        }],
    };
    let meter = MeterSpec {
        flags: 1,
        bands: vec![MeterBand::Drop {
            rate: 1000,
            burst_size: 0,
        }],
    };
    let user = FlowEntry::new(
        5,
        10,
        Match::default(),
        FlowSpec::new(
            Owner::Qos.cookie(1),
            vec![
                Instruction::Meter(7),
                Instruction::ApplyActions(vec![Action::Group(3)]),
            ],
        ),
    );
    let mut desired = tables(&[user]);
    desired.groups.insert(3, group);
    desired.meters.insert(7, meter);
    let mut installed = SwitchTables::default();
    let plan = reconcile_all(&desired, &mut installed);
    let kinds: Vec<&str> = plan
        .messages
        .iter()
        .map(|m| match m {
            Message::MeterMod(mm) if mm.command == MeterModCommand::Add => "meter+",
            Message::GroupMod(gm) if gm.command == GroupModCommand::Add => "group+",
            Message::FlowMod(_) => "flow",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, vec!["meter+", "group+", "flow"]);

    let plan = reconcile_all(&SwitchTables::default(), &mut installed);
    let kinds: Vec<&str> = plan
        .messages
        .iter()
        .map(|m| match m {
            Message::MeterMod(mm) if mm.command == MeterModCommand::Delete => "meter-",
            Message::GroupMod(gm) if gm.command == GroupModCommand::Delete => "group-",
            Message::FlowMod(_) => "flow",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, vec!["flow", "meter-", "group-"]);
    assert_eq!(installed, SwitchTables::default());
}

#[test]
fn a_reasserted_entry_is_sent_even_when_believed_installed() {
    let desired = tables(&[host(1, 1)]);
    let mut installed = desired.clone();
    let mut plan = Plan::default();
    reassert_flow(&mut plan, &host(1, 1).key, &desired, &mut installed);
    assert_eq!(commands(&plan), vec![FlowModCommand::Add]);
    assert_eq!(plan.counts.flow_adds, 1);
    assert_eq!(installed, desired);
    // Nothing desired under that key: nothing sent.
    let mut plan = Plan::default();
    reassert_flow(&mut plan, &host(2, 2).key, &desired, &mut installed);
    assert!(plan.is_empty());
}
