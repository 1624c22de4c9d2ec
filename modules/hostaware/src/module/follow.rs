//! Following settings, monitored hosts and rules other controllers write
//! to a shared store (see `Module::follow_store`). The module declares no
//! flows: following is taking the configuration and handing its runner
//! the new plan. Which node's runner acts on it is the runner's concern
//! (one per cluster, see `crate::runner`).
//!
//! Checked here is what the configuration needs to be consistent in
//! itself: each object valid and under its own key, and every rule's
//! action possible on every host it selects (as a REST write checks).

use std::collections::BTreeMap;

use flowgate_controller::module::{Ctx, Followed, StoreSync};
use serde::de::DeserializeOwned;
use tracing::warn;

use super::HostAware;
use crate::model::{Config, MonitoredHost, Rule, Settings};
use crate::persist::{rule_key, HOSTS, RULES, SETTINGS};

/// The store prefixes of the configuration (`SETTINGS` is one key).
pub(super) const FOLLOWED: [&str; 3] = [SETTINGS, HOSTS, RULES];

/// The stored value at `key` if it decodes and belongs there (`key_of`
/// says where it would be stored), else (with a warning) `current`.
fn decode<T: DeserializeOwned + Clone>(
    key: &str,
    bytes: &[u8],
    current: Option<&T>,
    key_of: impl Fn(&T) -> String,
) -> Option<T> {
    match serde_json::from_slice::<T>(bytes) {
        Ok(object) if key_of(&object) == key => Some(object),
        Ok(_) => {
            warn!(
                key,
                "ignoring a host-aware object stored under another's key"
            );
            current.cloned()
        }
        Err(e) => {
            warn!(key, error = %e, "ignoring an undecodable host-aware object in the store");
            current.cloned()
        }
    }
}

fn follow_key<K: Ord, T: DeserializeOwned + Clone>(
    map: &mut BTreeMap<K, T>,
    current: &BTreeMap<K, T>,
    (key, id): (&str, K),
    value: Option<&[u8]>,
    key_of: impl Fn(&T) -> String,
) {
    match value.and_then(|bytes| decode(key, bytes, current.get(&id), key_of)) {
        Some(object) => map.insert(id, object),
        None => map.remove(&id),
    };
}

/// Whether `config` is consistent in itself (see the module docs).
fn check(config: &Config) -> Result<(), String> {
    config
        .settings
        .validate()
        .map_err(|e| format!("settings: {e}"))?;
    for h in config.hosts.values() {
        h.validate().map_err(|e| format!("host {:?}: {e}", h.id))?;
    }
    for r in config.rules.values() {
        r.validate().map_err(|e| format!("rule {}: {e}", r.id))?;
        r.check_hosts(config.hosts.values())
            .map_err(|e| format!("rule {}: {e}", r.id))?;
    }
    Ok(())
}

impl HostAware {
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
            if key == SETTINGS {
                next.settings = value
                    .and_then(|bytes| {
                        decode(key, bytes, Some(&current.settings), |_: &Settings| {
                            SETTINGS.to_owned()
                        })
                    })
                    .unwrap_or_default();
            } else if let Some(id) = key.strip_prefix(HOSTS) {
                let key_of = |h: &MonitoredHost| format!("{HOSTS}{}", h.id);
                let (map, now) = (&mut next.hosts, &current.hosts);
                follow_key(map, now, (key, id.to_owned()), value, key_of);
            } else if let Some(id) = key.strip_prefix(RULES) {
                let Ok(id) = id.parse::<u32>() else {
                    warn!(key, "ignoring a host-aware rule key that names no id");
                    continue;
                };
                let key_of = |r: &Rule| rule_key(r.id);
                follow_key(&mut next.rules, &current.rules, (key, id), value, key_of);
            }
        }
        check(&next)?;
        Ok(next)
    }

    /// `Module::follow_store`: takes the store's configuration and hands
    /// it to the runner, as a service write does.
    pub(super) fn follow(&mut self, sync: &StoreSync, _ctx: &mut Ctx) -> Followed {
        match self.followed(sync) {
            Ok(next) => {
                if next != self.config {
                    self.config = next;
                    self.publish();
                }
                Followed::Taken
            }
            Err(error) => {
                warn!(%error, "the store holds a host-aware configuration that does not validate; keeping the current one");
                Followed::Refused
            }
        }
    }
}
