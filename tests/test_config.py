"""`nnctl validate` (and `train`) on configs: the resolved config, and config errors that
name the file, the YAML line and the dotted path, all of them at once, with exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cli_helpers import (
    CLASS_HEADER, assert_user_error, classification_rows, invoke, run_dirs, train, write_csv,
    write_text,
)

# A valid config; the tests below edit single lines of it (1-based line numbers).
BASE = """\
name: tiny
seed: 0
data:
  train: data.csv
  validation: 0.2
  target: label
  features: [x1, x2, x3]
model:
  layers:
    - {type: dense, units: 8, activation: relu}
    - {type: dropout, rate: 0.2}
    - {type: dense, units: 3, activation: softmax}
loss: categorical_crossentropy
optimizer:
  type: adam
  lr: 0.01
training:
  epochs: 3
  batch_size: 16
"""


def edited(**lines: str) -> str:
    """BASE with some lines replaced: edited(l16="  lr: -1"); an empty string deletes the
    line's content (keeping the numbering of the others)."""
    text = BASE.splitlines()
    for key, value in lines.items():
        text[int(key[1:]) - 1] = value
    return "\n".join(text) + "\n"


@pytest.fixture
def folder(tmp_path):
    write_csv(tmp_path / "data.csv", CLASS_HEADER, classification_rows(60))
    return tmp_path


def config_file(folder: Path, text: str, name: str = "x.yaml") -> Path:
    return write_text(folder / name, text)


def validate_errors(path: Path, *fragments: str, extra=()) -> list[str]:
    """Run validate, expect exit 2; return the problems (stderr lines without 'error: ')."""
    lines = assert_user_error(invoke("validate", path, *extra), *fragments)
    assert all(line.startswith("error: ") for line in lines), lines
    return [line[len("error: "):] for line in lines]


# ---- the resolved config ------------------------------------------------------------------

def test_validate_prints_the_resolved_config(folder):
    write_csv(folder / "sub" / "val.csv", CLASS_HEADER, classification_rows(30, seed=1))
    path = config_file(folder, edited(l1="", l5="  validation: sub/val.csv",
                                      l19="  early_stopping: {patience: 4}"))
    result = invoke("validate", path)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    resolved = yaml.safe_load(result.stdout)
    assert resolved["name"] == "x"  # default: the file's stem
    assert resolved["dtype"] == "float32"
    data = resolved["data"]
    assert data["train"] == str((folder / "data.csv").resolve())
    assert data["validation"] == str((folder / "sub" / "val.csv").resolve())
    assert data["test"] is None and data["scale"] == "standard" and data["sequence"] is None
    assert resolved["model"]["layers"][0] == {"type": "dense", "units": 8, "activation": "relu",
                                              "init": None, "l1": 0.0, "l2": 0.0}
    assert resolved["model"]["layers"][1] == {"type": "dropout", "rate": 0.2}
    assert resolved["optimizer"] == {"type": "adam", "lr": 0.01, "beta1": 0.9, "beta2": 0.999,
                                     "eps": 1e-8}
    training = resolved["training"]
    assert training["batch_size"] == 32  # the line was replaced: the default applies
    assert training["shuffle"] is True and training["clip_norm"] is None
    assert training["early_stopping"] == {"monitor": "val_loss", "mode": "auto", "patience": 4,
                                          "min_delta": 0.0, "restore_best": True}
    assert training["checkpoint"] == {"monitor": "val_loss", "mode": "auto", "keep_last": 3,
                                      "every_seconds": 10.0}


def test_validate_output_is_a_fixed_point_and_trains_from_anywhere(folder, tmp_path_factory,
                                                                   monkeypatch):
    path = config_file(folder, BASE)
    first = invoke("validate", path, "--set", "optimizer.lr=0.05")
    assert first.exit_code == 0
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    resolved = write_text(elsewhere / "resolved.yaml", first.stdout)
    second = invoke("validate", resolved)
    assert second.exit_code == 0
    assert second.stdout == first.stdout
    assert yaml.safe_load(second.stdout)["optimizer"]["lr"] == 0.05
    monkeypatch.chdir(elsewhere)  # absolute data paths: the working folder does not matter
    train(resolved, elsewhere / "runs", "--set", "training.epochs=1")


