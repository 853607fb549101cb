"""What counts as one unit on each side before pairing, and the weightless units
between weighted pairs: an expandable Keras layer (MultiHeadAttention) is one unit where
torch has one of its kind, else its sublayers are; a depthwise torch convolution and the
1x1 one reading it are one unit against a Keras SeparableConv; activations, pooling and
dropout line up by kind between the weighted pairs that ran last before them.

Stage: pair.
"""

from __future__ import annotations

import difflib

from compare.pair import layout, registry
from compare.pair.units import Unit, has_weights


def choose_granularity(keras_units: list[Unit], torch_units: list[Unit]) -> list[Unit]:
    """An expandable Keras layer (MultiHeadAttention) is one unit where torch has units of
    its kind, else its sublayers are."""
    parents = {id(u.expands): u.expands for u in keras_units if u.expands is not None}
    whole = set()
    for parent_id, parent in parents.items():
        if any(any(c is d for d in parent.converters) for t in torch_units for c in t.converters):
            whole.add(parent_id)
    out = []
    for unit in keras_units:
        if unit.expands is not None and id(unit.expands) in whole:
            continue
        if id(unit) in parents and id(unit) not in whole:
            continue
        out.append(unit)
    return out


def merge_separable(torch_units, keras_units, absorbed):
    """A depthwise torch convolution and the 1x1 one reading its output, as one unit,
    as many times as Keras has SeparableConv layers."""
    wanted = sum(1 for k in keras_units if k.kind == "separable")
    if not wanted:
        return torch_units
    from compare.pair.layers.conv import SeparablePair

    out, skip = list(torch_units), set()
    by_input = {}
    for unit in torch_units:
        if unit.calls and unit.calls[0].input_id is not None:
            by_input.setdefault(unit.calls[0].input_id, []).append(unit)
    for depthwise in by_order(torch_units):
        if wanted == 0:
            break
        module = depthwise.obj
        if (
            depthwise.kind != "conv"
            or getattr(module, "groups", 1) != getattr(module, "in_channels", 0)
            or not depthwise.calls
        ):
            continue
        readers = [u for u in by_input.get(depthwise.calls[0].output_id, []) if u.kind == "conv"]
        pointwise = next((u for u in readers if all(k == 1 for k in u.obj.kernel_size)), None)
        if pointwise is None:
            continue
        obj = SeparablePair(depthwise, pointwise)
        merged = Unit(
            "torch", f"{depthwise.name}+{pointwise.name}", obj, registry.candidates(obj, "torch")
        )
        merged.calls = pointwise.calls
        index = out.index(depthwise)
        out[index] = merged
        skip.add(id(pointwise))
        absorbed.append((depthwise, f"inside Keras's separable convolution with {pointwise.name}"))
        wanted -= 1
    return [u for u in out if id(u) not in skip]


def pair_weightless(torch_units, keras_units, pairs, matcher, take, input_layout):
    """Weightless units grouped by the weighted pair that ran last before them on each
    side, lined up by kind (an activation by its function) within each group."""
    anchors = list(pairs)

    def groups(units, side):
        side_anchors = sorted(
            anchors, key=lambda p: (p.torch_unit if side == "torch" else p.keras_unit).order
        )
        found: dict[int, list[Unit]] = {}
        for unit in units:
            if has_weights(unit) or not unit.calls:
                continue
            before = None
            for pair in side_anchors:
                own = pair.torch_unit if side == "torch" else pair.keras_unit
                if own.order < unit.order:
                    before = pair
            found.setdefault(id(before) if before else 0, []).append(unit)
        return found, {id(p): p for p in anchors}

    torch_groups, by_id = groups(torch_units, "torch")
    keras_groups, _ = groups(keras_units, "keras")
    unpaired = []
    for key in set(torch_groups) | set(keras_groups):
        ours, theirs = by_order(torch_groups.get(key, [])), by_order(keras_groups.get(key, []))
        anchor = by_id.get(key)
        layouts = (layout.torch_layout(anchor), anchor.keras_layout) if anchor else input_layout
        matched_t, matched_k = set(), set()
        a = [u.converters[0].align_key(u.obj) for u in ours]
        b = [u.converters[0].align_key(u.obj) for u in theirs]
        lined_up = []
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(
            None, a, b, autojunk=False
        ).get_opcodes():
            if tag == "equal" or (
                # The same kind at the same place, another variant (a sigmoid where torch
                # has a hard sigmoid): paired, so that the setting is named.
                tag == "replace"
                and i2 - i1 == j2 - j1
                and all(
                    x.split(":")[0] == y.split(":")[0]
                    for x, y in zip(a[i1:i2], b[j1:j2], strict=True)
                )
            ):
                lined_up += list(zip(range(i1, i2), range(j1, j2), strict=True))
        for index_t, index_k in lined_up:
            t, k = ours[index_t], theirs[index_k]
            pair, _ = matcher.fit(t, k)
            if pair is None:
                continue
            pair.context.setdefault("torch_layout", layouts[0])
            pair.context.setdefault("keras_layout", layouts[1])
            take(pair, "order, between the same weighted layers")
            matched_t.add(id(t))
            matched_k.add(id(k))
        unpaired += [u for u in ours if id(u) not in matched_t]
        unpaired += [u for u in theirs if id(u) not in matched_k]
    return unpaired


def by_order(units: list[Unit]) -> list[Unit]:
    return sorted(units, key=lambda u: u.order)  # stable: uncalled units keep their order
