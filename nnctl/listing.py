"""Run tables: `nnctl runs list` (one row per run directory) and `nnctl runs show`.

A row comes from a run's summary.json and config.yaml; metrics.csv is checked too, and a run
whose files cannot be read is listed as `unreadable`, with the reason. Its parameters are the
config's values flattened to dotted keys (`optimizer.lr`, `model.layers.0.units`); a listing
shows the keys whose values differ between the listed runs, so a sweep's table shows what was
swept. Tables fit the terminal (`table_width`, `fit_table`); csv and json are never cut.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .config import monitor_mode, read_yaml
from .errors import UserError
from .files import read_text
from .report import format_seconds, metrics_text
from .runs import find_runs, open_run, read_metrics, read_summary

FORMATS = ("table", "csv", "json")
NOT_PARAMETERS = {"name"}  # differs between runs by construction; the run column shows it
FIXED_COLUMNS = ("run", "run_dir", "name", "status", "epochs", "best_epoch")
ALIASES = {"best": "best_epoch", "wall": "wall_seconds"}  # the table's headers for them


@dataclass
class RunRow:
    path: Path
    name: str
    status: str
    epochs: Optional[int]
    best_epoch: Optional[int]
    metrics: dict[str, float]  # val_* of the best epoch, test_* of the test data
    wall_seconds: Optional[float]
    config: dict[str, Any]  # flattened config.yaml
    params: dict[str, Any] = field(default_factory=dict)  # the keys that differ between rows
    problems: list[str] = field(default_factory=list)  # why an `unreadable` run is one

    def record(self) -> dict:
        """The row as one flat dict (csv, json): fixed columns, metrics, wall time, problem."""
        out = {"run": self.path.name, "run_dir": str(self.path), "name": self.name,
               "status": self.status, "epochs": self.epochs, "best_epoch": self.best_epoch}
        out.update(self.metrics)
        out["wall_seconds"] = self.wall_seconds
        out["problem"] = "; ".join(self.problems) or None
        return out

    def value(self, column: str) -> Any:
        """A column's value: a parameter, a field of the record, or any config setting."""
        if column in self.params:
            return self.params[column]
        record = self.record()
        return record[column] if column in record else self.config.get(column)


# ---- reading ----------------------------------------------------------------------------------

MAX_DEPTH = 32  # a config is 4 levels deep; deeper ones are not configs, and are not compared


def flatten(value: Any, prefix: str = "", depth: int = 0) -> dict[str, Any]:
    """Every setting under its dotted key: {'optimizer': {'lr': 0.01}} -> {'optimizer':
    {'lr': 0.01}, 'optimizer.lr': 0.01}. A mapping or list is listed whole as well as by its
    parts, so a setting that is a mapping in one run and null in another (an lr_schedule, a
    list of targets, class_weight) can be compared and shown as one value. Empty mappings and
    lists are leaves."""
    if depth > MAX_DEPTH:
        raise UserError(f"{prefix}: nested more than {MAX_DEPTH} levels deep")
    out: dict[str, Any] = {prefix: value} if prefix else {}
    if isinstance(value, dict) and value:
        items = ((str(k), v) for k, v in value.items())
    elif isinstance(value, list) and value:
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return out
    for key, inner in items:
        out.update(flatten(inner, f"{prefix}.{key}" if prefix else key, depth + 1))
    return out


def read_config(run_dir: Path) -> dict[str, Any]:
    """A run's config.yaml, flattened; a UserError naming the file when it is not a regular
    file, not YAML, or not a mapping (an empty file is an empty config)."""
    path = Path(run_dir) / "config.yaml"
    raw, _ = read_yaml(path)  # bounded: no FIFO or device, no alias explosion
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(f"{path}: not a mapping of keys to values")
    try:
        return flatten(raw)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    except RecursionError:
        raise UserError(f"{path}: nested too deeply to read") from None


UNREADABLE = "unreadable"


