//! Contract versions: plugins built against the released 0.1.0 (before the
//! `inference` import) and against a later patch release load and run on
//! this 0.1.1 host; a wrong major is refused with both versions named.

use stratbox_engine::config::PluginSpec;
use stratbox_contract::{Intent, TargetPosition};
use stratbox_sandbox::Health;

use crate::bystander::refused;
use crate::support::{Scenario, component};

#[test]
fn a_plugin_built_for_the_released_0_1_0_runs_on_this_0_1_1_host() {
    let out = Scenario::new(vec![PluginSpec::new(component("tests/plugins/released-contract"))]).run();
    let p = out.plugin("released-contract");
    assert_eq!((p.health, p.contract.as_str(), p.version.as_str()), (Health::Running, "0.1.0", "0.1.0"));
    let intents = out.intents_of("released-contract");
    assert_eq!(intents.len(), 5 * 120, "one intent per bar of every cross-section");
    assert_eq!(intents[3].1, Intent::Target(TargetPosition { instrument: 3, quantity: 4.0 }));
}

#[test]
fn a_plugin_built_for_0_1_9_runs_on_this_0_1_1_host() {
    let out = Scenario::new(vec![PluginSpec::new(component("tests/plugins/patch-release"))]).run();
    let p = out.plugin("patch-release");
    assert_eq!((p.health, p.contract.as_str(), p.version.as_str()), (Health::Running, "0.1.9", "0.1.9"));
    let intents = out.intents_of("patch-release");
    assert_eq!(intents.len(), 5 * 120, "one intent per bar of every cross-section");
    assert_eq!(intents[3].1, Intent::Target(TargetPosition { instrument: 3, quantity: 4.0 }));
}

#[test]
fn a_wrong_major_version_is_refused() {
    refused(
        PluginSpec::new(component("tests/plugins/wrong-major")),
        &["built for contract stratbox:plugin@1.0.0", "this host (stratbox:plugin@0.1.1)", "major versions differ (1 vs 0)"],
    );
}
