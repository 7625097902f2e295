//! Stress tests: the user's configuration (plugins, stops, risk engine,
//! breakers) run through the research runner over named scenarios, each a
//! window of real data (a crash) with optional synthetic shocks, and judged
//! against the user's limits.
//!
//! A scenario file is TOML, `[[scenario]]` tables (see
//! `examples/stress/scenarios.toml`):
//!
//! ```toml
//! [[scenario]]
//! name = "gfc-2008"
//! from = "2008-09-01"          # the window judged, UTC
//! to = "2009-04-01"            # exclusive
//! period = "1d"                # default 1d; source = "trade" (default), bid, ask or mid
//! symbols = []                 # default: every symbol stored with that series
//! warmup_days = 90             # run before `from` so indicators and positions are in place
//! [[scenario.shock]]
//! kind = "gap"                 # gap, volatility, spread, liquidity, correlation
//! at = "2008-10-01"
//! pct = -20
//! ```
//!
//! Shocks, applied in order:
//! - `gap`: every price from the bar starting at `at` on multiplied by
//!   `1 + pct/100` (of `symbols`, default all): an instant gap at that bar's open;
//! - `volatility`: within `[from, to)`, each bar's prices relative to the
//!   previous close raised to the power `factor` in log terms (returns and
//!   ranges `factor` times larger), later bars carried on from the new level;
//! - `spread`: the paper broker's spread `factor` times wider;
//! - `liquidity`: fills capped at `participation` of each bar's volume;
//! - `correlation`: within `[from, to)`, each instrument's close-to-close log
//!   return replaced by the cross-section's mean return scaled to the
//!   instrument's own volatility there (correlations of one, volatilities
//!   kept), the bar's shape around its close kept.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use stratbox_engine::config::HostConfig;
use stratbox_market::store::PriceSource;
use stratbox_market::{Bar, NANOS_PER_SEC, ReplayConfig, ReplayData, Timestamp};

use crate::backtest::{ProtectiveExit, StateChange, Window, backtest, daily_equity};
use crate::{parse_period, parse_source};

const DAY: i64 = 86_400 * NANOS_PER_SEC;

