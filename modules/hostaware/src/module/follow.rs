//! Following settings, monitored hosts and rules other controllers write
//! to a shared store (see `Module::follow_store`). The module declares no
//! flows: following is taking the configuration and handing its runner
//! the new plan. Which node's runner acts on it is the runner's concern
//! (one per cluster, see `crate::runner`).
//!
//! Checked here is what the configuration needs to be consistent in
//! itself: each object valid and under its own key, and every rule's
//! action possible on every host it selects (as a REST write checks).

use flowgate_controller::module::{decode_followed, follow_object, Ctx, Followed, StoreSync};
use tracing::warn;

use super::HostAware;
use crate::model::{Config, MonitoredHost, Rule, Settings};
use crate::persist::{rule_key, HOSTS, RULES, SETTINGS};

/// The store prefixes of the configuration (`SETTINGS` is one key).
pub(super) const FOLLOWED: [&str; 3] = [SETTINGS, HOSTS, RULES];

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
                next.settings = match value {
                    None => Settings::default(),
                    Some(bytes) => decode_followed(key, bytes, |_: &Settings| true)
                        .unwrap_or_else(|| current.settings.clone()),
                };
            } else if let Some(id) = key.strip_prefix(HOSTS) {
                let (map, now) = (&mut next.hosts, &current.hosts);
                follow_object(
                    map,
                    now,
                    (key, id.to_owned()),
                    value,
                    |h: &MonitoredHost| h.id == id,
                );
            } else if let Some(id) = key.strip_prefix(RULES) {
                let Ok(id) = id.parse::<u32>() else {
                    warn!(key, "ignoring a host-aware rule key that names no id");
                    continue;
                };
                let (map, now) = (&mut next.rules, &current.rules);
                follow_object(map, now, (key, id), value, |r: &Rule| {
                    rule_key(r.id) == *key
                });
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
