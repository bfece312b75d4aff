"""How many threads nnctl computes with, and how work is shared among them.

nnctl splits its own work: matrix products by rows (or by columns of the right operand) and
element-wise updates into chunks, each piece computed by single-threaded BLAS or NumPy (the
data layer hands `run` its column fits and scaling the same way). The
pieces of one product are fixed by its shape and the configured thread count alone, never by
how busy the machine is; whichever threads are free take them. So a run's results are the
same bits on an idle machine and a busy one, while a core taken by another process costs only
the share of work it would have done: the calling thread takes the pieces a delayed helper has
not started. (OpenBLAS's own threads split each product in equal halves: the half that waits
for a busy core sets the pace, 1.5x one thread's time, and 8x on an rnn's many small products.)

The count is every core this process may run on, as NumPy and PyTorch use, or `--threads`, or
a BLAS thread variable the user set; `nnctl sweep` divides the cores among its parallel trials,
as scikit-learn does for its jobs.
"""

from __future__ import annotations

import contextvars
import itertools
import math
import os
import queue
import sys
import threading
import time
from typing import Callable, Optional, Sequence

from . import denormals

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

# A product is split only when each piece keeps at least this many multiply-adds (33.5 M,
# about 0.4 ms of one core's BLAS). Measured on a 2-core machine (benchmarks/bench_threads.py
# and benchmarks/README.md): below it, two pieces on two threads took longer than the whole
# product on one (32 x 784 x 256: 0.74x; 128 x 784 x 256 split by columns: 0.78x; an rnn's
# 128 x 3456 x 128 weight gradient split by rows: 0.7x), the thread handoff and the second
# packing of the shared operand outweighing the second core; larger products (prediction's
# 1024-row batches) gained up to 1.2x.
MIN_PIECE_WORK = 1 << 25
# Products between this and MIN_PIECE_WORK per piece are split or kept whole as timing shows
# (see `Sharing`), and only where the pieces give the same bits as the whole product, so
# results never depend on the choice. The same 128 x 784 x 256 product of
# bench_mnist_like.py's batches took 0.61-0.81x the time in two pieces on a 2-core Intel VM,
# and 1.28x on a 2-core AMD VM: no fixed size suits both.
MIN_TIMED_WORK = 1 << 22
# Row pieces keep at least this many rows: OpenBLAS computes fewer than 8 rows with other
# kernels (and a single row with gemv), which would leave its speed behind.
MIN_ROWS = 8
# BLAS kernels compute a block of rows at a time, each element's sum in an order fixed by the
# kernel; a piece that starts inside a block hands its rows to another kernel, which sums in
# another order. OpenBLAS's Haswell sgemm keeps a product's bits only when its row pieces
# start at multiples of 12 (and no split by columns does); 16 and 24 are there for kernels
# with larger blocks. A middling product is split by the first unit that keeps its bits.
ROW_UNITS = (MIN_ROWS, 12, 16, 24)

_threads = 1
_reason = "not configured"
_configured = False
_user_setting: Optional[tuple[str, int]] = None  # the BLAS thread variable the user set
_numpy_first = False  # NumPy loaded before configure(): BLAS is held to one thread at run time
_team: Optional["Team"] = None
# middling products' Sharing, by the operands' layout; None: kept whole (see _timed_product)
_products: dict[tuple, Optional["Sharing"]] = {}


