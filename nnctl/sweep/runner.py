"""Running a sweep: workers take trials from the study, run each as an `nnctl train` process
into the sweep folder, follow its metrics.csv epoch by epoch for the pruner, and record how it
ended. sweep.csv is rewritten from the study after every change, so it agrees with the study
whichever machine wrote it last.

`nnctl sweep FILE` creates the folder and the study and runs workers; `--join` adds workers
(any machine that shares the folder); `--resume` continues after an interruption: trials left
running continue with `nnctl train --resume`, the rest start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ..checkpoint import atomic_write
from ..errors import UserError
from ..listing import format_value
from ..nn.threads import usable_cores
from ..runs import create_run_dir, read_metrics, read_summary, write_summary
from . import study as studies
from .spec import Sweep, Trial, load_sweep
from .table import FINISHED, Outcome, rank, read_outcome, read_summary_into, sweep_csv

EXIT_TRIALS_FAILED = 4  # 1 is an internal error, 2 a bad sweep file, 3 a diverged `train`
# How often a running trial's metrics.csv is looked at (a stat; it is read when it grew): often
# enough that a trial of epochs of a few milliseconds stops near the epoch the pruner rejects.
POLL_SECONDS = 0.02
CACHE = "cache"         # the parsed training data, shared by the trials (see nnctl.data.cache)

Log = Callable[[str], None]


def stderr_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class SweepResult:
    folder: Path
    outcomes: list[Outcome]  # every trial of the study, ranked
    exit_code: int


def start(sweep: Sweep, runs_dir: Path, workers: int = 1, threads: Optional[int] = None,
          url: Optional[str] = None, log: Log = stderr_line) -> SweepResult:
    """Create the sweep folder and its study (empty: workers add each trial as they take it),
    then run `workers` workers; with 0, only create them, for workers that `--join` later."""
    folder = create_run_dir(runs_dir, sweep.name, checkpoints=False)
    text = sweep.path.read_bytes()
    atomic_write(folder / "sweep.yaml", lambda f: f.write(text))
    studies.save_settings(folder, sweep, url)
    studies.create(sweep, folder, url)
    pool = Workers(sweep, folder, url, threads, workers, log)
    log(f"sweep {sweep.name}: {len(sweep.trials)} trials ({sweep.spec.method}), "
        f"{pool.workers} at a time, into {folder}")
    return pool.run(reclaim=False)


def open_folder(folder: Path) -> tuple[Sweep, Optional[str]]:
    """The sweep of an existing sweep folder (its copy of the sweep file, its base config)
    and its storage URL (None: the journal file in the folder)."""
    folder = Path(folder)
    if not (folder / "sweep.yaml").is_file():
        raise UserError(f"{folder}: not a sweep folder (no sweep.yaml)")
    settings = studies.read_settings(folder)
    sweep = load_sweep(folder / "sweep.yaml", Path(settings["config"]))
    sweep.name = settings.get("name") or sweep.name  # the trials' run names
    return sweep, settings.get("storage")


def resume(folder: Path, workers: int = 1, threads: Optional[int] = None,
           log: Log = stderr_line) -> SweepResult:
    """Continue an interrupted sweep: its running trials first (from their last checkpoint),
    then the ones not started. Run it when no other worker is running the sweep."""
    sweep, url = open_folder(folder)
    pool = Workers(sweep, Path(folder), url, threads, workers, log)
    return pool.run(reclaim=True)


def join(folder: Path, workers: int = 1, threads: Optional[int] = None,
         log: Log = stderr_line) -> SweepResult:
    """More workers for a sweep that others may be running too."""
    sweep, url = open_folder(folder)
    # Another seed for tpe in each joining process: workers with one seed would propose alike.
    pool = Workers(sweep, Path(folder), url, threads, workers, log, sampler_offset=os.getpid())
    return pool.run(reclaim=False)


class Workers:
    """The workers of one process: threads that each run one trial process at a time."""

    def __init__(self, sweep: Sweep, folder: Path, url: Optional[str], threads: Optional[int],
                 workers: int, log: Log, sampler_offset: int = 0):
        self.sweep, self.folder, self.log = sweep, folder, log
        self.workers = max(0, min(workers, len(sweep.trials)))
        # More threads than cores would make every trial wait for the others.
        self.threads = threads or max(1, usable_cores() // max(1, self.workers))
        self.study = studies.load(sweep, folder, url, sampler_offset)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.cache_filled = threading.Event()
        self.processes: set[subprocess.Popen] = set()
        self.received: list[int] = []
        self.mine: list[Outcome] = []  # the trials this process ran
        self.reclaimed: list = []
        self.errors: list[BaseException] = []  # raised in a worker thread: re-raised at the end
        self.started = time.monotonic()
        self.live = Live(sys.stderr.isatty())

    # ---- the whole run ----------------------------------------------------------------------

    def run(self, reclaim: bool) -> SweepResult:
        if reclaim:
            self.reclaimed = studies.running(self.study)
        with self.lock:
            self.save()
        main = threading.current_thread() is threading.main_thread()
        previous = {s: signal.signal(s, self.forward) for s in (signal.SIGINT, signal.SIGTERM)} \
            if main and self.workers else {}
        ticker = threading.Thread(target=self.tick, daemon=True)
        ticker.start()
        if self.workers:
            threading.Thread(target=self.fill_cache, daemon=True).start()
        try:
            threads = [threading.Thread(target=self.work, name=f"worker-{i}")
                       for i in range(self.workers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                while thread.is_alive():
                    thread.join(timeout=0.2)  # short joins: the main thread takes signals
        finally:
            self.stop.set()
            for s, h in previous.items():
                signal.signal(s, h)
        with self.lock:
            outcomes = self.save()
            self.live.clear()
        if self.errors:
            raise self.errors[0]
        if self.received:
            code = 143 if self.received[0] == signal.SIGTERM else 130
            self.log(f"interrupted: `nnctl sweep --resume {self.folder}` continues the sweep")
        else:
            code = 0 if all(o.status in FINISHED for o in self.mine) else EXIT_TRIALS_FAILED
        return SweepResult(self.folder, outcomes, code)

    def forward(self, signum, frame, by_user: bool = True) -> None:
        """A signal stops the sweep: no new trial starts, the running ones get it and save."""
        if by_user:
            self.received.append(signum)
        self.stop.set()
        for process in list(self.processes):
            try:
                process.send_signal(signum)
            except ProcessLookupError:
                pass

    def fill_cache(self) -> None:
        """Parse the training file into the cache before the first trial starts: trials that
        start together would each wait for one of them to parse it. Not when the trials' own
        parameters may change what is read (a `data.` key); then they fill it themselves."""
        try:
            if not any(key.startswith("data.") for key in self.sweep.spec.parameters):
                from ..config import load_config
                from ..data.loading import fill_cache

                fill_cache(load_config(self.sweep.config).data, self.folder / CACHE)
        except UserError:
            pass  # the trials read the file themselves, and report its problems
        finally:
            self.cache_filled.set()

    def work(self) -> None:
        try:
            while not self.cache_filled.wait(0.2):
                if self.stop.is_set():
                    return
            self.take_trials()
        except BaseException as exc:  # a bug: stop the others, and report it (exit 1)
            self.errors.append(exc)
            self.forward(signal.SIGTERM, None, by_user=False)

    def take_trials(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                trial = self.reclaimed.pop(0) if self.reclaimed else None
            again = trial is not None
            if trial is None:
                trial = studies.take_next(self.study, self.folder, len(self.sweep.trials))
            if trial is None:
                return
            self.run_trial(trial, again)

    # ---- one trial ------------------------------------------------------------------------

    def run_trial(self, trial, again: bool) -> None:
        number = trial.user_attrs["trial"]
        sweep = self.sweep
        params = (studies.choose(trial, sweep) if sweep.spec.method == "tpe"
                  else sweep.trials[number - 1].params)
        outcome = Outcome(Trial(number, params), status="running")
        trial.set_user_attr("params", params)
        trial.set_user_attr("status", "running")
        run_dir = trial.user_attrs.get("run_dir") if again else None
        if again and not run_dir:  # stopped before the sweep saw its run directory
            made = sorted(self.folder.glob(f"{sweep.run_name(outcome.trial)}-*"))
            run_dir = str(made[-1]) if made else None
        cache = ["--cache", str(self.folder / CACHE)]
        if run_dir and Path(run_dir, "config.yaml").is_file():
            outcome.run_dir = run_dir
            command = [*PROGRAM, "train", "--resume", run_dir, "--quiet", "--json",
                       "--threads", str(self.threads), *cache]
        else:
            command = sweep.command(outcome.trial, self.folder, PROGRAM, self.threads) + \
                ["--json", *cache]
        with self.lock:
            self.mine.append(outcome)
            if self.stop.is_set():  # taken as the sweep was stopped: it starts on --resume
                trial.set_user_attr("status", "interrupted")
                outcome.status = "interrupted"
                return
            self.save()
            try:
                process = subprocess.Popen(command, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True,
                                           start_new_session=True, preexec_fn=die_with_parent)
            except OSError as exc:
                outcome.status, outcome.error = "failed", f"cannot start: {exc}"
                self.finish(trial, outcome, pruned=False)
                return
            self.processes.add(process)
        follower = Follower(trial, outcome, self.folder, sweep)
        while True:
            try:
                stdout, stderr = process.communicate(timeout=POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                if follower.follow() and not self.stop.is_set():
                    process.send_signal(signal.SIGTERM)  # saves a checkpoint, exits 143
        follower.follow(prune=False)
        with self.lock:
            self.processes.discard(process)
            read_outcome(outcome, process.returncode, stdout, stderr, sweep.metric)
            if self.received and outcome.status == "failed":
                # stopped by the sweep's signal before it could save anything (still starting)
                outcome.status, outcome.error = "interrupted", ""
            elif follower.pruned and outcome.status == "failed":
                follower.settle_late_stop()
            self.finish(trial, outcome, follower.pruned)

    def finish(self, trial, outcome: Outcome, pruned: bool) -> None:
        """Record how a trial ended, in the study and in its run (under the lock)."""
        from optuna.trial import TrialState

        if pruned and outcome.status == "interrupted":
            outcome.status, outcome.error = "pruned", ""
            mark_pruned(Path(outcome.run_dir))
        for key in ("status", "value", "epochs", "seconds", "run_dir", "error"):
            trial.set_user_attr(key, getattr(outcome, key))
        if outcome.status == "interrupted":
            pass  # left running in the study: --resume continues it
        elif outcome.status == "pruned":
            self.study.tell(trial, state=TrialState.PRUNED)
        elif outcome.ok and outcome.value is not None:
            self.study.tell(trial, outcome.value)
        else:
            if outcome.ok:
                outcome.status, outcome.error = "failed", f"no {self.sweep.metric} in the summary"
                trial.set_user_attr("status", outcome.status)
                trial.set_user_attr("error", outcome.error)
            self.study.tell(trial, state=TrialState.FAIL)
        outcomes = self.save()
        shown = "" if outcome.value is None else f"  {self.sweep.metric} {outcome.value:.4f}"
        params = "  ".join(f"{k}={format_value(v)}" for k, v in outcome.trial.params.items())
        self.live.print(self.log, f"trial {outcome.trial.number} {outcome.status}{shown}  "
                        f"({params})" + (f": {outcome.error}" if outcome.error else ""))
        self.live.print(self.log, self.status_line(outcomes), keep=True)

    # ---- what the user sees ---------------------------------------------------------------

    def outcomes(self) -> list[Outcome]:
        """Every trial of the study, as it stands."""
        from optuna.trial import TrialState

        found = {}
        for frozen in self.study.get_trials(deepcopy=False):
            attrs = frozen.user_attrs
            number = attrs.get("trial")
            if not isinstance(number, int) or not 1 <= number <= len(self.sweep.trials):
                continue  # not one of this sweep's trials (a take that never got its number)
            status = {TrialState.WAITING: "pending"}.get(frozen.state) or attrs.get("status") \
                or frozen.state.name.lower()
            found[number] = Outcome(Trial(number, attrs.get("params") or
                                          self.sweep.trials[number - 1].params),
                                    status, attrs.get("value"), attrs.get("epochs"),
                                    attrs.get("seconds"), attrs.get("run_dir") or "",
                                    attrs.get("error") or "")
        for trial in self.sweep.trials:  # not taken yet
            found.setdefault(trial.number, Outcome(trial, "pending"))
        return rank([found[n] for n in sorted(found)], self.sweep.maximize)

    def save(self) -> list[Outcome]:
        """Rewrite sweep.csv from the study (under the lock); return the ranked outcomes."""
        outcomes = self.outcomes()
        data = sweep_csv(self.sweep, outcomes).encode("utf-8")
        atomic_write(self.folder / "sweep.csv", lambda f: f.write(data))
        return outcomes

    def status_line(self, outcomes: list[Outcome]) -> str:
        counts = {name: 0 for name in ("done", "running", "pruned", "failed")}
        for o in outcomes:
            if o.ok:
                counts["done"] += 1
            elif o.status in ("running", "pruned"):
                counts[o.status] += 1
            elif o.status not in ("pending", "interrupted"):
                counts["failed"] += 1
        best = next((o for o in outcomes if o.rank == 1), None)
        text = (f"{sum(counts.values()) - counts['running']}/{len(outcomes)} trials: "
                + ", ".join(f"{n} {name}" for name, n in counts.items()))
        if best is not None:
            text += f"; best {self.sweep.metric} {best.value:.4g} (trial {best.trial.number})"
        return text + f"; {elapsed(time.monotonic() - self.started)}"

    def tick(self) -> None:
        """On a terminal, the live line's clock moves every second."""
        while self.live.on and not self.stop.wait(1.0):
            with self.lock:
                self.live.print(self.log, self.status_line(self.outcomes()), keep=True)