def run_row(run_dir: Path) -> RunRow:
    """A run's row; a run whose config.yaml, summary.json or metrics.csv cannot be read is
    an `unreadable` row that says why, so one bad run does not hide the others."""
    run_dir = Path(run_dir)
    config: dict[str, Any] = {}
    summary, history, problems = None, None, []
    try:
        config = read_config(run_dir)
    except UserError as exc:
        problems += exc.problems
    try:
        summary = read_summary(run_dir)
    except UserError as exc:
        problems += exc.problems
    try:
        history = read_metrics(run_dir)
    except UserError as exc:
        problems += exc.problems
    name = config.get("name", run_dir.name)
    if problems:
        return RunRow(run_dir, str(name), UNREADABLE, None, None, {}, None, config,
                      problems=problems)
    if summary is None:  # still training, or killed before it could write one
        return RunRow(run_dir, str(name), "unfinished",
                      len(history) if history else None, None, {}, None, config)
    metrics = {k: v for k, v in (summary.get("best") or {}).items() if k.startswith("val_")}
    metrics.update({f"test_{k}": v for k, v in (summary.get("test") or {}).items()
                    if isinstance(v, (int, float))})
    return RunRow(run_dir, str(summary.get("name") or config.get("name", run_dir.name)),
                  str(summary.get("status") or "unknown"), summary.get("epochs_run"),
                  summary.get("best_epoch"), metrics, summary.get("wall_seconds"), config)


MISSING = object()  # a key a config does not have


def differing_keys(configs: list[dict[str, Any]]) -> list[str]:
    """The settings whose values are not the same in every config (`flatten`ed), in the order
    they first appear. Where every config has a mapping, or a list of mappings, the parts are
    compared (`optimizer.lr`, `model.layers.0.units`); elsewhere the whole value is one setting
    (`training.lr_schedule` null in one run, `step(...)` in another; `data.target`). A key
    missing from some configs counts as a value, except under mappings whose `type` differs:
    adam's `beta1` is not a difference from sgd, the `type` column says it."""
    if len(configs) < 2:
        return []
    found: list[str] = []

    def compare(key: str, values: list[Any]) -> None:
        if all(isinstance(v, dict) for v in values):
            kinds = {_canonical(v.get("type")) for v in values}
            for inner in _union(list(v) for v in values):
                parts = [v.get(inner, MISSING) for v in values]
                if len(kinds) > 1 and _only_where_present(parts):
                    continue
                compare(f"{key}.{inner}", parts)
        elif all(isinstance(v, list) for v in values) and any(
                isinstance(item, (dict, list)) for v in values for item in v):
            for i in range(max(len(v) for v in values)):
                compare(f"{key}.{i}", [v[i] if i < len(v) else MISSING for v in values])
        elif len({_canonical(v) for v in values}) > 1:
            found.append(key)

    for key in _union([k for k in c if "." not in k] for c in configs):
        if key not in NOT_PARAMETERS:
            compare(key, [c.get(key, MISSING) for c in configs])
    return found


def _union(key_lists) -> list[str]:
    keys: dict[str, None] = {}
    for some in key_lists:
        keys.update(dict.fromkeys(some))
    return list(keys)


def _canonical(value: Any) -> str:
    if value is MISSING:
        return "<missing>"
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):  # keys of mixed types cannot be sorted
        return repr(value)


def _only_where_present(values: list[Any]) -> bool:
    """Missing in some, the same wherever present: a setting of one kind only."""
    present = {_canonical(v) for v in values if v is not MISSING}
    return len(present) == 1 and any(v is MISSING for v in values)


def with_params(rows: list[RunRow]) -> list[str]:
    """Fill each row's params with the keys that differ between the rows; return the keys."""
    # An unreadable run's config may be unknown ({}): it does not make every key differ.
    keys = differing_keys([row.config for row in rows if row.config or not row.problems])
    for row in rows:
        row.params = {key: row.config.get(key) for key in keys}
    return keys


