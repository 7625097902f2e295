//! Value at risk and conditional VaR (expected shortfall) of a return series,
//! four ways.
//!
//! Both are **losses**, positive fractions of equity over the horizon: VaR at
//! 95% is the loss exceeded with probability 5%, CVaR the mean loss beyond it.
//! (metrics.json's `var_95` is empyrical's signed return quantile; this
//! table's `var` at 95% and one period is its negation.)
//!
//! - **historical**: the empirical quantile (linear interpolation, numpy's
//!   default) of the horizon's returns, overlapping compounded windows when
//!   the horizon is longer than a period; CVaR the mean of the returns at or
//!   below it, as in [`crate::metrics`].
//! - **normal**: `mu_h + z sigma_h` with `mu_h = h mu` and `sigma_h = sqrt(h) sigma`
//!   (sample standard deviation); CVaR `-(mu_h - sigma_h phi(z) / (1 - c))`.
//! - **Cornish-Fisher**: the normal quantile corrected for skew `S` and excess
//!   kurtosis `K` (population moments, scaled to the horizon as for a sum of
//!   iid periods: `S / sqrt(h)`, `K / h`):
//!   `z + (z^2 - 1) S / 6 + (z^3 - 3 z) K / 24 - (2 z^3 - 5 z) S^2 / 36`;
//!   CVaR the mean of that quantile function over the tail (numerically, 2,000
//!   midpoints).
//! - **Monte Carlo**: the historical estimator on horizon returns drawn with
//!   the stationary bootstrap ([`crate::montecarlo`]), so multi-period VaR keeps
//!   the series' short-range dependence.

use serde::Serialize;
use statrs::distribution::{Continuous, ContinuousCDF, Normal};

use crate::metrics::{mean, moments, percentile, std};
use crate::montecarlo::{Bootstrap, horizon_returns};

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct VarEstimate {
    pub method: &'static str,
    /// 0.95 or 0.99.
    pub confidence: f64,
    /// Periods.
    pub horizon: usize,
    pub var: f64,
    pub cvar: f64,
}

/// Settings of the Monte Carlo estimator.
#[derive(Debug, Clone, Copy)]
pub struct McVar {
    pub draws: usize,
    pub bootstrap: Bootstrap,
    pub seed: u64,
}

impl Default for McVar {
    fn default() -> Self {
        Self { draws: 100_000, bootstrap: Bootstrap::Stationary { mean_block: 5.0 }, seed: 0 }
    }
}

pub const CONFIDENCES: [f64; 2] = [0.95, 0.99];

fn std_normal() -> Normal {
    Normal::standard()
}

/// Historical VaR and CVaR of `returns` (any order) at `confidence`.
pub fn historical(returns: &[f64], confidence: f64) -> (f64, f64) {
    if returns.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mut s = returns.to_vec();
    s.sort_by(f64::total_cmp);
    let cutoff = 1.0 - confidence;
    let q = percentile(&s, cutoff);
    let tail = ((s.len() - 1) as f64 * cutoff) as usize + 1;
    (-q, -mean(&s[..tail]))
}

/// Normal VaR and CVaR from a per-period mean and standard deviation.
pub fn normal(mu: f64, sigma: f64, horizon: usize, confidence: f64) -> (f64, f64) {
    let h = horizon as f64;
    let (m, s) = (mu * h, sigma * h.sqrt());
    let n = std_normal();
    let z = n.inverse_cdf(1.0 - confidence);
    (-(m + z * s), -(m - s * n.pdf(z) / (1.0 - confidence)))
}

/// The Cornish-Fisher quantile at probability `u` of a variable with the given skew and excess kurtosis.
fn cf_z(u: f64, skew: f64, kurt: f64) -> f64 {
    let z = std_normal().inverse_cdf(u);
    z + (z * z - 1.0) * skew / 6.0 + (z.powi(3) - 3.0 * z) * kurt / 24.0 - (2.0 * z.powi(3) - 5.0 * z) * skew * skew / 36.0
}

