"""Layer registry: the config's `type` tag -> layer class.

Embeddings are not in it: they are configured per data column, not as `model.layers` entries.
"""

from .base import Layer, Param
from .dense import Dense
from .dropout import Dropout
from .embedding import Embedding, EmbeddingInputs
from .rnn import RNN

LAYERS: dict[str, type[Layer]] = {
    "dense": Dense,
    "dropout": Dropout,
    "rnn": RNN,
}

__all__ = ["LAYERS", "Layer", "Param", "Dense", "Dropout", "RNN", "Embedding",
           "EmbeddingInputs"]
