"""Real-world CSV files through the CLI's front door (`nnctl train/eval/predict` on files in
tmp_path and on datasets/customers*.csv): preprocessing fitted on the training split only,
unseen and blank categories at predict time, bad declarations and bad cells (exit 2, exact
messages), files whose columns differ from training, class weights, the train -> predict round
trip and the column table. References: scikit-learn and pandas."""

from __future__ import annotations

import inspect
import json
from datetime import date, timedelta
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.class_weight import compute_class_weight

from nnctl.data import Preprocessing
from cli_helpers import (
    DATASETS, assert_user_error, eval_json, invoke, npz, run_dirs, summary, train, write_config,
    write_csv, write_text,
)

NUMERIC_HINT = "declare it `{c}: categorical` in data.columns to read its values as categories"
MISSING_HINT = "set data.missing to median, mean or zero to fill them"

# ---- a small shop export: an id, a date, a category, a number with blanks, yes/no ------------

SHOP = ["id", "joined", "city", "age", "member", "bought"]
CITIES = ["Oslo", "Bergen", "Alta", "Moss", "Hamar"]
CITY_SHARES = [0.35, 0.25, 0.2, 0.12, 0.08]  # unequal, so folding has no ties to break
EFFECT = {"Oslo": 1.0, "Bergen": -0.5, "Alta": 0.5, "Moss": -1.0, "Hamar": 0.0}


