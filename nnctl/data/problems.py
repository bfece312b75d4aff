"""How data problems are worded: every one names the file, the line (header = line 1) and the
column, and a long list is cut short with a count of everything left out."""

from __future__ import annotations

from pathlib import Path

import numpy as np

MAX_PROBLEMS = 10  # per file: enough to see a pattern, few enough to read
ROWS_SHOWN = 3     # lines listed in a problem that covers many cells


def limit(problems: list[str], path: Path, total: int | None = None) -> list[str]:
    """The first MAX_PROBLEMS problems and a line counting the rest; `total` is the number of
    problems found when only some of them were worded."""
    total = len(problems) if total is None else total
    if total <= MAX_PROBLEMS:
        return problems[:MAX_PROBLEMS]
    more = total - MAX_PROBLEMS
    return problems[:MAX_PROBLEMS] + [f"{path}: ... and {more} more problem{'s' * (more != 1)}"]


def lines_of(frame, positions: np.ndarray) -> np.ndarray:
    """CSV line numbers of positional rows: the frame's index is the row in the file."""
    return frame.index.to_numpy()[positions] + 2


def cells(path: Path, column: str, lines: np.ndarray, one: str, many: str,
          hint: str = "") -> str:
    """One problem for any number of cells of a column, at the first one's line:
    `f.csv:5 column 'age': missing value` for one cell, `f.csv:5 column 'age': 214 cells are
    blank (lines 5, 9, 12, ...)` for many; then the hint."""
    if len(lines) == 1:
        text = f"{path}:{lines[0]} column {column!r}: {one}"
    else:
        shown = ", ".join(str(line) for line in lines[:ROWS_SHOWN])
        more = ", ..." if len(lines) > ROWS_SHOWN else ""
        text = f"{path}:{lines[0]} column {column!r}: {len(lines)} cells {many} (lines {shown}{more})"
    return f"{text}; {hint}" if hint else text


def check_in_range(array: np.ndarray, frame, path: Path, columns: list[str]) -> None:
    """Values finite in the CSV can still overflow the model's dtype (1e39 in float32)."""
    from ..errors import DataError

    if np.isfinite(array).all():
        return
    rows, cols = np.nonzero(~np.isfinite(array))
    lines = lines_of(frame, rows[:MAX_PROBLEMS])  # worded; every one is counted
    problems = [f"{path}:{line} column {columns[c]!r}: too large for {array.dtype.name} after "
                "scaling" for line, c in zip(lines, cols)]
    raise DataError(limit(problems, path, total=len(rows)))
