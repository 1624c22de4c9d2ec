//! What operators configure: the hosts watched, the rules over their
//! metrics, the actions those rules take, and the module's settings.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use flowgate_controller::policy::{Cidr, FieldError, Mac, PacketMatch};
use flowgate_controller::service::Origin;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::sources::Consolidation;

/// Longest id of a host; ids are also Ganglia names and store keys.
const MAX_ID: usize = 64;
/// Shortest poll interval: Ganglia's RRD step is 10 s, gmond reports
/// every few seconds, switch counters are asked from every switch.
pub const MIN_INTERVAL_S: u64 = 1;

/// A host whose metrics are watched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MonitoredHost {
    /// Letters, digits, `.`, `-`, `_`; at most 64.
    #[schema(example = "web1")]
    pub id: String,
    /// Its name in Ganglia (gmond's host name, gmetad's RRD directory);
    /// the id when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ganglia_name: Option<String>,
    /// Its Ganglia cluster (the RRD directory above the host's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "web")]
    pub cluster: Option<String>,
    /// Its address: what firewall and QoS actions match, and how the
    /// topology's host table finds where it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "10.0.0.3")]
    pub ip: Option<IpAddr>,
    /// Its MAC, when the IP is not enough to find it (or it has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub mac: Option<Mac>,
    /// The tenant network (VNI) of an overlay VM: its actions are scoped
    /// to that tenant, so colliding addresses elsewhere are not touched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 16777215)]
    pub tenant: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl MonitoredHost {
    pub fn ganglia_name(&self) -> &str {
        self.ganglia_name.as_deref().unwrap_or(&self.id)
    }

    pub fn validate(&self) -> Result<(), FieldError> {
        valid_name("id", &self.id)?;
        if let Some(name) = &self.ganglia_name {
            valid_name("ganglia_name", name)?;
        }
        if let Some(cluster) = &self.cluster {
            valid_name("cluster", cluster)?;
        }
        if let Some(vni) = self.tenant {
            if !(1..=0xFF_FFFF).contains(&vni) {
                return Err(FieldError::new("tenant", "a VNI is 1..16777215"));
            }
        }
        Ok(())
    }
}

/// Names that are also file names (Ganglia's directories) and store keys.
fn valid_name(field: &str, name: &str) -> Result<(), FieldError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_ID
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("{name:?}: 1 to {MAX_ID} letters, digits, '.', '-' or '_'"),
        ))
    }
}

/// Which hosts a rule watches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostSelector {
    /// One host by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Every host of this Ganglia cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Every host of this tenant network (VNI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 16777215)]
    pub tenant: Option<u32>,
}

impl HostSelector {
    pub fn matches(&self, host: &MonitoredHost) -> bool {
        self.host.as_ref().is_none_or(|h| *h == host.id)
            && self
                .cluster
                .as_ref()
                .is_none_or(|c| host.cluster.as_ref() == Some(c))
            && self.tenant.is_none_or(|t| host.tenant == Some(t))
    }

    fn validate(&self) -> Result<(), FieldError> {
        if self.host.is_none() && self.cluster.is_none() && self.tenant.is_none() {
            return Err(FieldError::new(
                "hosts",
                "name a host, a cluster or a tenant (every host of them)",
            ));
        }
        Ok(())
    }
}

/// A metric and where it comes from, written `[source:]name[:object]`:
/// `load_one` (Ganglia's RRD files), `gmond:cpu_idle` (gmond's live XML),
/// `switch:rx_bps` (the host's access port: `rx_bps`, `tx_bps`, `rx_pps`,
/// `tx_pps`; rx is what the switch receives from the host),
/// `switch:firewall_pps:12` (packets per second hitting firewall rule 12).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    Rrd(String),
    Gmond(String),
    Port(PortCounter),
    FirewallRule(u32),
}

/// A rate of the host's access port, from the switch's port counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortCounter {
    RxBps,
    TxBps,
    RxPps,
    TxPps,
}

impl PortCounter {
    const NAMES: [(&'static str, PortCounter); 4] = [
        ("rx_bps", PortCounter::RxBps),
        ("tx_bps", PortCounter::TxBps),
        ("rx_pps", PortCounter::RxPps),
        ("tx_pps", PortCounter::TxPps),
    ];

    fn name(self) -> &'static str {
        PortCounter::NAMES
            .iter()
            .find(|(_, c)| *c == self)
            .map(|(n, _)| *n)
            .unwrap_or_default()
    }
}