#[derive(Debug, thiserror::Error)]
pub enum StressError {
    #[error("{path}: {why}")]
    File { path: String, why: String },
    #[error("{path}: scenario `{scenario}`: {why}")]
    Scenario { path: String, scenario: String, why: String },
    #[error("unknown scenario `{name}`: {path} has {known}")]
    Unknown { name: String, path: String, known: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    #[serde(rename = "scenario", default)]
    scenarios: Vec<ScenarioToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioToml {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    symbols: Vec<String>,
    from: String,
    to: String,
    period: Option<String>,
    source: Option<String>,
    warmup_days: Option<u32>,
    #[serde(default, rename = "shock")]
    shocks: Vec<ShockToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShockToml {
    kind: String,
    at: Option<String>,
    from: Option<String>,
    to: Option<String>,
    pct: Option<f64>,
    factor: Option<f64>,
    participation: Option<f64>,
    #[serde(default)]
    symbols: Vec<String>,
}

/// A synthetic shock, validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Shock {
    Gap { at: Timestamp, pct: f64, symbols: Vec<String> },
    Volatility { from: Timestamp, to: Timestamp, factor: f64 },
    Spread { factor: f64 },
    Liquidity { participation: f64 },
    Correlation { from: Timestamp, to: Timestamp },
}

impl Shock {
    pub fn describe(&self) -> String {
        match self {
            Shock::Gap { at, pct, symbols } => {
                let of = if symbols.is_empty() { "every instrument".to_owned() } else { symbols.join(", ") };
                format!("gap of {pct:+}% at {} ({of})", stratbox_market::format_time(*at))
            }
            Shock::Volatility { from, to, factor } => format!("volatility x{factor} from {} to {}", crate::date(*from), crate::date(*to)),
            Shock::Spread { factor } => format!("spreads x{factor}"),
            Shock::Liquidity { participation } => format!("fills capped at {}% of each bar's volume", participation * 100.0),
            Shock::Correlation { from, to } => format!("correlations of one from {} to {}", crate::date(*from), crate::date(*to)),
        }
    }
}

/// A scenario, validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub symbols: Vec<String>,
    pub from: Timestamp,
    pub to: Timestamp,
    pub period_secs: u32,
    pub source: PriceSource,
    pub warmup_days: u32,
    pub shocks: Vec<Shock>,
}

fn time(s: &str, field: &str) -> Result<Timestamp, String> {
    stratbox_market::parse_datetime(s, chrono_tz::UTC).map_err(|e| format!("`{field}`: {e}"))
}

fn positive(v: Option<f64>, kind: &str, field: &str) -> Result<f64, String> {
    match v {
        Some(x) if x.is_finite() && x > 0.0 => Ok(x),
        Some(x) => Err(format!("`{kind}` shock: `{field}` is {x}: it must be a positive number")),
        None => Err(format!("`{kind}` shock needs `{field}`")),
    }
}

impl ShockToml {
    fn resolve(&self) -> Result<Shock, String> {
        let k = self.kind.as_str();
        let allowed: &[&str] = match k {
            "gap" => &["at", "pct", "symbols"],
            "volatility" => &["from", "to", "factor"],
            "spread" => &["factor"],
            "liquidity" => &["participation"],
            "correlation" => &["from", "to"],
            other => return Err(format!("unknown shock kind `{other}`: expected gap, volatility, spread, liquidity or correlation")),
        };
        let given = [
            ("at", self.at.is_some()),
            ("from", self.from.is_some()),
            ("to", self.to.is_some()),
            ("pct", self.pct.is_some()),
            ("factor", self.factor.is_some()),
            ("participation", self.participation.is_some()),
            ("symbols", !self.symbols.is_empty()),
        ];
        if let Some((field, _)) = given.iter().find(|(f, set)| *set && !allowed.contains(f)) {
            return Err(format!("`{k}` shock: `{field}` is not one of its fields ({})", allowed.join(", ")));
        }
        let window = || -> Result<(Timestamp, Timestamp), String> {
            let from = time(self.from.as_deref().ok_or(format!("`{k}` shock needs `from`"))?, "from")?;
            let to = time(self.to.as_deref().ok_or(format!("`{k}` shock needs `to`"))?, "to")?;
            if from >= to {
                return Err(format!("`{k}` shock: `from` is not before `to`"));
            }
            Ok((from, to))
        };
        Ok(match k {
            "gap" => {
                let pct = self.pct.ok_or("`gap` shock needs `pct` (e.g. -20 for a 20% fall)")?;
                if !pct.is_finite() || pct <= -100.0 {
                    return Err(format!("`gap` shock: `pct` is {pct}: a gap of -100% or more would make prices non-positive"));
                }
                Shock::Gap { at: time(self.at.as_deref().ok_or("`gap` shock needs `at`")?, "at")?, pct, symbols: self.symbols.clone() }
            }
            "volatility" => {
                let (from, to) = window()?;
                Shock::Volatility { from, to, factor: positive(self.factor, k, "factor")? }
            }
            "spread" => Shock::Spread { factor: positive(self.factor, k, "factor")? },
            "liquidity" => {
                let participation = positive(self.participation, k, "participation")?;
                if participation > 1.0 {
                    return Err(format!("`liquidity` shock: `participation` is {participation}: a fraction of the bar's volume, at most 1"));
                }
                Shock::Liquidity { participation }
            }
            _ => {
                let (from, to) = window()?;
                Shock::Correlation { from, to }
            }
        })
    }
}

impl ScenarioToml {
    fn resolve(self) -> Result<Scenario, String> {
        let (from, to) = (time(&self.from, "from")?, time(&self.to, "to")?);
        if from >= to {
            return Err(format!("`from` {} is not before `to` {}", self.from, self.to));
        }
        let shocks = self.shocks.iter().enumerate().map(|(k, s)| s.resolve().map_err(|e| format!("shock {}: {e}", k + 1))).collect::<Result<Vec<_>, _>>()?;
        Ok(Scenario {
            name: self.name,
            description: self.description,
            symbols: self.symbols,
            from,
            to,
            period_secs: parse_period(self.period.as_deref().unwrap_or("1d"))?,
            source: parse_source(self.source.as_deref().unwrap_or("trade"))?,
            warmup_days: self.warmup_days.unwrap_or(60),
            shocks,
        })
    }
}

/// Reads a scenario file; every error names the file, and the scenario and shock at fault.
pub fn read_scenarios(path: &Path) -> Result<Vec<Scenario>, StressError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| StressError::File { path: shown.clone(), why: e.to_string() })?;
    parse_scenarios(&text, &shown)
}

