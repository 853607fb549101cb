"""Layers without weights, paired so that the forward level compares their outputs and
names the settings where they part: activations (GELU exact or tanh, ReLU6, hard-swish,
leaky slopes), PReLU (weighted, for its slopes), pooling (max and average, ceil_mode,
count_include_pad, 'same'), adaptive and global pooling, padding (zero, reflection),
upsampling (nearest or bilinear, align_corners), dropout.

torch's functional forms (`F.gelu`, `F.max_pool2d`, `F.interpolate`, `F.pad`,
`x.mean((2, 3))`, ...) are recorded by the trace when called outside any unit, and pair
with Keras layers as the modules do. Settings are compared for the input each layer
was called with: two poolings are the same when they read the same cells with the same
divisor, whatever their flags say.

Stage: pair.
"""

from __future__ import annotations

import functools
import inspect
import math

import numpy as np

from compare.pair import registry
from compare.pair.layers.conv import same_pads, zero_padding_before
from compare.pair.registry import Converter, Setting
from compare.pair.units import FunctionalOp, FusedActivation


def _bind(args, kwargs, names, defaults):
    """Positional and keyword arguments of a functional call, by name (input excluded)."""
    values = dict(defaults)
    for name, value in zip(names, args[1:], strict=False):
        values[name] = value
    values.update({k: v for k, v in kwargs.items() if k in names})
    return values


def _rank(args) -> int:
    return max(int(np.ndim(args[0]) if not hasattr(args[0], "dim") else args[0].dim()) - 2, 0)


def _tuple(value, rank):
    if value is None:
        return None
    if isinstance(value, (tuple, list)):
        return tuple(int(v) for v in value)
    return (int(value),) * rank


class _Inherit:
    """Weightless layers keep the layout of what feeds them: the pair before them."""

    @staticmethod
    def torch_layout(pair):
        return pair.context.get("torch_layout", "last")

    def align(self, pair, torch_output, keras_shape):
        from compare.pair import layout

        return layout.align(
            torch_output,
            keras_shape,
            self.torch_layout(pair),
            pair.context.get("keras_layout", "last"),
        )


# --- activations -----------------------------------------------------------------------

_TORCH_MODULE_ACTIVATIONS = {
    "ReLU": lambda m: {"function": "relu"},
    "ReLU6": lambda m: {"function": "relu6"},
    "LeakyReLU": lambda m: {"function": "leaky_relu", "negative_slope": m.negative_slope},
    "ELU": lambda m: {"function": "elu", "alpha": m.alpha},
    "GELU": lambda m: {
        "function": "gelu",
        "approximate": "tanh" if m.approximate == "tanh" else "none",
    },
    "SiLU": lambda m: {"function": "silu"},
    "Hardswish": lambda m: {"function": "hard_swish"},
    "Hardsigmoid": lambda m: {"function": "hard_sigmoid"},
    "Sigmoid": lambda m: {"function": "sigmoid"},
    "Tanh": lambda m: {"function": "tanh"},
    "Softmax": lambda m: {"function": "softmax"},
    "LogSoftmax": lambda m: {"function": "log_softmax"},
    "Mish": lambda m: {"function": "mish"},
    "Softplus": lambda m: {"function": "softplus", "beta": m.beta},
    "SELU": lambda m: {"function": "selu"},
    "Softsign": lambda m: {"function": "softsign"},
}
_KERAS_NAMES = {"swish": "silu", "hard_silu": "hard_swish", "hardswish": "hard_swish"}


def torch_activation(obj) -> dict:
    if isinstance(obj, FunctionalOp):
        return obj.settings
    name = type(obj).__name__
    if name == "Hardtanh" and (obj.min_val, obj.max_val) == (0.0, 6.0):
        return {"function": "relu6"}
    if name == "Hardtanh":
        return {"function": "hardtanh", "min": obj.min_val, "max": obj.max_val}
    for cls in type(obj).__mro__:
        if cls.__name__ in _TORCH_MODULE_ACTIVATIONS:
            return _TORCH_MODULE_ACTIVATIONS[cls.__name__](obj)
    return {"function": name}


