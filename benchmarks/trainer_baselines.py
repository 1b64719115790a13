"""`edgeml train` vs scikit-learn baselines on the same split of each built-in dataset, in one run.

edgeml trains its compact Keras model (preprocessing inside) with early stopping on the validation part;
the baselines (scaled logistic / ridge regression and histogram gradient boosting) fit train plus
validation. All are scored on the same held-out test part, made by the trainer's own split_data. Prints
accuracy and macro F1 (R² for regression), fit seconds (edgeml's from its metrics.json: the Keras fit
without TensorFlow's start-up), model bytes (float32 weights vs pickled estimator), and edgeml's margin to
the best baseline.
Run: python -m benchmarks.trainer_baselines [--datasets digits,wine,breast_cancer,diabetes]
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import print_header
from edgeml.trainer.data import builtin_dataset
from edgeml.trainer.training import FitConfig, split_data
from tests.support.cli import edgeml


def edgeml_train(dataset: str, outdir: Path) -> dict:
    done = edgeml("train", "--dataset", dataset, "--no-plots", "--json", "-o", outdir, timeout=None)
    if done.returncode != 0:
        sys.exit(f"edgeml train --dataset {dataset} failed: {done.stderr.strip()[-800:]}")
    metrics = json.loads(done.stdout)
    return {"score": score_of(metrics["test"]), "f1": metrics["test"].get("f1_macro"),
            "seconds": metrics["training"]["seconds"], "bytes": metrics["model"]["float32_bytes"]}


def score_of(test: dict) -> float:
    return test["accuracy"] if "accuracy" in test else test["r2"]


def baselines(classification: bool) -> dict:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if classification:
        return {"logistic regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
                "gradient boosting": HistGradientBoostingClassifier(random_state=0)}
    return {"ridge regression": make_pipeline(StandardScaler(), RidgeCV()),
            "gradient boosting": HistGradientBoostingRegressor(random_state=0)}


def fit_baseline(estimator, split, classification: bool) -> dict:
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score, r2_score

    flat = lambda x: x.reshape(len(x), -1)  # noqa: E731 - images become pixel vectors for sklearn
    started = time.perf_counter()
    estimator.fit(np.concatenate([flat(split.x_train), flat(split.x_val)]),
                  np.concatenate([split.y_train, split.y_val]))
    seconds = time.perf_counter() - started
    predicted = estimator.predict(flat(split.x_test))
    if classification:
        score, f1 = accuracy_score(split.y_test, predicted), f1_score(split.y_test, predicted, average="macro")
    else:
        score, f1 = r2_score(split.y_test, predicted), None
    return {"score": score, "f1": f1, "seconds": seconds, "bytes": len(pickle.dumps(estimator))}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="digits,wine,breast_cancer,diabetes")
    args = parser.parse_args()
    print_header("edgeml train vs scikit-learn baselines on the trainer's own split (scores are deterministic; "
                 "fit times are single runs)")
    print(f"{'dataset':<14} {'model':<20} {'score':>7} {'F1':>6} {'fit s':>7} {'bytes':>9}")
    with tempfile.TemporaryDirectory(prefix="edgeml-trainer-bench-") as scratch:
        for dataset in args.datasets.split(","):
            data = builtin_dataset(dataset)
            classification = data.task == "classification"
            split = split_data(data, FitConfig())  # the trainer's defaults: the very split edgeml uses
            rows = {"edgeml train": edgeml_train(dataset, Path(scratch) / dataset)}
            for name, estimator in baselines(classification).items():
                rows[name] = fit_baseline(estimator, split, classification)
            metric = "accuracy" if classification else "R²"
            for name, row in rows.items():
                f1 = f"{row['f1']:.3f}" if row["f1"] is not None else "-"
                print(f"{dataset:<14} {name:<20} {row['score']:7.3f} {f1:>6} {row['seconds']:7.2f} {row['bytes']:9,d}")
            best = max((row["score"], name) for name, row in rows.items() if name != "edgeml train")
            margin = rows["edgeml train"]["score"] - best[0]
            print(f"{'':<14} edgeml {metric} {margin:+.3f} vs the best baseline ({best[1]})")


if __name__ == "__main__":
    main()
