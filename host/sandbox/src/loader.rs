//! Load-time checks: everything that can be said about a component before
//! any of its code runs, each failure with an error that names the cause.

use std::path::PathBuf;

use wasmtime::Engine;
use wasmtime::component::Component;

/// The contract this host implements (`wit/stratbox.wit`).
pub const CONTRACT_PACKAGE: &str = "stratbox:plugin";
/// Its version.
pub const CONTRACT_VERSION: &str = "0.1.1";
/// Interfaces of the contract a plugin may import: the whole grant.
pub const GRANTED_IMPORTS: [&str; 8] = ["types", "log", "clock", "orders", "kv", "portfolio", "market", "inference"];

/// Why a component was refused before it ran.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read plugin file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("component is {size} bytes, over the configured maximum of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("not a WebAssembly file: it starts with {found}, where a component starts with 00 61 73 6d (\"\\0asm\")")]
    NotWasm { found: String },
    #[error("this is a core WebAssembly module, not a component: build it with `stratbox plugin build`, which wraps the module in a component")]
    CoreModule,
    #[error("malformed component: {0}")]
    Malformed(String),
    #[error("imports `{name}`, which is outside the granted world (a plugin may import only {CONTRACT_PACKAGE}/{{types, log, clock, orders, kv, portfolio, market, inference}}@0.1)")]
    UnauthorisedImport { name: String },
    #[error("built for contract {CONTRACT_PACKAGE}@{plugin}, which this host ({CONTRACT_PACKAGE}@{host}) cannot run: {why}")]
    IncompatibleContract { plugin: String, host: &'static str, why: String },
    #[error("not a Stratbox plugin: it exports no `{CONTRACT_PACKAGE}/lifecycle` interface (its exports: {exports})")]
    NotAPlugin { exports: String },
    #[error("failed to compile the component: {0}")]
    Compile(String),
    #[error("failed to link the component against the host: {0}")]
    Link(String),
}

/// Checks the header and validates the whole binary, before compiling.
pub fn check_binary(bytes: &[u8], max_size: usize) -> Result<(), LoadError> {
    if bytes.len() > max_size {
        return Err(LoadError::TooLarge { size: bytes.len(), max: max_size });
    }
    if bytes.len() < 8 {
        if !bytes.is_empty() && b"\0asm".starts_with(&bytes[..bytes.len().min(4)]) {
            return Err(LoadError::Malformed(format!("truncated: {} bytes, shorter than the 8-byte header", bytes.len())));
        }
        return Err(LoadError::NotWasm { found: hex_prefix(bytes) });
    }
    if &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm { found: hex_prefix(bytes) });
    }
    match bytes[4..8] {
        [0x01, 0x00, 0x00, 0x00] => return Err(LoadError::CoreModule),
        [0x0d, 0x00, 0x01, 0x00] => {}
        _ => return Err(LoadError::Malformed(format!("unknown WebAssembly version/layer {}", hex_prefix(&bytes[4..8])))),
    }
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(bytes)
        .map(drop)
        .map_err(|e| LoadError::Malformed(format!("{} (at byte offset {} of {})", e.message(), e.offset(), bytes.len())))
}

fn hex_prefix(bytes: &[u8]) -> String {
    let shown: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    if shown.is_empty() { "nothing (empty file)".into() } else { shown.join(" ") }
}

/// A contract interface name, `stratbox:plugin/<iface>@<version>`, split.
fn contract_interface(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix(CONTRACT_PACKAGE)?.strip_prefix('/')?;
    rest.split_once('@')
}

/// Whether a plugin built for `plugin` runs on this host: semver as the
/// component model applies it (0.x: same minor; x >= 1: same major).
pub fn check_contract_version(plugin: &str) -> Result<(), LoadError> {
    let incompatible = |why: String| LoadError::IncompatibleContract { plugin: plugin.to_owned(), host: CONTRACT_VERSION, why };
    let p = semver::Version::parse(plugin).map_err(|e| incompatible(format!("its version is not semver ({e})")))?;
    let h = semver::Version::parse(CONTRACT_VERSION).expect("host contract version is semver");
    if p.major != h.major {
        return Err(incompatible(format!("major versions differ ({} vs {})", p.major, h.major)));
    }
    if h.major == 0 && p.minor != h.minor {
        return Err(incompatible(format!("0.x minor versions differ ({} vs {}), and 0.x minors are incompatible", p.minor, h.minor)));
    }
    Ok(())
}

/// What the load-time checks learned about a component.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ComponentInfo {
    /// SHA-256 of the component bytes.
    pub hash: String,
    pub size: usize,
    /// Contract version the plugin was built against.
    pub contract_version: String,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

/// Checks a compiled component's imports and exports against the granted world.
pub fn check_world(engine: &Engine, component: &Component, hash: String, size: usize) -> Result<ComponentInfo, LoadError> {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_owned()).collect();
    // The version first: a plugin of another contract line also imports
    // "unknown" interfaces, and the version is the real explanation.
    let version = exports
        .iter()
        .find_map(|n| contract_interface(n).filter(|(iface, _)| *iface == "lifecycle").map(|(_, v)| v.to_owned()));
    if let Some(v) = &version {
        check_contract_version(v)?;
    }
    let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_owned()).collect();
    for name in &imports {
        let granted = contract_interface(name).is_some_and(|(iface, v)| {
            GRANTED_IMPORTS.contains(&iface) && check_contract_version(v).is_ok()
        });
        if !granted {
            return Err(LoadError::UnauthorisedImport { name: name.clone() });
        }
    }
    let version = version.ok_or_else(|| LoadError::NotAPlugin { exports: if exports.is_empty() { "none".into() } else { exports.join(", ") } })?;
    Ok(ComponentInfo { hash, size, contract_version: version, imports, exports })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_component_model_semver() {
        assert!(check_contract_version("0.1.0").is_ok());
        assert!(check_contract_version("0.1.7").is_ok(), "patch releases are compatible");
        let e = check_contract_version("0.2.0").unwrap_err().to_string();
        assert!(e.contains("0.x minor versions differ"), "{e}");
        let e = check_contract_version("1.0.0").unwrap_err().to_string();
        assert!(e.contains("major versions differ (1 vs 0)"), "{e}");
    }

    #[test]
    fn headers_are_told_apart() {
        assert!(matches!(check_binary(b"hello world", 1 << 20), Err(LoadError::NotWasm { .. })));
        assert!(matches!(check_binary(b"\0asm\x01\0\0\0", 1 << 20), Err(LoadError::CoreModule)));
        assert!(matches!(check_binary(b"\0as", 1 << 20), Err(LoadError::Malformed(_))));
        assert!(matches!(check_binary(b"", 1 << 20), Err(LoadError::NotWasm { .. })));
        assert!(matches!(check_binary(&[0; 100], 10), Err(LoadError::TooLarge { size: 100, max: 10 })));
    }
}
