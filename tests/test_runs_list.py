"""`nnctl runs list` and `nnctl runs show` over run directories made by `nnctl train`."""

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nnctl import api
from nnctl.cli import app
from nnctl.listing import differing_keys, flatten
from cli_helpers import tiny_iris_config


BASE = tiny_iris_config(epochs=6)

# (where below the runs folder, name, overrides): two in a sweep-like subfolder, one on top.
RUNS = [
    ("sweepy", "a", ["optimizer.lr=0.05", "model.layers.0.units=16"]),
    ("sweepy", "b", ["optimizer.lr=0.0005", "model.layers.0.units=16"]),
    ("", "c", ["optimizer.lr=0.01", "model.layers.0.units=4"]),
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    config = root / "base.yaml"
    config.write_text(BASE)
    made = {}
    for sub, name, overrides in RUNS:
        made[name] = api.train(config, overrides, root / "runs" / sub, run_name=name)
    return root / "runs", made


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_json_lists_every_run_with_its_metrics_and_differing_parameters(runs):
    folder, made = runs
    result = invoke("runs", "list", "--runs-dir", folder, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {"a", "b", "c"}
    for name, row in rows.items():
        summary = made[name].summary
        assert Path(row["run_dir"]) == made[name].path
        assert row["status"] == summary["status"] == "completed"
        assert row["epochs"] == 6 and row["best_epoch"] == summary["best_epoch"]
        assert row["val_loss"] == summary["best"]["val_loss"]
        assert row["val_accuracy"] == summary["best"]["val_accuracy"]
        assert row["wall_seconds"] == summary["wall_seconds"]
        # Only what differs between the runs; the name differs by construction and is left out.
        assert set(row["params"]) == {"optimizer.lr", "model.layers.0.units"}
    assert rows["b"]["params"] == {"optimizer.lr": 0.0005, "model.layers.0.units": 16}
    assert rows["c"]["params"] == {"optimizer.lr": 0.01, "model.layers.0.units": 4}


def test_sort_puts_the_best_first(runs):
    folder, made = runs
    for metric, best_first in (("val_loss", min), ("val_accuracy", max)):
        result = invoke("runs", "list", "--runs-dir", folder, "--format", "json",
                        "--sort", metric)
        assert result.exit_code == 0, result.output
        values = [row[metric] for row in json.loads(result.stdout)]
        assert values == sorted(values, reverse=best_first is max)
    result = invoke("runs", "list", "--runs-dir", folder, "--sort", "val_lost")
    assert result.exit_code == 2
    assert "--sort: unknown column 'val_lost'" in result.output


def test_table_and_csv(runs, monkeypatch):
    folder, made = runs
    monkeypatch.delenv("COLUMNS", raising=False)  # not a terminal: the whole table
    table = invoke("runs", "list", "--runs-dir", folder, "--sort", "val_loss")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    headers = lines[0].split()
    assert headers[:6] == ["run", "status", "epochs", "best", "val_loss", "val_accuracy"]
    assert headers[-3:] == ["wall", "model.layers.0.units", "optimizer.lr"]
    assert len(lines) == 4
    ranked = sorted(made.values(), key=lambda r: r.summary["best"]["val_loss"])
    assert [line.split()[0] for line in lines[1:]] == [r.path.name for r in ranked]

    text = invoke("runs", "list", "--runs-dir", folder, "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 3
    assert {r["optimizer.lr"] for r in rows} == {"0.05", "0.0005", "0.01"}
    assert {r["status"] for r in rows} == {"completed"}

    assert invoke("runs", "list", "--runs-dir", folder, "--format", "xml").exit_code == 2


def test_empty_and_missing_folders(tmp_path):
    result = invoke("runs", "list", "--runs-dir", tmp_path, "--format", "json")
    assert result.exit_code == 0 and json.loads(result.stdout) == []
    result = invoke("runs", "list", "--runs-dir", tmp_path / "nope")
    assert result.exit_code == 2 and "no such folder" in result.output


def test_show_prints_config_summary_and_last_epochs(runs):
    folder, made = runs
    run = made["a"]
    result = invoke("runs", "show", run.path, "--last", "3")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"run        {run.path}" in out
    assert "status     completed: 6 epochs" in out
    assert "threads    1\n" in out  # as the suite runs (tests/conftest.py)
    assert "config.yaml\n  name: a\n" in out
    assert "    lr: 0.05" in out
    assert "last 3 of 6 epochs (metrics.csv)" in out
    table = out.split("last 3 of 6 epochs (metrics.csv)\n")[1].splitlines()
    assert table[0].split()[:3] == ["epoch", "train_loss", "val_loss"]
    assert [line.split()[0] for line in table[1:]] == ["4", "5", "6"]

    assert invoke("runs", "show", folder / "nope").exit_code == 2


def test_flatten_and_differing_keys():
    a = flatten({"name": "x", "optimizer": {"lr": 0.1}, "model": {"layers": [{"units": 4}]},
                 "data": {"features": None}, "tags": []})
    # Every setting by its dotted key, the sections whole as well as by their parts.
    assert a == {"name": "x", "optimizer": {"lr": 0.1}, "optimizer.lr": 0.1,
                 "model": {"layers": [{"units": 4}]}, "model.layers": [{"units": 4}],
                 "model.layers.0": {"units": 4}, "model.layers.0.units": 4,
                 "data": {"features": None}, "data.features": None, "tags": []}
    b = flatten({"name": "y", "optimizer": {"lr": 0.1},
                 "model": {"layers": [{"units": 4}, {"rate": 0.2}]},
                 "data": {"features": None}, "tags": []})
    assert differing_keys([a, b]) == ["model.layers.1"]  # missing in a counts, shown whole
    assert differing_keys([a]) == []
