"""nnctl.nn.threads: the thread count, element-wise updates and products split across threads,
and the data layer's column fits and scaling shared among them."""

import json
import os
import subprocess
import sys
import contextvars
import itertools
import threading
import time

import numpy as np
import pandas as pd
import pytest

from nnctl.errors import DataError
from nnctl.nn import threads
from nnctl.nn.layers import Param
from nnctl.nn.model import Sequential
from nnctl.nn.losses import LOSSES
from nnctl.nn.optim import OPTIMIZERS
from cli_helpers import load_frame, make_problem


@pytest.fixture
def with_threads():
    """Set the element-wise thread count for one test, then put the suite's back."""
    before = threads.count()
    yield threads.configure
    threads.configure(before)


def test_elementwise_runs_in_several_threads_on_aligned_chunks_that_cover_the_arrays(with_threads):
    with_threads(3)
    size = 3 * threads.MIN_CHUNK + 5
    values = np.zeros(size)
    seen = []

    def mark(chunk):
        seen.append((threading.get_ident(), chunk.__array_interface__["data"][0], len(chunk)))
        chunk += 1.0

    threads.elementwise(mark, [values])
    assert np.all(values == 1.0)  # every element once: no gap, no overlap
    assert len(seen) == 3
    assert sum(n for _, _, n in seen) == size
    assert all((address - values.ctypes.data) % (threads.ALIGN * values.itemsize) == 0
               for _, address, _ in seen)


def test_small_arrays_are_not_split(with_threads):
    with_threads(4)
    calls = []
    threads.elementwise(lambda a: calls.append(len(a)), [np.zeros(2 * threads.MIN_CHUNK - 1)])
    assert calls == [2 * threads.MIN_CHUNK - 1]


def test_no_pieces_is_no_work(with_threads):
    """A file without numeric columns hands the team no pieces: run returns at once (a job of
    nothing would never be finished by anyone)."""
    with_threads(2)
    done = threading.Event()
    threading.Thread(target=lambda: (threads.run([]), done.set()), daemon=True).start()
    assert done.wait(10)


def test_errstate_and_exceptions_reach_the_caller(with_threads):
    with_threads(2)
    big = np.full(4 * threads.MIN_CHUNK, 3e38, dtype=np.float32)
    with np.errstate(over="raise"), pytest.raises(FloatingPointError):
        threads.elementwise(lambda a: np.multiply(a, 10, out=a), [big.copy()])
    with np.errstate(over="ignore"):  # no warning from any thread
        threads.elementwise(lambda a: np.multiply(a, 10, out=a), [big])
    assert np.isinf(big).all()


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_split_update_is_bit_for_bit_the_single_threaded_one(name, with_threads):
    """The flat path splits the update across threads; parameters and state must come out
    exactly as one thread makes them, step after step (while the optimizer times both ways,
    its steps alternate: the 2nd and 4th are shared)."""
    specs = [{"type": "dense", "units": 160, "activation": "relu"},
             {"type": "dense", "units": 3, "activation": "softmax"}]
    results = []
    for count in (1, 3):
        with_threads(count)
        model = Sequential.from_specs(specs, (500,), np.random.default_rng(0))
        params = list(model.parameters().values())
        assert sum(p.value.size for p in params) > 2 * threads.MIN_CHUNK  # really split
        optimizer = OPTIMIZERS[name](params, lr=0.01)
        grads = np.random.default_rng(1)
        for _ in range(4):
            for p in params:
                p.grad[...] = grads.standard_normal(p.grad.shape)
            optimizer.step()
        results.append((model.state_dict(), optimizer.state_dict()))
    (weights_1, state_1), (weights_3, state_3) = results
    for one, three in ((weights_1, weights_3), (state_1, state_3)):
        assert one.keys() == three.keys()
        for key in one:
            np.testing.assert_array_equal(one[key], three[key], err_msg=key)


def run_python(code: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items()
             if k not in threads.THREAD_VARS and k != threads.THREAD_TIMEOUT[0]}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


REPORT = """
import json, os, sys
from nnctl.nn import threads
count = threads.configure({arg})
print(json.dumps({{"count": count, "elementwise": threads.count(),
                  "env": {{v: os.environ.get(v) for v in threads.THREAD_VARS}},
                  "timeout": os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
                  "numpy_loaded": "numpy" in sys.modules}}))
"""


