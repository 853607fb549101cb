"""The parity levels that train: the optimizer fed given gradients, and lockstep training.

Both start from the same canonical weights and take the same steps on the same data;
the lockstep level also replays its run in float64, and measures how far torch drifts
from itself when only rounding changes (a one-ulp nudge of its start, another thread
count), to tell float32 rounding from real differences.

Stage: parity.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from compare.data import split
from compare.pair.result import Check, differences, first_past, tensor_gaps
from compare.parity import formulas, select
from compare.parity.levels import K, T, tensor_names
from compare.run import loop
from compare.spec.identity import DEFAULT_MODE
from compare.spec.schema import ExperimentSpec, ParitySpec, TrainSpec, train_size


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
    for step in range(1, parity.optimizer_steps + 1):
        gradients = [
            (rng.standard_normal(w.shape) * parity.optimizer_gradient_scale).astype(np.float32)
            for w in weights
        ]
        torch_trainer.apply_gradients(gradients)
        keras_trainer.apply_gradients(gradients)
        if step in _checkpoints(parity) or step == parity.optimizer_steps:
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
            "steps": parity.optimizer_steps,
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
                after[str(step)] = tensor_gaps(
                    T.get_weights(torch_model), K.get_weights(keras_model)
                )
    return {
        "loss_max_abs_diff": max(abs(a - b) for a, b in losses),
        "params_max_abs_diff_after_step": {k: max(v) for k, v in after.items()},
        "tensor_gaps_after_step": after,
        "losses": losses,
        "weights": (T.get_weights(torch_model), K.get_weights(keras_model)),
    }


def _torch_run(
    experiment,
    shared,
    weights,
    parity: ParitySpec,
    threads: int | None = None,
    dtype: str = "float32",
):
    """Torch alone through the lockstep batches: per-step losses, weights at checkpoints."""
    with T.intra_op_threads(threads), T.float_precision(dtype):
        model = T.build_model(experiment.model)
        T.set_weights(model, weights)
        trainer = T.Trainer(model, experiment.train)
        batches = lockstep_batches(shared, experiment.train.batch_size, parity.steps, parity.seed)
        losses, snapshots = [], {}
        for step, (x, y) in enumerate(batches, start=1):
            losses.append(trainer.train_step(x.astype(dtype), y))
            if step in _checkpoints(parity):
                snapshots[str(step)] = T.get_weights(model)
    return losses, snapshots


def _one_ulp(weights, seed, dtype: str) -> list[np.ndarray]:
    """Each weight moved one ulp of `dtype` up or down at random."""
    rng = np.random.default_rng(seed)
    moved = []
    for w in weights:
        w = w.astype(dtype)
        # The direction in the weights' own dtype: a float64 target would nudge in float64.
        direction = np.where(rng.random(w.shape) < 0.5, -np.inf, np.inf).astype(w.dtype)
        moved.append(np.nextafter(w, direction))
    return moved


def float64_drift(experiment, shared, weights, parity: ParitySpec) -> dict:
    """How far torch drifts from itself in float64 when its start moves one float64 ulp:
    the float64 replay's rounding floor (step -> max |delta param|)."""
    start = [w.astype("float64") for w in weights]
    _, base = _torch_run(experiment, shared, start, parity, dtype="float64")
    _, nudged = _torch_run(
        experiment, shared, _one_ulp(weights, parity.seed, "float64"), parity, dtype="float64"
    )
    return {step: differences(base[step], nudged[step])[0] for step in base}


