"""nnctl from Python, and the one path the command line takes too: train (and resume) a run,
load one, evaluate and predict with it.

    >>> import nnctl
    >>> run = nnctl.train("configs/iris.yaml", overrides={"optimizer.lr": 0.01})
    >>> run.predict("datasets/iris.csv").head()

Inside, the data flows one way: config -> data + model + optimizer -> trainer -> run directory.
"""

from __future__ import annotations

import math
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np

from .build import (
    build_early_stopping, build_loss, build_model, build_optimizer, build_schedule,
    check_against_data, check_columns, check_memory, class_weights, rng_streams,
)
from .checkpoint import (
    MAX_WHOLE, load_checkpoint, load_weights_file, model_arrays, read_json,
    remove_temp_files,
)
from .config import (
    Config, PlateauSchedule, label_text, load_config, monitor_mode, monitors, source_of,
)
from .data import Preprocessing, TrainingData, load_for_eval, load_for_predict, load_training_data
from .data.problems import limit
from .errors import CheckpointError, ConfigError, UserError
from .listing import column_table, table_width
from .locking import lock_run
from .progress import choose
from .report import ending, layer_names, model_summary
from .runs import (
    CHECKPOINTS, RNG_KEYS, RunRecorder, checkpoint_stem, command_line, create_run_dir,
    epoch_checkpoints, open_run, read_metrics, read_summary, rng_state_from, versions,
)
from .trainer import Diverged, Trainer, evaluate
from .nn import denormals, threads

if TYPE_CHECKING:
    import pandas as pd

PathLike = Union[str, "os.PathLike[str]"]
Data = Union["pd.DataFrame", PathLike]  # a DataFrame, or the path of a CSV file
Overrides = Union[Mapping[str, Any], Sequence[str], None]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # stop after the batch, save, mark interrupted
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@contextmanager
def computing():
    """How the model computes, set for a block and undone after: denormal numbers flushed to
    zero (nn/denormals.py: their slow path would set the pace), and BLAS held to one thread
    (nnctl shares each product's pieces among its own threads) where NumPy was loaded before
    nnctl could set BLAS's variables. Reading data stays outside it, in IEEE arithmetic, as
    training reads its files before it computes."""
    with denormals.flushed():
        if not threads.blas_needs_holding():
            yield
            return
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            yield


def train(config: Union[PathLike, Mapping[str, Any]], overrides: Overrides = None,
          runs_dir: PathLike = "runs", seed: Optional[int] = None, quiet: bool = True, *,
          run_name: Optional[str] = None, init_weights: Optional[PathLike] = None,
          cache: Optional[PathLike] = None) -> Run:
    """Train a model from a config (a YAML file or a dict of the same keys) into a new run
    directory below `runs_dir`, and return the run.

    `overrides` changes values by dotted path, as `nnctl train --set` does; `seed` and
    `run_name` replace the config's; `cache` is a folder that keeps the parsed CSV files for
    the next run on the same files (as sweeps do). A run that diverges or is interrupted is returned too:
    check `run.status`. Bad configs and data raise ConfigError / DataError before anything
    is written.

        >>> run = nnctl.train("configs/iris.yaml", overrides={"optimizer.lr": 0.01}, seed=1)
        >>> run.status, run.summary["best_epoch"], run.path
        ('early_stopped', 78, PosixPath('runs/iris-20261130-210117-4c30'))
    """
    if run_name is not None and not RUN_NAME.fullmatch(run_name):
        raise UserError(f"run name {run_name!r}: use letters, digits, '.', '_' and '-', "
                        "starting with a letter or digit")
    items: list = list(overrides.items()) if isinstance(overrides, Mapping) else list(overrides or ())
    items += [(key, value) for key, value in (("seed", seed), ("name", run_name)) if value is not None]
    cfg = load_config(config, items)
    session = prepare(cfg, quiet, cache)
    if init_weights is not None:
        load_init_weights(session, Path(init_weights))
    run_dir = create_run_dir(Path(runs_dir), cfg.name)
    with lock_run(run_dir):  # held until training ends: a --resume of it meanwhile is refused
        run = RunRecorder(run_dir, session.data.preprocessing.to_dict(),
                          cfg.training.checkpoint.keep_last,
                          cfg.training.checkpoint.every_seconds)
        run.write_config(cfg.to_yaml())
        run.log(f"started: {command_line()}")
        columns = session.data.preprocessing.column_table()
        run.log("columns:\n" + column_table(columns))
        if not quiet:
            print(column_table(columns, sys.stderr), file=sys.stderr)
        _announce(session, run, quiet)
        warn(session.data.notes, run)
        _fit(session, run, started=time.time(), previous_seconds=0.0, quiet=quiet)
    return Run(run.path)


def resume(run_dir: PathLike, quiet: bool = True, cache: Optional[PathLike] = None) -> Run:
    """Continue an interrupted run in its own directory from its last checkpoint, exactly as
    if it had not stopped (a finished run is returned as it is).

        >>> run = nnctl.resume("runs/iris-20261123-003018-c925")
    """
    run_dir = open_run(Path(run_dir))
    summary = read_summary(run_dir) or {}
    if summary.get("status") in ("completed", "early_stopped"):
        return Run(run_dir)
    # Before anything is written, and held until training ends: a second resume of this run,
    # or a resume of a run still training, is refused here and changes nothing.
    with lock_run(run_dir):
        summary = read_summary(run_dir) or {}  # the holder may have finished meanwhile
        if summary.get("status") in ("completed", "early_stopped"):
            return Run(run_dir)
        _resume(run_dir, summary, quiet, cache)
    return Run(run_dir)


