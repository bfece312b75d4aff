"""Inverted dropout."""

from __future__ import annotations

import numpy as np

from .base import Layer


class Dropout(Layer):
    """Training: Y = X * M / (1 - rate), M_ij ~ Bernoulli(1 - rate); dX = dY * M / (1 - rate).

    Evaluation and prediction: Y = X. Scaling at training time keeps E[Y] = X, so nothing
    changes at evaluation. The mask comes from the generator given to `build`.
    """

    def __init__(self, rate: float):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Invalid dropout rate: {rate}")
        self.rate = float(rate)

    def build(self, input_shape, rng, dtype):
        self.rng = rng
        return input_shape

    def forward(self, x, training=False):
        if not training or self.rate == 0.0:
            self._mask = None
            return x
        keep = self.rng.random(x.shape, dtype=np.float32) >= self.rate
        self._mask = keep * x.dtype.type(1.0 / (1.0 - self.rate))  # bool * scalar: x's dtype
        return x * self._mask

    def backward(self, dy, input_grad=True):
        return dy if self._mask is None else dy * self._mask
