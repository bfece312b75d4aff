"""The config schema (Pydantic v2) and `load_config(path, overrides) -> Config`.

Every model forbids unknown keys. Errors are collected, not raised one at a time, and each
names the file, the YAML line and the dotted path: `configs/x.yaml:12 optimizer.lr: must be
greater than 0 (got -1)`.
"""

from __future__ import annotations

import copy
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import (
    BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator,
)

from .errors import ConfigError

Activation = Literal["linear", "sigmoid", "relu", "tanh", "softmax"]
RecurrentActivation = Literal["linear", "sigmoid", "relu", "tanh"]
DenseInit = Literal["xavier_uniform", "xavier_normal", "he_uniform", "he_normal"]
RecurrentInit = Literal["xavier_uniform", "xavier_normal", "he_uniform", "he_normal", "orthogonal"]
LossName = Literal["mae", "mse", "binary_crossentropy", "categorical_crossentropy"]
Mode = Literal["auto", "min", "max"]
Unit = Annotated[float, Field(ge=0.0, lt=1.0)]


class Strict(BaseModel):
    # allow_inf_nan=False: .inf or .nan anywhere (a learning rate, a penalty, a decay) can
    # only make training diverge, so it is a config error.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, data: Any) -> Any:
        """YAML's true/false are not numbers (pydantic would read `epochs: true` as 1)."""
        if isinstance(data, dict):
            for name, value in data.items():
                field = cls.model_fields.get(name) if isinstance(name, str) else None
                if isinstance(value, bool) and field is not None and _numeric(field.annotation):
                    raise ValueError(f"{name}: must be a number, not {str(value).lower()}")
        return data


def _numeric(annotation: Any) -> bool:
    """Whether a field holds an int or a float (alone, or Optional)."""
    if annotation in (int, float):
        return True
    args = typing.get_args(annotation)
    return typing.get_origin(annotation) is Union and bool(args) and \
        all(a in (int, float, type(None)) for a in args) and any(a in (int, float) for a in args)


# ---- model --------------------------------------------------------------------------------

MAX_PENALTY = 1e6  # an L1/L2 strength beyond this overflows the penalty of ordinary weights

class DenseSpec(Strict):
    type: Literal["dense"]
    units: int = Field(gt=0)
    activation: Activation = "linear"
    init: Optional[DenseInit] = None
    l1: float = Field(0.0, ge=0, le=MAX_PENALTY)
    l2: float = Field(0.0, ge=0, le=MAX_PENALTY)


class DropoutSpec(Strict):
    type: Literal["dropout"]
    rate: float = Field(ge=0.0, lt=1.0)


class RNNSpec(Strict):
    type: Literal["rnn"]
    units: int = Field(gt=0)
    activation: RecurrentActivation = "tanh"
    return_sequences: bool = False
    init: Optional[DenseInit] = None
    recurrent_init: RecurrentInit = "orthogonal"
    l1: float = Field(0.0, ge=0, le=MAX_PENALTY)
    l2: float = Field(0.0, ge=0, le=MAX_PENALTY)


LayerSpec = Annotated[Union[DenseSpec, DropoutSpec, RNNSpec], Field(discriminator="type")]


class ModelSpec(Strict):
    layers: list[LayerSpec] = Field(min_length=1)


# ---- optimizers (defaults as in PyTorch) ---------------------------------------------------

class SGDSpec(Strict):
    type: Literal["sgd"]
    lr: float = Field(0.001, gt=0)
    momentum: float = Field(0.0, ge=0)
    nesterov: bool = False

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self):
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov: true needs a momentum greater than 0")
        return self


class MomentumSpec(Strict):
    type: Literal["momentum"]
    lr: float = Field(0.01, gt=0)
    beta: Unit = 0.9


class AdagradSpec(Strict):
    type: Literal["adagrad"]
    lr: float = Field(0.01, gt=0)
    eps: float = Field(1e-10, ge=0)


class AdadeltaSpec(Strict):
    type: Literal["adadelta"]
    lr: float = Field(1.0, gt=0)
    rho: float = Field(0.9, ge=0, le=1)
    eps: float = Field(1e-6, ge=0)


