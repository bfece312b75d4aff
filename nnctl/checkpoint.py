"""Checkpoints: atomic save, strict load.

A checkpoint is a pair `<stem>.npz` (plain arrays, read with allow_pickle=False) and
`<stem>.json` (format version, epoch, step, preprocessing, metrics, and the name, shape, dtype
and sha256 of every array). The npz also embeds the same JSON as a uint8 array `meta.json`,
so it is self-describing: if a crash lands between replacing the npz and replacing the json,
the newer npz is still verifiable and loads; any other mismatch is refused.

Writes go to a temporary file in the same folder, are flushed and fsynced, renamed over the
old file with os.replace, and the folder is fsynced: at any moment the previous checkpoint or
the new one is complete on disk.

Loading trusts nothing it reads. The json (and the embedded copy) is read up to a bound and
checked against a strict schema (`MetaSchema`) before any of it is used; every member of the
npz is checked against that description before it is inflated: a member the json does not
describe is refused, and one whose declared size is not what the json's shape and dtype make
it (plus a small .npy header) is refused without inflating a byte. Members are then read
through a bounded reader, so a zip header that lies about its size cannot make a member
inflate past the bound either. A caller that knows what the arrays must be (the run's model)
checks the description before the arrays are read (`load_checkpoint(..., check=...)`).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import secrets
import struct
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, Callable, Optional

import numpy as np

from .data.problems import MAX_PROBLEMS, limit
from .errors import CheckpointError, UserError
from .files import SIDECAR_LIMIT, open_regular, read_bytes

FORMAT_VERSION = 1
META_ARRAY = "meta.json"
TEMP_MARK = ".tmp-"

NPY_HEADER_LIMIT = 64 * 1024   # bytes a member may hold besides its data: the .npy header
MAX_WHOLE = 2**53              # counts in the json (epochs, steps, sizes): exact in JSON
MAX_ITEMS = 1_000_000          # entries of any list in the json
MAX_ARRAYS = 50_000            # arrays in one checkpoint
MAX_NDIM = 32                  # dimensions of one array (NumPy allows 64)
MAX_DIGITS = 30                # digits of an integer in the json (2**64 has 20)
DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "float32", "float64")
# Without a description to check against (a plain weights file), a member may not inflate
# beyond this many times its compressed size once it is larger than UNDESCRIBED_FREE bytes.
UNDESCRIBED_RATIO = 100
UNDESCRIBED_FREE = 64 * 1024 * 1024


def sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def describe(arrays: dict[str, np.ndarray]) -> dict[str, dict]:
    return {name: {"shape": list(a.shape), "dtype": str(a.dtype), "sha256": sha256(a)}
            for name, a in arrays.items()}


def data_bytes(entry: dict) -> int:
    """The bytes of data an `arrays` entry (shape and dtype) describes."""
    return np.dtype(entry["dtype"]).itemsize * math.prod(entry["shape"])


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
        _discard(temp)
        raise UserError(f"{path}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        _discard(temp)
        raise


def _discard(temp: Path) -> None:
    """Remove a temporary file if it is there. On a disk that went read-only, or below a
    path that is not a folder, the removal fails too: that must not hide the error that
    made the write fail, so it is ignored (a later resume removes leftovers)."""
    try:
        os.unlink(temp)
    except OSError:
        pass


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


TEMP_NAME = re.compile(r"\..+" + re.escape(TEMP_MARK) + r"\d+-[0-9a-f]+")  # atomic_write's


def remove_temp_files(folder: Path) -> list[Path]:
    """Delete temporary files left by a process killed mid-write: only files named as
    atomic_write names them, and never through a symlinked folder (what it points to is not
    the run's: nnctl deletes only what it created)."""
    removed = []
    if folder.is_dir() and not folder.is_symlink():
        for path in folder.iterdir():
            if TEMP_NAME.fullmatch(path.name) and path.is_file() and not path.is_symlink():
                try:
                    path.unlink(missing_ok=True)
                except OSError as exc:
                    raise UserError(f"{path}: cannot remove a temporary file left by an "
                                    f"earlier process ({exc.strerror or exc})") from None
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

def load_checkpoint(folder: Path, stem: str,
                    check: Optional[Callable[[dict], None]] = None
                    ) -> tuple[dict[str, np.ndarray], dict]:
    """Load and verify a checkpoint; raise CheckpointError listing every problem.

    `check(meta)` runs on the checked description before any array is inflated: it raises
    CheckpointError when the arrays are not what the caller needs (a model's shapes)."""
    npz_path, json_path = Path(folder) / f"{stem}.npz", Path(folder) / f"{stem}.json"
    meta = read_json(json_path)
    inner = None
    with _open_npz(npz_path) as archive:
        members = _members(archive, npz_path)
        embedded = members.pop(META_ARRAY, None)
        if embedded is not None:
            inner = _read_embedded(archive, embedded, npz_path)
            if _position(inner) > _position(meta):
                # The json is one save behind: the process died between the two renames.
                meta = inner
        if check is not None:
            check(meta)
        arrays = _read_described(archive, members, meta["arrays"], npz_path, json_path)
    verify(arrays, meta, npz_path, json_path)
    if inner is not None and inner != meta:
        raise CheckpointError(f"{json_path}: does not match the description stored in "
                              f"{npz_path.name} (one of them was changed)")
    return arrays, meta


def _position(meta: dict) -> tuple:
    return (meta["epoch"], meta["step"])


class _open_npz:
    """A zip archive on a regular file (no FIFO, device or folder), closed on exit."""

    def __init__(self, path: Path):
        self.path = path
        self.file = open_regular(path, CheckpointError)
        try:
            _check_directory(self.file, path)
            self.archive = zipfile.ZipFile(self.file)
        except (OSError, EOFError, ValueError, zipfile.BadZipFile, NotImplementedError,
                OverflowError) as exc:
            self.file.close()
            raise CheckpointError(f"{path}: not a readable checkpoint ({exc})") from None
        except BaseException:
            self.file.close()
            raise

    def __enter__(self) -> zipfile.ZipFile:
        return self.archive

    def __exit__(self, *exc) -> None:
        self.archive.close()
        self.file.close()


def _check_directory(f, path: Path) -> None:
    """Refuse a zip whose central directory declares more members than a checkpoint holds,
    before zipfile parses it into one object per member (a few hundred bytes each, for a
    few dozen bytes of file)."""
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(max(0, size - 22 - 65535))  # the end record, and a comment of up to 64 KiB
    tail = f.read()
    f.seek(0)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return  # zipfile names what is wrong
    entries, directory = struct.unpack("<HL", tail[at + 10:at + 16])
    locator = tail[at - 20:at] if at >= 20 else b""
    if locator[:4] == b"PK\x06\x07":  # zip64: the counts are in the zip64 end record
        (offset,) = struct.unpack("<Q", locator[8:16])
        f.seek(offset)
        record = f.read(56)
        f.seek(0)
        if len(record) == 56 and record[:4] == b"PK\x06\x06":
            entries, directory = struct.unpack("<QQ", record[32:48])
    if entries > MAX_ARRAYS + 1:
        raise CheckpointError(f"{path}: its zip directory lists {entries} members; a "
                              f"checkpoint holds at most {MAX_ARRAYS + 1}")
    if directory > 1024 * (MAX_ARRAYS + 1):
        raise CheckpointError(f"{path}: its zip directory takes {directory} bytes; not a "
                              "checkpoint's")


def _members(archive: zipfile.ZipFile, path: Path) -> dict[str, zipfile.ZipInfo]:
    """The archive's members by array name, each one that can be read safely: stored or
    deflated (the only methods that inflate through a bound), not encrypted, named once."""
    members: dict[str, zipfile.ZipInfo] = {}
    problems = []
    for info in archive.infolist():
        name = info.filename.removesuffix(".npy")
        if name in members:
            problems.append(f"{path}: array {name!r} is stored twice")
        elif info.flag_bits & 0x1:
            problems.append(f"{path}: array {name!r} is encrypted")
        elif info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            problems.append(f"{path}: array {name!r} uses compression method "
                            f"{info.compress_type}; only stored and deflated members are read")
        members[name] = info
    if problems:
        raise CheckpointError(limit(problems, path))
    return members


def _read_embedded(archive: zipfile.ZipFile, info: zipfile.ZipInfo, npz_path: Path) -> dict:
    """The description embedded in the npz (array `meta.json`), read up to the sidecar
    bound and checked like the json."""
    where = f"{npz_path}: array {META_ARRAY!r}"
    if info.file_size > SIDECAR_LIMIT + NPY_HEADER_LIMIT:
        raise CheckpointError(f"{where} holds {info.file_size} bytes; a description is at "
                              f"most {SIDECAR_LIMIT // (1024 * 1024)} MB")
    try:
        array = _read_member(archive, info, SIDECAR_LIMIT + NPY_HEADER_LIMIT)
    except _Refused as exc:
        raise CheckpointError(f"{where} {exc}") from None
    except Exception as exc:  # zipfile and numpy raise many kinds for bad bytes
        raise CheckpointError(f"{where} is unreadable ({type(exc).__name__}: {exc})") from None
    if array.dtype != np.uint8 or array.ndim != 1:
        raise CheckpointError(f"{where} is not text (a {array.dtype} array)")
    return parse_meta(array.tobytes(), where, f"{npz_path}: {META_ARRAY}")


def _read_described(archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo],
                    described: dict, npz_path: Path, json_path: Path) -> dict[str, np.ndarray]:
    """Every member the description lists, each checked against its description before it
    is inflated and read through a bound; members it does not list are refused unread."""
    arrays, problems = {}, []
    for name, info in members.items():
        entry = described.get(name)
        if entry is None:
            problems.append(f"{npz_path}: array {name!r} is not listed in {json_path.name}")
            continue
        size = data_bytes(entry)
        if not size <= info.file_size <= size + NPY_HEADER_LIMIT:
            problems.append(
                f"{npz_path}: array {name!r} declares {info.file_size} bytes uncompressed, "
                f"but {json_path.name} describes {entry['dtype']}{entry['shape']}: {size} "
                f"bytes of data and a header of at most {NPY_HEADER_LIMIT}; not inflated")
            continue
        _read_into(arrays, problems, archive, info, size + NPY_HEADER_LIMIT,
                   f"{npz_path}: array {name!r}")
    if problems:
        raise CheckpointError(limit(problems, npz_path))
    return arrays


