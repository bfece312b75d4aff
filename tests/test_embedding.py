"""Embedding tables and the embedding input block: gradient checks (float64, both backward
strategies, penalties, a whole model), agreement with PyTorch's nn.Embedding over optimizer
steps, state dicts, and a model without embeddings staying exactly as it was."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import TOL, numerical_grad, rel_error

from nnctl.checkpoint import load_weights_file, model_arrays
from nnctl.nn.layers import Embedding, EmbeddingInputs, LAYERS
from nnctl.nn.layers.embedding import ONE_HOT_MAX
from nnctl.nn.losses import get_loss
from nnctl.nn.model import Sequential
from nnctl.nn.optim import SGD, Adam, clip_grad_norm, contiguous

CCE = get_loss("categorical_crossentropy")
FEATURES = 3
# One table on each side of ONE_HOT_MAX, so both backward strategies are checked.
SMALL, LARGE = 5, ONE_HOT_MAX + 8
EMBEDDINGS = [
    {"column": "city", "categories": LARGE, "dim": 4, "l1": 0.0, "l2": 0.0},
    {"column": "size", "categories": SMALL, "dim": 2, "l1": 0.0, "l2": 0.0},
]
SPECS = [
    {"type": "dense", "units": 6, "activation": "relu"},
    {"type": "dense", "units": 3, "activation": "softmax"},
]


def embeddings(l1: float = 0.0, l2: float = 0.0) -> list[dict]:
    return [{**spec, "l1": l1, "l2": l2} for spec in EMBEDDINGS]


def codes_with_repeats(rng: np.random.Generator, n: int, used: int) -> np.ndarray:
    """n codes drawn from the first `used` categories: repeats are certain when n > used."""
    assert n > used
    return rng.integers(0, used, size=n)


def inputs_batch(rng: np.random.Generator, n: int = 12) -> np.ndarray:
    """[dense features | city code | size code], codes stored as floats, with repeats; the
    city codes reach past ONE_HOT_MAX."""
    city = np.concatenate([codes_with_repeats(rng, n - 2, 6), [LARGE - 1, ONE_HOT_MAX + 1]])
    size = codes_with_repeats(rng, n, SMALL)
    return np.column_stack([rng.normal(size=(n, FEATURES)), city, size])


def away_from_zero(param, rng) -> None:
    """Keep every weight away from the kink of |E| at 0 (for l1)."""
    v = param.value
    v[...] = np.where(v < 0, -1.0, 1.0) * rng.uniform(0.2, 1.0, size=v.shape)


def build_block(l1: float = 0.0, l2: float = 0.0, seed: int = 0) -> EmbeddingInputs:
    tables = {spec["column"]: Embedding(spec["categories"], spec["dim"], spec["l1"], spec["l2"])
              for spec in embeddings(l1, l2)}
    block = EmbeddingInputs(tables)
    block.build((FEATURES + len(tables),), np.random.default_rng(seed), np.float64)
    return block


# ---- gradient checks -----------------------------------------------------------------------

@pytest.mark.parametrize("l1,l2", [(0.0, 0.0), (0.1, 0.0), (0.0, 0.1), (0.05, 0.2)])
def test_table_gradients(l1, l2):
    rng = np.random.default_rng(0)
    block = build_block(l1, l2)
    for table in block.tables.values():
        away_from_zero(table.E, rng)
    x = inputs_batch(rng)
    r = rng.normal(size=(len(x), FEATURES + 4 + 2))

    def loss():
        return float(np.sum(block.forward(x, training=True) * r)) + block.penalty()

    loss()
    block.backward(r, input_grad=False)
    for name, param in block.parameters().items():
        error = rel_error(param.grad, numerical_grad(loss, param.value))
        assert error < TOL, (name, error)


def test_dense_features_pass_their_gradient_unchanged():
    rng = np.random.default_rng(1)
    block = build_block()
    x = inputs_batch(rng)
    dense, codes = x[:, :FEATURES].copy(), x[:, FEATURES:]
    r = rng.normal(size=(len(x), FEATURES + 6))

    def loss():
        return float(np.sum(block.forward(np.column_stack([dense, codes])) * r))

    loss()
    dx = block.backward(r, input_grad=True)
    np.testing.assert_array_equal(dx[:, :FEATURES], r[:, :FEATURES])
    np.testing.assert_array_equal(dx[:, FEATURES:], 0.0)
    assert rel_error(dx[:, :FEATURES], numerical_grad(loss, dense)) < TOL
    assert block.backward(r, input_grad=False) is None


def test_repeated_codes_accumulate_by_hand():
    """Codes (1, 0, 1): row 1 of dE is the sum of rows 0 and 2 of dY, row 2 is untouched."""
    for categories in (3, ONE_HOT_MAX + 1):  # both strategies
        table = Embedding(categories, 2)
        table.build((), np.random.default_rng(0), np.float64)
        table.forward(np.array([1, 0, 1]))
        table.backward(np.array([[1.0, 2.0], [10.0, 20.0], [100.0, 200.0]]))
        np.testing.assert_array_equal(table.E.grad[:3], [[10, 20], [101, 202], [0, 0]])
        np.testing.assert_array_equal(table.E.grad[3:], 0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("categories,dim", [(3, 200), (ONE_HOT_MAX, 16), (ONE_HOT_MAX + 1, 16),
                                            (5000, 4), (300, 39)])
def test_both_strategies_match_add_at(categories, dim, dtype):
    rng = np.random.default_rng(2)
    table = Embedding(categories, dim)
    table.build((), rng, dtype)
    codes = rng.integers(0, min(categories, 50), size=256)
    dy = rng.normal(size=(256, dim + 3)).astype(dtype)[:, 1:1 + dim]  # a column slice
    table.forward(codes)
    table.backward(dy)
    expected = np.zeros((categories, dim))
    np.add.at(expected, codes, dy.astype(np.float64))
    assert table.E.grad.dtype == dtype
    np.testing.assert_allclose(table.E.grad, expected, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-5 if dtype == np.float32 else 1e-12)


def test_sequential_gradients_through_embeddings():
    rng = np.random.default_rng(3)
    specs = [{"type": "dense", "units": 6, "activation": "tanh", "l2": 0.01},
             {"type": "dense", "units": 3, "activation": "softmax"}]
    model = Sequential.from_specs(specs, (FEATURES + 2,), rng, np.float64,
                                  embeddings=embeddings(l1=0.05, l2=0.1))
    for name, param in model.parameters().items():
        if name.startswith("inputs."):
            away_from_zero(param, rng)
    x, y = inputs_batch(rng, n=10), rng.integers(0, 3, size=10)

    def objective():
        value, objective.grad = CCE.from_logits(model.forward(x, training=True, logits=True), y)
        return value + model.penalty()

    objective()
    model.backward(objective.grad)
    errors = {name: rel_error(p.grad.copy(), numerical_grad(objective, p.value))
              for name, p in model.parameters().items()}
    assert list(errors)[:2] == ["inputs.city.E", "inputs.size.E"]
    assert max(errors.values()) < TOL, errors


# ---- agreement with PyTorch ----------------------------------------------------------------

STEPS = 5


def torch_twin(torch, model: Sequential):
    """nn.Embedding tables and Linear layers holding the model's weights."""
    tables = torch.nn.ModuleList()
    for table in model.inputs.tables.values():
        emb = torch.nn.Embedding(table.categories, table.dim, dtype=torch.float64)
        with torch.no_grad():
            emb.weight.copy_(torch.from_numpy(table.E.value))
        tables.append(emb)
    linears = torch.nn.ModuleList()
    for layer in model.layers:
        linear = torch.nn.Linear(*layer.W.value.shape, dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(layer.W.value.T))
            linear.bias.copy_(torch.from_numpy(layer.b.value))
        linears.append(linear)
    return tables, linears


