//! `stratbox data import`: the CSV and CSV.gz formats of `../shared/data`,
//! through validation (rejections counted and quarantined) and aggregation
//! (trades to 1-minute bars; bars resampled to longer periods) into the store.
//!
//! Formats, recognised by their header:
//! - `datetime,price,quantity,exchange,condition,suspicious`: trades (Lean ticks);
//! - `datetime,open,high,low,close,volume` (or `datetime_utc,...`, or `date,...`):
//!   trade bars of one symbol, the period inferred from the timestamps;
//! - `Date,Open,High,Low,Close,Adj Close,Volume` (Yahoo's shape): bars of one
//!   symbol. The bar's close is `Close`, the traded price that agrees with
//!   `Open`, `High` and `Low`; `Adj Close` is not read (an adjusted close on
//!   unadjusted bars would break their OHLC);
//! - `datetime,bid_open,...,ask_close,ask_size`: bid and ask bars;
//! - `date,open,high,low,close,volume,Name` and `symbol,date,open,...`: daily
//!   bars of many symbols.
//!
//! Headers are matched without regard to case. Where the file names no
//! symbol, it is `--symbol`, else the file name's first word
//! (`spy_trade_20131008.csv` -> `SPY`). Times are read in `--tz` (default: New
//! York for paths under `equity_usa`, where Lean keeps exchange time; UTC
//! otherwise) and stored as UTC.
//!
//! History is validated as history: a spike is flagged (kept, counted,
//! listed in the quarantine as kept) rather than dropped, unless
//! `--spikes drop|off` says otherwise; every other failed check drops the
//! record into the quarantine with its file and line.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};


use chrono_tz::Tz;
use serde::Serialize;

use super::{MarketStore, PriceSource, StoreError};
use super::QuarantineEntry;
use crate::{Accepted, Bar, BarAggregator, parse_datetime, Record, Reject, RejectReason, Resampler, Trade, Validator, ValidatorConfig};

/// Longer periods built from imported bars (when a multiple of their period).
pub const RESAMPLE_PERIODS: [u32; 5] = [300, 900, 3_600, 14_400, 86_400];
/// Records between commits.
const COMMIT_EVERY: usize = 50_000;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: unrecognised header `{header}` (see `stratbox data import --help` for the formats)")]
    UnknownFormat { path: PathBuf, header: String },
    #[error("{path}: --symbol {symbol} was given, but the file names its symbols (column `{column}`)")]
    SymbolGiven { path: PathBuf, symbol: String, column: String },
    #[error("{path}, line {line}, column {column} (`{field}`): {why}")]
    Malformed { path: PathBuf, line: usize, column: usize, field: String, why: String },
    #[error("{path}: {source}")]
    Store { path: PathBuf, source: StoreError },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Trades,
    Bars,
    /// `Date,Open,High,Low,Close,Adj Close,Volume`: `Close` is the close.
    BarsWithAdjClose,
    QuoteBars,
    DailyBySymbol { symbol_column: usize },
}

/// How to read a file.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Zone of the file's timestamps (default: see [`default_zone`]).
    pub zone: Option<Tz>,
    /// The symbol of a single-symbol file (default: the file name's first word).
    pub symbol: Option<String>,
    pub validator: ValidatorConfig,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self { zone: None, symbol: None, validator: ValidatorConfig::historical() }
    }
}

/// What one file brought.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub path: PathBuf,
    pub format: Format,
    pub rows: u64,
    pub accepted: u64,
    pub rejected: BTreeMap<RejectReason, u64>,
    /// Accepted but flagged (spikes in history), by reason.
    pub flagged: BTreeMap<RejectReason, u64>,
    pub bars_built: u64,
    pub symbols: usize,
}

fn open_text(path: &Path) -> Result<Box<dyn BufRead>, ImportError> {
    let file = std::fs::File::open(path).map_err(|source| ImportError::Io { path: path.to_owned(), source })?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") { Box::new(flate2::read::GzDecoder::new(file)) } else { Box::new(file) };
    Ok(Box::new(BufReader::with_capacity(1 << 20, reader)))
}