class RMSpropSpec(Strict):
    type: Literal["rmsprop"]
    lr: float = Field(0.01, gt=0)
    rho: Unit = 0.99
    eps: float = Field(1e-8, ge=0)


class AdamSpec(Strict):
    type: Literal["adam"]
    lr: float = Field(0.001, gt=0)
    beta1: Unit = 0.9
    beta2: Unit = 0.999
    eps: float = Field(1e-8, ge=0)


OptimizerSpec = Annotated[
    Union[SGDSpec, MomentumSpec, AdagradSpec, AdadeltaSpec, RMSpropSpec, AdamSpec],
    Field(discriminator="type"),
]


# ---- learning-rate schedules -----------------------------------------------------------------

class StepSchedule(Strict):
    type: Literal["step"]
    step_size: int = Field(gt=0)
    gamma: float = Field(0.1, gt=0)


class ExponentialSchedule(Strict):
    type: Literal["exponential"]
    gamma: float = Field(gt=0)


class CosineSchedule(Strict):
    type: Literal["cosine"]
    min_lr: float = Field(0.0, ge=0)


class PlateauSchedule(Strict):
    type: Literal["plateau"]
    monitor: Optional[str] = None
    mode: Mode = "auto"
    factor: float = Field(0.1, gt=0, lt=1)
    patience: int = Field(10, ge=0)
    min_delta: float = Field(0.0, ge=0)
    min_lr: float = Field(0.0, ge=0)


ScheduleSpec = Annotated[
    Union[StepSchedule, ExponentialSchedule, CosineSchedule, PlateauSchedule],
    Field(discriminator="type"),
]


# ---- training ----------------------------------------------------------------------------

class EarlyStopping(Strict):
    monitor: Optional[str] = None
    mode: Mode = "auto"
    patience: int = Field(10, ge=0)
    min_delta: float = Field(0.0, ge=0)
    restore_best: bool = True


class CheckpointSpec(Strict):
    monitor: Optional[str] = None
    mode: Mode = "auto"
    keep_last: int = Field(3, ge=0)
    # Checkpoints are written when this much training time has passed since the last save
    # (and when training stops); 0 = every epoch. As Lightning's train_time_interval.
    every_seconds: float = Field(10.0, ge=0)


class TrainingSpec(Strict):
    epochs: int = Field(100, gt=0)
    batch_size: int = Field(32, gt=0)
    shuffle: bool = True
    clip_norm: Optional[float] = Field(None, gt=0)
    clip_value: Optional[float] = Field(None, gt=0)
    early_stopping: Optional[EarlyStopping] = None
    lr_schedule: Optional[ScheduleSpec] = None
    checkpoint: CheckpointSpec = CheckpointSpec()
    class_weight: Union[Literal["balanced"], dict[str, float], None] = None

    @field_validator("class_weight", mode="before")
    @classmethod
    def _balanced_or_weights(cls, value):
        """`balanced` (n / (classes * count), as scikit-learn) or {label: weight > 0}; labels
        are kept as text, as the data layer compares them."""
        if value is None or value == "balanced":
            return value
        if isinstance(value, dict) and value:
            bad = {k: v for k, v in value.items() if isinstance(v, bool)
                   or not isinstance(v, (int, float)) or not v > 0}
            if bad:
                label, weight = next(iter(bad.items()))
                raise ValueError(f"the weight of {label!r} must be a number greater than 0 "
                                 f"(got {weight!r})")
            return {label_text(k): float(v) for k, v in value.items()}
        raise ValueError(f"must be 'balanced' or a mapping of class labels to weights "
                         f"(got {value!r})")


# ---- data --------------------------------------------------------------------------------

class SequenceSpec(Strict):
    steps: int = Field(gt=0)
    features: int = Field(gt=0)


ColumnType = Literal["numeric", "categorical", "binary", "datetime", "ignore"]


