//! The live portfolio's one-day value at risk, by historical simulation: the
//! account's net positions now, marked at their last prices, revalued on each
//! of the last `window_days` days' returns of their instruments; VaR is the
//! loss at the configured confidence (linear interpolation between order
//! statistics, as the research crate's historical VaR).
//!
//! Daily returns come from the bars themselves, whatever their period: an
//! instrument's last price of a UTC day is its close; when its first bar of
//! a later day arrives, that day's return is final. Days an instrument did not
//! trade count as a zero return for it. Until `min_days` days are known, or
//! while the account holds nothing, there is no VaR (and no breach).
//!
//! The estimate is refreshed per cross-section of bars, so it follows the
//! positions (what was just bought counts at once) as well as the history.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use stratbox_market::{InstrumentId, NANOS_PER_SEC, Timestamp};

/// `[risk.var_limit]`: reduce-only while the one-day VaR exceeds a share of equity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VarLimitConfig {
    /// 0.95 or 0.99, say.
    pub confidence: f64,
    /// Days of history revalued.
    pub window_days: usize,
    /// Fewer known days than this: no estimate.
    pub min_days: usize,
    /// The limit, as a fraction of equity.
    pub max_fraction: f64,
    /// The breach ends when VaR is back at or under this share of the limit
    /// (below 1, so a VaR hovering at the limit does not flip the state every bar).
    pub resume_at: f64,
}

impl Default for VarLimitConfig {
    fn default() -> Self {
        Self { confidence: 0.99, window_days: 250, min_days: 20, max_fraction: 0.05, resume_at: 0.9 }
    }
}

impl VarLimitConfig {
    pub fn check(&self) -> Result<(), String> {
        if !(self.confidence > 0.5 && self.confidence < 1.0) {
            return Err(format!("risk.var_limit.confidence {}: must be in (0.5, 1), e.g. 0.99", self.confidence));
        }
        if self.window_days < 2 || self.min_days < 2 || self.min_days > self.window_days {
            return Err(format!("risk.var_limit: min_days {} and window_days {} must satisfy 2 <= min_days <= window_days", self.min_days, self.window_days));
        }
        if !(self.max_fraction > 0.0 && self.max_fraction.is_finite()) {
            return Err(format!("risk.var_limit.max_fraction {}: a positive fraction of equity", self.max_fraction));
        }
        if !(self.resume_at > 0.0 && self.resume_at <= 1.0) {
            return Err(format!("risk.var_limit.resume_at {}: in (0, 1]", self.resume_at));
        }
        Ok(())
    }
}

/// The last estimate, for `stratbox status` (and `stratbox var`, which
/// estimates the other ways from `returns`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VarView {
    pub confidence: f64,
    /// Days of history the estimate used.
    pub days: usize,
    /// One-day VaR in the account currency (a loss, positive).
    pub var: f64,
    /// Over equity.
    pub fraction: f64,
    pub limit_fraction: f64,
    /// Market time of the estimate.
    pub at: Timestamp,
    /// The positions' one-day P&L on each day of the window, oldest first,
    /// as fractions of equity (what the historical VaR is the quantile of).
    pub returns: Vec<f64>,
}

#[derive(Debug, Default, Clone, Copy)]
struct InstrumentDays {
    /// (UTC day, last price seen that day) of the current day.
    today: Option<(i64, f64)>,
    /// Close of the day before `today`.
    prev_close: Option<f64>,
}

/// Daily return history per instrument and the portfolio's VaR from it.
#[derive(Debug)]
pub struct PortfolioVar {
    pub config: VarLimitConfig,
    /// By instrument id.
    instruments: Vec<InstrumentDays>,
    /// One row per day with a final return for some instrument, ascending,
    /// at most the window: that day's return of each instrument by id (zero
    /// where it did not trade). Rows are dense so revaluing a book is a
    /// gather per held instrument from memory that stays in cache.
    rows: VecDeque<(i64, Vec<f64>)>,
    held: Vec<(usize, f64)>,
    /// The scenarios' P&L in day order, then sorted (reused buffers).
    by_day: Vec<f64>,
    scenarios: Vec<f64>,
    /// The last estimate, without its `returns` (see [`PortfolioVar::view`]).
    pub last: Option<VarView>,
    last_equity: f64,
}

