"""Keras training and prediction on the shared arrays (mirrors pytorch_impl.train).

The runner hands each epoch the shared arrays and the shared shuffled order, so both
frameworks see the same batches; `fit` runs one epoch with shuffle off and its logged
loss is the mean over examples, which is what the PyTorch side reports. With
`data.pipeline = "native"` the examples come instead through each framework's own
input path, as the seed scripts feed them (`train_epoch_native`). The parity suite also
takes single steps, computes gradients and applies given gradients, always in the
canonical layout.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

# Private, but it is the exact adapter `fit` wraps NumPy arrays in.
from keras.src.trainers.data_adapters import get_data_adapter

from compare.spec.identity import DEFAULT_MODE
from keras_impl import augment, backends, execution
from keras_impl.model import get_weights, set_weights
from keras_impl.optimizers import make_optimizer
from keras_impl.runtime import backend


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


def training_batches(x: np.ndarray, y: np.ndarray, batch_size: int, order=None):
    """The (inputs, labels) tensors `train_epoch` feeds the model, in order: the arrays'
    rows in `order` (all of them, in place, without one)."""
    if backend() == "tensorflow":
        import tensorflow as tf

        yield from _tf_dataset(tf.constant(x), tf.constant(y), batch_size, order)
        return
    if order is not None:
        x, y = x[order], y[order]
    # Parity: shuffle=False, as train_epoch passes it to fit.
    adapter = get_data_adapter(x, y, batch_size=batch_size, shuffle=False)
    # The iterator each backend's `fit` draws its batches from.
    iterators = {"jax": adapter.get_jax_iterator, "torch": adapter.get_torch_dataloader}
    yield from iterators[backend()]()


def _tf_dataset(inputs, targets, batch_size: int, order):
    """The epoch as a tf.data pipeline over tensors already in TensorFlow.

    Parity: TensorFlow backend only. `fit` on NumPy arrays converts them to tensors at
    every call (one call per epoch here) and slices each batch in a dataset map; with
    the arrays held as tensors and the epoch gathered in TensorFlow, the MLP's steady
    epoch went from 1.19-2.07 s to 1.03-1.30 s (1 thread, 4 epochs each, alternating
    in one process), with the same loss to the last digit. The other backends' `fit`
    has no such conversion to save: they get the arrays.
    """
    import tensorflow as tf

    if order is not None:
        index = tf.constant(order)
        inputs, targets = tf.gather(inputs, index), tf.gather(targets, index)
    return tf.data.Dataset.from_tensor_slices((inputs, targets)).batch(batch_size)


def _as_canonical(model: keras.Model, tensors) -> list[np.ndarray]:
    """Per-variable tensors (gradients) in the canonical layout.

    Gradients have their variables' shapes, so the model's own weight mapping lays them
    out: one definition of the canonical layout serves weights and gradients alike.
    """
    saved = get_weights(model)
    for variable, tensor in zip(model.trainable_variables, tensors, strict=True):
        variable.assign(tensor)
    canonical = get_weights(model)
    set_weights(model, saved)
    return canonical


def _as_native(model: keras.Model, arrays: list[np.ndarray]) -> list:
    """Canonical-layout arrays shaped like the model's trainable variables."""
    saved = get_weights(model)
    set_weights(model, arrays)
    # Copied out: on the torch backend convert_to_numpy shares the parameter's memory.
    copies = [np.array(ops.convert_to_numpy(v)) for v in model.trainable_variables]
    set_weights(model, saved)
    return [ops.convert_to_tensor(copy) for copy in copies]


