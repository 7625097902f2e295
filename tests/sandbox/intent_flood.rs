//! A handler producing a million intents is stopped at the per-callback limit,
//! as it submits the 1,025th (given enough memory and fuel to build them).

use stratbox_engine::config::PluginSpec;
use stratbox_sandbox::LimitOverrides;

use crate::bystander::quarantined;
use crate::support::hostile;

#[test]
fn a_million_intents_exceed_the_limit() {
    let limits = LimitOverrides { memory_bytes: Some(512 << 20), fuel_per_callback: Some(10_000_000_000), ..Default::default() };
    let spec = PluginSpec { limits, ..hostile("intent-flood") };
    let out = quarantined(spec, |s| s, &["submitted more than 1024 intents in one `on-bars` call"]);
    assert!(out.intents_of("hostile").is_empty(), "none of the flood reached the broker");
}
