//! Every string a plugin hands the host is bounded: alarm reasons count
//! against the log budget and are kept cut to size, as are init errors.

use stratbox_engine::config::ParamInput;
use stratbox_sandbox::Health;
use stratbox_sandbox::bounds::MAX_TEXT_BYTES;

use crate::bystander::{quarantined, refused};
use crate::support::{Scenario, hostile, sma_cross};

#[test]
fn a_two_megabyte_alarm_reason_is_a_log_flood() {
    quarantined(hostile("huge-alarm"), |s| s, &["log flood", "`observe-bars`"]);
}

#[test]
fn a_long_alarm_reason_is_kept_cut_to_size() {
    let spec = hostile("huge-alarm").param("bytes", ParamInput::Integer(5_000));
    let out = Scenario::new(vec![sma_cross(), spec]).run();
    let view = out.plugin("hostile");
    assert_eq!(view.health, Health::Running, "{view:?}");
    assert_eq!(view.alarms, out.summary.status.stats.bars / 5, "one alarm per cross-section of 5 bars");
    let last = view.last_alarm.as_deref().expect("an alarm was raised");
    assert!(last.len() < MAX_TEXT_BYTES + 64, "kept {} bytes", last.len());
    assert!(last.ends_with(&format!("[truncated: {} more bytes]", 5_000 - MAX_TEXT_BYTES)), "{}", &last[last.len() - 40..]);
}

#[test]
fn a_two_megabyte_init_error_is_refused_cut_to_size() {
    let out = refused(hostile("init-error-huge"), &["refused to start: eeee", "[truncated: "]);
    let reason = &out.summary.status.stats.refused[0];
    assert!(reason.len() < MAX_TEXT_BYTES + 200, "refusal kept {} bytes", reason.len());
}
