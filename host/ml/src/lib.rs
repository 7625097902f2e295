//! Models in the host: an ONNX file with its model card (`M.onnx` beside
//! `M.card.json`), checked and run by tract.
//!
//! A [`Model`] is loaded once: the file's sha256 checked against the card, its
//! input fixed to one row (`[1, features]`, or `[1, window, features]` for a
//! sequence model; tract needs known shapes), typed and optimised, and its
//! cost per row counted from the optimised graph ([`ModelCost`]).
//! [`Model::predict`] runs rows of `f32` features, one fresh plan state per
//! row (a reused state keeps a recurrent model's hidden state across calls and
//! gives wrong answers, see `../shared/reference/onnx-tract-notes.md`), and
//! returns each row's class probabilities in the card's class order.
//! [`Model::check`] runs the card's reference inputs and compares with its
//! reference outputs (onnxruntime's). [`inspect`] says what a file holds and
//! whether tract can run it, and why not. [`ModelSet`] is what the operator
//! declared: the models loaded and checked once, and who may use each.
//!
//! Three operators are our own, registered with tract's ONNX loader in place
//! of tract's (the files stay standard ONNX; tract runs the rest of each
//! graph): `TreeEnsembleClassifier` (`trees.rs`; tract's walks every leaf),
//! `LSTM` (`lstm.rs`; tract's runs a sub-plan per step) and `Softmax`
//! (`softmax.rs`; tract's works in blocks of 64 values, for lanes of 10).
//! Every node runs with the vector registers' upper halves cleared
//! (`clear_upper_vector_state`): tract's AVX-512 kernels leave them dirty,
//! which made the SSE code after them, ours and libm's, several times slower.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tract_onnx::pb::{ModelProto, type_proto};
use tract_onnx::prelude::*;

mod lstm;
mod set;
mod softmax;
mod trees;

pub use set::{ModelDecl, ModelSet, Refusal};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: the model card: {why}")]
    Card { path: PathBuf, why: String },
    #[error("{path}: sha256 {got} is not the card's {expected}: the file is not the one the card describes")]
    Checksum { path: PathBuf, expected: String, got: String },
    #[error("{path}: not an ONNX model: {why}")]
    NotOnnx { path: PathBuf, why: String },
    #[error("{path}: tract cannot run it: {why}")]
    Unsupported { path: PathBuf, why: String },
    #[error("{path}: reference row {row}: output {got:?} differs from the card's {expected:?} by {diff:e} (tolerance {tolerance:e})")]
    Reference { path: PathBuf, row: usize, got: Vec<f32>, expected: Vec<f32>, diff: f32, tolerance: f32 },
}

/// Why a prediction was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PredictError {
    #[error("{values} values are not whole rows of {features} features")]
    WrongShape { features: usize, values: usize },
    #[error("row {row}, feature {feature}: {value} is not a finite number")]
    NonFinite { row: usize, feature: usize, value: f32 },
    #[error("the model failed: {0}")]
    Backend(String),
}

/// What the card says of a model (written by the training pipeline).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub name: String,
    pub file: String,
    pub sha256: String,
    /// Names of the graph's input and of the probabilities output.
    pub input: String,
    pub output: String,
    /// What each input column is (each step's columns, for a sequence model).
    pub features: Vec<String>,
    /// Steps of a sequence model (input `[1, window, features]`); none for
    /// a model of one row of features (`[1, features]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<usize>,
    /// Class names, in the order of the probabilities.
    pub classes: Vec<String>,
    /// Free-form: data, ranges, model settings, versions, metrics.
    #[serde(default)]
    pub training: serde_json::Value,
    pub reference: Reference,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    pub inputs: Vec<Vec<f32>>,
    pub outputs: Vec<Vec<f32>>,
    pub tolerance: f32,
    /// What produced the outputs (onnxruntime and its version).
    pub by: String,
}

impl ModelCard {
    /// The input shape of one row.
    pub fn input_shape(&self) -> Vec<usize> {
        match self.window {
            Some(w) => vec![1, w, self.features.len()],
            None => vec![1, self.features.len()],
        }
    }

    /// Values in one row (`window x features` for a sequence model).
    pub fn row_width(&self) -> usize {
        self.window.unwrap_or(1) * self.features.len()
    }
}

/// What one row costs, counted from the optimised graph at load (never
/// timed, so a charge made from it is the same on every run and machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ModelCost {
    /// Nodes of the optimised graph (each costs the plan a dispatch).
    pub nodes: u64,
    /// Multiply-adds (and divisions) tract's cost model counts for a row.
    pub fma: u64,
    /// Tree splits on the longest path of every tree, summed.
    pub splits: u64,
}

