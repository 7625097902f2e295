//! `stratbox plugin new`: a plugin project (a Rust crate or a Python
//! project) that builds and passes its test at once.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("`{0}` is not a valid plugin name: use lowercase letters, digits and '-', starting with a letter")]
    BadName(String),
    #[error("{0} already exists and is not empty; choose another name or --dir")]
    Exists(PathBuf),
    #[error("the SDK was not found at {0}; pass --sdk PATH (the folder holding stratbox-sdk's Cargo.toml)")]
    NoSdk(PathBuf),
    #[error("the Python SDK was not found at {0}; pass --sdk PATH (the folder holding the `stratbox` package, sdk/python in the repository)")]
    NoPythonSdk(PathBuf),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// The language of a new plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Rust,
    Python,
}

/// The Python SDK next to this host's sources (`STRATBOX_PYTHON_SDK` overrides it).
pub fn default_python_sdk_path() -> PathBuf {
    std::env::var_os("STRATBOX_PYTHON_SDK").map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk/python"))
}

/// The SDK next to this host's sources (`STRATBOX_SDK` overrides it).
pub fn default_sdk_path() -> PathBuf {
    std::env::var_os("STRATBOX_SDK").map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk"))
}

/// Creates `<dir>/<name>`; returns its path.
pub fn scaffold(name: &str, dir: &Path, sdk: &Path) -> Result<PathBuf, ScaffoldError> {
    let root = new_root(name, dir)?;
    let sdk = sdk.canonicalize().ok().filter(|p| p.join("Cargo.toml").is_file()).ok_or_else(|| ScaffoldError::NoSdk(sdk.to_owned()))?;
    let files = [
        ("Cargo.toml", CARGO_TOML.replace("{name}", name).replace("{sdk}", &sdk.display().to_string())),
        ("src/lib.rs", LIB_RS.replace("{name}", name).replace("{Type}", &type_name(name))),
        (".gitignore", "/target\n".to_owned()),
    ];
    write_all(&root, &files)?;
    Ok(root)
}

/// Creates the Python project `<dir>/<name>`: the module `<name_with_underscores>.py`,
/// its pytest tests, and a pyproject.toml naming the SDK at `sdk`.
pub fn scaffold_python(name: &str, dir: &Path, sdk: &Path) -> Result<PathBuf, ScaffoldError> {
    let root = new_root(name, dir)?;
    let sdk = sdk.canonicalize().ok().filter(|p| p.join("stratbox/__init__.py").is_file()).ok_or_else(|| ScaffoldError::NoPythonSdk(sdk.to_owned()))?;
    let module = name.replace('-', "_");
    let fill = |t: &str| t.replace("{name}", name).replace("{module}", &module).replace("{Type}", &type_name(name)).replace("{sdk}", &sdk.display().to_string());
    let files = [
        ("pyproject.toml", fill(PYPROJECT_TOML)),
        (&*format!("{module}.py"), fill(MODULE_PY)),
        (&*format!("tests/test_{module}.py"), fill(TEST_PY)),
        (".gitignore", "/build/\n/.venv/\n__pycache__/\n".to_owned()),
    ];
    write_all(&root, &files)?;
    Ok(root)
}

fn new_root(name: &str, dir: &Path) -> Result<PathBuf, ScaffoldError> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(ScaffoldError::BadName(name.to_owned()));
    }
    let root = dir.join(name);
    if root.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        return Err(ScaffoldError::Exists(root));
    }
    Ok(root)
}

fn type_name(name: &str) -> String {
    name.split('-').map(|w| w[..1].to_uppercase() + &w[1..]).collect()
}

fn write_all(root: &Path, files: &[(&str, String)]) -> Result<(), ScaffoldError> {
    for (file, text) in files {
        let path = root.join(file);
        let parent = path.parent().expect("a file under the root");
        std::fs::create_dir_all(parent).map_err(|source| ScaffoldError::Io { path: parent.to_owned(), source })?;
        std::fs::write(&path, text).map_err(|source| ScaffoldError::Io { path: path.clone(), source })?;
    }
    Ok(())
}

const CARGO_TOML: &str = r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

# A standalone crate, not part of any enclosing workspace.
[workspace]

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
stratbox-sdk = { path = "{sdk}" }

[profile.release]
opt-level = 3
lto = true
codegen-units = 1
panic = "abort"
strip = true
"#;

const LIB_RS: &str = r#"//! {name}: buys `quantity` when a bar closes more than `threshold` standard
//! deviations below its rolling mean, and goes flat when it closes above it.
//! Build: `stratbox plugin build .`; test: `cargo test`.

use stratbox_sdk::prelude::*;

pub struct {Type} {
    window: usize,
    threshold: f64,
    quantity: f64,
    stats: Vec<Option<RollingStats>>,
}

