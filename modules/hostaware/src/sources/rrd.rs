//! Ganglia's RRD files, as gmetad writes them:
//! `<root>/<cluster>/<host>/<metric>.rrd` (default root `/var/lib/ganglia/rrds`),
//! one data source (`sum`) per file, AVERAGE archives only, one row per
//! gmetad poll (the data source's step, 15 s by default).
//!
//! Host directories are named as gmond reports the host (its host name, or
//! its IP when gmond could not resolve one), lower-cased unless gmetad runs
//! with `case_sensitive_hostnames 1`; [`LibRrd::hosts`] lists them.
//! `__SummaryInfo__` directories hold gmetad's cluster sums, not hosts.
//!
//! Reading is blocking file I/O through librrd: call [`RrdRead::read`] from
//! `tokio::task::spawn_blocking`. librrd documents thread safety only for its
//! `_r` functions and only when linked as `librrd_th`, so every librrd call
//! of this process is serialized by one mutex; a read takes tens of
//! microseconds (see `benches/rrd_read.rs`).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::rrd::ops::{fetch::fetch, info::info};
use ::rrd::ConsolidationFn;

use super::{Consolidation, SourceError};

/// gmetad's default `rrd_rootdir`.
pub const DEFAULT_ROOT: &str = "/var/lib/ganglia/rrds";

/// Default staleness bound: four polls of gmetad's default 15 s step.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(60);

/// gmetad's directories of per-cluster and per-grid sums.
const SUMMARY_DIR: &str = "__SummaryInfo__";

/// Every librrd call of the process holds this lock (see the module docs).
static LIBRRD: Mutex<()> = Mutex::new(());

/// A metric's value consolidated over a window of an RRD file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RrdValue {
    /// Average, maximum or minimum of the known rows in the window.
    pub value: f64,
    /// End of the newest known row in the window.
    pub at: SystemTime,
    /// When the file was last written.
    pub last_update: SystemTime,
}

/// Reads consolidated metric values from RRD files; the engine's seam for
/// tests. Blocking: call it from `tokio::task::spawn_blocking`.
pub trait RrdRead: Send + Sync + 'static {
    /// Metric `metric` of `host` in `cluster`, consolidated with `cf` over the
    /// `window` that ends at the file's newest complete row.
    ///
    /// `Stale` when the file was last written too long before `now`,
    /// `Missing` when there is no such file (or a name is not a plain path
    /// component) or no known value in the window, `Unavailable` when the
    /// file cannot be read.
    fn read(
        &self,
        cluster: &str,
        host: &str,
        metric: &str,
        cf: Consolidation,
        window: Duration,
        now: SystemTime,
    ) -> Result<RrdValue, SourceError>;
}

/// [`RrdRead`] on librrd (the `rrd` crate).
///
/// The window is rounded up to whole steps and ends at the newest complete
/// row: the row whose interval ended at or before the file's last update
/// (the interval in progress is never used). Rows are fetched from the
/// AVERAGE archive at the file's step, the archives gmetad writes, and
/// consolidated here: the mean of the known rows, or the largest or smallest
/// of them. Unknown rows (NaN) are skipped. At the step's resolution each row
/// is one primary data point, so MAX and MIN are exact; a window longer than
/// the finest archive covers is read from a coarser one, whose rows are
/// already averages.
///
/// A file is stale when its last update is more than
/// `max(stale_after, 3 × its step)` before `now`: gmetad writes every file
/// of a live host on every poll, so missing three polls means gmetad is down
/// or the host is dead (gmetad stops writing a host's files when gmond says
/// it is down).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibRrd {
    /// gmetad's `rrd_rootdir`.
    pub root: PathBuf,
    /// Files whose last update is older than this (or than 3 steps, if
    /// longer) are stale.
    pub stale_after: Duration,
}

impl Default for LibRrd {
    fn default() -> Self {
        Self::new(DEFAULT_ROOT)
    }
}