pub fn parse_scenarios(text: &str, path: &str) -> Result<Vec<Scenario>, StressError> {
    let file: FileToml = toml::from_str(text).map_err(|e| StressError::File { path: path.to_owned(), why: e.to_string() })?;
    if file.scenarios.is_empty() {
        return Err(StressError::File { path: path.to_owned(), why: "no [[scenario]] in it".into() });
    }
    let mut out: Vec<Scenario> = Vec::new();
    for s in file.scenarios {
        let name = s.name.clone();
        if out.iter().any(|o| o.name == name) {
            return Err(StressError::Scenario { path: path.to_owned(), scenario: name, why: "the name is used twice".into() });
        }
        out.push(s.resolve().map_err(|why| StressError::Scenario { path: path.to_owned(), scenario: name, why })?);
    }
    Ok(out)
}

/// The scenarios named in `only` (all when empty), in the file's order; an
/// unknown name is an error listing the known ones.
pub fn select(scenarios: Vec<Scenario>, only: &[String], path: &str) -> Result<Vec<Scenario>, StressError> {
    if let Some(name) = only.iter().find(|n| !scenarios.iter().any(|s| &s.name == *n)) {
        let known = scenarios.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ");
        return Err(StressError::Unknown { name: name.clone(), path: path.to_owned(), known });
    }
    Ok(scenarios.into_iter().filter(|s| only.is_empty() || only.contains(&s.name)).collect())
}

/// What a scenario must not exceed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Limits {
    /// Max drawdown inside the window, a fraction (the plan's 10%: 0.10).
    pub max_drawdown: f64,
    /// Loss over the window, a fraction; `None`: not judged.
    pub max_loss: Option<f64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_drawdown: 0.10, max_loss: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Passed,
    Failed,
    /// The scenario could not run (no data in its window, a shock that does not apply...).
    Error,
}

impl Verdict {
    /// As in the JSON: passed, failed, error.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Passed => "passed",
            Verdict::Failed => "failed",
            Verdict::Error => "error",
        }
    }
}

/// One scenario's outcome: the verdict and its reasons, and what happened.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub scenario: Scenario,
    pub shocks: Vec<String>,
    pub verdict: Verdict,
    pub reasons: Vec<String>,
    pub result: Option<StressResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StressResult {
    pub bars: u64,
    pub instruments: usize,
    /// The account's equity at `from` (after the warm-up) and at the end.
    pub start_equity: f64,
    pub end_equity: f64,
    /// end / start - 1 (negative: a loss).
    pub total_return: f64,
    pub max_drawdown: f64,
    /// The peak before the max drawdown, its trough, and when equity was back at the peak.
    pub drawdown_peak: Timestamp,
    pub drawdown_trough: Timestamp,
    pub recovered: Option<Timestamp>,
    /// Trough to recovery, in days of market time (`None`: not recovered in the window).
    pub recovery_days: Option<f64>,
    /// The worst day's return and its date (end-of-day equity to end-of-day equity).
    pub worst_day: Option<(String, f64)>,
    /// Trading states set or lifted during the window (and the warm-up).
    pub states: Vec<StateChange>,
    pub halted: bool,
    pub reduce_only: bool,
    pub protective_exits: Vec<ProtectiveExit>,
    /// Stop policies' exits at market over the run (warm-up included).
    pub stop_exits: u64,
    pub alarms: BTreeMap<String, usize>,
    pub trades_closed: usize,
    pub faults: Vec<(String, String)>,
    /// The equity curve from `from` on, (time, equity).
    pub equity: Vec<(Timestamp, f64)>,
}

