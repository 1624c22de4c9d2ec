//! `flowgate-bench`: flow-setup rate of an OpenFlow 1.3 controller, the
//! cbench way. Emulated switches connect (full handshake), send packet-ins
//! for their hosts' MACs and count the FLOW_MOD / PACKET_OUT answers.
//!
//! - `run`: latency mode (one packet-in outstanding per switch) or
//!   throughput mode (a window of packet-ins in flight per switch), L loops
//!   after warm-up, min/max/avg per loop and over loops.
//! - `null`: the null controller, the baseline every figure is divided by.
//! - `scale`: connect K switches, report handshake time and controller RSS.
//!
//! Each run prints a last `RESULT key=value ...` line for scripts
//! (tools/bench.sh).

mod null;
mod stats;
mod switch;
mod wire;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use flowgate_openflow::PacketInReason;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::stats::{LoopResult, Summary};
use crate::switch::{Phase, SwitchSpec, SwitchStats};
use crate::wire::{PacketInShape, PacketInTemplate};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Flow-setup benchmark for OpenFlow 1.3 controllers (cbench methodology)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure flow-setup responses per second.
    Run(RunArgs),
    /// Serve as the null controller (the baseline).
    Null {
        #[arg(long, default_value = "127.0.0.1:6654")]
        listen: SocketAddr,
    },
    /// Connect many switches; report handshake time and controller RSS.
    Scale(ScaleArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// One packet-in outstanding per switch.
    Latency,
    /// Up to `--window` packet-ins outstanding per switch.
    Throughput,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Reason {
    NoMatch,
    Action,
}

#[derive(Debug, clap::Args)]
struct Common {
    /// The controller's OpenFlow address.
    #[arg(long, default_value = "127.0.0.1:6653")]
    controller: SocketAddr,
    /// Emulated switches.
    #[arg(long, default_value_t = 16)]
    switches: u16,
    /// Delay between two switch connections (connection pacing).
    #[arg(long, default_value_t = 0)]
    connect_delay_us: u64,
    /// Seconds allowed for every switch to be programmed.
    #[arg(long, default_value_t = 30)]
    handshake_timeout_s: u64,
    /// First datapath id; switch i gets dpid_base + i.
    #[arg(long, default_value_t = 1)]
    dpid_base: u64,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, value_enum, default_value_t = Mode::Throughput)]
    mode: Mode,
    /// Distinct source MACs per switch, used round-robin.
    #[arg(long, default_value_t = 1000)]
    macs: u32,
    /// Measured loops.
    #[arg(long, default_value_t = 10)]
    loops: usize,
    /// Loops run first and not counted.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Length of one loop.
    #[arg(long, default_value_t = 1000)]
    duration_ms: u64,
    /// Packet-ins in flight per switch in throughput mode.
    #[arg(long, default_value_t = 1024)]
    window: u32,
    /// Attribute every response to the packet-in of the host it names and
    /// report packet-ins left unanswered.
    #[arg(long)]
    verify: bool,
    /// Cookie of the packet-ins. The default is Flowgate's learn-table miss
    /// entry (forwarding module, `0xf002 << 48 | 0x0100_0000_0001`), so the
    /// packet-ins look like the ones its pipeline produces.
    #[arg(long, default_value = "0xf002010000000001", value_parser = parse_u64)]
    cookie: u64,
    /// Table id of the packet-ins (Flowgate's learn table is 4).
    #[arg(long, default_value_t = 4)]
    table: u8,
    #[arg(long, value_enum, default_value_t = Reason::Action)]
    reason: Reason,
    /// Name of the controller in the RESULT line.
    #[arg(long, default_value = "controller")]
    label: String,
}

#[derive(Debug, clap::Args)]
struct ScaleArgs {
    #[command(flatten)]
    common: Common,
    /// Pid of the controller, to read its resident memory.
    #[arg(long)]
    controller_pid: Option<u32>,
    /// Keep the switches connected this long after the last handshake
    /// before measuring memory.
    #[arg(long, default_value_t = 500)]
    hold_ms: u64,
    #[arg(long, default_value = "controller")]
    label: String,
}

