//! `wit/stratbox.wit` is the contract as released at 0.1.0, frozen: plugins
//! built against it must keep loading on every later 0.1 host.

fn main() {
    println!("cargo:rustc-env=FIXTURE_CONTRACT=0.1.0");
    println!("cargo:rerun-if-changed=wit/stratbox.wit");
}
