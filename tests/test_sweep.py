"""`nnctl sweep`: trials from a sweep file, run as `nnctl train` processes, ranked in sweep.csv;
and the same sweep as printed commands run by `xargs -P`."""

import csv
import itertools
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nnctl.cli import app
from nnctl.config import parse_override
from nnctl.sweep import SweepSpec, generate_trials, load_sweep, yaml_value
from cli_helpers import tiny_iris_config


BASE = tiny_iris_config(epochs=4)

GRID = """\
config: base.yaml
method: grid
metric: val_loss
goal: minimize
parameters:
  optimizer.lr: [0.05, 0.002]
  model.layers.0.units: [4, 16]
"""


def nnctl(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "nnctl.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=300)


def write_sweep(folder: Path, text: str, name: str = "grid.yaml") -> Path:
    (folder / "base.yaml").write_text(BASE)
    path = folder / name
    path.write_text(text)
    return path


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_grid_sweep_with_two_workers_ranks_every_trial(tmp_path):
    write_sweep(tmp_path, GRID)
    result = nnctl("sweep", "grid.yaml", "--workers", "2", "--runs-dir", "runs", cwd=tmp_path)
    assert result.returncode == 0, result.stderr

    folders = list((tmp_path / "runs").iterdir())
    assert len(folders) == 1 and folders[0].name.startswith("grid-")
    folder = folders[0]
    assert result.stdout.strip().splitlines()[-1] == str(Path("runs") / folder.name)
    assert (folder / "sweep.yaml").read_text() == GRID
    assert "2 at a time" in result.stderr

    rows = read_csv(folder / "sweep.csv")
    assert len(rows) == 4
    assert [r["rank"] for r in rows] == ["1", "2", "3", "4"]
    assert {r["status"] for r in rows} == {"completed"}
    values = [float(r["val_loss"]) for r in rows]
    assert values == sorted(values)  # minimize: best first
    # Trial numbers follow the grid: the first parameter varies slowest.
    by_trial = {int(r["trial"]): (r["optimizer.lr"], r["model.layers.0.units"]) for r in rows}
    assert by_trial == {1: ("0.05", "4"), 2: ("0.05", "16"), 3: ("0.002", "4"),
                        4: ("0.002", "16")}
    for row in rows:
        run_dir = tmp_path / row["run_dir"]  # as `nnctl train` printed it, from the cwd
        assert run_dir.parent.resolve() == folder.resolve()
        assert run_dir.name.startswith(f"grid-{row['trial']}-")
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["status"] == "completed"
        # two trials at a time share the cores
        share = max(1, len(os.sched_getaffinity(0)) // 2)
        assert f"--threads {share} --json --cache {Path('runs') / folder.name / 'cache'}" in \
            summary["command"]
        assert summary["best"]["val_loss"] == pytest.approx(float(row["val_loss"]))
        config = (run_dir / "config.yaml").read_text()
        assert f"lr: {row['optimizer.lr']}" in config
        assert f"units: {row['model.layers.0.units']}" in config

    # The printed table lists the trials in the same, ranked, order.
    table = result.stdout.splitlines()
    assert table[0].split()[:2] == ["rank", "trial"]
    assert [line.split()[1] for line in table[1:5]] == [r["trial"] for r in rows]

    # Each trial ran once, in one run directory, though two worker threads took trials.
    finished = [line.split()[1] for line in result.stderr.splitlines()
                if line.startswith("trial ")]
    assert sorted(finished) == ["1", "2", "3", "4"]
    assert len([p for p in folder.iterdir() if p.is_dir() and p.name != "cache"]) == 4

    # Without a terminal, the status line follows each finished trial; the last one counts all.
    status = [line for line in result.stderr.splitlines() if " trials: " in line]
    assert len(status) == 4
    assert status[-1].startswith(f"4/4 trials: 4 done, 0 running, 0 pruned, 0 failed; best "
                                 f"val_loss {float(rows[0]['val_loss']):.4g} "
                                 f"(trial {rows[0]['trial']}); ")

    # `nnctl plot SWEEP_DIR`: one panel per parameter and one of curves, in a 3-wide grid
    plotted = nnctl("plot", Path("runs") / folder.name, "-o", "sweep.png", cwd=tmp_path)
    assert plotted.returncode == 0, plotted.stderr
    data = (tmp_path / "sweep.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = (int.from_bytes(data[16 + 4 * i:20 + 4 * i], "big") for i in range(2))
    assert (width, height) == (3 * 460, 380)  # 3 panels x 4.6 in, 3.8 in at 100 dpi


# Put first on a process's PYTHONPATH: logs every parse of a CSV file (not a cache hit).
PARSE_LOG = """
import json, os
from nnctl.data import reading

def logged(path, text_columns, parse=reading._parse_csv):
    with open(os.environ["NNCTL_TEST_PARSE_LOG"], "a") as f:
        f.write(json.dumps({"pid": os.getpid(), "file": path.name}) + "\\n")
    return parse(path, text_columns)

reading._parse_csv = logged
"""


def test_a_sweep_parses_its_training_file_once_for_all_its_trials(tmp_path):
    """The sweep process fills the cache before its workers start: trials starting together
    neither parse the file nor wait for one of them to parse it."""
    write_sweep(tmp_path, GRID)
    hook, log = tmp_path / "hook", tmp_path / "parses.jsonl"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(PARSE_LOG)
    path = os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))
    process = subprocess.Popen([sys.executable, "-m", "nnctl.cli", "sweep", "grid.yaml",
                                "--workers", "2", "--runs-dir", "runs"], cwd=tmp_path,
                               env={**os.environ, "PYTHONPATH": path,
                                    "NNCTL_TEST_PARSE_LOG": str(log)},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    parses = [json.loads(line) for line in log.read_text().splitlines()]
    assert parses == [{"pid": process.pid, "file": "iris.csv"}]
    [folder] = (tmp_path / "runs").iterdir()
    assert len(read_csv(folder / "sweep.csv")) == 4


def test_a_trial_killed_by_the_pruners_signal_as_it_finished_keeps_its_result(tmp_path):
    """The pruner's SIGTERM can reach a trial after its last epoch, when its handler is gone:
    the process dies (exit -15) but its summary says completed; the sweep ranks it by that
    summary's metric instead of calling it failed."""
    import optuna
    import nnctl
    from nnctl.sweep.runner import Follower
    from nnctl.sweep.table import Outcome, Trial

    sweep = load_sweep(write_sweep(tmp_path, GRID))
    run = nnctl.train(tmp_path / "base.yaml", runs_dir=tmp_path / "runs")
    outcome = Outcome(Trial(1, sweep.trials[0].params), status="failed",
                      error="exit code -15", run_dir=str(run.path))
    follower = Follower(optuna.create_study().ask(), outcome, tmp_path, sweep)
    follower.pruned = True
    follower.settle_late_stop()
    assert (outcome.status, outcome.error, follower.pruned) == ("completed", "", False)
    assert outcome.value == run.summary["best"]["val_loss"]
    assert outcome.epochs == run.summary["epochs_run"] == 4

    (run.path / "summary.json").unlink()  # stopped before its summary: pruned part-way
    outcome.status = "failed"
    follower.pruned = True
    follower.settle_late_stop()
    assert (outcome.status, follower.pruned) == ("interrupted", True)


def test_a_failed_trial_does_not_stop_the_others(tmp_path):
    """A learning rate that passes the schema but makes training diverge: that trial fails
    (exit 4 for the sweep), the others complete."""
    write_sweep(tmp_path, GRID.replace("model.layers.0.units: [4, 16]",
                                       "model.layers.0.units: [4]")
                .replace("[0.05, 0.002]", "[0.05, 1.0e+30, 0.002]"))
    result = nnctl("sweep", "grid.yaml", "--workers", "2", "--runs-dir", "runs", cwd=tmp_path)
    assert result.returncode == 4, result.stderr

    folder = next((tmp_path / "runs").iterdir())
    rows = read_csv(folder / "sweep.csv")
    status = {r["optimizer.lr"]: r for r in rows}
    assert status["0.05"]["status"] == status["0.002"]["status"] == "completed"
    assert status["1.0e+30"]["status"] == "diverged"
    assert status["1.0e+30"]["rank"] == ""
    assert "the loss became nan" in status["1.0e+30"]["error"]
    assert rows[-1]["optimizer.lr"] == "1.0e+30"  # failed trials come after ranked ones
    assert sorted(r["rank"] for r in rows[:2]) == ["1", "2"]
    assert "trial 2: " in result.stdout


def test_printed_commands_run_under_xargs_into_one_runs_folder(tmp_path, monkeypatch):
    write_sweep(tmp_path, GRID)
    monkeypatch.chdir(tmp_path)
    printed = CliRunner().invoke(app, ["sweep", "grid.yaml", "--print-commands",
                                       "--runs-dir", "shared"])
    assert printed.exit_code == 0, printed.output
    commands = printed.stdout.splitlines()
    assert len(commands) == 4
    assert all(c.startswith("nnctl train base.yaml --set ") for c in commands)
    assert not any("--threads" in c for c in commands)  # each takes the cores where it runs
    pinned = CliRunner().invoke(app, ["sweep", "grid.yaml", "--print-commands", "--threads", "1"])
    assert [c + " --threads 1" for c in commands] == [
        c.replace("--runs-dir runs/", "--runs-dir shared/") for c in pinned.stdout.splitlines()]
    assert not (tmp_path / "shared").exists()  # runs nothing

    # `nnctl` on PATH is this interpreter's nnctl.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "nnctl"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m nnctl.cli "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    ran = subprocess.run(["xargs", "-d", "\n", "-P", "2", "-I{}", "sh", "-c", "{}"],
                         input=printed.stdout, cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr

    listed = CliRunner().invoke(app, ["runs", "list", "--runs-dir", "shared", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    runs = json.loads(listed.stdout)
    assert len(runs) == 4
    assert {r["status"] for r in runs} == {"completed"}
    assert sorted(r["name"] for r in runs) == ["grid-1", "grid-2", "grid-3", "grid-4"]
    found = {(r["params"]["optimizer.lr"], r["params"]["model.layers.0.units"]) for r in runs}
    assert found == set(itertools.product([0.05, 0.002], [4, 16]))
    assert all(Path(r["run_dir"]).parent == Path("shared/grid") for r in runs)


def test_random_trials_are_seeded_and_within_their_ranges(tmp_path):
    text = """\
config: base.yaml
method: random
samples: 40
seed: 7
metric: val_accuracy
parameters:
  optimizer.lr: {distribution: log_uniform, min: 1.0e-4, max: 0.1}
  optimizer.beta1: {distribution: uniform, min: 0.8, max: 0.99}
  training.batch_size: {distribution: int_uniform, min: 8, max: 12}
  model.layers.0.units: [4, 8, 16]
"""
    sweep = load_sweep(write_sweep(tmp_path, text, "random.yaml"))
    again = load_sweep(tmp_path / "random.yaml")
    assert [t.params for t in sweep.trials] == [t.params for t in again.trials]
    assert len(sweep.trials) == 40 and sweep.maximize
    lrs = [t.params["optimizer.lr"] for t in sweep.trials]
    assert all(1e-4 <= v <= 0.1 for v in lrs)
    assert sum(v < 1e-2 for v in lrs) > 20  # log-uniform: 2 of 3 decades lie below 0.01
    assert all(0.8 <= t.params["optimizer.beta1"] <= 0.99 for t in sweep.trials)
    sizes = [t.params["training.batch_size"] for t in sweep.trials]
    assert all(isinstance(v, int) for v in sizes) and set(sizes) == {8, 9, 10, 11, 12}
    assert {t.params["model.layers.0.units"] for t in sweep.trials} == {4, 8, 16}

    other = SweepSpec.model_validate({**sweep.spec.model_dump(), "seed": 8})
    assert [t.params for t in generate_trials(other)] != [t.params for t in sweep.trials]


def test_set_values_round_trip_through_yaml():
    for value in (0.01, 1e-05, 3, True, None, "relu", "1", [8, 8], {"type": "step",
                                                                      "step_size": 3}):
        path, parsed = parse_override(f"x.y={yaml_value(value)}")
        assert path == ["x", "y"] and parsed == value


def test_sweep_file_problems_are_listed_with_their_lines(tmp_path):
    write_sweep(tmp_path, """\
config: base.yaml
method: gird
metrc: val_loss
parameters:
  optimizer.lr: {distribution: log_uniform, min: 0.1, max: 0.01}
  training.epochs: 3
""", "bad.yaml")
    result = CliRunner().invoke(app, ["sweep", str(tmp_path / "bad.yaml")])
    assert result.exit_code == 2
    bad = tmp_path / "bad.yaml"
    assert f"{bad}:2 method: must be 'grid', 'random' or 'tpe' (got 'gird')" in result.output
    assert f"{bad}:3 metrc: unknown key; did you mean 'metric'?" in result.output
    assert f"{bad}:5 parameters.optimizer.lr: min must be less than max" in result.output
    assert f"{bad}:6 parameters.training.epochs: must be a list of values" in result.output
    assert "Traceback" not in result.output

    write_sweep(tmp_path, "config: base.yaml\nmetric: val_r2\nparameters:\n"
                          "  optimizer.lr: {distribution: uniform, min: 0.1, max: 0.2}\n",
                "bad2.yaml")
    result = CliRunner().invoke(app, ["sweep", str(tmp_path / "bad2.yaml")])
    assert result.exit_code == 2
    assert "bad2.yaml:4 parameters.optimizer.lr: a {distribution: uniform} range needs " \
           "method: random or tpe" in result.output
    assert "bad2.yaml:2 metric: unknown metric 'val_r2'" in result.output
    assert not (Path.cwd() / "runs" / "bad2").exists()


def test_outcomes_are_read_from_the_summary_and_ranked():
    from nnctl.sweep import Outcome, Trial, rank, read_outcome

    summary = {"status": "completed", "run_dir": "runs/s/s-1", "epochs_run": 5,
               "wall_seconds": 1.5, "best": {"val_loss": 0.3, "val_accuracy": 0.9},
               "test": {"loss": 0.4, "accuracy": 0.8}}
    outcomes = []
    for number, (status, val, test) in enumerate(
            [("completed", 0.9, 0.8), ("early_stopped", 0.95, 0.7), ("diverged", 0.99, 0.99),
             ("completed", 0.9, 0.85)], start=1):
        outcome = Outcome(Trial(number, {"optimizer.lr": 0.1}))
        text = json.dumps(dict(summary, status=status, best={"val_accuracy": val},
                               test={"accuracy": test}))
        read_outcome(outcome, 3 if status == "diverged" else 0, f"runs/s/s-{number}\n{text}\n",
                     "error: diverged at epoch 2\n" if status == "diverged" else "",
                     "test_accuracy")
        outcomes.append(outcome)
    assert [o.value for o in outcomes] == [0.8, 0.7, 0.99, 0.85]
    assert outcomes[2].error == "diverged at epoch 2" and not outcomes[2].ok
    ranked = rank(outcomes, maximize=True)
    assert [(o.trial.number, o.rank) for o in ranked] == [(4, 1), (1, 2), (2, 3), (3, None)]
    ranked = rank(outcomes, maximize=False)
    assert [o.trial.number for o in ranked] == [2, 1, 4, 3]

    crashed = Outcome(Trial(5, {}))
    read_outcome(crashed, 1, "", "Traceback (most recent call last):\n...\nKeyError: 'x'\n",
                 "val_loss")
    assert crashed.status == "failed" and crashed.error == "KeyError: 'x'"


def test_hyperband_stops_trials_only_from_min_epochs_on(tmp_path):
    """early_terminate: hyperband: the study's pruner is Optuna's HyperbandPruner over
    min_epochs..the config's epochs, the sweep exits 0 with every trial completed or pruned,
    and no trial is stopped before min_epochs. (Which trials hyperband stops depends on the
    bracket each lands in, which Optuna draws from the study's name: not asserted.)"""
    import optuna

    from nnctl.sweep import load_sweep
    from nnctl.sweep.study import pruner

    (tmp_path / "base.yaml").write_text(tiny_iris_config(epochs=150))
    (tmp_path / "hb.yaml").write_text("""\
config: base.yaml
method: grid
metric: val_loss
parameters:
  optimizer.lr: [0.05, 0.02, 0.03, 1.0e-5, 2.0e-5]
early_terminate: {type: hyperband, min_epochs: 3}
""")
    chosen = pruner(load_sweep(tmp_path / "hb.yaml"))
    assert isinstance(chosen, optuna.pruners.HyperbandPruner)
    assert (chosen._min_resource, chosen._max_resource) == (3, 150)
    result = nnctl("sweep", "hb.yaml", "--workers", "1", "--runs-dir", "runs", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = read_csv(next((tmp_path / "runs").iterdir()) / "sweep.csv")
    assert {r["status"] for r in rows} <= {"completed", "early_stopped", "pruned"}
    assert all(3 <= int(r["epochs"]) < 150 for r in rows if r["status"] == "pruned")


def test_data_files_in_a_sweep_file_are_read_from_its_folder(tmp_path, monkeypatch):
    """Like the paths in a config file, and unlike a `--set` typed in a shell: `data.train:
    [a.csv]` in sweeps/grid.yaml means sweeps/a.csv, whichever folder the sweep runs from."""
    import shutil

    from cli_helpers import DATASETS

    folder = tmp_path / "sweeps"
    folder.mkdir()
    write_sweep(folder, GRID.replace("model.layers.0.units: [4, 16]",
                                     "data.train: [iris_a.csv, iris_b.csv]"))
    for name in ("iris_a.csv", "iris_b.csv"):
        shutil.copy(DATASETS / "iris.csv", folder / name)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    printed = CliRunner().invoke(app, ["sweep", str(folder / "grid.yaml"), "--print-commands"])
    assert printed.exit_code == 0, printed.output
    sets = [c.split("--set data.train=")[1].split()[0] for c in printed.stdout.splitlines()]
    assert sorted(set(sets)) == [str(folder / "iris_a.csv"), str(folder / "iris_b.csv")]
    result = nnctl("sweep", folder / "grid.yaml", "--runs-dir", "runs", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    rows = read_csv(next((elsewhere / "runs").iterdir()) / "sweep.csv")
    assert {r["status"] for r in rows} == {"completed"} and len(rows) == 4
