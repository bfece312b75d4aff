"""From a validated config (and the data's shape) to the objects that train: random streams,
model, optimizer, schedule, early stopping. Checks the config against the data first."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .config import Config, DenseSpec, PlateauSchedule, label_text, monitor_mode, source_of
from .data import Preprocessing
from .data.columns import FALSE_WORDS, TRUE_WORDS
from .errors import ConfigError
from .nn.losses import Loss, get_loss
from .nn.model import Sequential
from .nn.optim import OPTIMIZERS, Optimizer
from .nn.schedules import SCHEDULES, Schedule
from .trainer import EarlyStopping

STREAMS = ("init", "split", "shuffle", "dropout")


def rng_streams(seed: int) -> dict[str, np.random.Generator]:
    """Independent generators from one seed, so that e.g. changing dropout does not change
    the validation split."""
    children = np.random.SeedSequence(seed).spawn(len(STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(STREAMS, children)}


def input_shape(prep: Preprocessing) -> tuple[int, ...]:
    return tuple(prep.sequence) if prep.sequence else (prep.width,)


def check_columns(config: Config, available: list[str]) -> None:
    """`data.columns` may only name columns of the training file."""
    source = source_of(config)
    shown = ", ".join(available[:20]) + (" ..." if len(available) > 20 else "")
    problems = [source.problem(f"data.columns.{name}",
                               f"no column {name!r} in {config.data.train} (columns: {shown})")
                for name in config.data.columns if name not in available]
    if problems:
        raise ConfigError(problems)


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
            f"the last dense layer has {last.units} units but {wanted}",
            because=["data.target", "data.train", "loss"]))
    sequence = config.data.sequence
    if sequence and sequence.steps * sequence.features != prep.width:
        problems.append(source.problem(
            "data.sequence",
            f"steps x features = {sequence.steps} x {sequence.features} = "
            f"{sequence.steps * sequence.features}, but there are {prep.width} "
            f"feature columns", because=["data.features", "data.train"]))
    weights = config.training.class_weight
    if weights is not None:
        if not prep.classes:
            problems.append(source.problem(
                "training.class_weight", "needs one class label target and the loss "
                "categorical_crossentropy or binary_crossentropy"))
        elif isinstance(weights, dict):
            problems += [source.problem(
                f"training.class_weight.{label}",
                f"no class {label!r} in {prep.targets[0]!r} (classes: "
                f"{', '.join(map(str, prep.classes))})")
                for label in weights if named_class(label, prep.classes) is None]
    if problems:
        raise ConfigError(problems)


# Arrays per parameter besides its value and gradient: the optimizer's state buffers.
OPTIMIZER_STATE = {"sgd": 0, "momentum": 1, "adagrad": 1, "rmsprop": 1, "adadelta": 2, "adam": 2}
# Between timed saves the run keeps up to three states in memory (the newest epoch, the best
# and early stopping's best: weights and optimizer state each, runs.RunRecorder), and a save
# writes one more copy (the npz).
HELD_STATES = 3
PREDICT_ROWS = 1024    # rows the model runs at a time in eval and predict


def check_memory(config: Config, prep: Preprocessing, available: Optional[int] = None) -> None:
    """Refuse a model that cannot fit in memory before anything is allocated: its parameters
    with their gradients, optimizer state and checkpoint copies, and a batch's activations,
    against the memory available now (MemAvailable, or the address-space limit if lower)."""
    itemsize = np.dtype(config.dtype).itemsize
    steps = prep.sequence[0] if prep.sequence else 1
    width = prep.sequence[1] if prep.sequence else len(prep.inputs)
    params = 0
    for table in prep.embeddings:
        params += table["categories"] * table["dim"]
        width += table["dim"]
    largest, largest_at, units_total = 0, 0, 0
    for i, layer in enumerate(config.model.layers):
        units = getattr(layer, "units", None)
        if units is None:
            continue
        count = width * units + units + (units * units if layer.type == "rnn" else 0)
        params += count
        units_total += units
        if count > largest:
            largest, largest_at = count, i
        width = units
    state = OPTIMIZER_STATE.get(config.optimizer.type, 2)
    copies = 2 + state + HELD_STATES * (1 + state) + 1
    rows = max(config.training.batch_size, PREDICT_ROWS)
    need = (params * copies + 3 * rows * steps * units_total) * itemsize  # z, y and dy
    available = available if available is not None else available_memory()
    if available is not None and need > available:
        raise ConfigError(source_of(config).problem(
            f"model.layers.{largest_at}.units",
            f"the model needs about {_size(need)} of memory ({params:,} parameters, with their "
            f"gradients and optimizer state, and a batch's activations); {_size(available)} "
            "is available"))


def available_memory() -> Optional[int]:
    """Bytes this process can still allocate: the kernel's MemAvailable, capped by an
    address-space limit (ulimit -v) if one is set; None where neither can be read."""
    import resource

    found = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        found = min(found, soft) if found is not None else soft
    return found


def _size(count: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if count < 1024 or unit == "TB":
            return f"{count:.1f} {unit}" if unit != "bytes" else f"{count} bytes"
        count /= 1024
    return ""


def build_model(config: Config, prep: Preprocessing, rng: np.random.Generator) -> Sequential:
    specs = [layer.model_dump() for layer in config.model.layers]
    return Sequential.from_specs(specs, input_shape(prep), rng, np.dtype(config.dtype),
                                 embeddings=prep.embeddings, outputs=prep.target_scale)


def class_weights(config: Config, prep: Preprocessing, counts: list[int]) -> Optional[list[float]]:
    """One weight per class, in prep.classes order: `balanced` is n / (classes * count) over
    the training split, as scikit-learn's; a mapping gives the classes it names their weight
    and the others 1."""
    spec = config.training.class_weight
    if spec is None:
        return None
    if spec == "balanced":
        n, k = sum(counts), len(counts)
        return [n / (k * c) if c else 1.0 for c in counts]
    weights = {named_class(label, prep.classes): weight for label, weight in spec.items()}
    return [weights.get(label_text(c), 1.0) for c in prep.classes]


def named_class(label: str, classes: list) -> Optional[str]:
    """The class (as text) that a class_weight key names, or None. YAML reads an unquoted
    `yes:` or `no:` key as true or false, so True and False name the one yes-like or no-like
    class when there is one."""
    texts = [label_text(c) for c in classes]
    if label in texts:
        return label
    words = {"True": TRUE_WORDS, "False": FALSE_WORDS}.get(label, set())
    matches = [text for text in texts if text.strip().lower() in words]
    return matches[0] if len(matches) == 1 else None


def build_loss(config: Config, weights: Optional[list[float]]) -> Loss:
    """The loss, weighted per class where asked: categorical cross-entropy takes the weights
    (PyTorch's `weight`), binary cross-entropy on one sigmoid unit their ratio (PyTorch's
    `pos_weight` = weight of the positive class / weight of the negative one)."""
    if weights is None:
        return get_loss(config.loss)
    if config.loss == "binary_crossentropy":
        return get_loss(config.loss, pos_weight=weights[1] / weights[0])
    return get_loss(config.loss, class_weight=np.asarray(weights, dtype=np.float64))


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
