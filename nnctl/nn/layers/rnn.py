"""Simple (Elman) recurrent layer, trained by backpropagation through time."""

from __future__ import annotations

import numpy as np

from ..activations import get_activation
from .. import threads
from ..init import default_init, get_initializer
from .base import Layer, Param, add_penalty_grad, weight_penalty


class RNN(Layer):
    """Z_t = X_t W_x + H_{t-1} W_h + b,  H_t = act(Z_t),  H_0 = 0, for inputs X of shape (N, T, F).

    Backward (BPTT): dH_t = dY_t + dZ_{t+1} W_h^T,  dZ_t = act'(dH_t) for t = T..1;  then
    dW_x = sum_t X_t^T dZ_t,  dW_h = sum_t H_{t-1}^T dZ_t,  db = sum_t,n dZ_t,  dX_t = dZ_t W_x^T.
    The output is H_T (N, units), or every H_t (N, T, units) with `return_sequences`.
    """

    def __init__(self, units: int, activation: str = "tanh", return_sequences: bool = False,
                 init: str | None = None, recurrent_init: str = "orthogonal",
                 l1: float = 0.0, l2: float = 0.0):
        if units <= 0:
            raise ValueError(f"Invalid number of units: {units}")
        if activation == "softmax":
            raise ValueError("rnn does not support the softmax activation; "
                             "use tanh, relu, sigmoid or linear")
        self.units = units
        self.activation = get_activation(activation)
        self.return_sequences = bool(return_sequences)
        self.init = init or default_init(activation)
        self.recurrent_init = recurrent_init
        for name in (self.init, self.recurrent_init):
            get_initializer(name)  # an unknown name fails here, not at build time
        self.l1, self.l2 = float(l1), float(l2)

    def build(self, input_shape, rng, dtype):
        if len(input_shape) != 2 or min(input_shape) < 1:
            raise ValueError(
                f"rnn expects sequences of shape (steps, features), got shape {tuple(input_shape)}"
            )
        steps, features = input_shape
        self.features = features
        self.W_x = Param(get_initializer(self.init)((features, self.units), rng, dtype))
        self.W_h = Param(get_initializer(self.recurrent_init)((self.units, self.units), rng, dtype))
        self.b = Param(np.zeros(self.units, dtype=dtype))
        return (steps, self.units) if self.return_sequences else (self.units,)

    def forward(self, x, training=False):
        if x.ndim != 3 or x.shape[2] != self.features or x.shape[1] < 1:
            raise ValueError(
                f"rnn expects inputs of shape (batch, steps, {self.features}), got {x.shape}"
            )
        n, steps, features = x.shape
        # Time-major internally: each step's (N, units) slice is contiguous for its matmul.
        xt = np.ascontiguousarray(x.transpose(1, 0, 2))
        z = threads.matmul(xt.reshape(-1, features), self.W_x.value).reshape(steps, n, self.units)
        z += self.b.value
        h = np.empty((steps + 1, n, self.units), dtype=z.dtype)
        h[0] = 0
        w_h, act = self.W_h.value, self.activation
        for t in range(steps):
            if t:
                z[t] += h[t] @ w_h
            h[t + 1] = act.forward(z[t])
        self._x, self._z, self._h = xt, z, h
        return h[1:].transpose(1, 0, 2) if self.return_sequences else h[steps]

    def backward(self, dy, input_grad=True):
        xt, z, h = self._x, self._z, self._h
        steps, n, units = z.shape
        w_h_t, act = self.W_h.value.T, self.activation
        dy_t = dy.transpose(1, 0, 2) if self.return_sequences else None
        dz = np.empty_like(z)
        carry = None  # dL/dH_t through H_{t+1}: dZ_{t+1} W_h^T
        for t in range(steps - 1, -1, -1):
            if dy_t is not None:
                dh = dy_t[t] if carry is None else dy_t[t] + carry
            else:
                dh = dy if carry is None else carry
            dz[t] = act.backward(dh, z[t], h[t + 1])
            if t:
                carry = dz[t] @ w_h_t
        dz2 = dz.reshape(-1, units)
        threads.matmul(xt.reshape(-1, xt.shape[2]).T, dz2, out=self.W_x.grad)
        # H_0 = 0 contributes nothing, so pair H_1..H_{T-1} with dZ_2..dZ_T.
        threads.matmul(h[1:steps].reshape(-1, units).T, dz[1:].reshape(-1, units),
                       out=self.W_h.grad)
        np.sum(dz2, axis=0, out=self.b.grad)
        add_penalty_grad(self.W_x, self.l1, self.l2)
        add_penalty_grad(self.W_h, self.l1, self.l2)
        if not input_grad:
            return None
        return threads.matmul(dz2, self.W_x.value.T).reshape(steps, n, -1).transpose(1, 0, 2)

    def parameters(self):
        return {"W_x": self.W_x, "W_h": self.W_h, "b": self.b}

    def penalty(self):
        return weight_penalty([self.W_x.value, self.W_h.value], self.l1, self.l2)
