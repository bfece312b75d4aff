"""Feature columns: the type of each (declared in `data.columns`, else detected from the
training split) and one small fitted encoder per type.

An encoder is fitted on the training split (`fit`), turns a column into model inputs the same
way at train, eval and predict time (`encode`), and is stored with the model (`to_dict`,
`column_from_dict`). Numeric, binary and datetime columns encode to float columns; a
categorical column encodes to category codes, which the preprocessing turns into one-hot
columns or feeds to an embedding table.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional

import numpy as np

from ..config import label_text
from .problems import cells, lines_of

NUMERIC, CATEGORICAL, BINARY, DATETIME, IGNORE = (
    "numeric", "categorical", "binary", "datetime", "ignore")

TEXT_TYPES = (CATEGORICAL, BINARY)  # read as text, so '02134' and 'True' keep their spelling
UNNAMED_INDEX = re.compile(r"Unnamed: \d+")  # what pandas calls a CSV's unnamed first column
DISTINCT_SHARE = 0.5   # text with a distinct value in half its rows or more: ids, names, notes
MIN_DISTINCT = 20      # ... once it has this many values, so small files keep their categories
NUMBER_SHARE = 0.8     # text that is mostly numbers is a numeric column with a few bad cells
TRUE_WORDS = {"1", "true", "t", "yes", "y", "on"}
FALSE_WORDS = {"0", "false", "f", "no", "n", "off"}
BLANK_SLOT, OTHER_SLOT = "(blank)", "(other)"  # how the two extra categories are shown


@dataclass
class Report:
    """Problems (errors) and notes (warnings) about one file, named by its lines."""

    path: Path
    frame: Any
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def cells(self, column: str, mask: np.ndarray, one: str, many: str, hint: str = "") -> None:
        self.problems.append(cells(self.path, column, lines_of(self.frame, np.flatnonzero(mask)),
                                   one, many, hint))

    def unreadable(self, column: str, mask: np.ndarray, values, kind: str,
                   expected: str = "") -> None:
        """Cells that are not a `kind` (number, date), with the setting that reads them."""
        example = str(values.to_numpy()[mask][0])
        self.cells(column, mask, f"not a {kind} ({example!r})",
                   f"are not {kind}s (e.g. {example!r}{expected})",
                   f"declare it `{column}: categorical` in data.columns to read its values "
                   "as categories")


def cells_are(count: int) -> str:
    return f"{count} cell is" if count == 1 else f"{count} cells are"


def cells_hold(count: int) -> str:
    return f"{count} cell holds" if count == 1 else f"{count} cells hold"


# ---- detection --------------------------------------------------------------------------------

def detect_type(values) -> tuple[str, str]:
    """(type, reason) of an undeclared column, from its training values: rules in order."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    if UNNAMED_INDEX.fullmatch(str(values.name)):
        return IGNORE, "pandas' unnamed index column"
    if every_cell_blank(values):
        return IGNORE, "every cell is blank"
    if is_bool_dtype(values.dtype):
        return BINARY, "true/false values"
    if is_numeric_dtype(values.dtype):  # decided by the dtype: no need for its distinct values
        return NUMERIC, "numbers"
    filled = values.dropna()
    distinct = filled.unique()
    if all(isinstance(v, (bool, np.bool_)) for v in distinct):
        return BINARY, "true/false values"  # an object column of bools had blanks
    if number_share(distinct) >= NUMBER_SHARE:
        return NUMERIC, "numbers"
    date_format = guess_date_format(distinct)
    if date_format is not None:
        return DATETIME, f"dates ({date_format})"
    if len(distinct) == 2:
        return BINARY, "two distinct values"
    if len(distinct) == 1 and len(filled) == len(values):
        return IGNORE, f"the same value in every row ({distinct[0]!r})"
    if len(distinct) >= max(MIN_DISTINCT, DISTINCT_SHARE * len(filled)):
        return IGNORE, (f"{len(distinct)} distinct values in {len(filled)} rows: an id, a name "
                        "or free text")
    return CATEGORICAL, "text"


