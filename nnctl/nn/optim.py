"""Optimizers and gradient clipping.

Each optimizer works on a flat list of Params and keeps its state in lists indexed like that
list, so every optimizer works on every layer. Updates are in place. The rules follow PyTorch's
(torch/optim), step counts start at 1, and the state can be saved and restored exactly.

A step allocates nothing: intermediate results go to scratch arrays made once, and
hyperparameters are Python floats, so float32 parameters are updated in float32 (a NumPy
float64 scalar would promote every temporary to float64). When the parameters lie end to end
in one buffer, as a Sequential model lays them out, the state does too and a step updates the
whole model with one call of the rule, whatever the number of layers, split across threads
(nnctl.threads). So `update` must be element-wise: no sums or norms over a parameter.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from . import threads
from .layers.base import Param


def contiguous(arrays: list[np.ndarray]) -> Optional[np.ndarray]:
    """The 1-D array that `arrays` make up when they are consecutive views into one buffer,
    in order and without gaps; None otherwise."""
    if not arrays or arrays[0].base is None:
        return None
    base, start = arrays[0].base, arrays[0].ctypes.data
    end = start
    for a in arrays:
        if a.base is not base or a.dtype != base.dtype or not a.flags.c_contiguous \
                or a.ctypes.data != end:
            return None
        end += a.nbytes
    if base.ndim != 1 or not base.flags.c_contiguous:
        return None
    offset = (start - base.ctypes.data) // base.itemsize
    return base[offset:offset + (end - start) // base.itemsize]


def zeros_like_each(like: list[np.ndarray]) -> tuple[Optional[np.ndarray], list[np.ndarray]]:
    """Zero arrays shaped like each of `like`: views, end to end, into one flat array that is
    returned too (None, and separate arrays, when the dtypes differ)."""
    if len({a.dtype for a in like}) > 1:
        return None, [np.zeros_like(a) for a in like]
    flat = np.zeros(sum(a.size for a in like), dtype=like[0].dtype if like else np.float64)
    views, offset = [], 0
    for a in like:
        views.append(flat[offset:offset + a.size].reshape(a.shape))
        offset += a.size
    return flat, views


def step_by_root(param, grad, accumulator, lr: float, eps: float, tmp) -> None:
    """theta -= lr g / (sqrt(accumulator) + eps), through `tmp`: Adagrad's and RMSprop's step."""
    np.sqrt(accumulator, out=tmp)
    tmp += eps
    np.divide(grad, tmp, out=tmp)
    tmp *= lr
    param -= tmp


class Optimizer:
    name: str
    #: names of the per-parameter state buffers, each a list of arrays shaped like the params;
    #: `update` receives them in this order
    buffers: tuple[str, ...] = ()
    #: scratch arrays that `update` needs for its intermediate results
    scratch: int = 1

    def __init__(self, params: list[Param], lr: float):
        if not lr > 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        self.params = list(params)
        self.lr = lr
        self.step_count = 0
        values = [p.value for p in self.params]
        # Each state buffer and scratch array is one flat array, seen per parameter through
        # views; state_dict and load_state_dict use the views.
        state = [zeros_like_each(values) for _ in self.buffers]
        scratch = [zeros_like_each(values) for _ in range(self.scratch)]
        for buffer, (_, views) in zip(self.buffers, state):
            setattr(self, buffer, views)
        self._each = [tuple(views[i] for _, views in state + scratch)
                      for i in range(len(self.params))]
        self._arrays = [(p.value, p.grad) for p in self.params]
        flat_values, flat_grads = contiguous(values), contiguous([p.grad for p in self.params])
        self._flat = None
        if flat_values is not None and flat_grads is not None:
            self._flat = (flat_values, flat_grads, *(f for f, _ in state + scratch))
        self._sharing = threads.Sharing()

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = float(value)  # schedules and resumed state may hand in NumPy scalars

    def step(self) -> None:
        self.step_count += 1
        # The flat path holds only while no Param has been given a new array since.
        if self._flat is not None and all(p.value is v and p.grad is g
                                          for p, (v, g) in zip(self.params, self._arrays)):
            self._sharing(self.update, self._flat)
            return
        for p, rest in zip(self.params, self._each):
            self.update(p.value, p.grad, *rest)

    def update(self, param: np.ndarray, grad: np.ndarray, *state_and_scratch: np.ndarray) -> None:
        """Update `param` in place from `grad` and its state arrays (named by `buffers`, in
        that order), followed by `scratch` arrays for intermediate results. It must work
        element by element: the flat path calls it on slices, from several threads."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        state = {"step": np.array(self.step_count, dtype=np.int64)}
        for buffer in self.buffers:
            for i, array in enumerate(getattr(self, buffer)):
                state[f"{buffer}.{i}"] = array.copy()
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore state saved by `state_dict`; every name, shape and dtype must match."""
        expected = self.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise ValueError(
                f"optimizer state does not match {self.name}: "
                f"missing {missing or 'nothing'}, unexpected {unexpected or 'nothing'}"
            )
        for key, array in state.items():
            want = expected[key]
            if array.shape != want.shape or array.dtype != want.dtype:
                raise ValueError(
                    f"optimizer state {key!r}: expected {want.dtype}{list(want.shape)}, "
                    f"got {array.dtype}{list(array.shape)}"
                )
        self.step_count = int(state["step"])
        for buffer in self.buffers:
            for i, array in enumerate(getattr(self, buffer)):
                array[...] = state[f"{buffer}.{i}"]


class SGD(Optimizer):
    """PyTorch's SGD: v = mu v + g;  d = g + mu v (Nesterov) or v;  theta -= lr d."""

    name = "sgd"
    buffers = ("momentum_buffer",)

    def __init__(self, params, lr=0.001, momentum=0.0, nesterov=False):
        super().__init__(params, lr)
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if nesterov and momentum <= 0.0:
            raise ValueError("Nesterov momentum requires a momentum greater than 0")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def update(self, param, grad, buf, tmp):
        mu = self.momentum
        if mu == 0.0:
            direction = grad
        else:
            direction = buf
            buf *= mu
            buf += grad
            if self.nesterov:
                np.multiply(buf, mu, out=tmp)
                tmp += grad
                direction = tmp
        np.multiply(direction, self.lr, out=tmp)
        param -= tmp


