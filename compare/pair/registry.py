"""Converters: how one torch module and one Keras layer hold the same weights, and which
of their settings must agree. The built-in ones live in `compare.pair.layers`; a user
registers their own the same way (nobuco's `@converter(...)` is the model):

    from compare import pair

    @pair.converter("mylib.Scale", "mylib_keras.Scale")      # classes, or dotted names
    class ScaleConverter(pair.Converter):
        kind = "scale"

        def to_keras(self, layer_pair, arrays):              # {torch name: array}
            return [arrays["scale"]]                           # the Keras layer's weights
        def to_torch(self, layer_pair, weights):
            return {"scale": weights[0]}
        def settings(self, layer_pair):
            return [pair.Setting("epsilon", layer_pair.torch_module.eps,
                                 layer_pair.keras_layer.epsilon)]

Types match by `isinstance` (a subclass of a registered module is that module), the most
specific registration winning and a user's over a built-in one. Nothing here imports a
framework: dotted names resolve when a check runs.

Stage: pair.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable

import numpy as np


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting of a layer pair in each framework's own words. `same` is whether they
    compute alike (by default: equal values); `effect` says what a difference does;
    `intrinsic` marks a difference no setting removes (the levels account for it).
    A `decisive` difference makes them other models whatever the numbers show on the
    inputs given (a GELU approximation invisible on small activations), so the
    structure level fails on it; a difference that the rest of the port may make up for
    (torch's padding_idx, which a Keras port masks) is not decisive."""

    name: str
    torch: object
    keras: object
    same: bool | None = None
    effect: str = ""
    intrinsic: bool = False
    decisive: bool = True

    @property
    def differs(self) -> bool:
        if self.same is not None:
            return not self.same
        return not _equal(self.torch, self.keras)


def _equal(a, b) -> bool:
    if isinstance(a, (int, float, np.floating, np.integer)) and isinstance(
        b, (int, float, np.floating, np.integer)
    ):
        return bool(np.isclose(float(a), float(b), rtol=1e-9, atol=0.0))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


