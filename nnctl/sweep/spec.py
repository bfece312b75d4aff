"""Hyperparameter sweeps: the sweep file, its trials, and running them as `nnctl train` processes.

    config: iris.yaml          # the base config, relative to the sweep file
    method: grid               # grid: every combination | random: `samples` seeded draws
    metric: val_accuracy       # best-epoch metric from the summary, or test_<metric>
    parameters:
      optimizer.lr: [0.1, 0.01]                                   # values / choices
      training.batch_size: {distribution: int_uniform, min: 8, max: 64}   # random only

Each trial is one `nnctl train CONFIG --set KEY=VALUE ...` process writing its own run
directory into the sweep folder; sweep.csv there is rewritten (atomically) as trials start and
finish, ranked by the metric.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Optional, Union

import numpy as np
import yaml
from pydantic import Discriminator, Field, Tag, ValidationError, model_validator

from ..checkpoint import atomic_write
from ..config import (
    Source, Strict, describe_error, safe_name, suggest, load_config, metric_names, monitor_mode,
    read_yaml,
)
from ..errors import ConfigError
from ..listing import format_table, format_value
from ..runs import create_run_dir
from ..nn.threads import usable_cores

EXIT_TRIALS_FAILED = 4  # 1 is an internal error, 2 a bad sweep file, 3 a diverged `train`
SUCCESS = ("completed", "early_stopped")
DOTTED = re.compile(r"^[^.=\s]+(\.[^.=\s]+)*$")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


# ---- the sweep file ----------------------------------------------------------------------------

class Range(Strict):
    """A random-search range: uniform, log-uniform (min > 0), or integers min..max inclusive."""

    distribution: Literal["uniform", "log_uniform", "int_uniform"]
    min: float
    max: float

    @model_validator(mode="after")
    def _bounds(self):
        if self.distribution == "int_uniform" and not (self.min.is_integer()
                                                       and self.max.is_integer()):
            raise ValueError(f"int_uniform needs whole numbers for min and max "
                             f"(got {self.min:g}, {self.max:g})")
        if not self.min < self.max:
            raise ValueError(f"min must be less than max (got {self.min:g}, {self.max:g})")
        if self.distribution == "log_uniform" and self.min <= 0:
            raise ValueError(f"log_uniform needs min greater than 0 (got {self.min:g})")
        return self


def _kind(value: Any) -> Optional[str]:
    if isinstance(value, list):
        return "values"
    if isinstance(value, (dict, Range)):
        return "range"
    return None


TAGS = ("values", "range")
Parameter = Annotated[
    Union[Annotated[list[Any], Field(min_length=1), Tag("values")], Annotated[Range, Tag("range")]],
    Discriminator(_kind, custom_error_type="parameter_kind",
                  custom_error_message="must be a list of values (one value: [x]) or a "
                                       "{distribution, min, max} range"),
]


class SweepSpec(Strict):
    name: Optional[str] = Field(None, pattern=NAME_PATTERN, max_length=80)
    config: str
    method: Literal["grid", "random"] = "grid"
    samples: Optional[int] = Field(None, gt=0)
    seed: int = Field(0, ge=0)
    metric: str = "val_loss"
    goal: Optional[Literal["maximize", "minimize"]] = None
    parameters: dict[str, Parameter]


@dataclass
class Trial:
    number: int  # 1-based, in generation order
    params: dict[str, Any]  # dotted key -> value, in the sweep file's order

    @property
    def overrides(self) -> list[str]:
        return [f"{key}={yaml_value(value)}" for key, value in self.params.items()]


@dataclass
class Sweep:
    path: Path
    name: str
    config: Path  # the base config, as a path from the current folder
    spec: SweepSpec
    trials: list[Trial]

    @property
    def metric(self) -> str:
        return self.spec.metric

    @property
    def maximize(self) -> bool:
        if self.spec.goal is not None:
            return self.spec.goal == "maximize"
        return monitor_mode(self.spec.metric, "auto") == "max"

    def run_name(self, trial: Trial) -> str:
        return f"{self.name}-{trial.number:0{len(str(len(self.trials)))}d}"

    def command(self, trial: Trial, runs_folder: Path, program: list[str],
                threads: Optional[int] = None) -> list[str]:
        args = [*program, "train", str(self.config)]
        for assignment in trial.overrides:
            args += ["--set", assignment]
        args += ["--runs-dir", str(runs_folder), "--run-name", self.run_name(trial), "--quiet"]
        return args + (["--threads", str(threads)] if threads else [])


def yaml_value(value: Any) -> str:
    """The YAML text of a value, on one line, as `--set KEY=VALUE` reads it back."""
    text = yaml.safe_dump(value, default_flow_style=True, width=2 ** 31 - 1, sort_keys=False)
    return text.strip().removesuffix("\n...").strip()


def format_problems(exc: ValidationError, source: Source) -> list[str]:
    """Like config.format_errors, with 'did you mean' hints from the sweep's own keys; the
    parameter-kind tags (values/range) are not part of the YAML path."""
    problems = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        if len(loc) > 2 and loc[0] == "parameters" and loc[2] in TAGS:
            loc = loc[:2] + loc[3:]
        kind = error["type"]
        dotted, line, found = source.locate(loc)
        message = describe_error(error)
        if kind == "too_short" and loc[0] == "parameters":
            message = "needs at least one value"
        if kind == "extra_forbidden":
            known = Range.model_fields if loc[0] == "parameters" else SweepSpec.model_fields
            message += suggest(loc, set(known))
        problem = f"{source.where(dotted, line, found)}: {message}"
        if problem not in problems:
            problems.append(problem)
    return problems


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file and its base config; raise ConfigError listing every
    problem, each with its file and line."""
    path = Path(path)
    raw, root = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}:1: the sweep file must be a mapping of keys to values")
    source = Source(path, root)
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_problems(exc, source)) from None

    def problem(loc: tuple, message: str) -> str:
        return f"{source.where(*source.locate(loc))}: {message}"

    problems = []
    if not spec.parameters:
        problems.append(problem(("parameters",), "needs at least one parameter"))
    for key, value in spec.parameters.items():
        where = ("parameters", key)
        if not DOTTED.match(key):
            problems.append(problem(where, "not a dotted config path such as optimizer.lr"))
        elif key == "name":
            problems.append(problem(where, "the sweep names each trial's run; sweep other keys"))
        if isinstance(value, Range) and spec.method == "grid":
            problems.append(problem(where, f"a {{distribution: {value.distribution}}} range needs "
                                           "method: random "
                                           "(a grid takes lists of values)"))
    if spec.method == "random" and spec.samples is None:
        problems.append(problem(("method",), "random needs samples: how many trials to draw"))

    config_path = Path(os.path.normpath(path.parent / spec.config))
    try:
        base = load_config(config_path)
    except ConfigError as exc:
        problems += [f"{source.where('config', source.locate(('config',))[1])}: {p}"
                     for p in exc.problems]
        base = None
    if base is not None and not any(k.startswith(("data", "loss")) for k in spec.parameters):
        known = available_metrics(base)
        if spec.metric not in known:
            problems.append(problem(("metric",), f"unknown metric {spec.metric!r} for "
                                                 f"{config_path}; expected one of: "
                                                 + ", ".join(known)))
    if problems:
        raise ConfigError(problems)
    name = spec.name or safe_name(path.stem)
    return Sweep(path, name, config_path, spec, generate_trials(spec))


