//! The quarantine: every record validation kept out of the store (or kept
//! but flagged), with where it came from, for `stratbox data quarantine`.

use serde::{Deserialize, Serialize};

use super::{MarketStore, StoreError};
use crate::{Record, Reject, Timestamp};

/// One quarantined (or flagged) record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantineEntry {
    pub symbol: String,
    /// The record's own time (a bar's start).
    pub time: Timestamp,
    /// The validator's reason, kebab-case (`spike`, `ohlc-inconsistent`, ...).
    pub reason: String,
    pub detail: String,
    /// The file it was read from, or the stream (`capital.com`).
    pub source: String,
    /// Line in `source`, for files.
    pub line: Option<u64>,
    /// Kept in the store and only flagged (a spike in history), not dropped.
    pub kept: bool,
    /// The record's values.
    pub values: String,
}

impl QuarantineEntry {
    pub fn new(symbol: &str, record: &Record, reject: &Reject, source: &str, line: Option<u64>, kept: bool) -> Self {
        let reason = serde_json::to_value(reject.reason).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        Self { symbol: symbol.to_owned(), time: record.time(), reason, detail: reject.detail.clone(), source: source.to_owned(), line, kept, values: values(record) }
    }
}

fn values(record: &Record) -> String {
    match record {
        Record::Trade(t) => format!("trade price {} size {}", t.price, t.size),
        Record::Quote(q) => format!("quote bid {} x {} ask {} x {}", q.bid, q.bid_size, q.ask, q.ask_size),
        Record::Bar(b) => format!("bar {}s open {} high {} low {} close {} volume {}", b.period_secs, b.open, b.high, b.low, b.close, b.volume),
    }
}

/// Which entries to list; unset fields match everything.
#[derive(Debug, Clone, Default)]
pub struct QuarantineFilter {
    pub symbol: Option<String>,
    /// A reason, as listed (`spike`); `-` and `_` and case are ignored.
    pub reason: Option<String>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

fn fold(reason: &str) -> String {
    reason.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect()
}

impl QuarantineFilter {
    pub fn matches(&self, e: &QuarantineEntry) -> bool {
        self.symbol.as_ref().is_none_or(|s| s.eq_ignore_ascii_case(&e.symbol))
            && self.reason.as_ref().is_none_or(|r| fold(r) == fold(&e.reason))
            && self.from.is_none_or(|t| e.time >= t)
            && self.to.is_none_or(|t| e.time < t)
    }
}

impl MarketStore {
    /// Keeps a rejected (or flagged) record for inspection.
    pub fn quarantine(&self, entry: &QuarantineEntry) -> Result<(), StoreError> {
        let id = self.quarantine_next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.quarantine.insert(id.to_be_bytes(), serde_json::to_vec(entry).expect("serialisable"))?;
        Ok(())
    }

    /// Entries in the order they were quarantined that match `filter`.
    pub fn quarantine_entries(&self, filter: &QuarantineFilter) -> Result<Vec<QuarantineEntry>, StoreError> {
        let mut out = Vec::new();
        for kv in self.quarantine.iter() {
            let (k, v) = kv?;
            let e: QuarantineEntry = serde_json::from_slice(&v)
                .map_err(|e| StoreError::Corrupt(format!("quarantine entry {}: {e}", hex_key(&k))))?;
            if filter.matches(&e) {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Records quarantined or flagged.
    pub fn quarantined(&self) -> usize {
        self.quarantine.len()
    }
}

fn hex_key(k: &[u8]) -> String {
    k.iter().map(|b| format!("{b:02x}")).collect()
}
