//! Capital.com as a host feed, and the collector that stores what streams.
//!
//! [`CapitalFeed`] runs the [`PriceStream`] on its own tokio runtime and
//! hands the host quotes as they come, and each instrument's mid bar (the
//! average of its bid and ask bars) once both sides of it have closed.
//! Bid and ask bars are what Capital.com publishes; plugins see mid bars, and
//! the collector keeps both sides.
//!
//! [`Collector`] validates every record (quotes and each side's bars through
//! their own [`Validator`], so their times are ordered independently), puts
//! rejects in the store's quarantine with the reason, appends the rest to the
//! [`MarketStore`] and commits every `commit_ms`; with `backup_every_secs`
//! it writes a backup archive on that schedule and keeps the newest few.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::error::CapitalError;
use super::rest::{RestClient, RestConfig};
use super::stream::{PriceStream, StreamConfig, StreamEvent, StreamStats};
use crate::credentials::CapitalCredentials;
use stratbox_market::{Bar, Feed, FeedPoll, Instrument, InstrumentId, InstrumentMeta, MarketEvent, Record, TradingHours, Validator, ValidatorConfig};
use stratbox_market::store::{MarketStore, PriceSource, QuarantineEntry, Series, StoreError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CapitalFeedConfig {
    pub epics: Vec<String>,
    pub rest: RestConfig,
    pub stream: StreamConfig,
    /// Also store what streams in `<data_dir>/market` (see [`Collector`]).
    pub collect: bool,
    pub collector: CollectorConfig,
}

impl Default for CapitalFeedConfig {
    fn default() -> Self {
        Self {
            epics: vec!["US500".into(), "EURUSD".into(), "GOLD".into()],
            rest: RestConfig::default(),
            stream: StreamConfig::default(),
            collect: true,
            collector: CollectorConfig::default(),
        }
    }
}

/// Instruments of `epics` from `GET /markets?epics=` (50 per call): tick size
/// from the price's decimal places, lot size from the minimum size increment,
/// trading hours from the opening hours.
pub async fn instruments(rest: &RestClient, epics: &[String]) -> Result<Vec<InstrumentMeta>, CapitalError> {
    let mut found: HashMap<String, super::wire::MarketDetails> = HashMap::new();
    for batch in epics.chunks(50) {
        let query = [("epics", batch.join(","))];
        let reply: serde_json::Value = rest.call(reqwest::Method::GET, "/markets", None::<&()>, &query, super::rest::CallKind::General).await?;
        let details: Vec<super::wire::MarketDetails> = serde_json::from_value(reply.get("marketDetails").cloned().unwrap_or_default())
            .map_err(|e| CapitalError::Protocol { endpoint: "GET /markets".into(), why: e.to_string() })?;
        found.extend(details.into_iter().map(|d| (d.instrument.epic.clone(), d)));
    }
    epics
        .iter()
        .enumerate()
        .map(|(i, epic)| {
            let d = found.get(epic).ok_or_else(|| CapitalError::Stream(format!("unknown epic `{epic}`: GET /markets does not know it")))?;
            let hours = TradingHours::from_capital(&d.instrument.opening_hours)
                .map_err(|why| CapitalError::Protocol { endpoint: format!("GET /markets ({epic} openingHours)"), why })?;
            let instrument = Instrument {
                id: i as InstrumentId,
                symbol: epic.clone(),
                tick_size: 10f64.powi(-d.snapshot.decimal_places_factor),
                lot_size: d.dealing_rules.min_size_increment.value,
                currency: d.instrument.currency.clone(),
            };
            Ok(InstrumentMeta::new(&instrument, Some(hours)))
        })
        .collect()
}

/// A running price stream: its runtime, its events, its counters.
struct Running {
    runtime: tokio::runtime::Runtime,
    events: Receiver<StreamEvent>,
    stats: Arc<StreamStats>,
    stop: Arc<AtomicBool>,
    rest: Arc<RestClient>,
}

impl Running {
    fn start(
        config: &CapitalFeedConfig,
        credentials: CapitalCredentials,
        resume: impl FnOnce(&[InstrumentMeta]) -> HashMap<(InstrumentId, PriceSource), i64>,
    ) -> Result<(Self, Vec<InstrumentMeta>), CapitalError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("capital")
            .enable_all()
            .build()
            .map_err(|e| CapitalError::Stream(format!("cannot start the network runtime: {e}")))?;
        let rest = Arc::new(RestClient::new(config.rest.clone(), credentials)?);
        let instruments = runtime.block_on(async {
            rest.login().await?;
            instruments(&rest, &config.epics).await
        })?;
        let stream = PriceStream::new(rest.clone(), config.stream.clone(), config.epics.clone(), resume(&instruments))?;
        let (stats, stop) = (stream.stats.clone(), stream.stop_flag());
        let (tx, events) = std::sync::mpsc::channel();
        let _guard = runtime.enter();
        rest.keep_alive();
        runtime.spawn(async move {
            if let Err(e) = stream.run(tx).await {
                tracing::error!(error = %e, "the price stream gave up");
            }
        });
        drop(_guard);
        Ok((Self { runtime, events, stats, stop, rest }, instruments))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let rest = self.rest.clone();
        // Best effort: end the session so it does not linger for 10 minutes.
        let _ = self.runtime.block_on(async { tokio::time::timeout(Duration::from_secs(2), rest.logout()).await });
    }
}

