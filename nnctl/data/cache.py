"""A folder of parsed CSV files, so that the trials of a sweep (separate processes, all reading
the same training file) parse it once between them instead of once each. Used only when the
caller names a folder.

An entry is keyed by the file's content (sha256 of its bytes) and everything else that shapes
the parse: the reader's settings (text columns, pandas options), this module's FORMAT and the
pandas version. A file changed in place therefore misses and gets an entry of its own. The
digest of a file is remembered beside its times, so it is computed again only when they change.

An entry is a directory holding one .npy per NumPy dtype of the numeric columns (a 2-D block,
each column contiguous, memory-mapped when read: a hit on numbers costs little more than the
hash), the text columns as UTF-8 bytes with their end offsets and a blank mask, and meta.json
(columns in order, their dtypes, the index and the key's inputs). Nothing is pickled. An entry
is written elsewhere in the folder and renamed into place whole; one that cannot be read is a
miss and is written again. A frame the format cannot hold exactly is not stored."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

FORMAT = 1
META = "meta.json"
TEXT_FILES = ("text-bytes.npy", "text-ends.npy", "text-blank.npy")
KEEP = 3            # newest entries kept per source file; older ones are its former contents
STALE_SECONDS = 86400  # a temporary directory this old was left by a process that died
RACY_SECONDS = 2    # a digest is remembered only for a file unchanged this long before its hash
                    # began (a margin for coarse file-system clocks and NFS servers' skew)


def cached_read(folder: str | os.PathLike, path: Path, settings: dict,
                parse: Callable[[], Any]):
    """parse()'s frame for the file at `path`, from the cache `folder` when an entry exists
    for the file's content and `settings` (JSON-able: all that shapes the parse besides the
    bytes); otherwise parse() is called and its frame stored and returned. Errors are
    parse()'s own: problems with the cache folder only make it a miss."""
    import pandas as pd

    folder = Path(folder)
    try:
        before = _identity(path)
        inputs = {"format": FORMAT, "pandas": pd.__version__,
                  "sha256": _content_digest(folder, path, before), **settings}
    except OSError:
        return parse()  # unreadable: parse() names the problem
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
    entry = folder / key
    frame = load(entry, inputs)
    if frame is not None:
        return frame
    # Trials that start together all miss: one parses while the others wait for its entry,
    # so a sweep parses each file once, not once per trial starting at that moment.
    with _parsing(folder, key):
        frame = load(entry, inputs)
        if frame is not None:
            return frame
        damaged = entry.exists()
        frame = parse()
        try:
            # a file changed while it was read is stored under neither content
            if _identity(path) == before:
                store(folder, key, inputs, frame, str(path.resolve()), replace=damaged)
        except OSError:
            pass  # a full disk or a read-only folder: the frame is right, only not kept
    return frame