def list_runs(root: Path) -> list[RunRow]:
    rows = [run_row(path) for path in find_runs(root)]
    with_params(rows)
    return rows


# ---- columns and sorting -----------------------------------------------------------------------

def metric_columns(rows: list[RunRow]) -> list[str]:
    """val_loss, the other val_* metrics, then test_loss and the other test_* metrics."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row.metrics))
    return sorted(seen, key=lambda k: (not k.startswith("val_"), not k.endswith("_loss")))


def record_columns(rows: list[RunRow]) -> list[str]:
    """The columns of `--format csv` that come before the parameters."""
    return list(FIXED_COLUMNS) + metric_columns(rows) + ["wall_seconds", "problem"]


def leaf_names(keys: list[str]) -> dict[str, str]:
    """Each dotted key's shortest ending that no other key shares, never starting at a list
    index: `optimizer.lr` -> `lr`; `model.layers.0.units` -> `units`, or `layers.0.units`
    where `model.layers.2.units` is there too."""
    out = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            name = ".".join(parts[-n:])
            if parts[-n].isdigit() and n < len(parts):
                continue
            if sum(k == name or k.endswith("." + name) for k in keys) == 1:
                break
        out[key] = name
    return out


def resolve_columns(rows: list[RunRow], names: list[str], option: str) -> list[str]:
    """Column names as `--columns` and `--sort` take them -> the csv header's names. A
    parameter goes by its dotted key or by its last part where that is unique (among the
    differing parameters first, then among all settings); `best` and `wall` as in the table."""
    params = list(rows[0].params) if rows else []
    known = record_columns(rows) + params
    settings = _union(list(row.config) for row in rows)
    short = leaf_names(params)
    found, problems = [], []
    for name in names:
        if name in known or name in settings:
            matches = [name]
        elif name in ALIASES:
            matches = [ALIASES[name]]
        else:
            matches = ([k for k in params if short[k] == name]
                       or [k for k in settings if k.rsplit(".", 1)[-1] == name])
        if len(matches) == 1:
            found += [m for m in matches if m not in found]
        elif matches:
            problems.append(f"{option}: {name!r} could be any of {', '.join(matches)}; "
                            "give the dotted key")
        else:
            problems.append(f"{option}: unknown column {name!r}; expected one of: "
                            + ", ".join(known) + " (a parameter also by its last part, as "
                            + ("lr" if "optimizer.lr" in settings else "units")
                            + ", or any setting of config.yaml by its dotted key)")
    if problems:
        raise UserError(problems)
    return found


def sort_rows(rows: list[RunRow], column: str) -> list[RunRow]:
    """Best first for metrics (accuracy and R^2 descending, losses and errors ascending),
    ascending for everything else; runs without a value go last."""
    [column] = resolve_columns(rows, [column], "--sort")
    have = [row for row in rows if isinstance(row.value(column), (int, float, str))]
    missing = [row for row in rows if row not in have]
    numeric = all(isinstance(row.value(column), (int, float)) for row in have)
    key = (lambda row: row.value(column)) if numeric else (lambda row: str(row.value(column)))
    reverse = numeric and monitor_mode(column, "auto") == "max"
    return sorted(have, key=key, reverse=reverse) + missing


# ---- fitting a table to a width ---------------------------------------------------------------

MIN_WIDTH = 20  # narrower than this, lines are cut rather than the table fitted
MIN_CELL = 10  # a cut cell keeps at least this much (or its header's width)


def table_width(stream) -> Optional[int]:
    """The width tables are fitted to. COLUMNS when it is set, as shutil.get_terminal_size
    reads it; else the terminal's width when `stream` is one; else (a pipe, a file) no limit,
    so `| less -S`, `| grep` and scripts get whole rows, as with git and ls."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        if not stream.isatty():
            return None
        return os.get_terminal_size(stream.fileno()).columns or shutil.get_terminal_size().columns
    except (AttributeError, ValueError, OSError):
        return None


