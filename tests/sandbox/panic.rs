//! A panic aborts the plugin; the reason carries the panic message.

use crate::bystander::{quarantined, refused};
use crate::support::hostile;

#[test]
fn a_panic_in_a_handler_is_reported_with_its_message() {
    quarantined(hostile("panic"), |s| s, &["panicked in `on-bars`", "index out of bounds", "src/lib.rs"]);
}

#[test]
fn a_panic_in_init_is_refused() {
    refused(hostile("init-panic"), &["panicked in `init`", "init blew up"]);
}