/// Capital.com as a host feed.
pub struct CapitalFeed {
    running: Running,
    instruments: Vec<Instrument>,
    hours: Vec<Option<TradingHours>>,
    /// Sides of bars still waiting for the other side, by (instrument, open time).
    halves: HashMap<(InstrumentId, i64), (Option<Bar>, Option<Bar>)>,
    collector: Option<Collector>,
    /// When the frame behind the last event was read (for latency figures).
    pub last_received: Option<Instant>,
}

impl CapitalFeed {
    /// Logs in, reads the instruments and starts streaming. With a collector,
    /// everything that streams is also stored, and the stream resumes from
    /// the newest bars already stored.
    pub fn connect(config: &CapitalFeedConfig, credentials: CapitalCredentials, mut collector: Option<Collector>) -> Result<Self, CapitalError> {
        let resume = |instruments: &[InstrumentMeta]| match collector.as_mut() {
            Some(c) => c.bind(instruments).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot read the newest stored bars; streaming without resuming");
                HashMap::new()
            }),
            None => HashMap::new(),
        };
        let (running, metas) = Running::start(config, credentials, resume)?;
        let instruments = metas
            .iter()
            .enumerate()
            .map(|(i, m)| Instrument { id: i as InstrumentId, symbol: m.symbol.clone(), tick_size: m.tick_size, lot_size: m.lot_size, currency: m.currency.clone() })
            .collect();
        let hours = metas.into_iter().map(|m| m.trading_hours).collect();
        Ok(Self { running, instruments, hours, halves: HashMap::new(), collector, last_received: None })
    }

    /// The logged-in client and the runtime it runs on, for a broker that shares the session and its rate limits.
    pub fn session(&self) -> (Arc<RestClient>, tokio::runtime::Handle) {
        (self.running.rest.clone(), self.running.runtime.handle().clone())
    }

    pub fn stream_stats(&self) -> &StreamStats {
        &self.running.stats
    }

    pub fn collector(&self) -> Option<&Collector> {
        self.collector.as_ref()
    }

    pub fn collector_mut(&mut self) -> Option<&mut Collector> {
        self.collector.as_mut()
    }

    /// The event a stream event makes, if any (a bar waits for its other side).
    fn translate(&mut self, event: StreamEvent) -> Option<MarketEvent> {
        if let Some(c) = &mut self.collector
            && let Err(e) = c.record(&event)
        {
            tracing::error!(error = %e, "cannot store streamed data");
        }
        match event {
            StreamEvent::Quote { quote, received } => {
                self.last_received = Some(received);
                Some(MarketEvent::Quote(quote))
            }
            StreamEvent::Bar { bar, side, received, .. } => {
                let entry = self.halves.entry((bar.instrument, bar.start)).or_default();
                match side {
                    PriceSource::Ask => entry.1 = Some(bar),
                    _ => entry.0 = Some(bar),
                }
                let (Some(bid), Some(ask)) = *entry else { return None };
                self.halves.remove(&(bar.instrument, bar.start));
                // Sides of bars that will never be completed (older than this one) are dropped.
                self.halves.retain(|(i, t), _| *i != bar.instrument || *t > bar.start);
                self.last_received = Some(received);
                let mid = |a: f64, b: f64| 0.5 * (a + b);
                Some(MarketEvent::Bars(vec![Bar {
                    open: mid(bid.open, ask.open),
                    high: mid(bid.high, ask.high),
                    low: mid(bid.low, ask.low),
                    close: mid(bid.close, ask.close),
                    ..bid
                }]))
            }
            StreamEvent::Connected { connection } => {
                tracing::info!(connection, "price stream connected");
                None
            }
            StreamEvent::Disconnected { .. } => None,
        }
    }
}

