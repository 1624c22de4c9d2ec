//! The core: one task that owns the modules, every switch's desired and
//! installed tables, and the reconciler. Drivers send it events; it runs the
//! modules, applies their changes to desired state, and sends only the
//! difference to each switch, closed by a barrier.
//!
//! Events are processed in batches: everything queued is handled first, then
//! each switch's output is handed to its writer as one buffer.
//!
//! Every message sent is recorded with the module call that caused it (if
//! any) until the switch's barrier reply, so a switch's ERROR reaches the
//! owning module ([`Event::Rejected`]) and the call that caused it, and no
//! other call.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use flowgate_cluster::{Eligibility, RoleAnswer, RoleEvent, RoleState};
use flowgate_openflow::{self as of, ErrorMsg, FlowRemoved, Message, RoleMsg};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::cluster::{shared_async_config, ClusterView, ConnectionRole, Coordinator, RoleCount};
use crate::cookie::{self, Owner};
use crate::declare::{Declarations, Delta};
use crate::desired::{FlowEntry, FlowId, FlowKey, GroupSpec, MeterSpec};
use crate::events::{Bus, BusEvent, PortChange};
use crate::module::{Adoption, Change, Ctx, Desired, Event, Module, PacketIns, Scope};
use crate::pipeline;
use crate::runtime::metrics::Metrics;
use crate::runtime::reconcile::{Plan, Planned, ReconcileCounts, SwitchTables};
use crate::runtime::registry::{SwitchCmd, SwitchHandle};
use crate::runtime::rejection::{Rejected, SwitchRejection};
use crate::runtime::session::{
    encode_for, encoded, set_flow_mod_buffer_id, RequestError, SwitchSync,
};
use crate::runtime::unknown_table;
use crate::runtime::writer::SendError;
use crate::store::Op;

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

/// Work sent to run on the core with exclusive access to it (module calls).
pub type CoreCall = Box<dyn FnOnce(&mut Core, Instant) + Send>;

/// A switch's confirmation still to come, for [`Core::call_module`].
pub type PendingAck = (u64, oneshot::Receiver<SwitchAck>);

/// Names one module call while its messages are in flight.
pub type CallId = NonZeroU32;

/// A switch confirmed (barrier reply) the messages a call caused.
#[derive(Debug, Clone, Default)]
pub struct SwitchAck {
    /// What the switch refused of those messages (of no other call's).
    pub rejections: Vec<SwitchRejection>,
}

/// What [`Core::call_module`] did.
#[derive(Debug)]
pub struct CallOutcome<R> {
    pub value: R,
    /// The module called.
    pub owner: Owner,
    /// One receiver per switch that was sent something.
    pub acks: Vec<PendingAck>,
    /// Switches the call changed but this node may not write (another
    /// node of the cluster masters them): they get the change when their
    /// master follows the store.
    pub remote: Vec<u64>,
    /// Store writes the call asked for ([`Ctx::persist`]), for the caller
    /// to perform before it reports success.
    pub persist: Vec<Op>,
    /// Mods the call sent, by kind.
    pub sent: ReconcileCounts,
    /// Core time the call took: the module's work (validation, compiling,
    /// declaring) and the diff.
    pub took: Duration,
}

/// What drivers, tasks and the API tell the core.
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
    /// A message from a module's background task, for that module.
    Task {
        owner: Owner,
        payload: Box<dyn Any + Send>,
    },
    /// An event for the bus from outside the core (module services).
    Emit(BusEvent),
    /// The cluster's view changed (clustering only).
    Cluster(ClusterView),
    /// A switch's answer to the role request the core sent with `token`
    /// on connection `conn_id` (clustering only).
    RoleAnswer {
        dpid: u64,
        conn_id: u64,
        token: u64,
        answer: RoleAnswer,
    },
}

/// What a sent message was about, to explain a switch's ERROR reply.
#[derive(Debug, Clone)]
enum Sent {
    /// The entry by id (see [`FlowId`]): the tables keep its key alive.
    Flow(FlowId),
    Group(u32),
    Meter(u32),
}

/// A message awaiting its barrier reply.
#[derive(Debug, Clone)]
struct Inflight {
    xid: u32,
    /// The module call that caused it, if one did.
    call: Option<CallId>,
    sent: Sent,
}

/// Someone waiting for a switch to confirm a call's messages.
type Waiter = (CallId, oneshot::Sender<SwitchAck>);

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
    /// Which module scope declared which entry.
    declared: Declarations,
    /// Messages sent since the last barrier reply, in xid (= send) order.
    inflight: VecDeque<Inflight>,
    next_xid: u32,
    out: BytesMut,
    needs_barrier: bool,
    /// Send the barrier with the next flush (full reconciliation on connect).
    barrier_due: bool,
    /// Callers waiting for the next barrier to be sent.
    waiting: Vec<Waiter>,
    /// Callers waiting for the reply to a sent barrier, by its xid.
    /// Barriers are answered in order, so a queue in send order (wrap-safe).
    barriers: VecDeque<(u32, Vec<Waiter>)>,
    /// Rejections of calls' messages since the last barrier reply.
    rejections: Vec<(CallId, SwitchRejection)>,
    /// Listed in [`Core::dirty`] for the next flush.
    dirty: bool,
    /// This node's role on the switch; `None` without clustering, when
    /// every write goes out as it always did.
    cluster: Option<Box<Clustered>>,
}

/// A clustered switch connection's role, and whether its tables are being
/// dumped again.
struct Clustered {
    role: RoleState,
    /// Became master, and the re-dump asked for then has not come back:
    /// what the core believes installed is stale (another master wrote),
    /// so nothing is written until the dump replaces it.
    redump_pending: bool,
}

impl SwitchState {
    fn new(handle: SwitchHandle, version: u8, tables: SwitchTables) -> SwitchState {
        SwitchState {
            handle,
            version,
            tables,
            declared: Declarations::default(),
            inflight: VecDeque::new(),
            next_xid: 0,
            out: BytesMut::new(),
            needs_barrier: false,
            barrier_due: true,
            dirty: false,
            waiting: Vec::new(),
            barriers: VecDeque::new(),
            rejections: Vec::new(),
            cluster: None,
        }
    }

