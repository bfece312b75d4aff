"""Learning curves (and a confusion matrix) of run directories, drawn headless with matplotlib.

Loss on the left, the run's main metric (the first one after the loss in metrics.csv: accuracy,
or MAE for regression) on the right; train solid, validation dashed, one colour per run, and a
dot on each run's best epoch.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Optional

from .checkpoint import atomic_write
from .errors import UserError
from .files import open_regular
from .listing import format_value, read_config, differing_keys
from .runs import open_run, read_metrics, read_summary

RUN_SUFFIX = re.compile(r"-\d{8}-\d{6}-[0-9a-f]{4}$")  # <name>-<YYYYmmdd-HHMMSS>-<4 hex>


def main_metric(columns: list[str]) -> Optional[str]:
    """The first metric after the loss: `accuracy` from train_accuracy, `mae`, ..."""
    for column in columns:
        if column.startswith("train_") and column != "train_loss":
            return column.removeprefix("train_")
    return None


def labels_for(run_dirs: list[Path]) -> list[str]:
    """Each run's name (its folder without the time stamp) and the config values that differ
    between the runs; the whole folder name where that would not tell two runs apart."""
    configs = [read_config(p) for p in run_dirs]
    keys = differing_keys(configs)
    short = short_keys(keys)

    def label(name: str, config: dict) -> str:
        shown = ", ".join(f"{short[k]}={format_value(config.get(k))}" for k in keys[:3])
        more = f", +{len(keys) - 3}" if len(keys) > 3 else ""
        return f"{name} ({shown}{more})" if shown else name

    labels = [label(RUN_SUFFIX.sub("", p.name), c) for p, c in zip(run_dirs, configs)]
    if len(set(labels)) < len(labels):
        labels = [label(p.name, c) for p, c in zip(run_dirs, configs)]
    return labels


def short_keys(keys: list[str]) -> dict[str, str]:
    """`optimizer.lr` -> `lr`, unless the last part is a number or is shared by another key."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: k if (part.isdigit() or last.count(part) > 1) else part
            for k, part in zip(keys, last)}


