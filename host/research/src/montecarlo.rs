//! Monte Carlo by resampling a run: its per-period returns or its closed
//! trades' P&L, drawn with replacement into many paths of the same (or a
//! chosen) length, each path's outcome measured as a backtest's would be.
//!
//! - **iid bootstrap**: every draw independent and uniform; it keeps the
//!   distribution of returns and loses their order (volatility clusters,
//!   autocorrelation).
//! - **stationary bootstrap** (Politis and Romano, 1994): blocks of
//!   consecutive returns, each starting anywhere, with lengths geometric of
//!   mean `L` (at every step the block goes on with probability `1 - 1/L`),
//!   wrapping round the series' end. It keeps dependence up to about `L`
//!   periods, and each drawn element is still uniform over the series, so
//!   the mean of a path's sum is that of the iid bootstrap.
//!
//! Paths are seeded from `(seed, path index)` alone: the same seed gives the
//! same paths whatever the number of threads.
//!
//! Returns paths compound `(1 + r)`; trade paths add P&L in currency to the
//! starting capital. Either way equity at or below zero ends the path (no
//! account trades on after ruin): it stays at zero.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;
use serde::Serialize;

/// What is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resample {
    Returns,
    Trades,
}

/// How it is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Bootstrap {
    Iid,
    /// Stationary bootstrap with this mean block length (>= 1; 1 is iid).
    Stationary { mean_block: f64 },
}

