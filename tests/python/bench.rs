//! Python plugins against Rust ones, side by side in one run, medians:
//!
//! 1. first compile (Cranelift, no cache) and a cached load of each component;
//! 2. instantiation from `InstancePre`, and resident memory per live instance;
//! 3. the cost of one `on-bar` call (sma-cross 10/30, warm);
//! 4. a full backtest of `daily/us_stocks_1500_2013_2017.csv.gz` (1,500
//!    stocks, 5 years) with the Python sma-cross against the Rust one: the
//!    research backtest (the host stepped over bars loaded once, risk engine,
//!    paper broker), on one thread. Goal: Python under 15 s.
//!
//! Memory is counted three ways, since VmRSS counts a page of the shared,
//! copy-on-write memory image once in every instance that maps it: VmRSS,
//! the proportional set size (shared pages split among their users) and the
//! private anonymous pages (what an instance really adds).
//!
//! `cargo bench -p stratbox-tests --bench python` (figure 4 needs ../shared/data;
//! componentize-py is set up as the tests set it up). `BENCH_ONLY=memory`
//! (or `compile`, `instantiate`, `call`, `backtest`; comma-separated) runs
//! only those figures.

#[path = "../support/mod.rs"]
mod support;

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stratbox_contract::{Bar, Instrument, RunMode};
use stratbox_engine::PluginWorld;
use stratbox_engine::config::{ControlConfig, FeedConfig, HostConfig, Mode, ParamInput, PluginSpec};
use stratbox_market::{ReplayConfig, ReplayData};
use stratbox_research::{Window, backtest, research_risk};
use stratbox_sandbox::{HostState, Metering, PluginFactory, PluginLimits, Sandbox, SandboxSettings};
use stratbox_trading::SharedWorld;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Resident memory of this process in KiB: (VmRSS, PSS, private anonymous).
fn resident_kb() -> [u64; 3] {
    let field = |file: &str, name: &str| -> u64 {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        text.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0)
    };
    [field("/proc/self/status", "VmRSS:"), field("/proc/self/smaps_rollup", "Pss:"), field("/proc/self/status", "RssAnon:")]
}

/// Whether `BENCH_ONLY` (unset: everything) names this figure.
fn wanted(figure: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| only.split(',').any(|f| f.trim() == figure))
}

fn sandbox(cache: Option<&Path>) -> Arc<Sandbox> {
    Arc::new(Sandbox::new(SandboxSettings { metering: Metering::FuelAndEpoch, cache_dir: cache.map(Path::to_path_buf), ..SandboxSettings::default() }).expect("sandbox"))
}

fn factory(sandbox: Arc<Sandbox>, n: usize) -> PluginFactory {
    let instruments = (0..n).map(|i| Instrument { id: i as u32, symbol: format!("S{i}"), tick_size: 0.01, lot_size: 1.0, currency: "USD".into() }).collect();
    PluginFactory::new(sandbox, Arc::new(PluginWorld(Arc::new(SharedWorld::new(0)))), None, RunMode::Backtest, instruments)
}

fn sma(path: &Path) -> PluginSpec {
    PluginSpec::new(path).param("fast", ParamInput::Integer(10)).param("slow", ParamInput::Integer(30))
}

fn row(what: &str, rust: String, python: String, ratio: String) {
    println!("| {what:<44} | {rust:>12} | {python:>12} | {ratio:>10} |");
}

fn ratio(rust: Duration, python: Duration) -> String {
    format!("{:.1}x", python.as_secs_f64() / rust.as_secs_f64())
}

fn main() {
    let rust = support::component("examples/sma-cross");
    let python = support::python_component("examples/sma-cross-py");
    let plugins = [("rust", rust.as_path()), ("python", python.as_path())];
    println!("components: rust {} bytes, python {} bytes", std::fs::metadata(&rust).unwrap().len(), std::fs::metadata(&python).unwrap().len());
    println!("\n| figure | Rust sma-cross | Python sma-cross | Python/Rust |\n|---|---|---|---|");

    let cache = tempfile::tempdir().unwrap();
    let sb = sandbox(Some(cache.path()));
    if wanted("compile") {
        compile_and_load(&plugins, &sb);
    }
    if wanted("instantiate") {
        instantiate(&plugins, &sb);
    }
    if wanted("memory") {
        memory(&plugins, &sb);
    }
    if wanted("call") {
        call(&plugins, &sb, cache.path());
    }
    if wanted("backtest") {
        full_backtest(&rust, &python);
    }
}

