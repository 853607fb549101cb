"""The parity proof: both implementations compute the same function and take the same steps.

Per experiment, seven levels (`compare/parity_levels.py`, `compare/parity_training.py`):

- structure: same parameter count, canonical shapes and output shape;
- weights: torch -> canonical -> Keras -> canonical -> torch is exact (and back);
- forward: with transplanted weights, same logits and probabilities, inference mode;
- gradients: same loss and per-tensor gradients for one batch;
- optimizer: the study's optimizer fed identical gradients gives the same parameters;
- lockstep: same initial weights and batches, same losses and parameters after N steps
  in float32, as the study trains (the float64 replay beside it isolates the rules);
- data: both frameworks train on the shared arrays, and their own dataset loaders read
  the same pixels and labels as `compare/data.py`.

Both frameworks run in this one process; `configure` sizes their thread pools before
either runtime starts. `run` returns the JSON report `python -m compare parity` prints:
`models` maps each experiment to `passed`, `notes`, `checks` (per level: `name`,
`passed`, `max_abs_diff`, `max_rel_diff`, `tolerance`) and `details` (per level, what
was measured); `defaults` holds the defaults-that-differ rows.
"""

from __future__ import annotations

import dataclasses

from compare import data as data_mod
from compare import results, studies
from compare.parity_levels import (
    K,
    T,
    build_pair,
    check_data,
    check_forward,
    check_gradients,
    check_loaders,
    check_structure,
    check_weights,
)
from compare.parity_training import check_lockstep, check_optimizer
from compare.spec import ExperimentSpec, ParitySpec

SCHEMA = "keras-vs-pytorch/parity/v1"
LEVELS = ("structure", "weights", "forward", "gradients", "optimizer", "lockstep", "data")


def configure(threads: int, seed: int) -> dict:
    """Pin both frameworks' threads and seed them; return the thread counts in effect.

    Thread pools can only be sized before a runtime starts; when a runtime already
    runs in this process (a test session), the counts it has are kept and reported.
    torch is seeded either way, and it alone draws the weights both sides start from.
    """
    in_effect = {}
    for impl in (K, T):
        try:
            in_effect[impl.FRAMEWORK] = impl.configure(threads, seed, "cpu")["threads"]
        except RuntimeError as error:
            in_effect[impl.FRAMEWORK] = f"already started, not changed ({error})"
    return in_effect


# --- per model and for a list of models ---------------------------------------------


def for_lockstep(experiment: ExperimentSpec) -> tuple[ExperimentSpec, list[str]]:
    """The experiment as the gradient/optimizer/lockstep levels check it, and why it differs.

    Two differences cannot be aligned by weights or data, so these levels remove them
    and say so: stock Adam (the Keras side switches to torch's update) and dropout
    (each framework draws its masks from its own random stream).
    """
    notes = []
    train, model = experiment.train, experiment.model
    if train.optimizer == "adam" and train.adam_formula != "torch":
        train = dataclasses.replace(train, adam_formula="torch")
        notes.append(
            "gradients, optimizer and lockstep use adam_formula='torch' (Keras re-implements "
            "torch's Adam); stock Adam cannot agree, see native_adam"
        )
    if model.dropout_rate > 0:
        model = dataclasses.replace(model, dropout_rate=0.0)
        notes.append("gradients and lockstep run with dropout off: masks never match")
    return dataclasses.replace(experiment, train=train, model=model), notes


def check_model(
    experiment: ExperimentSpec,
    parity: ParitySpec,
    loaders: dict,
    threads: int = 1,
    data_dir: str | None = None,
) -> dict:
    """Every level for one experiment; the result is plain JSON."""
    # Reseeded per model: its initial weights must not depend on the models checked before.
    configure(threads, parity.seed)
    # The levels need one batch and `steps` batches: the quick profile's subsets suffice.
    experiment = studies.apply_profile(experiment, "quick")
    shared = data_mod.load_shared(experiment.data, data_dir)
    x, y = shared.x_test[: parity.batch_size], shared.y_test[: parity.batch_size]
    aligned, notes = for_lockstep(experiment)

    torch_model, keras_model = build_pair(experiment)
    weights = T.get_weights(torch_model)
    checks = [
        check_structure(torch_model, keras_model, x),
        check_weights(experiment),
        check_forward(torch_model, keras_model, x, parity),
        check_gradients(*build_pair(aligned), x, y, parity),
        check_optimizer(aligned, weights, parity),
        check_lockstep(aligned, shared, weights, parity),
        check_data(experiment, shared, loaders),
    ]
    result = {
        "experiment": experiment.name,
        "passed": all(c.passed for c in checks),
        "optimizer": experiment.train.optimizer,
        "notes": notes,
        "checks": [c.summary() for c in checks],
        "details": {c.name: c.detail for c in checks},
    }
    if experiment.train.optimizer == "adam":
        # Informational: how far the study's stock Adam pair drifts apart.
        native = dataclasses.replace(aligned.train, adam_formula="native")
        stock = check_optimizer(dataclasses.replace(aligned, train=native), weights, parity)
        result["native_adam"] = {
            "max_abs_diff": stock.max_abs_diff,
            "max_abs_diff_after_step": stock.detail["max_abs_diff_after_step"],
        }
    return result


def run(
    experiments: list[ExperimentSpec],
    threads: int,
    parity: ParitySpec | None = None,
    data_dir: str | None = None,
) -> dict:
    """The parity report for the experiments: per model and level, and the defaults table."""
    from compare import defaults

    parity = parity or ParitySpec()
    threads_in_effect = configure(threads, parity.seed)
    loaders = check_loaders(data_dir)
    models = [check_model(e, parity, loaders, threads, data_dir) for e in experiments]
    # Strict JSON: an infinite difference (mismatched shapes) becomes null.
    return results.finite_or_none(
        {
            "schema": SCHEMA,
            "passed": all(m["passed"] for m in models),
            "levels": list(LEVELS),
            "models": {m["experiment"]: m for m in models},
            "defaults": defaults.table(experiments),
            "parity_spec": dataclasses.asdict(parity),
            "threads": threads_in_effect,
        }
    )


def _scientific(value) -> str:
    return "n/a" if value is None else f"{value:.2e}"


def format_table(report: dict) -> str:
    """A plain-text table: one line per model and level, then the verdict."""
    lines = [f"{'model':14s} {'level':10s} {'ok':4s} {'max abs':>10s} {'max rel':>10s}  tolerance"]
    for model in report["models"].values():
        for check in model["checks"]:
            tolerance = ", ".join(f"{k} {v}" for k, v in check["tolerance"].items())
            differences = " ".join(
                f"{_scientific(check[key]):>10s}" for key in ("max_abs_diff", "max_rel_diff")
            )
            lines.append(
                f"{model['experiment']:14s} {check['name']:10s} "
                f"{'yes' if check['passed'] else 'NO':4s} {differences}  {tolerance}"
            )
        for note in model["notes"]:
            lines.append(f"{'':14s} note: {note}")
        if "native_adam" in model:
            steps = report["parity_spec"]["steps"]
            lines.append(
                f"{'':14s} stock Adam on both sides: max |delta param| "
                f"{model['native_adam']['max_abs_diff']:.2e} after {steps} steps"
            )
    failed = [name for name, model in report["models"].items() if not model["passed"]]
    lines.append(
        "parity: " + (f"FAILED for {', '.join(failed)}" if failed else "all checks passed")
    )
    return "\n".join(lines)
