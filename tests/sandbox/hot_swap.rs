//! Hot swap: a new instance takes over between two events with the old one's
//! state; no event is lost and none is processed twice, which shows as the
//! swapped run asking for exactly what an unswapped run asks for. A successor
//! that fails keeps the old one running.

use stratbox_engine::config::PluginSpec;
use stratbox_sandbox::Health;

use crate::support::{Outcome, Scenario, hostile, sma_cross};

fn intents_after_swap(successor: PluginSpec, at: usize) -> (Outcome, Result<stratbox_sandbox::SwapReport, String>) {
    let dir = tempfile::tempdir().unwrap();
    let (mut host, _tx) = Scenario::new(vec![sma_cross()]).host(dir.path());
    for _ in 0..at {
        assert!(host.step());
    }
    let next = host.factory().load(successor).expect("successor starts");
    let report = host.supervisor.swap("sma-cross", next).map_err(|e| e.to_string());
    while host.step() {}
    (Outcome { summary: host.summary(), intents: host.order_path.intent_log.take().unwrap() }, report)
}

#[test]
fn a_swap_mid_run_loses_and_repeats_nothing() {
    let reference = Scenario::new(vec![sma_cross()]).run();
    let expected = reference.intents_of("sma-cross");
    for at in [1, 9, 60, 119] {
        let (out, report) = intents_after_swap(sma_cross().named("sma-cross"), at);
        let report = report.expect("swap succeeds");
        assert!(report.state_bytes > 8, "state was handed over");
        assert_eq!(out.intents_of("sma-cross"), expected, "swap after event {at}");
        assert_eq!(out.summary.status.stats.events, 120);
        let v = out.plugin("sma-cross");
        assert_eq!((v.swaps, v.health), (1, Health::Running));
        eprintln!("swap after event {at}: events held {:?}, {} bytes of state", report.held, report.state_bytes);
    }
}

#[test]
fn a_successor_rejecting_the_state_leaves_the_old_one_running() {
    let reference = Scenario::new(vec![sma_cross()]).run();
    let (out, report) = intents_after_swap(hostile("none").named("sma-cross"), 40);
    let err = report.unwrap_err();
    assert!(err.contains("could not take over its predecessor's state") && err.contains("expected 8"), "{err}");
    assert_eq!(out.intents_of("sma-cross"), reference.intents_of("sma-cross"));
    let v = out.plugin("sma-cross");
    assert_eq!((v.swaps, v.health, v.version.as_str()), (0, Health::Running, "0.1.0"));
}

#[test]
fn a_successor_that_fails_to_load_never_reaches_the_loop() {
    let dir = tempfile::tempdir().unwrap();
    let (host, _tx) = Scenario::new(vec![sma_cross()]).host(dir.path());
    let garbage = dir.path().join("new-build.wasm");
    std::fs::write(&garbage, b"not a component").unwrap();
    let err = host.factory().load(PluginSpec::new(&garbage).named("sma-cross")).err().expect("refused").to_string();
    assert!(err.contains("not a WebAssembly file"), "{err}");
    let err = host.factory().load(sma_cross().named("sma-cross").param("slow", stratbox_engine::config::ParamInput::Integer(1))).err().unwrap().to_string();
    assert!(err.contains("parameter `slow` = 1 is outside [2, 5000]"), "{err}");
}
