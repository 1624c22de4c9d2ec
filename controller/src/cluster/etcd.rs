//! [`Coordinator`] on etcd: the coordinator of a real cluster.
//!
//! One task on the caller's tokio runtime runs a *session* per etcd lease:
//! 1. grant a lease (TTL in whole seconds, as etcd counts them), then put
//!    the membership key and this node's connection keys under it;
//! 2. read the cluster prefix once and watch it from the next revision:
//!    membership, connections, leader and masters in one ordered stream;
//! 3. keep the lease alive every TTL/3, recording each keepalive's send
//!    time ([`Lease`]: the deadline counts from the send, a lower bound of
//!    etcd's expiry), and publish the deadline in the view;
//! 4. campaign whenever the leader key is absent (a transaction that
//!    creates it under the lease only if it does not exist), and, while
//!    leader, run [`assign`] on every change and write the moves in one
//!    transaction guarded by its leader key's create revision and by every
//!    moved masters key's mod revision (so a deposed leader, or one whose
//!    view is behind its own last write, writes nothing).
//!
//! An etcd error ends the session, not the lease
//! ([`flowgate_cluster::after_error`]): the node keeps the lease (its keys
//! and switches stay) and starts a session on it again, retrying within
//! the lease deadline while that is ahead; the view keeps the deadline,
//! which moves only with acknowledged keepalives, so past it the node
//! writes nothing. Once etcd says the lease is gone (a keepalive answered
//! with TTL 0, "lease not found") the node publishes a view without lease
//! (no writes) and registers under a new one after a pause; the leader
//! has moved its switches by then.
//!
//! [`EtcdCoordinator::leave`] (graceful shutdown) stops writing and revokes
//! the lease: the other nodes take the switches over at once instead of
//! after the TTL.
//!
//! Cluster keys live under the store's prefix (`flowgate_cluster::keys`
//! with `/flowgate/` replaced by it), next to the data, so one etcd prefix
//! is one deployment. They sit under the store's `cluster/` subtree, which
//! no module uses.
//!
//! The task runs on the process's runtime (not a runtime of its own like
//! the store): nothing here is called from synchronous code except
//! [`Coordinator::connected`]/[`Coordinator::disconnected`], which only
//! queue. A starved runtime delays keepalives, which the lease deadline
//! (counted from sends) already turns into the node fencing itself.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, KeyValue, LeaseKeeper, PutOptions, Txn,
    TxnOp, WatchOptions, WatchStream,
};
use flowgate_cluster::{
    after_error, assign, keys, Dpid, Generation, Lease, LeaseId, Masters, Mastership, Move, NodeId,
    Recovery,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{
    AppliedRecord, AppliedRevisions, ClusterView, ConnectionRole, Coordinator, RoleBook, RoleCounts,
};
use crate::store::{connect_options, Endpoints, EtcdConfig, Pinned};

/// The prefix `flowgate_cluster::keys` writes its keys under; replaced by
/// the store's.
pub(super) const KEYS_ROOT: &str = "/flowgate/";

/// Every cluster key is under this (in `keys` form).
const CLUSTER: &str = "/flowgate/cluster/";

/// Pause before a new session after one failed (shorter when the lease
/// deadline is closer: [`after_error`]).
const RETRY: Duration = Duration::from_secs(1);

/// How a node joins the cluster.
#[derive(Debug, Clone)]
pub struct EtcdClusterConfig {
    /// etcd and the key prefix: the store's.
    pub etcd: EtcdConfig,
    pub node: NodeId,
    /// This node's REST address, published in its membership key.
    pub rest: String,
    /// The lease TTL asked for (rounded up to whole seconds; etcd may grant
    /// more, never less).
    pub lease_ttl: Duration,
}

/// The membership key's value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node's REST address.
    pub rest: String,
}

