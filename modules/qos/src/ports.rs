//! Queue profiles on ports, over OVSDB: where each binding's ports are
//! (which host, which port name) and the QoS objects the module declares
//! to the shared OVSDB reconciler for them. The hosts come from the
//! module's task ([`HostIndex`], rebuilt whenever an OVSDB host connects,
//! leaves or changes); the resolution is pure.

use std::collections::{BTreeMap, BTreeSet};

use flowgate_controller::ovsdb::hosts::Hosts;
use flowgate_controller::ovsdb::{Object, QosSpec, QosType, QueueSpec};
use flowgate_controller::runtime::tasks::{Task, TaskCtx};
use flowgate_controller::topology::{PortRole, TopologyView};

use crate::config::QosConfig;
use crate::model::{QosKind, Target};

/// What the module knows of the OVSDB hosts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostIndex {
    /// By chassis id.
    pub hosts: BTreeMap<String, HostPorts>,
}

/// One host's bridges and ports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostPorts {
    /// Datapath ids of its bridges.
    pub dpids: BTreeSet<u64>,
    /// Port name → where it is and what QoS it has.
    pub ports: BTreeMap<String, PortInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortInfo {
    /// The bridge's datapath id.
    pub dpid: Option<u64>,
    /// `external_ids:iface-id` of its interface (a VM port).
    pub iface_id: Option<String>,
    /// Its OpenFlow port number, once the switch has given it one.
    pub ofport: Option<u32>,
    /// Queue numbers of the port's QoS row, whoever made it.
    pub queues: BTreeSet<u32>,
}

impl HostIndex {
    /// The index of what `hosts` shows now.
    pub fn of(hosts: &Hosts) -> HostIndex {
        let mut index = HostIndex::default();
        for (chassis, snap) in hosts.by_host() {
            let view = &snap.view;
            let mut host = HostPorts::default();
            for bridge in &view.bridges {
                host.dpids.extend(bridge.datapath_id);
                for port in &bridge.ports {
                    let queues = port
                        .qos
                        .as_deref()
                        .and_then(|uuid| view.qos_row(uuid))
                        .map(|q| q.queues.keys().copied().collect())
                        .unwrap_or_default();
                    let iface_id = port
                        .interfaces
                        .iter()
                        .find_map(|i| i.external_ids.get("iface-id").cloned());
                    let ofport = port
                        .interfaces
                        .iter()
                        .find_map(|i| i.ofport.and_then(|n| u32::try_from(n).ok()));
                    host.ports.insert(
                        port.name.clone(),
                        PortInfo {
                            dpid: bridge.datapath_id,
                            iface_id,
                            ofport,
                            queues,
                        },
                    );
                }
            }
            index.hosts.insert(chassis, host);
        }
        index
    }

    /// The host whose bridge is switch `dpid`.
    pub fn host_of(&self, dpid: u64) -> Option<(&str, &HostPorts)> {
        self.hosts
            .iter()
            .find(|(_, h)| h.dpids.contains(&dpid))
            .map(|(c, h)| (c.as_str(), h))
    }

    /// Queue numbers provisioned on port `port` of switch `dpid` (by
    /// anyone): a port name, or a port number when no port has that name
    /// (Floodlight's `enqueue-port` is a number).
    pub fn queues_at(&self, dpid: u64, port: &str) -> BTreeSet<u32> {
        let Some((_, host)) = self.host_of(dpid) else {
            return BTreeSet::new();
        };
        let on_switch = |p: &&PortInfo| p.dpid == Some(dpid);
        host.ports
            .get(port)
            .filter(on_switch)
            .or_else(|| {
                let number: u32 = port.parse().ok()?;
                host.ports
                    .values()
                    .filter(on_switch)
                    .find(|p| p.ofport == Some(number))
            })
            .map(|p| p.queues.clone())
            .unwrap_or_default()
    }
}

/// The task that keeps the module's [`HostIndex`] current.
pub fn index_task(hosts: Hosts) -> Task {
    Task::new("qos-ovsdb-hosts", move |mut ctx: TaskCtx| async move {
        let mut changes = hosts.subscribe();
        let mut sent = None;
        loop {
            let index = HostIndex::of(&hosts);
            if sent.as_ref() != Some(&index) {
                if !ctx.send(index.clone()).await {
                    return;
                }
                sent = Some(index);
            }
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                _ = ctx.stopped() => return,
            }
        }
    })
}

/// (host, port name) pairs a binding target names now.
pub fn target_ports(
    target: &Target,
    index: &HostIndex,
    view: &TopologyView,
    port_names: &BTreeMap<u64, BTreeMap<u32, String>>,
) -> Vec<(String, String)> {
    match target {
        Target::Port { dpid, port } => index
            .host_of(*dpid)
            .filter(|(_, h)| h.ports.contains_key(port))
            .map(|(c, _)| vec![(c.to_owned(), port.clone())])
            .unwrap_or_default(),
        Target::Edge { dpid } => {
            let Some((chassis, host)) = index.host_of(*dpid) else {
                return Vec::new();
            };
            let names = port_names.get(dpid);
            view.ports_with_role(*dpid, PortRole::Edge)
                .into_iter()
                .filter_map(|no| names.and_then(|n| n.get(&no)))
                .filter(|name| host.ports.contains_key(*name))
                .map(|name| (chassis.to_owned(), name.clone()))
                .collect()
        }
        Target::IfaceId(id) => index
            .hosts
            .iter()
            .flat_map(|(chassis, host)| {
                host.ports
                    .iter()
                    .filter(|(_, p)| p.iface_id.as_deref() == Some(id))
                    .map(move |(name, _)| (chassis.clone(), name.clone()))
            })
            .collect(),
    }
}

/// Per host, the QoS objects every binding wants there (every connected
/// host gets an entry, empty when nothing is bound on it).
pub fn objects(
    config: &QosConfig,
    index: &HostIndex,
    view: &TopologyView,
    port_names: &BTreeMap<u64, BTreeMap<u32, String>>,
) -> BTreeMap<String, Vec<Object>> {
    let mut out: BTreeMap<String, Vec<Object>> = index
        .hosts
        .keys()
        .map(|c| (c.clone(), Vec::new()))
        .collect();
    for binding in config.bindings.values() {
        let (Ok(target), Some(profile)) = (binding.target(), config.profiles.get(&binding.profile))
        else {
            continue;
        };
        for (chassis, port) in target_ports(&target, index, view, port_names) {
            let spec = QosSpec {
                port,
                kind: match profile.kind {
                    QosKind::LinuxHtb => QosType::LinuxHtb,
                    QosKind::LinuxHfsc => QosType::LinuxHfsc,
                },
                max_rate: Some(profile.max_rate),
                queues: profile
                    .queues
                    .iter()
                    .map(|(n, q)| {
                        let spec = QueueSpec {
                            min_rate: q.min_rate,
                            max_rate: q.max_rate,
                            burst: q.burst,
                            priority: q.priority,
                        };
                        (*n, spec)
                    })
                    .collect(),
            };
            out.entry(chassis).or_default().push(Object::Qos(spec));
        }
    }
    out
}

#[cfg(test)]
mod tests;
