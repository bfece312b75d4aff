"""Reading files nnctl did not write itself (configs, CSVs, run-directory files) without trusting
them: each must be a regular file, opened without blocking on a FIFO or reading a device, and
small files (json and YAML sidecars) are read only up to a bound, so a symlink to /dev/zero or
a huge file is an error naming it, not a hang or an exhausted memory."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import UserError

SIDECAR_LIMIT = 8 * 1024 * 1024  # bytes: configs, summaries, checkpoint descriptions


def open_regular(path: str | os.PathLike, error: type[UserError] = UserError):
    """A binary file object for `path`, which must be a regular file (a symlink to one is
    fine): a FIFO, a device or a folder is refused before it is opened, and again after (with
    O_NONBLOCK, so a FIFO swapped in meanwhile cannot block the open)."""
    path = Path(path)
    try:  # not even opened unless regular: opening some devices has effects (a tape rewinds)
        _refuse_special(path, os.stat(path).st_mode, error)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, not a file") from None
    except OSError as exc:
        raise error(f"{path}: cannot open ({exc.strerror or exc})") from None
    try:  # and checked again once open: the path may have changed in between
        _refuse_special(path, os.fstat(fd).st_mode, error)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _refuse_special(path: Path, mode: int, error: type[UserError]) -> None:
    if not stat.S_ISREG(mode):
        kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
        raise error(f"{path}: is {kind}, not a regular file")


def read_bytes(path: str | os.PathLike, limit: int = SIDECAR_LIMIT,
               error: type[UserError] = UserError) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; larger is an error."""
    with open_regular(path, error) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise error(f"{path}: larger than {limit // (1024 * 1024)} MB; not a file nnctl wrote")
    return data


def read_text(path: str | os.PathLike, limit: int = SIDECAR_LIMIT,
              error: type[UserError] = UserError) -> str:
    data = read_bytes(path, limit, error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start})") from None