impl ModelCost {
    /// Fuel units (the sandbox's: about 18 a nanosecond on the reference
    /// machine) a row is charged: `cargo bench -p stratbox-ml --bench
    /// inference` prints the measured time beside this charge for each model.
    pub const FUEL_PER_ROW: u64 = 36_000;
    pub const FUEL_PER_NODE: u64 = 18_000;
    pub const FUEL_PER_FMA: u64 = 8;
    pub const FUEL_PER_SPLIT: u64 = 40;

    fn of(model: &TypedModel) -> TractResult<Self> {
        let mut cost = ModelCost { nodes: model.nodes().len() as u64, fma: 0, splits: 0 };
        for node in model.nodes() {
            if let Some(forest) = node.op_as::<trees::ForestClassifier>() {
                cost.splits += forest.splits_per_row();
                continue;
            }
            let inputs = model.node_input_facts(node.id)?;
            if let Some(lstm) = node.op_as::<lstm::LstmSeq>() {
                let shape = &inputs[0].shape;
                let (steps, batch) = (shape[0].to_i64()? as usize, shape[1].to_i64()? as usize);
                cost.fma += lstm.fma(steps) * batch as u64;
                continue;
            }
            // A recurrence runs its body once per step: every body node is a
            // dispatch each time (what the LSTM's time is made of).
            if let Some(scan) = node.op_as::<tract_onnx::tract_core::ops::scan::OptScan>() {
                let steps = scan.iteration_count(&inputs).and_then(|d| d.to_i64().ok()).unwrap_or(1).max(1) as u64;
                let body = Self::of(scan.plan.model())?;
                cost.nodes += body.nodes * steps;
                cost.fma += body.fma * steps;
                continue;
            }
            for (kind, count) in node.op.cost(&inputs)? {
                if matches!(kind, tract_onnx::tract_core::ops::Cost::FMA(_) | tract_onnx::tract_core::ops::Cost::Div(_)) {
                    cost.fma += count.to_i64().map_or(0, |c| c.max(0) as u64);
                }
            }
        }
        Ok(cost)
    }

    /// The fuel one row is charged.
    pub fn fuel_per_row(&self) -> u64 {
        Self::FUEL_PER_ROW + self.nodes * Self::FUEL_PER_NODE + self.fma * Self::FUEL_PER_FMA + self.splits * Self::FUEL_PER_SPLIT
    }
}

/// Clears the upper halves of the vector registers (`vzeroupper`). tract's
/// AVX-512 kernels leave them dirty, and every SSE instruction after that
/// (our ops, libm's `expf`) pays for it: an LSTM's gates ran about ten times
/// slower in the host than the same arithmetic in a fresh program (perf put
/// the time on `expf`'s first move out of an xmm register).
pub(crate) fn clear_upper_vector_state() {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx")]
        fn zero_upper() {
            std::arch::x86_64::_mm256_zeroupper();
        }
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: AVX is present (checked above).
            unsafe { zero_upper() }
        }
    }
}

/// The card of `model` (`M.onnx` -> `M.card.json`).
pub fn card_path(model: &Path) -> PathBuf {
    model.with_extension("card.json")
}

/// A loaded, optimised model.
pub struct Model {
    pub card: ModelCard,
    path: PathBuf,
    plan: Arc<TypedRunnableModel>,
    output: usize,
    /// What a row costs (see [`ModelCost::fuel_per_row`]).
    pub cost: ModelCost,
    /// Load, check of the checksum and optimisation, in milliseconds.
    pub load_ms: f64,
}

fn read_proto(path: &Path, bytes: &[u8]) -> Result<ModelProto, ModelError> {
    loader().proto_model_for_read(&mut &bytes[..]).map_err(|e| ModelError::NotOnnx { path: path.to_owned(), why: format!("{e:#}") })
}

/// tract's ONNX loader with our tree ensemble in place of its own.
fn loader() -> tract_onnx::Onnx {
    let mut onnx = onnx();
    trees::register(&mut onnx.op_register);
    lstm::register(&mut onnx.op_register);
    softmax::register(&mut onnx.op_register);
    onnx
}

