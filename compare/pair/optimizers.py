"""Optimizers for the CLI's `--optimizer`: SGD as both frameworks ship it (the same
update), and Adam with Keras taking torch's update (`KerasAdamLikeTorch`): stock Keras
Adam adds epsilon to sqrt(v) after folding the bias correction into the step size and
computes 1 - beta**t in float32, so no setting makes the stock two agree.

(The study keeps its own aligned optimizers in keras_impl.optimizers; the engine may
not import the study, so this is the engine's copy of torch's rule.)

Stage: pair.
"""

from __future__ import annotations

import math

from compare.pair.recipe import Optimizers

NAMES = ("sgd", "adam")


def keras_adam_like_torch(learning_rate: float):
    import keras
    from keras import ops

    class KerasAdamLikeTorch(keras.optimizers.Adam):
        """keras.optimizers.Adam with torch.optim.Adam's update, step for step."""

        def update_step(self, gradient, variable, learning_rate):
            dtype = variable.dtype
            gradient = ops.cast(gradient, dtype)
            if keras.backend.backend() == "tensorflow":  # torch: corrections in float64
                step = ops.cast(self.iterations + 1, "float64")
                beta_1 = ops.convert_to_tensor(self.beta_1, dtype="float64")
                beta_2 = ops.convert_to_tensor(self.beta_2, dtype="float64")
                correction1, correction2 = 1 - ops.power(beta_1, step), 1 - ops.power(beta_2, step)
                step_size = ops.cast(ops.cast(learning_rate, "float64") / correction1, dtype)
                root2 = ops.cast(ops.sqrt(correction2), dtype)
            else:  # no float64 there: 1 - beta**t as -expm1(t log beta)
                step = ops.cast(self.iterations + 1, dtype)
                correction1 = -ops.expm1(ops.multiply(step, math.log(self.beta_1)))
                correction2 = -ops.expm1(ops.multiply(step, math.log(self.beta_2)))
                step_size = ops.divide(ops.cast(learning_rate, dtype), correction1)
                root2 = ops.sqrt(correction2)
            m = self._momentums[self._get_variable_index(variable)]
            v = self._velocities[self._get_variable_index(variable)]
            self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
            self.assign(
                v,
                ops.add(
                    ops.multiply(v, self.beta_2),
                    ops.multiply(ops.multiply(gradient, 1 - self.beta_2), gradient),
                ),
            )
            denominator = ops.add(ops.divide(ops.sqrt(v), root2), self.epsilon)
            self.assign_sub(variable, ops.divide(ops.multiply(m, step_size), denominator))

    # Parity: torch's eps is 1e-8 (Keras's 1e-7).
    return KerasAdamLikeTorch(learning_rate=learning_rate, epsilon=1e-8)


def named(name: str, learning_rate: float) -> Optimizers:
    """Both sides' optimizer `name` at `learning_rate`."""
    import keras
    import torch

    if name == "sgd":
        return Optimizers(
            lambda model: torch.optim.SGD(model.parameters(), lr=learning_rate),
            lambda: keras.optimizers.SGD(learning_rate),
        )
    if name == "adam":
        return Optimizers(
            lambda model: torch.optim.Adam(model.parameters(), lr=learning_rate),
            lambda: keras_adam_like_torch(learning_rate),
        )
    raise ValueError(f"unknown optimizer {name!r}: choose from {', '.join(NAMES)}")
