"""Learning curves of run directories (and a confusion matrix, ROC and precision-recall
curves of one run), drawn headless with matplotlib.

One panel for the loss and one per main metric (the first metric after the loss in
metrics.csv: accuracy, or MAE for regression); train solid, validation dashed, one colour per
run, a dot on each run's best epoch. Several runs are labelled by the settings that differ
between them, in a legend below the panels. Panels are laid out by how many there are: up to
three in a row, never an empty slot.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .checkpoint import atomic_write
from .errors import UserError
from .files import open_regular
from .listing import format_value, leaf_names, read_config
from .runs import open_run, read_metrics, read_summary

RUN_SUFFIX = re.compile(r"-\d{8}-\d{6}-[0-9a-f]{4}$")  # <name>-<YYYYmmdd-HHMMSS>-<4 hex>
NOT_SETTINGS = {"name"}  # differs between runs by construction; not a setting
LABEL_SETTINGS = 4       # settings shown per label when more differ ("+N more" for the rest)
LABEL_CHARS = 64         # ... and fewer, if a label would grow past this many characters
VALUE_CHARS = 24         # a longer value (a list, a path) is cut with an ellipsis
LOG_SPAN = 100.0         # a loss axis is logarithmic when max / min exceeds this (two decades)
PANEL_WIDTH = {1: 5.5, 2: 5.5, 3: 5.0}  # inches per panel, by how many share a row
PANEL_HEIGHT = 4.2
LEGEND_LINE = 0.25       # inches the legend of runs adds per line of entries


def main_metric(columns: list[str]) -> Optional[str]:
    """The first metric after the loss: `accuracy` from train_accuracy, `mae`, ..."""
    for column in columns:
        if column.startswith("train_") and column != "train_loss":
            return column.removeprefix("train_")
    return None


# ---- labels of overlaid runs ------------------------------------------------------------------

def settings(config: dict[str, Any]) -> dict[str, Any]:
    """A flattened config as settings to compare: a section chosen by its `type` reads as that
    type (`optimizer: adam`, `training.lr_schedule: step`), a list of values is one setting
    (`data.target: [y1, y2]`), and a list of sections adds its length (`model.layers: 3`),
    so that settings which only come with another choice (adam's beta1, a third layer's
    units) can be told from settings the user changed."""
    view: dict[str, Any] = {}
    whole: set[str] = set()  # lists of values given whole, not only by their items
    for key, value in config.items():
        if key in NOT_SETTINGS:
            continue
        if isinstance(value, list) and not any(isinstance(v, (dict, list)) for v in value):
            view[key] = value
            whole.add(key)
            continue
        if isinstance(value, (dict, list)) and value:
            continue  # a section given whole: its parts are here too
        *parents, last = key.split(".")
        if parents and last.isdigit():  # an item of a list of values
            prefix = ".".join(parents)
            if prefix not in whole:
                items = view.get(prefix)
                view[prefix] = (items if isinstance(items, list) else []) + [value]
            continue
        for i, part in enumerate(parents[1:], 1):
            if part.isdigit():  # in the i-th section of a list of sections
                prefix = ".".join(parents[:i])
                count = view.get(prefix)
                view[prefix] = max(count, int(part) + 1) if type(count) is int else int(part) + 1
        view[".".join(parents) if parents and last == "type" else key] = value
    return view


def differing_settings(views: list[dict[str, Any]]) -> list[str]:
    """Settings whose values differ between runs, in config order. A setting that some runs
    lack and the others share one value of (null, or adam's beta1 beside an sgd run) is left
    out: its absence means the same default, or another setting that differs explains it."""
    if len(views) < 2:
        return []
    keys: dict[str, None] = {}
    for view in views:
        keys.update(dict.fromkeys(view))
    return [key for key in keys
            if len({json.dumps(v[key], sort_keys=True, default=str) for v in views if key in v})
            > 1]


def setting_text(value: Any) -> str:
    """A setting's value in a legend: 4 significant digits, a path's file name, at most
    VALUE_CHARS characters."""
    text = format_value(value)
    if isinstance(value, str) and "/" in value:
        text = Path(value).name
    return text if len(text) <= VALUE_CHARS else text[:VALUE_CHARS - 1] + "…"


def labels_for(run_dirs: list[Path]) -> list[str]:
    """Each run's label: the settings that differ between the runs (`lr=0.01, units=64`),
    at most LABEL_SETTINGS of them and about LABEL_CHARS characters, `+N more` past that.
    A run that this does not tell apart from another (the same config) is labelled by its
    run directory's name."""
    run_dirs = [Path(p) for p in run_dirs]
    views = [settings(read_config(p)) for p in run_dirs]
    keys = differing_settings(views)
    short = leaf_names(keys)
    texts = [{k: f"{short[k]}={setting_text(v[k])}" for k in keys if k in v} for v in views]

    def label(text: dict[str, str], shown: list[str]) -> str:
        parts = [text[k] for k in keys if k in shown and k in text]
        more = sum(k in text for k in keys if k not in shown)
        return ", ".join(parts + ([f"+{more} more"] if more else []))

    # All of up to LABEL_SETTINGS + 1, or few enough that "+N more" hides two or more ("+1
    # more" would say no less than the setting itself).
    limits = [len(keys)] if len(keys) <= LABEL_SETTINGS + 1 else []
    limits += range(min(LABEL_SETTINGS, len(keys) - 2), 0, -1)
    for limit in limits:
        shown = telling(keys, texts, limit)
        if all(len(label(t, shown)) <= LABEL_CHARS for t in texts):
            break
    labels = [label(t, shown) for t in texts]
    return [p.name if (not text or labels.count(text) > 1) else text
            for p, text in zip(run_dirs, labels)]


def telling(keys: list[str], texts: list[dict[str, str]], limit: int) -> list[str]:
    """Up to `limit` of the keys: first those that tell the runs apart (each time the one that
    splits them into the most groups, the earlier on a tie), then the rest in order."""
    def groups(chosen: list[str]) -> int:
        return len({tuple(text.get(k) for k in chosen) for text in texts})

    chosen: list[str] = []
    while len(chosen) < limit and groups(chosen) < groups(keys):
        chosen.append(max((k for k in keys if k not in chosen),
                          key=lambda k: groups(chosen + [k])))
    chosen += [k for k in keys if k not in chosen][:limit - len(chosen)]
    return chosen


# ---- the eval data of one run -------------------------------------------------------------

@dataclass
class Scores:
    """One run's eval data, as the ROC and precision-recall panels need it: for each curve
    (a class, one-vs-rest, or a 0/1 target) whether each row belongs to it and its score."""

    names: list[str]
    truth: Any   # (rows, curves) bool
    scores: Any  # (rows, curves) float64
    data: str    # which data: "validation split", "test file x.csv", ...


def eval_data(run, data: Optional[Path]):
    """The rows `nnctl eval` uses for this run (DATA, else the test file, else the validation
    file or split) as a Dataset encoded for its model, and how to name them in a title."""
    from .api import eval_dataset

    dataset, _, _ = eval_dataset(run.config, run.preprocessing, data)
    return dataset, eval_data_name(run, data)


def eval_scores(run, data: Optional[Path]) -> Scores:
    """Scores of the curves on the run's eval data; a UserError for a regression run."""
    import numpy as np

    prep = run.preprocessing
    if prep.task == "regression":
        raise UserError(f"{run.path}: --roc needs a classification run (this one is a "
                        f"regression of {', '.join(map(repr, prep.targets))}: it has no "
                        f"classes to rank)")
    dataset, source = eval_data(run, data)
    out = run.model.predict(dataset.x).astype(np.float64)
    y = np.asarray(dataset.y)
    if prep.task == "classification":
        names = [str(c) for c in prep.classes]
        truth = y.reshape(-1)[:, None].astype(np.int64) == np.arange(len(names))[None, :]
    elif prep.classes:  # one sigmoid unit for a two-class column: the curve of the second
        names, out = [f"{prep.targets[0]}={prep.classes[1]}"], out[:, :1]
        truth = y[:, :1] > 0.5
    else:  # several 0/1 targets
        names, truth = list(prep.targets), y > 0.5
    return Scores(names, truth, out, f"{source}, {len(dataset)} rows")


# ---- drawing -------------------------------------------------------------------------------

def plot_runs(run_dirs: list[Path], output: Path, confusion: bool = False, roc: bool = False,
              data: Optional[Path] = None) -> Path:
    """Draw the runs' learning curves (and, for one classification run, its confusion matrix
    and ROC and precision-recall curves on its eval data) into `output`; the format follows
    the file's extension."""
    output = Path(output)
    fmt = image_format(output)
    figure = runs_figure(run_dirs, confusion=confusion, roc=roc, data=data)
    atomic_write(output, lambda f: figure.savefig(f, format=fmt))
    return output


def image_format(output: Path) -> str:
    """The format of an image file named `output`, from its extension; a UserError naming the
    formats there are."""
    from matplotlib.backend_bases import FigureCanvasBase

    fmt = Path(output).suffix.lstrip(".").lower()
    supported = FigureCanvasBase.get_supported_filetypes()
    if fmt not in supported:
        raise UserError(f"{output}: unknown image format {Path(output).suffix or '(none)'!r}; "
                        f"use one of: {', '.join('.' + f for f in sorted(supported))}")
    return fmt


def runs_figure(run_dirs: list[Path], confusion: bool = False, roc: bool = False,
                data: Optional[Path] = None):
    """The matplotlib Figure `plot_runs` saves."""
    if not run_dirs:
        raise UserError("give at least one run directory")
    for flag, wanted in (("--confusion", confusion), ("--roc", roc)):
        if wanted and len(run_dirs) != 1:
            raise UserError(f"{flag} draws one run's curves on its eval data; give one run "
                            f"directory (got {len(run_dirs)})")
    if data is not None and not (confusion or roc):
        raise UserError("--data names the eval data of --roc or --confusion; add one of them")
    run_dirs = [open_run(p) for p in run_dirs]
    histories = []
    for path in run_dirs:
        history = read_metrics(path)
        if not history:
            raise UserError(f"{path}: no metrics.csv yet (has the run finished an epoch?)")
        histories.append(history)
    evaluation = scores = None
    if confusion or roc:
        from .api import load

        run = load(run_dirs[0])
        if roc:
            scores = eval_scores(run, data)
        if confusion:
            evaluation = run.evaluate(data)
            if "confusion_matrix" not in evaluation:
                raise UserError(f"{run_dirs[0]}: --confusion needs a classification run "
                                "(this one has no classes)")
            evaluation["data"] = eval_data_name(run, data)

    import matplotlib

    matplotlib.use("Agg")  # headless: no display needed, and no pyplot state either
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    metrics: list[str] = []
    for history in histories:
        metric = main_metric(list(history[0]))
        if metric and metric not in metrics:
            metrics.append(metric)
    panels = ["loss", *metrics] + (["confusion"] if confusion else []) \
        + (["roc", "pr"] if roc else [])
    rows = panel_rows(len(panels))
    labels = labels_for(run_dirs)
    legend_lines = 0
    if len(run_dirs) > 1:
        columns = legend_columns(labels, max(rows) * PANEL_WIDTH[max(rows)])
        legend_lines = -(-len(labels) // columns)
    figure = Figure(figsize=(max(rows) * PANEL_WIDTH[max(rows)],
                             len(rows) * PANEL_HEIGHT + legend_lines * LEGEND_LINE),
                    dpi=100, layout="constrained")
    axes = dict(zip(panels, grid(figure, rows)))

    handles, splits = draw_curves(axes, run_dirs, histories, labels)
    for name in ("loss", *metrics):
        ax = axes[name]
        ax.set_title(f"{'train and validation' if 'val' in splits else 'train'} {name}",
                     fontsize="medium")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
        if log_scale(ax):  # a loss (or an error) falling by decades
            ax.set_yscale("log")

    key = [Line2D([], [], color="black", linestyle="-", label="train")]
    if "val" in splits:
        key += [Line2D([], [], color="black", linestyle="--", label="validation"),
                Line2D([], [], color="black", marker="o", linestyle="", label="best epoch")]
    figure.legend(handles=key, loc="outside upper right", ncols=len(key), fontsize="small",
                  frameon=False)
    if len(run_dirs) > 1:
        figure.legend(handles=handles, loc="outside lower center", ncols=columns,
                      fontsize="small", frameon=False)
        names = {RUN_SUFFIX.sub("", p.name) for p in run_dirs}
        title = f"{len(run_dirs)} runs" + (f" of {names.pop()}" if len(names) == 1 else "")
    else:
        title = run_dirs[0].name
    figure.suptitle(title, fontsize="medium", x=0.01, ha="left")
    if evaluation is not None:
        draw_confusion(axes["confusion"], evaluation)
    if scores is not None:
        draw_roc(axes["roc"], scores)
        draw_precision_recall(axes["pr"], scores)
    return figure


def draw_curves(axes: dict, run_dirs: list[Path], histories: list[list[dict]],
                labels: list[str]) -> tuple[list, set[str]]:
    """Each run's loss and main metric, epoch by epoch, into the panels named by them; returns
    a legend handle per run and the splits drawn (train, val)."""
    import matplotlib
    from matplotlib.lines import Line2D

    colours = matplotlib.colormaps["tab10"].colors
    splits: set[str] = set()
    handles = []
    for i, (path, history, label) in enumerate(zip(run_dirs, histories, labels)):
        colour = colours[i % len(colours)]
        epochs = [row["epoch"] for row in history]
        marker = "o" if len(history) == 1 else None
        best = (read_summary(path) or {}).get("best_epoch")
        for name in ("loss", main_metric(list(history[0]))):
            for split, style in (("train", "-"), ("val", "--")):
                column = f"{split}_{name}"
                if name is None or column not in history[0]:
                    continue
                splits.add(split)
                values = [row[column] for row in history]
                axes[name].plot(epochs, values, style, color=colour, marker=marker,
                                linewidth=1.5)
                if split == "val" and best in epochs:
                    axes[name].plot([best], [values[epochs.index(best)]], "o", color=colour,
                                    markersize=5)
        handles.append(Line2D([], [], color=colour, linewidth=2.5, label=label))
    return handles, splits


def panel_rows(panels: int) -> list[int]:
    """How many panels each row holds: up to three in a row, rows as even as can be
    (4 -> 2 + 2, 5 -> 2 + 3)."""
    lines = -(-panels // 3)
    return [panels // lines + (i >= lines - panels % lines if panels % lines else 0)
            for i in range(lines)]


def grid(figure, rows: list[int]) -> list:
    """One axes per panel, rows of the given lengths, each row filling the figure's width."""
    import math

    width = math.lcm(*rows)
    spec = figure.add_gridspec(len(rows), width)
    axes = []
    for r, count in enumerate(rows):
        span = width // count
        axes += [figure.add_subplot(spec[r, c * span:(c + 1) * span]) for c in range(count)]
    return axes


def legend_columns(labels: list[str], width: float) -> int:
    """Columns of the legend of runs that fit `width` inches (an entry: a line, then its
    label in small type, about 0.075 inches a character)."""
    entry = 0.6 + 0.075 * max(len(label) for label in labels)
    return max(1, min(len(labels), int(width // entry)))


def log_scale(ax) -> bool:
    """True when the curves drawn on `ax` are all positive and span more than LOG_SPAN."""
    import numpy as np

    values = [np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines()]
    values = np.concatenate(values) if values else np.array([])
    values = values[np.isfinite(values)]
    return bool(values.size) and values.min() > 0 and values.max() / values.min() > LOG_SPAN


def eval_data_name(run, data: Optional[Path]) -> str:
    config = run.config
    if data is not None:
        return Path(data).name
    if config.data.test:
        return f"test file {Path(config.data.test).name}"
    if isinstance(config.data.validation, str):
        return f"validation file {Path(config.data.validation).name}"
    return "validation split"


def draw_confusion(ax, evaluation: dict) -> None:
    import numpy as np

    matrix = np.asarray(evaluation["confusion_matrix"])
    labels = evaluation["labels"]
    image = ax.imshow(matrix, cmap="Blues")
    ax.figure.colorbar(image, ax=ax, shrink=0.8)
    ax.set_xticks(range(len(labels)), labels, rotation=45 if len(labels) > 4 else 0)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (r, c), count in np.ndenumerate(matrix):
        ax.text(c, r, str(count), ha="center", va="center", fontsize="small",
                color="white" if count > threshold else "black")
    ax.set_title(f"confusion matrix, {evaluation['data']}, {evaluation.get('rows')} rows",
                 fontsize="medium")


def draw_roc(ax, scores: Scores) -> None:
    """One ROC curve per class (one-vs-rest) or target, its AUC in the legend; the chance
    diagonal."""
    from .metrics import roc_auc, roc_curve

    for i, name in enumerate(scores.names):
        truth, score = scores.truth[:, i], scores.scores[:, i]
        if truth.all() or not truth.any():  # one kind of row only: no curve to draw
            ax.plot([], [], label=f"{name} (no {'negative' if truth.all() else 'positive'} rows)")
            continue
        fpr, tpr, _ = roc_curve(truth, score)
        ax.plot(fpr, tpr, linewidth=1.5, label=f"{name} (AUC {roc_auc(truth, score):.3f})")
    ax.plot([0, 1], [0, 1], ":", color="0.5", linewidth=1, label="chance")
    ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), aspect="equal",
           xlabel="false positive rate", ylabel="true positive rate")
    ax.set_title(f"ROC, {scores.data}", fontsize="medium")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="lower right")


def draw_precision_recall(ax, scores: Scores) -> None:
    """One precision-recall curve per class or target, its average precision in the legend;
    chance is each one's share of the rows (dotted, in its colour)."""
    from .metrics import average_precision, precision_recall_curve

    for i, name in enumerate(scores.names):
        truth, score = scores.truth[:, i], scores.scores[:, i]
        if not truth.any():
            ax.plot([], [], label=f"{name} (no positive rows)")
            continue
        precision, recall, _ = precision_recall_curve(truth, score)
        line, = ax.plot(recall, precision, linewidth=1.5, drawstyle="steps-post",
                        label=f"{name} (AP {average_precision(truth, score):.3f})")
        ax.axhline(truth.mean(), linestyle=":", color=line.get_color(), linewidth=1)
    ax.plot([], [], ":", color="0.5", linewidth=1, label="chance (each one's share of rows)")
    ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), aspect="equal", xlabel="recall",
           ylabel="precision")
    ax.set_title(f"precision-recall, {scores.data}", fontsize="medium")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="lower left")


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
