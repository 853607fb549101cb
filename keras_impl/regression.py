"""Keras regression nets of "Learning PyTorch with Examples" (mirrors pytorch_impl.regression).

`two_layer_net`: y = relu(x W1) W2. `dynamic_net`: an input layer, a middle layer
applied `depth` times with the same weights, an output layer. The depth of each
forward pass is an argument: `compare.run.regression` draws it from a seeded sequence both
frameworks follow, so they can be compared step by step.

Contract (`compare.run.contract.RegressionNets`, called by the worker's loop): build_model,
count_parameters, get_weights, set_weights, Trainer (one full-batch step per call),
predict. Canonical weights: kernel (in, out) and, with use_bias, bias per layer, in the
order input, middle (dynamic_net only), output.

Written on keras.ops, so it runs on every Keras backend; the gradients come from the
backend's own `value_and_gradients` (keras_impl.backends).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_impl import backends
from keras_impl.model import ACTIVATIONS, dense
from keras_impl.optimizers import make_optimizer


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


def _variables_used(model: RegressionNet, depth: int) -> list:
    """The trainable variables a forward pass at `depth` reads: all but the middle
    layer's at depth 0."""
    layers = [model.input_linear, model.output_linear]
    if depth > 0:
        layers.append(model.middle_linear)
    return [variable for layer in layers for variable in layer.trainable_variables]


def count_parameters(model: RegressionNet) -> int:
    return int(model.count_params())


def get_weights(model: RegressionNet) -> list[np.ndarray]:
    weights = []
    for layer in _layers(model):
        weights.append(np.array(ops.convert_to_numpy(layer.kernel)))  # a copy on every backend
        if layer.bias is not None:
            weights.append(np.array(ops.convert_to_numpy(layer.bias)))
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
    return ops.sum(ops.square(prediction - target))


class Trainer:
    """Owns the optimizer state, on the run's device; each `step` is one full-batch update."""

    def __init__(self, model: RegressionNet, train_spec, device: str = "cpu"):
        # Parity: `device` is not used: Keras places its work itself (see train.Trainer).
        self.model = model
        self.optimizer = make_optimizer(train_spec)
        self.optimizer.build(model.trainable_variables)
        self._backend = backends.current()
        # One step per depth, compiled where the backend compiles (tf.function, jax.jit):
        # Python control flow is fixed when a step is traced, so each depth gets its own
        # (at most max_middle_repeats + 1).
        self._steps = {}

    def _step(self, x, y, depth: int):
        loss, gradients = self._backend.value_and_gradients(
            self.model, lambda call: sum_squared_error(call(x, depth=depth), y)
        )
        # Parity: at depth 0 the middle layer gets no gradient; torch's optimizers then
        # skip it (momentum included), so it is left out here too. Told from the depth,
        # not from the gradients: JAX gives zeros, not None, for a variable not used.
        used = {id(variable) for variable in _variables_used(self.model, depth)}
        variables = self.model.trainable_variables
        pairs = [(g, v) for g, v in zip(gradients, variables, strict=True) if id(v) in used]
        self.optimizer.apply_gradients(pairs)
        return loss

    def step(self, x: np.ndarray, y: np.ndarray, depth: int = 0) -> float:
        """One update on (x, y); returns the loss before it, as the tutorial prints."""
        if depth not in self._steps:
            self._steps[depth] = self._backend.compile_step(
                lambda x, y, depth=depth: self._step(x, y, depth),
                self.model.variables + self.optimizer.variables,
            )
        # As backend tensors: a torch tensor does not subtract a NumPy array.
        return float(self._steps[depth](ops.convert_to_tensor(x), ops.convert_to_tensor(y)))


def predict(model: RegressionNet, x: np.ndarray, depth: int = 0) -> np.ndarray:
    return ops.convert_to_numpy(model(x, depth=depth))