/// Everything a node has read of the cluster keys: what the REST status
/// shows and the leader plans from.
#[derive(Debug, Clone, Default)]
pub struct ClusterState {
    /// Live nodes (their membership keys exist, so their leases do).
    pub nodes: BTreeMap<NodeId, NodeInfo>,
    pub connections: BTreeMap<Dpid, BTreeSet<NodeId>>,
    pub leader: Option<NodeId>,
    pub masters: Masters,
    /// How far each node followed each module ([`Coordinator::applied`]).
    pub applied: AppliedRevisions,
    /// The leader key's create revision: the guard of the leader's writes.
    leader_created: i64,
    /// The lease the leader key is attached to.
    leader_lease: LeaseId,
}

impl ClusterState {
    /// Applies one key's new value (`None`: deleted); true if the masters
    /// changed.
    fn apply(&mut self, key: &str, kv: Option<&KeyValue>) -> bool {
        if key == keys::LEADER {
            match kv {
                Some(kv) => {
                    self.leader = NodeId::new(String::from_utf8_lossy(kv.value()));
                    self.leader_created = kv.create_revision();
                    self.leader_lease = kv.lease();
                }
                None => {
                    self.leader = None;
                    self.leader_created = 0;
                    self.leader_lease = 0;
                }
            }
        } else if let Some(node) = keys::parse_node(key) {
            match kv.map(|kv| serde_json::from_slice::<NodeInfo>(kv.value())) {
                Some(Ok(info)) => {
                    self.nodes.insert(node, info);
                }
                Some(Err(_)) => {
                    // A node of another version: alive, address unknown.
                    self.nodes.insert(
                        node,
                        NodeInfo {
                            rest: String::new(),
                        },
                    );
                }
                None => {
                    self.nodes.remove(&node);
                }
            }
        } else if let Some((node, dpid)) = keys::parse_connection(key) {
            if kv.is_some() {
                self.connections.entry(dpid).or_default().insert(node);
            } else if let Some(nodes) = self.connections.get_mut(&dpid) {
                nodes.remove(&node);
                if nodes.is_empty() {
                    self.connections.remove(&dpid);
                }
            }
        } else if let Some(applied) = keys::parse_applied(key) {
            match kv.and_then(|kv| serde_json::from_slice::<AppliedRecord>(kv.value()).ok()) {
                Some(record) => {
                    self.applied.insert(applied, record);
                }
                None => {
                    self.applied.remove(&applied);
                }
            }
        } else if let Some(dpid) = keys::parse_master(key) {
            let new = kv.and_then(|kv| {
                Some(Mastership {
                    node: NodeId::new(String::from_utf8_lossy(kv.value()))?,
                    generation: Generation::from_revision(kv.mod_revision()),
                })
            });
            let old = match new.clone() {
                Some(m) => self.masters.insert(dpid, m),
                None => self.masters.remove(&dpid),
            };
            if old != new {
                info!(
                    dpid = format_args!("{dpid:016x}"),
                    old = old.as_ref().map_or("none".into(), |m| m.node.to_string()),
                    new = new.as_ref().map_or("none".into(), |m| m.node.to_string()),
                    generation = new.as_ref().map(|m| m.generation.0),
                    "switch mastership changed"
                );
                return true;
            }
        }
        false
    }
}

/// A snapshot for `GET /cluster` and the metrics.
#[derive(Debug, Clone)]
pub struct ClusterStatus {
    pub node: NodeId,
    /// This node's lease deadline (`None`: no lease): past it, no writes.
    pub lease_until: Option<std::time::Instant>,
    /// Whether this node holds a lease it may still act on.
    pub lease_valid: bool,
    pub state: ClusterState,
    /// This node's connected switches, with the role each confirmed.
    pub roles: BTreeMap<Dpid, ConnectionRole>,
    pub role_counts: RoleCounts,
    pub sessions: SessionCounts,
}

/// How this node's etcd sessions ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionCounts {
    /// Sessions that lost their lease: the node registered again.
    pub restarts: u64,
    /// Sessions that failed while the lease held: resumed on it.
    pub resumes: u64,
}

#[derive(Debug, Default)]
struct Sessions {
    restarts: AtomicU64,
    resumes: AtomicU64,
}

enum Command {
    Connected(Dpid),
    Disconnected(Dpid),
    /// Revoke the lease and end; answered once done.
    Leave(oneshot::Sender<()>),
    Applied(String, AppliedRecord),
}

