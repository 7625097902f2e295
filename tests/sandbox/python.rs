//! Python plugins (componentize-py, CPython 3.14 inside the component) run
//! in the same sandbox as Rust ones: the same world with no WASI, the same
//! caps and quarantine. The examples give exactly what their Rust
//! counterparts give; every attack of the hostile one is contained with a
//! named reason while the Rust sma-cross beside it is unchanged.

use stratbox_engine::config::{Mode, ParamInput, PluginSpec, RestartPolicy};
use stratbox_sandbox::{Health, LimitOverrides};
use stratbox_trading::report::{self, Filter};

use crate::bystander::{quarantined, refused_in};
use crate::support::{Scenario, component, python_component, sma_cross};

fn sma_cross_py() -> PluginSpec {
    let mut spec = PluginSpec::new(python_component("examples/sma-cross-py"))
        .named("sma-cross-py")
        .param("fast", ParamInput::Integer(3))
        .param("slow", ParamInput::Integer(8));
    spec.limits.deadline_ms = Some(10_000);
    spec
}

fn hostile_py(mode: &str) -> PluginSpec {
    let mut spec = PluginSpec::new(python_component("tests/plugins/hostile-py")).named("hostile-py").param("mode", ParamInput::Text(mode.into()));
    spec.restart = RestartPolicy { max_restarts: 0, ..Default::default() };
    spec
}

#[test]
fn the_python_sma_cross_asks_for_exactly_what_the_rust_one_asks_for() {
    let mut s = Scenario::new(vec![sma_cross(), sma_cross_py()]).shared_cache();
    (s.instruments, s.bars) = (12, 400);
    let out = s.run();
    let (rust, python) = (out.intents_of("sma-cross"), out.intents_of("sma-cross-py"));
    assert!(rust.len() > 100, "the comparison needs trades: {}", rust.len());
    assert_eq!(python, rust, "same intents at the same market times");
    let v = out.plugin("sma-cross-py");
    assert_eq!((v.health, v.faults), (Health::Running, 0));
    assert_eq!(v.roles, vec!["strategy"]);
}

#[test]
fn a_rust_plugin_hot_swaps_into_its_python_twin_with_its_state() {
    let reference = Scenario::new(vec![sma_cross()]).run();
    let dir = tempfile::tempdir().unwrap();
    let (mut host, _tx) = Scenario::new(vec![sma_cross()]).shared_cache().host(dir.path());
    for _ in 0..60 {
        assert!(host.step());
    }
    let next = host.factory().load(sma_cross_py().named("sma-cross")).expect("the Python build loads");
    let report = host.supervisor.swap("sma-cross", next).expect("swap succeeds");
    assert!(report.state_bytes > 8, "the Rust plugin's state went to the Python one");
    while host.step() {}
    let intents: Vec<_> = host.order_path.intent_log.take().unwrap().into_iter().map(|(t, _, i)| (t, i)).collect();
    assert_eq!(intents, reference.intents_of("sma-cross"), "nothing lost or repeated across the swap and the languages");
    let v = host.summary().plugins.into_iter().find(|p| p.name == "sma-cross").unwrap();
    assert_eq!((v.swaps, v.health, v.version.as_str()), (1, Health::Running, "0.1.0"));
}

#[test]
fn the_python_breadth_guard_raises_the_rust_ones_alarms() {
    let params = |spec: PluginSpec| {
        spec.param("drop", ParamInput::Number(0.001))
            .param("breadth", ParamInput::Number(0.6))
            .param("severe_breadth", ParamInput::Number(0.3))
            .param("min_instruments", ParamInput::Integer(4))
    };
    let rust = params(PluginSpec::new(component("plugins/breadth-guard")).named("breadth-guard"));
    let python = params(PluginSpec::new(python_component("examples/breadth-guard-py")).named("breadth-guard-py"));
    let mut s = Scenario::new(vec![rust, python]).shared_cache();
    (s.instruments, s.bars) = (8, 600);
    let dir = tempfile::tempdir().unwrap();
    let (mut host, _tx) = s.host(dir.path());
    host.run(&stratbox_engine::RunOptions::default());
    let entries = host.order_path.journal_page(0, 1_000_000).unwrap();
    let alarms = report::alarms(&entries, &Filter::default());
    let of = |source: &str| -> Vec<_> {
        alarms.iter().filter(|r| r.kind == "alarm" && r.source == source).map(|r| (r.time, r.level.clone(), r.reason.clone())).collect()
    };
    let expected = of("breadth-guard");
    assert!(expected.len() >= 3, "the comparison needs alarms: {expected:?}");
    assert_eq!(of("breadth-guard-py"), expected);
}

