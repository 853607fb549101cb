"""What goes into both models and what comes out: several inputs, positional or by
keyword, in torch's layout for torch and in Keras's for Keras; the output compared,
chosen from tensors, tuples, dicts or dataclasses (Hugging Face's `ModelOutput`).

    check_pair(bert, keras_bert, {"input_ids": ids, "attention_mask": mask}, output="logits")

A dict goes to torch as keyword arguments and to Keras as a dict keyed by the same names
(or `input_names={"torch name": "keras name"}`); a tuple goes positionally. A float array
of rank 3 or more is moved channels-last for Keras when the Keras layer reading it is
channels-last (its declared input shape, else its first layer's data format); pass
`keras_inputs=` to give Keras's inputs yourself.

Stage: pair.
"""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np


class InputError(ValueError):
    """The inputs or the output choice do not fit the models; the message says how."""


@dataclasses.dataclass
class Inputs:
    torch_args: tuple
    torch_kwargs: dict
    keras_inputs: object
    layout_notes: list

    @property
    def batch(self) -> int:
        first = next(iter(self.arrays()), None)
        return 0 if first is None else int(np.shape(first)[0])

    def arrays(self):
        yield from self.torch_args
        yield from self.torch_kwargs.values()

    def sliced(self, part: slice) -> Inputs:
        """The examples `part` of every input (axis 0 on both sides)."""

        def cut(value):
            if isinstance(value, dict):
                return {k: cut(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return type(value)(cut(v) for v in value)
            return np.asarray(value)[part]

        return Inputs(
            tuple(cut(a) for a in self.torch_args),
            {k: cut(v) for k, v in self.torch_kwargs.items()},
            cut(self.keras_inputs),
            self.layout_notes,
        )

    def torch_call(self, model, float64: bool = False):
        """model(*args, **kwargs) with torch tensors (floats as float64 when asked)."""
        return model(
            *(_tensor(a, float64) for a in self.torch_args),
            **{k: _tensor(v, float64) for k, v in self.torch_kwargs.items()},
        )

    def keras_call(self, model, training: bool = False):
        return model(self.keras_inputs, training=training)


def _of_arrays(values: list) -> bool:
    """A list of inputs (arrays or tensors), not one array written as nested lists."""
    return bool(values) and all(hasattr(v, "shape") for v in values)


def _tensor(array, float64: bool):
    import torch

    array = np.ascontiguousarray(array)
    if np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64 if float64 else np.float32)
    return torch.as_tensor(array)


def prepare(torch_model, keras_model, inputs, keras_inputs=None, input_names=None) -> Inputs:
    """Both sides' inputs from the user's `inputs` (torch's layout)."""
    input_names = dict(input_names or {})
    if isinstance(inputs, dict):
        torch_args, torch_kwargs = (), {k: np.asarray(v) for k, v in inputs.items()}
    elif isinstance(inputs, tuple) or (isinstance(inputs, list) and _of_arrays(inputs)):
        torch_args, torch_kwargs = tuple(np.asarray(v) for v in inputs), {}
    else:  # an array, a tensor, or a nested list of numbers (one array)
        torch_args, torch_kwargs = (np.asarray(inputs),), {}
    if not torch_args and not torch_kwargs:
        raise InputError("inputs: give at least one array (or a tuple or dict of arrays)")
    sizes = {np.shape(a)[0] if np.ndim(a) else None for a in (*torch_args, *torch_kwargs.values())}
    if None in sizes or len(sizes) != 1:
        raise InputError(
            "inputs: every input needs the same batch size on axis 0 "
            f"(got {sorted(str(s) for s in sizes)})"
        )
    if sizes == {0}:
        raise InputError("inputs: no examples (a batch of 0): nothing would be compared")
    notes = []
    if keras_inputs is not None:
        return Inputs(torch_args, torch_kwargs, keras_inputs, ["Keras inputs given by the user"])
    declared = _declared_inputs(keras_model)
    if torch_kwargs:
        keras_side = {}
        for index, (name, array) in enumerate(torch_kwargs.items()):
            keras_name = input_names.get(name, name)
            spec = _spec_for(declared, keras_name, index, keras_model)
            keras_side[keras_name] = _for_keras(array, spec, keras_model, torch_model, notes, name)
        value = keras_side
        if len(keras_side) == 1 and declared is not None and len(declared) == 1:
            value = next(iter(keras_side.values()))
    else:
        keras_list = [
            _for_keras(a, _spec_for(declared, None, i), keras_model, torch_model, notes, str(i))
            for i, a in enumerate(torch_args)
        ]
        value = keras_list[0] if len(keras_list) == 1 else keras_list
    return Inputs(torch_args, torch_kwargs, value, notes)


def _declared_inputs(keras_model):
    try:
        return list(keras_model.inputs)
    except (AttributeError, ValueError, TypeError):
        return None


def _spec_for(declared, name, index, keras_model=None):
    if not declared:
        return None
    struct = getattr(keras_model, "_inputs_struct", None)
    if name is not None and isinstance(struct, dict) and name in struct:
        return struct[name]  # a functional model built on a dict of inputs
    if name is not None:
        for spec in declared:
            if _input_name(spec) == name:
                return spec
    return declared[index] if index < len(declared) else None


def _input_name(spec) -> str:
    try:
        return spec._keras_history.operation.name
    except AttributeError:
        return getattr(spec, "name", "")


def _fits(shape, expected) -> bool:
    return len(shape) == len(expected) and all(
        e is None or e == s for s, e in zip(shape, expected, strict=True)
    )


def _for_keras(array, spec, keras_model, torch_model, notes, label):
    """One input as Keras takes it: moved channels-last where the Keras side reads it so."""
    array = np.asarray(array)
    if array.ndim < 3 or not np.issubdtype(array.dtype, np.floating):
        return array
    moved = np.ascontiguousarray(np.moveaxis(array, 1, -1))
    if spec is not None and getattr(spec, "shape", None) is not None:
        expected = tuple(spec.shape[1:])
        as_is, as_moved = _fits(array.shape[1:], expected), _fits(moved.shape[1:], expected)
        if as_moved and not as_is:
            notes.append(f"input {label}: channels moved last (Keras's declared input)")
            return moved
        if as_is and not as_moved:
            return array
        reader = _first_reader_format(keras_model, spec)
        if reader == "channels_last":
            notes.append(f"input {label}: channels moved last (its first Keras reader's format)")
            return moved
        return array
    # No declared input (a subclassed or unbuilt model): Keras's default image format,
    # when torch starts with a layer that is channels-first.
    import keras

    if keras.config.image_data_format() == "channels_last" and _torch_starts_channels_first(
        torch_model
    ):
        notes.append(f"input {label}: channels moved last (Keras's default data format)")
        return moved
    return array


def _first_reader_format(keras_model, spec) -> str | None:
    """The data format of the first layer reading `spec` that declares one."""
    from compare.pair import layout

    try:
        layers = keras_model.layers
    except AttributeError:
        return None
    frontier = {id(spec)}
    for layer in layers:
        try:
            layer_inputs = layer.input
        except (AttributeError, ValueError):
            continue
        as_list = layer_inputs if isinstance(layer_inputs, (list, tuple)) else [layer_inputs]
        if not any(id(t) in frontier for t in as_list):
            continue
        declared = layout.keras_layout(layer)
        if declared != "last":
            return declared
        with contextlib.suppress(AttributeError, ValueError):  # Rescaling: follow it
            frontier.add(id(layer.output))
    return None


def _torch_starts_channels_first(torch_model) -> bool:
    from compare.pair import registry

    for module in torch_model.modules():
        kind = registry.kind_of(module, "torch")
        if kind is None:
            continue
        found = registry.candidates(module, "torch")[0]
        return getattr(found, "torch_layout", "last") == "channels_first"
    return False


# --- outputs -----------------------------------------------------------------------------


def select(output, choice=None):
    """The compared output: `choice` an index, a key or attribute, or a callable; by
    default a tensor itself, a tuple's first, a dict's (or ModelOutput's) "logits" or
    first value, a dataclass's first field that is set."""
    if callable(choice):
        return choice(output)
    structured = (
        isinstance(output, (tuple, list, dict))
        or hasattr(output, "keys")
        or (dataclasses.is_dataclass(output) and not isinstance(output, type))
    )
    if choice is not None and structured:  # a plain tensor is its own only part
        try:
            if isinstance(choice, int):
                return output[choice]
            if isinstance(output, dict) or hasattr(output, "keys"):
                return output[choice]
            return getattr(output, choice)
        except (KeyError, IndexError, AttributeError, TypeError) as error:
            raise InputError(
                f"output={choice!r}: the model's output ({describe(output)}) has no such "
                f"part ({type(error).__name__})"
            ) from None
    if isinstance(output, (tuple, list)):
        return select(output[0]) if output else None
    if isinstance(output, dict) or (hasattr(output, "keys") and hasattr(output, "__getitem__")):
        keys = list(output.keys())
        if not keys:
            return None
        return select(output["logits"] if "logits" in keys else output[keys[0]])
    if dataclasses.is_dataclass(output) and not isinstance(output, type):
        for field in dataclasses.fields(output):
            value = getattr(output, field.name)
            if value is not None:
                return select(value)
    return output


def describe(output) -> str:
    """An output's structure in a few words (`a dict of logits, hidden_states`)."""
    if isinstance(output, (tuple, list)):
        return f"a {type(output).__name__} of {len(output)}"
    if hasattr(output, "keys"):
        return f"{type(output).__name__} with {', '.join(map(str, output.keys()))}"
    shape = getattr(output, "shape", None)
    return f"a tensor of shape {tuple(shape)}" if shape is not None else type(output).__name__
