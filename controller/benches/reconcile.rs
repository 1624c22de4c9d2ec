//! The reconciler's diff when nothing changed, the common case on a
//! controller restart (`cargo bench -p flowgate-controller`): one switch
//! with 100,000 flows, and 100 switches with 1,000 flows each.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flowgate_controller::cookie::Owner;
use flowgate_controller::desired::{FlowEntry, FlowSpec};
use flowgate_controller::runtime::reconcile::{reconcile_all, SwitchTables};
use flowgate_openflow::{Instruction, MacAddr, Match, Oxm};

/// `n` learned-host entries, as L2 learning declares them.
fn tables(n: u32) -> SwitchTables {
    let mut t = SwitchTables::default();
    for i in 0..n {
        let b = i.to_be_bytes();
        let mac = MacAddr([2, 0, b[0], b[1], b[2], b[3]]);
        let entry = FlowEntry::new(
            4,
            100,
            Match::new()
                .with(Oxm::InPort(1 + i % 48))
                .with(Oxm::EthSrc(mac, None)),
            FlowSpec::new(
                Owner::Forwarding.cookie(u64::from(i)),
                vec![Instruction::GotoTable(5)],
            )
            .idle_timeout(300)
            .notify_removal(),
        );
        t.flows.insert(entry.key, entry.spec);
    }
    t
}

fn unchanged(c: &mut Criterion) {
    let mut group = c.benchmark_group("reconcile_unchanged");
    group.sample_size(10);
    let desired = tables(100_000);
    let mut installed = desired.clone();
    group.throughput(Throughput::Elements(100_000));
    group.bench_function("1 switch x 100000 flows", |b| {
        b.iter(|| {
            let plan = reconcile_all(black_box(&desired), &mut installed);
            assert!(plan.is_empty());
        })
    });
    let switches: Vec<(SwitchTables, SwitchTables)> = (0..100)
        .map(|_| {
            let d = tables(1_000);
            (d.clone(), d)
        })
        .collect();
    let mut switches = switches;
    group.bench_function("100 switches x 1000 flows", |b| {
        b.iter(|| {
            for (desired, installed) in &mut switches {
                let plan = reconcile_all(black_box(desired), installed);
                assert!(plan.is_empty());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, unchanged);
criterion_main!(benches);