/// A node's coordinator on etcd. See the module docs.
#[derive(Debug)]
pub struct EtcdCoordinator {
    node: NodeId,
    view: watch::Receiver<ClusterView>,
    commands: mpsc::UnboundedSender<Command>,
    state: Arc<Mutex<ClusterState>>,
    roles: RoleBook,
    sessions: Arc<Sessions>,
    timeout: Duration,
    applied: watch::Receiver<Arc<AppliedRevisions>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Connected(dpid) => write!(f, "Connected({dpid:016x})"),
            Command::Disconnected(dpid) => write!(f, "Disconnected({dpid:016x})"),
            Command::Leave(_) => write!(f, "Leave"),
            Command::Applied(module, record) => write!(f, "Applied({module}, {record:?})"),
        }
    }
}

impl EtcdCoordinator {
    /// Connects to etcd (which must answer now, as for the store) and
    /// starts the node's sessions on the current tokio runtime.
    pub async fn start(config: EtcdClusterConfig) -> anyhow::Result<Arc<EtcdCoordinator>> {
        let options = connect_options(&config.etcd)?;
        let endpoints = config.etcd.endpoints.join(",");
        let etcd = tokio::time::timeout(
            config.etcd.timeout,
            Endpoints::connect(config.etcd.endpoints.clone(), options),
        )
        .await
        .map_err(|_| anyhow::anyhow!("etcd ({endpoints}) did not answer"))?
        .map_err(|e| anyhow::anyhow!("etcd ({endpoints}): {e}"))?;
        let pinned = etcd.pinned().await;
        let (view_tx, view) = watch::channel(ClusterView::default());
        let (applied_tx, applied) = watch::channel(Arc::default());
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let state = Arc::new(Mutex::new(ClusterState::default()));
        let sessions = Arc::new(Sessions::default());
        let settle_until = Instant::now() + settle(config.lease_ttl);
        tokio::spawn(
            Node {
                client: pinned.client.clone(),
                etcd: Arc::new(etcd),
                pinned,
                prefix: config.etcd.prefix.clone(),
                timeout: config.etcd.timeout,
                id: config.node.clone(),
                info: NodeInfo { rest: config.rest },
                ttl: config.lease_ttl,
                granted: Duration::from_secs(ttl_secs(config.lease_ttl).unsigned_abs()),
                view: view_tx,
                applied: applied_tx,
                commands: commands_rx,
                connections: BTreeSet::new(),
                applied_records: BTreeMap::new(),
                state: state.clone(),
                sessions: sessions.clone(),
                settle_until,
            }
            .run(),
        );
        info!(node = %config.node, endpoints, "cluster node started");
        Ok(Arc::new(EtcdCoordinator {
            node: config.node,
            view,
            commands,
            state,
            roles: RoleBook::default(),
            sessions,
            timeout: config.etcd.timeout,
            applied,
        }))
    }

    /// What this node knows of the cluster now.
    pub fn status(&self) -> ClusterStatus {
        let lease_until = self.view.borrow().lease_until;
        let (roles, role_counts) = self.roles.snapshot();
        ClusterStatus {
            node: self.node.clone(),
            lease_until,
            lease_valid: lease_until.is_some_and(|until| std::time::Instant::now() < until),
            state: self
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            roles,
            role_counts,
            sessions: SessionCounts {
                restarts: self.sessions.restarts.load(Relaxed),
                resumes: self.sessions.resumes.load(Relaxed),
            },
        }
    }

    /// Leaves the cluster (graceful shutdown): stops writing, then revokes
    /// the lease, so the node's keys vanish now and the leader gives its
    /// switches to the other nodes at once rather than after the TTL. The
    /// switches keep their flows; the new masters adopt them. Returns once
    /// etcd answered, or after twice the etcd timeout.
    pub async fn leave(&self) {
        let (done, left) = oneshot::channel();
        if self.commands.send(Command::Leave(done)).is_ok() {
            let _ = tokio::time::timeout(self.timeout * 2, left).await;
        }
    }
}

impl Coordinator for EtcdCoordinator {
    fn node(&self) -> &NodeId {
        &self.node
    }

    fn view(&self) -> watch::Receiver<ClusterView> {
        self.view.clone()
    }

