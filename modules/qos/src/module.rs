//! The QoS module: owns the configuration (the one copy) and the `qos`
//! table and meters of every switch. Each policy is a declaration scope
//! (its entries and its meter); path policies are placed again whenever
//! the topology changes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use flowgate_controller::cookie::Owner;
use flowgate_controller::module::{
    Adoption, Ctx, Desired, Event, Followed, Module, Scope, StoreSync,
};
use flowgate_controller::ovsdb::hosts::Hosts;
use flowgate_controller::ovsdb::{columns, OwnerRows, Reconciler, Registration};
use flowgate_controller::runtime::tasks::Task;
use flowgate_controller::service::{check_owner, Origin, Staged};
use flowgate_controller::topology::TopologyView;
use flowgate_openflow::{Port, PortReason};
use tracing::{info, warn};

use crate::compile::{compile_policy, placement};
use crate::config::{QosConfig, QosError};
use crate::model::{Binding, Placement, Policy, Profile, Target};
use crate::persist;
use crate::ports::{self, HostIndex};

/// The scope of every QoS row the module declares on an OVSDB host.
const ROWS: Scope = Scope::new("ports", 0);

/// The scope of policy `id`'s entries and meter on a switch.
fn policy_scope(id: u32) -> Scope {
    Scope::new("policy", u64::from(id))
}

/// A configuration change.
#[derive(Debug, Clone)]
pub enum QosOp {
    PutPolicy(Policy),
    DeletePolicy(u32),
    PutProfile(Profile),
    DeleteProfile(String),
    PutBinding(Binding),
    DeleteBinding(String),
}

/// A connected switch as the module sees it.
#[derive(Debug, Default)]
struct SwitchState {
    /// Port numbers by name.
    ports: BTreeMap<String, u32>,
    /// Adoption ended (done once the topology calls the switch ready, so a
    /// path policy is placed before anything adopted is dropped).
    settled: bool,
}

/// The module's OVSDB side: where its rows are declared, the hosts.
struct Ovsdb {
    rows: OwnerRows,
    hosts: Hosts,
    index: HostIndex,
    /// Hosts whose rows of an earlier run were settled (dropped unless
    /// declared again).
    settled: BTreeSet<String>,
}

impl std::fmt::Debug for Ovsdb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ovsdb")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// The QoS module.
#[derive(Debug, Default)]
pub struct Qos {
    config: QosConfig,
    view: Arc<TopologyView>,
    switches: BTreeMap<u64, SwitchState>,
    /// Where each policy is, or why it is nowhere.
    placed: BTreeMap<u32, Result<Vec<u64>, String>>,
    ovsdb: Option<Ovsdb>,
}

impl Qos {
    pub fn new(config: QosConfig) -> Qos {
        Qos {
            config,
            ..Qos::default()
        }
    }

    /// Puts profiles on ports through `reconciler` (the hosts' QoS and
    /// Queue rows), knowing the hosts from `hosts`.
    pub fn with_ovsdb(mut self, reconciler: &Reconciler, hosts: Hosts) -> Qos {
        let registration = Registration {
            watch: columns::QOS,
            ..Registration::default()
        };
        self.ovsdb = Some(Ovsdb {
            rows: reconciler.register(Owner::Qos, registration),
            hosts,
            index: HostIndex::default(),
            settled: BTreeSet::new(),
        });
        self
    }

    /// Declares every host's QoS rows; settles a host once whatever its
    /// edge bindings need of the topology is known.
    fn declare_rows(&mut self) {
        let Some(ovsdb) = &mut self.ovsdb else {
            return;
        };
        let names: BTreeMap<u64, BTreeMap<u32, String>> = self
            .switches
            .iter()
            .map(|(d, sw)| {
                (
                    *d,
                    sw.ports.iter().map(|(n, no)| (*no, n.clone())).collect(),
                )
            })
            .collect();
        let edges: BTreeSet<u64> = self
            .config
            .bindings
            .values()
            .filter_map(|b| match b.target() {
                Ok(Target::Edge { dpid }) => Some(dpid),
                _ => None,
            })
            .collect();
        for (chassis, objects) in ports::objects(&self.config, &ovsdb.index, &self.view, &names) {
            ovsdb.rows.declare(&chassis, ROWS, objects);
            let host = &ovsdb.index.hosts[&chassis];
            let known = host
                .dpids
                .iter()
                .filter(|d| edges.contains(d))
                .all(|d| self.view.is_ready(*d));
            if known && ovsdb.settled.insert(chassis.clone()) {
                ovsdb.rows.settle(&chassis);
            }
        }
    }

