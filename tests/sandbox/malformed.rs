//! Files that are not components, or are broken ones, are refused with the
//! cause named, before any code runs; the host runs on.

use std::path::PathBuf;

use stratbox_engine::config::{PluginSpec, SandboxConfig};

use crate::bystander::refused;
use crate::support::{Scenario, component, core_module, repo, sma_cross};

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = repo().join("target/test-plugins/malformed");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn good_bytes() -> Vec<u8> {
    std::fs::read(component("examples/sma-cross")).unwrap()
}

#[test]
fn a_truncated_component_names_the_offset() {
    let bytes = good_bytes();
    let path = write("truncated.wasm", &bytes[..bytes.len() / 2]);
    refused(PluginSpec::new(path), &["malformed component", "at byte offset"]);
}

#[test]
fn a_text_file_is_not_wasm() {
    refused(PluginSpec::new(write("notes.wasm", b"just some notes")), &["not a WebAssembly file", "6a 75 73 74"]);
}

#[test]
fn an_empty_file_says_so() {
    refused(PluginSpec::new(write("empty.wasm", b"")), &["empty file"]);
}

#[test]
fn a_core_module_is_told_to_be_componentized() {
    let core = core_module("examples/sma-cross");
    refused(PluginSpec::new(core), &["core WebAssembly module, not a component", "stratbox plugin build"]);
}

#[test]
fn a_missing_file_is_named() {
    refused(PluginSpec::new("/nonexistent/plugin.wasm"), &["cannot read plugin file /nonexistent/plugin.wasm"]);
}

#[test]
fn a_component_over_the_size_limit_is_refused() {
    let size = good_bytes().len();
    let mut s = Scenario::new(vec![sma_cross().named("small-enough"), PluginSpec::new(component("plugins/zscore-guard"))]);
    s.sandbox = SandboxConfig { max_component_bytes: size + 1, ..Default::default() };
    let out = s.run();
    assert_eq!(out.names(), vec!["small-enough"]);
    let refusal = &out.summary.status.stats.refused[0];
    assert!(refusal.contains(&format!("over the configured maximum of {} bytes", size + 1)), "{refusal}");
}