def test_default_is_every_usable_core_and_blas_is_held_to_one_before_numpy_loads():
    report = run_python(REPORT.format(arg=""))
    assert report["count"] == report["elementwise"] == len(os.sched_getaffinity(0))
    assert set(report["env"].values()) == {"1"}  # nnctl splits; BLAS computes one piece
    assert report["timeout"] == threads.THREAD_TIMEOUT[1]
    assert not report["numpy_loaded"]


def test_a_thread_variable_set_by_the_user_is_the_default_and_the_flag_overrides_it():
    assert run_python(REPORT.format(arg=""), OPENBLAS_NUM_THREADS="3")["count"] == 3
    report = run_python(REPORT.format(arg="5"), OPENBLAS_NUM_THREADS="3",
                        OPENBLAS_THREAD_TIMEOUT="20")
    assert report["count"] == 5 and set(report["env"].values()) == {"1"}
    assert report["timeout"] == "20"  # the user's choice stays


def test_blas_runs_one_thread_whatever_the_count():
    """What OpenBLAS itself reports, through its C API, after `nnctl --threads`' setup: nnctl
    shares the pieces of each product among its threads, and BLAS computes each on one."""
    code = """
import ctypes, json, sys
from nnctl.nn import threads
threads.configure(int(sys.argv[1]))
import glob, os
import numpy as np
folder = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
names = ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
         "openblas_get_num_threads")
for path in glob.glob(os.path.join(folder, "*openblas*")):
    lib = ctypes.CDLL(path)
    for name in names:
        if hasattr(lib, name):
            print(json.dumps({"threads": getattr(lib, name)()}))
            raise SystemExit
print(json.dumps({"skip": "no OpenBLAS bundled with numpy"}))
"""
    for count in (1, 2):
        out = subprocess.run([sys.executable, "-c", code, str(count)], check=True,
                             capture_output=True, text=True).stdout
        report = json.loads(out)
        if "skip" in report:
            pytest.skip(report["skip"])
        assert report["threads"] == 1


def test_train_records_its_thread_count(tmp_path):
    config = make_problem(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in threads.THREAD_VARS}
    for flags, expected in (([], len(os.sched_getaffinity(0))), (["--threads", "3"], 3)):
        runs = tmp_path / f"runs{len(flags)}"
        subprocess.run([sys.executable, "-m", "nnctl.cli", "train", str(config), "--quiet",
                        "--runs-dir", str(runs), *flags], env=env, check=True, cwd=tmp_path,
                       capture_output=True)
        (run_dir,) = runs.iterdir()
        assert json.loads((run_dir / "summary.json").read_text())["threads"] == expected


def test_each_thread_works_in_cache_sized_blocks_with_the_same_result(with_threads):
    """A long chunk is updated BLOCK elements at a time (every pass of Adam then stays in
    cache); element-wise work comes out bit for bit as one call on the whole arrays."""
    with_threads(1)
    size = 3 * threads.BLOCK + 7
    calls = []
    threads.elementwise(lambda a: calls.append(len(a)), [np.zeros(size)])
    assert calls == [threads.BLOCK] * 3 + [7]

    rng = np.random.default_rng(0)
    param, grad = rng.normal(size=size).astype(np.float32), rng.normal(size=size).astype(np.float32)
    results = []
    for split in (False, True):
        optimizer = OPTIMIZERS["adam"]([Param(param.copy())], lr=0.01)
        state = [param.copy(), grad, np.zeros_like(param), np.zeros_like(param),
                 np.empty_like(param)]
        for _ in range(3):
            optimizer.step_count += 1
            if split:
                threads.elementwise(optimizer.update, state)
            else:
                optimizer.update(*state)
        results.append(state[:4])
    for whole, blocked in zip(*results):
        assert np.array_equal(whole, blocked)


