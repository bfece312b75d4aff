"""`nnctl sweep` measured three ways: TPE against random search, median pruning, and the
parsed-CSV cache that lets a sweep's trials parse the training file once between them.

    python benchmarks/bench_sweeps.py                 # all three (9-15 minutes, 2 cores)
    python benchmarks/bench_sweeps.py --quick         # 12 trials, 6,000-row CSV (2-4 minutes)
    python benchmarks/bench_sweeps.py --only prune    # one of: tpe | prune | cache
    python benchmarks/bench_sweeps.py --only tpe --tpe-seeds 0,1,2,3,4 --random-seeds 0,1,2,3,4

Every sweep is `nnctl sweep FILE --workers 2 --runs-dir TMP` in a subprocess, as a user runs
it; the numbers come from the sweep folder's sweep.csv and the trials' metrics.csv.

- tpe: on the digits data (configs/digits.yaml, 20 epochs), `method: tpe` sweeps (seeds 0, 1
  and 2 or --tpe-seeds; each compared on its own, and their median) against the median of
  `method: random` sweeps (seeds 0, 1, 2 or --random-seeds) of the same space: optimizer.lr
  log-uniform, the hidden layer's width, its L2 factor log-uniform, the batch size; 30 trials
  each. Best val_loss of each, and after the first
  third and two thirds of the trials.
- prune: one random sweep (fixed seed, no early stopping in the config, so every trial has
  the same epoch budget) without and with `early_terminate: {type: median, min_epochs: 5}`:
  epochs trained (the rows of the trials' metrics.csv files, beside the sum of sweep.csv's
  epochs column), best val_loss, wall time; and, replayed from the study, the epoch at which
  the median rule first held for each pruned trial. The same seed gives both sweeps the same
  trials, and a trial that is not pruned trains the same way in both (seeded, one thread
  each). Two data sets: the waveforms (configs/waveforms_rnn.yaml, an rnn layer: epochs of a
  tenth of a second and more) and the digits (epochs of a few milliseconds, shorter than it
  takes the sweep to notice a new epoch and ask the pruner). A third sweep with
  `{type: hyperband, min_epochs: 5}` is shown for comparison. --prune-trials sets the number
  of trials (30; the median rule prunes nothing until 5 trials have completed, so larger
  sweeps prune a larger share).
- cache: a grid of 8 one-epoch trials on the 60,000 x 784 CSV of bench_mnist_like.py (reused
  from benchmarks/.cache/ when it is there). Each trial process times its own `read_csv` and
  `load_training_data` calls, wall and CPU (a sitecustomize.py put on the trials' PYTHONPATH
  wraps the two functions; nnctl itself is not changed), and whether the cache held an entry
  when the call began. The sums over the 8 trials are compared with one uncached `read_csv`
  in a fresh process alone. "Before": the same 8 trials from `nnctl sweep --print-commands
  --threads 1` (no --cache), run two at a time as `xargs -P 2` would.

Prints tables of measurements; asserts nothing. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from common import child_env, machine, nnctl_command

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DIGITS = ROOT / "configs" / "digits.yaml"
WAVEFORMS = ROOT / "configs" / "waveforms_rnn.yaml"
METRIC = "val_loss"  # minimized in every sweep here
WORKERS = 2
N_STARTUP_TRIALS = 5  # optuna.pruners.MedianPruner's default, which nnctl keeps

SPACE = {
    "optimizer.lr": {"distribution": "log_uniform", "min": 1.0e-4, "max": 0.3},
    "model.layers.0.units": [4, 8, 16, 32, 64, 128],
    "model.layers.0.l2": {"distribution": "log_uniform", "min": 1.0e-6, "max": 1.0e-2},
    "training.batch_size": [16, 32, 64, 128],
}
RNN_SPACE = {  # configs/waveforms_rnn.yaml: an rnn layer, then softmax
    "optimizer.lr": {"distribution": "log_uniform", "min": 1.0e-4, "max": 0.3},
    "model.layers.0.units": [8, 16, 32, 64],
    "model.layers.0.l2": {"distribution": "log_uniform", "min": 1.0e-6, "max": 1.0e-2},
    "training.batch_size": [16, 32, 64, 128],
}
GRID = {  # 2 x 2 x 2 = 8 trials
    "optimizer.lr": [0.001, 0.003],
    "model.layers.0.units": [128, 256],
    "training.batch_size": [128, 256],
}

# Written as sitecustomize.py into a folder put first on the trials' PYTHONPATH: each process
# appends one JSON line per read_csv / load_training_data call (seconds, and for read_csv
# whether the cache folder held an entry when the call began) and one at exit (seconds since
# the interpreter reached this file). pandas is imported before the clock starts: every trial
# pays its import, with or without a cache.
HOOK = r'''
import os, sys
LOG = os.environ.get("NNCTL_BENCH_LOAD_LOG")
if LOG:
    import atexit, functools, importlib.abc, importlib.machinery, json, time

    BORN = time.perf_counter()
    WRAP = {"nnctl.data.reading": "read_csv", "nnctl.data.loading": "load_training_data"}

    def write(record):
        record["pid"] = os.getpid()
        with open(LOG, "a") as f:
            f.write(json.dumps(record) + "\n")

    def entries(cache):
        try:
            return sorted(p.name for p in os.scandir(cache) if not p.name.startswith("."))
        except OSError:
            return []

    def wrap(module, name):
        inner = getattr(module, name, None)
        if inner is None:
            return

        @functools.wraps(inner)
        def timed(*args, **kwargs):
            import pandas  # noqa: F401
            cache = kwargs.get("cache", args[2] if name == "read_csv" and len(args) > 2 else None)
            before = entries(cache) if cache else []
            started, cpu = time.perf_counter(), time.process_time()
            try:
                return inner(*args, **kwargs)
            finally:
                write({"call": name, "seconds": time.perf_counter() - started,
                       "cpu": time.process_time() - cpu,
                       "cache": str(cache) if cache else None, "entry_before": bool(before),
                       "path": str(args[0]) if args and name == "read_csv" else None})
        setattr(module, name, timed)

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path, target=None):
            if fullname not in WRAP:
                return None
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is None or spec.loader is None:
                return None
            run = spec.loader.exec_module

            def exec_module(module):
                run(module)
                wrap(module, WRAP[fullname])
            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, Finder())
    atexit.register(lambda: write({"call": "process", "seconds": time.perf_counter() - BORN}))
'''

# One read_csv in a fresh process, pandas imported before the clock (as in HOOK).
PARSE = """
import json, sys, time
import pandas
from nnctl.data.reading import read_csv
started, cpu = time.perf_counter(), time.process_time()
read_csv(sys.argv[1], cache=sys.argv[2] or None)
print(json.dumps({"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu}))
"""


# ---- files ----------------------------------------------------------------------------------

def base_config(folder: Path, source: Path, epochs: int) -> Path:
    """A config of configs/ with its data paths made absolute, `epochs` epochs and no early
    stopping (every trial gets the same epoch budget)."""
    config = yaml.safe_load(source.read_text())
    for key in ("train", "validation", "test"):
        value = config["data"].get(key)
        if isinstance(value, str):
            config["data"][key] = str((source.parent / value).resolve())
    config["training"]["epochs"] = epochs
    config["training"].pop("early_stopping", None)
    path = folder / source.name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def sweep_file(folder: Path, name: str, config: Path, method: str, parameters: dict,
               samples: int | None = None, seed: int = 0, pruner: str | None = None,
               min_epochs: int = 1,
               metric: str = METRIC) -> Path:
    spec = {"name": name, "config": str(config), "method": method, "seed": seed,
            "metric": metric, "goal": "minimize", "parameters": parameters}
    if samples is not None:
        spec["samples"] = samples
    if pruner is not None:
        spec["early_terminate"] = {"type": pruner, "min_epochs": min_epochs}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---- running ----------------------------------------------------------------------------------

def run_sweep(sweep: Path, runs: Path, env: dict | None = None) -> dict:
    """`nnctl sweep FILE --workers 2 --runs-dir RUNS`: wall time, exit code, sweep.csv rows."""
    command = nnctl_command() + ["sweep", str(sweep), "--workers", str(WORKERS),
                                 "--runs-dir", str(runs)]
    print(f"  {sweep.stem}: nnctl sweep ... --workers {WORKERS}", end="", file=sys.stderr,
          flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, env={**child_env(), **(env or {})}, capture_output=True,
                          text=True, check=False)
    wall = time.perf_counter() - started
    print(f" {wall:.1f} s (exit {done.returncode})", file=sys.stderr, flush=True)
    lines = done.stdout.strip().splitlines()
    folder = Path(lines[-1]) if lines else None
    if done.returncode not in (0, 4) or folder is None or not (folder / "sweep.csv").is_file():
        raise SystemExit(f"{shlex.join(command)} failed ({done.returncode}):\n"
                         f"{done.stderr[-3000:]}")
    (runs / f"{sweep.stem}.stderr.txt").write_text(done.stderr)
    rows = read_rows(folder / "sweep.csv")
    if not any(row["rank"] for row in rows):
        errors = sorted({row["error"] for row in rows if row["error"]})
        raise SystemExit(f"{shlex.join(command)}: no trial finished with a {METRIC}; "
                         f"errors: {'; '.join(errors[:3]) or 'none'} (see {folder})")
    for row in rows:
        metrics = Path(row["run_dir"]) / "metrics.csv" if row["run_dir"] else None
        row["metrics_rows"] = len(read_rows(metrics)) if metrics and metrics.is_file() else 0
        summary = Path(row["run_dir"]) / "summary.json" if row["run_dir"] else None
        row["summary"] = json.loads(summary.read_text()) if summary and summary.is_file() else {}
    return {"wall": wall, "code": done.returncode, "folder": str(folder), "rows": rows,
            "table": done.stdout}


def value(row: dict) -> float | None:
    return float(row[METRIC]) if row.get(METRIC) else None


def best(rows: list[dict], first: int | None = None) -> float | None:
    """The best metric of the ranked trials (among trials 1..first, if given)."""
    values = [value(r) for r in rows if r["rank"] and (first is None or int(r["trial"]) <= first)]
    return min(values) if values else None


def best_row(rows: list[dict]) -> dict:
    return next(r for r in rows if r["rank"] == "1")


def statuses(rows: list[dict]) -> dict:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return counts


def epochs_of(rows: list[dict]) -> int:
    """Epochs trained: the rows of the trials' metrics.csv files."""
    return sum(r["metrics_rows"] for r in rows)


def params_text(row: dict) -> str:
    return ", ".join(f"{k.split('.')[-1] if k != 'model.layers.0.units' else 'units'}="
                     f"{row[k]}" for k in SPACE if k in row)


def f4(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


# ---- 1. tpe against random ----------------------------------------------------------------

def bench_tpe(work: Path, trials: int, epochs: int, tpe_seeds: list[int],
              random_seeds: list[int]) -> dict:
    config = base_config(work, DIGITS, epochs)
    runs = work / "runs"
    runs.mkdir(exist_ok=True)
    sweeps = [("tpe", s) for s in tpe_seeds] + [("random", s) for s in random_seeds]
    results = {}
    for method, seed in sweeps:
        name = f"{method}-seed{seed}"
        path = sweep_file(work, name, config, method, SPACE, samples=trials, seed=seed)
        results[name] = run_sweep(path, runs)

    marks = sorted({max(1, trials // 3), max(1, 2 * trials // 3), trials})
    print(f"\n### 1. tpe against random: digits, {trials} trials x up to {epochs} epochs, "
          f"--workers {WORKERS}, best {METRIC}\n")
    print("| sweep | " + " | ".join(f"best after {m}" for m in marks) +
          " | best trial | statuses | wall |")
    print("|---|" + "---:|" * len(marks) + "---|---|---:|")
    for name, r in results.items():
        top = best_row(r["rows"])
        print(f"| {name} | " + " | ".join(f4(best(r["rows"], m)) for m in marks) +
              f" | {top['trial']}: {params_text(top)} | "
              + ", ".join(f"{n} {s}" for s, n in statuses(r["rows"]).items())
              + f" | {r['wall']:.0f} s |")
    random_bests = [best(results[f"random-seed{s}"]["rows"]) for s in random_seeds]
    median_random = statistics.median(random_bests)
    tpe_bests = [best(results[f"tpe-seed{s}"]["rows"]) for s in tpe_seeds]
    verdicts = {}
    print()
    for seed in tpe_seeds:
        tpe_best = best(results[f"tpe-seed{seed}"]["rows"])
        verdicts[seed] = tpe_best <= median_random
        print(f"tpe seed {seed}: best {tpe_best:.4f} vs the median of the random bests "
              f"{median_random:.4f} ({', '.join(f4(b) for b in random_bests)}): "
              f"{'at least as good' if verdicts[seed] else 'worse'} "
              f"({(tpe_best / median_random - 1) * 100:+.1f}%)")
    print(f"\ntpe, {len(tpe_seeds)} seeds: median {statistics.median(tpe_bests):.4f}, "
          f"{sum(verdicts.values())} of {len(tpe_seeds)} at least as good as the median of "
          f"the random bests; random, {len(random_seeds)} seeds: median {median_random:.4f}")
    return {"trials": trials, "epochs": epochs, "marks": marks,
            "sweeps": {k: strip(v) for k, v in results.items()},
            "random_bests": random_bests, "median_random": median_random,
            "tpe_at_least_median": verdicts}


# ---- 2. median pruning ----------------------------------------------------------------------

def replay(folder: Path, min_epochs: int) -> dict[int, int | None]:
    """For each pruned trial of a sweep folder: the first epoch at which the median rule held
    (its best value so far worse than the median, at that epoch, of the trials completed
    before it ended, at least N_STARTUP_TRIALS of them, from min_epochs on), read back from
    the study. An estimate of when the pruner could first have stopped it: the set of
    completed trials it was judged against at the time may have been smaller."""
    import numpy as np
    import optuna
    from optuna.trial import TrialState

    from nnctl.sweep.study import storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=folder.name, storage=storage(folder))
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    first: dict[int, int | None] = {}
    for t in trials:
        if t.state != TrialState.PRUNED:
            continue
        known = [c for c in done if c.datetime_complete < t.datetime_complete]
        first[t.user_attrs["trial"]], so_far = None, float("inf")
        for epoch in sorted(t.intermediate_values):
            so_far = min(so_far, t.intermediate_values[epoch])
            values = [c.intermediate_values[epoch] for c in known
                      if epoch in c.intermediate_values]
            if epoch >= min_epochs and len(known) >= N_STARTUP_TRIALS and values \
                    and so_far > float(np.median(values)):
                first[t.user_attrs["trial"]] = epoch
                break
    return first


PRUNE_DATA = {"digits": (DIGITS, SPACE), "waveforms": (WAVEFORMS, RNN_SPACE)}


def bench_prune(work: Path, data: str, trials: int, epochs: int, min_epochs: int) -> dict:
    source, space = PRUNE_DATA[data]
    config = base_config(work, source, epochs)
    runs = work / "runs"
    runs.mkdir(exist_ok=True)
    plain = run_sweep(sweep_file(work, f"{data}-unpruned", config, "random", space, trials, 0),
                      runs)
    pruned = run_sweep(sweep_file(work, f"{data}-pruned", config, "random", space, trials, 0,
                                  pruner="median", min_epochs=min_epochs), runs)
    hyperband = run_sweep(sweep_file(work, f"{data}-hyperband", config, "random", space, trials,
                                     0, pruner="hyperband", min_epochs=min_epochs), runs)

    print(f"\n### 2. median pruning: {source.name}, random, {trials} trials x {epochs} epochs "
          f"(seed 0), --workers {WORKERS}; early_terminate: {{type: median (or hyperband), "
          f"min_epochs: {min_epochs}}}\n")
    print("| sweep | completed | pruned | epochs trained (metrics.csv rows; sweep.csv) | "
          f"vs unpruned | best {METRIC} | vs unpruned best | wall |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    base_epochs, base_best = epochs_of(plain["rows"]), best(plain["rows"])
    out = {"data": data, "trials": trials, "epochs": epochs, "min_epochs": min_epochs}
    for name, r in (("unpruned", plain), ("median pruning", pruned),
                    ("hyperband (for comparison)", hyperband)):
        counts = statuses(r["rows"])
        n_epochs, top = epochs_of(r["rows"]), best(r["rows"])
        listed = sum(int(row["epochs"]) for row in r["rows"] if row["epochs"])
        others = ", ".join(f"{n} {k}" for k, n in counts.items()
                           if k not in ("completed", "pruned"))
        print(f"| {name} | {counts.get('completed', 0)} | {counts.get('pruned', 0)}"
              f"{f' (+{others})' if others else ''} | "
              f"{n_epochs}; {listed} | {n_epochs / base_epochs:.0%} | {top:.4f} | "
              f"{(top / base_best - 1) * 100:+.2f}% | {r['wall']:.0f} s |")
        out[name] = {**strip(r), "epochs_trained": n_epochs, "sweep_csv_epochs": listed,
                     "best": top, "statuses": counts}

    print()
    for label, r in (("median pruning", pruned), ("hyperband", hyperband)):
        for row in r["rows"]:
            if row["status"] not in ("completed", "pruned"):
                print(f"{label}: trial {row['trial']} {row['status']} after "
                      f"{row['metrics_rows']} of {epochs} epochs (summary.json: "
                      f"{row['summary'].get('status', 'none')}): {row['error']}")
    rows = pruned["rows"]
    cut = sorted(r["metrics_rows"] for r in rows if r["status"] == "pruned")
    # wall time per epoch as the trial sees it (the epoch, its metrics row and checkpoint)
    per_epoch = [r["summary"]["wall_seconds"] / int(r["epochs"]) for r in plain["rows"]
                 if r["summary"].get("wall_seconds") and r["epochs"]]
    floor = N_STARTUP_TRIALS * epochs + (trials - N_STARTUP_TRIALS) * min_epochs
    plain_top = best_row(plain["rows"])
    same = next(r for r in rows if r["trial"] == plain_top["trial"])
    rule = replay(Path(pruned["folder"]), min_epochs)
    ran = {int(r["trial"]): r["metrics_rows"] for r in rows if r["status"] == "pruned"}
    late = sum(ran[t] - e for t, e in rule.items() if e is not None and t in ran)
    if cut:
        print(f"median pruning: pruned trials ran {cut[0]}-{cut[-1]} epochs (median "
              f"{statistics.median(cut):g}, {sum(cut)} in all) for min_epochs {min_epochs}; "
              f"the median rule first held (replayed from the study) at epoch "
              + ", ".join(str(rule[t]) for t in sorted(rule))
              + f": {late} epochs were trained after it held ({epochs_of(rows) - late} epochs, "
              f"{(epochs_of(rows) - late) / base_epochs:.0%}, had each stopped there).")
    else:
        print("no trial was pruned.")
    print(f"an epoch took {statistics.median(per_epoch) * 1000:.0f} ms of a trial's wall time "
          f"(median over the unpruned trials, {min(per_epoch) * 1000:.0f}-"
          f"{max(per_epoch) * 1000:.0f} ms; the epoch, its metrics row and checkpoint); the "
          f"sweep looks at each running trial's metrics.csv every 0.02 s, and a trial told to stop "
          f"(SIGTERM) stops after its current batch.")
    print(f"MedianPruner prunes only once {N_STARTUP_TRIALS} trials have completed "
          f"(n_startup_trials) and compares with completed trials only; the least any sweep of "
          f"this size could train: {N_STARTUP_TRIALS} x {epochs} + {trials - N_STARTUP_TRIALS}"
          f" x {min_epochs} = {floor} epochs ({floor / base_epochs:.0%}).")
    print(f"the unpruned sweep's best, trial {plain_top['trial']} ({value(plain_top):.4f}), "
          f"in the pruned sweep: {same['status']} after {same['metrics_rows']} epochs"
          + (f" ({value(same):.4f})" if value(same) is not None else ""))
    out.update({"pruned_epochs": cut, "rule_first_held": rule, "epochs_after_rule": late,
                "epoch_wall_median": statistics.median(per_epoch), "floor_epochs": floor,
                "unpruned_best_trial": plain_top["trial"],
                "its_status_when_pruning": same["status"]})
    return out


# ---- 3. the parsed-CSV cache ------------------------------------------------------------------

def one_parse(csv_path: Path, cache: Path | None, repeats: int) -> list[dict]:
    """read_csv in a fresh process, `repeats` times: wall and CPU seconds of each call."""
    times = []
    for _ in range(repeats):
        done = subprocess.run([sys.executable, "-c", PARSE, str(csv_path), str(cache or "")],
                              env=child_env(), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"read_csv failed:\n{done.stderr[-3000:]}")
        times.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return times


def read_log(path: Path) -> dict:
    """Per process that read the CSV: its read_csv and load_training_data seconds (wall and
    CPU), whether the cache held an entry when read_csv began, and the process's wall time."""
    procs: dict[int, dict] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            p = procs.setdefault(record["pid"], {})
            if record["call"] == "read_csv":
                p["read"] = p.get("read", 0.0) + record["seconds"]
                p["read_cpu"] = p.get("read_cpu", 0.0) + record["cpu"]
                p["hit"] = record["entry_before"] and record["cache"] is not None
            elif record["call"] == "load_training_data":
                p["load"] = p.get("load", 0.0) + record["seconds"]
                p["load_cpu"] = p.get("load_cpu", 0.0) + record["cpu"]
            else:
                p["process"] = record["seconds"]
    trials = [p for p in procs.values() if "read" in p]
    total = {key: sum(p.get(key, 0.0) for p in trials)
             for key in ("read", "read_cpu", "load", "load_cpu", "process")}
    return {"trials": len(trials), **total,
            "misses": [(p["read"], p["read_cpu"]) for p in trials if not p.get("hit")],
            "hits": [(p["read"], p["read_cpu"]) for p in trials if p.get("hit")]}


def before_sweep(sweep: Path, runs: Path, env: dict) -> float:
    """The sweep's trials as `nnctl sweep --print-commands --threads 1` gives them (no
    --cache), two at a time: the wall time of all of them."""
    listed = subprocess.run(nnctl_command() + ["sweep", str(sweep), "--print-commands",
                                               "--threads", "1", "--runs-dir", str(runs)],
                            env=child_env(), capture_output=True, text=True, check=True)
    commands = []
    for line in listed.stdout.strip().splitlines():
        words = shlex.split(line)
        if words[0] == "nnctl":
            words = nnctl_command() + words[1:]
        commands.append(words)

    def run(words: list[str]) -> int:
        return subprocess.run(words, env={**child_env(), **env}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, check=False).returncode

    print(f"  {sweep.stem}, without the cache: {len(commands)} x nnctl train, "
          f"{WORKERS} at a time", end="", file=sys.stderr, flush=True)
    started = time.perf_counter()
    with ThreadPoolExecutor(WORKERS) as pool:
        codes = list(pool.map(run, commands))
    wall = time.perf_counter() - started
    print(f" {wall:.1f} s", file=sys.stderr, flush=True)
    if any(codes):
        raise SystemExit(f"trials failed without the cache: exit codes {codes}")
    return wall


def bench_cache(work: Path, rows: int, rounds: int, repeats: int) -> dict:
    sys.path.insert(0, str(HERE))
    from bench_mnist_like import ensure_csv, mlp_layers, write_config

    csv_path = ensure_csv(rows)
    config = write_config(work, "mnist", csv_path, mlp_layers((256, 128)), 128, 1)
    sweep = sweep_file(work, "grid8", config, "grid", GRID, metric="train_loss")
    hook = work / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(HOOK)

    def hooked(log: Path) -> dict:
        path = os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))
        return {"PYTHONPATH": path, "NNCTL_BENCH_LOAD_LOG": str(log)}

    parse = one_parse(csv_path, None, repeats)  # also puts the file in the page cache
    results: dict = {"rows": rows, "csv_mb": csv_path.stat().st_size / 1e6, "one_parse": parse,
                     "rounds": []}
    hits: list[dict] = []
    for i in range(rounds):
        runs = work / f"cache-runs-{i}"
        runs.mkdir()
        log_on, log_off = work / f"load-cache-{i}.jsonl", work / f"load-nocache-{i}.jsonl"
        on = run_sweep(sweep, runs, hooked(log_on))
        hits += one_parse(csv_path, Path(on["folder"]) / "cache", repeats)
        off_wall = before_sweep(sweep, work / f"before-runs-{i}", hooked(log_off))
        results["rounds"].append({"cached": {"wall": on["wall"], **read_log(log_on)},
                                  "uncached": {"wall": off_wall, **read_log(log_off)}})
        shutil.rmtree(Path(on["folder"]) / "cache", ignore_errors=True)  # 0.4 GB each
        if i + 1 < rounds:
            parse += one_parse(csv_path, None, repeats)
    one = statistics.median(t["seconds"] for t in parse)
    one_cpu = statistics.median(t["cpu"] for t in parse)
    results["one_hit"] = hits
    results["one_parse_median"], results["one_parse_cpu_median"] = one, one_cpu

    def pairs(items: list) -> str:
        return ", ".join(f"{w:.2f}/{c:.2f}" for w, c in sorted(items)) or "none"

    print(f"\n### 3. parse once per sweep: grid of 8 trials x 1 epoch, --workers {WORKERS}, "
          f"{rows:,} x 785 CSV ({results['csv_mb']:.0f} MB)\n")
    walls = ", ".join(f"{t['seconds']:.2f}" for t in parse)
    print(f"one read_csv alone in a fresh process, no cache: {one:.2f} s wall, {one_cpu:.2f} s "
          f"CPU (medians of {len(parse)}; wall {walls})"
          f"; one hit on a filled cache alone: "
          f"{statistics.median(t['seconds'] for t in hits):.2f} s wall, "
          f"{statistics.median(t['cpu'] for t in hits):.2f} s CPU (medians of {len(hits)})\n")
    print("| round | 8 trials | wall | read_csv: parses + hits | read_csv wall, sum | "
          "in parses alone | read_csv CPU, sum | in parses alone | load_training_data wall / "
          "CPU, sum | trial processes, sum |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for i, r in enumerate(results["rounds"], 1):
        for label, x in (("`nnctl sweep` (cache)", r["cached"]),
                         ("print-commands, no cache", r["uncached"])):
            print(f"| {i} | {label} | {x['wall']:.1f} s | {len(x['misses'])} + "
                  f"{len(x['hits'])} | {x['read']:.2f} s | {x['read'] / one:.2f}x | "
                  f"{x['read_cpu']:.2f} s | {x['read_cpu'] / one_cpu:.2f}x | "
                  f"{x['load']:.1f} / {x['load_cpu']:.1f} s | {x['process']:.1f} s |")
    print()
    for i, r in enumerate(results["rounds"], 1):
        c, u = r["cached"], r["uncached"]
        print(f"round {i}, read_csv wall/CPU seconds per trial: with the cache, parses "
              f"{pairs(c['misses'])}, hits {pairs(c['hits'])}; without, {pairs(u['misses'])}")
        wall_met = "met" if c["read"] <= 2 * one else "not met"
        cpu_met = "met" if c["read_cpu"] <= 2 * one_cpu else "not met"
        print(f"  target, the sweep's read_csv at most 2x one parse: wall {c['read'] / one:.2f}x "
              f"({wall_met}), CPU {c['read_cpu'] / one_cpu:.2f}x ({cpu_met}); without the "
              f"cache {u['read'] / one:.2f}x wall, {u['read_cpu'] / one_cpu:.2f}x CPU")
    return results


def strip(result: dict) -> dict:
    """A sweep's result for --json: sweep.csv's rows without the summaries."""
    return {**{k: v for k, v in result.items() if k not in ("rows", "table")},
            "rows": [{k: v for k, v in r.items() if k != "summary"} for r in result["rows"]]}


# ---- report ---------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["tpe", "prune", "cache"], help="one target only")
    parser.add_argument("--quick", action="store_true",
                        help="12 trials, fewer epochs, a 6,000-row CSV, one round")
    parser.add_argument("--tpe-seeds",
                        help="tpe sweeps to run, comma-separated seeds (default 0,1,2; "
                             "--quick: 0)")
    parser.add_argument("--prune-trials", type=int, help="trials of each pruning sweep "
                        "(default 30; --quick: 12)")
    parser.add_argument("--random-seeds", default="0,1,2",
                        help="random sweeps to run, comma-separated seeds (default 0,1,2)")
    parser.add_argument("--keep", type=Path, help="keep the sweep folders here")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    quick = args.quick
    targets = [args.only] if args.only else ["tpe", "prune", "cache"]
    seeds = args.tpe_seeds or ("0" if quick else "0,1,2")

    print(f"machine: {machine()}")
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    results: dict = {"machine": machine(), "quick": quick, "load_average_start": os.getloadavg()}
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="nnctl-bench-sweeps-", dir=args.keep))
    try:
        if "tpe" in targets:
            (work / "tpe").mkdir()
            results["tpe"] = bench_tpe(work / "tpe", trials=12 if quick else 30,
                                       epochs=10 if quick else 20,
                                       tpe_seeds=[int(s) for s in seeds.split(",")],
                                       random_seeds=[int(s) for s in
                                                     args.random_seeds.split(",")])
        if "prune" in targets:
            (work / "prune").mkdir()
            results["prune"] = [
                bench_prune(work / "prune", data,
                            trials=args.prune_trials or (12 if quick else 30),
                            epochs=10 if quick else epochs, min_epochs=5)
                for data, epochs in ([("waveforms", 10)] if quick else
                                     [("waveforms", 20), ("digits", 30)])]
        if "cache" in targets:
            (work / "cache").mkdir()
            results["cache"] = bench_cache(work / "cache", rows=6000 if quick else 60000,
                                           rounds=1 if quick else 2, repeats=1 if quick else 3)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"\nsweep folders kept in {work}")
    results["load_average_end"] = os.getloadavg()
    results["seconds"] = time.perf_counter() - started
    print(f"\nload average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
          f"{results['seconds'] / 60:.1f} min")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