/// The model tract builds from `proto`, its first input fixed to `shape`
/// (one row) when given, typed and optimised.
fn optimise(proto: &ModelProto, shape: Option<&[usize]>) -> TractResult<TypedModel> {
    let model = loader().model_for_proto_model(proto)?;
    let model = match shape {
        Some(dims) => model.with_input_fact(0, f32::fact(dims).into())?,
        None => model,
    };
    model.into_optimized()
}

impl Model {
    /// Loads `path` with its card; refuses a file the card does not describe,
    /// a model tract cannot run, and a card whose shapes do not fit the model.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let started = std::time::Instant::now();
        let card_file = card_path(path);
        let card_bytes = std::fs::read(&card_file).map_err(|source| ModelError::Io { path: card_file.clone(), source })?;
        let card: ModelCard = serde_json::from_slice(&card_bytes).map_err(|e| ModelError::Card { path: card_file.clone(), why: e.to_string() })?;
        let bad_card = |why: String| ModelError::Card { path: card_file.clone(), why };
        if card.features.is_empty() || card.classes.len() < 2 {
            return Err(bad_card(format!("{} features and {} classes: a model needs features and at least two classes", card.features.len(), card.classes.len())));
        }
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io { path: path.to_owned(), source })?;
        let got = hex::encode(Sha256::digest(&bytes));
        if got != card.sha256 {
            return Err(ModelError::Checksum { path: path.to_owned(), expected: card.sha256.clone(), got });
        }
        let proto = read_proto(path, &bytes)?;
        let graph = proto.graph.as_ref().ok_or_else(|| ModelError::NotOnnx { path: path.to_owned(), why: "no graph".into() })?;
        if graph.input.first().is_none_or(|i| i.name != card.input) {
            return Err(bad_card(format!("input `{}` is not the graph's first input ({:?})", card.input, graph.input.iter().map(|i| &i.name).collect::<Vec<_>>())));
        }
        let output = graph.output.iter().position(|o| o.name == card.output).ok_or_else(|| bad_card(format!("output `{}` is not among the graph's ({:?})", card.output, graph.output.iter().map(|o| &o.name).collect::<Vec<_>>())))?;
        let unsupported = |e: TractError| ModelError::Unsupported { path: path.to_owned(), why: format!("{e:#}") };
        let typed = optimise(&proto, Some(&card.input_shape())).map_err(unsupported)?;
        let cost = ModelCost::of(&typed).map_err(unsupported)?;
        let plan = typed.into_runnable().map_err(unsupported)?;
        let model = Model { card, path: path.to_owned(), plan, output, cost, load_ms: 0.0 };
        // The declared class count is what the model gives.
        let probe = model.predict(&vec![0.0; model.row_width()]).map_err(|e| bad_card(format!("a row of zeros: {e}")))?;
        if probe.len() != model.card.classes.len() {
            return Err(bad_card(format!("{} classes, but the model gives {} probabilities", model.card.classes.len(), probe.len())));
        }
        Ok(Model { load_ms: started.elapsed().as_secs_f64() * 1e3, ..model })
    }

    /// Values in one row.
    pub fn row_width(&self) -> usize {
        self.card.row_width()
    }

    pub fn classes(&self) -> usize {
        self.card.classes.len()
    }

    /// Class probabilities of each row of `rows` (row-major, `row_width()`
    /// values a row), concatenated in row order.
    pub fn predict(&self, rows: &[f32]) -> Result<Vec<f32>, PredictError> {
        let n = self.row_width();
        let shape = self.card.input_shape();
        if rows.is_empty() || !rows.len().is_multiple_of(n) {
            return Err(PredictError::WrongShape { features: n, values: rows.len() });
        }
        if let Some(k) = rows.iter().position(|v| !v.is_finite()) {
            return Err(PredictError::NonFinite { row: k / n, feature: k % n, value: rows[k] });
        }
        let mut out = Vec::with_capacity(rows.len() / n * self.card.classes.len());
        for row in rows.chunks(n) {
            let input = Tensor::from_shape(&shape, row).map_err(|e| PredictError::Backend(format!("{e:#}")))?;
            // A fresh state per row: nothing carries over from the last row.
            // Each node starts and ends with the vector registers' upper
            // halves clear (see `clear_upper_vector_state`).
            let mut state = self.plan.spawn().map_err(|e| PredictError::Backend(format!("{e:#}")))?;
            let result = state
                .run_plan_with_eval(tvec!(input.into()), |ctx, op_state, node, inputs| {
                    clear_upper_vector_state();
                    let out = tract_onnx::tract_core::plan::eval(ctx, op_state, node, inputs);
                    clear_upper_vector_state();
                    out
                })
                .map_err(|e| PredictError::Backend(format!("{e:#}")))?;
            let probs = result.get(self.output).ok_or_else(|| PredictError::Backend("missing output".into()))?;
            let view = probs.to_plain_array_view::<f32>().map_err(|e| PredictError::Backend(format!("{e:#}")))?;
            out.extend(view.iter().copied());
        }
        Ok(out)
    }

    /// Runs the card's reference inputs; the largest difference from its outputs.
    pub fn check(&self) -> Result<f32, ModelError> {
        let r = &self.card.reference;
        let bad = |why: String| ModelError::Card { path: card_path(&self.path), why };
        if r.inputs.is_empty() || r.inputs.len() != r.outputs.len() {
            return Err(bad(format!("{} reference inputs and {} outputs", r.inputs.len(), r.outputs.len())));
        }
        let mut worst = 0.0f32;
        for (row, (input, expected)) in r.inputs.iter().zip(&r.outputs).enumerate() {
            let got = self.predict(input).map_err(|e| bad(format!("reference row {row}: {e}")))?;
            let diff = got.iter().zip(expected).map(|(a, b)| (a - b).abs()).fold(if got.len() == expected.len() { 0.0 } else { f32::INFINITY }, f32::max);
            if !(diff <= r.tolerance) {
                return Err(ModelError::Reference { path: self.path.clone(), row, got, expected: expected.clone(), diff, tolerance: r.tolerance });
            }
            worst = worst.max(diff);
        }
        Ok(worst)
    }
}