def test_relative_data_paths_resolve_against_the_config_folder(folder, tmp_path_factory,
                                                               monkeypatch):
    path = config_file(folder / "configs", edited(l4="  train: ../data.csv"))
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    result = invoke("validate", path)
    assert result.exit_code == 0, result.stderr
    assert yaml.safe_load(result.stdout)["data"]["train"] == str((folder / "data.csv").resolve())
    _, run_dir = train(path, folder / "runs", "--set", "training.epochs=1")
    assert (run_dir / "metrics.csv").is_file()


def test_validate_applies_set(folder):
    path = config_file(folder, BASE)
    result = invoke("validate", path, "--set", "model.layers.0.units=5",
                    "--set", "training.lr_schedule={type: step, step_size: 2}")
    assert result.exit_code == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert resolved["model"]["layers"][0]["units"] == 5
    assert resolved["training"]["lr_schedule"] == {"type": "step", "step_size": 2, "gamma": 0.1}


# ---- one error each -----------------------------------------------------------------------

def test_unknown_key_with_a_hint(folder):
    path = config_file(folder, edited(l7="  featurs: [x1, x2, x3]"))
    assert validate_errors(path) == [
        f"{path}:7 data.featurs: unknown key; did you mean 'features'?"]


def test_unknown_key_in_a_layer_and_at_the_top(folder):
    path = config_file(folder, edited(l10="    - {type: dense, unit: 8}",
                                      l13="loss: categorical_crossentropy\noptimiser: {}"))
    problems = validate_errors(path)
    assert sorted(problems) == sorted([
        f"{path}:10 model.layers.0.units: required key is missing",
        f"{path}:10 model.layers.0.unit: unknown key; did you mean 'units'?",
        f"{path}:14 optimiser: unknown key; did you mean 'optimizer'?",
    ])


def test_wrong_type(folder):
    path = config_file(folder, edited(l18="  epochs: many"))
    assert validate_errors(path) == [
        f"{path}:18 training.epochs: must be a valid integer, unable to parse string as an "
        "integer (got 'many')"]
    path = config_file(folder, edited(l19="  shuffle: maybe"))
    assert validate_errors(path) == [
        f"{path}:19 training.shuffle: must be a valid boolean, unable to interpret input "
        "(got 'maybe')"]


def test_out_of_range_numbers(folder):
    path = config_file(folder, edited(l16="  lr: -1"))
    assert validate_errors(path) == [f"{path}:16 optimizer.lr: must be greater than 0 (got -1)"]
    path = config_file(folder, edited(l11="    - {type: dropout, rate: 1.0}"))
    assert validate_errors(path) == [
        f"{path}:11 model.layers.1.rate: must be less than 1 (got 1.0)"]
    path = config_file(folder, edited(l5="  validation: 1.5"))
    assert validate_errors(path) == [
        f"{path}:5 data.validation: a fraction must be between 0 and 1 exclusive (got 1.5)"]


def test_unknown_layer_type(folder):
    path = config_file(folder, edited(l11="    - {type: conv, units: 3}"))
    assert validate_errors(path) == [
        f"{path}:11 model.layers.1: unknown type 'conv'; expected one of: dense, dropout, rnn"]


def test_unknown_optimizer_type(folder):
    path = config_file(folder, edited(l15="  type: adamw"))
    assert validate_errors(path) == [
        f"{path}:15 optimizer: unknown type 'adamw'; expected one of: sgd, momentum, adagrad, "
        "adadelta, rmsprop, adam"]


def test_missing_required_key(folder):
    path = config_file(folder, edited(l6=""))
    assert validate_errors(path) == [f"{path}:4 data.target: required key is missing"]


def test_missing_top_level_key_names_a_line(folder):
    path = config_file(folder, edited(l13=""))
    assert validate_errors(path) == [f"{path}:1 loss: required key is missing"]


def test_layers_must_not_be_empty(folder):
    path = config_file(folder, edited(l9="  layers: []", l10="", l11="", l12=""))
    assert validate_errors(path) == [
        f"{path}:9 model.layers: must have at least 1 item after validation, not 0"]


