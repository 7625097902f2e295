//! Research: what a quant measures a run by.
//!
//! [`metrics`] computes the performance and risk statistics of a series of
//! per-period simple returns (and against a benchmark), with the
//! conventions of empyrical-reloaded, which the tests check it against on
//! real return series; [`trades`] the statistics of closed round trips.
//! [`overfitting`] has the guards a search needs: the
//! probabilistic and deflated Sharpe ratios and the probability of backtest
//! overfitting by CSCV. The backtest, optimisation and walk-forward commands
//! build on them. [`backtest`] runs the host's own pipeline over data
//! loaded once; [`report`] and [`html`] write a run's report folder;
//! [`study`] searches a plugin's parameters ([`space`]) with many backtests in parallel;
//! [`walkforward`] chooses parameters on each training window and measures them on the next;
//! [`montecarlo`] resamples a run's returns or trades into many paths, and
//! [`var`] estimates VaR and CVaR four ways; [`detect`] scores an anomaly
//! detector's alarms against known events; [`stress`] runs a configuration
//! through named crash scenarios and synthetic shocks, judged against limits.

pub mod backtest;
pub mod dataset;
pub mod detect;
pub mod html;
pub mod metrics;
pub mod mlreport;
pub mod montecarlo;
pub mod report;
pub mod space;
pub mod stress;
pub mod study;
pub mod overfitting;
pub mod trades;
pub mod var;
pub mod walkforward;

pub use metrics::{Conventions, Metrics, RelativeMetrics};
pub use trades::{RoundTrip, TradeStats};
pub use overfitting::{DeflatedSharpe, Pbo, deflated_sharpe, expected_max_sharpe, pbo, probabilistic_sharpe};
pub use backtest::{Run, RunMetrics, Window, backtest, research_config, research_risk};

use stratbox_market::store::PriceSource;

/// `YYYY-MM-DD` of a market timestamp (UTC).
pub fn date(t: stratbox_market::Timestamp) -> String {
    stratbox_market::format_time(t)[..10].to_owned()
}

/// Midnight UTC of a `YYYY-MM-DD` date, as a market timestamp.
pub fn parse_date(s: &str) -> Result<stratbox_market::Timestamp, String> {
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|e| format!("date `{s}`: {e} (expected YYYY-MM-DD)"))?;
    Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc().timestamp() * stratbox_market::NANOS_PER_SEC)
}

/// `1d`, `4h`, `1h`, `15m`, `5m`, `1m` or a number of seconds.
pub fn parse_period(s: &str) -> Result<u32, String> {
    Ok(match s {
        "1d" | "d" | "daily" => 86_400,
        "4h" => 14_400,
        "1h" | "h" => 3_600,
        "15m" => 900,
        "5m" => 300,
        "1m" | "m" => 60,
        other => other.parse().ok().filter(|s| *s > 0).ok_or_else(|| format!("period `{other}`: expected 1d, 4h, 1h, 15m, 5m, 1m or seconds"))?,
    })
}

/// `trade`, `bid`, `ask` or `mid`.
pub fn parse_source(s: &str) -> Result<PriceSource, String> {
    match s {
        "trade" => Ok(PriceSource::Trade),
        "bid" => Ok(PriceSource::Bid),
        "ask" => Ok(PriceSource::Ask),
        "mid" => Ok(PriceSource::Mid),
        other => Err(format!("source `{other}`: expected trade, bid, ask or mid")),
    }
}