def every_cell_blank(values) -> bool:
    """values.count() == 0, without a pass over a column of numbers whose first cell is filled
    (NumPy integers cannot be blank): a wide numeric file has hundreds of them."""
    kind = values.dtype.kind if isinstance(values.dtype, np.dtype) else None
    if kind in ("i", "u"):
        return False
    if kind == "f" and len(values) and not np.isnan(values.iloc[0]):
        return False
    return values.count() == 0


def number_share(distinct: np.ndarray) -> float:
    import pandas as pd

    numbers = pd.to_numeric(pd.Series(distinct, dtype=object), errors="coerce")
    return float(numbers.notna().mean()) if len(distinct) else 0.0


GUESS_FROM = 20  # distinct values whose formats are tried on all of them


def guess_date_format(distinct: np.ndarray) -> Optional[str]:
    """The strftime format that parses every value, or None. Formats are guessed from the
    first few values, month first and day first: '01/02/2020' alone cannot tell which."""
    import pandas as pd
    from pandas.tseries.api import guess_datetime_format

    values = pd.Series(distinct, dtype=object).astype(str)
    tried = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for value in values[:GUESS_FROM]:
            for dayfirst in (False, True):
                guessed = guess_datetime_format(value, dayfirst=dayfirst)
                if guessed is None or guessed in tried or not any(
                        code in guessed for code in ("%d", "%m", "%b", "%B")):
                    continue
                tried.add(guessed)
                if pd.to_datetime(values, format=guessed, errors="coerce").notna().all():
                    return guessed
    return None


def as_text(values):
    """A column's cells as text, blanks as NaN: labels compare as text, with integral numbers
    written as integers (1.0 and 1 are one category)."""
    from pandas.api.types import is_bool_dtype, is_float_dtype, is_numeric_dtype

    if values.dtype == object:  # Python objects, not always text
        return values.map(label_text, na_action="ignore")
    if not (is_numeric_dtype(values.dtype) or is_bool_dtype(values.dtype)):
        return values
    blank = values.isna()
    if is_float_dtype(values.dtype):
        finite = values[~blank]
        if (finite == np.round(finite)).all() and (finite.abs() < 2 ** 53).all():
            values = values.fillna(0).astype(np.int64)
        else:  # 5.0 beside 5.1: each cell on its own, so 5.0 reads "5" as the classes do
            return values.map(label_text, na_action="ignore")
    return values.astype(str).where(~blank)


# ---- encoders ---------------------------------------------------------------------------------

class OneInput:
    """A column read as one input, plus an "is missing" input where training had blanks."""

    name: str
    indicator: bool

    @property
    def outputs(self) -> list[str]:
        return [self.name] + [f"{self.name} is missing"] * self.indicator


