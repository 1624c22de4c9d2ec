//! QoS resources as the REST API, the pusher and the store hold them —
//! queue profiles, their bindings to ports, policies — and their
//! validation. Everything is checked before anything is stored or sent; an
//! error names the field at fault.

use std::collections::BTreeMap;

use flowgate_controller::policy::{Dpid, EthTypes, FieldError, PacketMatch, MAX_DSCP};
use flowgate_controller::service::Origin;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Highest policy priority.
pub const MAX_PRIORITY: u16 = 30_000;
/// Highest tenant network id (a 24-bit VNI).
pub const MAX_TENANT: u32 = 0x00ff_ffff;
/// Most queues a profile may have (Open vSwitch's linux-htb takes up to
/// 0xf000 classes; a port rarely needs more than a handful).
pub const MAX_QUEUES: usize = 64;
/// Most flow entries a policy may expand to on a switch.
pub const MAX_FLOWS_PER_POLICY: usize = 512;

/// Open vSwitch's QoS types that hold queues.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum QosKind {
    #[default]
    #[serde(rename = "linux-htb")]
    LinuxHtb,
    #[serde(rename = "linux-hfsc")]
    LinuxHfsc,
}

impl QosKind {
    pub fn as_str(self) -> &'static str {
        match self {
            QosKind::LinuxHtb => "linux-htb",
            QosKind::LinuxHfsc => "linux-hfsc",
        }
    }
}

/// A queue profile: a port's QoS (type and maximum rate) and its numbered
/// queues. Applied to ports by [`Binding`]s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[schema(example = "uplink")]
    pub id: String,
    #[serde(default, rename = "type")]
    pub kind: QosKind,
    /// The port's maximum rate, bit/s.
    #[schema(example = 5_000_000, minimum = 1)]
    pub max_rate: u64,
    /// Queues by number (what `set_queue` and `enqueue` name).
    #[serde(default)]
    pub queues: BTreeMap<u32, QueueSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, read_only)]
    pub origin: Option<Origin>,
}

/// One queue of a profile; rates in bit/s, burst in bits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub min_rate: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub max_rate: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    /// Lower is served first (linux-htb).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
}

/// Where a profile applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = QosBinding)]
pub struct Binding {
    #[schema(example = "s1-uplink")]
    pub id: String,
    pub profile: String,
    /// A switch port (with `port`), or every edge port of the switch (with
    /// `edge: true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpid: Option<Dpid>,
    /// A port name on switch `dpid` (e.g. `s1-eth2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// Every edge port (no link to another switch) of switch `dpid`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub edge: bool,
    /// An overlay VM port: the interface whose `external_ids:iface-id` is
    /// this, on whichever host has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iface_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, read_only)]
    pub origin: Option<Origin>,
}

/// What a binding names, once validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Port { dpid: u64, port: String },
    Edge { dpid: u64 },
    IfaceId(String),
}

/// A QoS policy: packets it matches are queued, metered and/or marked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = QosPolicy)]
pub struct Policy {
    /// 1..4294967295 (the next free id when absent on POST); the policy's
    /// flows carry it in their cookie and its meter is numbered by it.
    #[serde(default)]
    pub id: u32,
    /// A name for people (Floodlight's policies have one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// 1..30000, higher wins. Policies of the same priority may not
    /// overlap on a switch.
    #[schema(minimum = 1, maximum = 30000)]
    pub priority: u16,
    /// The firewall's match language; empty = all traffic.
    #[serde(default, rename = "match")]
    pub match_: PacketMatch,
    /// Only traffic of this tenant network (VNI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 16777215)]
    pub tenant: Option<u32>,
    /// Only packets entering on this port number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 4294967040_u64)]
    pub in_port: Option<u32>,
    /// At least one of queue, meter, dscp.
    pub actions: Actions,
    /// Where the policy's entries go.
    #[serde(default)]
    pub placement: Placement,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, read_only)]
    pub origin: Option<Origin>,
}