def usable_cores() -> int:
    """The number of cores this process may run on (its CPU affinity, e.g. under taskset or
    Slurm), which can be fewer than the machine has."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _environment_setting() -> Optional[tuple[str, int]]:
    """(variable, count) of the BLAS thread variable the user set, if any."""
    for var in THREAD_VARS:
        value = os.environ.get(var, "").strip()
        if value.isascii() and value.isdigit() and int(value) > 0:
            return var, int(value)
    return None


def configure(threads: Optional[int] = None) -> int:
    """Compute with `threads` threads; by default the count the user set in a BLAS thread
    variable, else every usable core. Returns the count.

    BLAS itself is held to one thread (nnctl hands it one piece at a time): through its
    variables when NumPy is not loaded yet, which is why the command line calls this before it
    imports anything heavy, else through threadpoolctl while nnctl computes.
    """
    global _threads, _team, _reason, _user_setting, _numpy_first, _configured
    if not _configured:  # read once: configure() itself sets the variables below
        _user_setting = _environment_setting()
    _configured = True
    setting = None if threads else _user_setting
    count = threads or (setting and setting[1]) or usable_cores()
    _reason = "--threads" if threads else setting[0] if setting else "every usable core"
    if "numpy" not in sys.modules:
        # nnctl splits the work itself; BLAS computes each piece on the thread that asks
        for var in THREAD_VARS:
            os.environ[var] = "1"
        os.environ.setdefault(*THREAD_TIMEOUT)
    else:
        _numpy_first = True
    if count != _threads:
        _products.clear()  # their pieces depend on the count
        if _team is not None:
            _team.stop()
            _team = None
    _threads = count
    return count


def configure_once() -> int:
    """The default count, unless configure() was called (nnctl used from Python)."""
    return _threads if _configured else configure()


def blas_needs_holding() -> bool:
    """Whether NumPy was loaded before configure() could hold BLAS to one thread through its
    variables (nnctl used from Python): the caller then holds it at run time."""
    return _numpy_first


def count() -> int:
    return _threads


def describe() -> str:
    """`2 (every usable core)`: the count and where it came from."""
    return f"{_threads} ({_reason})"


# ---- sharing work ---------------------------------------------------------------------------

class Job:
    """The pieces of one piece of work. The caller and the helpers take pieces in turn until
    none is left; the caller then waits only for pieces already taken."""

    def __init__(self, pieces: Sequence[Callable[[], None]]):
        self.pieces = pieces
        self.taken = itertools.count()  # next() is atomic under the GIL
        self.left = len(pieces)
        self.lock = threading.Lock()
        self.finished = threading.Event()
        self.error: Optional[BaseException] = None
        self.context = contextvars.copy_context()  # np.errstate and denormals.flushed()

    def work(self) -> None:
        while (i := next(self.taken)) < len(self.pieces):
            try:
                self.pieces[i]()
            except BaseException as exc:  # raised in the caller, by run()
                self.error = exc
            with self.lock:
                self.left -= 1
                if not self.left:
                    self.finished.set()


class Team:
    """`helpers` threads that wait for jobs and work on them beside the calling thread."""

    def __init__(self, helpers: int):
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.threads = [threading.Thread(target=self._serve, name=f"nnctl-{i + 1}", daemon=True)
                        for i in range(helpers)]
        for thread in self.threads:
            thread.start()

    def _serve(self) -> None:
        while (job := self.inbox.get()) is not None:
            job.context.copy().run(self._work_on, job)

    @staticmethod
    def _work_on(job: Job) -> None:
        """job.work(), run in a copy of the caller's context (np.errstate), with the caller's
        treatment of denormal numbers."""
        denormals.follow()
        job.work()

    def run(self, pieces: Sequence[Callable[[], None]]) -> None:
        job = Job(pieces)
        for _ in range(min(len(self.threads), len(pieces) - 1)):
            self.inbox.put(job)
        job.work()
        job.finished.wait()
        if job.error is not None:
            raise job.error

    def stop(self) -> None:
        for _ in self.threads:
            self.inbox.put(None)


def run(pieces: Sequence[Callable[[], None]]) -> None:
    """Call every piece once, on the calling thread and the team's helpers."""
    global _team
    if len(pieces) <= 1 or _threads == 1:
        for piece in pieces:
            piece()
        return
    if _team is None:
        _team = Team(_threads - 1)
    _team.run(pieces)


# ---- what is split, and how -------------------------------------------------------------------

def matmul(a, b, out=None):
    """`a @ b` for 2-D arrays (views and transposes included), its pieces shared among the
    threads (see `pieces_of`); a product of middling size is split or not as timing shows
    (see `MIN_TIMED_WORK`)."""
    out, pieces = pieces_of(a, b, out)
    if len(pieces) == 1 and a.shape[0] * a.shape[1] * b.shape[1] >= 2 * MIN_TIMED_WORK:
        _timed_product(a, b, out, pieces[0])
    else:
        run(pieces)
    return out


def _timed_product(a, b, out, whole: Callable[[], None]) -> None:
    """Compute `a @ b` into `out` whole or in pieces, whichever its Sharing finds faster, the
    pieces split as `_bit_exact_split` found for the operands' layout; a layout that no split
    computes to the same bits stays whole."""
    key = (a.shape, a.strides, a.dtype, b.shape, b.strides, b.dtype, out.strides)
    if key not in _products:
        if len(_products) >= 1024:  # layouts that came once (last batches) do not pile up
            _products.clear()
        split = _bit_exact_split(a, b, out)
        _products[key] = None if split is None else (split, Sharing())
    found = _products[key]
    if found is None:
        whole()
        return
    (by_rows, unit), sharing = found
    sharing.choose(whole, lambda: run(pieces_of(a, b, out, MIN_TIMED_WORK, by_rows, unit)[1]))


def _bit_exact_split(a, b, out) -> Optional[tuple[bool, int]]:
    """(by_rows, unit) of the first split of `a @ b` into pieces whose results are the whole
    product's bits (see `ROW_UNITS`), or None. Checked on random operands of the same shapes
    and memory orders, whose sums are inexact in every order: the operands themselves might be
    exact (small integers, zeros) in the first batch and not later."""
    import numpy as np

    rng = np.random.default_rng(0)

    def like(x):
        transposed = x.strides[0] < x.strides[1]  # BLAS is told to read it transposed
        fill = rng.standard_normal(x.shape[::-1] if transposed else x.shape).astype(x.dtype)
        return fill.T if transposed else fill

    a, b, out = like(a), like(b), like(out)
    np.matmul(a, b, out=out)
    whole = out.copy()
    for by_rows, unit in [(None, None)] + [(True, unit) for unit in ROW_UNITS]:
        _, pieces = pieces_of(a, b, out, MIN_TIMED_WORK, by_rows, unit)
        if len(pieces) > 1:
            for piece in pieces:
                piece()
            if np.array_equal(out, whole):
                return by_rows, unit  # (None, None): pieces_of's own choice
    return None


