//! Performance metrics of per-period simple returns.
//!
//! Conventions are empyrical-reloaded's (`../shared/reference/research-metrics.md`),
//! and a report states them ([`Conventions`]):
//! - `periods_per_year` periods a year (252 for daily returns);
//! - standard deviations are sample ones (ddof = 1), except beta's moments
//!   (population), as in the library;
//! - the risk-free rate is a constant *per period* (default 0);
//! - VaR is historical (a percentile with linear interpolation, numpy's
//!   default), CVaR the mean of the lowest `floor((n - 1) * cutoff) + 1` returns;
//! - skew and kurtosis are the biased (population) moments, kurtosis in
//!   excess of 3 (scipy's defaults; empyrical has neither).
//!
//! Undefined values (too few periods, no downside, no drawdown) are NaN, as
//! in the library, never a made-up zero.

use serde::Serialize;

/// The conventions a set of metrics was computed with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Conventions {
    pub periods_per_year: f64,
    /// Per period.
    pub risk_free: f64,
    /// Annual, turned into a per-period threshold as `(1 + t)^(1 / periods) - 1`.
    pub omega_threshold: f64,
}

impl Default for Conventions {
    fn default() -> Self {
        Self { periods_per_year: 252.0, risk_free: 0.0, omega_threshold: 0.0 }
    }
}

/// Metrics of one return series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Metrics {
    pub periods: usize,
    /// Compounded over the whole series.
    pub total_return: f64,
    /// CAGR: `prod(1 + r)^(periods_per_year / n) - 1`.
    pub annual_return: f64,
    pub annual_volatility: f64,
    pub sharpe: f64,
    pub sortino: f64,
    pub calmar: f64,
    pub omega: f64,
    /// Most negative `wealth / running peak - 1` (the start counts as a peak).
    pub max_drawdown: f64,
    /// Longest stretch, in periods, from a peak to the next new peak (or the end).
    pub max_drawdown_periods: usize,
    /// Share of periods below the running peak.
    pub time_under_water: f64,
    pub skew: f64,
    pub excess_kurtosis: f64,
    /// |95th percentile| / |5th percentile|.
    pub tail_ratio: f64,
    pub var_95: f64,
    pub cvar_95: f64,
    pub var_99: f64,
    pub cvar_99: f64,
    /// R^2 of cumulative log returns against time.
    pub stability: f64,
    pub conventions: Conventions,
}

/// Metrics of a series against a benchmark's over the same periods.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RelativeMetrics {
    /// `cov(r, b) / var(b)`, population moments.
    pub beta: f64,
    /// `(1 + mean(r - rf - beta (b - rf)))^periods - 1`.
    pub alpha: f64,
    /// Mean active return over its sample standard deviation (per period, not annualised).
    pub information_ratio: f64,
    /// Annual return in the benchmark's up periods over the benchmark's, and in its down periods.
    pub up_capture: f64,
    pub down_capture: f64,
}

pub(crate) fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// Sample standard deviation (ddof = 1).
pub(crate) fn std(x: &[f64]) -> f64 {
    let m = mean(x);
    (x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (x.len() as f64 - 1.0)).sqrt()
}

/// The `q` quantile (0..1) with linear interpolation between order statistics (numpy's default).
pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = (sorted.len() - 1) as f64 * q;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

/// Compounded growth of 1.
fn growth(r: &[f64]) -> f64 {
    r.iter().fold(1.0, |w, x| w * (1.0 + x))
}

fn annual_return(r: &[f64], periods_per_year: f64) -> f64 {
    if r.is_empty() {
        return f64::NAN;
    }
    growth(r).powf(periods_per_year / r.len() as f64) - 1.0
}

impl Metrics {
    /// The metrics of `returns` (per-period simple returns, oldest first, no NaN).
    pub fn of(returns: &[f64], c: Conventions) -> Self {
        let n = returns.len();
        let p = c.periods_per_year;
        let nan = f64::NAN;
        let enough = n >= 2;
        let excess: Vec<f64> = returns.iter().map(|r| r - c.risk_free).collect();
        let annual_return = annual_return(returns, p);
        let annual_volatility = if enough { std(returns) * p.sqrt() } else { nan };
        let sharpe = if enough { mean(&excess) / std(&excess) * p.sqrt() } else { nan };
        // The downside over every period, not only the negative ones.
        let downside = if n >= 1 { (excess.iter().map(|x| x.min(0.0).powi(2)).sum::<f64>() / n as f64).sqrt() * p.sqrt() } else { nan };
        let sortino = if enough { mean(&excess) * p / downside } else { nan };
        let (max_drawdown, max_drawdown_periods, time_under_water) = drawdowns(returns);
        let calmar = if max_drawdown < 0.0 { annual_return / max_drawdown.abs() } else { nan };
        let threshold = (1.0 + c.omega_threshold).powf(1.0 / p) - 1.0;
        let omega = if enough {
            let above: f64 = excess.iter().map(|x| x - threshold).filter(|x| *x > 0.0).sum();
            let below: f64 = -excess.iter().map(|x| x - threshold).filter(|x| *x < 0.0).sum::<f64>();
            if below > 0.0 { above / below } else { nan }
        } else {
            nan
        };
        let mut sorted = returns.to_vec();
        sorted.sort_by(f64::total_cmp);
        let (var_95, cvar_95) = var_cvar(&sorted, 0.05);
        let (var_99, cvar_99) = var_cvar(&sorted, 0.01);
        let tail_ratio = if n >= 1 { percentile(&sorted, 0.95).abs() / percentile(&sorted, 0.05).abs() } else { nan };
        let (skew, excess_kurtosis) = moments(returns);
        Metrics {
            periods: n,
            total_return: if n >= 1 { growth(returns) - 1.0 } else { nan },
            annual_return,
            annual_volatility,
            sharpe,
            sortino,
            calmar,
            omega,
            max_drawdown,
            max_drawdown_periods,
            time_under_water,
            skew,
            excess_kurtosis,
            tail_ratio,
            var_95,
            cvar_95,
            var_99,
            cvar_99,
            stability: stability(returns),
            conventions: c,
        }
    }
}

