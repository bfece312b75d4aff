"""Classification metrics: nnctl.metrics against scikit-learn on random and edge-case data;
`nnctl eval` reporting them (and equal to scikit-learn on the run's own probabilities);
`--threshold` for eval and predict; val_auc / val_f1 as training monitors."""

from __future__ import annotations

import csv
import io
import math
import warnings

import numpy as np
import pytest
import yaml
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

sk = pytest.importorskip("sklearn.metrics")

import nnctl
from nnctl import metrics as m
from nnctl.config import monitor_mode

from cli_helpers import (
    CONFIGS, DATASETS, assert_user_error, eval_json, invoke, metrics, summary, train,
    write_csv,
)


@pytest.fixture(autouse=True)
def quiet_sklearn():
    # scikit-learn warns on the undefined cases these tests visit on purpose
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ---- data for the reference comparisons ------------------------------------------------------

def binary_cases():
    """(y, scores): random, heavily tied, perfectly separated both ways, one class only."""
    rng = np.random.default_rng(7)
    cases = []
    for n in (2, 5, 30, 200):
        y = rng.integers(0, 2, n)
        cases.append((y, rng.random(n)))
        cases.append((y, rng.integers(0, 4, n) / 3.0))  # few distinct scores: many ties
    y = np.array([0, 0, 0, 1, 1, 1])
    cases.append((y, np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])))  # perfect
    cases.append((y, np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1])))  # perfectly wrong
    cases.append((y, np.full(6, 0.5)))  # all tied
    cases.append((np.ones(5, int), rng.random(5)))
    cases.append((np.zeros(5, int), rng.random(5)))
    return cases


BINARY = binary_cases()


def one_class(y) -> bool:
    return np.unique(y).size < 2


scores = hnp.arrays(np.float64, st.integers(2, 40),
                    elements=st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.5, 0.75, 0.9, 1.0]))


@st.composite
def labelled_scores(draw):
    """Binary labels and scores drawn from a few values, so ties are the rule."""
    s = draw(scores)
    y = draw(hnp.arrays(np.int64, s.shape, elements=st.integers(0, 1)))
    return y, s


# ---- curves ------------------------------------------------------------------------------------

@pytest.mark.parametrize("drop", [True, False])
@pytest.mark.parametrize("y, s", BINARY)
def test_roc_curve_equals_sklearn(y, s, drop):
    ours = m.roc_curve(y, s, drop_intermediate=drop)
    theirs = sk.roc_curve(y, s, drop_intermediate=drop)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, equal_nan=True)


@pytest.mark.parametrize("y, s", BINARY)
def test_precision_recall_curve_equals_sklearn(y, s):
    for a, b in zip(m.precision_recall_curve(y, s), sk.precision_recall_curve(y, s)):
        np.testing.assert_allclose(a, b)


@settings(max_examples=150, deadline=None)
@given(labelled_scores())
def test_curves_and_areas_equal_sklearn_with_ties(case):
    y, s = case
    for a, b in zip(m.roc_curve(y, s), sk.roc_curve(y, s)):
        np.testing.assert_allclose(a, b, equal_nan=True)
    for a, b in zip(m.precision_recall_curve(y, s), sk.precision_recall_curve(y, s)):
        np.testing.assert_allclose(a, b)
    if one_class(y):
        assert math.isnan(m.roc_auc(y, s))
    else:
        assert m.roc_auc(y, s) == pytest.approx(sk.roc_auc_score(y, s), abs=1e-12)
    if y.any():
        assert m.average_precision(y, s) == pytest.approx(
            sk.average_precision_score(y, s), abs=1e-12)


# ---- binary scores -----------------------------------------------------------------------------

@pytest.mark.parametrize("y, s", BINARY)
def test_roc_auc_equals_sklearn_and_is_nan_for_one_class(y, s):
    if one_class(y):
        assert math.isnan(m.roc_auc(y, s))  # scikit-learn: NaN with a warning
        assert math.isnan(sk.roc_auc_score(y, s))
    else:
        assert m.roc_auc(y, s) == pytest.approx(sk.roc_auc_score(y, s), abs=1e-12)


