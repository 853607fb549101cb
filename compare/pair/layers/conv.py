"""Convolutions: Conv1d/2d/3d against Conv1D/2D/3D and DepthwiseConv1D/2D, transposed
convolutions, and a depthwise + pointwise pair of torch convolutions against Keras's
SeparableConv1D/2D.

Kernels: torch (out, in/groups, *k) -> Keras (*k, in/groups, out); depthwise
(in*m, 1, *k) -> (*k, in, m); transposed (in, out, *k) -> (*k, out, in).

Padding is compared for the input size each layer was called with, from the input before
any zero-pad layer on either side (`compare.pair.layers.padding`), so stride-2 'same' is
named only where it really pads otherwise than torch (an even input), and a forgotten
dilation is named as dilation.

Stage: pair.
"""

from __future__ import annotations

from compare.pair import registry
from compare.pair.layers.padding import (
    as_tuple,
    keras_pads,
    keras_zero_source,
    padding_setting,
    spatial_sizes,
    torch_pads,
    torch_zero_source,
)
from compare.pair.registry import Converter, Setting


class ConvToConv(Converter):
    kind = "conv"
    torch_layout = "channels_first"

    @staticmethod
    def _depthwise(pair) -> bool:
        return type(pair.keras_layer).__name__.startswith("Depthwise")

    def check(self, pair):
        module, layer = pair.torch_module, pair.keras_layer
        rank = len(module.kernel_size)
        if len(layer.kernel_size) != rank:
            return f"a {rank}-D torch convolution against a {len(layer.kernel_size)}-D Keras one"
        if self._depthwise(pair) and module.groups != module.in_channels:
            return f"a Keras depthwise convolution against torch groups={module.groups}"
        torch_bias = module.bias is not None
        if torch_bias != bool(layer.use_bias):
            return f"bias: torch {torch_bias}, keras use_bias={layer.use_bias}"
        return None

    def to_keras(self, pair, a):
        weight = a["weight"]
        spatial = weight.ndim - 2
        if self._depthwise(pair):
            channels = pair.torch_module.in_channels
            weight = weight.reshape(channels, -1, *weight.shape[2:])
            kernel = weight.transpose(*range(2, 2 + spatial), 0, 1)
        else:
            kernel = weight.transpose(*range(2, 2 + spatial), 1, 0)
        return [kernel] + ([a["bias"]] if "bias" in a else [])

    def to_torch(self, pair, w):
        kernel = w[0]
        spatial = kernel.ndim - 2
        if self._depthwise(pair):
            weight = kernel.transpose(spatial, spatial + 1, *range(spatial))
            weight = weight.reshape(-1, 1, *weight.shape[2:])
        else:
            weight = kernel.transpose(spatial + 1, spatial, *range(spatial))
        return {"weight": weight} | ({"bias": w[1]} if len(w) > 1 else {})

    def settings(self, pair):
        module, layer = pair.torch_module, pair.keras_layer
        rank = len(module.kernel_size)
        kernel = as_tuple(layer.kernel_size, rank)
        strides = as_tuple(layer.strides, rank)
        dilation = as_tuple(layer.dilation_rate, rank)
        groups = module.in_channels if self._depthwise(pair) else getattr(layer, "groups", 1)
        rows = [
            Setting("kernel_size", tuple(module.kernel_size), kernel),
            Setting("strides", tuple(module.stride), strides, effect="another output size"),
            Setting(
                "dilation",
                tuple(module.dilation),
                dilation,
                effect="the kernel reads other cells",
            ),
            Setting("groups", module.groups, groups, effect="channels mixed otherwise"),
        ]
        if module.padding_mode != "zeros":
            rows.append(
                Setting(
                    "padding_mode",
                    module.padding_mode,
                    "zeros",
                    effect="torch pads with reflected/replicated cells, a Keras "
                    "convolution with zeros (unless a layer before it pads)",
                    decisive=False,
                )
            )
        # Each side's padding counted from the input before any zero-padding layer: a torch
        # ZeroPad2d before a 'valid' convolution is Keras's 'same' where the cells agree.
        sizes = spatial_sizes(pair.torch_call, rank, channels_first=True)
        torch_side = torch_pads(
            module, sizes, tuple(module.kernel_size), tuple(module.stride), tuple(module.dilation)
        )
        torch_before = torch_zero_source(pair, rank)
        if torch_side is not None and torch_before is not None:
            torch_side = tuple(
                (a + c, b + d) for (a, b), (c, d) in zip(torch_side, torch_before, strict=True)
            )
            sizes = tuple(n - c - d for n, (c, d) in zip(sizes, torch_before, strict=True))
        own_sizes = spatial_sizes(
            pair.keras_call, rank, getattr(layer, "data_format", "") == "channels_first"
        )
        keras_side = keras_pads(pair, own_sizes, kernel, strides, dilation)
        words = f"'{layer.padding}'" + (
            " after a ZeroPadding layer" if keras_zero_source(pair) else ""
        )
        padding = padding_setting(torch_side, keras_side, sizes, words)
        return rows + ([padding] if padding else [])