def keras_function(fn) -> dict:
    """A Keras activation function's settings: its name and the arguments that change it
    (keras.ops.gelu's approximate=True default against keras.activations.gelu's False)."""
    keywords = {}
    while isinstance(fn, functools.partial):
        keywords = {**fn.keywords, **keywords}
        fn = fn.func
    name = getattr(fn, "__name__", type(fn).__name__)
    name = _KERAS_NAMES.get(name, name)
    settings = {"function": name}
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        parameters = {}
    if name == "gelu":
        default = parameters["approximate"].default if "approximate" in parameters else False
        settings["approximate"] = "tanh" if keywords.get("approximate", default) else "none"
    if name == "relu":
        slope = keywords.get("negative_slope", 0.0)
        top = keywords.get("max_value")
        if top == 6.0 and not slope:
            return {"function": "relu6"}
        if slope:
            return {"function": "leaky_relu", "negative_slope": float(slope)}
    if name == "leaky_relu":
        default = parameters["negative_slope"].default if "negative_slope" in parameters else 0.2
        settings["negative_slope"] = float(keywords.get("negative_slope", default))
    if name == "elu":
        settings["alpha"] = float(keywords.get("alpha", 1.0))
    return settings


def keras_activation(obj) -> dict:
    if isinstance(obj, FusedActivation):
        return keras_function(obj.activation)
    name = type(obj).__name__
    if name == "ReLU":
        top, slope = obj.max_value, float(obj.negative_slope or 0.0)
        if top is not None and float(top) == 6.0 and not slope and not obj.threshold:
            return {"function": "relu6"}
        if slope:
            return {"function": "leaky_relu", "negative_slope": slope}
        if top is not None:
            return {"function": "hardtanh", "min": 0.0, "max": float(top)}
        return {"function": "relu"}
    if name == "LeakyReLU":
        return {"function": "leaky_relu", "negative_slope": float(obj.negative_slope)}
    if name == "ELU":
        return {"function": "elu", "alpha": float(obj.alpha)}
    if name == "Softmax":
        return {"function": "softmax"}
    if name == "Activation":
        return keras_function(obj.activation)
    return {"function": name}


def _words(settings: dict) -> str:
    extra = ", ".join(f"{k}={v!r}" for k, v in settings.items() if k != "function")
    return f"{settings['function']}({extra})" if extra else settings["function"]


class ActivationConverter(_Inherit, Converter):
    kind = "activation"
    weighted = False

    def settings(self, pair):
        ours, theirs = torch_activation(pair.torch_module), keras_activation(pair.keras_layer)
        same = _same_activation(ours, theirs)
        effect = "another function"
        if ours.get("function") == theirs.get("function") == "gelu":
            effect = (
                "GELU exact (erf) against its tanh approximation: up to ~5e-4 apart; "
                "keras.ops.gelu approximates by default, keras.activations.gelu does not"
            )
        return [Setting("activation", _words(ours), _words(theirs), same=same, effect=effect)]

    def check(self, pair):
        return None

    def align_key(self, obj):
        found = keras_activation(obj) if _is_keras(obj) else torch_activation(obj)
        return f"activation:{found.get('function')}"


def _is_keras(obj) -> bool:
    return isinstance(obj, FusedActivation) or type(obj).__module__.startswith("keras")


def _same_activation(a: dict, b: dict) -> bool:
    if a.get("function") != b.get("function"):
        return False
    keys = set(a) | set(b)
    return all(registry._equal(a.get(k), b.get(k)) for k in keys)


def _activation_function(name, describe=None):
    def settings(args, kwargs):
        return describe(args, kwargs) if describe else {"function": name}

    return settings


def _gelu(args, kwargs):
    approximate = _bind(args, kwargs, ["approximate"], {"approximate": "none"})["approximate"]
    return {"function": "gelu", "approximate": "tanh" if approximate == "tanh" else "none"}


def _leaky(args, kwargs):
    slope = _bind(args, kwargs, ["negative_slope"], {"negative_slope": 0.01})["negative_slope"]
    return {"function": "leaky_relu", "negative_slope": float(slope)}


def _hardtanh(args, kwargs):
    values = _bind(args, kwargs, ["min_val", "max_val"], {"min_val": -1.0, "max_val": 1.0})
    if (float(values["min_val"]), float(values["max_val"])) == (0.0, 6.0):
        return {"function": "relu6"}
    return {
        "function": "hardtanh",
        "min": float(values["min_val"]),
        "max": float(values["max_val"]),
    }


def _elu(args, kwargs):
    return {
        "function": "elu",
        "alpha": float(_bind(args, kwargs, ["alpha"], {"alpha": 1.0})["alpha"]),
    }


