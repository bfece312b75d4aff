"""Helpers for the command-line tests (test_cli, test_config, test_data, test_training).

Everything goes through the CLI's front door: `CliRunner().invoke(app, [...])`. With the
installed Typer/Click the runner keeps stderr apart from stdout (`result.stdout` holds only
what went to stdout, `result.stderr` the rest), and an exception escaping a command becomes
`result.exception` with exit code 1 instead of a traceback on stderr.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import pty
import re
import select
import struct
import termios
from pathlib import Path
from typing import Iterable, Optional


import numpy as np
import yaml
from typer.testing import CliRunner

from nnctl.cli import app

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
DATASETS = ROOT / "datasets"
RUN_NAME = re.compile(r"^(?P<name>.+)-\d{8}-\d{6}-[0-9a-f]{4}$")

runner = CliRunner()


def invoke(*args) -> "object":
    """Run `nnctl ARGS...` in-process and return Click's Result."""
    return runner.invoke(app, [str(a) for a in args])


def assert_user_error(result, *fragments: str) -> list[str]:
    """Exit code 2, no traceback, nothing on stdout; every fragment appears on stderr.
    Returns the stderr lines."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr,
                                   result.exception)
    # exit 2 comes from typer.Exit (SystemExit), never from an escaping exception
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)
    return result.stderr.splitlines()


def train(config, runs_dir, *extra, quiet: bool = True) -> tuple["object", Path]:
    """`nnctl train CONFIG --runs-dir RUNS [--quiet] EXTRA...`, which must succeed.
    Returns (result, run directory)."""
    args = ["train", config, "--runs-dir", runs_dir, *extra]
    if quiet:
        args.append("--quiet")
    result = invoke(*args)
    assert result.exit_code == 0, (result.exit_code, result.stderr, result.exception)
    run_dir = Path(result.stdout.splitlines()[0])
    assert run_dir.is_dir()
    return result, run_dir


def run_dirs(runs_dir: Path) -> list[Path]:
    runs_dir = Path(runs_dir)
    return sorted(p for p in runs_dir.iterdir()) if runs_dir.exists() else []


def write_csv(path: Path, header: list[str], rows: Iterable[Iterable]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_text(path: Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_config(path: Path, config: dict) -> Path:
    return write_text(path, yaml.safe_dump(config, sort_keys=False))


def load_frame(folder: Path, frame, dtype: str = "float64", **data):
    """load_training_data on `frame` written as folder/train.csv, a classification of its
    column y, nothing held out unless `data` says so; returns it and the CSV's path."""
    from nnctl.config import load_config
    from nnctl.data import load_training_data

    csv_path = folder / "train.csv"
    frame.to_csv(csv_path, index=False)
    spec = {"train": str(csv_path), "validation": None, "target": "y", **data}
    config = load_config(write_config(folder / "config.yaml", {
        "seed": 0, "dtype": dtype, "data": spec,
        "model": {"layers": [{"type": "dense", "units": 3, "activation": "softmax"}]},
        "loss": "categorical_crossentropy"}))
    return load_training_data(config.data, config.task, np.random.default_rng(0),
                              np.dtype(config.dtype)), csv_path


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def metrics(run_dir: Path) -> tuple[list[str], list[dict[str, str]]]:
    return read_csv(Path(run_dir) / "metrics.csv")


def column(run_dir: Path, name: str) -> list[float]:
    return [float(row[name]) for row in metrics(run_dir)[1]]


def summary(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "summary.json").read_text(encoding="utf-8"))


def npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def weights(run_dir: Path, stem: str = "last") -> dict[str, np.ndarray]:
    """The `layers.*` arrays of a checkpoint."""
    return {k: v for k, v in npz(Path(run_dir) / "checkpoints" / f"{stem}.npz").items()
            if k.startswith("layers.")}


def eval_json(run_dir: Path, *extra) -> dict:
    result = invoke("eval", run_dir, *extra, "--json")
    assert result.exit_code == 0, (result.stderr, result.exception)
    return json.loads(result.stdout.strip().splitlines()[-1])


# ---- tiny synthetic problems -------------------------------------------------------------------

