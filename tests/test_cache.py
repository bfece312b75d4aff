"""The parsed-CSV cache (nnctl/data/cache.py): a hit gives the frame a parse would, read from
memory-mapped files; a changed file, other text columns or a damaged entry miss; errors are the
parser's; training data is bit-identical with and without it. pandas is the reference."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nnctl.build import rng_streams
from nnctl.config import load_config
from nnctl.data import CHUNK_ROWS, CSV_OPTIONS, load_training_data
import nnctl.data.cache as cache_module
from nnctl.data.cache import META, cached_read, load
from nnctl.data.reading import read_csv, read_table
from nnctl.errors import DataError
from cli_helpers import write_config, write_csv, write_text


def entries(cache: Path) -> list[Path]:
    """The cache's entries (not its temporary directories)."""
    return sorted(p for p in cache.iterdir() if not p.name.startswith(".")) \
        if cache.exists() else []


def mapped_file(array: np.ndarray):
    """The file `array` is a memory map of (through its bases), or None."""
    while array is not None:
        if isinstance(array, np.memmap):
            return Path(array.filename), array
        array = array.base
    return None


def assert_same(frame: pd.DataFrame, reference: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(frame, reference, check_exact=True)
    assert list(frame.columns) == list(reference.columns)
    assert frame.dtypes.to_dict() == reference.dtypes.to_dict()
    assert frame.index.equals(reference.index) and type(frame.index) is type(reference.index)


HEADER = ["id", "zip", "city", "note", "member", "joined", "age", "score", "flag"]


def rows(n: int, quoted: bool = True) -> list[list]:
    """Every kind of column: an int, text with leading zeros (read as text), text with blanks,
    unicode, quoted commas, True/False with blanks (object), a date, floats with NaN, bool."""
    rng = np.random.default_rng(n)
    cities = ["Oslo", "Tromsø", "", "Zürich", "東京", "Bergen"]
    notes = ["a, b", "plain", "", '"quoted"'] if quoted else ["plain", "", "x y"]
    out = []
    for i in range(n):
        out.append([i, f"{int(rng.integers(0, 3000)):05d}", cities[i % len(cities)],
                    notes[i % len(notes)], ["True", "False", ""][i % 3],
                    f"2021-{1 + i % 12:02d}-{1 + i % 28:02d}", int(rng.integers(18, 90)),
                    "" if i % 7 == 3 else repr(float(rng.normal())), ["True", "False"][i % 2]])
    return out


def reference(path: Path, text_columns=()) -> pd.DataFrame:
    return pd.read_csv(path, dtype={name: str for name in text_columns}, **CSV_OPTIONS)


# ---- hit and miss --------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [40, 2 * CHUNK_ROWS + 500])  # one read_csv; chunks in threads
def test_a_miss_stores_the_frame_and_a_hit_reads_it_back_memory_mapped(tmp_path, size):
    csv = write_csv(tmp_path / "data.csv", HEADER, rows(size, quoted=size < CHUNK_ROWS))
    cache = tmp_path / "cache"
    expected = reference(csv, ["zip"])
    assert expected["zip"].iloc[0].startswith("0") or (expected["zip"].str[0] == "0").any()
    assert expected.dtypes.to_dict() == {
        "id": np.int64, "zip": "str", "city": "str", "note": "str", "member": object,
        "joined": "str", "age": np.int64, "score": np.float64, "flag": bool}
    assert_same(read_csv(csv, ["zip"]), expected)

    first = read_csv(csv, ["zip"], cache=cache)  # the frame just parsed
    assert_same(first, expected)
    [entry] = entries(cache)
    assert not mapped_file(first["age"].to_numpy())
    stamp = (entry / META).stat().st_mtime_ns

    second = read_csv(csv, ["zip"], cache=cache)
    assert_same(second, expected)
    assert entries(cache) == [entry] and (entry / META).stat().st_mtime_ns == stamp
    for name in ["id", "age", "score", "flag"]:
        values = second[name].to_numpy()
        file, mapped = mapped_file(values)
        assert file.parent == entry and np.shares_memory(values, mapped), name
    assert mapped_file(second["id"].to_numpy())[1] is mapped_file(second["age"].to_numpy())[1]


def test_writing_to_a_cached_frame_leaves_the_entry_unchanged(tmp_path):
    csv = write_csv(tmp_path / "data.csv", HEADER, rows(30))
    cache = tmp_path / "cache"
    read_csv(csv, cache=cache)
    frame = read_csv(csv, cache=cache)
    frame.loc[0, "score"] = 1e6
    mapped_file(frame["id"].to_numpy())[1][0, 0] = -5  # the map itself is private too
    assert_same(read_csv(csv, cache=cache), reference(csv))


def test_a_changed_file_misses_and_gets_an_entry_of_its_own(tmp_path):
    csv = write_csv(tmp_path / "data.csv", ["x", "y"], [[1, 2.5], [3, 4.5]])
    cache = tmp_path / "cache"
    assert read_csv(csv, cache=cache)["y"].tolist() == [2.5, 4.5]
    write_csv(csv, ["x", "y"], [[1, 2.5], [3, 9.5]])  # same name and size, new content
    assert read_csv(csv, cache=cache)["y"].tolist() == [2.5, 9.5]
    assert len(entries(cache)) == 2
    assert read_csv(csv, cache=cache)["y"].tolist() == [2.5, 9.5]
    assert len(entries(cache)) == 2


def digest_memos(cache: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(cache.glob(".digest-*"))]


def test_a_files_digest_is_reused_until_its_times_change(tmp_path, monkeypatch):
    """The sha256 that keys an entry is remembered beside the file's times; a write changes
    them (the ctime even when the mtime is set back), so the new content is read."""
    monkeypatch.setattr(cache_module, "RACY_SECONDS", 0)  # the file was just written
    csv = write_csv(tmp_path / "data.csv", ["x", "y"], [[1, 2.5], [3, 4.5]])
    cache = tmp_path / "cache"
    read_csv(csv, cache=cache)
    [memo] = digest_memos(cache)
    assert memo["sha256"] == hashlib.sha256(csv.read_bytes()).hexdigest()

    # a hit takes the remembered digest: a wrong one (nothing else changed) misses
    (memo_file,) = cache.glob(".digest-*")
    memo_file.write_text(json.dumps(dict(memo, sha256="0" * 64)))
    read_csv(csv, cache=cache)
    assert len(entries(cache)) == 2

    times = csv.stat()
    write_csv(csv, ["x", "y"], [[1, 2.5], [3, 9.5]])  # same size
    os.utime(csv, ns=(times.st_atime_ns, times.st_mtime_ns))  # and the old mtime
    assert read_csv(csv, cache=cache)["y"].tolist() == [2.5, 9.5]
    [memo] = digest_memos(cache)
    assert memo["sha256"] == hashlib.sha256(csv.read_bytes()).hexdigest()


def test_a_digest_is_not_remembered_for_a_file_that_just_changed(tmp_path):
    """A second write in the same clock tick would leave the same times: a file changed less
    than RACY_SECONDS before its hash is hashed again next time."""
    csv = write_csv(tmp_path / "data.csv", ["x", "y"], [[1, 2.5]])
    read_csv(csv, cache=tmp_path / "cache")
    assert digest_memos(tmp_path / "cache") == []
    assert read_csv(csv, cache=tmp_path / "cache")["y"].tolist() == [2.5]


def test_only_the_newest_entries_of_a_file_are_kept(tmp_path):
    csv, cache = tmp_path / "data.csv", tmp_path / "cache"
    for value in range(6):
        write_csv(csv, ["x", "y"], [[1, value]])
        read_csv(csv, cache=cache)
    kept = [json.loads((e / META).read_text())["source"] for e in entries(cache)]
    assert kept == [str(csv.resolve())] * 3
    assert read_csv(csv, cache=cache)["y"].tolist() == [5]


def test_other_text_columns_are_another_entry(tmp_path):
    csv = write_csv(tmp_path / "data.csv", ["zip", "y"], [["02134", 1], ["00501", 2]])
    cache = tmp_path / "cache"
    for _ in range(2):
        as_text = read_csv(csv, ["zip"], cache=cache)
        as_numbers = read_csv(csv, cache=cache)
        assert as_text["zip"].tolist() == ["02134", "00501"]
        assert as_numbers["zip"].tolist() == [2134, 501]
        assert_same(as_text, reference(csv, ["zip"]))
        assert_same(as_numbers, reference(csv))
        assert len(entries(cache)) == 2
    assert_same(read_csv(csv, ("zip", "zip"), cache=cache), as_text)  # order and repeats: same
    assert len(entries(cache)) == 2


def test_text_round_trips_exactly(tmp_path):
    texts = ["02134", "", "ü, é", 'say "hi"', "東京", "line\nbreak", " padded ", "😀", "nan?"]
    csv = write_csv(tmp_path / "data.csv", ["t", "n"], [[t, i] for i, t in enumerate(texts)])
    cache = tmp_path / "cache"
    read_csv(csv, ["t"], cache=cache)
    frame = read_csv(csv, ["t"], cache=cache)
    assert_same(frame, reference(csv, ["t"]))
    assert frame["t"].isna().tolist() == [t == "" for t in texts]
    assert frame["t"].dropna().tolist() == [t for t in texts if t]


# ---- what is not cached --------------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("x,y\n1,2\n3,4,5\n", "{p}:3: the row has 3 fields, the header has 2"),
    ("x,x\n1,2\n", "{p}:1 column 'x': appears more than once"),
    ("x,y\n", "{p}: no data rows after the header"),
    ("", "{p}: the file is empty (expected a header row and data rows)"),
])
def test_errors_are_the_parsers_and_nothing_is_stored(tmp_path, text, message):
    csv, cache = write_text(tmp_path / "bad.csv", text), tmp_path / "cache"
    for folder in (None, cache, cache):
        with pytest.raises(DataError) as caught:
            read_csv(csv, cache=folder)
        assert caught.value.problems == [message.format(p=csv)]
    assert entries(cache) == []
    with pytest.raises(DataError, match="no such file"):
        read_csv(tmp_path / "absent.csv", cache=cache)


