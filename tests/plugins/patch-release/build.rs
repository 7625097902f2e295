//! Derives the contract at 0.1.9 from the real `wit/stratbox.wit`, so this
//! fixture always stands for "the same contract, a later patch release".

fn main() {
    println!("cargo:rustc-env=FIXTURE_CONTRACT=0.1.9");
    let source = std::path::Path::new("../../../wit/stratbox.wit");
    println!("cargo:rerun-if-changed={}", source.display());
    let text = std::fs::read_to_string(source).expect("reading wit/stratbox.wit");
    assert!(text.contains("package stratbox:plugin@0.1.1;"), "the contract's version changed: update this fixture");
    let patched = text.replace("package stratbox:plugin@0.1.1;", "package stratbox:plugin@0.1.9;");
    std::fs::create_dir_all("wit").expect("creating wit/");
    // Rewrite only when different, so the bindings are not regenerated each build.
    if std::fs::read_to_string("wit/stratbox.wit").ok().as_deref() != Some(patched.as_str()) {
        std::fs::write("wit/stratbox.wit", patched).expect("writing wit/stratbox.wit");
    }
}
