//! Reading the metrics rules ask for: one batch per poll, every source
//! asked once (one gmond document, one port-stats request per switch).
//!
//! Switch metrics are rates between two polls of a counter, so a rule's
//! first poll of one has no value yet (`Missing`), and a counter that went
//! backwards (a switch restarted) starts over.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use flowgate_controller::api::ControllerView;
use flowgate_controller::pipeline::ACL;
use flowgate_controller::runtime::Runtime;
use flowgate_controller::topology::{Endpoint, TopologyView};
use flowgate_firewall::compile::rule_cookie;

use crate::engine::Reading;
use crate::model::{Metric, MonitoredHost, PortCounter, Settings};
use crate::sources::gmond::fetch_gmond;
use crate::sources::rrd::{LibRrd, RrdRead};
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

/// Ganglia: gmetad's RRD files and gmond's XML.
pub struct Ganglia;

impl Ganglia {
    /// Names gmetad may have filed `host` under: its Ganglia name, that
    /// name lower-cased (gmetad's default), its IP (an unresolved host).
    fn names(host: &MonitoredHost) -> Vec<String> {
        let mut names = vec![host.ganglia_name().to_owned()];
        let lower = host.ganglia_name().to_ascii_lowercase();
        if lower != names[0] {
            names.push(lower);
        }
        names.extend(host.ip.map(|ip| ip.to_string()));
        names
    }

    /// Reads the RRD wants (blocking librrd: call from `spawn_blocking`).
    fn read_rrd(
        wants: &[(usize, Want)],
        settings: &Settings,
        now: SystemTime,
    ) -> Vec<(usize, Reading)> {
        let rrd = LibRrd {
            root: PathBuf::from(&settings.rrd_root),
            stale_after: Duration::from_secs(settings.stale_after_s),
        };
        let clusters = clusters(&rrd.root);
        wants
            .iter()
            .map(|(i, want)| {
                let Metric::Rrd(metric) = &want.metric else {
                    return (*i, Err(SourceError::Missing("not an RRD metric".into())));
                };
                let searched: Vec<&str> = match &want.host.cluster {
                    Some(c) => vec![c.as_str()],
                    None => clusters.iter().map(String::as_str).collect(),
                };
                let mut last = SourceError::Missing(format!(
                    "no RRD file for {} under {} (clusters {:?})",
                    want.host.id, settings.rrd_root, searched
                ));
                for cluster in &searched {
                    for name in Ganglia::names(&want.host) {
                        match rrd.read(cluster, &name, metric, want.consolidation, want.window, now)
                        {
                            Ok(v) => {
                                return (
                                    *i,
                                    Ok(Sample {
                                        value: v.value,
                                        at: v.at,
                                    }),
                                )
                            }
                            Err(SourceError::Missing(_)) => {}
                            Err(e) => last = e,
                        }
                    }
                }
                (*i, Err(last))
            })
            .collect()
    }

    /// Reads the gmond wants from one document.
    async fn read_gmond(
        wants: &[(usize, Want)],
        settings: &Settings,
        now: SystemTime,
    ) -> Vec<(usize, Reading)> {
        let doc = match settings.gmond.parse() {
            Ok(addr) => fetch_gmond(addr, GMOND_TIMEOUT).await,
            Err(_) => Err(SourceError::Unavailable(format!(
                "{:?} is not an address",
                settings.gmond
            ))),
        };
        wants
            .iter()
            .map(|(i, want)| {
                let Metric::Gmond(metric) = &want.metric else {
                    return (*i, Err(SourceError::Missing("not a gmond metric".into())));
                };
                let reading = match &doc {
                    Err(e) => Err(e.clone()),
                    Ok(doc) => {
                        let cluster = want.host.cluster.as_deref();
                        let mut reading = Err(SourceError::Missing(format!(
                            "no host {} in gmond's document",
                            want.host.id
                        )));
                        for name in Ganglia::names(&want.host) {
                            reading = doc.value(cluster, &name, metric, now);
                            if !matches!(&reading, Err(SourceError::Missing(_))) {
                                break;
                            }
                        }
                        reading
                    }
                };
                (*i, reading)
            })
            .collect()
    }
}

/// How long gmond may take to send its document.
const GMOND_TIMEOUT: Duration = Duration::from_secs(5);