def shop_rows(n: int, seed: int = 0, cities=CITIES) -> list[list]:
    """Rows of SHOP; `bought` (yes/no) depends on every feature but the id."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        city = str(rng.choice(cities, p=CITY_SHARES if len(cities) == 5 else None))
        age = int(rng.integers(18, 80))
        member = "yes" if rng.random() < 0.5 else "no"
        joined = date(2020, 1, 1) + timedelta(days=int(rng.integers(0, 1000)))
        score = (age - 45) / 15 + (member == "yes") + EFFECT.get(city, 0.0) \
            + 0.5 * rng.standard_normal()
        rows.append([f"S{seed}-{i:04d}", joined.isoformat(), city, age, member,
                     "yes" if score > 0.3 else "no"])
    return rows


def blank(rows: list[list], column: str, where) -> list[list]:
    j = SHOP.index(column)
    return [row[:j] + [""] + row[j + 1:] if i in where else row for i, row in enumerate(rows)]


def classifier(tmp_path: Path, train_csv, target: str = "bought", classes: int = 2,
               name: str = "shop.yaml", training: dict | None = None, **data) -> Path:
    return write_config(tmp_path / name, {
        "seed": 0,
        "data": {"train": str(train_csv), "validation": None, "target": target, **data},
        "model": {"layers": [{"type": "dense", "units": 8, "activation": "relu"},
                             {"type": "dense", "units": classes, "activation": "softmax"}]},
        "loss": "categorical_crossentropy",
        "optimizer": {"type": "adam", "lr": 0.01},
        "training": {"epochs": 2, "batch_size": 16, **(training or {})},
    })


def prep_of(run_dir: Path, stem: str = "best") -> dict:
    return json.loads((run_dir / "checkpoints" / f"{stem}.json").read_text())["preprocessing"]


def column_of(prep: dict, name: str) -> dict:
    return next(c for c in prep["columns"] if c["name"] == name)


def warnings_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning: ")]


def unseen_warnings(stderr: str, path, column: str) -> list[str]:
    """The warning lines about values of `column` in `path` outside the training categories."""
    return [w for w in warnings_of(stderr) if f"{path}: column {column!r}:" in w
            and "outside the training categories" in w]


def predict_frame(run_dir: Path, csv: Path, *extra) -> tuple[pd.DataFrame, str]:
    result = invoke("predict", run_dir, csv, *extra)
    assert result.exit_code == 0, (result.stderr, result.exception)
    return pd.read_csv(StringIO(result.stdout), keep_default_na=False), result.stderr


def as_object(values: pd.Series) -> np.ndarray:
    return values.astype(object).where(values.notna(), np.nan).to_numpy().reshape(-1, 1)


# ---- 2. fills and categories come from the training split only ------------------------------

def test_fills_scaler_and_categories_ignore_the_validation_file(tmp_path):
    rows = blank(shop_rows(40), "age", {3, 9, 15})
    train_csv = write_csv(tmp_path / "train.csv", SHOP, rows)
    val_rows = shop_rows(10, seed=1)
    for i in (0, 4):                 # a city training never saw
        val_rows[i][2] = "Zurich"
    for i in (1, 2, 5):              # ages that would drag the median and the mean
        val_rows[i][3] = 1_000_000
    val_rows[7][3] = ""
    val_csv = write_csv(tmp_path / "val.csv", SHOP, val_rows)
    config = classifier(tmp_path, train_csv, validation=str(val_csv))
    result, run_dir = train(config, tmp_path / "runs")

    frame, val = pd.read_csv(train_csv), pd.read_csv(val_csv)
    prep = prep_of(run_dir)
    imputer = SimpleImputer(strategy="median").fit(frame[["age"]])
    both = SimpleImputer(strategy="median").fit(pd.concat([frame, val])[["age"]])
    assert imputer.statistics_[0] != both.statistics_[0]  # the files can tell them apart
    assert column_of(prep, "age")["fill"] == imputer.statistics_[0]
    scaler = StandardScaler().fit(imputer.transform(frame[["age"]]))
    j = Preprocessing.from_dict(prep).inputs.index("age")
    assert prep["offset"][j] == pytest.approx(scaler.mean_[0])
    assert prep["spread"][j] == pytest.approx(scaler.scale_[0])
    encoder = OneHotEncoder(handle_unknown="ignore").fit(as_object(frame["city"]))
    assert column_of(prep, "city")["categories"] == encoder.categories_[0].tolist()
    assert "Zurich" not in column_of(prep, "city")["categories"]
    # the validation file's unseen city: one warning naming the file, the column, an example
    lines = unseen_warnings(result.stderr, val_csv, "city")
    assert len(lines) == 1 and "2 cells" in lines[0] and "'Zurich'" in lines[0], result.stderr
    assert not unseen_warnings(result.stderr, train_csv, "city")
    # eval on that file says it again
    result = invoke("eval", run_dir, val_csv)
    assert result.exit_code == 0, result.stderr
    assert len(unseen_warnings(result.stderr, val_csv, "city")) == 1


# ---- 3. unseen and blank categories at predict --------------------------------------------

@pytest.fixture(scope="module")
def shop_run(tmp_path_factory):
    """A run on 120 shop rows whose city column has blanks and is folded to 3 categories."""
    folder = tmp_path_factory.mktemp("shop")
    rows = blank(shop_rows(120), "city", {2, 30, 77})
    train_csv = write_csv(folder / "train.csv", SHOP, rows)
    config = classifier(folder, train_csv, columns={
        "city": {"type": "categorical", "max_categories": 3}})
    result, run_dir = train(config, folder / "runs")
    return folder, train_csv, run_dir, result.stderr


def test_folding_is_stored_as_scikit_learn_folds(shop_run):
    _, train_csv, run_dir, _ = shop_run
    frame = pd.read_csv(train_csv)
    city = column_of(prep_of(run_dir), "city")
    filled = frame["city"].dropna()  # the blank is a category of its own, outside the count
    encoder = OneHotEncoder(max_categories=3, handle_unknown="infrequent_if_exist").fit(
        as_object(filled))
    infrequent = encoder.infrequent_categories_[0].tolist()
    assert city["categories"] == [c for c in encoder.categories_[0] if c not in infrequent]
    assert len(city["folded"]) == len(infrequent) == 3
    assert city["blank"] and city["other"]


def test_unseen_and_blank_categories_at_predict(shop_run):
    folder, _, run_dir, _ = shop_run
    city = column_of(prep_of(run_dir), "city")
    folded = next(c for c in CITIES if c not in city["categories"])
    kept = city["categories"][0]
    base = shop_rows(1, seed=5)[0]

    def rows(cities):
        return [base[:2] + [c] + base[3:5] for c in cities]

    csv = write_csv(folder / "new.csv", SHOP[:-1],
                    rows([kept, "Atlantis", "", "Atlantis", "Zurich", ""]))
    out, stderr = predict_frame(run_dir, csv)
    assert len(out) == 6
    # the blanks are the blank category (training had blanks): only the three cells never seen
    # in training are counted, in one line with an example
    lines = unseen_warnings(stderr, csv, "city")
    assert len(lines) == 1 and "3 cells" in lines[0] and "'Atlantis'" in lines[0], stderr
    probabilities = out[["prob_no", "prob_yes"]].to_numpy()
    np.testing.assert_array_equal(probabilities[1], probabilities[4])  # both "other"
    np.testing.assert_array_equal(probabilities[2], probabilities[5])  # both blank
    assert not np.array_equal(probabilities[0], probabilities[1])
    # an unseen value reads as "other", as a city folded in training does
    other, _ = predict_frame(run_dir, write_csv(folder / "folded.csv", SHOP[:-1],
                                                rows([folded, "Atlantis"])))
    np.testing.assert_array_equal(other.loc[0, ["prob_no", "prob_yes"]].to_numpy(),
                                  probabilities[1])
    np.testing.assert_array_equal(other.loc[1, ["prob_no", "prob_yes"]].to_numpy(),
                                  probabilities[1])


def test_without_blanks_in_training_a_blank_at_predict_is_counted(tmp_path):
    train_csv = write_csv(tmp_path / "train.csv", SHOP, shop_rows(60))
    _, run_dir = train(classifier(tmp_path, train_csv), tmp_path / "runs")
    base = shop_rows(1, seed=5)[0]
    rows = [base[:2] + [c] + base[3:5] for c in ["Oslo", "Atlantis", "", "Zurich"]]
    csv = write_csv(tmp_path / "new.csv", SHOP[:-1], rows)
    out, stderr = predict_frame(run_dir, csv)
    lines = unseen_warnings(stderr, csv, "city")
    assert len(lines) == 1 and "3 cells" in lines[0] and "'Atlantis'" in lines[0], stderr
    # one-hot without an "other" column: unseen and blank are both no category at all
    probabilities = out[["prob_no", "prob_yes"]].to_numpy()
    np.testing.assert_array_equal(probabilities[1], probabilities[2])
    np.testing.assert_array_equal(probabilities[1], probabilities[3])
    assert not np.array_equal(probabilities[0], probabilities[1])


def test_folded_training_values_are_not_announced_as_unseen(shop_run):
    folder, train_csv, run_dir, stderr = shop_run
    assert unseen_warnings(stderr, train_csv, "city") == []
    city = column_of(prep_of(run_dir), "city")
    folded = [c for c in CITIES if c not in city["categories"]]
    base = shop_rows(1, seed=5)[0]
    csv = write_csv(folder / "seen.csv", SHOP[:-1], [base[:2] + [c] + base[3:5] for c in folded])
    _, stderr = predict_frame(run_dir, csv)
    assert unseen_warnings(stderr, csv, "city") == []


def embeddings_supported() -> bool:
    from nnctl.nn.model import Sequential
    return "embeddings" in inspect.signature(Sequential.from_specs).parameters


@pytest.mark.skipif(not embeddings_supported(),
                    reason="nnctl.nn.model.Sequential.from_specs has no `embeddings` parameter yet: "
                    "the embedding engine has not landed")
def test_embedding_table_in_the_checkpoint_has_a_row_per_category_blank_and_other(tmp_path):
    rows = blank(shop_rows(100), "city", {4, 40})
    train_csv = write_csv(tmp_path / "train.csv", SHOP, rows)
    config = classifier(tmp_path, train_csv, columns={
        "city": {"type": "categorical", "encoding": "embedding", "dim": 3, "min_frequency": 20}})
    _, run_dir = train(config, tmp_path / "runs")
    frame = pd.read_csv(train_csv)
    counts = frame["city"].value_counts()
    kept = sorted(counts[counts >= 20].index)
    assert 0 < len(kept) < len(CITIES)  # something kept and something folded
    city = column_of(prep_of(run_dir), "city")
    assert city["categories"] == kept and city["blank"] and city["other"]
    for stem in ("best", "last"):
        arrays = npz(run_dir / "checkpoints" / f"{stem}.npz")
        assert arrays["inputs.city.E"].shape == (len(kept) + 2, 3)
    # predict reads an unseen city as "other", like a folded one
    folded = next(c for c in CITIES if c not in kept)
    base = shop_rows(1, seed=5)[0]
    csv = write_csv(tmp_path / "new.csv", SHOP[:-1],
                    [base[:2] + [c] + base[3:5] for c in (folded, "Atlantis", "")])
    out, stderr = predict_frame(run_dir, csv)
    assert unseen_warnings(stderr, csv, "city"), stderr
    probabilities = out[["prob_no", "prob_yes"]].to_numpy()
    np.testing.assert_array_equal(probabilities[0], probabilities[1])


# ---- 4. bad declarations and bad cells: exit 2, exact messages ---------------------------

def train_errors(config: Path, runs: Path) -> list[str]:
    lines = assert_user_error(invoke("train", config, "--runs-dir", runs, "--quiet"))
    assert all(line.startswith("error: ") for line in lines), lines
    assert run_dirs(runs) == []
    return [line[len("error: "):] for line in lines]


def config_text(tmp_path: Path, columns: str, extra: str = "") -> Path:
    """A regression config on data.csv whose data.columns block starts on line 6."""
    return write_text(tmp_path / "bad.yaml", f"""\
