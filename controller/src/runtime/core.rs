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
use crate::desired::{FlowEntry, FlowId, FlowKey};
use crate::module::{Change, Ctx, Event, Module, PacketIns};
use crate::pipeline;
use crate::runtime::metrics::Metrics;
use crate::runtime::reconcile::{Plan, Planned, ReconcileCounts, SwitchTables};
use crate::runtime::registry::{SwitchCmd, SwitchHandle};
use crate::runtime::session::{encode_for, set_flow_mod_buffer_id, SwitchSync};
use crate::runtime::unknown_table;
use crate::runtime::writer::SendError;

/// Most events handled before output is flushed.
const BATCH: usize = 1024;
/// Messages awaiting a barrier after which one is sent even if nobody waits
/// for a confirmation (a barrier reply prunes the record of what was sent).
const INFLIGHT_BARRIER: usize = 1024;
/// Most packet-ins handed to a module as one run: enough to overlap many
/// cache misses, few enough that the lines a run's lookups bring into the
/// cache stay there until its packets are answered.
const PACKET_IN_RUN: usize = 64;
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

/// What a sent message was about, to explain a switch's ERROR reply.
#[derive(Debug, Clone)]
enum Sent {
    /// The entry by id (see [`FlowId`]): the tables keep its key alive.
    Flow(FlowId),
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
    /// Desired and installed entries, side by side.
    tables: SwitchTables,
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
    /// Listed in [`Core::dirty`] for the next flush.
    dirty: bool,
}

impl SwitchState {
    fn xid(&mut self) -> u32 {
        // Runtime xids stay below the session's range (top bit set).
        self.next_xid = (self.next_xid + 1) & 0x7fff_ffff;
        self.next_xid
    }

    /// [`SwitchState::resend`] of each (id, buffer id), in order, with the
    /// table lookups done in stages over the whole run (see
    /// [`SwitchTables::probe_flow`]).
    fn resend_all(
        &mut self,
        ids: impl Iterator<Item = (FlowId, u32)> + Clone,
        sent: &mut ReconcileCounts,
    ) -> bool {
        let mut rest = ids.clone().skip(1);
        if rest.next().is_some() {
            for (id, _) in ids.clone() {
                self.tables.probe_flow(id);
            }
            for (id, _) in ids.clone() {
                self.tables.prefetch_flow(id);
            }
        }
        let mut sent_any = false;
        for (id, buffer_id) in ids {
            sent_any |= self.resend(id, buffer_id, sent);
        }
        sent_any
    }

    /// Re-sends the desired entry of the key `id` names as an ADD, copying
    /// its cached encoding ([`SwitchTables::resend_flow`]), releasing the
    /// packet in `buffer_id`; false if none is desired.
    fn resend(&mut self, id: FlowId, buffer_id: u32, sent: &mut ReconcileCounts) -> bool {
        let xid = self.xid();
        let Some(encoded) = self.tables.resend_flow(id, self.version) else {
            return false;
        };
        let start = self.out.len();
        self.out.extend_from_slice(encoded);
        // Every OpenFlow header has the xid at bytes 4..8.
        self.out[start + 4..start + 8].copy_from_slice(&xid.to_be_bytes());
        if buffer_id != of::NO_BUFFER {
            set_flow_mod_buffer_id(self.version, &mut self.out[start..], buffer_id);
        }
        self.inflight.push_back((xid, Sent::Flow(id)));
        self.needs_barrier = true;
        sent.flow_adds += 1;
        true
    }

    /// Appends a PACKET_OUT to the output.
    fn packet_out(&mut self, packet_out: of::PacketOut) {
        let xid = self.xid();
        encode_for(
            self.version,
            xid,
            &Message::PacketOut(packet_out),
            &mut self.out,
        );
    }

    /// Deletes Flowgate's share of the tables the switch did not report
    /// (see [`unknown_table::clearing`]), ahead of the full reconciliation,
    /// which then finds nothing installed there and sends every entry.
    fn clear_unknown(&mut self, sync: &SwitchSync) {
        for message in unknown_table::clearing(sync) {
            let xid = self.xid();
            encode_for(self.version, xid, &message, &mut self.out);
            self.needs_barrier = true;
        }
    }

