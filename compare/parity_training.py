"""The parity levels that train: the optimizer fed given gradients, and lockstep training.

Both start from the same canonical weights and take the same steps on the same data;
the lockstep level also replays its run in float64 and measures how far torch drifts
from itself after a one-ulp nudge, to tell float32 rounding from real differences.
"""

from __future__ import annotations

import numpy as np

from compare import data as data_mod
from compare.parity_levels import Check, K, T, differences
from compare.spec import ExperimentSpec, ParitySpec


def _parameter_gap(torch_model, keras_model) -> float:
    """max |torch - keras| over all parameters, in the canonical layout."""
    return differences(T.get_weights(torch_model), K.get_weights(keras_model))[0]


def _checkpoints(steps: int) -> tuple[int, ...]:
    return tuple(sorted({s for s in (1, 10, steps) if s <= steps}))


def check_optimizer(experiment: ExperimentSpec, weights, parity: ParitySpec) -> Check:
    """The study's optimizer on both sides, fed the same gradients, from the same weights."""
    torch_model, keras_model = T.build_model(experiment.model), K.build_model(experiment.model)
    T.set_weights(torch_model, weights)
    K.set_weights(keras_model, weights)
    torch_trainer = T.Trainer(torch_model, experiment.train)
    keras_trainer = K.Trainer(keras_model, experiment.train)
    rng = np.random.default_rng(parity.seed)
    after = {}
    for step in range(1, parity.steps + 1):
        gradients = [
            (rng.standard_normal(w.shape) * parity.optimizer_gradient_scale).astype(np.float32)
            for w in weights
        ]
        torch_trainer.apply_gradients(gradients)
        keras_trainer.apply_gradients(gradients)
        if step in _checkpoints(parity.steps):
            after[step] = _parameter_gap(torch_model, keras_model)
    abs_diff, rel_diff = differences(T.get_weights(torch_model), K.get_weights(keras_model))
    return Check(
        "optimizer",
        max(after.values()) <= parity.optimizer_atol,
        abs_diff,
        rel_diff,
        {"atol": parity.optimizer_atol},
        {
            "optimizer": experiment.train.optimizer,
            "adam_formula": experiment.train.adam_formula,
            "steps": parity.steps,
            "gradient_scale": parity.optimizer_gradient_scale,
            "max_abs_diff_after_step": {str(k): v for k, v in after.items()},
        },
    )


def lockstep_batches(shared: data_mod.SharedData, batch_size: int, steps: int, seed: int):
    """`steps` training batches in the runner's order: epoch after epoch of the shared split."""
    epoch, produced = 0, 0
    while True:
        order = data_mod.epoch_order(seed, epoch, len(shared.y_train))
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            yield shared.x_train[index], shared.y_train[index]
            produced += 1
            if produced == steps:
                return
        epoch += 1


def replay(experiment, shared, weights, parity: ParitySpec, dtype: str) -> dict:
    """Train both sides in lockstep in `dtype`: per-step losses, parameter gaps at checkpoints."""
    # The whole replay runs in the precision: Keras also fixes its loss's dtype from it.
    with T.float_precision(dtype), K.float_precision(dtype):
        torch_model = T.build_model(experiment.model)
        keras_model = K.build_model(experiment.model)
        T.set_weights(torch_model, weights)
        K.set_weights(keras_model, weights)
        torch_trainer = T.Trainer(torch_model, experiment.train)
        keras_trainer = K.Trainer(keras_model, experiment.train)
        losses, after = [], {}
        batches = lockstep_batches(shared, experiment.train.batch_size, parity.steps, parity.seed)
        for step, (x, y) in enumerate(batches, start=1):
            x = x.astype(dtype)  # float32 -> float64 is exact
            losses.append((torch_trainer.train_step(x, y), keras_trainer.train_step(x, y)))
            if step in _checkpoints(parity.steps):
                after[step] = _parameter_gap(torch_model, keras_model)
    return {
        "loss_max_abs_diff": max(abs(a - b) for a, b in losses),
        "params_max_abs_diff_after_step": {str(k): v for k, v in after.items()},
        "losses": losses,
        "weights": (T.get_weights(torch_model), K.get_weights(keras_model)),
    }


