"""Gradients (the same loss and per-tensor gradients in training mode, dropout off on
both sides) and optimizer (each side's optimizer fed torch's gradients for a few steps
leaves the same parameters). Both leave the models as they found them.

Gradient bounds: per tensor max(rtol * max|g| + atol, gradient_floor_factor x |torch's
float32 gradient - its float64 copy's|): a deep net's own rounding, measured.

Stage: pair.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from compare.pair import frameworks, layers_state, trace
from compare.pair.result import Check, bound_of, differences, gap
from compare.pair.session import unit_parameters
from compare.pair.units import has_weights


def torch_gradients(session, model=None, pairs=None, float64=False, unit_list=None):
    """(loss, per pair {name: gradient}) of the given batch, training mode, no dropout."""
    model = model if model is not None else session.torch_model
    pairs = pairs if pairs is not None else session.pairing.pairs
    random = session.random_units("torch", unit_list)
    with layers_state.kept_torch(model), session.no_randomness(random):
        model.zero_grad(set_to_none=True)
        value = session.torch_loss(model, float64)
        value.backward()
        grads = []
        for pair in pairs:
            if not has_weights(pair.torch_unit):
                grads.append({})
                continue
            grads.append(
                {
                    name: p.grad.detach()
                    .cpu()
                    .numpy()
                    .astype(np.float64 if float64 else np.float32)
                    for name, p in unit_parameters(pair).items()
                    if p.grad is not None
                }
            )
        model.zero_grad(set_to_none=True)
    return float(value.detach()), grads


def nudge(model) -> None:
    """Every parameter one ulp up: a start that differs from the model's by rounding."""
    import torch

    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.nextafter(p, torch.full_like(p, np.inf)))


def copy_pairs(session, units_copy):
    by_name = {u.name: u for u in units_copy}
    return [
        dataclasses.replace(p, torch_unit=by_name.get(p.torch_name, p.torch_unit))
        for p in session.pairing.pairs
    ]


def keras_gradients(session):
    """(loss, {id(variable): gradient}) on this backend, training mode, no dropout."""

    with layers_state.kept_keras(session.keras_model), session.no_randomness([]):
        value, grads = frameworks.keras_value_and_gradients(
            session.keras_model, session.keras_loss_of()
        )
    variables = session.keras_model.trainable_variables
    return float(trace.to_numpy(value)), {
        id(v): (np.zeros(v.shape, np.float32) if g is None else trace.to_numpy(g))
        for v, g in zip(variables, grads, strict=True)
    }


def trainable_in_keras_layout(pair, gradients):
    """(Keras variable, its name, torch's gradient in its layout) per trainable weight."""
    converted = pair.converter.gradients_to_keras(pair, gradients)
    return [
        (weight, f"{pair.keras_name}.{weight.path.split('/')[-1]}", np.asarray(converted[index]))
        for index, weight in enumerate(pair.keras_weights())
        if weight.trainable
    ]


