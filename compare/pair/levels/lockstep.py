"""Lockstep: both train from the same weights on the same batches with their own loss
and optimizer (torch's loop, Keras's `train_on_batch`), dropout off on both; losses,
parameters and BatchNorm statistics compared after every step, inference outputs after
the last.

BatchNorm: torch updates its running variance with the unbiased batch variance, Keras
with the biased one. The level predicts Keras's moving variance from torch's: per
channel D_t = (1 - m) D_{t-1} + m s_t / (n - 1) (m: torch's momentum, s_t: the biased
batch variance torch saw, n: values per channel), and compares Keras's with torch's
minus D_t.

Rounding: each gap is bounded by max(atol + rtol * max|w|, lockstep_floor_factor x
torch's own drift, from a one-ulp nudged start and from a float64 copy).

Stage: pair.
"""

from __future__ import annotations

import numpy as np

from compare.pair import layers_state, trace
from compare.pair.levels import training
from compare.pair.levels.structure import final_alignment
from compare.pair.levels.training import copy_pairs
from compare.pair.result import Check, bound_of, gap
from compare.pair.units import has_weights


def batches(session):
    """The lockstep's batches: `lockstep_steps` of `lockstep_batch_size`, cycling."""
    spec, count = session.spec, session.inputs.batch
    size = spec.lockstep_batch_size or count
    starts = max(1, -(-count // size))
    out = []
    for step in range(spec.lockstep_steps):
        part = slice((step % starts) * size, (step % starts) * size + size)
        out.append((session.inputs.sliced(part), np.asarray(session.y)[part]))
    return out


def _batchnorm_pairs(pairs):
    return [i for i, p in enumerate(pairs) if p.kind == "batchnorm" and has_weights(p.torch_unit)]


def _torch_run(session, model, pairs, data, unit_list, nudge=False, float64=False):
    """Train torch on `data`; per step (loss, per pair Keras-layout state, BatchNorm
    variances in Keras's convention); and the Bessel surpluses at the end."""

    if nudge:
        training.nudge(model)
    optimizer = session.optimizers.torch(model)
    norms = _batchnorm_pairs(pairs)
    surplus, seen = dict.fromkeys(norms), {}
    hooks = [
        pairs[i].torch_module.register_forward_pre_hook(
            lambda module, args, key=i: seen.__setitem__(key, args[0].detach())
        )
        for i in norms
    ]
    history = []
    try:
        with session.no_randomness(session.random_units("torch", unit_list)):
            for inputs, y in data:
                optimizer.zero_grad(set_to_none=True)
                value = session.torch_loss(model, float64, inputs, y)
                value.backward()
                optimizer.step()
                state = []
                for i, pair in enumerate(pairs):
                    if not has_weights(pair.torch_unit):
                        state.append([])
                        continue
                    arrays = pair.to_keras(pair.torch_arrays())
                    module = pair.torch_module
                    if i in surplus and module.training and seen.get(i) is not None:
                        arrays[-1] = arrays[-1] - _bessel(surplus, i, module, seen[i])
                    state.append(arrays)
                history.append((float(value.detach()), state))
    finally:
        for hook in hooks:
            hook.remove()
    return history, {i: d for i, d in surplus.items() if d is not None}


def _bessel(surplus, i, module, batch_input):
    values = batch_input.double().transpose(0, 1).reshape(batch_input.shape[1], -1)
    n = values.shape[1]
    biased = values.var(dim=1, unbiased=False).cpu().numpy()
    m = module.momentum if module.momentum is not None else 1.0
    previous = surplus[i] if surplus[i] is not None else 0.0
    surplus[i] = (1 - m) * previous + m * biased / max(n - 1, 1)
    return surplus[i]


def _inference_in_keras_convention(session, model, pairs, surplus, float64=False):
    """torch's inference output with each running variance less its Bessel surplus."""
    import torch

    saved = {}
    with torch.no_grad():
        for i, d in surplus.items():
            buffer = pairs[i].torch_module.running_var
            saved[i] = buffer.clone()
            buffer.sub_(torch.as_tensor(d, dtype=buffer.dtype))
    try:
        out, _ = session.run_torch(model, [], float64=float64, record=False)
        return out
    finally:
        with torch.no_grad():
            for i, value in saved.items():
                pairs[i].torch_module.running_var.copy_(value)


def _keras_run(session, data):
    import keras

    model = session.keras_model
    if session.keras_output is not None or _needs_selection(session):
        inner, choice = model, session.keras_output

        class Selected(keras.Model):
            def __init__(self):
                super().__init__()
                self.inner = inner

            def call(self, inputs, training=None):
                from compare.pair import io

                return io.select(self.inner(inputs, training=training), choice)

        model = Selected()
    history = []
    with session.no_randomness([]):
        model.compile(optimizer=session.optimizers.keras(), loss=session.loss.keras)
        for inputs, y in data:
            value = model.train_on_batch(inputs.keras_inputs, session.keras_targets(y))
            value = value[0] if isinstance(value, (list, tuple)) else value
            history.append(
                (
                    float(value),
                    [
                        [np.asarray(w) for w in p.keras_layer.get_weights()]
                        if has_weights(p.torch_unit)
                        else []
                        for p in session.pairing.pairs
                    ],
                )
            )
    return history


def _needs_selection(session) -> bool:
    raw = session.inputs.sliced(slice(0, 1)).keras_call(session.keras_model)
    return len(trace.tensors_in(raw)) != 1


def check_lockstep(session) -> Check:
    spec = session.spec
    data = batches(session)
    pairs, model = session.pairing.pairs, session.torch_model
    factor = spec.lockstep_floor_factor
    with layers_state.kept_torch(model), layers_state.kept_keras(session.keras_model):
        wide, wide_units = session.torch_copy(float64=True)
        wide_pairs = copy_pairs(session, wide_units)
        wide_data = data
        exact, surplus = _torch_run(session, wide, wide_pairs, wide_data, wide_units, float64=True)
        exact_out = _inference_in_keras_convention(session, wide, wide_pairs, surplus, float64=True)
        nudged_model, nudged_units = session.torch_copy(float64=False)
        nudged_pairs = copy_pairs(session, nudged_units)
        nudged, surplus = _torch_run(
            session, nudged_model, nudged_pairs, data, nudged_units, nudge=True
        )
        nudged_out = _inference_in_keras_convention(session, nudged_model, nudged_pairs, surplus)
        ours, surplus = _torch_run(session, model, pairs, data, session.torch_units())
        ours_out = _inference_in_keras_convention(session, model, pairs, surplus)
        native_out, _ = session.run_torch(record=False)
        theirs = _keras_run(session, data)
        theirs_out, _ = session.run_keras(record=False)
    first, worst, horizon = None, 0.0, None
    for step, (
        (loss_t, state_t),
        (loss_n, state_n),
        (loss_e, state_e),
        (loss_k, state_k),
    ) in enumerate(zip(ours, nudged, exact, theirs, strict=True), start=1):
        loss_gap = abs(loss_t - loss_k)
        loss_bound = max(
            spec.loss_atol, factor * abs(loss_t - loss_n), factor * abs(loss_t - loss_e)
        )
        worst = max(worst, loss_gap)
        if first is None and not loss_gap <= loss_bound:
            first = f"step {step}: the loss differs by {loss_gap:.2e} (bound {loss_bound:.2e})"
        for pair, a_w, n_w, e_w, k_w in zip(pairs, state_t, state_n, state_e, state_k, strict=True):
            if not has_weights(pair.torch_unit):
                continue
            names = [w.path.split("/")[-1] for w in pair.keras_weights()]
            for name, a, b, e, c in zip(names, a_w, n_w, e_w, k_w, strict=False):
                delta = gap(a, c)
                worst = max(worst, delta)
                floor = factor * max(gap(a, b), gap(a, e))
                plain = bound_of(a, spec.lockstep_rtol, spec.lockstep_atol)
                if floor > plain and horizon is None:
                    horizon = step
                if first is None and not delta <= max(plain, floor):
                    first = (
                        f"step {step}: {pair.keras_name}.{name} ({pair.label()}) differs by "
                        f"{delta:.2e} (bound {max(plain, floor):.2e})"
                        + training.intrinsic_note(pair)
                    )
                    rows = [
                        s for s in pair.converter.settings(pair) if s.differs and not s.intrinsic
                    ]
                    if rows:
                        first += "; settings that differ here: " + "; ".join(
                            f"{s.name} torch {s.torch} vs keras {s.keras}" for s in rows
                        )
    shape = np.shape(theirs_out)
    aligned = final_alignment(session, ours_out, shape)
    out_gap = float("inf") if aligned is None else gap(aligned, theirs_out)
    out_bound = max(
        bound_of(
            aligned if aligned is not None else ours_out, spec.forward_rtol, spec.forward_atol
        ),
        factor * gap(ours_out, nudged_out),
        factor * gap(ours_out, exact_out),
    )
    if first is None and not out_gap <= out_bound:
        first = (
            f"after {len(data)} steps, inference outputs differ by {out_gap:.2e} (bound "
            f"{out_bound:.2e}) although every parameter and statistic agrees (torch's "
            "computed with Keras's variance convention)"
        )
    return Check(
        "lockstep",
        first is None,
        max(worst, out_gap),
        0.0,
        {
            "atol": spec.lockstep_atol,
            "rtol": spec.lockstep_rtol,
            "rounding_floor": f"{factor:g} x torch's own drift: from a one-ulp nudged start, "
            "and from a float64 copy",
        },
        {
            "first_failure": first,
            "steps": len(data),
            "batch_size": data[0][0].batch if data else 0,
            "losses": {"torch": [h[0] for h in ours], "keras": [h[0] for h in theirs]},
            "inference_after_training_max_abs_diff": out_gap,
            "bessel_effect_on_outputs_max_abs": gap(native_out, ours_out),
            "held_to_rounding_floor_from_step": horizon,
            "batchnorm_variance": "Keras's compared with torch's minus its Bessel surplus",
            "dropout": "off on both sides",
        },
    )
