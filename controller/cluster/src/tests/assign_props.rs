//! The assignment: examples, then properties on random clusters.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::node;
use crate::{assign, commit, Dpid, Generation, Masters, Mastership, Move, NodeId, StaleRevision};

fn nodes(ids: &[&str]) -> BTreeSet<NodeId> {
    ids.iter().map(|id| node(id)).collect()
}

/// Every switch in `dpids` connected to every node in `ids`.
fn full(dpids: std::ops::Range<Dpid>, ids: &[&str]) -> BTreeMap<Dpid, BTreeSet<NodeId>> {
    dpids.map(|d| (d, nodes(ids))).collect()
}

fn masters_of(pairs: &[(Dpid, &str)]) -> Masters {
    pairs
        .iter()
        .map(|&(d, id)| {
            (
                d,
                Mastership {
                    node: node(id),
                    generation: Generation(1),
                },
            )
        })
        .collect()
}

fn loads(masters: &Masters) -> BTreeMap<NodeId, usize> {
    let mut loads = BTreeMap::new();
    for m in masters.values() {
        *loads.entry(m.node.clone()).or_default() += 1;
    }
    loads
}

/// Applies moves without caring for generations.
fn after(masters: &Masters, moves: &[Move]) -> Masters {
    let newest = masters.values().map(|m| m.generation.0).max().unwrap_or(0);
    commit(masters, moves, newest as i64 + 1).expect("a newer revision")
}

#[test]
fn nothing_connected_nothing_assigned() {
    assert_eq!(
        assign(&nodes(&["a"]), &BTreeMap::new(), &Masters::new()),
        vec![]
    );
}

#[test]
fn a_new_cluster_is_spread_lowest_id_first() {
    let connections = full(0..7, &["a", "b", "c"]);
    let moves = assign(&nodes(&["a", "b", "c"]), &connections, &Masters::new());
    assert_eq!(moves.len(), 7);
    let loads = loads(&after(&Masters::new(), &moves));
    assert_eq!(loads[&node("a")], 3);
    assert_eq!(loads[&node("b")], 2);
    assert_eq!(loads[&node("c")], 2);
}

#[test]
fn a_switch_nobody_live_reaches_loses_its_master() {
    let connections = BTreeMap::from([(1, nodes(&["b"]))]);
    let moves = assign(&nodes(&["a"]), &connections, &masters_of(&[(1, "b")]));
    assert_eq!(
        moves,
        vec![Move {
            dpid: 1,
            from: Some(node("b")),
            to: None
        }]
    );
}

#[test]
fn a_live_master_that_lost_the_connection_is_replaced() {
    let connections = BTreeMap::from([(1, nodes(&["b"]))]);
    let moves = assign(&nodes(&["a", "b"]), &connections, &masters_of(&[(1, "a")]));
    assert_eq!(
        moves,
        vec![Move {
            dpid: 1,
            from: Some(node("a")),
            to: Some(node("b"))
        }]
    );
}

#[test]
fn a_joining_node_takes_switches_up_to_the_bound() {
    let current = masters_of(&[(0, "a"), (1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "b")]);
    let moves = assign(
        &nodes(&["a", "b", "c"]),
        &full(0..6, &["a", "b", "c"]),
        &current,
    );
    assert_eq!(
        moves,
        vec![
            Move {
                dpid: 0,
                from: Some(node("a")),
                to: Some(node("c"))
            },
            Move {
                dpid: 3,
                from: Some(node("b")),
                to: Some(node("c"))
            },
        ]
    );
}

#[test]
fn a_node_only_some_switches_reach_gets_only_those() {
    // c reaches only switch 5; a and b reach all.
    let mut connections = full(0..6, &["a", "b"]);
    connections.get_mut(&5).unwrap().insert(node("c"));
    let moves = assign(&nodes(&["a", "b", "c"]), &connections, &Masters::new());
    let result = after(&Masters::new(), &moves);
    assert_eq!(result[&5].node, node("c"));
    let loads = loads(&result);
    assert_eq!((loads[&node("a")], loads[&node("b")]), (3, 2));
}

