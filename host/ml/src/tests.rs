//! Against the shipped models (`examples/models/`, real scikit-learn and
//! torch exports) and copies of the tree model broken one way each.

use super::*;

fn shipped_model(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../examples/models/{name}.onnx"))
}

fn shipped() -> PathBuf {
    shipped_model("gbdt-spy")
}

/// A copy of the shipped model and card in `dir`, with `edit` applied to the card.
fn copy(dir: &Path, bytes: Option<Vec<u8>>, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let model = dir.join("m.onnx");
    let bytes = bytes.unwrap_or_else(|| std::fs::read(shipped()).unwrap());
    std::fs::write(&model, &bytes).unwrap();
    let mut card: serde_json::Value = serde_json::from_slice(&std::fs::read(card_path(&shipped())).unwrap()).unwrap();
    card["sha256"] = hex::encode(Sha256::digest(&bytes)).into();
    edit(&mut card);
    std::fs::write(card_path(&model), serde_json::to_vec(&card).unwrap()).unwrap();
    model
}

#[test]
fn the_shipped_model_matches_onnxruntime_on_its_reference_rows() {
    let m = Model::load(&shipped()).unwrap();
    assert_eq!((m.row_width(), m.card.classes.clone()), (9, vec!["down".to_owned(), "up".to_owned()]));
    let diff = m.check().unwrap();
    assert!(diff <= 1e-5, "max difference {diff}");
    // Rows in one call: each row's probabilities, summing to one.
    let rows: Vec<f32> = m.card.reference.inputs.iter().flatten().copied().collect();
    let p = m.predict(&rows).unwrap();
    assert_eq!(p.len(), 2 * m.card.reference.inputs.len());
    for (k, pair) in p.chunks(2).enumerate() {
        assert!((pair[0] + pair[1] - 1.0).abs() < 1e-5, "row {k}: {pair:?}");
        assert_eq!(pair, &m.predict(&rows[9 * k..9 * k + 9]).unwrap()[..], "a row alone gives the same: no state carries over");
    }
}

#[test]
fn the_sequence_models_match_onnxruntime_with_a_fresh_state_per_row() {
    for name in ["lstm-spy", "transformer-spy"] {
        let m = Model::load(&shipped_model(name)).unwrap();
        assert_eq!((m.card.window, m.row_width()), (Some(10), 90), "{name}");
        let diff = m.check().unwrap();
        assert!(diff <= 1e-5, "{name}: max difference {diff}");
        // Rows in one call, then the first again: the same (a reused LSTM
        // state would carry the earlier rows into it).
        let rows: Vec<f32> = m.card.reference.inputs.iter().flatten().copied().collect();
        let all = m.predict(&rows).unwrap();
        assert_eq!(&all[..2], &m.predict(&rows[..90]).unwrap()[..], "{name}");
        assert!(m.cost.fma > 1_000, "{name}: the graph's multiply-adds are counted ({:?})", m.cost);
    }
}

#[test]
fn bad_rows_get_the_typed_error() {
    let m = Model::load(&shipped()).unwrap();
    assert_eq!(m.predict(&[0.0; 7]), Err(PredictError::WrongShape { features: 9, values: 7 }));
    assert_eq!(m.predict(&[]), Err(PredictError::WrongShape { features: 9, values: 0 }));
    let mut rows = [0.1f32; 18];
    rows[11] = f32::NAN;
    assert!(matches!(m.predict(&rows), Err(PredictError::NonFinite { row: 1, feature: 2, .. })));
}

#[test]
fn broken_files_and_cards_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let err = |path: &Path| Model::load(path).err().expect("refused").to_string();
    // The file is not the one the card describes.
    let m = copy(dir.path(), None, |c| c["sha256"] = "00".into());
    assert!(err(&m).contains("is not the card's 00"), "{}", err(&m));
    // Not ONNX at all.
    let m = copy(dir.path(), Some(b"definitely not protobuf \xff\xff\xff".to_vec()), |_| {});
    assert!(err(&m).contains("not an ONNX model"), "{}", err(&m));
    // Cards that do not fit the model.
    let m = copy(dir.path(), None, |c| c["classes"] = serde_json::json!(["down", "flat", "up"]));
    assert!(err(&m).contains("3 classes, but the model gives 2 probabilities"), "{}", err(&m));
    let m = copy(dir.path(), None, |c| c["output"] = "proba".into());
    assert!(err(&m).contains("output `proba` is not among the graph's"), "{}", err(&m));
    let m = copy(dir.path(), None, |c| c["features"] = serde_json::json!(["a", "b"]));
    assert!(err(&m).contains("tract cannot run it") || err(&m).contains("the model card"), "{}", err(&m));
    // Reference outputs that the model does not give.
    let m = copy(dir.path(), None, |c| c["reference"]["outputs"][0] = serde_json::json!([0.9, 0.1]));
    let e = Model::load(&m).unwrap().check().unwrap_err().to_string();
    assert!(e.contains("reference row 0") && e.contains("[0.9, 0.1]"), "{e}");
    assert!(err(&dir.path().join("absent.onnx")).contains("absent.card.json"));
}

#[test]
fn inspect_lists_the_graph_and_says_whether_tract_runs_it() {
    let i = inspect(&shipped()).unwrap();
    assert_eq!(i.operators.get("ai.onnx.ml.TreeEnsembleClassifier"), Some(&1));
    assert!(i.tract.is_ok(), "{:?}", i.tract);
    assert_eq!(i.inputs, vec![("X".to_owned(), vec!["1".to_owned(), "9".to_owned()])]);
    assert!(i.outputs.iter().any(|(n, _)| n == "probabilities"));
    assert!(i.opsets.iter().any(|(d, _)| d == "ai.onnx.ml"));
    assert_eq!(i.card.as_ref().map(|c| c.sha256.clone()), Some(i.sha256.clone()));
}
