"""DenseNet-121 transfer learning in PyTorch (mirrors keras_impl.transfer).

The notes' Part 8: torchvision's DenseNet-121 with every feature parameter frozen and
its classifier replaced (`pytorch_impl.model.build_model` puts the dense head there).
Its forward is torchvision's: features, ReLU, global average pool, flatten, classifier.
The model takes the shared (B, S, S) grey images in [0, 1] and first repeats them to
RGB and normalises them, as the pretrained features expect.

Weights in the canonical layout (shared with keras_impl.transfer): every weighted layer
in forward order, as float32 NumPy arrays:
- convolution: kernel (kh, kw, in, out) (no bias: DenseNet's convolutions have none);
  torch stores (out, in, kh, kw), hence the permutation (2, 3, 1, 0) and back;
- batch norm: gamma, beta, moving mean, moving variance;
- dense: kernel (in, out), bias (out,).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

# Width of DenseNet-121's pooled features, the classifier's input.
FEATURE_WIDTH = 1024
WEIGHTED_LAYERS = (nn.Conv2d, nn.BatchNorm2d, nn.Linear)


class NormalizedRGB(nn.Module):
    """(B, H, W) grey in [0, 1] -> (B, 3, H, W): the channel repeated (the tutorial's
    images are RGB), then torchvision's Normalize: (x - mean[c]) / std[c]."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        return (x.unsqueeze(1).expand(-1, self.mean.shape[1], -1, -1) - self.mean) / self.std


def checkpoint_file(weights) -> str:
    """Where torchvision keeps `weights`' file: the torch hub cache's checkpoints folder
    and the file name of its URL (`torch.hub.load_state_dict_from_url`'s rule)."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))


def densenet121(model_spec) -> nn.Module:
    """torchvision's DenseNet-121 as `model_spec.features` says it starts: seeded random
    initialisation (weights=None), or IMAGENET1K_V1 read from the torch hub cache. Its
    features are frozen; its classifier is still torchvision's (the caller replaces it)."""
    from torchvision import models

    if model_spec.features == "imagenet":
        weights = models.DenseNet121_Weights.IMAGENET1K_V1
        # torchvision would download a missing file; this machine must not try.
        if not os.path.isfile(checkpoint_file(weights)):
            raise FileNotFoundError(
                f"model.features = 'imagenet' needs torchvision's checkpoint at "
                f"{checkpoint_file(weights)} (never downloaded here): copy it there, or "
                "set model.features = 'random'"
            )
    elif model_spec.features == "random":
        weights = None
    else:
        raise ValueError(
            f"model.features = {model_spec.features!r}: the runner decides 'auto' before "
            "a model is built (compare.run.initial_weights.resolve_features)"
        )
    network = models.densenet121(weights=weights)
    for parameter in network.features.parameters():
        parameter.requires_grad_(False)
    for module in network.features.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eps = model_spec.batchnorm_epsilon  # Parity: Keras's differs (spec)
    return network


class TransferModel(nn.Module):
    """(B, S, S) grey images -> (B, num_classes) logits: NormalizedRGB, then the
    DenseNet (frozen features, the replaced classifier)."""

    def __init__(self, network: nn.Module, model_spec):
        super().__init__()
        self.stem = NormalizedRGB(model_spec.input_mean, model_spec.input_std)
        self.network = network

    def forward(self, x):
        return self.network(self.stem(x))

    def train(self, mode: bool = True):
        # Parity: the frozen features run in inference mode even while the classifier
        # trains (BatchNorm normalises with its running statistics and never updates
        # them), as Keras runs a BatchNormalization layer with trainable=False. The
        # tutorial's notebook calls model.train(), which would put them in training mode
        # (batch statistics, running statistics updated though no parameter trains):
        # frozen features should not change, and Keras's frozen layers cannot do that.
        super().train(mode)
        self.network.features.eval()
        return self


def _weighted_layers(model: TransferModel) -> list[nn.Module]:
    return [m for m in model.network.modules() if isinstance(m, WEIGHTED_LAYERS)]


def _layer_arrays(layer: nn.Module) -> list[torch.Tensor]:
    """A layer's tensors in canonical order, in torch's own layout."""
    if isinstance(layer, nn.BatchNorm2d):
        return [layer.weight, layer.bias, layer.running_mean, layer.running_var]
    if isinstance(layer, nn.Conv2d):
        return [layer.weight]
    return [layer.weight, layer.bias]


def _to_canonical(layer: nn.Module, index: int, array: np.ndarray) -> np.ndarray:
    if index == 0 and isinstance(layer, nn.Conv2d):
        return array.transpose(2, 3, 1, 0)  # (out, in, kh, kw) -> (kh, kw, in, out)
    if index == 0 and isinstance(layer, nn.Linear):
        return array.T  # (out, in) -> (in, out)
    return array


def _from_canonical(layer: nn.Module, index: int, array: np.ndarray) -> np.ndarray:
    if index == 0 and isinstance(layer, nn.Conv2d):
        return array.transpose(3, 2, 0, 1)  # (kh, kw, in, out) -> (out, in, kh, kw)
    if index == 0 and isinstance(layer, nn.Linear):
        return array.T
    return array


def get_weights(model: TransferModel) -> list[np.ndarray]:
    """Every weighted layer's arrays in the canonical layout, in forward order."""
    weights = []
    for layer in _weighted_layers(model):
        for index, tensor in enumerate(_layer_arrays(layer)):
            array = tensor.detach().cpu().numpy()
            weights.append(np.ascontiguousarray(_to_canonical(layer, index, array)))
    return weights


def set_weights(model: TransferModel, weights: list[np.ndarray]) -> None:
    """Load canonical-layout arrays (the inverse of get_weights, exactly)."""
    targets = [
        (layer, index, tensor)
        for layer in _weighted_layers(model)
        for index, tensor in enumerate(_layer_arrays(layer))
    ]
    if len(weights) != len(targets):
        raise ValueError(f"expected {len(targets)} arrays, got {len(weights)}")
    with torch.no_grad():
        for (layer, index, tensor), array in zip(targets, weights, strict=True):
            native = np.ascontiguousarray(_from_canonical(layer, index, array))
            if native.shape != tuple(tensor.shape):
                raise ValueError(f"canonical array {array.shape} does not fit {layer}")
            tensor.copy_(torch.from_numpy(native))
