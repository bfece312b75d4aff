"""Signals sent to real `nnctl train` processes: SIGINT -> 130, SIGTERM -> 143, a loadable
`last` checkpoint and status "interrupted", then `--resume` finishes the run bit-identically;
and SIGKILL at random moments while checkpoints are being written, many times over: after
every kill `last` loads and `nnctl eval RUN --checkpoint last` works."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fault_helpers import (
    DATASETS, assert_same_arrays, cli, metrics_rows, npz_arrays, only_run, popen_nnctl,
    run_nnctl, subprocess_env, summary, temp_files, tiny_config, wait_for_run_file, write_yaml,
)
from nnctl.checkpoint import load_checkpoint, read_json


def digits_config(folder: Path, epochs: int) -> Path:
    """digits with dropout and shuffling; about 10 ms of compute per epoch."""
    return write_yaml(folder / "sig.yaml", {
        "name": "sig", "seed": 3,
        "data": {"train": str(DATASETS / "digits_train.csv"), "validation": 0.15,
                 "target": "digit"},
        "model": {"layers": [{"type": "dense", "units": 32, "activation": "relu"},
                             {"type": "dropout", "rate": 0.2},
                             {"type": "dense", "units": 10, "activation": "softmax"}]},
        "loss": "categorical_crossentropy",
        "optimizer": {"type": "adam", "lr": 0.003},
        "training": {"epochs": epochs, "batch_size": 64, "checkpoint": {"keep_last": 2}},
    })


def assert_identical_runs(run: Path, reference: Path) -> None:
    """best, last and the epoch checkpoints both runs kept hold the same arrays, and
    metrics.csv the same cells (which epochs were saved depends on timing and signals)."""
    ours = {p.name for p in (run / "checkpoints").glob("*.npz")}
    theirs = {p.name for p in (reference / "checkpoints").glob("*.npz")}
    assert {"best.npz", "last.npz"} <= ours & theirs
    assert {p.name for p in (run / "checkpoints").iterdir()} == \
        {f"{Path(name).stem}.{ext}" for name in ours for ext in ("npz", "json")}
    for name in sorted(ours & theirs):
        assert_same_arrays(npz_arrays(run / "checkpoints" / name),
                           npz_arrays(reference / "checkpoints" / name))
    assert metrics_rows(run) == metrics_rows(reference)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])
def test_signal_interrupts_saves_and_resume_completes(tmp_path, signum, code):
    """`python -m nnctl.cli train` interrupted by a signal once its first epoch is recorded
    (before any timed save: the signal saves). The SIGINT case also resumes in a new process
    and compares with a run never interrupted (started alongside); the SIGTERM case resumes
    in-process."""
    compare = signum == signal.SIGINT
    config = digits_config(tmp_path, epochs=40)
    reference = (popen_nnctl("train", config, "--runs-dir", tmp_path / "reference", "--quiet")
                 if compare else None)
    victim = popen_nnctl("train", config, "--runs-dir", tmp_path / "runs", "--quiet")
    try:
        run = wait_for_run_file(tmp_path / "runs", "metrics.csv", victim)
        assert run is not None, victim.communicate()
        assert victim.poll() is None, "the run ended before it could be interrupted"
        victim.send_signal(signum)
        out, err = victim.communicate(timeout=60)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert victim.returncode == code, err
    assert "Traceback" not in err
    assert out.strip().endswith(run.name)
    data = summary(run)
    assert data["status"] == "interrupted"
    assert data["epochs_run"] < 40
    arrays, meta = load_checkpoint(run / "checkpoints", "last")
    assert meta["epoch"] == data["epochs_run"]
    assert f"interrupted by {signal.Signals(signum).name}" in (run / "train.log").read_text()
    assert cli("eval", run, "--checkpoint", "last").exit_code == 0

    if compare:
        resumed = run_nnctl("train", "--resume", run, "--quiet")
        assert resumed.returncode == 0, resumed.stderr
    else:
        assert cli("train", "--resume", run, "--quiet").exit_code == 0
    assert summary(run)["status"] == "completed"
    assert summary(run)["epochs_run"] == 40
    if compare:
        assert reference.wait(timeout=60) == 0, reference.stderr.read()
        reference.stdout.close(), reference.stderr.close()
        assert_identical_runs(run, only_run(tmp_path / "reference"))


def test_two_sigints_stop_at_once_and_the_run_still_resumes(tmp_path):
    config = digits_config(tmp_path, epochs=40)
    victim = popen_nnctl("train", config, "--runs-dir", tmp_path / "runs", "--quiet")
    try:
        run = wait_for_run_file(tmp_path / "runs", "metrics.csv", victim)
        assert run is not None and victim.poll() is None
        victim.send_signal(signal.SIGINT)
        victim.send_signal(signal.SIGINT)
        out, err = victim.communicate(timeout=60)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert victim.returncode == 130, err
    assert "Traceback" not in err
    # stopped at once (nothing saved mid-step), but still an interruption, not a failure;
    # a checkpoint, if the first signal's save got to write one, loads
    assert summary(run)["status"] == "interrupted"
    if (run / "checkpoints" / "last.json").exists():
        load_checkpoint(run / "checkpoints", "last")
    assert cli("train", "--resume", run, "--quiet").exit_code == 0
    assert summary(run)["status"] == "completed"
    assert temp_files(run) == []


# ---- kill -9 at random moments ------------------------------------------------------------------

# Importing numpy, pandas, pydantic and typer costs about a second of CPU per process, which
# would make fifteen-odd kills slow on two cores. A small fork server imports them once and
# forks one child per `nnctl train` command line; each child runs the real CLI entry point
# (nnctl.cli.main) in its own process and is killed with a real SIGKILL.
FORK_SERVER = r"""
import json, os, sys
import numpy, pandas
import nnctl.cli, nnctl.api, nnctl.data
for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        null = os.open(os.devnull, os.O_RDWR)
        err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(null, 0); os.dup2(null, 1); os.dup2(err, 2)
        sys.argv = ["nnctl", *request["args"]]
        code = 0
        try:
            nnctl.cli.main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            import traceback; traceback.print_exc(); code = 1
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(code)
    print(json.dumps({"pid": pid}), flush=True)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"status": status}), flush=True)
