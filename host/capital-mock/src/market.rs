//! The mock's market: quotes from a [`QuoteSource`] (the built-in simulator,
//! or a replay of stored bars) on a clock that can run faster than real
//! time, turned into what Capital.com publishes (quotes on every change, bid
//! and ask OHLC bars), and the ground truth of every bar it published.
//!
//! - Simulator: each step (`quote_secs` of market time) gives every epic a
//!   new mid; its quote is stamped at a staggered offset inside the step so
//!   the epics do not all tick at once.
//! - Replay: each stored bar becomes four quotes at its open, a quarter, half
//!   and three quarters through it: open, then low and high (high first on a
//!   down bar), then close, with the configured spread around each.
//!
//! Minute bars are the OHLC of the bids and of the asks quoted in the
//! minute, closed when the clock passes the minute's end; longer
//! resolutions are aggregated from minutes.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use stratbox_market::{SimulatedMarket, SimulatorConfig, on_grid};

/// OHLC of one side.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ohlc {
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
}

impl Ohlc {
    fn new(p: f64) -> Self {
        Self { open: p, high: p, low: p, close: p }
    }

    fn update(&mut self, p: f64) {
        self.high = self.high.max(p);
        self.low = self.low.min(p);
        self.close = p;
    }

    fn merge(&mut self, next: &Ohlc) {
        self.high = self.high.max(next.high);
        self.low = self.low.min(next.low);
        self.close = next.close;
    }
}

/// A published bar: open time (ms), bid and ask OHLC, and the number of quotes in it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MockBar {
    pub t: i64,
    pub bid: Ohlc,
    pub ask: Ohlc,
    pub quotes: u64,
}

/// A quote as published.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MockQuote {
    pub epic: usize,
    pub time_ms: i64,
    pub bid: f64,
    pub bid_qty: f64,
    pub ask: f64,
    pub ask_qty: f64,
}

/// What the market publishes, in time order.
#[derive(Debug, Clone, PartialEq)]
pub enum Publication {
    Quote(MockQuote),
    /// A closed bar of `resolution_secs` for `epic`.
    Bar { epic: usize, resolution_secs: u32, bar: MockBar },
}

pub const RESOLUTIONS: [(&str, u32); 8] = [
    ("MINUTE", 60),
    ("MINUTE_5", 300),
    ("MINUTE_15", 900),
    ("MINUTE_30", 1800),
    ("HOUR", 3600),
    ("HOUR_4", 14_400),
    ("DAY", 86_400),
    ("WEEK", 604_800),
];

/// Where the mock's quotes come from: slices of market time, in order.
pub trait QuoteSource: Send {
    /// The quotes of the next slice (in time order) and the slice's end, ms;
    /// `None` when the source is exhausted.
    fn next_slice(&mut self) -> Option<(Vec<MockQuote>, i64)>;
    /// Market time (ms) the source starts at.
    fn start_ms(&self) -> i64;
}

/// The built-in simulator, one quote per epic per step.
pub struct SimulatedQuotes {
    sim: SimulatedMarket,
    step_ms: i64,
    next: i64,
}

impl SimulatedQuotes {
    pub fn new(epics: usize, simulator: SimulatorConfig, quote_secs: u32, start_ms: i64) -> Self {
        let step_ms = i64::from(quote_secs.max(1)) * 1000;
        let start_ms = start_ms.div_euclid(step_ms) * step_ms;
        let sim = SimulatedMarket::new(SimulatorConfig { instruments: epics, bar_secs: quote_secs.max(1), start: start_ms * 1_000_000, bars: None, quotes: false, ..simulator });
        Self { sim, step_ms, next: start_ms }
    }
}

impl QuoteSource for SimulatedQuotes {
    fn next_slice(&mut self) -> Option<(Vec<MockQuote>, i64)> {
        let start = self.next;
        let bars = self.sim.next_bars();
        let n = bars.len() as i64;
        let quotes = bars
            .iter()
            .enumerate()
            .map(|(i, b)| {
                // Staggered inside the step, strictly after its start.
                let t = start + (i as i64 + 1) * self.step_ms / (n + 1);
                let q = self.sim.quote_at(i, b.close, t * 1_000_000);
                MockQuote { epic: i, time_ms: t, bid: q.bid, bid_qty: q.bid_size, ask: q.ask, ask_qty: q.ask_size }
            })
            .collect();
        self.next = start + self.step_ms;
        Some((quotes, self.next))
    }

