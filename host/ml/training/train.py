#!/usr/bin/env python3
"""Trains the ML ensemble's three members on a dataset from `stratbox ml
dataset` (the features the plugin computes, so there is no train/serve
skew), tunes each with Optuna on walk-forward validation folds only, and
exports each to ONNX with its model card.

    python train.py DATASET.csv OUT_DIR [--trials N] [--quick]

Splits (by bar time, rows in time order):
- holdout: the last 12 months of the data; never seen by training or tuning;
- the rest: 4 expanding walk-forward folds, each validated on the block after
  its training part, with the `horizon` rows before a validation block purged
  from training (their labels look into it) and `horizon` rows after it
  embargoed from later training parts.

Members, tuned by TPE (seeded) on the mean validation log loss:
- gbdt: scikit-learn GradientBoostingClassifier (depth, learning rate,
  trees, subsample, min samples per leaf as regularisation);
- lstm: torch LSTM over the last WINDOW rows (layers, hidden units, dropout);
- transformer: a torch Transformer encoder over the same (depth, width, heads).
The networks carry the training part's feature means and deviations inside
the graph, so the host feeds raw features. Each final model is refit on all
non-holdout rows with the best parameters.

Export (../shared/reference/onnx-tract-notes.md): no ZipMap; a batch of one
row; torch with `dynamo=False`, opset 17, one file. Each card holds the
features, window, horizon, classes, ranges, folds, parameters, per-fold and
holdout metrics, sha256, and reference inputs and outputs from onnxruntime.
`ensemble.json` in OUT_DIR holds the holdout metrics of every member and of
the soft and weighted votes, against the majority class and always-long, and
the weights (inverse out-of-sample log loss) to give the plugin.
"""
import argparse
import csv
import hashlib
import json
import math
import os
import random

import numpy as np
import onnx
import onnxruntime as ort
import optuna
import skl2onnx
import sklearn
import torch
from skl2onnx import to_onnx
from sklearn.ensemble import GradientBoostingClassifier

SEED = 20161231
WINDOW = 10  # steps of the sequence models
FOLDS = 4
YEAR_NS = 365 * 86_400 * 10**9


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    names = [c for c in rows[0].keys() if c not in ("symbol", "date", "time_ns", "forward_return", "label")]
    symbols = sorted({r["symbol"] for r in rows})
    if len(symbols) != 1:
        raise SystemExit(f"{path}: one symbol expected (the sequence models read one series), found {symbols}")
    x = np.array([[np.float32(r[n]) for n in names] for r in rows], dtype=np.float32)
    y = np.array([int(r["label"]) if r["label"] else -1 for r in rows])
    t = np.array([int(r["time_ns"]) for r in rows])
    dates = [r["date"] for r in rows]
    return names, symbols[0], x, y, t, dates


def sequences(x, steps):
    """Row i's last `steps` rows, oldest first (rows before the first are not there: None)."""
    out = np.zeros((len(x), steps, x.shape[1]), dtype=np.float32)
    for i in range(steps - 1, len(x)):
        out[i] = x[i - steps + 1 : i + 1]
    return out


def metrics(y, p):
    """Accuracy, balanced accuracy, log loss, Brier score and calibration of P(up) = p."""
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    pred = (p > 0.5).astype(int)
    recall = [float((pred[y == c] == c).mean()) if (y == c).any() else 0.0 for c in (0, 1)]
    bins = []
    for lo in np.arange(0.0, 1.0, 0.1):
        m = (p >= lo) & (p < lo + 0.1)
        if m.sum():
            bins.append({"from": round(float(lo), 1), "rows": int(m.sum()), "mean_p": float(p[m].mean()), "up_rate": float(y[m].mean())})
    return {
        "rows": int(len(y)),
        "accuracy": float((pred == y).mean()),
        "balanced_accuracy": float(np.mean(recall)),
        "log_loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))),
        "brier": float(np.mean((p - y) ** 2)),
        "calibration": bins,
    }


def folds(n_dev, horizon):
    """(train indices, validation indices) of expanding walk-forward folds over rows 0..n_dev."""
    block = n_dev // (FOLDS + 1)
    out = []
    for k in range(1, FOLDS + 1):
        start, end = k * block, (k + 1) * block if k < FOLDS else n_dev
        train = np.arange(0, max(0, start - horizon))  # purge
        # Embargo: the rows just after earlier validation blocks stay out of training.
        for j in range(1, k):
            e0 = (j + 1) * block
            train = train[(train < e0) | (train >= e0 + horizon)]
        out.append((train, np.arange(start, end)))
    return out


# ---- members -------------------------------------------------------------