impl Feed for CapitalFeed {
    fn instruments(&self) -> &[Instrument] {
        &self.instruments
    }

    /// Blocks until the next event (a live feed ends only when its stream does).
    fn next_event(&mut self) -> Option<MarketEvent> {
        loop {
            match self.poll_event(Duration::from_secs(1)) {
                FeedPoll::Event(e) => return Some(e),
                FeedPoll::Idle => continue,
                FeedPoll::Ended => return None,
            }
        }
    }

    fn last_received(&self) -> Option<Instant> {
        self.last_received
    }

    fn trading_hours(&self, instrument: InstrumentId) -> Option<&TradingHours> {
        self.hours.get(instrument as usize)?.as_ref()
    }

    fn poll_event(&mut self, wait: Duration) -> FeedPoll {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(c) = &mut self.collector
                && let Err(e) = c.tick()
            {
                tracing::error!(error = %e, "cannot commit streamed data");
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.running.events.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok(event) => {
                    if let Some(e) = self.translate(event) {
                        return FeedPoll::Event(e);
                    }
                }
                Err(RecvTimeoutError::Timeout) if Instant::now() >= deadline => return FeedPoll::Idle,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return FeedPoll::Ended,
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorConfig {
    pub store_quotes: bool,
    /// Commit (journal to sled) at least this often.
    pub commit_ms: u64,
    pub validator: ValidatorConfig,
    /// Write a backup archive this often (`None`: never); 86400 is daily.
    pub backup_every_secs: Option<u64>,
    /// Backup archives kept (the oldest are deleted).
    pub backups_kept: usize,
    pub backup_dir: Option<PathBuf>,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            store_quotes: true,
            commit_ms: 200,
            validator: ValidatorConfig { max_age_ns: None, ..ValidatorConfig::default() },
            backup_every_secs: Some(86_400),
            backups_kept: 7,
            backup_dir: None,
        }
    }
}

/// Counters of what the collector did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct CollectorStats {
    pub quotes_stored: u64,
    pub bars_stored: u64,
    pub backfilled_bars_stored: u64,
    pub rejected: u64,
    pub commits: u64,
    pub backups: u64,
}

/// Validates and stores streamed records.
pub struct Collector {
    config: CollectorConfig,
    store: MarketStore,
    /// Stream instrument -> store instrument.
    ids: Vec<InstrumentId>,
    quotes: Validator,
    bids: Validator,
    asks: Validator,
    last_commit: Instant,
    next_backup: Option<Instant>,
    pub stats: CollectorStats,
}

impl Collector {
    pub fn new(store: MarketStore, config: CollectorConfig) -> Self {
        let v = || Validator::new(config.validator.clone());
        let next_backup = config.backup_every_secs.map(|s| Instant::now() + Duration::from_secs(s.max(1)));
        Self { quotes: v(), bids: v(), asks: v(), store, ids: Vec::new(), last_commit: Instant::now(), next_backup, stats: CollectorStats::default(), config }
    }

    pub fn store(&self) -> &MarketStore {
        &self.store
    }

    /// Maps the stream's instruments to the store's (recording their
    /// metadata), and returns the open time (ms) of the newest stored bar
    /// per (instrument, side) to resume from.
    pub fn bind(&mut self, instruments: &[InstrumentMeta]) -> Result<HashMap<(InstrumentId, PriceSource), i64>, StoreError> {
        for meta in instruments {
            self.store.set_meta(meta)?;
        }
        self.ids = instruments.iter().map(|i| self.store.instrument_id(&i.symbol)).collect::<Result<_, _>>()?;
        let by_store: HashMap<InstrumentId, InstrumentId> = self.ids.iter().enumerate().map(|(k, id)| (*id, k as InstrumentId)).collect();
        let mut resume = HashMap::new();
        for s in self.store.stats()? {
            let Series::Bars { source: side @ (PriceSource::Bid | PriceSource::Ask), .. } = s.series else { continue };
            let Some(id) = self.store.instrument_id_of(&s.symbol) else { continue };
            if let (Some(&k), Some(last)) = (by_store.get(&id), s.last) {
                resume.insert((k, side), last / 1_000_000);
            }
        }
        Ok(resume)
    }

