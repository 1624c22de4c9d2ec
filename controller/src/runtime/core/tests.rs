use bytes::Bytes;
use flowgate_openflow::{self as of, FlowModCommand, FlowStats, Match, Oxm, SwitchFeatures};

use super::*;
use crate::desired::{output_to, FlowEntry, FlowSpec};
use crate::module::{Change, Ctx};
use crate::runtime::session::SyncDump;
use crate::runtime::writer::SwitchWriter;
use crate::testing::reported_stats;

const DPID: u64 = 1;

/// A module that installs what it is told to and records what it hears.
#[derive(Default)]
struct Probe {
    owner: Option<Owner>,
    heard: Vec<String>,
    /// Lengths of the packet-in runs it was handed.
    runs: Vec<usize>,
    /// Keys a packet-in re-sends, by its `buffer_id`.
    keys: Vec<FlowKey>,
}

impl Module for Probe {
    fn owner(&self) -> Owner {
        self.owner.unwrap_or(Owner::Firewall)
    }

    fn handle(&mut self, event: &Event<'_>, _ctx: &mut Ctx) {
        match event {
            Event::Notice { from, payload } => {
                if let Some(text) = payload.downcast_ref::<&'static str>() {
                    self.heard.push(format!("{from:?}:{text}"));
                }
            }
            Event::FlowRemoved { .. } => self.heard.push("removed".into()),
            _ => {}
        }
    }

    fn handle_packet_ins(&mut self, dpid: u64, batch: PacketIns<'_>, ctx: &mut Ctx) {
        self.runs.push(batch.iter().count());
        for packet_in in batch.iter() {
            ctx.resend(dpid, &self.keys[packet_in.buffer_id as usize]);
        }
    }
}

/// The publisher in notice tests: a distinct type so calls can find it.
#[derive(Default)]
struct Publisher;

impl Module for Publisher {
    fn owner(&self) -> Owner {
        Owner::Topology
    }

    fn handle(&mut self, _event: &Event<'_>, _ctx: &mut Ctx) {}
}

struct Rig {
    core: Core,
    writer: SwitchWriter,
    _cmd: mpsc::Receiver<SwitchCmd>,
}

impl Rig {
    fn new(installed: Vec<FlowStats>) -> Rig {
        let modules: Vec<Box<dyn Module>> = vec![Box::new(Probe::default()), Box::new(Publisher)];
        Rig::with(modules, installed, vec![])
    }

    /// A rig whose switch did not report the tables of `unknown`.
    fn with(
        modules: Vec<Box<dyn Module>>,
        installed: Vec<FlowStats>,
        unknown: Vec<SyncDump>,
    ) -> Rig {
        let mut core = Core::new(modules, Arc::new(Metrics::default()));
        let writer = SwitchWriter::detached(usize::MAX);
        let (cmd, cmd_rx) = mpsc::channel(16);
        let sync = SwitchSync {
            version: 4,
            features: SwitchFeatures {
                datapath_id: DPID,
                n_buffers: 0,
                n_tables: 254,
                auxiliary_id: 0,
                capabilities: 0,
                reserved: 0,
            },
            desc: None,
            ports: vec![],
            flows: installed,
            groups: vec![],
            meters: vec![],
            unknown,
        };
        core.handle(
            CoreEvent::SwitchUp {
                dpid: DPID,
                handle: SwitchHandle {
                    conn_id: 1,
                    writer: writer.clone(),
                    cmd,
                },
                sync: Box::new(sync),
            },
            Instant::now(),
        );
        core.flush();
        Rig {
            core,
            writer,
            _cmd: cmd_rx,
        }
    }

    /// Everything the core handed to the switch's writer since last asked.
    fn sent(&mut self) -> Vec<(u32, Message)> {
        let mut out = Vec::new();
        let bytes = self.writer.take_pending();
        let mut rest = &bytes[..];
        while let Ok(Some(len)) = of::frame_len(rest) {
            let (h, m) = of::decode(&rest[..len]).unwrap();
            out.push((h.xid, m));
            rest = &rest[len..];
        }
        assert!(rest.is_empty(), "a torn message was sent");
        out
    }

