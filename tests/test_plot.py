"""`nnctl plot`: learning curves of one or several runs, a confusion matrix, ROC and
precision-recall curves, as real images; the figures themselves read through matplotlib."""

import re
import struct
from pathlib import Path

import numpy as np
import pytest
import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from typer.testing import CliRunner

from nnctl import api
from nnctl.cli import app
from nnctl.plots import labels_for, main_metric, panel_rows, runs_figure
from cli_helpers import CLASS_HEADER, classification_rows, tiny_iris_config, write_csv
from fault_helpers import run_nnctl

ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

IRIS = tiny_iris_config(epochs=8)

REGRESSION = f"""\
seed: 0
data: {{train: {ROOT / "datasets" / "regression.csv"}, validation: 0.2, target: progression}}
model:
  layers:
    - {{type: dense, units: 8, activation: relu}}
    - {{type: dense, units: 1}}
loss: mse
optimizer: {{type: adam, lr: 0.05}}
training: {{epochs: 3, batch_size: 32}}
"""

# Three overlapping blobs (labels not in sorted order), judged on a validation file: AUCs
# well short of 1, so a wrong class order or a wrong score column would show.
BLOBS = """\
seed: 0
data: {train: train.csv, validation: val.csv, target: label, features: [x1, x2, x3]}
model:
  layers:
    - {type: dense, units: 8, activation: relu}
    - {type: dense, units: 3, activation: softmax}
loss: categorical_crossentropy
optimizer: {type: adam, lr: 0.01}
training: {epochs: 4, batch_size: 16}
"""

# Two overlapping blobs, one sigmoid unit, a test file.
BINARY = """\
seed: 0
data: {train: train2.csv, validation: 0.2, test: test2.csv, target: label,
       features: [x1, x2, x3]}
model:
  layers:
    - {type: dense, units: 8, activation: relu}
    - {type: dense, units: 1, activation: sigmoid}
loss: binary_crossentropy
optimizer: {type: adam, lr: 0.01}
training: {epochs: 4, batch_size: 16}
"""

# y = 40 x1 - 25 x2 + 300, learnt exactly by one linear unit: the loss falls by decades.
LINEAR = """\
seed: 0
data: {train: linear.csv, validation: 0.2, target: y}
model:
  layers:
    - {type: dense, units: 1}
loss: mse
optimizer: {type: sgd, lr: 0.1}
training: {epochs: 10, batch_size: 16}
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("plot")
    (root / "iris.yaml").write_text(IRIS)
    (root / "regression.yaml").write_text(REGRESSION)
    made = [api.train(root / "iris.yaml", [f"optimizer.lr={lr}", "name=iris"], root / "runs").path
            for lr in (0.05, 0.01, 0.002)]
    regression = api.train(root / "regression.yaml", runs_dir=root / "runs").path
    return made, regression


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A three-class run with a validation file and a binary run with a test file."""
    root = tmp_path_factory.mktemp("roc")
    write_csv(root / "train.csv", CLASS_HEADER, classification_rows(150, seed=0, noise=1.5))
    write_csv(root / "val.csv", CLASS_HEADER, classification_rows(90, seed=1, noise=1.5))
    two = ["no", "yes"]
    write_csv(root / "train2.csv", CLASS_HEADER, classification_rows(160, 2, two, noise=2.0))
    write_csv(root / "test2.csv", CLASS_HEADER, classification_rows(80, 3, two, noise=2.0))
    (root / "blobs.yaml").write_text(BLOBS)
    (root / "binary.yaml").write_text(BINARY)
    blobs = api.train(root / "blobs.yaml", runs_dir=root / "runs").path
    binary = api.train(root / "binary.yaml", runs_dir=root / "runs").path
    return root, blobs, binary


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, after checking that it is a PNG."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    assert data[-8:-4] == b"IEND"
    return struct.unpack(">II", data[16:24])


