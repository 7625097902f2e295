//! Tests that need the real data in `../shared/data` are ignored, with that
//! reason in the test output, when it is absent (`cfg(shared_data)`).
//!
//! `report.html` inlines ECharts so it opens offline: the script comes from
//! the npm package pinned in `report/package-lock.json` (installed here with
//! `npm ci` when `node_modules` is missing) and is copied into `OUT_DIR`.
use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(shared_data)");
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it");
    let data = Path::new(&manifest).join("../../../shared/data");
    println!("cargo::rerun-if-changed={}", data.display());
    if data.is_dir() {
        println!("cargo::rustc-cfg=shared_data");
    }

    let report = Path::new(&manifest).join("report");
    let script = report.join("node_modules/echarts/dist/echarts.min.js");
    println!("cargo::rerun-if-changed={}", report.join("package-lock.json").display());
    println!("cargo::rerun-if-changed={}", script.display());
    if !script.exists() {
        let status = Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&report).status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => panic!("`npm ci` in {} failed ({s}): the report's charting script (echarts) is needed to build", report.display()),
            Err(e) => panic!("cannot run npm ({e}): install Node.js and npm (Debian: apt-get install nodejs npm) to build the report's charting script"),
        }
    }
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets it")).join("echarts.min.js");
    std::fs::copy(&script, &out).unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", script.display(), out.display()));
}
