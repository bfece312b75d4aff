"""Bad input, widely (hypothesis): mutated configs, random --set strings, malformed CSV files
and corrupted checkpoints. Each either works or is a UserError whose problems are non-empty
strings (exit code 2 through the CLI, no traceback); nothing else is raised and nothing hangs.

Each test counts the examples it ran and prints the count (see them with `pytest -s`)."""

from __future__ import annotations

import copy
import random
import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from fault_helpers import (
    DATASETS, cli, dropout_config, make_classification_csv, only_run, run_dirs, time_limit,
    write_yaml,
)
from nnctl.checkpoint import load_checkpoint
from nnctl.api import prepare
from nnctl.config import Config, load_config
from nnctl.errors import CheckpointError, UserError

FUZZ = settings(deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])


def fuzz(examples: int) -> settings:
    return settings(FUZZ, max_examples=examples)


def check_user_error(exc: UserError) -> None:
    assert exc.problems, "a UserError without problems"
    for problem in exc.problems:
        assert isinstance(problem, str) and problem.strip(), repr(problem)


def outcome(call) -> str:
    """'ok' or 'user-error'; any other exception fails the test."""
    with time_limit(20):
        try:
            result = call()
        except UserError as exc:
            check_user_error(exc)
            return "user-error"
    return "ok" if result is not None else "none"


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    make_classification_csv(folder / "blobs.csv", rows=60)
    return folder


def base_config(fuzz_dir: Path) -> dict:
    return {
        "name": "fuzz", "seed": 0, "dtype": "float32",
        "data": {"train": str(fuzz_dir / "blobs.csv"), "validation": 0.2, "test": None,
                 "target": "label", "features": None, "scale": "standard", "sequence": None},
        "model": {"layers": [
            {"type": "dense", "units": 8, "activation": "relu", "init": "he_uniform", "l2": 1e-4},
            {"type": "dropout", "rate": 0.2},
            {"type": "dense", "units": 3, "activation": "softmax"}]},
        "loss": "categorical_crossentropy",
        "optimizer": {"type": "adam", "lr": 0.001},
        "training": {"epochs": 2, "batch_size": 16, "shuffle": True, "clip_norm": None,
                     "early_stopping": {"monitor": "val_loss", "patience": 3},
                     "lr_schedule": {"type": "step", "step_size": 2, "gamma": 0.5},
                     "checkpoint": {"monitor": "val_loss", "keep_last": 3}},
    }


# ---- random values ------------------------------------------------------------------------------

SCALARS = (st.none() | st.booleans() | st.integers(-10**20, 10**20)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
           | st.sampled_from(["dense", "dropout", "rnn", "adam", "sgd", "relu", "softmax",
                              "mse", "step", "cosine", "plateau", "val_loss", "train_loss",
                              "label", "float64", "minmax", "", "0", "-1", "1e-3", "null"]))
KEYS = (st.text(max_size=10) | st.sampled_from(["type", "units", "rate", "lr", "epochs",
                                                 "layers", "monitor", "extra"])
        | st.integers(-3, 3) | st.booleans() | st.none())
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(KEYS, inner, max_size=3), max_leaves=6)