def check_gradients(session) -> Check:
    spec = session.spec
    torch_loss, grads = torch_gradients(session)
    model64, units64 = session.torch_copy(float64=True)
    pairs64 = copy_pairs(session, units64)
    exact_loss, grads64 = torch_gradients(
        session, model64, pairs64, float64=True, unit_list=units64
    )
    nudged_model, nudged_units = session.torch_copy(float64=False)
    nudge(nudged_model)
    nudged_loss, grads_nudged = torch_gradients(
        session, nudged_model, copy_pairs(session, nudged_units), unit_list=nudged_units
    )
    keras_loss, keras_grads = keras_gradients(session)
    loss_gap = abs(torch_loss - keras_loss)
    factor = spec.gradient_floor_factor
    loss_bound = max(
        spec.loss_atol,
        factor * abs(torch_loss - exact_loss),
        factor * abs(torch_loss - nudged_loss),
    )
    first, tensors, ours_all, theirs_all = None, [], [], []
    for pair, pair64, g32, g64, gn in zip(
        session.pairing.pairs, pairs64, grads, grads64, grads_nudged, strict=True
    ):
        if not has_weights(pair.torch_unit):
            continue
        exact = {id(w): a for w, _, a in trainable_in_keras_layout(pair64, g64)}
        moved = {id(w): a for w, _, a in trainable_in_keras_layout(pair, gn)}
        for weight, name, ours in trainable_in_keras_layout(pair, g32):
            theirs = keras_grads.get(id(weight))
            if theirs is None:
                continue
            delta = gap(ours, theirs)
            truth = exact.get(id(weight))
            if truth is not None and truth.size and np.max(np.abs(truth)) <= gap(ours, truth):
                # The true gradient is below float32's resolution (a bias before a
                # normalisation: it cancels to zero): both sides hold rounding noise.
                tensors.append(
                    {
                        "tensor": name,
                        "max_abs": float(np.max(np.abs(truth))),
                        "max_abs_diff": delta,
                        "ok": True,
                        "note": "zero gradient (cancels): not compared",
                    }
                )
                continue
            own = max(
                gap(ours, exact.get(id(weight), ours)), gap(ours, moved.get(id(weight), ours))
            )
            floor = factor * own
            bound = max(bound_of(ours, spec.gradient_rtol, spec.gradient_atol), floor)
            ok = delta <= bound
            if not ok and first is None:
                first = (
                    f"the gradient of {name} ({pair.label()}) differs by {delta:.2e} "
                    f"(bound {bound:.2e}; torch's own rounding there {own:.1e})"
                )
                rows = [s for s in pair.converter.settings(pair) if s.differs and not s.intrinsic]
                if rows:
                    first += "; settings that differ here: " + "; ".join(
                        f"{s.name} torch {s.torch} vs keras {s.keras} ({s.effect})" for s in rows
                    )
            tensors.append(
                {
                    "tensor": name,
                    "max_abs": float(np.max(np.abs(ours))) if ours.size else 0.0,
                    "max_abs_diff": delta,
                    "bound": bound,
                    "ok": ok,
                }
            )
            ours_all.append(ours)
            theirs_all.append(theirs)
    if first is None and not loss_gap <= loss_bound:
        first = f"the loss differs by {loss_gap:.2e} (bound {loss_bound:.2e})"
    abs_diff, rel_diff = differences(ours_all, theirs_all)
    return Check(
        "gradients",
        first is None,
        max(abs_diff, loss_gap),
        rel_diff,
        {
            "loss_atol": spec.loss_atol,
            "per_tensor": f"|delta| <= max({spec.gradient_rtol} * max|g| + {spec.gradient_atol}, "
            f"{spec.gradient_floor_factor:g} x torch's own rounding: its float32 gradient against "
            "a float64 copy's and a one-ulp nudged start's)",
        },
        {
            "first_failure": first,
            "loss": {"torch": torch_loss, "keras": keras_loss, "torch_float64": exact_loss},
            "tensors": tensors,
            "dropout": "off on both sides",
        },
    )


def check_optimizer(session) -> Check:
    """Each side's optimizer fed torch's gradients of one batch, `optimizer_steps` steps
    from the same weights: the same parameters after each."""
    import keras
    import torch

    spec = session.spec
    _, grads = torch_gradients(session)
    model, keras_model = session.torch_model, session.keras_model
    by_variable = {}
    for pair, pair_grads in zip(session.pairing.pairs, grads, strict=True):
        if has_weights(pair.torch_unit):
            for weight, _, array in trainable_in_keras_layout(pair, pair_grads):
                by_variable[id(weight)] = array
    with layers_state.kept_torch(model), layers_state.kept_keras(keras_model):
        torch_optimizer, keras_optimizer = (
            session.optimizers.torch(model),
            session.optimizers.keras(),
        )
        variables = keras_model.trainable_variables
        for _ in range(spec.optimizer_steps):
            for pair, pair_grads in zip(session.pairing.pairs, grads, strict=True):
                for name, p in (
                    unit_parameters(pair).items() if has_weights(pair.torch_unit) else ()
                ):
                    if name in pair_grads:
                        p.grad = torch.as_tensor(pair_grads[name]).clone()
            torch_optimizer.step()
            keras_optimizer.apply_gradients(
                [
                    (
                        keras.ops.convert_to_tensor(
                            by_variable.get(id(v), np.zeros(v.shape, np.float32))
                        ),
                        v,
                    )
                    for v in variables
                ]
            )
        first, worst = _first_parameter_gap(session, spec.optimizer_atol, spec.optimizer_rtol)
        rows = optimizer_rows(torch_optimizer, keras_optimizer)
        if first is not None and rows:
            first += "; optimizer settings that differ: " + "; ".join(
                f"{r['setting']} torch {r['torch']} vs keras {r['keras']}" for r in rows
            )
        model.zero_grad(set_to_none=True)
        names = (type(torch_optimizer).__name__, type(keras_optimizer).__name__)
    return Check(
        "optimizer",
        first is None,
        worst,
        0.0,
        {"atol": spec.optimizer_atol, "rtol": spec.optimizer_rtol},
        {
            "first_failure": first,
            "steps": spec.optimizer_steps,
            "torch_optimizer": names[0],
            "keras_optimizer": names[1],
            "differences": rows,
        },
    )


