//! Leastconn: bucket weights from each member's live connections, and the
//! weighted pick session affinity uses.
//!
//! Live connections are counted from flow statistics, without a packet-in
//! per connection: for a leastconn VIP each member has two counting
//! entries (see [`crate::compile`]): replies with SYN (the member accepted
//! a connection) and client packets with FIN or RST (a connection
//! closing). `live = accepted - closed`, summed over the switches, and the
//! least loaded member gets the highest weight. The sampler task reads the
//! counters every `leastconn_interval` and hands them to the module, which
//! re-declares the group only when a weight changed.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::time::Duration;

use flowgate_controller::pipeline::LB;
use flowgate_controller::runtime::tasks::TaskCtx;
use flowgate_openflow::{Action, FlowStats, GroupDesc, NxAction, Oxm};

use crate::compile::{cookie, Kind, PlannedMember};
use crate::model::MemberKey;
use crate::module::{LeastconnSample, LoadBalancer};

/// The weight of a member with the fewest connections (the others get
/// proportionally less, at least 1).
pub const FULL: u16 = 100;

/// Weights from `(accepted, closed)` counts per member.
pub fn weights(counts: &BTreeMap<MemberKey, (u64, u64)>) -> BTreeMap<MemberKey, u16> {
    let live: BTreeMap<MemberKey, u64> = counts
        .iter()
        .map(|(k, (opened, closed))| (*k, opened.saturating_sub(*closed)))
        .collect();
    let least = live.values().copied().min().unwrap_or(0);
    live.into_iter()
        .map(|(k, n)| {
            let w = (f64::from(FULL) * (1 + least) as f64 / (1 + n) as f64).round();
            (k, (w as u16).clamp(1, FULL))
        })
        .collect()
}

/// The member (with its bucket weight) a `ct(commit,nat(dst=...))` in
/// `action` sends connections to.
pub fn nat_target(action: &Action) -> Option<MemberKey> {
    let Some(NxAction::Ct(ct)) = NxAction::from_action(action) else {
        return None;
    };
    ct.actions
        .iter()
        .find_map(|a| match NxAction::from_action(a) {
            Some(NxAction::Nat(nat)) => {
                let address = nat
                    .ipv4_min
                    .map(IpAddr::V4)
                    .or(nat.ipv6_min.map(IpAddr::V6))?;
                Some(MemberKey {
                    address,
                    port: nat.proto_min?,
                })
            }
            _ => None,
        })
}

/// The bucket weights a VIP's group has on a switch, by member.
pub fn weights_in(group: &GroupDesc) -> BTreeMap<MemberKey, u16> {
    group
        .buckets
        .iter()
        .filter_map(|b| Some((b.actions.iter().find_map(nat_target)?, b.weight)))
        .collect()
}

/// Weighted rendezvous hashing: the member `client` goes to, stable while
/// the eligible set does not change and moving as few clients as possible
/// when it does.
pub fn pick<'a>(eligible: &[&'a PlannedMember], client: IpAddr) -> Option<&'a PlannedMember> {
    let hasher =
        std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
    eligible
        .iter()
        .map(|m| {
            let mut h = hasher.build_hasher();
            (client, m.key).hash(&mut h);
            let u = (std::hash::Hasher::finish(&h) >> 11) as f64 / (1u64 << 53) as f64;
            let u = u.clamp(f64::MIN_POSITIVE, 1.0 - f64::EPSILON);
            (-f64::from(m.weight.max(1)) / u.ln(), *m)
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, m)| m)
}

