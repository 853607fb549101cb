"""One check's state: both models, their inputs, units and pairing, and the runs every
level makes of each side (inference or training, float32 or a float64 copy of torch),
each returning the compared output and every unit's calls.

Stage: pair.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses

import numpy as np

from compare.pair import frameworks, io, trace, units
from compare.pair.layers.conv import SeparablePair
from compare.pair.matching import Pairing
from compare.pair.spec import PairSpec
from compare.pair.units import FunctionalOp, Unit


@dataclasses.dataclass
class Session:
    torch_model: object
    keras_model: object
    inputs: io.Inputs
    y: np.ndarray | None
    loss: object
    optimizers: object
    spec: PairSpec
    sides: units.Sides
    pairing: Pairing
    output: object = None
    keras_output: object = None
    # The user ported the weights themselves (`weights='as_given'`): nothing is copied.
    as_given: bool = False
    notes: list = dataclasses.field(default_factory=list)
    # The functional torch operations of the last traced run of the model itself.
    functional: list = dataclasses.field(default_factory=list)
    # The first layer pair the forward level found parting (None: none did).
    parted: object = None

    @property
    def training(self) -> bool:
        return self.y is not None and self.loss is not None and self.optimizers is not None

    # --- the units a run traces ---------------------------------------------------------

    def torch_units(self) -> list[Unit]:
        """The torch units of the pairing (separable merges included), as traced."""
        out = [p.torch_unit for p in self.pairing.pairs]
        out += [u for u in self.pairing.unpaired if u.side == "torch"]
        out += [u for u, _ in self.pairing.absorbed]
        seen, unique = set(), []
        for unit in out + (self.pairing.torch_units or self.sides.torch):
            if id(unit) not in seen and not isinstance(unit.obj, FunctionalOp):
                seen.add(id(unit))
                unique.append(unit)
                if isinstance(unit.obj, SeparablePair):  # its modules are what runs
                    for inner in (unit.obj.depthwise_unit, unit.obj.pointwise_unit):
                        if id(inner) not in seen:
                            seen.add(id(inner))
                            unique.append(inner)
        return unique

    def keras_units(self) -> list[Unit]:
        out = [p.keras_unit for p in self.pairing.pairs] + (
            self.pairing.keras_units or self.sides.keras
        )
        seen, unique = set(), []
        for unit in out:
            if id(unit) not in seen:
                seen.add(id(unit))
                unique.append(unit)
        return unique

    def random_units(self, side: str, unit_list=None) -> list[Unit]:
        """The units with randomness in training: dropout-like layers, and the layers
        with a dropout of their own (recurrent, attention)."""
        found = (
            unit_list
            if unit_list is not None
            else (self.torch_units() if side == "torch" else self.keras_units())
        )
        found = sorted(found, key=lambda u: u.order)
        return [
            u
            for u in found
            if any(c.random or c.kind in ("recurrent", "attention") for c in u.converters)
        ]

    # --- runs ---------------------------------------------------------------------------

    def torch_copy(self, float64: bool):
        """(a float64 deep copy of the torch model, its units by name)."""
        model = copy.deepcopy(self.torch_model)
        if float64:
            model = model.double()
        fresh = {u.name: u for u in units.torch_units(model)[0]}
        mine = []
        for unit in self.torch_units():
            if isinstance(unit.obj, SeparablePair):
                obj = SeparablePair(
                    fresh[unit.obj.depthwise_unit.name], fresh[unit.obj.pointwise_unit.name]
                )
                mine.append(Unit("torch", unit.name, obj, unit.converters))
            elif unit.name in fresh:
                mine.append(fresh[unit.name])
        return model, mine

    def run_torch(self, model=None, unit_list=None, float64=False, record=True):
        """Inference: (compared output, {unit name: calls})."""
        import torch

        model = model if model is not None else self.torch_model
        unit_list = unit_list if unit_list is not None else self.torch_units()
        model.eval()
        with torch.no_grad():
            if not record:
                with trace.no_fast_path():
                    raw = self.inputs.torch_call(model, float64)
                return trace.to_numpy(io.select(raw, self.output)), {}
            raw, functional = trace.torch_pass(
                model, unit_list, lambda: self.inputs.torch_call(model, float64)
            )
        if model is self.torch_model:
            self.functional = functional
        calls = {u.name: list(u.calls) for u in unit_list}
        calls.update({u.name: list(u.calls) for u in functional})
        for unit in unit_list:  # a separable pair: the depthwise's input, the pointwise's output
            if isinstance(unit.obj, SeparablePair):
                first = calls.get(unit.obj.depthwise_unit.name, [])
                last = calls.get(unit.obj.pointwise_unit.name, [])
                calls[unit.name] = [
                    dataclasses.replace(b, start=a.start, input_id=a.input_id, inputs=a.inputs)
                    for a, b in zip(first, last, strict=False)
                ]
                unit.calls = calls[unit.name]
        return trace.to_numpy(io.select(raw, self.output)), calls

    def run_keras(self, record=True):
        unit_list = self.keras_units()
        if not record:
            raw = self.inputs.keras_call(self.keras_model, training=False)
            return trace.to_numpy(io.select(raw, self.keras_output)), {}
        raw = trace.keras_pass(
            self.keras_model, unit_list, lambda: self.inputs.keras_call(self.keras_model)
        )
        return trace.to_numpy(io.select(raw, self.keras_output)), {
            u.name: list(u.calls) for u in unit_list
        }

    @contextlib.contextmanager
    def no_randomness(self, torch_units=None):
        """Both sides' dropout and stochastic depth off (the training levels)."""
        torch_random = torch_units if torch_units is not None else self.random_units("torch")
        with (
            frameworks.switched_off(torch_random),
            frameworks.switched_off(self.random_units("keras")),
            frameworks.no_torch_randomness(),
        ):
            yield

    def torch_loss(self, model, float64=False, inputs=None, y=None):
        """The training-mode loss of a batch (the whole given batch by default)."""
        import torch

        inputs = inputs or self.inputs
        y = self.y if y is None else y
        model.train()
        output = io.select(inputs.torch_call(model, float64), self.output)
        target = torch.as_tensor(np.ascontiguousarray(y))
        if float64 and target.is_floating_point():
            target = target.double()
        return self.loss.torch(output, target)

    def keras_targets(self, y):
        """Targets in Keras's layout: a dense target (N, C, H, W) as the output it is
        compared with, channels last where Keras's output is."""
        from compare.pair import layout
        from compare.pair.levels.structure import last_layouts

        y = np.asarray(y)
        if y.ndim < 3 or not np.issubdtype(y.dtype, np.floating):
            return y
        return np.ascontiguousarray(layout.moved(y, *last_layouts(self)))

    def keras_loss_of(self, inputs=None, y=None):
        import keras

        inputs = inputs or self.inputs
        y = self.keras_targets(self.y if y is None else y)

        def loss_of(call):
            output = io.select(call(inputs.keras_inputs, training=True), self.keras_output)
            return keras.ops.mean(self.loss.keras(y, output))

        return loss_of


def unit_parameters(pair, module_owner=None) -> dict:
    """{name: parameter} of a pair's torch unit, named as its converter's arrays."""
    obj = pair.torch_module
    if isinstance(obj, SeparablePair):
        found = {f"depthwise.{n}": p for n, p in obj.depthwise.named_parameters()}
        return found | {f"pointwise.{n}": p for n, p in obj.pointwise.named_parameters()}
    recurse = pair.converter.owns_children
    found = dict(obj.named_parameters(recurse=recurse))
    keys = set(pair.torch_arrays())
    return {n: p for n, p in found.items() if n in keys}