fn detect(header: &str) -> Option<Format> {
    let lower = header.trim().to_ascii_lowercase();
    let cols: Vec<&str> = lower.split(',').map(str::trim).collect();
    match cols.as_slice() {
        ["datetime", "price", "quantity", ..] => Some(Format::Trades),
        ["datetime" | "datetime_utc" | "date", "open", "high", "low", "close", "volume"] => Some(Format::Bars),
        ["date", "open", "high", "low", "close", "adj close", "volume"] => Some(Format::BarsWithAdjClose),
        ["datetime", "bid_open", "bid_high", "bid_low", "bid_close", "bid_size", "ask_open", "ask_high", "ask_low", "ask_close", "ask_size"] => {
            Some(Format::QuoteBars)
        }
        ["date", "open", "high", "low", "close", "volume", "name"] => Some(Format::DailyBySymbol { symbol_column: 6 }),
        ["symbol", "date", "open", "high", "low", "close", "volume"] => Some(Format::DailyBySymbol { symbol_column: 0 }),
        _ => None,
    }
}

/// The default zone of a file: Lean's US equities are in New York time.
pub fn default_zone(path: &Path) -> Tz {
    if path.to_string_lossy().contains("equity_usa") { chrono_tz::America::New_York } else { chrono_tz::UTC }
}

fn symbol_of(path: &Path) -> String {
    let stem = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    stem.split(['_', '.']).next().unwrap_or("UNKNOWN").to_uppercase()
}

struct Line<'a> {
    path: &'a Path,
    number: usize,
    cells: Vec<&'a str>,
    header: &'a [String],
}

impl Line<'_> {
    fn err(&self, column: usize, why: String) -> ImportError {
        ImportError::Malformed {
            path: self.path.to_owned(),
            line: self.number,
            column: column + 1,
            field: self.header.get(column).cloned().unwrap_or_default(),
            why,
        }
    }

    fn cell(&self, i: usize) -> Result<&str, ImportError> {
        self.cells.get(i).copied().ok_or_else(|| self.err(i, format!("the line has {} columns, the header {}", self.cells.len(), self.header.len())))
    }

    /// A number; `Ok(None)` for an empty cell (a missing field, for the validator).
    fn number(&self, i: usize) -> Result<Option<f64>, ImportError> {
        let c = self.cell(i)?.trim();
        if c.is_empty() {
            return Ok(None);
        }
        c.parse().map(Some).map_err(|_| self.err(i, format!("`{c}` is not a number")))
    }

    fn time(&self, i: usize, zone: Tz) -> Result<i64, ImportError> {
        parse_datetime(self.cell(i)?.trim(), zone).map_err(|why| self.err(i, why))
    }
}

/// Imports one file into `store`.
pub fn import_file(store: &mut MarketStore, path: &Path, options: &ImportOptions) -> Result<ImportReport, ImportError> {
    import_file_with_progress(store, path, options, &mut |_| {})
}

