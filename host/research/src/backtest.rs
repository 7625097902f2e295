//! One backtest through the host's own pipeline: the same plugins, sandbox,
//! risk engine, order path and paper broker as a live run, over market data
//! loaded once ([`ReplayData`]), with the market clock the data's and the
//! journal in memory. What the report shows is read back from that journal
//! (equity points, fills, risk decisions), as `stratbox report` reads a live
//! run's: there is no second copy of the trading logic here.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use stratbox_engine::config::{ControlConfig, FeedConfig, HostConfig, Mode};
use stratbox_engine::{Host, RunSummary};
use stratbox_market::{NANOS_PER_SEC, ReplayData, Timestamp};
use stratbox_trading::{JournalEvent, PROTECTIVE_EXIT, RiskConfig, SideName};

use crate::metrics::{Conventions, Metrics, RelativeMetrics};
use crate::trades::{RoundTrip, TradeStats};

#[derive(Debug, thiserror::Error)]
pub enum ResearchError {
    #[error("cannot start the backtest host: {0}")]
    Host(#[from] stratbox_engine::HostError),
    #[error("plugin refused before the first bar: {0}")]
    PluginRefused(String),
    #[error("the window {from}..{to} holds no bars of the loaded data ({span})")]
    EmptyWindow { from: String, to: String, span: String },
}

/// Part of the loaded data, by bar start: `[from, to)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Window {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

/// The configuration a research run uses, from the operator's: backtest
/// mode (fuel metering, deterministic), the data's clock as fast as it goes,
/// the journal in memory, no control API and no status lines. Risk limits
/// stay the configured ones.
pub fn research_config(base: &HostConfig) -> HostConfig {
    let mut c = base.clone();
    c.mode = Mode::Backtest;
    c.pace_ms = 0;
    c.status_secs = 0;
    c.journal.in_memory = true;
    c.journal.resume = Some(false);
    c.control = ControlConfig { enabled: false, ..ControlConfig::default() };
    c.feed = FeedConfig::Replay(Default::default());
    c
}

/// The research risk profile: the given limits with the throttles (orders per
/// market second) and the open-order count lifted. Those guard a live loop
/// against a runaway plugin; a daily cross-section of 1,500 stocks arrives in
/// one market second and would be throttled for no reason of risk. Every
/// other limit (exposure, concentration, drawdown halt...) stays.
pub fn research_risk(mut risk: RiskConfig) -> RiskConfig {
    risk.orders_per_sec_per_plugin = u32::MAX;
    risk.orders_per_sec = u32::MAX;
    risk.max_open_orders = usize::MAX;
    risk
}

/// An anomaly detector's alarm.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmRecord {
    pub time: Timestamp,
    pub detector: String,
    /// elevated, severe or critical.
    pub level: String,
    /// `None`: market-wide.
    pub symbol: Option<String>,
    pub reason: String,
}

/// A trading state the risk engine set or lifted (breakers, halts, reduce-only), as journaled.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateChange {
    pub time: Timestamp,
    /// `None`: the whole account.
    pub plugin: Option<String>,
    /// active, reduce-only or halted.
    pub state: String,
    pub cause: String,
    pub reason: String,
}

/// A fill the broker made at a protective level (a stop-loss or take-profit reached).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProtectiveExit {
    pub time: Timestamp,
    pub plugin: String,
    pub symbol: String,
    pub price: f64,
}

/// A point of the equity curve (the journal's, one per event).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EquityPoint {
    pub time: Timestamp,
    pub equity: f64,
    pub gross_exposure: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FillRecord {
    pub time: Timestamp,
    pub plugin: String,
    pub symbol: String,
    /// Signed: positive bought.
    pub quantity: f64,
    pub price: f64,
    pub fee: f64,
    /// The position after the fill.
    pub position: f64,
}

/// A closed (or, at the end, still open) round trip of one plugin in one instrument.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trade {
    pub plugin: String,
    pub symbol: String,
    /// +1 long, -1 short.
    pub direction: i8,
    pub opened: Timestamp,
    pub closed: Option<Timestamp>,
    /// The largest size held.
    pub quantity: f64,
    pub entry_price: f64,
    pub exit_price: Option<f64>,
    /// Net of fees and financing (realised; open trades are left out of the statistics).
    pub pnl: f64,
}

