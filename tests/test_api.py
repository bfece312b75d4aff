"""The Python API (nnctl.train, nnctl.load, Run.predict / predict_proba / evaluate) gives what
the command line gives: the same predictions byte for byte, the same eval numbers, the same
runs, and the same error messages (only an override's label differs). Importing nnctl stays
light."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import nnctl
from nnctl.cli import app

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
DATASETS = ROOT / "datasets"
EPOCHS = 3

runner = CliRunner()

# name: (config, file to predict, labelled file to evaluate)
EXAMPLES = {
    "iris": ("iris.yaml", "iris.csv", "iris.csv"),                      # 3 classes
    "diabetes": ("diabetes.yaml", "regression.csv", "regression.csv"),  # regression
    # categorical, embedding and binary columns; the new file has blanks and unseen categories
    "customers": ("customers.yaml", "customers_new.csv", "customers.csv"),
}
CLASSIFIERS = ["iris", "customers"]


def cli(*args):
    """`nnctl ARGS...` in-process; stdout and stderr kept apart."""
    return runner.invoke(app, [str(a) for a in args])


def cli_ok(*args):
    result = cli(*args)
    assert result.exit_code == 0, (result.exit_code, result.stderr, result.exception)
    return result


def cli_problems(*args) -> list[str]:
    """The lines a failing command prints after `error: ` (exit code 2, nothing on stdout)."""
    result = cli(*args)
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr,
                                   result.exception)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith("error: ") for line in lines), lines
    return [line.removeprefix("error: ") for line in lines]


def to_csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, float_format="%.6g")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, "nnctl.Run"]:
    """Each example trained once, for a few epochs, through the API."""
    runs_dir = tmp_path_factory.mktemp("api-runs")
    return {name: nnctl.train(CONFIGS / config, {"training.epochs": EPOCHS}, runs_dir=runs_dir)
            for name, (config, _, _) in EXAMPLES.items()}


def predict_file(name: str) -> Path:
    return DATASETS / EXAMPLES[name][1]


def eval_file(name: str) -> Path:
    return DATASETS / EXAMPLES[name][2]


# ---- 1. predict equals `nnctl predict` ---------------------------------------------------------

@pytest.mark.parametrize("checkpoint", ["best", "last"])
@pytest.mark.parametrize("name", list(EXAMPLES))
def test_predict_equals_cli_predict_byte_for_byte(runs, name, checkpoint, capsys):
    trained = runs[name]
    assert trained.status == "completed"
    path = predict_file(name)
    expected = cli_ok("predict", trained.path, path, "--checkpoint", checkpoint)
    assert expected.stdout.count("\n") == len(pd.read_csv(path)) + 1  # header + every row

    run = nnctl.load(trained.path, checkpoint=checkpoint)
    assert isinstance(run, nnctl.Run) and run.checkpoint == checkpoint
    capsys.readouterr()
    assert to_csv(run.predict(str(path))) == expected.stdout
    # the notes about the file (blanks, unseen categories) are the CLI's, word for word
    assert capsys.readouterr().err == expected.stderr
    assert to_csv(run.predict(path)) == expected.stdout  # a Path works too
    assert to_csv(run.predict(pd.read_csv(path))) == expected.stdout


def test_customers_file_has_what_predict_must_cope_with(runs):
    """The categorical case is only a test of blanks and unseen categories if the file has them."""
    result = cli_ok("predict", runs["customers"].path, predict_file("customers"))
    new = pd.read_csv(predict_file("customers"))
    assert new.isna().any().any()
    assert "outside the training categories" in result.stderr


def test_nullable_number_columns_predict_as_their_float64_copies(runs):
    """pandas' nullable Int64 and Float64 columns hold blanks as pd.NA, NumPy's float64 ones as
    NaN: both are blanks, filled with the training fill."""
    run = nnctl.load(runs["customers"].path)
    frame = pd.read_csv(predict_file("customers"))
    nullable = frame.astype({"age": "Int64", "monthly_spend": "Float64",
                             "support_calls": "Int64"})
    assert nullable["age"].isna().any() and nullable["monthly_spend"].isna().any()
    pd.testing.assert_frame_equal(run.predict(nullable), run.predict(frame))


def test_predict_keep_equals_cli_keep(runs):
    run = nnctl.load(runs["customers"].path)
    path = predict_file("customers")
    expected = cli_ok("predict", run.path, path, "--keep", "customer_id", "--keep", "plan")
    frame = run.predict(path, keep=["customer_id", "plan"])
    assert list(frame.columns[:2]) == ["customer_id", "plan"]
    assert to_csv(frame) == expected.stdout


# ---- 2. evaluate equals `nnctl eval --json` ----------------------------------------------------

@pytest.mark.parametrize("name", list(EXAMPLES))
def test_evaluate_equals_cli_eval_json(runs, name):
    run = nnctl.load(runs[name].path)
    path = eval_file(name)
    expected = json.loads(cli_ok("eval", run.path, path, "--json").stdout)

    result = run.evaluate(str(path))
    json.dumps(result, allow_nan=False)  # plain JSON values, no NumPy scalars
    assert result["data"] == expected["data"] == str(path)
    assert result == expected
    assert result["rows"] > 0 and np.isfinite(result["loss"])

    from_frame = run.evaluate(pd.read_csv(path))
    assert from_frame["data"] == "DataFrame"
    assert {**from_frame, "data": str(path)} == expected


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_evaluate_without_data_equals_cli_eval_without_data(runs, name):
    """Both default to the run's test data, else its validation split."""
    run = nnctl.load(runs[name].path)
    expected = json.loads(cli_ok("eval", run.path, "--json").stdout)
    assert run.evaluate() == expected
    assert expected["rows"] == run.summary["rows"]["validation"]