    /// Whether the core may write to the switch (FLOW_MOD, GROUP_MOD,
    /// METER_MOD, PACKET_OUT, ...) at `now`: always without clustering (one
    /// branch on the packet-in path), and as the role state says with it.
    #[inline]
    fn may_write(&self, now: Instant) -> bool {
        match &self.cluster {
            None => true,
            Some(c) => !c.redump_pending && c.role.may_write(now),
        }
    }

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
        call: Option<CallId>,
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
            sent_any |= self.resend(id, buffer_id, call, sent);
        }
        sent_any
    }

    /// Re-sends the desired entry of the key `id` names as an ADD, copying
    /// its cached encoding ([`SwitchTables::resend_flow`]), releasing the
    /// packet in `buffer_id`; false if none is desired.
    fn resend(
        &mut self,
        id: FlowId,
        buffer_id: u32,
        call: Option<CallId>,
        sent: &mut ReconcileCounts,
    ) -> bool {
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
        self.inflight.push_back(Inflight {
            xid,
            call,
            sent: Sent::Flow(id),
        });
        self.needs_barrier = true;
        sent.flow_adds += 1;
        true
    }

    /// Appends the PACKET_OUT of a [`Change::PacketOut`] or
    /// [`Change::Resubmit`] (other changes send nothing).
    fn packet_out(&mut self, change: &Change) {
        /// The one action of a resubmit: through the tables from the first.
        const TO_TABLES: &[of::Action] = &[of::Action::Output {
            port: of::port_no::TABLE,
            max_len: 0,
        }];
        let packet_out = match change {
            Change::PacketOut { packet_out, .. } => packet_out.borrowed(),
            Change::Resubmit {
                in_port,
                buffer_id,
                data,
                ..
            } => of::PacketOutRef {
                buffer_id: *buffer_id,
                in_port: *in_port,
                actions: TO_TABLES,
                data,
            },
            _ => return,
        };
        let xid = self.xid();
        encoded(if self.version == of::OFP_VERSION_1_0 {
            of::of10::encode_packet_out(xid, &packet_out, &mut self.out)
        } else {
            of::encode_packet_out(xid, &packet_out, &mut self.out)
        });
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
    fn send_plan(&mut self, plan: &mut Plan, call: Option<CallId>, sent: &mut ReconcileCounts) {
        if plan.is_empty() {
            return;
        }
        sent.add(&plan.counts);
        for planned in plan.drain() {
            let xid = self.xid();
            if !planned.encode(self.version, xid, &mut self.out) {
                continue;
            }
            let what = match planned {
                Planned::Flow { key, .. } | Planned::DeleteFlow { key, .. } => Sent::Flow(key.id()),
                Planned::Group(gm) => Sent::Group(gm.group_id),
                Planned::Meter(mm) => Sent::Meter(mm.meter_id),
            };
            self.inflight.push_back(Inflight {
                xid,
                call,
                sent: what,
            });
        }
        self.needs_barrier = true;
    }

    /// Applies a declaration's delta to desired state, listing what it
    /// touched for reconciliation.
    fn apply_delta(&mut self, delta: Delta, t: &mut Touched) {
        for entry in delta.flows {
            t.flows.push(entry.key.clone());
            self.tables.desire_flow(entry.key, entry.spec);
        }
        for key in delta.dropped_flows {
            self.tables.undesire_flow(&key);
            t.flows.push(key);
        }
        for entry in delta.groups {
            // In canonical form whoever built it, so it compares with what
            // the switch reports.
            let spec = GroupSpec::new(entry.spec.group_type, entry.spec.buckets);
            self.tables.desire_group(entry.id, Some(spec));
            t.groups.push(entry.id);
        }
        for id in delta.dropped_groups {
            self.tables.desire_group(id, None);
            t.groups.push(id);
        }
        for entry in delta.meters {
            let spec = MeterSpec::new(entry.spec.flags, entry.spec.bands);
            self.tables.desire_meter(entry.id, Some(spec));
            t.meters.push(entry.id);
        }
        for id in delta.dropped_meters {
            self.tables.desire_meter(id, None);
            t.meters.push(id);
        }
    }

    /// Puts what `owner` owns on a newly connected switch under its
    /// [`Scope::ADOPTED`], desired as it is.
    fn adopt(&mut self, owner: Owner, owned: &Owned) {
        let flows: Vec<FlowKey> = owned
            .flows
            .iter()
            .map(|stats| {
                let entry = FlowEntry::from_stats(stats);
                let key = entry.key.clone();
                self.tables.desire_flow(entry.key, entry.spec);
                key
            })
            .collect();
        for g in &owned.groups {
            self.tables
                .desire_group(g.group_id, Some(GroupSpec::from_desc(g)));
        }
        for m in &owned.meters {
            self.tables
                .desire_meter(m.meter_id, Some(MeterSpec::from_config(m)));
        }
        self.declared.adopt(
            owner,
            flows,
            owned.groups.iter().map(|g| g.group_id),
            owned.meters.iter().map(|m| m.meter_id),
        );
    }
}

/// What one module owns among a connecting switch's entries.
struct Owned {
    flows: Vec<of::FlowStats>,
    groups: Vec<of::GroupDesc>,
    meters: Vec<of::MeterConfig>,
}

impl Owned {
    fn of(owner: Owner, sync: &SwitchSync) -> Owned {
        let mine = |id: u32| cookie::owner_of_id(id) == Some(owner);
        Owned {
            flows: sync
                .flows
                .iter()
                .filter(|f| cookie::owner_of(f.cookie) == Some(owner))
                .cloned()
                .collect(),
            groups: sync
                .groups
                .iter()
                .filter(|g| mine(g.group_id))
                .cloned()
                .collect(),
            meters: sync
                .meters
                .iter()
                .filter(|m| mine(m.meter_id))
                .cloned()
                .collect(),
        }
    }
}

