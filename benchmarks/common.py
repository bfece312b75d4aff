"""What the benchmark scripts share: running nnctl as a user would (a subprocess, timed with
its peak memory), the machine's description, and the table cells."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

# Runs a command and reports its wall time and peak RSS. A small process of its own does the
# waiting: the child's maxrss then starts from this helper's few MB, not from the size of the
# benchmark process (Linux carries the parent's high-water mark across fork + exec).
TIMER = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.call(sys.argv[2:])
wall = time.perf_counter() - started
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open(sys.argv[1], "w") as f:
    json.dump({"code": code, "wall": wall, "peak_mb": peak_kb / 1024}, f)
"""


def nnctl_command() -> list[str]:
    found = shutil.which("nnctl")
    return [found] if found else [sys.executable, "-m", "nnctl.cli"]


def child_env() -> dict:
    """The environment for the children, without thread variables: --threads (or each
    library) decides."""
    from nnctl.nn.threads import THREAD_VARS

    return {k: v for k, v in os.environ.items() if k not in THREAD_VARS}


def timed(command: list[str], workdir: Path) -> dict:
    """Run `command`; return its exit code, wall time (s), peak RSS (MB), stdout and stderr."""
    report = workdir / "timer.json"
    out, err = workdir / "stdout.txt", workdir / "stderr.txt"
    with open(out, "wb") as o, open(err, "wb") as e:
        subprocess.run([sys.executable, "-c", TIMER, str(report), *command],
                       env=child_env(), stdout=o, stderr=e, check=False)
    result = json.loads(report.read_text())
    result["stdout"], result["stderr"] = out.read_text(), err.read_text()
    return result


def machine() -> str:
    """CPU, cores, and the versions of everything measured."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    parts = [f"{cpu}, {os.cpu_count()} cores", f"Python {platform.python_version()}",
             f"numpy {np.__version__}"]
    try:
        from threadpoolctl import threadpool_info
        blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        if blas:
            parts[-1] += f" ({blas[0]['internal_api']} {blas[0]['version']}, " \
                         f"{blas[0].get('architecture')} kernels)"
    except ImportError:
        pass
    import nnctl
    parts.append(f"nnctl from {Path(nnctl.__file__).parent}")
    for module in ("pandas", "sklearn", "torch"):
        try:
            parts.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            parts.append(f"{module} not installed")
    return "; ".join(parts)


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "-"
