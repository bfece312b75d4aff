"""How training shows its progress: tqdm bars on a terminal, one line per epoch otherwise."""

from __future__ import annotations

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


def _short(metrics: dict[str, float]) -> dict[str, str]:
    return {key: f"{value:.4f}" for key, value in metrics.items()}


class Bars:
    """An epoch bar and, below it, a batch bar with the running loss and metric."""

    refresh_seconds = 0.2  # formatting the postfix every batch would cost more than the batch

    def __init__(self, stream: IO[str]):
        from tqdm import tqdm  # deferred: only training on a terminal needs it

        self._tqdm = tqdm
        self.stream = stream
        self.epoch_bar = None
        self.batch_bar = None
        self.last_refresh = 0.0

    def start_epoch(self, epoch: int, epochs: int, n_batches: int, done: int) -> None:
        if self.epoch_bar is None:
            self.epoch_bar = self._tqdm(total=epochs, initial=epoch - 1, desc="training",
                                        unit="epoch", position=0, file=self.stream,
                                        dynamic_ncols=True)
        self.batch_bar = self._tqdm(total=n_batches, initial=done, desc=f"epoch {epoch}",
                                    unit="batch", position=1, leave=False, file=self.stream,
                                    dynamic_ncols=True)

    def batch(self, running) -> None:
        self.batch_bar.update(1)
        now = time.monotonic()
        if now - self.last_refresh >= self.refresh_seconds:
            self.batch_bar.set_postfix(_short(running.result()), refresh=False)
            self.last_refresh = now

    def end_epoch(self, row: dict) -> None:
        self.batch_bar.close()
        self.epoch_bar.set_postfix(
            _short({k: v for k, v in row.items() if k not in ("epoch", "lr", "seconds")}),
            refresh=False)
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
