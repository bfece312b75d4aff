"""Test setup: one BLAS thread, and tests/ on sys.path so test modules can import helpers."""

import os
import sys
from pathlib import Path

# As the `nnctl` command does (cli.limit_blas_threads): one BLAS thread, set before numpy
# loads. Multithreaded BLAS on these small matrices is slower, and far slower on busy cores.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
