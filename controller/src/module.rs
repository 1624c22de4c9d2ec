//! The interface between application modules and the runtime.
//!
//! A module is a function of (its state, an event, now) that returns changes
//! to desired state, packet-outs and effects through [`Ctx`]. Only the
//! runtime talks to switches and disks: a module never sends a flow-mod or
//! writes the store itself, which is what makes modules testable without a
//! switch (see `testing::FakeSwitch`).
//!
//! Desired state is *declared*: a module states the whole of one
//! [`Scope`] of its entries on a switch ([`Ctx::declare`]) and the core
//! works out what changed since that scope's last declaration. Reactive
//! entries (learned hosts) are installed one by one ([`Ctx::install`]).
//!
//! Modules reach the outside world four ways: events from switches (below),
//! calls run on the core with exclusive access to the module
//! (`Runtime::call`, used by module services), typed notices other modules
//! publish ([`Ctx::publish`], delivered as [`Event::Notice`]), and messages
//! from their own background tasks ([`Event::Task`]). A module whose
//! configuration lives in a shared store also follows what other writers
//! change there ([`Module::followed_prefixes`], [`Module::follow_store`]).

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use flowgate_openflow::{
    FlowRemoved, FlowStats, GroupDesc, Message, MeterConfig, PacketIn, PacketOut, Port, PortStatus,
    NO_BUFFER,
};
use serde::de::DeserializeOwned;
use tracing::warn;

use crate::cookie::Owner;
use crate::desired::{FlowEntry, FlowId, FlowKey, GroupEntry, MeterEntry};
use crate::events::BusEvent;
use crate::runtime::rejection::SwitchRejection;
use crate::store::Op;

/// What a module reacts to.
#[derive(Debug)]
pub enum Event<'a> {
    /// A switch finished its handshake and sync. `installed`, `groups` and
    /// `meters` hold what this module owns that was already on the switch
    /// (after a controller restart); with [`Adoption::Keep`] all of it is
    /// still desired until the module settles the switch.
    SwitchUp {
        dpid: u64,
        ports: &'a [Port],
        installed: &'a [FlowStats],
        groups: &'a [GroupDesc],
        meters: &'a [MeterConfig],
    },
    SwitchDown {
        dpid: u64,
    },
    PortStatus {
        dpid: u64,
        status: &'a PortStatus,
    },
    /// A packet sent to the controller by a flow this module owns (or one
    /// with no Flowgate cookie, see [`Module::wants_foreign_packet_ins`]).
    PacketIn {
        dpid: u64,
        packet_in: &'a PacketIn,
    },
    /// A flow this module owns left the switch (timeout or delete). The
    /// runtime has already dropped it from desired state.
    FlowRemoved {
        dpid: u64,
        removed: &'a FlowRemoved,
    },
    /// A switch refused something this module wanted (whichever event or
    /// call declared it). The runtime has forgotten that it is installed,
    /// so the next change of that entry sends it again.
    Rejected {
        rejection: &'a SwitchRejection,
    },
    /// Once a second, for periodic work (discovery probes, expiry).
    Tick,
    /// Something another module published with [`Ctx::publish`]; receivers
    /// downcast the payload to the types they understand.
    Notice {
        from: Owner,
        payload: &'a (dyn Any + Send + Sync),
    },
    /// A message from one of this module's background tasks
    /// (`runtime::tasks::TaskCtx::send`).
    Task {
        payload: &'a (dyn Any + Send),
    },
    /// An event of the bus this module subscribed to
    /// ([`Module::subscriptions`]).
    Bus {
        event: &'a BusEvent,
    },
}

/// One unit of a module's desired state on a switch: a module re-declares
/// a scope whole, and the core sends the difference from that scope's last
/// declaration. A firewall rule, an overlay network, the links of a
/// switch: each is a scope, so a change to one recompiles and diffs only
/// that one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    pub kind: &'static str,
    pub id: u64,
}

impl Scope {
    pub const fn new(kind: &'static str, id: u64) -> Scope {
        Scope { kind, id }
    }

    /// Where [`Adoption::Keep`] puts what it found on a switch.
    pub const ADOPTED: Scope = Scope::new("adopted", 0);
}

/// Everything one scope wants on one switch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    pub flows: Vec<FlowEntry>,
    pub groups: Vec<GroupEntry>,
    pub meters: Vec<MeterEntry>,
}