    /// Encodes `plan` (emptied, its buffer kept for reuse) into the output
    /// and counts it in `sent`.
    fn send_plan(&mut self, plan: &mut Plan, sent: &mut ReconcileCounts) {
        if plan.is_empty() {
            return;
        }
        sent.add(&plan.counts);
        for planned in plan.drain() {
            let xid = self.xid();
            if !planned.encode(self.version, xid, &mut self.out) {
                continue;
            }
            let sent = match planned {
                Planned::Flow { key, .. } | Planned::DeleteFlow { key, .. } => Sent::Flow(key.id()),
                Planned::Group(gm) => Sent::Group(gm.group_id),
                Planned::Meter(mm) => Sent::Meter(mm.meter_id),
            };
            self.inflight.push_back((xid, sent));
        }
        self.needs_barrier = true;
    }
}

pub struct Core {
    modules: Vec<Box<dyn Module>>,
    switches: HashMap<u64, SwitchState, foldhash::fast::RandomState>,
    metrics: Arc<Metrics>,
    /// Published notices not yet delivered, with their publisher.
    notices: VecDeque<(Owner, Arc<dyn Any + Send + Sync>)>,
    /// The next flush closes every switch's pending messages with a barrier.
    barrier_all: bool,
    /// The change buffer every module event reuses.
    spare_changes: Vec<Change>,
    /// The plan buffer every reconciliation reuses.
    spare_plan: Plan,
    touched: TouchedSet,
    /// Switches the last [`Core::apply_changes`] sent something.
    sent_to: Vec<u64>,
    /// Switches with output or a barrier due since the last flush: a flush
    /// visits only these (one cold switch state per answer, not all of them).
    dirty: Vec<u64>,
    /// Packet-ins and mods counted since the last flush, published to
    /// [`Metrics`] once per batch.
    packet_ins: u64,
    sent: ReconcileCounts,
}

impl Core {
    pub fn new(modules: Vec<Box<dyn Module>>, metrics: Arc<Metrics>) -> Self {
        Core {
            modules,
            switches: HashMap::default(),
            metrics,
            notices: VecDeque::new(),
            barrier_all: false,
            spare_changes: Vec::new(),
            spare_plan: Plan::default(),
            touched: TouchedSet::default(),
            sent_to: Vec::new(),
            dirty: Vec::new(),
            packet_ins: 0,
            sent: ReconcileCounts::default(),
        }
    }

