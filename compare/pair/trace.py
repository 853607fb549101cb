"""One forward pass of each side, recorded unit by unit: the order calls complete in,
each call's inputs, keyword arguments and output. Pairing reads the order and which
units share an input; the forward level compares the outputs.

torch: forward hooks on every module, and a TorchFunctionMode that sees the functional
operations called outside any unit (`F.gelu`, `F.interpolate`, `x.mean((2, 3))`).
Keras: each layer's `call` wrapped for the pass (Keras has no hooks); a Dense or
convolution with a fused activation records its output before the activation, and
the activation as a unit of its own. Both restore the models afterwards.

Stage: pair.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools

import numpy as np

from compare.pair import registry
from compare.pair.units import FunctionalOp, FusedActivation, Unit


@dataclasses.dataclass
class Call:
    """One call of a unit."""

    order: int  # when it completed
    start: int  # when it began
    input_id: int | None  # id() of its first tensor argument (shared inputs)
    inputs: list  # its positional tensor arguments, NumPy
    kwargs: dict  # its keyword arguments (tensors as NumPy)
    output: np.ndarray | None  # its first tensor output, NumPy
    outputs: list = dataclasses.field(default_factory=list)  # every tensor output
    output_id: int | None = None  # id() of its first tensor output (what reads it)


def to_numpy(value):
    """A tensor of either framework (or a NumPy array) as NumPy; None otherwise."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return None
    if isinstance(value, np.ndarray):
        return value
    detach = getattr(value, "detach", None)
    if detach is not None and hasattr(value, "cpu"):
        return detach().cpu().numpy().copy()
    if hasattr(value, "numpy") and callable(value.numpy):  # TensorFlow tensors, variables
        try:
            return np.asarray(value.numpy())
        except Exception:  # noqa: BLE001 - a symbolic tensor: no value
            return None
    try:
        import keras

        return np.asarray(keras.ops.convert_to_numpy(value))
    except Exception:  # noqa: BLE001 - a symbolic tensor or another object: no value
        return None


def tensors_in(value, is_tensor=None) -> list:
    """The tensors in an output, depth first (a tuple's, a dict's, a dataclass's): those
    with a value, or those `is_tensor` accepts (a JAX tracer inside a transformation has
    no value yet)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return []
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in tensors_in(v, is_tensor)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in tensors_in(v, is_tensor)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        return [t for f in fields for t in tensors_in(getattr(value, f.name), is_tensor)]
    accepted = is_tensor(value) if is_tensor else to_numpy(value) is not None
    return [value] if accepted else []


def _plain(value) -> bool:
    """A tuple or list of plain numbers (`dim=(2, 3)`): a setting, not a tensor."""
    return isinstance(value, (tuple, list)) and all(
        isinstance(v, (bool, int, float, str)) for v in value
    )


class _Recorder:
    def __init__(self):
        self.tick = 0
        self.keep = []  # the argument objects, alive for the pass (ids stay unique)

    def next(self) -> int:
        self.tick += 1
        return self.tick

    def call(self, start, args, kwargs, output) -> Call:
        tensor_args = [a for a in args if to_numpy(a) is not None]
        first = (
            tensor_args[0]
            if tensor_args
            else next((v for v in kwargs.values() if to_numpy(v) is not None), None)
        )
        self.keep.append(first)
        produced = tensors_in(output)
        self.keep.extend(produced[:1])
        outputs = [to_numpy(t) for t in produced]
        return Call(
            order=self.next(),
            start=start,
            input_id=None if first is None else id(first),
            inputs=[to_numpy(a) for a in tensor_args],
            kwargs={
                k: (v if _plain(v) or to_numpy(v) is None else to_numpy(v))
                for k, v in kwargs.items()
            },
            output=outputs[0] if outputs else None,
            outputs=outputs,
            output_id=id(produced[0]) if produced else None,
        )


# --- torch -------------------------------------------------------------------------------


def torch_pass(model, units: list[Unit], call_model):
    """Run `call_model()` with every unit recorded; returns (its output, the functional
    units seen, in order). Each unit's `calls` is replaced."""
    import torch
    from torch.overrides import TorchFunctionMode

    recorder = _Recorder()
    by_module: dict[int, list[Unit]] = {}
    for unit in units:
        unit.calls = []
        if not isinstance(unit.obj, FunctionalOp):
            by_module.setdefault(id(unit.obj), []).append(unit)
    names = {id(m): n for n, m in model.named_modules()}
    stack, inside_unit, starts = [], [0], {}
    functional: list[Unit] = []
    counts: dict[tuple, int] = {}

    def pre(module, args, kwargs):
        stack.append(names.get(id(module), "?"))
        if id(module) in by_module:
            inside_unit[0] += 1
            starts[id(module)] = recorder.next()

    def post(module, args, kwargs, output):
        stack.pop()
        if id(module) in by_module:
            inside_unit[0] -= 1
            call = recorder.call(starts.pop(id(module)), args, kwargs, output)
            for unit in by_module[id(module)]:
                unit.calls.append(call)

    class Mode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            known = registry.function_kind(func) if inside_unit[0] == 0 else None
            if known is None:
                return func(*args, **kwargs)
            start = recorder.next()
            output = func(*args, **kwargs)
            converter, describe = known
            name = getattr(func, "__name__", str(func))
            settings = describe(args, kwargs)
            if settings is None:  # e.g. a mean that is not a global pooling
                return output
            enclosing = stack[-1] if stack else ""
            key = (enclosing, name)
            counts[key] = counts.get(key, 0) + 1
            op = FunctionalOp(name, settings, enclosing)
            label = f"{enclosing + ':' if enclosing else ''}{name}#{counts[key]}"
            unit = Unit("torch", label, op, [converter])
            unit.calls.append(recorder.call(start, args, kwargs, output))
            functional.append(unit)
            return output

    hooks = []
    for module in model.modules():
        hooks.append(module.register_forward_pre_hook(pre, with_kwargs=True))
        hooks.append(module.register_forward_hook(post, with_kwargs=True))
    try:
        with _no_fast_path(), Mode():
            output = call_model()
    finally:
        for hook in hooks:
            hook.remove()
    del torch
    return output, functional


