//! Fuel exhaustion during initialisation: the plugin never starts.

use crate::bystander::refused;
use crate::support::hostile;

#[test]
fn spinning_in_init_is_refused() {
    refused(hostile("init-spin"), &["hostile", "ran out of fuel", "`init`"]);
}

#[test]
fn an_init_error_is_refused_with_the_plugins_own_message() {
    refused(hostile("init-error"), &["refused to start: refusing to start: no edge in this market"]);
}