data:
  train: data.csv
  validation: null
  target: y
  columns:
{columns}{extra}model: {{layers: [{{type: dense, units: 1}}]}}
loss: mse
training: {{epochs: 1}}
""")


def test_declaring_an_absent_column_is_a_config_error(tmp_path):
    csv = write_text(tmp_path / "data.csv", "age,city,y\n1,a,1\n2,b,2\n3,a,3\n")
    config = config_text(tmp_path, "    age: numeric\n    ages: numeric\n    town: categorical\n")
    assert train_errors(config, tmp_path / "runs") == [
        f"{config}:7 data.columns.ages: no column 'ages' in {csv} (columns: age, city, y)",
        f"{config}:8 data.columns.town: no column 'town' in {csv} (columns: age, city, y)"]


def test_declared_numeric_text_gives_one_line_per_column(tmp_path):
    lines = ["a,b,c,y"] + [f"{i},{i},{i},{i}" for i in range(8)]
    lines[3] = "x1,2,oops,2"
    lines[5] = "x2,4,4,4"
    lines[6] = "x3,5,5,5"
    lines[7] = "x4,6,6,6"
    csv = write_text(tmp_path / "data.csv", "\n".join(lines) + "\n")
    config = config_text(tmp_path, "    a: numeric\n    c: numeric\n")
    assert train_errors(config, tmp_path / "runs") == [
        f"{csv}:4 column 'a': 4 cells are not numbers (e.g. 'x1') (lines 4, 6, 7, ...); "
        + NUMERIC_HINT.format(c="a"),
        f"{csv}:4 column 'c': not a number ('oops'); " + NUMERIC_HINT.format(c="c")]


def test_missing_error_refuses_blanks_at_train_and_at_predict(tmp_path):
    csv = write_text(tmp_path / "data.csv", "a,b,y\n1,,1\n2,5,2\n,,3\n4,6,4\n")
    config = config_text(tmp_path, "    a: numeric\n", extra="  missing: error\n")
    assert train_errors(config, tmp_path / "runs") == [
        f"{csv}:4 column 'a': missing value; {MISSING_HINT}",
        f"{csv}:2 column 'b': 2 cells are blank (lines 2, 4); {MISSING_HINT}"]
    write_text(csv, "a,b,y\n1,3,1\n2,5,2\n3,4,3\n4,6,4\n")
    _, run_dir = train(config, tmp_path / "runs")
    new = write_text(tmp_path / "new.csv", "a,b\n1,2\n2,\n")
    assert assert_user_error(invoke("predict", run_dir, new)) == [
        f"error: {new}:3 column 'b': missing value; {MISSING_HINT}"]


def test_encoding_settings_on_a_column_that_is_not_categorical(tmp_path):
    write_text(tmp_path / "data.csv", "age,city,y\n1,a,1\n2,b,2\n3,a,3\n")
    config = config_text(tmp_path, "    age: {type: numeric, encoding: embedding, dim: 4}\n"
                                   "    city: {type: categorical, dim: 3}\n")
    assert train_errors(config, tmp_path / "runs") == [
        f"{config}:6 data.columns.age: encoding, dim: only for categorical columns (this one "
        "is numeric)",
        f"{config}:7 data.columns.city: dim: only with encoding: embedding"]
    result = invoke("validate", config)
    assert result.exit_code == 2 and "data.columns.age: encoding, dim" in result.stderr


def test_declared_binary_with_three_values(tmp_path):
    csv = write_text(tmp_path / "data.csv", "size,y\nS,1\nM,2\nL,3\nM,4\n")
    config = config_text(tmp_path, "    size: binary\n")
    assert train_errors(config, tmp_path / "runs") == [
        f"{csv}:1 column 'size': declared binary but has 3 distinct values ('L', 'M', 'S'); "
        "declare it categorical"]


# ---- 5. files that differ from training ----------------------------------------------------

@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    """A run on shop rows with blanks in age and city; the id column is ignored."""
    folder = tmp_path_factory.mktemp("plain")
    rows = blank(blank(shop_rows(80), "age", {1, 8}), "city", {5})
    train_csv = write_csv(folder / "train.csv", SHOP, rows)
    result, run_dir = train(classifier(folder, train_csv), folder / "runs")
    assert "'id'" in "".join(warnings_of(result.stderr))  # an id: not read, and said so
    test = write_csv(folder / "test.csv", SHOP, blank(shop_rows(30, seed=9), "age", {0, 3}))
    return folder, run_dir, test


def test_reordered_and_extra_columns_give_identical_results(plain_run):
    folder, run_dir, test = plain_run
    frame = pd.read_csv(test)
    shuffled = frame[["bought", "member", "age", "id", "city", "joined"]].copy()
    shuffled.insert(2, "comment", "free text " + frame["id"])
    shuffled["score"] = np.arange(len(frame))
    other = folder / "reordered.csv"
    shuffled.to_csv(other, index=False)
    original = invoke("predict", run_dir, test, "--keep", "id")
    moved = invoke("predict", run_dir, other, "--keep", "id")
    assert original.exit_code == moved.exit_code == 0, (original.stderr, moved.stderr)
    assert moved.stdout == original.stdout
    first, second = eval_json(run_dir, test), eval_json(run_dir, other)
    first.pop("data"), second.pop("data")
    assert first == second


def test_a_missing_feature_column_is_named(plain_run):
    folder, run_dir, test = plain_run
    frame = pd.read_csv(test).drop(columns=["age"])
    csv = folder / "no_age.csv"
    frame.to_csv(csv, index=False)
    columns = ", ".join(frame.columns)
    message = f"error: {csv}:1 feature column 'age': not in the file (columns: {columns})"
    assert assert_user_error(invoke("predict", run_dir, csv)) == [message]
    assert assert_user_error(invoke("eval", run_dir, csv)) == [message]


def test_an_ignored_column_need_not_be_present(plain_run):
    folder, run_dir, test = plain_run
    frame = pd.read_csv(test)
    csv = folder / "no_id.csv"
    frame.drop(columns=["id", "bought"]).to_csv(csv, index=False)
    with_id, _ = predict_frame(run_dir, test)
    without_id, _ = predict_frame(run_dir, csv)
    pd.testing.assert_frame_equal(with_id, without_id)


def test_a_category_reads_the_same_however_pandas_types_the_file(tmp_path):
    """Declared-categorical integer codes with blanks in training (pandas reads floats) and
    without blanks at predict (pandas reads integers) are the same categories."""
    lines = ["grade,x,y"] + [f"{'' if i % 9 == 4 else 1 + i % 3},{i % 5},{'ab'[i % 2]}"
                             for i in range(30)]
    write_text(tmp_path / "data.csv", "\n".join(lines) + "\n")
    config = classifier(tmp_path, tmp_path / "data.csv", target="y",
                        columns={"grade": "categorical"})
    _, run_dir = train(config, tmp_path / "runs")
    assert column_of(prep_of(run_dir), "grade")["categories"] == ["1", "2", "3"]
    ints = write_text(tmp_path / "ints.csv", "grade,x\n1,0\n2,1\n3,2\n")
    floats = write_text(tmp_path / "floats.csv", "grade,x\n1.0,0\n2.0,1\n3.0,2\n,3\n")
    a, warned_a = predict_frame(run_dir, ints)
    b, warned_b = predict_frame(run_dir, floats)
    assert warnings_of(warned_a) == warnings_of(warned_b) == []
    pd.testing.assert_frame_equal(a, b.iloc[:3])


def test_codes_with_leading_zeros_keep_their_category_at_predict(tmp_path):
    zips = ["02134", "10001", "ABC"]
    lines = ["zip,x,y"] + [f"{zips[i % 3]},{i % 7},{'ab'[i % 2]}" for i in range(30)]
    write_text(tmp_path / "data.csv", "\n".join(lines) + "\n")
    config = classifier(tmp_path, tmp_path / "data.csv", target="y",
                        columns={"zip": "categorical"})
    _, run_dir = train(config, tmp_path / "runs")
    _, stderr = predict_frame(run_dir, write_text(tmp_path / "new.csv", "zip,x\n02134,1\n"))
    assert warnings_of(stderr) == []


def test_true_false_column_with_a_blank_at_predict(tmp_path):
    """Trained without blanks (pandas: a bool column), predicted with one (pandas: Python
    bools in an object column): the same two values."""
    lines = ["flag,x,y"] + [f"{['False', 'True'][i % 2]},{i % 5},{'ab'[(i // 2) % 2]}"
                            for i in range(30)]
    write_text(tmp_path / "data.csv", "\n".join(lines) + "\n")
    config = classifier(tmp_path, tmp_path / "data.csv", target="y")
    _, run_dir = train(config, tmp_path / "runs")
    complete, _ = predict_frame(run_dir, write_text(tmp_path / "a.csv",
                                                    "flag,x\nTrue,1\nFalse,2\n"))
    with_blank, stderr = predict_frame(run_dir, write_text(tmp_path / "b.csv",
                                                           "flag,x\nTrue,1\nFalse,2\n,3\n"))
    assert warnings_of(stderr) == []
    pd.testing.assert_frame_equal(complete, with_blank.iloc[:2])


# ---- 6. class weights ----------------------------------------------------------------------

def weighted_run(tmp_path: Path, class_weight, loss: str = "categorical_crossentropy",
                 label=lambda i: "yes" if i % 5 == 0 else "no", blanks=(3, 11)):
    rows = [[i % 7, (i * 3) % 11, "" if i in blanks else label(i)] for i in range(60)]
    csv = write_csv(tmp_path / "w.csv", ["a", "b", "y"], rows)
    config = classifier(tmp_path, csv, target="y", classes=2 if loss != "binary_crossentropy"
                        else 1, training={"class_weight": class_weight})
    if loss == "binary_crossentropy":
        text = config.read_text().replace("activation: softmax", "activation: sigmoid")
        config.write_text(text.replace("categorical_crossentropy", "binary_crossentropy"))
    _, run_dir = train(config, tmp_path / "runs", "--json")
    labels = np.array([label(i) for i in range(60) if i not in blanks])
    return summary(run_dir), labels, csv


@pytest.mark.parametrize("loss", ["categorical_crossentropy", "binary_crossentropy"])
def test_balanced_class_weights_are_scikit_learns(tmp_path, loss):
    report, labels, csv = weighted_run(tmp_path, "balanced", loss)
    classes = np.unique(labels)
    weights = compute_class_weight("balanced", classes=classes, y=labels)
    assert report["class_weight"] == pytest.approx(dict(zip(classes.tolist(), weights)))
    assert report["blank_targets"] == {str(csv): 2}  # the blank-target rows are not counted


def test_class_weight_mapping_is_scikit_learns(tmp_path):
    report, labels, _ = weighted_run(tmp_path, {"yes": 3.5})
    classes = np.unique(labels)
    weights = compute_class_weight({"yes": 3.5}, classes=classes, y=labels)
    assert report["class_weight"] == dict(zip(classes.tolist(), weights.tolist()))


def test_class_weight_mapping_with_integer_labels(tmp_path):
    report, labels, _ = weighted_run(tmp_path, {1: 4}, label=lambda i: int(i % 5 == 0))
    weights = compute_class_weight({1: 4.0}, classes=np.array([0, 1]), y=labels)
    assert report["class_weight"] == {"0": weights[0], "1": weights[1]}


def class_weight_config(tmp_path: Path, weights: str) -> tuple[Path, Path]:
    """yes/no labels (4 no, 8 yes) and a handwritten config whose class_weight mapping starts
    on line 7."""
    csv = write_csv(tmp_path / "w.csv", ["a", "y"], [[i, "yes" if i % 3 else "no"]
                                                      for i in range(12)])
    return csv, write_text(tmp_path / "w.yaml", f"""\
