"""Corrupt and hostile files in run directories: summary.json, metrics.csv and config.yaml that
are binary, of the wrong shape, or a FIFO or /dev/zero in disguise.

`nnctl runs list` lists the other runs and marks the bad one `unreadable` (exit 0); `runs show`,
`plot` and `train --resume` on the bad run exit 2 naming the file (and the line or field), and
leave its checkpoints loadable. Every CLI call runs in a subprocess with a timeout and a bound
on its address space, so a hang or an unbounded read fails the test instead of the machine.
The subprocesses of the module start together (a few at a time) in one fixture; each test
then checks its own result. Hypothesis feeds arbitrary summary.json and metrics.csv contents
to list_runs and show_run in-process."""

from __future__ import annotations

import csv
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from cli_helpers import tiny_iris_config
from fault_helpers import time_limit
from nnctl import api
from nnctl.checkpoint import load_checkpoint
from nnctl.errors import UserError
from nnctl.listing import list_runs, render, show_run
from nnctl.runs import read_metrics, read_summary

MEMORY = 2 * 1024**3  # bytes of address space per CLI process (numpy and matplotlib fit)
TIMEOUT = 60  # seconds per CLI process
PARALLEL = max(2, min(4, os.cpu_count() or 2))


# ---- corruptions: one per kind of bad file --------------------------------------------------

def rewrite_summary(run: Path, change) -> None:
    path = run / "summary.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps(change(data)), encoding="utf-8")


def wrong_types(data: dict) -> dict:
    data.update(best_epoch="x", wall_seconds="fast", best=[1])
    return data


def edit_metrics(run: Path, line: int, edit) -> None:
    """Replace line `line` (1 is the header) of metrics.csv by edit(its cells)."""
    path = run / "metrics.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[line - 1] = edit(lines[line - 1].split(","))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def binary_metrics(run: Path) -> None:
    path = run / "metrics.csv"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x89PNG\r\x1a\x00\xfe\n"
    path.write_bytes(b"".join(lines))


def special(name: str, kind: str):
    def make(run: Path) -> None:
        path = run / name
        path.unlink()
        if kind == "fifo":
            os.mkfifo(path)
        else:
            path.symlink_to("/dev/zero")
    return make


@dataclass
class Case:
    file: str  # the bad file, in the run directory
    corrupt: object  # run directory -> None
    says: tuple[str, ...]  # what the error says after "<run>/<file>"


CASES = {
    "summary-binary": Case("summary.json",
                           lambda run: (run / "summary.json").write_bytes(
                               b"\x89PNG\r\n\x1a\n\x00\xff\xfe" + bytes(range(256))),
                           (": not UTF-8 text",)),
    "summary-list": Case("summary.json",
                         lambda run: (run / "summary.json").write_text("[1, 2, {\"a\": 3}]"),
                         (": not a mapping of fields to values (got a list)",)),
    "summary-wrong-types": Case("summary.json", lambda run: rewrite_summary(run, wrong_types),
                                (": field 'best_epoch' is not a number (got \"x\")",
                                 ": field 'wall_seconds' is not a number (got \"fast\")",
                                 ": field 'best' is not a mapping (got [1])")),
    "metrics-binary": Case("metrics.csv", binary_metrics, (":3: not UTF-8 text",)),
    "metrics-not-a-number": Case("metrics.csv",
                                 lambda run: edit_metrics(run, 3, lambda c: ",".join(
                                     c[:2] + ["abc"] + c[3:])),
                                 (":3: column 'val_loss' is not a number ('abc')",)),
    "metrics-short-row": Case("metrics.csv",
                              lambda run: edit_metrics(run, 4, lambda c: ",".join(c[:-1])),
                              (":4: 8 cells, but the header has 9 columns",)),
    "metrics-extra-cell": Case("metrics.csv",
                               lambda run: edit_metrics(run, 2, lambda c: ",".join(c + ["0.5"])),
                               (":2: 10 cells, but the header has 9 columns",)),
    **{f"{name.split('.')[0]}-{kind}": Case(name, special(name, kind),
                                            (f": is {'a FIFO' if kind == 'fifo' else 'a device'}, "
                                             "not a regular file",))
       for name in ("config.yaml", "summary.json", "metrics.csv")
       for kind in ("fifo", "dev-zero")},
}