def _resume(run_dir: Path, summary: dict, quiet: bool, cache: Optional[PathLike]) -> None:
    config = load_config(run_dir / "config.yaml")
    session = prepare(config, quiet, cache)
    run = RunRecorder(run_dir, session.data.preprocessing.to_dict(),
                      config.training.checkpoint.keep_last, config.training.checkpoint.every_seconds)
    arrays = meta = None
    if os.path.lexists(run.checkpoints / "last.npz") or os.path.lexists(run.checkpoints / "last.json"):
        arrays, meta = read_run_checkpoint(
            run_dir, "last", lambda meta: check_resume_meta(meta, session, run_dir))
    remove_temp_files(run.checkpoints)
    remove_temp_files(run.path)
    resumed_from = None
    if meta is not None:
        _restore(session, run, arrays, meta)
        resumed_from = meta["epoch"]
    # Rows appended after the checkpoint (by a process that died before its next save) are
    # cut: the epochs they record are trained again.
    session.trainer.history = run.cut_metrics(session.trainer.epoch)
    run.log(f"resumed from epoch {resumed_from or 0}, batch {session.trainer.batch}: "
            f"{command_line()}")
    _announce(session, run, quiet)
    _fit(session, run, started=time.time(),
         previous_seconds=float(summary.get("wall_seconds") or 0.0), quiet=quiet)


def load(run_dir: PathLike, checkpoint: str = "best") -> Run:
    """A finished (or interrupted) run, with the weights of its `best` or `last` checkpoint
    loaded and checked, ready to predict and evaluate.

        >>> run = nnctl.load("runs/iris-20261123-003018-c925")
        >>> run.predict(pd.DataFrame({"sepal_length": [5.1], ...}))
    """
    run = Run(run_dir, checkpoint)
    run._loaded  # load now, so a missing or broken checkpoint is reported here
    return run


class Run:
    """A run directory: its config, metrics and summary, and its model for predictions.

    Data for `predict`, `predict_proba` and `evaluate` is a DataFrame or the path of a CSV
    file with the feature columns (and the targets, to evaluate), read as `nnctl predict`
    reads files: in any column order, blank cells as training filled them, categories not
    seen in training as "other".
    """

    def __init__(self, path: PathLike, checkpoint: str = "best"):
        self.path = open_run(Path(path))
        self.checkpoint = checkpoint_stem(checkpoint)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, status={self.status!r}, checkpoint={self.checkpoint!r})"

    @cached_property
    def config(self) -> Config:
        """The resolved config the run was trained with (overrides applied)."""
        return load_config(self.path / "config.yaml")

    @property
    def summary(self) -> dict:
        """summary.json: status, epochs, the best and final metrics, test metrics, timings."""
        return read_summary(self.path) or {}

    @property
    def status(self) -> Optional[str]:
        """completed, early_stopped, diverged, interrupted, failed; None while it runs."""
        return self.summary.get("status")

    @property
    def metrics(self) -> "pd.DataFrame":
        """metrics.csv as a DataFrame: one row per epoch."""
        import pandas as pd

        return pd.DataFrame(read_metrics(self.path))

    @cached_property
    def _loaded(self) -> Loaded:
        return load_run(self.path, self.checkpoint, self.config)

    @property
    def model(self):
        """The checkpoint's network (nnctl.nn.model.Sequential): `model.predict(x)` on an
        encoded input array."""
        return self._loaded.model

    @property
    def preprocessing(self) -> Preprocessing:
        """The fitted preprocessing that turns data into the model's input array."""
        return self._loaded.preprocessing

    @property
    def classes(self) -> list:
        """The class labels, in the order of predict_proba's columns ([] for regression)."""
        return list(self.preprocessing.classes)

    def predict(self, data: Data, keep: Sequence[str] = (),
                threshold: Optional[float] = None) -> "pd.DataFrame":
        """Predictions for every row, in order, with the columns `nnctl predict` writes:
        `pred_<target>` (the label, or the value) and `prob_<class>` per class; `keep`
        copies input columns through. A binary run labels a row positive when its
        probability is at or above `threshold` (default 0.5); other tasks refuse it.

            >>> run.predict("datasets/iris.csv", keep=["id"]).head()
        """
        return predict(self._loaded, data, list(keep), threshold)

    def predict_proba(self, data: Data) -> np.ndarray:
        """Class probabilities, shape (rows, classes), columns in `run.classes` order (for
        several 0/1 targets: each one's probability of 1, in the config's target order).

            >>> run.predict_proba(frame).argmax(axis=1)
        """
        loaded = self._loaded
        if loaded.preprocessing.task == "regression":
            raise UserError(f"{self.path}: a regression run has no probabilities; use predict")
        x, _ = _inputs(loaded, data)
        with computing():
            out = loaded.model.predict(x).astype(np.float64)
        if loaded.preprocessing.task == "binary" and loaded.preprocessing.classes:
            return np.column_stack([1 - out[:, 0], out[:, 0]])
        return out

    def export(self, path: Optional[PathLike] = None) -> Path:
        """Write the run's inference (preprocessing, network, labels) as one ONNX file, by
        default model.onnx in the run directory (model-last.onnx for the last checkpoint);
        needs the onnx package (`pip install 'nnctl[onnx]'`).

            >>> run.export("churn.onnx")
        """
        from .export import export_run

        if path is None:
            path = self.path / ("model.onnx" if self.checkpoint == "best" else "model-last.onnx")
        return export_run(self, Path(path))

    def evaluate(self, data: Optional[Data] = None, threshold: Optional[float] = None) -> dict:
        """Loss and metrics on labelled data (by default the run's test data, else its
        validation data): the numbers of `nnctl eval --json`. `threshold` (binary runs
        only, default 0.5) is the probability at or above which a row counts as positive.

            >>> run.evaluate("datasets/iris_test.csv")["accuracy"]
        """
        return evaluate_run(self.path, self._loaded, data, threshold)


# ---- training, inside ------------------------------------------------------------------------

@dataclass
class Session:
    """Everything built from one config, ready to train."""

    config: Config
    data: TrainingData
    trainer: Trainer


