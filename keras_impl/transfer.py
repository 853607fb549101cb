"""DenseNet-121 transfer learning in Keras (mirrors pytorch_impl.transfer).

The notes' Part 8 as a Keras user writes it: `keras.applications.DenseNet121` without
its top, global average pooling, frozen (`trainable = False`), under the dense head
(`keras_impl.model.build_model` makes it). The model takes the shared (B, S, S) grey
images in [0, 1] and first repeats them to RGB and normalises them, as the pretrained
features expect. Keras never loads a checkpoint here: the runner gives both sides
torchvision's starting weights (`compare.run.initial_weights`).

Weights in the canonical layout (shared with pytorch_impl.transfer): every weighted layer
in forward order, as float32 NumPy arrays: convolution kernel (kh, kw, in, out) (Keras's
own layout; no bias), batch norm gamma, beta, moving mean, moving variance, dense
kernel (in, out) and bias.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

# Width of DenseNet-121's pooled features, the classifier's input.
FEATURE_WIDTH = 1024
WEIGHTED_LAYERS = (keras.layers.Conv2D, keras.layers.BatchNormalization, keras.layers.Dense)


class NormalizedRGB(keras.layers.Layer):
    """(B, H, W) grey in [0, 1] -> (B, H, W, 3): the channel repeated (the tutorial's
    images are RGB), then torchvision's Normalize: (x - mean[c]) / std[c]."""

    def __init__(self, mean, std, **kwargs):
        super().__init__(**kwargs)
        self.mean, self.std = tuple(mean), tuple(std)

    def call(self, x):
        # Parity: channels last (Keras's layout), torch's are first.
        rgb = ops.repeat(ops.expand_dims(x, -1), len(self.mean), axis=-1)
        return (rgb - ops.array(self.mean, dtype=x.dtype)) / ops.array(self.std, dtype=x.dtype)


def densenet121(model_spec) -> keras.Model:
    """Keras's DenseNet-121 features with global average pooling, frozen; its starting
    weights are set afterwards from torchvision's (see the module docstring)."""
    if model_spec.features not in ("random", "imagenet"):
        raise ValueError(
            f"model.features = {model_spec.features!r}: the runner decides 'auto' before "
            "a model is built (compare.run.initial_weights.resolve_features)"
        )
    # Any input size from 32 up; the spec's image size is the data's. Parity: the
    # application zero-pads its stem's max pool where torchvision pads with -inf; after
    # the ReLU before it (values >= 0) both take the same maximum.
    network = keras.applications.DenseNet121(
        include_top=False, weights=None, input_shape=(None, None, 3), pooling="avg"
    )
    # Frozen: no trainable variable, and BatchNormalization runs in inference mode.
    network.trainable = False
    for layer in network.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.epsilon = model_spec.batchnorm_epsilon  # Parity: stock 1.001e-5 (spec)
    return network


class TransferModel(keras.Model):
    """(B, S, S) grey images -> (B, num_classes) logits: NormalizedRGB, the frozen
    DenseNet features, the classifier."""

    def __init__(self, network: keras.Model, classifier: keras.Model, model_spec):
        super().__init__()
        self.stem = NormalizedRGB(model_spec.input_mean, model_spec.input_std)
        self.network = network
        self.classifier = classifier
        # Every part is built (the applications model and the Sequential have inputs).
        self.built = True

    def call(self, x, training=False):
        # Parity: the frozen features run in inference mode even when training=True
        # (trainable=False BatchNormalization); pytorch_impl.transfer keeps them in eval.
        features = self.network(self.stem(x), training=training)
        return self.classifier(features, training=training)


def _weighted_layers(model: TransferModel) -> list[keras.layers.Layer]:
    layers = [*model.network.layers, *model.classifier.layers]
    return [layer for layer in layers if isinstance(layer, WEIGHTED_LAYERS)]


def _layer_variables(layer: keras.layers.Layer) -> list:
    """A layer's variables in canonical order (Keras's layout is the canonical one)."""
    if isinstance(layer, keras.layers.BatchNormalization):
        return [layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance]
    if isinstance(layer, keras.layers.Conv2D):
        return [layer.kernel]
    return [layer.kernel, layer.bias]


def count_parameters(model: TransferModel) -> int:
    """Parameters, frozen ones included, as torch counts them: BatchNorm's moving
    statistics are buffers there, not parameters, so they are left out here too."""
    statistics = sum(
        int(np.prod(variable.shape))
        for layer in _weighted_layers(model)
        if isinstance(layer, keras.layers.BatchNormalization)
        for variable in (layer.moving_mean, layer.moving_variance)
    )
    return int(model.count_params()) - statistics


def get_weights(model: TransferModel) -> list[np.ndarray]:
    """Every weighted layer's arrays in the canonical layout, in forward order."""
    return [
        # Variable.numpy(): convert_to_numpy warns under NumPy 2 on TensorFlow; a copy.
        np.array(variable.numpy())
        for layer in _weighted_layers(model)
        for variable in _layer_variables(layer)
    ]


def set_weights(model: TransferModel, weights: list[np.ndarray]) -> None:
    """Load canonical-layout arrays (the inverse of get_weights, exactly)."""
    targets = [
        (layer, variable)
        for layer in _weighted_layers(model)
        for variable in _layer_variables(layer)
    ]
    if len(weights) != len(targets):
        raise ValueError(f"expected {len(targets)} arrays, got {len(weights)}")
    for (layer, variable), array in zip(targets, weights, strict=True):
        if tuple(array.shape) != tuple(variable.shape):
            raise ValueError(f"canonical array {array.shape} does not fit {layer.name}")
        variable.assign(array)
