"""Test setup: one thread per process, and tests/ on sys.path so test modules can import
helpers."""

import os
import sys
from pathlib import Path

# Tests run many nnctl processes side by side, so each computes with one thread (see
# nnctl.nn.threads), set before numpy loads; the subprocesses inherit it.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
