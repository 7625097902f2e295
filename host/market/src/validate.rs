//! Validation and cleaning of market records before anything is stored or
//! dispatched. A rejected record is never silently dropped: it is counted by
//! reason and instrument and kept, with its reason, in the quarantine.
//!
//! Checks, in order (the first failure is the reason):
//! 1. required fields present ([`Reject::missing`], raised by the parsers);
//! 2. every number finite; prices > 0; sizes and volume >= 0;
//! 3. prices inside the configured band, if any;
//! 4. quotes not crossed (bid <= ask); bars OHLC-consistent
//!    (low <= open, close <= high);
//! 5. time: not beyond `max_future_skew` ahead of the clock, not older than
//!    `max_age`, not before the instrument's previous record;
//! 6. not a repeat of the instrument's previous record (quotes and bars; trades
//!    carry no id, and identical trades in the same millisecond are real);
//! 7. not a spike: further than `spike_k` robust deviations (1.4826 x MAD)
//!    from the median of the last `spike_window` accepted prices. The window
//!    starts afresh after a gap longer than `spike_max_gap_ns` (a file with
//!    two periods years apart), and a new level is accepted once
//!    `spike_confirmations` consecutive "spikes" agree with each other (a real
//!    shift, like a currency unpegged, is not rejected forever; the first
//!    prints of it stay in the quarantine).

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::Serialize;

use super::{Bar, InstrumentId, Quote, Timestamp, Trade};

/// Why a record was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RejectReason {
    MissingField,
    NotFinite,
    NonPositivePrice,
    NegativeSize,
    OutsideBand,
    CrossedQuote,
    OhlcInconsistent,
    FromTheFuture,
    TooOld,
    OutOfOrder,
    Duplicate,
    Spike,
}

/// A rejection: the reason, and a sentence naming the field and value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reject {
    pub reason: RejectReason,
    pub detail: String,
}

impl Reject {
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Self { reason, detail: detail.into() }
    }

    /// A required field was empty or absent.
    pub fn missing(field: &str) -> Self {
        Self::new(RejectReason::MissingField, format!("`{field}` is missing"))
    }
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

/// A record the validator can check.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Record {
    Trade(Trade),
    Quote(#[serde(skip)] Quote),
    Bar(#[serde(skip)] Bar),
}

impl Record {
    pub fn instrument(&self) -> InstrumentId {
        match self {
            Record::Trade(t) => t.instrument,
            Record::Quote(q) => q.instrument,
            Record::Bar(b) => b.instrument,
        }
    }

    pub fn time(&self) -> Timestamp {
        match self {
            Record::Trade(t) => t.time,
            Record::Quote(q) => q.time,
            Record::Bar(b) => b.start,
        }
    }

    /// The price the spike check follows: trade price, quote mid, bar close.
    fn reference_price(&self) -> f64 {
        match self {
            Record::Trade(t) => t.price,
            Record::Quote(q) => 0.5 * (q.bid + q.ask),
            Record::Bar(b) => b.close,
        }
    }
}

/// What a spike does to a record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SpikePolicy {
    /// Rejected and quarantined (live ticks and quotes: a bad print must not trade).
    #[default]
    Drop,
    /// Kept, counted and reported; what follows is judged against the new
    /// level (history: real markets jump, and a backtest must see the jump).
    Flag,
    /// Not checked.
    Off,
}

impl std::str::FromStr for SpikePolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "drop" => Ok(Self::Drop),
            "flag" => Ok(Self::Flag),
            "off" => Ok(Self::Off),
            other => Err(format!("`{other}`: expected drop, flag or off")),
        }
    }
}

