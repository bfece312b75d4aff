"""Data errors through `nnctl train` and `nnctl eval`: exit code 2, no traceback, one line per
problem naming the file, the CSV line (header = line 1) and the column, and no run directory."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from nnctl.data import Preprocessing, reading
from nnctl.data.reading import CHUNK_ROWS, CSV_OPTIONS, _read_in_chunks, read_csv
from nnctl.errors import DataError
from cli_helpers import (
    CLASS_HEADER, assert_user_error, classification_config, classification_rows, eval_json,
    invoke, make_problem, run_dirs, train, write_config, write_csv, write_text,
)

REGRESSION = {
    "data": {"train": "data.csv", "validation": None, "target": "y"},
    "model": {"layers": [{"type": "dense", "units": 1}]},
    "loss": "mse",
    "training": {"epochs": 1},
}


def train_errors(config: Path, runs: Path, *extra) -> list[str]:
    """Train, expect a user error and no run directory; return the problems."""
    lines = assert_user_error(invoke("train", config, "--runs-dir", runs, "--quiet", *extra))
    assert all(line.startswith("error: ") for line in lines), lines
    assert run_dirs(runs) == []
    return [line[len("error: "):] for line in lines]


def regression_case(tmp_path: Path, csv_text, **data) -> tuple[Path, Path]:
    """Write data.csv (unless csv_text is None) and a regression config; return both paths."""
    csv = (tmp_path / "data.csv").resolve()
    if csv_text is not None:
        write_text(csv, csv_text)
    config = dict(REGRESSION, data={**REGRESSION["data"], **data})
    return write_config(tmp_path / "reg.yaml", config), csv


CATEGORICAL_HINT = "declare it `x: categorical` in data.columns to read its values as categories"
CASES = {
    "missing file": (None, ["{p}: no such file"]),
    "empty file": ("", ["{p}: the file is empty (expected a header row and data rows)"]),
    "header only": ("x,y\n", ["{p}: no data rows after the header"]),
    "ragged row": ("x,y\n1,2\n3,4\n5,6,7\n8,9\n",
                   ["{p}:4: the row has 3 fields, the header has 2"]),
    "non-numeric cell": ("x,y\n1,2\n3,4\n7,1\n8,1\nabc,5\n",
                         ["{p}:6 column 'x': not a number ('abc'); " + CATEGORICAL_HINT]),
    "non-numeric cells": ("x,y\n1,2\nn/a?,4\n7,1\n8,1\n9,1\n2,2\nn/a?,2\n3,3\n4,4\n5,5\n",
                          ["{p}:3 column 'x': 2 cells are not numbers (e.g. 'n/a?') "
                           "(lines 3, 8); " + CATEGORICAL_HINT]),
    "non-numeric target": ("x,y\n1,2\n3,4\n5,abc\n", ["{p}:4 column 'y': not a number ('abc')"]),
    "infinite value": ("x,y\n1,2\ninf,4\n", ["{p}:3 column 'x': not a finite number (inf)"]),
    "absent target column": ("x,z\n1,2\n3,4\n",
                             ["{p}:1 target column 'y': not in the file (columns: x, z)"]),
    "duplicate column": ("x,x,y\n1,2,3\n4,5,6\n", ["{p}:1 column 'x': appears more than once"]),
    "several problems": ("x,y\n1,2\nabc,4\n5,\n7,8\n9,1e\n",
                         ["{p}:6 column 'y': not a number ('1e')",
                          "{p}:3 column 'x': not a number ('abc'); " + CATEGORICAL_HINT]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_data_errors_in_the_training_file(tmp_path, case):
    text, expected = CASES[case]
    config, csv = regression_case(tmp_path, text)
    assert train_errors(config, tmp_path / "runs") == [e.format(p=csv) for e in expected]


def test_values_too_large_for_float32_are_named_without_a_numpy_warning(tmp_path):
    config, csv = regression_case(tmp_path, "x,y\n1,2\n1e39,4\n5,-1e39\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow warning would reach the user's terminal
        problems = train_errors(config, tmp_path / "runs")
    # x is standardized (1e39 stays finite after it); the target is not
    assert problems == [f"{csv}:4 column 'y': too large for float32 after scaling"]


def test_absent_feature_column(tmp_path):
    config, csv = regression_case(tmp_path, "x,y\n1,2\n3,4\n", features=["x", "w"])
    assert train_errors(config, tmp_path / "runs") == [
        f"{csv}:1 feature column 'w': not in the file (columns: x, y)"]


def test_many_cells_are_one_problem_per_column_and_many_problems_are_counted(tmp_path):
    rows = "".join(f"bad{i},{i}\n" for i in range(15))
    config, csv = regression_case(tmp_path, "x,y\n" + rows, columns={"x": "numeric"})
    assert train_errors(config, tmp_path / "runs") == [
        f"{csv}:2 column 'x': 15 cells are not numbers (e.g. 'bad0') (lines 2, 3, 4, ...); "
        + CATEGORICAL_HINT]
    names = [f"c{i}" for i in range(13)]
    text = ",".join(names + ["y"]) + "\n" + "\n".join(
        ",".join(["oops"] * 13 + [str(i)]) for i in range(3)) + "\n"
    config, csv = regression_case(tmp_path, text, columns={n: "numeric" for n in names})
    problems = train_errors(config, tmp_path / "runs")
    assert len(problems) == 11
    assert problems[0].startswith(f"{csv}:2 column 'c0': 3 cells are not numbers")
    assert problems[-1] == f"{csv}: ... and 3 more problems"


def test_blank_cells_with_missing_error_name_the_setting_that_fills_them(tmp_path):
    config, csv = regression_case(tmp_path, "x,y\n1,2\n,4\n3,4\n,5\n", missing="error")
    assert train_errors(config, tmp_path / "runs") == [
        f"{csv}:3 column 'x': 2 cells are blank (lines 3, 5); set data.missing to median, mean "
        "or zero to fill them"]


def test_rows_without_a_target_are_left_out_and_counted(tmp_path):
    config, csv = regression_case(tmp_path, "x,y\n1,2\n3,\n5,6\n7,8\n,\n9,1\n")
    result = invoke("train", config, "--runs-dir", tmp_path / "runs", "--quiet", "--json")
    assert result.exit_code == 0, result.stderr
    assert f"warning: {csv}: 2 rows without a target value left out (lines 3, 6)" in \
        result.stderr.splitlines()
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["blank_targets"] == {str(csv): 2}
    assert summary["rows"]["train"] == 4


def test_ragged_first_row(tmp_path):
    config, csv = regression_case(tmp_path, "x,y\n1,2,9\n3,4\n5,6\n")
    assert train_errors(config, tmp_path / "runs") == [
        f"{csv}:2: the row has 3 fields, the header has 2"]


def test_every_row_too_long_is_refused(tmp_path):
    rows = "".join(f"{i},{2 * i},{100 + i}\n" for i in range(20))
    config, csv = regression_case(tmp_path, "x,y\n" + rows)
    problems = train_errors(config, tmp_path / "runs")
    assert problems[0] == f"{csv}:2: the row has 3 fields, the header has 2"


def test_validation_and_test_files_are_checked_and_named(tmp_path):
    config, csv = regression_case(tmp_path, "x,y\n1,2\n3,4\n5,6\n", validation="val.csv",
                                  test="test.csv")
    write_text(tmp_path / "val.csv", "x,y\n1,2\n3,oops\n")
    write_text(tmp_path / "test.csv", "x,y\n1,2\n")
    assert train_errors(config, tmp_path / "runs") == [
        f"{(tmp_path / 'val.csv').resolve()}:3 column 'y': not a number ('oops')"]
    write_text(tmp_path / "val.csv", "x,y\n1,2\n3,4\n")
    write_text(tmp_path / "test.csv", "x,q\n1,2\n")
    assert train_errors(config, tmp_path / "runs") == [
        f"{(tmp_path / 'test.csv').resolve()}:1 target column 'y': not in the file (columns: x, q)"]


def test_validation_fraction_leaving_no_rows(tmp_path):
    config, csv = regression_case(tmp_path, "x,y\n1,2\n3,4\n5,6\n", validation=0.1)
    assert train_errors(config, tmp_path / "runs") == [
        f"{csv}: 3 rows are too few to hold out a validation fraction of 0.1"]
    config, csv = regression_case(tmp_path, "x,y\n1,2\n3,4\n", validation=0.9)
    assert train_errors(config, tmp_path / "runs") == [
        f"{csv}: 2 rows are too few to hold out a validation fraction of 0.9"]


# ---- labels --------------------------------------------------------------------------------

def classification_case(tmp_path: Path, rows, change=None) -> tuple[Path, Path]:
    """Write data.csv and the tiny classification config (edited by `change(config)`)."""
    csv = write_csv(tmp_path / "data.csv", CLASS_HEADER, rows).resolve()
    config = classification_config()
    if change is not None:
        change(config)
    return write_config(tmp_path / "cls.yaml", config), csv


def test_a_row_without_a_label_is_left_out(tmp_path):
    rows = classification_rows(12)
    rows[4][-1] = ""
    config, csv = classification_case(tmp_path, rows)
    result = invoke("train", config, "--runs-dir", tmp_path / "runs", "--quiet")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == f"warning: {csv}: 1 row without a target value left out (lines 6)\n"


def test_binary_crossentropy_on_three_classes(tmp_path):
    def binary(config):
        config["model"]["layers"][-1] = {"type": "dense", "units": 1, "activation": "sigmoid"}
        config["loss"] = "binary_crossentropy"

    config, csv = classification_case(tmp_path, classification_rows(12), binary)
    assert train_errors(config, tmp_path / "runs") == [
        f"{csv}:1 column 'label': binary_crossentropy needs two classes, found 3 "
        "(ant, moth, zebra)"]


def test_a_single_class_is_refused(tmp_path):
    rows = [r[:-1] + ["ant"] for r in classification_rows(12)]
    config, csv = classification_case(tmp_path, rows)
    assert train_errors(config, tmp_path / "runs") == [
        f"{csv}:1 column 'label': only one class (ant); a classifier needs at least two"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trained")
    config = make_problem(folder, epochs=5)
    return train(config, folder / "runs")[1]


def test_eval_label_never_seen_in_training(trained, tmp_path):
    rows = classification_rows(6)
    rows[1][-1] = "yak"
    rows[4][-1] = "gnu"
    csv = write_csv(tmp_path / "new.csv", CLASS_HEADER, rows)
    lines = assert_user_error(invoke("eval", trained, csv))
    assert lines == [
        f"error: {csv}:3 column 'label': label 'yak' was not seen in training "
        "(known: ant, moth, zebra)",
        f"error: {csv}:6 column 'label': label 'gnu' was not seen in training "
        "(known: ant, moth, zebra)",
    ]


def test_every_unknown_label_is_counted(trained, tmp_path):
    rows = classification_rows(14)
    for row in rows:
        row[-1] = "yak"
    csv = write_csv(tmp_path / "new.csv", CLASS_HEADER, rows)
    lines = assert_user_error(invoke("eval", trained, csv))
    assert len(lines) == 11 and lines[-1] == f"error: {csv}: ... and 4 more problems"


def test_sequences_take_numeric_columns_only(tmp_path):
    rows = "".join(f"{i},{i + 1},{'ab'[i % 2]},{i + 2},{i % 2}\n" for i in range(12))
    _, csv = regression_case(tmp_path, "a,b,c,d,y\n" + rows)
    config = write_config(tmp_path / "seq.yaml", dict(
        REGRESSION, data={**REGRESSION["data"], "sequence": {"steps": 2, "features": 2}},
        model={"layers": [{"type": "rnn", "units": 3}, {"type": "dense", "units": 1}]}))
    assert train_errors(config, tmp_path / "runs") == [
        f"{csv}:1 column 'c': data.sequence reads numeric columns without blanks only"]


def test_eval_data_errors(trained, tmp_path):
    csv = write_csv(tmp_path / "nolabel.csv", ["x1", "x2", "x3"], [[1, 2, 3]])
    assert_user_error(invoke("eval", trained, csv),
                      f"{csv}:1 target column 'label': not in the file (columns: x1, x2, x3)")
    csv = write_csv(tmp_path / "bad.csv", ["x1", "x2", "x3", "label"],
                    [[1, 2, 3, "ant"], [1, "two", 3, "ant"]])
    assert_user_error(invoke("eval", trained, csv), f"{csv}:3 column 'x2': not a number ('two')")
    assert_user_error(invoke("eval", trained, tmp_path / "absent.csv"),
                      f"{tmp_path / 'absent.csv'}: no such file")


def test_values_that_overflow_after_scaling_are_refused_by_eval_and_predict(trained, tmp_path):
    rows = classification_rows(4)
    rows[1][2] = "1e45"  # finite in the CSV, beyond float32 once scaled
    csv = write_csv(tmp_path / "huge.csv", CLASS_HEADER, rows)
    message = f"{csv}:3 column 'x2': too large for float32 after scaling"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert assert_user_error(invoke("eval", trained, csv)) == [f"error: {message}"]
        assert assert_user_error(invoke("predict", trained, csv)) == [f"error: {message}"]


def test_eval_on_a_subset_of_classes(trained, tmp_path):
    rows = [r for r in classification_rows(30) if r[-1] != "moth"]
    csv = write_csv(tmp_path / "two.csv", CLASS_HEADER, rows)
    report = eval_json(trained, csv)
    assert report["rows"] == 20
    assert report["labels"] == ["ant", "moth", "zebra"]
    assert report["classes"]["moth"]["support"] == 0
    assert sum(map(sum, report["confusion_matrix"])) == 20


def test_integer_labels_written_as_floats_are_the_same_class(tmp_path):
    rows = [r[:-1] + [["0", "1", "2"][i % 3]] for i, r in enumerate(classification_rows(60))]
    config, csv = classification_case(tmp_path, rows,
                                      lambda c: c["training"].update(epochs=20))
    _, run_dir = train(config, tmp_path / "runs")
    floats = [r[:-1] + [f"{float(r[-1]):.1f}"] for r in rows]
    report = eval_json(run_dir, write_csv(tmp_path / "floats.csv", CLASS_HEADER, floats))
    assert report["labels"] == ["0", "1", "2"]
    assert report["rows"] == 60 and report["accuracy"] > 0.9


# ---- scaling ---------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", ["standard", "minmax", "none"])
def test_scaler_is_fitted_on_the_training_data_only(tmp_path, scale):
    train_x = [1.0, 2.0, 3.0, 6.0]
    text = "x,c,y\n" + "".join(f"{x},5,{2 * x}\n" for x in train_x)
    config, csv = regression_case(tmp_path, text, validation="val.csv", scale=scale)
    write_text(tmp_path / "val.csv", "x,c,y\n100,7,200\n-50,9,-100\n")
    _, run_dir = train(config, tmp_path / "runs")
    prep = json.loads((run_dir / "checkpoints" / "last.json").read_text())["preprocessing"]
    assert prep["features"] == ["x", "c"] and prep["scale"] == scale
    x = np.array(train_x)
    if scale == "standard":
        assert prep["offset"] == pytest.approx([x.mean(), 5.0])
        assert prep["spread"] == pytest.approx([x.std(), 1.0])  # constant column: spread 1
    elif scale == "minmax":
        assert prep["offset"] == pytest.approx([1.0, 5.0])
        assert prep["spread"] == pytest.approx([5.0, 1.0])
    else:
        assert prep["offset"] == [] and prep["spread"] == []


# ---- large files: read in chunks, two threads, the same result as pandas.read_csv ------------

def large_csv(path: Path, rows: int, label=lambda i: f"c{i % 3}", extra: str = "") -> Path:
    """Enough rows (> 2 * CHUNK_ROWS) to take the chunked path, with int, float and text."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=(rows, 3))
    lines = ["i,a,b,c,label"] + [f"{i},{a:.6g},{b:.6g},{c:.6g},{label(i)}{extra}"
                                 for i, (a, b, c) in enumerate(values)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("rows", [2 * CHUNK_ROWS + 1, 5 * CHUNK_ROWS + 17])
def test_large_files_read_as_pandas_reads_them(tmp_path, rows):
    path = large_csv(tmp_path / "big.csv", rows)
    assert _read_in_chunks(pd, path, CSV_OPTIONS) is not None  # the chunked path was taken
    pd.testing.assert_frame_equal(read_csv(path), pd.read_csv(path))


def test_large_files_with_quotes_or_changing_types_fall_back_to_pandas(tmp_path):
    quoted = large_csv(tmp_path / "quoted.csv", 3 * CHUNK_ROWS, label=lambda i: f'"c{i % 3}"')
    assert _read_in_chunks(pd, quoted, CSV_OPTIONS) is None
    pd.testing.assert_frame_equal(read_csv(quoted), pd.read_csv(quoted))
    # a label column that is numeric in the first chunk and text later
    changing = large_csv(tmp_path / "changing.csv", 3 * CHUNK_ROWS,
                         label=lambda i: str(i % 3) if i < 2 * CHUNK_ROWS else "x")
    assert _read_in_chunks(pd, changing, CSV_OPTIONS) is None
    pd.testing.assert_frame_equal(read_csv(changing), pd.read_csv(changing))


def numeric_csv(path: Path, rows: int, line=lambda i: None) -> Path:
    """An all-numeric file: ints, floats in two notations and blank cells; `line(i)`, when
    not None, replaces data row i."""
    rng = np.random.default_rng(1)
    values = rng.normal(size=(rows, 2)) * 1000
    lines = ["i,a,b,n,label"] + [
        line(i) if line(i) is not None else
        f"{i - 100},{a:.6g},{b:.3e},{'' if i % 97 == 0 else i % 7},{i % 3}"
        for i, (a, b) in enumerate(values)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_all_numeric_large_files_are_parsed_in_pieces_as_pandas_reads_them(tmp_path, monkeypatch):
    """Files of numbers only take the faster path (pieces of bytes fed to one parser per
    thread); small pieces here, so both threads take several."""
    monkeypatch.setattr(reading, "PIECE_BYTES", 1 << 14)
    taken = []
    parse_numbers = reading._parse_numbers
    monkeypatch.setattr(reading, "_parse_numbers",
                        lambda *args: taken.append(parse_numbers(*args)) or taken[-1])
    for rows in (2 * CHUNK_ROWS + 1, 5 * CHUNK_ROWS + 17):
        # the last piece is one row, of integers in the float columns (2**53 + 1 among them):
        # read as integers, they must give the floats a single read gives
        last = f"{rows},9007199254740993,-123456789012345678,3,1"
        path = numeric_csv(tmp_path / f"numbers{rows}.csv", rows,
                           line=lambda i: last if i == rows - 1 else None)
        pd.testing.assert_frame_equal(read_csv(path), pd.read_csv(path, **CSV_OPTIONS))
        assert taken.pop() is True
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))  # Windows line ends
    pd.testing.assert_frame_equal(read_csv(path), pd.read_csv(path, **CSV_OPTIONS))
    assert taken.pop() is True

    class OldParser:  # pandas before 3.1: its C reader cannot be fed bytes
        _engine = SimpleNamespace(_reader=object())
        __enter__ = lambda self: self
        __exit__ = lambda self, *exc: None

    with monkeypatch.context() as old:
        old.setattr(reading, "_numbers_parser", lambda *args: OldParser())
        pd.testing.assert_frame_equal(read_csv(path), pd.read_csv(path, **CSV_OPTIONS))
        assert taken.pop() is False
        assert _read_in_chunks(pd, path, CSV_OPTIONS) is not None  # in two halves instead
    # A piece that does not read as the first rows did sends the file to one pandas.read_csv:
    # a word in a number column, a blank line (a row of blanks: the integer columns become
    # float), a row with a field too many (its error names the line).
    late = 2 * CHUNK_ROWS + 5
    for name, row in [("word", "1,2,3,x,1"), ("blank", "")]:
        changed = numeric_csv(tmp_path / f"{name}.csv", 3 * CHUNK_ROWS,
                              line=lambda i: row if i == late else None)
        assert _read_in_chunks(pd, changed, CSV_OPTIONS) is None
        pd.testing.assert_frame_equal(read_csv(changed), pd.read_csv(changed, **CSV_OPTIONS))
    extra = numeric_csv(tmp_path / "extra.csv", 3 * CHUNK_ROWS,
                        line=lambda i: "1,2,3,4,5,6" if i == late else None)
    assert _read_in_chunks(pd, extra, CSV_OPTIONS) is None
    with pytest.raises(DataError, match=f"{extra}:{late + 2}"):
        read_csv(extra)


