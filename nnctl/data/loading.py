"""From the config's `data` section to datasets: read the files, leave out rows without a
target, split, decide each column's type and fit the preprocessing on the training split
only, then encode every split the same way. Eval and predict files go through the stored
preprocessing."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..config import label_text
from ..errors import DataError
from ..nn import threads
from .columns import CATEGORICAL, COLUMN_TYPES, IGNORE, NUMERIC, TEXT_TYPES, Report, detect_type
from .preprocessing import Dataset, Preprocessing, sorted_labels
from .problems import MAX_PROBLEMS, cells, limit, lines_of
from .reading import finite_columns, read_csv, read_table, require_columns
from .splits import split_indices


@dataclass
class TrainingData:
    train: Dataset
    validation: Optional[Dataset]
    test: Optional[Dataset]
    preprocessing: Preprocessing
    notes: list[str] = field(default_factory=list)   # warnings for the user, one line each
    blank_targets: dict[str, int] = field(default_factory=dict)  # rows left out, per file
    class_counts: list[int] = field(default_factory=list)        # training split, per class


def load_training_data(spec, task: str, rng: np.random.Generator, dtype,
                       check: Optional[Callable[[Preprocessing], None]] = None,
                       check_columns: Optional[Callable[[list[str]], None]] = None,
                       cache: Optional[str | os.PathLike] = None) -> TrainingData:
    """Read train (and validation/test) files per the config's `data` section, split, fit the
    preprocessing on the training split only, and encode everything the same way.
    `check_columns` sees the training file's columns, `check` the fitted preprocessing, both
    before any array is built (the config's checks against the data). `cache`, a folder,
    keeps the files' parsed frames for the next process that reads them (see cache.py)."""
    train_path = Path(spec.train)
    frame = read_csv(train_path, _text_columns(spec), cache)
    if check_columns is not None:
        check_columns(list(frame.columns))
    targets = spec.targets
    features = spec.features if spec.features is not None else \
        [c for c in frame.columns if c not in targets]
    require_columns(frame, train_path, targets, "target")
    require_columns(frame, train_path, features, "feature")
    if not features:
        raise DataError(f"{train_path}:1: no feature columns besides the target(s)")
    overlap = sorted(set(features) & set(targets))
    if overlap:
        raise DataError(f"{train_path}:1 column {overlap[0]!r}: is both a feature and a target")

    notes: list[str] = []
    blank_targets: dict[str, int] = {}
    try:
        frame = _with_targets(frame, train_path, targets, task, notes, blank_targets)
    except DataError as exc:  # list the features' problems too, found on the whole file
        raise DataError(exc.problems + _feature_problems(frame, train_path, features, spec))
    prep = Preprocessing(task=task, features=features, targets=targets, scale=spec.scale,
                         sequence=[spec.sequence.steps, spec.sequence.features]
                         if spec.sequence else None)
    prep.classes = _classes(frame, train_path, targets, task)

    validation_frame, validation_path = None, train_path
    if isinstance(spec.validation, float):
        single_label = task == "classification" or (task == "binary" and len(targets) == 1)
        labels = prep.encode_targets(frame, train_path, np.float64).reshape(-1) \
            if single_label else None
        train_rows, val_rows = split_indices(len(frame), spec.validation, rng, labels)
        if len(val_rows) == 0 or len(train_rows) == 0:
            raise DataError(f"{train_path}: {len(frame)} rows are too few to hold out a "
                            f"validation fraction of {spec.validation:g}")
        frame, validation_frame = frame.iloc[train_rows], frame.iloc[val_rows]

    encoded = fit_columns(prep, frame, train_path, spec, notes)
    if check is not None:
        check(prep)
    x, more = prep.fit_inputs(frame, train_path, dtype, encoded)
    train = Dataset(x, prep.encode_targets(frame, train_path, dtype))
    if spec.scale_target == "standard" and task == "regression":
        y = train.y.astype(np.float64)
        spread = y.std(axis=0)
        prep.target_scale = [y.mean(axis=0).tolist(), np.where(spread > 0, spread, 1.0).tolist()]
    notes += more

    if isinstance(spec.validation, str):
        validation_frame, validation_path = _read_for(spec.validation, prep, notes, blank_targets,
                                                      cache)
    validation = None
    if validation_frame is not None:
        validation, more = prep.dataset(validation_frame, validation_path, dtype)
        notes += more
    test = None
    if spec.test:
        test, more = prep.dataset(*_read_for(spec.test, prep, notes, blank_targets, cache),
                                  dtype)
        notes += more
    counts = (np.bincount(train.y.reshape(-1).astype(np.int64), minlength=len(prep.classes))
              .tolist() if prep.classes else [])
    return TrainingData(train, validation, test, prep, notes, blank_targets, counts)


def fill_cache(spec, cache: str | os.PathLike) -> None:
    """Parse the training file into the cache folder `cache` as load_training_data reads it,
    for the processes that read it next (a sweep's trials)."""
    read_csv(Path(spec.train), _text_columns(spec), cache)


def _text_columns(spec) -> list[str]:
    """The columns the config declares text (read as text whatever they hold)."""
    return [name for name, column in spec.columns.items() if column.type in TEXT_TYPES]


# ---- column types ---------------------------------------------------------------------------

def fit_columns(prep: Preprocessing, frame, path: Path, spec, notes: list[str]) -> dict:
    """Decide each feature's type (declared, else detected from the training split) and fit
    its encoder there; return the encodings of the split that cost something to make again
    (text and dates). Undeclared columns that are left out are named in a note.

    Numeric columns, most of a wide file, are fitted as pieces shared among nnctl's threads
    (their medians and checks are NumPy work that releases the GIL), each into a report of its
    own: the problems come out in column order whatever thread found them."""
    columns, ignored, encoded = [], {}, {}
    reports, numeric = {}, []
    for name in prep.features:
        declared = spec.columns.get(name)
        if declared is not None:
            kind, why = declared.type, "declared in data.columns"
        else:
            kind, why = detect_type(frame[name])
        if kind == IGNORE:
            ignored[name] = why
            continue
        column = COLUMN_TYPES[kind](name)
        columns.append(column)
        report = reports[name] = Report(path, frame)
        if kind == NUMERIC:
            column.statistic = spec.missing
            numeric.append(partial(column.fit, frame[name], report, spec.missing_indicators))
            continue
        options: dict[str, Any] = {}
        if kind == CATEGORICAL and declared is not None:
            column.encoding, column.l1, column.l2 = declared.encoding, declared.l1, declared.l2
            options = {"max_categories": declared.max_categories,
                       "min_frequency": declared.min_frequency, "dim": declared.dim}
        outputs = column.fit(frame[name], report, spec.missing_indicators, **options)
        if outputs is not None:
            encoded[name] = outputs
    threads.run(numeric)
    problems = [problem for report in reports.values() for problem in report.problems]
    if problems:
        raise DataError(limit(problems, path))
    undeclared = [name for name in ignored if name not in spec.columns]
    if undeclared:
        notes.append(f"{path}: not read: " + ", ".join(
            f"{name!r} ({ignored[name]})" for name in undeclared)
            + "; declare a type in data.columns to read one")
    if not columns:
        raise DataError(f"{path}:1: every feature column is ignored ("
                        + ", ".join(ignored) + "); declare a type in data.columns")
    if prep.sequence:
        flat = [c.name for c in columns if c.type != NUMERIC or getattr(c, "indicator", False)]
        if flat:
            raise DataError(f"{path}:1 column {flat[0]!r}: data.sequence reads numeric columns "
                            "without blanks only")
    prep.features = [c.name for c in columns]
    prep.columns, prep.ignored = columns, ignored
    return encoded


def _feature_problems(frame, path: Path, features: list[str], spec) -> list[str]:
    try:
        fit_columns(Preprocessing("regression", features, []), frame, path, spec, [])
    except DataError as exc:
        return exc.problems
    return []


# ---- targets -----------------------------------------------------------------------------

def _with_targets(frame, path: Path, targets: list[str], task: str, notes: list[str],
                  blank_targets: dict[str, int]):
    """The rows whose targets are all present; those left out are counted in a note.
    Regression targets (and several 0/1 targets) must be numbers."""
    blank = frame[targets].isna().to_numpy().any(axis=1)
    if blank.any():
        count = int(blank.sum())
        blank_targets[str(path)] = count
        lines = lines_of(frame, np.flatnonzero(blank))
        shown = ", ".join(map(str, lines[:3])) + (", ..." if count > 3 else "")
        notes.append(f"{path}: {count} row{'s' * (count != 1)} without a target value left out "
                     f"(lines {shown})")
        frame = frame[~blank]
        if len(frame) == 0:
            raise DataError(f"{path}: every row's target is blank")
    if task == "regression" or len(targets) > 1:
        problems = []
        for name in targets:
            problems += _not_numbers(frame, path, name)
        if problems:
            raise DataError(limit(problems, path))
    return frame


def _not_numbers(frame, path: Path, column: str) -> list[str]:
    import pandas as pd

    if column in finite_columns(frame, [column]):
        return []
    values = frame[column]
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(numbers)
    if not bad.any():
        return []
    example = values.to_numpy()[bad][0]
    lines = lines_of(frame, np.flatnonzero(bad))
    return [cells(path, column, lines, f"not a number ({str(example)!r})",
                  f"are not numbers (e.g. {str(example)!r})")]


def _classes(frame, path: Path, targets: list[str], task: str) -> list[Any]:
    if task == "regression":
        return []
    if task == "binary" and len(targets) > 1:
        problems = []
        for column in targets:
            values = frame[column].to_numpy(dtype=np.float64)
            bad = np.flatnonzero((values != 0) & (values != 1))
            for line, row in zip(lines_of(frame, bad[:MAX_PROBLEMS]), bad):
                problems.append(f"{path}:{line} column {column!r}: binary_crossentropy with "
                                f"several targets needs 0/1 values (got {values[row]:g})")
        if problems:
            raise DataError(limit(problems, path))
        return []
    column = frame[targets[0]]
    if column.dtype.kind == "f":  # inf or -inf read as a number: no class a file can name
        values = column.to_numpy()
        infinite = np.flatnonzero(np.isinf(values))
        if len(infinite):
            raise DataError(limit(
                [f"{path}:{line} column {targets[0]!r}: {values[row]:g} is not a class label"
                 for line, row in zip(lines_of(frame, infinite[:MAX_PROBLEMS]), infinite)],
                path, total=len(infinite)))
    labels = (np.unique(column.to_numpy()).tolist() if column.dtype.kind in "iu"
              else sorted_labels(column.unique().tolist()))  # the same result, compared as text
    if task == "binary":
        if len(labels) > 2:
            raise DataError(f"{path}:1 column {targets[0]!r}: binary_crossentropy needs two "
                            f"classes, found {len(labels)} ({_preview(labels)})")
        if len(labels) < 2 and set(map(label_text, labels)) <= {"0", "1"}:
            labels = [0, 1]
    if len(labels) < 2:
        raise DataError(f"{path}:1 column {targets[0]!r}: only one class "
                        f"({_preview(labels)}); a classifier needs at least two")
    return labels


def _preview(labels: list[Any], limit: int = 8) -> str:
    shown = ", ".join(map(str, labels[:limit]))
    return shown + (", ..." if len(labels) > limit else "")


# ---- files after training ------------------------------------------------------------------

def _read_for(data, prep: Preprocessing, notes: list[str], blank_targets: dict[str, int],
              cache=None):
    """A file or DataFrame with the targets and the columns the preprocessing reads, in any
    order, rows without a target left out; and the name of the source."""
    frame, path = read_table(data, prep.text_columns, cache)
    require_columns(frame, path, prep.targets, "target")
    require_columns(frame, path, prep.features, "feature")
    return _with_targets(frame, path, prep.targets, prep.task, notes, blank_targets), path


def load_for_eval(data, prep: Preprocessing, dtype) -> tuple[Dataset, list[str], int]:
    """Labelled data (a CSV path or a DataFrame) encoded as training did; notes say what was
    left out or read as other; the count is of the rows left out for a blank target."""
    notes: list[str] = []
    blank_targets: dict[str, int] = {}
    frame, path = _read_for(data, prep, notes, blank_targets)
    dataset, more = prep.dataset(frame, path, dtype)
    return dataset, notes + more, blank_targets.get(str(path), 0)


def load_for_predict(data, prep: Preprocessing, dtype, keep: list[str] = ()):
    """Features of data (a CSV path or a DataFrame) that may lack the target; returns
    (inputs, the frame, notes)."""
    frame, path = read_table(data, prep.text_columns)
    require_columns(frame, path, prep.features, "feature")
    require_columns(frame, path, list(keep), "--keep")
    x, notes = prep.encode_inputs(frame, path, dtype)
    return x, frame, notes
