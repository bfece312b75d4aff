"""Run directories: create them, record a run into them, read them back, list them.

    runs/<name>-<YYYYmmdd-HHMMSS>-<4 hex>/
      config.yaml  metrics.csv  summary.json  train.log
      checkpoints/last.{npz,json}  best.{npz,json}  epoch-<n>.{npz,json}
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import re
import secrets
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ._version import __version__
from .checkpoint import (
    atomic_write, fsync_dir, load_checkpoint, save_checkpoint, TEMP_MARK,
)
from .errors import CheckpointError, UserError
from .files import open_regular, read_text
from .progress import format_row

CHECKPOINTS = "checkpoints"
EPOCH_STEM = re.compile(r"^epoch-(\d+)$")


def create_run_dir(runs_dir: Path, name: str, checkpoints: bool = True) -> Path:
    """Make a fresh run directory with os.mkdir: never reused, never overwritten, and safe
    when many processes start at once with the same name."""
    runs_dir = Path(runs_dir)
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{runs_dir}: cannot create the runs folder ({exc.strerror})") from None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for _ in range(1000):
        path = runs_dir / f"{name}-{stamp}-{secrets.token_hex(2)}"
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        except OSError as exc:
            raise UserError(f"{path}: cannot create the run directory ({exc.strerror})") from None
        if checkpoints:
            try:
                (path / CHECKPOINTS).mkdir()
            except OSError as exc:
                raise UserError(f"{path / CHECKPOINTS}: cannot create ({exc.strerror})") from None
        return path
    raise UserError(f"{runs_dir}: no free run directory name for {name!r}")


def versions() -> dict[str, str]:
    return {"nnctl": __version__, "numpy": np.__version__, "python": platform.python_version()}


def rng_array(state: dict) -> np.ndarray:
    """A PCG64 generator state as six uint64 values (128-bit numbers split in two)."""
    inner = state["state"]
    mask = (1 << 64) - 1
    return np.array([inner["state"] >> 64, inner["state"] & mask, inner["inc"] >> 64,
                     inner["inc"] & mask, state["has_uint32"], state["uinteger"]],
                    dtype=np.uint64)


def rng_state_from(array: np.ndarray) -> dict:
    hi, lo, inc_hi, inc_lo, has_uint32, uinteger = (int(v) for v in array)
    return {"bit_generator": "PCG64", "state": {"state": (hi << 64) | lo, "inc": (inc_hi << 64) | inc_lo},
            "has_uint32": has_uint32, "uinteger": uinteger}


RNG_KEYS = ("epoch_rng", "shuffle_rng", "dropout_rng")


@dataclass
class Snapshot:
    """A trainer's complete state at one moment (arrays copied), ready to be written as a
    checkpoint later: training goes on meanwhile without changing it."""

    arrays: dict[str, np.ndarray]
    meta: dict

    @property
    def epoch(self) -> int:
        return self.meta["epoch"]


class RunRecorder:
    """One run directory, written as training goes (it is the trainer's callback).

    Each epoch appends its row to metrics.csv and its line to train.log (flushed, not
    fsynced) and keeps the trainer's state in memory. Checkpoints are written when
    `every_seconds` of training have passed since the previous save (0: every epoch), and
    when the run stops (`flush`): the newest epoch's state as `last` (and `epoch-N`), the
    best epoch's as `best`, early stopping's best epoch (restore_best) as `epoch-N` while
    it may still be restored. `best` and that `epoch-N` are always on disk before the `last`
    that names them, so a kill -9 at any moment leaves a `last` whose best epochs are
    found; what came after it is replayed exactly by a resume."""

    def __init__(self, path: Path, preprocessing: dict, keep_last: int = 3,
                 every_seconds: float = 0.0):
        self.path = Path(path)
        self.checkpoints = self.path / CHECKPOINTS
        self.preprocessing = finite_only(preprocessing)  # once, not at every epoch
        self.keep_last = keep_last
        self.every_seconds = every_seconds
        self.saved_at = time.monotonic()
        self.latest: Optional[Snapshot] = None  # the newest epoch end not yet written
        self.best: Optional[Snapshot] = None    # the best epoch, when not yet written
        self.early: Optional[Snapshot] = None   # early stopping's best, when not yet written
        self.wrote_best = False
        # metrics.csv's columns when a resume found the file: a run begun by an earlier nnctl
        # keeps its header, and later epochs write those columns (not metrics added since)
        self.columns: Optional[list[str]] = None

    # ---- text files --------------------------------------------------------------------

    def write_config(self, text: str) -> None:
        atomic_write(self.path / "config.yaml", lambda f: f.write(text.encode("utf-8")))

    def log(self, line: str) -> None:
        try:
            with open(self.path / "train.log", "a", encoding="utf-8") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
        except OSError as exc:
            raise UserError(f"{self.path / 'train.log'}: cannot write ({exc.strerror})") from None

    def write_metrics(self, history: list[dict]) -> None:
        """Rewrite metrics.csv from the whole history, atomically."""
        text = _metrics_text(history, header=True) if history else ""
        atomic_write(self.path / "metrics.csv", lambda f: f.write(text.encode()))

    def append_metrics(self, row: dict) -> None:
        """Append one epoch's row to metrics.csv in one write (the header first, into an
        empty file). Flushed, not fsynced: a kill -9 keeps it; the fsync before each
        checkpoint (`sync_metrics`) makes it as durable as the checkpoint that follows."""
        path = self.path / "metrics.csv"
        if self.columns is not None and list(row) != self.columns:
            row = {name: row.get(name, math.nan) for name in self.columns}
        try:
            with open(path, "ab") as f:
                f.write(_metrics_text([row], header=f.tell() == 0).encode())
        except OSError as exc:
            raise UserError(f"{path}: cannot write ({exc.strerror})") from None

    def sync_metrics(self) -> None:
        path = self.path / "metrics.csv"
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise UserError(f"{path}: cannot sync ({exc.strerror})") from None
        try:
            os.fsync(fd)
        except OSError as exc:
            raise UserError(f"{path}: cannot sync ({exc.strerror})") from None
        finally:
            os.close(fd)

    def cut_metrics(self, epoch: int) -> list[dict]:
        """metrics.csv as a checkpoint of `epoch` knows it: rows after that epoch (appended
        by a process that died before its next save) and a line cut short are removed, so
        that the resumed epochs are not recorded twice. Returns the rows kept."""
        path = self.path / "metrics.csv"
        if not os.path.lexists(path):
            return []
        rows = [row for row in read_metrics(self.path, whole_lines=True) if row["epoch"] <= epoch]
        self.write_metrics(rows)
        self.columns = list(rows[0]) if rows else None
        return rows

    def write_summary(self, summary: dict) -> None:
        write_summary(self.path, summary)

    # ---- checkpoints -------------------------------------------------------------------

    def snapshot(self, trainer) -> Snapshot:
        """The trainer's complete state, copied."""
        state = trainer.state_dict()
        arrays = dict(trainer.model.state_dict())
        arrays.update({f"optimizer.{k}": v for k, v in trainer.optimizer.state_dict().items()})
        for key in RNG_KEYS:
            arrays[f"rng.{key.removesuffix('_rng')}"] = rng_array(state.pop(key))
        meta = {
            "epoch": trainer.epoch, "step": trainer.step, "batch": trainer.batch,
            "dtype": str(trainer.model.dtype),
            "preprocessing": self.preprocessing,
            "metrics": finite_only(trainer.last_row),
            "trainer": finite_only(state),
        }
        return Snapshot(arrays, meta)

    def write(self, snapshot: Snapshot, stems: list[str]) -> None:
        """Write a snapshot under the first stem, then hard-link it to the others (no second
        copy of the data; each link replaces its target atomically)."""
        first, *others = stems
        save_checkpoint(self.checkpoints, first, snapshot.arrays, snapshot.meta)
        for stem in others:
            link_checkpoint(self.checkpoints, first, stem)

    def epoch_end(self, trainer, row: dict, is_best: bool) -> None:
        self.append_metrics(row)
        self.log(format_row(row))
        state = self.snapshot(trainer)
        self.latest = state
        if is_best:
            self.best = state
        early = trainer.early_stopping
        if early is not None and early.restore_best and early.best_epoch == trainer.epoch:
            self.early = state
        if time.monotonic() - self.saved_at >= self.every_seconds:
            self.flush(trainer)

    def flush(self, trainer, final: bool = False, mid_epoch: bool = False) -> None:
        """Write every state not on disk yet: early stopping's best epoch (unless training
        is `final`ly over), the best epoch, then the newest epoch end as `last` (with
        `mid_epoch`, the trainer stopped by a signal is `last` itself). Then prune.

        The order is what makes a kill -9 harmless: `last` is written after the best epoch
        and early stopping's best epoch it records are on disk."""
        current = self.snapshot(trainer) if mid_epoch else None
        plan: dict[int, tuple[Snapshot, list[str]]] = {}

        def add(snapshot: Snapshot, stem: str) -> None:
            stems = plan.setdefault(id(snapshot), (snapshot, []))[1]
            if stem not in stems:
                stems.append(stem)

        if self.early is not None and not final:
            add(self.early, f"epoch-{self.early.epoch}")
        if self.best is not None:
            add(self.best, "best")
        if self.latest is not None and self.keep_last:
            add(self.latest, f"epoch-{self.latest.epoch}")
        if current is not None:
            add(current, "last")
        elif self.latest is not None:
            add(self.latest, "last")
        self.sync_metrics()  # metrics.csv holds every epoch a checkpoint holds, on any crash
        for snapshot, stems in sorted(plan.values(), key=lambda item: "last" in item[1]):
            stems.sort(key=_stem_order)
            self.write(snapshot, stems)
            if "best" in stems:
                self.wrote_best = True
        self.latest = self.best = self.early = None
        self.saved_at = time.monotonic()
        early = trainer.early_stopping
        keep = early.best_epoch if early is not None and early.restore_best and not final else None
        self.prune(keep)

    def prune(self, keep: Optional[int] = None) -> None:
        """Keep the `keep_last` newest epoch checkpoints (by number, 9 < 10 < 100), and epoch
        `keep` (early stopping's best, which a resume may need to restore). `last` and
        `best` are hard links of their own, so pruning never removes what they hold."""
        numbered = sorted(epoch_checkpoints(self.checkpoints))
        for number, stem in numbered[:max(len(numbered) - self.keep_last, 0)]:
            if number == keep:
                continue
            for ext in (".json", ".npz"):
                try:
                    (self.checkpoints / f"{stem}{ext}").unlink(missing_ok=True)
                except OSError as exc:
                    raise UserError(f"{self.checkpoints / (stem + ext)}: cannot remove "
                                    f"({exc.strerror})") from None