    fn connected(&self, dpid: Dpid) {
        // Err only once the task is gone (shutdown): nothing to report to.
        let _ = self.commands.send(Command::Connected(dpid));
    }

    fn disconnected(&self, dpid: Dpid) {
        let _ = self.commands.send(Command::Disconnected(dpid));
    }

    fn roles(&self) -> Option<&RoleBook> {
        Some(&self.roles)
    }

    fn applied(&self, module: &str, record: AppliedRecord) {
        let _ = self
            .commands
            .send(Command::Applied(module.to_owned(), record));
    }

    fn applied_by(&self) -> watch::Receiver<Arc<AppliedRevisions>> {
        self.applied.clone()
    }
}

/// How long a freshly started node waits before it assigns switches as
/// leader: nodes started together all get to report their connections, so
/// the first one up does not take every switch and then give half away.
fn settle(ttl: Duration) -> Duration {
    ttl.min(Duration::from_secs(3))
}

/// The lease TTL in etcd's unit, whole seconds, at least one.
fn ttl_secs(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis().div_ceil(1000))
        .unwrap_or(i64::MAX)
        .max(1)
}

/// The part of a lease kept back from writing: the time between a
/// `may_write` check and the write it guards, and clock rate differences.
fn margin(ttl: Duration) -> Duration {
    ttl / 5
}

/// The coordinator's task.
struct Node {
    /// The pinned member's client: a session talks to one etcd member.
    client: Client,
    /// The members, and which one is pinned (`store::etcd_endpoints`).
    etcd: Arc<Endpoints>,
    pinned: Pinned,
    prefix: String,
    timeout: Duration,
    id: NodeId,
    info: NodeInfo,
    ttl: Duration,
    /// The TTL etcd granted the current lease (at least `ttl`).
    granted: Duration,
    view: watch::Sender<ClusterView>,
    applied: watch::Sender<Arc<AppliedRevisions>>,
    commands: mpsc::UnboundedReceiver<Command>,
    /// Switches connected to this node, re-put under every new lease.
    connections: BTreeSet<Dpid>,
    /// What this node last said it applied, by module; re-put likewise.
    applied_records: BTreeMap<String, AppliedRecord>,
    state: Arc<Mutex<ClusterState>>,
    sessions: Arc<Sessions>,
    settle_until: Instant,
}

/// Why a session ended.
type SessionError = String;

impl Node {
    async fn run(mut self) {
        let mut lease = Lease::new(margin(self.ttl));
        loop {
            let ended = match lease.id() {
                Some(id) => self.session_with(&mut lease, id).await,
                None => self.session(&mut lease).await,
            };
            let error = match ended {
                Ok(Exit::Dropped) => {
                    lease.lost();
                    self.publish(&lease);
                    return;
                }
                Ok(Exit::Leave(done)) => {
                    self.leave(&mut lease).await;
                    let _ = done.send(());
                    return;
                }
                Err(error) => error,
            };
            // The next session talks to the next member: etcd-client's
            // balanced channel would keep trying a dead one.
            self.pinned = self.etcd.skip(&self.pinned).await;
            self.client = self.pinned.client.clone();
            if error.contains("lease not found") {
                lease.lost();
            }
            let pause = RETRY.min(self.granted / 6);
            match after_error(&lease, std::time::Instant::now(), pause) {
                Recovery::Resume { lease: id, at } => {
                    self.sessions.resumes.fetch_add(1, Relaxed);
                    warn!(node = %self.id, error, lease = id,
                        "cluster session failed; keeping the lease (and its switches while its deadline is ahead), retrying");
                    tokio::time::sleep_until(at.into()).await;
                }
                Recovery::Rejoin { at } => {
                    self.sessions.restarts.fetch_add(1, Relaxed);
                    self.publish(&lease);
                    warn!(node = %self.id, error,
                        "cluster session ended and its lease is gone; no switch is written until the node registers again");
                    tokio::time::sleep_until(at.into()).await;
                }
            }
        }
    }