fn day_of(t: Timestamp) -> i64 {
    t.div_euclid(86_400 * NANOS_PER_SEC)
}

impl PortfolioVar {
    pub fn new(config: VarLimitConfig) -> Self {
        Self { config, instruments: Vec::new(), rows: VecDeque::new(), held: Vec::new(), by_day: Vec::new(), scenarios: Vec::new(), last: None, last_equity: 0.0 }
    }

    /// The last estimate with its day-by-day returns (built here, at a
    /// status request, not on every refresh).
    pub fn view(&self) -> Option<VarView> {
        let mut v = self.last.clone()?;
        let equity = self.last_equity;
        v.returns = self.by_day.iter().map(|p| if equity > 0.0 { p / equity } else { f64::NAN }).collect();
        Some(v)
    }

    /// Days of history known.
    pub fn days(&self) -> usize {
        self.rows.len()
    }

    /// `instrument`'s return of `day`, now final, into that day's row.
    fn record(&mut self, instrument: usize, day: i64, r: f64) {
        let k = match self.rows.back() {
            Some((d, _)) if *d == day => self.rows.len() - 1,
            Some((d, _)) if *d > day => match self.rows.binary_search_by_key(&day, |row| row.0) {
                Ok(k) => k,
                // Older than the window: nothing to keep.
                Err(0) if self.rows.len() >= self.config.window_days => return,
                Err(k) => {
                    self.rows.insert(k, (day, Vec::new()));
                    k
                }
            },
            _ => {
                self.rows.push_back((day, Vec::new()));
                self.rows.len() - 1
            }
        };
        let row = &mut self.rows[k].1;
        if row.len() <= instrument {
            row.resize(instrument + 1, 0.0);
        }
        row[instrument] = r;
        if self.rows.len() > self.config.window_days {
            self.rows.pop_front();
        }
    }

    /// A price of `instrument` at `now` (bar closes, in time order).
    pub fn on_price(&mut self, instrument: InstrumentId, price: f64, now: Timestamp) {
        if !(price.is_finite() && price > 0.0) {
            return;
        }
        let (i, day) = (instrument as usize, day_of(now));
        if self.instruments.len() <= i {
            self.instruments.resize(i + 1, InstrumentDays::default());
        }
        let h = &mut self.instruments[i];
        match h.today {
            Some((d, _)) if d == day => h.today = Some((day, price)),
            Some((d, close)) if day > d => {
                let prev = h.prev_close.replace(close);
                h.today = Some((day, price));
                if let Some(prev) = prev {
                    self.record(i, d, close / prev - 1.0);
                }
            }
            Some(_) => {} // out of order: ignored
            None => h.today = Some((day, price)),
        }
    }

