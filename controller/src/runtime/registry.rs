//! The switch registry: connected switches by dpid, shared by the drivers
//! (which add, update and remove their own entry), the core and the REST API.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use dashmap::DashMap;
use flowgate_openflow::{DescStats, Message, Port, PortReason, PortStatus, SwitchFeatures};
use tokio::sync::{mpsc, oneshot};

use crate::runtime::session::RequestError;
use crate::runtime::writer::SwitchWriter;

/// A command for a switch's session task.
#[derive(Debug)]
pub enum SwitchCmd {
    /// Send a request and deliver the (reassembled) reply.
    Request {
        message: Message,
        reply: oneshot::Sender<Result<Message, RequestError>>,
    },
    /// Close the connection, logging why.
    Close(String),
    /// Another connection claimed this one's dpid: stay connected but set
    /// aside (nothing goes to the core), in case the newcomer fails.
    SetAside,
    /// The connection that replaced this one is gone: sync again and be
    /// the switch's connection once more.
    Restore,
    /// Dump the switch's tables again (its node became master of it in a
    /// cluster): the session's sync, ending in a new `SwitchUp` of this
    /// same connection.
    Resync,
}

/// How to reach one connection's tasks.
#[derive(Debug, Clone)]
pub struct SwitchHandle {
    /// Unique per TCP connection, so a stale connection of a dpid that has
    /// since reconnected can be told apart from the current one.
    pub conn_id: u64,
    /// Encoded messages straight to the switch's socket (bounded backlog).
    pub writer: SwitchWriter,
    pub cmd: mpsc::Sender<SwitchCmd>,
}

/// What the REST API shows about a switch.
#[derive(Debug, Clone)]
pub struct SwitchInfo {
    pub dpid: u64,
    pub peer: SocketAddr,
    pub connected_since: SystemTime,
    pub version: u8,
    pub features: SwitchFeatures,
    pub desc: Option<DescStats>,
    /// By port number: a port status is one map operation, not a scan.
    pub ports: BTreeMap<u32, Port>,
}

#[derive(Debug, Clone)]
pub struct SwitchEntry {
    pub handle: SwitchHandle,
    pub info: SwitchInfo,
}

/// What [`Registry::port_status`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortUpdate {
    Applied,
    /// About a port the list does not hold (or a connection that is not
    /// the switch's current one): nothing to do.
    Ignored,
    /// A new port past the limit: not added.
    OverLimit,
}

#[derive(Debug, Default)]
pub struct Registry {
    switches: DashMap<u64, SwitchEntry>,
    /// Connections set aside by a newer one claiming their dpid, newest
    /// last: the next to restore when the current connection goes.
    set_aside: DashMap<u64, Vec<SwitchHandle>>,
    next_conn_id: AtomicU64,
}

impl Registry {
    pub fn new_conn_id(&self) -> u64 {
        self.next_conn_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Registers a ready switch, returning the entry it replaced (same dpid,
    /// older connection) so the caller can close it.
    pub fn insert(&self, entry: SwitchEntry) -> Option<SwitchEntry> {
        self.switches.insert(entry.info.dpid, entry)
    }

    /// Keeps `handle` (replaced for `dpid`) to restore later.
    pub fn set_aside(&self, dpid: u64, handle: SwitchHandle) {
        self.set_aside.entry(dpid).or_default().push(handle);
    }

    /// Forgets a set-aside connection that closed.
    pub fn drop_set_aside(&self, dpid: u64, conn_id: u64) {
        self.set_aside.remove_if_mut(&dpid, |_, handles| {
            handles.retain(|h| h.conn_id != conn_id);
            handles.is_empty()
        });
    }

    /// The most recently set-aside connection of `dpid`, taken.
    pub fn take_set_aside(&self, dpid: u64) -> Option<SwitchHandle> {
        let mut handles = self.set_aside.get_mut(&dpid)?;
        handles.pop()
    }

    /// Removes the entry only if it still belongs to connection `conn_id`.
    pub fn remove_if_current(&self, dpid: u64, conn_id: u64) -> bool {
        self.switches
            .remove_if(&dpid, |_, e| e.handle.conn_id == conn_id)
            .is_some()
    }

    /// Applies a switch's PORT_STATUS to its port list, unless it adds a
    /// port beyond `max_ports`.
    pub fn port_status(
        &self,
        dpid: u64,
        conn_id: u64,
        status: &PortStatus,
        max_ports: usize,
    ) -> PortUpdate {
        let Some(mut e) = self.switches.get_mut(&dpid) else {
            return PortUpdate::Ignored;
        };
        if e.handle.conn_id != conn_id {
            return PortUpdate::Ignored;
        }
        let ports = &mut e.info.ports;
        let port_no = status.desc.port_no;
        if status.reason == PortReason::Delete {
            match ports.remove(&port_no) {
                Some(_) => PortUpdate::Applied,
                None => PortUpdate::Ignored,
            }
        } else if ports.len() < max_ports || ports.contains_key(&port_no) {
            ports.insert(port_no, status.desc.clone());
            PortUpdate::Applied
        } else {
            PortUpdate::OverLimit
        }
    }

    pub fn get(&self, dpid: u64) -> Option<SwitchEntry> {
        self.switches.get(&dpid).map(|e| e.clone())
    }

    /// All switches, sorted by dpid.
    pub fn list(&self) -> Vec<SwitchEntry> {
        let mut all: Vec<SwitchEntry> = self.switches.iter().map(|e| e.clone()).collect();
        all.sort_by_key(|e| e.info.dpid);
        all
    }

    pub fn len(&self) -> usize {
        self.switches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.switches.is_empty()
    }
}