/// The validator's verdict on an accepted record.
#[derive(Debug, Clone, PartialEq)]
pub enum Accepted {
    Clean,
    /// Kept, but it failed a check that only flags (a spike in history).
    Flagged(Reject),
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ValidatorConfig {
    /// What a spike does: dropped (the default, for live data), flagged or unchecked.
    pub spikes: SpikePolicy,
    /// Accepted price range, inclusive (`None`: any positive price).
    pub price_band: Option<(f64, f64)>,
    /// How far ahead of the clock a timestamp may be (clock skew), ns.
    pub max_future_skew_ns: i64,
    /// How old a record may be against the clock, ns (`None`: any age, as in replays).
    pub max_age_ns: Option<i64>,
    pub spike_window: usize,
    /// Robust deviations from the rolling median beyond which a price is a spike.
    pub spike_k: f64,
    /// Accepted prices needed before the spike check applies.
    pub spike_min_samples: usize,
    /// A gap longer than this restarts the spike window, ns.
    pub spike_max_gap_ns: i64,
    /// Consecutive, mutually consistent spikes that establish a new level.
    pub spike_confirmations: usize,
}

impl Default for ValidatorConfig {
    fn default() -> Self {
        Self {
            spikes: SpikePolicy::Drop,
            price_band: None,
            max_future_skew_ns: 2_000_000_000,
            max_age_ns: None,
            spike_window: 50,
            spike_k: 20.0,
            spike_min_samples: 20,
            spike_max_gap_ns: 7 * 86_400 * 1_000_000_000,
            spike_confirmations: 3,
        }
    }
}

impl ValidatorConfig {
    /// For historical bars: spikes are flagged, not dropped.
    pub fn historical() -> Self {
        Self { spikes: SpikePolicy::Flag, ..Self::default() }
    }
}

/// A rejected record and why.
#[derive(Debug, Clone, Serialize)]
pub struct Quarantined {
    pub record: Record,
    pub reject: Reject,
}

#[derive(Debug, Default)]
struct InstrumentState {
    last: Option<Record>,
    recent: VecDeque<f64>,
    /// `recent`, kept sorted incrementally: median and MAD without a sort per record.
    sorted: Vec<f64>,
    /// Consecutive prices rejected as spikes, most recent last.
    suspects: Vec<f64>,
    /// Prices the window needs before it judges (fewer after a confirmed new
    /// level, which is itself evidence); `None`: the configured minimum.
    min_samples: Option<usize>,
}

/// Stateful validator (per-instrument order, duplicates, rolling median).
#[derive(Debug, Default)]
pub struct Validator {
    config: ValidatorConfig,
    state: HashMap<InstrumentId, InstrumentState>,
    counts: BTreeMap<(InstrumentId, RejectReason), u64>,
    accepted: u64,
    /// Accepted records flagged, by (instrument, reason).
    flags: BTreeMap<(InstrumentId, RejectReason), u64>,
    /// The latest rejections, at most [`Validator::QUARANTINE_KEPT`] (the
    /// store keeps every one; this is the in-memory view of a live feed).
    quarantine: VecDeque<Quarantined>,
}

fn finite(name: &str, x: f64) -> Result<(), Reject> {
    if x.is_finite() { Ok(()) } else { Err(Reject::new(RejectReason::NotFinite, format!("`{name}` is {x}"))) }
}

fn price(name: &str, x: f64, band: Option<(f64, f64)>) -> Result<(), Reject> {
    finite(name, x)?;
    if x <= 0.0 {
        return Err(Reject::new(RejectReason::NonPositivePrice, format!("`{name}` is {x}")));
    }
    match band {
        Some((lo, hi)) if x < lo || x > hi => Err(Reject::new(RejectReason::OutsideBand, format!("`{name}` {x} is outside [{lo}, {hi}]"))),
        _ => Ok(()),
    }
}

fn size(name: &str, x: f64) -> Result<(), Reject> {
    finite(name, x)?;
    if x < 0.0 { Err(Reject::new(RejectReason::NegativeSize, format!("`{name}` is {x}"))) } else { Ok(()) }
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 { sorted[n / 2] } else { 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]) }
}

