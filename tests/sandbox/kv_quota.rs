//! The private store enforces its quota: writes past it fail with an error
//! the plugin can handle, and the plugin keeps running.

use stratbox_host::config::PluginSpec;
use stratbox_host::runtime::LimitOverrides;
use stratbox_host::runtime::bindings::Intent;
use stratbox_host::supervisor::Health;

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
