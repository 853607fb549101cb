"""The parity proof: both implementations compute the same function and take the same steps.

For one experiment, each level builds what it needs through the implementation
contract alone and compares the two sides in the canonical NumPy layout:

- structure: same parameter count, canonical shapes and output shape;
- weights: torch -> canonical -> Keras -> canonical -> torch is exact (and back);
- forward: with transplanted weights, same logits and probabilities, inference mode;
- gradients: same loss and per-tensor gradients for one batch;
- optimizer: the study's optimizer fed identical gradients gives the same parameters;
- lockstep: same initial weights and batches, same losses and parameters after N steps
  in float32, as the study trains (the float64 replay beside it isolates the rules);
- data: both frameworks train on the shared arrays, and their own dataset loaders read
  the same pixels and labels as `compare/data.py`.

Tolerances come from `compare.spec.ParitySpec`. Both frameworks run in this one process;
`configure` sizes their thread pools before either runtime starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import socket
import tempfile
from unittest import mock

import numpy as np
from scipy.special import softmax

# isort: split
# The first torch optimizer imports torch._dynamo, which loads triton; triton loaded
# after TensorFlow crashes the process (segmentation fault, torch 2.14 + TF 2.21), so
# it is loaded here, before keras_impl brings TensorFlow in.
import torch._dynamo  # noqa: F401

# isort: split
import keras_impl as K
import pytorch_impl as T
from compare import data as data_mod
from compare import studies
from compare.spec import ExperimentSpec, ParitySpec

SCHEMA = "keras-vs-pytorch/parity/v1"
LEVELS = ("structure", "weights", "forward", "gradients", "optimizer", "lockstep", "data")


@dataclasses.dataclass
class Check:
    """One level's verdict: max differences are max|torch - keras| and that over max|torch|."""

    level: str
    passed: bool
    max_abs_diff: float
    max_rel_diff: float
    tolerance: dict
    detail: dict = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _differences(reference: list[np.ndarray], other: list[np.ndarray]) -> tuple[float, float]:
    """(max abs difference, max abs difference / max |reference|) over lists of arrays."""
    abs_diff, rel_diff = 0.0, 0.0
    for a, b in zip(reference, other, strict=True):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if a.size == 0:
            continue
        delta = float(np.max(np.abs(a - b)))
        scale = float(np.max(np.abs(a)))
        abs_diff = max(abs_diff, delta)
        rel_diff = max(rel_diff, delta / scale if scale > 0 else (0.0 if delta == 0 else np.inf))
    return abs_diff, rel_diff


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


def transplant(torch_model, keras_model) -> None:
    """Copy the torch model's weights into the Keras model, through the canonical layout."""
    K.set_weights(keras_model, T.get_weights(torch_model))


def build_pair(experiment: ExperimentSpec):
    """(torch model, Keras model) of one experiment, with the same (torch-initialised) weights."""
    torch_model = T.build_model(experiment.model)
    keras_model = K.build_model(experiment.model)
    transplant(torch_model, keras_model)
    return torch_model, keras_model


# --- the levels ----------------------------------------------------------------------


def check_structure(torch_model, keras_model, x: np.ndarray) -> Check:
    """Same parameter count, same canonical weight shapes, same output shape."""
    counts = (T.count_parameters(torch_model), K.count_parameters(keras_model))
    shapes = (
        [w.shape for w in T.get_weights(torch_model)],
        [w.shape for w in K.get_weights(keras_model)],
    )
    outputs = (T.predict(torch_model, x[:2], 2).shape, K.predict(keras_model, x[:2], 2).shape)
    passed = counts[0] == counts[1] and shapes[0] == shapes[1] and outputs[0] == outputs[1]
    return Check(
        "structure",
        passed,
        float(abs(counts[0] - counts[1])),
        float(abs(counts[0] - counts[1]) / max(counts[0], 1)),
        {"parameter_count": "equal", "shapes": "equal"},
        {
            "parameter_count": {"torch": counts[0], "keras": counts[1]},
            "output_shape": {"torch": list(outputs[0]), "keras": list(outputs[1])},
            "canonical_shapes": [list(s) for s in shapes[0]],
        },
    )