impl LibRrd {
    /// Files under `root`, stale after [`DEFAULT_STALE_AFTER`].
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            stale_after: DEFAULT_STALE_AFTER,
        }
    }

    /// The file of a metric, `<root>/<cluster>/<host>/<metric>.rrd`; names
    /// that are not plain path components (empty, `.`, `..`, containing `/`
    /// or NUL) are refused as `Missing`.
    pub fn path(&self, cluster: &str, host: &str, metric: &str) -> Result<PathBuf, SourceError> {
        Ok(self
            .root
            .join(component("cluster", cluster)?)
            .join(component("host", host)?)
            .join(format!("{}.rrd", component("metric", metric)?)))
    }

    /// Host directories of a cluster, sorted (gmetad's summary directory
    /// left out).
    pub fn hosts(&self, cluster: &str) -> Result<Vec<String>, SourceError> {
        let dir = self.root.join(component("cluster", cluster)?);
        list(&dir, |name, is_dir| {
            (is_dir && name != SUMMARY_DIR).then(|| name.to_owned())
        })
    }

    /// Metrics with a file for a host, sorted.
    pub fn metrics(&self, cluster: &str, host: &str) -> Result<Vec<String>, SourceError> {
        let dir = self
            .root
            .join(component("cluster", cluster)?)
            .join(component("host", host)?);
        list(&dir, |name, is_dir| {
            (!is_dir).then(|| name.strip_suffix(".rrd").map(str::to_owned))?
        })
    }
}

impl RrdRead for LibRrd {
    fn read(
        &self,
        cluster: &str,
        host: &str,
        metric: &str,
        cf: Consolidation,
        window: Duration,
        now: SystemTime,
    ) -> Result<RrdValue, SourceError> {
        let path = self.path(cluster, host, metric)?;
        if !path.is_file() {
            return Err(SourceError::Missing(format!(
                "no RRD file {}",
                path.display()
            )));
        }
        let unavailable = |e: ::rrd::error::RrdError| {
            SourceError::Unavailable(format!("{}: {e}", path.display()))
        };
        let _librrd = LIBRRD.lock().unwrap_or_else(PoisonError::into_inner);

        let header = info(&path).map_err(unavailable)?;
        let count = |key: &str| {
            header
                .get(key)
                .and_then(|v| v.clone().into_count())
                .filter(|&n| key != "step" || n > 0)
                .ok_or_else(|| {
                    SourceError::Unavailable(format!("{}: no {key} in its header", path.display()))
                })
        };
        let step = count("step")?;
        let last = count("last_update")?;
        let last_update = UNIX_EPOCH + Duration::from_secs(last);
        let age = now.duration_since(last_update).unwrap_or_default();
        if age > self.stale_after.max(Duration::from_secs(3 * step)) {
            return Err(SourceError::Stale { age });
        }

        let end = last - last % step;
        let start = end.saturating_sub(window.as_secs().div_ceil(step).max(1) * step);
        let (start, end) = (
            UNIX_EPOCH + Duration::from_secs(start),
            UNIX_EPOCH + Duration::from_secs(end),
        );
        let data = fetch(
            &path,
            ConsolidationFn::Avg,
            start,
            end,
            Duration::from_secs(step),
        )
        .map_err(unavailable)?;
        // Row timestamps are the ends of their intervals; the first column
        // is gmetad's only data source.
        let known = data.rows().into_iter().filter_map(|row| {
            let at = row.timestamp();
            let value = *row.first()?;
            (at > start && at <= end && !value.is_nan()).then_some((at, value))
        });
        let (mut newest, mut n) = (None, 0u32);
        let mut acc = match cf {
            Consolidation::Average => 0.0,
            Consolidation::Max => f64::NEG_INFINITY,
            Consolidation::Min => f64::INFINITY,
        };
        for (at, value) in known {
            newest = newest.max(Some(at));
            n += 1;
            acc = match cf {
                Consolidation::Average => acc + value,
                Consolidation::Max => acc.max(value),
                Consolidation::Min => acc.min(value),
            };
        }
        let at = newest.ok_or_else(|| {
            SourceError::Missing(format!(
                "no known value in {} over the {}s before {}",
                path.display(),
                end.duration_since(start).unwrap_or_default().as_secs(),
                end.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs(),
            ))
        })?;
        let value = match cf {
            Consolidation::Average => acc / f64::from(n),
            Consolidation::Max | Consolidation::Min => acc,
        };
        Ok(RrdValue {
            value,
            at,
            last_update,
        })
    }
}

/// `name` if it is one plain path component, else `Missing` naming `kind`.
fn component<'a>(kind: &str, name: &'a str) -> Result<&'a str, SourceError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(SourceError::Missing(format!(
            "invalid {kind} name {name:?}: not a plain file name"
        )));
    }
    Ok(name)
}

