//! REST: `GET /cluster`, what this node knows of the cluster (issue 22).
//! Mounted always, so the document is the same with clustering on or off;
//! off, it says so (`enabled: false`) and lists nothing.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ClusterStatus, EtcdCoordinator};
use crate::api::dpid::format_dpid;
use crate::api::ApiState;
use crate::runtime::Runtime;
use flowgate_cluster::SwitchRole;

/// The cluster route; `coordinator` is `None` when this node runs alone.
pub fn routes(
    coordinator: Option<Arc<EtcdCoordinator>>,
    runtime: Runtime,
) -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(get_cluster))
        .with_state((coordinator, runtime))
}

/// The cluster as this node sees it.
#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct ClusterDoc {
    /// Whether this node is one of a cluster (`[cluster] enabled`).
    pub enabled: bool,
    /// This node's id (`null` when not clustered).
    pub node: Option<String>,
    /// The node that assigns masters, if one is elected.
    pub leader: Option<String>,
    /// Live nodes (their etcd leases exist), by id.
    pub nodes: Vec<ClusterNodeDoc>,
    /// Every switch with a master, by dpid.
    pub switches: Vec<ClusterSwitchDoc>,
    /// How current this node's reads are: per module that follows the
    /// shared store, the store revision its state (what this node's reads
    /// answer) includes every change up to. Another node's write is in it
    /// once it is at least that write's revision.
    pub followed: Vec<ClusterFollowedDoc>,
}

#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct ClusterFollowedDoc {
    pub module: String,
    /// etcd revision.
    pub revision: i64,
}

#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct ClusterNodeDoc {
    pub id: String,
    /// Its REST address, as it published it.
    pub rest: String,
    /// Its lease is alive. For other nodes, as etcd says (their key
    /// exists); for this node, its own deadline has not passed.
    pub alive: bool,
}

#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct ClusterSwitchDoc {
    /// `00:00:...` form.
    pub dpid: String,
    /// The node that masters it.
    pub master: String,
    /// The role generation id it asserts (the masters key's etcd
    /// revision).
    pub generation: u64,
    /// Nodes connected to it, by id.
    pub connected: Vec<String>,
    /// This node's role on the switch as the switch confirmed it (its last
    /// ROLE_REPLY, or `slave` after it refused a write as IS_SLAVE);
    /// `null` when this node is not connected to it or it has not
    /// answered yet.
    pub role: Option<ClusterConfirmedRole>,
    /// This node masters the switch now: confirmed `master` at the
    /// assignment's generation within its lease, so its writes go out.
    pub writing: bool,
}

/// A switch's answer to a role request.
#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClusterConfirmedRole {
    Master,
    Slave,
    /// The default of a connection that has not asked for a role.
    Equal,
}

impl From<SwitchRole> for ClusterConfirmedRole {
    fn from(role: SwitchRole) -> Self {
        match role {
            SwitchRole::Master => ClusterConfirmedRole::Master,
            SwitchRole::Slave => ClusterConfirmedRole::Slave,
            SwitchRole::Equal => ClusterConfirmedRole::Equal,
        }
    }
}

/// Cluster membership, leader and switch mastership as this node sees them.
#[utoipa::path(
    get,
    path = "/cluster",
    tag = "cluster",
    responses((status = 200, description = "The cluster as this node sees it", body = ClusterDoc))
)]
async fn get_cluster(
    State((coordinator, runtime)): State<(Option<Arc<EtcdCoordinator>>, Runtime)>,
) -> Json<ClusterDoc> {
    Json(match coordinator {
        Some(coordinator) => {
            let mut doc = cluster_doc(&coordinator.status());
            doc.followed = runtime
                .followed_revisions()
                .into_iter()
                .map(|(owner, revision)| ClusterFollowedDoc {
                    module: owner.name().into(),
                    revision,
                })
                .collect();
            doc
        }
        None => ClusterDoc {
            enabled: false,
            node: None,
            leader: None,
            nodes: Vec::new(),
            switches: Vec::new(),
            followed: Vec::new(),
        },
    })
}

