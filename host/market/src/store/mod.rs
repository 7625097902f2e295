//! Market-data storage in sled: range scans by (instrument, series, time),
//! batched writes, bounded loss on a crash, and a few bytes per record.
//!
//! Layout (one tree, `market`, so every commit is one atomic batch):
//! - `J | series | max_time | seq` -> a journal entry: every record appended
//!   to that series since the previous commit, for all instruments. One write
//!   per series per commit keeps tick-to-stored latency at the commit interval
//!   however many instruments stream.
//! - `B | instrument | series | bucket_start` -> a sealed block: the number
//!   of the commit that sealed it (8 bytes), then the records of one
//!   instrument and series in one time bucket, delta-encoded (`codec`).
//!
//! A block is sealed once the series' newest record is past its bucket's end
//! plus a grace period; in the same atomic batch, the journal entries whose
//! records are all sealed are deleted. Opening the store replays what is left
//! of the journal, skipping the records of buckets sealed by that commit or a
//! later one; so a crash loses at most what was appended since the last commit
//! (plus sled's own flush interval), never duplicates, and never leaves half a
//! commit. Late records for a sealed bucket are merged into its block.
//!
//! Keys are big-endian with the sign bit of times flipped, so byte order is
//! time order.

mod backup;
mod codec;
mod compact;
mod import;
mod quarantine;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use backup::{BackupError, BackupReport, restore};
pub use codec::{Kind, Row, SCALE};
pub use compact::{CompactReport, compact};
pub use import::{Format, ImportError, ImportOptions, ImportReport, RESAMPLE_PERIODS, default_zone, import_file, import_file_with_progress};
pub use quarantine::{QuarantineEntry, QuarantineFilter};

use crate::{Bar, InstrumentId, Quote, Timestamp, Trade};

const NANOS: i64 = 1_000_000_000;

/// On-disk format of the store; bumped on any incompatible layout change.
pub const FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the market store at {path}: {source}")]
    Open { path: PathBuf, source: sled::Error },
    #[error("the market store at {0} is in use by another process (a running host or import?)")]
    Locked(PathBuf),
    #[error("the market store at {path} has format {found}, this build reads format {FORMAT}")]
    Format { path: PathBuf, found: String },
    #[error("market store: {0}")]
    Sled(#[from] sled::Error),
    #[error("market store is damaged: {0}")]
    Corrupt(String),
    #[error("value {0} cannot be stored at a 1e-8 resolution")]
    Unrepresentable(f64),
}

/// Where a bar's prices come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PriceSource {
    Trade,
    Bid,
    Ask,
    Mid,
}

/// One stored series of an instrument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Series {
    Trades,
    Quotes,
    Bars { period_secs: u32, source: PriceSource },
}

impl Series {
    fn kind(self) -> Kind {
        match self {
            Series::Trades => Kind::Trade,
            Series::Quotes => Kind::Quote,
            Series::Bars { .. } => Kind::Bar,
        }
    }

    /// 5 bytes: tag, then the bar period (0 for ticks).
    fn key(self) -> [u8; 5] {
        let (tag, period) = match self {
            Series::Trades => (1u8, 0u32),
            Series::Quotes => (2, 0),
            Series::Bars { period_secs, source } => (3 + source as u8, period_secs),
        };
        let p = period.to_be_bytes();
        [tag, p[0], p[1], p[2], p[3]]
    }

    fn from_key(k: &[u8]) -> Result<Self, StoreError> {
        let period = u32::from_be_bytes(k[1..5].try_into().expect("5-byte series key"));
        let source = |s| Ok(Series::Bars { period_secs: period, source: s });
        match k[0] {
            1 => Ok(Series::Trades),
            2 => Ok(Series::Quotes),
            3 => source(PriceSource::Trade),
            4 => source(PriceSource::Bid),
            5 => source(PriceSource::Ask),
            6 => source(PriceSource::Mid),
            t => Err(StoreError::Corrupt(format!("unknown series tag {t}"))),
        }
    }
}

