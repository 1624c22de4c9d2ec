//! What the core reports of its role states, for `GET /cluster` and the
//! metrics: each connected switch's role as the switch confirmed it, and
//! counts of mastership changes and fencing. Written by the core on role
//! events only (never on the packet-in path), read by REST.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use flowgate_cluster::{Dpid, SwitchRole};

/// One switch connection's role on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionRole {
    /// The role the switch last reported (ROLE_REPLY, or SLAVE after an
    /// IS_SLAVE refusal); `None` while it has not answered.
    pub confirmed: Option<SwitchRole>,
    /// This node masters the switch: confirmed MASTER at the assignment's
    /// generation within the lease, its writes go out.
    pub master: bool,
}

/// Counted role events of this node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoleCounts {
    /// Became master of a switch (confirmed by it).
    pub gained: u64,
    /// Stopped being master of a switch (reassigned, lease, refusal,
    /// disconnection).
    pub lost: u64,
    /// Writes the switch refused with OFPBRC_IS_SLAVE.
    pub refused_is_slave: u64,
    /// Role requests the switch refused with OFPRRFC_STALE.
    pub refused_stale: u64,
}

/// A role event worth counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleCount {
    Gained,
    Lost,
    RefusedIsSlave,
    RefusedStale,
}

#[derive(Debug, Default)]
struct Book {
    switches: BTreeMap<Dpid, ConnectionRole>,
    counts: RoleCounts,
}

/// The shared record; see the module docs.
#[derive(Debug, Default)]
pub struct RoleBook {
    book: Mutex<Book>,
}

impl RoleBook {
    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set(&self, dpid: Dpid, role: ConnectionRole) {
        self.book().switches.insert(dpid, role);
    }

    /// The switch's connection to this node is gone.
    pub fn remove(&self, dpid: Dpid) {
        self.book().switches.remove(&dpid);
    }

    pub fn count(&self, what: RoleCount) {
        let counts = &mut self.book().counts;
        let counter = match what {
            RoleCount::Gained => &mut counts.gained,
            RoleCount::Lost => &mut counts.lost,
            RoleCount::RefusedIsSlave => &mut counts.refused_is_slave,
            RoleCount::RefusedStale => &mut counts.refused_stale,
        };
        *counter += 1;
    }

    /// Every connected switch's role, and the counts.
    pub fn snapshot(&self) -> (BTreeMap<Dpid, ConnectionRole>, RoleCounts) {
        let book = self.book();
        (book.switches.clone(), book.counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_role_per_switch_and_counts() {
        let book = RoleBook::default();
        let master = ConnectionRole {
            confirmed: Some(SwitchRole::Master),
            master: true,
        };
        book.set(
            1,
            ConnectionRole {
                confirmed: None,
                master: false,
            },
        );
        book.set(1, master);
        book.set(
            2,
            ConnectionRole {
                confirmed: Some(SwitchRole::Slave),
                master: false,
            },
        );
        book.remove(2);
        book.count(RoleCount::Gained);
        book.count(RoleCount::RefusedStale);
        book.count(RoleCount::RefusedStale);
        let (switches, counts) = book.snapshot();
        assert_eq!(switches, BTreeMap::from([(1, master)]));
        assert_eq!(
            counts,
            RoleCounts {
                gained: 1,
                refused_stale: 2,
                ..RoleCounts::default()
            }
        );
    }
}