def test_a_bad_cell_deep_in_a_large_file_names_its_line(tmp_path):
    rows = 3 * CHUNK_ROWS
    path = large_csv(tmp_path / "big.csv", rows)
    lines = path.read_text().splitlines()
    bad = 2 * CHUNK_ROWS + 5  # a data row in the second half, parsed by the other thread
    fields = lines[bad].split(",")
    fields[1] = "oops"
    lines[bad] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    config = tmp_path / "big.yaml"
    config.write_text("data: {train: big.csv, target: label, features: [a, b, c]}\n"
                      "model: {layers: [{type: dense, units: 3, activation: softmax}]}\n"
                      "loss: categorical_crossentropy\n")
    assert train_errors(config, tmp_path / "runs") == [
        f"{path}:{bad + 1} column 'a': not a number ('oops'); "
        + CATEGORICAL_HINT.replace("`x:", "`a:")]


# ---- integer labels: encoded in one vectorized pass, as one label at a time would -----------

@pytest.mark.parametrize("dtype", ["int64", "uint8", "float64", "object"])
def test_label_encoding_is_the_same_whatever_the_column_type(tmp_path, dtype):
    frame = pd.DataFrame({"y": np.array([5, 0, 1, 1, 5], dtype=dtype)})
    prep = Preprocessing(task="classification", features=[], targets=["y"], classes=[0, 1, 5])
    np.testing.assert_array_equal(prep.encode_targets(frame, tmp_path / "f.csv", np.float32),
                                  [2, 0, 1, 1, 2])
    frame.loc[3, "y"] = 7
    with pytest.raises(DataError) as error:
        prep.encode_targets(frame, tmp_path / "f.csv", np.float32)
    assert error.value.problems == [f"{tmp_path / 'f.csv'}:5 column 'y': label '7' was not seen "
                                    "in training (known: 0, 1, 5)"]


