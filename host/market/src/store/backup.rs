//! `stratbox data backup` / `restore`: one compressed, checksummed archive of
//! the whole store.
//!
//! Format (version 1): `SBXBAK01` (8 bytes), the SHA-256 of the body (32
//! bytes), then the body: gzip of, per tree, `0x01, name length (u32 BE),
//! name`, then per entry `0x02, key length, key, value length, value`, and a
//! final `0x00`. Restore checks the magic and the checksum over the whole body
//! before anything is written, then builds the store in a temporary folder
//! and renames it into place, so a failed restore leaves nothing behind.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{MarketStore, StoreError};

const MAGIC: &[u8; 8] = b"SBXBAK01";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0} is not a Stratbox backup (it does not start with SBXBAK01)")]
    NotABackup(PathBuf),
    #[error("{path} is damaged: its checksum is {actual}, the archive says {expected}; nothing was restored")]
    Checksum { path: PathBuf, expected: String, actual: String },
    #[error("{path} is damaged: {why}; nothing was restored")]
    Damaged { path: PathBuf, why: String },
    #[error("{0} already holds data: restore into an empty or new folder (move it away, or choose another with --into)")]
    TargetNotEmpty(PathBuf),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    pub path: PathBuf,
    pub trees: usize,
    pub entries: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// A writer that hashes what passes through it.
struct Hashing<W: Write> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Largest key, value or tree name an archive holds (the store's are a few KiB).
const MAX_ENTRY_BYTES: u32 = 64 << 20;

fn put(w: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let n = u32::try_from(bytes.len()).ok().filter(|n| *n <= MAX_ENTRY_BYTES).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("an entry of {} bytes (an archive holds at most {MAX_ENTRY_BYTES})", bytes.len()))
    })?;
    w.write_all(&n.to_be_bytes())?;
    w.write_all(bytes)
}

impl MarketStore {
    /// Writes a backup of everything committed to `path` (written to a
    /// temporary name first, then renamed).
    pub fn backup(&self, path: &Path) -> Result<BackupReport, BackupError> {
        let io = |source| BackupError::Io { path: path.to_owned(), source };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let tmp = path.with_extension("partial");
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(MAGIC).map_err(io)?;
        file.write_all(&[0u8; 32]).map_err(io)?; // checksum, filled in below
        let hashing = Hashing { inner: BufWriter::new(file), hash: Sha256::new(), bytes: 0 };
        let mut gz = GzEncoder::new(hashing, Compression::default());
        let (mut trees, mut entries) = (0, 0u64);
        for name in self.db.tree_names() {
            let tree = self.db.open_tree(&name).map_err(StoreError::from)?;
            gz.write_all(&[1]).map_err(io)?;
            put(&mut gz, &name).map_err(io)?;
            for kv in tree.iter() {
                let (k, v) = kv.map_err(StoreError::from)?;
                gz.write_all(&[2]).map_err(io)?;
                put(&mut gz, &k).map_err(io)?;
                put(&mut gz, &v).map_err(io)?;
                entries += 1;
            }
            trees += 1;
        }
        gz.write_all(&[0]).map_err(io)?;
        let hashing = gz.finish().map_err(io)?;
        let sha = hashing.hash.finalize();
        let mut file = hashing.inner.into_inner().map_err(|e| io(e.into_error()))?;
        use std::io::Seek;
        file.seek(std::io::SeekFrom::Start(MAGIC.len() as u64)).map_err(io)?;
        file.write_all(&sha).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        Ok(BackupReport { path: path.to_owned(), trees, entries, bytes: hashing.bytes + 40, sha256: hex::encode(sha) })
    }
}

fn get(r: &mut impl Read, path: &Path) -> Result<Vec<u8>, BackupError> {
    let damaged = |why: String| BackupError::Damaged { path: path.to_owned(), why };
    let mut len = [0u8; 4];
    r.read_exact(&mut len).map_err(|e| damaged(format!("truncated ({e})")))?;
    // The length is the archive's word, checksum or not (anyone can compute a
    // SHA-256): bounded, and memory grows only with bytes actually read.
    let n = u32::from_be_bytes(len);
    if n > MAX_ENTRY_BYTES {
        return Err(damaged(format!("an entry claims {n} bytes (at most {MAX_ENTRY_BYTES})")));
    }
    let mut buf = Vec::new();
    r.take(u64::from(n)).read_to_end(&mut buf).map_err(|e| damaged(format!("truncated ({e})")))?;
    if buf.len() as u64 != u64::from(n) {
        return Err(damaged(format!("truncated: an entry of {n} bytes ends after {}", buf.len())));
    }
    Ok(buf)
}

