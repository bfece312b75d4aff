"""`nnctl runs list` and `runs show` fitted to the terminal: through a pipe with COLUMNS, in a
pseudo-terminal, and whole when neither says a width; `--columns`; settings that are mappings
or lists (a schedule, class weights, two targets) shown as their values. Run directories are
made by `nnctl train`."""

import csv
import io
import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from typer.testing import CliRunner

from nnctl.cli import app

from cli_helpers import DATASETS, invoke, tiny_iris_config, train
from cli_helpers import in_terminal as terminal
from fault_helpers import nnctl_command, subprocess_env

# (run name, --set overrides): settings of every shape, so that the whole table is wide.
RUNS = [
    ("adam-lr-0.05-baseline-with-a-long-name", ["optimizer.lr=0.05"]),
    ("step", ["training.lr_schedule={type: step, step_size: 10, gamma: 0.5}"]),
    ("cosine", ["training.lr_schedule={type: cosine, min_lr: 0.0001}"]),
    ("balanced", ["training.class_weight=balanced", "model.layers.0.units=32"]),
    ("weighted", ["training.class_weight={setosa: 1.0, versicolor: 2.0, virginica: 1.0}",
                  "optimizer.type=sgd", "optimizer.lr=0.1"]),
    ("batch64", ["training.batch_size=64", "data.scale=minmax"]),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("listing")
    config = root / "iris.yaml"
    config.write_text(tiny_iris_config(epochs=3))
    runs = root / "runs"
    made = {}
    for name, overrides in RUNS:
        extra = [arg for o in overrides for arg in ("--set", o)]
        made[name] = train(config, runs, "--run-name", name, *extra)[1]
    return runs, made


def env(columns=None) -> dict:
    out = {k: v for k, v in subprocess_env().items() if k not in ("COLUMNS", "LINES")}
    if columns is not None:
        out["COLUMNS"] = str(columns)
    return out


def piped(*args, columns=None) -> subprocess.CompletedProcess:
    """`nnctl ARGS` in a process whose stdout is a pipe; COLUMNS set only if `columns` is."""
    return subprocess.run(nnctl_command(*args), capture_output=True, text=True,
                          env=env(columns), timeout=120)


def nnctl(*args, columns=None) -> SimpleNamespace:
    """`nnctl ARGS` in this process (stdout not a terminal), as `piped` but quicker."""
    result = CliRunner(env={"COLUMNS": None if columns is None else str(columns)}).invoke(
        app, [str(a) for a in args])
    assert result.exit_code == 2 or result.exception is None, result.exception
    return SimpleNamespace(returncode=result.exit_code, stdout=result.stdout,
                           stderr=result.stderr)


def in_terminal(*args, columns: int) -> str:
    """What `nnctl ARGS` prints in a pseudo-terminal `columns` wide."""
    code, out = terminal(nnctl_command(*args), columns, env())
    assert code == 0, out
    return out


def listed_json(runs: Path) -> dict:
    result = nnctl("runs", "list", "--runs-dir", runs, "--format", "json")
    assert result.returncode == 0, result.stderr
    return {Path(row["run_dir"]).name: row for row in json.loads(result.stdout)}


def assert_fits(text: str, width: int, made: dict) -> list[str]:
    """Every line at most `width` characters; each run on its own line under its whole name."""
    lines = text.rstrip("\n").splitlines()
    assert max(len(line) for line in lines) <= width, text
    assert lines[0].split()[0] == "run"
    names = [line.split()[0] for line in lines[1:len(made) + 1]]
    assert sorted(names) == sorted(path.name for path in made.values())
    return lines


def joined(lines: list[str]) -> str:
    """A note wrapped over lines, as one line."""
    return " ".join(line.strip() for line in lines)


# ---- fitting the width --------------------------------------------------------------------

def test_the_whole_table_is_wide_and_a_pipe_without_columns_gets_all_of_it(folder):
    runs, made = folder
    result = piped("runs", "list", "--runs-dir", runs)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) > 160  # the problem: far wider than a terminal
    headers = lines[0].split()
    for key in ("optimizer.lr", "optimizer.type", "model.layers.0.units",
                "training.batch_size", "training.lr_schedule", "training.class_weight"):
        assert key in headers
    assert "more column" not in result.stdout and "\u2026" not in result.stdout