/// Historical VaR and CVaR of sorted returns at `cutoff` (0.05: 95%).
fn var_cvar(sorted: &[f64], cutoff: f64) -> (f64, f64) {
    if sorted.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let tail = ((sorted.len() - 1) as f64 * cutoff) as usize + 1;
    (percentile(sorted, cutoff), mean(&sorted[..tail]))
}

/// (max drawdown, longest drawdown in periods, share of periods under water),
/// on compounded wealth with the start as the first peak.
fn drawdowns(r: &[f64]) -> (f64, usize, f64) {
    if r.is_empty() {
        return (f64::NAN, 0, f64::NAN);
    }
    let (mut wealth, mut peak, mut worst) = (1.0f64, 1.0f64, 0.0f64);
    let (mut under, mut run, mut longest) = (0usize, 0usize, 0usize);
    for x in r {
        wealth *= 1.0 + x;
        peak = peak.max(wealth);
        let dd = wealth / peak - 1.0;
        worst = worst.min(dd);
        if dd < 0.0 {
            under += 1;
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    (worst, longest, under as f64 / r.len() as f64)
}

/// Biased skew and excess kurtosis (scipy's defaults).
pub(crate) fn moments(r: &[f64]) -> (f64, f64) {
    if r.len() < 2 {
        return (f64::NAN, f64::NAN);
    }
    let m = mean(r);
    let central = |k: i32| r.iter().map(|x| (x - m).powi(k)).sum::<f64>() / r.len() as f64;
    let m2 = central(2);
    (central(3) / m2.powf(1.5), central(4) / (m2 * m2) - 3.0)
}

/// R^2 of a least-squares line through cumulative log returns against time.
fn stability(r: &[f64]) -> f64 {
    if r.len() < 2 {
        return f64::NAN;
    }
    let mut acc = 0.0;
    let y: Vec<f64> = r
        .iter()
        .map(|x| {
            acc += x.ln_1p();
            acc
        })
        .collect();
    let n = y.len() as f64;
    let (mx, my) = ((n - 1.0) / 2.0, mean(&y));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (i, v) in y.iter().enumerate() {
        let (dx, dy) = (i as f64 - mx, v - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    let r = sxy / (sxx * syy).sqrt();
    r * r
}

impl RelativeMetrics {
    /// `returns` against `benchmark`, period by period (same length, aligned).
    pub fn of(returns: &[f64], benchmark: &[f64], c: Conventions) -> Self {
        assert_eq!(returns.len(), benchmark.len(), "a series and its benchmark cover the same periods");
        let nan = f64::NAN;
        if returns.len() < 2 {
            return Self { beta: nan, alpha: nan, information_ratio: nan, up_capture: nan, down_capture: nan };
        }
        let (mr, mb) = (mean(returns), mean(benchmark));
        let n = returns.len() as f64;
        let cov = returns.iter().zip(benchmark).map(|(r, b)| (r - mr) * (b - mb)).sum::<f64>() / n;
        let var = benchmark.iter().map(|b| (b - mb) * (b - mb)).sum::<f64>() / n;
        let beta = cov / var;
        let unexplained: Vec<f64> = returns.iter().zip(benchmark).map(|(r, b)| (r - c.risk_free) - beta * (b - c.risk_free)).collect();
        let alpha = (1.0 + mean(&unexplained)).powf(c.periods_per_year) - 1.0;
        let active: Vec<f64> = returns.iter().zip(benchmark).map(|(r, b)| r - b).collect();
        let information_ratio = mean(&active) / std(&active);
        let capture = |up: bool| {
            let (r, b): (Vec<f64>, Vec<f64>) = returns.iter().zip(benchmark).filter(|(_, b)| if up { **b > 0.0 } else { **b < 0.0 }).map(|(r, b)| (*r, *b)).unzip();
            annual_return(&r, c.periods_per_year) / annual_return(&b, c.periods_per_year)
        };
        Self { beta, alpha, information_ratio, up_capture: capture(true), down_capture: capture(false) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawdowns_are_measured_on_compounded_wealth_from_the_start() {
        // 1 -> 1.1 -> 0.99 -> 0.891 -> 1.1583 (new peak) -> 1.04247
        let r = [0.10, -0.10, -0.10, 0.30, -0.10];
        let (worst, longest, under) = drawdowns(&r);
        assert!((worst - (0.891 / 1.1 - 1.0)).abs() < 1e-12, "{worst}");
        assert_eq!(longest, 2);
        assert!((under - 3.0 / 5.0).abs() < 1e-12);
        let m = Metrics::of(&r, Conventions::default());
        assert!((m.total_return - (1.1 * 0.9 * 0.9 * 1.3 * 0.9 - 1.0)).abs() < 1e-12);
        assert!((m.calmar - m.annual_return / worst.abs()).abs() < 1e-12);
    }

    #[test]
    fn undefined_is_nan_not_zero() {
        let up = [0.01, 0.02, 0.01];
        let m = Metrics::of(&up, Conventions::default());
        assert!(m.calmar.is_nan() && m.omega.is_nan(), "no drawdown, no loss: {m:?}");
        assert_eq!(m.max_drawdown, 0.0);
        let one = Metrics::of(&[0.01], Conventions::default());
        assert!(one.sharpe.is_nan() && one.annual_volatility.is_nan());
        assert!(Metrics::of(&[], Conventions::default()).annual_return.is_nan());
    }
}
