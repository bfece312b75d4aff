"""Checkpoints: atomic save, strict load.

A checkpoint is a pair `<stem>.npz` (plain arrays, read with allow_pickle=False) and
`<stem>.json` (format version, epoch, step, preprocessing, metrics, and the name, shape, dtype
and sha256 of every array). The npz also embeds the same JSON as a uint8 array `meta.json`,
so it is self-describing: if a crash lands between replacing the npz and replacing the json,
the newer npz is still verifiable and loads; any other mismatch is refused.

Writes go to a temporary file in the same folder, are flushed and fsynced, renamed over the
old file with os.replace, and the folder is fsynced: at any moment the previous checkpoint or
the new one is complete on disk.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import zipfile
from pathlib import Path
from typing import Callable, IO

import numpy as np

from .errors import CheckpointError, UserError

FORMAT_VERSION = 1
META_ARRAY = "meta.json"
TEMP_MARK = ".tmp-"


def sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def describe(arrays: dict[str, np.ndarray]) -> dict[str, dict]:
    return {name: {"shape": list(a.shape), "dtype": str(a.dtype), "sha256": sha256(a)}
            for name, a in arrays.items()}


# ---- writing -----------------------------------------------------------------------------

def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write a file so that it is either the old or the new version at every moment."""
    path = Path(path)
    temp = path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(3)}")
    try:
        with open(temp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise UserError(f"{path}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_temp_files(folder: Path) -> list[Path]:
    """Delete temporary files left by a process killed mid-write."""
    removed = []
    if folder.is_dir():
        for path in folder.iterdir():
            if path.name.startswith(".") and TEMP_MARK in path.name:
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def save_checkpoint(folder: Path, stem: str, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write `<stem>.npz` then `<stem>.json` atomically."""
    meta = {"format": FORMAT_VERSION, **meta, "arrays": describe(arrays)}
    text = json.dumps(meta, indent=1, allow_nan=False).encode("utf-8")
    payload = {**arrays, META_ARRAY: np.frombuffer(text, dtype=np.uint8)}
    atomic_write(folder / f"{stem}.npz", lambda f: np.savez(f, **payload))
    atomic_write(folder / f"{stem}.json", lambda f: f.write(text))


# ---- reading -----------------------------------------------------------------------------

def load_checkpoint(folder: Path, stem: str) -> tuple[dict[str, np.ndarray], dict]:
    """Load and verify a checkpoint; raise CheckpointError listing every problem."""
    npz_path, json_path = Path(folder) / f"{stem}.npz", Path(folder) / f"{stem}.json"
    arrays = read_npz(npz_path)
    embedded = arrays.pop(META_ARRAY, None)
    meta = read_json(json_path)
    if embedded is not None:
        try:
            inner = json.loads(embedded.tobytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise CheckpointError(f"{npz_path}: array {META_ARRAY!r} is not valid JSON") from None
        if _position(inner) > _position(meta):
            # The json is one save behind: the process died between the two renames.
            meta = inner
    verify(arrays, meta, npz_path, json_path)
    if embedded is not None and inner != meta:
        raise CheckpointError(f"{json_path}: does not match the description stored in "
                              f"{npz_path.name} (one of them was changed)")
    return arrays, meta


def _position(meta: dict) -> tuple:
    return (meta.get("epoch", 0), meta.get("step", 0)) if isinstance(meta, dict) else (-1, -1)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Read every array of an npz without trusting it: each member's header is checked
    (no Python objects, a size the file can actually hold) before its data is read."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    arrays, problems = {}, []
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                name = member.filename.removesuffix(".npy")
                try:
                    with archive.open(member) as f:
                        arrays[name] = _read_member(f, member)
                except _Refused as exc:
                    problems.append(f"{path}: array {name!r} {exc}")
                except Exception as exc:  # zipfile and numpy raise many kinds for bad bytes
                    problems.append(f"{path}: array {name!r} is unreadable "
                                    f"({type(exc).__name__}: {exc})")
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, NotImplementedError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({exc})") from None
    if problems:
        raise CheckpointError(problems)
    return arrays


class _Refused(Exception):
    pass


def _read_member(f, member: zipfile.ZipInfo) -> np.ndarray:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    if dtype.hasobject:
        raise _Refused("holds Python objects (pickle), which are never loaded")
    size = dtype.itemsize * math.prod(shape)
    if size > member.file_size:
        raise _Refused(f"claims {size} bytes of data but the file holds {member.file_size}")
    data = f.read(size)
    if len(data) != size:
        raise _Refused("is truncated")
    array = np.frombuffer(data, dtype=dtype)
    return array.reshape(shape, order="F" if fortran else "C").copy()


def read_json(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("arrays"), dict):
        raise CheckpointError(f"{path}: not a checkpoint description (no 'arrays' table)")
    if meta.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {meta.get('format')!r} is not "
                              f"supported (expected {FORMAT_VERSION})")
    return meta


def verify(arrays: dict[str, np.ndarray], meta: dict, npz_path: Path, json_path: Path) -> None:
    listed = meta["arrays"]
    problems = [f"{npz_path}: array {name!r} is listed in {json_path.name} but missing"
                for name in listed if name not in arrays]
    problems += [f"{npz_path}: array {name!r} is not listed in {json_path.name}"
                 for name in arrays if name not in listed]
    for name, array in arrays.items():
        entry = listed.get(name)
        if not isinstance(entry, dict):
            continue
        if list(array.shape) != entry.get("shape") or str(array.dtype) != entry.get("dtype"):
            problems.append(f"{npz_path}: array {name!r} is {array.dtype}{list(array.shape)}, "
                            f"{json_path.name} says {entry.get('dtype')}{entry.get('shape')}")
        elif sha256(array) != entry.get("sha256"):
            problems.append(f"{npz_path}: array {name!r} does not match its sha256 in "
                            f"{json_path.name} (the file is corrupted or was changed)")
        elif array.dtype.kind == "f" and not np.isfinite(array).all():
            problems.append(f"{npz_path}: array {name!r} holds non-finite values")
    if problems:
        raise CheckpointError(problems)


def model_arrays(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model's weights among a checkpoint's arrays: `layers.*` and `inputs.*` (embedding
    tables), without the optimizer state."""
    return {name: a for name, a in arrays.items() if name.startswith(("layers.", "inputs."))}


def load_weights_file(path: Path) -> dict[str, np.ndarray]:
    """Weights for --init-weights: a checkpoint npz (verified against its json when there is
    one) or a plain npz of `layers.<i>.<param>` (and `inputs.<column>.E`) arrays."""
    path = Path(path)
    if path.suffix == ".npz" and path.with_suffix(".json").is_file():
        arrays, _ = load_checkpoint(path.parent, path.stem)
    else:
        arrays = read_npz(path)
        arrays.pop(META_ARRAY, None)
        bad = [f"{path}: array {n!r} holds non-finite values" for n, a in arrays.items()
               if a.dtype.kind == "f" and not np.isfinite(a).all()]
        if bad:
            raise CheckpointError(bad)
    return model_arrays(arrays)
