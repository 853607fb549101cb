"""Each framework's stock optimizer update, replayed in float64 NumPy, and the probe fed to it.

The optimizer level compares torch with Keras; this checks each side against the update
its framework documents, so that a stock optimizer built wrong (a default left to the
framework, a hyperparameter dropped, the other framework's formula) is caught even where
the two frameworks differ by design (Adam's and RMSprop's epsilon). The rules follow the
installed sources line by line (torch 2.14 `torch/optim/{sgd,adam,rmsprop}.py`, Keras
3.15 `keras/src/optimizers/{sgd,adam,rmsprop}.py`), in float64 with the spec's values as
given, so the float32 stock run may differ from the replay only by its rounding.

The probe is a small vector whose elements are grouped by gradient scale, from ~1e-8
(near epsilon, where its value and placement decide the step) to ~1, each scale in a
zero-mean "noise" group and a sign-biased "drift" group (which keeps moving one way, so
momentum and a change of learning rate show). A stock trajectory passes when, at each
checkpoint and in each group, it is within rtol x the group's largest displacement from
the start, plus atol, of the replay (`compare_to_reference`).

Stage: parity.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from compare.spec.schema import TrainSpec

# Gradient scales of the probe: one per decade from 1e-8 (torch's and the study's
# epsilon) to 1.
PROBE_SCALES = tuple(10.0**exponent for exponent in range(-8, 1))
# The drift groups' mean gradient, in units of their scale (their noise has std 1).
DRIFT = 1.0
# The start is about this many plain SGD steps from zero (probe_start).
START_STEPS = 300


# ---- torch 2.14, torch/optim/*.py (_single_tensor_* functions, which the fused and
# foreach kernels compute too) --------------------------------------------------------


def torch_sgd(
    start, gradients, *, learning_rate, momentum, nesterov, dampening=0.0, weight_decay=0.0
) -> Iterator[np.ndarray]:
    """torch.optim.SGD: the momentum buffer is the gradient itself at the first step."""
    parameter, buffer = start.copy(), None
    for gradient in gradients:
        if weight_decay:
            gradient = gradient + weight_decay * parameter
        if momentum:
            if buffer is None:
                buffer = gradient.copy()
            else:
                buffer = momentum * buffer + (1 - dampening) * gradient
            gradient = gradient + momentum * buffer if nesterov else buffer
        parameter = parameter - learning_rate * gradient
        yield parameter


def torch_adam(
    start, gradients, *, learning_rate, beta_1, beta_2, epsilon, weight_decay=0.0
) -> Iterator[np.ndarray]:
    """torch.optim.Adam: epsilon added to sqrt(v_hat), i.e. after the bias correction."""
    parameter, m, v = start.copy(), np.zeros_like(start), np.zeros_like(start)
    for step, gradient in enumerate(gradients, start=1):
        if weight_decay:
            gradient = gradient + weight_decay * parameter
        m = m + (1 - beta_1) * (gradient - m)  # exp_avg.lerp_(grad, 1 - beta1)
        v = beta_2 * v + (1 - beta_2) * gradient * gradient
        step_size = learning_rate / (1 - beta_1**step)
        denominator = np.sqrt(v) / math.sqrt(1 - beta_2**step) + epsilon
        parameter = parameter - step_size * m / denominator
        yield parameter


def torch_rmsprop(
    start, gradients, *, learning_rate, rho, epsilon, momentum, weight_decay=0.0
) -> Iterator[np.ndarray]:
    """torch.optim.RMSprop (not centered): epsilon outside the square root; the momentum
    buffer accumulates g / (sqrt(v) + eps) and the step is lr times it."""
    parameter, v, buffer = start.copy(), np.zeros_like(start), np.zeros_like(start)
    for gradient in gradients:
        if weight_decay:
            gradient = gradient + weight_decay * parameter
        v = rho * v + (1 - rho) * gradient * gradient  # rho is torch's alpha
        average = np.sqrt(v) + epsilon
        if momentum > 0:
            buffer = momentum * buffer + gradient / average
            parameter = parameter - learning_rate * buffer
        else:
            parameter = parameter - learning_rate * gradient / average
        yield parameter


# ---- Keras 3.15, keras/src/optimizers/*.py (update_step) -----------------------------


def keras_sgd(start, gradients, *, learning_rate, momentum, nesterov) -> Iterator[np.ndarray]:
    """keras.optimizers.SGD: the velocity m = momentum m - lr g starts at zero."""
    parameter, m = start.copy(), np.zeros_like(start)
    for gradient in gradients:
        if momentum:
            m = momentum * m - learning_rate * gradient
            parameter = parameter + (momentum * m - learning_rate * gradient if nesterov else m)
        else:
            parameter = parameter - learning_rate * gradient
        yield parameter


def keras_adam(start, gradients, *, learning_rate, beta_1, beta_2, epsilon) -> Iterator[np.ndarray]:
    """keras.optimizers.Adam: the bias corrections folded into the step size, epsilon
    added to sqrt(v) (Kingma and Ba's "epsilon hat" form)."""
    parameter, m, v = start.copy(), np.zeros_like(start), np.zeros_like(start)
    for step, gradient in enumerate(gradients, start=1):
        alpha = learning_rate * math.sqrt(1 - beta_2**step) / (1 - beta_1**step)
        m = m + (gradient - m) * (1 - beta_1)
        v = v + (gradient * gradient - v) * (1 - beta_2)
        parameter = parameter - m * alpha / (np.sqrt(v) + epsilon)
        yield parameter


def keras_rmsprop(
    start, gradients, *, learning_rate, rho, epsilon, momentum
) -> Iterator[np.ndarray]:
    """keras.optimizers.RMSprop (not centered): epsilon inside the square root; the
    momentum accumulates the lr-scaled increments and the step is it."""
    parameter, v, m = start.copy(), np.zeros_like(start), np.zeros_like(start)
    for gradient in gradients:
        v = rho * v + (1 - rho) * gradient * gradient
        increment = learning_rate * gradient / np.sqrt(v + epsilon)
        if momentum > 0:
            m = momentum * m + increment
            parameter = parameter - m
        else:
            parameter = parameter - increment
        yield parameter


def rule(framework: str, train_spec: TrainSpec):
    """(update, its keywords): the update `framework`'s make_optimizer builds for
    `train_spec`. On Keras, adam_formula / rmsprop_formula "torch" select torch's update
    (the aligned optimizers re-implement it); torch always runs its own."""
    if framework not in ("torch", "keras"):
        raise ValueError(f"unknown framework {framework!r} (choose torch or keras)")
    t = train_spec
    on_torch = framework == "torch"
    if t.optimizer == "sgd":
        return (torch_sgd if on_torch else keras_sgd), {
            "learning_rate": t.learning_rate,
            "momentum": t.momentum,
            "nesterov": t.nesterov,
        }
    if t.optimizer == "adam":
        return (torch_adam if on_torch or t.adam_formula == "torch" else keras_adam), {
            "learning_rate": t.learning_rate,
            "beta_1": t.beta_1,
            "beta_2": t.beta_2,
            "epsilon": t.epsilon,
        }
    if t.optimizer == "rmsprop":
        return (torch_rmsprop if on_torch or t.rmsprop_formula == "torch" else keras_rmsprop), {
            "learning_rate": t.learning_rate,
            "rho": t.rho,
            "epsilon": t.epsilon,
            "momentum": t.momentum,
        }
    raise ValueError(f"unknown optimizer {t.optimizer!r}")


def reference_trajectory(
    framework: str,
    train_spec: TrainSpec,
    start: np.ndarray,
    gradients: np.ndarray,
    checkpoints: tuple[int, ...],
) -> dict[int, np.ndarray]:
    """{step: float64 parameters after it} for `checkpoints` (1-based) and the last step:
    `framework`'s update from `start` (n,), fed `gradients` (steps, n) one row a step."""
    update, keywords = rule(framework, train_spec)
    steps = len(gradients)
    wanted = {s for s in checkpoints if 1 <= s <= steps} | {steps}
    trajectory = update(
        np.asarray(start, np.float64), np.asarray(gradients, np.float64), **keywords
    )
    return {step: parameter for step, parameter in enumerate(trajectory, start=1) if step in wanted}


# ---- the probe -------------------------------------------------------------------------


def probe_groups(
    n_per_scale: int, scales: tuple[float, ...] = PROBE_SCALES
) -> dict[str, np.ndarray]:
    """{group name: element indices}: per scale, the first half of its `n_per_scale`
    elements is the "noise" group, the rest the "drift" group ("1e-08 drift")."""
    if n_per_scale < 2:
        raise ValueError(
            f"n_per_scale must be at least 2 (one noise and one drift), got {n_per_scale}"
        )
    groups = {}
    for position, scale in enumerate(scales):
        first, half = position * n_per_scale, n_per_scale // 2
        groups[f"{scale:.0e} noise"] = np.arange(first, first + half)
        groups[f"{scale:.0e} drift"] = np.arange(first + half, first + n_per_scale)
    return groups


def probe_gradients(
    steps: int, n_per_scale: int, scales: tuple[float, ...] = PROBE_SCALES, seed: int = 0
) -> np.ndarray:
    """(steps, n_per_scale x len(scales)) float32 gradients, grouped as `probe_groups`:
    scale x (bias + N(0, 1)), the bias 0 in a noise group and +-DRIFT (a fixed sign per
    element) in a drift group."""
    rng = np.random.default_rng(seed)
    scale = np.repeat(np.asarray(scales, np.float64), n_per_scale)
    bias = np.zeros_like(scale)
    for name, index in probe_groups(n_per_scale, scales).items():
        if name.endswith("drift"):
            bias[index] = DRIFT * rng.choice((-1.0, 1.0), size=len(index))
    return (scale * (bias + rng.standard_normal((steps, len(scale))))).astype(np.float32)


def probe_start(
    n_per_scale: int,
    learning_rate: float,
    scales: tuple[float, ...] = PROBE_SCALES,
    seed: int = 0,
) -> np.ndarray:
    """(n,) float32 start: each element N(0, 1) x its group's gradient scale x
    learning_rate x START_STEPS, i.e. about START_STEPS plain SGD steps from zero.

    Nonzero, so that a weight decay the spec does not ask for shows; and in proportion
    to one SGD step, so that float32 resolves every step (a weight of 1 does not move by
    lr x 1e-8 at all, and one of 3 moves by 1e-6 only to within its ulp), which the
    float64 replay would otherwise be held to.
    """
    rng = np.random.default_rng([seed, 1])
    scale = np.repeat(np.asarray(scales, np.float64), n_per_scale)
    return (scale * learning_rate * START_STEPS * rng.standard_normal(scale.shape)).astype(
        np.float32
    )


# ---- the comparison --------------------------------------------------------------------


def compare_to_reference(
    stock: dict[int, np.ndarray],
    reference: dict[int, np.ndarray],
    start: np.ndarray,
    groups: dict[str, np.ndarray],
    rtol: float,
    atol: float,
) -> dict:
    """Whether a stock trajectory follows its reference at every checkpoint of `reference`.

    Per step and group: |stock - reference| <= rtol x max |reference - start| over the
    group + atol. Returns {"passed", "worst_ratio" (largest |diff| / allowed; at most 1
    passes), "worst": where it is, "first_failure": the first failing step (None if
    none), "failing": how many (checkpoint, element) pairs fail, "relative_deviation":
    per group, the largest |diff| / displacement over the steps (the rtol each group
    would need), "max_abs_diff", "summary": one sentence}.
    """
    start = np.asarray(start, np.float64)
    worst, first_failure, relative, failing, compared = None, None, {}, 0, 0
    for step in sorted(reference):
        difference = np.abs(np.asarray(stock[step], np.float64) - reference[step])
        displacement = np.abs(reference[step] - start)
        for name, index in groups.items():
            group_displacement = float(displacement[index].max())
            allowed = rtol * group_displacement + atol
            ratios = difference[index] / allowed
            failing += int(np.sum(ratios > 1))
            compared += len(index)
            at = int(np.argmax(ratios))
            where = {
                "step": step,
                "group": name,
                "index": int(index[at]),
                "stock": float(stock[step][index[at]]),
                "reference": float(reference[step][index[at]]),
                "abs_diff": float(difference[index[at]]),
                "allowed": allowed,
                "ratio": float(ratios[at]),
            }
            if worst is None or where["ratio"] > worst["ratio"]:
                worst = where
            if first_failure is None and where["ratio"] > 1:
                first_failure = where
            if group_displacement > 0:
                deviation = float(difference[index].max()) / group_displacement
                relative[name] = max(relative.get(name, 0.0), deviation)
    passed = first_failure is None
    shown = worst if passed else first_failure
    summary = (
        f"{'passed' if passed else 'FAILED'}: worst |stock - reference| is {worst['ratio']:.3g} "
        f"x allowed (rtol {rtol:g} x displacement + atol {atol:g})"
        + ("" if passed else f"; {failing} of {compared} (step, element) pairs off, the first")
        + f" at step {shown['step']}, group {shown['group']!r}, element {shown['index']}: "
        f"stock {shown['stock']:.9g}, reference {shown['reference']:.9g}, |diff| "
        f"{shown['abs_diff']:.3g} against {shown['allowed']:.3g} allowed"
    )
    return {
        "passed": passed,
        "worst_ratio": worst["ratio"],
        "worst": worst,
        "first_failure": first_failure,
        "failing": failing,
        "relative_deviation": relative,
        "max_abs_diff": max(
            float(np.max(np.abs(np.asarray(stock[s], np.float64) - reference[s])))
            for s in reference
        ),
        "summary": summary,
    }
