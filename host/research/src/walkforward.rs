//! Walk-forward analysis: in each window, a study on the training part picks
//! the parameters, and a run with them is measured on the test part that
//! follows. The test parts, stitched, are the out-of-sample record.
//!
//! Windows (rolling, or `anchored` at the data's start) advance by `step`:
//!
//! ```text
//! |----------- train -----------|purge|embargo|---- test ----|
//!                               ^ training data ends `purge` before this point
//!                                             ^ the test starts `embargo` after it
//! ```
//!
//! `purge` drops the last bars of the training part (the ones whose outcome
//! would lie in the test part); `embargo` leaves a gap before the test part
//! starts. A test run starts at its window's training start with the chosen
//! parameters, so indicators are warm when the test part begins (a 200-bar
//! average over a 6-month test would otherwise never trade); only its
//! returns inside the test part count, and nothing of the test part is seen
//! by the study that chose the parameters.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Months, TimeDelta, Utc};
use serde::Serialize;

use stratbox_engine::config::ParamInput;
use stratbox_market::{NANOS_PER_SEC, Timestamp};

use crate::backtest::{Window, backtest, daily_equity};
use crate::metrics::{Conventions, Metrics};
use crate::study::{Bench, StudyError, StudySpec, leaderboard, optimize};

/// A span of calendar time: `3y`, `6m`, `2w`, `5d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Span {
    Months(u32),
    Days(u32),
}

impl Span {
    pub fn parse(s: &str) -> Result<Span, String> {
        let s = s.trim();
        let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
        let n: u32 = n.parse().map_err(|_| format!("`{s}`: expected a number and a unit (y, m, w or d), e.g. 3y or 6m"))?;
        let span = match unit {
            "y" => Span::Months(n * 12),
            "m" => Span::Months(n),
            "w" => Span::Days(n * 7),
            "d" => Span::Days(n),
            _ => return Err(format!("`{s}`: the unit is y, m, w or d")),
        };
        if n == 0 && !matches!(span, Span::Days(_)) {
            return Err(format!("`{s}`: must be longer than zero"));
        }
        Ok(span)
    }

    pub fn is_zero(&self) -> bool {
        matches!(self, Span::Days(0) | Span::Months(0))
    }

    /// `t` moved forward by this span (calendar months; month ends clamp).
    pub fn after(&self, t: Timestamp) -> Timestamp {
        let d = DateTime::<Utc>::from_timestamp_nanos(t);
        let moved = match self {
            Span::Months(m) => d.checked_add_months(Months::new(*m)).unwrap_or(d),
            Span::Days(n) => d + TimeDelta::days(i64::from(*n)),
        };
        moved.timestamp_nanos_opt().unwrap_or(i64::MAX)
    }

    pub fn before(&self, t: Timestamp) -> Timestamp {
        let d = DateTime::<Utc>::from_timestamp_nanos(t);
        let moved = match self {
            Span::Months(m) => d.checked_sub_months(Months::new(*m)).unwrap_or(d),
            Span::Days(n) => d - TimeDelta::days(i64::from(*n)),
        };
        moved.timestamp_nanos_opt().unwrap_or(i64::MIN)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Plan {
    pub train: Span,
    pub test: Span,
    pub step: Span,
    pub anchored: bool,
    pub purge: Span,
    pub embargo: Span,
}

/// One window's parts, `[from, to)` each.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Split {
    pub train: Window,
    pub test: Window,
}

/// The windows of `plan` over `[start, end)`: every one whose test part
/// starts before `end` (the last test part may be cut short by the data's end).
pub fn splits(plan: &Plan, start: Timestamp, end: Timestamp) -> Vec<Split> {
    let mut out = Vec::new();
    let mut from = start;
    for _ in 0..10_000 {
        let train_end = plan.train.after(from);
        let train_from = if plan.anchored { start } else { from };
        let train_to = plan.purge.before(train_end);
        let test_from = plan.embargo.after(train_end);
        let test_to = plan.test.after(test_from).min(end);
        if test_from >= end || train_to <= train_from {
            break;
        }
        out.push(Split { train: Window { from: Some(train_from), to: Some(train_to) }, test: Window { from: Some(test_from), to: Some(test_to) } });
        from = plan.step.after(from);
    }
    out
}

/// One window's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct WindowResult {
    pub index: usize,
    pub split: Split,
    pub train_dates: (String, String),
    pub test_dates: (String, String),
    pub study_file: PathBuf,
    /// The best feasible trial's parameters (none: no trial was feasible, the window is flat).
    pub params: Option<BTreeMap<String, ParamInput>>,
    pub in_sample: Option<Metrics>,
    pub out_of_sample: Metrics,
    /// Out-of-sample daily returns with their day's end time.
    pub returns: Vec<(Timestamp, f64)>,
    pub trials: usize,
}

