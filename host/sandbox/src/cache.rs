//! On-disk cache of compiled components, keyed by the component's content
//! hash and the engine's compatibility hash, so a plugin compiles once per
//! host build and configuration.

use std::fs;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where compiled components live.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
}

/// Outcome of a cache lookup, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
    /// The entry existed but could not be loaded; it was rebuilt.
    Rebuilt,
}

/// SHA-256 of a component's bytes, in hex.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl ComponentCache {
    /// A cache in `dir`, created (mode 0700) if needed.
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        }
        Ok(Self { dir })
    }

    fn entry(&self, engine: &Engine, hash: &str) -> PathBuf {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        self.dir.join(format!("{hash}-{:016x}.cwasm", h.finish()))
    }

    /// The compiled form of `bytes` (whose hash is `hash`), from the cache or
    /// freshly compiled and stored.
    pub fn load_or_compile(&self, engine: &Engine, bytes: &[u8], hash: &str) -> wasmtime::Result<(Component, CacheOutcome)> {
        let path = self.entry(engine, hash);
        let mut outcome = CacheOutcome::Miss;
        if path.exists() {
            // SAFETY: entries are written only by `store` below, into a 0700
            // directory of ours, from `Component::serialize` of this engine's
            // configuration (the file name carries its compatibility hash).
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(c) => return Ok((c, CacheOutcome::Hit)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "compiled-component cache entry unusable; recompiling");
                    outcome = CacheOutcome::Rebuilt;
                }
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Err(e) = stratbox_contract::util::write_atomic(&path, &component.serialize()?, true) {
            tracing::warn!(path = %path.display(), error = %e, "could not write the compiled-component cache");
        }
        Ok((component, outcome))
    }
}
