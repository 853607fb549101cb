"""The parity levels that train: the optimizer fed given gradients, and lockstep training.

Both start from the same canonical weights and take the same steps on the same data;
the lockstep level also replays its run in float64, and measures how far torch drifts
from itself when only rounding changes (a one-ulp nudge of its start, another thread
count), to tell float32 rounding from real differences.

Stage: parity.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from compare.data import split
from compare.parity.levels import Check, K, T, differences, first_past, tensor_gaps, tensor_names
from compare.run import loop
from compare.spec.identity import DEFAULT_MODE
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


def study_path_data(experiment: ExperimentSpec, parity: ParitySpec) -> ExperimentSpec:
    """The experiment on the study path's subset: a stratified `train_limit` of
    `study_path_batches` full batches plus a third of one (the last, partial batch)."""
    batch = experiment.train.batch_size
    examples = parity.study_path_batches * batch + max(1, batch // 3)
    data = dataclasses.replace(experiment.data, train_limit=examples)
    return dataclasses.replace(experiment, data=data)


def check_study_path(
    experiment: ExperimentSpec, weights, parity: ParitySpec, mode: str, data_dir=None
) -> Check:
    """Both sides trained the way a study run trains them, from the same weights.

    Each side's Trainer is built as the worker builds it (`build_model`, `Trainer` in
    `mode`) and every epoch goes through the worker's own entry point
    (`compare.run.loop.epoch_function`: the spec's batch size, the runner's shuffled
    order, the target conversion, the loss), on a stratified subset with a partial last
    batch, for `study_path_epochs` epochs. The epoch losses and, after every epoch, the
    parameters must agree within the lockstep atol. Fails naming the first epoch and
    the first tensor past it.
    """
    experiment = study_path_data(experiment, parity)
    shared = split.prepared(experiment.data, data_dir)
    trained = {}
    for impl in (T, K):
        model = impl.build_model(experiment.model)
        impl.set_weights(model, weights)
        trainer = impl.Trainer(model, experiment.train, mode)
        losses, snapshots = [], []
        for epoch in range(parity.study_path_epochs):
            run_epoch = loop.epoch_function(trainer, experiment, shared, parity.seed, mode, epoch)
            losses.append(run_epoch())
            snapshots.append(impl.get_weights(model))
        trained[impl.FRAMEWORK] = (losses, snapshots)
    (torch_losses, torch_after), (keras_losses, keras_after) = trained.values()
    atol = (
        parity.lockstep_adam_atol if experiment.train.optimizer == "adam" else parity.lockstep_atol
    )
    names = tensor_names(experiment.model)
    first, params_gaps = None, []
    for epoch, (a, b) in enumerate(zip(torch_after, keras_after, strict=True), start=1):
        gaps = tensor_gaps(a, b)
        params_gaps.append(max(gaps))
        past = first_past(gaps, [atol] * len(gaps), names)
        if past and first is None:
            first = f"after epoch {epoch}: {past}"
    loss_gaps = [abs(a - b) for a, b in zip(torch_losses, keras_losses, strict=True)]
    for epoch, gap in enumerate(loss_gaps, start=1):
        if not gap <= atol and first is None:
            first = f"epoch {epoch}'s mean loss differs by {gap:.2e} (bound {atol:.2e})"
    abs_diff, rel_diff = differences(torch_after[-1], keras_after[-1])
    steps_per_epoch = -(-len(shared.y_train) // experiment.train.batch_size)
    return Check(
        "study_path" if mode == DEFAULT_MODE else f"study_path-{mode}",
        first is None,
        max(abs_diff, *loss_gaps),
        rel_diff,
        {"atol": atol},
        {
            "mode": mode,
            "entry_point": "compare.run.loop.epoch_function",
            "examples": len(shared.y_train),
            "batch_size": experiment.train.batch_size,
            "epochs": parity.study_path_epochs,
            "steps": steps_per_epoch * parity.study_path_epochs,
            "loss_form": experiment.train.loss,
            "first_failure": first,
            "epoch_losses": {"torch": torch_losses, "keras": keras_losses},
            "params_max_abs_diff_after_epoch": params_gaps,
        },
    )
