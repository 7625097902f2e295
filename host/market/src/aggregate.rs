//! Trades to bars, and bars to longer bars.
//!
//! Boundaries: a bar of period `p` covers `[k*p, (k+1)*p)` in ns since the
//! Unix epoch (so 1d bars are UTC days; exchange sessions come with the
//! instrument calendar). A trade exactly on a boundary opens the next bar.
//!
//! Minutes (periods) without trades produce no bar, as exchange and vendor
//! feeds do: a gap in the bar series means no trading, and a consumer that
//! needs a continuous series carries the last close forward itself.
//!
//! Late trades: a bar stays open until the newest trade seen for its
//! instrument (the watermark) passes its end by the grace window; a trade for
//! a bar already emitted is counted as late and not applied (bars, once
//! emitted, never change).

use std::collections::{BTreeMap, HashMap};

use super::{Bar, InstrumentId, NANOS_PER_SEC, Timestamp, Trade};

#[derive(Debug, Clone, Copy)]
struct Building {
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: f64,
}

impl Building {
    fn new(price: f64, size: f64) -> Self {
        Self { open: price, high: price, low: price, close: price, volume: size }
    }

    fn add(&mut self, price: f64, size: f64) {
        self.high = self.high.max(price);
        self.low = self.low.min(price);
        self.close = price;
        self.volume += size;
    }
}

#[derive(Debug, Default)]
struct Series {
    open: BTreeMap<Timestamp, Building>,
    watermark: Timestamp,
    /// Bars starting before this have been emitted.
    emitted_until: Timestamp,
}

/// Builds bars of one period from trades, per instrument.
#[derive(Debug)]
pub struct BarAggregator {
    period_ns: i64,
    period_secs: u32,
    grace_ns: i64,
    series: HashMap<InstrumentId, Series>,
    late: u64,
}

impl BarAggregator {
    /// Bars of `period_secs`, closing `grace_ms` after their end.
    pub fn new(period_secs: u32, grace_ms: u64) -> Self {
        Self {
            period_ns: i64::from(period_secs) * NANOS_PER_SEC,
            period_secs,
            grace_ns: grace_ms as i64 * 1_000_000,
            series: HashMap::new(),
            late: 0,
        }
    }

    fn bar(&self, instrument: InstrumentId, start: Timestamp, b: Building) -> Bar {
        Bar { instrument, start, period_secs: self.period_secs, open: b.open, high: b.high, low: b.low, close: b.close, volume: b.volume }
    }

    /// Adds a trade; returns the bars it closed, oldest first.
    pub fn push(&mut self, t: &Trade) -> Vec<Bar> {
        let start = t.time - t.time.rem_euclid(self.period_ns);
        let s = self.series.entry(t.instrument).or_default();
        if start < s.emitted_until {
            self.late += 1;
            return Vec::new();
        }
        s.open.entry(start).and_modify(|b| b.add(t.price, t.size)).or_insert_with(|| Building::new(t.price, t.size));
        s.watermark = s.watermark.max(t.time);
        let watermark = s.watermark;
        self.close_through(t.instrument, watermark - self.grace_ns)
    }

    /// Closes every bar of `instrument` that ended at or before `until`.
    fn close_through(&mut self, instrument: InstrumentId, until: Timestamp) -> Vec<Bar> {
        let period = self.period_ns;
        let Some(s) = self.series.get_mut(&instrument) else { return Vec::new() };
        let mut done = Vec::new();
        while let Some((&start, _)) = s.open.first_key_value() {
            if start + period > until {
                break;
            }
            let (start, b) = s.open.pop_first().expect("non-empty");
            s.emitted_until = s.emitted_until.max(start + period);
            done.push((start, b));
        }
        done.into_iter().map(|(start, b)| self.bar(instrument, start, b)).collect()
    }

    /// Closes bars by the clock, for quiet instruments (live feeds).
    pub fn advance(&mut self, now: Timestamp) -> Vec<Bar> {
        let until = now - self.grace_ns;
        let mut ids: Vec<InstrumentId> = self.series.keys().copied().collect();
        ids.sort_unstable();
        ids.into_iter().flat_map(|i| self.close_through(i, until)).collect()
    }

    /// Closes everything (end of data).
    pub fn flush(&mut self) -> Vec<Bar> {
        self.advance(Timestamp::MAX - self.grace_ns)
    }

