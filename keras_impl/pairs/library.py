"""keras.applications' MobileNetV2, ConvNeXt-Tiny, EfficientNet-B0 and ResNet-50 (random
weights, ten classes) for torchvision's. `stock=True` is the application as it comes
(its BatchNorm epsilon and momentum, its softmax, its preprocessing); the default is
the Keras side of an aligned port (a `# Parity:` comment per change).
"""

from __future__ import annotations

import keras
from keras import layers


def _torch_batchnorm(model, epsilon: float = 1e-5) -> None:
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            # Parity: torchvision's BatchNorm2d: epsilon 1e-5, momentum 0.1 (Keras's 0.9).
            layer.epsilon, layer.momentum = epsilon, 0.9


def mobilenet_v2(stock: bool = False, image_size: int = 33) -> keras.Model:
    # Parity: an odd input, where Keras's stride-2 padding (correct_pad, 'same') is
    # symmetric as torch's padding=1; at an even size it pads one cell more after.
    model = keras.applications.MobileNetV2(
        input_shape=(image_size, image_size, 3),
        weights=None,
        classes=10,
        classifier_activation="softmax" if stock else None,
    )
    if not stock:
        _torch_batchnorm(model)
    return model


def convnext_tiny(stock: bool = False, image_size: int = 33) -> keras.Model:
    return keras.applications.ConvNeXtTiny(
        input_shape=(image_size, image_size, 3),
        weights=None,
        classes=10,
        # Parity: torchvision's ConvNeXt has no preprocessing layer and returns logits.
        include_preprocessing=stock,
        classifier_activation="softmax" if stock else None,
    )


def efficientnet_b0(stock: bool = False, image_size: int = 33) -> keras.Model:
    model = keras.applications.EfficientNetB0(
        input_shape=(image_size, image_size, 3),
        weights=None,
        classes=10,
        classifier_activation="softmax" if stock else None,
    )
    if stock:
        return model
    _torch_batchnorm(model)
    for layer in model.layers:
        if isinstance(layer, layers.Dropout) and layer.name != "top_dropout":
            layer.rate = 0.0  # Parity: the torch half has no stochastic depth either
    # Parity: keras.applications' EfficientNet rescales and normalises its input inside
    # the model; torchvision's expects it done: the port starts after those layers.
    start = model.get_layer("stem_conv_pad")
    return keras.Model(start.input, model.output)


def resnet50(stock: bool = False, image_size: int = 33) -> keras.Model:
    model = keras.applications.ResNet50(
        input_shape=(image_size, image_size, 3),
        weights=None,
        classes=10,
        classifier_activation="softmax" if stock else None,
    )
    if not stock:
        # Parity: keras.applications' ResNet50 uses epsilon 1.001e-5.
        _torch_batchnorm(model)
    return model
