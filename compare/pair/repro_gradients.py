"""The gradient part of a reproduction: one fixed cotangent of the layer's output (in
Keras's layout, and the same one moved into torch's), each side's weight gradients, and
for each trainable Keras weight the index map that reads torch's gradients in its
layout. The map is the converter's own conversion applied to positions, so the script
needs no converter; a weight whose conversion is not a pure rearrangement (an LSTM's
two torch biases summed into one Keras bias) is left out of the script's comparison,
and the JSON says so.

Stage: pair.
"""

from __future__ import annotations

import numpy as np

from compare.pair import frameworks, trace
from compare.pair.result import gap
from compare.pair.session import unit_parameters


def add(pair, module, layer, run_torch, run_keras, keras_out, index, rename, meta, arrays):
    """Record the gradient comparison in `meta` and `arrays`; returns its gap."""
    import keras
    import torch

    from compare.pair.repro_layers import NotWritable

    flat = index.reshape(-1)
    torch_size = int(np.prod(arrays["torch_output"].shape))
    if flat.size != torch_size or len(np.unique(flat)) != flat.size:
        raise NotWritable("torch's output is not a rearrangement of Keras's: no shared cotangent")
    cotangent = np.random.default_rng(0).normal(size=keras_out.shape).astype(np.float32)
    torch_cotangent = np.zeros(torch_size, np.float32)
    torch_cotangent[flat] = cotangent.reshape(-1)
    torch_cotangent = torch_cotangent.reshape(arrays["torch_output"].shape)
    parameters = unit_parameters(pair)
    for parameter in parameters.values():
        parameter.grad = None
    run_torch(module, grad=True).backward(torch.as_tensor(torch_cotangent))
    torch_grads = {
        n: p.grad.detach().cpu().numpy() for n, p in parameters.items() if p.grad is not None
    }
    for parameter in parameters.values():
        parameter.grad = None

    held = pair.torch_arrays()
    order, coded, offset = [], {}, 0
    for name in sorted(held):
        size = int(held[name].size)
        coded[name] = offset + np.arange(size, dtype=np.float64).reshape(held[name].shape)
        order.append([rename(name), size, name in parameters])
        offset += size
    torch_flat = np.concatenate(
        [
            np.asarray(torch_grads.get(n, np.zeros_like(held[n])), np.float64).reshape(-1)
            for n in sorted(held)
        ]
    )
    maps = pair.converter.gradients_to_keras(pair, coded)
    expected = pair.converter.gradients_to_keras(pair, torch_grads)

    def loss_of(call):
        # Under jax.value_and_grad the output is a tracer: a tensor without a value.
        value = call(*_inputs(meta, arrays), **_kwargs(meta, arrays))
        out = trace.tensors_in(value, keras.ops.is_tensor)[0]
        return keras.ops.sum(keras.ops.multiply(out, keras.ops.convert_to_tensor(cotangent)))

    _, keras_grads = frameworks.keras_value_and_gradients(layer, loss_of)
    position = {id(v): j for j, v in enumerate(layer.weights)}
    compared, skipped, worst = [], [], 0.0
    for variable, grad in zip(layer.trainable_variables, keras_grads, strict=True):
        j = position[id(variable)]
        where = np.asarray(maps[j], np.float64)
        exact = (
            where.size
            and np.all(where == np.round(where))
            and np.all((where >= 0) & (where < offset))
        )
        if not exact or not np.array_equal(torch_flat[where.astype(np.int64)], expected[j]):
            skipped.append(variable.path)
            continue
        arrays[f"grad_index/{j}"] = where.astype(np.int64)
        theirs = np.zeros(variable.shape, np.float32) if grad is None else trace.to_numpy(grad)
        worst = max(worst, gap(torch_flat[where.astype(np.int64)], theirs))
        compared.append(j)
    if not compared:
        raise NotWritable("none of the layer's gradients converts by rearrangement alone")
    arrays["cotangent"] = cotangent
    arrays["torch_cotangent"] = torch_cotangent
    meta["gradients"] = {
        "torch_order": order,
        "keras_weights": compared,
        "not_compared": skipped,
        "what": "weight gradients for one fixed output cotangent (seeded normal)",
    }
    return worst


def _inputs(meta, arrays):
    return [arrays[f"keras_input/{i}"] for i in range(meta["keras"]["inputs"])]


def _kwargs(meta, arrays):
    from compare.pair.repro_layers import keras_kwargs

    return keras_kwargs(meta["keras"]["kwargs"], arrays)
