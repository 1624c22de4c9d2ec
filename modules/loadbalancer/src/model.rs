//! VIPs, pools with their members, and health monitors as the REST API and
//! the store hold them, and their validation. Everything is checked before
//! anything is stored or sent; an error names the request field at fault.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use flowgate_controller::service::Origin;
use flowgate_controller::tenants::TenantNetworks;
use flowgate_controller::topology::TopologyView;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Highest member weight.
pub const MAX_WEIGHT: u16 = 1000;
/// Most VIPs (their index is the low 24 bits of a group id and a cookie).
pub const MAX_VIPS: u32 = (1 << 24) - 1;
/// Shortest and longest health-check interval, in seconds.
pub const MIN_INTERVAL: f64 = 0.2;
pub const MAX_INTERVAL: f64 = 3600.0;
/// Most consecutive results a monitor may ask for.
pub const MAX_RISE_FALL: u8 = 10;

/// Transport protocol of a VIP.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

impl Protocol {
    /// The IP protocol number.
    pub fn ip_proto(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }
}

/// How new connections are spread over a pool's members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// The switch hashes each new connection's 5-tuple; every member weighs
    /// the same.
    #[default]
    Hash,
    /// As `hash`, with the members' weights as bucket weights.
    Weighted,
    /// Bucket weights recomputed every few seconds from each member's
    /// live connections, favouring the least loaded.
    Leastconn,
}

/// What a member takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AdminState {
    /// New and established connections.
    #[default]
    Enabled,
    /// Established connections only: no new connection goes to it.
    Drain,
    /// Nothing: its established connections are dropped too.
    Disabled,
}

/// A health check's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MonitorType {
    /// A TCP handshake (SYN answered by SYN-ACK).
    Tcp,
    /// An HTTP GET answered with the expected status.
    Http,
    /// An ICMP (or ICMPv6) echo answered.
    Icmp,
}

/// A service address: connections to `address:port` are balanced over
/// `pool`'s members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Vip {
    /// Letters, digits, `.`, `_`, `-` (1–64); from the path on PUT.
    #[serde(default)]
    #[schema(example = "web")]
    pub id: String,
    /// IPv4 or IPv6; answered to ARP / neighbour discovery with the load
    /// balancer's virtual MAC.
    #[schema(value_type = String, example = "10.0.0.100")]
    pub address: IpAddr,
    #[serde(default)]
    pub protocol: Protocol,
    #[schema(example = 80, minimum = 1)]
    pub port: u16,
    #[schema(example = "web")]
    pub pool: String,
    #[serde(default)]
    pub method: Method,
    /// A tenant network (overlay network id): the VIP exists only inside
    /// it, and its members must be ports of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "blue")]
    pub network: Option<String>,
    /// Session affinity: a client's new connections go to the member its
    /// earlier ones went to, until it opened none for this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = 60, minimum = 1)]
    pub affinity_timeout: Option<u16>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Assigned by the controller (ignored on input): the VIP's group id
    /// (`0x05000000 | index`), `ct_mark` and cookie object.
    #[serde(default)]
    #[schema(read_only)]
    pub index: u32,
    /// Set by the controller when a module created the VIP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, read_only)]
    pub origin: Option<Origin>,
}

/// A backend of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// A host's address (found through topology), or a tenant port's
    /// address when the pool serves a VIP inside a tenant network.
    #[schema(value_type = String, example = "10.0.0.2")]
    pub address: IpAddr,
    #[schema(example = 8080, minimum = 1)]
    pub port: u16,
    /// 1–1000: the member's bucket weight (method `weighted`).
    #[serde(default = "default_weight")]
    #[schema(example = 1, minimum = 1, maximum = 1000)]
    pub weight: u16,
    #[serde(default)]
    pub admin_state: AdminState,
    /// Set by the controller when a module changed the member's weight or
    /// admin state last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, read_only)]
    pub origin: Option<Origin>,
    /// Set by the controller while a module holds the member (host-aware's
    /// `lb_drain` / `lb_weight`, origin `hostaware/rule-...`): what it had
    /// before, put back when that module releases it. A held member's
    /// weight and admin state are that module's: other writers get 409.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(read_only)]
    pub held: Option<Before>,
}

