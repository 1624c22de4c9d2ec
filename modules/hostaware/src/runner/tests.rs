use std::collections::HashMap;
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use flowgate_controller::service::Origin;
use flowgate_controller::store::MemoryStore;
use serde_json::json;

use super::*;
use crate::sources::{Sample, SourceError};

/// Values set by the test, per (host, metric name).
#[derive(Clone, Default)]
struct FakeMetrics(Arc<Mutex<HashMap<(String, String), Reading>>>);

impl FakeMetrics {
    fn set(&self, host: &str, metric: &str, reading: Reading) {
        self.0
            .lock()
            .unwrap()
            .insert((host.into(), metric.into()), reading);
    }
}

impl Metrics for FakeMetrics {
    async fn read(
        &mut self,
        wants: Vec<Want>,
        _: crate::model::Settings,
        _: Arc<TopologyView>,
        _: SystemTime,
    ) -> Vec<Reading> {
        let values = self.0.lock().unwrap();
        wants
            .iter()
            .map(|w| {
                values
                    .get(&(w.host.id.clone(), w.metric.to_string()))
                    .cloned()
                    .unwrap_or_else(|| Err(SourceError::Missing("not set".into())))
            })
            .collect()
    }
}

/// Resources "held by the modules", with their origins.
#[derive(Clone, Default)]
struct FakeModules(Arc<Mutex<FakeState>>);

#[derive(Default)]
struct FakeState {
    next: u32,
    held: BTreeMap<Resource, Origin>,
    applies: u32,
    reverts: u32,
    refuse: Option<String>,
    pools: Vec<flowgate_loadbalancer::Pool>,
    weight_writes: Vec<BTreeMap<flowgate_loadbalancer::MemberKey, u16>>,
}

impl Actuator for FakeModules {
    async fn apply(&self, rule: &Rule, host: &MonitoredHost) -> Result<Vec<Resource>, String> {
        let mut s = self.0.lock().unwrap();
        if let Some(why) = &s.refuse {
            return Err(why.clone());
        }
        s.applies += 1;
        s.next += 1;
        let r = Resource::FirewallRule { id: s.next };
        let origin = actions::origin(rule.id, &host.id, rule.action.slot(rule.id));
        s.held.insert(r.clone(), origin);
        Ok(vec![r])
    }

    async fn revert(&self, resources: &[Resource], by: &Origin) -> Result<(), String> {
        let mut s = self.0.lock().unwrap();
        s.reverts += 1;
        for r in resources {
            if let Some(origin) = s.held.get(r) {
                assert_eq!(origin, by, "reverted by the origin that made it");
            }
            s.held.remove(r);
        }
        Ok(())
    }

    async fn existing(&self) -> Result<Vec<(Origin, Resource)>, String> {
        let s = self.0.lock().unwrap();
        Ok(s.held.iter().map(|(r, o)| (o.clone(), r.clone())).collect())
    }

    async fn load_aware_pools(&self) -> Result<Vec<flowgate_loadbalancer::Pool>, String> {
        Ok(self.0.lock().unwrap().pools.clone())
    }

    async fn set_load_weights(
        &self,
        pool: &str,
        weights: BTreeMap<flowgate_loadbalancer::MemberKey, u16>,
    ) -> Result<bool, String> {
        let mut s = self.0.lock().unwrap();
        let p = s.pools.iter_mut().find(|p| p.id == pool).unwrap();
        for m in &mut p.members {
            if let Some(w) = weights.get(&m.key()) {
                m.weight = *w;
            }
        }
        s.weight_writes.push(weights);
        Ok(true)
    }
}

fn at(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
}

fn ok(v: f64, s: u64) -> Reading {
    Ok(Sample {
        value: v,
        at: at(s),
    })
}

fn config(rules: &[serde_json::Value]) -> Config {
    let host = |id: &str, ip: &str| -> MonitoredHost {
        serde_json::from_value(json!({"id": id, "ip": ip, "cluster": "web"})).unwrap()
    };
    Config {
        hosts: [
            ("web1".into(), host("web1", "10.0.0.1")),
            ("web2".into(), host("web2", "10.0.0.2")),
        ]
        .into(),
        rules: rules
            .iter()
            .map(|r| {
                let mut base = json!({"hosts": {"cluster": "web"}, "metric": "load_one",
                    "comparator": ">", "threshold": 4.0, "clear": 2.0, "interval_s": 10,
                    "action": {"type": "quarantine", "allow": ["10.0.0.9"]}});
                for (k, v) in r.as_object().unwrap() {
                    base[k] = v.clone();
                }
                let rule: Rule = serde_json::from_value(base).unwrap();
                (rule.id, rule)
            })
            .collect(),
        ..Config::default()
    }
}