/// What a policy does to the packets it matches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Actions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter: Option<MeterAction>,
    /// Set the DSCP (0..63).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 63)]
    pub dscp: Option<u8>,
}

/// `set_queue`: into queue `id` of the egress port, then on through the
/// pipeline; with `port`, straight out of that port (Floodlight's
/// `enqueue`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueAction {
    pub id: u32,
    /// A port name of the placement switch; its binding must have queue `id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
}

/// An OpenFlow meter: packets over `rate` are dropped (or their DSCP is
/// remarked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MeterAction {
    /// In `unit`s.
    #[schema(minimum = 1)]
    pub rate: u32,
    #[serde(default)]
    pub unit: RateUnit,
    /// In kbit (kbps) or packets (pktps); absent = the switch's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    #[serde(default)]
    pub band: Band,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RateUnit {
    #[default]
    Kbps,
    Pktps,
}

/// What a meter does to packets over its rate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Band {
    #[default]
    Drop,
    /// Raise the drop precedence of the DSCP by `prec_level`.
    DscpRemark {
        #[schema(minimum = 1, maximum = 63)]
        prec_level: u8,
    },
}

/// Where a policy's entries go: one switch, every switch, or the switches
/// on the path between two hosts (kept on the path as it changes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    #[default]
    All,
    Switch(Dpid),
    Path(PathEnds),
}

/// A path by its two hosts, each an IP or a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PathEnds {
    pub src: String,
    pub dst: String,
}

