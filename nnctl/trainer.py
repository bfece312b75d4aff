"""The training loop: mini-batches, metrics, clipping, schedules, early stopping.

It works on objects (a model, a loss, an optimizer, datasets) and reports through a progress
reporter and a callback; it never touches the file system or the config.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Optional, Protocol

import numpy as np

from .data import Dataset, batches
from .metrics import epoch_metrics, predicted_labels
from .nn.activations import sigmoid, softmax
from .nn.losses import Loss
from .nn.model import Sequential
from .progress import Silent
from .nn.optim import Optimizer, clip_grad_norm, clip_grad_value, grad_norm
from .nn.schedules import Schedule, improved


ACTIVATION_FUNCTIONS = {"sigmoid": sigmoid, "softmax": softmax}


class Diverged(Exception):
    """A non-finite loss or gradient: training stops before the bad step is applied."""


# ---- metrics -------------------------------------------------------------------------------

class Metrics:
    """Running loss and metrics over batches, without extra passes over the data.

    classification: accuracy of argmax; binary: accuracy of each output, positive at or above
    0.5 (logit 0); regression: MAE and R^2 (per output, averaged), from running sums.
    """

    def __init__(self, task: str, from_logits: bool):
        self.task, self.from_logits = task, from_logits
        self.loss_sum, self.batches, self.values = 0.0, 0, 0
        self.correct = 0
        self.abs_err = self.sq_err = self.y_sum = self.y_sq_sum = 0.0

    def update(self, loss: float, out: np.ndarray, y: np.ndarray) -> None:
        self.loss_sum += loss
        self.batches += 1
        if self.task == "classification":
            self.correct += int(np.count_nonzero(out.argmax(axis=1) == y))
            self.values += len(y)
        elif self.task == "binary":
            threshold = 0.0 if self.from_logits else 0.5
            self.correct += int(np.count_nonzero((out >= threshold) == (y > 0.5)))
            self.values += y.size
        else:
            diff = (out - y).astype(np.float64)
            self.abs_err += np.abs(diff).sum(axis=0)
            self.sq_err += (diff * diff).sum(axis=0)
            y64 = y.astype(np.float64)
            self.y_sum += y64.sum(axis=0)
            self.y_sq_sum += (y64 * y64).sum(axis=0)
            self.values += len(y)

    def result(self) -> dict[str, float]:
        result = {"loss": self.loss_sum / max(self.batches, 1)}
        if self.task == "regression":
            n = max(self.values, 1)
            result["mae"] = float(np.mean(self.abs_err / n))
            total = self.y_sq_sum - self.y_sum ** 2 / n
            r2 = np.where(total > 0, 1 - self.sq_err / np.where(total > 0, total, 1), 0.0)
            result["r2"] = float(np.mean(r2))
        else:
            result["accuracy"] = self.correct / max(self.values, 1)
        return result

    def state_dict(self) -> dict:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                for k, v in vars(self).items() if k not in ("task", "from_logits")}

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, np.asarray(v) if isinstance(v, list) else v)


def is_fused(model: Sequential, loss: Loss) -> bool:
    """Softmax + categorical cross-entropy and sigmoid + binary cross-entropy share one
    stable gradient with respect to the logits."""
    return loss.fused_activation is not None and loss.fused_activation == model.output_activation


def evaluate(model: Sequential, loss: Loss, data: Dataset, task: str,
             batch_size: int = 1024, threshold: float = 0.5) -> dict[str, float]:
    """Loss (penalties included) and metrics over a whole dataset, in evaluation mode.

    Classification and binary tasks add `auc` and `f1` (nnctl.metrics.epoch_metrics) to the
    accuracy, from the probabilities of the same single pass; a binary row is positive when
    its probability is at or above `threshold`."""
    fused = is_fused(model, loss)
    out = np.concatenate([model.forward(data.x[s], logits=fused)
                          for s in batches(len(data), batch_size)])
    value, _ = loss.from_logits(out, data.y) if fused else loss(out, data.y)
    value += model.penalty()
    if task == "regression":
        metrics = Metrics(task, fused)
        metrics.update(value, out, data.y)
        return metrics.result()
    probabilities = (ACTIVATION_FUNCTIONS[loss.fused_activation](out) if fused else out)
    truth = data.y > 0.5 if task == "binary" else data.y
    accuracy = float(np.mean(predicted_labels(task, probabilities, threshold) == truth))
    return {"loss": value, "accuracy": accuracy,
            **epoch_metrics(task, data.y, probabilities, threshold)}


# ---- early stopping --------------------------------------------------------------------------

@dataclass
class EarlyStopping:
    monitor: str
    mode: str = "min"
    patience: int = 10
    min_delta: float = 0.0
    restore_best: bool = True
    best: Optional[float] = None
    best_epoch: int = 0
    wait: int = 0

    def update(self, epoch: int, value: float) -> tuple[bool, bool]:
        """Return (improved, stop)."""
        if self.best is None or improved(value, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            return True, False
        self.wait += 1
        return False, self.wait >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]


# ---- reporting hooks ---------------------------------------------------------------------------

class Progress(Protocol):
    def start_epoch(self, epoch: int, epochs: int, n_batches: int, done: int) -> None: ...
    def batch(self, running: Metrics) -> None: ...
    def end_epoch(self, row: dict[str, float]) -> None: ...
    def close(self) -> None: ...


class Callback(Protocol):
    def epoch_end(self, trainer: "Trainer", row: dict[str, float], is_best: bool) -> None: ...


# ---- the loop ----------------------------------------------------------------------------

def rng_state(rng: np.random.Generator) -> dict:
    return rng.bit_generator.state


def set_rng_state(rng: np.random.Generator, state: dict) -> None:
    rng.bit_generator.state = state


@dataclass
class Trainer:
    """Trains `model` on `train`; evaluates on `validation` after every epoch.

    `epoch` counts completed epochs and `batch` the batches done in the current one, so a
    trainer restored from `state_dict()` at any batch boundary continues exactly as the
    uninterrupted run would have (same shuffling, same dropout masks).
    """

    model: Sequential
    loss: Loss
    optimizer: Optimizer
    task: str
    epochs: int
    batch_size: int
    shuffle_rng: np.random.Generator
    dropout_rng: np.random.Generator
    shuffle: bool = True
    clip_norm: Optional[float] = None
    clip_value: Optional[float] = None
    schedule: Optional[Schedule] = None
    early_stopping: Optional[EarlyStopping] = None
    monitor: str = "val_loss"
    monitor_mode: str = "min"
    progress: Progress = field(default_factory=Silent)
    callback: Optional[Callback] = None

    def __post_init__(self):
        self.fused = is_fused(self.model, self.loss)
        self.params = list(self.model.parameters().values())
        self.epoch = 0
        self.step = 0
        self.batch = 0
        self.epoch_rng = rng_state(self.shuffle_rng)
        self.epoch_seconds = 0.0
        self.running = Metrics(self.task, self.fused)
        self.best_value: Optional[float] = None
        self.best_epoch = 0
        self.best_row: Optional[dict] = None
        self.last_row: Optional[dict] = None
        self.history: list[dict] = []
        self.stop_requested = False
        self.early_best_weights: Optional[dict] = None

    # The public entry point -------------------------------------------------------------

    def fit(self, train: Dataset, validation: Optional[Dataset] = None) -> str:
        """Train until the epochs are done, early stopping fires or a stop is requested.
        Returns the status: completed, early_stopped or interrupted."""
        # Overflow is caught explicitly (Diverged), so NumPy's warnings would only be noise.
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                return self._fit(train, validation)
        finally:
            self.progress.close()

    def _fit(self, train: Dataset, validation: Optional[Dataset]) -> str:
        while self.epoch < self.epochs:
            if self.stop_requested or not self._run_epoch(train):
                return "interrupted"
            if self._end_epoch(validation):
                self._restore_early_best()
                return "early_stopped"
        return "completed"

    # One epoch ---------------------------------------------------------------------------

    def _run_epoch(self, train: Dataset) -> bool:
        """Run the remaining batches of the current epoch; False if stopped part-way."""
        n = len(train)
        n_batches = math.ceil(n / self.batch_size)
        if self.batch == 0:
            self.epoch_rng = rng_state(self.shuffle_rng)
            self.epoch_seconds = 0.0
            self.running = Metrics(self.task, self.fused)
        # Replaying the epoch's permutation from its saved RNG state makes a resumed epoch
        # visit the same batches in the same order.
        set_rng_state(self.shuffle_rng, self.epoch_rng)
        order = self.shuffle_rng.permutation(n) if self.shuffle else None
        self.progress.start_epoch(self.epoch + 1, self.epochs, n_batches, self.batch)
        started = time.perf_counter()
        for index in list(batches(n, self.batch_size, order))[self.batch:]:
            self._train_step(train.x[index], train.y[index])
            self.batch += 1
            self.progress.batch(self.running)
            if self.stop_requested and self.batch < n_batches:
                self.epoch_seconds += time.perf_counter() - started
                return False
        self.epoch_seconds += time.perf_counter() - started
        return True

    def _train_step(self, x: np.ndarray, y: np.ndarray) -> None:
        if self.fused:
            out = self.model.forward(x, training=True, logits=True)
            value, grad = self.loss.from_logits(out, y)
        else:
            out = self.model.forward(x, training=True)
            value, grad = self.loss(out, y)
        value += self.model.penalty()
        if not math.isfinite(value):
            raise Diverged(f"the loss became {value} at epoch {self.epoch + 1}, "
                           f"batch {self.batch + 1}")
        self.model.backward(grad)
        if self.clip_value is not None:
            clip_grad_value(self.params, self.clip_value)
        norm = (clip_grad_norm(self.params, self.clip_norm) if self.clip_norm is not None
                else grad_norm(self.params))
        if not math.isfinite(norm):
            raise Diverged(f"the gradient became non-finite at epoch {self.epoch + 1}, "
                           f"batch {self.batch + 1}")
        self.optimizer.step()
        self.step += 1
        self.running.update(value, out, y)

    def _end_epoch(self, validation: Optional[Dataset]) -> bool:
        """Validate, record, schedule; return True when early stopping fires."""
        row = {"epoch": self.epoch + 1}
        train_metrics = self.running.result()
        val_metrics = (evaluate(self.model, self.loss, validation, self.task)
                       if validation is not None else {})
        row["train_loss"] = train_metrics.pop("loss")
        if val_metrics:
            row["val_loss"] = val_metrics.pop("loss")
        for name, value in train_metrics.items():
            row[f"train_{name}"] = value
            if name in val_metrics:
                row[f"val_{name}"] = val_metrics.pop(name)
        # Metrics only the validation pass computes (auc, f1): they need every output at once.
        row.update({f"val_{name}": value for name, value in val_metrics.items()})
        row["lr"] = self.optimizer.lr
        row["seconds"] = self.epoch_seconds
        self.epoch += 1
        self.batch = 0

        # A finite gradient can still carry the weights past the dtype's range; catch it
        # here, before anything is saved.
        if not all(np.isfinite(p.value).all() for p in self.params):
            raise Diverged(f"the weights became non-finite during epoch {self.epoch}")
        if not all(np.isfinite(a).all() for a in self.optimizer.state_dict().values()):
            raise Diverged(f"the optimizer's state overflowed during epoch {self.epoch}")
        if not math.isfinite(row.get("val_loss", 0.0)):
            raise Diverged(f"the validation loss became {row['val_loss']} after epoch {self.epoch}")
        value = row[self.monitor]
        is_best = self.best_value is None or improved(value, self.best_value, self.monitor_mode)
        if is_best:
            self.best_value, self.best_epoch, self.best_row = value, self.epoch, row
        self.last_row = row
        self.history.append(row)

        stop = False
        if self.early_stopping is not None:
            better, stop = self.early_stopping.update(self.epoch, row[self.early_stopping.monitor])
            if better and self.early_stopping.restore_best:
                self.early_best_weights = self.model.state_dict()
        if self.schedule is not None:
            self.optimizer.lr = self.schedule.after_epoch(self.epoch, row, self.optimizer.lr)
        self.progress.end_epoch(row)
        if self.callback is not None:
            self.callback.epoch_end(self, row, is_best)
        return stop

    def _restore_early_best(self) -> None:
        stopper = self.early_stopping
        if stopper.restore_best and self.early_best_weights is not None:
            self.model.load_state_dict(self.early_best_weights)

    # Saving and restoring ------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Everything besides weights and optimizer buffers needed to continue exactly."""
        return {
            "epoch": self.epoch,
            "step": self.step,
            "batch": self.batch,
            "lr": self.optimizer.lr,
            "epoch_seconds": self.epoch_seconds,
            "epoch_rng": self.epoch_rng,
            "shuffle_rng": rng_state(self.shuffle_rng),
            "dropout_rng": rng_state(self.dropout_rng),
            "running": self.running.state_dict(),
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "best_row": self.best_row,
            "last_row": self.last_row,
            "early_stopping": self.early_stopping.state_dict() if self.early_stopping else None,
            "schedule": self.schedule.state_dict() if self.schedule else None,
        }

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.step, self.batch = state["epoch"], state["step"], state["batch"]
        self.optimizer.lr = state["lr"]
        self.epoch_seconds = state["epoch_seconds"]
        self.epoch_rng = state["epoch_rng"]
        set_rng_state(self.shuffle_rng, state["shuffle_rng"])
        set_rng_state(self.dropout_rng, state["dropout_rng"])
        self.running = Metrics(self.task, self.fused)
        self.running.load_state_dict(state["running"])
        self.best_value, self.best_epoch = state["best_value"], state["best_epoch"]
        self.best_row, self.last_row = state["best_row"], state["last_row"]
        if self.early_stopping and state["early_stopping"]:
            self.early_stopping.load_state_dict(state["early_stopping"])
        if self.schedule and state["schedule"]:
            self.schedule.load_state_dict(state["schedule"])
