"""Feature columns on small DataFrames: the type detection rules one by one (each way a rule can
go), declared types overriding them, and the preprocessing fitted on the training split checked
against scikit-learn and pandas as references (SimpleImputer, MissingIndicator, OneHotEncoder,
StandardScaler, pandas' date parts)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from nnctl.config import load_config
from nnctl.data import detect_type, load_training_data
from nnctl.data.columns import BLANK_SLOT, OTHER_SLOT
from nnctl.errors import DataError
from cli_helpers import write_config

NAN = np.nan
NUMERIC_HINT = "declare it `{c}: categorical` in data.columns to read its values as categories"


def series(values, name: str = "c", dtype=None) -> pd.Series:
    return pd.Series(values, name=name, dtype=dtype)


def ids(n: int, blanks: int = 0) -> list:
    return [f"ID-{i:05d}" for i in range(n)] + [None] * blanks


# ---- detection, rule by rule -------------------------------------------------------------------

DETECTION = {
    # pandas' unnamed index column: ignored by its name, whatever it holds
    "unnamed index": (series([0, 1, 2, 3], "Unnamed: 0"), "ignore"),
    "unnamed text column": (series(["a", "b", "a", "b"], "Unnamed: 4"), "ignore"),
    "same numbers, named": (series([0, 1, 2, 3], "index"), "numeric"),
    # every cell blank
    "all blank (float)": (series([NAN] * 5), "ignore"),
    "all blank (object)": (series([None] * 5, dtype=object), "ignore"),
    "one value, rest blank": (series([NAN] * 4 + [2.0]), "numeric"),
    # booleans
    "bool": (series([True, False, True]), "binary"),
    "bool, one value": (series([True, True]), "binary"),
    # numbers: small integers and 0/1 integers stay numeric
    "floats": (series([0.5, 1.5, NAN]), "numeric"),
    "small integers": (series([1, 2, 3, 1, 2]), "numeric"),
    "0/1 integers": (series([0, 1, 1, 0]), "numeric"),
    "constant number": (series([3, 3, 3]), "numeric"),
    # text that is mostly numbers (share of distinct values)
    "text, 4 of 5 distinct values numbers": (series(["1", "2", "3", "4", "x", "1"]), "numeric"),
    "text, all numbers": (series(["1.5", "2", "3e2"]), "numeric"),
    "text, 3 of 4 distinct values numbers": (series(["1", "2", "3", "x", "x"]), "categorical"),
    # exactly two text values
    "yes/no": (series(["yes", "no", "yes"]), "binary"),
    "Y/N": (series(["Y", "N", None]), "binary"),
    "M/F": (series(["M", "F", "M"]), "binary"),
    "three text values": (series(["red", "green", "blue", "red"]), "categorical"),
    # dates
    "ISO dates": (series(["2020-01-05", "2021-03-04", "2019-12-31"]), "datetime"),
    "ISO date-times": (series(["2020-01-05 10:00:00", "2021-03-04 11:30:00",
                               "2019-12-31 00:00:00"]), "datetime"),
    "US dates": (series(["12/31/2020", "01/15/2021", "07/04/2019", None]), "datetime"),
    "day-first dates": (series(["31/12/2020", "15/01/2021", "04/07/2019"]), "datetime"),
    "dates mixed with words": (series(["2020-01-05", "2021-03-04", "soon"]), "categorical"),
    # ids, names, free text: distinct in at least half of at least 20 rows
    "20 ids in 20 rows": (series(ids(20)), "ignore"),
    "19 ids in 19 rows": (series(ids(19)), "categorical"),
    "20 ids in 20 filled rows of 50": (series(ids(20, blanks=30)), "ignore"),
    "20 values over 40 rows": (series([f"v{i % 20}" for i in range(40)]), "ignore"),
    "20 values over 41 rows": (series([f"v{i % 20}" for i in range(41)]), "categorical"),
    "20 values over 1000 rows": (series([f"v{i % 20}" for i in range(1000)]), "categorical"),
    # one text value
    "constant text": (series(["a"] * 5), "ignore"),
    "one text value and blanks": (series(["a", None, "a"]), "categorical"),
}


@pytest.mark.parametrize("case", list(DETECTION))
def test_detection_rules(case):
    values, expected = DETECTION[case]
    kind, reason = detect_type(values)
    assert kind == expected, (case, kind, reason)
    assert reason  # every decision is explained to the user


@pytest.mark.parametrize("values, fragment", [
    (series([0, 1], "Unnamed: 0"), "unnamed index column"),
    (series([None, None], dtype=object), "every cell is blank"),
    (series([NAN, NAN, NAN]), "every cell is blank"),
    (series([NAN, NAN, 2.5]), "numbers"),  # the first cell blank, a later one filled
    (series(["a"] * 4), "'a'"),
    (series(ids(25)), "25 distinct values in 25 rows"),
    (series(["2020-01-05", "2021-03-04", "2019-12-31"]), "%Y-%m-%d"),
    (series(["12/31/2020", "01/15/2021", "07/04/2019"]), "%m/%d/%Y"),
])
def test_detection_reasons_name_what_was_seen(values, fragment):
    assert fragment in detect_type(values)[1]


def test_true_false_with_a_blank_is_binary(tmp_path):
    frame = pd.DataFrame({"flag": [True, False, None, True], "y": [1.0, 2.0, 3.0, 4.0]})
    path = tmp_path / "f.csv"
    frame.to_csv(path, index=False)
    read = pd.read_csv(path)
    assert detect_type(read["flag"])[0] == "binary"


def test_day_first_dates_whose_first_value_is_ambiguous_are_dates():
    assert detect_type(series(["01/02/2020", "13/01/2021", "25/12/2019"]))[0] == "datetime"


# ---- fitting through load_training_data on small frames -------------------------------------

def fit(tmp_path, train: pd.DataFrame, validation: pd.DataFrame | None = None,
        fraction: float | None = None, **data):
    """load_training_data for a regression on `train` (target y), with `validation` as a CSV
    or `fraction` held out; float64 so the references compare exactly."""
    train_csv = tmp_path / "train.csv"
    train.to_csv(train_csv, index=False)
    spec = {"train": str(train_csv), "validation": fraction, "target": "y", **data}
    if validation is not None:
        spec["validation"] = str(tmp_path / "val.csv")
        validation.to_csv(spec["validation"], index=False)
    config = load_config(write_config(tmp_path / "columns.yaml", {
        "seed": 0, "dtype": "float64", "data": spec,
        "model": {"layers": [{"type": "dense", "units": 1}]}, "loss": "mse"}))
    return load_training_data(config.data, config.task, np.random.default_rng(0),
                              np.dtype(config.dtype))


def block(data, names: list[str], split: str = "train") -> np.ndarray:
    """The input columns `names` of a split's x."""
    inputs = data.preprocessing.inputs
    return getattr(data, split).x[:, [inputs.index(n) for n in names]]