    /// Re-estimates VaR for the account's `positions` (net signed quantity)
    /// marked at `mark`, with `equity`; `None` without enough history or positions.
    pub fn estimate(&mut self, positions: &HashMap<InstrumentId, f64>, mark: impl Fn(InstrumentId) -> Option<f64>, equity: f64, now: Timestamp) -> Option<VarView> {
        let n = self.rows.len();
        self.last = None;
        if n < self.config.min_days {
            return None;
        }
        self.held.clear();
        self.held.extend(positions.iter().filter(|(_, q)| **q != 0.0).filter_map(|(&i, &q)| Some((i as usize, q * mark(i)?))));
        if self.held.is_empty() {
            return None;
        }
        self.by_day.clear();
        self.by_day.extend(self.rows.iter().map(|(_, row)| self.held.iter().map(|&(i, value)| value * row.get(i).copied().unwrap_or(0.0)).sum::<f64>()));
        self.scenarios.clear();
        self.scenarios.extend_from_slice(&self.by_day);
        self.scenarios.sort_by(f64::total_cmp);
        self.last_equity = equity;
        let rank = (n - 1) as f64 * (1.0 - self.config.confidence);
        let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
        let q = self.scenarios[lo] + (self.scenarios[hi] - self.scenarios[lo]) * (rank - lo as f64);
        let var = (-q).max(0.0);
        let view = VarView { confidence: self.config.confidence, days: n, var, fraction: if equity > 0.0 { var / equity } else { f64::INFINITY }, limit_fraction: self.config.max_fraction, at: now, returns: Vec::new() };
        self.last = Some(view.clone());
        Some(view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400 * NANOS_PER_SEC;

    fn config(min_days: usize) -> VarLimitConfig {
        VarLimitConfig { confidence: 0.95, window_days: 100, min_days, max_fraction: 0.02, resume_at: 0.9 }
    }

    #[test]
    fn var_is_the_quantile_of_todays_positions_revalued_on_past_days() {
        let mut v = PortfolioVar::new(config(10));
        // Instrument 0: returns alternating +1% / -2%, intraday bars too (only the last of a day counts).
        let mut price = 100.0;
        for d in 0..41 {
            v.on_price(0, price * 0.97, d * DAY + 3_600 * NANOS_PER_SEC);
            v.on_price(0, price, d * DAY + 7_200 * NANOS_PER_SEC);
            price *= if d % 2 == 0 { 1.01 } else { 0.98 };
        }
        // 41 days seen: 39 final returns (the first day has no previous close, the last is not over).
        assert_eq!(v.days(), 39);
        let positions = HashMap::from([(0u32, 10.0)]);
        let view = v.estimate(&positions, |_| Some(50.0), 10_000.0, 41 * DAY).unwrap();
        // Position 500; scenarios are +5 (20 days) or -10 (19 days): the 5% quantile is -10.
        assert!((view.var - 10.0).abs() < 1e-9, "{view:?}");
        assert!((view.fraction - 0.001).abs() < 1e-12);
        // The view carries the day-by-day P&L over equity, oldest first: +0.05% on day 0's +1%.
        let full = v.view().unwrap();
        assert_eq!(full.returns.len(), 39);
        assert!((full.returns[0] - 5.0 / 10_000.0).abs() < 1e-12 && (full.returns[1] + 10.0 / 10_000.0).abs() < 1e-12, "{:?}", &full.returns[..2]);
        // A short position loses on the up days.
        let short = HashMap::from([(0u32, -10.0)]);
        let view = v.estimate(&short, |_| Some(50.0), 10_000.0, 41 * DAY).unwrap();
        assert!((view.var - 5.0).abs() < 1e-9, "{view:?}");
    }

    #[test]
    fn no_estimate_without_history_or_positions() {
        let mut v = PortfolioVar::new(config(10));
        for d in 0..5 {
            v.on_price(1, 100.0 + d as f64, d * DAY);
        }
        let positions = HashMap::from([(1u32, 5.0)]);
        assert_eq!(v.estimate(&positions, |_| Some(100.0), 1e4, 5 * DAY), None);
        for d in 5..30 {
            v.on_price(1, 100.0 + d as f64, d * DAY);
        }
        assert!(v.estimate(&positions, |_| Some(100.0), 1e4, 30 * DAY).is_some());
        assert_eq!(v.estimate(&HashMap::new(), |_| Some(100.0), 1e4, 30 * DAY), None);
        assert!(config(1).check().is_err() && config(10).check().is_ok());
    }

    #[test]
    fn days_an_instrument_missed_count_as_zero_for_it() {
        let mut v = PortfolioVar::new(config(3));
        // Instrument 0 trades every day and falls 10% a day; instrument 1 only every other day.
        let mut p = 100.0;
        for d in 0..12 {
            v.on_price(0, p, d * DAY);
            if d % 2 == 0 {
                v.on_price(1, 50.0, d * DAY);
            }
            p *= 0.9;
        }
        let positions = HashMap::from([(1u32, 1.0)]);
        // Instrument 1 never moved: VaR zero, whatever days it missed.
        assert_eq!(v.estimate(&positions, |_| Some(50.0), 1e4, 12 * DAY).unwrap().var, 0.0);
        let positions = HashMap::from([(0u32, 1.0)]);
        let view = v.estimate(&positions, |_| Some(10.0), 1e4, 12 * DAY).unwrap();
        assert!((view.var - 1.0).abs() < 1e-9, "{view:?}");
    }
}