def prepare(config: Config, quiet: bool = True, cache: Optional[PathLike] = None) -> Session:
    """Read the data (through the parsed-file cache, if given), check the config against it,
    and build the trainer. Raises user errors before anything is written."""
    threads.configure_once()
    streams = rng_streams(config.seed)
    dtype = np.dtype(config.dtype)
    data = load_training_data(config.data, config.task, streams["split"], dtype,
                              check=lambda prep: check_against_data(config, prep),
                              check_columns=lambda columns: check_columns(config, columns),
                              cache=Path(cache) if cache is not None else None)
    prep = data.preprocessing
    prep.class_weights = class_weights(config, prep, data.class_counts)
    check_memory(config, prep)
    check_auc_monitors(config, data.validation)
    model = build_model(config, prep, streams["init"])
    model.use_dropout_rng(streams["dropout"])
    early = build_early_stopping(config)
    checkpoint = config.training.checkpoint
    trainer = Trainer(
        model=model, loss=build_loss(config, prep.class_weights),
        optimizer=build_optimizer(config, model),
        task=config.task, epochs=config.training.epochs,
        batch_size=config.training.batch_size, shuffle=config.training.shuffle,
        shuffle_rng=streams["shuffle"], dropout_rng=streams["dropout"],
        clip_norm=config.training.clip_norm, clip_value=config.training.clip_value,
        schedule=build_schedule(config), early_stopping=early,
        monitor=checkpoint.monitor, monitor_mode=monitor_mode(checkpoint.monitor, checkpoint.mode),
        progress=choose(quiet),
    )
    return Session(config, data, trainer)


def check_auc_monitors(config: Config, validation) -> None:
    """ROC AUC needs both classes in the validation data; a monitor that is NaN every epoch
    could never improve, so it is refused before training."""
    if validation is None or config.task == "regression":
        return
    from .metrics import auc_defined

    if auc_defined(config.task, validation.y):
        return
    problems = [source_of(config).problem(
        dotted, "val_auc is undefined: the validation data holds one class only "
        "(monitor val_loss or val_f1)") for dotted, monitor in monitors(config)
        if monitor == "val_auc"]
    if problems:
        raise ConfigError(problems)


def load_init_weights(session: Session, path: Path) -> None:
    # Each array is read only up to what the model's needs (at float64): no file, whatever
    # its zip headers say, inflates beyond that.
    expected = {name: 8 * p.value.size for name, p in session.trainer.model.parameters().items()}
    weights = load_weights_file(path, expected)
    try:
        session.trainer.model.load_state_dict(weights)
    except ValueError as exc:
        raise CheckpointError(f"{path}: does not fit the model: {exc}") from None


def _restore(session: Session, run: RunRecorder, arrays: dict, meta: dict) -> None:
    """Continue from a checkpoint that check_resume_meta accepted: its arrays' values are
    checked (RNG words, optimizer counters) before anything is loaded."""
    trainer = session.trainer
    npz_path = run.checkpoints / "last.npz"
    problems = array_value_problems(arrays, npz_path)
    if problems:
        raise CheckpointError(limit(problems, npz_path))
    try:
        trainer.model.load_state_dict(model_arrays(arrays))
        trainer.optimizer.load_state_dict(
            {k.removeprefix("optimizer."): v for k, v in arrays.items() if k.startswith("optimizer.")})
        state = dict(meta["trainer"])
        for key in RNG_KEYS:
            state[key] = rng_state_from(arrays[rng_array_name(key)])
        trainer.load_state_dict(state)
    except (KeyError, ValueError, TypeError, OverflowError) as exc:
        raise CheckpointError(f"{npz_path}: cannot resume from it ({exc})") from None
    early = trainer.early_stopping
    if early is not None and early.restore_best and early.best_epoch:
        trainer.early_best_weights = _weights_of_epoch(run, early.best_epoch, trainer)


def _weights_of_epoch(run: RunRecorder, epoch: int, trainer: Trainer) -> Optional[dict]:
    """Weights saved at the end of `epoch`, from `best` or a kept epoch checkpoint."""
    candidates = ["best"] + [stem for number, stem in epoch_checkpoints(run.checkpoints)
                             if number == epoch]
    for stem in candidates:
        try:
            arrays, meta = read_run_checkpoint(
                run.path, stem, weights_check(trainer, run.checkpoints / f"{stem}.npz"))
        except CheckpointError:
            continue
        if meta.get("epoch") == epoch and meta.get("batch") == 0:
            return model_arrays(arrays)
    run.log(f"note: the weights of epoch {epoch} are no longer kept; restore_best will keep "
            "the final weights")
    return None


# ---- checking a checkpoint against the run ---------------------------------------------------
#
# nnctl.checkpoint checks that a checkpoint is well formed (its json against a strict schema,
# its arrays against the json). Here the checkpoint is checked against the run that uses it:
# its preprocessing against the config and the model, its arrays' names, shapes and dtypes
# against the model built from both (before any array is read), and, to resume, the trainer's
# state against the config and the data. Every problem names the file and the field.

# Optimizer buffers that hold sums of squares: a negative value is no state the optimizer
# makes (its square root would turn the weights into NaN).
NONNEGATIVE_BUFFERS = ("exp_avg_sq", "sum", "square_avg", "acc_delta")


def read_run_checkpoint(run_dir: PathLike, stem: str, check=None) -> tuple[dict, dict]:
    """A run's checkpoint `stem`, with `check(meta)` run on its description before any array
    is read (see nnctl.checkpoint.load_checkpoint)."""
    folder = Path(run_dir) / CHECKPOINTS
    if not os.path.lexists(folder / f"{stem}.npz") and not os.path.lexists(folder / f"{stem}.json"):
        raise CheckpointError(f"{folder / stem}.npz: no such checkpoint (has the run finished "
                              "an epoch yet?)")
    return load_checkpoint(folder, stem, check)


def rng_array_name(key: str) -> str:
    return f"rng.{key.removesuffix('_rng')}"


def expected_arrays(model, optimizer) -> dict[str, tuple[list[int], str]]:
    """Name -> (shape, dtype) of every array a checkpoint of this model and optimizer holds."""
    expected = {name: (list(p.value.shape), str(p.value.dtype))
                for name, p in model.parameters().items()}
    expected.update({f"optimizer.{name}": (list(a.shape), str(a.dtype))
                     for name, a in optimizer.state_dict().items()})
    expected.update({rng_array_name(key): ([6], "uint64") for key in RNG_KEYS})
    return expected