impl Metric {
    /// Whether a source outside Flowgate (Ganglia) gives it.
    pub fn is_ganglia(&self) -> bool {
        matches!(self, Metric::Rrd(_) | Metric::Gmond(_))
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Rrd(name) => f.write_str(name),
            Metric::Gmond(name) => write!(f, "gmond:{name}"),
            Metric::Port(c) => write!(f, "switch:{}", c.name()),
            Metric::FirewallRule(id) => write!(f, "switch:firewall_pps:{id}"),
        }
    }
}

impl FromStr for Metric {
    type Err = String;

    fn from_str(s: &str) -> Result<Metric, String> {
        let ganglia_name = |name: &str| -> Result<String, String> {
            valid_name("metric", name)
                .map(|_| name.to_owned())
                .map_err(|e| e.reason)
        };
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            [name] | ["ganglia", name] | ["rrd", name] => ganglia_name(name).map(Metric::Rrd),
            ["gmond", name] => ganglia_name(name).map(Metric::Gmond),
            ["switch", "firewall_pps", id] => id
                .parse()
                .ok()
                .filter(|id| *id > 0)
                .map(Metric::FirewallRule)
                .ok_or_else(|| format!("{id:?} is not a firewall rule id")),
            ["switch", name] => PortCounter::NAMES
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, c)| Metric::Port(*c))
                .ok_or_else(|| {
                    format!(
                        "unknown switch metric {name:?} (rx_bps, tx_bps, rx_pps, tx_pps, \
                         firewall_pps:<rule id>)"
                    )
                }),
            _ => Err(format!(
                "{s:?}: write [ganglia:|gmond:]<metric> or switch:<counter>"
            )),
        }
    }
}

impl Serialize for Metric {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Metric {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Metric, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How a value compares with a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Comparator {
    #[serde(rename = ">")]
    Above,
    #[serde(rename = ">=")]
    AtLeast,
    #[serde(rename = "<")]
    Below,
    #[serde(rename = "<=")]
    AtMost,
}

impl Comparator {
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparator::Above => value > threshold,
            Comparator::AtLeast => value >= threshold,
            Comparator::Below => value < threshold,
            Comparator::AtMost => value <= threshold,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Comparator::Above => ">",
            Comparator::AtLeast => ">=",
            Comparator::Below => "<",
            Comparator::AtMost => "<=",
        }
    }

    /// Whether breaching means going up.
    pub fn upward(self) -> bool {
        matches!(self, Comparator::Above | Comparator::AtLeast)
    }
}

/// What a rule does to a host whose metric crossed its threshold.
///
/// Variants without fields are written `Name {}`: serde ignores what else
/// an internally tagged unit variant's object holds, `{}` makes
/// `deny_unknown_fields` refuse it, as the document does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Firewall: the host may only reach `allow` (addresses or prefixes);
    /// everything else it sends is dropped.
    Quarantine {
        #[serde(default)]
        #[schema(value_type = Vec<String>)]
        allow: Vec<Cidr>,
    },
    /// QoS: a meter caps what the host sends, on every switch.
    RateLimit {
        /// kbit/s.
        kbps: u32,
    },
    /// QoS: what the host sends goes to queue `queue` (it must be
    /// provisioned by a QoS profile where the packets leave).
    Enqueue { queue: u32 },
    /// Load balancer: the host, a pool member (a member whose address is
    /// the host's ip, any port), gets no new connections; established ones
    /// go on. Every pool it is a member of, or only `pool`.
    LbDrain {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pool: Option<String>,
    },
    /// Load balancer: the host's member weight is scaled by `factor`
    /// (its VIPs must be `weighted` for weights to matter).
    LbWeight {
        factor: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pool: Option<String>,
    },
    /// Firewall: drop what the host sends that matches `match` (empty:
    /// everything).
    Block {
        #[serde(
            default,
            rename = "match",
            deserialize_with = "flowgate_controller::api::strict_field"
        )]
        match_: PacketMatch,
    },
    /// Only an event.
    Notify {},
}

/// Actions that contradict each other on one host share a slot: of the
/// active rules wanting a slot, the highest priority wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Slot {
    Quarantine,
    /// Rate limits and queues: one QoS entry per packet, so one of them.
    Qos,
    LbWeight,
    /// Blocks add up; each rule's block is its own.
    Block(u32),
    /// Notifications touch nothing.
    Notify(u32),
}

