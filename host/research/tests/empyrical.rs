//! The metrics against empyrical-reloaded on real return series: the
//! fixture (`fixtures/empyrical.json`, written by
//! `reference/empyrical_fixture.py`) holds the library's values for windows
//! of Lean's daily IBM and SPY closes; this test computes the same windows
//! from the same files and must match to 1e-9 relative. Ignored, with the
//! reason, when `../shared/data` is absent.

use std::collections::BTreeMap;
use std::path::PathBuf;

use stratbox_research::{Conventions, Metrics, RelativeMetrics, expected_max_sharpe, probabilistic_sharpe};

fn closes(symbol: &str) -> BTreeMap<String, f64> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/lean/equity_usa_daily").join(format!("{symbol}.csv"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0][..10].to_owned(), f[4].parse().unwrap())
        })
        .collect()
}

fn close_enough(ours: f64, theirs: f64) -> bool {
    (ours.is_nan() && theirs.is_nan()) || (ours - theirs).abs() <= 1e-9 * theirs.abs().max(1e-12)
}

#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data (absent here)")]
fn every_metric_matches_empyrical_reloaded_on_real_returns() {
    let fixture: serde_json::Value = serde_json::from_str(include_str!("fixtures/empyrical.json")).unwrap();
    let windows = fixture["windows"].as_array().unwrap();
    assert!(windows.len() >= 3);
    let mut compared = 0;
    for w in windows {
        let (name, first, last) = (w["name"].as_str().unwrap(), w["first"].as_str().unwrap(), w["last"].as_str().unwrap());
        let (series, benchmark) = (closes(w["series"].as_str().unwrap()), closes(w["benchmark"].as_str().unwrap()));
        let days: Vec<&String> = series.keys().filter(|d| benchmark.contains_key(*d) && d.as_str() >= first && d.as_str() <= last).collect();
        let r: Vec<f64> = days.windows(2).map(|d| series[d[1]] / series[d[0]] - 1.0).collect();
        let b: Vec<f64> = days.windows(2).map(|d| benchmark[d[1]] / benchmark[d[0]] - 1.0).collect();
        assert_eq!(r.len() as u64, w["periods"].as_u64().unwrap(), "{name}: the same periods");
        let m = Metrics::of(&r, Conventions::default());
        let rel = RelativeMetrics::of(&r, &b, Conventions::default());
        let ours = [
            ("total_return", m.total_return),
            ("annual_return", m.annual_return),
            ("annual_volatility", m.annual_volatility),
            ("sharpe", m.sharpe),
            ("sortino", m.sortino),
            ("calmar", m.calmar),
            ("omega", m.omega),
            ("max_drawdown", m.max_drawdown),
            ("tail_ratio", m.tail_ratio),
            ("var_95", m.var_95),
            ("cvar_95", m.cvar_95),
            ("var_99", m.var_99),
            ("cvar_99", m.cvar_99),
            ("stability", m.stability),
            ("skew", m.skew),
            ("excess_kurtosis", m.excess_kurtosis),
            ("alpha", rel.alpha),
            ("beta", rel.beta),
            ("information_ratio", rel.information_ratio),
            ("up_capture", rel.up_capture),
            ("down_capture", rel.down_capture),
            // The overfitting guards' formulas against scipy's normal distribution.
            ("psr_vs_zero", probabilistic_sharpe(m.sharpe / 252f64.sqrt(), 0.0, r.len(), m.skew, m.excess_kurtosis + 3.0)),
            ("expected_max_sharpe_100_trials", expected_max_sharpe(100, (m.annual_volatility / 252f64.sqrt()).powi(2))),
        ];
        let theirs = w["metrics"].as_object().unwrap();
        assert_eq!(theirs.len(), ours.len(), "{name}: every reference value is compared");
        for (metric, value) in ours {
            let reference = theirs[metric].as_f64().unwrap();
            assert!(close_enough(value, reference), "{name} {metric}: ours {value}, empyrical-reloaded {reference}");
            compared += 1;
        }
    }
    eprintln!("{compared} values matched the reference to 1e-9 relative ({})", fixture["reference"]);
}