def _first_parameter_gap(session, atol, rtol):
    first, worst = None, 0.0
    for pair in session.pairing.pairs:
        if not has_weights(pair.torch_unit):
            continue
        ours_all = pair.to_keras(pair.torch_arrays())
        for index, weight in enumerate(pair.keras_weights()):
            if not weight.trainable:
                continue
            ours, theirs = ours_all[index], trace.to_numpy(weight)
            delta = gap(ours, theirs)
            worst = max(worst, delta)
            bound = bound_of(ours, rtol, atol)
            if first is None and not delta <= bound:
                first = (
                    f"{pair.keras_name}.{weight.path.split('/')[-1]} ({pair.label()}) differs by "
                    f"{delta:.2e} (bound {bound:.2e})" + intrinsic_note(pair)
                )
    return first, worst


def intrinsic_note(pair) -> str:
    """The differences no setting removes at this pair, which may explain a training gap
    (an LSTM's two trained biases)."""
    rows = [s for s in pair.converter.settings(pair) if s.intrinsic and s.differs]
    return "".join(f"; {s.name}: torch {s.torch}, keras {s.keras} ({s.effect})" for s in rows)


def optimizer_rows(torch_optimizer, keras_optimizer) -> list[dict]:
    """The two optimizers' settings and update rules where they differ."""
    group = torch_optimizer.param_groups[0]
    config = keras_optimizer.get_config()
    kind = (type(torch_optimizer).__name__, type(keras_optimizer).__name__)
    rows = []
    for torch_key, keras_key in (
        ("lr", "learning_rate"),
        ("momentum", "momentum"),
        ("nesterov", "nesterov"),
        ("eps", "epsilon"),
        ("weight_decay", "weight_decay"),
        ("alpha", "rho"),
    ):
        if torch_key in group and keras_key in config:
            ours, theirs = group[torch_key], config[keras_key]
            if isinstance(ours, (int, float)) and not isinstance(ours, bool):
                differ = not np.isclose(float(ours), float(theirs or 0.0), rtol=1e-6, atol=0)
            else:
                differ = bool(ours) != bool(theirs)
            if differ:
                rows.append(_row(torch_key, ours, theirs, "another update"))
    if (
        "betas" in group
        and "beta_1" in config
        and not np.allclose(group["betas"], (config["beta_1"], config["beta_2"]), rtol=1e-6)
    ):
        rows.append(
            _row("betas", group["betas"], (config["beta_1"], config["beta_2"]), "another update")
        )
    if kind == ("Adam", "Adam"):
        rows.append(
            _row(
                "update rule",
                "eps added to sqrt(v_hat)",
                "epsilon added to sqrt(v) (epsilon-hat)",
                "steps differ where |g| is near epsilon",
            )
        )
    if kind == ("RMSprop", "RMSprop"):
        rows.append(
            _row(
                "update rule",
                "g / (sqrt(v) + eps)",
                "g / sqrt(v + epsilon)",
                "steps differ where |g| is near sqrt(epsilon)",
            )
        )
    return rows


def _row(setting, torch_value, keras_value, effect) -> dict:
    return {
        "torch_layer": "optimizer",
        "keras_layer": "optimizer",
        "setting": setting,
        "torch": str(torch_value),
        "keras": str(keras_value),
        "effect": effect,
        "intrinsic": False,
    }
