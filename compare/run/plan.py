"""Planning a study: the runs it holds, each side's spec validated, the options checked.

Stage: run. Nothing here starts a process; `compare.run.runner` executes the plan.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

from compare.data import augment
from compare.errors import UserError
from compare.run import initial_weights, results
from compare.spec import studies
from compare.spec.identity import (
    DEFAULT_KERAS_BACKEND,
    DEFAULT_MODE,
    DEVICES,
    FRAMEWORKS,
    KERAS_BACKENDS,
    MODES,
    Implementation,
)
from compare.spec.parse import apply_overrides, resolve
from compare.spec.schema import IMAGE_SHAPE, ExperimentSpec, StudySpec
from compare.spec.validate import validate


@dataclasses.dataclass(frozen=True)
class Run:
    experiment: ExperimentSpec  # as this framework runs it (see effective_spec)
    framework: str
    seed: int
    mode: str = DEFAULT_MODE
    keras_backend: str | None = None  # Keras runs only
    # The experiment's per-framework table, recorded in the result; not part of the
    # run's identity (the spec above already holds this side's values).
    framework_overrides: dict = dataclasses.field(default_factory=dict, hash=False, compare=False)

    def path(self, out: pathlib.Path) -> pathlib.Path:
        return results.run_path(out, self.experiment.name, self.variant, self.seed)

    @property
    def implementation(self) -> Implementation:
        return Implementation(self.framework, self.keras_backend, self.mode)

    @property
    def variant(self) -> str:
        """The implementation's one spelling (`compare.spec.identity`)."""
        return self.implementation.name

    def log_path(self, out: pathlib.Path) -> pathlib.Path:
        path = self.path(out)
        return out / "logs" / path.parent.name / f"{path.stem}.log"

    @property
    def label(self) -> str:
        return f"{self.experiment.name}/{self.variant}/seed{self.seed}"


@dataclasses.dataclass(frozen=True)
class Options:
    frameworks: tuple[str, ...] = FRAMEWORKS
    seeds: int | None = None
    profile: str = "default"
    device: str = "auto"
    # Threads per run and runs at once; None: `concurrency` picks for this machine.
    threads: int | None = None
    jobs: int | None = None
    out: pathlib.Path = pathlib.Path("reports")
    data_dir: str | None = None
    overrides: tuple[str, ...] = ()
    progress: bool = True
    deterministic: bool = False
    modes: tuple[str, ...] = (DEFAULT_MODE,)
    keras_backends: tuple[str, ...] = (DEFAULT_KERAS_BACKEND,)
    # Where runs execute: this machine's worker processes, or a Ray cluster
    # (`compare.run.ray_executor`; address None: RAY_ADDRESS, else a local instance).
    executor: str = "local"
    ray_address: str | None = None


EXECUTORS = ("local", "ray")


def check_options(options: Options) -> None:
    for framework in options.frameworks:
        if framework not in FRAMEWORKS:
            raise UserError(
                f"unknown framework '{framework}' (choose from: {', '.join(FRAMEWORKS)})"
            )
    if not options.frameworks:
        raise UserError("--frameworks is empty: name at least one of torch, keras")
    if options.executor not in EXECUTORS:
        raise UserError(
            f"unknown executor '{options.executor}' (choose from: {', '.join(EXECUTORS)})"
        )
    if options.ray_address is not None and options.executor != "ray":
        raise UserError("--ray-address needs --executor ray")
    if options.executor == "ray" and options.jobs is not None:
        raise UserError(
            "--jobs is for the local executor: on Ray the cluster's CPUs decide how many "
            "runs go at once (set --threads per run instead)"
        )
    if options.device not in DEVICES:
        raise UserError(f"unknown device '{options.device}' (choose one of: {', '.join(DEVICES)})")
    for flag, value in (("--threads", options.threads), ("--jobs", options.jobs)):
        if value is not None and value < 1:
            raise UserError(f"{flag} must be >= 1, got {value}")
    if options.seeds is not None and options.seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {options.seeds}")
    for name, given, known in (
        ("mode", options.modes, MODES),
        ("Keras backend", options.keras_backends, KERAS_BACKENDS),
    ):
        if not given:
            raise UserError(f"no {name} given (choose from: {', '.join(known)})")
        for value in given:
            if value not in known:
                raise UserError(f"unknown {name} '{value}' (choose from: {', '.join(known)})")


# A worker's resident memory, at most: the default study's peaks were 0.9-2.7 GB for
# Keras on TensorFlow and 1.1-1.8 GB for PyTorch (2026-12-03, `peak_memory_mb`).
WORKER_MEMORY_GIB = 3


def machine_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def machine_memory_gib() -> float:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30


def concurrency(options: Options) -> Options:
    """`options` with `jobs` and `threads` decided.

    Given both, they stand. Otherwise the cores are split: a GPU study runs one job on
    every core (one device); a CPU study runs one job per core, one thread each, as many
    as memory allows (PyTorch gained nothing from a second thread here, Keras about 10 %
    (issue #15), so two one-thread runs do nearly twice the work of one two-thread run).
    """
    cores = machine_cores()
    jobs, threads = options.jobs, options.threads
    if jobs is None:
        if options.device == "gpu":
            jobs = 1
        elif threads is not None:
            jobs = max(1, cores // threads)
        else:
            jobs = max(1, min(cores, int(machine_memory_gib() // WORKER_MEMORY_GIB)))
    if threads is None:
        threads = max(1, cores // jobs)
    return dataclasses.replace(options, jobs=jobs, threads=threads)


def effective_spec(experiment: ExperimentSpec, framework: str, options: Options):
    """What `framework` runs: its framework_overrides, then the profile, then --set.

    The returned spec has no framework_overrides of its own (it is one side); the
    table that made the sides differ is recorded next to it in the result.
    """
    side = dataclasses.replace(resolve(experiment, framework), framework_overrides={})
    side = studies.apply_profile(side, options.profile)
    side = validate(apply_overrides(side, list(options.overrides)))
    # "auto" features become what this machine has, so the run's spec says which.
    return initial_weights.resolve_features(side)


def check_mode(experiment: ExperimentSpec, mode: str) -> None:
    """Refuse a mode that cannot feed the experiment's images."""
    data = experiment.data
    if mode == "idiomatic" and (augment.augments(data) or data.image_size != IMAGE_SHAPE[0]):
        raise UserError(
            f"experiment '{experiment.name}': --modes idiomatic feeds the stored 28x28 "
            "images through each framework's own loader, and this experiment resizes or "
            "augments them (the shared pipeline does): run it in tuned or compiled mode"
        )


def plan(study: StudySpec, options: Options) -> list[Run]:
    """The runs of a study, each framework's side validated with the profile and
    overrides applied."""
    check_options(options)
    seeds = options.seeds if options.seeds is not None else study.seeds
    if seeds < 1:
        raise UserError(f"seeds must be >= 1, got {seeds}")
    runs = []
    for experiment in study.experiments:
        sides = {fw: effective_spec(experiment, fw, options) for fw in options.frameworks}
        for seed in range(seeds):
            for framework in options.frameworks:
                backends = options.keras_backends if framework == "keras" else (None,)
                for backend in backends:
                    for mode in options.modes:
                        check_mode(sides[framework], mode)
                        runs.append(
                            Run(
                                sides[framework],
                                framework,
                                seed,
                                mode=mode,
                                keras_backend=backend,
                                framework_overrides=experiment.framework_overrides,
                            )
                        )
    return runs
