//! The module contract as the core keeps it: declared scopes, adoption,
//! owned groups and meters, errors tied to the call that caused them,
//! effects and the event bus.

use bytes::Bytes;
use flowgate_openflow::{
    self as of, Bucket, FlowModCommand, FlowStats, GroupDesc, GroupModCommand, GroupType, Match,
    MeterBand, MeterConfig, MeterModCommand, Oxm, SwitchFeatures,
};

use super::*;
use crate::desired::{output_to, FlowEntry, FlowSpec, GroupEntry, MeterEntry};
use crate::events::Topics;
use crate::module::{Ctx, Desired};
use crate::runtime::writer::SwitchWriter;
use crate::testing::reported_stats;

const DPID: u64 = 1;

/// A module that declares what it is told and records what it hears.
struct Declarer<const N: u8> {
    owner: Owner,
    adoption: Adoption,
    heard: Vec<String>,
    up: Vec<(usize, usize, usize)>,
}

impl<const N: u8> Declarer<N> {
    fn new(owner: Owner, adoption: Adoption) -> Self {
        Declarer {
            owner,
            adoption,
            heard: Vec::new(),
            up: Vec::new(),
        }
    }
}

impl<const N: u8> Module for Declarer<N> {
    fn owner(&self) -> Owner {
        self.owner
    }

    fn adoption(&self) -> Adoption {
        self.adoption
    }

    fn subscriptions(&self) -> Topics {
        Topics::SWITCH.union(Topics::REJECTED)
    }

    fn handle(&mut self, event: &Event<'_>, _ctx: &mut Ctx) {
        match event {
            Event::SwitchUp {
                installed,
                groups,
                meters,
                ..
            } => self.up.push((installed.len(), groups.len(), meters.len())),
            Event::Rejected { rejection } => self.heard.push(format!("rejected {rejection}")),
            Event::Bus { event } => self.heard.push(format!("bus {:?}", event.topic())),
            Event::Task { payload } => {
                if let Some(text) = payload.downcast_ref::<&'static str>() {
                    self.heard.push(format!("task {text}"));
                }
            }
            _ => {}
        }
    }
}

type Fw = Declarer<1>;
type Lb = Declarer<2>;

struct Rig {
    core: Core,
    writer: SwitchWriter,
    _cmd: mpsc::Receiver<SwitchCmd>,
}

fn sync(flows: Vec<FlowStats>, groups: Vec<GroupDesc>, meters: Vec<MeterConfig>) -> SwitchSync {
    SwitchSync {
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
        flows,
        groups,
        meters,
        unknown: Vec::new(),
    }
}

