"""From a validated config (and the data's shape) to the objects that train: random streams,
model, optimizer, schedule, early stopping. Checks the config against the data first."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .config import Config, DenseSpec, PlateauSchedule, monitor_mode, source_of
from .data import Preprocessing
from .errors import ConfigError
from .model import Sequential
from .optim import OPTIMIZERS, Optimizer
from .schedules import SCHEDULES, Schedule
from .train import EarlyStopping

STREAMS = ("init", "split", "shuffle", "dropout")


def rng_streams(seed: int) -> dict[str, np.random.Generator]:
    """Independent generators from one seed, so that e.g. changing dropout does not change
    the validation split."""
    children = np.random.SeedSequence(seed).spawn(len(STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(STREAMS, children)}


def input_shape(prep: Preprocessing) -> tuple[int, ...]:
    return tuple(prep.sequence) if prep.sequence else (len(prep.features),)


def check_against_data(config: Config, prep: Preprocessing) -> None:
    """Config problems that only the data reveals: output units, sequence shape."""
    source = source_of(config)
    problems = []
    last_index = len(config.model.layers) - 1
    last = config.model.layers[-1]
    if isinstance(last, DenseSpec) and last.units != prep.n_outputs:
        if prep.task == "classification":
            wanted = f"the target {prep.targets[0]!r} has {len(prep.classes)} classes"
        elif len(prep.targets) == 1:
            wanted = f"the target {prep.targets[0]!r} needs 1"
        else:
            wanted = f"the {len(prep.targets)} targets need {len(prep.targets)}"
        problems.append(source.problem(
            f"model.layers.{last_index}.units",
            f"the last dense layer has {last.units} units but {wanted}"))
    sequence = config.data.sequence
    if sequence and sequence.steps * sequence.features != len(prep.features):
        problems.append(source.problem(
            "data.sequence",
            f"steps x features = {sequence.steps} x {sequence.features} = "
            f"{sequence.steps * sequence.features}, but there are {len(prep.features)} "
            f"feature columns"))
    if problems:
        raise ConfigError(problems)


def build_model(config: Config, prep: Preprocessing, rng: np.random.Generator) -> Sequential:
    specs = [layer.model_dump() for layer in config.model.layers]
    return Sequential.from_specs(specs, input_shape(prep), rng, np.dtype(config.dtype))


def build_optimizer(config: Config, model: Sequential) -> Optimizer:
    spec = config.optimizer.model_dump()
    cls = OPTIMIZERS[spec.pop("type")]
    return cls(list(model.parameters().values()), **spec)


def build_schedule(config: Config) -> Optional[Schedule]:
    spec = config.training.lr_schedule
    if spec is None:
        return None
    kwargs = spec.model_dump()
    cls = SCHEDULES[kwargs.pop("type")]
    if isinstance(spec, PlateauSchedule):
        kwargs["mode"] = monitor_mode(spec.monitor, spec.mode)
    return cls(config.optimizer.lr, config.training.epochs, **kwargs)


def build_early_stopping(config: Config) -> Optional[EarlyStopping]:
    spec = config.training.early_stopping
    if spec is None:
        return None
    return EarlyStopping(monitor=spec.monitor, mode=monitor_mode(spec.monitor, spec.mode),
                         patience=spec.patience, min_delta=spec.min_delta,
                         restore_best=spec.restore_best)
