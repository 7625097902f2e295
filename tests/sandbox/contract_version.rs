//! Contract versions: a wrong major is refused with both versions named.

use stratbox_host::config::PluginSpec;

use crate::bystander::refused;
use crate::support::component;

#[test]
fn a_wrong_major_version_is_refused() {
    refused(
        PluginSpec::new(component("tests/plugins/wrong-major")),
        &["built for contract stratbox:plugin@1.0.0", "this host (stratbox:plugin@0.1.0)", "major versions differ (1 vs 0)"],
    );
}