impl Desired {
    pub fn flows(flows: impl IntoIterator<Item = FlowEntry>) -> Desired {
        Desired {
            flows: flows.into_iter().collect(),
            ..Desired::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty() && self.groups.is_empty() && self.meters.is_empty()
    }
}

/// What the core does with the entries a module owns that it finds on a
/// switch that connects (typically after a controller restart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Adoption {
    /// Whatever the module does not declare while handling
    /// [`Event::SwitchUp`] is deleted by the switch's first reconciliation.
    #[default]
    Replace,
    /// Everything found stays desired, as it is, in [`Scope::ADOPTED`] until
    /// the module calls [`Ctx::settle`] for the switch: for modules that
    /// need time (discovery, an OVSDB reconnect) before they know what they
    /// want. Entries the module declares meanwhile move to their scope;
    /// settling removes the rest.
    Keep,
}

/// One change a module asks for.
#[derive(Debug, Clone)]
pub enum Change {
    /// Replaces the scope's previous declaration on the switch.
    Declare {
        dpid: u64,
        scope: Scope,
        desired: Desired,
    },
    /// Ends [`Adoption::Keep`] on the switch: adopted entries not declared
    /// by then are removed.
    Settle {
        dpid: u64,
    },
    /// A reactive entry outside any scope.
    InstallFlow {
        dpid: u64,
        entry: FlowEntry,
    },
    RemoveFlow {
        dpid: u64,
        key: FlowKey,
    },
    /// Send the desired entry of the key `id` names again, even if the
    /// switch is believed to have it (see [`Ctx::resend`]); with a
    /// `buffer_id` other than `NO_BUFFER`, the FLOW_MOD also releases that
    /// buffered packet (see [`Ctx::resend_releasing`]).
    ResendFlow {
        dpid: u64,
        id: FlowId,
        buffer_id: u32,
    },
    PacketOut {
        dpid: u64,
        packet_out: PacketOut,
    },
    /// Send a packet-in's packet back through the switch's tables from the
    /// first (see [`Ctx::resubmit`]): a PACKET_OUT to `TABLE` encoded with
    /// no action list to build.
    Resubmit {
        dpid: u64,
        in_port: u32,
        buffer_id: u32,
        data: Bytes,
    },
    /// A notice for every other module.
    Publish(Arc<dyn Any + Send + Sync>),
    /// Store writes, performed off the core in order (see [`Ctx::persist`]).
    Persist(Vec<Op>),
    /// An event for the bus.
    Emit(BusEvent),
}

/// The packet-ins among a batch of one switch's messages.
#[derive(Debug, Clone, Copy)]
pub struct PacketIns<'a>(&'a [(u32, Message)]);

impl<'a> PacketIns<'a> {
    pub fn new(messages: &'a [(u32, Message)]) -> Self {
        PacketIns(messages)
    }

    pub fn iter(self) -> impl Iterator<Item = &'a PacketIn> {
        self.0.iter().filter_map(|(_, message)| match message {
            Message::PacketIn(packet_in) => Some(packet_in),
            _ => None,
        })
    }
}

/// Collects a module's changes for one event.
#[derive(Debug)]
pub struct Ctx {
    now: Instant,
    changes: Vec<Change>,
}

impl Ctx {
    pub fn new(now: Instant) -> Self {
        Ctx::with_buffer(now, Vec::new())
    }

