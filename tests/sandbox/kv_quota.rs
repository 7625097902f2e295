//! The private store enforces its quota: writes past it fail with an error
//! the plugin can handle, and the plugin keeps running.

use stratbox_engine::config::PluginSpec;
use stratbox_sandbox::LimitOverrides;
use stratbox_contract::Intent;
use stratbox_sandbox::Health;

use crate::support::{Scenario, hostile};

#[test]
fn writes_stop_at_the_quota() {
    let quota = 64 * 1024;
    let spec = PluginSpec { limits: LimitOverrides { kv_quota_bytes: Some(quota), ..Default::default() }, ..hostile("kv-hog") };
    let out = Scenario::new(vec![spec]).run();
    assert_eq!(out.plugin("hostile").health, Health::Running);
    let writes = match &out.intents_of("hostile")[0].1 {
        Intent::Target(t) => t.quantity as u64,
        other => panic!("unexpected {other:?}"),
    };
    // Each entry is a 10-byte key and a 1000-byte value.
    assert_eq!(writes, quota / 1010, "exactly as many writes as fit in the quota");
}

#[test]
fn a_swapped_in_successor_counts_its_predecessors_latest_writes() {
    let quota = 64 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let spec = || PluginSpec { limits: LimitOverrides { kv_quota_bytes: Some(quota), ..Default::default() }, ..hostile("kv-hog") };
    let (mut host, _tx) = Scenario::new(vec![spec()]).host(dir.path());
    // The successor starts (and measures the empty store) before the predecessor fills it.
    let next = host.factory().load(spec()).unwrap();
    assert_eq!(next.instance.state().kv_used(), Some(0));
    assert!(host.step(), "first bar: the predecessor fills the store");
    host.supervisor.swap("hostile", next).expect("swap");
    let view = host.supervisor.views().into_iter().find(|v| v.name == "hostile").unwrap();
    assert_eq!(view.swaps, 1);
    // Read back what the live instance believes it uses.
    let used = host.supervisor.kv_used("hostile").unwrap();
    assert!(used > quota - 1010 && used <= quota, "usage {used} re-measured at the swap");
}
