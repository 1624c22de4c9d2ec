//! The core: one task that owns the modules, every switch's desired and
//! installed tables, and the reconciler. Drivers send it events; it runs the
//! modules, applies their changes to desired state, and sends only the
//! difference to each switch, closed by a barrier.
//!
//! Events are processed in batches: everything queued is handled first, then
//! each switch's output is handed to its writer as one buffer.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use flowgate_openflow::{self as of, ErrorMsg, FlowRemoved, Message};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::cookie::{self, Owner};
use crate::desired::{FlowEntry, FlowKey};
use crate::module::{Change, Ctx, Event, Module};
use crate::pipeline;
use crate::runtime::metrics::Metrics;
use crate::runtime::reconcile::{self, Plan, SwitchTables};
use crate::runtime::registry::{SwitchCmd, SwitchHandle};
use crate::runtime::session::{encode_for, SwitchSync};
use crate::runtime::writer::SendError;

/// Most events handled before output is flushed.
const BATCH: usize = 1024;
/// Messages awaiting a barrier after which one is sent even if nobody waits
/// for a confirmation (a barrier reply prunes the record of what was sent).
const INFLIGHT_BARRIER: usize = 1024;
/// Period of [`Event::Tick`].
const TICK: Duration = Duration::from_secs(1);

/// Work sent to run on the core with exclusive access to it (REST calls).
pub type CoreCall = Box<dyn FnOnce(&mut Core, Instant) + Send>;

/// A switch's confirmation still to come, for [`Core::call_module`].
pub type PendingAck = (u64, oneshot::Receiver<SwitchAck>);

/// A switch confirmed (barrier reply) the messages a call caused.
#[derive(Debug, Clone, Default)]
pub struct SwitchAck {
    /// Errors the switch returned for those messages, in spec terms.
    pub errors: Vec<String>,
}

/// What drivers tell the core.
pub enum CoreEvent {
    SwitchUp {
        dpid: u64,
        handle: SwitchHandle,
        sync: Box<SwitchSync>,
    },
    SwitchDown {
        dpid: u64,
        conn_id: u64,
    },
    Message {
        dpid: u64,
        conn_id: u64,
        xid: u32,
        message: Message,
    },
    /// Consecutive messages of one switch, in order, as (xid, message).
    Messages {
        dpid: u64,
        conn_id: u64,
        messages: Vec<(u32, Message)>,
    },
    Call(CoreCall),
}

/// What a sent message was about, to explain a switch's ERROR reply. A
/// flow's key is only rebuilt (canonical form, hash) if the switch rejects it.
#[derive(Debug, Clone)]
enum Sent {
    Flow {
        table_id: u8,
        priority: u16,
        match_: of::Match,
    },
    Group(u32),
    Meter(u32),
}

/// True if xid `a` was allocated before `b` (runtime xids are 31-bit
/// sequence numbers that wrap).
fn xid_before(a: u32, b: u32) -> bool {
    let distance = b.wrapping_sub(a) & 0x7fff_ffff;
    distance != 0 && distance < 0x4000_0000
}

struct SwitchState {
    handle: SwitchHandle,
    /// Negotiated OpenFlow wire version (1.0 switches get one table).
    version: u8,
    desired: SwitchTables,
    installed: SwitchTables,
    /// Messages sent since the last barrier reply, in xid (= send) order.
    inflight: VecDeque<(u32, Sent)>,
    next_xid: u32,
    out: BytesMut,
    needs_barrier: bool,
    /// Send the barrier with the next flush (full reconciliation on connect).
    barrier_due: bool,
    /// Callers waiting for the next barrier to be sent.
    waiting: Vec<oneshot::Sender<SwitchAck>>,
    /// Callers waiting for the reply to a sent barrier, by its xid.
    /// Barriers are answered in order, so a queue in send order (wrap-safe).
    barriers: VecDeque<(u32, Vec<oneshot::Sender<SwitchAck>>)>,
    /// Errors received since the last barrier reply.
    errors: Vec<String>,
}

impl SwitchState {
    fn xid(&mut self) -> u32 {
        // Runtime xids stay below the session's range (top bit set).
        self.next_xid = (self.next_xid + 1) & 0x7fff_ffff;
        self.next_xid
    }

