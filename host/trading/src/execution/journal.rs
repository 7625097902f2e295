//! The execution journal: every order, risk decision, acknowledgement,
//! fill, cancel, expiry, financing charge and trading-state change, appended
//! to sled in order before the host acts on it (a fill, which the paper
//! broker books as it happens, is appended before anything else sees it).
//! The host's trading state is rebuilt by replaying it on start.
//!
//! Layout: one tree, `events`; each commit is one key, the big-endian
//! sequence number of its first entry, holding the JSON list of its
//! [`Entry`]s. The host commits when an event is done, and before any request
//! to a broker outside the process: one sled write per event rather than per
//! entry, since sled costs about the same per key whatever its size. sled
//! flushes every `flush_every_ms`; a crash loses at most the event in
//! progress and that interval, never half a commit.
//!
//! Research runs (backtests, studies) keep the journal in memory
//! ([`Journal::in_memory`]): the same entries, in the same order, read back by
//! the same reports, with nothing to make durable and no serialisation.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use stratbox_market::{InstrumentId, Timestamp};
use crate::risk::{Cause, TradingState};
use stratbox_contract::{OrderType, Side, TimeInForce};

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot open the execution journal at {path}: {source}")]
    Open { path: PathBuf, source: sled::Error },
    #[error("the execution journal at {0} is in use by a running host (stop it, or report on journal.previous)")]
    Locked(PathBuf),
    #[error("execution journal: {0}")]
    Sled(#[from] sled::Error),
    #[error("execution journal entry {seq} is damaged: {why}")]
    Damaged { seq: u64, why: String },
    /// The journal holds a position or working order in an instrument this
    /// start does not trade: resuming would lose track of it.
    #[error("the journal holds {what} in {symbol}, which is not among this start's instruments: add it back (or close it with the instruments it had) before resuming")]
    MissingInstrument { symbol: String, what: String },
}

/// Order types as journaled.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OrderKind {
    Market,
    Limit(f64),
    Stop(f64),
}

impl From<OrderType> for OrderKind {
    fn from(t: OrderType) -> Self {
        match t {
            OrderType::Market => OrderKind::Market,
            OrderType::Limit(p) => OrderKind::Limit(p),
            OrderType::Stop(p) => OrderKind::Stop(p),
        }
    }
}

impl From<OrderKind> for OrderType {
    fn from(t: OrderKind) -> Self {
        match t {
            OrderKind::Market => OrderType::Market,
            OrderKind::Limit(p) => OrderType::Limit(p),
            OrderKind::Stop(p) => OrderType::Stop(p),
        }
    }
}

/// Sides and times in force as journaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SideName {
    Buy,
    Sell,
}

impl From<Side> for SideName {
    fn from(s: Side) -> Self {
        if s == Side::Buy { SideName::Buy } else { SideName::Sell }
    }
}