/// One backtest's outcome.
pub struct Run {
    pub window: Window,
    pub capital: f64,
    pub equity: Vec<EquityPoint>,
    pub fills: Vec<FillRecord>,
    pub trades: Vec<Trade>,
    /// Per instrument, every book's P&L at the end (realised plus open at the last mark).
    pub contribution: BTreeMap<String, f64>,
    /// Orders refused by risk, by rule.
    pub refused: BTreeMap<String, u64>,
    /// Anomaly detectors' alarms, as journaled (market time of the bar that raised each).
    pub alarms: Vec<AlarmRecord>,
    /// Trading states set and lifted, in order.
    pub states: Vec<StateChange>,
    pub protective_exits: Vec<ProtectiveExit>,
    /// Plugins quarantined during the run, with the reason.
    pub faults: Vec<(String, String)>,
    pub summary: RunSummary,
    pub bars: u64,
    pub wall: Duration,
}

/// Runs `config`'s plugins over `window` of `data`.
pub fn backtest(data: &Arc<ReplayData>, config: &HostConfig, window: Window) -> Result<Run, ResearchError> {
    backtest_with_progress(data, config, window, &mut |_, _| {})
}

/// As [`backtest`], calling `progress(bars done, bars in all)` every few
/// hundred cross-sections (for a progress bar).
pub fn backtest_with_progress(data: &Arc<ReplayData>, config: &HostConfig, window: Window, progress: &mut dyn FnMut(u64, u64)) -> Result<Run, ResearchError> {
    let feed = data.feed(window.from, window.to);
    let total_bars = feed.remaining_bars() as u64;
    if feed.remaining() == 0 {
        let show = |t: Option<Timestamp>| t.map_or("-".to_owned(), crate::date);
        let span = data.span().map_or("no bars".to_owned(), |(a, b)| format!("{} to {}", crate::date(a), crate::date(b)));
        return Err(ResearchError::EmptyWindow { from: show(window.from), to: show(window.to), span });
    }
    let config = research_config(config);
    let capital = config.risk.capital;
    let (_commands, rx) = std::sync::mpsc::channel();
    let started = Instant::now();
    let mut host = Host::new(config, Box::new(feed), rx)?;
    if let Some(refused) = host.summary().status.stats.refused.first() {
        return Err(ResearchError::PluginRefused(refused.clone()));
    }
    // The host's own step, one event at a time (what `Host::run` does, with
    // no commands to serve and no pacing).
    let mut events = 0u64;
    while host.step() {
        events += 1;
        if events % 256 == 0 {
            progress(host.status().stats.bars, total_bars);
        }
    }
    if let Err(e) = host.order_path.flush() {
        tracing::error!(error = %e, "the in-memory journal could not be committed");
    }
    let summary = host.summary();
    progress(summary.status.stats.bars, total_bars);
    let wall = started.elapsed();
    let symbols: Vec<String> = data.instruments().iter().map(|i| i.symbol.clone()).collect();
    let mut run = Run {
        window,
        capital,
        equity: Vec::new(),
        fills: Vec::new(),
        trades: Vec::new(),
        contribution: BTreeMap::new(),
        refused: summary.status.risk.stats.rejected.iter().map(|(rule, n)| (format!("{rule:?}"), *n)).collect(),
        alarms: Vec::new(),
        states: Vec::new(),
        protective_exits: Vec::new(),
        faults: summary.plugins.iter().filter(|p| p.faults > 0).map(|p| (p.name.clone(), p.reason.clone().unwrap_or_default())).collect(),
        bars: summary.status.stats.bars,
        wall,
        summary,
    };
    {
        let world = host.world().clone();
        let ledger = world.ledger();
        for plugin in ledger.plugins() {
            let Some(book) = ledger.book(plugin) else { continue };
            for (id, (p, mark)) in &book.positions {
                let pnl = p.realised_pnl + p.quantity * (mark - p.average_price);
                *run.contribution.entry(symbols[*id as usize].clone()).or_default() += pnl;
            }
        }
    }
    let journal = host.order_path.committed_journal();
    let entries = journal.in_memory_entries().expect("research runs journal in memory");
    let mut open: HashMap<(String, u32), Trade> = HashMap::new();
    let mut held: HashMap<(String, u32), f64> = HashMap::new();
    let mut protective: HashSet<&str> = HashSet::new();
    for e in entries {
        match &e.event {
            JournalEvent::Risk { client_id, reason: Some(r), .. } if r == PROTECTIVE_EXIT => {
                protective.insert(client_id);
            }
            JournalEvent::TradingState { plugin, state, reason, cause, .. } => run.states.push(StateChange {
                time: e.time,
                plugin: plugin.clone(),
                state: serde_name(state),
                cause: serde_name(cause),
                reason: reason.clone(),
            }),
            JournalEvent::Equity { equity, gross_exposure, .. } => run.equity.push(EquityPoint { time: e.time, equity: *equity, gross_exposure: *gross_exposure }),
            JournalEvent::Fill { client_id, plugin, instrument, side, quantity, price, fee, .. } => {
                if protective.contains(client_id.as_str()) {
                    run.protective_exits.push(ProtectiveExit { time: e.time, plugin: plugin.clone(), symbol: symbols[*instrument as usize].clone(), price: *price });
                }
                let signed = if matches!(side, SideName::Buy) { *quantity } else { -*quantity };
                let key = (plugin.clone(), *instrument);
                let before = held.get(&key).copied().unwrap_or(0.0);
                let after = before + signed;
                let after = if after.abs() < 1e-9 { 0.0 } else { after };
                held.insert(key.clone(), after);
                let symbol = symbols[*instrument as usize].clone();
                run.fills.push(FillRecord { time: e.time, plugin: plugin.clone(), symbol: symbol.clone(), quantity: signed, price: *price, fee: *fee, position: after });
                book_trade(&mut open, &mut run.trades, key, symbol, before, signed, *price, *fee, e.time);
            }
            JournalEvent::Alarm { detector, level, symbol, reason } => {
                run.alarms.push(AlarmRecord { time: e.time, detector: detector.clone(), level: level.clone(), symbol: symbol.clone(), reason: reason.clone() })
            }
            JournalEvent::Financing { plugin, instrument, amount } => {
                if let Some(t) = open.get_mut(&(plugin.clone(), *instrument)) {
                    t.pnl -= amount;
                }
            }
            _ => {}
        }
    }
    let mut still_open: Vec<Trade> = open.into_values().collect();
    still_open.sort_by(|a, b| (a.opened, &a.symbol).cmp(&(b.opened, &b.symbol)));
    run.trades.extend(still_open);
    Ok(run)
}

