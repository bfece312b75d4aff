"""A sweep's state as an Optuna study: workers add the sweep's trials to it one at a time, in
order, each under a lock on the sweep folder (so each trial runs exactly once, wherever the
workers run), report each epoch's metric to the pruner, and record how each trial ended.

The study lives in a journal file in the sweep folder (Optuna's JournalFileBackend, safe for
several processes and machines sharing the folder), or in a database server given by URL.
Optuna is imported only here, when a sweep runs.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ..checkpoint import atomic_write
from ..errors import ConfigError, UserError
from .spec import Sweep

if TYPE_CHECKING:
    import optuna

JOURNAL = "study.journal"
SETTINGS = "sweep.json"  # where the study is, and the base config, for --resume and --join


def _optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # nnctl prints its own progress
    return optuna


def storage(folder: Path, url: Optional[str] = None):
    """The study's storage: a journal file in the sweep folder, or the database at `url`."""
    optuna = _optuna()
    if url is None:
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(folder / JOURNAL)))
    try:
        return optuna.storages.RDBStorage(url)
    except Exception as exc:  # SQLAlchemy's errors for a bad URL, driver or server
        raise UserError(f"--storage {_safe(url)}: cannot open ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0]})") from None


def _safe(url: str) -> str:
    """A database URL without its password, to print."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if at and ":" in credentials:
        credentials = credentials.split(":", 1)[0] + ":***"
    return f"{scheme}{sep}{credentials}{at}{host}"


def save_settings(folder: Path, sweep: Sweep, url: Optional[str]) -> None:
    settings = {"study": folder.name, "name": sweep.name, "storage": url,
                "config": str(Path(sweep.config).resolve())}
    data = json.dumps(settings, indent=2).encode("utf-8")
    atomic_write(folder / SETTINGS, lambda f: f.write(data))


def read_settings(folder: Path) -> dict:
    path = folder / SETTINGS
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
        if not (isinstance(settings.get("study"), str) and isinstance(settings.get("config"), str)):
            raise ValueError("missing study or config")
    except FileNotFoundError:
        raise UserError(f"{folder}: not a sweep folder (no {SETTINGS})") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read ({exc})") from None
    return settings


def sampler(sweep: Sweep, worker: int = 0):
    """TPE for `method: tpe` (seeded: worker 0 of the first process reproduces a sweep; other
    workers get other seeds so they do not propose the same values); grid and random trials
    carry their values, so their sampler never draws."""
    optuna = _optuna()
    if sweep.spec.method == "tpe":
        # constant_liar: a running trial counts as a poor one, so parallel workers spread out
        return optuna.samplers.TPESampler(seed=sweep.spec.seed + worker, constant_liar=True)
    return optuna.samplers.RandomSampler(seed=sweep.spec.seed)


def pruner(sweep: Sweep):
    optuna = _optuna()
    rule = sweep.spec.early_terminate
    if rule is None:
        return optuna.pruners.NopPruner()
    if rule.type == "median":
        return optuna.pruners.MedianPruner(n_warmup_steps=rule.min_epochs)
    return optuna.pruners.HyperbandPruner(min_resource=rule.min_epochs,
                                          max_resource=max(sweep.epochs, rule.min_epochs + 1))


def create(sweep: Sweep, folder: Path, url: Optional[str]) -> "optuna.Study":
    """A new, empty study named after the sweep folder."""
    optuna = _optuna()
    direction = "maximize" if sweep.maximize else "minimize"
    try:
        return optuna.create_study(storage=storage(folder, url), study_name=folder.name,
                                   direction=direction, sampler=sampler(sweep),
                                   pruner=pruner(sweep))
    except optuna.exceptions.DuplicatedStudyError:
        raise UserError(f"--storage {_safe(url or '')}: already holds a study named "
                        f"{folder.name!r}") from None


def load(sweep: Sweep, folder: Path, url: Optional[str], worker: int = 0) -> "optuna.Study":
    optuna = _optuna()
    try:
        return optuna.load_study(study_name=folder.name, storage=storage(folder, url),
                                 sampler=sampler(sweep, worker), pruner=pruner(sweep))
    except KeyError:
        raise UserError(f"{folder}: its study {folder.name!r} is not in the storage") from None


def take_next(study: "optuna.Study", folder: Path, total: int) -> Optional["optuna.Trial"]:
    """The sweep's next trial (the lowest number not yet in the study), now running, or None
    when all `total` are taken. Workers take turns under a lock on a file in the sweep folder
    they share, so two never take the same number: the storage's own compare-and-set is not
    atomic across processes on every database (SQLite has no SELECT ... FOR UPDATE)."""
    # fcntl locks belong to the process, so the worker threads of one process take turns
    # under a thread lock first
    with _TAKING, _folder_lock(folder / TAKE_LOCK):
        taken = {t.user_attrs.get("trial") for t in study.get_trials(deepcopy=False)}
        number = next((n for n in range(1, total + 1) if n not in taken), None)
        if number is None:
            return None
        trial = study.ask()
        trial.set_user_attr("trial", number)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        return trial


TAKE_LOCK = ".take.lock"
_TAKING = threading.Lock()


@contextmanager
def _folder_lock(path: Path):
    """An exclusive POSIX lock (fcntl.lockf, which NFS carries between machines), released
    when the block ends or the process dies."""
    import fcntl

    with open(path, "a+b") as f:
        fcntl.lockf(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(f, fcntl.LOCK_UN)


def running(study: "optuna.Study") -> list["optuna.Trial"]:
    """Trials marked running: after an interruption, the ones to continue. One that never got
    its number (its worker died right after taking it) is marked failed: its number is still
    free, and the next worker takes it again."""
    optuna = _optuna()
    from optuna.trial import TrialState

    found = []
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if isinstance(frozen.user_attrs.get("trial"), int):
            found.append(optuna.trial.Trial(study, frozen._trial_id))
        else:
            study.tell(frozen.number, state=TrialState.FAIL)
    return found


def choose(trial: "optuna.Trial", sweep: Sweep) -> dict[str, Any]:
    """A tpe trial's values, suggested by the sampler (or those it was given before an
    interruption): ranges are float or int distributions; a list of numbers in order
    ([16, 32, 64, 128]) is a range of positions in it, so that what TPE learns of one value
    carries to its neighbours (as Optuna users write suggest_int("units", 16, 128, log=True));
    other lists are unordered choices."""
    params = {}
    for key, parameter in sweep.spec.parameters.items():
        if isinstance(parameter, list) and _ordered(parameter):
            params[key] = parameter[trial.suggest_int(key, 0, len(parameter) - 1)]
        elif isinstance(parameter, list):
            choices = parameter if all(_plain(v) for v in parameter) else list(range(len(parameter)))
            value = trial.suggest_categorical(key, choices)
            params[key] = value if choices is parameter else parameter[value]
        elif parameter.distribution == "int_uniform":
            params[key] = trial.suggest_int(key, int(parameter.min), int(parameter.max))
        else:
            value = trial.suggest_float(key, parameter.min, parameter.max,
                                        log=parameter.distribution == "log_uniform")
            params[key] = float(f"{value:.6g}")  # as random draws: readable, and the value used
            params[key] = min(max(params[key], parameter.min), parameter.max)
    return params


def _ordered(values: list) -> bool:
    """Three or more numbers, strictly increasing or strictly decreasing."""
    if len(values) < 3 or not all(type(v) in (int, float) for v in values):
        return False
    pairs = list(zip(values, values[1:]))
    return all(b > a for a, b in pairs) or all(b < a for a, b in pairs)


def _plain(value: Any) -> bool:
    """Values Optuna stores as categorical choices as they are (others go by position)."""
    return value is None or isinstance(value, (bool, int, float, str))


def check_storage_url(url: str) -> None:
    if "://" not in url:
        raise ConfigError(f"--storage {url}: expected a database URL such as "
                          "sqlite:///sweeps.db or postgresql://user@host/db")

