"""Keras halves of the parity zoo: the ports of pytorch_impl.pairs.small. models, in the same
order. The correct port is the default; each builder's arguments are the porting bugs
the zoo's tests inject (a Keras default left in place, another padding).
"""

from __future__ import annotations

import keras
from keras import layers


def _batchnorm(name, epsilon, momentum):
    return layers.BatchNormalization(epsilon=epsilon, momentum=momentum, name=name)


def resnet_bn(
    epsilon: float = 1e-5, momentum: float = 0.9, down_padding: str = "explicit"
) -> keras.Model:
    # Parity: torch's BatchNorm2d defaults are epsilon 1e-5 and momentum 0.1 (weight of the
    # batch): Keras's 1e-3 and 0.99 (weight of the old average) are replaced.
    inputs = keras.Input((12, 12, 1))
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv1")(inputs)
    x = layers.ReLU()(_batchnorm("bn1", epsilon, momentum)(x))
    y = layers.Conv2D(8, 3, padding="same", use_bias=False, name="block_conv1")(x)
    y = layers.ReLU()(_batchnorm("block_bn1", epsilon, momentum)(y))
    y = layers.Conv2D(8, 3, padding="same", use_bias=False, name="block_conv2")(y)
    x = layers.ReLU()(layers.Add()([x, _batchnorm("block_bn2", epsilon, momentum)(y)]))
    if down_padding == "explicit":
        # Parity: torch pads a stride-2 conv (1, 1); Keras's "same" would pad (0, 1).
        x = layers.ZeroPadding2D(1)(x)
        x = layers.Conv2D(16, 3, strides=2, padding="valid", use_bias=False, name="down")(x)
    else:
        x = layers.Conv2D(16, 3, strides=2, padding=down_padding, use_bias=False, name="down")(x)
    x = layers.ReLU()(_batchnorm("down_bn", epsilon, momentum)(x))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(10, name="fc")(x))


def text_rnn(reset_after: bool = True) -> keras.Model:
    inputs = keras.Input((None,), dtype="int32")
    x = layers.Embedding(50, 8, name="embedding")(inputs)
    x = layers.LSTM(16, return_sequences=True, name="lstm")(x)
    # Parity: reset_after=True (Keras's default) is torch's GRU; False is another function.
    x = layers.GRU(12, reset_after=reset_after, name="gru")(x)
    return keras.Model(inputs, layers.Dense(3, name="fc")(x))


def layernorm_mlp(epsilon: float = 1e-5) -> keras.Model:
    # Parity: torch's LayerNorm epsilon is 1e-5, Keras's default 1e-3.
    return keras.Sequential(
        [
            keras.Input((20,)),
            layers.Dense(32, name="fc1"),
            layers.LayerNormalization(epsilon=epsilon, name="ln1"),
            layers.ReLU(),
            layers.Dense(32, name="fc2"),
            layers.LayerNormalization(epsilon=epsilon, name="ln2"),
            layers.ReLU(),
            layers.Dense(3, name="head"),
        ]
    )


def densenet121_transfer(image_size: int = 32, epsilon: float | None = 1e-5) -> keras.Model:
    """keras.applications.DenseNet121 (no top, global average pooling), frozen, and the
    tutorial's classifier. `epsilon=None` keeps the application's BatchNorm settings."""
    inputs = keras.Input((image_size, image_size, 3))
    base = keras.applications.DenseNet121(
        include_top=False, weights=None, input_tensor=inputs, pooling="avg"
    )
    for layer in base.layers:
        layer.trainable = False
        if epsilon is not None and isinstance(layer, layers.BatchNormalization):
            # Parity: keras.applications uses epsilon 1.001e-5 and Keras's momentum 0.99;
            # torchvision's DenseNet 1e-5 and 0.1 (weight of the batch: 0.9 here).
            layer.epsilon = epsilon
            layer.momentum = 0.9
    x = layers.Dense(500, activation="relu", name="fc1")(base.output)
    x = layers.Dense(2, name="fc2")(x)
    return keras.Model(inputs, layers.Activation(keras.activations.log_softmax)(x))