def paths_of(node, prefix=()):
    """Every (container, key) pair inside a nested dict/list structure."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            found.append((node, key))
            found += paths_of(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.append((node, index))
            found += paths_of(value, prefix + (index,))
    return found


def containers(node):
    found = [node] if isinstance(node, (dict, list)) else []
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    for child in children:
        found += containers(child)
    return found


def mutate(config: dict, data) -> dict:
    config = copy.deepcopy(config)
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        kind = data.draw(st.sampled_from(["delete", "replace", "add", "swap-type"]))
        spots = paths_of(config)
        if kind in ("delete", "replace", "swap-type") and spots:
            parent, key = data.draw(st.sampled_from(spots))
            if kind == "delete":
                del parent[key]
            elif kind == "replace":
                parent[key] = data.draw(VALUES)
            else:  # same value, other type: 16 -> "16", [..] -> {..}, 0.2 -> [0.2]
                value = parent[key]
                parent[key] = data.draw(st.sampled_from([str(value), [value], {"v": value},
                                                         None, -1, 0]))
        else:
            node = data.draw(st.sampled_from(containers(config)))
            value = data.draw(VALUES)
            if isinstance(node, dict):
                node[data.draw(KEYS)] = value
            else:
                node.insert(data.draw(st.integers(0, len(node))), value)
    return config


def test_mutated_configs_load_or_fail_cleanly(fuzz_dir):
    counts = Counter()
    base = base_config(fuzz_dir)
    assert isinstance(load_config(write_yaml(fuzz_dir / "base.yaml", base)), Config)

    @fuzz(150)
    @given(data=st.data())
    def run(data):
        config = mutate(base, data)
        path = fuzz_dir / "mutated.yaml"
        try:
            path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
        except yaml.YAMLError:
            return
        counts["examples"] += 1
        with time_limit(20):
            try:
                result = load_config(path)
            except UserError as exc:
                check_user_error(exc)
                for problem in exc.problems:
                    assert str(path) in problem, f"the problem does not name the file: {problem}"
                counts["user-error"] += 1
                return
        assert isinstance(result, Config)
        counts["ok"] += 1

    run()
    print(f"\nmutated configs: {dict(counts)}")
    assert counts["examples"] >= 100 and counts["user-error"] > 0


DOTTED = st.sampled_from([
    "seed", "name", "dtype", "data", "data.train", "data.validation", "data.target",
    "data.features", "data.scale", "data.sequence", "model", "model.layers", "model.layers.0",
    "model.layers.0.units", "model.layers.1.rate", "model.layers.2.activation",
    "model.layers.3", "model.layers.9.units", "model.layers.-1", "loss", "optimizer",
    "optimizer.type", "optimizer.lr", "optimizer.beta1", "training.epochs",
    "training.batch_size", "training.early_stopping", "training.early_stopping.patience",
    "training.lr_schedule", "training.lr_schedule.type", "training.checkpoint.keep_last",
    "training.checkpoint.monitor", "name.x", "seed.0", "model.layers.0.units.deep", "",
    ".", "a..b", "model.layers.x", "training.epochs.0",
])
YAML_TEXT = st.sampled_from([
    "", "null", "~", "1", "-1", "0", "1e400", ".inf", "-.nan", "0x1F", "true", "yes", "[]",
    "{}", "[1, 2", "{a: 1", "'x'", '"unterminated', "!!binary aGVsbG8=", "!!python/object:os.system",
    "!!set {a, b}", "2020-01-01", "{type: dense, units: 4}", "[{type: dropout, rate: 0.5}]",
    "*alias", "&anchor 1", "|\n  block", ": :", "- - -", "\t", "\x00", "é", "adam", "sgd",
    "{type: sgd, lr: 0.1, nesterov: true}", "{type: cosine}", "{patience: -1}",
]) | st.text(max_size=20)


def test_random_set_strings_load_or_fail_cleanly(fuzz_dir):
    counts = Counter()
    path = write_yaml(fuzz_dir / "set-base.yaml", base_config(fuzz_dir))

    @fuzz(200)
    @given(assignment=st.one_of(
        st.sampled_from(["optimizer.lr=3e-4", "training.epochs=3", "model.layers.0.units=4",
                         "training.early_stopping=null", "seed=5", "data.scale=minmax",
                         "model.layers.1.rate=0.0", "optimizer={type: sgd, lr: 0.1}",
                         "training.lr_schedule={type: cosine}", "name=other.run_1"]),
        st.text(max_size=40),
        st.builds(lambda k, v: f"{k}={v}", DOTTED, YAML_TEXT),
        st.builds(lambda k, s, v: f"{k}{s}{v}", st.text(max_size=10), st.sampled_from(["=", "==", " = "]), st.text(max_size=10)),
    ))
    def run(assignment):
        counts["examples"] += 1
        counts[outcome(lambda: load_config(path, [assignment]))] += 1

    run()
    print(f"\n--set strings: {dict(counts)}")
    assert counts["examples"] >= 150 and counts["ok"] > 0 and counts["user-error"] > 0


# ---- malformed CSV files ---------------------------------------------------------------------------

def cells(huge: bool = True):
    """CSV cells: numbers (finite or not), words, quotes, empty. With huge=False, no finite
    number big enough to overflow a scaler statistic (a case tested on its own below)."""
    special = ["", " ", "nan", "NaN", "inf", "-inf", "1e400", "-1e-400", "abc", '"',
               '""', "1,5", '"1,5"', "True", "None", "NA", "#", "1.2.3", "0x10", "١٢",
               "\t", "\\", "'", "class_0", "class_1", "class_2"]
    if huge:
        special += ["1e308", "-1e308", "1.7976931348623157e308"]
    return st.one_of(
        (st.floats(allow_nan=True, allow_infinity=True) if huge
         else st.floats(-1e150, 1e150)).map(repr),
        st.integers(-10**30, 10**30).map(str),
        st.sampled_from(special),
        st.text(max_size=6),
    )


def ragged_csv(draw_rows, header_cells):
    lines = [",".join(header_cells)]
    lines += [",".join(row) for row in draw_rows]
    return "\n".join(lines) + "\n"


HEADER = st.lists(st.sampled_from(["f0", "f1", "f2", "label", "f0", "", "x y", '"q"', "label "]),
                  min_size=1, max_size=5)


def with_edits(rows, edits):
    """A valid grid with a few cells replaced."""
    rows = [list(row) for row in rows]
    for where, column, cell in edits:
        rows[int(where * len(rows))][column] = cell
    return ragged_csv(rows, ["f0", "f1", "label"])


def near_valid(cell):
    """A valid two-feature, 0/1-label CSV, then 0 to 2 cells replaced by anything."""
    row = st.tuples(st.floats(-5, 5).map(lambda v: f"{v:.3g}"),
                    st.integers(-3, 3).map(str) | st.floats(-1e3, 1e3).map(repr),
                    st.sampled_from(["0", "1"]))
    edit = st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 2),
                     cell.filter(lambda c: "\n" not in c and "\r" not in c))
    return st.builds(with_edits, st.lists(row, min_size=8, max_size=40),
                     st.lists(edit, max_size=2))


def csv_contents(huge: bool = True):
    """Malformed (and some near-valid) CSV files, as bytes."""
    cell = cells(huge)
    return st.one_of(
        near_valid(cell),
        near_valid(cell),
        st.binary(max_size=300),
        st.lists(st.sampled_from(list('ab01.-e+,,,"\n\n\r ;\t') + ["label", "f0", "f1,label\n"]),
                 max_size=120).map("".join),
        st.builds(ragged_csv, st.lists(st.lists(cell, max_size=6), max_size=12), HEADER),
        st.builds(lambda rows: ragged_csv(rows, ["f0", "f1", "label"]),
                  st.lists(st.lists(cell, min_size=3, max_size=3), min_size=1, max_size=15)),
    ).map(lambda c: c if isinstance(c, bytes) else c.encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize("loss", ["categorical_crossentropy", "mse", "binary_crossentropy"])
def test_malformed_csv_files_load_or_fail_cleanly(fuzz_dir, loss):
    counts = Counter()
    config = base_config(fuzz_dir)
    config["data"]["train"] = str(fuzz_dir / f"fuzz-{loss}.csv")
    config["loss"] = loss
    config["training"]["early_stopping"] = None
    config["model"]["layers"][-1] = {  # the near-valid files have labels 0 and 1
        "type": "dense", "units": 2 if loss.startswith("c") else 1,
        "activation": {"c": "softmax", "b": "sigmoid", "m": "linear"}[loss[0]]}
    config_path = write_yaml(fuzz_dir / f"csv-{loss}.yaml", config)
    csv_path = Path(config["data"]["train"])

    @fuzz(70)
    @given(content=csv_contents(huge=True))
    def run(content):
        csv_path.write_bytes(content)
        counts["examples"] += 1
        counts[outcome(lambda: prepare(load_config(config_path)))] += 1

    run()
    print(f"\nmalformed CSV ({loss}): {dict(counts)}")
    assert counts["examples"] >= 50 and counts["user-error"] > 0 and counts["ok"] > 0


# ---- through the CLI ----------------------------------------------------------------------------

def assert_clean_exit(result, allowed=(0, 2)):
    assert result.exit_code in allowed, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, (SystemExit, type(None))), repr(result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert result.stderr.startswith("error: ")


def test_cli_validate_with_random_set_strings(fuzz_dir):
    counts = Counter()
    path = write_yaml(fuzz_dir / "cli-base.yaml", base_config(fuzz_dir))

    @fuzz(60)
    @given(assignment=st.builds(lambda k, v: f"{k}={v}", DOTTED, YAML_TEXT) | st.text(max_size=30))
    def run(assignment):
        result = cli("validate", path, "--set", assignment)
        assert_clean_exit(result)
        counts[result.exit_code] += 1

    run()
    print(f"\nnnctl validate --set: exit codes {dict(counts)}")
    assert sum(counts.values()) >= 40


def test_cli_train_on_malformed_csv_files(fuzz_dir):
    counts = Counter()
    config = base_config(fuzz_dir)
    config["data"]["train"] = str(fuzz_dir / "cli-train.csv")
    config["training"] = {"epochs": 1, "batch_size": 32, "checkpoint": {"keep_last": 0}}
    config_path = write_yaml(fuzz_dir / "cli-train.yaml", config)
    runs = fuzz_dir / "cli-runs"

    @fuzz(40)
    @given(content=csv_contents(huge=True))
    def run(content):
        (fuzz_dir / "cli-train.csv").write_bytes(content)
        before = len(run_dirs(runs))
        result = cli("train", config_path, "--runs-dir", runs, "--quiet")
        assert_clean_exit(result, allowed=(0, 2, 3))
        if result.exit_code == 2:
            assert len(run_dirs(runs)) == before, "a data error must not leave a run directory"
        counts[result.exit_code] += 1

    run()
    print(f"\nnnctl train on malformed CSV: exit codes {dict(counts)}")
    assert sum(counts.values()) >= 30


def test_huge_finite_feature_values_are_a_data_error(tmp_path):
    rows = ["f0,f1,label"] + [f"{1e308 if i == 0 else i / 10},{i % 3},{i % 2}" for i in range(20)]
    (tmp_path / "big.csv").write_text("\n".join(rows) + "\n")
    config = write_yaml(tmp_path / "big.yaml", {
        "data": {"train": str(tmp_path / "big.csv"), "validation": None, "target": "label"},
        "model": {"layers": [{"type": "dense", "units": 2, "activation": "softmax"}]},
        "loss": "categorical_crossentropy", "training": {"epochs": 2, "batch_size": 8}})
    result = cli("train", config, "--runs-dir", tmp_path / "runs", "--quiet")
    assert result.exit_code in (2, 3), (result.exit_code, repr(result.exception))


# ---- hostile YAML ------------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["file", "--set"])
def test_deeply_nested_yaml_is_a_config_error(tmp_path, where):
    nested = "[" * 1500 + "]" * 1500
    base = (Path(__file__).resolve().parents[1] / "configs" / "iris.yaml").read_text()
    path = tmp_path / "deep.yaml"
    if where == "file":
        path.write_text(base + f"extra: {nested}\n")
        result = cli("validate", path)
    else:
        shutil.copy(Path(__file__).resolve().parents[1] / "configs" / "iris.yaml", path)
        path.write_text(base.replace("../datasets", str(DATASETS)))
        result = cli("validate", path, "--set", f"extra={nested}")
    assert result.exit_code == 2, (result.exit_code, repr(result.exception))


def test_yaml_aliases_do_not_explode(tmp_path):
    """A "billion laughs" config: aliases nested nine deep must not be expanded."""
    base = (Path(__file__).resolve().parents[1] / "configs" / "iris.yaml").read_text()
    base = base.replace("../datasets", str(DATASETS))
    lines = ['x0: &x0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"x{i}: &x{i} [" + ",".join([f"*x{i - 1}"] * 9) + "]" for i in range(1, 9)]
    text = base.replace("  target: species", "  target: species\n  features: *x8")
    text = "\n".join("_" + line for line in lines) + "\n" + text
    path = tmp_path / "laughs.yaml"
    path.write_text(text)
    with time_limit(10):
        with pytest.raises(UserError):
            load_config(path)
        result = cli("validate", path)
    assert result.exit_code == 2


# ---- corrupted checkpoints -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoint_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    config = dropout_config(folder, epochs=2, batch_size=96)
    assert cli("train", config, "--runs-dir", folder / "runs", "--quiet").exit_code == 0
    return only_run(folder / "runs") / "checkpoints"


_ORIGINALS: dict = {}


def corrupt_and_load(source: Path, target: Path, flips: list[tuple[int, int]],
                     cut: int | None, which: str) -> str:
    """Copy source's `last` checkpoint to target, flip bits in / truncate one of its files,
    load it. Returns "refused" (CheckpointError), "loaded-intact" (same arrays and meta) or
    "loaded-altered-meta" (same arrays; the json changed in a place no check covers)."""
    if source not in _ORIGINALS:
        _ORIGINALS[source] = ({ext: (source / f"last.{ext}").read_bytes() for ext in ("npz", "json")},
                              load_checkpoint(source, "last"))
    files, (original, original_meta) = _ORIGINALS[source]
    data = {ext: bytearray(content) for ext, content in files.items()}
    for position, bit in flips:
        data[which][position % len(data[which])] ^= 1 << bit
    if cut is not None:
        data[which] = data[which][:cut % (len(data[which]) + 1)]
    for ext, content in data.items():
        (target / f"last.{ext}").write_bytes(bytes(content))
    try:
        arrays, meta = load_checkpoint(target, "last")
    except CheckpointError as exc:
        check_user_error(exc)
        return "refused"
    assert sorted(arrays) == sorted(original)
    for name in arrays:  # whatever loads is exactly what was saved
        assert arrays[name].tobytes() == original[name].tobytes(), name
    return "loaded-intact" if meta == original_meta else "loaded-altered-meta"


def test_random_corruptions_of_the_json_are_refused_or_harmless(checkpoint_folder, tmp_path):
    counts = Counter()

    @fuzz(100)
    @given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 7)), max_size=3),
           cut=st.none() | st.integers(0, 10**6))
    def run(flips, cut):
        counts["examples"] += 1
        counts[corrupt_and_load(checkpoint_folder, tmp_path, flips, cut, "json")] += 1

    run()
    print(f"\ncorrupted last.json: {dict(counts)}")
    assert counts["refused"] > 0
    assert counts["loaded-altered-meta"] == 0, "a changed json was accepted"


def array_payloads(path: Path) -> list[tuple[int, int]]:
    """(offset, length) of each array's raw data inside an (uncompressed) npz."""
    import zipfile

    data = path.read_bytes()
    found = []
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            local = info.header_offset
            name_len = int.from_bytes(data[local + 26:local + 28], "little")
            extra_len = int.from_bytes(data[local + 28:local + 30], "little")
            member = local + 30 + name_len + extra_len
            assert data[member:member + 6] == b"\x93NUMPY"
            major = data[member + 6]
            size = 2 if major == 1 else 4
            header_len = int.from_bytes(data[member + 8:member + 8 + size], "little")
            start = member + 8 + size + header_len
            length = info.file_size - (8 + size + header_len)
            if length > 0:
                found.append((start, length))
    return found