class Gbdt:
    kind = "gbdt"

    def space(self, trial):
        return {
            "max_depth": trial.suggest_int("max_depth", 2, 4),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
            "n_estimators": trial.suggest_int("n_estimators", 40, 150),
            "subsample": trial.suggest_float("subsample", 0.6, 1.0),
            "min_samples_leaf": trial.suggest_int("min_samples_leaf", 20, 300, log=True),
        }

    def fit(self, params, x, y):
        clf = GradientBoostingClassifier(random_state=SEED, **params)
        clf.fit(x, y)
        return clf

    def predict(self, model, x):
        return model.predict_proba(x)[:, 1]

    def export(self, model, x):
        onx = to_onnx(model, x[:1], options={id(model): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
        for value in list(onx.graph.input) + list(onx.graph.output):
            dims = value.type.tensor_type.shape.dim
            if dims and not dims[0].dim_value:
                dims[0].dim_value = 1
        return onx, "X", "probabilities"


class Net(torch.nn.Module):
    """Standardises raw features with constants, then an encoder, then two logits -> softmax."""

    def __init__(self, kind, features, mean, std, p):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
        self.kind = kind
        if kind == "lstm":
            self.body = torch.nn.LSTM(features, p["hidden"], num_layers=p["layers"], batch_first=True, dropout=p["dropout"] if p["layers"] > 1 else 0.0)
            width = p["hidden"]
        else:
            width = p["width"]
            self.embed = torch.nn.Linear(features, width)
            layer = torch.nn.TransformerEncoderLayer(width, p["heads"], dim_feedforward=2 * width, dropout=p["dropout"], batch_first=True)
            self.body = torch.nn.TransformerEncoder(layer, p["depth"], enable_nested_tensor=False)
        self.drop = torch.nn.Dropout(p["dropout"])
        self.head = torch.nn.Linear(width, 2)

    def forward(self, x):
        z = (x - self.mean) / self.std
        if self.kind == "lstm":
            h, _ = self.body(z)
        else:
            h = self.body(self.embed(z))
        return torch.softmax(self.head(self.drop(h[:, -1, :])), dim=-1)


class Sequence:
    def __init__(self, kind, epochs):
        self.kind = kind
        self.epochs = epochs

    def space(self, trial):
        if self.kind == "lstm":
            return {
                "layers": trial.suggest_int("layers", 1, 2),
                "hidden": trial.suggest_categorical("hidden", [8, 16, 32]),
                "dropout": trial.suggest_float("dropout", 0.0, 0.3),
            }
        return {
            "depth": trial.suggest_int("depth", 1, 2),
            "width": trial.suggest_categorical("width", [16, 32]),
            "heads": trial.suggest_categorical("heads", [2, 4]),
            "dropout": trial.suggest_float("dropout", 0.0, 0.3),
        }

    def fit(self, params, x, y):
        seed_all(SEED)
        flat = x.reshape(-1, x.shape[-1])
        mean, std = flat.mean(0), flat.std(0) + 1e-6
        net = Net(self.kind, x.shape[-1], mean, std, params)
        opt = torch.optim.Adam(net.parameters(), lr=2e-3, weight_decay=1e-4)
        xs, ys = torch.tensor(x), torch.tensor(y, dtype=torch.long)
        gen = torch.Generator().manual_seed(SEED)
        net.train()
        for _ in range(self.epochs):
            order = torch.randperm(len(xs), generator=gen)
            for i in range(0, len(xs), 128):
                b = order[i : i + 128]
                opt.zero_grad()
                loss = torch.nn.functional.nll_loss(torch.log(net(xs[b]) + 1e-7), ys[b])
                loss.backward()
                opt.step()
        net.eval()
        return net

    def predict(self, model, x):
        with torch.no_grad():
            return model(torch.tensor(x))[:, 1].numpy()

    def export(self, model, x):
        import io

        buf = io.BytesIO()
        torch.onnx.export(model, (torch.tensor(x[:1]),), buf, input_names=["X"], output_names=["probabilities"], opset_version=17, dynamo=False)
        return onnx.load_from_string(buf.getvalue()), "X", "probabilities"


# ---- the run ---------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset")
    ap.add_argument("out")
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--horizon", type=int, default=1)
    ap.add_argument("--name", default="spy")
    args = ap.parse_args()
    torch.set_num_threads(1)
    seed_all(SEED)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    names, symbol, x, y, t, dates = load(args.dataset)
    seq = sequences(x, WINDOW)
    # Rows with a label and, for every member alike, a full sequence.
    usable = np.arange(WINDOW - 1, len(x))
    usable = usable[y[usable] >= 0]
    holdout_from = t[usable[-1]] - YEAR_NS
    dev = usable[t[usable] < holdout_from]
    hold = usable[t[usable] >= holdout_from]
    fold_list = folds(len(dev), args.horizon)
    os.makedirs(args.out, exist_ok=True)

    members = {"gbdt": Gbdt(), "lstm": Sequence("lstm", args.epochs), "transformer": Sequence("transformer", args.epochs)}
    report = {"dataset": os.path.basename(args.dataset), "symbol": symbol, "seed": SEED, "horizon": args.horizon,
              "holdout": [dates[hold[0]], dates[hold[-1]]], "development": [dates[dev[0]], dates[dev[-1]]],
              "folds": [{"train": [dates[dev[tr[0]]], dates[dev[tr[-1]]]], "validate": [dates[dev[va[0]]], dates[dev[va[-1]]]]} for tr, va in fold_list],
              "members": {}}
    holdout_p = {}
    for kind, m in members.items():
        inputs = x if kind == "gbdt" else seq

        def objective(trial):
            params = m.space(trial)
            losses = []
            for tr, va in fold_list:
                model = m.fit(params, inputs[dev[tr]], y[dev[tr]])
                losses.append(metrics(y[dev[va]], m.predict(model, inputs[dev[va]]))["log_loss"])
            return float(np.mean(losses))

        study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=SEED))
        study.optimize(objective, n_trials=args.trials)
        best = study.best_params
        per_fold = []
        for tr, va in fold_list:
            model = m.fit(best, inputs[dev[tr]], y[dev[tr]])
            per_fold.append(metrics(y[dev[va]], m.predict(model, inputs[dev[va]])))
        final = m.fit(best, inputs[dev], y[dev])
        p_hold = m.predict(final, inputs[hold])
        holdout_p[kind] = p_hold
        onx, inp, outp = m.export(final, inputs[hold])
        onnx.checker.check_model(onx)
        blob = onx.SerializeToString()
        name = f"{kind}-{args.name}"
        sess = ort.InferenceSession(blob)
        ref_rows = inputs[hold][:8]
        ref_out = [sess.run([outp], {inp: r[None]})[0][0].tolist() for r in ref_rows]
        drift = float(np.abs(np.array(ref_out)[:, 1] - p_hold[:8]).max())
        assert drift < 1e-4, f"{name}: onnxruntime differs from the trained model by {drift}"
        with open(os.path.join(args.out, name + ".onnx"), "wb") as f:
            f.write(blob)
        oos = float(np.mean([f["log_loss"] for f in per_fold]))
        entry = {"params": best, "trials": args.trials, "validation_log_loss": oos, "folds": per_fold, "holdout": metrics(y[hold], p_hold), "bytes": len(blob)}
        report["members"][name] = entry
        card = {
            "name": name,
            "file": name + ".onnx",
            "sha256": hashlib.sha256(blob).hexdigest(),
            "input": inp,
            "output": outp,
            "features": names,
            "classes": ["down", "up"],
            "training": {
                "data": report["dataset"], "symbol": symbol, "horizon": args.horizon,
                "label": f"close {args.horizon} bar(s) later above this close",
                "development": report["development"], "holdout_range": report["holdout"], "folds": report["folds"],
                "purge_rows": args.horizon, "embargo_rows": args.horizon,
                "model": kind, "params": best, "trials": args.trials, "seed": SEED,
                "validation_log_loss": oos, "holdout_metrics": entry["holdout"],
                "versions": {"torch": torch.__version__, "scikit-learn": sklearn.__version__, "skl2onnx": skl2onnx.__version__,
                             "onnx": onnx.__version__, "onnxruntime": ort.__version__, "optuna": optuna.__version__},
            },
            "reference": {"inputs": [r.reshape(-1).tolist() for r in ref_rows], "outputs": ref_out, "tolerance": 1e-4, "by": "onnxruntime " + ort.__version__},
        }
        if kind != "gbdt":
            card["window"] = WINDOW
        with open(os.path.join(args.out, name + ".card.json"), "w") as f:
            json.dump(card, f, indent=1)
            f.write("\n")
        h = entry["holdout"]
        print(f"{name}: {len(blob)} bytes; {best}; validation log loss {oos:.4f}; holdout accuracy {h['accuracy']:.4f}, log loss {h['log_loss']:.4f}")

    yh = y[hold]
    names_ = [f"{k}-{args.name}" for k in members]
    inv = np.array([1.0 / report["members"][n]["validation_log_loss"] for n in names_])
    weights = inv / inv.sum()
    stack = np.array([holdout_p[k] for k in members])
    report["weights"] = {n: float(w) for n, w in zip(names_, weights)}
    report["ensemble"] = {
        "soft": metrics(yh, stack.mean(0)),
        "weighted": metrics(yh, (weights[:, None] * stack).sum(0)),
        "hard": metrics(yh, (stack > 0.5).mean(0)),
    }
    up = float(y[dev].mean())
    report["baselines"] = {
        "majority_class": {"class": "up" if up >= 0.5 else "down", **metrics(yh, np.full(len(yh), 1.0 if up >= 0.5 else 0.0))},
        "always_long": metrics(yh, np.full(len(yh), 1.0)),
        "base_rate": metrics(yh, np.full(len(yh), up)),
    }
    report["transformer_vs_lstm"] = {k: report["members"][f"transformer-{args.name}"]["holdout"][k] - report["members"][f"lstm-{args.name}"]["holdout"][k] for k in ("accuracy", "balanced_accuracy", "log_loss", "brier")}
    with open(os.path.join(args.out, "ensemble.json"), "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    e = report["ensemble"]["weighted"]
    print(f"weights {report['weights']}; weighted vote holdout accuracy {e['accuracy']:.4f}, log loss {e['log_loss']:.4f}; always long {report['baselines']['always_long']['accuracy']:.4f}")


if __name__ == "__main__":
    main()