def _read_into(arrays: dict, problems: list[str], archive: zipfile.ZipFile,
               info: zipfile.ZipInfo, bound: int, where: str) -> None:
    """Read one member through `bound` into `arrays`, or word why not into `problems`."""
    try:
        arrays[info.filename.removesuffix(".npy")] = _read_member(archive, info, bound)
    except _Refused as exc:
        problems.append(f"{where} {exc}")
    except Exception as exc:  # zipfile and numpy raise many kinds for bad bytes
        problems.append(f"{where} is unreadable ({type(exc).__name__}: {exc})")


def read_npz(path: Path, expected: Optional[dict[str, int]] = None) -> dict[str, np.ndarray]:
    """Read the arrays of an npz that has no description (a plain weights file) without
    trusting it: each member's header is checked (no Python objects, a size the member can
    hold) before its data is read, through a bound.

    With `expected` (array name -> the most bytes of data it may hold), only those members
    are read, each bounded by its size; the others are not inflated. Without it, every
    member is read, and one that would inflate far beyond its compressed size is refused."""
    path = Path(path)
    arrays, problems = {}, []
    with _open_npz(path) as archive:
        for name, info in _members(archive, path).items():
            if expected is not None:
                if name not in expected:
                    continue
                bound = expected[name] + NPY_HEADER_LIMIT
                if info.file_size > bound:
                    problems.append(f"{path}: array {name!r} declares {info.file_size} bytes "
                                    f"uncompressed; the model's array needs at most "
                                    f"{expected[name]}; not inflated")
                    continue
            else:
                bound = info.file_size
                if bound > max(UNDESCRIBED_FREE, UNDESCRIBED_RATIO * info.compress_size):
                    problems.append(f"{path}: array {name!r} would inflate from "
                                    f"{info.compress_size} to {info.file_size} bytes; not "
                                    "inflated")
                    continue
            _read_into(arrays, problems, archive, info, bound, f"{path}: array {name!r}")
    if problems:
        raise CheckpointError(limit(problems, path))
    return arrays


