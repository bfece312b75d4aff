"""Learned embeddings for categorical columns: one lookup table per column, and the input block
that sets the looked-up rows beside the dense features."""

from __future__ import annotations

import numpy as np

from .base import Layer, Param, add_penalty_grad, weight_penalty

INIT_STD = 0.01
# Up to this many categories, backward multiplies the (categories, N) one-hot matrix by dY: one
# BLAS call, 1.5-5x faster than np.add.at for N = 128..1024 and dim 4..200 (measured; the two
# meet near 48-64 categories, as the product's work grows with categories x N x dim).
ONE_HOT_MAX = 32


class Embedding(Layer):
    """Y = E[c]: row c_i of the table E (categories, dim) for each integer code c_i.

    Backward: dE[k] = sum of dY_i over the samples with c_i = k (+ l1 sign(E) + 2 l2 E), a
    scatter-add: a code used by several samples of the batch collects all their gradients.
    Init: N(0, 0.01^2) folded into (-0.02, 0.02) by fmod, as fastai's tabular embeddings
    (`trunc_normal_(std=0.01)`), drawn from the generator given to `build`.
    """

    def __init__(self, categories: int, dim: int, l1: float = 0.0, l2: float = 0.0):
        if categories <= 0:
            raise ValueError(f"Invalid number of categories: {categories}")
        if dim <= 0:
            raise ValueError(f"Invalid embedding dimension: {dim}")
        self.categories, self.dim = int(categories), int(dim)
        self.l1, self.l2 = float(l1), float(l2)
        self._touched = None  # the codes whose gradient rows the last backward filled

    def build(self, input_shape, rng, dtype):
        """`input_shape` is () (one code per sample); the output shape is (dim,)."""
        z = rng.standard_normal(size=(self.categories, self.dim))
        self.E = Param((np.fmod(z, 2.0) * INIT_STD).astype(dtype))
        return (self.dim,)

    def forward(self, codes, training=False):
        if len(codes) and (codes.min() < 0 or codes.max() >= self.categories):
            raise ValueError(f"codes must lie in [0, {self.categories}), "
                             f"got {codes.min()}..{codes.max()}")
        self._codes = codes
        return self.E.value[codes]

    def backward(self, dy, input_grad=True):
        """Codes have no gradient: always returns None."""
        grad, codes = self.E.grad, self._codes
        if self.categories <= ONE_HOT_MAX:
            one_hot = (np.arange(self.categories)[:, None] == codes).astype(grad.dtype)
            np.matmul(one_hot, dy, out=grad)
        else:
            # Without a penalty only the rows of the last batch hold anything (clipping scales
            # and the optimizer reads the gradient, neither fills it): clear just those, not
            # the whole table (5,000 x 189 is a 3.8 MB write per step).
            if self.l1 or self.l2 or self._touched is None:
                grad.fill(0)
            else:
                grad[self._touched] = 0
            # On a 1-D target add.at takes NumPy's fast path (2-4x faster than adding rows of a
            # 2-D one): address E's elements one by one.
            flat = (codes[:, None] * self.dim + np.arange(self.dim)).ravel()
            np.add.at(grad.reshape(-1), flat, dy.ravel())
            self._touched = codes
        add_penalty_grad(self.E, self.l1, self.l2)
        return None

    def parameters(self):
        return {"E": self.E}

    def penalty(self):
        return weight_penalty([self.E.value], self.l1, self.l2)


class EmbeddingInputs(Layer):
    """The input block: X = [F dense features | K code columns] -> Y = [X_dense, E_1[c_1], ...,
    E_K[c_K]], with c_k = X[:, F + k] read as integers (the codes are stored as floats).

    Backward: table k gets its columns of dY. The dense features' gradient is dY[:, :F]; the code
    columns' is 0 (Y is constant between integers). A model never asks for either: nothing
    before the block is trainable.
    """

    def __init__(self, tables: dict[str, Embedding]):
        if not tables:
            raise ValueError("an embedding input block needs at least one table")
        self.tables = dict(tables)  # column name -> table, in the order of the code columns

    def build(self, input_shape, rng, dtype):
        codes = len(self.tables)
        if len(input_shape) != 1 or input_shape[0] < codes:
            raise ValueError(f"embeddings expect flat inputs of at least {codes} columns "
                             f"(features then codes), got shape {tuple(input_shape)}")
        self.features = input_shape[0] - codes
        for table in self.tables.values():
            table.build((), rng, dtype)
        ends = self.features + np.cumsum([t.dim for t in self.tables.values()])
        self._columns = [slice(end - t.dim, end) for end, t in zip(ends, self.tables.values())]
        return (int(ends[-1]),)

    def forward(self, x, training=False):
        f = self.features
        if x.ndim != 2 or x.shape[1] != f + len(self.tables):
            raise ValueError(f"embedding inputs expect shape (batch, {f + len(self.tables)}), "
                             f"got {x.shape}")
        parts = [x[:, :f]]
        for k, (name, table) in enumerate(self.tables.items()):
            column = x[:, f + k]
            with np.errstate(invalid="ignore"):  # NaN: refused just below
                codes = column.astype(np.intp)
            if not np.array_equal(codes, column):  # NaN, fractions, values beyond intp
                raise ValueError(f"embedding column {name!r} holds values that are not "
                                 "integer codes")
            try:
                parts.append(table.forward(codes, training))
            except ValueError as exc:
                raise ValueError(f"embedding column {name!r}: {exc}") from None
        return np.concatenate(parts, axis=1)

    def backward(self, dy, input_grad=True):
        for table, columns in zip(self.tables.values(), self._columns):
            table.backward(dy[:, columns])
        if not input_grad:
            return None
        dx = np.zeros((len(dy), self.features + len(self.tables)), dtype=dy.dtype)
        dx[:, :self.features] = dy[:, :self.features]
        return dx

    def parameters(self):
        return {f"{name}.E": table.E for name, table in self.tables.items()}

    def penalty(self):
        return sum(table.penalty() for table in self.tables.values())
