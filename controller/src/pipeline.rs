//! The fixed multi-table pipeline every switch gets, declared once, and the
//! contract each entry must keep (in the style of Faucet's
//! `faucet_pipeline.py`).
//!
//! Per table: which modules may write it and in which priority band, which
//! match fields its entries may use, which tables they may go to, and which
//! metadata bits each writer may match and write. Every table's miss entry
//! (priority 0, owned by the core) continues to the next table; a module
//! that wants a different miss behaviour in its own table installs an
//! empty-match entry at [`MODULE_MISS_PRIORITY`] (inside its band).
//!
//! [`check`] enforces the contract: the core drops (and logs) module
//! entries that break it, and the test switch refuses them, so a module's
//! unit tests fail on the spot.

use flowgate_openflow::{Instruction, Match, Oxm};
use thiserror::Error;

use crate::cookie::{self, Owner};
use crate::desired::{flow_mod, FlowEntry, FlowSpec};

/// One table of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSpec {
    pub id: u8,
    pub name: &'static str,
    /// Modules allowed to write entries here, with their bands (the core
    /// writes miss entries everywhere).
    pub writers: &'static [Writer],
    /// What the core's priority-0 miss entry does.
    pub miss: Miss,
    /// Match fields entries of this table may use.
    pub matches: &'static [Field],
    /// Tables entries of this table may go to.
    pub next: &'static [u8],
}

/// A module's rights in one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Writer {
    pub owner: Owner,
    /// Lowest and highest priority of its entries (inclusive): bands of
    /// writers sharing a table do not overlap, so modules never fight over
    /// priorities.
    pub band: (u16, u16),
    /// Metadata bits its entries may match.
    pub metadata_read: u64,
    /// Metadata bits its entries may write.
    pub metadata_write: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// Continue with the next table.
    Next,
    /// No core miss entry: unmatched packets are dropped (OpenFlow 1.3's
    /// default) unless a writer installs its own miss entry.
    Drop,
}

/// A match field by its OXM class and field number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub class: u16,
    pub field: u8,
}

/// The match fields the pipeline's tables refer to.
pub mod field {
    use super::Field;
    use flowgate_openflow::oxm_field as f;
    use flowgate_openflow::{
        nxm_nx_field as nx, OFPXMC_EXPERIMENTER, OFPXMC_NXM_1, OFPXMC_OPENFLOW_BASIC,
    };

    const fn of(field: u8) -> Field {
        Field {
            class: OFPXMC_OPENFLOW_BASIC,
            field,
        }
    }
    const fn nx(field: u8) -> Field {
        Field {
            class: OFPXMC_NXM_1,
            field,
        }
    }