/// 1. Compile without a cache (3 each, in turns), then loads from a warm cache (9 each).
fn compile_and_load(plugins: &[(&str, &Path); 2], sb: &Sandbox) {
    let mut compile = [Vec::new(), Vec::new()];
    for _ in 0..3 {
        for (k, (_, path)) in plugins.iter().enumerate() {
            let sb = sandbox(None);
            let t = Instant::now();
            black_box(sb.prepare_file(path).expect("compile"));
            compile[k].push(t.elapsed());
        }
    }
    let (cr, cp) = (median(compile[0].clone()), median(compile[1].clone()));
    row("first compile (Cranelift, no cache)", format!("{cr:.2?}"), format!("{cp:.2?}"), ratio(cr, cp));
    let mut load = [Vec::new(), Vec::new()];
    for (k, (_, path)) in plugins.iter().enumerate() {
        sb.prepare_file(path).expect("fills the cache");
        for _ in 0..9 {
            let t = Instant::now();
            black_box(sb.prepare_file(path).expect("cached load"));
            load[k].push(t.elapsed());
        }
    }
    let (lr, lp) = (median(load[0].clone()), median(load[1].clone()));
    row("load from the compiled cache", format!("{lr:.2?}"), format!("{lp:.2?}"), ratio(lr, lp));
}

/// 2. Instantiation from `InstancePre` (after the first).
fn instantiate(plugins: &[(&str, &Path); 2], sb: &Sandbox) {
    let world: Arc<dyn stratbox_sandbox::WorldView> = Arc::new(PluginWorld(Arc::new(SharedWorld::new(0))));
    let mut inst = Vec::new();
    for (_, path) in plugins {
        let prepared = sb.prepare_file(path).unwrap();
        let state = || HostState::new(Arc::from("bench"), PluginLimits { memory_bytes: 256 << 20, ..PluginLimits::default() }, world.clone(), None);
        black_box(sb.instantiate(&prepared, state()).expect("instantiate"));
        let t: Vec<Duration> = (0..31)
            .map(|_| {
                let t = Instant::now();
                black_box(sb.instantiate(&prepared, state()).expect("instantiate"));
                t.elapsed()
            })
            .collect();
        inst.push(median(t));
    }
    row("instantiate (pooling, with Store)", format!("{:.2?}", inst[0]), format!("{:.2?}", inst[1]), ratio(inst[0], inst[1]));
}

/// 2b. Memory per live instance, described and started over 1,500 instruments
/// (as in the backtest) and over 10.
fn memory(plugins: &[(&str, &Path); 2], sb: &Arc<Sandbox>) {
    const N: u64 = 20;
    for instruments in [1_500, 10] {
        let f = factory(sb.clone(), instruments);
        let mut per_instance = Vec::new();
        for (_, path) in plugins {
            // One instance first: the compiled code is mapped and the pool warmed before counting.
            drop(f.load(sma(path)).expect("load"));
            let before = resident_kb();
            let live: Vec<_> = (0..N).map(|_| f.load(sma(path)).expect("load")).collect();
            let after = resident_kb();
            per_instance.push(std::array::from_fn::<f64, 3, _>(|k| after[k].saturating_sub(before[k]) as f64 / N as f64 / 1024.0));
            drop(live);
        }
        let (r, p) = (per_instance[0], per_instance[1]);
        let rows = [format!("VmRSS per live instance ({N} live, {instruments} instr.)"), "  proportional (PSS) per instance".into(), "  private (RssAnon) per instance".into()];
        for (k, what) in rows.iter().enumerate() {
            row(what, format!("{:.2} MiB", r[k]), format!("{:.2} MiB", p[k]), format!("{:.1}x", p[k] / r[k].max(1e-9)));
        }
    }
}