def torch_forward(torch, tables, linears, x: np.ndarray):
    xt = torch.from_numpy(x)
    codes = [xt[:, FEATURES + k].long() for k in range(len(tables))]
    h = torch.cat([xt[:, :FEATURES]] + [emb(c) for emb, c in zip(tables, codes)], dim=1)
    return linears[1](torch.relu(linears[0](h)))  # logits


def torch_arrays(tables, linears) -> dict[str, np.ndarray]:
    out = {f"inputs.{spec['column']}.E": emb.weight.detach().numpy().copy()
           for spec, emb in zip(EMBEDDINGS, tables)}
    for i, linear in enumerate(linears):
        out[f"layers.{i}.W"] = linear.weight.detach().numpy().T.copy()
        out[f"layers.{i}.b"] = linear.bias.detach().numpy().copy()
    return out


# id: (nnctl optimizer factory, torch optimizer factory, l1, l2 on the tables, clip norm)
TORCH_CASES = {
    "sgd": (lambda p: SGD(p, lr=0.1), lambda torch, p: torch.optim.SGD(p, lr=0.1), 0, 0, None),
    "adam": (lambda p: Adam(p), lambda torch, p: torch.optim.Adam(p), 0, 0, None),
    "adam-l2": (lambda p: Adam(p), lambda torch, p: torch.optim.Adam(p), 0, 0.05, None),
    "sgd-l1-l2": (lambda p: SGD(p, lr=0.1), lambda torch, p: torch.optim.SGD(p, lr=0.1),
                  0.01, 0.05, None),
    "sgd-clip": (lambda p: SGD(p, lr=0.1), lambda torch, p: torch.optim.SGD(p, lr=0.1),
                 0, 0.05, 0.05),
}