fn parse_u64(s: &str) -> Result<u64, String> {
    let parsed = match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|e| e.to_string())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The bench is measured on one core: a single-threaded runtime.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Run(args) => runtime.block_on(run(args)),
        Command::Null { listen } => runtime.block_on(async move {
            let listener = TcpListener::bind(listen).await?;
            eprintln!("null controller listening on {listen}");
            null::serve(listener).await?;
            Ok(())
        }),
        Command::Scale(args) => runtime.block_on(scale(args)),
    }
}

/// Connected switches and what the run needs to steer them.
struct Fleet {
    stats: Vec<Arc<SwitchStats>>,
    tasks: Vec<JoinHandle<std::io::Result<()>>>,
    phase: watch::Sender<Phase>,
    /// Time from the first connection to the last switch programmed.
    handshake: Duration,
}

impl Fleet {
    async fn connect(
        common: &Common,
        macs: u32,
        window: u32,
        verify: bool,
        shape: PacketInShape,
    ) -> anyhow::Result<Fleet> {
        let template = Arc::new(PacketInTemplate::new(shape));
        let (phase, phase_rx) = watch::channel(Phase::Idle);
        let (programmed_tx, mut programmed) = mpsc::unbounded_channel();
        let mut fleet = Fleet {
            stats: Vec::new(),
            tasks: Vec::new(),
            phase,
            handshake: Duration::ZERO,
        };
        let start = Instant::now();
        for index in 0..common.switches {
            let spec = SwitchSpec {
                index,
                dpid: common.dpid_base + u64::from(index),
                macs: macs.max(1),
                window: window.max(1),
                verify,
            };
            let stats = Arc::new(SwitchStats::default());
            fleet.stats.push(stats.clone());
            fleet.tasks.push(tokio::spawn(switch::run(
                common.controller,
                spec,
                template.clone(),
                stats,
                phase_rx.clone(),
                programmed_tx.clone(),
            )));
            if common.connect_delay_us > 0 {
                tokio::time::sleep(Duration::from_micros(common.connect_delay_us)).await;
            }
        }
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(common.handshake_timeout_s);
        let mut done = 0;
        let mut last = start;
        while done < common.switches {
            match tokio::time::timeout_at(deadline, programmed.recv()).await {
                Ok(Some((_, at))) => {
                    done += 1;
                    last = last.max(at);
                }
                _ => {
                    fleet.check()?;
                    bail!(
                        "only {done} of {} switches were programmed in time",
                        common.switches
                    )
                }
            }
        }
        fleet.handshake = last - start;
        Ok(fleet)
    }

    /// Fails if a switch's connection ended.
    fn check(&mut self) -> anyhow::Result<()> {
        for (i, task) in self.tasks.iter_mut().enumerate() {
            if task.is_finished() {
                bail!("switch {i} lost its connection to the controller");
            }
        }
        Ok(())
    }

    fn responses(&self) -> Vec<u64> {
        self.stats
            .iter()
            .map(|s| s.responses.load(Ordering::Relaxed))
            .collect()
    }

