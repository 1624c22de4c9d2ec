//! What the runtime needs from the cluster (issue 22), behind one trait.
//!
//! The decisions are in `flowgate_cluster` (pure); this is where a running
//! node gets their inputs: which node masters which switch at which
//! generation, until when its own lease is valid, and where it reports the
//! switches it is connected to. The core ([`crate::runtime::core`]) keeps
//! one `RoleState` per switch connection and feeds it from here.
//!
//! [`Coordinator`] maps onto etcd as follows ([`EtcdCoordinator`], in
//! `cluster/etcd.rs`):
//! - [`Coordinator::view`] is a `watch` channel of the latest
//!   [`ClusterView`]. Its `masters` are the `/flowgate/cluster/masters/`
//!   keys: a GET of the prefix, then a WATCH from the next revision,
//!   applied in watch order, each key's `mod_revision` being its
//!   generation. Its `lease_until` is `flowgate_cluster::Lease::valid_until`
//!   of the node's lease, moved by every keepalive acknowledgement (and
//!   `None` once the lease is lost). A `watch` channel keeps only the
//!   newest value: a slow core skips intermediate assignments, which is
//!   what the role state wants (only the current one matters).
//! - [`Coordinator::connected`] and [`Coordinator::disconnected`] put and
//!   delete `/flowgate/cluster/connections/<node>/<dpid>` under the
//!   node's lease. They must not block: the core calls them; the etcd
//!   client queues them to its own task.
//! - [`Coordinator::applied`] puts `/flowgate/cluster/applied/<node>/<module>`
//!   under the node's lease (queued like the connection keys), and
//!   [`Coordinator::applied_by`] is a `watch` channel of every such key
//!   the node's cluster watch has seen: how far each node has applied
//!   each module's store changes to the switches it masters. A REST write
//!   on one node waits there for the masters of the switches it could not
//!   write itself ([`crate::runtime::Runtime::call`]).
//! - The leader step (campaign on `/flowgate/cluster/leader`, then
//!   `flowgate_cluster::assign` on every change of the membership and
//!   connection keys, written in one transaction guarded by the leader
//!   key) runs inside the coordinator, not in the runtime: every node
//!   only follows the masters keys.
//!
//! Without a coordinator (the default) none of this exists: the core keeps
//! no role state and writes as it always did.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use flowgate_cluster::{Dpid, Masters, NodeId};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub mod api;
mod async_config;
mod etcd;
pub mod metrics;
mod probe_secret;
pub mod roles;

pub use async_config::shared_async_config;
pub use etcd::{
    ClusterState, ClusterStatus, EtcdClusterConfig, EtcdCoordinator, NodeInfo, SessionCounts,
};
pub use probe_secret::shared_probe_secret;
pub use roles::{ConnectionRole, RoleBook, RoleCount, RoleCounts};

/// What a node knows of the cluster at one moment.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// Every switch's master and generation, as the masters keys hold them.
    pub masters: Arc<Masters>,
    /// This node's lease deadline (`Lease::valid_until`): past it the node
    /// writes to no switch. `None`: no lease, so no writes.
    pub lease_until: Option<Instant>,
}

/// How far a node has applied one module's store changes to the switches
/// it masters: every change up to `revision` was handed to the module and
/// the switches it wrote confirmed, but for `failed`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedRecord {
    pub revision: i64,
    /// Switches that did not confirm that follow in time, or refused part
    /// of it.
    #[serde(default)]
    pub failed: Vec<Dpid>,
}

/// Every live node's latest [`AppliedRecord`], by node and module name.
pub type AppliedRevisions = BTreeMap<(NodeId, String), AppliedRecord>;

/// The cluster as one node sees it. See the module docs for its etcd form.
pub trait Coordinator: Send + Sync + fmt::Debug + 'static {
    /// This node's id.
    fn node(&self) -> &NodeId;
    /// The latest view, and every change after it.
    fn view(&self) -> watch::Receiver<ClusterView>;
    /// A switch finished its handshake with this node.
    fn connected(&self, dpid: Dpid);
    /// That switch's connection to this node is gone.
    fn disconnected(&self, dpid: Dpid);
    /// Where the core records its switches' confirmed roles and role
    /// events, for status and metrics; `None`: not recorded.
    fn roles(&self) -> Option<&RoleBook> {
        None
    }
    /// This node has applied module `module`'s store changes as `record`
    /// says. Must not block, like [`Coordinator::connected`].
    fn applied(&self, module: &str, record: AppliedRecord);
    /// What every live node last said with [`Coordinator::applied`].
    fn applied_by(&self) -> watch::Receiver<Arc<AppliedRevisions>>;
}