class Live:
    """One line at the bottom of a terminal, rewritten in place; without a terminal, each
    status line is printed once, as a line of the log."""

    def __init__(self, on: bool):
        self.on = on
        self.shown = False

    def print(self, log: Log, line: str, keep: bool = False) -> None:
        if not self.on:
            log(line)
            return
        sys.stderr.write("\r\033[K" + line + ("" if keep else "\n"))
        sys.stderr.flush()
        self.shown = keep

    def clear(self) -> None:
        if self.on and self.shown:
            sys.stderr.write("\n")
            self.shown = False


class Follower:
    """A running trial's metrics.csv, read as it grows: each new epoch's metric goes to the
    study, and the pruner says whether the trial should stop."""

    def __init__(self, trial, outcome: Outcome, folder: Path, sweep: Sweep):
        self.trial, self.outcome, self.folder, self.sweep = trial, outcome, folder, sweep
        self.epochs = sweep.epochs  # the config's; a trial may set its own
        self.epoch = 0
        self.pruned = False
        self.seen_size = -1  # metrics.csv's size when it was last read
        self.unreported: list[tuple[float, int]] = []  # (value, epoch) not yet in the study

    def run_dir(self) -> Optional[Path]:
        if not self.outcome.run_dir:
            made = sorted(self.folder.glob(f"{self.sweep.run_name(self.outcome.trial)}-*"))
            if not made:
                return None
            self.outcome.run_dir = str(made[-1])
            self.trial.set_user_attr("run_dir", self.outcome.run_dir)
        return Path(self.outcome.run_dir)

    def follow(self, prune: bool = True) -> bool:
        """Report the epochs written since the last call; True when the pruner has just
        rejected the trial. With `prune` false (it has ended), report every epoch not
        reported yet."""
        new = self.new_rows()
        for row in new:
            value = row.get(self.sweep.metric)
            if isinstance(value, (int, float)) and value == value:
                self.unreported.append((float(value), int(row["epoch"])))
            self.epoch = int(row["epoch"])
        # Each report is a locked, fsynced append to the study's journal, and epochs can be
        # faster than that: while the trial runs, only its newest epoch is reported, in time
        # for the pruner; the ones in between follow when it ends (other trials are judged
        # against a finished trial's value at every epoch).
        if not prune:
            due, self.unreported = self.unreported, []
        elif new:
            due, self.unreported = self.unreported[-1:], self.unreported[:-1]
        else:
            due = []
        for value, epoch in due:
            self.trial.report(value, epoch)
        last = self.epoch >= int(self.outcome.trial.params.get("training.epochs", self.epochs))
        if prune and new and not last and not self.pruned and \
                self.sweep.spec.early_terminate is not None and self.trial.should_prune():
            self.pruned = True
            return True
        return False  # told once: a second SIGTERM could land after the trial's handler is gone

    def new_rows(self) -> list[dict]:
        """metrics.csv's rows past the last epoch seen; [] when it has not grown."""
        run_dir = self.run_dir()
        if run_dir is None:
            return []
        try:
            size = (run_dir / "metrics.csv").stat().st_size
        except OSError:
            return []
        if size == self.seen_size:
            return []
        self.seen_size = size
        try:
            rows = read_metrics(run_dir, whole_lines=True)  # not a row being appended
        except UserError:
            return []  # tampered with: the trial's own process reports it
        return [row for row in rows if row.get("epoch", 0) > self.epoch]

    def settle_late_stop(self) -> None:
        """The pruner's SIGTERM came as training ended, after the trial's handler was gone,
        and killed it: a trial whose summary says it finished keeps its status and metric
        (it is not pruned); one stopped part-way counts as interrupted (then pruned)."""
        try:
            summary = read_summary(Path(self.outcome.run_dir)) if self.outcome.run_dir else None
        except UserError:
            summary = None
        if summary is not None:
            read_summary_into(self.outcome, summary, self.sweep.metric)
        if self.outcome.status in FINISHED:
            self.pruned = False
        else:
            self.outcome.status, self.outcome.error = "interrupted", ""


def mark_pruned(run_dir: Path) -> None:
    """The run stopped for the pruner is saved like an interrupted one (resumable), and its
    summary says why."""
    try:
        summary = read_summary(run_dir)
    except UserError:
        return  # unreadable: runs list marks it, and resuming the run rewrites it
    if summary is None:
        return
    summary["status"] = "pruned"
    summary.pop("signal", None)
    write_summary(run_dir, summary)


def elapsed(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


PROGRAM = [sys.executable, "-m", "nnctl.cli"]


def die_with_parent() -> None:
    """In a trial's process, before it runs: SIGTERM it when the sweep dies (even by kill -9),
    so it saves a checkpoint and stops, instead of training on where no one is waiting."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
