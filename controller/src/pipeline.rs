//! The fixed multi-table pipeline every switch gets, declared once.
//!
//! Each table is written by named modules only, so modules never fight over
//! priorities in one table. Every table's miss entry (priority 0, owned by
//! the core) continues to the next table; a module that wants a different
//! miss behaviour in its own table installs an empty-match entry at
//! [`MODULE_MISS_PRIORITY`], above the core's. Flow entries are checked
//! against this declaration in tests ([`check`]).

use flowgate_openflow::{Instruction, Match};
use thiserror::Error;

use crate::cookie::Owner;
use crate::desired::{FlowEntry, FlowSpec};

/// One table of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSpec {
    pub id: u8,
    pub name: &'static str,
    /// Modules allowed to write entries here (the core writes miss entries everywhere).
    pub writers: &'static [Owner],
    /// What the core's priority-0 miss entry does.
    pub miss: Miss,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// Continue with the next table.
    Next,
    /// No core miss entry: unmatched packets are dropped (OpenFlow 1.3's
    /// default) unless a writer installs its own miss entry.
    Drop,
}

pub const CLASSIFY: u8 = 0;
pub const ACL: u8 = 1;
pub const QOS: u8 = 2;
pub const LB: u8 = 3;
pub const LEARN: u8 = 4;
pub const FORWARD: u8 = 5;
pub const FLOOD: u8 = 6;

/// The metadata register as classify leaves it for tenant (overlay)
/// traffic; later tables scope entries to a tenant network by matching it
/// (e.g. `Oxm::Metadata(metadata::tenant(vni), Some(metadata::TENANT_MASK))`).
/// Bits outside [`metadata::OVERLAY_MASK`] are free for other modules.
pub mod metadata {
    /// Set for every packet of a tenant network.
    pub const TENANT: u64 = 1 << 63;
    /// Set when the packet arrived from another host through a tunnel.
    pub const FROM_TUNNEL: u64 = 1 << 62;
    /// The network's VNI (24 bits).
    pub const VNI_MASK: u64 = 0xff_ffff;
    /// Matches "tenant network `vni`", wherever the packet came from.
    pub const TENANT_MASK: u64 = TENANT | VNI_MASK;
    /// Every bit the overlay writes.
    pub const OVERLAY_MASK: u64 = TENANT | FROM_TUNNEL | VNI_MASK;

    /// The metadata of network `vni`'s packets from local ports.
    pub const fn tenant(vni: u32) -> u64 {
        TENANT | (vni as u64 & VNI_MASK)
    }
}

/// Priority of the core's miss entries.
pub const CORE_MISS_PRIORITY: u16 = 0;
/// Priority of a module's own miss entry (empty match) in a table it writes.
pub const MODULE_MISS_PRIORITY: u16 = 1;

pub const TABLES: [TableSpec; 7] = [
    TableSpec {
        id: CLASSIFY,
        name: "classify",
        writers: &[Owner::Topology, Owner::Overlay],
        miss: Miss::Next,
    },
    TableSpec {
        id: ACL,
        name: "acl",
        writers: &[Owner::Firewall],
        miss: Miss::Next,
    },
    TableSpec {
        id: QOS,
        name: "qos",
        writers: &[Owner::Qos, Owner::HostAware],
        miss: Miss::Next,
    },
    TableSpec {
        id: LB,
        name: "lb",
        writers: &[Owner::LoadBalancer],
        miss: Miss::Next,
    },
    TableSpec {
        id: LEARN,
        name: "learn",
        writers: &[Owner::Forwarding, Owner::Overlay],
        miss: Miss::Next,
    },
    TableSpec {
        id: FORWARD,
        name: "forward",
        writers: &[Owner::Forwarding, Owner::Overlay],
        miss: Miss::Next,
    },
    TableSpec {
        id: FLOOD,
        name: "flood",
        writers: &[Owner::Forwarding, Owner::Overlay],
        miss: Miss::Drop,
    },
];

pub fn table(id: u8) -> Option<&'static TableSpec> {
    TABLES.iter().find(|t| t.id == id)
}

/// The core's miss entries: every table continues to the next one.
pub fn core_entries() -> Vec<FlowEntry> {
    TABLES
        .iter()
        .filter(|t| t.miss == Miss::Next)
        .map(|t| {
            FlowEntry::new(
                t.id,
                CORE_MISS_PRIORITY,
                Match::default(),
                FlowSpec::new(
                    Owner::Core.cookie(u64::from(t.id)),
                    vec![Instruction::GotoTable(t.id + 1)],
                ),
            )
        })
        .collect()
}

/// A flow entry that breaks the pipeline's rules.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PipelineError {
    #[error("table {0} is not in the pipeline")]
    UnknownTable(u8),
    #[error("{owner:?} may not write table {table}")]
    NotAWriter { owner: Owner, table: &'static str },
    #[error("goto_table:{to} from table {from} must go forward to a pipeline table")]
    BadGoto { from: u8, to: u8 },
    #[error("priority {0} is reserved for the core's miss entries")]
    ReservedPriority(u16),
}

/// Checks that `owner` may install `entry`.
pub fn check(owner: Owner, entry: &FlowEntry) -> Result<(), PipelineError> {
    let spec = table(entry.key.table_id).ok_or(PipelineError::UnknownTable(entry.key.table_id))?;
    if owner != Owner::Core {
        if !spec.writers.contains(&owner) {
            return Err(PipelineError::NotAWriter {
                owner,
                table: spec.name,
            });
        }
        if entry.key.priority == CORE_MISS_PRIORITY {
            return Err(PipelineError::ReservedPriority(entry.key.priority));
        }
    }
    for instruction in &entry.spec.instructions {
        if let Instruction::GotoTable(to) = instruction {
            if *to <= spec.id || table(*to).is_none() {
                return Err(PipelineError::BadGoto {
                    from: spec.id,
                    to: *to,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::output_to;

    #[test]
    fn tables_are_numbered_in_order() {
        for (i, t) in TABLES.iter().enumerate() {
            assert_eq!(usize::from(t.id), i);
        }
    }

    #[test]
    fn core_entries_obey_the_pipeline() {
        let entries = core_entries();
        assert_eq!(entries.len(), TABLES.len() - 1);
        for e in &entries {
            check(Owner::Core, e).unwrap();
        }
    }

    #[test]
    fn modules_may_only_write_their_tables() {
        let e = FlowEntry::new(ACL, 10, Match::default(), FlowSpec::new(0, output_to(1)));
        assert_eq!(
            check(Owner::Forwarding, &e),
            Err(PipelineError::NotAWriter {
                owner: Owner::Forwarding,
                table: "acl"
            })
        );
        assert!(check(Owner::Firewall, &e).is_ok());
    }

    #[test]
    fn goto_must_go_forward() {
        let back = FlowEntry::new(
            FORWARD,
            10,
            Match::default(),
            FlowSpec::new(0, vec![Instruction::GotoTable(LEARN)]),
        );
        assert!(matches!(
            check(Owner::Forwarding, &back),
            Err(PipelineError::BadGoto { .. })
        ));
    }

    #[test]
    fn priority_zero_is_the_cores() {
        let e = FlowEntry::new(LEARN, 0, Match::default(), FlowSpec::new(0, output_to(1)));
        assert_eq!(
            check(Owner::Forwarding, &e),
            Err(PipelineError::ReservedPriority(0))
        );
    }
}