#[cfg(any(test, feature = "testing"))]
pub use memory::{MemoryCluster, MemoryNode};

/// An in-process cluster for tests: several runtimes in one process share
/// it, and the test plays etcd and the leader (it kills nodes and runs the
/// leader step when it wants).
#[cfg(any(test, feature = "testing"))]
mod memory {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::{Arc, Mutex, PoisonError};
    use std::time::{Duration, Instant};

    use flowgate_cluster::{assign, commit, Dpid, Masters, Move, NodeId};
    use tokio::sync::watch;

    use super::{AppliedRecord, AppliedRevisions, ClusterView, Coordinator, RoleBook};

    /// A live node's lease lasts this long: tests end long before, so a
    /// lease only ends when the test says so ([`MemoryCluster::expire`]).
    const LEASE: Duration = Duration::from_secs(3600);

    #[derive(Debug)]
    struct Member {
        /// Counted by the leader step (its lease is alive, as etcd sees it).
        live: bool,
        /// Hears of changes (false: partitioned from etcd).
        reachable: bool,
        lease_until: Option<Instant>,
        view: watch::Sender<ClusterView>,
    }

    #[derive(Debug, Default)]
    struct State {
        members: BTreeMap<NodeId, Member>,
        connections: BTreeMap<Dpid, BTreeSet<NodeId>>,
        masters: Masters,
        /// etcd's revision: every leader write takes the next one, which
        /// becomes the moved switches' generation.
        revision: i64,
        /// The applied keys; `None` until the first node joins.
        applied: Option<watch::Sender<Arc<AppliedRevisions>>>,
        /// Nodes whose applied keys are not written (a node that stopped
        /// following).
        mute: BTreeSet<NodeId>,
    }

    impl State {
        fn publish(&self) {
            for member in self.members.values().filter(|m| m.reachable) {
                member.view.send_replace(ClusterView {
                    masters: Arc::new(self.masters.clone()),
                    lease_until: member.lease_until,
                });
            }
        }

        /// The node's lease is gone as etcd sees it: its membership and
        /// connection keys vanish with it.
        fn drop_lease(&mut self, node: &NodeId) {
            if let Some(member) = self.members.get_mut(node) {
                member.live = false;
            }
            if let Some(applied) = &self.applied {
                applied.send_modify(|a| {
                    let mut kept = (**a).clone();
                    kept.retain(|(n, _), _| n != node);
                    *a = Arc::new(kept);
                });
            }
            for nodes in self.connections.values_mut() {
                nodes.remove(node);
            }
        }
    }

    /// The shared cluster; [`MemoryCluster::join`] makes a node's
    /// coordinator.
    #[derive(Debug, Default)]
    pub struct MemoryCluster {
        state: Mutex<State>,
    }

    impl MemoryCluster {
        pub fn new() -> Arc<MemoryCluster> {
            Arc::default()
        }

        fn state(&self) -> std::sync::MutexGuard<'_, State> {
            self.state.lock().unwrap_or_else(PoisonError::into_inner)
        }

        /// Node `id` joins with a lease valid for the test's whole run.
        pub fn join(self: &Arc<Self>, id: &str) -> Arc<MemoryNode> {
            let id = NodeId::new(id).expect("a node id is one key segment");
            let mut state = self.state();
            let applied = state
                .applied
                .get_or_insert_with(|| watch::channel(Arc::default()).0)
                .subscribe();
            let lease_until = Some(Instant::now() + LEASE);
            let (tx, rx) = watch::channel(ClusterView {
                masters: Arc::new(state.masters.clone()),
                lease_until,
            });
            state.members.insert(
                id.clone(),
                Member {
                    live: true,
                    reachable: true,
                    lease_until,
                    view: tx,
                },
            );
            Arc::new(MemoryNode {
                cluster: self.clone(),
                id,
                view: rx,
                roles: RoleBook::default(),
                applied,
            })
        }

        /// Node `id` no longer says how far it applied the store (as if
        /// its follower were stuck); what it said before stays.
        pub fn mute(&self, id: &str) {
            if let Some(node) = NodeId::new(id) {
                self.state().mute.insert(node);
            }
        }

