//! The switch runtime: accepts OpenFlow connections, runs one [`session`] per
//! switch behind a thin tokio [`driver`], keeps the [`registry`] of connected
//! switches, and feeds the [`core`] that runs modules and the [`reconcile`]r.

pub mod core;
pub mod driver;
mod follow;
pub mod metrics;
pub mod reconcile;
pub mod registry;
pub mod rejection;
pub mod session;
pub mod tasks;
pub mod tls;
mod unknown_table;
mod view;
pub mod writer;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tracing::{info, warn};

use self::core::{CallOutcome, Core, CoreEvent};
use self::driver::DriverConfig;
use self::metrics::Metrics;
use self::reconcile::ReconcileCounts;
use self::registry::Registry;
use self::rejection::SwitchRejection;
use self::tasks::Tasks;
use crate::cluster::{AppliedRevisions, ClusterView, Coordinator};
use crate::cookie::Owner;
use crate::events::Bus;
use crate::module::{Ctx, Module};
use crate::store::{Guard, Op, Store, StoreError};

/// Queue from drivers to the core, in events.
const CORE_QUEUE: usize = 65536;
/// Queue of module calls, task messages and bus events to the core.
const CONTROL_QUEUE: usize = 4096;

/// Settings of the OpenFlow side.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub driver: DriverConfig,
    /// Most simultaneous switch connections; more are refused.
    pub max_connections: usize,
    /// How long [`Runtime::call`] waits for the switches a call touched to
    /// confirm it by barrier (all of them together).
    pub confirm_timeout: Duration,
    /// Switches connect over TLS with a certificate (none: plain TCP).
    pub tls: Option<tls::OpenflowTls>,
    /// This node's place in a cluster of controllers sharing the switches
    /// (issue 22). None (the default): the only controller, writing to
    /// every switch as soon as it connects, with no role requests.
    pub cluster: Option<Arc<dyn Coordinator>>,
    /// In a cluster, how long this node listens to a switch (one probe
    /// round) before it offers itself as its master
    /// ([`flowgate_cluster::eligible`]).
    pub probe_round: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            driver: DriverConfig::default(),
            max_connections: 10_000,
            confirm_timeout: Duration::from_secs(5),
            tls: None,
            cluster: None,
            probe_round: Duration::from_secs(6),
        }
    }
}

/// Which loaded module can program which OpenFlow version, by module name
/// (the owner's name: `forwarding`, `topology`, ...), for the REST API.
#[derive(Debug, Clone, Default)]
pub struct ModuleCatalog {
    modules: Vec<(String, Vec<u8>)>,
}

impl ModuleCatalog {
    pub fn new(modules: &[Box<dyn Module>]) -> Self {
        let mut catalog = ModuleCatalog::default();
        for module in modules {
            let name = format!("{:?}", module.owner()).to_lowercase();
            let versions = session::SUPPORTED_VERSIONS
                .iter()
                .copied()
                .filter(|v| module.supports(*v));
            // Several modules may share an owner (one per OpenFlow version).
            match catalog.modules.iter_mut().find(|(n, _)| *n == name) {
                Some((_, known)) => known.extend(versions),
                None => catalog.modules.push((name, versions.collect())),
            }
        }
        catalog
    }

