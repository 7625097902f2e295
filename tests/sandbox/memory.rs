//! A memory bomb hits its linear-memory cap and traps there.

use stratbox_engine::config::PluginSpec;
use stratbox_sandbox::LimitOverrides;

use crate::bystander::quarantined;
use crate::support::hostile;

#[test]
fn memory_bomb_hits_the_cap() {
    let spec = PluginSpec { limits: LimitOverrides { memory_bytes: Some(16 << 20), ..Default::default() }, ..hostile("memory-bomb") };
    quarantined(spec, |s| s, &["linear memory cap hit", "its limit is 16777216", "`on-bars`"]);
}
