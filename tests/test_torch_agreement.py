"""Agreement with PyTorch (float64): optimizers over ten steps on a small MLP, losses, and
gradient clipping. The `momentum` optimizer has no PyTorch twin; it is checked against its
rule written out by hand on torch tensors."""

from __future__ import annotations

import io

import numpy as np
import pytest
from gradcheck import loss_inputs, rel_error

from nnctl.nn.layers import Param
from nnctl.nn.losses import LOSSES, get_loss
from nnctl.nn.model import Sequential
from nnctl.nn.optim import OPTIMIZERS, clip_grad_norm, clip_grad_value

torch = pytest.importorskip("torch")

TOL = 1e-6
STEPS = 10
SPECS = [
    {"type": "dense", "units": 8, "activation": "tanh"},
    {"type": "dense", "units": 3, "activation": "softmax"},
]
CCE = get_loss("categorical_crossentropy")


class HandMomentum:
    """v = beta v + (1 - beta) g;  theta -= lr v, on torch tensors."""

    def __init__(self, params, lr, beta):
        self.params, self.lr, self.beta = list(params), lr, beta
        self.velocity = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self):
        for p, v in zip(self.params, self.velocity):
            v.mul_(self.beta).add_(p.grad, alpha=1 - self.beta)
            p.sub_(self.lr * v)


# id: (nnctl optimizer, its kwargs, torch optimizer factory). Empty kwargs compare defaults.
OPTIMIZER_CASES = {
    "sgd": ("sgd", {}, lambda p: torch.optim.SGD(p)),
    "sgd-lr": ("sgd", {"lr": 0.1}, lambda p: torch.optim.SGD(p, lr=0.1)),
    "sgd-momentum": ("sgd", {"lr": 0.1, "momentum": 0.9},
                     lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
    "sgd-nesterov": ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True},
                     lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True)),
    "momentum": ("momentum", {"lr": 0.1, "beta": 0.9},
                 lambda p: HandMomentum(p, lr=0.1, beta=0.9)),
    "momentum-beta": ("momentum", {"lr": 0.3, "beta": 0.5},
                      lambda p: HandMomentum(p, lr=0.3, beta=0.5)),
    "adagrad": ("adagrad", {}, lambda p: torch.optim.Adagrad(p)),
    "adagrad-custom": ("adagrad", {"lr": 0.1, "eps": 1e-3},
                       lambda p: torch.optim.Adagrad(p, lr=0.1, eps=1e-3)),
    "adadelta": ("adadelta", {}, lambda p: torch.optim.Adadelta(p)),
    "adadelta-custom": ("adadelta", {"lr": 0.5, "rho": 0.8, "eps": 1e-4},
                        lambda p: torch.optim.Adadelta(p, lr=0.5, rho=0.8, eps=1e-4)),
    "rmsprop": ("rmsprop", {}, lambda p: torch.optim.RMSprop(p)),
    "rmsprop-custom": ("rmsprop", {"lr": 0.005, "rho": 0.9, "eps": 1e-4},
                       lambda p: torch.optim.RMSprop(p, lr=0.005, alpha=0.9, eps=1e-4)),
    "adam": ("adam", {}, lambda p: torch.optim.Adam(p)),
    "adam-custom": ("adam", {"lr": 0.05, "beta1": 0.8, "beta2": 0.99, "eps": 1e-4},
                    lambda p: torch.optim.Adam(p, lr=0.05, betas=(0.8, 0.99), eps=1e-4)),
}


def make_model(seed: int = 0) -> Sequential:
    return Sequential.from_specs(SPECS, input_shape=(5,), rng=np.random.default_rng(seed),
                                 dtype=np.float64)


def make_batches(steps: int, seed: int = 1, n: int = 16) -> list:
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(n, 5)), rng.integers(0, 3, size=n)) for _ in range(steps)]


def torch_twin(model: Sequential):
    """A torch MLP with the model's weights (torch Linear keeps W transposed)."""
    net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    net = net.double()
    with torch.no_grad():
        for layer, linear in zip(model.layers, (net[0], net[2])):
            linear.weight.copy_(torch.from_numpy(layer.W.value.T))
            linear.bias.copy_(torch.from_numpy(layer.b.value))
    return net