/// The bars of `data` with the price shocks applied, in order.
pub fn shocked(data: &ReplayData, shocks: &[Shock]) -> Result<ReplayData, String> {
    let ids = |symbols: &[String]| -> Result<Vec<bool>, String> {
        let mut pick = vec![symbols.is_empty(); data.instruments().len()];
        for s in symbols {
            let i = data.instruments().iter().position(|i| &i.symbol == s).ok_or_else(|| format!("gap shock: `{s}` is not in the scenario's data"))?;
            pick[i] = true;
        }
        Ok(pick)
    };
    let n = data.instruments().len();
    let mut plan = Vec::new();
    for s in shocks {
        match s {
            Shock::Gap { at, pct, symbols } => plan.push((s.clone(), ids(symbols)?, *at, *pct)),
            Shock::Volatility { .. } | Shock::Correlation { .. } => plan.push((s.clone(), Vec::new(), 0, 0.0)),
            Shock::Spread { .. } | Shock::Liquidity { .. } => {}
        }
    }
    data.with_bars(|bars: &mut [Bar]| -> Result<(), String> {
        for (shock, pick, at, pct) in &plan {
            match shock {
                Shock::Gap { .. } => gap(bars, pick, *at, *pct),
                Shock::Volatility { from, to, factor } => volatility(bars, n, *from, *to, *factor),
                Shock::Correlation { from, to } => correlation(bars, n, *from, *to)?,
                _ => {}
            }
        }
        Ok(())
    })
}

fn scale(b: &mut Bar, f: impl Fn(f64) -> f64) {
    (b.open, b.high, b.low, b.close) = (f(b.open), f(b.high), f(b.low), f(b.close));
}

fn gap(bars: &mut [Bar], pick: &[bool], at: Timestamp, pct: f64) {
    let g = 1.0 + pct / 100.0;
    for b in bars.iter_mut().filter(|b| b.start >= at && pick[b.instrument as usize]) {
        scale(b, |x| x * g);
    }
}

/// Rewrites each instrument's bars in event order: `inside(bar, original
/// previous close, new previous close)` gives a bar inside `[from, to)` its
/// new prices; bars after the window keep their returns from the new level.
fn rewrite(bars: &mut [Bar], n: usize, from: Timestamp, to: Timestamp, mut inside: impl FnMut(&mut Bar, f64, f64)) {
    let mut last: Vec<Option<(f64, f64)>> = vec![None; n];
    for b in bars.iter_mut() {
        let i = b.instrument as usize;
        let original = b.close;
        if let Some((oc, nc)) = last[i] {
            if b.start >= from && b.start < to {
                inside(b, oc, nc);
            } else {
                let r = nc / oc;
                scale(b, |x| x * r);
            }
        }
        last[i] = Some((original, b.close));
    }
}

fn volatility(bars: &mut [Bar], n: usize, from: Timestamp, to: Timestamp, k: f64) {
    rewrite(bars, n, from, to, |b, oc, nc| scale(b, |x| nc * (k * (x / oc).ln()).exp()));
}

fn correlation(bars: &mut [Bar], n: usize, from: Timestamp, to: Timestamp) -> Result<(), String> {
    // Pass 1: log returns in the window, per instrument and per cross-section (bar start).
    let mut prev: Vec<Option<f64>> = vec![None; n];
    let mut own: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut market: BTreeMap<Timestamp, (f64, usize)> = BTreeMap::new();
    for b in bars.iter() {
        let i = b.instrument as usize;
        if let Some(pc) = prev[i]
            && b.start >= from
            && b.start < to
        {
            let r = (b.close / pc).ln();
            own[i].push(r);
            let m = market.entry(b.start).or_default();
            (m.0, m.1) = (m.0 + r, m.1 + 1);
        }
        prev[i] = Some(b.close);
    }
    if own.iter().filter(|r| r.len() >= 2).count() < 2 {
        return Err("correlation shock: needs at least two instruments with returns inside its window".into());
    }
    let means: BTreeMap<Timestamp, f64> = market.iter().map(|(t, (s, c))| (*t, s / *c as f64)).collect();
    let market_sd = crate::metrics::std(&means.values().copied().collect::<Vec<_>>());
    if !(market_sd > 0.0) {
        return Err("correlation shock: the cross-section's mean return does not move inside its window".into());
    }
    let ratio: Vec<f64> = own.iter().map(|r| if r.len() >= 2 { crate::metrics::std(r) / market_sd } else { 1.0 }).collect();
    // Pass 2: the new closes, the bar's shape kept around its close.
    rewrite(bars, n, from, to, |b, _, nc| {
        let close = nc * (means[&b.start] * ratio[b.instrument as usize]).exp();
        let c = b.close;
        scale(b, |x| close * (x / c));
    });
    Ok(())
}

