"""PyTorch models built from a ModelSpec, and weights in the canonical layout.

Canonical layout (shared with keras_impl): one (kernel, bias) pair per weighted layer,
in forward order, as float32 NumPy arrays:
- convolution: kernel (kh, kw, in, out), bias (out,). A torch Conv2d stores
  (out, in, kh, kw), hence the permutation (2, 3, 1, 0) and its inverse (3, 2, 0, 1).
- dense: kernel (in, out), bias (out,). A torch Linear stores (out, in), hence the
  transposes. For the first dense layer after a flatten, the kernel's rows are in
  torch's (C, H, W) flatten order, so this side needs no conversion for it.

Parity: no trap builder here; keras_impl.model.build_trap_model's wrong variants are
measured against this side, the reference.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
from torch import nn

from compare.spec.schema import IMAGE_SHAPE, conv_output_shape
from pytorch_impl import transfer


class _CustomReLUFunction(torch.autograd.Function):
    """The tutorial's `MyReLU`: clamp forward, zero the gradient where the input is < 0."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        grad_input = grad_output.clone()
        grad_input[x < 0] = 0
        return grad_input


class CustomReLU(nn.Module):
    """ReLU through a hand-written backward (`torch.autograd.Function`)."""

    def forward(self, x):
        return _CustomReLUFunction.apply(x)


ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "custom_relu": CustomReLU}
WEIGHTED_LAYERS = (nn.Conv2d, nn.Linear)
# Every dropout-like layer (Dropout, AlphaDropout, ...): the probe must see them all.
DROPOUT_LAYERS = (nn.modules.dropout._DropoutNd,)
# The other layers that compute differently in training: batch norm (every BatchNorm*d).
NORMALIZATION_LAYERS = (nn.modules.batchnorm._BatchNorm,)


def _initialize(tensor: torch.Tensor, kind: str, fan_in: int) -> None:
    if kind == "uniform_fan_in":
        # PyTorch's own default (kaiming_uniform_ with a=sqrt(5)) is U(+-1/sqrt(fan_in)).
        bound = 1.0 / math.sqrt(fan_in)
        nn.init.uniform_(tensor, -bound, bound)
    elif kind == "glorot_uniform":
        nn.init.xavier_uniform_(tensor)
    elif kind == "zeros":
        nn.init.zeros_(tensor)
    elif kind == "standard_normal":
        nn.init.normal_(tensor, 0.0, 1.0)  # torch.randn, as the regression tutorial draws
    else:
        raise ValueError(f"unknown initializer {kind!r}")


def dense(in_features: int, out_features: int, model_spec) -> nn.Linear:
    layer = nn.Linear(in_features, out_features, bias=model_spec.use_bias)
    # Parity: both sides initialise from the spec, not from their own defaults.
    with torch.no_grad():
        _initialize(layer.weight, model_spec.kernel_init, in_features)
        if layer.bias is not None:
            _initialize(layer.bias, model_spec.bias_init, in_features)
    return layer


def conv(in_channels: int, out_channels: int, model_spec) -> nn.Conv2d:
    size = model_spec.conv_kernel_size
    layer = nn.Conv2d(
        in_channels,
        out_channels,
        size,
        stride=model_spec.conv_stride,
        padding=model_spec.conv_padding,  # symmetric zero padding on every side
    )
    # Parity: both sides initialise from the spec; fan_in = kh * kw * in, as torch's.
    with torch.no_grad():
        _initialize(layer.weight, model_spec.kernel_init, size * size * in_channels)
        _initialize(layer.bias, model_spec.bias_init, size * size * in_channels)
    return layer


def conv_features(model_spec) -> list[nn.Module]:
    """(B, 28, 28) -> (B, C * H * W): convolutions, pooling, then a (C, H, W) flatten."""
    # (B, 28, 28) -> (B, 1, 28, 28): the height axis split into (1 channel, height).
    layers: list[nn.Module] = [nn.Unflatten(1, (1, IMAGE_SHAPE[0]))]
    channels = 1
    for filters in model_spec.conv_filters:
        layers.append(conv(channels, filters, model_spec))
        layers.append(ACTIVATIONS[model_spec.activation]())
        channels = filters
    if model_spec.pooling == "avg":
        layers.append(nn.AvgPool2d(model_spec.pool_size))  # stride = pool_size, no padding
    elif model_spec.pooling == "global_avg":
        layers.append(nn.AdaptiveAvgPool2d(1))  # -> (B, C, 1, 1)
    layers.append(nn.Flatten())  # (B, C, H, W) -> (B, C * H * W)
    return layers


def dense_head(width: int, model_spec) -> list[nn.Module]:
    """(B, width) -> (B, num_classes): hidden_sizes with their activation (and dropout),
    then the logits layer."""
    layers: list[nn.Module] = []
    for size in model_spec.hidden_sizes:
        layers.append(dense(width, size, model_spec))
        layers.append(ACTIVATIONS[model_spec.activation]())
        if model_spec.dropout_rate > 0:
            layers.append(nn.Dropout(model_spec.dropout_rate))
        width = size
    layers.append(dense(width, model_spec.num_classes, model_spec))
    return layers