def stored(data, name: str) -> dict:
    """A column's stored (checkpoint) form."""
    return next(c for c in data.preprocessing.to_dict()["columns"] if c["name"] == name)


def as_object(frame: pd.DataFrame) -> np.ndarray:
    """Text cells as an object array, blanks as np.nan (what scikit-learn's encoders take)."""
    return frame.astype(object).where(frame.notna(), np.nan).to_numpy()


# ---- numeric: fills, indicators, scaling ------------------------------------------------------

NUMERIC_TRAIN = pd.DataFrame({
    "a": [1.0, 2.0, NAN, 4.0, 10.0, NAN, 7.0, 3.0, 2.5],
    "b": [5.0, 6.0, 7.0, 8.0, 9.0, 100.0, 6.5, 7.5, 1.0],  # no blank in training
    "y": np.arange(9.0),
})
NUMERIC_VAL = pd.DataFrame({  # blanks in both columns and extremes that would move any statistic
    "a": [NAN, 1e6, -1e6, 5.0, 1e6],
    "b": [NAN, 1e6, 1e6, 1e6, 2.0],
    "y": np.arange(5.0),
})
IMPUTERS = {"median": dict(strategy="median"), "mean": dict(strategy="mean"),
            "zero": dict(strategy="constant", fill_value=0.0)}


