//! `lb_drain` and `lb_weight` through the real load balancer: the runner
//! with the real actuator (firewall, QoS and load-balancer services) over
//! a real runtime and an in-memory store, metrics faked. A "restart" is a
//! new runtime and runner over the same store: the hold is found again,
//! nothing is applied twice, and the revert restores what the member had.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flowgate_controller::module::Module;
use flowgate_controller::runtime::{Runtime, RuntimeConfig};
use flowgate_controller::service::Origin;
use flowgate_controller::store::{MemoryStore, Store, StoreExt};
use flowgate_controller::topology::TopologyView;
use flowgate_firewall::{Firewall, FirewallConfig, FirewallService};
use flowgate_hostaware::actions::Modules;
use flowgate_hostaware::audit::{self, AuditLog, Kind};
use flowgate_hostaware::engine::Reading;
use flowgate_hostaware::metrics::{Metrics, Want};
use flowgate_hostaware::model::{Config, MonitoredHost, Rule, Settings};
use flowgate_hostaware::runner::{Plan, Runner};
use flowgate_hostaware::sources::{Sample, SourceError};
use flowgate_hostaware::status::Board;
use flowgate_loadbalancer::{AdminState, LoadBalancer, LoadBalancerService, Pool};
use flowgate_qos::{Qos, QosConfig, QosService};
use serde_json::json;
use tokio::net::TcpListener;

/// load_one per host, set by the test.
#[derive(Clone, Default)]
struct Load(Arc<Mutex<HashMap<String, f64>>>);

impl Metrics for Load {
    async fn read(
        &mut self,
        wants: Vec<Want>,
        _: Settings,
        _: Arc<TopologyView>,
        now: SystemTime,
    ) -> Vec<Reading> {
        let values = self.0.lock().unwrap();
        wants
            .iter()
            .map(|w| match values.get(&w.host.id) {
                Some(v) => Ok(Sample { value: *v, at: now }),
                None => Err(SourceError::Missing("not set".into())),
            })
            .collect()
    }
}

async fn runtime(store: Arc<MemoryStore>) -> Runtime {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let loaded = flowgate_loadbalancer::persist::load(store.as_ref()).unwrap();
    let modules: Vec<Box<dyn Module>> = vec![
        Box::new(LoadBalancer::new(Default::default(), loaded)),
        Box::new(Firewall::new(FirewallConfig::default())),
        Box::new(Qos::new(QosConfig::default())),
    ];
    Runtime::start(listener, RuntimeConfig::default(), modules, store)
}

fn runner(
    runtime: &Runtime,
    store: Arc<MemoryStore>,
    load: &Load,
    rule: Rule,
) -> Runner<Load, Modules> {
    let store: Arc<dyn Store> = store;
    let modules = Modules {
        firewall: FirewallService::new(runtime.clone()),
        qos: QosService::new(runtime.clone()),
        lb: LoadBalancerService::new(runtime.clone()),
    };
    let audit = AuditLog::open(store.clone(), None, 1000);
    let mut runner = Runner::new(load.clone(), modules, store, audit, Board::default());
    let host: MonitoredHost =
        serde_json::from_value(json!({"id": "web1", "ip": "10.0.0.3"})).unwrap();
    runner.set_plan(Plan {
        config: Config {
            hosts: [("web1".to_owned(), host)].into(),
            rules: [(rule.id, rule)].into(),
            ..Config::default()
        },
        ..Plan::default()
    });
    runner
}

fn at(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
}