    fn total(&self, f: impl Fn(&SwitchStats) -> u64) -> u64 {
        self.stats.iter().map(|s| f(s)).sum()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let window = match args.mode {
        Mode::Latency => 1,
        Mode::Throughput => args.window,
    };
    let shape = PacketInShape {
        cookie: args.cookie,
        table_id: args.table,
        reason: match args.reason {
            Reason::NoMatch => PacketInReason::NoMatch,
            Reason::Action => PacketInReason::Action,
        },
    };
    let mode = format!("{:?}", args.mode).to_lowercase();
    let packet_in_len = PacketInTemplate::new(shape).len();
    println!(
        "flowgate-bench: {} switches x {} MACs, {mode} mode (window {window}), {} loops of {} ms after {} warm-up, {packet_in_len}-byte packet-ins, controller {}",
        args.common.switches, args.macs, args.loops, args.duration_ms, args.warmup, args.common.controller
    );
    let mut fleet = Fleet::connect(&args.common, args.macs, window, args.verify, shape)
        .await
        .context("connecting the switches")?;
    println!(
        "all {} switches programmed in {:.1} ms",
        args.common.switches,
        fleet.handshake.as_secs_f64() * 1e3
    );
    fleet.phase.send_replace(Phase::Run);
    let mut measured = Vec::new();
    for n in 0..args.warmup + args.loops {
        let before = fleet.responses();
        let ins_before = fleet.total(|s| s.packet_ins.load(Ordering::Relaxed));
        let started = Instant::now();
        tokio::time::sleep(Duration::from_millis(args.duration_ms)).await;
        let secs = started.elapsed().as_secs_f64();
        let after = fleet.responses();
        let deltas: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        let ins = fleet.total(|s| s.packet_ins.load(Ordering::Relaxed)) - ins_before;
        fleet.check()?;
        let result = LoopResult::new(&deltas, ins, secs);
        let (min, max, avg) = result.spread();
        let warm = if n < args.warmup { " (warm-up)" } else { "" };
        println!(
            "loop {:>3}: {:>12.0} responses/s   per switch min {:.0} max {:.0} avg {:.0}{warm}",
            n + 1,
            result.total(),
            min,
            max,
            avg
        );
        if n >= args.warmup {
            measured.push(result);
        }
    }
    fleet.phase.send_replace(Phase::Drain);
    let unanswered = if args.verify {
        Some(drain(&fleet).await)
    } else {
        None
    };
    let s = Summary::of(&measured);
    println!(
        "{} switches, {mode}: min/max/avg/stdev = {:.0}/{:.0}/{:.0}/{:.0} responses/s, {:.3} responses per packet-in",
        args.common.switches, s.min, s.max, s.avg, s.stdev, s.per_packet_in
    );
    if let Some(n) = unanswered {
        println!(
            "verify: {} packet-ins sent, {n} left unanswered",
            fleet.total(|s| s.packet_ins.load(Ordering::Relaxed))
        );
    }
    println!(
        "RESULT label={} mode={mode} switches={} macs={} window={window} avg={:.0} min={:.0} max={:.0} stdev={:.0} per_packet_in={:.3} unanswered={}",
        args.label,
        args.common.switches,
        args.macs,
        s.avg,
        s.min,
        s.max,
        s.stdev,
        s.per_packet_in,
        unanswered.map_or("-".to_string(), |n| n.to_string())
    );
    Ok(())
}

/// Waits (up to 5 s) for the answers still in flight; returns how many
/// packet-ins no response named.
async fn drain(fleet: &Fleet) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let sent = fleet.total(|s| s.packet_ins.load(Ordering::Relaxed));
        let answered = fleet.total(|s| s.answered.load(Ordering::Relaxed));
        if answered >= sent || Instant::now() >= deadline {
            return sent.saturating_sub(answered);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn scale(args: ScaleArgs) -> anyhow::Result<()> {
    let shape = PacketInShape {
        cookie: 0,
        table_id: 0,
        reason: PacketInReason::NoMatch,
    };
    let rss_before = args.controller_pid.and_then(rss_kib);
    let mut fleet = Fleet::connect(&args.common, 1, 1, false, shape)
        .await
        .context("connecting the switches")?;
    tokio::time::sleep(Duration::from_millis(args.hold_ms)).await;
    fleet.check()?;
    let rss = args.controller_pid.and_then(rss_kib);
    let mib =
        |kib: Option<u64>| kib.map_or("-".to_string(), |k| format!("{:.1}", k as f64 / 1024.0));
    println!(
        "{} switches connected and programmed in {:.1} ms; controller RSS {} MiB (before: {} MiB)",
        args.common.switches,
        fleet.handshake.as_secs_f64() * 1e3,
        mib(rss),
        mib(rss_before)
    );
    println!(
        "RESULT label={} mode=scale switches={} handshake_ms={:.1} rss_mib={} rss_before_mib={}",
        args.label,
        args.common.switches,
        fleet.handshake.as_secs_f64() * 1e3,
        mib(rss),
        mib(rss_before)
    );
    Ok(())
}

/// Resident set size of a process, from /proc (Linux).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
