"""What a run spends besides training, per epoch, with checkpoints by training time.

For each example config in configs/ (the sweep files left out):

- **whole command**: `nnctl train CONFIG --quiet` from start to exit, "before" with
  `--set training.checkpoint.every_seconds=0` (checkpoints every epoch, as nnctl did before
  the setting existed) and "after" with the default (every 10 s of training, and at the end).
  The two run in turn (A B A B ...), `--repeat` times each; medians are printed. With
  `--old REV` a third column runs the same command from a `git worktree` of that commit.
- **bookkeeping per epoch**: a sitecustomize.py put on the process's PYTHONPATH times
  `RunRecorder.epoch_end` (metrics row, log line, the state kept in memory, the saves that
  fall due) and, apart, `RunRecorder.flush` when called outside it (the save when training
  ends, once per run), with time.perf_counter; nnctl itself is not changed. Per epoch =
  epoch_end's total / epochs. Epoch compute = metrics.csv's `seconds` (the training
  batches' wall time) per epoch. The target: bookkeeping per epoch <= max(20% of the epoch
  compute, 0.5 ms).

Prints a table (markdown); asserts nothing. Not part of the test suite.

    python benchmarks/bench_bookkeeping.py [--repeat 5] [--old REV] [--configs iris moons]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
EVERY_EPOCH = ["--set", "training.checkpoint.every_seconds=0"]

HOOK = r'''
import os
LOG = os.environ.get("NNCTL_BENCH_BOOKKEEPING_LOG")
if LOG:
    import atexit, json, time
    import nnctl.runs

    totals = {"epoch_end": 0.0, "epochs": 0, "flush_outside": 0.0, "flushes": 0}
    inside = []
    epoch_end, flush = nnctl.runs.RunRecorder.epoch_end, nnctl.runs.RunRecorder.flush

    def timed_epoch_end(self, *args, **kwargs):
        inside.append(1)
        started = time.perf_counter()
        try:
            return epoch_end(self, *args, **kwargs)
        finally:
            totals["epoch_end"] += time.perf_counter() - started
            totals["epochs"] += 1
            inside.pop()

    def timed_flush(self, *args, **kwargs):
        if inside:
            return flush(self, *args, **kwargs)
        started = time.perf_counter()
        try:
            return flush(self, *args, **kwargs)
        finally:
            totals["flush_outside"] += time.perf_counter() - started
            totals["flushes"] += 1

    nnctl.runs.RunRecorder.epoch_end = timed_epoch_end
    nnctl.runs.RunRecorder.flush = timed_flush

    @atexit.register
    def report():
        with open(LOG, "a") as f:
            f.write(json.dumps(totals) + "\n")
'''


def example_configs(names: list[str]) -> list[Path]:
    found = []
    for path in sorted(CONFIGS.glob("*.yaml")):
        text = path.read_text()
        if "\nmethod:" in "\n" + text:  # a sweep file, not a config
            continue
        if names and path.stem not in names:
            continue
        found.append(path)
    return found


def environment(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.update(PYTHONDONTWRITEBYTECODE="1")
    env.update(extra or {})
    return env


def command(root: Path, config: Path, runs: Path, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "nnctl.cli", "train", str(config), "--runs-dir", str(runs),
            "--quiet", *extra]


def timed(cmd: list[str], cwd: Path, env: dict) -> float:
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {result.returncode}:\n{result.stderr}")
    return seconds


def whole_command(config: Path, scratch: Path, repeat: int, old: Path | None) -> dict:
    """Median seconds of the whole command: before (every epoch), after (default), old."""
    variants = {"before": (ROOT, EVERY_EPOCH), "after": (ROOT, [])}
    if old is not None:
        variants["old"] = (old, [])
    times: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(repeat + 1):  # the first round warms the file cache and is not counted
        for name, (root, extra) in variants.items():
            target = config if root == ROOT else root / config.relative_to(ROOT)
            runs = scratch / f"whole-{name}-{i}"
            seconds = timed(command(root, target, runs, extra), root,
                            environment({"PYTHONPATH": str(root)}))
            if i:
                times[name].append(seconds)
    return {name: statistics.median(values) for name, values in times.items()}


def bookkeeping(config: Path, scratch: Path, repeat: int, extra: list[str]) -> dict:
    """Medians over `repeat` runs of: epochs, epoch compute per epoch (metrics.csv seconds),
    bookkeeping per epoch (epoch_end, the saves that fell due included) and the save when
    training ends (flush outside epoch_end), once per run."""
    hook = scratch / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(HOOK)
    compute, kept, ends, epochs_seen = [], [], [], []
    for i in range(repeat):
        runs = scratch / f"book-{'every' if extra else 'timed'}-{i}"
        log = scratch / f"book-{'every' if extra else 'timed'}-{i}.jsonl"
        env = environment({"PYTHONPATH": os.pathsep.join([str(hook), str(ROOT)]),
                           "NNCTL_BENCH_BOOKKEEPING_LOG": str(log)})
        timed(command(ROOT, config, runs, extra), ROOT, env)
        totals = json.loads(log.read_text().splitlines()[-1])
        run = next(p for p in runs.iterdir() if p.is_dir())
        with open(run / "metrics.csv", newline="") as f:
            seconds = [float(row["seconds"]) for row in csv.DictReader(f)]
        epochs = len(seconds)
        epochs_seen.append(epochs)
        compute.append(sum(seconds) / epochs)
        kept.append(totals["epoch_end"] / epochs)
        ends.append(totals["flush_outside"])
    return {"epochs": statistics.median(epochs_seen), "compute": statistics.median(compute),
            "bookkeeping": statistics.median(kept), "end_save": statistics.median(ends)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--old", help="a commit to time the whole command at as well")
    parser.add_argument("--configs", nargs="*", default=[], help="config stems (default all)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-bookkeeping-") as folder:
        scratch = Path(folder)
        old = None
        if args.old:
            old = scratch / "old"
            subprocess.run(["git", "worktree", "add", "--detach", str(old), args.old], cwd=ROOT,
                           check=True, capture_output=True)
        try:
            rows = []
            for config in example_configs(args.configs):
                whole = whole_command(config, scratch / config.stem, args.repeat, old)
                before = bookkeeping(config, scratch / config.stem, args.repeat, EVERY_EPOCH)
                after = bookkeeping(config, scratch / config.stem, args.repeat, [])
                rows.append((config.stem, whole, before, after))
                print(f"{config.stem}: {whole} {before} {after}", file=sys.stderr, flush=True)
        finally:
            if old is not None:
                subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT,
                               capture_output=True)
    old_column = " old commit (s) |" if args.old else ""
    print(f"| config | epochs | epoch compute (ms) | bookkeeping/epoch before (ms) | "
          f"after (ms) | after / compute | target (ms) | end save after (ms) | "
          f"whole command before (s) | after (s) |{old_column}")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if args.old else ""))
    for name, whole, before, after in rows:
        compute = after["compute"] * 1000
        target = max(0.2 * compute, 0.5)
        cells = [name, f"{after['epochs']:.0f}", f"{compute:.2f}",
                 f"{before['bookkeeping'] * 1000:.2f}", f"{after['bookkeeping'] * 1000:.3f}",
                 f"{after['bookkeeping'] * 1000 / compute:.1%}", f"{target:.2f}",
                 f"{after['end_save'] * 1000:.1f}",
                 f"{whole['before']:.2f}", f"{whole['after']:.2f}"]
        if args.old:
            cells.append(f"{whole['old']:.2f}")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
