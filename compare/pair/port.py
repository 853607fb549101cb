"""`port_weights`: a model's weights copied into its port, in either direction, proven
the same model, and saved only once the proof passes.

    ported = port_weights(torch_model, keras_model, x)          # torch -> Keras
    ported = port_weights(keras_model, torch_model, x)          # Keras -> torch
    ported.save("model.weights.h5")                             # or "model.pt"
    load_ported(fresh_keras_model, "model.weights.h5")          # checked against its record

The source is the user's original, the target its port: the target's weights are
replaced by the source's, through every converter the engine (or the user) registered,
then the levels run, forward by default and all six when targets, a loss and optimizers
are given. Inputs are in torch's layout whatever the direction (`keras_inputs=` gives
Keras's own). With Keras as the source, Keras is the reference: the report names its
layers first.

Stage: pair.
"""

from __future__ import annotations

import dataclasses

from compare.pair import api, saved
from compare.pair.levels import LEVELS
from compare.pair.report import ParityReport

FORWARD_LEVELS = LEVELS[:3]  # structure, weights, forward


@dataclasses.dataclass
class Ported:
    """The target carrying the source's weights, and the proof that it is the same model."""

    model: object
    source: object
    report: ParityReport

    @property
    def passed(self) -> bool:
        return self.report.passed

    @property
    def to(self) -> str:
        return saved.framework_of(self.model)

    def save(self, path, force: bool = False) -> dict:
        """Write the weights and their record (`saved`); refused when the proof failed
        unless `force`. Returns the record."""
        return saved.save(self, path, force)


def port_weights(
    source, target, example_inputs, y=None, loss=None, optimizers=None, *, levels=None, **options
) -> Ported:
    """Copy `source`'s weights into `target` (one torch module and one Keras model, in
    the direction the weights go) and check the pair; `options` are `check_pair`'s
    (keras_inputs, input_names, output, keras_output, mapping_names, spec, name, repro)."""
    import keras
    import torch

    if isinstance(source, torch.nn.Module) and isinstance(target, keras.Layer):
        torch_model, keras_model, weights = source, target, "to_keras"
    elif isinstance(source, keras.Layer) and isinstance(target, torch.nn.Module):
        torch_model, keras_model, weights = target, source, "to_torch"
    else:
        raise TypeError(
            f"port_weights(source, target, inputs): got a {type(source).__name__} and a "
            f"{type(target).__name__}: give one torch module and one Keras model, the one "
            "whose weights are copied first"
        )
    if "weights" in options:
        raise TypeError("port_weights copies the weights itself: drop weights=")
    training = y is not None and loss is not None and optimizers is not None
    chosen = tuple(levels) if levels is not None else (LEVELS if training else FORWARD_LEVELS)
    report = api.check_pair(
        torch_model,
        keras_model,
        example_inputs,
        y=y if training else None,
        loss=loss if training else None,
        optimizers=optimizers if training else None,
        weights=weights,
        levels=chosen,
        **options,
    )
    return Ported(target, source, report)


def load_ported(model, path) -> dict:
    """Load weights `Ported.save` wrote into `model`, checked against their record (its
    file hash, framework and weights); returns the record. Raises `PortFileError`."""
    return saved.load(model, path)
