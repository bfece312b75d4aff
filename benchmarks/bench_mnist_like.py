"""nnctl against PyTorch and scikit-learn on an MNIST-sized problem, end to end.

    python benchmarks/bench_mnist_like.py            # the full benchmark (3+ minutes)
    python benchmarks/bench_mnist_like.py --quick    # a smoke run on 6,000 rows

It writes a 60,000 x 784 CSV of pixel-like floats in [0, 1] with 10 learnable classes, and the
same pixels as integers 0-255 (once each, into benchmarks/.cache/), then, in one run:

- `nnctl train CONFIG --runs-dir TMP --quiet --json --threads N` as a subprocess (MLP
  784-256-128-10, relu, softmax, Adam 1e-3, batch 128, float32, 4 epochs, no validation): epoch
  times from the run's metrics.csv, wall time and peak RSS of the whole command; 3 runs on
  each CSV, alternating (1 with --quick), reported as medians;
- the same model in PyTorch (same data, batch size and epochs; a plain loop that shuffles,
  gathers each batch and keeps the running loss and accuracy, as nnctl does), run between
  nnctl's runs on the two CSVs, so that the epoch ratio is also taken round by round, each
  nnctl run against the PyTorch run beside it;
- scikit-learn's MLPClassifier (adam, batch 128, one partial_fit per epoch);
- the textbook vectorized NumPy loop for the same model (array expressions, no buffers);
- nnctl's CSV loading against pandas.read_csv alone, and `nnctl --help`;
- a second table: batch 32 and 512, a model twice as wide, an rnn layer against torch.nn.RNN,
  both on one thread, and both while another process keeps one core busy.

N, the threads of every library, is --threads (default: all cores, nnctl's own default).

Missing torch or scikit-learn only drops their rows. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import fmt, machine, nnctl_command, ratio, timed
from nnctl.nn.threads import usable_cores

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
CLASSES = 10
FEATURES = 784

# ---- data -----------------------------------------------------------------------------------

def make_dataset(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-like values in [0, 1] (3 decimals): a shared image plus a small class pattern plus
    noise, so the classes overlap and accuracy is informative (a linear model gets ~90%)."""
    rng = np.random.default_rng(seed)
    base = rng.random(FEATURES, dtype=np.float32)
    patterns = rng.normal(0.0, 0.04, size=(CLASSES, FEATURES)).astype(np.float32)
    y = rng.integers(0, CLASSES, size=rows)
    x = base + patterns[y]
    x += rng.normal(0.0, 0.35, size=(rows, FEATURES)).astype(np.float32)
    np.clip(x, 0.0, 1.0, out=x)
    return np.round(x * 1000).astype(np.int16), y


def ensure_csv(rows: int, integers: bool = False) -> Path:
    """The cached CSV with `rows` rows (label first, then pixel0..pixel783), made if missing:
    floats in [0, 1] with 3 decimals, or with `integers` the same pixels as integers 0-255,
    as MNIST's own CSV files hold them."""
    path = CACHE / f"mnist_like{'_int' * integers}_{rows}.csv"
    if path.exists():
        return path
    CACHE.mkdir(exist_ok=True)
    print(f"writing {path} (once) ...", file=sys.stderr, flush=True)
    codes, y = make_dataset(rows)
    if integers:
        text = [str(round(v * 255 / 1000)) for v in range(1001)]
    else:
        text = [f"{v / 1000:.3f}" for v in range(1001)]  # every value has 3 decimals
    temp = path.with_suffix(".tmp")
    with open(temp, "w", encoding="utf-8") as f:
        f.write(",".join(["label"] + [f"pixel{i}" for i in range(FEATURES)]) + "\n")
        for label, row in zip(y.tolist(), codes.tolist()):
            f.write(f"{label}," + ",".join([text[v] for v in row]) + "\n")
    os.replace(temp, path)
    return path


def write_config(folder: Path, name: str, csv_path: Path, layers: list[dict], batch: int,
                 epochs: int, sequence: dict | None = None) -> Path:
    """A config in YAML's JSON subset (no YAML library needed here)."""
    data = {"train": str(csv_path), "validation": None, "target": "label"}
    if sequence:
        data["sequence"] = sequence
    config = {
        "name": name, "seed": 0, "dtype": "float32", "data": data,
        "model": {"layers": layers}, "loss": "categorical_crossentropy",
        "optimizer": {"type": "adam", "lr": 1.0e-3},
        "training": {"epochs": epochs, "batch_size": batch},
    }
    path = folder / f"{name}.yaml"
    path.write_text(json.dumps(config, indent=1) + "\n")
    return path


