//! Tooling for plugin authors: scaffold a project, build it into a
//! component, inspect a component.
//!
//! It runs cargo and wit-component (Rust) or componentize-py (Python) on the
//! author's source and reads components through the sandbox's own load-time
//! checks; it never runs a plugin against market data or a broker.

mod inspect;
mod python;
mod scaffold;

use std::path::{Path, PathBuf};

pub use stratbox_plugin_build::{BuildError, BuildOutput, BuildRoute, WASM_TARGET, build_plugin, build_plugin_in, componentize};
pub use inspect::{InspectReport, inspect};
pub use python::{COMPONENTIZE_PY_VERSION, Language, PythonBuild, PythonBuildError, PythonProject, build_python, build_python_with, detect_language, find_componentize_py};
pub use scaffold::{Lang, ScaffoldError, default_python_sdk_path, default_sdk_path, scaffold, scaffold_python};

/// A build of either kind.
#[derive(Debug, Clone)]
pub enum Built {
    Rust(BuildOutput),
    Python(PythonBuild),
}

impl Built {
    pub fn component(&self) -> &Path {
        match self {
            Built::Rust(b) => &b.component,
            Built::Python(b) => &b.component,
        }
    }

    pub fn component_bytes(&self) -> usize {
        match self {
            Built::Rust(b) => b.component_bytes,
            Built::Python(b) => b.component_bytes,
        }
    }

    /// How it was built, for the CLI's line.
    pub fn route(&self) -> String {
        match self {
            Built::Rust(b) => b.route.to_string(),
            Built::Python(b) => format!("componentize-py {COMPONENTIZE_PY_VERSION} ({})", b.componentize_py.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AnyBuildError {
    #[error(transparent)]
    Rust(#[from] BuildError),
    #[error(transparent)]
    Python(#[from] PythonBuildError),
    #[error("{0} is neither a plugin crate (Cargo.toml) nor a Python plugin project (pyproject.toml with [tool.stratbox])")]
    NotAProject(PathBuf),
}

/// `stratbox plugin build DIR`: a crate (Cargo.toml) through cargo, a Python
/// project (pyproject.toml) through componentize-py.
pub fn build(dir: &Path, output: Option<&Path>) -> Result<Built, AnyBuildError> {
    if dir.join("Cargo.toml").is_file() {
        return Ok(Built::Rust(build_plugin(dir, output)?));
    }
    match PythonProject::open(dir)? {
        Some(project) => Ok(Built::Python(build_python(&project, output)?)),
        None => Err(AnyBuildError::NotAProject(dir.to_owned())),
    }
}