/// Verifies `archive`, then restores it into `target` (which must not hold data).
pub fn restore(archive: &Path, target: &Path) -> Result<BackupReport, BackupError> {
    let io = |source| BackupError::Io { path: archive.to_owned(), source };
    if target.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        return Err(BackupError::TargetNotEmpty(target.to_owned()));
    }
    // Pass 1: the checksum, before anything is written.
    let mut file = BufReader::new(std::fs::File::open(archive).map_err(io)?);
    let mut head = [0u8; 40];
    if file.read_exact(&mut head).is_err() || &head[..8] != MAGIC {
        return Err(BackupError::NotABackup(archive.to_owned()));
    }
    let mut hash = Sha256::new();
    let bytes = std::io::copy(&mut file, &mut hash).map_err(io)?;
    let actual = hex::encode(hash.finalize());
    let expected = hex::encode(&head[8..]);
    if actual != expected {
        return Err(BackupError::Checksum { path: archive.to_owned(), expected, actual });
    }
    // Pass 2: into a temporary folder beside the target, renamed when complete.
    let staging = target.with_extension("restoring");
    let _ = std::fs::remove_dir_all(&staging);
    let result = (|| {
        let mut body = BufReader::new(std::fs::File::open(archive).map_err(io)?);
        body.read_exact(&mut head).map_err(io)?;
        let mut gz = BufReader::new(GzDecoder::new(body));
        let db = sled::open(&staging).map_err(StoreError::from)?;
        let (mut trees, mut entries) = (0, 0u64);
        let mut tree: Option<sled::Tree> = None;
        loop {
            let mut tag = [0u8; 1];
            gz.read_exact(&mut tag).map_err(|e| BackupError::Damaged { path: archive.to_owned(), why: format!("truncated ({e})") })?;
            match tag[0] {
                0 => break,
                1 => {
                    tree = Some(db.open_tree(get(&mut gz, archive)?).map_err(StoreError::from)?);
                    trees += 1;
                }
                2 => {
                    let (k, v) = (get(&mut gz, archive)?, get(&mut gz, archive)?);
                    let t = tree.as_ref().ok_or_else(|| BackupError::Damaged { path: archive.to_owned(), why: "an entry before any tree".into() })?;
                    t.insert(k, v).map_err(StoreError::from)?;
                    entries += 1;
                }
                other => return Err(BackupError::Damaged { path: archive.to_owned(), why: format!("unknown record tag {other}") }),
            }
        }
        db.flush().map_err(StoreError::from)?;
        Ok::<_, BackupError>((trees, entries))
    })();
    let (trees, entries) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    if target.exists() {
        std::fs::remove_dir(target).map_err(|source| BackupError::Io { path: target.to_owned(), source })?;
    }
    std::fs::rename(&staging, target).map_err(|source| BackupError::Io { path: target.to_owned(), source })?;
    Ok(BackupReport { path: target.to_owned(), trees, entries, bytes: bytes + 40, sha256: actual })
}

#[cfg(test)]
mod tests {
    use super::super::{Series, StoreConfig};
    use super::*;
    use crate::Trade;

    fn store_with_data(dir: &Path) -> MarketStore {
        let mut s = MarketStore::open(dir, StoreConfig::default()).unwrap();
        let id = s.instrument_id("XYZ").unwrap();
        for k in 0..5_000i64 {
            s.append_trade(&Trade { instrument: id, time: k * 100_000_000, price: 50.0 + (k % 17) as f64 * 0.01, size: 10.0 }).unwrap();
        }
        s.commit().unwrap();
        s
    }

    #[test]
    fn backup_and_restore_give_back_the_same_store() {
        let dir = tempfile::tempdir().unwrap();
        let s = store_with_data(&dir.path().join("db"));
        let report = s.backup(&dir.path().join("b/market.sbxbak")).unwrap();
        assert!(report.entries > 3 && report.trees >= 3, "{report:?}");
        let back = restore(&report.path, &dir.path().join("restored")).unwrap();
        assert_eq!((back.entries, back.sha256.as_str()), (report.entries, report.sha256.as_str()));
        let r = MarketStore::open(&dir.path().join("restored"), StoreConfig::default()).unwrap();
        let id = r.instrument_id_of("XYZ").unwrap();
        assert_eq!(r.range(id, Series::Trades, i64::MIN, i64::MAX).unwrap(), s.range(id, Series::Trades, i64::MIN, i64::MAX).unwrap());
    }

    #[test]
    fn a_damaged_archive_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let s = store_with_data(&dir.path().join("db"));
        let path = dir.path().join("market.sbxbak");
        s.backup(&path).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n / 2] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let target = dir.path().join("restored");
        let e = restore(&path, &target).unwrap_err();
        assert!(matches!(e, BackupError::Checksum { .. }), "{e}");
        assert!(!target.exists() && !target.with_extension("restoring").exists(), "nothing written");
        std::fs::write(&path, b"hello").unwrap();
        assert!(matches!(restore(&path, &target), Err(BackupError::NotABackup(_))));
        assert!(matches!(restore(&path, &dir.path().join("db")), Err(BackupError::TargetNotEmpty(_))));
    }

    /// An archive with a valid checksum whose entry claims 4 GiB: refused by
    /// name, without allocating it (the reader used to allocate the length).
    #[test]
    fn a_crafted_length_is_refused_without_allocating_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(&[1]).unwrap();
        gz.write_all(&u32::MAX.to_be_bytes()).unwrap();
        gz.write_all(b"short").unwrap();
        let body = gz.finish().unwrap();
        let mut archive = MAGIC.to_vec();
        archive.extend_from_slice(&Sha256::digest(&body));
        archive.extend_from_slice(&body);
        let path = dir.path().join("crafted.sbxbak");
        std::fs::write(&path, archive).unwrap();
        let e = restore(&path, &dir.path().join("restored")).unwrap_err();
        assert!(matches!(&e, BackupError::Damaged { why, .. } if why.contains("claims 4294967295 bytes")), "{e}");
        assert!(!dir.path().join("restored").exists(), "nothing written");
    }
}