impl Action {
    pub fn slot(&self, rule: u32) -> Slot {
        match self {
            Action::Quarantine { .. } => Slot::Quarantine,
            Action::RateLimit { .. } | Action::Enqueue { .. } => Slot::Qos,
            Action::LbDrain { .. } | Action::LbWeight { .. } => Slot::LbWeight,
            Action::Block { .. } => Slot::Block(rule),
            Action::Notify {} => Slot::Notify(rule),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Action::Quarantine { .. } => "quarantine",
            Action::RateLimit { .. } => "rate_limit",
            Action::Enqueue { .. } => "enqueue",
            Action::LbDrain { .. } => "lb_drain",
            Action::LbWeight { .. } => "lb_weight",
            Action::Block { .. } => "block",
            Action::Notify {} => "notify",
        }
    }

    /// Whether the action matches the host's address in other modules.
    fn needs_ip(&self) -> bool {
        matches!(
            self,
            Action::Quarantine { .. }
                | Action::RateLimit { .. }
                | Action::Enqueue { .. }
                | Action::Block { .. }
                | Action::LbDrain { .. }
                | Action::LbWeight { .. }
        )
    }

    fn validate(&self) -> Result<(), FieldError> {
        match self {
            Action::RateLimit { kbps: 0 } => Err(FieldError::new("action.kbps", "must be above 0")),
            Action::LbWeight { factor, .. } if !(0.0..=1.0).contains(factor) || *factor == 0.0 => {
                Err(FieldError::new(
                    "action.factor",
                    "scales the member's weight: above 0, at most 1 (use lb_drain for 0)",
                ))
            }
            Action::LbDrain { pool: Some(pool) }
            | Action::LbWeight {
                pool: Some(pool), ..
            } => valid_name("action.pool", pool),
            Action::Block { match_ } => match_
                .eth_types()
                .map(drop)
                .map_err(|e| FieldError::new(format!("action.match.{}", e.field), e.reason)),
            _ => Ok(()),
        }
    }
}

/// When an applied action is undone (fieldless variants as `Name {}`,
/// see [`Action`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Revert {
    /// When the metric is past the clear threshold for `for` polls.
    OnRecovery {},
    /// A fixed time after it was applied, whatever the metric.
    After {
        #[schema(minimum = 1)]
        seconds: u64,
    },
    /// Only when the rule is deleted or disabled.
    Never {},
}

impl Default for Revert {
    fn default() -> Self {
        Revert::OnRecovery {}
    }
}

/// A threshold rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = HostRule)]
pub struct Rule {
    /// 1..4294967295 (the next free id when absent on POST).
    #[serde(default)]
    pub id: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub hosts: HostSelector,
    #[schema(value_type = String, example = "load_one")]
    pub metric: Metric,
    /// How the values over `window_s` are combined (RRD sources).
    #[serde(default)]
    pub consolidation: Consolidation,
    /// Seconds of history consolidated (RRD sources); 0 = the newest value.
    #[serde(default)]
    pub window_s: u64,
    pub comparator: Comparator,
    pub threshold: f64,
    /// Hysteresis: the rule recovers once the value is back past this
    /// (below it for `>`/`>=`, above it for `<`/`<=`); the threshold
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear: Option<f64>,
    /// Consecutive polls past the threshold before acting (and past the
    /// clear threshold before recovering). At least 1.
    #[serde(default = "one", rename = "for")]
    #[schema(minimum = 1)]
    pub for_polls: u32,
    /// Seconds between polls.
    #[serde(default = "ten")]
    #[schema(minimum = 1)]
    pub interval_s: u64,
    /// Seconds after a revert before the rule acts on that host again.
    #[serde(default)]
    pub cooldown_s: u64,
    /// Of two active rules wanting the same slot on a host (two rate
    /// limits, say), the higher priority wins; equal priorities, the lower
    /// rule id. 0..500.
    #[serde(default)]
    #[schema(maximum = 500)]
    pub priority: u16,
    pub action: Action,
    #[serde(default)]
    pub revert: Revert,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, read_only)]
    pub origin: Option<Origin>,
}

fn one() -> u32 {
    1
}
fn ten() -> u64 {
    10
}
fn yes() -> bool {
    true
}

/// Highest rule priority: hostaware's firewall and QoS entries sit in a
/// band of their priorities above it (see `actions`).
pub const MAX_PRIORITY: u16 = 500;