/// A member's own state before a module's hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Before {
    pub weight: u16,
    pub admin_state: AdminState,
    /// Who had set them (absent: the operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub origin: Option<Origin>,
}

fn default_weight() -> u16 {
    1
}

impl Member {
    pub fn key(&self) -> MemberKey {
        MemberKey {
            address: self.address,
            port: self.port,
        }
    }
}

/// A member's identity in its pool: `address:port` (`[v6]:port`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberKey {
    pub address: IpAddr,
    pub port: u16,
}

impl fmt::Display for MemberKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.address {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.port),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.port),
        }
    }
}

impl FromStr for MemberKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not address:port (or [v6]:port)");
        let (address, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let address = address
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(address);
        Ok(MemberKey {
            address: address.parse().map_err(|_| bad())?,
            port: port.parse().map_err(|_| bad())?,
        })
    }
}

/// A group of members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    /// Letters, digits, `.`, `_`, `-` (1–64); from the path on PUT.
    #[serde(default)]
    #[schema(example = "web")]
    pub id: String,
    #[serde(default)]
    pub members: Vec<Member>,
    /// Load-aware balancing: the controller sets the members' weights
    /// from a host metric (its VIPs must use method `weighted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_aware: Option<LoadAware>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// Where load-aware balancing reads a member's load (host-aware's metric
/// sources; the member is the host whose address it has).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LoadSource {
    /// gmetad's RRD files (`<rrd_root>/<cluster>/<host>/<metric>.rrd`).
    #[default]
    Ganglia,
    /// gmond's live XML.
    Gmond,
    /// The member's access port counters: `rx_bps`, `tx_bps`, `rx_pps`,
    /// `tx_pps` (rx: what the switch receives from the member).
    Switch,
}

/// The switch counters a load-aware pool may name.
pub const SWITCH_LOAD_METRICS: [&str; 4] = ["rx_bps", "tx_bps", "rx_pps", "tx_pps"];

/// Load-aware balancing of a pool: every `interval_s`, each member's
/// metric is mapped linearly from `idle` (weight `max_weight`) to `busy`
/// (weight `min_weight`), clamped, smoothed (EWMA with factor
/// `smoothing`), and the member's weight is changed only when it moves by
/// `min_step` or more. `idle` above `busy` suits metrics where more is
/// better (`cpu_idle`). A member whose metric cannot be read keeps its
/// weight; a member held by a host-aware rule is left to that rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadAware {
    /// The metric's name at its source (`load_one`, `cpu_idle`, `rx_bps`).
    #[schema(
        example = "load_one",
        min_length = 1,
        max_length = 64,
        pattern = "^[A-Za-z0-9._-]+$"
    )]
    pub metric: String,
    #[serde(default)]
    pub source: LoadSource,
    /// The metric's value at which a member is idle (full weight).
    #[serde(default)]
    #[schema(example = 0.0)]
    pub idle: f64,
    /// The value at which it is busy (lowest weight).
    #[schema(example = 4.0)]
    pub busy: f64,
    /// 1-1000.
    #[serde(default = "default_min_weight")]
    #[schema(minimum = 1, maximum = 1000)]
    pub min_weight: u16,
    /// 1-1000, at least `min_weight`.
    #[serde(default = "default_max_weight")]
    #[schema(minimum = 1, maximum = 1000)]
    pub max_weight: u16,
    /// EWMA factor in (0, 1]: the share of a new target in the weight
    /// (1: no smoothing).
    #[serde(default = "default_smoothing")]
    #[schema(exclusive_minimum = 0, maximum = 1)]
    pub smoothing: f64,
    /// Smallest weight change applied (1-1000): smaller moves wait.
    #[serde(default = "default_min_step")]
    #[schema(minimum = 1, maximum = 1000)]
    pub min_step: u16,
    /// Seconds between readings (1-3600).
    #[serde(default = "default_load_interval")]
    #[schema(minimum = 1, maximum = 3600)]
    pub interval_s: u64,
}