/// Imports one file, calling `durable(accepted)` after each commit is on
/// disk with the number of records accepted so far: what a crash can no
/// longer lose.
pub fn import_file_with_progress(
    store: &mut MarketStore,
    path: &Path,
    options: &ImportOptions,
    durable: &mut dyn FnMut(u64),
) -> Result<ImportReport, ImportError> {
    let (zone, validator) = (options.zone.unwrap_or_else(|| default_zone(path)), &options.validator);
    let mut text = open_text(path)?;
    let mut header_line = String::new();
    text.read_line(&mut header_line).map_err(|source| ImportError::Io { path: path.to_owned(), source })?;
    let format = detect(&header_line).ok_or_else(|| ImportError::UnknownFormat { path: path.to_owned(), header: header_line.trim().to_owned() })?;
    let header: Vec<String> = header_line.trim().split(',').map(str::to_owned).collect();
    let store_err = |source| ImportError::Store { path: path.to_owned(), source };
    if let (Format::DailyBySymbol { symbol_column }, Some(symbol)) = (format, &options.symbol) {
        return Err(ImportError::SymbolGiven { path: path.to_owned(), symbol: symbol.clone(), column: header[symbol_column].clone() });
    }
    let source_name = path.display().to_string();

    // One validator per price source: a bid bar and an ask bar of the same
    // minute are two streams, not a repeat.
    let mut validators: HashMap<PriceSource, Validator> = HashMap::new();
    let mut report = ImportReport { path: path.to_owned(), format, rows: 0, accepted: 0, rejected: BTreeMap::new(), flagged: BTreeMap::new(), bars_built: 0, symbols: 0 };
    let file_symbol = options.symbol.clone().unwrap_or_else(|| symbol_of(path));
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut minute = BarAggregator::new(60, 0);
    let mut resamplers: HashMap<(u32, PriceSource), Resampler> = HashMap::new();
    // A `date` column without a time of day holds daily bars; other periods
    // are inferred (a weekend must not make a daily file's period 3 days).
    let mut period: Option<u32> = header[0].eq_ignore_ascii_case("date").then_some(86_400);
    let mut pending_bars: Vec<(Bar, PriceSource)> = Vec::new();
    // Bars of an inferred period wait until the period is known.
    let mut first_bars: Vec<(Bar, PriceSource)> = Vec::new();

    let mut put_bar = |store: &mut MarketStore, bar: Bar, source: PriceSource, report: &mut ImportReport| -> Result<(), StoreError> {
        store.append_bar(&bar, source)?;
        report.bars_built += 1;
        for p in RESAMPLE_PERIODS.iter().copied().filter(|p| *p > bar.period_secs && p % bar.period_secs == 0) {
            if let Some(done) = resamplers.entry((p, source)).or_insert_with(|| Resampler::new(p)).push(&bar) {
                store.append_bar(&done, source)?;
                report.bars_built += 1;
            }
        }
        Ok(())
    };

    let mut raw = String::new();
    let mut number = 1;
    loop {
        raw.clear();
        let n = text.read_line(&mut raw).map_err(|source| ImportError::Io { path: path.to_owned(), source })?;
        if n == 0 {
            break;
        }
        number += 1;
        if raw.trim().is_empty() {
            continue;
        }
        report.rows += 1;
        let line = Line { path, number, cells: raw.trim_end().split(',').collect(), header: &header };
        let symbol = match format {
            Format::DailyBySymbol { symbol_column } => line.cell(symbol_column)?.trim().to_owned(),
            _ => file_symbol.clone(),
        };
        let id = match ids.get(&symbol) {
            Some(id) => *id,
            None => {
                let id = store.instrument_id(&symbol).map_err(store_err)?;
                ids.insert(symbol.clone(), id);
                id
            }
        };
        let mut records: Vec<(Record, Option<Reject>, PriceSource)> = Vec::with_capacity(2);
        match format {
            Format::Trades => {
                let (price, size) = (line.number(1)?, line.number(2)?);
                let trade = Trade { instrument: id, time: line.time(0, zone)?, price: price.unwrap_or(f64::NAN), size: size.unwrap_or(f64::NAN) };
                let missing = match (price, size) {
                    (None, _) => Some(Reject::missing("price")),
                    (_, None) => Some(Reject::missing("quantity")),
                    _ => None,
                };
                records.push((Record::Trade(trade), missing, PriceSource::Trade));
            }
            Format::Bars | Format::BarsWithAdjClose | Format::DailyBySymbol { .. } | Format::QuoteBars => {
                let (time_col, first) = match format {
                    Format::DailyBySymbol { symbol_column: 0 } => (1, 2),
                    _ => (0, 1),
                };
                let start = line.time(time_col, zone)?;
                let legs: &[(usize, PriceSource)] = match format {
                    Format::QuoteBars => &[(first, PriceSource::Bid), (first + 5, PriceSource::Ask)],
                    _ => &[(first, PriceSource::Trade)],
                };
                // Columns of open, high, low, close, volume (`Adj Close` skipped).
                let columns = |at: usize| if format == Format::BarsWithAdjClose { [at, at + 1, at + 2, at + 3, at + 5] } else { [at, at + 1, at + 2, at + 3, at + 4] };
                for &(at, source) in legs {
                    let f: Vec<Option<f64>> = columns(at).into_iter().map(|i| line.number(i)).collect::<Result<_, _>>()?;
                    let names = ["open", "high", "low", "close", "volume"];
                    let missing = f.iter().position(Option::is_none).map(|k| Reject::missing(names[k]));
                    let bar = Bar {
                        instrument: id,
                        start,
                        period_secs: if matches!(format, Format::DailyBySymbol { .. }) { 86_400 } else { period.unwrap_or(0) },
                        open: f[0].unwrap_or(f64::NAN),
                        high: f[1].unwrap_or(f64::NAN),
                        low: f[2].unwrap_or(f64::NAN),
                        close: f[3].unwrap_or(f64::NAN),
                        volume: f[4].unwrap_or(f64::NAN),
                    };
                    records.push((Record::Bar(bar), missing, source));
                }
            }
        }
        for (record, missing, source) in records {
            let v = validators.entry(source).or_insert_with(|| Validator::new(validator.clone()));
            let verdict = match missing {
                Some(reject) => {
                    v.reject(record, reject.clone());
                    Err(reject)
                }
                None => v.check(record, i64::MAX / 2),
            };
            let entry = |reject: &Reject, kept| QuarantineEntry::new(&symbol, &record, reject, &source_name, Some(number as u64), kept);
            match verdict {
                Err(reject) => {
                    store.quarantine(&entry(&reject, false)).map_err(store_err)?;
                    continue;
                }
                Ok(Accepted::Flagged(reject)) => {
                    *report.flagged.entry(reject.reason).or_default() += 1;
                    store.quarantine(&entry(&reject, true)).map_err(store_err)?;
                }
                Ok(Accepted::Clean) => {}
            }
            report.accepted += 1;
            match record {
                Record::Trade(t) => {
                    store.append_trade(&t).map_err(store_err)?;
                    pending_bars.extend(minute.push(&t).into_iter().map(|b| (b, PriceSource::Trade)));
                }
                Record::Bar(b) if matches!(format, Format::DailyBySymbol { .. }) => pending_bars.push((b, source)),
                Record::Bar(b) => {
                    // Infer the period from the smallest gap in the first bars.
                    first_bars.push((b, source));
                    // Retry at doublings only, so inference stays linear.
                    if period.is_none() && first_bars.len() >= 64 && first_bars.len().is_power_of_two() {
                        period = infer_period(&first_bars);
                    }
                    if let Some(p) = period {
                        pending_bars.extend(first_bars.drain(..).map(|(b, s)| (Bar { period_secs: p, ..b }, s)));
                    }
                }
                Record::Quote(_) => unreachable!("no quote format"),
            }
        }
        for (bar, source) in pending_bars.drain(..) {
            put_bar(store, bar, source, &mut report).map_err(store_err)?;
        }
        if store.pending() >= COMMIT_EVERY {
            store.commit().map_err(store_err)?;
            store.flush().map_err(store_err)?;
            durable(report.accepted);
        }
    }
    // End of file: bars of a short file, the last open minute, the last longer bars.
    let p = period.or_else(|| infer_period(&first_bars)).unwrap_or(60);
    let mut tail: Vec<(Bar, PriceSource)> = first_bars.drain(..).map(|(b, s)| (Bar { period_secs: p, ..b }, s)).collect();
    tail.extend(minute.flush().into_iter().map(|b| (b, PriceSource::Trade)));
    for (bar, source) in tail {
        put_bar(store, bar, source, &mut report).map_err(store_err)?;
    }
    for ((_, source), mut r) in resamplers {
        for bar in r.flush() {
            store.append_bar(&bar, source).map_err(store_err)?;
            report.bars_built += 1;
        }
    }
    // The file is complete: compact what it wrote into blocks.
    store.seal_all().map_err(store_err)?;
    store.flush().map_err(store_err)?;
    durable(report.accepted);
    for v in validators.values() {
        for (reason, n) in v.counts_by_reason() {
            *report.rejected.entry(reason).or_default() += n;
        }
    }
    report.symbols = ids.len();
    Ok(report)
}