pub struct Core {
    modules: Vec<Box<dyn Module>>,
    switches: HashMap<u64, SwitchState, foldhash::fast::RandomState>,
    metrics: Arc<Metrics>,
    bus: Bus,
    /// Store writes asked for outside calls, performed in order off the core.
    persister: Option<mpsc::UnboundedSender<Vec<Op>>>,
    /// Published notices not yet delivered, with their publisher.
    notices: VecDeque<(Owner, Arc<dyn Any + Send + Sync>)>,
    /// Bus events not yet delivered to subscribed modules.
    bus_events: VecDeque<BusEvent>,
    /// The module call being applied: its messages carry its id.
    call: Option<CallId>,
    next_call: u32,
    /// Store writes of the call being applied.
    call_persist: Vec<Op>,
    /// The next flush closes every switch's pending messages with a barrier.
    barrier_all: bool,
    /// The change buffer every module event reuses.
    spare_changes: Vec<Change>,
    /// The plan buffer every reconciliation reuses.
    spare_plan: Plan,
    touched: TouchedSet,
    /// Switches the last [`Core::apply_changes`] sent something.
    sent_to: Vec<u64>,
    /// Switches the last [`Core::apply_changes`] changed but may not write.
    remote_to: Vec<u64>,
    /// Switches with output or a barrier due since the last flush: a flush
    /// visits only these (one cold switch state per answer, not all of them).
    dirty: Vec<u64>,
    /// Packet-ins and mods counted since the last flush, published to
    /// [`Metrics`] once per batch.
    packet_ins: u64,
    sent: ReconcileCounts,
    /// The time of the event being handled, for the write gate of
    /// clustered switches.
    now: Instant,
    /// Set when this node is one of a cluster.
    cluster: Option<CoreCluster>,
}

/// The core's link to the cluster.
struct CoreCluster {
    coordinator: Arc<dyn Coordinator>,
    view: ClusterView,
    /// Where the answers to role requests come back: the core's own
    /// control lane.
    answers: mpsc::Sender<CoreEvent>,
    /// Which connected switches this node has offered to master.
    eligibility: Eligibility,
}

/// How many probe rounds a joining node waits, at most, to see every
/// switch the cluster knows before it offers itself anyway.
const PATIENCE_ROUNDS: u32 = 5;

impl Core {
    pub fn new(modules: Vec<Box<dyn Module>>, metrics: Arc<Metrics>) -> Self {
        Core {
            modules,
            switches: HashMap::default(),
            metrics,
            bus: Bus::default(),
            persister: None,
            notices: VecDeque::new(),
            bus_events: VecDeque::new(),
            call: None,
            next_call: 0,
            call_persist: Vec::new(),
            barrier_all: false,
            spare_changes: Vec::new(),
            spare_plan: Plan::default(),
            touched: TouchedSet::default(),
            sent_to: Vec::new(),
            remote_to: Vec::new(),
            dirty: Vec::new(),
            packet_ins: 0,
            sent: ReconcileCounts::default(),
            now: Instant::now(),
            cluster: None,
        }
    }

    /// Makes this core one node of a cluster: a switch is written only by
    /// the node the coordinator names its master, once the switch confirmed
    /// the role. Role answers come back as [`CoreEvent::RoleAnswer`] on
    /// `answers` (the control lane); the caller forwards the coordinator's
    /// view changes as [`CoreEvent::Cluster`].
    pub fn with_cluster(
        mut self,
        coordinator: Arc<dyn Coordinator>,
        answers: mpsc::Sender<CoreEvent>,
        probe_round: Duration,
    ) -> Self {
        let view = coordinator.view().borrow().clone();
        self.cluster = Some(CoreCluster {
            coordinator,
            view,
            answers,
            eligibility: Eligibility::new(probe_round, probe_round * PATIENCE_ROUNDS),
        });
        self
    }

    /// Puts the core's events on `bus` (instead of a private one).
    pub fn with_bus(mut self, bus: Bus) -> Self {
        self.bus = bus;
        self
    }

    /// Store writes modules ask for outside calls go to `persister`, which
    /// performs them in order off the core; without one they are dropped
    /// with a warning.
    pub fn with_persister(mut self, persister: mpsc::UnboundedSender<Vec<Op>>) -> Self {
        self.persister = Some(persister);
        self
    }

