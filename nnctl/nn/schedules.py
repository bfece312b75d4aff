"""Learning-rate schedules, applied at the end of each epoch (as PyTorch's lr_scheduler).

`after_epoch(epochs_done, metrics)` returns the learning rate for the next epoch:
  step         lr0 * gamma ** (epochs_done // step_size)
  exponential  lr0 * gamma ** epochs_done
  cosine       min_lr + (lr0 - min_lr) * (1 + cos(pi * epochs_done / epochs)) / 2
  plateau      lr * factor (not below min_lr) once the monitored metric has not improved by
               more than min_delta for more than `patience` epochs
"""

from __future__ import annotations

import math


class Schedule:
    name: str

    def __init__(self, base_lr: float, epochs: int):
        self.base_lr = base_lr
        self.epochs = epochs

    def after_epoch(self, epochs_done: int, metrics: dict[str, float], lr: float) -> float:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class StepLR(Schedule):
    name = "step"

    def __init__(self, base_lr, epochs, step_size, gamma=0.1):
        super().__init__(base_lr, epochs)
        self.step_size, self.gamma = step_size, gamma

    def after_epoch(self, epochs_done, metrics, lr):
        return self.base_lr * self.gamma ** (epochs_done // self.step_size)


class ExponentialLR(Schedule):
    name = "exponential"

    def __init__(self, base_lr, epochs, gamma):
        super().__init__(base_lr, epochs)
        self.gamma = gamma

    def after_epoch(self, epochs_done, metrics, lr):
        return self.base_lr * self.gamma ** epochs_done


class CosineLR(Schedule):
    name = "cosine"

    def __init__(self, base_lr, epochs, min_lr=0.0):
        super().__init__(base_lr, epochs)
        self.min_lr = min_lr

    def after_epoch(self, epochs_done, metrics, lr):
        progress = min(epochs_done, self.epochs) / self.epochs
        return self.min_lr + (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * progress)) / 2


class ReduceOnPlateau(Schedule):
    name = "plateau"

    def __init__(self, base_lr, epochs, monitor, mode="min", factor=0.1, patience=10,
                 min_delta=0.0, min_lr=0.0):
        super().__init__(base_lr, epochs)
        self.monitor, self.mode = monitor, mode
        self.factor, self.patience = factor, patience
        self.min_delta, self.min_lr = min_delta, min_lr
        self.best: float | None = None
        self.bad_epochs = 0

    def after_epoch(self, epochs_done, metrics, lr):
        value = metrics[self.monitor]
        if self.best is None or improved(value, self.best, self.mode, self.min_delta):
            self.best, self.bad_epochs = value, 0
            return lr
        self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.bad_epochs = 0
            return max(lr * self.factor, self.min_lr)
        return lr

    def state_dict(self):
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state):
        self.best, self.bad_epochs = state["best"], state["bad_epochs"]


def improved(value: float, best: float, mode: str, min_delta: float = 0.0) -> bool:
    """Whether `value` beats `best` by more than `min_delta` in direction `mode` (min | max)."""
    return value < best - min_delta if mode == "min" else value > best + min_delta


SCHEDULES: dict[str, type[Schedule]] = {
    cls.name: cls for cls in (StepLR, ExponentialLR, CosineLR, ReduceOnPlateau)
}
