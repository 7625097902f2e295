//! Shared by the integration tests: builds test plugins from source into
//! components (once per process), and runs the host over a seeded simulated
//! market with a set of plugins, recording what each plugin asked for.
#![allow(dead_code)] // each test binary uses a different part

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use stratbox_engine::config::{FeedConfig, HostConfig, Mode, ParamInput, PluginSpec, RestartPolicy, SandboxConfig};
use stratbox_market::{SimulatedMarket, SimulatorConfig, Timestamp};
use stratbox_engine::{Host, RunOptions, RunSummary};
use stratbox_contract::Intent;
use stratbox_engine::PluginView;

pub fn repo() -> PathBuf {
    // The tests crate and the host's crates sit at different depths below it.
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).canonicalize().expect("manifest dir");
    here.ancestors().find(|p| p.join("wit/stratbox.wit").is_file()).expect("the repository root (it holds wit/stratbox.wit)").to_path_buf()
}

/// The component built from the crate at `crate_dir` (relative to the repo),
/// rebuilt at most once per test process.
pub fn component(crate_dir: &str) -> PathBuf {
    built(crate_dir).0
}

/// The core module the component of `crate_dir` was made from (wherever cargo put it).
pub fn core_module(crate_dir: &str) -> PathBuf {
    built(crate_dir).1
}

/// (component, core module) of `crate_dir`, built at most once per test process.
fn built(crate_dir: &str) -> (PathBuf, PathBuf) {
    static BUILT: OnceLock<Mutex<HashMap<String, (PathBuf, PathBuf)>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.get(crate_dir) {
        return p.clone();
    }
    let name = Path::new(crate_dir).file_name().unwrap().to_string_lossy().replace('-', "_");
    let out = repo().join("target/test-plugins").join(format!("{name}.wasm"));
    let r = stratbox_authoring::build_plugin(&repo().join(crate_dir), Some(&out))
        .unwrap_or_else(|e| panic!("building {crate_dir}: {e}"));
    let paths = (r.component.clone(), r.core_module.clone());
    built.insert(crate_dir.to_owned(), paths.clone());
    paths
}

/// Where the Python tests' componentize-py lives unless
/// `STRATBOX_COMPONENTIZE_PY` names one: one venv for every project.
fn python_tools() -> PathBuf {
    repo().join("target/test-plugins/python-tools")
}

/// The tests' componentize-py (set up in [`python_tools`] when missing).
pub fn python_tools_componentize_py() -> PathBuf {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| stratbox_authoring::find_componentize_py(&python_tools()).unwrap_or_else(|e| panic!("{e}"))).clone()
}

/// The compiled-component cache the Python tests share: a Python component
/// takes seconds to compile (more under a debug host), a cache hit 10-20 ms.
pub fn shared_cache() -> PathBuf {
    repo().join("target/test-plugins/compiled")
}

/// The component of the Python project at `project_dir` (relative to the
/// repo), built with componentize-py and compiled into [`shared_cache`] at
/// most once per test process, so tests running in parallel load it from
/// the cache instead of compiling it side by side.
pub fn python_component(project_dir: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.get(project_dir) {
        return p.clone();
    }
    let project = stratbox_authoring::PythonProject::open(&repo().join(project_dir))
        .unwrap_or_else(|e| panic!("{project_dir}: {e}"))
        .unwrap_or_else(|| panic!("{project_dir} has no pyproject.toml"));
    let exe = python_tools_componentize_py();
    let name = Path::new(project_dir).file_name().unwrap().to_string_lossy().replace('-', "_");
    let out = repo().join("target/test-plugins").join(format!("{name}.wasm"));
    let started = std::time::Instant::now();
    let r = stratbox_authoring::build_python_with(&project, Some(&out), &exe).unwrap_or_else(|e| panic!("building {project_dir}: {e}"));
    eprintln!("{project_dir}: componentize-py built {} bytes in {:.1?}", r.component_bytes, started.elapsed());
    // One bar through a backtest host: the engine the scenarios use compiles it into the cache.
    let started = std::time::Instant::now();
    let mut warm = Scenario::new(vec![PluginSpec::new(&r.component)]).shared_cache();
    warm.bars = 1;
    warm.run();
    eprintln!("{project_dir}: compiled into {} in {:.1?}", shared_cache().display(), started.elapsed());
    built.insert(project_dir.to_owned(), r.component.clone());
    r.component
}