def mlp_layers(widths: tuple[int, ...]) -> list[dict]:
    return [{"type": "dense", "units": w, "activation": "relu"} for w in widths] + [
        {"type": "dense", "units": CLASSES, "activation": "softmax"}]


@contextlib.contextmanager
def busy_core():
    """Another process spinning on one core for the duration, as in a sweep with two workers
    or any other job on a shared machine."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)
        yield
    finally:
        spinner.kill()
        spinner.wait()


# ---- nnctl through its front door ------------------------------------------------------------

def run_nnctl(config: Path, workdir: Path, threads: int) -> dict:
    runs = workdir / f"runs-{config.stem}-{threads}"
    result = timed(nnctl_command() + ["train", str(config), "--runs-dir", str(runs), "--quiet",
                                      "--json", "--threads", str(threads)], workdir)
    if result["code"] != 0:
        raise SystemExit(f"nnctl train {config} failed ({result['code']}):\n{result['stderr']}")
    summary = json.loads(result["stdout"].strip().splitlines()[-1])
    with open(Path(summary["run_dir"]) / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    seconds = [float(r["seconds"]) for r in rows]
    return {
        "epoch_seconds": seconds,
        "median": statistics.median(seconds),
        "wall": result["wall"],
        "beyond_epochs": result["wall"] - sum(seconds),
        # commands.train starts its clock after loading the data and building the model
        "before_training": result["wall"] - summary["wall_seconds"],
        "peak_mb": result["peak_mb"],
        "accuracy": float(rows[-1]["train_accuracy"]),
    }


def help_seconds(repeats: int, workdir: Path) -> float:
    times = []
    for _ in range(repeats):
        result = timed(nnctl_command() + ["--help"], workdir)
        times.append(result["wall"])
    return statistics.median(times)


def load_seconds(csv_path: Path, config: Path, repeats: int) -> tuple[float, float, tuple]:
    """Median seconds of nnctl's loading (read, check, encode, scale, float32) and of
    pandas.read_csv alone, alternated; returns the training arrays too."""
    import pandas as pd

    from nnctl.build import rng_streams
    from nnctl.config import load_config
    from nnctl.data import load_training_data

    cfg = load_config(config)
    ours, theirs = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        pd.read_csv(csv_path)
        theirs.append(time.perf_counter() - started)
        started = time.perf_counter()
        data = load_training_data(cfg.data, cfg.task, rng_streams(cfg.seed)["split"],
                                  np.dtype(cfg.dtype))
        ours.append(time.perf_counter() - started)
    return statistics.median(ours), statistics.median(theirs), (data.train.x, data.train.y)


def median_run(runs: list[dict]) -> dict:
    """The run of the median epoch among runs of the same command (the upper one of an even
    count): its epochs, accuracy and other figures belong together."""
    return sorted(runs, key=lambda run: run["median"])[len(runs) // 2]


# ---- references -------------------------------------------------------------------------------

def run_torch(x: np.ndarray, y: np.ndarray, model_kind: str, widths: tuple[int, ...],
              batch: int, epochs: int, threads: int, sequence: tuple[int, int] | None = None):
    """Epoch times of the same model and loop in PyTorch, or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if model_kind == "rnn":
        steps, features = sequence

        class Recurrent(nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn = nn.RNN(features, widths[0], nonlinearity="tanh", batch_first=True)
                self.out = nn.Linear(widths[0], CLASSES)

            def forward(self, inputs):
                states, _ = self.rnn(inputs)
                return self.out(states[:, -1])

        model = Recurrent()
        xs = torch.from_numpy(x.reshape(len(x), steps, features))
    else:
        sizes = (x.shape[1],) + widths
        layers = []
        for n_in, n_out in zip(sizes, sizes[1:]):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        model = nn.Sequential(*layers, nn.Linear(sizes[-1], CLASSES))
        xs = torch.from_numpy(x)
    ys = torch.from_numpy(y)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    times, accuracy = [], 0.0
    for _ in range(epochs):
        started = time.perf_counter()
        order = torch.randperm(len(xs))
        loss_sum, correct = 0.0, 0
        for start in range(0, len(xs), batch):
            index = order[start:start + batch]
            xb, yb = xs[index], ys[index]
            optimizer.zero_grad()
            out = model(xb)
            loss = loss_fn(out, yb)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item()
            correct += int((out.argmax(1) == yb).sum())
        times.append(time.perf_counter() - started)
        accuracy = correct / len(xs)
    return {"epoch_seconds": times, "median": statistics.median(times), "accuracy": accuracy,
            "threads": threads}


def run_plain_numpy(x: np.ndarray, y: np.ndarray, batch: int, epochs: int, threads: int):
    """Epoch times of the textbook vectorized NumPy loop for the MLP (He init, relu, softmax
    and cross-entropy gradient in one, Adam written as array expressions): what nnctl is
    measured against besides the libraries."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        from contextlib import nullcontext as threadpool_limits
    rng = np.random.default_rng(0)
    sizes = (x.shape[1], 256, 128, CLASSES)
    params = [(rng.standard_normal((a, b)) * np.sqrt(2 / a)).astype(np.float32)
              for a, b in zip(sizes, sizes[1:])] + [np.zeros(b, np.float32) for b in sizes[1:]]
    m, v = [np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params]
    (w0, w1, w2, b0, b1, b2), step, times, accuracy = params, 0, [], 0.0
    with threadpool_limits(threads):
        for _ in range(epochs):
            started = time.perf_counter()
            order, correct = rng.permutation(len(x)), 0
            for start in range(0, len(x), batch):
                index = order[start:start + batch]
                xb, yb = x[index], y[index]
                h1 = np.maximum(xb @ w0 + b0, 0)
                h2 = np.maximum(h1 @ w1 + b1, 0)
                z = h2 @ w2 + b2
                correct += int((z.argmax(1) == yb).sum())
                e = np.exp(z - z.max(1, keepdims=True))
                dz = e / e.sum(1, keepdims=True)
                dz[np.arange(len(yb)), yb] -= 1
                dz /= len(yb)
                d2 = (dz @ w2.T) * (h2 > 0)
                d1 = (d2 @ w1.T) * (h1 > 0)
                grads = [xb.T @ d1, h1.T @ d2, h2.T @ dz, d1.sum(0), d2.sum(0), dz.sum(0)]
                step += 1
                for p, g, m_, v_ in zip(params, grads, m, v):
                    m_ *= 0.9
                    m_ += 0.1 * g
                    v_ *= 0.999
                    v_ += 0.001 * g * g
                    p -= (1e-3 / (1 - 0.9**step)) * m_ / (np.sqrt(v_ / (1 - 0.999**step)) + 1e-8)
            times.append(time.perf_counter() - started)
            accuracy = correct / len(x)
    return {"epoch_seconds": times, "median": statistics.median(times), "accuracy": accuracy,
            "threads": threads}


def run_sklearn(x: np.ndarray, y: np.ndarray, batch: int, epochs: int, threads: int):
    """Epoch times of MLPClassifier (one partial_fit = one epoch), or None without sklearn."""
    try:
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        return None
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # sklearn depends on it, but stay runnable without
        from contextlib import nullcontext as threadpool_limits
    model = MLPClassifier(hidden_layer_sizes=(256, 128), solver="adam", batch_size=batch,
                          learning_rate_init=1e-3, random_state=0)
    classes = np.arange(CLASSES)
    times = []
    with threadpool_limits(threads):
        for _ in range(epochs):
            started = time.perf_counter()
            model.partial_fit(x, y, classes=classes)
            times.append(time.perf_counter() - started)
        accuracy = float((model.predict(x) == y).mean())
    return {"epoch_seconds": times, "median": statistics.median(times), "accuracy": accuracy,
            "threads": threads}


# ---- report -------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="6,000 rows, 2 epochs, 1 repeat")
    parser.add_argument("--rows", type=int, help="rows of the CSV (default 60000)")
    parser.add_argument("--epochs", type=int, help="epochs per run (default 4)")
    parser.add_argument("--threads", type=int, default=usable_cores(),
                        help="threads for nnctl, PyTorch and scikit-learn (default: all usable "
                             "cores)")
    parser.add_argument("--repeats", type=int, help="runs of nnctl on each CSV, and of PyTorch "
                                                      "beside them (default 3)")
    parser.add_argument("--no-extra", action="store_true", help="skip the second table")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    rows = args.rows or (6000 if args.quick else 60000)
    epochs = args.epochs or (2 if args.quick else 4)
    repeats = args.repeats or (1 if args.quick else 3)

    csv_path = ensure_csv(rows)
    results: dict = {"machine": machine(), "rows": rows, "epochs": epochs,
                     "load_average_start": os.getloadavg()}
    print(f"machine: {results['machine']}")
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    data_mb = rows * FEATURES * 4 / 1e6
    print(f"data: {rows:,} x {FEATURES} float32 = {data_mb:.0f} MB; CSV "
          f"{csv_path.stat().st_size / 1e6:.0f} MB, integer CSV "
          f"{ensure_csv(rows, integers=True).stat().st_size / 1e6:.0f} MB; {epochs} epochs; "
          f"reference threads {args.threads}\n", flush=True)

    with tempfile.TemporaryDirectory(prefix="nnctl-bench-") as tmp:
        tmp = Path(tmp)
        base = write_config(tmp, "mlp", csv_path, mlp_layers((256, 128)), 128, epochs)

        results["help_seconds"] = help_seconds(5 if not args.quick else 2, tmp)
        load_ours, load_pandas, (x, y) = load_seconds(csv_path, base, repeats)
        integers = write_config(tmp, "mlp_int", ensure_csv(rows, integers=True),
                                mlp_layers((256, 128)), 128, epochs)
        load_int, load_pandas_int, _ = load_seconds(ensure_csv(rows, integers=True), integers,
                                                    repeats)
        results["load_seconds"] = {"nnctl": load_ours, "pandas": load_pandas,
                                   "nnctl_integers": load_int, "pandas_integers": load_pandas_int}

        # The whole command on both CSVs, alternated, and PyTorch's epochs between them: the
        # machine may be shared and its speed drift, so the epoch ratio is taken round by
        # round, and beyond-epochs time and peak memory are compared by their medians
        commands = results["commands"] = {"floats": [], "integers": []}
        torch_runs = results["torch_runs"] = []
        for _ in range(repeats):
            commands["floats"].append(run_nnctl(base, tmp, args.threads))
            torch_runs.append(run_torch(x, y, "mlp", (256, 128), 128, epochs, args.threads))
            commands["integers"].append(run_nnctl(integers, tmp, args.threads))
        ours = results["nnctl"] = median_run(commands["floats"])
        torch_ = results["torch"] = median_run(torch_runs) if torch_runs[0] else None
        paired = results["paired_ratios"] = (
            [a["median"] / b["median"] for a, b in zip(commands["floats"], torch_runs)]
            if torch_ else [])
        torch1 = results["torch_1_thread"] = (
            run_torch(x, y, "mlp", (256, 128), 128, epochs, 1) if args.threads != 1 else None)
        sk = results["sklearn"] = run_sklearn(x, y, 128, epochs, args.threads)
        plain = results["plain_numpy"] = run_plain_numpy(x, y, 128, epochs, args.threads)
        reference = torch_["median"] if torch_ else None

        print(f"MLP 784-256-128-10, batch 128, Adam 1e-3, float32; nnctl --threads {args.threads}")
        print("| run | median epoch (s) | vs PyTorch | train accuracy |")
        print("|---|---:|---:|---:|")
        print(f"| nnctl train ({args.threads} threads) | {fmt(ours['median'])} | {ratio(ours['median'], reference)} | "
              f"{ours['accuracy']:.3f} |")
        if len(paired) > 1:
            print(f"| nnctl / PyTorch, round by round: median (range) | | "
                  f"{statistics.median(paired):.2f}x ({min(paired):.2f}-{max(paired):.2f}) | |")
        references = [("PyTorch", torch_), ("scikit-learn MLPClassifier", sk),
                      ("plain NumPy loop", plain)]
        if torch1 is not None:
            references.insert(1, ("PyTorch", torch1))
        for label, row in references:
            if row is None:
                print(f"| {label} | not installed | | |")
            else:
                threads = f"{row['threads']} thread" + ("s" if row["threads"] != 1 else "")
                print(f"| {label} ({threads}) | {fmt(row['median'])} | "
                      f"{ratio(row['median'], reference)} | {row['accuracy']:.3f} |")
        data_mib = rows * FEATURES * 4 / 2**20
        budget = 3 * data_mib + 300
        print()
        print(f"| whole command, median of {repeats} (range) | float CSV | integer CSV | target |")
        print("|---|---:|---:|---:|")

        def row(label: str, key: str, unit: str, digits: int, target: str = "") -> None:
            cells = []
            for runs in commands.values():
                values = [run[key] for run in runs]
                cell = f"{statistics.median(values):.{digits}f} {unit}"
                if len(values) > 1:
                    cell += f" ({min(values):.{digits}f}-{max(values):.{digits}f})"
                cells.append(cell)
            print(f"| {label} | {cells[0]} | {cells[1]} | {target} |")

        row("`nnctl train` wall time", "wall", "s", 2)
        row("beyond its epochs", "beyond_epochs", "s", 2, "<= 3 s")
        row("of which before training starts (startup, CSV)", "before_training", "s", 2)
        row("peak memory (RSS)", "peak_mb", "MiB", 0,
            f"<= {budget:.0f} MiB (3 x {data_mib:.0f} + 300)")
        print(f"| CSV load: nnctl (read, check, scale, float32) | {load_ours:.2f} s | "
              f"{load_int:.2f} s | |")
        print(f"| CSV load: pandas.read_csv alone | {load_pandas:.2f} s | "
              f"{load_pandas_int:.2f} s | |")
        print(f"| `nnctl --help` | {results['help_seconds']:.3f} s | | < 0.5 s |", flush=True)

        if not args.no_extra:
            extra = results["extra"] = []
            cases = [
                ("batch 32", mlp_layers((256, 128)), 32, None, (256, 128)),
                ("batch 512", mlp_layers((256, 128)), 512, None, (256, 128)),
                ("twice as wide (784-512-256-10)", mlp_layers((512, 256)), 128, None, (512, 256)),
                ("rnn 128 tanh over 28 steps x 28 features, batch 128",
                 [{"type": "rnn", "units": 128, "activation": "tanh"},
                  {"type": "dense", "units": CLASSES, "activation": "softmax"}],
                 128, {"steps": 28, "features": 28}, (128,)),
                ("base model, another process keeps one core busy", mlp_layers((256, 128)), 128,
                 None, (256, 128)),
            ]
            for i, (label, layers, batch, sequence, widths) in enumerate(cases):
                config = write_config(tmp, f"case{i}", csv_path, layers, batch, epochs, sequence)
                kind = "rnn" if sequence else "mlp"
                seq = (sequence["steps"], sequence["features"]) if sequence else None
                with (busy_core() if "busy" in label else contextlib.nullcontext()):
                    row = {"case": label}
                    for threads in dict.fromkeys([args.threads, 1]):
                        row[f"nnctl{threads}"] = run_nnctl(config, tmp, threads)
                        row[f"torch{threads}"] = run_torch(x, y, kind, widths, batch, epochs,
                                                           threads, seq)
                extra.append(row)
            n = args.threads
            print()
            print(f"| case | nnctl {n} threads (s) | PyTorch {n} threads (s) | ratio | "
                  "nnctl 1 thread (s) | PyTorch 1 thread (s) | ratio | nnctl wall (s) | "
                  "peak (MB) |")
            print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
            for row in extra:
                mine, mine1 = row[f"nnctl{n}"]["median"], row["nnctl1"]["median"]
                t = row[f"torch{n}"]["median"] if row[f"torch{n}"] else None
                t1 = row["torch1"]["median"] if row["torch1"] else None
                print(f"| {row['case']} | {fmt(mine)} | {fmt(t)} | {ratio(mine, t)} | "
                      f"{fmt(mine1)} | {fmt(t1)} | {ratio(mine1, t1)} | "
                      f"{row[f'nnctl{n}']['wall']:.1f} | {row[f'nnctl{n}']['peak_mb']:.0f} |")

    results["load_average_end"] = os.getloadavg()
    print(f"\nload average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
