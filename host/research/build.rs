//! Tests that need the real data in `../shared/data` are ignored, with that
//! reason in the test output, when it is absent (`cfg(shared_data)`).
fn main() {
    println!("cargo::rustc-check-cfg=cfg(shared_data)");
    let data = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("../../../shared/data");
    println!("cargo::rerun-if-changed={}", data.display());
    if data.is_dir() {
        println!("cargo::rustc-cfg=shared_data");
    }
}
