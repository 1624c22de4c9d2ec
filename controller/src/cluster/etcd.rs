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
//! Calls and streams go to one etcd member at a time and move to the next
//! when it fails (`store::etcd_endpoints`): the keepalive continues the
//! same lease, the watch resumes after the last revision it delivered.
//! Any etcd error that outlasts that ends the session: the lease is revoked (best effort, so
//! the node's keys go at once rather than at expiry) and a new session
//! starts after a pause. Meanwhile the view has no lease: the node writes
//! to no switch. Revoking costs the node its switches (the leader moves
//! them) but a node that lost etcd cannot be trusted with them anyway.
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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use etcd_client::{Compare, CompareOp, EventType, GetOptions, KeyValue, PutOptions, Txn, TxnOp};
use flowgate_cluster::{
    assign, keys, Dpid, Generation, Lease, LeaseId, Masters, Mastership, Move, NodeId,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{ClusterView, Coordinator};
use crate::store::{connect_options, Endpoints, EtcdConfig, KeptLease, Pinned, ResumingWatch};

/// The prefix `flowgate_cluster::keys` writes its keys under; replaced by
/// the store's.
const KEYS_ROOT: &str = "/flowgate/";

/// Every cluster key is under this (in `keys` form).
const CLUSTER: &str = "/flowgate/cluster/";

/// Pause before a new session after one failed.
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

/// A snapshot for `GET /cluster`.
#[derive(Debug, Clone)]
pub struct ClusterStatus {
    pub node: NodeId,
    /// Whether this node holds a lease it may still act on.
    pub lease_valid: bool,
    pub state: ClusterState,
}

enum Command {
    Connected(Dpid),
    Disconnected(Dpid),
}

/// A node's coordinator on etcd. See the module docs.
#[derive(Debug)]
pub struct EtcdCoordinator {
    node: NodeId,
    view: watch::Receiver<ClusterView>,
    commands: mpsc::UnboundedSender<Command>,
    state: Arc<Mutex<ClusterState>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Connected(dpid) => write!(f, "Connected({dpid:016x})"),
            Command::Disconnected(dpid) => write!(f, "Disconnected({dpid:016x})"),
        }
    }
}

