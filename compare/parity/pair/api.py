"""The parity proof for any torch module and Keras model: `check_pair` and
`assert_same_model` (re-exported by `compare.parity.pair`).

    report = check_pair(torch_model, keras_model, x, y=y, loss="cross_entropy",
                        optimizers=Optimizers(lambda m: torch.optim.SGD(m.parameters(), 0.1),
                                              lambda: keras.optimizers.SGD(0.1)))
    assert_same_model(torch_model, keras_model, x, ...)   # AssertionError naming the layer

`x` is in torch's layout (N, C, H, W); Keras gets it channels-last when its input says
so. Levels: structure, weights, forward (per layer), and with targets, a loss and both
optimizers, gradients, optimizer and lockstep. Torch's weights are copied into the
Keras model (both models end holding torch's starting weights).

Stage: parity.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import numpy as np

from compare.parity import select
from compare.parity.pair import layer_defaults, mapping
from compare.parity.pair import levels as pair_levels
from compare.parity.pair.lockstep import check_lockstep
from compare.parity.pair.result import Check
from compare.spec.identity import implementation_name
from compare.spec.schema import ParitySpec

SCHEMA = "keras-vs-pytorch/parity/v1"
PAIR_LEVELS = select.PAIR_LEVELS


@dataclasses.dataclass(frozen=True)
class Loss:
    """One loss on both sides: torch(output, target) and Keras's (y_true, y_pred)."""

    name: str
    torch: Callable
    keras: Callable | object


def loss_named(name: str) -> Loss:
    """cross_entropy (logits, integer labels), nll (log-probabilities), mse."""
    import keras
    import torch.nn.functional as F

    def keras_nll(y_true, log_probabilities):
        labels = keras.ops.expand_dims(keras.ops.cast(y_true, "int32"), -1)
        return -keras.ops.take_along_axis(log_probabilities, labels, axis=-1)[:, 0]

    losses = {
        "cross_entropy": Loss(
            "cross_entropy",
            lambda out, y: F.cross_entropy(out, y.long()),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        ),
        "nll": Loss("nll", lambda out, y: F.nll_loss(out, y.long()), keras_nll),
        "mse": Loss("mse", F.mse_loss, keras.losses.MeanSquaredError()),
    }
    if name not in losses:
        raise ValueError(f"unknown loss '{name}' (known: {', '.join(losses)}, or a Loss)")
    return losses[name]


@dataclasses.dataclass(frozen=True)
class Optimizers:
    """Fresh optimizers for each training level: torch(model) and keras()."""

    torch: Callable
    keras: Callable


@dataclasses.dataclass
class ParityReport:
    """`check_pair`'s answer, in `parity.json`'s shape (`as_dict()`)."""

    name: str
    entry: dict
    report: dict

    @property
    def passed(self) -> bool:
        return self.entry["passed"]

    @property
    def first_failure(self) -> str | None:
        """'level: where the two part', the first failing level's; None when all pass."""
        for check in self.entry["checks"]:
            if not check["passed"]:
                detail = self.entry["details"][check["name"]]
                return f"{check['name']}: {detail.get('first_failure') or 'failed'}"
        return None

    def as_dict(self) -> dict:
        return self.report

    def to_json(self) -> str:
        from compare import files

        return json.dumps(files.finite_or_none(self.report), indent=2, default=str)


def check_pair(
    torch_model,
    keras_model,
    x: np.ndarray,
    y: np.ndarray | None = None,
    loss: str | Loss | None = None,
    optimizers: Optimizers | None = None,
    name: str = "pair",
    mapping_names: dict[str, str] | None = None,
    parity: ParitySpec | None = None,
    levels: tuple[str, ...] = PAIR_LEVELS,
) -> ParityReport:
    """Check that `torch_model` and `keras_model` are the same model, level by level."""
    import keras

    parity = parity or ParitySpec()
    x = np.asarray(x)
    if x.dtype == np.float64:
        x = x.astype(np.float32)
    x_keras = pair_levels.keras_input(keras_model, x, torch_model)
    if not keras_model.built:
        keras_model(x_keras[:1])
    loss = loss_named(loss) if isinstance(loss, str) else loss
    checks, notes, rows = [], [], []
    try:
        pairs = mapping.transplant(torch_model, keras_model, mapping_names)
    except mapping.MappingError as error:
        checks.append(
            Check("structure", False, float("inf"), float("inf"), {}, {"first_failure": str(error)})
        )
        return _report(name, keras.backend.backend(), checks, notes, rows, parity)
    rows = layer_defaults.detect(pairs)
    training = y is not None and loss is not None and optimizers is not None
    if not training:
        notes.append("gradients, optimizer and lockstep need y, loss and optimizers: not run")
    run = {
        "structure": lambda: pair_levels.check_structure(
            pairs, torch_model, keras_model, x, x_keras
        ),
        "weights": lambda: pair_levels.check_weights(pairs),
        "forward": lambda: pair_levels.check_forward(
            pairs, torch_model, keras_model, x, x_keras, parity, rows
        ),
        "gradients": lambda: pair_levels.check_gradients(
            pairs, torch_model, keras_model, loss, x, x_keras, y, parity
        ),
        "optimizer": lambda: pair_levels.check_optimizer(
            pairs, torch_model, keras_model, loss, optimizers, x, y, parity
        ),
        "lockstep": lambda: check_lockstep(
            pairs, torch_model, keras_model, loss, optimizers, x, x_keras, y, parity
        ),
    }
    for level in PAIR_LEVELS:
        if level in levels and (training or level in ("structure", "weights", "forward")):
            checks.append(run[level]())
    return _report(name, keras.backend.backend(), checks, notes, rows, parity)


def _report(name, backend, checks, notes, rows, parity) -> ParityReport:
    entry_name = f"{name}/{implementation_name('keras', backend)}"  # mlp/keras, mlp/keras_jax
    entry = {
        "experiment": entry_name,
        "keras_backend": backend,
        "passed": bool(checks) and all(c.passed for c in checks),
        "notes": notes,
        "checks": [c.summary() for c in checks],
        "details": {c.name: c.detail for c in checks},
        "layer_defaults": rows,
    }
    report = {
        "schema": SCHEMA,
        "passed": entry["passed"],
        "levels": [c.name for c in checks],
        "models": {entry_name: entry},
        "defaults": rows,
        "parity_spec": dataclasses.asdict(parity),
    }
    return ParityReport(entry_name, entry, report)


def assert_same_model(torch_model, keras_model, x, **kwargs) -> ParityReport:
    """`check_pair`, raising AssertionError that names the first level and the layer (or
    step and tensor) where the two models part, by how much; returns the report."""
    report = check_pair(torch_model, keras_model, x, **kwargs)
    if not report.passed:
        differing = [
            f"{r['torch_layer']}/{r['keras_layer']} {r['setting']}: torch {r['torch']}, "
            f"keras {r['keras']}"
            for r in report.entry["layer_defaults"]
            if not r["intrinsic"]
        ]
        message = f"{report.name} is not the same model: {report.first_failure}"
        if differing:
            message += "\nlayer settings that differ: " + "; ".join(differing)
        raise AssertionError(message)
    return report