/// Bytes of a time that sort like the time.
fn time_key(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

fn time_from_key(b: &[u8]) -> i64 {
    (u64::from_be_bytes(b.try_into().expect("8-byte time key")) ^ (1 << 63)) as i64
}

#[derive(Debug, Clone, serde::Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Tick and quote blocks cover this many seconds.
    pub tick_bucket_secs: u32,
    /// Bar blocks cover this many bars of their period.
    pub bars_per_block: u32,
    /// How far past a bucket's end the series must be before it is sealed.
    pub seal_grace_secs: u32,
    /// Blocks sealed per commit at most, so a bucket boundary across many
    /// instruments is spread over several commits instead of stalling one.
    pub seal_per_commit: usize,
    /// sled's own flush to disk, in milliseconds.
    pub flush_every_ms: u64,
    pub cache_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self { tick_bucket_secs: 60, bars_per_block: 1440, seal_grace_secs: 5, seal_per_commit: 32, flush_every_ms: 200, cache_bytes: 64 << 20 }
    }
}

impl StoreConfig {
    fn bucket_ns(&self, series: Series) -> i64 {
        match series {
            Series::Trades | Series::Quotes => i64::from(self.tick_bucket_secs) * NANOS,
            Series::Bars { period_secs, .. } => i64::from(period_secs) * i64::from(self.bars_per_block) * NANOS,
        }
    }
}

/// What one commit did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CommitReport {
    pub journaled: usize,
    pub sealed_blocks: usize,
    pub journal_entries_dropped: usize,
}

/// Per-series totals for `stratbox data stats`.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesStats {
    pub symbol: String,
    pub series: Series,
    pub rows: u64,
    pub blocks: u64,
    /// Bytes of the sealed blocks' encoded values (without sled's overhead).
    pub encoded_bytes: u64,
    pub open_rows: u64,
    pub first: Option<Timestamp>,
    pub last: Option<Timestamp>,
}

type OpenKey = (InstrumentId, Series, i64);

pub struct MarketStore {
    path: PathBuf,
    config: StoreConfig,
    db: sled::Db,
    data: sled::Tree,
    symbols: sled::Tree,
    quarantine: sled::Tree,
    /// Key of the next quarantine entry (kept in the data, not in sled's id
    /// generator, which a compaction's copy does not carry over).
    quarantine_next: std::sync::atomic::AtomicU64,
    /// Records of unsealed buckets (journaled, not yet in a block).
    open: BTreeMap<OpenKey, Vec<Row>>,
    /// Appended since the last commit, by series.
    pending: BTreeMap<Series, Vec<(InstrumentId, Row)>>,
    watermark: HashMap<Series, i64>,
    seq: u64,
    ids: HashMap<String, InstrumentId>,
    scanned_since_open: bool,
}

/// Opens the sled database `config` names. sled releases its lock a moment
/// after the last handle is dropped, so a database closed just now (a store
/// after an import, before its compaction; a journal reopened) may still be
/// locked: retry for up to 2 s, then give sled's error back. Shared by every
/// sled database the host reopens.
pub fn open_sled(config: &sled::Config) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match config.open() {
            Err(e) if is_locked(&e) && std::time::Instant::now() < deadline => std::thread::sleep(std::time::Duration::from_millis(20)),
            other => return other,
        }
    }
}

/// Whether sled refused to open because another handle holds the lock.
pub fn is_locked(e: &sled::Error) -> bool {
    e.to_string().contains("could not acquire lock")
}

fn open_store_db(config: &sled::Config, path: &Path) -> Result<sled::Db, StoreError> {
    open_sled(config).map_err(|source| if is_locked(&source) { StoreError::Locked(path.to_owned()) } else { StoreError::Open { path: path.to_owned(), source } })
}

