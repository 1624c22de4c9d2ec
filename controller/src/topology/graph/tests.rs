use super::*;

/// Links `(a, port_a) - (b, port_b)`.
fn links(spec: &[(u64, u32, u64, u32)]) -> Vec<Link> {
    spec.iter()
        .map(|&(a, pa, b, pb)| Link::new(Endpoint::new(a, pa), Endpoint::new(b, pb)))
        .collect()
}

/// s1..sn in a ring: port 2 to the next switch, port 3 to the previous one
/// (port 1 is a host), as the lab's `ring,n` wires it.
fn ring(n: u64) -> NetGraph {
    let spec: Vec<_> = (1..=n).map(|i| (i, 2, i % n + 1, 3)).collect();
    NetGraph::new(1..=n, links(&spec))
}

/// The lab's k=4 fat-tree: cores 1..4; pod p (0..4) has aggregation
/// switches 5+4p, 6+4p and edge switches 7+4p, 8+4p. Edge ports 1, 2 are
/// hosts, 3, 4 go up; aggregation ports 1, 2 go down, 3, 4 up; core port
/// p+1 goes to pod p.
fn fat_tree() -> NetGraph {
    let mut spec = Vec::new();
    for p in 0..4u64 {
        for a in 0..2u64 {
            let agg = 5 + 4 * p + a;
            for e in 0..2u64 {
                let edge = 7 + 4 * p + e;
                spec.push((edge, 3 + a as u32, agg, 1 + e as u32));
            }
            for c in 0..2u64 {
                let core = 1 + 2 * a + c;
                spec.push((agg, 3 + c as u32, core, 1 + p as u32));
            }
        }
    }
    NetGraph::new(1..=20, links(&spec))
}

/// Follows `routes` from `from` until `dst`; panics on a loop or dead end.
fn walk(g: &NetGraph, routes: &BTreeMap<u64, u32>, from: u64, dst: u64) -> usize {
    let mut at = from;
    let mut hops = 0;
    while at != dst {
        let port = routes[&at];
        at = g.far_end(Endpoint::new(at, port)).unwrap().dpid;
        hops += 1;
        assert!(hops <= g.switches().count(), "loop from {from} to {dst}");
    }
    hops
}

/// A spanning tree has n - components links and reaches every switch.
fn assert_spanning(g: &NetGraph, tree: &BTreeSet<Link>, components: usize) {
    let n = g.switches().count();
    assert_eq!(tree.len(), n - components);
    let tree_graph = NetGraph::new(g.switches(), tree.iter().copied());
    let mut reached = BTreeSet::new();
    for s in g.switches() {
        let d = tree_graph.distances_to(s);
        reached.insert(d.len());
    }
    // In a forest every node reaches exactly its component; with one
    // component every node reaches all n.
    if components == 1 {
        assert_eq!(reached, BTreeSet::from([n]));
    }
}

#[test]
fn ring_distances_go_the_short_way() {
    let g = ring(5);
    let d = g.distances_to(1);
    assert_eq!(d, BTreeMap::from([(1, 0), (2, 1), (3, 2), (4, 2), (5, 1)]));
    let hops = g.next_hops(1);
    assert_eq!(hops[&2], vec![3], "s2 reaches s1 through its port 3");
    assert_eq!(hops[&5], vec![2], "s5 reaches s1 through its port 2");
}

#[test]
fn routes_are_loop_free_for_every_destination_and_hash() {
    for g in [ring(5), ring(6), fat_tree()] {
        for dst in g.switches() {
            let dist = g.distances_to(dst);
            for hash in 0..32u64 {
                let routes = g.routes_to(dst, hash);
                for src in g.switches() {
                    assert_eq!(walk(&g, &routes, src, dst), dist[&src] as usize);
                }
            }
        }
    }
}

#[test]
fn fat_tree_offers_equal_cost_paths_and_spreads_them() {
    let g = fat_tree();
    // Edge switch 7 (pod 0) to edge switch 20 (pod 3): both uplinks are
    // shortest (4 hops either way).
    assert_eq!(g.distances_to(20)[&7], 4);
    assert_eq!(g.next_hops(20)[&7], vec![3, 4]);
    // Aggregation switch 5 has both of its cores as choices.
    assert_eq!(g.next_hops(20)[&5], vec![3, 4]);
    let chosen: BTreeSet<u32> = (0..64u64).map(|h| g.routes_to(20, h)[&7]).collect();
    assert_eq!(chosen, BTreeSet::from([3, 4]), "hashes use both uplinks");
}

