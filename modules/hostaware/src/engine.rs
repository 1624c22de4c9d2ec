//! The rule engine, pure: readings in, transitions out, on whatever clock
//! the caller passes (tests simulate one).
//!
//! Per (rule, host) it counts consecutive polls past the threshold (and,
//! once active, past the clear threshold), holds a reverted rule off for
//! its cooldown, expires `after` reverts, and ignores what stale or missing
//! sources say: they neither trigger nor revert, and they break a run of
//! consecutive polls. Which active rules actually act is decided per slot
//! ([`Engine::desired`]): the highest priority, then the lowest id.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use crate::model::{Revert, Rule, Slot};
use crate::sources::{Sample, SourceError};

/// (rule id, host id).
pub type Key = (u32, String);

/// What a poll gave for one rule on one host.
pub type Reading = Result<Sample, SourceError>;

/// Per (rule, host) state.
#[derive(Debug, Clone, Default, PartialEq)]
struct Track {
    hits: u32,
    clears: u32,
    /// Since when the rule has been active on the host.
    active: Option<SystemTime>,
    /// No new activation before this.
    cooldown_until: Option<SystemTime>,
    /// The source's last error, while it lasts.
    failing: Option<SourceError>,
}

/// What changed for one (rule, host).
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// Past the threshold for `for` polls: the rule is active.
    ThresholdMet { value: f64 },
    /// Back past the clear threshold for `for` polls: no longer active.
    Recovered { value: f64 },
    /// `revert: after` ran out.
    Expired,
    /// Past the threshold but in its cooldown: nothing done (reported once
    /// per cooldown).
    HeldByCooldown { value: f64, until: SystemTime },
    /// The source stopped giving values (reported once until it recovers).
    SourceFailing(SourceError),
    /// It gives values again.
    SourceBack,
}

#[derive(Debug, Default)]
pub struct Engine {
    tracks: BTreeMap<Key, Track>,
    /// Cooldown holds reported, so each is reported once.
    held: BTreeSet<Key>,
}

impl Engine {
    /// Feeds one reading of `rule` on `host` taken at `now`.
    pub fn observe(
        &mut self,
        rule: &Rule,
        host: &str,
        reading: Reading,
        now: SystemTime,
    ) -> Vec<Transition> {
        let key = (rule.id, host.to_owned());
        let track = self.tracks.entry(key.clone()).or_default();
        let mut out = Vec::new();
        let sample = match reading {
            Err(SourceError::NotYet(_)) => return out,
            Err(e) => {
                track.hits = 0;
                track.clears = 0;
                if track.failing.as_ref().is_none_or(|f| !same_kind(f, &e)) {
                    out.push(Transition::SourceFailing(e.clone()));
                }
                track.failing = Some(e);
                return out;
            }
            Ok(sample) => sample,
        };
        if track.failing.take().is_some() {
            out.push(Transition::SourceBack);
        }
        let value = sample.value;
        match track.active {
            None => {
                if !rule.breached(value) {
                    track.hits = 0;
                    self.held.remove(&key);
                    return out;
                }
                track.hits += 1;
                if track.hits < rule.for_polls {
                    return out;
                }
                if let Some(until) = track.cooldown_until.filter(|u| now < *u) {
                    if self.held.insert(key) {
                        out.push(Transition::HeldByCooldown { value, until });
                    }
                    return out;
                }
                self.held.remove(&key);
                track.hits = 0;
                track.clears = 0;
                track.active = Some(now);
                out.push(Transition::ThresholdMet { value });
            }
            Some(_) => {
                if rule.revert != (Revert::OnRecovery {}) || !rule.recovered(value) {
                    track.clears = 0;
                    return out;
                }
                track.clears += 1;
                if track.clears >= rule.for_polls {
                    deactivate(track, rule, now);
                    out.push(Transition::Recovered { value });
                }
            }
        }
        out
    }

    /// Ends activations whose `revert: after` ran out by `now`.
    pub fn expire(
        &mut self,
        rules: &BTreeMap<u32, Rule>,
        now: SystemTime,
    ) -> Vec<(Key, Transition)> {
        let mut out = Vec::new();
        for (key, track) in &mut self.tracks {
            let Some(rule) = rules.get(&key.0) else {
                continue;
            };
            if let (Some(since), Revert::After { seconds }) = (track.active, rule.revert) {
                if now >= since + Duration::from_secs(seconds) {
                    deactivate(track, rule, now);
                    out.push((key.clone(), Transition::Expired));
                }
            }
        }
        out
    }

    /// Marks `rule` active on `host` since `since` (a reaction in place
    /// when the controller started): it is not applied again.
    pub fn restore(&mut self, rule: u32, host: &str, since: SystemTime) {
        let track = self.tracks.entry((rule, host.to_owned())).or_default();
        track.active = Some(since);
    }

    /// Forgets every (rule, host) that `keep` refuses (a rule deleted or
    /// disabled, a host no longer selected).
    pub fn retain(&mut self, mut keep: impl FnMut(&Key) -> bool) {
        self.tracks.retain(|k, _| keep(k));
        self.held.retain(|k| keep(k));
    }

    pub fn is_active(&self, rule: u32, host: &str) -> bool {
        self.tracks
            .get(&(rule, host.to_owned()))
            .is_some_and(|t| t.active.is_some())
    }

    /// Active (rule, host) pairs with the time they became active.
    pub fn active(&self) -> impl Iterator<Item = (&Key, SystemTime)> {
        self.tracks
            .iter()
            .filter_map(|(k, t)| t.active.map(|since| (k, since)))
    }

    /// Which rule acts in each (host, slot): of the active rules wanting
    /// it, the highest priority, then the lowest id.
    pub fn desired(&self, rules: &BTreeMap<u32, Rule>) -> BTreeMap<(String, Slot), u32> {
        let mut out: BTreeMap<(String, Slot), u32> = BTreeMap::new();
        for ((rule_id, host), _) in self.active() {
            let Some(rule) = rules.get(rule_id) else {
                continue;
            };
            let slot = rule.action.slot(rule.id);
            let better = |current: &u32| {
                let other = &rules[current];
                (rule.priority, std::cmp::Reverse(rule.id))
                    > (other.priority, std::cmp::Reverse(other.id))
            };
            match out.get(&(host.clone(), slot)) {
                Some(current) if !better(current) => {}
                _ => {
                    out.insert((host.clone(), slot), rule.id);
                }
            }
        }
        out
    }
}

fn deactivate(track: &mut Track, rule: &Rule, now: SystemTime) {
    track.active = None;
    track.hits = 0;
    track.clears = 0;
    track.cooldown_until =
        (rule.cooldown_s > 0).then(|| now + Duration::from_secs(rule.cooldown_s));
}

/// Two errors of the same kind (a stale file's age grows every poll: one
/// report is enough).
fn same_kind(a: &SourceError, b: &SourceError) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

#[cfg(test)]
mod tests;