def test_sharing_keeps_whichever_way_was_faster_and_tries_again_later(with_threads):
    """The optimizer's update is shared or done alone by timing both in turn. Here a call on
    a helper takes 40 ms while the caller's takes 10 ms (as when the other core is slow to
    wake or busy): the caller keeps the work. When the helper is as fast again, the next
    trials choose to share. Sleeping releases the GIL, as NumPy's loops do."""
    with_threads(2)
    helper_ms = [40]
    ran_on = []

    def work(chunk):
        on_helper = threading.current_thread() is not threading.main_thread()
        ran_on.append(on_helper)
        time.sleep((helper_ms[0] if on_helper else 10) / 1000)

    sharing = threads.Sharing()
    sharing.RETRY = 4 * threads.Sharing.TRIALS
    arrays = [np.zeros(2 * threads.BLOCK)]  # two blocks: two pieces when shared

    for _ in range(2 * sharing.TRIALS):
        sharing(work, arrays)
    assert any(ran_on) and not sharing.share  # the trials used the helper; alone was faster
    ran_on.clear()
    for _ in range(sharing.RETRY - 2 * sharing.TRIALS):
        sharing(work, arrays)
    assert not any(ran_on)

    helper_ms[0] = 10
    for _ in range(2 * sharing.TRIALS):
        sharing(work, arrays)
    assert sharing.share
    ran_on.clear()
    for _ in range(5):
        sharing(work, arrays)
    assert any(ran_on)


def test_sharing_keeps_the_work_when_the_helper_is_often_late(with_threads):
    """A helper whose core is busy is preempted in the middle of some pieces, and the caller
    waits for them: shared calls are then mostly fast but often very slow. Judged by its
    fastest call, sharing would win; judged by the time all the calls took, it loses."""
    with_threads(2)
    helper_calls = itertools.count()

    def work(chunk):
        if threading.current_thread() is threading.main_thread():
            time.sleep(0.010)
        else:  # every third piece on the helper is held up
            time.sleep(0.100 if next(helper_calls) % 3 == 2 else 0.010)

    sharing = threads.Sharing()
    arrays = [np.zeros(2 * threads.BLOCK)]
    for _ in range(2 * sharing.TRIALS):
        sharing(work, arrays)
    assert not sharing.share


# ---- matrix products shared among threads ------------------------------------------------------

