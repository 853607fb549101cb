"""PyTorch optimizers as the spec names them (mirrors keras_impl.optimizers).

`make_optimizer` builds each framework's stock optimizer, every hyperparameter from the
spec and every default that differs set explicitly (`# Parity:`). No aligned variant
lives here: where the stock formulas differ (Adam, RMSprop), the Keras side
re-implements torch's update (keras_impl.optimizers.AdamTorchFormula,
RMSpropTorchFormula). `optimizer_trajectory` runs the optimizer `make_optimizer` builds
on one small vector fed given gradients, for the parity check against the documented
update (compare.parity.formulas).
"""

from __future__ import annotations

import numpy as np
import torch

from compare.spec.identity import DEFAULT_MODE
from pytorch_impl import execution, runtime


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
        # formulas still differ: torch adds eps outside the square root, Keras inside
        # (so they part where gradients are tiny, parity-notes.md), and torch's momentum
        # buffer holds g / (sqrt(v) + eps) and is scaled by lr at the step, Keras's holds
        # lr-scaled increments. With rmsprop_formula "torch" the Keras side re-implements
        # this update; torch's stock RMSprop is used for both "native" and "torch".
        return torch.optim.RMSprop(
            parameters,
            lr=train_spec.learning_rate,
            alpha=train_spec.rho,
            eps=train_spec.epsilon,
            momentum=train_spec.momentum,
        )
    raise ValueError(f"unknown optimizer {train_spec.optimizer!r}")


def make_optimizer_for(model, train_spec):
    return make_optimizer([p for p in model.parameters() if p.requires_grad], train_spec)


def optimizer_trajectory(
    train_spec, mode: str, start: np.ndarray, gradients: np.ndarray, checkpoints: tuple[int, ...]
) -> dict[int, np.ndarray]:
    """{step: float32 parameters after it} for `checkpoints` (1-based) and the last step:
    the optimizer `make_optimizer` builds for `mode`, on one parameter holding `start`
    (n,), fed `gradients` (steps, n) one row a step. On the CPU; eager, as training
    steps its optimizer."""
    parameter = torch.nn.Parameter(torch.tensor(start, dtype=torch.float32))
    optimizer = make_optimizer([parameter], train_spec, mode)
    wanted = {s for s in checkpoints if 1 <= s <= len(gradients)} | {len(gradients)}
    snapshots = {}
    # One thread: an update of a few dozen elements gains nothing from more, and the fused
    # CPU kernel's thread hand-off made a step 0.15-3 ms against 0.05 ms on one (2 cores,
    # measured here). Elementwise updates round the same on any thread count.
    with runtime.intra_op_threads(1):
        rows = torch.from_numpy(np.asarray(gradients, np.float32))
        for step, gradient in enumerate(rows, start=1):
            # A copy: the rows are views of the caller's array.
            parameter.grad = gradient.clone()
            optimizer.step()
            if step in wanted:
                snapshots[step] = parameter.detach().numpy().copy()
    return snapshots
