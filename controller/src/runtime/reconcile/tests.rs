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

/// Tables with `desired` entries wanted and `installed` ones on the switch
/// (as read back from it: separate specs, not shared with desired ones).
fn tables(desired: &[FlowEntry], installed: &[FlowEntry]) -> SwitchTables {
    let mut t = SwitchTables::default();
    for e in installed {
        t.flows.slot(e.key.clone()).installed = Some(Arc::new(e.spec.clone()));
    }
    for e in desired {
        t.desire_flow(e.key.clone(), e.spec.clone());
    }
    t
}

fn commands(plan: &Plan) -> Vec<FlowModCommand> {
    plan.messages
        .iter()
        .filter_map(|m| match m.to_message() {
            Message::FlowMod(fm) => Some(fm.command),
            _ => None,
        })
        .collect()
}

#[test]
fn nothing_to_do_sends_nothing() {
    let entries = [host(1, 1), host(2, 2)];
    let mut t = tables(&entries, &entries);
    let plan = t.reconcile_all();
    assert!(plan.is_empty());
    assert_eq!(plan.counts.total(), 0);
    assert!(t.in_sync());
}

#[test]
fn missing_changed_and_stale_entries_are_repaired() {
    // 1 is right, 2 points at the wrong port, 3 is missing, 4 is stale.
    let mut t = tables(
        &[host(1, 1), host(2, 2), host(3, 3)],
        &[host(1, 1), host(2, 9), host(4, 4)],
    );
    let plan = t.reconcile_all();
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
    assert!(t.in_sync());
    assert_eq!(
        t.installed_flow(&host(4, 4).key),
        None,
        "stale entry forgotten"
    );
    assert_eq!(t.installed_flow(&host(2, 2).key), Some(&host(2, 2).spec));
}

