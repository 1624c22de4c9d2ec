//! One node's OpenFlow role on one switch connection (OpenFlow 1.3.5 §6.3.6).
//!
//! Every node keeps a connection to every switch; the assignment says which
//! node is master. A [`RoleState`] turns the inputs — the assignment of its
//! switch, its node's lease deadline, the switch's answers, the connection
//! going up and down — into values the caller acts on ([`RoleEvent`]) and
//! one question, [`RoleState::may_write`], asked before every write
//! (FLOW_MOD, GROUP_MOD, METER_MOD, PORT_MOD, TABLE_MOD, PACKET_OUT).
//!
//! The rules, and why:
//! - A connection starts in the switch's default role, EQUAL, which could
//!   write: this node does not, until the switch has confirmed it MASTER.
//!   With no master assigned yet nobody writes (and no request is sent:
//!   there is no generation to send).
//! - The assigned master asks MASTER, every other node SLAVE, both with the
//!   assignment's generation. SLAVE, not staying EQUAL: the switch itself
//!   then refuses a slave's writes (a bug in a slave cannot program the
//!   switch) and sends it no packet-ins by default, only PORT_STATUS, which
//!   is what a slave's view needs. The switch checks a SLAVE request's
//!   generation as it does a MASTER's, so it carries the current one; a
//!   slave that hears of a move before the new master even raises the
//!   switch's fence early.
//! - `may_write` is true only after a ROLE_REPLY of MASTER with exactly the
//!   generation we asked with, while the assignment still names this node
//!   at that generation, and before the lease deadline (self-fence). Any
//!   other answer, a newer request (the generation changed) or a lost
//!   connection ends it.
//! - Becoming master emits [`RoleEvent::BecameMaster`]: the caller dumps the
//!   switch's tables and reconciles against them as after a restart, so a
//!   failover rewrites nothing still wanted. Losing it emits
//!   [`RoleEvent::Demoted`] (stop writing, keep desired state) — exactly one
//!   per `BecameMaster`.
//! - OpenFlow 1.3 has no ROLE_STATUS: a master that another node displaced
//!   learns it from the switch refusing its writes (OFPBRC_IS_SLAVE). It
//!   then stops writing and asks again for the role it believes it has
//!   (MASTER at its generation), which tells it the truth: STALE
//!   ([`RoleEvent::Fenced`]: a newer master exists) or accepted (it is
//!   master again and reconciles once more).
//! - A node whose lease deadline passed asks SLAVE at its generation: it
//!   steps down on the switch as well as locally. If a newer master already
//!   took over the switch refuses that as stale, which changes nothing.
//! - After a STALE refusal at a generation, nothing more is asked at that
//!   generation on this connection (it would be refused again); a newer
//!   assignment, or a new connection (the switch may have restarted and
//!   forgotten), asks again.
//!
//! Answers are matched to requests by token: the caller sends each request
//! through the controller session's `Session::request`, whose reply event
//! carries the token back. An answer to a request that a newer one replaced
//! is ignored.

use std::collections::VecDeque;
use std::time::Instant;

use flowgate_openflow::{controller_role, error_code, error_type, RoleMsg};

use crate::assign::Mastership;
use crate::generation::Generation;
use crate::node::NodeId;

/// The role this node asks a switch for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Master,
    Slave,
}

impl Role {
    /// The ROLE_REQUEST body asking for this role at `generation`.
    pub fn request(self, generation: Generation) -> RoleMsg {
        RoleMsg {
            role: match self {
                Role::Master => controller_role::MASTER,
                Role::Slave => controller_role::SLAVE,
            },
            generation_id: generation.0,
        }
    }
}

/// This connection's role as the switch last told us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchRole {
    /// The default of a new connection (and what a switch without role
    /// support keeps).
    Equal,
    Master,
    Slave,
}

/// The switch's answer to a role request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleAnswer {
    Reply(RoleMsg),
    /// The switch's ERROR (type, code) for the request.
    Error {
        err_type: u16,
        code: u16,
    },
    /// No answer in time: the request is sent again.
    Timeout,
}