# ---- the runs, and every CLI call of the module ----------------------------------------------

@dataclass
class Base:
    root: Path
    good: list[Path]  # two completed runs
    interrupted: Path  # three of five epochs done, resumable


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Base:
    root = tmp_path_factory.mktemp("hostile")
    config = root / "tiny.yaml"
    config.write_text(tiny_iris_config(epochs=3))
    good = [api.train(config, [f"optimizer.lr={lr}"], root / "made", run_name=f"good{i}").path
            for i, lr in enumerate((0.01, 0.05))]
    paused = api.train(config, [], root / "made", run_name="paused").path
    text = (paused / "config.yaml").read_text()
    assert "\n  epochs: 3\n" in text
    (paused / "config.yaml").write_text(text.replace("\n  epochs: 3\n", "\n  epochs: 5\n"))
    rewrite_summary(paused, lambda data: dict(data, status="interrupted", signal="SIGINT"))
    return Base(root, good, paused)


def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


@dataclass
class Result:
    args: list[str]
    code: int | None  # None: killed after TIMEOUT seconds
    stdout: str
    stderr: str
    seconds: float

    def __str__(self) -> str:
        return (f"nnctl {' '.join(self.args)}\nexit {self.code} after {self.seconds:.1f} s\n"
                f"stdout:\n{self.stdout[-2000:]}\nstderr:\n{self.stderr[-2000:]}")


def run_all(commands: dict, folder: Path) -> dict:
    """Run each `nnctl ARGS` in its own process, PARALLEL at a time, from this thread (so
    preexec_fn is safe); output goes to files, not pipes. {key: Result}."""
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg")
    pending = list(commands.items())
    running: dict = {}
    results: dict = {}
    while pending or running:
        while pending and len(running) < PARALLEL:
            key, args = pending.pop(0)
            args = [str(a) for a in args]
            number = len(results) + len(running)
            out, err = (open(folder / f"{number}.{ext}", "w+", encoding="utf-8",
                             errors="replace") for ext in ("out", "err"))
            proc = subprocess.Popen([sys.executable, "-m", "nnctl.cli", *args],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                    preexec_fn=limit_memory)
            running[key] = (proc, args, out, err, time.monotonic())
        time.sleep(0.02)
        for key, (proc, args, out, err, started) in list(running.items()):
            code = proc.poll()
            if code is None and time.monotonic() - started < TIMEOUT:
                continue
            if code is None:
                proc.kill()
                proc.wait()
            for f in (out, err):
                f.seek(0)
            results[key] = Result(args, code, out.read(), err.read(),
                                  time.monotonic() - started)
            out.close()
            err.close()
            del running[key]
    return results