def plot(*args):
    return CliRunner().invoke(app, ["plot", *map(str, args)])


def panels(figure) -> list:
    """The figure's panels, the colour bar of a confusion matrix left out."""
    return [ax for ax in figure.axes if ax.get_label() != "<colorbar>"]


def titles(figure) -> list[str]:
    return [ax.get_title() for ax in panels(figure)]


def legend_texts(legend) -> list[str]:
    return [text.get_text() for text in legend.get_texts()]


def scores_in_legend(ax, kind: str) -> dict[str, float]:
    """{curve name: value} from legend entries like `setosa (AUC 0.987)`."""
    found = {}
    for text in legend_texts(ax.get_legend()):
        match = re.fullmatch(rf"(.+) \({kind} ([0-9.]+)\)", text)
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


# ---- learning curves ----------------------------------------------------------------------

def test_one_run(runs, tmp_path):
    iris, _ = runs
    out = tmp_path / "one.png"
    result = plot(iris[0], "-o", out)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    assert png_size(out) == (1100, 420)  # two panels of 5.5 x 4.2 inches at 100 dpi
    assert 20_000 < out.stat().st_size < 500_000

    figure = runs_figure([iris[0]])
    assert titles(figure) == ["train and validation loss", "train and validation accuracy"]
    assert [(ax.get_xlabel(), ax.get_ylabel()) for ax in figure.axes] == [
        ("epoch", "loss"), ("epoch", "accuracy")]
    assert figure.get_suptitle() == iris[0].name
    key, = figure.legends  # the line styles' key; one run needs no legend of runs
    assert legend_texts(key) == ["train", "validation", "best epoch"]


def test_several_runs_overlaid(runs, tmp_path):
    iris, regression = runs
    out = tmp_path / "several.png"
    result = plot(*iris, "-o", out)
    assert result.exit_code == 0, result.output
    assert png_size(out) == (1100, 445)  # and one line of legend below the panels

    figure = runs_figure(iris)
    key, below = figure.legends
    assert legend_texts(below) == ["lr=0.05", "lr=0.01", "lr=0.002"]
    # Laid out, the legend of runs sits below every panel (tick labels included) and the key
    # of line styles above them (titles included): neither covers a curve.
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    boxes = [ax.get_tightbbox(renderer) for ax in figure.axes]
    assert below.get_window_extent(renderer).y1 <= min(box.y0 for box in boxes) + 1
    assert key.get_window_extent(renderer).y0 >= max(box.y1 for box in boxes) - 1
    assert figure.get_suptitle() == "3 runs of iris"
    for ax in figure.axes:
        assert ax.get_legend() is None
        assert len(ax.get_lines()) == 3 * 2 + 3  # train and validation per run, best epochs

    # A classifier and a regression: the loss, then one panel per main metric, each axis
    # saying one thing.
    mixed = tmp_path / "mixed.png"
    assert plot(iris[0], regression, "-o", mixed).exit_code == 0
    assert png_size(mixed) == (1500, 445)
    figure = runs_figure([iris[0], regression])
    assert [ax.get_ylabel() for ax in figure.axes] == ["loss", "accuracy", "mae"]


def test_labels_name_the_settings_that_differ(runs, tmp_path):
    """adam against sgd is `optimizer=...`, not a list of adam's betas against null; a
    schedule that only one run has reads as its type; identical configs get their names."""
    iris, _ = runs
    root = tmp_path
    (root / "iris.yaml").write_text(IRIS)
    sgd = api.train(root / "iris.yaml", ["optimizer.type=sgd", "optimizer.lr=0.1", "name=iris"],
                    root / "runs").path
    wide = api.train(root / "iris.yaml", ["model.layers.0.units=64", "name=iris",
                                          "training.lr_schedule={type: step, step_size: 3}"],
                     root / "runs").path
    assert labels_for([iris[1], sgd, wide]) == [
        "units=8, optimizer=adam, lr=0.01, lr_schedule=null",
        "units=8, optimizer=sgd, lr=0.1, lr_schedule=null",
        "units=64, optimizer=adam, lr=0.01, lr_schedule=step",
    ]
    again = api.train(root / "iris.yaml", ["optimizer.lr=0.01", "name=iris"], root / "runs").path
    assert labels_for([iris[1], again]) == [iris[1].name, again.name]
    assert labels_for([iris[0], iris[1], again]) == ["lr=0.05", iris[1].name, again.name]