    fn start_ms(&self) -> i64 {
        self.next
    }
}

/// Stored bars replayed as quotes (see the module docs).
pub struct ReplayedQuotes {
    /// Bars by open time (ns): (epic, bar).
    bars: std::collections::btree_map::IntoIter<i64, Vec<(usize, stratbox_market::Bar)>>,
    spread_bps: f64,
    tick: f64,
    start_ms: i64,
}

impl ReplayedQuotes {
    /// `bars[e]` are epic `e`'s bars, any order.
    pub fn new(bars: Vec<Vec<stratbox_market::Bar>>, spread_bps: f64, tick: f64) -> Self {
        let mut by_time: BTreeMap<i64, Vec<(usize, stratbox_market::Bar)>> = BTreeMap::new();
        for (e, list) in bars.into_iter().enumerate() {
            for b in list {
                by_time.entry(b.start).or_default().push((e, b));
            }
        }
        let start_ms = by_time.keys().next().map_or(0, |t| t.div_euclid(1_000_000));
        Self { bars: by_time.into_iter(), spread_bps, tick, start_ms }
    }

    fn quote(&self, epic: usize, time_ms: i64, price: f64, size: f64) -> MockQuote {
        let half_ticks = (0.5 * price * self.spread_bps * 1e-4 / self.tick).round().max(0.0);
        let bid_ticks = ((price / self.tick).round() - half_ticks).max(1.0);
        let ask_ticks = bid_ticks + (2.0 * half_ticks).max(1.0);
        MockQuote { epic, time_ms, bid: on_grid(bid_ticks, self.tick), bid_qty: size, ask: on_grid(ask_ticks, self.tick), ask_qty: size }
    }
}

impl QuoteSource for ReplayedQuotes {
    fn next_slice(&mut self) -> Option<(Vec<MockQuote>, i64)> {
        let (start_ns, bars) = self.bars.next()?;
        let start = start_ns.div_euclid(1_000_000);
        let mut quotes = Vec::with_capacity(4 * bars.len());
        let mut end = start;
        for (e, b) in &bars {
            let period = i64::from(b.period_secs) * 1000;
            end = end.max(start + period);
            let path = if b.close >= b.open { [b.open, b.low, b.high, b.close] } else { [b.open, b.high, b.low, b.close] };
            let size = (b.volume / 4.0).round().max(1.0);
            for (k, price) in path.into_iter().enumerate() {
                quotes.push(self.quote(*e, start + k as i64 * period / 4, price, size));
            }
        }
        quotes.sort_by_key(|q| (q.time_ms, q.epic));
        Some((quotes, end))
    }

    fn start_ms(&self) -> i64 {
        self.start_ms
    }
}

pub struct MockMarket {
    source: Box<dyn QuoteSource>,
    /// Market time (ms) up to which publications have been released.
    now_ms: i64,
    /// End (ms) of the last slice taken from the source.
    generated_to: i64,
    exhausted: bool,
    pending: VecDeque<Publication>,
    building: Vec<Option<MockBar>>,
    pub closed: Vec<bool>,
    /// Every closed minute bar, per epic (the ground truth).
    pub minutes: Vec<BTreeMap<i64, MockBar>>,
    pub quotes_published: u64,
}