class _Refused(Exception):
    pass


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> np.ndarray:
    """One .npy member, inflated to at most `limit` bytes (zipfile also stops at the size the
    central directory declares), then parsed: no Python objects, no bytes missing or left
    over."""
    with archive.open(info) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise _Refused(f"inflates beyond {limit} bytes")
    buffer = io.BytesIO(data)
    version = np.lib.format.read_magic(buffer)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(buffer)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(buffer)
    else:
        raise _Refused(f"has .npy format version {version[0]}.{version[1]} (1.0 and 2.0 "
                       "are read)")
    if dtype.hasobject:
        raise _Refused("holds Python objects (pickle), which are never loaded")
    if len(shape) > MAX_NDIM:
        raise _Refused(f"has {len(shape)} dimensions")
    if dtype.itemsize == 0 or dtype.fields is not None or dtype.subdtype is not None:
        raise _Refused(f"has the data type {dtype}, which is not a plain number type")
    size = dtype.itemsize * math.prod(shape)
    offset = buffer.tell()
    held = len(data) - offset
    if size > held:
        raise _Refused(f"claims {size} bytes of data but the file holds {held}"
                       if len(data) == info.file_size else "is truncated")
    if size < held:
        raise _Refused(f"holds {held - size} bytes after its data")
    if size == 0:
        return np.zeros(shape, dtype=dtype, order="F" if fortran else "C")
    array = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=offset)
    return array.reshape(shape, order="F" if fortran else "C").copy()