def array_table_problems(meta: dict, expected: dict, npz_path: Path, json_path: Path,
                         complete: bool) -> list[str]:
    """The arrays a checkpoint's json lists against those of the run's model: no other names,
    the same shapes and dtypes, none of the model's weights missing (none at all missing if
    `complete`, as a resume needs the optimizer's and the RNGs' state too)."""
    listed = meta["arrays"]
    problems = []
    for name, entry in listed.items():
        want = expected.get(name)
        if want is None:
            problems.append(f"{npz_path}: does not fit the run's config: array {name!r} "
                            f"(arrays in {json_path.name}) is not one of its model's")
        elif (entry["shape"], entry["dtype"]) != want:
            problems.append(f"{npz_path}: does not fit the run's config: array {name!r} is "
                            f"{entry['dtype']}{entry['shape']} in {json_path.name}; the "
                            f"model's is {want[1]}{want[0]}")
    for name in expected:
        if name not in listed and (complete or name.startswith(("layers.", "inputs."))):
            problems.append(f"{npz_path}: array {name!r} of the run's model is not in the "
                            f"checkpoint (arrays in {json_path.name})")
    return problems


def weights_check(trainer: Trainer, npz_path: Path):
    """A check for load_checkpoint: the arrays fit this trainer's model and optimizer."""
    expected = expected_arrays(trainer.model, trainer.optimizer)

    def check(meta: dict) -> None:
        problems = array_table_problems(meta, expected, npz_path, npz_path.with_suffix(".json"),
                                        complete=False)
        if problems:
            raise CheckpointError(limit(problems, npz_path))

    return check


def array_value_problems(arrays: dict, npz_path: Path) -> list[str]:
    """Values no run writes: RNG states PCG64 cannot take, a negative optimizer step count or
    sum of squares."""
    problems = []
    for key in RNG_KEYS:
        name = rng_array_name(key)
        words = arrays.get(name)
        if words is None or words.shape != (6,):
            continue  # named by the table's check
        words = [int(v) for v in words]
        if words[4] not in (0, 1):
            problems.append(f"{npz_path}: array {name!r}: word 4 (has_uint32) must be 0 or 1 "
                            f"(got {words[4]})")
        if words[5] >= 2**32:
            problems.append(f"{npz_path}: array {name!r}: word 5 (a saved 32-bit value) must "
                            f"be < 2**32 (got {words[5]})")
        if words[3] % 2 == 0:
            problems.append(f"{npz_path}: array {name!r}: words 2-3 (the PCG64 increment) must "
                            "make an odd number")
    step = arrays.get("optimizer.step")
    if step is not None and step.shape == () and not 0 <= int(step) <= MAX_WHOLE:
        problems.append(f"{npz_path}: array 'optimizer.step': must be >= 0 and <= {MAX_WHOLE} "
                        f"(got {int(step)})")
    for name, array in arrays.items():
        buffer = name.removeprefix("optimizer.").split(".")[0]
        if name.startswith("optimizer.") and buffer in NONNEGATIVE_BUFFERS and array.size \
                and array.dtype.kind == "f" and float(array.min()) < 0:
            problems.append(f"{npz_path}: array {name!r}: a sum of squares must be >= 0 "
                            f"(got {float(array.min())})")
    return problems


def _model_for(config: Config, prep: Preprocessing, json_path: Path):
    """The run's model for a checked preprocessing (weights still random)."""
    try:
        return build_model(config, prep, np.random.default_rng(0))
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        raise CheckpointError(f"{json_path}: preprocessing: does not fit the run's model "
                              f"({type(exc).__name__}: {exc})") from None


def checked_preprocessing(meta: dict, config: Config, json_path: Path) -> Preprocessing:
    """The preprocessing of a checkpoint's description, built and checked against the run's
    config; CheckpointError names the file and each field that does not fit."""
    where = f"{json_path}: preprocessing"
    data = meta.get("preprocessing")
    if data is None:
        raise CheckpointError(f"{where}: required key is missing")
    columns = data.get("columns")
    if columns is not None and [c["name"] for c in columns] != data["features"]:
        raise CheckpointError(f"{where}.columns: the columns' names must be the features, "
                              "in order")
    # Built first without its scaler, so that a scaler that does not fit is named below
    # field by field (from_dict would only say that it does not fit).
    scaler = {key: data.get(key, default) for key, default in
              (("scale", "none"), ("offset", []), ("spread", []))}
    try:
        prep = Preprocessing.from_dict({**data, "scale": "none", "offset": [], "spread": []})
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{where}: not a preprocessing nnctl made "
                              f"({type(exc).__name__}: {exc})") from None
    prep.scale, prep.offset, prep.spread = scaler["scale"], scaler["offset"], scaler["spread"]
    problems = preprocessing_problems(prep, config, where)
    if meta.get("dtype") not in (None, config.dtype):
        problems.append(f"{json_path}: dtype: the run's config trains in {config.dtype} "
                        f"(got {meta['dtype']!r})")
    if problems:
        raise CheckpointError(limit(problems, json_path))
    try:
        return Preprocessing.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{where}: not a preprocessing nnctl made "
                              f"({type(exc).__name__}: {exc})") from None


def preprocessing_problems(prep: Preprocessing, config: Config, where: str) -> list[str]:
    problems = []

    def problem(field: str, text: str) -> None:
        problems.append(f"{where}.{field}: {text}")

    if prep.task != config.task:
        problem("task", f"the run's config (loss {config.loss}) trains a {config.task} model "
                        f"(got {prep.task!r})")
    targets = config.data.targets
    if prep.targets != targets:
        problem("targets", f"must be the config's data.target {targets} (got {prep.targets})")
    if len(set(prep.features)) != len(prep.features):
        problem("features", "names a column twice")
    if set(prep.features) & set(targets):
        problem("features", f"holds a target column ({sorted(set(prep.features) & set(targets))})")
    if config.data.features is not None:
        foreign = [name for name in prep.features if name not in config.data.features]
        if foreign:
            problem("features", f"{foreign[:3]} not among the config's data.features")
    if prep.scale != config.data.scale:
        problem("scale", f"the run's config scales {config.data.scale!r} (got {prep.scale!r})")
    inputs = len(prep.inputs)
    for field in ("offset", "spread"):
        values = getattr(prep, field)
        wanted = inputs if prep.scale != "none" else 0
        if len(values) != wanted:
            problem(field, f"has {len(values)} values; the model has {inputs} scaled inputs"
                    if wanted else f"must be empty without scaling (has {len(values)} values)")
    _label_problems(prep, config, problem)
    _column_problems(prep, config, problem)
    sequence = config.data.sequence
    wanted_sequence = [sequence.steps, sequence.features] if sequence else None
    if prep.sequence != wanted_sequence:
        problem("sequence", f"must be {wanted_sequence} as the config's data.sequence "
                            f"(got {prep.sequence})")
    elif prep.sequence and prep.sequence[0] * prep.sequence[1] != prep.width:
        problem("sequence", f"{prep.sequence[0]} x {prep.sequence[1]} steps and features, but "
                            f"the columns make {prep.width} inputs")
    return problems