def test_text_classes_take_the_label_by_label_path(tmp_path):
    frame = pd.DataFrame({"y": np.array([1, 0, 1])})
    prep = Preprocessing(task="binary", features=[], targets=["y"], classes=["0", "1"])
    np.testing.assert_array_equal(prep.encode_targets(frame, tmp_path / "f.csv", np.float32),
                                  [[1.0], [0.0], [1.0]])


def test_preprocessing_saved_before_column_types_still_loads(tmp_path):
    """A checkpoint's preprocessing from before column types (every feature a number) reads
    as numeric columns and encodes a file as it did."""
    old = {"task": "regression", "features": ["a", "b"], "targets": ["y"], "classes": [],
           "scale": "standard", "offset": [1.0, 10.0], "spread": [2.0, 5.0], "sequence": None}
    prep = Preprocessing.from_dict(old)
    assert [c.type for c in prep.columns] == ["numeric", "numeric"]
    frame = pd.DataFrame({"a": [1.0, 3.0], "b": [10.0, 0.0]})
    x, notes = prep.encode_inputs(frame, tmp_path / "f.csv", np.float64)
    np.testing.assert_array_equal(x, [[0.0, 0.0], [1.0, -2.0]])
    assert notes == []
    with pytest.raises(ValueError):  # a scaler that does not fit the columns is refused
        Preprocessing.from_dict(dict(old, offset=[1.0]))