# --- PReLU -------------------------------------------------------------------------------


class PReLUConverter(Converter):
    kind = "prelu"
    torch_layout = "channels_first"

    def check(self, pair):
        torch_size = pair.torch_module.weight.numel()
        keras_size = int(np.prod(pair.keras_layer.alpha.shape))
        if torch_size != keras_size:
            return (
                f"torch PReLU has {torch_size} slope(s), Keras's {keras_size}: give Keras "
                "shared_axes over the spatial axes (e.g. shared_axes=[1, 2])"
            )
        return None

    def to_keras(self, pair, a):
        return [a["weight"].reshape(tuple(pair.keras_layer.alpha.shape))]

    def to_torch(self, pair, w):
        return {"weight": w[0].reshape(-1)}


# --- pooling -----------------------------------------------------------------------------


def _torch_windows(n, k, s, p, d, ceil_mode, include_pad):
    """(cells read, divisor) per output of torch's pooling along one axis."""
    span = n + 2 * p - d * (k - 1) - 1
    out = (math.ceil(span / s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    windows = []
    for i in range(out):
        start = i * s - p
        cells = tuple(c for c in (start + j * d for j in range(k)) if 0 <= c < n)
        divisor = (min(start + k, n + p) - start) if include_pad else len(cells)
        windows.append((cells, divisor))
    return windows


def _keras_windows(n, k, s, padding, zero_pad):
    """The same for Keras, over the input before a ZeroPadding layer it reads."""
    before, after = zero_pad
    size = n + before + after
    if padding == "same":
        out = -(-size // s)
        pb, _ = same_pads(size, k, s)
    else:
        out = (size - k) // s + 1
        pb = 0
    windows = []
    for i in range(out):
        start = i * s - pb
        frame = [c for c in range(start, start + k) if 0 <= c < size]  # the padded input
        cells = tuple(c - before for c in frame if before <= c < before + n)
        windows.append((cells, len(frame)))  # zero-padded cells count; 'same' cells do not
    return windows


def torch_pool(obj) -> dict | None:
    if isinstance(obj, FunctionalOp):
        return obj.settings
    name = type(obj).__name__
    rank = int(name[-2]) if name[-2].isdigit() else 2
    return {
        "op": "max" if "Max" in name else "avg",
        "rank": rank,
        "kernel": _tuple(obj.kernel_size, rank),
        "stride": _tuple(obj.stride if obj.stride is not None else obj.kernel_size, rank),
        "padding": _tuple(obj.padding, rank),
        "dilation": _tuple(getattr(obj, "dilation", 1), rank),
        "ceil_mode": bool(obj.ceil_mode),
        "count_include_pad": bool(getattr(obj, "count_include_pad", True)),
        "divisor_override": getattr(obj, "divisor_override", None),
    }


def _pool_function(op):
    def describe(args, kwargs):
        rank = _rank(args)
        names = ["kernel_size", "stride", "padding"]
        names += (
            ["dilation", "ceil_mode"]
            if op == "max"
            else ["ceil_mode", "count_include_pad", "divisor_override"]
        )
        defaults = {
            "stride": None,
            "padding": 0,
            "dilation": 1,
            "ceil_mode": False,
            "count_include_pad": True,
            "divisor_override": None,
        }
        v = _bind(args, kwargs, names, defaults)
        kernel = _tuple(v["kernel_size"], rank)
        return {
            "op": op,
            "rank": rank,
            "kernel": kernel,
            "stride": _tuple(v["stride"], rank) if v["stride"] not in (None, []) else kernel,
            "padding": _tuple(v["padding"], rank),
            "dilation": _tuple(v["dilation"], rank),
            "ceil_mode": bool(v["ceil_mode"]),
            "count_include_pad": bool(v["count_include_pad"]),
            "divisor_override": v["divisor_override"],
        }

    return describe


class PoolConverter(Converter):
    kind = "pool"
    weighted = False
    torch_layout = "channels_first"

    def settings(self, pair):
        ours, layer = torch_pool(pair.torch_module), pair.keras_layer
        keras_op = "max" if "Max" in type(layer).__name__ else "avg"
        rows = [Setting("pooling", ours["op"], keras_op)]
        rank = ours["rank"]
        kernel = tuple(layer.pool_size)
        strides = tuple(layer.strides) if layer.strides is not None else kernel
        rows += [
            Setting("pool_size", ours["kernel"], kernel),
            Setting("strides", ours["stride"], strides),
        ]
        call = pair.torch_call
        if call is None or not call.inputs:
            return rows
        sizes = tuple(call.inputs[0].shape[2:])
        zero = zero_padding_before(pair) or tuple((0, 0) for _ in range(rank))
        ours_w, theirs_w = [], []
        for axis, n in enumerate(sizes[:rank]):
            ours_w.append(
                _torch_windows(
                    n,
                    ours["kernel"][axis],
                    ours["stride"][axis],
                    ours["padding"][axis],
                    ours["dilation"][axis],
                    ours["ceil_mode"],
                    ours["count_include_pad"],
                )
            )
            theirs_w.append(
                _keras_windows(n, kernel[axis], strides[axis], layer.padding, zero[axis])
            )
        if ours["op"] == "max":  # a maximum has no divisor
            ours_w = [[c for c, _ in axis] for axis in ours_w]
            theirs_w = [[c for c, _ in axis] for axis in theirs_w]
        if ours_w != theirs_w:
            rows.append(
                Setting(
                    "windows",
                    f"padding {ours['padding']}, ceil_mode={ours['ceil_mode']}"
                    + (
                        f", count_include_pad={ours['count_include_pad']}"
                        if ours["op"] == "avg"
                        else ""
                    )
                    + f": {[len(a) for a in ours_w]} outputs",
                    f"padding '{layer.padding}'"
                    + (f" after ZeroPadding {zero}" if any(any(z) for z in zero) else "")
                    + f": {[len(a) for a in theirs_w]} outputs",
                    same=False,
                    effect=f"on this {'x'.join(map(str, sizes[:rank]))} input the two pool other "
                    "cells or divide by another count (Keras's 'same' average leaves padded cells "
                    "out, torch counts them unless count_include_pad=False; ceil_mode adds a last "
                    "partial window)",
                )
            )
        if ours["op"] == "max" and any(any(z) for z in zero):
            rows.append(
                Setting(
                    "padding value",
                    "-inf (padded cells never win)",
                    "0 (a ZeroPadding layer)",
                    same=False,
                    decisive=False,
                    effect="equal only where the input is >= 0 (after a ReLU); before a PReLU, "
                    "tanh or a BatchNorm a zero in the border can be the maximum",
                )
            )
        if ours.get("divisor_override"):
            rows.append(Setting("divisor_override", ours["divisor_override"], None, same=False))
        return rows


def torch_adaptive(obj) -> dict:
    if isinstance(obj, FunctionalOp):
        return obj.settings
    name = type(obj).__name__
    return {"op": "max" if "Max" in name else "avg", "output_size": obj.output_size}


def _adaptive_function(op):
    def describe(args, kwargs):
        size = _bind(args, kwargs, ["output_size"], {"output_size": 1})["output_size"]
        return {"op": op, "output_size": size}

    return describe


def _global_mean(args, kwargs):
    """x.mean((2, 3)) and the like: a global average pooling when it reduces every
    spatial axis of a map (and nothing else); otherwise not one (None)."""
    x = args[0]
    dims = kwargs.get("dim", args[1] if len(args) > 1 else None)
    if dims is None or not hasattr(x, "dim") or x.dim() < 3:
        return None
    dims = tuple(d % x.dim() for d in (dims if isinstance(dims, (tuple, list)) else (dims,)))
    if sorted(dims) != list(range(2, x.dim())):
        return None
    return {"op": "avg", "output_size": 1}


class AdaptivePoolConverter(Converter):
    kind = "adaptive_pool"
    weighted = False
    torch_layout = "channels_first"

    def settings(self, pair):
        ours, layer = torch_adaptive(pair.torch_module), pair.keras_layer
        name = type(layer).__name__
        keras_op = "max" if "Max" in name else "avg"
        keras_size = 1 if name.startswith("Global") else layer.output_size
        rank = 1 if name.endswith("1D") else 3 if name.endswith("3D") else 2
        sizes = (
            tuple(pair.torch_call.inputs[0].shape[2:])
            if pair.torch_call and pair.torch_call.inputs
            else None
        )
        ours_size = _output_sizes(ours["output_size"], rank, sizes)
        theirs_size = _output_sizes(keras_size, rank, sizes)
        return [
            Setting("pooling", ours["op"], keras_op),
            Setting("output_size", ours_size, theirs_size, effect="another pooled size"),
        ]


def _output_sizes(size, rank, sizes):
    values = _tuple(size, rank) if not isinstance(size, (tuple, list)) else tuple(size)
    if sizes is None:
        return values
    return tuple(n if v is None else int(v) for v, n in zip(values, sizes, strict=False))


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
        if ours.get("antialias") != bool(getattr(layer, "antialias", False)):
            rows.append(
                Setting("antialias", ours.get("antialias"), getattr(layer, "antialias", False))
            )
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
    activation = registry.register(
        ActivationConverter,
        tuple(getattr(nn, n) for n in [*_TORCH_MODULE_ACTIVATIONS, "Hardtanh"]),
        (kl.ReLU, kl.LeakyReLU, kl.ELU, kl.Softmax, kl.Activation, FusedActivation),
        user=False,
    )
    for fn, describe in [
        (F.relu, None),
        (torch.relu, None),
        (torch.Tensor.relu, None),
        (F.relu6, lambda a, k: {"function": "relu6"}),
        (F.hardtanh, _hardtanh),
        (F.leaky_relu, _leaky),
        (F.elu, _elu),
        (F.gelu, _gelu),
        (F.silu, lambda a, k: {"function": "silu"}),
        (F.hardswish, lambda a, k: {"function": "hard_swish"}),
        (F.hardsigmoid, lambda a, k: {"function": "hard_sigmoid"}),
        (torch.sigmoid, lambda a, k: {"function": "sigmoid"}),
        (torch.Tensor.sigmoid, lambda a, k: {"function": "sigmoid"}),
        (F.sigmoid, lambda a, k: {"function": "sigmoid"}),
        (torch.tanh, lambda a, k: {"function": "tanh"}),
        (torch.Tensor.tanh, lambda a, k: {"function": "tanh"}),
        (F.tanh, lambda a, k: {"function": "tanh"}),
        (F.mish, lambda a, k: {"function": "mish"}),
        (F.softmax, lambda a, k: {"function": "softmax"}),
        (torch.softmax, lambda a, k: {"function": "softmax"}),
        (torch.Tensor.softmax, lambda a, k: {"function": "softmax"}),
        (F.log_softmax, lambda a, k: {"function": "log_softmax"}),
        (F.selu, lambda a, k: {"function": "selu"}),
    ]:
        name = getattr(fn, "__name__", "relu")
        registry.register_function(fn, activation, describe or _activation_function(name))
    registry.register(PReLUConverter, nn.PReLU, kl.PReLU, user=False)
    pool = registry.register(
        PoolConverter,
        (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d),
        (
            kl.MaxPooling1D,
            kl.MaxPooling2D,
            kl.MaxPooling3D,
            kl.AveragePooling1D,
            kl.AveragePooling2D,
            kl.AveragePooling3D,
        ),
        user=False,
    )
    for fn in (F.max_pool1d, F.max_pool2d, F.max_pool3d):
        registry.register_function(fn, pool, _pool_function("max"))
    for fn in (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d):
        registry.register_function(fn, pool, _pool_function("avg"))
    adaptive_keras = [
        kl.GlobalAveragePooling1D,
        kl.GlobalAveragePooling2D,
        kl.GlobalAveragePooling3D,
        kl.GlobalMaxPooling1D,
        kl.GlobalMaxPooling2D,
        kl.GlobalMaxPooling3D,
    ]
    adaptive_keras += [
        getattr(kl, n) for n in dir(kl) if n.startswith("Adaptive") and "Pooling" in n
    ]
    adaptive = registry.register(
        AdaptivePoolConverter,
        (
            nn.AdaptiveAvgPool1d,
            nn.AdaptiveAvgPool2d,
            nn.AdaptiveAvgPool3d,
            nn.AdaptiveMaxPool1d,
            nn.AdaptiveMaxPool2d,
            nn.AdaptiveMaxPool3d,
        ),
        tuple(adaptive_keras),
        user=False,
    )
    for fn in (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d):
        registry.register_function(fn, adaptive, _adaptive_function("avg"))
    for fn in (F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d):
        registry.register_function(fn, adaptive, _adaptive_function("max"))
    for fn in (torch.mean, torch.Tensor.mean):
        registry.register_function(fn, adaptive, _global_mean)
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