def build_model(model_spec) -> nn.Module:
    """(B, 28, 28) float32 -> (B, num_classes) logits. "logreg" has no hidden layers;
    "densenet121" takes (B, S, S) (`pytorch_impl.transfer`)."""
    if model_spec.architecture not in ("mlp", "logreg", "cnn", "densenet121"):
        # The regression nets are not classifiers: they have their own contract.
        raise ValueError(f"{model_spec.architecture!r} is built by the regression module")
    if model_spec.architecture == "densenet121":
        # Part 8: torchvision's DenseNet-121 with its classifier replaced by the head.
        network = transfer.densenet121(model_spec)
        network.classifier = nn.Sequential(*dense_head(transfer.FEATURE_WIDTH, model_spec))
        return transfer.TransferModel(network, model_spec)
    if model_spec.architecture == "cnn":
        layers = conv_features(model_spec)
        width = math.prod(conv_output_shape(model_spec))
    else:
        layers = [nn.Flatten()]  # (B, 28, 28) -> (B, 784)
        width = math.prod(IMAGE_SHAPE)
    if model_spec.logits_from == "dense":
        layers += dense_head(width, model_spec)
    if model_spec.output_activation == "relu":
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _weighted_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, WEIGHTED_LAYERS)]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _to_canonical(layer: nn.Module, weight: np.ndarray) -> np.ndarray:
    if isinstance(layer, nn.Conv2d):
        return weight.transpose(2, 3, 1, 0)  # (out, in, kh, kw) -> (kh, kw, in, out)
    return weight.T  # (out, in) -> (in, out)


def _from_canonical(layer: nn.Module, kernel: np.ndarray) -> np.ndarray:
    if isinstance(layer, nn.Conv2d):
        return kernel.transpose(3, 2, 0, 1)  # (kh, kw, in, out) -> (out, in, kh, kw)
    return kernel.T  # (in, out) -> (out, in)


def get_weights(model: nn.Module) -> list[np.ndarray]:
    """Weights in the canonical layout: [kernel, bias] per weighted layer, in order
    (the transfer model's own layout: `pytorch_impl.transfer`)."""
    if isinstance(model, transfer.TransferModel):
        return transfer.get_weights(model)
    weights = []
    for layer in _weighted_layers(model):
        weight = layer.weight.detach().cpu().numpy()
        weights.append(np.ascontiguousarray(_to_canonical(layer, weight)))
        weights.append(layer.bias.detach().cpu().numpy().copy())
    return weights


def set_weights(model: nn.Module, weights: list[np.ndarray]) -> None:
    """Load canonical-layout weights (the inverse of get_weights, exactly)."""
    if isinstance(model, transfer.TransferModel):
        return transfer.set_weights(model, weights)
    layers = _weighted_layers(model)
    if len(weights) != 2 * len(layers):
        raise ValueError(f"expected {2 * len(layers)} arrays, got {len(weights)}")
    with torch.no_grad():
        for layer, kernel, bias in zip(layers, weights[0::2], weights[1::2], strict=True):
            weight = _from_canonical(layer, kernel)
            if weight.shape != tuple(layer.weight.shape) or bias.shape != tuple(layer.bias.shape):
                raise ValueError(
                    f"canonical kernel {kernel.shape} / bias {bias.shape} do not fit {layer}"
                )
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
            layer.bias.copy_(torch.from_numpy(np.ascontiguousarray(bias)))


def dropout_probe(model: nn.Module, x: np.ndarray) -> list[dict]:
    """Each dropout layer of the model, in forward order: how many weighted layers come
    before it, its input on x (the layers before it in inference mode), and its output
    on that input in training mode and in inference mode."""
    device = next(model.parameters()).device
    was_training = model.training
    probes, weighted = [], 0
    hidden = torch.from_numpy(x).to(device)
    with torch.no_grad():
        for layer in model:
            weighted += isinstance(layer, WEIGHTED_LAYERS)
            if isinstance(layer, DROPOUT_LAYERS):
                before = hidden
                trained = layer.train()(before)
                hidden = layer.eval()(before)
                probes.append(
                    {
                        "after_weighted_layers": weighted,
                        "input": before.cpu().numpy(),
                        "training": trained.cpu().numpy(),
                        "inference": hidden.cpu().numpy(),
                    }
                )
            else:
                hidden = layer.eval()(hidden)
    model.train(was_training)
    return probes


@contextlib.contextmanager
def mode_probe(model: nn.Module):
    """While the block runs, every call of the model's dropout and batch-norm layers is
    recorded with whether it computed in training mode (dropout dropping: the module in
    training mode and p > 0; batch norm from the batch's statistics: training mode, or
    no running statistics). Yields (layers, calls): each probed layer in module order as
    {"layer", "kind", "trainable"}, and the list each call's {"layer", "active"} is
    appended to. The hooks read what the layer's own forward reads, so a Trainer that
    leaves the model in eval mode, or a layer it never calls, shows."""
    layers, calls, handles = [], [], []
    for name, module in model.named_modules():
        if not isinstance(module, DROPOUT_LAYERS + NORMALIZATION_LAYERS):
            continue
        dropout = isinstance(module, DROPOUT_LAYERS)
        label = f"{name} ({type(module).__name__})"
        parameters = list(module.parameters(recurse=False))
        layers.append(
            {
                "layer": label,
                "kind": "dropout" if dropout else "normalization",
                "trainable": all(p.requires_grad for p in parameters),
            }
        )

        def record(module, args, output, label=label, dropout=dropout):
            if dropout:
                active = module.training and module.p > 0
            else:
                active = module.training or module.running_mean is None
            calls.append({"layer": label, "active": bool(active)})

        handles.append(module.register_forward_hook(record))
    try:
        yield layers, calls
    finally:
        for handle in handles:
            handle.remove()