def test_columns_80_through_a_pipe_fits_and_says_what_was_left_out(folder):
    runs, made = folder
    result = piped("runs", "list", "--runs-dir", runs, columns=80)
    assert result.returncode == 0, result.stderr
    lines = assert_fits(result.stdout, 80, made)
    headers = lines[0].split()
    assert headers[:2] == ["run", "status"] and "val_loss" in headers
    note = joined(lines[len(made) + 1:])
    assert note.startswith("(") and "more columns:" in note
    assert "--columns" in note and "--format csv" in note
    # Every column of the whole table is either shown or named in the note.
    whole = nnctl("runs", "list", "--runs-dir", runs).stdout.splitlines()[0].split()
    left_out = int(note.split()[0].lstrip("("))
    assert len(headers) + left_out == len(whole)
    for name in ("lr_schedule", "class_weight", "wall_seconds"):
        assert name in note


def test_a_terminal_of_80_columns_gives_the_same_table(folder):
    runs, made = folder
    through_a_pipe = piped("runs", "list", "--runs-dir", runs, columns=80).stdout
    shown = in_terminal("runs", "list", "--runs-dir", runs, columns=80)
    assert shown == through_a_pipe
    assert_fits(shown, 80, made)
    wide = in_terminal("runs", "list", "--runs-dir", runs, columns=200)
    lines = assert_fits(wide, 200, made)
    assert len(lines[0].split()) > len(shown.splitlines()[0].split())


def test_headers_shorten_to_their_last_part_and_long_cells_are_cut(folder):
    runs, made = folder
    columns = "run,model.layers.0.units,optimizer.lr,training.lr_schedule"
    whole = nnctl("runs", "list", "--runs-dir", runs, "--columns", columns).stdout
    assert whole.splitlines()[0].split() == columns.split(",")
    assert "step(step_size=10,gamma=0.5)" in whole
    run_width = max(len(p.name) for p in made.values())
    # Room for run, `units`, `lr` and 12 characters of schedule, not for the dotted keys.
    width = run_width + 2 + 5 + 2 + 5 + 2 + 12
    result = nnctl("runs", "list", "--runs-dir", runs, "--columns", columns, columns=width)
    lines = assert_fits(result.stdout, width, made)
    assert lines[0].split() == ["run", "units", "lr", "lr_schedule"]
    cells = {line.split()[0]: line.split()[-1] for line in lines[1:]}
    step = cells[made["step"].name]
    assert step.endswith("\u2026") and "step(step_size=10,gamma=0.5)".startswith(step[:-1])
    assert cells[made["batch64"].name] == "null"  # short cells are whole
    assert "more column" not in result.stdout


def test_the_sort_column_is_kept(folder):
    runs, made = folder
    result = nnctl("runs", "list", "--runs-dir", runs, "--sort", "lr", columns=80)
    lines = assert_fits(result.stdout, 80, made)
    assert "lr" in lines[0].split()
    lr = lines[0].split().index("lr")
    values = [float(line.split()[lr]) for line in lines[1:len(made) + 1]]
    assert values == sorted(values)


def test_run_names_too_long_for_the_width_keep_their_distinct_ends(folder):
    runs, made = folder
    result = nnctl("runs", "list", "--runs-dir", runs, "--columns", "run", columns=20)
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and max(len(line) for line in lines) <= 20
    names = {p.name for p in made.values()}
    rows = lines[1:len(made) + 1]
    assert len(set(rows)) == len(made)  # still told apart
    for row in rows:  # the end of the name, with its time stamp and hex suffix
        assert [n for n in names if n.endswith(row.lstrip("\u2026"))], row