def _stem_order(stem: str) -> int:
    """Numbered checkpoints first, then best, then last."""
    return {"best": 1, "last": 2}.get(stem, 0)


def _metrics_text(rows: list[dict], header: bool) -> str:
    """CSV lines of numbers under metric names (nothing a CSV writer would quote)."""
    lines = [",".join(rows[0])] if header else []
    lines += [",".join(str(_cell(v)) for v in row.values()) for row in rows]
    return "\n".join(lines) + "\n"


def link_checkpoint(folder: Path, source: str, target: str) -> None:
    for ext in (".npz", ".json"):
        temp = folder / f".{target}{ext}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(3)}"
        try:
            os.link(folder / f"{source}{ext}", temp)
            os.replace(temp, folder / f"{target}{ext}")
        except OSError as exc:
            try:
                temp.unlink(missing_ok=True)
            except OSError:
                pass  # the disk went read-only: the error that matters is the one below
            raise UserError(f"{folder / (target + ext)}: cannot write ({exc.strerror})") from None
    try:
        fsync_dir(folder)
    except OSError as exc:
        raise UserError(f"{folder}: cannot sync ({exc.strerror})") from None


def epoch_checkpoints(folder: Path) -> list[tuple[int, str]]:
    found = []
    for path in folder.glob("epoch-*.npz"):
        match = EPOCH_STEM.match(path.stem)
        if match:
            found.append((int(match.group(1)), path.stem))
    return found


