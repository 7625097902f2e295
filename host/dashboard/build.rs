//! The page's assets go into `OUT_DIR/assets`, which `rust-embed` embeds:
//! `web/src/*` and the chart library from the npm package pinned in
//! `web/package-lock.json` (installed with `npm ci` when missing; npm runs
//! at build time only, never at run time).
use std::path::Path;
use std::process::Command;

const CHARTS: &str = "node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.js";

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it");
    let web = Path::new(&manifest).join("web");
    let charts = web.join(CHARTS);
    println!("cargo::rerun-if-changed={}", web.join("package-lock.json").display());
    println!("cargo::rerun-if-changed={}", web.join("src").display());
    println!("cargo::rerun-if-changed={}", charts.display());
    if !charts.exists() {
        let status = Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&web).status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => panic!("`npm ci` in {} failed ({s}): the dashboard's chart library (lightweight-charts) is needed to build", web.display()),
            Err(e) => panic!("cannot run npm ({e}): install Node.js and npm (Debian: apt-get install nodejs npm) to build the dashboard's chart library"),
        }
    }
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets it")).join("assets");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("creating OUT_DIR/assets");
    let copy = |from: &Path, name: &str| std::fs::copy(from, out.join(name)).unwrap_or_else(|e| panic!("cannot copy {}: {e}", from.display()));
    for entry in std::fs::read_dir(web.join("src")).expect("web/src") {
        let path = entry.expect("web/src entry").path();
        println!("cargo::rerun-if-changed={}", path.display());
        copy(&path, &path.file_name().expect("a file").to_string_lossy());
    }
    copy(&charts, "lightweight-charts.js");
    copy(&web.join("node_modules/lightweight-charts/LICENSE"), "lightweight-charts.LICENSE.txt");
}