    /// Runs until every driver and the runtime have dropped their senders.
    /// `events` carries the switches' events; `control` module calls, task
    /// messages and bus events from outside, which are served ahead of
    /// switch events and between any two of them: a backlog of switch
    /// events (a port storm, a packet-in flood) never makes a REST call
    /// wait for more than one event.
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<CoreEvent>,
        mut control: mpsc::Receiver<CoreEvent>,
    ) {
        let mut batch = Vec::with_capacity(BATCH);
        // The tick is checked after every batch and only waited on when
        // the core is idle: polling a timer per batch registered its waker
        // every time, and a steady flood of events must not starve it.
        // Tokio's clock throughout, so tests can run the core on a paused,
        // simulated one.
        let mut next_tick = tokio::time::Instant::now() + TICK;
        let idle_tick = tokio::time::sleep_until(next_tick);
        tokio::pin!(idle_tick);
        // Clustering: every role state's `poll_timeout` is the node's lease
        // deadline, so one timer serves them all, waited on and checked
        // like the tick. Without clustering it is never armed.
        let lease_timer = tokio::time::sleep_until(next_tick);
        tokio::pin!(lease_timer);
        let mut lease_seen: Option<Instant> = None;
        let mut lease_due: Option<Instant> = None;
        loop {
            let deadline = self.cluster.as_ref().and_then(|c| c.view.lease_until);
            if deadline != lease_seen {
                lease_seen = deadline;
                lease_due = deadline;
                if let Some(at) = deadline {
                    lease_timer
                        .as_mut()
                        .reset(tokio::time::Instant::from_std(at));
                }
            }
            let now = tokio::select! {
                biased;
                Some(event) = control.recv() => {
                    let now = tokio::time::Instant::now();
                    self.handle(event, now.into_std());
                    self.serve_control(&mut control, now.into_std());
                    now
                }
                n = events.recv_many(&mut batch, BATCH) => {
                    if n == 0 {
                        return;
                    }
                    if self.switches.len() > 1 {
                        gather(&mut events, &mut batch).await;
                    }
                    // One clock read per batch: modules see the batch's time.
                    let now = tokio::time::Instant::now();
                    for event in batch.drain(..) {
                        self.handle(event, now.into_std());
                        self.serve_control(&mut control, now.into_std());
                    }
                    now
                }
                _ = &mut idle_tick => tokio::time::Instant::now(),
                _ = &mut lease_timer, if lease_due.is_some() => tokio::time::Instant::now(),
            };
            if lease_due.is_some_and(|at| now.into_std() >= at) {
                lease_due = None;
                self.role_timers(now.into_std());
            }
            if now >= next_tick {
                self.tick(now.into_std());
                next_tick = now + TICK;
                idle_tick.as_mut().reset(next_tick);
            }
            self.batch_end(now.into_std());
            self.flush();
        }
    }

    /// Handles what waits on the control lane (module calls first).
    fn serve_control(&mut self, control: &mut mpsc::Receiver<CoreEvent>, now: Instant) {
        while let Ok(event) = control.try_recv() {
            self.handle(event, now);
        }
    }

    /// [`Module::batch_end`] of every module, then what they published.
    pub fn batch_end(&mut self, now: Instant) {
        self.now = now;
        for i in 0..self.modules.len() {
            let mut ctx = Ctx::with_buffer(now, std::mem::take(&mut self.spare_changes));
            self.modules[i].batch_end(&mut ctx);
            let owner = self.modules[i].owner();
            let mut changes = ctx.take_changes();
            if !changes.is_empty() {
                self.apply_changes(owner, &mut changes, true);
            }
            self.spare_changes = changes;
        }
        self.deliver_notices(now);
    }

    /// Once a second: [`Event::Tick`] to every module, and a barrier to
    /// every switch that has messages awaiting one.
    pub fn tick(&mut self, now: Instant) {
        self.now = now;
        self.offer_switches(now);
        self.dispatch_all(&Event::Tick, now);
        self.deliver_notices(now);
        self.barrier_all = true;
    }

    /// Runs `f` on the module of type `M` with a fresh [`Ctx`] and applies
    /// its changes as one call: the messages it causes carry the call's id,
    /// and each switch that was sent something confirms them (or reports
    /// what it refused of them, and only of them) through its
    /// [`PendingAck`], which is dropped if the switch disconnects first.
    pub fn call_module<M: Module, R>(
        &mut self,
        now: Instant,
        f: impl FnOnce(&mut M, &mut Ctx) -> R,
    ) -> Option<CallOutcome<R>> {
        let i = self
            .modules
            .iter_mut()
            .position(|m| (m.as_mut() as &mut dyn Any).is::<M>())?;
        let outcome = self.call_index(now, i, |module, ctx| {
            (module as &mut dyn Any)
                .downcast_mut::<M>()
                .map(|module| f(module, ctx))
        })?;
        let value = outcome.value?;
        Some(CallOutcome {
            value,
            owner: outcome.owner,
            acks: outcome.acks,
            remote: outcome.remote,
            persist: outcome.persist,
            sent: outcome.sent,
            took: outcome.took,
        })
    }

    /// [`Core::call_module`] on the `i`-th module (in the order the
    /// runtime was started with), whatever its type: the runtime's own
    /// callers (the store follower) reach modules through [`Module`]'s
    /// methods.
    pub fn call_index<R>(
        &mut self,
        now: Instant,
        i: usize,
        f: impl FnOnce(&mut dyn Module, &mut Ctx) -> R,
    ) -> Option<CallOutcome<R>> {
        let owner = self.modules.get(i)?.owner();
        let module = self.modules[i].as_mut();
        self.now = now;
        let started = Instant::now();
        let mut ctx = Ctx::new(now);
        let value = f(module, &mut ctx);
        self.next_call = self.next_call.wrapping_add(1).max(1);
        let call = CallId::new(self.next_call);
        self.call = call;
        let before = self.sent;
        self.apply_changes(owner, &mut ctx.take_changes(), true);
        let sent = self.sent.minus(&before);
        let took = started.elapsed();
        self.call = None;
        let persist = std::mem::take(&mut self.call_persist);
        let sent_to = std::mem::take(&mut self.sent_to);
        let remote = std::mem::take(&mut self.remote_to);
        // Other modules' reactions are not part of the call.
        self.deliver_notices(now);
        let mut acks = Vec::new();
        for dpid in sent_to {
            if let (Some(state), Some(call)) = (self.switches.get_mut(&dpid), call) {
                let (tx, rx) = oneshot::channel();
                state.waiting.push((call, tx));
                acks.push((dpid, rx));
            }
        }
        Some(CallOutcome {
            value,
            owner,
            acks,
            remote,
            persist,
            sent,
            took,
        })
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

    pub fn handle(&mut self, event: CoreEvent, now: Instant) {
        self.now = now;
        match event {
            CoreEvent::SwitchUp { dpid, handle, sync } => self.switch_up(dpid, handle, &sync, now),
            CoreEvent::SwitchDown { dpid, conn_id } => {
                if self.is_current(dpid, conn_id) {
                    if let Some(state) = self.switches.remove(&dpid) {
                        if let (Some(cluster), Some(c)) = (&mut self.cluster, &state.cluster) {
                            if cluster.eligibility.disconnected(dpid) {
                                cluster.coordinator.disconnected(dpid);
                            }
                            if let Some(book) = cluster.coordinator.roles() {
                                if c.role.is_master() {
                                    book.count(RoleCount::Lost);
                                }
                                book.remove(dpid);
                            }
                        }
                        self.emit(BusEvent::SwitchDown { dpid });
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
            CoreEvent::Emit(event) => self.emit(event),
            CoreEvent::Task { owner, payload } => {
                if let Some(i) = self.modules.iter().position(|m| m.owner() == owner) {
                    let event = Event::Task {
                        payload: payload.as_ref(),
                    };
                    self.dispatch_index(i, &event, now);
                }
            }
            CoreEvent::Cluster(view) => self.cluster_view(view, now),
            CoreEvent::RoleAnswer {
                dpid,
                conn_id,
                token,
                answer,
            } => {
                if self.is_current(dpid, conn_id) {
                    if let Some(c) = self.clustered(dpid) {
                        c.role.handle_answer(now, token, answer);
                    }
                    self.role_events(dpid);
                }
            }
        }
        self.deliver_notices(now);
    }

    fn clustered(&mut self, dpid: u64) -> Option<&mut Clustered> {
        self.switches.get_mut(&dpid)?.cluster.as_deref_mut()
    }

    /// A new view of the cluster: every switch's role state hears of its
    /// assignment and of the lease.
    fn cluster_view(&mut self, view: ClusterView, now: Instant) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        cluster.view = view;
        let view = cluster.view.clone();
        let dpids: Vec<u64> = self.switches.keys().copied().collect();
        for dpid in dpids {
            if let Some(c) = self.clustered(dpid) {
                c.role.handle_lease(now, view.lease_until);
                c.role
                    .handle_assignment(now, view.masters.get(&dpid).cloned());
            }
            self.role_events(dpid);
        }
    }

    /// The lease deadlines that came ([`RoleState::poll_timeout`]): the
    /// role states demote and step down to SLAVE. (`may_write` checks the
    /// deadline itself at every write; the timer makes the rest prompt.)
    fn role_timers(&mut self, now: Instant) {
        if self.cluster.is_none() {
            return;
        }
        let due: Vec<u64> = self
            .switches
            .iter()
            .filter(|(_, s)| {
                s.cluster
                    .as_ref()
                    .and_then(|c| c.role.poll_timeout())
                    .is_some_and(|at| at <= now)
            })
            .map(|(dpid, _)| *dpid)
            .collect();
        for dpid in due {
            if let Some(c) = self.clustered(dpid) {
                c.role.handle_timeout(now);
            }
            self.role_events(dpid);
        }
    }

    /// Acts on what `dpid`'s role state asks for.
    fn role_events(&mut self, dpid: u64) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let Some(state) = self.switches.get_mut(&dpid) else {
            return;
        };
        let Some(c) = state.cluster.as_deref_mut() else {
            return;
        };
        let id = format!("{dpid:016x}");
        let book = cluster.coordinator.roles();
        let count = |what| {
            if let Some(book) = book {
                book.count(what);
            }
        };
        while let Some(event) = c.role.poll_event() {
            match event {
                RoleEvent::Request {
                    token,
                    role,
                    generation,
                } => {
                    debug!(dpid = id, ?role, generation = generation.0, "role request");
                    tokio::spawn(ask_role(
                        dpid,
                        state.handle.clone(),
                        token,
                        role.request(generation),
                        cluster.answers.clone(),
                    ));
                }
                RoleEvent::BecameMaster { generation } => {
                    count(RoleCount::Gained);
                    info!(
                        dpid = id,
                        generation = generation.0,
                        "master of the switch: dumping its tables to adopt them"
                    );
                    c.redump_pending = true;
                    let cmd = state.handle.cmd.clone();
                    // Its SwitchUp (the same connection) replaces the
                    // tables and reconciles them, as after a restart.
                    tokio::spawn(async move {
                        let _ = cmd.send(SwitchCmd::Resync).await;
                    });
                }
                RoleEvent::Demoted { reason } => {
                    count(RoleCount::Lost);
                    info!(
                        dpid = id,
                        ?reason,
                        "no longer master of the switch: writes held"
                    );
                }
                RoleEvent::Fenced { role, generation } => {
                    count(RoleCount::RefusedStale);
                    info!(
                        dpid = id,
                        ?role,
                        generation = generation.0,
                        "the switch knows a newer master (stale generation)"
                    );
                }
                RoleEvent::Refused {
                    role,
                    generation,
                    err_type,
                    code,
                } => warn!(
                    dpid = id,
                    ?role,
                    generation = generation.0,
                    error = %of::describe(err_type, code),
                    "the switch refused a role request: it cannot be shared, this node does not write to it"
                ),
            }
        }
        if let Some(book) = book {
            book.set(
                dpid,
                ConnectionRole {
                    confirmed: c.role.switch_role(),
                    master: c.role.is_master(),
                },
            );
        }
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

    /// Puts `event` on the bus and queues it for subscribed modules.
    fn emit(&mut self, event: BusEvent) {
        self.bus.send(event.clone());
        if self
            .modules
            .iter()
            .any(|m| m.subscriptions().contains(event.topic()))
        {
            self.bus_events.push_back(event);
        }
    }

    /// Hands published notices to every module but the publisher, and bus
    /// events to the modules subscribed to them; what they publish while
    /// handling one is delivered in turn.
    fn deliver_notices(&mut self, now: Instant) {
        loop {
            if let Some((from, payload)) = self.notices.pop_front() {
                for i in 0..self.modules.len() {
                    if self.modules[i].owner() != from {
                        let event = Event::Notice {
                            from,
                            payload: payload.as_ref(),
                        };
                        self.dispatch_index(i, &event, now);
                    }
                }
            } else if let Some(bus_event) = self.bus_events.pop_front() {
                for i in 0..self.modules.len() {
                    if self.modules[i].subscriptions().contains(bus_event.topic()) {
                        self.dispatch_index(i, &Event::Bus { event: &bus_event }, now);
                    }
                }
            } else {
                return;
            }
        }
    }

    fn switch_up(&mut self, dpid: u64, handle: SwitchHandle, sync: &SwitchSync, now: Instant) {
        if self.redumped(dpid, handle.conn_id, sync, now) {
            return;
        }
        let mut tables = SwitchTables::from_sync(sync);
        // A 1.0 switch has one table and sends misses to the controller.
        if sync.version != of::OFP_VERSION_1_0 {
            for entry in pipeline::core_entries() {
                tables.desire_flow(entry.key, entry.spec);
            }
        }
        let cluster = self.switch_role(dpid, now);
        let mut state = SwitchState::new(handle, sync.version, tables);
        if cluster.is_some() && sync.version != of::OFP_VERSION_1_0 {
            // Not a write: the connection's own settings, in any role.
            let xid = state.xid();
            let set_async = Message::SetAsync(shared_async_config());
            encode_for(state.version, xid, &set_async, &mut state.out);
            mark_dirty(&mut self.dirty, dpid, &mut state);
        }
        state.cluster = cluster;
        self.switches.insert(dpid, state);
        self.emit(BusEvent::SwitchUp {
            dpid,
            version: sync.version,
        });
        // Each module sees what it owns that survived on the switch, kept
        // as it is under its adoption policy.
        for i in 0..self.modules.len() {
            if !self.modules[i].supports(sync.version) {
                continue;
            }
            let owner = self.modules[i].owner();
            let owned = Owned::of(owner, sync);
            if self.modules[i].adoption() == Adoption::Keep {
                if let Some(state) = self.switches.get_mut(&dpid) {
                    state.adopt(owner, &owned);
                }
            }
            let event = Event::SwitchUp {
                dpid,
                ports: &sync.ports,
                installed: &owned.flows,
                groups: &owned.groups,
                meters: &owned.meters,
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
        if !state.may_write(now) {
            // Desired state is built; the master writes it (this node, once
            // it is master: then the tables are dumped again).
            self.role_events(dpid);
            return;
        }
        let started = Instant::now();
        state.clear_unknown(sync);
        let mut plan = state.tables.reconcile_all();
        log_full_plan(dpid, state, &plan, "reconciled switch");
        state.send_plan(&mut plan, None, &mut self.sent);
        self.metrics.record_reconcile(started.elapsed());
        self.role_events(dpid);
    }

    /// The re-dump this node asked for on becoming master of `dpid` (the
    /// same connection, synced again): the installed side becomes the
    /// dump and the desired side stays as the modules built it while this
    /// node was a slave — they heard every packet-in and port change, so
    /// they need no SwitchUp — and one full reconciliation sends only the
    /// difference: the new master adopts what the old one wrote. False if
    /// this is not such a re-dump.
    fn redumped(&mut self, dpid: u64, conn_id: u64, sync: &SwitchSync, now: Instant) -> bool {
        let Some(state) = self.switches.get_mut(&dpid).filter(|s| {
            s.handle.conn_id == conn_id && s.cluster.as_ref().is_some_and(|c| c.redump_pending)
        }) else {
            return false;
        };
        if let Some(c) = state.cluster.as_deref_mut() {
            c.redump_pending = false;
        }
        state.tables.reinstall(sync);
        mark_dirty(&mut self.dirty, dpid, state);
        if state.may_write(now) {
            state.barrier_due = true;
            let mut plan = state.tables.reconcile_all();
            log_full_plan(dpid, state, &plan, "adopted the switch as its new master");
            state.send_plan(&mut plan, None, &mut self.sent);
        }
        self.role_events(dpid);
        true
    }

    /// Reports to the cluster the connected switches this node may now
    /// master ([`flowgate_cluster::eligible`]).
    fn offer_switches(&mut self, now: Instant) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let known = cluster.view.masters.keys().copied();
        for dpid in cluster.eligibility.due(known, now) {
            cluster.coordinator.connected(dpid);
        }
    }

    /// The role state of a new connection `conn_id` of `dpid`, if
    /// clustering is on: started and reported to the cluster.
    fn switch_role(&mut self, dpid: u64, now: Instant) -> Option<Box<Clustered>> {
        let cluster = self.cluster.as_mut()?;
        let mut role = RoleState::new(cluster.coordinator.node().clone());
        role.handle_lease(now, cluster.view.lease_until);
        role.handle_assignment(now, cluster.view.masters.get(&dpid).cloned());
        role.handle_connected(now);
        cluster.eligibility.connected(dpid, now);
        self.offer_switches(now);
        Some(Box::new(Clustered {
            role,
            redump_pending: false,
        }))
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
                    self.emit(BusEvent::Port {
                        dpid,
                        port: status.desc.port_no,
                        name: status.desc.name.clone(),
                        change: port_change(status),
                    });
                    let event = Event::PortStatus { dpid, status };
                    self.dispatch_switch(version, &event, now);
                }
            }
            Message::FlowRemoved(removed) => self.flow_removed(dpid, removed, now),
            Message::BarrierReply => self.barrier_reply(dpid, xid),
            Message::Error(error) => self.switch_error(dpid, xid, error, now),
            other => debug!(msg_type = other.msg_type(), "ignored message from switch"),
        }
    }

    /// Everything up to barrier `xid` was processed: forget it, and answer
    /// each waiting call with its own rejections.
    fn barrier_reply(&mut self, dpid: u64, xid: u32) {
        let Some(state) = self.switches.get_mut(&dpid) else {
            return;
        };
        while state
            .inflight
            .front()
            .is_some_and(|sent| xid_before(sent.xid, xid))
        {
            state.inflight.pop_front();
        }
        // Replies come in send order: this one answers every barrier
        // queued up to and including it.
        let Some(pos) = state.barriers.iter().position(|(sent, _)| *sent == xid) else {
            return;
        };
        let mut rejections = std::mem::take(&mut state.rejections);
        for (_, waiters) in state.barriers.drain(..=pos) {
            for (call, waiter) in waiters {
                let (mine, rest) = rejections.into_iter().partition(|(c, _)| *c == call);
                rejections = rest;
                let _ = waiter.send(SwitchAck {
                    rejections: mine.into_iter().map(|(_, r)| r).collect(),
                });
            }
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

    /// A switch rejected something we sent: forget that the entry is
    /// installed (the next reconciliation of it retries), and tell the
    /// owning module and the call that caused it.
    fn switch_error(&mut self, dpid: u64, xid: u32, error: &ErrorMsg, now: Instant) {
        let (err_type, code) = match error {
            ErrorMsg::Standard { err_type, code, .. } => (*err_type, *code),
            ErrorMsg::Experimenter { exp_type, .. } => (of::error_type::EXPERIMENTER, *exp_type),
        };
        if (err_type, code)
            == (
                of::error_type::BAD_REQUEST,
                of::error_code::bad_request::IS_SLAVE,
            )
        {
            // Another node is master now (OpenFlow 1.3 says so no other
            // way): the role state stops writing and asks to learn more.
            if let Some(c) = self.clustered(dpid) {
                c.role.handle_write_refused(now);
                if let Some(book) = self.cluster.as_ref().and_then(|c| c.coordinator.roles()) {
                    book.count(RoleCount::RefusedIsSlave);
                }
                self.role_events(dpid);
            }
        }
        let Some(state) = self.switches.get_mut(&dpid) else {
            return;
        };
        self.metrics.switch_error();
        let sent = state
            .inflight
            .iter()
            .position(|s| s.xid == xid)
            .and_then(|i| state.inflight.remove(i));
        let Some(Inflight { call, sent, .. }) = sent else {
            warn!(dpid = format_args!("{dpid:016x}"), error = %of::describe(err_type, code), xid, "switch error");
            return;
        };
        let what = match sent {
            Sent::Flow(id) => {
                let Some((table, priority, cookie)) = state.tables.forget_installed_flow(id) else {
                    return;
                };
                Rejected::Flow {
                    table,
                    priority,
                    cookie,
                }
            }
            Sent::Group(id) => {
                state.tables.forget_installed_group(id);
                Rejected::Group { id }
            }
            Sent::Meter(id) => {
                state.tables.forget_installed_meter(id);
                Rejected::Meter { id }
            }
        };
        let rejection = SwitchRejection {
            dpid,
            err_type,
            code,
            what,
        };
        warn!(call = call.map(CallId::get), "switch rejected {rejection}");
        if let Some(call) = call {
            state.rejections.push((call, rejection.clone()));
        }
        let owner = what.owner();
        self.emit(BusEvent::Rejected {
            dpid,
            owner: owner.map_or("unknown", Owner::name).to_owned(),
            error: rejection.error(),
            what,
        });
        if let Some(owner) = owner {
            let event = Event::Rejected {
                rejection: &rejection,
            };
            self.dispatch_to(dpid, owner, &event, now);
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
        self.remote_to.clear();
        let call = self.call;
        let now = self.now;
        // Re-sends and packet-outs to one switch only (known hosts' repeated
        // misses, the commonest packet-in answers) have nothing to diff:
        // send them straight away, packet-outs last.
        if let Some(dpid) = direct_to_one_switch(changes).filter(|_| reconcile) {
            let ids = changes.iter().filter_map(|c| match c {
                Change::ResendFlow { id, buffer_id, .. } => Some((*id, *buffer_id)),
                _ => None,
            });
            if let Some(state) = self.switches.get_mut(&dpid).filter(|s| s.may_write(now)) {
                if state.resend_all(ids, call, &mut self.sent) {
                    self.sent_to.push(dpid);
                    mark_dirty(&mut self.dirty, dpid, state);
                }
                for change in changes.iter() {
                    if is_packet_out(change) {
                        state.packet_out(change);
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
            let dpid = match change {
                Change::Publish(payload) => {
                    self.notices.push_back((owner, payload));
                    continue;
                }
                Change::Persist(ops) => {
                    self.persist(ops);
                    continue;
                }
                Change::Emit(event) => {
                    self.emit(event);
                    continue;
                }
                Change::PacketOut { dpid, .. } | Change::Resubmit { dpid, .. } => {
                    packet_outs.push((dpid, change));
                    continue;
                }
                Change::Declare { dpid, .. }
                | Change::Settle { dpid }
                | Change::InstallFlow { dpid, .. }
                | Change::RemoveFlow { dpid, .. }
                | Change::ResendFlow { dpid, .. } => dpid,
            };
            let Some(state) = self.switches.get_mut(&dpid) else {
                continue;
            };
            let t = touched.switch(dpid);
            match change {
                Change::Declare { scope, desired, .. } => {
                    let desired = checked(owner, state.version, scope, desired);
                    let delta = state.declared.declare(owner, scope, desired);
                    state.apply_delta(delta, t);
                }
                Change::Settle { .. } => {
                    let left = state.declared.adopted(owner);
                    let delta = state.declared.settle(owner);
                    if left > 0 {
                        debug!(
                            dpid = format_args!("{dpid:016x}"),
                            ?owner,
                            left,
                            "settled adopted entries"
                        );
                    }
                    state.apply_delta(delta, t);
                }
                Change::InstallFlow { entry, .. } => {
                    if let Err(e) = check_flow(owner, state.version, &entry) {
                        warn!(?owner, error = %e, "module flow violates the pipeline; dropped");
                        continue;
                    }
                    t.flows.push(entry.key.clone());
                    state.tables.desire_flow(entry.key, entry.spec);
                }
                Change::RemoveFlow { key, .. } => {
                    if state
                        .tables
                        .desired_flow(&key)
                        .is_some_and(|s| cookie::owner_of(s.cookie) == Some(owner))
                    {
                        state.tables.undesire_flow(&key);
                        t.flows.push(key);
                    }
                }
                Change::ResendFlow { id, buffer_id, .. } => t.resend.push((id, buffer_id)),
                Change::Publish(_)
                | Change::Persist(_)
                | Change::Emit(_)
                | Change::PacketOut { .. }
                | Change::Resubmit { .. } => {}
            }
        }
        // Without `reconcile`, changes only land in desired state.
        for (dpid, t) in touched.iter_mut().filter(|_| reconcile) {
            let dpid = *dpid;
            // Not master: desired state changed, the writes are held (the
            // full reconciliation on becoming master sends them).
            let Some(state) = self.switches.get_mut(&dpid) else {
                continue;
            };
            if !state.may_write(now) {
                let changed = !(t.flows.is_empty() && t.groups.is_empty() && t.meters.is_empty());
                if changed && self.call.is_some() {
                    self.remote_to.push(dpid);
                }
                continue;
            }
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
            state.send_plan(plan, call, &mut self.sent);
            sent_any |= state.resend_all(t.resend.iter().copied(), call, &mut self.sent);
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
            if let Some(state) = self.switches.get_mut(&dpid).filter(|s| s.may_write(now)) {
                state.packet_out(&packet_out);
                mark_dirty(&mut self.dirty, dpid, state);
            }
        }
    }

    /// A module's store writes: the running call's caller performs them;
    /// outside calls, the background persister does.
    fn persist(&mut self, ops: Vec<Op>) {
        if self.call.is_some() {
            self.call_persist.extend(ops);
        } else if let Some(persister) = &self.persister {
            if persister.send(ops).is_err() {
                warn!("the persister stopped; store writes dropped");
            }
        } else {
            warn!(ops = ops.len(), "no persister; store writes dropped");
        }
    }

    /// Hands each switch's queued output to its writer. A barrier closes it
    /// when someone waits for a confirmation, after a full reconciliation,
    /// when many messages await one, and once a second otherwise: reactive
    /// flow setup (one packet-in, one flow-mod) would double its message
    /// count with a barrier and its reply per batch.
    pub fn flush(&mut self) {
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

/// Sends a ROLE_REQUEST on `handle`'s connection and brings the answer back
/// to the core on `answers`. It goes through the connection's own request
/// path (`Session::request` via [`SwitchCmd::Request`]), whose tokens the
/// driver allocates: `token` is the role state's own and never reaches the
/// session, so the two cannot collide. A connection that closed first is
/// not answered: its SwitchDown ends the role state.
async fn ask_role(
    dpid: u64,
    handle: SwitchHandle,
    token: u64,
    request: RoleMsg,
    answers: mpsc::Sender<CoreEvent>,
) {
    let (reply, answer) = oneshot::channel();
    let message = Message::RoleRequest(request);
    if handle
        .cmd
        .send(SwitchCmd::Request { message, reply })
        .await
        .is_err()
    {
        return;
    }
    let answer = match answer.await {
        Ok(Ok(Message::RoleReply(reply))) => RoleAnswer::Reply(reply),
        Ok(Err(RequestError::Switch { err_type, code })) => RoleAnswer::Error { err_type, code },
        Ok(Err(RequestError::Timeout)) => RoleAnswer::Timeout,
        // Not an answer to a role request: a switch that cannot take part.
        Ok(Ok(other)) => {
            debug!(
                msg_type = other.msg_type(),
                "role request answered with another message"
            );
            RoleAnswer::Error {
                err_type: of::error_type::BAD_REQUEST,
                code: of::error_code::bad_request::BAD_TYPE,
            }
        }
        Ok(Err(RequestError::Closed)) | Err(_) => return,
    };
    let _ = answers
        .send(CoreEvent::RoleAnswer {
            dpid,
            conn_id: handle.conn_id,
            token,
            answer,
        })
        .await;
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

/// Logs the full reconciliation `plan` of `dpid` as `what` (tests and
/// `tools/cluster-bench` look for these lines).
fn log_full_plan(dpid: u64, state: &SwitchState, plan: &Plan, what: &str) {
    info!(
        dpid = format_args!("{dpid:016x}"),
        flows = state.tables.desired_flow_count(),
        sent = plan.counts.total(),
        adds = plan.counts.flow_adds,
        modifies = plan.counts.flow_modifies,
        deletes = plan.counts.flow_deletes,
        groups = plan.counts.group_mods,
        meters = plan.counts.meter_mods,
        "{what}"
    );
}

/// Lists `state` (of `dpid`) for the next flush, once.
fn mark_dirty(dirty: &mut Vec<u64>, dpid: u64, state: &mut SwitchState) {
    if !state.dirty {
        state.dirty = true;
        dirty.push(dpid);
    }
}

/// The bus's name for a port status change.
fn port_change(status: &of::PortStatus) -> PortChange {
    match status.reason {
        of::PortReason::Add => PortChange::Added,
        of::PortReason::Delete => PortChange::Deleted,
        _ if status.desc.is_up() => PortChange::Up,
        _ => PortChange::Down,
    }
}

/// `desired` without the entries `owner` may not declare on a switch of
/// wire `version` (each logged): flows outside the pipeline contract,
/// groups and meters outside the owner's id range or on OpenFlow 1.0.
fn checked(owner: Owner, version: u8, scope: Scope, mut desired: Desired) -> Desired {
    desired
        .flows
        .retain(|entry| match check_flow(owner, version, entry) {
            Ok(()) => true,
            Err(e) => {
                warn!(?owner, ?scope, error = %e, "declared flow violates the pipeline; dropped");
                false
            }
        });
    let allowed =
        |id: u32| version != of::OFP_VERSION_1_0 && cookie::owner_of_id(id) == Some(owner);
    let before = desired.groups.len() + desired.meters.len();
    desired.groups.retain(|g| allowed(g.id));
    desired.meters.retain(|m| allowed(m.id));
    let dropped = before - desired.groups.len() - desired.meters.len();
    if dropped > 0 {
        warn!(
            ?owner,
            ?scope,
            dropped,
            "declared groups/meters outside the owner's id range (or on OpenFlow 1.0); dropped"
        );
    }
    desired
}

fn check_flow(owner: Owner, version: u8, entry: &FlowEntry) -> Result<(), String> {
    if version == of::OFP_VERSION_1_0 {
        check_of10(entry)
    } else {
        pipeline::check(owner, entry).map_err(|e| e.to_string())
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
        Change::ResendFlow { dpid, .. }
        | Change::PacketOut { dpid, .. }
        | Change::Resubmit { dpid, .. } => Some(*dpid),
        _ => None,
    });
    let first = dpids.next()??;
    dpids.all(|d| d == Some(first)).then_some(first)
}

fn is_packet_out(change: &Change) -> bool {
    matches!(change, Change::PacketOut { .. } | Change::Resubmit { .. })
}

#[cfg(test)]
mod platform_tests;
#[cfg(test)]
mod tests;
