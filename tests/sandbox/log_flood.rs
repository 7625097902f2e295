//! Logging far over budget is dropped, then stops the plugin.

use crate::bystander::quarantined;
use crate::support::hostile;

#[test]
fn a_log_flood_is_quarantined() {
    quarantined(hostile("log-flood"), |s| s, &["log flood", "budget 65536 bytes/s", "`on-bars`"]);
}
