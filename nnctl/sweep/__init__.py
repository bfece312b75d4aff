"""Hyperparameter sweeps: the sweep file and its trials (spec), the study that hands trials to
workers and prunes them (study, on Optuna), the workers that run each trial as an
`nnctl train` process (runner), and the ranked table of outcomes (table)."""

from .runner import SweepResult, join, open_folder, resume, start
from .study import check_storage_url
from .spec import (
    Range, Sweep, SweepSpec, Trial, generate_trials, load_sweep, print_commands, yaml_value,
)
from .table import Outcome, rank, ranked_table, read_outcome, sweep_csv

__all__ = ["Outcome", "Range", "check_storage_url", "Sweep", "SweepResult", "SweepSpec", "Trial", "generate_trials",
           "join", "load_sweep", "open_folder", "print_commands", "rank", "ranked_table",
           "read_outcome", "resume", "start", "sweep_csv", "yaml_value"]