fn default_min_weight() -> u16 {
    10
}
fn default_max_weight() -> u16 {
    100
}
fn default_smoothing() -> f64 {
    0.5
}
fn default_min_step() -> u16 {
    5
}
fn default_load_interval() -> u64 {
    10
}

impl LoadAware {
    /// Its fields (errors name them under `load_aware.`).
    pub fn check(&self) -> Result<(), Invalid> {
        let name_ok = !self.metric.is_empty()
            && self.metric.len() <= 64
            && self
                .metric
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            && self.metric != "."
            && self.metric != "..";
        if !name_ok {
            return Err(Invalid::bad(
                "metric",
                format!("{:?}: 1-64 letters, digits, '.', '-' or '_'", self.metric),
            ));
        }
        if self.source == LoadSource::Switch && !SWITCH_LOAD_METRICS.contains(&self.metric.as_str())
        {
            return Err(Invalid::bad(
                "metric",
                format!(
                    "{:?} is not a switch counter ({})",
                    self.metric,
                    SWITCH_LOAD_METRICS.join(", ")
                ),
            ));
        }
        if !self.idle.is_finite() {
            return Err(Invalid::bad("idle", "a finite number"));
        }
        if !self.busy.is_finite() || self.busy == self.idle {
            return Err(Invalid::bad(
                "busy",
                format!("a finite number other than idle ({})", self.idle),
            ));
        }
        for (field, w) in [
            ("min_weight", self.min_weight),
            ("max_weight", self.max_weight),
        ] {
            if !(1..=MAX_WEIGHT).contains(&w) {
                return Err(Invalid::bad(
                    field,
                    format!("{w} is outside 1-{MAX_WEIGHT}"),
                ));
            }
        }
        if self.max_weight < self.min_weight {
            return Err(Invalid::bad(
                "max_weight",
                format!("at least min_weight ({})", self.min_weight),
            ));
        }
        if !(self.smoothing.is_finite() && self.smoothing > 0.0 && self.smoothing <= 1.0) {
            return Err(Invalid::bad("smoothing", "above 0, at most 1"));
        }
        if !(1..=MAX_WEIGHT).contains(&self.min_step) {
            return Err(Invalid::bad("min_step", format!("1-{MAX_WEIGHT}")));
        }
        if !(1..=3600).contains(&self.interval_s) {
            return Err(Invalid::bad("interval_s", "1-3600 seconds"));
        }
        Ok(())
    }

    /// The metric as host-aware writes it (`load_one`, `gmond:cpu_idle`,
    /// `switch:rx_bps`).
    pub fn metric_name(&self) -> String {
        match self.source {
            LoadSource::Ganglia => self.metric.clone(),
            LoadSource::Gmond => format!("gmond:{}", self.metric),
            LoadSource::Switch => format!("switch:{}", self.metric),
        }
    }
}

impl Pool {
    pub fn member(&self, key: MemberKey) -> Option<&Member> {
        self.members.iter().find(|m| m.key() == key)
    }
}

