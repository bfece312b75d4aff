"""Many `nnctl train` processes writing into one runs folder at once: each gets its own run
directory (os.mkdir, never reused, never overwritten), and every run is complete."""

from __future__ import annotations

import json
import re
import time

import pytest

import nnctl.runs
from fault_helpers import (
    assert_clean_failure, cli, popen_nnctl, run_dirs, summary, temp_files, tiny_config,
)
from nnctl.checkpoint import load_checkpoint
from nnctl.errors import UserError
from nnctl.runs import create_run_dir

PROCESSES = 32


def test_32_processes_with_the_same_run_name_get_32_directories(tmp_path):
    config = tiny_config(tmp_path, epochs=2)
    runs_dir = tmp_path / "shared" / "runs"  # created by the processes themselves, racing
    started = time.monotonic()
    procs = [popen_nnctl("train", config, "--run-name", "same", "--runs-dir", runs_dir,
                         "--quiet", "--json")
             for _ in range(PROCESSES)]
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=240)
            results.append((proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    elapsed = time.monotonic() - started
    print(f"\n{PROCESSES} concurrent trainings took {elapsed:.1f} s")

    for code, out, err in results:
        assert code == 0, err
        assert "Traceback" not in err
    printed = [out.strip().splitlines()[0] for _, out, _ in results]
    summaries = [json.loads(out.strip().splitlines()[-1]) for _, out, _ in results]
    assert len(set(printed)) == PROCESSES, "two processes reported the same directory"
    dirs = run_dirs(runs_dir)
    assert len(dirs) == PROCESSES
    assert sorted(map(str, dirs)) == sorted(printed)
    for run, printed_summary in zip(sorted(dirs), sorted(summaries, key=lambda s: s["run_dir"])):
        assert re.fullmatch(r"same-\d{8}-\d{6}-[0-9a-f]{4}", run.name), run.name
        data = summary(run)
        assert data == printed_summary
        assert data["run_dir"] == str(run)
        assert data["name"] == "same"
        assert data["status"] == "completed" and data["epochs_run"] == 2
        for key in ("best_epoch", "best", "final", "wall_seconds", "seed", "command",
                    "versions", "monitor"):
            assert data.get(key) is not None, (run.name, key)
        assert "name: same" in (run / "config.yaml").read_text()
        assert len((run / "metrics.csv").read_text().strip().splitlines()) == 3
        for stem in ("last", "best", "epoch-2"):  # epoch 1 is saved only if 10 s passed
            assert load_checkpoint(run / "checkpoints", stem)[1]["epoch"] >= 1
        assert temp_files(run) == []
        log = (run / "train.log").read_text()
        assert log.count("started:") == 1, "two processes wrote into one train.log"


@pytest.fixture
def frozen_names(monkeypatch):
    """Every run directory name gets the same time stamp, and the 4 random hex digits come
    from a script: collisions on demand."""
    monkeypatch.setattr(nnctl.runs.time, "strftime", lambda fmt, *a: "20240101-000000")
    script = []
    real = nnctl.runs.secrets.token_hex

    def token_hex(n=None):
        if n == 2 and script:
            return script.pop(0)
        return real(n)

    monkeypatch.setattr(nnctl.runs.secrets, "token_hex", token_hex)
    return script


def test_name_collisions_are_retried_not_reused(tmp_path, frozen_names):
    frozen_names.extend(["beef", "beef", "beef", "cafe", "cafe", "beef", "f00d"])
    made = [create_run_dir(tmp_path, "x") for _ in range(3)]
    assert [p.name for p in made] == ["x-20240101-000000-beef", "x-20240101-000000-cafe",
                                      "x-20240101-000000-f00d"]
    assert frozen_names == []


def test_an_existing_run_directory_is_never_overwritten(tmp_path, frozen_names):
    config = tiny_config(tmp_path, name="tiny")
    existing = tmp_path / "runs" / "tiny-20240101-000000-beef"
    (existing / "checkpoints").mkdir(parents=True)
    (existing / "config.yaml").write_text("precious")
    (existing / "summary.json").write_text('{"status": "completed"}')
    frozen_names.extend(["beef", "beef", "d00d"])
    result = cli("train", config, "--runs-dir", tmp_path / "runs", "--quiet")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("tiny-20240101-000000-d00d")
    assert (existing / "config.yaml").read_text() == "precious"
    assert sorted(p.name for p in existing.rglob("*")) == ["checkpoints", "config.yaml",
                                                           "summary.json"]


def test_no_free_name_is_a_clean_error(tmp_path, frozen_names):
    (tmp_path / "runs" / "tiny-20240101-000000-beef").mkdir(parents=True)
    frozen_names.extend(["beef"] * 1000)
    with pytest.raises(UserError, match="no free run directory name"):
        create_run_dir(tmp_path / "runs", "tiny")
    frozen_names.clear()
    frozen_names.extend(["beef"] * 1000)
    config = tiny_config(tmp_path, name="tiny")
    err = assert_clean_failure(cli("train", config, "--runs-dir", tmp_path / "runs"), 2)
    assert "no free run directory name" in err