    /// Whether queue `queue` exists, made by anyone, where `policy`'s
    /// packets leave (as far as the OVSDB hosts show).
    fn provisioned(&self, policy: &Policy, queue: u32) -> bool {
        let Some(ovsdb) = &self.ovsdb else {
            return false;
        };
        let index = &ovsdb.index;
        let port = policy
            .actions
            .queue
            .as_ref()
            .and_then(|q| q.port.as_deref());
        match (&policy.placement, port) {
            (Placement::Switch(d), Some(port)) => index.queues_at(d.0, port).contains(&queue),
            (Placement::Switch(d), None) => index
                .host_of(d.0)
                .is_some_and(|(_, h)| h.ports.values().any(|p| p.queues.contains(&queue))),
            _ => index
                .hosts
                .values()
                .any(|h| h.ports.values().any(|p| p.queues.contains(&queue))),
        }
    }

    pub fn config(&self) -> &QosConfig {
        &self.config
    }

    /// Where policy `id` is placed now, or why it is not.
    pub fn placed(&self, id: u32) -> Option<&Result<Vec<u64>, String>> {
        self.placed.get(&id)
    }

    /// Whether `op`, asked for by `by`, may be applied now.
    pub fn check(&self, op: &QosOp, by: &Origin) -> Result<(), QosError> {
        let owned = |origin: Option<&Origin>, what: String| {
            check_owner(origin, by).map_err(|reason| {
                QosError::Conflict(flowgate_controller::policy::FieldError::new(
                    "origin",
                    format!("{what} is {reason}"),
                ))
            })
        };
        let c = &self.config;
        match op {
            QosOp::PutPolicy(p) => {
                owned(
                    c.policies.get(&p.id).and_then(|o| o.origin.as_ref()),
                    format!("policy {}", p.id),
                )?;
                c.check_policy(p, &|policy, queue| self.provisioned(policy, queue))
            }
            QosOp::DeletePolicy(id) => {
                let p = c.policies.get(id).ok_or_else(|| no_such("policy", id))?;
                owned(p.origin.as_ref(), format!("policy {id}"))
            }
            QosOp::PutProfile(p) => {
                owned(
                    c.profiles.get(&p.id).and_then(|o| o.origin.as_ref()),
                    format!("profile {}", p.id),
                )?;
                c.check_profile(p)
            }
            QosOp::DeleteProfile(id) => {
                let p = c.profiles.get(id).ok_or_else(|| no_such("profile", id))?;
                owned(p.origin.as_ref(), format!("profile {id}"))?;
                c.check_profile_unused(id)
            }
            QosOp::PutBinding(b) => {
                owned(
                    c.bindings.get(&b.id).and_then(|o| o.origin.as_ref()),
                    format!("binding {}", b.id),
                )?;
                c.check_binding(b)?;
                self.check_port_exists(b)
            }
            QosOp::DeleteBinding(id) => {
                let b = c.bindings.get(id).ok_or_else(|| no_such("binding", id))?;
                owned(b.origin.as_ref(), format!("binding {id}"))?;
                c.check_binding_removal(id)
            }
        }
    }

