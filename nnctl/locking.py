"""One process at a time in a run directory.

`nnctl train` holds a lock on its new run directory, and `nnctl train --resume` on the run it
continues, from before either writes anything until training ends, so a second resume of the
same run (or a resume of a run that is still training) is refused instead of training it twice
into one train.log. The lock is an advisory POSIX record lock (fcntl.lockf, which NFS carries
between machines) on the file `.lock` inside the run directory, taken without waiting; the
operating system releases it when the process ends, however it ends (kill -9 included). The
holder writes its process id into the file, for the message of the process that is refused.

The file stays in the run directory (removing it would let two processes lock two different
files of that name); it is hidden, and nothing that lists a run's files looks at it.

POSIX record locks belong to the process: any file descriptor of `.lock` that the holding
process closes releases it. Nothing in nnctl opens the file but this module.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Optional

from .errors import UserError

LOCK_FILE = ".lock"
PID_BYTES = 64  # read from a lock file for the message; a pid is a few digits


class RunInUse(UserError):
    """The run directory is locked by another process."""


class RunLock:
    """The lock on one run directory, held until `release()` (or the end of a `with` block,
    or of the process)."""

    def __init__(self, run_dir: Path, fd: int):
        self.run_dir = run_dir
        self._fd: Optional[int] = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the descriptor releases the lock

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            self.release()
        except OSError:
            pass


def lock_run(run_dir: Path) -> RunLock:
    """Take the lock of a run directory without waiting. Raises RunInUse (a UserError,
    exit code 2) naming the process that holds it, or UserError if the lock file cannot be
    made (a read-only disk): nothing in the run is changed then."""
    import fcntl

    run_dir = Path(run_dir)
    path = run_dir / LOCK_FILE
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        raise UserError(f"{run_dir}: cannot lock the run directory: {path.name}: "
                        f"{exc.strerror or exc}") from None
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                holder = _holder(fd)
                raise RunInUse(f"{run_dir}: in use by another nnctl process"
                               + (f" (pid {holder})" if holder else "")
                               + "; wait for it to finish, or stop it first") from None
            raise UserError(f"{run_dir}: cannot lock the run directory: {path.name}: "
                            f"{exc.strerror or exc}") from None
        _write_pid(fd)
    except BaseException:
        os.close(fd)
        raise
    return RunLock(run_dir, fd)


def _holder(fd: int) -> Optional[int]:
    """The process id the holder wrote into the lock file, if it reads as one."""
    try:
        text = os.pread(fd, PID_BYTES, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() and len(text) <= 10 else None


def _write_pid(fd: int) -> None:
    """Replace the file's content by this process's id. A failure here (a full disk) only
    costs the other process's message its pid, so it is not an error."""
    data = f"{os.getpid()}\n".encode("ascii")
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    except OSError:
        pass