def torch_errors(torch, case: str) -> dict[str, float]:
    """Worst relative error over the steps, of every weight and of its displacement."""
    make_ours, make_theirs, l1, l2, clip = TORCH_CASES[case]
    rng = np.random.default_rng(4)
    model = Sequential.from_specs(SPECS, (FEATURES + 2,), rng, np.float64,
                                  embeddings=embeddings(l1, l2))
    for name, param in model.parameters().items():
        if name.startswith("inputs."):  # larger than the init, so the tables matter
            param.value[...] = rng.normal(size=param.value.shape)
    tables, linears = torch_twin(torch, model)
    params = model.parameters()
    start = {k: p.value.copy() for k, p in params.items()}
    opt = make_ours(list(params.values()))
    topt = make_theirs(torch, list(tables.parameters()) + list(linears.parameters()))
    worst = {"param": 0.0, "displacement": 0.0}
    for _ in range(STEPS):
        x, y = inputs_batch(rng, n=16), rng.integers(0, 3, size=16)
        _, dz = CCE.from_logits(model.forward(x, training=True, logits=True), y)
        model.backward(dz)
        if clip is not None:
            assert clip_grad_norm(list(params.values()), clip) > clip  # the clip triggers
        opt.step()

        topt.zero_grad()
        loss = torch.nn.functional.cross_entropy(torch_forward(torch, tables, linears, x),
                                                 torch.from_numpy(y))
        for emb in tables:
            loss = loss + l1 * emb.weight.abs().sum() + l2 * (emb.weight ** 2).sum()
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(list(tables.parameters()) + list(linears.parameters()),
                                           clip)
        topt.step()
        for k, theirs in torch_arrays(tables, linears).items():
            ours = params[k].value
            worst["param"] = max(worst["param"], rel_error(ours, theirs))
            worst["displacement"] = max(worst["displacement"],
                                        rel_error(ours - start[k], theirs - start[k]))
    return worst


@pytest.mark.parametrize("case", sorted(TORCH_CASES))
def test_embedding_model_matches_torch(case):
    torch = pytest.importorskip("torch")
    errors = torch_errors(torch, case)
    assert max(errors.values()) < 1e-6, errors


# ---- the model around the block ------------------------------------------------------------

def embedding_model(seed: int = 0, dtype=np.float32) -> Sequential:
    return Sequential.from_specs(SPECS, (FEATURES + 2,), np.random.default_rng(seed), dtype,
                                 embeddings=embeddings(l2=0.01))


def test_parameters_are_named_and_packed():
    model = embedding_model()
    params = model.parameters()
    assert list(params) == ["inputs.city.E", "inputs.size.E", "layers.0.W", "layers.0.b",
                            "layers.1.W", "layers.1.b"]
    assert params["inputs.city.E"].value.shape == (LARGE, 4)
    assert params["layers.0.W"].value.shape == (FEATURES + 4 + 2, 6)
    assert contiguous([p.value for p in params.values()]) is not None  # one flat array
    assert contiguous([p.grad for p in params.values()]) is not None
    tables = [p.value for k, p in params.items() if k.startswith("inputs.")]
    assert model.penalty() == pytest.approx(0.01 * sum(float(np.sum(e ** 2)) for e in tables))


def test_block_draws_come_before_the_layers():
    """The tables are drawn first, in column order, fastai's way; then the layers, exactly as a
    model without embeddings would draw them from the generator's remaining stream."""
    model = embedding_model(seed=7, dtype=np.float64)
    rng = np.random.default_rng(7)
    for spec in EMBEDDINGS:
        z = rng.standard_normal(size=(spec["categories"], spec["dim"]))
        np.testing.assert_array_equal(model.parameters()[f"inputs.{spec['column']}.E"].value,
                                      np.fmod(z, 2.0) * 0.01)
    plain = Sequential.from_specs(SPECS, (FEATURES + 4 + 2,), rng, np.float64)
    for name, param in plain.parameters().items():
        np.testing.assert_array_equal(model.parameters()[name].value, param.value)


def test_init_statistics():
    table = Embedding(1000, 100)
    table.build((), np.random.default_rng(0), np.float32)
    assert table.E.value.dtype == np.float32
    assert np.abs(table.E.value).max() < 0.02
    assert 0.008 < table.E.value.std() < 0.01  # N(0, 0.01^2), tails folded inward