def copy_config(run_dir: Path, folder: Path, changes: dict) -> Path:
    """A folder whose config.yaml is the run's, with dotted keys set (None deletes)."""
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    for key, value in changes.items():
        *parents, last = key.split(".")
        node = config
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is None and not isinstance(node, list):
            node.pop(last, None)
        else:
            node[int(last) if last.isdigit() else last] = value
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def test_labels_stay_short(runs, tmp_path):
    base = runs[0][1]
    # Seven settings differ: four are shown, and how many more there are.
    many = {"seed": 1, "optimizer.lr": 0.1, "optimizer.beta1": 0.8, "training.epochs": 20,
            "training.batch_size": 8, "data.scale": "minmax", "model.layers.0.activation": "tanh"}
    a = copy_config(base, tmp_path / "a", {})
    b = copy_config(base, tmp_path / "b", many)
    assert labels_for([a, b]) == ["seed=0, scale=standard, activation=relu, lr=0.01, +3 more",
                                  "seed=1, scale=minmax, activation=tanh, lr=0.1, +3 more"]
    # Five are all shown ("+1 more" would save nothing); two layers' units keep their index.
    five = {"seed": 1, "optimizer.lr": 0.1, "model.layers.0.units": 16,
            "model.layers.1.units": 4, "training.epochs": 20}
    c = copy_config(base, tmp_path / "c", five)
    assert labels_for([a, c]) == [
        "seed=0, layers.0.units=8, layers.1.units=3, lr=0.01, epochs=8",
        "seed=1, layers.0.units=16, layers.1.units=4, lr=0.1, epochs=20"]
    # Long values are cut, and labels that would still be long show fewer settings.
    long = {"data.train": "/data/a_very_long_file_name_for_the_iris_data.csv",
            "data.target": "species_of_the_flower_in_latin", "seed": 1, "optimizer.lr": 0.1}
    d = copy_config(base, tmp_path / "d", long)
    assert labels_for([a, d]) == ["seed=0, train=iris.csv, +2 more",
                                  "seed=1, train=a_very_long_file_name_f…, +2 more"]
    # Among many differences, those that tell the runs apart are shown: the two copies of
    # `a` that differ only in lr, beside a run on other data, are told apart by lr.
    other = {"data.train": "/data/wine.csv", "data.target": ["y1", "y2"], "seed": 1,
             "model.layers.0.units": 32, "training.epochs": 20, "optimizer.type": "sgd"}
    f = copy_config(base, tmp_path / "f", other)
    g = copy_config(base, tmp_path / "g", {"optimizer.lr": 0.1})
    labels = labels_for([a, g, f])
    assert labels[:2] == ["seed=0, train=iris.csv, target=species, lr=0.01, +3 more",
                          "seed=0, train=iris.csv, target=species, lr=0.1, +3 more"]
    assert re.fullmatch(r"seed=1, train=wine\.csv, target=\S*y1\S*y2\S*, lr=0\.01, \+3 more",
                        labels[2]), labels[2]
    # A key that one config has as null and another lacks (an older nnctl) is no difference.
    e = copy_config(base, tmp_path / "e", {"model.layers.0.init": None, "optimizer.lr": 0.1})
    assert labels_for([a, e]) == ["lr=0.01", "lr=0.1"]


