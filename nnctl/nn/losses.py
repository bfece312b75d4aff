"""Losses: value and gradient with respect to the model's output.

Targets have the output's shape, except for categorical cross-entropy, whose targets are
integer class indices of shape (N,) (as in PyTorch's CrossEntropyLoss).

Averaging: mae, mse and binary cross-entropy average over every value (N samples x K outputs);
categorical cross-entropy sums over classes and averages over samples.

Cross-entropies also offer `from_logits`: value and gradient with respect to the logits Z of
the output activation they pair with (softmax, sigmoid), computed stably by log-sum-exp. The
fused gradients are softmax(Z) - onehot(y) over N and sigmoid(Z) - y over N*K.

Class weights, as PyTorch's: categorical cross-entropy with `class_weight` w is the weighted
mean sum_i w[y_i] (-log p[i, y_i]) / sum_i w[y_i] (CrossEntropyLoss(weight=w)); binary
cross-entropy with `pos_weight` pw scales the positive term, -(pw y log p + (1 - y) log(1 - p)),
still averaged over N*K (BCEWithLogitsLoss(pos_weight=pw)). Without them, nothing changes.
"""

from __future__ import annotations

import math

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

    With `pos_weight` pw: L = -mean [pw y log p + (1 - y) log(1 - p)],
    dL/dp = ((1 - y) p - pw y (1 - p)) / (p (1 - p)) / (N K); from logits, with
    l = 1 + (pw - 1) y: L = mean [(1 - y) z + l softplus(-z)],
    dL/dz = (l sigmoid(z) - pw y) / (N K).
    """

    name = "binary_crossentropy"
    fused_activation = "sigmoid"

    def __init__(self, pos_weight: float | None = None):
        if pos_weight is not None and not (0.0 < pos_weight < math.inf):
            raise ValueError(f"Invalid pos_weight: {pos_weight} (must be positive and finite)")
        self.pos_weight = None if pos_weight is None else float(pos_weight)

    def __call__(self, y_pred, y_true):
        # Probabilities of exactly 0 or 1 would give log(0); clamp to the dtype's resolution.
        eps = np.finfo(y_pred.dtype).eps
        p = np.clip(y_pred, eps, 1 - eps)
        n = p.size
        pw = self.pos_weight
        if pw is None:
            loss = -(y_true * np.log(p) + (1 - y_true) * np.log1p(-p)).mean()
            return float(loss), (p - y_true) / (p * (1 - p)) / n
        loss = -(pw * y_true * np.log(p) + (1 - y_true) * np.log1p(-p)).mean()
        return float(loss), ((1 - y_true) * p - pw * y_true * (1 - p)) / (p * (1 - p)) / n

    def from_logits(self, z, y_true):
        n = z.size
        pw = self.pos_weight
        if pw is None:
            loss = (np.maximum(z, 0) - z * y_true + np.log1p(np.exp(-np.abs(z)))).mean()
            return float(loss), (sigmoid(z) - y_true) / n
        softplus_neg = np.maximum(-z, 0) + np.log1p(np.exp(-np.abs(z)))  # -log p, stably
        scale = 1 + (pw - 1) * y_true
        loss = ((1 - y_true) * z + scale * softplus_neg).mean()
        return float(loss), (scale * sigmoid(z) - pw * y_true) / n


class CategoricalCrossentropy(Loss):
    """L = -mean_i log p[i, y_i] for class indices y_i (sum over classes, mean over samples).

    From logits: log p = z - logsumexp(z), and dL/dz = (softmax(z) - onehot(y)) / N.

    With `class_weight` w (one positive weight per class), sample i weighs w_i = w[y_i] and
    the mean is weighted: L = -sum_i w_i log p[i, y_i] / sum_i w_i; dL/dp[i, y_i] =
    -w_i / (p[i, y_i] sum w), and from logits dL/dz_i = w_i (softmax(z_i) - onehot(y_i)) / sum w.
    """

    name = "categorical_crossentropy"
    fused_activation = "softmax"

    def __init__(self, class_weight: np.ndarray | None = None):
        if class_weight is not None:
            class_weight = np.array(class_weight, dtype=np.float64)
            if class_weight.ndim != 1 or not np.all((class_weight > 0) & np.isfinite(class_weight)):
                raise ValueError(f"Invalid class_weight: {class_weight.tolist()} (one positive, "
                                 "finite weight per class)")
        self.class_weight = class_weight

    def _sample_weights(self, y_true, out: np.ndarray) -> np.ndarray:
        """w[y_i] for each sample, in the output's dtype."""
        if len(self.class_weight) != out.shape[1]:
            raise ValueError(f"class_weight has {len(self.class_weight)} weights for "
                             f"{out.shape[1]} classes")
        return self.class_weight.astype(out.dtype)[y_true]

    def __call__(self, y_pred, y_true):
        n = y_pred.shape[0]
        rows = np.arange(n)
        eps = np.finfo(y_pred.dtype).tiny
        picked = np.maximum(y_pred[rows, y_true], eps)
        grad = np.zeros_like(y_pred)
        if self.class_weight is None:
            grad[rows, y_true] = -1.0 / (n * picked)
            return float(-np.log(picked).mean()), grad
        w = self._sample_weights(y_true, y_pred)
        total = w.sum()
        grad[rows, y_true] = -w / (total * picked)
        return float(-np.vdot(w, np.log(picked)) / total), grad

    def from_logits(self, z, y_true):
        n = z.shape[0]
        rows = np.arange(n)
        # One exp serves both: log p = shifted - log(sum e^shifted), softmax = e / sum.
        shifted = z - z.max(axis=1, keepdims=True)
        grad = np.exp(shifted)
        total = grad.sum(axis=1, keepdims=True)
        if self.class_weight is None:
            loss = (np.log(total).sum() - shifted[rows, y_true].sum()) / n
            total *= n
            grad /= total  # softmax / N
            grad[rows, y_true] -= 1.0 / n
            return float(loss), grad
        w = self._sample_weights(y_true, z)
        w_total = w.sum()
        # -log p[i, y_i] = log(sum e^shifted_i) - shifted[i, y_i]
        loss = np.vdot(w, np.log(total[:, 0]) - shifted[rows, y_true]) / w_total
        scale = w / w_total
        grad /= total
        grad *= scale[:, None]  # w_i softmax_i / sum w
        grad[rows, y_true] -= scale
        return float(loss), grad


LOSSES: dict[str, type[Loss]] = {
    cls.name: cls for cls in (MAE, MSE, BinaryCrossentropy, CategoricalCrossentropy)
}


def get_loss(name: str, **kwargs) -> Loss:
    """The loss called `name`; keyword arguments go to its class (class_weight for
    categorical_crossentropy, pos_weight for binary_crossentropy)."""
    try:
        cls = LOSSES[name]
    except KeyError:
        raise ValueError(f"Unknown loss {name!r}; expected one of {sorted(LOSSES)}") from None
    return cls(**kwargs)
