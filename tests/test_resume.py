"""Resume: `nnctl train --resume RUN_DIR` continues a run in its own directory from its last
checkpoint, and an interrupted run resumed to the end is bit-identical to the same run never
interrupted (dropout masks, shuffling, optimizer state, schedules, metrics included).

Interruptions are made deterministic in-process: a progress reporter (installed by
monkeypatching nnctl.api.choose) sends SIGINT/SIGTERM to this process at a chosen batch,
so the real handler of nnctl.api.stop_on_signals stops the trainer."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

import nnctl.api
from fault_helpers import (
    assert_clean_failure, assert_same_arrays, cli, dropout_config, interrupt_at, metrics_rows,
    npz_arrays, only_run, run_dirs, snapshot, summary, temp_files, write_yaml,
)
from nnctl.checkpoint import load_checkpoint
from nnctl.progress import Silent

import yaml


def silence(monkeypatch):
    monkeypatch.setattr(nnctl.api, "choose", lambda quiet, *a, **k: Silent())


def train(config, runs_dir, *extra):
    return cli("train", config, "--runs-dir", runs_dir, "--quiet", *extra)


def reference_run(config, tmp_path, monkeypatch, *extra):
    silence(monkeypatch)
    result = train(config, tmp_path / "reference", *extra)
    assert result.exit_code == 0, result.output
    return only_run(tmp_path / "reference")


def assert_runs_identical(run, reference):
    """Every array (but the embedded meta.json) of best, last and the epoch checkpoints both
    runs kept, and every metrics cell (but the wall-clock seconds), agree bit for bit. Which
    epochs have checkpoints depends on when saves happened (training time, signals)."""
    ckpt, ref = run / "checkpoints", reference / "checkpoints"
    names = {p.name for p in ref.glob("*.npz")}
    mine = {p.name for p in ckpt.glob("*.npz")}
    assert {"best.npz", "last.npz"} <= names & mine
    for name in sorted(names & mine):
        assert_same_arrays(npz_arrays(ckpt / name), npz_arrays(ref / name))
    for name in sorted(mine - names):
        meta = load_checkpoint(ckpt, name.removesuffix(".npz"))[1]
        assert (f"epoch-{meta['epoch']}.npz", meta["batch"]) == (name, 0)
    assert metrics_rows(run) == metrics_rows(reference)
    a, b = summary(run), summary(reference)
    for key in ("status", "epochs_run", "best_epoch"):
        assert a[key] == b[key], key
    for key in ("best", "final"):
        strip = lambda row: {k: v for k, v in (row or {}).items() if k != "seconds"}
        assert strip(a[key]) == strip(b[key]), key
    la, lb = load_checkpoint(ckpt, "last")[1], load_checkpoint(ref, "last")[1]
    assert (la["epoch"], la["step"], la["batch"]) == (lb["epoch"], lb["step"], lb["batch"])


def interrupted_run(config, runs_dir, monkeypatch, epoch, batch, signum=signal.SIGINT,
                    *extra):
    reporters = interrupt_at(monkeypatch, epoch, batch, signum)
    result = train(config, runs_dir, *extra)
    assert reporters and reporters[0].sent == 1, "the interruption was never triggered"
    expected = {signal.SIGINT: 130, signal.SIGTERM: 143}[signum]
    assert result.exit_code == expected, (result.exit_code, result.output, result.exception)
    run = only_run(runs_dir)
    assert summary(run)["status"] == "interrupted"
    return run


def resume(run, monkeypatch, *extra):
    silence(monkeypatch)
    return cli("train", "--resume", run, "--quiet", *extra)


# ---- bit-identical resume -------------------------------------------------------------------

@pytest.mark.parametrize("where", ["mid-epoch", "epoch-boundary", "first-batch"])
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, monkeypatch, where):
    config = dropout_config(tmp_path)  # 12 batches per epoch, 6 epochs
    reference = reference_run(config, tmp_path, monkeypatch)
    epoch, batch = {"mid-epoch": (3, 5), "epoch-boundary": (3, 12), "first-batch": (1, 1)}[where]
    run = interrupted_run(config, tmp_path / "runs", monkeypatch, epoch, batch)

    arrays, meta = load_checkpoint(run / "checkpoints", "last")
    if where == "epoch-boundary":  # the epoch finished, then training stopped
        assert (meta["epoch"], meta["batch"]) == (epoch, 0)
        assert len(metrics_rows(run)) == epoch
    else:  # a mid-epoch checkpoint, one batch after the signal arrived at the latest
        assert meta["epoch"] == epoch - 1 and meta["batch"] == batch
        assert len(metrics_rows(run)) == epoch - 1
    assert "interrupted by SIGINT" in (run / "train.log").read_text()

    result = resume(run, monkeypatch)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith(run.name)
    assert run_dirs(tmp_path / "runs") == [run], "resume must not create another directory"
    assert summary(run)["status"] == "completed"
    assert_runs_identical(run, reference)
    assert [row["epoch"] for row in metrics_rows(run)] == [str(i) for i in range(1, 7)]
    assert "resumed from epoch" in (run / "train.log").read_text()


def test_sigterm_in_process_exits_143_and_resumes_exactly(tmp_path, monkeypatch):
    config = dropout_config(tmp_path)
    reference = reference_run(config, tmp_path, monkeypatch)
    run = interrupted_run(config, tmp_path / "runs", monkeypatch, 2, 7, signal.SIGTERM)
    assert "interrupted by SIGTERM" in (run / "train.log").read_text()
    assert resume(run, monkeypatch).exit_code == 0
    assert_runs_identical(run, reference)


def test_interrupted_many_times_equals_uninterrupted(tmp_path, monkeypatch):
    """Interrupted three times (mid-epoch, at a boundary, mid-epoch again), with early stopping,
    a plateau schedule and SGD with Nesterov momentum."""
    config = dropout_config(
        tmp_path, name="many", epochs=9,
        lr_schedule={"type": "plateau", "factor": 0.5, "patience": 1},
        early_stopping={"patience": 3, "restore_best": True})
    data = yaml.safe_load(config.read_text())
    data["optimizer"] = {"type": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True}
    write_yaml(config, data)
    reference = reference_run(config, tmp_path, monkeypatch)

    run = interrupted_run(config, tmp_path / "runs", monkeypatch, 2, 4)
    for epoch, batch in [(4, 12), (6, 9)]:
        if summary(run)["status"] != "interrupted":
            break
        reporters = interrupt_at(monkeypatch, epoch, batch)
        result = cli("train", "--resume", run, "--quiet")
        if reporters[0].sent:
            assert result.exit_code == 130, result.output
        else:  # early stopping came first
            assert result.exit_code == 0, result.output
    if summary(run)["status"] == "interrupted":
        assert resume(run, monkeypatch).exit_code == 0
    assert_runs_identical(run, reference)


def test_interrupted_twice_in_the_same_epoch_equals_uninterrupted(tmp_path, monkeypatch):
    """Resumed from a mid-epoch checkpoint and interrupted again before that epoch ends."""
    config = dropout_config(tmp_path)
    reference = reference_run(config, tmp_path, monkeypatch)
    run = interrupted_run(config, tmp_path / "runs", monkeypatch, 3, 3)
    reporters = interrupt_at(monkeypatch, 3, 8)
    assert cli("train", "--resume", run, "--quiet").exit_code == 130
    assert reporters[0].sent == 1
    meta = load_checkpoint(run / "checkpoints", "last")[1]
    assert (meta["epoch"], meta["batch"]) == (2, 8)
    assert resume(run, monkeypatch).exit_code == 0
    assert_runs_identical(run, reference)


def early_config(tmp_path, keep_last):
    """Early stopping (with min_delta, so its best epoch can differ from the checkpoint's
    best) and restore_best."""
    return dropout_config(tmp_path, name=f"early{keep_last}", epochs=40,
                          early_stopping={"patience": 2, "restore_best": True,
                                          "min_delta": 0.05},
                          checkpoint={"keep_last": keep_last})


def test_resume_with_early_stopping_restores_the_same_best_weights(tmp_path, monkeypatch):
    """Early stopping with restore_best after a resume: the best weights of an epoch from
    before the interruption come back from the checkpoints, as in the uninterrupted run."""
    config = early_config(tmp_path, keep_last=3)
    reference = reference_run(config, tmp_path, monkeypatch)
    stopped = summary(reference)
    assert stopped["status"] == "early_stopped", "the config should stop early"
    # interrupted in the last epoch: early stopping's best epoch (two before) is on disk only
    run = interrupted_run(config, tmp_path / "runs", monkeypatch, stopped["epochs_run"], 3)
    assert resume(run, monkeypatch).exit_code == 0
    assert_runs_identical(run, reference)


def test_resume_with_early_stopping_is_exact_even_without_epoch_checkpoints(tmp_path,
                                                                            monkeypatch):
    """keep_last: 0 keeps no epoch checkpoints: the run directory still ends up identical."""
    config = early_config(tmp_path, keep_last=0)
    reference = reference_run(config, tmp_path, monkeypatch)
    stopped = summary(reference)
    assert stopped["status"] == "early_stopped"
    run = interrupted_run(config, tmp_path / "runs", monkeypatch, stopped["epochs_run"], 3)
    assert resume(run, monkeypatch).exit_code == 0
    assert_runs_identical(run, reference)


# ---- what resume continues from -------------------------------------------------------------

def test_resume_of_a_run_without_checkpoint_starts_from_the_beginning(tmp_path, monkeypatch):
    """A process killed before the first checkpoint leaves config.yaml, train.log and an
    empty checkpoints folder; resuming trains from the start, in that directory."""
    config = dropout_config(tmp_path)
    reference = reference_run(config, tmp_path, monkeypatch)

    def killed_before_first_epoch(session, run, started, previous_seconds, **options):
        raise SystemExit(137)

    monkeypatch.setattr(nnctl.api, "_fit", killed_before_first_epoch)
    result = train(config, tmp_path / "runs")
    assert result.exit_code == 137
    monkeypatch.undo()
    run = only_run(tmp_path / "runs")
    assert not any((run / "checkpoints").iterdir())
    assert not (run / "metrics.csv").exists()

    result = resume(run, monkeypatch)
    assert result.exit_code == 0, result.output
    assert_runs_identical(run, reference)


def test_resume_of_a_completed_run_changes_nothing(tmp_path, monkeypatch):
    config = dropout_config(tmp_path, epochs=2)
    run = reference_run(config, tmp_path, monkeypatch)
    before = snapshot(run)
    mtimes = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    result = resume(run, monkeypatch)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith(run.name)
    assert snapshot(run) == before
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == mtimes


def test_resume_of_an_early_stopped_run_changes_nothing(tmp_path, monkeypatch):
    config = dropout_config(tmp_path, name="early", epochs=40,
                            early_stopping={"patience": 1, "min_delta": 10.0})
    run = reference_run(config, tmp_path, monkeypatch)
    assert summary(run)["status"] == "early_stopped"
    before = snapshot(run)
    assert resume(run, monkeypatch).exit_code == 0
    assert snapshot(run) == before


@pytest.mark.parametrize("flags", [
    ["CONFIG"], ["--set", "training.epochs=3"], ["--seed", "3"], ["--run-name", "other"],
    ["--init-weights", "INIT"], ["CONFIG", "--seed", "1", "--set", "optimizer.lr=0.1"],
])
def test_resume_refuses_other_flags(tmp_path, monkeypatch, flags):
    config = dropout_config(tmp_path)
    run = interrupted_run(config, tmp_path / "runs", monkeypatch, 1, 3)
    init = run / "checkpoints" / "last.npz"
    args = [str(config) if f == "CONFIG" else str(init) if f == "INIT" else f for f in flags]
    before = snapshot(tmp_path / "runs")
    silence(monkeypatch)
    result = cli("train", *args, "--resume", run, "--quiet")
    err = assert_clean_failure(result, 2)
    assert "--resume" in err
    named = "CONFIG" if flags[0] == "CONFIG" else flags[0]
    assert named in err
    assert snapshot(tmp_path / "runs") == before, "a refused resume must not touch the run"


def test_resume_of_a_missing_or_foreign_directory_is_a_usage_error(tmp_path):
    err = assert_clean_failure(cli("train", "--resume", tmp_path / "nope"), 2)
    assert "nope" in err
    (tmp_path / "empty").mkdir()
    err = assert_clean_failure(cli("train", "--resume", tmp_path / "empty"), 2)
    assert "config.yaml" in err


def test_resume_cleans_up_temporary_files_left_by_a_killed_process(tmp_path, monkeypatch):
    config = dropout_config(tmp_path)
    reference = reference_run(config, tmp_path, monkeypatch)
    run = interrupted_run(config, tmp_path / "runs", monkeypatch, 2, 6)
    leftovers = [
        run / "checkpoints" / ".last.npz.tmp-4242-a1b2c3",
        run / "checkpoints" / ".last.json.tmp-4242-d4e5f6",
        run / "checkpoints" / ".epoch-2.npz.tmp-99999-000000",
        run / ".metrics.csv.tmp-4242-abcdef",
        run / ".summary.json.tmp-4242-fedcba",
    ]
    for path in leftovers:
        path.write_bytes(os.urandom(100))
    assert resume(run, monkeypatch).exit_code == 0
    for path in leftovers:
        assert not path.exists(), f"{path.name} was not cleaned up"
    assert temp_files(run) == []
    assert_runs_identical(run, reference)


def test_resume_keeps_exactly_the_newest_epoch_checkpoints(tmp_path, monkeypatch):
    """Interrupted at the epoch-9 boundary, resumed to 12 with keep_last 3: epoch-10, -11 and
    -12 remain (numeric order); along the way the newest K epochs are kept and `last`, the
    checkpoint being resumed from, always loads. Saved every epoch (every_seconds: 0)."""
    config = dropout_config(tmp_path, epochs=12, batch_size=64,  # 3 batches per epoch
                            checkpoint={"keep_last": 3, "every_seconds": 0})
    run = interrupted_run(config, tmp_path / "runs", monkeypatch, 9, 3)
    folder = run / "checkpoints"
    assert sorted(folder.glob("epoch-*.npz")) == [folder / f"epoch-{n}.npz" for n in (7, 8, 9)]

    from nnctl.runs import RunRecorder as Run
    seen = []
    original = Run.epoch_end

    def checked_epoch_end(self, trainer, row, is_best):
        # before the save: the checkpoint resumed from is still there and loads
        load_checkpoint(self.checkpoints, "last")
        original(self, trainer, row, is_best)
        numbers = sorted(int(p.stem.split("-")[1]) for p in self.checkpoints.glob("epoch-*.npz"))
        seen.append(numbers)
        assert numbers == list(range(max(trainer.epoch - 2, 1), trainer.epoch + 1))
        load_checkpoint(self.checkpoints, "last")

    monkeypatch.setattr(Run, "epoch_end", checked_epoch_end)
    assert resume(run, monkeypatch).exit_code == 0
    assert seen == [[8, 9, 10], [9, 10, 11], [10, 11, 12]]
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(["best.json", "best.npz", "last.json", "last.npz"]
                           + [f"epoch-{n}.{ext}" for n in (10, 11, 12) for ext in ("npz", "json")])


def test_resume_reports_in_summary_and_appends_wall_time(tmp_path, monkeypatch):
    config = dropout_config(tmp_path)
    run = interrupted_run(config, tmp_path / "runs", monkeypatch, 4, 2)
    first = summary(run)
    assert first["epochs_run"] == 3
    assert resume(run, monkeypatch, "--json").exit_code == 0
    second = summary(run)
    assert second["epochs_run"] == 6
    assert second["wall_seconds"] >= first["wall_seconds"]
    assert json.loads((run / "summary.json").read_text())["run_dir"] == str(run)


def test_resume_refuses_when_the_training_data_changed(tmp_path, monkeypatch):
    config = dropout_config(tmp_path)
    run = interrupted_run(config, tmp_path / "runs", monkeypatch, 2, 4)
    before = snapshot(run)
    data = tmp_path / "blobs.csv"
    lines = data.read_text().splitlines()
    data.write_text("\n".join(lines[:-20]) + "\n")  # fewer rows: other scaler statistics
    err = assert_clean_failure(resume(run, monkeypatch), 2)
    assert "last.json" in err and "no longer matches" in err
    after = snapshot(run)
    assert {k: v for k, v in after.items() if k != "train.log"} == \
        {k: v for k, v in before.items() if k != "train.log"}


def test_a_model_with_embeddings_resumes_bit_identically(tmp_path, monkeypatch):
    """Embedding tables (`inputs.city.E`) and their Adam state are checkpointed and restored
    like the layers' weights, on a real file with text, dates and blanks."""
    csv = Path(__file__).resolve().parent.parent / "datasets" / "customers.csv"
    config = write_yaml(tmp_path / "embed.yaml", {
        "seed": 3,
        "data": {"train": str(csv), "validation": 0.2, "target": "churned",
                 "columns": {"city": {"type": "categorical", "encoding": "embedding",
                                      "dim": 4, "l2": 1e-3}}},
        "model": {"layers": [{"type": "dense", "units": 8, "activation": "relu"},
                             {"type": "dropout", "rate": 0.2},
                             {"type": "dense", "units": 1, "activation": "sigmoid"}]},
        "loss": "binary_crossentropy",
        "optimizer": {"type": "adam", "lr": 0.01},
        "training": {"epochs": 3, "batch_size": 64, "class_weight": "balanced"},
    })
    reference = reference_run(config, tmp_path, monkeypatch)
    assert "inputs.city.E" in npz_arrays(reference / "checkpoints" / "last.npz")
    run = interrupted_run(config, tmp_path / "runs", monkeypatch, 2, 7)
    result = resume(run, monkeypatch)
    assert result.exit_code == 0, result.output
    assert_runs_identical(run, reference)