#[test]
fn commit_gives_moved_switches_the_revision_and_keeps_the_others() {
    let current: Masters = BTreeMap::from([
        (
            1,
            Mastership {
                node: node("a"),
                generation: Generation(5),
            },
        ),
        (
            2,
            Mastership {
                node: node("a"),
                generation: Generation(6),
            },
        ),
    ]);
    let moves = vec![Move {
        dpid: 1,
        from: Some(node("a")),
        to: Some(node("b")),
    }];
    let next = commit(&current, &moves, 9).unwrap();
    assert_eq!(next[&1].generation, Generation(9));
    assert_eq!(next[&1].node, node("b"));
    assert_eq!(next[&2], current[&2]);
    assert_eq!(
        commit(&current, &moves, 5),
        Err(StaleRevision {
            dpid: 1,
            previous: Generation(5),
            revision: 5
        })
    );
}

/// A random cluster: `n` nodes "n0".., which are live, which nodes each
/// switch reports a connection to, and the current masters (any node, live
/// or not, connected or not, or none).
#[derive(Debug, Clone)]
struct Cluster {
    live: BTreeSet<NodeId>,
    connections: BTreeMap<Dpid, BTreeSet<NodeId>>,
    masters: Masters,
}

fn cluster(full_mesh: bool) -> impl Strategy<Value = Cluster> {
    (1usize..6, 0usize..40).prop_flat_map(move |(n, switches)| {
        let ids: Vec<NodeId> = (0..n).map(|i| node(&format!("n{i}"))).collect();
        (
            proptest::collection::vec(proptest::bool::weighted(0.8), n),
            proptest::collection::vec(proptest::collection::vec(any::<bool>(), n), switches),
            proptest::collection::vec(proptest::option::of(0..n), switches),
        )
            .prop_map(move |(alive, reach, current)| {
                let live = ids
                    .iter()
                    .zip(&alive)
                    .filter(|(_, up)| **up)
                    .map(|(id, _)| id.clone())
                    .collect();
                let connections = reach
                    .iter()
                    .enumerate()
                    .map(|(dpid, r)| {
                        let set = ids
                            .iter()
                            .zip(r)
                            .filter(|(_, c)| full_mesh || **c)
                            .map(|(id, _)| id.clone())
                            .collect();
                        (dpid as Dpid, set)
                    })
                    .collect();
                let masters = current
                    .iter()
                    .enumerate()
                    .filter_map(|(dpid, m)| {
                        m.map(|i| {
                            (
                                dpid as Dpid,
                                Mastership {
                                    node: ids[i].clone(),
                                    generation: Generation(dpid as u64 + 1),
                                },
                            )
                        })
                    })
                    .collect();
                Cluster {
                    live,
                    connections,
                    masters,
                }
            })
    })
}

impl Cluster {
    fn eligible(&self, dpid: Dpid) -> BTreeSet<&NodeId> {
        self.connections
            .get(&dpid)
            .into_iter()
            .flatten()
            .filter(|n| self.live.contains(*n))
            .collect()
    }

    /// Checks the rules a result must meet (module docs of `assign`).
    fn check(&self, result: &Masters) -> Result<(), TestCaseError> {
        for &dpid in self.connections.keys() {
            let eligible = self.eligible(dpid);
            match result.get(&dpid) {
                Some(m) => prop_assert!(eligible.contains(&m.node), "{dpid}: {m:?}"),
                None => prop_assert!(eligible.is_empty(), "{dpid} has no master"),
            }
        }
        for dpid in result.keys() {
            prop_assert!(self.connections.contains_key(dpid));
        }
        let loads = loads(result);
        let load = |n: &NodeId| loads.get(n).copied().unwrap_or(0);
        for (dpid, m) in result {
            for other in self.eligible(*dpid) {
                prop_assert!(
                    load(&m.node) <= load(other) + 1,
                    "balance: {dpid} on {} ({}) while {other} ({}) could take it",
                    m.node,
                    load(&m.node),
                    load(other)
                );
            }
        }
        Ok(())
    }