def rounding_floor(experiment, shared, weights, parity: ParitySpec) -> dict[str, float]:
    """How far torch drifts from itself, same batches, when each initial weight moves one ulp
    up or down at random.

    Where training amplifies rounding, no two implementations can stay closer than this;
    it tells a stable run (parameters comparable at atol) from an unstable one.
    """
    rng = np.random.default_rng(parity.seed)
    # The direction in the weights' own dtype: a float64 target would nudge in float64.
    nudged = [
        np.nextafter(w, np.where(rng.random(w.shape) < 0.5, -np.inf, np.inf).astype(w.dtype))
        for w in weights
    ]
    models = [T.build_model(experiment.model) for _ in range(2)]
    for model, start in zip(models, (weights, nudged), strict=True):
        T.set_weights(model, start)
    trainers = [T.Trainer(model, experiment.train) for model in models]
    batches = lockstep_batches(shared, experiment.train.batch_size, parity.steps, parity.seed)
    floor = {}
    for step, (x, y) in enumerate(batches, start=1):
        for trainer in trainers:
            trainer.train_step(x, y)
        if step in _checkpoints(parity.steps):
            floor[str(step)] = differences(*(T.get_weights(m) for m in models))[0]
    return floor


def check_lockstep(experiment, shared, weights, parity: ParitySpec) -> Check:
    """Same weights, same batches in the same order: losses and parameters after N steps.

    In float32, as the study trains. A stable run must keep parameters and losses within
    atol. When the run is unstable (torch alone drifts past atol from a one-ulp nudge of
    its start, `rounding_floor`), parameters cannot be compared that closely: as the
    notes advise, the loss curves must agree within loss_rtol, and the parameters may be
    no further apart than a few times that drift. The same replay in float64 is reported
    beside it: what remains there is not float32 rounding.
    """
    float32 = replay(experiment, shared, weights, parity, "float32")
    float64 = replay(experiment, shared, weights, parity, "float64")
    floor = rounding_floor(experiment, shared, weights, parity)
    atol = (
        parity.lockstep_adam_atol if experiment.train.optimizer == "adam" else parity.lockstep_atol
    )
    gaps = float32["params_max_abs_diff_after_step"]
    losses = float32["losses"]
    loss_rel = max(abs(a - b) / max(abs(a), 1e-12) for a, b in losses)
    within_atol = float32["loss_max_abs_diff"] <= atol and max(gaps.values()) <= atol
    tolerance = {"atol": atol}
    passed = within_atol
    if max(floor.values()) > atol:  # unstable: rounding alone moves torch past atol
        factor = parity.lockstep_floor_factor
        tolerance["unstable_run_fallback"] = (
            f"loss rtol {parity.lockstep_loss_rtol}, params <= {factor}x torch's one-ulp drift"
        )
        passed = within_atol or (
            loss_rel <= parity.lockstep_loss_rtol
            and all(gaps[step] <= factor * floor[step] for step in gaps)
        )
    abs_diff, rel_diff = differences(*float32["weights"])
    return Check(
        "lockstep",
        passed,
        max(abs_diff, float32["loss_max_abs_diff"]),
        rel_diff,
        tolerance,
        {
            "optimizer": experiment.train.optimizer,
            "adam_formula": experiment.train.adam_formula,
            "steps": len(losses),
            "batch_size": experiment.train.batch_size,
            "loss_max_abs_diff": float32["loss_max_abs_diff"],
            "loss_max_rel_diff": loss_rel,
            "loss_first": {"torch": losses[0][0], "keras": losses[0][1]},
            "loss_last": {"torch": losses[-1][0], "keras": losses[-1][1]},
            "params_max_abs_diff_after_step": gaps,
            "torch_one_ulp_drift_after_step": floor,
            "float64": {
                key: float64[key] for key in ("loss_max_abs_diff", "params_max_abs_diff_after_step")
            },
        },
    )
