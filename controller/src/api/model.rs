//! JSON shapes of the core endpoints. Field names are a contract with the
//! end-to-end tests and the operator tools: add fields, never rename.

use super::dpid::format_dpid;
use super::render::{instructions_text, match_fields};
use super::view::SwitchSnapshot;
use crate::cookie::{object_of, owner_of};
use flowgate_openflow::{port_config, port_no, port_state, DescStats, FlowStats, Port, PortStats};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::SystemTime;
use utoipa::ToSchema;

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the API answers.
    #[schema(example = "ok")]
    pub status: String,
    /// Connected switches.
    pub switches: usize,
    /// Seconds since the controller started.
    pub uptime_secs: u64,
}

/// A connected switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SwitchInfo {
    /// Datapath id, colon form.
    #[schema(example = "00:00:00:00:00:00:00:01")]
    pub dpid: String,
    /// Datapath id as a number (may lose precision in JavaScript above 2^53;
    /// use `dpid` there).
    pub dpid_int: u64,
    /// The switch's TCP peer address.
    #[schema(example = "127.0.0.1:40000")]
    pub address: String,
    /// When the OpenFlow session came up, RFC 3339 UTC.
    #[schema(example = "2024-05-01T12:00:00Z")]
    pub connected_since: String,
    /// Negotiated OpenFlow version.
    #[schema(example = "1.3")]
    pub version: String,
    pub n_tables: u8,
    pub n_buffers: u32,
    /// OFPC_* capability bits from FEATURES_REPLY.
    pub capabilities: u32,
    /// OFPMP_DESC strings; null until the switch has answered.
    pub desc: Option<SwitchDesc>,
    /// Ports sorted by number (LOCAL last).
    pub ports: Vec<PortInfo>,
    /// Modules that are not programming this switch.
    pub unavailable_modules: Vec<String>,
}

/// OFPMP_DESC (spec 7.3.5.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SwitchDesc {
    pub mfr: String,
    pub hw: String,
    pub sw: String,
    pub serial: String,
    pub dp: String,
}

/// One switch port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PortInfo {
    /// Port number; LOCAL is 4294967294 (with `local: true`).
    pub port_no: u32,
    #[schema(example = "s1-eth1")]
    pub name: String,
    #[schema(example = "aa:bb:cc:dd:ee:01")]
    pub hw_addr: String,
    /// Link detected (OFPPS_LINK_DOWN clear).
    pub link_up: bool,
    /// Administratively up (OFPPC_PORT_DOWN clear).
    pub admin_up: bool,
    pub curr_speed_kbps: u32,
    /// The switch's LOCAL port (the bridge's own interface).
    pub local: bool,
}

/// A port with its live counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PortWithStats {
    #[serde(flatten)]
    pub port: PortInfo,
    /// Null when the switch reported no counters for this port.
    pub stats: Option<PortCounters>,
}

/// OFPMP_PORT_STATS counters (spec 7.3.5.6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PortCounters {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub duration_sec: u32,
}

/// One installed flow, from OFPMP_FLOW (spec 7.3.5.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FlowInfo {
    pub table_id: u8,
    pub priority: u16,
    /// The full cookie, hex.
    #[schema(example = "0xf002000000000001")]
    pub cookie: String,
    /// The Flowgate module that wrote the flow (from the cookie), or null
    /// for flows Flowgate did not write.
    #[schema(example = "forwarding")]
    pub owner: Option<String>,
    /// The object part of the cookie (rule id, host hash, ...).
    pub object: u64,
    /// Match fields with ovs-ofctl names, e.g. `{"eth_type": "0x0800",
    /// "ipv4_src": "10.0.0.0/8"}`.
    #[serde(rename = "match")]
    pub match_fields: BTreeMap<String, String>,
    /// Instructions as text, e.g. `apply_actions(output:2)`, `goto_table:1`.
    pub instructions: Vec<String>,
    pub packet_count: u64,
    pub byte_count: u64,
    pub duration_sec: u32,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
}

