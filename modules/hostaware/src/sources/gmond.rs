//! Live values from gmond (or gmetad): the XML document either serves to
//! anyone who connects to its TCP port (gmond 8649, gmetad 8651), read to
//! EOF. gmond's is `GANGLIA_XML > CLUSTER > HOST > METRIC`; gmetad wraps
//! its clusters in `GRID`.
//!
//! Ganglia's times are relative: a HOST's `TN` is the seconds since gmond
//! last heard that host's heartbeat (sent every `TMAX` seconds, 20 by
//! default), a METRIC's `TN` the seconds since the metric was last sent
//! (at least every `TMAX` seconds; after `DMAX` seconds, when not 0, gmond
//! forgets it). They count up to when the document was made: the
//! `LOCALTIME` of its outermost `GRID` or `CLUSTER`.
//!
//! Staleness, following gmetad and the web frontend:
//! - a host is down when its `TN` ≥ 4 × `TMAX` (with `TMAX` 0: when it last
//!   reported 60 s or more before the document was made); gmond keeps
//!   serving a down host's last values, which are then all stale;
//! - a metric is stale when its `TN` > max(4 × `TMAX`, [`STALE_FLOOR`]), or
//!   > `DMAX` when `DMAX` is not 0.
//!
//! Each is aged by the time between the document's `LOCALTIME` and `now`,
//! so a document kept for a while goes stale by itself.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::{Sample, SourceError};

/// Largest document [`fetch_gmond`] reads (a gmetad of about 2,000 hosts).
pub const MAX_XML_BYTES: usize = 16 << 20;

/// A metric is not stale before this age, whatever its `TMAX`.
pub const STALE_FLOOR: Duration = Duration::from_secs(60);

/// gmetad's rule for a host without `TMAX`: down after 60 s without a report.
const REPORT_DEADLINE: Duration = Duration::from_secs(60);

/// A gmond or gmetad XML document.
#[derive(Debug, Clone, PartialEq)]
pub struct GmondDoc {
    /// `gmond` or `gmetad`.
    pub source: String,
    /// Version of the daemon that made it.
    pub version: String,
    /// When it was made: `LOCALTIME` of its outermost `GRID` or `CLUSTER`.
    pub localtime: Option<SystemTime>,
    /// Every cluster, at any depth of grids; hosts outside any cluster are
    /// in one named "".
    pub clusters: Vec<GmondCluster>,
    /// (cluster, host) positions by host name and by IP.
    index: HashMap<String, Vec<(usize, usize)>>,
}

/// A `CLUSTER`.
#[derive(Debug, Clone, PartialEq)]
pub struct GmondCluster {
    pub name: String,
    pub localtime: Option<SystemTime>,
    pub hosts: Vec<GmondHost>,
}

/// A `HOST` and its metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct GmondHost {
    pub name: String,
    pub ip: String,
    /// Its last heartbeat, by its own clock.
    pub reported: SystemTime,
    pub tn: u32,
    pub tmax: u32,
    pub dmax: u32,
    pub metrics: HashMap<String, GmondMetric>,
}

/// A `METRIC`, its value as written.
#[derive(Debug, Clone, PartialEq)]
pub struct GmondMetric {
    pub val: String,
    /// `TYPE`: string, int8 … uint32, float, double, timestamp.
    pub kind: String,
    pub units: String,
    pub tn: u32,
    pub tmax: u32,
    pub dmax: u32,
}

impl GmondDoc {
    /// The host named `host` (or, failing that, with IP `host`), in
    /// `cluster` when given, else in the first cluster that has it.
    pub fn host(&self, cluster: Option<&str>, host: &str) -> Result<&GmondHost, SourceError> {
        let in_cluster =
            |&&(c, _): &&(usize, usize)| cluster.is_none_or(|name| self.clusters[c].name == name);
        let positions = self.index.get(host).map(Vec::as_slice).unwrap_or_default();
        // Names were indexed before IPs, so a name match comes first.
        let &(c, h) = positions.iter().find(in_cluster).ok_or_else(|| {
            SourceError::Missing(match cluster {
                Some(cluster) => format!("no host {host:?} in cluster {cluster:?}"),
                None => format!("no host {host:?} in the {} document", self.source),
            })
        })?;
        Ok(&self.clusters[c].hosts[h])
    }

