//! A parameter study: many backtests of one plugin over the same data
//! (loaded once, shared read-only by every trial), its parameters drawn by a
//! sampler from a [`Space`], each trial streamed to a study file (JSON
//! lines) as it finishes.
//!
//! Determinism: trials are numbered; trial `i`'s parameters depend only on
//! the seed, `i` and (for TPE) the trials of the batches before its own, and
//! a backtest is deterministic, so the same seed gives the same study
//! whatever the number of threads. TPE asks a batch of trials (`batch`,
//! default 8) from the same state, the way Optuna's parallel studies do.
//!
//! - Resume: the study file's header must match the study asked for (plugin
//!   SHA-256, space, sampler, objective, constraints, seed, window, data);
//!   the trials it holds are not run again, and TPE's state is rebuilt from
//!   them, so a resumed study equals an uninterrupted one.
//! - Shards: shard K of N runs the trials `i` with `i % N == K - 1`. For grid
//!   and random search the merged shards are exactly the unsharded study.
//!   TPE is adaptive: each shard is an independent sub-study (its sampler
//!   sees only its own trials, seeded by the seed and K), and the merge says so.
//! - TPE is the `tpe` crate's (one estimator per parameter, the Optuna
//!   default's independent sampling); its first `startup` trials are random.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rand::{RngExt, SeedableRng};
use rand::rngs::StdRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use stratbox_engine::config::{HostConfig, ParamInput};
use stratbox_market::ReplayData;

use crate::backtest::{Run, RunMetrics, Window, backtest};
use crate::metrics::Conventions;
use crate::space::Space;

