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

import math

import keras
import numpy as np
from keras import ops

# Private, but it is the exact adapter `fit` wraps NumPy arrays in.
from keras.src.trainers.data_adapters import get_data_adapter

from compare import data as data_mod
from compare import modes
from keras_impl.model import get_weights, set_weights
from keras_impl.runtime import backend


def _float64_available() -> bool:
    """Whether keras.ops computes in float64 when asked to.

    Parity: only on TensorFlow. Keras's type promotion narrows 64-bit results to 32 bits
    on the other backends ("aligned with JAX's default": keras.src.backend.common.dtypes,
    BIT64_TO_BIT32_DTYPE), and JAX without x64 has no float64 at all.
    """
    return backend() == "tensorflow"


class AdamTorchFormula(keras.optimizers.Adam):
    """Adam with torch.optim.Adam's update, step for step (`adam_formula = "torch"`).

    Parity: stock Keras Adam folds the bias correction into the step size, adds epsilon
    to sqrt(v) rather than to sqrt(v_hat), and computes 1 - beta**t in float32; torch
    adds epsilon to sqrt(v_hat) and computes the corrections in float64 (Python floats).
    No epsilon makes the two agree, so for lockstep parity one side must re-implement
    the other. It is this side: a Keras optimizer overrides one method, `update_step`,
    and keeps Keras's slot variables, while a torch optimizer would need its own state
    handling; and torch's form is the textbook one (Kingma and Ba, Algorithm 1).
    """

    def _bias_corrections(self, learning_rate, dtype):
        """torch's lr / (1 - beta_1**t) and sqrt(1 - beta_2**t), as `dtype` scalars."""
        if _float64_available():
            # torch: computed in float64 (Python floats), then used as float32 scalars.
            # convert_to_tensor with the dtype: ops.cast would round 0.999 to float32 first.
            step = ops.cast(self.iterations + 1, "float64")
            beta_1 = ops.convert_to_tensor(self.beta_1, dtype="float64")
            beta_2 = ops.convert_to_tensor(self.beta_2, dtype="float64")
            bias_correction1 = 1 - ops.power(beta_1, step)
            bias_correction2 = 1 - ops.power(beta_2, step)
            step_size = ops.cast(ops.cast(learning_rate, "float64") / bias_correction1, dtype)
            return step_size, ops.cast(ops.sqrt(bias_correction2), dtype)
        # Parity: no float64 here (see _float64_available). 1 - beta**t = -expm1(t * log(beta)) with
        # log(beta) taken in float64 on the host keeps the relative error near float32's
        # (1 - float32(0.999)**t would be off by 1.3e-5 relative at t = 1), not exact.
        step = ops.cast(self.iterations + 1, dtype)
        bias_correction1 = -ops.expm1(ops.multiply(step, math.log(self.beta_1)))
        bias_correction2 = -ops.expm1(ops.multiply(step, math.log(self.beta_2)))
        step_size = ops.divide(ops.cast(learning_rate, dtype), bias_correction1)
        return step_size, ops.sqrt(bias_correction2)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        gradient = ops.cast(gradient, dtype)
        step_size, bias_correction2_sqrt = self._bias_corrections(learning_rate, dtype)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        # torch: exp_avg.lerp_(grad, 1 - beta1) = m + (1 - beta1) * (g - m)
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        # torch: exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        self.assign(
            v,
            ops.add(
                ops.multiply(v, self.beta_2),
                ops.multiply(ops.multiply(gradient, 1 - self.beta_2), gradient),
            ),
        )
        # torch: denom = sqrt(v) / sqrt(bc2) + eps; param.addcdiv_(m, denom, -step_size)
        denominator = ops.add(ops.divide(ops.sqrt(v), bias_correction2_sqrt), self.epsilon)
        self.assign_sub(variable, ops.divide(ops.multiply(m, step_size), denominator))


