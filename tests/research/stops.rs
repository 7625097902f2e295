//! The `stops` plugin against its independent reference
//! (`plugins/stops/reference/stops_reference.py`, standard-library Python) on
//! real daily bars: the same trades, entry and exit, under every rule set the
//! reference defines. Every exit in these runs is the stop policy's: the
//! strategy (`tests/plugins/periodic-entry`) only enters.

use std::path::Path;
use std::sync::Arc;

use stratbox_engine::config::{HostConfig, ParamInput, PluginSpec};
use stratbox_market::store::{ImportOptions, MarketStore, StoreConfig, import_file};
use stratbox_market::{NANOS_PER_SEC, ReplayConfig, ReplayData};
use stratbox_research::{Window, backtest, research_risk};
use stratbox_trading::PaperConfig;

use super::support;

fn config(data_dir: &Path, wait: i64, rules: &serde_json::Map<String, serde_json::Value>) -> HostConfig {
    let entries = PluginSpec::new(support::component("tests/plugins/periodic-entry")).param("wait", ParamInput::Integer(wait));
    let mut stops = PluginSpec::new(support::component("plugins/stops"));
    for (name, v) in rules {
        // JSON keeps Python's ints and floats apart (10 against 4.0).
        let value = match v.as_str() {
            Some(text) => ParamInput::Text(text.to_owned()),
            None => v.as_i64().map_or_else(|| ParamInput::Number(v.as_f64().expect("numeric parameters")), ParamInput::Integer),
        };
        stops = stops.param(name, value);
    }
    stops.protects = vec!["periodic-entry".into()];
    let mut c = HostConfig { data_dir: data_dir.to_owned(), plugins: vec![entries, stops], ..HostConfig::default() };
    // The reference's broker: no spread, slippage, commission, latency or financing.
    c.broker = PaperConfig { spread_bps: 0.0, commission_bps: 0.0, slippage_bps: 0.0, latency_ms: 0, financing_bps_per_day: 0.0, max_volume_fraction: 0.0 };
    c.risk = research_risk(c.risk);
    c.risk.capital = 1e7;
    c
}

#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data (real market data)")]
fn every_stop_rule_exits_on_the_bar_and_at_the_price_the_reference_does_on_real_data() {
    let data_root = support::repo().join("../shared/data");
    let script = support::repo().join("plugins/stops/reference/stops_reference.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("reference.json");
    let ran = std::process::Command::new(&python).arg(&script).arg(&data_root).arg(&out).output();
    let Ok(ran) = ran else {
        eprintln!("skipped: no `{python}` to run the reference (set PYTHON)");
        return;
    };
    assert!(ran.status.success(), "the reference failed: {}", String::from_utf8_lossy(&ran.stderr));
    let reference: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();

    // Each series the reference read in a store of its own (an hourly file also
    // makes daily bars, which would meet the daily file's), its times as UTC as it takes them.
    let mut data = std::collections::HashMap::new();
    for (series, spec) in reference["series"].as_object().unwrap() {
        let market = dir.path().join(series).join("market");
        let mut store = MarketStore::open(&market, StoreConfig::default()).unwrap();
        let mut expected = 0;
        for (symbol, bars) in spec["symbols"].as_object().unwrap() {
            let file = data_root.join(format!("lean/{}/{}.csv", spec["folder"].as_str().unwrap(), symbol.to_lowercase()));
            let options = ImportOptions { zone: Some(chrono_tz::UTC), symbol: Some(symbol.clone()), ..ImportOptions::default() };
            import_file(&mut store, &file, &options).unwrap();
            expected += bars.as_u64().unwrap() as usize;
        }
        drop(store);
        let period = spec["period"].as_u64().unwrap() as u32;
        let loaded = Arc::new(ReplayData::load(&market, &ReplayConfig { period_secs: period, ..ReplayConfig::default() }).unwrap());
        assert_eq!(loaded.bars(), expected, "{series}: the bars the reference replays");
        data.insert(series.clone(), loaded);
    }
    let wait = reference["wait"].as_i64().unwrap();
    let secs = |t: i64| t / NANOS_PER_SEC;
    let mut compared = 0;
    for (name, set) in reference["rule_sets"].as_object().unwrap() {
        let series = &data[set["series"].as_str().unwrap()];
        let run = backtest(series, &config(dir.path(), wait, set["params"].as_object().unwrap()), Window::default()).unwrap();
        assert!(run.faults.is_empty(), "{name}: {:?}", run.faults);
        assert!(run.refused.is_empty(), "{name}: orders refused {:?}", run.refused);
        for (symbol, expected) in set["trades"].as_object().unwrap() {
            let expected = expected.as_array().unwrap();
            let got: Vec<_> = run.trades.iter().filter(|t| &t.symbol == symbol).collect();
            for (k, (g, e)) in got.iter().zip(expected).enumerate() {
                let at = format!("{name} {symbol} trade {k} (opened {})", e["opened"]);
                assert_eq!(i64::from(g.direction), e["direction"].as_i64().unwrap(), "{at}: direction");
                assert_eq!(secs(g.opened), e["opened"].as_i64().unwrap(), "{at}: entry bar");
                assert_eq!(g.entry_price, e["entry"].as_f64().unwrap(), "{at}: entry price");
                assert_eq!(g.closed.map(secs), e["closed"].as_i64(), "{at}: exit bar ({})", e["how"]);
                match (g.exit_price, e["exit"].as_f64()) {
                    (Some(a), Some(b)) => assert!((a - b).abs() <= 1e-9 * b.abs(), "{at}: exit price {a} vs {b} ({})", e["how"]),
                    (a, b) => assert_eq!(a, b, "{at}: exit price"),
                }
                compared += 1;
            }
            assert_eq!(got.len(), expected.len(), "{name} {symbol}: trades");
        }
    }
    assert!(compared > 10_000, "{compared} trades compared");
    println!("{compared} trades matched the reference");
}
