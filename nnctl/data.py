"""CSV files -> arrays: columns, class labels, scaling, splits and batches.

Every problem names the file, the row (the CSV line number, header = line 1) and the column,
and all problems in a file are listed together (up to a limit).
"""

from __future__ import annotations

import io
import math
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from .errors import DataError

MAX_PROBLEMS = 10  # per file: enough to see a pattern, few enough to read
SCALE_ROWS = 256  # rows scaled at a time: float64 temporaries small enough to stay in cache


@dataclass
class Dataset:
    """Model-ready arrays: x (N, features) or (N, steps, features); y as the loss expects it
    (class indices for classification, floats (N, outputs) otherwise), or None."""

    x: np.ndarray
    y: Optional[np.ndarray]

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class Preprocessing:
    """Everything needed to turn a CSV into model inputs the way training did; it is stored
    in every checkpoint."""

    task: str                       # classification | binary | regression
    features: list[str]
    targets: list[str]
    classes: list[Any] = field(default_factory=list)  # sorted labels (classification, binary)
    scale: str = "none"
    offset: list[float] = field(default_factory=list)  # x' = (x - offset) / spread
    spread: list[float] = field(default_factory=list)
    sequence: Optional[list[int]] = None              # [steps, features]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        return cls(**d)

    @property
    def n_outputs(self) -> int:
        """Units the output layer must have."""
        return len(self.classes) if self.task == "classification" else len(self.targets)

    def inputs(self, frame, path: Path, dtype) -> np.ndarray:
        """Scaled (and for sequences reshaped) feature array of a checked frame, made
        SCALE_ROWS rows at a time: scaled in float64 into one small scratch block, then
        divided straight into the result in its dtype, so no temporary grows with the data.
        Values too large for the dtype are data errors."""
        # A view, no copy, when the features are one float64 block (as read_csv makes them).
        values = frame[self.features].to_numpy(dtype=np.float64)
        x = np.empty(values.shape, dtype=dtype)
        offset, spread = np.asarray(self.offset), np.asarray(self.spread)
        scratch = np.empty((min(SCALE_ROWS, len(x)), values.shape[1]))
        finite = True
        with np.errstate(over="ignore"):  # too large for the dtype: inf, named below
            for start in range(0, len(x), SCALE_ROWS):
                block, out = values[start:start + SCALE_ROWS], x[start:start + SCALE_ROWS]
                if self.scale == "none":
                    out[...] = block
                else:
                    centered = np.subtract(block, offset, out=scratch[:len(block)])
                    np.divide(centered, spread, out=out, casting="same_kind")
                finite = finite and bool(np.isfinite(out).all())  # while the block is in cache
        if not finite:
            check_in_range(x, frame, path, self.features)
        if self.sequence:
            x = x.reshape(len(x), *self.sequence)
        return x

    def encode(self, frame, path: Path, dtype) -> np.ndarray:
        """Targets as the loss expects them; unknown labels are data errors."""
        if self.task == "regression" or (self.task == "binary" and self.classes == []):
            values = frame[self.targets].to_numpy(dtype=np.float64)
            with np.errstate(over="ignore"):  # too large for the dtype: inf, named by dataset
                return np.ascontiguousarray(values, dtype=dtype)
        column = self.targets[0]
        codes = _integer_codes(frame[column].to_numpy(), self.classes)
        if codes is None:  # labels that are not integers, or unknown ones: one at a time
            index = {label_key(c): i for i, c in enumerate(self.classes)}
            keys = [label_key(v) for v in frame[column].tolist()]
            problems = [
                f"{path}:{row + 2} column {column!r}: label {key!r} was not seen in training "
                f"(known: {', '.join(map(str, self.classes))})"
                for row, key in enumerate(keys) if key not in index
            ]
            if problems:
                raise DataError(_limit(problems, path))
            codes = np.fromiter((index[k] for k in keys), dtype=np.int64, count=len(keys))
        if self.task == "binary":
            return codes.astype(dtype).reshape(-1, 1)
        return codes

    def dataset(self, frame, path: Path, dtype, with_targets: bool = True) -> Dataset:
        y = self.encode(frame, path, dtype) if with_targets else None
        x = self.inputs(frame, path, dtype)
        if y is not None and y.dtype.kind == "f":
            check_in_range(y, frame, path, self.targets)
        return Dataset(x, y)