def test_state_dict_round_trip():
    model, fresh = embedding_model(seed=0), embedding_model(seed=1)
    x = inputs_batch(np.random.default_rng(5)).astype(np.float32)
    state = model.state_dict()
    assert [k for k in state if k.startswith("inputs.")] == ["inputs.city.E", "inputs.size.E"]
    assert not np.array_equal(fresh.forward(x), model.forward(x))
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(fresh.forward(x), model.forward(x))

    with pytest.raises(ValueError, match=r"missing array 'inputs\.city\.E'"):
        fresh.load_state_dict({k: v for k, v in state.items() if k != "inputs.city.E"})
    bad = {**state, "inputs.size.E": np.zeros((SMALL + 1, 2), np.float32)}
    with pytest.raises(ValueError, match=r"'inputs\.size\.E' has shape \[6, 2\], "
                                         r"expected \[5, 2\]"):
        fresh.load_state_dict(bad)


def test_predict_in_batches_equals_forward():
    model = embedding_model()
    x = inputs_batch(np.random.default_rng(6), n=2500).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x, batch_size=1000), model.forward(x))


def test_model_without_embeddings_is_unchanged():
    """Same names, same draws, same generator state afterwards, same numbers, whether
    `embeddings` is left out, empty, or the model is built from its layers directly."""
    def built(**kwargs):
        rng = np.random.default_rng(3)
        model = Sequential.from_specs(SPECS, (5,), rng, np.float32, **kwargs)
        return model, rng.bit_generator.state

    (old, old_state), (empty, empty_state) = built(), built(embeddings=())
    direct_rng = np.random.default_rng(3)
    direct = Sequential([LAYERS[s["type"]](**{k: v for k, v in s.items() if k != "type"})
                         for s in SPECS]).build((5,), direct_rng, np.float32)
    assert old.inputs is None and empty.inputs is None
    assert old_state == empty_state == direct_rng.bit_generator.state
    x, dz = np.random.default_rng(4).normal(size=(2, 8, 5)).astype(np.float32)
    for model in (old, empty, direct):
        assert list(model.parameters()) == ["layers.0.W", "layers.0.b", "layers.1.W", "layers.1.b"]
        for name, p in model.parameters().items():
            np.testing.assert_array_equal(p.value, old.parameters()[name].value)
        model.forward(x, training=True, logits=True)
        model.backward(dz[:, :3])
        for name, p in model.parameters().items():
            np.testing.assert_array_equal(p.grad, old.parameters()[name].grad)


# ---- refusals ------------------------------------------------------------------------------

@pytest.mark.parametrize("value, message", [
    (2.5, "not integer codes"), (np.nan, "not integer codes"), (-1.0, r"\[0, 5\)"),
    (5.0, r"\[0, 5\)"),
])
def test_bad_codes_name_the_column(value, message):
    block = build_block()
    x = inputs_batch(np.random.default_rng(0))
    x[3, FEATURES + 1] = value
    with pytest.raises(ValueError, match=f"embedding column 'size'.*{message}"):
        block.forward(x)


def test_refusals():
    with pytest.raises(ValueError, match="categories"):
        Embedding(0, 3)
    with pytest.raises(ValueError, match="dimension"):
        Embedding(3, 0)
    with pytest.raises(ValueError, match="at least one table"):
        EmbeddingInputs({})
    with pytest.raises(ValueError, match="two embeddings for the column 'city'"):
        Sequential.from_specs(SPECS, (FEATURES + 2,), np.random.default_rng(0),
                              embeddings=[EMBEDDINGS[0], EMBEDDINGS[0]])
    with pytest.raises(ValueError, match="at least 2 columns"):
        build_block().build((1,), np.random.default_rng(0), np.float64)
    with pytest.raises(ValueError, match=r"shape \(batch, 5\)"):
        build_block().forward(np.zeros((2, 4)))


def test_embeddings_are_not_config_layers():
    assert Embedding not in LAYERS.values() and EmbeddingInputs not in LAYERS.values()


# ---- checkpoints ---------------------------------------------------------------------------

def test_model_arrays_keep_layers_and_inputs(tmp_path):
    arrays = {"layers.0.W": np.ones(2), "inputs.city.E": np.ones((3, 2)),
              "optimizer.step": np.array(3), "optimizer.exp_avg.0": np.ones(2)}
    assert set(model_arrays(arrays)) == {"layers.0.W", "inputs.city.E"}
    np.savez(tmp_path / "w.npz", **arrays)
    assert set(load_weights_file(tmp_path / "w.npz")) == {"layers.0.W", "inputs.city.E"}


def test_a_second_backward_leaves_no_rows_of_the_first():
    """Above ONE_HOT_MAX, backward clears only the rows the previous batch filled; rows used
    then and not now must read zero."""
    rng = np.random.default_rng(5)
    table = Embedding(ONE_HOT_MAX + 40, 3)
    table.build((), rng, np.float64)
    for codes in (np.array([1, 2, 2, 50]), np.array([3, 60, 60])):
        dy = rng.normal(size=(len(codes), 3))
        table.forward(codes, training=True)
        table.backward(dy)
        expected = np.zeros_like(table.E.value)
        np.add.at(expected, codes, dy)
        assert np.array_equal(table.E.grad, expected)
