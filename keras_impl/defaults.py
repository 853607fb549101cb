"""Keras's own defaults, read from default-constructed objects (mirrors pytorch_impl.defaults).

Nothing here is typed in: each value is measured or read from what the installed
Keras builds when nothing is specified. `compare/defaults.py` puts the two sides
side by side with what the study sets.
"""

from __future__ import annotations

import itertools

import keras
import numpy as np
from keras import ops

DIMENSION_NAMES = "CHW"


def _init_name(initializer) -> str:
    return type(initializer).__name__


def _layout(shape, names: dict[int, str]) -> str:
    return "(" + ", ".join(names[size] for size in shape) + ")"


def _flatten_order() -> str:
    """Which image axes a flatten after convolutions walks, slowest first."""
    channels, height, width = 2, 3, 4
    c, h, w = np.meshgrid(np.arange(channels), np.arange(height), np.arange(width), indexing="ij")
    coded = (100 * c + 10 * h + w).transpose(1, 2, 0)[None].astype(np.float32)  # (1, H, W, C)
    flat = ops.convert_to_numpy(keras.layers.Flatten()(coded))[0].astype(int)
    coordinates = [(v // 100, v // 10 % 10, v % 10) for v in flat]
    for order in itertools.permutations(range(3)):
        if coordinates == sorted(coordinates, key=lambda t, o=order: tuple(t[i] for i in o)):
            return "(" + ", ".join(DIMENSION_NAMES[i] for i in order) + ")"
    return "?"


def _same_padding_stride_2() -> str:
    """Where padding goes for a 3x3 stride-2 convolution on 28x28."""
    conv = keras.layers.Conv2D(
        1, 3, strides=2, padding="same", use_bias=False, kernel_initializer="ones"
    )
    out = ops.convert_to_numpy(conv(np.ones((1, 28, 28, 1), np.float32)))[0, :, :, 0]
    # A ones kernel on a ones image counts the real pixels under each corner window.
    top = 3 - int(round(float(out[0, 0]) ** 0.5))
    bottom = 3 - int(round(float(out[-1, -1]) ** 0.5))
    return f"padding='same' pads top/left {top}, bottom/right {bottom}"


def _adam_effective_epsilon(optimizer_class, gradient: float = 1e-6) -> float:
    """The epsilon the first step effectively adds to sqrt(v_hat): |g| (lr / |step| - 1)."""
    variable = keras.Variable(np.zeros(1, np.float32))
    optimizer = optimizer_class()
    optimizer.apply_gradients([(ops.convert_to_tensor(np.full(1, gradient, np.float32)), variable)])
    step = abs(float(ops.convert_to_numpy(variable)[0]))
    return gradient * (float(optimizer.learning_rate) / step - 1)


def framework_defaults() -> dict[str, str]:
    """What Keras does when the study says nothing, keyed like pytorch_impl's."""
    dense = keras.layers.Dense(256)
    dense.build((None, 784))
    conv = keras.layers.Conv2D(32, 3)
    conv.build((None, 28, 28, 1))
    layout_dense = keras.layers.Dense(5)
    layout_dense.build((None, 4))
    layout_conv = keras.layers.Conv2D(5, (2, 3))
    layout_conv.build((None, 6, 6, 4))
    dropout_out = ops.convert_to_numpy(keras.layers.Dropout(0.5)(np.ones(1000, np.float32)))
    batch_norm = keras.layers.BatchNormalization()
    image_layout = {"channels_last": "(N, H, W, C)", "channels_first": "(N, C, H, W)"}
    return {
        "dense kernel init (784->256)": f"{_init_name(dense.kernel_initializer)}: "
        f"max |w| {float(np.abs(ops.convert_to_numpy(dense.kernel)).max()):.3g}",
        "dense bias init (784->256)": f"{_init_name(dense.bias_initializer)}: "
        f"max |b| {float(np.abs(ops.convert_to_numpy(dense.bias)).max()):.3g}",
        "conv kernel init (3x3, 1->32)": f"{_init_name(conv.kernel_initializer)}: "
        f"max |w| {float(np.abs(ops.convert_to_numpy(conv.kernel)).max()):.3g}",
        "conv bias init (3x3, 1->32)": f"{_init_name(conv.bias_initializer)}: "
        f"max |b| {float(np.abs(ops.convert_to_numpy(conv.bias)).max()):.3g}",
        "dense kernel layout": _layout(layout_dense.kernel.shape, {4: "in", 5: "out"}),
        "conv kernel layout": _layout(
            layout_conv.kernel.shape, {4: "in", 5: "out", 2: "kH", 3: "kW"}
        ),
        "image layout": image_layout[keras.config.image_data_format()],
        "flatten order after convolutions": _flatten_order(),
        "'same' padding, 3x3 stride 2 on 28x28": _same_padding_stride_2(),
        "adam epsilon": f"{keras.optimizers.Adam().epsilon:g}",
        "adam epsilon as added to sqrt(v_hat), step 1": (
            f"{_adam_effective_epsilon(keras.optimizers.Adam):.3g}"
        ),
        "sgd learning rate": f"{float(keras.optimizers.SGD().learning_rate):g}",
        "batchnorm momentum": f"{batch_norm.momentum:g} (weight of the old moving average)",
        "batchnorm epsilon": f"{batch_norm.epsilon:g}",
        "loss reduction": keras.losses.SparseCategoricalCrossentropy().reduction,
        "dropout when not training": "off unless training=True: "
        f"{int((dropout_out == 0).sum())} of 1000 zeroed by a fresh layer",
    }
