//! Tooling for plugin authors: scaffold a crate, build it into a component,
//! inspect a component.
//!
//! It runs cargo and wit-component on the author's source and reads
//! components through the sandbox's own load-time checks; it never runs a
//! plugin against market data or a broker.

mod inspect;
mod scaffold;

pub use stratbox_plugin_build::{BuildError, BuildOutput, BuildRoute, WASM_TARGET, build_plugin, build_plugin_in, componentize};
pub use inspect::{InspectReport, inspect};
pub use scaffold::{ScaffoldError, default_sdk_path, scaffold};
