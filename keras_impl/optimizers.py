"""Keras optimizers as the spec names them (mirrors pytorch_impl.optimizers).

`make_optimizer` builds each framework's stock optimizer, every hyperparameter from the
spec and every default that differs set explicitly (`# Parity:`). `AdamTorchFormula` and
`RMSpropTorchFormula` are the aligned variants: Keras re-implementing torch's Adam and
RMSprop updates, so that the parity suite's lockstep level can hold step for step
(`train.adam_formula = "torch"`, `train.rmsprop_formula = "torch"`); the study's own
models use the stock optimizers. `optimizer_trajectory` runs the optimizer
`make_optimizer` builds on one small vector fed given gradients, for the parity check
against the documented update (compare.parity.formulas).
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from keras_impl import backends, execution


def _float64_available() -> bool:
    """Whether keras.ops computes in float64 when asked to.

    Parity: only on TensorFlow. Keras's type promotion narrows 64-bit results to 32 bits
    on the other backends ("aligned with JAX's default": keras.src.backend.common.dtypes,
    BIT64_TO_BIT32_DTYPE), and JAX without x64 has no float64 at all.
    """
    return backends.current().float64_available()


class AdamTorchFormula(keras.optimizers.Adam):
    """Adam with torch.optim.Adam's update, step for step (`adam_formula = "torch"`).

    Parity: stock Keras Adam folds the bias correction into the step size, adds epsilon
    to sqrt(v) rather than to sqrt(v_hat), and computes 1 - beta**t in float32; torch
    adds epsilon to sqrt(v_hat) and computes the corrections in float64 (Python floats).
    No epsilon makes the two agree, so for lockstep parity one side must re-implement
    the other. It is this side: a Keras optimizer overrides one method, `update_step`,
    and keeps Keras's slot variables, while a torch optimizer would need its own state
    handling; and torch's form is the textbook one (Kingma and Ba, Algorithm 1).
    """

    def _bias_corrections(self, learning_rate, dtype):
        """torch's lr / (1 - beta_1**t) and sqrt(1 - beta_2**t), as `dtype` scalars."""
        if _float64_available():
            # torch: computed in float64 (Python floats), then used as float32 scalars.
            # convert_to_tensor with the dtype: ops.cast would round 0.999 to float32 first.
            step = ops.cast(self.iterations + 1, "float64")
            beta_1 = ops.convert_to_tensor(self.beta_1, dtype="float64")
            beta_2 = ops.convert_to_tensor(self.beta_2, dtype="float64")
            bias_correction1 = 1 - ops.power(beta_1, step)
            bias_correction2 = 1 - ops.power(beta_2, step)
            step_size = ops.cast(ops.cast(learning_rate, "float64") / bias_correction1, dtype)
            return step_size, ops.cast(ops.sqrt(bias_correction2), dtype)
        # Parity: no float64 here (see _float64_available). 1 - beta**t = -expm1(t * log(beta)) with
        # log(beta) taken in float64 on the host keeps the relative error near float32's
        # (1 - float32(0.999)**t would be off by 1.3e-5 relative at t = 1), not exact.
        step = ops.cast(self.iterations + 1, dtype)
        bias_correction1 = -ops.expm1(ops.multiply(step, math.log(self.beta_1)))
        bias_correction2 = -ops.expm1(ops.multiply(step, math.log(self.beta_2)))
        step_size = ops.divide(ops.cast(learning_rate, dtype), bias_correction1)
        return step_size, ops.sqrt(bias_correction2)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        gradient = ops.cast(gradient, dtype)
        step_size, bias_correction2_sqrt = self._bias_corrections(learning_rate, dtype)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        # torch: exp_avg.lerp_(grad, 1 - beta1) = m + (1 - beta1) * (g - m)
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        # torch: exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        self.assign(
            v,
            ops.add(
                ops.multiply(v, self.beta_2),
                ops.multiply(ops.multiply(gradient, 1 - self.beta_2), gradient),
            ),
        )
        # torch: denom = sqrt(v) / sqrt(bc2) + eps; param.addcdiv_(m, denom, -step_size)
        denominator = ops.add(ops.divide(ops.sqrt(v), bias_correction2_sqrt), self.epsilon)
        self.assign_sub(variable, ops.divide(ops.multiply(m, step_size), denominator))


