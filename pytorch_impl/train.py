"""PyTorch training and prediction on the shared arrays (mirrors keras_impl.train).

The runner hands each epoch's examples already in the shared shuffled order, so both
frameworks see the same batches; the loss reported per epoch is the mean over
examples, which is what Keras's `fit` logs. The parity suite also takes single steps,
computes gradients and applies given gradients, always in the canonical layout.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional

from pytorch_impl.model import get_weights, set_weights


def make_optimizer(parameters, train_spec) -> torch.optim.Optimizer:
    if train_spec.optimizer == "sgd":
        return torch.optim.SGD(
            parameters,
            lr=train_spec.learning_rate,
            momentum=train_spec.momentum,
            nesterov=train_spec.nesterov,
        )
    if train_spec.optimizer == "adam":
        # Parity: with adam_formula "torch" the Keras side re-implements this update;
        # torch's stock Adam is used for both "native" and "torch".
        return torch.optim.Adam(
            parameters,
            lr=train_spec.learning_rate,
            betas=(train_spec.beta_1, train_spec.beta_2),
            eps=train_spec.epsilon,  # Parity: explicit, Keras's default differs
        )
    raise ValueError(f"unknown optimizer {train_spec.optimizer!r}")


def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on logits, mean over the batch."""
    return functional.cross_entropy(logits, labels)


def training_batches(x: np.ndarray, y: np.ndarray, batch_size: int):
    """The (inputs, labels) tensors `train_epoch` feeds the model, in order."""
    inputs, labels = torch.from_numpy(x), torch.from_numpy(y)
    for start in range(0, len(inputs), batch_size):
        yield inputs[start : start + batch_size], labels[start : start + batch_size]


def _as_canonical(model: torch.nn.Module, tensors) -> list[np.ndarray]:
    """Per-parameter tensors (gradients) in the canonical layout.

    Gradients have their parameters' shapes, so the model's own weight mapping lays them
    out: one definition of the canonical layout serves weights and gradients alike.
    """
    saved = get_weights(model)
    with torch.no_grad():
        for parameter, tensor in zip(model.parameters(), tensors, strict=True):
            parameter.copy_(tensor)
    canonical = get_weights(model)
    set_weights(model, saved)
    return canonical


def _as_native(model: torch.nn.Module, arrays: list[np.ndarray]) -> list[torch.Tensor]:
    """Canonical-layout arrays as tensors shaped like the model's parameters."""
    saved = get_weights(model)
    set_weights(model, arrays)
    tensors = [parameter.detach().clone() for parameter in model.parameters()]
    set_weights(model, saved)
    return tensors


def loss_and_gradients(
    model: torch.nn.Module, x: np.ndarray, y: np.ndarray
) -> tuple[float, list[np.ndarray]]:
    """The training-mode loss on one batch and its gradients, in the canonical layout."""
    model.train()
    model.zero_grad(set_to_none=True)
    loss = loss_fn(model(torch.from_numpy(x)), torch.from_numpy(y))
    loss.backward()
    gradients = [torch.zeros_like(p) if p.grad is None else p.grad for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    return float(loss.detach()), _as_canonical(model, gradients)


class Trainer:
    """Owns the optimizer state for one model."""

    def __init__(self, model: torch.nn.Module, train_spec):
        self.model = model
        self.batch_size = train_spec.batch_size
        self.optimizer = make_optimizer(model.parameters(), train_spec)

    def _step(self, batch_x: torch.Tensor, batch_y: torch.Tensor) -> torch.Tensor:
        loss = loss_fn(self.model(batch_x), batch_y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def train_epoch(self, x: np.ndarray, y: np.ndarray) -> float:
        """One pass over (x, y) in the given order; returns the mean training loss."""
        self.model.train()
        total = torch.zeros((), dtype=torch.float64)
        for batch_x, batch_y in training_batches(x, y, self.batch_size):
            # Accumulate on the tensor: no per-step host sync.
            total += self._step(batch_x, batch_y) * len(batch_x)
        return float(total) / len(x)

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One optimizer step on one batch, as `train_epoch` takes it; returns its loss."""
        self.model.train()
        return float(self._step(torch.from_numpy(x), torch.from_numpy(y)))

    def apply_gradients(self, gradients: list[np.ndarray]) -> None:
        """One optimizer step with the given canonical-layout gradients."""
        tensors = _as_native(self.model, gradients)
        for parameter, gradient in zip(self.model.parameters(), tensors, strict=True):
            parameter.grad = gradient
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def predict(model: torch.nn.Module, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Logits for x in inference mode (dropout off)."""
    model.eval()
    inputs = torch.from_numpy(x)
    with torch.inference_mode():
        outputs = [model(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)]
    return torch.cat(outputs).numpy()