    fn send_plan(&mut self, plan: Plan, metrics: &Metrics) {
        if plan.is_empty() {
            return;
        }
        metrics.record_plan(&plan.counts);
        for message in plan.messages {
            let xid = self.xid();
            if !encode_for(self.version, xid, &message, &mut self.out) {
                continue;
            }
            let sent = match message {
                Message::FlowMod(fm) => Sent::Flow {
                    table_id: fm.table_id,
                    priority: fm.priority,
                    match_: fm.match_,
                },
                Message::GroupMod(gm) => Sent::Group(gm.group_id),
                Message::MeterMod(mm) => Sent::Meter(mm.meter_id),
                _ => continue,
            };
            self.inflight.push_back((xid, sent));
        }
        self.needs_barrier = true;
    }
}

pub struct Core {
    modules: Vec<Box<dyn Module>>,
    switches: HashMap<u64, SwitchState>,
    metrics: Arc<Metrics>,
    /// Published notices not yet delivered, with their publisher.
    notices: VecDeque<(Owner, Arc<dyn Any + Send + Sync>)>,
    /// The next flush closes every switch's pending messages with a barrier.
    barrier_all: bool,
}

impl Core {
    pub fn new(modules: Vec<Box<dyn Module>>, metrics: Arc<Metrics>) -> Self {
        Core {
            modules,
            switches: HashMap::new(),
            metrics,
            notices: VecDeque::new(),
            barrier_all: false,
        }
    }