def torch_params(net) -> dict[str, np.ndarray]:
    """The torch weights under nnctl's names and layout."""
    out = {}
    for i, linear in enumerate((net[0], net[2])):
        out[f"layers.{i}.W"] = linear.weight.detach().numpy().T.copy()
        out[f"layers.{i}.b"] = linear.bias.detach().numpy().copy()
    return out


def nnctl_step(model, opt, x, y) -> None:
    z = model.forward(x, training=True, logits=True)
    _, dz = CCE.from_logits(z, y)
    model.backward(dz)
    opt.step()


def torch_step(net, opt, x, y) -> None:
    net.zero_grad()
    out = net(torch.from_numpy(x))
    torch.nn.functional.cross_entropy(out, torch.from_numpy(y)).backward()
    opt.step()


def optimizer_errors(case: str) -> dict[str, float]:
    """Worst relative error over the steps, of the parameters and of their displacement from
    the start (the stricter test: a wrong update that is small next to the weights shows)."""
    name, kwargs, make_torch = OPTIMIZER_CASES[case]
    model = make_model()
    net = torch_twin(model)
    params = model.parameters()
    start = {k: p.value.copy() for k, p in params.items()}
    opt = OPTIMIZERS[name](list(params.values()), **kwargs)
    topt = make_torch(net.parameters())
    worst = {"param": 0.0, "displacement": 0.0}
    for x, y in make_batches(STEPS):
        nnctl_step(model, opt, x, y)
        torch_step(net, topt, x, y)
        for k, theirs in torch_params(net).items():
            ours = params[k].value
            worst["param"] = max(worst["param"], rel_error(ours, theirs))
            worst["displacement"] = max(
                worst["displacement"], rel_error(ours - start[k], theirs - start[k]))
    return worst


def test_every_optimizer_has_a_case():
    assert {name for name, _, _ in OPTIMIZER_CASES.values()} == set(OPTIMIZERS)


@pytest.mark.parametrize("case", sorted(OPTIMIZER_CASES))
def test_optimizer_matches_torch(case):
    errors = optimizer_errors(case)
    assert max(errors.values()) < TOL, errors


# ---- optimizer state round trip ------------------------------------------------------------

ROUNDTRIP_KWARGS = {"sgd": {"lr": 0.1, "momentum": 0.9, "nesterov": True}}


