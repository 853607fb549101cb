"""The Keras port of the small U-Net: GroupNormalization, UpSampling2D, Conv2DTranspose."""

from __future__ import annotations

import keras
from keras import layers


def _block(x, filters: int, name: str, epsilon: float, groups: int):
    x = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv")(x)
    # Parity: torch's GroupNorm epsilon is 1e-5, Keras's GroupNormalization 1e-3.
    x = layers.GroupNormalization(groups, epsilon=epsilon, name=f"{name}_norm")(x)
    return layers.Activation("silu")(x)


def unet(
    epsilon: float = 1e-5, groups: int = 4, interpolation: str = "bilinear", up_kernel: int = 4
) -> keras.Model:
    x = keras.Input((16, 16, 3))
    a = _block(x, 8, "enc1", epsilon, groups)
    b = _block(layers.MaxPooling2D(2)(a), 16, "enc2", epsilon, groups)
    c = _block(layers.MaxPooling2D(2)(b), 16, "mid", epsilon, groups)
    # Parity: torch's bilinear with align_corners=False samples half-pixel centres, as Keras.
    up = layers.UpSampling2D(2, interpolation=interpolation)(c)
    d = _block(layers.Concatenate()([up, b]), 16, "dec2", epsilon, groups)
    # Parity: torch's (kernel 4, stride 2, padding 1) crops one cell each side, Keras's 'same'.
    up1 = layers.Conv2DTranspose(8, up_kernel, strides=2, padding="same", name="up1")(d)
    e = _block(layers.Concatenate()([up1, a]), 8, "dec1", epsilon, groups)
    return keras.Model(x, layers.Conv2D(2, 1, name="out")(e))
