"""Layers of the model libraries people port between: torchvision's ConvNeXt block keeps
its layer scale as a parameter of the block (`CNBlock.layer_scale`, (C, 1, 1)), which
keras.applications holds in a `LayerScale` layer (gamma, (C,)); both libraries' stochastic
depth (torchvision's `StochasticDepth`, keras.applications' ConvNeXt `StochasticDepth`)
is dropout-like: switched off by the training levels, its rate compared.

Stage: pair.
"""

from __future__ import annotations

from compare.pair import registry
from compare.pair.layers.dropout import DropoutConverter
from compare.pair.registry import Converter, Setting


class LayerScaleConverter(Converter):
    """torch's block holds the scale (its output includes the residual), Keras's layer
    only scales: the weights convert, the outputs are not the same quantity."""

    kind = "layer_scale"
    owns_children = False
    outputs_comparable = False
    torch_layout = "channels_first"

    def torch_arrays(self, pair):
        return {"layer_scale": pair.torch_module.layer_scale.detach().cpu().numpy().copy()}

    def to_keras(self, pair, a):
        return [a["layer_scale"].reshape(-1)]

    def to_torch(self, pair, w):
        return {"layer_scale": w[0].reshape(-1, 1, 1)}

    def compared(self, pair):
        return (
            "torch's CNBlock output includes the residual; Keras's LayerScale is the scaled branch"
        )


class StochasticDepthConverter(DropoutConverter):
    kind = "dropout"

    def settings(self, pair):
        return [
            Setting(
                "stochastic depth rate",
                float(pair.torch_module.p),
                float(
                    getattr(
                        pair.keras_layer, "drop_path_rate", getattr(pair.keras_layer, "rate", 0.0)
                    )
                ),
                effect="residual branches dropped otherwise in training",
            )
        ]

    def random_rate(self, obj):
        for name in ("p", "drop_path_rate", "rate"):
            if isinstance(getattr(obj, name, None), (int, float)):
                return float(getattr(obj, name))
        return 0.0

    def switch_off(self, obj):
        for name in ("p", "drop_path_rate", "rate"):
            value = getattr(obj, name, None)
            if isinstance(value, (int, float)) and value:
                object.__setattr__(obj, name, 0.0)
                return lambda: object.__setattr__(obj, name, value)
        return lambda: None


def _register():
    registry.register(
        LayerScaleConverter,
        "torchvision.models.convnext.CNBlock",
        "keras.src.applications.convnext.LayerScale",
        user=False,
    )
    registry.register(
        StochasticDepthConverter,
        "torchvision.ops.StochasticDepth",
        ("keras.src.applications.convnext.StochasticDepth", "keras.layers.Dropout"),
        user=False,
    )


_register()