@pytest.mark.parametrize("missing", list(IMPUTERS))
def test_numeric_fill_indicator_and_scaling_match_scikit_learn(tmp_path, missing):
    data = fit(tmp_path, NUMERIC_TRAIN, NUMERIC_VAL, missing=missing)
    features = ["a", "b"]
    imputer = SimpleImputer(**IMPUTERS[missing]).fit(NUMERIC_TRAIN[features])
    indicator = MissingIndicator(error_on_new=False).fit(NUMERIC_TRAIN[features])
    scaler = StandardScaler().fit(imputer.transform(NUMERIC_TRAIN[features]))
    # an indicator for the column that had blanks in training only, after its value
    assert indicator.features_.tolist() == [0]
    assert data.preprocessing.inputs == ["a", "a is missing", "b"]
    assert [stored(data, c)["fill"] for c in features] == \
        pytest.approx(imputer.statistics_.astype(float).tolist())
    for split, frame in (("train", NUMERIC_TRAIN), ("validation", NUMERIC_VAL)):
        values = scaler.transform(imputer.transform(frame[features]))
        np.testing.assert_allclose(block(data, features, split), values, rtol=1e-12, atol=1e-12)
        # the indicator is 0/1 and not scaled
        np.testing.assert_array_equal(block(data, ["a is missing"], split),
                                      indicator.transform(frame[features]).astype(float))


def test_numeric_fills_ignore_the_validation_rows(tmp_path):
    data = fit(tmp_path, NUMERIC_TRAIN, NUMERIC_VAL)
    both = pd.concat([NUMERIC_TRAIN, NUMERIC_VAL])
    train_median = SimpleImputer(strategy="median").fit(NUMERIC_TRAIN[["a"]]).statistics_[0]
    both_median = SimpleImputer(strategy="median").fit(both[["a"]]).statistics_[0]
    assert train_median != both_median  # the data can tell the two apart
    assert stored(data, "a")["fill"] == train_median


def test_without_missing_indicators_blanks_are_filled_only(tmp_path):
    data = fit(tmp_path, NUMERIC_TRAIN, NUMERIC_VAL, missing_indicators=False)
    assert data.preprocessing.inputs == ["a", "b"]
    imputer = SimpleImputer(strategy="median").fit(NUMERIC_TRAIN[["a", "b"]])
    scaler = StandardScaler().fit(imputer.transform(NUMERIC_TRAIN[["a", "b"]]))
    np.testing.assert_allclose(data.validation.x,
                               scaler.transform(imputer.transform(NUMERIC_VAL[["a", "b"]])),
                               rtol=1e-12)


def test_missing_error_names_the_blank_cells_of_each_file(tmp_path):
    with pytest.raises(DataError) as error:
        fit(tmp_path, NUMERIC_TRAIN, NUMERIC_VAL, missing="error")
    assert error.value.problems == [
        f"{tmp_path / 'train.csv'}:4 column 'a': 2 cells are blank (lines 4, 7); set "
        "data.missing to median, mean or zero to fill them"]
    complete = NUMERIC_TRAIN.fillna(1.0)
    with pytest.raises(DataError) as error:
        fit(tmp_path, complete, NUMERIC_VAL, missing="error")
    val = tmp_path / "val.csv"
    assert error.value.problems == [
        f"{val}:2 column 'a': missing value; set data.missing to median, mean or zero to fill "
        "them",
        f"{val}:2 column 'b': missing value; set data.missing to median, mean or zero to fill "
        "them"]


def test_text_mostly_numbers_reports_the_cells_that_are_not(tmp_path):
    frame = pd.DataFrame({"n": ["1", "2", "3", "4", "oops", "5", "oops", "6"],
                          "y": np.arange(8.0)})
    assert detect_type(frame["n"])[0] == "numeric"
    with pytest.raises(DataError) as error:
        fit(tmp_path, frame)
    assert error.value.problems == [
        f"{tmp_path / 'train.csv'}:6 column 'n': 2 cells are not numbers (e.g. 'oops') "
        "(lines 6, 8); " + NUMERIC_HINT.format(c="n")]


