"""Padding (zero, constant, reflection, replication; `F.pad`) and upsampling (nearest or
bilinear, align_corners; `F.interpolate`) against Keras's ZeroPadding, UpSampling and
Resizing layers.

Stage: pair.
"""

from __future__ import annotations

from compare.pair import registry
from compare.pair.layers.common import _bind
from compare.pair.registry import Converter, Setting
from compare.pair.units import FunctionalOp

# --- padding -----------------------------------------------------------------------------


def torch_pad(obj) -> dict:
    if isinstance(obj, FunctionalOp):
        return obj.settings
    name = type(obj).__name__
    mode = "zeros"
    if "Reflection" in name:
        mode = "reflect"
    elif "Replication" in name:
        mode = "replicate"
    elif "Circular" in name:
        mode = "circular"
    elif getattr(obj, "value", 0.0):
        mode = f"constant {obj.value}"
    return {"mode": mode, "amounts": _torch_amounts(obj.padding)}


def _torch_amounts(padding) -> tuple:
    """torch's (left, right, top, bottom, ...) as ((before, after) per axis, first axis first)."""
    pairs = [tuple(padding[i : i + 2]) for i in range(0, len(padding), 2)]
    return tuple(reversed(pairs))


def _pad_function(args, kwargs):
    v = _bind(args, kwargs, ["pad", "mode", "value"], {"mode": "constant", "value": None})
    mode = v["mode"]
    if mode == "constant":
        mode = "zeros" if not v["value"] else f"constant {v['value']}"
    return {"mode": mode, "amounts": _torch_amounts(tuple(v["pad"]))}


class PadConverter(Converter):
    kind = "pad"
    weighted = False
    torch_layout = "channels_first"

    def settings(self, pair):
        ours = torch_pad(pair.torch_module)
        theirs = tuple(tuple(int(p) for p in axis) for axis in pair.keras_layer.padding)
        amounts = ours["amounts"][-len(theirs) :]
        return [
            Setting("mode", ours["mode"], "zeros", effect="other values in the border"),
            Setting("padding", amounts, theirs, effect="another border: the map shifts"),
        ]


# --- upsampling --------------------------------------------------------------------------


def torch_upsample(obj) -> dict:
    if isinstance(obj, FunctionalOp):
        return obj.settings
    name = type(obj).__name__
    align = getattr(obj, "align_corners", None)
    if name == "UpsamplingBilinear2d":
        return {"mode": "bilinear", "align_corners": True}
    return {"mode": obj.mode, "align_corners": bool(align)}


def _interpolate(args, kwargs):
    v = _bind(
        args,
        kwargs,
        ["size", "scale_factor", "mode", "align_corners"],
        {"size": None, "scale_factor": None, "mode": "nearest", "align_corners": None},
    )
    antialias = bool(kwargs.get("antialias", False))
    return {"mode": v["mode"], "align_corners": bool(v["align_corners"]), "antialias": antialias}


def _sampling_rule(mode, align_corners):
    if mode == "nearest":
        return "floor (nearest)"
    if mode == "nearest-exact":
        return "half-pixel centres (nearest)"
    return "corners aligned" if align_corners else "half-pixel centres"


class UpsampleConverter(Converter):
    kind = "upsample"
    weighted = False
    torch_layout = "channels_first"

    def settings(self, pair):
        ours, layer = torch_upsample(pair.torch_module), pair.keras_layer
        name = type(layer).__name__
        keras_mode = getattr(layer, "interpolation", "nearest")
        torch_mode = {"linear": "bilinear", "trilinear": "bilinear"}.get(ours["mode"], ours["mode"])
        torch_rule = _sampling_rule(ours["mode"], ours["align_corners"])
        keras_rule = (
            "half-pixel centres"
            if keras_mode != "nearest"
            else ("half-pixel centres (nearest)" if name == "Resizing" else "floor (nearest)")
        )
        integer = self._integer_scale(pair)
        if integer and torch_mode.startswith("nearest") and keras_mode == "nearest":
            torch_rule = keras_rule  # at whole scale factors both nearest rules read the same cell
        rows = [
            Setting(
                "interpolation",
                torch_mode.replace("-exact", ""),
                keras_mode,
                effect="another interpolation",
            ),
            Setting(
                "sampling",
                torch_rule,
                keras_rule,
                effect="the two sample other points (torch's align_corners=True has no "
                "Keras counterpart; Keras resizes with half-pixel centres)",
            ),
        ]
        # nn.Upsample has no antialias (F.interpolate's default is off): absent means off.
        torch_antialias = bool(ours.get("antialias", False))
        if torch_antialias != bool(getattr(layer, "antialias", False)):
            rows.append(Setting("antialias", torch_antialias, getattr(layer, "antialias", False)))
        if ours["mode"] == "bicubic":
            rows.append(Setting("bicubic kernel", "a = -0.75", "a = -0.5 (TensorFlow)", same=False))
        return rows

    @staticmethod
    def _integer_scale(pair) -> bool:
        call = pair.torch_call
        if call is None or not call.inputs or call.output is None:
            return False
        before, after = call.inputs[0].shape[2:], call.output.shape[2:]
        return all(b and a % b == 0 for a, b in zip(after, before, strict=False))


def _register():
    import keras
    import torch
    import torch.nn.functional as F

    nn, kl = torch.nn, keras.layers
    pad = registry.register(
        PadConverter,
        (
            nn.ZeroPad1d,
            nn.ZeroPad2d,
            nn.ZeroPad3d,
            nn.ConstantPad1d,
            nn.ConstantPad2d,
            nn.ConstantPad3d,
            nn.ReflectionPad1d,
            nn.ReflectionPad2d,
            nn.ReflectionPad3d,
            nn.ReplicationPad1d,
            nn.ReplicationPad2d,
            nn.ReplicationPad3d,
        ),
        (kl.ZeroPadding1D, kl.ZeroPadding2D, kl.ZeroPadding3D),
        user=False,
    )
    registry.register_function(F.pad, pad, _pad_function)
    upsample = registry.register(
        UpsampleConverter,
        (nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d),
        (kl.UpSampling1D, kl.UpSampling2D, kl.UpSampling3D, kl.Resizing),
        user=False,
    )
    registry.register_function(F.interpolate, upsample, _interpolate)


_register()