    pub const IN_PORT: Field = of(f::IN_PORT);
    pub const METADATA: Field = of(f::METADATA);
    pub const ETH_DST: Field = of(f::ETH_DST);
    pub const ETH_SRC: Field = of(f::ETH_SRC);
    pub const ETH_TYPE: Field = of(f::ETH_TYPE);
    pub const VLAN_VID: Field = of(f::VLAN_VID);
    pub const VLAN_PCP: Field = of(f::VLAN_PCP);
    pub const IP_DSCP: Field = of(f::IP_DSCP);
    pub const IP_ECN: Field = of(f::IP_ECN);
    pub const IP_PROTO: Field = of(f::IP_PROTO);
    pub const IPV4_SRC: Field = of(f::IPV4_SRC);
    pub const IPV4_DST: Field = of(f::IPV4_DST);
    pub const TCP_SRC: Field = of(f::TCP_SRC);
    pub const TCP_DST: Field = of(f::TCP_DST);
    pub const UDP_SRC: Field = of(f::UDP_SRC);
    pub const UDP_DST: Field = of(f::UDP_DST);
    pub const SCTP_SRC: Field = of(f::SCTP_SRC);
    pub const SCTP_DST: Field = of(f::SCTP_DST);
    pub const ICMPV4_TYPE: Field = of(f::ICMPV4_TYPE);
    pub const ICMPV4_CODE: Field = of(f::ICMPV4_CODE);
    pub const ARP_OP: Field = of(f::ARP_OP);
    pub const ARP_SPA: Field = of(f::ARP_SPA);
    pub const ARP_TPA: Field = of(f::ARP_TPA);
    pub const ARP_SHA: Field = of(f::ARP_SHA);
    pub const ARP_THA: Field = of(f::ARP_THA);
    pub const IPV6_SRC: Field = of(f::IPV6_SRC);
    pub const IPV6_DST: Field = of(f::IPV6_DST);
    pub const IPV6_FLABEL: Field = of(f::IPV6_FLABEL);
    pub const ICMPV6_TYPE: Field = of(f::ICMPV6_TYPE);
    pub const ICMPV6_CODE: Field = of(f::ICMPV6_CODE);
    pub const IPV6_ND_TARGET: Field = of(f::IPV6_ND_TARGET);
    pub const TUNNEL_ID: Field = of(f::TUNNEL_ID);
    pub const CT_STATE: Field = nx(nx::CT_STATE);
    pub const CT_ZONE: Field = nx(nx::CT_ZONE);
    pub const CT_MARK: Field = nx(nx::CT_MARK);
    /// TCP flags, as OpenFlow 1.3 carries them: the ONF experimenter OXM
    /// `ONFOXM_ET_TCP_FLAGS` (experimenter 0x4f4e4600, field 42), the form
    /// Open vSwitch accepts and reports in 1.3.
    pub const TCP_FLAGS: Field = Field {
        class: OFPXMC_EXPERIMENTER,
        field: 42,
    };