@contextlib.contextmanager
def _no_fast_path():
    """nn.MultiheadAttention's and TransformerEncoderLayer's inference fast path runs
    fused kernels that skip the submodules (their hooks never fire): off for the pass."""
    import torch

    mha = getattr(torch.backends, "mha", None)
    if mha is None:
        yield
        return
    before = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(before)


no_fast_path = _no_fast_path


# --- Keras -------------------------------------------------------------------------------


def all_layers(model) -> list:
    try:
        return list(model._flatten_layers(include_self=True, recursive=True))
    except AttributeError:
        return [model]


def keras_pass(model, units: list[Unit], call_model):
    """Run `call_model()` with every Keras unit recorded; returns its output."""
    recorder = _Recorder()
    by_layer: dict[int, list[Unit]] = {}
    fused: dict[int, list[Unit]] = {}
    for unit in units:
        unit.calls = []
        if isinstance(unit.obj, FusedActivation):
            fused.setdefault(id(unit.obj.layer), []).append(unit)
        else:
            by_layer.setdefault(id(unit.obj), []).append(unit)
    patched = []
    for layer in all_layers(model):
        if id(layer) in by_layer and "call" not in vars(layer):
            original = layer.call
            wrapper = _wrap(layer, original, recorder, by_layer[id(layer)], fused.get(id(layer)))
            object.__setattr__(layer, "call", wrapper)
            patched.append(layer)
    try:
        return call_model()
    finally:
        for layer in patched:
            object.__delattr__(layer, "call")


def _wrap(layer, original, recorder, units, fused_units):
    import keras

    @functools.wraps(original)
    def call(*args, **kwargs):
        start = recorder.next()
        if fused_units:
            activation = layer.activation
            object.__setattr__(layer, "activation", keras.activations.linear)
            try:
                before = original(*args, **kwargs)
            finally:
                object.__setattr__(layer, "activation", activation)
            output = activation(before)
        else:
            before = output = original(*args, **kwargs)
        if to_numpy(next(iter(tensors_in(before)), None)) is not None:
            record = recorder.call(start, args, kwargs, before)
            for unit in units:
                unit.calls.append(record)
            if fused_units:
                after = recorder.call(recorder.next(), (before,), {}, output)
                for unit in fused_units:
                    unit.calls.append(after)
        return output

    return call
