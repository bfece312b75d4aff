"""`data.scale_target: standard`: a fixed output map Y = Z * spread + offset after the last
layer. Checked by central differences, against training on standardized targets by hand
(Adam's steps do not depend on the loss's scale), and through the CLI (fitted on the training
split, stored, applied at predict)."""

from __future__ import annotations

import json

import numpy as np
from gradcheck import TOL, numerical_grad, rel_error

from cli_helpers import invoke, train, write_config, write_csv
from nnctl.nn.losses import get_loss
from nnctl.nn.model import Sequential
from nnctl.nn.optim import Adam

SPECS = [{"type": "dense", "units": 6, "activation": "tanh"}, {"type": "dense", "units": 2}]
OFFSET, SPREAD = np.array([500.0, -3.0]), np.array([400.0, 0.5])


def model(outputs=None) -> Sequential:
    return Sequential.from_specs(SPECS, (3,), np.random.default_rng(0), np.float64,
                                 outputs=outputs)


def test_gradients_through_the_output_scale():
    rng = np.random.default_rng(1)
    net, x, y = model((OFFSET, SPREAD)), rng.normal(size=(5, 3)), rng.normal(size=(5, 2)) * 300
    loss = get_loss("mse")

    def value():
        return loss(net.forward(x), y)[0]

    _, grad = loss(net.forward(x), y)
    net.backward(grad)
    for name, param in net.parameters().items():
        analytic = param.grad.copy()
        assert rel_error(analytic, numerical_grad(value, param.value)) < TOL, name


def test_adam_on_a_raw_target_with_the_scale_is_adam_on_the_standardized_target():
    """Exactly so for one target. (With several, the loss in the targets' units weights each
    by its spread squared, as it does without the scale.)"""
    rng = np.random.default_rng(2)
    offset, spread = OFFSET[:1], SPREAD[:1]
    x = rng.normal(size=(32, 3))
    y = offset + spread * rng.normal(size=(32, 1))
    one = [SPECS[0], {"type": "dense", "units": 1}]
    scaled, plain = (Sequential.from_specs(one, (3,), np.random.default_rng(0), np.float64,
                                           outputs=outputs)
                     for outputs in ((offset, spread), None))
    mse = get_loss("mse")
    # eps = 0: with it, Adam is exactly invariant to the gradient's scale
    optimizers = [Adam(list(m.parameters().values()), lr=0.01, eps=0.0) for m in (scaled, plain)]
    for step in range(10):
        batch = slice(step % 4 * 8, step % 4 * 8 + 8)
        raw_loss, grad = mse(scaled.forward(x[batch], training=True), y[batch])
        scaled.backward(grad)
        z = (y[batch] - offset) / spread
        std_loss, grad = mse(plain.forward(x[batch], training=True), z)
        plain.backward(grad)
        for optimizer in optimizers:
            optimizer.step()
        # the loss is in the target's units: spread^2 times the standardized one
        assert np.isclose(raw_loss, spread[0] ** 2 * std_loss, rtol=1e-9)
    for name, param in scaled.parameters().items():
        assert rel_error(param.value, plain.parameters()[name].value) < 1e-10, name


def test_fitted_on_the_training_split_stored_and_applied_at_predict(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 2))
    y = 1000 + 250 * (x[:, 0] - 0.5 * x[:, 1]) + rng.normal(size=200)
    csv = write_csv(tmp_path / "data.csv", ["a", "b", "y"],
                    [[f"{u:.6f}", f"{v:.6f}", f"{w:.6f}"] for (u, v), w in zip(x, y)])
    config = write_config(tmp_path / "reg.yaml", {
        "data": {"train": str(csv), "validation": None, "target": "y",
                 "scale_target": "standard"},
        "model": {"layers": [{"type": "dense", "units": 1}]},
        "loss": "mse", "optimizer": {"type": "adam", "lr": 0.05},
        "training": {"epochs": 40, "batch_size": 20}})
    _, run_dir = train(config, tmp_path / "runs")
    prep = json.loads((run_dir / "checkpoints" / "best.json").read_text())["preprocessing"]
    np.testing.assert_allclose(prep["target_scale"], [[y.mean()], [y.std()]], rtol=1e-6)
    result = invoke("eval", run_dir, csv, "--json")
    assert json.loads(result.stdout)["r2"] > 0.99  # a linear target, learned in 40 epochs
    predicted = invoke("predict", run_dir, csv)
    values = np.array([float(line.split(",")[-1]) for line in predicted.stdout.split()[1:]])
    assert abs(values.mean() - y.mean()) < 5  # in the target's units, not standardized


def test_only_for_regression(tmp_path):
    from cli_helpers import assert_user_error, classification_config, write_config as write

    config = classification_config()
    config["data"]["scale_target"] = "standard"
    path = write(tmp_path / "c.yaml", config)
    assert_user_error(invoke("validate", path), "data.scale_target: scales regression targets")
