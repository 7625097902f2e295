//! NaN, infinite, negative or absurd quantities and prices, and unknown
//! instruments, never reach the broker; the plugin is quarantined.

use crate::bystander::quarantined;
use crate::support::hostile;

fn check(mode: &str, expect: &[&str]) {
    let out = quarantined(hostile(mode), |s| s, expect);
    assert!(out.intents_of("hostile").is_empty(), "{mode}: the malformed intent was not submitted");
    assert_eq!(out.summary.status.stats.path.invalid_intents, 1, "{mode}: counted once");
}

#[test]
fn nan_quantity() {
    check("nan-quantity", &["invalid intent", "quantity NaN for SIM000", "not a finite number"]);
}

#[test]
fn infinite_price() {
    check("infinite-price", &["limit price inf for SIM000"]);
}

#[test]
fn negative_quantity() {
    check("negative-quantity", &["quantity -5 for SIM000 must be positive"]);
}

#[test]
fn absurd_quantity() {
    check("absurd-quantity", &["quantity 1e300 for SIM000 exceeds the sanity bound"]);
}

#[test]
fn negative_price() {
    check("negative-price", &["stop price -1 for SIM000"]);
}

#[test]
fn unknown_instrument() {
    check("unknown-instrument", &["unknown instrument id 1000000"]);
}