def plot_runs(run_dirs: list[Path], output: Path, confusion: bool = False) -> Path:
    """Draw the runs' learning curves (and, for one classification run, its confusion matrix
    on its eval data) into `output`; the format follows the file's extension."""
    if not run_dirs:
        raise UserError("give at least one run directory")
    if confusion and len(run_dirs) != 1:
        raise UserError(f"--confusion draws one run's confusion matrix; give one run directory "
                        f"(got {len(run_dirs)})")
    run_dirs = [open_run(p) for p in run_dirs]
    histories = []
    for path in run_dirs:
        history = read_metrics(path)
        if not history:
            raise UserError(f"{path}: no metrics.csv yet (has the run finished an epoch?)")
        histories.append(history)
    evaluation = None
    if confusion:
        from .api import load

        evaluation = load(run_dirs[0]).evaluate()
        if "confusion_matrix" not in evaluation:
            raise UserError(f"{run_dirs[0]}: --confusion needs a classification run "
                            "(this one has no classes)")

    import matplotlib

    matplotlib.use("Agg")  # headless: no display needed, and no pyplot state either
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    output = Path(output)
    fmt = output.suffix.lstrip(".").lower()
    figure = Figure(figsize=(15 if confusion else 11, 4.2), dpi=100, layout="constrained")
    supported = figure.canvas.get_supported_filetypes()
    if fmt not in supported:
        raise UserError(f"{output}: unknown image format {output.suffix or '(none)'!r}; use one "
                        f"of: {', '.join('.' + f for f in sorted(supported))}")
    axes = figure.subplots(1, 3 if confusion else 2)
    loss_ax, metric_ax = axes[0], axes[1]
    labels = labels_for(run_dirs)
    colours = matplotlib.colormaps["tab10"].colors
    metrics_seen: list[str] = []
    for i, (path, history, label) in enumerate(zip(run_dirs, histories, labels)):
        colour = colours[i % len(colours)]
        epochs = [row["epoch"] for row in history]
        marker = "o" if len(history) == 1 else None
        best = (read_summary(path) or {}).get("best_epoch")
        metric = main_metric(list(history[0]))
        if metric and metric not in metrics_seen:
            metrics_seen.append(metric)
        for ax, name in ((loss_ax, "loss"), (metric_ax, metric)):
            if name is None:
                continue
            for split, style in (("train", "-"), ("val", "--")):
                column = f"{split}_{name}"
                if column not in history[0]:
                    continue
                values = [row[column] for row in history]
                ax.plot(epochs, values, style, color=colour, marker=marker, linewidth=1.5,
                        label=label if (ax is loss_ax and split == "train") else None)
                if split == "val" and best in epochs:
                    ax.plot([best], [values[epochs.index(best)]], "o", color=colour,
                            markersize=5)
    loss_ax.set_title("loss")
    loss_ax.set_ylabel("loss")
    metric_ax.set_title(" / ".join(metrics_seen) or "(no metric)")
    metric_ax.set_ylabel(" / ".join(metrics_seen))
    for ax in (loss_ax, metric_ax):
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    if len(run_dirs) > 1 or labels[0] != RUN_SUFFIX.sub("", run_dirs[0].name):
        loss_ax.legend(fontsize="small", loc="upper right")
    if len(run_dirs) == 1:
        figure.suptitle(run_dirs[0].name, fontsize="medium")
    metric_ax.legend(handles=[Line2D([], [], color="black", linestyle="-", label="train"),
                              Line2D([], [], color="black", linestyle="--", label="validation"),
                              Line2D([], [], color="black", marker="o", linestyle="",
                                     label="best epoch")],
                     fontsize="small", loc="best")
    if evaluation is not None:
        draw_confusion(axes[2], evaluation)
    atomic_write(output, lambda f: figure.savefig(f, format=fmt))
    return output


def draw_confusion(ax, evaluation: dict) -> None:
    import numpy as np

    matrix = np.asarray(evaluation["confusion_matrix"])
    labels = evaluation["labels"]
    image = ax.imshow(matrix, cmap="Blues")
    ax.figure.colorbar(image, ax=ax, shrink=0.8)
    ax.set_xticks(range(len(labels)), labels, rotation=45 if len(labels) > 4 else 0)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (r, c), count in np.ndenumerate(matrix):
        ax.text(c, r, str(count), ha="center", va="center", fontsize="small",
                color="white" if count > threshold else "black")
    data = evaluation.get("data", "")
    ax.set_title(f"confusion matrix: {Path(str(data).split(' (')[0]).name}"
                 f"{' (validation split)' if 'validation split' in str(data) else ''}, "
                 f"{evaluation.get('rows')} rows", fontsize="medium")


# ---- sweeps -------------------------------------------------------------------------------------

def is_sweep_folder(path: Path) -> bool:
    return (Path(path) / "sweep.csv").is_file() and (Path(path) / "sweep.yaml").is_file()


