//! The rule schema (the JSON of the REST API, the bootstrap file and the
//! store) and per-rule validation.
//!
//! Values that have a text form (MACs, CIDRs, dpids, port ranges, protocol
//! names) are parsed while deserializing, so a malformed one is a 400 naming
//! its JSON path (`match.ip_src`); rules that parse are then checked as a
//! whole by [`Rule::validate`] (fields that contradict each other).

use flowgate_controller::service::Origin;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use flowgate_controller::policy::{
    Cidr, Dpid, EthType, EthTypes, Family, FieldError, IpProto, Mac, PacketMatch, PortRange,
    ETH_TYPE_ARP, ETH_TYPE_IPV4, ETH_TYPE_IPV6, ETH_TYPE_LLDP, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP,
    PROTO_UDP,
};

/// Highest rule priority (the compiler doubles it into OpenFlow priorities
/// below the firewall's own infrastructure entries).
pub const MAX_PRIORITY: u16 = 30_000;
/// Highest tenant network id (a 24-bit VNI, see `pipeline::metadata`).
pub const MAX_TENANT: u32 = 0x00ff_ffff;
/// Most flow entries one rule may expand to on a switch (port ranges and
/// both IP versions multiply).
pub const MAX_FLOWS_PER_RULE: usize = 512;

/// One firewall rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// 1..4294967295; the rule's flows carry it in their cookie. Optional
    /// when creating with POST (the next free id is used).
    #[serde(default)]
    #[schema(example = 10)]
    pub id: u32,
    /// 1..30000, higher wins. Two rules of the same priority may not
    /// overlap (match a common packet in a common scope).
    #[schema(example = 100, minimum = 1, maximum = 30000)]
    pub priority: u16,
    /// Where the rule applies; empty = everywhere.
    #[serde(default, skip_serializing_if = "Scope::is_empty")]
    pub scope: Scope,
    /// What packets it matches; empty = all.
    #[serde(default, rename = "match")]
    pub match_: PacketMatch,
    pub action: RuleAction,
    /// Free text for the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Set by the controller for a rule another module created (e.g.
    /// `hostaware/rule-7`): only that module changes or removes it. Absent
    /// for rules written over REST; a REST write may not set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, read_only, example = "hostaware/quarantine-h3")]
    pub origin: Option<Origin>,
}

/// Where a rule applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Only traffic of this tenant network, by VNI (the overlay's classify
    /// table marks tenant packets in metadata). 1..16777215.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 16777215)]
    pub tenant: Option<u32>,
    /// Only this switch (`1`, `0x1` or `00:00:00:00:00:00:00:01`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpid: Option<Dpid>,
    /// Only packets entering on this port number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 4294967040_u64)]
    pub in_port: Option<u32>,
}

impl Scope {
    pub fn is_empty(&self) -> bool {
        *self == Scope::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RuleAction {
    /// Continue through the pipeline.
    Allow,
    /// Drop.
    Deny,
    /// Allow new connections matching the rule and everything belonging to
    /// them (replies, related ICMP errors), through conntrack. The other
    /// side cannot open connections unless another rule allows it.
    AllowRelated,
}

impl Rule {
    /// Checks the rule as a whole (an id of 0 is invalid: POST allocates
    /// one before validating). Returns the ethertypes it compiles to.
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
        if let Some(t) = self.scope.tenant {
            if t == 0 || t > MAX_TENANT {
                return Err(FieldError::new(
                    "scope.tenant",
                    format!("must be between 1 and {MAX_TENANT}"),
                ));
            }
        }
        if let Some(p) = self.scope.in_port {
            if p == 0 || p > flowgate_openflow::port_no::MAX {
                return Err(FieldError::new(
                    "scope.in_port",
                    "must be a physical port number (1..4294967040)",
                ));
            }
        }
        let matched = self.match_.eth_types()?;
        if self.action == RuleAction::AllowRelated && matches!(matched, EthTypes::Other(_)) {
            return Err(FieldError::new(
                "action",
                "allow-related tracks IPv4/IPv6 connections; this rule matches another ethertype",
            ));
        }
        let types = self.eth_types();
        let flows = self.match_.flows_per_family() * types.families().len().max(1);
        if flows > MAX_FLOWS_PER_RULE {
            return Err(FieldError::new(
                "match",
                format!(
                    "the port ranges expand to {flows} flow entries per switch \
                     (limit {MAX_FLOWS_PER_RULE}); use fewer or aligned ranges"
                ),
            ));
        }
        Ok(types)
    }

    /// The ethertypes, for a rule already validated (never fails then).
    pub fn eth_types(&self) -> EthTypes {
        let types = self.match_.eth_types().unwrap_or(EthTypes::Any);
        match (self.action, types) {
            // Connections are IP: an allow-related rule without a version covers both.
            (RuleAction::AllowRelated, EthTypes::Any) => EthTypes::Ip { v4: true, v6: true },
            _ => types,
        }
    }
}

#[cfg(test)]
mod tests;
