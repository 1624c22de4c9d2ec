//! The cluster's keys in etcd. One writer per key family:
//!
//! | key | written by | lease | value |
//! |-----|------------|-------|-------|
//! | `/flowgate/cluster/nodes/<node>` | that node | the node's | (free: address, version) |
//! | `/flowgate/cluster/connections/<node>/<dpid>` | that node, while the switch is connected to it | the node's | empty |
//! | `/flowgate/cluster/leader` | the node that created it (create if absent) | the leader's | leader's node id |
//! | `/flowgate/cluster/masters/<dpid>` | the leader only | none | master's node id; generation = the key's `mod_revision` |
//! | `/flowgate/cluster/applied/<node>/<module>` | that node, after following the module's store changes | the node's | JSON: the store revision followed, switches that did not confirm |
//! | `/flowgate/cluster/serial/<module>` | every REST write of the module, in the write's transaction | none | the writer's node id; guard = the key's `mod_revision` |
//! | `/flowgate/cluster/probe-secret` | the first node to start (create if absent) | none | 32 random bytes: the discovery probes' HMAC key |
//!
//! The leader writes a plan's moves in one transaction that compares the
//! leader key's create revision with its own: a leader that lost its lease
//! (and a successor took over) writes nothing. It never rewrites an
//! unchanged masters key, as that would change the switch's generation.
//!
//! Membership and connections ride on the node's lease, so a dead node's
//! keys vanish together and the leader sees one consistent change. Masters
//! keys have no lease: a switch keeps its master (and the master keeps its
//! fence generation) until the leader moves it, and the leader's death does
//! not wipe the assignment. Dpids are 16 hex digits, so keys sort as the
//! dpids do.

use crate::node::{Dpid, NodeId};

/// Prefix of membership keys.
pub const NODES: &str = "/flowgate/cluster/nodes/";
/// Prefix of connection keys.
pub const CONNECTIONS: &str = "/flowgate/cluster/connections/";
/// Prefix of masters keys.
pub const MASTERS: &str = "/flowgate/cluster/masters/";
/// The leader election key.
pub const LEADER: &str = "/flowgate/cluster/leader";
/// Prefix of the keys where nodes say how far they followed each module.
pub const APPLIED: &str = "/flowgate/cluster/applied/";
/// The secret every node signs and checks discovery probes with.
pub const PROBE_SECRET: &str = "/flowgate/cluster/probe-secret";

pub fn node(id: &NodeId) -> String {
    format!("{NODES}{id}")
}

pub fn connection(id: &NodeId, dpid: Dpid) -> String {
    format!("{CONNECTIONS}{id}/{dpid:016x}")
}

pub fn master(dpid: Dpid) -> String {
    format!("{MASTERS}{dpid:016x}")
}

pub fn applied(id: &NodeId, module: &str) -> String {
    format!("{APPLIED}{id}/{module}")
}

/// The (node, module) of an applied key.
pub fn parse_applied(key: &str) -> Option<(NodeId, String)> {
    let (node, module) = key.strip_prefix(APPLIED)?.split_once('/')?;
    let canonical = !module.is_empty() && !module.contains('/');
    canonical.then(|| Some((NodeId::new(node)?, module.to_owned())))?
}

/// The node of a membership key.
pub fn parse_node(key: &str) -> Option<NodeId> {
    NodeId::new(key.strip_prefix(NODES)?)
}

/// The (node, switch) of a connection key.
pub fn parse_connection(key: &str) -> Option<(NodeId, Dpid)> {
    let (node, dpid) = key.strip_prefix(CONNECTIONS)?.split_once('/')?;
    Some((NodeId::new(node)?, parse_dpid(dpid)?))
}

/// The switch of a masters key.
pub fn parse_master(key: &str) -> Option<Dpid> {
    parse_dpid(key.strip_prefix(MASTERS)?)
}

/// Exactly the spelling [`master`] writes (16 lowercase hex digits), so one
/// switch never has two keys.
fn parse_dpid(hex: &str) -> Option<Dpid> {
    let canonical = hex.len() == 16 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !canonical {
        return None;
    }
    Dpid::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let a = NodeId::new("a").unwrap();
        assert_eq!(node(&a), "/flowgate/cluster/nodes/a");
        assert_eq!(parse_node(&node(&a)), Some(a.clone()));
        assert_eq!(
            connection(&a, 0xab),
            "/flowgate/cluster/connections/a/00000000000000ab"
        );
        assert_eq!(parse_connection(&connection(&a, 0xab)), Some((a, 0xab)));
        assert_eq!(master(1), "/flowgate/cluster/masters/0000000000000001");
        assert_eq!(parse_master(&master(u64::MAX)), Some(u64::MAX));
        let b = NodeId::new("b").unwrap();
        assert_eq!(
            applied(&b, "firewall"),
            "/flowgate/cluster/applied/b/firewall"
        );
        assert_eq!(
            parse_applied(&applied(&b, "firewall")),
            Some((b, "firewall".into()))
        );
        assert_eq!(parse_applied("/flowgate/cluster/applied/b/fw/x"), None);
        assert_eq!(parse_applied("/flowgate/cluster/applied/b/"), None);
    }

    #[test]
    fn foreign_keys_are_not_parsed() {
        assert_eq!(parse_master("/flowgate/cluster/masters/1"), None);
        assert_eq!(
            parse_master("/flowgate/cluster/masters/+000000000000001"),
            None
        );
        assert_eq!(
            parse_master("/flowgate/cluster/masters/00000000000000AB"),
            None
        );
        assert_eq!(parse_node("/flowgate/cluster/nodes/a/b"), None);
        assert_eq!(parse_connection("/flowgate/cluster/connections/a"), None);
        assert_eq!(parse_node(LEADER), None);
    }

    #[test]
    fn dpid_keys_sort_as_dpids() {
        assert!(master(0x2) < master(0x10));
    }
}
