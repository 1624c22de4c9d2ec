//! Following networks and ports other controllers write to a shared store
//! (see `Module::follow_store`).

use std::collections::BTreeSet;

use flowgate_controller::module::{follow_object, Ctx, Followed, StoreSync};
use tracing::warn;

use super::Overlay;
use crate::model::{Config, Network, Port};
use crate::service::{NETWORKS, PORTS};

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
            let value = value.as_deref();
            if let Some(id) = key.strip_prefix(NETWORKS) {
                let (map, now) = (&mut next.networks, &current.networks);
                let at = (key.as_str(), id.to_owned());
                follow_object(map, now, at, value, |n: &Network| n.id == id);
            } else if let Some((network, id)) =
                key.strip_prefix(PORTS).and_then(|k| k.split_once('/'))
            {
                let (map, now) = (&mut next.ports, &current.ports);
                let at = (key.as_str(), (network.to_owned(), id.to_owned()));
                follow_object(map, now, at, value, |p: &Port| {
                    p.network == network && p.id == id
                });
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
