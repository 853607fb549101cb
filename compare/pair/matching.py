"""Which torch unit is which Keras unit: by the user's mapping, then by name, then by
the order of execution in a traced forward pass, never by declaration order alone.

Weighted units pair one to one, each match checked by kind, converter and converted
shapes. Same-shaped units that read the same input (a query, key and value projection)
cannot be told apart by order: their names decide where they agree (`query`/`query`),
otherwise they pair in execution order and the report says so, and a failure after
them says that a mapping may be needed. A unit whose input another already-paired unit
shares must have a counterpart that shares it too (ResNet's shortcut convolution
against the block's third one). Weightless units (activations, pooling, dropout) pair
between their weighted neighbours, by kind in order; the rest are listed, not guessed.

Stage: pair.
"""

from __future__ import annotations

import dataclasses
import re

from compare.pair import grouping
from compare.pair.result import say
from compare.pair.units import LayerPair, Sides, Unit, has_weights


class MappingError(ValueError):
    """The user's mapping names a layer that is not there, or pairs layers that do not fit."""


@dataclasses.dataclass
class Pairing:
    pairs: list[LayerPair]
    problems: list[str]
    unpaired: list[Unit]  # weightless units with no counterpart: listed, not compared
    ambiguous: list[str]
    absorbed: list[tuple[Unit, str]]  # units inside another pair's unit
    # Every unit in play on each side (an expandable layer as one unit or as its
    # sublayers, a separable pair as one).
    torch_units: list[Unit] = dataclasses.field(default_factory=list)
    keras_units: list[Unit] = dataclasses.field(default_factory=list)


