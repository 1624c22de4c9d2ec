//! `flowgate-bench`: flow-setup rate of an OpenFlow controller, the cbench
//! way. Emulated switches connect (full handshake), send packet-ins for
//! their hosts' MACs and count the FLOW_MOD / PACKET_OUT answers.
//!
//! - `run`: latency mode (one packet-in outstanding per switch) or
//!   throughput mode (a window of packet-ins in flight per switch), L loops
//!   after warm-up, min/max/avg per loop and over loops, flows installed
//!   per second and how evenly switches were served. By default OpenFlow
//!   1.3 switches sending the packet-ins of Flowgate's own pipeline;
//!   `--like cbench` and `--like table-miss` shape them like the stock
//!   tools (see [`Like`]).
//! - `null`: the null controller, the baseline every figure is divided by.
//! - `scale`: connect K switches, report handshake time and controller RSS.
//!
//! Each run prints a last `RESULT key=value ...` line for scripts
//! (tools/bench.sh).

mod null;
mod of10;
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
use crate::switch::{Phase, SwitchKind, SwitchSpec, SwitchStats};
use crate::wire::{Handshake, PacketInShape, PacketInTemplate};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Flow-setup benchmark for OpenFlow controllers (cbench methodology; OpenFlow 1.3, or shaped like stock cbench)"
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

/// Switches shaped like a stock tool's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Like {
    /// oflops cbench: OpenFlow 1.0, buffered packet-ins from right after
    /// FEATURES_REPLY, only description stats answered (never the flow
    /// dump), a broadcast from the destination host first, then every
    /// packet from port 1 to it.
    Cbench,
    /// An OpenFlow 1.3 cbench-style tool: table-miss packet-ins (cookie 0,
    /// table 0, reason no-match, unbuffered) from right after
    /// FEATURES_REPLY, only description stats answered.
    TableMiss,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Version {
    #[value(name = "1.3")]
    V13,
    #[value(name = "1.0")]
    V10,
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
    /// Seconds allowed for every switch to be ready (programmed, or for
    /// `--early` switches, past FEATURES).
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
    /// OpenFlow version the switches speak (1.0 implies `--early`: a 1.0
    /// controller programs nothing the switch could wait for).
    #[arg(long, value_enum, default_value_t = Version::V13)]
    openflow: Version,
    /// Packet-ins carry buffer ids (the switch keeps the packet).
    #[arg(long)]
    buffered: bool,
    /// Answer only description stats (and barriers, echo): the flow dump
    /// and the other sync dumps are never answered.
    #[arg(long)]
    desc_only: bool,
    /// Send packet-ins from right after FEATURES_REPLY, counting from then,
    /// instead of once the controller has programmed the switch.
    #[arg(long)]
    early: bool,
    /// cbench's traffic: a broadcast from one host first, then every
    /// packet goes to it.
    #[arg(long)]
    learn_dst: bool,
    /// Shape the switches like a stock tool's; sets the options above (and
    /// cookie, table, reason) as that tool has them.
    #[arg(long, value_enum)]
    like: Option<Like>,
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
    /// Time from the first connection to the last switch ready.
    handshake: Duration,
}

