"""Keras training and prediction on the shared arrays (mirrors pytorch_impl.train).

The runner hands each epoch's examples already in the shared shuffled order, so both
frameworks see the same batches; `fit` runs one epoch with shuffle off and its logged
loss is the mean over examples, which is what the PyTorch side reports. With
`data.pipeline = "native"` the examples come instead through each framework's own
input path, as the seed scripts feed them (`train_epoch_native`).
"""

from __future__ import annotations

import keras
import numpy as np

from compare import data as data_mod


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
    if train_spec.optimizer == "rmsprop":
        # Parity: rho/epsilon explicit; Keras adds epsilon inside the square root,
        # PyTorch outside (parity-notes.md).
        return keras.optimizers.RMSprop(
            learning_rate=train_spec.learning_rate,
            rho=train_spec.rho,
            epsilon=train_spec.epsilon,
            momentum=train_spec.momentum,
        )
    raise ValueError(f"unknown optimizer {train_spec.optimizer!r}")


def _log_softmax_nll(labels, logits):
    labels = keras.ops.expand_dims(keras.ops.cast(labels, "int32"), axis=-1)
    log_probs = keras.ops.log_softmax(logits, axis=-1)
    return -keras.ops.squeeze(keras.ops.take_along_axis(log_probs, labels, axis=-1), axis=-1)


def _softmax_categorical_crossentropy(one_hot, logits):
    # A softmax output then categorical_crossentropy, as the seed-002 script compiles
    # it. Keras's TensorFlow backend sees the Softmax op and computes the loss from its
    # logits; this keeps that behaviour instead of assuming it.
    return keras.losses.categorical_crossentropy(one_hot, keras.activations.softmax(logits))


def loss_fn(loss: str = "cross_entropy"):
    """The training loss, mean over the batch; the model always returns logits."""
    if loss == "cross_entropy":
        # Parity: from_logits on both sides; a softmax layer + CCE would differ.
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if loss == "log_softmax_nll":
        # As the PyTorch tutorials write it; Keras has no NLL loss of its own.
        return _log_softmax_nll
    if loss == "softmax_categorical_crossentropy":
        return _softmax_categorical_crossentropy
    raise ValueError(f"unknown loss {loss!r}")


class Trainer:
    """Owns the optimizer state for one model."""

    def __init__(self, model: keras.Model, train_spec):
        self.model = model
        self.batch_size = train_spec.batch_size
        self.loss = train_spec.loss
        model.compile(optimizer=make_optimizer(train_spec), loss=loss_fn(train_spec.loss))
        self._native_inputs = None

    def _targets(self, y: np.ndarray) -> np.ndarray:
        if self.loss == "softmax_categorical_crossentropy":
            # Parity: one-hot targets made before fit, as the seed script's tf.one_hot;
            # PyTorch makes them per batch inside its loss.
            return np.eye(self.model.output_shape[-1], dtype=np.float32)[y]
        return y

    def train_epoch(self, x: np.ndarray, y: np.ndarray) -> float:
        """One pass over (x, y) in the given order; returns the mean training loss."""
        # Parity: shuffle=False because the order was already shuffled for both sides.
        history = self.model.fit(
            x, self._targets(y), batch_size=self.batch_size, epochs=1, shuffle=False, verbose=0
        )
        return float(history.history["loss"][0])

    def train_epoch_native(self, images: np.ndarray, y: np.ndarray, data_spec, seed: int):
        """One epoch the way the Keras seed script feeds data: the whole preprocessed
        array in memory, `fit` shuffling it every epoch (from Keras's global seed, set
        from `seed` by `configure`)."""
        if self._native_inputs is None:
            self._native_inputs = (data_mod.preprocess(images, data_spec), self._targets(y))
        x, targets = self._native_inputs
        history = self.model.fit(
            x, targets, batch_size=self.batch_size, epochs=1, shuffle=True, verbose=0
        )
        return float(history.history["loss"][0])


def predict(model: keras.Model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Logits for x in inference mode (dropout off)."""
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