impl Plugin for {Type} {
    fn describe() -> PluginInfo {
        PluginInfo::new("{name}", env!("CARGO_PKG_VERSION"))
            .description("z-score mean reversion")
            .param_int("window", "bars in the rolling window", 20, 2, 10_000)
            .param_number("threshold", "entry z-score", 2.0, 0.1, 10.0)
            .param_number("quantity", "position when long", 1.0, 0.0, 1e9)
    }

    fn init(_ctx: &mut Ctx<'_>, init: &Init) -> Result<Self, String> {
        Ok(Self {
            window: init.params.int("window")? as usize,
            threshold: init.params.number("threshold")?,
            quantity: init.params.number("quantity")?,
            stats: Vec::new(),
        })
    }
}

impl Strategy for {Type} {
    fn on_bar(&mut self, _ctx: &mut Ctx<'_>, bar: &Bar, out: &mut Vec<Intent>) {
        let i = bar.instrument as usize;
        if self.stats.len() <= i {
            self.stats.resize_with(i + 1, || None);
        }
        let window = self.window;
        let stats = self.stats[i].get_or_insert_with(|| RollingStats::new(window));
        if let Some(z) = stats.zscore(bar.close) {
            if z < -self.threshold {
                out.push(Intent::target(bar.instrument, self.quantity));
            } else if z > 0.0 {
                out.push(Intent::target(bar.instrument, 0.0));
            }
        }
        stats.update(bar.close);
    }
}

stratbox_sdk::export_plugin!({Type}, roles: [strategy]);

#[cfg(test)]
mod tests {
    use super::*;
    use stratbox_sdk::testing::{bar, instrument, Harness};

    #[test]
    fn buys_a_sharp_drop_and_exits_on_recovery() {
        let mut h = Harness::<{Type}>::new(vec![instrument(0, "AAA")], &[]).unwrap();
        for day in 0..20 {
            let close = if day % 2 == 0 { 100.0 } else { 101.0 };
            h.bar(bar(0, day * 86_400, 86_400, close));
        }
        assert_eq!(h.bar(bar(0, 20 * 86_400, 86_400, 95.0)), vec![Intent::target(0, 1.0)]);
        assert_eq!(h.bar(bar(0, 21 * 86_400, 86_400, 102.0)), vec![Intent::target(0, 0.0)]);
    }
}
"#;

const PYPROJECT_TOML: &str = r#"[project]
name = "{name}"
version = "0.1.0"
description = "z-score mean reversion, a Stratbox plugin in Python"
requires-python = ">=3.11"

# `stratbox plugin build` reads this: the module holding the exported plugin
# class, and the Python SDK it is built with.
[tool.stratbox]
module = "{module}"
sdk = "{sdk}"

[tool.pytest.ini_options]
pythonpath = [".", "{sdk}"]
testpaths = ["tests"]
"#;

const MODULE_PY: &str = r#""""{name}: buys `quantity` when a bar closes more than `threshold` standard
deviations below its rolling mean, and goes flat when it closes above it.

Test: `pytest`; build: `stratbox plugin build .`.
"""

import stratbox
from stratbox import Ctx, Init, PerInstrument, PluginInfo, RollingStats, Strategy, target


@stratbox.export
class {Type}(Strategy):
    @staticmethod
    def describe():
        return (PluginInfo("{name}", "0.1.0")
                .description("z-score mean reversion")
                .param_int("window", "bars in the rolling window", 20, 2, 10_000)
                .param_number("threshold", "entry z-score", 2.0, 0.1, 10.0)
                .param_number("quantity", "position when long", 1.0, 0.0, 1e9))

    def __init__(self, ctx: Ctx, init: Init):
        self.window = init.params.int("window")
        self.threshold = init.params.number("threshold")
        self.quantity = init.params.number("quantity")
        self.stats = PerInstrument()

    def on_bar(self, ctx, bar):
        stats = self.stats.get_or_insert_with(bar.instrument, lambda: RollingStats(self.window))
        z = stats.zscore(bar.close)
        stats.update(bar.close)
        if z is None:
            return None
        if z < -self.threshold:
            return target(bar.instrument, self.quantity)
        if z > 0.0:
            return target(bar.instrument, 0.0)
        return None
"#;

const TEST_PY: &str = r#"from {module} import {Type}
from stratbox import target
from stratbox.testing import Harness, bar, instrument

DAY = 86_400


def test_buys_a_sharp_drop_and_exits_on_recovery():
    h = Harness({Type}, [instrument(0, "AAA")])
    for day in range(20):
        h.bar(bar(0, day * DAY, DAY, 100.0 if day % 2 == 0 else 101.0))
    assert h.bar(bar(0, 20 * DAY, DAY, 95.0)) == [target(0, 1.0)]
    assert h.bar(bar(0, 21 * DAY, DAY, 102.0)) == [target(0, 0.0)]
"#;
