"""`nnctl export`: the ONNX file run by onnxruntime gives what `nnctl predict` gives, on every
example config and the categorical example with blank cells and unseen categories; the date
arithmetic equals pandas'; what ONNX cannot express is refused with exit 2. The reference is
always onnxruntime running the exported file, never the graph builder."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from nnctl.export import BLANK_TEXT, OPSET  # noqa: E402
from cli_helpers import CONFIGS, DATASETS, assert_user_error, invoke, train, write_csv  # noqa: E402

# every training config (sweep files, with a top-level `config:`, aside)
EXAMPLES = sorted(p.stem for p in CONFIGS.glob("*.yaml")
                  if "config" not in (yaml.safe_load(p.read_text()) or {}))
EVAL_FILE = {"customers": "customers_new.csv", "diabetes": "regression.csv",
             "digits": "digits_test.csv", "iris": "iris.csv", "moons": "moons.csv",
             "multi_output": "regression_multi.csv", "sine_next": "sine_next.csv",
             "waveforms_dense": "waveforms_test.csv", "waveforms_rnn": "waveforms_test.csv",
             "xor": "xor.csv"}


def feeds(session, frame: pd.DataFrame, text: pd.DataFrame | None = None) -> dict:
    """One (N, 1) array per input: doubles from `frame` (NaN blank); strings from `text`, the
    file's cells as written, or else from `frame` with "" for a blank."""
    out = {}
    for spec in session.get_inputs():
        column = frame[spec.name]
        if spec.type == "tensor(string)":
            cells = text[spec.name] if text is not None else \
                column.astype(object).where(column.notna(), "").map(str)
            out[spec.name] = cells.to_numpy(dtype=object).reshape(-1, 1)
        else:
            out[spec.name] = column.to_numpy(dtype=np.float64).reshape(-1, 1)
    return out