    /// What an L2-L4 policy can look at (firewall, QoS, load balancer).
    pub const POLICY: &[Field] = &[
        IN_PORT,
        METADATA,
        ETH_DST,
        ETH_SRC,
        ETH_TYPE,
        VLAN_VID,
        VLAN_PCP,
        IP_DSCP,
        IP_ECN,
        IP_PROTO,
        IPV4_SRC,
        IPV4_DST,
        TCP_SRC,
        TCP_DST,
        UDP_SRC,
        UDP_DST,
        SCTP_SRC,
        SCTP_DST,
        ICMPV4_TYPE,
        ICMPV4_CODE,
        ARP_OP,
        ARP_SPA,
        ARP_TPA,
        IPV6_SRC,
        IPV6_DST,
        IPV6_FLABEL,
        ICMPV6_TYPE,
        ICMPV6_CODE,
        IPV6_ND_TARGET,
        CT_STATE,
        CT_ZONE,
        CT_MARK,
        TCP_FLAGS,
    ];
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

/// A writer that reads the tenant bits (every module may scope an entry to
/// a tenant network) and writes none.
const fn tenant_reader(owner: Owner, band: (u16, u16)) -> Writer {
    Writer {
        owner,
        band,
        metadata_read: metadata::OVERLAY_MASK,
        metadata_write: 0,
    }
}

/// Forwarding's band below the overlay's in the tables they share.
const FORWARDING_BAND: (u16, u16) = (1, 1000);
/// The overlay's band, far above forwarding's: tenant traffic never meets a
/// forwarding entry.
const OVERLAY_BAND: (u16, u16) = (37000, 40999);

pub const TABLES: [TableSpec; 7] = [
    TableSpec {
        id: CLASSIFY,
        name: "classify",
        writers: &[
            tenant_reader(Owner::Topology, (1, 1000)),
            Writer {
                owner: Owner::Overlay,
                band: OVERLAY_BAND,
                metadata_read: 0,
                metadata_write: metadata::OVERLAY_MASK,
            },
        ],
        miss: Miss::Next,
        matches: &[
            field::IN_PORT,
            field::ETH_SRC,
            field::ETH_TYPE,
            field::VLAN_VID,
            field::IP_PROTO,
            field::ICMPV6_TYPE,
            field::TUNNEL_ID,
        ],
        next: &[ACL],
    },
    TableSpec {
        id: ACL,
        name: "acl",
        writers: &[tenant_reader(Owner::Firewall, (1, 65000))],
        miss: Miss::Next,
        matches: field::POLICY,
        next: &[QOS],
    },
    TableSpec {
        id: QOS,
        name: "qos",
        writers: &[
            tenant_reader(Owner::Qos, (1, 49999)),
            tenant_reader(Owner::HostAware, (50000, 65000)),
        ],
        miss: Miss::Next,
        matches: field::POLICY,
        next: &[LB],
    },
    TableSpec {
        id: LB,
        name: "lb",
        writers: &[tenant_reader(Owner::LoadBalancer, (1, 65000))],
        miss: Miss::Next,
        matches: field::POLICY,
        next: &[LEARN, FORWARD],
    },
    TableSpec {
        id: LEARN,
        name: "learn",
        writers: &[
            tenant_reader(Owner::Forwarding, FORWARDING_BAND),
            tenant_reader(Owner::Overlay, OVERLAY_BAND),
        ],
        miss: Miss::Next,
        matches: &[
            field::IN_PORT,
            field::METADATA,
            field::ETH_SRC,
            field::ETH_DST,
            field::ETH_TYPE,
            field::ARP_OP,
        ],
        next: &[FORWARD],
    },
    TableSpec {
        id: FORWARD,
        name: "forward",
        writers: &[
            tenant_reader(Owner::Forwarding, FORWARDING_BAND),
            tenant_reader(Owner::Overlay, OVERLAY_BAND),
        ],
        miss: Miss::Next,
        matches: &[
            field::IN_PORT,
            field::METADATA,
            field::ETH_DST,
            field::ETH_TYPE,
            field::ARP_OP,
            field::ARP_TPA,
            field::IP_PROTO,
            field::ICMPV6_TYPE,
            field::IPV6_ND_TARGET,
        ],
        next: &[FLOOD],
    },
    TableSpec {
        id: FLOOD,
        name: "flood",
        writers: &[
            tenant_reader(Owner::Forwarding, FORWARDING_BAND),
            tenant_reader(Owner::Overlay, OVERLAY_BAND),
        ],
        miss: Miss::Drop,
        matches: &[field::IN_PORT, field::METADATA],
        next: &[],
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

/// Largest OpenFlow message (its length is a 16-bit field).
pub const MAX_MESSAGE_LEN: usize = u16::MAX as usize;

/// A flow entry that breaks the pipeline's contract.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PipelineError {
    #[error("table {0} is not in the pipeline")]
    UnknownTable(u8),
    #[error("{owner:?} may not write table {table}")]
    NotAWriter { owner: Owner, table: &'static str },
    #[error("cookie {cookie:#x} does not belong to {owner:?}")]
    ForeignCookie { owner: Owner, cookie: u64 },
    #[error("priority {priority} is outside {owner:?}'s band {band:?} in table {table}")]
    OutsideBand {
        owner: Owner,
        table: &'static str,
        priority: u16,
        band: (u16, u16),
    },
    #[error("table {table} does not match on field {class:#x}:{field}")]
    FieldNotAllowed {
        table: &'static str,
        class: u16,
        field: u8,
    },
    #[error("{owner:?} may not match metadata bits {bits:#x} in table {table}")]
    MetadataRead {
        owner: Owner,
        table: &'static str,
        bits: u64,
    },
    #[error("{owner:?} may not write metadata bits {bits:#x} in table {table}")]
    MetadataWrite {
        owner: Owner,
        table: &'static str,
        bits: u64,
    },
    #[error("goto_table:{to} from table {from} is not allowed (next tables: {allowed:?})")]
    BadGoto {
        from: u8,
        to: u8,
        allowed: &'static [u8],
    },
    #[error("priority {0} is reserved for the core's miss entries")]
    ReservedPriority(u16),
    #[error("the flow-mod would be {0} bytes, over OpenFlow's 65535")]
    TooLarge(usize),
}

/// Checks that `owner` may install `entry`: table, cookie, band, match
/// fields, metadata bits, next tables and encoded size.
pub fn check(owner: Owner, entry: &FlowEntry) -> Result<(), PipelineError> {
    let spec = table(entry.key.table_id).ok_or(PipelineError::UnknownTable(entry.key.table_id))?;
    let writer =
        if owner == Owner::Core {
            None
        } else {
            let writer = spec.writers.iter().find(|w| w.owner == owner).ok_or(
                PipelineError::NotAWriter {
                    owner,
                    table: spec.name,
                },
            )?;
            check_writer(writer, spec, entry)?;
            Some(writer)
        };
    for instruction in &entry.spec.instructions {
        match instruction {
            Instruction::GotoTable(to) if !spec.next.contains(to) => {
                return Err(PipelineError::BadGoto {
                    from: spec.id,
                    to: *to,
                    allowed: spec.next,
                })
            }
            Instruction::WriteMetadata { mask, .. } => {
                let allowed = writer.map_or(u64::MAX, |w| w.metadata_write);
                if mask & !allowed != 0 {
                    return Err(PipelineError::MetadataWrite {
                        owner,
                        table: spec.name,
                        bits: mask & !allowed,
                    });
                }
            }
            _ => {}
        }
    }
    let len = 8 + flow_mod(
        &entry.key,
        &entry.spec,
        flowgate_openflow::FlowModCommand::Add,
    )
    .body_len();
    if len > MAX_MESSAGE_LEN {
        return Err(PipelineError::TooLarge(len));
    }
    Ok(())
}

/// The writer's own rules: its cookie, its band, its fields.
fn check_writer(writer: &Writer, spec: &TableSpec, entry: &FlowEntry) -> Result<(), PipelineError> {
    let owner = writer.owner;
    if cookie::owner_of(entry.spec.cookie) != Some(owner) {
        return Err(PipelineError::ForeignCookie {
            owner,
            cookie: entry.spec.cookie,
        });
    }
    let priority = entry.key.priority;
    if priority == CORE_MISS_PRIORITY {
        return Err(PipelineError::ReservedPriority(priority));
    }
    if priority < writer.band.0 || priority > writer.band.1 {
        return Err(PipelineError::OutsideBand {
            owner,
            table: spec.name,
            priority,
            band: writer.band,
        });
    }
    for f in &entry.key.match_().fields {
        let field = Field {
            class: f.class(),
            field: f.field(),
        };
        if !spec.matches.contains(&field) {
            return Err(PipelineError::FieldNotAllowed {
                table: spec.name,
                class: field.class,
                field: field.field,
            });
        }
        if let Oxm::Metadata(_, mask) = f {
            let bits = mask.unwrap_or(u64::MAX);
            if bits & !writer.metadata_read != 0 {
                return Err(PipelineError::MetadataRead {
                    owner,
                    table: spec.name,
                    bits: bits & !writer.metadata_read,
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

    fn entry(table: u8, priority: u16, owner: Owner, m: Match, ins: Vec<Instruction>) -> FlowEntry {
        FlowEntry::new(table, priority, m, FlowSpec::new(owner.cookie(1), ins))
    }

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
    fn bands_of_a_table_do_not_overlap() {
        for t in &TABLES {
            for (i, a) in t.writers.iter().enumerate() {
                assert!(a.band.0 > CORE_MISS_PRIORITY && a.band.0 <= a.band.1);
                for b in &t.writers[i + 1..] {
                    assert!(
                        a.band.1 < b.band.0 || b.band.1 < a.band.0,
                        "{} and {} overlap in {}",
                        a.owner.name(),
                        b.owner.name(),
                        t.name
                    );
                }
            }
        }
    }

    #[test]
    fn modules_may_only_write_their_tables() {
        let e = entry(ACL, 10, Owner::Forwarding, Match::default(), output_to(1));
        assert_eq!(
            check(Owner::Forwarding, &e),
            Err(PipelineError::NotAWriter {
                owner: Owner::Forwarding,
                table: "acl"
            })
        );
        let e = entry(ACL, 10, Owner::Firewall, Match::default(), output_to(1));
        assert!(check(Owner::Firewall, &e).is_ok());
    }

    #[test]
    fn the_cookie_must_name_the_writer() {
        let e = entry(ACL, 10, Owner::Overlay, Match::default(), vec![]);
        assert!(matches!(
            check(Owner::Firewall, &e),
            Err(PipelineError::ForeignCookie { .. })
        ));
    }

    #[test]
    fn an_entry_outside_its_writers_band_is_refused() {
        let e = entry(LEARN, 2000, Owner::Forwarding, Match::default(), vec![]);
        assert!(matches!(
            check(Owner::Forwarding, &e),
            Err(PipelineError::OutsideBand {
                band: (1, 1000),
                ..
            })
        ));
        let e = entry(LEARN, 38000, Owner::Overlay, Match::default(), vec![]);
        assert!(check(Owner::Overlay, &e).is_ok());
    }

    #[test]
    fn fields_must_be_allowed_in_the_table() {
        let m = Match::new().with(Oxm::TcpDst(80));
        let e = entry(FLOOD, 10, Owner::Forwarding, m.clone(), vec![]);
        assert!(matches!(
            check(Owner::Forwarding, &e),
            Err(PipelineError::FieldNotAllowed { table: "flood", .. })
        ));
        assert!(check(Owner::Firewall, &entry(ACL, 10, Owner::Firewall, m, vec![])).is_ok());
    }

    #[test]
    fn metadata_bits_are_read_and_written_only_as_declared() {
        let foreign = Match::new().with(Oxm::Metadata(1 << 40, Some(1 << 40)));
        let e = entry(ACL, 10, Owner::Firewall, foreign, vec![]);
        assert!(matches!(
            check(Owner::Firewall, &e),
            Err(PipelineError::MetadataRead { .. })
        ));
        let write = vec![
            Instruction::WriteMetadata {
                metadata: metadata::TENANT,
                mask: metadata::TENANT,
            },
            Instruction::GotoTable(QOS),
        ];
        let e = entry(ACL, 10, Owner::Firewall, Match::default(), write);
        assert!(matches!(
            check(Owner::Firewall, &e),
            Err(PipelineError::MetadataWrite { .. })
        ));
    }

    #[test]
    fn goto_must_go_to_a_next_table() {
        let back = entry(
            FORWARD,
            10,
            Owner::Forwarding,
            Match::default(),
            vec![Instruction::GotoTable(LEARN)],
        );
        assert!(matches!(
            check(Owner::Forwarding, &back),
            Err(PipelineError::BadGoto { .. })
        ));
    }

    #[test]
    fn priority_zero_is_the_cores() {
        let e = entry(LEARN, 0, Owner::Forwarding, Match::default(), output_to(1));
        assert_eq!(
            check(Owner::Forwarding, &e),
            Err(PipelineError::ReservedPriority(0))
        );
    }

    #[test]
    fn an_entry_that_does_not_fit_a_message_is_refused() {
        let outputs = (0..9000)
            .map(|p| flowgate_openflow::Action::Output {
                port: p,
                max_len: 0,
            })
            .collect();
        let e = entry(
            FLOOD,
            10,
            Owner::Forwarding,
            Match::default(),
            vec![Instruction::ApplyActions(outputs)],
        );
        assert!(matches!(
            check(Owner::Forwarding, &e),
            Err(PipelineError::TooLarge(n)) if n > MAX_MESSAGE_LEN
        ));
    }
}
