"""The training_mode level: each side's dropout and normalisation layers compute in the
mode the study trains and evaluates them in, as the worker drives its Trainer.

The gradients, lockstep and study-path levels switch dropout off, and the dropout level
puts each layer in training mode itself, so none of them sees the state a Trainer
really trains in. This level builds each side as the worker does (the experiment as the
study runs it, dropout on), probes every dropout and batch-norm layer
(`Implementation.mode_probe`), and drives it as `compare.run.loop.train_classifier`
does: an epoch through the worker's epoch entry point, then the worker's evaluation
(`predict`), epoch after epoch. Expected: dropout active in every training call; batch
norm from the batch's statistics in training where the layer is trainable (a frozen
one, as the transfer model's features, normalises with its running statistics);
neither in evaluation. A side left in eval mode after an evaluation, a `training=False`
passed inside `fit`, or a layer the Trainer never calls fails, naming the layer.

Stage: parity.
"""

from __future__ import annotations

from compare.data import split
from compare.pair.result import Check
from compare.parity import select
from compare.parity.levels import K, T
from compare.parity.training import study_path_data
from compare.run import loop
from compare.spec.identity import DEFAULT_MODE
from compare.spec.schema import ExperimentSpec, ParitySpec


def _driven(impl, experiment: ExperimentSpec, shared, parity: ParitySpec, mode: str):
    """(layers, phases) of one side driven as the worker drives it: per phase, its name,
    whether it trains, and the probed calls it made."""
    model = impl.build_model(experiment.model)
    phases = []
    with impl.mode_probe(model) as (layers, calls):
        if not layers:  # no layer whose computation depends on the mode: nothing to drive
            return layers, phases
        trainer = impl.Trainer(model, experiment.train, mode)
        for epoch in range(parity.study_path_epochs):
            start = len(calls)
            loop.epoch_function(trainer, experiment, shared, parity.seed, mode, epoch)()
            phases.append((f"training epoch {epoch + 1}", True, calls[start:]))
            start = len(calls)
            impl.predict(
                model, shared.x_test[: parity.batch_size], experiment.train.eval_batch_size
            )
            phases.append((f"the evaluation after epoch {epoch + 1}", False, calls[start:]))
    return layers, phases


def side_problems(layers: list[dict], phases: list) -> list[str]:
    """Each probed layer's departures from the expected mode, in one line each: a call in
    the wrong mode (the first phase it happened in), or no call at all in training or
    in evaluation. Inside a compiled function a call shows once, when it is traced."""
    problems = []
    for layer in layers:
        name = layer["layer"]
        for training in (True, False):
            expected = training and (layer["kind"] == "dropout" or layer["trainable"])
            seen = [
                (phase, call["active"])
                for phase, trains, calls in phases
                if trains == training
                for call in calls
                if call["layer"] == name
            ]
            where = "while its Trainer trained" if training else "in the worker's evaluation"
            if not seen:
                problems.append(f"{name} was never called {where} (bypassed)")
                continue
            wrong = next((phase for phase, active in seen if active != expected), None)
            if wrong:
                state = "active" if not expected else "inactive"
                problems.append(f"{name} ran {state} {where} ({wrong})")
    return problems


def check_training_mode(
    experiment: ExperimentSpec, parity: ParitySpec, mode: str = DEFAULT_MODE, data_dir=None
) -> Check:
    """Both sides' dropout and normalisation layers in the expected mode while the
    worker trains and evaluates them (`mode`), and the same such layers on each side."""
    experiment = study_path_data(experiment, parity)
    shared = split.prepared(experiment.data, data_dir)
    sides = {impl.FRAMEWORK: _driven(impl, experiment, shared, parity, mode) for impl in (T, K)}
    problems = {f: side_problems(layers, phases) for f, (layers, phases) in sides.items()}
    kinds = {
        f: [(layer["kind"], layer["trainable"]) for layer in layers]
        for f, (layers, _) in sides.items()
    }
    first = next((f"{f}: {p[0]}" for f, p in problems.items() if p), None)
    if first is None and kinds[T.FRAMEWORK] != kinds[K.FRAMEWORK]:
        first = (
            "the sides' mode-dependent layers differ: torch has "
            f"{kinds[T.FRAMEWORK]}, keras {kinds[K.FRAMEWORK]} (kind, trainable)"
        )
    wrong = sum(len(p) for p in problems.values())
    return Check(
        select.mode_level("training_mode", mode),
        first is None,
        float(wrong),
        0.0,
        {"dropout": "active in training only", "normalization": "batch statistics in training"},
        {
            "mode": mode,
            "entry_point": "compare.run.loop.epoch_function, then predict",
            "epochs": parity.study_path_epochs,
            "first_failure": first,
            "layers": {f: layers for f, (layers, _) in sides.items()},
            "problems": problems,
            "calls": {
                f: {phase: len(calls) for phase, _, calls in phases}
                for f, (_, phases) in sides.items()
            },
        },
    )
