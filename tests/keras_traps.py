"""Deliberately wrong Keras twins of the study's models, for the trap tests only: they
prove that parity catches the two classic porting bugs. Kept out of `keras_impl`, whose
code is the study's production path."""

from __future__ import annotations

import keras

from compare.spec.schema import IMAGE_SHAPE
from keras_impl.model import _weighted_layers, build_model

# "same_padding": Conv2D(padding="same") instead of ZeroPadding2D(p) + "valid". Same
#   shapes as torch's padding p at stride 2 on 28x28, different values: TF pads the odd
#   pixel bottom/right only.
# "unpermuted_flatten": the flatten is a plain Reshape, which computes what Flatten does
#   but is not recognised as the conv -> dense boundary, so get/set_weights leave the
#   first dense kernel's rows in Keras's (H, W, C) order: canonical (C, H, W) rows load
#   into the wrong positions, as in a naive weight port.
TRAPS = ("same_padding", "unpermuted_flatten")


def build_trap_model(model_spec, trap: str) -> keras.Sequential:
    """A deliberately WRONG twin of `build_model(model_spec)`; see TRAPS.

    For the parity suite's trap tests only, which prove that the checks catch these
    bugs: never trained or reported. It takes canonical weights through the ordinary
    get_weights / set_weights, so a trap test runs exactly like a parity test.
    """
    if trap not in TRAPS:
        raise ValueError(f"unknown trap {trap!r} (choose one of: {', '.join(TRAPS)})")
    correct = build_model(model_spec)
    if trap == "same_padding" and not any(
        isinstance(layer, keras.layers.ZeroPadding2D) for layer in correct.layers
    ):
        raise ValueError("trap 'same_padding' needs a cnn spec with conv_padding > 0")
    if trap == "unpermuted_flatten" and not any(
        flattened is not None and flattened[0] * flattened[1] > 1
        for _layer, flattened in _weighted_layers(correct)
    ):
        raise ValueError("trap 'unpermuted_flatten' needs a dense layer after an HxW > 1 map")
    layers = []
    for layer in correct.layers:
        config = layer.get_config()
        if trap == "same_padding" and isinstance(layer, keras.layers.ZeroPadding2D):
            continue
        if trap == "same_padding" and isinstance(layer, keras.layers.Conv2D):
            config["padding"] = "same"
        if trap == "unpermuted_flatten" and isinstance(layer, keras.layers.Flatten):
            layers.append(keras.layers.Reshape((-1,)))
            continue
        layers.append(type(layer).from_config(config))
    return keras.Sequential([keras.Input(IMAGE_SHAPE), *layers])