SHAPES = [(1024, 784, 256), (784, 1024, 256), (512, 256, 784), (40000, 28, 128), (32, 784, 256),
          (9001, 100, 77), (32, 128, 10), (5, 3, 2)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_is_the_product_and_the_same_bits_whoever_computes_the_pieces(with_threads, dtype):
    """The pieces of a product depend on its shape and the count only: shared with helpers or
    all computed by the calling thread, the result is bit for bit the same (so a busy
    machine, where the caller takes a slow helper's pieces, changes nothing)."""
    rng = np.random.default_rng(0)
    with_threads(3)
    for m, k, n in SHAPES:
        a, b = rng.normal(size=(m, k)).astype(dtype), rng.normal(size=(k, n)).astype(dtype)
        shared = threads.matmul(a, b)
        alone, pieces = threads.pieces_of(a, b)
        for piece in pieces:
            piece()
        np.testing.assert_array_equal(shared, alone)
        exact = a.astype(np.float64) @ b.astype(np.float64)
        tolerance = (1e-5 if dtype == np.float32 else 1e-13) * np.abs(exact).max()
        np.testing.assert_allclose(shared, exact, rtol=0, atol=tolerance)
        # transposed views, as the backward passes use them, and an output array given
        out = np.empty((n, m), dtype).T
        threads.matmul(np.asfortranarray(a), np.asfortranarray(b), out=out)
        np.testing.assert_allclose(out, exact, rtol=0, atol=tolerance)


def test_matmul_splits_large_products_and_leaves_small_ones_whole(with_threads):
    with_threads(2)
    rng = np.random.default_rng(0)
    big = rng.normal(size=(1024, 784)), rng.normal(size=(784, 256))  # prediction's batches
    small = rng.normal(size=(128, 784)), rng.normal(size=(784, 256))  # batch 128: one thread's
    assert len(threads.pieces_of(*big)[1]) == 2
    assert len(threads.pieces_of(*small)[1]) == 1
    with_threads(1)
    assert len(threads.pieces_of(*big)[1]) == 1


def test_a_middling_product_is_timed_split_and_whole_only_where_both_give_the_same_bits(
        with_threads, monkeypatch):
    """A product too small to split always (the benchmark's 128 x 784 x 256) is split or kept
    whole as timing shows, which must not change its bits: the first call looks for a split
    whose pieces give the whole product's bits, and a layout that has none stays whole."""
    with_threads(2)
    threads._products.clear()
    rng = np.random.default_rng(0)
    a = rng.normal(size=(128, 784)).astype(np.float32)
    b = rng.normal(size=(784, 256)).astype(np.float32)
    out, (whole,) = threads.pieces_of(a, b)
    whole()
    expected = out.copy()
    calls = 2 * threads.Sharing.TRIALS + 3
    for _ in range(calls):
        assert np.array_equal(threads.matmul(a, b).view(np.int32), expected.view(np.int32))
    (key, found), = threads._products.items()
    assert found is not None, "no split of 128 x 784 x 256 keeps the bits with these kernels"
    (by_rows, unit), sharing = found
    assert sharing.calls == calls
    _, pieces = threads.pieces_of(a, b, None, threads.MIN_TIMED_WORK, by_rows, unit)
    assert len(pieces) == 2

    # Pieces that are off by one unit in the last place somewhere: never used after the check.
    threads._products.clear()
    pieces_of, used = threads.pieces_of, []

    def uneven_pieces(a, b, out=None, min_work=threads.MIN_PIECE_WORK, by_rows=None, unit=None):
        out, pieces = pieces_of(a, b, out, min_work, by_rows, unit)
        if len(pieces) == 1:
            return out, pieces

        def last_piece_off():
            pieces[-1]()
            out[-1, -1] = np.nextafter(out[-1, -1], np.inf)
            used.append(True)
        return out, pieces[:-1] + [last_piece_off]

    monkeypatch.setattr(threads, "pieces_of", uneven_pieces)
    assert np.array_equal(threads.matmul(a, b).view(np.int32), expected.view(np.int32))
    checked = len(used)
    assert checked >= 1 and threads._products[key] is None
    for _ in range(calls):
        assert np.array_equal(threads.matmul(a, b).view(np.int32), expected.view(np.int32))
    assert len(used) == checked


def test_the_split_of_a_middling_product_keeps_the_bits_on_any_operands(with_threads):
    """The split the first call picks gives the whole product's bits on other operands too,
    even when the first call's operands are exact in any order (small integers, as a first
    batch can be, on which every split gives the same bits), for the layouts the layers use
    (a transposed left operand in the weight gradient, a transposed right one in the input
    gradient) and float64."""
    with_threads(2)
    rng = np.random.default_rng(1)
    found = 0
    for dtype in (np.float32, np.float64):
        for a, b in [(rng.normal(size=(128, 784)), rng.normal(size=(784, 256))),
                     (rng.normal(size=(128, 784)).T, rng.normal(size=(128, 256))),
                     (rng.normal(size=(128, 256)), rng.normal(size=(784, 256)).T)]:
            a, b = a.astype(dtype), b.astype(dtype)
            threads._products.clear()
            threads.matmul(np.rint(2 * a), np.rint(2 * b))  # the same layouts, exact sums
            (kept,) = threads._products.values()
            if kept is None:
                continue
            split, _ = kept
            out, pieces = threads.pieces_of(a, b, None, threads.MIN_TIMED_WORK, *split)
            assert len(pieces) > 1
            for piece in pieces:
                piece()
            assert np.array_equal(out, a @ b), (a.shape, b.shape, dtype, split)
            found += 1
    assert found, "no layout had a split that keeps the bits"


class Stall:
    """A job that holds the helper that takes it until `release` is set."""

    def __init__(self):
        self.release = threading.Event()
        self.context = contextvars.copy_context()

    def work(self):
        self.release.wait(30)


def test_a_held_up_helper_leaves_its_pieces_to_the_caller(with_threads):
    """Work is shared, not cut in fixed halves: when the helper is held up (as on a busy
    core), the calling thread computes every piece the helper has not started."""
    with_threads(2)
    threads.run([lambda: None, lambda: None])  # the team and its one helper exist
    stall = Stall()
    threads._team.inbox.put(stall)
    computed_by = []
    threads.run([lambda: computed_by.append(threading.get_ident()) for _ in range(4)])
    stall.release.set()
    assert computed_by == [threading.get_ident()] * 4


def test_training_steps_give_the_same_weights_with_and_without_helpers(with_threads):
    """A model trained with two threads' pieces, shared with a helper or all computed by
    the calling thread (a team without helpers): the same bits, step after step."""
    specs = [{"type": "dense", "units": 256, "activation": "relu"},
             {"type": "dense", "units": 10, "activation": "softmax"}]
    data = np.random.default_rng(2)
    x = data.normal(size=(2048, 784)).astype(np.float32)
    y = data.integers(0, 10, size=2048)
    results = []
    for helpers in (1, 0):
        with_threads(2)
        threads._team = threads.Team(helpers)
        model = Sequential.from_specs(specs, (784,), np.random.default_rng(0))
        optimizer = OPTIMIZERS["adam"](list(model.parameters().values()), lr=0.01)
        loss = LOSSES["categorical_crossentropy"]()
        for start in range(0, 2048, 1024):  # batches of 1024: their products are split
            out = model.forward(x[start:start + 1024], training=True, logits=True)
            _, grad = loss.from_logits(out, y[start:start + 1024])
            model.backward(grad)
            optimizer.step()
        results.append(model.state_dict())
    for key in results[0]:
        np.testing.assert_array_equal(results[0][key], results[1][key], err_msg=key)


# ---- the data layer's pieces ---------------------------------------------------------------

def load_with(tmp_path, frame, threads_count: int, helpers: int = 1, **data):
    """load_training_data of `frame` (classification of y, 20% held out) computed on
    `threads_count` threads, the pieces shared with `helpers` helper threads."""
    threads.configure(threads_count)
    if threads_count > 1:
        threads._team = threads.Team(helpers)
    return load_frame(tmp_path, frame, "float32", validation=0.2, **data)[0]


def wide_frame(rows: int, blanks: bool) -> pd.DataFrame:
    """130 numeric columns (integers and floats, some with blanks) and a label."""
    rng = np.random.default_rng(1)
    columns = {}
    for j in range(130):
        values = (rng.integers(-50, 50, rows) if j % 2 else rng.normal(j, 1 + j, rows))
        if blanks and j % 7 == 0:
            values = values.astype(float)
            values[rng.random(rows) < 0.1] = np.nan
        columns[f"c{j}"] = values
    return pd.DataFrame({**columns, "y": rng.integers(0, 3, rows)})


@pytest.mark.parametrize("blanks", [False, True])  # the one-block path; a column at a time
@pytest.mark.parametrize("scale", ["standard", "minmax"])
def test_the_data_layer_gives_the_same_bits_on_one_thread_and_on_two(with_threads, tmp_path,
                                                                    blanks, scale):
    """Column fits and scaling run as pieces shared among the threads: the arrays and the
    fitted preprocessing are the same bits with a helper and without threads."""
    frame = wide_frame(3000, blanks)
    one, two = (load_with(tmp_path, frame, count, scale=scale) for count in (1, 2))
    assert json.dumps(two.preprocessing.to_dict()) == json.dumps(one.preprocessing.to_dict())
    for split in ("train", "validation"):
        np.testing.assert_array_equal(getattr(two, split).x, getattr(one, split).x)
    assert any(c.indicator for c in one.preprocessing.columns) == blanks


def test_problems_found_by_several_threads_come_in_column_order(with_threads, tmp_path):
    """Bad cells in many numeric columns: each column's problem is found by whichever thread
    fits it, and the error lists them in the file's column order, as one thread does."""
    frame = wide_frame(200, blanks=False).astype({f"c{j}": object for j in range(0, 130, 3)})
    for j in range(0, 130, 3):
        frame.loc[j % 50, f"c{j}"] = "oops"
    messages = []
    for count in (1, 2):
        with pytest.raises(DataError) as error:
            load_with(tmp_path, frame, count, helpers=1)
        messages.append(str(error.value))
    named = [line.split("column ")[1].split(":")[0] for line in messages[1].splitlines()
             if "column" in line]
    assert messages[1] == messages[0]
    assert named == sorted(named, key=lambda name: int(name.strip("'c")))
    assert len(named) >= 10
