//! Which node masters which switch: a pure function the cluster leader runs.
//!
//! Inputs are what the leader reads from etcd: the live nodes (membership
//! keys, which vanish with their lease), the nodes each switch is connected
//! to (connection keys, on the same leases) and the current masters (the
//! masters keys). The output is the list of [`Move`]s to write, in one
//! transaction; [`commit`] is what the keys hold afterwards.
//!
//! Rules, and why:
//! 1. **Exactly one master** for every switch connected to at least one
//!    live node, chosen among the live nodes connected to it (only a node
//!    with a connection can send ROLE_REQUEST). A switch no live node is
//!    connected to has no master (its key is deleted).
//! 2. **No churn.** A master that is live and connected keeps its switch
//!    unless the balance bound (3) forces a move. A master change is cheap
//!    (the new master adopts the switch's tables) but not free: a full flow
//!    dump and a window in which nobody writes.
//! 3. **Balance bound:** for every switch, its master masters at most one
//!    switch more than any other live node connected to that switch. It is a
//!    bound on single moves ("no one move can even things out further"),
//!    always reachable whatever the connections, and it is the usual
//!    `max load - min load <= 1` when every switch connects to every node,
//!    which is how the cluster is deployed. With partial connectivity a
//!    chain of moves could sometimes lower the maximum further; we do not
//!    chase that, as each link of the chain is one more master change.
//! 4. **Fewest moves.** Switches without a valid master (orphans) go to the
//!    least-loaded eligible node; then, while the bound is broken, one switch
//!    moves from its master to an eligible node with two or more switches
//!    fewer, preferring switches that are moving anyway (an orphan placed a
//!    moment ago), then the largest gap. Every move strictly lowers the sum
//!    of squared loads, so the loop ends and never moves a switch back and
//!    forth. So a joining node takes switches only up to the bound, and a
//!    dying node's switches are spread over the others; with full
//!    connectivity only they move, and the number of moves is the minimum
//!    (the tests check both against a computed optimum).
//! 5. **Deterministic.** Every choice is made in a fixed order: least load,
//!    then the lowest node id (string order); among rebalancing moves, the
//!    lowest dpid, then the lowest node id. Any node computing the plan from
//!    the same keys gets the same moves, so a newly elected leader does not
//!    undo its predecessor's work.

use std::collections::{BTreeMap, BTreeSet};

use crate::generation::Generation;
use crate::node::{Dpid, NodeId};

/// A switch's master and the generation id it asserts mastership with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mastership {
    pub node: NodeId,
    pub generation: Generation,
}

/// Every switch's mastership: what the masters keys hold.
pub type Masters = BTreeMap<Dpid, Mastership>;

/// One switch changing master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub dpid: Dpid,
    /// The master it had (possibly a dead node); `None` if it had none.
    pub from: Option<NodeId>,
    /// Its new master; `None` when no live node is connected to it any more
    /// (the masters key is deleted).
    pub to: Option<NodeId>,
}

/// The moves that bring `masters` to a valid, balanced assignment (see the
/// module docs), in dpid order; empty when it already is one.
/// `connections` lists, per switch, the nodes that reported a connection to
/// it; nodes not in `live` are ignored there.
pub fn assign(
    live: &BTreeSet<NodeId>,
    connections: &BTreeMap<Dpid, BTreeSet<NodeId>>,
    masters: &Masters,
) -> Vec<Move> {
    let eligible: BTreeMap<Dpid, Vec<&NodeId>> = connections
        .iter()
        .map(|(&dpid, nodes)| (dpid, nodes.iter().filter(|n| live.contains(*n)).collect()))
        .filter(|(_, nodes): &(Dpid, Vec<&NodeId>)| !nodes.is_empty())
        .collect();
    let mut loads: BTreeMap<&NodeId, usize> = live.iter().map(|n| (n, 0)).collect();
    let mut chosen: BTreeMap<Dpid, &NodeId> = BTreeMap::new();

    let mut orphans = Vec::new();
    for (&dpid, nodes) in &eligible {
        match masters.get(&dpid) {
            Some(m) if nodes.contains(&&m.node) => {
                chosen.insert(dpid, &m.node);
                *loads.entry(&m.node).or_default() += 1;
            }
            _ => orphans.push(dpid),
        }
    }
    for dpid in orphans {
        // `eligible` is never empty, and lists nodes in id order: min_by_key
        // keeps the first of equals, i.e. the lowest id.
        if let Some(&node) = eligible[&dpid].iter().min_by_key(|n| loads[**n]) {
            chosen.insert(dpid, node);
            *loads.entry(node).or_default() += 1;
        }
    }
    rebalance(&eligible, masters, &mut chosen, &mut loads);

    let mut moves = Vec::new();
    for (&dpid, old) in masters {
        if !chosen.contains_key(&dpid) {
            moves.push(Move {
                dpid,
                from: Some(old.node.clone()),
                to: None,
            });
        }
    }
    for (&dpid, &node) in &chosen {
        let from = masters.get(&dpid).map(|m| &m.node);
        if from != Some(node) {
            moves.push(Move {
                dpid,
                from: from.cloned(),
                to: Some(node.clone()),
            });
        }
    }
    moves.sort_by_key(|m| m.dpid);
    moves
}

/// Moves switches one at a time until no switch's master has two or more
/// switches more than another eligible node (rule 4 of the module docs).
fn rebalance<'a>(
    eligible: &BTreeMap<Dpid, Vec<&'a NodeId>>,
    masters: &Masters,
    chosen: &mut BTreeMap<Dpid, &'a NodeId>,
    loads: &mut BTreeMap<&'a NodeId, usize>,
) {
    loop {
        // (moving anyway, gap) ranks candidates; the first of equals wins,
        // and candidates come in (dpid, node id) order.
        let mut best: Option<((bool, usize), Dpid, &'a NodeId)> = None;
        for (&dpid, &from) in chosen.iter() {
            let moving_anyway = masters.get(&dpid).map(|m| &m.node) != Some(from);
            for &to in &eligible[&dpid] {
                let gap = loads[from].saturating_sub(loads[to]);
                let rank = (moving_anyway, gap);
                if gap >= 2 && best.as_ref().is_none_or(|(r, _, _)| rank > *r) {
                    best = Some((rank, dpid, to));
                }
            }
        }
        let Some((_, dpid, to)) = best else { return };
        if let Some(from) = chosen.insert(dpid, to) {
            *loads.entry(from).or_default() -= 1;
        }
        *loads.entry(to).or_default() += 1;
    }
}

/// A move's generation was not newer than the mastership it replaces: the
/// revision given to [`commit`] is not the one of a later write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleRevision {
    pub dpid: Dpid,
    pub previous: Generation,
    pub revision: i64,
}

/// The masters after `moves` were written in one transaction at etcd
/// `revision`: moved switches get that revision as their generation,
/// the others keep theirs (the switch keeps trusting their master).
pub fn commit(masters: &Masters, moves: &[Move], revision: i64) -> Result<Masters, StaleRevision> {
    let generation = Generation::from_revision(revision);
    let mut next = masters.clone();
    for m in moves {
        if let Some(previous) = masters.get(&m.dpid) {
            if !generation.is_newer_than(previous.generation) {
                return Err(StaleRevision {
                    dpid: m.dpid,
                    previous: previous.generation,
                    revision,
                });
            }
        }
        match &m.to {
            Some(node) => {
                next.insert(
                    m.dpid,
                    Mastership {
                        node: node.clone(),
                        generation,
                    },
                );
            }
            None => {
                next.remove(&m.dpid);
            }
        }
    }
    Ok(next)
}
