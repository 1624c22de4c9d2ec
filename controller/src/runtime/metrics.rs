//! Runtime counters, exported in Prometheus text format on `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::runtime::reconcile::ReconcileCounts;

#[derive(Debug, Default)]
pub struct Metrics {
    packet_ins: AtomicU64,
    flow_adds: AtomicU64,
    flow_modifies: AtomicU64,
    flow_deletes: AtomicU64,
    group_mods: AtomicU64,
    meter_mods: AtomicU64,
    switch_errors: AtomicU64,
    reconciles: AtomicU64,
    reconcile_micros: AtomicU64,
}

impl Metrics {
    /// Adds what the core counted since its last flush: one set of atomic
    /// additions per batch instead of several per packet-in.
    pub fn record_batch(&self, packet_ins: u64, sent: &ReconcileCounts) {
        self.packet_ins.fetch_add(packet_ins, Relaxed);
        self.flow_adds.fetch_add(sent.flow_adds, Relaxed);
        self.flow_modifies.fetch_add(sent.flow_modifies, Relaxed);
        self.flow_deletes.fetch_add(sent.flow_deletes, Relaxed);
        self.group_mods.fetch_add(sent.group_mods, Relaxed);
        self.meter_mods.fetch_add(sent.meter_mods, Relaxed);
    }

    pub fn switch_error(&self) {
        self.switch_errors.fetch_add(1, Relaxed);
    }

    pub fn record_reconcile(&self, took: Duration) {
        self.reconciles.fetch_add(1, Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.reconcile_micros.fetch_add(micros, Relaxed);
    }

    /// Mods sent so far, by kind.
    pub fn sent(&self) -> ReconcileCounts {
        ReconcileCounts {
            flow_adds: self.flow_adds.load(Relaxed),
            flow_modifies: self.flow_modifies.load(Relaxed),
            flow_deletes: self.flow_deletes.load(Relaxed),
            group_mods: self.group_mods.load(Relaxed),
            meter_mods: self.meter_mods.load(Relaxed),
        }
    }

    /// Prometheus text exposition; `switches` is read from the registry.
    pub fn render(&self, switches: usize) -> String {
        let sent = self.sent();
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        metric(
            "flowgate_switches",
            "gauge",
            "Connected switches.",
            &[("", switches as u64)],
        );
        metric(
            "flowgate_packet_ins_total",
            "counter",
            "PACKET_IN messages received.",
            &[("", self.packet_ins.load(Relaxed))],
        );
        metric(
            "flowgate_flow_mods_total",
            "counter",
            "Flow-mods sent by the reconciler, by command.",
            &[
                ("{command=\"add\"}", sent.flow_adds),
                ("{command=\"modify\"}", sent.flow_modifies),
                ("{command=\"delete\"}", sent.flow_deletes),
            ],
        );
        metric(
            "flowgate_group_mods_total",
            "counter",
            "Group-mods sent by the reconciler.",
            &[("", sent.group_mods)],
        );
        metric(
            "flowgate_meter_mods_total",
            "counter",
            "Meter-mods sent by the reconciler.",
            &[("", sent.meter_mods)],
        );
        metric(
            "flowgate_switch_errors_total",
            "counter",
            "OpenFlow ERROR messages received from switches.",
            &[("", self.switch_errors.load(Relaxed))],
        );
        metric(
            "flowgate_reconciles_total",
            "counter",
            "Full reconciliations (one per switch connection).",
            &[("", self.reconciles.load(Relaxed))],
        );
        metric(
            "flowgate_reconcile_seconds_total",
            "counter",
            "Controller time spent in full reconciliations.",
            &[],
        );
        let secs = self.reconcile_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "flowgate_reconcile_seconds_total {secs}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_reports_plan_counts() {
        let m = Metrics::default();
        m.record_batch(
            1,
            &ReconcileCounts {
                flow_adds: 3,
                flow_deletes: 1,
                ..Default::default()
            },
        );
        let text = m.render(2);
        assert!(text.contains("flowgate_switches 2"));
        assert!(text.contains("flowgate_flow_mods_total{command=\"add\"} 3"));
        assert!(text.contains("flowgate_flow_mods_total{command=\"delete\"} 1"));
        assert!(text.contains("flowgate_packet_ins_total 1"));
    }
}