@dataclass(eq=False)
class Column:
    name: str  # as `--columns` takes it (the csv header)
    header: str
    cells: list[str]
    short: str = ""  # the header where full ones do not fit
    right: bool = False
    cut: bool = False  # long cells may be cut, with an ellipsis


def ellipsis() -> str:
    """`…` where stdout can print it, else `...`."""
    try:
        "\u2026".encode(getattr(sys.stdout, "encoding", None) or "ascii")
        return "\u2026"
    except (LookupError, UnicodeEncodeError):
        return "..."


def _cut(text: str, width: int) -> str:
    mark = ellipsis()
    return text if len(text) <= width else text[:max(width - len(mark), 0)] + mark


def _layout(columns: list[Column], width: int) -> Optional[tuple[list[str], list[int]]]:
    """Headers and column widths within `width`: full headers, else short ones, else long
    cells cut (the widest first); None when even that is too wide."""
    gaps = 2 * (len(columns) - 1)
    for headers in ([c.header for c in columns], [c.short or c.header for c in columns]):
        widths = [max([len(h)] + [len(cell) for cell in c.cells])
                  for c, h in zip(columns, headers)]
        if sum(widths) + gaps <= width:
            return headers, widths
    floors = [max(len(h), min(w, MIN_CELL)) if c.cut else w
              for c, h, w in zip(columns, headers, widths)]
    if sum(floors) + gaps > width:
        return None

    def capped(cap: int) -> list[int]:
        return [max(f, min(w, cap)) for f, w in zip(floors, widths)]

    low, high = 0, max(widths)  # the widest cap on the widths that fits, by bisection
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if sum(capped(middle)) + gaps <= width else (low, middle - 1)
    fitted = capped(low)
    spare = width - gaps - sum(fitted)
    for i in range(len(fitted)):  # what the cap leaves over, one character each
        if spare > 0 and fitted[i] < widths[i]:
            fitted[i] += 1
            spare -= 1
    return headers, fitted


def unique_tails(names: list[str], width: int) -> list[str]:
    """Names cut to `width` from the left, keeping the part that tells them apart (their
    ends: a run's time stamp and hex suffix)."""
    mark = ellipsis()
    return [name if len(name) <= width else mark + name[len(name) - width + len(mark):]
            for name in names]


def fit_table(columns: list[Column], width: Optional[int], drop: list[str] = ()
              ) -> tuple[str, list[str]]:
    """The columns as a table at most `width` characters wide (None: as wide as it is). Where
    they do not all fit, headers are shortened and long cells cut, and the columns named in
    `drop` (least important first) are left out, then added back, most important first,
    wherever one fits without cutting the others further. Names in the run column are cut
    (keeping their ends) only when it cannot fit alone. Returns the table and the names of
    the columns left out."""
    if width is None:
        return format_table([c.header for c in columns], _cells(columns),
                            {i for i, c in enumerate(columns) if c.right}), []
    width = max(width, MIN_WIDTH)
    drop = [name for name in drop if any(c.name == name for c in columns)]
    kept = {c.name for c in columns if c.name not in drop}
    shown = [c for c in columns if c.name in kept]
    laid = _layout(shown, width)
    if laid is None:  # what may not be left out is too wide: the run names keep their ends
        shown = [Column(c.name, c.header, unique_tails(c.cells, width), c.short, c.right)
                 if c.name == "run" else c for c in shown]
        laid = _layout(shown, width) or ([c.short or c.header for c in shown], None)
    else:
        for name in reversed(drop):  # each where it fits without cutting the others more
            more = [c for c in columns if c.name in kept or c.name == name]
            trial = _layout(more, width)
            now = dict(zip((c.name for c in shown), laid[1]))
            if trial and all(_cut_by(c, w) <= _cut_by(c, now[c.name])
                             for c, w in zip(more, trial[1]) if c.name != name):
                kept.add(name)
                shown, laid = more, trial
    headers, widths = laid
    cells = _cells(shown)
    if widths:
        cells = [[_cut(cell, w) for cell, w in zip(line, widths)] for line in cells]
    text = format_table(headers, cells, {i for i, c in enumerate(shown) if c.right})
    text = "\n".join(_cut(line, width) for line in text.splitlines())
    return text, [c.name for c in columns if c.name in drop and c.name not in kept]


