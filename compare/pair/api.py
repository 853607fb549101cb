"""`check_pair` and `assert_same_model`: is this torch module the same model as this
Keras model?

    report = check_pair(torch_model, keras_model, x, y=y, loss="cross_entropy",
                        optimizers=Optimizers(lambda m: torch.optim.SGD(m.parameters(), 0.1),
                                              lambda: keras.optimizers.SGD(0.1)))

`inputs` are in torch's layout: an array, a tuple (positional) or a dict (keywords, e.g.
`input_ids`, `attention_mask`); `compare.pair.io` says how Keras gets them. Levels:
structure, weights, forward (per layer), and given targets, a loss and both optimizers,
gradients, optimizer and lockstep. By default torch's weights are copied into the Keras
model (`weights="copy"`, or "to_keras"); `weights="to_torch"` copies Keras's into the
torch module instead (Keras is then the reference, its layers named first);
`weights="as_given"` checks a pair whose weights the user ported: nothing is copied, the
weights level compares them, and layers no converter knows do not block. A level that
cannot run fails with its reason; the next still run. `repro=DIR` writes a minimal
reproduction of the first layer where a failing pair parts (`compare.pair.repro`).

Stage: pair.
"""

from __future__ import annotations

import functools

import numpy as np

from compare.pair import frameworks, io, layers, matching, transplant, units
from compare.pair.levels import LEVELS
from compare.pair.levels import forward as forward_level
from compare.pair.levels import lockstep as lockstep_level
from compare.pair.levels import structure as structure_level
from compare.pair.levels import training as training_level
from compare.pair.recipe import Loss, Optimizers, loss_named
from compare.pair.report import ParityReport, build
from compare.pair.result import Check, guarded, say
from compare.pair.session import Session
from compare.pair.spec import PairSpec

__all__ = ["check_pair", "assert_same_model", "Loss", "Optimizers", "ParityReport", "LEVELS"]


WEIGHTS = ("copy", "to_keras", "to_torch", "as_given")


def _with_frameworks(check):
    """`check` once the frameworks are prepared and the converters loaded, their start-up
    logs silenced, and the layers named reference first (Keras's when its weights are
    ported into torch)."""

    @functools.wraps(check)
    def checked(*args, **kwargs):
        frameworks.prepare()
        layers.load()
        token = units.REFERENCE.set("keras" if kwargs.get("weights") == "to_torch" else "torch")
        try:
            with frameworks.quiet():
                return check(*args, **kwargs)
        finally:
            units.REFERENCE.reset(token)

    return checked