def test_a_loss_that_falls_by_decades_is_drawn_on_a_log_axis(runs, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (200, 2))
    write_csv(tmp_path / "linear.csv", ["x1", "x2", "y"],
              [[f"{a:.6f}", f"{b:.6f}", f"{40 * a - 25 * b + 300:.6f}"] for a, b in x])
    (tmp_path / "linear.yaml").write_text(LINEAR)
    linear = api.train(tmp_path / "linear.yaml", runs_dir=tmp_path / "runs").path
    losses = [row[k] for row in api.load(linear).metrics.to_dict("records")
              for k in ("train_loss", "val_loss")]
    assert max(losses) / min(losses) > 1e6  # the premise: many decades

    loss_ax = runs_figure([linear]).axes[0]
    assert loss_ax.get_yscale() == "log"
    assert runs_figure(runs[0]).axes[0].get_yscale() == "linear"  # iris: within one decade


def test_panel_rows():
    assert [panel_rows(n) for n in range(1, 7)] == [[1], [2], [3], [2, 2], [2, 3], [3, 3]]


# ---- confusion matrix, ROC and precision-recall ----------------------------------------------

def test_confusion_matrix_of_a_classification_run(runs, tmp_path):
    iris, regression = runs
    out = tmp_path / "confusion.png"
    result = plot(iris[1], "--confusion", "-o", out)
    assert result.exit_code == 0, result.output
    assert png_size(out) == (1500, 420)  # a third panel
    figure = runs_figure([iris[1]], confusion=True)
    rows = api.load(iris[1]).evaluate()["rows"]
    assert titles(figure)[2] == f"confusion matrix, validation split, {rows} rows"

    result = plot(regression, "--confusion", "-o", tmp_path / "r.png")
    assert result.exit_code == 2
    assert "--confusion needs a classification run" in result.output
    result = plot(*iris[:2], "--confusion", "-o", tmp_path / "two.png")
    assert result.exit_code == 2 and "give one run directory (got 2)" in result.output
    assert not (tmp_path / "r.png").exists() and not (tmp_path / "two.png").exists()


def test_roc_of_a_multiclass_run_one_curve_per_class(scored, tmp_path):
    """On the validation file by default; each class's AUC and average precision are
    scikit-learn's, one-vs-rest, on that file."""
    metrics = pytest.importorskip("sklearn.metrics")
    import pandas as pd

    root, blobs, _ = scored
    out = tmp_path / "roc.png"
    result = run_nnctl("plot", blobs, "--roc", "-o", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out)
    assert png_size(out) == (1100, 840)  # loss and accuracy, then ROC and precision-recall

    figure = runs_figure([blobs], roc=True)
    assert len(figure.axes) == 4
    assert titles(figure) == ["train and validation loss", "train and validation accuracy",
                              "ROC, validation file val.csv, 90 rows",
                              "precision-recall, validation file val.csv, 90 rows"]
    roc_ax, pr_ax = figure.axes[2:]
    assert (roc_ax.get_xlabel(), roc_ax.get_ylabel()) == ("false positive rate",
                                                          "true positive rate")
    assert (pr_ax.get_xlabel(), pr_ax.get_ylabel()) == ("recall", "precision")
    assert len(roc_ax.get_lines()) == 3 + 1  # one per class and the chance diagonal
    assert legend_texts(roc_ax.get_legend())[-1] == "chance"

    run = api.load(blobs)
    truth = pd.read_csv(root / "val.csv")["label"].to_numpy()
    probabilities = run.predict_proba(root / "val.csv")
    aucs, aps = scores_in_legend(roc_ax, "AUC"), scores_in_legend(pr_ax, "AP")
    assert list(aucs) == list(aps) == run.classes == ["ant", "moth", "zebra"]
    for i, label in enumerate(run.classes):
        expected = metrics.roc_auc_score(truth == label, probabilities[:, i])
        assert aucs[label] == pytest.approx(expected, abs=5e-4)
        assert 0.6 < expected < 0.99  # the curves are not all perfect: the check means something
        expected = metrics.average_precision_score(truth == label, probabilities[:, i])
        assert aps[label] == pytest.approx(expected, abs=5e-4)

    # --data: another file, named in the titles
    figure = runs_figure([blobs], roc=True, data=root / "train.csv")
    assert titles(figure)[2] == "ROC, train.csv, 150 rows"
    truth = pd.read_csv(root / "train.csv")["label"].to_numpy()
    probabilities = run.predict_proba(root / "train.csv")
    aucs = scores_in_legend(figure.axes[2], "AUC")
    assert aucs["moth"] == pytest.approx(metrics.roc_auc_score(truth == "moth",
                                                               probabilities[:, 1]), abs=5e-4)