def make_optimizer(train_spec) -> keras.optimizers.Optimizer:
    if train_spec.optimizer == "sgd":
        return keras.optimizers.SGD(
            learning_rate=train_spec.learning_rate,
            momentum=train_spec.momentum,
            nesterov=train_spec.nesterov,
        )
    if train_spec.optimizer == "adam":
        # Parity: "torch" swaps in torch's update (see AdamTorchFormula); "native" is stock.
        adam = AdamTorchFormula if train_spec.adam_formula == "torch" else keras.optimizers.Adam
        return adam(
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


def _tensorflow_gradients(model: keras.Model, x: np.ndarray, y: np.ndarray):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = loss_fn()(y, model(x, training=True))
    return loss, tape.gradient(loss, model.trainable_variables)


def _jax_gradients(model: keras.Model, x: np.ndarray, y: np.ndarray):
    import jax

    # JAX differentiates pure functions: the model is called statelessly on the values.
    def loss_of(trainable):
        logits, _ = model.stateless_call(
            trainable, [v.value for v in model.non_trainable_variables], x, training=True
        )
        return loss_fn()(y, logits)

    return jax.value_and_grad(loss_of)([v.value for v in model.trainable_variables])


def _torch_gradients(model: keras.Model, x: np.ndarray, y: np.ndarray):
    import torch

    # torch.autograd.grad leaves the parameters' .grad untouched (no state to reset).
    loss = loss_fn()(y, model(x, training=True))
    parameters = [v.value for v in model.trainable_variables]
    return loss, torch.autograd.grad(loss, parameters, allow_unused=True)


# Parity: the one backend-specific piece of training code; the Keras API has no
# "gradients of this loss" call, and fit's own train_step computes them the same ways.
GRADIENTS = {
    "tensorflow": _tensorflow_gradients,
    "jax": _jax_gradients,
    "torch": _torch_gradients,
}


def loss_and_gradients(
    model: keras.Model, x: np.ndarray, y: np.ndarray
) -> tuple[float, list[np.ndarray]]:
    """The training-mode loss on one batch and its gradients, in the canonical layout."""
    loss, gradients = GRADIENTS[backend()](model, x, y)
    gradients = [
        ops.zeros_like(v) if g is None else g
        for g, v in zip(gradients, model.trainable_variables, strict=True)
    ]
    return float(ops.convert_to_numpy(loss)), _as_canonical(model, gradients)


class Trainer:
    """Owns the optimizer state for one model, on the run's device ("cpu" or "gpu")."""

    def __init__(
        self,
        model: keras.Model,
        train_spec,
        mode: str = modes.DEFAULT_MODE,
        device: str = "cpu",
    ):
        # Parity: `device` is not used here. Keras places variables and steps on its
        # backend's device itself: the GPU when it sees one, and runtime.configure
        # hides the GPU from it for a CPU run. PyTorch moves the model itself.
        self.model = model
        self.batch_size = train_spec.batch_size
        self.loss = train_spec.loss
        # Tuned: a compiled train step, several steps per compiled call (fewer host
        # syncs); idiomatic: compile's defaults. Per backend: compare/modes.py.
        dropout = any(isinstance(layer, keras.layers.Dropout) for layer in model.layers)
        execution = modes.keras_compile_options(mode, keras.backend.backend(), dropout)
        model.compile(
            optimizer=make_optimizer(train_spec), loss=loss_fn(train_spec.loss), **execution
        )
        self._native_inputs = None
        self._resident = None  # (x, y, their tensors), TensorFlow backend only

    def _targets(self, y: np.ndarray) -> np.ndarray:
        if self.loss == "softmax_categorical_crossentropy":
            # Parity: one-hot targets made before fit, as the seed script's tf.one_hot;
            # PyTorch makes them per batch inside its loss.
            return np.eye(self.model.output_shape[-1], dtype=np.float32)[y]
        return y

    def train_epoch(self, x: np.ndarray, y: np.ndarray, order=None) -> float:
        """One pass over the rows of (x, y) in `order` (the arrays' own order without
        one); returns the mean training loss."""
        if backend() == "tensorflow":
            # Converted to tensors on the first call, kept while the same arrays come back.
            if self._resident is None or self._resident[0] is not x or self._resident[1] is not y:
                import tensorflow as tf

                self._resident = (x, y, tf.constant(x), tf.constant(self._targets(y)))
            _, _, inputs, targets = self._resident
            epoch = {"x": _tf_dataset(inputs, targets, self.batch_size, order)}
        else:
            if order is not None:
                x, y = x[order], y[order]
            epoch = {"x": x, "y": self._targets(y), "batch_size": self.batch_size}
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
            self._native_inputs = (data_mod.preprocess(images, data_spec), self._targets(y))
        x, targets = self._native_inputs
        if order is not None:
            x, targets = x[order], targets[order]
        history = self.model.fit(
            x, targets, batch_size=self.batch_size, epochs=1, shuffle=order is None, verbose=0
        )
        return float(history.history["loss"][0])

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One optimizer step on one batch, as `train_epoch` takes it; returns its loss."""
        # train_on_batch runs the same compiled train function as fit.
        return float(self.model.train_on_batch(x, y))

    def apply_gradients(self, gradients: list[np.ndarray]) -> None:
        """One optimizer step with the given canonical-layout gradients."""
        tensors = _as_native(self.model, gradients)
        self.model.optimizer.apply_gradients(
            zip(tensors, self.model.trainable_variables, strict=True)
        )


def predict(model: keras.Model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Logits for x in inference mode (dropout off)."""
    return ops.convert_to_numpy(model.predict(x, batch_size=batch_size, verbose=0))
