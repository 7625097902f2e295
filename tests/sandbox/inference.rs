//! The `inference` import (contract 0.1.1): models the operator loaded and
//! granted, run by the host for a plugin; every misuse gets its typed error
//! (never a fault), the budget is deterministic, and a broken model is
//! refused at start while the host and the other models run on.

use std::path::PathBuf;

use stratbox_engine::ModelDecl;
use stratbox_engine::config::{ParamInput, PluginSpec};
use stratbox_ml::Model;
use stratbox_sandbox::Health;

use crate::support::{Scenario, component, repo};

fn shipped(name: &str) -> PathBuf {
    repo().join(format!("examples/models/{name}.onnx"))
}

fn decl(name: &str, grant: &[&str]) -> ModelDecl {
    ModelDecl { name: name.into(), path: shipped(name), grant: grant.iter().map(|g| g.to_string()).collect(), row_width: None }
}

fn probe(mode: &str) -> PluginSpec {
    PluginSpec::new(component("tests/plugins/model-probe")).named("probe").param("mode", ParamInput::Text(mode.into()))
}

/// The probe's reported outcomes (target quantities), with its health.
fn outcomes(spec: PluginSpec, models: Vec<ModelDecl>) -> (Health, Vec<f64>) {
    let mut s = Scenario::new(vec![spec]);
    s.models = models;
    s.bars = 10;
    let out = s.run();
    let q = out.intents_of("probe").into_iter().map(|(_, i)| match i {
        stratbox_contract::Intent::Target(t) => t.quantity,
        other => panic!("unexpected intent {other:?}"),
    });
    (out.plugin("probe").health, q.collect())
}

#[test]
fn a_granted_model_predicts_what_the_model_gives_natively() {
    let (health, q) = outcomes(probe("ok"), vec![decl("gbdt-spy", &["probe"])]);
    assert_eq!(health, Health::Running);
    let m = Model::load(&shipped("gbdt-spy")).unwrap();
    let p = m.predict(&vec![0.1; m.row_width()]).unwrap();
    let up = m.card.classes.iter().position(|c| c == "up").unwrap();
    let expected = 1000.0 + (f64::from(p[up]) * 1000.0).round();
    assert_eq!(q.len(), 10, "one call per cross-section");
    assert!(q.iter().all(|&x| x == expected), "{q:?} against {expected}");
}

#[test]
fn every_misuse_gets_its_typed_error_and_the_plugin_runs_on() {
    let models = || vec![decl("gbdt-spy", &["probe"]), decl("lstm-spy", &["someone-else"])];
    for (mode, code) in [("missing", 2.0), ("forged", 3.0), ("wrong-shape", 4.0), ("nan", 5.0), ("flood", 6.0)] {
        let (health, q) = outcomes(probe(mode), models());
        assert_eq!(health, Health::Running, "{mode}: an error, not a fault");
        assert!(!q.is_empty() && q.iter().all(|&x| x == code), "{mode}: {q:?}, expected code {code}");
    }
    // A model loaded but granted to another plugin.
    let mut ungranted = probe("ok");
    ungranted.params.insert("model".into(), ParamInput::Text("lstm-spy".into()));
    let mut s = Scenario::new(vec![ungranted]);
    s.models = models();
    s.bars = 3;
    let out = s.run();
    let refused = out.summary.status.stats.refused.join("; ");
    assert!(refused.contains("model `lstm-spy` is not granted to plugin `probe`"), "{refused}");
}

#[test]
fn the_inference_budget_is_the_operators_to_raise() {
    // 2,000 rows cost more than the default 25M inference fuel; with the
    // budget raised (and the fuel to match) they run.
    let mut spec = probe("flood");
    spec.limits.inference_fuel_per_callback = Some(1_000_000_000);
    spec.limits.fuel_per_callback = Some(2_000_000_000);
    let (health, q) = outcomes(spec, vec![decl("gbdt-spy", &["*"])]);
    assert_eq!(health, Health::Running);
    assert!(q.iter().all(|&x| x > 1000.0), "{q:?}");
}

#[test]
fn a_broken_model_is_refused_and_the_rest_serve() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.onnx");
    std::fs::write(&broken, b"not a model").unwrap();
    std::fs::copy(stratbox_ml::card_path(&shipped("gbdt-spy")), stratbox_ml::card_path(&broken)).unwrap();
    let models = vec![ModelDecl { name: "broken".into(), path: broken, grant: vec!["*".into()], row_width: None }, decl("gbdt-spy", &["probe"])];
    let mut s = Scenario::new(vec![probe("ok")]);
    s.models = models;
    s.bars = 3;
    let out = s.run();
    let refused = out.summary.status.stats.refused.join("; ");
    assert!(refused.contains("model `broken` refused") && refused.contains("is not the card's"), "{refused}");
    assert_eq!(out.plugin("probe").health, Health::Running);
    assert!(out.intents_of("probe").len() == 3);
}

fn ensemble() -> PluginSpec {
    let mut spec = PluginSpec::new(component("plugins/ml-ensemble")).named("ml-ensemble").param("max_spread", ParamInput::Number(0.5));
    spec.limits.inference_fuel_per_callback = Some(400_000_000);
    spec.limits.fuel_per_callback = Some(1_000_000_000);
    spec
}

fn members() -> Vec<ModelDecl> {
    ["gbdt-spy", "lstm-spy", "transformer-spy"].iter().map(|m| decl(m, &["ml-ensemble"])).collect()
}

#[test]
fn the_ensemble_swapped_mid_run_asks_for_what_an_unswapped_run_asks_for() {
    let mut s = Scenario::new(vec![ensemble()]);
    s.models = members();
    let reference = s.run();
    let expected = reference.intents_of("ml-ensemble");
    assert!(expected.len() > 20, "the ensemble trades the simulator: {} intents", expected.len());
    let view = reference.plugin("ml-ensemble");
    assert_eq!(view.health, Health::Running);
    // 5 instruments a cross-section once the window is full (30 bars), one row each per member.
    assert_eq!(view.inference_rows, 3 * 5 * (120 - 29), "rows run, as the status shows them");
    for at in [25, 70] {
        let dir = tempfile::tempdir().unwrap();
        let (mut host, _tx) = s.host(dir.path());
        for _ in 0..at {
            assert!(host.step());
        }
        let next = host.factory().load(ensemble()).expect("successor starts");
        let report = host.supervisor.swap("ml-ensemble", next).expect("swap succeeds");
        assert!(report.state_bytes > 1_000, "the bars were handed over ({} bytes)", report.state_bytes);
        while host.step() {}
        let intents: Vec<_> = host.order_path.intent_log.take().unwrap().into_iter().filter(|(_, p, _)| &**p == "ml-ensemble").map(|(t, _, i)| (t, i)).collect();
        assert_eq!(intents, expected, "swap after event {at}");
    }
}
