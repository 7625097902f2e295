//! Inference per row at batch 1, tract in the host against onnxruntime, in
//! one run, for every model in `examples/models/`:
//!
//!     BENCH_PYTHON=.venv/bin/python cargo bench -p stratbox-ml --bench inference
//!
//! (`.venv` with `host/ml/training/requirements.txt`; without onnxruntime the
//! comparison is skipped, saying so). Medians of 7 rounds of 2,000 rows.
//! Beside each model: the fuel a row is charged (`ModelCost`, fixed at load)
//! and the fuel its measured time is worth at the sandbox's 18 units a
//! nanosecond, so the charge can be seen to bound the host's time.

use std::path::Path;
use std::time::Instant;

use stratbox_ml::Model;

const ROUNDS: usize = 7;
const ROWS: usize = 2_000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// onnxruntime's median microseconds per row on the card's reference rows.
fn onnxruntime(python: &str, model: &Path) -> Result<f64, String> {
    let script = format!(
        r#"
import json, sys, time
import numpy as np, onnxruntime as ort
path = sys.argv[1]
card = json.load(open(path[:-5] + ".card.json"))
s = ort.InferenceSession(open(path, "rb").read())
shape = [1] + ([card["window"]] if card.get("window") else []) + [len(card["features"])]
rows = [np.array(r, dtype=np.float32).reshape(shape) for r in card["reference"]["inputs"]]
out = []
for _ in range({ROUNDS}):
    t = time.perf_counter()
    for k in range({ROWS}):
        s.run([card["output"]], {{card["input"]: rows[k % len(rows)]}})
    out.append((time.perf_counter() - t) / {ROWS} * 1e6)
out.sort()
print(json.dumps({{"us": out[len(out) // 2], "version": ort.__version__}}))
"#
    );
    let out = std::process::Command::new(python).args(["-c", &script]).arg(model).output().map_err(|e| format!("{python}: {e}"))?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|_| String::from_utf8_lossy(&out.stderr).trim().to_owned())?;
    v["us"].as_f64().ok_or_else(|| "no timing".into())
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models");
    let python = std::env::var("BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut models: Vec<_> = std::fs::read_dir(&dir).unwrap().filter_map(|e| Some(e.ok()?.path())).filter(|p| p.extension().is_some_and(|e| e == "onnx")).collect();
    models.sort();
    // `BENCH_ONLY=lstm`: the models whose file name contains it (for profiling one).
    if let Ok(only) = std::env::var("BENCH_ONLY") {
        models.retain(|p| p.file_name().is_some_and(|n| n.to_string_lossy().contains(&only)));
    }
    println!("| {:<24} | {:>9} | {:>12} | {:>18} | {:>6} | {:>13} | {:>14} |", "model", "load", "tract us/row", "onnxruntime us/row", "ratio", "fuel charged", "fuel measured");
    for path in models {
        let loads: Vec<f64> = (0..ROUNDS).map(|_| Model::load(&path).unwrap().load_ms).collect();
        let m = Model::load(&path).unwrap();
        let rows = &m.card.reference.inputs;
        let tract = median(
            (0..ROUNDS)
                .map(|_| {
                    let t = Instant::now();
                    for k in 0..ROWS {
                        std::hint::black_box(m.predict(&rows[k % rows.len()]).unwrap());
                    }
                    t.elapsed().as_secs_f64() / ROWS as f64 * 1e6
                })
                .collect(),
        );
        let (ort, ratio) = match onnxruntime(&python, &path) {
            Ok(us) => (format!("{us:.1}"), format!("{:.1}x", tract / us)),
            Err(why) => (format!("skipped ({})", why.lines().last().unwrap_or("")), "-".into()),
        };
        let measured = (tract * 1e3 * 18.0) as u64;
        println!("| {:<24} | {:>7.1}ms | {:>12.2} | {:>18} | {:>6} | {:>13} | {:>14} |", m.card.name, median(loads), tract, ort, ratio, m.cost.fuel_per_row(), measured);
        eprintln!("  {}: {:?}", m.card.name, m.cost);
    }
}
