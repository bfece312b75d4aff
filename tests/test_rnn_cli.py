"""The rnn layer through the whole product: CSV sequences, config, optimizer, checkpoint."""

import numpy as np
import pytest

from cli_helpers import invoke, train, weights, write_csv
from torch_rnn import nnctl_arrays, torch_twin

STEPS, FEATURES, UNITS, ROWS, BATCH = 4, 2, 3, 20, 4


def sequence_problem(folder, rng):
    """A regression CSV whose 8 feature columns are 4 steps of 2 features (step-major), and a
    float64 config that takes ROWS / BATCH = 5 optimizer steps in its one epoch."""
    x = rng.standard_normal((ROWS, STEPS * FEATURES))
    y = x[:, ::FEATURES].sum(axis=1, keepdims=True) + 0.1 * rng.standard_normal((ROWS, 1))
    columns = [f"s{t}f{f}" for t in range(STEPS) for f in range(FEATURES)]
    write_csv(folder / "seq.csv", columns + ["y"], np.hstack([x, y]).tolist())
    (folder / "seq.yaml").write_text(f"""\
dtype: float64
data: {{train: seq.csv, validation: null, target: y, scale: none,
       sequence: {{steps: {STEPS}, features: {FEATURES}}}}}
model:
  layers:
    - {{type: rnn, units: {UNITS}, activation: tanh}}
    - {{type: dense, units: 1}}
loss: mse
optimizer: {{type: adam, lr: 0.05}}
training: {{epochs: 1, batch_size: {BATCH}, shuffle: false}}
""")
    return x.reshape(ROWS, STEPS, FEATURES), y


def test_five_adam_steps_through_the_cli_match_torch(tmp_path):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, y = sequence_problem(tmp_path, rng)
    start = {
        "layers.0.W_x": rng.standard_normal((FEATURES, UNITS)) * 0.5,
        "layers.0.W_h": rng.standard_normal((UNITS, UNITS)) * 0.5,
        "layers.0.b": rng.standard_normal(UNITS) * 0.1,
        "layers.1.W": rng.standard_normal((UNITS, 1)) * 0.5,
        "layers.1.b": rng.standard_normal(1) * 0.1,
    }
    np.savez(tmp_path / "start.npz", **start)
    _, run_dir = train(tmp_path / "seq.yaml", tmp_path / "runs",
                       "--init-weights", tmp_path / "start.npz")
    trained = weights(run_dir)

    rnn, head, params = torch_twin(torch, start)
    optimizer = torch.optim.Adam(params, lr=0.05)
    for start_row in range(0, ROWS, BATCH):
        xb = torch.tensor(x[start_row:start_row + BATCH])
        yb = torch.tensor(y[start_row:start_row + BATCH])
        optimizer.zero_grad()
        out, _ = rnn(xb)
        loss = torch.nn.functional.mse_loss(head(out[:, -1]), yb)
        loss.backward()
        optimizer.step()

    for name, want in nnctl_arrays(rnn, head).items():
        assert not np.allclose(want, start[name])  # every array moved: the check is not idle
        got = trained[name]
        assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-6, name


def test_sequence_run_evaluates_and_predicts(tmp_path):
    sequence_problem(tmp_path, np.random.default_rng(1))
    _, run_dir = train(tmp_path / "seq.yaml", tmp_path / "runs", "--set", "training.epochs=3")
    result = invoke("eval", run_dir, tmp_path / "seq.csv")
    assert result.exit_code == 0, result.stderr
    assert "r2" in result.stdout
    result = invoke("predict", run_dir, tmp_path / "seq.csv")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "pred_y" and len(lines) == ROWS + 1
