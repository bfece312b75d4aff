"""Sequential model: a stack of layers, optionally behind an embedding input block, with named
parameters and a strict state dict."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from .layers import LAYERS, Dropout, Embedding, EmbeddingInputs, Layer, Param


class Sequential:
    """Layers applied in order. Parameters are named `layers.<i>.<param>`, with `i` the layer's
    index in the list (layers without parameters, like dropout, keep their index).

    An optional input block (`inputs`, embedding tables for categorical columns) runs before the
    layers; its parameters come first, named `inputs.<column>.E`.

    An optional fixed output scale (`outputs`: offset and spread per output, the training
    targets' mean and standard deviation) maps the last layer's Z to Y = Z * spread + offset,
    so the layers learn a standardized target while losses and predictions stay in the
    target's units. Backward: dZ = dY * spread. (Adam's steps do not depend on the loss's
    scale, so training with it is training on standardized targets.)
    """

    def __init__(self, layers: Iterable[Layer], inputs: EmbeddingInputs | None = None,
                 outputs: tuple[np.ndarray, np.ndarray] | None = None):
        self.layers = list(layers)
        self.inputs = inputs
        self.outputs = outputs

    @classmethod
    def from_specs(cls, specs: Iterable[dict[str, Any]], input_shape: tuple[int, ...],
                   rng: np.random.Generator, dtype: np.dtype = np.float32,
                   embeddings: Iterable[dict[str, Any]] = (),
                   outputs: tuple[Any, Any] | None = None) -> "Sequential":
        """Build from layer specs such as {"type": "dense", "units": 3, "activation": "softmax"},
        and embedding specs such as {"column": "city", "categories": 12, "dim": 6, "l1": 0.0,
        "l2": 0.0}, one per code column in their order. With embeddings, `input_shape` is
        (F + K,): F dense features, then K code columns."""
        layers = []
        for spec in specs:
            kwargs = dict(spec)
            layers.append(LAYERS[kwargs.pop("type")](**kwargs))
        tables = {}
        for spec in embeddings:
            kwargs = dict(spec)
            column = kwargs.pop("column")
            if column in tables:
                raise ValueError(f"two embeddings for the column {column!r}")
            tables[column] = Embedding(**kwargs)
        inputs = EmbeddingInputs(tables) if tables else None
        if outputs is not None:
            outputs = tuple(np.asarray(a, dtype=dtype) for a in outputs)
        return cls(layers, inputs, outputs).build(input_shape, rng, dtype)

    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator,
              dtype: np.dtype = np.float32) -> "Sequential":
        self.dtype = np.dtype(dtype)
        self.input_shape = tuple(input_shape)
        shape = self.input_shape
        self._params = {}
        if self.inputs is not None:  # built first: its draws come before the layers'
            shape = self.inputs.build(shape, rng, self.dtype)
            self._params.update(
                (f"inputs.{name}", param) for name, param in self.inputs.parameters().items())
        for layer in self.layers:
            shape = layer.build(shape, rng, self.dtype)
        self.output_shape = shape
        self._params.update(
            (f"layers.{i}.{name}", param)
            for i, layer in enumerate(self.layers)
            for name, param in layer.parameters().items()
        )
        pack(list(self._params.values()))
        # Only the first layer that has parameters needs no input gradient: nothing before it
        # is trainable. Trainable inputs (-1) need every layer's.
        if self.inputs is not None and self.inputs.parameters():
            self._first_trainable = -1
        else:
            self._first_trainable = next(
                (i for i, layer in enumerate(self.layers) if layer.parameters()),
                len(self.layers)
            )
        return self

    def use_dropout_rng(self, rng: np.random.Generator) -> None:
        """Draw dropout masks from `rng` (by default they come from the generator given to
        `build`), so the masks form their own stream, independent of initialization."""
        for layer in self.layers:
            if isinstance(layer, Dropout):
                layer.rng = rng

    @property
    def output_activation(self) -> str | None:
        """Name of the last layer's activation, if it has one."""
        activation = getattr(self.layers[-1], "activation", None)
        return getattr(activation, "name", None)

    def forward(self, x: np.ndarray, training: bool = False, logits: bool = False) -> np.ndarray:
        """Run the input block and the layers; with `logits`, the last layer stops before its
        activation."""
        if self.inputs is not None:
            x = self.inputs.forward(x, training)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            if logits and i == last:
                x = layer.forward(x, training, activate=False)
            else:
                x = layer.forward(x, training)
        if self.outputs is not None and not logits:
            offset, spread = self.outputs
            x = x * spread + offset
        return x

    def backward(self, grad: np.ndarray) -> None:
        """Backpropagate dL/d(output) (or dL/d(logits) after `forward(logits=True)`), leaving
        every parameter's gradient in its `grad`."""
        if self.outputs is not None:
            grad = grad * self.outputs[1]
        for i in range(len(self.layers) - 1, max(self._first_trainable, 0) - 1, -1):
            grad = self.layers[i].backward(grad, input_grad=i > self._first_trainable)
        if self._first_trainable < 0:
            self.inputs.backward(grad, input_grad=False)

    def predict(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Forward in evaluation mode, in batches to bound memory."""
        if len(x) <= batch_size:
            return self.forward(x)
        return np.concatenate(
            [self.forward(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
        )

    def parameters(self) -> dict[str, Param]:
        return self._params

    def penalty(self) -> float:
        """Sum of the L1/L2 terms of the layers and the input block."""
        total = sum(layer.penalty() for layer in self.layers)
        return total + self.inputs.penalty() if self.inputs is not None else total

    def state_dict(self) -> dict[str, np.ndarray]:
        return {name: p.value.copy() for name, p in self._params.items()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy weights in; names, shapes and dtypes must match exactly. Every mismatch is
        listed, and nothing is changed unless all of them match."""
        problems = [f"missing array {name!r}" for name in self._params if name not in state]
        problems += [f"unexpected array {name!r}" for name in state if name not in self._params]
        for name, p in self._params.items():
            if name in state:
                array = np.asarray(state[name])
                if array.shape != p.value.shape:
                    problems.append(
                        f"array {name!r} has shape {list(array.shape)}, "
                        f"expected {list(p.value.shape)}"
                    )
                elif array.dtype != p.value.dtype:
                    problems.append(
                        f"array {name!r} has dtype {array.dtype}, expected {p.value.dtype}"
                    )
        if problems:
            raise ValueError("; ".join(problems))
        for name, p in self._params.items():
            p.value[...] = state[name]


def pack(params: list[Param]) -> None:
    """Lay the parameters' values end to end in one flat array, and their gradients in
    another; each Param keeps views of its part. An optimizer then updates the whole model with
    a few array operations, whatever the number of layers (see optim.contiguous)."""
    if not params or len({p.value.dtype for p in params}) > 1:
        return
    for attr in ("value", "grad"):
        arrays = [getattr(p, attr) for p in params]
        flat = np.empty(sum(a.size for a in arrays), dtype=arrays[0].dtype)
        offset = 0
        for p, a in zip(params, arrays):
            view = flat[offset:offset + a.size].reshape(a.shape)
            view[...] = a
            setattr(p, attr, view)
            offset += a.size
