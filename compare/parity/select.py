"""Which experiments `parity` checks, decided before either framework is imported.

Stage: parity. Classifiers and regression nets alike. An experiment with
framework_overrides differs between the frameworks on purpose (the seed-002 scripts and
their ladder): there is no "same model" to prove.
"""

from __future__ import annotations

import os
import pathlib

from compare.errors import UserError
from compare.spec import catalog, studies
from compare.spec.identity import DEFAULT_MODE, KERAS_BACKENDS, MODES
from compare.spec.schema import ExperimentSpec, StudySpec

# The study's parity levels, in the order they run and report (compare.parity.suite).
LEVELS = (
    "structure",
    "weights",
    "init",
    "forward",
    "dropout",
    "training_mode",
    "gradients",
    "optimizer",
    "stock_optimizer",
    "lockstep",
    "study_path",
    "data",
)


def mode_level(level: str, mode: str) -> str:
    """A per-mode level's name for an execution mode: `LEVEL` for the default mode,
    `LEVEL-MODE` for another (study_path and training_mode run once per `--modes`)."""
    return level if mode == DEFAULT_MODE else f"{level}-{mode}"


# The levels for a user's pair (compare.parity.pair), in order.
PAIR_LEVELS = ("structure", "weights", "forward", "gradients", "optimizer", "lockstep")


def check_choices(values: list[str], allowed: tuple[str, ...], what: str, flag: str) -> None:
    """One line naming the first unknown value of `flag` and the choices (exit code 2)."""
    unknown = [v for v in values if v not in allowed]
    if unknown or not values:
        raise UserError(
            f"unknown {what} {(unknown or [''])[0]!r} in {flag}: choose from {', '.join(allowed)}"
        )


def check_backends(keras_backends: list[str]) -> None:
    check_choices(keras_backends, KERAS_BACKENDS, "Keras backend", "--keras-backends")


def check_modes(modes: list[str]) -> None:
    check_choices(modes, MODES, "execution mode", "--modes")


def check_levels(levels: list[str]) -> None:
    check_choices(levels, LEVELS, "parity level", "--levels")


def experiments(study: str | None, models: list[str] | None) -> list[ExperimentSpec]:
    """The models to check: a study's (built-in name or file) or the catalog's, those the
    same on both sides, narrowed to `models`."""
    source = studies.resolve_study(study).experiments if study else catalog.MODELS.values()
    same = tuple(e for e in source if not e.framework_overrides)
    if not same:
        raise UserError(
            f"study {study} has no model the same on both sides to check: every experiment "
            "has framework_overrides"
        )
    chosen = StudySpec(name="parity", experiments=same)
    selected = list(studies.select_models(chosen, models).experiments)
    for experiment in selected:  # a name from outside the classifiers above
        if experiment.framework_overrides:
            sides = ", ".join(sorted(experiment.framework_overrides))
            raise UserError(
                f"{experiment.name} differs between the frameworks on purpose (its "
                f"framework_overrides for {sides}): there is no same model to prove; "
                "check the experiments that are the same on both sides (e.g. --models mlp)"
            )
    return selected


def default_jobs(threads: int) -> int:
    """Parity processes at once by default: the cores split into `threads`, as a study's
    jobs are (`compare.run.plan.concurrency`)."""
    from compare.run.plan import Options, concurrency

    return concurrency(Options(threads=threads)).jobs


def absolute_study(study: str | None) -> str | None:
    """A study file's path made absolute (the per-backend processes run from the
    repository root)."""
    if study is None or study in catalog.STUDIES:
        return study
    return str(pathlib.Path(study).resolve())


def choose_keras_backend(keras_backends: list[str]) -> None:
    """Keras fixes its backend at import: this process takes the first one asked for,
    `suite.run_backends` starts one process per other backend."""
    import sys

    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = keras_backends[0]
