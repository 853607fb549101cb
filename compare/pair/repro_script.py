"""A minimal reproduction written by keras-vs-pytorch (`check_pair(..., repro=DIR)` or
`--repro DIR`): one layer pair, rebuilt alone on each side from its settings, loaded with
the check's weights, run on the check's input. It prints the gap the check measured.

    python repro.py            # beside repro.json and repro.npz

It imports numpy, torch and keras (and Keras's backend, for a gradient): nothing of
keras-vs-pytorch. repro.json holds the settings (torch's constructor, Keras's config),
repro.npz the input, both layouts' weights and both outputs.

Stage: pair (this file is copied, as it is, into each reproduction's directory).
"""

import importlib
import json
import os
import pathlib
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent


def main() -> int:
    meta = json.loads((HERE / "repro.json").read_text())
    os.environ.setdefault("KERAS_BACKEND", meta["keras_backend"])
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import torch  # noqa: I001 - before keras: torch first keeps both frameworks in one process
    import keras

    data = dict(np.load(HERE / "repro.npz"))

    torch_layer = eval(meta["torch"]["expression"], {"torch": torch})  # noqa: S307
    if not isinstance(torch_layer, torch.nn.Module):  # a function (F.gelu): no weights
        function, torch_layer = torch_layer, torch.nn.Module()
        torch_layer.forward = function
    state = {k: torch.as_tensor(data["torch_state/" + k]) for k in meta["torch"]["state"]}
    torch_layer.load_state_dict(state, strict=True)
    torch_layer.eval()
    torch_args = [torch.as_tensor(data[f"torch_input/{i}"]) for i in range(meta["torch"]["inputs"])]
    torch_kwargs = _kwargs(meta["torch"]["kwargs"], data, torch.as_tensor)

    keras_args = [data[f"keras_input/{i}"] for i in range(meta["keras"]["inputs"])]
    keras_kwargs = _kwargs(meta["keras"]["kwargs"], data, lambda a: a)
    if "function" in meta["keras"]:  # an activation whose config loses a setting
        module, _, name = meta["keras"]["function"].partition(":")
        keras_layer = getattr(importlib.import_module(module), name)
    else:
        keras_layer = keras.saving.deserialize_keras_object(meta["keras"]["config"])
        keras_layer(*keras_args, **keras_kwargs)  # builds it
        weights = [data[f"keras_weight/{i}"] for i in range(meta["keras"]["weights"])]
        keras_layer.set_weights(weights)

    print(f"layer: {meta['layer']} (Keras on {keras.backend.backend()})")
    print(f"input: {meta['input_note']}")
    for row in meta["settings"]:
        print(f"setting {row['name']}: torch {row['torch']}, keras {row['keras']}")
    if meta["mode"] == "shapes":
        with torch.no_grad():
            ours = _first(torch_layer(*torch_args, **torch_kwargs))
        theirs = _first(keras_layer(*keras_args, **keras_kwargs))
        state = {k: tuple(v.shape) for k, v in torch_layer.state_dict().items()}
        text = _shapes(tuple(ours.shape), tuple(theirs.shape), state,
                       [tuple(w.shape) for w in keras_layer.weights])  # fmt: skip
        print(f"shapes differ: {text}")
        print(f"(the check found: {meta['shapes']})")
        return 0
    index = data["output_index"]
    if meta["mode"] == "gradients":
        found = _gradient_gap(meta, data, torch, keras, torch_layer, torch_args, torch_kwargs,
                              keras_layer, keras_args, keras_kwargs)  # fmt: skip
        what = "weight gradients"
    else:
        with torch.no_grad():
            ours = _first(torch_layer(*torch_args, **torch_kwargs)).numpy()
        theirs = keras.ops.convert_to_numpy(_first(keras_layer(*keras_args, **keras_kwargs)))
        found = _gap(ours.reshape(-1)[index], theirs)
        what = "outputs"
    print(f"{what} differ by {found:.6e} (the check measured {meta['gap']:.6e})")
    return 0


def _gradient_gap(meta, data, torch, keras, torch_layer, torch_args, torch_kwargs, keras_layer,
                  keras_args, keras_kwargs) -> float:  # fmt: skip
    torch_layer.zero_grad(set_to_none=True)
    _first(torch_layer(*torch_args, **torch_kwargs)).backward(
        torch.as_tensor(data["torch_cotangent"])
    )
    grads = dict(torch_layer.named_parameters())
    pieces = []
    for name, size, is_parameter in meta["gradients"]["torch_order"]:
        grad = grads[name].grad if is_parameter and grads[name].grad is not None else None
        pieces.append(
            np.zeros(size) if grad is None else grad.numpy().astype(np.float64).reshape(-1)
        )
    torch_flat = np.concatenate(pieces)
    cotangent = data["cotangent"]

    def loss_of(call):
        out = _first(call(*keras_args, **keras_kwargs))
        return keras.ops.sum(keras.ops.multiply(out, keras.ops.convert_to_tensor(cotangent)))

    keras_grads = _keras_gradients(keras, keras_layer, loss_of)
    position = {id(v): j for j, v in enumerate(keras_layer.weights)}
    worst = 0.0
    for variable, grad in zip(keras_layer.trainable_variables, keras_grads, strict=True):
        j = position[id(variable)]
        if j not in meta["gradients"]["keras_weights"]:
            continue
        theirs = np.zeros(variable.shape) if grad is None else keras.ops.convert_to_numpy(grad)
        worst = max(worst, _gap(torch_flat[data[f"grad_index/{j}"]], theirs))
    return worst


def _keras_gradients(keras, layer, loss_of):
    backend = keras.backend.backend()
    variables = layer.trainable_variables
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_of(layer)
        return tape.gradient(loss, variables)
    if backend == "jax":
        import jax

        fixed = [v.value for v in layer.non_trainable_variables]

        def loss_at(trainable):
            return loss_of(lambda *a, **k: layer.stateless_call(trainable, fixed, *a, **k)[0])

        return jax.grad(loss_at)([v.value for v in variables])
    import torch

    return torch.autograd.grad(loss_of(layer), [v.value for v in variables], allow_unused=True)


def _shapes(torch_output, keras_output, torch_weights, keras_weights) -> str:
    ours = ", ".join(f"{k} {tuple(v)}" for k, v in sorted(torch_weights.items())) or "none"
    theirs = ", ".join(str(tuple(s)) for s in keras_weights) or "none"
    return (
        f"torch's output {tuple(torch_output)}, Keras's {tuple(keras_output)}; torch's "
        f"weights {ours}; Keras's {theirs}"
    )


def _kwargs(given, data, convert):
    def value(v):
        if isinstance(v, dict):
            return tuple(v["tuple"]) if "tuple" in v else convert(data[v["array"]])
        return v

    return {k: value(v) for k, v in given.items()}


def _first(value):
    while isinstance(value, (tuple, list)):
        value = value[0]
    return value


def _gap(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b))) if a.size else 0.0


if __name__ == "__main__":
    sys.exit(main())