class Converter:
    """The conversion of one layer pair, overridden per kind. Every method gets the
    `LayerPair` (`torch_module`, `keras_layer`, names, and the traced calls with input
    shapes and keyword arguments)."""

    kind = "layer"
    # False for layers with no weights (activations, pooling): paired for the forward
    # comparison and their settings only.
    weighted = True
    # The torch module's children are part of this unit (nn.MultiheadAttention's
    # out_proj), and so are the Keras layer's sublayers.
    owns_children = True
    # Dropout-like: random in training; switched off on both sides by the training
    # levels, its rate compared.
    random = False
    # False where the two outputs are not the same quantity (a torch block holding a
    # layer scale against Keras's LayerScale layer): listed as not compared.
    outputs_comparable = True
    # A Keras layer that may instead be paired through its sublayers (MultiHeadAttention
    # against separate query/key/value projections).
    expandable = False

    def torch_arrays(self, pair) -> dict[str, np.ndarray]:
        """The torch tensors this unit holds, by state_dict name (not num_batches_tracked)."""
        state = pair.torch_module.state_dict(keep_vars=False)
        return {
            name: tensor.detach().cpu().numpy().copy()
            for name, tensor in state.items()
            if not name.endswith("num_batches_tracked")
        }

    def to_keras(self, pair, arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError(f"{type(self).__name__} converts no weights")

    def to_torch(self, pair, weights: list[np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError(f"{type(self).__name__} converts no weights")

    def gradients_to_keras(self, pair, gradients: dict[str, np.ndarray]) -> list[np.ndarray]:
        """torch's gradients in the Keras layer's layout (zeros where torch has none)."""
        full = self.torch_arrays(pair)
        filled = {k: np.asarray(gradients.get(k, np.zeros_like(v))) for k, v in full.items()}
        return self.to_keras(pair, filled)

    def round_trip(self, pair, original: dict, back: dict) -> list[str]:
        """Names of the torch tensors that do not come back from Keras exactly."""
        return [
            name
            for name, value in back.items()
            if name not in original
            or value.shape != original[name].shape
            or not np.array_equal(value, original[name])
        ]

    def prepare(self, pair) -> None:
        """Note in `pair.context` what the conversion needs from the graph (a Dense after
        a Flatten of an (H, W, C) map: its rows come in torch's (C, H, W) order)."""

    def settings(self, pair) -> list[Setting]:
        return []

    def structure_problems(self, pair) -> list[str]:
        """What makes the pair another model whatever the weights (a Bidirectional that
        sums its directions where torch concatenates)."""
        return []

    def compared(self, pair) -> str | None:
        """Why the two outputs are not compared (None: they are)."""
        if not self.outputs_comparable:
            return f"a {self.kind} pair whose outputs are not the same quantity"
        return None

    def align_key(self, obj) -> str:
        """What weightless layers are lined up by between their weighted neighbours."""
        return self.kind

    def check(self, pair) -> str | None:
        """Why this converter cannot convert this pair (None: it can)."""
        return None

    def align(self, pair, torch_output: np.ndarray, keras_shape: tuple):
        """torch's output in the Keras layer's layout, or None (`compare.pair.layout`)."""
        from compare.pair import layout

        return layout.align(torch_output, keras_shape, layout.torch_layout(pair), pair.keras_layout)

    def align_input(self, pair, torch_input: np.ndarray, keras_shape: tuple):
        """torch's input to the layer in the Keras layer's layout (None: not comparable)."""
        return self.align(pair, torch_input, keras_shape) if self.weighted else None

    def torch_parts(self, module) -> list[str]:
        """Suffixes of the units one torch module makes ([""]: one; an LSTM of
        num_layers=2 makes one per layer, each paired with one Keras layer)."""
        return [""]

    def random_rate(self, obj) -> float:
        """A random layer's rate on either side (`random` converters)."""
        return 0.0

    def switch_off(self, obj) -> Callable[[], None]:
        """Make a random layer the identity; returns the undo (`random` converters)."""
        return lambda: None


@dataclasses.dataclass
class Registration:
    converter: Converter
    torch_types: tuple
    keras_types: tuple
    user: bool
    order: int


_REGISTRY: list[Registration] = []
# torch functions the trace records outside any module (F.gelu, F.interpolate): the
# function object -> (converter, describe(args, kwargs) -> settings dict or None).
_FUNCTIONS: dict = {}


def register(converter: Converter | type, torch, keras, user: bool = True) -> Converter:
    """Register `converter` for torch types `torch` and Keras types `keras` (classes,
    dotted names, or tuples of either). Later registrations win over earlier ones of the
    same specificity, a user's over the built-in ones."""
    instance = converter() if isinstance(converter, type) else converter
    if not isinstance(instance, Converter):
        raise TypeError(f"{instance!r} is not a compare.pair.Converter")
    _REGISTRY.append(
        Registration(instance, _as_tuple(torch), _as_tuple(keras), user, len(_REGISTRY))
    )
    return instance


def converter(torch, keras):
    """Class decorator: `@converter(torch.nn.Conv2d, keras.layers.Conv2D)`."""

    def wrap(cls):
        register(cls, torch, keras, user=True)
        return cls

    return wrap


def unregister(instance: Converter) -> None:
    """Remove a registration (tests; a user replacing their own converter)."""
    _REGISTRY[:] = [r for r in _REGISTRY if r.converter is not instance]


def _as_tuple(types) -> tuple:
    return tuple(types) if isinstance(types, (tuple, list)) else (types,)


def _resolve(spec):
    """A class from a class or a dotted name. A dotted name resolves only once its module
    is imported (a model of that class cannot exist before), so a check imports nothing
    for converters of libraries the user does not use."""
    if isinstance(spec, type):
        return spec
    module_name, _, name = spec.rpartition(".")
    module = sys.modules.get(module_name)
    if module is None:
        return None
    value = module
    for part in name.split("."):
        value = getattr(value, part, None)
    return value if isinstance(value, type) else None


def _distance(obj, types) -> int | None:
    """How far up `obj`'s class hierarchy the nearest of `types` is (None: none)."""
    mro = type(obj).__mro__
    found = [mro.index(t) for t in (_resolve(s) for s in types) if t is not None and t in mro]
    return min(found) if found else None


def _ranked(obj, side: str) -> list[tuple[int, Registration]]:
    rows = []
    for reg in _REGISTRY:
        distance = _distance(obj, reg.torch_types if side == "torch" else reg.keras_types)
        if distance is not None:
            rows.append((distance, reg))
    # Nearest class first; then a user's registration, then the latest.
    rows.sort(key=lambda row: (row[0], not row[1].user, -row[1].order))
    return rows


def candidates(obj, side: str) -> list[Converter]:
    """The converters that take `obj` (a torch module or Keras layer), best first."""
    return [reg.converter for _, reg in _ranked(obj, side)]


def find(torch_module, keras_layer) -> Converter | None:
    """The converter for this torch module and Keras layer: the one registered for both
    whose classes are nearest to theirs (a user's first, then the latest)."""
    best, best_key = None, None
    for reg in _REGISTRY:
        near_torch = _distance(torch_module, reg.torch_types)
        near_keras = _distance(keras_layer, reg.keras_types)
        if near_torch is None or near_keras is None:
            continue
        key = (near_torch + near_keras, not reg.user, -reg.order)
        if best_key is None or key < best_key:
            best, best_key = reg.converter, key
    return best


def kind_of(obj, side: str) -> str | None:
    """The kind of the best converter taking `obj`, or None."""
    found = candidates(obj, side)
    return found[0].kind if found else None


def register_function(function, converter: Converter, describe: Callable) -> None:
    """Record calls of the torch function `function` outside any unit as a weightless
    unit of `converter`'s kind; `describe(args, kwargs)` gives its settings (None: this
    call is not one, e.g. a mean over other axes than the spatial ones)."""
    _FUNCTIONS[function] = (converter, describe)


def function_kind(function):
    try:
        return _FUNCTIONS.get(function)
    except TypeError:  # an unhashable callable
        return None
