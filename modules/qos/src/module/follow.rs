//! Following policies, profiles and bindings other controllers write to a
//! shared store (see `Module::follow_store`).
//!
//! What is checked here is what the configuration needs to be consistent
//! in itself: each object valid and under its own key, every binding's
//! profile present, no two bindings on one target, no two policies of one
//! priority overlapping. Whether a policy's queue is provisioned where its
//! packets leave depends on the hosts the writing node saw (queues made
//! outside Flowgate count) and is not repeated, as loading at start does
//! not repeat it. A followed change is declared through the same code as
//! a REST write: policies to the switches, profiles and bindings as the
//! hosts' OVSDB rows.

use std::collections::BTreeMap;

use flowgate_controller::module::{follow_object, Ctx, Followed, StoreSync};
use tracing::warn;

use super::Qos;
use crate::compile::MAX_ID;
use crate::config::{overlaps, QosConfig};
use crate::model::{Binding, Policy, Profile};
use crate::persist::{policy_key, BINDINGS, POLICIES, PROFILES};

/// The store prefixes of the configuration.
pub(super) const FOLLOWED: [&str; 3] = [POLICIES, PROFILES, BINDINGS];

/// Whether `config` is consistent in itself (see the module docs).
fn check(config: &QosConfig) -> Result<(), String> {
    for p in config.profiles.values() {
        p.validate()
            .map_err(|e| format!("profile {:?}: {e}", p.id))?;
    }
    let mut targets = BTreeMap::new();
    for b in config.bindings.values() {
        let target = b.target().map_err(|e| format!("binding {:?}: {e}", b.id))?;
        if !config.profiles.contains_key(&b.profile) {
            return Err(format!(
                "binding {:?} names no profile {:?}",
                b.id, b.profile
            ));
        }
        if let Some(other) = targets.insert(target, &b.id) {
            return Err(format!("bindings {other:?} and {:?} share a port", b.id));
        }
    }
    let policies: Vec<&Policy> = config.policies.values().collect();
    for (i, p) in policies.iter().enumerate() {
        p.validate().map_err(|e| format!("policy {}: {e}", p.id))?;
        if p.id > MAX_ID {
            return Err(format!("policy {} is above {MAX_ID}", p.id));
        }
        if let Some(o) = policies[i + 1..]
            .iter()
            .find(|o| o.priority == p.priority && overlaps(p, o))
        {
            return Err(format!(
                "policies {} and {} overlap at priority {}",
                p.id, o.id, p.priority
            ));
        }
    }
    Ok(())
}

impl Qos {
    /// The configuration the store holds after `sync`.
    fn followed(&self, sync: &StoreSync) -> Result<QosConfig, String> {
        let current = &self.config;
        let mut next = if sync.complete {
            QosConfig::default()
        } else {
            current.clone()
        };
        for (key, value) in &sync.changed {
            let value = value.as_deref();
            if let Some(id) = key.strip_prefix(POLICIES) {
                let Ok(id) = id.parse::<u32>() else {
                    warn!(key, "ignoring a QoS policy key that names no id");
                    continue;
                };
                let (map, now) = (&mut next.policies, &current.policies);
                follow_object(map, now, (key, id), value, |p: &Policy| {
                    policy_key(p.id) == *key
                });
            } else if let Some(id) = key.strip_prefix(PROFILES) {
                let (map, now) = (&mut next.profiles, &current.profiles);
                follow_object(map, now, (key, id.to_owned()), value, |p: &Profile| {
                    p.id == id
                });
            } else if let Some(id) = key.strip_prefix(BINDINGS) {
                let (map, now) = (&mut next.bindings, &current.bindings);
                follow_object(map, now, (key, id.to_owned()), value, |b: &Binding| {
                    b.id == id
                });
            }
        }
        check(&next)?;
        Ok(next)
    }

    /// `Module::follow_store`: takes the store's configuration and declares
    /// what changes, as a service write does.
    pub(super) fn follow(&mut self, sync: &StoreSync, ctx: &mut Ctx) -> Followed {
        let next = match self.followed(sync) {
            Ok(next) => next,
            Err(error) => {
                warn!(%error, "the store holds a QoS configuration that does not validate; keeping the current one");
                return Followed::Refused;
            }
        };
        if next == self.config {
            return Followed::Taken;
        }
        let policies: Vec<u32> = self
            .config
            .policies
            .keys()
            .chain(next.policies.keys())
            .filter(|id| self.config.policies.get(id) != next.policies.get(id))
            .copied()
            .collect();
        let rows = next.profiles != self.config.profiles || next.bindings != self.config.bindings;
        self.config = next;
        for id in policies {
            self.declare_policy(id, ctx);
        }
        if rows {
            self.declare_rows();
        }
        Followed::Taken
    }
}
