//! One etcd member lost: the store and the cluster coordinator go on with
//! the other two, with no error, no lost or repeated watch event, no lost
//! lease. Against a real three-member etcd cluster on loopback, `#[ignore]`d
//! like the other etcd tests: `cargo test -p flowgate-controller
//! store::tests::etcd_members -- --ignored`.

use super::super::*;
use crate::cluster::{ClusterView, Coordinator, EtcdClusterConfig, EtcdCoordinator};
use flowgate_cluster::NodeId;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A three-member etcd cluster; members are killed (by the PIDs we
/// started) one by one, or all when dropped.
struct EtcdCluster {
    members: Vec<Option<Child>>,
    client_urls: Vec<String>,
    dir: tempfile::TempDir,
}

impl EtcdCluster {
    fn start() -> EtcdCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let peers: Vec<String> = (0..3)
            .map(|_| format!("http://127.0.0.1:{}", free_port()))
            .collect();
        let client_urls: Vec<String> = (0..3)
            .map(|_| format!("http://127.0.0.1:{}", free_port()))
            .collect();
        let initial: Vec<String> = peers
            .iter()
            .enumerate()
            .map(|(i, p)| format!("m{i}={p}"))
            .collect();
        let members = (0..3)
            .map(|i| {
                let log = std::fs::File::create(dir.path().join(format!("m{i}.log"))).unwrap();
                Command::new("etcd")
                    .args(["--name", &format!("m{i}"), "--data-dir"])
                    .arg(dir.path().join(format!("m{i}")))
                    .args(["--listen-client-urls", &client_urls[i]])
                    .args(["--advertise-client-urls", &client_urls[i]])
                    .args(["--listen-peer-urls", &peers[i]])
                    .args(["--initial-advertise-peer-urls", &peers[i]])
                    .args(["--initial-cluster", &initial.join(",")])
                    .args(["--initial-cluster-state", "new"])
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().unwrap())
                    .stderr(log)
                    .spawn()
                    .expect("etcd on PATH (apt-get install etcd-server)")
            })
            .map(Some)
            .collect();
        let cluster = EtcdCluster {
            members,
            client_urls,
            dir,
        };
        // Up once a write commits (it needs a leader and a quorum).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let store = EtcdStore::connect(&cluster.config(&[0, 1, 2], Duration::from_secs(1)));
            match store.and_then(|s| s.put("probe", b"up")) {
                Ok(()) => return cluster,
                Err(e) if Instant::now() > deadline => panic!(
                    "the etcd cluster did not come up within 30 s ({e}); logs in {:?}",
                    cluster.dir.path()
                ),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// A config listing the members in `order`.
    fn config(&self, order: &[usize], timeout: Duration) -> EtcdConfig {
        EtcdConfig {
            endpoints: order.iter().map(|&i| self.client_urls[i].clone()).collect(),
            prefix: "/flowgate/".into(),
            timeout,
            tls: None,
        }
    }

    /// The index of the member that leads now, as the members say.
    fn leader(&self) -> usize {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            for (i, url) in self.client_urls.iter().enumerate() {
                if self.members[i].is_none() {
                    continue;
                }
                let mut client = etcd_client::Client::connect([url], None).await.unwrap();
                let status = client.status().await.expect("a live member answers");
                let me = status.header().expect("a header").member_id();
                if status.leader() == me {
                    return i;
                }
            }
            panic!("no member leads")
        })
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

const TIMEOUT: Duration = Duration::from_secs(5);

/// An event as these checks compare it: revision 0 (see [`super::plain`]).
fn put_event(key: &str, value: &[u8]) -> StoreEvent {
    StoreEvent {
        key: key.into(),
        kind: EventKind::Put(value.to_vec()),
        revision: 0,
    }
}

/// Every event `rx` holds now, without revisions.
fn drain(rx: &mut broadcast::Receiver<StoreEvent>) -> Vec<StoreEvent> {
    std::iter::from_fn(|| rx.try_recv().ok())
        .map(super::plain)
        .collect()
}

#[test]
#[ignore = "needs etcd on PATH; tools/test-all.sh runs it (see README)"]
fn a_killed_member_is_transparent_to_reads_writes_and_the_watch() {
    let mut etcd = EtcdCluster::start();
    // `a` uses a follower first (the leader's loss is the next test);
    // `b` writes through another member, so `a`'s watch must bring
    // changes it did not make across the failover.
    let leader = etcd.leader();
    let used = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let a = EtcdStore::connect(&etcd.config(&[used, other, leader], TIMEOUT)).unwrap();
    let b = EtcdStore::connect(&etcd.config(&[other, leader, used], TIMEOUT)).unwrap();
    let mut rx = a.watch("k/");
    let mut wanted = Vec::new();
    let mut write = |i: usize| {
        let (key, value) = (format!("k/{i:02}"), format!("v{i}").into_bytes());
        let writer = if i.is_multiple_of(2) { &a } else { &b };
        writer
            .put(&key, &value)
            .unwrap_or_else(|e| panic!("write {i}: {e}"));
        assert_eq!(a.get(&key).unwrap(), Some(value.clone()), "read {i}");
        wanted.push(put_event(&key, &value));
    };
    for i in 0..10 {
        write(i);
    }
    etcd.kill(used);
    for i in 10..20 {
        write(i);
    }
    assert_eq!(a.list_prefix("k/").unwrap().len(), 20);
    // `b`'s last write is in `a`'s watch once `a` has seen a later
    // revision: `a`'s own write, which waits for its watch.
    a.put("k/zz", b"end").unwrap();
    wanted.push(put_event("k/zz", b"end"));
    assert_eq!(drain(&mut rx), wanted, "each write once, in order");
}

#[test]
#[ignore = "needs etcd on PATH; tools/test-all.sh runs it (see README)"]
fn writes_succeed_through_the_election_when_the_leader_is_killed() {
    let mut etcd = EtcdCluster::start();
    let leader = etcd.leader();
    let order = [leader, (leader + 1) % 3, (leader + 2) % 3];
    let store = EtcdStore::connect(&etcd.config(&order, TIMEOUT)).unwrap();
    let mut rx = store.watch("k/");
    store.put("k/before", b"1").unwrap();
    etcd.kill(leader);
    let killed = Instant::now();
    for i in 0..5 {
        let key = format!("k/{i}");
        store
            .put(&key, b"after")
            .unwrap_or_else(|e| panic!("write {i} after the leader died: {e}"));
    }
    eprintln!(
        "five writes done {} ms after the leader was killed (new leader: m{})",
        killed.elapsed().as_millis(),
        etcd.leader()
    );
    let mut wanted = vec![put_event("k/before", b"1")];
    wanted.extend((0..5).map(|i| put_event(&format!("k/{i}"), b"after")));
    assert_eq!(drain(&mut rx), wanted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd on PATH; tools/test-all.sh runs it (see README)"]
async fn coordinators_keep_their_leases_and_masters_when_their_member_dies() {
    const TTL: Duration = Duration::from_secs(2);
    let (mut etcd, leader) = tokio::task::spawn_blocking(|| {
        let etcd = EtcdCluster::start();
        let leader = etcd.leader();
        (etcd, leader)
    })
    .await
    .unwrap();
    // Both nodes use the leader: its loss is a failover and an election.
    let used = leader;
    let order = [used, (used + 1) % 3, (used + 2) % 3];
    let mut nodes = Vec::new();
    for id in ["a", "b"] {
        let node = EtcdCoordinator::start(EtcdClusterConfig {
            etcd: etcd.config(&order, Duration::from_secs(2)),
            node: NodeId::new(id).unwrap(),
            rest: format!("{id}:8080"),
            lease_ttl: TTL,
        })
        .await
        .unwrap();
        node.connected(1);
        node.connected(2);
        nodes.push(node);
    }
    let balanced = |v: &ClusterView| {
        let owners: std::collections::BTreeSet<_> =
            v.masters.values().map(|m| m.node.clone()).collect();
        v.masters.len() == 2 && owners.len() == 2 && v.lease_until.is_some()
    };
    let mut views = Vec::new();
    for node in &nodes {
        let mut view = node.view();
        tokio::time::timeout(Duration::from_secs(15), view.wait_for(balanced))
            .await
            .expect("balanced within 15 s")
            .unwrap();
        views.push(view);
    }
    let masters = views[0].borrow().masters.clone();
    for view in &mut views {
        view.mark_unchanged();
    }
    etcd.kill(used);
    // Three lease times: a node whose session ended would have shown a
    // view without a lease, and the leader would have moved its switch.
    let until = tokio::time::Instant::now() + TTL * 3;
    for (node, view) in nodes.iter().zip(&mut views) {
        while let Ok(changed) = tokio::time::timeout_at(until, view.changed()).await {
            changed.unwrap();
            let now = view.borrow_and_update().clone();
            assert!(
                now.lease_until.is_some(),
                "{} lost its lease: {:?}",
                node.node(),
                node.status()
            );
            assert_eq!(now.masters, masters, "{} saw mastership move", node.node());
        }
        assert!(node.status().lease_valid, "{}", node.node());
    }
}
