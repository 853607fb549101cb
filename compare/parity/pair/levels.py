"""The parity levels for any torch module and Keras model: structure, weights, forward
(with the first layer where the two part), gradients and optimizer.

Every level works on the user's two model objects through the layer pairs of
`compare.parity.pair.mapping`, compares in Keras's layout, and returns a
`compare.parity.pair.result.Check`; tolerances come from `ParitySpec`.
`compare.parity.pair.lockstep` trains both. The models are changed only by copying
torch's weights into Keras (and restoring torch's after a level that steps it).

Stage: parity.
"""

from __future__ import annotations

import copy

import numpy as np

# isort: split
import torch._dynamo  # noqa: F401  (triton must load before TensorFlow: see parity.levels)

# isort: split
import keras
import torch

from compare.parity.pair import layer_defaults, mapping
from compare.parity.pair.result import Check, bound_of, differences, gap
from compare.run import contract
from compare.spec.schema import ParitySpec

# --- running each side ------------------------------------------------------------------


def keras_input(keras_model, x: np.ndarray, torch_model=None) -> np.ndarray:
    """torch-layout inputs as the Keras model takes them: channels moved last when the
    Keras input is channels-last ((N, C, H, W) -> (N, H, W, C)), else unchanged. A Keras
    model with no declared input (unbuilt, subclassed) is taken as channels-last when the
    torch model's first weighted layer is a convolution (Keras's default data format)."""
    try:
        expected = tuple(keras_model.inputs[0].shape[1:])
    except (AttributeError, ValueError, IndexError, TypeError):
        expected = None
    if x.ndim < 3:
        return x
    moved = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    if expected is None:
        first = next(
            (m for m in (torch_model.modules() if torch_model is not None else []) if _weighted(m)),
            None,
        )
        return moved if isinstance(first, (torch.nn.Conv1d, torch.nn.Conv2d)) else x
    if _fits(x.shape[1:], expected):
        return x
    return moved if _fits(moved.shape[1:], expected) else x


def _weighted(module) -> bool:
    return any(True for _ in module.parameters(recurse=False))


def _fits(shape, expected) -> bool:
    return len(shape) == len(expected) and all(
        e is None or e == s for s, e in zip(shape, expected, strict=True)
    )


def torch_tensor(array: np.ndarray):
    tensor = torch.as_tensor(np.ascontiguousarray(array))
    return tensor if tensor.dtype != torch.float64 else tensor.float()


def torch_forward(model, x: np.ndarray, training: bool = False):
    model.train(training)
    wide = next(model.parameters()).dtype == torch.float64
    inputs = torch.as_tensor(np.ascontiguousarray(x)) if wide else torch_tensor(x)
    with torch.no_grad():
        return _first(model(inputs)).detach().cpu().numpy()


def keras_forward(model, x: np.ndarray, training: bool = False) -> np.ndarray:
    return keras.ops.convert_to_numpy(_first(model(x, training=training)))


def _first(output):
    """The tensor a layer or model gives (an LSTM's sequence from (out, (h, c)))."""
    while isinstance(output, (tuple, list)):
        output = output[0]
    return output


def align(torch_out: np.ndarray, keras_shape: tuple) -> np.ndarray | None:
    """torch's output in Keras's layout: as is, channels last, or the last time step
    (a Keras RNN without return_sequences); None when neither fits."""
    if torch_out.shape == tuple(keras_shape):
        return torch_out
    if torch_out.ndim >= 3:
        moved = np.moveaxis(torch_out, 1, -1)
        if moved.shape == tuple(keras_shape):
            return moved
        if torch_out[:, -1].shape == tuple(keras_shape):
            return torch_out[:, -1]
    return None


