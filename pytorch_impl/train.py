"""PyTorch training and prediction on the shared arrays (mirrors keras_impl.train).

The runner hands each epoch's examples already in the shared shuffled order, so both
frameworks see the same batches; the loss reported per epoch is the mean over
examples, which is what Keras's `fit` logs.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional


def make_optimizer(parameters, train_spec) -> torch.optim.Optimizer:
    if train_spec.optimizer == "sgd":
        return torch.optim.SGD(
            parameters,
            lr=train_spec.learning_rate,
            momentum=train_spec.momentum,
            nesterov=train_spec.nesterov,
        )
    if train_spec.optimizer == "adam":
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


class Trainer:
    """Owns the optimizer state for one model."""

    def __init__(self, model: torch.nn.Module, train_spec):
        self.model = model
        self.batch_size = train_spec.batch_size
        self.optimizer = make_optimizer(model.parameters(), train_spec)

    def train_epoch(self, x: np.ndarray, y: np.ndarray) -> float:
        """One pass over (x, y) in the given order; returns the mean training loss."""
        self.model.train()
        inputs, labels = torch.from_numpy(x), torch.from_numpy(y)
        total = torch.zeros((), dtype=torch.float64)
        for start in range(0, len(inputs), self.batch_size):
            batch_x = inputs[start : start + self.batch_size]
            batch_y = labels[start : start + self.batch_size]
            loss = loss_fn(self.model(batch_x), batch_y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            # Accumulate on the tensor: no per-step host sync.
            total += loss.detach() * len(batch_x)
        return float(total) / len(inputs)


def predict(model: torch.nn.Module, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Logits for x in inference mode (dropout off)."""
    model.eval()
    inputs = torch.from_numpy(x)
    with torch.inference_mode():
        outputs = [model(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)]
    return torch.cat(outputs).numpy()