/// Sorted names of the entries of `dir` that `keep` maps (name, is a
/// directory) to a result; a missing directory is `Missing`.
fn list(
    dir: &Path,
    keep: impl Fn(&str, bool) -> Option<String>,
) -> Result<Vec<String>, SourceError> {
    let entries = std::fs::read_dir(dir).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => SourceError::Missing(format!("no directory {}", dir.display())),
        _ => SourceError::Unavailable(format!("{}: {e}", dir.display())),
    })?;
    let mut names = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| SourceError::Unavailable(format!("{}: {e}", dir.display())))?;
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if let Some(name) = entry.file_name().to_str().and_then(|n| keep(n, is_dir)) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    /// A step-aligned time far from now, so the files' rows are fixed.
    const T0: u64 = 1_700_000_000;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn rrdtool(args: &[&str]) {
        let out = Command::new("rrdtool")
            .args(args)
            .output()
            .expect("rrdtool runs (apt-get install rrdtool; tools/test-all.sh installs it)");
        assert!(
            out.status.success(),
            "rrdtool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `<root>/c/h/<metric>.rrd` made like gmetad's (one GAUGE data source
    /// `sum`, AVERAGE archives only) with step `step`, updated with
    /// `updates` (offset from T0 in seconds, value or "U").
    fn make(root: &Path, metric: &str, step: u64, updates: &[(u64, &str)]) {
        let dir = root.join("c").join("h");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{metric}.rrd"));
        let file = file.to_str().unwrap();
        rrdtool(&[
            "create",
            file,
            "--start",
            &T0.to_string(),
            "--step",
            &step.to_string(),
            &format!("DS:sum:GAUGE:{}:U:U", 3 * step),
            "RRA:AVERAGE:0.5:1:100",
            "RRA:AVERAGE:0.5:10:100",
        ]);
        let mut args = vec!["update".to_owned(), file.to_owned()];
        args.extend(updates.iter().map(|(t, v)| format!("{}:{v}", T0 + t)));
        rrdtool(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }

    fn read(
        rrd: &LibRrd,
        metric: &str,
        cf: Consolidation,
        window: u64,
        now: u64,
    ) -> Result<RrdValue, SourceError> {
        rrd.read(
            "c",
            "h",
            metric,
            cf,
            Duration::from_secs(window),
            at(T0 + now),
        )
    }

    #[test]
    fn known_values_give_known_consolidations() {
        let dir = tempfile::tempdir().unwrap();
        // 1..6 at the ends of six 10 s steps, then a value inside the
        // seventh step, which is not complete.
        let updates: Vec<(u64, String)> = (1..=6).map(|i| (10 * i, i.to_string())).collect();
        let mut updates: Vec<(u64, &str)> = updates.iter().map(|(t, v)| (*t, v.as_str())).collect();
        updates.push((65, "100"));
        make(dir.path(), "load", 10, &updates);
        let rrd = LibRrd::new(dir.path());

        let last = read(&rrd, "load", Consolidation::Average, 30, 70).unwrap();
        assert_eq!(last.value, 5.0); // rows ending 40, 50, 60
        assert_eq!(last.at, at(T0 + 60));
        assert_eq!(last.last_update, at(T0 + 65));
        assert_eq!(
            read(&rrd, "load", Consolidation::Max, 30, 70)
                .unwrap()
                .value,
            6.0
        );
        assert_eq!(
            read(&rrd, "load", Consolidation::Min, 30, 70)
                .unwrap()
                .value,
            4.0
        );
        assert_eq!(
            read(&rrd, "load", Consolidation::Average, 60, 70)
                .unwrap()
                .value,
            3.5
        );
        assert_eq!(
            read(&rrd, "load", Consolidation::Min, 60, 70)
                .unwrap()
                .value,
            1.0
        );
        // A window shorter than a step is the newest complete row; a
        // partial step rounds up.
        assert_eq!(
            read(&rrd, "load", Consolidation::Average, 1, 70)
                .unwrap()
                .value,
            6.0
        );
        assert_eq!(
            read(&rrd, "load", Consolidation::Average, 15, 70)
                .unwrap()
                .value,
            5.5
        );
    }

    #[test]
    fn unknown_rows_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let updates = [(10, "1"), (20, "U"), (30, "3"), (40, "8"), (50, "U")];
        make(dir.path(), "gaps", 10, &updates);
        make(dir.path(), "blank", 10, &[(10, "U"), (20, "U")]);
        let rrd = LibRrd::new(dir.path());

        // Rows ending 20..50: U, 3, 8, U.
        let v = read(&rrd, "gaps", Consolidation::Average, 40, 50).unwrap();
        assert_eq!((v.value, v.at), (5.5, at(T0 + 40)));
        assert_eq!(
            read(&rrd, "gaps", Consolidation::Min, 40, 50)
                .unwrap()
                .value,
            3.0
        );
        assert_eq!(
            read(&rrd, "gaps", Consolidation::Max, 50, 50)
                .unwrap()
                .value,
            8.0
        );
        assert_eq!(
            read(&rrd, "gaps", Consolidation::Min, 50, 50)
                .unwrap()
                .value,
            1.0
        );

        let err = read(&rrd, "blank", Consolidation::Average, 60, 20).unwrap_err();
        assert!(
            matches!(&err, SourceError::Missing(m) if m.contains("no known value")),
            "{err}"
        );
    }

    #[test]
    fn stale_when_the_last_update_is_too_old() {
        let dir = tempfile::tempdir().unwrap();
        make(dir.path(), "fast", 10, &[(10, "1"), (20, "2")]);
        make(dir.path(), "slow", 30, &[(30, "1"), (60, "2")]);
        let mut rrd = LibRrd::new(dir.path());

        assert_eq!(
            read(&rrd, "fast", Consolidation::Max, 60, 80)
                .unwrap()
                .value,
            2.0
        );
        assert_eq!(
            read(&rrd, "fast", Consolidation::Max, 60, 81),
            Err(SourceError::Stale {
                age: Duration::from_secs(61)
            })
        );
        // Three steps of 30 s exceed the 60 s bound.
        assert!(read(&rrd, "slow", Consolidation::Max, 60, 150).is_ok());
        assert_eq!(
            read(&rrd, "slow", Consolidation::Max, 60, 151),
            Err(SourceError::Stale {
                age: Duration::from_secs(91)
            })
        );
        rrd.stale_after = Duration::from_secs(300);
        assert!(read(&rrd, "fast", Consolidation::Max, 60, 320).is_ok());
        // A clock behind the file is not stale.
        assert!(read(&rrd, "fast", Consolidation::Max, 60, 0).is_ok());
    }

    #[test]
    fn names_and_listing() {
        let dir = tempfile::tempdir().unwrap();
        make(dir.path(), "load_one", 10, &[(10, "1")]);
        make(dir.path(), "cpu_user", 10, &[(10, "1")]);
        std::fs::create_dir_all(dir.path().join("c").join("10.0.0.2")).unwrap();
        std::fs::create_dir_all(dir.path().join("c").join(SUMMARY_DIR)).unwrap();
        std::fs::write(dir.path().join("c").join("h").join("notes.txt"), "").unwrap();
        let rrd = LibRrd::new(dir.path());

        assert_eq!(rrd.hosts("c").unwrap(), ["10.0.0.2", "h"]);
        assert_eq!(rrd.metrics("c", "h").unwrap(), ["cpu_user", "load_one"]);
        assert!(matches!(rrd.hosts("nope"), Err(SourceError::Missing(_))));
        let missing = read(&rrd, "mem_free", Consolidation::Average, 60, 10).unwrap_err();
        assert!(matches!(&missing, SourceError::Missing(m) if m.contains("mem_free.rrd")));

        // A file outside the root, reachable only by traversal.
        std::fs::write(dir.path().join("c").join("escape.rrd"), "").unwrap();
        for (cluster, host, metric) in [
            ("c", "..", "escape"),
            ("c", "h/..", "escape"),
            ("..", "c", "h"),
            ("c", "h", "../load_one"),
            ("c", "", "load_one"),
            ("c", ".", "load_one"),
            ("c", "h", "load\0one"),
        ] {
            let err = rrd
                .read(
                    cluster,
                    host,
                    metric,
                    Consolidation::Average,
                    Duration::from_secs(60),
                    at(T0),
                )
                .unwrap_err();
            assert!(
                matches!(&err, SourceError::Missing(m) if m.contains("not a plain file name")),
                "{cluster:?}/{host:?}/{metric:?}: {err}"
            );
        }
        assert!(rrd.hosts("..").is_err());
        assert!(rrd.metrics("c", "../c").is_err());
    }

    #[test]
    fn an_unreadable_file_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("c").join("h")).unwrap();
        std::fs::write(
            dir.path().join("c").join("h").join("junk.rrd"),
            "not an rrd",
        )
        .unwrap();
        let err = read(
            &LibRrd::new(dir.path()),
            "junk",
            Consolidation::Average,
            60,
            0,
        )
        .unwrap_err();
        assert!(
            matches!(&err, SourceError::Unavailable(m) if m.contains("junk.rrd")),
            "{err}"
        );
    }
}
