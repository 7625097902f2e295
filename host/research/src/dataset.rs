//! The ML strategies' training data: per instrument and bar, the features
//! of `stratbox-features` (the code the plugin runs, so there is no
//! train/serve skew) and the label `horizon` bars ahead.
//!
//! Rows are in event order (cross-section by cross-section, instruments in
//! id order within one), the order a plugin computes them in. A row exists
//! once an instrument has [`stratbox_features::WINDOW`] closes; its label
//! only when the close `horizon` bars later is in the data (the last
//! `horizon` rows of each instrument have none and are written without one,
//! so a dataset never makes up the future).

use std::io::Write;
use std::path::Path;

use stratbox_features::{Features, NAMES, Row};
use stratbox_market::{ReplayData, Timestamp};

use crate::Window;

/// One row of a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub symbol: String,
    /// The bar's close time (when the row is known).
    pub time: Timestamp,
    pub features: Row,
    /// Up (1) or not (0) over the horizon, and the forward log return x100.
    pub label: Option<(u8, f64)>,
}

/// Rows for the bars inside `window` (by bar start, as backtests count), labels `horizon` bars ahead.
/// The features warm up on the bars before the window (they depend on the
/// last closes alone, so warm-up changes no value).
pub fn build(data: &ReplayData, window: Window, horizon: usize) -> Vec<Example> {
    let n = data.instruments().len();
    let mut features = vec![Features::new(); n];
    // Every instrument's closes in order, and where each row's bar sits in them.
    let mut closes: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut rows = Vec::new();
    for (time, bars) in data.cross_sections() {
        for bar in bars {
            let id = bar.instrument as usize;
            let row = features[id].push(bar.high, bar.low, bar.close);
            if bar.close > 0.0 && bar.close.is_finite() {
                closes[id].push(bar.close);
            }
            let inside = window.from.is_none_or(|f| bar.start >= f) && window.to.is_none_or(|t| bar.start < t);
            if let (Some(row), true) = (row, inside) {
                rows.push((id, closes[id].len() - 1, time, row));
            }
        }
    }
    rows.into_iter()
        .map(|(id, at, time, features)| Example {
            symbol: data.instruments()[id].symbol.clone(),
            time,
            features,
            label: stratbox_features::label(&closes[id], at, horizon),
        })
        .collect()
}

/// Writes `rows` as CSV: `symbol,date,time_ns,<features>,forward_return,label`
/// (features as `f32` in the shortest text that reads back to the same bits).
pub fn write_csv(path: &Path, rows: &[Example]) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    write!(out, "symbol,date,time_ns")?;
    for name in NAMES {
        write!(out, ",{name}")?;
    }
    writeln!(out, ",forward_return,label")?;
    for r in rows {
        write!(out, "{},{},{}", r.symbol, crate::date(r.time), r.time)?;
        for v in r.features {
            write!(out, ",{v}")?;
        }
        match r.label {
            Some((up, ret)) => writeln!(out, ",{ret},{up}")?,
            None => writeln!(out, ",,")?,
        }
    }
    out.flush()
}
