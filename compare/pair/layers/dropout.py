"""Dropout-like layers: switched off on both sides by the training levels (their masks
come from different random streams), their rates compared.

Stage: pair.
"""

from __future__ import annotations

from compare.pair import registry
from compare.pair.layers.common import _bind, _Inherit
from compare.pair.registry import Converter, Setting
from compare.pair.units import FunctionalOp

# --- dropout -----------------------------------------------------------------------------


def torch_dropout_rate(obj) -> float:
    if isinstance(obj, FunctionalOp):
        return float(obj.settings.get("rate", 0.0))
    return float(getattr(obj, "p", 0.0))


def keras_dropout_rate(obj) -> float:
    return float(getattr(obj, "rate", getattr(obj, "stddev", 0.0)) or 0.0)


def _dropout_function(variant):
    def describe(args, kwargs):
        v = _bind(args, kwargs, ["p", "training"], {"p": 0.5, "training": True})
        return {"rate": float(v["p"]), "variant": variant}

    return describe


class DropoutConverter(_Inherit, Converter):
    kind = "dropout"
    weighted = False
    random = True

    def settings(self, pair):
        return [
            Setting(
                "rate",
                torch_dropout_rate(pair.torch_module),
                keras_dropout_rate(pair.keras_layer),
                effect="another share dropped in training (the training levels "
                "switch dropout off on both sides, and compare the rates)",
            )
        ]

    def random_rate(self, obj):
        if hasattr(obj, "p") or isinstance(obj, FunctionalOp):
            return torch_dropout_rate(obj)
        return keras_dropout_rate(obj)

    def switch_off(self, obj):
        for name in ("p", "rate", "stddev"):
            value = getattr(obj, name, None)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value:
                object.__setattr__(obj, name, 0.0)
                return lambda obj=obj, name=name, value=value: object.__setattr__(obj, name, value)
        return lambda: None


def _register():
    import keras
    import torch
    import torch.nn.functional as F

    nn, kl = torch.nn, keras.layers
    dropout = registry.register(
        DropoutConverter,
        (
            nn.Dropout,
            nn.Dropout1d,
            nn.Dropout2d,
            nn.Dropout3d,
            nn.AlphaDropout,
            nn.FeatureAlphaDropout,
        ),
        (
            kl.Dropout,
            kl.SpatialDropout1D,
            kl.SpatialDropout2D,
            kl.SpatialDropout3D,
            kl.AlphaDropout,
            kl.GaussianDropout,
            kl.GaussianNoise,
        ),
        user=False,
    )
    for fn, variant in (
        (F.dropout, "elementwise"),
        (F.dropout1d, "channels"),
        (F.dropout2d, "channels"),
        (F.dropout3d, "channels"),
        (F.alpha_dropout, "alpha"),
    ):
        registry.register_function(fn, dropout, _dropout_function(variant))


_register()