/// Why this node stopped writing to a switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoteReason {
    /// The assignment moved the switch (or changed its generation).
    Reassigned,
    /// The lease deadline passed (self-fence).
    LeaseExpired,
    /// The switch refused a write with OFPBRC_IS_SLAVE: another node became
    /// master.
    SwitchSaysSlave,
    Disconnected,
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleEvent {
    /// Send ROLE_REQUEST [`Role::request`]`(generation)`; hand its answer to
    /// [`RoleState::handle_answer`] with `token`.
    Request {
        token: u64,
        role: Role,
        generation: Generation,
    },
    /// Confirmed master: dump the switch's flows, groups and meters,
    /// reconcile against them (adopt what is still wanted), then write.
    BecameMaster { generation: Generation },
    /// Stop writing to this switch; keep its desired state.
    Demoted { reason: DemoteReason },
    /// The switch refused our request as stale (OFPRRFC_STALE): it has seen
    /// a newer generation (another node's MASTER or SLAVE request carried a
    /// newer assignment), so we are not master. Nothing of ours to fix: our
    /// view of the assignment will catch up. Log it.
    Fenced { role: Role, generation: Generation },
    /// The switch refused a role request for another reason (no role
    /// support: OFPRRFC_UNSUP, OFPBRC_BAD_TYPE, ...). Such a switch cannot
    /// be shared safely; this node does not write to it.
    Refused {
        role: Role,
        generation: Generation,
        err_type: u16,
        code: u16,
    },
}

#[derive(Debug, Clone, Copy)]
struct Asked {
    token: u64,
    role: Role,
    generation: Generation,
}

/// One node's role on one switch connection. See the module docs.
#[derive(Debug)]
pub struct RoleState {
    me: NodeId,
    connected: bool,
    assigned: Option<Mastership>,
    lease_until: Option<Instant>,
    /// The latest request sent on this connection; answers to others are
    /// superseded.
    asked: Option<Asked>,
    /// The switch accepted our latest request, MASTER at this generation.
    confirmed: Option<Generation>,
    /// The switch refused this generation as stale.
    stale: Option<Generation>,
    switch_role: Option<SwitchRole>,
    /// A `BecameMaster` was emitted and no `Demoted` since.
    writing: bool,
    next_token: u64,
    events: VecDeque<RoleEvent>,
}

impl RoleState {
    /// The state of node `me` towards one switch, not connected yet.
    pub fn new(me: NodeId) -> RoleState {
        RoleState {
            me,
            connected: false,
            assigned: None,
            lease_until: None,
            asked: None,
            confirmed: None,
            stale: None,
            switch_role: None,
            writing: false,
            next_token: 0,
            events: VecDeque::new(),
        }
    }

    /// The connection is up (handshake done): the switch has this node in
    /// its default role, EQUAL.
    pub fn handle_connected(&mut self, now: Instant) {
        self.connected = true;
        self.reset_connection(Some(SwitchRole::Equal));
        self.update(now, DemoteReason::Disconnected);
    }

    pub fn handle_disconnected(&mut self, now: Instant) {
        self.connected = false;
        self.reset_connection(None);
        self.update(now, DemoteReason::Disconnected);
    }

    fn reset_connection(&mut self, role: Option<SwitchRole>) {
        self.asked = None;
        self.confirmed = None;
        self.stale = None;
        self.switch_role = role;
    }

    /// The switch's masters key changed (in watch order): its master and
    /// generation, or `None` when it has none.
    pub fn handle_assignment(&mut self, now: Instant, assigned: Option<Mastership>) {
        self.assigned = assigned;
        self.update(now, DemoteReason::Reassigned);
    }

    /// The node's lease deadline changed ([`crate::Lease::valid_until`]).
    pub fn handle_lease(&mut self, now: Instant, valid_until: Option<Instant>) {
        self.lease_until = valid_until;
        self.update(now, DemoteReason::LeaseExpired);
    }