    fn reply(&mut self, xid: u32, message: Message) {
        self.core.handle(
            CoreEvent::Message {
                dpid: DPID,
                conn_id: 1,
                xid,
                message,
            },
            Instant::now(),
        );
    }
}

fn rule(n: u8) -> FlowEntry {
    FlowEntry::new(
        pipeline::ACL,
        100,
        Match::new().with(Oxm::TcpDst(u16::from(n))),
        FlowSpec::new(Owner::Firewall.cookie(u64::from(n)), output_to(1)),
    )
}

fn flow_mods(sent: &[(u32, Message)]) -> Vec<(u32, FlowModCommand)> {
    sent.iter()
        .filter_map(|(xid, m)| match m {
            Message::FlowMod(fm) => Some((*xid, fm.command)),
            _ => None,
        })
        .collect()
}

fn barrier_xid(sent: &[(u32, Message)]) -> u32 {
    let barriers: Vec<u32> = sent
        .iter()
        .filter(|(_, m)| *m == Message::BarrierRequest)
        .map(|(x, _)| *x)
        .collect();
    assert_eq!(barriers.len(), 1, "one barrier per batch: {sent:?}");
    barriers[0]
}

#[test]
fn a_new_switch_gets_the_pipeline_then_a_barrier() {
    let mut rig = Rig::new(vec![]);
    let sent = rig.sent();
    assert_eq!(flow_mods(&sent).len(), pipeline::core_entries().len());
    assert_eq!(sent.last().map(|(_, m)| m), Some(&Message::BarrierRequest));
}

#[test]
fn a_switch_that_already_has_everything_is_sent_nothing() {
    let installed: Vec<FlowStats> = pipeline::core_entries()
        .iter()
        .map(reported_stats)
        .collect();
    let mut rig = Rig::new(installed);
    assert!(rig.sent().is_empty());
}

#[test]
fn stale_flowgate_flows_are_removed_but_foreign_ones_kept() {
    let mut installed: Vec<FlowStats> = pipeline::core_entries()
        .iter()
        .map(reported_stats)
        .collect();
    installed.push(reported_stats(&rule(1)));
    let mut foreign = reported_stats(&rule(2));
    foreign.cookie = 0x1234;
    installed.push(foreign);
    let mut rig = Rig::new(installed);
    let sent = rig.sent();
    let mods = flow_mods(&sent);
    assert_eq!(mods.len(), 1);
    assert_eq!(mods[0].1, FlowModCommand::DeleteStrict);
}

#[tokio::test]
async fn a_call_is_acknowledged_by_the_barrier_that_follows_it() {
    let mut rig = Rig::new(vec![]);
    rig.sent();
    let mut acks = rig
        .core
        .call_module::<Probe, _>(Instant::now(), |_, ctx| ctx.install(DPID, rule(1)))
        .unwrap()
        .acks;
    assert_eq!(acks.len(), 1);
    rig.core.flush();
    let sent = rig.sent();
    assert_eq!(flow_mods(&sent).len(), 1);
    let barrier = barrier_xid(&sent);
    let (_, mut ack) = acks.pop().unwrap();
    assert!(
        ack.try_recv().is_err(),
        "acknowledged before the barrier reply"
    );
    rig.reply(barrier, Message::BarrierReply);
    let ack = ack.try_recv().expect("barrier reply acknowledges the call");
    assert!(ack.rejections.is_empty());
}

#[tokio::test]
async fn a_rejected_flow_mod_is_reported_and_retried_later() {
    let mut rig = Rig::new(vec![]);
    rig.sent();
    let mut acks = rig
        .core
        .call_module::<Probe, _>(Instant::now(), |_, ctx| ctx.install(DPID, rule(1)))
        .unwrap()
        .acks;
    rig.core.flush();
    let sent = rig.sent();
    let (xid, _) = flow_mods(&sent)[0];
    let error = of::ErrorMsg::Standard {
        err_type: of::error_type::BAD_MATCH,
        code: 4,
        data: Bytes::new(),
    };
    rig.reply(xid, Message::Error(error));
    rig.reply(barrier_xid(&sent), Message::BarrierReply);
    let ack = acks.pop().unwrap().1.try_recv().unwrap();
    assert_eq!(ack.rejections.len(), 1);
    assert!(
        ack.rejections[0].error().starts_with("OFPET_BAD_MATCH"),
        "{:?}",
        ack.rejections
    );
    // Installing the same entry again resends it: it is not believed installed.
    rig.core
        .call_module::<Probe, _>(Instant::now(), |_, ctx| ctx.install(DPID, rule(1)))
        .unwrap();
    rig.core.flush();
    assert_eq!(flow_mods(&rig.sent()).len(), 1);
}

#[tokio::test]
async fn an_unchanged_install_sends_nothing_and_needs_no_ack() {
    let mut rig = Rig::new(vec![]);
    let call = |rig: &mut Rig| {
        rig.core
            .call_module::<Probe, _>(Instant::now(), |_, ctx| ctx.install(DPID, rule(1)))
            .unwrap()
            .acks
    };
    call(&mut rig);
    rig.core.flush();
    rig.sent();
    assert!(call(&mut rig).is_empty());
    rig.core.flush();
    assert!(rig.sent().is_empty());
}

#[test]
fn a_reasserted_entry_is_sent_again_as_an_add() {
    let mut rig = Rig::new(vec![]);
    rig.sent();
    let install = |rig: &mut Rig, reassert: bool| {
        rig.core
            .call_module::<Probe, _>(Instant::now(), |_, ctx| {
                if reassert {
                    ctx.reassert(DPID, rule(1));
                } else {
                    ctx.install(DPID, rule(1));
                }
            })
            .unwrap();
        rig.core.flush();
        flow_mods(&rig.sent())
    };
    assert_eq!(install(&mut rig, false).len(), 1);
    assert!(install(&mut rig, false).is_empty(), "believed installed");
    let again = install(&mut rig, true);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].1, FlowModCommand::Add);
}