def _label_problems(prep: Preprocessing, config: Config, problem) -> None:
    """Classes, class weights and target scaling against the task and the output layer."""
    last = config.model.layers[-1]
    units = getattr(last, "units", None)
    texts = [label_text(c) for c in prep.classes]
    twice = sorted({t for t in texts if texts.count(t) > 1}) if len(set(texts)) != len(texts) else []
    if twice:
        problem("classes", f"the class {twice[0]!r} is listed twice")
    if prep.task == "classification":
        if len(prep.targets) != 1:
            problem("targets", f"a classifier has one target (got {len(prep.targets)})")
        if len(prep.classes) < 2:
            problem("classes", f"a classifier needs 2 classes or more (got {len(prep.classes)})")
        elif units is not None and len(prep.classes) != units:
            problem("classes", f"{_count(len(prep.classes), 'class')}, but the run's model "
                               f"has {units} output units")
    else:
        if prep.task == "binary" and prep.classes and (len(prep.classes) != 2 or len(prep.targets) != 1):
            problem("classes", "a binary target has two classes (or none, for 0/1 target "
                               f"columns) (got {len(prep.classes)} for {len(prep.targets)} targets)")
        if prep.task == "regression" and prep.classes:
            problem("classes", f"a regression has no classes (got {len(prep.classes)})")
        if units is not None and len(prep.targets) != units:
            problem("targets", f"{_count(len(prep.targets), 'target')}, but the run's model "
                               f"has {units} output units")
    if config.training.class_weight is None and prep.class_weights is not None:
        problem("class_weights", "the run's config has no training.class_weight")
    if prep.class_weights is not None and len(prep.class_weights) != len(prep.classes):
        problem("class_weights", f"has {len(prep.class_weights)} weights for "
                                 f"{len(prep.classes)} classes")
    scaled = prep.task == "regression" and config.data.scale_target == "standard"
    if prep.target_scale is None:
        if scaled:
            problem("target_scale", "required by the config's data.scale_target: standard")
    elif not scaled:
        problem("target_scale", "must be null: the run's config does not scale its targets")
    elif any(len(part) != len(prep.targets) for part in prep.target_scale):
        problem("target_scale", f"must hold {len(prep.targets)} offsets and "
                                f"{len(prep.targets)} spreads, one per target")
    elif not all(s > 0 for s in prep.target_scale[1]):
        problem("target_scale", "the spreads must be > 0")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "es" if noun.endswith("s") else "s")


def _lr_problem(lr: float, epoch: int, config: Config) -> Optional[str]:
    """The learning rate after `epoch` epochs is the config's (no schedule), the schedule's
    value for that epoch (step, exponential, cosine), or between min_lr and the config's
    (plateau); None when `lr` is that."""
    base = config.optimizer.lr
    spec = config.training.lr_schedule
    if isinstance(spec, PlateauSchedule):
        low, high = sorted((spec.min_lr, base))
        if not low <= lr <= high:
            return f"must be between {low} and {high} under a plateau schedule (got {lr})"
        return None
    if spec is None or epoch == 0:
        wanted = base
    else:
        try:
            wanted = build_schedule(config).after_epoch(epoch, {}, base)
        except (OverflowError, ZeroDivisionError, ValueError):
            return None  # a schedule too extreme to recompute is not the checkpoint's fault
    if not math.isclose(lr, wanted, rel_tol=1e-9, abs_tol=0.0):
        return f"must be {wanted}, the run's learning rate after {epoch} epochs (got {lr})"
    return None


def _column_problems(prep: Preprocessing, config: Config, problem) -> None:
    """Each column's encoder against what the config declares and what encoding can use."""
    for i, column in enumerate(prep.columns):
        field = f"columns.{i}"
        declared = config.data.columns.get(column.name)
        if declared is not None and declared.type != column.type:
            problem(f"{field}.type", f"column {column.name!r} is declared {declared.type} in "
                                     f"the config (got {column.type!r})")
        if column.type == "categorical":
            slots = column.categories + column.folded
            if len(set(slots)) != len(slots):
                problem(f"{field}.categories", f"column {column.name!r}: a category is listed "
                                               "twice (among categories and folded)")
            if column.encoding == "embedding":
                if column.dim < 1:
                    problem(f"{field}.dim", f"column {column.name!r}: an embedding needs a "
                                            f"width of 1 or more (got {column.dim})")
                if not column.other:
                    problem(f"{field}.other", f"column {column.name!r}: an embedding always "
                                              "has an 'other' row")
            if declared is not None and declared.type == "categorical":
                for key in ("encoding", "l1", "l2") + (("dim",) if declared.dim else ()):
                    if getattr(declared, key) != getattr(column, key):
                        problem(f"{field}.{key}", f"column {column.name!r}: the config says "
                                                  f"{getattr(declared, key)!r} (got "
                                                  f"{getattr(column, key)!r})")
            for key in ("l1", "l2"):
                if getattr(column, key) < 0:
                    problem(f"{field}.{key}", f"must be >= 0 (got {getattr(column, key)})")
        elif column.type == "binary":
            if column.positive is not None and column.positive == column.negative:
                problem(f"{field}.positive", f"column {column.name!r}: the two values are the "
                                             f"same ({column.positive!r})")
        elif column.type == "datetime":
            if len(set(column.parts)) != len(column.parts):
                problem(f"{field}.parts", f"column {column.name!r}: a part is listed twice")
            if column.format is not None and not _date_format_works(column.format):
                problem(f"{field}.format", f"column {column.name!r}: not a date format pandas "
                                           f"reads ({column.format[:40]!r})")
    for name in prep.ignored:
        if name in prep.features:
            problem("ignored", f"column {name!r} is both read and ignored")


def _date_format_works(fmt: str) -> bool:
    import pandas as pd

    try:
        pd.to_datetime(pd.Series(["2020-01-02", None], dtype=object), format=fmt,
                       errors="coerce", utc=True)
    except (ValueError, TypeError, OverflowError):
        return False
    return True