#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    #[error("--objective `{name}`: not a metric (one of: {known})")]
    UnknownObjective { name: String, known: String },
    #[error("--constraint `{text}`: {reason}")]
    Constraint { text: String, reason: String },
    #[error("--shard `{0}`: expected K/N with 1 <= K <= N")]
    Shard(String),
    #[error("{path} exists: --resume continues it, or name another study file")]
    Exists { path: PathBuf },
    #[error("{path}, line {line}: {reason}")]
    Corrupt { path: PathBuf, line: usize, reason: String },
    #[error("{path} is another study's: its {field} differs ({theirs} there, {ours} here)")]
    Mismatch { path: PathBuf, field: String, theirs: String, ours: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the configuration has no plugin to tune")]
    NoPlugin,
    #[error("cannot merge: {0}")]
    Merge(String),
    #[error("walk-forward: {0}")]
    Walk(String),
    #[error(transparent)]
    Research(#[from] crate::backtest::ResearchError),
    #[error(transparent)]
    Space(#[from] crate::space::SpaceError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sampler {
    Tpe,
    Random,
    Grid,
}

impl std::str::FromStr for Sampler {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tpe" => Ok(Sampler::Tpe),
            "random" => Ok(Sampler::Random),
            "grid" => Ok(Sampler::Grid),
            other => Err(format!("`{other}`: expected tpe, random or grid")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Maximize,
    Minimize,
}

/// The metrics a study can optimise or constrain, by name, from a run's.
/// Drawdown, VaR and CVaR are stated as the size of the loss (0.25 is 25%
/// down), so `max_drawdown<=0.25` reads as it is meant; everything else
/// has metrics.json's value and sign. `trades` is the number of closed round trips.
pub fn metric_values(m: &RunMetrics) -> BTreeMap<String, f64> {
    let mut out = flatten(m);
    // NaN (a metric undefined for this run, e.g. the Sharpe of a flat line)
    // is left out: a missing objective fails the trial, a missing constrained
    // metric breaks the constraint. JSON has no infinity: a profit factor
    // without losses is stored as the largest finite number.
    out.retain(|_, v| !v.is_nan());
    for v in out.values_mut() {
        *v = v.clamp(f64::MIN, f64::MAX);
    }
    out
}

fn flatten(m: &RunMetrics) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Ok(serde_json::Value::Object(top)) = serde_json::to_value(m) else { return out };
    for (k, v) in top {
        match v {
            serde_json::Value::Number(n) => {
                out.insert(k, n.as_f64().unwrap_or(f64::NAN));
            }
            serde_json::Value::Null => {
                // serde_json writes NaN and infinities as null.
                out.insert(k, f64::NAN);
            }
            serde_json::Value::Object(inner) if k == "trades" || k == "benchmark" => {
                for (ik, iv) in inner {
                    let name = if k == "trades" && ik == "trades" { "trades".into() } else { ik };
                    match iv {
                        serde_json::Value::Number(n) => {
                            out.insert(name, n.as_f64().unwrap_or(f64::NAN));
                        }
                        serde_json::Value::Null => {
                            out.insert(name, f64::NAN);
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    for loss in ["max_drawdown", "var_95", "cvar_95", "var_99", "cvar_99"] {
        if let Some(v) = out.get_mut(loss) {
            *v = v.abs();
        }
    }
    out
}

/// The direction a metric is better in.
pub fn default_direction(metric: &str) -> Direction {
    match metric {
        "max_drawdown" | "max_drawdown_periods" | "time_under_water" | "annual_volatility" | "var_95" | "cvar_95" | "var_99" | "cvar_99" | "fees"
        | "losses" | "refused_orders" | "down_capture" | "average_holding_secs" | "annual_turnover" => Direction::Minimize,
        _ => Direction::Maximize,
    }
}

/// The names [`metric_values`] gives (for error messages).
pub fn metric_names() -> Vec<String> {
    flatten(&RunMetrics::of_nothing()).into_keys().collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = "<")]
    Lt,
}

/// A bound a trial's metric must keep, e.g. `trades>=30`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Constraint {
    pub metric: String,
    pub op: Op,
    pub value: f64,
}

impl Constraint {
    pub fn parse(text: &str) -> Result<Constraint, StudyError> {
        let err = |reason: String| StudyError::Constraint { text: text.into(), reason };
        let (at, op, len) = [(">=", Op::Ge), ("<=", Op::Le), (">", Op::Gt), ("<", Op::Lt)]
            .iter()
            .find_map(|(s, op)| text.find(s).map(|at| (at, *op, s.len())))
            .ok_or_else(|| err("expected METRIC>=VALUE, <=, > or <".into()))?;
        let metric = text[..at].trim().to_owned();
        let value: f64 = text[at + len..].trim().parse().map_err(|_| err(format!("`{}` is not a number", text[at + len..].trim())))?;
        if !metric_names().contains(&metric) {
            return Err(err(format!("`{metric}` is not a metric (one of: {})", metric_names().join(", "))));
        }
        Ok(Constraint { metric, op, value })
    }

    pub fn holds(&self, metrics: &BTreeMap<String, f64>) -> bool {
        let Some(v) = metrics.get(&self.metric).copied() else { return false };
        match self.op {
            Op::Ge => v >= self.value,
            Op::Le => v <= self.value,
            Op::Gt => v > self.value,
            Op::Lt => v < self.value,
        }
    }
}

impl std::fmt::Display for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = match self.op {
            Op::Ge => ">=",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Lt => "<",
        };
        write!(f, "{}{op}{}", self.metric, self.value)
    }
}

/// K of N (1-based K).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub k: u32,
    pub n: u32,
}

impl Shard {
    pub const WHOLE: Shard = Shard { k: 1, n: 1 };

    pub fn parse(s: &str) -> Result<Shard, StudyError> {
        let (k, n) = s.split_once('/').ok_or_else(|| StudyError::Shard(s.into()))?;
        let (k, n): (u32, u32) = (k.trim().parse().map_err(|_| StudyError::Shard(s.into()))?, n.trim().parse().map_err(|_| StudyError::Shard(s.into()))?);
        if k == 0 || n == 0 || k > n {
            return Err(StudyError::Shard(s.into()));
        }
        Ok(Shard { k, n })
    }

    pub fn owns(&self, trial: u64) -> bool {
        trial % u64::from(self.n) == u64::from(self.k - 1)
    }
}

/// What defines a study: a study file starts with it, and `--resume` and
/// `merge` refuse a file whose definition differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudySpec {
    pub plugin: String,
    pub plugin_version: String,
    pub plugin_sha256: String,
    pub space: Space,
    /// The parameters every trial shares (the config's, not searched).
    pub fixed: BTreeMap<String, ParamInput>,
    pub sampler: Sampler,
    pub objective: String,
    pub direction: Direction,
    pub constraints: Vec<Constraint>,
    pub seed: u64,
    pub shard: Shard,
    pub batch: usize,
    pub startup: usize,
    pub window: Window,
    /// What the data was: instruments, bars, first bar and last close.
    pub data: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrialState {
    Complete,
    /// Ran, but broke a constraint.
    Infeasible,
    /// The plugin was refused, faulted or the objective is undefined.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    pub trial: u64,
    pub params: BTreeMap<String, ParamInput>,
    /// The sampler's coordinates (TPE is told these).
    pub internal: Vec<f64>,
    pub state: TrialState,
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// Daily returns (for the deflated Sharpe and PBO).
    #[serde(default)]
    pub returns: Vec<f64>,
    pub wall_ms: u64,
    /// The sampler asked again for parameters an earlier trial ran: its
    /// outcome is that trial's (a backtest is deterministic), not run again,
    /// and it counts once in the leaderboard and the guards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_as: Option<u64>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Line {
    Study(Box<StudySpec>),
    Trial(Box<TrialRecord>),
}

/// A study file read back: its definition and trials by number.
#[derive(Debug, Clone)]
pub struct StudyFile {
    pub spec: StudySpec,
    pub trials: BTreeMap<u64, TrialRecord>,
    /// A last line cut short by an interruption (its trial runs again).
    pub torn_tail: bool,
}

impl StudyFile {
    pub fn read(path: &Path) -> Result<StudyFile, StudyError> {
        let file = std::fs::File::open(path).map_err(|source| StudyError::Io { path: path.into(), source })?;
        let lines: Vec<String> = BufReader::new(file).lines().collect::<Result<_, _>>().map_err(|source| StudyError::Io { path: path.into(), source })?;
        let corrupt = |line: usize, reason: String| StudyError::Corrupt { path: path.into(), line, reason };
        let mut spec = None;
        let mut trials = BTreeMap::new();
        let mut torn_tail = false;
        for (n, text) in lines.iter().enumerate() {
            if text.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Line>(text) {
                Ok(Line::Study(s)) if n == 0 => spec = Some(*s),
                Ok(Line::Study(_)) => return Err(corrupt(n + 1, "a second study header".into())),
                Ok(Line::Trial(_)) if spec.is_none() => return Err(corrupt(n + 1, "a trial before the study header".into())),
                Ok(Line::Trial(t)) => {
                    trials.insert(t.trial, *t);
                }
                // Only the last line can be cut short by an interrupted write.
                Err(e) if e.is_eof() && n + 1 == lines.len() && n > 0 => torn_tail = true,
                Err(e) => return Err(corrupt(n + 1, e.to_string())),
            }
        }
        let spec = spec.ok_or_else(|| corrupt(1, "no study header (not a study file)".into()))?;
        Ok(StudyFile { spec, trials, torn_tail })
    }
}

/// The best first: feasible completed trials by objective, ties by trial number.
pub fn leaderboard<'a>(spec: &StudySpec, trials: impl IntoIterator<Item = &'a TrialRecord>) -> Vec<&'a TrialRecord> {
    let mut done: Vec<&TrialRecord> = trials.into_iter().filter(|t| t.state == TrialState::Complete && t.value.is_some() && t.same_as.is_none()).collect();
    done.sort_by(|a, b| {
        let (x, y) = (a.value.unwrap_or(f64::NAN), b.value.unwrap_or(f64::NAN));
        let ord = match spec.direction {
            Direction::Maximize => y.total_cmp(&x),
            Direction::Minimize => x.total_cmp(&y),
        };
        ord.then(a.trial.cmp(&b.trial))
    });
    done
}

