"""The parsed-CSV cache (nnctl/data/cache.py) on an MNIST-sized file, as a sweep's trials meet
it: each read in a fresh process.

    python benchmarks/bench_cache.py            # 60,000 x 785 CSV (about a minute)
    python benchmarks/bench_cache.py --rows 6000

It writes the CSV of bench_mnist_like.py (label + 784 floats with three decimals) into the
temporary folder once, then times, medians of --repeats runs:

- `read_csv(path)`: the parse every trial pays without a cache;
- `read_csv(path, cache=EMPTY)`: a cold cache, parse + hash + storing the entry;
- `read_csv(path, cache=FILLED)`: a warm cache, hash + memory-mapping the entry;

each alone and followed by `frame.to_numpy(np.float32)` (touching every value, as training
does), with the process's peak RSS. Everything is in the page cache (the CSV, and the entry
once written): these are the times of trials on one machine, not of a cold disk.
Prints; asserts nothing. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from common import machine, timed

CHILD = """
import json, sys, time
import numpy as np
import pandas  # imported before the clock starts: its import is not the cache's to measure
from nnctl.data.reading import read_csv
csv, cache = sys.argv[1], sys.argv[2] or None
started = time.perf_counter()
frame = read_csv(csv, cache=cache)
read = time.perf_counter() - started
frame.to_numpy(np.float32)
print(json.dumps({"read": read, "used": time.perf_counter() - started}))
"""


def run(csv: Path, cache: Path | None, workdir: Path) -> dict:
    result = timed([sys.executable, "-c", CHILD, str(csv), str(cache or "")], workdir)
    if result["code"] != 0:
        raise SystemExit(result["stderr"])
    return {**json.loads(result["stdout"]), "peak_mb": result["peak_mb"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    from bench_mnist_like import ensure_csv

    csv = ensure_csv(args.rows)  # the MNIST-like benchmark's file, made once and kept
    print(machine())
    print(f"{csv}: {csv.stat().st_size / 1e6:.0f} MB")
    with tempfile.TemporaryDirectory(prefix="nnctl-bench-cache-") as work:
        work = Path(work)
        cache = work / "cache"
        results: dict[str, list[dict]] = {"no cache": [], "cold cache": [], "warm cache": []}
        for _ in range(args.repeats):
            results["no cache"].append(run(csv, None, work))
            shutil.rmtree(cache, ignore_errors=True)
            results["cold cache"].append(run(csv, cache, work))
            results["warm cache"].append(run(csv, cache, work))
        size = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
        print(f"cache entry: {size / 1e6:.0f} MB")

    print(f"\nmedians of {args.repeats}, each in a fresh process\n")
    print("| read_csv | read (s) | read + to_numpy(float32) (s) | peak RSS (MB) |")
    print("|---|---|---|---|")
    for name, runs in results.items():
        median = {k: statistics.median(r[k] for r in runs) for k in ("read", "used", "peak_mb")}
        print(f"| {name} | {median['read']:.2f} | {median['used']:.2f} | "
              f"{median['peak_mb']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
