"""What every layer shares: parameters that carry their gradients, and the layer interface."""

from __future__ import annotations

import numpy as np


class Param:
    """A trainable array and the gradient of the loss with respect to it (same shape, dtype)."""

    __slots__ = ("value", "grad")

    def __init__(self, value: np.ndarray):
        self.value = value
        self.grad = np.zeros_like(value)

    def __repr__(self) -> str:
        return f"Param(shape={self.value.shape}, dtype={self.value.dtype})"


class Layer:
    """A layer is built once for an input shape, then runs forward and backward on batches.

    `backward` receives dL/d(output) for the batch last seen by `forward`, overwrites each
    parameter's `grad` with dL/d(param) (penalties included), and returns dL/d(input) unless
    `input_grad` is false (the first layer's input gradient is never needed).
    """

    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator,
              dtype: np.dtype) -> tuple[int, ...]:
        """Create parameters for inputs of `input_shape` (no batch axis); return the output shape."""
        return input_shape

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        raise NotImplementedError

    def parameters(self) -> dict[str, Param]:
        return {}

    def penalty(self) -> float:
        """The L1/L2 term this layer adds to the loss."""
        return 0.0


def weight_penalty(weights: list[np.ndarray], l1: float, l2: float) -> float:
    """l1 * sum|W| + l2 * sum W^2 over the given weight matrices (never biases)."""
    total = 0.0
    for w in weights:
        if l1:
            total += l1 * float(np.abs(w).sum())
        if l2:
            total += l2 * float(np.vdot(w, w))
    return total


def add_penalty_grad(param: Param, l1: float, l2: float) -> None:
    """grad += l1 * sign(W) + 2 * l2 * W, the gradient of `weight_penalty`."""
    if l1:
        param.grad += l1 * np.sign(param.value)
    if l2:
        param.grad += (2 * l2) * param.value