class RMSpropTorchFormula(keras.optimizers.RMSprop):
    """RMSprop with torch.optim.RMSprop's update, step for step (`rmsprop_formula = "torch"`).

    Parity: stock Keras RMSprop divides by sqrt(v + eps), torch by sqrt(v) + eps, so
    where |g| is near sqrt(eps) or below (1e-4 for eps 1e-8) Keras's step is far smaller.
    With momentum, Keras's buffer accumulates lr x g / sqrt(v + eps) and is the step;
    torch's accumulates g / (sqrt(v) + eps) and the step is lr times it (the same while
    lr is constant). No epsilon makes the two agree, so for lockstep parity one side must
    re-implement the other: this side, for the reasons AdamTorchFormula gives (one
    method to override, Keras's slot variables kept). Not centered: the spec has no
    centered RMSprop.
    """

    def __init__(self, *args, centered: bool = False, **kwargs):
        if centered:
            raise ValueError("RMSpropTorchFormula re-implements torch's uncentered update only")
        super().__init__(*args, centered=False, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        learning_rate = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        v = self._velocities[self._get_variable_index(variable)]
        # torch: square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
        self.assign(
            v,
            ops.add(
                ops.multiply(v, self.rho),
                ops.multiply(ops.multiply(gradient, 1 - self.rho), gradient),
            ),
        )
        # torch: avg = square_avg.sqrt().add_(eps)
        denominator = ops.add(ops.sqrt(v), self.epsilon)
        if self.momentum > 0:
            buffer = self._momentums[self._get_variable_index(variable)]
            # torch: buf.mul_(momentum).addcdiv_(grad, avg); param.add_(buf, alpha=-lr)
            self.assign(
                buffer,
                ops.add(ops.multiply(buffer, self.momentum), ops.divide(gradient, denominator)),
            )
            self.assign_sub(variable, ops.multiply(buffer, learning_rate))
        else:
            # torch: param.addcdiv_(grad, avg, value=-lr)
            self.assign_sub(
                variable, ops.multiply(ops.divide(gradient, denominator), learning_rate)
            )


def make_optimizer(train_spec) -> keras.optimizers.Optimizer:
    if train_spec.optimizer == "sgd":
        return keras.optimizers.SGD(
            learning_rate=train_spec.learning_rate,
            momentum=train_spec.momentum,
            nesterov=train_spec.nesterov,
        )
    if train_spec.optimizer == "adam":
        # Parity: "torch" swaps in torch's update (see AdamTorchFormula); "native" is stock.
        adam = AdamTorchFormula if train_spec.adam_formula == "torch" else keras.optimizers.Adam
        return adam(
            learning_rate=train_spec.learning_rate,
            beta_1=train_spec.beta_1,
            beta_2=train_spec.beta_2,
            epsilon=train_spec.epsilon,  # Parity: explicit, PyTorch's default differs
        )
    if train_spec.optimizer == "rmsprop":
        # Parity: rho/epsilon explicit; Keras adds epsilon inside the square root,
        # PyTorch outside (parity-notes.md). "torch" swaps in torch's update (see
        # RMSpropTorchFormula); "native" is stock.
        rmsprop = (
            RMSpropTorchFormula
            if train_spec.rmsprop_formula == "torch"
            else keras.optimizers.RMSprop
        )
        return rmsprop(
            learning_rate=train_spec.learning_rate,
            rho=train_spec.rho,
            epsilon=train_spec.epsilon,
            momentum=train_spec.momentum,
        )
    raise ValueError(f"unknown optimizer {train_spec.optimizer!r}")


def make_optimizer_for(model, train_spec) -> keras.optimizers.Optimizer:
    # Parity: a Keras optimizer finds its variables on the first apply; torch's takes them.
    return make_optimizer(train_spec)


def optimizer_trajectory(
    train_spec, mode: str, start: np.ndarray, gradients: np.ndarray, checkpoints: tuple[int, ...]
) -> dict[int, np.ndarray]:
    """{step: float32 parameters after it} for `checkpoints` (1-based) and the last step:
    the optimizer `make_optimizer` builds, on one variable holding `start` (n,), fed
    `gradients` (steps, n) one row a step. All the steps run in one compiled loop where
    the backend compiles (keras_impl.backends), XLA or not as `mode`'s train step; the
    optimizer's own `iterations` advances once a step, as in training."""
    # Parity: `mode` only chooses XLA or not (on TensorFlow); torch's mode chooses its
    # optimizer kernels (fused or foreach), which Keras does not have.
    jit_compile = execution.options(mode, keras.backend.backend()).get("jit_compile", False)
    optimizer = make_optimizer(train_spec)
    variable = keras.Variable(np.asarray(start, np.float32), dtype="float32", name="probe")
    optimizer.build([variable])
    trajectory = backends.current().run_optimizer(
        optimizer, variable, np.asarray(gradients, np.float32), bool(jit_compile)
    )
    wanted = {s for s in checkpoints if 1 <= s <= len(gradients)} | {len(gradients)}
    return {step: trajectory[step - 1] for step in sorted(wanted)}