class ColumnSpec(Strict):
    """How one feature column is read; `data.columns: {city: categorical}` is short for
    `{city: {type: categorical}}`. The encoding settings belong to categorical columns."""

    type: ColumnType
    encoding: Literal["one_hot", "embedding"] = "one_hot"
    dim: Optional[int] = Field(None, gt=0)              # embedding width (default: a rule)
    max_categories: Optional[int] = Field(None, gt=0)   # keep the most frequent, fold the rest
    min_frequency: Optional[int] = Field(None, gt=0)    # rows a category needs to be kept
    l1: float = Field(0.0, ge=0)                        # penalties on the embedding table
    l2: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _encoding_needs_categorical(self):
        # Judged by value, not by the keys given: a resolved config.yaml lists every default.
        given = [key for key, default in (("encoding", "one_hot"), ("dim", None),
                                          ("max_categories", None), ("min_frequency", None),
                                          ("l1", 0.0), ("l2", 0.0))
                 if getattr(self, key) != default]
        if self.type != "categorical" and given:
            raise ValueError(f"{', '.join(given)}: only for categorical columns "
                             f"(this one is {self.type})")
        embedding_only = [key for key in given if key in ("dim", "l1", "l2")]
        if self.type == "categorical" and self.encoding != "embedding" and embedding_only:
            raise ValueError(f"{', '.join(embedding_only)}: only with encoding: embedding")
        return self

    def compact(self) -> Union[str, dict]:
        """The shortest form that reads back the same: `categorical` or the non-defaults."""
        data = self.model_dump(exclude_defaults=True)
        data["type"] = self.type
        return self.type if len(data) == 1 else data


