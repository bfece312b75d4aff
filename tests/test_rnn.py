"""The rnn layer: gradient checks, agreement with torch.nn.RNN, shapes, dtypes and errors."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck import numerical_grad, rel_error
from nnctl.nn.layers import LAYERS, RNN
from nnctl.nn.losses import get_loss
from nnctl.nn.model import Sequential
from nnctl.nn.optim import OPTIMIZERS
from torch_rnn import nnctl_arrays, torch_twin

N, T, F, UNITS = 3, 5, 4, 6


def built_rnn(seed=0, dtype=np.float64, steps=T, features=F, **kwargs):
    layer = RNN(UNITS, **kwargs)
    layer.build((steps, features), np.random.default_rng(seed), np.dtype(dtype))
    return layer


def layer_grad_errors(layer, x, r):
    """Relative errors of backward's gradients against numerical ones for
    L = sum(forward(x) * R) + penalty, for x and every parameter."""

    def loss():
        return float(np.sum(layer.forward(x) * r)) + layer.penalty()

    layer.forward(x)
    dx = layer.backward(r)
    errors = {"x": rel_error(dx, numerical_grad(loss, x))}
    for name, p in layer.parameters().items():
        errors[name] = rel_error(p.grad, numerical_grad(loss, p.value))
    return errors


GRAD_CASES = [
    (activation, seq, 0.0, 0.0)
    for activation in ("tanh", "relu", "sigmoid", "linear")
    for seq in (False, True)
] + [("tanh", True, 0.01, 0.02), ("relu", False, 0.01, 0.02)]


@pytest.mark.parametrize("activation,return_sequences,l1,l2", GRAD_CASES)
def test_gradient_check(activation, return_sequences, l1, l2):
    rng = np.random.default_rng(1)
    layer = built_rnn(seed=2, activation=activation, return_sequences=return_sequences,
                      l1=l1, l2=l2)
    x = rng.standard_normal((N, T, F))
    out = layer.forward(x)
    r = rng.standard_normal(out.shape)
    if activation == "relu":
        # Central differences are only valid away from the kink: no pre-activation may be
        # within reach of a 1e-6 step, and both sides of the kink must be exercised.
        assert np.abs(layer._z).min() > 1e-4
        assert (layer._z > 0).any() and (layer._z < 0).any()
    errors = layer_grad_errors(layer, x, r)
    assert max(errors.values()) < 1e-6, errors


def test_stacked_rnns_in_sequential_gradient_check():
    rng = np.random.default_rng(3)
    specs = [
        {"type": "rnn", "units": 5, "return_sequences": True, "l1": 0.01},
        {"type": "dropout", "rate": 0.3},
        {"type": "rnn", "units": 4, "activation": "sigmoid", "l2": 0.05},
        {"type": "dense", "units": 3, "activation": "softmax"},
    ]
    model = Sequential.from_specs(specs, input_shape=(T, F), rng=np.random.default_rng(4),
                                  dtype=np.float64)
    assert model.output_shape == (3,)
    assert set(model.parameters()) == {
        "layers.0.W_x", "layers.0.W_h", "layers.0.b",
        "layers.2.W_x", "layers.2.W_h", "layers.2.b",
        "layers.3.W", "layers.3.b",
    }
    x = rng.standard_normal((N, T, F))
    y = np.array([0, 2, 1])
    xent = get_loss("categorical_crossentropy")

    def loss():
        model.layers[1].rng = np.random.default_rng(5)  # the same dropout mask every time
        value, _ = xent.from_logits(model.forward(x, training=True, logits=True), y)
        return value + model.penalty()

    loss()
    assert model.layers[1]._mask is not None and (model.layers[1]._mask == 0).any()
    model.layers[1].rng = np.random.default_rng(5)
    _, dz = xent.from_logits(model.forward(x, training=True, logits=True), y)
    model.backward(dz)
    for name, p in model.parameters().items():
        analytic = p.grad.copy()
        assert rel_error(analytic, numerical_grad(loss, p.value)) < 1e-6, name


# ----------------------------------------------------------------------------- torch

@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_matches_torch_forward_and_gradients(nonlinearity, return_sequences):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    layer = built_rnn(seed=7, activation=nonlinearity, return_sequences=return_sequences)
    layer.b.value[...] = rng.standard_normal(UNITS) * 0.1  # a nonzero bias is compared too
    x = rng.standard_normal((N, T, F))
    out = layer.forward(x)
    r = rng.standard_normal(out.shape)
    dx = layer.backward(r)

    arrays = {f"layers.0.{name}": p.value for name, p in layer.parameters().items()}
    rnn, _, _ = torch_twin(torch, arrays, nonlinearity)
    xt = torch.tensor(x, requires_grad=True)
    seq, h_n = rnn(xt)
    out_t = seq if return_sequences else h_n[0]
    (out_t * torch.from_numpy(r)).sum().backward()

    assert out.shape == tuple(out_t.shape)
    assert rel_error(out, out_t.detach().numpy()) < 1e-12
    assert rel_error(dx, xt.grad.numpy()) < 1e-12
    assert rel_error(layer.W_x.grad, rnn.weight_ih_l0.grad.numpy().T) < 1e-12
    assert rel_error(layer.W_h.grad, rnn.weight_hh_l0.grad.numpy().T) < 1e-12
    assert rel_error(layer.b.grad, rnn.bias_ih_l0.grad.numpy()) < 1e-12


@pytest.mark.parametrize("name,kwargs,torch_name,torch_kwargs", [
    ("adam", {"lr": 0.01}, "Adam", {"lr": 0.01}),
    ("sgd", {"lr": 0.1, "momentum": 0.9}, "SGD", {"lr": 0.1, "momentum": 0.9}),
])
def test_five_optimizer_steps_match_torch(name, kwargs, torch_name, torch_kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    l2 = 1e-3
    specs = [{"type": "rnn", "units": 6, "l2": l2},
             {"type": "dense", "units": 3, "activation": "softmax"}]
    model = Sequential.from_specs(specs, input_shape=(T, F), rng=np.random.default_rng(9),
                                  dtype=np.float64)
    initial = model.state_dict()
    rnn, linear, torch_params = torch_twin(torch, initial)
    torch_opt = getattr(torch.optim, torch_name)(torch_params, **torch_kwargs)
    opt = OPTIMIZERS[name](list(model.parameters().values()), **kwargs)
    xent = get_loss("categorical_crossentropy")

    for _ in range(5):
        x = rng.standard_normal((8, T, F))
        y = rng.integers(0, 3, size=8)
        _, dz = xent.from_logits(model.forward(x, training=True, logits=True), y)
        model.backward(dz)
        opt.step()

        torch_opt.zero_grad()
        _, h_n = rnn(torch.from_numpy(x))
        loss = torch.nn.functional.cross_entropy(linear(h_n[0]), torch.from_numpy(y))
        loss = loss + l2 * (rnn.weight_ih_l0.square().sum() + rnn.weight_hh_l0.square().sum())
        loss.backward()
        torch_opt.step()

    expected = nnctl_arrays(rnn, linear)
    for key, param in model.parameters().items():
        moved = np.linalg.norm(param.value - initial[key])
        assert moved > 1e-3, f"{key} barely moved, so the comparison would prove nothing"
        error = np.linalg.norm(param.value - expected[key]) / np.linalg.norm(expected[key])
        assert error < 1e-6, (key, error)


# ------------------------------------------------------------------- shapes, dtypes, errors

def test_registered():
    assert LAYERS["rnn"] is RNN


@pytest.mark.parametrize("return_sequences,shape", [(False, (UNITS,)), (True, (T, UNITS))])
def test_output_shapes(return_sequences, shape):
    layer = RNN(UNITS, return_sequences=return_sequences)
    assert layer.build((T, F), np.random.default_rng(0), np.dtype(np.float64)) == shape
    out = layer.forward(np.random.default_rng(1).standard_normal((N, T, F)))
    assert out.shape == (N, *shape)
    assert layer.backward(np.ones_like(out)).shape == (N, T, F)
    assert layer.backward(np.ones_like(out), input_grad=False) is None
    shapes = {name: p.value.shape for name, p in layer.parameters().items()}
    assert shapes == {"W_x": (F, UNITS), "W_h": (UNITS, UNITS), "b": (UNITS,)}


def test_last_state_is_last_step_of_sequence():
    x = np.random.default_rng(2).standard_normal((N, T, F))
    last = built_rnn(seed=3).forward(x)
    seq = built_rnn(seed=3, return_sequences=True).forward(x)
    np.testing.assert_array_equal(last, seq[:, -1])


def test_hand_checked_two_steps():
    layer = RNN(1, activation="linear")
    layer.build((2, 1), np.random.default_rng(0), np.dtype(np.float64))
    layer.W_x.value[...] = 2.0
    layer.W_h.value[...] = 3.0
    layer.b.value[...] = 1.0
    out = layer.forward(np.array([[[1.0], [10.0]]]))
    # h1 = 2*1 + 1 = 3;  h2 = 2*10 + 3*3 + 1 = 30
    np.testing.assert_allclose(out, [[30.0]])
    dx = layer.backward(np.array([[1.0]]))
    # dz2 = 1, dz1 = 3;  dW_x = 1*3 + 10*1, dW_h = h1*dz2 = 3, db = 4, dx = (3*2, 1*2)
    np.testing.assert_allclose(layer.W_x.grad, [[13.0]])
    np.testing.assert_allclose(layer.W_h.grad, [[3.0]])
    np.testing.assert_allclose(layer.b.grad, [4.0])
    np.testing.assert_allclose(dx, [[[6.0], [2.0]]])


@pytest.mark.parametrize("return_sequences", [False, True])
def test_float32_stays_float32(return_sequences):
    layer = built_rnn(dtype=np.float32, return_sequences=return_sequences, l1=0.01, l2=0.01)
    x = np.random.default_rng(4).standard_normal((N, T, F)).astype(np.float32)
    out = layer.forward(x)
    assert out.dtype == np.float32
    dx = layer.backward(np.ones_like(out))
    assert dx.dtype == np.float32
    for name, p in layer.parameters().items():
        assert p.value.dtype == np.float32 and p.grad.dtype == np.float32, name


def test_backward_overwrites_gradients():
    layer = built_rnn(return_sequences=True, l2=0.1)
    out = layer.forward(np.random.default_rng(5).standard_normal((N, T, F)))
    layer.backward(np.ones_like(out))
    first = {name: p.grad.copy() for name, p in layer.parameters().items()}
    layer.backward(np.ones_like(out))
    for name, p in layer.parameters().items():
        np.testing.assert_array_equal(p.grad, first[name])


def test_default_initializers():
    layer = built_rnn()
    assert layer.init == "xavier_uniform" and layer.recurrent_init == "orthogonal"
    w_h = layer.W_h.value
    np.testing.assert_allclose(w_h.T @ w_h, np.eye(UNITS), atol=1e-12)
    assert RNN(4, activation="relu").init == "he_uniform"
    assert np.all(layer.b.value == 0)


@pytest.mark.parametrize("shape", [(F,), (T, F, 2), (0, F), (T, 0)])
def test_bad_input_shape_raises(shape):
    with pytest.raises(ValueError, match="steps, features"):
        RNN(UNITS).build(shape, np.random.default_rng(0), np.dtype(np.float64))


def test_forward_rejects_wrong_features():
    layer = built_rnn()
    with pytest.raises(ValueError, match="batch, steps"):
        layer.forward(np.zeros((N, T, F + 1)))
    with pytest.raises(ValueError, match="batch, steps"):
        layer.forward(np.zeros((N, F)))


def test_softmax_and_unknown_names_raise():
    with pytest.raises(ValueError, match="softmax"):
        RNN(UNITS, activation="softmax")
    with pytest.raises(ValueError, match="Unknown activation"):
        RNN(UNITS, activation="gelu")
    with pytest.raises(ValueError, match="Unknown initializer"):
        RNN(UNITS, recurrent_init="identity")
    with pytest.raises(ValueError, match="Invalid number of units"):
        RNN(0)