def normalised(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def last_part(name: str) -> str:
    return normalised(re.split(r"[./:]", name)[-1].split("#")[0])


class _Matcher:
    def __init__(self, sides: Sides):
        self.sides = sides
        self.cache: dict[tuple[int, int], tuple] = {}

    def fit(self, t: Unit, k: Unit):
        """(LayerPair, None) when the two can be the same layer, else (None, reason)."""
        key = (id(t), id(k))
        if key not in self.cache:
            self.cache[key] = self._fit(t, k)
        return self.cache[key]

    def _fit(self, t, k):
        converter = next((c for c in t.converters if any(c is d for d in k.converters)), None)
        if converter is None:
            return None, f"no converter takes torch {t.type_name} with Keras {k.type_name}"
        pair = LayerPair(t, k, converter)
        try:
            converter.prepare(pair)
            reason = converter.check(pair)
            if reason is None and has_weights(t) and has_weights(k):
                converted = [tuple(a.shape) for a in pair.to_keras(pair.torch_arrays())]
                expected = [tuple(w.shape) for w in pair.keras_weights()]
                if converted != expected:
                    reason = (
                        f"torch's weights convert to shapes {converted}, the Keras layer holds "
                        f"{expected}"
                    )
        except Exception as error:  # noqa: BLE001 - a converter's failure is a reason, not a crash
            reason = f"the {type(converter).__name__} converter failed: {say(error)}"
        return (None, reason) if reason else (pair, None)


def _shares(units: list[Unit]) -> dict[int, set[int]]:
    """For each unit, the other units whose first call read the same input object."""
    by_input: dict[int, list[Unit]] = {}
    for unit in units:
        if unit.calls and unit.calls[0].input_id is not None:
            by_input.setdefault(unit.calls[0].input_id, []).append(unit)
    out = {id(u): set() for u in units}
    for group in by_input.values():
        for unit in group:
            out[id(unit)] = {id(o) for o in group if o is not unit}
    return out


def pair_sides(
    sides: Sides, mapping_names: dict | None = None, input_layout=("last", "last")
) -> Pairing:
    matcher = _Matcher(sides)
    torch_units = list(sides.torch)
    keras_units = grouping.choose_granularity(sides.keras, torch_units)
    absorbed: list[tuple[Unit, str]] = []
    torch_units = grouping.merge_separable(torch_units, keras_units, absorbed)
    keras_units = [
        u for u in keras_units if u.converters[0].align_key(u.obj) != "activation:linear"
    ]
    problems: list[str] = []
    pairs: list[LayerPair] = []
    paired_t: dict[int, LayerPair] = {}
    paired_k: dict[int, LayerPair] = {}

    def take(pair, how):
        pair.how = how
        pairs.append(pair)
        paired_t[id(pair.torch_unit)] = pair
        paired_k[id(pair.keras_unit)] = pair

    # 1. The user's mapping.
    for torch_name, keras_name in (mapping_names or {}).items():
        t = next((u for u in torch_units if u.name == torch_name), None)
        k = _keras_named(keras_units, keras_name)
        if t is None:
            raise MappingError(
                f"mapping names torch layer {torch_name!r}, which is not a unit (known: "
                f"{', '.join(u.name for u in torch_units if has_weights(u))})"
            )
        if k is None:
            raise MappingError(
                f"mapping names Keras layer {keras_name!r}, which is not a unit (known: "
                f"{', '.join(u.name for u in keras_units if has_weights(u))})"
            )
        pair, reason = matcher.fit(t, k)
        if pair is None:
            problems.append(f"mapping {torch_name!r} -> {keras_name!r}: {reason}")
            continue
        take(pair, "mapping")

    weighted_t = grouping.by_order([u for u in torch_units if has_weights(u)])
    weighted_k = grouping.by_order([u for u in keras_units if has_weights(u)])
    # 2. Names that agree (torch's `encoder.fc1` and Keras's `encoder_fc1`).
    keras_names: dict[str, list[Unit]] = {}
    for k in weighted_k:
        keras_names.setdefault(normalised(k.name), []).append(k)
    for t in weighted_t:
        found = keras_names.get(normalised(t.name), [])
        if id(t) in paired_t or len(found) != 1 or id(found[0]) in paired_k:
            continue
        pair, _ = matcher.fit(t, found[0])
        if pair is not None:
            take(pair, "name")
    # 3. Execution order, shared inputs consistent, names breaking ties.
    share_t, share_k = _shares(torch_units), _shares(keras_units)
    source_t, source_k = _sources(torch_units), _sources(keras_units)
    ambiguous: list[str] = []
    for t in weighted_t:
        if id(t) in paired_t:
            continue
        fits = [k for k in weighted_k if id(k) not in paired_k and matcher.fit(t, k)[0] is not None]
        if not fits:
            continue
        consistent = [
            k
            for k in fits
            if _consistent(t, k, share_t, share_k, paired_t, paired_k)
            and _same_source(t, k, source_t, source_k, paired_t)
        ]
        choices = consistent or fits
        first = choices[0]
        group = [first] + [k for k in choices[1:] if id(k) in share_k[id(first)]]
        chosen, how = first, "order"
        if len(group) > 1:
            named = [k for k in group if last_part(k.name) == last_part(t.name)]
            if len(named) == 1:
                chosen, how = named[0], "order, its name deciding among same-shaped layers"
            else:
                ambiguous.append(
                    f"{t.label()} read the same input as other same-shaped torch layers and "
                    f"was paired with {chosen.label()} by execution order, among "
                    f"{', '.join(k.name for k in group)} (pass mapping_names if the port "
                    "pairs them otherwise)"
                )
        take(matcher.fit(t, chosen)[0], how)
    # 4. What is left of the weighted units.
    for t in weighted_t:
        if id(t) not in paired_t:
            problems.append(
                _left("torch", t, [k for k in weighted_k if id(k) not in paired_k], matcher)
            )
    for k in weighted_k:
        if id(k) not in paired_k:
            problems.append(
                _left("keras", k, [t for t in weighted_t if id(t) not in paired_t], matcher)
            )
    # 5. Weightless units between their weighted neighbours.
    unpaired = grouping.pair_weightless(
        torch_units, keras_units, pairs, matcher, take, input_layout
    )
    pairs.sort(key=lambda p: (p.torch_unit.order, p.keras_unit.order))
    _note_sources(pairs, torch_units, keras_units)
    return Pairing(pairs, problems, unpaired, ambiguous, absorbed, torch_units, keras_units)


def _note_sources(pairs, torch_units, keras_units) -> None:
    """Each pair's layer on either side that produced the tensor its own layer read (a
    ZeroPadding before a convolution), from the traced pass."""
    for side, units in (("torch", torch_units), ("keras", keras_units)):
        producers = {}
        for unit in units:
            for call in unit.calls:
                if call.output_id is not None:
                    producers.setdefault(call.output_id, unit.obj)
        for pair in pairs:
            call = getattr(pair, f"{side}_call")
            if call is not None and call.input_id in producers:
                pair.context[f"{side}_source"] = producers[call.input_id]


def _keras_named(units, name):
    exact = [u for u in units if u.name == name]
    if exact:
        return exact[0]
    tail = [u for u in units if u.name.split("/")[-1] == name]
    return tail[0] if len(tail) == 1 else None


def _consistent(t, k, share_t, share_k, paired_t, paired_k) -> bool:
    for other in share_t[id(t)]:
        pair = paired_t.get(other)
        if pair is not None and id(pair.keras_unit) not in share_k[id(k)]:
            return False
    for other in share_k[id(k)]:
        pair = paired_k.get(other)
        if pair is not None and id(pair.torch_unit) not in share_t[id(t)]:
            return False
    return True


def _sources(units: list[Unit]) -> dict[int, Unit | None]:
    """For each unit, the weighted unit whose output it reads, through weightless ones
    (a convolution reading a ReLU reading a BatchNorm reads the BatchNorm); None when
    what it reads is not a unit's output (an addition, a model input)."""
    producers = {}
    for unit in units:
        if unit.calls and unit.calls[0].output_id is not None:
            producers.setdefault(unit.calls[0].output_id, unit)
    out = {}
    for unit in units:
        found, seen = None, 0
        current = unit
        while current is not None and current.calls and seen < 32:
            found = producers.get(current.calls[0].input_id)
            if found is None or has_weights(found):
                break
            current, seen = found, seen + 1
        out[id(unit)] = found if found is not None and has_weights(found) else None
    return out


def _same_source(t, k, source_t, source_k, paired_t) -> bool:
    """A unit reading a paired unit's output has a counterpart reading its partner's."""
    ours, theirs = source_t.get(id(t)), source_k.get(id(k))
    pair = paired_t.get(id(ours)) if ours is not None else None
    if pair is None or theirs is None:
        return True
    return pair.keras_unit is theirs


def _left(side: str, unit: Unit, others: list[Unit], matcher: _Matcher) -> str:
    """Why a weighted unit found no counterpart, with the nearest one of its kind."""
    other_side = "Keras" if side == "torch" else "torch"
    same_kind = [o for o in others if o.kind == unit.kind] or [
        o for o in others if any(c is d for c in unit.converters for d in o.converters)
    ]
    text = f"{side} {unit.label()} has no {other_side} counterpart"
    if not same_kind:
        return text + f" (no {other_side} layer of its kind, {unit.kind}, is left)"
    nearest = min(
        same_kind, key=lambda o: abs(o.order - unit.order) if o.calls and unit.calls else 0
    )
    t, k = (unit, nearest) if side == "torch" else (nearest, unit)
    _, reason = matcher.fit(t, k)
    text += f"; the nearest of its kind, {other_side} {nearest.label()}, does not fit: {reason}"
    converter = next((c for c in t.converters if any(c is d for d in k.converters)), None)
    if converter is not None:
        try:
            rows = [s for s in converter.settings(LayerPair(t, k, converter)) if s.differs]
        except Exception:  # noqa: BLE001 - settings of a pair that does not fit may not read
            rows = []
        if rows:
            text += "; settings that differ: " + "; ".join(
                f"{r.name} torch {r.torch} vs keras {r.keras}" for r in rows
            )
    return text
