"""Shared helpers for the fault-injection tests (resume, signals, checkpoint safety,
concurrency, fuzzing): small configs and CSV files, CLI calls in-process and in subprocesses,
a progress reporter that interrupts training at a chosen batch, and checkpoint tampering."""

from __future__ import annotations

import csv
from contextlib import contextmanager
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import yaml
from typer.testing import CliRunner

from cli_helpers import write_csv
from nnctl.checkpoint import META_ARRAY

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT / "datasets"
CONFIGS = ROOT / "configs"


# ---- data and configs ----------------------------------------------------------------------

def make_classification_csv(path: Path, rows: int = 240, features: int = 5, classes: int = 3,
                            seed: int = 0) -> Path:
    """Gaussian blobs, one per class, with string labels."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 2.0, size=(classes, features))
    labels = rng.integers(0, classes, size=rows)
    x = centers[labels] + rng.normal(0, 1.0, size=(rows, features))
    return write_csv(path, [f"f{i}" for i in range(features)] + ["label"],
                     ([f"{v:.6g}" for v in row] + [f"class_{label}"]
                      for row, label in zip(x, labels)))


def make_regression_csv(path: Path, rows: int = 64, features: int = 3, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features))
    y = x @ rng.normal(size=features) + 0.1 * rng.normal(size=rows)
    return write_csv(path, [f"x{i}" for i in range(features)] + ["y"],
                     ([f"{v:.6g}" for v in row] + [f"{target:.6g}"] for row, target in zip(x, y)))


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def dropout_config(folder: Path, name: str = "drop", **training) -> Path:
    """A small dense classifier with dropout, shuffling, Adam and a cosine schedule on a
    synthetic CSV: 192 training rows, batch 16 -> 12 batches per epoch."""
    csv_path = folder / "blobs.csv"
    if not csv_path.exists():
        make_classification_csv(csv_path)
    config = {
        "name": name,
        "seed": 7,
        "data": {"train": str(csv_path), "validation": 0.2, "target": "label"},
        "model": {"layers": [
            {"type": "dense", "units": 16, "activation": "relu", "l2": 1e-4},
            {"type": "dropout", "rate": 0.3},
            {"type": "dense", "units": 3, "activation": "softmax"},
        ]},
        "loss": "categorical_crossentropy",
        "optimizer": {"type": "adam", "lr": 0.01},
        "training": {"epochs": 6, "batch_size": 16, "shuffle": True,
                     "lr_schedule": {"type": "cosine", "min_lr": 1e-4},
                     "checkpoint": {"keep_last": 3}, **training},
    }
    return write_yaml(folder / f"{name}.yaml", config)


def tiny_config(folder: Path, name: str = "tiny", **training) -> Path:
    """A very small, very fast model (64 rows, one dense layer, one batch per epoch)."""
    csv_path = folder / "tiny.csv"
    if not csv_path.exists():
        make_regression_csv(csv_path, rows=64)
    config = {
        "name": name,
        "seed": 0,
        "data": {"train": str(csv_path), "validation": 0.25, "target": "y"},
        "model": {"layers": [{"type": "dense", "units": 1}]},
        "loss": "mse",
        "optimizer": {"type": "sgd", "lr": 0.01},
        "training": {"epochs": 2, "batch_size": 64, "checkpoint": {"keep_last": 2}, **training},
    }
    return write_yaml(folder / f"{name}.yaml", config)


# ---- running the CLI -------------------------------------------------------------------------

def cli(*args) -> "object":
    """Run `nnctl ARGS` in-process with typer's CliRunner (stderr kept apart)."""
    from nnctl.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def assert_clean_failure(result, code: int = 2) -> str:
    """The command failed with `code`, through typer.Exit (so no traceback), and said why on
    stderr. Returns stderr."""
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.stderr.strip(), "no message on stderr"
    return result.stderr


def run_dirs(runs_dir: Path) -> list[Path]:
    return sorted(p for p in Path(runs_dir).iterdir() if p.is_dir()) if Path(runs_dir).is_dir() else []


