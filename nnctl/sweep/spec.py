"""The sweep file and its trials, checked against the config's schema before anything runs.

    config: iris.yaml          # the base config, relative to the sweep file
    method: grid               # grid: every combination | random: `samples` seeded draws
                               # | tpe: `samples` trials, each chosen from the ones before
    metric: val_accuracy       # best-epoch metric from the summary, or test_<metric>
    parameters:
      optimizer.lr: [0.1, 0.01]                                   # values / choices
      training.batch_size: {distribution: int_uniform, min: 8, max: 64}   # random and tpe
    early_terminate: {type: median, min_epochs: 5}                # optional: prune trials

Each trial is one `nnctl train CONFIG --set KEY=VALUE ...` process (see runner.py).
"""

from __future__ import annotations

import itertools
import math
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import numpy as np
import yaml
from pydantic import Discriminator, Field, Tag, ValidationError, model_validator

from ..config import (
    Source, Strict, describe_error, safe_name, suggest, load_config, monitor_mode, read_yaml,
    recorded_metrics,
)
from ..errors import ConfigError

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


class EarlyTerminate(Strict):
    """Stop trials that fall behind, judged on the metric epoch by epoch (Optuna's pruners):
    median stops a trial whose best value so far is worse than the median of the other trials
    at the same epoch; hyperband runs successive halving from `min_epochs` up."""

    type: Literal["median", "hyperband"]
    min_epochs: int = Field(1, ge=1)  # no trial is stopped before this many epochs


class SweepSpec(Strict):
    name: Optional[str] = Field(None, pattern=NAME_PATTERN, max_length=80)
    config: str
    method: Literal["grid", "random", "tpe"] = "grid"
    samples: Optional[int] = Field(None, gt=0)
    seed: int = Field(0, ge=0)
    metric: str = "val_loss"
    goal: Optional[Literal["maximize", "minimize"]] = None
    parameters: dict[str, Parameter]
    early_terminate: Optional[EarlyTerminate] = None


@dataclass
class Trial:
    number: int  # 1-based, in generation order
    params: dict[str, Any]  # dotted key -> value, in the sweep file's order (tpe: chosen later)

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

    @property
    def epochs(self) -> int:
        return load_config(self.config).training.epochs

    def command(self, trial: Trial, runs_folder: Path, program: list[str],
                threads: Optional[int] = None) -> list[str]:
        args = [*program, "train", str(self.config)]
        for assignment in trial.overrides:
            args += ["--set", assignment]
        args += ["--runs-dir", str(runs_folder), "--run-name", self.run_name(trial), "--quiet"]
        return args + (["--threads", str(threads)] if threads else [])


def print_commands(sweep: Sweep, runs_dir: Path, threads: Optional[int] = None) -> list[str]:
    """One shell command per trial, each writing its run directory into runs_dir/<sweep name>
    (created by the first run to start; names never collide). Without `threads`, each uses
    the cores of wherever it runs."""
    folder = Path(runs_dir) / sweep.name
    return [shlex.join(sweep.command(t, folder, ["nnctl"], threads)) for t in sweep.trials]


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


