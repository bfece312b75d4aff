"""Run tables: `nnctl runs list` (one row per run directory) and `nnctl runs show`.

A row comes from a run's summary.json and config.yaml; metrics.csv is checked too, and a run
whose files cannot be read is listed as `unreadable`, with the reason. Its parameters are the
config's values flattened to dotted keys (`optimizer.lr`, `model.layers.0.units`); a listing
shows the keys whose values differ between the listed runs, so a sweep's table shows what was
swept.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .config import monitor_mode, read_yaml
from .errors import UserError
from .files import read_text
from .runs import find_runs, open_run, read_metrics, read_summary

FORMATS = ("table", "csv", "json")
NOT_PARAMETERS = {"name"}  # differs between runs by construction; the run column shows it
TABLE_PARAMETERS = 8  # more differing keys than this go to csv/json only
FIXED_COLUMNS = ("run", "run_dir", "name", "status", "epochs", "best_epoch")


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
        if column in self.params:
            return self.params[column]
        return self.record().get(column)


# ---- reading ----------------------------------------------------------------------------------

def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{'optimizer': {'lr': 0.01}, 'model': {'layers': [{'units': 8}]}} ->
    {'optimizer.lr': 0.01, 'model.layers.0.units': 8}. Empty mappings and lists are leaves."""
    if isinstance(value, dict) and value:
        items = ((str(k), v) for k, v in value.items())
    elif isinstance(value, list) and value:
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return {prefix: value} if prefix else {}
    out: dict[str, Any] = {}
    for key, inner in items:
        out.update(flatten(inner, f"{prefix}.{key}" if prefix else key))
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


def differing_keys(configs: list[dict[str, Any]]) -> list[str]:
    """Dotted keys whose values are not the same in every config (missing counts as a value),
    in the order they first appear."""
    if len(configs) < 2:
        return []
    keys: dict[str, None] = {}
    for config in configs:
        keys.update(dict.fromkeys(config))
    return [key for key in keys if key not in NOT_PARAMETERS
            and len({(key in c, json.dumps(c.get(key), sort_keys=True, default=str))
                     for c in configs}) > 1]


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


# ---- sorting ----------------------------------------------------------------------------------

def metric_columns(rows: list[RunRow]) -> list[str]:
    """val_loss, the other val_* metrics, then test_loss and the other test_* metrics."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row.metrics))
    return sorted(seen, key=lambda k: (not k.startswith("val_"), not k.endswith("_loss")))


def sort_rows(rows: list[RunRow], column: str) -> list[RunRow]:
    """Best first for metrics (accuracy and R^2 descending, losses and errors ascending),
    ascending for everything else; runs without a value go last."""
    known = list(FIXED_COLUMNS) + metric_columns(rows) + ["wall_seconds"]
    if rows:
        known += list(rows[0].params)
    if column not in known:
        raise UserError(f"--sort: unknown column {column!r}; expected one of: "
                        + ", ".join(known))
    have = [row for row in rows if isinstance(row.value(column), (int, float, str))]
    missing = [row for row in rows if row not in have]
    numeric = all(isinstance(row.value(column), (int, float)) for row in have)
    key = (lambda row: row.value(column)) if numeric else (lambda row: str(row.value(column)))
    reverse = numeric and monitor_mode(column, "auto") == "max"
    return sorted(have, key=key, reverse=reverse) + missing


# ---- output -----------------------------------------------------------------------------------

def format_table(headers: list[str], rows: list[list[str]], right: set[int] = frozenset()) -> str:
    """Columns padded to their widest cell; columns in `right` aligned right."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(headers)] + [line(r) for r in rows])


def column_table(rows: list[tuple[str, str, str]], stream=None) -> str:
    """The column decisions (column, type, detail) as a table; on a terminal (`stream`), cut
    to its width, since a wider table wraps unreadably."""
    table = format_table(["column", "type", "detail"], [list(r) for r in rows])
    if stream is None or not stream.isatty():
        return table
    width = shutil.get_terminal_size((100, 24)).columns
    return "\n".join(line if len(line) <= width else line[:width - 3] + "..."
                     for line in table.splitlines())


def run_columns(run_dir: Path) -> Optional[str]:
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
    return column_table(prep.column_table(), sys.stdout)