    /// Fewest possible moves when every switch reaches every live node: the
    /// orphans, plus what each node holds above its final share, the larger
    /// shares going to the nodes that hold most.
    fn fewest_moves_full_mesh(&self) -> usize {
        let switches = self.connections.len();
        if self.live.is_empty() {
            return self.masters.len();
        }
        let mut kept: Vec<usize> = self
            .live
            .iter()
            .map(|n| self.masters.values().filter(|m| &m.node == n).count())
            .collect();
        kept.sort_unstable_by(|a, b| b.cmp(a));
        let (share, extra) = (switches / kept.len(), switches % kept.len());
        let orphans = switches - kept.iter().sum::<usize>();
        let over: usize = kept
            .iter()
            .enumerate()
            .map(|(i, &k)| k.saturating_sub(share + usize::from(i < extra)))
            .sum();
        orphans + over
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn assignments_meet_the_rules_and_are_idempotent(c in cluster(false)) {
        let moves = assign(&c.live, &c.connections, &c.masters);
        for m in &moves {
            prop_assert_eq!(m.from.as_ref(), c.masters.get(&m.dpid).map(|x| &x.node));
            prop_assert_ne!(m.from.as_ref(), m.to.as_ref());
        }
        let result = after(&c.masters, &moves);
        c.check(&result)?;
        // Assigning again moves nothing: a stable cluster never churns.
        prop_assert_eq!(assign(&c.live, &c.connections, &result), vec![]);
    }

    #[test]
    fn full_mesh_moves_the_fewest_switches(c in cluster(true)) {
        let moves = assign(&c.live, &c.connections, &c.masters);
        let result = after(&c.masters, &moves);
        c.check(&result)?;
        prop_assert_eq!(moves.len(), c.fewest_moves_full_mesh());
        let loads = loads(&result);
        if let (Some(max), Some(min)) = (
            c.live.iter().map(|n| loads.get(n).copied().unwrap_or(0)).max(),
            c.live.iter().map(|n| loads.get(n).copied().unwrap_or(0)).min(),
        ) {
            prop_assert!(max - min <= 1);
        }
    }

    #[test]
    fn a_dying_node_moves_only_its_switches(c in cluster(true), victim in 0usize..6) {
        // Start from the balanced assignment, then lose one live node.
        let balanced = after(&c.masters, &assign(&c.live, &c.connections, &c.masters));
        let Some(dead) = c.live.iter().nth(victim % c.live.len().max(1)).cloned() else {
            return Ok(());
        };
        let mut live = c.live.clone();
        live.remove(&dead);
        let moves = assign(&live, &c.connections, &balanced);
        for m in &moves {
            prop_assert_eq!(m.from.as_ref(), Some(&dead), "{:?}", m);
        }
        let owned = balanced.values().filter(|m| m.node == dead).count();
        prop_assert_eq!(moves.len(), owned);
    }

    #[test]
    fn every_move_carries_a_newer_generation(c in cluster(false), gap in 1i64..1000) {
        let moves = assign(&c.live, &c.connections, &c.masters);
        let newest = c.masters.values().map(|m| m.generation.0 as i64).max().unwrap_or(0);
        let next = commit(&c.masters, &moves, newest + gap).expect("a later revision");
        for m in &moves {
            if let (Some(new), Some(old)) = (next.get(&m.dpid), c.masters.get(&m.dpid)) {
                prop_assert!(new.generation.is_newer_than(old.generation));
            }
        }
        for (dpid, m) in &next {
            if !moves.iter().any(|mv| mv.dpid == *dpid) {
                prop_assert_eq!(Some(m), c.masters.get(dpid));
            }
        }
    }
}