    /// Trades that arrived after their bar was emitted.
    pub fn late_trades(&self) -> u64 {
        self.late
    }
}

/// Combines bars into bars of a longer period (5m, 15m, 1h, 4h, 1d from 1m),
/// emitting each when a bar of a later period arrives, or on `flush`.
#[derive(Debug)]
pub struct Resampler {
    period_ns: i64,
    period_secs: u32,
    open: HashMap<InstrumentId, Bar>,
}

impl Resampler {
    pub fn new(period_secs: u32) -> Self {
        Self { period_ns: i64::from(period_secs) * NANOS_PER_SEC, period_secs, open: HashMap::new() }
    }

    /// Adds a shorter bar; returns the longer bar it completed, if any.
    pub fn push(&mut self, bar: &Bar) -> Option<Bar> {
        let start = bar.start - bar.start.rem_euclid(self.period_ns);
        let fresh = Bar { start, period_secs: self.period_secs, ..*bar };
        match self.open.get_mut(&bar.instrument) {
            Some(b) if b.start == start => {
                b.high = b.high.max(bar.high);
                b.low = b.low.min(bar.low);
                b.close = bar.close;
                b.volume += bar.volume;
                None
            }
            Some(b) => Some(std::mem::replace(b, fresh)),
            None => {
                self.open.insert(bar.instrument, fresh);
                None
            }
        }
    }

    /// The bars still open, by instrument.
    pub fn flush(&mut self) -> Vec<Bar> {
        let mut out: Vec<Bar> = self.open.drain().map(|(_, b)| b).collect();
        out.sort_by_key(|b| (b.instrument, b.start));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = NANOS_PER_SEC;

    fn t(secs: f64, price: f64) -> Trade {
        Trade { instrument: 7, time: (secs * S as f64) as i64, price, size: 1.0 }
    }

    #[test]
    fn trades_become_minute_bars_with_exact_boundaries_and_grace() {
        let mut a = BarAggregator::new(60, 2_000);
        assert!(a.push(&t(0.0, 10.0)).is_empty());
        assert!(a.push(&t(59.999, 12.0)).is_empty());
        assert!(a.push(&t(60.0, 11.0)).is_empty(), "the boundary trade opens the next bar; the first is still in grace");
        assert!(a.push(&t(61.0, 9.0)).is_empty());
        assert!(a.push(&t(59.5, 8.0)).is_empty(), "a late trade within grace still counts");
        let closed = a.push(&t(62.0, 11.5));
        assert_eq!(closed.len(), 1);
        let b = closed[0];
        assert_eq!((b.start, b.open, b.high, b.low, b.close, b.volume), (0, 10.0, 12.0, 8.0, 8.0, 3.0));
        assert!(a.push(&t(30.0, 1.0)).is_empty());
        assert_eq!(a.late_trades(), 1, "after emission a late trade is counted, not applied");
        // Minutes 2 and 3 have no trades: no bars for them.
        let closed = a.push(&t(240.0 + 2.5, 13.0));
        assert_eq!(closed.iter().map(|b| b.start / S).collect::<Vec<_>>(), vec![60]);
        assert_eq!(a.flush().iter().map(|b| b.start / S).collect::<Vec<_>>(), vec![240]);
    }

    #[test]
    fn minute_bars_resample_to_five_minutes() {
        let mut r = Resampler::new(300);
        let m = |i: i64, o: f64, h: f64, l: f64, c: f64| Bar { instrument: 1, start: i * 60 * S, period_secs: 60, open: o, high: h, low: l, close: c, volume: 1.0 };
        for (i, bar) in [m(0, 1.0, 2.0, 0.5, 1.5), m(1, 1.5, 3.0, 1.0, 2.0), m(4, 2.0, 2.5, 0.2, 2.2)].iter().enumerate() {
            assert_eq!(r.push(bar), None, "bar {i} is inside the first five minutes");
        }
        let done = r.push(&m(5, 9.0, 9.0, 9.0, 9.0)).expect("the next period closes the first");
        assert_eq!((done.start, done.period_secs, done.open, done.high, done.low, done.close, done.volume), (0, 300, 1.0, 3.0, 0.2, 2.2, 3.0));
        assert_eq!(r.flush()[0].start, 300 * S);
    }
}
