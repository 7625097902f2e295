//! The research runner: backtests through the host's own pipeline over data
//! loaded once, against real components built from source and a real sled
//! market store.

#[path = "../support/mod.rs"]
mod support;

use std::path::Path;
use std::sync::Arc;

use stratbox_engine::config::{HostConfig, ParamInput, PluginSpec};
use stratbox_market::store::{MarketStore, PriceSource, StoreConfig};
use stratbox_market::{Bar, NANOS_PER_SEC, ReplayConfig, ReplayData};
use stratbox_research::backtest::{ResearchError, daily_equity};
use stratbox_research::metrics::Conventions;
use stratbox_research::{Window, backtest, research_risk};

const DAY: i64 = 86_400 * NANOS_PER_SEC;

/// 20 instruments x 400 days of a seeded mean-reverting walk (crosses often).
fn store(path: &Path) {
    let mut store = MarketStore::open(path, StoreConfig::default()).unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for i in 0..20u32 {
        let id = store.instrument_id(&format!("S{i:02}")).unwrap();
        let base = 30.0 + f64::from(i);
        let mut price = base;
        for d in 0..400 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let shock = ((seed % 2001) as f64 - 1000.0) / 1000.0 * 0.03;
            price = (price * (1.0 + shock) + 0.05 * (base - price)).max(1.0);
            let p = (price * 100.0).round() / 100.0;
            let bar = Bar { instrument: id, start: 1_262_304_000 * NANOS_PER_SEC + d * DAY, period_secs: 86_400, open: p, high: p * 1.01, low: p * 0.99, close: p, volume: 1e5 };
            store.append_bar(&bar, PriceSource::Trade).unwrap();
        }
        store.commit().unwrap();
    }
    store.seal_all().unwrap();
    store.flush().unwrap();
}

fn config(data_dir: &Path, fast: i64, slow: i64) -> HostConfig {
    let spec = PluginSpec::new(support::component("examples/sma-cross")).param("fast", ParamInput::Integer(fast)).param("slow", ParamInput::Integer(slow));
    let mut c = HostConfig { data_dir: data_dir.to_owned(), plugins: vec![spec], ..HostConfig::default() };
    c.risk = research_risk(c.risk);
    c.risk.capital = 1e6;
    c
}

#[test]
fn a_backtest_is_the_hosts_pipeline_read_back_from_its_journal_and_repeats_exactly() {
    let dir = tempfile::tempdir().unwrap();
    store(&dir.path().join("market"));
    let data = Arc::new(ReplayData::load(&dir.path().join("market"), &ReplayConfig::default()).unwrap());
    assert_eq!(data.bars(), 20 * 400);
    let c = config(dir.path(), 3, 8);
    let run = backtest(&data, &c, Window::default()).unwrap();
    assert_eq!(run.bars, 8_000, "every bar replayed");
    assert!(run.faults.is_empty(), "{:?}", run.faults);
    assert!(run.fills.len() > 100, "sma-cross 3/8 trades often: {} fills", run.fills.len());
    // Nothing on disk: the journal and the plugin store were in memory.
    assert!(!dir.path().join("journal").exists() && !dir.path().join("plugin-store").exists());

    // The journal's equity is the capital plus every book's P&L: the last
    // point equals the ledger's realised + open P&L summed by symbol.
    let last = run.equity.last().unwrap().equity;
    let by_symbol: f64 = run.contribution.values().sum();
    assert!((last - (1e6 + by_symbol)).abs() < 1e-6 * 1e6, "equity {last} vs capital + contributions {}", 1e6 + by_symbol);
    // Closed round trips add up to what the fills realised: each trade's P&L
    // is its fills' cash flows, and a flat instrument's contribution is the sum of its trades.
    let flat: Vec<&String> = run.contribution.keys().filter(|s| run.fills.iter().rev().find(|f| &&f.symbol == s).is_some_and(|f| f.position == 0.0)).collect();
    assert!(!flat.is_empty());
    for s in flat {
        let trades: f64 = run.trades.iter().filter(|t| &t.symbol == s).map(|t| t.pnl).sum();
        assert!((trades - run.contribution[s]).abs() < 1e-6, "{s}: trades {trades} vs ledger {}", run.contribution[s]);
    }
    let days = daily_equity(&run.equity);
    assert_eq!(days.len(), 400, "one end-of-day point a day");
    let m = run.metrics(Conventions::default(), None);
    assert_eq!(m.returns.periods, 400);
    assert_eq!(m.trades.trades, run.trades.iter().filter(|t| t.closed.is_some()).count());
    assert!(m.time_in_market > 0.5 && m.exposure > 0.0 && m.annual_turnover > 0.0, "{m:?}");

    // The same inputs give the same run, fill for fill.
    let again = backtest(&data, &c, Window::default()).unwrap();
    assert_eq!(again.fills, run.fills);
    assert_eq!(again.equity, run.equity);

    // A window replays only its bars, from flat.
    let from = 1_262_304_000 * NANOS_PER_SEC + 100 * DAY;
    let part = backtest(&data, &c, Window { from: Some(from), to: Some(from + 100 * DAY) }).unwrap();
    assert_eq!(part.bars, 2_000);
    assert!(part.fills.iter().all(|f| f.time >= from && f.time < from + 101 * DAY));
}

#[test]
fn bad_research_input_is_named_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    store(&dir.path().join("market"));
    let data = Arc::new(ReplayData::load(&dir.path().join("market"), &ReplayConfig::default()).unwrap());
    // fast >= slow: sma-cross refuses to start; the run says so, naming the plugin's reason.
    let e = backtest(&data, &config(dir.path(), 30, 10), Window::default()).err().expect("refused");
    assert!(matches!(&e, ResearchError::PluginRefused(why) if why.contains("fast")), "{e}");
    // A window outside the data.
    let late = 1_262_304_000 * NANOS_PER_SEC + 1_000 * DAY;
    let e = backtest(&data, &config(dir.path(), 3, 8), Window { from: Some(late), to: None }).err().expect("empty");
    assert!(e.to_string().contains("holds no bars") && e.to_string().contains("2010-01-01"), "{e}");
    // A symbol the store does not hold.
    let e = ReplayData::load(&dir.path().join("market"), &ReplayConfig { symbols: vec!["NOPE".into()], ..ReplayConfig::default() }).err().expect("unknown");
    assert!(e.to_string().contains("NOPE"), "{e}");
}
