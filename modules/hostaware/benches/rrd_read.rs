//! RRD reads per second: 1,000 hosts × 10 metrics, one gmetad-like file
//! each (step 15 s, gmetad's classic archives: an hour at 15 s, a day at
//! 6 min, ...), made with `rrdtool` in a temporary directory and read once
//! each per iteration (AVERAGE over the last minute). The files stay in the
//! page cache, as gmetad's recently written files do.
//!
//! A second run evaluates a rule per file: the read, then the rule engine
//! on its value (one rule per metric over the cluster), as a poll does.
//!
//! `cargo bench -p flowgate-hostaware --bench rrd_read`; criterion's `thrpt`
//! lines are the reads, and the rule evaluations, per second.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flowgate_hostaware::engine::Engine;
use flowgate_hostaware::model::Rule;
use flowgate_hostaware::sources::rrd::{LibRrd, RrdRead};
use flowgate_hostaware::sources::{Consolidation, Sample};

const HOSTS: usize = 1_000;
const METRICS: [&str; 10] = [
    "load_one",
    "load_five",
    "cpu_user",
    "cpu_system",
    "cpu_idle",
    "mem_free",
    "bytes_in",
    "bytes_out",
    "pkts_in",
    "pkts_out",
];
const STEP: u64 = 15;
/// Ten minutes of values per file.
const UPDATES: u64 = 40;
const T0: u64 = 1_700_000_100;

fn host(i: usize) -> String {
    format!("h{i:04}")
}

/// Every file through one `rrdtool -` (its pipe mode: one command a line).
fn make_files(root: &Path) {
    let mut rrdtool = Command::new("rrdtool")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("rrdtool runs (apt-get install rrdtool)");
    let mut input = std::io::BufWriter::new(rrdtool.stdin.take().unwrap());
    for h in 0..HOSTS {
        let dir = root.join("bench").join(host(h));
        std::fs::create_dir_all(&dir).unwrap();
        for (m, metric) in METRICS.iter().enumerate() {
            let file = dir.join(format!("{metric}.rrd"));
            let file = file.to_str().unwrap();
            writeln!(
                input,
                "create {file} --start {T0} --step {STEP} DS:sum:GAUGE:120:U:U \
                 RRA:AVERAGE:0.5:1:244 RRA:AVERAGE:0.5:24:244 RRA:AVERAGE:0.5:168:244 \
                 RRA:AVERAGE:0.5:672:244 RRA:AVERAGE:0.5:5760:374"
            )
            .unwrap();
            write!(input, "update {file}").unwrap();
            for i in 1..=UPDATES {
                write!(input, " {}:{}", T0 + i * STEP, (h + m) as u64 + i).unwrap();
            }
            writeln!(input).unwrap();
        }
    }
    drop(input);
    assert!(rrdtool.wait().unwrap().success());
}

fn rrd_read(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    make_files(dir.path());
    let rrd = LibRrd::new(dir.path());
    let now = UNIX_EPOCH + Duration::from_secs(T0 + UPDATES * STEP + 5);
    let window = Duration::from_secs(60);
    let hosts: Vec<String> = (0..HOSTS).map(host).collect();
    // Every file is there and reads its newest minute.
    let v = rrd
        .read(
            "bench",
            &hosts[7],
            "cpu_user",
            Consolidation::Average,
            window,
            now,
        )
        .unwrap();
    assert_eq!(v.value, (7 + 2) as f64 + UPDATES as f64 - 1.5);

    let mut group = c.benchmark_group("rrd_read");
    group.throughput(Throughput::Elements((HOSTS * METRICS.len()) as u64));
    group.sample_size(10);
    group.bench_function("1000_hosts_x_10_metrics", |b| {
        b.iter(|| {
            for host in &hosts {
                for metric in METRICS {
                    let v = rrd.read("bench", host, metric, Consolidation::Average, window, now);
                    assert!(v.is_ok(), "{host}/{metric}: {v:?}");
                }
            }
        })
    });
    // Thresholds the values cross for some hosts, so rules go active too.
    let rules: Vec<Rule> = METRICS
        .iter()
        .enumerate()
        .map(|(i, metric)| {
            serde_json::from_value(serde_json::json!({
                "id": i + 1, "hosts": {"cluster": "bench"}, "metric": metric,
                "consolidation": "average", "window_s": 60, "comparator": ">",
                "threshold": 500, "clear": 400, "interval_s": STEP,
                "action": {"type": "notify"},
            }))
            .unwrap()
        })
        .collect();
    let mut engine = Engine::default();
    group.bench_function("evaluate_1000_hosts_x_10_rules", |b| {
        b.iter(|| {
            let mut transitions = 0;
            for host in &hosts {
                for (rule, metric) in rules.iter().zip(METRICS) {
                    let reading = rrd
                        .read("bench", host, metric, Consolidation::Average, window, now)
                        .map(|v| Sample {
                            value: v.value,
                            at: v.at,
                        });
                    transitions += engine.observe(rule, host, reading, now).len();
                }
            }
            transitions
        })
    });
    group.finish();
}

criterion_group!(benches, rrd_read);
criterion_main!(benches);
