"""`nnctl sweep` on its Optuna study, with real processes: `--join` workers sharing one sweep
folder (journal file or SQLite database), `--resume` after SIGINT and after `kill -9`, pruning,
seeded tpe, and the sweep file checked before anything is created.

The sweeps that need no interaction run side by side in the background (the module fixture
`background`), each scenario in a thread of its own; the tests read what they left behind.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pytest
import yaml
from cli_helpers import tiny_iris_config
from optuna.trial import TrialState
from typer.testing import CliRunner

from nnctl.cli import app

PROGRAM = [sys.executable, "-m", "nnctl.cli"]
TIMEOUT = 240  # seconds any one nnctl process may take before the test gives up

# ---- helpers -----------------------------------------------------------------------------------


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str


def nnctl(*args, cwd: Path) -> Ran:
    done = subprocess.run([*PROGRAM, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          check=False, timeout=TIMEOUT)
    return Ran(done.returncode, done.stdout, done.stderr)


@dataclass
class Started:
    """An nnctl process running in the background, its output going to files."""

    process: subprocess.Popen
    out: Path
    err: Path

    def wait(self, timeout: float = TIMEOUT) -> Ran:
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"{self.process.args} still running after {timeout} s:\n"
                                 + self.err.read_text())
        return Ran(code, self.out.read_text(), self.err.read_text())


def launch(*args, cwd: Path, log: str) -> Started:
    out, err = cwd / f"{log}.out", cwd / f"{log}.err"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        process = subprocess.Popen([*PROGRAM, *map(str, args)], cwd=cwd, stdout=stdout,
                                   stderr=stderr)
    return Started(process, out, err)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def only_folder(runs: Path) -> Path:
    folders = [p for p in runs.iterdir() if p.is_dir()]
    assert len(folders) == 1, folders
    return folders[0]


def trial_dirs(folder: Path, name: str) -> dict[int, list[Path]]:
    """The run directories of a sweep folder by trial number (`<name>-<trial>-<time>-<hex>`)."""
    found: dict[int, list[Path]] = {}
    for path in folder.iterdir():
        match = re.fullmatch(rf"{re.escape(name)}-(\d+)-\d{{8}}-\d{{6}}-[0-9a-f]{{4}}", path.name)
        if path.is_dir() and match:
            found.setdefault(int(match.group(1)), []).append(path)
    return found


def summary(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "summary.json").read_text(encoding="utf-8"))


def metric_rows(run_dir: Path) -> int:
    try:
        with open(Path(run_dir) / "metrics.csv", newline="", encoding="utf-8") as f:
            return max(0, sum(1 for line in f if line.strip()) - 1)
    except FileNotFoundError:
        return 0


def journal_study(folder: Path) -> optuna.Study:
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(folder / "study.journal")))
    return optuna.load_study(study_name=folder.name, storage=storage)


def train_processes(folder: Path) -> list[int]:
    """Pids of live `nnctl.cli train` processes whose command line names `folder`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue  # gone meanwhile
        if "nnctl.cli" in args and "train" in args and any(str(folder) in a for a in args):
            found.append(int(entry.name))
    return found