def test_dataframes_are_never_cached(tmp_path):
    cache = tmp_path / "cache"
    frame, source = read_table(pd.DataFrame({"x": [1, 2], "t": ["a", ""]}), cache=cache)
    assert str(source) == "DataFrame" and frame["t"].isna().tolist() == [False, True]
    assert not cache.exists()


def test_a_frame_the_format_cannot_hold_is_returned_but_not_stored(tmp_path):
    csv, cache = write_csv(tmp_path / "data.csv", ["x"], [[1]]), tmp_path / "cache"
    frame = pd.DataFrame({"when": pd.to_datetime(["2021-01-02"]), "x": [1]})
    assert cached_read(cache, csv, {}, lambda: frame) is frame
    assert entries(cache) == []


def test_a_cache_folder_that_cannot_be_written_only_costs_the_parse(tmp_path):
    csv = write_csv(tmp_path / "data.csv", HEADER, rows(10))
    blocked = write_text(tmp_path / "a-file", "not a folder")
    assert_same(read_csv(csv, cache=blocked), reference(csv))


# ---- damage and concurrency ----------------------------------------------------------------------

def truncate(file: Path) -> None:
    os.truncate(file, file.stat().st_size - 8)


@pytest.mark.parametrize("damage", {
    "truncated .npy": lambda e: truncate(e / "float64.npy"),
    "truncated text": lambda e: truncate(e / "text-bytes.npy"),
    "missing .npy": lambda e: (e / "int64.npy").unlink(),
    "missing meta.json": lambda e: (e / META).unlink(),
    "bad json": lambda e: write_text(e / META, "{not json"),
    "shape mismatch": lambda e: np.save(e / "bool.npy", np.zeros((3, 1), bool)),
    "other key": lambda e: write_text(e / META, json.dumps(
        dict(json.loads((e / META).read_text()), key={"sha256": "0"}))),
}.items(), ids=lambda item: item[0])
def test_a_damaged_entry_is_a_miss_and_is_written_again(tmp_path, damage):
    csv = write_csv(tmp_path / "data.csv", HEADER, rows(50))
    cache = tmp_path / "cache"
    read_csv(csv, cache=cache)
    [entry] = entries(cache)
    key = json.loads((entry / META).read_text())["key"]
    assert load(entry, key) is not None
    damage[1](entry)
    assert load(entry, key) is None
    assert_same(read_csv(csv, cache=cache), reference(csv))  # parsed again, silently
    assert entries(cache) == [entry]
    frame = read_csv(csv, cache=cache)
    assert mapped_file(frame["score"].to_numpy())[0].parent == entry
    assert_same(frame, reference(csv))
    assert [p.name for p in cache.iterdir() if p.name.startswith(".tmp-")] == []  # no leftovers