# ---- 3. predict_proba ------------------------------------------------------------------------

@pytest.mark.parametrize("name", CLASSIFIERS)
def test_predict_proba_agrees_with_predict(runs, name):
    run = nnctl.load(runs[name].path)
    path = predict_file(name)
    frame = pd.read_csv(path)
    proba = run.predict_proba(frame)
    predictions = run.predict(frame)
    target = run.config.data.target

    assert isinstance(proba, np.ndarray)
    assert proba.shape == (len(frame), len(run.classes))
    assert len(run.classes) >= 2
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-6)
    assert (proba >= 0).all()
    labels = np.asarray(run.classes, dtype=object)[proba.argmax(axis=1)]
    assert list(labels) == list(predictions[f"pred_{target}"])
    prob_columns = [f"prob_{label}" for label in run.classes]
    assert [c for c in predictions.columns if c.startswith("prob_")] == prob_columns
    np.testing.assert_array_equal(proba, predictions[prob_columns].to_numpy(dtype=np.float64))
    np.testing.assert_array_equal(run.predict_proba(str(path)), proba)  # a path reads the same


# ---- 4. dict config, file config, CLI train ----------------------------------------------------

def metrics_without_time(run) -> pd.DataFrame:
    frame = run.metrics
    assert "seconds" in frame.columns
    return frame.drop(columns=["seconds"])


def test_dict_config_trains_the_same_run_as_the_file(tmp_path, monkeypatch):
    config_file = CONFIGS / "iris.yaml"
    raw = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    overrides = {"training.epochs": EPOCHS}

    from_file = nnctl.train(config_file, overrides, runs_dir=tmp_path / "file", seed=1)
    absolute = {**raw, "data": {**raw["data"],
                                "train": str((config_file.parent / raw["data"]["train"]).resolve())}}
    from_dict = nnctl.train(absolute, overrides, runs_dir=tmp_path / "dict", seed=1)
    # a relative path in a dict is read from the current folder
    monkeypatch.chdir(config_file.parent)
    given = copy.deepcopy(raw)
    from_relative = nnctl.train(raw, overrides, runs_dir=tmp_path / "relative", seed=1)
    assert raw == given  # the caller's dict is left as it was

    expected = metrics_without_time(from_file)
    assert len(expected) == EPOCHS
    for run in (from_dict, from_relative):
        assert run.status == "completed"
        pd.testing.assert_frame_equal(metrics_without_time(run), expected)
        assert run.config.model_dump() == from_file.config.model_dump()
    assert from_file.config.seed == 1


