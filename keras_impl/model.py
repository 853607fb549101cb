"""Keras models built from a ModelSpec, and weights in the canonical layout.

Canonical layout (shared with pytorch_impl): one (kernel, bias) pair per dense layer in
order, kernel shaped (in, out), which is Keras's own Dense layout.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from compare.data import IMAGE_SHAPE


@keras.ops.custom_gradient
def custom_relu(x):
    """ReLU through a hand-written backward (`tf.custom_gradient` under the TensorFlow
    backend): clamp forward, zero the gradient where the input is < 0, as `MyReLU`."""

    def grad(*args, upstream=None):
        if upstream is None:
            (upstream,) = args
        return keras.ops.where(x < 0, keras.ops.zeros_like(upstream), upstream)

    return keras.ops.maximum(x, 0.0), grad


ACTIVATIONS = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "custom_relu": custom_relu}


def _initializer(kind: str, fan_in: int):
    if kind == "uniform_fan_in":
        # PyTorch's default U(+-1/sqrt(fan_in)); Keras would use glorot_uniform.
        bound = 1.0 / math.sqrt(fan_in)
        return keras.initializers.RandomUniform(-bound, bound)
    if kind == "glorot_uniform":
        return keras.initializers.GlorotUniform()
    if kind == "zeros":
        return keras.initializers.Zeros()
    if kind == "standard_normal":
        return keras.initializers.RandomNormal(0.0, 1.0)  # torch.randn's distribution
    raise ValueError(f"unknown initializer {kind!r}")


def dense(in_features: int, out_features: int, model_spec) -> keras.layers.Dense:
    # Parity: both sides initialise from the spec, not from their own defaults.
    return keras.layers.Dense(
        out_features,
        use_bias=model_spec.use_bias,
        kernel_initializer=_initializer(model_spec.kernel_init, in_features),
        bias_initializer=_initializer(model_spec.bias_init, in_features),
    )


def build_model(model_spec) -> keras.Sequential:
    """(B, 28, 28) float32 -> (B, num_classes) logits. "logreg" has no hidden layers."""
    if model_spec.architecture not in ("mlp", "logreg"):
        # The regression nets are not classifiers: they have their own contract.
        raise ValueError(f"{model_spec.architecture!r} is built by the regression module")
    layers: list[keras.layers.Layer] = [keras.Input(IMAGE_SHAPE), keras.layers.Flatten()]
    width = math.prod(IMAGE_SHAPE)
    for size in model_spec.hidden_sizes:
        layers.append(dense(width, size, model_spec))
        layers.append(keras.layers.Activation(ACTIVATIONS[model_spec.activation]))
        if model_spec.dropout_rate > 0:
            layers.append(keras.layers.Dropout(model_spec.dropout_rate))
        width = size
    layers.append(dense(width, model_spec.num_classes, model_spec))
    if model_spec.output_activation == "relu":
        layers.append(keras.layers.Activation("relu"))
    return keras.Sequential(layers)


def _dense_layers(model: keras.Model) -> list[keras.layers.Dense]:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]


def count_parameters(model: keras.Model) -> int:
    return int(model.count_params())


def get_weights(model: keras.Model) -> list[np.ndarray]:
    """Weights in the canonical layout: [kernel (in, out), bias (out,)] per layer."""
    weights = []
    for layer in _dense_layers(model):
        weights.append(np.array(layer.kernel.numpy()))
        weights.append(np.array(layer.bias.numpy()))
    return weights


def set_weights(model: keras.Model, weights: list[np.ndarray]) -> None:
    """Load canonical-layout weights (the inverse of get_weights, exactly)."""
    layers = _dense_layers(model)
    if len(weights) != 2 * len(layers):
        raise ValueError(f"expected {2 * len(layers)} arrays, got {len(weights)}")
    for layer, kernel, bias in zip(layers, weights[0::2], weights[1::2], strict=True):
        layer.kernel.assign(kernel)
        layer.bias.assign(bias)