/// A unit enum's serde name (`reduce-only`, `circuit-breaker`).
fn serde_name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// Books one fill into the round trips of its plugin and instrument: a fill
/// from flat opens one, back to flat closes it, through zero closes it and
/// opens the next with the rest (the fee split pro rata).
#[allow(clippy::too_many_arguments)]
fn book_trade(open: &mut HashMap<(String, u32), Trade>, closed: &mut Vec<Trade>, key: (String, u32), symbol: String, before: f64, signed: f64, price: f64, fee: f64, time: Timestamp) {
    let after = before + signed;
    let closing = if before != 0.0 && before.signum() != signed.signum() { signed.abs().min(before.abs()) } else { 0.0 };
    let opening = signed.abs() - closing;
    if closing > 0.0 {
        let t = open.get_mut(&key).expect("a position has its trade");
        t.pnl += closing * (price - t.entry_price) * f64::from(t.direction) - fee * closing / signed.abs();
        if after.abs() < 1e-9 || after.signum() != before.signum() {
            let mut t = open.remove(&key).expect("just seen");
            t.closed = Some(time);
            t.exit_price = Some(price);
            closed.push(t);
        }
    }
    if opening > 1e-9 {
        let fee_part = fee * opening / signed.abs();
        match open.get_mut(&key) {
            // Adding to a position: the entry price averages.
            Some(t) => {
                let size = (before.abs() + opening).max(1e-12);
                t.entry_price = (t.entry_price * before.abs() + price * opening) / size;
                t.quantity = t.quantity.max(size);
                t.pnl -= fee_part;
            }
            None => {
                let direction = if signed > 0.0 { 1 } else { -1 };
                let t = Trade { plugin: key.0.clone(), symbol, direction, opened: time, closed: None, quantity: opening, entry_price: price, exit_price: None, pnl: -fee_part };
                open.insert(key, t);
            }
        }
    }
}

/// The equity at the end of each UTC day (the last point of the day).
pub fn daily_equity(points: &[EquityPoint]) -> Vec<EquityPoint> {
    let day = 86_400 * NANOS_PER_SEC;
    let mut out: Vec<EquityPoint> = Vec::new();
    for p in points {
        // A daily bar closes at the next midnight: it belongs to the day it opened.
        let d = (p.time - 1).div_euclid(day);
        match out.last_mut() {
            Some(last) if (last.time - 1).div_euclid(day) == d => *last = *p,
            _ => out.push(*p),
        }
    }
    out
}

/// Simple returns of the end-of-day equity, the first from the starting capital.
pub fn daily_returns(capital: f64, points: &[EquityPoint]) -> Vec<f64> {
    let mut prev = capital;
    daily_equity(points)
        .iter()
        .map(|p| {
            let r = if prev != 0.0 { p.equity / prev - 1.0 } else { 0.0 };
            prev = p.equity;
            r
        })
        .collect()
}

