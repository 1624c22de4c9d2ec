//! Figures of a run: per-loop rates per switch, and the summary over loops.

/// Responses counted in one loop, per switch.
#[derive(Debug, Clone, PartialEq)]
pub struct LoopResult {
    /// Responses per second of each switch.
    pub per_switch: Vec<f64>,
    pub packet_ins: u64,
    pub responses: u64,
    /// Flows installed (FLOW_MOD adds) per second, all switches.
    pub flows: f64,
}

impl LoopResult {
    /// From counter deltas (`responses` per switch, `flows` in all) over
    /// `secs` seconds.
    pub fn new(responses: &[u64], flows: u64, packet_ins: u64, secs: f64) -> Self {
        LoopResult {
            per_switch: responses.iter().map(|r| *r as f64 / secs).collect(),
            packet_ins,
            responses: responses.iter().sum(),
            flows: flows as f64 / secs,
        }
    }

    pub fn total(&self) -> f64 {
        self.per_switch.iter().sum()
    }

    /// (min, max, avg) over switches.
    pub fn spread(&self) -> (f64, f64, f64) {
        spread(&self.per_switch)
    }

    /// How evenly the switches were served: the slowest one's rate as a
    /// share of the mean (1.0: all alike; 0 if nothing was answered).
    pub fn fairness(&self) -> f64 {
        let (min, _, avg) = self.spread();
        if avg > 0.0 {
            min / avg
        } else {
            0.0
        }
    }
}

/// The summary of the measured (non warm-up) loops.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub min: f64,
    pub max: f64,
    pub avg: f64,
    pub stdev: f64,
    /// Responses per packet-in over the measured loops.
    pub per_packet_in: f64,
    /// Flows installed per second, the mean over loops.
    pub flows: f64,
    /// [`LoopResult::fairness`], the mean over loops.
    pub fairness: f64,
}

impl Summary {
    pub fn of(loops: &[LoopResult]) -> Summary {
        let totals: Vec<f64> = loops.iter().map(LoopResult::total).collect();
        let (min, max, avg) = spread(&totals);
        let var = if totals.is_empty() {
            0.0
        } else {
            totals.iter().map(|t| (t - avg).powi(2)).sum::<f64>() / totals.len() as f64
        };
        let packet_ins: u64 = loops.iter().map(|l| l.packet_ins).sum();
        let responses: u64 = loops.iter().map(|l| l.responses).sum();
        let per_packet_in = if packet_ins == 0 {
            0.0
        } else {
            responses as f64 / packet_ins as f64
        };
        let mean = |f: fn(&LoopResult) -> f64| {
            if loops.is_empty() {
                0.0
            } else {
                loops.iter().map(f).sum::<f64>() / loops.len() as f64
            }
        };
        Summary {
            min,
            max,
            avg,
            stdev: var.sqrt(),
            per_packet_in,
            flows: mean(|l| l.flows),
            fairness: mean(LoopResult::fairness),
        }
    }
}

fn spread(values: &[f64]) -> (f64, f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let avg = values.iter().sum::<f64>() / values.len() as f64;
    (min, max, avg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_rates_per_switch() {
        let l = LoopResult::new(&[100, 300], 150, 200, 0.5);
        assert_eq!(l.per_switch, vec![200.0, 600.0]);
        assert_eq!(l.total(), 800.0);
        assert_eq!(l.flows, 300.0);
        assert_eq!(l.spread(), (200.0, 600.0, 400.0));
        assert_eq!(l.fairness(), 0.5);
        assert_eq!(LoopResult::new(&[0, 0], 0, 0, 1.0).fairness(), 0.0);
    }

    #[test]
    fn summary_over_loops() {
        let loops = [
            LoopResult::new(&[10, 10], 10, 10, 1.0),
            LoopResult::new(&[20, 40], 30, 20, 1.0),
        ];
        let s = Summary::of(&loops);
        assert_eq!((s.min, s.max, s.avg, s.stdev), (20.0, 60.0, 40.0, 20.0));
        assert_eq!(s.per_packet_in, 80.0 / 30.0);
        assert_eq!(s.flows, 20.0);
        assert_eq!(s.fairness, (1.0 + 20.0 / 30.0) / 2.0);
        let empty = Summary::of(&[]);
        assert_eq!(
            (empty.avg, empty.per_packet_in, empty.fairness),
            (0.0, 0.0, 0.0)
        );
    }
}
