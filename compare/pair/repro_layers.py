"""Rebuilding one layer from its settings alone, as a reproduction's script does: torch's
module from a constructor call (its class's signature filled from its attributes, or its
repr), kept only if it computes what the module did; a torch function as a module;
Keras's layer from its config, or an activation whose config loses a setting by its
dotted name.

Stage: pair.
"""

from __future__ import annotations

import json

import numpy as np

from compare.pair import trace
from compare.pair.layers.conv import SeparablePair
from compare.pair.result import gap
from compare.pair.units import FunctionalOp, FusedActivation

LITERALS = (bool, int, float, str, type(None))


class NotWritable(Exception):
    """Why this failure has no one-layer reproduction."""


def torch_side(pair, whole: bool = False):
    """(the module, the expression that rebuilds it, state-name renaming); `whole`: a
    unit that is one layer of a stacked module is rebuilt as the whole module."""
    import torch

    obj = pair.torch_module
    if isinstance(obj, FunctionalOp):
        return _function_side(pair, obj)
    if pair.part and getattr(obj, "num_layers", 1) > 1 and not whole:
        raise NotWritable(
            f"{pair.label()} is one layer of a stacked torch module; reproduce it with "
            "num_layers=1 yourself (the report names its settings)"
        )
    if isinstance(obj, SeparablePair):
        module = torch.nn.Sequential(obj.depthwise, obj.pointwise)
        both = [
            f"torch.nn.Sequential({a}, {b})"
            for a in _expressions(obj.depthwise)
            for b in _expressions(obj.pointwise)
        ]
        rename = {"depthwise": "0", "pointwise": "1"}
        return module, both, lambda k: rename.get(k.split(".")[0], "") + k[k.index(".") :]
    return obj, _expressions(obj), lambda k: k


def _function_side(pair, op):
    """A torch function called outside modules (F.gelu): the script calls it with the
    recorded keyword arguments, wrapped as a module without weights."""
    import torch

    for owner, prefix in ((torch.nn.functional, "torch.nn.functional"), (torch, "torch")):
        if callable(getattr(owner, op.function, None)):
            return Call(getattr(owner, op.function)), [f"{prefix}.{op.function}"], lambda k: k
    raise NotWritable(f"torch's side of {pair.label()} calls {op.function}, not found in torch")


def call_module():
    """`Call`: a torch function as a module (defined once torch is imported)."""
    import torch

    class Call(torch.nn.Module):
        def __init__(self, function):
            super().__init__()
            self.function = function

        def forward(self, *args, **kwargs):
            return self.function(*args, **kwargs)

    return Call


def Call(function):  # noqa: N802 - reads as the class it builds
    return call_module()(function)


def _expressions(module) -> list[str]:
    """Constructor calls that may rebuild `module`'s settings, most complete first: its
    class's signature filled from its attributes, then its repr (which leaves out some
    settings: AvgPool2d's count_include_pad). The case keeps the first that computes
    what the module did."""
    import inspect

    import torch

    kind = type(module)
    if isinstance(module, torch.nn.MultiheadAttention):
        return [
            f"torch.nn.MultiheadAttention({module.embed_dim}, {module.num_heads}, "
            f"dropout={module.dropout}, bias={module.in_proj_bias is not None}, "
            f"add_bias_kv={module.bias_k is not None}, add_zero_attn={module.add_zero_attn}, "
            f"kdim={module.kdim}, vdim={module.vdim}, batch_first={module.batch_first})"
        ]
    if not kind.__module__.startswith("torch.nn") or list(module.children()):
        raise NotWritable(
            f"torch {kind.__name__} is not a torch.nn layer the script can rebuild from its "
            "settings alone"
        )
    found = []
    try:
        parameters = inspect.signature(kind.__init__).parameters
    except (TypeError, ValueError):
        parameters = {}
    arguments = []
    for name, parameter in parameters.items():
        if name in ("self", "device", "dtype") or parameter.kind in (
            parameter.VAR_POSITIONAL,
            parameter.VAR_KEYWORD,
        ):
            continue
        if not hasattr(module, name):
            continue
        value = getattr(module, name)
        if isinstance(value, torch.Tensor) or (value is None and name == "bias"):
            value = value is not None  # bias=True/False: the tensor is a weight
        if isinstance(value, list):
            value = tuple(value)
        if isinstance(value, (*LITERALS, tuple)):
            arguments.append(f"{name}={value!r}")
    found.append(f"torch.nn.{kind.__name__}({', '.join(arguments)})")
    found.append(f"torch.nn.{repr(module)}")
    return found


def rebuilt_torch(candidates, module, run_torch, torch_out) -> str:
    """The first candidate expression whose module, loaded with `module`'s state,
    computes `torch_out` on the recorded input."""
    import torch

    for text in candidates:
        try:
            rebuilt = eval(text, {"torch": torch})  # noqa: S307 - text written from torch's settings
            if not isinstance(rebuilt, torch.nn.Module):
                rebuilt = Call(rebuilt)
            rebuilt.load_state_dict(module.state_dict(), strict=True)
            if gap(trace.to_numpy(run_torch(rebuilt)), torch_out) == 0:
                return text
        except Exception:  # noqa: BLE001 - the next candidate
            continue
    raise NotWritable(
        f"torch {type(module).__name__} does not rebuild from its settings ({candidates[-1]})"
    )


def keras_side(pair):
    """(the Keras layer to run, its serialised config)."""
    import keras

    layer = pair.keras_layer
    if isinstance(layer, FusedActivation):
        layer = keras.layers.Activation(layer.activation)
    config = keras.saving.serialize_keras_object(layer)
    try:
        json.dumps(config)
    except TypeError as error:
        raise NotWritable(f"Keras {type(layer).__name__}'s config is not JSON: {error}") from None
    return layer, config


def rebuildable(pair, layer, config, keras_out, arrays, kwargs) -> dict:
    """{"config": ...} when the layer rebuilt from its config computes what it did here,
    else {"function": dotted name} for an activation whose config loses a setting (a
    `keras.ops.gelu` serialises as "gelu", which is the exact form)."""
    import keras

    inputs = [v for k, v in sorted(arrays.items()) if k.startswith("keras_input/")]
    weights = [np.asarray(w) for w in layer.get_weights()]
    rebuilt = keras.saving.deserialize_keras_object(config)
    rebuilt(*inputs, **keras_kwargs(kwargs, arrays))
    rebuilt.set_weights(weights)
    out = trace.tensors_in(rebuilt(*inputs, **keras_kwargs(kwargs, arrays)))[0]
    if gap(trace.to_numpy(out), keras_out) == 0:
        return {"config": config}
    function = getattr(layer, "activation", None)
    if callable(function) and not weights:
        name = f"{function.__module__}:{function.__qualname__}"
        if gap(trace.to_numpy(function(*inputs)), keras_out) == 0 and "<" not in name:
            return {"function": name}
    raise NotWritable(
        f"Keras {type(layer).__name__} rebuilt from its config computes otherwise than "
        f"{pair.keras_unit.label()} (a setting its config does not keep)"
    )


def keras_kwargs(kwargs, arrays):
    return {k: _value(v, arrays, lambda a: a) for k, v in kwargs.items()}


def _value(given, arrays, convert):
    """A recorded keyword argument: an array (from the npz), a tuple, or a literal."""
    if isinstance(given, dict):
        return tuple(given["tuple"]) if "tuple" in given else convert(arrays[given["array"]])
    return given