    /// Runs until every driver and the runtime have dropped their senders.
    pub async fn run(mut self, mut events: mpsc::Receiver<CoreEvent>) {
        let mut batch = Vec::with_capacity(BATCH);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                n = events.recv_many(&mut batch, BATCH) => {
                    if n == 0 {
                        return;
                    }
                    // One clock read per batch: modules see the batch's time.
                    let now = Instant::now();
                    for event in batch.drain(..) {
                        self.handle(event, now);
                    }
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    self.dispatch_all(&Event::Tick, now);
                    self.deliver_notices(now);
                    self.barrier_all = true;
                }
            }
            self.flush();
        }
    }

    /// Runs `f` on the module of type `M` with a fresh [`Ctx`], applies its
    /// changes, and returns its result with one receiver per switch that was
    /// sent something: each resolves when that switch's barrier reply
    /// confirms the messages (or is dropped if the switch disconnects first).
    pub fn call_module<M: Module, R>(
        &mut self,
        now: Instant,
        f: impl FnOnce(&mut M, &mut Ctx) -> R,
    ) -> Option<(R, Vec<PendingAck>)> {
        let i = self
            .modules
            .iter_mut()
            .position(|m| (m.as_mut() as &mut dyn Any).is::<M>())?;
        let owner = self.modules[i].owner();
        let module = (self.modules[i].as_mut() as &mut dyn Any).downcast_mut::<M>()?;
        let mut ctx = Ctx::new(now);
        let value = f(module, &mut ctx);
        let forced = ctx.take_reasserted();
        let sent_to = self.apply_changes(owner, ctx.take_changes(), true, &forced);
        self.deliver_notices(now);
        let mut acks = Vec::new();
        for dpid in sent_to {
            if let Some(state) = self.switches.get_mut(&dpid) {
                let (tx, rx) = oneshot::channel();
                state.waiting.push(tx);
                acks.push((dpid, rx));
            }
        }
        Some((value, acks))
    }

    /// Dpids of connected switches, sorted.
    pub fn switch_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.switches.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    fn handle(&mut self, event: CoreEvent, now: Instant) {
        match event {
            CoreEvent::SwitchUp { dpid, handle, sync } => self.switch_up(dpid, handle, &sync, now),
            CoreEvent::SwitchDown { dpid, conn_id } => {
                if self
                    .switches
                    .get(&dpid)
                    .is_some_and(|s| s.handle.conn_id == conn_id)
                {
                    if let Some(state) = self.switches.remove(&dpid) {
                        self.dispatch_switch(state.version, &Event::SwitchDown { dpid }, now);
                    }
                }
            }
            CoreEvent::Message {
                dpid,
                conn_id,
                xid,
                message,
            } => {
                if self
                    .switches
                    .get(&dpid)
                    .is_some_and(|s| s.handle.conn_id == conn_id)
                {
                    self.message(dpid, xid, message, now);
                }
            }
            CoreEvent::Messages {
                dpid,
                conn_id,
                messages,
            } => {
                for (xid, message) in messages {
                    // The switch may go (or be replaced) between two messages.
                    if self
                        .switches
                        .get(&dpid)
                        .is_none_or(|s| s.handle.conn_id != conn_id)
                    {
                        break;
                    }
                    self.message(dpid, xid, message, now);
                    self.deliver_notices(now);
                }
            }
            CoreEvent::Call(call) => call(self, now),
        }
        self.deliver_notices(now);
    }

    /// Hands published notices to every module but the publisher; notices
    /// published while handling one are delivered in turn.
    fn deliver_notices(&mut self, now: Instant) {
        while let Some((from, payload)) = self.notices.pop_front() {
            for i in 0..self.modules.len() {
                if self.modules[i].owner() != from {
                    let event = Event::Notice {
                        from,
                        payload: payload.as_ref(),
                    };
                    self.dispatch_index(i, &event, now);
                }
            }
        }
    }

    fn switch_up(&mut self, dpid: u64, handle: SwitchHandle, sync: &SwitchSync, now: Instant) {
        let installed = SwitchTables::from_sync(sync);
        let mut desired = SwitchTables::default();
        // A 1.0 switch has one table and sends misses to the controller.
        if sync.version != of::OFP_VERSION_1_0 {
            for entry in pipeline::core_entries() {
                desired.flows.insert(entry.key, entry.spec);
            }
        }
        self.switches.insert(
            dpid,
            SwitchState {
                handle,
                version: sync.version,
                desired,
                installed,
                inflight: VecDeque::new(),
                next_xid: 0,
                out: BytesMut::new(),
                needs_barrier: false,
                barrier_due: true,
                waiting: Vec::new(),
                barriers: VecDeque::new(),
                errors: Vec::new(),
            },
        );
        // Each module sees the flows it owns that survived on the switch.
        for i in 0..self.modules.len() {
            if !self.modules[i].supports(sync.version) {
                continue;
            }
            let owner = self.modules[i].owner();
            let owned: Vec<of::FlowStats> = sync
                .flows
                .iter()
                .filter(|f| cookie::owner_of(f.cookie) == Some(owner))
                .cloned()
                .collect();
            let event = Event::SwitchUp {
                dpid,
                ports: &sync.ports,
                installed: &owned,
            };
            let mut ctx = Ctx::new(now);
            self.modules[i].handle(&event, &mut ctx);
            // Applied without reconciling: the full pass below covers it.
            self.apply_changes(owner, ctx.take_changes(), false, &[]);
        }
        let Some(state) = self.switches.get_mut(&dpid) else {
            return;
        };
        let started = Instant::now();
        let plan = reconcile::reconcile_all(&state.desired, &mut state.installed);
        info!(
            dpid = format_args!("{dpid:016x}"),
            flows = state.desired.flows.len(),
            sent = plan.counts.total(),
            adds = plan.counts.flow_adds,
            modifies = plan.counts.flow_modifies,
            deletes = plan.counts.flow_deletes,
            "reconciled switch"
        );
        state.send_plan(plan, &self.metrics);
        self.metrics.record_reconcile(started.elapsed());
    }

    fn message(&mut self, dpid: u64, xid: u32, message: Message, now: Instant) {
        match message {
            Message::PacketIn(packet_in) => {
                self.metrics.packet_in();
                // OpenFlow 1.0 packet-ins carry no cookie: they are table
                // misses, which forwarding answers.
                let owner = match cookie::owner_of(packet_in.cookie) {
                    Some(owner) => owner,
                    None if self
                        .switches
                        .get(&dpid)
                        .is_some_and(|s| s.version == of::OFP_VERSION_1_0) =>
                    {
                        Owner::Forwarding
                    }
                    None => return,
                };
                let event = Event::PacketIn {
                    dpid,
                    packet_in: &packet_in,
                };
                self.dispatch_to(dpid, owner, &event, now);
            }
            Message::PortStatus(status) => {
                if let Some(version) = self.switches.get(&dpid).map(|s| s.version) {
                    let event = Event::PortStatus {
                        dpid,
                        status: &status,
                    };
                    self.dispatch_switch(version, &event, now);
                }
            }
            Message::FlowRemoved(removed) => self.flow_removed(dpid, &removed, now),
            Message::BarrierReply => {
                if let Some(state) = self.switches.get_mut(&dpid) {
                    while let Some((sent, _)) = state.inflight.front() {
                        if !xid_before(*sent, xid) {
                            break;
                        }
                        state.inflight.pop_front();
                    }
                    let ack = SwitchAck {
                        errors: std::mem::take(&mut state.errors),
                    };
                    // Replies come in send order: this one answers every
                    // barrier queued up to and including it.
                    if let Some(pos) = state.barriers.iter().position(|(sent, _)| *sent == xid) {
                        for (_, waiters) in state.barriers.drain(..=pos) {
                            for waiter in waiters {
                                let _ = waiter.send(ack.clone());
                            }
                        }
                    }
                }
            }
            Message::Error(error) => self.switch_error(dpid, xid, &error),
            other => debug!(msg_type = other.msg_type(), "ignored message from switch"),
        }
    }

    fn flow_removed(&mut self, dpid: u64, removed: &FlowRemoved, now: Instant) {
        let Some(owner) = cookie::owner_of(removed.cookie) else {
            return;
        };
        let key = FlowKey::new(removed.table_id, removed.priority, removed.match_.clone());
        if let Some(state) = self.switches.get_mut(&dpid) {
            // Only forget the entry if it is the one that was removed (an
            // ADD replacing it with a new cookie also reports removal).
            if state
                .installed
                .flows
                .get(&key)
                .is_some_and(|s| s.cookie == removed.cookie)
            {
                state.installed.flows.remove(&key);
                if state
                    .desired
                    .flows
                    .get(&key)
                    .is_some_and(|s| s.cookie == removed.cookie)
                {
                    state.desired.flows.remove(&key);
                }
            }
        }
        self.dispatch_to(dpid, owner, &Event::FlowRemoved { dpid, removed }, now);
    }

    /// A switch rejected something we sent: log it in spec terms and forget
    /// that the entry is installed, so the next reconciliation retries it.
    fn switch_error(&mut self, dpid: u64, xid: u32, error: &ErrorMsg) {
        let (err_type, code) = match error {
            ErrorMsg::Standard { err_type, code, .. } => (*err_type, *code),
            ErrorMsg::Experimenter { exp_type, .. } => (of::error_type::EXPERIMENTER, *exp_type),
        };
        let what = of::describe(err_type, code);
        let Some(state) = self.switches.get_mut(&dpid) else {
            return;
        };
        self.metrics.switch_error();
        state.errors.push(what.clone());
        let sent = state
            .inflight
            .iter()
            .position(|(x, _)| *x == xid)
            .and_then(|i| state.inflight.remove(i))
            .map(|(_, sent)| sent);
        match sent {
            Some(Sent::Flow {
                table_id,
                priority,
                match_,
            }) => {
                let key = FlowKey::new(table_id, priority, match_);
                warn!(dpid = format_args!("{dpid:016x}"), error = %what, table = key.table_id, priority = key.priority, "switch rejected flow-mod");
                state.installed.flows.remove(&key);
            }
            Some(Sent::Group(id)) => {
                warn!(dpid = format_args!("{dpid:016x}"), error = %what, group = id, "switch rejected group-mod");
                state.installed.groups.remove(&id);
            }
            Some(Sent::Meter(id)) => {
                warn!(dpid = format_args!("{dpid:016x}"), error = %what, meter = id, "switch rejected meter-mod");
                state.installed.meters.remove(&id);
            }
            None => warn!(dpid = format_args!("{dpid:016x}"), error = %what, xid, "switch error"),
        }
    }

    fn dispatch_all(&mut self, event: &Event<'_>, now: Instant) {
        for i in 0..self.modules.len() {
            self.dispatch_index(i, event, now);
        }
    }

    /// An event about one switch: only modules that support its version.
    fn dispatch_switch(&mut self, version: u8, event: &Event<'_>, now: Instant) {
        for i in 0..self.modules.len() {
            if self.modules[i].supports(version) {
                self.dispatch_index(i, event, now);
            }
        }
    }

    /// An event for the module owning a cookie, on switch `dpid`.
    fn dispatch_to(&mut self, dpid: u64, owner: Owner, event: &Event<'_>, now: Instant) {
        let Some(version) = self.switches.get(&dpid).map(|s| s.version) else {
            return;
        };
        if let Some(i) = self
            .modules
            .iter()
            .position(|m| m.owner() == owner && m.supports(version))
        {
            self.dispatch_index(i, event, now);
        }
    }

    fn dispatch_index(&mut self, i: usize, event: &Event<'_>, now: Instant) {
        let mut ctx = Ctx::new(now);
        self.modules[i].handle(event, &mut ctx);
        let owner = self.modules[i].owner();
        let forced = ctx.take_reasserted();
        self.apply_changes(owner, ctx.take_changes(), true, &forced);
    }

    /// Applies a module's changes to desired state; with `reconcile`, sends
    /// the resulting difference for exactly the touched entries. Returns the
    /// switches that were sent something.
    ///
    /// `forced` entries ([`Ctx::reassert`]) are sent as an ADD even when the
    /// switch is believed to have them. (Forgetting them from the installed
    /// table instead would leave a tombstone per packet-in in its hash map,
    /// and probe chains grow until every lookup crawls.)
    fn apply_changes(
        &mut self,
        owner: Owner,
        changes: Vec<Change>,
        reconcile: bool,
        forced: &[(u64, FlowKey)],
    ) -> Vec<u64> {
        // Usually one switch: a short list beats a map.
        let mut touched: Vec<(u64, Touched)> = Vec::new();
        let mut packet_outs = Vec::new();
        for change in changes {
            let Some(dpid) = change_dpid(&change) else {
                if let Change::Publish(payload) = change {
                    self.notices.push_back((owner, payload));
                }
                continue;
            };
            let Some(state) = self.switches.get_mut(&dpid) else {
                continue;
            };
            let t = match touched.iter().position(|(d, _)| *d == dpid) {
                Some(i) => &mut touched[i].1,
                None => {
                    touched.push((dpid, Touched::default()));
                    let last = touched.len() - 1;
                    &mut touched[last].1
                }
            };
            let of10 = state.version == of::OFP_VERSION_1_0;
            if of10
                && matches!(
                    change,
                    Change::InstallGroup { .. } | Change::InstallMeter { .. }
                )
            {
                warn!(
                    ?owner,
                    "OpenFlow 1.0 switches have no groups or meters; dropped"
                );
                continue;
            }
            match change {
                Change::InstallFlow { entry, .. } => {
                    let checked = if of10 {
                        check_of10(&entry)
                    } else {
                        pipeline::check(owner, &entry).map_err(|e| e.to_string())
                    };
                    if let Err(e) = checked {
                        warn!(?owner, error = %e, "module flow violates the pipeline; dropped");
                        continue;
                    }
                    // Forced entries are sent without a diff (below).
                    if !forced.iter().any(|(d, k)| *d == dpid && *k == entry.key) {
                        t.flows.push(entry.key.clone());
                    }
                    state.desired.flows.insert(entry.key, entry.spec);
                }
                Change::RemoveFlow { key, .. } => {
                    if state
                        .desired
                        .flows
                        .get(&key)
                        .is_some_and(|s| cookie::owner_of(s.cookie) == Some(owner))
                    {
                        state.desired.flows.remove(&key);
                        t.flows.push(key);
                    }
                }
                Change::InstallGroup { id, spec, .. } => {
                    state.desired.groups.insert(id, spec);
                    t.groups.push(id);
                }
                Change::RemoveGroup { id, .. } => {
                    state.desired.groups.remove(&id);
                    t.groups.push(id);
                }
                Change::InstallMeter { id, spec, .. } => {
                    state.desired.meters.insert(id, spec);
                    t.meters.push(id);
                }
                Change::RemoveMeter { id, .. } => {
                    state.desired.meters.remove(&id);
                    t.meters.push(id);
                }
                Change::PacketOut { dpid, packet_out } => packet_outs.push((dpid, packet_out)),
                Change::Publish(_) => {}
            }
        }
        if !reconcile {
            return Vec::new();
        }
        let mut sent_to = Vec::new();
        for (dpid, t) in touched {
            let Some(state) = self.switches.get_mut(&dpid) else {
                continue;
            };
            let mut plan = reconcile::reconcile_groups_meters(
                t.groups,
                t.meters,
                &state.desired,
                &mut state.installed,
            );
            let flows = reconcile::reconcile_flows(&t.flows, &state.desired, &mut state.installed);
            plan.messages.extend(flows.messages);
            plan.counts.add(&flows.counts);
            for (_, key) in forced.iter().filter(|(d, _)| *d == dpid) {
                reconcile::reassert_flow(&mut plan, key, &state.desired, &mut state.installed);
            }
            if !plan.is_empty() {
                sent_to.push(dpid);
            }
            state.send_plan(plan, &self.metrics);
        }
        // Packet-outs go after the flow-mods, so the answer to a forwarded
        // packet already finds its flows.
        for (dpid, packet_out) in packet_outs {
            if let Some(state) = self.switches.get_mut(&dpid) {
                let xid = state.xid();
                let message = Message::PacketOut(packet_out);
                encode_for(state.version, xid, &message, &mut state.out);
            }
        }
        sent_to
    }

    /// Hands each switch's queued output to its writer. A barrier closes it
    /// when someone waits for a confirmation, after a full reconciliation,
    /// when many messages await one, and once a second otherwise: reactive
    /// flow setup (one packet-in, one flow-mod) would double its message
    /// count with a barrier and its reply per batch.
    fn flush(&mut self) {
        let barrier_all = std::mem::take(&mut self.barrier_all);
        for (dpid, state) in &mut self.switches {
            let due = barrier_all
                || state.barrier_due
                || !state.waiting.is_empty()
                || state.inflight.len() >= INFLIGHT_BARRIER;
            state.barrier_due = false;
            if state.needs_barrier && due {
                let xid = state.xid();
                encode_for(state.version, xid, &Message::BarrierRequest, &mut state.out);
                state.needs_barrier = false;
                let waiting = std::mem::take(&mut state.waiting);
                state.barriers.push_back((xid, waiting));
            }
            if state.out.is_empty() {
                continue;
            }
            // Straight to the socket; `out` keeps its allocation.
            let sent = state.handle.writer.send(&state.out);
            state.out.clear();
            if let Err(e) = sent {
                if e == SendError::Full {
                    // The switch cannot keep up. Disconnect it; it is fully
                    // reconciled when it comes back.
                    warn!(
                        dpid = format_args!("{dpid:016x}"),
                        "switch send queue full; disconnecting"
                    );
                }
                let _ = state.handle.cmd.try_send(SwitchCmd::Close(e.to_string()));
            }
        }
    }
}