#[test]
fn deletes_are_strict_and_cookie_exact() {
    let mut t = tables(&[], &[host(4, 4)]);
    let plan = t.reconcile_all();
    let messages: Vec<Message> = plan.messages.iter().map(Planned::to_message).collect();
    match &messages[..] {
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
    let desired = FlowEntry {
        spec: host(1, 1).spec.idle_timeout(30),
        ..host(1, 1)
    };
    let mut t = tables(&[desired], &[host(1, 1)]);
    let plan = t.reconcile_all();
    assert_eq!(commands(&plan), vec![FlowModCommand::Add]);
}

#[test]
fn incremental_reconcile_touches_only_the_given_keys() {
    let mut t = tables(&[host(1, 1), host(2, 2)], &[]);
    let key = host(1, 1).key;
    let mut plan = Plan::default();
    t.reconcile_flows(std::slice::from_ref(&key), &mut plan);
    assert_eq!(plan.counts.flow_adds, 1);
    assert!(t.installed_flow(&key).is_some());
    assert!(t.installed_flow(&host(2, 2).key).is_none());
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
    let mut t = tables(std::slice::from_ref(&user), &[]);
    t.desire_group(3, Some(group));
    t.desire_meter(7, Some(meter));
    let plan = t.reconcile_all();
    let kinds: Vec<&str> = plan
        .messages
        .iter()
        .map(|m| match m.to_message() {
            Message::MeterMod(mm) if mm.command == MeterModCommand::Add => "meter+",
            Message::GroupMod(gm) if gm.command == GroupModCommand::Add => "group+",
            Message::FlowMod(_) => "flow",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, vec!["meter+", "group+", "flow"]);

    t.undesire_flow(&user.key);
    t.desire_group(3, None);
    t.desire_meter(7, None);
    let plan = t.reconcile_all();
    let kinds: Vec<&str> = plan
        .messages
        .iter()
        .map(|m| match m.to_message() {
            Message::MeterMod(mm) if mm.command == MeterModCommand::Delete => "meter-",
            Message::GroupMod(gm) if gm.command == GroupModCommand::Delete => "group-",
            Message::FlowMod(_) => "flow",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, vec!["flow", "group-", "meter-"]);
    assert!(t.in_sync());
    assert!(t.reconcile_all().is_empty());
}

#[test]
fn a_resent_entry_is_encoded_once_and_recorded_installed() {
    let encoded = |entry: &FlowEntry| {
        let mut out = BytesMut::new();
        of::encode(
            0,
            &Message::FlowMod(entry.to_flow_mod(FlowModCommand::Add)),
            &mut out,
        )
        .unwrap();
        out.to_vec()
    };
    let declared = host(1, 1);
    let mut t = tables(std::slice::from_ref(&declared), &[]);
    let id = declared.key.id();
    let first = t.resend_flow(id, of::OFP_VERSION_1_3).map(<[u8]>::to_vec);
    assert_eq!(first, Some(encoded(&host(1, 1))));
    assert!(t.in_sync(), "recorded installed");
    // Believed installed: re-sent all the same.
    let again = t.resend_flow(id, of::OFP_VERSION_1_3).map(<[u8]>::to_vec);
    assert_eq!(again, first);
    // A new desired spec under the same key drops the cached encoding.
    t.desire_flow(declared.key.clone(), host(1, 9).spec);
    let changed = t.resend_flow(id, of::OFP_VERSION_1_3).map(<[u8]>::to_vec);
    assert_eq!(changed, Some(encoded(&host(1, 9))));
    // Declared again through another key of the same match: that key's id
    // now names the entry.
    let redeclared = host(1, 1);
    t.desire_flow(redeclared.key.clone(), redeclared.spec);
    assert!(t
        .resend_flow(redeclared.key.id(), of::OFP_VERSION_1_3)
        .is_some());
    // Nothing desired under that key: nothing to send.
    let absent = host(2, 2);
    assert!(t
        .resend_flow(absent.key.id(), of::OFP_VERSION_1_3)
        .is_none());
}

#[test]
fn a_desired_entry_equal_to_the_installed_one_shares_it() {
    let mut t = tables(&[], &[host(1, 1)]);
    t.desire_flow(host(1, 1).key, host(1, 1).spec);
    let slot = t.flows.get(&host(1, 1).key).unwrap();
    let (want, have) = (slot.desired.as_ref(), slot.installed.as_ref());
    assert!(Arc::ptr_eq(want.unwrap(), have.unwrap()));
    assert!(t.reconcile_all().is_empty());
}

#[test]
fn withdrawn_and_removed_entries_leave_no_slot_behind() {
    let mut t = tables(&[host(1, 1), host(2, 2)], &[]);
    t.reconcile_all();
    t.undesire_flow(&host(1, 1).key);
    t.reconcile_flows(&[host(1, 1).key], &mut Plan::default());
    // The switch reports the other entry removed (idle timeout).
    t.flow_removed(&host(2, 2).key, host(2, 2).spec.cookie);
    assert_eq!(t.flows.slots().count(), 0);
    // A removal under a foreign cookie is not ours to forget.
    let mut t = tables(&[host(3, 3)], &[host(3, 3)]);
    t.flow_removed(&host(3, 3).key, 0xdead);
    assert!(t.installed_flow(&host(3, 3).key).is_some());
}

#[test]
fn a_rejected_entry_is_sent_again_by_the_next_reconciliation() {
    let declared = host(1, 1);
    let mut t = tables(std::slice::from_ref(&declared), &[]);
    assert_eq!(t.reconcile_all().counts.flow_adds, 1);
    t.forget_installed_flow(declared.key.id());
    let mut plan = Plan::default();
    t.reconcile_flows(&[host(1, 1).key], &mut plan);
    assert_eq!(commands(&plan), vec![FlowModCommand::Add]);
}

#[test]
fn planned_flow_mods_encode_like_their_messages() {
    let mut t = tables(&[host(1, 1)], &[host(2, 2)]);
    let plan = t.reconcile_all();
    assert_eq!(plan.messages.len(), 2);
    for planned in &plan.messages {
        let mut direct = BytesMut::new();
        assert!(planned.encode(of::OFP_VERSION_1_3, 7, &mut direct));
        let mut owned = BytesMut::new();
        of::encode(7, &planned.to_message(), &mut owned).unwrap();
        assert_eq!(direct, owned);
    }
}

#[test]
fn incremental_changes_remove_a_group_only_after_the_flows_using_it() {
    let group = GroupSpec {
        group_type: GroupType::All,
        buckets: Vec::new(),
    };
    let user = FlowEntry::new(
        5,
        10,
        Match::default(),
        FlowSpec::new(
            Owner::Qos.cookie(1),
            vec![Instruction::ApplyActions(vec![Action::Group(3)])],
        ),
    );
    let mut t = tables(std::slice::from_ref(&user), &[]);
    t.desire_group(3, Some(group));
    t.reconcile_all();
    // One module event withdraws both; the runtime reconciles groups first.
    t.undesire_flow(&user.key);
    t.desire_group(3, None);
    let mut plan = Plan::default();
    t.reconcile_groups_meters(&[3], &[], &mut plan);
    t.reconcile_flows(&[user.key], &mut plan);
    let kinds: Vec<&str> = plan
        .drain()
        .map(|m| match m {
            Planned::DeleteFlow { .. } => "flow-",
            Planned::Group(_) => "group",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, vec!["flow-", "group"]);
    assert!(plan.is_empty());
}

#[test]
fn a_redump_replaces_what_is_installed_and_keeps_what_is_desired() {
    // Believed installed: 1 and 2. Another master meanwhile removed 2,
    // changed 3's port and left 4; desired are 1, 2 and 3.
    let mut t = tables(
        &[host(1, 1), host(2, 2), host(3, 3)],
        &[host(1, 1), host(2, 2)],
    );
    let sync = SwitchSync {
        version: 4,
        features: flowgate_openflow::SwitchFeatures {
            datapath_id: 1,
            n_buffers: 0,
            n_tables: 254,
            auxiliary_id: 0,
            capabilities: 0,
            reserved: 0,
        },
        desc: None,
        ports: vec![],
        flows: [host(1, 1), host(3, 9), host(4, 4)]
            .iter()
            .map(crate::testing::reported_stats)
            .collect(),
        groups: vec![],
        meters: vec![],
        unknown: vec![],
    };
    t.reinstall(&sync);
    assert_eq!(t.installed_flow(&host(2, 2).key), None);
    assert_eq!(t.installed_flow(&host(4, 4).key), Some(&host(4, 4).spec));
    assert_eq!(t.desired_flow(&host(2, 2).key), Some(&host(2, 2).spec));
    let plan = t.reconcile_all();
    // 4 deleted, 2 added, 3 replaced; 1 untouched.
    assert_eq!(plan.counts.flow_deletes, 1);
    assert_eq!(plan.counts.flow_adds + plan.counts.flow_modifies, 2);
    assert!(t.in_sync());
}