class Trainer:
    """Owns the optimizer state for one model, on the run's device ("cpu" or "gpu")."""

    def __init__(
        self,
        model: keras.Model,
        train_spec,
        mode: str = DEFAULT_MODE,
        device: str = "cpu",
    ):
        # Parity: `device` is not used here. Keras places variables and steps on its
        # backend's device itself: the GPU when it sees one, and runtime.configure
        # hides the GPU from it for a CPU run. PyTorch moves the model itself.
        self.model = model
        self.batch_size = train_spec.batch_size
        self.loss = train_spec.loss
        # Tuned: a compiled train step, several steps per compiled call (fewer host
        # syncs); idiomatic: compile's defaults. Per backend: keras_impl/execution.py.
        dropout = any(isinstance(layer, keras.layers.Dropout) for layer in model.layers)
        options = execution.options(mode, keras.backend.backend(), dropout)
        self.loss_function = loss_fn(train_spec.loss)
        model.compile(optimizer=make_optimizer(train_spec), loss=self.loss_function, **options)
        self._native_inputs = None
        self._resident = None  # (x, y, their tensors), TensorFlow backend only
        # Parity's study-path level sets a list here: every batch the epoch hands `fit`
        # is appended (NumPy), so what the entry point really consumed can be compared.
        self.fed_batches: list | None = None

    def _targets(self, y: np.ndarray) -> np.ndarray:
        if self.loss == "softmax_categorical_crossentropy":
            # Parity: one-hot targets made before fit, as the seed script's tf.one_hot;
            # PyTorch makes them per batch inside its loss.
            return np.eye(self.model.output_shape[-1], dtype=np.float32)[y]
        return y

    def train_epoch(self, x: np.ndarray, y: np.ndarray, order=None, augmentation=None) -> float:
        """One pass over the rows of (x, y) in `order` (the arrays' own order without
        one); returns the mean training loss. With `augmentation`, every row is first
        transformed with its parameters (`keras_impl.augment`), inside the epoch."""
        if backend() == "tensorflow":
            # Converted to tensors on the first call, kept while the same arrays come back.
            if self._resident is None or self._resident[0] is not x or self._resident[1] is not y:
                import tensorflow as tf

                self._resident = (x, y, tf.constant(x), tf.constant(self._targets(y)))
            _, _, inputs, targets = self._resident
            if augmentation is not None:
                inputs = augment.augment(inputs, augmentation)
            epoch = {"x": _tf_dataset(inputs, targets, self.batch_size, order)}
        else:
            if augmentation is not None:
                # Parity: back to NumPy, the form fit takes on these backends.
                x = np.asarray(ops.convert_to_numpy(augment.augment(x, augmentation)))
            if order is not None:
                x, y = x[order], y[order]
            epoch = {"x": x, "y": self._targets(y), "batch_size": self.batch_size}
        if self.fed_batches is not None:
            self.fed_batches.extend(_batches_of(epoch))
        # Parity: shuffle=False because the order was already shuffled for both sides.
        history = self.model.fit(**epoch, epochs=1, shuffle=False, verbose=0)
        return float(history.history["loss"][0])

    def train_epoch_native(
        self, images: np.ndarray, y: np.ndarray, data_spec, seed: int, order=None
    ) -> float:
        """One epoch the way the Keras seed script feeds data: the whole array
        preprocessed once and kept in memory, then `fit`. With `order` (idiomatic mode)
        fit follows the shared epoch order; without it, fit shuffles every epoch itself
        (from Keras's global seed, set from `seed` by `configure`)."""
        if self._native_inputs is None:
            self._native_inputs = (_preprocess(images, data_spec), self._targets(y))
        x, targets = self._native_inputs
        if order is not None:
            x, targets = x[order], targets[order]
            if self.fed_batches is not None:
                self.fed_batches.extend(
                    _batches_of({"x": x, "y": targets, "batch_size": self.batch_size})
                )
        history = self.model.fit(
            x, targets, batch_size=self.batch_size, epochs=1, shuffle=order is None, verbose=0
        )
        return float(history.history["loss"][0])

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One optimizer step on one batch, as `train_epoch` takes it; returns its loss."""
        # train_on_batch runs the same compiled train function as fit, on the targets fit
        # gets (one-hot for softmax_categorical_crossentropy).
        return float(self.model.train_on_batch(x, self._targets(y)))

    def loss_and_gradients(self, x: np.ndarray, y: np.ndarray) -> tuple[float, list[np.ndarray]]:
        """The loss of one batch as `train_step` computes it (the spec's loss and target
        form, training mode) and its gradients in the canonical layout; no update."""
        targets = self._targets(y)

        def loss_of(call):
            # Parity: the loss `compile` was given; fit averages it over the batch.
            return ops.mean(self.loss_function(targets, call(x, training=True)))

        # Parity: the Keras API has no "gradients of this loss" call; each backend computes
        # them its own way (keras_impl.backends), the ways fit's own train_step does.
        loss, gradients = backends.current().value_and_gradients(self.model, loss_of)
        gradients = [
            ops.zeros_like(v) if g is None else g
            for g, v in zip(gradients, self.model.trainable_variables, strict=True)
        ]
        return float(ops.convert_to_numpy(loss)), _as_canonical(self.model, gradients)

    def apply_gradients(self, gradients: list[np.ndarray]) -> None:
        """One optimizer step with the given canonical-layout gradients."""
        tensors = _as_native(self.model, gradients)
        self.model.optimizer.apply_gradients(
            zip(tensors, self.model.trainable_variables, strict=True)
        )


def _batches_of(epoch: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (inputs, targets) batches `fit(**epoch, shuffle=False)` steps on, as NumPy: the
    tf.data dataset it is given, or the adapter fit wraps arrays in."""
    if "y" not in epoch:
        return [(np.asarray(x), np.asarray(y)) for x, y in epoch["x"]]
    adapter = get_data_adapter(
        epoch["x"], epoch["y"], batch_size=epoch["batch_size"], shuffle=False
    )
    return [(np.asarray(x), np.asarray(y)) for x, y in adapter.get_numpy_iterator()]


def _preprocess(images: np.ndarray, data_spec) -> np.ndarray:
    """The Keras seed script's preprocessing: the whole uint8 array scaled at once in
    NumPy, (x / pixel_divisor - mean) / std in float32. Parity: the same operations, in
    the same order, as the shared split's (compare.data.split.preprocess), so the native
    path changes how batches are made, not a single input value (checked by parity's
    data level)."""
    x = images.astype(np.float32) / np.float32(data_spec.pixel_divisor)
    return (x - np.float32(data_spec.mean)) / np.float32(data_spec.std)


def predict(model: keras.Model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Logits for x in inference mode (dropout off)."""
    return ops.convert_to_numpy(model.predict(x, batch_size=batch_size, verbose=0))