/// 3. One on-bar call: a warm sma-cross, alternating closes (a cross every other bar),
/// metered as in paper trading (fuel and epoch) and as live (epoch only, no fuel
/// instrumentation), to show what fuel costs each language.
fn call(plugins: &[(&str, &Path); 2], sb: &Arc<Sandbox>, cache: &Path) {
    let epoch_only = Arc::new(Sandbox::new(SandboxSettings { metering: Metering::Epoch, cache_dir: Some(cache.to_owned()), ..SandboxSettings::default() }).expect("sandbox"));
    let (paper, live) = (factory(sb.clone(), 1_500), factory(epoch_only, 1_500));
    for (what, f) in [("one on-bar call (warm, fuel + epoch)", &paper), ("one on-bar call (warm, epoch only)", &live)] {
        let mut call = Vec::new();
        for (_, path) in plugins {
            call.push(on_bar_cost(f, path));
        }
        row(what, format!("{:.2?}", call[0]), format!("{:.2?}", call[1]), ratio(call[0], call[1]));
    }
}

fn on_bar_cost(f: &PluginFactory, path: &Path) -> Duration {
    let mut p = f.load(sma(path)).expect("load").instance;
    let bar = Bar { instrument: 0, start: 0, period_secs: 86_400, open: 1.0, high: 1.0, low: 1.0, close: 1.0, volume: 1.0 };
    let iters = 20_000u32;
    let samples: Vec<Duration> = (0..15)
        .map(|s| {
            let t = Instant::now();
            for k in 0..iters {
                let close = 100.0 + f64::from((k + s) % 7);
                black_box(p.on_bar(Bar { close, start: i64::from(k), ..bar }).expect("on-bar"));
            }
            t.elapsed() / iters
        })
        .collect();
    median(samples)
}

/// 4. The full backtest on the real data.
fn full_backtest(rust: &Path, python: &Path) {
    let Some((dir, store_path)) = support::real_data_store("daily/us_stocks_1500_2013_2017.csv.gz") else {
        println!("(the full backtest needs it)");
        return;
    };
    let data = Arc::new(ReplayData::load(&store_path, &ReplayConfig::default()).unwrap());
    let config = |plugin: PluginSpec| {
        let mut c = HostConfig {
            mode: Mode::Backtest,
            data_dir: dir.path().to_owned(),
            feed: FeedConfig::Replay(ReplayConfig::default()),
            pace_ms: 0,
            status_secs: 0,
            control: ControlConfig { enabled: false, ..Default::default() },
            plugins: vec![plugin],
            ..HostConfig::default()
        };
        c.sandbox.cache_dir = Some(support::shared_cache());
        c.risk = research_risk(c.risk);
        c.risk.capital = 1e7;
        c
    };
    let configs = [config(sma(rust)), config(sma(python))];
    let (mut wall, mut fills) = ([Vec::new(), Vec::new()], [0usize; 2]);
    for _ in 0..3 {
        for k in 0..2 {
            let run = backtest(&data, &configs[k], Window::default()).expect("backtest");
            assert_eq!(run.bars as usize, data.bars(), "every bar replayed");
            wall[k].push(run.wall);
            fills[k] = run.fills.len();
        }
    }
    assert_eq!(fills[0], fills[1], "the Python and Rust plugins must trade alike");
    let (br, bp) = (median(wall[0].clone()), median(wall[1].clone()));
    let bars = data.bars() as f64;
    row(&format!("backtest: {} bars, {} stocks (median of 3)", data.bars(), data.instruments().len()), format!("{br:.2?}"), format!("{bp:.2?}"), ratio(br, bp));
    row("  per bar", format!("{:.0} ns", br.as_nanos() as f64 / bars), format!("{:.0} ns", bp.as_nanos() as f64 / bars), ratio(br, bp));
    println!("\n{} fills in each run; Python goal < 15 s: {:.2} s ({:.2}x the goal)", fills[0], bp.as_secs_f64(), bp.as_secs_f64() / 15.0);

    // What delivery alone costs a Python plugin: the hostile fixture in its
    // default mode ignores its bars, so what is left is the lifting of the
    // columns, the SDK's `Bar` objects and the call.
    let idle = config(PluginSpec::new(support::python_component("tests/plugins/hostile-py")));
    let runs: Vec<Duration> = (0..3).map(|_| backtest(&data, &idle, Window::default()).expect("backtest").wall).collect();
    let d = median(runs);
    println!("of which delivery (a Python plugin that ignores its bars): {d:.2?} ({:.0} ns/bar, {:.0}% of the Python sma-cross)", d.as_nanos() as f64 / bars, 100.0 * d.as_secs_f64() / bp.as_secs_f64());
}