@dataclass
class Numeric(OneInput):
    """Numbers; blanks filled with the training split's statistic, plus a 0/1 "is missing"
    input where training had blanks. The value is scaled, the indicator is not."""

    name: str
    fill: float = 0.0
    statistic: str = "median"   # median | mean | zero | error
    indicator: bool = False
    blanks: int = 0             # blank cells in the training split

    type: ClassVar[str] = NUMERIC

    def fit(self, values, report: Report, indicators: bool) -> None:
        """Fit on the training split. Returns None, not the split's encoding as the other
        encoders do: numbers cost nothing to read again when the inputs are built."""
        if isinstance(values.dtype, np.dtype) and values.dtype.kind in "iu":
            return self._fit_integers(values.to_numpy())
        numbers = self.numbers(values, report)  # a copy of its own, which the median reorders
        blank = np.isnan(numbers)
        self.blanks = int(blank.sum())
        finite = numbers[~blank] if self.blanks else numbers
        if self.statistic == "mean" and finite.size:
            self.fill = float(finite.mean())
        elif self.statistic in ("median", "error") and finite.size:
            self.fill = median_in_place(finite)
        else:
            self.fill = 0.0
        self.indicator = indicators and self.blanks > 0

    def _fit_integers(self, ints: np.ndarray) -> None:
        """`fit` for a column of NumPy integers, which has no blank and no bad cell: the same
        fill, but the median is found among the integers (by counting when their range is
        small), not by sorting float64 copies."""
        self.blanks, self.indicator = 0, False
        if self.statistic == "mean" and ints.size:
            self.fill = float(ints.astype(np.float64).mean())
        elif self.statistic in ("median", "error") and ints.size:
            self.fill = integer_median(ints)
        else:
            self.fill = 0.0

    def numbers(self, values, report: Report) -> np.ndarray:
        """float64 values, NaN where blank; cells that are not finite numbers are problems."""
        import pandas as pd
        from pandas.api.types import is_numeric_dtype

        if is_numeric_dtype(values.dtype):
            # NumPy columns hold their blanks as NaN already (asking pandas for na_value costs
            # a pass); pandas' nullable ones hold pd.NA, which pandas 2 converts only when told
            na = {} if isinstance(values.dtype, np.dtype) else {"na_value": np.nan}
            numbers = values.to_numpy(dtype=np.float64, copy=True, **na)
            bad = np.isinf(numbers)
            if bad.any():
                report.cells(self.name, bad, f"not a finite number ({numbers[bad][0]})",
                             f"are not finite numbers (e.g. {numbers[bad][0]})")
        else:
            numbers = pd.to_numeric(values, errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan, copy=True)
            bad = ~np.isfinite(numbers) & values.notna().to_numpy()
            if bad.any():
                report.unreadable(self.name, bad, values, "number")
            numbers[bad] = 0.0  # reported: keep them out of the statistics
        if self.statistic == "error":
            blank = np.isnan(numbers)
            if blank.any():
                report.cells(self.name, blank, "missing value", "are blank",
                             "set data.missing to median, mean or zero to fill them")
        return numbers

    def encode(self, values, report: Report) -> list[np.ndarray]:
        return self._filled(self.numbers(values, report))

    def _filled(self, numbers: np.ndarray) -> list[np.ndarray]:
        blank = np.isnan(numbers)
        numbers[blank] = self.fill
        return [numbers, blank.astype(np.float64)] if self.indicator else [numbers]

    @property
    def scaled(self) -> list[bool]:
        return [True] + [False] * self.indicator

    def describe(self) -> str:
        if self.statistic == "error":
            return "no blanks allowed"
        return f"fill {self.statistic} {self.fill:.4g}" + _blanks(self.blanks, self.indicator)