class Momentum(Optimizer):
    """Moving-average momentum: v = beta v + (1 - beta) g;  theta -= lr v."""

    name = "momentum"
    buffers = ("velocity",)

    def __init__(self, params, lr=0.01, beta=0.9):
        super().__init__(params, lr)
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta value: {beta}")
        self.beta = float(beta)

    def update(self, param, grad, v, tmp):
        v *= self.beta
        np.multiply(grad, 1.0 - self.beta, out=tmp)
        v += tmp
        np.multiply(v, self.lr, out=tmp)
        param -= tmp


class Adagrad(Optimizer):
    """s += g^2;  theta -= lr g / (sqrt(s) + eps)."""

    name = "adagrad"
    buffers = ("sum",)

    def __init__(self, params, lr=0.01, eps=1e-10):
        super().__init__(params, lr)
        if not eps >= 0.0:
            raise ValueError(f"Invalid epsilon value: {eps}")
        self.eps = float(eps)

    def update(self, param, grad, s, tmp):
        np.multiply(grad, grad, out=tmp)
        s += tmp
        step_by_root(param, grad, s, self.lr, self.eps, tmp)


class Adadelta(Optimizer):
    """Zeiler (2012), as PyTorch: E[g^2] = rho E[g^2] + (1 - rho) g^2;
    d = sqrt(E[d^2] + eps) / sqrt(E[g^2] + eps) * g;  E[d^2] = rho E[d^2] + (1 - rho) d^2;
    theta -= lr d.
    """

    name = "adadelta"
    buffers = ("square_avg", "acc_delta")
    scratch = 2

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6):
        super().__init__(params, lr)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        if not eps >= 0.0:
            raise ValueError(f"Invalid epsilon value: {eps}")
        self.rho, self.eps = float(rho), float(eps)

    def update(self, param, grad, square_avg, acc_delta, delta, tmp):
        rho, eps = self.rho, self.eps
        square_avg *= rho
        np.multiply(grad, grad, out=tmp)
        tmp *= 1.0 - rho
        square_avg += tmp
        np.add(acc_delta, eps, out=delta)
        np.sqrt(delta, out=delta)
        np.add(square_avg, eps, out=tmp)
        np.sqrt(tmp, out=tmp)
        delta /= tmp
        delta *= grad
        acc_delta *= rho
        np.multiply(delta, delta, out=tmp)
        tmp *= 1.0 - rho
        acc_delta += tmp
        delta *= self.lr
        param -= delta