fn cluster_doc(status: &ClusterStatus) -> ClusterDoc {
    let state = &status.state;
    let mut nodes: Vec<ClusterNodeDoc> = state
        .nodes
        .iter()
        .map(|(id, info)| ClusterNodeDoc {
            id: id.to_string(),
            rest: info.rest.clone(),
            alive: *id != status.node || status.lease_valid,
        })
        .collect();
    if !state.nodes.contains_key(&status.node) {
        // Between two leases this node has no key; it still exists.
        nodes.push(ClusterNodeDoc {
            id: status.node.to_string(),
            rest: String::new(),
            alive: false,
        });
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
    }
    ClusterDoc {
        enabled: true,
        node: Some(status.node.to_string()),
        leader: state.leader.as_ref().map(ToString::to_string),
        nodes,
        switches: state
            .masters
            .iter()
            .map(|(&dpid, m)| {
                let role = status.roles.get(&dpid);
                ClusterSwitchDoc {
                    dpid: format_dpid(dpid),
                    master: m.node.to_string(),
                    generation: m.generation.0,
                    connected: state
                        .connections
                        .get(&dpid)
                        .map(|nodes| nodes.iter().map(ToString::to_string).collect())
                        .unwrap_or_default(),
                    role: role.and_then(|r| r.confirmed).map(Into::into),
                    writing: role.is_some_and(|r| r.master),
                }
            })
            .collect(),
        followed: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{ClusterState, ConnectionRole, NodeInfo};
    use flowgate_cluster::{Generation, Mastership, NodeId};

    fn status(node: &str, lease_valid: bool, state: ClusterState) -> ClusterStatus {
        ClusterStatus {
            node: id(node),
            lease_until: None,
            lease_valid,
            state,
            roles: Default::default(),
            role_counts: Default::default(),
            sessions: Default::default(),
        }
    }

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    #[test]
    fn the_document_lists_nodes_leader_and_masters() {
        let mut state = ClusterState::default();
        state.nodes.insert(
            id("a"),
            NodeInfo {
                rest: "127.0.0.1:8081".into(),
            },
        );
        state.nodes.insert(
            id("b"),
            NodeInfo {
                rest: "127.0.0.1:8082".into(),
            },
        );
        state.leader = Some(id("b"));
        state.connections.insert(1, [id("a"), id("b")].into());
        state.masters.insert(
            1,
            Mastership {
                node: id("a"),
                generation: Generation(7),
            },
        );
        state.masters.insert(
            2,
            Mastership {
                node: id("b"),
                generation: Generation(8),
            },
        );
        let mut status = status("a", false, state);
        status.roles.insert(
            1,
            ConnectionRole {
                confirmed: Some(SwitchRole::Slave),
                master: false,
            },
        );
        let doc = cluster_doc(&status);
        assert_eq!(doc.node.as_deref(), Some("a"));
        assert_eq!(doc.leader.as_deref(), Some("b"));
        let alive: Vec<_> = doc.nodes.iter().map(|n| (n.id.as_str(), n.alive)).collect();
        // This node's own deadline passed: it says so, even with its key up.
        assert_eq!(alive, [("a", false), ("b", true)]);
        // Assigned master of 1 but the switch says slave (its lease ran
        // out): both shown; 2 is not connected to this node.
        assert_eq!(
            doc.switches,
            [
                ClusterSwitchDoc {
                    dpid: "00:00:00:00:00:00:00:01".into(),
                    master: "a".into(),
                    generation: 7,
                    connected: vec!["a".into(), "b".into()],
                    role: Some(ClusterConfirmedRole::Slave),
                    writing: false,
                },
                ClusterSwitchDoc {
                    dpid: "00:00:00:00:00:00:00:02".into(),
                    master: "b".into(),
                    generation: 8,
                    connected: vec![],
                    role: None,
                    writing: false,
                }
            ]
        );
    }

    #[test]
    fn a_node_between_leases_is_listed_dead() {
        let doc = cluster_doc(&status("a", false, ClusterState::default()));
        assert_eq!(doc.nodes.len(), 1);
        assert!(!doc.nodes[0].alive);
    }
}
