//! Compaction: sled is log-structured, so what an import overwrote or
//! deleted (journal entries, blocks merged as they grew) stays on disk until
//! its segments are reclaimed, several times the live data. Copying the
//! live keys into a fresh database and swapping the folders leaves only them.
//!
//! The swap is crash-safe: the copy is built beside the store
//! (`<store>.compacting`) and flushed; then the store is renamed to
//! `<store>.old`, the copy to `<store>`, and the old one removed. Whatever
//! point a crash stops at, [`recover`] (run by every open) finds either the
//! old store or the complete copy in place.

use std::path::{Path, PathBuf};

use super::StoreError;

/// What compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CompactReport {
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub keys: u64,
    /// Bytes of the live keys and values (what sled stores them in is more).
    pub live_bytes: u64,
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |e| StoreError::Corrupt(format!("compacting {}: {e}", path.display()))
}

/// Puts an interrupted compaction right: a half-built copy is dropped; a
/// store moved aside but not replaced is moved back; a replaced one's old
/// folder is removed.
pub fn recover(path: &Path) -> Result<(), StoreError> {
    let (copy, old) = (sibling(path, ".compacting"), sibling(path, ".old"));
    if old.exists() {
        if path.exists() {
            std::fs::remove_dir_all(&old).map_err(io(&old))?;
        } else {
            std::fs::rename(&old, path).map_err(io(path))?;
        }
    }
    if copy.exists() {
        std::fs::remove_dir_all(&copy).map_err(io(&copy))?;
    }
    Ok(())
}

/// Compacts the (closed) store at `path`.
pub fn compact(path: &Path, cache_bytes: u64) -> Result<CompactReport, StoreError> {
    recover(path)?;
    let open = |p: &Path| super::open_store_db(&sled::Config::new().path(p).cache_capacity(cache_bytes), p);
    let copy_path = sibling(path, ".compacting");
    let (mut keys, mut live_bytes) = (0, 0);
    let (bytes_before, bytes_after) = {
        let db = open(path)?;
        let copy = open(&copy_path)?;
        for name in db.tree_names() {
            let (from, to) = (db.open_tree(&name)?, copy.open_tree(&name)?);
            let mut batch = sled::Batch::default();
            let mut in_batch = 0;
            for kv in from.iter() {
                let (k, v) = kv?;
                live_bytes += (k.len() + v.len()) as u64;
                batch.insert(k, v);
                in_batch += 1;
                if in_batch == 10_000 {
                    to.apply_batch(std::mem::take(&mut batch))?;
                    keys += in_batch;
                    in_batch = 0;
                }
            }
            to.apply_batch(batch)?;
            keys += in_batch;
        }
        copy.flush()?;
        (db.size_on_disk()?, copy.size_on_disk()?)
    };
    let old = sibling(path, ".old");
    // sled lets go of its lock a moment after the last handle is dropped.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while let Err(e) = std::fs::rename(path, &old) {
        if std::time::Instant::now() >= deadline {
            return Err(io(path)(e));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::fs::rename(&copy_path, path).map_err(io(path))?;
    std::fs::remove_dir_all(&old).map_err(io(&old))?;
    Ok(CompactReport { bytes_before, bytes_after, keys, live_bytes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MarketStore, PriceSource, Series, StoreConfig};
    use crate::Bar;

    const DAY: i64 = 86_400 * crate::NANOS_PER_SEC;

    /// 200 instruments x 500 days, written date by date and committed and
    /// flushed every 50,000 records, as an import of a dated file is.
    fn write_daily(path: &Path) -> u64 {
        let mut s = MarketStore::open(path, StoreConfig::default()).unwrap();
        let ids: Vec<u32> = (0..200).map(|k| s.instrument_id(&format!("S{k:03}")).unwrap()).collect();
        let mut n = 0u64;
        for day in 0..500i64 {
            for &id in &ids {
                let p = 20.0 + f64::from(id) + (day % 17) as f64 * 0.25;
                let bar = Bar { instrument: id, start: day * DAY, period_secs: 86_400, open: p, high: p + 0.5, low: p - 0.5, close: p + 0.25, volume: 1e5 + day as f64 };
                s.append_bar(&bar, PriceSource::Trade).unwrap();
                n += 1;
                if s.pending() >= 50_000 {
                    s.commit().unwrap();
                    s.flush().unwrap();
                }
            }
        }
        s.seal_all().unwrap();
        s.flush().unwrap();
        n
    }

    fn closes(path: &Path) -> Vec<(u32, Vec<f64>)> {
        let s = MarketStore::open(path, StoreConfig::default()).unwrap();
        (0..200).map(|id| (id, s.range(id, Series::Bars { period_secs: 86_400, source: PriceSource::Trade }, 0, i64::MAX).unwrap().iter().map(|r| r.fields[3]).collect())).collect()
    }

    #[test]
    fn compaction_keeps_every_bar_and_leaves_about_the_live_bytes_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let bars = write_daily(&path);
        let before = closes(&path);
        let r = compact(&path, 8 << 20).unwrap();
        eprintln!("{bars} bars: {} -> {} bytes on disk ({:.1} -> {:.1} per bar), live {}", r.bytes_before, r.bytes_after, r.bytes_before as f64 / bars as f64, r.bytes_after as f64 / bars as f64, r.live_bytes);
        // How much sled leaves behind varies with its background flushes (4-6 MB here).
        assert!(r.bytes_after * 2 < r.bytes_before, "superseded data reclaimed: {r:?}");
        assert!(r.bytes_after as f64 / bars as f64 <= 40.0, "at most 40 bytes a bar on disk: {r:?}");
        assert_eq!(closes(&path), before, "every bar reads back the same");
        assert!(before.iter().all(|(_, c)| c.len() == 500));
        assert!(!sibling(&path, ".compacting").exists() && !sibling(&path, ".old").exists());
    }

    #[test]
    fn an_interrupted_compaction_is_put_right_by_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let mut s = MarketStore::open(&path, StoreConfig::default()).unwrap();
        let bar = Bar { instrument: 0, start: 0, period_secs: 86_400, open: 1.0, high: 2.0, low: 0.5, close: 1.5, volume: 10.0 };
        let id = s.instrument_id("A").unwrap();
        s.append_bar(&Bar { instrument: id, ..bar }, PriceSource::Trade).unwrap();
        s.seal_all().unwrap();
        s.flush().unwrap();
        drop(s);
        let copy_of = |from: &Path, to: &Path| {
            std::fs::create_dir_all(to).unwrap();
            for e in std::fs::read_dir(from).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    continue;
                }
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        };
        let reads_one_bar = |path: &Path| {
            let s = MarketStore::open(path, StoreConfig::default()).unwrap();
            s.range(0, Series::Bars { period_secs: 86_400, source: PriceSource::Trade }, 0, i64::MAX).unwrap().len() == 1
        };
        // Crash while copying: a half-built copy beside the store is dropped.
        std::fs::create_dir_all(sibling(&path, ".compacting")).unwrap();
        std::fs::write(sibling(&path, ".compacting").join("db"), b"half").unwrap();
        assert!(reads_one_bar(&path));
        assert!(!sibling(&path, ".compacting").exists());
        // Crash after the store was moved aside, before the copy took its place.
        std::fs::rename(&path, sibling(&path, ".old")).unwrap();
        assert!(reads_one_bar(&path), "the old store is moved back");
        // Crash after the swap, before the old folder was removed.
        copy_of(&path, &sibling(&path, ".old"));
        assert!(reads_one_bar(&path));
        assert!(!sibling(&path, ".old").exists());
    }
}
