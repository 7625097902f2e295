//! The order-path simulation as `cargo test` runs it: a fixed range of
//! seeds, every replay file kept from a failure (each the regression test of
//! a defect the simulation found), one seed's trace in two processes, and
//! the shrinker on a breach the checker is set to see.

use std::path::PathBuf;

use stratbox_simtest::{BrokerKind, Invariant, Options, Replay, Stats, generate, generate_for, run, run_with, shrink};

/// Seeds and steps per seed in `cargo test` (a debug build runs about 2,500 steps a second here).
const SEEDS: std::ops::Range<u64> = 0..40;
const STEPS: usize = 1_000;

#[test]
fn a_fixed_range_of_seeds_holds_every_invariant() {
    let dir = tempfile::tempdir().unwrap();
    let mut total = Stats::default();
    for seed in SEEDS {
        let outcome = run_with(&generate(seed, STEPS), dir.path(), Options::for_seed(seed));
        if let Some(v) = outcome.violation {
            panic!(
                "seed {seed}: step {}: {} violated: {}\nreplay: cargo run --release -p stratbox-simtest -- --seeds {seed} --steps {STEPS}",
                v.step,
                v.invariant.name(),
                v.message
            );
        }
        total.add(&outcome.stats);
    }
    assert_eq!(total.steps, (SEEDS.end - SEEDS.start) * STEPS as u64);
    for i in Invariant::ALL {
        assert!(total.checks.get(i.name()).copied().unwrap_or(0) > 0, "{} was never checked: {total:?}", i.name());
    }
    for kind in stratbox_simtest::sim::FAULT_KINDS {
        assert!(total.faults.get(kind).copied().unwrap_or(0) > 10, "{kind} injected too rarely: {total:?}");
    }
    assert!(total.crashes > 100, "{total:?}");
}

#[test]
fn every_replay_file_holds() {
    let dir = tempfile::tempdir().unwrap();
    let replays = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("replays");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&replays).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "json")).collect();
    files.sort();
    assert!(!files.is_empty(), "no replay files in {}", replays.display());
    for file in files {
        let replay: Replay = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let options = Options { latency_ms: replay.latency_ms, broker: replay.broker, seed: replay.seed, ..Options::default() };
        let outcome = run_with(&replay.ops, dir.path(), options);
        assert!(outcome.violation.is_none(), "{} ({}) fails again: {:?}", file.display(), replay.found, outcome.violation);
    }
}

#[test]
fn one_seed_gives_one_trace_in_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    let ops = generate(7, 600);
    let options = Options::for_seed(7);
    let here = run_with(&ops, dir.path(), options).trace;
    assert_eq!(run_with(&ops, dir.path(), options).trace, here, "twice in one process");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_simtest"))
        .args(["--seeds", "7", "--steps", "600", "--traces", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("seed 7: trace {here}")), "another process, another trace?\n{stdout}");
    assert_ne!(run_with(&generate(8, 600), dir.path(), Options::for_seed(8)).trace, here, "another seed, another trace");
}

/// With the checker's order cap set below the host's (100), the harness
/// sees orders of 51 to 100 pass "its" cap, and shrinks the run to the few
/// operations that make one: a price and an order.
#[test]
fn a_breach_is_caught_and_shrunk_to_a_few_operations() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options { order_cap: 50.0, ..Options::default() };
    let ops = generate(3, 1_000);
    let v = run_with(&ops, dir.path(), options).violation.expect("orders above 50 pass the host's cap of 100");
    assert_eq!(v.invariant, Invariant::NoNewRisk, "{v:?}");
    let (small, last) = shrink(&ops, v.invariant, dir.path(), 500, options);
    assert_eq!(last.invariant, Invariant::NoNewRisk);
    assert!(small.len() <= 3, "shrunk to {} operations: {small:?}", small.len());
    assert!(run_with(&small, dir.path(), options).violation.is_some(), "the shrunk run still fails");
    assert!(run(&small, dir.path()).violation.is_none(), "and holds under the host's own cap");
}

/// Seeds against Capital.com (the real broker worker and REST client, the
/// mock's handlers in process, one paused clock) in `cargo test`: a debug
/// build runs a few hundred steps a second here, hedging about half that.
const CAPITAL_SEEDS: std::ops::Range<u64> = 0..8;
const CAPITAL_STEPS: usize = 300;

#[test]
fn capital_com_seeds_hold_every_invariant_in_netting_and_hedging_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let mut total = Stats::default();
    for broker in [BrokerKind::Netting, BrokerKind::Hedging] {
        for seed in CAPITAL_SEEDS {
            let outcome = run_with(&generate_for(seed, CAPITAL_STEPS, true), dir.path(), Options::for_broker(seed, broker));
            if let Some(v) = outcome.violation {
                panic!(
                    "seed {seed} ({broker:?}): step {}: {} violated: {}\nreplay: cargo run --release -p stratbox-simtest -- --seeds {seed} --steps {CAPITAL_STEPS} --broker {}",
                    v.step,
                    v.invariant.name(),
                    v.message,
                    if broker == BrokerKind::Netting { "netting" } else { "hedging" }
                );
            }
            total.add(&outcome.stats);
        }
    }
    for i in Invariant::ALL {
        assert!(total.checks.get(i.name()).copied().unwrap_or(0) > 0, "{} was never checked: {total:?}", i.name());
    }
    for kind in stratbox_simtest::sim::CAPITAL_FAULT_KINDS {
        assert!(total.faults.get(kind).copied().unwrap_or(0) > 0, "{kind} never injected: {total:?}");
    }
    assert!(total.crashes > 20, "{total:?}");
}

#[test]
fn a_capital_com_seed_gives_one_trace_in_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    let ops = generate_for(5, 300, true);
    let options = Options::for_broker(5, BrokerKind::Hedging);
    let here = run_with(&ops, dir.path(), options).trace;
    assert_eq!(run_with(&ops, dir.path(), options).trace, here, "twice in one process");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_simtest"))
        .args(["--seeds", "5", "--steps", "300", "--broker", "hedging", "--traces", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("seed 5: trace {here}")), "another process, another trace?\n{stdout}");
    let netting = run_with(&ops, dir.path(), Options::for_broker(5, BrokerKind::Netting)).trace;
    assert_ne!(netting, here, "another account, another trace");
}