/// What one study run did.
pub struct Outcome {
    pub file: StudyFile,
    /// Trials run now (not read back from the file).
    pub ran: usize,
    pub wall: std::time::Duration,
}

/// What the trials run on.
pub struct Bench<'a> {
    pub data: &'a Arc<ReplayData>,
    /// The host configuration; its first plugin is the one tuned.
    pub config: &'a HostConfig,
}

/// Runs trials `0..trials` (those of `spec.shard`) not yet in `path`, on
/// `jobs` threads, appending each to the file as it finishes. `progress` is
/// called after every trial with (trials done, trials in the shard).
pub fn optimize(bench: &Bench, spec: &StudySpec, trials: u64, path: &Path, resume: bool, jobs: usize, progress: &(dyn Fn(u64, u64) + Sync)) -> Result<Outcome, StudyError> {
    if bench.config.plugins.is_empty() {
        return Err(StudyError::NoPlugin);
    }
    let started = Instant::now();
    let mut known = if path.exists() {
        if !resume {
            return Err(StudyError::Exists { path: path.into() });
        }
        let f = StudyFile::read(path)?;
        check_same(path, &f.spec, spec)?;
        f.trials
    } else {
        BTreeMap::new()
    };
    // Rewrite the file whole (header and the trials kept): a torn last line
    // goes, and the file is appended to from a clean end.
    {
        let tmp = path.with_extension("jsonl.tmp");
        let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(|source| StudyError::Io { path: tmp.clone(), source })?);
        let io = |source| StudyError::Io { path: tmp.clone(), source };
        writeln!(w, "{}", serde_json::to_string(&Line::Study(Box::new(spec.clone()))).expect("serialisable")).map_err(io)?;
        for t in known.values() {
            writeln!(w, "{}", serde_json::to_string(&Line::Trial(Box::new(t.clone()))).expect("serialisable")).map_err(io)?;
        }
        w.into_inner().map_err(|e| io(e.into_error()))?.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(|source| StudyError::Io { path: path.into(), source })?;
    }
    let sink = Mutex::new(std::fs::OpenOptions::new().append(true).open(path).map_err(|source| StudyError::Io { path: path.into(), source })?);
    let grid = match spec.sampler {
        Sampler::Grid => Some(spec.space.grid_size()?),
        _ => None,
    };
    let trials = grid.map_or(trials, |g| trials.min(g.min(u128::from(u64::MAX)) as u64));
    let mine: Vec<u64> = (0..trials).filter(|i| spec.shard.owns(*i)).collect();
    let total = mine.len() as u64;
    let done = std::sync::atomic::AtomicU64::new(mine.iter().filter(|i| known.contains_key(i)).count() as u64);
    progress(done.load(std::sync::atomic::Ordering::Relaxed), total);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(jobs.max(1)).build().expect("a thread pool");
    let mut tpe = Tpe::new(&spec.space);
    let mut ran = 0;
    let write_error: Mutex<Option<StudyError>> = Mutex::new(None);
    for batch in mine.chunks(spec.batch.max(1)) {
        let proposals: Vec<(u64, Vec<f64>)> = batch.iter().map(|i| (*i, propose(spec, &mut tpe, *i))).collect();
        // What the sampler asked, in the batch's order, before any of it is
        // run; parameters already run (before, or earlier in this batch) are
        // not run again.
        let mut seen: BTreeMap<String, u64> = known.values().filter(|t| t.same_as.is_none()).map(|t| (params_key(&t.params), t.trial)).collect();
        let mut todo: Vec<&(u64, Vec<f64>)> = Vec::new();
        let mut repeats: Vec<(u64, Vec<f64>, u64)> = Vec::new();
        for p in proposals.iter().filter(|(i, _)| !known.contains_key(i)) {
            match seen.get(&params_key(&spec.space.params(&p.1))) {
                Some(first) => repeats.push((p.0, p.1.clone(), *first)),
                None => {
                    seen.insert(params_key(&spec.space.params(&p.1)), p.0);
                    todo.push(p);
                }
            }
        }
        let write = |record: &TrialRecord| {
            let line = serde_json::to_string(&Line::Trial(Box::new(record.clone()))).expect("serialisable");
            let mut f = sink.lock().expect("the study file lock");
            if let Err(source) = writeln!(f, "{line}") {
                write_error.lock().expect("lock").get_or_insert(StudyError::Io { path: path.into(), source });
            }
            drop(f);
            progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1, total);
        };
        let mut results: Vec<TrialRecord> = pool.install(|| {
            todo.par_iter()
                .map(|(i, x)| {
                    let record = run_trial(bench, spec, *i, x);
                    write(&record);
                    record
                })
                .collect()
        });
        for (i, x, first) in repeats {
            let original = known.get(&first).or_else(|| results.iter().find(|r| r.trial == first)).expect("the first run of these parameters");
            let record = TrialRecord { trial: i, internal: x, wall_ms: 0, same_as: Some(first), ..original.clone() };
            write(&record);
            results.push(record);
        }
        if let Some(e) = write_error.lock().expect("lock").take() {
            return Err(e);
        }
        ran += results.len();
        for r in results {
            known.insert(r.trial, r);
        }
        // Told in trial order, so a resumed study's sampler is in the same state.
        for (i, _) in &proposals {
            if let Some(r) = known.get(i) {
                tpe.tell(spec, r);
            }
        }
    }
    sink.into_inner().expect("lock").sync_all().map_err(|source| StudyError::Io { path: path.into(), source })?;
    Ok(Outcome { file: StudyFile { spec: spec.clone(), trials: known, torn_tail: false }, ran, wall: started.elapsed() })
}

