"""Pooling: max and average (ceil_mode, count_include_pad, 'same', a ZeroPadding before),
compared by the cells each window reads and its divisor for the input size each layer
was called with; adaptive and global pooling (`x.mean((2, 3))` too) by output size.

Stage: pair.
"""

from __future__ import annotations

import math

from compare.pair import registry
from compare.pair.layers.common import _bind, _rank, _tuple
from compare.pair.layers.padding import same_pads, zero_padding_before
from compare.pair.registry import Converter, Setting
from compare.pair.units import FunctionalOp

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


def _register():
    import keras
    import torch
    import torch.nn.functional as F

    nn, kl = torch.nn, keras.layers
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


_register()
