//! The interface between application modules and the runtime.
//!
//! A module is a function of (its state, an event, now) that returns changes
//! to desired state and packet-outs through [`Ctx`]. Only the runtime talks
//! to switches: a module never sends a flow-mod itself, which is what makes
//! modules testable without a switch (see `testing::FakeSwitch`).
//!
//! Modules reach the outside world three ways: events from switches (below),
//! calls from the REST API run on the core with exclusive access to the
//! module (`Runtime::call`), and typed notices other modules publish
//! ([`Ctx::publish`], delivered as [`Event::Notice`]).

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use flowgate_openflow::{
    FlowRemoved, FlowStats, Message, PacketIn, PacketOut, Port, PortStatus, NO_BUFFER,
};

use crate::cookie::Owner;
use crate::desired::{FlowEntry, FlowId, FlowKey, GroupSpec, MeterSpec};

/// What a module reacts to.
#[derive(Debug)]
pub enum Event<'a> {
    /// A switch finished its handshake and sync. `installed` holds the flows
    /// this module owns that were already on the switch (after a controller
    /// restart): a module with soft state (learned hosts) may adopt them by
    /// re-declaring them, and anything not re-declared is removed.
    SwitchUp {
        dpid: u64,
        ports: &'a [Port],
        installed: &'a [FlowStats],
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
    /// Once a second, for periodic work (discovery probes, expiry).
    Tick,
    /// Something another module published with [`Ctx::publish`]; receivers
    /// downcast the payload to the types they understand.
    Notice {
        from: Owner,
        payload: &'a (dyn Any + Send + Sync),
    },
}

/// One change a module asks for.
#[derive(Debug, Clone)]
pub enum Change {
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
    InstallGroup {
        dpid: u64,
        id: u32,
        spec: GroupSpec,
    },
    RemoveGroup {
        dpid: u64,
        id: u32,
    },
    InstallMeter {
        dpid: u64,
        id: u32,
        spec: MeterSpec,
    },
    RemoveMeter {
        dpid: u64,
        id: u32,
    },
    PacketOut {
        dpid: u64,
        packet_out: PacketOut,
    },
    /// A notice for every other module.
    Publish(Arc<dyn Any + Send + Sync>),
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

    /// Adds or replaces a desired flow entry (same table, priority, match).
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

    pub fn remove(&mut self, dpid: u64, key: FlowKey) {
        self.changes.push(Change::RemoveFlow { dpid, key });
    }

    pub fn install_group(&mut self, dpid: u64, id: u32, spec: GroupSpec) {
        self.changes.push(Change::InstallGroup { dpid, id, spec });
    }

    pub fn remove_group(&mut self, dpid: u64, id: u32) {
        self.changes.push(Change::RemoveGroup { dpid, id });
    }

    pub fn install_meter(&mut self, dpid: u64, id: u32, spec: MeterSpec) {
        self.changes.push(Change::InstallMeter { dpid, id, spec });
    }

    pub fn remove_meter(&mut self, dpid: u64, id: u32) {
        self.changes.push(Change::RemoveMeter { dpid, id });
    }

    pub fn packet_out(&mut self, dpid: u64, packet_out: PacketOut) {
        self.changes.push(Change::PacketOut { dpid, packet_out });
    }

    /// Tells every other module something (see [`Event::Notice`]).
    pub fn publish(&mut self, payload: impl Any + Send + Sync) {
        self.changes.push(Change::Publish(Arc::new(payload)));
    }

    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }
}

/// An application module. `Any` lets REST calls reach the concrete type.
pub trait Module: Any + Send {
    /// The owner id stamped into every cookie this module's flows carry.
    fn owner(&self) -> Owner;

    fn handle(&mut self, event: &Event<'_>, ctx: &mut Ctx);

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

    /// Whether packet-ins that carry no Flowgate cookie reach this module:
    /// table misses (cookie 0 or all-ones, from any table; every OpenFlow
    /// 1.0 packet-in) and packets an operator's flow sends to the
    /// controller. Forwarding answers them, on every version; a module that
    /// needs to see them too says so here.
    fn wants_foreign_packet_ins(&self) -> bool {
        self.owner() == Owner::Forwarding
    }
}