def _cell(value: Any) -> Any:
    return f"{value:.8g}" if isinstance(value, float) else value


def finite_only(value: Any) -> Any:
    """A copy without the non-finite numbers JSON cannot hold (a validation loss that
    overflowed): a metric that cannot be written must never cost the checkpoint or summary."""
    if isinstance(value, dict):
        return {k: finite_only(v) for k, v in value.items()
                if not (isinstance(v, (float, np.floating)) and not math.isfinite(v))}
    if isinstance(value, list):
        return [finite_only(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


# ---- reading run directories -----------------------------------------------------------------

def checkpoint_stem(choice: str) -> str:
    if choice not in ("best", "last"):
        raise UserError(f"--checkpoint: must be 'best' or 'last' (got {choice!r})")
    return choice


def open_run(path: Path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: no such run directory")
    config = path / "config.yaml"
    if not os.path.lexists(config):
        raise UserError(f"{path}: not a run directory (no config.yaml)")
    open_regular(config).close()  # a FIFO, device or folder is named here, before any read
    return path


def read_checkpoint(run_path: Path, stem: str) -> tuple[dict[str, np.ndarray], dict]:
    folder = Path(run_path) / CHECKPOINTS
    if not (folder / f"{stem}.npz").exists() and not (folder / f"{stem}.json").exists():
        raise CheckpointError(f"{folder / stem}.npz: no such checkpoint (has the run finished "
                              "an epoch yet?)")
    return load_checkpoint(folder, stem)


def write_summary(run_path: Path, summary: dict) -> None:
    text = json.dumps(finite_only(summary), indent=2, allow_nan=False,
                      default=_json_default) + "\n"
    atomic_write(Path(run_path) / "summary.json", lambda f: f.write(text.encode("utf-8")))


def read_summary(run_path: Path) -> Optional[dict]:
    """summary.json, checked: None when there is none yet (a run in its first epoch, or one
    killed before writing it); a UserError naming the file and field when it is not one
    nnctl wrote (not JSON, not a mapping, a field of the wrong type, a FIFO or a device)."""
    path = Path(run_path) / "summary.json"
    if not os.path.lexists(path):
        return None
    text = read_text(path)
    try:
        data = json.loads(text)
    except RecursionError:
        raise UserError(f"{path}: nested too deeply to read; not a summary nnctl wrote") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: not JSON ({exc.msg}, column {exc.colno})") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise UserError(f"{path}: not JSON ({exc})") from None
    problems = summary_problems(path, data)
    if len(problems) > MAX_PROBLEMS:
        problems = problems[:MAX_PROBLEMS] + [f"{path}: {len(problems) - MAX_PROBLEMS} more "
                                              "problems"]
    if problems:
        raise UserError(problems)
    return data


MAX_PROBLEMS = 10  # reported per file; the rest are counted

# The fields of summary.json that nnctl reads, and what each must be (any may be null or
# absent; other fields are left alone).
SUMMARY_WHOLE = ("epochs_run", "best_epoch", "seed", "threads")
SUMMARY_REAL = ("wall_seconds",)
SUMMARY_NUMBER_MAPS = ("best", "final", "test", "rows", "blank_targets", "class_weight")
SUMMARY_MAPS = ("versions",)
SUMMARY_TEXT = ("name", "run_dir", "status", "message", "monitor", "command", "signal")


def summary_problems(path: Path, data: Any) -> list[str]:
    if not isinstance(data, dict):
        return [f"{path}: not a mapping of fields to values (got {_json_kind(data)})"]
    problems = []
    for key in SUMMARY_WHOLE + SUMMARY_REAL:
        problem = _number_problem(data.get(key), whole=key in SUMMARY_WHOLE)
        if problem:
            problems.append(f"{path}: field {key!r} {problem} (got {_shown(data[key])})")
    for key in SUMMARY_NUMBER_MAPS + SUMMARY_MAPS:
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            problems.append(f"{path}: field {key!r} is not a mapping (got {_shown(value)})")
            continue
        if key in SUMMARY_NUMBER_MAPS:
            for name, inner in value.items():
                problem = _number_problem(inner, whole=False, nullable=False)
                if problem:
                    problems.append(f"{path}: field '{key}.{name}' {problem} "
                                    f"(got {_shown(inner)})")
    for key in SUMMARY_TEXT:
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            problems.append(f"{path}: field {key!r} is not text (got {_shown(value)})")
    return problems


def _number_problem(value: Any, whole: bool, nullable: bool = True) -> Optional[str]:
    """None for a finite number (an integer if `whole`), else what is wrong with it."""
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "is not a number"
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an integer beyond any float
        finite = False
    if not finite:
        return "is not a finite number"
    if whole and not isinstance(value, int):
        return "is not a whole number"
    return None


def _json_kind(value: Any) -> str:
    kinds = {list: "a list", str: "text", bool: "true or false", type(None): "null"}
    return kinds.get(type(value), "a number" if isinstance(value, (int, float)) else "a value")


def _shown(value: Any, width: int = 40) -> str:
    """A value as JSON, cut to `width` characters."""
    try:
        text = json.dumps(value, default=str)
    except (ValueError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= width else text[:width - 3] + "..."


METRICS_LINE_LIMIT = 1024 * 1024  # bytes; a line of metrics.csv is about 100


def read_metrics(run_path: Path, whole_lines: bool = False) -> list[dict]:
    """metrics.csv, one dict per epoch: `epoch` an int, every other column a float. [] when
    there is no metrics.csv yet (the run has not finished an epoch). A file nnctl did not write
    (a FIFO or a device, text that is not UTF-8 or CSV, a row whose length is not the
    header's, a cell that is not a number) is a UserError naming the file and the line.

    `whole_lines`: a last line without its newline is left out (a row being appended, or
    cut short by a crash), as a reader of a running or killed run's file wants."""
    path = Path(run_path) / "metrics.csv"
    if not os.path.lexists(path):
        return []
    with open_regular(path) as f:
        return _parse_metrics(path, f, whole_lines)


def _metric_lines(path: Path, f, whole_lines: bool = False):
    """The lines of a binary file as text, each at most METRICS_LINE_LIMIT bytes."""
    number = 0
    while True:
        raw = f.readline(METRICS_LINE_LIMIT + 1)
        if not raw or (whole_lines and not raw.endswith(b"\n")
                       and len(raw) <= METRICS_LINE_LIMIT):
            return
        number += 1
        if len(raw) > METRICS_LINE_LIMIT:
            raise UserError(f"{path}:{number}: a line longer than "
                            f"{METRICS_LINE_LIMIT // (1024 * 1024)} MB; not a file nnctl wrote")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UserError(f"{path}:{number}: not UTF-8 text (byte {exc.start + 1} of the "
                            "line)") from None
        yield text.removeprefix("\ufeff") if number == 1 else text


def _parse_metrics(path: Path, f, whole_lines: bool = False) -> list[dict]:
    reader = csv.reader(_metric_lines(path, f, whole_lines), strict=True)
    problems: list[str] = []
    more = 0
    rows: list[dict] = []
    try:
        header = next(reader, None)
        if header is None:
            return []
        names = set()
        for name in header:
            if not name.strip():
                problems.append(f"{path}:1: a column without a name")
            elif name in names:
                problems.append(f"{path}:1: column {name!r} is given twice")
            names.add(name)
        if "epoch" not in names:
            problems.append(f"{path}:1: no 'epoch' column")
        if problems:
            raise UserError(problems)
        converters = [_epoch if name == "epoch" else float for name in header]
        width = len(header)
        for cells in reader:
            if not cells:
                continue  # a blank line
            if len(cells) != width:
                found = [f"{path}:{reader.line_num}: {len(cells)} cells, but the header has "
                         f"{width} columns"]
            else:
                try:
                    rows.append(dict(zip(header, [convert(cell) for convert, cell
                                                  in zip(converters, cells)])))
                    continue
                except ValueError:
                    found = [_cell_problem(path, reader.line_num, name, cell)
                             for name, cell in zip(header, cells)]
                    found = [problem for problem in found if problem]
            keep = max(MAX_PROBLEMS - len(problems), 0)
            problems += found[:keep]
            more += len(found) - len(found[:keep])
    except csv.Error as exc:
        problems.append(f"{path}:{reader.line_num}: not CSV ({exc})")
    if problems:
        if more:
            problems.append(f"{path}: {more} more problems")
        raise UserError(problems)
    return rows


MAX_EPOCH = 2**63 - 1


def _epoch(cell: str) -> int:
    value = int(cell)
    if not 0 <= value <= MAX_EPOCH:
        raise ValueError(f"epoch {cell} out of range")
    return value


def _cell_problem(path: Path, line: int, column: str, cell: str) -> Optional[str]:
    shown = cell if len(cell) <= 20 else cell[:17] + "..."
    if column == "epoch":
        try:
            _epoch(cell)
        except ValueError:
            return f"{path}:{line}: column 'epoch' is not a whole number of 0 or more ({shown!r})"
        return None
    try:
        float(cell)
    except ValueError:
        return f"{path}:{line}: column {column!r} is not a number ({shown!r})"
    return None


def find_runs(root: Path) -> list[Path]:
    """Run directories below `root` (sweep folders included), sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: no such folder")
    return sorted(p.parent for p in root.rglob("config.yaml")
                  if (p.parent / CHECKPOINTS).is_dir()
                  or os.path.lexists(p.parent / "summary.json"))


def command_line() -> str:
    """The command as a user would type it again (`python -m nnctl.cli` reads as `nnctl`)."""
    program = Path(sys.argv[0])
    name = "nnctl" if program.name in ("nnctl", "cli.py", "__main__.py") else program.name
    return shlex.join([name, *sys.argv[1:]])
