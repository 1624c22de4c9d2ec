//! Who is who: controller nodes and switches.

use std::fmt;

/// A switch's datapath id, as in FEATURES_REPLY.
pub type Dpid = u64;

/// A controller node's id: the last segment of its membership key
/// (`/flowgate/cluster/nodes/<id>`), so it is non-empty and has no `/`.
///
/// Ids are ordered as strings; every tie in [`crate::assign()`] is broken by
/// that order, which is what makes every node compute the same answer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(String);

impl NodeId {
    /// `None` for an id that cannot be a key segment (empty, or with `/`).
    pub fn new(id: impl Into<String>) -> Option<NodeId> {
        let id = id.into();
        (!id.is_empty() && !id.contains('/')).then_some(NodeId(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_one_key_segment() {
        assert_eq!(NodeId::new("ctl-1").unwrap().as_str(), "ctl-1");
        assert!(NodeId::new("").is_none());
        assert!(NodeId::new("a/b").is_none());
    }
}