def check_weights(experiment: ExperimentSpec) -> Check:
    """Round trips torch -> canonical -> Keras -> canonical -> torch, and from Keras back."""
    torch_model, keras_model = T.build_model(experiment.model), K.build_model(experiment.model)
    start = T.get_weights(torch_model)
    K.set_weights(keras_model, start)
    via_keras = K.get_weights(keras_model)
    torch_again = T.build_model(experiment.model)
    T.set_weights(torch_again, via_keras)
    torch_trip = T.get_weights(torch_again)

    keras_start = K.get_weights(K.build_model(experiment.model))
    T.set_weights(torch_again, keras_start)
    keras_again = K.build_model(experiment.model)
    K.set_weights(keras_again, T.get_weights(torch_again))
    keras_trip = K.get_weights(keras_again)

    exact = all(
        a.dtype == b.dtype and np.array_equal(a, b)
        for a, b in [
            *zip(start, via_keras, strict=True),
            *zip(start, torch_trip, strict=True),
            *zip(keras_start, keras_trip, strict=True),
        ]
    )
    abs_diff, rel_diff = _differences(start + keras_start, torch_trip + keras_trip)
    return Check("weights", exact, abs_diff, rel_diff, {"exact": True}, {"arrays": len(start)})


def check_forward(torch_model, keras_model, x: np.ndarray, parity: ParitySpec) -> Check:
    """Same logits and probabilities in inference mode (the Keras model holds torch's weights)."""
    logits = T.predict(torch_model, x, len(x)), K.predict(keras_model, x, len(x))
    probabilities = softmax(logits[0].astype(np.float64), axis=1), softmax(logits[1], axis=1)
    close = all(
        np.allclose(other, reference, rtol=parity.forward_rtol, atol=parity.forward_atol)
        for reference, other in (logits, probabilities)
    )
    abs_diff, rel_diff = _differences([logits[0], probabilities[0]], [logits[1], probabilities[1]])
    return Check(
        "forward",
        close,
        abs_diff,
        rel_diff,
        {"rtol": parity.forward_rtol, "atol": parity.forward_atol},
        {
            "examples": len(x),
            "logits_max_abs_diff": _differences([logits[0]], [logits[1]])[0],
            "probabilities_max_abs_diff": _differences([probabilities[0]], [probabilities[1]])[0],
        },
    )


def check_gradients(torch_model, keras_model, x, y, parity: ParitySpec) -> Check:
    """Same training-mode loss, and per tensor |delta| <= rtol * max|g| + atol."""
    torch_loss, torch_grads = T.loss_and_gradients(torch_model, x, y)
    keras_loss, keras_grads = K.loss_and_gradients(keras_model, x, y)
    loss_diff = abs(torch_loss - keras_loss)
    passed = loss_diff <= parity.loss_atol
    tensors = []
    for index, (reference, other) in enumerate(zip(torch_grads, keras_grads, strict=True)):
        scale = float(np.max(np.abs(reference)))
        delta = float(np.max(np.abs(reference.astype(np.float64) - other)))
        # A parameter whose true gradient is zero has nothing to compare but rounding.
        skipped = scale == 0.0
        ok = skipped or delta <= parity.gradient_rtol * scale + parity.gradient_atol
        passed = passed and ok and reference.shape == other.shape
        tensors.append(
            {"index": index, "max_abs": scale, "max_abs_diff": delta, "ok": ok, "skipped": skipped}
        )
    abs_diff, rel_diff = _differences(torch_grads, keras_grads)
    return Check(
        "gradients",
        passed,
        max(abs_diff, loss_diff),
        rel_diff,
        {
            "loss_atol": parity.loss_atol,
            "per_tensor": f"|delta| <= {parity.gradient_rtol} * max|g| + {parity.gradient_atol}",
        },
        {
            "examples": len(x),
            "loss": {"torch": torch_loss, "keras": keras_loss},
            "loss_abs_diff": loss_diff,
            "tensors": tensors,
        },
    )


def _parameter_gap(torch_model, keras_model) -> float:
    """max |torch - keras| over all parameters, in the canonical layout."""
    return _differences(T.get_weights(torch_model), K.get_weights(keras_model))[0]


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
    abs_diff, rel_diff = _differences(T.get_weights(torch_model), K.get_weights(keras_model))
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
            floor[str(step)] = _differences(*(T.get_weights(m) for m in models))[0]
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
    abs_diff, rel_diff = _differences(*float32["weights"])
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


