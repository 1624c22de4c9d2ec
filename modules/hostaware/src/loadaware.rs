//! Load-aware balancing: a load-balancer pool with `load_aware` gets its
//! members' weights from a host metric, so busy members get fewer new
//! connections. The runner reads each member's metric (the member is the
//! host with its address: a monitored host's Ganglia name and cluster when
//! there is one, else the address itself) every `interval_s` and writes
//! the weights that moved through `LoadBalancerService::set_load_weights`
//! with origin `hostaware/load-aware/<pool>`.
//!
//! [`step`] is the whole computation, pure:
//!
//! ```text
//! target   = max_weight - (max_weight - min_weight) * clamp((value - idle) / (busy - idle), 0, 1)
//! smoothed = smoothed + smoothing * (target - smoothed)      (EWMA; starts at the current weight)
//! weight   = round(smoothed) within [min_weight, max_weight],
//!            set only if |weight - current| >= min_step (or current is outside the bounds)
//! ```
//!
//! Smoothing happens in weight space and starts from the member's current
//! weight, so a restarted controller (which lost the smoothed values)
//! continues from the weights the load balancer stored instead of jumping.
//! A member whose metric cannot be read (stale, missing) keeps its weight.

use std::net::IpAddr;

use flowgate_controller::cookie::Owner;
use flowgate_controller::service::Origin;
use flowgate_loadbalancer::model::LoadAware;

use crate::model::{Config, Metric, MonitoredHost};

/// The origin of the weights load-aware balancing sets in `pool`.
pub fn origin(pool: &str) -> Origin {
    Origin::module(Owner::HostAware, format!("load-aware/{pool}"))
}

/// The weight `value` asks for, before smoothing.
pub fn target(cfg: &LoadAware, value: f64) -> f64 {
    let share = ((value - cfg.idle) / (cfg.busy - cfg.idle)).clamp(0.0, 1.0);
    let (min, max) = (f64::from(cfg.min_weight), f64::from(cfg.max_weight));
    max - (max - min) * share
}

/// One reading of a member: the new smoothed weight, and the weight to
/// set if it moved by at least `min_step` from `current` (or `current` is
/// outside the bounds: an operator's weight from before `load_aware`).
pub fn step(
    cfg: &LoadAware,
    value: f64,
    smoothed: Option<f64>,
    current: u16,
) -> (f64, Option<u16>) {
    let from = smoothed.unwrap_or(f64::from(current));
    let next = from + cfg.smoothing * (target(cfg, value) - from);
    let weight = next
        .round()
        .clamp(f64::from(cfg.min_weight), f64::from(cfg.max_weight)) as u16;
    let outside = !(cfg.min_weight..=cfg.max_weight).contains(&current);
    let moved = weight != current && (outside || weight.abs_diff(current) >= cfg.min_step);
    (next, moved.then_some(weight))
}

/// The metric a pool names, as host-aware reads it.
pub fn metric(cfg: &LoadAware) -> Result<Metric, String> {
    cfg.metric_name().parse()
}

