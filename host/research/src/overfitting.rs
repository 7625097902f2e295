//! Overfitting guards: how much a backtest's best result says once the
//! search that found it is taken into account.
//!
//! - The probabilistic Sharpe ratio (Bailey and López de Prado 2012): the
//!   probability that the true Sharpe ratio exceeds a benchmark, given the
//!   estimate, the sample length and the returns' skew and kurtosis.
//! - The deflated Sharpe ratio (2014): the PSR against the Sharpe ratio the
//!   best of N independent trials would reach by luck, from the number of
//!   trials actually run and the variance of their Sharpe ratios.
//! - The probability of backtest overfitting by combinatorially symmetric
//!   cross-validation (Bailey, Borwein, López de Prado and Zhu 2015): split
//!   the trials' return series into S blocks; for every choice of S/2 blocks
//!   as in-sample, take the best trial in sample and its relative rank
//!   out of sample; PBO is the share of splits where it ranks below the
//!   median (logit < 0).
//!
//! Sharpe ratios here are per period (not annualised), as the formulas take them.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal};

/// The Euler-Mascheroni constant.
const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

fn normal() -> Normal {
    Normal::standard()
}

/// P(true Sharpe > `benchmark`) for a per-period Sharpe `sharpe` estimated
/// over `periods` returns with `skew` and (raw, not excess) `kurtosis`.
pub fn probabilistic_sharpe(sharpe: f64, benchmark: f64, periods: usize, skew: f64, kurtosis: f64) -> f64 {
    if periods < 2 {
        return f64::NAN;
    }
    let spread = (1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe * sharpe).sqrt();
    normal().cdf((sharpe - benchmark) * ((periods - 1) as f64).sqrt() / spread)
}

/// The expected maximum per-period Sharpe of `trials` independent trials
/// whose Sharpe ratios have variance `variance`: the deflated Sharpe's benchmark.
pub fn expected_max_sharpe(trials: usize, variance: f64) -> f64 {
    if trials < 2 {
        return 0.0;
    }
    let n = trials as f64;
    let z = |p: f64| normal().inverse_cdf(p);
    variance.sqrt() * ((1.0 - EULER_GAMMA) * z(1.0 - 1.0 / n) + EULER_GAMMA * z(1.0 - 1.0 / (n * std::f64::consts::E)))
}

/// The best trial's Sharpe, deflated by the search that found it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DeflatedSharpe {
    /// The best trial's per-period Sharpe.
    pub sharpe: f64,
    /// What the best of this many trials would reach by luck.
    pub benchmark: f64,
    pub trials: usize,
    /// The probability that the best trial's true Sharpe beats that benchmark.
    pub dsr: f64,
}

use crate::metrics::{mean, moments, std};

/// Per-period Sharpe (sample standard deviation).
pub fn sharpe(r: &[f64]) -> f64 {
    mean(r) / std(r)
}

/// The deflated Sharpe ratio of `best` (the chosen trial's returns) given
/// the per-period Sharpe ratios of every trial run (`trial_sharpes`, the best included).
pub fn deflated_sharpe(best: &[f64], trial_sharpes: &[f64]) -> DeflatedSharpe {
    let sr = sharpe(best);
    let trials = trial_sharpes.len();
    let variance = if trials >= 2 { std(trial_sharpes).powi(2) } else { 0.0 };
    let benchmark = expected_max_sharpe(trials, variance);
    let (skew, excess_kurtosis) = moments(best);
    DeflatedSharpe { sharpe: sr, benchmark, trials, dsr: probabilistic_sharpe(sr, benchmark, best.len(), skew, excess_kurtosis + 3.0) }
}

/// The probability of backtest overfitting, and what it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pbo {
    /// Share of splits where the in-sample best ranks below the median out of sample.
    pub pbo: f64,
    pub partitions: usize,
    /// One logit of the out-of-sample relative rank per split (C(S, S/2) of them).
    pub logits: Vec<f64>,
}

