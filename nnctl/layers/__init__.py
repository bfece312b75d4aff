"""Layer registry: the config's `type` tag -> layer class."""

from .base import Layer, Param
from .dense import Dense
from .dropout import Dropout

LAYERS: dict[str, type[Layer]] = {
    "dense": Dense,
    "dropout": Dropout,
}

__all__ = ["LAYERS", "Layer", "Param", "Dense", "Dropout"]