impl Profile {
    pub fn validate(&self) -> Result<(), FieldError> {
        valid_id(&self.id)?;
        if self.max_rate == 0 {
            return Err(FieldError::new("max_rate", "must be above 0 (bit/s)"));
        }
        if self.queues.len() > MAX_QUEUES {
            return Err(FieldError::new(
                "queues",
                format!("at most {MAX_QUEUES} queues"),
            ));
        }
        for (n, q) in &self.queues {
            let field = |f: &str| format!("queues.{n}.{f}");
            for (name, rate) in [("min_rate", q.min_rate), ("max_rate", q.max_rate)] {
                if rate == Some(0) {
                    return Err(FieldError::new(field(name), "must be above 0 (bit/s)"));
                }
                if rate.is_some_and(|r| r > self.max_rate) {
                    return Err(FieldError::new(
                        field(name),
                        format!("is above the port's max_rate {}", self.max_rate),
                    ));
                }
            }
            if let (Some(min), Some(max)) = (q.min_rate, q.max_rate) {
                if min > max {
                    return Err(FieldError::new(
                        field("min_rate"),
                        format!("{min} is above max_rate {max}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Binding {
    /// The target, or the field that is wrong with it.
    pub fn target(&self) -> Result<Target, FieldError> {
        valid_id(&self.id)?;
        match (&self.dpid, &self.port, self.edge, &self.iface_id) {
            (Some(d), Some(port), false, None) if !port.is_empty() => Ok(Target::Port {
                dpid: d.0,
                port: port.clone(),
            }),
            (Some(d), None, true, None) => Ok(Target::Edge { dpid: d.0 }),
            (None, None, false, Some(i)) if !i.is_empty() => Ok(Target::IfaceId(i.clone())),
            (None, _, _, None) => Err(FieldError::new(
                "dpid",
                "give dpid with port or edge: true, or iface_id",
            )),
            (Some(_), None, false, None) => Err(FieldError::new(
                "port",
                "give a port name, or edge: true for every edge port",
            )),
            _ => Err(FieldError::new(
                "iface_id",
                "give either iface_id, or dpid with port or edge: true, not both",
            )),
        }
    }
}

impl Policy {
    /// Checks the policy on its own; returns the ethertypes it matches.
    pub fn validate(&self) -> Result<EthTypes, FieldError> {
        if self.id == 0 {
            return Err(FieldError::new("id", "must be between 1 and 4294967295"));
        }
        if self.priority == 0 || self.priority > MAX_PRIORITY {
            return Err(FieldError::new(
                "priority",
                format!("must be between 1 and {MAX_PRIORITY}"),
            ));
        }
        if self.tenant.is_some_and(|t| t == 0 || t > MAX_TENANT) {
            return Err(FieldError::new(
                "tenant",
                format!("must be between 1 and {MAX_TENANT}"),
            ));
        }
        if self
            .in_port
            .is_some_and(|p| p == 0 || p > flowgate_openflow::port_no::MAX)
        {
            return Err(FieldError::new(
                "in_port",
                "must be a physical port number (1..4294967040)",
            ));
        }
        let a = &self.actions;
        if a.queue.is_none() && a.meter.is_none() && a.dscp.is_none() {
            return Err(FieldError::new(
                "actions",
                "give at least one of queue, meter, dscp",
            ));
        }
        if let Some(m) = &a.meter {
            if m.rate == 0 {
                return Err(FieldError::new("actions.meter.rate", "must be above 0"));
            }
            if let Band::DscpRemark { prec_level } = m.band {
                if prec_level == 0 || prec_level > MAX_DSCP {
                    return Err(FieldError::new(
                        "actions.meter.band.dscp_remark.prec_level",
                        format!("must be between 1 and {MAX_DSCP}"),
                    ));
                }
            }
        }
        if a.dscp.is_some_and(|d| d > MAX_DSCP) {
            return Err(FieldError::new(
                "actions.dscp",
                format!("must be between 0 and {MAX_DSCP}"),
            ));
        }
        if a.queue.as_ref().is_some_and(|q| q.port.is_some())
            && !matches!(self.placement, Placement::Switch(_))
        {
            return Err(FieldError::new(
                "actions.queue.port",
                "a port names a port of one switch: place the policy on a switch",
            ));
        }
        let types = self.match_.eth_types()?;
        if a.dscp.is_some() && !matches!(types, EthTypes::Ip { .. } | EthTypes::Any) {
            return Err(FieldError::new(
                "actions.dscp",
                "DSCP is an IP field; this policy matches another ethertype",
            ));
        }
        let types = ip_if_marking(types, a);
        let flows = self.match_.flows_per_family() * types.families().len().max(1);
        if flows > MAX_FLOWS_PER_POLICY {
            return Err(FieldError::new(
                "match",
                format!(
                    "the port ranges expand to {flows} flow entries per switch \
                     (limit {MAX_FLOWS_PER_POLICY}); use fewer or aligned ranges"
                ),
            ));
        }
        if let Placement::Path(ends) = &self.placement {
            for (field, end) in [
                ("placement.path.src", &ends.src),
                ("placement.path.dst", &ends.dst),
            ] {
                if end.parse::<std::net::IpAddr>().is_err()
                    && end.parse::<flowgate_openflow::MacAddr>().is_err()
                {
                    return Err(FieldError::new(field, "an IP or MAC address of a host"));
                }
            }
        }
        Ok(types)
    }

    /// The ethertypes, for a policy already validated.
    pub fn eth_types(&self) -> EthTypes {
        ip_if_marking(
            self.match_.eth_types().unwrap_or(EthTypes::Any),
            &self.actions,
        )
    }
}

/// Setting the DSCP needs an IP match: a policy that constrains no IP
/// version marks both.
fn ip_if_marking(types: EthTypes, actions: &Actions) -> EthTypes {
    match (types, actions.dscp) {
        (EthTypes::Any, Some(_)) => EthTypes::Ip { v4: true, v6: true },
        _ => types,
    }
}

/// Ids of profiles and bindings: what the store keys and URLs carry.
pub fn valid_id(id: &str) -> Result<(), FieldError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            "id",
            "1-64 letters, digits, '.', '_' or '-'",
        ))
    }
}

#[cfg(test)]
mod tests;