def test_override_list_and_dict_equal_cli_train(tmp_path):
    config = CONFIGS / "iris.yaml"
    as_dict = nnctl.train(config, {"training.epochs": EPOCHS, "optimizer.lr": 0.02},
                        runs_dir=tmp_path / "dict", seed=2, run_name="same")
    as_list = nnctl.train(config, [f"training.epochs={EPOCHS}", "optimizer.lr=0.02"],
                        runs_dir=tmp_path / "list", seed=2, run_name="same")
    result = cli_ok("train", config, "--set", f"training.epochs={EPOCHS}",
                    "--set", "optimizer.lr=0.02", "--seed", 2, "--run-name", "same",
                    "--runs-dir", tmp_path / "cli", "--quiet")
    from_cli = nnctl.load(result.stdout.splitlines()[0])

    assert as_dict.config.optimizer.lr == 0.02 and as_dict.config.seed == 2
    assert as_dict.path.name.startswith("same-")
    expected_config = (from_cli.path / "config.yaml").read_text(encoding="utf-8")
    expected = metrics_without_time(from_cli)
    for run in (as_dict, as_list):
        assert (run.path / "config.yaml").read_text(encoding="utf-8") == expected_config
        pd.testing.assert_frame_equal(metrics_without_time(run), expected)
        for name, array in nnctl.load(run.path).model.state_dict().items():
            np.testing.assert_array_equal(array, from_cli.model.state_dict()[name])


# ---- 5. errors -------------------------------------------------------------------------------

def label_and_message(problem: str) -> tuple[str, str]:
    label, _, message = problem.partition(": ")
    assert message, problem
    return label, message


def test_bad_override_is_the_cli_error_with_its_own_label(tmp_path):
    runs_dir = tmp_path / "runs"
    config = CONFIGS / "iris.yaml"
    expected = cli_problems("train", config, "--set", "optimizer.lr=-1", "--runs-dir", runs_dir)

    with pytest.raises(nnctl.ConfigError) as caught:
        nnctl.train(config, {"optimizer.lr": -1}, runs_dir=runs_dir)
    problems = caught.value.problems
    assert len(problems) == len(expected) == 1
    for got, want in zip(problems, expected):
        got_label, got_message = label_and_message(got)
        want_label, want_message = label_and_message(want)
        assert "optimizer.lr" in got_label and "optimizer.lr" in want_label
        assert got_label != want_label
        assert got_message == want_message
    assert str(caught.value) == "\n".join(problems)

    # as KEY=VALUE strings, the overrides read exactly as --set does
    with pytest.raises(nnctl.ConfigError) as caught:
        nnctl.train(config, ["optimizer.lr=-1"], runs_dir=runs_dir)
    assert caught.value.problems == expected
    assert not runs_dir.exists()  # nothing is written for a bad config


def test_bad_data_in_training_is_a_data_error_and_writes_nothing(tmp_path):
    runs_dir = tmp_path / "runs"
    frame = pd.read_csv(DATASETS / "iris.csv").drop(columns=["species"])
    frame.to_csv(tmp_path / "no_target.csv", index=False)
    config = {**yaml.safe_load((CONFIGS / "iris.yaml").read_text(encoding="utf-8"))}
    config["data"] = {**config["data"], "train": str(tmp_path / "no_target.csv")}
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
    expected = cli_problems("train", config_file, "--runs-dir", runs_dir)

    with pytest.raises(nnctl.DataError) as caught:
        nnctl.train(config_file, runs_dir=runs_dir)
    assert caught.value.problems == expected
    with pytest.raises(nnctl.DataError) as caught:
        nnctl.train(config, runs_dir=runs_dir)
    assert caught.value.problems == expected
    assert not runs_dir.exists()


def test_missing_feature_column_is_the_cli_data_error(runs, tmp_path):
    run = nnctl.load(runs["iris"].path)
    frame = pd.read_csv(DATASETS / "iris.csv").drop(columns=["petal_width"])
    path = tmp_path / "no_petal_width.csv"
    frame.to_csv(path, index=False)
    expected = cli_problems("predict", run.path, path)
    assert any("petal_width" in line for line in expected)

    for call in (run.predict, run.predict_proba, run.evaluate):
        with pytest.raises(nnctl.DataError) as caught:
            call(str(path))
        assert caught.value.problems == expected, call
    assert cli_problems("eval", run.path, path) == expected
    with pytest.raises(nnctl.DataError) as caught:
        run.predict(frame)
    assert caught.value.problems == [line.replace(str(path), "DataFrame").replace(
        "not in the file", "not in the DataFrame") for line in expected]


