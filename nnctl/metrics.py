"""Classification metrics in NumPy, with scikit-learn's definitions.

Each function takes true labels and scores (probabilities) as arrays and returns what the
scikit-learn function of the same idea returns: `roc_curve`, `precision_recall_curve`,
`roc_auc` (`roc_auc_score`; tied scores count half), `average_precision`
(`average_precision_score`), `log_loss` (probabilities clipped to [eps, 1 - eps] of their dtype),
`f1_from_confusion` (`f1_score`; binary: the positive class; macro: the mean over the classes
that occur in y or in the predictions), `roc_auc_ovr` (`roc_auc_score(multi_class="ovr", average="macro")`) and
`top_k_accuracy` (`top_k_accuracy_score`; among tied scores the higher class index ranks first).

Undefined values are NaN, never an error: ROC AUC when y holds one class only, average
precision when y holds no positive. Averages (one-vs-rest over classes, or over the outputs of
a multi-label model) are taken over the members where the metric is defined, and are NaN when
none is. Callers that write JSON leave NaN out.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np


# ---- curves ------------------------------------------------------------------------------------

def _binary_clf_curve(y_true: np.ndarray, y_score: np.ndarray):
    """False and true positives at each distinct score, scores in decreasing order: a row
    is positive at threshold t when its score >= t."""
    y_true = np.asarray(y_true).ravel().astype(bool)
    y_score = np.asarray(y_score).ravel()
    order = np.argsort(-y_score.astype(np.float64), kind="stable")
    y_score, y_true = y_score[order], y_true[order]
    # the last index of each run of tied scores, and the end of the curve
    last = np.r_[np.flatnonzero(np.diff(y_score)), y_true.size - 1]
    tps = np.cumsum(y_true, dtype=np.float64)[last]
    fps = 1.0 + last - tps
    return fps, tps, y_score[last]


def roc_curve(y_true, y_score, drop_intermediate: bool = True):
    """(fpr, tpr, thresholds) with thresholds decreasing, the first one inf (the curve starts
    at (0, 0)); collinear points are dropped unless `drop_intermediate` is false. fpr (tpr) is
    NaN throughout when y_true has no negative (no positive)."""
    fps, tps, thresholds = _binary_clf_curve(y_true, y_score)
    if drop_intermediate and fps.size > 2:
        corner = np.logical_or(np.diff(fps, 2), np.diff(tps, 2))
        keep = np.flatnonzero(np.r_[True, corner, True])
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    fps, tps = np.r_[0.0, fps], np.r_[0.0, tps]
    thresholds = np.r_[np.inf, thresholds.astype(np.float64)]
    fpr = fps / fps[-1] if fps[-1] > 0 else np.full(fps.shape, np.nan)
    tpr = tps / tps[-1] if tps[-1] > 0 else np.full(tps.shape, np.nan)
    return fpr, tpr, thresholds


def precision_recall_curve(y_true, y_score):
    """(precision, recall, thresholds): thresholds increasing; precision and recall have one
    more entry, the point (recall 0, precision 1). Recall is 1 throughout when y_true has no
    positive (as scikit-learn sets it)."""
    fps, tps, thresholds = _binary_clf_curve(y_true, y_score)
    predicted = tps + fps
    precision = np.divide(tps, predicted, out=np.zeros_like(tps), where=predicted != 0)
    recall = tps / tps[-1] if tps[-1] > 0 else np.ones_like(tps)
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thresholds[::-1]


# ---- binary scores -----------------------------------------------------------------------------

def roc_auc(y_true, y_score) -> float:
    """Area under the ROC curve (trapezoids, so a tie between a positive and a negative counts
    half); NaN when y_true holds one class only."""
    y_true = np.asarray(y_true).reshape(-1, 1)
    return float(roc_auc_columns(y_true, np.asarray(y_score).reshape(-1, 1))[0])


def roc_auc_columns(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """ROC AUC of each column of (n, k) scores against the same column of y_true, all at
    once: the Mann-Whitney form (rank sum of the positives, ties given their mean rank),
    which equals the area under the ROC curve by trapezoids. NaN where a column of y_true
    holds one class only."""
    # one row per column, contiguous, so that each sort runs over adjacent memory
    positive = np.ascontiguousarray(np.asarray(y_true, dtype=bool).T)
    score = np.ascontiguousarray(np.asarray(y_score).T)
    k, n = score.shape
    order = np.argsort(score, axis=1, kind="stable")
    score = np.take_along_axis(score, order, axis=1)
    positive = np.take_along_axis(positive, order, axis=1)
    # Runs of tied scores, numbered per row and offset by n per row, share their mean rank.
    starts = np.ones((k, n), dtype=bool)
    starts[:, 1:] = score[:, 1:] != score[:, :-1]
    group = (np.cumsum(starts, axis=1) - 1 + (np.arange(k) * n)[:, None]).ravel()
    sizes = np.bincount(group, minlength=n * k)
    before = np.cumsum(sizes.reshape(k, n), axis=1).ravel() - sizes
    mean_rank = before + (sizes + 1) / 2
    rank_sum = np.where(positive, mean_rank[group].reshape(k, n), 0.0).sum(axis=1)
    n_pos = positive.sum(axis=1).astype(np.float64)
    n_neg = n - n_pos
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def average_precision(y_true, y_score) -> float:
    """Sum over thresholds of precision times the recall gained (no interpolation); NaN when
    y_true holds no positive (scikit-learn returns 0 there, with a warning)."""
    precision, recall, _ = precision_recall_curve(y_true, y_score)
    if not np.asarray(y_true).astype(bool).any():
        return math.nan
    return float(max(0.0, -np.sum(np.diff(recall) * precision[:-1])))


def log_loss(y_true, probabilities) -> float:
    """Mean negative log-likelihood of the true class. `probabilities` is (n, classes) with
    y_true the class indices, or (n,) the probability of class 1 with y_true 0/1. Values are
    clipped to [eps, 1 - eps], eps of their dtype, and not renormalized."""
    p = np.asarray(probabilities)
    if not np.issubdtype(p.dtype, np.floating):
        p = p.astype(np.float64)
    y = np.asarray(y_true).ravel().astype(np.int64)
    if p.ndim == 1:
        p = np.column_stack([1 - p, p])
    eps = np.finfo(p.dtype).eps
    chosen = np.clip(p, eps, 1 - eps)[np.arange(len(y)), y]
    return float(-np.mean(np.log(chosen.astype(np.float64))))


# ---- labels ------------------------------------------------------------------------------------

def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Counts, rows the true class index and columns the predicted one."""
    y_true = np.asarray(y_true).ravel().astype(np.int64)
    y_pred = np.asarray(y_pred).ravel().astype(np.int64)
    return np.bincount(y_true * n_classes + y_pred,
                       minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def f1_from_confusion(confusion: np.ndarray, average: str = "macro") -> float:
    """F1 = 2tp / (2tp + fp + fn). "binary": of class 1 (0 when it is neither true nor
    predicted anywhere); "macro": the mean over the classes that occur as a true or a
    predicted label."""
    confusion = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(confusion)
    true, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    denominator = true + predicted  # = 2tp + fp + fn
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    if average == "binary":
        return float(f1[1])
    if average != "macro":
        raise ValueError(f"unknown average {average!r}: binary | macro")
    seen = denominator > 0
    return float(f1[seen].mean()) if seen.any() else 0.0


# ---- several classes or outputs ----------------------------------------------------------------

def mean_defined(values) -> float:
    """The mean of the finite values; NaN when there is none."""
    values = np.asarray(list(values), dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else math.nan


def per_output(metric: Callable, y_true, scores) -> float:
    """A binary metric averaged over the columns of a multi-label model's outputs (scikit-learn's
    average="macro" for a label-indicator y), over the columns where it is defined."""
    y_true, scores = np.asarray(y_true), np.asarray(scores)
    y_true = y_true.reshape(len(y_true), -1)
    scores = scores.reshape(len(scores), -1)
    return mean_defined(metric(y_true[:, j], scores[:, j]) for j in range(scores.shape[1]))


def roc_auc_ovr(y_true, probabilities) -> float:
    """Macro one-vs-rest ROC AUC: each class's scores against the rest, averaged over the
    classes present in y_true (a class absent from y_true has none); NaN with fewer than two
    classes present."""
    y = np.asarray(y_true).ravel().astype(np.int64)
    p = np.asarray(probabilities)
    present = np.unique(y)
    if present.size < 2:
        return math.nan
    return mean_defined(roc_auc_columns(y[:, None] == present, p[:, present]))


def top_k_accuracy(y_true, probabilities, k: int) -> float:
    """The fraction of rows whose true class is among the k highest scores."""
    y = np.asarray(y_true).ravel().astype(np.int64)
    ranked = np.argsort(np.asarray(probabilities), axis=1, kind="stable")[:, ::-1][:, :k]
    return float(np.mean((ranked == y[:, None]).any(axis=1)))


def top_k(n_classes: int) -> int | None:
    """The k that eval reports top-k accuracy for: 5 beyond 10 classes (ImageNet's and Keras's
    choice), 3 beyond 3 classes; none with 3 classes or fewer, where top-2 of 3 says little."""
    if n_classes > 10:
        return 5
    if n_classes > 3:
        return 3
    return None


# ---- what nnctl reports ------------------------------------------------------------------------

def predicted_labels(task: str, probabilities: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """binary: 1 where the probability is at or above the threshold (per output);
    classification: the index of the highest probability."""
    if task == "binary":
        return (probabilities >= threshold).astype(np.int64)
    return probabilities.argmax(axis=1)


def epoch_metrics(task: str, y: np.ndarray, probabilities: np.ndarray,
                  threshold: float = 0.5) -> dict[str, float]:
    """`auc` and `f1`: cheap enough to compute on the validation split after every epoch.
    binary: per output (class 1 positive), averaged; classification: macro one-vs-rest AUC
    and macro F1."""
    if task == "binary":
        y = y.reshape(len(y), -1)
        p = probabilities.reshape(len(probabilities), -1)
        labels = predicted_labels(task, p, threshold)
        f1 = np.mean([f1_from_confusion(confusion_matrix(y[:, j] > 0.5, labels[:, j], 2),
                                        "binary") for j in range(p.shape[1])])
        return {"auc": mean_defined(roc_auc_columns(y > 0.5, p)), "f1": float(f1)}
    k = probabilities.shape[1]
    confusion = confusion_matrix(y, predicted_labels(task, probabilities), k)
    return {"auc": roc_auc_ovr(y, probabilities), "f1": f1_from_confusion(confusion, "macro")}


def eval_metrics(task: str, y: np.ndarray, probabilities: np.ndarray,
                 threshold: float = 0.5) -> dict[str, float]:
    """`nnctl eval`'s extra numbers. binary: auc, pr_auc, log_loss, f1 (per output,
    averaged); classification: auc (macro one-vs-rest), log_loss, f1 (macro) and
    top_<k>_accuracy where `top_k` picks a k."""
    p = np.asarray(probabilities, dtype=np.float64)
    result = epoch_metrics(task, y, p, threshold)
    if task == "binary":
        y = y.reshape(len(y), -1) > 0.5
        p = p.reshape(len(p), -1)
        result["pr_auc"] = per_output(average_precision, y, p)
        result["log_loss"] = mean_defined(log_loss(y[:, j], p[:, j]) for j in range(p.shape[1]))
    else:
        result["log_loss"] = log_loss(y, p)
        k = top_k(p.shape[1])
        if k is not None:
            result[f"top_{k}_accuracy"] = top_k_accuracy(y, p, k)
    return result


def auc_defined(task: str, y: np.ndarray) -> bool:
    """Whether ROC AUC has a value on these targets: both classes in some output (binary),
    at least two classes (classification)."""
    if task == "binary":
        y = np.asarray(y).reshape(len(y), -1) > 0.5
        return bool(np.any(y.any(axis=0) & ~y.all(axis=0)))
    return np.unique(np.asarray(y)).size > 1