#[test]
fn path_lists_every_hop_with_ports() {
    let g = ring(5);
    let src = Endpoint::new(1, 1);
    let dst = Endpoint::new(3, 1);
    let path = g.path(src, dst, 7).unwrap();
    assert_eq!(
        path,
        vec![
            Hop {
                dpid: 1,
                in_port: 1,
                out_port: 2
            },
            Hop {
                dpid: 2,
                in_port: 3,
                out_port: 2
            },
            Hop {
                dpid: 3,
                in_port: 3,
                out_port: 1
            },
        ]
    );
    // Same switch: one hop.
    let local = g.path(Endpoint::new(4, 1), Endpoint::new(4, 5), 0).unwrap();
    assert_eq!(local.len(), 1);
    assert_eq!((local[0].in_port, local[0].out_port), (1, 5));
}

#[test]
fn path_follows_the_routes_forwarding_installs() {
    let g = fat_tree();
    for hash in 0..16u64 {
        let routes = g.routes_to(20, hash);
        let path = g
            .path(Endpoint::new(7, 1), Endpoint::new(20, 2), hash)
            .unwrap();
        assert_eq!(path.len(), 5);
        for hop in &path[..4] {
            assert_eq!(routes[&hop.dpid], hop.out_port);
        }
    }
}

#[test]
fn unreachable_has_no_path() {
    let g = NetGraph::new([1, 2, 3], links(&[(1, 1, 2, 1)]));
    assert_eq!(g.path(Endpoint::new(1, 5), Endpoint::new(3, 5), 0), None);
    assert!(!g.next_hops(3).contains_key(&1));
}

#[test]
fn spanning_tree_breaks_every_loop() {
    let g = ring(5);
    let tree = g.spanning_tree();
    assert_spanning(&g, &tree, 1);
    // Rooted at s1, breadth-first: the link opposite s1 (s3-s4) is cut.
    assert!(!tree.contains(&Link::new(Endpoint::new(3, 2), Endpoint::new(4, 3))));
    let g = fat_tree();
    assert_spanning(&g, &g.spanning_tree(), 1);
}

#[test]
fn spanning_tree_does_not_depend_on_discovery_order() {
    let mut spec: Vec<_> = (1..=6u64).map(|i| (i, 2, i % 6 + 1, 3)).collect();
    spec.push((1, 4, 4, 4)); // a chord
    let forward = NetGraph::new(1..=6, links(&spec));
    spec.reverse();
    let backward = NetGraph::new((1..=6).rev(), links(&spec));
    assert_eq!(forward.spanning_tree(), backward.spanning_tree());
    for hash in 0..8 {
        assert_eq!(forward.routes_to(4, hash), backward.routes_to(4, hash));
    }
}

#[test]
fn parallel_links_and_islands() {
    // s1 = s2 twice, s3 alone, s4 - s5.
    let g = NetGraph::new(
        1..=5,
        links(&[(1, 1, 2, 1), (1, 2, 2, 2), (4, 1, 5, 1), (4, 1, 5, 1)]),
    );
    let tree = g.spanning_tree();
    assert_spanning(&g, &tree, 3);
    assert!(tree.contains(&Link::new(Endpoint::new(1, 1), Endpoint::new(2, 1))));
    assert!(!tree.contains(&Link::new(Endpoint::new(1, 2), Endpoint::new(2, 2))));
    assert_eq!(
        tree_ports(&tree),
        BTreeSet::from([
            Endpoint::new(1, 1),
            Endpoint::new(2, 1),
            Endpoint::new(4, 1),
            Endpoint::new(5, 1)
        ])
    );
    // Both parallel links are shortest to s2.
    assert_eq!(g.next_hops(2)[&1], vec![1, 2]);
}

#[test]
fn links_to_unknown_switches_and_self_loops_are_ignored() {
    let g = NetGraph::new([1, 2], links(&[(1, 1, 2, 1), (2, 2, 9, 1), (1, 3, 1, 4)]));
    assert_eq!(g.neighbours(1), vec![(1, Endpoint::new(2, 1))]);
    assert_eq!(g.neighbours(2), vec![(1, Endpoint::new(1, 1))]);
    assert!(g.neighbours(9).is_empty());
}