READER = """
import sys, time
from pathlib import Path
import pandas as pd
import nnctl.data.cache
from nnctl.data.reading import read_csv
csv, cache, ready, go = sys.argv[1:]
read_csv(csv, ["zip"])  # imports done: the processes then reach the cache together
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.001)
frame = read_csv(csv, ["zip"], cache=cache)
pd.testing.assert_frame_equal(frame, read_csv(csv, ["zip"]), check_exact=True)
print("ok")
"""


def test_processes_missing_at_once_all_get_the_frame_and_one_entry_remains(tmp_path):
    csv = write_csv(tmp_path / "data.csv", HEADER, rows(3 * CHUNK_ROWS, quoted=False))
    cache, go = tmp_path / "cache", tmp_path / "go"
    readies = [tmp_path / f"ready{i}" for i in range(3)]
    children = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(READER), str(csv),
                                  str(cache), str(ready), str(go)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for ready in readies]
    try:
        while not all(ready.exists() for ready in readies):
            assert all(child.poll() is None for child in children)
        go.touch()
        results = [child.communicate(timeout=120) for child in children]
    finally:
        for child in children:
            child.kill()
    assert [(c.returncode, out) for c, (out, _) in zip(children, results)] == \
        [(0, "ok\n")] * 3, results
    assert len(entries(cache)) == 1
    assert [p.name for p in cache.iterdir() if p.name.startswith(".tmp-")] == []  # no leftovers
    assert_same(read_csv(csv, ["zip"], cache=cache), reference(csv, ["zip"]))


