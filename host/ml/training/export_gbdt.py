#!/usr/bin/env python3
"""A small gradient-boosted tree classifier on real daily returns, exported to
ONNX the way tract loads it, with its model card.

    python3 host/ml/training/export_gbdt.py ../shared/data examples/models

Data: QuantConnect Lean's SPY daily bars (../shared/data/lean/equity_usa_daily/spy.csv).
Features: the last 5 daily log returns, oldest first (x 100). Label: the next
day's close above today's (classes "down", "up"). Trained on 1998-2015, the
card's reference rows are the first 8 rows of 2016 onwards; its reference
outputs are onnxruntime's probabilities for them.

Export settings (see ../shared/reference/onnx-tract-notes.md): no ZipMap
(tract has none), a batch of one row (tract wants shapes fixed), and the
`probabilities` output is the one to read (the `label` output is inverted for
binary classifiers in tract). The file stays standard ONNX: the host pads a
binary classifier's single `base_values` for tract when it loads it
(padding it in the file makes onnxruntime misread it).
"""
import csv
import hashlib
import json
import math
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import skl2onnx
import sklearn
from skl2onnx import to_onnx
from sklearn.ensemble import GradientBoostingClassifier

SEED = 20160101
WINDOW = 5
NAME = "gbdt-spy-ret5"


def closes(path):
    with open(path, newline="") as f:
        rows = [(r["datetime"][:10], float(r["close"])) for r in csv.DictReader(f)]
    rows.sort()
    return rows


def dataset(rows):
    r = [math.log(rows[k][1] / rows[k - 1][1]) * 100.0 for k in range(1, len(rows))]
    x, y, dates = [], [], []
    for k in range(WINDOW, len(r)):
        x.append(r[k - WINDOW:k])
        y.append(1 if r[k] > 0 else 0)
        dates.append(rows[k][0])  # the features end the day before the label's day
    return np.array(x, dtype=np.float32), np.array(y), dates


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: export_gbdt.py DATA_DIR OUT_DIR")
    data, out = sys.argv[1], sys.argv[2]
    x, y, dates = dataset(closes(os.path.join(data, "lean/equity_usa_daily/spy.csv")))
    train = np.array([d < "2016-01-01" for d in dates])
    clf = GradientBoostingClassifier(n_estimators=100, max_depth=3, learning_rate=0.05, random_state=SEED)
    clf.fit(x[train], y[train])
    model = to_onnx(clf, x[:1], options={id(clf): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
    # A fixed batch of one row: tract needs the shapes known.
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].dim_value:
            dims[0].dim_value = 1
    onnx.checker.check_model(model)
    path = os.path.join(out, NAME + ".onnx")
    blob = model.SerializeToString()
    with open(path, "wb") as f:
        f.write(blob)
    sess = ort.InferenceSession(blob)
    test = x[~train][:8]
    outs = [sess.run(["probabilities"], {"X": row[None, :]})[0][0].tolist() for row in test]
    sk = clf.predict_proba(test)
    assert np.abs(np.array(outs) - sk).max() < 1e-5, "onnxruntime agrees with scikit-learn"
    held = ~train
    card = {
        "name": NAME,
        "file": NAME + ".onnx",
        "sha256": hashlib.sha256(blob).hexdigest(),
        "input": "X",
        "output": "probabilities",
        "features": [f"log return of day t-{WINDOW - k} x 100" for k in range(WINDOW)],
        "classes": ["down", "up"],
        "training": {
            "data": "lean/equity_usa_daily/spy.csv",
            "train": [dates[0], "2015-12-31"],
            "model": "GradientBoostingClassifier(n_estimators=100, max_depth=3, learning_rate=0.05)",
            "seed": SEED,
            "holdout_accuracy": float((clf.predict(x[held]) == y[held]).mean()),
            "holdout_rows": int(held.sum()),
            "versions": {"scikit-learn": sklearn.__version__, "skl2onnx": skl2onnx.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__},
        },
        "reference": {"inputs": test.tolist(), "outputs": outs, "tolerance": 1e-5, "by": "onnxruntime " + ort.__version__},
    }
    with open(os.path.join(out, NAME + ".card.json"), "w") as f:
        json.dump(card, f, indent=1)
        f.write("\n")
    print(f"{path}: {len(blob)} bytes; holdout accuracy {card['training']['holdout_accuracy']:.4f} on {card['training']['holdout_rows']} days")


if __name__ == "__main__":
    main()
