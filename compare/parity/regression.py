"""Parity for the regression nets (`two_layer_net`, `dynamic_net`): the same levels where
they apply, on the objects a study run builds, with NumPy float64 as a third
implementation where one exists.

A regression run draws its data, initial weights and depths in NumPy
(`compare.run.regression`) and steps each framework's regression Trainer full-batch, so:
- structure / weights: same canonical shapes and counts; exact round trips;
- init: the initial weights the study draws, against the spec's distribution;
- forward: with those weights, both sides predict the same for every depth;
- stock_optimizer: each side's stock optimizer against its documented formula
  (`compare.parity.training.check_stock_optimizer`, the classifiers' level);
- study_path: both frameworks trained by the worker's own loop
  (`compare.run.loop.train_regression`) for the whole run: per-step losses against each
  other and, for `two_layer_net`, against the NumPy ground truth (hand-written
  backprop, float64), as `compare.run.regression.compare_losses` judges a run.

Stage: parity.
"""

from __future__ import annotations

import types

import numpy as np

from compare.pair.result import Check, differences, guarded
from compare.parity.built import fits_initializer
from compare.parity.levels import layer_names
from compare.parity.training import check_stock_optimizer, study_steps
from compare.run import contract, loop, regression, timing
from compare.spec.identity import DEFAULT_MODE
from compare.spec.schema import ExperimentSpec, ParitySpec

LEVELS = ("structure", "weights", "init", "forward", "stock_optimizer", "study_path")
SIDES = ("torch", "keras")


def _nets():
    return {framework: contract.load_regression(framework) for framework in SIDES}


def _built(nets, experiment: ExperimentSpec, weights) -> dict:
    models = {}
    for framework, net in nets.items():
        data = experiment.data
        models[framework] = net.build_model(experiment.model, data.input_size, data.output_size)
        net.set_weights(models[framework], weights)
    return models


def check_structure_and_weights(nets, experiment, weights) -> list[Check]:
    """Same parameter counts and canonical shapes; weights round-trip exactly."""
    models = _built(nets, experiment, weights)
    counts = {f: nets[f].count_parameters(m) for f, m in models.items()}
    back = {f: nets[f].get_weights(m) for f, m in models.items()}
    shapes = {f: [list(w.shape) for w in ws] for f, ws in back.items()}
    same = counts["torch"] == counts["keras"] and shapes["torch"] == shapes["keras"]
    exact = all(
        len(ws) == len(weights)
        and all(np.array_equal(a, b) for a, b in zip(weights, ws, strict=False))
        for ws in back.values()
    )
    gap = abs(counts["torch"] - counts["keras"])
    abs_diff = max(
        differences(weights, ws)[0] if [list(w.shape) for w in weights] == shapes[f] else np.inf
        for f, ws in back.items()
    )
    return [
        Check(
            "structure",
            same,
            float(gap),
            gap / max(counts["torch"], 1),
            {"parameter_count": "equal", "shapes": "equal"},
            {"parameter_count": counts, "canonical_shapes": shapes},
        ),
        Check("weights", exact, abs_diff, 0.0, {"exact": True}, {"arrays": len(weights)}),
    ]


def check_init(experiment: ExperimentSpec, weights, parity: ParitySpec) -> Check:
    """The initial weights the study draws (`regression.initial_weights`) against the
    spec's initialisers, tensor by tensor (bounds, KS, mean and variance)."""
    model = experiment.model
    per_layer = 2 if model.use_bias else 1
    kernels = weights[::per_layer]
    names = layer_names(kernels)
    tensors, first = [], None
    for index, values in enumerate(weights):
        layer, part = divmod(index, per_layer)
        kind = model.kernel_init if part == 0 else model.bias_init
        name = f"{names[layer]}.{'kernel' if part == 0 else 'bias'}"
        tested = {"tensor": name, **fits_initializer(values, kind, kernels[layer].shape, parity)}
        tensors.append(tested)
        if not tested["ok"] and first is None:
            first = f"{name} is not {kind}"
    return Check(
        "init",
        first is None,
        0.0,
        0.0,
        {"ks_p_min": parity.init_p_min, "z_max": parity.init_z_max, "bounds": "exact"},
        {"first_failure": first, "drawn_by": "compare.run.regression", "tensors": tensors},
    )


