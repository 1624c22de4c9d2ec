//! The QoS configuration as a whole — profiles, bindings, policies — with
//! the checks that span resources (references, overlaps, queues that must
//! exist where a policy sends packets).

use std::collections::BTreeMap;

use flowgate_controller::policy::FieldError;

use crate::compile::MAX_ID;
use crate::model::{Binding, Placement, Policy, Profile, Target};

/// Why a change was refused (nothing was changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QosError {
    /// A value refused, or fields that contradict each other (422).
    Invalid(FieldError),
    /// Clashes with what exists (409).
    Conflict(FieldError),
    /// Refers to something that does not exist (404).
    Missing(FieldError),
}

impl From<FieldError> for QosError {
    fn from(e: FieldError) -> Self {
        QosError::Invalid(e)
    }
}

fn conflict(field: impl Into<String>, reason: impl Into<String>) -> QosError {
    QosError::Conflict(FieldError::new(field, reason))
}

fn missing(field: impl Into<String>, reason: impl Into<String>) -> QosError {
    QosError::Missing(FieldError::new(field, reason))
}

/// Everything the QoS module holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QosConfig {
    pub profiles: BTreeMap<String, Profile>,
    pub bindings: BTreeMap<String, Binding>,
    pub policies: BTreeMap<u32, Policy>,
}

impl QosConfig {
    /// The id POST gives a policy without one.
    pub fn next_policy_id(&self) -> Option<u32> {
        match self.policies.keys().next_back() {
            None => Some(1),
            Some(max) => max.checked_add(1).filter(|id| *id <= MAX_ID),
        }
    }

    /// Whether `profile` may be added or replace its id: a replacement
    /// must keep every queue a policy sends packets to.
    pub fn check_profile(&self, profile: &Profile) -> Result<(), QosError> {
        profile.validate()?;
        if let Some(old) = self.profiles.get(&profile.id) {
            for queue in old
                .queues
                .keys()
                .filter(|q| !profile.queues.contains_key(q))
            {
                if let Some(p) = self
                    .policies
                    .values()
                    .find(|p| p.actions.queue.as_ref().is_some_and(|a| a.id == *queue))
                {
                    let mut without = self.clone();
                    without.profiles.insert(profile.id.clone(), profile.clone());
                    if without.check_queue(p).is_err() {
                        return Err(conflict(
                            "queues",
                            format!("policy {} sends packets to queue {queue}", p.id),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether profile `id` may go: no binding may use it.
    pub fn check_profile_unused(&self, id: &str) -> Result<(), QosError> {
        match self.bindings.values().find(|b| b.profile == id) {
            Some(b) => Err(conflict(
                "id",
                format!("binding {} uses profile {id}; delete it first", b.id),
            )),
            None => Ok(()),
        }
    }

    /// Whether `binding` may be added or replace its id.
    pub fn check_binding(&self, binding: &Binding) -> Result<Target, QosError> {
        let target = binding.target()?;
        if !self.profiles.contains_key(&binding.profile) {
            return Err(missing(
                "profile",
                format!("no QoS profile {:?}", binding.profile),
            ));
        }
        if let Some(other) = self
            .bindings
            .values()
            .find(|b| b.id != binding.id && b.target().ok().as_ref() == Some(&target))
        {
            return Err(conflict(
                "port",
                format!("binding {} already puts a profile there", other.id),
            ));
        }
        Ok(target)
    }

    /// Whether binding `id` may go: the queues policies use must stay.
    pub fn check_binding_removal(&self, id: &str) -> Result<(), QosError> {
        let mut without = self.clone();
        without.bindings.remove(id);
        for p in self.policies.values() {
            if p.actions.queue.is_some() && without.check_queue(p).is_err() {
                return Err(conflict(
                    "id",
                    format!("policy {} sends packets to a queue of this binding", p.id),
                ));
            }
        }
        Ok(())
    }

    /// Whether `policy` may be added or replace its id. `provisioned` says
    /// whether queues made outside Flowgate (an operator's `ovs-vsctl`, as
    /// Floodlight users did) serve the policy's queue where its packets
    /// leave.
    pub fn check_policy(
        &self,
        policy: &Policy,
        provisioned: &dyn Fn(&Policy, u32) -> bool,
    ) -> Result<(), QosError> {
        policy.validate()?;
        if policy.id > MAX_ID {
            return Err(QosError::Invalid(FieldError::new(
                "id",
                format!("must be at most {MAX_ID} (it numbers the policy's meter)"),
            )));
        }
        if let Some(queue) = &policy.actions.queue {
            if !provisioned(policy, queue.id) {
                self.check_queue(policy)?;
            }
        }
        for other in self
            .policies
            .values()
            .filter(|o| o.id != policy.id && o.priority == policy.priority)
        {
            if overlaps(policy, other) {
                return Err(conflict(
                    "priority",
                    format!(
                        "policy {} has the same priority ({}) and matches some of the same \
                         packets in the same places; give one a different priority",
                        other.id, policy.priority
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A queue action needs its queue on the port(s) the packets leave by:
    /// the named port's binding, or some binding of the placement.
    fn check_queue(&self, policy: &Policy) -> Result<(), QosError> {
        let Some(queue) = &policy.actions.queue else {
            return Ok(());
        };
        let has_queue = |b: &&Binding| {
            self.profiles
                .get(&b.profile)
                .is_some_and(|p| p.queues.contains_key(&queue.id))
        };
        let found = self.bindings.values().filter(has_queue).any(|b| {
            match (b.target(), &policy.placement, &queue.port) {
                (Ok(Target::Port { dpid, port }), Placement::Switch(d), Some(want)) => {
                    dpid == d.0 && port == *want
                }
                (Ok(Target::Edge { dpid }), Placement::Switch(d), Some(_)) => dpid == d.0,
                (
                    Ok(Target::Port { dpid, .. } | Target::Edge { dpid }),
                    Placement::Switch(d),
                    None,
                ) => dpid == d.0,
                (Ok(Target::IfaceId(_)), Placement::Switch(_), _) => queue.port.is_none(),
                (Ok(_), Placement::All | Placement::Path(_), _) => true,
                (Err(_), _, _) => false,
            }
        });
        if found {
            Ok(())
        } else {
            let place = match (&policy.placement, &queue.port) {
                (Placement::Switch(d), Some(port)) => format!("port {port} of switch {}", d.0),
                (Placement::Switch(d), None) => format!("any port of switch {}", d.0),
                _ => "any bound port".to_owned(),
            };
            Err(conflict(
                "actions.queue.id",
                format!(
                    "queue {} is not provisioned on {place}: bind a profile with that queue first",
                    queue.id
                ),
            ))
        }
    }
}

/// Whether two policies can match a common packet in a common place.
/// Path placements are not known statically: they may meet anything.
pub fn overlaps(a: &Policy, b: &Policy) -> bool {
    fn both<T: PartialEq>(x: &Option<T>, y: &Option<T>) -> bool {
        match (x, y) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        }
    }
    let same_place = match (&a.placement, &b.placement) {
        (Placement::Switch(x), Placement::Switch(y)) => x == y,
        _ => true,
    };
    same_place
        && both(&a.tenant, &b.tenant)
        && both(&a.in_port, &b.in_port)
        && a.match_.overlaps(a.eth_types(), &b.match_, b.eth_types())
}

#[cfg(test)]
mod tests;
