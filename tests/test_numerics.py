"""Numerical stability, dtypes, strict state dicts, hyperparameter validation, initializer
statistics, and small hand-checked numbers."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from gradcheck import loss_inputs
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from nnctl.nn.activations import ReLU, Sigmoid, Softmax, Tanh, get_activation
from nnctl.nn.init import INITIALIZERS, get_initializer
from nnctl.nn.layers import Dense, Param
from nnctl.nn.losses import LOSSES, get_loss
from nnctl.nn.model import Sequential
from nnctl.nn.optim import OPTIMIZERS, clip_grad_norm, clip_grad_value

CCE = get_loss("categorical_crossentropy")
BCE = get_loss("binary_crossentropy")
DTYPES = [np.float32, np.float64]

# ---- stability -----------------------------------------------------------------------------

EXTREME = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]], dtype=np.float32)
logit_arrays = arrays(
    np.float32, array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6),
    elements=st.floats(-1e4, 1e4, width=32),
)


def assert_finite(*values):
    for v in values:
        assert np.all(np.isfinite(v)), v


def test_cce_from_logits_extreme_logits():
    value, grad = CCE.from_logits(EXTREME, np.array([1, 0, 2]))
    assert_finite(value, grad)
    assert grad.dtype == np.float32
    # per row: logsumexp(z) - z_y = 2e4, log 3, 2e4 + log 2
    assert value == pytest.approx((4e4 + math.log(3) + math.log(2)) / 3, rel=1e-5)


def test_bce_from_logits_extreme_logits():
    z = np.array([[1e4, -1e4], [1e4, -1e4]], dtype=np.float32)
    y = np.array([[1, 0], [0, 1]], dtype=np.float32)
    value, grad = BCE.from_logits(z, y)
    assert_finite(value, grad)
    assert value == pytest.approx(5e3)  # losses 0, 0, 1e4, 1e4 over 4 values
    np.testing.assert_allclose(grad, [[0, 0], [0.25, -0.25]], atol=1e-7)


@pytest.mark.parametrize("name", ["softmax", "sigmoid"])
def test_activation_extreme_inputs_are_finite(name):
    act = get_activation(name)
    y = act.forward(EXTREME)
    dz = act.backward(np.ones_like(EXTREME), EXTREME, y)
    assert_finite(y, dz)
    assert y.dtype == dz.dtype == np.float32
    assert np.all((y >= 0) & (y <= 1))


@settings(max_examples=60, deadline=None)
@given(logit_arrays)
def test_softmax_rows_sum_to_one(z):
    y = Softmax().forward(z)
    assert y.dtype == np.float32
    assert np.all((y >= 0) & (y <= 1))
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)
    assert_finite(Softmax().backward(np.ones_like(z), z, y))


@settings(max_examples=60, deadline=None)
@given(logit_arrays)
def test_fused_losses_finite_on_random_logits(z):
    labels = np.arange(z.shape[0]) % z.shape[1]
    targets = (np.arange(z.size).reshape(z.shape) % 2).astype(np.float32)
    for value, grad in (CCE.from_logits(z, labels), BCE.from_logits(z, targets)):
        assert_finite(value, grad)
        assert grad.dtype == np.float32
    y = Sigmoid().forward(z)
    assert np.all((y >= 0) & (y <= 1))


# ---- dtypes --------------------------------------------------------------------------------

DTYPE_SPECS = [
    {"type": "dense", "units": 8, "activation": "relu", "l1": 0.01, "l2": 0.01},
    {"type": "dropout", "rate": 0.25},
    {"type": "dense", "units": 6, "activation": "tanh"},
    {"type": "dense", "units": 3, "activation": "softmax"},
]
STEP_KWARGS = {"sgd": {"momentum": 0.9, "nesterov": True}}  # exercise the buffers too


def small_model(dtype, seed=0, specs=DTYPE_SPECS) -> Sequential:
    return Sequential.from_specs(specs, input_shape=(5,), rng=np.random.default_rng(seed),
                                 dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_model_keeps_its_dtype(name, dtype):
    model = small_model(dtype)
    params = model.parameters()
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8, 5)).astype(dtype), rng.integers(0, 3, size=8)
    assert model.forward(x, training=True).dtype == dtype
    assert model.predict(x).dtype == dtype
    z = model.forward(x, training=True, logits=True)
    _, dz = CCE.from_logits(z, y)
    assert z.dtype == dz.dtype == dtype
    model.backward(dz)
    clip_grad_norm(list(params.values()), 0.1)
    clip_grad_value(list(params.values()), 0.01)
    opt = OPTIMIZERS[name](list(params.values()), **STEP_KWARGS.get(name, {}))
    opt.step()
    for key, p in params.items():
        assert (p.value.dtype, p.grad.dtype) == (dtype, dtype), key
        assert np.all(np.isfinite(p.value)), key
    for key, array in opt.state_dict().items():
        if key != "step":
            assert array.dtype == dtype, key


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_gradients_keep_dtype(name, dtype):
    loss = get_loss(name)
    y_pred, y_true = loss_inputs(name, np.random.default_rng(0), dtype=dtype)
    value, grad = loss(y_pred, y_true)
    assert grad.dtype == dtype and math.isfinite(value)
    if loss.fused_activation:
        _, grad = loss.from_logits(y_pred * 3, y_true)
        assert grad.dtype == dtype


# ---- model state dict ----------------------------------------------------------------------

def test_model_state_dict_round_trip():
    source, target = small_model(np.float64, seed=0), small_model(np.float64, seed=1)
    x = np.random.default_rng(2).normal(size=(4, 5))
    assert not np.allclose(source.predict(x), target.predict(x))
    state = source.state_dict()
    target.load_state_dict(state)
    np.testing.assert_array_equal(source.predict(x), target.predict(x))
    state["layers.0.W"][...] = 0.0  # the state dict is a copy, not a view
    assert np.any(source.parameters()["layers.0.W"].value != 0)
    assert np.any(target.parameters()["layers.0.W"].value != 0)


def corrupt(state, how):
    state = dict(state)
    if how == "missing":
        del state["layers.2.b"]
        return state, "layers.2.b"
    if how == "extra":
        state["layers.1.W"] = np.zeros((8, 8))
        return state, "layers.1.W"
    if how == "shape":
        state["layers.3.W"] = np.zeros((3, 6))
        return state, "layers.3.W"
    state["layers.0.W"] = state["layers.0.W"].astype(np.float32)
    return state, "layers.0.W"


@pytest.mark.parametrize("how", ["missing", "extra", "shape", "dtype"])
def test_model_load_state_dict_is_strict(how):
    model = small_model(np.float64, seed=0)
    before = model.state_dict()
    state, name = corrupt(small_model(np.float64, seed=1).state_dict(), how)
    with pytest.raises(ValueError, match=re.escape(name)):
        model.load_state_dict(state)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)


# ---- hyperparameter validation ------------------------------------------------------------

INVALID = [
    *[(name, {"lr": lr}) for name in sorted(OPTIMIZERS) for lr in (0.0, -0.1, float("nan"))],
    ("sgd", {"momentum": -0.1}),
    ("sgd", {"nesterov": True}),
    ("sgd", {"momentum": 0.0, "nesterov": True}),
    ("momentum", {"beta": -0.1}),
    ("momentum", {"beta": 1.0}),
    ("adagrad", {"eps": -1e-8}),
    ("adadelta", {"rho": -0.1}),
    ("adadelta", {"rho": 1.5}),
    ("adadelta", {"eps": -1e-6}),
    ("rmsprop", {"rho": -0.1}),
    ("rmsprop", {"rho": 1.0}),
    ("rmsprop", {"eps": -1e-8}),
    ("adam", {"beta1": 1.0}),
    ("adam", {"beta1": -0.1}),
    ("adam", {"beta2": 1.0}),
    ("adam", {"beta2": 1.5}),
    ("adam", {"eps": -1e-8}),
]


def one_param():
    return [Param(np.ones(3))]


@pytest.mark.parametrize("name,kwargs", INVALID, ids=[f"{n}-{k}" for n, k in INVALID])
def test_invalid_hyperparameters_are_refused(name, kwargs):
    with pytest.raises(ValueError):
        OPTIMIZERS[name](one_param(), **kwargs)


@pytest.mark.parametrize("name,kwargs", [
    ("sgd", {"momentum": 0.9, "nesterov": True}), ("momentum", {"beta": 0.0}),
    ("adadelta", {"rho": 1.0}), ("adam", {"beta1": 0.0, "beta2": 0.0, "eps": 0.0}),
])
def test_boundary_hyperparameters_are_accepted(name, kwargs):
    OPTIMIZERS[name](one_param(), **kwargs)


# ---- hand-checked optimizer steps ----------------------------------------------------------

THETA = [1.0, -2.0, 0.5]
GRAD = [0.5, -2.0, 3.0]
SQRT10 = math.sqrt(10)
# (optimizer, kwargs, gradients per step, expected parameters, rtol)
HAND_STEPS = {
    "sgd": ("sgd", {"lr": 0.1}, [GRAD], [0.95, -1.8, 0.2], 1e-12),
    # buf = g1, then 0.9 g1 + g2
    "sgd-momentum": ("sgd", {"lr": 0.1, "momentum": 0.9}, [[1.0] * 3, [0.5] * 3],
                     [0.76] * 3, 1e-12),
    # steps lr (g + mu buf): 0.1 * 1.9, then 0.1 * (0.5 + 0.9 * 1.4)
    "sgd-nesterov": ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True},
                     [[1.0] * 3, [0.5] * 3], [0.634] * 3, 1e-12),
    # v = 0.1, then 0.9 * 0.1 + 0.1 * 0.5 = 0.14
    "momentum": ("momentum", {"lr": 0.1, "beta": 0.9}, [[1.0] * 3, [0.5] * 3],
                 [0.976] * 3, 1e-12),
    # first steps move by lr sign(g) (adam, adagrad), 10 lr sign(g) (rmsprop, rho = 0.99)
    "adam": ("adam", {"lr": 0.01}, [GRAD], [0.99, -1.99, 0.49], 1e-7),
    "adagrad": ("adagrad", {"lr": 0.1}, [GRAD], [0.9, -1.9, 0.4], 1e-7),
    "rmsprop": ("rmsprop", {"lr": 0.01}, [GRAD], [0.9, -1.9, 0.4], 1e-6),
    # sqrt(eps) / sqrt((1 - rho) g^2) * g = sign(g) sqrt(eps / (1 - rho)) = 1e-3 sqrt(10)
    "adadelta": ("adadelta", {}, [GRAD],
                 [1 - 1e-3 * SQRT10, -2 + 1e-3 * SQRT10, 0.5 - 1e-3 * SQRT10], 1e-5),
}


@pytest.mark.parametrize("case", sorted(HAND_STEPS))
def test_optimizer_hand_checked_steps(case):
    name, kwargs, grads, expected, rtol = HAND_STEPS[case]
    param = Param(np.array(THETA if len(grads) == 1 else [1.0] * 3))
    opt = OPTIMIZERS[name]([param], **kwargs)
    for g in grads:
        param.grad[...] = g
        opt.step()
    np.testing.assert_allclose(param.value, expected, rtol=rtol)


def test_adam_first_step_is_lr_sign_g_whatever_the_scale():
    param = Param(np.zeros(4))
    param.grad[...] = [1e-2, -1e3, 7.0, -0.3]
    OPTIMIZERS["adam"]([param], lr=0.05).step()
    np.testing.assert_allclose(param.value, [-0.05, 0.05, -0.05, 0.05], rtol=1e-5)


# ---- hand-checked activations and losses ---------------------------------------------------

def test_relu_derivative_at_zero_is_zero():
    z = np.array([[-1.0, 0.0, 2.0]])
    np.testing.assert_array_equal(ReLU().backward(np.ones_like(z), z, ReLU().forward(z)),
                                  [[0.0, 0.0, 1.0]])


def test_sigmoid_derivative_is_y_times_one_minus_y():
    z = np.array([[0.0, math.log(3.0)]])  # y = 0.5, 0.75
    y = Sigmoid().forward(z)
    np.testing.assert_allclose(y, [[0.5, 0.75]])
    np.testing.assert_allclose(Sigmoid().backward(np.ones_like(z), z, y), [[0.25, 0.1875]])


def test_tanh_derivative():
    z = np.array([[0.0, math.atanh(0.5)]])
    y = Tanh().forward(z)
    np.testing.assert_allclose(Tanh().backward(np.ones_like(z), z, y), [[1.0, 0.75]])


def test_softmax_backward_uses_the_full_jacobian():
    z = np.zeros((1, 2))
    y = Softmax().forward(z)  # [0.5, 0.5]
    # y * (dy - sum(dy y)); the diagonal alone would give [0.25, 0]
    np.testing.assert_allclose(Softmax().backward(np.array([[1.0, 0.0]]), z, y),
                               [[0.25, -0.25]])


def test_mae_gradient_is_sign_of_pred_minus_target():
    value, grad = get_loss("mae")(np.array([[2.0, -1.0, 0.5]]), np.array([[1.0, 0.0, 0.5]]))
    assert value == pytest.approx(2 / 3)
    np.testing.assert_allclose(grad, [[1 / 3, -1 / 3, 0.0]])


def test_mse_value_and_gradient():
    value, grad = get_loss("mse")(np.array([[3.0, 0.0]]), np.array([[1.0, 1.0]]))
    assert value == pytest.approx(2.5)
    np.testing.assert_allclose(grad, [[2.0, -1.0]])  # 2 (pred - target) / 2


def test_bce_averages_over_every_value():
    p, y = np.full((2, 2), 0.5), np.array([[1.0, 0.0], [0.0, 1.0]])
    value, grad = BCE(p, y)
    assert value == pytest.approx(math.log(2))
    np.testing.assert_allclose(grad, [[-0.5, 0.5], [0.5, -0.5]])  # (p - y)/(p(1 - p))/4


def test_cce_sums_over_classes_and_averages_over_samples():
    p = np.array([[0.5, 0.25, 0.25], [0.1, 0.2, 0.7]])
    value, grad = CCE(p, np.array([0, 2]))
    assert value == pytest.approx(-(math.log(0.5) + math.log(0.7)) / 2)
    np.testing.assert_allclose(grad, [[-1.0, 0, 0], [0, 0, -1 / 1.4]])
    value, grad = CCE.from_logits(np.zeros((1, 2)), np.array([0]))
    assert value == pytest.approx(math.log(2))
    np.testing.assert_allclose(grad, [[-0.5, 0.5]])


def penalized_dense(l1, l2):
    layer = Dense(2, l1=l1, l2=l2)
    layer.build((3,), np.random.default_rng(0), np.float64)
    layer.W.value[...] = [[1.0, -2.0], [0.5, 0.0], [-1.0, 3.0]]
    layer.b.value[...] = [5.0, -5.0]  # biases are not penalized
    layer.forward(np.ones((1, 3)))
    layer.backward(np.zeros((1, 2)))  # only the penalty's gradient is left
    return layer


def test_l2_gradient_is_two_l2_w():
    layer = penalized_dense(0.0, 0.1)
    np.testing.assert_allclose(layer.W.grad, 0.2 * layer.W.value)
    np.testing.assert_array_equal(layer.b.grad, 0.0)
    assert layer.penalty() == pytest.approx(0.1 * 15.25)


def test_l1_plus_l2_penalty_and_gradient():
    layer = penalized_dense(0.3, 0.1)
    # 0.3 sign(W) + 0.2 W, with sign(0) = 0
    np.testing.assert_allclose(layer.W.grad, [[0.5, -0.7], [0.4, 0.0], [-0.5, 0.9]])
    np.testing.assert_array_equal(layer.b.grad, 0.0)
    assert layer.penalty() == pytest.approx(0.3 * 7.5 + 0.1 * 15.25)


# ---- initializers --------------------------------------------------------------------------

FAN = (200, 300)
UNIFORM_LIMITS = {
    "xavier_uniform": math.sqrt(6 / (FAN[0] + FAN[1])),
    "he_uniform": math.sqrt(6 / FAN[0]),
}
NORMAL_STDS = {
    "xavier_normal": math.sqrt(2 / (FAN[0] + FAN[1])),
    "he_normal": math.sqrt(2 / FAN[0]),
}


def draw(name, shape=FAN, seed=0, dtype=np.float64):
    return get_initializer(name)(shape, np.random.default_rng(seed), np.dtype(dtype))


@pytest.mark.parametrize("name", sorted(UNIFORM_LIMITS))
def test_uniform_initializer_bounds(name):
    w, limit = draw(name), UNIFORM_LIMITS[name]
    assert np.abs(w).max() <= limit
    assert w.max() > 0.99 * limit and w.min() < -0.99 * limit
    assert abs(w.mean()) < 0.02 * limit


def test_he_uniform_bound_uses_fan_in_on_both_sides():
    w = draw("he_uniform", shape=(6, 600))  # sqrt(6 / 6) = 1; sqrt(6 / 600) would be 0.1
    assert np.abs(w).max() <= 1.0
    assert w.max() > 0.95 and w.min() < -0.95


@pytest.mark.parametrize("name", sorted(NORMAL_STDS))
def test_normal_initializer_std(name):
    w = draw(name)
    assert w.std() == pytest.approx(NORMAL_STDS[name], rel=0.02)
    assert abs(w.mean()) < 0.02 * NORMAL_STDS[name]


@pytest.mark.parametrize("shape", [(8, 8), (10, 4), (4, 10)])
def test_orthogonal(shape):
    w = draw("orthogonal", shape=shape)
    assert w.shape == shape
    gram = w.T @ w if shape[0] >= shape[1] else w @ w.T
    np.testing.assert_allclose(gram, np.eye(min(shape)), atol=1e-12)


@pytest.mark.parametrize("name", sorted(INITIALIZERS))
def test_initializers_are_seeded(name):
    a, b, c = draw(name, (20, 30), 0), draw(name, (20, 30), 0), draw(name, (20, 30), 1)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert draw(name, (20, 30), dtype=np.float32).dtype == np.float32
