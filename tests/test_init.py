"""`nnctl init DATA.csv --target COLUMN`: a starter config that trains as printed, whatever the
task, with the column types detection finds and the paths right wherever it is saved."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from cli_helpers import DATASETS, assert_user_error, invoke, train, write_text

# file, target -> (loss, output units, output activation)
CASES = {
    "customers": ("customers.csv", "churned", "binary_crossentropy", 1, "sigmoid"),
    "iris": ("iris.csv", "species", "categorical_crossentropy", 3, "softmax"),
    "digits": ("digits_train.csv", "digit", "categorical_crossentropy", 10, "softmax"),
    "moons": ("moons.csv", "label", "binary_crossentropy", 1, "sigmoid"),
    "diabetes": ("regression.csv", "progression", "mse", 1, "linear"),
}


def test_regression_targets_are_learned_standardized():
    config = yaml.safe_load(invoke("init", DATASETS / "regression.csv", "-t", "progression").stdout)
    assert config["data"]["scale_target"] == "standard"
    config = yaml.safe_load(invoke("init", DATASETS / "iris.csv", "-t", "species").stdout)
    assert "scale_target" not in config["data"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_printed_config_trains(tmp_path, monkeypatch, case):
    """`nnctl init d.csv --target y > d.yaml && nnctl train d.yaml`, run from the folder
    that holds the data, as the README shows."""
    file, target, loss, units, activation = CASES[case]
    shutil.copy(DATASETS / file, tmp_path / file)
    monkeypatch.chdir(tmp_path)
    result = invoke("init", file, "--target", target)
    assert result.exit_code == 0, result.stderr
    write_text(tmp_path / "d.yaml", result.stdout)
    config = yaml.safe_load(result.stdout)
    assert config["loss"] == loss
    last = config["model"]["layers"][-1]
    assert (last["units"], last.get("activation", "linear")) == (units, activation)

    _, run_dir = train(tmp_path / "d.yaml", tmp_path / "runs", "--set", "training.epochs=2",
                       "--json")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_run"] == 2


def test_columns_and_class_weights_follow_the_file(tmp_path):
    result = invoke("init", DATASETS / "customers.csv", "--target", "churned")
    config = yaml.safe_load(result.stdout)
    assert config["data"]["columns"] == {
        "customer_id": "ignore", "signup_date": "datetime", "plan": "categorical",
        "region": "categorical",
        "city": {"type": "categorical", "encoding": "embedding"},  # 149 > 100 categories
        "age": "numeric", "monthly_spend": "numeric", "support_calls": "numeric",
        "paperless_billing": "binary", "has_partner": "binary"}
    # weighting classes trades accuracy for the rare class's recall: offered, not chosen
    assert "class_weight" not in config["training"]
    assert "# classes are imbalanced (no 84%, yes 16%)" in result.stdout
    assert "  # class_weight: balanced\n" in result.stdout
    balanced = invoke("init", DATASETS / "iris.csv", "--target", "species").stdout
    assert "imbalanced" not in balanced  # 50 of each


def test_output_file_paths_are_relative_to_its_folder(tmp_path):
    out = tmp_path / "configs" / "c.yaml"
    out.parent.mkdir()
    shutil.copy(DATASETS / "iris.csv", tmp_path / "iris.csv")
    result = invoke("init", tmp_path / "iris.csv", "--target", "species", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert yaml.safe_load(out.read_text())["data"]["train"] == "../iris.csv"
    train(out, tmp_path / "runs", "--set", "training.epochs=1")
    # an existing file is never overwritten
    assert_user_error(invoke("init", tmp_path / "iris.csv", "--target", "species", "-o", out),
                      "already exists")


def test_names_that_yaml_would_change_are_quoted(tmp_path):
    write_text(tmp_path / "odd.csv", "yes,null,a: b,Unnamed: 0,y\n" + "".join(
        f"{i % 3},{i % 5},{i},{i},{i % 2}\n" for i in range(40)))
    result = invoke("init", tmp_path / "odd.csv", "--target", "y", "-o", tmp_path / "odd.yaml")
    assert result.exit_code == 0, result.stderr
    columns = yaml.safe_load((tmp_path / "odd.yaml").read_text())["data"]["columns"]
    assert columns == {"yes": "numeric", "null": "numeric", "a: b": "numeric",
                       "Unnamed: 0": "ignore"}
    train(tmp_path / "odd.yaml", tmp_path / "runs", "--set", "training.epochs=1")


def test_bad_targets_are_refused(tmp_path):
    assert_user_error(invoke("init", DATASETS / "iris.csv", "--target", "colour"),
                      "target column 'colour': not in the file")
    write_text(tmp_path / "one.csv", "x,y\n1,a\n2,a\n3,a\n")
    assert_user_error(invoke("init", tmp_path / "one.csv", "--target", "y"),
                      "only one class ('a')")
