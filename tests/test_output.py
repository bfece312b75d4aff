"""What a user sees around a run, through the front door: the model summary at the start, the
block that says how the run ended, progress bars that fit a real 80-column terminal (a
pseudo-terminal), `-h`, and the config reference (`nnctl validate --defaults`, README table).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from cli_helpers import CONFIGS, ROOT, invoke, write_csv
from cli_helpers import in_terminal as terminal

NNCTL = [sys.executable, "-m", "nnctl.cli"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def nnctl(*args, env=None, **kwargs) -> subprocess.CompletedProcess:
    """`nnctl ARGS` in a subprocess with stdout and stderr piped (not a terminal)."""
    return subprocess.run([*NNCTL, *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300, **kwargs)


def in_terminal(args, columns: int = 80) -> tuple[int, list[str]]:
    """Run `nnctl ARGS` on a pseudo-terminal of `columns` columns; return the exit code and
    the screen lines as drawn (each carriage return or cursor move starts a new piece)."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    code, out = terminal([*NNCTL, *args], columns, env)  # the terminal's size decides
    text = ANSI.sub("\n", out)
    return code, [p for p in re.split(r"[\r\n]", text) if p.strip()]


def small_config(tmp_path: Path, **training) -> Path:
    """A two-class problem that a small network learns in a few epochs."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    data = write_csv(tmp_path / "points.csv", ["a", "b", "c", "label"],
                     [[*map(float, row), label] for row, label in zip(x, y)])
    config = {"data": {"train": str(data), "target": "label"},
              "model": {"layers": [{"type": "dense", "units": 8, "activation": "relu"},
                                   {"type": "dense", "units": 2, "activation": "softmax"}]},
              "loss": "categorical_crossentropy",
              "optimizer": {"type": "adam", "lr": 0.01},
              "training": {"epochs": 30, "batch_size": 16, **training}}
    path = tmp_path / "points.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# ---- the model summary ------------------------------------------------------------------------

def test_summary_lists_each_layer_its_shape_and_parameters(tmp_path):
    result = nnctl("train", CONFIGS / "customers.yaml", "--runs-dir", tmp_path / "runs",
                   "--threads", "1", "--set", "training.epochs=2")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    start = lines.index(next(l for l in lines if l.startswith("layer ")))
    table = {l.split()[0] + (" " + l.split()[1] if l[0].isdigit() else ""): l
             for l in lines[start + 1:start + 8]}
    # customers.yaml: 29 inputs (one embedding code among them) -> embedding 148 x 26 ->
    # 64 relu -> dropout -> 32 relu -> 1 sigmoid
    assert re.search(r"^input\s+\(29,\)$", table["input"])
    assert re.search(r"\(54,\)\s+3,848$", table["embeddings"])      # 28 + 26 wide; 148 * 26
    assert re.search(r"\(64,\)\s+3,520$", table["0 dense"])          # 54 * 64 + 64
    assert re.search(r"\(64,\)\s+0$", table["1 dropout"])
    assert re.search(r"\(32,\)\s+2,080$", table["2 dense"])          # 64 * 32 + 32
    assert re.search(r"\(1,\)\s+33$", table["3 dense"])              # 32 + 1
    total = 3848 + 3520 + 2080 + 33
    assert f"total: {total:,} parameters (float32" in result.stderr
    assert "data: 1,600 train, 400 validation rows; 9 columns make 29 inputs" in result.stderr
    assert "threads: 1 (--threads)" in result.stderr


def test_summary_of_an_rnn_and_where_the_thread_count_came_from(tmp_path):
    result = nnctl("train", CONFIGS / "waveforms_rnn.yaml", "--runs-dir", tmp_path / "runs",
                   "--set", "training.epochs=1", env={"OPENBLAS_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load((CONFIGS / "waveforms_rnn.yaml").read_text())
    steps, features = config["data"]["sequence"]["steps"], config["data"]["sequence"]["features"]
    units = config["model"]["layers"][0]["units"]
    assert re.search(rf"^input\s+\({steps}, {features}\)$", result.stderr, re.M)
    params = features * units + units * units + units
    assert re.search(rf"^0 rnn \(tanh\)\s+\({units},\)\s+{params:,}$", result.stderr, re.M)
    assert "threads: 1 (OPENBLAS_NUM_THREADS)" in result.stderr


def test_quiet_prints_nothing_but_the_run_directory(tmp_path):
    result = nnctl("train", small_config(tmp_path), "--runs-dir", tmp_path / "runs", "--quiet")
    assert result.returncode == 0
    assert result.stderr == ""
    assert Path(result.stdout.strip()).is_dir()


# ---- how the run ended --------------------------------------------------------------------------

def ending_block(stderr: str) -> list[str]:
    lines = stderr.splitlines()
    first = max(i for i, l in enumerate(lines)
                if l.startswith(("completed:", "early stopped", "diverged", "interrupted")))
    return lines[first:]


def test_end_of_a_completed_run(tmp_path):
    result = nnctl("train", small_config(tmp_path), "--runs-dir", tmp_path / "runs")
    assert result.returncode == 0, result.stderr
    block = ending_block(result.stderr)
    run_dir = result.stdout.strip()
    summary = yaml.safe_load(Path(run_dir, "summary.json").read_text())
    assert block[0].startswith("completed: 30 epochs in ")
    best = summary["best"]
    assert block[1].startswith(f"best epoch {summary['best_epoch']} (val_loss): "
                               f"val_loss {best['val_loss']:.4f}")
    assert block[-1] == f"run: {run_dir}"


def test_end_of_an_early_stopped_run_says_why(tmp_path):
    config = small_config(tmp_path, epochs=500,
                          early_stopping={"monitor": "val_loss", "patience": 3})
    result = nnctl("train", config, "--runs-dir", tmp_path / "runs")
    assert result.returncode == 0, result.stderr
    run_dir = Path(result.stdout.strip())
    summary = yaml.safe_load((run_dir / "summary.json").read_text())
    assert summary["status"] == "early_stopped" and summary["epochs_run"] < 500
    block = ending_block(result.stderr)
    assert re.match(rf"early stopped at epoch {summary['epochs_run']} in .*: val_loss did not "
                    r"improve for 3 epochs$", block[0])
    assert block[1].startswith(f"best epoch {summary['best_epoch']} ")
    assert summary["epochs_run"] - summary["best_epoch"] == 3


def test_end_of_a_diverged_run_says_where(tmp_path):
    config = small_config(tmp_path, epochs=50)
    text = config.read_text().replace("lr: 0.01", "lr: 1.0e+30")
    config.write_text(text)
    result = nnctl("train", config, "--runs-dir", tmp_path / "runs")
    assert result.returncode == 3
    block = ending_block(result.stderr)
    assert re.match(r"diverged after \d+ epochs: the (loss|gradient|weights|validation loss) ",
                    block[0])
    assert "error:" not in result.stderr  # the block said it; no second copy
    quiet = nnctl("train", config, "--runs-dir", tmp_path / "runs", "--quiet")
    assert quiet.returncode == 3 and quiet.stderr.startswith("error: the ")


def test_end_of_an_interrupted_run_says_how_to_continue(tmp_path):
    config = small_config(tmp_path, epochs=100000)
    process = subprocess.Popen([*NNCTL, "train", str(config), "--runs-dir", str(tmp_path / "runs")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = None
    deadline = time.monotonic() + 120
    while metrics is None and time.monotonic() < deadline:  # wait for the first epoch
        found = list((tmp_path / "runs").glob("*/metrics.csv"))
        metrics = found[0] if found else None
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    block = ending_block(stderr)
    run_dir = stdout.strip()
    assert re.match(rf"interrupted by SIGINT after \d+ epochs in .*; continue with "
                    rf"`nnctl train --resume {re.escape(run_dir)}`$", block[0])


# ---- bars that fit ---------------------------------------------------------------------------

@pytest.mark.parametrize("columns", [80, 60])
def test_bars_fit_the_terminal_and_keep_the_validation_metrics(tmp_path, columns):
    code, pieces = in_terminal(["train", CONFIGS / "iris.yaml", "--runs-dir", tmp_path / "runs",
                                "--set", "training.epochs=20"], columns)
    assert code == 0
    bars = [p for p in pieces if p.startswith(("epoch ", "batch ")) and "|" in p]
    assert bars, pieces
    assert max(len(p) for p in bars) <= columns, max(bars, key=len)
    last = [p for p in bars if p.startswith("epoch 20/20 ")][-1]
    # the most telling metric is never cut: a whole number follows its name
    assert re.search(r"val_loss \d\.\d+", last), last
    if columns >= 80:
        assert re.search(r"val_acc \d\.\d+", last), last
    # the end block, wrapped between metrics, fits too (paths stay whole, to be copied)
    assert max(len(p) for p in pieces if not p.startswith(("/", "run: "))) <= columns


# ---- habits of command-line tools ----------------------------------------------------------------

def test_dash_h_is_help_everywhere():
    for args in ([], ["train"], ["runs", "list"]):
        result = invoke(*args, "-h")
        assert result.exit_code == 0 and "Usage: " in result.stdout, args
    assert "--install-completion" in invoke("--help").stdout


def test_defaults_name_every_key_of_the_schema_with_its_default():
    from nnctl.config import AdagradSpec, Config, DenseSpec, TrainingSpec
    from nnctl.reference import keys

    result = nnctl("validate", "--defaults")
    assert result.returncode == 0
    text = result.stdout
    rows = {k.dotted: k for k in keys()}
    for name in Config.model_fields:
        assert re.search(rf"^{name}:", text, re.M), name
    for name, field in TrainingSpec.model_fields.items():
        assert re.search(rf"^  {name}:", text, re.M), name
    assert re.search(r"^      units: required .*\[dense, rnn\]", text, re.M)
    assert rows["training.epochs"].default == str(TrainingSpec().epochs)
    assert f"{AdagradSpec(type='adagrad').lr:g} (" in rows["optimizer.lr"].default
    assert rows["model.layers[].activation"].default.startswith(
        DenseSpec.model_fields["activation"].default)
    assert all(k.meaning for k in keys()), [k.dotted for k in keys() if not k.meaning]
    assert nnctl("validate", "--defaults", CONFIGS / "iris.yaml").returncode == 2


def test_readme_reference_table_is_the_schema():
    from nnctl.reference import markdown_table

    readme = (ROOT / "README.md").read_text()
    assert markdown_table() in readme, \
        "README's config reference is stale: paste nnctl.reference.markdown_table()"


def test_shell_completion_completes_commands_and_options():
    """What bash's completion function asks the program (Typer's protocol)."""
    def complete(words: str, index: int) -> list[str]:
        script = Path(sys.executable).parent / "nnctl"  # installed beside this Python
        result = subprocess.run([script], capture_output=True, text=True, timeout=60,
                                env={**os.environ, "_NNCTL_COMPLETE": "complete_bash",
                                     "COMP_WORDS": words, "COMP_CWORD": str(index)})
        return result.stdout.split()

    assert complete("nnctl tr", 1) == ["train"]
    assert complete("nnctl train --th", 2) == ["--threads"]
    assert "--defaults" in complete("nnctl validate --", 2)
