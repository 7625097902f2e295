//! An infinite loop in an event handler is stopped by the fuel budget,
//! deterministically (backtest mode has no wall-clock deadline).

use crate::bystander::quarantined;
use crate::support::hostile;

#[test]
fn infinite_loop_in_on_bar_runs_out_of_fuel() {
    quarantined(hostile("spin"), |s| s, &["ran out of fuel", "50000000", "`on-bars`"]);
}
