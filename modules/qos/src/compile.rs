//! The pure compiler: a policy, where it goes and a switch's ports → the
//! entries of the `qos` table (table 2) and the policy's meter. No I/O and
//! no state.
//!
//! A policy of priority p (1..30000) is one entry per IP version and port
//! block at OpenFlow priority p in table 2, cookie = its id:
//!
//! ```text
//! match              → [meter:<owner-namespaced id>] apply(set_queue:N, set_field:DSCP->ip_dscp)
//!                      goto 3 (lb) | output:<port> (a queue with a named port: Floodlight's enqueue)
//! ```
//! Packets no policy matches take the core's miss entry on to table 3.

use std::collections::BTreeMap;
use std::net::IpAddr;

use flowgate_controller::cookie::{Owner, LOCAL_ID_MASK};
use flowgate_controller::desired::{FlowEntry, FlowSpec, MeterEntry, MeterSpec};
use flowgate_controller::module::Desired;
use flowgate_controller::pipeline::{metadata, LB, QOS};
use flowgate_controller::topology::{Endpoint, TopologyView};
use flowgate_openflow::{meter_flags, Action, Instruction, MacAddr, Match, MeterBand, Oxm};

use crate::model::{Band, MeterAction, Placement, Policy, RateUnit};

/// Highest policy id: its meter is numbered by it in the owner's 24-bit
/// meter range.
pub const MAX_ID: u32 = LOCAL_ID_MASK;

/// The cookie of every entry compiled from policy `id`.
pub fn policy_cookie(id: u32) -> u64 {
    Owner::Qos.cookie(u64::from(id))
}

/// The wire id of policy `id`'s meter.
pub fn meter_id(id: u32) -> u32 {
    Owner::Qos.meter_id(id)
}

/// The switches a policy goes to, or why it cannot be placed now.
pub fn placement(
    policy: &Policy,
    view: &TopologyView,
    connected: impl Iterator<Item = u64>,
) -> Result<Vec<u64>, String> {
    match &policy.placement {
        Placement::All => Ok(connected.collect()),
        Placement::Switch(d) => Ok(connected.filter(|c| *c == d.0).collect()),
        Placement::Path(ends) => {
            let src = host(view, &ends.src)?;
            let (dst, dst_mac) = host(view, &ends.dst).and_then(|end| {
                let mac = view
                    .hosts
                    .iter()
                    .find(|h| h.at == end)
                    .map(|h| h.mac)
                    .ok_or_else(|| format!("host {} is not known", ends.dst))?;
                Ok((end, mac))
            })?;
            let hops = view
                .graph()
                .path(src, dst, dst_mac.to_u64())
                .ok_or_else(|| format!("no path from {} to {}", ends.src, ends.dst))?;
            let wanted: Vec<u64> = hops.iter().map(|h| h.dpid).collect();
            Ok(connected.filter(|c| wanted.contains(c)).collect())
        }
    }
}

/// Where the host named by an IP or MAC address is attached.
fn host(view: &TopologyView, name: &str) -> Result<Endpoint, String> {
    let found = match (name.parse::<IpAddr>(), name.parse::<MacAddr>()) {
        (Ok(ip), _) => view.host_by_ip(ip),
        (_, Ok(mac)) => view.host(mac),
        _ => None,
    };
    found
        .map(|h| h.at)
        .ok_or_else(|| format!("host {name} is not known (yet)"))
}

/// Policy `policy` on a switch whose ports are `ports` (name → number):
/// its entries and its meter. Empty when its queue names a port the
/// switch does not have.
pub fn compile_policy(policy: &Policy, ports: &BTreeMap<String, u32>) -> Desired {
    let actions = &policy.actions;
    let out_port = match actions.queue.as_ref().and_then(|q| q.port.as_deref()) {
        Some(name) => match port_number(name, ports) {
            Some(no) => Some(no),
            None => return Desired::default(),
        },
        None => None,
    };
    let mut scope = Match::new();
    if let Some(port) = policy.in_port {
        scope = scope.with(Oxm::InPort(port));
    }
    if let Some(vni) = policy.tenant {
        scope = scope.with(Oxm::Metadata(
            metadata::tenant(vni),
            Some(metadata::TENANT_MASK),
        ));
    }
    let mut instructions = Vec::new();
    let mut meters = Vec::new();
    if let Some(meter) = &actions.meter {
        let id = meter_id(policy.id);
        instructions.push(Instruction::Meter(id));
        meters.push(MeterEntry {
            id,
            spec: meter_spec(meter),
        });
    }
    let mut apply = Vec::new();
    if let Some(queue) = &actions.queue {
        apply.push(Action::SetQueue(queue.id));
    }
    if let Some(dscp) = actions.dscp {
        apply.push(Action::SetField(Oxm::IpDscp(dscp)));
    }
    if let Some(port) = out_port {
        apply.push(Action::Output { port, max_len: 0 });
    }
    if !apply.is_empty() {
        instructions.push(Instruction::ApplyActions(apply));
    }
    if out_port.is_none() {
        instructions.push(Instruction::GotoTable(LB));
    }
    let cookie = policy_cookie(policy.id);
    let flows = policy
        .match_
        .to_matches(policy.eth_types(), &scope)
        .into_iter()
        .map(|m| {
            FlowEntry::new(
                QOS,
                policy.priority,
                m,
                FlowSpec::new(cookie, instructions.clone()),
            )
        })
        .collect();
    Desired {
        flows,
        groups: Vec::new(),
        meters,
    }
}

/// A port by name, or by number when no port has that name.
pub fn port_number(name: &str, ports: &BTreeMap<String, u32>) -> Option<u32> {
    ports.get(name).copied().or_else(|| {
        let no: u32 = name.parse().ok()?;
        ports.values().any(|p| *p == no).then_some(no)
    })
}

/// The meter as Open vSwitch keeps it (and reports it back).
pub fn meter_spec(meter: &MeterAction) -> MeterSpec {
    let mut flags = match meter.unit {
        RateUnit::Kbps => meter_flags::KBPS,
        RateUnit::Pktps => meter_flags::PKTPS,
    };
    if meter.burst.is_some() {
        flags |= meter_flags::BURST;
    }
    let burst_size = meter.burst.unwrap_or(0);
    let band = match meter.band {
        Band::Drop => MeterBand::Drop {
            rate: meter.rate,
            burst_size,
        },
        Band::DscpRemark { prec_level } => MeterBand::DscpRemark {
            rate: meter.rate,
            burst_size,
            prec_level,
        },
    };
    MeterSpec::new(flags, vec![band])
}

#[cfg(test)]
mod tests;
