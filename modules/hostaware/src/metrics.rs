//! Reading the metrics rules ask for: one batch per poll, every source
//! asked once (one gmond document, one port-stats request per switch).
//!
//! Switch metrics are rates between two polls of a counter, so a rule's
//! first poll of one has no value yet (`Missing`), and a counter that went
//! backwards (a switch restarted) starts over.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::{Duration, SystemTime};

use flowgate_controller::api::ControllerView;
use flowgate_controller::pipeline::ACL;
use flowgate_controller::runtime::Runtime;
use flowgate_controller::topology::{Endpoint, TopologyView};
use flowgate_firewall::compile::rule_cookie;

use crate::engine::Reading;
use crate::model::{Metric, MonitoredHost, PortCounter, Settings};
use crate::sources::{Consolidation, Sample, SourceError};

/// One value a rule needs.
#[derive(Debug, Clone)]
pub struct Want {
    pub host: MonitoredHost,
    pub metric: Metric,
    pub consolidation: Consolidation,
    pub window: Duration,
}

/// Where readings come from (fakes in tests).
pub trait Metrics: Send + 'static {
    /// One reading per want, in order.
    fn read(
        &mut self,
        wants: Vec<Want>,
        settings: Settings,
        view: std::sync::Arc<TopologyView>,
        now: SystemTime,
    ) -> impl Future<Output = Vec<Reading>> + Send;
}

/// Where a host is: by IP in the topology's host table, else by MAC.
pub fn locate(host: &MonitoredHost, view: &TopologyView) -> Option<Endpoint> {
    host.ip
        .and_then(|ip| view.host_by_ip(ip))
        .or_else(|| host.mac.and_then(|m| view.host(m.0)))
        .map(|h| h.at)
}

/// Rates from monotonically growing counters.
#[derive(Debug, Default)]
pub struct Rates {
    last: HashMap<String, (u64, SystemTime)>,
}

impl Rates {
    /// The rate of counter `key` since its previous value, per second.
    pub fn rate(&mut self, key: String, value: u64, now: SystemTime) -> Reading {
        let previous = self.last.insert(key, (value, now));
        let Some((before, then)) = previous else {
            return Err(SourceError::NotYet(
                "a rate needs two polls; the first was just taken".into(),
            ));
        };
        let elapsed = now.duration_since(then).unwrap_or_default().as_secs_f64();
        if elapsed <= 0.0 || value < before {
            return Err(SourceError::NotYet(
                "the counter restarted; a rate needs one more poll".into(),
            ));
        }
        Ok(Sample {
            value: (value - before) as f64 / elapsed,
            at: now,
        })
    }
}

/// Switch counters: the host's access port and firewall rule hits.
pub struct SwitchCounters {
    runtime: Runtime,
    rates: Rates,
}

impl SwitchCounters {
    pub fn new(runtime: Runtime) -> SwitchCounters {
        SwitchCounters {
            runtime,
            rates: Rates::default(),
        }
    }

    /// Readings for the switch metrics among `wants` (None for the others).
    pub async fn read(
        &mut self,
        wants: &[Want],
        view: &TopologyView,
        now: SystemTime,
    ) -> Vec<Option<Reading>> {
        let mut ports: BTreeMap<u64, Result<Vec<flowgate_openflow::PortStats>, String>> =
            BTreeMap::new();
        let mut rules: BTreeMap<u32, Result<u64, String>> = BTreeMap::new();
        for want in wants {
            match &want.metric {
                Metric::Port(_) => {
                    if let Some(at) = locate(&want.host, view) {
                        if let std::collections::btree_map::Entry::Vacant(slot) =
                            ports.entry(at.dpid)
                        {
                            let stats = self.runtime.port_stats(at.dpid).await;
                            slot.insert(stats.map_err(|e| e.to_string()));
                        }
                    }
                }
                Metric::FirewallRule(id) if !rules.contains_key(id) => {
                    let hits = self.rule_packets(*id).await;
                    rules.insert(*id, hits);
                }
                _ => {}
            }
        }
        wants
            .iter()
            .map(|want| match &want.metric {
                Metric::Port(counter) => Some(self.port_reading(want, *counter, view, &ports, now)),
                Metric::FirewallRule(id) => Some(match &rules[id] {
                    Ok(packets) => self.rates.rate(format!("fw/{id}"), *packets, now),
                    Err(e) => Err(SourceError::Unavailable(e.clone())),
                }),
                _ => None,
            })
            .collect()
    }