/// PBO by CSCV over `trials` (one return series per trial, all the same
/// length) cut into `partitions` contiguous blocks (even, at least 2, at
/// most the series length; at most 16, so the splits stay few: C(16, 8) = 12,870).
pub fn pbo(trials: &[Vec<f64>], partitions: usize) -> Result<Pbo, String> {
    let n = trials.len();
    let t = trials.first().map_or(0, Vec::len);
    if n < 2 {
        return Err(format!("PBO needs at least 2 trials (got {n})"));
    }
    if let Some((k, _)) = trials.iter().enumerate().find(|(_, r)| r.len() != t) {
        return Err(format!("trial {k} has {} returns, trial 0 has {t}: every trial covers the same periods", trials[k].len()));
    }
    if partitions < 2 || partitions % 2 == 1 || partitions > 16 {
        return Err(format!("PBO needs an even number of partitions from 2 to 16 (got {partitions})"));
    }
    if t < 2 * partitions {
        return Err(format!("{t} periods are too few for {partitions} partitions (at least 2 periods each)"));
    }
    let block = |b: usize| (b * t / partitions)..((b + 1) * t / partitions);
    let mut logits = Vec::new();
    // Every subset of blocks with half of them in sample, as a bit mask.
    for mask in 0u32..(1 << partitions) {
        if mask.count_ones() as usize != partitions / 2 {
            continue;
        }
        let split = |r: &[f64], inside: bool| -> Vec<f64> { (0..partitions).filter(|b| (mask >> b & 1 == 1) == inside).flat_map(|b| r[block(b)].iter().copied()).collect() };
        let is: Vec<f64> = trials.iter().map(|r| sharpe(&split(r, true))).collect();
        let oos: Vec<f64> = trials.iter().map(|r| sharpe(&split(r, false))).collect();
        // The in-sample best (the first of equals), then its rank out of sample (1: worst).
        let best = (0..n).fold(0, |b, k| if is[k] > is[b] { k } else { b });
        let rank = 1 + oos.iter().filter(|s| **s < oos[best]).count();
        let omega = rank as f64 / (n as f64 + 1.0);
        logits.push((omega / (1.0 - omega)).ln());
    }
    let below = logits.iter().filter(|l| **l < 0.0).count();
    Ok(Pbo { pbo: below as f64 / logits.len() as f64, partitions, logits })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probabilistic_sharpe_is_a_half_at_its_own_estimate_and_rises_with_length() {
        assert!((probabilistic_sharpe(0.1, 0.1, 250, 0.0, 3.0) - 0.5).abs() < 1e-12);
        let short = probabilistic_sharpe(0.1, 0.0, 100, 0.0, 3.0);
        let long = probabilistic_sharpe(0.1, 0.0, 1_000, 0.0, 3.0);
        assert!(short < long && long < 1.0, "{short} {long}");
        // Negative skew and fat tails make the same estimate less convincing.
        assert!(probabilistic_sharpe(0.1, 0.0, 250, -2.0, 10.0) < probabilistic_sharpe(0.1, 0.0, 250, 0.0, 3.0));
    }

    #[test]
    fn more_trials_raise_the_bar_the_best_must_clear() {
        let v = 0.01;
        let (ten, thousand) = (expected_max_sharpe(10, v), expected_max_sharpe(1_000, v));
        assert!(0.0 < ten && ten < thousand, "{ten} {thousand}");
        assert_eq!(expected_max_sharpe(1, v), 0.0, "one trial: no search to deflate for");
    }

    /// Trial k's returns: a drift, plus a zig-zag every trial shares.
    fn skilled(k: usize, t: usize) -> Vec<f64> {
        (0..t).map(|i| 0.0005 * k as f64 + if i % 2 == 0 { 0.01 } else { -0.01 }).collect()
    }

    #[test]
    fn a_real_edge_is_not_overfit_and_luck_in_one_block_is() {
        let t = 800;
        // Skill: the best trial in sample is the best out of sample in every split.
        let trials: Vec<Vec<f64>> = (0..10).map(|k| skilled(k, t)).collect();
        let p = pbo(&trials, 8).unwrap();
        assert_eq!((p.logits.len(), p.pbo), (70, 0.0), "C(8, 4) splits, none overfit");
        // Luck: trial k earns only in block k; in sample the best is lucky there, out of sample it earns nothing.
        let lucky: Vec<Vec<f64>> = (0..8).map(|k| (0..t).map(|i| if i / 100 == k { 0.02 } else { 0.0 } + if i % 2 == 0 { 0.001 } else { -0.001 }).collect()).collect();
        let p = pbo(&lucky, 8).unwrap();
        assert_eq!(p.pbo, 1.0, "{:?}", p.logits);
        // Bad input is named.
        assert!(pbo(&trials, 7).unwrap_err().contains("even"));
        assert!(pbo(&trials[..1], 8).unwrap_err().contains("at least 2 trials"));
        let mut ragged = trials.clone();
        ragged[3].pop();
        assert!(pbo(&ragged, 8).unwrap_err().contains("trial 3"));
    }

    #[test]
    fn a_lucky_best_of_many_deflates_below_a_single_trial() {
        let best = skilled(3, 500);
        let alone = deflated_sharpe(&best, &[sharpe(&best)]);
        let searched: Vec<f64> = (0..200).map(|k| sharpe(&skilled(k % 7, 500)) * (1.0 + 0.01 * k as f64)).collect();
        let deflated = deflated_sharpe(&best, &searched);
        assert_eq!(alone.benchmark, 0.0);
        assert!(deflated.benchmark > 0.0 && deflated.dsr < alone.dsr, "{alone:?} {deflated:?}");
    }
}
