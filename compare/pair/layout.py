"""Putting torch's tensors in Keras's layout, from what each layer declares, never from
shapes alone: a (N, 8, 8, 8) map is channels-first or channels-last by its layer's
`data_format` (or normalisation axis), not by which reading fits.

Layouts: "channels_first" (torch's convolutions, pooling, BatchNorm2d, GroupNorm),
"channels_last" (Keras's default data format), "last" (the features on the last axis in
either framework: Linear, LayerNorm, Embedding, recurrent layers).

Stage: pair.
"""

from __future__ import annotations

import numpy as np


def keras_layout(layer) -> str:
    """How a Keras layer holds its features: its data_format, else its channel axis."""
    target = getattr(layer, "layer", layer)  # a fused activation: its layer's
    data_format = getattr(target, "data_format", None)
    if data_format in ("channels_first", "channels_last"):
        return data_format
    axis = getattr(target, "axis", None)
    if isinstance(axis, (list, tuple)) and len(axis) == 1:
        axis = axis[0]
    if axis == 1:
        return "channels_first"
    return "last"


def torch_layout(pair) -> str:
    """How the torch unit holds its features (the converter's declaration)."""
    declared = getattr(pair.converter, "torch_layout", "last")
    return declared(pair) if callable(declared) else declared


def moved(array: np.ndarray, torch_side: str, keras_side: str) -> np.ndarray:
    """torch's (N, C, ...) as (N, ..., C) when the Keras side is not channels-first."""
    if torch_side == "channels_first" and keras_side != "channels_first" and array.ndim >= 3:
        return np.moveaxis(array, 1, -1)
    return array


def align(torch_output, keras_shape, torch_side: str, keras_side: str):
    """torch's output in Keras's layout, or None when the shapes do not agree.

    After the layout move: the same shape; the same after dropping size-1 axes (a
    torch (N, C, 1, 1) pooled map against Keras's (N, C)); a batch of one broadcast over
    Keras's batch (a position embedding computed once against one per example).
    """
    if torch_output is None:
        return None
    keras_shape = tuple(keras_shape)
    out = moved(np.asarray(torch_output), torch_side, keras_side)
    if out.shape == keras_shape:
        return out
    squeezed = tuple(s for s in out.shape if s != 1)
    if squeezed == tuple(s for s in keras_shape if s != 1) and out.size == int(
        np.prod(keras_shape)
    ):
        return out.reshape(keras_shape)
    if (
        out.ndim == len(keras_shape)
        and out.ndim >= 2
        and out.shape[0] == 1
        and out.shape[1:] == keras_shape[1:]
    ):
        return np.broadcast_to(out, keras_shape)
    return None


def how(torch_output, keras_shape, torch_side: str, keras_side: str) -> str:
    """In words, how `align` put torch's output in Keras's layout (the report says it)."""
    out = moved(np.asarray(torch_output), torch_side, keras_side)
    words = "channels moved last" if out.shape != np.shape(torch_output) else "as is"
    if out.shape != tuple(keras_shape):
        words += f", {out.shape} read as {tuple(keras_shape)}"
    return words
