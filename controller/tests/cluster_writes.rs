//! Service writes in a cluster (issue 22): two runtimes, nodes `a` and
//! `b`, share one in-memory coordinator and one store, and connect to one
//! fake switch over real OpenFlow connections; `a` masters the switch.
//!
//! The module under test, `Notes`, keeps named notes, each a drop entry
//! at its own priority in the ACL table, follows the store like the
//! firewall does, and refuses a priority that another note already has:
//! a rule that depends on the whole module's state, which two nodes
//! validating against their own state could both pass.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use flowgate_cluster::SwitchRole;
use flowgate_controller::cluster::{MemoryCluster, MemoryNode};
use flowgate_controller::cookie::Owner;
use flowgate_controller::desired::{FlowEntry, FlowSpec};
use flowgate_controller::module::{Ctx, Event, Followed, Module, Scope, StoreSync};
use flowgate_controller::pipeline::{core_entries, ACL};
use flowgate_controller::runtime::{Runtime, RuntimeConfig};
use flowgate_controller::service::{Service, Staged, WriteError, Written};
use flowgate_controller::store::{MemoryStore, Op, Store, StoreError};
use flowgate_controller::testing::wire::{self, SharedSwitch, WireSwitch};
use flowgate_openflow::Match;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::timeout;

const DPID: u64 = 0xc1;
const WAIT: Duration = Duration::from_secs(10);
/// The runtimes' confirmation deadline: short, for the test that waits it
/// out.
const CONFIRM: Duration = Duration::from_millis(700);
const PREFIX: &str = "notes/";

/// Notes by name, each a priority.
#[derive(Default)]
struct Notes {
    notes: BTreeMap<String, u16>,
}

impl Notes {
    fn declare(&self, ctx: &mut Ctx) {
        let entries = self.notes.values().map(|&priority| {
            FlowEntry::new(
                ACL,
                priority,
                Match::default(),
                FlowSpec::new(Owner::Firewall.cookie(u64::from(priority)), vec![]),
            )
        });
        ctx.declare_flows(DPID, Scope::new("notes", 0), entries);
    }

    /// Adds note `name` at `priority`, refused when another note has it.
    fn add(
        &mut self,
        name: &str,
        priority: u16,
        ctx: &mut Ctx,
    ) -> Result<Staged<Notes, ()>, String> {
        if let Some((other, _)) = self.notes.iter().find(|(_, p)| **p == priority) {
            return Err(format!("priority {priority} is {other}'s"));
        }
        self.notes.insert(name.to_owned(), priority);
        self.declare(ctx);
        ctx.persist(vec![Op::put(
            format!("{PREFIX}{name}"),
            priority.to_string(),
        )]);
        let name = name.to_owned();
        Ok(Staged::new((), move |notes: &mut Notes, ctx: &mut Ctx| {
            notes.notes.remove(&name);
            notes.declare(ctx);
            ctx.persist(vec![Op::delete(format!("{PREFIX}{name}"))]);
        }))
    }
}

impl Module for Notes {
    fn owner(&self) -> Owner {
        Owner::Firewall
    }

    fn handle(&mut self, _: &Event<'_>, _: &mut Ctx) {}

    fn followed_prefixes(&self) -> Vec<&'static str> {
        vec![PREFIX]
    }

    fn follow_store(&mut self, sync: &StoreSync, ctx: &mut Ctx) -> Followed {
        let mut notes = if sync.complete {
            BTreeMap::new()
        } else {
            self.notes.clone()
        };
        for (key, value) in &sync.changed {
            let name = key.trim_start_matches(PREFIX).to_owned();
            match value.as_deref().map(std::str::from_utf8) {
                Some(Ok(p)) => {
                    notes.insert(name, p.parse().expect("a priority"));
                }
                _ => {
                    notes.remove(&name);
                }
            }
        }
        if notes != self.notes {
            self.notes = notes;
            self.declare(ctx);
        }
        Followed::Taken
    }
}

struct Node {
    notes: Service<Notes>,
    addr: SocketAddr,
}