    fn port_reading(
        &mut self,
        want: &Want,
        counter: PortCounter,
        view: &TopologyView,
        ports: &BTreeMap<u64, Result<Vec<flowgate_openflow::PortStats>, String>>,
        now: SystemTime,
    ) -> Reading {
        let at = locate(&want.host, view).ok_or_else(|| {
            SourceError::Missing(format!(
                "host {} is not in the topology's host table (yet)",
                want.host.id
            ))
        })?;
        let stats = match &ports[&at.dpid] {
            Ok(stats) => stats,
            Err(e) => return Err(SourceError::Unavailable(e.clone())),
        };
        let port = stats.iter().find(|p| p.port_no == at.port).ok_or_else(|| {
            SourceError::Missing(format!("switch {:x} reports no port {}", at.dpid, at.port))
        })?;
        let (value, bits) = match counter {
            PortCounter::RxBps => (port.rx_bytes, true),
            PortCounter::TxBps => (port.tx_bytes, true),
            PortCounter::RxPps => (port.rx_packets, false),
            PortCounter::TxPps => (port.tx_packets, false),
        };
        let key = format!("port/{:x}/{}/{:?}", at.dpid, at.port, counter);
        self.rates.rate(key, value, now).map(|s| Sample {
            value: if bits { s.value * 8.0 } else { s.value },
            ..s
        })
    }

    /// Packets that hit firewall rule `id`, summed over every switch.
    async fn rule_packets(&self, id: u32) -> Result<u64, String> {
        let mut total = 0;
        for sw in self.runtime.switches() {
            let stats = self
                .runtime
                .flow_stats_by_cookie(sw.dpid, ACL, rule_cookie(id), u64::MAX)
                .await
                .map_err(|e| e.to_string())?;
            total += stats.iter().map(|f| f.packet_count).sum::<u64>();
        }
        Ok(total)
    }
}

/// Every source a rule can name.
pub struct LiveMetrics {
    switch: SwitchCounters,
}

impl LiveMetrics {
    pub fn new(runtime: Runtime) -> LiveMetrics {
        LiveMetrics {
            switch: SwitchCounters::new(runtime),
        }
    }
}

impl Metrics for LiveMetrics {
    async fn read(
        &mut self,
        wants: Vec<Want>,
        _settings: Settings,
        view: std::sync::Arc<TopologyView>,
        now: SystemTime,
    ) -> Vec<Reading> {
        let switch = self.switch.read(&wants, &view, now).await;
        switch
            .into_iter()
            .map(|reading| {
                reading.unwrap_or_else(|| {
                    Err(SourceError::Unavailable(
                        "Ganglia sources are not built into this controller".into(),
                    ))
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_need_two_polls_and_restart_with_the_counter() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let mut r = Rates::default();
        assert!(matches!(
            r.rate("a".into(), 100, t0),
            Err(SourceError::NotYet(_))
        ));
        let s = r
            .rate("a".into(), 1100, t0 + Duration::from_secs(10))
            .unwrap();
        assert_eq!(s.value, 100.0);
        assert!(
            r.rate("a".into(), 50, t0 + Duration::from_secs(20))
                .is_err(),
            "went backwards"
        );
        let s = r
            .rate("a".into(), 250, t0 + Duration::from_secs(22))
            .unwrap();
        assert_eq!(s.value, 100.0);
    }
}
