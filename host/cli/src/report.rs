//! `stratbox report trades|pnl|tca|equity|alarms`: the execution journal as tables, JSON or CSV
//! (a running host's through its control API).

use std::path::Path;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};

use stratbox_engine::ControlClient;
use stratbox_trading::{Journal, JournalError};
use stratbox_trading::SideName;
use stratbox_trading::report::{self, Filter};
use stratbox_market::parse_datetime;
use stratbox_engine::format_time;

use crate::print_json;

#[derive(Clone, Copy, ValueEnum)]
pub enum ReportKind {
    /// Every fill, with its slippage against the decision price.
    Trades,
    /// Realised P&L, position and average price per plugin and instrument.
    Pnl,
    /// Transaction costs (fees, slippage, financing) per plugin and instrument.
    Tca,
    /// The account's equity curve (a point per `equity_every_secs` of market time) and drawdown.
    Equity,
    /// Anomaly alarms and trading-state changes (breaker trips, loss limits, halts), at market time.
    Alarms,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Output {
    Table,
    Json,
    Csv,
}

#[derive(Args)]
pub struct ReportArgs {
    kind: ReportKind,
    #[arg(long)]
    plugin: Option<String>,
    #[arg(long)]
    symbol: Option<String>,
    /// buy or sell.
    #[arg(long)]
    side: Option<String>,
    #[command(flatten)]
    range: TimeRange,
    #[arg(long, value_enum, default_value = "table")]
    format: Output,
    /// The previous run's journal (`journal.previous`) instead of the current one.
    #[arg(long)]
    previous: bool,
}

/// `--from` and `--to`, market time in UTC.
#[derive(Args, Clone)]
pub(crate) struct TimeRange {
    /// From this UTC date-time (YYYY-MM-DD[ HH:MM:SS]), inclusive.
    #[arg(long)]
    from: Option<String>,
    /// To this UTC date-time, exclusive.
    #[arg(long)]
    to: Option<String>,
}

impl TimeRange {
    /// (from, to) as timestamps; an error names the flag.
    pub(crate) fn parse(&self) -> Result<(Option<i64>, Option<i64>)> {
        let time = |s: &Option<String>, flag: &str| -> Result<Option<i64>> {
            s.as_deref().map(|s| parse_datetime(s, chrono_tz::UTC).map_err(|e| anyhow::anyhow!("--{flag}: {e}"))).transpose()
        };
        Ok((time(&self.from, "from")?, time(&self.to, "to")?))
    }
}

pub fn report(a: ReportArgs, data_dir: &Path) -> Result<()> {
    let path = data_dir.join(if a.previous { "journal.previous" } else { "journal" });
    if !path.exists() {
        bail!("no execution journal at {}: run the host first", path.display());
    }
    let side = match a.side.as_deref() {
        None => None,
        Some("buy") => Some(SideName::Buy),
        Some("sell") => Some(SideName::Sell),
        Some(other) => bail!("--side `{other}`: expected buy or sell"),
    };
    let (from, to) = a.range.parse()?;
    let filter = Filter { plugin: a.plugin, symbol: a.symbol, side, from, to };
    let entries = match Journal::open(&path, 1_000) {
        Ok(journal) => journal.entries().collect::<Result<Vec<_>, _>>()?,
        // A running host holds it (sled allows one process): ask the host for it.
        Err(JournalError::Locked(_)) if !a.previous => ControlClient::from_data_dir(data_dir)
            .and_then(|c| c.journal())
            .map_err(|e| anyhow::anyhow!("the journal at {} is in use by a running host, which did not answer: {e}", path.display()))?,
        Err(e) => return Err(e.into()),
    };
    match a.kind {
        ReportKind::Trades => emit(&report::trades(&entries, &filter), a.format, |rows| {
            println!(
                "{:<19} {:<14} {:<10} {:<4} {:>12} {:>12} {:>9} {:>10} {:>10}  order",
                "time (UTC)", "plugin", "symbol", "side", "quantity", "price", "fee", "slip bps", "vs arrival"
            );
            for r in rows {
                let bps = |b: Option<f64>| b.map_or("-".to_owned(), |s| format!("{s:.2}"));
                let side = if r.side == SideName::Buy { "buy" } else { "sell" };
                println!(
                    "{:<19} {:<14} {:<10} {:<4} {:>12} {:>12.4} {:>9.4} {:>10} {:>10}  {}",
                    format_time(r.time), r.plugin, r.symbol, side, r.quantity, r.price, r.fee, bps(r.slippage_bps), bps(r.arrival_slippage_bps), r.client_id
                );
            }
            println!("{} fills", rows.len());
        }),
        ReportKind::Pnl => emit(&report::pnl(&entries, &filter), a.format, |rows| {
            println!("{:<14} {:<10} {:>7} {:>12} {:>12} {:>12} {:>12} {:>14} {:>10} {:>10}", "plugin", "symbol", "fills", "bought", "sold", "position", "avg price", "realised P&L", "fees", "financing");
            for r in rows {
                println!(
                    "{:<14} {:<10} {:>7} {:>12} {:>12} {:>12} {:>12.4} {:>14.2} {:>10.2} {:>10.2}",
                    r.plugin, r.symbol, r.fills, r.bought, r.sold, r.position, r.average_price, r.realised_pnl, r.fees, r.financing
                );
            }
            println!("total realised P&L {:.2}", rows.iter().map(|r| r.realised_pnl).sum::<f64>());
        }),
        ReportKind::Tca => emit(&report::tca(&entries, &filter), a.format, |rows| {
            println!(
                "{:<14} {:<10} {:>7} {:>14} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
                "plugin", "symbol", "fills", "notional", "fees", "slippage", "delay", "execution", "financing", "total", "fees bps", "slip bps", "delay bps", "exec bps", "total bps"
            );
            for r in rows {
                println!(
                    "{:<14} {:<10} {:>7} {:>14.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                    r.plugin, r.symbol, r.fills, r.notional, r.fees, r.slippage, r.delay, r.execution, r.financing, r.total, r.fees_bps, r.slippage_bps,
                    r.delay_bps, r.execution_bps, r.total_bps
                );
            }
        }),
        ReportKind::Alarms => emit(&report::alarms(&entries, &filter), a.format, |rows| {
            println!("{:<19} {:<6} {:<16} {:<12} {:<10}  reason", "time (UTC)", "kind", "source", "level", "symbol");
            for r in rows {
                println!("{:<19} {:<6} {:<16} {:<12} {:<10}  {}", format_time(r.time), r.kind, r.source, r.level, r.symbol, r.reason);
            }
            println!("{} alarms and state changes", rows.len());
        }),
        ReportKind::Equity => emit(&report::equity(&entries, &filter), a.format, |rows| {
            println!("{:<19} {:>14} {:>14} {:>14} {:>14} {:>9}", "time (UTC)", "equity", "realised P&L", "unrealised", "gross exp.", "drawdown");
            for r in rows {
                println!(
                    "{:<19} {:>14.2} {:>14.2} {:>14.2} {:>14.2} {:>8.2}%",
                    format_time(r.time), r.equity, r.realised_pnl, r.unrealised_pnl, r.gross_exposure, r.drawdown * 100.0
                );
            }
        }),
    }
}

/// Rows as JSON, CSV, or the given table.
pub(crate) fn emit<T: serde::Serialize>(rows: &[T], format: Output, table: impl FnOnce(&[T])) -> Result<()> {
    match format {
        Output::Json => print_json(&rows),
        Output::Csv => {
            let mut w = csv::Writer::from_writer(std::io::stdout());
            for r in rows {
                w.serialize(r)?;
            }
            w.flush()?;
            Ok(())
        }
        Output::Table => {
            table(rows);
            Ok(())
        }
    }
}