    /// The numeric value of `metric` of `host` (see [`GmondDoc::host`]),
    /// with the time it was sent, or why there is none (module docs).
    pub fn value(
        &self,
        cluster: Option<&str>,
        host: &str,
        metric: &str,
        now: SystemTime,
    ) -> Result<Sample, SourceError> {
        let h = self.host(cluster, host)?;
        let m = h.metrics.get(metric).ok_or_else(|| {
            SourceError::Missing(format!("host {:?} has no metric {metric:?}", h.name))
        })?;
        // Time since the document was made.
        let kept = self
            .localtime
            .and_then(|made| now.duration_since(made).ok())
            .unwrap_or_default();
        let (host_age, host_limit) = if h.tmax > 0 {
            (secs(h.tn) + kept, 4 * secs(h.tmax))
        } else {
            let made = self.localtime.unwrap_or(now);
            let since_report = made.duration_since(h.reported).unwrap_or_default();
            (since_report + kept, REPORT_DEADLINE)
        };
        if host_age >= host_limit {
            return Err(SourceError::Stale { age: host_age });
        }
        let age = secs(m.tn) + kept;
        if age > (4 * secs(m.tmax)).max(STALE_FLOOR) || (m.dmax > 0 && age > secs(m.dmax)) {
            return Err(SourceError::Stale { age });
        }
        if m.kind == "string" {
            return Err(SourceError::Missing(format!(
                "metric {metric:?} of {:?} is a string ({:?}), not a number",
                h.name, m.val
            )));
        }
        let value = m.val.trim().parse::<f64>().map_err(|_| {
            SourceError::Missing(format!(
                "metric {metric:?} of {:?} is not a number: {:?} ({})",
                h.name, m.val, m.kind
            ))
        })?;
        Ok(Sample {
            value,
            at: now.checked_sub(age).unwrap_or(UNIX_EPOCH),
        })
    }
}

fn secs(n: u32) -> Duration {
    Duration::from_secs(n.into())
}

/// Parses a gmond or gmetad XML document. Summaries (`HOSTS`, `METRICS`)
/// and `EXTRA_DATA` are skipped.
pub fn parse_gmond(xml: &str) -> Result<GmondDoc, SourceError> {
    let mut reader = Reader::from_str(xml);
    let mut doc: Option<GmondDoc> = None;
    // The open cluster, the open host (cluster, host), as indexes into
    // doc.clusters, and the cluster of hosts outside any.
    let mut cluster: Option<usize> = None;
    let mut host: Option<(usize, usize)> = None;
    let mut loose: Option<usize> = None;
    // Open elements: a document cut short (a daemon that died while
    // sending) is not a smaller document.
    let mut depth = 0usize;
    loop {
        let pos = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| bad(format!("{e} at byte {pos}")))?;
        let (element, empty) = match &event {
            Event::Start(e) => {
                depth += 1;
                (e, false)
            }
            Event::Empty(e) => (e, true),
            Event::End(e) => {
                depth = depth.saturating_sub(1);
                match e.name().as_ref() {
                    "CLUSTER" => (cluster, host) = (None, None),
                    "HOST" => host = None,
                    _ => {}
                }
                continue;
            }
            Event::Eof if depth > 0 => return Err(bad("document cut short".to_owned())),
            Event::Eof => break,
            _ => continue,
        };
        let attrs = Attrs::of(element)?;
        let name = element.name();
        let Some(doc) = doc.as_mut() else {
            if name.as_ref() != "GANGLIA_XML" {
                return Err(bad("not a Ganglia XML document".to_owned()));
            }
            doc = Some(GmondDoc {
                source: attrs.get("SOURCE").unwrap_or_default().to_owned(),
                version: attrs.get("VERSION").unwrap_or_default().to_owned(),
                localtime: None,
                clusters: Vec::new(),
                index: HashMap::new(),
            });
            continue;
        };
        match name.as_ref() {
            "GRID" => doc.localtime = doc.localtime.or(attrs.time("LOCALTIME")?),
            "CLUSTER" => {
                let localtime = attrs.time("LOCALTIME")?;
                doc.localtime = doc.localtime.or(localtime);
                doc.clusters.push(GmondCluster {
                    name: attrs.required("CLUSTER", "NAME")?.to_owned(),
                    localtime,
                    hosts: Vec::new(),
                });
                cluster = (!empty).then_some(doc.clusters.len() - 1);
            }
            "HOST" => {
                let c = match cluster.or(loose) {
                    Some(c) => c,
                    None => {
                        doc.clusters.push(GmondCluster {
                            name: String::new(),
                            localtime: None,
                            hosts: Vec::new(),
                        });
                        *loose.insert(doc.clusters.len() - 1)
                    }
                };
                let hosts = &mut doc.clusters[c].hosts;
                hosts.push(GmondHost {
                    name: attrs.required("HOST", "NAME")?.to_owned(),
                    ip: attrs.get("IP").unwrap_or_default().to_owned(),
                    reported: attrs.time("REPORTED")?.unwrap_or(UNIX_EPOCH),
                    tn: attrs.number("TN")?,
                    tmax: attrs.number("TMAX")?,
                    dmax: attrs.number("DMAX")?,
                    metrics: HashMap::new(),
                });
                host = (!empty).then_some((c, hosts.len() - 1));
            }
            "METRIC" => {
                let Some((c, h)) = host else {
                    return Err(bad(format!("METRIC outside a HOST at byte {pos}")));
                };
                let metric = GmondMetric {
                    val: attrs.required("METRIC", "VAL")?.to_owned(),
                    kind: attrs.get("TYPE").unwrap_or_default().to_owned(),
                    units: attrs.get("UNITS").unwrap_or_default().to_owned(),
                    tn: attrs.number("TN")?,
                    tmax: attrs.number("TMAX")?,
                    dmax: attrs.number("DMAX")?,
                };
                let name = attrs.required("METRIC", "NAME")?.to_owned();
                doc.clusters[c].hosts[h].metrics.insert(name, metric);
            }
            _ => {}
        }
    }
    let mut doc = doc.ok_or_else(|| bad("no GANGLIA_XML element".to_owned()))?;
    for (c, cluster) in doc.clusters.iter().enumerate() {
        for (h, host) in cluster.hosts.iter().enumerate() {
            doc.index.entry(host.name.clone()).or_default().push((c, h));
        }
    }
    for (c, cluster) in doc.clusters.iter().enumerate() {
        for (h, host) in cluster.hosts.iter().enumerate() {
            if !host.ip.is_empty() && host.ip != host.name {
                doc.index.entry(host.ip.clone()).or_default().push((c, h));
            }
        }
    }
    Ok(doc)
}