def check_forward(nets, experiment, weights, x, parity: ParitySpec) -> Check:
    """Same predictions, same weights, at every depth the net can take: per depth,
    max |delta| <= atol + rtol x max |prediction|."""
    models = _built(nets, experiment, weights)
    depths = (
        range(experiment.model.max_middle_repeats + 1)
        if experiment.model.architecture == "dynamic_net"
        else [0]
    )
    gaps, passed, first = {}, True, None
    abs_diff = rel_diff = 0.0
    for depth in depths:
        torch_out = nets["torch"].predict(models["torch"], x, depth)
        keras_out = nets["keras"].predict(models["keras"], x, depth)
        a, r = differences([torch_out], [keras_out])
        # Relative to the largest output: N(0, 1) weights on 1,000 inputs give outputs
        # in the hundreds, where float32 rounding alone is 1e-4 absolute.
        close = a <= parity.forward_atol + parity.forward_rtol * float(np.max(np.abs(torch_out)))
        gaps[str(depth)] = a
        abs_diff, rel_diff = max(abs_diff, a), max(rel_diff, r)
        if not close and first is None:
            first = f"depth {depth}: the predictions differ by {a:.2e}"
        passed = passed and close
    return Check(
        "forward",
        passed,
        abs_diff,
        rel_diff,
        {"rtol": parity.forward_rtol, "atol": parity.forward_atol},
        {"first_failure": first, "max_abs_diff_by_depth": gaps, "examples": len(x)},
    )


def _trained(framework: str, experiment: ExperimentSpec, seed: int) -> dict:
    """One regression run through the worker's own loop, on the CPU, untimed."""
    result = {"device": "cpu", "epochs": []}
    request = types.SimpleNamespace(seed=seed, framework=framework, mode=DEFAULT_MODE)
    impl = contract.load(framework)
    loop.train_regression(impl, experiment, request, timing.PhaseTimer(), result, lambda *a: None)
    return result


def check_study_path(experiment: ExperimentSpec, parity: ParitySpec) -> Check:
    """Both frameworks trained by the worker's loop for the whole run: per-step losses
    against each other and against the NumPy ground truth where it exists, within the
    regression tolerances (`compare.run.regression.compare_losses`)."""
    runs = {f: _trained(f, experiment, parity.seed) for f in SIDES}
    losses = {f: [e["train_loss"] for e in run["epochs"]] for f, run in runs.items()}
    cross = regression.compare_losses(losses["keras"], losses["torch"], parity)
    compared = cross["compared_steps"]
    relative = np.abs(np.subtract(losses["keras"][:compared], losses["torch"][:compared])) / np.abs(
        losses["torch"][:compared]
    )
    first = None
    if not cross["agrees"]:
        step = int(np.argmax(relative > parity.regression_loss_rtol)) + 1
        first = (
            f"step {step}: the losses differ by {relative[step - 1]:.2e} relative "
            f"(bound {parity.regression_loss_rtol})"
        )
    numpy = {}
    reference = regression.numpy_reference(experiment, parity.seed)
    if reference is not None:
        for framework in SIDES:
            numpy[framework] = regression.compare_losses(losses[framework], reference, parity)
            if not numpy[framework]["agrees"] and first is None:
                first = (
                    f"{framework} against NumPy: {numpy[framework]['max_relative_difference']:.2e} "
                    f"relative (bound {parity.regression_loss_rtol})"
                )
    same_depths = runs["torch"]["regression"]["depths"] == runs["keras"]["regression"]["depths"]
    if not same_depths and first is None:
        first = "the two runs followed different depths"
    return Check(
        "study_path",
        first is None,
        float(np.max(np.abs(np.subtract(losses["keras"], losses["torch"])))),
        cross["max_relative_difference"],
        {"loss_rtol": parity.regression_loss_rtol},
        {
            "entry_point": "compare.run.loop.train_regression",
            "steps": len(losses["torch"]),
            "compared_steps": compared,
            "first_failure": first,
            "torch_vs_keras": cross,
            "vs_numpy": numpy or None,
            "same_depths": same_depths,
            "final_loss": {f: losses[f][-1] for f in SIDES},
        },
    )


def check_model(experiment: ExperimentSpec, parity: ParitySpec, levels=LEVELS) -> list[Check]:
    """The regression levels for one net (`levels`, all by default), in LEVELS order."""
    nets = _nets()
    weights = regression.initial_weights(experiment, parity.seed)
    x, _ = regression.make_data(experiment.data, parity.seed)
    # A level a port breaks (a net that does not build, shapes that do not fit) fails
    # with its reason; the next levels still run.
    runs = {
        "structure": lambda: check_structure_and_weights(nets, experiment, weights)[:1],
        "weights": lambda: check_structure_and_weights(nets, experiment, weights)[1:],
        "init": lambda: [check_init(experiment, weights, parity)],
        "forward": lambda: [check_forward(nets, experiment, weights, x, parity)],
        "stock_optimizer": lambda: [
            check_stock_optimizer(experiment, experiment, study_steps(experiment), parity)
        ],
        "study_path": lambda: [check_study_path(experiment, parity)],
    }
    return [check for level in LEVELS if level in levels for check in guarded(level, runs[level])]
