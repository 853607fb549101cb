"""The parity levels that train: the optimizer fed given gradients, and lockstep training.

Both start from the same canonical weights and take the same steps on the same data;
the lockstep level also replays its run in float64, and measures how far torch drifts
from itself when only rounding changes (a one-ulp nudge of its start, another thread
count), to tell float32 rounding from real differences.

Stage: parity.
"""

from __future__ import annotations

import numpy as np

from compare.data import split
from compare.parity.levels import Check, K, T, differences
from compare.spec.schema import ExperimentSpec, ParitySpec


def _parameter_gap(torch_model, keras_model) -> float:
    """max |torch - keras| over all parameters, in the canonical layout."""
    return differences(T.get_weights(torch_model), K.get_weights(keras_model))[0]


def _checkpoints(parity: ParitySpec) -> tuple[int, ...]:
    return tuple(sorted({s for s in (*parity.checkpoints, parity.steps) if s <= parity.steps}))


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
        if step in _checkpoints(parity):
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


def lockstep_batches(shared: split.SharedData, batch_size: int, steps: int, seed: int):
    """`steps` training batches in the runner's order: epoch after epoch of the shared split."""
    epoch, produced = 0, 0
    while True:
        order = split.epoch_order(seed, epoch, len(shared.y_train))
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
            if step in _checkpoints(parity):
                after[step] = _parameter_gap(torch_model, keras_model)
    return {
        "loss_max_abs_diff": max(abs(a - b) for a, b in losses),
        "params_max_abs_diff_after_step": {str(k): v for k, v in after.items()},
        "losses": losses,
        "weights": (T.get_weights(torch_model), K.get_weights(keras_model)),
    }


def _torch_run(experiment, shared, weights, parity: ParitySpec, threads: int | None = None):
    """Torch alone through the lockstep batches: per-step losses, weights at checkpoints."""
    with T.intra_op_threads(threads):
        model = T.build_model(experiment.model)
        T.set_weights(model, weights)
        trainer = T.Trainer(model, experiment.train)
        batches = lockstep_batches(shared, experiment.train.batch_size, parity.steps, parity.seed)
        losses, snapshots = [], {}
        for step, (x, y) in enumerate(batches, start=1):
            losses.append(trainer.train_step(x, y))
            if step in _checkpoints(parity):
                snapshots[str(step)] = T.get_weights(model)
    return losses, snapshots


def rounding_floor(experiment, shared, weights, parity: ParitySpec) -> dict:
    """How far torch drifts from itself when only rounding changes: parameters at the
    checkpoints and the loss at every step, the larger of two perturbations.

    - `one_ulp_start`: each initial weight moved one ulp up or down at random;
    - `other_thread_count`: the same run on another intra-op thread count (1 <-> 2), which
      changes the matrix products' summation order at every step, as another framework's
      kernels do. The math is the same; only the rounding differs.
    Where training amplifies rounding, no two implementations can stay closer than this.
    """
    rng = np.random.default_rng(parity.seed)
    # The direction in the weights' own dtype: a float64 target would nudge in float64.
    nudged = [
        np.nextafter(w, np.where(rng.random(w.shape) < 0.5, -np.inf, np.inf).astype(w.dtype))
        for w in weights
    ]
    base_losses, base = _torch_run(experiment, shared, weights, parity)
    with T.intra_op_threads(None) as current:
        other_threads = 2 if current == 1 else 1
    runs = {
        "one_ulp_start": _torch_run(experiment, shared, nudged, parity),
        "other_thread_count": _torch_run(experiment, shared, weights, parity, other_threads),
    }
    drift = {
        name: {
            "params": {s: differences(base[s], snapshots[s])[0] for s in base},
            "losses": [abs(a - b) for a, b in zip(base_losses, losses, strict=True)],
        }
        for name, (losses, snapshots) in runs.items()
    }
    return {
        "params": {s: max(d["params"][s] for d in drift.values()) for s in base},
        "losses": [max(pair) for pair in zip(*(d["losses"] for d in drift.values()), strict=True)],
        "by_perturbation": {name: d["params"] for name, d in drift.items()},
        "other_thread_count": other_threads,
    }


