"""What a training run tells its user: the model and data at the start (as Keras'
`model.summary()` does), and how the run ended at the end.

Both are plain text built from objects already in hand; the caller decides where they go
(stderr, unless --quiet) and the run's train.log keeps a copy.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .nn.model import Sequential

SKIPPED_IN_ROWS = ("epoch", "lr", "seconds")


# ---- the start ----------------------------------------------------------------------------------

def model_summary(model: Sequential, layer_names: list[str], rows: dict[str, int],
                  features: int, threads: str) -> str:
    """Each layer with its output shape and parameter count, the total, the rows of each
    split and the input width.

        layer                output shape   params
        input                (7,)
        0 dense (relu)       (16,)             128
        1 dropout (0.2)      (16,)               0
        2 dense (softmax)    (3,)               51
        total: 179 parameters (float32, 716 B)
        data: 120 train, 30 validation rows; 4 columns make 7 inputs
        threads: 2 (every usable core)
    """
    table = [("input", _shape(model.input_shape), "")]
    x = np.zeros((1, *model.input_shape), dtype=model.dtype)
    if model.inputs is not None:
        x = model.inputs.forward(x)
        count = sum(p.value.size for p in model.inputs.parameters().values())
        table.append(("embeddings", _shape(x.shape[1:]), f"{count:,}"))
    for i, (layer, name) in enumerate(zip(model.layers, layer_names)):
        x = layer.forward(x)  # evaluation mode: draws nothing, changes no state that matters
        count = sum(p.value.size for p in layer.parameters().values())
        table.append((f"{i} {name}", _shape(x.shape[1:]), f"{count:,}"))
    total = sum(p.value.size for p in model.parameters().values())
    width = [max(len(row[k]) for row in table + [("layer", "output shape", "params")])
             for k in range(3)]
    lines = [f"{'layer':<{width[0]}}   {'output shape':<{width[1]}}   {'params':>{width[2]}}"]
    lines += [f"{a:<{width[0]}}   {b:<{width[1]}}   {c:>{width[2]}}".rstrip() for a, b, c in table]
    size = total * model.dtype.itemsize
    lines.append(f"total: {total:,} parameters ({model.dtype}, {_bytes(size)})")
    splits = ", ".join(f"{n:,} {split}" for split, n in rows.items() if n)
    width_in = int(np.prod(model.input_shape))
    inputs = (f"{features} columns make {width_in} inputs" if features != width_in
              else f"{width_in} inputs")
    lines.append(f"data: {splits} rows; {inputs}")
    lines.append(f"threads: {threads}")
    return "\n".join(lines)


def layer_names(specs: list) -> list[str]:
    """`dense (relu)`, `dropout (0.2)`, `rnn (tanh, sequences)` from the config's layer specs."""
    names = []
    for spec in specs:
        if spec.type == "dropout":
            names.append(f"dropout ({spec.rate:g})")
        else:
            extra = ", sequences" if getattr(spec, "return_sequences", False) else ""
            names.append(f"{spec.type} ({spec.activation}{extra})")
    return names


def _shape(shape) -> str:
    return "(" + ", ".join(str(int(n)) for n in shape) + ("," if len(shape) == 1 else "") + ")"


def _bytes(n: float) -> str:
    """`524 B`, `37.0 KiB`, `1.2 GiB`."""
    unit = "B"
    for larger in ("KiB", "MiB", "GiB"):
        if n < 1024:
            break
        n, unit = n / 1024, larger
    return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"


# ---- the end ------------------------------------------------------------------------------------

def ending(summary: dict, patience: Optional[int], stopped_monitor: Optional[str],
           width: int = 100) -> str:
    """How the run ended, its best epoch and metrics, the test metrics and where it is.

        early stopped at epoch 64: val_loss did not improve for 10 epochs
        best epoch 54: val_loss 0.0512  val_accuracy 0.9667  train_loss 0.0498 ...
        test: loss 0.0601  accuracy 0.9600
        run: runs/iris-20261130-231501-4c30
    """
    status = summary.get("status")
    epochs = summary.get("epochs_run")
    seconds = summary.get("wall_seconds")
    took = f" in {format_seconds(seconds)}" if seconds is not None else ""
    if status == "completed":
        head = f"completed: {epochs} epochs{took}"
    elif status == "early_stopped":
        head = (f"early stopped at epoch {epochs}{took}: {stopped_monitor} did not improve "
                f"for {patience} epochs")
    elif status == "diverged":
        head = f"diverged after {epochs} epochs: {summary.get('message')}"
    elif status == "interrupted":
        signal = summary.get("signal") or "an interrupt"
        head = (f"interrupted by {signal} after {epochs} epochs{took}; continue with "
                f"`nnctl train --resume {summary.get('run_dir')}`")
    else:
        head = f"{status}: {summary.get('message') or ''}".rstrip(": ")
    lines = [head]
    best = summary.get("best")
    if best and summary.get("best_epoch"):
        lines.append(_wrapped(f"best epoch {summary['best_epoch']} ({summary.get('monitor')}): "
                              + metrics_text(best), width))
    test = summary.get("test")
    if test:
        lines.append(_wrapped("test: " + metrics_text(test), width))
    lines.append(f"run: {summary.get('run_dir')}")  # whole, to be copied
    return "\n".join(lines)


def _wrapped(line: str, width: int) -> str:
    """Broken between metrics (two spaces apart), never between a name and its value."""
    lines = [""]
    for item in line.split("  "):
        if lines[-1].strip() and len(lines[-1]) + 2 + len(item) > width:
            lines.append("  " + item)
        else:
            lines[-1] = f"{lines[-1]}  {item}" if lines[-1] else item
    return "\n".join(lines)


def metrics_text(row: dict) -> str:
    """`val_loss 0.0512  val_accuracy 0.9667 ...`: validation first, 4 decimals as in the epoch lines."""
    keys = [k for k in row if k not in SKIPPED_IN_ROWS and isinstance(row[k], (int, float))]
    keys.sort(key=lambda k: (not k.startswith("val_"), k.startswith("train_")))
    return "  ".join(f"{k} {row[k]:.4f}" for k in keys)


def format_seconds(seconds: Optional[float]) -> str:
    """`1.6s`, `2m05s`, `1h03m`: as the end of a run and runs list write a duration."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"
