"""The default thread count on an idle machine and on a busy one (another process spinning on
one core), against one thread and against nnctl before threads shared their work.

    python benchmarks/bench_threads.py              # 6,000-row CSV, 8 epochs, 2 repeats
    python benchmarks/bench_threads.py --before REV # "before" = nnctl at REV (a git worktree)

Cases: the MNIST-like benchmark's base model (784-256-128-10, Adam) at batch 32, the rnn row
(rnn 128 tanh over 28 steps x 28 features, batch 128) and configs/waveforms_rnn.yaml, the
example whose default run took 8x as long as `--threads 1` on a busy machine. Each runs as
`nnctl train CONFIG --quiet --json [--threads 1]` in a subprocess; the number is the median of
its epochs' `seconds` (metrics.csv) over all repeats. "Before" runs the same commands on the
nnctl of REV (default: the commit before work sharing) from a temporary git worktree.

The target (issue 16): the default within 1.15x of the better of one thread and all cores
(before: OpenBLAS's own threads on every core), idle and busy. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_mnist_like import CLASSES, busy_core, ensure_csv, mlp_layers, write_config
from common import child_env, machine

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BEFORE = "5734918"  # nnctl before work sharing: OpenBLAS split each product in fixed halves


def run(source: Path, config: Path, workdir: Path, threads: int | None) -> list[float]:
    """Epoch seconds of one `nnctl train` of the nnctl in `source`."""
    runs = workdir / "runs"
    command = [sys.executable, "-m", "nnctl.cli", "train", str(config), "--runs-dir", str(runs),
               "--quiet", "--json"] + (["--threads", str(threads)] if threads else [])
    env = {**child_env(), "PYTHONPATH": str(source)}
    done = subprocess.run(command, env=env, cwd=workdir, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    with open(Path(summary["run_dir"]) / "metrics.csv", newline="") as f:
        seconds = [float(row["seconds"]) for row in csv.DictReader(f)]
    shutil.rmtree(runs)
    return seconds


@contextlib.contextmanager
def worktree(rev: str):
    folder = Path(tempfile.mkdtemp(prefix="nnctl-before-"))
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder), rev],
                   check=True, capture_output=True)
    try:
        yield folder
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(folder)],
                       check=False, capture_output=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--before", default=BEFORE)
    args = parser.parse_args(argv)

    print(machine())
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}\n")
    csv_path = ensure_csv(args.rows)
    with tempfile.TemporaryDirectory() as tmp, worktree(args.before) as before:
        tmp = Path(tmp)
        rnn = [{"type": "rnn", "units": 128, "activation": "tanh"},
               {"type": "dense", "units": CLASSES, "activation": "softmax"}]
        cases = {
            "base model, batch 32": write_config(tmp, "base32", csv_path, mlp_layers((256, 128)),
                                                 32, args.epochs),
            "rnn row, batch 128": write_config(tmp, "rnn128", csv_path, rnn, 128, args.epochs,
                                               {"steps": 28, "features": 28}),
            "configs/waveforms_rnn.yaml": ROOT / "configs" / "waveforms_rnn.yaml",
        }
        variants = {"default": (ROOT, None), "1 thread": (ROOT, 1),
                    "before, default (all cores)": (before, None), "before, 1 thread": (before, 1)}
        print("| case | machine | default | 1 thread | before: all cores | before: 1 thread "
              "| default / better of 1 thread and all cores |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for label, config in cases.items():
            for busy in (False, True):
                medians = {}
                with busy_core() if busy else contextlib.nullcontext():
                    seconds: dict[str, list[float]] = {name: [] for name in variants}
                    for _ in range(args.repeats):  # interleaved: drift hits every variant
                        for name, (source, threads) in variants.items():
                            seconds[name] += run(source, config, tmp, threads)
                medians = {name: statistics.median(s) for name, s in seconds.items()}
                best = min(medians["1 thread"], medians["before, default (all cores)"])
                cells = " | ".join(f"{medians[name] * 1000:.0f} ms" for name in variants)
                print(f"| {label} | {'one core busy' if busy else 'idle'} | {cells} | "
                      f"{medians['default'] / best:.2f}x |", flush=True)
    print(f"\nload average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