/// Median absolute deviation from `med` of a sorted slice, in O(n): the
/// deviations grow outward from the median on both sides, so merging the two
/// sides visits them in order.
fn mad(sorted: &[f64], med: f64) -> f64 {
    let n = sorted.len();
    let split = sorted.partition_point(|x| *x < med);
    let (mut left, mut right) = (split, split); // next: sorted[left - 1] and sorted[right]
    let mut prev = 0.0;
    for k in 0..=n / 2 {
        let l = (left > 0).then(|| med - sorted[left - 1]);
        let r = (right < n).then(|| sorted[right] - med);
        let d = match (l, r) {
            (Some(l), Some(r)) if l <= r => {
                left -= 1;
                l
            }
            (_, Some(r)) => {
                right += 1;
                r
            }
            (Some(l), None) => {
                left -= 1;
                l
            }
            (None, None) => break,
        };
        if k == n / 2 {
            return if n % 2 == 1 { d } else { 0.5 * (prev + d) };
        }
        prev = d;
    }
    prev
}

impl InstrumentState {
    fn insert_sorted(&mut self, x: f64) {
        let at = self.sorted.partition_point(|v| *v < x);
        self.sorted.insert(at, x);
    }

    fn remove_sorted(&mut self, x: f64) {
        let at = self.sorted.partition_point(|v| *v < x);
        if self.sorted.get(at) == Some(&x) {
            self.sorted.remove(at);
        }
    }

    fn reset_window(&mut self, prices: impl IntoIterator<Item = f64>) {
        self.recent = prices.into_iter().collect();
        self.sorted = self.recent.iter().copied().collect();
        self.sorted.sort_by(f64::total_cmp);
    }
}

impl Validator {
    pub fn new(config: ValidatorConfig) -> Self {
        Self { config, ..Default::default() }
    }

    /// Rejections kept in memory (the latest).
    pub const QUARANTINE_KEPT: usize = 1_000;

    /// Checks `record` against the clock `now`; on rejection it is counted
    /// and quarantined, and the reason returned.
    pub fn check(&mut self, record: Record, now: Timestamp) -> Result<Accepted, Reject> {
        match self.evaluate(&record, now) {
            Ok(()) => {
                if let Some(s) = self.state.get_mut(&record.instrument()) {
                    s.suspects.clear();
                }
                self.accept(record);
                Ok(Accepted::Clean)
            }
            Err(reject) if reject.reason == RejectReason::Spike && self.config.spikes == SpikePolicy::Flag => {
                // Presumed a real jump: kept, and what follows is judged
                // against itself, as after a gap.
                let state = self.state.get_mut(&record.instrument()).expect("a spike needs history");
                state.suspects.clear();
                state.reset_window([]);
                state.min_samples = None;
                *self.flags.entry((record.instrument(), reject.reason)).or_default() += 1;
                self.accept(record);
                Ok(Accepted::Flagged(reject))
            }
            Err(reject) if reject.reason == RejectReason::Spike && self.confirms_new_level(&record) => {
                let state = self.state.get_mut(&record.instrument()).expect("a spike needs history");
                let mut confirmed = std::mem::take(&mut state.suspects);
                confirmed.pop(); // the current print; `accept` adds it
                state.reset_window(confirmed);
                state.min_samples = Some(self.config.spike_confirmations);
                self.accept(record);
                Ok(Accepted::Clean)
            }
            Err(reject) => {
                self.reject(record, reject.clone());
                Err(reject)
            }
        }
    }

    /// Records a spike; true when it and the spikes just before it agree,
    /// which makes them a new level rather than bad prints.
    fn confirms_new_level(&mut self, record: &Record) -> bool {
        let (need, k) = (self.config.spike_confirmations, self.config.spike_k);
        let Some(state) = self.state.get_mut(&record.instrument()) else { return false };
        state.suspects.push(record.reference_price());
        if need == 0 || state.suspects.len() < need {
            return false;
        }
        let recent = &state.suspects[state.suspects.len() - need..];
        let mut sorted = recent.to_vec();
        sorted.sort_by(f64::total_cmp);
        let med = median(&sorted);
        let agree = recent.iter().all(|x| (x - med).abs() <= k * med.abs() * 1e-3);
        if agree {
            state.suspects = recent.to_vec();
        }
        agree
    }

