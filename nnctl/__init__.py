"""nnctl: neural networks written from scratch in NumPy, trained from YAML configs.

    >>> import nnctl
    >>> run = nnctl.train("configs/iris.yaml", overrides={"optimizer.lr": 0.01})
    >>> run = nnctl.load(run.path, checkpoint="best")
    >>> run.predict("datasets/iris.csv")        # or a DataFrame: the columns of `nnctl predict`
    >>> run.evaluate("datasets/iris.csv")       # the numbers of `nnctl eval --json`

Importing nnctl is light: NumPy, pandas and the rest load when a function first needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._version import __version__
from .errors import CheckpointError, ConfigError, DataError, UserError

__all__ = ["train", "resume", "load", "Run", "UserError", "ConfigError", "DataError",
           "CheckpointError", "__version__"]

if TYPE_CHECKING:
    from .api import Run, load, resume, train

_API = {"train", "resume", "load", "Run"}


def __getattr__(name: str):
    # PEP 562: the API module (and NumPy with it) loads on first use, not on `import nnctl`.
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'nnctl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _API)