impl Fleet {
    async fn connect(
        common: &Common,
        macs: u32,
        window: u32,
        verify: bool,
        kind: SwitchKind,
        template: PacketInTemplate,
    ) -> anyhow::Result<Fleet> {
        let template = Arc::new(template);
        let (phase, phase_rx) = watch::channel(Phase::Idle);
        let (ready_tx, mut ready) = mpsc::unbounded_channel();
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
                kind,
            };
            let stats = Arc::new(SwitchStats::default());
            fleet.stats.push(stats.clone());
            fleet.tasks.push(tokio::spawn(switch::run(
                common.controller,
                spec,
                template.clone(),
                stats,
                phase_rx.clone(),
                ready_tx.clone(),
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
            match tokio::time::timeout_at(deadline, ready.recv()).await {
                Ok(Some((_, at))) => {
                    done += 1;
                    last = last.max(at);
                }
                _ => {
                    fleet.check()?;
                    bail!(
                        "only {done} of {} switches were ready in time",
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

    fn flows(&self) -> u64 {
        self.total(|s| s.flows.load(Ordering::Relaxed))
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

impl RunArgs {
    /// Applies `--like`: the options the stock tool has.
    fn apply_like(&mut self) {
        let Some(like) = self.like else {
            return;
        };
        self.cookie = 0;
        self.table = 0;
        self.reason = Reason::NoMatch;
        self.desc_only = true;
        self.early = true;
        if like == Like::Cbench {
            self.openflow = Version::V10;
            self.buffered = true;
            self.learn_dst = true;
        }
    }

    fn kind(&self) -> SwitchKind {
        let version = match self.openflow {
            Version::V13 => flowgate_openflow::OFP_VERSION_1_3,
            Version::V10 => of10::VERSION,
        };
        SwitchKind {
            handshake: Handshake {
                version,
                n_buffers: if self.buffered { 256 } else { 0 },
                desc_only: self.desc_only,
            },
            buffered: self.buffered,
            early: self.early || self.openflow == Version::V10,
            learn_dst: self.learn_dst,
        }
    }

    fn template(&self) -> PacketInTemplate {
        match self.openflow {
            Version::V10 => PacketInTemplate::of10(),
            Version::V13 => PacketInTemplate::new(PacketInShape {
                cookie: self.cookie,
                table_id: self.table,
                reason: match self.reason {
                    Reason::NoMatch => PacketInReason::NoMatch,
                    Reason::Action => PacketInReason::Action,
                },
            }),
        }
    }

    /// How the switches look, for the first line of the output.
    fn describe(&self, kind: SwitchKind) -> String {
        let mut words = vec![format!(
            "OpenFlow {}",
            if kind.handshake.version == of10::VERSION {
                "1.0"
            } else {
                "1.3"
            }
        )];
        if kind.handshake.version != of10::VERSION {
            words.push(format!(
                "cookie {:#x} table {} {:?}",
                self.cookie, self.table, self.reason
            ));
        }
        for (on, what) in [
            (kind.buffered, "buffered"),
            (kind.handshake.desc_only, "only desc stats answered"),
            (kind.early, "packet-ins from the first millisecond"),
            (kind.learn_dst, "to one learned destination"),
        ] {
            if on {
                words.push(what.to_string());
            }
        }
        words.join(", ")
    }
}

async fn run(mut args: RunArgs) -> anyhow::Result<()> {
    args.apply_like();
    let window = match args.mode {
        Mode::Latency => 1,
        Mode::Throughput => args.window,
    };
    let kind = args.kind();
    let template = args.template();
    let mode = format!("{:?}", args.mode).to_lowercase();
    println!(
        "flowgate-bench: {} switches x {} MACs, {mode} mode (window {window}), {} loops of {} ms after {} warm-up, {}-byte packet-ins ({}), controller {}",
        args.common.switches,
        args.macs,
        args.loops,
        args.duration_ms,
        args.warmup,
        template.len(),
        args.describe(kind),
        args.common.controller
    );
    let mut fleet = Fleet::connect(&args.common, args.macs, window, args.verify, kind, template)
        .await
        .context("connecting the switches")?;
    println!(
        "all {} switches ready in {:.1} ms",
        args.common.switches,
        fleet.handshake.as_secs_f64() * 1e3
    );
    fleet.phase.send_replace(Phase::Run);
    let mut measured = Vec::new();
    for n in 0..args.warmup + args.loops {
        let before = fleet.responses();
        let flows_before = fleet.flows();
        let ins_before = fleet.total(|s| s.packet_ins.load(Ordering::Relaxed));
        let started = Instant::now();
        tokio::time::sleep(Duration::from_millis(args.duration_ms)).await;
        let secs = started.elapsed().as_secs_f64();
        let after = fleet.responses();
        let deltas: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        let flows = fleet.flows() - flows_before;
        let ins = fleet.total(|s| s.packet_ins.load(Ordering::Relaxed)) - ins_before;
        fleet.check()?;
        let result = LoopResult::new(&deltas, flows, ins, secs);
        let (min, max, avg) = result.spread();
        let warm = if n < args.warmup { " (warm-up)" } else { "" };
        println!(
            "loop {:>3}: {:>12.0} responses/s {:>12.0} flows/s   per switch min {:.0} max {:.0} avg {:.0} (min/mean {:.2}){warm}",
            n + 1,
            result.total(),
            result.flows,
            min,
            max,
            avg,
            result.fairness()
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
        "{} switches, {mode}: min/max/avg/stdev = {:.0}/{:.0}/{:.0}/{:.0} responses/s, {:.0} flows/s, {:.3} responses per packet-in, slowest switch {:.2} x the mean",
        args.common.switches, s.min, s.max, s.avg, s.stdev, s.flows, s.per_packet_in, s.fairness
    );
    if let Some(n) = unanswered {
        println!(
            "verify: {} packet-ins sent, {n} left unanswered",
            fleet.total(|s| s.packet_ins.load(Ordering::Relaxed))
        );
    }
    let like = args
        .like
        .and_then(|l| l.to_possible_value())
        .map_or_else(|| "own".to_string(), |v| v.get_name().to_string());
    println!(
        "RESULT label={} mode={mode} like={like} switches={} macs={} window={window} avg={:.0} min={:.0} max={:.0} stdev={:.0} flows={:.0} fairness={:.3} per_packet_in={:.3} unanswered={}",
        args.label,
        args.common.switches,
        args.macs,
        s.avg,
        s.min,
        s.max,
        s.stdev,
        s.flows,
        s.fairness,
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
    let template = PacketInTemplate::new(PacketInShape {
        cookie: 0,
        table_id: 0,
        reason: PacketInReason::NoMatch,
    });
    let kind = SwitchKind {
        handshake: Handshake {
            version: flowgate_openflow::OFP_VERSION_1_3,
            n_buffers: 0,
            desc_only: false,
        },
        buffered: false,
        early: false,
        learn_dst: false,
    };
    let rss_before = args.controller_pid.and_then(rss_kib);
    let mut fleet = Fleet::connect(&args.common, 1, 1, false, kind, template)
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