    /// Counts and quarantines a record rejected before it could be checked
    /// (a parser's missing field, say).
    pub fn reject(&mut self, record: Record, reject: Reject) {
        *self.counts.entry((record.instrument(), reject.reason)).or_default() += 1;
        if self.quarantine.len() == Self::QUARANTINE_KEPT {
            self.quarantine.pop_front();
        }
        self.quarantine.push_back(Quarantined { record, reject });
    }

    fn evaluate(&self, record: &Record, now: Timestamp) -> Result<(), Reject> {
        let band = self.config.price_band;
        match record {
            Record::Trade(t) => {
                price("price", t.price, band)?;
                size("size", t.size)?;
            }
            Record::Quote(q) => {
                price("bid", q.bid, band)?;
                price("ask", q.ask, band)?;
                size("bid_size", q.bid_size)?;
                size("ask_size", q.ask_size)?;
                if q.bid > q.ask {
                    return Err(Reject::new(RejectReason::CrossedQuote, format!("bid {} is above ask {}", q.bid, q.ask)));
                }
            }
            Record::Bar(b) => {
                for (name, x) in [("open", b.open), ("high", b.high), ("low", b.low), ("close", b.close)] {
                    price(name, x, band)?;
                }
                size("volume", b.volume)?;
                if b.high < b.low || b.open > b.high || b.open < b.low || b.close > b.high || b.close < b.low {
                    return Err(Reject::new(
                        RejectReason::OhlcInconsistent,
                        format!("open {} high {} low {} close {} (need low <= open, close <= high)", b.open, b.high, b.low, b.close),
                    ));
                }
            }
        }
        let t = record.time();
        if t > now.saturating_add(self.config.max_future_skew_ns) {
            return Err(Reject::new(RejectReason::FromTheFuture, format!("timestamp is {} ms ahead of the clock", (t - now) / 1_000_000)));
        }
        if self.config.max_age_ns.is_some_and(|age| t < now.saturating_sub(age)) {
            return Err(Reject::new(RejectReason::TooOld, format!("timestamp is {} s old", (now - t) / 1_000_000_000)));
        }
        let Some(state) = self.state.get(&record.instrument()) else { return Ok(()) };
        if let Some(last) = &state.last {
            if t < last.time() {
                return Err(Reject::new(RejectReason::OutOfOrder, format!("timestamp {t} is before the previous record's {}", last.time())));
            }
            if !matches!(record, Record::Trade(_)) && last == record {
                return Err(Reject::new(RejectReason::Duplicate, "repeats the previous record"));
            }
            if let Record::Bar(b) = record
                && t == last.time()
            {
                return Err(Reject::new(RejectReason::OutOfOrder, format!("a different bar starting at {t} was already accepted ({b:?})")));
            }
        }
        let after_gap = state.last.as_ref().is_some_and(|l| t - l.time() > self.config.spike_max_gap_ns);
        if self.config.spikes != SpikePolicy::Off && !after_gap && state.recent.len() >= state.min_samples.unwrap_or(self.config.spike_min_samples).max(1) {
            let med = median(&state.sorted);
            let mad = 1.4826 * mad(&state.sorted, med);
            let p = record.reference_price();
            // A window of identical prices has no dispersion: measure against 0.1% of the price instead.
            let scale = mad.max(med.abs() * 1e-3);
            if (p - med).abs() > self.config.spike_k * scale {
                return Err(Reject::new(
                    RejectReason::Spike,
                    format!("price {p} is {:.1} robust deviations from the rolling median {med}", (p - med).abs() / scale),
                ));
            }
        }
        Ok(())
    }

    fn accept(&mut self, record: Record) {
        self.accepted += 1;
        let (window, gap) = (self.config.spike_window, self.config.spike_max_gap_ns);
        let state = self.state.entry(record.instrument()).or_default();
        if state.last.as_ref().is_some_and(|l| record.time() - l.time() > gap) {
            state.reset_window([]); // a new period: judge it against itself
            state.min_samples = None;
        }
        if window > 0 {
            if state.recent.len() == window
                && let Some(old) = state.recent.pop_front()
            {
                state.remove_sorted(old);
            }
            let price = record.reference_price();
            state.recent.push_back(price);
            state.insert_sorted(price);
        }
        state.last = Some(record);
    }