impl Node {
    async fn start(cluster: Arc<MemoryNode>, store: Arc<dyn Store>) -> Node {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = RuntimeConfig {
            cluster: Some(cluster as _),
            // No discovery here: a node offers itself at once.
            probe_round: Duration::ZERO,
            confirm_timeout: CONFIRM,
            ..RuntimeConfig::default()
        };
        let modules: Vec<Box<dyn Module>> = vec![Box::new(Notes::default())];
        let runtime = Runtime::start(listener, config, modules, store);
        let notes = Service::new(runtime, Owner::Firewall);
        Node { notes, addr }
    }

    async fn add(&self, name: &str, priority: u16) -> Result<Written<()>, WriteError<String>> {
        self.add_staged_with(name, priority, None).await
    }

    /// [`Node::add`] whose staging waits at `barrier` (after validating,
    /// before the store write): writes that all pass it staged against
    /// the same state.
    async fn add_staged_with(
        &self,
        name: &str,
        priority: u16,
        barrier: Option<Arc<Barrier>>,
    ) -> Result<Written<()>, WriteError<String>> {
        let name = name.to_owned();
        self.notes
            .write(move |notes, ctx| {
                let staged = notes.add(&name, priority, ctx);
                if let Some(barrier) = barrier {
                    barrier.wait();
                }
                staged
            })
            .await
    }

    async fn notes(&self) -> BTreeMap<String, u16> {
        self.notes.read(|n| n.notes.clone()).await.unwrap()
    }
}