/// Runs one scenario. Never fails as a whole: what goes wrong is the outcome's `Error` verdict with the reason.
pub fn run_scenario(store: &Path, base: &HostConfig, s: &Scenario, limits: &Limits) -> Outcome {
    let shocks = s.shocks.iter().map(Shock::describe).collect();
    let (verdict, reasons, result) = match measure(store, base, s, limits) {
        Ok((reasons, r)) => (if reasons.is_empty() { Verdict::Passed } else { Verdict::Failed }, reasons, Some(r)),
        Err(why) => (Verdict::Error, vec![why], None),
    };
    Outcome { scenario: s.clone(), shocks, verdict, reasons, result }
}

fn measure(store: &Path, base: &HostConfig, s: &Scenario, limits: &Limits) -> Result<(Vec<String>, StressResult), String> {
    let warm_from = s.from - i64::from(s.warmup_days) * DAY;
    let replay = ReplayConfig { symbols: s.symbols.clone(), period_secs: s.period_secs, source: s.source, from: Some(warm_from), to: Some(s.to), ..ReplayConfig::default() };
    let data = ReplayData::load(store, &replay).map_err(|e| e.to_string())?;
    let series = format!("{} bars ({:?})", show_period(s.period_secs), s.source).to_lowercase();
    let what = if s.symbols.is_empty() { "any symbol".to_owned() } else { s.symbols.join(", ") };
    let inside = data.times().iter().filter(|t| **t > s.from && **t <= s.to + i64::from(s.period_secs) * NANOS_PER_SEC).count();
    if inside == 0 {
        // Where the series is, to say so (read whole only on this error path).
        let whole = ReplayData::load(store, &ReplayConfig { from: None, to: None, ..replay.clone() }).ok().and_then(|d| d.span());
        let span = whole.map_or("the store has none at all".to_owned(), |(a, b)| format!("the store has them from {} to {}", crate::date(a), crate::date(b)));
        return Err(format!("no {series} of {what} between {} and {} ({span})", crate::date(s.from), crate::date(s.to)));
    }
    let data = std::sync::Arc::new(if s.shocks.is_empty() { data } else { shocked(&data, &s.shocks)? });
    let mut config = base.clone();
    for shock in &s.shocks {
        match shock {
            Shock::Spread { factor } => config.broker.spread_bps *= factor,
            Shock::Liquidity { participation } => config.broker.max_volume_fraction = *participation,
            _ => {}
        }
    }
    let run = backtest(&data, &config, Window { from: Some(warm_from), to: Some(s.to) }).map_err(|e| e.to_string())?;

    let start_equity = run.equity.iter().take_while(|p| p.time <= s.from).last().map_or(run.capital, |p| p.equity);
    let curve: Vec<(Timestamp, f64)> = run.equity.iter().filter(|p| p.time > s.from).map(|p| (p.time, p.equity)).collect();
    let end_equity = curve.last().map_or(start_equity, |p| p.1);
    let (mut peak, mut peak_at) = (start_equity, s.from);
    let (mut max_dd, mut dd_peak, mut trough) = (0.0f64, s.from, s.from);
    for &(t, e) in &curve {
        if e > peak {
            (peak, peak_at) = (e, t);
        }
        let dd = 1.0 - e / peak;
        if dd > max_dd {
            (max_dd, dd_peak, trough) = (dd, peak_at, t);
        }
    }
    let peak_level = curve.iter().find(|p| p.0 == dd_peak).map_or(start_equity, |p| p.1);
    let recovered = (max_dd > 0.0).then(|| curve.iter().find(|p| p.0 > trough && p.1 >= peak_level).map(|p| p.0)).flatten();
    let mut days = daily_equity(&run.equity.iter().filter(|p| p.time > s.from).copied().collect::<Vec<_>>());
    days.insert(0, crate::backtest::EquityPoint { time: s.from, equity: start_equity, gross_exposure: 0.0 });
    let worst_day = days.windows(2).map(|w| (crate::date(w[1].time - 1), w[1].equity / w[0].equity - 1.0)).min_by(|a, b| a.1.total_cmp(&b.1));
    let states: Vec<StateChange> = run.states.iter().filter(|c| c.time >= warm_from).cloned().collect();
    let during = |state: &str| states.iter().any(|c| c.time > s.from && c.state == state);
    let mut alarms = BTreeMap::new();
    for a in run.alarms.iter().filter(|a| a.time > s.from) {
        *alarms.entry(a.level.clone()).or_insert(0) += 1;
    }
    let result = StressResult {
        bars: run.bars,
        instruments: data.instruments().len(),
        start_equity,
        end_equity,
        total_return: end_equity / start_equity - 1.0,
        max_drawdown: max_dd,
        drawdown_peak: dd_peak,
        drawdown_trough: trough,
        recovered,
        recovery_days: recovered.map(|r| (r - trough) as f64 / DAY as f64),
        worst_day,
        halted: during("halted"),
        reduce_only: during("reduce-only"),
        states,
        protective_exits: run.protective_exits.iter().filter(|p| p.time >= s.from).cloned().collect(),
        stop_exits: run.summary.status.stats.path.stop_exits,
        alarms,
        trades_closed: run.trades.iter().filter(|t| t.closed.is_some_and(|c| c >= s.from)).count(),
        faults: run.faults.clone(),
        equity: curve,
    };
    let mut reasons = Vec::new();
    if result.max_drawdown > limits.max_drawdown {
        reasons.push(format!("max drawdown {:.2}% over the {:.2}% limit", 100.0 * result.max_drawdown, 100.0 * limits.max_drawdown));
    }
    if let Some(max) = limits.max_loss
        && -result.total_return > max
    {
        reasons.push(format!("loss {:.2}% over the {:.2}% limit", -100.0 * result.total_return, 100.0 * max));
    }
    for (plugin, why) in &result.faults {
        reasons.push(format!("plugin {plugin} faulted: {why}"));
    }
    Ok((reasons, result))
}