def available_metrics(config) -> list[str]:
    names = ["loss"] + metric_names(config.task)
    splits = ["train", "val"] if config.data.validation is not None else ["train"]
    if config.data.test:
        splits.append("test")
    return [f"{split}_{m}" for split in splits for m in names]


# ---- trials ---------------------------------------------------------------------------------

def generate_trials(spec: SweepSpec) -> list[Trial]:
    """grid: the cartesian product, the first parameter varying slowest; random: `samples`
    draws from default_rng(seed), parameter by parameter in the file's order."""
    keys = list(spec.parameters)
    if spec.method == "grid":
        combos = itertools.product(*(spec.parameters[k] for k in keys))
        return [Trial(i + 1, dict(zip(keys, combo))) for i, combo in enumerate(combos)]
    rng = np.random.default_rng(spec.seed)
    return [Trial(i + 1, {k: draw(spec.parameters[k], rng) for k in keys})
            for i in range(spec.samples)]


def draw(parameter: list | Range, rng: np.random.Generator) -> Any:
    if isinstance(parameter, list):
        return parameter[int(rng.integers(len(parameter)))]
    if parameter.distribution == "int_uniform":
        return int(rng.integers(int(parameter.min), int(parameter.max) + 1))
    if parameter.distribution == "uniform":
        value = rng.uniform(parameter.min, parameter.max)
    else:
        value = math.exp(rng.uniform(math.log(parameter.min), math.log(parameter.max)))
    return float(f"{value:.6g}")  # readable in commands and tables; the value used is this one