def test_loading_what_is_not_a_run_is_a_user_error(runs, tmp_path):
    csv = DATASETS / "iris.csv"
    for folder in (tmp_path, tmp_path / "missing"):
        expected = cli_problems("predict", folder, csv)
        with pytest.raises(nnctl.UserError) as caught:
            nnctl.load(folder)
        assert caught.value.problems == expected
    assert list(tmp_path.iterdir()) == []  # loading creates nothing

    with pytest.raises(nnctl.UserError) as caught:
        nnctl.load(runs["iris"].path, checkpoint="bogus")
    assert "bogus" in str(caught.value)


def test_a_broken_checkpoint_is_a_checkpoint_error_when_loading(runs, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(runs["iris"].path, copy)
    (copy / "checkpoints" / "best.npz").write_bytes(b"not an npz file")
    expected = cli_problems("predict", copy, DATASETS / "iris.csv")
    with pytest.raises(nnctl.CheckpointError) as caught:
        nnctl.load(copy)
    assert caught.value.problems == expected
    nnctl.load(copy, checkpoint="last")  # the other checkpoint is untouched


def test_predict_proba_of_a_regression_run_is_a_user_error(runs):
    run = nnctl.load(runs["diabetes"].path)
    assert run.classes == []
    with pytest.raises(nnctl.UserError) as caught:
        run.predict_proba(predict_file("diabetes"))
    assert str(run.path) in caught.value.problems[0]
    assert list(run.predict(predict_file("diabetes")).columns) == ["pred_progression"]


# ---- 6. the package --------------------------------------------------------------------------

def test_import_is_light_and_lists_the_api():
    code = ("import json, sys, nnctl; "
            "print(json.dumps({'heavy': sorted(m for m in ('numpy', 'pandas', 'matplotlib') "
            "if m in sys.modules), 'dir': dir(nnctl), 'all': nnctl.__all__, "
            "'version': nnctl.__version__}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["heavy"] == []
    for name in ("train", "load", "resume", "Run", "UserError", "ConfigError", "DataError",
                 "CheckpointError"):
        assert name in info["dir"] and name in info["all"]

    version = subprocess.run([sys.executable, "-m", "nnctl.cli", "--version"],
                             capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert version.returncode == 0, version.stderr
    assert version.stdout == f"nnctl {info['version']}\n"
    assert info["version"] == nnctl.__version__ and nnctl.__version__


def test_errors_are_user_errors():
    for cls in (nnctl.ConfigError, nnctl.DataError, nnctl.CheckpointError):
        assert issubclass(cls, nnctl.UserError)
    assert nnctl.UserError("one problem").problems == ["one problem"]


def test_nnctl_train_stays_the_function():
    """Importing the package's modules (as training does) must not rebind the API's names."""
    code = ("import nnctl; first = nnctl.train; second = nnctl.train; "
            "from nnctl import train as third; import nnctl.api; "
            "print(all(f is nnctl.api.train for f in (first, second, third, nnctl.train)))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"


# ---- 7. metrics and summary ------------------------------------------------------------------

@pytest.mark.parametrize("name", list(EXAMPLES))
def test_metrics_has_one_row_per_epoch(runs, name):
    run = nnctl.load(runs[name].path)
    metrics = run.metrics
    assert isinstance(metrics, pd.DataFrame)
    assert len(metrics) == run.summary["epochs_run"] == EPOCHS
    assert list(metrics.columns[:2]) == ["epoch", "train_loss"]
    assert list(metrics["epoch"]) == list(range(1, EPOCHS + 1))
    on_disk = pd.read_csv(run.path / "metrics.csv")
    pd.testing.assert_frame_equal(metrics, on_disk, check_dtype=False)
    assert run.summary == json.loads((run.path / "summary.json").read_text(encoding="utf-8"))
    assert run.status == run.summary["status"] == "completed"
