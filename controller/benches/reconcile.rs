//! The reconciler's diff when nothing changed, the common case on a
//! controller restart (`cargo bench -p flowgate-controller`): one switch
//! with 100,000 flows, and 100 switches with 1,000 flows each.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flowgate_controller::cookie::Owner;
use flowgate_controller::desired::{FlowEntry, FlowSpec};
use flowgate_controller::runtime::reconcile::SwitchTables;
use flowgate_openflow::{Instruction, MacAddr, Match, Oxm};

/// `n` learned-host entries as L2 learning declares them, all installed.
/// (After a restart the desired side is declared over the installed side
/// read from the switch and shares its specs, as here.)
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
        t.desire_flow(entry.key, entry.spec);
    }
    t.reconcile_all();
    t
}

fn unchanged(c: &mut Criterion) {
    let mut group = c.benchmark_group("reconcile_unchanged");
    group.sample_size(10);
    let mut one = tables(100_000);
    group.throughput(Throughput::Elements(100_000));
    group.bench_function("1 switch x 100000 flows", |b| {
        b.iter(|| {
            let plan = black_box(&mut one).reconcile_all();
            assert!(plan.is_empty());
        })
    });
    let mut switches: Vec<SwitchTables> = (0..100).map(|_| tables(1_000)).collect();
    group.bench_function("100 switches x 1000 flows", |b| {
        b.iter(|| {
            for t in &mut switches {
                let plan = black_box(t).reconcile_all();
                assert!(plan.is_empty());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, unchanged);
criterion_main!(benches);