def only_run(runs_dir: Path) -> Path:
    dirs = run_dirs(runs_dir)
    assert len(dirs) == 1, dirs
    return dirs[0]


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def subprocess_env() -> dict:
    env = dict(os.environ)
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONDONTWRITEBYTECODE="1")
    return env


def nnctl_command(*args) -> list[str]:
    return [sys.executable, "-m", "nnctl.cli", *map(str, args)]


def popen_nnctl(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(nnctl_command(*args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=subprocess_env(), **kwargs)


def run_nnctl(*args, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(nnctl_command(*args), capture_output=True, text=True,
                          env=subprocess_env(), timeout=timeout)


def wait_for_file(path: Path, proc: Optional[subprocess.Popen] = None,
                  timeout: float = 30.0, poll: float = 0.005) -> bool:
    """Wait until `path` exists; False if the process ended first or time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return True
        if proc is not None and proc.poll() is not None:
            return path.exists()
        time.sleep(poll)
    return False


def wait_for_run_file(runs_dir: Path, relative: str, proc: subprocess.Popen,
                      timeout: float = 30.0) -> Optional[Path]:
    """Wait for the (single) run directory below runs_dir to hold `relative`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in run_dirs(runs_dir):
            if (run / relative).exists():
                return run
        if proc.poll() is not None:
            break
        time.sleep(0.005)
    for run in run_dirs(runs_dir):
        if (run / relative).exists():
            return run
    return None


# ---- deterministic interruption --------------------------------------------------------------

class InterruptingProgress:
    """A progress reporter that sends SIGINT to this process after a chosen batch (1-based,
    counted within the epoch, `epoch` 1-based) of a chosen epoch, so the real signal handler
    of nnctl.api.stop_on_signals runs."""

    def __init__(self, epoch: int, batch: int, signum: int = signal.SIGINT):
        self.epoch, self.target_batch, self.signum = epoch, batch, signum
        self.current_epoch, self.done, self.sent = 0, 0, 0

    def start_epoch(self, epoch, epochs, n_batches, done):
        self.current_epoch, self.done = epoch, done

    def batch(self, running):
        self.done += 1
        if self.current_epoch == self.epoch and self.done == self.target_batch and not self.sent:
            self.sent += 1
            os.kill(os.getpid(), self.signum)
            time.sleep(0)  # give the interpreter a chance to run the Python-level handler

    def end_epoch(self, row):
        pass

    def close(self):
        pass


def interrupt_at(monkeypatch, epoch: int, batch: int, signum: int = signal.SIGINT):
    """Make the next training in this process interrupt itself at (epoch, batch)."""
    import nnctl.api

    reporters = []

    def choose(quiet, *args, **kwargs):
        reporter = InterruptingProgress(epoch, batch, signum)
        reporters.append(reporter)
        return reporter

    monkeypatch.setattr(nnctl.api, "choose", choose)
    return reporters


# ---- checkpoints -------------------------------------------------------------------------------

def npz_arrays(path: Path, keep_meta: bool = False) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files if keep_meta or name != META_ARRAY}


def assert_same_arrays(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert a[name].shape == b[name].shape, name
        assert a[name].tobytes() == b[name].tobytes(), f"array {name!r} differs"


def metrics_rows(run: Path, drop=("seconds",)) -> list[dict]:
    if not (run / "metrics.csv").exists():
        return []
    with open(run / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(f)]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below `folder` (relative path -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def rewrite_npz(path: Path, arrays: dict[str, np.ndarray], allow_pickle: bool = False) -> None:
    with open(path, "wb") as f:
        if allow_pickle:
            np.savez(f, **arrays)
        else:
            np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})


def temp_files(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob(".*") if ".tmp-" in p.name)


@contextmanager
def time_limit(seconds: float):
    """Fail (instead of hanging) when one example takes too long."""
    def expired(signum, frame):
        raise TimeoutError(f"an example took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
