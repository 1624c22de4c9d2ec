//! Where the QoS module keeps its configuration in the store, and loading
//! it at start. Keys: `qos/policies/<id>` (zero-padded to 10 digits so keys
//! sort by id), `qos/profiles/<id>`, `qos/ports/<binding id>`; values are
//! the REST JSON.

use flowgate_controller::store::{Op, Store, StoreExt};

use crate::config::QosConfig;
use crate::model::{Binding, Policy, Profile};
use crate::module::QosOp;

pub const POLICIES: &str = "qos/policies/";
pub const PROFILES: &str = "qos/profiles/";
pub const BINDINGS: &str = "qos/ports/";

pub fn policy_key(id: u32) -> String {
    format!("{POLICIES}{id:010}")
}

/// The store writes of a change.
pub fn ops(op: &QosOp) -> anyhow::Result<Vec<Op>> {
    Ok(vec![match op {
        QosOp::PutPolicy(p) => Op::put_json(policy_key(p.id), p)?,
        QosOp::DeletePolicy(id) => Op::delete(policy_key(*id)),
        QosOp::PutProfile(p) => Op::put_json(format!("{PROFILES}{}", p.id), p)?,
        QosOp::DeleteProfile(id) => Op::delete(format!("{PROFILES}{id}")),
        QosOp::PutBinding(b) => Op::put_json(format!("{BINDINGS}{}", b.id), b)?,
        QosOp::DeleteBinding(id) => Op::delete(format!("{BINDINGS}{id}")),
    }])
}

/// The configuration stored by earlier runs.
pub fn load(store: &dyn Store) -> anyhow::Result<QosConfig> {
    let mut config = QosConfig::default();
    for (_, p) in store.list_json::<Profile>(PROFILES)? {
        config.profiles.insert(p.id.clone(), p);
    }
    for (_, b) in store.list_json::<Binding>(BINDINGS)? {
        config.bindings.insert(b.id.clone(), b);
    }
    for (_, p) in store.list_json::<Policy>(POLICIES)? {
        config.policies.insert(p.id, p);
    }
    Ok(config)
}