@contextmanager
def _parsing(folder: Path, key: str):
    """An exclusive lock on one key while its file is parsed and stored (fcntl.lockf, released
    if the process dies); without a lock file (a read-only folder), no waiting."""
    import fcntl

    try:
        folder.mkdir(parents=True, exist_ok=True)
        f = open(folder / f".{key}.lock", "a+b")
    except OSError:
        yield
        return
    with f:
        fcntl.lockf(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(f, fcntl.LOCK_UN)


def load(entry: Path, inputs: Optional[dict] = None):
    """The frame stored in `entry`, or None if there is none, or it is damaged, or it was
    made from other inputs. Numeric columns are copy-on-write memory maps of the files: writing
    to the frame does not change the entry."""
    import pandas as pd

    try:
        meta = json.loads((entry / META).read_text(encoding="utf-8"))
        if inputs is not None and meta["key"] != inputs:
            return None
        rows, index = meta["rows"], pd.RangeIndex(*meta["index"])
        names = [name for name, _ in meta["columns"]]
        text = [(name, kind) for name, kind in meta["columns"] if kind in TEXT_KINDS]
        groups: dict[str, list[str]] = {}  # the columns of each numeric .npy, in file order
        for name, kind in meta["columns"]:
            if kind not in TEXT_KINDS:
                groups.setdefault(kind, []).append(name)
        if len(index) != rows or len(set(names)) != len(names):
            return None
        parts = []
        for kind, group in groups.items():
            block = np.load(entry / f"{kind}.npy", mmap_mode="c", allow_pickle=False)
            if block.dtype != np.dtype(kind) or block.shape != (rows, len(group)) \
                    or not block.flags.f_contiguous:
                return None
            parts.append(pd.DataFrame(block, index=index, columns=group, copy=False))
        if text:
            parts.append(_load_text(entry, text, rows, index))
        # concat and the reordering share the blocks' memory (pandas' copy-on-write)
        return pd.concat(parts, axis=1)[names]
    except Exception:  # whatever is wrong with an entry, reading the file again puts it right
        return None


def store(folder: Path, key: str, inputs: dict, frame, source: str,
          replace: bool = False) -> bool:
    """Write `frame` as the entry `key` of `folder`; False if the format cannot hold it
    exactly. An entry already in place is kept (stored meanwhile by another process, it holds
    the same frame) unless `replace` (the caller found it damaged)."""
    kinds = _kinds(frame)
    if kinds is None:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    temp = folder / f".tmp-{os.getpid()}-{secrets.token_hex(8)}"
    temp.mkdir()  # with the umask's permissions (mkdtemp's are the owner's only)
    try:
        for kind in dict.fromkeys(kinds):
            group = [name for name, k in zip(frame.columns, kinds) if k == kind]
            if kind not in TEXT_KINDS:
                _write_block(temp / f"{kind}.npy", frame, group, np.dtype(kind))
        _write_text(temp, frame, [name for name, k in zip(frame.columns, kinds)
                                  if k in TEXT_KINDS])
        index = frame.index
        meta = {"key": inputs, "source": source, "rows": len(frame),
                "index": [index.start, index.stop, index.step],
                "columns": [[name, kind] for name, kind in zip(frame.columns, kinds)]}
        (temp / META).write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        entry = folder / key
        if replace:
            _discard(entry)
        try:
            os.rename(temp, entry)
        except OSError:
            if not entry.exists():
                raise
            return True  # another process was first; its entry holds the same frame
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    _prune(folder, source, key)
    return True


# ---- columns --------------------------------------------------------------------------------

# Text dtypes by name in meta.json. pandas 3 reads text as "str" (NaN for blanks); a column of
# True/False with blanks comes back as object holding bools, kept as the texts "True"/"False".
TEXT_KINDS = ("str/python", "str/pyarrow", "object/str", "object/bool")


def _kinds(frame) -> Optional[list[str]]:
    """Each column's kind (a NumPy dtype's name, or one of TEXT_KINDS), or None if the
    frame holds anything that would not come back the same."""
    import pandas as pd

    names = list(frame.columns)
    if (type(frame) is not pd.DataFrame or frame.attrs or frame.columns.name is not None
            or not all(type(name) is str for name in names) or len(set(names)) != len(names)
            or frame.columns.dtype != pd.Index(names).dtype
            or type(frame.index) is not pd.RangeIndex or frame.index.name is not None):
        return None
    kinds = []
    for name, dtype in frame.dtypes.items():
        if isinstance(dtype, np.dtype) and dtype.kind in "biuf" and dtype.isnative:
            kinds.append(dtype.name)
        elif isinstance(dtype, pd.StringDtype) and dtype.na_value is np.nan:
            kinds.append(f"str/{dtype.storage}")
        elif dtype == object:
            values = frame[name].to_numpy()
            blank = frame[name].isna().to_numpy()
            if not all(type(v) is float for v in values[blank]):
                return None  # None, pd.NA, NaT: blanks other than NaN
            present = {type(v) for v in values[~blank]}
            if not present <= {str} and not present <= {bool}:
                return None
            kinds.append("object/bool" if present == {bool} else "object/str")
        else:
            return None
    return kinds


def _write_block(file: Path, frame, names: list[str], dtype: np.dtype) -> None:
    """The columns as one (rows, columns) array in Fortran order, written a column at a time
    (no second copy of the data in memory, and a full disk is an OSError, not a crash)."""
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": True,
              "shape": (len(frame), len(names))}
    with open(file, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for name in names:
            f.write(np.ascontiguousarray(frame[name].to_numpy(), dtype=dtype).data)


def _write_text(folder: Path, frame, names: list[str]) -> None:
    if not names:
        return
    encoded, blank = [], []
    for name in names:
        gaps = frame[name].isna().to_numpy()
        values = frame[name].to_numpy(dtype=object)
        encoded += [b"" if gap else str(value).encode() for value, gap in zip(values, gaps)]
        blank.append(gaps)
    ends = np.cumsum(np.fromiter(map(len, encoded), np.int64, len(encoded)))
    data = np.frombuffer(b"".join(encoded), np.uint8)
    for file, array in zip(TEXT_FILES, (data, ends.reshape(len(names), -1), np.array(blank))):
        np.save(folder / file, array, allow_pickle=False)


def _load_text(entry: Path, columns: list[tuple[str, str]], rows: int, index):
    import pandas as pd

    data, ends, blank = (np.load(entry / file, allow_pickle=False) for file in TEXT_FILES)
    if ends.shape != (len(columns), rows) or blank.shape != ends.shape \
            or blank.dtype != bool or data.dtype != np.uint8:
        raise ValueError("the text files do not match meta.json")
    flat = ends.reshape(-1)
    starts = np.concatenate([[0], flat[:-1]])
    if (flat.size and flat[-1] != data.size) or (starts > flat).any():
        raise ValueError("the text offsets do not match the bytes")
    text, starts = data.tobytes(), starts.reshape(ends.shape)
    series = {}
    for j, (name, kind) in enumerate(columns):
        values = np.array([text[a:b].decode() for a, b in zip(starts[j].tolist(),
                                                              ends[j].tolist())], dtype=object)
        if kind == "object/bool":
            values = (values == "True").astype(object)
        values[blank[j]] = np.nan
        if kind.startswith("str/"):
            dtype = pd.StringDtype(kind.split("/")[1], na_value=np.nan)
        else:
            dtype = object
        series[name] = pd.Series(values, index=index, dtype=dtype, copy=False)
    return pd.DataFrame(series, index=index, copy=False)


# ---- files ----------------------------------------------------------------------------------

def _content_digest(folder: Path, path: Path, identity: tuple) -> str:
    """The sha256 of the file's bytes. Hashing a large file costs as much as a third of
    parsing it (0.45 s for 282 MB), so the digest is remembered in the folder beside the
    file's identity, and the next process that finds the file unchanged (the same inode, size,
    mtime and ctime; any write changes the ctime, which `touch` cannot set back) takes it from
    there, as make and git trust a file's times. A file that changed less than RACY_SECONDS
    before its hash began is hashed again next time: a second write within the same clock
    tick would leave its times as they were (git's "racy" files)."""
    memo = folder / f".digest-{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:32]}"
    try:
        known = json.loads(memo.read_text(encoding="utf-8"))
        if known["identity"] == list(identity):
            return known["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    began = time.time_ns()
    digest = _sha256(path)
    changed_ns = max(identity[-2:])  # mtime and ctime
    if _identity(path) == identity and changed_ns < began - RACY_SECONDS * 10**9:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            temp = memo.with_name(f".tmp-{os.getpid()}-{secrets.token_hex(8)}")
            temp.write_text(json.dumps({"identity": list(identity), "sha256": digest}),
                            encoding="utf-8")
            os.replace(temp, memo)
        except OSError:
            pass  # a read-only folder: hashed again next time
    return digest


def _sha256(path: Path) -> str:
    digest, buffer = hashlib.sha256(), bytearray(1 << 22)
    view = memoryview(buffer)
    with open(path, "rb") as f:
        while n := f.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()


def _identity(path: Path) -> tuple:
    """What changes when the file does (checked before the hash and after the parse)."""
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


def _discard(entry: Path) -> None:
    """Remove an entry: renamed out of the way first, so no reader finds it half deleted.
    Processes that have its files mapped keep reading them."""
    gone = entry.parent / f".tmp-{os.getpid()}-{secrets.token_hex(8)}"
    try:
        os.rename(entry, gone)
    except OSError:
        return  # removed meanwhile by another process
    shutil.rmtree(gone, ignore_errors=True)


def _prune(folder: Path, source: str, key: str) -> None:
    """Keep the KEEP newest entries made from `source` (older ones hold its former contents;
    `key`, just stored, is kept whatever the clock says), and remove temporary directories left
    by processes that died while writing."""
    mine = []
    for entry in folder.iterdir():
        try:
            if entry.name == key:
                continue
            if entry.name.startswith(".tmp-"):
                if time.time() - entry.stat().st_mtime > STALE_SECONDS:
                    if entry.is_dir():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink()  # a digest's (see _content_digest)
                continue
            meta = json.loads((entry / META).read_text(encoding="utf-8"))
            if meta.get("source") == source:
                mine.append(((entry / META).stat().st_mtime, entry))
        except (OSError, ValueError, AttributeError):
            continue
    for _, entry in sorted(mine, reverse=True)[KEEP - 1:]:
        _discard(entry)
