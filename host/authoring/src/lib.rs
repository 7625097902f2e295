//! Tooling for plugin authors: scaffold a crate, build it into a component,
//! inspect a component.
//!
//! It runs cargo and wit-component on the author's source and reads
//! components through the sandbox's own load-time checks; it never runs a
//! plugin against market data or a broker.

mod build;
mod inspect;
mod scaffold;

pub use build::{BuildError, BuildOutput, BuildRoute, build_plugin, componentize};
pub use inspect::{InspectReport, inspect};
pub use scaffold::{ScaffoldError, default_sdk_path, scaffold};
