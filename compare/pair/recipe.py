"""What the training levels train with: one loss for both sides, and a fresh optimizer
per side for each level.

Stage: pair.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class Loss:
    """One loss on both sides: torch(output, target) and Keras's (y_true, y_pred)."""

    name: str
    torch: Callable
    keras: Callable | object


@dataclasses.dataclass(frozen=True)
class Optimizers:
    """Fresh optimizers for each training level: torch(model) and keras()."""

    torch: Callable
    keras: Callable


LOSSES = ("cross_entropy", "nll", "mse")


def loss_named(name: str) -> Loss:
    """cross_entropy (logits, integer labels), nll (log-probabilities), mse."""
    import keras
    import torch.nn.functional as F

    def keras_nll(y_true, log_probabilities):
        labels = keras.ops.expand_dims(keras.ops.cast(y_true, "int32"), -1)
        return -keras.ops.take_along_axis(log_probabilities, labels, axis=-1)[:, 0]

    def torch_cross_entropy(out, y):
        if out.ndim > 2:  # (N, T, classes) as Keras's sparse cross-entropy reads it
            return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.long().reshape(-1))
        return F.cross_entropy(out, y.long())

    losses = {
        "cross_entropy": Loss(
            "cross_entropy",
            torch_cross_entropy,
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        ),
        "nll": Loss("nll", lambda out, y: F.nll_loss(out, y.long()), keras_nll),
        "mse": Loss("mse", F.mse_loss, keras.losses.MeanSquaredError()),
    }
    if name not in losses:
        raise ValueError(f"unknown loss '{name}' (known: {', '.join(losses)}, or a Loss)")
    return losses[name]