#[test]
fn inspect_says_python_and_which_cpython() {
    let r = stratbox_authoring::inspect(&python_component("examples/sma-cross-py")).unwrap();
    assert_eq!((r.language, r.runtime.as_deref()), ("python", Some("CPython 3.14.0")));
    assert_eq!((r.name.as_str(), r.roles.clone()), ("sma-cross-py", vec!["strategy"]));
    assert!(r.imports.iter().all(|i| i.starts_with("stratbox:plugin/")), "no WASI: {:?}", r.imports);
    assert_eq!(stratbox_authoring::inspect(&sma_cross().path).unwrap().language, "rust");
}

// --- the hostile suite ------------------------------------------------------------------------

#[test]
fn an_infinite_loop_runs_out_of_fuel() {
    let spec = PluginSpec { limits: LimitOverrides { fuel_per_callback: Some(300_000_000), ..Default::default() }, ..hostile_py("spin") };
    quarantined(spec, Scenario::shared_cache, &["ran out of fuel", "300000000", "`on-bars`"]);
}

#[test]
fn a_memory_bomb_hits_the_cap() {
    let spec = PluginSpec { limits: LimitOverrides { memory_bytes: Some(48 << 20), ..Default::default() }, ..hostile_py("memory-bomb") };
    quarantined(spec, Scenario::shared_cache, &["linear memory cap hit", "its limit is 50331648", "`on-bars`"]);
}

#[test]
fn recursion_is_a_recursion_error_with_its_traceback() {
    quarantined(hostile_py("recursion"), Scenario::shared_cache, &["raised an exception in `on-bars`", "RecursionError", "_recurse"]);
}

#[test]
fn recursion_past_pythons_limit_is_stopped_too() {
    // With the limit lifted, CPython 3.14 keeps pushing frames onto its heap-allocated
    // data stack: its C-stack check, the wasm stack's end or the memory cap stops it.
    let out = quarantined(hostile_py("deep-recursion"), Scenario::shared_cache, &["`on-bars`"]);
    let reason = out.plugin("hostile-py").reason.clone().unwrap_or_default();
    let named = ["RecursionError", "overflowed its call stack", "linear memory cap hit"];
    assert!(named.iter().any(|n| reason.contains(n)), "{reason}");
}

#[test]
fn an_exception_is_a_named_fault_with_the_python_traceback() {
    let out = quarantined(
        hostile_py("exception"),
        Scenario::shared_cache,
        &["raised an exception in `on-bars`", "Traceback (most recent call last)", "hostile.py", "in lookup", "KeyError: 'missing'"],
    );
    assert_eq!(out.plugin("hostile-py").faults, 1);
}

#[test]
fn an_exception_in_init_refuses_the_plugin_with_the_traceback() {
    refused_in(hostile_py("init-exception"), Scenario::shared_cache, &["refused to start", "RuntimeError: no edge in this market", "hostile.py"]);
}

#[test]
fn a_flood_of_intents_hits_the_intent_limit() {
    quarantined(hostile_py("intent-flood"), Scenario::shared_cache, &["submitted more than 1024 intents in one `on-bars` call"]);
}

#[test]
fn a_flood_of_logs_is_quarantined() {
    quarantined(hostile_py("log-flood"), Scenario::shared_cache, &["`on-bars`", "log"]);
}

#[test]
fn opening_a_file_is_refused_by_name() {
    quarantined(hostile_py("open-file"), Scenario::shared_cache, &["SandboxError", "open() is not available in a Stratbox plugin"]);
}

#[test]
fn a_socket_is_refused_by_name() {
    quarantined(hostile_py("socket"), Scenario::shared_cache, &["socket.create_connection() is not available", "no network"]);
}

#[test]
fn a_module_first_imported_in_a_handler_is_refused_by_name() {
    quarantined(hostile_py("import-in-handler"), Scenario::shared_cache, &["ImportError", "module `statistics` imported for the first time inside a handler"]);
}

#[test]
fn the_wall_clock_is_refused_by_name() {
    quarantined(hostile_py("wall-clock"), Scenario::shared_cache, &["time.time() is not available", "ctx.now()"]);
}

#[test]
fn a_python_plugin_under_a_live_deadline_is_stopped_by_it() {
    // Paper mode meters by epoch as well: the wall-clock deadline stops the loop.
    let mut spec = hostile_py("spin");
    spec.limits.deadline_ms = Some(200);
    let out = quarantined(spec, |s| s.mode(Mode::Paper).shared_cache(), &["`on-bars`"]);
    let reason = out.plugin("hostile-py").reason.clone().unwrap_or_default();
    assert!(reason.contains("missed its deadline") || reason.contains("ran out of fuel"), "{reason}");
}
