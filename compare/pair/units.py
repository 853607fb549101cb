"""The units of each side: the torch modules and Keras layers a converter knows, the
functional torch operations the trace sees, and the layer pairs they form.

A unit is what one converter handles: a Linear, an LSTM layer (one per `num_layers`),
an `nn.MultiheadAttention` with its out_proj, a Keras `Dense` or `MultiHeadAttention`.
Modules with weights that no converter knows are collected by name (a refusal names
them); modules holding only buffers that are not weights (Hugging Face's `position_ids`)
never block.

Stage: pair.
"""

from __future__ import annotations

import contextvars
import dataclasses

import numpy as np

from compare.pair import registry

# The side a report names first: the user's original, torch unless they port a Keras
# model's weights into torch.
REFERENCE: contextvars.ContextVar[str] = contextvars.ContextVar("reference", default="torch")


@dataclasses.dataclass(eq=False)
class Unit:
    """One side's unit. `obj` is the module, Keras layer, `FunctionalOp` or
    `FusedActivation`; `part` tells apart the units one module makes (an LSTM's layers)."""

    side: str
    name: str
    obj: object
    converters: list
    part: str = ""
    # The Keras layer this unit is a sublayer of when it stands in for an expandable
    # layer (MultiHeadAttention's query/key/value/output projections).
    expands: Unit | None = None
    calls: list = dataclasses.field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.converters[0].kind

    @property
    def weighted(self) -> bool:
        return self.converters[0].weighted

    @property
    def type_name(self) -> str:
        return getattr(self.obj, "type_name", type(self.obj).__name__)

    @property
    def order(self) -> int:
        """When the unit's first call completed (execution order); units never called
        sort last."""
        return self.calls[0].order if self.calls else 1 << 30

    def label(self) -> str:
        return f"{self.name} ({self.type_name})"


@dataclasses.dataclass(eq=False)
class FunctionalOp:
    """A torch function called outside any unit (`F.gelu`, `F.interpolate`), seen by the
    trace: a weightless unit with the call's settings."""

    function: str
    settings: dict
    enclosing: str

    @property
    def type_name(self) -> str:
        return f"F.{self.function}"


@dataclasses.dataclass(eq=False)
class FusedActivation:
    """The activation a Keras Dense or convolution applies itself (`activation="relu"`):
    a weightless unit after the layer, whose output is the layer's."""

    layer: object

    @property
    def activation(self):
        return self.layer.activation

    @property
    def type_name(self) -> str:
        return f"{type(self.layer).__name__}.activation"


@dataclasses.dataclass(eq=False)
class LayerPair:
    """A torch unit and the Keras unit computing the same thing, with their converter.
    `how` says what paired them (mapping, name, execution order)."""

    torch_unit: Unit
    keras_unit: Unit
    converter: registry.Converter
    how: str = "order"
    # Converter-specific facts found at pairing (a Flatten's (H, W, C) before a Dense).
    context: dict = dataclasses.field(default_factory=dict)

    @property
    def torch_module(self):
        return self.torch_unit.obj

    @property
    def keras_layer(self):
        return self.keras_unit.obj

    @property
    def torch_name(self) -> str:
        return self.torch_unit.name

    @property
    def keras_name(self) -> str:
        return self.keras_unit.name

    @property
    def part(self) -> str:
        return self.torch_unit.part

    @property
    def kind(self) -> str:
        return self.converter.kind

    @property
    def torch_call(self):
        return self.torch_unit.calls[0] if self.torch_unit.calls else None

    @property
    def keras_call(self):
        return self.keras_unit.calls[0] if self.keras_unit.calls else None

    @property
    def keras_layout(self) -> str:
        from compare.pair import layout

        return layout.keras_layout(self.keras_layer)

    def label(self) -> str:
        """`layer1.0.bn1 (BatchNorm2d) / bn1 (BatchNormalization)`, the reference first."""
        if REFERENCE.get() == "keras":
            return f"{self.keras_unit.label()} / {self.torch_unit.label()}"
        return f"{self.torch_unit.label()} / {self.keras_unit.label()}"

    # Weights, through the converter.
    def torch_arrays(self) -> dict[str, np.ndarray]:
        return self.converter.torch_arrays(self)

    def to_keras(self, arrays: dict) -> list[np.ndarray]:
        return [np.asarray(a) for a in self.converter.to_keras(self, arrays)]

    def to_torch(self, weights: list) -> dict[str, np.ndarray]:
        return self.converter.to_torch(self, [np.asarray(w) for w in weights])

    def keras_weights(self) -> list:
        """The Keras unit's weight variables, in the converter's order."""
        return list(self.keras_layer.weights)