def rounding_floor(experiment, shared, weights, parity: ParitySpec) -> dict:
    """How far torch drifts from itself when only rounding changes: parameters at the
    checkpoints and the loss at every step, the largest over the perturbations.

    - `one_ulp_start_K` (K = 1 .. `rounding_nudges`): each initial weight moved one ulp
      up or down, a new random draw each time. Rounding amplification is heavy-tailed
      (with Adam a gradient near epsilon may flip an update's sign), so one draw
      undersamples it: on a CNN with Adam, five of six draws drifted 2e-6-4e-5 after 50
      steps, the sixth 3.6e-3, as far as Keras on TensorFlow was.
    - `other_thread_count`: the same run on another intra-op thread count (1 <-> 2), which
      changes the matrix products' summation order at every step, as another framework's
      kernels do. The math is the same; only the rounding differs.
    Where training amplifies rounding, no two implementations can stay closer than this.
    """
    base_losses, base = _torch_run(experiment, shared, weights, parity)
    with T.intra_op_threads(None) as current:
        other_threads = 2 if current == 1 else 1
    runs = {
        f"one_ulp_start_{k}": _torch_run(
            experiment, shared, _one_ulp(weights, [parity.seed, k], "float32"), parity
        )
        for k in range(1, parity.rounding_nudges + 1)
    }
    runs["other_thread_count"] = _torch_run(experiment, shared, weights, parity, other_threads)
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
    rounding (from `horizon_step`, the first checkpoint where the drift passes atol) no
    implementation can be held to atol, and the bound follows the drift: the pass is
    then weaker, and `strength` says so. So the same replay also runs in float64, and
    where Keras computes float64 (TensorFlow) it gates: its gap must stay within
    max(`float64_gate_atol`, factor x torch's own float64 drift from a one-ulp nudge),
    so an update rule that differs fails even where float32 is chaotic. Fails naming
    the first checkpoint and tensor past its bound.
    """
    float32 = replay(experiment, shared, weights, parity, "float32")
    float64 = replay(experiment, shared, weights, parity, "float64")
    floor = rounding_floor(experiment, shared, weights, parity)
    atol = (
        parity.lockstep_adam_atol if experiment.train.optimizer == "adam" else parity.lockstep_atol
    )
    factor = parity.lockstep_floor_factor
    names = tensor_names(experiment.model)
    gaps = float32["params_max_abs_diff_after_step"]
    losses = float32["losses"]
    loss_gaps = [abs(a - b) for a, b in losses]
    loss_drift = np.maximum.accumulate(floor["losses"])
    first = None
    for step, tensor_gap in float32["tensor_gaps_after_step"].items():
        bound = _bound(floor["params"][step], atol, factor)
        past = first_past(tensor_gap, [bound] * len(tensor_gap), names)
        if past:
            first = f"float32, after step {step}: {past}"
            break
    params_ok = first is None
    bad_loss = next(
        (
            (step, gap, _bound(drift, atol, factor))
            for step, (gap, drift) in enumerate(zip(loss_gaps, loss_drift, strict=True), start=1)
            if not gap <= _bound(drift, atol, factor)
        ),
        None,
    )
    losses_ok = bad_loss is None
    if bad_loss and first is None:
        step, gap, bound = bad_loss
        first = f"float32, step {step}: the loss differs by {gap:.2e} (bound {bound:.2e})"
    horizon = next((s for s in gaps if floor["params"][s] > atol), None)
    # float64: gates where Keras computes it (TensorFlow); elsewhere Keras narrows
    # float64 to float32 and the replay is only reported (suite.backend_notes).
    float64_gates = K.backend() == "tensorflow"
    drift64 = float64_drift(experiment, shared, weights, parity) if float64_gates else {}
    float64_ok = True
    for step, tensor_gap in float64["tensor_gaps_after_step"].items() if float64_gates else ():
        bound = max(parity.float64_gate_atol, factor * drift64[step])
        past = first_past(tensor_gap, [bound] * len(tensor_gap), names)
        if past:
            float64_ok = False
            first = first or f"float64 (an update rule differs), after step {step}: {past}"
            break
    tolerance = {"atol": atol}
    if horizon is not None:
        tolerance["past_horizon"] = f"<= {factor}x torch's own rounding drift"
    if float64_gates:
        tolerance["float64"] = (
            f"<= max({parity.float64_gate_atol}, {factor}x torch's own float64 drift)"
        )
    held = f"held to atol {atol:g}"
    if horizon is None:
        strength = f"float32 {held} for all {len(losses)} steps"
    else:
        before = [s for s in gaps if int(s) < int(horizon)]
        strength = (
            f"float32 {held} up to step {before[-1]}, " if before else "float32 from step 1 "
        ) + (
            f"then only to {factor:g}x torch's own rounding drift "
            f"(up to {max(floor['params'].values()):.1e}: chaotic training)"
        )
    strength += (
        "; float64 replay gated (an update-rule difference fails)"
        if float64_gates
        else "; float64 replay not gated (Keras narrows float64 to float32 on this backend)"
    )
    abs_diff, rel_diff = differences(*float32["weights"])
    return Check(
        "lockstep",
        params_ok and losses_ok and float64_ok,
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
            "strength": strength,
            "first_failure": first,
            "params_within_bound": params_ok,
            "losses_within_bound": losses_ok,
            "float64_gated": float64_gates,
            "float64_within_bound": float64_ok,
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
                **{
                    key: float64[key]
                    for key in ("loss_max_abs_diff", "params_max_abs_diff_after_step")
                },
                "torch_float64_drift_after_step": drift64,
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


def _study_path_run(impl, experiment, shared, weights, parity, mode, threads=None, fed=None):
    """One side trained as the worker trains it: (epoch losses, weights after each). With
    a list `fed`, the batches its epochs consumed are appended to it."""
    with impl.intra_op_threads(threads):
        model = impl.build_model(experiment.model)
        impl.set_weights(model, weights)
        trainer = impl.Trainer(model, experiment.train, mode)
        trainer.fed_batches = fed
        losses, snapshots = [], []
        for epoch in range(parity.study_path_epochs):
            run_epoch = loop.epoch_function(trainer, experiment, shared, parity.seed, mode, epoch)
            losses.append(run_epoch())
            snapshots.append(impl.get_weights(model))
    return losses, snapshots


def fed_batches_problem(fed: list, shared, batch_size: int, seed: int, epochs: int) -> str | None:
    """Where the batches an epoch entry point consumed differ from the shared split's
    rows in the runner's order, cut at the spec's batch size; None when bitwise equal.
    One-hot targets (softmax_categorical_crossentropy) are read back as labels."""
    expected = []
    for epoch in range(epochs):
        order = split.epoch_order(seed, epoch, len(shared.y_train))
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            expected.append((epoch, shared.x_train[index], shared.y_train[index]))
    if len(fed) != len(expected):
        return f"{len(fed)} batches fed in {epochs} epochs, the spec and order give {len(expected)}"
    for number, ((x, y), (epoch, want_x, want_y)) in enumerate(zip(fed, expected, strict=True)):
        labels = y.argmax(axis=-1) if y.ndim == 2 else y
        if not (
            x.dtype == want_x.dtype and np.array_equal(x, want_x) and np.array_equal(labels, want_y)
        ):
            return (
                f"epoch {epoch + 1}, batch {number + 1}: not the shared rows in the runner's order"
            )
    return None


def check_study_path(
    experiment: ExperimentSpec, weights, parity: ParitySpec, mode: str, data_dir=None
) -> Check:
    """Both sides trained the way a study run trains them, from the same weights.

    Each side's Trainer is built as the worker builds it (`build_model`, `Trainer` in
    `mode`) and every epoch goes through the worker's own entry point
    (`compare.run.loop.epoch_function`: the spec's batch size, the runner's shuffled
    order, the target conversion, the loss), on a stratified subset with a partial last
    batch, for `study_path_epochs` epochs. After every epoch the mean loss and each
    parameter tensor must agree within max(atol, `lockstep_floor_factor` x torch's own
    drift on the same path when only rounding changes: a one-ulp nudge of its start,
    another thread count), as in lockstep. Fails naming the first epoch and tensor.
    """
    experiment = study_path_data(experiment, parity)
    shared = split.prepared(experiment.data, data_dir)
    args = (experiment, shared)
    fed = {T.FRAMEWORK: [], K.FRAMEWORK: []}
    torch_losses, torch_after = _study_path_run(T, *args, weights, parity, mode, fed=fed["torch"])
    keras_losses, keras_after = _study_path_run(K, *args, weights, parity, mode, fed=fed["keras"])
    # The native pipeline shuffles inside each framework: no shared order to compare.
    native = experiment.data.pipeline == "native"
    fed_problems = {
        framework: None
        if native
        else fed_batches_problem(
            batches,
            shared,
            experiment.train.batch_size,
            parity.seed,
            parity.study_path_epochs,
        )
        for framework, batches in fed.items()
    }
    # torch against itself when only rounding changes, on the same path.
    with T.intra_op_threads(None) as current:
        other_threads = 2 if current == 1 else 1
    perturbed = [
        *(
            _study_path_run(T, *args, _one_ulp(weights, [parity.seed, k], "float32"), parity, mode)
            for k in range(1, parity.rounding_nudges + 1)
        ),
        _study_path_run(T, *args, weights, parity, mode, other_threads),
    ]
    drift = [
        max(differences(torch_after[e], run[1][e])[0] for run in perturbed)
        for e in range(len(torch_after))
    ]
    loss_drift = [
        max(abs(torch_losses[e] - run[0][e]) for run in perturbed) for e in range(len(torch_losses))
    ]
    atol = (
        parity.lockstep_adam_atol if experiment.train.optimizer == "adam" else parity.lockstep_atol
    )
    factor = parity.lockstep_floor_factor
    names = tensor_names(experiment.model)
    first, params_gaps = None, []
    for epoch, (a, b) in enumerate(zip(torch_after, keras_after, strict=True), start=1):
        gaps = tensor_gaps(a, b)
        params_gaps.append(max(gaps))
        bound = _bound(drift[epoch - 1], atol, factor)
        past = first_past(gaps, [bound] * len(gaps), names)
        if past and first is None:
            first = f"after epoch {epoch}: {past}"
    loss_gaps = [abs(a - b) for a, b in zip(torch_losses, keras_losses, strict=True)]
    for epoch, gap in enumerate(loss_gaps, start=1):
        bound = _bound(loss_drift[epoch - 1], atol, factor)
        if not gap <= bound and first is None:
            first = f"epoch {epoch}'s mean loss differs by {gap:.2e} (bound {bound:.2e})"
    for framework, problem in fed_problems.items():
        if problem and first is None:
            first = f"{framework}'s epoch path fed other batches: {problem}"
    abs_diff, rel_diff = differences(torch_after[-1], keras_after[-1])
    steps_per_epoch = -(-len(shared.y_train) // experiment.train.batch_size)
    tolerance = {"atol": atol, "fed_batches": "bitwise"}
    if max(drift) * factor > atol:
        tolerance["past_horizon"] = f"<= {factor}x torch's own rounding drift"
    return Check(
        select.mode_level("study_path", mode),
        first is None,
        max(abs_diff, *loss_gaps),
        rel_diff,
        tolerance,
        {
            "mode": mode,
            "entry_point": "compare.run.loop.epoch_function",
            "examples": len(shared.y_train),
            "batch_size": experiment.train.batch_size,
            "epochs": parity.study_path_epochs,
            "steps": steps_per_epoch * parity.study_path_epochs,
            "loss_form": experiment.train.loss,
            "first_failure": first,
            # The batches each side's epoch path consumed, against the shared split in
            # the runner's order at the spec's batch size (None: bitwise the same).
            "fed_batches": {
                f: {"batches": len(b), "problem": fed_problems[f]} for f, b in fed.items()
            },
            "stable": max(drift) * factor <= atol,
            "epoch_losses": {"torch": torch_losses, "keras": keras_losses},
            "params_max_abs_diff_after_epoch": params_gaps,
            "torch_rounding_drift_after_epoch": drift,
            "torch_rounding_loss_drift": loss_drift,
        },
    )


# Why the two stock formulas differ where they do: the named difference the report shows
# beside its measured size (the stock_optimizer level's `stock_formula_gap`).
STOCK_FORMULA_DIFFERENCES = {
    "adam": "Keras adds epsilon to sqrt(v) and folds the bias corrections into the step "
    "size (epsilon-hat); torch adds epsilon to sqrt(v_hat)",
    "rmsprop": "Keras adds epsilon inside the square root, sqrt(v + eps); torch outside, "
    "sqrt(v) + eps (and scales its momentum buffer by lr at the step)",
}


def study_steps(experiment: ExperimentSpec) -> int:
    """Optimizer steps in the study's longest run of the experiment (full profile)."""
    per_epoch = -(-train_size(experiment.data) // experiment.train.batch_size)
    return experiment.train.epochs * per_epoch


def _probe(train: TrainSpec, steps: int, parity: ParitySpec) -> dict:
    """The probe (start, gradients, groups, checkpoints) for a recipe over `steps`."""
    n = parity.stock_optimizer_per_scale
    return {
        "start": formulas.probe_start(n, train.learning_rate, seed=parity.seed),
        "gradients": formulas.probe_gradients(steps, n, seed=parity.seed),
        "groups": formulas.probe_groups(n),
        "checkpoints": tuple(
            int(s) for s in np.unique(np.geomspace(1, steps, parity.stock_optimizer_checkpoints))
        ),
    }


@functools.lru_cache(maxsize=32)
def _references(train: TrainSpec, steps: int, parity: ParitySpec) -> dict:
    """Each framework's float64 replay on the probe. Cached (pure NumPy, and several
    experiments share a recipe); the stock runs never are: they are what is checked."""
    probe = _probe(train, steps, parity)
    args = (probe["start"], probe["gradients"], probe["checkpoints"])
    return {f: formulas.reference_trajectory(f, train, *args) for f in ("torch", "keras")}


def _trajectories(train: TrainSpec, steps: int, mode: str, parity: ParitySpec) -> dict:
    """Each side's stock optimizer and each framework's float64 replay on the probe."""
    probe = _probe(train, steps, parity)
    args = (probe["start"], probe["gradients"], probe["checkpoints"])
    return {
        "start": probe["start"],
        "groups": probe["groups"],
        "stock": {impl.FRAMEWORK: impl.optimizer_trajectory(train, mode, *args) for impl in (T, K)},
        "reference": _references(train, steps, parity),
    }


def check_stock_optimizer(
    experiment: ExperimentSpec, aligned: ExperimentSpec, steps: int, parity: ParitySpec
) -> Check:
    """Each side's stock optimizer, exactly as its Trainer builds it, against a float64
    NumPy replay of its own framework's documented update, on the probe vector
    (`compare.parity.formulas`) for `steps` steps (the study's longest run), so a changed
    hyperparameter, another class, weight decay or a learning-rate schedule fails. The
    aligned variant lockstep uses on the Keras side (`aligned`) is held to torch's
    formula the same way. Where the stock formulas differ by design, their measured gap
    is reported (`stock_formula_gap`), not failed."""
    rtol, atol = parity.stock_optimizer_rtol, parity.stock_optimizer_atol
    run = _trajectories(experiment.train, steps, DEFAULT_MODE, parity)
    start, groups = run["start"], run["groups"]
    verdicts = {
        f: formulas.compare_to_reference(
            run["stock"][f], run["reference"][f], start, groups, rtol, atol
        )
        for f in ("torch", "keras")
    }
    if aligned.train != experiment.train:
        run_aligned = _trajectories(aligned.train, steps, DEFAULT_MODE, parity)
        verdicts["keras_aligned"] = formulas.compare_to_reference(
            run_aligned["stock"]["keras"],
            run_aligned["reference"]["torch"],
            start,
            groups,
            rtol,
            atol,
        )
    first = next(
        (f"{side}: {v['summary']}" for side, v in verdicts.items() if not v["passed"]), None
    )
    gap = formulas.compare_to_reference(
        run["reference"]["keras"], run["reference"]["torch"], start, groups, rtol, atol
    )
    optimizer = experiment.train.optimizer
    differs = optimizer in STOCK_FORMULA_DIFFERENCES and not gap["passed"]
    return Check(
        "stock_optimizer",
        first is None,
        max(v["max_abs_diff"] for v in verdicts.values()),
        max(max(v["relative_deviation"].values(), default=0.0) for v in verdicts.values()),
        {"per_group": f"|delta| <= {rtol} x displacement + {atol}"},
        {
            "optimizer": optimizer,
            "steps": steps,
            "probe_elements": len(start),
            "first_failure": first,
            "sides": {
                side: {key: v[key] for key in ("passed", "worst_ratio", "summary")}
                for side, v in verdicts.items()
            },
            # Keras's documented update against torch's, both float64: a property of
            # the two frameworks, reported with its cause.
            "stock_formula_gap": {
                "differs": differs,
                "why": STOCK_FORMULA_DIFFERENCES.get(optimizer) if differs else None,
                "max_relative_deviation": max(gap["relative_deviation"].values(), default=0.0),
                "max_abs_diff": gap["max_abs_diff"],
            },
        },
    )