/// Adds a counting entry's packets to its member.
fn attribute(
    flow: &FlowStats,
    members: &[crate::module::ResolvedMember],
    counts: &mut BTreeMap<MemberKey, (u64, u64)>,
) {
    let fields = &flow.match_.fields;
    let mac = fields.iter().find_map(|f| match f {
        Oxm::EthSrc(m, None) => Some(*m),
        _ => None,
    });
    if let Some(mac) = mac {
        if let Some((key, _)) = members.iter().find(|(_, m)| *m == Some(mac)) {
            counts.entry(*key).or_default().0 += flow.packet_count;
        }
        return;
    }
    let address = fields.iter().find_map(|f| match f {
        Oxm::Ipv4Dst(a, None) => Some(IpAddr::V4(*a)),
        Oxm::Ipv6Dst(a, None) => Some(IpAddr::V6(*a)),
        _ => None,
    });
    let port = fields.iter().find_map(|f| match f {
        Oxm::TcpDst(p) => Some(*p),
        _ => None,
    });
    if let (Some(address), Some(port)) = (address, port) {
        counts.entry(MemberKey { address, port }).or_default().1 += flow.packet_count;
    }
}

/// The sampler task: reads every leastconn VIP's counting entries on every
/// switch each `interval` and sends the sums to the module.
pub async fn sampler(mut ctx: TaskCtx, interval: Duration) {
    let mut clock = tokio::time::interval(interval);
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = clock.tick() => {}
            _ = ctx.stopped() => return,
        }
        let Ok(applied) = ctx
            .runtime()
            .call::<LoadBalancer, _>(|m, _| (m.leastconn_vips(), m.switches().clone()))
            .await
        else {
            return;
        };
        let (vips, switches) = applied.value;
        for (index, members) in vips {
            let mut counts: BTreeMap<MemberKey, (u64, u64)> =
                members.iter().map(|(k, _)| (*k, (0, 0))).collect();
            let mut complete = true;
            for &dpid in &switches {
                let query = ctx.runtime().flow_stats_by_cookie(
                    dpid,
                    LB,
                    cookie(Kind::Count, index),
                    u64::MAX,
                );
                match query.await {
                    Ok(flows) => {
                        for flow in &flows {
                            attribute(flow, &members, &mut counts);
                        }
                    }
                    Err(_) => complete = false,
                }
            }
            if complete && !ctx.send(LeastconnSample { index, counts }).await {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AdminState;

    fn key(n: u8) -> MemberKey {
        MemberKey {
            address: IpAddr::from([10, 0, 0, n]),
            port: 80,
        }
    }

    #[test]
    fn the_least_loaded_member_weighs_most() {
        let counts = BTreeMap::from([(key(1), (10, 10)), (key(2), (30, 10)), (key(3), (5, 1))]);
        let w = weights(&counts);
        assert_eq!(w[&key(1)], FULL, "no live connection");
        assert_eq!(w[&key(2)], 5, "20 live: 1/21 of the least loaded's");
        assert_eq!(w[&key(3)], 20, "4 live: 1/5");
        // More closes than opens (a FIN counted twice) is not negative.
        let w = weights(&BTreeMap::from([(key(1), (1, 3)), (key(2), (0, 0))]));
        assert_eq!((w[&key(1)], w[&key(2)]), (FULL, FULL));
    }

    #[test]
    fn affinity_picks_are_stable_and_weighted() {
        let members: Vec<PlannedMember> = (1..=3)
            .map(|n| PlannedMember {
                key: key(n),
                mac: None,
                admin: AdminState::Enabled,
                in_rotation: true,
                weight: if n == 1 { 3 } else { 1 },
            })
            .collect();
        let all: Vec<&PlannedMember> = members.iter().collect();
        let mut hits = BTreeMap::new();
        for c in 0..3000u32 {
            let client = IpAddr::from((0x0a01_0000 + c).to_be_bytes());
            let first = pick(&all, client).unwrap().key;
            assert_eq!(pick(&all, client).unwrap().key, first);
            *hits.entry(first).or_insert(0) += 1;
            // Without member 3, clients of 1 and 2 stay where they were.
            let without: Vec<&PlannedMember> =
                all.iter().copied().filter(|m| m.key != key(3)).collect();
            if first != key(3) {
                assert_eq!(pick(&without, client).unwrap().key, first);
            }
        }
        let share = f64::from(hits[&key(1)]) / 3000.0;
        assert!((0.55..0.65).contains(&share), "3:1:1 gave {hits:?}");
    }
}