#[test]
fn a_reasserted_entry_can_release_a_buffered_packet_in_the_same_flow_mod() {
    let mut rig = Rig::new(vec![]);
    rig.sent();
    rig.core
        .call_module::<Probe, _>(Instant::now(), |_, ctx| {
            ctx.reassert_releasing(DPID, rule(1), 42)
        })
        .unwrap();
    rig.core.flush();
    let sent = rig.sent();
    let flow_mods: Vec<&of::FlowMod> = sent
        .iter()
        .filter_map(|(_, m)| match m {
            Message::FlowMod(fm) => Some(fm),
            _ => None,
        })
        .collect();
    assert_eq!(flow_mods.len(), 1, "{sent:?}");
    assert_eq!(flow_mods[0].buffer_id, 42);
    assert!(!sent.iter().any(|(_, m)| matches!(m, Message::PacketOut(_))));
    // The cached encoding keeps no buffer: the next re-send carries none.
    rig.core
        .call_module::<Probe, _>(Instant::now(), |_, ctx| ctx.reassert(DPID, rule(1)))
        .unwrap();
    rig.core.flush();
    let again = rig.sent();
    assert!(matches!(&again[..], [(_, Message::FlowMod(fm)), ..] if fm.buffer_id == of::NO_BUFFER));
}

#[test]
fn an_unknown_flow_table_gets_flowgates_entries_deleted_then_sent_in_full() {
    let modules: Vec<Box<dyn Module>> = vec![Box::new(Probe::default())];
    let mut rig = Rig::with(modules, vec![], vec![SyncDump::Flows]);
    let sent = rig.sent();
    let commands = flow_mods(&sent);
    let deletes = Owner::ALL.len();
    assert!(commands[..deletes]
        .iter()
        .all(|(_, c)| *c == FlowModCommand::Delete));
    assert_eq!(
        commands[deletes..].len(),
        pipeline::core_entries().len(),
        "then every desired entry"
    );
    assert!(commands[deletes..]
        .iter()
        .all(|(_, c)| *c == FlowModCommand::Add));
    assert!(barrier_xid(&sent) > 0);
}