def test_a_fraction_is_fitted_on_its_training_rows(tmp_path):
    """With validation: 0.25 the fill, the scaler and the categories come from the 30 training
    rows; the rows are found again from a numeric row number in the inputs."""
    rng = np.random.default_rng(3)
    n = 40
    a = rng.permutation(np.r_[np.arange(1.0, 31.0), [1e6] * 10])
    a[[0, 7, 13, 22, 31]] = NAN
    city = np.array([f"c{i % 7}" for i in range(n)], dtype=object)
    city[[5, 17]] = None
    frame = pd.DataFrame({"row": np.arange(n), "a": a, "city": city, "y": np.arange(float(n))})
    data = fit(tmp_path, frame, fraction=0.25)
    prep = data.preprocessing
    j = prep.inputs.index("row")
    rows = np.rint(data.train.x[:, j] * prep.spread[j] + prep.offset[j]).astype(int)
    assert len(rows) == 30 and len(set(rows)) == 30
    train = frame.iloc[np.sort(rows)]
    median = SimpleImputer(strategy="median").fit(train[["a"]]).statistics_[0]
    assert median != SimpleImputer(strategy="median").fit(frame[["a"]]).statistics_[0]
    assert stored(data, "a")["fill"] == median
    scaler = StandardScaler().fit(SimpleImputer(strategy="median").fit_transform(train[["a"]]))
    assert prep.offset[prep.inputs.index("a")] == pytest.approx(scaler.mean_[0])
    assert prep.spread[prep.inputs.index("a")] == pytest.approx(scaler.scale_[0])
    encoder = OneHotEncoder(handle_unknown="ignore").fit(as_object(train[["city"]]))
    expected = [BLANK_SLOT if c != c else c for c in encoder.categories_[0]]
    assert stored(data, "city")["categories"] + [BLANK_SLOT] * stored(data, "city")["blank"] \
        == expected


# ---- binary -----------------------------------------------------------------------------------

BINARY_PAIRS = {  # column -> (its two values, the one read as 1)
    "yn": (["yes", "no"], "yes"),
    "YN_caps": (["No", "Yes"], "Yes"),
    "letters": (["N", "Y"], "Y"),
    "onoff": (["off", "on"], "on"),
    "tf": (["F", "T"], "T"),
    "sex": (["M", "F"], "M"),             # no yes-like word: the later in sorted order
    "ab": (["b", "a"], "b"),
    "level": (["low", "high"], "low"),
    "true_or_unknown": (["unknown", "true"], "true"),  # a yes-like word is 1 whatever beside it
    "unknown_or_no": (["no", "unknown"], "unknown"),   # else the value beside a no-like word
}


def test_two_values_which_one_is_1(tmp_path):
    n = 12
    pattern = [0, 1, 1, 0, 1, 0, 0, 0, 1, 1, 0, 1]
    frame = pd.DataFrame({name: [pair[k] for k in pattern] for name, (pair, _) in
                          BINARY_PAIRS.items()})
    frame["y"] = np.arange(float(n))
    data = fit(tmp_path, frame)
    for name, (_, positive) in BINARY_PAIRS.items():
        assert stored(data, name)["type"] == "binary", name
        expected = (frame[name] == positive).to_numpy(dtype=float)
        np.testing.assert_array_equal(block(data, [name])[:, 0], expected, err_msg=name)


def test_binary_blanks_read_as_the_training_share_with_an_indicator(tmp_path):
    train = pd.DataFrame({"partner": ["yes", "no", None, "yes", "no", "no", None, "no"],
                          "y": np.arange(8.0)})
    val = pd.DataFrame({"partner": [None, "yes", "no"], "y": [0.0, 1.0, 2.0]})
    data = fit(tmp_path, train, val)
    assert data.preprocessing.inputs == ["partner", "partner is missing"]
    share = (train["partner"].dropna() == "yes").mean()
    indicator = MissingIndicator().fit(as_object(train[["partner"]]))
    for split, frame in (("train", train), ("validation", val)):
        expected = np.where(frame["partner"].isna(), share, frame["partner"] == "yes")
        np.testing.assert_allclose(block(data, ["partner"], split)[:, 0], expected)
        np.testing.assert_array_equal(block(data, ["partner is missing"], split),
                                      indicator.transform(as_object(frame[["partner"]])))