async fn wait_for(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let met = timeout(WAIT, async {
        while !cond().await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(met.is_ok(), "not met in time: {what}");
}

/// The switch's ACL entries at `priority`, by connection (0: `a`, 1: `b`)
/// of the FLOW_MOD that added them.
fn acl_at(switch: &WireSwitch, priority: u16) -> usize {
    switch
        .switch
        .flows
        .keys()
        .filter(|k| k.table_id == ACL && k.priority == priority)
        .count()
}

struct Lab {
    cluster: Arc<MemoryCluster>,
    store: Arc<MemoryStore>,
    a: Node,
    b: Node,
    switch: SharedSwitch,
    _links: Vec<JoinHandle<()>>,
}

impl Lab {
    /// Both nodes connected to the switch, `a` its master with the core
    /// entries written, `b` a confirmed slave.
    async fn start() -> Lab {
        let cluster = MemoryCluster::new();
        let store = Arc::new(MemoryStore::new());
        let a = Node::start(cluster.join("a"), store.clone()).await;
        let b = Node::start(cluster.join("b"), store.clone()).await;
        let switch = WireSwitch::shared(DPID);
        switch.lock().unwrap().switch.flows.clear();
        let mut links = vec![wire::spawn(a.addr, switch.clone())];
        let s = switch.clone();
        wait_for("a connected", async || s.lock().unwrap().roles.len() == 1).await;
        links.push(wire::spawn(b.addr, switch.clone()));
        let c = cluster.clone();
        wait_for("both report the switch", async || {
            c.connections(DPID).len() == 2
        })
        .await;
        let moves = cluster.lead();
        assert_eq!(moves[0].to.as_ref().unwrap().as_str(), "a");
        let n = core_entries().len();
        wait_for("a master, b slave", async || {
            let s = s.lock().unwrap();
            s.roles.get(&0) == Some(&SwitchRole::Master)
                && s.roles.get(&1) == Some(&SwitchRole::Slave)
                && s.switch.flows.len() == n
        })
        .await;
        Lab {
            cluster,
            store,
            a,
            b,
            switch,
            _links: links,
        }
    }
}

#[tokio::test]
async fn a_write_on_the_slave_answers_once_the_master_applied_it() {
    let lab = Lab::start().await;
    let written = lab.b.add("web", 100).await.expect("written");
    // Confirmed: `a` followed the store and its switch confirmed by
    // barrier, before `b` answered.
    assert_eq!(written.confirmed, [DPID]);
    assert!(written.unconfirmed.is_empty());
    {
        let s = lab.switch.lock().unwrap();
        assert_eq!(acl_at(&s, 100), 1, "on the switch when the write answers");
    }
    assert_eq!(lab.a.notes().await, BTreeMap::from([("web".into(), 100)]));
    // The master's own writes confirm as before.
    let written = lab.a.add("ssh", 200).await.expect("written");
    assert_eq!(written.confirmed, [DPID]);
    assert_eq!(acl_at(&lab.switch.lock().unwrap(), 200), 1);
}

#[tokio::test]
async fn a_master_that_does_not_follow_leaves_the_switch_unconfirmed() {
    let lab = Lab::start().await;
    lab.cluster.mute("a");
    let written = lab.b.add("web", 100).await.expect("written");
    assert!(written.confirmed.is_empty());
    assert_eq!(written.unconfirmed, [DPID]);
    // The write itself stands: it is in the store and `a` applies it.
    assert_eq!(
        lab.store.get("notes/web").unwrap().as_deref(),
        Some(&b"100"[..])
    );
    let s = lab.switch.clone();
    wait_for("a applied it anyway", async || {
        acl_at(&s.lock().unwrap(), 100) == 1
    })
    .await;
}

// Several workers: each node's core blocks at the barrier in its stage.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_of_one_module_on_two_nodes_are_serialized() {
    let lab = Lab::start().await;
    // Different names, one priority: each node alone would accept its own,
    // and both validate before either writes the store.
    let staged = Arc::new(Barrier::new(2));
    let (on_a, on_b) = tokio::join!(
        lab.a.add_staged_with("x", 300, Some(staged.clone())),
        lab.b.add_staged_with("y", 300, Some(staged))
    );
    let (won, lost) = match (&on_a, &on_b) {
        (Ok(_), Err(e)) => (("x", &lab.a), (e, &lab.b)),
        (Err(e), Ok(_)) => (("y", &lab.b), (e, &lab.a)),
        _ => panic!(
            "exactly one may win: {:?} / {:?}",
            on_a.is_ok(),
            on_b.is_ok()
        ),
    };
    match lost.0 {
        WriteError::Store(e) => assert!(
            matches!(**e, StoreError::Conflict { .. }),
            "a conflict, not {e}"
        ),
        _ => panic!("the loser is refused by the store's guard"),
    }
    // Nothing of the loser remains; both nodes hold the winner's note.
    let only = BTreeMap::from([(won.0.to_owned(), 300)]);
    let keys: Vec<String> = lab
        .store
        .list_prefix(PREFIX)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, [format!("{PREFIX}{}", won.0)]);
    assert_eq!(won.1.notes().await, only);
    let loser = lost.1;
    wait_for("the loser follows the winner", async || {
        loser.notes().await == only
    })
    .await;
    let s = lab.switch.clone();
    wait_for("one entry at 300 on the switch", async || {
        acl_at(&s.lock().unwrap(), 300) == 1
    })
    .await;
    // The loser's retry is now validated against the winner's note.
    let name = if won.0 == "x" { "y" } else { "x" };
    assert!(matches!(
        loser.add(name, 300).await,
        Err(WriteError::Invalid(_))
    ));
    // And a write with fresh state goes through on either node.
    loser.add(name, 301).await.expect("written after following");
}

#[tokio::test]
async fn a_write_made_after_another_nodes_write_answered_sees_it() {
    let lab = Lab::start().await;
    for i in 0..10u16 {
        let (first, second) = if i % 2 == 0 {
            (&lab.a, &lab.b)
        } else {
            (&lab.b, &lab.a)
        };
        first
            .add(&format!("n{i}"), 1000 + i)
            .await
            .expect("written");
        // Sent the moment the first answered: validated against it (the
        // node catches up before staging), not refused as a conflict.
        match second.add(&format!("m{i}"), 1000 + i).await {
            Err(WriteError::Invalid(reason)) => {
                assert!(reason.contains(&format!("n{i}")), "{reason}")
            }
            other => panic!("expected a refusal naming n{i}, got {other:?}"),
        }
    }
}