class DataSpec(Strict):
    train: str
    validation: Union[float, str, None] = 0.2
    test: Optional[str] = None
    target: Union[str, list[str]]
    features: Optional[list[str]] = None
    scale: Literal["standard", "minmax", "none"] = "standard"
    scale_target: Literal["standard", "none"] = "none"  # regression: learn standardized targets
    sequence: Optional[SequenceSpec] = None
    columns: dict[str, ColumnSpec] = {}
    missing: Literal["median", "mean", "zero", "error"] = "median"
    missing_indicators: bool = True

    @field_validator("columns", mode="before")
    @classmethod
    def _short_forms(cls, value):
        if isinstance(value, dict):
            return {k: {"type": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("validation", mode="before")
    @classmethod
    def _fraction_or_path(cls, value):
        if value is None:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not 0.0 < value < 1.0:
                raise ValueError(f"a fraction must be between 0 and 1 exclusive (got {value:g})")
            return float(value)
        if isinstance(value, str) and value.strip():
            return value
        raise ValueError(f"must be a fraction, a CSV path or null (got {value!r})")

    @field_validator("target", mode="before")
    @classmethod
    def _column_names(cls, value):
        if isinstance(value, str) and value:
            return value
        if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
            if len(set(value)) != len(value):
                raise ValueError("names a column twice")
            return value
        raise ValueError(f"must be a column name or a list of column names (got {value!r})")

    @property
    def targets(self) -> list[str]:
        return [self.target] if isinstance(self.target, str) else list(self.target)


# ---- the whole config ----------------------------------------------------------------------

class Config(Strict):
    name: Optional[str] = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100)
    seed: int = Field(0, ge=0)
    dtype: Literal["float32", "float64"] = "float32"
    data: DataSpec
    model: ModelSpec
    loss: LossName
    optimizer: OptimizerSpec = AdamSpec(type="adam")
    training: TrainingSpec = TrainingSpec()

    _source: Optional["Source"] = PrivateAttr(default=None)

    @property
    def task(self) -> str:
        """classification (softmax classes), binary (sigmoid outputs) or regression."""
        return {"categorical_crossentropy": "classification",
                "binary_crossentropy": "binary"}.get(self.loss, "regression")

    def to_yaml(self) -> str:
        data = self.model_dump(mode="json")
        data["data"]["columns"] = {name: spec.compact()
                                   for name, spec in self.data.columns.items()}
        return yaml.safe_dump(data, sort_keys=False)


def label_text(value: Any) -> str:
    """Labels compare as text, with integral floats as integers (1.0 and 1 are one class)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def metric_names(task: str, split: str = "val") -> list[str]:
    """The per-epoch metrics besides the loss. ROC AUC and F1 need every output of the
    split at once, so only the validation (and test) pass computes them, not the training
    batches."""
    if task == "regression":
        return ["mae", "r2"]
    return ["accuracy"] if split == "train" else ["accuracy", "auc", "f1"]


def recorded_metrics(task: str, splits: list[str]) -> list[str]:
    """The metrics a run records for these splits: `train_loss`, `val_auc`, `test_r2`, ..."""
    return [f"{split}_{m}" for split in splits for m in ["loss"] + metric_names(task, split)]


def monitor_mode(monitor: str, mode: str) -> str:
    """`auto` means maximize accuracy, AUC, F1 and R^2, minimize losses and errors."""
    if mode != "auto":
        return mode
    return "max" if monitor.endswith(("accuracy", "auc", "f1", "r2")) else "min"


# ---- locating problems in the YAML -------------------------------------------------------------

@dataclass
class Source:
    """Where a config came from, to name the line of each problem."""

    path: Path
    root: Any = None  # the composed YAML node tree
    # dotted path -> "--set KEY=VALUE" (or a sweep file's line), in the order last applied
    overrides: dict[str, str] = field(default_factory=dict)

    def locate(self, loc: tuple, tagged: bool = True) -> tuple[str, Optional[int], bool]:
        """Map an error location to (dotted path, YAML line, whether the whole path is in the
        file). The line is that of the deepest part found in the file. `tagged`: the location
        is Pydantic's, with union tags in it ('optimizer', 'adam', 'lr')."""
        node, parts = self.root, []
        line = self.root.start_mark.line + 1 if self.root is not None else None
        found = True
        for part in strip_union_tags(loc) if tagged else loc:
            child = _child(node, part)
            if child is None:
                found = False
            else:
                node = child
                line = child.start_mark.line + 1
            parts.append(str(part))
        return ".".join(parts), line, found

    def where(self, dotted: str, line: Optional[int], found: bool = True,
              because: Iterable[str] = ()) -> str:
        """`file:line dotted`, or the `--set` that put the value there (`--set KEY=VALUE:
        dotted` when it set a mapping holding it). A value the file holds, found wrong because
        of a `--set` (one under it, the `type` of the mapping holding it, or one of the paths
        `because` names), is blamed on that `--set` first: `--set KEY=VALUE: file:line dotted`."""
        applied = list(self.overrides.items())[::-1]  # the last one applied decides
        for key, assignment in applied:
            if dotted == key:
                return assignment
            if _inside(dotted, key) or (not found and _inside(key, dotted)):
                return f"{assignment}: {dotted}"
        prefix = f"{self.path}:{line}" if line else f"{self.path}"
        place = f"{prefix} {dotted}" if dotted else prefix
        for key, assignment in applied:
            holder = key[:-len(".type")] if key.endswith(".type") else None
            if _inside(key, dotted) or (holder and _inside(dotted, holder)) or any(
                    path == key or _inside(path, key) or _inside(key, path) for path in because):
                return f"{assignment}: {place}"
        return place

    def problem(self, dotted: str, message: str, because: Iterable[str] = ()) -> str:
        """A problem at a dotted path found after validation (e.g. a check against the data);
        `because`: the other paths whose values make it a problem (see `where`)."""
        loc = tuple(int(p) if p.isascii() and p.isdigit() else p for p in dotted.split("."))
        _, line, found = self.locate(loc, tagged=False)
        return f"{self.where(dotted, line, found, because)}: {message}"


def _inside(path: str, outer: str) -> bool:
    """Whether dotted `path` lies strictly inside `outer` (model.layers.0.units in model)."""
    return path.startswith(outer + ".")


def _child(node, part):
    if isinstance(node, yaml.MappingNode):  # keys are text in the YAML: `2:` is part 2
        for key, value in node.value:
            if key.value == str(part):
                return value
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]
    return None


