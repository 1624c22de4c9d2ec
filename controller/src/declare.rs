//! Which scope of which module declared each entry on one switch, and what
//! a new declaration of a scope changes (see [`crate::module::Ctx::declare`]).
//!
//! Pure bookkeeping shared by the core and the test switch: it decides what
//! to desire and what to withdraw; comparing specs (is a desired entry new
//! or changed?) is the desired tables' job.
//!
//! An entry belongs to the scope that declared it last: declaring a key
//! another scope of the same owner holds moves it (that is how entries
//! leave [`Scope::ADOPTED`]), and a scope that drops a key it no longer
//! holds withdraws nothing.

use std::collections::HashMap;

use crate::cookie::Owner;
use crate::desired::{FlowEntry, FlowKey, GroupEntry, MeterEntry};
use crate::module::{Desired, Scope};

/// A scope of one module.
pub type Holder = (Owner, Scope);

/// The declarations on one switch.
#[derive(Debug, Clone, Default)]
pub struct Declarations {
    scopes: HashMap<Holder, Held>,
    flows: HashMap<FlowKey, Holder>,
    groups: HashMap<u32, Holder>,
    meters: HashMap<u32, Holder>,
}

/// The keys one scope declared last (possibly some another scope has taken
/// since: the holder maps say who holds what).
#[derive(Debug, Clone, Default)]
struct Held {
    flows: Vec<FlowKey>,
    groups: Vec<u32>,
    meters: Vec<u32>,
}

/// What a declaration changes in desired state.
#[derive(Debug, Default)]
pub struct Delta {
    /// Every declared entry (unchanged ones cost the tables a comparison).
    pub flows: Vec<FlowEntry>,
    pub groups: Vec<GroupEntry>,
    pub meters: Vec<MeterEntry>,
    /// Entries that no scope holds any more.
    pub dropped_flows: Vec<FlowKey>,
    pub dropped_groups: Vec<u32>,
    pub dropped_meters: Vec<u32>,
}

impl Declarations {
    /// Replaces what `owner`'s `scope` declared with `desired`.
    pub fn declare(&mut self, owner: Owner, scope: Scope, desired: Desired) -> Delta {
        let holder = (owner, scope);
        let old = self.scopes.remove(&holder).unwrap_or_default();
        // Release the old keys first; those the new declaration does not
        // take back are dropped.
        let released_flows = release(&mut self.flows, old.flows, holder);
        let released_groups = release(&mut self.groups, old.groups, holder);
        let released_meters = release(&mut self.meters, old.meters, holder);
        let mut held = Held::default();
        for entry in &desired.flows {
            self.flows.insert(entry.key.clone(), holder);
            held.flows.push(entry.key.clone());
        }
        for entry in &desired.groups {
            self.groups.insert(entry.id, holder);
            held.groups.push(entry.id);
        }
        for entry in &desired.meters {
            self.meters.insert(entry.id, holder);
            held.meters.push(entry.id);
        }
        let delta = Delta {
            dropped_flows: unheld(&self.flows, released_flows),
            dropped_groups: unheld(&self.groups, released_groups),
            dropped_meters: unheld(&self.meters, released_meters),
            flows: desired.flows,
            groups: desired.groups,
            meters: desired.meters,
        };
        if !held.flows.is_empty() || !held.groups.is_empty() || !held.meters.is_empty() {
            self.scopes.insert(holder, held);
        }
        delta
    }

    /// Records entries found on the switch as held by `owner`'s
    /// [`Scope::ADOPTED`] (the caller desires them as they are).
    pub fn adopt(
        &mut self,
        owner: Owner,
        flows: impl IntoIterator<Item = FlowKey>,
        groups: impl IntoIterator<Item = u32>,
        meters: impl IntoIterator<Item = u32>,
    ) {
        let holder = (owner, Scope::ADOPTED);
        let held = self.scopes.entry(holder).or_default();
        for key in flows {
            self.flows.insert(key.clone(), holder);
            held.flows.push(key);
        }
        for id in groups {
            self.groups.insert(id, holder);
            held.groups.push(id);
        }
        for id in meters {
            self.meters.insert(id, holder);
            held.meters.push(id);
        }
    }

    /// Ends adoption for `owner`: what is still adopted is dropped.
    pub fn settle(&mut self, owner: Owner) -> Delta {
        self.declare(owner, Scope::ADOPTED, Desired::default())
    }

