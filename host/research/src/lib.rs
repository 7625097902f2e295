//! Research: what a quant measures a run by.
//!
//! [`metrics`] computes the performance and risk statistics of a series of
//! per-period simple returns (and against a benchmark), with the
//! conventions of empyrical-reloaded, which the tests check it against on
//! real return series; [`trades`] the statistics of closed round trips.
//! [`overfitting`] has the guards a search needs: the
//! probabilistic and deflated Sharpe ratios and the probability of backtest
//! overfitting by CSCV. The backtest, optimisation and walk-forward commands
//! build on them (issue 12; not yet here).

pub mod metrics;
pub mod overfitting;
pub mod trades;

pub use metrics::{Conventions, Metrics, RelativeMetrics};
pub use trades::{RoundTrip, TradeStats};
pub use overfitting::{DeflatedSharpe, Pbo, deflated_sharpe, expected_max_sharpe, pbo, probabilistic_sharpe};