def test_declared_binary_with_three_values_is_refused(tmp_path):
    frame = pd.DataFrame({"size": ["S", "M", "L", "M"], "y": np.arange(4.0)})
    with pytest.raises(DataError) as error:
        fit(tmp_path, frame, columns={"size": "binary"})
    assert error.value.problems == [
        f"{tmp_path / 'train.csv'}:1 column 'size': declared binary but has 3 distinct values "
        "('L', 'M', 'S'); declare it categorical"]


def test_declared_binary_true_false_with_blanks(tmp_path):
    frame = pd.DataFrame({"flag": [True, False, None, True], "y": np.arange(4.0)})
    data = fit(tmp_path, frame, columns={"flag": "binary"})
    np.testing.assert_allclose(block(data, ["flag"])[:, 0], [1.0, 0.0, 2 / 3, 1.0])


# ---- categorical: one-hot, blanks, unseen values, folding ------------------------------------

CITY_TRAIN = pd.DataFrame({
    "city": ["Oslo", "Bergen", "Tromso", "Bergen", None, "Oslo", "Bergen", "Alta", None, "Oslo"],
    "y": np.arange(10.0),
})
CITY_VAL = pd.DataFrame({"city": ["Bergen", "Narvik", None, "Alta", "Narvik", "Moss"],
                         "y": np.arange(6.0)})


def slot_names(name: str, categories) -> list[str]:
    return [f"{name}={BLANK_SLOT if c != c else c}" for c in categories]


def test_one_hot_matches_scikit_learn_with_blank_as_a_category(tmp_path):
    data = fit(tmp_path, CITY_TRAIN, CITY_VAL)
    encoder = OneHotEncoder(handle_unknown="ignore").fit(as_object(CITY_TRAIN[["city"]]))
    names = slot_names("city", encoder.categories_[0])
    # sorted categories, then the blank: scikit-learn's order
    assert data.preprocessing.inputs == names
    for split, frame in (("train", CITY_TRAIN), ("validation", CITY_VAL)):
        np.testing.assert_array_equal(
            block(data, names, split),
            encoder.transform(as_object(frame[["city"]])).toarray())
    # the validation values outside the training categories: counted, with an example
    unseen = [n for n in data.notes if "'city'" in n]
    assert len(unseen) == 1 and str(tmp_path / "val.csv") in unseen[0], data.notes
    assert "3 cells" in unseen[0] and "'Narvik'" in unseen[0], unseen


def test_a_blank_never_seen_in_training_is_no_category(tmp_path):
    train = CITY_TRAIN.dropna()
    data = fit(tmp_path, train, CITY_VAL)
    encoder = OneHotEncoder(handle_unknown="ignore").fit(as_object(train[["city"]]))
    names = slot_names("city", encoder.categories_[0])
    assert data.preprocessing.inputs == names  # no blank slot
    np.testing.assert_array_equal(block(data, names, "validation"),
                                  encoder.transform(as_object(CITY_VAL[["city"]])).toarray())
    note = next(n for n in data.notes if "'city'" in n)
    assert "4 cells" in note, note  # Narvik twice, Moss, and the blank


FOLD_TRAIN = pd.DataFrame({
    "c": ["a"] * 6 + ["b"] * 5 + ["c"] * 4 + ["d"] * 2 + ["e"],  # no ties
    "y": np.arange(18.0),
})
FOLD_VAL = pd.DataFrame({"c": ["a", "d", "e", "zzz", "c", "b"], "y": np.arange(6.0)})


