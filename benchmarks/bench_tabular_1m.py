"""nnctl's tabular data layer against pandas + scikit-learn, and an epoch with embeddings
against PyTorch, on a 1,000,000-row CSV of numbers, blanks, text and dates.

    python benchmarks/bench_tabular_1m.py              # the full benchmark (about 25 minutes)
    python benchmarks/bench_tabular_1m.py --quick      # a smoke run on 100,000 rows
    python benchmarks/bench_tabular_1m.py --only reference   # the references alone

It writes (once, into benchmarks/.cache/) tabular_<rows>.csv: ten numeric columns x0..x9 with
5% blank cells, five text columns with 3, 30, 300, 1,000 and 5,000 distinct values drawn
Zipf-like (color, region, city, store, product), one ISO date column (signup) and a text
target `label` (low | mid | high) that depends on all of them. Then, in one run:

- loading and preprocessing, each in a subprocess of its own (wall time of the work inside it,
  peak RSS from a small waiting process, medians of 3, the variants taking turns):
  - the reference: pandas.read_csv + scikit-learn's ColumnTransformer (median SimpleImputer
    with indicators + StandardScaler; OneHotEncoder; date parts + StandardScaler),
    fit_transform; its one-hot output stays sparse (CSR), as the ColumnTransformer makes it;
  - nnctl's `load_training_data` with `encoding: embedding` for city, store and product
    (one-hot for color and region, every other type detected), validation null;
  - nnctl with every text column one-hot, `max_categories: 100` on the three large ones
    (and the same reference with OneHotEncoder(max_categories=100) beside it);
- `nnctl train CONFIG --quiet --json --runs-dir TMP --set training.epochs=3` (dense 128 relu,
  dense 64 relu, dense 3 softmax, Adam 1e-3, batch 256, float32, no validation), epoch times
  from metrics.csv, against the same model in PyTorch (nn.Embedding per embedded column with
  the widths nnctl picked, read from the checkpoint's `inputs.<column>.E`, concatenated with
  the dense inputs, Linear-ReLU-Linear-ReLU-Linear, Adam, same batch size and threads,
  shuffled batches gathered per step) on the arrays nnctl's loader returns.

--profile FILE runs nnctl's loading once more under cProfile and prints the top entries.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import fmt, machine, nnctl_command, ratio, timed

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
NUMERIC = [f"x{i}" for i in range(10)]
TEXT = {"color": 3, "region": 30, "city": 300, "store": 1000, "product": 5000}
EMBEDDED = ["city", "store", "product"]
DATE = "signup"
TARGET = "label"
CLASSES = ["high", "low", "mid"]
BLANK_SHARE = 0.05
MAX_CATEGORIES = 100  # the all-one-hot variant
HIDDEN = (128, 64)
BATCH = 256

# ---- data -----------------------------------------------------------------------------------

def zipf_codes(rng: np.random.Generator, rows: int, categories: int, s: float = 1.1):
    """Category indices with P(k) proportional to 1 / (k + 1)^s: a few common values and a
    long tail, as cities or products are."""
    p = 1.0 / np.arange(1, categories + 1) ** s
    return rng.choice(categories, size=rows, p=p / p.sum())


def make_frame(rows: int, seed: int = 0):
    """The table as a DataFrame (blanks as NaN). The label is a noisy linear score of the
    true numbers (before blanking), per-category effects and the date, cut at its terciles."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    z = rng.standard_normal((rows, len(NUMERIC)))
    means = rng.uniform(-50, 500, len(NUMERIC))
    scales = 10.0 ** rng.uniform(-1, 3, len(NUMERIC))
    values = means + scales * z
    values[:, :3] = np.exp(z[:, :3] * 0.8 + 3)  # three skewed (income-like) columns
    score = z @ rng.normal(0, 0.6, len(NUMERIC))
    frame = {}
    for j, name in enumerate(NUMERIC):
        column = values[:, j].copy()
        column[rng.random(rows) < BLANK_SHARE] = np.nan
        frame[name] = column
    for name, categories in TEXT.items():
        codes = zipf_codes(rng, rows, categories)
        score += rng.normal(0, 0.7, categories)[codes]
        # names in an order unrelated to frequency, as real labels are
        labels = np.array([f"{name[:3]}_{k:04d}" for k in rng.permutation(categories)])
        frame[name] = labels[codes]
    start, days = np.datetime64("2015-01-01"), 3652
    offsets = rng.integers(0, days, rows)
    dates = start + offsets.astype("timedelta64[D]")
    day_of_year = (dates - dates.astype("datetime64[Y]")).astype(int)
    score += 0.8 * np.sin(2 * np.pi * day_of_year / 365.25) + 0.6 * offsets / days
    frame[DATE] = np.datetime_as_string(dates, unit="D")
    score += rng.standard_normal(rows)
    low, high = np.quantile(score, [1 / 3, 2 / 3])
    frame[TARGET] = np.where(score < low, "low", np.where(score < high, "mid", "high"))
    return pd.DataFrame(frame)