def plot_sweep(folder: Path, output: Path) -> Path:
    """A sweep's metric against each parameter (one panel each, pruned trials marked x), and
    every trial's metric epoch by epoch (pruned ones dashed, ending in an x)."""
    import math

    folder = Path(folder)
    header, rows = read_sweep_csv(folder / "sweep.csv")
    try:
        params = header[header.index("trial") + 1:header.index("status")]
        metric = header[header.index("status") + 1]
    except (ValueError, IndexError):
        raise UserError(f"{folder / 'sweep.csv'}:1: not a sweep table (the header needs trial, "
                        "the parameters, status and the metric, in this order)") from None
    ended = [r for r in rows if _number(r.get(metric)) is not None]
    if not ended:
        raise UserError(f"{folder}: no trial has a {metric} yet")

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    output = Path(output)
    fmt = output.suffix.lstrip(".").lower()
    panels = len(params) + 1
    columns = min(panels, 3)
    lines = math.ceil(panels / columns)
    figure = Figure(figsize=(4.6 * columns, 3.8 * lines), dpi=100, layout="constrained")
    if fmt not in figure.canvas.get_supported_filetypes():
        raise UserError(f"{output}: unknown image format {output.suffix or '(none)'!r}")
    axes = list(figure.subplots(lines, columns, squeeze=False).ravel())
    for ax in axes[panels:]:
        ax.set_visible(False)
    colour = {"pruned": "0.55"}
    for ax, param in zip(axes, params):
        values = [r[param] for r in ended]
        numbers = [_number(v) for v in values]
        if all(n is not None for n in numbers):
            xs = numbers
            if min(xs) > 0 and max(xs) / min(xs) >= 100:
                ax.set_xscale("log")
        else:  # choices that are not numbers: one position each, in the order first seen
            order = list(dict.fromkeys(values))
            xs = [order.index(v) for v in values]
            ax.set_xticks(range(len(order)), [format_value(v) for v in order],
                          rotation=30 if len(order) > 4 else 0)
        for status, marker in (("pruned", "x"), (None, "o")):
            chosen = [(x, _number(r[metric])) for x, r in zip(xs, ended)
                      if (r["status"] == "pruned") == (status == "pruned")]
            if chosen:
                ax.scatter(*zip(*chosen), marker=marker, color=colour.get(status, "C0"),
                           label="pruned" if status else "trial")
        ax.set_xlabel(param)
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
    curves = axes[len(params)]
    for row in rows:
        if not row.get("run_dir") or "\0" in row["run_dir"]:
            continue
        run_dir = Path(row["run_dir"])
        if not run_dir.is_absolute() and not run_dir.exists():
            run_dir = folder / run_dir.name
        try:
            history = [h for h in read_metrics(run_dir) if _number(h.get(metric)) is not None]
        except UserError as exc:  # one trial's curve is left out; the sweep is still drawn
            for problem in exc.problems:
                print(f"warning: {problem}", file=sys.stderr)
            continue
        if not history:
            continue
        epochs = [h["epoch"] for h in history]
        values = [h[metric] for h in history]
        if row["status"] == "pruned":
            curves.plot(epochs, values, "--", color=colour["pruned"], linewidth=1)
            curves.plot(epochs[-1:], values[-1:], "x", color=colour["pruned"])
        else:
            curves.plot(epochs, values, "-", linewidth=1.2)
    curves.set_xlabel("epoch")
    curves.set_ylabel(metric)
    curves.set_title("trials, epoch by epoch (pruned: dashed, x)", fontsize="medium")
    curves.grid(True, alpha=0.3)
    if any(r["status"] == "pruned" for r in ended):
        axes[0].legend(fontsize="small", loc="best")
    figure.suptitle(f"{folder.name}: {len(ended)} of {len(rows)} trials with a {metric}",
                    fontsize="medium")
    atomic_write(output, lambda f: figure.savefig(f, format=fmt))
    return output


def read_sweep_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """sweep.csv's header and rows, each row as long as the header; a UserError naming the
    file and line for a file that is not one (a FIFO or device, not UTF-8, not CSV)."""
    import csv
    import io

    with open_regular(path) as raw:
        f = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        reader = csv.reader(f)
        try:
            header = next(reader, None)
            if header is None:
                raise UserError(f"{path}: empty; not a sweep table")
            rows = []
            for cells in reader:
                if not cells:
                    continue
                if len(cells) != len(header):
                    raise UserError(f"{path}:{reader.line_num}: {len(cells)} cells, but the "
                                    f"header has {len(header)} columns")
                rows.append(dict(zip(header, cells)))
        except UnicodeDecodeError as exc:
            raise UserError(f"{path}: not UTF-8 text ({exc.reason})") from None
        except csv.Error as exc:
            raise UserError(f"{path}:{reader.line_num}: not CSV ({exc})") from None
    return header, rows


def _number(text) -> Optional[float]:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if value == value else None