def test_units_must_match_the_classes_at_train_time(tmp_path):
    header = ["a", "b", "c", "d", "species"]
    names = ["setosa", "versicolor", "virginica"]
    write_csv(tmp_path / "flowers.csv", header,
              [[i, i % 3, i % 5, i % 7, names[i % 3]] for i in range(30)])
    path = config_file(tmp_path, edited(l4="  train: flowers.csv", l6="  target: species",
                                        l7="",
                                        l12="    - {type: dense, units: 4, activation: softmax}"))
    assert invoke("validate", path).exit_code == 0  # validate does not read the data
    result = invoke("train", path, "--runs-dir", tmp_path / "runs", "--quiet")
    lines = assert_user_error(result)
    assert lines == [f"error: {path}:12 model.layers.2.units: the last dense layer has 4 units "
                     "but the target 'species' has 3 classes"]
    assert run_dirs(tmp_path / "runs") == []


def test_regression_output_units_must_match_the_targets(tmp_path):
    write_csv(tmp_path / "reg.csv", ["x", "y1", "y2"], [[i, i, -i] for i in range(20)])
    path = config_file(tmp_path, "data: {train: reg.csv, target: [y1, y2]}\n"
                                 "model:\n  layers:\n    - {type: dense, units: 3}\nloss: mse\n")
    lines = assert_user_error(invoke("train", path, "--runs-dir", tmp_path / "runs", "--quiet"))
    assert lines == [f"error: {path}:4 model.layers.0.units: the last dense layer has 3 units "
                     "but the 2 targets need 2"]


def test_activation_must_suit_the_loss(folder):
    path = config_file(folder, edited(l12="    - {type: dense, units: 3, activation: sigmoid}"))
    assert validate_errors(path) == [
        f"{path}:12 model.layers.2.activation: loss categorical_crossentropy needs a softmax "
        "output layer (got sigmoid)"]
    path = config_file(folder, edited(l13="loss: binary_crossentropy"))
    assert validate_errors(path) == [
        f"{path}:12 model.layers.2.activation: loss binary_crossentropy needs a sigmoid "
        "output layer (got softmax)"]


def sequence_config(folder: Path, steps: int, features: int) -> Path:
    return config_file(folder, edited(
        l7=f"  features: [x1, x2, x3]\n  sequence: {{steps: {steps}, features: {features}}}",
        l10="    - {type: rnn, units: 4}", l11="    - {type: dropout, rate: 0.0}"))


def test_sequence_shape_that_fits_trains(folder):
    path = sequence_config(folder, 3, 1)
    _, run_dir = train(path, folder / "runs", "--set", "training.epochs=1")
    assert (run_dir / "checkpoints" / "last.npz").is_file()


def test_sequence_shape_must_match_the_feature_count(folder):
    path = sequence_config(folder, 2, 2)
    result = invoke("train", path, "--runs-dir", folder / "runs", "--quiet")
    lines = assert_user_error(result)
    assert lines == [f"error: {path}:8 data.sequence: steps x features = 2 x 2 = 4, but there "
                     "are 3 feature columns"]
    assert run_dirs(folder / "runs") == []


def test_rnn_needs_data_sequence(folder):
    path = config_file(folder, edited(l10="    - {type: rnn, units: 4}"))
    assert validate_errors(path) == [
        f"{path}:10 model.layers.0: an rnn layer needs sequence input: set data.sequence"]


def test_dense_after_sequence_input_needs_an_rnn_first(folder):
    path = config_file(folder, edited(
        l7="  features: [x1, x2, x3]\n  sequence: {steps: 3, features: 1}"))
    assert validate_errors(path) == [
        f"{path}:11 model.layers.0: a dense layer needs flat input, but data.sequence is set"]


def test_unknown_monitor(folder):
    path = config_file(folder, BASE + "  early_stopping: {monitor: val_acc, patience: 2}\n")
    assert validate_errors(path) == [
        f"{path}:20 training.early_stopping.monitor: unknown metric 'val_acc'; expected one of: "
        "train_accuracy, train_loss, val_accuracy, val_auc, val_f1, val_loss"]
    path = config_file(folder, edited(l5="  validation: null")
                       + "  checkpoint: {monitor: val_loss}\n")
    assert validate_errors(path) == [
        f"{path}:20 training.checkpoint.monitor: unknown metric 'val_loss' (there is no "
        "validation data); expected one of: train_accuracy, train_loss"]


