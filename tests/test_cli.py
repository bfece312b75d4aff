"""`nnctl train`, `eval` and `predict` end to end on every example config, plus the train
flags (--set, --seed, --run-name, --json, --resume) and a few real subprocesses."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from cli_helpers import (
    CONFIGS, DATASETS, RUN_NAME, assert_user_error, eval_json, invoke, make_problem,
    metrics, npz, read_csv, run_dirs, summary, train, weights, write_csv,
)

# What each example config must produce. `rows` is the size of the data `nnctl eval RUN`
# uses by default: the test file, else the (stratified) validation split. `epochs`, where
# given, shortens the run (--set training.epochs=N) to keep the suite fast; iris, digits,
# moons and both waveform configs run in full, since their accuracies are asserted.
EXAMPLES = {
    "iris": dict(task="classification", targets=["species"], test=None, rows=30,
                 classes=["setosa", "versicolor", "virginica"],
                 shapes={"layers.0.W": (4, 16), "layers.0.b": (16,), "layers.2.W": (16, 3),
                         "layers.2.b": (3,)}),
    "digits": dict(task="classification", targets=["digit"], test="digits_test.csv", rows=450,
                   classes=list(range(10)),
                   shapes={"layers.0.W": (64, 64), "layers.2.W": (64, 10)}),
    "moons": dict(task="binary", targets=["label"], test=None, rows=200, classes=[0, 1],
                  shapes={"layers.0.W": (2, 32), "layers.1.W": (32, 32), "layers.2.W": (32, 1)}),
    "xor": dict(task="binary", targets=["label"], test=None, rows=160, classes=[0, 1], epochs=20,
                shapes={"layers.0.W": (2, 16), "layers.1.W": (16, 1)}),
    "diabetes": dict(task="regression", targets=["progression"], test=None, rows=88,
                     classes=[], shapes={"layers.0.W": (10, 32), "layers.1.W": (32, 1)}),
    "multi_output": dict(task="regression", targets=["y1", "y2"], test=None, rows=200, epochs=20,
                         classes=[], shapes={"layers.0.W": (4, 64), "layers.1.W": (64, 64),
                                             "layers.2.W": (64, 2)}),
    "waveforms_dense": dict(task="classification", targets=["shape"],
                            test="waveforms_test.csv", rows=800,
                            classes=["sawtooth", "sine", "square", "triangle"],
                            shapes={"layers.0.W": (40, 32), "layers.1.W": (32, 4)}),
    "waveforms_rnn": dict(task="classification", targets=["shape"],
                          test="waveforms_test.csv", rows=800,
                          classes=["sawtooth", "sine", "square", "triangle"],
                          shapes={"layers.0.W_x": (1, 32), "layers.0.W_h": (32, 32),
                                  "layers.0.b": (32,), "layers.1.W": (32, 4)}),
    "customers": dict(task="binary", targets=["churned"], test=None, rows=400,
                      classes=["no", "yes"],
                      shapes={"inputs.city.E": (148, 26), "layers.0.W": (54, 64),
                              "layers.2.W": (64, 32), "layers.3.W": (32, 1)}),
    "sine_next": dict(task="regression", targets=["next"], test=None, rows=300, classes=[],
                      epochs=12,
                      shapes={"layers.0.W_x": (1, 32), "layers.0.W_h": (32, 32),
                              "layers.1.W": (32, 1)}),
}


def test_every_example_config_is_covered():
    """Every training config in configs/ (sweep files, with a top-level `config:`, aside)."""
    training = [p.stem for p in CONFIGS.glob("*.yaml")
                if "config" not in (yaml.safe_load(p.read_text()) or {})]
    assert sorted(training) == sorted(EXAMPLES)


class TrainedExamples:
    """Trains each example config once (all of them, full length: each takes a few seconds),
    on first use, into one runs folder for the module."""

    def __init__(self, runs_dir: Path):
        self.runs_dir = runs_dir
        self.done: dict[str, tuple[object, Path]] = {}

    def get(self, name: str) -> tuple[object, Path]:
        if name not in self.done:
            epochs = EXAMPLES[name].get("epochs")
            extra = ["--set", f"training.epochs={epochs}"] if epochs else []
            self.done[name] = train(CONFIGS / f"{name}.yaml", self.runs_dir, "--json", *extra)
        return self.done[name]


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    return TrainedExamples(tmp_path_factory.mktemp("example-runs"))


def metric_columns(task: str) -> list[str]:
    if task == "regression":
        return ["epoch", "train_loss", "val_loss", "train_mae", "val_mae", "train_r2", "val_r2",
                "lr", "seconds"]
    # ROC AUC and F1 need every output at once: the validation pass has them, not the batches
    return ["epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy", "val_auc",
            "val_f1", "lr", "seconds"]


# ---- train: the run directory -------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_train_writes_a_complete_run_directory(examples, name):
    result, run_dir = examples.get(name)
    spec = EXAMPLES[name]
    lines = result.stdout.splitlines()
    assert len(lines) == 2  # the run directory, then the summary JSON
    assert Path(lines[0]) == run_dir
    assert run_dir.parent == examples.runs_dir
    assert RUN_NAME.match(run_dir.name).group("name") == name  # default name: the file's stem
    for rel in ("config.yaml", "metrics.csv", "summary.json", "train.log",
                "checkpoints/last.npz", "checkpoints/last.json",
                "checkpoints/best.npz", "checkpoints/best.json"):
        assert (run_dir / rel).is_file(), rel

    # --json: the last stdout line is exactly summary.json
    info = summary(run_dir)
    assert json.loads(lines[-1]) == info

    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    original = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    assert config["name"] == name
    epochs = spec.get("epochs", original["training"]["epochs"])
    assert config["training"]["epochs"] == epochs
    assert Path(config["data"]["train"]).is_absolute() and Path(config["data"]["train"]).is_file()

    header, rows = metrics(run_dir)
    assert header == metric_columns(spec["task"])
    assert [int(r["epoch"]) for r in rows] == list(range(1, len(rows) + 1))
    for row in rows:
        for key, value in row.items():
            assert value not in ("", None), (key, row)
            assert math.isfinite(float(value))
    assert all(float(r["seconds"]) >= 0 for r in rows)

    assert info["status"] in ("completed", "early_stopped")
    assert info["epochs_run"] == len(rows)
    if info["status"] == "completed":
        assert info["epochs_run"] == epochs
    else:
        assert info["epochs_run"] < epochs
    assert 1 <= info["best_epoch"] <= info["epochs_run"]
    best_row = rows[info["best_epoch"] - 1]
    assert info["best"]["epoch"] == info["best_epoch"]
    assert info["best"]["val_loss"] == pytest.approx(float(best_row["val_loss"]), rel=1e-6)
    # best means the lowest val_loss (the default monitor with validation data)
    assert float(best_row["val_loss"]) == min(float(r["val_loss"]) for r in rows)
    assert info["final"]["epoch"] == info["epochs_run"]
    assert info["final"]["train_loss"] == pytest.approx(float(rows[-1]["train_loss"]), rel=1e-6)
    assert info["seed"] == 0
    assert isinstance(info["command"], str)  # in-process: pytest's argv (see the subprocess test)
    assert set(info["versions"]) >= {"nnctl", "numpy", "python"}
    assert info["versions"]["numpy"] == np.__version__
    assert info["wall_seconds"] > 0
    if spec["test"]:
        assert set(info["test"]) >= {"loss", "accuracy"}
    else:
        assert info["test"] is None

    log = (run_dir / "train.log").read_text()
    assert "started" in log and f"{info['status']} after {info['epochs_run']} epochs" in log


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_checkpoints_hold_named_verified_arrays(examples, name):
    _, run_dir = examples.get(name)
    spec, info = EXAMPLES[name], summary(run_dir)
    arrays = npz(run_dir / "checkpoints" / "last.npz")
    for key, shape in spec["shapes"].items():
        assert arrays[key].shape == shape, key
        assert arrays[key].dtype == np.float32
    meta = json.loads((run_dir / "checkpoints" / "last.json").read_text())
    assert meta["epoch"] == info["epochs_run"]
    assert meta["preprocessing"]["targets"] == spec["targets"]
    assert meta["preprocessing"]["classes"] == spec["classes"]
    for key in spec["shapes"]:
        entry = meta["arrays"][key]
        assert entry["shape"] == list(spec["shapes"][key])
        digest = hashlib.sha256(np.ascontiguousarray(arrays[key]).tobytes()).hexdigest()
        assert entry["sha256"] == digest
    best = json.loads((run_dir / "checkpoints" / "best.json").read_text())
    assert best["epoch"] == info["best_epoch"]
    # at most keep_last (default 3) epoch checkpoints, of the epochs saved (every 10 s of
    # training and at the end), the final epoch among them
    epochs = sorted(int(p.stem.split("-")[1])
                    for p in (run_dir / "checkpoints").glob("epoch-*.npz"))
    n = info["epochs_run"]
    assert epochs[-1] == n and len(epochs) <= 3, epochs


# ---- eval ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_eval_reports_metrics_of_the_best_checkpoint(examples, name):
    _, run_dir = examples.get(name)
    spec, info = EXAMPLES[name], summary(run_dir)

    table = invoke("eval", run_dir)
    assert table.exit_code == 0, table.stderr
    assert f"{spec['rows']} rows" in table.stdout
    assert ("r2" if spec["task"] == "regression" else "accuracy") in table.stdout

    report = eval_json(run_dir)
    assert report["rows"] == spec["rows"]
    assert report["checkpoint"] == "best"
    if spec["test"]:
        # the default data is the test file, which training scored with the best weights too
        assert report["loss"] == pytest.approx(info["test"]["loss"], rel=1e-5)
        assert report["accuracy"] == pytest.approx(info["test"]["accuracy"])
    else:
        # the default data is the validation split, recovered from the seed
        assert report["loss"] == pytest.approx(info["best"]["val_loss"], rel=1e-5)
    if spec["task"] == "regression":
        assert {"mse", "rmse", "mae", "r2"} <= set(report)
        assert report["rmse"] == pytest.approx(math.sqrt(report["mse"]))
        assert report["mae"] > 0 and report["r2"] <= 1
        assert sorted(report["targets"]) == sorted(spec["targets"])
        if spec["test"] is None:
            assert report["mae"] == pytest.approx(info["best"]["val_mae"], rel=1e-4)
            assert report["r2"] == pytest.approx(info["best"]["val_r2"], rel=1e-4, abs=1e-5)
        # mse loss averages over every value, so it is the mse, plus any weight penalty
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        if any(layer.get("l1") or layer.get("l2") for layer in config["model"]["layers"]):
            assert report["loss"] > report["mse"]
        else:
            assert report["loss"] == pytest.approx(report["mse"], rel=1e-5)
        return
    labels = [str(c) for c in spec["classes"]]
    assert report["labels"] == labels
    assert list(report["classes"]) == labels
    for row in report["classes"].values():
        assert set(row) >= {"precision", "recall", "f1", "support"}
        assert 0 <= row["precision"] <= 1 and 0 <= row["recall"] <= 1 and 0 <= row["f1"] <= 1
    confusion = np.array(report["confusion_matrix"])
    assert confusion.shape == (len(labels), len(labels))
    assert confusion.sum() == report["rows"]
    assert report["accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum())
    assert [r["support"] for r in report["classes"].values()] == confusion.sum(axis=1).tolist()
    if spec["test"] is None:
        assert report["accuracy"] == pytest.approx(info["best"]["val_accuracy"])
    assert "confusion matrix" in table.stdout and "precision" in table.stdout


def test_eval_last_checkpoint_and_explicit_file(examples):
    _, run_dir = examples.get("iris")
    info = summary(run_dir)
    last = eval_json(run_dir, "--checkpoint", "last")
    assert last["checkpoint"] == "last"
    assert last["loss"] == pytest.approx(info["final"]["val_loss"], rel=1e-5)
    # the default data is the stratified validation split: 20% of each class's 50 rows
    default = eval_json(run_dir)
    assert [r["support"] for r in default["classes"].values()] == [10, 10, 10]
    whole = eval_json(run_dir, DATASETS / "iris.csv")
    assert whole["rows"] == 150
    assert np.array(whole["confusion_matrix"]).sum() == 150
    assert [r["support"] for r in whole["classes"].values()] == [50, 50, 50]


def test_eval_bad_arguments(examples, tmp_path):
    _, run_dir = examples.get("iris")
    assert_user_error(invoke("eval", run_dir, "--checkpoint", "middle"),
                      "--checkpoint: must be 'best' or 'last' (got 'middle')")
    assert_user_error(invoke("eval", tmp_path / "nothing"),
                      f"{tmp_path / 'nothing'}: no such run directory")
    assert_user_error(invoke("eval", tmp_path), "not a run directory")


# ---- the accuracies the example configs promise ------------------------------------------

def test_iris_reaches_090_validation_accuracy(examples):
    _, run_dir = examples.get("iris")
    assert eval_json(run_dir)["accuracy"] >= 0.9
    assert summary(run_dir)["best"]["val_accuracy"] >= 0.9


def test_digits_reaches_095_test_accuracy(examples):
    _, run_dir = examples.get("digits")
    assert summary(run_dir)["test"]["accuracy"] >= 0.95


def test_moons_reaches_095_validation_accuracy(examples):
    _, run_dir = examples.get("moons")
    assert eval_json(run_dir)["accuracy"] >= 0.95


def test_rnn_beats_the_dense_network_on_waveforms(examples):
    rnn = summary(examples.get("waveforms_rnn")[1])["test"]["accuracy"]
    dense = summary(examples.get("waveforms_dense")[1])["test"]["accuracy"]
    assert rnn > 0.6  # chance is 0.25
    assert rnn > dense + 0.05, (rnn, dense)


def test_regression_examples_learn(examples):
    assert summary(examples.get("multi_output")[1])["best"]["val_r2"] > 0.9
    assert summary(examples.get("diabetes")[1])["best"]["val_r2"] > 0.3
    assert summary(examples.get("sine_next")[1])["best"]["val_r2"] > 0.9


# ---- predict -------------------------------------------------------------------------------

def features_only(source: Path, targets: list[str], dest: Path) -> tuple[list[str], list[dict]]:
    """Copy a CSV without its target columns, with a leading `row_id` column."""
    header, rows = read_csv(source)
    keep = [c for c in header if c not in targets]
    write_csv(dest, ["row_id", *keep], ([i, *(r[c] for c in keep)] for i, r in enumerate(rows)))
    return header, rows


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_predict_without_the_target_column(examples, name, tmp_path):
    _, run_dir = examples.get(name)
    spec = EXAMPLES[name]
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    source = Path(config["data"]["test"] or config["data"]["train"])
    _, rows = features_only(source, spec["targets"], tmp_path / "inputs.csv")
    first_feature = next(c for c in rows[0] if c not in spec["targets"])

    out = tmp_path / "out.csv"
    result = invoke("predict", run_dir, tmp_path / "inputs.csv", "-o", out,
                    "--keep", "row_id", "--keep", first_feature)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    header, predicted = read_csv(out)
    assert len(predicted) == len(rows)
    # rows in input order, kept columns copied through
    assert [int(r["row_id"]) for r in predicted] == list(range(len(rows)))
    assert [r[first_feature] for r in predicted] == [r[first_feature] for r in rows]

    if spec["task"] == "regression":
        assert header == ["row_id", first_feature] + [f"pred_{t}" for t in spec["targets"]]
        # the predictions score as eval scores the same file
        truth = np.array([[float(r[t]) for t in spec["targets"]] for r in rows])
        guess = np.array([[float(r[f"pred_{t}"]) for t in spec["targets"]] for r in predicted])
        report = eval_json(run_dir, source)
        assert np.mean((truth - guess) ** 2) == pytest.approx(report["mse"], rel=1e-3)
        return
    labels = [str(c) for c in spec["classes"]]
    target = spec["targets"][0]
    assert header == ["row_id", first_feature, f"pred_{target}"] + [f"prob_{c}" for c in labels]
    probs = np.array([[float(r[f"prob_{c}"]) for c in labels] for r in predicted])
    assert np.all((probs >= 0) & (probs <= 1))
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert {r[f"pred_{target}"] for r in predicted} <= set(labels)  # original class names
    assert [r[f"pred_{target}"] for r in predicted] == [labels[i] for i in probs.argmax(axis=1)]
    # the predicted labels score the accuracy eval reports on the same file
    accuracy = np.mean([p[f"pred_{target}"] == r[target] for p, r in zip(predicted, rows)])
    assert accuracy == pytest.approx(eval_json(run_dir, source)["accuracy"])


def test_predict_to_stdout_in_input_order(examples, tmp_path):
    _, run_dir = examples.get("iris")
    header, rows = read_csv(DATASETS / "iris.csv")
    features = header[:4]
    write_csv(tmp_path / "fwd.csv", features, ([r[c] for c in features] for r in rows))
    write_csv(tmp_path / "rev.csv", features, ([r[c] for c in features] for r in rows[::-1]))
    fwd = invoke("predict", run_dir, tmp_path / "fwd.csv")
    rev = invoke("predict", run_dir, tmp_path / "rev.csv")
    assert fwd.exit_code == 0 and rev.exit_code == 0, (fwd.stderr, rev.stderr)
    fwd_lines, rev_lines = fwd.stdout.splitlines(), rev.stdout.splitlines()
    assert fwd_lines[0] == "pred_species,prob_setosa,prob_versicolor,prob_virginica"
    assert len(fwd_lines) == 151
    assert fwd_lines[1:] == rev_lines[1:][::-1]
    # a trained iris model gets the first (setosa) and last (virginica) rows right
    assert fwd_lines[1].startswith("setosa,") and fwd_lines[-1].startswith("virginica,")


def test_predict_errors(examples, tmp_path):
    _, run_dir = examples.get("iris")
    write_csv(tmp_path / "partial.csv", ["sepal_length", "sepal_width", "petal_length"],
              [[5.1, 3.5, 1.4]])
    assert_user_error(invoke("predict", run_dir, tmp_path / "partial.csv"),
                      f"{tmp_path / 'partial.csv'}:1 feature column 'petal_width': not in the file")
    write_csv(tmp_path / "ok.csv", ["sepal_length", "sepal_width", "petal_length", "petal_width"],
              [[5.1, 3.5, 1.4, 0.2]])
    assert_user_error(invoke("predict", run_dir, tmp_path / "ok.csv", "--keep", "id"),
                      "--keep column 'id': not in the file")
    write_csv(tmp_path / "bad.csv", ["sepal_length", "sepal_width", "petal_length", "petal_width"],
              [[5.1, 3.5, 1.4, 0.2], [5.1, "x", 1.4, 0.2]])
    assert_user_error(invoke("predict", run_dir, tmp_path / "bad.csv"),
                      f"{tmp_path / 'bad.csv'}:3 column 'sepal_width': not a number ('x')")


def test_predict_with_string_classes_in_a_tiny_run(tmp_path):
    config = make_problem(tmp_path, epochs=30)
    _, run_dir = train(config, tmp_path / "runs")
    header, rows = read_csv(tmp_path / "data.csv")
    write_csv(tmp_path / "in.csv", ["x1", "x2", "x3", "id"],
              ([r["x1"], r["x2"], r["x3"], r["id"]] for r in rows))
    result = invoke("predict", run_dir, tmp_path / "in.csv", "--keep", "id")
    assert result.exit_code == 0, result.stderr
    out_header, out = read_csv_text(result.stdout)
    assert out_header == ["id", "pred_label", "prob_ant", "prob_moth", "prob_zebra"]
    assert [r["id"] for r in out] == [r["id"] for r in rows]
    # well-separated blobs: the original names come back, row by row
    assert np.mean([o["pred_label"] == r["label"] for o, r in zip(out, rows)]) > 0.95


def test_keep_the_target_column_does_not_lose_it(tmp_path):
    config = make_problem(tmp_path, epochs=1)
    _, run_dir = train(config, tmp_path / "runs", "--set", "optimizer.lr=0.001")
    _, rows = read_csv(tmp_path / "data.csv")
    truth = [r["label"] for r in rows]
    result = invoke("predict", run_dir, tmp_path / "data.csv", "--keep", "label")
    if result.exit_code == 2:  # refusing the clash, naming the column, is fine too
        assert "label" in result.stderr
        return
    assert result.exit_code == 0, result.stderr
    table = list(csv.reader(io.StringIO(result.stdout)))
    columns = list(zip(*table[1:]))
    labels = ["ant", "moth", "zebra"]
    probs = np.array([[float(v) for v in row[-3:]] for row in table[1:]])
    predicted = [labels[i] for i in probs.argmax(axis=1)]
    assert predicted != truth  # a one-epoch model still makes mistakes: the columns differ
    assert len(table[0]) == 1 + 1 + 3
    assert list(columns[0]) == truth or list(columns[1]) == truth
    assert list(columns[0]) == predicted or list(columns[1]) == predicted


def read_csv_text(text: str):
    reader = csv.DictReader(io.StringIO(text))
    rows = list(reader)
    return list(reader.fieldnames), rows


def test_multi_label_binary_and_no_validation(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(60):
        a, b = rng.standard_normal(2)
        rows.append([f"{a:.3f}", f"{b:.3f}", int(a > 0), int(b > 0)])
    write_csv(tmp_path / "ml.csv", ["a", "b", "t1", "t2"], rows)
    config = tmp_path / "ml.yaml"
    config.write_text(
        "data: {train: ml.csv, target: [t1, t2], validation: null}\n"
        "model:\n  layers:\n    - {type: dense, units: 8, activation: tanh}\n"
        "    - {type: dense, units: 2, activation: sigmoid}\n"
        "loss: binary_crossentropy\noptimizer: {type: adam, lr: 0.05}\ntraining: {epochs: 30}\n")
    _, run_dir = train(config, tmp_path / "runs")
    header, rows_out = metrics(run_dir)
    # no validation data: no val_ columns, and the monitor is train_loss
    assert header == ["epoch", "train_loss", "train_accuracy", "lr", "seconds"]
    assert summary(run_dir)["monitor"] == "train_loss"
    assert float(rows_out[-1]["train_accuracy"]) > 0.9
    # eval needs a file when the run has neither test nor validation data
    assert_user_error(invoke("eval", run_dir), "no test or validation data")
    report = eval_json(run_dir, tmp_path / "ml.csv")
    assert report["rows"] == 60 and report["accuracy"] > 0.9
    write_csv(tmp_path / "in.csv", ["a", "b"], ([r[0], r[1]] for r in rows))
    result = invoke("predict", run_dir, tmp_path / "in.csv")
    assert result.exit_code == 0, result.stderr
    out_header, out = read_csv_text(result.stdout)
    assert out_header == ["pred_t1", "prob_t1", "pred_t2", "prob_t2"]
    for r, o in zip(rows, out):
        assert o["pred_t1"] == str(int(float(o["prob_t1"]) > 0.5))
        assert o["pred_t2"] == str(int(float(o["prob_t2"]) > 0.5))
    both = [o["pred_t1"] == str(r[2]) and o["pred_t2"] == str(r[3]) for r, o in zip(rows, out)]
    assert np.mean(both) > 0.85


def test_numeric_class_labels_sort_numerically(tmp_path):
    write_csv(tmp_path / "num.csv", ["a", "k"], [[i % 3 + 0.1 * (i % 7), [2, 10, 33][i % 3]]
                                                   for i in range(30)])
    config = tmp_path / "num.yaml"
    config.write_text("data: {train: num.csv, target: k}\nmodel:\n  layers:\n"
                      "    - {type: dense, units: 3, activation: softmax}\n"
                      "loss: categorical_crossentropy\ntraining: {epochs: 2}\n")
    _, run_dir = train(config, tmp_path / "runs")
    meta = json.loads((run_dir / "checkpoints/last.json").read_text())
    assert meta["preprocessing"]["classes"] == [2, 10, 33]
    result = invoke("predict", run_dir, tmp_path / "num.csv")
    assert result.stdout.splitlines()[0] == "pred_k,prob_2,prob_10,prob_33"
    assert {line.split(",")[0] for line in result.stdout.splitlines()[1:]} <= {"2", "10", "33"}


# ---- --set, --seed, --run-name ---------------------------------------------------------------

def test_set_list_index_changes_config_and_weight_shapes(tmp_path):
    config = make_problem(tmp_path)
    _, run_dir = train(config, tmp_path / "runs", "--set", "model.layers.0.units=5",
                       "--set", "training.epochs=2")
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["model"]["layers"][0]["units"] == 5
    assert saved["training"]["epochs"] == 2
    w = weights(run_dir)
    assert w["layers.0.W"].shape == (3, 5)
    assert w["layers.0.b"].shape == (5,)
    assert w["layers.2.W"].shape == (5, 3)
    assert len(metrics(run_dir)[1]) == 2


def test_set_yaml_values(tmp_path):
    config = make_problem(tmp_path, early_stopping={"patience": 0, "min_delta": 100.0})
    _, run_dir = train(config, tmp_path / "runs",
                       "--set", "training.early_stopping=null",
                       "--set", "optimizer={type: sgd, lr: 0.1}",
                       "--set", "training.epochs=4")
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["training"]["early_stopping"] is None
    assert saved["optimizer"] == {"type": "sgd", "lr": 0.1, "momentum": 0.0, "nesterov": False}
    info = summary(run_dir)
    assert info["status"] == "completed" and info["epochs_run"] == 4
    assert [float(r["lr"]) for r in metrics(run_dir)[1]] == [0.1] * 4
    # sgd without momentum keeps no adam moments
    assert not any(k.startswith("optimizer.exp_avg") for k in npz(run_dir / "checkpoints/last.npz"))


def test_later_set_wins_and_saved_config_reruns(tmp_path):
    config = make_problem(tmp_path)
    _, run_dir = train(config, tmp_path / "runs", "--set", "optimizer.lr=0.5",
                       "--set", "optimizer.lr=0.02")
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["optimizer"]["lr"] == 0.02
    # "nnctl train on it reruns the run": from another folder, same weights
    _, again = train(run_dir / "config.yaml", tmp_path / "runs2")
    a, b = weights(run_dir), weights(again)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("assignment,message", [
    ("optimizer.lr=abc", "--set optimizer.lr=abc: must be a valid number"),
    ("optimizer.lr=-1", "--set optimizer.lr=-1: must be greater than 0 (got -1)"),
    ("training.epochs=[1", "--set training.epochs=[1: the value is not valid YAML"),
    ("model.layers.7.units=3", "--set model.layers.7.units=3:"),
    ("no_equals_sign", "--set no_equals_sign: expected KEY=VALUE"),
    ("model.layers.\u00b9.units=3", "--set model.layers.\u00b9.units=3:"),  # not a digit 0-9
    ("optimizer={type: sgd, lr: -2}",
     "--set optimizer={type: sgd, lr: -2}: optimizer.lr: must be greater than 0"),
])
def test_invalid_set_is_a_usage_error(tmp_path, assignment, message):
    config = make_problem(tmp_path)
    lines = assert_user_error(invoke("train", config, "--runs-dir", tmp_path / "runs", "--quiet",
                                     "--set", assignment), message)
    assert lines[0].startswith(f"error: --set {assignment}")
    assert run_dirs(tmp_path / "runs") == []
    # validate reports it the same way
    assert_user_error(invoke("validate", config, "--set", assignment), message)


def test_unknown_key_from_set_names_the_set(tmp_path):
    config = make_problem(tmp_path)
    lines = assert_user_error(invoke("validate", config, "--set", "trainng.epochs=3"),
                              "did you mean 'training'?")
    assert lines[0].startswith("error: --set trainng.epochs=3")


def test_seed_and_run_name(tmp_path):
    config = make_problem(tmp_path)
    _, run_dir = train(config, tmp_path / "runs", "--seed", "7", "--run-name", "exp1")
    assert RUN_NAME.match(run_dir.name).group("name") == "exp1"
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["seed"] == 7 and saved["name"] == "exp1"
    info = summary(run_dir)
    assert info["seed"] == 7 and info["name"] == "exp1"
    # the default name is the config file's stem
    _, default = train(config, tmp_path / "runs")
    assert RUN_NAME.match(default.name).group("name") == "tiny"
    assert default != run_dir


def test_run_directories_are_never_reused(tmp_path):
    config = make_problem(tmp_path)
    dirs = {train(config, tmp_path / "runs", "--set", "training.epochs=1")[1] for _ in range(3)}
    assert len(dirs) == 3
    assert sorted(dirs) == run_dirs(tmp_path / "runs")


def test_bad_run_name_is_refused(tmp_path):
    config = make_problem(tmp_path)
    result = invoke("train", config, "--runs-dir", tmp_path / "runs", "--quiet",
                    "--run-name", "bad name/..")
    assert_user_error(result, "bad name/..")
    assert run_dirs(tmp_path / "runs") == []


# ---- train: flags that are refused ------------------------------------------------------------

def test_missing_config_is_a_usage_error(tmp_path):
    assert_user_error(invoke("train", "--runs-dir", tmp_path / "runs"), "missing CONFIG")
    assert run_dirs(tmp_path / "runs") == []


def test_resume_refuses_a_config_and_other_flags(tmp_path):
    config = make_problem(tmp_path)
    _, run_dir = train(config, tmp_path / "runs", "--set", "training.epochs=1")
    before = run_dirs(tmp_path / "runs")
    assert_user_error(invoke("train", config, "--resume", run_dir), "CONFIG cannot be combined")
    assert_user_error(invoke("train", "--resume", run_dir, "--set", "training.epochs=3"),
                      "--set cannot be combined")
    assert_user_error(invoke("train", "--resume", run_dir, "--seed", "3"), "--seed")
    assert run_dirs(tmp_path / "runs") == before
    assert len(metrics(run_dir)[1]) == 1


def test_resume_of_a_finished_run_changes_nothing(tmp_path):
    config = make_problem(tmp_path)
    _, run_dir = train(config, tmp_path / "runs", "--set", "training.epochs=2")
    before = (run_dir / "metrics.csv").read_text()
    result = invoke("train", "--resume", run_dir, "--quiet")
    assert result.exit_code == 0, result.stderr
    assert Path(result.stdout.splitlines()[0]) == run_dir
    assert (run_dir / "metrics.csv").read_text() == before


def test_config_is_not_found(tmp_path):
    assert_user_error(invoke("train", tmp_path / "nope.yaml", "--runs-dir", tmp_path / "runs"),
                      f"{tmp_path / 'nope.yaml'}: no such file")
    assert run_dirs(tmp_path / "runs") == []


# ---- real processes -----------------------------------------------------------------------

def subprocess_env():
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    return env


def test_python_m_nnctl_train_prints_only_the_run_dir_on_stdout(tmp_path):
    config = make_problem(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "nnctl.cli", "train", str(config), "--runs-dir",
         str(tmp_path / "runs"), "--set", "training.epochs=2"],
        capture_output=True, text=True, timeout=120, env=subprocess_env(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    assert Path(lines[0]).parent == tmp_path / "runs"
    assert Path(lines[0]).is_dir()
    # stderr is not a terminal: one progress line per epoch
    epoch_lines = [l for l in proc.stderr.splitlines() if l.startswith("epoch ")]
    assert [l.split()[1] for l in epoch_lines] == ["1/2", "2/2"]
    assert "train_loss" in epoch_lines[0] and "val_accuracy" in epoch_lines[0]
    info = summary(Path(lines[0]))
    assert "train" in info["command"] and "--set training.epochs=2" in info["command"]


def test_console_script_errors_have_no_traceback(tmp_path):
    script = shutil.which("nnctl")
    if script is None:
        pytest.skip("the nnctl console script is not on PATH")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {train: d.csv, target: y}\nmodel: {layers: []}\nloss: mse\n"
                   "optimizer: {type: adam, lr: -1}\n")
    proc = subprocess.run([script, "train", str(bad), "--runs-dir", str(tmp_path / "runs")],
                          capture_output=True, text=True, timeout=120, env=subprocess_env())
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        f"error: {bad}:2 model.layers: must have at least 1 item after validation, not 0",
        f"error: {bad}:4 optimizer.lr: must be greater than 0 (got -1)",
    ]
    assert not (tmp_path / "runs").exists()
    help_ = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert help_.returncode == 0 and "train" in help_.stdout and "predict" in help_.stdout


# ---- --set: messages that name what was typed, paths from the current folder --------------

def nnctl_process(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nnctl.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=120, env=subprocess_env(),
                          cwd=cwd)


@pytest.mark.parametrize("assignment,message", [
    ("model.layers.0.dropout=0.1",
     "unknown key; model.layers.0 (type: dense) has no 'dropout', its keys are units, "
     "activation, init, l1, l2; for dropout, add a layer {type: dropout, rate: 0.1}"),
    ("optimizer.momentum=0.9",
     "unknown key; optimizer (type: adam) has no 'momentum', its keys are lr, beta1, beta2, eps; "
     "optimizer type sgd has 'momentum': {type: sgd, momentum: 0.9}; momentum is an optimizer "
     "type of its own (keys: lr, beta)"),
    ("optimizer.lrr=0.1", "unknown key; did you mean 'lr'?"),
    ("model.layers.1.units=4",
     "unknown key; model.layers.1 (type: dropout) has no 'units', its keys are rate; layer types "
     "dense and rnn have 'units': {type: dense, units: 4}"),
    # the file holds optimizer.lr on a line of its own: the --set is blamed, not that line
    ("optimizer.lr=-1", "must be greater than 0 (got -1)"),
])
def test_set_errors_name_the_set_the_key_and_a_fix(tmp_path, assignment, message):
    config = make_problem(tmp_path)
    proc = nnctl_process("train", config, "--runs-dir", tmp_path / "runs", "--quiet",
                         "--set", assignment, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [f"error: --set {assignment}: {message}"]
    assert not (tmp_path / "runs").exists()


def test_set_paths_and_command_line_paths_are_relative_to_the_current_folder(tmp_path):
    from cli_helpers import CLASS_HEADER, classification_rows

    project = tmp_path / "project"
    config = make_problem(project)  # its data.csv, beside it, is named relative to the file
    # decoys beside the config under the names given below: reading one fails the run
    for name in ("train.csv", "held/val.csv", "held/test.csv"):
        write_csv(project / name, ["a", "b"], [[1, 2]])
    work = tmp_path / "work"
    write_csv(work / "train.csv", CLASS_HEADER, classification_rows(90, seed=1))
    write_csv(work / "held" / "val.csv", CLASS_HEADER, classification_rows(30, seed=2))
    write_csv(work / "held" / "test.csv", CLASS_HEADER, classification_rows(30, seed=3))
    proc = nnctl_process("train", config, "--runs-dir", "runs", "--quiet",
                         "--set", "data.train=train.csv", "--set", "data.validation=held/val.csv",
                         "--set", "data.test=held/test.csv", "--set", "training.epochs=2",
                         cwd=work)
    assert proc.returncode == 0, proc.stderr
    run_dir = work / proc.stdout.splitlines()[0]
    assert run_dir.parent == work / "runs"
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())["data"]
    assert saved["train"] == str((work / "train.csv").resolve())
    assert saved["validation"] == str((work / "held" / "val.csv").resolve())
    assert saved["test"] == str((work / "held" / "test.csv").resolve())
    assert summary(run_dir)["test"]["loss"] > 0
    # the saved config reruns from anywhere on the same files, to the same weights
    again = nnctl_process("train", run_dir / "config.yaml", "--runs-dir", tmp_path / "runs2",
                          "--quiet", cwd=project)
    assert again.returncode == 0, again.stderr
    first, second = weights(run_dir), weights(Path(again.stdout.splitlines()[0]))
    assert first.keys() == second.keys() and all(np.array_equal(first[k], second[k])
                                                 for k in first)
    # paths that are command-line arguments are read from the current folder too
    relative_run = run_dir.relative_to(work)
    evaluated = nnctl_process("eval", relative_run, "held/test.csv", "--json", cwd=work)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout.splitlines()[-1])["rows"] == 30
    started = nnctl_process("train", config, "--runs-dir", "runs", "--quiet",
                            "--set", "training.epochs=1",
                            "--init-weights", relative_run / "checkpoints" / "best.npz",
                            cwd=work)
    assert started.returncode == 0, started.stderr
    resumed = nnctl_process("train", "--resume", relative_run, "--quiet", cwd=work)
    assert resumed.returncode == 0, resumed.stderr
    assert work / resumed.stdout.splitlines()[0] == run_dir  # printed as given: runs/...


MADVISE = """
import sys
from nnctl import cli
sys.argv = ["nnctl", "--version"]
try:
    cli.main()
except SystemExit:
    pass
import numpy
print(numpy._core.multiarray._get_madvise_hugepage())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="huge pages are Linux's")
@pytest.mark.parametrize("setting, expected", [(None, "False"), ("1", "True")])
def test_the_command_asks_numpy_for_no_huge_pages_unless_the_user_did(setting, expected):
    """NumPy's madvise for huge pages stalls first touches of new arrays where the kernel
    compacts memory to find them; the command line turns it off, a user's setting wins."""
    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    if setting is not None:
        env["NUMPY_MADVISE_HUGEPAGE"] = setting
    done = subprocess.run([sys.executable, "-c", MADVISE], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == expected
