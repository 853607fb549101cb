"""PyTorch optimizers as the spec names them (mirrors keras_impl.optimizers).

`make_optimizer` builds each framework's stock optimizer, every hyperparameter from the
spec and every default that differs set explicitly (`# Parity:`). No aligned variant
lives here: where the stock formulas differ (Adam), the Keras side re-implements
torch's update (keras_impl.optimizers.AdamTorchFormula).
"""

from __future__ import annotations

import torch

from compare.spec.identity import DEFAULT_MODE
from pytorch_impl import execution


def make_optimizer(parameters, train_spec, mode: str = DEFAULT_MODE):
    # Tuned and compiled: one fused kernel per step for all parameters (same update,
    # fewer launches); None lets torch pick its default (foreach) implementation.
    fused = True if execution.options(mode)["fused_optimizer"] else None
    if train_spec.optimizer == "sgd":
        return torch.optim.SGD(
            parameters,
            lr=train_spec.learning_rate,
            momentum=train_spec.momentum,
            nesterov=train_spec.nesterov,
            fused=fused,
        )
    if train_spec.optimizer == "adam":
        # Parity: with adam_formula "torch" the Keras side re-implements this update;
        # torch's stock Adam is used for both "native" and "torch".
        return torch.optim.Adam(
            parameters,
            lr=train_spec.learning_rate,
            betas=(train_spec.beta_1, train_spec.beta_2),
            eps=train_spec.epsilon,  # Parity: explicit, Keras's default differs
            fused=fused,
        )
    if train_spec.optimizer == "rmsprop":
        # Parity: rho/eps explicit (torch's alpha defaults to 0.99, eps to 1e-8). The
        # formulas still differ: torch adds eps outside the square root, Keras inside,
        # so the two drift apart where gradients are tiny (parity-notes.md).
        return torch.optim.RMSprop(
            parameters,
            lr=train_spec.learning_rate,
            alpha=train_spec.rho,
            eps=train_spec.epsilon,
            momentum=train_spec.momentum,
        )
    raise ValueError(f"unknown optimizer {train_spec.optimizer!r}")
