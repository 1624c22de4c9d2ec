//! Clustered controllers (issue 22) in one process: two runtimes, nodes
//! `a` and `b`, share one in-memory coordinator and connect to one fake
//! switch over real OpenFlow connections. The switch keeps the OpenFlow 1.3
//! role rules (`testing::wire`); the test plays etcd and the leader.
//!
//! The runtimes run `Poke`, whose calls send one PACKET_OUT (a write the
//! test can make on any node at any time), and `Learner`, which answers a
//! packet-in as reactive forwarding does: it declares an entry towards the
//! packet's source and sends the packet back out. The pipeline's core
//! entries are what a master installs at first.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use flowgate_cluster::SwitchRole;
use flowgate_controller::cluster::{
    shared_async_config, ConnectionRole, Coordinator, MemoryCluster, MemoryNode, RoleCounts,
};
use flowgate_controller::cookie::Owner;
use flowgate_controller::desired::{output_to, FlowEntry, FlowSpec};
use flowgate_controller::module::{Ctx, Event, Module, Scope};
use flowgate_controller::pipeline::{core_entries, FORWARD};
use flowgate_controller::runtime::{Runtime, RuntimeConfig};
use flowgate_controller::store::MemoryStore;
use flowgate_controller::testing::wire::{self, SharedSwitch, WireSwitch};
use flowgate_openflow::{
    self as of, controller_role, MacAddr, Match, Message, Oxm, PacketOut, RoleMsg,
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::timeout;

const DPID: u64 = 0xc1;
const WAIT: Duration = Duration::from_secs(10);
/// How long a write that must not happen is given to show up anyway.
const QUIET: Duration = Duration::from_millis(300);

/// A module whose calls write one PACKET_OUT.
struct Poke;

impl Module for Poke {
    fn owner(&self) -> Owner {
        Owner::Qos
    }

    fn handle(&mut self, _: &Event<'_>, _: &mut Ctx) {}
}

/// Learns a packet-in's source: an entry in `forward` towards its port,
/// and the packet sent on out of that port. Counts what it heard.
#[derive(Default)]
struct Learner {
    heard: Arc<AtomicUsize>,
}

const LEARNED: Scope = Scope::new("learned", 0);

fn learned_entry(mac: MacAddr, port: u32) -> FlowEntry {
    FlowEntry::new(
        FORWARD,
        100,
        Match::new().with(Oxm::EthDst(mac, None)),
        FlowSpec::new(Owner::Forwarding.cookie(mac.to_u64()), output_to(port)),
    )
}

impl Module for Learner {
    fn owner(&self) -> Owner {
        Owner::Forwarding
    }

    fn handle(&mut self, event: &Event<'_>, ctx: &mut Ctx) {
        let Event::PacketIn { dpid, packet_in } = event else {
            return;
        };
        self.heard.fetch_add(1, Ordering::SeqCst);
        let (Some(port), Some(src)) = (packet_in.in_port(), packet_in.data.get(6..12)) else {
            return;
        };
        let mac = MacAddr(src.try_into().unwrap());
        ctx.declare_flows(*dpid, LEARNED, [learned_entry(mac, port)]);
        ctx.packet_out(
            *dpid,
            PacketOut {
                buffer_id: packet_in.buffer_id,
                in_port: port,
                actions: vec![of::Action::Output {
                    port: of::port_no::FLOOD,
                    max_len: 0,
                }],
                data: packet_in.data.clone(),
            },
        );
    }
}

struct Node {
    runtime: Runtime,
    addr: SocketAddr,
    cluster: Option<Arc<MemoryNode>>,
    /// Packet-ins its `Learner` heard.
    heard: Arc<AtomicUsize>,
}

impl Node {
    async fn start(cluster: Option<Arc<MemoryNode>>) -> Node {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = RuntimeConfig {
            cluster: cluster.clone().map(|c| c as _),
            // No discovery here: a node offers itself at once.
            probe_round: Duration::ZERO,
            ..RuntimeConfig::default()
        };
        let learner = Learner::default();
        let heard = learner.heard.clone();
        let modules: Vec<Box<dyn Module>> = vec![Box::new(Poke), Box::new(learner)];
        let runtime = Runtime::start(listener, config, modules, Arc::new(MemoryStore::default()));
        Node {
            runtime,
            addr,
            cluster,
            heard,
        }
    }

    /// The switch's role as this node's core recorded it, and its counts.
    fn roles(&self) -> (Option<ConnectionRole>, RoleCounts) {
        let book = self.cluster.as_ref().and_then(|c| c.roles()).unwrap();
        let (switches, counts) = book.snapshot();
        (switches.get(&DPID).copied(), counts)
    }

    async fn poke(&self) {
        self.runtime
            .call::<Poke, _>(|_, ctx| {
                ctx.packet_out(
                    DPID,
                    PacketOut {
                        buffer_id: of::NO_BUFFER,
                        in_port: of::port_no::CONTROLLER,
                        actions: vec![],
                        data: Bytes::from_static(&[0; 60]),
                    },
                )
            })
            .await
            .unwrap();
    }
}

fn role(role: u32, generation_id: u64) -> RoleMsg {
    RoleMsg {
        role,
        generation_id,
    }
}

async fn wait_for(switch: &SharedSwitch, what: &str, cond: impl Fn(&WireSwitch) -> bool) {
    let met = timeout(WAIT, async {
        while !cond(&switch.lock().unwrap()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    if met.is_err() {
        let s = switch.lock().unwrap();
        let log: Vec<_> = s
            .received
            .iter()
            .zip(&s.senders)
            .map(|(m, c)| (c, m.msg_type()))
            .collect();
        panic!(
            "not met in time: {what}; roles {:?}, refused {:?}, log {log:?}",
            s.roles, s.refused_is_slave
        );
    }
}

fn packet_outs_from(switch: &WireSwitch, conn: usize) -> usize {
    switch
        .received
        .iter()
        .zip(&switch.senders)
        .filter(|(m, c)| **c == conn && matches!(m, Message::PacketOut(_)))
        .count()
}

/// Two nodes of one cluster, the switch connected to both (connection 0 to
/// `a`, 1 to `b`), no master assigned yet. The switch starts empty, so
/// the master's full reconciliation writes every core entry.
struct Lab {
    cluster: Arc<MemoryCluster>,
    a: Node,
    b: Node,
    switch: SharedSwitch,
    _links: Vec<JoinHandle<()>>,
}

impl Lab {
    async fn start() -> Lab {
        let cluster = MemoryCluster::new();
        let a = Node::start(Some(cluster.join("a"))).await;
        let b = Node::start(Some(cluster.join("b"))).await;
        let switch = WireSwitch::shared(DPID);
        switch.lock().unwrap().switch.flows.clear();
        let mut links = vec![wire::spawn(a.addr, switch.clone())];
        wait_for(&switch, "a connected", |s| s.roles.len() == 1).await;
        links.push(wire::spawn(b.addr, switch.clone()));
        let reported = timeout(WAIT, async {
            while cluster.connections(DPID).len() < 2 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(reported.is_ok(), "both nodes report the switch");
        Lab {
            cluster,
            a,
            b,
            switch,
            _links: links,
        }
    }

    /// The leader makes `a` master (generation 1) and waits until `a`
    /// wrote the core entries.
    async fn a_master(&self) {
        let moves = self.cluster.lead();
        assert_eq!(moves.len(), 1);
        assert_eq!(moves[0].to.as_ref().unwrap().as_str(), "a");
        let n = core_entries().len();
        wait_for(&self.switch, "a wrote the core entries", |s| {
            s.flow_mods_from(0) == n && s.switch.flows.len() == n
        })
        .await;
    }
}

#[tokio::test]
async fn only_the_assigned_master_writes() {
    let lab = Lab::start().await;
    {
        // Connected, no master assigned: nobody asks, nobody writes.
        let s = lab.switch.lock().unwrap();
        assert!(s.role_requests_from(0).is_empty() && s.role_requests_from(1).is_empty());
        assert_eq!(s.flow_mods_from(0) + s.flow_mods_from(1), 0);
    }
    let acting = |lab: &Lab| {
        (
            lab.a.runtime.is_cluster_actor(),
            lab.b.runtime.is_cluster_actor(),
        )
    };
    assert_eq!(acting(&lab), (false, false), "no master, no actor");

    lab.a_master().await;
    assert_eq!(
        acting(&lab),
        (true, false),
        "the master acts for the cluster"
    );
    wait_for(&lab.switch, "b asked to be a slave", |s| {
        s.roles.get(&1) == Some(&SwitchRole::Slave)
    })
    .await;
    {
        let s = lab.switch.lock().unwrap();
        assert_eq!(s.role_requests_from(0), [role(controller_role::MASTER, 1)]);
        assert_eq!(s.role_requests_from(1), [role(controller_role::SLAVE, 1)]);
        assert_eq!(s.roles.get(&0), Some(&SwitchRole::Master));
        assert_eq!(s.flow_mods_from(1), 0);
    }

    // A write on each node: only the master's reaches the switch.
    lab.b.poke().await;
    lab.a.poke().await;
    wait_for(&lab.switch, "a's packet-out", |s| {
        packet_outs_from(s, 0) == 1
    })
    .await;
    tokio::time::sleep(QUIET).await;
    let s = lab.switch.lock().unwrap();
    assert_eq!(packet_outs_from(&s, 1), 0);
    assert!(s.refused_is_slave.is_empty(), "b did not even try");
}

#[tokio::test]
async fn failover_moves_the_switch_and_the_new_master_adopts_its_tables() {
    let lab = Lab::start().await;
    lab.a_master().await;
    // One wanted entry goes missing from the switch meanwhile.
    let lost = core_entries()[0].key.clone();
    assert!(lab.switch.lock().unwrap().switch.lose(&lost));

    // `a` dies: its lease expires (it stops writing), the leader moves the
    // switch to `b` at a newer generation.
    assert!(lab.a.runtime.is_cluster_actor());
    lab.cluster.expire("a");
    assert!(!lab.a.runtime.is_cluster_actor(), "its lease ran out");
    let moves = lab.cluster.lead();
    assert_eq!(moves.len(), 1);
    assert_eq!(moves[0].to.as_ref().unwrap().as_str(), "b");
    let generation = lab.cluster.masters()[&DPID].generation.0;
    assert!(generation > 1);
    assert!(lab.b.runtime.is_cluster_actor(), "the new master acts");

    let n = core_entries().len();
    wait_for(&lab.switch, "b restored the lost entry", |s| {
        s.switch.flows.len() == n
    })
    .await;
    tokio::time::sleep(QUIET).await;
    let s = lab.switch.lock().unwrap();
    assert_eq!(s.roles.get(&1), Some(&SwitchRole::Master));
    assert_eq!(
        s.role_requests_from(1).last(),
        Some(&role(controller_role::MASTER, generation))
    );
    // The adoption: exactly one FLOW_MOD, for the missing entry; nothing
    // already installed was written again.
    let written: Vec<_> = s
        .received
        .iter()
        .zip(&s.senders)
        .filter_map(|(m, c)| match m {
            Message::FlowMod(fm) if *c == 1 => Some(fm),
            _ => None,
        })
        .collect();
    assert_eq!(written.len(), 1, "b wrote only the missing entry");
    assert_eq!(&written[0].match_, lost.match_());
    assert_eq!(written[0].priority, lost.priority);
    // `a` stepped down on the switch as well.
    assert!(s
        .role_requests_from(0)
        .iter()
        .any(|r| r.role == controller_role::SLAVE));
    assert_eq!(s.flow_mods_from(0), n);
}

#[tokio::test]
async fn a_slave_hears_packet_ins_learns_and_declares_and_writes_only_once_master() {
    let lab = Lab::start().await;
    lab.a_master().await;
    wait_for(&lab.switch, "b is a slave", |s| {
        s.roles.get(&1) == Some(&SwitchRole::Slave)
    })
    .await;
    {
        // Both nodes asked for every packet-in in either role.
        let s = lab.switch.lock().unwrap();
        assert_eq!(s.async_configs.get(&0), Some(&shared_async_config()));
        assert_eq!(s.async_configs.get(&1), Some(&shared_async_config()));
    }

    // A host's first packet, copied to the controllers by a Flowgate entry.
    let host = MacAddr([2, 0, 0, 0, 0, 7]);
    let mut frame = vec![0xff; 6];
    frame.extend_from_slice(&host.0);
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.resize(60, 0);
    lab.switch.lock().unwrap().packet_in(&of::PacketIn {
        buffer_id: of::NO_BUFFER,
        total_len: 60,
        reason: of::PacketInReason::Action,
        table_id: 0,
        cookie: Owner::Forwarding.cookie(1),
        match_: Match::new().with(Oxm::InPort(3)),
        data: Bytes::from(frame),
    });
    let learned = learned_entry(host, 3);
    wait_for(&lab.switch, "a installed the learned entry", |s| {
        s.switch.flows.len() == core_entries().len() + 1 && packet_outs_from(s, 0) == 1
    })
    .await;
    let heard = timeout(WAIT, async {
        while lab.b.heard.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(heard.is_ok(), "the slave heard the packet-in");
    tokio::time::sleep(QUIET).await;
    {
        // The slave learned and declared the same, and sent nothing.
        let s = lab.switch.lock().unwrap();
        assert_eq!(lab.a.heard.load(Ordering::SeqCst), 1);
        assert_eq!(lab.b.heard.load(Ordering::SeqCst), 1);
        assert_eq!(s.flow_mods_from(1), 0);
        assert_eq!(packet_outs_from(&s, 1), 0);
        assert!(s.refused_is_slave.is_empty(), "b did not even try");
    }

    // The learned entry goes missing; `a` dies and `b` becomes master: it
    // writes exactly the entry it learned as a slave, nothing else.
    assert!(lab.switch.lock().unwrap().switch.lose(&learned.key));
    lab.cluster.expire("a");
    let moves = lab.cluster.lead();
    assert_eq!(moves[0].to.as_ref().unwrap().as_str(), "b");
    wait_for(&lab.switch, "b restored the learned entry", |s| {
        s.switch.flows.len() == core_entries().len() + 1
    })
    .await;
    let b_wrote = timeout(WAIT, async {
        while packet_outs_from(&lab.switch.lock().unwrap(), 1) == 0 {
            lab.b.poke().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(b_wrote.is_ok(), "b writes as master");
    let s = lab.switch.lock().unwrap();
    let written: Vec<_> = s
        .received
        .iter()
        .zip(&s.senders)
        .filter_map(|(m, c)| match m {
            Message::FlowMod(fm) if *c == 1 => Some(fm),
            _ => None,
        })
        .collect();
    assert_eq!(written.len(), 1, "b wrote only the learned entry");
    assert_eq!(&written[0].match_, learned.key.match_());
    assert_eq!(written[0].cookie, learned.spec.cookie);
}

#[tokio::test]
async fn a_master_whose_lease_runs_out_stops_writing_and_steps_down_at_the_deadline() {
    let lab = Lab::start().await;
    lab.a_master().await;
    lab.a.poke().await;
    wait_for(&lab.switch, "a's packet-out", |s| {
        packet_outs_from(s, 0) == 1
    })
    .await;

    // No keepalive is acknowledged past this deadline; nothing else
    // happens, so only the core's lease timer can act on it.
    lab.cluster
        .lease_until("a", Instant::now() + Duration::from_millis(200));
    wait_for(&lab.switch, "a stepped down to SLAVE", |s| {
        s.roles.get(&0) == Some(&SwitchRole::Slave)
    })
    .await;
    assert_eq!(
        lab.switch.lock().unwrap().role_requests_from(0).last(),
        Some(&role(controller_role::SLAVE, 1))
    );
    lab.a.poke().await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(packet_outs_from(&lab.switch.lock().unwrap(), 0), 1);
}

#[tokio::test]
async fn a_partitioned_master_is_fenced_by_the_switch() {
    let lab = Lab::start().await;
    lab.a_master().await;

    // `a` is cut off from etcd: its lease ends there, but `a` hears nothing
    // and still believes it is master. The leader moves the switch to `b`.
    lab.cluster.partition("a");
    let moves = lab.cluster.lead();
    assert_eq!(moves[0].to.as_ref().unwrap().as_str(), "b");
    wait_for(&lab.switch, "b is master, a demoted by the switch", |s| {
        s.roles.get(&1) == Some(&SwitchRole::Master) && s.roles.get(&0) == Some(&SwitchRole::Slave)
    })
    .await;

    // `a` writes: refused (IS_SLAVE). It stops, asks MASTER again at its
    // old generation and is told STALE.
    lab.a.poke().await;
    wait_for(&lab.switch, "a re-asked MASTER at its generation", |s| {
        s.role_requests_from(0)
            == [
                role(controller_role::MASTER, 1),
                role(controller_role::MASTER, 1),
            ]
    })
    .await;
    assert_eq!(
        lab.switch.lock().unwrap().refused_is_slave.get(&0),
        Some(&1)
    );

    // Fenced: `a` writes nothing more; `b` writes, once it has adopted
    // the switch's tables (its writes are held while they are dumped).
    lab.a.poke().await;
    let b_wrote = timeout(WAIT, async {
        while packet_outs_from(&lab.switch.lock().unwrap(), 1) == 0 {
            lab.b.poke().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(b_wrote.is_ok(), "b writes as master");
    tokio::time::sleep(QUIET).await;
    let s = lab.switch.lock().unwrap();
    assert_eq!(packet_outs_from(&s, 0), 1, "only the refused one");
    assert_eq!(s.roles.get(&1), Some(&SwitchRole::Master));
    assert_eq!(s.refused_is_slave.get(&0), Some(&1));
    assert_eq!(
        s.role_requests_from(0).len(),
        2,
        "nothing asked after STALE"
    );
    drop(s);
    // What GET /cluster and the metrics show: the roles the switch
    // confirmed, and the fencing counted.
    let slave = ConnectionRole {
        confirmed: Some(SwitchRole::Slave),
        master: false,
    };
    let master = ConnectionRole {
        confirmed: Some(SwitchRole::Master),
        master: true,
    };
    let counts = |gained, lost, refused_is_slave, refused_stale| RoleCounts {
        gained,
        lost,
        refused_is_slave,
        refused_stale,
    };
    assert_eq!(lab.a.roles(), (Some(slave), counts(1, 1, 1, 1)));
    assert_eq!(lab.b.roles(), (Some(master), counts(1, 0, 0, 0)));
}

#[tokio::test]
async fn without_clustering_no_role_is_requested_and_writes_go_out_at_once() {
    let node = Node::start(None).await;
    assert!(node.runtime.is_cluster_actor(), "alone, it always acts");
    let switch = WireSwitch::shared(DPID);
    switch.lock().unwrap().switch.flows.clear();
    let _link = wire::spawn(node.addr, switch.clone());
    let n = core_entries().len();
    wait_for(&switch, "the core entries", |s| s.flow_mods_from(0) == n).await;
    node.poke().await;
    wait_for(&switch, "the packet-out", |s| packet_outs_from(s, 0) == 1).await;
    let s = switch.lock().unwrap();
    assert!(s.role_requests_from(0).is_empty());
    assert!(!s
        .received
        .iter()
        .any(|m| matches!(m, Message::RoleRequest(_))));
}