    /// Stops writing (a view without lease), then revokes the lease.
    async fn leave(&mut self, lease: &mut Lease) {
        let id = lease.id();
        lease.lost();
        self.publish(lease);
        let Some(id) = id else { return };
        let mut client = self.client.lease_client();
        match self.bounded("revoking the lease", client.revoke(id)).await {
            Ok(_) => {
                info!(node = %self.id, lease = id, "left the cluster: lease revoked, the other nodes take its switches over")
            }
            Err(error) => {
                warn!(node = %self.id, error, "leaving the cluster: the lease was not revoked; it expires after its TTL")
            }
        }
    }

    fn key(&self, key: &str) -> String {
        match key.strip_prefix(KEYS_ROOT) {
            Some(rest) => format!("{}{rest}", self.prefix),
            None => key.to_owned(),
        }
    }

    /// The `flowgate_cluster::keys` form of an etcd key.
    fn cluster_key(&self, key: &[u8]) -> Option<String> {
        let rest = key.strip_prefix(self.prefix.as_bytes())?;
        Some(format!("{KEYS_ROOT}{}", std::str::from_utf8(rest).ok()?))
    }

    fn publish(&self, lease: &Lease) {
        let masters = self
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .masters
            .clone();
        self.view.send_replace(ClusterView {
            masters: Arc::new(masters),
            lease_until: lease.valid_until(),
        });
    }

