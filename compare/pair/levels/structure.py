"""Structure (every weighted layer paired, nothing refused, the same trainable flags,
dropout rates and output shape) and weights (every conversion exact both ways).

Stage: pair.
"""

from __future__ import annotations

import numpy as np

from compare.pair import layout
from compare.pair.result import Check, gap
from compare.pair.units import has_weights


def check_structure(session, final_shapes) -> Check:
    problems = []
    for pair in session.pairing.pairs:  # first: they explain the pairing problems after
        problems += pair.converter.structure_problems(pair)
    problems += session.pairing.problems
    sides = session.sides
    as_given = session.as_given
    for name, kind, tensors in sides.torch_unknown:
        line = (
            f"torch module '{name}' ({kind}) holds {', '.join(tensors)}, and no converter "
            "knows it: register one (compare.pair.converter) or port its weights yourself "
            "and pass weights='as_given'"
        )
        (session.notes if as_given else problems).append(line)
    for name, kind, tensors in sides.keras_unknown:
        line = (
            f"Keras layer '{name}' ({kind}) holds {', '.join(tensors)}, and no converter "
            "knows it: register one (compare.pair.converter) or port its weights yourself "
            "and pass weights='as_given'"
        )
        (session.notes if as_given else problems).append(line)
    for pair in session.pairing.pairs:
        if has_weights(pair.torch_unit):
            torch_trainable = any(
                p.requires_grad for p in _parameters(pair.torch_module, pair.converter)
            )
            keras_trainable = bool(pair.keras_layer.trainable_weights)
            if torch_trainable != keras_trainable:
                problems.append(
                    f"{pair.label()}: trainable in {'torch' if torch_trainable else 'keras'} only"
                )
    problems += _random_rates(session)
    problems += decisive_differences(session)
    torch_shape, keras_shape = final_shapes
    if torch_shape is not None and keras_shape is not None:
        aligned = final_alignment(session, np.zeros(torch_shape, np.float32), keras_shape)
        if aligned is None:
            problems.append(f"output shapes differ: torch {torch_shape}, keras {keras_shape}")
    counts = {
        "torch_trainable": sum(
            p.numel() for p in session.torch_model.parameters() if p.requires_grad
        ),
        "keras_trainable": int(
            sum(np.prod(w.shape) for w in session.keras_model.trainable_weights)
        ),
    }
    return Check(
        "structure",
        not problems,
        float(len(problems)),
        0.0,
        {"layers": "paired by mapping, name and execution order, each by kind and shape"},
        {
            "first_failure": problems[0] if problems else None,
            "problems": problems,
            "layer_pairs": [f"{p.label()} [{p.how}]" for p in session.pairing.pairs],
            "kinds": sorted({p.kind for p in session.pairing.pairs}),
            "not_compared": [
                f"{u.side} {u.label()}: no counterpart" for u in session.pairing.unpaired
            ],
            "inside_other_layers": [
                f"torch {u.label()}: {why}" for u, why in session.pairing.absorbed
            ],
            "ambiguous": session.pairing.ambiguous,
            "buffers_not_weights": [
                f"{module}.{name} {shape} {dtype}"
                for module, name, shape, dtype in sides.torch_buffers
            ],
            "parameter_count": counts,
            "output_shape": {
                "torch": list(torch_shape or []),
                "keras": list(keras_shape or []),
            },
        },
    )


def _parameters(module, converter):
    if hasattr(module, "named_parameters"):
        return list(module.parameters(recurse=converter.owns_children))
    return [p for m in (module.depthwise, module.pointwise) for p in m.parameters()]


def decisive_differences(session) -> list[str]:
    """Settings that make two paired layers other functions, whatever the numbers show."""
    problems = []
    for pair in session.pairing.pairs:
        if pair.converter.random:
            continue  # rates: _random_rates
        try:
            settings = pair.converter.settings(pair)
        except Exception:  # noqa: BLE001 - an unreadable setting is noted by the report rows
            continue
        for setting in settings:
            if setting.differs and setting.decisive and not setting.intrinsic:
                problems.append(
                    f"{pair.label()}: {setting.name} torch {setting.torch} vs keras "
                    f"{setting.keras}" + (f" ({setting.effect})" if setting.effect else "")
                )
    return problems