def run_onnx(path: Path, csv: Path) -> dict:
    """The exported model on a CSV file: numbers as pandas reads them, text as written."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    text = pd.read_csv(csv, dtype=str, keep_default_na=False)
    return dict(zip(names, session.run(None, feeds(session, pd.read_csv(csv), text))))


def predicted(run_dir: Path, csv: Path) -> pd.DataFrame:
    """`nnctl predict RUN CSV`, parsed, with every cell as the text the CLI wrote."""
    result = invoke("predict", run_dir, csv)
    assert result.exit_code == 0, (result.stderr, result.exception)
    return pd.read_csv(io.StringIO(result.stdout), dtype=str, keep_default_na=False)


def full_precision(run_dir: Path, csv: Path) -> pd.DataFrame:
    import nnctl

    return nnctl.load(run_dir).predict(csv)


def assert_same_predictions(run_dir: Path, model: Path, csv: Path) -> None:
    """onnxruntime's outputs against nnctl predict's: labels exactly (as written), numbers
    within 1e-5 (relative above 1: float32 holds ~7 digits)."""
    outputs = run_onnx(model, csv)
    cli, exact = predicted(run_dir, csv), full_precision(run_dir, csv)
    assert list(cli.columns) == list(exact.columns)
    preds = [c for c in cli.columns if c.startswith("pred_")]
    probs = [c for c in cli.columns if c.startswith("prob_")]
    if probs:
        assert set(outputs) == {"label", "probabilities"}
        np.testing.assert_allclose(outputs["probabilities"], exact[probs].to_numpy(np.float64),
                                   rtol=0, atol=1e-5)
        labels = outputs["label"].reshape(len(cli), -1)
        assert labels.astype(str).tolist() == cli[preds].to_numpy().tolist()
    else:
        assert set(outputs) == {"prediction"}
        np.testing.assert_allclose(outputs["prediction"], exact[preds].to_numpy(np.float64),
                                   rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """name -> (run directory, exported model), each example trained for two epochs."""
    root = tmp_path_factory.mktemp("export")
    made = {}

    def get(name: str):
        if name not in made:
            _, run_dir = train(CONFIGS / f"{name}.yaml", root / "runs", "--set",
                               "training.epochs=2")
            result = invoke("export", run_dir)
            assert result.exit_code == 0, (result.stderr, result.exception)
            made[name] = run_dir, Path(result.stdout.strip())
        return made[name]

    return get


@pytest.mark.parametrize("name", EXAMPLES)
def test_onnxruntime_predicts_what_nnctl_predicts(exported, name):
    run_dir, model = exported(name)
    assert model == run_dir / "model.onnx"
    checked = onnx.load(model)
    onnx.checker.check_model(checked, full_check=True)
    assert {(o.domain, o.version) for o in checked.opset_import} >= {("", OPSET)}
    features = pd.read_csv(DATASETS / EVAL_FILE[name], nrows=1).columns
    assert all(i.name in features for i in checked.graph.input)  # one input per raw column
    assert_same_predictions(run_dir, model, DATASETS / EVAL_FILE[name])


def test_blank_cells_unseen_categories_and_odd_values(exported, tmp_path):
    """The categorical example on rows with a blank in every kind of column (numeric, yes/no,
    category, embedded category, date), text pandas reads as blank ('NA', 'null'), values
    training never saw (a plan, a city, a region, a yes/no answer), and dates before 1970."""
    run_dir, model = exported("customers")
    frame = pd.read_csv(DATASETS / "customers_new.csv", dtype=str, keep_default_na=False)
    rng = np.random.default_rng(0)
    odd = {"age": ["", "NA"], "monthly_spend": ["", "null"], "support_calls": [""],
           "paperless_billing": ["", "maybe", "N/A"], "has_partner": ["", "YES"],
           "plan": ["", "platinum", "NA"], "region": ["", "Atlantis", "NA"],
           "city": ["", "Nowhere", "null"], "signup_date": ["", "1969-12-31", "1900-02-28",
                                                            "2024-02-29", "NA"]}
    for column, values in odd.items():
        rows = rng.choice(len(frame), size=60, replace=False)
        frame.loc[rows, column] = rng.choice(values, size=60)
    csv = tmp_path / "odd.csv"
    frame.to_csv(csv, index=False)
    assert_same_predictions(run_dir, model, csv)


def test_blank_text_is_what_pandas_reads_as_blank(tmp_path):
    """Every cell the graph reads as blank, pandas.read_csv reads as NaN (and nnctl with it),
    and the list misses none of pandas' own."""
    path = write_csv(tmp_path / "blanks.csv", ["text", "n"],
                     [[value, i] for i, value in enumerate(BLANK_TEXT)] + [["not blank", 99]])
    read = pd.read_csv(path, dtype={"text": str})
    assert read["text"].isna().tolist() == [True] * len(BLANK_TEXT) + [False]
    try:
        from pandas._libs.parsers import STR_NA_VALUES
    except ImportError:  # private in pandas: check what is there to check
        return
    assert set(BLANK_TEXT) == set(STR_NA_VALUES)


def with_scaled_inputs(model_path: Path) -> onnx.ModelProto:
    """The exported model with one more output: the model's input array after the scaler, in
    float64 (before the cast to the network's dtype)."""
    model = onnx.load(model_path)
    scaled = [out for node in model.graph.node for out in node.output if out.startswith("scaled")]
    assert len(scaled) == 1
    model.graph.output.append(
        onnx.helper.make_tensor_value_info(scaled[0], onnx.TensorProto.DOUBLE, None))
    return model