/// The host a member at `address` is: the monitored host with that ip,
/// else one named by the address (Ganglia files unresolved hosts under
/// their address; the topology finds it by ip).
pub fn host_of(config: &Config, address: IpAddr) -> MonitoredHost {
    config
        .hosts
        .values()
        .find(|h| h.ip == Some(address))
        .cloned()
        .unwrap_or_else(|| MonitoredHost {
            id: address.to_string(),
            ganglia_name: None,
            cluster: None,
            ip: Some(address),
            mac: None,
            tenant: None,
            description: None,
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cfg(v: serde_json::Value) -> LoadAware {
        let mut base = json!({"metric": "load_one", "idle": 0.0, "busy": 4.0,
            "min_weight": 10, "max_weight": 100, "smoothing": 1.0, "min_step": 1});
        for (k, x) in v.as_object().unwrap() {
            base[k] = x.clone();
        }
        let c: LoadAware = serde_json::from_value(base).unwrap();
        c.check().unwrap();
        c
    }

    #[test]
    fn the_target_falls_linearly_from_idle_to_busy_and_is_clamped() {
        let c = cfg(json!({}));
        assert_eq!(target(&c, 0.0), 100.0);
        assert_eq!(target(&c, 2.0), 55.0);
        assert_eq!(target(&c, 4.0), 10.0);
        assert_eq!(target(&c, 40.0), 10.0, "past busy: the floor");
        assert_eq!(target(&c, -1.0), 100.0);
        // More is better (cpu_idle): idle above busy.
        let idle = cfg(json!({"metric": "cpu_idle", "idle": 100.0, "busy": 0.0}));
        assert_eq!(target(&idle, 100.0), 100.0);
        assert_eq!(target(&idle, 25.0), 32.5);
    }

    #[test]
    fn smoothing_starts_at_the_current_weight_and_converges() {
        let c = cfg(json!({"smoothing": 0.5}));
        // Fully busy, from 100: 55, 32.5, 21.25, ... towards 10.
        let (s, w) = step(&c, 4.0, None, 100);
        assert_eq!((s, w), (55.0, Some(55)));
        let (s, w) = step(&c, 4.0, Some(s), 55);
        assert_eq!((s, w), (32.5, Some(33)));
        let mut state = (s, 33);
        for _ in 0..20 {
            let (s, w) = step(&c, 4.0, Some(state.0), state.1);
            state = (s, w.unwrap_or(state.1));
        }
        assert_eq!(state.1, 10);
        // No smoothing: straight to the target.
        let sharp = cfg(json!({}));
        assert_eq!(step(&sharp, 1.0, None, 100).1, Some(78));
    }

    #[test]
    fn moves_smaller_than_min_step_wait_and_weights_stay_within_bounds() {
        let c = cfg(json!({"min_step": 10}));
        assert_eq!(step(&c, 0.5, None, 100), (88.75, Some(89)));
        assert_eq!(step(&c, 0.2, None, 100).1, None, "95: a move of 5");
        // A weight the operator set outside the bounds is brought inside.
        let (_, w) = step(&c, 0.0, None, 1000);
        assert_eq!(w, Some(100));
        let (_, w) = step(&c, 4.0, None, 1);
        assert_eq!(w, Some(10));
        // A small step that accumulates in the smoothed value goes out
        // once the total reaches min_step.
        let slow = cfg(json!({"min_step": 10, "smoothing": 0.05}));
        let (s, w) = step(&slow, 4.0, None, 100);
        assert_eq!((s, w), (95.5, None));
        let (s, w) = step(&slow, 4.0, Some(s), 100);
        assert_eq!(w, None, "{s}: 91, a move of 9");
        let (_, w) = step(&slow, 4.0, Some(s), 100);
        assert_eq!(w, Some(87));
    }

    #[test]
    fn every_metric_a_pool_accepts_is_one_host_aware_reads() {
        for (source, name) in [
            ("ganglia", "load_one"),
            ("gmond", "cpu_idle"),
            ("switch", "rx_bps"),
            ("switch", "tx_bps"),
            ("switch", "rx_pps"),
            ("switch", "tx_pps"),
        ] {
            let c = cfg(json!({"source": source, "metric": name}));
            let m = metric(&c).unwrap();
            assert_eq!(m.to_string(), c.metric_name());
        }
        assert_eq!(
            metric(&cfg(json!({}))).unwrap(),
            Metric::Rrd("load_one".into())
        );
    }

    #[test]
    fn a_member_is_the_monitored_host_with_its_address_or_the_address_itself() {
        let mut config = Config::default();
        let web1: MonitoredHost = serde_json::from_value(
            json!({"id": "web1", "ip": "10.0.0.1", "cluster": "web", "ganglia_name": "w1"}),
        )
        .unwrap();
        config.hosts.insert("web1".into(), web1.clone());
        assert_eq!(host_of(&config, "10.0.0.1".parse().unwrap()), web1);
        let other = host_of(&config, "10.0.0.2".parse().unwrap());
        assert_eq!(
            (other.id.as_str(), other.ganglia_name()),
            ("10.0.0.2", "10.0.0.2")
        );
    }
}