def _cut_by(column: Column, width: int) -> int:
    """How many characters the column's longest cell loses at this width."""
    return max([len(cell) - width for cell in column.cells] + [0])


def _cells(columns: list[Column]) -> list[list[str]]:
    return [list(line) for line in zip(*(c.cells for c in columns))] if columns else []


def wrap(text: str, width: Optional[int], indent: str = "") -> str:
    """A note wrapped to `width` (None: one line)."""
    if width is None:
        return text
    return textwrap.fill(text, max(width, MIN_WIDTH), subsequent_indent=indent,
                         break_on_hyphens=False)


def left_out_note(names: list[str], width: Optional[int], see: str) -> str:
    count = f"{len(names)} more column" + ("s" if len(names) > 1 else "")
    return wrap(f"({count}: {', '.join(names)}; {see})", width, " ")


# ---- output -----------------------------------------------------------------------------------

def format_table(headers: list[str], rows: list[list[str]], right: set[int] = frozenset()) -> str:
    """Columns padded to their widest cell; columns in `right` aligned right."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(headers)] + [line(r) for r in rows])


def column_table(rows: list[tuple[str, str, str]], stream=None,
                 width: Optional[int] = None) -> str:
    """The column decisions (column, type, detail) as a table, the details cut to `width`
    (else to `stream`'s, as `table_width` says), since a wider table wraps unreadably."""
    if width is None and stream is not None:
        width = table_width(stream)
    columns = [Column("column", "column", [r[0] for r in rows], cut=True),
               Column("type", "type", [r[1] for r in rows]),
               Column("detail", "detail", [r[2] for r in rows], cut=True)]
    return fit_table(columns, width)[0]


def run_columns(run_dir: Path, width: Optional[int] = None) -> Optional[str]:
    """The column table of a run, from its last checkpoint (None before the first one)."""
    from .checkpoint import read_json
    from .data import Preprocessing
    from .errors import CheckpointError

    path = run_dir / "checkpoints" / "last.json"
    if not path.is_file():
        return None
    try:
        prep = Preprocessing.from_dict(read_json(path)["preprocessing"])
    except (CheckpointError, KeyError, TypeError, ValueError, AttributeError):
        return f"{path}: no readable preprocessing section"
    return column_table(prep.column_table(), width=width)


def format_value(value: Any) -> str:
    """A setting as it reads in a table: floats to 4 significant digits, a mapping with a
    `type` as `step(step_size=10,gamma=0.5)`, other mappings and lists in YAML's flow style
    without spaces (`{setosa:1,versicolor:2}`, `[y1,y2]`)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        if isinstance(value.get("type"), str):
            return value["type"] + "(" + ",".join(
                f"{k}={format_value(v)}" for k, v in value.items() if k != "type") + ")"
        return "{" + ",".join(f"{k}:{format_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    return str(value)


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _param_cell(value: Any) -> str:
    """Full precision for numbers; true/false/null, and JSON for mappings and lists."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), default=str)
    return format_value(value)


def render(rows: list[RunRow], fmt: str, columns: Optional[list[str]] = None,
           width: Optional[int] = None, keep: tuple[str, ...] = ()) -> str:
    """The rows as a table fitted to `width` (None: unlimited), csv or json (whole, never
    fitted); `columns` chooses the columns and their order, `keep` names columns (the sort
    column) the table leaves out last."""
    if fmt not in FORMATS:
        raise UserError(f"--format: must be one of {', '.join(FORMATS)} (got {fmt!r})")
    chosen = None if columns is None else resolve_columns(rows, columns, "--columns")
    if columns is not None and not chosen:
        raise UserError("--columns: give at least one column, e.g. --columns run,val_loss")
    fixed = record_columns(rows)
    if fmt == "json":
        records = []
        for row in rows:
            record = row.record()
            record["params"] = row.params
            if chosen:
                settings = {c: row.config.get(c) for c in chosen if c not in fixed}
                record = {c: record.get(c) for c in chosen if c in fixed}
                if settings:
                    record["params"] = settings
            records.append(record)
        return json.dumps(records, indent=2, allow_nan=False, default=str)
    params = list(rows[0].params) if rows else []
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        names = chosen or fixed + params
        writer.writerow(names)
        for row in rows:
            record = row.record()
            writer.writerow([_cell(record.get(c)) if c in fixed else _param_cell(row.value(c))
                             for c in names])
        return buffer.getvalue().rstrip("\n")
    return run_table(rows, chosen, width, resolve_columns(rows, list(keep), "--sort"))


def run_table(rows: list[RunRow], chosen: Optional[list[str]], width: Optional[int],
              keep: list[str]) -> str:
    """`runs list`'s table. Left out first where it does not fit: wall time, the parameters
    (last first), the metrics after val_loss and the main one, best epoch, epochs, the main
    metric, status, val_loss (the sort column last of all); never the run column. A closing
    line names what was left out."""
    metrics = metric_columns(rows)
    params = list(rows[0].params) if rows else []
    if chosen is None:
        main = ([m for m in metrics if m.startswith("val_")] or metrics)[:2]
        chosen = ["run", "status", "epochs", "best_epoch"] + metrics + ["wall_seconds"] + params
        drop = (["wall_seconds"] + params[::-1] + [m for m in metrics if m not in main][::-1]
                + ["best_epoch", "epochs"] + main[1:] + ["status"] + main[:1])
    else:
        drop = [name for name in chosen[::-1] if name != "run"]
    drop = [name for name in drop if name not in keep] + [n for n in keep if n != "run"]
    settings = [name for name in chosen if name not in record_columns(rows)]
    short = leaf_names(settings)
    columns = [table_column(rows, name, metrics, short.get(name, "")) for name in chosen]
    text, left_out = fit_table(columns, width, drop)
    if left_out:
        names = leaf_names(params)
        text += "\n" + left_out_note([names.get(n, n) for n in left_out], width,
                                     "choose with --columns, or see all with --format csv")
    return text + "".join("\n" + wrap(f"note: {line}", width, "  ")
                          for line in unreadable_notes(rows))


def table_column(rows: list[RunRow], name: str, metrics: list[str], short: str) -> Column:
    if name == "run":
        return Column(name, name, [row.path.name for row in rows])
    if name in ("epochs", "best_epoch"):
        return Column(name, "best" if name == "best_epoch" else name,
                      [_cell(row.value(name)) for row in rows], right=True)
    if name == "wall_seconds":
        return Column(name, "wall", [format_seconds(row.wall_seconds) for row in rows],
                      right=True)
    if name in metrics:
        values = [row.metrics.get(name) for row in rows]
        return Column(name, name, [f"{v:.4f}" if _is_number(v) else "" for v in values],
                      right=True)
    if name in FIXED_COLUMNS or name == "problem":
        return Column(name, name, [_cell(row.value(name)) for row in rows],
                      cut=name != "status")
    values = [row.config.get(name, MISSING) for row in rows]
    numeric = all(_is_number(v) for v in values if v is not MISSING)
    return Column(name, name, ["-" if v is MISSING else format_value(v) for v in values],
                  short=short, right=numeric, cut=not numeric)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


NOTES_PER_RUN = 3


def unreadable_notes(rows: list[RunRow]) -> list[str]:
    """Why each unreadable run is one: its first problems (each names its file)."""
    notes = []
    for row in rows:
        notes += row.problems[:NOTES_PER_RUN]
        if len(row.problems) > NOTES_PER_RUN:
            notes.append(f"{row.path}: {len(row.problems) - NOTES_PER_RUN} more problems "
                         f"(see nnctl runs show {row.path})")
    return notes


# ---- runs show --------------------------------------------------------------------------------

def show_run(run_dir: Path, last: int = 5, width: Optional[int] = None) -> str:
    """A run's summary, its resolved config and the metrics of its last epochs; the tables
    fitted to `width` (None: unlimited)."""
    run_dir = open_run(run_dir)
    summary = read_summary(run_dir)
    lines = [f"run        {run_dir}"]
    if summary is None:
        lines.append("status     unfinished (no summary.json yet)")
    else:
        status = summary.get("status", "unknown")
        lines.append(f"status     {status}: {summary.get('epochs_run')} epochs, best epoch "
                     f"{summary.get('best_epoch')}, {format_seconds(summary.get('wall_seconds'))}")
        if summary.get("message"):
            lines.append(f"message    {summary['message']}")
        lines.append(f"monitor    {summary.get('monitor', '')}")
        lines.append(f"seed       {summary.get('seed', '')}")
        if "threads" in summary:  # runs made before it was recorded have none
            lines.append(f"threads    {summary['threads']}")
        lines.append(f"command    {summary.get('command', '')}")
        found = summary.get("versions") or {}
        lines.append("versions   " + ", ".join(f"{k} {v}" for k, v in found.items()))
        best, final = summary.get("best"), summary.get("final")
        if best:
            lines.append(f"best       epoch {best.get('epoch')}: {metrics_text(best)}")
        if final:
            lines.append(f"final      epoch {final.get('epoch')}: {metrics_text(final)}")
        if summary.get("test"):
            lines.append(f"test       {metrics_text(summary['test'])}")
        if summary.get("rows"):
            rows = summary["rows"]
            left_out = sum((summary.get("blank_targets") or {}).values())
            lines.append("rows       " + ", ".join(f"{rows[k]} {k}" for k in rows if rows[k])
                         + (f" ({left_out} without a target left out)" if left_out else ""))
        if summary.get("class_weight"):
            lines.append("weights    " + ", ".join(
                f"{label} {weight:.4g}" for label, weight in summary["class_weight"].items()))
    columns = run_columns(run_dir, width - 2 if width else None)  # indented by two
    if columns:
        lines += ["", "columns", *("  " + line for line in columns.splitlines())]
    lines += ["", "config.yaml"]
    text = read_text(run_dir / "config.yaml")
    lines += ["  " + line for line in text.rstrip("\n").splitlines()]
    history = read_metrics(run_dir)
    if history and last > 0:
        tail = history[-last:]
        lines += ["", f"last {len(tail)} of {len(history)} epochs (metrics.csv)",
                  epoch_table(tail, width)]
    return "\n".join(lines)


def epoch_table(history: list[dict], width: Optional[int]) -> str:
    """metrics.csv rows as a table; where it does not fit, left out first: seconds, lr, the
    train_ then val_ metrics after the losses (last first), then the losses."""
    headers = list(history[0])
    columns = [Column(h, h, [_epoch_cell(h, row.get(h)) for row in history], right=True)
               for h in headers]
    later = [h for h in headers[::-1] if h not in ("epoch", "lr", "seconds")]
    drop = ([h for h in ("seconds", "lr") if h in headers]
            + [h for h in later if h.startswith("train_") and h != "train_loss"]
            + [h for h in later if h.startswith("val_") and h != "val_loss"]
            + [h for h in later if not h.startswith(("train_", "val_")) or h.endswith("_loss")])
    text, left_out = fit_table(columns, width, drop)
    if left_out:
        text += "\n" + left_out_note(left_out, width, "see metrics.csv")
    return text


def _epoch_cell(column: str, value: Any) -> str:
    if column == "epoch" or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.4g}" if column in ("lr", "seconds") else f"{value:.4f}"
