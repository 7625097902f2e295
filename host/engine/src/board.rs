//! What a dashboard reads of the running host, in one round trip between two
//! events: the status, the plugins, every book's positions at their marks, the
//! protective levels, the journal from a cursor and the newest bars of the
//! instruments being charted. The dashboard asks at a fixed rate whatever the
//! number of browsers, so the loop's cost does not grow with them.

use serde::Serialize;
use stratbox_contract::{Bar, InstrumentId, Timestamp};
use stratbox_trading::{DeleveragePlan, Entry};

use crate::runner::StatusView;
use crate::view::PluginView;

/// Bars of one instrument that started after `after`, at most `count` (the newest).
#[derive(Debug, Clone, Copy)]
pub struct BarsQuery {
    pub instrument: InstrumentId,
    pub after: Timestamp,
    pub count: usize,
}

#[derive(Debug, Clone, Default)]
pub struct BoardQuery {
    /// Journal entries from this sequence number...
    pub journal_from: u64,
    /// ...at most this many.
    pub journal_limit: usize,
    pub bars: Vec<BarsQuery>,
    /// Take the mark of the first event since the last such query (the
    /// dashboard's poller: its frames' event-to-screen latency).
    pub mark_seen: bool,
}

/// One plugin's position in one instrument, at the instrument's mark.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PositionRow {
    pub plugin: String,
    pub instrument: InstrumentId,
    pub quantity: f64,
    pub average_price: f64,
    pub mark: f64,
    pub realised_pnl: f64,
    pub unrealised_pnl: f64,
}

/// A protective level the broker holds for one plugin's position.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProtectionRow {
    pub plugin: String,
    pub instrument: InstrumentId,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct BoardTick {
    pub status: StatusView,
    pub plugins: Vec<PluginView>,
    /// The instrument universe: ids index it.
    pub symbols: Vec<String>,
    /// Open positions of every book.
    pub positions: Vec<PositionRow>,
    pub protections: Vec<ProtectionRow>,
    pub journal: Vec<Entry>,
    pub bars: Vec<(InstrumentId, Vec<Bar>)>,
    /// The last close of every instrument (`None` before its first bar).
    pub closes: Vec<Option<f64>>,
    /// The period of the bars the feed delivers (`None` before the first).
    pub bar_secs: Option<u32>,
    /// Wall clock (ms since the epoch) when the newest event was fully processed.
    pub event_done_ms: Option<i64>,
    /// With `mark_seen`: when the first event since the previous marking query was done.
    pub first_unseen_ms: Option<i64>,
    pub deleverage: Option<DeleveragePlan>,
}
