//! The research suite's figures on the real data: every stock of
//! `daily/us_stocks_1500_2013_2017.csv.gz` (1,500 stocks, 1.84M bars) with
//! the bundled sma-cross 10/30, the risk engine and the paper broker.
//! Side by side, in turns, medians of 3:
//! 1. today's replay path: `Host::run` over a `ReplayFeed` from the sled
//!    store, the journal in sled;
//! 2. a research backtest: the same host stepped over `ReplayData` loaded
//!    once, the journal in memory.
//!
//! Then memory: bytes per bar held, the resident set after one backtest and
//! after `BENCH_SEQUENTIAL` (default 100) more in one process; and a TPE
//! study of `BENCH_TRIALS` (default 40) trials of sma-cross (fast 2..50,
//! slow 10..250) on 2 threads: wall time, trials per second, peak resident set.
//!
//! `cargo bench -p stratbox-tests --bench research`

#[path = "../support/mod.rs"]
mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stratbox_engine::config::{ControlConfig, FeedConfig, HostConfig, Mode, ParamInput, PluginSpec};
use stratbox_engine::{Host, RunOptions};
use stratbox_market::{ReplayConfig, ReplayData, ReplayFeed};
use stratbox_research::space::{ParamDecl, Space};
use stratbox_research::study::{self, Bench, Constraint, Direction, Sampler, Shard, StudySpec};
use stratbox_research::{Window, backtest, research_risk};

