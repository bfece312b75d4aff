"""Layer registry: the config's `type` tag -> layer class."""

from .base import Layer, Param
from .dense import Dense
from .dropout import Dropout
from .rnn import RNN

LAYERS: dict[str, type[Layer]] = {
    "dense": Dense,
    "dropout": Dropout,
    "rnn": RNN,
}

__all__ = ["LAYERS", "Layer", "Param", "Dense", "Dropout", "RNN"]