    async fn bounded<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, SessionError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(format!("{what}: {e}")),
            Err(_) => Err(format!("{what}: no answer within {:?}", self.timeout)),
        }
    }

    /// A new lease, then a session on it.
    async fn session(&mut self, lease: &mut Lease) -> Result<Exit, SessionError> {
        let mut lease_client = self.client.lease_client();
        let sent = Instant::now();
        let granted = self
            .bounded(
                "granting a lease",
                lease_client.grant(ttl_secs(self.ttl), None),
            )
            .await?;
        let id = granted.id();
        self.granted = Duration::from_secs(granted.ttl().max(1).unsigned_abs());
        lease.granted(id, sent.into_std(), self.granted);
        self.session_with(lease, id).await
    }

    /// A session on lease `id`, new or kept through a failed session: its
    /// keys are put (again), the cluster read and watched, the lease kept
    /// alive. Returns how it ended.
    async fn session_with(&mut self, lease: &mut Lease, id: LeaseId) -> Result<Exit, SessionError> {
        let ttl = self.granted;
        let mut kv = self.client.kv_client();
        let on_lease = || Some(PutOptions::new().with_lease(id));
        let info = serde_json::to_vec(&self.info).map_err(|e| e.to_string())?;
        let node_key = self.key(&keys::node(&self.id));
        self.bounded("registering", kv.put(node_key, info, on_lease()))
            .await?;
        for &dpid in &self.connections {
            let key = self.key(&keys::connection(&self.id, dpid));
            self.bounded("reporting a connection", kv.put(key, "", on_lease()))
                .await?;
        }
        for (module, record) in &self.applied_records {
            let key = self.key(&keys::applied(&self.id, module));
            let value = serde_json::to_vec(record).map_err(|e| e.to_string())?;
            self.bounded(
                "reporting how far the store was followed",
                kv.put(key, value, on_lease()),
            )
            .await?;
        }
        let (mut keeper, mut acks) = self
            .bounded(
                "keeping the lease alive",
                self.client.lease_client().keep_alive(id),
            )
            .await?;
        // The snapshot, then every change after it.
        let cluster_prefix = self.key(CLUSTER);
        let snapshot = self
            .bounded(
                "reading the cluster keys",
                kv.get(
                    cluster_prefix.clone(),
                    Some(GetOptions::new().with_prefix()),
                ),
            )
            .await?;
        let revision = snapshot.header().map_or(0, |h| h.revision());
        {
            let mut state = ClusterState::default();
            for kv in snapshot.kvs() {
                if let Some(key) = self.cluster_key(kv.key()) {
                    state.apply(&key, Some(kv));
                }
            }
            self.publish_applied(&state);
            *self.state.lock().unwrap_or_else(PoisonError::into_inner) = state;
        }
        self.publish(lease);
        info!(node = %self.id, lease = id, ttl_s = ttl.as_secs(), revision, "joined the cluster");
        let mut watch = self
            .bounded(
                "watching the cluster keys",
                self.client.watch_client().watch(
                    cluster_prefix,
                    Some(
                        WatchOptions::new()
                            .with_prefix()
                            .with_start_revision(revision + 1),
                    ),
                ),
            )
            .await?;
        self.lead(id).await?;

        let mut sends: VecDeque<Instant> = VecDeque::new();
        let mut keepalive = tokio::time::interval(ttl / 3);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let settle = tokio::time::sleep_until(self.settle_until);
        tokio::pin!(settle);
        let mut settled = Instant::now() >= self.settle_until;
        loop {
            tokio::select! {
                _ = keepalive.tick() => {
                    sends.push_back(Instant::now());
                    keep_alive(&mut keeper).await?;
                }
                ack = acks.message() => {
                    let ack = ack
                        .map_err(|e| format!("lease keepalive: {e}"))?
                        .ok_or("the lease keepalive stream ended")?;
                    let sent_at = sends.pop_front().unwrap_or_else(Instant::now);
                    // The TTL etcd restarted the lease with; zero: it is gone.
                    let remaining = Duration::from_secs(ack.ttl().max(0).unsigned_abs());
                    lease.keepalive_acked(id, sent_at.into_std(), remaining);
                    if lease.id().is_none() {
                        return Err("the lease expired".into());
                    }
                    self.publish(lease);
                }
                changes = watch_message(&mut watch) => {
                    if self.apply_changes(changes?) {
                        self.publish(lease);
                    }
                    self.lead(id).await?;
                }
                command = self.commands.recv() => {
                    match command {
                        None => return Ok(Exit::Dropped),
                        Some(Command::Leave(done)) => return Ok(Exit::Leave(done)),
                        Some(command) => self.command(&mut kv, id, command).await?,
                    }
                }
                _ = &mut settle, if !settled => {
                    settled = true;
                    self.lead(id).await?;
                }
            }
        }
    }

    /// Applies a watch batch; true if the masters changed.
    fn apply_changes(&self, events: Vec<(Vec<u8>, Option<KeyValue>)>) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut changed = false;
        for (key, kv) in events {
            if let Some(key) = self.cluster_key(&key) {
                changed |= state.apply(&key, kv.as_ref());
            }
        }
        self.publish_applied(&state);
        changed
    }

    fn publish_applied(&self, state: &ClusterState) {
        self.applied.send_if_modified(|applied| {
            let modified = **applied != state.applied;
            if modified {
                *applied = Arc::new(state.applied.clone());
            }
            modified
        });
    }

    async fn command(
        &mut self,
        kv: &mut etcd_client::KvClient,
        id: LeaseId,
        command: Command,
    ) -> Result<(), SessionError> {
        match command {
            Command::Connected(dpid) => {
                self.connections.insert(dpid);
                let key = self.key(&keys::connection(&self.id, dpid));
                let options = PutOptions::new().with_lease(id);
                self.bounded("reporting a connection", kv.put(key, "", Some(options)))
                    .await?;
            }
            Command::Disconnected(dpid) => {
                self.connections.remove(&dpid);
                let key = self.key(&keys::connection(&self.id, dpid));
                self.bounded("reporting a disconnection", kv.delete(key, None))
                    .await?;
            }
            // Handled by the session loop.
            Command::Leave(_) => {}
            Command::Applied(module, record) => {
                self.applied_records.insert(module.clone(), record.clone());
                let key = self.key(&keys::applied(&self.id, &module));
                let value = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
                let options = PutOptions::new().with_lease(id);
                self.bounded(
                    "reporting how far the store was followed",
                    kv.put(key, value, Some(options)),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// The leader's step: campaign if nobody leads; if this node leads (and
    /// has settled), write the moves [`assign`] makes.
    async fn lead(&self, id: LeaseId) -> Result<(), SessionError> {
        let state = self
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let leader_key = self.key(keys::LEADER);
        let mut kv = self.client.kv_client();
        let Some(leader) = &state.leader else {
            let campaign = Txn::new()
                .when([Compare::create_revision(
                    leader_key.clone(),
                    CompareOp::Equal,
                    0,
                )])
                .and_then([TxnOp::put(
                    leader_key,
                    self.id.as_str(),
                    Some(PutOptions::new().with_lease(id)),
                )]);
            let won = self.bounded("campaigning", kv.txn(campaign)).await?;
            if won.succeeded() {
                info!(node = %self.id, "elected cluster leader");
            }
            // Either way the watch brings the leader key: planning waits.
            return Ok(());
        };
        if *leader != self.id || state.leader_lease != id || Instant::now() < self.settle_until {
            return Ok(());
        }
        let live: BTreeSet<NodeId> = state.nodes.keys().cloned().collect();
        let moves = assign(&live, &state.connections, &state.masters);
        if moves.is_empty() {
            return Ok(());
        }
        let mut compares = vec![Compare::create_revision(
            leader_key,
            CompareOp::Equal,
            state.leader_created,
        )];
        let mut writes = Vec::new();
        for Move { dpid, to, .. } in &moves {
            let key = self.key(&keys::master(*dpid));
            let current = state
                .masters
                .get(dpid)
                .map_or(0, |m| i64::try_from(m.generation.0).unwrap_or(i64::MAX));
            compares.push(Compare::mod_revision(
                key.clone(),
                CompareOp::Equal,
                current,
            ));
            writes.push(match to {
                Some(node) => TxnOp::put(key, node.as_str(), None),
                None => TxnOp::delete(key, None),
            });
        }
        let done = self
            .bounded(
                "writing masters",
                kv.txn(Txn::new().when(compares).and_then(writes)),
            )
            .await?;
        if done.succeeded() {
            for m in &moves {
                info!(
                    dpid = format_args!("{:016x}", m.dpid),
                    from = m.from.as_ref().map_or("none", NodeId::as_str),
                    to = m.to.as_ref().map_or("none", NodeId::as_str),
                    revision = done.header().map_or(0, |h| h.revision()),
                    "leader assigned a switch"
                );
            }
        } else {
            // Our view was behind (our own last write, or we were deposed):
            // the watch brings the news and we plan again.
            debug!(node = %self.id, "masters write lost its compare; replanning on the next change");
        }
        Ok(())
    }
}

/// How a session ended without an error.
enum Exit {
    /// The coordinator was dropped.
    Dropped,
    /// [`EtcdCoordinator::leave`]: revoke the lease, then answer.
    Leave(oneshot::Sender<()>),
}

async fn keep_alive(keeper: &mut LeaseKeeper) -> Result<(), SessionError> {
    keeper
        .keep_alive()
        .await
        .map_err(|e| format!("lease keepalive: {e}"))
}

/// The next batch of the cluster watch, as (etcd key, new value or `None`
/// when deleted).
async fn watch_message(
    watch: &mut WatchStream,
) -> Result<Vec<(Vec<u8>, Option<KeyValue>)>, SessionError> {
    let response = watch
        .message()
        .await
        .map_err(|e| format!("cluster watch: {e}"))?
        .ok_or("the cluster watch ended")?;
    if response.canceled() {
        return Err(format!(
            "cluster watch cancelled: {}",
            response.cancel_reason()
        ));
    }
    Ok(response
        .events()
        .iter()
        .filter_map(|event| {
            let kv = event.kv()?;
            let value = match event.event_type() {
                EventType::Put => Some(kv.clone()),
                EventType::Delete => None,
            };
            Some((kv.key().to_vec(), value))
        })
        .collect())
}

/// Against a real etcd (`TestEtcd`), `#[ignore]`d like the store's etcd
/// tests: `cargo test -p flowgate-controller cluster::etcd -- --ignored`.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::etcd::TestEtcd;

    const TTL: Duration = Duration::from_secs(2);

    async fn join(etcd: &TestEtcd, id: &str) -> Arc<EtcdCoordinator> {
        EtcdCoordinator::start(EtcdClusterConfig {
            etcd: etcd.config("/fg-test/", Duration::from_secs(2)),
            node: NodeId::new(id).unwrap(),
            rest: format!("{id}:8080"),
            lease_ttl: TTL,
        })
        .await
        .expect("etcd answers")
    }

    /// The first view `check` accepts, within `within`.
    async fn wait_for(
        node: &EtcdCoordinator,
        within: Duration,
        check: impl Fn(&ClusterView) -> bool,
    ) -> ClusterView {
        let mut view = node.view();
        let seen = tokio::time::timeout(within, view.wait_for(|v| check(v))).await;
        match seen {
            Ok(Ok(view)) => view.clone(),
            _ => panic!(
                "{} never saw the view wanted: {:?}",
                node.node(),
                node.status()
            ),
        }
    }

    /// Nodes `a` and `b`, both connected to switches 1 and 2, and the view
    /// `a` has once the leader gave each node one switch (after the settle
    /// delay).
    async fn balanced_pair(
        etcd: &TestEtcd,
    ) -> (Arc<EtcdCoordinator>, Arc<EtcdCoordinator>, ClusterView) {
        let a = join(etcd, "a").await;
        let b = join(etcd, "b").await;
        for node in [&a, &b] {
            node.connected(1);
            node.connected(2);
        }
        let balanced = |v: &ClusterView| {
            let owners: BTreeSet<_> = v.masters.values().map(|m| m.node.clone()).collect();
            v.masters.len() == 2 && owners.len() == 2 && v.lease_until.is_some()
        };
        let seen_by_a = wait_for(&a, Duration::from_secs(15), balanced).await;
        (a, b, seen_by_a)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs etcd; run with --ignored"]
    async fn one_master_per_switch_then_the_survivor_takes_over() {
        let etcd = TestEtcd::start();
        // Both nodes see the same masters.
        let (a, b, seen_by_a) = balanced_pair(&etcd).await;
        let seen_by_b = wait_for(&b, Duration::from_secs(5), |v| {
            *v.masters == *seen_by_a.masters
        })
        .await;
        assert_eq!(seen_by_a.masters, seen_by_b.masters);
        let (status_a, status_b) = (a.status(), b.status());
        assert!(status_a.state.leader.is_some());
        assert_eq!(status_a.state.leader, status_b.state.leader);
        assert_eq!(status_a.state.nodes.len(), 2);
        assert!(status_a.lease_valid);

        // a dies without a word (its lease is not revoked): b gets a's
        // switch at a newer generation once the lease has run out, and
        // keeps its own untouched.
        let masters = seen_by_a.masters.clone();
        let (a_switch, a_was) = masters
            .iter()
            .find(|(_, m)| m.node.as_str() == "a")
            .map(|(d, m)| (*d, m.clone()))
            .unwrap();
        let b_own = masters
            .iter()
            .find(|(_, m)| m.node.as_str() == "b")
            .unwrap();
        let died = Instant::now();
        drop(a);
        let after = wait_for(&b, TTL * 3, |v| {
            v.masters
                .get(&a_switch)
                .is_some_and(|m| m.node.as_str() == "b")
        })
        .await;
        assert!(died.elapsed() < TTL * 2, "took {:?}", died.elapsed());
        assert!(after.masters[&a_switch]
            .generation
            .is_newer_than(a_was.generation));
        assert_eq!(after.masters.get(b_own.0), Some(b_own.1));
        assert_eq!(
            b.status().state.leader.as_ref().map(NodeId::as_str),
            Some("b")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs etcd; run with --ignored"]
    async fn a_node_that_leaves_hands_its_switches_over_before_its_lease_ends() {
        let etcd = TestEtcd::start();
        let (a, b, balanced) = balanced_pair(&etcd).await;
        wait_for(&b, Duration::from_secs(5), |v| {
            *v.masters == *balanced.masters
        })
        .await;
        let left = Instant::now();
        a.leave().await;
        assert_eq!(a.view().borrow().lease_until, None, "a stops writing");
        // Not the lease's expiry: the revoke deletes a's keys at once.
        wait_for(&b, TTL / 2, |v| {
            v.masters.len() == 2 && v.masters.values().all(|m| m.node.as_str() == "b")
        })
        .await;
        assert!(left.elapsed() < TTL / 2, "took {:?}", left.elapsed());
        assert_eq!(b.status().sessions, SessionCounts::default());
    }
}
