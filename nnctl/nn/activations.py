"""Element-wise activations and softmax, each with its backward pass.

Every activation maps pre-activations `z` to outputs `y` and, given the upstream gradient `dy`,
returns `dz`. Backward receives both `z` and `y` so each rule can use whichever is cheaper.
Arrays keep their dtype: float32 in, float32 out.
"""

from __future__ import annotations

import numpy as np


class Activation:
    name: str

    def forward(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class Linear(Activation):
    """y = z;  dz = dy."""

    name = "linear"

    def forward(self, z):
        return z

    def backward(self, dy, z, y):
        return dy


class Sigmoid(Activation):
    """y = 1 / (1 + e^-z);  dz = dy * y * (1 - y)."""

    name = "sigmoid"

    def forward(self, z):
        return sigmoid(z)

    def backward(self, dy, z, y):
        dz = y * (1 - y)
        dz *= dy
        return dz


class ReLU(Activation):
    """y = max(z, 0);  dz = dy * [z > 0] (the derivative at 0 is taken as 0, as in PyTorch)."""

    name = "relu"

    def forward(self, z):
        return np.maximum(z, 0)

    def backward(self, dy, z, y):
        return dy * (z > 0)


class Tanh(Activation):
    """y = tanh(z);  dz = dy * (1 - y^2)."""

    name = "tanh"

    def forward(self, z):
        return np.tanh(z)

    def backward(self, dy, z, y):
        dz = 1 - y * y
        dz *= dy
        return dz


class Softmax(Activation):
    """y_i = e^{z_i} / sum_j e^{z_j} per row;  dz = y * (dy - sum_j dy_j y_j).

    The backward pass is the full Jacobian-vector product (J_ij = y_i (delta_ij - y_j)), not
    just its diagonal y_i (1 - y_i).
    """

    name = "softmax"

    def forward(self, z):
        return softmax(z)

    def backward(self, dy, z, y):
        return y * (dy - np.sum(dy * y, axis=-1, keepdims=True))


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function without overflow: e^-|z| never exceeds 1."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by the row maximum so exp never overflows."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return e


ACTIVATIONS: dict[str, type[Activation]] = {
    cls.name: cls for cls in (Linear, Sigmoid, ReLU, Tanh, Softmax)
}


def get_activation(name: str) -> Activation:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(
            f"Unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}"
        ) from None
