"""Integer CSV columns give the arrays that reading them as float64 gives: the inputs, fills and
scaler statistics to the bit (numpy on the whole float64 matrix, as nnctl computed them before
integer columns were converted a block at a time), checked against pandas and scikit-learn;
blanks, negative numbers, values beyond float32's and float64's exact integers, and columns
mixing integers and floats; the median found by counting; and the memory it takes."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, strategies as st
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from nnctl.data import Preprocessing
from nnctl.data.columns import SAMPLE, Numeric, integer_median, median_in_place, smallest
from nnctl.data.reading import CHUNK_ROWS, CSV_OPTIONS, _read_in_chunks
from cli_helpers import load_frame, train, write_config


def integer_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """Pixels 0-255, negative integers, integers beyond float32's exact range (2**40) and
    beyond float64's (2**60), a float column, a column of integers with one float in it, a
    constant column; the label last."""
    rng = np.random.default_rng(seed)
    mixed = rng.integers(0, 9, rows).astype(np.float64)
    mixed[rows // 2] = 2.5
    return pd.DataFrame({
        "pixel": rng.integers(0, 256, rows),
        "negative": rng.integers(-1000, 1000, rows),
        "large": 2**40 + rng.integers(-2**20, 2**20, rows),
        "huge": 2**60 + rng.integers(0, 2**20, rows),
        "floats": rng.normal(size=rows).round(3),
        "mixed": mixed,
        "constant": np.full(rows, 7),
        "y": rng.integers(0, 3, rows),
    })


def bits(values) -> list[str]:
    return [float(v).hex() for v in values]


@pytest.mark.parametrize("rows", [300, 2 * CHUNK_ROWS + 7])  # one read_csv; the chunked reader
@pytest.mark.parametrize("scale", ["standard", "minmax", "none"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_integer_columns_give_the_inputs_of_their_float64_values(tmp_path, rows, scale, dtype):
    data, csv = load_frame(tmp_path, integer_frame(rows), dtype, scale=scale)
    if rows > 2 * CHUNK_ROWS:
        assert _read_in_chunks(pd, csv, CSV_OPTIONS) is not None
    frame = pd.read_csv(csv)
    features = [c for c in frame.columns if c != "y"]
    assert [frame[c].dtype.kind for c in features] == ["i", "i", "i", "i", "f", "f", "i"]
    x = frame[features].astype(np.float64).to_numpy()
    prep = data.preprocessing
    assert prep.inputs == features
    if scale == "none":
        offset, spread = np.zeros(len(features)), np.ones(len(features))
        assert prep.offset == [] and prep.spread == []
    else:
        if scale == "standard":
            offset, spread = x.mean(axis=0), x.std(axis=0)
            reference = StandardScaler().fit(x)
            np.testing.assert_allclose(prep.offset, reference.mean_, rtol=1e-12)
            # not 'huge': near 2**60, sklearn takes a spread this small for rounding error
            # and sets it to 1; numpy's, checked below, is the one to the bit
            kept = [i for i, c in enumerate(features) if c != "huge"]
            np.testing.assert_allclose(np.array(prep.spread)[kept], reference.scale_[kept],
                                       rtol=1e-9)
        else:
            offset, spread = x.min(axis=0), x.max(axis=0) - x.min(axis=0)
            reference = MinMaxScaler().fit(x)
            np.testing.assert_array_equal(prep.offset, reference.data_min_)
            np.testing.assert_array_equal(np.where(spread > 0, spread, 1.0),
                                          np.where(reference.data_range_ > 0,
                                                   reference.data_range_, 1.0))
        spread = np.where(spread > 0, spread, 1.0)  # the constant column
        assert bits(prep.offset) == bits(offset) and bits(prep.spread) == bits(spread)
    expected = ((x - offset) / spread).astype(dtype)
    assert data.train.x.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(data.train.x, expected)
    # the fills (median, the default): np.median of the float64 values, to the bit
    fills = [c.fill for c in prep.columns]
    assert bits(fills) == bits(np.median(x, axis=0))


def test_integers_beyond_float32_stay_exact_in_float64(tmp_path):
    frame = integer_frame(200)
    data, _ = load_frame(tmp_path, frame, "float64", scale="none")
    inputs = data.preprocessing.inputs
    large = data.train.x[:, inputs.index("large")]
    assert np.array_equal(large.astype(np.int64), frame["large"].to_numpy())  # exact
    assert not np.array_equal(frame["large"].to_numpy().astype(np.float32).astype(np.int64),
                              frame["large"].to_numpy())  # which float32 would not be
    # beyond 2**53 float64 rounds: as pandas' own conversion does, no further
    huge = data.train.x[:, inputs.index("huge")]
    np.testing.assert_array_equal(huge, frame["huge"].to_numpy().astype(np.float64))


@pytest.mark.parametrize("missing", ["median", "mean"])
def test_integer_columns_with_blanks_are_filled_as_scikit_learn_fills_them(tmp_path, missing):
    frame = integer_frame(400, seed=1)
    rng = np.random.default_rng(2)
    for name in ("pixel", "negative"):
        frame[name] = frame[name].astype("Int64")  # written as integers, with blank cells
        frame.loc[rng.choice(len(frame), 25, replace=False), name] = pd.NA
    data, csv = load_frame(tmp_path, frame, "float64", missing=missing)
    read = pd.read_csv(csv)
    assert read["pixel"].dtype.kind == "f" and read["large"].dtype.kind == "i"
    features = [c for c in read.columns if c != "y"]
    imputer = SimpleImputer(strategy=missing).fit(read[features])
    filled = imputer.transform(read[features])
    indicator = MissingIndicator().fit(read[features])
    scaler = StandardScaler().fit(filled)
    prep = data.preprocessing
    assert [c.fill for c in prep.columns] == pytest.approx(imputer.statistics_.tolist(),
                                                           rel=1e-15)
    assert prep.inputs == ["pixel", "pixel is missing", "negative", "negative is missing",
                           *features[2:]]
    values = [prep.inputs.index(c) for c in features]
    np.testing.assert_allclose(data.train.x[:, values], scaler.transform(filled),
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(data.train.x[:, [1, 3]], indicator.transform(read[features]))
    # the statistics of the integer columns without blanks are numpy's, to the bit
    x = read[features[2:]].to_numpy(dtype=np.float64)
    statistic = np.median(x, axis=0) if missing == "median" else x.mean(axis=0)
    assert bits([c.fill for c in prep.columns[2:]]) == bits(statistic)
    assert bits(prep.offset[4:]) == bits(x.mean(axis=0))


@pytest.mark.parametrize("values", [
    np.array([5]), np.array([3, 1]), np.array([4, -2, 9, 9, 0]),       # tiny, odd and even
    np.random.default_rng(0).integers(0, 256, 1001),                   # pixels, odd
    np.random.default_rng(1).integers(-5, 5, 1000),                    # negative, even
    np.random.default_rng(2).integers(-2**62, 2**62, 1000),            # wide: not counted
    2**60 + np.random.default_rng(3).integers(0, 100, 999),            # float64 rounds them
    (np.uint64(2**63) + np.random.default_rng(4).integers(0, 9, 10).astype(np.uint64)),
    np.array([2**53 + 1, 2**53 + 3]),                                  # the sum rounds
    np.array([-(2**63), 2**63 - 1]),                                   # int64's extremes
], ids=["one", "two", "five", "pixels", "negative", "wide", "huge", "uint64", "odd sum",
        "extremes"])
def test_the_integer_median_is_numpy_s_to_the_bit(values):
    assert integer_median(values).hex() == float(np.median(values.astype(np.float64))).hex()


@given(st.lists(st.floats(allow_nan=False), min_size=1, max_size=60))
def test_the_float_median_is_numpy_s_to_the_bit(values):
    """Any finite or infinite float64 values (huge ones whose sum overflows, as np.median's
    does; repeats), of odd and even counts. (Of equal zeros, either sign may be selected.)"""
    numbers = np.array(values, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):  # both sum huge middle values
        expected = float(np.median(numbers))
        found = median_in_place(numbers.copy())
    assert found.hex() == expected.hex() or found == expected == 0.0


LONG = 16 * SAMPLE + 1  # long enough for the bracketed selection


def _long_columns() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    pixels = np.round(rng.random(LONG) + rng.normal(0, 0.35, LONG), 3)
    stride = LONG // SAMPLE
    return {
        "pixels": pixels,
        "sorted": np.sort(pixels),
        "reversed": np.sort(pixels)[::-1].copy(),
        # ordered in step with the sample's stride: every sampled value is the smallest
        "in step with the sample": np.where(np.arange(LONG) % stride == 0, -1.0, pixels),
        "in step, largest": np.where(np.arange(LONG) % stride == 0, 9.0, pixels),
        "periodic": np.tile(np.arange(float(stride)), LONG // stride + 1)[:LONG],
        "one value": np.full(LONG, 0.25),
        "two values": np.repeat([1.0, 2.0], [LONG // 2, LONG - LONG // 2]),
        "infinities": np.r_[np.full(LONG // 3, -np.inf), pixels[:LONG // 3],
                            np.full(LONG - 2 * (LONG // 3), np.inf)],
        "huge": np.abs(pixels) * 1e307 + 1.2e308,  # the middle values' sum overflows
    }


@pytest.mark.parametrize("name", list(_long_columns()))
@pytest.mark.parametrize("even", [False, True], ids=["odd", "even"])
def test_the_median_of_a_long_column_is_numpy_s_to_the_bit(name, even):
    """Long columns take the bracketed selection; values ordered to defeat its sample make it
    fall back to the full one. Either way the median is np.median's."""
    numbers = _long_columns()[name][:LONG - even]
    with np.errstate(over="ignore", invalid="ignore"):
        expected = float(np.median(numbers))
        found = median_in_place(numbers.copy())
    assert found.hex() == expected.hex() or found == expected == 0.0


