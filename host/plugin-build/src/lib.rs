//! `stratbox plugin build`: cargo to a `wasm32-unknown-unknown` core module,
//! then `wit-component` to a component. The target has no WASI imports at
//! all, so the component imports exactly what the SDK's WIT world grants.
//!
//! Its own crate, with no host dependency, because the `stratbox` binary's
//! build script builds the bundled plugins with it (and embeds them).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// Which toolchain route produced the core module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildRoute {
    /// rustup's `wasm32-unknown-unknown` target (the ordinary route).
    Rustup,
    /// Debian's `rustc-web` + `rust-web-src`, building std from source
    /// (`RUSTC_BOOTSTRAP=1 -Zbuild-std`), linked with rustup's `rust-lld`.
    DebianBuildStd { rustc: PathBuf, lld: PathBuf },
}

impl std::fmt::Display for BuildRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildRoute::Rustup => write!(f, "rustup target {WASM_TARGET}"),
            BuildRoute::DebianBuildStd { rustc, .. } => write!(f, "Debian {} with -Zbuild-std", rustc.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0} has no Cargo.toml: point `stratbox plugin build` at a plugin crate's folder")]
    NoManifest(PathBuf),
    #[error(
        "no toolchain can build {WASM_TARGET} here. Install one of:\n  \
         rustup target add {WASM_TARGET}\n  \
         apt-get update && apt-get install -y -t bookworm-security rustc-web rust-web-src   (Debian fallback)\n\
         ({0})"
    )]
    NoToolchain(String),
    #[error("cargo failed to build {dir} for {WASM_TARGET} ({status}); its errors are above")]
    Cargo { dir: PathBuf, status: String },
    #[error("cargo could not be started: {0}")]
    CargoMissing(std::io::Error),
    #[error("cargo built no .wasm for {0}: is its [lib] crate-type [\"cdylib\"]?")]
    NoArtifact(PathBuf),
    #[error("cannot turn {module} into a component: {message}")]
    Componentize { module: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct BuildOutput {
    pub route: BuildRoute,
    pub core_module: PathBuf,
    pub component: PathBuf,
    pub component_bytes: usize,
}

fn run_quiet(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Picks the route: rustup's target (adding it if rustup can), else Debian's
/// pair. `STRATBOX_BUILD_ROUTE=debian` goes straight to the fallback.
pub fn choose_route() -> Result<BuildRoute, BuildError> {
    let mut tried = Vec::new();
    if std::env::var("STRATBOX_BUILD_ROUTE").is_ok_and(|r| r == "debian") {
        tried.push("STRATBOX_BUILD_ROUTE=debian skips rustup".to_owned());
        return debian_route(tried);
    }
    match run_quiet(Command::new("rustup").args(["target", "list", "--installed"])) {
        Some(list) if list.lines().any(|l| l.trim() == WASM_TARGET) => return Ok(BuildRoute::Rustup),
        Some(_) => {
            if run_quiet(Command::new("rustup").args(["target", "add", WASM_TARGET])).is_some() {
                return Ok(BuildRoute::Rustup);
            }
            tried.push(format!("`rustup target add {WASM_TARGET}` failed"));
        }
        None => tried.push("rustup is not installed".to_owned()),
    }
    debian_route(tried)
}

fn debian_route(mut tried: Vec<String>) -> Result<BuildRoute, BuildError> {
    let rustc = PathBuf::from("/usr/bin/rustc");
    let debian_std = run_quiet(Command::new(&rustc).args(["--print", "sysroot"]))
        .map(|s| PathBuf::from(s.trim()).join("lib/rustlib/src/rust/library/std"))
        .filter(|p| p.exists());
    let lld = run_quiet(Command::new("rustc").args(["--print", "sysroot"]))
        .map(|s| PathBuf::from(s.trim()).join("lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld"))
        .filter(|p| p.exists());
    match (debian_std, lld) {
        (Some(_), Some(lld)) => Ok(BuildRoute::DebianBuildStd { rustc, lld }),
        (None, _) => {
            tried.push("Debian's rustc-web/rust-web-src are not installed".into());
            Err(BuildError::NoToolchain(tried.join("; ")))
        }
        (Some(_), None) => {
            tried.push("rust-lld was not found in the rustup sysroot".into());
            Err(BuildError::NoToolchain(tried.join("; ")))
        }
    }
}

/// Wraps a core module built with wit-bindgen into a component.
pub fn componentize(core: &[u8]) -> Result<Vec<u8>, String> {
    wit_component::ComponentEncoder::default()
        .module(core)
        .and_then(|e| e.validate(true).encode())
        .map_err(|e| format!("{e:#}"))
}

/// Builds the plugin crate in `dir` (release) and writes its component to
/// `output` (default: next to the core module, as `<crate>.component.wasm`).
pub fn build_plugin(dir: &Path, output: Option<&Path>) -> Result<BuildOutput, BuildError> {
    build_plugin_in(dir, output, None)
}

/// [`build_plugin`] with cargo's target directory set (`None`: the crate's
/// own). A build script must give one: it runs inside another cargo, whose
/// target directory is locked.
pub fn build_plugin_in(dir: &Path, output: Option<&Path>, target_dir: Option<&Path>) -> Result<BuildOutput, BuildError> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(BuildError::NoManifest(dir.to_owned()));
    }
    let manifest = manifest.canonicalize().map_err(|source| BuildError::Io { path: manifest.clone(), source })?;
    let route = choose_route()?;
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(["build", "--release", "--target", WASM_TARGET, "--message-format=json-render-diagnostics", "--manifest-path"])
        .arg(&manifest)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(t) = target_dir {
        // The outer build's settings are for the host, not for wasm.
        cmd.arg("--target-dir").arg(t).env_remove("CARGO_TARGET_DIR").env_remove("CARGO_ENCODED_RUSTFLAGS").env_remove("CARGO_BUILD_TARGET");
    }
    if let BuildRoute::DebianBuildStd { rustc, lld } = &route {
        cmd.args(["-Zbuild-std=std,panic_abort"])
            .env("RUSTC", rustc)
            .env("RUSTC_BOOTSTRAP", "1")
            .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", lld);
    }
    let out = cmd.output().map_err(BuildError::CargoMissing)?;
    if !out.status.success() {
        return Err(BuildError::Cargo { dir: dir.to_owned(), status: out.status.to_string() });
    }
    let core_module = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["manifest_path"].as_str().map(Path::new) == Some(manifest.as_path()))
        .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .find(|f| f.extension().is_some_and(|e| e == "wasm"))
        .ok_or_else(|| BuildError::NoArtifact(dir.to_owned()))?;
    let core = std::fs::read(&core_module).map_err(|source| BuildError::Io { path: core_module.clone(), source })?;
    let component = componentize(&core).map_err(|message| BuildError::Componentize { module: core_module.clone(), message })?;
    let target = output.map(Path::to_path_buf).unwrap_or_else(|| core_module.with_extension("component.wasm"));
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| BuildError::Io { path: parent.to_owned(), source })?;
    }
    // Atomic: a concurrent reader (parallel tests) never sees half a file.
    write_atomic(&target, &component).map_err(|source| BuildError::Io { path: target.clone(), source })?;
    Ok(BuildOutput { route, core_module, component: target, component_bytes: component.len() })
}

fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, data)?;
    std::fs::rename(tmp, path)
}