def _union_members(annotated) -> dict[str, type[BaseModel]]:
    union = typing.get_args(annotated)[0]
    return {typing.get_args(member.model_fields["type"].annotation)[0]: member
            for member in typing.get_args(union)}


# Pydantic puts a discriminated union's tag into error locations ('optimizer', 'adam', 'lr');
# the YAML has no such level. The tag follows the field that holds the union, once: in
# ('optimizer', 'adam', 'momentum') the key 'momentum' is not a tag, though it names an optimizer.
_TAGS = {
    ("optimizer",): _union_members(OptimizerSpec),
    ("training", "lr_schedule"): _union_members(ScheduleSpec),
    ("model", "layers", int): _union_members(LayerSpec),
}
_KINDS = {("optimizer",): "optimizer", ("training", "lr_schedule"): "schedule",
          ("model", "layers", int): "layer"}


def _shape(path: list) -> tuple:
    return tuple(int if isinstance(p, int) else p for p in path)


def strip_union_tags(loc: tuple) -> tuple:
    out: list = []
    tagged = None  # the union position whose tag was taken
    for part in loc:
        shape = _shape(out)
        if isinstance(part, str) and part in _TAGS.get(shape, ()) and tagged != shape:
            tagged = shape
            continue
        out.append(part)
    return tuple(out)


def describe_error(error: dict) -> str:
    kind, message = error["type"], error["msg"]
    given = error.get("input")
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "union_tag_invalid":
        expected = error["ctx"]["expected_tags"].replace("'", "")
        return f"unknown type {error['ctx']['tag']!r}; expected one of: {expected}"
    if kind == "union_tag_not_found":
        return "needs a 'type' key"
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if message.startswith("Input should be"):
        message = "must be" + message[len("Input should be"):]
    elif message.startswith("List should have"):
        message = "must have" + message[len("List should have"):]
    elif message.startswith("String should"):
        message = "must" + message[len("String should"):]
    if given is not None and not isinstance(given, (dict, list)) and "(got" not in message:
        message += f" (got {given!r})" if isinstance(given, str) else f" (got {given})"
    return message[0].lower() + message[1:]


