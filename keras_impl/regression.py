"""Keras regression nets of "Learning PyTorch with Examples" (mirrors pytorch_impl.regression).

`two_layer_net`: y = relu(x W1) W2. `dynamic_net`: an input layer, a middle layer
applied `depth` times with the same weights, an output layer. The depth of each
forward pass is an argument: `compare.regression` draws it from a seeded sequence both
frameworks follow, so they can be compared step by step.

Contract (called only by compare.regression and the tests): build_model,
count_parameters, get_weights, set_weights, Trainer (one full-batch step per call),
predict. Canonical weights: kernel (in, out) and, with use_bias, bias per layer, in the
order input, middle (dynamic_net only), output.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_impl.model import ACTIVATIONS, dense
from keras_impl.train import make_optimizer


class RegressionNet(keras.Model):
    """(N, input_size) -> (N, output_size)."""

    def __init__(self, model_spec, input_size: int, output_size: int):
        super().__init__()
        (hidden,) = model_spec.hidden_sizes
        self.input_linear = dense(input_size, hidden, model_spec)
        self.middle_linear = (
            dense(hidden, hidden, model_spec) if model_spec.architecture == "dynamic_net" else None
        )
        self.output_linear = dense(hidden, output_size, model_spec)
        self.activation = keras.layers.Activation(ACTIVATIONS[model_spec.activation])

    def call(self, x, depth: int = 0):
        h = self.activation(self.input_linear(x))
        for _ in range(depth):  # weight sharing: the same layer each time
            h = self.activation(self.middle_linear(h))
        return self.output_linear(h)


def build_model(model_spec, input_size: int, output_size: int) -> RegressionNet:
    model = RegressionNet(model_spec, input_size, output_size)
    # Create every variable now (depth 1 reaches the middle layer), as torch does.
    model(np.zeros((1, input_size), np.float32), depth=int(model.middle_linear is not None))
    return model


def _layers(model: RegressionNet) -> list[keras.layers.Dense]:
    candidates = (model.input_linear, model.middle_linear, model.output_linear)
    return [layer for layer in candidates if layer is not None]


def count_parameters(model: RegressionNet) -> int:
    return int(model.count_params())


def get_weights(model: RegressionNet) -> list[np.ndarray]:
    weights = []
    for layer in _layers(model):
        weights.append(np.array(layer.kernel.numpy()))
        if layer.bias is not None:
            weights.append(np.array(layer.bias.numpy()))
    return weights


def set_weights(model: RegressionNet, weights: list[np.ndarray]) -> None:
    """Load canonical-layout weights (the inverse of get_weights, exactly)."""
    targets = []
    for layer in _layers(model):
        targets.append(layer.kernel)
        if layer.bias is not None:
            targets.append(layer.bias)
    if len(weights) != len(targets):
        raise ValueError(f"expected {len(targets)} arrays, got {len(weights)}")
    for variable, value in zip(targets, weights, strict=True):
        variable.assign(value)


def sum_squared_error(prediction, target):
    """The tutorial's loss: (y_pred - y).pow(2).sum(), i.e. MSELoss(reduction="sum")."""
    return keras.ops.sum(keras.ops.square(prediction - target))


class Trainer:
    """Owns the optimizer state, on the run's device; each `step` is one full-batch update."""

    def __init__(self, model: RegressionNet, train_spec, device: str = "cpu"):
        # Parity: `device` is not used: Keras places its work itself (see train.Trainer).
        self.model = model
        self.optimizer = make_optimizer(train_spec)
        self.optimizer.build(model.trainable_variables)
        # One traced step per depth: Python control flow is fixed when tf.function
        # traces, so each depth gets its own graph (at most max_middle_repeats + 1).
        self._steps: dict[int, tf.types.experimental.PolymorphicFunction] = {}

    def _step(self, x, y, depth: int):
        with tf.GradientTape() as tape:
            loss = sum_squared_error(self.model(x, depth=depth), y)
        variables = self.model.trainable_variables
        gradients = tape.gradient(loss, variables)
        # Parity: at depth 0 the middle layer gets no gradient; torch's optimizers then
        # skip it (momentum included), so it is left out here too.
        pairs = [(g, v) for g, v in zip(gradients, variables, strict=True) if g is not None]
        self.optimizer.apply_gradients(pairs)
        return loss

    def step(self, x: np.ndarray, y: np.ndarray, depth: int = 0) -> float:
        """One update on (x, y); returns the loss before it, as the tutorial prints."""
        if depth not in self._steps:
            self._steps[depth] = tf.function(lambda x, y, depth=depth: self._step(x, y, depth))
        return float(self._steps[depth](x, y))


def predict(model: RegressionNet, x: np.ndarray, depth: int = 0) -> np.ndarray:
    return np.asarray(model(x, depth=depth))
