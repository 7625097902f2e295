//! Market data as the host sees it: events, instruments, validation,
//! aggregation, recent history, trading hours, the feeds that produce events
//! (the built-in simulator, and replay of stored data), and the market store
//! in sled ([`store`]).
//!
//! It is responsible for what the market said and when: every record is
//! validated, rejects are counted and quarantined with their source line, and
//! real history is never dropped. It must never trade, run a plugin or reach
//! a broker: it knows nothing above a [`Feed`].

mod aggregate;
mod history;
mod hours;
mod replay;
mod simulator;
mod validate;
pub mod store;

pub use aggregate::{BarAggregator, Resampler};
pub use history::BarHistory;
pub use hours::{InstrumentMeta, Session, TradingHours};
pub use replay::{ReplayConfig, ReplayData, ReplayError, ReplayFeed, SharedReplay};
pub use simulator::{SimulatorConfig, SimulatedMarket};
pub use validate::{Accepted, Quarantined, Record, Reject, RejectReason, SpikePolicy, Validator, ValidatorConfig};

pub use stratbox_contract::{Bar, Instrument, InstrumentId, Quote, Timestamp};

pub const NANOS_PER_SEC: i64 = 1_000_000_000;

/// `YYYY-MM-DD[ HH:MM:SS[.fff]]` read in `zone`, as ns since the epoch; the
/// error says what was wrong with `s`.
/// Market time as `YYYY-MM-DD HH:MM:SS` UTC, as log lines and reports show it.
pub fn format_time(t: Timestamp) -> String {
    chrono::DateTime::from_timestamp_nanos(t).format("%Y-%m-%d %H:%M:%S").to_string()
}

pub fn parse_datetime(s: &str, zone: chrono_tz::Tz) -> Result<Timestamp, String> {
    use chrono::{NaiveDate, NaiveDateTime, TimeZone};
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDate::parse_from_str(s, "%Y-%m-%d").map(|d| d.and_hms_opt(0, 0, 0).expect("midnight")))
        .map_err(|_| format!("`{s}` is not a date-time (YYYY-MM-DD[ HH:MM:SS[.fff]])"))?;
    let local = zone.from_local_datetime(&naive).earliest().ok_or_else(|| format!("`{s}` does not exist in {zone}"))?;
    local.timestamp_nanos_opt().ok_or_else(|| format!("`{s}` is out of range"))
}

/// `ticks` ticks of size `tick` as the double nearest the decimal price:
/// dividing by the ticks per unit, since multiplying by a tick like 0.01
/// gives 81.10000000000001 where 81.1 is meant.
pub fn on_grid(ticks: f64, tick: f64) -> f64 {
    ticks / (1.0 / tick).round()
}

/// One executed trade.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Trade {
    pub instrument: InstrumentId,
    pub time: Timestamp,
    pub price: f64,
    pub size: f64,
}

/// What a feed delivers.
#[derive(Debug, Clone, PartialEq)]
pub enum MarketEvent {
    /// Bars of several instruments closing at the same time (a cross-section).
    Bars(Vec<Bar>),
    Quote(Quote),
}

impl MarketEvent {
    /// When the event happened: a bar's close, a quote's time.
    pub fn time(&self) -> Timestamp {
        match self {
            MarketEvent::Bars(b) => b.first().map_or(0, |b| b.start + i64::from(b.period_secs) * NANOS_PER_SEC),
            MarketEvent::Quote(q) => q.time,
        }
    }
}

/// What a feed has after waiting.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedPoll {
    Event(MarketEvent),
    /// Nothing yet (a live feed between events).
    Idle,
    Ended,
}

/// A source of market events, in time order.
pub trait Feed: Send {
    /// The instruments this feed covers; ids are indexes into this list.
    fn instruments(&self) -> &[Instrument];
    /// The next event, or `None` when the feed is exhausted.
    fn next_event(&mut self) -> Option<MarketEvent>;
    /// The next event if one comes within `wait`. Live feeds override this so
    /// the host keeps serving commands between events; files and simulators
    /// always have the next event at hand.
    fn poll_event(&mut self, _wait: std::time::Duration) -> FeedPoll {
        self.next_event().map_or(FeedPoll::Ended, FeedPoll::Event)
    }
    /// The instrument's trading hours, when the feed knows them.
    fn trading_hours(&self, _instrument: InstrumentId) -> Option<&TradingHours> {
        None
    }
    /// For a live feed: when the network frame behind the last event was read.
    fn last_received(&self) -> Option<std::time::Instant> {
        None
    }
}