def check_in_range(array: np.ndarray, frame, path: Path, columns: list[str]) -> None:
    """Values finite in the CSV can still overflow the model's dtype (1e39 in float32)."""
    if np.isfinite(array).all():
        return
    rows, cols = np.nonzero(~np.isfinite(array))
    lines = frame.index.to_numpy()[rows] + 2  # the frame's index is the row in the file
    raise DataError(_limit([f"{path}:{line} column {columns[c]!r}: too large for "
                            f"{array.dtype.name} after scaling" for line, c in zip(lines, cols)],
                           path))


def _integer_codes(values: np.ndarray, classes: list[Any]) -> Optional[np.ndarray]:
    """Class indices of an integer label column, found in one vectorized pass, when every
    class is an integer and every label a known class; otherwise None."""
    if values.dtype.kind not in "iu" or not all(type(c) is int for c in classes):
        return None
    known = np.array(classes, dtype=np.int64)  # sorted, as sorted_labels makes them
    codes = np.minimum(np.searchsorted(known, values), len(known) - 1)
    return codes if np.array_equal(known[codes], values) else None


def label_key(value: Any) -> str:
    """Labels compare as text, with integral floats as integers (1.0 and 1 are one class)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _limit(problems: list[str], path: Path) -> list[str]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return problems[:MAX_PROBLEMS] + [f"{path}: ... and {len(problems) - MAX_PROBLEMS} more problems"]


# ---- reading and checking CSV files -----------------------------------------------------------

def read_csv(path: str | Path):
    """Read a CSV with a header row into a DataFrame, or raise DataError naming the place."""
    import pandas as pd  # deferred: pandas takes a while to import, and --help needs none of it

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # "mixed types" in a column: check_numeric names the cells that are not numbers
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)
            frame = _read_in_chunks(pd, path, CSV_OPTIONS)
            if frame is None:
                frame = pd.read_csv(path, **CSV_OPTIONS)
        _return_free_memory()
    except pd.errors.ParserWarning:
        raise DataError(_limit(_long_rows(path), path)) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty (expected a header row and data rows)") from None
    except pd.errors.ParserError as exc:
        raise DataError(_parser_problem(path, str(exc))) from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    if len(frame) == 0:
        raise DataError(f"{path}: no data rows after the header")
    duplicated = [c for c in frame.columns if re.fullmatch(r".+\.\d+", str(c)) and
                  str(c).rsplit(".", 1)[0] in frame.columns]
    if duplicated:
        raise DataError([f"{path}:1 column {c.rsplit('.', 1)[0]!r}: appears more than once"
                         for c in duplicated])
    frame.columns = [str(c) for c in frame.columns]
    return frame


# skip_blank_lines=False keeps DataFrame row i on CSV line i + 2, so errors can name it;
# index_col=False stops pandas from silently turning a first column into the index when rows
# have more fields than the header (it warns instead, made an error in read_csv).
CSV_OPTIONS = {"skip_blank_lines": False, "index_col": False, "encoding": "utf-8"}
CHUNK_ROWS = 8192  # rows parsed at a time from a large file
FIRST_ROWS = 1024  # rows parsed first, alone, to learn the columns' dtypes


def _read_in_chunks(pd, path: Path, options: dict):
    """pandas.read_csv(path, **options) for a large file, parsed CHUNK_ROWS rows at a time
    straight into one array per NumPy dtype (each column contiguous, as in a DataFrame), so
    the data is held about once while it is read: pandas.read_csv alone peaks near three
    times it. After the first FIRST_ROWS rows, two threads parse the two halves of the rest
    (pandas' tokenizer runs without the GIL), as pandas.read_csv itself does on two cores.

    Returns None, leaving the file to a single read_csv call, when anything is out of the
    ordinary: a small file, quote characters (a quoted line break would shift the halves), a
    parse problem (that call names it), or a column whose dtype differs between chunks."""
    from concurrent.futures import ThreadPoolExecutor

    try:
        with ThreadPoolExecutor(2) as pool:
            scan = pool.submit(_row_starts, path)  # while the first rows tell the dtypes
            first = pd.read_csv(path, nrows=FIRST_ROWS, **options)
            layout = scan.result()
            if layout is None or layout[0] <= 2 * CHUNK_ROWS:
                return None
            rows, starts = layout
            columns, dtypes = list(first.columns), first.dtypes
            groups: dict[np.dtype, list[str]] = {}  # the numeric columns, by dtype
            for name, dtype in dtypes.items():
                if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
                    groups.setdefault(dtype, []).append(name)
            blocks = {dtype: np.empty((rows, len(names)), dtype=dtype, order="F")
                      for dtype, names in groups.items()}
            place = {name: (blocks[dtype], j) for dtype, names in groups.items()
                     for j, name in enumerate(names)}  # a numeric column's block and index
            others = [name for name in columns if name not in place]

            def fill(chunk, row: int):
                """Copy a chunk's numeric columns into its rows; return its other columns."""
                if not chunk.dtypes.equals(dtypes):
                    raise ValueError("a column's dtype differs between chunks")
                for name, column in chunk.items():
                    if name in place:
                        block, j = place[name]
                        block[row:row + len(chunk), j] = column.to_numpy()
                return chunk[others]

            def read_rows(start: int, stop: int) -> list:
                """Parse rows [start, stop) into the blocks; return the other columns."""
                row, pieces = start, []
                with pd.read_csv(_Span(path, starts[start], starts[stop]), header=None,
                                 names=columns, chunksize=CHUNK_ROWS, **options) as reader:
                    for chunk in reader:
                        pieces.append(fill(chunk, row))
                        row += len(chunk)
                if row != stop:
                    raise ValueError("the rows do not match the lines")
                return pieces

            # a multiple of FIRST_ROWS in (FIRST_ROWS, rows), near the middle
            middle = max(2, (rows // FIRST_ROWS + 1) // 2) * FIRST_ROWS
            halves = list(pool.map(read_rows, [FIRST_ROWS, middle], [middle, rows]))
        pieces = [fill(first, 0)] + halves[0] + halves[1]
    except Exception:
        return None
    # DataFrames over the blocks share their memory; so do concat and the reordering.
    parts = [pd.DataFrame(blocks[dtype], columns=names, copy=False)
             for dtype, names in groups.items()]
    if others:
        parts.append(pd.concat(pieces, ignore_index=True))
    return pd.concat(parts, axis=1)[columns]


class _Span(io.RawIOBase):
    """Bytes [start, stop) of a file, read as a file."""

    def __init__(self, path: Path, start: int, stop: int):
        self._file = open(path, "rb")
        self._file.seek(start)
        self._left = stop - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._file.readinto(memoryview(buffer)[:self._left]) if self._left > 0 else 0
        self._left -= n
        return n

    def close(self) -> None:
        self._file.close()
        super().close()


def _row_starts(path: Path):
    """(number of data rows, {row: byte offset where it starts} for rows 0, FIRST_ROWS,
    2 FIRST_ROWS, ... and for the row count: the file's size), or None if the file holds a
    quote character."""
    starts, newlines, size, last = {}, 0, 0, b"\n"
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            if b'"' in block:
                return None
            ends = np.flatnonzero(np.frombuffer(block, np.uint8) == ord("\n"))
            # line break j ends line j (the header is line 0), so data row j starts after it
            for k in range(-newlines % FIRST_ROWS, len(ends), FIRST_ROWS):
                starts[newlines + k] = size + int(ends[k]) + 1
            newlines += len(ends)
            size += len(block)
            last = block[-1:]
    rows = newlines + (last != b"\n") - 1  # a last line without a line break counts too
    starts[rows] = size
    return rows, starts


def _return_free_memory() -> None:
    """Give the C heap's free pages back to the system. After parsing, glibc keeps the
    parser's freed buffers and column arrays (about two chunks' worth, or more after a
    single read) for a reuse that does not come; the scaling that follows needs the memory."""
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to trim


def _long_rows(path: Path) -> list[str]:
    """The rows with more fields than the header (pandas only says that there are some)."""
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        width = len(next(rows))
        return [f"{path}:{rows.line_num}: the row has {len(row)} fields, the header has {width}"
                for row in rows if len(row) > width]


def _parser_problem(path: Path, message: str) -> str:
    found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message)
    if found:
        expected, line, saw = found.groups()
        return f"{path}:{line}: the row has {saw} fields, the header has {expected}"
    return f"{path}: not a readable CSV file ({message.strip().splitlines()[-1]})"


def require_columns(frame, path: Path, columns: list[str], role: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        available = ", ".join(frame.columns[:20]) + (" ..." if len(frame.columns) > 20 else "")
        raise DataError([f"{path}:1 {role} column {c!r}: not in the file (columns: {available})"
                         for c in missing])


def check_numeric(frame, path: Path, columns: list[str]) -> None:
    """Every cell of `columns` must be a finite number; list the cells that are not."""
    import pandas as pd

    problems = []
    for column in _maybe_not_finite(frame, columns):
        values = frame[column]
        numbers = pd.to_numeric(values, errors="coerce")
        bad = ~np.isfinite(numbers.to_numpy(dtype=np.float64))
        for row in np.flatnonzero(bad)[:MAX_PROBLEMS + 1]:
            raw = values.iloc[row]
            if raw is None or (isinstance(raw, float) and math.isnan(raw)):
                what = "empty line" if frame.iloc[row].isna().all() else "missing value"
            elif isinstance(raw, (int, float)):
                what = f"not a finite number ({raw})"
            else:
                what = f"not a number ({str(raw)!r})"
            problems.append((row, f"{path}:{row + 2} column {column!r}: {what}"))
        if values.dtype == object and not bad.any():
            frame[column] = numbers
    if problems:
        raise DataError(_limit([p for _, p in sorted(problems)], path))


def _maybe_not_finite(frame, columns: list[str]) -> list[str]:
    """`columns` less those known to hold only finite numbers: integer columns, and float
    columns found finite in one vectorized pass (a column at a time costs far more)."""
    dtypes = frame.dtypes.to_dict()
    kinds = {c: dtypes[c].kind if isinstance(dtypes[c], np.dtype) else None for c in columns}
    floats = [c for c in columns if kinds[c] == "f"]
    finite = {c for c in columns if kinds[c] in ("i", "u")}
    if floats:
        ok = np.isfinite(frame[floats].to_numpy()).all(axis=0)
        finite.update(c for c, good in zip(floats, ok) if good)
    return [c for c in columns if c not in finite]


def check_labels(frame, path: Path, column: str) -> None:
    problems = [f"{path}:{row + 2} column {column!r}: missing label"
                for row in np.flatnonzero(frame[column].isna().to_numpy())]
    if problems:
        raise DataError(_limit(problems, path))


def sorted_labels(values) -> list[Any]:
    """Distinct labels in sorted order, as plain Python values (numbers sort numerically)."""
    distinct = {label_key(v): v for v in values}
    labels = [v.item() if hasattr(v, "item") else v for v in distinct.values()]
    labels = [int(v) if isinstance(v, float) and v.is_integer() else v for v in labels]
    if all(isinstance(v, (int, float)) for v in labels):
        return sorted(labels)
    return sorted(labels, key=str)


# ---- training data ------------------------------------------------------------------------

@dataclass
class TrainingData:
    train: Dataset
    validation: Optional[Dataset]
    test: Optional[Dataset]
    preprocessing: Preprocessing


def feature_columns(frame, targets: list[str], features: Optional[list[str]]) -> list[str]:
    if features is not None:
        return list(features)
    return [c for c in frame.columns if c not in targets]


def load_training_data(spec, task: str, rng: np.random.Generator, dtype,
                       check: Optional[Callable[[Preprocessing], None]] = None) -> TrainingData:
    """Read train (and validation/test) files per the config's `data` section, split, fit the
    scaler on the training split only, and encode everything the same way. `check` sees the
    columns and classes before any array is built (the config's checks against the data)."""
    train_path = Path(spec.train)
    frame = read_csv(train_path)
    targets = spec.targets
    features = feature_columns(frame, targets, spec.features)
    _check_frame(frame, train_path, features, targets, task)
    if not features:
        raise DataError(f"{train_path}:1: no feature columns besides the target(s)")
    overlap = sorted(set(features) & set(targets))
    if overlap:
        raise DataError(f"{train_path}:1 column {overlap[0]!r}: is both a feature and a target")

    prep = Preprocessing(task=task, features=features, targets=targets,
                         sequence=[spec.sequence.steps, spec.sequence.features]
                         if spec.sequence else None)
    prep.classes = _classes(frame, train_path, targets, task)
    if check is not None:
        check(prep)

    validation_frame = None
    if isinstance(spec.validation, float):
        single_label = task == "classification" or (task == "binary" and len(targets) == 1)
        labels = prep.encode(frame, train_path, np.float64).reshape(-1) if single_label else None
        train_rows, val_rows = split_indices(len(frame), spec.validation, rng, labels)
        if len(val_rows) == 0 or len(train_rows) == 0:
            raise DataError(f"{train_path}: {len(frame)} rows are too few to hold out a "
                            f"validation fraction of {spec.validation:g}")
        frame, validation_frame = frame.iloc[train_rows], frame.iloc[val_rows]
        validation_path = train_path
    elif isinstance(spec.validation, str):
        validation_path = Path(spec.validation)
        validation_frame = _read_like(validation_path, features, targets, task)

    _fit_scaler(prep, frame[features].to_numpy(dtype=np.float64), spec.scale)
    train = prep.dataset(frame, train_path, dtype)
    validation = (prep.dataset(validation_frame, validation_path, dtype)
                  if validation_frame is not None else None)
    test = None
    if spec.test:
        test_path = Path(spec.test)
        test = prep.dataset(_read_like(test_path, features, targets, task), test_path, dtype)
    return TrainingData(train, validation, test, prep)


def _check_frame(frame, path: Path, features: list[str], targets: list[str], task: str) -> None:
    require_columns(frame, path, targets, "target")
    require_columns(frame, path, features, "feature")
    problems = []
    numeric_targets = targets if task == "regression" or len(targets) > 1 else []
    try:
        check_numeric(frame, path, features + numeric_targets)
    except DataError as exc:
        problems += exc.problems
    if task != "regression" and len(targets) == 1:
        try:
            check_labels(frame, path, targets[0])
        except DataError as exc:
            problems += exc.problems
    if problems:
        raise DataError(problems)


def _read_like(path: Path, features: list[str], targets: list[str], task: str):
    frame = read_csv(path)
    _check_frame(frame, path, features, targets, task)
    return frame


def _classes(frame, path: Path, targets: list[str], task: str) -> list[Any]:
    if task == "regression":
        return []
    if task == "binary" and len(targets) > 1:
        problems = []
        for column in targets:
            values = frame[column].to_numpy(dtype=np.float64)
            for row in np.flatnonzero((values != 0) & (values != 1))[:MAX_PROBLEMS]:
                problems.append(f"{path}:{row + 2} column {column!r}: binary_crossentropy with "
                                f"several targets needs 0/1 values (got {values[row]:g})")
        if problems:
            raise DataError(_limit(problems, path))
        return []
    column = frame[targets[0]]
    labels = (np.unique(column.to_numpy()).tolist() if column.dtype.kind in "iu"
              else sorted_labels(column.tolist()))  # the same result, one label at a time
    if task == "binary":
        if len(labels) > 2:
            raise DataError(f"{path}:1 column {targets[0]!r}: binary_crossentropy needs two "
                            f"classes, found {len(labels)} ({_preview(labels)})")
        if len(labels) < 2 and set(map(label_key, labels)) <= {"0", "1"}:
            labels = [0, 1]
    if len(labels) < 2:
        raise DataError(f"{path}:1 column {targets[0]!r}: only one class "
                        f"({_preview(labels)}); a classifier needs at least two")
    return labels


def _preview(labels: list[Any], limit: int = 8) -> str:
    shown = ", ".join(map(str, labels[:limit]))
    return shown + (", ..." if len(labels) > limit else "")


def _fit_scaler(prep: Preprocessing, x: np.ndarray, kind: str) -> None:
    """Per-column statistics of the training split; constant columns get a spread of 1."""
    prep.scale = kind
    if kind == "standard":
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below
            offset = x.mean(axis=0)
            # A block of columns at a time: x.std makes a temporary as large as x.
            spread = np.concatenate([x[:, c:c + 64].std(axis=0)
                                     for c in range(0, x.shape[1], 64)])
    elif kind == "minmax":
        offset, spread = x.min(axis=0), x.max(axis=0) - x.min(axis=0)
    else:
        prep.offset, prep.spread = [], []
        return
    spread = np.where(spread > 0, spread, 1.0)
    too_large = [name for name, o, s in zip(prep.features, offset, spread)
                 if not (np.isfinite(o) and np.isfinite(s))]
    if too_large:
        raise DataError([f"column {name!r}: values too large to scale ({kind} scaling "
                         "overflows)" for name in too_large])
    prep.offset, prep.spread = offset.tolist(), spread.tolist()


def split_indices(n: int, fraction: float, rng: np.random.Generator,
                  labels: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/validation split; with labels, each class is split in the same proportion
    (at least one validation row for any class with two or more rows)."""
    if labels is None:
        order = rng.permutation(n)
        n_val = int(round(n * fraction))
        return np.sort(order[n_val:]), np.sort(order[:n_val])
    val = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_val = int(round(len(members) * fraction))
        if n_val == 0 and len(members) > 1:
            n_val = 1
        val.append(members[:n_val])
    val_rows = np.sort(np.concatenate(val))
    train_rows = np.setdiff1d(np.arange(n), val_rows)
    return train_rows, val_rows


# ---- files at eval / predict time -------------------------------------------------------------

def load_for_eval(path: str | Path, prep: Preprocessing, dtype) -> Dataset:
    path = Path(path)
    frame = _read_like(path, prep.features, prep.targets, prep.task)
    return prep.dataset(frame, path, dtype)


def load_for_predict(path: str | Path, prep: Preprocessing, dtype, keep: list[str] = ()):
    """Features of a file that may lack the target; returns (inputs, the frame)."""
    path = Path(path)
    frame = read_csv(path)
    require_columns(frame, path, prep.features, "feature")
    require_columns(frame, path, list(keep), "--keep")
    check_numeric(frame, path, prep.features)
    return prep.inputs(frame, path, dtype), frame


# ---- batches -------------------------------------------------------------------------------

def batches(n: int, batch_size: int, order: Optional[np.ndarray] = None):
    """Yield index slices (or index arrays, when shuffled) of consecutive batches."""
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        yield slice(start, stop) if order is None else order[start:stop]