fn check_same(path: &Path, theirs: &StudySpec, ours: &StudySpec) -> Result<(), StudyError> {
    let mismatch = |field: &str, a: String, b: String| Err(StudyError::Mismatch { path: path.into(), field: field.into(), theirs: a, ours: b });
    if theirs.plugin_sha256 != ours.plugin_sha256 {
        return mismatch("plugin (SHA-256)", format!("{} {}", theirs.plugin_version, &theirs.plugin_sha256[..12.min(theirs.plugin_sha256.len())]), format!("{} {}", ours.plugin_version, &ours.plugin_sha256[..12.min(ours.plugin_sha256.len())]));
    }
    fn j<T: Serialize>(v: &T) -> String {
        serde_json::to_string(v).unwrap_or_default()
    }
    let fields: [(&str, String, String); 11] = [
        ("space", j(&theirs.space), j(&ours.space)),
        ("fixed parameters", j(&theirs.fixed), j(&ours.fixed)),
        ("sampler", j(&theirs.sampler), j(&ours.sampler)),
        ("objective", theirs.objective.clone(), ours.objective.clone()),
        ("direction", j(&theirs.direction), j(&ours.direction)),
        ("constraints", j(&theirs.constraints), j(&ours.constraints)),
        ("seed", theirs.seed.to_string(), ours.seed.to_string()),
        ("shard", format!("{}/{}", theirs.shard.k, theirs.shard.n), format!("{}/{}", ours.shard.k, ours.shard.n)),
        ("batch", theirs.batch.to_string(), ours.batch.to_string()),
        ("window", j(&theirs.window), j(&ours.window)),
        ("data", theirs.data.clone(), ours.data.clone()),
    ];
    for (field, a, b) in fields {
        if a != b {
            return mismatch(field, a, b);
        }
    }
    Ok(())
}