def pieces_of(a, b, out=None, min_work: int = MIN_PIECE_WORK, by_rows: Optional[bool] = None,
              unit: Optional[int] = None) -> tuple:
    """(out, pieces): `count()` pieces that together write `a @ b` into `out`, or one when the
    product is too small to share (pieces of under `min_work` multiply-adds). By default by
    rows of `a` when it has more rows than `b` has columns (each piece then reads all of `b`,
    the smaller operand), else by columns of `b`; each piece but the last a multiple of `unit`
    rows or columns. They depend only on the shapes, the count and these arguments, so the
    result is the same bits whoever computes them."""
    import numpy as np

    m, k = a.shape
    n = b.shape[1]
    if out is None:
        out = np.empty((m, n), dtype=np.result_type(a, b))
    if by_rows is None:
        by_rows = m >= n
    size = m if by_rows else n
    unit = unit or (MIN_ROWS if by_rows else ALIGN)
    parts = min(_threads, m * n * k // min_work, size // unit)
    if parts <= 1:
        return out, [lambda: np.matmul(a, b, out=out)]
    step = math.ceil(size / parts / unit) * unit
    if by_rows:
        return out, [lambda lo=lo: np.matmul(a[lo:lo + step], b, out=out[lo:lo + step])
                     for lo in range(0, size, step)]
    return out, [lambda lo=lo: np.matmul(a, b[:, lo:lo + step], out=out[:, lo:lo + step])
                 for lo in range(0, size, step)]


def elementwise(func: Callable[..., None], arrays: Sequence, share: bool = True) -> None:
    """Call `func` on the 1-D `arrays` (all of one length), split into consecutive chunks that
    are handled by up to `count()` threads at once (by the calling thread alone unless
    `share`).

    Only for element-wise work, where each element's result depends on that element alone:
    the result is then bit-for-bit the same however the arrays are split. Helper threads run
    in a copy of the caller's context, so `np.errstate` carries over, and with its treatment of
    denormal numbers (see denormals.py).
    """
    size = len(arrays[0])
    parts = min(_threads, size // MIN_CHUNK) if share else 1
    if parts <= 1:
        _in_blocks(func, arrays, 0, size)
        return
    step = math.ceil(size / parts / ALIGN) * ALIGN
    run([lambda lo=lo: _in_blocks(func, arrays, lo, min(lo + step, size))
         for lo in range(0, size, step)])


class Sharing:
    """Whether the threads share a piece of work that comes again and again (the optimizer's
    update, every step; a product of one shape) or the calling thread does it alone, chosen by
    timing both: TRIALS calls of each in turn, compared by their total time without the
    slowest call of each, and again every RETRY calls, as the machine's load changes. A one-off
    delay then does not decide, but a helper that is often late does (its core busy with
    another process, which preempts it in the middle of a piece the caller must wait for); the
    fastest call of each would hide that. Both ways must give the same bits, so only the time
    depends on the choice. Sharing Adam's update paid on a 2-core AMD VM (0.27 ms a step of
    bench_mnist_like.py's model against 0.54 ms alone); on a 2-core Intel VM, where waking an
    idle core takes about 75 us, it took 0.95 ms a step shared against 0.70 ms alone."""

    TRIALS = 6
    RETRY = 1000

    def __init__(self):
        self.calls = 0
        self.seconds: dict[bool, list[float]] = {False: [], True: []}  # of each trial call
        self.share = True

    def __call__(self, func: Callable[..., None], arrays: Sequence) -> None:
        """`elementwise(func, arrays)`, shared or not."""
        if _threads == 1 or len(arrays[0]) < 2 * MIN_CHUNK:
            elementwise(func, arrays)
            return
        self.choose(lambda: elementwise(func, arrays, share=False),
                    lambda: elementwise(func, arrays, share=True))

    def choose(self, alone: Callable[[], None], shared: Callable[[], None]) -> None:
        """Call `alone` or `shared`: a trial's turn, or the faster of the last trials."""
        trial = self.calls % self.RETRY
        self.calls += 1
        if trial >= 2 * self.TRIALS:
            (shared if self.share else alone)()
            return
        share = trial % 2 == 1
        started = time.perf_counter()
        (shared if share else alone)()
        self.seconds[share].append(time.perf_counter() - started)
        if trial == 2 * self.TRIALS - 1:
            shared, alone = (sum(s) - max(s) for s in (self.seconds[True], self.seconds[False]))
            self.share = shared < alone
            self.seconds = {False: [], True: []}


def _in_blocks(func: Callable[..., None], arrays: Sequence, lo: int, hi: int) -> None:
    """func on elements [lo, hi) of the arrays, BLOCK elements at a time."""
    for start in range(lo, hi, BLOCK):
        stop = min(start + BLOCK, hi)
        func(*(a[start:stop] for a in arrays))
