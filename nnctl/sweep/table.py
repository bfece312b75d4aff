"""A sweep's trials as the user sees them: each trial's outcome read from its `nnctl train`
process, ranked by the metric, in sweep.csv and in the table printed at the end."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..listing import format_table, format_value
from .spec import Sweep, Trial, yaml_value

SUCCESS = ("completed", "early_stopped")
FINISHED = SUCCESS + ("pruned",)  # a sweep whose trials all ended so exits 0


@dataclass
class Outcome:
    trial: Trial
    status: str = "pending"  # pending | running | the run's status (pruned too) | failed
    value: Optional[float] = None
    epochs: Optional[int] = None
    seconds: Optional[float] = None
    run_dir: str = ""
    error: str = ""
    rank: Optional[int] = None

    @property
    def ok(self) -> bool:
        return self.status in SUCCESS


def metric_value(summary: dict, metric: str) -> Optional[float]:
    """`val_accuracy` etc. from the summary's best row; `test_<m>` from its test metrics."""
    if metric.startswith("test_"):
        found = (summary.get("test") or {}).get(metric.removeprefix("test_"))
    else:
        found = (summary.get("best") or {}).get(metric)
    return float(found) if isinstance(found, (int, float)) else None


def read_summary_into(outcome: Outcome, summary: dict, metric: str) -> None:
    """A trial's status, epochs, time and metric from its run's summary."""
    outcome.status = str(summary.get("status", "failed"))
    outcome.run_dir = str(summary.get("run_dir", "")) or outcome.run_dir
    outcome.epochs = summary.get("epochs_run")
    outcome.seconds = summary.get("wall_seconds")
    outcome.value = metric_value(summary, metric)
    outcome.error = ""


def read_outcome(outcome: Outcome, returncode: int, stdout: str, stderr: str,
                 metric: str) -> None:
    """Fill an outcome from a finished `nnctl train --json` process."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    summary = None
    if lines and lines[-1].lstrip().startswith("{"):
        try:
            summary = json.loads(lines[-1])
        except json.JSONDecodeError:
            pass
    if summary:
        read_summary_into(outcome, summary, metric)
    else:
        outcome.status = "failed"
        if lines and Path(lines[0]).is_dir():
            outcome.run_dir = lines[0]
    if returncode != 0 and outcome.ok:
        outcome.status = "failed"
    if outcome.status != "interrupted" and (returncode != 0 or not outcome.ok):
        errors = [line.removeprefix("error: ") for line in stderr.splitlines()
                  if line.startswith("error: ")]
        if not errors and stderr.strip():
            errors = [stderr.strip().splitlines()[-1]]  # a traceback's last line
        outcome.error = "; ".join(errors) or f"exit code {returncode}"


def rank(outcomes: list[Outcome], maximize: bool) -> list[Outcome]:
    """Completed trials with a metric value, best first (ties in trial order), then the rest
    in trial order. Ranks 1..k go to the first group."""
    scored = [o for o in outcomes if o.ok and o.value is not None]
    scored.sort(key=lambda o: (-o.value if maximize else o.value, o.trial.number))
    rest = sorted((o for o in outcomes if o not in scored), key=lambda o: o.trial.number)
    for i, outcome in enumerate(scored):
        outcome.rank = i + 1
    for outcome in rest:
        outcome.rank = None
    return scored + rest


def sweep_csv(sweep: Sweep, outcomes: list[Outcome]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    keys = list(sweep.spec.parameters)
    writer.writerow(["rank", "trial", *keys, "status", sweep.metric, "epochs", "seconds",
                     "run_dir", "error"])
    for o in outcomes:
        writer.writerow([o.rank or "", o.trial.number,
                         *(yaml_value(o.trial.params[k]) if k in o.trial.params else "" for k in keys),
                         o.status,
                         "" if o.value is None else repr(o.value),
                         "" if o.epochs is None else o.epochs,
                         "" if o.seconds is None else o.seconds, o.run_dir, o.error])
    return buffer.getvalue()


def ranked_table(sweep: Sweep, outcomes: list[Outcome]) -> str:
    keys = list(sweep.spec.parameters)
    headers = ["rank", "trial", *keys, "status", sweep.metric, "epochs", "time", "run"]
    rows = [[str(o.rank or "-"), str(o.trial.number),
             *(format_value(o.trial.params[k]) if k in o.trial.params else "" for k in keys),
             o.status,
             "" if o.value is None else f"{o.value:.4f}",
             "" if o.epochs is None else str(o.epochs),
             "" if o.seconds is None else f"{o.seconds:.1f}s",
             Path(o.run_dir).name if o.run_dir else ""] for o in outcomes]
    n = len(keys)
    text = format_table(headers, rows, right={0, 1, *range(2, 2 + n), 3 + n, 4 + n, 5 + n})
    errors = [f"trial {o.trial.number}: {o.error}" for o in outcomes if o.error]
    return text + ("\n\n" + "\n".join(errors) if errors else "")