# ---- training data -------------------------------------------------------------------------------

def shop_csv(path: Path, n: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        city = ["Oslo", "Tromsø", "", "Bergen"][int(rng.integers(0, 4))]
        age = "" if i % 11 == 5 else f"{rng.normal(45, 12):.4f}"
        visits = int(rng.integers(0, 30))
        zip_code = f"{int(rng.integers(0, 40)):05d}"
        out.append([city, age, visits, zip_code, ["yes", "no"][int(rng.random() < 0.4)]])
    return write_csv(path, ["city", "age", "visits", "zip", "bought"], out)


@pytest.mark.parametrize("validation, size", [("file", 300), (0.25, 2 * CHUNK_ROWS + 300)])
def test_training_data_is_bit_identical_with_and_without_the_cache(tmp_path, validation, size):
    train = shop_csv(tmp_path / "train.csv", size, 0)
    spec = {"train": str(train), "target": "bought",
            "validation": str(shop_csv(tmp_path / "val.csv", 80, 1))
            if validation == "file" else validation,
            "test": str(shop_csv(tmp_path / "test.csv", 70, 2)),
            "columns": {"city": {"type": "categorical"}, "zip": {"type": "categorical"}}}
    config = load_config(write_config(tmp_path / "shop.yaml", {
        "seed": 3, "data": spec,
        "model": {"layers": [{"type": "dense", "units": 2, "activation": "softmax"}]},
        "loss": "categorical_crossentropy"}))

    def data(cache):
        return load_training_data(config.data, config.task, rng_streams(config.seed)["split"],
                                  np.dtype(config.dtype), cache=cache)

    cache = tmp_path / "cache"
    plain, missed, hit = data(None), data(cache), data(cache)
    assert len(entries(cache)) == (3 if validation == "file" else 2)
    for other in (missed, hit):
        for split in ("train", "validation", "test"):
            for part in ("x", "y"):
                a, b = getattr(getattr(plain, split), part), getattr(getattr(other, split), part)
                assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
        assert other.preprocessing.to_dict() == plain.preprocessing.to_dict()
        assert (other.notes, other.blank_targets, other.class_counts) == \
            (plain.notes, plain.blank_targets, plain.class_counts)


def test_nnctl_train_uses_a_cache_only_when_given_one(tmp_path):
    """`nnctl train --cache DIR`: the first run fills the folder, the second reads from it, and
    both train the same weights as a run without a cache; no folder appears without --cache."""
    from cli_helpers import DATASETS, tiny_iris_config
    from nnctl.checkpoint import load_checkpoint

    (tmp_path / "c.yaml").write_text(tiny_iris_config(epochs=2))

    def train(*extra) -> Path:
        result = subprocess.run([sys.executable, "-m", "nnctl.cli", "train", "c.yaml", "--quiet",
                                 "--runs-dir", "runs", *extra], cwd=tmp_path,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return tmp_path / result.stdout.splitlines()[0]

    plain = train()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "runs"]
    first = train("--cache", "parsed")
    (entry,) = entries(tmp_path / "parsed")
    made = (entry / META).stat().st_mtime_ns
    second = train("--cache", "parsed")
    assert entries(tmp_path / "parsed") == [entry]
    assert (entry / META).stat().st_mtime_ns == made  # read, not written again
    assert json.loads((entry / META).read_text())["source"] == str(DATASETS / "iris.csv")
    weights = [load_checkpoint(run / "checkpoints", "last")[0] for run in (plain, first, second)]
    for name, array in weights[0].items():
        assert all(np.array_equal(array, other[name]) for other in weights[1:]), name
