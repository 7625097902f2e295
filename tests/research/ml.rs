//! The ML ensemble on real data: the rows the host's models receive from the
//! plugin at run time (recorded where the host serves them) are, bit for bit,
//! the rows `stratbox ml dataset` writes for the same bars; and the ensemble
//! trades.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};

use stratbox_engine::config::{HostConfig, Mode, ParamInput, PluginSpec};
use stratbox_engine::{Host, ModelDecl};
use stratbox_market::store::{ImportOptions, MarketStore, StoreConfig, import_file};
use stratbox_market::{ReplayConfig, ReplayData};
use stratbox_research::{Window, dataset};
use stratbox_sandbox::{InferenceError, ModelInfo, ModelProvider};
use stratbox_trading::PaperBroker;

use super::support;

/// The host's models, recording every call's handle and rows.
struct Recording {
    inner: Arc<stratbox_engine::HostModels>,
    calls: Mutex<Vec<(u32, Vec<f32>)>>,
}

impl ModelProvider for Recording {
    fn resolve(&self, plugin: &str, name: &str) -> Result<ModelInfo, InferenceError> {
        self.inner.resolve(plugin, name)
    }
    fn predict(&self, handle: u32, rows: &[f32]) -> Result<Vec<f32>, String> {
        self.calls.lock().unwrap().push((handle, rows.to_vec()));
        self.inner.predict(handle, rows)
    }
}

const MEMBERS: [&str; 3] = ["gbdt-spy", "lstm-spy", "transformer-spy"];

fn store(market: &Path, data_root: &Path) {
    let mut store = MarketStore::open(market, StoreConfig::default()).unwrap();
    for symbol in ["SPY", "QQQ", "IWM"] {
        let file = data_root.join(format!("lean/equity_usa_daily/{}.csv", symbol.to_lowercase()));
        import_file(&mut store, &file, &ImportOptions { symbol: Some(symbol.into()), ..ImportOptions::default() }).unwrap();
    }
}

#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data (real market data)")]
fn the_rows_the_models_get_at_run_time_are_the_datasets_bit_for_bit() {
    let data_root = support::repo().join("../shared/data");
    let dir = tempfile::tempdir().unwrap();
    let market = dir.path().join("market");
    store(&market, &data_root);
    let data = Arc::new(ReplayData::load(&market, &ReplayConfig::default()).unwrap());

    let decls: Vec<ModelDecl> = MEMBERS
        .iter()
        .map(|m| ModelDecl { name: m.to_string(), path: support::repo().join(format!("examples/models/{m}.onnx")), grant: vec!["ml-ensemble".into()], row_width: None })
        .collect();
    let inner = stratbox_engine::load_models(&decls);
    assert!(inner.refused.is_empty(), "{:?}", inner.refused);
    let recording = Arc::new(Recording { inner, calls: Mutex::new(Vec::new()) });
    let mut spec = PluginSpec::new(support::component("plugins/ml-ensemble")).param("max_quantity", ParamInput::Number(100.0));
    spec.limits.fuel_per_callback = Some(2_000_000_000);
    spec.limits.inference_fuel_per_callback = Some(1_000_000_000);
    let mut config = HostConfig { mode: Mode::Backtest, data_dir: dir.path().join("host"), pace_ms: 0, status_secs: 0, plugins: vec![spec], ..HostConfig::default() };
    config.journal.in_memory = true;
    config.control.enabled = false;
    config.risk = stratbox_research::research_risk(config.risk);
    config.risk.capital = 1e7;
    let paper = config.broker;
    let (_tx, rx) = std::sync::mpsc::channel();
    let models: Arc<dyn ModelProvider> = recording.clone();
    let mut host = Host::with_parts(config, Box::new(data.feed(None, None)), move |w| Ok(Box::new(PaperBroker::new(paper, w))), Some(models), rx).unwrap();
    assert!(host.summary().status.stats.refused.is_empty(), "{:?}", host.summary().status.stats.refused);
    while host.step() {}
    let summary = host.summary();
    assert_eq!(summary.plugins[0].health, stratbox_sandbox::Health::Running, "{:?}", summary.plugins[0]);
    assert!(summary.status.broker.fills > 100, "the ensemble trades: {} fills", summary.status.broker.fills);

    // What the dataset says each model should have been given, in order: an
    // instrument's rows once it has as many as the longest member needs.
    let rows = dataset::build(&data, Window::default(), 1);
    let steps = [1usize, 10, 10];
    let mut recent: HashMap<&str, VecDeque<&[f32]>> = HashMap::new();
    let mut expected: Vec<Vec<f32>> = vec![Vec::new(); 3];
    // Rows are grouped per cross-section by time; a call covers one cross-section.
    let mut by_time: Vec<Vec<Vec<f32>>> = Vec::new();
    let mut last_time = None;
    for r in &rows {
        let q = recent.entry(r.symbol.as_str()).or_default();
        q.push_back(&r.features);
        if q.len() > 10 {
            q.pop_front();
        }
        if q.len() < 10 {
            continue;
        }
        if last_time != Some(r.time) {
            by_time.push(vec![Vec::new(); 3]);
            last_time = Some(r.time);
        }
        let call = by_time.last_mut().unwrap();
        for (m, &n) in steps.iter().enumerate() {
            q.iter().skip(10 - n).for_each(|row| call[m].extend_from_slice(row));
        }
    }
    let calls = recording.calls.lock().unwrap();
    for (m, member) in MEMBERS.iter().enumerate() {
        let got: Vec<&Vec<f32>> = calls.iter().filter(|(h, _)| *h == m as u32).map(|(_, r)| r).collect();
        assert_eq!(got.len(), by_time.len(), "{member}: one call per cross-section with rows");
        for (k, (g, e)) in got.iter().zip(&by_time).enumerate() {
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(g), bits(&e[m]), "{member}: call {k} differs from the dataset");
        }
        expected[m] = got.iter().flat_map(|v| v.iter().copied()).collect();
    }
    let compared: usize = expected.iter().map(Vec::len).sum();
    assert!(compared > 1_000_000, "values compared: {compared}");
}