def transposed_length(n, k, s, d, padding, output_padding):
    """(output length, cells cropped before) of a Keras transposed convolution."""
    effective = (k - 1) * d + 1
    full = (n - 1) * s + effective
    if output_padding is None:
        length = n * s if padding == "same" else n * s + max(effective - s, 0)
    else:
        pad = effective // 2 if padding == "same" else 0
        length = (n - 1) * s + effective - 2 * pad + output_padding
    if padding == "same":
        total = max(full - length, 0)
        return length, total // 2
    return length, 0


class ConvTransposeToConvTranspose(Converter):
    kind = "conv_transpose"
    torch_layout = "channels_first"

    def check(self, pair):
        module, layer = pair.torch_module, pair.keras_layer
        if module.groups != 1:
            return f"torch groups={module.groups}: Keras's transposed convolutions have no groups"
        if len(layer.kernel_size) != len(module.kernel_size):
            return "the two transposed convolutions have another rank"
        if (module.bias is not None) != bool(layer.use_bias):
            return f"bias: torch {module.bias is not None}, keras use_bias={layer.use_bias}"
        return None

    def to_keras(self, pair, a):
        weight = a["weight"]  # (in, out, *k)
        spatial = weight.ndim - 2
        kernel = weight.transpose(*range(2, 2 + spatial), 1, 0)  # (*k, out, in)
        return [kernel] + ([a["bias"]] if "bias" in a else [])

    def to_torch(self, pair, w):
        kernel = w[0]
        spatial = kernel.ndim - 2
        weight = kernel.transpose(spatial + 1, spatial, *range(spatial))
        return {"weight": weight} | ({"bias": w[1]} if len(w) > 1 else {})

    def settings(self, pair):
        module, layer = pair.torch_module, pair.keras_layer
        rank = len(module.kernel_size)
        kernel = as_tuple(layer.kernel_size, rank)
        strides = as_tuple(layer.strides, rank)
        dilation = as_tuple(layer.dilation_rate, rank)
        rows = [
            Setting("kernel_size", tuple(module.kernel_size), kernel),
            Setting("strides", tuple(module.stride), strides, effect="another output size"),
            Setting("dilation", tuple(module.dilation), dilation),
        ]
        sizes = spatial_sizes(pair.torch_call, rank, channels_first=True)
        if sizes is None:
            return rows
        output_padding = layer.output_padding
        keras_op = None if output_padding is None else as_tuple(output_padding, rank)
        torch_side, keras_side = [], []
        for axis, n in enumerate(sizes):
            k, s, d = module.kernel_size[axis], module.stride[axis], module.dilation[axis]
            p, op = module.padding[axis], module.output_padding[axis]
            length = (n - 1) * s - 2 * p + d * (k - 1) + op + 1
            torch_side.append((length, p))
            keras_side.append(
                transposed_length(
                    n,
                    kernel[axis],
                    strides[axis],
                    dilation[axis],
                    layer.padding,
                    None if keras_op is None else keras_op[axis],
                )
            )
        if torch_side != keras_side:
            rows.append(
                Setting(
                    "padding",
                    f"padding {tuple(module.padding)}, output_padding "
                    f"{tuple(module.output_padding)}: (length, cropped before) {torch_side}",
                    f"'{layer.padding}', output_padding {output_padding}: {keras_side}",
                    same=False,
                    effect="the transposed convolutions crop their outputs otherwise for "
                    f"this {'x'.join(map(str, sizes))} input: the map shifts by a cell or "
                    "changes size",
                )
            )
        return rows