/// What an ONNX file holds.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub bytes: usize,
    pub sha256: String,
    pub producer: String,
    pub opsets: Vec<(String, i64)>,
    /// `name: [dims]`, a dimension `?` or its symbol when not fixed.
    pub inputs: Vec<(String, Vec<String>)>,
    pub outputs: Vec<(String, Vec<String>)>,
    /// Operator (with its domain when not the default) and how many nodes use it.
    pub operators: BTreeMap<String, usize>,
    /// Whether tract loads, types and optimises it (with the card's input
    /// shape when there is a card, else as the file declares); why not.
    pub tract: Result<(), String>,
    pub card: Option<ModelCard>,
}

fn dims(v: &tract_onnx::pb::ValueInfoProto) -> Vec<String> {
    let Some(type_proto::Value::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else { return Vec::new() };
    t.shape.as_ref().map_or_else(Vec::new, |s| {
        s.dim
            .iter()
            .map(|d| match &d.value {
                Some(tract_onnx::pb::tensor_shape_proto::dimension::Value::DimValue(v)) => v.to_string(),
                Some(tract_onnx::pb::tensor_shape_proto::dimension::Value::DimParam(p)) => p.clone(),
                None => "?".into(),
            })
            .collect()
    })
}

/// Reads `path` (and its card, if there is one) without running it.
pub fn inspect(path: &Path) -> Result<Inspection, ModelError> {
    let bytes = std::fs::read(path).map_err(|source| ModelError::Io { path: path.to_owned(), source })?;
    let proto = read_proto(path, &bytes)?;
    let graph = proto.graph.as_ref().ok_or_else(|| ModelError::NotOnnx { path: path.to_owned(), why: "no graph".into() })?;
    let mut operators = BTreeMap::new();
    for node in &graph.node {
        let name = if node.domain.is_empty() { node.op_type.clone() } else { format!("{}.{}", node.domain, node.op_type) };
        *operators.entry(name).or_insert(0) += 1;
    }
    let card = std::fs::read(card_path(path)).ok().and_then(|b| serde_json::from_slice::<ModelCard>(&b).ok());
    let mut inspection = Inspection {
        bytes: bytes.len(),
        sha256: hex::encode(Sha256::digest(&bytes)),
        producer: format!("{} {}", proto.producer_name, proto.producer_version),
        opsets: proto.opset_import.iter().map(|o| (if o.domain.is_empty() { "ai.onnx".to_owned() } else { o.domain.clone() }, o.version)).collect(),
        inputs: graph.input.iter().map(|v| (v.name.clone(), dims(v))).collect(),
        outputs: graph.output.iter().map(|v| (v.name.clone(), dims(v))).collect(),
        operators,
        tract: Ok(()),
        card,
    };
    let shape = inspection.card.as_ref().map(ModelCard::input_shape);
    inspection.tract = optimise(&proto, shape.as_deref()).map(drop).map_err(|e| format!("{e:#}"));
    Ok(inspection)
}

#[cfg(test)]
mod tests;