def integer_median(ints: np.ndarray) -> float:
    """np.median(ints.astype(np.float64)), to the bit, without sorting: the middle values are
    found among the integers (by counting when their range is at most a few times their
    number), then averaged in float64 as np.median does. Converting to float64 keeps the
    order, so the middle values are the same in both."""
    n = len(ints)
    low, high = int(ints.min()), int(ints.max())
    middle = [(n - 1) // 2, n // 2]
    if high - low <= 4 * n:
        counts = np.cumsum(np.bincount((ints - low).astype(np.intp)))
        a, b = (low + int(np.searchsorted(counts, k, side="right")) for k in middle)
    else:
        a, b = (int(v) for v in np.partition(ints, middle)[middle])
    return float((np.float64(a) + np.float64(b)) / 2)


def median_in_place(numbers: np.ndarray) -> float:
    """np.median of float64 numbers without NaN, to the bit, possibly reordering them: the
    middle value, or the two middle values averaged in float64 as np.median does."""
    n = len(numbers)
    k = (n - 1) // 2
    if n % 2:
        return float(smallest(numbers, [k])[0])
    low, high = smallest(numbers, [k, k + 1])
    return float((low + high) / 2)


# Sample size of `smallest`'s bracket, and how many sample places it reaches either side of
# the ranks. A rank's place in an evenly spread sample of m values varies by about
# sqrt(m) / 2 (16 here), so three times that holds the ranks unless the values are ordered
# in step with the sample's stride; the bracket then holds about 10% of the values.
SAMPLE = 1024
REACH = 48


def smallest(numbers: np.ndarray, ranks: list[int]) -> list:
    """The values of the given ranks (0: the smallest) among float64 numbers without NaN,
    possibly reordering them. A full selection (np.partition) costs about 10 ns a value; on
    a long column this first brackets the ranks between two values of a sample (every
    len/SAMPLE-th value, sorted), counts the values below the bracket and selects among the
    few inside it, about a quarter of the time. The result is the same whichever way: where
    the bracket misses a rank, the full selection runs."""
    n = len(numbers)
    if n >= 16 * SAMPLE:
        sample = np.sort(numbers[::n // SAMPLE])
        places = len(sample) / n
        low = sample[max(int(ranks[0] * places) - REACH, 0)]
        high = sample[min(int(ranks[-1] * places) + REACH, len(sample) - 1)]
        below = np.count_nonzero(numbers < low)
        inside = numbers[(numbers >= low) & (numbers <= high)]
        if below <= ranks[0] and ranks[-1] < below + len(inside):
            inside.partition([rank - below for rank in ranks])
            return [inside[rank - below] for rank in ranks]
    numbers.partition(ranks)
    return [numbers[rank] for rank in ranks]


def _blanks(count: int, indicator: bool) -> str:
    """How many blanks training had, and whether they got an indicator input."""
    return f" ({count} blank)" * bool(count) + " + indicator" * indicator


@dataclass
class Binary(OneInput):
    """Two values, read as 0 and 1 (yes/true/1 and the like are 1, else the later in sorted
    order). A blank, or a value that is neither, reads as the training split's share of 1s,
    with a "is missing" input where training had blanks. Not scaled."""

    name: str
    negative: Optional[str] = None
    positive: Optional[str] = None
    fill: float = 0.0
    indicator: bool = False
    blanks: int = 0

    type: ClassVar[str] = BINARY

    def fit(self, values, report: Report, indicators: bool) -> list[np.ndarray]:
        text = as_text(values)
        blank = text.isna().to_numpy()
        self.blanks = int(blank.sum())
        distinct = sorted(text.dropna().unique(), key=str)
        if len(distinct) > 2:
            report.problems.append(
                f"{report.path}:1 column {self.name!r}: declared binary but has {len(distinct)} "
                f"distinct values ({', '.join(map(repr, distinct[:5]))}"
                f"{', ...' if len(distinct) > 5 else ''}); declare it categorical")
            return []
        truthy = [v for v in distinct if v.strip().lower() in TRUE_WORDS]
        falsy = [v for v in distinct if v.strip().lower() in FALSE_WORDS]
        if len(truthy) == 1:
            self.positive = truthy[0]
        elif len(falsy) == 1 and len(distinct) == 2:
            self.positive = next(v for v in distinct if v != falsy[0])
        else:
            self.positive = distinct[-1] if distinct else None
        rest = [v for v in distinct if v != self.positive]
        self.negative = rest[0] if rest else None
        ones = (text == self.positive).to_numpy()
        self.fill = float(ones[~blank].mean()) if (~blank).any() else 0.0
        self.indicator = indicators and self.blanks > 0
        return self._encoded(text, report)

    def encode(self, values, report: Report) -> list[np.ndarray]:
        return self._encoded(as_text(values), report)

    def _encoded(self, text, report: Report) -> list[np.ndarray]:
        blank = text.isna().to_numpy()
        ones = (text == self.positive).to_numpy()
        zeros = (text == self.negative).to_numpy()
        other = ~(blank | ones | zeros)
        if other.any():
            example = text.to_numpy()[other][0]
            report.notes.append(f"{report.path}: column {self.name!r}: {cells_are(other.sum())} "
                                f"neither {self.negative!r} nor {self.positive!r} (e.g. "
                                f"{example!r}): read as blank")
        out = np.where(ones, 1.0, np.where(zeros, 0.0, self.fill))
        return [out, blank.astype(np.float64)] if self.indicator else [out]

    @property
    def scaled(self) -> list[bool]:
        return [False] * (1 + self.indicator)

    def describe(self) -> str:
        text = f"{self.negative} = 0, {self.positive} = 1"
        if self.blanks:
            text += f"; fill {self.fill:.3g}" + _blanks(self.blanks, self.indicator)
        return text


DATE_PARTS = ("year", "month", "day", "weekday", "day_of_year", "time_of_day", "elapsed_days")


@dataclass
class Datetime:
    """Dates and times, as numeric parts: year, month, day, weekday (Monday = 0), day of year,
    time of day (hours) and elapsed days since 1970-01-01. Parts constant in the training
    split are dropped. Blanks take each part's training median, plus a "is missing" input
    where training had blanks. The parts are scaled."""

    name: str
    format: Optional[str] = None  # strftime format; fitted: the one that reads every value
    parts: list[str] = field(default_factory=lambda: list(DATE_PARTS))
    fills: list[float] = field(default_factory=list)
    indicator: bool = False
    blanks: int = 0

    type: ClassVar[str] = DATETIME

    def parse(self, values, report: Report):
        import pandas as pd

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            text = as_text(values)
            stamps = pd.to_datetime(text, format=self.format, errors="coerce", utc=True)
        bad = (stamps.isna() & text.notna()).to_numpy()
        if bad.any():
            report.unreadable(self.name, bad, text, "date", f", expected {self.format}")
        return stamps.dt.tz_localize(None)

    @staticmethod
    def part(stamps, name: str) -> np.ndarray:
        import pandas as pd

        dt = stamps.dt
        if name == "time_of_day":
            values = (stamps - stamps.dt.normalize()) / pd.Timedelta(hours=1)
        elif name == "elapsed_days":
            values = (stamps - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
        else:
            values = getattr(dt, {"weekday": "day_of_week"}.get(name, name))
        return values.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)

    def fit(self, values, report: Report, indicators: bool) -> list[np.ndarray]:
        # "mixed" reads each cell on its own (dateutil): slow, for formats no guess finds
        filled = as_text(values).dropna().unique()
        self.format = (guess_date_format(filled) if len(filled) else None) or "mixed"
        stamps = self.parse(values, report)
        blank = stamps.isna().to_numpy()
        self.blanks = int(blank.sum())
        kept, fills = [], []
        for name in DATE_PARTS:
            part = self.part(stamps, name)[~blank]
            if part.size and part.min() != part.max():
                kept.append(name)
                fills.append(float(np.median(part)))
        self.parts, self.fills = kept, fills
        self.indicator = indicators and self.blanks > 0
        return self._encoded(stamps)

    def encode(self, values, report: Report) -> list[np.ndarray]:
        return self._encoded(self.parse(values, report))

    def _encoded(self, stamps) -> list[np.ndarray]:
        blank = stamps.isna().to_numpy()
        out = []
        for name, fill in zip(self.parts, self.fills):
            part = self.part(stamps, name)
            part[blank] = fill
            out.append(part)
        return out + [blank.astype(np.float64)] * self.indicator

    @property
    def outputs(self) -> list[str]:
        return [f"{self.name} {p}" for p in self.parts] + \
            [f"{self.name} is missing"] * self.indicator

    @property
    def scaled(self) -> list[bool]:
        return [True] * len(self.parts) + [False] * self.indicator

    def describe(self) -> str:
        text = ", ".join(self.parts) if self.parts else "no part varies: nothing to learn from"
        if self.blanks:
            text += "; fill medians" + _blanks(self.blanks, self.indicator)
        return text


@dataclass
class Categorical:
    """Text categories fitted on the training split, in sorted order, then a blank category
    (where training had blanks) and an "other" one (where rare categories were folded into it,
    and always with an embedding). At eval and predict, a value outside the categories reads
    as "other" (all zeros for one-hot without an "other" column), counted in a note."""

    name: str
    categories: list[str] = field(default_factory=list)
    blank: bool = False
    other: bool = False
    folded: list[str] = field(default_factory=list)  # rare training values, read as "other"
    encoding: str = "one_hot"  # one_hot | embedding
    dim: int = 0               # embedding width
    l1: float = 0.0
    l2: float = 0.0

    type: ClassVar[str] = CATEGORICAL

    def fit(self, values, report: Report, indicators: bool, max_categories: Optional[int] = None,
            min_frequency: Optional[int] = None, dim: Optional[int] = None) -> np.ndarray:
        text = as_text(values)
        counts = text.value_counts(dropna=True)  # most frequent first
        order = sorted(zip(counts.index, counts.to_numpy()), key=lambda kv: (-kv[1], str(kv[0])))
        kept = [value for value, count in order if count >= (min_frequency or 1)]
        if max_categories is not None and (len(kept) > max_categories or (
                len(kept) < len(order) and len(kept) >= max_categories)):
            kept = kept[:max(max_categories - 1, 0)]  # as scikit-learn: "other" counts as one
        self.categories = sorted(map(str, kept))
        self.folded = sorted(str(value) for value, _ in order[len(kept):])
        self.blank = bool(text.isna().any())
        self.other = bool(self.folded) or self.encoding == "embedding"
        if self.encoding == "embedding":
            self.dim = dim or embedding_dim(self.size)
        return self.codes(text, None)  # the folded categories read as "other", unremarked

    @property
    def slots(self) -> list[str]:
        return self.categories + [BLANK_SLOT] * self.blank + [OTHER_SLOT] * self.other

    @property
    def size(self) -> int:
        return len(self.categories) + self.blank + self.other

    def codes(self, values, report: Optional[Report]) -> np.ndarray:
        """Each cell's slot; -1 for a value outside the categories when there is no "other"."""
        import pandas as pd

        text = as_text(values)
        known = pd.Index(self.categories + self.folded, dtype=object)
        found = known.get_indexer(text)
        blank = text.isna().to_numpy()
        retry = np.flatnonzero((found < 0) & ~blank)
        if len(retry):  # '1.0' is the category '1' (a float column); '02134' stays '02134'
            numbers = pd.to_numeric(text.iloc[retry], errors="coerce")
            number = numbers.notna().to_numpy()
            found[retry[number]] = known.get_indexer(numbers[number].map(label_text))
        unseen = (found < 0) & ~blank
        if not self.blank:
            unseen |= blank  # a blank where training had none is unseen too
        other = len(self.categories) + self.blank if self.other else -1
        codes = found.astype(np.int64)
        codes[(found >= len(self.categories)) | unseen] = other
        if self.blank:
            codes[blank] = len(self.categories)
        if report is not None and unseen.any():
            example = text.to_numpy()[unseen][0]
            shown = "a blank" if example is None or example != example else repr(example)
            report.notes.append(
                f"{report.path}: column {self.name!r}: {cells_hold(int(unseen.sum()))} a value "
                f"outside the training categories (e.g. {shown}): read as "
                + ("'other'" if self.other else "no category (all zeros)"))
        return codes

    encode = codes

    @property
    def outputs(self) -> list[str]:
        return [] if self.encoding == "embedding" else [f"{self.name}={s}" for s in self.slots]

    @property
    def scaled(self) -> list[bool]:
        return [False] * len(self.outputs)

    def describe(self) -> str:
        shown = ", ".join(self.categories[:4]) + (", ..." if len(self.categories) > 4 else "")
        text = f"{len(self.categories)}: {shown}"
        if self.blank:
            text += " + blank"
        if self.folded:
            text += f" + other ({len(self.folded)} folded)"
        if self.encoding == "embedding":
            text = f"embedding {self.size} x {self.dim}; {text}"
        return text


def embedding_dim(categories: int) -> int:
    """fastai's rule of thumb for an embedding's width: min(600, round(1.6 n^0.56))."""
    return int(min(600, round(1.6 * categories ** 0.56)))


COLUMN_TYPES: dict[str, type] = {cls.type: cls for cls in (Numeric, Binary, Datetime, Categorical)}


def column_to_dict(column) -> dict:
    return {"type": column.type, **asdict(column)}


def column_from_dict(data: dict):
    """An encoder from its stored form; KeyError, TypeError or ValueError if malformed."""
    data = dict(data)
    cls = COLUMN_TYPES[data.pop("type")]
    column = cls(**data)
    for name, kind in cls.__annotations__.items():
        value = getattr(column, name, None)
        if name != "type" and value is not None and not _fits(value, kind):
            raise TypeError(f"column {column.name!r}: {name} is not {kind}")
    if isinstance(column, Datetime) and len(column.parts) != len(column.fills):
        raise ValueError(f"column {column.name!r}: parts and fills differ in length")
    return column


def _fits(value: Any, kind: str) -> bool:
    checks = {"str": str, "float": (int, float), "int": int, "bool": bool}
    base = kind.replace("Optional[", "").rstrip("]")
    if base.startswith("list["):
        inner = base[5:]
        return isinstance(value, list) and all(_fits(v, inner) for v in value)
    if base == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, checks.get(base, object))