def copy_run(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


@dataclass
class Outcomes:
    runs: Path  # the good runs, and a corrupted copy of one per case (named after the case)
    resumes: Path  # a corrupted copy of the interrupted run per case
    control: Path  # intact copies
    results: dict  # (case or "control", command) -> Result


@pytest.fixture(scope="module")
def outcomes(base, tmp_path_factory) -> Outcomes:
    """Every CLI call of the module: `runs list` (json and table) over the good runs and all
    the bad ones; `runs show`, `plot` and `train --resume` on each bad run; the same commands
    on intact copies, as controls within the same limits."""
    root = tmp_path_factory.mktemp("cases")
    runs, resumes, control = root / "runs", root / "resumes", root / "control"
    commands = {}
    for run in base.good:
        copy_run(run, runs / run.name)
        copy_run(run, control / "runs" / run.name)
    for name, case in CASES.items():
        bad = copy_run(base.good[0], runs / name)
        resume = copy_run(base.interrupted, resumes / name)
        case.corrupt(bad)
        case.corrupt(resume)
        commands[name, "show"] = ["runs", "show", bad]
        commands[name, "plot"] = ["plot", bad, "-o", root / f"{name}.png"]
        commands[name, "resume"] = ["train", "--resume", resume, "--quiet"]
    commands["all", "json"] = ["runs", "list", "--runs-dir", runs, "--format", "json"]
    commands["all", "table"] = ["runs", "list", "--runs-dir", runs]
    copy_run(base.interrupted, control / "resume")
    commands["control", "list"] = ["runs", "list", "--runs-dir", control / "runs"]
    commands["control", "show"] = ["runs", "show", control / "runs" / base.good[0].name]
    commands["control", "plot"] = ["plot", control / "runs" / base.good[0].name, "-o",
                                   control / "curves.png"]
    commands["control", "resume"] = ["train", "--resume", control / "resume", "--quiet"]
    started = time.monotonic()
    results = run_all(commands, root / "output")
    print(f"\n{len(commands)} nnctl processes in {time.monotonic() - started:.1f} s")
    return Outcomes(runs, resumes, control, results)


def assert_clean(result: Result, code: int) -> None:
    assert result.code is not None, f"still running after {TIMEOUT} s\n{result}"
    assert result.code == code, str(result)
    assert "Traceback" not in result.stderr, str(result)


def expected(case: Case, run: Path) -> list[str]:
    return [f"{run / case.file}{says}" for says in case.says]


# ---- the CLI on each kind of bad file ---------------------------------------------------------

def test_the_controls_work_under_the_same_limits(base, outcomes):
    results, control = outcomes.results, outcomes.control
    for command in ("list", "show", "plot", "resume"):
        assert_clean(results["control", command], 0)
    assert results["control", "list"].stdout.count("completed") == 2
    assert (control / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    resumed = json.loads((control / "resume" / "summary.json").read_text())
    assert resumed["status"] == "completed" and resumed["epochs_run"] == 5


@pytest.fixture(scope="module")
def listed(base, outcomes) -> dict:
    """`runs list --format json` over the good runs and every bad one, by run folder."""
    result = outcomes.results["all", "json"]
    assert_clean(result, 0)
    rows = {row["run"]: row for row in json.loads(result.stdout)}
    assert set(rows) == set(CASES) | {run.name for run in base.good}
    return rows


def test_runs_list_shows_the_good_runs_with_their_values(base, listed):
    for run in base.good:
        row, summary = listed[run.name], json.loads((run / "summary.json").read_text())
        assert row["status"] == "completed" and row["problem"] is None
        assert row["epochs"] == 3 and row["best_epoch"] == summary["best_epoch"]
        assert row["val_loss"] == summary["best"]["val_loss"]
        assert row["val_accuracy"] == summary["best"]["val_accuracy"]
        assert row["wall_seconds"] == summary["wall_seconds"]
    # the runs differ in their learning rate only: an unreadable config adds no parameter
    assert listed[base.good[0].name]["params"] == {"optimizer.lr": 0.01}
    assert listed[base.good[1].name]["params"] == {"optimizer.lr": 0.05}


@pytest.mark.parametrize("name", list(CASES))
def test_runs_list_marks_the_bad_run(outcomes, listed, name):
    bad = listed[name]
    assert bad["status"] == "unreadable"
    assert bad["epochs"] is None and bad["best_epoch"] is None and "val_loss" not in bad
    for fragment in expected(CASES[name], outcomes.runs / name):
        assert fragment in bad["problem"], (fragment, bad["problem"])


@pytest.mark.parametrize("name", list(CASES))
def test_runs_show_names_the_bad_file(outcomes, name):
    result = outcomes.results[name, "show"]
    assert_clean(result, 2)
    assert result.stdout == ""
    for fragment in expected(CASES[name], outcomes.runs / name):
        assert f"error: {fragment}" in result.stderr, (fragment, result.stderr)


@pytest.mark.parametrize("name", list(CASES))
def test_plot_names_the_bad_file(outcomes, name):
    result = outcomes.results[name, "plot"]
    assert_clean(result, 2)
    assert not (outcomes.runs.parent / f"{name}.png").exists()
    for fragment in expected(CASES[name], outcomes.runs / name):
        assert f"error: {fragment}" in result.stderr, (fragment, result.stderr)


@pytest.mark.parametrize("name", list(CASES))
def test_resume_names_the_bad_file_and_leaves_the_checkpoints(outcomes, name):
    result = outcomes.results[name, "resume"]
    assert_clean(result, 2)
    run = outcomes.resumes / name
    for fragment in expected(CASES[name], run):
        assert f"error: {fragment}" in result.stderr, (fragment, result.stderr)
    arrays, meta = load_checkpoint(run / "checkpoints", "last")
    assert meta["epoch"] == 3 and arrays


def test_the_table_marks_each_bad_run_with_a_note(base, outcomes):
    result = outcomes.results["all", "table"]
    assert_clean(result, 0)
    lines = result.stdout.splitlines()
    notes = [line for line in lines if line.startswith("note: ")]
    table = {line.split()[0]: line.split() for line in lines[1:] if line not in notes}
    assert set(table) == set(CASES) | {run.name for run in base.good}
    for name, case in CASES.items():
        assert table[name][1] == "unreadable", table[name]
        for fragment in expected(case, outcomes.runs / name):
            assert any(note.startswith(f"note: {fragment}") for note in notes), (fragment, notes)
    for run in base.good:
        summary = json.loads((run / "summary.json").read_text())
        assert table[run.name][1:4] == ["completed", "3", str(summary["best_epoch"])]
        assert f"{summary['best']['val_loss']:.4f}" in table[run.name]


# ---- the readers, in-process ------------------------------------------------------------------

@pytest.fixture
def run_copy(base, tmp_path) -> Path:
    return copy_run(base.good[0], tmp_path / "run")


@pytest.mark.parametrize("change, message", [
    ({"best_epoch": "x"}, "field 'best_epoch' is not a number (got \"x\")"),
    ({"wall_seconds": "fast"}, "field 'wall_seconds' is not a number (got \"fast\")"),
    ({"best": [1]}, "field 'best' is not a mapping (got [1])"),
    ({"best_epoch": True}, "field 'best_epoch' is not a number (got true)"),
    ({"epochs_run": 2.5}, "field 'epochs_run' is not a whole number (got 2.5)"),
    ({"wall_seconds": float("inf")}, "field 'wall_seconds' is not a finite number"),
    ({"wall_seconds": 10**400}, "field 'wall_seconds' is not a finite number"),
    ({"test": {"loss": None}}, "field 'test.loss' is not a number (got null)"),
    ({"final": {"val_loss": "low"}}, "field 'final.val_loss' is not a number"),
    ({"rows": 3}, "field 'rows' is not a mapping (got 3)"),
    ({"class_weight": {"a": [1]}}, "field 'class_weight.a' is not a number"),
    ({"versions": "1.0"}, "field 'versions' is not a mapping"),
    ({"status": 7}, "field 'status' is not text (got 7)"),
])
def test_summary_fields_of_the_wrong_type(run_copy, change, message):
    rewrite_summary(run_copy, lambda data: dict(data, **change))
    with pytest.raises(UserError) as caught:
        read_summary(run_copy)
    assert any(problem.startswith(f"{run_copy / 'summary.json'}: {message}")
               for problem in caught.value.problems), caught.value.problems


@pytest.mark.parametrize("content, message", [
    (b"", ":1: not JSON (Expecting value, column 1)"),
    (b'{"status": "completed",', ":1: not JSON"),
    (b"[" * 100_000, ": nested too deeply to read"),
    (b"1" * 5000, ": not JSON"),
    (b'"completed"', ": not a mapping of fields to values (got text)"),
    (b"null", ": not a mapping of fields to values (got null)"),
], ids=["empty", "cut", "deep", "long-integer", "text", "null"])
def test_summary_that_is_not_a_json_mapping(run_copy, content, message):
    (run_copy / "summary.json").write_bytes(content)
    with pytest.raises(UserError) as caught:
        read_summary(run_copy)
    assert caught.value.problems[0].startswith(f"{run_copy / 'summary.json'}{message}"), \
        caught.value.problems


def test_a_missing_summary_or_metrics_file_is_no_error(run_copy):
    (run_copy / "summary.json").unlink()
    (run_copy / "metrics.csv").unlink()
    assert read_summary(run_copy) is None
    assert read_metrics(run_copy) == []
    (run_copy / "metrics.csv").write_text("")
    assert read_metrics(run_copy) == []
    (run_copy / "metrics.csv").write_text("epoch,train_loss\n")
    assert read_metrics(run_copy) == []
    row = list_runs(run_copy.parent)[0]
    assert (row.status, row.epochs, row.problems) == ("unfinished", None, [])


@pytest.mark.parametrize("text, message", [
    ("train_loss,val_loss\n0.5,0.6\n", ":1: no 'epoch' column"),
    ("epoch,loss,loss\n1,2,3\n", ":1: column 'loss' is given twice"),
    ("epoch,,loss\n1,2,3\n", ":1: a column without a name"),
    ("epoch,loss\n1.5,0.3\n", ":2: column 'epoch' is not a whole number of 0 or more ('1.5')"),
    ("epoch,loss\n-1,0.3\n", ":2: column 'epoch' is not a whole number of 0 or more ('-1')"),
    ("epoch,loss\n1,\n", ":2: column 'loss' is not a number ('')"),
    ("epoch,loss\n1,0.3\n\n2,0.2,9\n", ":4: 3 cells, but the header has 2 columns"),
    ("epoch,loss\n1,0.3\n2,\"0.2\n", ":3: not CSV"),
    ("epoch,loss\n1,0\x00.3\n", ":2: column 'loss' is not a number ('0\\x00.3')"),
    ("epoch,loss\r1,0.3\r", ":1: not CSV"),
    ("epoch,loss\n1," + "9" * (1024 * 1024 + 10) + "\n", ":2: a line longer than 1 MB"),
], ids=["no-epoch", "twice", "no-name", "epoch-1.5", "epoch--1", "blank-cell", "long-row",
        "open-quote", "nul", "cr", "long-line"])
def test_metrics_rows_that_are_not_numbers(run_copy, text, message):
    (run_copy / "metrics.csv").write_text(text, newline="")
    with pytest.raises(UserError) as caught:
        read_metrics(run_copy)
    assert caught.value.problems[0].startswith(f"{run_copy / 'metrics.csv'}{message}"), \
        caught.value.problems


def test_metrics_problems_are_listed_up_to_a_bound(run_copy):
    rows = "".join(f"{i},x\n" for i in range(1, 1001))
    (run_copy / "metrics.csv").write_text("epoch,loss\n" + rows)
    with pytest.raises(UserError) as caught:
        read_metrics(run_copy)
    problems = caught.value.problems
    assert len(problems) == 11 and problems[-1].endswith("metrics.csv: 990 more problems")


def test_metrics_of_a_long_run_read_in_full(run_copy):
    """No size bound on metrics.csv: a run of 10^5 epochs reads, with ints and floats."""
    header = "epoch,train_loss,val_loss,lr,seconds\n"
    rows = "".join(f"{i},0.5,{1 / i:.6g},0.01,nan\n" for i in range(1, 100_001))
    (run_copy / "metrics.csv").write_text("\ufeff" + header + rows)  # a BOM, as Excel saves
    history = read_metrics(run_copy)
    assert len(history) == 100_000
    assert history[-1]["epoch"] == 100_000 and isinstance(history[-1]["epoch"], int)
    assert history[1]["val_loss"] == 0.5 and isinstance(history[0]["lr"], float)


def test_a_config_that_is_not_a_mapping_marks_the_run(base, tmp_path):
    runs = tmp_path / "runs"
    for run in base.good:
        copy_run(run, runs / run.name)
    bad = copy_run(base.good[0], runs / "bad")
    (bad / "config.yaml").write_text("- just\n- a list\n")
    rows = {row.path.name: row for row in list_runs(runs)}
    assert rows["bad"].status == "unreadable"
    assert rows["bad"].problems == [f"{bad / 'config.yaml'}: not a mapping of keys to values"]
    assert [rows[run.name].status for run in base.good] == ["completed", "completed"]
    assert "note: " + rows["bad"].problems[0] in render(list(rows.values()), "table")
    table = list(csv.DictReader(io.StringIO(render(list(rows.values()), "csv"))))
    assert {row["run"]: row["problem"] for row in table} == {
        "bad": rows["bad"].problems[0], **{run.name: "" for run in base.good}}


def test_a_sweep_plot_leaves_out_an_unreadable_trial(base, tmp_path, capsys):
    """`nnctl plot SWEEP_FOLDER`: a trial whose metrics.csv is a FIFO is left out with a
    warning naming it; a sweep.csv that is a FIFO, or ragged, is an error naming it."""
    from nnctl.plots import plot_sweep

    folder = tmp_path / "sweep"
    runs = [copy_run(run, folder / run.name) for run in base.good]
    special("metrics.csv", "fifo")(runs[1])
    (folder / "sweep.yaml").write_text("method: grid\n")
    lines = ["rank,trial,optimizer.lr,status,val_loss,epochs,seconds,run_dir,error"]
    lines += [f"{i + 1},{i + 1},{lr},completed,0.{5 - i},3,1.0,{run},"
              for i, (lr, run) in enumerate(zip((0.01, 0.05), runs))]
    (folder / "sweep.csv").write_text("\n".join(lines) + "\n")
    out = plot_sweep(folder, tmp_path / "sweep.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"warning: {runs[1] / 'metrics.csv'}: is a FIFO" in capsys.readouterr().err

    (folder / "sweep.csv").write_text("\n".join(lines[:2] + [lines[2] + ",extra"]) + "\n")
    with pytest.raises(UserError, match=r"sweep.csv:3: 10 cells, but the header has 9"):
        plot_sweep(folder, tmp_path / "sweep.png")
    (folder / "sweep.csv").unlink()
    os.mkfifo(folder / "sweep.csv")
    with pytest.raises(UserError, match=r"sweep.csv: is a FIFO, not a regular file"):
        plot_sweep(folder, tmp_path / "sweep.png")


# ---- hypothesis: any content ------------------------------------------------------------------

FUZZ = settings(deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


JSON_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats()
                | st.text(max_size=10) | st.sampled_from(["completed", "val_loss", "1", ""]))
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.text(max_size=8) | st.sampled_from(["val_loss", "epoch", "best", "test"]),
        inner, max_size=4),
    max_leaves=12)
SUMMARY_FIELDS = ["status", "epochs_run", "best_epoch", "best", "final", "test", "wall_seconds",
                  "name", "seed", "threads", "rows", "blank_targets", "class_weight", "versions",
                  "message", "command", "monitor"]


def mutated_summary(original: dict):
    """The real summary with a few fields (or fields of best/final/test) replaced or removed."""
    def mutate(edits):
        data = json.loads(json.dumps(original))
        for where, inner, value, delete in edits:
            target = data
            if inner and isinstance(data.get(where), dict) and data[where]:
                target, where = data[where], sorted(data[where])[len(where) % len(data[where])]
            if delete:
                target.pop(where, None)
            else:
                target[where] = value
        return data

    edit = st.tuples(st.sampled_from(SUMMARY_FIELDS), st.booleans(), JSON_VALUES, st.booleans())
    return st.lists(edit, min_size=1, max_size=3).map(mutate)


def summary_contents(original: dict):
    return st.one_of(
        st.binary(max_size=200),
        JSON_VALUES.map(json.dumps),
        mutated_summary(original).map(json.dumps),
        mutated_summary(original).map(json.dumps),
        st.text(alphabet='{}[]":,0123456789.eE-+ naeltrufNIfy\n', max_size=80),
    ).map(lambda c: c if isinstance(c, bytes) else c.encode("utf-8", "surrogatepass"))


CELLS = (st.sampled_from(["", "x", "nan", "-inf", "1e999", "0x10", "1_0", " 2 ", "-1", "3.5",
                          "\"", "\"a,b\"", "\u00e9", "1" * 30, "\x00"])
         | st.floats().map(repr) | st.integers().map(str) | st.text(max_size=6))


def near_valid_metrics(original: str):
    """The real metrics.csv with a few cells replaced, cells added or dropped, lines added."""
    lines = [line.split(",") for line in original.splitlines()]

    def edit(edits):
        rows = [list(row) for row in lines]
        for line, column, kind, cell in edits:
            row = rows[line % len(rows)]
            if kind == "replace":
                row[column % len(row)] = cell
            elif kind == "drop" and row:
                row.pop(column % len(row))
            elif kind == "add":
                row.insert(column % (len(row) + 1), cell)
            else:
                rows.insert(line % (len(rows) + 1), [cell])
        return "\n".join(",".join(row) for row in rows) + "\n"

    one = st.tuples(st.integers(0, 20), st.integers(0, 20),
                    st.sampled_from(["replace", "replace", "drop", "add", "line"]), CELLS)
    return st.lists(one, min_size=1, max_size=3).map(edit)


def metrics_contents(original: str):
    return st.one_of(
        near_valid_metrics(original),
        near_valid_metrics(original),
        st.binary(max_size=200),
        st.lists(st.sampled_from(list("epoch,0123456789.e-+\n\r\"x ") + ["nan", "epoch,loss\n"]),
                 max_size=100).map("".join),
        st.lists(st.lists(CELLS, max_size=5), max_size=8).map(
            lambda rows: "\n".join(",".join(row) for row in rows)),
    ).map(lambda c: c if isinstance(c, bytes) else c.encode("utf-8", "surrogatepass"))


@pytest.fixture(scope="module")
def fuzz_runs(base, tmp_path_factory):
    runs = tmp_path_factory.mktemp("fuzz") / "runs"
    copy_run(base.good[0], runs / "ok")
    return runs, copy_run(base.good[0], runs / "target")


def check_listing_and_show(runs: Path, target: Path, counts: Counter) -> None:
    """list_runs returns both rows (the intact one as it is) whatever the target holds, and
    renders in every format; show_run works or raises a UserError that names the file."""
    with time_limit(20):
        rows = {row.path.name: row for row in list_runs(runs)}
        assert set(rows) == {"ok", "target"}
        assert rows["ok"].status == "completed" and not rows["ok"].problems
        for fmt in ("table", "csv", "json"):
            render(list(rows.values()), fmt)
        counts[rows["target"].status] += 1
        try:
            show_run(target)
        except UserError as exc:
            assert exc.problems and all(isinstance(p, str) and str(target) in p
                                        for p in exc.problems), exc.problems
            assert rows["target"].status == "unreadable"
            counts["show: user error"] += 1
        else:
            assert rows["target"].status != "unreadable", rows["target"].problems
            counts["show: ok"] += 1


def fuzz_file(runs, target: Path, name: str, contents) -> Counter:
    """Write each of `contents`' examples over the run's `name`, list and show the runs; put
    the original back afterwards. Returns how the examples went."""
    original = (target / name).read_bytes()
    counts = Counter()

    @settings(FUZZ, max_examples=100)
    @given(content=contents)
    def run(content):
        (target / name).write_bytes(content)
        check_listing_and_show(runs, target, counts)

    try:
        run()
    finally:
        (target / name).write_bytes(original)
    print(f"\n{name}: {dict(counts)}")
    return counts


def test_any_summary_json_lists_and_shows_cleanly(base, fuzz_runs):
    runs, target = fuzz_runs
    original = json.loads((base.good[0] / "summary.json").read_bytes())
    counts = fuzz_file(runs, target, "summary.json", summary_contents(original))
    assert counts["unreadable"] > 0 and counts["show: ok"] > 0


def test_any_metrics_csv_lists_and_shows_cleanly(base, fuzz_runs):
    runs, target = fuzz_runs
    original = (base.good[0] / "metrics.csv").read_text(encoding="utf-8")
    counts = fuzz_file(runs, target, "metrics.csv", metrics_contents(original))
    assert counts["unreadable"] > 0 and counts["show: ok"] > 0