class SeparablePair:
    """torch's depthwise convolution and the pointwise one reading it: Keras's
    SeparableConv in two modules."""

    def __init__(self, depthwise_unit, pointwise_unit):
        self.depthwise_unit, self.pointwise_unit = depthwise_unit, pointwise_unit
        self.depthwise, self.pointwise = depthwise_unit.obj, pointwise_unit.obj

    type_name = "Conv + Conv"

    def state_dict(self, keep_vars=False):
        state = {f"depthwise.{k}": v for k, v in self.depthwise.state_dict().items()}
        return state | {f"pointwise.{k}": v for k, v in self.pointwise.state_dict().items()}


class SeparableConv(Converter):
    """depthwise (in*m, 1, *k) -> depthwise_kernel (*k, in, m); pointwise (out, in*m, 1...)
    -> pointwise_kernel (1..., in*m, out); the pointwise bias. The depthwise module
    must have no bias (Keras's SeparableConv has one bias, after the pointwise step)."""

    kind = "separable"
    torch_layout = "channels_first"

    def check(self, pair):
        pieces = pair.torch_module
        if not isinstance(pieces, SeparablePair):
            return "a Keras SeparableConv pairs with two torch convolutions"
        if pieces.depthwise.bias is not None:
            return (
                "the torch depthwise convolution has a bias; Keras's SeparableConv has none there"
            )
        if (pieces.pointwise.bias is not None) != bool(pair.keras_layer.use_bias):
            return "bias: torch's pointwise convolution and Keras's use_bias differ"
        return None

    def to_keras(self, pair, a):
        depthwise, pointwise = a["depthwise.weight"], a["pointwise.weight"]
        spatial = depthwise.ndim - 2
        channels = pair.torch_module.depthwise.in_channels
        dw = depthwise.reshape(channels, -1, *depthwise.shape[2:])
        dw = dw.transpose(*range(2, 2 + spatial), 0, 1)
        pw = pointwise.transpose(*range(2, 2 + spatial), 1, 0)
        out = [dw, pw]
        return out + ([a["pointwise.bias"]] if "pointwise.bias" in a else [])

    def to_torch(self, pair, w):
        spatial = w[0].ndim - 2
        dw = w[0].transpose(spatial, spatial + 1, *range(spatial))
        dw = dw.reshape(-1, 1, *dw.shape[2:])
        pw = w[1].transpose(spatial + 1, spatial, *range(spatial))
        out = {"depthwise.weight": dw, "pointwise.weight": pw}
        return out | ({"pointwise.bias": w[2]} if len(w) > 2 else {})

    def settings(self, pair):
        depthwise, layer = pair.torch_module.depthwise, pair.keras_layer
        rank = len(depthwise.kernel_size)
        return [
            Setting("kernel_size", tuple(depthwise.kernel_size), as_tuple(layer.kernel_size, rank)),
            Setting("strides", tuple(depthwise.stride), as_tuple(layer.strides, rank)),
            Setting("dilation", tuple(depthwise.dilation), as_tuple(layer.dilation_rate, rank)),
        ]


def _register():
    import keras
    import torch

    convs = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    registry.register(
        ConvToConv,
        convs,
        (
            keras.layers.Conv1D,
            keras.layers.Conv2D,
            keras.layers.Conv3D,
            keras.layers.DepthwiseConv1D,
            keras.layers.DepthwiseConv2D,
        ),
        user=False,
    )
    registry.register(
        ConvTransposeToConvTranspose,
        (torch.nn.ConvTranspose1d, torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d),
        (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose),
        user=False,
    )
    registry.register(
        SeparableConv,
        (SeparablePair,),
        (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D),
        user=False,
    )


_register()
