"""Moving weights across a pairing, in either direction: torch's into every paired
Keras layer (the check's default, and `port_weights` to Keras), or Keras's into every
paired torch module (`port_weights` to torch). Each pair converts through its
converter, so a user's registered converter ports as the built-in ones do; a pair
whose weights do not convert is a structure problem naming it, never a partial copy
left silent.

Stage: pair.
"""

from __future__ import annotations

import functools

import numpy as np

from compare.pair import units
from compare.pair.result import say


def apply(session, direction: str) -> None:
    """Copy every weighted pair's weights `direction`; problems go to the pairing's."""
    for pair in session.pairing.pairs:
        if not (units.has_weights(pair.torch_unit) and units.has_weights(pair.keras_unit)):
            continue
        try:
            if direction == "to_keras":
                pair.keras_layer.set_weights(pair.to_keras(pair.torch_arrays()))
            else:
                into_torch(pair, pair.to_torch(pair.keras_layer.get_weights()))
        except Exception as error:  # noqa: BLE001 - a converter's failure names its pair
            session.pairing.problems.append(
                f"{pair.label()}: the weights do not convert: {say(error)}"
            )


def into_torch(pair, arrays: dict[str, np.ndarray]) -> None:
    """Write `arrays` ({state_dict name under the pair's module: array}) into the torch
    module's tensors in place; every name the unit holds must be given, at its shape."""
    import torch

    wanted = pair.torch_arrays()
    missing = sorted(set(wanted) - set(arrays))
    if missing:
        raise ValueError(f"the converter gives no {', '.join(missing)}")
    with torch.no_grad():
        for name, value in arrays.items():
            tensor = tensor_at(pair.torch_module, name)
            value = np.asarray(value)
            if tuple(tensor.shape) != value.shape:
                raise ValueError(
                    f"{name}: the converter gives shape {value.shape}, torch holds "
                    f"{tuple(tensor.shape)}"
                )
            tensor.copy_(torch.as_tensor(np.ascontiguousarray(value), dtype=tensor.dtype))


def tensor_at(obj, name: str):
    """The parameter or buffer `name` ('0.weight', 'depthwise.bias') under `obj`."""
    return functools.reduce(getattr, name.split("."), obj)