def ensure_csv(rows: int) -> Path:
    """The cached CSV with `rows` rows, made if missing."""
    path = CACHE / f"tabular_{rows}.csv"
    if path.exists():
        return path
    CACHE.mkdir(exist_ok=True)
    print(f"writing {path} (once) ...", file=sys.stderr, flush=True)
    temp = path.with_suffix(".tmp")
    make_frame(rows).to_csv(temp, index=False, float_format="%.4f", na_rep="")
    os.replace(temp, path)
    return path


def write_config(folder: Path, name: str, csv_path: Path, columns: dict, epochs: int) -> Path:
    """A config in YAML's JSON subset (no YAML library needed here)."""
    config = {
        "name": name, "seed": 0, "dtype": "float32",
        "data": {"train": str(csv_path), "validation": None, "target": TARGET,
                 "columns": columns},
        "model": {"layers": [{"type": "dense", "units": w, "activation": "relu"}
                             for w in HIDDEN]
                  + [{"type": "dense", "units": len(CLASSES), "activation": "softmax"}]},
        "loss": "categorical_crossentropy",
        "optimizer": {"type": "adam", "lr": 1.0e-3},
        "training": {"epochs": epochs, "batch_size": BATCH},
    }
    path = folder / f"{name}.yaml"
    path.write_text(json.dumps(config, indent=1) + "\n")
    return path


EMBEDDING_COLUMNS = {c: {"type": "categorical", "encoding": "embedding"} for c in EMBEDDED}
ONE_HOT_COLUMNS = {c: {"type": "categorical", "max_categories": MAX_CATEGORIES}
                   for c in EMBEDDED}


# ---- the children: each loads the file once in a fresh process ----------------------------------

