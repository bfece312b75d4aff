"""Hyperparameter sweeps: the sweep file and its trials (spec), the study that hands trials to
workers and prunes them (study, on Optuna), and the workers that run each trial as an
`nnctl train` process (runner)."""

from .spec import (
    Outcome, Range, Sweep, SweepSpec, Trial, generate_trials, load_sweep, print_commands,
    rank, ranked_table, read_outcome, run_sweep, sweep_csv, yaml_value,
)

__all__ = ["Outcome", "Range", "Sweep", "SweepSpec", "Trial", "generate_trials", "load_sweep",
           "print_commands", "rank", "ranked_table", "read_outcome", "run_sweep", "sweep_csv",
           "yaml_value"]