fn kinds(store: &MemoryStore) -> Vec<Kind> {
    audit::list(store, 0, usize::MAX, |_| true)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

fn web() -> Pool {
    serde_json::from_value(json!({"id": "web", "members": [
        {"address": "10.0.0.3", "port": 80, "weight": 10},
        {"address": "10.0.0.4", "port": 80, "weight": 10}]}))
    .unwrap()
}

fn rule(action: serde_json::Value) -> Rule {
    serde_json::from_value(
        json!({"id": 1, "hosts": {"host": "web1"}, "metric": "load_one",
        "comparator": ">", "threshold": 4.0, "clear": 2.0, "interval_s": 10, "action": action}),
    )
    .unwrap()
}

#[tokio::test]
async fn a_drain_holds_the_member_survives_a_restart_and_recovery_restores_it() {
    let store = Arc::new(MemoryStore::default());
    let rt = runtime(store.clone()).await;
    let lb = LoadBalancerService::new(rt.clone());
    lb.put_pool(web(), true, Origin::rest(), false)
        .await
        .unwrap();
    let load = Load::default();
    let mut r = runner(&rt, store.clone(), &load, rule(json!({"type": "lb_drain"})));
    r.restore(at(0)).await;
    load.0.lock().unwrap().insert("web1".into(), 6.0);
    r.tick(at(0)).await;
    let pool = lb.pool("web".into()).await.unwrap();
    let m = &pool.members[0];
    assert_eq!(m.admin_state, AdminState::Drain);
    assert_eq!(
        m.origin.as_ref().map(Origin::as_str),
        Some("hostaware/rule-1/web1/lb")
    );
    assert_eq!(
        m.held.as_ref().map(|b| b.admin_state),
        Some(AdminState::Enabled)
    );
    assert_eq!(
        pool.members[1].admin_state,
        AdminState::Enabled,
        "not the host"
    );
    assert_eq!(kinds(&store).last(), Some(&Kind::ActionApplied));

    // A restart: a new runtime (the load balancer loads its pools from the
    // store) and a new runner. Still breached: nothing is applied again.
    rt.shutdown(Duration::from_secs(1)).await;
    let rt = runtime(store.clone()).await;
    let lb = LoadBalancerService::new(rt.clone());
    let mut r = runner(&rt, store.clone(), &load, rule(json!({"type": "lb_drain"})));
    r.restore(at(5)).await;
    r.tick(at(10)).await;
    let applied = |store: &MemoryStore| {
        kinds(store)
            .iter()
            .filter(|k| **k == Kind::ActionApplied)
            .count()
    };
    assert_eq!(applied(&store), 1, "{:?}", kinds(&store));
    assert_eq!(
        lb.pool("web".into()).await.unwrap().members[0].admin_state,
        AdminState::Drain
    );

    // Recovery puts back what the member had, and only that.
    load.0.lock().unwrap().insert("web1".into(), 1.0);
    r.tick(at(20)).await;
    assert_eq!(kinds(&store).last(), Some(&Kind::Reverted));
    assert_eq!(lb.pool("web".into()).await.unwrap(), web());
}

#[tokio::test]
async fn a_weight_scales_the_member_and_a_crash_before_the_record_is_adopted() {
    let store = Arc::new(MemoryStore::default());
    let rt = runtime(store.clone()).await;
    let lb = LoadBalancerService::new(rt.clone());
    lb.put_pool(web(), true, Origin::rest(), false)
        .await
        .unwrap();
    let load = Load::default();
    let action = json!({"type": "lb_weight", "factor": 0.3, "pool": "web"});
    let mut r = runner(&rt, store.clone(), &load, rule(action.clone()));
    r.restore(at(0)).await;
    load.0.lock().unwrap().insert("web1".into(), 6.0);
    r.tick(at(0)).await;
    assert_eq!(lb.pool("web".into()).await.unwrap().members[0].weight, 3);
    // The reaction's record is lost (a crash right after the write): the
    // member's origin names the reaction, so a new runner adopts it.
    let keys: Vec<String> = store
        .list_json::<serde_json::Value>(flowgate_hostaware::runner::REACTIONS)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys.len(), 1);
    store
        .apply(
            keys.into_iter()
                .map(flowgate_controller::store::Op::delete)
                .collect(),
        )
        .unwrap();
    let mut r = runner(&rt, store.clone(), &load, rule(action));
    r.restore(at(5)).await;
    r.tick(at(10)).await;
    assert_eq!(
        lb.pool("web".into()).await.unwrap().members[0].weight,
        3,
        "not scaled twice"
    );
    load.0.lock().unwrap().insert("web1".into(), 1.0);
    r.tick(at(20)).await;
    assert_eq!(lb.pool("web".into()).await.unwrap(), web());
}
