"""Seeded train/validation splits and mini-batches."""

from __future__ import annotations

from typing import Optional

import numpy as np


def split_indices(n: int, fraction: float, rng: np.random.Generator,
                  labels: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/validation split; with labels, each class is split in the same proportion
    (at least one validation row for any class with two or more rows)."""
    if labels is None:
        order = rng.permutation(n)
        n_val = int(round(n * fraction))
        return np.sort(order[n_val:]), np.sort(order[:n_val])
    val = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_val = int(round(len(members) * fraction))
        if n_val == 0 and len(members) > 1:
            n_val = 1
        val.append(members[:n_val])
    val_rows = np.sort(np.concatenate(val))
    train_rows = np.setdiff1d(np.arange(n), val_rows)
    return train_rows, val_rows


def batches(n: int, batch_size: int, order: Optional[np.ndarray] = None):
    """Yield index slices (or index arrays, when shuffled) of consecutive batches."""
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        yield slice(start, stop) if order is None else order[start:stop]