def test_random_corruptions_of_the_npz_array_data_are_refused_or_harmless(checkpoint_folder,
                                                                          tmp_path):
    """Bit flips in the arrays' data (the test below flips bits anywhere)."""
    payloads = array_payloads(checkpoint_folder / "last.npz")
    counts = Counter()

    @fuzz(100)
    @given(choice=st.integers(0, len(payloads) - 1), fraction=st.floats(0, 1, exclude_max=True),
           bit=st.integers(0, 7))
    def run(choice, fraction, bit):
        counts["examples"] += 1
        start, length = payloads[choice]
        position = start + int(fraction * length)
        counts[corrupt_and_load(checkpoint_folder, tmp_path, [(position, bit)], None, "npz")] += 1

    run()
    print(f"\ncorrupted last.npz array data: {dict(counts)}")
    assert counts["refused"] > 0


def test_every_single_bit_flip_of_the_npz_is_refused_or_harmless(checkpoint_folder, tmp_path):
    rng = random.Random(5)
    data_len = (checkpoint_folder / "last.npz").stat().st_size
    counts = Counter()
    try:
        for _ in range(2500):
            flip = (rng.randrange(data_len), rng.randrange(8))
            counts[corrupt_and_load(checkpoint_folder, tmp_path, [flip], None, "npz")] += 1
    finally:
        print(f"\nsingle-bit flips of last.npz: {dict(counts)}")
