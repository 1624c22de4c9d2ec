//! This node's cluster figures in Prometheus text format, appended to
//! `/metrics` when clustered. Every sample is labelled with the node id, so
//! the scrapes of all nodes can be put side by side.

use std::fmt::Write;
use std::time::Instant;

use flowgate_cluster::SwitchRole;

use super::ClusterStatus;

/// The figures of `status` at `now`.
pub fn render(status: &ClusterStatus, now: Instant) -> String {
    let node = status.node.as_str();
    let state = &status.state;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{{node=\"{node}\"{labels}}} {value}");
        }
    };
    let one = |value: u64| vec![(String::new(), value.to_string())];
    let flag = |on: bool| one(u64::from(on));

    metric(
        "flowgate_cluster_leader",
        "gauge",
        "1 if this node is the cluster leader (it assigns masters).",
        &flag(state.leader.as_ref() == Some(&status.node)),
    );
    metric(
        "flowgate_cluster_lease_valid",
        "gauge",
        "1 while this node's lease deadline is ahead (it may write).",
        &flag(status.lease_valid),
    );
    let remaining = status.lease_until.map_or(0.0, |until| {
        until.saturating_duration_since(now).as_secs_f64()
    });
    metric(
        "flowgate_cluster_lease_remaining_seconds",
        "gauge",
        "Time left until this node's lease deadline, unless a keepalive is acknowledged first.",
        &[(String::new(), format!("{remaining:.3}"))],
    );
    let assigned = state.masters.values().filter(|m| m.node == status.node);
    metric(
        "flowgate_cluster_switches_assigned",
        "gauge",
        "Switches the leader assigned to this node.",
        &one(assigned.count() as u64),
    );
    metric(
        "flowgate_cluster_switches_mastered",
        "gauge",
        "Switches this node masters: the switch confirmed MASTER at the assignment's generation.",
        &one(status.roles.values().filter(|r| r.master).count() as u64),
    );
    let roles: Vec<(String, String)> = status
        .roles
        .iter()
        .map(|(dpid, role)| {
            let assigned = match state.masters.get(dpid) {
                Some(m) if m.node == status.node => "master",
                Some(_) => "slave",
                None => "none",
            };
            let confirmed = match role.confirmed {
                Some(SwitchRole::Master) => "master",
                Some(SwitchRole::Slave) => "slave",
                Some(SwitchRole::Equal) => "equal",
                None => "none",
            };
            (
                format!(",dpid=\"{dpid:016x}\",assigned=\"{assigned}\",confirmed=\"{confirmed}\""),
                "1".to_owned(),
            )
        })
        .collect();
    metric(
        "flowgate_cluster_switch_role",
        "gauge",
        "Each connected switch: the role assigned to this node and the role the switch confirmed.",
        &roles,
    );
    let counts = &status.role_counts;
    metric(
        "flowgate_cluster_mastership_changes_total",
        "counter",
        "Switches this node became master of, or stopped mastering.",
        &[
            (",change=\"gained\"".to_owned(), counts.gained.to_string()),
            (",change=\"lost\"".to_owned(), counts.lost.to_string()),
        ],
    );
    metric(
        "flowgate_cluster_fenced_total",
        "counter",
        "Fencing by switches: writes refused IS_SLAVE, role requests refused STALE.",
        &[
            (
                ",error=\"is_slave\"".to_owned(),
                counts.refused_is_slave.to_string(),
            ),
            (
                ",error=\"stale\"".to_owned(),
                counts.refused_stale.to_string(),
            ),
        ],
    );
    metric(
        "flowgate_cluster_session_restarts_total",
        "counter",
        "etcd sessions that ended without a valid lease: the node registered again.",
        &one(status.sessions.restarts),
    );
    metric(
        "flowgate_cluster_session_resumes_total",
        "counter",
        "etcd sessions that failed while the lease held: resumed on the same lease.",
        &one(status.sessions.resumes),
    );
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use flowgate_cluster::{Generation, Mastership, NodeId};

    use super::*;
    use crate::cluster::{ClusterState, ConnectionRole, NodeInfo, RoleCounts, SessionCounts};

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    #[test]
    fn figures_per_node_with_assigned_and_confirmed_roles() {
        let now = Instant::now();
        let mut state = ClusterState::default();
        state.nodes.insert(id("a"), NodeInfo { rest: "x".into() });
        state.leader = Some(id("a"));
        for (dpid, node) in [(1, "a"), (2, "b"), (3, "a")] {
            state.masters.insert(
                dpid,
                Mastership {
                    node: id(node),
                    generation: Generation(9),
                },
            );
        }
        let status = ClusterStatus {
            node: id("a"),
            lease_until: Some(now + Duration::from_millis(1500)),
            lease_valid: true,
            state,
            roles: BTreeMap::from([
                (
                    1,
                    ConnectionRole {
                        confirmed: Some(SwitchRole::Master),
                        master: true,
                    },
                ),
                (
                    2,
                    ConnectionRole {
                        confirmed: Some(SwitchRole::Slave),
                        master: false,
                    },
                ),
                (
                    3,
                    ConnectionRole {
                        confirmed: None,
                        master: false,
                    },
                ),
            ]),
            role_counts: RoleCounts {
                gained: 2,
                lost: 1,
                refused_is_slave: 3,
                refused_stale: 1,
            },
            sessions: SessionCounts {
                restarts: 1,
                resumes: 4,
            },
        };
        let text = render(&status, now);
        for line in [
            "flowgate_cluster_leader{node=\"a\"} 1",
            "flowgate_cluster_lease_valid{node=\"a\"} 1",
            "flowgate_cluster_lease_remaining_seconds{node=\"a\"} 1.500",
            "flowgate_cluster_switches_assigned{node=\"a\"} 2",
            "flowgate_cluster_switches_mastered{node=\"a\"} 1",
            "flowgate_cluster_switch_role{node=\"a\",dpid=\"0000000000000001\",assigned=\"master\",confirmed=\"master\"} 1",
            "flowgate_cluster_switch_role{node=\"a\",dpid=\"0000000000000002\",assigned=\"slave\",confirmed=\"slave\"} 1",
            "flowgate_cluster_switch_role{node=\"a\",dpid=\"0000000000000003\",assigned=\"master\",confirmed=\"none\"} 1",
            "flowgate_cluster_mastership_changes_total{node=\"a\",change=\"gained\"} 2",
            "flowgate_cluster_mastership_changes_total{node=\"a\",change=\"lost\"} 1",
            "flowgate_cluster_fenced_total{node=\"a\",error=\"is_slave\"} 3",
            "flowgate_cluster_fenced_total{node=\"a\",error=\"stale\"} 1",
            "flowgate_cluster_session_restarts_total{node=\"a\"} 1",
            "flowgate_cluster_session_resumes_total{node=\"a\"} 4",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn without_a_lease_nothing_remains() {
        let now = Instant::now();
        let status = ClusterStatus {
            node: id("b"),
            lease_until: None,
            lease_valid: false,
            state: ClusterState::default(),
            roles: BTreeMap::new(),
            role_counts: RoleCounts::default(),
            sessions: SessionCounts::default(),
        };
        let text = render(&status, now);
        assert!(text.contains("flowgate_cluster_lease_remaining_seconds{node=\"b\"} 0.000\n"));
        assert!(text.contains("flowgate_cluster_leader{node=\"b\"} 0\n"));
        assert!(!text.contains("flowgate_cluster_switch_role{"));
    }
}
