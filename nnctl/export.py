"""ONNX export: one file that holds a run's whole inference, raw columns in, labels out.

The graph reads one (N, 1) input per feature column, named after it: double for numeric
columns (NaN is blank), string for the others ("" or any text pandas reads as blank, such as
"NA", is blank). It then does what nnctl.data does to a CSV, in the same order and precision:
each column's encoder (fills, "is missing" inputs, yes/no as 1/0, date parts, one-hot or
embedding codes, unseen categories as "other"), the scaler in float64, the model's dtype, the
layers (dropout is the identity at inference), the fixed output scale, and the outputs `label`
and `probabilities` (classification) or `prediction` (regression).

Built with onnx.helper from standard operators (opset OPSET) and ai.onnx.ml's LabelEncoder,
checked with onnx.checker. onnx is imported only here, and only when a model is exported.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .data.columns import BINARY, CATEGORICAL, DATETIME, NUMERIC
from .data.preprocessing import Preprocessing
from .errors import UserError
from .nn.layers import RNN, Dense, Dropout
from .nn.model import Sequential

if TYPE_CHECKING:
    import onnx

OPSET = 20      # StringSplit, which reads dates, is in opset 20 (onnxruntime >= 1.17)
ML_OPSET = 3    # LabelEncoder with string keys and int64 values
OUTPUTS = ("label", "probabilities", "prediction")

# The cells pandas.read_csv reads as blank by default: the graph reads them as blank too, so
# raw CSV text gives what `nnctl predict` gives (tests check the list against pandas).
BLANK_TEXT = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
              "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")

ACTIVATIONS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "linear": "Identity",
               "softmax": "Softmax"}
DATE_FIELDS = {"%Y": "year", "%m": "month", "%d": "day", "%H": "hour", "%M": "minute",
               "%S": "second"}


def export_run(run, path: Path) -> Path:
    """Write the ONNX model of a loaded nnctl.api.Run to `path` (atomically) and return it."""
    from .checkpoint import atomic_write

    onnx = _onnx()
    model = build_onnx(run.preprocessing, run.model, run.config.dtype)
    model.doc_string = f"nnctl run {run.path.name}, checkpoint {run.checkpoint}"
    onnx.helper.set_model_props(model, {"run": str(run.path), "checkpoint": run.checkpoint,
                                        "features": ",".join(run.preprocessing.features)})
    onnx.checker.check_model(model, full_check=True)
    path = Path(path)
    try:
        atomic_write(path, lambda f: f.write(model.SerializeToString()))
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return path


def _onnx():
    try:
        import onnx
    except ImportError:
        raise UserError("nnctl export needs the onnx package: pip install 'nnctl[onnx]'") from None
    return onnx


def build_onnx(prep: Preprocessing, model: Sequential, dtype: str = "float32") -> "onnx.ModelProto":
    """The ONNX model of a fitted preprocessing and a network; UserError for what ONNX cannot
    express (each problem named)."""
    helper = _onnx().helper
    refused = unsupported(prep, model)
    if refused:
        raise UserError(refused)
    from ._version import __version__

    graph = Graph(prep.features, np.dtype(dtype))
    x = graph.network_input(prep, model)
    out = graph.layers(x, model, prep.sequence[0] if prep.sequence else 0)
    outputs = graph.outputs(out, prep, model)
    used = {name for node in graph.nodes for name in node.input}
    made = helper.make_graph(graph.nodes, "nnctl", graph.inputs, outputs,
                             [t for t in graph.initializers if t.name in used])
    return helper.make_model(
        made, producer_name="nnctl", producer_version=__version__,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)])


def unsupported(prep: Preprocessing, model: Sequential) -> list[str]:
    """What the graph cannot express, one problem per column or layer."""
    problems = []
    for name in OUTPUTS:
        if name in prep.features:
            problems.append(f"column {name!r}: the ONNX model's outputs are named label, "
                            "probabilities and prediction; rename this input column")
    for column in prep.columns:
        if column.type == DATETIME:
            why = _date_format_problem(column.format)
            if why:
                problems.append(f"column {column.name!r} (datetime, format {column.format!r}): "
                                f"{why}")
        elif column.type not in (NUMERIC, BINARY, CATEGORICAL):
            problems.append(f"column {column.name!r}: type {column.type!r} has no ONNX form")
    for i, layer in enumerate(model.layers):
        if not isinstance(layer, (Dense, Dropout, RNN)):
            problems.append(f"model.layers.{i}: a {type(layer).__name__} layer has no ONNX form")
        elif not isinstance(layer, Dropout) and layer.activation.name not in ACTIVATIONS:
            problems.append(f"model.layers.{i}: activation {layer.activation.name!r} has no "
                            "ONNX form")
    return problems


def _date_format_problem(format: str | None) -> str:
    """Why dates in `format` cannot be read by the graph ('' if they can): it reads numbers
    (%Y %m %d %H %M %S) between fixed separators."""
    if not format or format == "mixed":
        return ("its values were read one by one, in no single format; ONNX export needs one "
                "format of %Y %m %d %H %M %S (declare the column's values in one format, or "
                "ignore it)")
    tokens = re.split(r"(%.)", format)
    directives = tokens[1::2]
    unknown = [d for d in directives if d not in DATE_FIELDS]
    if unknown:
        return (f"ONNX export reads %Y %m %d %H %M %S only (not {', '.join(unknown)}); "
                "declare the column categorical or ignore it")
    separators = tokens[2:-1:2]
    if tokens[0] or tokens[-1] or not all(separators):
        return "ONNX export needs a separator between every two fields, and none around them"
    return ""


class Graph:
    """An ONNX graph being built: nodes, initializers and names that never collide with the
    inputs (the CSV's column names) or the outputs."""

    def __init__(self, features: list[str], dtype: np.dtype):
        from onnx import TensorProto, helper

        self.helper, self.T = helper, TensorProto
        self.dtype = dtype
        self.onnx_dtype = helper.np_dtype_to_tensor_dtype(dtype)
        self.nodes: list = []
        self.initializers: list = []
        self.inputs: list = []
        self._taken = set(features) | set(OUTPUTS)
        self._count = 0

    # ---- building blocks ------------------------------------------------------------------

    def name(self, hint: str) -> str:
        while True:
            self._count += 1
            name = f"{hint}_{self._count}"
            if name not in self._taken:
                self._taken.add(name)
                return name

    def const(self, value: Any, hint: str = "const", dtype: Any = None) -> str:
        from onnx import numpy_helper

        array = np.asarray(value, dtype=dtype)
        name = self.name(hint)
        if array.dtype.kind in "OU":
            tensor = self.helper.make_tensor(name, self.T.STRING, array.shape,
                                             [s.encode("utf-8") for s in array.ravel()])
        else:
            tensor = numpy_helper.from_array(array, name)
        self.initializers.append(tensor)
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None,
           outputs: int = 1, domain: str = "", **attributes) -> Any:
        names = [self.name(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(self.helper.make_node(op_type, inputs, names, domain=domain,
                                                **attributes))
        return names[0] if outputs == 1 else names

    def output(self, name: str, value: str) -> str:
        """Give a value its public name (an Identity node, so the name is exactly `name`)."""
        self.nodes.append(self.helper.make_node("Identity", [value], [name]))
        return name

    def column(self, name: str, text: bool) -> str:
        kind = self.T.STRING if text else self.T.DOUBLE
        self.inputs.append(self.helper.make_tensor_value_info(name, kind, ["N", 1]))
        return name

    def codes(self, text: str, mapping: dict[str, int], default: int) -> str:
        """int64 (N, 1) code of each cell: mapping[cell], else `default`."""
        return self.op("LabelEncoder", [text], "codes", domain="ai.onnx.ml",
                       keys_strings=list(mapping), values_int64s=list(mapping.values()),
                       default_int64=default)

    def lookup(self, codes: str, table: list[float]) -> str:
        """table[code] as double (N, 1)."""
        return self.op("Gather", [self.const(np.asarray(table, dtype=np.float64), "table"), codes])

    def is_code(self, codes: str, value: int) -> str:
        return self.op("Cast", [self.op("Equal", [codes, self.const(np.int64(value))])],
                       to=self.T.DOUBLE)

    # ---- preprocessing --------------------------------------------------------------------

    def network_input(self, prep: Preprocessing, model: Sequential) -> str:
        """The model's input, from the raw columns: float inputs scaled, cast and shaped, then
        the embedded columns' vectors."""
        blocks, codes = [], []  # double (N, k) blocks in input order; embedded columns' codes
        for column in prep.columns:
            if column.type == NUMERIC:
                blocks += self.numeric(column)
            elif column.type == BINARY:
                blocks += self.binary(column)
            elif column.type == DATETIME:
                blocks += self.datetime(column)
            elif column.encoding == "embedding":
                codes.append(self.categorical_codes(column))
            else:
                blocks.append(self.one_hot(column))
        parts = []
        if blocks:
            x = self.op("Concat", blocks, "inputs", axis=1) if len(blocks) > 1 else blocks[0]
            if prep.scale != "none":
                x = self.op("Sub", [x, self.const(np.asarray(prep.offset, dtype=np.float64))])
                x = self.op("Div", [x, self.const(np.asarray(prep.spread, dtype=np.float64))],
                            "scaled")
            x = self.op("Cast", [x], to=self.onnx_dtype)
            if prep.sequence:
                x = self.op("Reshape", [x, self.const(np.array([-1, *prep.sequence], np.int64))])
            parts.append(x)
        for column, code in zip(prep.embedded, codes):
            table = self.const(model.inputs.tables[column.name].E.value, f"{column.name}.E")
            flat = self.op("Squeeze", [code, self.const(np.array([1], np.int64))])
            parts.append(self.op("Gather", [table, flat], "embedded"))
        return self.op("Concat", parts, "x", axis=1) if len(parts) > 1 else parts[0]

    def blank(self, text: str) -> str:
        """1.0 where a text cell is blank, else 0.0: double (N, 1)."""
        return self.lookup(self.codes(text, dict.fromkeys(BLANK_TEXT, 1), 0), [0.0, 1.0])

    def numeric(self, column) -> list[str]:
        value = self.column(column.name, text=False)
        missing = self.op("IsNaN", [value])
        filled = self.op("Where", [missing, self.const(np.float64(column.fill)), value], "filled")
        if not column.indicator:
            return [filled]
        return [filled, self.op("Cast", [missing], "is_missing", to=self.T.DOUBLE)]

    def binary(self, column) -> list[str]:
        """1 for the positive value, 0 for the negative, the fill for anything else; codes
        0, 1, 2 (neither) and 3 (blank)."""
        text = self.column(column.name, text=True)
        mapping = dict.fromkeys(BLANK_TEXT, 3)
        mapping.update({v: code for code, v in ((0, column.negative), (1, column.positive))
                        if v is not None})
        codes = self.codes(text, mapping, 2)
        value = self.lookup(codes, [0.0, 1.0, column.fill, column.fill])
        return [value, self.is_code(codes, 3)] if column.indicator else [value]

    def categorical_codes(self, column) -> str:
        """Each cell's slot, as Categorical.codes finds it: categories in order, folded and
        unseen values "other" (-1 without an "other" slot), blanks their own slot if training
        had blanks, else "other"."""
        other = len(column.categories) + column.blank if column.other else -1
        mapping = dict.fromkeys(BLANK_TEXT, len(column.categories) if column.blank else other)
        mapping.update(dict.fromkeys(column.folded, other))
        mapping.update({value: i for i, value in enumerate(column.categories)})
        return self.codes(self.column(column.name, text=True), mapping, other)

    def one_hot(self, column) -> str:
        codes = self.categorical_codes(column)
        slots = self.const(np.arange(column.size, dtype=np.int64))
        return self.op("Cast", [self.op("Equal", [codes, slots])], "one_hot", to=self.T.DOUBLE)

    def datetime(self, column) -> list[str]:
        """The kept date parts, from the text's fields, by the civil calendar's arithmetic
        (Howard Hinnant's days_from_civil), as pandas computes them."""
        text = self.column(column.name, text=True)
        blank = self.op("Cast", [self.blank(text)], to=self.T.BOOL)
        # Blank cells are parsed as a valid date (then replaced by the fills), so that every
        # cell splits into the same number of fields.
        stand_in = self.const(np.array([[_format_epoch(column.format)]], dtype=object))
        text = self.op("Where", [blank, stand_in, text])
        tokens = re.split(r"(%.)", column.format)
        fields: dict[str, str] = {}
        rest = text
        for directive, separator in zip(tokens[1::2], tokens[2::2] + [""]):
            if separator:
                split, _ = self.op("StringSplit", [rest], "split", outputs=2,
                                   delimiter=separator, maxsplit=1)
                first = self.op("Gather", [split, self.const(np.int64(0))], axis=2)
                rest = self.op("Gather", [split, self.const(np.int64(1))], axis=2)
            else:
                first = rest
            fields[DATE_FIELDS[directive]] = self.op("Cast", [first], DATE_FIELDS[directive],
                                                     to=self.T.DOUBLE)
        zero, one = self.const(np.float64(0)), self.const(np.float64(1))
        # strptime's defaults for absent fields: 1900-01-01 00:00:00
        year = fields.get("year") or self.const(np.float64(1900))
        month, day = fields.get("month", one), fields.get("day", one)
        seconds = self.add(self.mul(fields.get("hour", zero), 3600.0),
                           self.add(self.mul(fields.get("minute", zero), 60.0),
                                    fields.get("second", zero)))
        days = self.days_from_civil(year, month, day)
        parts = {
            "year": year, "month": month, "day": day,
            "weekday": self.modulo(self.add(days, 3.0), 7.0),  # 1970-01-01 was a Thursday
            "day_of_year": self.add(self.op("Sub", [days, self.days_from_civil(
                year, self.const(1.0), self.const(1.0))]), 1.0),
            "time_of_day": self.op("Div", [seconds, self.const(3600.0)]),
            "elapsed_days": self.op("Div", [self.add(self.mul(days, 86400.0), seconds),
                                            self.const(86400.0)]),
        }
        out = [self.op("Where", [blank, self.const(np.float64(fill)), parts[name]], name)
               for name, fill in zip(column.parts, column.fills)]
        if column.indicator:
            out.append(self.op("Cast", [blank], "is_missing", to=self.T.DOUBLE))
        return out

    def days_from_civil(self, year: str, month: str, day: str) -> str:
        """Days since 1970-01-01 of a proleptic Gregorian date, for years >= 1 (doubles
        holding integers: every step is exact)."""
        early = self.op("Cast", [self.op("LessOrEqual", [month, self.const(2.0)])],
                        to=self.T.DOUBLE)
        y = self.op("Sub", [year, early])
        era = self.floor_div(y, 400.0)
        yoe = self.op("Sub", [y, self.mul(era, 400.0)])
        shifted = self.op("Sub", [self.add(month, self.mul(early, 12.0)), self.const(3.0)])
        doy = self.add(self.floor_div(self.add(self.mul(shifted, 153.0), 2.0), 5.0),
                       self.op("Sub", [day, self.const(1.0)]))
        doe = self.add(self.add(self.mul(yoe, 365.0), self.floor_div(yoe, 4.0)),
                       self.op("Sub", [doy, self.floor_div(yoe, 100.0)]))
        return self.add(self.mul(era, 146097.0), self.op("Sub", [doe, self.const(719468.0)]))

    def add(self, a: str, b: str | float) -> str:
        return self.op("Add", [a, b if isinstance(b, str) else self.const(np.float64(b))])

    def mul(self, a: str, b: float) -> str:
        return self.op("Mul", [a, self.const(np.float64(b))])

    def modulo(self, a: str, b: float) -> str:
        """a mod b in [0, b), as Python's %."""
        return self.op("Sub", [a, self.mul(self.floor_div(a, b), b)])

    def floor_div(self, a: str, b: float) -> str:
        return self.op("Floor", [self.op("Div", [a, self.const(np.float64(b))])])

    # ---- the network ----------------------------------------------------------------------

    def layers(self, x: str, model: Sequential, steps: int) -> str:
        for i, layer in enumerate(model.layers):
            if isinstance(layer, Dense):
                z = self.op("MatMul", [x, self.const(layer.W.value, f"layers.{i}.W")])
                z = self.op("Add", [z, self.const(layer.b.value, f"layers.{i}.b")])
                x = self.activate(z, layer.activation.name)
            elif isinstance(layer, RNN):
                x = self.rnn(x, layer, i, steps)
        if model.outputs is not None:
            offset, spread = model.outputs
            x = self.op("Add", [self.op("Mul", [x, self.const(spread)]), self.const(offset)])
        return x

    def activate(self, z: str, name: str) -> str:
        if name == "softmax":
            return self.op("Softmax", [z], axis=-1)
        return self.op(ACTIVATIONS[name], [z], name)

    def rnn(self, x: str, layer: RNN, i: int, steps: int) -> str:
        """The recurrence unrolled over the steps: H_t = act(X_t W_x + H_{t-1} W_h + b)."""
        w_x = self.const(layer.W_x.value, f"layers.{i}.W_x")
        w_h = self.const(layer.W_h.value, f"layers.{i}.W_h")
        b = self.const(layer.b.value, f"layers.{i}.b")
        h, states = None, []
        for t in range(steps):
            x_t = self.op("Gather", [x, self.const(np.int64(t))], axis=1)
            z = self.op("MatMul", [x_t, w_x])
            if h is not None:
                z = self.op("Add", [z, self.op("MatMul", [h, w_h])])
            h = self.activate(self.op("Add", [z, b]), layer.activation.name)
            states.append(h)
        if not layer.return_sequences:
            return h
        one = self.const(np.array([1], np.int64))
        return self.op("Concat", [self.op("Unsqueeze", [s, one]) for s in states], axis=1)

    # ---- outputs ----------------------------------------------------------------------------

    def outputs(self, out: str, prep: Preprocessing, model: Sequential) -> list:
        make = self.helper.make_tensor_value_info
        rows, width = "N", model.output_shape[-1]
        if prep.task == "regression":
            return [make(self.output("prediction", out), self.onnx_dtype, [rows, width])]
        if prep.task == "binary" and not prep.classes:  # several 0/1 targets
            label = self.op("Cast", [self.op("Greater", [out, self.const(self.dtype.type(0.5))])],
                            to=self.T.INT64)
            return [make(self.output("label", label), self.T.INT64, [rows, width]),
                    make(self.output("probabilities", out), self.onnx_dtype, [rows, width])]
        classes = prep.classes
        integers = all(type(c) is int for c in classes)
        labels = self.const(np.array(classes, dtype=np.int64) if integers
                            else np.array([str(c) for c in classes], dtype=object), "classes")
        if prep.task == "binary":
            positive = self.op("Greater", [out, self.const(self.dtype.type(0.5))])
            index = self.op("Squeeze", [self.op("Cast", [positive], to=self.T.INT64),
                                        self.const(np.array([1], np.int64))])
            complement = self.op("Sub", [self.const(self.dtype.type(1)), out])
            probabilities = self.op("Concat", [complement, out], axis=1)
        else:
            index = self.op("ArgMax", [out], axis=1, keepdims=0)
            probabilities = out
        label = self.op("Gather", [labels, index])
        return [make(self.output("label", label), self.T.INT64 if integers else self.T.STRING,
                     [rows]),
                make(self.output("probabilities", probabilities), self.onnx_dtype,
                     [rows, len(classes)])]


def _format_epoch(format: str) -> str:
    """1970-01-01 00:00:00 written in `format`."""
    from datetime import datetime

    return datetime(1970, 1, 1).strftime(format)