/// A module that only watches the packet-ins without a Flowgate cookie.
#[derive(Default)]
struct Watcher {
    runs: Vec<usize>,
}

impl Module for Watcher {
    fn owner(&self) -> Owner {
        Owner::Topology
    }

    fn handle(&mut self, _event: &Event<'_>, _ctx: &mut Ctx) {}

    fn handle_packet_ins(&mut self, _dpid: u64, batch: PacketIns<'_>, _ctx: &mut Ctx) {
        self.runs.push(batch.iter().count());
    }

    fn wants_foreign_packet_ins(&self) -> bool {
        true
    }
}

#[test]
fn table_miss_packet_ins_go_to_forwarding_on_openflow_13_and_to_modules_that_ask() {
    let forwarding = Probe {
        owner: Some(Owner::Forwarding),
        keys: vec![rule(1).key],
        ..Probe::default()
    };
    let modules: Vec<Box<dyn Module>> = vec![Box::new(forwarding), Box::new(Watcher::default())];
    let mut rig = Rig::with(modules, vec![], vec![]);
    let packet_in = |cookie, table_id| {
        Message::PacketIn(of::PacketIn {
            buffer_id: 0,
            total_len: 0,
            reason: of::PacketInReason::NoMatch,
            table_id,
            cookie,
            match_: Match::new().with(Oxm::InPort(1)),
            data: Bytes::new(),
        })
    };
    // Cookie 0 from table 0, all-ones from table 3, then one of forwarding's
    // own entries: a run of two table misses, then a run of one.
    let messages = vec![
        (1, packet_in(0, 0)),
        (2, packet_in(u64::MAX, 3)),
        (3, packet_in(Owner::Forwarding.cookie(1), 4)),
    ];
    rig.core.handle(
        CoreEvent::Messages {
            dpid: DPID,
            conn_id: 1,
            messages,
        },
        Instant::now(),
    );
    // A lone table miss takes the same way.
    rig.reply(4, packet_in(0, 0));
    let probe = rig.core.modules[0].as_mut() as &mut dyn Any;
    assert_eq!(probe.downcast_mut::<Probe>().unwrap().runs, [2, 1, 1]);
    let watcher = rig.core.modules[1].as_mut() as &mut dyn Any;
    assert_eq!(
        watcher.downcast_mut::<Watcher>().unwrap().runs,
        [2, 1],
        "only the packet-ins without a Flowgate cookie"
    );
}

#[test]
fn a_module_cannot_remove_another_modules_flow() {
    let mut rig = Rig::new(vec![]);
    rig.core
        .call_module::<Probe, _>(Instant::now(), |_, ctx| ctx.install(DPID, rule(1)))
        .unwrap();
    rig.core.flush();
    rig.sent();
    rig.core
        .call_module::<Publisher, _>(Instant::now(), |_, ctx| ctx.remove(DPID, rule(1).key))
        .unwrap();
    rig.core.flush();
    assert!(flow_mods(&rig.sent()).is_empty());
}

#[test]
fn notices_reach_every_other_module() {
    let mut rig = Rig::new(vec![]);
    rig.core
        .call_module::<Publisher, _>(Instant::now(), |_, ctx| ctx.publish("links changed"))
        .unwrap();
    let heard = rig
        .core
        .call_module::<Probe, _>(Instant::now(), |p, _| p.heard.clone())
        .unwrap()
        .value;
    assert_eq!(heard, vec!["Topology:links changed".to_string()]);
}

#[test]
fn flow_removed_drops_the_entry_and_tells_its_owner() {
    let mut rig = Rig::new(vec![]);
    rig.core
        .call_module::<Probe, _>(Instant::now(), |_, ctx| ctx.install(DPID, rule(1)))
        .unwrap();
    rig.core.flush();
    rig.sent();
    let e = rule(1);
    let removed = of::FlowRemoved {
        cookie: e.spec.cookie,
        priority: e.key.priority,
        reason: 0,
        table_id: e.key.table_id,
        duration_sec: 1,
        duration_nsec: 0,
        idle_timeout: 0,
        hard_timeout: 0,
        packet_count: 0,
        byte_count: 0,
        match_: e.key.match_().clone(),
    };
    rig.reply(0, Message::FlowRemoved(removed));
    let heard = rig
        .core
        .call_module::<Probe, _>(Instant::now(), |p, _| p.heard.clone())
        .unwrap()
        .value;
    assert_eq!(heard, vec!["removed".to_string()]);
    // Gone from desired state too: re-installing sends it again.
    rig.core
        .call_module::<Probe, _>(Instant::now(), |_, ctx| ctx.install(DPID, rule(1)))
        .unwrap();
    rig.core.flush();
    assert_eq!(flow_mods(&rig.sent()).len(), 1);
}

#[test]
fn xid_order_survives_wrapping() {
    assert!(xid_before(1, 2));
    assert!(!xid_before(2, 1));
    assert!(!xid_before(5, 5));
    // Runtime xids are 31-bit and wrap from 0x7fff_ffff to 0.
    assert!(xid_before(0x7fff_fffe, 3));
    assert!(!xid_before(3, 0x7fff_fffe));
}

/// A forwarding module for OpenFlow 1.0 switches: installs one table-0 flow
/// per packet-in and records what it saw.
#[derive(Default)]
struct Single {
    seen: Vec<&'static str>,
}

impl Module for Single {
    fn owner(&self) -> Owner {
        Owner::Forwarding
    }

