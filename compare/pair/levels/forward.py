"""Forward: the same outputs in inference mode, and the first layer pair where the two
part, with why: whether its input already differed (the cause lies in the layers
between it and the last pair that agreed, listed with their settings) or its input
agreed (the layer computes otherwise: its settings that differ).

Each gap is bounded by max(atol + rtol * max|torch's|, forward_floor_factor x torch's own
float32 error there, against a float64 copy of the model).

Stage: pair.
"""

from __future__ import annotations

import numpy as np

from compare.pair.levels.structure import final_alignment
from compare.pair.result import Check, bound_of, gap, where


def _bound(spec, ours, exact):
    plain = bound_of(ours, spec.forward_rtol, spec.forward_atol)
    return max(plain, spec.forward_floor_factor * gap(ours, exact)) if exact is not None else plain


def check_forward(session) -> Check:
    spec = session.spec
    torch_out, torch_calls = session.run_torch()
    model64, units64 = session.torch_copy(float64=True)
    exact_out, exact_calls = session.run_torch(model64, units64, float64=True)
    keras_out, keras_calls = session.run_keras()
    rows, not_compared, first, previous = {}, [], None, None
    for pair in session.pairing.pairs:
        reason = pair.converter.compared(pair)
        ours_calls = torch_calls.get(pair.torch_name, [])
        theirs_calls = keras_calls.get(pair.keras_name, [])
        exact_list = exact_calls.get(pair.torch_name, [])
        if reason is None and (not ours_calls or not theirs_calls):
            reason = (
                "not called in the forward pass"
                if not ours_calls and not theirs_calls
                else (f"called by {'torch' if ours_calls else 'Keras'} only")
            )
        if reason is not None:
            not_compared.append(f"{pair.label()}: {reason}")
            continue
        if len(ours_calls) != len(theirs_calls):
            not_compared.append(
                f"{pair.label()}: called {len(ours_calls)} times by torch, "
                f"{len(theirs_calls)} by Keras (the first "
                f"{min(len(ours_calls), len(theirs_calls))} compared)"
            )
        for index, (ct, ck) in enumerate(zip(ours_calls, theirs_calls, strict=False)):
            ce = exact_list[index] if index < len(exact_list) else None
            if ct.output is None or ck.output is None:
                continue
            ours = pair.converter.align(pair, ct.output, ck.output.shape)
            exact = (
                pair.converter.align(pair, ce.output, ck.output.shape)
                if ce is not None and ce.output is not None
                else None
            )
            if ours is None:
                not_compared.append(
                    f"{pair.label()}: torch's output {tuple(ct.output.shape)} does not line "
                    f"up with Keras's {tuple(ck.output.shape)}"
                )
                continue
            layer_gap, bound = gap(ours, ck.output), _bound(spec, ours, exact)
            key = pair.torch_name if index == 0 else f"{pair.torch_name}#{index + 1}"
            rows[key] = layer_gap
            if first is None and not layer_gap <= bound:
                first = _parted(session, pair, previous, layer_gap, bound, ours, ck, ct, ce)
                session.parted = pair  # what a reproduction isolates
        if first is None:
            previous = pair
    final = (
        final_alignment(session, torch_out, np.shape(keras_out)) if keras_out is not None else None
    )
    exact_final = (
        final_alignment(session, exact_out, np.shape(keras_out)) if keras_out is not None else None
    )
    delta = gap(final, keras_out) if final is not None else float("inf")
    final_bound = _bound(spec, final, exact_final) if final is not None else 0.0
    if first is None and not delta <= final_bound:
        first = f"the outputs differ by {delta:.2e} (bound {final_bound:.2e})" + (
            f", but every compared layer agrees: look after {previous.label()} (pooling, "
            "flatten, activations, residual adds, the output function)"
            if previous is not None
            else ""
        )
        if final is None:
            first = (
                f"the outputs do not line up: torch {np.shape(torch_out)}, keras "
                f"{np.shape(keras_out)}"
            )
    scale = float(np.max(np.abs(final))) if final is not None and np.size(final) else 1.0
    return Check(
        "forward",
        first is None,
        delta,
        delta / max(scale, 1e-30),
        {
            "rtol": spec.forward_rtol,
            "atol": spec.forward_atol,
            "rounding_floor": f"{spec.forward_floor_factor:g} x torch's float32 error "
            "against a float64 copy",
        },
        {
            "first_failure": first,
            "examples": session.inputs.batch,
            "layer_outputs_max_abs_diff": rows,
            "not_compared": not_compared,
            "torch_float32_error": gap(torch_out, exact_out) if torch_out is not None else None,
            "inputs": session.inputs.layout_notes,
        },
    )