    /// Who holds the entry at `key`, if a scope does.
    pub fn flow_holder(&self, key: &FlowKey) -> Option<Holder> {
        self.flows.get(key).copied()
    }

    /// Forgets a flow that left the switch by itself (expiry): a scope
    /// that declares it again gets it re-added.
    pub fn flow_gone(&mut self, key: &FlowKey) {
        self.flows.remove(key);
    }

    /// Number of adopted entries `owner` has not settled.
    pub fn adopted(&self, owner: Owner) -> usize {
        self.scopes
            .get(&(owner, Scope::ADOPTED))
            .map_or(0, |h| h.flows.len() + h.groups.len() + h.meters.len())
    }
}

/// Removes from `holders` the keys `holder` still holds; returns them.
fn release<K: std::hash::Hash + Eq>(
    holders: &mut HashMap<K, Holder>,
    keys: Vec<K>,
    holder: Holder,
) -> Vec<K> {
    keys.into_iter()
        .filter(|k| {
            if holders.get(k) == Some(&holder) {
                holders.remove(k);
                true
            } else {
                false
            }
        })
        .collect()
}

/// The released keys no scope took back.
fn unheld<K: std::hash::Hash + Eq>(holders: &HashMap<K, Holder>, released: Vec<K>) -> Vec<K> {
    released
        .into_iter()
        .filter(|k| !holders.contains_key(k))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{output_to, FlowSpec};
    use flowgate_openflow::{Match, Oxm};

    fn entry(port: u16) -> FlowEntry {
        FlowEntry::new(
            1,
            100,
            Match::new().with(Oxm::TcpDst(port)),
            FlowSpec::new(Owner::Firewall.cookie(1), output_to(1)),
        )
    }

    fn keys(flows: &[FlowEntry]) -> Vec<FlowKey> {
        flows.iter().map(|e| e.key.clone()).collect()
    }

    const A: Scope = Scope::new("rule", 1);
    const B: Scope = Scope::new("rule", 2);

    #[test]
    fn a_redeclared_scope_drops_only_what_it_left_out() {
        let mut d = Declarations::default();
        let first = d.declare(Owner::Firewall, A, Desired::flows([entry(1), entry(2)]));
        assert_eq!(first.flows.len(), 2);
        assert!(first.dropped_flows.is_empty());
        let second = d.declare(Owner::Firewall, A, Desired::flows([entry(2), entry(3)]));
        assert_eq!(keys(&second.flows), keys(&[entry(2), entry(3)]));
        assert_eq!(second.dropped_flows, keys(&[entry(1)]));
    }

    #[test]
    fn other_scopes_are_untouched() {
        let mut d = Declarations::default();
        d.declare(Owner::Firewall, A, Desired::flows([entry(1)]));
        d.declare(Owner::Firewall, B, Desired::flows([entry(2)]));
        let delta = d.declare(Owner::Firewall, A, Desired::default());
        assert_eq!(delta.dropped_flows, keys(&[entry(1)]));
        assert_eq!(d.flow_holder(&entry(2).key), Some((Owner::Firewall, B)));
    }

    #[test]
    fn a_key_moves_to_the_scope_that_declares_it_last() {
        let mut d = Declarations::default();
        d.declare(Owner::Firewall, A, Desired::flows([entry(1)]));
        d.declare(Owner::Firewall, B, Desired::flows([entry(1)]));
        // A no longer holds it: dropping it from A withdraws nothing.
        assert!(d
            .declare(Owner::Firewall, A, Desired::default())
            .dropped_flows
            .is_empty());
        assert_eq!(
            d.declare(Owner::Firewall, B, Desired::default())
                .dropped_flows,
            keys(&[entry(1)])
        );
    }

    #[test]
    fn settling_drops_what_was_adopted_and_not_declared() {
        let mut d = Declarations::default();
        d.adopt(
            Owner::Forwarding,
            keys(&[entry(1), entry(2)]),
            [Owner::Forwarding.group_id(1)],
            [],
        );
        assert_eq!(d.adopted(Owner::Forwarding), 3);
        d.declare(Owner::Forwarding, A, Desired::flows([entry(2)]));
        let settled = d.settle(Owner::Forwarding);
        assert_eq!(settled.dropped_flows, keys(&[entry(1)]));
        assert_eq!(settled.dropped_groups, vec![Owner::Forwarding.group_id(1)]);
        assert_eq!(d.adopted(Owner::Forwarding), 0);
        assert_eq!(d.flow_holder(&entry(2).key), Some((Owner::Forwarding, A)));
    }
}