def wait_for(condition, what: str, timeout: float = 120, process: Started | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.process.poll() is not None:
            raise AssertionError(f"the sweep exited ({process.process.returncode}) before "
                                 f"{what}:\n{process.err.read_text()}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# ---- the sweeps --------------------------------------------------------------------------------

LRS, UNITS = [0.05, 0.01, 0.002], [4, 8]
GRID = f"""\
config: base.yaml
method: grid
metric: val_loss
parameters:
  optimizer.lr: {LRS}
  model.layers.0.units: {UNITS}
"""
GRID_TRIALS = {i + 1: combo for i, combo in enumerate(itertools.product(LRS, UNITS))}

# Trial 2 trains long enough to be caught running; trial 3 is still waiting when it is.
LONG = """\
config: base.yaml
method: grid
metric: val_loss
parameters:
  training.epochs: [4, 150, 5]
"""

PRUNED = """\
config: base.yaml
method: grid
metric: val_loss
early_terminate: {type: median, min_epochs: 2}
parameters:
  optimizer.lr: [0.05, 0.03, 0.02, 0.01, 0.005, 1.0e-5, 2.0e-5]
"""
PRUNED_EPOCHS = 40

TPE = """\
config: base.yaml
method: tpe
samples: 6
seed: {seed}
metric: val_loss
parameters:
  optimizer.lr: {{distribution: log_uniform, min: 1.0e-4, max: 0.1}}
  model.layers.0.units: [4, 8, 16]
"""


def setup(root: Path, sweep: str, epochs: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "base.yaml").write_text(tiny_iris_config(epochs=epochs))
    (root / "sweep.yaml").write_text(sweep)
    return root


@dataclass
class Joined:
    root: Path
    folder: Path
    created: Ran
    csv_at_create: list[dict]
    joins: list[Ran]
    url: str | None = None


def three_joins(root: Path, url: str | None = None) -> Joined:
    """A sweep folder made with --workers 0, then three --join processes started together."""
    setup(root, GRID, epochs=3)
    storage = ["--storage", url] if url else []
    created = nnctl("sweep", "sweep.yaml", "--workers", "0", "--runs-dir", "runs", *storage,
                    cwd=root)
    assert created.code == 0, created.stderr
    folder = only_folder(root / "runs")
    csv_at_create = read_csv(folder / "sweep.csv")
    started = [launch("sweep", "--join", folder, cwd=root, log=f"join{i}") for i in range(3)]
    return Joined(root, folder, created, csv_at_create, [s.wait() for s in started], url)


@dataclass
class Interrupted:
    root: Path
    folder: Path
    stopped: Ran
    running_at_stop: Path            # the run directory of the trial caught running
    finished_at_stop: list[Path]     # run directories whose trial had completed by then
    csv_at_stop: list[dict]
    summary_at_stop: dict | None  # the running trial's summary.json once it stopped
    left_alive: list[int] = field(default_factory=list)  # its processes still alive after 10 s
    resumed: Ran | None = None


def interrupt_and_resume(root: Path, signum: int) -> Interrupted:
    """Run LONG with one worker, send `signum` to the sweep process while trial 2 trains,
    then `nnctl sweep --resume` the folder."""
    setup(root, LONG, epochs=4)
    runs = root / "runs"  # absolute, so trial command lines name the folder in full
    sweep = launch("sweep", "sweep.yaml", "--runs-dir", runs, cwd=root, log="sweep")

    def trial_2_training():
        if not runs.is_dir() or not any(runs.iterdir()):
            return None
        dirs = trial_dirs(only_folder(runs), "sweep").get(2, [])
        return dirs[0] if dirs and metric_rows(dirs[0]) >= 3 else None

    running = wait_for(trial_2_training, "trial 2 to train 3 epochs", process=sweep)
    folder = running.parent
    finished = [d for ds in trial_dirs(folder, "sweep").values() for d in ds
                if (d / "summary.json").is_file() and summary(d)["status"] == "completed"]
    os.kill(sweep.process.pid, signum)
    stopped = sweep.wait()
    left_alive = []
    if signum == signal.SIGKILL:  # the trial is told by the kernel (SIGTERM), not by the sweep
        deadline = time.monotonic() + 10
        while train_processes(folder) and time.monotonic() < deadline:
            time.sleep(0.1)
        left_alive = train_processes(folder)
        for pid in left_alive:  # do not leave them training after the test
            os.kill(pid, signal.SIGKILL)
    stopped_summary = summary(running) if (running / "summary.json").is_file() else None
    result = Interrupted(root, folder, stopped, running, finished,
                         read_csv(folder / "sweep.csv"), stopped_summary, left_alive)
    if not left_alive:
        result.resumed = nnctl("sweep", "--resume", folder, cwd=root)
    return result


@dataclass
class Pruning:
    root: Path
    folder: Path
    sweep: Ran


def pruning_sweep(root: Path) -> Pruning:
    setup(root, PRUNED, epochs=PRUNED_EPOCHS)
    # Saved every epoch, a trial takes long enough for the sweep (which reads metrics.csv
    # every 0.02 s) to prune it before its last epoch; by training time it could end first.
    base = root / "base.yaml"
    text = base.read_text()
    assert "batch_size: 16}" in text
    base.write_text(text.replace("batch_size: 16}", "batch_size: 16, checkpoint: {every_seconds: 0}}"))
    ran = nnctl("sweep", "sweep.yaml", "--workers", "1", "--runs-dir", "runs", cwd=root)
    assert (root / "runs").is_dir(), ran.stderr
    return Pruning(root, only_folder(root / "runs"), ran)


@dataclass
class Seeded:
    root: Path
    runs: dict[str, tuple[Ran, Path]]  # "a", "b": seed 3; "other": seed 4


def tpe_sweeps(root: Path) -> Seeded:
    setup(root, TPE.format(seed=3), epochs=2)
    (root / "other.yaml").write_text(TPE.format(seed=4))
    started = {"a": launch("sweep", "sweep.yaml", "--workers", "1", "--runs-dir", "runs-a",
                           cwd=root, log="a"),
               "b": launch("sweep", "sweep.yaml", "--workers", "1", "--runs-dir", "runs-b",
                           cwd=root, log="b"),
               "other": launch("sweep", "other.yaml", "--workers", "1", "--runs-dir",
                               "runs-other", cwd=root, log="other")}
    return Seeded(root, {key: (s.wait(), only_folder(root / f"runs-{key}"))
                         for key, s in started.items()})


TAKER = r"""
import sys, time
from pathlib import Path
from nnctl.sweep import open_folder
from nnctl.sweep import study as studies

folder, ready, go = map(Path, sys.argv[1:4])
sweep, url = open_folder(folder)
study = studies.load(sweep, folder, url)
ready.touch()
while not go.exists():
    time.sleep(0.001)
taken = []
while (trial := studies.take_next(study, folder, len(sweep.trials))) is not None:
    taken.append(trial.user_attrs["trial"])
    time.sleep(0.005)  # a worker trains between takes: the others get their turn
print(" ".join(map(str, taken)))
"""
MANY = """\
config: base.yaml
method: grid
metric: val_loss
parameters:
  optimizer.lr: [0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 0.0005]
  model.layers.0.units: [1, 2, 3, 4, 5]
"""


def concurrent_takes(root: Path, url: str | None = None) -> list[list[int]]:
    """A sweep of 40 waiting trials, and three processes taking them all at the same moment
    with the sweep's own take_next; what each took."""
    from nnctl.sweep import load_sweep, start

    setup(root, MANY, epochs=2)
    start(load_sweep(root / "sweep.yaml"), root / "runs", workers=0, url=url, log=lambda _: None)
    folder = only_folder(root / "runs")
    takers = [subprocess.Popen([sys.executable, "-c", TAKER, str(folder), str(root / f"ready{i}"),
                                str(root / "go")], stdout=subprocess.PIPE, text=True)
              for i in range(3)]
    wait_for(lambda: all((root / f"ready{i}").exists() for i in range(3)), "the takers")
    (root / "go").touch()
    taken = []
    for taker in takers:
        out, _ = taker.communicate(timeout=TIMEOUT)
        assert taker.returncode == 0
        taken.append([int(n) for n in out.split()])
    return taken


@pytest.fixture(scope="module")
def background(tmp_path_factory) -> dict[str, Future]:
    """Every sweep of this module, started at once, each in a thread of its own."""
    root = tmp_path_factory.mktemp("sweeps")
    pool = ThreadPoolExecutor(max_workers=8)
    futures = {
        "journal": pool.submit(three_joins, root / "journal"),
        "sqlite": pool.submit(three_joins, root / "sqlite", f"sqlite:///{root / 's.db'}"),
        "sigint": pool.submit(interrupt_and_resume, root / "sigint", signal.SIGINT),
        "sigkill": pool.submit(interrupt_and_resume, root / "sigkill", signal.SIGKILL),
        "pruning": pool.submit(pruning_sweep, root / "pruning"),
        "tpe": pool.submit(tpe_sweeps, root / "tpe"),
        "takes-journal": pool.submit(concurrent_takes, root / "takes-journal"),
        "takes-sqlite": pool.submit(concurrent_takes, root / "takes-sqlite",
                                    f"sqlite:///{root / 'takes.db'}"),
    }
    yield futures
    pool.shutdown(wait=True)


# ---- --join: three processes, one folder -------------------------------------------------------


def check_joined(joined: Joined, study: optuna.Study) -> None:
    # --workers 0 put every trial in the study, waiting, and ran none
    assert [(r["trial"], r["status"]) for r in joined.csv_at_create] == [
        (str(n), "pending") for n in GRID_TRIALS]
    for ran in joined.joins:
        assert "Traceback" not in ran.stderr, ran.stderr
        assert ran.code == 0, ran.stderr
    folder = joined.folder

    # Each trial was run by exactly one of the three processes, once.
    reported = [int(n) for ran in joined.joins
                for n in re.findall(r"^trial (\d+) completed", ran.stderr, re.MULTILINE)]
    assert sorted(reported) == list(GRID_TRIALS)

    dirs = trial_dirs(folder, "sweep")
    assert {n: len(d) for n, d in dirs.items()} == {n: 1 for n in GRID_TRIALS}
    for number, (lr, units) in GRID_TRIALS.items():
        config = yaml.safe_load((dirs[number][0] / "config.yaml").read_text())
        assert config["optimizer"]["lr"] == lr
        assert config["model"]["layers"][0]["units"] == units
        assert summary(dirs[number][0])["status"] == "completed"

    trials = study.get_trials()
    assert len(trials) == len(GRID_TRIALS)
    assert {t.state for t in trials} == {TrialState.COMPLETE}
    by_number = {t.user_attrs["trial"]: t for t in trials}
    assert sorted(by_number) == list(GRID_TRIALS)

    rows = read_csv(folder / "sweep.csv")
    assert sorted(int(r["trial"]) for r in rows) == list(GRID_TRIALS)
    for row in rows:
        trial = by_number[int(row["trial"])]
        attrs = trial.user_attrs
        lr, units = GRID_TRIALS[attrs["trial"]]
        assert attrs["params"] == {"optimizer.lr": lr, "model.layers.0.units": units}
        assert (float(row["optimizer.lr"]), int(row["model.layers.0.units"])) == (lr, units)
        assert row["status"] == attrs["status"] == "completed"
        assert float(row["val_loss"]) == attrs["value"] == trial.value
        assert attrs["value"] == pytest.approx(summary(dirs[attrs["trial"]][0])["best"]["val_loss"])
        assert (joined.root / row["run_dir"]).resolve() == dirs[attrs["trial"]][0].resolve()
        assert Path(attrs["run_dir"]) == Path(row["run_dir"])
    # the three processes shared the work (each takes a trial as soon as it is up)
    assert len({t.user_attrs["worker"] for t in trials}) >= 2


def test_three_join_processes_run_each_trial_once_journal(background):
    joined = background["journal"].result()
    assert "0 at a time" in joined.created.stderr
    assert (joined.folder / "study.journal").is_file()
    assert {p.name for p in joined.folder.iterdir()} >= {"sweep.yaml", "sweep.json",
                                                          "sweep.csv", "cache"}
    check_joined(joined, journal_study(joined.folder))


def test_three_join_processes_run_each_trial_once_sqlite(background):
    joined = background["sqlite"].result()
    assert not (joined.folder / "study.journal").exists()
    assert json.loads((joined.folder / "sweep.json").read_text())["storage"] == joined.url
    study = optuna.load_study(study_name=joined.folder.name, storage=joined.url)
    check_joined(joined, study)


@pytest.mark.parametrize("storage", ["journal", "sqlite"])
def test_processes_taking_trials_at_once_each_get_different_ones(background, storage):
    """The promise --join rests on, with more contention than training leaves: three
    processes calling the sweep's take_next together on a sweep of 40 trials."""
    taken = background[f"takes-{storage}"].result()
    assert sorted(itertools.chain(*taken)) == list(range(1, 41)), taken
    assert sum(1 for t in taken if t) >= 2, taken  # they did take them side by side


# ---- --resume after an interruption ------------------------------------------------------------


def check_resumed(run: Interrupted) -> dict[int, list[Path]]:
    """After --resume: exit 0, every trial completed, each from one run directory (or from a
    second one when the first never got as far as its config.yaml)."""
    assert run.resumed is not None
    assert run.resumed.code == 0, run.resumed.stderr
    rows = {int(r["trial"]): r for r in read_csv(run.folder / "sweep.csv")}
    assert sorted(rows) == [1, 2, 3]
    assert {r["status"] for r in rows.values()} == {"completed"}
    assert all(r["val_loss"] for r in rows.values())

    study = journal_study(run.folder)
    trials = {t.user_attrs["trial"]: t for t in study.get_trials()}
    assert sorted(trials) == [1, 2, 3]
    assert {t.state for t in trials.values()} == {TrialState.COMPLETE}

    dirs = trial_dirs(run.folder, "sweep")
    assert sorted(dirs) == [1, 2, 3]
    for number, found in dirs.items():
        used = (run.root / rows[number]["run_dir"]).resolve()
        assert used in [d.resolve() for d in found]
        assert (used / "config.yaml").is_file()
        assert summary(used)["status"] == "completed"
        assert summary(used)["epochs_run"] == [4, 150, 5][number - 1]
        assert trials[number].value == pytest.approx(summary(used)["best"]["val_loss"])
        others = [d for d in found if d.resolve() != used]
        assert len(others) <= 1, found
        assert all(not (d / "config.yaml").exists() for d in others), \
            f"trial {number} started twice from scratch: {found}"
    return dirs


def test_resume_after_sigint_continues_the_running_trial(background):
    run = background["sigint"].result()
    assert run.stopped.code == 130, run.stopped.stderr
    assert f"nnctl sweep --resume {run.folder}" in run.stopped.stderr
    assert [d.name.split("-")[1] for d in run.finished_at_stop] == ["1"]
    at_stop = {int(r["trial"]): r["status"] for r in run.csv_at_stop}
    assert at_stop[1] == "completed" and at_stop[2] == "interrupted"
    assert at_stop[3] == "pending"
    assert run.summary_at_stop is not None
    assert run.summary_at_stop["status"] == "interrupted"
    assert run.summary_at_stop["epochs_run"] < 150

    dirs = check_resumed(run)
    assert sum(len(d) for d in dirs.values()) == 3  # one run directory per trial
    assert dirs[2] == [run.running_at_stop]  # continued in its own directory
    log = (run.running_at_stop / "train.log").read_text()
    assert f"resumed from epoch {run.summary_at_stop['epochs_run']}" in log
    assert "resumed from epoch" not in (dirs[3][0] / "train.log").read_text()


def test_resume_after_kill_9_of_the_sweep(background):
    run = background["sigkill"].result()
    assert run.stopped.code == -signal.SIGKILL
    assert run.left_alive == [], "trial processes outlived the killed sweep"
    assert [d.name.split("-")[1] for d in run.finished_at_stop] == ["1"]
    # The trial heard of its sweep's death: it saved a checkpoint and stopped, as on SIGTERM.
    assert run.summary_at_stop is not None
    assert run.summary_at_stop["status"] == "interrupted"
    assert run.summary_at_stop.get("signal") == "SIGTERM"
    at_stop = {int(r["trial"]): r["status"] for r in run.csv_at_stop}
    assert at_stop[1] == "completed" and at_stop[2] == "running"

    dirs = check_resumed(run)
    assert dirs[2] == [run.running_at_stop]
    log = (run.running_at_stop / "train.log").read_text()
    assert f"resumed from epoch {run.summary_at_stop['epochs_run']}" in log


# ---- pruning -----------------------------------------------------------------------------------


def test_median_pruning_stops_bad_trials_which_can_be_resumed(background):
    pruning = background["pruning"].result()
    assert pruning.sweep.code == 0, pruning.sweep.stderr
    folder, root = pruning.folder, pruning.root
    rows = read_csv(folder / "sweep.csv")
    assert len(rows) == 7
    pruned = [r for r in rows if r["status"] == "pruned"]
    assert pruned, rows
    # only the hopeless learning rates are pruned, and well before the end
    assert {float(r["optimizer.lr"]) for r in pruned} <= {1e-5, 2e-5}
    assert all(r["rank"] == "" for r in pruned)
    study = journal_study(folder)
    states = {t.user_attrs["trial"]: t.state for t in study.get_trials()}
    for row in rows:
        expected = TrialState.PRUNED if row["status"] == "pruned" else TrialState.COMPLETE
        assert states[int(row["trial"])] == expected
    # every epoch each trial trained is in the study (a running trial reports only its newest
    # epoch at a time; the ones in between follow when it ends)
    run_dirs = {int(r["trial"]): root / r["run_dir"] for r in rows}
    for trial in study.get_trials():
        epochs = read_csv(run_dirs[trial.user_attrs["trial"]] / "metrics.csv")
        assert trial.intermediate_values == {int(e["epoch"]): float(e["val_loss"])
                                             for e in epochs}

    table = nnctl("runs", "list", "--runs-dir", folder, cwd=root)
    assert table.code == 0, table.stderr

    for row in pruned:
        run_dir = root / row["run_dir"]
        assert 2 <= int(row["epochs"]) < PRUNED_EPOCHS
        before = summary(run_dir)
        assert before["status"] == "pruned"
        assert before["epochs_run"] == int(row["epochs"])
        assert re.search(rf"^{re.escape(run_dir.name)}\s+pruned\s", table.stdout, re.MULTILINE)
        assert (run_dir / "checkpoints").is_dir()

    run_dir = root / pruned[0]["run_dir"]
    resumed = nnctl("train", "--resume", run_dir, "--quiet", cwd=root)
    assert resumed.code == 0, resumed.stderr
    after = summary(run_dir)
    assert after["status"] in ("completed", "early_stopped")
    assert after["epochs_run"] == PRUNED_EPOCHS
    assert f"resumed from epoch {pruned[0]['epochs']}" in (run_dir / "train.log").read_text()


# ---- tpe ---------------------------------------------------------------------------------------


def test_tpe_sweep_is_reproducible_from_its_seed(background):
    seeded = background["tpe"].result()
    params = {}
    for key, (ran, folder) in seeded.runs.items():
        assert ran.code == 0, ran.stderr
        rows = read_csv(folder / "sweep.csv")
        assert sorted(int(r["trial"]) for r in rows) == list(range(1, 7))
        assert {r["status"] for r in rows} == {"completed"}
        params[key] = {int(r["trial"]): (r["optimizer.lr"], r["model.layers.0.units"])
                       for r in rows}
        for lr, units in params[key].values():
            assert 1e-4 <= float(lr) <= 0.1 and int(units) in (4, 8, 16)
        # the values the trials trained with are those in the table
        dirs = trial_dirs(folder, "other" if key == "other" else "sweep")
        assert {n: len(d) for n, d in dirs.items()} == {n: 1 for n in range(1, 7)}
        for number, (lr, units) in params[key].items():
            config = yaml.safe_load((dirs[number][0] / "config.yaml").read_text())
            assert config["optimizer"]["lr"] == float(lr)
            assert config["model"]["layers"][0]["units"] == int(units)
    assert params["a"] == params["b"]
    assert params["a"] != params["other"]
    assert len(set(params["a"].values())) == 6


def test_tpe_reads_a_list_of_numbers_in_order_as_positions(tmp_path):
    """TPE models [4, 8, 16, 32] as positions 0-3, so what it learns of 16 carries to 8 and
    32; lists out of order, and of other values, stay unordered choices."""
    from optuna.distributions import CategoricalDistribution, IntDistribution
    from nnctl.sweep import load_sweep
    from nnctl.sweep.study import choose

    (tmp_path / "base.yaml").write_text(tiny_iris_config(epochs=2))
    (tmp_path / "tpe.yaml").write_text("""\
config: base.yaml
method: tpe
samples: 4
parameters:
  model.layers.0.units: [4, 8, 16, 32]
  optimizer.lr: [0.1, 0.01, 0.001]
  training.batch_size: [64, 16, 32]
  model.layers.0.activation: [relu, tanh, sigmoid]
""")
    sweep = load_sweep(tmp_path / "tpe.yaml")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(20):
        trial = study.ask()
        params = choose(trial, sweep)
        kinds = trial.distributions
        assert kinds["model.layers.0.units"] == IntDistribution(0, 3)
        assert kinds["optimizer.lr"] == IntDistribution(0, 2)
        assert params["model.layers.0.units"] == [4, 8, 16, 32][trial.params["model.layers.0.units"]]
        assert params["optimizer.lr"] == [0.1, 0.01, 0.001][trial.params["optimizer.lr"]]
        assert kinds["training.batch_size"] == CategoricalDistribution([64, 16, 32])
        assert params["training.batch_size"] == trial.params["training.batch_size"]
        assert isinstance(kinds["model.layers.0.activation"], CategoricalDistribution)
        seen.add(params["model.layers.0.units"])
        study.tell(trial, 1.0)
    assert seen == {4, 8, 16, 32}


# ---- checked before anything runs --------------------------------------------------------------


def test_bad_parameter_paths_and_values_exit_2_and_create_nothing(tmp_path, monkeypatch):
    (tmp_path / "base.yaml").write_text(tiny_iris_config(epochs=2))
    (tmp_path / "bad.yaml").write_text("""\
config: base.yaml
method: grid
metric: val_loss
parameters:
  optimizer.lrr: [0.1]
  model.layers.0.units: [4, -1]
""")
    monkeypatch.chdir(tmp_path)
    for extra in ([], ["--runs-dir", "elsewhere"], ["--workers", "0"]):
        result = CliRunner().invoke(app, ["sweep", "bad.yaml", *extra])
        assert result.exit_code == 2, result.output
        assert result.stdout == ""
        errors = result.stderr.splitlines()
        assert "error: bad.yaml:5 parameters.optimizer.lrr: unknown key; did you mean 'lr'?" \
            in errors
        assert any(line.startswith("error: bad.yaml:6 parameters.model.layers.0.units: ")
                   and "-1" in line for line in errors), errors
        assert len(errors) == 2, errors
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "elsewhere").exists()


def test_print_commands_refuses_tpe_and_lists_grid_trials(tmp_path, monkeypatch):
    setup(tmp_path, GRID, epochs=2)
    (tmp_path / "tpe.yaml").write_text(TPE.format(seed=0))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["sweep", "tpe.yaml", "--print-commands"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "tpe chooses each from the ones before" in result.stderr
    assert "--join" in result.stderr

    result = CliRunner().invoke(app, ["sweep", "sweep.yaml", "--print-commands"])
    assert result.exit_code == 0, result.output
    commands = result.stdout.splitlines()
    assert len(commands) == len(GRID_TRIALS)
    for number, (lr, units) in GRID_TRIALS.items():
        line = commands[number - 1]
        assert line.startswith("nnctl train base.yaml ")
        assert f"--set optimizer.lr={lr} --set model.layers.0.units={units} " in line
        assert f"--run-name sweep-{number} " in line
    assert not (tmp_path / "runs").exists()