#[test]
#[cfg_attr(not(shared_data), ignore = "needs ../shared/data (real market data)")]
fn the_hosts_holdout_metrics_equal_the_training_pipelines() {
    // The training pipeline scored its models with torch and scikit-learn on
    // its own copy of the rows; the report scores the exported files in
    // tract on rows from stratbox-features. They must tell the same story.
    let data_root = support::repo().join("../shared/data");
    let dir = tempfile::tempdir().unwrap();
    let market = dir.path().join("market");
    let mut store = MarketStore::open(&market, StoreConfig::default()).unwrap();
    import_file(&mut store, &data_root.join("lean/equity_usa_daily/spy.csv"), &ImportOptions { symbol: Some("SPY".into()), ..ImportOptions::default() }).unwrap();
    drop(store);
    let data = Arc::new(ReplayData::load(&market, &ReplayConfig::default()).unwrap());
    let mut config = HostConfig::load(&support::repo().join("examples/configs/ml.toml")).unwrap();
    config.data_dir = dir.path().join("host");
    config.plugins[0].path = support::component("plugins/ml-ensemble");
    let rows = dataset::build(&data, Window::default(), 1);
    let report = stratbox_research::mlreport::report(&config, &data, "SPY", None, &rows).unwrap();
    let expected: serde_json::Value = serde_json::from_slice(&std::fs::read(support::repo().join("examples/models/ensemble.json")).unwrap()).unwrap();
    assert_eq!((report.holdout_from.as_str(), report.holdout_to.as_str()), (expected["holdout"][0].as_str().unwrap(), expected["holdout"][1].as_str().unwrap()));
    for m in &report.members {
        let e = &expected["members"][&m.name]["holdout"];
        assert_eq!(m.holdout.rows as u64, e["rows"].as_u64().unwrap(), "{}", m.name);
        for (got, key) in [(m.holdout.accuracy, "accuracy"), (m.holdout.balanced_accuracy, "balanced_accuracy"), (m.holdout.log_loss, "log_loss"), (m.holdout.brier, "brier")] {
            assert!((got - e[key].as_f64().unwrap()).abs() < 1e-5, "{} {key}: host {got}, training {}", m.name, e[key]);
        }
    }
    let (got, e) = (&report.votes["weighted"], &expected["ensemble"]["weighted"]);
    assert!((got.log_loss - e["log_loss"].as_f64().unwrap()).abs() < 1e-5 && (got.accuracy - e["accuracy"].as_f64().unwrap()).abs() < 1e-9);
    assert!(report.strategy.fills > 0 && report.variants.len() == 6);
}