    /// Runs until every driver and the runtime have dropped their senders.
    pub async fn run(mut self, mut events: mpsc::Receiver<CoreEvent>) {
        let mut batch = Vec::with_capacity(BATCH);
        // The tick is checked after every batch and only waited on when
        // the core is idle: polling a timer per batch registered its waker
        // every time, and a steady flood of events must not starve it.
        let mut next_tick = Instant::now() + TICK;
        let idle_tick = tokio::time::sleep_until(next_tick.into());
        tokio::pin!(idle_tick);
        loop {
            let now = tokio::select! {
                biased;
                n = events.recv_many(&mut batch, BATCH) => {
                    if n == 0 {
                        return;
                    }
                    if self.switches.len() > 1 {
                        gather(&mut events, &mut batch).await;
                    }
                    // One clock read per batch: modules see the batch's time.
                    let now = Instant::now();
                    for event in batch.drain(..) {
                        self.handle(event, now);
                    }
                    now
                }
                _ = &mut idle_tick => Instant::now(),
            };
            if now >= next_tick {
                self.dispatch_all(&Event::Tick, now);
                self.deliver_notices(now);
                self.barrier_all = true;
                next_tick = now + TICK;
                idle_tick.as_mut().reset(next_tick.into());
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
        self.apply_changes(owner, &mut ctx.take_changes(), true);
        let sent_to = std::mem::take(&mut self.sent_to);
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

    /// Whether `conn_id` is the connection `dpid` is known by: events of a
    /// replaced or closed connection are dropped.
    fn is_current(&self, dpid: u64, conn_id: u64) -> bool {
        self.current_version(dpid, conn_id).is_some()
    }

    /// The wire version of `dpid`, if `conn_id` is its current connection.
    fn current_version(&self, dpid: u64, conn_id: u64) -> Option<u8> {
        self.switches
            .get(&dpid)
            .filter(|s| s.handle.conn_id == conn_id)
            .map(|s| s.version)
    }

    fn handle(&mut self, event: CoreEvent, now: Instant) {
        match event {
            CoreEvent::SwitchUp { dpid, handle, sync } => self.switch_up(dpid, handle, &sync, now),
            CoreEvent::SwitchDown { dpid, conn_id } => {
                if self.is_current(dpid, conn_id) {
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
            } => self.messages(dpid, conn_id, &[(xid, message)], now),
            CoreEvent::Messages {
                dpid,
                conn_id,
                messages,
            } => self.messages(dpid, conn_id, &messages, now),
            CoreEvent::Call(call) => call(self, now),
        }
        self.deliver_notices(now);
    }

    /// Handles consecutive messages of one switch in place (a message moved
    /// out of the batch is a 120-byte copy); consecutive packet-ins for one
    /// module go to it as a run.
    fn messages(&mut self, dpid: u64, conn_id: u64, messages: &[(u32, Message)], now: Instant) {
        let mut rest = messages;
        while let Some(((xid, message), tail)) = rest.split_first() {
            // The switch may go (or be replaced) between two messages.
            let Some(version) = self.current_version(dpid, conn_id) else {
                break;
            };
            match packet_in_run(rest) {
                Some((route, len)) => {
                    self.packet_ins(dpid, version, route, &rest[..len], now);
                    rest = &rest[len..];
                }
                None => {
                    self.message(dpid, *xid, message, now);
                    rest = tail;
                }
            }
            self.deliver_notices(now);
        }
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
        let mut tables = SwitchTables::from_sync(sync);
        // A 1.0 switch has one table and sends misses to the controller.
        if sync.version != of::OFP_VERSION_1_0 {
            for entry in pipeline::core_entries() {
                tables.desire_flow(entry.key, entry.spec);
            }
        }
        self.switches.insert(
            dpid,
            SwitchState {
                handle,
                version: sync.version,
                tables,
                inflight: VecDeque::new(),
                next_xid: 0,
                out: BytesMut::new(),
                needs_barrier: false,
                barrier_due: true,
                dirty: false,
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
            self.apply_changes(owner, &mut ctx.take_changes(), false);
        }
        let Some(state) = self.switches.get_mut(&dpid) else {
            return;
        };
        mark_dirty(&mut self.dirty, dpid, state);
        let started = Instant::now();
        state.clear_unknown(sync);
        let mut plan = state.tables.reconcile_all();
        info!(
            dpid = format_args!("{dpid:016x}"),
            flows = state.tables.desired_flow_count(),
            sent = plan.counts.total(),
            adds = plan.counts.flow_adds,
            modifies = plan.counts.flow_modifies,
            deletes = plan.counts.flow_deletes,
            "reconciled switch"
        );
        state.send_plan(&mut plan, &mut self.sent);
        self.metrics.record_reconcile(started.elapsed());
    }

    /// Hands a run of `dpid`'s packet-ins to the modules `route` names, each
    /// at once ([`Module::handle_packet_ins`]), and applies each one's
    /// changes together.
    fn packet_ins(
        &mut self,
        dpid: u64,
        version: u8,
        route: Route,
        run: &[(u32, Message)],
        now: Instant,
    ) {
        self.packet_ins += run.len() as u64;
        for i in 0..self.modules.len() {
            let module = &mut self.modules[i];
            if !route.reaches(module.as_ref(), version) {
                continue;
            }
            let owner = module.owner();
            let mut ctx = Ctx::with_buffer(now, std::mem::take(&mut self.spare_changes));
            module.handle_packet_ins(dpid, PacketIns::new(run), &mut ctx);
            let mut changes = ctx.take_changes();
            self.apply_changes(owner, &mut changes, true);
            self.spare_changes = changes;
            if matches!(route, Route::Owner(_)) {
                break;
            }
        }
    }

    fn message(&mut self, dpid: u64, xid: u32, message: &Message, now: Instant) {
        match message {
            Message::PortStatus(status) => {
                if let Some(version) = self.switches.get(&dpid).map(|s| s.version) {
                    let event = Event::PortStatus { dpid, status };
                    self.dispatch_switch(version, &event, now);
                }
            }
            Message::FlowRemoved(removed) => self.flow_removed(dpid, removed, now),
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
            Message::Error(error) => self.switch_error(dpid, xid, error),
            other => debug!(msg_type = other.msg_type(), "ignored message from switch"),
        }
    }

    fn flow_removed(&mut self, dpid: u64, removed: &FlowRemoved, now: Instant) {
        let Some(owner) = cookie::owner_of(removed.cookie) else {
            return;
        };
        let key = FlowKey::new(removed.table_id, removed.priority, removed.match_.clone());
        if let Some(state) = self.switches.get_mut(&dpid) {
            state.tables.flow_removed(&key, removed.cookie);
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
            Some(Sent::Flow(id)) => {
                let (table, priority) = state.tables.forget_installed_flow(id).unzip();
                warn!(dpid = format_args!("{dpid:016x}"), error = %what, table, priority, "switch rejected flow-mod");
            }
            Some(Sent::Group(id)) => {
                warn!(dpid = format_args!("{dpid:016x}"), error = %what, group = id, "switch rejected group-mod");
                state.tables.forget_installed_group(id);
            }
            Some(Sent::Meter(id)) => {
                warn!(dpid = format_args!("{dpid:016x}"), error = %what, meter = id, "switch rejected meter-mod");
                state.tables.forget_installed_meter(id);
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
        let mut ctx = Ctx::with_buffer(now, std::mem::take(&mut self.spare_changes));
        self.modules[i].handle(event, &mut ctx);
        let owner = self.modules[i].owner();
        let mut changes = ctx.take_changes();
        self.apply_changes(owner, &mut changes, true);
        self.spare_changes = changes;
    }

    /// Applies a module's changes (drained from `changes`) to desired state;
    /// with `reconcile`, sends the resulting difference for exactly the
    /// touched entries, and leaves the switches that were sent something in
    /// `self.sent_to`.
    fn apply_changes(&mut self, owner: Owner, changes: &mut Vec<Change>, reconcile: bool) {
        self.sent_to.clear();
        // Re-sends and packet-outs to one switch only (known hosts' repeated
        // misses, the commonest packet-in answers) have nothing to diff:
        // send them straight away, packet-outs last.
        if let Some(dpid) = direct_to_one_switch(changes).filter(|_| reconcile) {
            let ids = changes.iter().filter_map(|c| match c {
                Change::ResendFlow { id, buffer_id, .. } => Some((*id, *buffer_id)),
                _ => None,
            });
            if let Some(state) = self.switches.get_mut(&dpid) {
                if state.resend_all(ids, &mut self.sent) {
                    self.sent_to.push(dpid);
                    mark_dirty(&mut self.dirty, dpid, state);
                }
                for change in changes.drain(..) {
                    if let Change::PacketOut { packet_out, .. } = change {
                        state.packet_out(packet_out);
                        mark_dirty(&mut self.dirty, dpid, state);
                    }
                }
            }
            changes.clear();
            return;
        }
        let mut touched = std::mem::take(&mut self.touched);
        let mut packet_outs = Vec::new();
        for change in changes.drain(..) {
            let Some(dpid) = change_dpid(&change) else {
                if let Change::Publish(payload) = change {
                    self.notices.push_back((owner, payload));
                }
                continue;
            };
            let Some(state) = self.switches.get_mut(&dpid) else {
                continue;
            };
            let t = touched.switch(dpid);
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
            let tables = &mut state.tables;
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
                    t.flows.push(entry.key.clone());
                    tables.desire_flow(entry.key, entry.spec);
                }
                Change::RemoveFlow { key, .. } => {
                    if tables
                        .desired_flow(&key)
                        .is_some_and(|s| cookie::owner_of(s.cookie) == Some(owner))
                    {
                        tables.undesire_flow(&key);
                        t.flows.push(key);
                    }
                }
                Change::ResendFlow { id, buffer_id, .. } => t.resend.push((id, buffer_id)),
                Change::InstallGroup { id, spec, .. } => {
                    tables.desire_group(id, Some(spec));
                    t.groups.push(id);
                }
                Change::RemoveGroup { id, .. } => {
                    tables.desire_group(id, None);
                    t.groups.push(id);
                }
                Change::InstallMeter { id, spec, .. } => {
                    tables.desire_meter(id, Some(spec));
                    t.meters.push(id);
                }
                Change::RemoveMeter { id, .. } => {
                    tables.desire_meter(id, None);
                    t.meters.push(id);
                }
                Change::PacketOut { dpid, packet_out } => packet_outs.push((dpid, packet_out)),
                Change::Publish(_) => {}
            }
        }
        // Without `reconcile`, changes only land in desired state.
        for (dpid, t) in touched.iter_mut().filter(|_| reconcile) {
            let dpid = *dpid;
            let Some(state) = self.switches.get_mut(&dpid) else {
                continue;
            };
            // A re-sent entry goes out anyway: no diff for it.
            if !t.resend.is_empty() {
                t.flows
                    .retain(|k| !t.resend.iter().any(|(id, _)| *id == k.id()));
            }
            let plan = &mut self.spare_plan;
            state
                .tables
                .reconcile_groups_meters(&t.groups, &t.meters, plan);
            state.tables.reconcile_flows(&t.flows, plan);
            let mut sent_any = !plan.is_empty();
            state.send_plan(plan, &mut self.sent);
            sent_any |= state.resend_all(t.resend.iter().copied(), &mut self.sent);
            t.resend.clear();
            if sent_any {
                self.sent_to.push(dpid);
                mark_dirty(&mut self.dirty, dpid, state);
            }
        }
        touched.clear();
        self.touched = touched;
        // Packet-outs go after the flow-mods, so the answer to a forwarded
        // packet already finds its flows.
        for (dpid, packet_out) in packet_outs {
            if let Some(state) = self.switches.get_mut(&dpid) {
                state.packet_out(packet_out);
                mark_dirty(&mut self.dirty, dpid, state);
            }
        }
    }

    /// Hands each switch's queued output to its writer. A barrier closes it
    /// when someone waits for a confirmation, after a full reconciliation,
    /// when many messages await one, and once a second otherwise: reactive
    /// flow setup (one packet-in, one flow-mod) would double its message
    /// count with a barrier and its reply per batch.
    fn flush(&mut self) {
        self.metrics
            .record_batch(std::mem::take(&mut self.packet_ins), &self.sent);
        self.sent = ReconcileCounts::default();
        let barrier_all = std::mem::take(&mut self.barrier_all);
        let mut dirty = std::mem::take(&mut self.dirty);
        if barrier_all {
            dirty.clear();
            dirty.extend(self.switches.keys().copied());
        }
        for dpid in dirty.drain(..) {
            let Some(state) = self.switches.get_mut(&dpid) else {
                continue;
            };
            state.dirty = false;
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
        self.dirty = dirty;
    }
}

/// Below this many events, a batch waits for the other ready connections.
const GATHER_BELOW: usize = 64;

/// Lets the connections that are ready take their turn before a small
/// batch is handled (the core yields), then takes what they queued: the
/// core woke for the first switch's packet-in, and with many switches
/// sending one each (latency mode) it was woken, ran and flushed once per
/// switch. Now one pass answers them all.
async fn gather(events: &mut mpsc::Receiver<CoreEvent>, batch: &mut Vec<CoreEvent>) {
    if batch.len() >= GATHER_BELOW {
        return;
    }
    tokio::task::yield_now().await;
    while batch.len() < BATCH {
        match events.try_recv() {
            Ok(event) => batch.push(event),
            Err(_) => break,
        }
    }
}

/// Lists `state` (of `dpid`) for the next flush, once.
fn mark_dirty(dirty: &mut Vec<u64>, dpid: u64, state: &mut SwitchState) {
    if !state.dirty {
        state.dirty = true;
        dirty.push(dpid);
    }
}

/// What one module event touched on one switch. A key touched twice is
/// reconciled twice; the second pass finds nothing left to send.
#[derive(Default)]
struct Touched {
    flows: Vec<FlowKey>,
    /// Entries to send even if believed installed ([`Ctx::resend`]), with
    /// the buffered packet each releases.
    resend: Vec<(FlowId, u32)>,
    groups: Vec<u32>,
    meters: Vec<u32>,
}

/// What one module event touched, per switch: usually one switch, so a
/// short list beats a map. Kept by the core and reused (cleared, capacity
/// kept), so the packet-in path allocates nothing here.
#[derive(Default)]
struct TouchedSet {
    entries: Vec<(u64, Touched)>,
    /// Entries in use; the rest are spares.
    len: usize,
}

impl TouchedSet {
    fn switch(&mut self, dpid: u64) -> &mut Touched {
        let i = match self.entries[..self.len]
            .iter()
            .position(|(d, _)| *d == dpid)
        {
            Some(i) => i,
            None => {
                if self.len == self.entries.len() {
                    self.entries.push((dpid, Touched::default()));
                }
                self.entries[self.len].0 = dpid;
                self.len += 1;
                self.len - 1
            }
        };
        &mut self.entries[i].1
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut (u64, Touched)> {
        self.entries[..self.len].iter_mut()
    }

    fn clear(&mut self) {
        for (_, t) in &mut self.entries[..self.len] {
            t.flows.clear();
            t.resend.clear();
            t.groups.clear();
            t.meters.clear();
        }
        self.len = 0;
    }
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

/// Which modules a packet-in goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// The module that owns the cookie of the flow that sent it.
    Owner(Owner),
    /// No Flowgate cookie: a table miss (cookie 0 or all-ones, any table,
    /// every OpenFlow 1.0 packet-in) or an operator's flow. It goes to
    /// every module that wants such packet-ins: forwarding, on any version.
    Foreign,
}

impl Route {
    fn of(packet_in: &of::PacketIn) -> Route {
        cookie::owner_of(packet_in.cookie).map_or(Route::Foreign, Route::Owner)
    }

    /// Whether a packet-in routed so reaches `module` on a switch of
    /// `version`.
    fn reaches(self, module: &dyn Module, version: u8) -> bool {
        module.supports(version)
            && match self {
                Route::Owner(owner) => module.owner() == owner,
                Route::Foreign => module.wants_foreign_packet_ins(),
            }
    }
}

/// The route of the packet-ins that start `messages`, and how many in a row
/// (at most [`PACKET_IN_RUN`]) share it; `None` if the first message is no
/// packet-in.
fn packet_in_run(messages: &[(u32, Message)]) -> Option<(Route, usize)> {
    let route_of = |message: &Message| match message {
        Message::PacketIn(packet_in) => Some(Route::of(packet_in)),
        _ => None,
    };
    let route = route_of(&messages.first()?.1)?;
    let len = messages
        .iter()
        .take(PACKET_IN_RUN)
        .take_while(|(_, m)| route_of(m) == Some(route))
        .count();
    Some((route, len))
}

/// The switch, if `changes` are all re-sends and packet-outs to that one
/// switch.
fn direct_to_one_switch(changes: &[Change]) -> Option<u64> {
    let mut dpids = changes.iter().map(|change| match change {
        Change::ResendFlow { dpid, .. } | Change::PacketOut { dpid, .. } => Some(*dpid),
        _ => None,
    });
    let first = dpids.next()??;
    dpids.all(|d| d == Some(first)).then_some(first)
}

fn change_dpid(change: &Change) -> Option<u64> {
    Some(match change {
        Change::InstallFlow { dpid, .. }
        | Change::RemoveFlow { dpid, .. }
        | Change::ResendFlow { dpid, .. }
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
