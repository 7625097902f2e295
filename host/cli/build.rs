//! Builds the bundled plugins into components and embeds them in the binary,
//! so that `stratbox run` works from any folder, and a `cargo install`ed
//! binary carries its main job. They are built with their own target
//! directory under `OUT_DIR` (this build's is locked while it runs).
//!
//! Without a wasm toolchain the binary is built without them (with a
//! warning), and `stratbox run` then asks for `STRATBOX_PLUGIN_DIR`.

use std::path::{Path, PathBuf};

/// The bundled plugins: crate folder (from the repository root), file name.
const BUNDLED: [(&str, &str); 8] = [
    ("examples/sma-cross", "sma_cross.wasm"),
    ("plugins/zscore-guard", "zscore_guard.wasm"),
    ("plugins/stops", "stops.wasm"),
    ("plugins/vol-regime", "vol_regime.wasm"),
    ("plugins/jump-guard", "jump_guard.wasm"),
    ("plugins/breadth-guard", "breadth_guard.wasm"),
    ("plugins/spread-guard", "spread_guard.wasm"),
    ("plugins/ml-ensemble", "ml_ensemble.wasm"),
];

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for dir in ["sdk/src", "sdk/Cargo.toml", "wit", "plugins/Cargo.toml", "plugins/Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!("cargo:rerun-if-env-changed=STRATBOX_BUILD_ROUTE");
    let mut entries = Vec::new();
    for (crate_dir, file) in BUNDLED {
        let dir = root.join(crate_dir);
        println!("cargo:rerun-if-changed={}", dir.join("src").display());
        println!("cargo:rerun-if-changed={}", dir.join("Cargo.toml").display());
        let component = out.join(file);
        match stratbox_plugin_build::build_plugin_in(&dir, Some(&component), Some(&out.join("wasm-target"))) {
            Ok(_) => entries.push(format!("    (\"{file}\", include_bytes!(r\"{}\")),\n", component.display())),
            Err(e) => {
                println!("cargo:warning=the bundled plugin {crate_dir} was not built ({e}); this binary will need STRATBOX_PLUGIN_DIR");
                entries.clear();
                break;
            }
        }
    }
    let code = format!("/// The bundled plugins, built with this binary: (file name, component).\npub const BUNDLED: &[(&str, &[u8])] = &[\n{}];\n", entries.concat());
    std::fs::write(out.join("bundled.rs"), code).expect("writing bundled.rs");
}