impl Bootstrap {
    pub fn parse(method: &str, mean_block: f64) -> Result<Self, McError> {
        match method {
            "iid" => Ok(Self::Iid),
            "block" | "stationary" => {
                if !(mean_block.is_finite() && mean_block >= 1.0) {
                    return Err(McError::Invalid(format!("block length {mean_block}: must be a number of periods >= 1")));
                }
                Ok(Self::Stationary { mean_block })
            }
            other => Err(McError::Invalid(format!("method `{other}`: expected iid or block"))),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum McError {
    #[error("nothing to resample: {0}")]
    Empty(String),
    #[error("{0}")]
    Invalid(String),
}

/// A study's settings.
#[derive(Debug, Clone, Serialize)]
pub struct McConfig {
    pub paths: usize,
    /// Draws per path (periods or trades).
    pub horizon: usize,
    pub bootstrap: Bootstrap,
    pub seed: u64,
    /// Ruin: equity at or below this fraction of the start, at any point.
    pub ruin: f64,
    /// Goal: equity at or above this multiple of the start.
    pub goal: f64,
    /// Draws a year, for CAGR: 252 for daily returns; for trades, the run's
    /// trades a year.
    pub draws_per_year: f64,
}

impl McConfig {
    fn check(&self) -> Result<(), McError> {
        if self.paths == 0 || self.horizon == 0 {
            return Err(McError::Invalid(format!("{} paths of {} draws: both must be at least 1", self.paths, self.horizon)));
        }
        if !(self.ruin.is_finite() && (0.0..1.0).contains(&self.ruin)) {
            return Err(McError::Invalid(format!("ruin {}: a fraction of the starting equity in [0, 1)", self.ruin)));
        }
        if !(self.goal.is_finite() && self.goal > 1.0) {
            return Err(McError::Invalid(format!("goal {}: a multiple of the starting equity above 1", self.goal)));
        }
        if !(self.draws_per_year.is_finite() && self.draws_per_year > 0.0) {
            return Err(McError::Invalid(format!("draws per year {}: must be positive", self.draws_per_year)));
        }
        Ok(())
    }
}

/// One path's outcome.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathOutcome {
    /// Final equity over the start.
    pub final_multiple: f64,
    pub cagr: f64,
    /// Most negative `equity / running peak - 1` (the start is a peak).
    pub max_drawdown: f64,
    /// Longest stretch in draws from a peak to the next new peak (or the end).
    pub max_drawdown_draws: usize,
    pub ruined: bool,
    /// Equity touched the goal at some point (before any ruin).
    pub touched_goal: bool,
}

/// Summary of one outcome over all paths.
#[derive(Debug, Clone, Serialize)]
pub struct Distribution {
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub max: f64,
    /// (percentile in percent, value), linear interpolation between order statistics.
    pub percentiles: Vec<(f64, f64)>,
}

pub const PERCENTILES: [f64; 9] = [1.0, 5.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0];

impl Distribution {
    pub fn of(mut v: Vec<f64>) -> Self {
        v.sort_by(f64::total_cmp);
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let std = if v.len() > 1 { (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() } else { f64::NAN };
        let percentiles = PERCENTILES.iter().map(|&p| (p, crate::metrics::percentile(&v, p / 100.0))).collect();
        Self { mean, std, min: v[0], max: v[v.len() - 1], percentiles }
    }

    /// The value at percentile `p` (one of [`PERCENTILES`]).
    pub fn at(&self, p: f64) -> f64 {
        self.percentiles.iter().find(|(q, _)| *q == p).map_or(f64::NAN, |x| x.1)
    }
}

/// Equity percentiles through time (a fan chart), at evenly spaced draws.
#[derive(Debug, Clone, Serialize)]
pub struct Fan {
    /// The draw each column is taken after (1-based; the last is the horizon).
    pub at: Vec<usize>,
    /// Per percentile of [`FAN`], equity over the start at each `at`.
    pub bands: Vec<(f64, Vec<f64>)>,
}

pub const FAN: [f64; 5] = [5.0, 25.0, 50.0, 75.0, 95.0];
const FAN_POINTS: usize = 100;

/// A Monte Carlo study's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct McReport {
    pub config: McConfig,
    pub resample: Resample,
    /// Size of the sample drawn from.
    pub sample: usize,
    pub final_multiple: Distribution,
    pub cagr: Distribution,
    pub max_drawdown: Distribution,
    pub max_drawdown_draws: Distribution,
    pub p_ruin: f64,
    /// Final equity at or above the goal.
    pub p_goal: f64,
    /// The goal touched at any point before ruin.
    pub p_goal_touched: f64,
    pub fan: Fan,
    /// Final multiples and max drawdowns of every path (for histograms), in path order.
    #[serde(skip)]
    pub outcomes: Vec<PathOutcome>,
    pub wall_secs: f64,
}

/// A path's generator: seeded by `(seed, path)` only.
fn path_rng(seed: u64, path: usize) -> Xoshiro256PlusPlus {
    // splitmix64 of the pair, so neighbouring seeds and paths share nothing.
    let mut z = seed ^ (path as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    Xoshiro256PlusPlus::seed_from_u64(z ^ (z >> 31))
}

/// Draws `horizon` indices into a sample of `n` with `bootstrap`, calling `f` with each.
#[inline]
fn draw(rng: &mut Xoshiro256PlusPlus, n: usize, horizon: usize, bootstrap: Bootstrap, mut f: impl FnMut(usize, usize) -> bool) {
    match bootstrap {
        Bootstrap::Iid => {
            for step in 0..horizon {
                if !f(step, rng.random_range(0..n)) {
                    return;
                }
            }
        }
        Bootstrap::Stationary { mean_block } => {
            let p_new = 1.0 / mean_block;
            let mut i = rng.random_range(0..n);
            for step in 0..horizon {
                if step > 0 {
                    i = if rng.random::<f64>() < p_new { rng.random_range(0..n) } else { (i + 1) % n };
                }
                if !f(step, i) {
                    return;
                }
            }
        }
    }
}

/// Runs one path; `fan_at` are the steps (0-based) whose equity is recorded into `fan`.
fn one_path(sample: &[f64], resample: Resample, c: &McConfig, path: usize, fan_at: &[usize], fan: &mut [f64]) -> PathOutcome {
    let mut rng = path_rng(c.seed, path);
    let (mut equity, mut peak, mut worst) = (1.0f64, 1.0f64, 0.0f64);
    let (mut run, mut longest) = (0usize, 0usize);
    let (mut ruined, mut touched) = (false, false);
    let mut next_fan = 0;
    let mut steps = 0;
    draw(&mut rng, sample.len(), c.horizon, c.bootstrap, |step, i| {
        equity = match resample {
            Resample::Returns => equity * (1.0 + sample[i]),
            // Trade P&L is in units of the starting capital.
            Resample::Trades => equity + sample[i],
        };
        if equity <= 0.0 {
            equity = 0.0;
        }
        if equity > peak {
            peak = equity;
            run = 0;
        } else if equity < peak {
            run += 1;
            longest = longest.max(run);
        }
        worst = worst.min(equity / peak - 1.0);
        if equity <= c.ruin {
            ruined = true;
        }
        if !ruined && equity >= c.goal {
            touched = true;
        }
        while next_fan < fan_at.len() && fan_at[next_fan] == step {
            fan[next_fan] = equity;
            next_fan += 1;
        }
        steps = step + 1;
        equity > 0.0
    });
    // A path ended by ruin keeps zero equity to its horizon.
    if steps < c.horizon {
        longest = longest.max(run + (c.horizon - steps));
        for x in &mut fan[next_fan..] {
            *x = 0.0;
        }
    }
    let years = c.horizon as f64 / c.draws_per_year;
    PathOutcome {
        final_multiple: equity,
        cagr: equity.powf(1.0 / years) - 1.0,
        max_drawdown: worst,
        max_drawdown_draws: longest,
        ruined,
        touched_goal: touched,
    }
}

/// Resamples `sample` into `c.paths` paths, in parallel (rayon's pool).
///
/// For [`Resample::Returns`] the sample is per-period simple returns; for
/// [`Resample::Trades`] each trade's P&L over the starting capital.
pub fn simulate(sample: &[f64], resample: Resample, c: &McConfig) -> Result<McReport, McError> {
    c.check()?;
    if sample.is_empty() {
        return Err(McError::Empty(match resample {
            Resample::Returns => "the run has no returns (no bar closed in its window)".into(),
            Resample::Trades => "the run closed no trade".into(),
        }));
    }
    if let Some((k, x)) = sample.iter().enumerate().find(|(_, x)| !x.is_finite() || (resample == Resample::Returns && **x < -1.0)) {
        return Err(McError::Invalid(format!("sample value {k} is {x}: returns must be finite and at least -100%")));
    }
    let start = std::time::Instant::now();
    let points = c.horizon.min(FAN_POINTS);
    // Evenly spaced, ending on the horizon.
    let fan_at: Vec<usize> = (1..=points).map(|k| (k * c.horizon).div_ceil(points) - 1).collect();
    let mut fan_values = vec![0.0f64; c.paths * points];
    let mut outcomes = vec![PathOutcome { final_multiple: 0.0, cagr: 0.0, max_drawdown: 0.0, max_drawdown_draws: 0, ruined: false, touched_goal: false }; c.paths];
    // Chunks of paths per task: few enough tasks to keep rayon's overhead small.
    const CHUNK: usize = 64;
    outcomes.par_chunks_mut(CHUNK).zip(fan_values.par_chunks_mut(CHUNK * points)).enumerate().for_each(|(chunk, (out, fan))| {
        for (k, o) in out.iter_mut().enumerate() {
            *o = one_path(sample, resample, c, chunk * CHUNK + k, &fan_at, &mut fan[k * points..(k + 1) * points]);
        }
    });
    let n = c.paths as f64;
    // Per column, sorted once for all the bands.
    let columns: Vec<Vec<f64>> = (0..points)
        .into_par_iter()
        .map(|j| {
            let mut v: Vec<f64> = (0..c.paths).map(|i| fan_values[i * points + j]).collect();
            v.sort_unstable_by(f64::total_cmp);
            FAN.iter().map(|p| crate::metrics::percentile(&v, p / 100.0)).collect()
        })
        .collect();
    let bands = FAN.iter().enumerate().map(|(k, &p)| (p, columns.iter().map(|col| col[k]).collect())).collect();
    Ok(McReport {
        config: c.clone(),
        resample,
        sample: sample.len(),
        final_multiple: Distribution::of(outcomes.iter().map(|o| o.final_multiple).collect()),
        cagr: Distribution::of(outcomes.iter().map(|o| o.cagr).collect()),
        max_drawdown: Distribution::of(outcomes.iter().map(|o| o.max_drawdown).collect()),
        max_drawdown_draws: Distribution::of(outcomes.iter().map(|o| o.max_drawdown_draws as f64).collect()),
        p_ruin: outcomes.iter().filter(|o| o.ruined).count() as f64 / n,
        p_goal: outcomes.iter().filter(|o| o.final_multiple >= c.goal).count() as f64 / n,
        p_goal_touched: outcomes.iter().filter(|o| o.touched_goal).count() as f64 / n,
        fan: Fan { at: fan_at.iter().map(|s| s + 1).collect(), bands },
        outcomes,
        wall_secs: start.elapsed().as_secs_f64(),
    })
}

/// `horizon`-period compounded returns drawn by `bootstrap`, `draws` of them
/// (Monte Carlo VaR's sample), seeded as the paths are.
pub fn horizon_returns(returns: &[f64], horizon: usize, draws: usize, bootstrap: Bootstrap, seed: u64) -> Vec<f64> {
    if returns.is_empty() || horizon == 0 {
        return Vec::new();
    }
    (0..draws)
        .into_par_iter()
        .map(|path| {
            let mut rng = path_rng(seed, path);
            let mut g = 1.0;
            draw(&mut rng, returns.len(), horizon, bootstrap, |_, i| {
                g *= 1.0 + returns[i];
                true
            });
            g - 1.0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(paths: usize, horizon: usize, bootstrap: Bootstrap) -> McConfig {
        McConfig { paths, horizon, bootstrap, seed: 7, ruin: 0.5, goal: 1.5, draws_per_year: 252.0 }
    }

    #[test]
    fn a_constant_sample_gives_one_deterministic_path() {
        let r = simulate(&[0.01; 10], Resample::Returns, &config(100, 252, Bootstrap::Iid)).unwrap();
        let g = 1.01f64.powi(252);
        assert!((r.final_multiple.min - g).abs() < 1e-12 && (r.final_multiple.max - g).abs() < 1e-12);
        assert!((r.cagr.mean - (g - 1.0)).abs() < 1e-12);
        assert_eq!(r.max_drawdown.max, 0.0);
        assert_eq!(r.p_ruin, 0.0);
        assert_eq!(r.p_goal, 1.0);
        assert!((r.fan.bands[2].1.last().unwrap() - g).abs() < 1e-12);
        assert_eq!(*r.fan.at.last().unwrap(), 252);
    }

    #[test]
    fn ruin_ends_a_path_at_zero_and_counts_its_remaining_draws_under_water() {
        // Every draw loses everything.
        let r = simulate(&[-1.0], Resample::Returns, &config(10, 20, Bootstrap::Iid)).unwrap();
        assert_eq!(r.p_ruin, 1.0);
        assert_eq!(r.final_multiple.max, 0.0);
        assert_eq!(r.max_drawdown.min, -1.0);
        assert_eq!(r.max_drawdown_draws.min, 20.0);
        assert_eq!(r.cagr.max, -1.0);
        // Trades: 60% of capital lost per trade, ruin (0.5) after the first, zero after the second.
        let r = simulate(&[-0.6], Resample::Trades, &config(10, 5, Bootstrap::Iid)).unwrap();
        assert_eq!(r.p_ruin, 1.0);
        assert_eq!(r.final_multiple.max, 0.0);
    }

    #[test]
    fn bad_settings_and_samples_are_named() {
        let c = config(10, 10, Bootstrap::Iid);
        assert!(matches!(simulate(&[], Resample::Trades, &c), Err(McError::Empty(m)) if m.contains("no trade")));
        assert!(matches!(simulate(&[0.1, f64::NAN], Resample::Returns, &c), Err(McError::Invalid(m)) if m.contains("sample value 1")));
        assert!(matches!(simulate(&[-1.5], Resample::Returns, &c), Err(McError::Invalid(_))));
        assert!(simulate(&[0.1], Resample::Returns, &McConfig { paths: 0, ..c.clone() }).is_err());
        assert!(simulate(&[0.1], Resample::Returns, &McConfig { goal: 0.9, ..c.clone() }).is_err());
        assert!(Bootstrap::parse("block", 0.5).is_err());
        assert!(Bootstrap::parse("jackknife", 5.0).is_err());
    }

    #[test]
    fn paths_depend_on_the_seed_alone_not_on_the_threads() {
        let sample: Vec<f64> = (0..500).map(|i| ((i * 37 % 101) as f64 - 50.0) / 2000.0).collect();
        let c = config(2_000, 300, Bootstrap::Stationary { mean_block: 10.0 });
        let a = simulate(&sample, Resample::Returns, &c).unwrap();
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let b = one.install(|| simulate(&sample, Resample::Returns, &c).unwrap());
        assert_eq!(a.outcomes, b.outcomes);
        let d = simulate(&sample, Resample::Returns, &McConfig { seed: 8, ..c }).unwrap();
        assert_ne!(a.outcomes, d.outcomes);
    }
}