@given(st.integers(0, 2**32 - 1), st.integers(2, 200), st.integers(0, LONG - 1))
def test_smallest_finds_np_partition_s_values(seed, distinct, rank):
    """Any rank of a long column of few or many distinct values, in random order."""
    numbers = np.random.default_rng(seed).integers(0, distinct, LONG).astype(np.float64)
    ranks = [rank, rank + 1] if rank + 1 < LONG else [rank]
    expected = np.partition(numbers, ranks)[ranks]
    assert smallest(numbers.copy(), ranks) == list(expected)


def test_integer_inputs_take_no_float64_copy_of_the_whole_matrix():
    """What scaling an integer frame allocates: the float32 result and a few 64-column float64
    blocks, not a float64 copy of every feature (which alone is twice the result)."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.integers(0, 256, (2000, 1000)),
                         columns=[f"p{i}" for i in range(1000)])
    prep = Preprocessing("regression", list(frame.columns), [], scale="standard")
    prep.columns = [Numeric(name) for name in frame.columns]
    result = frame.shape[0] * frame.shape[1] * 4
    tracemalloc.start()
    try:
        x, _ = prep.fit_inputs(frame, Path("frame.csv"), np.float32)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert x.nbytes == result
    # 1.4 times the result here; a float64 copy of the whole input alone is twice the result
    assert peak < 1.75 * result
    x64 = frame.to_numpy(dtype=np.float64)
    np.testing.assert_array_equal(x, ((x64 - x64.mean(axis=0)) / x64.std(axis=0))
                                  .astype(np.float32))


def test_training_on_an_integer_csv_stores_numpy_s_statistics(tmp_path):
    """Through the front door: nnctl train on an integer CSV, its checkpoint's scaler and
    fills read back as numpy computes them on the float64 values."""
    frame = integer_frame(300, seed=3).drop(columns=["huge"])
    frame.to_csv(tmp_path / "pixels.csv", index=False)
    config = write_config(tmp_path / "pixels.yaml", {
        "seed": 0, "data": {"train": "pixels.csv", "validation": None, "target": "y"},
        "model": {"layers": [{"type": "dense", "units": 3, "activation": "softmax"}]},
        "loss": "categorical_crossentropy", "training": {"epochs": 2}})
    _, run_dir = train(config, tmp_path / "runs")
    prep = json.loads((run_dir / "checkpoints" / "last.json").read_text())["preprocessing"]
    x = frame.drop(columns=["y"]).to_numpy(dtype=np.float64)
    assert bits(prep["offset"]) == bits(x.mean(axis=0))
    assert bits(prep["spread"]) == bits(np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0))
    assert bits([c["fill"] for c in prep["columns"]]) == bits(np.median(x, axis=0))
