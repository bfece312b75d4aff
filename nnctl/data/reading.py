"""Reading CSV files into DataFrames: pandas with the file's row numbers kept, large files parsed
in chunks straight into their final arrays, and every problem named by file and line."""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..errors import DataError
from ..files import open_regular
from .problems import limit

def read_csv(path: str | Path, text_columns: Iterable[str] = (),
             cache: str | os.PathLike | None = None):
    """Read a CSV with a header row into a DataFrame, or raise DataError naming the place.
    `text_columns` are read as text whatever they hold ('02134' stays '02134').
    With `cache` (a folder), a file read before with the same content and text columns is
    not parsed again: see cache.py."""
    path, text_columns = Path(path), sorted(set(text_columns))
    with open_regular(path, DataError):  # a FIFO or a device is refused, not read
        pass
    if cache is None:
        return _parse_csv(path, text_columns)
    from .cache import cached_read

    return cached_read(cache, path, {"text_columns": text_columns, "csv_options": CSV_OPTIONS},
                       lambda: _parse_csv(path, text_columns))


def _parse_csv(path: Path, text_columns: list[str]):
    import pandas as pd  # deferred: pandas takes a while to import, and --help needs none of it

    options = dict(CSV_OPTIONS, dtype={name: str for name in text_columns})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # "mixed types" in a column: the column's encoder names the cells it cannot read
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)
            frame = _read_in_chunks(pd, path, options)
            if frame is None:
                frame = pd.read_csv(path, **options)
        _return_free_memory()
    except pd.errors.ParserWarning:
        raise DataError(limit(_long_rows(path), path)) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty (expected a header row and data rows)") from None
    except pd.errors.ParserError as exc:
        raise DataError(_parser_problem(path, str(exc))) from None
    except UnicodeDecodeError:
        raise DataError(_not_utf8(path)) from None
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


def read_table(data, text_columns: Iterable[str] = (),
               cache: str | os.PathLike | None = None) -> tuple[Any, Path]:
    """A CSV file (a path) or a DataFrame as the frame nnctl reads, and the name its errors
    give the source. A DataFrame is read as the CSV it would write: its columns' names as
    text, its rows in order (errors count lines as that file would, header = line 1) and
    empty text as a blank cell. The DataFrame itself is not changed. `cache` is read_csv's
    (files only: a DataFrame is not parsed, so there is nothing to keep)."""
    if isinstance(data, (str, os.PathLike)):
        return read_csv(data, text_columns, cache), Path(data)
    import pandas as pd
    from pandas.api.types import is_numeric_dtype

    if not isinstance(data, pd.DataFrame):
        raise DataError(f"expected a DataFrame or the path of a CSV file, not a "
                        f"{type(data).__name__}")
    source = Path(DATAFRAME)
    frame = data.reset_index(drop=True)
    names = [str(c) for c in frame.columns]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataError([f"{source}:1 column {name!r}: appears more than once" for name in repeated])
    if len(frame) == 0:
        raise DataError(f"{source}: no rows")
    frame.columns = names
    text = [name for name, dtype in frame.dtypes.items() if not is_numeric_dtype(dtype)]
    if text:  # only the copy's text columns: numeric ones are shared, not copied
        frame[text] = frame[text].replace("", np.nan)
    return frame, source


DATAFRAME = "DataFrame"  # how errors name a DataFrame given from Python


# skip_blank_lines=False keeps DataFrame row i on CSV line i + 2, so errors can name it;
# index_col=False stops pandas from silently turning a first column into the index when rows
# have more fields than the header (it warns instead, made an error in read_csv).
CSV_OPTIONS = {"skip_blank_lines": False, "index_col": False, "encoding": "utf-8"}
CHUNK_ROWS = 8192  # rows parsed at a time from a large file
FIRST_ROWS = 1024  # rows parsed first, alone, to learn the columns' dtypes
PIECE_BYTES = 1 << 23  # bytes of an all-numeric file parsed at a time by one thread