def load_sweep(path: str | Path, config: Optional[Path] = None) -> Sweep:
    """Read and check a sweep file and its base config (`config`: where it is, when not
    beside the file, as for the copy in a sweep folder); raise ConfigError listing every
    problem, each with its file and line: the file's own keys, each parameter's path and
    values against the config's schema, and the metric against the task's metrics."""
    path = Path(path)
    raw, root = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}:1: the sweep file must be a mapping of keys to values")
    source = Source(path, root)
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_problems(exc, source)) from None

    def where(loc: tuple) -> str:
        return source.where(*source.locate(loc))

    def problem(loc: tuple, message: str) -> str:
        return f"{where(loc)}: {message}"

    problems = []
    if not spec.parameters:
        problems.append(problem(("parameters",), "needs at least one parameter"))
    for key, value in spec.parameters.items():
        loc = ("parameters", key)
        if not DOTTED.match(key):
            problems.append(problem(loc, "not a dotted config path such as optimizer.lr"))
        elif key == "name":
            problems.append(problem(loc, "the sweep names each trial's run; sweep other keys"))
        if isinstance(value, Range) and spec.method == "grid":
            problems.append(problem(loc, f"a {{distribution: {value.distribution}}} range needs "
                                         "method: random or tpe "
                                         "(a grid takes lists of values)"))
    if spec.method in ("random", "tpe") and spec.samples is None:
        problems.append(problem(("method",), f"{spec.method} needs samples: how many trials "
                                             "to run"))
    count = trial_count(spec)
    if count > MAX_TRIALS:
        problems.append(problem(("samples",) if spec.method != "grid" else ("parameters",),
                                f"{count:,} trials; a sweep runs at most {MAX_TRIALS:,} "
                                "(split it, or use method: tpe with fewer samples)"))
    if spec.early_terminate is not None and spec.metric.startswith("test_"):
        problems.append(problem(("metric",), f"early_terminate judges trials epoch by epoch, "
                                             f"and {spec.metric} is measured only at the end; "
                                             "use a train_ or val_ metric"))

    _resolve_data_paths(spec, path.parent)
    config_path = config or Path(os.path.normpath(path.parent / spec.config))
    try:
        base = load_config(config_path)
    except ConfigError as exc:
        problems += [f"{where(('config',))}: {p}" for p in exc.problems]
        base = None
    if base is not None and count <= MAX_TRIALS:
        problems += _check_values(config_path, spec, where)
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


def _resolve_data_paths(spec: SweepSpec, folder: Path) -> None:
    """Data files named in the sweep file are read from its folder, as a config file's are;
    each trial gets them as absolute paths (its `--set` would read them from where it runs)."""
    for key in ("data.train", "data.validation", "data.test"):
        values = spec.parameters.get(key)
        if isinstance(values, list):
            spec.parameters[key] = [str((folder / v).resolve()) if isinstance(v, str) and v.strip()
                                    else v for v in values]


def _check_values(config_path: Path, spec: SweepSpec, where) -> list[str]:
    """Each parameter's values (a range's ends) set one at a time on the base config, so a
    misspelt path or a value the schema refuses is found before any trial starts, named by
    the sweep file's line."""
    raw, _ = read_yaml(config_path)  # read once; each value is checked on a copy
    problems: list[str] = []
    for key, parameter in spec.parameters.items():
        if not DOTTED.match(key):
            continue
        label = where(("parameters", key))
        values = parameter if isinstance(parameter, list) else [
            int(parameter.min) if parameter.distribution == "int_uniform" else parameter.min,
            int(parameter.max) if parameter.distribution == "int_uniform" else parameter.max]
        for value in {yaml_value(v): v for v in values}.values():  # each distinct value once
            try:
                load_config(raw, [(key, value, label)])
            except ConfigError as exc:
                problems += [p for p in exc.problems if p not in problems]
    return problems


def available_metrics(config) -> list[str]:
    splits = ["train", "val"] if config.data.validation is not None else ["train"]
    if config.data.test:
        splits.append("test")
    return recorded_metrics(config.task, splits)


# ---- trials ---------------------------------------------------------------------------------

MAX_TRIALS = 10_000  # each trial is a process and an entry in the study: more is a mistake


def trial_count(spec: SweepSpec) -> int:
    """How many trials the file asks for, counted without making them."""
    if spec.method != "grid":
        return spec.samples or 0
    return math.prod(len(v) for v in spec.parameters.values() if isinstance(v, list))


def generate_trials(spec: SweepSpec) -> list[Trial]:
    """grid: the cartesian product, the first parameter varying slowest; random: `samples`
    draws from default_rng(seed), parameter by parameter in the file's order; tpe: `samples`
    trials whose values the study chooses as they start."""
    keys = list(spec.parameters)
    if spec.method == "tpe":
        return [Trial(i + 1, {}) for i in range(spec.samples)]
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