def suggest(loc: tuple, known: set[str]) -> str:
    close = difflib.get_close_matches(str(loc[-1]), sorted(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _model_at(loc: tuple) -> tuple[Any, Optional[str], list]:
    """(model class, union tag or None, dotted parts without tags) of the mapping that holds
    `loc[-1]`; `loc` is Pydantic's, union tags included: they say which model a union holds.
    The class is None where no model holds it."""
    model: Any = Config
    path: list = []
    tag, tagged = None, None
    for part in loc[:-1]:
        shape = _shape(path)
        members = _TAGS.get(shape, {})
        if isinstance(part, str) and part in members and tagged != shape:
            model, tag, tagged = members[part], part, shape
            continue
        path.append(part)
        tag = None
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        model = _model_in(field.annotation) if field else None
        if model is None:
            return None, None, path
    return model, tag, path


def unknown_key(loc: tuple, given: Any) -> str:
    """What to say of a key the mapping at `loc[:-1]` does not have: the closest key it has,
    else the keys it has; inside a union (a layer, the optimizer, a schedule), which other
    types have that key, or that the key is a type of its own."""
    key = str(loc[-1])
    model, tag, path = _model_at(loc)
    if model is None:
        return "unknown key"
    keys = [name for name in model.model_fields if not (tag and name == "type")]
    close = _closest(key, keys)
    holder = ".".join(map(str, path)) or "the config"
    if close:
        message = f"unknown key; did you mean {close!r}?"
    else:
        kind = f" (type: {tag})" if tag else ""
        message = f"unknown key; {holder}{kind} has no {key!r}, its keys are {', '.join(keys)}"
    if tag is None:
        return message
    noun, members = _KINDS[_shape(path)], _TAGS[_shape(path)]
    hints = []
    others = [name for name, member in members.items()
              if name != tag and key in member.model_fields]
    if others:
        types = f"{noun} type{'s' if len(others) > 1 else ''} {' and '.join(others)}"
        needed = "".join(f", {name}: ..." for name, spec in members[others[0]].model_fields.items()
                         if spec.is_required() and name not in ("type", key))
        hints.append(f"{types} {'has' if len(others) == 1 else 'have'} {key!r}: "
                     f"{{type: {others[0]}{needed}, {key}: {_flow(given)}}}")
    if key in members and key != tag:
        fields = [name for name in members[key].model_fields if name != "type"]
        required = [name for name in fields if members[key].model_fields[name].is_required()]
        if noun == "layer":
            values = [_flow(given) if len(required) == 1 and not isinstance(given, (dict, list))
                      else "..." for _ in required]
            setting = "".join(f", {name}: {value}" for name, value in zip(required, values))
            hints.append(f"for {key}, add a layer {{type: {key}{setting}}}")
        else:
            article = "an" if noun[0] in "aeiou" else "a"
            hints.append(f"{key} is {article} {noun} type of its own (keys: {', '.join(fields)})")
    if hints and close:
        return f"{message} ({'; '.join(hints)})"
    return "; ".join([message, *hints])


def _closest(key: str, keys: list[str]) -> Optional[str]:
    """The key most like `key` (difflib's 0.6 cutoff), the first in `keys` on a tie."""
    scored = [(difflib.SequenceMatcher(None, key, name).ratio(), -i, name)
              for i, name in enumerate(keys)]
    best = max(scored, default=None)
    return best[2] if best and best[0] >= 0.6 else None


def _flow(value: Any) -> str:
    """A value as YAML writes it on one line."""
    text = yaml.safe_dump(value, default_flow_style=True, width=2 ** 31 - 1)
    return text.strip().removesuffix("...").strip()


def _model_in(annotation) -> Any:
    """The first BaseModel class inside an annotation such as Optional[list[X]]."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def format_errors(exc: ValidationError, source: Source) -> list[str]:
    problems = []
    for error in exc.errors():
        raw_loc = tuple(error["loc"])
        dotted, line, found = source.locate(raw_loc)
        message = describe_error(error)
        if error["type"] == "extra_forbidden":
            message = unknown_key(raw_loc, error.get("input"))
        problem = f"{source.where(dotted, line, found)}: {message}"
        if problem not in problems:
            problems.append(problem)
    return problems


# ---- loading ------------------------------------------------------------------------------

def parse_override(assignment: str) -> tuple[list[str | int], Any]:
    """'model.layers.0.units=128' -> (['model', 'layers', 0, 'units'], 128)."""
    key, sep, text = assignment.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {assignment}: expected KEY=VALUE with a dotted KEY")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except RecursionError:
        raise ConfigError(f"--set {assignment}: the value is nested too deeply") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {assignment}: the value is not valid YAML ({_short(exc)})")
    return dotted_path(key), value


def dotted_path(key: str) -> list[str | int]:
    return [int(p) if p.isascii() and p.isdigit() else p for p in key.split(".")]


def apply_override(raw: dict, path: list[str | int], value: Any, label: str) -> None:
    """Set the value at a dotted path; `label` names the override in errors (`--set k=v`)."""
    node: Any = raw
    for depth, part in enumerate(path[:-1]):
        here = ".".join(map(str, path[:depth + 1]))
        if isinstance(node, list):
            if not isinstance(part, int) or part >= len(node):
                raise ConfigError(f"{label}: {here} is not an index into a list of {len(node)}")
            node = node[part]
        elif isinstance(node, dict):
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
        else:
            raise ConfigError(f"{label}: {here} is not a mapping or a list")
    last = path[-1]
    if isinstance(node, list):
        if not isinstance(last, int) or last > len(node):
            raise ConfigError(f"{label}: no index {last} in a list of {len(node)}")
        if last == len(node):
            node.append(value)
        else:
            node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"{label}: cannot set a key inside a {type(node).__name__}")


def _override(item: str | tuple) -> tuple[str, list[str | int], Any, str]:
    """(dotted key, path, value, label for errors) of one override: a `KEY=VALUE` string from
    the command line, a (dotted key, value) pair from Python's `overrides` mapping, or a
    (dotted key, value, label) triple from a caller that names the override itself (a sweep
    file's line)."""
    if isinstance(item, str):
        path, value = parse_override(item)
        return item.partition("=")[0].strip(), path, value, f"--set {item}"
    key, value, label = item if len(item) == 3 else (*item, f"overrides[{item[0]!r}]")
    if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"{label}: expected a dotted key such as 'optimizer.lr'")
    return key, dotted_path(key), value, label


def _short(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    return f"line {mark.line + 1}: {problem}" if mark else problem


def read_yaml(path: Path) -> tuple[Any, Any]:
    """Return (data, node tree) of a YAML file, or raise ConfigError naming the line. The file
    must be a regular one of bounded size; a key given twice in a mapping, and aliases that
    expand to more than MAX_NODES values, are errors."""
    from .files import read_text

    text = read_text(path, error=ConfigError)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        problems = _duplicate_keys(path, root) + _too_large(path, root)
        if problems:
            raise ConfigError(problems)
        data = yaml.safe_load(text)
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to read") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}{line}: not valid YAML ({problem})") from None
    return data, root


MAX_NODES = 100_000  # values in a config or sweep file, aliases expanded


def _duplicate_keys(path: Path, root) -> list[str]:
    """A key given twice in one mapping (YAML keeps the last one silently)."""
    problems, stack, seen_nodes = [], [root], set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key, value in node.value:
                name = str(key.value)
                if name in first:
                    problems.append(f"{path}:{key.start_mark.line + 1} {name}: given twice in one "
                                    f"mapping (first on line {first[name]})")
                else:
                    first[name] = key.start_mark.line + 1
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return problems


def _too_large(path: Path, root) -> list[str]:
    """Aliases can make a small file expand to billions of values ("billion laughs"): count
    the values the file stands for, aliases expanded, and stop at MAX_NODES."""
    count, stack = 0, [root]
    while stack:
        node = stack.pop()
        count += 1
        if count > MAX_NODES:
            return [f"{path}: expands to more than {MAX_NODES:,} values (through aliases?); "
                    "not a config"]
        if isinstance(node, yaml.MappingNode):
            stack.extend(value for _, value in node.value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return []


def load_config(config: str | Path | Mapping[str, Any],
                overrides: Iterable[str] | Mapping[str, Any] = ()) -> Config:
    """Read, override, validate and resolve a config: a YAML file, or a mapping of the same
    keys (relative paths in it resolve against the current folder).

    Relative data paths written in the file resolve against the file's folder; those given by
    overrides (`--set data.train=...`, Python's `overrides`) against the current folder, as
    any path typed on a command line. `name` defaults to the file's stem; monitors default to
    val_loss with validation data, else train_loss.
    """
    if isinstance(config, Mapping):
        path, root, base = Path("config"), None, Path.cwd()
        raw = copy.deepcopy(dict(config))
    else:
        path = Path(config)
        raw, root = read_yaml(path)
        base = path.parent
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}:1: the config must be a mapping of keys to values")
    source = Source(path, root)
    _resolve_paths(raw, base)  # the file's own paths, before overrides replace any
    problems = []
    for item in overrides.items() if isinstance(overrides, Mapping) else overrides:
        try:
            key, dotted, value, label = _override(item)
            apply_override(raw, dotted, value, label)
            source.overrides.pop(key, None)  # kept in the order last applied
            source.overrides[key] = label
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems)

    if source.overrides:
        _resolve_paths(raw, Path.cwd())  # paths the overrides gave, as typed in this folder
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, source)) from None
    config._source = source
    if config.name is None:
        config.name = safe_name(path.stem)
    _fill_monitors(config)
    problems = check_structure(config)
    if problems:
        raise ConfigError(problems)
    return config


