"""The regression nets (`two_layer_net`, `dynamic_net`): shared data, weights and depths,
and how a run's losses are held against the NumPy ground truth.

Stage: run (the loop itself is `compare.run.loop`; the report's step-by-step agreement
between the frameworks, `agreement`, which the runner and the report both use).

These nets are not Fashion-MNIST classifiers: they fit random data with full-batch
steps (one step per "epoch"). Everything random is drawn here, in NumPy, from the run's
seed, and handed to both frameworks: the data, the initial weights and, for
`dynamic_net`, the depth of every forward pass. So the two frameworks (and, for
`two_layer_net`, the NumPy ground truth) train the same net from the same start and
can be compared step by step.
"""

from __future__ import annotations

import math

import numpy as np

from compare.run import numpy_two_layer
from compare.spec.schema import ExperimentSpec, ParitySpec

PARITY = ParitySpec()
# Independent streams of one run seed.
DATA_STREAM, WEIGHTS_STREAM, DEPTH_STREAM = 0, 1, 2


def make_data(data_spec, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """x (num_samples, input_size) and y (num_samples, output_size), standard normal."""
    rng = np.random.default_rng([seed, DATA_STREAM])
    x = rng.standard_normal((data_spec.num_samples, data_spec.input_size), dtype=np.float32)
    y = rng.standard_normal((data_spec.num_samples, data_spec.output_size), dtype=np.float32)
    return x, y


def _draw(rng, kind: str, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    if kind == "standard_normal":
        return rng.standard_normal(shape, dtype=np.float32)
    if kind == "uniform_fan_in":
        bound = 1.0 / math.sqrt(fan_in)
        return rng.uniform(-bound, bound, shape).astype(np.float32)
    if kind == "glorot_uniform":
        fan_out = shape[-1] if len(shape) == 2 else shape[0]
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-bound, bound, shape).astype(np.float32)
    if kind == "zeros":
        return np.zeros(shape, np.float32)
    raise ValueError(f"unknown initializer {kind!r}")


def layer_sizes(experiment: ExperimentSpec) -> list[tuple[int, int]]:
    """(fan_in, fan_out) per layer: input, middle (dynamic_net only), output."""
    (hidden,) = experiment.model.hidden_sizes
    sizes = [(experiment.data.input_size, hidden)]
    if experiment.model.architecture == "dynamic_net":
        sizes.append((hidden, hidden))
    sizes.append((hidden, experiment.data.output_size))
    return sizes


def initial_weights(experiment: ExperimentSpec, seed: int) -> list[np.ndarray]:
    """Canonical-layout initial weights, drawn as the spec's initializers say."""
    model = experiment.model
    rng = np.random.default_rng([seed, WEIGHTS_STREAM])
    weights = []
    for fan_in, fan_out in layer_sizes(experiment):
        weights.append(_draw(rng, model.kernel_init, (fan_in, fan_out), fan_in))
        if model.use_bias:
            weights.append(_draw(rng, model.bias_init, (fan_out,), fan_in))
    return weights


def depth_sequence(experiment: ExperimentSpec, seed: int) -> list[int]:
    """Middle-layer repeats for every step: random 0..max for dynamic_net, else 0."""
    steps = experiment.train.epochs
    if experiment.model.architecture != "dynamic_net":
        return [0] * steps
    rng = np.random.default_rng([seed, DEPTH_STREAM])
    return rng.integers(0, experiment.model.max_middle_repeats + 1, size=steps).tolist()


def numpy_reference(experiment: ExperimentSpec, seed: int) -> np.ndarray | None:
    """Per-step losses of the NumPy ground truth, where it implements the spec."""
    model, train = experiment.model, experiment.train
    implemented = (
        model.architecture == "two_layer_net"
        and not model.use_bias
        and model.activation in ("relu", "custom_relu")
        and train.optimizer == "sgd"
        and train.momentum == 0
    )
    if not implemented:
        return None
    x, y = make_data(experiment.data, seed)
    w1, w2 = initial_weights(experiment, seed)
    return numpy_two_layer.train(x, y, w1, w2, train.learning_rate, train.epochs)


def compare_losses(losses, reference, parity: ParitySpec = PARITY) -> dict:
    """{compared_steps, max_relative_difference, agrees} of two per-step loss curves,
    within the regression tolerances of `parity` (see ParitySpec)."""
    losses, reference = np.asarray(losses, float), np.asarray(reference, float)
    steps = min(len(losses), len(reference))
    losses, reference = losses[:steps], reference[:steps]
    above = np.abs(reference) >= parity.regression_compared_down_to * abs(reference[0])
    compared = int(np.argmin(above)) if not above.all() else steps
    compared = max(min(compared, parity.regression_compared_steps), 1)
    difference = np.abs(losses[:compared] - reference[:compared]) / np.abs(reference[:compared])
    worst = float(np.max(difference))
    return {
        "compared_steps": compared,
        "max_relative_difference": worst,
        "agrees": bool(worst <= parity.regression_loss_rtol),
    }


def record(experiment: ExperimentSpec, seed: int, losses: list[float], result: dict) -> None:
    """A regression run's own fields: its final loss, its depths, and its agreement with
    the NumPy ground truth where one implements the spec."""
    depths = depth_sequence(experiment, seed)
    result["test_loss"] = result["test_accuracy"] = None
    result["final_loss"] = losses[-1] if losses else None
    regression = {"depths": depths[: len(losses)], "reference": None}
    reference = numpy_reference(experiment, seed)
    if reference is not None and losses:
        regression.update(
            reference="numpy_two_layer (float64, hand-written backprop)",
            reference_losses=reference.tolist(),
            **compare_losses(losses, reference),
        )
    result["regression"] = regression


def agreement(runs: list[dict]) -> list[dict]:
    """Per regression experiment and seed: each framework against the NumPy reference,
    torch against keras step by step, and whether both followed the same depths."""
    by_key: dict[tuple[str, int], dict[str, dict]] = {}
    for run in runs:
        if run.get("status") == "ok" and "regression" in run:
            by_key.setdefault((run["experiment"], run["seed"]), {})[run["framework"]] = run
    rows = []
    for (experiment, seed), sides in sorted(by_key.items()):
        row = {"experiment": experiment, "seed": seed, "steps": None}
        for framework, run in sides.items():
            row[f"{framework}_final_loss"] = run.get("final_loss")
            row[f"{framework}_vs_numpy"] = run["regression"].get("max_relative_difference")
            row[f"{framework}_agrees_with_numpy"] = run["regression"].get("agrees")
            row["steps"] = len(run["epochs"])
        if {"torch", "keras"} <= set(sides):
            torch_run, keras_run = sides["torch"], sides["keras"]
            losses = [[e["train_loss"] for e in r["epochs"]] for r in (keras_run, torch_run)]
            cross = compare_losses(*losses)
            row.update(
                torch_vs_keras=cross["max_relative_difference"],
                compared_steps=cross["compared_steps"],
                agrees=cross["agrees"],
                same_depths=torch_run["regression"]["depths"] == keras_run["regression"]["depths"],
            )
        rows.append(row)
    return rows


# Each check an agreement row may hold: None where it does not apply (no NumPy reference
# for the spec, one framework only), else whether it held.
AGREEMENT_CHECKS = ("agrees", "same_depths", "torch_agrees_with_numpy", "keras_agrees_with_numpy")


def failed_checks(row: dict) -> list[str]:
    """The checks of an agreement row that failed (`AGREEMENT_CHECKS`)."""
    return [key for key in AGREEMENT_CHECKS if row.get(key) is False]


def disagreements(rows: list[dict]) -> list[str]:
    """One line per (regression net, seed) whose step-by-step agreement failed."""
    lines = []
    for row in rows:
        if failed := failed_checks(row):
            lines.append(
                f"{row['experiment']}/seed{row['seed']}: regression agreement failed "
                f"({', '.join(failed)}; torch vs keras {row.get('torch_vs_keras')}, "
                f"vs NumPy {row.get('torch_vs_numpy')} / {row.get('keras_vs_numpy')})"
            )
    return lines