/// Cluster directories under an RRD root.
fn clusters(root: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n != "__SummaryInfo__")
        .collect();
    out.sort();
    out
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
        settings: Settings,
        view: std::sync::Arc<TopologyView>,
        now: SystemTime,
    ) -> Vec<Reading> {
        let pick = |f: fn(&Metric) -> bool| -> Vec<(usize, Want)> {
            wants
                .iter()
                .enumerate()
                .filter(|(_, w)| f(&w.metric))
                .map(|(i, w)| (i, w.clone()))
                .collect()
        };
        let rrd_wants = pick(|m| matches!(m, Metric::Rrd(_)));
        let gmond_wants = pick(|m| matches!(m, Metric::Gmond(_)));
        let rrd_settings = settings.clone();
        let rrd = async move {
            if rrd_wants.is_empty() {
                return Vec::new();
            }
            let indices: Vec<usize> = rrd_wants.iter().map(|(i, _)| *i).collect();
            tokio::task::spawn_blocking(move || Ganglia::read_rrd(&rrd_wants, &rrd_settings, now))
                .await
                .unwrap_or_else(|e| {
                    let why = SourceError::Unavailable(format!("reading RRD files failed: {e}"));
                    indices.into_iter().map(|i| (i, Err(why.clone()))).collect()
                })
        };
        let gmond = async {
            if gmond_wants.is_empty() {
                return Vec::new();
            }
            Ganglia::read_gmond(&gmond_wants, &settings, now).await
        };
        let (rrd, gmond, switch) = tokio::join!(rrd, gmond, self.switch.read(&wants, &view, now));
        let mut out: Vec<Reading> = switch
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(SourceError::NotYet("not read yet".into()))))
            .collect();
        for (i, reading) in rrd.into_iter().chain(gmond) {
            out[i] = reading;
        }
        out
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

    /// A gmetad-like file `<root>/<cluster>/<host>/load_one.rrd` (step 10 s)
    /// holding `value` from `t0` for a minute.
    fn rrd_file(root: &std::path::Path, cluster: &str, host: &str, t0: u64, value: f64) {
        let dir = root.join(cluster).join(host);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("load_one.rrd");
        let file = file.to_str().unwrap().to_owned();
        let run = |args: Vec<String>| {
            let out = std::process::Command::new("rrdtool")
                .args(&args)
                .output()
                .expect("rrdtool runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run([
            "create",
            &file,
            "--start",
            &t0.to_string(),
            "--step",
            "10",
            "DS:sum:GAUGE:30:U:U",
            "RRA:AVERAGE:0.5:1:100",
        ]
        .map(String::from)
        .to_vec());
        let mut update = vec!["update".to_owned(), file];
        update.extend((1..=6).map(|k| format!("{}:{value}", t0 + 10 * k)));
        run(update);
    }

    #[test]
    fn ganglia_hosts_are_found_in_any_cluster_by_name_lower_cased_or_ip() {
        let root = tempfile::tempdir().unwrap();
        let t0 = 1_700_000_000;
        rrd_file(root.path(), "web", "web1", t0, 3.0);
        rrd_file(root.path(), "db", "10.0.0.9", t0, 7.0);
        let host = |v: serde_json::Value| -> MonitoredHost { serde_json::from_value(v).unwrap() };
        let want = |h: MonitoredHost| Want {
            host: h,
            metric: Metric::Rrd("load_one".into()),
            consolidation: Consolidation::Average,
            window: Duration::from_secs(30),
        };
        let settings = Settings {
            rrd_root: root.path().to_str().unwrap().to_owned(),
            ..Settings::default()
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(t0 + 65);
        let wants = [
            (
                0,
                want(host(serde_json::json!({"id": "a", "ganglia_name": "WEB1"}))),
            ),
            (
                1,
                want(host(serde_json::json!({"id": "b", "ip": "10.0.0.9"}))),
            ),
            (
                2,
                want(host(
                    serde_json::json!({"id": "c", "cluster": "db", "ganglia_name": "web1"}),
                )),
            ),
        ];
        let got = Ganglia::read_rrd(&wants, &settings, now);
        assert_eq!(got[0].1.as_ref().map(|s| s.value), Ok(3.0));
        assert_eq!(got[1].1.as_ref().map(|s| s.value), Ok(7.0));
        assert!(
            matches!(&got[2].1, Err(SourceError::Missing(m)) if m.contains("\"db\"")),
            "{:?}",
            got[2]
        );
        let later = SystemTime::UNIX_EPOCH + Duration::from_secs(t0 + 600);
        let stale = Ganglia::read_rrd(&wants[..1], &settings, later);
        assert!(
            matches!(stale[0].1, Err(SourceError::Stale { .. })),
            "{stale:?}"
        );
    }
}