    /// The instant [`RoleState::poll_timeout`] asked for has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.update(now, DemoteReason::LeaseExpired);
    }

    /// The answer to the request sent with `token`.
    pub fn handle_answer(&mut self, now: Instant, token: u64, answer: RoleAnswer) {
        let Some(asked) = self.asked.filter(|a| a.token == token) else {
            return;
        };
        match answer {
            RoleAnswer::Reply(reply) => {
                self.switch_role = match reply.role {
                    controller_role::MASTER => Some(SwitchRole::Master),
                    controller_role::SLAVE => Some(SwitchRole::Slave),
                    controller_role::EQUAL => Some(SwitchRole::Equal),
                    _ => None,
                };
                let as_asked = asked.role == Role::Master
                    && reply.role == controller_role::MASTER
                    && reply.generation_id == asked.generation.0;
                self.confirmed = as_asked.then_some(asked.generation);
            }
            RoleAnswer::Error {
                err_type: error_type::ROLE_REQUEST_FAILED,
                code: error_code::role_request_failed::STALE,
            } => {
                let newest = match self.stale {
                    Some(stale) if stale.is_newer_than(asked.generation) => stale,
                    _ => asked.generation,
                };
                self.stale = Some(newest);
                self.events.push_back(RoleEvent::Fenced {
                    role: asked.role,
                    generation: asked.generation,
                });
            }
            RoleAnswer::Error { err_type, code } => {
                self.events.push_back(RoleEvent::Refused {
                    role: asked.role,
                    generation: asked.generation,
                    err_type,
                    code,
                });
            }
            RoleAnswer::Timeout => self.asked = None,
        }
        self.update(now, DemoteReason::Reassigned);
    }

    /// The switch refused one of our writes with OFPBRC_IS_SLAVE. If we
    /// believed we were master, stop writing and ask MASTER again to learn
    /// why (see the module docs). Later refusals of writes already in flight
    /// change nothing more.
    pub fn handle_write_refused(&mut self, now: Instant) {
        self.switch_role = Some(SwitchRole::Slave);
        if self.confirmed.take().is_some() {
            self.asked = None;
        }
        self.update(now, DemoteReason::SwitchSaysSlave);
    }

    /// Whether this node may write to the switch now.
    pub fn may_write(&self, now: Instant) -> bool {
        self.writing && self.lease_valid(now)
    }

    /// The next event to act on.
    pub fn poll_event(&mut self) -> Option<RoleEvent> {
        self.events.pop_front()
    }

    /// When to call [`RoleState::handle_timeout`]: the lease deadline, while
    /// this node writes. (`may_write` checks the deadline itself; the timer
    /// makes the `Demoted` event and the step down to SLAVE prompt.)
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.lease_until.filter(|_| self.writing)
    }

    /// The role the switch last reported for this connection (`None`: not
    /// connected, or unknown).
    pub fn switch_role(&self) -> Option<SwitchRole> {
        self.switch_role
    }

    /// Whether this node masters the switch: a [`RoleEvent::BecameMaster`]
    /// was emitted and no [`RoleEvent::Demoted`] since. (`may_write` also
    /// checks the lease deadline at the instant of the write.)
    pub fn is_master(&self) -> bool {
        self.writing
    }

    fn lease_valid(&self, now: Instant) -> bool {
        self.lease_until.is_some_and(|until| now < until)
    }

    /// The request this node should have sent, if any.
    fn wanted(&self, now: Instant) -> Option<(Role, Generation)> {
        if !self.connected {
            return None;
        }
        let assigned = self.assigned.as_ref()?;
        let role = if assigned.node == self.me && self.lease_valid(now) {
            Role::Master
        } else {
            Role::Slave
        };
        Some((role, assigned.generation))
    }

    /// Emits the change of writing state (blamed on `reason` if it is a
    /// loss) and sends the request the inputs call for. A demotion comes
    /// before the request that follows from it: the caller stops writing
    /// first.
    fn update(&mut self, now: Instant, reason: DemoteReason) {
        let request = self.wanted(now).filter(|&(role, generation)| {
            let already = self
                .asked
                .is_some_and(|a| a.role == role && a.generation == generation);
            let refused = self
                .stale
                .is_some_and(|stale| !generation.is_newer_than(stale));
            !already && !refused
        });
        if request.is_some() {
            // Whatever the switch confirmed, it confirmed for another request.
            self.confirmed = None;
        }

        let mine = self
            .assigned
            .as_ref()
            .filter(|m| m.node == self.me)
            .map(|m| m.generation);
        let master =
            self.connected && self.lease_valid(now) && mine.is_some() && self.confirmed == mine;
        if master && !self.writing {
            self.writing = true;
            if let Some(generation) = mine {
                self.events
                    .push_back(RoleEvent::BecameMaster { generation });
            }
        } else if !master && self.writing {
            self.writing = false;
            self.events.push_back(RoleEvent::Demoted { reason });
        }

        if let Some((role, generation)) = request {
            let token = self.next_token;
            self.next_token += 1;
            self.asked = Some(Asked {
                token,
                role,
                generation,
            });
            self.events.push_back(RoleEvent::Request {
                token,
                role,
                generation,
            });
        }
    }
}
