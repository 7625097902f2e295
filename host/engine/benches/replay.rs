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

use stratbox_engine::config::{ControlConfig, FeedConfig, HostConfig, Mode, ParamInput, PluginSpec};
use stratbox_market::{Bar, NANOS_PER_SEC, ReplayConfig, ReplayFeed};
use stratbox_trading::RiskConfig;
use stratbox_engine::{Host, RunOptions, RunSummary};
use stratbox_market::store::{MarketStore, PriceSource, StoreConfig};

const INSTRUMENTS: u32 = 500;
const DAYS: i64 = 2_000;

fn build_store(path: &std::path::Path) {
    let mut store = MarketStore::open(path, StoreConfig::default()).unwrap();
    let t0 = 1_262_304_000 * NANOS_PER_SEC; // 2010-01-01
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..INSTRUMENTS {
        let id = store.instrument_id(&format!("S{i:03}")).unwrap();
        let (base, mut price) = (20.0 + f64::from(i % 200), 20.0 + f64::from(i % 200));
        for d in 0..DAYS {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // A mean-reverting walk: crosses often, so the strategy trades.
            let shock = ((seed % 2001) as f64 - 1000.0) / 1000.0 * 0.02;
            price = (price * (1.0 + shock) + 0.05 * (base - price)).max(1.0);
            let p = (price * 100.0).round() / 100.0;
            let bar = Bar { instrument: id, start: t0 + d * 86_400 * NANOS_PER_SEC, period_secs: 86_400, open: p, high: p * 1.01, low: p * 0.99, close: p, volume: 1e5 };
            store.append_bar(&bar, PriceSource::Trade).unwrap();
        }
        store.commit().unwrap();
    }
    store.seal_all().unwrap();
    store.flush().unwrap();
}

fn run(data_dir: &std::path::Path, plugins: Vec<PluginSpec>) -> (Duration, RunSummary) {
    let replay = ReplayConfig { period_secs: 86_400, ..ReplayConfig::default() };
    let risk = RiskConfig {
        max_order_notional: 1e12,
        max_position_notional: 1e12,
        max_gross_exposure: 1e15,
        max_net_exposure: 1e15,
        max_concentration: 1e6,
        max_open_orders: 100_000,
        orders_per_sec_per_plugin: 1_000_000,
        orders_per_sec: 1_000_000,
        capital: 1e9,
        max_drawdown: 1.0,
        ..RiskConfig::default()
    };
    let config = HostConfig {
        mode: Mode::Backtest,
        data_dir: data_dir.to_owned(),
        feed: FeedConfig::Replay(replay.clone()),
        pace_ms: 0,
        status_secs: 0,
        risk,
        control: ControlConfig { enabled: false, ..Default::default() },
        plugins,
        ..HostConfig::default()
    };
    let feed = ReplayFeed::open(&data_dir.join("market"), &replay).unwrap();
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
    let sma = PluginSpec::new(support::component("examples/sma-cross")).param("fast", ParamInput::Integer(3)).param("slow", ParamInput::Integer(8));
    let dir = tempfile::tempdir().unwrap();
    let built = Instant::now();
    build_store(&dir.path().join("market"));
    println!("store: {INSTRUMENTS} instruments x {DAYS} daily bars built in {:.1?}", built.elapsed());
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