    /// A binding to a named port of a connected switch needs that port.
    fn check_port_exists(&self, b: &Binding) -> Result<(), QosError> {
        let (Some(dpid), Some(port)) = (&b.dpid, &b.port) else {
            return Ok(());
        };
        match self.switches.get(&dpid.0) {
            Some(sw) if !sw.ports.contains_key(port) => Err(QosError::Missing(
                flowgate_controller::policy::FieldError::new(
                    "port",
                    format!("switch {} has no port {port:?}", dpid.0),
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Validates, applies, persists and declares `op`; the staged write
    /// undoes itself with the inverse operation.
    pub fn stage(
        &mut self,
        op: QosOp,
        by: &Origin,
        ctx: &mut Ctx,
    ) -> Result<Staged<Qos, ()>, QosError> {
        self.check(&op, by)?;
        let undo = self.apply(op, ctx);
        Ok(Staged::new((), move |qos: &mut Qos, ctx| {
            for op in undo {
                qos.apply(op, ctx);
            }
        }))
    }

    /// Applies a checked `op`: state, store writes, declarations. Returns
    /// the operations that undo it.
    fn apply(&mut self, op: QosOp, ctx: &mut Ctx) -> Vec<QosOp> {
        match persist::ops(&op) {
            Ok(ops) => ctx.persist(ops),
            Err(e) => warn!(error = %e, "could not encode a QoS change for the store"),
        }
        let rows = !matches!(op, QosOp::PutPolicy(_) | QosOp::DeletePolicy(_));
        let c = &mut self.config;
        let undo = match op {
            QosOp::PutPolicy(p) => {
                let id = p.id;
                let old = c.policies.insert(id, p);
                self.declare_policy(id, ctx);
                vec![old.map_or(QosOp::DeletePolicy(id), QosOp::PutPolicy)]
            }
            QosOp::DeletePolicy(id) => {
                let old = c.policies.remove(&id);
                self.declare_policy(id, ctx);
                old.map(QosOp::PutPolicy).into_iter().collect()
            }
            QosOp::PutProfile(p) => {
                let id = p.id.clone();
                let old = c.profiles.insert(id.clone(), p);
                vec![old.map_or(QosOp::DeleteProfile(id), QosOp::PutProfile)]
            }
            QosOp::DeleteProfile(id) => c
                .profiles
                .remove(&id)
                .map(QosOp::PutProfile)
                .into_iter()
                .collect(),
            QosOp::PutBinding(b) => {
                let id = b.id.clone();
                let old = c.bindings.insert(id.clone(), b);
                vec![old.map_or(QosOp::DeleteBinding(id), QosOp::PutBinding)]
            }
            QosOp::DeleteBinding(id) => c
                .bindings
                .remove(&id)
                .map(QosOp::PutBinding)
                .into_iter()
                .collect(),
        };
        // Profiles and bindings are OVSDB rows: declared with the write.
        if rows {
            self.declare_rows();
        }
        undo
    }

    /// Places policy `id` again and declares it on every switch (empty
    /// where it does not go, or if it is gone).
    fn declare_policy(&mut self, id: u32, ctx: &mut Ctx) {
        let Some(policy) = self.config.policies.get(&id) else {
            self.placed.remove(&id);
            for &dpid in self.switches.keys() {
                ctx.declare(dpid, policy_scope(id), Desired::default());
            }
            return;
        };
        let placed = placement(policy, &self.view, self.switches.keys().copied());
        if let Err(why) = &placed {
            if self
                .placed
                .get(&id)
                .is_none_or(|p| p.as_ref().err() != Some(why))
            {
                info!(policy = id, reason = ?why, "QoS policy not placed");
            }
        }
        let on: BTreeSet<u64> = placed.iter().flatten().copied().collect();
        for (&dpid, sw) in &self.switches {
            let desired = if on.contains(&dpid) {
                compile_policy(policy, &sw.ports)
            } else {
                Desired::default()
            };
            ctx.declare(dpid, policy_scope(id), desired);
        }
        self.placed.insert(id, placed);
    }

    /// Declares every policy (a switch came up: placements may now
    /// include it).
    fn declare_all(&mut self, ctx: &mut Ctx) {
        let ids: Vec<u32> = self.config.policies.keys().copied().collect();
        for id in ids {
            self.declare_policy(id, ctx);
        }
        self.settle_ready(ctx);
    }

    /// The topology moved: path policies are placed again, edge bindings
    /// follow the edge ports; switches the topology now calls ready are
    /// settled.
    fn topology_changed(&mut self, ctx: &mut Ctx) {
        self.declare_rows();
        let paths: Vec<u32> = self
            .config
            .policies
            .values()
            .filter(|p| matches!(p.placement, Placement::Path(_)))
            .map(|p| p.id)
            .collect();
        for id in paths {
            self.declare_policy(id, ctx);
        }
        self.settle_ready(ctx);
    }

    fn settle_ready(&mut self, ctx: &mut Ctx) {
        for (&dpid, sw) in &mut self.switches {
            if !sw.settled && self.view.is_ready(dpid) {
                ctx.settle(dpid);
                sw.settled = true;
            }
        }
    }

    fn port_status(&mut self, dpid: u64, reason: PortReason, port: &Port, ctx: &mut Ctx) {
        let Some(sw) = self.switches.get_mut(&dpid) else {
            return;
        };
        sw.ports.retain(|_, no| *no != port.port_no);
        if reason != PortReason::Delete {
            sw.ports.insert(port.name.clone(), port.port_no);
        }
        // A queue may name this port.
        let named: Vec<u32> = self
            .config
            .policies
            .values()
            .filter(|p| p.actions.queue.as_ref().is_some_and(|q| q.port.is_some()))
            .map(|p| p.id)
            .collect();
        for id in named {
            self.declare_policy(id, ctx);
        }
        self.declare_rows();
    }
}

fn no_such(kind: &str, id: impl std::fmt::Display) -> QosError {
    QosError::Missing(flowgate_controller::policy::FieldError::new(
        "id",
        format!("no QoS {kind} {id}"),
    ))
}

impl Module for Qos {
    fn owner(&self) -> Owner {
        Owner::Qos
    }

    fn handle(&mut self, event: &Event<'_>, ctx: &mut Ctx) {
        match event {
            Event::SwitchUp { dpid, ports, .. } => {
                let ports = ports.iter().map(|p| (p.name.clone(), p.port_no)).collect();
                self.switches.insert(
                    *dpid,
                    SwitchState {
                        ports,
                        settled: false,
                    },
                );
                self.declare_all(ctx);
                self.declare_rows();
            }
            Event::SwitchDown { dpid } => {
                self.switches.remove(dpid);
            }
            Event::PortStatus { dpid, status } => {
                self.port_status(*dpid, status.reason, &status.desc, ctx)
            }
            Event::Notice { from, payload } => {
                if *from != Owner::Topology {
                    return;
                }
                if let Some(view) = payload.downcast_ref::<Arc<TopologyView>>() {
                    self.view = view.clone();
                    self.topology_changed(ctx);
                }
            }
            Event::Task { payload } => {
                if let (Some(index), Some(ovsdb)) =
                    (payload.downcast_ref::<HostIndex>(), &mut self.ovsdb)
                {
                    ovsdb.index = index.clone();
                    self.declare_rows();
                }
            }
            // Proactive: no packet-ins, no timeouts.
            Event::PacketIn { .. }
            | Event::FlowRemoved { .. }
            | Event::Tick
            | Event::Rejected { .. }
            | Event::Bus { .. } => {}
        }
    }

    /// Keeps the module's view of the OVSDB hosts current.
    fn tasks(&mut self) -> Vec<Task> {
        self.ovsdb
            .as_ref()
            .map(|o| ports::index_task(o.hosts.clone()))
            .into_iter()
            .collect()
    }

    /// A restarted controller keeps every meter and entry as it is until
    /// the topology can place path policies again.
    fn adoption(&self) -> Adoption {
        Adoption::Keep
    }

    fn followed_prefixes(&self) -> Vec<&'static str> {
        follow::FOLLOWED.to_vec()
    }

    fn follow_store(&mut self, sync: &StoreSync, ctx: &mut Ctx) -> Followed {
        self.follow(sync, ctx)
    }
}

mod follow;
#[cfg(test)]
mod tests;