fn bad(reason: String) -> SourceError {
    SourceError::Unavailable(format!("Ganglia XML: {reason}"))
}

/// An element's attributes, unescaped.
struct Attrs(Vec<(String, String)>);

impl Attrs {
    fn of(element: &BytesStart<'_>) -> Result<Self, SourceError> {
        let mut attrs = Vec::new();
        for attr in element.attributes() {
            let attr = attr.map_err(|e| bad(e.to_string()))?;
            let value = attr
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|e| bad(e.to_string()))?;
            attrs.push((attr.key.as_ref().to_owned(), value.into_owned()));
        }
        Ok(Self(attrs))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn required(&self, element: &str, name: &str) -> Result<&str, SourceError> {
        self.get(name)
            .ok_or_else(|| bad(format!("{element} without {name}")))
    }

    /// An unsigned count of seconds; absent is 0.
    fn number(&self, name: &str) -> Result<u32, SourceError> {
        self.get(name).map_or(Ok(0), |v| {
            v.trim()
                .parse()
                .map_err(|_| bad(format!("{name}={v:?} is not a number of seconds")))
        })
    }

    /// Seconds since the epoch.
    fn time(&self, name: &str) -> Result<Option<SystemTime>, SourceError> {
        self.get(name)
            .map(|v| {
                v.trim()
                    .parse::<u64>()
                    .map(|s| UNIX_EPOCH + Duration::from_secs(s))
                    .map_err(|_| bad(format!("{name}={v:?} is not a time")))
            })
            .transpose()
    }
}

