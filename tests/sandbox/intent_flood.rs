//! A handler returning a million intents is cut off by the per-callback limit
//! (given enough memory and fuel to actually build the list).

use stratbox_host::config::PluginSpec;
use stratbox_host::runtime::LimitOverrides;

use crate::bystander::quarantined;
use crate::support::hostile;

#[test]
fn a_million_intents_exceed_the_limit() {
    let limits = LimitOverrides { memory_bytes: Some(512 << 20), fuel_per_callback: Some(10_000_000_000), ..Default::default() };
    let spec = PluginSpec { limits, ..hostile("intent-flood") };
    let out = quarantined(spec, |s| s, &["returned 1000000 intents", "its limit is 1024"]);
    assert!(out.intents_of("hostile").is_empty(), "none of the flood reached the broker");
}
