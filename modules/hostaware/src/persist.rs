//! Where the host-aware module keeps its configuration: `hostaware/settings`,
//! `hostaware/hosts/<id>`, `hostaware/rules/<id>` (zero-padded to 10 digits so
//! keys sort by id); values are the REST JSON. Reactions in place
//! (`hostaware/reactions/`) and the audit trail (`hostaware/events/`) are the
//! runner's.

use flowgate_controller::store::{Op, Store, StoreExt};

use crate::model::{Config, MonitoredHost, Rule, Settings};
use crate::module::HostAwareOp;

pub const SETTINGS: &str = "hostaware/settings";
pub const HOSTS: &str = "hostaware/hosts/";
pub const RULES: &str = "hostaware/rules/";

pub fn rule_key(id: u32) -> String {
    format!("{RULES}{id:010}")
}

/// The store writes of a change.
pub fn ops(op: &HostAwareOp) -> anyhow::Result<Vec<Op>> {
    Ok(vec![match op {
        HostAwareOp::PutSettings(s) => Op::put_json(SETTINGS, s)?,
        HostAwareOp::PutHost(h) => Op::put_json(format!("{HOSTS}{}", h.id), h)?,
        HostAwareOp::DeleteHost(id) => Op::delete(format!("{HOSTS}{id}")),
        HostAwareOp::PutRule(r) => Op::put_json(rule_key(r.id), r)?,
        HostAwareOp::DeleteRule(id) => Op::delete(rule_key(*id)),
    }])
}

/// The configuration stored by earlier runs.
pub fn load(store: &dyn Store) -> anyhow::Result<Config> {
    let mut config = Config {
        settings: store.get_json::<Settings>(SETTINGS)?.unwrap_or_default(),
        ..Config::default()
    };
    for (_, h) in store.list_json::<MonitoredHost>(HOSTS)? {
        config.hosts.insert(h.id.clone(), h);
    }
    for (_, r) in store.list_json::<Rule>(RULES)? {
        config.rules.insert(r.id, r);
    }
    Ok(config)
}
