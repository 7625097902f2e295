//! Tooling for plugin authors: scaffold a crate, build it into a component,
//! inspect a component.

mod build;
mod inspect;
mod scaffold;

pub use build::{BuildError, BuildOutput, BuildRoute, build_plugin, componentize};
pub use inspect::{InspectReport, inspect};
pub use scaffold::{ScaffoldError, default_sdk_path, scaffold};