    /// A context collecting into `buffer` (emptied first): the runtime
    /// reuses one allocation for every event instead of one per event.
    pub(crate) fn with_buffer(now: Instant, mut buffer: Vec<Change>) -> Self {
        buffer.clear();
        Ctx {
            now,
            changes: buffer,
        }
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    /// States everything `scope` wants on switch `dpid`, replacing its
    /// previous declaration: entries no longer declared are removed,
    /// unchanged ones are not sent again.
    pub fn declare(&mut self, dpid: u64, scope: Scope, desired: Desired) {
        self.changes.push(Change::Declare {
            dpid,
            scope,
            desired,
        });
    }

    /// [`Ctx::declare`] of flows only.
    pub fn declare_flows(
        &mut self,
        dpid: u64,
        scope: Scope,
        flows: impl IntoIterator<Item = FlowEntry>,
    ) {
        self.declare(dpid, scope, Desired::flows(flows));
    }

    /// Ends adoption on `dpid` (see [`Adoption::Keep`]).
    pub fn settle(&mut self, dpid: u64) {
        self.changes.push(Change::Settle { dpid });
    }

    /// Adds or replaces a reactive flow entry (same table, priority, match).
    pub fn install(&mut self, dpid: u64, entry: FlowEntry) {
        self.changes.push(Change::InstallFlow { dpid, entry });
    }

    /// Installs `entry` and sends it even if the runtime believes the switch
    /// already has it: the module holds evidence that the switch lacks it (a
    /// packet-in that the entry would have absorbed). The ADD is idempotent
    /// on a switch that does have it.
    pub fn reassert(&mut self, dpid: u64, entry: FlowEntry) {
        self.reassert_releasing(dpid, entry, NO_BUFFER);
    }

    /// [`Ctx::reassert`], and the FLOW_MOD carries `buffer_id`: the switch
    /// then runs the packet it buffered (a packet-in's) through its tables
    /// after installing the entry. One message answers the packet-in, where
    /// a FLOW_MOD and a PACKET_OUT would take two. `NO_BUFFER` releases
    /// nothing.
    pub fn reassert_releasing(&mut self, dpid: u64, entry: FlowEntry, buffer_id: u32) {
        let id = entry.key.id();
        self.install(dpid, entry);
        self.changes.push(Change::ResendFlow {
            dpid,
            id,
            buffer_id,
        });
    }

    /// Sends the entry this module declared with `key` (that very key or a
    /// clone of it, kept since) again, as [`Ctx::reassert`] does, without
    /// restating it: the cheapest answer to a packet-in for a known host,
    /// and a no-op if nothing is desired there any more.
    pub fn resend(&mut self, dpid: u64, key: &FlowKey) {
        self.resend_releasing(dpid, key, NO_BUFFER);
    }

    /// [`Ctx::resend`], releasing the buffered packet `buffer_id` as
    /// [`Ctx::reassert_releasing`] does.
    pub fn resend_releasing(&mut self, dpid: u64, key: &FlowKey, buffer_id: u32) {
        self.changes.push(Change::ResendFlow {
            dpid,
            id: key.id(),
            buffer_id,
        });
    }

    /// Withdraws a reactive entry.
    pub fn remove(&mut self, dpid: u64, key: FlowKey) {
        self.changes.push(Change::RemoveFlow { dpid, key });
    }

    pub fn packet_out(&mut self, dpid: u64, packet_out: PacketOut) {
        self.changes.push(Change::PacketOut { dpid, packet_out });
    }

    /// Sends the packet of `packet_in` (from `dpid`) through the switch's
    /// tables again, from the first, as if it had just arrived on
    /// `in_port`: the switch's buffer if it kept the packet, else the
    /// packet's bytes. The answer to a table miss the tables can now
    /// handle, and the commonest packet-in answer of all, hence its own
    /// change: it costs no allocation.
    pub fn resubmit(&mut self, dpid: u64, packet_in: &PacketIn, in_port: u32) {
        let data = if packet_in.buffer_id == NO_BUFFER {
            packet_in.data.clone()
        } else {
            Bytes::new()
        };
        self.changes.push(Change::Resubmit {
            dpid,
            in_port,
            buffer_id: packet_in.buffer_id,
            data,
        });
    }

    /// Tells every other module something (see [`Event::Notice`]).
    pub fn publish(&mut self, payload: impl Any + Send + Sync) {
        self.changes.push(Change::Publish(Arc::new(payload)));
    }

    /// Writes `ops` to the store atomically, off the core task. Inside a
    /// module call the caller waits for the write (and sees its error);
    /// otherwise writes are performed in order in the background and a
    /// failure is logged.
    pub fn persist(&mut self, ops: Vec<Op>) {
        if !ops.is_empty() {
            self.changes.push(Change::Persist(ops));
        }
    }

    /// Puts `event` on the event bus (subscribed modules, metrics, REST
    /// stream).
    pub fn emit(&mut self, event: BusEvent) {
        self.changes.push(Change::Emit(event));
    }

    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }
}

/// What changed under a module's followed prefixes
/// ([`Module::followed_prefixes`]), as the store holds it now: the runtime
/// re-reads every key a watch event named, so a module sees the latest
/// committed value, never an older one an event carried.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreSync {
    /// Keys that changed, with their current value (`None`: gone).
    pub changed: Vec<(String, Option<Vec<u8>>)>,
    /// `changed` holds every key under the followed prefixes (a full
    /// re-read: when following starts, or after the watch fell behind):
    /// whatever the module holds that is not in it is gone.
    pub complete: bool,
}

/// A followed store value: `Some` when it decodes and `belongs` where it is
/// stored (an object under its own key), else `None` with a warning naming
/// the key, so the module keeps what it has for it.
pub fn decode_followed<T: DeserializeOwned>(
    key: &str,
    bytes: &[u8],
    belongs: impl FnOnce(&T) -> bool,
) -> Option<T> {
    match serde_json::from_slice::<T>(bytes) {
        Ok(object) if belongs(&object) => Some(object),
        Ok(_) => {
            warn!(key, "ignoring an object stored under another's key");
            None
        }
        Err(e) => {
            warn!(key, error = %e, "ignoring an undecodable object in the store");
            None
        }
    }
}