def check_resume_meta(meta: dict, session: Session, run_dir: Path) -> None:
    """What a resume needs of the `last` checkpoint's description, checked before any array
    is read: a preprocessing that fits the config and equals the one the data gives now,
    every array of the model, optimizer and RNGs, and a trainer state in range."""
    folder = Path(run_dir) / CHECKPOINTS
    json_path, npz_path = folder / "last.json", folder / "last.npz"
    config, trainer = session.config, session.trainer
    checked_preprocessing(meta, config, json_path)
    if meta["preprocessing"] != session.data.preprocessing.to_dict():
        raise CheckpointError(f"{json_path}: the training data no longer matches the run "
                              "(columns, classes or scaling changed)")
    expected = expected_arrays(trainer.model, trainer.optimizer)
    problems = array_table_problems(meta, expected, npz_path, json_path, complete=True)
    n_batches = math.ceil(len(session.data.train) / config.training.batch_size)
    problems += trainer_problems(meta, config, json_path, session.data.preprocessing.n_outputs,
                                 n_batches)
    if problems:
        raise CheckpointError(limit(problems, npz_path))


def trainer_problems(meta: dict, config: Config, json_path: Path, outputs: int,
                     n_batches: Optional[int] = None) -> list[str]:
    """The trainer's saved state against the config (and, to resume, against the training
    data: `n_batches` per epoch, when given; a resume needs the state too)."""
    state = meta.get("trainer")
    if state is None:
        if n_batches is None:
            return []
        return [f"{json_path}: trainer: required key is missing (the state a resume needs)"]
    where = f"{json_path}: trainer"
    problems = []
    epochs = config.training.epochs
    epoch = state["epoch"]
    if epoch > epochs:
        problems.append(f"{where}.epoch: must be <= {epochs}, the run's training.epochs "
                        f"(got {epoch})")
    for key in ("epoch", "step", "batch"):
        if meta.get(key, 0) != state[key]:
            problems.append(f"{json_path}: {key}: {meta.get(key, 0)}, but trainer.{key} is "
                            f"{state[key]}")
    if n_batches is not None and state["batch"] >= n_batches:
        problems.append(f"{where}.batch: must be < {n_batches}, the batches of an epoch "
                        f"(got {state['batch']})")
    if state["best_epoch"] > epoch:
        problems.append(f"{where}.best_epoch: must be <= trainer.epoch ({epoch}) "
                        f"(got {state['best_epoch']})")
    early = state["early_stopping"]
    if early is not None and early["best_epoch"] > epoch:
        problems.append(f"{where}.early_stopping.best_epoch: must be <= trainer.epoch "
                        f"({epoch}) (got {early['best_epoch']})")
    if early is not None and early["wait"] > epoch:
        problems.append(f"{where}.early_stopping.wait: must be <= trainer.epoch ({epoch}) "
                        f"(got {early['wait']})")
    lr_problem = _lr_problem(state["lr"], epoch, config)
    if lr_problem:
        problems.append(f"{where}.lr: {lr_problem}")
    schedule = state["schedule"]
    plateau = isinstance(config.training.lr_schedule, PlateauSchedule)
    if schedule is not None and plateau:
        missing = [key for key in ("best", "bad_epochs") if key not in schedule]
        if missing or schedule["bad_epochs"] is None:
            problems.append(f"{where}.schedule: a plateau schedule's state needs best and "
                            "bad_epochs")
    elif schedule:
        problems.append(f"{where}.schedule: the run's schedule keeps no state (got "
                        f"{sorted(schedule)})")
    running = state["running"]
    if running["correct"] > running["values"]:
        problems.append(f"{where}.running.correct: must be <= running.values "
                        f"({running['values']}) (got {running['correct']})")
    if n_batches is not None and running["batches"] > n_batches:
        problems.append(f"{where}.running.batches: must be <= {n_batches}, the batches of an "
                        f"epoch (got {running['batches']})")
    for key in ("abs_err", "sq_err", "y_sum", "y_sq_sum"):
        value = running[key]
        if isinstance(value, list) and len(value) != outputs:
            problems.append(f"{where}.running.{key}: must hold {outputs} values, one per "
                            f"output (got {len(value)})")
    return problems