def torch_layer_outputs(pairs, torch_model, x: np.ndarray, float64: bool = False):
    """Per pair, the torch module's output (inference mode); with `float64`, of a float64
    copy of the model on float64 inputs: the reference float32 rounding is measured by."""
    model = copy.deepcopy(torch_model).double() if float64 else torch_model
    inputs = x.astype(np.float64) if float64 and np.issubdtype(x.dtype, np.floating) else x
    captured = {}
    hooks = [
        model.get_submodule(pair.torch_name).register_forward_hook(
            lambda module, args, output, key=index: captured.__setitem__(
                # A copy: an in-place ReLU after the layer would change a view.
                key,
                _first(output).detach().cpu().numpy().copy(),
            )
        )
        for index, pair in enumerate(pairs)
    ]
    try:
        model.eval()
        with torch.no_grad():
            final = _first(model(torch.as_tensor(np.ascontiguousarray(inputs)))).cpu().numpy()
    finally:
        for hook in hooks:
            hook.remove()
    return [captured.get(index) for index in range(len(pairs))], final


def keras_layer_outputs(pairs, keras_model, x_keras: np.ndarray):
    """Per pair, the Keras layer's output, from one functional model over the pairs'
    outputs; (None, reason) for a model whose layers are not on one graph (nested or
    subclassed)."""
    try:
        inputs = keras_model.inputs
        probe = keras.Model(
            inputs[0] if len(inputs) == 1 else inputs, [p.keras_layer.output for p in pairs]
        )
        outputs = probe(x_keras, training=False)
    except Exception as error:  # noqa: BLE001 - any reason means: no per-layer view
        return None, f"per-layer outputs unavailable ({type(error).__name__}: {error})"
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return [keras.ops.convert_to_numpy(_first(o)) for o in outputs], None


# --- levels -------------------------------------------------------------------------------


def check_structure(pairs, torch_model, keras_model, x, x_keras) -> Check:
    """Every weighted layer matched (by kind and converted shape, in `mapping`), the same
    trainable flags, the same number of weights in Keras's layout, the same output shape."""
    problems = []
    for pair in pairs:
        torch_trainable = {n: p.requires_grad for n, p in pair.torch_module.named_parameters()}
        frozen_torch = not any(torch_trainable.values())
        frozen_keras = not pair.keras_layer.trainable_weights
        if frozen_torch != frozen_keras:
            problems.append(
                f"{pair.label()}: trainable in {'keras' if frozen_torch else 'torch'} only"
            )
    counts = {
        "torch_trainable": sum(p.numel() for p in torch_model.parameters() if p.requires_grad),
        "keras_trainable": int(sum(np.prod(w.shape) for w in keras_model.trainable_weights)),
        "keras_weights": int(sum(np.prod(w.shape) for w in keras_model.weights)),
    }
    outputs = torch_forward(torch_model, x[:2]), keras_forward(keras_model, x_keras[:2])
    aligned = align(outputs[0], outputs[1].shape)
    if aligned is None:
        problems.append(f"output shapes differ: torch {outputs[0].shape}, keras {outputs[1].shape}")
    return Check(
        "structure",
        not problems,
        float(len(problems)),
        0.0,
        {"layers": "matched by kind and shape", "trainable": "same per layer"},
        {
            "first_failure": problems[0] if problems else None,
            "layer_pairs": [pair.label() for pair in pairs],
            "parameter_count": counts,
            "output_shape": {"torch": list(outputs[0].shape), "keras": list(outputs[1].shape)},
            # An LSTM's two torch biases are one Keras bias: counts differ, shapes do not.
            "note": "torch's trainable count includes both LSTM biases; Keras holds their sum",
        },
    )


def check_weights(pairs) -> Check:
    """torch -> Keras -> torch -> Keras is exact, and torch's arrays come back (an LSTM's
    two biases as their sum, the only thing the Keras layer holds)."""
    failures, abs_diff = [], 0.0
    for pair in pairs:
        keras_weights = [np.asarray(w) for w in pair.keras_layer.get_weights()]
        back = pair.to_torch(keras_weights)
        again = pair.to_keras(back)
        original = pair.torch_arrays()
        for name, value in back.items():
            expected = original[name]
            # An LSTM's (or a reset-before GRU's) two torch biases are one Keras bias.
            summed = pair.kind == "lstm" or (
                pair.kind == "gru" and not pair.keras_layer.reset_after
            )
            if summed and name.startswith("bias_"):
                value, expected = (
                    back["bias_ih_l0"] + back["bias_hh_l0"],
                    (original["bias_ih_l0"] + original["bias_hh_l0"]),
                )
            if value.shape != expected.shape or not np.array_equal(value, expected):
                failures.append(f"{pair.torch_name}.{name} does not come back from Keras")
                abs_diff = max(abs_diff, gap(expected, value))
        for index, (a, b) in enumerate(zip(keras_weights, again, strict=True)):
            if a.shape != b.shape or not np.array_equal(a, b):
                failures.append(f"{pair.keras_name} weight {index} changes on a round trip")
                abs_diff = max(abs_diff, gap(a, b))
    return Check(
        "weights",
        not failures,
        abs_diff,
        0.0,
        {"exact": True},
        {"first_failure": failures[0] if failures else None, "layers": len(pairs)},
    )