def test_yaml_syntax_error_names_the_line(folder):
    path = config_file(folder, edited(l16="  lr: 0.01: 3"))
    assert validate_errors(path) == [
        f"{path}:16: not valid YAML (mapping values are not allowed here)"]


def test_config_file_missing(folder):
    path = folder / "nope.yaml"
    assert validate_errors(path) == [f"{path}: no such file"]


def test_config_not_a_mapping(folder):
    path = config_file(folder, "- a\n- b\n")
    assert validate_errors(path) == [f"{path}:1: the config must be a mapping of keys to values"]
    path = config_file(folder, edited(l3="data: data.csv", l4="", l5="", l6="", l7=""))
    assert validate_errors(path) == [
        f"{path}:3 data: must be a valid dictionary or instance of DataSpec (got 'data.csv')"]


def test_all_problems_are_listed_at_once(folder, tmp_path):
    path = config_file(folder, edited(
        l7="  featurs: [x1]", l10="    - {type: dense, units: many, activation: relu}",
        l11="    - {type: conv, units: 3}",
        l12="    - {type: dense, units: 0, activation: softmax}",
        l15="  type: adamw", l18="  epochs: -3"))
    problems = validate_errors(path)
    assert problems == [
        f"{path}:7 data.featurs: unknown key; did you mean 'features'?",
        f"{path}:10 model.layers.0.units: must be a valid integer, unable to parse string as an "
        "integer (got 'many')",
        f"{path}:11 model.layers.1: unknown type 'conv'; expected one of: dense, dropout, rnn",
        f"{path}:12 model.layers.2.units: must be greater than 0 (got 0)",
        f"{path}:15 optimizer: unknown type 'adamw'; expected one of: sgd, momentum, adagrad, "
        "adadelta, rmsprop, adam",
        f"{path}:18 training.epochs: must be greater than 0 (got -3)",
    ]
    # train reports the same problems and creates nothing
    lines = assert_user_error(invoke("train", path, "--runs-dir", tmp_path / "runs", "--quiet"))
    assert [line[len("error: "):] for line in lines] == problems
    assert run_dirs(tmp_path / "runs") == []


def test_structural_problems_are_listed_together(folder):
    path = config_file(folder, edited(l10="    - {type: dense, units: 8, activation: softmax}",
                                      l12="    - {type: dense, units: 3, activation: sigmoid}")
                       + "  early_stopping: {monitor: val_r2}\n")
    problems = validate_errors(path)
    assert sorted(problems) == sorted([
        f"{path}:12 model.layers.2.activation: loss categorical_crossentropy needs a softmax "
        "output layer (got sigmoid)",
        f"{path}:10 model.layers.0.activation: softmax is only for the output layer",
        f"{path}:20 training.early_stopping.monitor: unknown metric 'val_r2'; expected one of: "
        "train_accuracy, train_loss, val_accuracy, val_auc, val_f1, val_loss",
    ])


# ---- unknown keys: which key, what the mapping has, where it belongs -----------------------

def test_unknown_key_lists_the_keys_there_are(folder):
    path = config_file(folder, edited(l10="    - {type: dense, units: 8, dropout: 0.2}"))
    assert validate_errors(path) == [
        f"{path}:10 model.layers.0.dropout: unknown key; model.layers.0 (type: dense) has no "
        "'dropout', its keys are units, activation, init, l1, l2; for dropout, add a layer "
        "{type: dropout, rate: 0.2}"]
    path = config_file(folder, edited(l19="  batch_size: 16\n  stop_after: 3"))
    assert validate_errors(path) == [
        f"{path}:20 training.stop_after: unknown key; training has no 'stop_after', its keys are "
        "epochs, batch_size, shuffle, clip_norm, clip_value, early_stopping, lr_schedule, "
        "checkpoint, class_weight"]
    path = config_file(folder, "epoch_count: 3\n" + BASE)
    assert validate_errors(path) == [
        f"{path}:1 epoch_count: unknown key; the config has no 'epoch_count', its keys are name, "
        "seed, dtype, data, model, loss, optimizer, training"]