data: {{train: {csv}, validation: null, target: y}}
model: {{layers: [{{type: dense, units: 2, activation: softmax}}]}}
loss: categorical_crossentropy
training:
  epochs: 1
  class_weight:
{weights}""")


def test_an_unknown_label_in_the_class_weights_is_a_config_error(tmp_path):
    _, config = class_weight_config(tmp_path, "    'yes': 2.0\n    maybe: 3.0\n    nope: 1.0\n")
    assert train_errors(config, tmp_path / "runs") == [
        f"{config}:8 training.class_weight.maybe: no class 'maybe' in 'y' (classes: no, yes)",
        f"{config}:9 training.class_weight.nope: no class 'nope' in 'y' (classes: no, yes)"]


def test_an_unknown_integer_label_in_the_class_weights_names_its_line(tmp_path):
    _, config = class_weight_config(tmp_path, "    'yes': 2.0\n    'no': 1.0\n    2: 1.0\n")
    assert train_errors(config, tmp_path / "runs") == [
        f"{config}:9 training.class_weight.2: no class '2' in 'y' (classes: no, yes)"]


def test_unquoted_yes_no_labels_in_the_class_weights(tmp_path):
    _, config = class_weight_config(tmp_path, "    yes: 3.0\n    no: 0.5\n")
    result, run_dir = train(config, tmp_path / "runs")
    assert summary(run_dir)["class_weight"] == {"no": 0.5, "yes": 3.0}


# ---- 7. customers.csv -> customers_new.csv --------------------------------------------------

CUSTOMERS, CUSTOMERS_NEW = DATASETS / "customers.csv", DATASETS / "customers_new.csv"
CUSTOMER_TYPES = {  # what the file holds (datasets/README.md) -> the type it should get
    "customer_id": "ignore", "signup_date": "datetime", "plan": "categorical",
    "region": "categorical", "city": "categorical", "age": "numeric",
    "monthly_spend": "numeric", "support_calls": "numeric", "paperless_billing": "binary",
    "has_partner": "binary",
}


def customers_config(folder: Path, train_csv: Path = CUSTOMERS) -> Path:
    """A starter config: every column detected, a small network, two epochs."""
    return write_config(folder / "customers.yaml", {
        "seed": 0,
        "data": {"train": str(train_csv), "validation": 0.2, "target": "churned"},
        "model": {"layers": [{"type": "dense", "units": 16, "activation": "relu"},
                             {"type": "dense", "units": 2, "activation": "softmax"}]},
        "loss": "categorical_crossentropy",
        "optimizer": {"type": "adam", "lr": 0.01},
        "training": {"epochs": 2, "batch_size": 64},
    })


@pytest.fixture(scope="module")
def customers_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("customers")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COLUMNS", "200")  # the table is cut to the terminal's width
        result, run_dir = train(customers_config(folder), folder / "runs", quiet=False)
    return folder, run_dir, result


def test_customers_predict_keeps_row_order_and_training_labels(customers_run):
    folder, run_dir, _ = customers_run
    out_csv = folder / "predictions.csv"
    result = invoke("predict", run_dir, CUSTOMERS_NEW, "-o", out_csv, "--keep", "customer_id")
    assert result.exit_code == 0, (result.stderr, result.exception)
    new = pd.read_csv(CUSTOMERS_NEW)
    out = pd.read_csv(out_csv, keep_default_na=False)
    labels = sorted(pd.read_csv(CUSTOMERS)["churned"].unique())
    assert labels == ["no", "yes"]
    assert list(out.columns) == ["customer_id", "pred_churned", "prob_no", "prob_yes"]
    assert out["customer_id"].tolist() == new["customer_id"].tolist()
    probabilities = out[["prob_no", "prob_yes"]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert out["pred_churned"].tolist() == [labels[k] for k in probabilities.argmax(axis=1)]

    # unseen regions and cities: one warning line each, counted against the stored categories
    prep = prep_of(run_dir)
    region = unseen_warnings(result.stderr, CUSTOMERS_NEW, "region")
    assert len(region) == 1 and "3 cells" in region[0] and "'Islands'" in region[0], region
    assert column_of(prep, "region")["blank"]  # so the new file's blank regions are not unseen
    stored = set(column_of(prep, "city")["categories"])
    unseen = new.loc[~new["city"].isin(stored) & new["city"].notna(), "city"]
    assert len(unseen) >= 10  # README: ten rows name a city the export never has
    city = unseen_warnings(result.stderr, CUSTOMERS_NEW, "city")
    assert len(city) == 1 and f"{len(unseen)} cells" in city[0], city
    assert any(f"'{name}'" in city[0] for name in unseen), city


def test_customers_eval_leaves_out_blank_targets(customers_run, tmp_path):
    _, run_dir, _ = customers_run
    frame = pd.read_csv(CUSTOMERS, keep_default_na=False, dtype=str)
    blanked = [4, 10, 11, 500, 1999]
    frame.loc[blanked, "churned"] = ""
    csv = tmp_path / "customers_some_blank.csv"
    frame.to_csv(csv, index=False)
    result = invoke("eval", run_dir, csv, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["rows"] == len(frame) - len(blanked)
    assert report["blank_targets"] == len(blanked)
    table = invoke("eval", run_dir, csv)
    assert table.stdout.splitlines()[0] == \
        f"{csv}: {len(frame) - len(blanked)} rows (5 without a target left out), checkpoint best"
    assert f"warning: {csv}: 5 rows without a target value left out (lines 6, 12, 13, ...)" \
        in result.stderr.splitlines()
    assert sum(map(sum, report["confusion_matrix"])) == len(frame) - len(blanked)


def test_customers_training_counts_blank_targets(tmp_path):
    frame = pd.read_csv(CUSTOMERS, keep_default_na=False, dtype=str)
    frame.loc[[0, 7, 1500], "churned"] = ""
    csv = tmp_path / "customers.csv"
    frame.to_csv(csv, index=False)
    config = customers_config(tmp_path, csv)
    text = config.read_text().replace("epochs: 2", "epochs: 1")
    config.write_text(text)
    _, run_dir = train(config, tmp_path / "runs", "--json")
    report = summary(run_dir)
    assert report["blank_targets"] == {str(csv): 3}
    assert report["rows"]["train"] + report["rows"]["validation"] == len(frame) - 3


# ---- 8. the column table -------------------------------------------------------------------

def table_rows(stderr: str) -> dict[str, list[str]]:
    """The column table's rows on stderr, by column name: [column, type, detail]."""
    lines = stderr.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:3] ==
                 ["column", "type", "detail"])
    rows = {}
    for line in lines[start + 1:]:
        if line.startswith(("warning:", "epoch ")) or not line.strip():
            break
        cells = line.split(maxsplit=2)
        rows[cells[0]] = cells
    return rows


