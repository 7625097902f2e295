//! `simtest`: runs the order-path simulation over a range of seeds.
//!
//! ```text
//! simtest --seeds 0..1000 --steps 2000 [--broker paper|netting|hedging|all] [--dir /dev/shm] [--min-faults 1000]
//! simtest --replay host/simtest/replays/flatten-over-the-order-cap.json
//! ```
//! A failing seed is shrunk and written as a replay file, with the command
//! that replays it.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use stratbox_simtest::{BrokerKind, Invariant, Options, Replay, Stats, generate_for, run_with, shrink};

#[derive(Parser)]
#[command(about = "The order path under a deterministic fault simulation")]
struct Args {
    /// Seeds to run, `a..b` (b excluded) or one seed.
    #[arg(long, default_value = "0..100")]
    seeds: String,
    /// Operations per seed.
    #[arg(long, default_value_t = 2000)]
    steps: usize,
    /// The broker: `paper`, Capital.com's `netting` or `hedging` account
    /// (the mock, in process), or `all` (seed modulo 3 picks one).
    #[arg(long, default_value = "paper")]
    broker: String,
    /// Where runs keep their journals (a tmpfs such as /dev/shm is fastest).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Replays a replay file instead of drawing seeds.
    #[arg(long)]
    replay: Option<PathBuf>,
    /// Where a failing seed's shrunk replay file is written.
    #[arg(long, default_value = "target/simtest")]
    out: PathBuf,
    /// Runs spent shrinking a failure (0: no shrinking).
    #[arg(long, default_value_t = 2000)]
    shrink_runs: usize,
    /// Fails the run unless every fault kind was injected this often and every invariant checked.
    #[arg(long, default_value_t = 0)]
    min_faults: u64,
    /// Prints each seed's trace hash.
    #[arg(long)]
    traces: bool,
    /// Goes on after a failing seed (each is shrunk and written).
    #[arg(long)]
    keep_going: bool,
}

fn seeds(s: &str) -> anyhow::Result<std::ops::Range<u64>> {
    match s.split_once("..") {
        Some((a, b)) => Ok(a.parse().context("--seeds start")?..b.parse().context("--seeds end")?),
        None => {
            let one: u64 = s.parse().context("--seeds takes `a..b` or a number")?;
            Ok(one..one + 1)
        }
    }
}

/// The broker a seed runs against.
fn broker_for(choice: &str, seed: u64) -> anyhow::Result<BrokerKind> {
    Ok(match choice {
        "paper" => BrokerKind::Paper,
        "netting" => BrokerKind::Netting,
        "hedging" => BrokerKind::Hedging,
        "all" => [BrokerKind::Paper, BrokerKind::Netting, BrokerKind::Hedging][(seed % 3) as usize],
        other => bail!("--broker takes paper, netting, hedging or all, not `{other}`"),
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // `RUST_LOG=stratbox_trading=debug`: the host's own log of a replayed run, on stderr.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).with_writer(std::io::stderr).without_time().init();
    }
    let dir = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    if let Some(path) = &args.replay {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let replay: Replay = serde_json::from_str(&text).with_context(|| format!("{} is not a replay file", path.display()))?;
        let options = Options { latency_ms: replay.latency_ms, broker: replay.broker, seed: replay.seed, ..Options::default() };
        let outcome = run_with(&replay.ops, &dir, options);
        println!("replay {}: {} operations (seed {}), trace {}", path.display(), replay.ops.len(), replay.seed, outcome.trace);
        return match outcome.violation {
            Some(v) => bail!("step {}: {} violated: {}", v.step, v.invariant.name(), v.message),
            None => {
                println!("no invariant violated");
                Ok(())
            }
        };
    }
    let range = seeds(&args.seeds)?;
    let started = Instant::now();
    let mut total = Stats::default();
    let mut failed = Vec::new();
    let mut runs = 0u64;
    let mut kinds: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    for seed in range.clone() {
        let broker = broker_for(&args.broker, seed)?;
        let ops = generate_for(seed, args.steps, broker.capital());
        let options = Options::for_broker(seed, broker);
        kinds.extend(if broker.capital() { &stratbox_simtest::sim::CAPITAL_FAULT_KINDS[..] } else { &stratbox_simtest::sim::FAULT_KINDS[..] }.iter().copied());
        let outcome = run_with(&ops, &dir, options);
        total.add(&outcome.stats);
        runs += 1;
        if args.traces {
            println!("seed {seed}: trace {}", outcome.trace);
        }
        if let Some(v) = outcome.violation {
            println!("seed {seed} ({broker:?}): step {}: {} violated: {}", v.step, v.invariant.name(), v.message);
            let (small, last) = if args.shrink_runs > 0 { shrink(&ops, v.invariant, &dir, args.shrink_runs, options) } else { (ops[..=v.step].to_vec(), v.clone()) };
            std::fs::create_dir_all(&args.out)?;
            let file = args.out.join(format!("seed-{seed}-{}.json", v.invariant.name()));
            let replay = Replay { seed, steps: args.steps, found: v.message.clone(), latency_ms: options.latency_ms, broker, violation: Some(last.clone()), ops: small };
            std::fs::write(&file, serde_json::to_string_pretty(&replay)?)?;
            println!("  shrunk to {} operations ({}): {}", replay.ops.len(), last.invariant.name(), last.message);
            println!("  replay: cargo run --release -p stratbox-simtest -- --replay {}", file.display());
            println!("  or:     cargo run --release -p stratbox-simtest -- --seeds {seed} --steps {} --broker {}", args.steps, args.broker);
            failed.push(seed);
            if !args.keep_going {
                break;
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let faults: u64 = total.faults.values().sum();
    let checks: u64 = total.checks.values().sum();
    println!("seeds: {runs} ({}..{})", range.start, range.start + runs);
    println!("steps: {} ({:.0} per second over {secs:.1} s)", total.steps, total.steps as f64 / secs.max(1e-9));
    println!("crashes: {}", total.crashes);
    println!("faults injected: {faults}");
    for (kind, n) in &total.faults {
        println!("  {kind}: {n}");
    }
    println!("invariant checks: {checks}");
    for i in Invariant::ALL {
        println!("  {}: {}", i.name(), total.checks.get(i.name()).copied().unwrap_or(0));
    }
    println!("journal entries checked: {}", total.entries);
    println!("violations: {}", failed.len());
    if !failed.is_empty() {
        bail!("seeds that failed: {failed:?}");
    }
    if args.min_faults > 0 {
        let short: Vec<String> =
            kinds.iter().map(|k| (*k, total.faults.get(k).copied().unwrap_or(0))).filter(|(_, n)| *n < args.min_faults).map(|(k, n)| format!("{k} ({n})")).collect();
        let unchecked: Vec<&str> = Invariant::ALL.iter().map(|i| i.name()).filter(|n| !total.checks.contains_key(n)).collect();
        if !short.is_empty() || !unchecked.is_empty() {
            bail!("fewer than {} injections of {short:?}; never checked: {unchecked:?}", args.min_faults);
        }
    }
    Ok(())
}
