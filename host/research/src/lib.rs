//! Research: what a quant measures a run by.
//!
//! [`metrics`] computes the performance and risk statistics of a series of
//! per-period simple returns (and against a benchmark), with the
//! conventions of empyrical-reloaded, which the tests check it against on
//! real return series. The backtest, optimisation and walk-forward commands
//! build on it (issue 12; not yet here).

pub mod metrics;

pub use metrics::{Conventions, Metrics, RelativeMetrics};