def test_roc_of_a_binary_run_on_its_test_file(scored, tmp_path):
    metrics = pytest.importorskip("sklearn.metrics")
    import pandas as pd

    root, _, binary = scored
    figure = runs_figure([binary], roc=True, confusion=True)
    assert titles(figure) == ["train and validation loss", "train and validation accuracy",
                              "confusion matrix, test file test2.csv, 80 rows",
                              "ROC, test file test2.csv, 80 rows",
                              "precision-recall, test file test2.csv, 80 rows"]
    roc_ax, pr_ax = panels(figure)[3:]
    assert len(roc_ax.get_lines()) == 1 + 1  # the positive class, and chance
    truth = pd.read_csv(root / "test2.csv")["label"].to_numpy() == "yes"
    p = api.load(binary).predict_proba(root / "test2.csv")[:, 1]
    expected = metrics.roc_auc_score(truth, p)
    assert 0.6 < expected < 0.99
    assert scores_in_legend(roc_ax, "AUC") == {"label=yes": pytest.approx(expected, abs=5e-4)}
    assert scores_in_legend(pr_ax, "AP") == {
        "label=yes": pytest.approx(metrics.average_precision_score(truth, p), abs=5e-4)}

    out = tmp_path / "binary.png"
    result = run_nnctl("plot", binary, "--roc", "--confusion", "-o", out)
    assert result.returncode == 0, result.stderr
    assert png_size(out) == (1500, 840)  # two panels above, three below: no empty slot


def test_roc_refuses_what_it_cannot_draw(runs, scored, tmp_path):
    iris, regression = runs
    out = tmp_path / "r.png"
    result = run_nnctl("plot", regression, "--roc", "-o", out)
    assert result.returncode == 2, result.stderr
    assert "--roc needs a classification run" in result.stderr
    assert "regression of 'progression'" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()

    result = plot(*iris[:2], "--roc", "-o", out)
    assert result.exit_code == 2 and "--roc draws one run's curves" in result.output
    assert "give one run directory (got 2)" in result.output
    result = plot(iris[0], "--data", scored[0] / "val.csv", "-o", out)
    assert result.exit_code == 2 and "add one of them" in result.output
    result = plot(iris[0], "--roc", "--data", tmp_path / "missing.csv", "-o", out)
    assert result.exit_code == 2 and "missing.csv" in result.output
    assert not out.exists()


def test_bad_inputs_are_user_errors(runs, tmp_path):
    iris, _ = runs
    result = plot(iris[0], "-o", tmp_path / "curves.txt")
    assert result.exit_code == 2 and "unknown image format '.txt'" in result.output
    result = plot(tmp_path, "-o", tmp_path / "x.png")
    assert result.exit_code == 2 and "not a run directory" in result.output
    svg = tmp_path / "curves.svg"
    assert plot(iris[0], "-o", svg).exit_code == 0
    assert svg.read_text().lstrip().startswith("<?xml")


def test_main_metric():
    assert main_metric(["epoch", "train_loss", "val_loss", "train_accuracy"]) == "accuracy"
    assert main_metric(["epoch", "train_loss", "val_loss", "train_mae", "train_r2"]) == "mae"
    assert main_metric(["epoch", "train_loss"]) is None
