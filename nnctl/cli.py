"""The `nnctl` command line: parses arguments, calls nnctl.api, maps errors to exit codes.

Exit codes: 0 success, 1 internal error (traceback shown), 2 bad usage/config/data/checkpoint,
3 training diverged, 130/143 interrupted by SIGINT/SIGTERM after saving a checkpoint.
Heavy modules (numpy, pandas) are imported inside the commands so `nnctl --help` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(
    help="Train neural networks written from scratch in NumPy, from YAML config files.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
runs_app = typer.Typer(help="List and inspect run directories.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")


def print_version(value: bool) -> None:
    if value:
        from ._version import __version__

        typer.echo(f"nnctl {__version__}")
        raise typer.Exit()


@app.callback()
def options(
    version: bool = typer.Option(False, "--version", callback=print_version, is_eager=True,
                                 help="Print nnctl's version and exit."),
) -> None:
    """Train neural networks written from scratch in NumPy, from YAML config files."""

SET_HELP = "Override a config value: dotted KEY=VALUE with a YAML value (repeatable)."
CHECKPOINT_HELP = "Which checkpoint to use: best or last."
THREADS_HELP = ("Threads for matrix products and parameter updates (default: every usable core, "
                "or the count set in OPENBLAS_NUM_THREADS).")
EXIT_DIVERGED = 3
EXIT_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}


def fail(problems: list[str]) -> None:
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    raise typer.Exit(2)


def user_errors(func):
    """Run a command body; user errors become one line each on stderr and exit code 2."""
    from functools import wraps

    @wraps(func)
    def wrapper(*args, **kwargs):
        from .errors import UserError

        try:
            return func(*args, **kwargs)
        except UserError as exc:
            fail(exc.problems)
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130)

    return wrapper


def use_threads(threads: Optional[int]) -> None:
    """Settle the thread count before NumPy loads: OpenBLAS reads it only then."""
    from .nn.threads import configure

    configure(threads)


def echo_json(data: dict) -> None:
    typer.echo(json.dumps(data, allow_nan=False, default=str))


@app.command()
@user_errors
def train(
    config: Optional[Path] = typer.Argument(None, help="The YAML config file."),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP, metavar="KEY=VALUE"),
    seed: Optional[int] = typer.Option(None, min=0, help="Override the config's seed."),
    run_name: Optional[str] = typer.Option(None, help="Name of the run (default: the config's name)."),
    runs_dir: Path = typer.Option(Path("runs"), help="Folder for run directories."),
    init_weights: Optional[Path] = typer.Option(None, help="Start from these weights (.npz)."),
    resume: Optional[Path] = typer.Option(None, help="Continue this run from its last checkpoint."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    json_: bool = typer.Option(False, "--json", help="Print the summary as JSON (last line)."),
    threads: Optional[int] = typer.Option(None, min=1, help=THREADS_HELP),
    cache: Optional[Path] = typer.Option(None, help="Keep the parsed CSV files in this folder and read them from there next time (keyed by the files' content), as sweeps do."),
):
    """Train a model from CONFIG into a new run directory, and print its path."""
    use_threads(threads)
    from . import api

    if resume is not None:
        given = [flag for flag, value in (("CONFIG", config), ("--set", set_), ("--seed", seed),
                                          ("--run-name", run_name),
                                          ("--init-weights", init_weights)) if value]
        if given:
            fail([f"--resume continues a run with its saved config; {', '.join(given)} "
                  "cannot be combined with it"])
        run = api.resume(resume, quiet=quiet, cache=cache)
    else:
        if config is None:
            fail(["missing CONFIG (or --resume RUN_DIR)"])
        run = api.train(config, list(set_), runs_dir, seed, quiet, run_name=run_name,
                        init_weights=init_weights, cache=cache)
    summary = run.summary
    typer.echo(str(run.path))
    if summary.get("message") and quiet:  # without --quiet, the run's end block said it
        typer.echo(f"error: {summary['message']}", err=True)
    if json_:
        echo_json(summary)
    raise typer.Exit(exit_code(summary))


def exit_code(summary: dict) -> int:
    """3 for a run that diverged, 130/143 for one stopped by SIGINT/SIGTERM, else 0."""
    if summary.get("status") == "diverged":
        return EXIT_DIVERGED
    if summary.get("status") == "interrupted":
        return EXIT_SIGNAL.get(summary.get("signal"), 130)
    return 0


@app.command("eval")
@user_errors
def eval_(
    run_dir: Path = typer.Argument(..., help="A run directory."),
    data: Optional[Path] = typer.Argument(None, help="CSV file (default: the run's test, else validation data)."),
    checkpoint: str = typer.Option("best", help=CHECKPOINT_HELP),
    json_: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    threshold: Optional[float] = typer.Option(
        None, help="Binary runs: the probability at or above which a row is positive (default 0.5)."),
    threads: Optional[int] = typer.Option(None, min=1, help=THREADS_HELP),
):
    """Evaluate a run's checkpoint on a CSV file with the target column(s)."""
    use_threads(threads)
    from . import api

    result = api.load(run_dir, checkpoint).evaluate(data, threshold)
    if json_:
        echo_json(result)
    else:
        typer.echo(format_eval(result))