/// A health check of a pool's members, probed from the controller through
/// the data plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Monitor {
    /// Letters, digits, `.`, `_`, `-` (1–64); from the path on PUT.
    #[serde(default)]
    #[schema(example = "web-http")]
    pub id: String,
    /// The pool whose members it checks (one monitor per pool).
    #[schema(example = "web")]
    pub pool: String,
    #[serde(rename = "type")]
    pub kind: MonitorType,
    /// Seconds between probes of a member (0.2–3600).
    #[serde(default = "default_interval")]
    #[schema(example = 2.0, minimum = 0.2, maximum = 3600.0)]
    pub interval: f64,
    /// Seconds a probe may take; less than `interval`.
    #[serde(default = "default_timeout")]
    #[schema(example = 1.0, exclusive_minimum = 0.0)]
    pub timeout: f64,
    /// Consecutive successes that bring a down member back (1–10).
    #[serde(default = "default_rise_fall")]
    #[schema(minimum = 1, maximum = 10)]
    pub rise: u8,
    /// Consecutive failures that take a member out (1–10).
    #[serde(default = "default_rise_fall")]
    #[schema(minimum = 1, maximum = 10)]
    pub fall: u8,
    /// Port probed (tcp, http); the member's own port when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub port: Option<u16>,
    /// The address probes come from (an unused address of the members'
    /// subnet, answered to ARP by the switches); the controller's
    /// configured default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "10.0.0.250")]
    pub source_ip: Option<IpAddr>,
    /// `http`: the path requested (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "/")]
    pub http_path: Option<String>,
    /// `http`: the status that means healthy (default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = 200, minimum = 100, maximum = 599)]
    pub expected_status: Option<u16>,
}

fn default_interval() -> f64 {
    2.0
}

fn default_timeout() -> f64 {
    1.0
}

fn default_rise_fall() -> u8 {
    2
}

/// The whole configuration (the module's one copy).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub vips: BTreeMap<String, Vip>,
    pub pools: BTreeMap<String, Pool>,
    pub monitors: BTreeMap<String, Monitor>,
}

/// Why a change was refused (nothing was changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// 422: a value of the request is refused.
    Bad { field: String, reason: String },
    /// 404: a resource the request names (in its path or body) does not
    /// exist.
    Missing { field: String, reason: String },
    /// 409: it conflicts with what exists.
    Conflict { field: String, reason: String },
}

impl Invalid {
    pub fn bad(field: impl Into<String>, reason: impl Into<String>) -> Invalid {
        Invalid::Bad {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn missing(field: impl Into<String>, reason: impl Into<String>) -> Invalid {
        Invalid::Missing {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn conflict(field: impl Into<String>, reason: impl Into<String>) -> Invalid {
        Invalid::Conflict {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error about `prefix.field` (for nested objects).
    pub fn within(self, prefix: &str) -> Invalid {
        let join = |f: String| format!("{prefix}.{f}");
        match self {
            Invalid::Bad { field, reason } => Invalid::Bad {
                field: join(field),
                reason,
            },
            Invalid::Missing { field, reason } => Invalid::Missing {
                field: join(field),
                reason,
            },
            Invalid::Conflict { field, reason } => Invalid::Conflict {
                field: join(field),
                reason,
            },
        }
    }
}

fn reason_of(e: Invalid) -> String {
    match e {
        Invalid::Bad { reason, .. }
        | Invalid::Missing { reason, .. }
        | Invalid::Conflict { reason, .. } => reason,
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::Bad { field, reason }
            | Invalid::Missing { field, reason }
            | Invalid::Conflict { field, reason } => write!(f, "{field}: {reason}"),
        }
    }
}

/// What validation looks at besides the configuration: the hosts topology
/// knows, the tenant networks the overlay published, the default probe
/// sources.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    pub topology: Option<&'a TopologyView>,
    pub tenants: Option<&'a TenantNetworks>,
    pub monitor_source_v4: Option<IpAddr>,
    pub monitor_source_v6: Option<IpAddr>,
}

pub fn check_id(id: &str, field: &str) -> Result<(), Invalid> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Invalid::bad(
            field,
            format!("{id:?}: use 1-64 letters, digits, '.', '_' or '-'"),
        ))
    }
}

fn check_unicast(ip: IpAddr, field: &str) -> Result<(), Invalid> {
    let bad = match ip {
        IpAddr::V4(a) => a.is_unspecified() || a.is_multicast() || a.is_broadcast(),
        IpAddr::V6(a) => a.is_unspecified() || a.is_multicast(),
    };
    if bad {
        Err(Invalid::bad(
            field,
            format!("{ip} is not a unicast address"),
        ))
    } else {
        Ok(())
    }
}

impl Config {
    /// VIPs whose pool is `pool`.
    pub fn vips_of_pool<'a>(&'a self, pool: &'a str) -> impl Iterator<Item = &'a Vip> + 'a {
        self.vips.values().filter(move |v| v.pool == pool)
    }