@dataclasses.dataclass
class Sides:
    """Both sides' units, and what keeps a side from being paired."""

    torch: list[Unit]
    keras: list[Unit]
    # (name, type, tensor names) of modules/layers with weights no converter knows.
    torch_unknown: list[tuple[str, str, list[str]]]
    keras_unknown: list[tuple[str, str, list[str]]]
    # (module name, buffer name, shape, dtype) of buffers that are not weights.
    torch_buffers: list[tuple[str, str, tuple, str]]


def torch_units(model) -> tuple[list[Unit], list, list]:
    """Every torch unit in registration order, the unknown weighted modules, the buffers."""
    units, unknown, buffers, claimed = [], [], [], []
    for name, module in model.named_modules():
        if any(c == "" or name.startswith(c + ".") for c in claimed):
            continue
        found = registry.candidates(module, "torch")
        params = [n for n, _ in module.named_parameters(recurse=False)]
        own_buffers = [
            (n, b)
            for n, b in module.named_buffers(recurse=False)
            if not n.endswith("num_batches_tracked")
        ]
        if found:
            for part in found[0].torch_parts(module):
                units.append(
                    Unit("torch", name + part if name else part or "<model>", module, found, part)
                )
            if found[0].owns_children:
                claimed.append(name)
            continue
        if params:
            unknown.append((name or "<model>", type(module).__name__, params))
        for buffer_name, buffer in own_buffers:
            buffers.append((name or "<model>", buffer_name, tuple(buffer.shape), str(buffer.dtype)))
    return units, unknown, buffers


def has_weights(unit: Unit) -> bool:
    converter = unit.converters[0]
    if not converter.weighted:
        return False
    obj = unit.obj
    if unit.side == "keras":
        return bool(getattr(obj, "weights", []))
    if hasattr(obj, "state_dict") and not hasattr(obj, "named_parameters"):
        return True  # a torch unit of two modules
    if converter.owns_children:
        return any(True for _ in obj.state_dict())
    own = list(obj.named_parameters(recurse=False)) + list(obj.named_buffers(recurse=False))
    return bool(own)


def own_weights(layer) -> list:
    """The Keras layer's own variables (not its sublayers'), seed states excluded."""
    inner = {id(v) for sub in _children(layer) for v in sub.weights}
    return [v for v in layer.weights if id(v) not in inner]


def _children(layer) -> list:
    try:
        return list(layer._flatten_layers(include_self=False, recursive=False))
    except AttributeError:
        return []


def keras_units(model) -> tuple[list[Unit], list]:
    """Every Keras unit in tracking order (nested models and layers without a converter
    expanded), fused activations after their layer, and the unknown weighted layers."""
    units, unknown = [], []

    def visit(layer, path, expands=None):
        found = registry.candidates(layer, "keras")
        if found:
            unit = Unit("keras", path, layer, found, expands=expands)
            units.append(unit)
            if _fused_activation(layer):
                activation = FusedActivation(layer)
                units.append(
                    Unit(
                        "keras",
                        f"{path}.activation",
                        activation,
                        registry.candidates(activation, "keras"),
                        expands=expands,
                    )
                )
            if found[0].expandable:
                for sub in _children(layer):
                    visit(sub, f"{path}/{sub.name}", expands=unit)
            return
        weights = own_weights(layer)
        if weights:
            unknown.append((path, type(layer).__name__, [_short(v) for v in weights]))
        for sub in _children(layer):
            visit(sub, f"{path}/{sub.name}" if path else sub.name, expands)

    if registry.candidates(model, "keras"):
        visit(model, model.name)
    else:
        for sub in _children(model):
            visit(sub, sub.name)
    return units, unknown


def _short(variable) -> str:
    return getattr(variable, "path", getattr(variable, "name", "?")).split("/")[-1]


def _fused_activation(layer) -> bool:
    activation = getattr(layer, "activation", None)
    if activation is None or not callable(activation):
        return False
    if registry.kind_of(layer, "keras") not in ("dense", "conv", "conv_transpose", "separable"):
        return False
    return getattr(activation, "__name__", "") != "linear"


def sides(torch_model, keras_model) -> Sides:
    torch_side, torch_unknown, buffers = torch_units(torch_model)
    keras_side, keras_unknown = keras_units(keras_model)
    return Sides(torch_side, keras_side, torch_unknown, keras_unknown, buffers)
