"""Helpers for the gradient and agreement tests: central differences, relative error, and
valid inputs for each loss."""

from __future__ import annotations

from typing import Callable

import numpy as np

from nnctl.nn.activations import softmax

EPS = 1e-6  # central-difference step
TOL = 1e-6  # largest relative error a gradient check accepts


def numerical_grad(f: Callable[[], float], x: np.ndarray, eps: float = EPS) -> np.ndarray:
    """dF/dx by central differences, (f(x + eps e_i) - f(x - eps e_i)) / (2 eps).

    `f` takes no arguments and reads `x` through a closure or a layer, so each element of `x`
    is perturbed in place and restored afterwards.
    """
    assert x.dtype == np.float64, "gradient checks run in float64"
    grad = np.empty_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        up = f()
        x[i] = old - eps
        down = f()
        x[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad


def rel_error(a, b) -> float:
    """||a - b|| / (||a|| + ||b||) over the whole array; 0 when both are 0."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / max(denom, np.finfo(np.float64).tiny))


def loss_inputs(name: str, rng: np.random.Generator, n: int = 6, k: int = 4,
                dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """(y_pred, y_true) inside the loss's domain and away from its kinks.

    A new loss needs an entry here: the KeyError says so.
    """
    if name == "categorical_crossentropy":
        return softmax(rng.normal(size=(n, k))).astype(dtype), rng.integers(0, k, size=n)
    if name == "binary_crossentropy":
        return (rng.uniform(0.05, 0.95, size=(n, k)).astype(dtype),
                rng.integers(0, 2, size=(n, k)).astype(dtype))
    if name == "mae":  # |y_pred - y| >= 0.1: no ties, no sign kink within eps
        y = rng.normal(size=(n, k))
        gap = rng.uniform(0.1, 1.0, size=(n, k)) * rng.choice([-1.0, 1.0], size=(n, k))
        return (y + gap).astype(dtype), y.astype(dtype)
    if name == "mse":
        return rng.normal(size=(n, k)).astype(dtype), rng.normal(size=(n, k)).astype(dtype)
    raise KeyError(f"loss_inputs has no inputs for the loss {name!r}; add them")