    pub fn accepted(&self) -> u64 {
        self.accepted
    }

    /// Rejections by (instrument, reason).
    pub fn counts(&self) -> &BTreeMap<(InstrumentId, RejectReason), u64> {
        &self.counts
    }

    /// Rejections by reason, over all instruments.
    pub fn counts_by_reason(&self) -> BTreeMap<RejectReason, u64> {
        let mut by = BTreeMap::new();
        for ((_, reason), n) in &self.counts {
            *by.entry(*reason).or_default() += n;
        }
        by
    }

    /// Accepted records flagged, by reason, over all instruments.
    pub fn flags_by_reason(&self) -> BTreeMap<RejectReason, u64> {
        let mut by = BTreeMap::new();
        for ((_, reason), n) in &self.flags {
            *by.entry(*reason).or_default() += n;
        }
        by
    }

    /// The latest rejections, oldest first.
    pub fn quarantine(&self) -> impl ExactSizeIterator<Item = &Quarantined> {
        self.quarantine.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trade(time: i64, price: f64) -> Record {
        Record::Trade(Trade { instrument: 1, time, price, size: 100.0 })
    }

    fn bar(start: i64, o: f64, h: f64, l: f64, c: f64) -> Record {
        Record::Bar(Bar { instrument: 1, start, period_secs: 60, open: o, high: h, low: l, close: c, volume: 10.0 })
    }

    fn reason(v: &mut Validator, r: Record) -> Option<RejectReason> {
        v.check(r, 1_000_000).err().map(|e| e.reason)
    }

    #[test]
    fn each_rule_names_its_reason_and_everything_is_counted() {
        let mut v = Validator::new(ValidatorConfig { price_band: Some((1.0, 1000.0)), ..Default::default() });
        assert_eq!(reason(&mut v, trade(10, f64::NAN)), Some(RejectReason::NotFinite));
        assert_eq!(reason(&mut v, trade(10, -1.0)), Some(RejectReason::NonPositivePrice));
        assert_eq!(reason(&mut v, trade(10, 5000.0)), Some(RejectReason::OutsideBand));
        assert_eq!(reason(&mut v, Record::Trade(Trade { instrument: 1, time: 10, price: 5.0, size: -1.0 })), Some(RejectReason::NegativeSize));
        let crossed = Quote { instrument: 1, time: 10, bid: 10.1, bid_size: 1.0, ask: 10.0, ask_size: 1.0 };
        assert_eq!(reason(&mut v, Record::Quote(crossed)), Some(RejectReason::CrossedQuote));
        assert_eq!(reason(&mut v, bar(10, 5.0, 4.0, 3.0, 4.5)), Some(RejectReason::OhlcInconsistent));
        assert_eq!(reason(&mut v, trade(10_000_000_000, 5.0)), Some(RejectReason::FromTheFuture));
        assert_eq!(reason(&mut v, trade(20, 5.0)), None);
        assert_eq!(reason(&mut v, trade(19, 5.0)), Some(RejectReason::OutOfOrder));
        assert_eq!(reason(&mut v, trade(20, 5.0)), None, "identical trades in the same instant are real");
        assert_eq!(reason(&mut v, bar(30, 5.0, 5.0, 5.0, 5.0)), None);
        assert_eq!(reason(&mut v, bar(30, 5.0, 5.0, 5.0, 5.0)), Some(RejectReason::Duplicate));
        assert_eq!(reason(&mut v, bar(30, 5.0, 6.0, 5.0, 6.0)), Some(RejectReason::OutOfOrder));
        assert_eq!(v.quarantine().len(), 10);
        assert_eq!(v.counts().values().sum::<u64>(), 10);
        assert_eq!(v.accepted(), 3);
    }

    #[test]
    fn the_linear_mad_equals_the_sorting_one() {
        let mut seed = 7u64;
        for n in 1..60 {
            let mut xs: Vec<f64> = (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((seed >> 33) % 1000) as f64 / 10.0
                })
                .collect();
            xs.sort_by(f64::total_cmp);
            let med = median(&xs);
            let mut dev: Vec<f64> = xs.iter().map(|x| (x - med).abs()).collect();
            dev.sort_by(f64::total_cmp);
            assert_eq!(mad(&xs, med), median(&dev), "n = {n}: {xs:?}");
        }
    }

