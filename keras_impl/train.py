"""Keras training and prediction on the shared arrays (mirrors pytorch_impl.train).

The runner hands each epoch's examples already in the shared shuffled order, so both
frameworks see the same batches; `fit` runs one epoch with shuffle off and its logged
loss is the mean over examples, which is what the PyTorch side reports.
"""

from __future__ import annotations

import keras
import numpy as np


def make_optimizer(train_spec) -> keras.optimizers.Optimizer:
    if train_spec.optimizer == "sgd":
        return keras.optimizers.SGD(
            learning_rate=train_spec.learning_rate,
            momentum=train_spec.momentum,
            nesterov=train_spec.nesterov,
        )
    if train_spec.optimizer == "adam":
        return keras.optimizers.Adam(
            learning_rate=train_spec.learning_rate,
            beta_1=train_spec.beta_1,
            beta_2=train_spec.beta_2,
            epsilon=train_spec.epsilon,  # Parity: explicit, PyTorch's default differs
        )
    raise ValueError(f"unknown optimizer {train_spec.optimizer!r}")


def loss_fn() -> keras.losses.Loss:
    """Cross-entropy on logits, mean over the batch."""
    # Parity: from_logits on both sides; a softmax layer + CCE would differ.
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


class Trainer:
    """Owns the optimizer state for one model."""

    def __init__(self, model: keras.Model, train_spec):
        self.model = model
        self.batch_size = train_spec.batch_size
        model.compile(optimizer=make_optimizer(train_spec), loss=loss_fn())

    def train_epoch(self, x: np.ndarray, y: np.ndarray) -> float:
        """One pass over (x, y) in the given order; returns the mean training loss."""
        # Parity: shuffle=False because the order was already shuffled for both sides.
        history = self.model.fit(
            x, y, batch_size=self.batch_size, epochs=1, shuffle=False, verbose=0
        )
        return float(history.history["loss"][0])


def predict(model: keras.Model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Logits for x in inference mode (dropout off)."""
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
