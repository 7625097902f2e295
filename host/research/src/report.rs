//! A backtest's report folder: `metrics.json`, `equity.csv`, `trades.csv`
//! (round trips), `fills.csv`, `positions.csv` (each position change),
//! `inputs.json` (what reproduces the run exactly) and `report.html`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use stratbox_market::format_time;

use crate::backtest::{Run, RunMetrics, daily_equity};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Csv { path: PathBuf, source: csv::Error },
}

/// What a run was made of, so it can be made again.
#[derive(Debug, Clone, Serialize)]
pub struct Inputs {
    /// The host configuration as run (its JSON form; every key as `HostConfig` has it).
    pub config: String,
    /// Per plugin: name, file, SHA-256 of the component, version, parameters.
    pub plugins: Vec<PluginInput>,
    pub symbols: usize,
    pub period_secs: u32,
    pub from: Option<String>,
    pub to: Option<String>,
    pub first_bar: Option<String>,
    pub last_close: Option<String>,
    pub bars: u64,
    /// The paper broker's and simulator's seeds are in the config; backtests
    /// draw nothing else at random.
    pub seed: Option<u64>,
    pub benchmark: String,
    pub stratbox_version: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct PluginInput {
    pub name: String,
    pub path: String,
    pub sha256: String,
    pub version: String,
    pub params: serde_json::Value,
}

#[derive(Serialize)]
struct MetricsFile<'a> {
    #[serde(flatten)]
    metrics: &'a RunMetrics,
    refused_by_rule: &'a std::collections::BTreeMap<String, u64>,
    faults: &'a [(String, String)],
    bars: u64,
    wall_secs: f64,
    bars_per_sec: f64,
}

fn write(path: PathBuf, bytes: &[u8]) -> Result<(), ReportError> {
    std::fs::write(&path, bytes).map_err(|source| ReportError::Write { path, source })
}

fn csv_file(path: &Path) -> Result<(csv::Writer<std::fs::File>, PathBuf), ReportError> {
    let w = csv::Writer::from_path(path).map_err(|source| ReportError::Csv { path: path.to_owned(), source })?;
    Ok((w, path.to_owned()))
}

/// Writes the report folder `dir` (created if needed); `html` is the page.
pub fn write_report(dir: &Path, run: &Run, metrics: &RunMetrics, inputs: &Inputs, benchmark: Option<&[f64]>, html: &str) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Write { path: dir.to_owned(), source })?;
    let wall = run.wall.as_secs_f64();
    let file = MetricsFile { metrics, refused_by_rule: &run.refused, faults: &run.faults, bars: run.bars, wall_secs: wall, bars_per_sec: run.bars as f64 / wall.max(1e-9) };
    write(dir.join("metrics.json"), &serde_json::to_vec_pretty(&file).expect("metrics serialise"))?;
    write(dir.join("inputs.json"), &serde_json::to_vec_pretty(inputs).expect("inputs serialise"))?;
    let err = |path: &PathBuf| {
        let path = path.clone();
        move |source| ReportError::Csv { path, source }
    };

    let (mut w, path) = csv_file(&dir.join("equity.csv"))?;
    w.write_record(["time", "equity", "return", "benchmark_return", "drawdown", "gross_exposure", "exposure"]).map_err(err(&path))?;
    let (mut prev, mut peak) = (run.capital, run.capital);
    for (k, p) in daily_equity(&run.equity).iter().enumerate() {
        peak = peak.max(p.equity);
        let r = if prev != 0.0 { p.equity / prev - 1.0 } else { 0.0 };
        prev = p.equity;
        let b = benchmark.and_then(|b| b.get(k)).map_or(String::new(), |x| x.to_string());
        let exposure = if p.equity > 0.0 { p.gross_exposure / p.equity } else { 0.0 };
        w.write_record([format_time(p.time), p.equity.to_string(), r.to_string(), b, (p.equity / peak - 1.0).to_string(), p.gross_exposure.to_string(), exposure.to_string()])
            .map_err(err(&path))?;
    }
    w.flush().map_err(|source| ReportError::Write { path: path.clone(), source })?;

    let (mut w, path) = csv_file(&dir.join("trades.csv"))?;
    w.write_record(["plugin", "symbol", "direction", "opened", "closed", "quantity", "entry_price", "exit_price", "pnl", "holding_days"]).map_err(err(&path))?;
    for t in &run.trades {
        let closed = t.closed.map_or(String::new(), format_time);
        let days = t.closed.map_or(String::new(), |c| format!("{:.2}", (c - t.opened) as f64 / 86_400e9));
        let dir = if t.direction > 0 { "long" } else { "short" };
        w.write_record([t.plugin.clone(), t.symbol.clone(), dir.into(), format_time(t.opened), closed, t.quantity.to_string(), t.entry_price.to_string(), t.exit_price.map_or(String::new(), |p| p.to_string()), t.pnl.to_string(), days])
            .map_err(err(&path))?;
    }
    w.flush().map_err(|source| ReportError::Write { path: path.clone(), source })?;

    let (mut w, path) = csv_file(&dir.join("fills.csv"))?;
    w.write_record(["time", "plugin", "symbol", "quantity", "price", "fee"]).map_err(err(&path))?;
    for f in &run.fills {
        w.write_record([format_time(f.time), f.plugin.clone(), f.symbol.clone(), f.quantity.to_string(), f.price.to_string(), f.fee.to_string()]).map_err(err(&path))?;
    }
    w.flush().map_err(|source| ReportError::Write { path: path.clone(), source })?;

    // Positions change only at fills: one row per change, the size after it.
    let (mut w, path) = csv_file(&dir.join("positions.csv"))?;
    w.write_record(["time", "plugin", "symbol", "position", "price"]).map_err(err(&path))?;
    for f in &run.fills {
        w.write_record([format_time(f.time), f.plugin.clone(), f.symbol.clone(), f.position.to_string(), f.price.to_string()]).map_err(err(&path))?;
    }
    w.flush().map_err(|source| ReportError::Write { path: path.clone(), source })?;

    write(dir.join("report.html"), html.as_bytes())
}