    /// Modules that do not run on switches speaking `version`.
    pub fn unavailable_on(&self, version: u8) -> Vec<String> {
        self.modules
            .iter()
            .filter(|(_, versions)| !versions.contains(&version))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// A running runtime; cheap to clone, and the REST API's view of switches.
#[derive(Clone)]
pub struct Runtime {
    registry: Arc<Registry>,
    catalog: Arc<ModuleCatalog>,
    metrics: Arc<Metrics>,
    config: Arc<RuntimeConfig>,
    /// The core's control lane (calls, task messages, bus events), served
    /// ahead of switch events.
    core: mpsc::Sender<CoreEvent>,
    store: Arc<dyn Store>,
    bus: Bus,
    tasks: Tasks,
    /// One write lock per module, shared by every service handle of it.
    write_locks: Arc<std::sync::Mutex<BTreeMap<Owner, Arc<tokio::sync::Mutex<()>>>>>,
    /// The store revision each following module's state is current to
    /// (its follower's last sync, and its own writes since).
    followed: Arc<watch::Sender<BTreeMap<Owner, i64>>>,
}

/// What [`Runtime::call_on_core`] does with a call's store writes.
#[derive(Debug, Clone, Copy)]
enum Persistence {
    Plain,
    /// A service write: guarded by the module's serial key in a cluster.
    Serialized,
    Dropped,
}

/// The store key every clustered service write of a module puts, guarded
/// by the revision the writer's module state is current to (under the
/// store's `cluster/` subtree, which no module follows).
pub fn serial_key(owner: Owner) -> String {
    format!("cluster/serial/{}", owner.name())
}

/// The outcome of [`Runtime::call`].
#[derive(Debug, Clone)]
pub struct Applied<R> {
    pub value: R,
    /// Switches that confirmed (barrier reply) every message the call caused;
    /// in a cluster, also the switches another node masters whose master
    /// applied the call's store write (and its switches confirmed it).
    pub confirmed: Vec<u64>,
    /// Switches that did not confirm in time or disconnected first; they get
    /// the change on reconnect or with the next reconciliation.
    pub unconfirmed: Vec<u64>,
    /// What switches refused of the messages this call caused (of no
    /// other call's).
    pub rejections: Vec<SwitchRejection>,
    /// Mods the call sent, by kind (unchanged entries are not sent).
    pub sent: ReconcileCounts,
    /// The call's store writes ([`Ctx::persist`]), performed before this
    /// returns; `Ok` when it asked for none. A service write in a cluster
    /// fails with [`StoreError::Conflict`] when another node wrote the
    /// module since this node's state was current.
    pub persisted: Result<(), Arc<StoreError>>,
    /// Core time of the call (the module's work and the diff).
    pub core_time: Duration,
}

impl<R> Applied<R> {
    /// Every switch confirmed, none refused anything, the writes are durable.
    pub fn is_clean(&self) -> bool {
        self.rejections.is_empty() && self.persisted.is_ok()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CallError {
    #[error("module is not loaded")]
    NoSuchModule,
    #[error("controller is shutting down")]
    Stopped,
}

impl Runtime {
    /// Starts the core with `modules` and their tasks, accepts switches on
    /// `listener`, and performs modules' store writes on `store`.
    pub fn start(
        listener: TcpListener,
        config: RuntimeConfig,
        mut modules: Vec<Box<dyn Module>>,
        store: Arc<dyn Store>,
    ) -> Runtime {
        let registry = Arc::new(Registry::default());
        let metrics = Arc::new(Metrics::default());
        let bus = Bus::default();
        let (core_tx, core_rx) = mpsc::channel(CORE_QUEUE);
        let (control_tx, control_rx) = mpsc::channel(CONTROL_QUEUE);
        let catalog = Arc::new(ModuleCatalog::new(&modules));
        let followed: Vec<_> = modules
            .iter()
            .enumerate()
            .map(|(i, m)| (i, m.owner(), m.followed_prefixes()))
            .filter(|(_, _, prefixes)| !prefixes.is_empty())
            .collect();
        let tasks: Vec<_> = modules
            .iter_mut()
            .flat_map(|m| {
                let owner = m.owner();
                m.tasks().into_iter().map(move |t| (owner, t))
            })
            .collect();
        let (persist_tx, persist_rx) = mpsc::unbounded_channel();
        tokio::spawn(persister(store.clone(), persist_rx));
        let mut core = Core::new(modules, metrics.clone())
            .with_bus(bus.clone())
            .with_persister(persist_tx);
        if let Some(coordinator) = &config.cluster {
            core = core.with_cluster(coordinator.clone(), control_tx.clone(), config.probe_round);
            tokio::spawn(follow_cluster(coordinator.view(), control_tx.clone()));
        }
        tokio::spawn(core.run(core_rx, control_rx));
        let runtime = Runtime {
            registry,
            catalog,
            metrics,
            config: Arc::new(config),
            core: control_tx,
            store,
            bus,
            tasks: Tasks::default(),
            write_locks: Arc::default(),
            followed: Arc::new(watch::Sender::default()),
        };
        for (owner, task) in tasks {
            runtime.spawn_task(owner, task);
        }
        for (index, owner, prefixes) in followed {
            follow::start(runtime.clone(), index, owner, &prefixes);
        }
        tokio::spawn(runtime.clone().accept_loop(listener, core_tx));
        runtime
    }

    /// Runs `f` on the loaded module of type `M` on the core (so it sees a
    /// consistent state and may change desired state through the [`Ctx`]),
    /// performs the store writes it asked for, and waits until every switch
    /// the change touched confirms it with a barrier reply — all switches
    /// in parallel, under one deadline. When this returns, the flows are on
    /// the switches and the writes are durable: a REST write that awaits it
    /// holds from the moment it answers.
    pub async fn call<M, R>(
        &self,
        f: impl FnOnce(&mut M, &mut Ctx) -> R + Send + 'static,
    ) -> Result<Applied<R>, CallError>
    where
        M: Module,
        R: Send + 'static,
    {
        self.call_module(f, Persistence::Plain).await
    }

    /// [`Runtime::call`] for a service write of `M`: in a cluster, its
    /// store writes are guarded by the module's serial key (see
    /// [`serial_key`]), so that a node whose state of `M` is behind
    /// another node's write gets [`StoreError::Conflict`] instead of
    /// overwriting what it did not see.
    pub(crate) async fn write_call<M, R>(
        &self,
        f: impl FnOnce(&mut M, &mut Ctx) -> R + Send + 'static,
    ) -> Result<Applied<R>, CallError>
    where
        M: Module,
        R: Send + 'static,
    {
        self.call_module(f, Persistence::Serialized).await
    }

    /// [`Runtime::call`] that drops the store writes `f` asks for: the
    /// rollback of a write the store refused outright (nothing of it was
    /// written, and the store may hold another node's newer value).
    pub(crate) async fn call_unpersisted<M, R>(
        &self,
        f: impl FnOnce(&mut M, &mut Ctx) -> R + Send + 'static,
    ) -> Result<Applied<R>, CallError>
    where
        M: Module,
        R: Send + 'static,
    {
        self.call_module(f, Persistence::Dropped).await
    }

    /// Runs `f` on module `M` with its store writes handled as
    /// `persistence` says (the three calls above differ only in that).
    async fn call_module<M, R>(
        &self,
        f: impl FnOnce(&mut M, &mut Ctx) -> R + Send + 'static,
        persistence: Persistence,
    ) -> Result<Applied<R>, CallError>
    where
        M: Module,
        R: Send + 'static,
    {
        self.call_on_core(move |core, now| core.call_module(now, f), persistence)
            .await
    }

    /// [`Runtime::call`] on the `index`-th module the runtime was started
    /// with, through its [`Module`] methods.
    pub(crate) async fn call_index<R: Send + 'static>(
        &self,
        index: usize,
        f: impl FnOnce(&mut dyn Module, &mut Ctx) -> R + Send + 'static,
    ) -> Result<Applied<R>, CallError> {
        self.call_on_core(
            move |core, now| core.call_index(now, index, f),
            Persistence::Plain,
        )
        .await
    }

    /// Runs `call` on the core, then persists as `persistence` says and
    /// awaits confirmation as [`Runtime::call`] describes.
    async fn call_on_core<R: Send + 'static>(
        &self,
        call: impl FnOnce(&mut Core, std::time::Instant) -> Option<CallOutcome<R>> + Send + 'static,
        persistence: Persistence,
    ) -> Result<Applied<R>, CallError> {
        let (tx, rx) = oneshot::channel();
        let call: self::core::CoreCall = Box::new(move |core, now| {
            let _ = tx.send(call(core, now));
        });
        self.core
            .send(CoreEvent::Call(call))
            .await
            .map_err(|_| CallError::Stopped)?;
        let CallOutcome {
            value,
            owner,
            acks,
            remote,
            persist,
            sent,
            took,
        } = rx
            .await
            .map_err(|_| CallError::Stopped)?
            .ok_or(CallError::NoSuchModule)?;
        let (persist, serialized) = match persistence {
            Persistence::Plain => (persist, None),
            Persistence::Serialized => (persist, Some(owner)),
            Persistence::Dropped => (Vec::new(), None),
        };
        // One absolute deadline: the switches answer independently of the
        // order they are awaited in, so N silent switches cost one timeout.
        let deadline = tokio::time::Instant::now() + self.config.confirm_timeout;
        let confirmations = async {
            let mut answers = Vec::with_capacity(acks.len());
            for (dpid, ack) in acks {
                answers.push((dpid, tokio::time::timeout_at(deadline, ack).await));
            }
            answers
        };
        let (answers, persisted) = tokio::join!(confirmations, self.persist(persist, serialized));
        let mut applied = Applied {
            value,
            confirmed: Vec::new(),
            unconfirmed: Vec::new(),
            rejections: Vec::new(),
            sent,
            persisted: persisted.as_ref().map(drop).map_err(Arc::clone),
            core_time: took,
        };
        if !remote.is_empty() {
            let revision = persisted.ok().flatten();
            let (confirmed, unconfirmed) =
                self.confirm_remote(owner, remote, revision, deadline).await;
            applied.confirmed.extend(confirmed);
            applied.unconfirmed.extend(unconfirmed);
        }
        for (dpid, answer) in answers {
            match answer {
                Ok(Ok(ack)) => {
                    applied.confirmed.push(dpid);
                    applied.rejections.extend(ack.rejections);
                }
                _ => applied.unconfirmed.push(dpid),
            }
        }
        applied.confirmed.sort_unstable();
        applied.unconfirmed.sort_unstable();
        Ok(applied)
    }

    /// Writes `ops` atomically off the async workers (a commit fsyncs);
    /// the revision of the commit, if anything changed. A write of module
    /// `serialized` in a cluster also puts the module's serial key, guarded
    /// by the revision the module's state is current to, and moves that
    /// revision to its own commit.
    async fn persist(
        &self,
        mut ops: Vec<Op>,
        serialized: Option<Owner>,
    ) -> Result<Option<i64>, Arc<StoreError>> {
        if ops.is_empty() {
            return Ok(None);
        }
        let guard = match (serialized, &self.config.cluster) {
            (Some(owner), Some(coordinator)) => self.followed_revision(owner).map(|since| {
                let key = serial_key(owner);
                ops.push(Op::put(key.clone(), coordinator.node().as_str()));
                (owner, Guard { key, since })
            }),
            _ => None,
        };
        let store = self.store.clone();
        let (owner, guard) = guard.unzip();
        let committed =
            tokio::task::spawn_blocking(move || store.apply_guarded(ops, guard.as_ref()));
        let events = match committed.await {
            Ok(result) => result.map_err(Arc::new)?,
            Err(e) => return Err(Arc::new(StoreError::Task(e.to_string()))),
        };
        let revision = events.first().map(|e| e.revision);
        if let (Some(owner), Some(revision)) = (owner, revision) {
            // The guard held: no other node wrote the module in between.
            self.followed_to(owner, revision);
        }
        Ok(revision)
    }

    /// Waits (until `deadline`) for the masters of `remote` switches to
    /// apply `owner`'s store write at `revision`: the switches whose master
    /// did, with its switches confirming, and the others.
    async fn confirm_remote(
        &self,
        owner: Owner,
        remote: Vec<u64>,
        revision: Option<i64>,
        deadline: tokio::time::Instant,
    ) -> (Vec<u64>, Vec<u64>) {
        let (Some(coordinator), Some(revision)) = (&self.config.cluster, revision) else {
            return (Vec::new(), remote);
        };
        let masters = coordinator.view().borrow().masters.clone();
        let me = coordinator.node();
        let module = owner.name();
        let waits: Vec<(u64, Option<(flowgate_cluster::NodeId, String)>)> = remote
            .into_iter()
            .map(|dpid| {
                let master = masters.get(&dpid).map(|m| &m.node).filter(|n| *n != me);
                (dpid, master.map(|n| (n.clone(), module.to_owned())))
            })
            .collect();
        let reached = |applied: &AppliedRevisions, by: &(flowgate_cluster::NodeId, String)| {
            applied.get(by).is_some_and(|r| r.revision >= revision)
        };
        let mut applied = coordinator.applied_by();
        let _ = tokio::time::timeout_at(
            deadline,
            applied.wait_for(|a| waits.iter().flat_map(|(_, by)| by).all(|by| reached(a, by))),
        )
        .await;
        let applied = applied.borrow().clone();
        let (mut confirmed, mut unconfirmed) = (Vec::new(), Vec::new());
        for (dpid, by) in waits {
            let record = by.as_ref().and_then(|by| applied.get(by));
            match record {
                Some(r) if r.revision >= revision && !r.failed.contains(&dpid) => {
                    confirmed.push(dpid)
                }
                _ => unconfirmed.push(dpid),
            }
        }
        (confirmed, unconfirmed)
    }

    /// The store revision `owner`'s state is current to, if it follows
    /// the store.
    pub(crate) fn followed_revision(&self, owner: Owner) -> Option<i64> {
        self.followed.borrow().get(&owner).copied()
    }

    /// `owner`'s state is current to `revision` (it never moves back).
    pub(crate) fn followed_to(&self, owner: Owner, revision: i64) {
        self.followed.send_if_modified(|followed| {
            let at = followed.entry(owner).or_default();
            let moved = revision > *at;
            *at = (*at).max(revision);
            moved
        });
    }

    /// In a cluster, before a service write of `owner`: waits (at most the
    /// confirmation deadline) until this node followed every write of the
    /// module committed before now, so that a write made after another
    /// node's write answered is validated against it instead of failing
    /// with a conflict. Only writes really concurrent conflict.
    pub(crate) async fn catch_up(&self, owner: Owner) {
        if self.config.cluster.is_none() || self.followed_revision(owner).is_none() {
            return;
        }
        let store = self.store.clone();
        let key = serial_key(owner);
        let Ok(Ok(last)) = tokio::task::spawn_blocking(move || store.changed_at(&key)).await else {
            // The write's own guard decides.
            return;
        };
        let mut followed = self.followed.subscribe();
        let caught_up = followed.wait_for(|f| f.get(&owner).is_some_and(|r| *r >= last));
        let _ = tokio::time::timeout(self.config.confirm_timeout, caught_up).await;
    }

    /// The store revision each following module's state is current to:
    /// how stale this node's reads of it may be.
    pub fn followed_revisions(&self) -> BTreeMap<Owner, i64> {
        self.followed.borrow().clone()
    }

    /// This node's place in a cluster, if it is in one.
    pub(crate) fn coordinator(&self) -> Option<&Arc<dyn Coordinator>> {
        self.config.cluster.as_ref()
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Puts `event` on the bus through the core, so subscribed modules see
    /// it too.
    pub async fn emit(&self, event: crate::events::BusEvent) {
        // Err only when the core is gone (shutting down).
        let _ = self.core.send(CoreEvent::Emit(event)).await;
    }

    /// The event bus.
    /// The lock that serializes module `owner`'s service writes (a write
    /// and its rollback), whichever handle of the service makes them.
    pub fn write_lock(&self, owner: Owner) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .write_locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        locks.entry(owner).or_default().clone()
    }

    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// The store modules persist to.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Whether this node takes, now, the actions a cluster must take once
    /// rather than once per node (host-aware reactions): always without
    /// clustering; with it, only while `flowgate_cluster::acts` says so.
    pub fn is_cluster_actor(&self) -> bool {
        let Some(coordinator) = &self.config.cluster else {
            return true;
        };
        let view = coordinator.view();
        let view = view.borrow();
        flowgate_cluster::acts(
            coordinator.node(),
            &view.masters,
            view.lease_until,
            std::time::Instant::now(),
        )
    }

    async fn accept_loop(self, listener: TcpListener, core: mpsc::Sender<CoreEvent>) {
        let limit = Arc::new(Semaphore::new(self.config.max_connections));
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Typically out of file descriptors: back off, keep serving.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                warn!(%peer, "connection limit reached; refusing switch");
                continue;
            };
            info!(%peer, "switch connection accepted");
            let registry = self.registry.clone();
            let core = core.clone();
            let config = self.config.driver.clone();
            let tls = self.config.tls.clone();
            tokio::spawn(async move {
                let stream = match tls {
                    None => stream,
                    Some(tls) => match tls.accept(stream, peer).await {
                        Some(inner) => inner,
                        None => return,
                    },
                };
                driver::run_connection(stream, peer, config, registry, core).await;
                drop(permit);
            });
        }
    }
}

/// Hands every change of the cluster's view to the core, on its control
/// lane (ahead of switch events: a lost mastership stops writes first).
async fn follow_cluster(mut view: watch::Receiver<ClusterView>, core: mpsc::Sender<CoreEvent>) {
    while view.changed().await.is_ok() {
        let latest = view.borrow_and_update().clone();
        if core.send(CoreEvent::Cluster(latest)).await.is_err() {
            return;
        }
    }
}

/// Performs store writes modules asked for outside calls, in order.
async fn persister(store: Arc<dyn Store>, mut writes: mpsc::UnboundedReceiver<Vec<Op>>) {
    while let Some(ops) = writes.recv().await {
        let store = store.clone();
        let n = ops.len();
        match tokio::task::spawn_blocking(move || store.apply(ops)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(error = %e, ops = n, "a module's store write failed"),
            Err(e) => warn!(error = %e, ops = n, "a module's store write panicked"),
        }
    }
}