    /// Validates and appends one streamed record; rejects are quarantined.
    pub fn record(&mut self, event: &StreamEvent) -> Result<(), StoreError> {
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
        let remap = |ids: &[InstrumentId], i: InstrumentId| ids.get(i as usize).copied().unwrap_or(i);
        match event {
            StreamEvent::Quote { quote, .. } if self.config.store_quotes => {
                let q = stratbox_market::Quote { instrument: remap(&self.ids, quote.instrument), ..*quote };
                match self.quotes.check(Record::Quote(q), now) {
                    Ok(_) => {
                        self.store.append_quote(&q)?;
                        self.stats.quotes_stored += 1;
                    }
                    Err(reject) => self.quarantine(&Record::Quote(q), &reject)?,
                }
            }
            StreamEvent::Bar { bar, side, backfilled, .. } => {
                let b = Bar { instrument: remap(&self.ids, bar.instrument), ..*bar };
                let validator = if *side == PriceSource::Ask { &mut self.asks } else { &mut self.bids };
                match validator.check(Record::Bar(b), now) {
                    Ok(_) => {
                        self.store.append_bar(&b, *side)?;
                        self.stats.bars_stored += 1;
                        self.stats.backfilled_bars_stored += u64::from(*backfilled);
                    }
                    Err(reject) => self.quarantine(&Record::Bar(b), &reject)?,
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn quarantine(&mut self, record: &Record, reject: &stratbox_market::Reject) -> Result<(), StoreError> {
        self.stats.rejected += 1;
        tracing::debug!(reason = ?reject.reason, detail = %reject.detail, "streamed record rejected");
        let symbol = self.store.symbol(record.instrument()).unwrap_or_else(|| format!("#{}", record.instrument()));
        self.store.quarantine(&QuarantineEntry::new(&symbol, record, reject, "capital.com", None, false))
    }

    /// Commits when due, and writes the scheduled backup when due.
    pub fn tick(&mut self) -> Result<(), StoreError> {
        if self.last_commit.elapsed() >= Duration::from_millis(self.config.commit_ms) {
            self.commit()?;
        }
        if self.next_backup.is_some_and(|t| Instant::now() >= t) {
            self.next_backup = self.config.backup_every_secs.map(|s| Instant::now() + Duration::from_secs(s.max(1)));
            if let Err(e) = self.backup() {
                tracing::error!(error = %e, "scheduled backup failed");
            }
        }
        Ok(())
    }

    pub fn commit(&mut self) -> Result<(), StoreError> {
        self.last_commit = Instant::now();
        if self.store.pending() > 0 {
            self.store.commit()?;
            self.stats.commits += 1;
        }
        Ok(())
    }

    /// Commits and writes a backup archive now, deleting the oldest beyond `backups_kept`.
    pub fn backup(&mut self) -> Result<PathBuf, stratbox_market::store::BackupError> {
        self.commit()?;
        let dir = self.config.backup_dir.clone().unwrap_or_else(|| self.store.path().with_file_name("backups"));
        let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S%.3f");
        let path = dir.join(format!("market-{stamp}.sbxbak"));
        let report = self.store.backup(&path)?;
        self.stats.backups += 1;
        tracing::info!(path = %report.path.display(), entries = report.entries, bytes = report.bytes, "scheduled backup written");
        let mut archives: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("market-"))).collect())
            .unwrap_or_default();
        archives.sort();
        let excess = archives.len().saturating_sub(self.config.backups_kept.max(1));
        for old in &archives[..excess] {
            if let Err(e) = std::fs::remove_file(old) {
                tracing::warn!(path = %old.display(), error = %e, "cannot delete an old backup");
            }
        }
        Ok(report.path)
    }

    /// Commits what is pending and seals every block (at the end of a run).
    pub fn finish(&mut self) -> Result<(), StoreError> {
        self.commit()?;
        self.store.seal_all()?;
        self.store.flush()?;
        Ok(())
    }
}
