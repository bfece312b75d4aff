"""The config reference: every key of the schema with its type, default and meaning.

The keys, types and defaults are read from the Pydantic models in config.py, so they cannot
drift from what nnctl accepts; the meanings are written here, one per key (a test checks that
every key has one). `nnctl validate --defaults` prints it as a commented YAML file, and the
README's reference table is `markdown_table()`.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from .config import Config
from .listing import format_value

MEANINGS = {
    "name": "run name; run directories are `<name>-<time>-<hex>` (default: the config file's stem)",
    "seed": "seeds the split, the initial weights, shuffling and dropout",
    "dtype": "floating-point type of weights and data",
    "data": "where the data is and how its columns are read",
    "data.train": "training CSV (a path relative to the config file)",
    "data.validation": "a fraction of the training rows held out, a CSV path, or null for none",
    "data.test": "test CSV, evaluated with the best checkpoint at the end",
    "data.target": "the column to predict, or a list of columns (several outputs)",
    "data.features": "the feature columns (null: every column but the targets)",
    "data.scale": "feature scaling, fitted on the training rows",
    "data.scale_target": "regression: learn standardized targets, predict in their units",
    "data.sequence": "read each row as a sequence, for rnn layers",
    "data.sequence.steps": "time steps per row, for rnn layers (features are read step-major)",
    "data.sequence.features": "features per time step",
    "data.columns": "a column's type when detection should not decide: `{city: categorical}`",
    "data.columns.<column>.type": "how the column is read",
    "data.columns.<column>.encoding": "categorical columns: one-hot columns or a learned embedding",
    "data.columns.<column>.dim": "embedding width (default: fastai's rule, min(600, round(1.6 * n^0.56)) for n categories)",
    "data.columns.<column>.max_categories": "keep the most frequent categories, fold the rest into 'other'",
    "data.columns.<column>.min_frequency": "rows a category needs to be kept, else 'other'",
    "data.columns.<column>.l1": "L1 penalty on the embedding table",
    "data.columns.<column>.l2": "L2 penalty on the embedding table",
    "data.missing": "what fills a blank numeric cell (error: refuse the file)",
    "data.missing_indicators": "add a 0/1 column per column that had blanks in training",
    "model": "the network",
    "model.layers": "the layers, in order; the last one's units = classes or outputs",
    "model.layers[].units": "neurons (dense) or hidden state size (rnn)",
    "model.layers[].activation": "activation function; softmax only on a last dense layer",
    "model.layers[].init": "weight initialization (default: he_uniform after relu, else xavier_uniform)",
    "model.layers[].recurrent_init": "initialization of the recurrent weights W_h",
    "model.layers[].return_sequences": "output every step's state (for another rnn layer)",
    "model.layers[].rate": "fraction of inputs zeroed while training",
    "model.layers[].l1": "L1 penalty on the layer's weights (never biases)",
    "model.layers[].l2": "L2 penalty on the layer's weights (never biases)",
    "loss": "categorical_crossentropy: classes; binary_crossentropy: yes/no outputs; mse, mae: numbers",
    "optimizer": "how the weights are updated",
    "optimizer.lr": "learning rate",
    "optimizer.momentum": "momentum factor (0: plain SGD)",
    "optimizer.nesterov": "Nesterov momentum (needs momentum > 0)",
    "optimizer.beta": "factor of the running velocity",
    "optimizer.eps": "added to denominators for stability",
    "optimizer.rho": "decay of the running squared gradients",
    "optimizer.beta1": "decay of the first moment",
    "optimizer.beta2": "decay of the second moment",
    "training": "the training loop",
    "training.epochs": "passes over the training data",
    "training.batch_size": "rows per step",
    "training.shuffle": "reshuffle the training rows every epoch",
    "training.clip_norm": "scale gradients down to this global L2 norm",
    "training.clip_value": "clip each gradient element to [-value, value]",
    "training.early_stopping": "stop when the monitored metric stops improving (null: never)",
    "training.early_stopping.monitor": "metric to watch (default: val_loss, else train_loss)",
    "training.early_stopping.mode": "min or max; auto: max for accuracy, r2, auc, f1",
    "training.early_stopping.patience": "epochs without improvement before stopping",
    "training.early_stopping.min_delta": "smallest change that counts as improvement",
    "training.early_stopping.restore_best": "end with the best epoch's weights",
    "training.lr_schedule": "how the learning rate changes between epochs (null: constant)",
    "training.lr_schedule.step_size": "epochs between two decays",
    "training.lr_schedule.gamma": "factor applied at each decay",
    "training.lr_schedule.min_lr": "the lowest learning rate",
    "training.lr_schedule.monitor": "metric to watch (default: as early_stopping)",
    "training.lr_schedule.mode": "min or max; auto as for early stopping",
    "training.lr_schedule.factor": "factor applied when the metric stalls",
    "training.lr_schedule.patience": "epochs without improvement before a decay",
    "training.lr_schedule.min_delta": "smallest change that counts as improvement",
    "training.checkpoint": "which checkpoint is the best, and how many are kept",
    "training.checkpoint.monitor": "metric that picks the best checkpoint (default: val_loss)",
    "training.checkpoint.mode": "min or max; auto as for early stopping",
    "training.checkpoint.keep_last": "numbered epoch checkpoints kept besides last and best",
    "training.checkpoint.every_seconds": "training time between two saves of `last` (0: every epoch)",
    "training.class_weight": "balanced, or {label: weight}: weights of the classes in the loss",
}


@dataclass
class Key:
    dotted: str        # model.layers[].units, optimizer.lr, data.columns.<column>.type
    type: str          # `int > 0`, `adam | sgd`, `float or null`
    default: str       # as YAML would write it, or "required"
    owners: list[str]  # the union members that have the key (`dense, rnn`), if any
    meaning: str


def keys() -> list[Key]:
    """Every key of the schema, depth first, in the order the models declare them."""
    out: list[Key] = []
    _walk(Config, "", out, owners=[])
    merged: dict[str, list[Key]] = {}
    for key in out:  # one row per key, with every union member that has it
        merged.setdefault(key.dotted, []).append(key)
    return [_merge(same) for same in merged.values()]


def _merge(same: list[Key]) -> Key:
    """One key of several union members: `0.01 (adagrad, rmsprop), 1 (adadelta)` where their
    defaults differ."""
    first = same[0]
    owners = [o for key in same for o in key.owners]
    by_default: dict[str, list[str]] = {}
    for key in same:
        by_default.setdefault(key.default, []).extend(key.owners)
    default = first.default if len(by_default) == 1 else ", ".join(
        f"{value} ({', '.join(names)})" for value, names in by_default.items())
    return Key(first.dotted, first.type, default, owners, first.meaning)


def _walk(model: type[BaseModel], prefix: str, out: list[Key], owners: list[str]) -> None:
    for name, field in model.model_fields.items():
        if name == "type" and owners:
            continue  # the union's tag: listed as the union's own type
        dotted = f"{prefix}{name}"
        annotation = field.annotation
        members = _models_in(annotation)
        default = _default(field)
        out.append(Key(dotted, _type_text(annotation, field), default, list(owners),
                       MEANINGS.get(dotted, "")))
        container = typing.get_origin(_strip_optional(annotation))
        if container is list and members:
            dotted += "[]"
        elif container is dict and members:
            dotted += ".<column>"
        for tag, member in members.items():
            _walk(member, dotted + ".", out, owners=[tag] if tag else [])


def _strip_optional(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is Union and len(args) == 1:
        return args[0]
    return annotation


def _models_in(annotation: Any) -> dict[str, type[BaseModel]]:
    """The models a field holds, by union tag ('' for a single model)."""
    found: dict[str, type[BaseModel]] = {}
    stack = [annotation]
    while stack:
        a = stack.pop(0)
        if isinstance(a, type) and issubclass(a, BaseModel):
            found[_tag(a)] = a
        else:
            stack.extend(typing.get_args(a))
    return found


def _tag(model: type[BaseModel]) -> str:
    """A discriminated union member's tag (its `type` field's one literal value), else ''."""
    field = model.model_fields.get("type")
    values = typing.get_args(field.annotation) if field is not None else ()
    is_tag = field is not None and typing.get_origin(field.annotation) is Literal
    return values[0] if is_tag and len(values) == 1 else ""


def _type_text(annotation: Any, field) -> str:
    members = _models_in(annotation)
    nullable = type(None) in typing.get_args(annotation)
    base = _strip_optional(annotation)
    origin = typing.get_origin(base)
    if members and origin is list:
        text = "list of layers: " + " | ".join(members)
    elif members and origin is dict:
        text = "mapping of column names to a type or settings"
    elif len(members) > 1:
        text = "type: " + " | ".join(members)
    elif members:
        text = "mapping"
    elif origin is Literal:
        text = " | ".join(str(v) for v in typing.get_args(base))
    elif origin is Union:
        text = " or ".join(_plain(a) for a in typing.get_args(base) if a is not type(None))
    else:
        text = _plain(base)
    bounds = _bounds(field)
    return f"{text}{bounds}" + (" or null" if nullable else "")


def _plain(annotation: Any) -> str:
    if typing.get_origin(annotation) is Literal:
        return " | ".join(str(v) for v in typing.get_args(annotation))
    if typing.get_origin(annotation) is list:
        return f"list of {_plain(typing.get_args(annotation)[0])}"
    if typing.get_origin(annotation) is dict:
        return "mapping"
    return {str: "text", int: "int", float: "float", bool: "bool"}.get(annotation, str(annotation))


def _bounds(field) -> str:
    parts = []
    for item in field.metadata:
        for attr, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            value = getattr(item, attr, None)
            if value is not None:
                parts.append(f"{sign} {value:g}")
    return f" ({', '.join(parts)})" if parts else ""


def _default(field) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        tag = getattr(value, "type", None)
        return f"{tag}" if isinstance(tag, str) else "(its keys' defaults)"
    return format_value(value)


# ---- output ---------------------------------------------------------------------------------

def markdown_table() -> str:
    """The README's reference table."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key in keys():
        owners = f" ({', '.join(key.owners)})" if key.owners else ""
        cells = [f"`{key.dotted}`{owners}", key.type, f"`{key.default}`", key.meaning]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def defaults_text() -> str:
    """Every key, indented as in a config file, with its default (or `required`), its type
    and its meaning: what `nnctl validate --defaults` prints."""
    lines = ["# Every config key with its default, type and meaning (nnctl validate --defaults).",
             "# `required` keys have no default; [dense, rnn] names the types that have a key.",
             ""]
    all_keys = keys()
    for i, key in enumerate(all_keys):
        depth = key.dotted.count(".") + key.dotted.count("[]")
        name = key.dotted.rsplit(".", 1)[-1]
        following = all_keys[i + 1].dotted if i + 1 < len(all_keys) else ""
        parent = following.startswith((key.dotted + ".", key.dotted + "[]."))
        owners = f" [{', '.join(key.owners)}]" if key.owners else ""
        comment = f"# {key.type}{owners}" + (f": {key.meaning}" if key.meaning else "")
        indent = "  " * depth
        if parent:
            default = "" if key.default in ("required", "(its keys' defaults)") else \
                f"   # default: {key.default}"
            lines.append(f"{indent}{name}:{default}   {comment}".rstrip())
            if following.startswith(key.dotted + "[]"):
                lines.append(f"{indent}  - type: {' | '.join(sorted({o for k in all_keys if k.dotted.startswith(key.dotted + '[]') for o in k.owners}))}")
            elif following.startswith(key.dotted + ".<column>"):
                lines.append(f"{indent}  <column>:")
        else:
            lines.append(f"{indent}{name}: {key.default}   {comment}")
    return "\n".join(lines) + "\n"
