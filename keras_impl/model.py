"""Keras models built from a ModelSpec, and weights in the canonical layout.

Canonical layout (shared with pytorch_impl): one (kernel, bias) pair per weighted layer,
in forward order, as float32 NumPy arrays:
- convolution: kernel (kh, kw, in, out), bias (out,): Keras's own Conv2D layout.
- dense: kernel (in, out), bias (out,): Keras's own Dense layout. For the first dense
  layer after a flatten of a feature map, the canonical rows are in torch's (C, H, W)
  flatten order; Keras flattens its NHWC maps in (H, W, C) order, so get_weights and
  set_weights permute those rows (the flatten-after-convolution conversion).

"""

from __future__ import annotations

import contextlib
import math

import keras
import numpy as np
from keras import ops

# Private, but it is how every backend's compute_output_spec marks a shape-only call.
from keras.src.backend.common.symbolic_scope import in_symbolic_scope

from compare.spec.schema import IMAGE_SHAPE, conv_output_shape
from keras_impl import transfer


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
WEIGHTED_LAYERS = (keras.layers.Conv2D, keras.layers.Dense)
# Every dropout-like layer (Dropout, AlphaDropout, ...): the probe must see them all.
DROPOUT_LAYERS = (
    keras.layers.Dropout,
    keras.layers.AlphaDropout,
    keras.layers.GaussianDropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
)
# The other layers that compute differently in training: batch normalisation.
NORMALIZATION_LAYERS = (keras.layers.BatchNormalization,)


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


def conv(in_channels: int, out_channels: int, model_spec) -> keras.layers.Conv2D:
    size = model_spec.conv_kernel_size
    # Parity: both sides initialise from the spec; fan_in = kh * kw * in, as torch's.
    return keras.layers.Conv2D(
        out_channels,
        size,
        strides=model_spec.conv_stride,
        padding="valid",  # Parity: the padding is an explicit ZeroPadding2D before it
        kernel_initializer=_initializer(model_spec.kernel_init, size * size * in_channels),
        bias_initializer=_initializer(model_spec.bias_init, size * size * in_channels),
    )


def conv_features(model_spec) -> list[keras.layers.Layer]:
    """(B, 28, 28) -> (B, H * W * C): convolutions, pooling, then an (H, W, C) flatten."""
    # Parity: Keras is NHWC, torch NCHW; the channel axis goes last here.
    layers: list[keras.layers.Layer] = [keras.layers.Reshape((*IMAGE_SHAPE, 1))]
    channels = 1
    for filters in model_spec.conv_filters:
        if model_spec.conv_padding > 0:
            # Parity: torch's symmetric padding, exactly. padding="same" is not it: at
            # stride 2 on 28x28 TF puts the odd padding pixel bottom/right only.
            layers.append(keras.layers.ZeroPadding2D(model_spec.conv_padding))
        layers.append(conv(channels, filters, model_spec))
        layers.append(keras.layers.Activation(ACTIVATIONS[model_spec.activation]))
        channels = filters
    if model_spec.pooling == "avg":
        layers.append(keras.layers.AveragePooling2D(model_spec.pool_size))  # stride = size
    elif model_spec.pooling == "global_avg":
        layers.append(keras.layers.GlobalAveragePooling2D(keepdims=True))  # -> (B, 1, 1, C)
    layers.append(keras.layers.Flatten())  # (B, H, W, C) -> (B, H * W * C)
    return layers


def dense_head(width: int, model_spec) -> list[keras.layers.Layer]:
    """(B, width) -> (B, num_classes): hidden_sizes with their activation (and dropout),
    then the logits layer."""
    layers: list[keras.layers.Layer] = []
    for size in model_spec.hidden_sizes:
        layers.append(dense(width, size, model_spec))
        layers.append(keras.layers.Activation(ACTIVATIONS[model_spec.activation]))
        if model_spec.dropout_rate > 0:
            layers.append(keras.layers.Dropout(model_spec.dropout_rate))
        width = size
    layers.append(dense(width, model_spec.num_classes, model_spec))
    return layers


def build_model(model_spec) -> keras.Model:
    """(B, 28, 28) float32 -> (B, num_classes) logits. "logreg" has no hidden layers;
    "densenet121" takes (B, S, S) (`keras_impl.transfer`)."""
    if model_spec.architecture not in ("mlp", "logreg", "cnn", "densenet121"):
        # The regression nets are not classifiers: they have their own contract.
        raise ValueError(f"{model_spec.architecture!r} is built by the regression module")
    if model_spec.architecture == "densenet121":
        # Part 8: Keras's DenseNet-121 features under the head.
        network = transfer.densenet121(model_spec)
        head = dense_head(transfer.FEATURE_WIDTH, model_spec)
        classifier = keras.Sequential([keras.Input((transfer.FEATURE_WIDTH,)), *head])
        return transfer.TransferModel(network, classifier, model_spec)
    if model_spec.architecture == "cnn":
        layers = conv_features(model_spec)
        width = math.prod(conv_output_shape(model_spec))
    else:
        layers = [keras.layers.Flatten()]  # (B, 28, 28) -> (B, 784)
        width = math.prod(IMAGE_SHAPE)
    if model_spec.logits_from == "dense":
        layers += dense_head(width, model_spec)
    if model_spec.output_activation == "relu":
        layers.append(keras.layers.Activation("relu"))
    return keras.Sequential([keras.Input(IMAGE_SHAPE), *layers])


