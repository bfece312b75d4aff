"""Numerical gradient checks (central differences, float64): every activation inside a dense
layer, every loss, dropout, and a whole Sequential model."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import TOL, loss_inputs, numerical_grad, rel_error

from nnctl.nn.activations import ACTIVATIONS, get_activation
from nnctl.nn.layers import Dense, Dropout
from nnctl.nn.losses import LOSSES, get_loss
from nnctl.nn.model import Sequential

FUSED_LOSSES = sorted(name for name, cls in LOSSES.items() if cls.fused_activation)
PENALTIES = [(0.0, 0.0), (0.1, 0.0), (0.0, 0.1), (0.05, 0.2)]  # (l1, l2)


def check(analytic: dict[str, np.ndarray], loss, arrays: dict[str, np.ndarray]) -> dict:
    """Relative error between each analytic gradient and the numerical one of `loss`."""
    return {k: rel_error(analytic[k], numerical_grad(loss, arrays[k])) for k in arrays}


# ---- dense x activation ------------------------------------------------------------------

def dense_errors(activation: str, l1: float = 0.0, l2: float = 0.0, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    layer = Dense(3, activation=activation, l1=l1, l2=l2)
    layer.build((5,), rng, np.float64)
    if l1:  # keep every weight away from the kink of |W| at 0
        w = layer.W.value
        w[...] = np.where(w < 0, -1.0, 1.0) * rng.uniform(0.2, 1.0, size=w.shape)
    layer.b.value[...] = rng.normal(size=3)
    x, r = rng.normal(size=(4, 5)), rng.normal(size=(4, 3))

    def loss():
        return float(np.sum(layer.forward(x, training=True) * r)) + layer.penalty()

    loss()
    dx = layer.backward(r)
    analytic = {"X": dx, "W": layer.W.grad.copy(), "b": layer.b.grad.copy()}
    return check(analytic, loss, {"X": x, "W": layer.W.value, "b": layer.b.value})


@pytest.mark.parametrize("l1,l2", PENALTIES)
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_dense_gradients(activation, l1, l2):
    errors = dense_errors(activation, l1, l2)
    assert max(errors.values()) < TOL, errors


def test_penalty_is_part_of_the_checked_loss():
    """Guard against a vacuous check: the penalty changes W's gradient, not b's."""
    rng = np.random.default_rng(0)
    plain, penalized = Dense(3), Dense(3, l1=0.1, l2=0.1)
    x, r = rng.normal(size=(4, 5)), rng.normal(size=(4, 3))
    for layer in (plain, penalized):
        layer.build((5,), np.random.default_rng(1), np.float64)
        layer.forward(x)
        layer.backward(r)
    assert plain.penalty() == 0.0 and penalized.penalty() > 0.0
    assert not np.allclose(plain.W.grad, penalized.W.grad)
    np.testing.assert_array_equal(plain.b.grad, penalized.b.grad)


# ---- losses ------------------------------------------------------------------------------

def loss_errors(name: str, seed: int = 0) -> dict:
    loss = get_loss(name)
    y_pred, y_true = loss_inputs(name, np.random.default_rng(seed))
    _, grad = loss(y_pred, y_true)
    return check({"y_pred": grad}, lambda: loss(y_pred, y_true)[0], {"y_pred": y_pred})


def fused_errors(name: str, seed: int = 0) -> dict:
    """Gradient wrt the logits, and the fused value against the probability path's."""
    loss = get_loss(name)
    rng = np.random.default_rng(seed)
    _, y_true = loss_inputs(name, rng)
    z = rng.normal(scale=2.0, size=(6, 4))
    value, grad = loss.from_logits(z, y_true)
    errors = check({"z": grad}, lambda: loss.from_logits(z, y_true)[0], {"z": z})
    prob_value, _ = loss(get_activation(loss.fused_activation).forward(z), y_true)
    errors["value"] = rel_error(value, prob_value)
    return errors


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_gradient(name):
    errors = loss_errors(name)
    assert max(errors.values()) < TOL, errors


@pytest.mark.parametrize("name", FUSED_LOSSES)
def test_fused_loss_gradient_and_value(name):
    errors = fused_errors(name)
    assert errors["z"] < TOL, errors
    assert errors["value"] < 1e-12, errors


# ---- dropout -----------------------------------------------------------------------------

def dropout_layer(rate: float, shape: tuple[int, ...]) -> Dropout:
    layer = Dropout(rate)
    layer.build(shape, np.random.default_rng(0), np.float64)
    return layer


def dropout_errors(rate: float = 0.5, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    layer = dropout_layer(rate, (7,))
    x, r = rng.normal(size=(6, 7)), rng.normal(size=(6, 7))

    def loss():
        layer.rng = np.random.default_rng(123)  # the same mask on every call
        return float(np.sum(layer.forward(x, training=True) * r))

    loss()
    dx = layer.backward(r)
    dropped = np.count_nonzero(dx == 0)
    assert 0 < dropped < dx.size, "the mask should drop some values and keep others"
    return check({"X": dx}, loss, {"X": x})


def test_dropout_gradient():
    errors = dropout_errors()
    assert errors["X"] < TOL, errors


def test_dropout_is_identity_in_eval_mode():
    layer = dropout_layer(0.5, (7,))
    x, dy = np.random.default_rng(1).normal(size=(2, 6, 7))
    np.testing.assert_array_equal(layer.forward(x, training=False), x)
    np.testing.assert_array_equal(layer.backward(dy), dy)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_dropout_keeps_one_minus_rate_scaled_up(rate):
    layer = dropout_layer(rate, (1000,))
    y = layer.forward(np.ones((200, 1000)), training=True)
    kept = y[y != 0]
    assert abs(kept.size / y.size - (1 - rate)) < 0.01
    np.testing.assert_allclose(kept, 1 / (1 - rate), rtol=1e-12)
    assert abs(y.mean() - 1.0) < 0.03  # inverted dropout keeps the expectation


def test_dropout_mask_comes_from_the_layer_generator():
    layer = dropout_layer(0.5, (50,))
    x = np.ones((4, 50))
    masks = []
    for seed in (5, 5, 6):
        layer.rng = np.random.default_rng(seed)
        masks.append(layer.forward(x, training=True))
    np.testing.assert_array_equal(masks[0], masks[1])
    assert not np.array_equal(masks[0], masks[2])


# ---- a whole model -----------------------------------------------------------------------

MODEL_SPECS = [
    {"type": "dense", "units": 8, "activation": "relu", "l2": 0.01},
    {"type": "dropout", "rate": 0.3},
    {"type": "dense", "units": 6, "activation": "tanh"},
    {"type": "dense", "units": 3, "activation": "softmax"},
]


def model_errors(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    model = Sequential.from_specs(MODEL_SPECS, input_shape=(5,), rng=rng, dtype=np.float64)
    loss = get_loss("categorical_crossentropy")
    x, y = rng.normal(size=(10, 5)), rng.integers(0, 3, size=10)

    def objective():
        model.layers[1].rng = np.random.default_rng(42)  # fix the dropout mask
        z = model.forward(x, training=True, logits=True)
        value, grad = loss.from_logits(z, y)
        objective.grad = grad
        return value + model.penalty()

    objective()
    model.backward(objective.grad)
    params = model.parameters()
    analytic = {name: p.grad.copy() for name, p in params.items()}
    return check(analytic, objective, {name: p.value for name, p in params.items()})


def test_sequential_gradients():
    errors = model_errors()
    assert set(errors) == {f"layers.{i}.{p}" for i in (0, 2, 3) for p in "Wb"}
    assert max(errors.values()) < TOL, errors
