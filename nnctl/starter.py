"""`nnctl init`: a commented starter config for a CSV file, valid as printed.

The task comes from the target column (text or few integers: classes; two classes: one
sigmoid unit; other numbers: regression), the column types from the same detection that
training uses, and the network and training section from defaults that suit small tabular
files.
"""

from __future__ import annotations

import os
from pathlib import Path

from .data import embedding_dim
from .data.columns import CATEGORICAL, IGNORE, detect_type, as_text
from .data.reading import read_csv, require_columns
from .errors import DataError

MAX_INTEGER_CLASSES = 10   # an integer target with at most this many values holds classes
EMBED_ABOVE = 100          # categorical columns with more categories get an embedding
IMBALANCED = 0.5           # rarest / commonest class count below which classes are weighted


def starter_config(data: Path, target: str, config_dir: Path = Path(".")) -> str:
    """The YAML text of a starter config for `data`, with paths relative to `config_dir`."""
    import numpy as np
    from pandas.api.types import is_integer_dtype, is_numeric_dtype

    frame = read_csv(data)
    require_columns(frame, data, [target], "target")
    labels = frame[target].dropna()
    if labels.empty:
        raise DataError(f"{data}:1 column {target!r}: every cell is blank")
    values = labels.unique()
    integral = is_integer_dtype(labels.dtype) or (
        is_numeric_dtype(labels.dtype) and bool(np.all(np.round(values) == values)))
    if is_numeric_dtype(labels.dtype) and not (integral and len(values) <= MAX_INTEGER_CLASSES):
        task = "regression"
    else:
        task = "binary" if len(values) == 2 else "classification"
    if task != "regression" and len(values) < 2:
        raise DataError(f"{data}:1 column {target!r}: only one class ({values[0]!r}); "
                        "a classifier needs at least two")

    lines = [f"# Starter config for {data.name} ({len(frame)} rows, {len(frame.columns)} "
             "columns), made by `nnctl init`.",
             "# Edit freely; `nnctl validate` checks it and `nnctl train` trains it.",
             "", f"name: {_name(data)}", "seed: 0", "", "data:",
             f"  train: {_relative(data, config_dir)}    # relative to this file's folder",
             "  validation: 0.2            # fraction held out (stratified for classes)",
             f"  target: {_quote(target)}"]
    blank = int(frame[target].isna().sum())
    if blank:
        lines.append(f"  # {blank} rows have no {target!r}: training leaves them out")
    lines += _columns(frame, target)
    lines += ["  missing: median            # blank numbers: median | mean | zero | error",
              "  missing_indicators: true   # a 0/1 input for each column that had blanks",
              "", "model:", "  layers:",
              "    # Glorot's init (scikit-learn's MLP uses it too): on small tabular files it",
              "    # overfits less than He's, nnctl's default for relu layers",
              "    - {type: dense, units: 64, activation: relu, init: xavier_uniform}",
              "    - {type: dropout, rate: 0.1}",
              "    - {type: dense, units: 32, activation: relu, init: xavier_uniform}"]
    counts = as_text(labels).value_counts()
    if task == "regression":
        lines += ["    - {type: dense, units: 1}            # one linear unit: regression",
                  "", "loss: mse"]
        data_end = lines.index("  missing: median            # blank numbers: median | mean | zero | error")
        lines.insert(data_end, "  scale_target: standard     # learn the target standardized; "
                               "predictions in its units")
    elif task == "binary":
        positive = sorted(counts.index, key=str)[-1]
        lines += [f"    - {{type: dense, units: 1, activation: sigmoid}}   # P({target} = "
                  f"{positive})", "", "loss: binary_crossentropy"]
    else:
        lines += [f"    - {{type: dense, units: {len(values)}, activation: softmax}}   # one "
                  f"unit per class of {target!r}", "", "loss: categorical_crossentropy"]
    batch = 32 if len(frame) < 20_000 else 256
    lines += ["", "optimizer: {type: adam, lr: 0.001}", "", "training:", "  epochs: 200",
              f"  batch_size: {batch}",
              "  early_stopping: {monitor: val_loss, patience: 20, restore_best: true}"]
    if task != "regression":
        shares = ", ".join(f"{label} {count / counts.sum():.0%}"
                           for label, count in counts.items())
        if counts.min() / counts.max() < IMBALANCED:  # a choice: recall of the rare class
            lines += [f"  # classes are imbalanced ({shares}): to trade accuracy for recall of",
                      "  # the rare ones, weight them (see balanced accuracy in nnctl eval):",
                      "  # class_weight: balanced"]
        else:
            lines.append(f"  # class_weight: balanced   # classes: {shares}")
    return "\n".join(lines) + "\n"


def _columns(frame, target: str) -> list[str]:
    """`data.columns` with every feature's detected type, so it can be changed in place."""
    lines = ["  columns:                   # numeric | categorical | binary | datetime | ignore"]
    for name in frame.columns:
        if name == target:
            continue
        kind, why = detect_type(frame[name])
        key = f"    {_quote(name)}:"
        if kind == CATEGORICAL:
            n, blank = as_text(frame[name]).nunique(), bool(frame[name].isna().any())
            why = f"{n} categories" + " and blanks" * blank
            if n > EMBED_ABOVE:  # the table has a row for "other" and one for blanks
                lines.append(_commented(f"{key} {{type: categorical, encoding: embedding}}",
                                        f"{why}: a learned vector of "
                                        f"{embedding_dim(n + 1 + blank)} each"))
                continue
        lines.append(_commented(f"{key} {kind}", why if kind in (IGNORE, CATEGORICAL) else ""))
    return lines


def _commented(line: str, comment: str) -> str:
    return f"{line:<28} # {comment}" if comment else line


def _relative(data: Path, config_dir: Path) -> str:
    try:
        return _quote(os.path.relpath(data.resolve(), config_dir.resolve()))
    except ValueError:  # another drive on Windows
        return _quote(str(data.resolve()))


def _name(data: Path) -> str:
    from .config import safe_name

    return safe_name(data.stem)


def _quote(text: str) -> str:
    """A YAML scalar for a column name or path: quoted unless plainly safe."""
    import json
    import re

    import yaml

    plain = re.fullmatch(r"[A-Za-z0-9_./][A-Za-z0-9_./-]*", text) and yaml.safe_load(text) == text
    return text if plain else json.dumps(text)  # 'yes', 'null', 'a: b' ... stay text