impl MarketStore {
    /// Opens (or creates) the store in `path` and replays its journal.
    pub fn open(path: &Path, config: StoreConfig) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open { path: path.to_owned(), source };
        compact::recover(path)?;
        // Private from the start (sled would create it 0755).
        stratbox_contract::util::create_private_dir(path).map_err(|e| StoreError::Open { path: path.to_owned(), source: sled::Error::Io(e) })?;
        let db = open_store_db(&sled::Config::new().path(path).cache_capacity(config.cache_bytes).flush_every_ms(Some(config.flush_every_ms)), path)?;
        let data = db.open_tree("market").map_err(open_err)?;
        let symbols = db.open_tree("instruments").map_err(open_err)?;
        let quarantine = db.open_tree("quarantine").map_err(open_err)?;
        let meta = db.open_tree("meta").map_err(open_err)?;
        match meta.get("format").map_err(open_err)? {
            Some(v) if v.as_ref() == FORMAT.to_be_bytes() => {}
            None if data.is_empty() && symbols.is_empty() => {
                meta.insert("format", &FORMAT.to_be_bytes()).map_err(open_err)?;
            }
            found => {
                let found = found.map_or("unknown (no format marker)".to_owned(), |v| format!("{v:?}"));
                return Err(StoreError::Format { path: path.to_owned(), found });
            }
        }
        let quarantine_next = match quarantine.last().map_err(open_err)? {
            Some((k, _)) => k.as_ref().try_into().map(u64::from_be_bytes).map_err(|_| StoreError::Corrupt("a quarantine key is not 8 bytes".into()))? + 1,
            None => 0,
        };
        let mut store = Self {
            path: path.to_owned(),
            config,
            db,
            data,
            symbols,
            quarantine,
            quarantine_next: quarantine_next.into(),
            open: BTreeMap::new(),
            pending: BTreeMap::new(),
            watermark: HashMap::new(),
            seq: 0,
            ids: HashMap::new(),
            scanned_since_open: false,
        };
        for kv in store.symbols.scan_prefix(b"s:") {
            let (k, v) = kv?;
            let id = u32::from_be_bytes(v.as_ref().try_into().map_err(|_| StoreError::Corrupt("instrument id is not 4 bytes".into()))?);
            store.ids.insert(String::from_utf8_lossy(&k[2..]).into_owned(), id);
        }
        store.replay_journal()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn replay_journal(&mut self) -> Result<(), StoreError> {
        let mut sealed_through: HashMap<OpenKey, Option<u64>> = HashMap::new();
        for kv in self.data.scan_prefix(b"J") {
            let (k, v) = kv?;
            let series = Series::from_key(&k[1..6])?;
            let seq = u64::from_be_bytes(k[14..22].try_into().expect("journal key"));
            self.seq = self.seq.max(seq + 1);
            let bucket = self.config.bucket_ns(series);
            for (instrument, row) in decode_entry(&v)? {
                let key = (instrument, series, row.time - row.time.rem_euclid(bucket));
                let sealed = match sealed_through.get(&key) {
                    Some(s) => *s,
                    None => {
                        let s = self.data.get(Self::block_key(key.0, key.1, key.2))?.map(|b| block_seq(&b)).transpose()?;
                        sealed_through.insert(key, s);
                        s
                    }
                };
                // Already in the block: sealed by this commit or a later one.
                if sealed.is_some_and(|through| through >= seq) {
                    continue;
                }
                self.track(series, instrument, row);
            }
        }
        Ok(())
    }

    /// The id of `symbol`, assigned (and persisted) on first sight.
    pub fn instrument_id(&mut self, symbol: &str) -> Result<InstrumentId, StoreError> {
        if let Some(&id) = self.ids.get(symbol) {
            return Ok(id);
        }
        let id = self.ids.len() as u32;
        self.symbols.insert(format!("s:{symbol}"), &id.to_be_bytes())?;
        self.symbols.insert(format!("i:{id:010}"), symbol.as_bytes())?;
        self.ids.insert(symbol.to_owned(), id);
        Ok(id)
    }