        /// The nodes that reported a connection to `dpid` (and are live).
        pub fn connections(&self, dpid: Dpid) -> BTreeSet<NodeId> {
            self.state()
                .connections
                .get(&dpid)
                .cloned()
                .unwrap_or_default()
        }

        pub fn masters(&self) -> Masters {
            self.state().masters.clone()
        }

        /// Node `id` dies: its lease expires now, so it stops writing (its
        /// own lease deadline passed), and the leader no longer counts it.
        pub fn expire(&self, id: &str) {
            let mut state = self.state();
            let Some(node) = NodeId::new(id) else { return };
            state.drop_lease(&node);
            if let Some(member) = state.members.get_mut(&node) {
                member.lease_until = Some(Instant::now());
            }
            state.publish();
        }

        /// Node `id`'s lease is valid until `until` as the node computes it
        /// (its last keepalive's send plus the TTL, less the margin).
        pub fn lease_until(&self, id: &str, until: Instant) {
            let mut state = self.state();
            let Some(node) = NodeId::new(id) else { return };
            if let Some(member) = state.members.get_mut(&node) {
                member.lease_until = Some(until);
            }
            state.publish();
        }

        /// Node `id` is cut off from etcd but keeps running: etcd lets its
        /// lease expire, while the node hears nothing of it or of anything
        /// after (its own lease deadline included: a process paused or a
        /// clock running slow, which only the switch's fence catches).
        pub fn partition(&self, id: &str) {
            let mut state = self.state();
            let Some(node) = NodeId::new(id) else { return };
            state.drop_lease(&node);
            if let Some(member) = state.members.get_mut(&node) {
                member.reachable = false;
            }
        }

        /// The leader step: [`assign`] over the live nodes and their
        /// connections, written at the next revision ([`commit`]), and the
        /// new masters published to every reachable node. The moves made.
        pub fn lead(&self) -> Vec<Move> {
            let mut state = self.state();
            let live: BTreeSet<NodeId> = state
                .members
                .iter()
                .filter(|(_, m)| m.live)
                .map(|(id, _)| id.clone())
                .collect();
            let moves = assign(&live, &state.connections, &state.masters);
            if moves.is_empty() {
                return moves;
            }
            state.revision += 1;
            match commit(&state.masters, &moves, state.revision) {
                Ok(masters) => state.masters = masters,
                Err(stale) => panic!("revisions only grow: {stale:?}"),
            }
            state.publish();
            moves
        }
    }

    /// One node's coordinator in a [`MemoryCluster`].
    #[derive(Debug)]
    pub struct MemoryNode {
        cluster: Arc<MemoryCluster>,
        id: NodeId,
        view: watch::Receiver<ClusterView>,
        roles: RoleBook,
        applied: watch::Receiver<Arc<AppliedRevisions>>,
    }

    impl Coordinator for MemoryNode {
        fn node(&self) -> &NodeId {
            &self.id
        }

        fn view(&self) -> watch::Receiver<ClusterView> {
            self.view.clone()
        }

        fn connected(&self, dpid: Dpid) {
            let mut state = self.cluster.state();
            // A dead node's keys died with its lease.
            if state.members.get(&self.id).is_some_and(|m| m.live) {
                state
                    .connections
                    .entry(dpid)
                    .or_default()
                    .insert(self.id.clone());
            }
        }

        fn disconnected(&self, dpid: Dpid) {
            let mut state = self.cluster.state();
            if let Some(nodes) = state.connections.get_mut(&dpid) {
                nodes.remove(&self.id);
            }
        }

        fn roles(&self) -> Option<&RoleBook> {
            Some(&self.roles)
        }

        fn applied(&self, module: &str, record: AppliedRecord) {
            let state = self.cluster.state();
            let live = state.members.get(&self.id).is_some_and(|m| m.live);
            if !live || state.mute.contains(&self.id) {
                return;
            }
            if let Some(applied) = &state.applied {
                applied.send_modify(|a| {
                    let mut now = (**a).clone();
                    now.insert((self.id.clone(), module.to_owned()), record);
                    *a = Arc::new(now);
                });
            }
        }

        fn applied_by(&self) -> watch::Receiver<Arc<AppliedRevisions>> {
            self.applied.clone()
        }
    }
}
