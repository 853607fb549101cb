"""The built-in converters, registered when a check first runs (each module imports
torch and Keras): `load()`.

- dense: Linear, Embedding / Dense, EinsumDense, Embedding;
- conv: Conv1d/2d/3d, ConvTranspose1d/2d/3d, a depthwise + pointwise pair /
  Conv1D/2D/3D, DepthwiseConv1D/2D, Conv1D/2D/3DTranspose, SeparableConv1D/2D;
- norm: BatchNorm1d/2d/3d, LayerNorm (LayerNorm2d), GroupNorm, InstanceNorm1d/2d/3d,
  RMSNorm / BatchNormalization, LayerNormalization, GroupNormalization, RMSNormalization;
- recurrent: LSTM, GRU (bidirectional, num_layers) / LSTM, GRU, Bidirectional;
- attention: MultiheadAttention / MultiHeadAttention;
- activation (PReLU too), pooling, resampling (padding, upsampling), dropout;
- library: torchvision's CNBlock layer scale, StochasticDepth / keras.applications'
  LayerScale, StochasticDepth.

Stage: pair.
"""

from __future__ import annotations

import importlib

_MODULES = (
    "dense",
    "conv",
    "norm",
    "recurrent",
    "attention",
    "activation",
    "pooling",
    "resampling",
    "dropout",
    "library",
)
_loaded = False


def load() -> None:
    """Register every built-in converter (once per process)."""
    global _loaded
    if _loaded:
        return
    for name in _MODULES:
        importlib.import_module(f"compare.pair.layers.{name}")
    _loaded = True