def test_a_key_named_like_a_type_is_still_named(folder):
    # 'momentum' is an optimizer type and 'dropout' a layer type: neither may vanish from
    # the message as if it were the union's tag
    path = config_file(folder, edited(l16="  lr: 0.01\n  momentum: 0.9"))
    assert validate_errors(path) == [
        f"{path}:17 optimizer.momentum: unknown key; optimizer (type: adam) has no 'momentum', "
        "its keys are lr, beta1, beta2, eps; optimizer type sgd has 'momentum': "
        "{type: sgd, momentum: 0.9}; momentum is an optimizer type of its own (keys: lr, beta)"]
    path = config_file(folder, edited(l11="    - {type: dropout, rate: 0.2, rnn: 4}"))
    assert validate_errors(path) == [
        f"{path}:11 model.layers.1.rnn: unknown key; model.layers.1 (type: dropout) has no 'rnn', "
        "its keys are rate; for rnn, add a layer {type: rnn, units: 4}"]


def test_unknown_key_names_the_other_types_that_have_it(folder):
    path = config_file(folder, edited(l16="  lr: 0.01\n  rho: 0.95"))
    assert validate_errors(path) == [
        f"{path}:17 optimizer.rho: unknown key; optimizer (type: adam) has no 'rho', its keys "
        "are lr, beta1, beta2, eps; optimizer types adadelta and rmsprop have 'rho': "
        "{type: adadelta, rho: 0.95}"]
    # a close key first, the other type after; beta1 before beta2 (the order of the schema)
    path = config_file(folder, edited(l16="  lr: 0.01\n  beta: 0.8"))
    assert validate_errors(path) == [
        f"{path}:17 optimizer.beta: unknown key; did you mean 'beta1'? (optimizer type momentum "
        "has 'beta': {type: momentum, beta: 0.8})"]
    path = config_file(folder, BASE + "  lr_schedule: {type: cosine, gamma: 0.5}\n")
    assert validate_errors(path) == [
        f"{path}:20 training.lr_schedule.gamma: unknown key; training.lr_schedule (type: cosine) "
        "has no 'gamma', its keys are min_lr; schedule types step and exponential have 'gamma': "
        "{type: step, step_size: ..., gamma: 0.5}"]


# ---- blame: the --set that caused a problem, the file's line for the file's own values ---------

def test_a_problem_the_set_caused_in_a_value_of_the_file_names_the_set_first(folder):
    path = config_file(folder, BASE)
    assert validate_errors(path, extra=["--set", "loss=mse"]) == [
        f"--set loss=mse: {path}:12 model.layers.2.activation: softmax outputs sum to 1, which "
        "does not suit the regression loss mse"]
    assert validate_errors(path, extra=["--set", "model.layers.0.type=rnn"]) == [
        f"--set model.layers.0.type=rnn: {path}:10 model.layers.0: an rnn layer needs sequence "
        "input: set data.sequence"]
    # a type changed by --set leaves the file's keys of the old type behind
    path = config_file(folder, edited(l16="  lr: 0.01\n  beta1: 0.8"))
    assert validate_errors(path, extra=["--set", "optimizer.type=sgd"]) == [
        f"--set optimizer.type=sgd: {path}:17 optimizer.beta1: unknown key; optimizer (type: sgd) "
        "has no 'beta1', its keys are lr, momentum, nesterov; optimizer type adam has 'beta1': "
        "{type: adam, beta1: 0.8}"]


def test_the_value_a_set_gave_is_blamed_on_the_last_set_that_gave_it(folder):
    path = config_file(folder, BASE)
    assert validate_errors(path, extra=["--set", "optimizer={type: adam, lr: 0.1}",
                                        "--set", "optimizer.lr=-1"]) == [
        "--set optimizer.lr=-1: must be greater than 0 (got -1)"]
    assert validate_errors(path, extra=["--set", "optimizer.lr=-1",
                                        "--set", "optimizer={type: adam, lr: -2}"]) == [
        "--set optimizer={type: adam, lr: -2}: optimizer.lr: must be greater than 0 (got -2)"]


def test_problems_in_the_file_keep_its_line_beside_unrelated_sets(folder):
    path = config_file(folder, edited(l16="  lr: -1", l18="  epochs: 0"))
    assert validate_errors(path, extra=["--set", "training.epochs=2",
                                        "--set", "optimizer.eps=1e-7"]) == [
        f"{path}:16 optimizer.lr: must be greater than 0 (got -1)"]