def _read_in_chunks(pd, path: Path, options: dict):
    """pandas.read_csv(path, **options) for a large file, parsed CHUNK_ROWS rows at a time
    straight into one array per NumPy dtype (each column contiguous, as in a DataFrame), so
    the data is held about once while it is read: pandas.read_csv alone peaks near three
    times it. After the first FIRST_ROWS rows, two threads parse the rest (pandas' tokenizer
    runs without the GIL), as pandas.read_csv itself does on two cores: a file of numbers only
    in pieces of bytes (`_parse_numbers`), any other in two halves.

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

            pieces = [fill(first, 0)]
            if others or not _parse_numbers(pd, pool, path, options, dtypes, place, starts, rows):
                # a multiple of FIRST_ROWS in (FIRST_ROWS, rows), near the middle
                middle = max(2, (rows // FIRST_ROWS + 1) // 2) * FIRST_ROWS
                for half in pool.map(read_rows, [FIRST_ROWS, middle], [middle, rows]):
                    pieces += half
    except Exception:
        return None
    # DataFrames over the blocks share their memory; so do concat and the reordering.
    parts = [pd.DataFrame(blocks[dtype], columns=names, copy=False)
             for dtype, names in groups.items()]
    if others:
        parts.append(pd.concat(pieces, ignore_index=True))
    return pd.concat(parts, axis=1)[columns]


def _parse_numbers(pd, pool, path: Path, options: dict, dtypes, place: dict, starts: dict,
                   rows: int) -> bool:
    """Parse rows [FIRST_ROWS, rows) of a file whose columns are all numeric into their blocks,
    as `_read_in_chunks` does, but faster: two threads take pieces of about PIECE_BYTES in
    turn, and each hands its pieces' bytes to one pandas parser of its own and copies the
    columns it returns, with no DataFrame per chunk and no file object in Python between
    (how pandas 3.1's own parallel read_csv works; it then gathers every piece at once, which
    is what doubles its peak). Rows take 1.4-1.8 s instead of 2.3-2.6 s on the benchmark's
    60,000 x 785 float CSV. False, having parsed nothing, where the parser cannot be fed
    bytes (pandas before 3.1)."""
    bounds = [FIRST_ROWS]  # pieces of whole FIRST_ROWS blocks, the only rows starts knows
    for row in range(2 * FIRST_ROWS, rows, FIRST_ROWS):
        if starts[row] - starts[bounds[-1]] >= PIECE_BYTES:
            bounds.append(row)
    bounds.append(rows)
    with _numbers_parser(pd, dtypes, options) as probe:
        if not hasattr(probe._engine._reader, "load_buffer"):
            return False
    pieces = iter(range(len(bounds) - 1))  # next() is atomic under the GIL
    largest = max(starts[b] - starts[a] for a, b in zip(bounds, bounds[1:]))

    def parse() -> None:
        buffer = memoryview(bytearray(largest))
        with _numbers_parser(pd, dtypes, options) as reader, open(path, "rb") as file:
            parser = reader._engine
            for i in pieces:
                start, stop = bounds[i], bounds[i + 1]
                size = starts[stop] - starts[start]
                file.seek(starts[start])
                if file.readinto(buffer[:size]) != size:
                    raise ValueError("the file changed while it was read")
                parser._reader.load_buffer(buffer[:size], strip_bom=False)
                parser._first_chunk = True  # each piece is read as a file of its own
                _, _, columns = parser.read()
                for name, dtype in dtypes.items():
                    values = columns[name]
                    # a float column's piece without a fraction or a blank reads as integers:
                    # the same floats (both rounded to nearest), as pandas' own pieces gather
                    same_kind = values.dtype == dtype or (
                        dtype.kind == "f" and values.dtype.kind in "iu")
                    if len(values) != stop - start or not same_kind:
                        raise ValueError("a piece does not match the first rows")
                    block, j = place[name]
                    block[start:stop, j] = values

    for done in [pool.submit(parse) for _ in range(2)]:
        done.result()
    return True


def _numbers_parser(pd, dtypes, options: dict):
    """A pandas C parser (a TextFileReader) for headerless rows of the given columns."""
    return pd.read_csv(io.BytesIO(b""), header=None, names=list(dtypes.index), iterator=True,
                       low_memory=False, engine="c", **options)


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


def _not_utf8(path: Path) -> str:
    """Where the first byte that is not UTF-8 is, by line and by offset in the file (pandas
    reports an offset within the block it was decoding)."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, line = 0, 1
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                start = min(max(0, exc.start), len(block) - 1)
                bad = offset + start
                line += block[:start].count(b"\n")
                return (f"{path}:{line}: not UTF-8 text (byte {bad} of the file, "
                        f"0x{block[start]:02x}); save it as UTF-8")
            offset += len(block)
            line += block.count(b"\n")
    return f"{path}: not UTF-8 text"


def require_columns(frame, path: Path, columns: list[str], role: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        available = ", ".join(frame.columns[:20]) + (" ..." if len(frame.columns) > 20 else "")
        where = "the DataFrame" if str(path) == DATAFRAME else "the file"
        raise DataError([f"{path}:1 {role} column {c!r}: not in {where} (columns: {available})"
                         for c in missing])


def finite_columns(frame, columns: list[str]) -> list[str]:
    """Those of `columns` known to hold only finite numbers: integer columns, and float
    columns found finite in one vectorized pass (a column at a time costs far more)."""
    dtypes = frame.dtypes.to_dict()
    kinds = {c: dtypes[c].kind if isinstance(dtypes[c], np.dtype) else None for c in columns}
    floats = [c for c in columns if kinds[c] == "f"]
    finite = {c for c in columns if kinds[c] in ("i", "u")}
    if floats:
        ok = np.isfinite(frame[floats].to_numpy()).all(axis=0)
        finite.update(c for c, good in zip(floats, ok) if good)
    return [c for c in columns if c in finite]