impl EtcdCoordinator {
    /// Connects to etcd (which must answer now, as for the store) and
    /// starts the node's sessions on the current tokio runtime.
    pub async fn start(config: EtcdClusterConfig) -> anyhow::Result<Arc<EtcdCoordinator>> {
        let options = connect_options(&config.etcd)?;
        let endpoints = config.etcd.endpoints.join(",");
        let etcd = Endpoints::connect(config.etcd.endpoints.clone(), options)
            .await
            .map(Arc::new)
            .map_err(|e| anyhow::anyhow!("etcd ({endpoints}): {e}"))?;
        let (view_tx, view) = watch::channel(ClusterView::default());
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let state = Arc::new(Mutex::new(ClusterState::default()));
        let settle_until = Instant::now() + settle(config.lease_ttl);
        tokio::spawn(
            Node {
                etcd,
                prefix: config.etcd.prefix.clone(),
                timeout: config.etcd.timeout,
                id: config.node.clone(),
                info: NodeInfo { rest: config.rest },
                ttl: config.lease_ttl,
                view: view_tx,
                commands: commands_rx,
                connections: BTreeSet::new(),
                state: state.clone(),
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
        }))
    }

    /// What this node knows of the cluster now.
    pub fn status(&self) -> ClusterStatus {
        let lease_valid = self
            .view
            .borrow()
            .lease_until
            .is_some_and(|until| std::time::Instant::now() < until);
        ClusterStatus {
            node: self.node.clone(),
            lease_valid,
            state: self
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
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
    /// The etcd members, one used at a time (see `store::etcd_endpoints`).
    etcd: Arc<Endpoints>,
    prefix: String,
    timeout: Duration,
    id: NodeId,
    info: NodeInfo,
    ttl: Duration,
    view: watch::Sender<ClusterView>,
    commands: mpsc::UnboundedReceiver<Command>,
    /// Switches connected to this node, re-put under every new lease.
    connections: BTreeSet<Dpid>,
    state: Arc<Mutex<ClusterState>>,
    settle_until: Instant,
}

/// Why a session ended.
type SessionError = String;

impl Node {
    async fn run(mut self) {
        loop {
            let mut lease = Lease::new(margin(self.ttl));
            let error = self.session(&mut lease).await;
            lease.lost();
            self.publish(&lease);
            if let Some(id) = lease_to_revoke(&error) {
                // Best effort: if etcd is gone, the lease expires anyway.
                let _ = self
                    .bounded("revoking the lease", |p| async move {
                        p.client.lease_client().revoke(id).await
                    })
                    .await;
            }
            match error {
                Ended::Shutdown => return,
                Ended::Failed { error, .. } => {
                    warn!(node = %self.id, error, "cluster session ended; no switch is written until a new one starts");
                }
            }
            tokio::time::sleep(RETRY).await;
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

    /// `op` on an etcd member, on the next one if that one fails, within
    /// the timeout. Every call here is safe to repeat (puts, guarded txns).
    async fn bounded<T, Fut>(
        &self,
        what: &str,
        op: impl FnMut(Pinned) -> Fut,
    ) -> Result<T, SessionError>
    where
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let timed_out =
            || etcd_client::Error::Internal(format!("no answer within {:?}", self.timeout));
        self.etcd
            .call(self.timeout, timed_out, op)
            .await
            .map_err(|e| format!("{what}: {e}"))
    }

    /// One lease's life. Returns why it ended.
    async fn session(&mut self, lease: &mut Lease) -> Ended {
        let sent = Instant::now();
        let ttl_secs = ttl_secs(self.ttl);
        // A grant retried after a lost answer leaves an unused lease, which
        // expires with no key attached.
        let granted = match self
            .bounded("granting a lease", |p| async move {
                p.client.lease_client().grant(ttl_secs, None).await
            })
            .await
        {
            Ok(granted) => granted,
            Err(error) => return Ended::Failed { lease: None, error },
        };
        let id = granted.id();
        let ttl = Duration::from_secs(granted.ttl().max(1).unsigned_abs());
        lease.granted(id, sent.into_std(), ttl);
        let failed = |error| Ended::Failed {
            lease: Some(id),
            error,
        };
        match self.session_with(lease, id, ttl).await {
            Ok(()) => Ended::Shutdown,
            Err(error) => failed(error),
        }
    }

    async fn session_with(
        &mut self,
        lease: &mut Lease,
        id: LeaseId,
        ttl: Duration,
    ) -> Result<(), SessionError> {
        let on_lease = || Some(PutOptions::new().with_lease(id));
        let info = serde_json::to_vec(&self.info).map_err(|e| e.to_string())?;
        let node_key = self.key(&keys::node(&self.id));
        self.bounded("registering", |p| {
            let (key, info) = (node_key.clone(), info.clone());
            async move { p.client.kv_client().put(key, info, on_lease()).await }
        })
        .await?;
        for &dpid in &self.connections {
            let key = self.key(&keys::connection(&self.id, dpid));
            self.bounded("reporting a connection", |p| {
                let key = key.clone();
                async move { p.client.kv_client().put(key, "", on_lease()).await }
            })
            .await?;
        }
        // A keepalive is worth retrying as long as the lease may live (a
        // TTL after its last renewal), plus one timeout: an etcd election
        // (the leader member lost) can outlast the timeout, and the new
        // leader extends every lease. The lease deadline fences the node
        // meanwhile.
        let mut keeper = KeptLease::open(self.etcd.clone(), id, self.timeout + ttl)
            .await
            .map_err(|e| format!("keeping the lease alive: {e}"))?;
        // The snapshot, then every change after it.
        let cluster_prefix = self.key(CLUSTER);
        let snapshot = self
            .bounded("reading the cluster keys", |p| {
                let prefix = cluster_prefix.clone();
                async move {
                    let options = GetOptions::new().with_prefix();
                    p.client.kv_client().get(prefix, Some(options)).await
                }
            })
            .await?;
        let revision = snapshot.header().map_or(0, |h| h.revision());
        {
            let mut state = ClusterState::default();
            for kv in snapshot.kvs() {
                if let Some(key) = self.cluster_key(kv.key()) {
                    state.apply(&key, Some(kv));
                }
            }
            *self.state.lock().unwrap_or_else(PoisonError::into_inner) = state;
        }
        self.publish(lease);
        info!(node = %self.id, lease = id, ttl_s = ttl.as_secs(), revision, "joined the cluster");
        let mut watch = ResumingWatch::open(
            self.etcd.clone(),
            cluster_prefix,
            revision + 1,
            self.timeout,
        )
        .await
        .map_err(|e| format!("watching the cluster keys: {e}"))?;
        self.lead(id).await?;

        let mut keepalive = tokio::time::interval(ttl / 3);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let settle = tokio::time::sleep_until(self.settle_until);
        tokio::pin!(settle);
        let mut settled = Instant::now() >= self.settle_until;
        loop {
            tokio::select! {
                _ = keepalive.tick() => {
                    keeper.keep_alive_now().await.map_err(|e| format!("lease keepalive: {e}"))?;
                }
                ack = keeper.ack() => {
                    let (sent_at, ack) = ack.map_err(|e| format!("lease keepalive: {e}"))?;
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
                    let Some(command) = command else { return Ok(()) };
                    self.command(id, command).await?;
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
        changed
    }

    async fn command(&mut self, id: LeaseId, command: Command) -> Result<(), SessionError> {
        match command {
            Command::Connected(dpid) => {
                self.connections.insert(dpid);
                let key = self.key(&keys::connection(&self.id, dpid));
                let options = PutOptions::new().with_lease(id);
                self.bounded("reporting a connection", |p| {
                    let (key, options) = (key.clone(), options.clone());
                    async move { p.client.kv_client().put(key, "", Some(options)).await }
                })
                .await?;
            }
            Command::Disconnected(dpid) => {
                self.connections.remove(&dpid);
                let key = self.key(&keys::connection(&self.id, dpid));
                self.bounded("reporting a disconnection", |p| {
                    let key = key.clone();
                    async move { p.client.kv_client().delete(key, None).await }
                })
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
            let won = self
                .bounded("campaigning", |p| {
                    let campaign = campaign.clone();
                    async move { p.client.kv_client().txn(campaign).await }
                })
                .await?;
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
        let txn = Txn::new().when(compares).and_then(writes);
        let done = self
            .bounded("writing masters", |p| {
                let txn = txn.clone();
                async move { p.client.kv_client().txn(txn).await }
            })
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

/// How a session ended.
enum Ended {
    /// The coordinator was dropped.
    Shutdown,
    Failed {
        lease: Option<LeaseId>,
        error: SessionError,
    },
}

fn lease_to_revoke(ended: &Ended) -> Option<LeaseId> {
    match ended {
        Ended::Failed { lease, .. } => *lease,
        Ended::Shutdown => None,
    }
}

/// The next batch of the cluster watch, as (etcd key, new value or `None`
/// when deleted).
async fn watch_message(
    watch: &mut ResumingWatch,
) -> Result<Vec<(Vec<u8>, Option<KeyValue>)>, SessionError> {
    let response = watch
        .message()
        .await
        .map_err(|e| format!("cluster watch: {e}"))?;
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs etcd; run with --ignored"]
    async fn one_master_per_switch_then_the_survivor_takes_over() {
        let etcd = TestEtcd::start();
        let a = join(&etcd, "a").await;
        let b = join(&etcd, "b").await;
        for node in [&a, &b] {
            node.connected(1);
            node.connected(2);
        }
        // After the settle delay the leader gives each node one switch, and
        // both nodes see the same masters.
        let balanced = |v: &ClusterView| {
            let owners: BTreeSet<_> = v.masters.values().map(|m| m.node.clone()).collect();
            v.masters.len() == 2 && owners.len() == 2 && v.lease_until.is_some()
        };
        let seen_by_a = wait_for(&a, Duration::from_secs(15), balanced).await;
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
}
