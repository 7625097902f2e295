//! Replay of stored market data as a feed: bars of the chosen symbols,
//! period and price source, streamed from the store one block-window at a
//! time and delivered as cross-sections (bars closing together). The market
//! clock is the data's, so a replay is deterministic whatever its pace:
//! `speed` plays it in market time (60: a minute of data per wall second),
//! otherwise the runner's `pace_ms` spaces events evenly, or 0 runs it as
//! fast as possible.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Bar, Feed, FeedPoll, Instrument, InstrumentId, MarketEvent, NANOS_PER_SEC, Timestamp, TradingHours};
use crate::store::{MarketStore, PriceSource, Series, StoreConfig, StoreError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplayConfig {
    /// Symbols to replay; empty: every symbol stored with this series.
    pub symbols: Vec<String>,
    pub period_secs: u32,
    pub source: PriceSource,
    /// First bar start and end (exclusive), ns since the epoch (UTC).
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    /// Market seconds per wall second (`None`: not paced by market time).
    pub speed: Option<f64>,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        Self { symbols: Vec::new(), period_secs: 86_400, source: PriceSource::Trade, from: None, to: None, speed: None }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("replay: {0}")]
    Store(#[from] StoreError),
    #[error("replay: no instrument `{symbol}` in the store at {path} (import it with `stratbox data import`)")]
    UnknownSymbol { symbol: String, path: String },
    #[error("replay: the store at {path} holds no {period_secs}s {price_source:?} bars")]
    Nothing { path: String, period_secs: u32, price_source: PriceSource },
}

pub struct ReplayFeed {
    store: MarketStore,
    instruments: Vec<Instrument>,
    hours: Vec<Option<TradingHours>>,
    /// Store id of each instrument (the feed's ids are indexes into `instruments`).
    store_ids: Vec<InstrumentId>,
    series: Series,
    period_secs: u32,
    next_from: Timestamp,
    end: Timestamp,
    window: i64,
    ready: VecDeque<MarketEvent>,
    speed: Option<f64>,
    /// The first event's market time and the wall instant it was delivered.
    anchor: Option<(Timestamp, std::time::Instant)>,
}

impl ReplayFeed {
    pub fn open(store_path: &Path, config: &ReplayConfig) -> Result<Self, ReplayError> {
        let store = MarketStore::open(store_path, StoreConfig::default())?;
        let series = Series::Bars { period_secs: config.period_secs, source: config.source };
        let path = store_path.display().to_string();
        let stats: Vec<_> = store.stats()?.into_iter().filter(|s| s.series == series).collect();
        let symbols: Vec<String> = if config.symbols.is_empty() {
            let mut all: Vec<String> = stats.iter().map(|s| s.symbol.clone()).collect();
            all.sort();
            all
        } else {
            config.symbols.clone()
        };
        if symbols.is_empty() {
            return Err(ReplayError::Nothing { path, period_secs: config.period_secs, price_source: config.source });
        }
        let mut store_ids = Vec::with_capacity(symbols.len());
        let mut instruments = Vec::with_capacity(symbols.len());
        let mut hours = Vec::with_capacity(symbols.len());
        for (i, symbol) in symbols.iter().enumerate() {
            let id = store.instrument_id_of(symbol).ok_or_else(|| ReplayError::UnknownSymbol { symbol: symbol.clone(), path: path.clone() })?;
            store_ids.push(id);
            // What the store knows of the instrument (a collector records it); else US-equity defaults.
            let meta = store.meta(symbol)?;
            let (tick_size, lot_size, currency) = meta.as_ref().map_or((0.01, 1.0, "USD".to_owned()), |m| (m.tick_size, m.lot_size, m.currency.clone()));
            instruments.push(Instrument { id: i as u32, symbol: symbol.clone(), tick_size, lot_size, currency });
            hours.push(meta.and_then(|m| m.trading_hours));
        }
        let first = stats.iter().filter_map(|s| s.first).min().unwrap_or(0);
        let last = stats.iter().filter_map(|s| s.last).max().unwrap_or(0);
        Ok(Self {
            store,
            instruments,
            hours,
            store_ids,
            series,
            period_secs: config.period_secs,
            next_from: config.from.unwrap_or(first),
            end: config.to.unwrap_or(last.saturating_add(1)),
            // The store's bar blocks: reading one window touches one block per symbol.
            window: i64::from(config.period_secs) * i64::from(StoreConfig::default().bars_per_block) * NANOS_PER_SEC,
            ready: VecDeque::new(),
            speed: config.speed.filter(|s| s.is_finite() && *s > 0.0),
            anchor: None,
        })
    }

    /// When the next event is due on the wall clock (market-time pacing).
    fn due(&self, event_time: Timestamp) -> Option<std::time::Instant> {
        let (speed, (t0, wall0)) = (self.speed?, self.anchor?);
        let market_secs = (event_time - t0) as f64 / NANOS_PER_SEC as f64;
        Some(wall0 + std::time::Duration::from_secs_f64((market_secs / speed).max(0.0)))
    }

    /// Loads the next window of bars into `ready`; false when the data is exhausted.
    fn load_window(&mut self) -> Result<bool, StoreError> {
        while self.ready.is_empty() && self.next_from < self.end {
            let to = self.next_from.saturating_add(self.window).min(self.end);
            let mut by_close: BTreeMap<Timestamp, Vec<Bar>> = BTreeMap::new();
            for (k, id) in self.store_ids.iter().enumerate() {
                for r in self.store.range(*id, self.series, self.next_from, to)? {
                    let bar = r.to_bar(k as u32, self.period_secs);
                    by_close.entry(bar.start + i64::from(self.period_secs) * NANOS_PER_SEC).or_default().push(bar);
                }
            }
            self.ready.extend(by_close.into_values().map(MarketEvent::Bars));
            self.next_from = to;
        }
        Ok(!self.ready.is_empty())
    }
}

impl Feed for ReplayFeed {
    fn instruments(&self) -> &[Instrument] {
        &self.instruments
    }

    fn trading_hours(&self, instrument: InstrumentId) -> Option<&TradingHours> {
        self.hours.get(instrument as usize)?.as_ref()
    }

    fn next_event(&mut self) -> Option<MarketEvent> {
        match self.load_window() {
            Ok(true) => {
                let event = self.ready.pop_front()?;
                if let Some(due) = self.due(event.time()) {
                    std::thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
                } else if self.speed.is_some() {
                    self.anchor = Some((event.time(), std::time::Instant::now()));
                }
                Some(event)
            }
            Ok(false) => None,
            Err(e) => {
                // The store was readable at open; a read failing now ends the replay, loudly.
                tracing::error!(error = %e, "replay stopped: the store could not be read");
                None
            }
        }
    }

    /// Under market-time pacing, waits at most `wait` so the host keeps
    /// serving commands while the next event is not due.
    fn poll_event(&mut self, wait: std::time::Duration) -> FeedPoll {
        if self.speed.is_some()
            && let Ok(true) = self.load_window()
            && let Some(due) = self.ready.front().and_then(|e| self.due(e.time()))
            && due > std::time::Instant::now() + wait
        {
            std::thread::sleep(wait);
            return FeedPoll::Idle;
        }
        self.next_event().map_or(FeedPoll::Ended, FeedPoll::Event)
    }
}

/// Stored bars loaded once into memory, to be replayed many times (a
/// study's trials, a walk-forward's windows) by feeds that share them
/// read-only: one flat list of bars in event order and where each
/// cross-section starts, so a bar costs `size_of::<Bar>()` and nothing else.
pub struct ReplayData {
    instruments: Vec<Instrument>,
    hours: Vec<Option<TradingHours>>,
    bars: Vec<Bar>,
    /// `bars[starts[k]..starts[k + 1]]` is the k-th cross-section.
    starts: Vec<usize>,
    /// The k-th cross-section's close time (its event time).
    times: Vec<Timestamp>,
    period_secs: u32,
}

impl ReplayData {
    /// Everything `config` selects, read through the same [`ReplayFeed`] a
    /// replay uses (so both see the same cross-sections).
    pub fn load(store_path: &Path, config: &ReplayConfig) -> Result<Self, ReplayError> {
        let mut feed = ReplayFeed::open(store_path, &ReplayConfig { speed: None, ..config.clone() })?;
        let (mut bars, mut starts, mut times) = (Vec::new(), vec![0], Vec::new());
        // The feed logs and ends on a read error; here it must be an error.
        while feed.load_window()? {
            while let Some(event) = feed.ready.pop_front() {
                if let MarketEvent::Bars(b) = event {
                    times.push(event_time(&b));
                    bars.extend(b);
                    starts.push(bars.len());
                }
            }
        }
        bars.shrink_to_fit();
        Ok(Self { instruments: feed.instruments, hours: feed.hours, bars, starts, times, period_secs: config.period_secs })
    }

    pub fn instruments(&self) -> &[Instrument] {
        &self.instruments
    }

    pub fn period_secs(&self) -> u32 {
        self.period_secs
    }

    /// Number of bars held.
    pub fn bars(&self) -> usize {
        self.bars.len()
    }

    /// Bytes held in memory: the bars, the cross-section index and the instruments.
    pub fn bytes(&self) -> usize {
        self.bars.capacity() * std::mem::size_of::<Bar>()
            + self.starts.capacity() * std::mem::size_of::<usize>()
            + self.times.capacity() * std::mem::size_of::<Timestamp>()
            + self.instruments.iter().map(|i| std::mem::size_of::<Instrument>() + i.symbol.capacity() + i.currency.capacity()).sum::<usize>()
    }

    /// The cross-sections in event order: each one's close time and bars.
    pub fn cross_sections(&self) -> impl Iterator<Item = (Timestamp, &[Bar])> + '_ {
        self.times.iter().zip(self.starts.windows(2)).map(|(&t, w)| (t, &self.bars[w[0]..w[1]]))
    }

    /// The cross-sections' close times, in order.
    pub fn times(&self) -> &[Timestamp] {
        &self.times
    }

    /// Per instrument (by id), its first bar's start and last bar's close (`None`: no bar).
    pub fn instrument_spans(&self) -> Vec<Option<(Timestamp, Timestamp)>> {
        let period = i64::from(self.period_secs) * NANOS_PER_SEC;
        let mut spans: Vec<Option<(Timestamp, Timestamp)>> = vec![None; self.instruments.len()];
        for b in &self.bars {
            if let Some(s) = spans.get_mut(b.instrument as usize) {
                let close = b.start + period;
                *s = Some(s.map_or((b.start, close), |(a, z)| (a.min(b.start), z.max(close))));
            }
        }
        spans
    }

    /// The first bar's start and the last bar's close.
    pub fn span(&self) -> Option<(Timestamp, Timestamp)> {
        let first = self.bars.first()?.start;
        Some((first, *self.times.last()?))
    }

    /// A copy whose bars `rewrite` changes in place (prices and volumes: a
    /// stress test's shock), in event order; times and instruments stay, and
    /// so does the cross-section index. The bars must stay valid OHLC with
    /// positive prices: an error names the first that is not.
    pub fn with_bars<E: From<String>>(&self, rewrite: impl FnOnce(&mut [Bar]) -> Result<(), E>) -> Result<Self, E> {
        let mut bars = self.bars.clone();
        rewrite(&mut bars)?;
        if let Some(b) = bars.iter().find(|b| !(b.low > 0.0 && b.low <= b.open.min(b.close) && b.high >= b.open.max(b.close) && b.high.is_finite())) {
            let symbol = self.instruments.get(b.instrument as usize).map_or("?", |i| i.symbol.as_str());
            return Err(E::from(format!("the bar of {symbol} at {} would be {}/{}/{}/{} (open/high/low/close): prices must stay positive and the bar valid", crate::format_time(b.start), b.open, b.high, b.low, b.close)));
        }
        Ok(Self { instruments: self.instruments.clone(), hours: self.hours.clone(), bars, starts: self.starts.clone(), times: self.times.clone(), period_secs: self.period_secs })
    }

    /// A feed over the cross-sections whose bars start in `[from, to)`.
    pub fn feed(self: &std::sync::Arc<Self>, from: Option<Timestamp>, to: Option<Timestamp>) -> SharedReplay {
        let period = i64::from(self.period_secs) * NANOS_PER_SEC;
        // Close times are start + period, so start >= from <=> close >= from + period.
        let first = from.map_or(0, |f| self.times.partition_point(|&t| t < f.saturating_add(period)));
        let end = to.map_or(self.times.len(), |t| self.times.partition_point(|&c| c < t.saturating_add(period)));
        SharedReplay { data: self.clone(), next: first, end: end.max(first) }
    }
}

