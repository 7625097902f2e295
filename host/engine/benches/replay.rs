//! Paper-broker throughput in replay mode: 500 instruments x 2,000 daily
//! bars (1,000,000 bars) stored in sled, replayed through the whole host
//! (history, broker fills, the risk engine, the order tracker, plugins),
//! backtest mode, as fast as possible. Side by side, one run each in turn,
//! three rounds, medians:
//! 1. baseline: the replay with no plugin (feed, history, marking);
//! 2. sma-cross 3/8 on every instrument, trading often (limits raised so
//!    every order reaches the broker: this measures the path, not the limits).
//!
//! `cargo bench -p stratbox-engine --bench replay`

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use stratbox_engine::config::{FeedConfig, PluginSpec};
use stratbox_market::ReplayFeed;
use stratbox_engine::{Host, RunOptions, RunSummary};

const INSTRUMENTS: u32 = 500;
const DAYS: i64 = 2_000;

fn run(data_dir: &std::path::Path, plugins: Vec<PluginSpec>) -> (Duration, RunSummary) {
    let config = support::replay_host_config(data_dir, plugins);
    let FeedConfig::Replay(replay) = &config.feed else { unreachable!("a replay config") };
    let feed = ReplayFeed::open(&data_dir.join("market"), replay).unwrap();
    let (_tx, rx) = std::sync::mpsc::channel();
    let mut host = Host::new(config, Box::new(feed), rx).unwrap();
    let started = Instant::now();
    let summary = host.run(&RunOptions::default());
    (started.elapsed(), summary)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let (sma, dir) = support::replay_bench(INSTRUMENTS, DAYS);
    let (mut base, mut with) = (Vec::new(), Vec::new());
    let mut last = None;
    for _ in 0..3 {
        base.push(run(dir.path(), Vec::new()).0);
        let (t, s) = run(dir.path(), vec![sma.clone()]);
        with.push(t);
        last = Some(s);
    }
    let s = last.unwrap();
    let bars = s.status.stats.bars as f64;
    assert_eq!(bars, f64::from(INSTRUMENTS) * DAYS as f64, "every bar replayed");
    let (b, w) = (median(base), median(with));
    let orders = s.status.broker.orders as f64;
    let fills = s.status.broker.fills as f64;
    println!("| {:<46} | {:>10} | {:>14} | {:>14} | {:>14} |", "run (median of 3)", "wall", "bars/s", "orders/s", "fills/s");
    println!("| {:<46} | {:>10.2?} | {:>14.0} | {:>14} | {:>14} |", "replay, no plugin (baseline)", b, bars / b.as_secs_f64(), "-", "-");
    println!(
        "| {:<46} | {:>10.2?} | {:>14.0} | {:>14.0} | {:>14.0} |",
        "replay + sma-cross + risk + paper broker",
        w,
        bars / w.as_secs_f64(),
        orders / w.as_secs_f64(),
        fills / w.as_secs_f64()
    );
    println!(
        "{} orders, {} fills, {} refused by risk {:?}, {} illegal transitions; the trading path costs {:.2}x the bare replay",
        s.status.broker.orders,
        s.status.broker.fills,
        s.status.stats.path.risk_rejected,
        s.status.risk.stats.rejected,
        s.status.orders.illegal_transitions,
        w.as_secs_f64() / b.as_secs_f64()
    );
}
