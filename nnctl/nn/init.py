"""Weight initializers. Each draws from the generator it is given, never from global state.

For a weight matrix of shape (fan_in, fan_out):
  xavier_uniform  U(-a, a), a = sqrt(6 / (fan_in + fan_out))
  xavier_normal   N(0, s^2), s = sqrt(2 / (fan_in + fan_out))
  he_uniform      U(-a, a), a = sqrt(6 / fan_in)      (both bounds use fan_in)
  he_normal       N(0, s^2), s = sqrt(2 / fan_in)
  orthogonal      Q of the QR decomposition of a normal matrix, signs fixed by diag(R)
Biases start at zero.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

Initializer = Callable[[tuple[int, int], np.random.Generator, np.dtype], np.ndarray]


def xavier_uniform(shape, rng, dtype):
    limit = np.sqrt(6.0 / (shape[0] + shape[1]))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def xavier_normal(shape, rng, dtype):
    std = np.sqrt(2.0 / (shape[0] + shape[1]))
    return (rng.standard_normal(size=shape) * std).astype(dtype)


def he_uniform(shape, rng, dtype):
    limit = np.sqrt(6.0 / shape[0])
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def he_normal(shape, rng, dtype):
    std = np.sqrt(2.0 / shape[0])
    return (rng.standard_normal(size=shape) * std).astype(dtype)


def orthogonal(shape, rng, dtype):
    rows, cols = shape
    a = rng.standard_normal(size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    # Multiplying by sign(diag(R)) makes Q uniformly distributed over orthogonal matrices.
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return np.ascontiguousarray(q[:rows, :cols]).astype(dtype)


INITIALIZERS: dict[str, Initializer] = {
    "xavier_uniform": xavier_uniform,
    "xavier_normal": xavier_normal,
    "he_uniform": he_uniform,
    "he_normal": he_normal,
    "orthogonal": orthogonal,
}

# The dense-layer initializers; `orthogonal` is offered for recurrent weights only.
DENSE_INITIALIZERS = ("xavier_uniform", "xavier_normal", "he_uniform", "he_normal")


def default_init(activation: str) -> str:
    """He for ReLU, Xavier otherwise (Glorot & Bengio 2010; He et al. 2015)."""
    return "he_uniform" if activation == "relu" else "xavier_uniform"


def get_initializer(name: str) -> Initializer:
    try:
        return INITIALIZERS[name]
    except KeyError:
        raise ValueError(
            f"Unknown initializer {name!r}; expected one of {sorted(INITIALIZERS)}"
        ) from None
