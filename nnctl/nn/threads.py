"""How many threads nnctl computes with, and element-wise work split across them.

Matrix products run on BLAS threads, whose number OpenBLAS reads once, when NumPy loads.
Element-wise array operations run on the calling thread only; the largest of them, an
optimizer's update (a dozen passes over every parameter), is split here across the same number
of threads, which overlap because NumPy releases the GIL inside its loops.

The default is every core this process may run on, as NumPy and PyTorch do; `nnctl sweep`
divides the cores among its parallel trials, as scikit-learn does for its jobs.
"""

from __future__ import annotations

import contextvars
import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional, Sequence

THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# OpenBLAS's idle threads spin for 2**this many cycles before they sleep; by default (2**28)
# they would spin through every optimizer update, on the core its second half needs. 2**4 is
# OpenBLAS's minimum: they sleep at once, and waking them costs less than what they took.
THREAD_TIMEOUT = ("OPENBLAS_THREAD_TIMEOUT", "4")
# Below this many elements per thread, handing work to another thread (tens of microseconds)
# costs more than it saves.
MIN_CHUNK = 1 << 15
# Chunk lengths are multiples of 16 elements (64 bytes of float32, a cache line), so two
# threads do not write to one line.
ALIGN = 16
# Each thread works through its chunk this many elements at a time, so that every pass of an
# update (Adam makes about ten) finds the block's arrays still in cache: 64 Ki float32
# elements are 256 KiB per array, and Adam's five arrays fit in a core's L2.
BLOCK = 1 << 16

_threads = 1
_reason = "BLAS's own default: the Python API sets none"
_pool: Optional[ThreadPoolExecutor] = None


def usable_cores() -> int:
    """The number of cores this process may run on (its CPU affinity, e.g. under taskset or
    Slurm), which can be fewer than the machine has."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def from_environment() -> Optional[int]:
    """The thread count the user set in a BLAS thread variable, if any."""
    found = _environment_setting()
    return found[1] if found else None


def _environment_setting() -> Optional[tuple[str, int]]:
    for var in THREAD_VARS:
        value = os.environ.get(var, "").strip()
        if value.isascii() and value.isdigit() and int(value) > 0:
            return var, int(value)
    return None


def configure(threads: Optional[int] = None) -> int:
    """Compute with `threads` threads; by default the count the user set in a BLAS thread
    variable, else every usable core. Returns the count.

    BLAS follows only when NumPy is not loaded yet, so the command line calls this before it
    imports anything heavy; the element-wise updates follow in any case.
    """
    global _threads, _pool, _reason
    setting = None if threads else _environment_setting()
    count = threads or (setting and setting[1]) or usable_cores()
    _reason = ("--threads" if threads else f"{setting[0]}" if setting else "every usable core")
    if "numpy" not in sys.modules:
        for var in THREAD_VARS:
            os.environ[var] = str(count)
        os.environ.setdefault(*THREAD_TIMEOUT)
    if count != _threads and _pool is not None:
        _pool.shutdown()
        _pool = None
    _threads = count
    return count


def count() -> int:
    return _threads


def describe() -> str:
    """`2 (every usable core)`: the count and where it came from."""
    return f"{_threads} ({_reason})"


def elementwise(func: Callable[..., None], arrays: Sequence) -> None:
    """Call `func` on the 1-D `arrays` (all of one length), split into consecutive chunks that
    are handled by up to `count()` threads at once.

    Only for element-wise work, where each element's result depends on that element alone:
    the result is then bit-for-bit the same however the arrays are split. Worker threads run
    in a copy of the caller's context, so `np.errstate` carries over.
    """
    global _pool
    size = len(arrays[0])
    parts = min(_threads, size // MIN_CHUNK)
    if parts <= 1:
        _in_blocks(func, arrays, 0, size)
        return
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=_threads - 1, thread_name_prefix="nnctl")
    step = math.ceil(size / parts / ALIGN) * ALIGN
    bounds = [(start, min(start + step, size)) for start in range(0, size, step)]
    futures = [_pool.submit(contextvars.copy_context().run, _in_blocks, func, arrays, lo, hi)
               for lo, hi in bounds[1:]]
    _in_blocks(func, arrays, *bounds[0])
    for future in futures:
        future.result()


def _in_blocks(func: Callable[..., None], arrays: Sequence, lo: int, hi: int) -> None:
    """func on elements [lo, hi) of the arrays, BLOCK elements at a time."""
    for start in range(lo, hi, BLOCK):
        stop = min(start + BLOCK, hi)
        func(*(a[start:stop] for a in arrays))
