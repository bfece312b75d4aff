"""Checkpoints by training time (training.checkpoint.every_seconds): metrics.csv gets a row
every epoch, checkpoints only every so many seconds, when training stops, on a signal and on
divergence. A kill -9 between two saves loses only what a resume replays exactly: the resumed
run ends bit-identical to one never interrupted, each epoch recorded once in metrics.csv, and
`best` holds the best epoch whatever the saving schedule."""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import numpy as np
import pytest

from fault_helpers import (
    assert_clean_failure, cli, dropout_config, make_regression_csv, metrics_rows,
    npz_arrays, only_run, popen_nnctl, run_nnctl, summary, temp_files, write_yaml,
)
from nnctl.checkpoint import load_checkpoint, read_json
from nnctl.runs import RunRecorder, read_metrics

EPOCHS = 150


def long_config(folder: Path, every_seconds: float, **training) -> Path:
    """dropout_config (12 batches per epoch, dropout, shuffling, Adam, cosine schedule) for
    many epochs, saving every `every_seconds`."""
    return dropout_config(folder, name="timed", epochs=EPOCHS,
                          checkpoint={"keep_last": 2, "every_seconds": every_seconds},
                          **training)


def train(config, runs_dir, *extra):
    return cli("train", config, "--runs-dir", runs_dir, "--quiet", *extra)


def reference_run(config, folder: Path) -> Path:
    result = train(config, folder)
    assert result.exit_code == 0, result.output
    return only_run(folder)


def assert_same_ending(run: Path, reference: Path) -> None:
    """best and last hold the same arrays, bit for bit; metrics.csv the same cells (but the
    wall-clock seconds), each epoch once; the summaries agree on the best epoch."""
    for stem in ("best", "last"):
        ours = npz_arrays(run / "checkpoints" / f"{stem}.npz")
        theirs = npz_arrays(reference / "checkpoints" / f"{stem}.npz")
        assert sorted(ours) == sorted(theirs), stem
        for name in theirs:
            assert np.array_equal(ours[name], theirs[name]), (stem, name)
            assert ours[name].dtype == theirs[name].dtype, (stem, name)
    rows = metrics_rows(run)
    assert rows == metrics_rows(reference)
    epochs = [int(row["epoch"]) for row in rows]
    assert epochs == list(range(1, len(epochs) + 1)), "an epoch is missing or recorded twice"
    a, b = summary(run), summary(reference)
    assert a["status"] == b["status"] and a["epochs_run"] == b["epochs_run"]
    assert a["best_epoch"] == b["best_epoch"] == read_json(run / "checkpoints" / "best.json")["epoch"]


def rows_written(run: Path) -> int:
    try:
        return len(read_metrics(run, whole_lines=True))
    except Exception:  # noqa: BLE001 - being rewritten by a resume: look again
        return 0


def last_epoch(run: Path):
    try:
        return json.loads((run / "checkpoints" / "last.json").read_text())["epoch"]
    except (FileNotFoundError, ValueError):
        return None


