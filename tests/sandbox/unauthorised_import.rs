//! A component importing anything outside the granted world is refused
//! before it runs, and the refusal names the import.

use stratbox_engine::config::PluginSpec;

use crate::bystander::refused;
use crate::support::component;

#[test]
fn an_import_outside_the_world_is_named() {
    refused(PluginSpec::new(component("tests/plugins/rogue-import")), &["imports `wasi:cli/environment@0.2.0`", "outside the granted world"]);
}
