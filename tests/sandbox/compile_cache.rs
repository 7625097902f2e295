//! The compiled-component cache: a component compiles once per engine
//! configuration; a damaged entry is rebuilt, never trusted.

use stratbox_sandbox::{CacheOutcome, Metering, Sandbox, SandboxSettings};

use crate::support::component;

fn sandbox(dir: &std::path::Path, metering: Metering) -> Sandbox {
    Sandbox::new(SandboxSettings { cache_dir: Some(dir.to_owned()), metering, ..Default::default() }).unwrap()
}

#[test]
fn compiles_once_per_configuration_and_rebuilds_damaged_entries() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(component("examples/sma-cross")).unwrap();
    let fuel = sandbox(dir.path(), Metering::Fuel);
    assert_eq!(fuel.prepare(&bytes).unwrap().cache, Some(CacheOutcome::Miss));
    assert_eq!(fuel.prepare(&bytes).unwrap().cache, Some(CacheOutcome::Hit));
    // Another metering profile compiles different code: its own entry.
    let epoch = sandbox(dir.path(), Metering::Epoch);
    assert_eq!(epoch.prepare(&bytes).unwrap().cache, Some(CacheOutcome::Miss));
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
    for e in &entries {
        std::fs::write(e, b"garbage").unwrap();
    }
    assert_eq!(fuel.prepare(&bytes).unwrap().cache, Some(CacheOutcome::Rebuilt));
    assert_eq!(fuel.prepare(&bytes).unwrap().cache, Some(CacheOutcome::Hit));
}