impl Rig {
    fn new(adoption: Adoption, found: SwitchSync) -> Rig {
        let modules: Vec<Box<dyn Module>> = vec![
            Box::new(Fw::new(Owner::Firewall, Adoption::Replace)),
            Box::new(Lb::new(Owner::LoadBalancer, adoption)),
        ];
        let mut core = Core::new(modules, Arc::new(Metrics::default()));
        let writer = SwitchWriter::detached(usize::MAX);
        let (cmd, cmd_rx) = mpsc::channel(16);
        core.handle(
            CoreEvent::SwitchUp {
                dpid: DPID,
                handle: SwitchHandle {
                    conn_id: 1,
                    writer: writer.clone(),
                    cmd,
                },
                sync: Box::new(found),
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

    fn sent(&mut self) -> Vec<(u32, Message)> {
        let mut out = Vec::new();
        let bytes = self.writer.take_pending();
        let mut rest = &bytes[..];
        while let Ok(Some(len)) = of::frame_len(rest) {
            let (h, m) = of::decode(&rest[..len]).unwrap();
            out.push((h.xid, m));
            rest = &rest[len..];
        }
        out
    }

    /// Runs `f` as a call on module `M`, flushes, returns what was sent and
    /// the call's pending acks.
    fn call<M: Module>(
        &mut self,
        f: impl FnOnce(&mut M, &mut Ctx),
    ) -> (Vec<(u32, Message)>, Vec<PendingAck>) {
        let outcome = self.core.call_module::<M, _>(Instant::now(), f).unwrap();
        self.core.flush();
        (self.sent(), outcome.acks)
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

    fn heard<M: Module>(&mut self) -> Vec<String> {
        self.core
            .call_module::<M, _>(Instant::now(), |m, _| {
                let any: &mut dyn Any = m;
                let heard = if let Some(fw) = any.downcast_mut::<Fw>() {
                    &mut fw.heard
                } else {
                    &mut any.downcast_mut::<Lb>().unwrap().heard
                };
                std::mem::take(heard)
            })
            .unwrap()
            .value
    }
}

fn rule(port: u16) -> FlowEntry {
    FlowEntry::new(
        pipeline::ACL,
        100,
        Match::new().with(Oxm::TcpDst(port)),
        FlowSpec::new(Owner::Firewall.cookie(u64::from(port)), output_to(1)),
    )
}

fn vip_flow(port: u16, group: u32) -> FlowEntry {
    FlowEntry::new(
        pipeline::LB,
        100,
        Match::new().with(Oxm::TcpDst(port)),
        FlowSpec::new(
            Owner::LoadBalancer.cookie(u64::from(port)),
            vec![of::Instruction::ApplyActions(vec![of::Action::Group(
                group,
            )])],
        ),
    )
}

fn buckets(ports: &[u32]) -> Vec<Bucket> {
    ports
        .iter()
        .map(|p| Bucket {
            weight: 1,
            watch_port: of::port_no::ANY,
            watch_group: of::OFPG_ANY,
            actions: vec![of::Action::Output {
                port: *p,
                max_len: 0,
            }],
        })
        .collect()
}

fn group(local: u32, ports: &[u32]) -> GroupEntry {
    GroupEntry {
        id: Owner::LoadBalancer.group_id(local),
        spec: GroupSpec::new(GroupType::Select, buckets(ports)),
    }
}

fn meter(local: u32, rate: u32) -> MeterEntry {
    MeterEntry {
        id: Owner::LoadBalancer.meter_id(local),
        spec: MeterSpec {
            flags: of::meter_flags::KBPS,
            bands: vec![MeterBand::Drop {
                rate,
                burst_size: 0,
            }],
        },
    }
}

fn core_stats() -> Vec<FlowStats> {
    pipeline::core_entries()
        .iter()
        .map(reported_stats)
        .collect()
}

fn desc(entry: &GroupEntry) -> GroupDesc {
    GroupDesc {
        group_type: entry.spec.group_type,
        group_id: entry.id,
        buckets: entry.spec.buckets.clone(),
    }
}

fn config(entry: &MeterEntry) -> MeterConfig {
    MeterConfig {
        flags: entry.spec.flags,
        meter_id: entry.id,
        bands: entry.spec.bands.clone(),
    }
}

fn flow_mods(sent: &[(u32, Message)]) -> Vec<(u32, FlowModCommand, u64)> {
    sent.iter()
        .filter_map(|(xid, m)| match m {
            Message::FlowMod(fm) => Some((*xid, fm.command, fm.cookie)),
            _ => None,
        })
        .collect()
}

fn barrier_xid(sent: &[(u32, Message)]) -> u32 {
    sent.iter()
        .find(|(_, m)| *m == Message::BarrierRequest)
        .map(|(x, _)| *x)
        .expect("a barrier")
}

#[test]
fn a_redeclared_scope_sends_only_its_difference() {
    let mut rig = Rig::new(Adoption::Replace, sync(core_stats(), vec![], vec![]));
    rig.sent();
    let scope = Scope::new("rule", 1);
    let (sent, _) = rig.call::<Fw>(|_, ctx| ctx.declare_flows(DPID, scope, [rule(1), rule(2)]));
    assert_eq!(flow_mods(&sent).len(), 2);
    let (sent, acks) = rig.call::<Fw>(|_, ctx| ctx.declare_flows(DPID, scope, [rule(1), rule(2)]));
    assert!(sent.is_empty() && acks.is_empty(), "unchanged: {sent:?}");
    let (sent, _) = rig.call::<Fw>(|_, ctx| ctx.declare_flows(DPID, scope, [rule(2), rule(3)]));
    let mods = flow_mods(&sent);
    assert_eq!(mods.len(), 2, "{mods:?}");
    assert!(mods
        .iter()
        .any(|m| m.1 == FlowModCommand::DeleteStrict && m.2 == rule(1).spec.cookie));
    assert!(mods
        .iter()
        .any(|m| m.1 == FlowModCommand::Add && m.2 == rule(3).spec.cookie));
    // Another scope is independent.
    let (sent, _) =
        rig.call::<Fw>(|_, ctx| ctx.declare_flows(DPID, Scope::new("rule", 9), [rule(9)]));
    assert_eq!(flow_mods(&sent).len(), 1);
}

#[test]
fn a_declaration_outside_the_pipeline_contract_is_dropped() {
    let mut rig = Rig::new(Adoption::Replace, sync(core_stats(), vec![], vec![]));
    rig.sent();
    // The firewall may not write the lb table, nor another owner's groups.
    let (sent, _) = rig.call::<Fw>(|_, ctx| {
        ctx.declare(
            DPID,
            Scope::new("x", 0),
            Desired {
                flows: vec![vip_flow(80, 1)],
                groups: vec![group(1, &[1])],
                meters: vec![],
            },
        )
    });
    assert!(sent.is_empty(), "{sent:?}");
}

#[test]
fn groups_and_meters_go_before_the_flows_that_use_them_and_change_in_place() {
    let mut rig = Rig::new(Adoption::Replace, sync(core_stats(), vec![], vec![]));
    rig.sent();
    let scope = Scope::new("vip", 1);
    let g = group(1, &[1, 2]);
    let declare = |g: GroupEntry, m: MeterEntry| Desired {
        flows: vec![vip_flow(80, g.id)],
        groups: vec![g],
        meters: vec![m],
    };
    let (sent, _) =
        rig.call::<Lb>(|_, ctx| ctx.declare(DPID, scope, declare(g.clone(), meter(1, 5000))));
    let kinds: Vec<&str> = sent
        .iter()
        .map(|(_, m)| match m {
            Message::MeterMod(mm) if mm.command == MeterModCommand::Add => "meter add",
            Message::GroupMod(gm) if gm.command == GroupModCommand::Add => "group add",
            Message::FlowMod(_) => "flow",
            Message::BarrierRequest => "barrier",
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["meter add", "group add", "flow", "barrier"]);
    // A member more and a new rate: MODIFY, never delete-and-add.
    let (sent, _) = rig.call::<Lb>(|_, ctx| {
        ctx.declare(DPID, scope, declare(group(1, &[1, 2, 3]), meter(1, 8000)))
    });
    let commands: Vec<String> = sent
        .iter()
        .filter_map(|(_, m)| match m {
            Message::GroupMod(gm) => Some(format!("{:?}", gm.command)),
            Message::MeterMod(mm) => Some(format!("{:?}", mm.command)),
            Message::FlowMod(_) => Some("flow".into()),
            _ => None,
        })
        .collect();
    assert_eq!(commands, ["Modify", "Modify"]);
    // Dropping the scope deletes the flow before the group and the meter.
    let (sent, _) = rig.call::<Lb>(|_, ctx| ctx.declare(DPID, scope, Desired::default()));
    let order: Vec<&str> = sent
        .iter()
        .filter_map(|(_, m)| match m {
            Message::FlowMod(_) => Some("flow"),
            Message::GroupMod(_) => Some("group"),
            Message::MeterMod(_) => Some("meter"),
            _ => None,
        })
        .collect();
    assert_eq!(order, ["flow", "group", "meter"]);
}

#[test]
fn a_restart_with_keep_adoption_rewrites_nothing_still_wanted() {
    let scope = Scope::new("vip", 1);
    let g = group(1, &[1, 2]);
    let m = meter(1, 5000);
    let stale = group(2, &[9]);
    let mut found = core_stats();
    found.push(reported_stats(&vip_flow(80, g.id)));
    found.push(reported_stats(&vip_flow(81, stale.id)));
    // A foreign group (an operator's) is not ours to touch.
    let foreign = GroupEntry {
        id: 7,
        spec: GroupSpec::new(GroupType::All, buckets(&[3])),
    };
    let mut rig = Rig::new(
        Adoption::Keep,
        sync(
            found,
            vec![desc(&g), desc(&stale), desc(&foreign)],
            vec![config(&m)],
        ),
    );
    assert!(rig.sent().is_empty(), "adopted as it is");
    let up = rig
        .core
        .call_module::<Lb, _>(Instant::now(), |lb, _| lb.up.clone())
        .unwrap()
        .value;
    assert_eq!(
        up,
        vec![(2, 2, 1)],
        "owned flows, groups and meters reported"
    );
    // The module declares what it still wants: nothing to send.
    let (sent, _) = rig.call::<Lb>(|_, ctx| {
        ctx.declare(
            DPID,
            scope,
            Desired {
                flows: vec![vip_flow(80, g.id)],
                groups: vec![g.clone()],
                meters: vec![m.clone()],
            },
        )
    });
    assert!(sent.is_empty(), "{sent:?}");
    // Settling removes the rest: the stale VIP's flow, then its group.
    let (sent, _) = rig.call::<Lb>(|_, ctx| ctx.settle(DPID));
    let removed: Vec<String> = sent
        .iter()
        .filter_map(|(_, msg)| match msg {
            Message::FlowMod(fm) => Some(format!("{:?} {:#x}", fm.command, fm.cookie)),
            Message::GroupMod(gm) => Some(format!("{:?} {:#x}", gm.command, gm.group_id)),
            Message::MeterMod(_) => Some("meter".into()),
            _ => None,
        })
        .collect();
    assert_eq!(
        removed,
        [
            format!("DeleteStrict {:#x}", vip_flow(81, 0).spec.cookie),
            format!("Delete {:#x}", stale.id)
        ]
    );
}

#[test]
fn a_restart_with_replace_adoption_removes_what_is_not_declared_at_once() {
    let g = group(1, &[1]);
    let mut found = core_stats();
    found.push(reported_stats(&vip_flow(80, g.id)));
    let mut rig = Rig::new(Adoption::Replace, sync(found, vec![desc(&g)], vec![]));
    let sent = rig.sent();
    assert_eq!(flow_mods(&sent).len(), 1);
    assert!(sent.iter().any(|(_, m)| matches!(m,
        Message::GroupMod(gm) if gm.command == GroupModCommand::Delete && gm.group_id == g.id)));
}

#[tokio::test]
async fn a_rejection_reaches_its_call_and_its_module_only() {
    let mut rig = Rig::new(Adoption::Replace, sync(core_stats(), vec![], vec![]));
    rig.sent();
    // Two calls in one batch: the load balancer's group is refused, the
    // firewall's rule is not.
    let lb = rig
        .core
        .call_module::<Lb, _>(Instant::now(), |_, ctx| {
            ctx.declare(
                DPID,
                Scope::new("vip", 1),
                Desired {
                    groups: vec![group(1, &[1])],
                    ..Desired::default()
                },
            )
        })
        .unwrap();
    let fw = rig
        .core
        .call_module::<Fw, _>(Instant::now(), |_, ctx| {
            ctx.declare_flows(DPID, Scope::new("rule", 1), [rule(1)])
        })
        .unwrap();
    rig.core.flush();
    let sent = rig.sent();
    let group_xid = sent
        .iter()
        .find(|(_, m)| matches!(m, Message::GroupMod(_)))
        .unwrap()
        .0;
    rig.reply(
        group_xid,
        Message::Error(of::ErrorMsg::Standard {
            err_type: of::error_type::GROUP_MOD_FAILED,
            code: 6,
            data: Bytes::new(),
        }),
    );
    rig.reply(barrier_xid(&sent), Message::BarrierReply);
    let lb_ack = lb.acks.into_iter().next().unwrap().1.await.unwrap();
    let fw_ack = fw.acks.into_iter().next().unwrap().1.await.unwrap();
    assert_eq!(lb_ack.rejections.len(), 1);
    assert_eq!(
        lb_ack.rejections[0].what,
        Rejected::Group {
            id: Owner::LoadBalancer.group_id(1)
        }
    );
    assert!(fw_ack.rejections.is_empty(), "{:?}", fw_ack.rejections);
    let heard = rig.heard::<Lb>();
    assert!(
        heard
            .iter()
            .any(|h| h.starts_with("rejected") && h.contains("OFPET_GROUP_MOD_FAILED")),
        "{heard:?}"
    );
    assert!(!rig.heard::<Fw>().iter().any(|h| h.starts_with("rejected")));
}

#[test]
fn a_calls_store_writes_are_handed_to_its_caller() {
    let mut rig = Rig::new(Adoption::Replace, sync(core_stats(), vec![], vec![]));
    let outcome = rig
        .core
        .call_module::<Fw, _>(Instant::now(), |_, ctx| {
            ctx.persist(vec![Op::put("firewall/rules/1", "{}")]);
        })
        .unwrap();
    assert_eq!(outcome.persist, vec![Op::put("firewall/rules/1", "{}")]);
}

#[test]
fn store_writes_outside_calls_go_to_the_persister() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let modules: Vec<Box<dyn Module>> = vec![Box::new(Fw::new(Owner::Firewall, Adoption::Replace))];
    let mut core = Core::new(modules, Arc::new(Metrics::default())).with_persister(tx);
    core.apply_changes(
        Owner::Firewall,
        &mut vec![Change::Persist(vec![Op::delete("a")])],
        true,
    );
    assert_eq!(rx.try_recv().unwrap(), vec![Op::delete("a")]);
}

#[tokio::test]
async fn switch_events_reach_the_bus_and_subscribed_modules() {
    let bus = Bus::default();
    let mut rx = bus.subscribe();
    let modules: Vec<Box<dyn Module>> = vec![Box::new(Fw::new(Owner::Firewall, Adoption::Replace))];
    let mut core = Core::new(modules, Arc::new(Metrics::default())).with_bus(bus);
    let (cmd, _cmd_rx) = mpsc::channel(16);
    core.handle(
        CoreEvent::SwitchUp {
            dpid: DPID,
            handle: SwitchHandle {
                conn_id: 1,
                writer: SwitchWriter::detached(usize::MAX),
                cmd,
            },
            sync: Box::new(sync(vec![], vec![], vec![])),
        },
        Instant::now(),
    );
    let event = rx.recv().await.unwrap();
    assert_eq!(
        event.event,
        BusEvent::SwitchUp {
            dpid: DPID,
            version: 4
        }
    );
    core.handle(
        CoreEvent::Task {
            owner: Owner::Firewall,
            payload: Box::new("probe done"),
        },
        Instant::now(),
    );
    let heard = core
        .call_module::<Fw, _>(Instant::now(), |m, _| m.heard.clone())
        .unwrap()
        .value;
    assert_eq!(heard, ["bus Topics(1)", "task probe done"]);
}