/// Parameters as a comparable key.
fn params_key(p: &BTreeMap<String, ParamInput>) -> String {
    serde_json::to_string(p).unwrap_or_default()
}

/// A seed for one draw, from the study's seed, the shard and a counter.
fn mix(seed: u64, a: u64, b: u64) -> u64 {
    // splitmix64 of the three, so nearby inputs give unrelated streams.
    let mut z = seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Trial `i`'s coordinates.
fn propose(spec: &StudySpec, tpe: &mut Tpe, i: u64) -> Vec<f64> {
    let dims = spec.space.dims.len();
    match spec.sampler {
        Sampler::Grid => spec.space.grid_point(u128::from(i)),
        Sampler::Random => {
            let mut rng = StdRng::seed_from_u64(mix(spec.seed, 0, i));
            (0..dims).map(|d| uniform(&spec.space, d, &mut rng)).collect()
        }
        Sampler::Tpe => {
            // One stream per trial of the batch: the batch's asks depend on
            // the state before it and the trial's number only.
            let mut rng = StdRng::seed_from_u64(mix(spec.seed, u64::from(spec.shard.k), i));
            if tpe.told < spec.startup {
                (0..dims).map(|d| uniform(&spec.space, d, &mut rng)).collect()
            } else {
                tpe.ask(&spec.space, &mut rng)
            }
        }
    }
}

fn uniform(space: &Space, d: usize, rng: &mut StdRng) -> f64 {
    let (lo, hi, _) = space.internal_range(d);
    rng.random_range(lo..hi)
}

/// One TPE estimator per dimension.
struct Tpe {
    optimizers: Vec<tpe::TpeOptimizer>,
    told: usize,
}

impl Tpe {
    fn new(space: &Space) -> Tpe {
        let optimizers = (0..space.dims.len())
            .map(|d| {
                let (lo, hi, categorical) = space.internal_range(d);
                let range = tpe::range(lo, hi).expect("a space's ranges are non-empty");
                if categorical { tpe::TpeOptimizer::new(tpe::histogram_estimator(), range) } else { tpe::TpeOptimizer::new(tpe::parzen_estimator(), range) }
            })
            .collect();
        Tpe { optimizers, told: 0 }
    }

    fn ask(&mut self, space: &Space, rng: &mut StdRng) -> Vec<f64> {
        self.optimizers
            .iter_mut()
            .enumerate()
            .map(|(d, o)| {
                o.ask(rng).unwrap_or_else(|_| {
                    let (lo, hi, _) = space.internal_range(d);
                    rng.random_range(lo..hi)
                })
            })
            .collect()
    }

    /// TPE minimises: a maximised objective is told negated; a failed or
    /// infeasible trial as the worst possible value, so the sampler moves away.
    fn tell(&mut self, spec: &StudySpec, r: &TrialRecord) {
        let loss = match (r.state, r.value) {
            (TrialState::Complete, Some(v)) => match spec.direction {
                Direction::Maximize => -v,
                Direction::Minimize => v,
            },
            _ => f64::MAX,
        };
        if r.internal.len() != self.optimizers.len() {
            return;
        }
        for (o, x) in self.optimizers.iter_mut().zip(&r.internal) {
            let _ = o.tell(*x, loss);
        }
        self.told += 1;
    }
}

/// One backtest with trial `i`'s parameters.
pub fn run_trial(bench: &Bench, spec: &StudySpec, i: u64, x: &[f64]) -> TrialRecord {
    let params = spec.space.params(x);
    let started = Instant::now();
    let mut config = bench.config.clone();
    config.plugins[0].params.extend(params.clone());
    let mut record = TrialRecord { trial: i, params, internal: x.to_vec(), state: TrialState::Failed, value: None, reason: None, metrics: BTreeMap::new(), returns: Vec::new(), wall_ms: 0, same_as: None };
    match backtest(bench.data, &config, spec.window) {
        Ok(run) => fill_record(&mut record, spec, &run),
        Err(e) => record.reason = Some(e.to_string()),
    }
    record.wall_ms = started.elapsed().as_millis() as u64;
    tracing::debug!(trial = i, state = ?record.state, value = ?record.value, "trial finished");
    record
}

fn fill_record(record: &mut TrialRecord, spec: &StudySpec, run: &Run) {
    let metrics = run.metrics(Conventions::default(), None);
    record.metrics = metric_values(&metrics);
    record.returns = run.returns();
    if let Some((plugin, reason)) = run.faults.first() {
        record.reason = Some(format!("plugin {plugin} faulted: {reason}"));
        return;
    }
    let Some(v) = record.metrics.get(&spec.objective).copied().filter(|v| v.is_finite()) else {
        record.reason = Some(format!("the objective {} is undefined for this run (no trades, or flat equity)", spec.objective));
        return;
    };
    record.value = Some(v);
    let broken: Vec<String> = spec.constraints.iter().filter(|c| !c.holds(&record.metrics)).map(|c| c.to_string()).collect();
    if broken.is_empty() {
        record.state = TrialState::Complete;
    } else {
        record.state = TrialState::Infeasible;
        record.reason = Some(format!("breaks {}", broken.join(", ")));
    }
}

/// Combines shard files of one study into one (`out`): every header must
/// match but for the shard, no trial may differ between two files, and
/// the shards together must be 1..N of the same N.
pub fn merge(paths: &[PathBuf], out: &Path) -> Result<(StudyFile, String), StudyError> {
    let mut files = Vec::new();
    for p in paths {
        files.push((p.clone(), StudyFile::read(p)?));
    }
    let Some((first_path, first)) = files.first() else { return Err(StudyError::Merge("no study files given".into())) };
    let mut spec = first.spec.clone();
    let n = spec.shard.n;
    let mut shards = std::collections::BTreeSet::new();
    let mut trials: BTreeMap<u64, TrialRecord> = BTreeMap::new();
    for (path, f) in &files {
        let mut theirs = f.spec.clone();
        if theirs.shard.n != n {
            return Err(StudyError::Merge(format!("{} is shard {}/{}, {} is of {n} shards", path.display(), theirs.shard.k, theirs.shard.n, first_path.display())));
        }
        if !shards.insert(theirs.shard.k) {
            return Err(StudyError::Merge(format!("shard {}/{n} is given twice ({})", theirs.shard.k, path.display())));
        }
        theirs.shard = spec.shard;
        check_same(path, &theirs, &spec)?;
        for (i, t) in &f.trials {
            if let Some(prev) = trials.get(i)
                && prev.params != t.params
            {
                return Err(StudyError::Merge(format!("trial {i} differs between shards ({})", path.display())));
            }
            trials.insert(*i, t.clone());
        }
    }
    let missing: Vec<String> = (1..=n).filter(|k| !shards.contains(k)).map(|k| format!("{k}/{n}")).collect();
    let note = match (spec.sampler, missing.is_empty()) {
        (_, false) => format!("partial merge: shards {} are missing", missing.join(", ")),
        (Sampler::Tpe, true) => format!("{n} TPE shards merged: each was an independent sub-study (its own sampler, seeded by the seed and its shard), so the whole is not one sequential TPE study"),
        (_, true) => format!("{n} shards merged: the same trials as the unsharded study"),
    };
    spec.shard = Shard::WHOLE;
    let mut w = std::io::BufWriter::new(std::fs::File::create(out).map_err(|source| StudyError::Io { path: out.into(), source })?);
    let io = |source| StudyError::Io { path: out.into(), source };
    writeln!(w, "{}", serde_json::to_string(&Line::Study(Box::new(spec.clone()))).expect("serialisable")).map_err(io)?;
    for t in trials.values() {
        writeln!(w, "{}", serde_json::to_string(&Line::Trial(Box::new(t.clone()))).expect("serialisable")).map_err(io)?;
    }
    w.flush().map_err(io)?;
    Ok((StudyFile { spec, trials, torn_tail: false }, note))
}

/// The overfitting guards of a study's completed trials: the deflated Sharpe
/// of the best (by the objective) and the PBO by CSCV over every trial's returns.
#[derive(Debug, Clone, Serialize)]
pub struct Guards {
    pub deflated: Option<crate::DeflatedSharpe>,
    pub pbo: Option<crate::Pbo>,
    /// Why a guard could not be computed.
    pub notes: Vec<String>,
}

pub fn guards(file: &StudyFile, partitions: usize) -> Guards {
    let board = leaderboard(&file.spec, file.trials.values());
    let mut notes = Vec::new();
    // Every trial run counts towards the deflation, feasible or not: each was a look at the data.
    let ran: Vec<&TrialRecord> = file.trials.values().filter(|t| t.returns.len() >= 2 && t.same_as.is_none()).collect();
    let sharpes: Vec<f64> = ran.iter().map(|t| crate::overfitting::sharpe(&t.returns)).filter(|s| s.is_finite()).collect();
    let deflated = board.first().map(|best| crate::deflated_sharpe(&best.returns, &sharpes));
    if deflated.is_none() {
        notes.push("no completed trial: no deflated Sharpe".into());
    }
    let series: Vec<Vec<f64>> = ran.iter().map(|t| t.returns.clone()).collect();
    let pbo = match crate::pbo(&series, partitions) {
        Ok(p) => Some(p),
        Err(e) => {
            notes.push(format!("PBO: {e}"));
            None
        }
    };
    Guards { deflated, pbo, notes }
}