    #[test]
    fn spikes_are_judged_against_the_rolling_median() {
        let mut v = Validator::new(ValidatorConfig::default());
        for i in 0..40 {
            assert_eq!(reason(&mut v, trade(i, 100.0 + (i % 5) as f64 * 0.01)), None);
        }
        assert_eq!(reason(&mut v, trade(50, 100.3)), None, "a move of a few ticks is fine");
        assert_eq!(reason(&mut v, trade(51, 130.0)), Some(RejectReason::Spike));
        assert_eq!(reason(&mut v, trade(52, 100.02)), None, "the spike did not enter the window");
        // A new level: two prints quarantined, the third (agreeing) establishes it.
        assert_eq!(reason(&mut v, trade(53, 120.0)), Some(RejectReason::Spike));
        assert_eq!(reason(&mut v, trade(54, 120.1)), Some(RejectReason::Spike));
        assert_eq!(reason(&mut v, trade(55, 119.9)), None, "three agreeing prints are a new level");
        assert_eq!(reason(&mut v, trade(56, 120.05)), None);
        // Isolated bad prints that disagree with each other never confirm.
        assert_eq!(reason(&mut v, trade(57, 60.0)), Some(RejectReason::Spike));
        assert_eq!(reason(&mut v, trade(58, 200.0)), Some(RejectReason::Spike));
        assert_eq!(reason(&mut v, trade(59, 90.0)), Some(RejectReason::Spike));
        // After a long gap the window starts afresh.
        let week = 8 * 86_400 * 1_000_000_000;
        assert_eq!(v.check(trade(week, 80.0), week).err().map(|e| e.reason), None);
        let mut old = Validator::new(ValidatorConfig { max_age_ns: Some(100), ..Default::default() });
        assert_eq!(reason(&mut old, trade(10, 1.0)), Some(RejectReason::TooOld));
    }

    #[test]
    fn in_history_a_spike_is_kept_and_flagged_and_the_new_level_judged_afresh() {
        let mut v = Validator::new(ValidatorConfig::historical());
        for i in 0..40 {
            assert_eq!(v.check(trade(i, 100.0 + (i % 5) as f64 * 0.01), 1 << 40), Ok(Accepted::Clean));
        }
        // ACER on 2013-02-05: from about 100 to 404, and it stayed there.
        let jump = v.check(trade(40, 404.0), 1 << 40).expect("kept");
        assert!(matches!(&jump, Accepted::Flagged(r) if r.reason == RejectReason::Spike), "{jump:?}");
        for i in 41..60 {
            assert_eq!(v.check(trade(i, 404.0 + (i % 3) as f64), 1 << 40), Ok(Accepted::Clean), "the new level, day {i}");
        }
        assert_eq!((v.accepted(), v.quarantine().len()), (60, 0), "nothing dropped");
        assert_eq!(v.flags_by_reason(), BTreeMap::from([(RejectReason::Spike, 1)]));
        // Other checks still reject, and `off` skips the spike check alone.
        assert_eq!(v.check(trade(61, f64::NAN), 1 << 40).err().map(|e| e.reason), Some(RejectReason::NotFinite));
        let mut off = Validator::new(ValidatorConfig { spikes: SpikePolicy::Off, ..Default::default() });
        for i in 0..40 {
            off.check(trade(i, 100.0), 1 << 40).unwrap();
        }
        assert_eq!(off.check(trade(40, 404.0), 1 << 40), Ok(Accepted::Clean));
    }
}