/// A cross-section's close time (what [`MarketEvent::time`] says of it).
fn event_time(bars: &[Bar]) -> Timestamp {
    bars.first().map_or(0, |b| b.start + i64::from(b.period_secs) * NANOS_PER_SEC)
}

/// A replay of part of a [`ReplayData`], as fast as the host takes it.
pub struct SharedReplay {
    data: std::sync::Arc<ReplayData>,
    next: usize,
    end: usize,
}

impl SharedReplay {
    /// Cross-sections left to deliver.
    pub fn remaining(&self) -> usize {
        self.end - self.next
    }

    /// Bars left to deliver.
    pub fn remaining_bars(&self) -> usize {
        self.data.starts[self.end] - self.data.starts[self.next]
    }
}

impl Feed for SharedReplay {
    fn instruments(&self) -> &[Instrument] {
        &self.data.instruments
    }

    fn trading_hours(&self, instrument: InstrumentId) -> Option<&TradingHours> {
        self.data.hours.get(instrument as usize)?.as_ref()
    }

    fn next_event(&mut self) -> Option<MarketEvent> {
        if self.next >= self.end {
            return None;
        }
        let (a, b) = (self.data.starts[self.next], self.data.starts[self.next + 1]);
        self.next += 1;
        Some(MarketEvent::Bars(self.data.bars[a..b].to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MarketStore, PriceSource, StoreConfig};

    #[test]
    fn shared_data_replays_what_the_store_replays_in_any_window() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("market");
        {
            let mut store = MarketStore::open(&path, StoreConfig::default()).unwrap();
            for s in ["AAA", "BBB"] {
                let id = store.instrument_id(s).unwrap();
                for d in 0..40i64 {
                    // BBB misses every fifth day: cross-sections differ in size.
                    if s == "BBB" && d % 5 == 0 {
                        continue;
                    }
                    let p = 10.0 + d as f64;
                    let bar = Bar { instrument: id, start: d * 86_400 * NANOS_PER_SEC, period_secs: 86_400, open: p, high: p, low: p, close: p, volume: 1.0 };
                    store.append_bar(&bar, PriceSource::Trade).unwrap();
                }
                store.commit().unwrap();
            }
            store.seal_all().unwrap();
            store.flush().unwrap();
        }
        let config = ReplayConfig::default();
        let mut replay = ReplayFeed::open(&path, &config).unwrap();
        let expected: Vec<MarketEvent> = std::iter::from_fn(|| replay.next_event()).collect();
        // The store is one process's at a time: the feed lets go of it first.
        drop(replay);
        let data = std::sync::Arc::new(ReplayData::load(&path, &config).unwrap());
        assert_eq!(data.bars(), 40 + 32);
        let all: Vec<MarketEvent> = std::iter::from_fn({
            let mut f = data.feed(None, None);
            move || f.next_event()
        })
        .collect();
        assert_eq!(all, expected);
        // Days 10..20 by bar start: the 10 cross-sections starting then.
        let day = 86_400 * NANOS_PER_SEC;
        let mut part = data.feed(Some(10 * day), Some(20 * day));
        assert_eq!(part.remaining(), 10);
        let first = part.next_event().unwrap();
        assert!(matches!(&first, MarketEvent::Bars(b) if b[0].start == 10 * day && b.len() == 1), "day 10: AAA only");
        assert!(data.bytes() >= data.bars() * std::mem::size_of::<Bar>());
        assert_eq!(data.feed(Some(30 * day), Some(20 * day)).remaining(), 0, "an empty window");
    }
}