fn show_period(secs: u32) -> String {
    match secs {
        86_400 => "daily".into(),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_scenarios_are_named_with_the_field_at_fault() {
        let err = |text: &str| parse_scenarios(text, "s.toml").unwrap_err().to_string();
        assert!(err("").contains("no [[scenario]]"));
        let e = err("[[scenario]]\nname = \"x\"\nfrom = \"2020-01-01\"\nto = \"2019-01-01\"\n");
        assert!(e.contains("scenario `x`") && e.contains("not before"), "{e}");
        let e = err("[[scenario]]\nname = \"x\"\nfrom = \"2020-01-01\"\nto = \"2021-01-01\"\n[[scenario.shock]]\nkind = \"gap\"\nat = \"2020-06-01\"\npct = -100\n");
        assert!(e.contains("shock 1") && e.contains("non-positive"), "{e}");
        let e = err("[[scenario]]\nname = \"x\"\nfrom = \"2020-01-01\"\nto = \"2021-01-01\"\n[[scenario.shock]]\nkind = \"spread\"\nfactor = 2\nat = \"2020-01-01\"\n");
        assert!(e.contains("`at` is not one of its fields"), "{e}");
        let e = err("[[scenario]]\nname = \"x\"\nfrom = \"2020-01-01\"\nto = \"2021-01-01\"\n[[scenario.shock]]\nkind = \"meteor\"\n");
        assert!(e.contains("unknown shock kind `meteor`"), "{e}");
        let e = err("[[scenario]]\nname = \"x\"\nfrom = \"2020-01-01\"\nto = \"2021-01-01\"\nperiod = \"1w\"\n");
        assert!(e.contains("period `1w`"), "{e}");
        let two = "[[scenario]]\nname = \"a\"\nfrom = \"2020-01-01\"\nto = \"2021-01-01\"\n[[scenario]]\nname = \"b\"\nfrom = \"2020-01-01\"\nto = \"2021-01-01\"\n";
        let e = select(parse_scenarios(two, "s.toml").unwrap(), &["c".into()], "s.toml").unwrap_err().to_string();
        assert_eq!(e, "unknown scenario `c`: s.toml has a, b");
        assert_eq!(select(parse_scenarios(two, "s.toml").unwrap(), &["b".into()], "s.toml").unwrap()[0].name, "b");
    }

    fn bar(instrument: u32, day: i64, close: f64) -> Bar {
        Bar { instrument, start: day * DAY, period_secs: 86_400, open: close, high: close * 1.01, low: close * 0.99, close, volume: 1.0 }
    }

    #[test]
    fn a_gap_moves_every_price_from_its_bar_on() {
        let mut bars: Vec<Bar> = (0..4).map(|d| bar(0, d, 100.0)).collect();
        gap(&mut bars, &[true], 2 * DAY, -20.0);
        assert_eq!(bars.iter().map(|b| b.close).collect::<Vec<_>>(), [100.0, 100.0, 80.0, 80.0]);
        assert_eq!(bars[2].open, 80.0, "the gap is at the bar's open");
    }

    #[test]
    fn a_volatility_shock_multiplies_log_returns_inside_its_window_only() {
        let closes = [100.0, 110.0, 99.0, 108.9, 108.9 * 1.05];
        let mut bars: Vec<Bar> = closes.iter().enumerate().map(|(d, c)| bar(0, d as i64, *c)).collect();
        volatility(&mut bars, 1, DAY, 3 * DAY, 2.0);
        let r = |k: usize| (bars[k].close / bars[k - 1].close).ln();
        let o = |k: usize| (closes[k] / closes[k - 1]).ln();
        assert!((r(1) - 2.0 * o(1)).abs() < 1e-12 && (r(2) - 2.0 * o(2)).abs() < 1e-12, "doubled inside");
        assert!((r(3) - o(3)).abs() < 1e-12 && (r(4) - o(4)).abs() < 1e-12, "unchanged after, from the new level");
        // The range around the previous close doubles in log terms too: high/prev = (1.01 x 110/100)^2.
        assert!(((bars[1].high / 100.0).ln() - 2.0 * (110.0f64 * 1.01 / 100.0).ln()).abs() < 1e-12);
    }

    #[test]
    fn a_correlation_shock_makes_returns_move_as_one_with_their_own_volatility() {
        // Two instruments moving against each other.
        let a = [100.0, 102.0, 99.0, 103.0, 101.0, 104.0];
        let b = [50.0, 49.0, 51.0, 50.5, 52.0, 51.0];
        let mut bars = Vec::new();
        for d in 0..a.len() {
            bars.push(bar(0, d as i64, a[d]));
            bars.push(bar(1, d as i64, b[d]));
        }
        correlation(&mut bars, 2, DAY, 6 * DAY).unwrap();
        let rets = |i: u32| -> Vec<f64> {
            let c: Vec<f64> = bars.iter().filter(|x| x.instrument == i).map(|x| x.close).collect();
            c.windows(2).map(|w| (w[1] / w[0]).ln()).collect()
        };
        let (ra, rb) = (rets(0), rets(1));
        let (ma, mb) = (crate::metrics::mean(&ra), crate::metrics::mean(&rb));
        let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum::<f64>() / (ra.len() - 1) as f64;
        let corr = cov / (crate::metrics::std(&ra) * crate::metrics::std(&rb));
        assert!((corr - 1.0).abs() < 1e-12, "correlation {corr}");
        let own = |c: &[f64]| crate::metrics::std(&c.windows(2).map(|w| (w[1] / w[0]).ln()).collect::<Vec<_>>());
        assert!((crate::metrics::std(&ra) - own(&a)).abs() < 1e-12, "a keeps its volatility");
        assert!((crate::metrics::std(&rb) - own(&b)).abs() < 1e-12);
        // One instrument cannot be correlated with anything.
        let mut one: Vec<Bar> = a.iter().enumerate().map(|(d, c)| bar(0, d as i64, *c)).collect();
        assert!(correlation(&mut one, 1, DAY, 6 * DAY).unwrap_err().contains("at least two instruments"));
    }
}