def last_layouts(session) -> tuple[str, str]:
    """(torch, Keras) layouts of the last layer pair that ran: how each holds its output
    (a segmentation map is channels-first in torch, channels-last in Keras)."""
    last = None
    for pair in session.pairing.pairs:
        if pair.keras_unit.calls and (
            last is None or pair.keras_unit.order > last.keras_unit.order
        ):
            last = pair
    return ("last", "last") if last is None else (layout.torch_layout(last), last.keras_layout)


def final_alignment(session, torch_output, keras_shape):
    """torch's compared output in Keras's layout."""
    return layout.align(torch_output, keras_shape, *last_layouts(session))


def _random_rates(session) -> list[str]:
    """Dropout-like layers must drop alike: paired ones at one rate, none left over."""
    problems = []
    paired = set()
    for pair in session.pairing.pairs:
        if not pair.converter.random:
            continue
        paired |= {id(pair.torch_unit), id(pair.keras_unit)}
        ours = pair.converter.random_rate(pair.torch_module)
        theirs = pair.converter.random_rate(pair.keras_layer)
        if not np.isclose(ours, theirs, atol=1e-9):
            problems.append(f"{pair.label()}: torch drops {ours:g} in training, Keras {theirs:g}")
    for side in ("torch", "keras"):
        for unit in session.random_units(side):
            converter = unit.converters[0]
            if id(unit) in paired or not converter.random:
                continue
            rate = converter.random_rate(unit.obj)
            if rate > 0 and unit.calls and unit.expands is not None:
                # Attention dropout inside a MultiHeadAttention paired through its
                # projections: torch's counterpart is a rate inside its attention
                # function (dropout_p), which no traced module shows.
                session.notes.append(
                    f"{side} {unit.label()} drops {rate:g} of the attention weights in "
                    "training; torch's rate there is not visible to the engine (compare "
                    "them yourself); the training levels switch both off"
                )
            elif rate > 0 and unit.calls:
                other = "Keras" if side == "torch" else "torch"
                problems.append(
                    f"{side} {unit.label()} drops {rate:g} in training and has no {other} "
                    "counterpart: give both the same dropout (or none)"
                )
    return problems


def check_weights(session) -> Check:
    """torch -> Keras -> torch is exact for every pair (an LSTM's two biases as their sum);
    with weights as given, Keras's weights are torch's converted."""
    failures, worst = [], 0.0
    as_given = session.as_given
    for pair in session.pairing.pairs:
        if not has_weights(pair.torch_unit):
            continue
        original = pair.torch_arrays()
        held = [np.asarray(w) for w in pair.keras_layer.get_weights()]
        expected = pair.to_keras(original)
        for index, (a, b) in enumerate(zip(expected, held, strict=True)):
            delta = gap(a, b)
            if not delta <= (1e-7 * float(np.max(np.abs(a))) if as_given and a.size else 0.0):
                worst = max(worst, delta)
                failures.append(
                    f"{pair.label()}: Keras weight {pair.keras_weights()[index].path} is not "
                    f"torch's converted (differs by {delta:.2e})"
                )
        back = pair.to_torch(held)
        for name in pair.converter.round_trip(pair, original, back):
            failures.append(f"{pair.label()}: torch's {name} does not come back from Keras")
        again = pair.to_keras(back)
        for index, (a, b) in enumerate(zip(held, again, strict=True)):
            if a.shape != b.shape or not np.array_equal(a, b):
                failures.append(f"{pair.label()}: Keras weight {index} changes on a round trip")
                worst = max(worst, gap(a, b))
    return Check(
        "weights",
        not failures,
        worst,
        0.0,
        {"exact": True},
        {
            "first_failure": failures[0] if failures else None,
            "layers": sum(1 for p in session.pairing.pairs if has_weights(p.torch_unit)),
            "mode": "as given" if as_given else "torch's copied into Keras",
        },
    )