def check_forward(pairs, torch_model, keras_model, x, x_keras, parity: ParitySpec, rows) -> Check:
    """Same outputs in inference mode, and the first matched layer whose output differs.

    Each gap is bounded by max(atol + rtol * max|torch's|, forward_floor_factor x torch's
    own float32 error there, measured against a float64 copy of it): deep nets with
    low-variance BatchNorm channels amplify rounding past any fixed rtol.
    """
    torch_outs, torch_out = torch_layer_outputs(pairs, torch_model, x)
    exact_outs, exact_out = torch_layer_outputs(pairs, torch_model, x, float64=True)
    keras_out = keras_forward(keras_model, x_keras)
    factor = parity.forward_floor_factor

    def bound(ours, exact):
        plain = bound_of(ours, parity.forward_rtol, parity.forward_atol)
        return max(plain, factor * gap(ours, exact)) if exact is not None else plain

    aligned = align(torch_out, keras_out.shape)
    final_bound = bound(torch_out, exact_out)
    delta = gap(aligned, keras_out) if aligned is not None else float("inf")
    keras_outs, unavailable = keras_layer_outputs(pairs, keras_model, x_keras)
    gaps, first, previous = {}, None, None
    for index, pair in enumerate(pairs if keras_outs is not None else []):
        theirs = keras_outs[index]
        ours, exact = (
            _as_keras_output(pair, align(out, theirs.shape)) if out is not None else None
            for out in (torch_outs[index], exact_outs[index])
        )
        if ours is None:
            gaps[pair.torch_name] = None
            continue
        layer_gap = gap(ours, theirs)
        gaps[pair.torch_name] = layer_gap
        layer_bound = bound(ours, exact)
        if first is None and not layer_gap <= layer_bound:
            first = _part_message(pair, previous, layer_gap, layer_bound, ours, theirs, rows)
        previous = pair
    if not delta <= final_bound and first is None:
        first = f"the outputs differ by {delta:.2e} (bound {final_bound:.2e}), but " + (
            f"every matched layer agrees: look after {previous.label()} (pooling, flatten, "
            "activation, residual adds, the output function)"
            if keras_outs is not None and previous is not None
            else (unavailable or "no layer output could be compared")
        )
    return Check(
        "forward",
        first is None,
        delta,
        delta / max(float(np.max(np.abs(torch_out))), 1e-30),
        {
            "rtol": parity.forward_rtol,
            "atol": parity.forward_atol,
            "rounding_floor": f"{factor} x torch's float32 error against float64",
        },
        {
            "first_failure": first,
            "examples": len(x),
            "layer_outputs_max_abs_diff": gaps,
            "torch_float32_error": gap(torch_out, exact_out),
            "per_layer": unavailable or "inference mode, each model's own forward",
        },
    )


def _as_keras_output(pair, torch_output):
    """torch's output as the Keras layer gives it: a Dense or Conv with an activation
    (`Dense(500, activation="relu")`) outputs it applied, torch's Linear before its ReLU."""
    activation = getattr(pair.keras_layer, "activation", None)
    if torch_output is None or pair.kind not in ("dense", "conv") or activation is None:
        return torch_output
    if getattr(activation, "__name__", "") == "linear":
        return torch_output
    return np.asarray(keras.ops.convert_to_numpy(activation(torch_output)), torch_output.dtype)