/// How steady the chosen parameters are across windows.
#[derive(Debug, Clone, Serialize)]
pub struct Stability {
    pub param: String,
    pub values: Vec<Option<f64>>,
    pub mean: f64,
    pub std: f64,
    /// std / |mean|.
    pub variation: f64,
    /// Mean |change| between consecutive windows over the searched range's width.
    pub mean_step_of_range: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct WalkForward {
    pub plan: Plan,
    pub windows: Vec<WindowResult>,
    /// The stitched out-of-sample record.
    pub out_of_sample: Metrics,
    /// Mean in-sample annualised return of the chosen trials.
    pub in_sample_annual_return: f64,
    /// Walk-forward efficiency: annualised out-of-sample return over the mean annualised in-sample return.
    pub efficiency: f64,
    pub stability: Vec<Stability>,
    pub wall_secs: f64,
}

/// Runs the walk-forward: `spec` is the study template (its window is
/// replaced by each training part), `trials` per window, study files in `dir`.
pub fn walk_forward(bench: &Bench, spec: &StudySpec, plan: &Plan, trials: u64, dir: &Path, resume: bool, jobs: usize, progress: &(dyn Fn(usize, usize, u64, u64) + Sync)) -> Result<WalkForward, StudyError> {
    let started = std::time::Instant::now();
    let (start, end) = bench.data.span().ok_or_else(|| StudyError::Merge("no bars loaded".into()))?;
    let start = spec.window.from.unwrap_or(start).max(start);
    let end = spec.window.to.unwrap_or(end).min(end);
    let windows = splits(plan, start, end);
    if windows.is_empty() {
        return Err(StudyError::Walk(format!(
            "no window fits: {} to {} is shorter than the training part plus purge and embargo",
            crate::date(start),
            crate::date(end)
        )));
    }
    std::fs::create_dir_all(dir).map_err(|source| StudyError::Io { path: dir.into(), source })?;
    let c = Conventions::default();
    let mut results = Vec::new();
    let n = windows.len();
    for (k, split) in windows.into_iter().enumerate() {
        let mut s = spec.clone();
        s.window = split.train;
        let path = dir.join(format!("window-{:02}.jsonl", k + 1));
        let outcome = optimize(bench, &s, trials, &path, resume, jobs, &|d, t| progress(k, n, d, t))?;
        let board = leaderboard(&s, outcome.file.trials.values());
        let best = board.first();
        let params = best.map(|t| t.params.clone());
        let in_sample = best.map(|t| Metrics::of(&t.returns, c));
        // The test run: warm from the training start, measured on the test part.
        let returns = match &params {
            Some(p) => {
                let mut config = bench.config.clone();
                config.plugins[0].params.extend(p.clone());
                let run = backtest(bench.data, &config, Window { from: split.train.from, to: split.test.to })?;
                let test_from = split.test.from.unwrap_or(start);
                let mut prev = run.capital;
                let mut out = Vec::new();
                for e in daily_equity(&run.equity) {
                    // A day belongs to the test part when its bar opened in it.
                    if e.time - 1 >= test_from {
                        out.push((e.time, if prev != 0.0 { e.equity / prev - 1.0 } else { 0.0 }));
                    }
                    prev = e.equity;
                }
                out
            }
            // No feasible parameters: stay out of the market for the window.
            None => test_days(bench, split.test),
        };
        let r: Vec<f64> = returns.iter().map(|x| x.1).collect();
        let show = |w: Window| (w.from.map(crate::date).unwrap_or_default(), w.to.map(|t| crate::date(t - 1)).unwrap_or_default());
        results.push(WindowResult {
            index: k + 1,
            split,
            train_dates: show(split.train),
            test_dates: show(split.test),
            study_file: path,
            params,
            in_sample,
            out_of_sample: Metrics::of(&r, c),
            returns,
            trials: outcome.file.trials.len(),
        });
    }
    let stitched: Vec<f64> = results.iter().flat_map(|w| w.returns.iter().map(|x| x.1)).collect();
    let out_of_sample = Metrics::of(&stitched, c);
    let is: Vec<f64> = results.iter().filter_map(|w| w.in_sample.as_ref().map(|m| m.annual_return)).collect();
    let in_sample_annual_return = if is.is_empty() { f64::NAN } else { is.iter().sum::<f64>() / is.len() as f64 };
    let stability = spec
        .space
        .dims
        .iter()
        .enumerate()
        .map(|(d, (name, _))| {
            let values: Vec<Option<f64>> = results
                .iter()
                .map(|w| {
                    w.params.as_ref().and_then(|p| match p.get(name)? {
                        ParamInput::Integer(i) => Some(*i as f64),
                        ParamInput::Number(x) => Some(*x),
                        _ => None,
                    })
                })
                .collect();
            let v: Vec<f64> = values.iter().flatten().copied().collect();
            let mean = if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 };
            let std = if v.len() < 2 { f64::NAN } else { (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt() };
            let width = {
                let (lo, hi) = (spec.space.decode(d, spec.space.internal_range(d).0), spec.space.decode(d, spec.space.internal_range(d).1));
                match (lo, hi) {
                    (ParamInput::Integer(a), ParamInput::Integer(b)) => (b - a) as f64,
                    (ParamInput::Number(a), ParamInput::Number(b)) => b - a,
                    _ => f64::NAN,
                }
            };
            let steps: Vec<f64> = v.windows(2).map(|p| (p[1] - p[0]).abs()).collect();
            let mean_step = if steps.is_empty() { f64::NAN } else { steps.iter().sum::<f64>() / steps.len() as f64 };
            Stability { param: name.clone(), values, mean, std, variation: std / mean.abs(), mean_step_of_range: mean_step / width }
        })
        .collect();
    Ok(WalkForward {
        plan: *plan,
        efficiency: out_of_sample.annual_return / in_sample_annual_return,
        out_of_sample,
        in_sample_annual_return,
        windows: results,
        stability,
        wall_secs: started.elapsed().as_secs_f64(),
    })
}

/// The days of a test part, all flat (the window's strategy held nothing).
fn test_days(bench: &Bench, w: Window) -> Vec<(Timestamp, f64)> {
    let day = 86_400 * NANOS_PER_SEC;
    let period = i64::from(bench.data.period_secs()) * NANOS_PER_SEC;
    let mut days: Vec<Timestamp> = Vec::new();
    // Cross-sections by close time; the window is by bar start; a day is
    // stamped with its last close, as daily_equity stamps it.
    for t in bench.data.times() {
        let opened = t - period;
        if w.from.is_some_and(|f| opened < f) || w.to.is_some_and(|e| opened >= e) {
            continue;
        }
        match days.last_mut() {
            Some(last) if (*last - 1).div_euclid(day) == (t - 1).div_euclid(day) => *last = *t,
            _ => days.push(*t),
        }
    }
    days.into_iter().map(|t| (t, 0.0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_nanos_opt().unwrap()
    }

    #[test]
    fn windows_roll_or_anchor_by_calendar_months() {
        let plan = Plan { train: Span::parse("3y").unwrap(), test: Span::parse("6m").unwrap(), step: Span::parse("6m").unwrap(), anchored: false, purge: Span::Days(0), embargo: Span::Days(0) };
        let s = splits(&plan, t("2013-01-01"), t("2018-01-01"));
        assert_eq!(s.len(), 4);
        assert_eq!((s[0].train.from, s[0].train.to, s[0].test.to), (Some(t("2013-01-01")), Some(t("2016-01-01")), Some(t("2016-07-01"))));
        assert_eq!((s[3].train.from, s[3].test.from, s[3].test.to), (Some(t("2014-07-01")), Some(t("2017-07-01")), Some(t("2018-01-01"))));
        let anchored = splits(&Plan { anchored: true, purge: Span::Days(5), embargo: Span::Days(2), ..plan }, t("2013-01-01"), t("2018-01-01"));
        assert!(anchored.iter().all(|w| w.train.from == Some(t("2013-01-01"))));
        assert_eq!((anchored[1].train.to, anchored[1].test.from), (Some(t("2016-06-26")), Some(t("2016-07-03"))));
        assert_eq!(Span::parse("2w"), Ok(Span::Days(14)));
        assert!(Span::parse("3q").unwrap_err().contains("unit"));
        assert!(Span::parse("y").unwrap_err().contains("number"));
    }
}