struct Lab {
    metrics: FakeMetrics,
    modules: FakeModules,
    store: Arc<dyn Store>,
    board: Board,
    runner: Runner<FakeMetrics, FakeModules>,
}

impl Lab {
    fn new(config: Config) -> Lab {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        Lab::on(store, FakeModules::default(), config)
    }

    /// A runner over an existing store and modules (a restart).
    fn on(store: Arc<dyn Store>, modules: FakeModules, config: Config) -> Lab {
        let metrics = FakeMetrics::default();
        let board = Board::default();
        let audit = AuditLog::open(store.clone(), None, 1000);
        let mut runner = Runner::new(
            metrics.clone(),
            modules.clone(),
            store.clone(),
            audit,
            board.clone(),
        );
        runner.set_plan(Plan {
            config,
            ..Plan::default()
        });
        Lab {
            metrics,
            modules,
            store,
            board,
            runner,
        }
    }

    async fn poll(&mut self, s: u64, web1: f64) {
        self.metrics.set("web1", "load_one", ok(web1, s));
        self.metrics.set("web2", "load_one", ok(1.0, s));
        self.runner.tick(at(s)).await;
    }

    fn kinds(&self) -> Vec<Kind> {
        crate::audit::list(self.store.as_ref(), 0, usize::MAX, |_| true)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }

    fn applies(&self) -> (u32, u32, usize) {
        let s = self.modules.0.lock().unwrap();
        (s.applies, s.reverts, s.held.len())
    }
}

#[tokio::test]
async fn a_threshold_met_applies_and_recovery_reverts_with_the_whole_sequence_recorded() {
    let mut lab = Lab::new(config(&[json!({"id": 1, "for": 2})]));
    lab.poll(0, 5.0).await;
    assert_eq!(lab.applies(), (0, 0, 0), "one poll of two");
    // Not due yet: a tick between polls reads nothing.
    lab.runner.tick(at(5)).await;
    lab.poll(10, 5.0).await;
    assert_eq!(lab.applies(), (1, 0, 1));
    {
        let board = lab.board.read().unwrap();
        assert_eq!(board.reactions.len(), 1);
        assert_eq!(
            (board.reactions[0].rule, board.reactions[0].host.as_str()),
            (1, "web1")
        );
        assert_eq!(board.metrics["web1"]["load_one"].value, Some(5.0));
    }
    lab.poll(20, 3.0).await;
    lab.poll(30, 1.0).await;
    assert_eq!(
        lab.applies(),
        (1, 0, 1),
        "one poll below clear is not enough"
    );
    lab.poll(40, 1.0).await;
    assert_eq!(lab.applies(), (1, 1, 0));
    assert_eq!(
        lab.kinds(),
        [
            Kind::ThresholdMet,
            Kind::ActionApplied,
            Kind::Info,
            Kind::Reverted
        ]
    );
    assert!(
        lab.store.list_prefix(REACTIONS).unwrap().is_empty(),
        "record dropped"
    );
    let history =
        lab.board
            .read()
            .unwrap()
            .history("web1", "load_one", Duration::from_secs(25), at(40));
    assert_eq!(
        history.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
        [3.0, 1.0, 1.0]
    );
}

#[tokio::test]
async fn a_restart_keeps_reactions_in_place_and_resumes() {
    let cfg = config(&[json!({"id": 1})]);
    let mut lab = Lab::new(cfg.clone());
    lab.poll(0, 5.0).await;
    assert_eq!(lab.applies(), (1, 0, 1));
    // The controller restarts: a new runner over the same store and modules.
    let mut again = Lab::on(lab.store.clone(), lab.modules.clone(), cfg);
    again.runner.restore(at(100)).await;
    again.poll(100, 5.0).await;
    again.poll(110, 3.0).await;
    assert_eq!(
        again.applies(),
        (1, 0, 1),
        "nothing applied again, nothing reverted"
    );
    assert_eq!(
        again.board.read().unwrap().reactions[0].since,
        at(0),
        "the original time"
    );
    again.poll(120, 1.0).await;
    assert_eq!(again.applies(), (1, 1, 0));
}

