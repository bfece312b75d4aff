"""`nnctl plot`: learning curves of one or several runs, and a confusion matrix, as real PNGs."""

import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nnctl import api
from nnctl.cli import app
from nnctl.plots import labels_for, main_metric
from cli_helpers import tiny_iris_config

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


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("plot")
    (root / "iris.yaml").write_text(IRIS)
    (root / "regression.yaml").write_text(REGRESSION)
    made = [api.train(root / "iris.yaml", [f"optimizer.lr={lr}", "name=iris"], root / "runs").path
            for lr in (0.05, 0.01, 0.002)]
    regression = api.train(root / "regression.yaml", runs_dir=root / "runs").path
    return made, regression


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, after checking that it is a PNG."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    assert data[-8:-4] == b"IEND"
    return struct.unpack(">II", data[16:24])


def plot(*args):
    return CliRunner().invoke(app, ["plot", *map(str, args)])


def test_one_run(runs, tmp_path):
    iris, _ = runs
    out = tmp_path / "one.png"
    result = plot(iris[0], "-o", out)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    assert png_size(out) == (1100, 420)  # 11 x 4.2 inches at 100 dpi
    assert 20_000 < out.stat().st_size < 500_000


def test_several_runs_overlaid(runs, tmp_path):
    iris, regression = runs
    out = tmp_path / "several.png"
    result = plot(*iris, regression, "-o", out)
    assert result.exit_code == 0, result.output
    assert png_size(out) == (1100, 420)
    single = tmp_path / "single.png"
    plot(iris[0], "-o", single)
    assert out.stat().st_size > single.stat().st_size  # more lines drawn
    labels = labels_for(iris)
    assert labels == ["iris (lr=0.05)", "iris (lr=0.01)", "iris (lr=0.002)"]


def test_confusion_matrix_of_a_classification_run(runs, tmp_path):
    iris, regression = runs
    out = tmp_path / "confusion.png"
    result = plot(iris[1], "--confusion", "-o", out)
    assert result.exit_code == 0, result.output
    assert png_size(out) == (1500, 420)  # a third panel

    result = plot(regression, "--confusion", "-o", tmp_path / "r.png")
    assert result.exit_code == 2
    assert "--confusion needs a classification run" in result.output
    result = plot(*iris[:2], "--confusion", "-o", tmp_path / "two.png")
    assert result.exit_code == 2 and "give one run directory (got 2)" in result.output
    assert not (tmp_path / "r.png").exists() and not (tmp_path / "two.png").exists()


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
