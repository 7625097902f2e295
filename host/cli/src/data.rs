//! `stratbox data ...`: import, export, stats, backup and restore of market data.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use stratbox_market::{SpikePolicy, ValidatorConfig, parse_datetime};
use stratbox_engine::format_time;
use stratbox_market::store::{ImportOptions, MarketStore, PriceSource, QuarantineFilter, Series, StoreConfig, compact, import_file_with_progress, restore};

use crate::print_json;
use crate::report::{Output, TimeRange, emit};

#[derive(Subcommand)]
pub enum DataCmd {
    /// Import CSV or CSV.gz files (the formats of ../shared/data): validated, aggregated, stored.
    Import {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Time zone of the files' timestamps (default: America/New_York under equity_usa, else UTC).
        #[arg(long)]
        tz: Option<chrono_tz::Tz>,
        /// The symbol of a single-symbol file (default: the file name's first word).
        #[arg(long)]
        symbol: Option<String>,
        /// Spikes in history: flag (keep, count, list in the quarantine), drop, or off (unchecked).
        #[arg(long, default_value = "flag", value_parser = |s: &str| s.parse::<SpikePolicy>())]
        spikes: SpikePolicy,
        #[arg(long)]
        json: bool,
        /// After each commit is on disk, print `durable <records accepted>` to stderr.
        #[arg(long)]
        progress: bool,
        /// Skip the compaction that follows an import (leaves sled's superseded data on disk).
        #[arg(long)]
        no_compact: bool,
    },
    /// Rewrite the store with only its live data (an import does this itself).
    Compact,
    /// Write one compressed, checksummed archive of the store.
    Backup {
        /// Archive path (default: <data-dir>/backups/market-<UTC time>.sbxbak).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Verify an archive's checksum, then restore it into an empty folder.
    Restore {
        archive: PathBuf,
        /// Where to restore (default: <data-dir>/market, which must not hold data).
        #[arg(long)]
        into: Option<PathBuf>,
    },
    /// Records validation kept out of the store, or kept and flagged (spikes),
    /// each with its source file, line and reason.
    Quarantine {
        #[arg(long)]
        symbol: Option<String>,
        /// A reason as listed: spike, ohlc-inconsistent, missing-field, not-finite, ...
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        range: TimeRange,
        #[arg(long, value_enum, default_value = "table")]
        format: Output,
    },
    /// What is stored, per instrument and series.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Write one series as CSV to standard output.
    Export {
        #[arg(long)]
        symbol: String,
        /// trades, quotes, or bars.
        #[arg(long, default_value = "bars")]
        series: String,
        /// Bar period in seconds.
        #[arg(long, default_value_t = 60)]
        period: u32,
        /// Bar price source: trade, bid, ask, mid.
        #[arg(long, default_value = "trade")]
        source: String,
        /// From this UTC date-time (YYYY-MM-DD[ HH:MM:SS[.fff]]), inclusive.
        #[arg(long)]
        from: Option<String>,
        /// To this UTC date-time, exclusive.
        #[arg(long)]
        to: Option<String>,
    },
}

fn utc(s: &str) -> Result<i64> {
    parse_datetime(s, chrono_tz::UTC).map_err(anyhow::Error::msg)
}

pub fn data(cmd: DataCmd, data_dir: &Path) -> Result<()> {
    let path = data_dir.join("market");
    if let DataCmd::Restore { archive, into } = &cmd {
        // Restore never opens the store it replaces.
        let r = restore(archive, into.as_deref().unwrap_or(&path))?;
        println!("restored {} trees, {} entries into {} (sha256 {} verified)", r.trees, r.entries, r.path.display(), r.sha256);
        return Ok(());
    }
    let mut store = MarketStore::open(&path, StoreConfig::default())?;
    match cmd {
        DataCmd::Restore { .. } => unreachable!("handled above"),
        DataCmd::Backup { output } => {
            let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
            let out = output.unwrap_or_else(|| data_dir.join("backups").join(format!("market-{stamp}.sbxbak")));
            let r = store.backup(&out)?;
            println!("backup {}: {} trees, {} entries, {} bytes, sha256 {}", r.path.display(), r.trees, r.entries, r.bytes, r.sha256);
        }
        DataCmd::Compact => {
            drop(store);
            let r = compact(&path, StoreConfig::default().cache_bytes)?;
            println!("compacted {}: {} -> {} bytes on disk ({} keys, {} bytes of them)", path.display(), r.bytes_before, r.bytes_after, r.keys, r.live_bytes);
        }
        DataCmd::Import { files, tz, symbol, spikes, json, progress, no_compact } => {
            if symbol.is_some() && files.len() > 1 {
                bail!("--symbol names the symbol of one file; {} files were given", files.len());
            }
            let options = ImportOptions { zone: tz, symbol, validator: ValidatorConfig { spikes, ..ValidatorConfig::default() } };
            let mut reports = Vec::new();
            for file in &files {
                let started = std::time::Instant::now();
                let mut durable = |n: u64| {
                    if progress {
                        eprintln!("durable {n}");
                    }
                };
                let r = import_file_with_progress(&mut store, file, &options, &mut durable)?;
                if !json {
                    let rejected: u64 = r.rejected.values().sum();
                    let flagged: u64 = r.flagged.values().sum();
                    println!(
                        "{}: {} rows, {} accepted ({flagged} of them flagged {:?}), {rejected} rejected {:?}, {} bars built, {} symbols, {:.1} s",
                        file.display(), r.rows, r.accepted, r.flagged, r.rejected, r.bars_built, r.symbols, started.elapsed().as_secs_f64()
                    );
                }
                reports.push(r);
            }
            let quarantined = store.quarantined();
            let mut bytes = store.size_on_disk()?;
            drop(store);
            if !no_compact {
                bytes = compact(&path, StoreConfig::default().cache_bytes)?.bytes_after;
            }
            if json {
                print_json(&reports)?;
            } else {
                println!(
                    "store {}: {bytes} bytes on disk, {quarantined} records quarantined or flagged (`stratbox data quarantine` lists them)",
                    path.display()
                );
            }
        }
        DataCmd::Quarantine { symbol, reason, range, format } => {
            let (from, to) = range.parse()?;
            let filter = QuarantineFilter { symbol, reason, from, to };
            let rows = store.quarantine_entries(&filter)?;
            emit(&rows, format, |rows| {
                println!("{:<10} {:<19} {:<18} {:<7} {:<40} {:>8}  detail", "symbol", "time (UTC)", "reason", "kept", "source", "line");
                for e in rows {
                    let line = e.line.map_or("-".into(), |l| l.to_string());
                    let kept = if e.kept { "kept" } else { "dropped" };
                    println!("{:<10} {:<19} {:<18} {:<7} {:<40} {:>8}  {} ({})", e.symbol, format_time(e.time), e.reason, kept, e.source, line, e.detail, e.values);
                }
                println!("{} records", rows.len());
            })?;
        }
        DataCmd::Stats { json } => {
            let stats = store.stats()?;
            if json {
                return print_json(&stats);
            }
            println!("{:<10} {:<22} {:>12} {:>8} {:>9} {:>10}  {:<19}  {:<19}", "symbol", "series", "rows", "blocks", "B/row", "open rows", "first (UTC)", "last (UTC)");
            for s in &stats {
                let series = match s.series {
                    Series::Bars { period_secs, source } => format!("bars {period_secs}s {source:?}").to_lowercase(),
                    other => format!("{other:?}").to_lowercase(),
                };
                let t = |x: Option<i64>| x.map(format_time).unwrap_or_default();
                let per_row = if s.rows > 0 { format!("{:.2}", s.encoded_bytes as f64 / s.rows as f64) } else { "-".into() };
                println!("{:<10} {:<22} {:>12} {:>8} {:>9} {:>10}  {:<19}  {:<19}", s.symbol, series, s.rows, s.blocks, per_row, s.open_rows, t(s.first), t(s.last));
            }
            println!("{} bytes on disk, {} records quarantined", store.size_on_disk()?, store.quarantined());
        }
        DataCmd::Export { symbol, series, period, source, from, to } => {
            let id = store.instrument_id_of(&symbol).with_context(|| format!("no instrument `{symbol}` in {}", path.display()))?;
            let source = match source.as_str() {
                "trade" => PriceSource::Trade,
                "bid" => PriceSource::Bid,
                "ask" => PriceSource::Ask,
                "mid" => PriceSource::Mid,
                other => bail!("--source {other}: expected trade, bid, ask or mid"),
            };
            let (series, header) = match series.as_str() {
                "trades" => (Series::Trades, "time,price,size"),
                "quotes" => (Series::Quotes, "time,bid,bid_size,ask,ask_size"),
                "bars" => (Series::Bars { period_secs: period, source }, "start,open,high,low,close,volume"),
                other => bail!("--series {other}: expected trades, quotes or bars"),
            };
            let from = from.as_deref().map(utc).transpose()?.unwrap_or(i64::MIN);
            let to = to.as_deref().map(utc).transpose()?.unwrap_or(i64::MAX);
            let width = header.split(',').count() - 1;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            use std::io::Write;
            writeln!(out, "{header}")?;
            for r in store.range(id, series, from, to)? {
                let fields: Vec<String> = r.fields[..width].iter().map(f64::to_string).collect();
                writeln!(out, "{},{}", format_time_ns(r.time), fields.join(","))?;
            }
        }
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS[.fffffffff]`, UTC.
fn format_time_ns(t: i64) -> String {
    let frac = t.rem_euclid(1_000_000_000);
    if frac == 0 { format_time(t) } else { format!("{}.{:09}", format_time(t), frac).trim_end_matches('0').to_owned() }
}