def date_parts(frame):
    """year, month, day, weekday, day of year and days since 1970 of an ISO date column."""
    import pandas as pd

    when = pd.to_datetime(frame.iloc[:, 0], format="ISO8601")
    elapsed = (when - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
    return np.column_stack([when.dt.year, when.dt.month, when.dt.day, when.dt.weekday,
                            when.dt.dayofyear, elapsed]).astype(np.float64)


def child_reference(csv_path: str, variant: str, out: str) -> None:
    started = time.perf_counter()
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import (
        FunctionTransformer,
        LabelEncoder,
        OneHotEncoder,
        StandardScaler,
    )
    imported = time.perf_counter()

    frame = pd.read_csv(csv_path)
    read = time.perf_counter()
    if variant == "max_categories":
        one_hot = OneHotEncoder(handle_unknown="infrequent_if_exist",
                                max_categories=MAX_CATEGORIES)
    else:
        one_hot = OneHotEncoder(handle_unknown="ignore")
    transformer = ColumnTransformer([
        ("num", Pipeline([("impute", SimpleImputer(strategy="median", add_indicator=True)),
                          ("scale", StandardScaler())]), NUMERIC),
        ("cat", one_hot, list(TEXT)),
        ("date", Pipeline([("parts", FunctionTransformer(date_parts)),
                           ("scale", StandardScaler())]), [DATE]),
    ])
    x = transformer.fit_transform(frame.drop(columns=[TARGET]))
    transformed = time.perf_counter()
    y = LabelEncoder().fit_transform(frame[TARGET])
    labelled = time.perf_counter()
    stored = x.data.nbytes + x.indices.nbytes + x.indptr.nbytes if hasattr(x, "indptr") \
        else x.nbytes
    Path(out).write_text(json.dumps({
        "imports": imported - started, "read": read - imported,
        "transform": transformed - read, "label": labelled - transformed,
        "seconds": transformed - imported,  # read_csv + fit_transform: what the target names
        "shape": list(x.shape), "format": type(x).__name__, "dtype": str(x.dtype),
        "stored_mb": stored / 1e6, "nnz": int(getattr(x, "nnz", x.size)),
        "classes": int(y.max()) + 1,
    }))


def load_with_nnctl(config: str):
    from nnctl.config import load_config
    from nnctl.data import load_training_data

    cfg = load_config(config)
    return load_training_data(cfg.data, cfg.task, np.random.default_rng(0), np.dtype(cfg.dtype))


def child_nnctl(config: str, out: str, profile: str | None = None) -> None:
    started = time.perf_counter()
    import pandas  # noqa: F401  (imported by nnctl.data too; counted apart from the work)

    from nnctl.config import load_config  # noqa: F401
    from nnctl.data import load_training_data  # noqa: F401
    imported = time.perf_counter()
    if profile:
        import cProfile
        profiler = cProfile.Profile()
        data = profiler.runcall(load_with_nnctl, config)
        profiler.dump_stats(profile)
    else:
        data = load_with_nnctl(config)
    loaded = time.perf_counter()
    x, prep = data.train.x, data.preprocessing
    Path(out).write_text(json.dumps({
        "imports": imported - started, "seconds": loaded - imported,
        "shape": list(x.shape), "dtype": str(x.dtype), "x_mb": x.nbytes / 1e6,
        "floats": len(prep.inputs), "embeddings": prep.embeddings,
    }))


# ---- running things ----------------------------------------------------------------------------

def run_child(kind: str, args: list[str], workdir: Path) -> dict:
    """One loading in a fresh process: the child's own report plus wall time and peak RSS."""
    out = workdir / f"{kind}.json"
    out.unlink(missing_ok=True)
    result = timed([sys.executable, str(Path(__file__).resolve()), "--child", kind, *args,
                    str(out)], workdir)
    if result["code"] != 0 or not out.exists():
        return {"failed": True, "code": result["code"], "stderr": result["stderr"][-3000:]}
    report = json.loads(out.read_text())
    report.update(wall=result["wall"], peak_mb=result["peak_mb"],
                  warnings=result["stderr"].strip())
    return report


def median_of(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if not r.get("failed")]
    return statistics.median(values) if values else None


def run_nnctl_train(config: Path, workdir: Path, epochs: int, threads: int) -> dict:
    runs = workdir / f"runs-{config.stem}"
    result = timed(nnctl_command() + ["train", str(config), "--runs-dir", str(runs), "--quiet",
                                      "--json", "--threads", str(threads),
                                      "--set", f"training.epochs={epochs}"], workdir)
    if result["code"] != 0:
        return {"failed": True, "code": result["code"], "stderr": result["stderr"][-3000:]}
    summary = json.loads(result["stdout"].strip().splitlines()[-1])
    run_dir = Path(summary["run_dir"])
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    seconds = [float(r["seconds"]) for r in rows]
    with np.load(run_dir / "checkpoints" / "last.npz", allow_pickle=False) as weights:
        tables = {k[len("inputs."):-len(".E")]: weights[k].shape for k in weights.files
                  if k.startswith("inputs.") and k.endswith(".E")}
        first = weights["layers.0.W"].shape
    return {
        "epoch_seconds": seconds, "median": statistics.median(seconds),
        "wall": result["wall"], "peak_mb": result["peak_mb"],
        "before_training": result["wall"] - summary["wall_seconds"],
        "accuracy": float(rows[-1]["train_accuracy"]), "embeddings": tables,
        "first_layer": list(first), "run_dir": str(run_dir),
    }


def dense_and_codes(data):
    """The dense float inputs, the (N, columns) category codes of the embedded columns and
    the embedding tables [(column, categories, dim)], from what load_training_data returns:
    its x holds the float inputs, then one column of codes per embedded column."""
    prep = data.preprocessing
    floats = len(prep.inputs)
    x = data.train.x
    tables = [(e["column"], e["categories"], e["dim"]) for e in prep.embeddings]
    codes = x[:, floats:].astype(np.int64) if tables else None
    return np.ascontiguousarray(x[:, :floats]), codes, tables


def run_torch(dense: np.ndarray, codes: np.ndarray | None, tables: list[tuple[int, int]],
              y: np.ndarray, epochs: int, threads: int):
    """Epoch times of the same model and loop in PyTorch, or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(0)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embeddings = nn.ModuleList(nn.Embedding(n, d) for n, d in tables)
            width = dense.shape[1] + sum(d for _, d in tables)
            self.mlp = nn.Sequential(nn.Linear(width, HIDDEN[0]), nn.ReLU(),
                                     nn.Linear(HIDDEN[0], HIDDEN[1]), nn.ReLU(),
                                     nn.Linear(HIDDEN[1], len(CLASSES)))

        def forward(self, xb, cb):
            parts = [xb] + [table(cb[:, i]) for i, table in enumerate(self.embeddings)]
            return self.mlp(torch.cat(parts, dim=1))

    model = Model()
    xs, ys = torch.from_numpy(dense), torch.from_numpy(y.astype(np.int64))
    cs = torch.from_numpy(codes) if codes is not None else torch.zeros((len(xs), 0),
                                                                       dtype=torch.int64)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    times, accuracy = [], 0.0
    for _ in range(epochs):
        started = time.perf_counter()
        order = torch.randperm(len(xs))
        loss_sum, correct = 0.0, 0
        for start in range(0, len(xs), BATCH):
            index = order[start:start + BATCH]
            xb, cb, yb = xs[index], cs[index], ys[index]
            optimizer.zero_grad()
            out = model(xb, cb)
            loss = loss_fn(out, yb)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item()
            correct += int((out.argmax(1) == yb).sum())
        times.append(time.perf_counter() - started)
        accuracy = correct / len(xs)
    return {"epoch_seconds": times, "median": statistics.median(times), "accuracy": accuracy,
            "threads": threads}


def print_profile(path: str, top: int) -> None:
    """The profile's top entries by cumulative time, then by time spent in the function."""
    import io
    import pstats

    for order in ("cumulative", "tottime"):
        text = io.StringIO()
        pstats.Stats(path, stream=text).sort_stats(order).print_stats(top)
        lines = text.getvalue().splitlines()
        start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
        print(f"\nsorted by {order}:")
        print("\n".join(line.rstrip() for line in lines[start:] if line.strip()))


# ---- report -------------------------------------------------------------------------------------

def spread(runs: list[dict], key: str, digits: int = 2) -> str:
    values = sorted(r[key] for r in runs if not r.get("failed"))
    if len(values) < 2:
        return ""
    return f"{values[0]:.{digits}f}-{values[-1]:.{digits}f}"


def report_loading(label: str, runs: list[dict]) -> dict:
    failed = [r for r in runs if r.get("failed")]
    if failed:
        print(f"{label}: {len(failed)} of {len(runs)} runs failed (exit {failed[0]['code']}):\n"
              f"{failed[0]['stderr']}", flush=True)
    return {"seconds": median_of(runs, "seconds"), "peak_mb": median_of(runs, "peak_mb"),
            "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 rows, 1 repeat")
    parser.add_argument("--rows", type=int, help="rows of the CSV (default 1,000,000)")
    parser.add_argument("--repeats", type=int, help="loadings of each kind (default 3)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the training runs")
    parser.add_argument("--threads", type=int, help="threads for nnctl train and PyTorch "
                        "(default: all usable cores, nnctl's own default)")
    parser.add_argument("--only", choices=["data", "reference", "nnctl", "loading", "epoch"],
                        help="run one part: write the CSV, the references, nnctl's loading, "
                             "both loadings, or the epochs")
    parser.add_argument("--profile", metavar="FILE", help="also profile one nnctl loading "
                        "(embedding config) with cProfile into FILE and print its top entries")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        kind, *rest = args.child
        if kind == "reference":
            child_reference(*rest)
        elif kind == "nnctl":
            child_nnctl(*rest)
        elif kind == "nnctl-profile":
            config, profile, out = rest
            child_nnctl(config, out, profile)
        return 0

    from nnctl.nn.threads import usable_cores

    rows = args.rows or (100_000 if args.quick else 1_000_000)
    repeats = args.repeats or (1 if args.quick else 3)
    threads = args.threads or usable_cores()
    csv_path = ensure_csv(rows)
    if args.only == "data":
        print(csv_path)
        return 0
    parts = {"reference": ["reference"], "nnctl": ["nnctl"], "loading": ["reference", "nnctl"],
             "epoch": ["epoch"]}.get(args.only, ["reference", "nnctl", "epoch"])

    results: dict = {"machine": machine(), "rows": rows, "repeats": repeats,
                     "load_average_start": os.getloadavg()}
    print(f"machine: {results['machine']}")
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"data: {csv_path.name}, {rows:,} rows, {csv_path.stat().st_size / 1e6:.0f} MB; "
          f"loadings x{repeats}; {args.epochs} epochs on {threads} threads\n", flush=True)

    with tempfile.TemporaryDirectory(prefix="nnctl-bench-") as tmp:
        tmp = Path(tmp)
        embedding_config = write_config(tmp, "tabular_embedding", csv_path, EMBEDDING_COLUMNS,
                                        args.epochs)
        one_hot_config = write_config(tmp, "tabular_one_hot", csv_path, ONE_HOT_COLUMNS,
                                      args.epochs)
        kinds = []
        if "reference" in parts:
            kinds += [("reference", ["reference", str(csv_path), "plain"]),
                      ("reference_max", ["reference", str(csv_path), "max_categories"])]
        if "nnctl" in parts:
            kinds += [("nnctl_embedding", ["nnctl", str(embedding_config)]),
                      ("nnctl_one_hot", ["nnctl", str(one_hot_config)])]
        loads: dict[str, list[dict]] = {name: [] for name, _ in kinds}
        for round_ in range(repeats):  # the kinds take turns, so drifting load hits all alike
            for name, (kind, *rest) in kinds:
                loads[name].append(run_child(kind, rest, tmp))
                r = loads[name][-1]
                state = "failed" if r.get("failed") else \
                    f"{r['seconds']:.2f} s, peak {r['peak_mb']:.0f} MB"
                print(f"  round {round_ + 1}: {name}: {state}", file=sys.stderr, flush=True)
        loading = results["loading"] = {name: report_loading(name, runs)
                                        for name, runs in loads.items()}
        if loading:
            print_loading_table(loading, rows)

        if args.profile:
            report = run_child("nnctl-profile", [str(embedding_config), args.profile], tmp)
            if report.get("failed"):
                print(f"profiled loading failed:\n{report['stderr']}")
            else:
                print(f"\ncProfile of one nnctl loading ({report['seconds']:.2f} s under the "
                      f"profiler)")
                print_profile(args.profile, 25)

        if "epoch" in parts:
            results["epoch"] = run_epochs(embedding_config, tmp, args.epochs, threads)

    results["load_average_end"] = os.getloadavg()
    print(f"\nload average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float) + "\n")
    return 0


def print_loading_table(loading: dict, rows: int) -> None:
    reference = loading.get("reference", {}).get("seconds")
    print("| loading + preprocessing | seconds (median) | range | vs reference | peak RSS (MB) "
          "| output | budget (3 x inputs + 300 MB) |")
    print("|---|---:|---:|---:|---:|---|---:|")
    labels = {
        "reference": "pandas.read_csv + ColumnTransformer.fit_transform",
        "reference_max": f"same, OneHotEncoder(max_categories={MAX_CATEGORIES})",
        "nnctl_embedding": "nnctl load_training_data, 3 columns embedded",
        "nnctl_one_hot": f"nnctl load_training_data, all one-hot (max_categories "
                         f"{MAX_CATEGORIES})",
    }
    for name, row in loading.items():
        runs = [r for r in row["runs"] if not r.get("failed")]
        if not runs:
            print(f"| {labels[name]} | failed | | | | | |")
            continue
        last = runs[-1]
        if name.startswith("reference"):
            output = (f"{last['shape'][0]:,} x {last['shape'][1]:,} {last['format']} "
                      f"{last['dtype']}, {last['stored_mb']:.0f} MB stored")
            budget = ""
        else:
            output = (f"x {last['shape'][0]:,} x {last['shape'][1]} {last['dtype']} = "
                      f"{last['x_mb']:.0f} MB")
            if last["embeddings"]:
                output += (f" ({last['floats']} float inputs + codes of "
                           + ", ".join(f"{e['column']} {e['categories']}x{e['dim']}"
                                       for e in last["embeddings"]) + ")")
            budget_mb = 3 * last["x_mb"] + 300
            verdict = "within" if row["peak_mb"] <= budget_mb else "over"
            budget = f"{budget_mb:.0f} MB ({verdict})"
        print(f"| {labels[name]} | {fmt(row['seconds'])} | {spread(runs, 'seconds')} | "
              f"{ratio(row['seconds'], reference)} | {row['peak_mb']:.0f} | {output} | "
              f"{budget} |")
    ref_runs = [r for r in loading.get("reference", {}).get("runs", []) if not r.get("failed")]
    if ref_runs:
        parts = {k: statistics.median(r[k] for r in ref_runs)
                 for k in ("read", "transform", "label", "imports")}
        print(f"\nreference, medians: read_csv {parts['read']:.2f} s, fit_transform "
              f"{parts['transform']:.2f} s (not counted: LabelEncoder on the target "
              f"{parts['label']:.2f} s, imports {parts['imports']:.2f} s)")
    for name in ("nnctl_embedding", "nnctl_one_hot"):
        runs = [r for r in loading.get(name, {}).get("runs", []) if not r.get("failed")]
        if runs:
            print(f"{name}: imports {statistics.median(r['imports'] for r in runs):.2f} s "
                  f"(not counted); whole child process "
                  f"{statistics.median(r['wall'] for r in runs):.2f} s")
            if runs[-1]["warnings"]:
                print("  its messages: " + runs[-1]["warnings"].replace("\n", "\n  "))
    sys.stdout.flush()


def run_epochs(config: Path, tmp: Path, epochs: int, threads: int) -> dict:
    """nnctl train and the PyTorch twin on `threads` threads and on one, each nnctl run right
    before the PyTorch run it is compared with."""
    results, data = {}, None
    for n in dict.fromkeys([threads, 1]):
        ours = results[f"nnctl{n}"] = run_nnctl_train(config, tmp, epochs, n)
        if ours.get("failed"):
            print(f"\nnnctl train --threads {n} failed (exit {ours['code']}):\n{ours['stderr']}")
            return results
        if data is None:
            data = load_with_nnctl(str(config))
            dense, codes, named = dense_and_codes(data)
            found = {c: (k, d) for c, k, d in named}
            if found != {c: tuple(s) for c, s in ours["embeddings"].items()}:
                raise SystemExit(f"the loader's embeddings {found} differ from the run's "
                                 f"tables {ours['embeddings']}")
            tables = [(k, d) for _, k, d in named]
        print(f"  nnctl train --threads {n}: epochs {ours['epoch_seconds']}", file=sys.stderr,
              flush=True)
        results[f"torch{n}"] = run_torch(dense, codes, tables, data.train.y, epochs, n)
    width = dense.shape[1] + sum(d for _, d in tables)
    print(f"\nepochs: {len(dense):,} rows, batch {BATCH}, {dense.shape[1]} dense inputs + "
          f"embeddings {', '.join(f'{c} {k}x{d}' for c, k, d in named)} -> "
          f"{width}-{HIDDEN[0]}-{HIDDEN[1]}-{len(CLASSES)} (nnctl's first layer "
          f"{tuple(results[f'nnctl{threads}']['first_layer'])}); Adam 1e-3, float32")
    print("| run | threads | median epoch (s) | epochs (s) | nnctl / PyTorch | train accuracy |")
    print("|---|---:|---:|---|---:|---:|")
    for n in dict.fromkeys([threads, 1]):
        ours, theirs = results[f"nnctl{n}"], results[f"torch{n}"]
        for label, row in (("nnctl train", ours), ("PyTorch", theirs)):
            if row is None:
                print(f"| {label} | {n} | not installed | | | |")
                continue
            share = ratio(ours["median"], theirs["median"] if theirs else None) \
                if row is ours else ""
            print(f"| {label} | {n} | {fmt(row['median'])} | "
                  f"{', '.join(f'{s:.2f}' for s in row['epoch_seconds'])} | {share} | "
                  f"{row['accuracy']:.3f} |")
    for n in dict.fromkeys([threads, 1]):
        ours = results[f"nnctl{n}"]
        print(f"`nnctl train --threads {n}` whole command: {ours['wall']:.1f} s, of which "
              f"before training {ours['before_training']:.1f} s; peak RSS "
              f"{ours['peak_mb']:.0f} MB")
    return results


if __name__ == "__main__":
    sys.exit(main())