/// What Monte Carlo needs of a report folder written by [`write_report`].
#[derive(Debug, Clone)]
pub struct SavedRun {
    pub capital: f64,
    /// Daily simple returns (equity.csv's `return`).
    pub returns: Vec<f64>,
    /// Closed round trips' P&L in the account currency (trades.csv).
    pub trade_pnl: Vec<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {what}")]
    Bad { path: PathBuf, what: String },
}

impl SavedRun {
    pub fn read(dir: &Path) -> Result<Self, ReadError> {
        let inputs = dir.join("inputs.json");
        let text = std::fs::read_to_string(&inputs).map_err(|source| ReadError::Io { path: inputs.clone(), source })?;
        let bad = |path: &Path, what: String| ReadError::Bad { path: path.to_owned(), what };
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(&inputs, format!("not a report's inputs.json: {e}")))?;
        let config: serde_json::Value = v["config"].as_str().and_then(|c| serde_json::from_str(c).ok()).unwrap_or_default();
        let capital = config["risk"]["capital"].as_f64().filter(|c| *c > 0.0).ok_or_else(|| bad(&inputs, "no positive risk.capital in its config".into()))?;
        let column = |file: &str, name: &str, skip_empty: bool| -> Result<Vec<f64>, ReadError> {
            let path = dir.join(file);
            let mut r = csv::Reader::from_path(&path).map_err(|e| bad(&path, e.to_string()))?;
            let idx = r.headers().map_err(|e| bad(&path, e.to_string()))?.iter().position(|h| h == name).ok_or_else(|| bad(&path, format!("no `{name}` column")))?;
            let closed = r.headers().map_err(|e| bad(&path, e.to_string()))?.iter().position(|h| h == "closed");
            let mut out = Vec::new();
            for (line, rec) in r.records().enumerate() {
                let rec = rec.map_err(|e| bad(&path, e.to_string()))?;
                // Open trades (no close yet) have no realised P&L to draw.
                if skip_empty && closed.is_some_and(|c| rec.get(c).is_none_or(str::is_empty)) {
                    continue;
                }
                let cell = rec.get(idx).unwrap_or("");
                let x: f64 = cell.parse().map_err(|_| bad(&path, format!("row {}: `{name}` is `{cell}`, not a number", line + 2)))?;
                if !x.is_finite() {
                    return Err(bad(&path, format!("row {}: `{name}` is {x}", line + 2)));
                }
                out.push(x);
            }
            Ok(out)
        };
        Ok(Self { capital, returns: column("equity.csv", "return", false)?, trade_pnl: column("trades.csv", "pnl", true)? })
    }
}
