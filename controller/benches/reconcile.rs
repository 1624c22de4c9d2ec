//! Reconciling a switch that already has everything, the common case on a
//! controller restart (`cargo bench -p flowgate-controller`): one switch
//! with 100,000 flows, and 100 switches with 1,000 flows each. Measured is
//! the controller's work after the switch's flow dump is parsed: the module
//! declaring its entries over the installed ones read back from the switch
//! (a spec comparison each), then the full diff, which finds nothing to send.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use flowgate_controller::cookie::Owner;
use flowgate_controller::desired::{FlowEntry, FlowSpec};
use flowgate_controller::runtime::reconcile::SwitchTables;
use flowgate_controller::runtime::session::SwitchSync;
use flowgate_controller::testing::reported_stats;
use flowgate_openflow::{self as of, Instruction, MacAddr, Match, Oxm};

/// `n` learned-host entries as L2 learning declares them.
fn entries(n: u32) -> Vec<FlowEntry> {
    (0..n)
        .map(|i| {
            let b = i.to_be_bytes();
            let mac = MacAddr([2, 0, b[0], b[1], b[2], b[3]]);
            FlowEntry::new(
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
            )
        })
        .collect()
}

/// The switch's sync dumps: every entry installed.
fn sync_with(entries: &[FlowEntry]) -> SwitchSync {
    let flows = entries.iter().map(reported_stats).collect();
    SwitchSync {
        version: of::OFP_VERSION_1_3,
        features: of::SwitchFeatures {
            datapath_id: 1,
            n_buffers: 0,
            n_tables: 254,
            auxiliary_id: 0,
            capabilities: 0,
            reserved: 0,
        },
        desc: None,
        ports: Vec::new(),
        flows,
        groups: Vec::new(),
        meters: Vec::new(),
        unknown: Vec::new(),
    }
}

/// Declares `entries` over `installed` and reconciles: nothing to send.
fn restart(mut tables: SwitchTables, entries: Vec<FlowEntry>) {
    for e in entries {
        tables.desire_flow(e.key, e.spec);
    }
    let plan = tables.reconcile_all();
    assert!(plan.is_empty());
    black_box(tables);
}

fn unchanged(c: &mut Criterion) {
    let mut group = c.benchmark_group("reconcile_unchanged");
    group.sample_size(10);
    group.throughput(Throughput::Elements(100_000));
    let big = entries(100_000);
    let big_sync = sync_with(&big);
    group.bench_function("1 switch x 100000 flows", |b| {
        b.iter_batched(
            || (SwitchTables::from_sync(&big_sync), big.clone()),
            |(tables, entries)| restart(tables, entries),
            BatchSize::LargeInput,
        )
    });
    let small = entries(1_000);
    let small_sync = sync_with(&small);
    group.bench_function("100 switches x 1000 flows", |b| {
        b.iter_batched(
            || {
                (0..100)
                    .map(|_| (SwitchTables::from_sync(&small_sync), small.clone()))
                    .collect::<Vec<_>>()
            },
            |switches| {
                for (tables, entries) in switches {
                    restart(tables, entries);
                }
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, unchanged);
criterion_main!(benches);