# ---- --columns ----------------------------------------------------------------------------

def test_columns_choose_and_order_in_every_format(folder, monkeypatch):
    runs, made = folder
    monkeypatch.delenv("COLUMNS", raising=False)
    chosen = "val_loss,run,lr,units,best,training.batch_size,training.epochs"  # epochs: same
    table = invoke("runs", "list", "--runs-dir", runs, "--columns", chosen, "--sort", "run")
    assert table.exit_code == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["val_loss", "run", "optimizer.lr", "model.layers.0.units",
                                "best", "training.batch_size", "training.epochs"]
    rows = listed_json(runs)
    for line in lines[1:]:
        val_loss, name, lr, units, best, batch, epochs = line.split()
        row = rows[name]
        assert float(val_loss) == pytest.approx(row["val_loss"], abs=5e-5)
        assert float(lr) == row["params"]["optimizer.lr"]
        assert int(units) == row["params"]["model.layers.0.units"]
        assert int(best) == row["best_epoch"]
        config = yaml.safe_load((made_by_name(made, name) / "config.yaml").read_text())
        assert int(batch) == config["training"]["batch_size"] and int(epochs) == 3

    text = invoke("runs", "list", "--runs-dir", runs, "--columns", chosen,
                  "--format", "csv").stdout
    records = list(csv.reader(io.StringIO(text)))
    assert records[0] == ["val_loss", "run", "optimizer.lr", "model.layers.0.units",
                          "best_epoch", "training.batch_size", "training.epochs"]
    assert len(records) == len(made) + 1

    data = json.loads(invoke("runs", "list", "--runs-dir", runs, "--columns", chosen,
                             "--format", "json").stdout)
    assert [list(row) for row in data] == [["val_loss", "run", "best_epoch", "params"]] * len(made)
    assert {tuple(row["params"]) for row in data} == {
        ("optimizer.lr", "model.layers.0.units", "training.batch_size", "training.epochs")}


def made_by_name(made: dict, folder_name: str) -> Path:
    return next(p for p in made.values() if p.name == folder_name)


def test_unknown_and_ambiguous_columns_exit_2_naming_the_valid_ones(folder):
    runs, made = folder
    result = piped("runs", "list", "--runs-dir", runs, "--columns", "run,val_lost")
    assert result.returncode == 2 and result.stdout == ""
    assert "--columns: unknown column 'val_lost'; expected one of: run, run_dir" in result.stderr
    for name in ("val_loss", "val_accuracy", "wall_seconds", "optimizer.lr"):
        assert name in result.stderr
    assert "Traceback" not in result.stderr

    result = nnctl("runs", "list", "--runs-dir", runs, "--columns", "activation")
    assert result.returncode == 2
    assert ("'activation' could be any of model.layers.0.activation, "
            "model.layers.1.activation") in result.stderr

    for fmt in ("json", "csv"):  # every format checks the names
        assert nnctl("runs", "list", "--runs-dir", runs, "--format", fmt,
                     "--columns", "nope").returncode == 2
    assert nnctl("runs", "list", "--runs-dir", runs, "--columns", ",").returncode == 2


# ---- settings that are mappings or lists --------------------------------------------------

def test_mapping_valued_settings_show_as_their_values(folder):
    runs, made = folder
    rows = listed_json(runs)
    params = {name: rows[path.name]["params"] for name, path in made.items()}
    # One column per setting, whole where its shape differs between runs; no `null` for a
    # schedule split into .type/.step_size columns, no beta1 beside an sgd run.
    keys = set(params["step"])
    assert {"training.lr_schedule", "training.class_weight", "optimizer.type"} <= keys
    assert not [k for k in keys if k.startswith(("training.lr_schedule.",
                                                 "training.class_weight."))]
    assert "optimizer.beta1" not in keys
    for name, path in made.items():
        config = yaml.safe_load((path / "config.yaml").read_text())
        assert params[name]["training.lr_schedule"] == config["training"]["lr_schedule"]
        assert params[name]["training.class_weight"] == config["training"]["class_weight"]

    table = nnctl("runs", "list", "--runs-dir", runs).stdout
    cells = {line.split()[0]: line for line in table.splitlines()[1:]}
    assert "step(step_size=10,gamma=0.5)" in cells[made["step"].name]
    assert "cosine(min_lr=0.0001)" in cells[made["cosine"].name]
    assert "balanced" in cells[made["balanced"].name]
    assert "{setosa:1,versicolor:2,virginica:1}" in cells[made["weighted"].name]
    assert " sgd " in cells[made["weighted"].name]