"""


class ForkServer:
    def __init__(self, stderr_path: Path):
        self.stderr_path = stderr_path
        self.proc = subprocess.Popen([sys.executable, "-c", FORK_SERVER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=subprocess_env())

    def start(self, *args) -> int:
        request = {"args": [str(a) for a in args], "stderr": str(self.stderr_path)}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())["pid"]

    def wait(self) -> int:
        """The wait status of the last child (os.waitpid's)."""
        return json.loads(self.proc.stdout.readline())["status"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()


def identity(path: Path):
    try:
        st = path.stat()
        return st.st_ino, st.st_mtime_ns
    except FileNotFoundError:
        return None


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


KILLS = 25
# Timed saves come every 20 ms of training, a handful of the tiny model's epochs: enough
# epochs that the run outlasts the 25 kills on a fast, idle machine too.
EPOCHS = {0: 120, 0.02: 4000}


@pytest.mark.parametrize("every_seconds", [0, 0.02], ids=["every-epoch", "timed"])
def test_kill_9_at_random_moments_never_breaks_the_last_checkpoint(tmp_path, every_seconds):
    """A tiny model, one batch per epoch, keep_last 2: checkpoints are written every epoch
    (every few milliseconds), or every 20 ms of training with metrics rows appended between
    saves. Kill -9 the process at a random moment, check that `last` (and `best`) load and
    that eval works, resume, kill again... Then resume to the end: the result is
    bit-identical to a run never interrupted, each epoch recorded once."""
    rng = random.Random(20240611)
    epochs = EPOCHS[every_seconds]
    config = tiny_config(tmp_path, epochs=epochs,
                         checkpoint={"keep_last": 2, "every_seconds": every_seconds})
    reference = popen_nnctl("train", config, "--runs-dir", tmp_path / "reference", "--quiet")
    runs_dir = tmp_path / "runs"
    stats = {"kills": 0, "temp_files_left": 0, "json_one_save_behind": 0, "evals": 0,
             "orphan_epoch_files": 0, "finished_before_kill": 0}
    server = ForkServer(tmp_path / "children.stderr")
    run = None
    last_json = lambda: run / "checkpoints" / "last.json"
    epoch_seconds = 0.03  # refined from the observed interval between checkpoints

    def wait_for_next_checkpoint(pid: int) -> bool:
        before = identity(last_json())
        deadline = time.monotonic() + 30
        while identity(last_json()) == before:
            if not alive(pid) or time.monotonic() > deadline:
                return False
            time.sleep(0.0005)
        return True

    try:
        for i in range(KILLS):
            if run is None:
                pid = server.start("train", config, "--runs-dir", runs_dir, "--quiet")
                deadline = time.monotonic() + 30
                while not list(runs_dir.glob("*/checkpoints/last.json")):
                    assert time.monotonic() < deadline and alive(pid)
                    time.sleep(0.0005)
                run = only_run(runs_dir)
            else:
                pid = server.start("train", "--resume", run, "--quiet")
                wait_for_next_checkpoint(pid)  # training has started
            # let 0-2 more epochs finish (timing them), then kill at a random moment of the
            # next one: the kill lands anywhere in the sequence of writes of an epoch
            for _ in range(rng.randrange(3)):
                started = time.monotonic()
                if not wait_for_next_checkpoint(pid):
                    break
                epoch_seconds = 0.5 * epoch_seconds + 0.5 * (time.monotonic() - started)
            time.sleep(rng.uniform(0.0, 1.2 * epoch_seconds))
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
            status = server.wait()
            if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
                stats["kills"] += 1
            else:
                assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
                stats["finished_before_kill"] += 1

            folder = run / "checkpoints"
            stats["temp_files_left"] += len(temp_files(run))
            stats["orphan_epoch_files"] += sum(
                1 for p in folder.glob("epoch-*.npz") if not p.with_suffix(".json").exists())
            if (folder / "last.json").exists() or (folder / "last.npz").exists():
                arrays, meta = load_checkpoint(folder, "last")
                if read_json(folder / "last.json")["epoch"] != meta["epoch"]:
                    stats["json_one_save_behind"] += 1
                result = cli("eval", run, "--checkpoint", "last")
                assert result.exit_code == 0, (i, result.output, result.exception)
                stats["evals"] += 1
            if (folder / "best.npz").exists() or (folder / "best.json").exists():
                load_checkpoint(folder, "best")
            if (run / "summary.json").exists() and summary(run)["status"] == "completed":
                break
        server.start("train", "--resume", run, "--quiet")
        final = server.wait()
    finally:
        server.close()
    stats["epoch_seconds"] = round(epoch_seconds, 4)
    print(f"\nkill -9 loop: {stats}")
    children_stderr = (tmp_path / "children.stderr").read_text()
    assert "Traceback" not in children_stderr, children_stderr
    assert stats["kills"] >= KILLS - 3, stats
    assert os.WIFEXITED(final) and os.WEXITSTATUS(final) == 0, final
    assert summary(run)["status"] == "completed"
    assert temp_files(run) == []
    assert reference.wait(timeout=60) == 0
    reference.stdout.close(), reference.stderr.close()
    # all those kills later: the same weights and metrics as a run never interrupted
    assert_identical_runs(run, only_run(tmp_path / "reference"))
    assert [int(r["epoch"]) for r in metrics_rows(run)] == list(range(1, epochs + 1))