@pytest.mark.parametrize("format", ["%Y-%m-%d", "%d/%m/%Y %H:%M:%S", "%Y-%m-%dT%H:%M"])
def test_date_parts_equal_pandas(tmp_path, format):
    """Random dates from 1901 to 2099 (leap days, year ends, before 1970) in three formats:
    the graph's scaled date inputs equal those nnctl computes with pandas, to 1e-12."""
    import nnctl

    rng = np.random.default_rng(7)
    start = datetime(1901, 1, 1)
    stamps = [start + timedelta(minutes=int(m)) for m in rng.integers(0, 199 * 365 * 1440, 400)]
    stamps += [datetime(2000, 2, 29, 23, 59), datetime(1904, 12, 31), datetime(1970, 1, 1),
               datetime(1969, 12, 31, 12, 30), datetime(2099, 3, 1)]
    rows = [[s.strftime(format), float(i % 2)] for i, s in enumerate(stamps)]
    rows[3][0] = ""  # a blank: filled with the medians, and an indicator
    train_csv = write_csv(tmp_path / "dates.csv", ["when", "y"], rows)
    config = tmp_path / "dates.yaml"
    config.write_text("data: {train: dates.csv, target: y, scale: standard, "
                      "columns: {when: datetime}}\n"
                      "model: {layers: [{type: dense, units: 2, activation: softmax}]}\n"
                      "loss: categorical_crossentropy\ntraining: {epochs: 1}\n")
    run = nnctl.train(config, runs_dir=tmp_path / "runs")
    model = run.export()
    assert run.preprocessing.columns[0].format == format
    assert len(run.preprocessing.columns[0].parts) >= 6
    cut = with_scaled_inputs(model)
    session = ort.InferenceSession(cut.SerializeToString(), providers=["CPUExecutionProvider"])
    frame = pd.read_csv(train_csv)
    got = session.run(None, feeds(session, frame))[-1]
    want = run.preprocessing.encode_inputs(frame, train_csv, np.float64)[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_a_date_format_onnx_cannot_read_is_refused(tmp_path):
    rows = [[f"{d} {m} 2021", float(d % 2)] for d in range(1, 29) for m in ("Jan", "Feb")]
    write_csv(tmp_path / "months.csv", ["when", "y"], rows)
    config = tmp_path / "months.yaml"
    config.write_text("data: {train: months.csv, target: y, columns: {when: datetime}}\n"
                      "model: {layers: [{type: dense, units: 2, activation: softmax}]}\n"
                      "loss: categorical_crossentropy\ntraining: {epochs: 1}\n")
    _, run_dir = train(config, tmp_path / "runs")
    assert_user_error(invoke("export", run_dir),
                      "column 'when' (datetime, format '%d %b %Y')", "not %b")
    assert not (run_dir / "model.onnx").exists()


def test_output_paths_and_checkpoints(exported, tmp_path):
    run_dir, _ = exported("iris")
    result = invoke("export", run_dir, "--checkpoint", "last")
    assert result.exit_code == 0, result.stderr
    assert Path(result.stdout.strip()) == run_dir / "model-last.onnx"
    target = tmp_path / "iris.onnx"
    assert invoke("export", run_dir, "-o", target).stdout.strip() == str(target)
    assert onnx.load(target).graph.output[0].name == "label"
    assert_user_error(invoke("export", run_dir, "-o", tmp_path / "no" / "such" / "x.onnx"),
                      "x.onnx: cannot write")
    assert_user_error(invoke("export", tmp_path), "not a run directory")


def test_several_yes_no_targets(tmp_path):
    """Binary cross-entropy on two 0/1 targets: `label` holds each target's 0/1 and
    `probabilities` each one's probability of 1, as `nnctl predict` writes them."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 3))
    rows = [[*map(float, r), int(r[0] > 0), int(r[1] + r[2] > 0)] for r in x]
    csv = write_csv(tmp_path / "two.csv", ["a", "b", "c", "p", "q"], rows)
    config = tmp_path / "two.yaml"
    config.write_text("data: {train: two.csv, target: [p, q]}\n"
                      "model: {layers: [{type: dense, units: 8, activation: tanh},\n"
                      "                 {type: dense, units: 2, activation: sigmoid}]}\n"
                      "loss: binary_crossentropy\ntraining: {epochs: 3}\n")
    _, run_dir = train(config, tmp_path / "runs")
    assert invoke("export", run_dir).exit_code == 0
    outputs = run_onnx(run_dir / "model.onnx", csv)
    cli, exact = predicted(run_dir, csv), full_precision(run_dir, csv)
    assert outputs["label"].astype(str).tolist() == cli[["pred_p", "pred_q"]].to_numpy().tolist()
    np.testing.assert_allclose(outputs["probabilities"], exact[["prob_p", "prob_q"]], atol=1e-5)
