"""Lockstep for a user's pair: both train from the same weights on the same batches with
their own loss and optimizer; parameters, BatchNorm statistics and losses are compared
after every step, then inference outputs after the last.

BatchNorm: torch updates its running variance with the unbiased batch variance, Keras
with the biased one, and no setting changes either. The level predicts Keras's moving
variance from torch's own: it follows, per channel, D_t = (1 - m) D_{t-1} + m s_t / (n - 1)
(m: torch's momentum, s_t: the biased batch variance torch saw, n: values per channel),
and compares Keras's with torch's minus D_t. Means are compared as they are, so a
momentum that differs fails at the first step.

Rounding: float32 training drifts, from itself too. The bound of each gap is
max(atol + rtol * max|w|, `lockstep_floor_factor` x torch's own drift: between its run
and a run from a one-ulp nudged start, and between its run and a float64 copy's), as
the study's lockstep level bounds it.

Stage: parity.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch

from compare.parity.pair import mapping
from compare.parity.pair.levels import _first, align, keras_forward, torch_forward, torch_tensor
from compare.parity.pair.result import Check, bound_of, gap


def batches(x, x_keras, y, batch_size: int, steps: int):
    """`steps` batches, cycling through the examples in order."""
    count = max(1, -(-len(x) // batch_size))
    for step in range(steps):
        start = (step % count) * batch_size
        part = slice(start, start + batch_size)
        yield x[part], x_keras[part], y[part]


def _torch_run(pairs, model, loss, optimizers, data, nudge: bool, float64: bool = False):
    """Train torch `len(data)` steps; per step (loss, per pair Keras-layout state incl.
    BatchNorm statistics with Keras's variance convention). `float64`: a float64 copy of
    the model on float64 inputs (the reference float32 rounding is measured by)."""
    if float64:
        model = copy.deepcopy(model).double()
        pairs = [
            dataclasses.replace(p, torch_module=model.get_submodule(p.torch_name)) for p in pairs
        ]
        data = [(_wide(xb), xk, yb) for xb, xk, yb in data]
    if nudge:
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.nextafter(p, torch.full_like(p, np.inf)))
    optimizer = optimizers.torch(model)
    bessel = {i: None for i, pair in enumerate(pairs) if pair.kind == "batchnorm"}
    seen = {}
    hooks = [
        pairs[i].torch_module.register_forward_pre_hook(
            lambda module, args, key=i: seen.__setitem__(key, args[0].detach())
        )
        for i in bessel
    ]
    history = []
    try:
        for xb, _, yb in data:
            model.train()
            optimizer.zero_grad(set_to_none=True)
            inputs = torch.as_tensor(np.ascontiguousarray(xb)) if float64 else torch_tensor(xb)
            value = loss.torch(_first(model(inputs)), torch.as_tensor(yb))
            value.backward()
            optimizer.step()
            state = []
            for i, pair in enumerate(pairs):
                arrays = pair.to_keras(pair.torch_arrays())
                if (
                    i in bessel
                    and pair.torch_module.training
                    and pair.torch_module.track_running_stats
                ):
                    arrays[-1] = arrays[-1] - _bessel_step(bessel, i, pair, seen.get(i))
                state.append(arrays)
            history.append((float(value.detach()), state))
    finally:
        for hook in hooks:
            hook.remove()
    return history, {i: d for i, d in bessel.items() if d is not None}, model


def _forward_in_keras_convention(pairs, model, x, surplus):
    """torch's inference outputs with each running variance less its Bessel surplus:
    what torch computes with Keras's variance convention (restored afterwards)."""
    saved = {}
    with torch.no_grad():
        for i, d in surplus.items():
            buffer = pairs[i].torch_module.running_var
            saved[i] = buffer.clone()
            buffer.sub_(torch.as_tensor(d, dtype=buffer.dtype))
    try:
        return torch_forward(model, x)
    finally:
        with torch.no_grad():
            for i, value in saved.items():
                pairs[i].torch_module.running_var.copy_(value)


def _wide(x):
    return x.astype(np.float64) if np.issubdtype(x.dtype, np.floating) else x


def _bessel_step(bessel, i, pair, batch_input):
    """Advance D (torch's running variance minus Keras's convention) by one step."""
    module = pair.torch_module
    values = batch_input.double().transpose(0, 1).reshape(batch_input.shape[1], -1)
    n = values.shape[1]
    biased = values.var(dim=1, unbiased=False).cpu().numpy()
    m = module.momentum if module.momentum is not None else 1.0
    previous = bessel[i] if bessel[i] is not None else 0.0
    bessel[i] = (1 - m) * previous + m * biased / max(n - 1, 1)
    return bessel[i]


def _keras_run(pairs, model, loss, optimizers, data):
    model.compile(optimizer=optimizers.keras(), loss=loss.keras)
    history = []
    for _, xb, yb in data:
        value = model.train_on_batch(xb, yb)
        value = value[0] if isinstance(value, (list, tuple)) else value
        history.append(
            (float(value), [[np.asarray(w) for w in p.keras_layer.get_weights()] for p in pairs])
        )
    return history


def check_lockstep(
    pairs, torch_model, keras_model, loss, optimizers, x, x_keras, y, parity
) -> Check:
    """Same losses, parameters and BatchNorm statistics after every step; same inference
    outputs after training."""
    data = list(batches(x, x_keras, y, parity.pair_batch_size or len(x), parity.pair_steps))
    start = {k: v.clone() for k, v in torch_model.state_dict().items()}
    try:
        exact, surplus, wide = _torch_run(
            pairs, torch_model, loss, optimizers, data, nudge=False, float64=True
        )
        wide_pairs = [
            dataclasses.replace(p, torch_module=wide.get_submodule(p.torch_name)) for p in pairs
        ]
        exact_out = _forward_in_keras_convention(wide_pairs, wide, _wide(x), surplus)
        nudged, surplus, _ = _torch_run(pairs, torch_model, loss, optimizers, data, nudge=True)
        nudged_out = _forward_in_keras_convention(pairs, torch_model, x, surplus)
        torch_model.load_state_dict(start)
        mapping.copy_torch_to_keras(pairs)
        ours, surplus, _ = _torch_run(pairs, torch_model, loss, optimizers, data, nudge=False)
        ours_out = _forward_in_keras_convention(pairs, torch_model, x, surplus)
        # The intrinsic difference, measured: torch's own outputs, unbiased variances.
        native_out = torch_forward(torch_model, x)
        theirs = _keras_run(pairs, keras_model, loss, optimizers, data)
        theirs_out = keras_forward(keras_model, x_keras)
    finally:
        torch_model.load_state_dict(start)
        mapping.copy_torch_to_keras(pairs)
    first, worst, horizon = None, 0.0, None
    factor = parity.lockstep_floor_factor
    for step, (
        (loss_t, state_t),
        (loss_n, state_n),
        (loss_e, state_e),
        (loss_k, state_k),
    ) in enumerate(zip(ours, nudged, exact, theirs, strict=True), start=1):
        loss_gap = abs(loss_t - loss_k)
        loss_bound = max(
            parity.loss_atol, factor * abs(loss_t - loss_n), factor * abs(loss_t - loss_e)
        )
        worst = max(worst, loss_gap)
        if first is None and not loss_gap <= loss_bound:
            first = f"step {step}: the loss differs by {loss_gap:.2e} (bound {loss_bound:.2e})"
        for pair, ours_w, nudged_w, exact_w, theirs_w in zip(
            pairs, state_t, state_n, state_e, state_k, strict=True
        ):
            names = [w.name for w in pair.keras_layer.weights]
            for name, a, b, e, c in zip(names, ours_w, nudged_w, exact_w, theirs_w, strict=True):
                delta = gap(a, c)
                worst = max(worst, delta)
                floor = factor * max(gap(a, b), gap(a, e))
                plain = bound_of(a, parity.lockstep_rtol, parity.lockstep_atol)
                bound = max(plain, floor)
                if floor > plain and horizon is None:
                    horizon = step
                if first is None and not delta <= bound:
                    first = (
                        f"step {step}: {pair.keras_name}.{name} ({pair.label()}) differs by "
                        f"{delta:.2e} (bound {bound:.2e})"
                    )
    aligned = align(ours_out, theirs_out.shape)  # as it is when the shapes agree
    out_gap = float("inf") if aligned is None else gap(aligned, theirs_out)
    out_bound = max(
        bound_of(ours_out, parity.forward_rtol, parity.forward_atol),
        factor * gap(ours_out, nudged_out),
        factor * gap(ours_out, exact_out),
    )
    if first is None and not out_gap <= out_bound:
        first = (
            f"after {len(data)} steps, inference outputs differ by {out_gap:.2e} "
            f"(bound {out_bound:.2e}) although every parameter and statistic agrees "
            "(torch's computed with Keras's variance convention)"
        )
    return Check(
        "lockstep",
        first is None,
        max(worst, out_gap),
        0.0,
        {
            "atol": parity.lockstep_atol,
            "rtol": parity.lockstep_rtol,
            "rounding_floor": (
                f"{factor} x torch's own drift: from a one-ulp nudged start, and from a "
                "float64 copy"
            ),
        },
        {
            "first_failure": first,
            "steps": len(data),
            "batch_size": len(data[0][0]),
            "losses": {"torch": [h[0] for h in ours], "keras": [h[0] for h in theirs]},
            "inference_after_training_max_abs_diff": out_gap,
            # What the variance conventions alone do to the outputs after these steps.
            "bessel_effect_on_outputs_max_abs": gap(native_out, ours_out),
            "held_to_rounding_floor_from_step": horizon,
            "batchnorm_variance": "Keras's compared with torch's minus its Bessel surplus",
        },
    )