class RMSprop(Optimizer):
    """E[g^2] = rho E[g^2] + (1 - rho) g^2;  theta -= lr g / (sqrt(E[g^2]) + eps)."""

    name = "rmsprop"
    buffers = ("square_avg",)

    def __init__(self, params, lr=0.01, rho=0.99, eps=1e-8):
        super().__init__(params, lr)
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        if not eps >= 0.0:
            raise ValueError(f"Invalid epsilon value: {eps}")
        self.rho, self.eps = float(rho), float(eps)

    def update(self, param, grad, square_avg, tmp):
        square_avg *= self.rho
        np.multiply(grad, grad, out=tmp)
        tmp *= 1.0 - self.rho
        square_avg += tmp
        step_by_root(param, grad, square_avg, self.lr, self.eps, tmp)


class Adam(Optimizer):
    """m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  at step t (from 1):
    theta -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).

    m is updated as m += (1 - b1)(g - m), the same value in one pass less (PyTorch's lerp),
    and the step as theta -= a_t m / (sqrt(v) + eps sqrt(1 - b2^t)) with
    a_t = lr sqrt(1 - b2^t) / (1 - b1^t): the same value again (the "more efficient order" of
    Kingma & Ba, section 2), in one pass less.
    """

    name = "adam"
    buffers = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(params, lr)
        for label, beta in (("beta1", beta1), ("beta2", beta2)):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid {label} value: {beta}")
        if not eps >= 0.0:
            raise ValueError(f"Invalid epsilon value: {eps}")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def update(self, param, grad, m, v, tmp):
        b1, b2, t = self.beta1, self.beta2, self.step_count
        np.subtract(grad, m, out=tmp)
        tmp *= 1.0 - b1
        m += tmp
        np.multiply(grad, grad, out=tmp)
        tmp *= 1.0 - b2
        v *= b2
        v += tmp
        root_correction = math.sqrt(1.0 - b2**t)
        np.sqrt(v, out=tmp)
        tmp += self.eps * root_correction
        np.divide(m, tmp, out=tmp)
        tmp *= self.lr * root_correction / (1.0 - b1**t)
        param -= tmp


OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (SGD, Momentum, Adagrad, Adadelta, RMSprop, Adam)
}


def grad_norm(params: list[Param]) -> float:
    """The global L2 norm of all gradients (inf or nan if any element is)."""
    return math.sqrt(sum(float(np.vdot(p.grad, p.grad)) for p in params))


def clip_grad_norm(params: list[Param], max_norm: float) -> float:
    """Scale all gradients by max_norm / ||g|| when the global norm ||g|| exceeds max_norm.

    Returns the norm before clipping. The 1e-6 matches torch.nn.utils.clip_grad_norm_.
    """
    total = grad_norm(params)
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for p in params:
            p.grad *= scale
    return total


def clip_grad_value(params: list[Param], value: float) -> None:
    """Clip every gradient element to [-value, value]."""
    for p in params:
        np.clip(p.grad, -value, value, out=p.grad)