impl Rule {
    pub fn clear_threshold(&self) -> f64 {
        self.clear.unwrap_or(self.threshold)
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_s)
    }

    pub fn window(&self) -> Duration {
        Duration::from_secs(self.window_s)
    }

    /// Whether `value` breaches the threshold.
    pub fn breached(&self, value: f64) -> bool {
        self.comparator.holds(value, self.threshold)
    }

    /// Whether `value` is back past the clear threshold.
    pub fn recovered(&self, value: f64) -> bool {
        match self.clear {
            None => !self.breached(value),
            Some(clear) if self.comparator.upward() => value <= clear,
            Some(clear) => value >= clear,
        }
    }

    pub fn validate(&self) -> Result<(), FieldError> {
        self.hosts.validate()?;
        if !self.threshold.is_finite() {
            return Err(FieldError::new("threshold", "must be a finite number"));
        }
        if let Some(clear) = self.clear {
            let ok = clear.is_finite()
                && if self.comparator.upward() {
                    clear <= self.threshold
                } else {
                    clear >= self.threshold
                };
            if !ok {
                let side = if self.comparator.upward() {
                    "at most"
                } else {
                    "at least"
                };
                return Err(FieldError::new(
                    "clear",
                    format!("must be {side} the threshold {}", self.threshold),
                ));
            }
        }
        if self.for_polls == 0 {
            return Err(FieldError::new("for", "at least 1 poll"));
        }
        if self.interval_s < MIN_INTERVAL_S {
            return Err(FieldError::new(
                "interval_s",
                format!("at least {MIN_INTERVAL_S} second"),
            ));
        }
        if self.priority > MAX_PRIORITY {
            return Err(FieldError::new("priority", format!("0..{MAX_PRIORITY}")));
        }
        if let Revert::After { seconds: 0 } = self.revert {
            return Err(FieldError::new("revert.seconds", "must be above 0"));
        }
        if !self.metric.is_ganglia() && self.window_s > 0 {
            return Err(FieldError::new(
                "window_s",
                "switch metrics are rates between two polls: no window",
            ));
        }
        self.action.validate()
    }

    /// Checks that every host the rule selects can take its action.
    pub fn check_hosts<'a>(
        &self,
        hosts: impl IntoIterator<Item = &'a MonitoredHost>,
    ) -> Result<(), FieldError> {
        if !self.action.needs_ip() {
            return Ok(());
        }
        match hosts
            .into_iter()
            .find(|h| self.hosts.matches(h) && h.ip.is_none())
        {
            Some(h) => Err(FieldError::new(
                "action",
                format!(
                    "{} needs the address of every host it acts on; host {} has no ip",
                    self.action.kind(),
                    h.id
                ),
            )),
            None => Ok(()),
        }
    }
}

/// Where metrics come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Evaluate rules (false: watch nothing, apply nothing; reactions in
    /// place are reverted).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// gmetad's `rrd_rootdir`.
    #[serde(default = "default_rrd_root")]
    #[schema(example = "/var/lib/ganglia/rrds")]
    pub rrd_root: String,
    /// gmond (or gmetad's XML port) to read live values from,
    /// `host:port`.
    #[serde(default = "default_gmond")]
    #[schema(example = "127.0.0.1:8649")]
    pub gmond: String,
    /// A source whose newest value is older than this is stale: it
    /// neither triggers nor reverts.
    #[serde(default = "default_stale_s")]
    #[schema(minimum = 1)]
    pub stale_after_s: u64,
    /// Events kept in the audit trail (oldest dropped first).
    #[serde(default = "default_keep_events")]
    #[schema(minimum = 100, maximum = 1000000)]
    pub keep_events: u32,
}

fn default_rrd_root() -> String {
    "/var/lib/ganglia/rrds".into()
}
fn default_gmond() -> String {
    "127.0.0.1:8649".into()
}
fn default_stale_s() -> u64 {
    60
}
fn default_keep_events() -> u32 {
    10_000
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            enabled: true,
            rrd_root: default_rrd_root(),
            gmond: default_gmond(),
            stale_after_s: default_stale_s(),
            keep_events: default_keep_events(),
        }
    }
}

impl Settings {
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.rrd_root.is_empty() || !self.rrd_root.starts_with('/') {
            return Err(FieldError::new("rrd_root", "an absolute directory"));
        }
        if self.gmond.parse::<std::net::SocketAddr>().is_err() {
            return Err(FieldError::new(
                "gmond",
                format!("{:?} is not an address:port", self.gmond),
            ));
        }
        if self.stale_after_s == 0 {
            return Err(FieldError::new("stale_after_s", "must be above 0"));
        }
        if !(100..=1_000_000).contains(&self.keep_events) {
            return Err(FieldError::new("keep_events", "100..1000000"));
        }
        Ok(())
    }
}

/// The module's whole configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub settings: Settings,
    pub hosts: BTreeMap<String, MonitoredHost>,
    pub rules: BTreeMap<u32, Rule>,
}

#[cfg(test)]
mod tests;