/// Cornish-Fisher VaR and CVaR from per-period moments.
pub fn cornish_fisher(mu: f64, sigma: f64, skew: f64, kurt: f64, horizon: usize, confidence: f64) -> (f64, f64) {
    let h = horizon as f64;
    let (m, s, sk, ku) = (mu * h, sigma * h.sqrt(), skew / h.sqrt(), kurt / h);
    let tail = 1.0 - confidence;
    let var = -(m + cf_z(tail, sk, ku) * s);
    const STEPS: usize = 2_000;
    let mean_z = (0..STEPS).map(|k| cf_z(tail * (k as f64 + 0.5) / STEPS as f64, sk, ku)).sum::<f64>() / STEPS as f64;
    (var, -(m + mean_z * s))
}

/// Overlapping compounded `horizon`-period returns.
fn windows(returns: &[f64], horizon: usize) -> Vec<f64> {
    if horizon <= 1 {
        return returns.to_vec();
    }
    returns.windows(horizon).map(|w| w.iter().fold(1.0, |g, r| g * (1.0 + r)) - 1.0).collect()
}

/// The four estimates at 95% and 99% over `horizon` periods.
pub fn var_table(returns: &[f64], horizon: usize, mc: McVar) -> Vec<VarEstimate> {
    let horizon = horizon.max(1);
    let (mu, sigma) = (mean(returns), std(returns));
    let (skew, kurt) = moments(returns);
    let hist = windows(returns, horizon);
    let simulated = horizon_returns(returns, horizon, mc.draws, mc.bootstrap, mc.seed);
    let mut out = Vec::new();
    for c in CONFIDENCES {
        let row = |method, (var, cvar): (f64, f64)| VarEstimate { method, confidence: c, horizon, var, cvar };
        out.push(row("historical", historical(&hist, c)));
        out.push(row("normal", normal(mu, sigma, horizon, c)));
        out.push(row("cornish-fisher", cornish_fisher(mu, sigma, skew, kurt, horizon, c)));
        out.push(row("monte-carlo", historical(&simulated, c)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_var_is_the_closed_form() {
        // z(0.05) = -1.6448536, phi(z) / 0.05 = 2.0627128.
        let (v, c) = normal(0.0, 0.01, 1, 0.95);
        assert!((v - 0.016448536).abs() < 1e-8, "{v}");
        assert!((c - 0.020627128).abs() < 1e-8, "{c}");
        // Square-root-of-time: 4 periods double sigma.
        let (v4, _) = normal(0.0, 0.01, 4, 0.95);
        assert!((v4 - 2.0 * v).abs() < 1e-12);
    }

    #[test]
    fn cornish_fisher_without_skew_or_kurtosis_is_normal_and_fat_tails_raise_it() {
        for c in CONFIDENCES {
            let (nv, nc) = normal(0.001, 0.02, 1, c);
            let (v, cv) = cornish_fisher(0.001, 0.02, 0.0, 0.0, 1, c);
            assert!((v - nv).abs() < 1e-12);
            // The tail mean by midpoints converges to the closed form.
            assert!((cv - nc).abs() < 2e-4 * nc, "{cv} vs {nc}");
            let (fat, _) = cornish_fisher(0.001, 0.02, -0.5, 5.0, 1, c);
            assert!(fat > v);
        }
    }

    #[test]
    fn historical_var_matches_the_metrics_module_sign_flipped() {
        let r: Vec<f64> = (0..1000).map(|i| ((i * 7919 % 1000) as f64 - 480.0) / 20_000.0).collect();
        let m = crate::Metrics::of(&r, crate::Conventions::default());
        let (v, c) = historical(&r, 0.95);
        assert_eq!(v, -m.var_95);
        assert_eq!(c, -m.cvar_95);
        let (v, c) = historical(&r, 0.99);
        assert_eq!(v, -m.var_99);
        assert_eq!(c, -m.cvar_99);
    }

    #[test]
    fn monte_carlo_var_of_one_period_converges_to_historical() {
        let r: Vec<f64> = (0..500).map(|i| ((i * 389 % 500) as f64 - 240.0) / 10_000.0).collect();
        let t = var_table(&r, 1, McVar { draws: 200_000, bootstrap: Bootstrap::Iid, seed: 3 });
        for c in CONFIDENCES {
            let get = |m| t.iter().find(|e| e.method == m && e.confidence == c).unwrap();
            let (h, mc) = (get("historical"), get("monte-carlo"));
            assert!((h.var - mc.var).abs() < 0.002, "{c}: {} vs {}", h.var, mc.var);
            assert!((h.cvar - mc.cvar).abs() < 0.002, "{c}: {} vs {}", h.cvar, mc.cvar);
        }
    }
}