/// What one module event touched on one switch. A key touched twice is
/// reconciled twice; the second pass finds nothing left to send.
#[derive(Default)]
struct Touched {
    flows: Vec<FlowKey>,
    groups: Vec<u32>,
    meters: Vec<u32>,
}

/// An OpenFlow 1.0 switch has one table, and the entry must have a 1.0
/// form (match fields, output actions only).
fn check_of10(entry: &FlowEntry) -> Result<(), String> {
    if entry.key.table_id != 0 {
        return Err(format!(
            "table {}: OpenFlow 1.0 switches have a single table",
            entry.key.table_id
        ));
    }
    let flow_mod = Message::FlowMod(entry.to_flow_mod(of::FlowModCommand::Add));
    of::of10::encode(0, &flow_mod, &mut BytesMut::new()).map_err(|e| e.to_string())
}

fn change_dpid(change: &Change) -> Option<u64> {
    Some(match change {
        Change::InstallFlow { dpid, .. }
        | Change::RemoveFlow { dpid, .. }
        | Change::InstallGroup { dpid, .. }
        | Change::RemoveGroup { dpid, .. }
        | Change::InstallMeter { dpid, .. }
        | Change::RemoveMeter { dpid, .. }
        | Change::PacketOut { dpid, .. } => *dpid,
        Change::Publish(_) => return None,
    })
}

#[cfg(test)]
mod tests;
