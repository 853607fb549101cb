"""PyTorch's own defaults, read from default-constructed objects (mirrors keras_impl.defaults).

Nothing here is typed in: each value is measured or read from what the installed
torch builds when nothing is specified. `compare/defaults.py` puts the two sides
side by side with what the study sets.
"""

from __future__ import annotations

import inspect
import itertools
import re

import numpy as np
import torch
from torch import nn

DIMENSION_NAMES = "CHW"


def _init_name(layer_class, tensor: str) -> str:
    """The init function reset_parameters calls for `tensor`, read from its source."""
    source = inspect.getsource(layer_class.reset_parameters)
    match = re.search(rf"init\.(\w+)\(\s*self\.{tensor}\b", source)
    return match.group(1) if match else "?"


def _layout(shape, names: dict[int, str]) -> str:
    return "(" + ", ".join(names[size] for size in shape) + ")"


def _flatten_order() -> str:
    """Which image axes a flatten after convolutions walks, slowest first."""
    channels, height, width = 2, 3, 4
    c, h, w = np.meshgrid(np.arange(channels), np.arange(height), np.arange(width), indexing="ij")
    coded = torch.from_numpy((100 * c + 10 * h + w)[None].astype(np.float32))  # (1, C, H, W)
    flat = nn.Flatten()(coded)[0].numpy().astype(int)
    coordinates = [(v // 100, v // 10 % 10, v % 10) for v in flat]
    for order in itertools.permutations(range(3)):
        if coordinates == sorted(coordinates, key=lambda t, o=order: tuple(t[i] for i in o)):
            return "(" + ", ".join(DIMENSION_NAMES[i] for i in order) + ")"
    return "?"


def _same_padding_stride_2() -> str:
    """Where padding goes for a 3x3 stride-2 convolution on 28x28."""
    try:
        nn.Conv2d(1, 1, 3, stride=2, padding="same")
        refused = ""
    except ValueError:
        refused = "padding='same' refused at stride 2; "
    conv = nn.Conv2d(1, 1, 3, stride=2, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        out = conv(torch.ones(1, 1, 28, 28))[0, 0]
    # A ones kernel on a ones image counts the real pixels under each corner window.
    top = 3 - int(round(float(out[0, 0]) ** 0.5))
    bottom = 3 - int(round(float(out[-1, -1]) ** 0.5))
    return f"{refused}padding=1 pads top/left {top}, bottom/right {bottom} (used)"


def _adam_effective_epsilon(optimizer_class, gradient: float = 1e-6) -> float:
    """The epsilon the first step effectively adds to sqrt(v_hat): |g| (lr / |step| - 1)."""
    parameter = nn.Parameter(torch.zeros(1))
    optimizer = optimizer_class([parameter])
    parameter.grad = torch.full((1,), gradient)
    optimizer.step()
    step = abs(float(parameter.detach()[0]))
    return gradient * (optimizer.defaults["lr"] / step - 1)


def framework_defaults() -> dict[str, str]:
    """What torch does when the study says nothing, keyed like keras_impl's."""
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(0)
        linear = nn.Linear(784, 256)
        conv = nn.Conv2d(1, 32, 3)
        dropout_out = nn.Dropout(0.5)(torch.ones(1000))
        layout_linear = nn.Linear(4, 5)
        layout_conv = nn.Conv2d(4, 5, (2, 3))
        batch_norm = nn.BatchNorm2d(1)
        adam = torch.optim.Adam([nn.Parameter(torch.zeros(1))])
        sgd = torch.optim.SGD([nn.Parameter(torch.zeros(1))])
        adam_epsilon = _adam_effective_epsilon(torch.optim.Adam)
    try:
        layout_conv(torch.zeros(1, 6, 6, 4))
        image_layout = "(N, H, W, C)"
    except RuntimeError:
        image_layout = "(N, C, H, W)"
    return {
        "dense kernel init (784->256)": f"{_init_name(nn.Linear, 'weight')}: "
        f"max |w| {float(linear.weight.detach().abs().max()):.3g}",
        "dense bias init (784->256)": f"{_init_name(nn.Linear, 'bias')}: "
        f"max |b| {float(linear.bias.detach().abs().max()):.3g}",
        "conv kernel init (3x3, 1->32)": f"{_init_name(nn.Conv2d, 'weight')}: "
        f"max |w| {float(conv.weight.detach().abs().max()):.3g}",
        "conv bias init (3x3, 1->32)": f"{_init_name(nn.Conv2d, 'bias')}: "
        f"max |b| {float(conv.bias.detach().abs().max()):.3g}",
        "dense kernel layout": _layout(layout_linear.weight.shape, {4: "in", 5: "out"}),
        "conv kernel layout": _layout(
            layout_conv.weight.shape, {4: "in", 5: "out", 2: "kH", 3: "kW"}
        ),
        "image layout": image_layout,
        "flatten order after convolutions": _flatten_order(),
        "'same' padding, 3x3 stride 2 on 28x28": _same_padding_stride_2(),
        "adam epsilon": f"{adam.defaults['eps']:g}",
        "adam epsilon as added to sqrt(v_hat), step 1": f"{adam_epsilon:.3g}",
        "sgd learning rate": f"{sgd.defaults['lr']:g}",
        "batchnorm momentum": f"{batch_norm.momentum:g} (weight of the new batch statistic)",
        "batchnorm epsilon": f"{batch_norm.eps:g}",
        "loss reduction": nn.CrossEntropyLoss().reduction,
        "dropout when not training": "active until .eval(): "
        f"{int((dropout_out == 0).sum())} of 1000 zeroed by a fresh layer",
    }