def _parted(session, pair, previous, layer_gap, bound, ours, keras_call, torch_call, exact_call):
    """The message for the first pair whose output differs."""
    text = (
        f"{pair.label()}: output differs by {layer_gap:.2e} (bound {bound:.2e}; "
        f"{where(ours, keras_call.output, bound)})"
    )
    input_gap = _input_gap(session, pair, torch_call, keras_call, exact_call)
    settings = [s for s in pair.converter.settings(pair) if s.differs and not s.intrinsic]
    if input_gap is not None and input_gap[0] > input_gap[1]:
        text += f"; its input already differs by {input_gap[0]:.2e}"
        between = _between(session, previous, pair)
        if between:
            text += (
                f"; between {previous.torch_name if previous else 'the inputs'} and it: "
                + "; ".join(between)
            )
    else:
        text += (
            f"; every layer up to {previous.torch_name} agrees"
            if previous is not None
            else "; it is the first layer compared"
        )
        if input_gap is not None:
            text += f" and its input agrees ({input_gap[0]:.1e})"
    if settings:
        text += "; settings that differ here: " + "; ".join(
            f"{s.name} torch {s.torch} vs keras {s.keras}" for s in settings
        )
    if session.pairing.ambiguous:
        text += "; note: " + session.pairing.ambiguous[0]
    return text


def _input_gap(session, pair, torch_call, keras_call, exact_call):
    """(gap, bound) of the pair's first input, in Keras's layout; None when not comparable."""
    if not torch_call.inputs or not keras_call.inputs:
        return None
    theirs = keras_call.inputs[0]
    if (
        theirs is None
        or torch_call.inputs[0] is None
        or not np.issubdtype(np.asarray(theirs).dtype, np.floating)
    ):
        return None
    ours = pair.converter.align_input(pair, torch_call.inputs[0], np.shape(theirs))
    if ours is None:
        return None
    exact = None
    if exact_call is not None and exact_call.inputs:
        exact = pair.converter.align_input(pair, exact_call.inputs[0], np.shape(theirs))
    return gap(ours, theirs), _bound(session.spec, ours, exact)


def _between(session, previous, pair) -> list[str]:
    """The weightless layers each side ran between the last agreeing pair and this one,
    with their settings (an unpaired GELU of another approximation shows here)."""
    lines = []
    for side in ("torch", "keras"):
        start = (
            0
            if previous is None
            else (previous.torch_unit if side == "torch" else previous.keras_unit).order
        )
        end = (pair.torch_unit if side == "torch" else pair.keras_unit).order
        found = []
        for candidate in session.pairing.pairs:
            unit = candidate.torch_unit if side == "torch" else candidate.keras_unit
            if start < unit.order < end and not candidate.converter.weighted:
                differing = [s for s in candidate.converter.settings(candidate) if s.differs]
                found.append(
                    unit.label()
                    + (
                        " ("
                        + ", ".join(
                            f"{s.name}: torch {s.torch} vs keras {s.keras}" for s in differing
                        )
                        + ")"
                        if differing
                        else ""
                    )
                )
        for unit in session.pairing.unpaired:
            if unit.side == side and start < unit.order < end:
                found.append(f"{unit.label()} [{_describe(unit)}, no counterpart]")
        if found:
            lines.append(f"{side} ran {', '.join(found)}")
    return lines


def _describe(unit) -> str:
    from compare.pair.layers import activation as weightless

    if unit.kind == "activation":
        found = (
            weightless.keras_activation(unit.obj)
            if unit.side == "keras"
            else weightless.torch_activation(unit.obj)
        )
        return weightless._words(found)
    return unit.kind
