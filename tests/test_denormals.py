"""nnctl.nn.denormals: denormal numbers flushed to zero while nnctl computes, on the calling
thread and on the threads that share its work, and the caller's own arithmetic left as it was."""

import contextlib
import threading

import numpy as np
import pandas as pd
import pytest

import nnctl
from nnctl.nn import denormals, threads
from cli_helpers import npz, write_csv

pytestmark = pytest.mark.skipif(not denormals.supported(),
                                reason="denormals are flushed on x86-64 Linux and macOS")

TINY = np.finfo(np.float32).tiny  # the smallest normal float32, 1.2e-38


def halved() -> float:
    """The smallest normal float32 halved: a denormal number, or 0 when they are flushed."""
    return float(np.array([TINY], np.float32)[0] * np.float32(0.5))


def read_as_zero() -> bool:
    """Whether a denormal input reads as zero (the second switch, denormals-are-zero)."""
    denormal = np.frombuffer(np.uint32(1).tobytes(), np.float32)  # 1.4e-45
    return bool(denormal[0] + np.float32(0) == 0)


def test_flushed_sets_the_calling_thread_for_the_block_and_restores_it():
    assert halved() == pytest.approx(TINY / 2) and not read_as_zero()
    with denormals.flushed():
        assert halved() == 0.0
        assert read_as_zero()
        with denormals.flushed():  # nested: still flushed after the inner block
            pass
        assert halved() == 0.0
    assert halved() == pytest.approx(TINY / 2) and not read_as_zero()


def test_threads_sharing_the_work_take_the_callers_setting_with_each_job():
    before = threads.count()
    threads.configure(2)
    try:
        def job() -> list:
            """Two pieces that wait for each other, so that the helper computes one of them."""
            both = threading.Barrier(2, timeout=10)
            seen = []

            def piece():
                both.wait()
                seen.append((threading.get_ident(), halved()))
            threads.run([piece, piece])
            assert len({ident for ident, _ in seen}) == 2
            return [value for _, value in seen]

        assert job() == [pytest.approx(TINY / 2)] * 2  # the helper starts outside the block
        with denormals.flushed():
            assert job() == [0.0, 0.0]
        assert job() == [pytest.approx(TINY / 2)] * 2  # and goes back with the caller
    finally:
        threads.configure(before)


def test_training_keeps_adams_decaying_average_out_of_the_denormal_range(tmp_path, monkeypatch):
    """One weight gets a gradient in the first step only (its input is 0 in every other row),
    so Adam's average for it decays by 0.9 a step. IEEE arithmetic takes it on down through
    the denormal range (about 1e-40 after 852 more steps); with denormals flushed, the step
    that would make it denormal is 0 and it stays a normal number near 1e-37, which moves the
    weight by less than 1e-28. The weights come out the same."""
    rows = [[1.0, 0.1, 5.0]] + [[0.0, x, 2.0 * x] for x in np.linspace(-1, 1, 852)]
    write_csv(tmp_path / "spike.csv", ["spike", "x", "y"], rows)
    config = {"seed": 0,
              "data": {"train": str(tmp_path / "spike.csv"), "target": "y",
                       "validation": None, "scale": "none"},
              "model": {"layers": [{"type": "dense", "units": 1}]},
              "loss": "mse", "optimizer": {"type": "adam", "lr": 0.001},
              "training": {"epochs": 1, "batch_size": 1, "shuffle": False}}

    def train(runs: str) -> dict:
        run = nnctl.train(config, runs_dir=tmp_path / runs)
        assert run.status == "completed"
        return npz(run.path / "checkpoints" / "last.npz")

    flushed = train("flushed")
    assert halved() == pytest.approx(TINY / 2)  # the caller's arithmetic is its own again
    nnctl.load(next((tmp_path / "flushed").iterdir())).predict(tmp_path / "spike.csv")
    assert halved() == pytest.approx(TINY / 2)  # after predicting too
    monkeypatch.setattr(denormals, "flushed", contextlib.nullcontext)
    ieee = train("ieee")  # the same run without the flush

    assert 0 < -ieee["optimizer.exp_avg.0"][0, 0] < TINY
    assert TINY <= -flushed["optimizer.exp_avg.0"][0, 0] < 1e-36
    assert np.array_equal(flushed["layers.0.W"], ieee["layers.0.W"])


def test_predicting_flushes_a_probability_below_the_normal_range(tmp_path, monkeypatch):
    """A row placed so that the model's two logits differ by 95: the far class's probability,
    exp(-95) = 5.5e-42, is a denormal float32 in IEEE arithmetic (the flush switched off)
    and 0 in nnctl's prediction; reading the row stays IEEE either way."""
    rows = [[x, -x, "a" if x > 0 else "b"] for x in np.linspace(-1, 1, 40)]
    write_csv(tmp_path / "two.csv", ["u", "v", "label"], rows)
    config = {"seed": 0, "dtype": "float32",
              "data": {"train": str(tmp_path / "two.csv"), "target": "label",
                       "validation": None, "scale": "none"},
              "model": {"layers": [{"type": "dense", "units": 2, "activation": "softmax"}]},
              "loss": "categorical_crossentropy", "optimizer": {"type": "adam", "lr": 0.1},
              "training": {"epochs": 5, "batch_size": 8}}
    run = nnctl.load(nnctl.train(config, runs_dir=tmp_path / "runs").path)
    weights = run.model.parameters()
    w = (weights["layers.0.W"].value[:, 0] - weights["layers.0.W"].value[:, 1]).astype(float)
    b = float(weights["layers.0.b"].value[0] - weights["layers.0.b"].value[1])
    row = w * (95 - b) / (w @ w)  # logit of "a" minus logit of "b": 95
    frame = pd.DataFrame([row], columns=["u", "v"])

    assert run.predict_proba(frame)[0, 1] == 0.0
    monkeypatch.setattr(denormals, "flushed", contextlib.nullcontext)
    assert 0 < run.predict_proba(frame)[0, 1] < TINY