/// Connects to gmond (or gmetad's XML port), reads its document to EOF and
/// parses it; `Unavailable` when that does not complete within `timeout`,
/// the connection fails, or the document exceeds [`MAX_XML_BYTES`].
///
/// Ganglia declares ISO-8859-1 and copies the names it was sent verbatim:
/// a document that is not UTF-8 is read as Latin-1.
pub async fn fetch_gmond(addr: SocketAddr, timeout: Duration) -> Result<GmondDoc, SourceError> {
    let unavailable = |what: String| SourceError::Unavailable(format!("gmond {addr}: {what}"));
    let read = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| unavailable(format!("connect: {e}")))?;
        let mut bytes = Vec::new();
        stream
            .take(MAX_XML_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| unavailable(format!("read: {e}")))?;
        if bytes.len() > MAX_XML_BYTES {
            return Err(unavailable(format!(
                "document larger than {MAX_XML_BYTES} bytes"
            )));
        }
        Ok(bytes)
    };
    let bytes = tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| unavailable(format!("no complete document within {timeout:?}")))??;
    // A large gmetad document takes milliseconds to parse: off the runtime.
    tokio::task::spawn_blocking(move || {
        let xml = match String::from_utf8(bytes) {
            Ok(xml) => xml,
            Err(e) => e.into_bytes().into_iter().map(char::from).collect(),
        };
        parse_gmond(&xml)
    })
    .await
    .map_err(|e| unavailable(format!("parser task: {e}")))?
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    // Captured from the lab (mininet/flowgate_lab/ganglia.py, Debian's
    // gmond/gmetad 3.7.2): the collector gmond's and gmetad's documents for
    // hosts h1 and h2 after gmetric sent fg_load, fg_note (string), fg_count
    // (uint32) and fg_temp (double, units C); then the collector's again
    // 95 s after h2's gmond stopped.
    const GMOND: &str = include_str!("../../tests/fixtures/gmond.xml");
    const GMETAD: &str = include_str!("../../tests/fixtures/gmetad.xml");
    const H2_DOWN: &str = include_str!("../../tests/fixtures/gmond-h2-down.xml");

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn captured_gmond_document() {
        let doc = parse_gmond(GMOND).unwrap();
        assert_eq!(
            (doc.source.as_str(), doc.version.as_str()),
            ("gmond", "3.7.2")
        );
        assert_eq!(doc.localtime, Some(t(1796540159)));
        assert_eq!(doc.clusters.len(), 1);
        let lab = &doc.clusters[0];
        assert_eq!(lab.name, "lab");
        let names: Vec<_> = lab
            .hosts
            .iter()
            .map(|h| (h.name.as_str(), h.ip.as_str()))
            .collect();
        assert_eq!(names, [("h1", "198.19.250.1"), ("h2", "198.19.250.2")]);
        let h1 = &lab.hosts[0];
        assert_eq!(
            (h1.reported, h1.tn, h1.tmax, h1.dmax),
            (t(1796540151), 7, 20, 0)
        );
        // Every METRIC element of the capture, and gmond's own metrics too.
        let metrics: usize = lab.hosts.iter().map(|h| h.metrics.len()).sum();
        assert_eq!(metrics, GMOND.matches("<METRIC ").count());
        let load = &h1.metrics["load_one"];
        assert_eq!((load.kind.as_str(), load.tmax), ("float", 70));
        let temp = &lab.hosts[1].metrics["fg_temp"];
        assert_eq!(
            (temp.val.as_str(), temp.kind.as_str(), temp.units.as_str()),
            ("-3.25", "double", "C")
        );

        let now = t(1796540159);
        let v = doc.value(None, "h1", "fg_load", now).unwrap();
        assert_eq!((v.value, v.at), (3.5, t(1796540152)));
        assert_eq!(
            doc.value(Some("lab"), "h1", "fg_count", now).unwrap().value,
            42.0
        );
        assert_eq!(doc.value(None, "h2", "fg_temp", now).unwrap().value, -3.25);
        assert_eq!(doc.value(None, "h1", "load_one", now).unwrap().value, 8.2);
        // By IP.
        assert_eq!(
            doc.value(None, "198.19.250.2", "fg_load", now)
                .unwrap()
                .value,
            7.25
        );
    }

    #[test]
    fn missing_hosts_metrics_and_strings() {
        let doc = parse_gmond(GMOND).unwrap();
        let now = t(1796540159);
        let missing = |r: Result<Sample, SourceError>, what: &str| match r {
            Err(SourceError::Missing(m)) => assert!(m.contains(what), "{m}"),
            other => panic!("expected Missing({what}), got {other:?}"),
        };
        missing(doc.value(None, "h3", "fg_load", now), "no host \"h3\"");
        missing(
            doc.value(Some("other"), "h1", "fg_load", now),
            "cluster \"other\"",
        );
        missing(
            doc.value(None, "h1", "fg_temp", now),
            "no metric \"fg_temp\"",
        );
        missing(
            doc.value(None, "h1", "fg_note", now),
            "a string (\"hello world\")",
        );
        missing(doc.value(None, "h1", "os_name", now), "a string");
    }

    #[test]
    fn a_kept_document_and_a_dead_host_go_stale() {
        let doc = parse_gmond(GMOND).unwrap();
        // h1's heartbeat (TN 7, TMAX 20) is late at 4 × 20 s.
        let made = 1796540159;
        assert!(doc.value(None, "h1", "fg_load", t(made + 72)).is_ok());
        assert_eq!(
            doc.value(None, "h1", "fg_load", t(made + 73)),
            Err(SourceError::Stale {
                age: Duration::from_secs(80)
            })
        );
        // A clock behind the document's ages nothing.
        assert!(doc.value(None, "h1", "fg_load", t(made - 100)).is_ok());

        // h2's gmond stopped 95 s before this capture: down (95 ≥ 4 × 20),
        // every value stale; h1's metrics are as old, but within 4 × TMAX.
        let down = parse_gmond(H2_DOWN).unwrap();
        let now = t(1796540247);
        assert_eq!(
            down.value(None, "h2", "fg_load", now),
            Err(SourceError::Stale {
                age: Duration::from_secs(95)
            })
        );
        let v = down.value(None, "h1", "fg_load", now).unwrap();
        assert_eq!((v.value, v.at), (3.5, t(1796540247 - 95)));
    }

    #[test]
    fn metric_staleness_by_tmax_dmax_and_hosts_without_tmax() {
        let xml = r#"<GANGLIA_XML VERSION="3.7.2" SOURCE="gmond">
            <CLUSTER NAME="c" LOCALTIME="1000">
            <HOST NAME="h" IP="10.0.0.3" REPORTED="1000" TN="0" TMAX="20">
              <METRIC NAME="slow" VAL="1" TYPE="float" TN="240" TMAX="60"/>
              <METRIC NAME="late" VAL="1" TYPE="float" TN="241" TMAX="60"/>
              <METRIC NAME="quick" VAL="1" TYPE="float" TN="60" TMAX="5"/>
              <METRIC NAME="quicker" VAL="1" TYPE="float" TN="61" TMAX="5"/>
            </HOST>
            <HOST NAME="old" IP="10.0.0.1" REPORTED="950" TN="1" TMAX="0">
              <METRIC NAME="m" VAL="1" TYPE="float" TN="30" TMAX="60" DMAX="20"/>
            </HOST>
            <HOST NAME="new" IP="10.0.0.2" REPORTED="990" TN="1" TMAX="0">
              <METRIC NAME="m" VAL=" 2 " TYPE="int32" TN="30" TMAX="60" DMAX="40"/>
              <METRIC NAME="bad" VAL="n/a" TYPE="float" TN="0" TMAX="60"/>
            </HOST></CLUSTER></GANGLIA_XML>"#;
        let doc = parse_gmond(xml).unwrap();
        let stale = |host, metric, now, age| {
            assert_eq!(
                doc.value(None, host, metric, t(now)),
                Err(SourceError::Stale {
                    age: Duration::from_secs(age)
                }),
                "{host}/{metric}"
            )
        };
        // 4 × TMAX, but never before 60 s.
        assert!(doc.value(None, "h", "slow", t(1000)).is_ok());
        stale("h", "late", 1000, 241);
        assert!(doc.value(None, "h", "quick", t(1000)).is_ok());
        stale("h", "quicker", 1000, 61);
        // DMAX, when set, is a tighter bound.
        stale("old", "m", 1000, 30);
        assert_eq!(doc.value(None, "new", "m", t(1000)).unwrap().value, 2.0);
        stale("new", "m", 1011, 41);
        let bad = doc.value(None, "new", "bad", t(1000));
        assert!(
            matches!(&bad, Err(SourceError::Missing(m)) if m.contains("not a number")),
            "{bad:?}"
        );
        // Without TMAX a host is down 60 s after its last report (990).
        stale("new", "bad", 1050, 60);
    }

    #[test]
    fn captured_gmetad_document() {
        let doc = parse_gmond(GMETAD).unwrap();
        assert_eq!(doc.source, "gmetad");
        // TN counts to the grid's LOCALTIME, when gmetad served it, not to
        // the cluster's (its last poll).
        assert_eq!(doc.localtime, Some(t(1796540159)));
        assert_eq!(doc.clusters[0].localtime, Some(t(1796540156)));
        let hosts: Vec<_> = doc.clusters[0]
            .hosts
            .iter()
            .map(|h| h.name.as_str())
            .collect();
        assert_eq!(hosts, ["h2", "h1"]);
        let now = t(1796540159);
        assert_eq!(
            doc.value(Some("lab"), "h1", "fg_load", now).unwrap().value,
            3.5
        );
        assert_eq!(
            doc.value(None, "198.19.250.2", "fg_temp", now)
                .unwrap()
                .value,
            -3.25
        );
    }

    #[test]
    fn malformed_documents_are_unavailable() {
        let mid_tag = &GMOND[..GMOND.len() / 2];
        let after_host = &GMOND[..GMOND.find("</HOST>").unwrap() + "</HOST>".len()];
        for xml in [
            mid_tag,
            after_host,
            "",
            "<html><body/></html>",
            r#"<GANGLIA_XML><CLUSTER NAME="c"><HOST NAME="h" TN="x"/></CLUSTER></GANGLIA_XML>"#,
            r#"<GANGLIA_XML><CLUSTER NAME="c"><HOST IP="1.2.3.4"/></CLUSTER></GANGLIA_XML>"#,
            r#"<GANGLIA_XML><CLUSTER NAME="c"><METRIC NAME="m" VAL="1"/></CLUSTER></GANGLIA_XML>"#,
            r#"<GANGLIA_XML><CLUSTER NAME="c"></HOST></GANGLIA_XML>"#,
        ] {
            assert!(
                matches!(parse_gmond(xml), Err(SourceError::Unavailable(_))),
                "{xml:.60}: {:?}",
                parse_gmond(xml).map(|d| d.clusters)
            );
        }
    }

    #[test]
    fn hosts_outside_a_cluster_and_escapes() {
        let xml = r#"<GANGLIA_XML VERSION="2.5.7" SOURCE="gmond">
            <HOST NAME="a&amp;b" IP="10.0.0.9" REPORTED="100" TN="0" TMAX="20">
              <METRIC NAME="x" VAL="1.5" TYPE="float" TN="0" TMAX="60"/></HOST>
            <HOST NAME="c" IP="10.0.0.10" REPORTED="100" TN="0" TMAX="20"/>
            </GANGLIA_XML>"#;
        let doc = parse_gmond(xml).unwrap();
        assert_eq!(doc.clusters.len(), 1);
        assert_eq!(doc.clusters[0].name, "");
        assert_eq!(doc.clusters[0].hosts.len(), 2);
        assert_eq!(doc.value(Some(""), "a&b", "x", t(100)).unwrap().value, 1.5);
    }

    /// Serves `body` once on a loopback port and closes.
    async fn serve(body: Vec<u8>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            // The peer may stop reading at the size limit.
            let _ = conn.write_all(&body).await;
        });
        addr
    }

    #[tokio::test]
    async fn fetches_a_document_to_eof() {
        let addr = serve(GMOND.as_bytes().to_vec()).await;
        let doc = fetch_gmond(addr, Duration::from_secs(5)).await.unwrap();
        assert_eq!(doc, parse_gmond(GMOND).unwrap());

        // Latin-1, as Ganglia declares: é is one byte.
        let mut latin1 = br#"<?xml version="1.0" encoding="ISO-8859-1"?><GANGLIA_XML SOURCE="gmond"><CLUSTER NAME="caf"#.to_vec();
        latin1.extend_from_slice(b"\xe9\"/></GANGLIA_XML>");
        let doc = fetch_gmond(serve(latin1).await, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(doc.clusters[0].name, "café");
    }

    #[tokio::test]
    async fn unreachable_silent_and_oversized_sources_are_unavailable() {
        let unavailable = |r: Result<GmondDoc, SourceError>, what: &str| match r {
            Err(SourceError::Unavailable(m)) => assert!(m.contains(what), "{m}"),
            other => panic!("expected Unavailable({what}), got {other:?}"),
        };
        let closed = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        unavailable(fetch_gmond(closed, Duration::from_secs(5)).await, "connect");

        // Accepts and never answers.
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let (_conn, _) = silent.accept().await.unwrap();
            std::future::pending::<()>().await;
        });
        unavailable(
            fetch_gmond(addr, Duration::from_millis(300)).await,
            "within 300ms",
        );
        hold.abort();

        let huge = serve(vec![b' '; MAX_XML_BYTES + 1]).await;
        unavailable(
            fetch_gmond(huge, Duration::from_secs(20)).await,
            "larger than",
        );
    }
}