def test_float_class_labels_with_whole_numbers_among_them(tmp_path):
    """Labels 1.0, 1.5 and 2.0 in a float column: 1.0 is the class "1" in every split (the
    classes are written as integers where they are whole), not an unseen "1.0"."""
    import json

    import yaml

    rng = np.random.default_rng(0)
    labels = rng.choice([1.0, 1.5, 2.0], size=90)
    rows = [[float(rng.normal() + label), label] for label in labels]
    data = write_csv(tmp_path / "half.csv", ["x", "grade"], rows)
    config = tmp_path / "half.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"train": str(data), "target": "grade", "validation": 0.3},
        "model": {"layers": [{"type": "dense", "units": 3, "activation": "softmax"}]},
        "loss": "categorical_crossentropy", "training": {"epochs": 2}}))
    result = invoke("train", config, "--runs-dir", tmp_path / "runs", "--quiet")
    assert result.exit_code == 0, result.stderr
    run_dir = result.stdout.splitlines()[0]
    evaluation = invoke("eval", run_dir, data, "--json")
    assert evaluation.exit_code == 0, evaluation.stderr
    report = json.loads(evaluation.stdout)
    assert sorted(report["labels"]) == ["1", "1.5", "2"]
    assert report["rows"] == 90


def test_an_infinite_class_label_is_a_data_error(tmp_path):
    """`inf` in a label column reads as a number that no class can be (nor JSON hold): exit 2
    naming its line, and no run directory (found by the CSV fuzz test)."""
    import yaml

    data = write_text(tmp_path / "inf.csv", "f0,f1,label\n0,0,inf\n" + "0,0,0\n" * 6 + "0,0,1\n")
    config = tmp_path / "inf.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"train": str(data), "target": "label"},
        "model": {"layers": [{"type": "dense", "units": 3, "activation": "softmax"}]},
        "loss": "categorical_crossentropy", "training": {"epochs": 1}}))
    result = invoke("train", config, "--runs-dir", tmp_path / "runs", "--quiet")
    assert_user_error(result, f"{data}:2 column 'label': inf is not a class label")
    assert run_dirs(tmp_path / "runs") == []