@contextmanager
def stop_on_signals(trainer: Trainer):
    """SIGINT/SIGTERM ask the trainer to stop after the current batch; a second SIGINT
    stops at once."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received  # only the main thread may install signal handlers
        return

    def handler(signum, frame):
        received.append(signum)
        trainer.stop_requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _announce(session: Session, run: RunRecorder, quiet: bool) -> None:
    """The model summary, in train.log and (unless quiet) on stderr."""
    data = session.data
    rows = {"train": len(data.train), "validation": len(data.validation) if data.validation else 0,
            "test": len(data.test) if data.test else 0}
    text = model_summary(session.trainer.model, layer_names(session.config.model.layers), rows,
                         len(data.preprocessing.columns), threads.describe())
    run.log("model:\n" + text)
    if not quiet:
        print(f"\n{text}\n", file=sys.stderr)  # set apart from the column table and the bars


@computing()
def _fit(session: Session, run: RunRecorder, started: float, previous_seconds: float,
         quiet: bool = True) -> None:
    trainer, data, config = session.trainer, session.data, session.config
    trainer.callback = run
    summary = {"name": config.name, "run_dir": str(run.path), "seed": config.seed,
               "command": command_line(), "versions": versions(),
               "threads": threads.count(),  # the results' last bits depend on it
               "monitor": trainer.monitor,
               "rows": {"train": len(data.train),
                        "validation": len(data.validation) if data.validation else 0,
                        "test": len(data.test) if data.test else 0},
               "blank_targets": data.blank_targets}
    prep = data.preprocessing
    if prep.class_weights is not None:
        summary["class_weight"] = {str(c): w for c, w in zip(prep.classes, prep.class_weights)}
    try:
        with stop_on_signals(trainer) as received:
            try:
                status = trainer.fit(data.train, data.validation)
            except Diverged as exc:
                status, summary["message"] = "diverged", str(exc)
                run.log(f"diverged: {exc}")
            # What is not on disk yet: on divergence the last good epoch (never the bad
            # state), on a signal the state it stopped in (mid-epoch: a resume starts there).
            run.flush(trainer, final=status in ("completed", "early_stopped"),
                      mid_epoch=status == "interrupted" and trainer.batch > 0)
            if status == "interrupted":
                signum = received[0] if received else signal.SIGINT
                summary["signal"] = signal.Signals(signum).name
                run.log(f"interrupted by {signal.Signals(signum).name} at epoch "
                        f"{trainer.epoch + 1}, batch {trainer.batch}; saved checkpoints/last")
    except BaseException as exc:
        # A second Ctrl-C lands mid-step: the state in memory is half-updated, so nothing is
        # saved and the last checkpoint (the last save's) is where a resume starts.
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        summary.update(_outcome(trainer, status, started, previous_seconds))
        summary.update(_saved_best(run))  # a save that failed (a full disk) is no best epoch
        summary["message"] = f"{type(exc).__name__}: {exc}"
        _try_write_summary(run, summary)
        raise
    summary.update(_outcome(trainer, status, started, previous_seconds))
    if not run.wrote_best and os.path.lexists(run.checkpoints / "best.json"):
        summary.update(_saved_best(run))  # resumed without a new best: the one on disk
    if status in ("completed", "early_stopped") and data.test is not None:
        summary["test"] = _test_metrics(session, run)
    run.write_summary(summary)
    run.log(f"{status} after {trainer.epoch} epochs")
    stopper = trainer.early_stopping
    text = ending(summary, stopper.patience if stopper else None,
                  stopper.monitor if stopper else None, table_width(sys.stderr) or 80)
    run.log("ended:\n" + text)
    if not quiet:
        print(text, file=sys.stderr)


def _outcome(trainer: Trainer, status: str, started: float, previous_seconds: float) -> dict:
    return {
        "status": status,
        "epochs_run": trainer.epoch,
        "best_epoch": trainer.best_epoch,
        "best": trainer.best_row,
        "final": trainer.last_row,
        "test": None,
        "wall_seconds": round(previous_seconds + time.time() - started, 3),
    }


def _test_metrics(session: Session, run: RunRecorder) -> dict:
    """Test metrics with the best checkpoint's weights (the final ones if none is saved)."""
    trainer = session.trainer
    try:
        arrays, _ = read_run_checkpoint(
            run.path, "best", weights_check(trainer, run.checkpoints / "best.npz"))
        trainer.model.load_state_dict(model_arrays(arrays))
    except CheckpointError:
        pass
    return evaluate(trainer.model, trainer.loss, session.data.test, trainer.task)


def _saved_best(run: RunRecorder) -> dict:
    """The best epoch and its metrics as the `best` checkpoint on disk records them (none if
    it was never written)."""
    try:
        meta = read_json(run.checkpoints / "best.json")
        return {"best_epoch": meta["epoch"], "best": meta.get("metrics")}
    except (UserError, KeyError, TypeError):
        return {"best_epoch": None, "best": None}


def _try_write_summary(run: RunRecorder, summary: dict) -> None:
    try:
        run.write_summary(summary)
    except Exception:
        pass  # the original error matters more than a summary that could not be written


def warn(notes: list[str], run: Optional[RunRecorder] = None) -> None:
    """Notes about the data, one `warning:` line each on stderr (and in the run's log)."""
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
        if run is not None:
            run.log(f"warning: {note}")


# ---- using a finished run -------------------------------------------------------------------

@dataclass
class Loaded:
    """A trained model and what it needs to read new data the way training did."""

    config: Config
    model: object
    preprocessing: Preprocessing
    meta: dict
    checkpoint: str  # best or last


def load_run(run_dir: Path, which: str, config: Config) -> Loaded:
    """The model of a run's checkpoint, built from its config and checked against it: the
    description (preprocessing, arrays) before any array is read, then the arrays."""
    folder = Path(run_dir) / CHECKPOINTS
    npz_path, json_path = folder / f"{which}.npz", folder / f"{which}.json"
    built: dict = {}

    def check(meta: dict) -> None:
        prep = checked_preprocessing(meta, config, json_path)
        model = _model_for(config, prep, json_path)
        expected = expected_arrays(model, build_optimizer(config, model))
        problems = array_table_problems(meta, expected, npz_path, json_path, complete=False)
        problems += trainer_problems(meta, config, json_path, prep.n_outputs)
        if problems:
            raise CheckpointError(limit(problems, npz_path))
        built.update(prep=prep, model=model)

    arrays, meta = read_run_checkpoint(run_dir, which, check)
    problems = array_value_problems(arrays, npz_path)
    if problems:
        raise CheckpointError(limit(problems, npz_path))
    model = built["model"]
    try:
        model.load_state_dict(model_arrays(arrays))
    except ValueError as exc:
        raise CheckpointError(f"{npz_path}: does not fit the run's config: {exc}") from None
    return Loaded(config, model, built["prep"], meta, which)


def eval_dataset(config: Config, prep: Preprocessing, data: Optional[Data]) -> tuple:
    """(dataset, where it came from, rows left out for a blank target) of the data `nnctl eval`
    uses: `data`, else the run's test file, else its validation file or split."""
    dtype = np.dtype(config.dtype)
    if data is None and not config.data.test and isinstance(config.data.validation, float):
        dataset = load_training_data(config.data, config.task, rng_streams(config.seed)["split"],
                                     dtype).validation
        return dataset, f"{config.data.train} (validation split)", 0
    data = data if data is not None else default_eval_file(config)
    dataset, notes, left_out = load_for_eval(data, prep, dtype)
    warn(notes)
    return dataset, str(data) if isinstance(data, (str, os.PathLike)) else "DataFrame", left_out


def default_eval_file(config: Config) -> Path:
    if config.data.test:
        return Path(config.data.test)
    if isinstance(config.data.validation, str):
        return Path(config.data.validation)
    raise UserError("the run has no test or validation data: name a CSV file to evaluate on")