CLASSES = ["zebra", "ant", "moth"]  # deliberately not in sorted order


def classification_rows(n: int = 90, seed: int = 0, classes=CLASSES, noise: float = 0.3):
    """Rows (id, x1, x2, x3, label): three well-separated blobs with string labels."""
    rng = np.random.default_rng(seed)
    centres = np.array([[2.0, 0.0, 0.0], [-2.0, 2.0, 0.0], [0.0, -2.0, 1.0]])
    rows = []
    for i in range(n):
        k = i % len(classes)
        x = centres[k] + noise * rng.standard_normal(3)
        rows.append([i, *(f"{v:.5f}" for v in x), classes[k]])
    return rows


CLASS_HEADER = ["id", "x1", "x2", "x3", "label"]


def regression_rows(n: int = 80, seed: int = 0):
    """Rows (x1, x2, y) with y = 2 x1 - x2 + noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        x1, x2 = rng.standard_normal(2)
        rows.append([f"{x1:.5f}", f"{x2:.5f}", f"{2 * x1 - x2 + 0.05 * rng.standard_normal():.5f}"])
    return rows


def classification_config(data: str = "data.csv", **training) -> dict:
    return {
        "seed": 0,
        "data": {"train": data, "validation": 0.2, "target": "label",
                 "features": ["x1", "x2", "x3"]},
        "model": {"layers": [
            {"type": "dense", "units": 8, "activation": "relu"},
            {"type": "dropout", "rate": 0.2},
            {"type": "dense", "units": 3, "activation": "softmax"},
        ]},
        "loss": "categorical_crossentropy",
        "optimizer": {"type": "adam", "lr": 0.01},
        "training": {"epochs": 3, "batch_size": 16, **training},
    }


def regression_config(data: str = "reg.csv", **training) -> dict:
    return {
        "seed": 0,
        "data": {"train": data, "validation": 0.25, "target": "y"},
        "model": {"layers": [
            {"type": "dense", "units": 8, "activation": "tanh"},
            {"type": "dense", "units": 1},
        ]},
        "loss": "mse",
        "optimizer": {"type": "adam", "lr": 0.01},
        "training": {"epochs": 3, "batch_size": 16, **training},
    }


def make_problem(folder: Path, kind: str = "classification", config_name: str = "tiny.yaml",
                 n: Optional[int] = None, **training) -> Path:
    """Write a tiny CSV and a config for it into `folder`; return the config's path."""
    folder = Path(folder)
    if kind == "classification":
        write_csv(folder / "data.csv", CLASS_HEADER, classification_rows(n or 90))
        return write_config(folder / config_name, classification_config(**training))
    write_csv(folder / "reg.csv", ["x1", "x2", "y"], regression_rows(n or 80))
    return write_config(folder / config_name, regression_config(**training))


def tiny_iris_config(epochs: int) -> str:
    """A small iris classifier that trains in well under a second."""
    return f"""\
seed: 0
data: {{train: {DATASETS / "iris.csv"}, validation: 0.2, target: species}}
model:
  layers:
    - {{type: dense, units: 8, activation: relu}}
    - {{type: dense, units: 3, activation: softmax}}
loss: categorical_crossentropy
optimizer: {{type: adam, lr: 0.01}}
training: {{epochs: {epochs}, batch_size: 16}}
"""


def in_terminal(command: list, columns: int, env: Optional[dict] = None,
                timeout: float = 120) -> tuple[int, str]:
    """Run `command` on a pseudo-terminal `columns` wide (set with TIOCSWINSZ, no COLUMNS), as
    in a user's terminal; return its exit code and what it printed (\r\n read as \n)."""
    command = [str(part) for part in command]
    pid, fd = pty.fork()
    if pid == 0:  # the child: its stdin, stdout and stderr are the terminal
        try:
            os.execve(command[0], command, env if env is not None else dict(os.environ))
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    out = b""
    while True:
        ready, _, _ = select.select([fd], [], [], timeout)
        assert ready, f"{command} did not finish within {timeout} s"
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.decode("utf-8", "replace").replace("\r\n", "\n")
