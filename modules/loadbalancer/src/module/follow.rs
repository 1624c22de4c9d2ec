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

use flowgate_controller::module::{Ctx, Followed, StoreSync};
use serde::de::DeserializeOwned;
use tracing::warn;

use super::LoadBalancer;
use crate::model::Config;
use crate::persist::{MONITORS, POOLS, VIPS};

/// The store prefixes of the configuration.
pub(super) const FOLLOWED: [&str; 3] = [VIPS, POOLS, MONITORS];

/// Applies one followed key to `map`: the stored value when it decodes
/// and names `id`, else (with a warning) what the module has now.
fn follow_key<T: DeserializeOwned + Clone>(
    map: &mut std::collections::BTreeMap<String, T>,
    current: &std::collections::BTreeMap<String, T>,
    key: &str,
    id: &str,
    value: Option<&[u8]>,
    id_of: fn(&T) -> &str,
) {
    let next = match value {
        None => None,
        Some(bytes) => match serde_json::from_slice::<T>(bytes) {
            Ok(object) if id_of(&object) == id => Some(object),
            Ok(_) => {
                warn!(
                    key,
                    "ignoring a load balancer object stored under another's key"
                );
                current.get(id).cloned()
            }
            Err(e) => {
                warn!(key, error = %e, "ignoring an undecodable load balancer object in the store");
                current.get(id).cloned()
            }
        },
    };
    match next {
        Some(object) => map.insert(id.to_owned(), object),
        None => map.remove(id),
    };
}

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
            if let Some(id) = key.strip_prefix(VIPS) {
                follow_key(&mut next.vips, &current.vips, key, id, value, |v| &v.id);
            } else if let Some(id) = key.strip_prefix(POOLS) {
                follow_key(&mut next.pools, &current.pools, key, id, value, |p| &p.id);
            } else if let Some(id) = key.strip_prefix(MONITORS) {
                let monitors = (&mut next.monitors, &current.monitors);
                follow_key(monitors.0, monitors.1, key, id, value, |m| &m.id);
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
