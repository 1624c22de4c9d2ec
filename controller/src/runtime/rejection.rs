//! What a switch refused, as a typed value tied to what it was sent for.

use std::fmt;

use flowgate_openflow as of;
use serde::Serialize;

use crate::cookie::{self, Owner};

/// A switch's ERROR reply to something Flowgate sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchRejection {
    pub dpid: u64,
    /// `ofp_error_type` (or `EXPERIMENTER`).
    pub err_type: u16,
    pub code: u16,
    pub what: Rejected,
}

/// The entry a rejected message was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Rejected {
    Flow {
        table: u8,
        priority: u16,
        cookie: u64,
    },
    Group {
        id: u32,
    },
    Meter {
        id: u32,
    },
}

impl Rejected {
    /// The module that wanted the entry.
    pub fn owner(&self) -> Option<Owner> {
        match self {
            Rejected::Flow { cookie, .. } => cookie::owner_of(*cookie),
            Rejected::Group { id } | Rejected::Meter { id } => cookie::owner_of_id(*id),
        }
    }
}

impl SwitchRejection {
    /// The error in spec terms, e.g. `OFPET_BAD_MATCH/OFPBMC_BAD_PREREQ`.
    pub fn error(&self) -> String {
        of::describe(self.err_type, self.code)
    }
}

impl fmt::Display for SwitchRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}: {} for ", self.dpid, self.error())?;
        match self.what {
            Rejected::Flow {
                table,
                priority,
                cookie,
            } => write!(
                f,
                "flow table={table} priority={priority} cookie={cookie:#x}"
            ),
            Rejected::Group { id } => write!(f, "group {id:#x}"),
            Rejected::Meter { id } => write!(f, "meter {id:#x}"),
        }
    }
}