def through_npz(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Save and reload as a checkpoint would: plain arrays, no pickle."""
    buffer = io.BytesIO()
    np.savez(buffer, **state)
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_state_round_trip(name):
    kwargs = ROUNDTRIP_KWARGS.get(name, {})
    batches = make_batches(10)
    model = make_model(0)
    opt = OPTIMIZERS[name](list(model.parameters().values()), **kwargs)
    for x, y in batches[:5]:
        nnctl_step(model, opt, x, y)
    weights, state = through_npz(model.state_dict()), through_npz(opt.state_dict())
    for x, y in batches[5:]:
        nnctl_step(model, opt, x, y)

    fresh = make_model(seed=99)
    fresh_opt = OPTIMIZERS[name](list(fresh.parameters().values()), **kwargs)
    fresh.load_state_dict(weights)
    fresh_opt.load_state_dict(state)
    for x, y in batches[5:]:
        nnctl_step(fresh, fresh_opt, x, y)

    for k, p in model.parameters().items():
        np.testing.assert_array_equal(fresh.parameters()[k].value, p.value, err_msg=k)


# ---- losses --------------------------------------------------------------------------------

TORCH_LOSSES = {
    "mae": torch.nn.L1Loss(),
    "mse": torch.nn.MSELoss(),
    "binary_crossentropy": torch.nn.BCELoss(),
    "categorical_crossentropy": lambda p, y: torch.nn.NLLLoss()(torch.log(p), y),
}
TORCH_FROM_LOGITS = {
    "binary_crossentropy": torch.nn.BCEWithLogitsLoss(),
    "categorical_crossentropy": torch.nn.CrossEntropyLoss(),
}


def torch_value_and_grad(fn, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    xt = torch.tensor(x, requires_grad=True)
    value = fn(xt, torch.from_numpy(y))
    value.backward()
    return float(value.detach()), xt.grad.numpy()


def loss_torch_errors(name: str, logits: bool = False, seed: int = 0) -> dict[str, float]:
    loss = get_loss(name)
    rng = np.random.default_rng(seed)
    y_pred, y_true = loss_inputs(name, rng, n=7, k=4)
    if logits:
        x = rng.normal(scale=3.0, size=y_pred.shape)
        ours, reference = loss.from_logits, TORCH_FROM_LOGITS[name]
    else:
        x, ours, reference = y_pred, loss, TORCH_LOSSES[name]
    value, grad = ours(x, y_true)
    t_value, t_grad = torch_value_and_grad(reference, x, y_true)
    return {"value": rel_error(value, t_value), "grad": rel_error(grad, t_grad)}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_matches_torch(name):
    errors = loss_torch_errors(name)
    assert max(errors.values()) < TOL, errors


@pytest.mark.parametrize("name", sorted(TORCH_FROM_LOGITS))
def test_loss_from_logits_matches_torch(name):
    assert LOSSES[name].fused_activation is not None
    errors = loss_torch_errors(name, logits=True)
    assert max(errors.values()) < TOL, errors


def test_every_fused_loss_has_a_torch_twin():
    assert set(TORCH_FROM_LOGITS) == {n for n, c in LOSSES.items() if c.fused_activation}


# ---- clipping ------------------------------------------------------------------------------

def grad_pairs(scale: float = 1.0, seed: int = 0):
    """The same random gradients as nnctl Params and as torch tensors."""
    rng = np.random.default_rng(seed)
    ours, theirs = [], []
    for shape in [(5, 8), (8,), (8, 3), (3,)]:
        g = rng.normal(scale=scale, size=shape)
        p = Param(np.zeros(shape))
        p.grad[...] = g
        t = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
        t.grad = torch.from_numpy(g.copy())
        ours.append(p)
        theirs.append(t)
    return ours, theirs


def grads_error(ours, theirs) -> float:
    return max(rel_error(p.grad, t.grad.numpy()) for p, t in zip(ours, theirs))


def clip_norm_errors(max_norm: float, scale: float = 1.0) -> dict[str, float]:
    ours, theirs = grad_pairs(scale)
    total = clip_grad_norm(ours, max_norm)
    t_total = float(torch.nn.utils.clip_grad_norm_(theirs, max_norm))
    clipped = np.sqrt(sum(np.vdot(p.grad, p.grad) for p in ours))
    return {"total": rel_error(total, t_total), "grad": grads_error(ours, theirs),
            "norm_before": total, "norm_after": clipped}


# Gradients of norm ~8, or ~8e-6 where PyTorch's 1e-6 in max_norm / (norm + 1e-6) shows.
# Both sides compute the same float64 formula, hence the tight tolerance.
CLIP_CASES = [(0.5, 1.0, True), (3.0, 1.0, True), (100.0, 1.0, False), (4e-6, 1e-6, True)]


@pytest.mark.parametrize("max_norm,scale,triggers", CLIP_CASES)
def test_clip_grad_norm_matches_torch(max_norm, scale, triggers):
    errors = clip_norm_errors(max_norm, scale)
    assert (errors["norm_before"] > max_norm) == triggers
    if triggers:
        assert errors["norm_after"] < max_norm
    else:
        assert errors["norm_after"] == errors["norm_before"]
    assert max(errors["total"], errors["grad"]) < 1e-12, errors


def clip_value_error(value: float) -> float:
    ours, theirs = grad_pairs()
    clip_grad_value(ours, value)
    torch.nn.utils.clip_grad_value_(theirs, value)
    assert max(np.abs(p.grad).max() for p in ours) <= value
    return grads_error(ours, theirs)


@pytest.mark.parametrize("value", [0.5, 1.5])
def test_clip_grad_value_matches_torch(value):
    assert clip_value_error(value) < 1e-12