/// The smallest positive gap between successive bars of one stream
/// (instrument and price source), in seconds.
fn infer_period(bars: &[(Bar, PriceSource)]) -> Option<u32> {
    let mut last: HashMap<(u32, PriceSource), i64> = HashMap::new();
    let mut smallest: Option<i64> = None;
    for (bar, source) in bars {
        if let Some(prev) = last.insert((bar.instrument, *source), bar.start) {
            let gap = bar.start - prev;
            if gap > 0 {
                smallest = Some(smallest.map_or(gap, |s| s.min(gap)));
            }
        }
    }
    smallest.map(|d| (d / 1_000_000_000) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn malformed_input_names_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MarketStore::open(&dir.path().join("db"), Default::default()).unwrap();
        let bad = write(dir.path(), "aapl.csv", "datetime,open,high,low,close,volume\n2020-01-02 00:00:00,1,2,0.5,1.5,100\n2020-01-03 00:00:00,1,two,0.5,1.5,100\n");
        let e = import_file(&mut store, &bad, &Default::default()).unwrap_err().to_string();
        assert!(e.ends_with("aapl.csv, line 3, column 3 (`high`): `two` is not a number"), "{e}");
        let odd = write(dir.path(), "x.csv", "when,what\n1,2\n");
        assert!(import_file(&mut store, &odd, &Default::default()).unwrap_err().to_string().contains("unrecognised header `when,what`"));
        let date = write(dir.path(), "y.csv", "date,open,high,low,close,volume,Name\n2020-13-01,1,1,1,1,1,Y\n");
        assert!(import_file(&mut store, &date, &Default::default()).unwrap_err().to_string().contains("column 1 (`date`): `2020-13-01` is not a date-time"));
    }

    #[test]
    fn trades_become_stored_ticks_and_bars_with_rejections_quarantined() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MarketStore::open(&dir.path().join("db"), Default::default()).unwrap();
        let ticks = write(
            dir.path(),
            "abc_trade.csv",
            "datetime,price,quantity,exchange,condition,suspicious\n\
             2020-01-02 10:00:01.5,10.0,100,Q,1,0\n2020-01-02 10:00:30,10.5,50,Q,1,0\n2020-01-02 10:00:31,,50,Q,1,0\n\
             2020-01-02 10:01:02,-1,50,Q,1,0\n2020-01-02 10:01:03,10.2,10,Q,1,0\n",
        );
        let r = import_file(&mut store, &ticks, &ImportOptions { zone: Some(chrono_tz::UTC), ..Default::default() }).unwrap();
        assert_eq!((r.rows, r.accepted, r.symbols), (5, 3, 1));
        assert_eq!(r.rejected, BTreeMap::from([(RejectReason::MissingField, 1), (RejectReason::NonPositivePrice, 1)]));
        assert_eq!(store.quarantined(), 2);
        let id = store.instrument_id_of("ABC").unwrap();
        let t0 = NaiveDate::from_ymd_opt(2020, 1, 2).unwrap().and_hms_opt(10, 0, 0).unwrap().and_utc().timestamp_nanos_opt().unwrap();
        assert_eq!(store.range(id, super::super::Series::Trades, 0, i64::MAX).unwrap().len(), 3);
        let bars = store.range(id, super::super::Series::Bars { period_secs: 60, source: PriceSource::Trade }, 0, i64::MAX).unwrap();
        assert_eq!(bars.len(), 2);
        assert_eq!((bars[0].time, bars[0].fields), (t0, [10.0, 10.5, 10.0, 10.5, 150.0]));
    }

    #[test]
    fn single_symbol_files_take_their_symbol_from_the_option_and_read_close_not_adj_close() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MarketStore::open(&dir.path().join("db"), Default::default()).unwrap();
        let plain = write(dir.path(), "sp500_index.csv", "date,open,high,low,close,volume\n1987-10-16,298.08,298.92,281.52,282.70,338500000\n1987-10-19,282.70,282.70,224.83,224.84,604300000\n");
        let options = ImportOptions { symbol: Some("SPX".into()), ..Default::default() };
        let r = import_file(&mut store, &plain, &options).unwrap();
        assert_eq!((r.format, r.accepted, r.symbols), (Format::Bars, 2, 1));
        let id = store.instrument_id_of("SPX").expect("named by --symbol");
        let day = super::super::Series::Bars { period_secs: 86_400, source: PriceSource::Trade };
        assert_eq!(store.range(id, day, 0, i64::MAX).unwrap()[1].fields[3], 224.84, "Black Monday's close");

        let yahoo = write(dir.path(), "ibm.csv", "Date,Open,High,Low,Close,Adj Close,Volume\n2020-01-02,135.0,136.0,134.0,135.4,120.1,3000\n2020-01-03,134.0,135.0,133.0,134.3,119.2,2000\n");
        let r = import_file(&mut store, &yahoo, &Default::default()).unwrap();
        assert_eq!((r.format, r.accepted), (Format::BarsWithAdjClose, 2));
        let bars = store.range(store.instrument_id_of("IBM").unwrap(), day, 0, i64::MAX).unwrap();
        assert_eq!(bars[0].fields, [135.0, 136.0, 134.0, 135.4, 3000.0], "`Close`, not `Adj Close`");

        let many = write(dir.path(), "many.csv", "date,open,high,low,close,volume,Name\n2020-01-02,1,1,1,1,1,A\n");
        let e = import_file(&mut store, &many, &options).unwrap_err().to_string();
        assert!(e.ends_with("--symbol SPX was given, but the file names its symbols (column `Name`)"), "{e}");
    }

    #[test]
    fn a_jump_in_history_is_kept_and_listed_as_flagged_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MarketStore::open(&dir.path().join("db"), Default::default()).unwrap();
        let mut csv = String::from("symbol,date,open,high,low,close,volume\n");
        let day = |d: i64| (chrono::NaiveDate::from_ymd_opt(2013, 1, 1).unwrap() + chrono::Duration::days(d)).format("%Y-%m-%d").to_string();
        for d in 0..30 {
            let c = 100.0 + (d % 3) as f64 * 0.5;
            csv.push_str(&format!("ACER,{},{c},{},{},{c},1000\n", day(d), c + 1.0, c - 1.0));
        }
        for d in 30..40 {
            csv.push_str(&format!("ACER,{},404,410,400,405,117839\n", day(d)));
        }
        csv.push_str(&format!("ACER,{},404,399,400,405,1\n", day(40)));
        let path = write(dir.path(), "acer.csv", &csv);
        let r = import_file(&mut store, &path, &Default::default()).unwrap();
        assert_eq!(r.accepted, 40, "every real bar kept");
        assert_eq!(r.flagged, BTreeMap::from([(RejectReason::Spike, 1)]));
        assert_eq!(r.rejected, BTreeMap::from([(RejectReason::OhlcInconsistent, 1)]), "inconsistent bars are still dropped");
        let listed = store.quarantine_entries(&Default::default()).unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!((listed[0].symbol.as_str(), listed[0].reason.as_str(), listed[0].line, listed[0].kept), ("ACER", "spike", Some(32), true));
        assert_eq!((listed[1].reason.as_str(), listed[1].line, listed[1].kept), ("ohlc-inconsistent", Some(42), false));

        let dropped = MarketStore::open(&dir.path().join("db2"), Default::default()).unwrap();
        let mut dropped = dropped;
        let options = ImportOptions { validator: ValidatorConfig { spikes: crate::SpikePolicy::Drop, ..Default::default() }, ..Default::default() };
        let r = import_file(&mut dropped, &path, &options).unwrap();
        assert!(r.accepted < 40 && r.rejected[&RejectReason::Spike] > 0, "--spikes drop: {r:?}");
    }

    #[test]
    fn new_york_times_are_stored_as_utc_across_daylight_saving() {
        assert_eq!(default_zone(Path::new("lean/equity_usa_minute/spy_trade.csv")), chrono_tz::America::New_York);
        let line = Line { path: Path::new("f"), number: 2, cells: vec!["2013-10-08 09:30:00"], header: &[] };
        let summer = line.time(0, chrono_tz::America::New_York).unwrap();
        assert_eq!(summer, chrono::DateTime::parse_from_rfc3339("2013-10-08T13:30:00Z").unwrap().timestamp_nanos_opt().unwrap());
        let line = Line { path: Path::new("f"), number: 2, cells: vec!["2013-12-09 09:30:00"], header: &[] };
        let winter = line.time(0, chrono_tz::America::New_York).unwrap();
        assert_eq!(winter, chrono::DateTime::parse_from_rfc3339("2013-12-09T14:30:00Z").unwrap().timestamp_nanos_opt().unwrap());
    }
}