def read_json(path: Path) -> dict:
    """A checkpoint's description (`<stem>.json`): a regular file of at most the sidecar
    bound, strict JSON, checked against the schema. CheckpointError names the file and
    every field that is wrong."""
    path = Path(path)
    data = read_bytes(path, SIDECAR_LIMIT, CheckpointError)
    return parse_meta(data, str(path), str(path))


def parse_meta(data: bytes, where: str, prefix: str) -> dict:
    """Parse and check a checkpoint description. `where` names the source in messages about
    the text, `prefix` in messages about a field."""
    try:
        meta = json.loads(data.decode("utf-8"), parse_constant=_no_constant, parse_int=_int,
                          object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{where}: not valid JSON (not UTF-8 text: byte {exc.start})") \
            from None
    except RecursionError:
        raise CheckpointError(f"{where}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, and the hooks' refusals
        raise CheckpointError(f"{where}: not valid JSON ({exc})") from None
    odd = _odd_values(meta)
    if odd:
        raise CheckpointError([f"{prefix}: {field_path(loc)}: {value}" for loc, value in odd])
    if not isinstance(meta, dict) or not isinstance(meta.get("arrays"), dict):
        raise CheckpointError(f"{where}: not a checkpoint description (no 'arrays' table)")
    if meta.get("format") != FORMAT_VERSION or isinstance(meta.get("format"), bool):
        raise CheckpointError(f"{where}: format version {_shown(meta.get('format'))} is not "
                              f"supported (expected {FORMAT_VERSION})")
    check_schema(meta, prefix)
    return meta


class _Odd(str):
    """A value JSON allows but no checkpoint holds, kept in place while parsing so that the
    field it sits in can be named: an integer too long to be a count, NaN or Infinity."""


def _no_constant(name: str) -> _Odd:
    return _Odd(f"{name} is not a number a checkpoint holds (JSON has no {name})")


def _int(text: str) -> Any:
    digits = len(text.lstrip("-"))
    if digits > MAX_DIGITS:
        return _Odd(f"an integer of {digits} digits is not a count any checkpoint holds")
    return int(text)


def _odd_values(node: Any) -> list[tuple[tuple, str]]:
    """Where parsing left an _Odd value (at most MAX_PROBLEMS), without recursion."""
    found, stack = [], [((), node)]
    while stack and len(found) < MAX_PROBLEMS:
        loc, value = stack.pop()
        if isinstance(value, _Odd):
            found.append((loc, str(value)))
        elif isinstance(value, dict):
            stack.extend(((*loc, key), v) for key, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend(((*loc, i), v) for i, v in reversed(list(enumerate(value))))
    return found


def _no_duplicates(pairs: list) -> dict:
    result = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the key {key!r} appears twice in one object")
        result[key] = value
    return result


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
        raise CheckpointError(limit(problems, npz_path))


def model_arrays(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model's weights among a checkpoint's arrays: `layers.*` and `inputs.*` (embedding
    tables), without the optimizer state."""
    return {name: a for name, a in arrays.items() if name.startswith(("layers.", "inputs."))}


def load_weights_file(path: Path, expected: Optional[dict[str, int]] = None
                      ) -> dict[str, np.ndarray]:
    """Weights for --init-weights: a checkpoint npz (verified against its json when there is
    one) or a plain npz of `layers.<i>.<param>` (and `inputs.<column>.E`) arrays.

    `expected` (the model's array names -> the most bytes each may hold) bounds what is
    inflated: a plain npz's other members are not read, and a checkpoint whose description
    adds up to far more than the model (with its optimizer state) is refused unread."""
    path = Path(path)
    if path.suffix == ".npz" and path.with_suffix(".json").is_file():
        check = None
        if expected is not None:
            def check(meta: dict) -> None:
                # weights, optimizer state (at most two buffers per weight) and a little more
                allowed = 4 * sum(expected.values()) + 16 * 1024 * 1024
                described = sum(data_bytes(entry) for entry in meta["arrays"].values())
                if described > allowed:
                    raise CheckpointError(
                        f"{path}: its arrays add up to {described} bytes "
                        f"({path.with_suffix('.json').name}); the model's need about "
                        f"{sum(expected.values())}: not the checkpoint of this model")
        arrays, _ = load_checkpoint(path.parent, path.stem, check)
    else:
        arrays = read_npz(path, expected)
        arrays.pop(META_ARRAY, None)
        bad = [f"{path}: array {n!r} holds non-finite values" for n, a in arrays.items()
               if a.dtype.kind == "f" and not np.isfinite(a).all()]
        if bad:
            raise CheckpointError(limit(bad, path))
    return model_arrays(arrays)


# ---- the description's schema ----------------------------------------------------------------

def check_schema(meta: dict, prefix: str) -> None:
    """Check a parsed description against the strict schema; CheckpointError lists each
    problem as `<prefix>: <field>: <what is wrong>`."""
    from pydantic import ValidationError

    try:
        _schema().model_validate(meta)
    except ValidationError as exc:
        raise CheckpointError(schema_problems(exc, prefix)) from None
    except RecursionError:
        raise CheckpointError(f"{prefix}: nested too deeply") from None


def schema_problems(exc, prefix: str) -> list[str]:
    problems: list[str] = []
    for error in exc.errors():
        loc = list(error["loc"])
        # a column's type, which Pydantic puts in the path of a tagged union, is not a field
        for i in range(len(loc) - 1, 1, -1):
            if loc[i - 2] == "columns" and isinstance(loc[i - 1], int) and \
                    isinstance(loc[i], str) and _column_tag(error, loc[i]):
                del loc[i]
        problem = f"{prefix}: {field_path(loc)}: {_message(error)}"
        if problem not in problems:
            problems.append(problem)
    return limit(problems, prefix)


def _column_tag(error: dict, part: str) -> bool:
    from .data.columns import COLUMN_TYPES

    return part in COLUMN_TYPES and error["type"] not in ("union_tag_invalid",)


def field_path(loc) -> str:
    """('trainer', 'epoch') -> trainer.epoch; ('arrays', 'layers.0.W', 'shape', 0) ->
    arrays['layers.0.W'].shape.0 (a key that is not a plain word is quoted)."""
    text = ""
    for part in loc:
        if isinstance(part, int) or (isinstance(part, str) and part.isidentifier()):
            text += f".{part}" if text else str(part)
        else:
            text += f"[{str(part)[:60]!r}]"
    return text or "(top level)"


_BOUNDS = {"greater_than_equal": ("ge", ">="), "greater_than": ("gt", ">"),
           "less_than_equal": ("le", "<="), "less_than": ("lt", "<")}
_KINDS = {"int_type": "must be a whole number", "float_type": "must be a number",
          "finite_number": "must be a finite number", "string_type": "must be text",
          "bool_type": "must be true or false", "list_type": "must be a list",
          "dict_type": "must be an object", "model_type": "must be an object",
          "model_attributes_type": "must be an object", "none_required": "must be null",
          "missing": "required key is missing", "extra_forbidden": "unknown key"}


def _message(error: dict) -> str:
    kind, ctx, given = error["type"], error.get("ctx") or {}, error.get("input")
    if kind in ("missing", "extra_forbidden"):
        return _KINDS[kind]
    if kind in _BOUNDS:
        key, sign = _BOUNDS[kind]
        return f"must be {sign} {ctx.get(key)} (got {_shown(given)})"
    if kind in ("too_long", "too_short"):
        word = "at most" if kind == "too_long" else "at least"
        bound = ctx.get("max_length", ctx.get("min_length"))
        return (f"must have {word} {bound} item{'s' * (bound != 1)} "
                f"(got {ctx.get('actual_length')})")
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')} (got {_shown(given)})"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx.get('pattern')} (got {_shown(given)})"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind == "union_tag_invalid":
        return f"unknown type {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        return "needs a 'type' key"
    message = _KINDS.get(kind) or error["msg"].replace("Input should be", "must be")
    return f"{message} (got {_shown(given)})"


def _shown(value: Any, width: int = 60) -> str:
    """A value as JSON, cut short; an integer too long to print is described instead."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    try:
        text = json.dumps(value, allow_nan=True, default=str)
    except (ValueError, TypeError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= width else text[:width - 3] + "..."


@lru_cache(maxsize=None)
def _schema():
    """The Pydantic model of a checkpoint description, built on first use (it needs
    Pydantic and the column encoders, which `import nnctl.checkpoint` should not load)."""
    import dataclasses
    from typing import Annotated, Literal, Union

    from pydantic import (
        AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictStr,
        create_model,
    )

    from .data.columns import COLUMN_TYPES, DATE_PARTS
    from .data.preprocessing import Preprocessing

    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    Whole = Annotated[int, Field(ge=0, le=MAX_WHOLE)]
    Positive = Annotated[int, Field(gt=0, le=MAX_WHOLE)]
    Number = Annotated[float, Field(allow_inf_nan=False)]
    NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
    Name = Annotated[str, Field(min_length=1, max_length=10_000)]
    Numbers = Annotated[list[Number], Field(max_length=MAX_ITEMS)]
    Row = Annotated[dict[Name, Number], Field(max_length=1000)]

    def label(value: Any) -> Any:
        ok = isinstance(value, (str, bool, int)) or (
            isinstance(value, float) and math.isfinite(value))
        if not ok:
            raise ValueError(f"a class label must be text, a number or true/false "
                             f"(got {_shown(value)})")
        return value

    def number_or_numbers(value: Any) -> Any:
        def finite(v):
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        if finite(value) or (isinstance(value, list) and len(value) <= MAX_ITEMS
                             and all(finite(v) for v in value)):
            return value
        raise ValueError(f"must be a finite number or a list of them (got {_shown(value)})")

    Label = Annotated[Any, AfterValidator(label)]
    Running = Annotated[Any, AfterValidator(number_or_numbers)]

    class ArrayEntry(Strict):
        shape: Annotated[list[Whole], Field(max_length=MAX_NDIM)]
        dtype: Literal[DTYPES]  # type: ignore[valid-type]
        sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]

    # Column encoders: one model per type, from the encoder's dataclass fields, so a field
    # added to an encoder is checked without a change here. Every whole number of an encoder
    # is a count or a width (>= 0); a few text fields have a fixed set of values.
    kinds = {"str": StrictStr, "float": Number, "int": Whole, "bool": StrictBool,
             "Optional[str]": Optional[StrictStr], "Optional[float]": Optional[Number],
             "Optional[int]": Optional[Whole], "list[str]": Annotated[list[StrictStr],
                                                                   Field(max_length=MAX_ITEMS)],
             "list[float]": Numbers}
    choices = {("numeric", "statistic"): Literal["median", "mean", "zero", "error"],
               ("categorical", "encoding"): Literal["one_hot", "embedding"],
               ("datetime", "parts"): Annotated[list[Literal[DATE_PARTS]],  # type: ignore
                                                Field(max_length=len(DATE_PARTS))]}
    columns = []
    for kind, cls in COLUMN_TYPES.items():
        fields: dict[str, Any] = {"type": (Literal[kind], ...)}
        for f in dataclasses.fields(cls):
            annotation = choices.get((kind, f.name)) or kinds.get(str(f.type), Any)
            if f.name == "name":
                annotation = Name
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                default = f.default_factory()  # type: ignore[misc]
            else:
                default = ...
            fields[f.name] = (annotation, default)
        columns.append(create_model(f"{kind.title()}Column", __base__=Strict, **fields))
    Column = Annotated[Union[tuple(columns)], Field(discriminator="type")]

    class PreprocessingSchema(Strict):
        task: Literal["classification", "binary", "regression"]
        features: Annotated[list[Name], Field(max_length=MAX_ITEMS)]
        targets: Annotated[list[Name], Field(min_length=1, max_length=MAX_ITEMS)]
        classes: Annotated[list[Label], Field(max_length=MAX_ITEMS)] = []
        scale: Literal["standard", "minmax", "none"] = "none"
        offset: Numbers = []
        spread: Annotated[list[Annotated[float, Field(gt=0, allow_inf_nan=False)]],
                          Field(max_length=MAX_ITEMS)] = []
        sequence: Optional[Annotated[list[Positive], Field(min_length=2, max_length=2)]] = None
        columns: Optional[Annotated[list[Column], Field(max_length=MAX_ITEMS)]] = None
        ignored: Annotated[dict[Name, StrictStr], Field(max_length=MAX_ITEMS)] = {}
        class_weights: Optional[Annotated[list[Annotated[float, Field(
            gt=0, allow_inf_nan=False)]], Field(max_length=MAX_ITEMS)]] = None
        target_scale: Optional[Annotated[list[Numbers], Field(min_length=2,
                                                              max_length=2)]] = None

    # A field added to Preprocessing later is accepted as any JSON value here and checked by
    # Preprocessing.from_dict (and the run's checks) when the checkpoint is used.
    known = set(PreprocessingSchema.model_fields)
    extra = {f.name: (Any, None) for f in dataclasses.fields(Preprocessing) if f.name not in known}
    if extra:
        PreprocessingSchema = create_model("PreprocessingSchema", __base__=PreprocessingSchema,
                                           **extra)

    class RunningSchema(Strict):
        loss_sum: Number
        batches: Whole
        values: Whole
        correct: Whole
        abs_err: Running
        sq_err: Running
        y_sum: Running
        y_sq_sum: Running

    class EarlyStoppingState(Strict):
        best: Optional[Number]
        best_epoch: Whole
        wait: Whole

    class ScheduleState(Strict):
        best: Optional[Number] = None
        bad_epochs: Optional[Whole] = None

    class TrainerState(Strict):
        epoch: Whole
        step: Whole
        batch: Whole
        lr: NonNegative
        epoch_seconds: NonNegative
        running: RunningSchema
        best_value: Optional[Number]
        best_epoch: Whole
        best_row: Optional[Row]
        last_row: Optional[Row]
        early_stopping: Optional[EarlyStoppingState]
        schedule: Optional[ScheduleState]

    class MetaSchema(Strict):
        """What a checkpoint's json may hold. The format's own fields (format, epoch, step,
        arrays) are required; a run's sections are checked when present, and the run
        requires them where it uses them."""

        format: Literal[FORMAT_VERSION]  # type: ignore[valid-type]
        epoch: Whole
        step: Whole
        batch: Whole = 0
        dtype: Optional[Literal["float32", "float64"]] = None
        preprocessing: Optional[PreprocessingSchema] = None
        metrics: Optional[Row] = None
        trainer: Optional[TrainerState] = None
        arrays: Annotated[dict[Annotated[str, Field(min_length=1, max_length=10_000)],
                               ArrayEntry], Field(max_length=MAX_ARRAYS)]

    return MetaSchema