#[tokio::test]
async fn a_reaction_whose_record_was_lost_is_adopted_and_one_already_reverted_forgotten() {
    let cfg = config(&[
        json!({"id": 1}),
        json!({"id": 2, "action": {"type": "block"}}),
    ]);
    let mut lab = Lab::new(cfg.clone());
    lab.poll(0, 5.0).await;
    assert_eq!(lab.applies(), (2, 0, 2));
    // A crash lost the quarantine's record (applied, not yet recorded) and
    // the block was reverted but its record not yet dropped.
    lab.store
        .apply(vec![Op::delete(reaction_key("web1", Slot::Quarantine))])
        .unwrap();
    lab.modules
        .0
        .lock()
        .unwrap()
        .held
        .retain(|_, o| !o.as_str().contains("block"));
    let mut again = Lab::on(lab.store.clone(), lab.modules.clone(), cfg);
    again.runner.restore(at(50)).await;
    let reactions = again.board.read().unwrap().reactions.clone();
    assert_eq!(reactions.len(), 1);
    assert_eq!(
        (reactions[0].rule, reactions[0].slot),
        (1, Slot::Quarantine)
    );
    // The block's condition still holds: it is applied again; the
    // quarantine is not.
    again.poll(50, 5.0).await;
    assert_eq!(again.applies(), (3, 0, 2));
}

#[tokio::test]
async fn a_stale_source_warns_once_and_neither_applies_nor_reverts() {
    let mut lab = Lab::new(config(&[json!({"id": 1})]));
    let stale = || {
        Err(SourceError::Stale {
            age: Duration::from_secs(120),
        })
    };
    lab.metrics.set("web1", "load_one", stale());
    lab.metrics.set("web2", "load_one", ok(1.0, 0));
    lab.runner.tick(at(0)).await;
    lab.runner.tick(at(10)).await;
    assert_eq!(lab.applies(), (0, 0, 0));
    assert_eq!(lab.kinds(), [Kind::SourceStale]);
    lab.poll(20, 5.0).await;
    assert_eq!(lab.applies(), (1, 0, 1));
    lab.metrics.set("web1", "load_one", stale());
    for s in [30, 40, 50] {
        lab.runner.tick(at(s)).await;
    }
    assert_eq!(lab.applies(), (1, 0, 1), "no revert while stale");
}

#[tokio::test]
async fn the_higher_priority_rule_holds_the_slot_and_the_next_takes_over() {
    let mut lab = Lab::new(config(&[
        json!({"id": 1, "priority": 10, "threshold": 4.0}),
        json!({"id": 2, "priority": 50, "threshold": 8.0, "clear": 6.0}),
    ]));
    lab.poll(0, 5.0).await;
    assert_eq!(lab.board.read().unwrap().reactions[0].rule, 1);
    lab.poll(10, 9.0).await;
    let reactions = lab.board.read().unwrap().reactions.clone();
    assert_eq!(
        (reactions.len(), reactions[0].rule),
        (1, 2),
        "rule 2 takes the slot"
    );
    assert_eq!(lab.applies(), (2, 1, 1));
    lab.poll(20, 5.0).await;
    assert_eq!(
        lab.board.read().unwrap().reactions[0].rule,
        1,
        "back to rule 1"
    );
    assert_eq!(lab.board.read().unwrap().active["web1"], [1]);
}

#[tokio::test]
async fn a_refused_action_is_reported_and_retried_later() {
    let mut lab = Lab::new(config(&[json!({"id": 1})]));
    lab.modules.0.lock().unwrap().refuse = Some("priority: overlaps rule 9".into());
    lab.poll(0, 5.0).await;
    lab.poll(10, 5.0).await;
    assert_eq!(
        lab.kinds(),
        [Kind::ThresholdMet, Kind::Warn],
        "reported once"
    );
    lab.modules.0.lock().unwrap().refuse = None;
    lab.poll(20, 5.0).await;
    assert_eq!(lab.applies(), (0, 0, 0), "still backing off");
    lab.poll(30, 5.0).await;
    assert_eq!(lab.applies(), (1, 0, 1));
}

#[tokio::test]
async fn disabling_the_module_or_deleting_the_rule_reverts() {
    let cfg = config(&[json!({"id": 1, "revert": {"type": "never"}})]);
    let mut lab = Lab::new(cfg.clone());
    lab.poll(0, 5.0).await;
    lab.poll(10, 1.0).await;
    assert_eq!(lab.applies(), (1, 0, 1), "never reverts on recovery");
    let mut off = cfg.clone();
    off.settings.enabled = false;
    lab.runner.set_plan(Plan {
        config: off,
        ..Plan::default()
    });
    lab.runner.tick(at(20)).await;
    assert_eq!(lab.applies(), (1, 1, 0));
    lab.runner.set_plan(Plan {
        config: cfg.clone(),
        ..Plan::default()
    });
    lab.poll(30, 5.0).await;
    assert_eq!(lab.applies(), (2, 1, 1));
    let mut gone = cfg;
    gone.rules.clear();
    lab.runner.set_plan(Plan {
        config: gone,
        ..Plan::default()
    });
    lab.runner.tick(at(40)).await;
    assert_eq!(lab.applies(), (2, 2, 0));
}

