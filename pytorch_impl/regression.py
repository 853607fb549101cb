"""PyTorch regression nets of "Learning PyTorch with Examples" (mirrors keras_impl.regression).

`two_layer_net`: y = relu(x W1) W2. `dynamic_net`: an input layer, a middle layer
applied `depth` times with the same weights, an output layer. The depth of each
forward pass is an argument: `compare.run.regression` draws it from a seeded sequence both
frameworks follow, so they can be compared step by step.

Contract (`compare.run.contract.RegressionNets`, called by the worker's loop): build_model,
count_parameters, get_weights, set_weights, Trainer (one full-batch step per call),
predict. Canonical weights: kernel (in, out) and, with use_bias, bias per layer, in the
order input, middle (dynamic_net only), output.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pytorch_impl import runtime
from pytorch_impl.model import ACTIVATIONS, dense
from pytorch_impl.optimizers import make_optimizer


class RegressionNet(nn.Module):
    """(N, input_size) -> (N, output_size)."""

    def __init__(self, model_spec, input_size: int, output_size: int):
        super().__init__()
        (hidden,) = model_spec.hidden_sizes
        self.input_linear = dense(input_size, hidden, model_spec)
        self.middle_linear = (
            dense(hidden, hidden, model_spec) if model_spec.architecture == "dynamic_net" else None
        )
        self.output_linear = dense(hidden, output_size, model_spec)
        self.activation = ACTIVATIONS[model_spec.activation]()

    def forward(self, x: torch.Tensor, depth: int = 0) -> torch.Tensor:
        h = self.activation(self.input_linear(x))
        for _ in range(depth):  # weight sharing: the same layer each time
            h = self.activation(self.middle_linear(h))
        return self.output_linear(h)


def build_model(model_spec, input_size: int, output_size: int) -> RegressionNet:
    return RegressionNet(model_spec, input_size, output_size)


def _layers(model: RegressionNet) -> list[nn.Linear]:
    candidates = (model.input_linear, model.middle_linear, model.output_linear)
    return [layer for layer in candidates if layer is not None]


def count_parameters(model: RegressionNet) -> int:
    return sum(p.numel() for p in model.parameters())


def get_weights(model: RegressionNet) -> list[np.ndarray]:
    weights = []
    for layer in _layers(model):
        weights.append(layer.weight.detach().cpu().numpy().T.copy())
        if layer.bias is not None:
            weights.append(layer.bias.detach().cpu().numpy().copy())
    return weights


def set_weights(model: RegressionNet, weights: list[np.ndarray]) -> None:
    """Load canonical-layout weights (the inverse of get_weights, exactly)."""
    targets = []
    for layer in _layers(model):
        targets.append((layer.weight, True))
        if layer.bias is not None:
            targets.append((layer.bias, False))
    if len(weights) != len(targets):
        raise ValueError(f"expected {len(targets)} arrays, got {len(weights)}")
    with torch.no_grad():
        for (parameter, transpose), value in zip(targets, weights, strict=True):
            value = value.T if transpose else value
            parameter.copy_(torch.from_numpy(np.ascontiguousarray(value)))


def sum_squared_error(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The tutorial's loss: (y_pred - y).pow(2).sum(), i.e. MSELoss(reduction="sum")."""
    return (prediction - target).pow(2).sum()


class Trainer:
    """Owns the optimizer state, on the run's device; each `step` is one full-batch update."""

    def __init__(self, model: RegressionNet, train_spec, device: str = "cpu"):
        self.device = runtime.torch_device(device)
        self.model = model.to(self.device)
        self.optimizer = make_optimizer(model.parameters(), train_spec)

    def step(self, x: np.ndarray, y: np.ndarray, depth: int = 0) -> float:
        """One update on (x, y); returns the loss before it, as the tutorial prints."""
        # The tutorial's data is small (N 64): it goes to the device with every step.
        x, y = torch.from_numpy(x).to(self.device), torch.from_numpy(y).to(self.device)
        loss = sum_squared_error(self.model(x, depth), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


def predict(model: RegressionNet, x: np.ndarray, depth: int = 0) -> np.ndarray:
    device = next(model.parameters()).device
    with torch.inference_mode():
        return model(torch.from_numpy(x).to(device), depth).cpu().numpy()
