"""Run directories: create them, record a run into them, read them back, list them.

    runs/<name>-<YYYYmmdd-HHMMSS>-<4 hex>/
      config.yaml  metrics.csv  summary.json  train.log
      checkpoints/last.{npz,json}  best.{npz,json}  epoch-<n>.{npz,json}
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import re
import secrets
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ._version import __version__
from .checkpoint import (
    atomic_write, fsync_dir, load_checkpoint, save_checkpoint, TEMP_MARK,
)
from .errors import CheckpointError, UserError
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


class RunRecorder:
    """One run directory, written as training goes (it is the trainer's callback)."""

    def __init__(self, path: Path, preprocessing: dict, keep_last: int = 3):
        self.path = Path(path)
        self.checkpoints = self.path / CHECKPOINTS
        self.preprocessing = preprocessing
        self.keep_last = keep_last

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
        """Rewrite metrics.csv from the whole history (small), atomically."""
        buffer = io.StringIO()
        if history:
            writer = csv.DictWriter(buffer, fieldnames=list(history[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows({k: _cell(v) for k, v in row.items()} for row in history)
        atomic_write(self.path / "metrics.csv", lambda f: f.write(buffer.getvalue().encode()))

    def write_summary(self, summary: dict) -> None:
        write_summary(self.path, summary)

    # ---- checkpoints -------------------------------------------------------------------

    def save(self, trainer, stems: list[str]) -> None:
        """Save the trainer's complete state under the first stem, then hard-link it to the
        others (no second copy of the data; each link replaces its target atomically)."""
        state = trainer.state_dict()
        arrays = dict(trainer.model.state_dict())
        arrays.update({f"optimizer.{k}": v for k, v in trainer.optimizer.state_dict().items()})
        for key in RNG_KEYS:
            arrays[f"rng.{key.removesuffix('_rng')}"] = rng_array(state.pop(key))
        meta = {
            "epoch": trainer.epoch, "step": trainer.step, "batch": trainer.batch,
            "dtype": str(trainer.model.dtype),
            "preprocessing": self.preprocessing,
            "metrics": trainer.last_row,
            "trainer": state,
        }
        first, *others = stems
        save_checkpoint(self.checkpoints, first, arrays, meta)
        for stem in others:
            link_checkpoint(self.checkpoints, first, stem)

    def epoch_end(self, trainer, row: dict, is_best: bool) -> None:
        self.write_metrics(trainer.history)
        self.log(format_row(row))
        epoch_stem = f"epoch-{trainer.epoch}"
        stems = ([epoch_stem] if self.keep_last else []) + ["last"] + (["best"] if is_best else [])
        self.save(trainer, stems)
        self.prune()

    def prune(self) -> None:
        """Keep the `keep_last` newest epoch checkpoints (by number, 9 < 10 < 100). `last`
        and `best` are hard links of their own, so pruning never removes what they hold."""
        numbered = sorted(epoch_checkpoints(self.checkpoints))
        for _, stem in numbered[:max(len(numbered) - self.keep_last, 0)]:
            for ext in (".json", ".npz"):
                try:
                    (self.checkpoints / f"{stem}{ext}").unlink(missing_ok=True)
                except OSError as exc:
                    raise UserError(f"{self.checkpoints / (stem + ext)}: cannot remove "
                                    f"({exc.strerror})") from None


def link_checkpoint(folder: Path, source: str, target: str) -> None:
    for ext in (".npz", ".json"):
        temp = folder / f".{target}{ext}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(3)}"
        try:
            os.link(folder / f"{source}{ext}", temp)
            os.replace(temp, folder / f"{target}{ext}")
        except OSError as exc:
            temp.unlink(missing_ok=True)
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
    if not (path / "config.yaml").is_file():
        raise UserError(f"{path}: not a run directory (no config.yaml)")
    return path


def read_checkpoint(run_path: Path, stem: str) -> tuple[dict[str, np.ndarray], dict]:
    folder = Path(run_path) / CHECKPOINTS
    if not (folder / f"{stem}.npz").exists() and not (folder / f"{stem}.json").exists():
        raise CheckpointError(f"{folder / stem}.npz: no such checkpoint (has the run finished "
                              "an epoch yet?)")
    return load_checkpoint(folder, stem)


def write_summary(run_path: Path, summary: dict) -> None:
    text = json.dumps(summary, indent=2, allow_nan=False, default=_json_default) + "\n"
    atomic_write(Path(run_path) / "summary.json", lambda f: f.write(text.encode("utf-8")))


def read_summary(run_path: Path) -> Optional[dict]:
    try:
        return json.loads((Path(run_path) / "summary.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def read_metrics(run_path: Path) -> list[dict]:
    try:
        with open(Path(run_path) / "metrics.csv", newline="", encoding="utf-8") as f:
            return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]
    except OSError:
        return []


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def find_runs(root: Path) -> list[Path]:
    """Run directories below `root` (sweep folders included), sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: no such folder")
    return sorted(p.parent for p in root.rglob("config.yaml")
                  if (p.parent / CHECKPOINTS).is_dir() or (p.parent / "summary.json").is_file())


def command_line() -> str:
    """The command as a user would type it again (`python -m nnctl.cli` reads as `nnctl`)."""
    program = Path(sys.argv[0])
    name = "nnctl" if program.name in ("nnctl", "cli.py", "__main__.py") else program.name
    return shlex.join([name, *sys.argv[1:]])