@pytest.mark.parametrize("options", [
    {"max_categories": 3},
    {"max_categories": 1},
    {"min_frequency": 3},
    {"min_frequency": 5, "max_categories": 3},
    {"min_frequency": 2, "max_categories": 4},
])
def test_folding_matches_scikit_learn_infrequent_categories(tmp_path, options):
    data = fit(tmp_path, FOLD_TRAIN, FOLD_VAL,
               columns={"c": {"type": "categorical", **options}})
    encoder = OneHotEncoder(handle_unknown="infrequent_if_exist", **options).fit(
        as_object(FOLD_TRAIN[["c"]]))
    infrequent = list(encoder.infrequent_categories_[0])
    frequent = [c for c in encoder.categories_[0] if c not in infrequent]
    column = stored(data, "c")
    assert column["categories"] == frequent
    assert len(column["folded"]) == len(infrequent)
    names = [f"c={v}" for v in frequent] + [f"c={OTHER_SLOT}"]
    assert data.preprocessing.inputs == names
    # rare training values and the validation's unseen one read as "other"
    for split, frame in (("train", FOLD_TRAIN), ("validation", FOLD_VAL)):
        np.testing.assert_array_equal(block(data, names, split),
                                      encoder.transform(as_object(frame[["c"]])).toarray())


def test_max_categories_as_large_as_the_categories_folds_nothing(tmp_path):
    data = fit(tmp_path, FOLD_TRAIN, columns={"c": {"type": "categorical", "max_categories": 5}})
    column = stored(data, "c")
    assert column["categories"] == ["a", "b", "c", "d", "e"]
    assert column["folded"] == [] and not column["other"]


def test_embedding_codes_index_categories_then_blank_then_other(tmp_path):
    train = pd.DataFrame({"c": ["b", "a", None, "b", "a", "c", "b", "x"], "y": np.arange(8.0)})
    val = pd.DataFrame({"c": ["a", None, "zzz", "x", "c"], "y": np.arange(5.0)})
    data = fit(tmp_path, train, val, columns={
        "c": {"type": "categorical", "encoding": "embedding", "dim": 2, "min_frequency": 2}})
    column = stored(data, "c")
    assert column["categories"] == ["a", "b"] and column["blank"] and column["other"]
    prep = data.preprocessing
    assert prep.embeddings == [{"column": "c", "categories": 4, "dim": 2, "l1": 0.0, "l2": 0.0}]
    assert prep.inputs == []  # an embedded column has no float inputs, only its code column
    np.testing.assert_array_equal(data.train.x[:, 0], [1, 0, 2, 1, 0, 3, 1, 3])
    np.testing.assert_array_equal(data.validation.x[:, 0], [0, 2, 3, 3, 3])


# ---- datetime ---------------------------------------------------------------------------------

def test_date_parts_match_pandas(tmp_path):
    stamps = ["2020-01-05 08:30:00", "2021-03-04 12:00:00", None, "2019-12-31 23:15:00",
              "2020-07-14 06:45:00", "2022-02-28 18:00:00", "2020-02-29 00:00:00"]
    train = pd.DataFrame({"when": stamps, "y": np.arange(7.0)})
    val = pd.DataFrame({"when": ["2030-06-01 09:00:00", None], "y": [0.0, 1.0]})
    data = fit(tmp_path, train, val)
    assert stored(data, "when")["type"] == "datetime"

    def parts(frame):
        t = pd.to_datetime(frame["when"])
        return pd.DataFrame({
            "year": t.dt.year, "month": t.dt.month, "day": t.dt.day,
            "weekday": t.dt.day_of_week, "day_of_year": t.dt.day_of_year,
            "time_of_day": t.dt.hour + t.dt.minute / 60,
            "elapsed_days": (t - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1),
        }).astype(float)

    reference = parts(train)
    names = [f"when {p}" for p in reference.columns]
    assert data.preprocessing.inputs == names + ["when is missing"]
    imputer = SimpleImputer(strategy="median").fit(reference)
    scaler = StandardScaler().fit(imputer.transform(reference))
    for split, frame in (("train", train), ("validation", val)):
        np.testing.assert_allclose(block(data, names, split),
                                   scaler.transform(imputer.transform(parts(frame))),
                                   rtol=1e-9, atol=1e-9)
        np.testing.assert_array_equal(block(data, ["when is missing"], split)[:, 0],
                                      frame["when"].isna().to_numpy(dtype=float))


