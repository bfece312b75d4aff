"""How training shows its progress: tqdm bars on a terminal, one line per epoch otherwise."""

from __future__ import annotations

import os
import shutil
import sys
import time
from typing import IO


def format_row(row: dict) -> str:
    """`epoch 3/20  train_loss 0.4123  val_loss 0.4410 ...  lr 0.001  (0.21 s)`"""
    parts = [f"epoch {row['epoch']}"]
    parts += [f"{key} {value:.4f}" for key, value in row.items()
              if key not in ("epoch", "lr", "seconds")]
    parts.append(f"lr {row['lr']:.3g}")
    parts.append(f"({row['seconds']:.2f} s)")
    return "  ".join(parts)


# The bars' own parts: `epoch 64/100 |#####     | 00:03<00:01`, then as many metrics as fit.
BAR_FORMAT = "{desc} {n_fmt}/{total_fmt} |{bar}| {elapsed}<{remaining}{postfix}"
MIN_BAR = 10  # columns the bar itself keeps, however many metrics there are
SHORT_NAMES = {"accuracy": "acc"}


def short_name(key: str) -> str:
    """`train_accuracy` -> `acc`, `val_accuracy` -> `val_acc`: the bar's names, as Keras'."""
    split, _, metric = key.partition("_")
    if split not in ("train", "val"):
        return key
    metric = SHORT_NAMES.get(metric, metric)
    return metric if split == "train" else f"val_{metric}"


def priority(key: str) -> tuple:
    """Validation before training, the loss before other metrics: what is dropped first
    when the terminal is narrow is the least telling."""
    return (not key.startswith("val_"), not key.endswith("_loss"))


def fit_postfix(metrics: dict[str, float], room: int) -> str:
    """`val_loss 0.0512 val_acc 0.967 loss 0.0498`: 3 significant digits, most telling
    first, as many as fit in `room` columns (those that do not are left out, never cut)."""
    text = ""
    for key in sorted(metrics, key=priority):
        item = f"{short_name(key)} {metrics[key]:#.3g}".rstrip(".")  # 1.0 -> 1.00, not 1
        candidate = f"{text} {item}" if text else item
        if len(candidate) > room:
            break
        text = candidate
    return text


def terminal_width(stream: IO[str]) -> int:
    """The width of the terminal `stream` writes to; else $COLUMNS, else 80."""
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (OSError, ValueError, AttributeError):
        return shutil.get_terminal_size().columns


class Bars:
    """An epoch bar and, below it, a batch bar with the running loss and metric, each cut to
    the terminal's width (read at every refresh, so a resized window is followed)."""

    refresh_seconds = 0.2  # formatting the postfix every batch would cost more than the batch

    def __init__(self, stream: IO[str]):
        from tqdm import tqdm  # deferred: only training on a terminal needs it

        self._tqdm = tqdm
        self.stream = stream
        self.epoch_bar = None
        self.batch_bar = None
        self.last_refresh = 0.0

    def _bar(self, **kwargs):
        return self._tqdm(file=self.stream, dynamic_ncols=True, bar_format=BAR_FORMAT, **kwargs)

    def start_epoch(self, epoch: int, epochs: int, n_batches: int, done: int) -> None:
        if self.epoch_bar is None:
            self.epoch_bar = self._bar(total=epochs, initial=epoch - 1, desc="epoch", position=0)
        self.batch_bar = self._bar(total=n_batches, initial=done, desc="batch", position=1,
                                   leave=False)

    def _set_postfix(self, bar, metrics: dict[str, float]) -> None:
        fixed = bar.format_meter(**{**bar.format_dict, "ncols": None, "postfix": None,
                                    "bar_format": BAR_FORMAT.replace("{bar}", "")})
        room = terminal_width(self.stream) - len(fixed) - MIN_BAR - 2  # 2: tqdm's ", "
        bar.set_postfix_str(fit_postfix(metrics, room), refresh=False)

    def batch(self, running) -> None:
        self.batch_bar.update(1)
        now = time.monotonic()
        if now - self.last_refresh >= self.refresh_seconds:
            result = running.result()
            self._set_postfix(self.batch_bar, {f"train_{k}": v for k, v in result.items()})
            self.last_refresh = now

    def end_epoch(self, row: dict) -> None:
        self.batch_bar.close()
        self._set_postfix(self.epoch_bar, {k: v for k, v in row.items()
                                           if k not in ("epoch", "lr", "seconds")})
        self.epoch_bar.update(1)

    def close(self) -> None:
        for bar in (self.batch_bar, self.epoch_bar):
            if bar is not None:
                bar.close()


class Lines:
    """One plain line per epoch, for logs and pipes."""

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self.total = 0

    def start_epoch(self, epoch, epochs, n_batches, done):
        self.total = epochs

    def batch(self, running):
        pass

    def end_epoch(self, row):
        line = format_row(row).replace(f"epoch {row['epoch']}", f"epoch {row['epoch']}/{self.total}", 1)
        print(line, file=self.stream, flush=True)

    def close(self):
        pass


class Silent:
    def start_epoch(self, *args):
        pass

    def batch(self, running):
        pass

    def end_epoch(self, row):
        pass

    def close(self):
        pass


def choose(quiet: bool, stream: IO[str] | None = None):
    """Bars on a terminal, lines when stderr is a file or pipe, nothing with --quiet."""
    stream = stream or sys.stderr  # looked up now, so a redirected sys.stderr is honoured
    if quiet:
        return Silent()
    return Bars(stream) if stream.isatty() else Lines(stream)