def source_of(config: Config) -> Source:
    return config._source or Source(Path("config"))


def _resolve_paths(raw: dict, base: Path) -> None:
    """Make the data paths absolute (those already so stay as they are), so the resolved
    config a run saves finds the same files from any folder."""
    data = raw.get("data")
    if not isinstance(data, dict):
        return
    for key in ("train", "validation", "test"):
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            data[key] = str((base / value).resolve())


def safe_name(stem: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in stem).lstrip("._-")
    return cleaned or "run"


def monitors(config: Config) -> list[tuple[str, str]]:
    """(dotted path, metric) of every monitor the config has: the best checkpoint's, early
    stopping's, the plateau schedule's."""
    training = config.training
    found = [("training.checkpoint.monitor", training.checkpoint.monitor)]
    if training.early_stopping:
        found.append(("training.early_stopping.monitor", training.early_stopping.monitor))
    if isinstance(training.lr_schedule, PlateauSchedule):
        found.append(("training.lr_schedule.monitor", training.lr_schedule.monitor))
    return found


def _fill_monitors(config: Config) -> None:
    default = "val_loss" if config.data.validation is not None else "train_loss"
    training = config.training
    if training.early_stopping and training.early_stopping.monitor is None:
        training.early_stopping.monitor = default
    if training.checkpoint.monitor is None:
        training.checkpoint.monitor = default
    schedule = training.lr_schedule
    if isinstance(schedule, PlateauSchedule) and schedule.monitor is None:
        schedule.monitor = default