def checked_threshold(task: str, threshold: Optional[float]) -> float:
    """The probability at or above which a binary output is positive: 0.5 unless given;
    refused for other tasks, whose labels need no threshold."""
    if threshold is None:
        return 0.5
    if task != "binary":
        why = ("a regression run predicts values, not labels" if task == "regression" else
               "a classification run labels each row with its most probable class")
        raise UserError(f"--threshold: only for binary runs (loss binary_crossentropy); {why}")
    if not 0 < threshold < 1:
        raise UserError(f"--threshold: must be greater than 0 and less than 1 (got {threshold})")
    return float(threshold)


def evaluate_run(run_dir: Path, loaded: Loaded, data: Optional[Data],
                 threshold: Optional[float] = None) -> dict:
    """Loss and metrics of a loaded checkpoint on labelled data (by default the run's test
    data, else its validation data)."""
    config, prep = loaded.config, loaded.preprocessing
    threshold = checked_threshold(config.task, threshold)
    dataset, source, left_out = eval_dataset(config, prep, data)
    loss = build_loss(config, prep.class_weights)
    result = {"run_dir": str(run_dir), "checkpoint": loaded.checkpoint, "data": source,
              "rows": len(dataset)}
    if left_out:
        result["blank_targets"] = left_out
    if config.task == "binary":
        result["threshold"] = threshold
    with computing():
        scores = evaluate(loaded.model, loss, dataset, config.task, threshold=threshold)
        probabilities = loaded.model.predict(dataset.x)
    # AUC is undefined (NaN) when the data holds one class: left out, as report() does
    result.update({name: value for name, value in scores.items()
                   if name not in ("auc", "f1") or math.isfinite(value)})
    result.update(report(config.task, prep, probabilities, dataset.y, threshold))
    return result


def report(task: str, prep: Preprocessing, out: np.ndarray, y: np.ndarray,
           threshold: float = 0.5) -> dict:
    """Classification: per-class precision/recall/F1, their unweighted mean over the classes
    that occur in y or in the predictions ("macro", scikit-learn's average="macro" with
    zero_division=0), the balanced accuracy (mean recall over the classes present in y) and the
    confusion matrix, and nnctl.metrics.eval_metrics (ROC AUC, PR AUC, log loss, F1, top-k
    accuracy; a metric undefined on this data, such as AUC with one class, is left out); a
    binary row is positive at or above `threshold`. Regression: MSE, RMSE, MAE and R^2 (per
    target and averaged)."""
    if task == "regression":
        diff = out.astype(np.float64) - y
        mse = (diff ** 2).mean(axis=0)
        total = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
        r2 = np.where(total > 0, 1 - (diff ** 2).sum(axis=0) / np.where(total > 0, total, 1), 0.0)
        per_target = {t: {"mse": float(mse[i]), "rmse": float(np.sqrt(mse[i])),
                          "mae": float(np.abs(diff[:, i]).mean()), "r2": float(r2[i])}
                      for i, t in enumerate(prep.targets)}
        return {"mse": float(mse.mean()), "rmse": float(np.sqrt(mse.mean())),
                "mae": float(np.abs(diff).mean()), "r2": float(r2.mean()),
                "targets": per_target}
    from .metrics import confusion_matrix, eval_metrics, predicted_labels

    scores = {name: value for name, value in eval_metrics(task, y, out, threshold).items()
              if math.isfinite(value)}
    if task == "binary" and not prep.classes:
        return scores  # multi-label: accuracy per value is already in the metrics
    confusion = confusion_matrix(y, predicted_labels(task, out, threshold), len(prep.classes))
    classes = {}
    for i, label in enumerate(prep.classes):
        tp = confusion[i, i]
        precision = tp / confusion[:, i].sum() if confusion[:, i].sum() else 0.0
        recall = tp / confusion[i, :].sum() if confusion[i, :].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        classes[str(label)] = {"precision": float(precision), "recall": float(recall),
                               "f1": float(f1), "support": int(confusion[i, :].sum())}
    rows = list(classes.values())
    in_y = confusion.sum(axis=1) > 0
    seen = in_y | (confusion.sum(axis=0) > 0)  # a class in neither has nothing to average
    macro = {m: float(np.mean([r[m] for r, s in zip(rows, seen) if s])) if seen.any() else 0.0
             for m in ("precision", "recall", "f1")}
    balanced = float(np.mean([r["recall"] for r, s in zip(rows, in_y) if s])) if in_y.any() else 0.0
    return {**scores, "classes": classes, "macro": macro, "balanced_accuracy": balanced,
            "labels": [str(c) for c in prep.classes], "confusion_matrix": confusion.tolist()}


def _inputs(loaded: Loaded, data: Data, keep: Sequence[str] = ()):
    """The model's input array for data, and the frame it was read into."""
    x, frame, notes = load_for_predict(data, loaded.preprocessing, np.dtype(loaded.config.dtype),
                                       list(keep))
    warn(notes)
    return x, frame


def predict(loaded: Loaded, data: Data, keep: list[str] = (),
            threshold: Optional[float] = None) -> "pd.DataFrame":
    """Predictions for every row of data, in order, as the DataFrame `nnctl predict` writes."""
    import pandas as pd

    prep = loaded.preprocessing
    threshold = checked_threshold(prep.task, threshold)
    x, frame = _inputs(loaded, data, keep)
    with computing():
        out = loaded.model.predict(x).astype(np.float64)
    # Predictions are named pred_<target>, so `--keep <target>` can sit beside them.
    columns: dict[str, object] = {name: frame[name].to_numpy() for name in keep}
    if prep.task == "classification":
        columns[f"pred_{prep.targets[0]}"] = np.asarray(prep.classes, dtype=object)[out.argmax(axis=1)]
        for i, label in enumerate(prep.classes):
            columns[f"prob_{label}"] = out[:, i]
    elif prep.task == "binary" and prep.classes:
        p = out[:, 0]
        columns[f"pred_{prep.targets[0]}"] = np.asarray(prep.classes, dtype=object)[(p >= threshold).astype(int)]
        columns[f"prob_{prep.classes[0]}"] = 1 - p
        columns[f"prob_{prep.classes[1]}"] = p
    elif prep.task == "binary":
        for i, target in enumerate(prep.targets):
            columns[f"pred_{target}"] = (out[:, i] >= threshold).astype(int)
            columns[f"prob_{target}"] = out[:, i]
    else:
        for i, target in enumerate(prep.targets):
            columns[f"pred_{target}"] = out[:, i]
    return pd.DataFrame(columns)
