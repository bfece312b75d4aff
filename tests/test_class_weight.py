"""Class weights in the cross-entropies (gradient checks, PyTorch agreement, numbers checked by
hand), and the macro averages and balanced accuracy of the evaluation report (against
scikit-learn)."""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from gradcheck import TOL, loss_inputs, numerical_grad, rel_error

from nnctl.nn.activations import sigmoid, softmax
from nnctl.api import report
from nnctl.nn.losses import BinaryCrossentropy, CategoricalCrossentropy, get_loss

K = 4
CLASS_WEIGHT = np.array([0.5, 2.0, 1.0, 3.5])
POS_WEIGHTS = [0.3, 1.0, 4.0]


def weighted_losses():
    """(id, loss, inputs maker): the weighted losses with valid probabilities and targets."""
    return [
        (f"cce-{w.tolist()}", CategoricalCrossentropy(class_weight=w),
         lambda rng: loss_inputs("categorical_crossentropy", rng, n=7, k=K))
        for w in (CLASS_WEIGHT, np.ones(K))
    ] + [
        (f"bce-{pw}", BinaryCrossentropy(pos_weight=pw),
         lambda rng: loss_inputs("binary_crossentropy", rng, n=7, k=3))
        for pw in POS_WEIGHTS
    ]


LOSS_CASES = {case[0]: case[1:] for case in weighted_losses()}


# ---- gradient checks -----------------------------------------------------------------------

@pytest.mark.parametrize("case", sorted(LOSS_CASES))
def test_weighted_loss_gradient(case):
    loss, make = LOSS_CASES[case]
    y_pred, y_true = make(np.random.default_rng(0))
    _, grad = loss(y_pred, y_true)
    assert rel_error(grad, numerical_grad(lambda: loss(y_pred, y_true)[0], y_pred)) < TOL


@pytest.mark.parametrize("case", sorted(LOSS_CASES))
def test_weighted_loss_from_logits_gradient_and_value(case):
    loss, make = LOSS_CASES[case]
    rng = np.random.default_rng(1)
    y_pred, y_true = make(rng)
    z = rng.normal(scale=2.0, size=y_pred.shape)
    value, grad = loss.from_logits(z, y_true)
    assert rel_error(grad, numerical_grad(lambda: loss.from_logits(z, y_true)[0], z)) < TOL
    activation = softmax if isinstance(loss, CategoricalCrossentropy) else sigmoid
    assert rel_error(value, loss(activation(z), y_true)[0]) < 1e-12


# ---- agreement with PyTorch ----------------------------------------------------------------

def torch_value_and_grad(torch, fn, x: np.ndarray) -> tuple[float, np.ndarray]:
    xt = torch.tensor(x, requires_grad=True)
    value = fn(xt)
    value.backward()
    return float(value.detach()), xt.grad.numpy()