/// Applies one followed key to `next`, a map of objects by id: a deleted key
/// removes object `id`; a stored value replaces it if it decodes and
/// `belongs` ([`decode_followed`]), else `current`'s object stays.
pub fn follow_object<K: Ord, T: DeserializeOwned + Clone>(
    next: &mut BTreeMap<K, T>,
    current: &BTreeMap<K, T>,
    (key, id): (&str, K),
    value: Option<&[u8]>,
    belongs: impl FnOnce(&T) -> bool,
) {
    let object = match value {
        None => None,
        Some(bytes) => decode_followed(key, bytes, belongs).or_else(|| current.get(&id).cloned()),
    };
    match object {
        Some(object) => next.insert(id, object),
        None => next.remove(&id),
    };
}

/// Whether a module took what [`Module::follow_store`] handed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Followed {
    /// The module's state matches the store's now.
    Taken,
    /// The store's state does not validate and the module kept its own
    /// (and logged why): the keys of this sync are not forgotten, the
    /// runtime re-reads everything after the next change.
    Refused,
}

/// An application module. `Any` lets calls reach the concrete type.
pub trait Module: Any + Send {
    /// The owner id stamped into every cookie this module's flows carry.
    fn owner(&self) -> Owner;

    fn handle(&mut self, event: &Event<'_>, ctx: &mut Ctx);

    /// Called once after each batch of events (what was queued when the
    /// core woke), before the output goes to the switches. A module that
    /// coalesces work does it here once per batch instead of once per
    /// event: the topology module publishes its view here, so ten thousand
    /// port changes arriving together make one view, not ten thousand.
    fn batch_end(&mut self, _ctx: &mut Ctx) {}

    /// Handles a run of one switch's packet-ins, in order, all owned by this
    /// module; the runtime applies the changes of the whole run together.
    /// The default hands them to [`Module::handle`] one at a time. A module
    /// whose tables outgrow the CPU caches (thousands of hosts) can instead
    /// start every packet's lookups before waiting for the first (see
    /// [`crate::cache`]); re-sends it asks for are looked up the same way.
    fn handle_packet_ins(&mut self, dpid: u64, batch: PacketIns<'_>, ctx: &mut Ctx) {
        for packet_in in batch.iter() {
            self.handle(&Event::PacketIn { dpid, packet_in }, ctx);
        }
    }

    /// Whether the module can program switches that negotiated this
    /// OpenFlow wire version. Events about other switches never reach it,
    /// and the REST API lists it as unavailable on them. Modules use the
    /// multi-table pipeline, which needs OpenFlow 1.3.
    fn supports(&self, version: u8) -> bool {
        version == flowgate_openflow::OFP_VERSION_1_3
    }

    /// What happens to this module's entries found on a connecting switch.
    fn adoption(&self) -> Adoption {
        Adoption::Replace
    }

    /// Background work the runtime starts with the module (health checks,
    /// pollers) and stops at shutdown; see `runtime::tasks`.
    fn tasks(&mut self) -> Vec<crate::runtime::tasks::Task> {
        Vec::new()
    }

    /// Which bus events reach [`Event::Bus`].
    fn subscriptions(&self) -> crate::events::Topics {
        crate::events::Topics::NONE
    }

    /// Whether packet-ins that carry no Flowgate cookie reach this module:
    /// table misses (cookie 0 or all-ones, from any table; every OpenFlow
    /// 1.0 packet-in) and packets an operator's flow sends to the
    /// controller. Forwarding answers them, on every version; a module that
    /// needs to see them too says so here.
    fn wants_foreign_packet_ins(&self) -> bool {
        self.owner() == Owner::Forwarding
    }

    /// Store prefixes holding this module's configuration that other
    /// writers (controllers sharing an etcd prefix, an operator's
    /// `etcdctl`) may change; the runtime watches them and hands what
    /// changed to [`Module::follow_store`]. Only keys this module writes
    /// from its service (under the service's write lock) belong here:
    /// per-node state written in the background must not be followed.
    fn followed_prefixes(&self) -> Vec<&'static str> {
        Vec::new()
    }

    /// Makes the module's state match `sync` (what the store holds now),
    /// declaring what that changes, as a service write would, but without
    /// writing the store: it already holds the change. Runs under the
    /// module's service write lock, so no write of this node is half done:
    /// a value equal to the module's own is this node's write coming back
    /// (or one already followed) and must change nothing. A value that
    /// does not decode or validate is logged and the module keeps what it
    /// has for that key; a state that does not validate as a whole
    /// changes nothing and is [`Followed::Refused`].
    fn follow_store(&mut self, _sync: &StoreSync, _ctx: &mut Ctx) -> Followed {
        Followed::Taken
    }
}
