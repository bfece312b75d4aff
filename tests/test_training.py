"""Training behaviour seen through the run directory: reproducibility, early stopping,
learning-rate schedules (the lr column of metrics.csv), --init-weights, divergence."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import (
    assert_user_error, classification_config, column, eval_json, invoke, make_problem, metrics,
    npz, run_dirs, summary, train, weights, write_config, write_csv,
)


def without_seconds(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in metrics(run_dir)[1]]


def checkpoint_arrays(run_dir: Path, stem: str) -> dict[str, np.ndarray]:
    """Every array of a checkpoint but the embedded JSON copy of its description, which
    records timings (the epoch's seconds)."""
    return {k: v for k, v in npz(run_dir / "checkpoints" / f"{stem}.npz").items()
            if k != "meta.json"}


# ---- reproducibility -------------------------------------------------------------------------

def test_same_seed_same_run_different_seed_different_run(tmp_path):
    config = make_problem(tmp_path, epochs=4, shuffle=True)  # with a dropout layer
    runs = tmp_path / "runs"
    _, a = train(config, runs, "--seed", "3")
    _, b = train(config, runs, "--seed", "3")
    _, c = train(config, runs, "--seed", "4")

    assert metrics(a)[0] == metrics(b)[0]
    assert without_seconds(a) == without_seconds(b)
    assert column(a, "seconds") != [0.0] * 4
    for stem in ("last", "best", "epoch-4"):
        arrays_a, arrays_b = checkpoint_arrays(a, stem), checkpoint_arrays(b, stem)
        assert sorted(arrays_a) == sorted(arrays_b)
        assert any(k.startswith("rng.") for k in arrays_a)
        for name in arrays_a:
            assert arrays_a[name].dtype == arrays_b[name].dtype
            assert arrays_a[name].tobytes() == arrays_b[name].tobytes(), (stem, name)

    wa, wc = weights(a), weights(c)
    assert wa.keys() == wc.keys()
    assert all(not np.array_equal(wa[k], wc[k]) for k in wa)
    assert without_seconds(a) != without_seconds(c)


def test_dropout_and_shuffling_are_on_and_seeded(tmp_path):
    """The seed, not luck, makes runs equal: turning dropout or shuffling off changes the
    result, so the test above exercised both."""
    config = make_problem(tmp_path, epochs=2)
    runs = tmp_path / "runs"
    _, base = train(config, runs)
    _, no_dropout = train(config, runs, "--set", "model.layers.1.rate=0.0")
    _, no_shuffle = train(config, runs, "--set", "training.shuffle=false")
    w = weights(base)
    assert not np.array_equal(w["layers.0.W"], weights(no_dropout)["layers.0.W"])
    assert not np.array_equal(w["layers.0.W"], weights(no_shuffle)["layers.0.W"])


# ---- early stopping --------------------------------------------------------------------------

def noise_problem(folder: Path, **training) -> Path:
    """Random labels: the validation loss gets worse as soon as the network memorises."""
    rng = np.random.default_rng(5)
    rows = [[i, *(f"{v:.4f}" for v in rng.standard_normal(3)), ["ant", "moth", "zebra"][k]]
            for i, k in enumerate(rng.integers(0, 3, 150))]
    write_csv(folder / "data.csv", ["id", "x1", "x2", "x3", "label"], rows)
    config = classification_config(**training)
    config["data"]["validation"] = 0.3
    config["model"]["layers"][0]["units"] = 64
    config["optimizer"]["lr"] = 0.05
    return write_config(folder / "noise.yaml", config)


def test_early_stopping_with_restore_best(tmp_path):
    patience = 3
    config = noise_problem(tmp_path, epochs=200,
                           early_stopping={"patience": patience, "restore_best": True})
    _, run_dir = train(config, tmp_path / "runs")
    info = summary(run_dir)
    rows = metrics(run_dir)[1]
    val = [float(r["val_loss"]) for r in rows]
    assert info["status"] == "early_stopped"
    assert info["epochs_run"] == len(rows) < 200
    best = int(np.argmin(val)) + 1  # the first epoch with the lowest val_loss
    assert info["best_epoch"] == best
    # it stops `patience` epochs after the last improvement
    assert info["epochs_run"] == best + patience
    assert all(v >= val[best - 1] for v in val[best:])

    best_eval = eval_json(run_dir, "--checkpoint", "best")
    assert best_eval["loss"] == pytest.approx(val[best - 1], rel=1e-5)
    assert best_eval["loss"] == pytest.approx(info["best"]["val_loss"], rel=1e-6)
    last_eval = eval_json(run_dir, "--checkpoint", "last")
    assert last_eval["loss"] == pytest.approx(val[-1], rel=1e-5)
    assert json.loads((run_dir / "checkpoints" / "best.json").read_text())["epoch"] == best
    assert "early_stopped after" in (run_dir / "train.log").read_text()


@pytest.mark.parametrize("patience,epochs_run", [(1, 2), (3, 4), (0, 2)])
def test_early_stopping_min_delta_stops_after_patience_plus_one(tmp_path, patience, epochs_run):
    """Epoch 1 sets the best; no later epoch beats it by min_delta; training stops once
    `patience` epochs went without improvement (as Keras: patience 0 still needs one bad
    epoch to see, so it stops after epoch 2)."""
    config = make_problem(tmp_path, epochs=50,
                          early_stopping={"patience": patience, "min_delta": 1.0e6})
    _, run_dir = train(config, tmp_path / "runs")
    info = summary(run_dir)
    assert info["status"] == "early_stopped"
    assert info["epochs_run"] == epochs_run
    assert len(metrics(run_dir)[1]) == epochs_run


def test_early_stopping_on_accuracy_maximizes(tmp_path):
    config = make_problem(tmp_path, epochs=40, early_stopping={"monitor": "train_accuracy",
                                                               "patience": 2})
    _, run_dir = train(config, tmp_path / "runs")
    info = summary(run_dir)
    acc = column(run_dir, "train_accuracy")
    # with mode auto, accuracy is maximized: it stops 2 epochs after the best accuracy
    first_best = int(np.argmax(acc)) + 1
    assert first_best > 1  # else minimizing would stop at the same epoch
    assert info["status"] == "early_stopped"
    assert info["epochs_run"] == first_best + 2


def test_best_checkpoint_follows_its_monitor(tmp_path):
    config = noise_problem(tmp_path, epochs=12, checkpoint={"monitor": "val_accuracy"})
    _, run_dir = train(config, tmp_path / "runs")
    acc = column(run_dir, "val_accuracy")
    best = int(np.argmax(acc)) + 1  # accuracy is maximized; the first best epoch wins
    info = summary(run_dir)
    assert info["monitor"] == "val_accuracy" and info["best_epoch"] == best
    assert json.loads((run_dir / "checkpoints" / "best.json").read_text())["epoch"] == best
    assert eval_json(run_dir)["accuracy"] == pytest.approx(acc[best - 1])


# ---- learning-rate schedules -------------------------------------------------------------

def lrs(tmp_path: Path, schedule: dict, epochs: int, lr: float = 0.01, **extra) -> list[float]:
    config = make_problem(tmp_path, epochs=epochs, lr_schedule=schedule, **extra)
    _, run_dir = train(config, tmp_path / "runs", "--set", f"optimizer.lr={lr}")
    return column(run_dir, "lr")


def test_step_schedule(tmp_path):
    got = lrs(tmp_path, {"type": "step", "step_size": 2, "gamma": 0.5}, epochs=7)
    # row k (1-based) holds the lr used during epoch k
    assert got == pytest.approx([0.01 * 0.5 ** ((k - 1) // 2) for k in range(1, 8)], rel=1e-6)
    assert got[:3] == pytest.approx([0.01, 0.01, 0.005])


def test_exponential_schedule(tmp_path):
    got = lrs(tmp_path, {"type": "exponential", "gamma": 0.7}, epochs=5)
    assert got == pytest.approx([0.01 * 0.7 ** (k - 1) for k in range(1, 6)], rel=1e-6)


def test_cosine_schedule(tmp_path):
    epochs, lr0, low = 6, 0.01, 0.001
    got = lrs(tmp_path, {"type": "cosine", "min_lr": low}, epochs=epochs)
    expected = [low + (lr0 - low) * (1 + math.cos(math.pi * (k - 1) / epochs)) / 2
                for k in range(1, epochs + 1)]
    assert got == pytest.approx(expected, rel=1e-6)
    assert got[0] == pytest.approx(lr0)
    assert all(a > b for a, b in zip(got, got[1:]))
    assert got[-1] < low + 0.1 * (lr0 - low)


def test_plateau_schedule_drops_after_patience_plus_one_bad_epochs(tmp_path):
    # nothing improves by more than min_delta, so the lr must drop
    plateau = {"type": "plateau", "factor": 0.5, "patience": 1, "min_delta": 100.0}
    got = lrs(tmp_path, plateau, epochs=8, lr=1e-4)
    l = 1e-4
    assert got == pytest.approx([l, l, l, l / 2, l / 2, l / 4, l / 4, l / 8], rel=1e-6)


def test_plateau_schedule_respects_min_lr_and_patience_zero(tmp_path):
    plateau = {"type": "plateau", "factor": 0.5, "patience": 0, "min_delta": 100.0,
               "min_lr": 0.003}
    got = lrs(tmp_path, plateau, epochs=5)
    assert got == pytest.approx([0.01, 0.01, 0.005, 0.003, 0.003], rel=1e-6)


def test_plateau_schedule_keeps_lr_while_improving(tmp_path):
    plateau = {"type": "plateau", "factor": 0.5, "patience": 0, "monitor": "train_loss"}
    config = make_problem(tmp_path, epochs=5, lr_schedule=plateau)
    _, run_dir = train(config, tmp_path / "runs", "--set", "model.layers.1.rate=0.0")
    loss, lr = column(run_dir, "train_loss"), column(run_dir, "lr")
    assert all(a > b for a, b in zip(loss, loss[1:]))  # easy blobs: steadily better
    assert lr == [0.01] * 5


def test_schedule_sets_the_optimizer_lr(tmp_path):
    """Not only the lr column: with gamma tiny the weights stop moving after epoch 1 (each
    epoch saved: every_seconds 0)."""
    config = make_problem(tmp_path, epochs=3)
    every_epoch = ("--set", "training.checkpoint.every_seconds=0")
    _, scheduled = train(config, tmp_path / "runs", "--set",
                         "training.lr_schedule={type: step, step_size: 1, gamma: 1.0e-9}",
                         "--set", "model.layers.1.rate=0.0", *every_epoch)
    _, constant = train(config, tmp_path / "runs", "--set", "model.layers.1.rate=0.0",
                        *every_epoch)

    def moved(run_dir, a, b):
        wa, wb = weights(run_dir, f"epoch-{a}"), weights(run_dir, f"epoch-{b}")
        return max(float(np.abs(wa[k] - wb[k]).max()) for k in wa)

    assert moved(constant, 2, 3) > 1e-3
    assert moved(scheduled, 2, 3) < 1e-6


# ---- --init-weights -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pretrained")
    config = make_problem(folder, epochs=30)
    _, run_dir = train(config, folder / "runs")
    return config, run_dir


def test_init_weights_starts_from_the_checkpoint(pretrained, tmp_path):
    config, previous = pretrained
    start = previous / "checkpoints" / "last.npz"
    _, fresh = train(config, tmp_path / "runs", "--set", "training.epochs=1")
    _, warm = train(config, tmp_path / "runs", "--set", "training.epochs=1",
                    "--init-weights", start)
    fresh_loss = column(fresh, "train_loss")[0]
    warm_loss = column(warm, "train_loss")[0]
    assert warm_loss < fresh_loss / 2, (warm_loss, fresh_loss)
    assert warm_loss < 2 * column(previous, "train_loss")[-1] + 0.05

    # a plain npz with only the weight arrays works the same
    plain = tmp_path / "plain.npz"
    np.savez(plain, **weights(previous))
    _, warm2 = train(config, tmp_path / "runs", "--set", "training.epochs=1",
                     "--init-weights", plain)
    assert without_seconds(warm2) == without_seconds(warm)
    assert all(np.array_equal(weights(warm)[k], weights(warm2)[k]) for k in weights(warm))


def test_init_weights_with_the_wrong_shape(pretrained, tmp_path):
    config, previous = pretrained
    result = invoke("train", config, "--runs-dir", tmp_path / "runs", "--quiet",
                    "--set", "model.layers.0.units=5",
                    "--init-weights", previous / "checkpoints" / "last.npz")
    lines = assert_user_error(result, "layers.0.W")
    assert len(lines) >= 1 and str(previous / "checkpoints" / "last.npz") in lines[0]
    assert run_dirs(tmp_path / "runs") == []


def test_init_weights_checkpoint_is_verified_against_its_json(pretrained, tmp_path):
    config, previous = pretrained
    for ext in (".npz", ".json"):
        shutil.copy(previous / "checkpoints" / f"last{ext}", tmp_path / f"start{ext}")
    meta = json.loads((tmp_path / "start.json").read_text())
    meta["arrays"]["layers.0.W"]["sha256"] = "0" * 64
    (tmp_path / "start.json").write_text(json.dumps(meta))
    result = invoke("train", config, "--runs-dir", tmp_path / "runs", "--quiet",
                    "--init-weights", tmp_path / "start.npz")
    assert_user_error(result, "'layers.0.W'", "sha256")
    assert run_dirs(tmp_path / "runs") == []


def test_init_weights_file_missing(pretrained, tmp_path):
    config, _ = pretrained
    result = invoke("train", config, "--runs-dir", tmp_path / "runs", "--quiet",
                    "--init-weights", tmp_path / "nope.npz")
    assert_user_error(result, f"{tmp_path / 'nope.npz'}: no such file")
    assert run_dirs(tmp_path / "runs") == []


# ---- divergence ---------------------------------------------------------------------------

def test_divergence_exits_3_and_marks_the_run(tmp_path):
    config = make_problem(tmp_path, kind="regression", epochs=5)
    result = invoke("train", config, "--runs-dir", tmp_path / "runs", "--quiet",
                    "--set", "optimizer={type: sgd, lr: 1.0e+8}")
    assert result.exit_code == 3, (result.stderr, result.exception)
    run_dir = Path(result.stdout.splitlines()[0])
    info = summary(run_dir)
    assert info["status"] == "diverged"
    assert "error: the loss became" in result.stderr or "error: the gradient" in result.stderr
    assert info["epochs_run"] < 5
    for stem in ("last", "best"):
        if (run_dir / "checkpoints" / f"{stem}.npz").exists():
            assert all(np.isfinite(a).all() for a in weights(run_dir, stem).values())
