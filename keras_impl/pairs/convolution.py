"""Keras ports of the convolution pairs (pytorch_impl.pairs.convolution)."""

from __future__ import annotations

import keras
from keras import layers


def _bn(name):
    # Parity: torch's BatchNorm defaults: epsilon 1e-5, momentum 0.1 (Keras's 0.9).
    return layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name=name)


def mobile_block(
    avg_padding: str = "same",
    ceil_padding: bool = True,
    gate: str = "hard_sigmoid",
    shared_axes=(1, 2),
) -> keras.Model:
    inputs = keras.Input((16, 16, 3))
    # Parity: torch pads a stride-2 convolution (1, 1); Keras's 'same' would pad (0, 1).
    x = layers.Conv2D(8, 3, strides=2, use_bias=False, name="stem")(layers.ZeroPadding2D(1)(inputs))
    x = layers.Activation("hard_swish")(_bn("stem_bn")(x))
    y = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="depthwise")(x)
    y = layers.ReLU(6.0)(_bn("depthwise_bn")(y))
    g = layers.GlobalAveragePooling2D(keepdims=True)(y)
    g = layers.Conv2D(8, 1, activation=gate, name="excite")(
        layers.Conv2D(4, 1, activation="relu", name="squeeze")(g)
    )
    y = layers.Conv2D(16, 1, use_bias=False, name="project")(y * g)
    # Parity: torch's PReLU(16) has one slope per channel: shared over height and width.
    y = layers.ReLU()(
        layers.PReLU(shared_axes=list(shared_axes) if shared_axes else None)(_bn("project_bn")(y))
    )
    # Parity: torch's ceil_mode=True adds a last window: one more cell of padding after.
    y = layers.ZeroPadding2D(((1, 2), (1, 2)) if ceil_padding else 1)(y)
    y = layers.MaxPooling2D(3, 2)(y)
    if avg_padding == "same":
        # Parity: count_include_pad=False leaves the padded cells out, as Keras's 'same'.
        y = layers.AveragePooling2D(3, 1, padding="same")(y)
    else:
        y = layers.AveragePooling2D(3, 1)(layers.ZeroPadding2D(1)(y))
    return keras.Model(inputs, layers.Dense(5, name="head")(layers.GlobalAveragePooling2D()(y)))


def signal_1d(dilation: int = 2, epsilon: float = 1e-5) -> keras.Model:
    inputs = keras.Input((16, 4))
    x = layers.Conv1D(8, 3, dilation_rate=dilation, padding="same", name="conv")(inputs)
    # Parity: an instance norm is a group norm with a group per channel; torch's eps 1e-5.
    x = layers.ReLU()(layers.GroupNormalization(groups=-1, epsilon=epsilon, name="norm")(x))
    x = layers.Conv1DTranspose(4, 4, strides=2, padding="same", name="up")(x)
    return keras.Model(inputs, layers.Dense(3, name="head")(layers.GlobalAveragePooling1D()(x)))


def volume_3d(strides: int = 1) -> keras.Model:
    inputs = keras.Input((6, 6, 6, 1))
    x = layers.Conv3D(4, 3, strides=strides, padding="same", name="conv")(inputs)
    x = layers.ReLU()(_bn("norm")(x))
    return keras.Model(inputs, layers.Dense(3, name="head")(layers.GlobalAveragePooling3D()(x)))


def separable(strides: int = 1) -> keras.Model:
    inputs = keras.Input((8, 8, 3))
    x = layers.SeparableConv2D(
        8, 3, strides=strides, padding="same", activation="relu", name="separable"
    )(inputs)
    return keras.Model(inputs, layers.Dense(3, name="head")(layers.GlobalAveragePooling2D()(x)))


class Scale(keras.layers.Layer):
    """A learned per-feature scale (the torch half's `Scale`)."""

    def build(self, input_shape):
        self.gain = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="gain")

    def call(self, x):
        return x * self.gain


def scaled_mlp(square: bool = False) -> keras.Model:
    inputs = keras.Input((12,))
    x = Scale(name="scale")(layers.Dense(16, name="fc")(inputs))
    x = layers.Activation("tanh")(x * x if square else x)
    return keras.Model(inputs, layers.Dense(3, name="head")(x))