/// The well-behaved bystander. Its wall-clock deadline is generous: on a
/// loaded CI machine a descheduled thread must not make *it* miss one.
pub fn sma_cross() -> PluginSpec {
    let mut spec = PluginSpec::new(component("examples/sma-cross"))
        .param("fast", ParamInput::Integer(3))
        .param("slow", ParamInput::Integer(8));
    spec.limits.deadline_ms = Some(10_000);
    spec
}

pub fn hostile(mode: &str) -> PluginSpec {
    let mut spec = PluginSpec::new(component("tests/plugins/hostile")).named("hostile").param("mode", ParamInput::Text(mode.into()));
    spec.restart = RestartPolicy { max_restarts: 0, ..Default::default() };
    spec
}

/// A bounded run over the seeded simulator.
pub struct Scenario {
    pub mode: Mode,
    pub instruments: usize,
    pub bars: u64,
    pub plugins: Vec<PluginSpec>,
    pub sandbox: SandboxConfig,
    pub models: Vec<stratbox_engine::ModelDecl>,
}

impl Scenario {
    pub fn new(plugins: Vec<PluginSpec>) -> Self {
        Self { mode: Mode::Backtest, instruments: 5, bars: 120, plugins, sandbox: SandboxConfig::default(), models: Vec::new() }
    }

    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Compiled components from [`shared_cache`] instead of the run's own folder.
    pub fn shared_cache(mut self) -> Self {
        self.sandbox.cache_dir = Some(shared_cache());
        self
    }

    pub fn config(&self, data_dir: &Path) -> HostConfig {
        HostConfig {
            mode: self.mode,
            data_dir: data_dir.to_owned(),
            feed: FeedConfig::Simulator(SimulatorConfig { instruments: self.instruments, bars: Some(self.bars), seed: 7, ..Default::default() }),
            pace_ms: 0,
            status_secs: 0,
            sandbox: self.sandbox.clone(),
            control: stratbox_engine::config::ControlConfig { enabled: false, ..Default::default() },
            plugins: self.plugins.clone(),
            models: self.models.clone(),
            ..HostConfig::default()
        }
    }

    /// A host ready to run (plugins started), with intent recording on.
    pub fn host(&self, data_dir: &Path) -> (Host, mpsc::Sender<stratbox_engine::Command>) {
        let config = self.config(data_dir);
        let FeedConfig::Simulator(sim) = &config.feed else { unreachable!("scenarios use the simulator") };
        let feed = Box::new(SimulatedMarket::new(*sim));
        let (tx, rx) = mpsc::channel();
        let mut host = Host::new(config, feed, rx).expect("host starts");
        host.order_path.intent_log = Some(Vec::new());
        (host, tx)
    }

    pub fn run(&self) -> Outcome {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut host, _tx) = self.host(dir.path());
        let summary = host.run(&RunOptions::default());
        Outcome { summary, intents: host.order_path.intent_log.take().unwrap_or_default() }
    }
}

pub struct Outcome {
    pub summary: RunSummary,
    pub intents: Vec<(Timestamp, Arc<str>, Intent)>,
}

impl Outcome {
    pub fn plugin(&self, name: &str) -> &PluginView {
        self.summary.plugins.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("no plugin {name} in {:?}", self.names()))
    }

    pub fn names(&self) -> Vec<&str> {
        self.summary.plugins.iter().map(|p| p.name.as_str()).collect()
    }

    /// What `name` asked for, with timestamps.
    pub fn intents_of(&self, name: &str) -> Vec<(Timestamp, Intent)> {
        self.intents.iter().filter(|(_, p, _)| &**p == name).map(|(t, _, i)| (*t, *i)).collect()
    }
}

