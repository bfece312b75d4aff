"""Losses: value and gradient with respect to the model's output.

Targets have the output's shape, except for categorical cross-entropy, whose targets are
integer class indices of shape (N,) (as in PyTorch's CrossEntropyLoss).

Averaging: mae, mse and binary cross-entropy average over every value (N samples x K outputs);
categorical cross-entropy sums over classes and averages over samples.

Cross-entropies also offer `from_logits`: value and gradient with respect to the logits Z of
the output activation they pair with (softmax, sigmoid), computed stably by log-sum-exp. The
fused gradients are softmax(Z) - onehot(y) over N and sigmoid(Z) - y over N*K.
"""

from __future__ import annotations

import numpy as np

from .activations import sigmoid


class Loss:
    name: str
    #: the output activation whose gradient this loss fuses with its own (None: no fusion)
    fused_activation: str | None = None

    def __call__(self, y_pred: np.ndarray, y_true: np.ndarray) -> tuple[float, np.ndarray]:
        """Return (loss, dL/dy_pred)."""
        raise NotImplementedError

    def from_logits(self, z: np.ndarray, y_true: np.ndarray) -> tuple[float, np.ndarray]:
        """Return (loss, dL/dz) where y_pred = fused_activation(z)."""
        raise NotImplementedError


class MAE(Loss):
    """L = mean |y_pred - y|;  dL/dy_pred = sign(y_pred - y) / n (0 where they are equal)."""

    name = "mae"

    def __call__(self, y_pred, y_true):
        diff = y_pred - y_true
        return float(np.abs(diff).mean()), np.sign(diff) / diff.size


class MSE(Loss):
    """L = mean (y_pred - y)^2;  dL/dy_pred = 2 (y_pred - y) / n."""

    name = "mse"

    def __call__(self, y_pred, y_true):
        diff = y_pred - y_true
        return float(np.vdot(diff, diff)) / diff.size, diff * (2 / diff.size)


class BinaryCrossentropy(Loss):
    """L = -mean [y log p + (1 - y) log(1 - p)] over all N*K values.

    From logits: log p = -softplus(-z), log(1 - p) = -softplus(z), so
    L = mean [max(z, 0) - z y + log(1 + e^-|z|)] and dL/dz = (sigmoid(z) - y) / (N K).
    """

    name = "binary_crossentropy"
    fused_activation = "sigmoid"

    def __call__(self, y_pred, y_true):
        # Probabilities of exactly 0 or 1 would give log(0); clamp to the dtype's resolution.
        eps = np.finfo(y_pred.dtype).eps
        p = np.clip(y_pred, eps, 1 - eps)
        n = p.size
        loss = -(y_true * np.log(p) + (1 - y_true) * np.log1p(-p)).mean()
        return float(loss), (p - y_true) / (p * (1 - p)) / n

    def from_logits(self, z, y_true):
        n = z.size
        loss = (np.maximum(z, 0) - z * y_true + np.log1p(np.exp(-np.abs(z)))).mean()
        return float(loss), (sigmoid(z) - y_true) / n


class CategoricalCrossentropy(Loss):
    """L = -mean_i log p[i, y_i] for class indices y_i (sum over classes, mean over samples).

    From logits: log p = z - logsumexp(z), and dL/dz = (softmax(z) - onehot(y)) / N.
    """

    name = "categorical_crossentropy"
    fused_activation = "softmax"

    def __call__(self, y_pred, y_true):
        n = y_pred.shape[0]
        rows = np.arange(n)
        eps = np.finfo(y_pred.dtype).tiny
        picked = np.maximum(y_pred[rows, y_true], eps)
        grad = np.zeros_like(y_pred)
        grad[rows, y_true] = -1.0 / (n * picked)
        return float(-np.log(picked).mean()), grad

    def from_logits(self, z, y_true):
        n = z.shape[0]
        rows = np.arange(n)
        # One exp serves both: log p = shifted - log(sum e^shifted), softmax = e / sum.
        shifted = z - z.max(axis=1, keepdims=True)
        grad = np.exp(shifted)
        total = grad.sum(axis=1, keepdims=True)
        loss = (np.log(total).sum() - shifted[rows, y_true].sum()) / n
        total *= n
        grad /= total  # softmax / N
        grad[rows, y_true] -= 1.0 / n
        return float(loss), grad


LOSSES: dict[str, type[Loss]] = {
    cls.name: cls for cls in (MAE, MSE, BinaryCrossentropy, CategoricalCrossentropy)
}


def get_loss(name: str) -> Loss:
    try:
        return LOSSES[name]()
    except KeyError:
        raise ValueError(f"Unknown loss {name!r}; expected one of {sorted(LOSSES)}") from None