    fn supports(&self, version: u8) -> bool {
        version == of::OFP_VERSION_1_0
    }

    fn handle(&mut self, event: &Event<'_>, ctx: &mut Ctx) {
        match event {
            Event::SwitchUp { .. } => self.seen.push("up"),
            Event::PacketIn { dpid, .. } => {
                self.seen.push("packet-in");
                // Each miss re-sends the entry (as L2Single does).
                ctx.reassert(
                    *dpid,
                    FlowEntry::new(
                        0,
                        100,
                        Match::new().with(Oxm::InPort(1)),
                        FlowSpec::new(Owner::Forwarding.cookie(1), output_to(2)),
                    ),
                );
                // Not expressible in 1.0: dropped, never sent.
                ctx.install(*dpid, rule(1));
            }
            _ => {}
        }
    }
}

#[test]
fn an_openflow_10_switch_gets_one_table_and_only_modules_that_support_it() {
    let modules: Vec<Box<dyn Module>> =
        vec![Box::new(Probe::default()), Box::new(Single::default())];
    let mut core = Core::new(modules, Arc::new(Metrics::default()));
    let writer = SwitchWriter::detached(usize::MAX);
    let (cmd, _cmd_rx) = mpsc::channel(16);
    let sync = SwitchSync {
        version: of::OFP_VERSION_1_0,
        features: SwitchFeatures {
            datapath_id: DPID,
            n_buffers: 256,
            n_tables: 1,
            auxiliary_id: 0,
            capabilities: 0,
            reserved: 0,
        },
        desc: None,
        ports: vec![],
        flows: vec![],
        groups: vec![],
        meters: vec![],
        unknown: vec![],
    };
    let handle = SwitchHandle {
        conn_id: 1,
        writer: writer.clone(),
        cmd,
    };
    core.handle(
        CoreEvent::SwitchUp {
            dpid: DPID,
            handle,
            sync: Box::new(sync),
        },
        Instant::now(),
    );
    core.flush();
    assert!(
        writer.take_pending().is_empty(),
        "no pipeline entries on a 1.0 switch"
    );
    // A table miss (no cookie) goes to forwarding.
    let packet_in = of::PacketIn {
        buffer_id: of::NO_BUFFER,
        total_len: 0,
        reason: of::PacketInReason::NoMatch,
        table_id: 0,
        cookie: 0,
        match_: Match::new().with(Oxm::InPort(1)),
        data: Bytes::new(),
    };
    for xid in [5, 6] {
        core.handle(
            CoreEvent::Message {
                dpid: DPID,
                conn_id: 1,
                xid,
                message: Message::PacketIn(packet_in.clone()),
            },
            Instant::now(),
        );
    }
    core.flush();
    let bytes = writer.take_pending();
    let mut frames = Vec::new();
    let mut rest = &bytes[..];
    while let Ok(Some(len)) = of::frame_len(rest) {
        frames.push(&rest[..len]);
        rest = &rest[len..];
    }
    let kinds: Vec<(u8, u8)> = frames.iter().map(|f| (f[0], f[1])).collect();
    let flow_mod = (of::OFP_VERSION_1_0, of::of10::msg_type::FLOW_MOD);
    assert_eq!(kinds, vec![flow_mod, flow_mod], "one 1.0 FLOW_MOD per miss");
    // The second is the cached encoding of the first, under its own xid.
    assert_ne!(frames[0][4..8], frames[1][4..8]);
    assert_eq!(frames[0][8..], frames[1][8..]);
    assert!(of::of10::decode(frames[1]).is_ok());
    let single = core.modules[1].as_mut() as &mut dyn Any;
    assert_eq!(
        single.downcast_mut::<Single>().unwrap().seen,
        vec!["up", "packet-in", "packet-in"]
    );
    let probe = core.modules[0].as_mut() as &mut dyn Any;
    assert!(probe.downcast_mut::<Probe>().unwrap().heard.is_empty());
}

#[test]
fn the_catalog_names_modules_unavailable_on_openflow_10() {
    let modules: Vec<Box<dyn Module>> = vec![
        Box::new(Probe::default()),
        Box::new(Publisher),
        Box::new(Single::default()),
    ];
    let catalog = crate::runtime::ModuleCatalog::new(&modules);
    assert_eq!(
        catalog.unavailable_on(of::OFP_VERSION_1_0),
        vec!["firewall", "topology"]
    );
    assert_eq!(
        catalog.unavailable_on(of::OFP_VERSION_1_3),
        vec!["forwarding"]
    );
}

#[test]
fn module_output_is_closed_by_a_barrier_only_when_due() {
    let mut rig = Rig::new(vec![]);
    let initial = rig.sent();
    assert!(
        barrier_xid(&initial) > 0,
        "a full reconciliation is confirmed"
    );
    // Nobody waits: the flow-mod goes out alone...
    let mut changes = vec![Change::InstallFlow {
        dpid: DPID,
        entry: rule(1),
    }];
    rig.core.apply_changes(Owner::Firewall, &mut changes, true);
    rig.core.flush();
    let sent = rig.sent();
    assert_eq!(flow_mods(&sent).len(), 1);
    assert_eq!(sent.len(), 1, "no barrier: {sent:?}");
    // ...and the once-a-second flush closes it.
    rig.core.barrier_all = true;
    rig.core.flush();
    let sent = rig.sent();
    assert!(
        matches!(sent.as_slice(), [(_, Message::BarrierRequest)]),
        "{sent:?}"
    );
}

#[tokio::test]
async fn a_batch_of_messages_is_handled_in_order() {
    let mut rig = Rig::new(vec![]);
    rig.sent();
    let mut acks = rig
        .core
        .call_module::<Probe, _>(Instant::now(), |_, ctx| ctx.install(DPID, rule(1)))
        .unwrap()
        .acks;
    rig.core.flush();
    let sent = rig.sent();
    let (xid, _) = flow_mods(&sent)[0];
    let error = of::ErrorMsg::Standard {
        err_type: of::error_type::BAD_MATCH,
        code: 4,
        data: Bytes::new(),
    };
    // The error, then the barrier reply: the ack must carry the error.
    rig.core.handle(
        CoreEvent::Messages {
            dpid: DPID,
            conn_id: 1,
            messages: vec![
                (xid, Message::Error(error)),
                (barrier_xid(&sent), Message::BarrierReply),
            ],
        },
        Instant::now(),
    );
    let ack = acks.pop().unwrap().1.try_recv().unwrap();
    assert_eq!(ack.rejections.len(), 1, "{:?}", ack.rejections);
    // A batch from a stale connection is ignored.
    rig.core.handle(
        CoreEvent::Messages {
            dpid: DPID,
            conn_id: 99,
            messages: vec![(1, Message::BarrierReply), (2, Message::BarrierReply)],
        },
        Instant::now(),
    );
}

#[tokio::test]
async fn acks_follow_barrier_order_across_the_xid_wrap() {
    let mut rig = Rig::new(vec![]);
    rig.sent();
    rig.core.switches.get_mut(&DPID).unwrap().next_xid = 0x7fff_fffd;
    let call = |rig: &mut Rig, n: u8| {
        let mut acks = rig
            .core
            .call_module::<Probe, _>(Instant::now(), |_, ctx| ctx.install(DPID, rule(n)))
            .unwrap()
            .acks;
        rig.core.flush();
        (barrier_xid(&rig.sent()), acks.pop().unwrap().1)
    };
    let (before_wrap, mut first) = call(&mut rig, 1);
    let (after_wrap, mut second) = call(&mut rig, 2);
    assert!(
        after_wrap < before_wrap,
        "xids wrapped: {before_wrap} then {after_wrap}"
    );
    rig.reply(before_wrap, Message::BarrierReply);
    assert!(first.try_recv().is_ok());
    assert!(
        second.try_recv().is_err(),
        "acknowledged before its own barrier"
    );
    rig.reply(after_wrap, Message::BarrierReply);
    assert!(second.try_recv().is_ok());
}

#[test]
fn packet_ins_reach_their_module_in_runs_and_are_answered_in_order() {
    let mut rig = Rig::new(vec![]);
    rig.core
        .call_module::<Probe, _>(Instant::now(), |probe, ctx| {
            for n in 0..3 {
                let entry = rule(n);
                probe.keys.push(entry.key.clone());
                ctx.install(DPID, entry);
            }
        })
        .unwrap();
    rig.core.flush();
    rig.sent();
    let packet_in = |owner: Owner, n: u32| {
        let message = Message::PacketIn(of::PacketIn {
            buffer_id: n,
            total_len: 0,
            reason: of::PacketInReason::Action,
            table_id: pipeline::ACL,
            cookie: owner.cookie(1),
            match_: Match::new().with(Oxm::InPort(1)),
            data: Bytes::new(),
        });
        (n, message)
    };
    // Two for the probe, one for another module, one more for the probe, a
    // reply, then more than a run holds.
    let mut messages = vec![
        packet_in(Owner::Firewall, 0),
        packet_in(Owner::Firewall, 1),
        packet_in(Owner::Topology, 0),
        packet_in(Owner::Firewall, 2),
        (7, Message::EchoReply(Bytes::new())),
    ];
    let long = PACKET_IN_RUN + 6;
    messages.extend((0..long).map(|i| packet_in(Owner::Firewall, i as u32 % 3)));
    rig.core.handle(
        CoreEvent::Messages {
            dpid: DPID,
            conn_id: 1,
            messages,
        },
        Instant::now(),
    );
    rig.core.flush();
    let probe = rig.core.modules[0].as_ref() as &dyn Any;
    let probe = probe.downcast_ref::<Probe>().unwrap();
    assert_eq!(probe.runs, [2, 1, PACKET_IN_RUN, 6]);
    // Every re-send went out as an ADD, in packet-in order, with rising xids.
    let sent = rig.sent();
    let adds: Vec<(u32, u64)> = sent
        .iter()
        .filter_map(|(xid, m)| match m {
            Message::FlowMod(fm) if fm.command == FlowModCommand::Add => Some((*xid, fm.cookie)),
            _ => None,
        })
        .collect();
    let expected: Vec<u64> = [0, 1, 2]
        .into_iter()
        .chain((0..long).map(|i| i as u64 % 3))
        .map(|n| Owner::Firewall.cookie(n))
        .collect();
    assert_eq!(adds.iter().map(|a| a.1).collect::<Vec<_>>(), expected);
    assert!(adds.windows(2).all(|w| xid_before(w[0].0, w[1].0)));
}

#[test]
fn only_resends_and_packet_outs_to_one_switch_skip_the_diff() {
    let id = rule(1).key.id();
    let resend = |dpid| Change::ResendFlow {
        dpid,
        id,
        buffer_id: of::NO_BUFFER,
    };
    assert_eq!(direct_to_one_switch(&[resend(1), resend(1)]), Some(1));
    assert_eq!(direct_to_one_switch(&[resend(1), resend(2)]), None);
    assert_eq!(direct_to_one_switch(&[]), None);
    let install = Change::InstallFlow {
        dpid: 1,
        entry: rule(1),
    };
    assert_eq!(direct_to_one_switch(&[resend(1), install]), None);
    let packet_out = |dpid| Change::PacketOut {
        dpid,
        packet_out: of::PacketOut::with_data(Vec::new(), Bytes::new()),
    };
    assert_eq!(
        direct_to_one_switch(&[resend(1), packet_out(1), packet_out(1)]),
        Some(1)
    );
    assert_eq!(direct_to_one_switch(&[packet_out(1), packet_out(2)]), None);
    let resubmit = |dpid| Change::Resubmit {
        dpid,
        in_port: 1,
        buffer_id: of::NO_BUFFER,
        data: Bytes::new(),
    };
    assert_eq!(direct_to_one_switch(&[resubmit(1), resend(1)]), Some(1));
    assert_eq!(direct_to_one_switch(&[resubmit(1), packet_out(2)]), None);
}

#[test]
fn a_resubmit_is_a_packet_out_through_the_tables_after_the_flow_mods() {
    let mut rig = Rig::new(vec![]);
    rig.sent();
    let resubmit = |buffer_id, data: &'static [u8]| Change::Resubmit {
        dpid: DPID,
        in_port: 3,
        buffer_id,
        data: Bytes::from_static(data),
    };
    // Alone (the direct path), and after a flow to diff (the full one).
    let mut changes = vec![resubmit(7, b"")];
    rig.core.apply_changes(Owner::Firewall, &mut changes, true);
    let mut changes = vec![
        resubmit(of::NO_BUFFER, b"frame"),
        Change::InstallFlow {
            dpid: DPID,
            entry: rule(1),
        },
    ];
    rig.core.apply_changes(Owner::Firewall, &mut changes, true);
    rig.core.flush();
    let sent: Vec<Message> = rig.sent().into_iter().map(|(_, m)| m).collect();
    let to_tables = vec![of::Action::Output {
        port: of::port_no::TABLE,
        max_len: 0,
    }];
    let want = |buffer_id, data: &'static [u8]| {
        Message::PacketOut(of::PacketOut {
            buffer_id,
            in_port: 3,
            actions: to_tables.clone(),
            data: Bytes::from_static(data),
        })
    };
    assert!(
        matches!(&sent[..], [first, Message::FlowMod(_), last]
            if *first == want(7, b"") && *last == want(of::NO_BUFFER, b"frame")),
        "{sent:?}"
    );
}

#[test]
fn a_direct_answer_sends_its_re_sends_before_its_packet_outs() {
    let mut rig = Rig::new(vec![]);
    rig.sent();
    // A re-send names the entry by the key it was declared with.
    let entry = rule(1);
    let id = entry.key.id();
    rig.core
        .call_module::<Probe, _>(Instant::now(), |_, ctx| ctx.install(DPID, entry))
        .unwrap();
    rig.core.flush();
    rig.sent();
    let mut changes = vec![
        Change::PacketOut {
            dpid: DPID,
            packet_out: of::PacketOut::with_data(Vec::new(), Bytes::from_static(b"x")),
        },
        Change::ResendFlow {
            dpid: DPID,
            id,
            buffer_id: of::NO_BUFFER,
        },
    ];
    rig.core.apply_changes(Owner::Firewall, &mut changes, true);
    rig.core.flush();
    let kinds: Vec<u8> = rig.sent().iter().map(|(_, m)| m.msg_type()).collect();
    assert_eq!(kinds, [of::msg_type::FLOW_MOD, of::msg_type::PACKET_OUT]);
}