/// A sled market store of `instruments` x `days` daily bars from 2010-01-01,
/// each a mean-reverting walk that crosses often (so sma-cross trades): the
/// replay benches' data.
pub fn replay_store(path: &Path, instruments: u32, days: i64) {
    use stratbox_market::store::{MarketStore, PriceSource, StoreConfig};
    use stratbox_market::{Bar, NANOS_PER_SEC};
    let mut store = MarketStore::open(path, StoreConfig::default()).unwrap();
    let t0 = 1_262_304_000 * NANOS_PER_SEC;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..instruments {
        let id = store.instrument_id(&format!("S{i:03}")).unwrap();
        let (base, mut price) = (20.0 + f64::from(i % 200), 20.0 + f64::from(i % 200));
        for d in 0..days {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let shock = ((seed % 2001) as f64 - 1000.0) / 1000.0 * 0.02;
            price = (price * (1.0 + shock) + 0.05 * (base - price)).max(1.0);
            let p = (price * 100.0).round() / 100.0;
            let bar = Bar { instrument: id, start: t0 + d * 86_400 * NANOS_PER_SEC, period_secs: 86_400, open: p, high: p * 1.01, low: p * 0.99, close: p, volume: 1e5 };
            store.append_bar(&bar, PriceSource::Trade).unwrap();
        }
        store.commit().unwrap();
    }
    store.seal_all().unwrap();
    store.flush().unwrap();
}

/// The replay benches' set-up: sma-cross 3/8 (built from source) and a
/// temporary folder whose `market/` holds [`replay_store`]'s bars.
pub fn replay_bench(instruments: u32, days: i64) -> (PluginSpec, tempfile::TempDir) {
    let sma = PluginSpec::new(component("examples/sma-cross")).param("fast", ParamInput::Integer(3)).param("slow", ParamInput::Integer(8));
    let dir = tempfile::tempdir().unwrap();
    let built = std::time::Instant::now();
    replay_store(&dir.path().join("market"), instruments, days);
    println!("store: {instruments} instruments x {days} daily bars built in {:.1?}", built.elapsed());
    (sma, dir)
}

/// A backtest of the daily replay in `data_dir/market`, as fast as possible,
/// with the limits raised so every order reaches the broker (the benches
/// measure the path, not the limits); no control API, no dashboard.
pub fn replay_host_config(data_dir: &Path, plugins: Vec<PluginSpec>) -> HostConfig {
    let mut c = HostConfig {
        mode: Mode::Backtest,
        data_dir: data_dir.to_owned(),
        feed: FeedConfig::Replay(stratbox_market::ReplayConfig { period_secs: 86_400, ..Default::default() }),
        pace_ms: 0,
        status_secs: 0,
        plugins,
        ..HostConfig::default()
    };
    c.control.enabled = false;
    c.dashboard.enabled = false;
    let r = &mut c.risk;
    (r.max_order_notional, r.max_position_notional, r.max_gross_exposure, r.max_net_exposure) = (1e12, 1e12, 1e15, 1e15);
    (r.max_concentration, r.max_open_orders, r.orders_per_sec_per_plugin, r.orders_per_sec) = (1e6, 100_000, 1_000_000, 1_000_000);
    (r.capital, r.max_drawdown) = (1e9, 1.0);
    c
}

/// A temporary sled store of `../shared/data/<rel>` (imported, every bar
/// kept), for benches on real data; `None`, with a message, when it is absent.
pub fn real_data_store(rel: &str) -> Option<(tempfile::TempDir, PathBuf)> {
    use stratbox_market::store::{ImportOptions, MarketStore, StoreConfig, import_file};
    let file = repo().join("../shared/data").join(rel);
    if !file.exists() {
        println!("skipped: {} is absent", file.display());
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("market");
    let started = std::time::Instant::now();
    let mut store = MarketStore::open(&path, StoreConfig::default()).unwrap();
    let report = import_file(&mut store, &file, &ImportOptions::default()).unwrap();
    println!("import of {rel}: {} bars in {:.1?}", report.bars_built, started.elapsed());
    Some((dir, path))
}