fn status_kb(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()).unwrap_or(0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn config(data_dir: &Path) -> HostConfig {
    let sma = PluginSpec::new(support::component("examples/sma-cross")).param("fast", ParamInput::Integer(10)).param("slow", ParamInput::Integer(30));
    let mut c = HostConfig {
        mode: Mode::Backtest,
        data_dir: data_dir.to_owned(),
        feed: FeedConfig::Replay(ReplayConfig::default()),
        pace_ms: 0,
        status_secs: 0,
        control: ControlConfig { enabled: false, ..Default::default() },
        plugins: vec![sma],
        ..HostConfig::default()
    };
    // Research's profile, with capital enough that the drawdown halt does not stop the run in 2013.
    c.risk = research_risk(c.risk);
    c.risk.capital = 1e7;
    c
}

/// backtrader 1.9.78 on the same file and rule (host/research/reference/backtrader_sma.py),
/// with the Python in `BENCH_PYTHON` (a venv with requirements-backtrader.txt) or python3.
fn backtrader(file: &Path, research_bars_per_sec: f64) {
    let python = std::env::var("BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = support::repo().join("host/research/reference/backtrader_sma.py");
    let has = std::process::Command::new(&python).args(["-c", "import backtrader"]).output().is_ok_and(|o| o.status.success());
    if !has {
        println!("backtrader: skipped ({python} has no backtrader; pip install -r host/research/reference/requirements-backtrader.txt and set BENCH_PYTHON)");
        return;
    }
    let out = std::process::Command::new(&python).arg(&script).arg(file).output().expect("python runs");
    let text = String::from_utf8_lossy(&out.stdout);
    match serde_json::from_str::<serde_json::Value>(text.trim()) {
        Ok(v) => {
            let bps = v["bars_per_sec"].as_f64().unwrap_or(f64::NAN);
            println!(
                "| {:<58} | {:>8.1}s | {:>12.0} | {:>7} |",
                "backtrader 1.9.78 (same bars, same rule; run only)",
                v["run_secs"].as_f64().unwrap_or(f64::NAN),
                bps,
                v["fills"]
            );
            println!("research backtest / backtrader: {:.1}x the bars per second", research_bars_per_sec / bps);
        }
        Err(_) => println!("backtrader: failed: {}", String::from_utf8_lossy(&out.stderr)),
    }
}

fn main() {
    let Some((dir, store_path)) = support::real_data_store("daily/us_stocks_1500_2013_2017.csv.gz") else { return };
    let c = config(dir.path());
    let t = Instant::now();
    let data = Arc::new(ReplayData::load(&store_path, &ReplayConfig::default()).unwrap());
    println!(
        "ReplayData: {} bars of {} instruments loaded in {:.1?}, {} bytes in memory, {:.1} bytes per bar",
        data.bars(),
        data.instruments().len(),
        t.elapsed(),
        data.bytes(),
        data.bytes() as f64 / data.bars() as f64
    );
    let (mut replay, mut research) = (Vec::new(), Vec::new());
    let mut fills = (0, 0);
    for _ in 0..3 {
        let feed = ReplayFeed::open(&store_path, &ReplayConfig::default()).unwrap();
        let mut live = c.clone();
        live.journal.resume = Some(false);
        let (_tx, rx) = std::sync::mpsc::channel();
        let mut host = Host::new(live, Box::new(feed), rx).unwrap();
        let t = Instant::now();
        let s = host.run(&RunOptions::default());
        replay.push(t.elapsed());
        fills.0 = s.status.broker.fills;
        let run = backtest(&data, &c, Window::default()).unwrap();
        research.push(run.wall);
        fills.1 = run.fills.len() as u64;
        assert_eq!(run.bars as usize, data.bars(), "every bar replayed");
    }
    let bars = data.bars() as f64;
    let (a, b) = (median(replay), median(research));
    println!("| {:<58} | {:>9} | {:>12} | {:>7} |", "sma-cross 10/30 on every stock (median of 3)", "wall", "bars/s", "fills");
    println!("| {:<58} | {:>9.2?} | {:>12.0} | {:>7} |", "replay path: ReplayFeed from sled, journal in sled", a, bars / a.as_secs_f64(), fills.0);
    println!("| {:<58} | {:>9.2?} | {:>12.0} | {:>7} |", "research backtest: ReplayData, journal in memory", b, bars / b.as_secs_f64(), fills.1);
    println!("research / replay wall: {:.2}x", b.as_secs_f64() / a.as_secs_f64());
    backtrader(&file, bars / b.as_secs_f64());

    let one = status_kb("VmRSS:");
    let n: usize = std::env::var("BENCH_SEQUENTIAL").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let t = Instant::now();
    let mut after_first = 0;
    for k in 0..n {
        backtest(&data, &c, Window::default()).unwrap();
        if k == 0 {
            after_first = status_kb("VmRSS:");
        }
    }
    let after = status_kb("VmRSS:");
    println!(
        "{n} sequential backtests in {:.1?}: RSS {} MiB after the first, {} MiB after all ({:+.1}%)",
        t.elapsed(),
        after_first / 1024,
        after / 1024,
        (after as f64 / after_first.max(1) as f64 - 1.0) * 100.0
    );

    let trials: u64 = std::env::var("BENCH_TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    let decls = vec![
        ParamDecl { name: "fast".into(), default: ParamInput::Integer(10), min: Some(1.0), max: Some(1000.0) },
        ParamDecl { name: "slow".into(), default: ParamInput::Integer(30), min: Some(2.0), max: Some(5000.0) },
    ];
    let spec = StudySpec {
        plugin: "sma-cross".into(),
        plugin_version: "0.1.0".into(),
        plugin_sha256: "bench".into(),
        space: Space::from_file(&decls, "[fast]\nmin = 2\nmax = 50\n[slow]\nmin = 10\nmax = 250\n", "bench").unwrap(),
        fixed: Default::default(),
        sampler: Sampler::Tpe,
        objective: "sharpe".into(),
        direction: Direction::Maximize,
        constraints: vec![Constraint::parse("trades>=30").unwrap()],
        seed: 1,
        shard: Shard::WHOLE,
        batch: 8,
        startup: 10,
        window: Window::default(),
        data: "us_stocks_1500".into(),
    };
    let peak_before = status_kb("VmHWM:");
    let mut study_config = c.clone();
    study_config.plugins[0].params.clear();
    let bench = Bench { data: &data, config: &study_config };
    let out = study::optimize(&bench, &spec, trials, &dir.path().join("study.jsonl"), false, 2, &|_, _| {}).unwrap();
    let secs = out.wall.as_secs_f64();
    let peak = status_kb("VmHWM:");
    println!(
        "TPE study, {trials} trials on 2 threads: {secs:.1} s ({:.2} trials/s; 1,000 trials would take {:.1} min); peak RSS {} MiB = {:.2}x the RSS after one backtest ({} MiB; the peak before the study was {} MiB)",
        trials as f64 / secs,
        1000.0 / (trials as f64 / secs) / 60.0,
        peak / 1024,
        peak as f64 / one.max(1) as f64,
        one / 1024,
        peak_before / 1024
    );
    let best = study::leaderboard(&spec, out.file.trials.values());
    if let Some(b) = best.first() {
        println!("best: trial {} {:?} sharpe {:.3}", b.trial, b.params, b.value.unwrap_or(f64::NAN));
    }
}