def test_a_run_begun_without_the_newer_metrics_keeps_its_columns_when_resumed(tmp_path,
                                                                               monkeypatch):
    """A run interrupted under an nnctl that recorded no val_auc / val_f1 (its metrics.csv
    has fewer columns) is resumed by this one: the later epochs write the file's own columns,
    so every row still matches the header and `runs show` reads it."""
    config = dropout_config(tmp_path)
    run = interrupted_run(config, tmp_path / "runs", monkeypatch, 3, 12)
    path = run / "metrics.csv"
    header, *lines = path.read_text().splitlines()
    names = header.split(",")
    assert "val_auc" in names and "val_f1" in names
    keep = [i for i, name in enumerate(names) if name not in ("val_auc", "val_f1")]
    older = [",".join(cells[i] for i in keep) for cells in (l.split(",") for l in [header, *lines])]
    path.write_text("\n".join(older) + "\n")

    result = resume(run, monkeypatch)
    assert result.exit_code == 0, result.output
    rows = metrics_rows(run, drop=())
    assert [row["epoch"] for row in rows] == [str(i) for i in range(1, 7)]
    assert all(list(row) == older[0].split(",") and None not in row.values() for row in rows)
    shown = cli("runs", "show", run)
    assert shown.exit_code == 0, shown.output