# ---- running ----------------------------------------------------------------------------------

@dataclass
class Outcome:
    trial: Trial
    status: str = "pending"  # pending | running | the run's status | failed | skipped
    value: Optional[float] = None
    epochs: Optional[int] = None
    seconds: Optional[float] = None
    run_dir: str = ""
    error: str = ""
    rank: Optional[int] = None

    @property
    def ok(self) -> bool:
        return self.status in SUCCESS


@dataclass
class SweepResult:
    folder: Path
    outcomes: list[Outcome]  # ranked
    exit_code: int


def metric_value(summary: dict, metric: str) -> Optional[float]:
    """`val_accuracy` etc. from the summary's best row; `test_<m>` from its test metrics."""
    if metric.startswith("test_"):
        found = (summary.get("test") or {}).get(metric.removeprefix("test_"))
    else:
        found = (summary.get("best") or {}).get(metric)
    return float(found) if isinstance(found, (int, float)) else None


def read_outcome(outcome: Outcome, returncode: int, stdout: str, stderr: str,
                 metric: str) -> None:
    """Fill an outcome from a finished `nnctl train --json` process."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    summary = None
    if lines and lines[-1].lstrip().startswith("{"):
        try:
            summary = json.loads(lines[-1])
        except json.JSONDecodeError:
            pass
    if summary:
        outcome.status = str(summary.get("status", "failed"))
        outcome.run_dir = str(summary.get("run_dir", ""))
        outcome.epochs = summary.get("epochs_run")
        outcome.seconds = summary.get("wall_seconds")
        outcome.value = metric_value(summary, metric)
    else:
        outcome.status = "failed"
        if lines and Path(lines[0]).is_dir():
            outcome.run_dir = lines[0]
    if returncode != 0 and outcome.ok:
        outcome.status = "failed"
    if outcome.status != "interrupted" and (returncode != 0 or not outcome.ok):
        errors = [line.removeprefix("error: ") for line in stderr.splitlines()
                  if line.startswith("error: ")]
        if not errors and stderr.strip():
            errors = [stderr.strip().splitlines()[-1]]  # a traceback's last line
        outcome.error = "; ".join(errors) or f"exit code {returncode}"


def rank(outcomes: list[Outcome], maximize: bool) -> list[Outcome]:
    """Completed trials with a metric value, best first (ties in trial order), then the rest
    in trial order. Ranks 1..k go to the first group."""
    scored = [o for o in outcomes if o.ok and o.value is not None]
    scored.sort(key=lambda o: (-o.value if maximize else o.value, o.trial.number))
    rest = sorted((o for o in outcomes if o not in scored), key=lambda o: o.trial.number)
    for i, outcome in enumerate(scored):
        outcome.rank = i + 1
    for outcome in rest:
        outcome.rank = None
    return scored + rest


def sweep_csv(sweep: Sweep, outcomes: list[Outcome]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    keys = list(sweep.spec.parameters)
    writer.writerow(["rank", "trial", *keys, "status", sweep.metric, "epochs", "seconds",
                     "run_dir", "error"])
    for o in outcomes:
        writer.writerow([o.rank or "", o.trial.number,
                         *(yaml_value(o.trial.params[k]) for k in keys), o.status,
                         "" if o.value is None else repr(o.value),
                         "" if o.epochs is None else o.epochs,
                         "" if o.seconds is None else o.seconds, o.run_dir, o.error])
    return buffer.getvalue()


def ranked_table(sweep: Sweep, outcomes: list[Outcome]) -> str:
    keys = list(sweep.spec.parameters)
    headers = ["rank", "trial", *keys, "status", sweep.metric, "epochs", "time", "run"]
    rows = [[str(o.rank or "-"), str(o.trial.number),
             *(format_value(o.trial.params[k]) for k in keys), o.status,
             "" if o.value is None else f"{o.value:.4f}",
             "" if o.epochs is None else str(o.epochs),
             "" if o.seconds is None else f"{o.seconds:.1f}s",
             Path(o.run_dir).name if o.run_dir else ""] for o in outcomes]
    n = len(keys)
    text = format_table(headers, rows, right={0, 1, *range(2, 2 + n), 3 + n, 4 + n, 5 + n})
    errors = [f"trial {o.trial.number}: {o.error}" for o in outcomes if o.error]
    return text + ("\n\n" + "\n".join(errors) if errors else "")


def print_commands(sweep: Sweep, runs_dir: Path, threads: Optional[int] = None) -> list[str]:
    """One shell command per trial, each writing its run directory into runs_dir/<sweep name>
    (created by the first run to start; names never collide). Without `threads`, each uses
    the cores of wherever it runs."""
    folder = Path(runs_dir) / sweep.name
    return [shlex.join(sweep.command(t, folder, ["nnctl"], threads)) for t in sweep.trials]


def run_sweep(sweep: Sweep, runs_dir: Path, workers: int = 1, threads: Optional[int] = None,
              log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
              ) -> SweepResult:
    """Run every trial as a subprocess, `workers` at a time, into a new sweep folder. Each
    trial computes with `threads` threads, by default its share of the usable cores, as
    scikit-learn's parallel jobs do: more threads than cores would make every trial wait for
    the others."""
    threads = threads or max(1, usable_cores() // workers)
    folder = create_run_dir(runs_dir, sweep.name, checkpoints=False)
    text = sweep.path.read_bytes()
    atomic_write(folder / "sweep.yaml", lambda f: f.write(text))
    outcomes = [Outcome(t) for t in sweep.trials]
    lock = threading.Lock()
    stop = threading.Event()
    running: set[subprocess.Popen] = set()
    received: list[int] = []
    finished = [0]
    program = [sys.executable, "-m", "nnctl.cli"]

    def save() -> None:  # under the lock
        ordered = rank(list(outcomes), sweep.maximize)
        data = sweep_csv(sweep, ordered).encode("utf-8")
        atomic_write(folder / "sweep.csv", lambda f: f.write(data))

    def run_one(outcome: Outcome) -> None:
        trial = outcome.trial
        with lock:
            if stop.is_set():
                outcome.status = "skipped"
                save()
                return
            outcome.status = "running"
            save()
            # A session of its own: a Ctrl-C reaches the sweep, which forwards it once.
            try:
                process = subprocess.Popen(
                    sweep.command(trial, folder, program, threads) + ["--json"],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                    start_new_session=True)
            except OSError as exc:
                outcome.status, outcome.error = "failed", f"cannot start: {exc}"
                finish(outcome)
                return
            running.add(process)
        stdout, stderr = process.communicate()
        with lock:
            running.discard(process)
            read_outcome(outcome, process.returncode, stdout, stderr, sweep.metric)
            finish(outcome)

    def finish(outcome: Outcome) -> None:  # under the lock
        finished[0] += 1
        save()
        shown = "" if outcome.value is None else f"  {sweep.metric} {outcome.value:.4f}"
        params = "  ".join(f"{k}={format_value(v)}" for k, v in outcome.trial.params.items())
        log(f"[{finished[0]}/{len(outcomes)}] trial {outcome.trial.number} {outcome.status}"
            f"{shown}  ({params})" + (f": {outcome.error}" if outcome.error else ""))

    def forward(signum, frame) -> None:
        received.append(signum)
        stop.set()
        with_lock = lock.acquire(timeout=1)
        try:
            for process in list(running):
                try:
                    process.send_signal(signum)
                except ProcessLookupError:
                    pass
        finally:
            if with_lock:
                lock.release()

    workers = max(1, min(workers, len(outcomes)))
    log(f"sweep {sweep.name}: {len(outcomes)} trials ({sweep.spec.method}), {workers} at a "
        f"time, into {folder}")
    with lock:
        save()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)} \
        if main_thread else {}
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(run_one, o) for o in outcomes]
            try:
                for future in futures:
                    future.result()
            except BaseException:
                stop.set()  # no new trials; the running ones finish
                raise
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    with lock:
        save()
    ordered = rank(list(outcomes), sweep.maximize)
    if received:
        code = 143 if received[0] == signal.SIGTERM else 130
        log("interrupted: `nnctl train --resume RUN_DIR` continues an interrupted trial; "
            "skipped trials did not start")
    else:
        code = 0 if all(o.ok for o in outcomes) else EXIT_TRIALS_FAILED
    return SweepResult(folder, ordered, code)