def test_two_targets_show_as_a_list(tmp_path):
    config = tmp_path / "multi.yaml"
    config.write_text(f"""\
seed: 0
data: {{train: {DATASETS / "regression_multi.csv"}, validation: 0.2, target: [y1, y2]}}
model:
  layers:
    - {{type: dense, units: 8, activation: tanh}}
    - {{type: dense, units: 2}}
loss: mse
optimizer: {{type: adam, lr: 0.01}}
training: {{epochs: 2, batch_size: 64}}
""")
    runs = tmp_path / "runs"
    both = train(config, runs, "--run-name", "both")[1]
    one = train(config, runs, "--run-name", "one", "--set", "data.target=y1",
                "--set", "model.layers.1.units=1")[1]
    rows = listed_json(runs)
    assert rows[both.name]["params"] == {"data.target": ["y1", "y2"], "model.layers.1.units": 2}
    assert rows[one.name]["params"] == {"data.target": "y1", "model.layers.1.units": 1}
    table = nnctl("runs", "list", "--runs-dir", runs, "--columns", "run,target").stdout
    assert table.splitlines()[0].split() == ["run", "data.target"]
    cells = dict(line.split() for line in table.splitlines()[1:])
    assert cells == {both.name: "[y1,y2]", one.name: "y1"}


# ---- csv and json are never cut -----------------------------------------------------------

def test_csv_and_json_are_whole_whatever_the_width(folder):
    runs, made = folder
    for fmt in ("json", "csv"):
        whole = nnctl("runs", "list", "--runs-dir", runs, "--format", fmt)
        narrow = nnctl("runs", "list", "--runs-dir", runs, "--format", fmt, columns=40)
        assert whole.returncode == narrow.returncode == 0
        assert narrow.stdout == whole.stdout
    records = list(csv.DictReader(io.StringIO(narrow.stdout)))  # the csv: the last format
    assert len(records) == len(made)
    for record in records:
        config = yaml.safe_load((made_by_name(made, record["run"]) / "config.yaml").read_text())
        assert json.loads(record["training.lr_schedule"]) == config["training"]["lr_schedule"]
        assert record["optimizer.lr"] == repr(config["optimizer"]["lr"])
        assert record["run_dir"].endswith(record["run"])


# ---- runs show ----------------------------------------------------------------------------

def test_runs_show_fits_its_tables(folder):
    runs, made = folder
    run = made["step"]
    whole = nnctl("runs", "show", run, "--last", "3")
    assert whole.returncode == 0, whole.stderr
    epochs = whole.stdout.split("epochs (metrics.csv)\n")[1].splitlines()
    assert epochs[0].split() == list(next(csv.reader(open(run / "metrics.csv"))))

    result = nnctl("runs", "show", run, "--last", "3", columns=40)
    assert result.returncode == 0, result.stderr
    tables = result.stdout.split("\ncolumns\n")[1]
    table = tables.split("\nconfig.yaml\n")[0].strip("\n").splitlines()
    assert table and max(len(line) for line in table) <= 40
    epochs = result.stdout.split("epochs (metrics.csv)\n")[1].splitlines()
    assert max(len(line) for line in epochs) <= 40
    assert epochs[0].split()[:3] == ["epoch", "train_loss", "val_loss"]
    assert [line.split()[0] for line in epochs[1:4]] == ["1", "2", "3"]
    assert "see metrics.csv" in joined(epochs[4:])
