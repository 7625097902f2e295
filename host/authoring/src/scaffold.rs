//! `stratbox plugin new`: a plugin crate that builds and passes its test at once.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("`{0}` is not a valid plugin name: use lowercase letters, digits and '-', starting with a letter")]
    BadName(String),
    #[error("{0} already exists and is not empty; choose another name or --dir")]
    Exists(PathBuf),
    #[error("the SDK was not found at {0}; pass --sdk PATH (the folder holding stratbox-sdk's Cargo.toml)")]
    NoSdk(PathBuf),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// The SDK next to this host's sources (`STRATBOX_SDK` overrides it).
pub fn default_sdk_path() -> PathBuf {
    std::env::var_os("STRATBOX_SDK").map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk"))
}

/// Creates `<dir>/<name>`; returns its path.
pub fn scaffold(name: &str, dir: &Path, sdk: &Path) -> Result<PathBuf, ScaffoldError> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(ScaffoldError::BadName(name.to_owned()));
    }
    let sdk = sdk.canonicalize().ok().filter(|p| p.join("Cargo.toml").is_file()).ok_or_else(|| ScaffoldError::NoSdk(sdk.to_owned()))?;
    let root = dir.join(name);
    if root.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        return Err(ScaffoldError::Exists(root));
    }
    let ty: String = name.split('-').map(|w| w[..1].to_uppercase() + &w[1..]).collect();
    let io = |path: &Path| { let path = path.to_owned(); move |source| ScaffoldError::Io { path, source } };
    std::fs::create_dir_all(root.join("src")).map_err(io(&root))?;
    let files = [
        ("Cargo.toml", CARGO_TOML.replace("{name}", name).replace("{sdk}", &sdk.display().to_string())),
        ("src/lib.rs", LIB_RS.replace("{name}", name).replace("{Type}", &ty)),
        (".gitignore", "/target\n".to_owned()),
    ];
    for (file, text) in files {
        let path = root.join(file);
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    Ok(root)
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
