//! Live/paper mode: a busy-wait past the epoch deadline is interrupted even
//! when its fuel budget would allow it.

use stratbox_engine::config::{Mode, PluginSpec};
use stratbox_sandbox::LimitOverrides;

use crate::bystander::quarantined;
use crate::support::hostile;

#[test]
fn a_busy_wait_misses_the_live_deadline() {
    let limits = LimitOverrides { fuel_per_callback: Some(10_000_000_000), deadline_ms: Some(20), ..Default::default() };
    let spec = PluginSpec { limits, ..hostile("busy-wait") };
    quarantined(spec, |s| s.mode(Mode::Paper), &["missed its deadline", "after 20 ms"]);
}