@contextlib.contextmanager
def no_network():
    """Any connection attempt in the block raises: the loaders must use local files."""

    def refuse(*args, **kwargs):
        raise OSError("network access is disabled during the parity data check")

    with mock.patch.object(socket.socket, "connect", refuse):
        yield


def check_loaders(data_dir: str | None = None) -> dict:
    """torchvision's and keras.datasets' Fashion-MNIST against `compare/data.py`, bitwise.

    Both read copies of the same local files in a temporary directory, with the network
    disabled. Returns, per framework, whether every array matched and how many differ.
    """
    raw = data_mod.load_raw(data_dir)
    expected = ((raw.train_images, raw.train_labels), (raw.test_images, raw.test_labels))
    source = data_mod.locate(data_dir)
    outcome = {}
    for impl in (T, K):
        with tempfile.TemporaryDirectory() as scratch, no_network():
            loaded = impl.load_fashion_mnist(source, pathlib.Path(scratch))
        # (ours, theirs) for train images, train labels, test images, test labels.
        pairs = [
            pair
            for ours, theirs in zip(expected, loaded, strict=True)
            for pair in zip(ours, theirs, strict=True)
        ]
        outcome[impl.FRAMEWORK] = {
            "identical": all(a.shape == b.shape and np.array_equal(a, b) for a, b in pairs),
            "differing_values": int(
                sum(np.count_nonzero(a != b) if a.shape == b.shape else a.size for a, b in pairs)
            ),
        }
    return outcome


def check_data(experiment: ExperimentSpec, shared: data_mod.SharedData, loaders: dict) -> Check:
    """Each framework's training input path yields the shared split bitwise; loaders agree."""
    fed = {}
    for impl in (T, K):
        batches = list(
            impl.training_batches(shared.x_train, shared.y_train, experiment.train.batch_size)
        )
        x = np.concatenate([np.asarray(bx) for bx, _ in batches])
        y = np.concatenate([np.asarray(by) for _, by in batches])
        fed[impl.FRAMEWORK] = {
            "identical": bool(
                x.dtype == shared.x_train.dtype
                and y.dtype == shared.y_train.dtype
                and np.array_equal(x, shared.x_train)
                and np.array_equal(y, shared.y_train)
            ),
            "max_abs_diff": _differences([shared.x_train], [x])[0]
            if x.shape == shared.x_train.shape
            else np.inf,
        }
    passed = all(f["identical"] for f in fed.values()) and all(
        loader["identical"] for loader in loaders.values()
    )
    abs_diff = max(f["max_abs_diff"] for f in fed.values())
    return Check(
        "data",
        passed,
        abs_diff,
        abs_diff / float(np.max(np.abs(shared.x_train))),
        {"exact": True},
        {
            "split_manifest_hash": shared.manifest_hash,
            "training_inputs": fed,
            "dataset_loaders": loaders,
        },
    )


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
        "levels": [c.to_dict() for c in checks],
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
    return {
        "schema": SCHEMA,
        "passed": all(m["passed"] for m in models),
        "levels": list(LEVELS),
        "models": models,
        "defaults": defaults.table(experiments),
        "parity_spec": dataclasses.asdict(parity),
        "threads": threads_in_effect,
    }


def format_table(report: dict) -> str:
    """A plain-text table: one line per model and level, then the verdict."""
    lines = [f"{'model':14s} {'level':10s} {'ok':4s} {'max abs':>10s} {'max rel':>10s}  tolerance"]
    for model in report["models"]:
        for check in model["levels"]:
            tolerance = ", ".join(f"{k} {v}" for k, v in check["tolerance"].items())
            lines.append(
                f"{model['experiment']:14s} {check['level']:10s} "
                f"{'yes' if check['passed'] else 'NO':4s} {check['max_abs_diff']:10.2e} "
                f"{check['max_rel_diff']:10.2e}  {tolerance}"
            )
        for note in model["notes"]:
            lines.append(f"{'':14s} note: {note}")
        if "native_adam" in model:
            steps = report["parity_spec"]["steps"]
            lines.append(
                f"{'':14s} stock Adam on both sides: max |delta param| "
                f"{model['native_adam']['max_abs_diff']:.2e} after {steps} steps"
            )
    failed = [m["experiment"] for m in report["models"] if not m["passed"]]
    lines.append(
        "parity: " + (f"FAILED for {', '.join(failed)}" if failed else "all checks passed")
    )
    return "\n".join(lines)