/// OpenFlow wire version to its marketing name.
fn version_text(version: u8) -> String {
    match version {
        1 => "1.0".into(),
        2 => "1.1".into(),
        3 => "1.2".into(),
        4 => "1.3".into(),
        5 => "1.4".into(),
        6 => "1.5".into(),
        v => format!("{v:#04x}"),
    }
}

/// RFC 3339 UTC, seconds precision. Times before 1970 (a broken clock)
/// print as the epoch rather than failing the request.
pub(super) fn rfc3339(t: SystemTime) -> String {
    let t = t.max(SystemTime::UNIX_EPOCH);
    humantime::format_rfc3339_seconds(t).to_string()
}

impl From<&DescStats> for SwitchDesc {
    fn from(d: &DescStats) -> SwitchDesc {
        SwitchDesc {
            mfr: d.mfr_desc.clone(),
            hw: d.hw_desc.clone(),
            sw: d.sw_desc.clone(),
            serial: d.serial_num.clone(),
            dp: d.dp_desc.clone(),
        }
    }
}

impl From<&Port> for PortInfo {
    fn from(p: &Port) -> PortInfo {
        PortInfo {
            port_no: p.port_no,
            name: p.name.clone(),
            hw_addr: p.hw_addr.to_string(),
            link_up: p.state & port_state::LINK_DOWN == 0,
            admin_up: p.config & port_config::PORT_DOWN == 0,
            curr_speed_kbps: p.curr_speed,
            local: p.port_no == port_no::LOCAL,
        }
    }
}

impl From<&PortStats> for PortCounters {
    fn from(s: &PortStats) -> PortCounters {
        PortCounters {
            rx_packets: s.rx_packets,
            tx_packets: s.tx_packets,
            rx_bytes: s.rx_bytes,
            tx_bytes: s.tx_bytes,
            rx_dropped: s.rx_dropped,
            tx_dropped: s.tx_dropped,
            rx_errors: s.rx_errors,
            tx_errors: s.tx_errors,
            duration_sec: s.duration_sec,
        }
    }
}

impl From<&FlowStats> for FlowInfo {
    fn from(f: &FlowStats) -> FlowInfo {
        FlowInfo {
            table_id: f.table_id,
            priority: f.priority,
            cookie: format!("{:#018x}", f.cookie),
            owner: owner_of(f.cookie).map(|o| o.name().to_owned()),
            object: object_of(f.cookie),
            match_fields: match_fields(&f.match_),
            instructions: instructions_text(&f.instructions),
            packet_count: f.packet_count,
            byte_count: f.byte_count,
            duration_sec: f.duration_sec,
            idle_timeout: f.idle_timeout,
            hard_timeout: f.hard_timeout,
        }
    }
}

/// Ports sorted by number; LOCAL (0xfffffffe) sorts last naturally.
pub(super) fn sorted_ports(ports: &[Port]) -> Vec<PortInfo> {
    let mut out: Vec<PortInfo> = ports.iter().map(PortInfo::from).collect();
    out.sort_by_key(|p| p.port_no);
    out
}

impl From<&SwitchSnapshot> for SwitchInfo {
    fn from(s: &SwitchSnapshot) -> SwitchInfo {
        SwitchInfo {
            dpid: format_dpid(s.dpid),
            dpid_int: s.dpid,
            address: s.peer.to_string(),
            connected_since: rfc3339(s.connected_since),
            version: version_text(s.version),
            n_tables: s.features.n_tables,
            n_buffers: s.features.n_buffers,
            capabilities: s.features.capabilities,
            desc: s.desc.as_ref().map(SwitchDesc::from),
            ports: sorted_ports(&s.ports),
            unavailable_modules: s.unavailable_modules.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn versions() {
        assert_eq!(version_text(4), "1.3");
        assert_eq!(version_text(1), "1.0");
        assert_eq!(version_text(9), "0x09");
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20Z");
        assert_eq!(
            rfc3339(t + Duration::from_millis(999)),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            rfc3339(SystemTime::UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00Z"
        );
    }
}
