//! Small shared helpers.

/// Serialises a `Duration` as fractional milliseconds.
pub mod duration_ms {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1e3)
    }
}

/// Writes `data` to `path` atomically (a temporary file beside it, synced,
/// then renamed): a reader never sees half a file. The temporary file has an
/// unpredictable name and is created new (never an existing file or a
/// symlink someone planted), readable by its owner only; `private` keeps the
/// result that way (mode 0600), otherwise it becomes 0644 before the rename.
pub fn write_atomic(path: &std::path::Path, data: &[u8], private: bool) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let mut tmp = tempfile::Builder::new().prefix(".stratbox-").suffix(".tmp").tempfile_in(dir)?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    #[cfg(unix)]
    if !private {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    #[cfg(not(unix))]
    let _ = private;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Creates `path` and any missing parents readable by their owner only
/// (0700): data directories hold journals, credentials and control tokens.
/// Folders that already exist keep their modes.
pub fn create_private_dir(path: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

/// Nanoseconds in `secs` seconds, saturating at the end of time instead of
/// wrapping (a `u64` of seconds from the CLI, config or control API can be
/// anything).
pub fn secs_to_nanos(secs: u64) -> i64 {
    i64::try_from(secs).ok().and_then(|s| s.checked_mul(1_000_000_000)).unwrap_or(i64::MAX)
}

/// Nanoseconds in `ms` milliseconds, saturating.
pub fn ms_to_nanos(ms: u64) -> i64 {
    i64::try_from(ms).ok().and_then(|s| s.checked_mul(1_000_000)).unwrap_or(i64::MAX)
}

/// A span of market time a setting may ask for: a year.
pub const MAX_SPAN_SECS: u64 = 366 * 86_400;

/// Milliseconds since the Unix epoch, for reports.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_saturate_instead_of_wrapping() {
        assert_eq!(secs_to_nanos(60), 60_000_000_000);
        assert_eq!(secs_to_nanos(u64::MAX), i64::MAX);
        assert_eq!(secs_to_nanos(9_300_000_000), i64::MAX, "past i64 nanoseconds (292 years)");
        assert_eq!(ms_to_nanos(5), 5_000_000);
        assert_eq!(ms_to_nanos(u64::MAX), i64::MAX);
    }

    #[cfg(unix)]
    #[test]
    fn data_directories_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("a/b/stratbox-data");
        create_private_dir(&data).unwrap();
        for p in [dir.path().join("a"), dir.path().join("a/b"), data.clone()] {
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o700, "{}", p.display());
        }
        create_private_dir(&data).unwrap(); // exists: fine
    }

    #[cfg(unix)]
    #[test]
    fn atomic_writes_never_follow_a_planted_file_and_keep_their_modes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("control.json");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep me").unwrap();
        // The old helper wrote through `<name>.tmp<pid>`: a symlink there sent the data elsewhere.
        std::os::unix::fs::symlink(&victim, target.with_extension(format!("tmp{}", std::process::id()))).unwrap();
        write_atomic(&target, b"secret", true).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
        assert_eq!(std::fs::read(&target).unwrap(), b"secret");
        assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o600);
        write_atomic(&target, b"public", false).unwrap();
        assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o644);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 3, "no temporary file left behind: {left:?}");
    }
}
