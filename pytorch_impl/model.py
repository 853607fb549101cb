"""PyTorch models built from a ModelSpec, and weights in the canonical layout.

Canonical layout (shared with keras_impl): one (kernel, bias) pair per dense layer in
order, kernel shaped (in, out). A torch Linear stores (out, in), hence the transposes.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from compare.data import IMAGE_SHAPE


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


def build_model(model_spec) -> nn.Sequential:
    """(B, 28, 28) float32 -> (B, num_classes) logits. "logreg" has no hidden layers."""
    if model_spec.architecture not in ("mlp", "logreg"):
        # The regression nets are not classifiers: they have their own contract.
        raise ValueError(f"{model_spec.architecture!r} is built by the regression module")
    layers: list[nn.Module] = [nn.Flatten()]  # (B, 28, 28) -> (B, 784)
    width = math.prod(IMAGE_SHAPE)
    for size in model_spec.hidden_sizes:
        layers.append(dense(width, size, model_spec))
        layers.append(ACTIVATIONS[model_spec.activation]())
        if model_spec.dropout_rate > 0:
            layers.append(nn.Dropout(model_spec.dropout_rate))
        width = size
    layers.append(dense(width, model_spec.num_classes, model_spec))
    if model_spec.output_activation == "relu":
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _dense_layers(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def get_weights(model: nn.Module) -> list[np.ndarray]:
    """Weights in the canonical layout: [kernel (in, out), bias (out,)] per layer."""
    weights = []
    for layer in _dense_layers(model):
        weights.append(layer.weight.detach().cpu().numpy().T.copy())
        weights.append(layer.bias.detach().cpu().numpy().copy())
    return weights


def set_weights(model: nn.Module, weights: list[np.ndarray]) -> None:
    """Load canonical-layout weights (the inverse of get_weights, exactly)."""
    layers = _dense_layers(model)
    if len(weights) != 2 * len(layers):
        raise ValueError(f"expected {2 * len(layers)} arrays, got {len(weights)}")
    with torch.no_grad():
        for layer, kernel, bias in zip(layers, weights[0::2], weights[1::2], strict=True):
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.T)))
            layer.bias.copy_(torch.from_numpy(np.ascontiguousarray(bias)))