def test_sweep_parameters_are_named_by_the_sweep_files_line(folder):
    config_file(folder, BASE)
    sweep = config_file(folder, "config: x.yaml\nmethod: grid\nmetric: val_loss\nparameters:\n"
                                "  optimizer.lr: [0.1]\n  optimizer.momentum: [0.9]\n",
                        "sweep.yaml")
    lines = assert_user_error(invoke("sweep", sweep, "--runs-dir", folder / "runs"))
    assert lines == [
        f"error: {sweep}:6 parameters.optimizer.momentum: unknown key; optimizer (type: adam) "
        "has no 'momentum', its keys are lr, beta1, beta2, eps; optimizer type sgd has "
        "'momentum': {type: sgd, momentum: 0.9}; momentum is an optimizer type of its own "
        "(keys: lr, beta)"]
    assert not (folder / "runs").exists()


# ---- paths: written in the file -> the file's folder; given by --set -> the current folder ----

def test_set_paths_resolve_against_the_current_folder_file_paths_against_the_file(
        folder, tmp_path_factory, monkeypatch):
    config = config_file(folder / "configs", edited(l4="  train: ../data.csv"))
    cwd = tmp_path_factory.mktemp("cwd")
    write_csv(cwd / "held" / "val.csv", CLASS_HEADER, classification_rows(30, seed=1))
    write_csv(cwd / "test.csv", CLASS_HEADER, classification_rows(30, seed=2))
    monkeypatch.chdir(cwd)
    result = invoke("validate", config, "--set", "data.validation=held/val.csv",
                    "--set", "data.test=test.csv")
    assert result.exit_code == 0, result.stderr
    data = yaml.safe_load(result.stdout)["data"]
    assert data["train"] == str((folder / "data.csv").resolve())  # the file's path: its folder
    assert data["validation"] == str((cwd / "held" / "val.csv").resolve())
    assert data["test"] == str((cwd / "test.csv").resolve())
    # a mapping given by --set is typed here too
    result = invoke("validate", config, "--set", "data={train: held/val.csv, target: label}")
    assert result.exit_code == 0, result.stderr
    assert yaml.safe_load(result.stdout)["data"]["train"] == str((cwd / "held/val.csv").resolve())
    # fractions are not paths
    result = invoke("validate", config, "--set", "data.validation=0.3")
    assert yaml.safe_load(result.stdout)["data"]["validation"] == 0.3


def test_python_overrides_paths_resolve_against_the_current_folder(folder, tmp_path_factory,
                                                                   monkeypatch):
    import nnctl

    config = config_file(folder / "configs", edited(l4="  train: ../data.csv"))
    cwd = tmp_path_factory.mktemp("cwd")
    write_csv(cwd / "other.csv", CLASS_HEADER, classification_rows(45, seed=3))
    # a decoy beside the config, which the old rule would have read: not a CSV of this task
    write_text(folder / "configs" / "other.csv", "a,b\n1,2\n")
    monkeypatch.chdir(cwd)
    run = nnctl.train(config, overrides={"data.train": "other.csv", "training.epochs": 1},
                      runs_dir=cwd / "runs")
    assert run.config.data.train == str((cwd / "other.csv").resolve())
    saved = yaml.safe_load((Path(run.path) / "config.yaml").read_text())
    assert saved["data"]["train"] == str((cwd / "other.csv").resolve())


def test_problems_the_data_or_other_keys_reveal_are_blamed_on_the_set_behind_them(tmp_path):
    """A --set that makes a value in the file wrong is named first, then the file's line."""
    from cli_helpers import CONFIGS

    iris = CONFIGS / "iris.yaml"
    result = invoke("validate", iris, "--set", "data.validation=null")
    lines = assert_user_error(result)
    assert lines and all(line.startswith(f"error: --set data.validation=null: {iris}:")
                         for line in lines), lines
    assert "training.checkpoint.monitor: unknown metric 'val_loss'" in result.stderr

    result = invoke("train", iris, "--set", "data.target=sepal_length", "--runs-dir",
                    tmp_path / "runs", "--quiet")
    assert_user_error(result, f"error: --set data.target=sepal_length: {iris}:",
                      "model.layers.2.units: the last dense layer has 3 units but the target "
                      "'sepal_length' has 35 classes")