def check_structure(config: Config) -> list[str]:
    """Checks that need the whole config but not the data."""
    source = source_of(config)
    problems = []
    layers = config.model.layers
    last_index = len(layers) - 1
    last = layers[-1]
    if not isinstance(last, DenseSpec):
        problems.append(source.problem(
            f"model.layers.{last_index}.type",
            f"the last layer must be dense (got {last.type})"))
    else:
        required = {"categorical_crossentropy": "softmax", "binary_crossentropy": "sigmoid"}
        need = required.get(config.loss)
        if need and last.activation != need:
            problems.append(source.problem(
                f"model.layers.{last_index}.activation",
                f"loss {config.loss} needs a {need} output layer (got {last.activation})",
                because=["loss"]))
        if config.task == "regression" and last.activation == "softmax":
            problems.append(source.problem(
                f"model.layers.{last_index}.activation",
                f"softmax outputs sum to 1, which does not suit the regression loss {config.loss}",
                because=["loss"]))
    if config.data.scale_target != "none" and config.task != "regression":
        problems.append(source.problem(
            "data.scale_target", f"scales regression targets (mae, mse), not the targets of "
            f"{config.loss}", because=["loss"]))
    for i, layer in enumerate(layers):
        if isinstance(layer, DenseSpec) and layer.activation == "softmax" and i != last_index:
            problems.append(source.problem(
                f"model.layers.{i}.activation", "softmax is only for the output layer"))

    # Shapes: sequences flow through rnn layers; dense layers take flat inputs.
    sequence = config.data.sequence is not None
    for i, layer in enumerate(layers):
        if isinstance(layer, RNNSpec):
            if not sequence:
                problems.append(source.problem(
                    f"model.layers.{i}", "an rnn layer needs sequence input: set data.sequence"
                    + ("" if i == 0 else " and put rnn layers first"), because=["data.sequence"]))
                break
            sequence = layer.return_sequences
        elif isinstance(layer, DenseSpec) and sequence:
            rnns = [j for j in range(i) if isinstance(layers[j], RNNSpec)]
            where = "data.sequence is set" if not rnns else \
                "the rnn layer before it has return_sequences: true"
            cause = f"model.layers.{rnns[-1]}.return_sequences" if rnns else "data.sequence"
            problems.append(source.problem(
                f"model.layers.{i}", f"a dense layer needs flat input, but {where}",
                because=[cause]))
            break

    known = set(recorded_metrics(config.task, ["train", "val"] if config.data.validation
                                 is not None else ["train"]))
    for dotted, monitor in monitors(config):
        if monitor not in known:
            hint = "" if config.data.validation is not None or not monitor.startswith("val_") \
                else " (there is no validation data)"
            problems.append(source.problem(
                dotted, f"unknown metric {monitor!r}{hint}; expected one of: "
                + ", ".join(sorted(known)), because=["data.validation", "loss"]))
    return problems