def test_date_parts_constant_in_training_are_dropped(tmp_path):
    # one year, days only (no time), every date a Monday
    days = pd.date_range("2021-01-04", periods=6, freq="7D")
    frame = pd.DataFrame({"d": days.strftime("%Y-%m-%d"), "y": np.arange(6.0)})
    data = fit(tmp_path, frame)
    kept = [name for name, values in {
        "year": days.year, "month": days.month, "day": days.day, "weekday": days.day_of_week,
        "day_of_year": days.day_of_year, "time_of_day": days.hour}.items()
        if len(set(values)) > 1]
    assert kept == ["month", "day", "day_of_year"]
    assert data.preprocessing.inputs == [f"d {p}" for p in kept + ["elapsed_days"]]


def test_month_first_dates_are_read_as_detected(tmp_path):
    days = pd.to_datetime(["2020-12-31", "2021-01-15", "2019-07-04", "2022-03-03"])
    frame = pd.DataFrame({"d": days.strftime("%m/%d/%Y"), "y": np.arange(4.0)})
    assert detect_type(frame["d"]) == ("datetime", "dates (%m/%d/%Y)")
    data = fit(tmp_path, frame)
    year = StandardScaler().fit_transform(days.year.to_numpy(dtype=float).reshape(-1, 1))
    np.testing.assert_allclose(block(data, ["d year"]), year)


# ---- declared types override detection --------------------------------------------------------

def test_small_integers_declared_categorical_are_one_hot(tmp_path):
    train = pd.DataFrame({"grade": [1, 2, 10, 2, 1, 1, 10, 2], "y": np.arange(8.0)})
    val = pd.DataFrame({"grade": [10, 3, 1], "y": [0.0, 1.0, 2.0]})
    assert detect_type(train["grade"])[0] == "numeric"
    data = fit(tmp_path, train, val, columns={"grade": "categorical"})
    # categories are read as text (1 and 1.0 are one category)
    text = train[["grade"]].astype(str)
    encoder = OneHotEncoder(handle_unknown="ignore").fit(text)
    names = slot_names("grade", encoder.categories_[0])
    assert data.preprocessing.inputs == names
    np.testing.assert_array_equal(block(data, names, "validation"),
                                  encoder.transform(val[["grade"]].astype(str)).toarray())


def test_declarations_read_an_ignored_column_and_drop_a_numeric_one(tmp_path):
    frame = pd.DataFrame({"Unnamed: 0": np.arange(6), "code": ids(6), "x": np.arange(6.0) ** 2,
                          "z": np.linspace(0, 1, 6), "y": np.arange(6.0)})
    data = fit(tmp_path, frame, columns={"Unnamed: 0": "numeric", "x": "ignore"})
    prep = data.preprocessing
    assert prep.features == ["Unnamed: 0", "code", "z"]
    assert stored(data, "Unnamed: 0")["type"] == "numeric"
    assert stored(data, "code")["type"] == "categorical"  # 6 ids in 6 rows: too few to ignore
    assert set(prep.ignored) == {"x"}
    # only undeclared columns left out are announced
    assert not any("not read" in note for note in data.notes), data.notes


def test_undeclared_columns_left_out_are_named_in_one_note(tmp_path):
    frame = pd.DataFrame({"Unnamed: 0": np.arange(25), "customer": ids(25),
                          "empty": [NAN] * 25, "note": ["same"] * 25,
                          "x": np.arange(25.0), "y": np.arange(25.0)})
    data = fit(tmp_path, frame)
    assert data.preprocessing.features == ["x"]
    assert list(data.preprocessing.ignored) == ["Unnamed: 0", "customer", "empty", "note"]
    notes = [n for n in data.notes if "not read" in n]
    assert len(notes) == 1
    for name in ("'Unnamed: 0'", "'customer'", "'empty'", "'note'"):
        assert name in notes[0]


def test_every_feature_ignored_is_a_data_error(tmp_path):
    frame = pd.DataFrame({"customer": ids(25), "y": np.arange(25.0)})
    with pytest.raises(DataError) as error:
        fit(tmp_path, frame)
    assert error.value.problems == [
        f"{tmp_path / 'train.csv'}:1: every feature column is ignored (customer); declare a "
        "type in data.columns"]