    /// Records what is known about an instrument (tick and lot size, currency, trading hours).
    pub fn set_meta(&mut self, meta: &crate::InstrumentMeta) -> Result<(), StoreError> {
        self.instrument_id(&meta.symbol)?;
        self.symbols.insert(format!("m:{}", meta.symbol), serde_json::to_vec(meta).expect("serialisable"))?;
        Ok(())
    }

    /// What is known about `symbol`, if anything was recorded.
    pub fn meta(&self, symbol: &str) -> Result<Option<crate::InstrumentMeta>, StoreError> {
        match self.symbols.get(format!("m:{symbol}"))? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v).map(Some).map_err(|e| StoreError::Corrupt(format!("metadata of {symbol}: {e}"))),
        }
    }

    /// The id of a known symbol.
    pub fn instrument_id_of(&self, symbol: &str) -> Option<InstrumentId> {
        self.ids.get(symbol).copied()
    }

    /// The symbol of an id.
    pub fn symbol(&self, id: InstrumentId) -> Option<String> {
        self.symbols.get(format!("i:{id:010}")).ok().flatten().map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    fn track(&mut self, series: Series, instrument: InstrumentId, row: Row) {
        let bucket = self.config.bucket_ns(series);
        let start = row.time - row.time.rem_euclid(bucket);
        self.open.entry((instrument, series, start)).or_default().push(row);
        let w = self.watermark.entry(series).or_insert(i64::MIN);
        *w = (*w).max(row.time);
    }

    fn append(&mut self, series: Series, instrument: InstrumentId, row: Row) -> Result<(), StoreError> {
        for f in &row.fields[..series.kind().width()] {
            codec::fixed(*f)?;
        }
        self.track(series, instrument, row);
        self.pending.entry(series).or_default().push((instrument, row));
        Ok(())
    }

    pub fn append_trade(&mut self, t: &Trade) -> Result<(), StoreError> {
        self.append(Series::Trades, t.instrument, Row { time: t.time, fields: [t.price, t.size, 0.0, 0.0, 0.0] })
    }

    pub fn append_quote(&mut self, q: &Quote) -> Result<(), StoreError> {
        self.append(Series::Quotes, q.instrument, Row { time: q.time, fields: [q.bid, q.bid_size, q.ask, q.ask_size, 0.0] })
    }

    pub fn append_bar(&mut self, b: &Bar, source: PriceSource) -> Result<(), StoreError> {
        let series = Series::Bars { period_secs: b.period_secs, source };
        self.append(series, b.instrument, Row { time: b.start, fields: [b.open, b.high, b.low, b.close, b.volume] })
    }

    /// Records appended since the last commit.
    pub fn pending(&self) -> usize {
        self.pending.values().map(Vec::len).sum()
    }

    fn block_key(instrument: InstrumentId, series: Series, start: i64) -> Vec<u8> {
        let mut k = Vec::with_capacity(18);
        k.push(b'B');
        k.extend_from_slice(&instrument.to_be_bytes());
        k.extend_from_slice(&series.key());
        k.extend_from_slice(&time_key(start));
        k
    }

    /// Writes the journal entries of what was appended, seals the buckets
    /// that are past their end, and drops journal entries made redundant: one
    /// atomic batch.
    pub fn commit(&mut self) -> Result<CommitReport, StoreError> {
        self.commit_sealing(false)
    }

    /// Commits and seals every open bucket (the end of an import: no more
    /// records are coming for them; any that do are merged into the blocks).
    pub fn seal_all(&mut self) -> Result<CommitReport, StoreError> {
        self.commit_sealing(true)
    }

    fn commit_sealing(&mut self, everything: bool) -> Result<CommitReport, StoreError> {
        let mut batch = sled::Batch::default();
        let mut report = CommitReport::default();
        let mut entries = Vec::new();
        let seq = self.seq;
        self.seq += 1;
        for (series, rows) in std::mem::take(&mut self.pending) {
            let max_time = rows.iter().map(|(_, r)| r.time).max().unwrap_or(i64::MIN);
            let mut key = vec![b'J'];
            key.extend_from_slice(&series.key());
            key.extend_from_slice(&time_key(max_time));
            key.extend_from_slice(&seq.to_be_bytes());
            report.journaled += rows.len();
            entries.push((series, max_time, key, encode_entry(series, &rows)?));
        }
        // Seal every bucket whose series has moved past its end and grace.
        let grace = i64::from(self.config.seal_grace_secs) * NANOS;
        let due: Vec<OpenKey> = self
            .open
            .keys()
            .filter(|(_, series, start)| {
                if everything {
                    return true;
                }
                let end = start.saturating_add(self.config.bucket_ns(*series));
                self.watermark.get(series).is_some_and(|w| *w >= end.saturating_add(grace))
            })
            .take(if everything { usize::MAX } else { self.config.seal_per_commit.max(1) })
            .copied()
            .collect();
        for key in &due {
            let mut rows = self.open.remove(key).expect("due key is open");
            let (instrument, series, start) = *key;
            let bkey = Self::block_key(instrument, series, start);
            if let Some(old) = self.data.get(&bkey)? {
                let mut merged = block_rows(&old)?;
                merged.append(&mut rows);
                rows = merged;
            }
            rows.sort_by_key(|r| r.time);
            let mut block = seq.to_be_bytes().to_vec();
            block.extend(codec::encode(series.kind(), &rows)?);
            batch.insert(bkey, block);
            report.sealed_blocks += 1;
        }
        // A journal entry can go once every record in it is sealed: its newest
        // record is older than the oldest still-open bucket of its series.
        let mut oldest_open: HashMap<Series, i64> = HashMap::new();
        for (_, series, start) in self.open.keys() {
            let e = oldest_open.entry(*series).or_insert(i64::MAX);
            *e = (*e).min(*start);
        }
        let redundant = |series: &Series, max_time: i64| max_time < oldest_open.get(series).copied().unwrap_or(i64::MAX);
        // Old entries only become redundant when something was sealed (or on
        // the first commit after opening, which may follow a crash).
        let scan = report.sealed_blocks > 0 || !self.scanned_since_open;
        self.scanned_since_open = true;
        for kv in self.data.scan_prefix(b"J").filter(|_| scan) {
            let (k, _) = kv?;
            if redundant(&Series::from_key(&k[1..6])?, time_from_key(&k[6..14])) {
                batch.remove(k);
                report.journal_entries_dropped += 1;
            }
        }
        // This commit's own entries too: records sealed in this very batch need no journal.
        for (series, max_time, key, entry) in entries {
            if !redundant(&series, max_time) {
                batch.insert(key, entry);
            }
        }
        self.data.apply_batch(batch)?;
        Ok(report)
    }

    /// Forces everything committed to disk.
    pub fn flush(&self) -> Result<usize, StoreError> {
        Ok(self.db.flush()?)
    }

    /// Records of one series in `[from, to)`, in time order (sealed and open).
    pub fn range(&self, instrument: InstrumentId, series: Series, from: Timestamp, to: Timestamp) -> Result<Vec<Row>, StoreError> {
        let bucket = self.config.bucket_ns(series);
        let first = from.saturating_sub(from.rem_euclid(bucket));
        let mut out = Vec::new();
        for kv in self.data.range(Self::block_key(instrument, series, first)..Self::block_key(instrument, series, to)) {
            let (_, v) = kv?;
            out.extend(block_rows(&v)?.into_iter().filter(|r| r.time >= from && r.time < to));
        }
        for (_, rows) in self.open.range((instrument, series, first)..(instrument, series, to)) {
            out.extend(rows.iter().filter(|r| r.time >= from && r.time < to));
        }
        out.sort_by_key(|r| r.time);
        Ok(out)
    }

    /// Deletes sealed blocks of `series` that end before `before`; returns how many.
    pub fn retain(&self, series: Series, before: Timestamp) -> Result<usize, StoreError> {
        let bucket = self.config.bucket_ns(series);
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for kv in self.data.scan_prefix(b"B") {
            let (k, _) = kv?;
            if Series::from_key(&k[5..10])? == series && time_from_key(&k[10..18]).saturating_add(bucket) <= before {
                batch.remove(k);
                n += 1;
            }
        }
        self.data.apply_batch(batch)?;
        Ok(n)
    }

    fn stats_entry<'a>(&self, by: &'a mut BTreeMap<(InstrumentId, Series), SeriesStats>, id: InstrumentId, series: Series) -> &'a mut SeriesStats {
        by.entry((id, series)).or_insert_with(|| SeriesStats {
            symbol: self.symbol(id).unwrap_or_else(|| format!("#{id}")),
            series,
            rows: 0,
            blocks: 0,
            encoded_bytes: 0,
            open_rows: 0,
            first: None,
            last: None,
        })
    }

    /// Rows and blocks per (instrument, series), sealed and open.
    pub fn stats(&self) -> Result<Vec<SeriesStats>, StoreError> {
        let mut by = BTreeMap::new();
        let widen = |s: &mut SeriesStats, lo: Option<i64>, hi: Option<i64>| {
            s.first = match (s.first, lo) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            s.last = s.last.max(hi);
        };
        for kv in self.data.scan_prefix(b"B") {
            let (k, v) = kv?;
            let id = u32::from_be_bytes(k[1..5].try_into().expect("block key"));
            let rows = block_rows(&v)?;
            let s = self.stats_entry(&mut by, id, Series::from_key(&k[5..10])?);
            s.rows += rows.len() as u64;
            s.blocks += 1;
            s.encoded_bytes += v.len() as u64;
            widen(s, rows.first().map(|r| r.time), rows.last().map(|r| r.time));
        }
        for ((id, series, _), rows) in &self.open {
            let s = self.stats_entry(&mut by, *id, *series);
            s.open_rows += rows.len() as u64;
            widen(s, rows.iter().map(|r| r.time).min(), rows.iter().map(|r| r.time).max());
        }
        Ok(by.into_values().collect())
    }

    /// Bytes sled uses on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }
}