impl MockMarket {
    pub fn new(epics: usize, source: Box<dyn QuoteSource>, closed: Vec<bool>) -> Self {
        let start_ms = source.start_ms();
        Self {
            source,
            exhausted: false,
            now_ms: start_ms,
            generated_to: start_ms,
            pending: VecDeque::new(),
            building: vec![None; epics],
            closed,
            minutes: vec![BTreeMap::new(); epics],
            quotes_published: 0,
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// Moves the clock to `to_ms` and returns what was published up to then.
    pub fn advance(&mut self, to_ms: i64) -> Vec<Publication> {
        while !self.exhausted && self.generated_to <= to_ms {
            self.step();
        }
        self.now_ms = self.now_ms.max(to_ms);
        let mut out = Vec::new();
        while let Some(p) = self.pending.front() {
            let t = match p {
                Publication::Quote(q) => q.time_ms,
                Publication::Bar { bar, resolution_secs, .. } => bar.t + i64::from(*resolution_secs) * 1000,
            };
            if t > to_ms {
                break;
            }
            let p = self.pending.pop_front().expect("front exists");
            if let Publication::Quote(_) = p {
                self.quotes_published += 1;
            }
            out.push(p);
        }
        out
    }

    /// One slice of the source: its quotes (closed markets are silent), and the bars that close in it.
    fn step(&mut self) {
        let Some((quotes, end)) = self.source.next_slice() else {
            self.exhausted = true;
            // Close what is building: the data has ended.
            for i in 0..self.building.len() {
                if let Some(b) = self.building[i].take() {
                    self.close_minute(i, b);
                }
            }
            return;
        };
        let quotes: Vec<MockQuote> = quotes.into_iter().filter(|q| !self.closed[q.epic]).collect();
        self.generated_to = end;
        // Bars whose minute ended at or before this step's quotes are published first.
        for q in quotes {
            let minute = q.time_ms.div_euclid(60_000) * 60_000;
            if let Some(b) = self.building[q.epic]
                && b.t != minute
            {
                self.close_minute(q.epic, b);
                self.building[q.epic] = None;
            }
            let b = self.building[q.epic].get_or_insert(MockBar { t: minute, bid: Ohlc::new(q.bid), ask: Ohlc::new(q.ask), quotes: 0 });
            b.bid.update(q.bid);
            b.ask.update(q.ask);
            b.quotes += 1;
            self.pending.push_back(Publication::Quote(q));
        }
        // Minutes that ended with this step but got no quote after them yet.
        let end = self.generated_to;
        for i in 0..self.building.len() {
            if let Some(b) = self.building[i]
                && b.t + 60_000 <= end
            {
                self.close_minute(i, b);
                self.building[i] = None;
            }
        }
        // Keep publications in time order (bars are stamped at their close).
        self.pending.make_contiguous().sort_by_key(|p| match p {
            Publication::Quote(q) => (q.time_ms, 1),
            Publication::Bar { bar, resolution_secs, .. } => (bar.t + i64::from(*resolution_secs) * 1000, 0),
        });
    }

    fn close_minute(&mut self, epic: usize, bar: MockBar) {
        self.minutes[epic].insert(bar.t, bar);
        let end = bar.t + 60_000;
        for (_, secs) in RESOLUTIONS {
            let span = i64::from(secs) * 1000;
            if end % span != 0 {
                continue;
            }
            if let Some(b) = self.aggregate(epic, secs, end - span) {
                self.pending.push_back(Publication::Bar { epic, resolution_secs: secs, bar: b });
            }
        }
    }

    /// The `resolution_secs` bar of `epic` opening at `t` (ms), from the minutes.
    pub fn aggregate(&self, epic: usize, resolution_secs: u32, t: i64) -> Option<MockBar> {
        let end = t + i64::from(resolution_secs) * 1000;
        let mut out: Option<MockBar> = None;
        for m in self.minutes[epic].range(t..end).map(|(_, m)| m) {
            match &mut out {
                None => out = Some(MockBar { t, ..*m }),
                Some(o) => {
                    o.bid.merge(&m.bid);
                    o.ask.merge(&m.ask);
                    o.quotes += m.quotes;
                }
            }
        }
        out
    }

    /// Closed bars of `epic` at `resolution_secs` opening in `[from, to]` (ms), oldest first.
    pub fn bars(&self, epic: usize, resolution_secs: u32, from: i64, to: i64) -> Vec<MockBar> {
        let span = i64::from(resolution_secs) * 1000;
        let mut t = from.div_euclid(span) * span;
        if t < from {
            t += span;
        }
        let mut out = Vec::new();
        // Only bars that have closed by now.
        while t <= to && t + span <= self.now_ms {
            if let Some(b) = self.aggregate(epic, resolution_secs, t) {
                out.push(b);
            }
            t += span;
        }
        out
    }

    /// The last quote of `epic` (for market snapshots).
    pub fn last_mid(&self, epic: usize) -> Option<(f64, f64)> {
        self.building[epic].map(|b| (b.bid.close, b.ask.close)).or_else(|| self.minutes[epic].values().next_back().map(|b| (b.bid.close, b.ask.close)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_the_ohlc_of_the_quotes_and_publications_are_in_time_order() {
        let start = 1_700_000_100_000; // on a 5-minute boundary
        let mut m = MockMarket::new(3, Box::new(SimulatedQuotes::new(3, SimulatorConfig::default(), 1, start)), vec![false, false, true]);
        let out = m.advance(start + 10 * 60_000);
        let quotes: Vec<&MockQuote> = out.iter().filter_map(|p| if let Publication::Quote(q) = p { Some(q) } else { None }).collect();
        assert_eq!(quotes.len(), 2 * 600, "one quote a second for each open epic (the third is closed)");
        assert!(quotes.iter().all(|q| q.epic != 2 && q.bid < q.ask));
        let times: Vec<i64> = out
            .iter()
            .map(|p| match p {
                Publication::Quote(q) => q.time_ms,
                Publication::Bar { bar, resolution_secs, .. } => bar.t + i64::from(*resolution_secs) * 1000,
            })
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "in time order");
        let minute_bars: Vec<_> = out.iter().filter(|p| matches!(p, Publication::Bar { epic: 0, resolution_secs: 60, .. })).collect();
        assert_eq!(minute_bars.len(), 10);
        for p in minute_bars {
            let Publication::Bar { bar, .. } = p else { unreachable!() };
            let qs: Vec<_> = quotes.iter().filter(|q| q.epic == 0 && q.time_ms >= bar.t && q.time_ms < bar.t + 60_000).collect();
            assert_eq!(bar.quotes as usize, qs.len());
            assert_eq!(bar.bid.open, qs[0].bid);
            assert_eq!(bar.ask.close, qs.last().unwrap().ask);
            assert_eq!(bar.bid.high, qs.iter().map(|q| q.bid).fold(f64::MIN, f64::max));
            assert_eq!(bar.ask.low, qs.iter().map(|q| q.ask).fold(f64::MAX, f64::min));
        }
        let five = m.bars(0, 300, start, start + 10 * 60_000);
        assert_eq!(five.len(), 2);
        assert_eq!(five[0].quotes, 300);
        assert!(m.bars(2, 60, start, start + 10 * 60_000).is_empty(), "a closed market has no bars");
    }

    #[test]
    fn replayed_bars_become_quotes_whose_bars_are_the_originals_plus_the_spread() {
        use stratbox_market::Bar;
        let t0 = 1_381_239_000_000i64; // 2013-10-08 13:30 UTC
        let bar = |k: i64, o: f64, h: f64, l: f64, c: f64| Bar { instrument: 0, start: (t0 + k * 60_000) * 1_000_000, period_secs: 60, open: o, high: h, low: l, close: c, volume: 400.0 };
        let bars = vec![bar(0, 100.0, 101.0, 99.5, 100.5), bar(1, 100.5, 100.6, 99.0, 99.2), bar(3, 99.2, 99.4, 99.1, 99.3)];
        let mut m = MockMarket::new(1, Box::new(ReplayedQuotes::new(vec![bars.clone()], 2.0, 0.01)), vec![false]);
        assert_eq!(m.now_ms(), t0, "the clock starts at the first bar");
        let out = m.advance(t0 + 10 * 60_000);
        assert_eq!(out.iter().filter(|p| matches!(p, Publication::Quote(_))).count(), 12, "four quotes per bar");
        let minutes: Vec<MockBar> = m.minutes[0].values().copied().collect();
        assert_eq!(minutes.iter().map(|b| b.t).collect::<Vec<_>>(), [t0, t0 + 60_000, t0 + 180_000], "no bar for the minute without data");
        for (got, want) in minutes.iter().zip(&bars) {
            let mid = |o: &Ohlc| [(o.open), (o.high), (o.low), (o.close)];
            let (b, a) = (mid(&got.bid), mid(&got.ask));
            for (k, w) in [want.open, want.high, want.low, want.close].into_iter().enumerate() {
                assert!(b[k] < w + 1e-9 && a[k] > w - 1e-9 && a[k] - b[k] < 0.05, "field {k}: bid {} ask {} around {w}", b[k], a[k]);
            }
        }
    }
}
