//! Where the load balancer keeps its state in the store, and loading it.
//!
//! Configuration: `lb/vips/<id>`, `lb/pools/<id>` (with its members),
//! `lb/monitors/<id>` (JSON as the REST API shows them). What a restarted
//! controller needs to declare the same entries before anything is
//! learned again: `lb/state/mac/<network or ->/<ip>` (a member's MAC),
//! `lb/state/vni/<network>` (a tenant network's VNI), and
//! `lb/state/health/<pool>/<member>` (its last health and since when).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use flowgate_controller::module::Ctx;
use flowgate_controller::store::{Op, Store, StoreExt};
use flowgate_openflow::MacAddr;
use serde::Serialize;
use tracing::warn;

use crate::health::TargetKey;
use crate::model::{Config, MemberKey, Monitor, Pool, Vip};
use crate::module::{Loaded, StoredHealth};

pub const VIPS: &str = "lb/vips/";
pub const POOLS: &str = "lb/pools/";
pub const MONITORS: &str = "lb/monitors/";
pub const MACS: &str = "lb/state/mac/";
pub const VNIS: &str = "lb/state/vni/";
pub const HEALTH: &str = "lb/state/health/";

pub fn vip_key(id: &str) -> String {
    format!("{VIPS}{id}")
}

pub fn pool_key(id: &str) -> String {
    format!("{POOLS}{id}")
}

pub fn monitor_key(id: &str) -> String {
    format!("{MONITORS}{id}")
}

pub fn mac_key(network: Option<&str>, ip: IpAddr) -> String {
    format!("{MACS}{}/{ip}", network.unwrap_or("-"))
}

pub fn vni_key(network: &str) -> String {
    format!("{VNIS}{network}")
}

pub fn health_key(pool: &str, member: MemberKey) -> String {
    format!("{HEALTH}{pool}/{member}")
}

/// Stores `value` under `key` as part of what `ctx` is doing.
pub fn put(ctx: &mut Ctx, key: String, value: &impl Serialize) {
    match Op::put_json(key, value) {
        Ok(op) => ctx.persist(vec![op]),
        // Our own types always serialize; if one ever does not, the write
        // must not look durable.
        Err(e) => warn!(error = %e, "could not encode load balancer state for the store"),
    }
}

/// Everything stored.
pub fn load(store: &dyn Store) -> anyhow::Result<Loaded> {
    let mut config = Config::default();
    for (_, vip) in store
        .list_json::<Vip>(VIPS)
        .context("reading load balancer VIPs")?
    {
        config.vips.insert(vip.id.clone(), vip);
    }
    for (_, pool) in store
        .list_json::<Pool>(POOLS)
        .context("reading load balancer pools")?
    {
        config.pools.insert(pool.id.clone(), pool);
    }
    for (_, monitor) in store
        .list_json::<Monitor>(MONITORS)
        .context("reading load balancer monitors")?
    {
        config.monitors.insert(monitor.id.clone(), monitor);
    }
    let mut macs = BTreeMap::new();
    for (key, mac) in store.list_json::<String>(MACS)? {
        let Some((network, ip)) = key.strip_prefix(MACS).and_then(|r| r.split_once('/')) else {
            continue;
        };
        let (Ok(ip), Ok(mac)) = (ip.parse::<IpAddr>(), mac.parse::<MacAddr>()) else {
            continue;
        };
        let network = (network != "-").then(|| network.to_owned());
        macs.insert((network, ip), mac);
    }
    let mut vnis = BTreeMap::new();
    for (key, vni) in store.list_json::<u32>(VNIS)? {
        if let Some(network) = key.strip_prefix(VNIS) {
            vnis.insert(network.to_owned(), vni);
        }
    }
    let mut health = HashMap::new();
    for (key, stored) in store.list_json::<StoredHealth>(HEALTH)? {
        let Some((pool, member)) = key.strip_prefix(HEALTH).and_then(|r| r.split_once('/')) else {
            continue;
        };
        let Ok(member) = member.parse::<MemberKey>() else {
            continue;
        };
        health.insert(
            TargetKey {
                pool: pool.to_owned(),
                member,
            },
            (
                stored.health,
                SystemTime::UNIX_EPOCH + Duration::from_secs(stored.since),
            ),
        );
    }
    Ok(Loaded {
        config,
        macs,
        vnis,
        health,
    })
}