def test_train_prints_a_table_with_a_line_per_column(customers_run):
    _, run_dir, result = customers_run
    rows = table_rows(result.stderr)
    assert {name: cells[1] for name, cells in rows.items()} == CUSTOMER_TYPES
    assert all(len(cells) == 3 for cells in rows.values()), rows  # every row has its detail
    assert "customer_id" in "".join(warnings_of(result.stderr))  # and the ignored one is named
    assert "column" not in result.stdout and result.stdout.strip() == str(run_dir)


def test_runs_show_prints_the_same_table_from_the_run(customers_run):
    _, run_dir, result = customers_run
    shown = invoke("runs", "show", run_dir)
    assert shown.exit_code == 0, shown.stderr
    columns = shown.stdout.split("\ncolumns\n")[1].split("\n\n")[0]
    assert table_rows(columns) == table_rows(result.stderr)
    assert (run_dir / "train.log").read_text().count("customer_id") >= 1
    rows = summary(run_dir)["rows"]
    assert f"rows       {rows['train']} train, {rows['validation']} validation" in shown.stdout


def test_quiet_train_prints_no_table(tmp_path):
    train_csv = write_csv(tmp_path / "train.csv", SHOP, shop_rows(40))
    result, run_dir = train(classifier(tmp_path, train_csv), tmp_path / "runs")
    assert not any(line.split()[:3] == ["column", "type", "detail"]
                   for line in result.stderr.splitlines()), result.stderr
    loud = invoke("train", classifier(tmp_path, train_csv), "--runs-dir", tmp_path / "loud")
    assert loud.exit_code == 0, loud.stderr
    assert set(table_rows(loud.stderr)) == set(SHOP[:-1])
