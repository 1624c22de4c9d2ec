//! Following VIPs, pools (with their members) and monitors other
//! controllers write to a shared store (see `Module::follow_store`).
//!
//! What is checked here is what the configuration needs to be consistent
//! in itself (each object under its own key, VIP indexes unique, every
//! VIP's and monitor's pool present). Checks against this node's view of
//! hosts and tenant networks were made by the node that wrote the change
//! and are not repeated, as loading at start does not repeat them: this
//! node may not know a tenant network yet (the overlay follows it on its
//! own), and a VIP whose network it does not know waits, as after a
//! restart, until it does.

use std::collections::BTreeSet;

use flowgate_controller::module::{follow_object, Ctx, Followed, StoreSync};
use tracing::warn;

use super::LoadBalancer;
use crate::model::{Config, Monitor, Pool, Vip};
use crate::persist::{MONITORS, POOLS, VIPS};

/// The store prefixes of the configuration.
pub(super) const FOLLOWED: [&str; 3] = [VIPS, POOLS, MONITORS];

impl LoadBalancer {
    /// The configuration the store holds after `sync`.
    fn followed(&self, sync: &StoreSync) -> Result<Config, String> {
        let current = &self.config;
        let mut next = if sync.complete {
            Config::default()
        } else {
            current.clone()
        };
        for (key, value) in &sync.changed {
            let value = value.as_deref();
            let at = |id: &str| (key.as_str(), id.to_owned());
            if let Some(id) = key.strip_prefix(VIPS) {
                let (map, now) = (&mut next.vips, &current.vips);
                follow_object(map, now, at(id), value, |v: &Vip| v.id == id);
            } else if let Some(id) = key.strip_prefix(POOLS) {
                let (map, now) = (&mut next.pools, &current.pools);
                follow_object(map, now, at(id), value, |p: &Pool| p.id == id);
            } else if let Some(id) = key.strip_prefix(MONITORS) {
                let (map, now) = (&mut next.monitors, &current.monitors);
                follow_object(map, now, at(id), value, |m: &Monitor| m.id == id);
            }
        }
        let mut indexes = BTreeSet::new();
        for vip in next.vips.values() {
            if !indexes.insert(vip.index) {
                return Err(format!("VIP {:?} reuses index {}", vip.id, vip.index));
            }
            if !next.pools.contains_key(&vip.pool) {
                return Err(format!("VIP {:?} names no pool {:?}", vip.id, vip.pool));
            }
        }
        if let Some(m) = next
            .monitors
            .values()
            .find(|m| !next.pools.contains_key(&m.pool))
        {
            return Err(format!("monitor {:?} names no pool {:?}", m.id, m.pool));
        }
        Ok(next)
    }

    /// `Module::follow_store`: takes the store's configuration and
    /// declares what changes, as a service write does.
    pub(super) fn follow(&mut self, sync: &StoreSync, ctx: &mut Ctx) -> Followed {
        let next = match self.followed(sync) {
            Ok(next) => next,
            Err(error) => {
                warn!(%error, "the store holds a load balancer configuration that does not validate; keeping the current one");
                return Followed::Refused;
            }
        };
        if next == self.config {
            return Followed::Taken;
        }
        for gone in self.config.vips.values() {
            if next.vips.get(&gone.id).map(|v| v.index) != Some(gone.index) {
                self.weights.remove(&gone.index);
            }
        }
        self.config = next;
        self.sync(ctx);
        Followed::Taken
    }
}
