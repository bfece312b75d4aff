"""Hostile and unlucky configs, sweep files and CSV files: each exits 2 with a message naming
the file (and line or field), quickly, in bounded memory, without a traceback, and nothing is
created. Every command runs as a real process under an address-space limit and a timeout."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import DATASETS, tiny_iris_config

MEMORY_LIMIT = 3 * 1024 ** 3  # bytes of address space: NumPy and OpenBLAS start well within it
TIMEOUT = 60


def config_reading(train: Path | str, epochs: int = 2) -> str:
    """The tiny iris config, reading `train` instead of datasets/iris.csv."""
    return tiny_iris_config(epochs).replace(str(DATASETS / "iris.csv"), str(train))


def limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def nnctl(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nnctl.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=TIMEOUT, preexec_fn=limited)


def refused(result: subprocess.CompletedProcess, *fragments: str) -> list[str]:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)
    return result.stderr.splitlines()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "base.yaml").write_text(tiny_iris_config(epochs=2))
    return tmp_path


def test_a_normal_run_works_under_the_memory_limit(folder):
    result = nnctl("train", "base.yaml", "--runs-dir", "runs", "--quiet", cwd=folder)
    assert result.returncode == 0, result.stderr


# ---- configs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("setting, message", [
    ("optimizer.lr=.inf", "--set optimizer.lr=.inf: must be a finite number"),
    ("optimizer.lr=.nan", "--set optimizer.lr=.nan: must be a finite number"),
    ("model.layers.0.l2=.inf", "--set model.layers.0.l2=.inf: must be a finite number"),
    ("model.layers.0.l1=1.0e+308", "model.layers.0.l1=1.0e+308: must be less than or equal to"),
    ("training.epochs=true", "epochs: must be a number, not true"),
    ("training.batch_size=false", "batch_size: must be a number, not false"),
])
def test_values_that_validate_but_cannot_train_are_config_errors(folder, setting, message):
    for command in ("validate", "train"):
        refused(nnctl(command, "base.yaml", "--set", setting, cwd=folder), message)
    assert not (folder / "runs").exists()


def test_a_model_too_large_for_memory_is_refused_before_allocating(folder):
    result = nnctl("train", "base.yaml", "--set", "model.layers.0.units=1000000000",
                   "--runs-dir", "runs", cwd=folder)
    lines = refused(result, "--set model.layers.0.units=1000000000: the model needs about",
                    "TB of memory")
    available = lines[0].rsplit("; ", 1)[1]
    assert available.endswith("is available")
    assert float(available.split()[0]) <= MEMORY_LIMIT / 1024 ** 3  # the limit is seen
    assert not (folder / "runs").exists()


def test_a_key_given_twice_names_both_lines(folder):
    (folder / "twice.yaml").write_text(tiny_iris_config(epochs=2) + "seed: 3\n")
    text = (folder / "twice.yaml").read_text()
    first = 1 + text.splitlines().index(next(l for l in text.splitlines() if l.startswith("seed:")))
    last = len(text.splitlines())
    refused(nnctl("validate", "twice.yaml", cwd=folder),
            f"twice.yaml:{last} seed: given twice in one mapping (first on line {first})")


def alias_bomb(levels: int = 7) -> str:
    lines = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for i in range(1, levels):
        prev, name = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def test_aliases_that_expand_to_billions_of_values_are_refused(folder):
    (folder / "bomb.yaml").write_text(alias_bomb())
    refused(nnctl("validate", "bomb.yaml", cwd=folder), "bomb.yaml: expands to more than")
    (folder / "bomb_sweep.yaml").write_text("config: base.yaml\nparameters:\n"
                                            "  optimizer.lr: [0.1]\n" + alias_bomb())
    result = nnctl("sweep", "bomb_sweep.yaml", "--runs-dir", "runs", cwd=folder)
    refused(result, "bomb_sweep.yaml: expands to more than")
    assert len(result.stderr) < 1000
    assert not (folder / "runs").exists()


@pytest.mark.parametrize("kind", ["device", "fifo", "folder"])
def test_a_config_or_csv_that_is_not_a_regular_file(folder, kind):
    special = folder / "special"
    if kind == "device":
        special.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(special)
    else:
        special.mkdir()
    what = {"device": "is a device", "fifo": "is a FIFO", "folder": "is a folder"}[kind]
    refused(nnctl("train", special, "--runs-dir", "runs", cwd=folder), f"{special}: {what}")
    (folder / "c.yaml").write_text(config_reading(special))
    # the config's data paths are resolved: a symlink is named by what it points to
    refused(nnctl("train", "c.yaml", "--runs-dir", "runs", cwd=folder),
            f"{special.resolve()}: {what}")
    assert not (folder / "runs").exists()


# ---- CSV files ---------------------------------------------------------------------------------

def test_a_latin1_csv_is_reported_at_its_first_bad_byte(folder):
    text = "sepal_length,sepal_width,petal_length,petal_width,species\n"
    rows = [f"5.1,3.5,1.4,0.2,{'setosa' if i % 2 else 'virginica'}\n" for i in range(40)]
    rows[7] = "5.1,3.5,1.4,0.2,caf\xe9\n"
    data = (text + "".join(rows)).encode("latin-1")
    (folder / "latin.csv").write_bytes(data)
    offset = data.index(b"\xe9")
    (folder / "l.yaml").write_text(config_reading("latin.csv"))
    refused(nnctl("train", "l.yaml", "--runs-dir", "runs", cwd=folder),
            f"latin.csv:9: not UTF-8 text (byte {offset} of the file, 0xe9)")


def test_values_too_large_to_scale_name_the_file_and_line(folder):
    lines = ["a,b,y"] + [f"{i},{i % 3},{i % 2}" for i in range(20)]
    lines[6] = "1e308,1,0"
    lines[9] = "-1e308,2,1"
    (folder / "huge.csv").write_text("\n".join(lines) + "\n")
    (folder / "h.yaml").write_text(
        "data: {train: huge.csv, target: y, scale: standard}\n"
        "model: {layers: [{type: dense, units: 2, activation: softmax}]}\n"
        "loss: categorical_crossentropy\ntraining: {epochs: 1}\n")
    result = nnctl("train", "h.yaml", "--runs-dir", "runs", cwd=folder)
    line = next(l for l in refused(result) if "too large to scale" in l)
    assert "huge.csv:" in line and "column 'a'" in line and "e+308" in line
    assert int(line.split("huge.csv:")[1].split()[0]) in (7, 10)


def test_predict_does_not_overwrite_its_input(folder):
    csv = folder / "iris.csv"
    csv.write_bytes((DATASETS / "iris.csv").read_bytes())
    (folder / "copy.yaml").write_text(config_reading("iris.csv"))
    train = nnctl("train", "copy.yaml", "--runs-dir", "runs", "--quiet", cwd=folder)
    run_dir = train.stdout.splitlines()[0]
    before = csv.read_bytes()
    refused(nnctl("predict", run_dir, csv, "-o", csv, cwd=folder), "is the input file")
    assert csv.read_bytes() == before


# ---- sweep files -------------------------------------------------------------------------------

@pytest.mark.parametrize("body, fragment", [
    ("method: random\nsamples: 1000000000000\nparameters:\n  optimizer.lr: [0.1]\n",
     "1,000,000,000,000 trials; a sweep runs at most"),
    ("method: grid\nparameters:\n" + "".join(
        f"  {key}: [{', '.join(str(v) for v in range(1, 101))}]\n"
        for key in ("training.epochs", "training.batch_size", "model.layers.0.units", "seed")),
     "100,000,000 trials; a sweep runs at most"),
])
def test_a_sweep_counts_its_trials_before_making_them(folder, body, fragment):
    (folder / "big.yaml").write_text("config: base.yaml\n" + body)
    result = nnctl("sweep", "big.yaml", "--runs-dir", "runs", cwd=folder)
    refused(result, fragment)
    assert not (folder / "runs").exists()


# ---- what nnctl deletes, and what a failed run's summary claims ---------------------------------

def test_temporary_files_are_removed_only_in_the_run_itself(tmp_path):
    """A run whose checkpoints/ is a symlink elsewhere: files there that look like nnctl's
    temporary files are not nnctl's to delete; in the run itself only atomic_write's names go."""
    from nnctl.checkpoint import remove_temp_files

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    victim = outside / ".best.npz.tmp-123-abcdef"
    victim.write_text("someone's")
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoints").symlink_to(outside)
    assert remove_temp_files(run / "checkpoints") == []
    assert victim.exists()
    left = run / ".last.json.tmp-99-0a1b2c"
    left.write_text("a write that never finished")
    notes = run / ".notes.tmp-mine"
    notes.write_text("the user's")
    assert remove_temp_files(run) == [left]
    assert notes.exists()


def test_a_failed_run_claims_only_the_best_epoch_it_saved(folder):
    """The summary of a run that failed (here: its best checkpoint removed, as a full disk
    would leave it unwritten) reports the best epoch from the checkpoint on disk, or none."""
    from nnctl.api import _saved_best
    from nnctl.runs import RunRecorder

    result = nnctl("train", "base.yaml", "--runs-dir", "runs", "--quiet", cwd=folder)
    run_dir = Path(folder / result.stdout.splitlines()[0])
    recorder = RunRecorder(run_dir, {})
    saved = _saved_best(recorder)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert saved["best_epoch"] == summary["best_epoch"] >= 1
    (run_dir / "checkpoints" / "best.json").unlink()
    assert _saved_best(recorder) == {"best_epoch": None, "best": None}