    /// The monitor of `pool`, if it has one.
    pub fn monitor_of_pool(&self, pool: &str) -> Option<&Monitor> {
        self.monitors.values().find(|m| m.pool == pool)
    }

    /// The lowest index no VIP has.
    pub fn free_index(&self) -> Option<u32> {
        let used: std::collections::BTreeSet<u32> = self.vips.values().map(|v| v.index).collect();
        (1..=MAX_VIPS).find(|i| !used.contains(i))
    }

    /// Checks `vip` as the new version of VIP `vip.id` (replacing the one
    /// with its id, if any): its fields, its pool, its tenant network, and
    /// that its address collides with no other VIP, host or probe source.
    pub fn check_vip(&self, vip: &Vip, cx: &Context<'_>) -> Result<(), Invalid> {
        check_id(&vip.id, "id")?;
        check_unicast(vip.address, "address")?;
        if vip.port == 0 {
            return Err(Invalid::bad("port", "1-65535"));
        }
        if vip.affinity_timeout == Some(0) {
            return Err(Invalid::bad(
                "affinity_timeout",
                "1-65535 seconds (leave it out for no affinity)",
            ));
        }
        let Some(pool) = self.pools.get(&vip.pool) else {
            return Err(Invalid::missing("pool", format!("no pool {:?}", vip.pool)));
        };
        if pool.load_aware.is_some() && vip.method != Method::Weighted {
            return Err(Invalid::bad(
                "method",
                format!(
                    "pool {:?} is load-aware (the controller sets its weights): use weighted",
                    pool.id
                ),
            ));
        }
        if let Some(network) = &vip.network {
            let known = cx.tenants.and_then(|t| t.network(network));
            if known.is_none() {
                return Err(Invalid::missing(
                    "network",
                    format!("no tenant network {network:?}"),
                ));
            }
        }
        for other in self.vips.values().filter(|v| v.id != vip.id) {
            if other.network == vip.network
                && other.address == vip.address
                && other.protocol == vip.protocol
                && other.port == vip.port
            {
                return Err(Invalid::conflict(
                    "address",
                    format!(
                        "VIP {:?} already has {}:{} ({:?})",
                        other.id, vip.address, vip.port, vip.protocol
                    ),
                ));
            }
        }
        self.check_not_a_host(vip.address, vip.network.as_deref(), cx, "address")?;
        if self
            .monitors
            .values()
            .filter_map(|m| m.source_ip)
            .any(|s| s == vip.address)
        {
            return Err(Invalid::conflict(
                "address",
                format!("{} is a health monitor's source address", vip.address),
            ));
        }
        for member in &pool.members {
            check_member_for_vip(member, vip, cx).map_err(|e| {
                Invalid::bad(
                    "pool",
                    format!(
                        "pool {:?}: member {}: {}",
                        pool.id,
                        member.key(),
                        reason_of(e)
                    ),
                )
            })?;
        }
        Ok(())
    }

