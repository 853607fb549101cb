"""Padding as each side computes it, for the input size a layer was called with: what a
convolution or a pool pads before and after along every axis, TensorFlow-style 'same'
(the odd cell after), and the zero-pad layer either side may put before it (a Keras
ZeroPadding, a torch ZeroPad2d or F.pad), so that the two are compared from the same
unpadded input.

Stage: pair.
"""

from __future__ import annotations

from compare.pair.registry import Setting


def same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) of TensorFlow-style 'same' along one axis: the odd cell after."""
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def as_tuple(value, rank: int) -> tuple:
    if isinstance(value, (tuple, list)):
        return tuple(int(v) for v in value)
    return (int(value),) * rank


def keras_zero_source(pair) -> tuple | None:
    """((before, after), ...) of a Keras ZeroPadding layer whose output the pair's Keras
    layer reads (seen in the traced pass, or in a functional graph), else None."""
    source = pair.context.get("keras_source")
    if source is None:
        try:
            source = pair.keras_layer.input._keras_history.operation
        except (AttributeError, ValueError):
            return None
    if not type(source).__name__.startswith("ZeroPadding"):
        return None
    return tuple(tuple(int(p) for p in axis) for axis in source.padding)


def torch_zero_source(pair, rank: int) -> tuple | None:
    """The same for torch: a zero pad (`ZeroPad2d`, `ConstantPad2d(.., 0)`, `F.pad`) whose
    output the pair's torch module reads, over its last `rank` axes."""
    from compare.pair.layers.resampling import torch_pad  # pads are resampling's

    source = pair.context.get("torch_source")
    if source is None or "Pad" not in type(source).__name__ and not _is_pad_op(source):
        return None
    found = torch_pad(source)
    if found.get("mode") != "zeros":
        return None
    amounts = tuple(found["amounts"])
    return ((0, 0),) * (rank - len(amounts)) + amounts[-rank:]


def _is_pad_op(obj) -> bool:
    return getattr(obj, "function", None) == "pad" and hasattr(obj, "settings")


def zero_padding_before(pair) -> tuple | None:
    """The Keras ZeroPadding before the pair's layer where it pads for that layer: not
    where torch's layer reads an input of the size Keras's reads (torch padded it too,
    with its own pad module, paired with the ZeroPadding)."""
    pads = keras_zero_source(pair)
    torch_call, keras_call = pair.torch_call, pair.keras_call
    if (
        pads is not None
        and torch_call is not None
        and keras_call is not None
        and torch_call.inputs
        and keras_call.inputs
        and keras_call.inputs[0] is not None
    ):
        rank = len(pads)
        last = getattr(pair.keras_layer, "data_format", "channels_last") == "channels_last"
        keras_shape = keras_call.inputs[0].shape
        keras_sizes = tuple(keras_shape[-rank - 1 : -1] if last else keras_shape[2:])
        if keras_sizes == tuple(torch_call.inputs[0].shape[2:]):
            return None
    return pads


def spatial_sizes(call, rank: int, channels_first: bool) -> tuple | None:
    """The spatial sizes of a traced call's first input."""
    if call is None or not call.inputs or call.inputs[0] is None:
        return None
    shape = call.inputs[0].shape
    if len(shape) < rank + 1:
        return None
    return tuple(shape[2:] if channels_first else shape[-rank - 1 : -1])


def keras_pads(pair, sizes, kernel, strides, dilation) -> tuple | None:
    """What the Keras layer pads along each axis, a ZeroPadding before it included."""
    if sizes is None:
        return None
    layer = pair.keras_layer
    before = keras_zero_source(pair)
    own = []
    for axis, (n, k, s, d) in enumerate(zip(sizes, kernel, strides, dilation, strict=True)):
        if layer.padding == "same":
            own.append(same_pads(n, k, s, d))
        elif layer.padding == "causal":
            own.append(((k - 1) * d, 0))
        else:
            own.append((0, 0))
        if before is not None and axis < len(before):
            own[-1] = (own[-1][0] + before[axis][0], own[-1][1] + before[axis][1])
    return tuple(own)


def torch_pads(module, sizes, kernel, stride, dilation) -> tuple | None:
    if sizes is None:
        return None
    padding = module.padding
    if padding == "valid":
        return tuple((0, 0) for _ in sizes)
    if padding == "same":  # torch's 'same' (stride 1) puts the odd cell after, too
        return tuple(same_pads(n, k, 1, d) for n, k, d in zip(sizes, kernel, dilation, strict=True))
    return tuple((p, p) for p in as_tuple(padding, len(sizes)))


def padding_setting(torch_pads_, keras_pads_, sizes, keras_words) -> Setting | None:
    if torch_pads_ is None or keras_pads_ is None or torch_pads_ == keras_pads_:
        return None
    return Setting(
        "padding",
        f"{list(torch_pads_)} before/after on a {'x'.join(map(str, sizes))} input",
        f"{list(keras_pads_)} ({keras_words})",
        same=False,
        effect="the two pad differently for this input size (Keras's 'same' puts the odd "
        "cell after, torch pads both sides alike): outputs shift by a cell; give Keras a "
        "ZeroPadding layer and 'valid', or torch the same padding",
    )
