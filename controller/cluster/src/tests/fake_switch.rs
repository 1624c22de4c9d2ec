//! The OpenFlow 1.3 role rules of a switch (spec 6.3.6), nothing else: the
//! generation id it caches, stale refusal, demotion of the old master when
//! a new one is accepted, and slaves' writes refused with IS_SLAVE.

use std::collections::BTreeMap;

use flowgate_openflow::{controller_role, error_code, error_type, RoleMsg};

use crate::role::{RoleAnswer, RoleEvent, RoleState, SwitchRole};
use crate::{Generation, NodeId};

#[derive(Debug, Default)]
pub(crate) struct FakeSwitch {
    cached: Option<Generation>,
    roles: BTreeMap<NodeId, SwitchRole>,
    /// Writes it accepted, by whom, in order.
    pub(crate) writes: Vec<NodeId>,
}

/// What became of a node's attempt to write.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Write {
    Done,
    /// The node's own state said no (not master, or self-fenced).
    NotAttempted,
    /// The switch refused it with OFPBRC_IS_SLAVE.
    RefusedIsSlave,
}

impl FakeSwitch {
    pub(crate) fn connect(&mut self, node: &NodeId) {
        self.roles.insert(node.clone(), SwitchRole::Equal);
    }

    pub(crate) fn disconnect(&mut self, node: &NodeId) {
        self.roles.remove(node);
    }

    pub(crate) fn role_of(&self, node: &NodeId) -> Option<SwitchRole> {
        self.roles.get(node).copied()
    }

    pub(crate) fn masters(&self) -> Vec<&NodeId> {
        self.roles
            .iter()
            .filter(|(_, r)| **r == SwitchRole::Master)
            .map(|(n, _)| n)
            .collect()
    }

    pub(crate) fn role_request(&mut self, from: &NodeId, request: &RoleMsg) -> RoleAnswer {
        let Some(&current) = self.roles.get(from) else {
            return RoleAnswer::Timeout;
        };
        let new = match request.role {
            controller_role::MASTER | controller_role::SLAVE => {
                let generation = Generation(request.generation_id);
                if self.cached.is_some_and(|c| generation.is_stale_against(c)) {
                    return RoleAnswer::Error {
                        err_type: error_type::ROLE_REQUEST_FAILED,
                        code: error_code::role_request_failed::STALE,
                    };
                }
                self.cached = Some(generation);
                if request.role == controller_role::MASTER {
                    for (node, role) in self.roles.iter_mut() {
                        if node != from && *role == SwitchRole::Master {
                            *role = SwitchRole::Slave;
                        }
                    }
                    SwitchRole::Master
                } else {
                    SwitchRole::Slave
                }
            }
            controller_role::EQUAL => SwitchRole::Equal,
            controller_role::NOCHANGE => current,
            _ => {
                return RoleAnswer::Error {
                    err_type: error_type::ROLE_REQUEST_FAILED,
                    code: error_code::role_request_failed::BAD_ROLE,
                }
            }
        };
        self.roles.insert(from.clone(), new);
        RoleAnswer::Reply(RoleMsg {
            role: match new {
                SwitchRole::Equal => controller_role::EQUAL,
                SwitchRole::Master => controller_role::MASTER,
                SwitchRole::Slave => controller_role::SLAVE,
            },
            generation_id: self.cached.map_or(0, |g| g.0),
        })
    }

    /// A write (any of FLOW_MOD, GROUP_MOD, ...) from `from`.
    fn write(&mut self, from: &NodeId) -> Result<(), (u16, u16)> {
        match self.roles.get(from) {
            Some(SwitchRole::Slave) => {
                Err((error_type::BAD_REQUEST, error_code::bad_request::IS_SLAVE))
            }
            Some(_) => {
                self.writes.push(from.clone());
                Ok(())
            }
            None => Err((0, 0)),
        }
    }

    /// Node `me` tries to write, as the runtime would: only if its role
    /// state allows it at `now`, and telling it if the switch refuses.
    pub(crate) fn try_write(
        &mut self,
        me: &NodeId,
        role: &mut RoleState,
        now: std::time::Instant,
    ) -> Write {
        if !role.may_write(now) {
            return Write::NotAttempted;
        }
        self.write_unchecked(me, role, now)
    }

    /// A write that was checked earlier and reaches the switch only now
    /// (a process paused between its check and its write).
    pub(crate) fn write_unchecked(
        &mut self,
        me: &NodeId,
        role: &mut RoleState,
        now: std::time::Instant,
    ) -> Write {
        match self.write(me) {
            Ok(()) => Write::Done,
            Err(_) => {
                role.handle_write_refused(now);
                Write::RefusedIsSlave
            }
        }
    }

    /// Runs `role`'s events against this switch until it has none left:
    /// requests are answered at once. Returns every event, in order.
    pub(crate) fn pump(
        &mut self,
        me: &NodeId,
        role: &mut RoleState,
        now: std::time::Instant,
    ) -> Vec<RoleEvent> {
        let mut seen = Vec::new();
        while let Some(event) = role.poll_event() {
            if let RoleEvent::Request {
                token,
                role: asked,
                generation,
            } = event
            {
                let answer = self.role_request(me, &asked.request(generation));
                role.handle_answer(now, token, answer);
            }
            seen.push(event);
        }
        seen
    }
}