def watch(proc, condition, timeout: float = 60.0) -> None:
    """Poll the run until `condition()` holds; the process must still be training then."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, ("the run ended first", proc.communicate())
        assert time.monotonic() < deadline, "timed out watching the run"
        time.sleep(0.001)


def kill_9(proc) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def interrupt(proc) -> None:
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)


def stop_when(proc, runs: Path, condition, stop=kill_9) -> Path:
    """Watch the one run being written below `runs` until `condition(run)` holds, then `stop`
    its process; return the run."""
    def found() -> Optional[Path]:
        files = list(runs.glob("*/metrics.csv"))
        return files[0].parent if files else None

    try:
        watch(proc, lambda: found() is not None and condition(found()))
        stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    return found()


# ---- kill -9 between saves, then resume --------------------------------------------------------

def test_kill_9_before_the_first_save_resumes_from_the_start(tmp_path):
    """every_seconds large: no checkpoint yet, only metrics rows. The resume starts over, cuts
    the rows it trains again, and ends as the run never interrupted."""
    config = long_config(tmp_path, every_seconds=1000)
    reference = reference_run(config, tmp_path / "reference")

    victim = popen_nnctl("train", config, "--runs-dir", tmp_path / "runs", "--quiet")
    run = stop_when(victim, tmp_path / "runs", lambda run: rows_written(run) >= 5)
    assert last_epoch(run) is None and not (run / "checkpoints" / "last.npz").exists()
    assert rows_written(run) >= 5 and not (run / "summary.json").exists()

    resumed = run_nnctl("train", "--resume", run, "--quiet", timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_ending(run, reference)
    assert temp_files(run) == []


@pytest.mark.parametrize("early", [False, True], ids=["plain", "early-stopping"])
def test_kill_9_between_two_saves_resumes_bit_identical(tmp_path, early):
    """The first save comes from a SIGINT; the resumed process (every_seconds large, so no
    timed save follows) appends rows past that checkpoint and is killed with SIGKILL. A second
    resume cuts those rows, trains them again, and ends bit-identical to the uninterrupted
    run: best, last and metrics.csv, with early stopping's restore_best (whose best epoch,
    judged with min_delta, differs from the checkpoint's) among them."""
    training = ({"early_stopping": {"patience": 8, "min_delta": 0.002, "restore_best": True}}
                if early else {})
    config = long_config(tmp_path, every_seconds=1000, **training)
    reference = reference_run(config, tmp_path / "reference")
    stopped = summary(reference)["epochs_run"]
    if early:
        assert summary(reference)["status"] == "early_stopped" and stopped >= 20, stopped
        state = read_json(reference / "checkpoints" / "last.json")["trainer"]
        assert state["early_stopping"]["best_epoch"] != state["best_epoch"], state

    first = popen_nnctl("train", config, "--runs-dir", tmp_path / "runs", "--quiet")
    run = stop_when(first, tmp_path / "runs", lambda run: rows_written(run) >= stopped // 4,
                    stop=interrupt)
    assert first.returncode == 130
    saved = last_epoch(run)
    assert saved is not None and saved < stopped - 4

    second = popen_nnctl("train", "--resume", run, "--quiet")
    stop_when(second, tmp_path / "runs", lambda run: rows_written(run) >= saved + 4)
    assert last_epoch(run) == saved, "no save was due: last is the signal's"
    assert rows_written(run) > saved + 3, "rows past the checkpoint are on disk"
    for stem in ("last", "best"):
        load_checkpoint(run / "checkpoints", stem)

    resumed = run_nnctl("train", "--resume", run, "--quiet", timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_ending(run, reference)
    assert "resumed from epoch" in (run / "train.log").read_text()


def test_kill_9_between_timed_saves_resumes_bit_identical(tmp_path):
    """Saves every 0.2 s of training; killed once rows are recorded past the newest save."""
    config = long_config(tmp_path, every_seconds=0.2)
    reference = reference_run(config, tmp_path / "reference")
    victim = popen_nnctl("train", config, "--runs-dir", tmp_path / "runs", "--quiet")

    def past_a_save(run: Path) -> bool:
        saved = last_epoch(run)
        return saved is not None and rows_written(run) >= saved + 2

    run = stop_when(victim, tmp_path / "runs", past_a_save)
    saved = last_epoch(run)
    assert rows_written(run) > saved, "killed between two saves"
    resumed = run_nnctl("train", "--resume", run, "--quiet", timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_ending(run, reference)


# ---- best, whatever the schedule --------------------------------------------------------------

def test_the_saving_schedule_changes_no_checkpoint_and_best_is_the_best_epoch(tmp_path):
    """Every epoch, every few milliseconds, or only at the end: best and last hold the same
    arrays, and best is the epoch of the lowest val_loss in metrics.csv (the first of equals),
    which summary.json names and `nnctl eval --checkpoint best` evaluates."""
    runs = {}
    for every in (0, 0.01, 1000):
        config = dropout_config(tmp_path / f"s{every}", name="sched", epochs=40,
                                checkpoint={"keep_last": 2, "every_seconds": every})
        runs[every] = reference_run(config, tmp_path / f"s{every}" / "runs")
    for every in (0.01, 1000):
        assert_same_ending(runs[every], runs[0])
    run = runs[1000]
    rows = read_metrics(run)
    losses = [row["val_loss"] for row in rows]
    best_epoch = rows[losses.index(min(losses))]["epoch"]
    assert best_epoch < 40, "the config should find its best epoch before the end"
    assert read_json(run / "checkpoints" / "best.json")["epoch"] == best_epoch
    assert summary(run)["best_epoch"] == best_epoch
    result = cli("eval", run, "--checkpoint", "best", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["loss"] == pytest.approx(min(losses), rel=1e-5)
    # only the end was saved: the final epoch is the one numbered checkpoint
    assert sorted(p.name for p in (run / "checkpoints").glob("epoch-*.npz")) == ["epoch-40.npz"]


def test_a_signal_saves_best_and_last_and_the_summary_names_the_saved_best(tmp_path,
                                                                          monkeypatch):
    """No timed save came (every_seconds large): SIGINT writes the best epoch kept in memory
    and the state it stopped in; summary.json names the epoch best.json holds."""
    from fault_helpers import interrupt_at

    config = long_config(tmp_path, every_seconds=1000)
    reporters = interrupt_at(monkeypatch, 30, 5)
    result = train(config, tmp_path / "runs")
    assert reporters[0].sent == 1 and result.exit_code == 130, result.output
    run = only_run(tmp_path / "runs")
    meta = load_checkpoint(run / "checkpoints", "last")[1]
    assert (meta["epoch"], meta["batch"]) == (29, 5)
    best = load_checkpoint(run / "checkpoints", "best")[1]
    assert summary(run)["best_epoch"] == best["epoch"] == meta["trainer"]["best_epoch"] >= 1
    assert summary(run)["status"] == "interrupted"
    assert len(read_metrics(run)) == 29


def test_divergence_saves_the_last_good_epoch(tmp_path):
    """No timed save before the divergence: the epoch before it is written as last, with its
    best, and no non-finite weights anywhere."""
    csv_path = make_regression_csv(tmp_path / "linear.csv", rows=64)
    config = write_yaml(tmp_path / "diverge.yaml", {
        "name": "diverge", "seed": 0,
        "data": {"train": str(csv_path), "validation": 0.25, "target": "y"},
        "model": {"layers": [{"type": "dense", "units": 4, "activation": "linear"},
                             {"type": "dense", "units": 1}]},
        "loss": "mse", "optimizer": {"type": "sgd", "lr": 3.0, "momentum": 0.5},
        "training": {"epochs": 200, "batch_size": 16,
                     "checkpoint": {"keep_last": 2, "every_seconds": 1000}}})
    result = train(config, tmp_path / "runs")
    assert result.exit_code == 3, result.output
    run = only_run(tmp_path / "runs")
    rows = read_metrics(run)
    last = load_checkpoint(run / "checkpoints", "last")[1]
    assert rows and last["epoch"] == rows[-1]["epoch"] and last["batch"] == 0
    best = load_checkpoint(run / "checkpoints", "best")[1]
    assert summary(run)["best_epoch"] == best["epoch"]
    for path in (run / "checkpoints").glob("*.npz"):
        for name, array in npz_arrays(path).items():
            assert np.isfinite(array).all() if array.dtype.kind == "f" else True, (path, name)


# ---- the order of writes ----------------------------------------------------------------------

class EpochClock:
    """The time module for nnctl.runs, with a monotonic clock that advances one second at each
    reading: a run reads it once an epoch (and once after each save), so `every_seconds`
    becomes a number of epochs."""

    def __init__(self):
        self.seconds = itertools.count()

    def monotonic(self) -> float:
        return float(next(self.seconds))

    def __getattr__(self, name):
        return getattr(time, name)


def test_best_and_early_stoppings_epoch_are_written_before_last(tmp_path, monkeypatch):
    """At a save, the checkpoints `last` names (best, early stopping's best epoch) are on
    disk before `last` itself, so a kill between the writes never leaves a `last` whose best
    epochs are gone."""
    import nnctl.runs

    written = []  # (how, stem, epoch)
    real_save, real_link = nnctl.runs.save_checkpoint, nnctl.runs.link_checkpoint

    def save(folder, stem, arrays, meta):
        written.append(("save", stem, meta["epoch"]))
        real_save(folder, stem, arrays, meta)

    def link(folder, source, stem):
        written.append(("link", stem, None))
        real_link(folder, source, stem)

    monkeypatch.setattr(nnctl.runs, "save_checkpoint", save)
    monkeypatch.setattr(nnctl.runs, "link_checkpoint", link)
    # The saves come every few epochs whatever the machine's speed (with 0.05 s of real time,
    # a fast machine saved 3 times in 60 epochs, none of them with an early best to keep);
    # here 12 saves, 3 of which keep early stopping's best epoch and 5 an earlier best.
    monkeypatch.setattr(nnctl.runs, "time", EpochClock())
    config = dropout_config(tmp_path, name="order", epochs=60,
                            early_stopping={"patience": 100, "min_delta": 0.05},
                            checkpoint={"keep_last": 0, "every_seconds": 5})
    assert train(config, tmp_path / "runs").exit_code == 0
    saves, current = [], []
    for entry in written:
        current.append(entry)
        if entry[1] == "last":
            saves.append(current)
            current = []
    assert len(saves) >= 2 and current == []
    own_best = own_early = 0
    for entries in saves:
        stems = [stem for _, stem, _ in entries]
        assert stems.count("last") == 1
        last_epoch_saved = next(e for how, stem, e in reversed(entries) if how == "save")
        for how, stem, epoch in entries[:-1]:
            if how == "save" and epoch < last_epoch_saved:  # an earlier epoch's own file
                own_best += stem == "best"
                own_early += stem.startswith("epoch-")
    assert own_best, ("no save wrote an earlier best before last", saves)
    assert own_early, ("early stopping's best epoch never kept as epoch-N", saves)
    run = only_run(tmp_path / "runs")
    # keep_last 0: when training is over no numbered checkpoint is kept
    assert list((run / "checkpoints").glob("epoch-*")) == []


# ---- metrics.csv appended ---------------------------------------------------------------------

def test_metrics_rows_are_appended_under_one_header(tmp_path):
    recorder = RunRecorder(tmp_path, {})
    rows = [{"epoch": 1, "train_loss": 0.5, "lr": 0.01, "seconds": 0.25},
            {"epoch": 2, "train_loss": 0.123456789123, "lr": 0.01, "seconds": 0.5}]
    for row in rows:
        recorder.append_metrics(row)
    assert (tmp_path / "metrics.csv").read_text() == (
        "epoch,train_loss,lr,seconds\n1,0.5,0.01,0.25\n2,0.12345679,0.01,0.5\n")
    assert [r["epoch"] for r in read_metrics(tmp_path)] == [1, 2]


def test_resume_cuts_rows_past_the_checkpoint_and_a_line_cut_short(tmp_path):
    text = "epoch,train_loss,seconds\n1,0.5,0.1\n2,0.4,0.1\n3,0.3,0.1\n4,0.2"
    (tmp_path / "metrics.csv").write_text(text)
    with pytest.raises(Exception, match="metrics.csv:5"):
        read_metrics(tmp_path)  # a reader that is not told the file grows sees the cut line
    assert [r["epoch"] for r in read_metrics(tmp_path, whole_lines=True)] == [1, 2, 3]
    kept = RunRecorder(tmp_path, {}).cut_metrics(2)
    assert [r["epoch"] for r in kept] == [1, 2]
    assert (tmp_path / "metrics.csv").read_text() == \
        "epoch,train_loss,seconds\n1,0.5,0.1\n2,0.4,0.1\n"
    RunRecorder(tmp_path, {}).append_metrics({"epoch": 3, "train_loss": 0.25, "seconds": 0.1})
    assert (tmp_path / "metrics.csv").read_text().endswith("2,0.4,0.1\n3,0.25,0.1\n")


@pytest.mark.parametrize("tail", ["", "4", "4,0.2", "4,0.2,", "4,0.2,0.6", "4,0.2,0.6,",
                                  "4,0.2,0.6,0"])
def test_the_sweep_follower_reports_only_whole_rows(tmp_path, tail):
    """A sweep reads a trial's metrics.csv while the trial appends to it: a row cut short
    (the write in progress) is never reported with a wrong value; while the trial runs its
    newest whole row is reported, and when it ends every epoch has been, once."""
    from nnctl.sweep.runner import Follower

    header_and_rows = ("epoch,train_loss,val_loss,seconds\n1,0.5,0.9,0.1\n2,0.4,0.8,0.1\n"
                       "3,0.3,0.7,0.1\n")
    (tmp_path / "metrics.csv").write_text(header_and_rows + tail)
    truth = {1: 0.9, 2: 0.8, 3: 0.7, 4: 0.6}
    reported = []
    trial = SimpleNamespace(report=lambda value, step: reported.append((step, value)),
                            should_prune=lambda: False, set_user_attr=lambda *a: None)
    outcome = SimpleNamespace(run_dir=str(tmp_path), trial=SimpleNamespace(params={}))
    sweep = SimpleNamespace(epochs=10, metric="val_loss",
                            spec=SimpleNamespace(early_terminate=None))
    follower = Follower(trial, outcome, tmp_path, sweep)
    follower.follow()
    assert reported == [(3, 0.7)]
    (tmp_path / "metrics.csv").write_text(header_and_rows + "4,0.2,0.6,0.1\n")
    follower.follow()
    assert reported == [(3, 0.7), (4, 0.6)]
    follower.follow(prune=False)  # the trial has ended
    assert sorted(reported) == sorted(truth.items()) and len(reported) == len(truth)


def test_the_sweep_follower_asks_to_stop_a_trial_once(tmp_path):
    """The pruner's rejection is told once: a second SIGTERM could reach the trial after its
    handler is gone (as it saves and exits) and kill it before its summary."""
    from nnctl.sweep.runner import Follower

    header = "epoch,train_loss,val_loss,seconds\n"
    (tmp_path / "metrics.csv").write_text(header + "1,0.5,0.9,0.1\n")
    trial = SimpleNamespace(report=lambda value, step: None, should_prune=lambda: True,
                            set_user_attr=lambda *a: None)
    outcome = SimpleNamespace(run_dir=str(tmp_path), trial=SimpleNamespace(params={}))
    sweep = SimpleNamespace(epochs=10, metric="val_loss",
                            spec=SimpleNamespace(early_terminate=SimpleNamespace()))
    follower = Follower(trial, outcome, tmp_path, sweep)
    assert follower.follow() is True and follower.pruned
    (tmp_path / "metrics.csv").write_text(header + "1,0.5,0.9,0.1\n2,0.4,0.8,0.1\n")
    assert follower.follow() is False and follower.pruned  # a row written while it stops


# ---- the setting --------------------------------------------------------------------------------

def test_every_seconds_defaults_to_10_and_must_be_a_finite_number_of_0_or_more(tmp_path):
    config = dropout_config(tmp_path, epochs=2)
    shown = cli("validate", config)
    assert shown.exit_code == 0, shown.output
    assert "every_seconds: 10" in shown.stdout
    for bad in ("-1", ".inf", ".nan", "soon"):
        err = assert_clean_failure(
            cli("validate", config, "--set", f"training.checkpoint.every_seconds={bad}"), 2)
        assert "training.checkpoint.every_seconds" in err, err
    assert not (tmp_path / "runs").exists()
