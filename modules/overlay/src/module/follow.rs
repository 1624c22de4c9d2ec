//! Following networks and ports other controllers write to a shared store
//! (see `Module::follow_store`).

use std::collections::BTreeSet;

use flowgate_controller::module::{Ctx, Followed, StoreSync};
use serde::de::DeserializeOwned;
use tracing::warn;

use super::Overlay;
use crate::model::{Config, Network, Port};
use crate::service::{NETWORKS, PORTS};

/// Decodes a followed value that must name itself `id`; `None` (with a
/// warning) when it does not decode or names something else.
fn decode<T: DeserializeOwned>(
    key: &str,
    bytes: &[u8],
    names: impl FnOnce(&T) -> bool,
) -> Option<T> {
    match serde_json::from_slice::<T>(bytes) {
        Ok(value) if names(&value) => Some(value),
        Ok(_) => {
            warn!(key, "ignoring an overlay object stored under another's key");
            None
        }
        Err(e) => {
            warn!(key, error = %e, "ignoring an undecodable overlay object in the store");
            None
        }
    }
}

impl Overlay {
    /// The configuration the store holds after `sync`; a value that does
    /// not decode leaves the module's own for its key. Ports whose network
    /// is gone go with it, as a network delete takes its ports.
    fn followed(&self, sync: &StoreSync) -> Result<Config, String> {
        let current = self.config();
        let mut next = if sync.complete {
            Config::default()
        } else {
            current.clone()
        };
        for (key, value) in &sync.changed {
            if let Some(id) = key.strip_prefix(NETWORKS) {
                let network = match value {
                    None => None,
                    Some(bytes) => decode(key, bytes, |n: &Network| n.id == id)
                        .or_else(|| current.networks.get(id).cloned()),
                };
                match network {
                    Some(network) => next.networks.insert(id.to_owned(), network),
                    None => next.networks.remove(id),
                };
            } else if let Some((network, id)) =
                key.strip_prefix(PORTS).and_then(|k| k.split_once('/'))
            {
                let k = (network.to_owned(), id.to_owned());
                let port = match value {
                    None => None,
                    Some(bytes) => {
                        decode(key, bytes, |p: &Port| p.network == network && p.id == id)
                            .or_else(|| current.ports.get(&k).cloned())
                    }
                };
                match port {
                    Some(port) => next.ports.insert(k, port),
                    None => next.ports.remove(&k),
                };
            } else {
                warn!(key, "ignoring a store key that names no overlay object");
            }
        }
        next.ports
            .retain(|(network, _), _| next.networks.contains_key(network));
        let mut vnis = BTreeSet::new();
        if let Some(n) = next.networks.values().find(|n| !vnis.insert(n.vni)) {
            return Err(format!("network {:?} reuses VNI {}", n.id, n.vni));
        }
        let mut ids = BTreeSet::new();
        if let Some(p) = next.ports.values().find(|p| !ids.insert(&p.id)) {
            return Err(format!("port {:?} is in two networks", p.id));
        }
        Ok(next)
    }

    /// `Module::follow_store`: applies what differs, as the service's
    /// writes do (networks and ports put before anything is removed).
    pub(super) fn follow(&mut self, sync: &StoreSync, ctx: &mut Ctx) -> Followed {
        let next = match self.followed(sync) {
            Ok(next) => next,
            Err(error) => {
                warn!(%error, "the store holds an overlay configuration that does not validate; keeping the current one");
                return Followed::Refused;
            }
        };
        let current = self.config().clone();
        for (id, network) in &next.networks {
            if current.networks.get(id) != Some(network) {
                self.put_network(network.clone(), ctx);
            }
        }
        for (k, port) in &next.ports {
            if current.ports.get(k) != Some(port) {
                self.put_port(port.clone(), ctx);
            }
        }
        for (network, id) in current.ports.keys() {
            let k = (network.clone(), id.clone());
            if !next.ports.contains_key(&k) && self.config().ports.contains_key(&k) {
                self.delete_port(network, id, ctx);
            }
        }
        for id in current.networks.keys() {
            if !next.networks.contains_key(id) {
                self.delete_network(id, ctx);
            }
        }
        self.publish(ctx);
        Followed::Taken
    }
}
