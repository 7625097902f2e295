//! Host calls cost the plugin fuel for the host's work, so a loop over a
//! cheap-looking import is stopped like any other loop; where fuel cannot
//! see (a budget far too large), a backtest's wall-clock backstop does.

use stratbox_engine::config::PluginSpec;
use stratbox_sandbox::{LimitOverrides, PluginLimits};

use crate::bystander::quarantined;
use crate::support::hostile;

#[test]
fn a_loop_over_market_history_runs_out_of_fuel() {
    let out = quarantined(hostile("history-hog"), |s| s, &["ran out of fuel", "`on-bars`", "charged for host calls"]);
    let hog = out.plugin("hostile");
    // Out of fuel, not past the backstop: the callback ended before it.
    assert!(hog.stats.import_fuel > PluginLimits::default().fuel_per_callback / 2, "most of the budget went on host calls: {:?}", hog.stats);
}

#[test]
fn a_budget_too_large_for_fuel_to_matter_meets_the_backstop() {
    let limits = LimitOverrides { fuel_per_callback: Some(10_000_000_000), backstop_ms: Some(300), ..Default::default() };
    let spec = PluginSpec { limits, ..hostile("history-hog") };
    quarantined(spec, |s| s, &["backtest's wall-clock backstop", "`on-bars`", "after 300 ms"]);
}