def test_roc_auc_hand_checked():
    y = np.array([0, 0, 1, 1])
    assert m.roc_auc(y, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert m.roc_auc(y, [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert m.roc_auc(y, [0.5, 0.5, 0.5, 0.5]) == 0.5  # ties count half
    # positives rank 1st and 3rd of 4: 3 of the 4 (positive, negative) pairs are ordered
    assert m.roc_auc(y, [0.1, 0.6, 0.4, 0.9]) == 0.75


@pytest.mark.parametrize("y, s", BINARY)
def test_average_precision_equals_sklearn(y, s):
    if not y.any():
        assert math.isnan(m.average_precision(y, s))  # no positive: undefined (sklearn: 0)
    else:
        assert m.average_precision(y, s) == pytest.approx(
            sk.average_precision_score(y, s), abs=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_loss_equals_sklearn_with_its_clipping(dtype):
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 50)
    p = rng.random(50).astype(dtype)
    p[:4] = [0.0, 1.0, 0.0, 1.0]  # certain and right or certain and wrong: clipped to eps
    y[:4] = [0, 0, 1, 1]
    assert m.log_loss(y, p) == pytest.approx(sk.log_loss(y, p, labels=[0, 1]), rel=1e-6)
    k = rng.random((50, 4)).astype(dtype)
    k[0] = [1, 0, 0, 0]
    k /= k.sum(axis=1, keepdims=True)
    yk = rng.integers(0, 4, 50)
    assert m.log_loss(yk, k) == pytest.approx(sk.log_loss(yk, k, labels=range(4)), rel=1e-6)


@pytest.mark.parametrize("y, s", BINARY)
def test_binary_f1_equals_sklearn(y, s):
    predicted = (s >= 0.5).astype(int)
    confusion = m.confusion_matrix(y, predicted, 2)
    assert m.f1_from_confusion(confusion, "binary") == pytest.approx(
        sk.f1_score(y, predicted, zero_division=0.0))


def test_macro_f1_equals_sklearn_over_classes_seen():
    rng = np.random.default_rng(5)
    for _ in range(50):
        y = rng.integers(0, 5, 30)
        predicted = rng.integers(0, 6, 30)  # class 5 is predicted but never true
        predicted[predicted == 2] = 3  # class 2 is true but never predicted
        confusion = m.confusion_matrix(y, predicted, 6)
        assert m.f1_from_confusion(confusion, "macro") == pytest.approx(
            sk.f1_score(y, predicted, average="macro", zero_division=0.0))


# ---- several classes ---------------------------------------------------------------------------

def softmax_rows(rng, n, k, ties=False):
    p = rng.random((n, k))
    if ties:
        p = np.round(p, 1) + 0.05
    return p / p.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("ties", [False, True])
def test_ovr_auc_equals_sklearn(ties):
    rng = np.random.default_rng(11)
    for n, k in [(20, 3), (100, 5), (300, 10)]:
        p = softmax_rows(rng, n, k, ties)
        y = np.r_[np.arange(k), rng.integers(0, k, n - k)]  # every class present
        assert m.roc_auc_ovr(y, p) == pytest.approx(
            sk.roc_auc_score(y, p, multi_class="ovr", average="macro"), abs=1e-12)


def test_ovr_auc_averages_the_classes_present():
    rng = np.random.default_rng(2)
    p = softmax_rows(rng, 40, 4)
    y = rng.integers(0, 3, 40)  # class 3 never occurs: its AUC has no negatives... no positives
    expected = np.mean([sk.roc_auc_score(y == c, p[:, c]) for c in range(3)])
    assert m.roc_auc_ovr(y, p) == pytest.approx(expected, abs=1e-12)
    assert math.isnan(m.roc_auc_ovr(np.zeros(40, int), p))


def test_top_k_equals_sklearn_with_ties():
    rng = np.random.default_rng(4)
    for ties in (False, True):
        p = softmax_rows(rng, 200, 10, ties)
        y = rng.integers(0, 10, 200)
        for k in (1, 3, 5):
            assert m.top_k_accuracy(y, p, k) == pytest.approx(
                sk.top_k_accuracy_score(y, p, k=k, labels=range(10)))


def test_multi_label_metrics_average_sklearns_per_output_values():
    rng = np.random.default_rng(9)
    y = rng.integers(0, 2, (60, 3)).astype(np.float32)
    p = rng.random((60, 3))
    result = m.eval_metrics("binary", y, p, threshold=0.5)
    assert result["auc"] == pytest.approx(sk.roc_auc_score(y, p, average="macro"))
    assert result["pr_auc"] == pytest.approx(sk.average_precision_score(y, p, average="macro"))
    assert result["f1"] == pytest.approx(
        sk.f1_score(y, p >= 0.5, average="macro", zero_division=0.0))
    expected = np.mean([sk.log_loss(y[:, j], p[:, j], labels=[0, 1]) for j in range(3)])
    assert result["log_loss"] == pytest.approx(expected)
    # an output with one class has no AUC: the average is over the others
    y[:, 1] = 1
    result = m.eval_metrics("binary", y, p)
    expected = np.mean([sk.roc_auc_score(y[:, j], p[:, j]) for j in (0, 2)])
    assert result["auc"] == pytest.approx(expected)


def test_top_k_choice_and_monitor_modes():
    assert [m.top_k(n) for n in (2, 3, 4, 10, 11, 100)] == [None, None, 3, 3, 5, 5]
    for name in ("val_auc", "val_f1", "test_auc", "val_accuracy"):
        assert monitor_mode(name, "auto") == "max"
    assert monitor_mode("val_loss", "auto") == "min"
    assert monitor_mode("val_auc", "min") == "min"


# ---- nnctl eval --------------------------------------------------------------------------------

def read_csv_text(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("binary-runs")
    _, run_dir = train(CONFIGS / "moons.yaml", runs, "--set", "training.epochs=8")
    return run_dir


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("digits-runs")
    _, run_dir = train(CONFIGS / "digits.yaml", runs, "--set", "training.epochs=3")
    return run_dir


def test_binary_eval_reports_the_metrics_sklearn_computes(binary_run):
    data = DATASETS / "moons.csv"
    report = eval_json(binary_run, data)
    run = nnctl.load(binary_run)
    p = run.predict_proba(data)[:, 1]
    y = np.loadtxt(data, delimiter=",", skiprows=1, usecols=-1).astype(int)
    assert report["auc"] == pytest.approx(sk.roc_auc_score(y, p), abs=1e-9)
    assert report["pr_auc"] == pytest.approx(sk.average_precision_score(y, p), abs=1e-9)
    assert report["log_loss"] == pytest.approx(sk.log_loss(y, p), rel=1e-9)
    assert report["f1"] == pytest.approx(sk.f1_score(y, (p >= 0.5).astype(int)))
    assert report["threshold"] == 0.5
    assert run.evaluate(data) == report  # the Python API gives the same numbers

    result = invoke("eval", binary_run, data)
    assert result.exit_code == 0, result.stderr
    lines = {line.split("  ")[0]: line.split()[-1] for line in result.stdout.splitlines()
             if line[:1].isalpha() and "  " in line}
    for key, name in [("auc", "auc"), ("pr_auc", "pr auc"), ("log_loss", "log loss"),
                      ("f1", "f1")]:
        assert float(lines[name]) == pytest.approx(report[key], abs=5e-5), name


def test_multiclass_eval_reports_macro_auc_f1_log_loss_and_top_3(digits_run):
    data = DATASETS / "digits_test.csv"
    report = eval_json(digits_run)  # no DATA: the config's test file
    p = nnctl.load(digits_run).predict_proba(data)
    header = (DATASETS / "digits_test.csv").read_text().splitlines()[0].split(",")
    y = np.loadtxt(data, delimiter=",", skiprows=1, usecols=header.index("digit")).astype(int)
    assert report["auc"] == pytest.approx(
        sk.roc_auc_score(y, p, multi_class="ovr", average="macro"), abs=1e-9)
    assert report["f1"] == pytest.approx(sk.f1_score(y, p.argmax(axis=1), average="macro"))
    assert report["log_loss"] == pytest.approx(sk.log_loss(y, p, labels=range(10)), rel=1e-9)
    assert report["top_3_accuracy"] == pytest.approx(sk.top_k_accuracy_score(y, p, k=3))
    assert "pr_auc" not in report and "threshold" not in report
    result = invoke("eval", digits_run)
    assert result.exit_code == 0, result.stderr
    assert "top 3 accuracy" in result.stdout and "\nauc " in result.stdout


def test_eval_leaves_out_an_auc_the_data_cannot_define(binary_run, tmp_path):
    rows = [line.split(",") for line in (DATASETS / "moons.csv").read_text().splitlines()]
    only_ones = [r for r in rows[1:] if r[-1].strip() == "1"][:20]
    path = write_csv(tmp_path / "ones.csv", rows[0], only_ones)
    report = eval_json(binary_run, path)
    assert "auc" not in report and "log_loss" in report and "f1" in report
    assert report["pr_auc"] == pytest.approx(1.0)  # every row positive: precision 1 throughout


# ---- --threshold -------------------------------------------------------------------------------

@pytest.mark.parametrize("threshold", [0.2, 0.5, 0.9])
def test_threshold_moves_labels_in_eval_and_predict(binary_run, threshold):
    data = DATASETS / "moons.csv"
    p = nnctl.load(binary_run).predict_proba(data)[:, 1]
    y = np.loadtxt(data, delimiter=",", skiprows=1, usecols=-1).astype(int)
    predicted = (p >= threshold).astype(int)
    report = eval_json(binary_run, data, "--threshold", threshold)
    assert report["threshold"] == threshold
    assert report["confusion_matrix"] == sk.confusion_matrix(y, predicted).tolist()
    assert report["accuracy"] == pytest.approx(sk.accuracy_score(y, predicted))
    assert report["f1"] == pytest.approx(sk.f1_score(y, predicted))
    assert report["classes"]["1"]["precision"] == pytest.approx(sk.precision_score(y, predicted))
    assert report["auc"] == pytest.approx(sk.roc_auc_score(y, p))  # no threshold in AUC

    result = invoke("predict", binary_run, data, "--threshold", threshold)
    assert result.exit_code == 0, result.stderr
    rows = read_csv_text(result.stdout)
    assert [int(r["pred_label"]) for r in rows] == predicted.tolist()
    frame = nnctl.load(binary_run).predict(data, threshold=threshold)
    assert frame["pred_label"].tolist() == predicted.tolist()


def test_a_higher_threshold_labels_fewer_rows_positive(binary_run):
    data = DATASETS / "moons.csv"
    counts = [int((nnctl.load(binary_run).predict(data, threshold=t)["pred_label"] == 1).sum())
              for t in (0.1, 0.5, 0.9)]
    assert counts[0] > counts[1] > counts[2]


def test_threshold_is_refused_off_binary_runs_and_out_of_range(binary_run, digits_run,
                                                               tmp_path):
    assert_user_error(invoke("eval", digits_run, "--threshold", 0.3),
                      "--threshold: only for binary runs", "most probable class")
    assert_user_error(invoke("predict", digits_run, DATASETS / "digits_test.csv",
                             "--threshold", 0.3), "--threshold: only for binary runs")
    _, regression = train(CONFIGS / "diabetes.yaml", tmp_path, "--set", "training.epochs=1")
    assert_user_error(invoke("eval", regression, "--threshold", 0.5),
                      "a regression run predicts values")
    for bad in ("0", "1", "1.5", "-0.2", "nan"):
        assert_user_error(invoke("eval", binary_run, "--threshold", bad),
                          "--threshold: must be greater than 0 and less than 1")
    with pytest.raises(nnctl.UserError, match="only for binary runs"):
        nnctl.load(digits_run).predict(DATASETS / "digits_test.csv", threshold=0.5)


# ---- monitoring during training ----------------------------------------------------------------

def test_early_stopping_on_val_auc_records_it_and_keeps_the_max(tmp_path):
    overrides = ["--set", "training.early_stopping={monitor: val_auc, patience: 3}",
                 "--set", "training.checkpoint.monitor=val_auc", "--set", "training.epochs=30",
                 "--set", "optimizer.lr=0.05"]
    _, run_dir = train(CONFIGS / "moons.yaml", tmp_path, *overrides)
    header, rows = metrics(run_dir)
    assert header == ["epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy",
                      "val_auc", "val_f1", "lr", "seconds"]
    auc = [float(r["val_auc"]) for r in rows]
    assert all(0.5 < a <= 1 for a in auc)
    info = summary(run_dir)
    best = int(np.argmax(auc)) + 1  # the first epoch with the highest AUC: max, not min
    assert info["best_epoch"] == best
    assert info["best"]["val_auc"] == pytest.approx(max(auc), abs=1e-7)
    if info["status"] == "early_stopped":
        assert info["epochs_run"] == best + 3
    # the best checkpoint's AUC on the validation split is the one metrics.csv recorded
    assert eval_json(run_dir)["auc"] == pytest.approx(max(auc), abs=1e-6)


def test_val_f1_drives_a_plateau_schedule_and_digits_records_both(tmp_path):
    _, run_dir = train(CONFIGS / "digits.yaml", tmp_path, "--set", "training.epochs=3",
                       "--set", "training.lr_schedule={type: plateau, monitor: val_f1, "
                                "patience: 0, factor: 0.5}")
    header, rows = metrics(run_dir)
    assert "val_auc" in header and "val_f1" in header and "train_auc" not in header
    info = summary(run_dir)
    assert {"auc", "f1"} <= set(info["test"])  # the test split reports them too
    f1 = [float(r["val_f1"]) for r in rows]
    lr = [float(r["lr"]) for r in rows]
    for i in range(1, len(rows)):  # patience 0: the rate halves after any epoch not improving
        expected = lr[i - 1] * (1.0 if f1[i] > max(f1[:i]) else 0.5)
        assert lr[i] == pytest.approx(expected)


def test_monitors_are_checked_against_the_task_and_the_data(tmp_path):
    result = invoke("validate", CONFIGS / "moons.yaml", "--set", "training.checkpoint.monitor=train_auc")
    assert_user_error(result, "training.checkpoint.monitor", "unknown metric 'train_auc'", "val_auc")
    result = invoke("validate", CONFIGS / "diabetes.yaml", "--set",
                    "training.checkpoint.monitor=val_auc")
    assert_user_error(result, "unknown metric 'val_auc'")
    # a validation file with one class: AUC is undefined every epoch, refused before training
    rows = [line.split(",") for line in (DATASETS / "moons.csv").read_text().splitlines()]
    write_csv(tmp_path / "val.csv", rows[0], [r for r in rows[1:] if r[-1].strip() == "0"][:30])
    config = yaml.safe_load((CONFIGS / "moons.yaml").read_text())
    config["data"].update(train=str(DATASETS / "moons.csv"), validation="val.csv")
    config["training"]["early_stopping"] = {"monitor": "val_auc"}
    (tmp_path / "one.yaml").write_text(yaml.safe_dump(config))
    result = invoke("train", tmp_path / "one.yaml", "--runs-dir", tmp_path / "runs", "--quiet")
    assert_user_error(result, "training.early_stopping.monitor",
                      "val_auc is undefined: the validation data holds one class only")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