impl From<SideName> for Side {
    fn from(s: SideName) -> Self {
        if s == SideName::Buy { Side::Buy } else { Side::Sell }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TifName {
    Gtc,
    Day,
    Ioc,
}

impl From<TimeInForce> for TifName {
    fn from(t: TimeInForce) -> Self {
        match t {
            TimeInForce::Gtc => TifName::Gtc,
            TimeInForce::Day => TifName::Day,
            TimeInForce::Ioc => TifName::Ioc,
        }
    }
}

impl From<TifName> for TimeInForce {
    fn from(t: TifName) -> Self {
        match t {
            TifName::Gtc => TimeInForce::Gtc,
            TifName::Day => TimeInForce::Day,
            TifName::Ioc => TimeInForce::Ioc,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum JournalEvent {
    /// The instrument universe from here on (written at every start): ids index it.
    Instruments { symbols: Vec<String> },
    /// An order created from an intent, before risk.
    Order {
        client_id: String,
        plugin: String,
        instrument: InstrumentId,
        side: SideName,
        quantity: f64,
        order_type: OrderKind,
        time_in_force: TifName,
        tag: u32,
        decision_price: Option<f64>,
    },
    Risk { client_id: String, accepted: bool, reason: Option<String> },
    /// Handed to a remote broker under `broker_id`; acknowledged later.
    Sent { client_id: String, broker_id: u64 },
    Acknowledged { client_id: String, broker_id: u64 },
    BrokerRejected { client_id: String, reason: String },
    /// What a remote broker calls the order: its reference once received, its id once working.
    BrokerRef { client_id: String, deal_reference: Option<String>, deal_id: Option<String> },
    /// A position the order closed at the broker, under the close's own
    /// reference (Capital.com hedging): a restart knows the close is this order's.
    BrokerClose { client_id: String, deal_reference: String },
    Fill { client_id: String, broker_id: u64, plugin: String, instrument: InstrumentId, side: SideName, quantity: f64, price: f64, fee: f64 },
    Cancelled { client_id: String },
    Expired { client_id: String },
    /// The market's mid when the order reached the broker (for slippage against arrival).
    Arrival { client_id: String, mid: f64 },
    /// Financing charged to one position.
    Financing { plugin: String, instrument: InstrumentId, amount: f64 },
    /// A point of the equity curve: the account's equity, P&L (all plugins) and gross exposure.
    Equity { equity: f64, realised: f64, unrealised: f64, gross_exposure: f64 },
    /// A trading state set or ended for one cause (`plugin` none: global);
    /// journals from before causes read as the operator's.
    TradingState {
        plugin: Option<String>,
        state: TradingState,
        reason: String,
        #[serde(default)]
        cause: Cause,
        /// When a circuit-breaker halt ends by itself.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<Timestamp>,
    },
    /// An anomaly detector's alarm (`symbol` none: market-wide).
    Alarm { detector: String, level: String, symbol: Option<String>, reason: String },
    /// A cancel the host asked the broker for (before it is sent): a restart
    /// asks again for an order that is still working.
    CancelRequested { client_id: String },
    /// The operator's de-leveraging: at its start and after every step, so a
    /// restart goes on with it (`steps_done == steps`: it ended).
    Deleverage { fraction: f64, steps: u32, steps_done: u32, every_secs: u64, next_at: Timestamp, start: Vec<(String, InstrumentId, f64)> },
    /// A position's protective levels as a stop policy set them (both `None`:
    /// removed), journaled when they change: a restart gives them back to
    /// the broker instead of leaving the position unprotected.
    Protection { plugin: String, instrument: InstrumentId, stop_loss: Option<f64>, take_profit: Option<f64> },
    /// What the loss limits measure from, whenever it changes (a durable
    /// journal only): a restart goes on from it instead of from the capital.
    RiskBaselines {
        peak_equity: f64,
        /// Days since the epoch (UTC) of `day_start_equity`.
        day: i64,
        day_start_equity: f64,
        /// Each plugin's P&L at the start of the day (its daily loss limit's base).
        #[serde(default)]
        plugin_day_start: Vec<(String, f64)>,
        /// The circuit breaker's reference: (day, its first price that day).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reference_open: Option<(i64, f64)>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    /// Market time.
    pub time: Timestamp,
    pub event: JournalEvent,
}

pub struct Journal {
    path: PathBuf,
    backing: Backing,
    next_seq: u64,
    /// Appended, not yet written (see [`Journal::commit`]).
    pending: Vec<Entry>,
    /// Flushes done (the order-path simulation snapshots what is durable at each).
    flushes: u64,
}

/// Where committed entries go.
enum Backing {
    Sled { db: sled::Db, events: sled::Tree },
    /// A research run's journal: committed entries kept as they are.
    Memory(Vec<Entry>),
}

impl Journal {
    /// A journal that lives only as long as the value (research runs): commits
    /// keep the entries in memory, flushes do nothing.
    pub fn in_memory() -> Self {
        Self { path: PathBuf::from("(in memory)"), backing: Backing::Memory(Vec::new()), next_seq: 0, pending: Vec::new(), flushes: 0 }
    }

    /// Opens with a small page cache (for reading: reports, tests).
    pub fn open(path: &Path, flush_every_ms: u64) -> Result<Self, JournalError> {
        Self::open_with_cache(path, flush_every_ms, 16 << 20)
    }

    /// Opens with sled's page cache bounded at `cache_bytes`.
    pub fn open_with_cache(path: &Path, flush_every_ms: u64, cache_bytes: u64) -> Result<Self, JournalError> {
        Self::open_sled(path, Some(flush_every_ms.max(1)), cache_bytes)
    }

    /// Opens with sled's background flushing off: only [`Journal::flush`]
    /// makes entries durable. The order-path simulation crashes a host at any
    /// step and keeps exactly what was flushed.
    pub fn open_flushed_by_hand(path: &Path) -> Result<Self, JournalError> {
        Self::open_sled(path, None, 16 << 20)
    }

    fn open_sled(path: &Path, flush_every_ms: Option<u64>, cache_bytes: u64) -> Result<Self, JournalError> {
        let open = |source| JournalError::Open { path: path.to_owned(), source };
        let config = sled::Config::new().path(path).cache_capacity(cache_bytes).flush_every_ms(flush_every_ms);
        let db = stratbox_market::store::open_sled(&config).map_err(|e| if stratbox_market::store::is_locked(&e) { JournalError::Locked(path.to_owned()) } else { open(e) })?;
        let events = db.open_tree("events").map_err(open)?;
        let next_seq = match events.last().map_err(open)? {
            Some((k, v)) => {
                let first = u64::from_be_bytes(k.as_ref().try_into().map_err(|_| JournalError::Damaged { seq: 0, why: "a key is not 8 bytes".into() })?);
                let batch: Vec<Entry> = serde_json::from_slice(&v).map_err(|e| JournalError::Damaged { seq: first, why: e.to_string() })?;
                first + batch.len() as u64
            }
            None => 0,
        };
        Ok(Self { path: path.to_owned(), backing: Backing::Sled { db, events }, next_seq, pending: Vec::new(), flushes: 0 })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> u64 {
        self.next_seq
    }

    pub fn is_empty(&self) -> bool {
        self.next_seq == 0
    }

    /// Appends one event (written at the next [`Journal::commit`]); returns its sequence number.
    pub fn append(&mut self, time: Timestamp, event: JournalEvent) -> Result<u64, JournalError> {
        let seq = self.next_seq;
        self.pending.push(Entry { seq, time, event });
        self.next_seq += 1;
        Ok(seq)
    }

    /// Writes what was appended since the last commit as one atomic batch:
    /// the host commits at the end of every event, and before any request to
    /// a broker outside the process.
    pub fn commit(&mut self) -> Result<usize, JournalError> {
        let Some(first) = self.pending.first().map(|e| e.seq) else { return Ok(0) };
        let n = self.pending.len();
        match &mut self.backing {
            // One key per commit: sled costs about the same per key whatever its size.
            Backing::Sled { events, .. } => {
                events.insert(first.to_be_bytes(), serde_json::to_vec(&self.pending).expect("journal entries serialise"))?;
                self.pending.clear();
            }
            Backing::Memory(entries) => entries.append(&mut self.pending),
        }
        Ok(n)
    }

    /// Commits, then forces everything to disk now.
    pub fn flush(&mut self) -> Result<(), JournalError> {
        self.commit()?;
        if let Backing::Sled { db, .. } = &self.backing {
            db.flush()?;
        }
        self.flushes += 1;
        Ok(())
    }

    /// Whether committed entries go to disk (not a research run's memory).
    pub fn is_durable(&self) -> bool {
        matches!(self.backing, Backing::Sled { .. })
    }

    /// How many flushes this handle made (each one a point a crash keeps).
    pub fn flushes(&self) -> u64 {
        self.flushes
    }

    /// Every committed entry, in order.
    pub fn entries(&self) -> Box<dyn Iterator<Item = Result<Entry, JournalError>> + '_> {
        self.entries_from(0)
    }

    /// The committed entries from sequence number `from` on, in order. Keys
    /// are the first sequence number of their batch, so this seeks to the
    /// batch holding `from` instead of decoding every batch before it: a page
    /// deep in a long run costs what the first one does.
    pub fn entries_from(&self, from: u64) -> Box<dyn Iterator<Item = Result<Entry, JournalError>> + '_> {
        let events = match &self.backing {
            Backing::Memory(entries) => {
                // Sequence numbers are the indexes.
                let at = usize::try_from(from).unwrap_or(usize::MAX).min(entries.len());
                return Box::new(entries[at..].iter().cloned().map(Ok));
            }
            Backing::Sled { events, .. } => events,
        };
        sled_entries_from(events, from)
    }

    /// A reader of the committed entries for another thread (the dashboard
    /// reads them off the event loop); `None` for an in-memory journal.
    pub fn reader(&self) -> Option<JournalReader> {
        match &self.backing {
            Backing::Sled { events, .. } => Some(JournalReader { events: events.clone() }),
            Backing::Memory(_) => None,
        }
    }

    /// The committed entries of an in-memory journal, borrowed (`None` for
    /// one in sled): a research run reads its whole journal without a copy.
    pub fn in_memory_entries(&self) -> Option<&[Entry]> {
        match &self.backing {
            Backing::Memory(entries) => Some(entries),
            Backing::Sled { .. } => None,
        }
    }
}

/// The committed entries of a sled journal from `from` on, in order.
fn sled_entries_from(events: &sled::Tree, from: u64) -> Box<dyn Iterator<Item = Result<Entry, JournalError>> + '_> {
    let start = match events.range(..=from.to_be_bytes()).next_back() {
        Some(Ok((k, _))) => k.to_vec(),
        _ => from.to_be_bytes().to_vec(),
    };
    let batches = events.range(start..).flat_map(|kv| {
        let batch: Result<Vec<Entry>, JournalError> = kv.map_err(JournalError::from).and_then(|(k, v)| {
            let seq = k.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(u64::MAX);
            serde_json::from_slice(&v).map_err(|e| JournalError::Damaged { seq, why: e.to_string() })
        });
        match batch {
            Ok(entries) => entries.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        }
    });
    Box::new(batches.filter(move |e| !matches!(e, Ok(e) if e.seq < from)))
}

/// Reads a running host's committed journal from another thread: sled trees
/// are shared, so this sees each commit as soon as it is written, and never
/// what is not committed yet.
#[derive(Clone)]
pub struct JournalReader {
    events: sled::Tree,
}

impl JournalReader {
    /// Up to `limit` committed entries from sequence number `from`.
    pub fn page(&self, from: u64, limit: usize) -> Result<Vec<Entry>, JournalError> {
        sled_entries_from(&self.events, from).take(limit).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_sees_what_is_committed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), 50).unwrap();
        let reader = j.reader().expect("sled journals have readers");
        let state = |n: u32| JournalEvent::Alarm { detector: "d".into(), level: "severe".into(), symbol: None, reason: format!("#{n}") };
        j.append(1, state(0)).unwrap();
        j.append(2, state(1)).unwrap();
        assert!(reader.page(0, 10).unwrap().is_empty(), "nothing committed yet");
        j.commit().unwrap();
        j.append(3, state(2)).unwrap();
        j.commit().unwrap();
        let from_reader = std::thread::spawn(move || reader.page(1, 10).unwrap()).join().unwrap();
        assert_eq!(from_reader.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2], "from the middle of a batch, on another thread");
        assert!(Journal::in_memory().reader().is_none());
    }

    #[test]
    fn entries_come_back_in_order_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut j = Journal::open(dir.path(), 50).unwrap();
            let order = JournalEvent::Order {
                client_id: "p-1".into(),
                plugin: "p".into(),
                instrument: 3,
                side: SideName::Buy,
                quantity: 10.0,
                order_type: OrderKind::Limit(99.5),
                time_in_force: TifName::Day,
                tag: 7,
                decision_price: Some(100.0),
            };
            assert_eq!(j.append(1, order).unwrap(), 0);
            assert_eq!(j.append(2, JournalEvent::Risk { client_id: "p-1".into(), accepted: true, reason: None }).unwrap(), 1);
            assert_eq!(j.commit().unwrap(), 2);
            assert_eq!(j.commit().unwrap(), 0);
            j.flush().unwrap();
        }
        let mut j = Journal::open(dir.path(), 50).unwrap();
        assert_eq!(j.len(), 2);
        assert_eq!(j.append(3, JournalEvent::Acknowledged { client_id: "p-1".into(), broker_id: 1 }).unwrap(), 2, "numbering goes on");
        j.append(4, JournalEvent::Cancelled { client_id: "p-1".into() }).unwrap();
        drop(j); // never committed: lost as a whole
        let j = Journal::open(dir.path(), 50).unwrap();
        assert_eq!(j.len(), 2);
        let mut j = j;
        j.append(3, JournalEvent::Acknowledged { client_id: "p-1".into(), broker_id: 1 }).unwrap();
        j.commit().unwrap();
        let entries: Vec<Entry> = j.entries().collect::<Result<_, _>>().unwrap();
        assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(matches!(&entries[0].event, JournalEvent::Order { order_type: OrderKind::Limit(p), .. } if *p == 99.5));
        let text = String::from_utf8(serde_json::to_vec(&entries[2]).unwrap()).unwrap();
        assert!(text.contains(r#""event":"acknowledged""#), "{text}");
    }

    /// Reading from a sequence number seeks to its batch: a damaged batch
    /// before it is never decoded (the old page read decoded from entry 0, so
    /// page k cost O(k) and failed on any damage behind it).
    #[test]
    fn reading_from_a_sequence_number_seeks_to_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), 50).unwrap();
        for batch in 0..100u64 {
            for k in 0..3 {
                j.append((batch * 3 + k) as i64, JournalEvent::Cancelled { client_id: format!("p-{batch}-{k}") }).unwrap();
            }
            j.commit().unwrap();
        }
        let seqs = |from| j.entries_from(from).map(|e| e.unwrap().seq).collect::<Vec<_>>();
        assert_eq!(seqs(0).len(), 300);
        assert_eq!(seqs(151), (151..300).collect::<Vec<_>>(), "from the middle of a batch");
        assert!(seqs(300).is_empty());
        let Backing::Sled { events, .. } = &j.backing else { unreachable!("opened in sled") };
        events.insert(0u64.to_be_bytes(), b"not json".to_vec()).unwrap();
        assert!(j.entries().any(|e| e.is_err()), "damage is reported to a reader who reaches it");
        assert_eq!(seqs(3).len(), 297, "a reader starting after it never decodes it");
    }

    #[test]
    fn an_in_memory_journal_reads_back_what_was_committed() {
        let mut j = Journal::in_memory();
        for k in 0..5 {
            j.append(k, JournalEvent::Cancelled { client_id: format!("p-{k}") }).unwrap();
        }
        assert_eq!(j.commit().unwrap(), 5);
        j.append(5, JournalEvent::Expired { client_id: "p-5".into() }).unwrap();
        assert_eq!(j.entries().count(), 5, "only what was committed");
        j.flush().unwrap();
        let seqs: Vec<u64> = j.entries_from(2).map(|e| e.unwrap().seq).collect();
        assert_eq!(seqs, [2, 3, 4, 5]);
        assert_eq!(j.in_memory_entries().map(<[Entry]>::len), Some(6));
        assert_eq!(j.entries_from(99).count(), 0);
    }
}
