//! Unbounded recursion exhausts the plugin's stack, never the host's. Rust on
//! wasm32 keeps large frames on a shadow stack in linear memory, which runs
//! off the bottom of memory (an out-of-bounds trap) before the engine's call
//! stack limit; plain recursion hits the engine's limit.

use crate::bystander::quarantined;
use crate::support::hostile;

#[test]
fn unbounded_recursion_overflows_the_wasm_stack() {
    quarantined(hostile("recursion"), |s| s, &["overflowed its call stack", "`on-bars`"]);
}

#[test]
fn recursion_with_large_frames_runs_off_linear_memory() {
    quarantined(hostile("deep-frames"), |s| s, &["trapped in `on-bars`", "out of bounds memory access"]);
}
