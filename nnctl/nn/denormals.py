"""Denormal numbers flushed to zero while nnctl computes.

Floats below the smallest normal number (1.2e-38 in float32) are computed by a slow path on
Intel cores, about a hundred cycles an operation instead of a fraction of one. Training makes
them: Adam's averages decay by 0.9 a step toward a gradient that stays zero (the weights of a
relu unit that no longer fires, embedding rows and one-hot columns of categories not in the
batch) and spend some hundred steps in that range. On a 100,000-row table with three
embeddings, 8% of Adam's state was denormal and its update took 1.8 times as long as with
denormals flushed; an MLP on random labels saw its update slow fourfold within three epochs.
TensorFlow flushes them in its CPU kernels for the same reason; PyTorch has
`torch.set_flush_denormal`.

x86-64 keeps two switches in each thread's MXCSR register: flush-to-zero (a result below the
normal range is 0) and denormals-are-zero (such an input is read as 0). C's fegetenv/fesetenv
read and write it; a new thread starts with its creator's. `flushed()` sets both on the calling
thread for a block and restores them after, so a program that uses nnctl keeps its own
arithmetic; the threads that share nnctl's work take the caller's setting with each job
(`follow`). On other platforms (ARM, whose cores mostly compute denormals at full speed;
Windows) nothing changes.
"""

from __future__ import annotations

import contextvars
import ctypes
import functools
import os
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

FLUSH_BITS = 0x8040  # MXCSR bit 15, flush-to-zero, and bit 6, denormals-are-zero
EXCEPTION_MASKS = 0x1F80  # set in every Python process: floating-point traps stay off

# fenv_t as the C libraries lay it out on x86-64: glibc's and musl's start with the 28 bytes
# of the x87 environment, macOS's with two 16-bit words; MXCSR follows.
_MXCSR_OFFSET = {"linux": 28, "darwin": 4}

_flushing = contextvars.ContextVar("nnctl_flushing", default=False)
_thread = threading.local()  # the setting this thread last took from a job


class _Fenv(ctypes.Structure):
    _fields_ = [("raw", ctypes.c_uint8 * 64)]  # larger than any fenv_t; fields by offset


@functools.cache
def _access():
    """(the C library, MXCSR's offset in fenv_t), or None where the switches cannot be set."""
    offset = _MXCSR_OFFSET.get(sys.platform)
    if offset is None or os.uname().machine not in ("x86_64", "amd64"):
        return None
    try:
        libc = ctypes.CDLL(None)  # the C library Python itself runs on, with libm's fenv
        env = _Fenv()
        if libc.fegetenv(ctypes.byref(env)) != 0:
            return None
    except (OSError, AttributeError):
        return None
    mxcsr = int.from_bytes(bytes(env.raw[offset:offset + 4]), sys.byteorder)
    if mxcsr & EXCEPTION_MASKS != EXCEPTION_MASKS or mxcsr >> 16:
        return None  # not the layout expected: leave the environment alone
    return libc, offset


def supported() -> bool:
    """Whether denormals can be flushed here (x86-64 Linux or macOS)."""
    return _access() is not None


def _switch(bits: int) -> int:
    """Set this thread's two switches to `bits` (of FLUSH_BITS); return what they were."""
    libc, offset = _access()
    env = _Fenv()
    libc.fegetenv(ctypes.byref(env))
    mxcsr = int.from_bytes(bytes(env.raw[offset:offset + 4]), sys.byteorder)
    env.raw[offset:offset + 4] = list(((mxcsr & ~FLUSH_BITS) | bits).to_bytes(4, sys.byteorder))
    libc.fesetenv(ctypes.byref(env))
    return mxcsr & FLUSH_BITS


@contextmanager
def flushed() -> Iterator[None]:
    """Denormals flushed to zero on this thread, and on nnctl's threads for the jobs it hands
    them, until the block ends; the thread's own setting is restored after."""
    if _access() is None:
        yield
        return
    token = _flushing.set(True)
    before = _switch(FLUSH_BITS)
    try:
        yield
    finally:
        _switch(before)
        _flushing.reset(token)


def follow() -> None:
    """Take the setting of the context this runs in: a helper thread calls it in a copy of
    the caller's context before the caller's job."""
    want = _flushing.get()
    if getattr(_thread, "flushing", None) is not want:
        if _access() is not None:
            _switch(FLUSH_BITS if want else 0)
        _thread.flushing = want