#[tokio::test]
async fn load_aware_pools_get_weights_from_their_members_load_when_due_and_moved() {
    let mut lab = Lab::new(config(&[]));
    let pool: flowgate_loadbalancer::Pool = serde_json::from_value(json!({"id": "web",
        "members": [
            {"address": "10.0.0.1", "port": 80, "weight": 100},
            {"address": "10.0.0.2", "port": 80, "weight": 100},
            {"address": "10.0.0.3", "port": 80, "weight": 100}],
        "load_aware": {"metric": "load_one", "busy": 4, "smoothing": 1, "min_step": 5,
            "interval_s": 10}}))
    .unwrap();
    lab.modules.0.lock().unwrap().pools = vec![pool];
    // web1 busy, web2 light; 10.0.0.3 is no monitored host and has no value.
    lab.poll(0, 4.0).await;
    let key = |s: &str| -> flowgate_loadbalancer::MemberKey { s.parse().unwrap() };
    {
        let s = lab.modules.0.lock().unwrap();
        assert_eq!(
            s.weight_writes,
            [[(key("10.0.0.1:80"), 10), (key("10.0.0.2:80"), 78)].into()]
        );
    }
    let kinds = lab.kinds();
    assert_eq!(
        kinds,
        [Kind::Info, Kind::Warn],
        "the moves, then the member without a value"
    );
    // Not due before 10 s; then nothing moved: nothing written.
    lab.poll(5, 0.0).await;
    lab.poll(10, 4.0).await;
    assert_eq!(lab.modules.0.lock().unwrap().weight_writes.len(), 1);
    assert_eq!(lab.kinds().len(), 2, "the failing member is reported once");
    // web1 recovers: its weight comes back up.
    lab.poll(20, 0.0).await;
    let s = lab.modules.0.lock().unwrap();
    assert_eq!(s.weight_writes[1], [(key("10.0.0.1:80"), 100)].into());
}

/// Two nodes see the same metric cross the threshold: only the one acting
/// for the cluster applies, the other lists the reaction from the store;
/// when the actor changes, the new one neither applies again nor forgets
/// to revert.
#[tokio::test]
async fn one_node_acts_for_the_cluster_and_the_next_one_takes_over_its_reactions() {
    let cfg = config(&[json!({"id": 1})]);
    let mut a = Lab::new(cfg.clone());
    let mut b = Lab::on(a.store.clone(), a.modules.clone(), cfg);
    b.runner.set_acting(false, at(0)).await;
    for s in [0, 10] {
        a.poll(s, 5.0).await;
        b.poll(s, 5.0).await;
    }
    assert_eq!(a.applies(), (1, 0, 1), "applied once across both nodes");
    let listed = |lab: &Lab| lab.board.read().unwrap().reactions.clone();
    assert_eq!(listed(&b), listed(&a), "the other node lists the actor's");
    assert_eq!(listed(&b).len(), 1);
    let trail = a.kinds();
    assert_eq!(
        trail,
        [Kind::ThresholdMet, Kind::ActionApplied],
        "one trail"
    );

    // The actor changes (a's switch failed over to b).
    a.runner.set_acting(false, at(15)).await;
    assert!(
        a.board.read().unwrap().metrics.is_empty(),
        "no stale values"
    );
    b.runner.set_acting(true, at(15)).await;
    for s in [20, 30] {
        a.poll(s, 5.0).await;
        b.poll(s, 5.0).await;
    }
    assert_eq!(b.applies(), (1, 0, 1), "nothing applied again");
    assert_eq!(listed(&b)[0].since, at(0), "the original reaction");
    b.poll(40, 1.0).await;
    a.poll(40, 1.0).await;
    assert_eq!(b.applies(), (1, 1, 0), "the new actor reverts it");
    assert!(listed(&a).is_empty() && listed(&b).is_empty());
    assert_eq!(
        b.kinds(),
        [
            Kind::ThresholdMet,
            Kind::ActionApplied,
            Kind::Info,
            Kind::Reverted
        ],
        "the new actor's events follow the old one's in one trail"
    );
}