def _part_message(pair, previous, layer_gap, bound, ours, theirs, rows) -> str:
    with np.errstate(invalid="ignore"):
        delta = np.abs(ours.astype(np.float64) - theirs)
    delta = np.where(np.isnan(delta), np.inf, delta)
    where = int(np.argmax(delta))
    index = np.unravel_index(where, ours.shape)
    text = (
        f"{pair.label()}: output differs by {layer_gap:.2e} (bound {bound:.2e}; at index "
        f"{tuple(int(i) for i in index)}: torch {float(ours[index]):.6g}, keras "
        f"{float(theirs[index]):.6g}; {np.count_nonzero(delta > bound)} of "
        f"{ours.size} elements off)"
    )
    text += (
        f"; every layer up to {previous.torch_name} agrees"
        if previous is not None
        else "; it is the first matched layer"
    )
    causes = [
        f"{r['setting']} torch {r['torch']} vs keras {r['keras']}"
        for r in rows
        if r["torch_layer"] == pair.torch_name and not r["intrinsic"]
    ]
    if causes:
        text += "; defaults that differ here: " + "; ".join(causes)
    return text


# --- gradients and optimizer -------------------------------------------------------------


def torch_loss_and_gradients(pairs, torch_model, loss, x, y):
    """(loss, per pair {name: gradient}) of one batch, training mode."""
    torch_model.train()
    torch_model.zero_grad(set_to_none=True)
    value = loss.torch(_first(torch_model(torch_tensor(x))), torch.as_tensor(y))
    value.backward()
    grads = [
        {
            name: p.grad.detach().cpu().numpy()
            for name, p in pair.torch_module.named_parameters()
            if p.grad is not None
        }
        for pair in pairs
    ]
    torch_model.zero_grad(set_to_none=True)
    return float(value.detach()), grads


def keras_loss_and_gradients(keras_model, loss, x_keras, y):
    """(loss, {id(variable): gradient}) of one batch, training mode, on this backend."""

    def loss_of(call):
        return keras.ops.mean(loss.keras(y, _first(call(x_keras, training=True))))

    value, grads = contract.load("keras").value_and_gradients(keras_model, loss_of)
    return float(keras.ops.convert_to_numpy(value)), {
        id(v): (np.zeros(v.shape, np.float32) if g is None else keras.ops.convert_to_numpy(g))
        for v, g in zip(keras_model.trainable_variables, grads, strict=True)
    }


def trainable_in_keras_layout(pair, arrays) -> list[tuple[int, str, np.ndarray]]:
    """(index in the Keras layer's weights, name, array) of its trainable weights."""
    converted = pair.to_keras(arrays, gradients=True)
    return [
        (index, f"{pair.keras_name}.{weight.name}", converted[index])
        for index, weight in enumerate(pair.keras_layer.weights)
        if weight.trainable
    ]


def check_gradients(pairs, torch_model, keras_model, loss, x, x_keras, y, parity) -> Check:
    """Same loss and per-tensor gradients, both in training mode, in Keras's layout."""
    torch_loss, torch_grads = torch_loss_and_gradients(pairs, torch_model, loss, x, y)
    keras_loss, keras_grads = keras_loss_and_gradients(keras_model, loss, x_keras, y)
    loss_gap = abs(torch_loss - keras_loss)
    first = None
    tensors, ours_all, theirs_all = [], [], []
    for pair, grads in zip(pairs, torch_grads, strict=True):
        variables = pair.keras_layer.weights
        for index, name, ours in trainable_in_keras_layout(pair, grads):
            theirs = keras_grads.get(id(variables[index]))
            if theirs is None:
                continue
            delta = gap(ours, theirs)
            bound = bound_of(ours, parity.gradient_rtol, parity.gradient_atol)
            ok = delta <= bound
            if not ok and first is None:
                first = (
                    f"the gradient of {name} ({pair.label()}) differs by {delta:.2e} "
                    f"(bound {bound:.2e})"
                )
            tensors.append(
                {
                    "tensor": name,
                    "max_abs": float(np.max(np.abs(ours))),
                    "max_abs_diff": delta,
                    "ok": ok,
                }
            )
            ours_all.append(ours)
            theirs_all.append(theirs)
    if first is None and loss_gap > parity.loss_atol:
        first = f"the loss differs by {loss_gap:.2e} (bound {parity.loss_atol:.2e})"
    abs_diff, rel_diff = differences(ours_all, theirs_all)
    return Check(
        "gradients",
        first is None,
        max(abs_diff, loss_gap),
        rel_diff,
        {
            "loss_atol": parity.loss_atol,
            "per_tensor": f"|delta| <= {parity.gradient_rtol} * max|g| + {parity.gradient_atol}",
        },
        {
            "first_failure": first,
            "loss": {"torch": torch_loss, "keras": keras_loss},
            "tensors": tensors,
        },
    )


