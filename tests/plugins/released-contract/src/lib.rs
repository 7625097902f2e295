//! The patch-release fixture's plugin, compiled against the frozen 0.1.0 contract.
#[path = "../../patch-release/src/lib.rs"]
mod plugin;
