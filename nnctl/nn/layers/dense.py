"""Fully connected layer."""

from __future__ import annotations

import numpy as np

from ..activations import get_activation
from .. import threads
from ..init import default_init, get_initializer
from .base import Layer, Param, add_penalty_grad, weight_penalty


class Dense(Layer):
    """Z = X W + b,  Y = act(Z), with W of shape (inputs, units).

    Backward: dZ = act'(dY),  dW = X^T dZ (+ l1 sign(W) + 2 l2 W),  db = sum over rows of dZ,
    dX = dZ W^T. With `activate=False` the layer stops at Z (the logits), so a loss can fuse
    its gradient with softmax or sigmoid.
    """

    def __init__(self, units: int, activation: str = "linear", init: str | None = None,
                 l1: float = 0.0, l2: float = 0.0):
        if units <= 0:
            raise ValueError(f"Invalid number of units: {units}")
        self.units = units
        self.activation = get_activation(activation)
        self.init = init or default_init(activation)
        self.l1, self.l2 = float(l1), float(l2)

    def build(self, input_shape, rng, dtype):
        if len(input_shape) != 1:
            raise ValueError(f"dense expects flat inputs, got shape {input_shape}")
        initializer = get_initializer(self.init)
        self.W = Param(initializer((input_shape[0], self.units), rng, dtype))
        self.b = Param(np.zeros(self.units, dtype=dtype))
        return (self.units,)

    def forward(self, x, training=False, activate=True):
        z = threads.matmul(x, self.W.value)
        z += self.b.value
        self._x, self._z, self._activated = x, z, activate
        if not activate:
            return z
        self._y = self.activation.forward(z)
        return self._y

    def backward(self, dy, input_grad=True):
        dz = self.activation.backward(dy, self._z, self._y) if self._activated else dy
        threads.matmul(self._x.T, dz, out=self.W.grad)
        add_penalty_grad(self.W, self.l1, self.l2)
        dz.sum(axis=0, out=self.b.grad)
        return threads.matmul(dz, self.W.value.T) if input_grad else None

    def parameters(self):
        return {"W": self.W, "b": self.b}

    def penalty(self):
        return weight_penalty([self.W.value], self.l1, self.l2)