@_with_frameworks
def check_pair(
    torch_model,
    keras_model,
    inputs,
    y=None,
    loss: str | Loss | None = None,
    optimizers: Optimizers | None = None,
    *,
    keras_inputs=None,
    input_names: dict | None = None,
    output=None,
    keras_output=None,
    mapping_names: dict | None = None,
    weights: str = "copy",
    spec: PairSpec | None = None,
    levels: tuple[str, ...] = LEVELS,
    name: str = "pair",
    repro=None,
) -> ParityReport:
    """Check that `torch_model` and `keras_model` are the same model, level by level.

    output / keras_output: which output is compared (an index, a key such as "logits",
    or a callable); keras_output defaults to `output` where that is a key or index.
    mapping_names: {torch module name: Keras layer name} for pairs the engine should not
    find itself. weights: "copy" or "to_keras" (torch's into Keras), "to_torch" (Keras's
    into torch) or "as_given". repro: a directory for a failure's reproduction.
    """
    import keras
    import torch

    spec = spec or PairSpec()
    if not isinstance(torch_model, torch.nn.Module) or not isinstance(keras_model, keras.Layer):
        raise TypeError(
            "check_pair(torch_model, keras_model, inputs): got a "
            f"{type(torch_model).__name__} and a {type(keras_model).__name__}; the torch "
            "module comes first, the Keras model second"
        )
    if weights not in WEIGHTS:
        raise ValueError(f"weights={weights!r}: choose {', '.join(map(repr, WEIGHTS))}")
    unknown = [level for level in levels if level not in LEVELS]
    if unknown:
        raise ValueError(f"unknown level {unknown[0]!r}: choose from {', '.join(LEVELS)}")
    backend = keras.backend.backend()
    loss = loss_named(loss) if isinstance(loss, str) else loss
    if keras_output is None and not callable(output):
        keras_output = output

    def refused(reason: str) -> ParityReport:
        check = Check("structure", False, float("inf"), float("inf"), {}, {"first_failure": reason})
        return build(name, backend, [check], [], [], spec)

    try:
        prepared = io.prepare(torch_model, keras_model, inputs, keras_inputs, input_names)
    except io.InputError as error:
        return refused(str(error))
    if y is not None and (np.ndim(y) == 0 or len(y) != prepared.batch):
        examples = "a scalar" if np.ndim(y) == 0 else f"{len(y)} examples"
        return refused(f"y holds {examples}, the inputs {prepared.batch}: give one target each")
    if not getattr(keras_model, "built", True):
        try:
            prepared.keras_call(keras_model)
        except Exception as error:  # noqa: BLE001 - the user's model: a reason, not a crash
            return refused(f"the Keras model cannot be called on these inputs: {say(error)}")
    sides = units.sides(torch_model, keras_model)
    session = Session(
        torch_model,
        keras_model,
        prepared,
        None if y is None else np.asarray(y),
        loss,
        optimizers,
        spec,
        sides,
        matching.Pairing([], [], [], [], []),
        output,
        keras_output,
        as_given=weights == "as_given",
    )
    try:
        torch_out, _ = session.run_torch()
        functional = list(session.functional)
    except Exception as error:  # noqa: BLE001
        return refused(f"the torch model cannot be called on these inputs: {say(error)}")
    try:
        keras_out, _ = session.run_keras()
    except Exception as error:  # noqa: BLE001
        return refused(f"the Keras model cannot be called on these inputs: {say(error)}")
    moved = any("moved" in note for note in prepared.layout_notes)
    everything = units.Sides(
        sides.torch + functional,
        sides.keras,
        sides.torch_unknown,
        sides.keras_unknown,
        sides.torch_buffers,
    )
    try:
        session.pairing = matching.pair_sides(
            everything,
            mapping_names,
            ("channels_first", "channels_last") if moved else ("last", "last"),
        )
    except matching.MappingError as error:
        return refused(str(error))
    for found in session.pairing.pairs:
        found.context["spec"] = spec  # what a converter's settings compare by (a probe's rtol)
    session.notes += prepared.layout_notes
    if session.as_given:
        session.notes.insert(0, "weights as given: nothing copied")
    elif weights == "to_torch":
        session.notes.insert(0, "Keras's weights copied into torch; Keras is the reference")
        transplant.apply(session, "to_torch")
    else:
        transplant.apply(session, "to_keras")
    rows = _setting_rows(session)
    shapes = (_shape(torch_out), _shape(keras_out))
    run = {
        "structure": lambda: structure_level.check_structure(session, shapes),
        "weights": lambda: structure_level.check_weights(session),
        "forward": lambda: forward_level.check_forward(session),
        "gradients": lambda: training_level.check_gradients(session),
        "optimizer": lambda: training_level.check_optimizer(session),
        "lockstep": lambda: lockstep_level.check_lockstep(session),
    }
    if not session.training:
        session.notes.append(
            "gradients, optimizer and lockstep need y, loss and optimizers: not run"
        )
    checks = []
    for level in LEVELS:
        if level not in levels or (level in LEVELS[3:] and not session.training):
            continue
        checks += guarded(level, lambda level=level: [run[level]()])
    report = build(name, backend, checks, session.notes, rows, spec)
    if repro is not None and not report.passed:
        from compare.pair import repro as reproduction

        report.repro = report.entry["repro"] = reproduction.write(session, checks, repro, name)
    return report


def _shape(array):
    return None if array is None else tuple(np.shape(array))


def _setting_rows(session) -> list[dict]:
    rows = []
    for pair in session.pairing.pairs:
        try:
            settings = pair.converter.settings(pair)
        except Exception as error:  # noqa: BLE001 - a setting that cannot be read is a note
            session.notes.append(f"{pair.label()}: settings not read ({say(error)})")
            continue
        for setting in settings:
            if setting.differs:
                rows.append(
                    {
                        "torch_layer": pair.torch_name,
                        "keras_layer": pair.keras_name,
                        "setting": setting.name,
                        "torch": _plain(setting.torch),
                        "keras": _plain(setting.keras),
                        "effect": setting.effect,
                        "intrinsic": setting.intrinsic,
                    }
                )
    return rows


def _plain(value):
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return str(value)


def assert_same_model(torch_model, keras_model, inputs, **kwargs) -> ParityReport:
    """`check_pair`, raising AssertionError with the first failure in full, a line per
    level and the differing settings; returns the report when every level passes."""
    report = check_pair(torch_model, keras_model, inputs, **kwargs)
    if not report.passed:
        raise AssertionError(report.message())
    return report