def torch_reference(torch, loss, y_true, logits: bool):
    """The PyTorch loss of `loss` as a function of the model output (logits or probabilities)."""
    y = torch.from_numpy(y_true)
    if isinstance(loss, CategoricalCrossentropy):
        w = torch.from_numpy(loss.class_weight)
        if logits:
            return lambda z: torch.nn.CrossEntropyLoss(weight=w)(z, y)
        return lambda p: torch.nn.NLLLoss(weight=w)(torch.log(p), y)
    pw = torch.tensor(loss.pos_weight, dtype=torch.float64)
    if logits:
        return lambda z: torch.nn.BCEWithLogitsLoss(pos_weight=pw)(z, y)
    # BCELoss has no pos_weight: the per-value formula, written out.
    return lambda p: -(pw * y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()


@pytest.mark.parametrize("logits", [False, True], ids=["probabilities", "logits"])
@pytest.mark.parametrize("case", sorted(LOSS_CASES))
def test_weighted_loss_matches_torch(case, logits):
    torch = pytest.importorskip("torch")
    loss, make = LOSS_CASES[case]
    rng = np.random.default_rng(2)
    y_pred, y_true = make(rng)
    x = rng.normal(scale=3.0, size=y_pred.shape) if logits else y_pred
    value, grad = (loss.from_logits if logits else loss)(x, y_true)
    t_value, t_grad = torch_value_and_grad(torch, torch_reference(torch, loss, y_true, logits), x)
    assert rel_error(value, t_value) < 1e-10
    assert rel_error(grad, t_grad) < 1e-10


# ---- small numbers checked by hand ---------------------------------------------------------

def test_weighted_mean_by_hand():
    """Two samples, of classes 0 and 1 weighing 1 and 3, with p[0, 0] = 1/2 and p[1, 1] = 1/4:
    L = (1 log 2 + 3 log 4) / (1 + 3) = 7/4 log 2; dL/dp[0, 0] = -1 / (4 * 1/2) = -1/2 and
    dL/dp[1, 1] = -3 / (4 * 1/4) = -3. Unweighted, L = (log 2 + log 4) / 2 = 3/2 log 2."""
    p = np.array([[0.5, 0.5], [0.75, 0.25]])
    y = np.array([0, 1])
    value, grad = CategoricalCrossentropy(class_weight=[1.0, 3.0])(p, y)
    assert value == pytest.approx(7 / 4 * math.log(2), rel=1e-15)
    np.testing.assert_allclose(grad, [[-0.5, 0.0], [0.0, -3.0]], rtol=1e-15)
    assert CategoricalCrossentropy()(p, y)[0] == pytest.approx(3 / 2 * math.log(2), rel=1e-15)
    # The same through the logits: z = log p gives back p.
    value, grad = CategoricalCrossentropy(class_weight=[1.0, 3.0]).from_logits(np.log(p), y)
    assert value == pytest.approx(7 / 4 * math.log(2), rel=1e-15)
    # w_i (softmax - onehot) / sum w: (1/4)(1/2 - 1, 1/2) and (3/4)(3/4, 1/4 - 1)
    np.testing.assert_allclose(grad, [[-0.125, 0.125], [0.5625, -0.5625]], rtol=1e-15)


def test_pos_weight_by_hand():
    """p = 1/2 for a positive and a negative, pos_weight 3: L = (3 log 2 + log 2) / 2 = 2 log 2;
    dL/dp = -3 / (1/2) / 2 = -3 for the positive, 1 / (1/2) / 2 = 1 for the negative."""
    p, y = np.array([[0.5], [0.5]]), np.array([[1.0], [0.0]])
    loss = BinaryCrossentropy(pos_weight=3.0)
    value, grad = loss(p, y)
    assert value == pytest.approx(2 * math.log(2), rel=1e-15)
    np.testing.assert_allclose(grad, [[-3.0], [1.0]], rtol=1e-15)
    value, grad = loss.from_logits(np.zeros((2, 1)), y)  # sigmoid(0) = 1/2
    assert value == pytest.approx(2 * math.log(2), rel=1e-15)
    # dL/dz = dL/dp * p (1 - p) = dL/dp / 4
    np.testing.assert_allclose(grad, [[-0.75], [0.25]], rtol=1e-15)


# ---- without weights, and dtypes -----------------------------------------------------------

def test_unit_weights_equal_no_weights():
    rng = np.random.default_rng(3)
    p, y = loss_inputs("categorical_crossentropy", rng, n=9, k=K)
    z = rng.normal(size=p.shape)
    plain, ones = CategoricalCrossentropy(), CategoricalCrossentropy(class_weight=np.ones(K))
    for a, b in ((plain(p, y), ones(p, y)), (plain.from_logits(z, y), ones.from_logits(z, y))):
        assert a[0] == pytest.approx(b[0], rel=1e-14)
        np.testing.assert_allclose(a[1], b[1], rtol=1e-14, atol=1e-17)
    p, y = loss_inputs("binary_crossentropy", rng, n=9, k=2)
    plain, one = BinaryCrossentropy(), BinaryCrossentropy(pos_weight=1.0)
    z = z[:, :2]
    for a, b in ((plain(p, y), one(p, y)), (plain.from_logits(z, y), one.from_logits(z, y))):
        assert a[0] == pytest.approx(b[0], rel=1e-14)
        np.testing.assert_allclose(a[1], b[1], rtol=1e-14, atol=1e-17)


def test_weighted_gradients_keep_float32():
    rng = np.random.default_rng(4)
    z = rng.normal(size=(5, K)).astype(np.float32)
    y = rng.integers(0, K, size=5)
    cce = CategoricalCrossentropy(class_weight=CLASS_WEIGHT)
    bce = BinaryCrossentropy(pos_weight=2.5)
    yb = rng.integers(0, 2, size=(5, K)).astype(np.float32)
    for _, grad in (cce(softmax(z), y), cce.from_logits(z, y), bce(sigmoid(z), yb),
                    bce.from_logits(z, yb)):
        assert grad.dtype == np.float32


def test_weighted_bce_from_logits_is_finite_for_extreme_logits():
    z = np.array([[1e4, -1e4], [-1e4, 1e4]], dtype=np.float32)
    y = np.array([[1, 1], [0, 0]], dtype=np.float32)
    value, grad = BinaryCrossentropy(pos_weight=4.0).from_logits(z, y)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    # The wrong-side positive costs pw * 1e4, the wrong-side negative 1e4; the others ~0.
    assert value == pytest.approx((4.0 * 1e4 + 1e4) / 4, rel=1e-6)


def test_get_loss_passes_keyword_arguments():
    assert get_loss("categorical_crossentropy", class_weight=[1.0, 2.0]).class_weight.tolist() \
        == [1.0, 2.0]
    assert get_loss("binary_crossentropy", pos_weight=3).pos_weight == 3.0
    assert get_loss("categorical_crossentropy").class_weight is None
    with pytest.raises(TypeError):
        get_loss("mse", class_weight=[1.0])


@pytest.mark.parametrize("make", [
    lambda: CategoricalCrossentropy(class_weight=[1.0, 0.0]),
    lambda: CategoricalCrossentropy(class_weight=[1.0, -2.0]),
    lambda: CategoricalCrossentropy(class_weight=[[1.0, 2.0]]),
    lambda: CategoricalCrossentropy(class_weight=[1.0, np.nan]),
    lambda: BinaryCrossentropy(pos_weight=0.0),
    lambda: BinaryCrossentropy(pos_weight=math.inf),
    lambda: BinaryCrossentropy(pos_weight=math.nan),
])
def test_invalid_weights_are_refused(make):
    with pytest.raises(ValueError, match="Invalid"):
        make()


def test_class_weight_must_cover_every_class():
    with pytest.raises(ValueError, match="3 weights for 4 classes"):
        CategoricalCrossentropy(class_weight=[1.0, 2.0, 3.0]).from_logits(np.zeros((2, 4)),
                                                                          np.array([0, 1]))


# ---- the evaluation report against scikit-learn --------------------------------------------

def report_cases():
    """(id, task, classes, model output, y) with a class never predicted, and one absent."""
    rng = np.random.default_rng(5)
    y = rng.integers(0, 4, size=60)
    out = softmax(rng.normal(size=(60, 5)) + 2.0 * np.eye(5)[y])  # mostly right
    out[:, [2, 4]] = 0.0  # c is true but never predicted; e is neither true nor predicted
    cases = [("softmax", "classification", ["a", "b", "c", "d", "e"], out, y)]
    out4 = out.copy()
    out4[:3, 4] = 10.0  # e predicted three times, never true
    cases.append(("softmax-false-class", "classification", ["a", "b", "c", "d", "e"], out4, y))
    yb = rng.integers(0, 2, size=(50, 1)).astype(np.float64)
    pb = np.clip(0.3 * yb + rng.uniform(0, 0.7, size=(50, 1)), 0, 1)
    cases.append(("binary", "binary", ["no", "yes"], pb, yb))
    cases.append(("binary-one-class", "binary", ["no", "yes"], pb, np.zeros((50, 1))))
    return {c[0]: c[1:] for c in cases}


REPORT_CASES = report_cases()


@pytest.mark.parametrize("case", sorted(REPORT_CASES))
def test_report_matches_sklearn(case):
    metrics = pytest.importorskip("sklearn.metrics")
    task, classes, out, y = REPORT_CASES[case]
    result = report(task, SimpleNamespace(classes=classes, targets=["t"]), out, y)
    if task == "binary":
        predicted, actual = (out[:, 0] > 0.5).astype(int), y[:, 0].astype(int)
    else:
        predicted, actual = out.argmax(axis=1), y
    for name, score in (("precision", metrics.precision_score),
                        ("recall", metrics.recall_score), ("f1", metrics.f1_score)):
        expected = score(actual, predicted, average="macro", zero_division=0)
        assert result["macro"][name] == pytest.approx(expected, rel=1e-12, abs=1e-15), name
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true"
        warnings.simplefilter("ignore")
        expected = metrics.balanced_accuracy_score(actual, predicted)
    assert result["balanced_accuracy"] == pytest.approx(expected, rel=1e-12)


def test_report_macro_by_hand():
    """y = (0, 0, 1, 1), predicted (0, 1, 1, 1): class 0 has precision 1 and recall 1/2, class 1
    precision 2/3 and recall 1; macro precision 5/6, recall 3/4; balanced accuracy 3/4. Class 2,
    in neither, is left out of the means."""
    out = np.eye(3)[[0, 1, 1, 1]]
    result = report("classification", SimpleNamespace(classes=["x", "y", "z"], targets=["t"]),
                    out, np.array([0, 0, 1, 1]))
    f1 = (2 / 3 + 0.8) / 2  # 2PR/(P+R): 2(1)(1/2)/(3/2) and 2(2/3)(1)/(5/3)
    assert result["macro"] == pytest.approx({"precision": 5 / 6, "recall": 3 / 4, "f1": f1})
    assert result["balanced_accuracy"] == pytest.approx(3 / 4)


def test_format_eval_prints_balanced_accuracy_and_macro_row():
    from nnctl.cli import format_eval

    out = np.eye(3)[[0, 1, 1, 1]]
    result = {"data": "d.csv", "rows": 4, "checkpoint": "best", "loss": 0.5, "accuracy": 0.75}
    result.update(report("classification", SimpleNamespace(classes=["x", "y", "z"],
                                                           targets=["t"]),
                         out, np.array([0, 0, 1, 1])))
    lines = format_eval(result).splitlines()
    accuracy = next(i for i, line in enumerate(lines) if line.startswith("accuracy"))
    assert lines[accuracy + 1].split() == ["balanced", "accuracy", "0.7500"]
    macro = next(line for line in lines if line.startswith("macro avg"))
    assert macro.split()[2:] == ["0.833", "0.750", "0.733"]
    assert lines.index(macro) == next(i for i, line in enumerate(lines) if line.startswith("z")) + 1