def format_eval(result: dict) -> str:
    left_out = result.get("blank_targets")
    lines = [f"{result['data']}: {result['rows']} rows"
             + (f" ({left_out} without a target left out)" if left_out else "")
             + f", checkpoint {result['checkpoint']}"]
    top_k = [key for key in result if key.startswith("top_") and key.endswith("_accuracy")]
    shown = [key for key in ("loss", "accuracy", "balanced_accuracy", *top_k, "auc", "pr_auc",
                             "log_loss", "f1", "mse", "rmse", "mae", "r2") if key in result]
    key_width = max(len(key) for key in shown)
    lines += [f"{key.replace('_', ' '):<{key_width}}  {result[key]:.4f}" for key in shown]
    if "threshold" in result:
        lines.append(f"{'threshold':<{key_width}}  {result['threshold']:g}  (positive at or above)")
    if "classes" in result:
        width = max(len("macro avg"), *(len(c) for c in result["classes"]))
        lines.append("")
        lines.append(f"{'class':<{width}}  precision  recall     f1  support")
        for label, row in result["classes"].items():
            lines.append(f"{label:<{width}}  {row['precision']:9.3f}  {row['recall']:6.3f}  "
                         f"{row['f1']:5.3f}  {row['support']:7d}")
        if "macro" in result:
            macro = result["macro"]
            lines.append(f"{'macro avg':<{width}}  {macro['precision']:9.3f}  "
                         f"{macro['recall']:6.3f}  {macro['f1']:5.3f}")
        lines.append("")
        lines.append("confusion matrix (rows: true class, columns: predicted)")
        labels = result["labels"]
        cell = max(5, *(len(c) for c in labels))
        lines.append(" " * width + "  " + " ".join(f"{c:>{cell}}" for c in labels))
        for label, counts in zip(labels, result["confusion_matrix"]):
            lines.append(f"{label:<{width}}  " + " ".join(f"{n:>{cell}d}" for n in counts))
    if len(result.get("targets", {})) > 1:
        lines.append("")
        for target, row in result["targets"].items():
            lines.append(f"{target}: " + "  ".join(f"{k} {v:.4f}" for k, v in row.items()))
    return "\n".join(lines)


