//! Which ports of one switch wait for an LLDP probe, and how many probes it
//! may still be sent this tick. A port storm (thousands of ports coming up
//! at once) queues one entry per port and drains at a bounded rate instead
//! of bursting thousands of packet-outs at the switch.

use std::collections::{HashSet, VecDeque};

/// Most probes one switch is sent per tick (second). A full round over the
/// largest switch allowed (4096 ports) fits in the default 5 s interval.
pub const PROBES_PER_TICK: usize = 1024;

/// Ports waiting for a probe, in order, each at most once.
#[derive(Debug)]
pub struct ProbeQueue {
    queue: VecDeque<u32>,
    queued: HashSet<u32>,
    /// Probes left this tick.
    budget: usize,
}

impl Default for ProbeQueue {
    fn default() -> Self {
        ProbeQueue {
            queue: VecDeque::new(),
            queued: HashSet::new(),
            budget: PROBES_PER_TICK,
        }
    }
}

impl ProbeQueue {
    /// Queues `port` unless it already waits.
    pub fn push(&mut self, port: u32) {
        if self.queued.insert(port) {
            self.queue.push_back(port);
        }
    }

    /// The next port to probe, if the budget allows one more.
    pub fn pop(&mut self) -> Option<u32> {
        if self.budget == 0 {
            return None;
        }
        let port = self.queue.pop_front()?;
        self.queued.remove(&port);
        self.budget -= 1;
        Some(port)
    }

    /// A new tick: a full budget again.
    pub fn refill(&mut self) {
        self.budget = PROBES_PER_TICK;
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_waits_once_and_the_budget_bounds_each_tick() {
        let mut q = ProbeQueue::default();
        for port in 0..3000 {
            q.push(port);
            q.push(port);
        }
        assert_eq!(q.len(), 3000);
        let first: Vec<u32> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(first, (0..PROBES_PER_TICK as u32).collect::<Vec<_>>());
        assert!(q.pop().is_none(), "budget spent");
        q.refill();
        assert_eq!(std::iter::from_fn(|| q.pop()).count(), PROBES_PER_TICK);
        q.refill();
        assert_eq!(
            std::iter::from_fn(|| q.pop()).count(),
            3000 - 2 * PROBES_PER_TICK
        );
        assert!(q.is_empty());
    }
}