/// Everything the report prints of a run.
#[derive(Debug, Clone, Serialize)]
pub struct RunMetrics {
    #[serde(flatten)]
    pub returns: Metrics,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub benchmark: Option<RelativeMetrics>,
    pub trades: TradeStats,
    /// Share of days with any position open.
    pub time_in_market: f64,
    /// Mean gross exposure over equity, end of day.
    pub exposure: f64,
    /// Traded notional a year over mean equity.
    pub annual_turnover: f64,
    pub fills: usize,
    pub fees: f64,
    pub refused_orders: u64,
}

impl RunMetrics {
    /// The metrics of a run that never traded (every field present; for the list of metric names).
    pub fn of_nothing() -> RunMetrics {
        let c = Conventions::default();
        RunMetrics {
            returns: Metrics::of(&[], c),
            benchmark: None,
            trades: TradeStats::of(&[]),
            time_in_market: 0.0,
            exposure: 0.0,
            annual_turnover: 0.0,
            fills: 0,
            fees: 0.0,
            refused_orders: 0,
        }
    }
}

impl Run {
    pub fn returns(&self) -> Vec<f64> {
        daily_returns(self.capital, &self.equity)
    }

    /// Closed round trips for the statistics.
    pub fn round_trips(&self) -> Vec<RoundTrip> {
        self.trades.iter().filter_map(|t| Some(RoundTrip { pnl: t.pnl, opened: t.opened, closed: t.closed? })).collect()
    }

    pub fn metrics(&self, c: Conventions, benchmark: Option<&[f64]>) -> RunMetrics {
        let returns = self.returns();
        let daily = daily_equity(&self.equity);
        let n = daily.len().max(1) as f64;
        let mean_equity = daily.iter().map(|p| p.equity).sum::<f64>() / n;
        let traded: f64 = self.fills.iter().map(|f| (f.quantity * f.price).abs()).sum();
        let years = daily.len() as f64 / c.periods_per_year;
        RunMetrics {
            returns: Metrics::of(&returns, c),
            benchmark: benchmark.filter(|b| b.len() == returns.len()).map(|b| RelativeMetrics::of(&returns, b, c)),
            trades: TradeStats::of(&self.round_trips()),
            time_in_market: daily.iter().filter(|p| p.gross_exposure > 0.0).count() as f64 / n,
            exposure: daily.iter().map(|p| if p.equity > 0.0 { p.gross_exposure / p.equity } else { 0.0 }).sum::<f64>() / n,
            annual_turnover: if years > 0.0 && mean_equity > 0.0 { traded / mean_equity / years } else { 0.0 },
            fills: self.fills.len(),
            fees: self.fills.iter().map(|f| f.fee).sum(),
            refused_orders: self.refused.values().sum(),
        }
    }
}

/// Daily returns of a benchmark, aligned to `days` (the run's end-of-day
/// points): one symbol's close-to-close return, or (no symbol) the
/// equal-weight mean of every instrument's. A day without a benchmark bar returns 0.
pub fn benchmark_returns(data: &Arc<ReplayData>, window: Window, symbol: Option<&str>, days: &[Timestamp]) -> Option<Vec<f64>> {
    let want = match symbol {
        Some(s) => Some(data.instruments().iter().position(|i| i.symbol == s)? as u32),
        None => None,
    };
    let day_of = |t: Timestamp| (t - 1).div_euclid(86_400 * NANOS_PER_SEC);
    // The last close of each instrument on the day before and the day in progress.
    let (mut before, mut today): (HashMap<u32, f64>, HashMap<u32, f64>) = (HashMap::new(), HashMap::new());
    let mut by_day: HashMap<i64, f64> = HashMap::new();
    let mut current: Option<i64> = None;
    let mut close_day = |before: &mut HashMap<u32, f64>, today: &mut HashMap<u32, f64>, d: i64| {
        let rs: Vec<f64> = today.iter().filter_map(|(id, c)| before.get(id).filter(|p| **p > 0.0).map(|p| c / p - 1.0)).collect();
        if !rs.is_empty() {
            by_day.insert(d, rs.iter().sum::<f64>() / rs.len() as f64);
        }
        before.extend(today.drain());
    };
    let mut feed = data.feed(window.from, window.to);
    while let Some(stratbox_market::MarketEvent::Bars(bars)) = stratbox_market::Feed::next_event(&mut feed) {
        let d = day_of(bars[0].start + i64::from(bars[0].period_secs) * NANOS_PER_SEC);
        if let Some(c) = current.filter(|c| *c != d) {
            close_day(&mut before, &mut today, c);
        }
        current = Some(d);
        for b in bars.iter().filter(|b| want.is_none_or(|w| w == b.instrument)) {
            today.insert(b.instrument, b.close);
        }
    }
    if let Some(c) = current {
        close_day(&mut before, &mut today, c);
    }
    Some(days.iter().map(|t| by_day.get(&day_of(*t)).copied().unwrap_or(0.0)).collect())
}