/// The commit through which a block is sealed.
fn block_seq(block: &[u8]) -> Result<u64, StoreError> {
    block.get(..8).map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes"))).ok_or_else(|| StoreError::Corrupt("block shorter than its header".into()))
}

/// The records of a block.
fn block_rows(block: &[u8]) -> Result<Vec<Row>, StoreError> {
    block_seq(block)?;
    Ok(codec::decode(&block[8..])?.1)
}

/// A journal entry: for each instrument, its id (4 bytes), the length of its
/// block (4 bytes) and the block of its rows.
fn encode_entry(series: Series, rows: &[(InstrumentId, Row)]) -> Result<Vec<u8>, StoreError> {
    let mut by: BTreeMap<InstrumentId, Vec<Row>> = BTreeMap::new();
    for (i, r) in rows {
        by.entry(*i).or_default().push(*r);
    }
    let mut out = Vec::new();
    for (instrument, rows) in by {
        let block = codec::encode(series.kind(), &rows)?;
        out.extend_from_slice(&instrument.to_be_bytes());
        out.extend_from_slice(&(block.len() as u32).to_be_bytes());
        out.extend_from_slice(&block);
    }
    Ok(out)
}

fn decode_entry(bytes: &[u8]) -> Result<Vec<(InstrumentId, Row)>, StoreError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let head = bytes.get(at..at + 8).ok_or_else(|| StoreError::Corrupt("journal entry truncated".into()))?;
        let instrument = u32::from_be_bytes(head[..4].try_into().expect("4 bytes"));
        let len = u32::from_be_bytes(head[4..].try_into().expect("4 bytes")) as usize;
        let block = bytes.get(at + 8..at + 8 + len).ok_or_else(|| StoreError::Corrupt("journal block truncated".into()))?;
        out.extend(codec::decode(block)?.1.into_iter().map(|r| (instrument, r)));
        at += 8 + len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60 * NANOS;

    fn trade(instrument: u32, time: i64, price: f64) -> Trade {
        Trade { instrument, time, price, size: 100.0 }
    }

    fn journal_entries(s: &MarketStore) -> usize {
        s.data.scan_prefix(b"J").count()
    }

    #[test]
    fn seals_buckets_drops_the_journal_and_reopens_to_the_same_data() {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig { seal_grace_secs: 0, ..Default::default() };
        let mut all = Vec::new();
        {
            let mut s = MarketStore::open(dir.path(), config.clone()).unwrap();
            let (a, b) = (s.instrument_id("AAA").unwrap(), s.instrument_id("BBB").unwrap());
            // Three minutes of two instruments, committed every 10 s of data.
            for k in 0..180i64 {
                for id in [a, b] {
                    let t = trade(id, k * NANOS, 100.0 + (k % 13) as f64 * 0.01 + f64::from(id));
                    s.append_trade(&t).unwrap();
                    all.push(t);
                }
                if k % 10 == 9 {
                    s.commit().unwrap();
                }
            }
            // Minutes 0 and 1 sealed for both; minute 2 still open (journaled).
            let r = s.commit().unwrap();
            assert_eq!(s.data.scan_prefix(b"B").count(), 4, "{r:?}");
            let mut c = MarketStore::open(&dir.path().join("copy"), config.clone()).unwrap();
            c.append_trade(&trade(0, 5, 1.0)).unwrap();
            c.seal_all().unwrap();
            assert_eq!(journal_entries(&c), 0, "an entry sealed in its own commit is not journaled");
            assert!(journal_entries(&s) > 0 && journal_entries(&s) <= 6, "only the open minute's entries remain");
            assert_eq!(s.range(a, Series::Trades, 0, 180 * NANOS).unwrap().len(), 180);
        }
        let s = MarketStore::open(dir.path(), config).unwrap();
        assert_eq!(s.instrument_id_of("BBB"), Some(1), "instrument ids persist");
        for id in [0, 1] {
            let got = s.range(id, Series::Trades, 0, 180 * NANOS).unwrap();
            let want: Vec<&Trade> = all.iter().filter(|t| t.instrument == id).collect();
            assert_eq!(got.len(), want.len());
            assert!(got.iter().zip(want).all(|(r, t)| r.time == t.time && r.fields[0] == t.price && r.fields[1] == t.size));
        }
        let sub = s.range(0, Series::Trades, 30 * NANOS, 90 * NANOS).unwrap();
        assert_eq!((sub.len(), sub[0].time, sub[59].time), (60, 30 * NANOS, 89 * NANOS));
        let stats = s.stats().unwrap();
        assert_eq!(stats.iter().map(|x| x.rows + x.open_rows).sum::<u64>(), 360);
        assert_eq!((stats[0].first, stats[0].last), (Some(0), Some(179 * NANOS)));
    }

    #[test]
    fn a_commit_mixing_sealed_and_open_buckets_replays_without_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig { seal_grace_secs: 0, ..Default::default() };
        {
            let mut s = MarketStore::open(dir.path(), config.clone()).unwrap();
            for k in 0..150 {
                s.append_trade(&trade(0, k * NANOS, 1.0)).unwrap();
            }
            s.commit().unwrap(); // one entry: minutes 0 and 1 sealed, minute 2 open
            s.append_trade(&trade(0, 3 * NANOS, 0.5)).unwrap(); // late, for sealed minute 0
            s.commit().unwrap();
        }
        let s = MarketStore::open(dir.path(), config).unwrap();
        let rows = s.range(0, Series::Trades, 0, i64::MAX).unwrap();
        assert_eq!(rows.len(), 151, "every record exactly once");
        assert_eq!(rows.iter().filter(|r| r.time == 3 * NANOS).count(), 2, "the late record and the original");
    }

    #[test]
    fn a_store_in_use_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let _first = MarketStore::open(dir.path(), StoreConfig::default()).unwrap();
        let e = MarketStore::open(dir.path(), StoreConfig::default()).err().unwrap().to_string();
        assert!(e.contains("is in use by another process"), "{e}");
    }

    #[test]
    fn late_records_merge_into_their_sealed_block() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = MarketStore::open(dir.path(), StoreConfig { seal_grace_secs: 0, ..Default::default() }).unwrap();
        s.append_trade(&trade(0, 10 * NANOS, 1.0)).unwrap();
        s.append_trade(&trade(0, 2 * MIN, 2.0)).unwrap();
        assert_eq!(s.commit().unwrap().sealed_blocks, 1);
        s.append_trade(&trade(0, 5 * NANOS, 0.5)).unwrap(); // late, for the sealed minute 0
        assert_eq!(s.commit().unwrap().sealed_blocks, 1, "re-sealed at once");
        let rows = s.range(0, Series::Trades, 0, MIN).unwrap();
        assert_eq!(rows.iter().map(|r| r.fields[0]).collect::<Vec<_>>(), vec![0.5, 1.0]);
        assert_eq!(s.data.scan_prefix(b"B").count(), 1, "merged, not a second block");
    }

    #[test]
    fn bars_quotes_retention_and_quarantine() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = MarketStore::open(dir.path(), StoreConfig { seal_grace_secs: 0, bars_per_block: 10, ..Default::default() }).unwrap();
        let series = Series::Bars { period_secs: 60, source: PriceSource::Mid };
        for k in 0..35 {
            let bar = Bar { instrument: 3, start: k * MIN, period_secs: 60, open: 1.0, high: 2.0, low: 0.5, close: 1.5, volume: k as f64 };
            s.append_bar(&bar, PriceSource::Mid).unwrap();
        }
        s.append_quote(&Quote { instrument: 3, time: 7, bid: 1.0, bid_size: 2.0, ask: 1.1, ask_size: 3.0 }).unwrap();
        s.commit().unwrap();
        let bars = s.range(3, series, 0, 35 * MIN).unwrap();
        assert_eq!((bars.len(), bars[34].fields[4]), (35, 34.0));
        assert!(s.range(3, Series::Bars { period_secs: 60, source: PriceSource::Trade }, 0, i64::MAX).unwrap().is_empty(), "sources are separate series");
        assert_eq!(s.range(3, Series::Quotes, 0, 10).unwrap()[0].fields[..4], [1.0, 2.0, 1.1, 3.0]);
        assert_eq!(s.retain(series, 20 * MIN).unwrap(), 2, "the blocks of bars 0-9 and 10-19");
        assert_eq!(s.range(3, series, 0, 35 * MIN).unwrap().len(), 15);
        let bad = crate::Record::Trade(trade(3, 1, f64::NAN));
        let reject = crate::Reject::new(crate::RejectReason::NotFinite, "`price` is NaN");
        s.quarantine(&QuarantineEntry::new("X", &bad, &reject, "x.csv", Some(7), false)).unwrap();
        assert_eq!(s.quarantined(), 1);
        let listed = s.quarantine_entries(&QuarantineFilter { reason: Some("Not_Finite".into()), ..Default::default() }).unwrap();
        assert_eq!((listed[0].reason.as_str(), listed[0].line, listed[0].values.as_str()), ("not-finite", Some(7), "trade price NaN size 100"));
        assert!(s.quarantine_entries(&QuarantineFilter { symbol: Some("Y".into()), ..Default::default() }).unwrap().is_empty());
        assert!(matches!(s.append_trade(&trade(3, 1, 1e12)), Err(StoreError::Unrepresentable(_))));
    }
}