def format_seconds(seconds: Optional[float]) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def format_value(value: Any) -> str:
    """A parameter as it reads in a table: floats to 4 significant digits, YAML for the rest."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _param_cell(value: Any) -> str:
    """Full precision for numbers; true/false/null and JSON for the rest."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        return str(value)
    return format_value(value)


def render(rows: list[RunRow], fmt: str) -> str:
    if fmt not in FORMATS:
        raise UserError(f"--format: must be one of {', '.join(FORMATS)} (got {fmt!r})")
    metrics = metric_columns(rows)
    params = list(rows[0].params) if rows else []
    if fmt == "json":
        records = []
        for row in rows:
            record = row.record()
            record["params"] = row.params
            records.append(record)
        return json.dumps(records, indent=2, allow_nan=False, default=str)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        columns = list(FIXED_COLUMNS) + metrics + ["wall_seconds", "problem"]
        writer.writerow(columns + params)
        for row in rows:
            record = row.record()
            writer.writerow([_cell(record.get(c)) for c in columns]
                            + [_param_cell(row.params[p]) for p in params])
        return buffer.getvalue().rstrip("\n")
    shown = params[:TABLE_PARAMETERS]
    headers = ["run", "status", "epochs", "best"] + metrics + ["wall"] + shown
    table = []
    for row in rows:
        table.append([row.path.name, row.status, _cell(row.epochs), _cell(row.best_epoch)]
                     + [f"{row.metrics[m]:.4f}" if m in row.metrics else "" for m in metrics]
                     + [format_seconds(row.wall_seconds)]
                     + [format_value(row.params[p]) for p in shown])
    right = set(range(2, 5 + len(metrics)))
    right |= {5 + len(metrics) + i for i, p in enumerate(shown)
              if all(isinstance(row.params[p], (int, float)) and not isinstance(row.params[p], bool)
                     for row in rows)}
    text = format_table(headers, table, right)
    if len(params) > len(shown):
        text += (f"\n({len(params) - len(shown)} more differing parameters: "
                 "see --format csv or json)")
    return text + "".join(f"\nnote: {line}" for line in unreadable_notes(rows))


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

def _metrics_line(row: Optional[dict], skip: tuple = ("epoch", "lr", "seconds")) -> str:
    if not row:
        return ""
    return "  ".join(f"{k} {v:.4f}" for k, v in row.items()
                     if k not in skip and isinstance(v, (int, float)))


def show_run(run_dir: Path, last: int = 5) -> str:
    """A run's summary, its resolved config and the metrics of its last epochs."""
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
            lines.append(f"best       epoch {best.get('epoch')}: {_metrics_line(best)}")
        if final:
            lines.append(f"final      epoch {final.get('epoch')}: {_metrics_line(final)}")
        if summary.get("test"):
            lines.append(f"test       {_metrics_line(summary['test'])}")
        if summary.get("rows"):
            rows = summary["rows"]
            left_out = sum((summary.get("blank_targets") or {}).values())
            lines.append("rows       " + ", ".join(f"{rows[k]} {k}" for k in rows if rows[k])
                         + (f" ({left_out} without a target left out)" if left_out else ""))
        if summary.get("class_weight"):
            lines.append("weights    " + ", ".join(
                f"{label} {weight:.4g}" for label, weight in summary["class_weight"].items()))
    columns = run_columns(run_dir)
    if columns:
        lines += ["", "columns", *("  " + line for line in columns.splitlines())]
    lines += ["", "config.yaml"]
    text = read_text(run_dir / "config.yaml")
    lines += ["  " + line for line in text.rstrip("\n").splitlines()]
    history = read_metrics(run_dir)
    if history and last > 0:
        tail = history[-last:]
        headers = list(tail[0])
        cells = [[_epoch_cell(h, row.get(h)) for h in headers] for row in tail]
        lines += ["", f"last {len(tail)} of {len(history)} epochs (metrics.csv)",
                  format_table(headers, cells, set(range(len(headers))))]
    return "\n".join(lines)


def _epoch_cell(column: str, value: Any) -> str:
    if column == "epoch" or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.4g}" if column in ("lr", "seconds") else f"{value:.4f}"