def _weighted_layers(model: keras.Model) -> list[tuple[keras.layers.Layer, tuple | None]]:
    """Each weighted layer in order, with the (H, W, C) its kernel rows were flattened
    from when it is the first dense layer after a Flatten of a feature map, else None.
    """
    # Parity: only this side needs the flatten shape; torch's rows are already canonical.
    found, flattened = [], None
    for layer in model.layers:
        if isinstance(layer, keras.layers.Flatten) and len(layer.input.shape) == 4:
            flattened = tuple(layer.input.shape[1:])
        elif isinstance(layer, WEIGHTED_LAYERS):
            is_dense = isinstance(layer, keras.layers.Dense)
            found.append((layer, flattened if is_dense else None))
            flattened = None
    return found


def count_parameters(model: keras.Model) -> int:
    if isinstance(model, transfer.TransferModel):
        # Parity: torch counts no BatchNorm statistics; Keras's count_params would.
        return transfer.count_parameters(model)
    return int(model.count_params())


def _to_canonical(kernel: np.ndarray, flattened: tuple | None) -> np.ndarray:
    if flattened is None:
        return kernel  # conv (kh, kw, in, out) and dense (in, out) are Keras's own
    height, width, channels = flattened
    rows = kernel.reshape(height, width, channels, -1)  # (H, W, C, out)
    return rows.transpose(2, 0, 1, 3).reshape(kernel.shape)  # rows in (C, H, W) order


def _from_canonical(kernel: np.ndarray, flattened: tuple | None) -> np.ndarray:
    if flattened is None:
        return kernel
    height, width, channels = flattened
    rows = kernel.reshape(channels, height, width, -1)  # (C, H, W, out)
    return rows.transpose(1, 2, 0, 3).reshape(kernel.shape)  # rows in (H, W, C) order


def get_weights(model: keras.Model) -> list[np.ndarray]:
    """Weights in the canonical layout: [kernel, bias] per weighted layer, in order
    (the transfer model's own layout: `keras_impl.transfer`)."""
    if isinstance(model, transfer.TransferModel):
        return transfer.get_weights(model)
    weights = []
    for layer, flattened in _weighted_layers(model):
        kernel = np.array(ops.convert_to_numpy(layer.kernel))  # a copy on every backend
        weights.append(np.ascontiguousarray(_to_canonical(kernel, flattened)))
        weights.append(np.array(ops.convert_to_numpy(layer.bias)))
    return weights


def set_weights(model: keras.Model, weights: list[np.ndarray]) -> None:
    """Load canonical-layout weights (the inverse of get_weights, exactly)."""
    if isinstance(model, transfer.TransferModel):
        return transfer.set_weights(model, weights)
    layers = _weighted_layers(model)
    if len(weights) != 2 * len(layers):
        raise ValueError(f"expected {2 * len(layers)} arrays, got {len(weights)}")
    for (layer, flattened), kernel, bias in zip(layers, weights[0::2], weights[1::2], strict=True):
        layer.kernel.assign(_from_canonical(kernel, flattened))
        layer.bias.assign(bias)


def dropout_probe(model: keras.Model, x: np.ndarray) -> list[dict]:
    """Each dropout layer of the model, in forward order: how many weighted layers come
    before it, its input on x (the layers before it in inference mode), and its output
    on that input in training mode and in inference mode."""
    probes, weighted = [], 0
    hidden = keras.ops.convert_to_tensor(x)
    for layer in model.layers:
        weighted += isinstance(layer, WEIGHTED_LAYERS)
        if isinstance(layer, DROPOUT_LAYERS):
            before = keras.ops.convert_to_numpy(hidden)
            trained = keras.ops.convert_to_numpy(layer(hidden, training=True))
            hidden = layer(hidden, training=False)
            probes.append(
                {
                    "after_weighted_layers": weighted,
                    "input": before,
                    "training": trained,
                    "inference": keras.ops.convert_to_numpy(hidden),
                }
            )
        else:
            hidden = layer(hidden, training=False)
    return probes


def _recording(layer, label: str, dropout: bool, calls: list):
    """The layer's call, appending whether each real call computes in training mode."""
    call = layer.call

    def recorded(*args, training=None, **kwargs):
        if not in_symbolic_scope():
            active = bool(training) and (layer.rate > 0 if dropout else layer.trainable)
            calls.append({"layer": label, "active": active})
        return call(*args, training=training, **kwargs)

    return recorded


@contextlib.contextmanager
def mode_probe(model: keras.Model):
    """While the block runs, every call of the model's dropout and batch-normalisation
    layers is recorded with whether it computed in training mode (dropout dropping:
    `training` true and a rate above 0; batch normalisation from the batch's statistics:
    `training` true on a trainable layer, as their `call`s decide). Yields (layers,
    calls): each probed layer in model order as {"layer", "kind", "trainable"}, and the
    list each call's {"layer", "active"} is appended to. Inside a compiled function a
    call is recorded when it is traced; shape-only calls (compute_output_spec) are not.
    So a `training=False` passed inside fit, or a layer the Trainer never calls, shows."""
    layers, calls, wrapped = [], [], []
    for layer in model._flatten_layers(include_self=False):
        if not isinstance(layer, DROPOUT_LAYERS + NORMALIZATION_LAYERS):
            continue
        dropout = isinstance(layer, DROPOUT_LAYERS)
        label = f"{layer.name} ({type(layer).__name__})"
        layers.append(
            {
                "layer": label,
                "kind": "dropout" if dropout else "normalization",
                "trainable": bool(layer.trainable),
            }
        )

        # Parity: the layer's call wrapped on the instance (torch has forward hooks).
        wrapped.append((layer, layer.__dict__.get("call")))
        object.__setattr__(layer, "call", _recording(layer, label, dropout, calls))
    try:
        yield layers, calls
    finally:
        for layer, own in wrapped:
            if own is None:
                object.__delattr__(layer, "call")  # the class's own call again
            else:
                object.__setattr__(layer, "call", own)
