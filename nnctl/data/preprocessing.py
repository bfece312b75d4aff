"""Everything fitted on the training split that turns a CSV into model inputs and targets:
the column encoders, the scaler and the class labels. It is stored in every checkpoint and
serves train, eval, predict and export alike.

The model's input array has the encoders' float columns in column order (numeric values and
date parts scaled; indicators, binary and one-hot columns not), then one column of category
codes per embedded column, which the model's embedding tables read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..config import label_text
from ..errors import DataError
from ..nn import threads
from .columns import (
    CATEGORICAL, IGNORE, NUMERIC, TEXT_TYPES, Categorical, Numeric, Report, as_text,
    column_from_dict, column_to_dict,
)
from .problems import MAX_PROBLEMS, check_in_range, lines_of, limit

SCALE_ROWS = 256  # rows scaled at a time: float64 temporaries small enough to stay in cache
SCALE_COLUMNS = 64  # columns read as float64 at a time: an integer frame is never converted whole
ASSEMBLE_ROWS = 4096  # rows of the input array filled at a time: a block that stays in cache


@dataclass
class Dataset:
    """Model-ready arrays: x (N, inputs) or (N, steps, features); y as the loss expects it
    (class indices for classification, floats (N, outputs) otherwise), or None."""

    x: np.ndarray
    y: Optional[np.ndarray]

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class Preprocessing:
    """The fitted preprocessing of one model; `features` are the CSV columns it reads."""

    task: str                       # classification | binary | regression
    features: list[str]
    targets: list[str]
    classes: list[Any] = field(default_factory=list)  # sorted labels (classification, binary)
    scale: str = "none"
    offset: list[float] = field(default_factory=list)  # x' = (x - offset) / spread, per input
    spread: list[float] = field(default_factory=list)
    sequence: Optional[list[int]] = None              # [steps, features]
    columns: list = field(default_factory=list)       # one encoder per feature, in order
    ignored: dict[str, str] = field(default_factory=dict)  # column -> why it is not read
    class_weights: Optional[list[float]] = None       # the loss's, per class (training counts)
    target_scale: Optional[list[list[float]]] = None  # [offsets, spreads] of regression targets

    def to_dict(self) -> dict:
        data = {key: getattr(self, key) for key in (
            "task", "features", "targets", "classes", "scale", "offset", "spread", "sequence",
            "class_weights", "target_scale")}
        data["columns"] = [column_to_dict(c) for c in self.columns]
        data["ignored"] = dict(self.ignored)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Preprocessing":
        """Raises KeyError, TypeError or ValueError when `data` is malformed."""
        data = dict(data)
        columns = data.pop("columns", None)
        prep = cls(**data)
        if columns is None:  # saved before column types existed: every feature numeric
            prep.columns = [Numeric(name) for name in prep.features]
        else:
            prep.columns = [column_from_dict(c) for c in columns]
        if [c.name for c in prep.columns] != prep.features:
            raise ValueError("the columns do not match the features")
        if len(prep.offset) != len(prep.spread) or \
                (prep.scale != "none" and len(prep.offset) != len(prep.inputs)):
            raise ValueError("the scaler does not match the inputs")
        return prep

    # ---- the inputs' layout ---------------------------------------------------------------

    @property
    def inputs(self) -> list[str]:
        """Names of the float input columns (before the category codes of embeddings)."""
        return [name for column in self.columns for name in column.outputs]

    @property
    def text_columns(self) -> list[str]:
        """Columns read as text from eval and predict files (categories, yes/no values)."""
        return [c.name for c in self.columns if c.type in TEXT_TYPES]

    @property
    def embedded(self) -> list[Categorical]:
        return [c for c in self.columns if c.type == CATEGORICAL and c.encoding == "embedding"]

    @property
    def width(self) -> int:
        """Columns of the input array: float inputs, then one code column per embedding."""
        return len(self.inputs) + len(self.embedded)

    @property
    def embeddings(self) -> list[dict]:
        """The embedding tables the model needs, in code-column order."""
        return [{"column": c.name, "categories": c.size, "dim": c.dim, "l1": c.l1, "l2": c.l2}
                for c in self.embedded]

    @property
    def n_outputs(self) -> int:
        """Units the output layer must have."""
        return len(self.classes) if self.task == "classification" else len(self.targets)

    def plain(self, frame, fitted: bool = False) -> bool:
        """Whether every feature is a NumPy numeric column without blanks in `frame`, so the
        whole input is one scaled block of the frame (the fast path). On the split the columns
        were `fitted` on, the fits counted the blanks and refused other non-finite values, so
        no pass over the values is needed."""
        from .reading import finite_columns

        if not all(c.type == NUMERIC and not c.indicator for c in self.columns):
            return False
        if fitted:
            dtypes = frame.dtypes[self.features]
            return all(c.blanks == 0 for c in self.columns) and all(
                isinstance(dtype, np.dtype) and dtype.kind in "iuf" for dtype in dtypes)
        return finite_columns(frame, self.features) == self.features

    # ---- fitting and encoding -------------------------------------------------------------

    def fit_inputs(self, frame, path: Path, dtype, encoded: Optional[dict] = None
                   ) -> tuple[np.ndarray, list[str]]:
        """Fit the scaler on the training split while encoding it; return (x, notes).
        `encoded` holds the columns' encodings of the split made while fitting them."""
        self.offset, self.spread = [], []
        if self.plain(frame, fitted=True):
            return self._encode_block(frame, path, dtype, fit=self.scale != "none"), []
        return self._encode_columns(frame, path, dtype, fit=True, encoded=encoded)

    def encode_inputs(self, frame, path: Path, dtype) -> tuple[np.ndarray, list[str]]:
        """The input array of a frame that holds the feature columns, and notes about it
        (values outside the training categories). Bad cells are data errors."""
        if self.plain(frame):
            return self._encode_block(frame, path, dtype), []
        return self._encode_columns(frame, path, dtype, fit=False)

    def _encode_block(self, frame, path: Path, dtype, fit: bool = False) -> np.ndarray:
        """All-numeric, no blanks: SCALE_COLUMNS columns at a time are read as float64 (a view
        of a float64 frame; integer columns are converted there, so no float64 copy of the
        whole input exists), with `fit` their statistics taken, then scaled SCALE_ROWS rows
        at a time into a small scratch block and divided straight into the result in its
        dtype. Each value gets the same float64 operations as in one pass over the whole.
        The column groups are independent pieces, shared among nnctl's threads (NumPy
        releases the GIL for their arithmetic): the result is the same bits on any count."""
        table = frame[self.features]  # pandas selects lazily: nothing is copied here
        x = np.empty(table.shape, dtype=dtype)
        groups = [slice(first, first + SCALE_COLUMNS)
                  for first in range(0, x.shape[1], SCALE_COLUMNS)]
        parts = [table.iloc[:, columns] for columns in groups]  # pandas, on this thread
        statistics: list = [None] * len(groups)
        finite = [True] * len(groups)

        def encode(i: int) -> None:
            columns = groups[i]
            values = parts[i].to_numpy(dtype=np.float64)
            if fit:
                offset, spread = statistics[i] = self._fit_block(values)
            elif self.scale != "none":
                offset = np.asarray(self.offset[columns])
                spread = np.asarray(self.spread[columns])
            scratch = np.empty((min(SCALE_ROWS, len(x)), values.shape[1]))
            for start in range(0, len(x), SCALE_ROWS):
                block = values[start:start + SCALE_ROWS]
                out = x[start:start + SCALE_ROWS, columns]
                if self.scale == "none":
                    out[...] = block
                else:
                    centered = np.subtract(block, offset, out=scratch[:len(block)])
                    np.divide(centered, spread, out=out, casting="same_kind")
                finite[i] = finite[i] and bool(np.isfinite(out).all())  # while it is in cache

        with np.errstate(over="ignore", invalid="ignore"):  # too large: inf, named below
            threads.run([partial(encode, i) for i in range(len(groups))])
        if fit:
            self._set_scaler(np.concatenate([offset for offset, _ in statistics]),
                             np.concatenate([spread for _, spread in statistics]), frame, path)
        if not all(finite):
            check_in_range(x, frame, path, self.inputs)
        return self._shaped(x)

    def _fit_block(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-column statistics of the training split's columns `x` (float64, each column
        contiguous); a constant column gets a spread of 1."""
        if self.scale == "standard":
            offset, spread = x.mean(axis=0), x.std(axis=0)
        else:
            low = x.min(axis=0)
            offset, spread = low, x.max(axis=0) - low
        return offset, np.where(spread > 0, spread, 1.0)

    def _set_scaler(self, offset: np.ndarray, spread: np.ndarray, frame, path: Path) -> None:
        spread = np.where(spread > 0, spread, 1.0)
        too_large = [n for n, o, s in zip(self.inputs, offset, spread)
                     if not (np.isfinite(o) and np.isfinite(s))]
        if too_large:
            raise DataError([self._too_large(frame, path, name) for name in too_large])
        self.offset, self.spread = offset.tolist(), spread.tolist()

    def _too_large(self, frame, path: Path, name: str) -> str:
        """The problem of a column whose statistics overflow, at the line of its largest value
        (a date part or an indicator is named by its column)."""
        why = f"values too large to scale ({self.scale} scaling overflows)"
        if name not in frame.columns:
            return f"{path}: input {name!r}: {why}"
        import pandas as pd

        values = pd.to_numeric(frame[name], errors="coerce").abs()
        row = int(np.nanargmax(values.to_numpy(dtype=np.float64, na_value=np.nan)))
        line = lines_of(frame, np.array([row]))[0]
        return f"{path}:{line} column {name!r}: {why}; the largest is {frame[name].iloc[row]}"

    def _encode_columns(self, frame, path: Path, dtype, fit: bool, encoded: Optional[dict] = None
                        ) -> tuple[np.ndarray, list[str]]:
        """A column at a time, each encoder's float columns are scaled in float64 and kept in
        the model's dtype, then written into the result ASSEMBLE_ROWS rows at a time (a whole
        column at once would touch a cache line per row); one-hot columns are set where their
        category is; embedded columns' codes go last. With `fit`, the scaler's statistics are
        taken on the way."""
        report = Report(path, frame)
        n = len(frame)
        scaling = self.scale != "none"
        filled: dict[int, np.ndarray] = {}   # input column -> its values
        ones: list[np.ndarray] = []           # flat positions of one-hot ones
        j, code_column = 0, len(self.inputs)
        for column in self.columns:
            outputs = (encoded or {}).pop(column.name, None)
            if outputs is None:
                outputs = column.encode(frame[column.name], report)
            if column.type == CATEGORICAL:
                if column.encoding == "embedding":
                    filled[code_column] = outputs.astype(dtype)
                    code_column += 1
                    continue
                hit = np.flatnonzero(outputs >= 0)
                ones.append(hit * self.width + (j + outputs[hit]))
                if fit and scaling:
                    self.offset += [0.0] * column.size
                    self.spread += [1.0] * column.size
                j += column.size
                continue
            for values, scaled in zip(outputs, column.scaled):
                if fit and scaling:
                    offset, spread = self._statistics(values) if scaled else (0.0, 1.0)
                    self.offset.append(offset)
                    self.spread.append(spread)
                if scaling and scaled:
                    with np.errstate(over="ignore", invalid="ignore"):
                        values -= self.offset[j]
                        values /= self.spread[j]
                with np.errstate(over="ignore"):  # too large for the dtype: inf, named below
                    filled[j] = values.astype(dtype)
                j += 1
        if report.problems:
            raise DataError(limit(report.problems, path))
        if fit and scaling:
            self._set_scaler(np.array(self.offset), np.array(self.spread), frame, path)
        x = np.zeros((n, self.width), dtype=dtype)
        for start in range(0, n, ASSEMBLE_ROWS):
            block = x[start:start + ASSEMBLE_ROWS]
            for k, values in filled.items():
                block[:, k] = values[start:start + ASSEMBLE_ROWS]
        for positions in ones:
            x.reshape(-1)[positions] = 1
        inputs = [filled[k] for k in range(len(self.inputs)) if k in filled]
        if not all(np.isfinite(values).all() for values in inputs):
            check_in_range(x[:, :len(self.inputs)], frame, path, self.inputs)
        return self._shaped(x), report.notes

    def _statistics(self, values: np.ndarray) -> tuple[float, float]:
        """One column's offset and spread (a constant column's spread is 1)."""
        with np.errstate(over="ignore", invalid="ignore"):
            if self.scale == "standard":
                offset, spread = float(values.mean()), float(values.std())
            else:
                offset, spread = float(values.min()), float(values.max() - values.min())
        return offset, spread if spread > 0 else 1.0

    def _shaped(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), *self.sequence) if self.sequence else x

    # ---- targets -----------------------------------------------------------------------

    def encode_targets(self, frame, path: Path, dtype) -> np.ndarray:
        """Targets as the loss expects them; unknown labels are data errors."""
        if self.task == "regression" or (self.task == "binary" and self.classes == []):
            values = frame[self.targets].to_numpy(dtype=np.float64)
            with np.errstate(over="ignore"):  # too large for the dtype: inf, named below
                y = np.ascontiguousarray(values, dtype=dtype)
            check_in_range(y, frame, path, self.targets)
            return y
        column = self.targets[0]
        codes = _integer_codes(frame[column].to_numpy(), self.classes)
        if codes is None:  # labels that are not integers, or unknown ones: compared as text
            import pandas as pd

            keys = as_text(frame[column])
            codes = pd.Index([label_text(c) for c in self.classes], dtype=object
                             ).get_indexer(keys).astype(np.int64)
            unknown = np.flatnonzero(codes < 0)
            if len(unknown):
                shown = unknown[:MAX_PROBLEMS]  # worded; every one is counted
                problems = [f"{path}:{line} column {column!r}: label {keys.iloc[row]!r} was not "
                            f"seen in training (known: {', '.join(map(str, self.classes))})"
                            for line, row in zip(lines_of(frame, shown), shown)]
                raise DataError(limit(problems, path, total=len(unknown)))
        if self.task == "binary":
            return codes.astype(dtype).reshape(-1, 1)
        return codes

    def dataset(self, frame, path: Path, dtype, with_targets: bool = True
                ) -> tuple[Dataset, list[str]]:
        y = self.encode_targets(frame, path, dtype) if with_targets else None
        x, notes = self.encode_inputs(frame, path, dtype)
        return Dataset(x, y), notes

    # ---- what the user sees ------------------------------------------------------------

    def column_table(self) -> list[tuple[str, str, str]]:
        """(column, type, detail) for every column read or ignored, in file order."""
        rows = [(c.name, c.type, c.describe()) for c in self.columns]
        rows += [(name, IGNORE, why) for name, why in self.ignored.items()]
        return rows


def _integer_codes(values: np.ndarray, classes: list[Any]) -> Optional[np.ndarray]:
    """Class indices of an integer label column, found in one vectorized pass, when every
    class is an integer and every label a known class; otherwise None."""
    if values.dtype.kind not in "iu" or not all(type(c) is int for c in classes):
        return None
    known = np.array(classes, dtype=np.int64)  # sorted, as sorted_labels makes them
    codes = np.minimum(np.searchsorted(known, values), len(known) - 1)
    return codes if np.array_equal(known[codes], values) else None


def sorted_labels(values) -> list[Any]:
    """Distinct labels in sorted order, as plain Python values (numbers sort numerically)."""
    distinct = {label_text(v): v for v in values}
    labels = [v.item() if hasattr(v, "item") else v for v in distinct.values()]
    labels = [int(v) if isinstance(v, float) and v.is_integer() else v for v in labels]
    if all(isinstance(v, (int, float)) for v in labels):
        return sorted(labels)
    return sorted(labels, key=str)