    /// Refuses an address a host (plain scope) or a tenant port (tenant
    /// scope) has.
    fn check_not_a_host(
        &self,
        ip: IpAddr,
        network: Option<&str>,
        cx: &Context<'_>,
        field: &str,
    ) -> Result<(), Invalid> {
        match network {
            None => {
                if let Some(host) = cx.topology.and_then(|t| t.host_by_ip(ip)) {
                    return Err(Invalid::conflict(
                        field,
                        format!("{ip} is the address of host {}", host.mac),
                    ));
                }
            }
            Some(network) => {
                let port = cx
                    .tenants
                    .and_then(|t| t.network(network))
                    .and_then(|n| n.port_with_ip(ip));
                if let Some(port) = port {
                    return Err(Invalid::conflict(
                        field,
                        format!("{ip} is the address of port {:?} of {network:?}", port.id),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks `pool` as the new version of pool `pool.id`: ids, members
    /// (weights, duplicates), and each member against every VIP using it.
    pub fn check_pool(&self, pool: &Pool, cx: &Context<'_>) -> Result<(), Invalid> {
        check_id(&pool.id, "id")?;
        if let Some(load) = &pool.load_aware {
            load.check().map_err(|e| e.within("load_aware"))?;
            if let Some(vip) = self
                .vips_of_pool(&pool.id)
                .find(|v| v.method != Method::Weighted)
            {
                return Err(Invalid::conflict(
                    "load_aware",
                    format!(
                        "VIP {:?} balances this pool by {:?}, which ignores weights; use weighted",
                        vip.id, vip.method
                    ),
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, member) in pool.members.iter().enumerate() {
            let at = format!("members[{i}]");
            check_member(member).map_err(|e| e.within(&at))?;
            if !seen.insert(member.key()) {
                return Err(Invalid::conflict(
                    format!("{at}.address"),
                    format!("{} is in the pool twice", member.key()),
                ));
            }
            for vip in self.vips_of_pool(&pool.id) {
                check_member_for_vip(member, vip, cx).map_err(|e| e.within(&at))?;
            }
        }
        Ok(())
    }

    /// Checks `monitor` as the new version of monitor `monitor.id`.
    pub fn check_monitor(&self, monitor: &Monitor, cx: &Context<'_>) -> Result<(), Invalid> {
        check_id(&monitor.id, "id")?;
        if !self.pools.contains_key(&monitor.pool) {
            return Err(Invalid::missing(
                "pool",
                format!("no pool {:?}", monitor.pool),
            ));
        }
        if let Some(other) = self
            .monitors
            .values()
            .find(|m| m.pool == monitor.pool && m.id != monitor.id)
        {
            return Err(Invalid::conflict(
                "pool",
                format!("pool {:?} has monitor {:?} already", monitor.pool, other.id),
            ));
        }
        if !monitor.interval.is_finite()
            || !(MIN_INTERVAL..=MAX_INTERVAL).contains(&monitor.interval)
        {
            return Err(Invalid::bad(
                "interval",
                format!("{MIN_INTERVAL}-{MAX_INTERVAL} seconds"),
            ));
        }
        if !monitor.timeout.is_finite() || monitor.timeout <= 0.0 {
            return Err(Invalid::bad("timeout", "more than 0 seconds"));
        }
        if monitor.timeout >= monitor.interval {
            return Err(Invalid::bad(
                "timeout",
                format!(
                    "{}s must be less than the interval ({}s)",
                    monitor.timeout, monitor.interval
                ),
            ));
        }
        for (name, value) in [("rise", monitor.rise), ("fall", monitor.fall)] {
            if !(1..=MAX_RISE_FALL).contains(&value) {
                return Err(Invalid::bad(name, format!("1-{MAX_RISE_FALL}")));
            }
        }
        if monitor.port == Some(0) {
            return Err(Invalid::bad("port", "1-65535"));
        }
        let http = monitor.kind == MonitorType::Http;
        if !http && monitor.http_path.is_some() {
            return Err(Invalid::bad("http_path", "only for type http"));
        }
        if !http && monitor.expected_status.is_some() {
            return Err(Invalid::bad("expected_status", "only for type http"));
        }
        if monitor.kind == MonitorType::Icmp && monitor.port.is_some() {
            return Err(Invalid::bad("port", "an ICMP check has no port"));
        }
        if let Some(path) = &monitor.http_path {
            if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(Invalid::bad(
                    "http_path",
                    "a path starting with '/', without spaces",
                ));
            }
        }
        if let Some(status) = monitor.expected_status {
            if !(100..=599).contains(&status) {
                return Err(Invalid::bad("expected_status", "an HTTP status (100-599)"));
            }
        }
        let pool = &self.pools[&monitor.pool];
        if let Some(source) = monitor.source_ip {
            check_unicast(source, "source_ip")?;
            if self.vips.values().any(|v| v.address == source) {
                return Err(Invalid::conflict(
                    "source_ip",
                    format!("{source} is a VIP's address"),
                ));
            }
            if pool.members.iter().any(|m| m.address == source) {
                return Err(Invalid::conflict(
                    "source_ip",
                    format!("{source} is a member's address"),
                ));
            }
            let networks: Vec<Option<&str>> = self
                .vips_of_pool(&pool.id)
                .map(|v| v.network.as_deref())
                .collect();
            for network in networks {
                self.check_not_a_host(source, network, cx, "source_ip")?;
            }
        }
        for member in &pool.members {
            if source_for(monitor, member.address, cx).is_none() {
                return Err(Invalid::bad(
                    "source_ip",
                    format!(
                        "give the address probes of {} come from (no default is configured \
                         for its address family)",
                        member.address
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The source address `monitor` probes `member` from: its own, else the
/// configured default of the member's family.
pub fn source_for(monitor: &Monitor, member: IpAddr, cx: &Context<'_>) -> Option<IpAddr> {
    let same_family = |a: &IpAddr| a.is_ipv4() == member.is_ipv4();
    monitor
        .source_ip
        .filter(same_family)
        .or(if member.is_ipv4() {
            cx.monitor_source_v4
        } else {
            cx.monitor_source_v6
        })
        .filter(same_family)
}

/// A member's own fields.
pub fn check_member(member: &Member) -> Result<(), Invalid> {
    check_unicast(member.address, "address")?;
    if member.port == 0 {
        return Err(Invalid::bad("port", "1-65535"));
    }
    if !(1..=MAX_WEIGHT).contains(&member.weight) {
        return Err(Invalid::bad(
            "weight",
            format!("{} is outside 1-{MAX_WEIGHT}", member.weight),
        ));
    }
    Ok(())
}

/// A member as a backend of `vip`: same address family, and inside the
/// VIP's tenant network when it has one.
pub fn check_member_for_vip(member: &Member, vip: &Vip, cx: &Context<'_>) -> Result<(), Invalid> {
    if member.address.is_ipv4() != vip.address.is_ipv4() {
        return Err(Invalid::bad(
            "address",
            format!(
                "{} and VIP {:?} ({}) are of different address families",
                member.address, vip.id, vip.address
            ),
        ));
    }
    if member.address == vip.address {
        return Err(Invalid::bad(
            "address",
            format!("{} is VIP {:?}'s own address", member.address, vip.id),
        ));
    }
    if let Some(network) = &vip.network {
        let inside = cx
            .tenants
            .and_then(|t| t.network(network))
            .is_some_and(|n| {
                n.port_with_ip(member.address).is_some() || n.in_subnet(member.address)
            });
        if !inside {
            return Err(Invalid::bad(
                "address",
                format!(
                    "{} is outside tenant network {network:?} of VIP {:?}",
                    member.address, vip.id
                ),
            ));
        }
    }
    Ok(())
}

impl Monitor {
    /// Fills the http defaults (`/`, 200) for an `http` monitor.
    pub fn normalized(mut self) -> Monitor {
        if self.kind == MonitorType::Http {
            self.http_path.get_or_insert_with(|| "/".into());
            self.expected_status.get_or_insert(200);
        }
        self
    }
}

#[cfg(test)]
mod tests;