def check_optimizer(pairs, torch_model, keras_model, loss, optimizers, x, y, parity) -> Check:
    """Each side's optimizer, fed the same gradients (torch's, one batch) for
    `pair_optimizer_steps` steps from the same weights, leaves the same parameters."""
    start = {k: v.clone() for k, v in torch_model.state_dict().items()}
    _, grads = torch_loss_and_gradients(pairs, torch_model, loss, x, y)
    torch_optimizer, keras_optimizer = optimizers.torch(torch_model), optimizers.keras()
    keras_grads = {}
    for pair, pair_grads in zip(pairs, grads, strict=True):
        for index, _, array in trainable_in_keras_layout(pair, pair_grads):
            keras_grads[id(pair.keras_layer.weights[index])] = array
    variables = keras_model.trainable_variables
    try:
        for _ in range(parity.pair_optimizer_steps):
            for pair, pair_grads in zip(pairs, grads, strict=True):
                for name, p in pair.torch_module.named_parameters():
                    if name in pair_grads:
                        p.grad = torch.as_tensor(pair_grads[name]).clone()
            torch_optimizer.step()
            keras_optimizer.apply_gradients(
                [(keras.ops.convert_to_tensor(keras_grads[id(v)]), v) for v in variables]
            )
        first, worst = _first_param_gap(pairs, parity.optimizer_atol, parity.optimizer_rtol)
        rows = layer_defaults.optimizer_rows(torch_optimizer, keras_optimizer)
        if first is not None and rows:
            first += "; optimizer settings that differ: " + "; ".join(
                f"{r['setting']} torch {r['torch']} vs keras {r['keras']}" for r in rows
            )
    finally:
        torch_model.zero_grad(set_to_none=True)
        torch_model.load_state_dict(start)
        mapping.copy_torch_to_keras(pairs)
    return Check(
        "optimizer",
        first is None,
        worst,
        0.0,
        {"atol": parity.optimizer_atol, "rtol": parity.optimizer_rtol},
        {
            "first_failure": first,
            "steps": parity.pair_optimizer_steps,
            "torch_optimizer": type(torch_optimizer).__name__,
            "keras_optimizer": type(keras_optimizer).__name__,
            "hyperparameters": optimizer_settings(torch_optimizer, keras_optimizer),
            "differences": rows,
        },
    )


def _first_param_gap(pairs, atol, rtol):
    first, worst = None, 0.0
    for pair in pairs:
        ours_all = pair.to_keras(pair.torch_arrays())
        for index, weight in enumerate(pair.keras_layer.weights):
            if not weight.trainable:
                continue
            ours, theirs = ours_all[index], np.asarray(weight.numpy())
            delta = gap(ours, theirs)
            worst = max(worst, delta)
            bound = bound_of(ours, rtol, atol)
            if first is None and not delta <= bound:
                first = (
                    f"{pair.keras_name}.{weight.name} ({pair.label()}) differs by "
                    f"{delta:.2e} (bound {bound:.2e})"
                )
    return first, worst


def optimizer_settings(torch_optimizer, keras_optimizer) -> dict:
    """The two optimizers' hyperparameters side by side (what differs is listed first)."""
    group = {k: v for k, v in torch_optimizer.param_groups[0].items() if k != "params"}
    config = keras_optimizer.get_config()
    return {
        "torch": {k: _plain(v) for k, v in group.items()},
        "keras": {k: _plain(v) for k, v in config.items()},
    }


def _plain(value):
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)