def _bound(drift: float, atol: float, factor: float) -> float:
    """The allowed gap where torch's own rounding drift is `drift`: atol, or factor x
    drift where rounding alone already moves torch that far (continuous: a run whose
    drift sits just under atol is not held to atol while its twin is held to 10x)."""
    return max(atol, factor * drift)


def check_lockstep(experiment, shared, weights, parity: ParitySpec) -> Check:
    """Same weights, same batches in the same order: losses and parameters after N steps.

    In float32, as the study trains. Each gap (the loss at every step, against the
    largest drift so far; the parameters at each checkpoint) must be within
    max(atol, `lockstep_floor_factor` x torch's own drift when only rounding changes,
    `rounding_floor`). Where that drift is tiny this is atol; where training amplifies
    rounding (past `horizon_step`, the first checkpoint where the drift passes atol) no
    implementation can be held to atol, and the bound follows the drift. A stable run
    whose drift stays below atol / factor is held to atol throughout. The same replay in
    float64 is reported beside it: what remains there is not float32 rounding.
    """
    float32 = replay(experiment, shared, weights, parity, "float32")
    float64 = replay(experiment, shared, weights, parity, "float64")
    floor = rounding_floor(experiment, shared, weights, parity)
    atol = (
        parity.lockstep_adam_atol if experiment.train.optimizer == "adam" else parity.lockstep_atol
    )
    factor = parity.lockstep_floor_factor
    gaps = float32["params_max_abs_diff_after_step"]
    losses = float32["losses"]
    loss_gaps = [abs(a - b) for a, b in losses]
    loss_drift = np.maximum.accumulate(floor["losses"])
    params_ok = all(gaps[s] <= _bound(floor["params"][s], atol, factor) for s in gaps)
    losses_ok = all(
        gap <= _bound(drift, atol, factor) for gap, drift in zip(loss_gaps, loss_drift, strict=True)
    )
    horizon = next((s for s in gaps if floor["params"][s] > atol), None)
    tolerance = {"atol": atol}
    if horizon is not None:
        tolerance["past_horizon"] = f"<= {factor}x torch's own rounding drift"
    abs_diff, rel_diff = differences(*float32["weights"])
    return Check(
        "lockstep",
        params_ok and losses_ok,
        max(abs_diff, float32["loss_max_abs_diff"]),
        rel_diff,
        tolerance,
        {
            "optimizer": experiment.train.optimizer,
            "adam_formula": experiment.train.adam_formula,
            "steps": len(losses),
            "batch_size": experiment.train.batch_size,
            "stable": horizon is None,
            # The first checkpoint where torch's rounding drift passes atol (None: never).
            "horizon_step": None if horizon is None else int(horizon),
            "params_within_bound": params_ok,
            "losses_within_bound": losses_ok,
            "loss_max_abs_diff": float32["loss_max_abs_diff"],
            "loss_max_rel_diff": max(
                g / max(abs(a), 1e-12) for g, (a, _) in zip(loss_gaps, losses, strict=True)
            ),
            "loss_first": {"torch": losses[0][0], "keras": losses[0][1]},
            "loss_last": {"torch": losses[-1][0], "keras": losses[-1][1]},
            "params_max_abs_diff_after_step": gaps,
            # torch against itself when only rounding changes (see rounding_floor).
            "torch_rounding_drift_after_step": floor["params"],
            "torch_rounding_drift_by_perturbation": floor["by_perturbation"],
            "torch_rounding_loss_drift_max": float(loss_drift[-1]),
            "other_thread_count": floor["other_thread_count"],
            "float64": {
                key: float64[key] for key in ("loss_max_abs_diff", "params_max_abs_diff_after_step")
            },
        },
    )
