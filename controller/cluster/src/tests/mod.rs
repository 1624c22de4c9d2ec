//! Tests across modules: a fake switch's role rules, a fake etcd on a
//! simulated clock, and scenarios (fencing, failover, rebalancing) built
//! on them; property tests of the assignment.

mod assign_props;
mod failover;
mod fake_etcd;
mod fake_switch;
mod fencing;
mod role_machine;
mod role_props;

use std::time::{Duration, Instant};

use crate::NodeId;

pub(crate) fn node(id: &str) -> NodeId {
    NodeId::new(id).expect("a valid test id")
}

/// A simulated clock: `at(s)` is `s` seconds after a fixed start.
#[derive(Clone, Copy)]
pub(crate) struct Clock(Instant);

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock(Instant::now())
    }

    pub(crate) fn at(self, seconds: f64) -> Instant {
        self.0 + Duration::from_secs_f64(seconds)
    }
}