@app.command()
@user_errors
def predict(
    run_dir: Path = typer.Argument(..., help="A run directory."),
    input_csv: Path = typer.Argument(..., help="CSV file with the feature columns."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write CSV here (default: stdout)."),
    checkpoint: str = typer.Option("best", help=CHECKPOINT_HELP),
    keep: List[str] = typer.Option([], "--keep", help="Copy this input column to the output (repeatable)."),
    threshold: Optional[float] = typer.Option(
        None, help="Binary runs: the probability at or above which a row is positive (default 0.5)."),
    threads: Optional[int] = typer.Option(None, min=1, help=THREADS_HELP),
):
    """Predict every row of INPUT_CSV (no target column needed), in input order."""
    use_threads(threads)
    from . import api
    from .checkpoint import atomic_write

    if output is not None and output.exists() and input_csv.exists() and \
            output.resolve() == input_csv.resolve():
        fail([f"-o {output}: is the input file; write the predictions to another file"])
    frame = api.load(run_dir, checkpoint).predict(input_csv, keep, threshold)
    text = frame.to_csv(index=False, float_format="%.6g")
    if output is None:
        sys.stdout.write(text)
    else:
        atomic_write(output, lambda f: f.write(text.encode("utf-8")))


@app.command()
@user_errors
def export(
    run_dir: Path = typer.Argument(..., help="A run directory."),
    output: Optional[Path] = typer.Option(
        None, "-o", "--output",
        help="The ONNX file to write (default: model.onnx in the run directory)."),
    checkpoint: str = typer.Option("best", help=CHECKPOINT_HELP),
):
    """Write the run's whole inference (preprocessing, network, labels) as one ONNX file."""
    from . import api

    typer.echo(str(api.load(run_dir, checkpoint).export(output)))


@app.command()
@user_errors
def init(
    data: Path = typer.Argument(..., help="The CSV file to train on."),
    target: str = typer.Option(..., "--target", "-t", help="The column to predict."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write the config here (default: stdout); an existing file is not overwritten."),
):
    """Print a commented starter config for DATA: the task read from the target column, the
    detected column types, a network, loss and training section that fit. It is valid as
    printed: `nnctl init d.csv --target y > d.yaml && nnctl train d.yaml`."""
    from .starter import starter_config

    if output is not None and output.exists():
        fail([f"{output}: already exists; choose another file or remove it"])
    text = starter_config(data, target, output.parent if output is not None else Path("."))
    if output is None:
        sys.stdout.write(text)
    else:
        from .checkpoint import atomic_write

        atomic_write(output, lambda f: f.write(text.encode("utf-8")))
        typer.echo(str(output))


@app.command()
@user_errors
def validate(
    config: Optional[Path] = typer.Argument(None, help="The YAML config file."),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP, metavar="KEY=VALUE"),
    defaults: bool = typer.Option(False, "--defaults", help="Print every config key with its default, type and meaning instead (no CONFIG needed)."),
):
    """Check CONFIG and print it resolved (defaults filled in, overrides applied); with
    --defaults, print every key nnctl reads."""
    if defaults:
        if config is not None or set_:
            fail(["--defaults prints the schema's defaults; it takes no CONFIG or --set"])
        from .reference import defaults_text

        typer.echo(defaults_text(), nl=False)
        return
    if config is None:
        fail(["missing CONFIG (or --defaults)"])
    from .config import load_config

    typer.echo(load_config(config, list(set_)).to_yaml(), nl=False)


@runs_app.command("list")
@user_errors
def runs_list(
    runs_dir: Path = typer.Option(Path("runs"), help="Folder searched for run directories, sweep folders included."),
    sort: Optional[str] = typer.Option(None, help="Sort by a column, e.g. val_accuracy (best first) or wall_seconds."),
    format_: str = typer.Option("table", "--format", help="table, csv or json."),
    columns: Optional[str] = typer.Option(None, help="Comma-separated columns to show, in order, named as in --format csv's header (a parameter also by its last part, e.g. run,val_loss,lr)."),
):
    """One row per run: status, epochs, best epoch, best validation and test metrics, wall
    time, and the config values that differ between the listed runs. The table fits the
    terminal (or COLUMNS); csv and json are never cut."""
    from .listing import list_runs, render, sort_rows, table_width

    rows = list_runs(runs_dir)
    if sort is not None:
        rows = sort_rows(rows, sort)
    chosen = None if columns is None else [c.strip() for c in columns.split(",") if c.strip()]
    if not rows and format_ == "table":
        typer.echo(f"no runs found below {runs_dir}", err=True)
        return
    typer.echo(render(rows, format_, chosen, table_width(sys.stdout),
                      (sort,) if sort is not None else ()))


@runs_app.command("show")
@user_errors
def runs_show(
    run_dir: Path = typer.Argument(..., help="A run directory."),
    last: int = typer.Option(5, help="How many of the last epochs' metrics to show."),
):
    """A run's summary, its resolved config and its last epochs' metrics."""
    from .listing import show_run, table_width

    typer.echo(show_run(run_dir, last, table_width(sys.stdout)))


@app.command()
@user_errors
def plot(
    run_dirs: List[Path] = typer.Argument(..., help="One or more run directories (overlaid), or one sweep folder."),
    output: Path = typer.Option(Path("curves.png"), "-o", "--output", help="Image file to write (.png, .svg, .pdf)."),
    confusion: bool = typer.Option(False, "--confusion", help="Add the confusion matrix of the run's eval (one classification run)."),
    roc: bool = typer.Option(False, "--roc", help="Add ROC and precision-recall curves on the run's eval data, one per class (one classification run)."),
    data: Optional[Path] = typer.Option(None, "--data", help="CSV file for --roc and --confusion (default: the run's test data, else its validation data, as nnctl eval)."),
):
    """Plot learning curves (loss and main metric, train and validation, per epoch) of one or
    more runs into an image file, and print its path. Overlaid runs are labelled by the
    settings that differ between them."""
    from .plots import is_sweep_folder, plot_runs, plot_sweep

    if len(run_dirs) == 1 and is_sweep_folder(run_dirs[0]) and not (confusion or roc or data):
        typer.echo(str(plot_sweep(run_dirs[0], output)))
        return
    typer.echo(str(plot_runs(list(run_dirs), output, confusion, roc, data)))


@app.command()
@user_errors
def sweep(
    sweep_file: Optional[Path] = typer.Argument(None, help="The sweep YAML file."),
    workers: int = typer.Option(1, min=0, help="How many trials train at a time (0: create the sweep folder and its study, run nothing, for workers that --join)."),
    runs_dir: Path = typer.Option(Path("runs"), help="Folder in which the sweep folder is made."),
    print_commands: bool = typer.Option(False, "--print-commands", help="Print one shell command per trial and run nothing (grid and random)."),
    threads: Optional[int] = typer.Option(None, min=1, help="Threads per trial (default: the usable cores divided among the workers; with --print-commands, not set)."),
    storage: Optional[str] = typer.Option(None, help="Keep the study in this database (an Optuna storage URL: postgresql://..., mysql://..., sqlite:///...) instead of a journal file in the sweep folder."),
    resume: Optional[Path] = typer.Option(None, help="Continue this interrupted sweep folder: interrupted trials resume, waiting ones start."),
    join: Optional[Path] = typer.Option(None, help="Add workers to this sweep folder's study (from any machine that shares the folder)."),
):
    """Run a sweep: grid, random or tpe (Bayesian) search, one `nnctl train` process per trial,
    into one sweep folder with sweep.csv and the study; then print the trials ranked by the
    metric and the folder's path. Exit code 0 if every trial completed (or was pruned), 4 if
    any failed (the others still run), 2 for a bad sweep file, 130/143 if interrupted."""
    from . import sweep as sweeps

    given = [flag for flag, value in (("SWEEP_FILE", sweep_file), ("--resume", resume),
                                      ("--join", join)) if value is not None]
    if len(given) != 1:
        fail(["give one of SWEEP_FILE, --resume SWEEP_DIR or --join SWEEP_DIR"
              + (f" (got {', '.join(given)})" if given else "")])
    if sweep_file is None and (storage or print_commands):
        fail([f"{'--storage' if storage else '--print-commands'} goes with SWEEP_FILE: a sweep "
              "folder already knows where its study is"])
    if sweep_file is not None:
        spec = sweeps.load_sweep(sweep_file)
        if print_commands:
            if spec.spec.method == "tpe":
                fail([f"{sweep_file}: --print-commands needs the trials' values in advance "
                      "(grid or random); tpe chooses each from the ones before: run workers "
                      "with `nnctl sweep --join SWEEP_DIR` instead"])
            for line in sweeps.print_commands(spec, runs_dir, threads):
                typer.echo(line)
            return
        if storage is not None:
            sweeps.check_storage_url(storage)
        result = sweeps.start(spec, runs_dir, workers, threads, storage)
        spec_for_table = spec
    else:
        folder = resume or join
        spec_for_table, _ = sweeps.open_folder(folder)
        result = (sweeps.resume if resume else sweeps.join)(folder, workers, threads)
    typer.echo(sweeps.ranked_table(spec_for_table, result.outcomes))
    typer.echo(str(result.folder))
    raise typer.Exit(result.exit_code)


def main() -> None:
    # NumPy marks each large array for huge pages (madvise). Where the kernel then compacts
    # memory to find them at the first touch (transparent_hugepage/defrag "madvise", as on many
    # VMs), new arrays stall: on the 60,000 x 784 CSVs, `nnctl train` spent twice the system
    # time and 0.3-0.6 s more (numpy/numpy#31590). NumPy reads this when it is imported, later
    # than here; a user's own setting wins.
    os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
    app()


if __name__ == "__main__":
    main()
