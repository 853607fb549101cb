"""Studies: built-in ones by name or a user's TOML file, the profiles, `--models`.

Stage: spec.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import tomllib

from compare.errors import UserError
from compare.spec import parse
from compare.spec.catalog import MODELS, STUDIES, STUDY_EXPERIMENTS, STUDY_SEEDS
from compare.spec.schema import ExperimentSpec, StudySpec

PROFILES = ("quick", "default")

# The quick profile: a small stratified subset and at most 2 epochs, for tests and CI.
QUICK_DATA = {"train_limit": 2_000, "validation_limit": 500, "test_limit": 1_000}
QUICK_MAX_EPOCHS = 2


def apply_profile(experiment: ExperimentSpec, profile: str) -> ExperimentSpec:
    """Return the experiment as the profile runs it."""
    if profile not in PROFILES:
        raise UserError(f"unknown profile '{profile}' (choose one of: {', '.join(PROFILES)})")
    if profile == "default":
        return experiment
    data = dataclasses.replace(experiment.data, **QUICK_DATA)
    epochs = min(experiment.train.epochs, QUICK_MAX_EPOCHS)
    train = dataclasses.replace(experiment.train, epochs=epochs)
    return dataclasses.replace(experiment, data=data, train=train)


def parity_identity(spec: dict) -> str:
    """A hash of what `parity` proves the same on both sides: an experiment's spec (as a
    dict: `ExperimentSpec.to_dict()` or a result's `spec`) without what a profile sets
    (the data subsets and the epochs), which parity chooses for itself. A study run and
    a parity entry with the same identity are about the same model and recipe."""
    data = {k: v for k, v in spec["data"].items() if k not in QUICK_DATA}
    train = {k: v for k, v in spec["train"].items() if k != "epochs"}
    blob = json.dumps({**spec, "data": data, "train": train}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def builtin_experiment(name: str) -> ExperimentSpec:
    return MODELS[name] if name in MODELS else STUDY_EXPERIMENTS[name]


def builtin_study(name: str) -> StudySpec:
    experiments = tuple(builtin_experiment(n) for n in STUDIES[name])
    seeds = STUDY_SEEDS.get(name, StudySpec.seeds)
    return StudySpec(name=name, experiments=experiments, seeds=seeds)


def load_study_file(path: pathlib.Path) -> StudySpec:
    """Read a TOML study; every unknown key or wrong type is an error naming the key.

    Format:
        name = "my study"
        seeds = 3
        equivalence_margin = 0.01   # optional: TOST margin, a fraction of test accuracy
        [[experiment]]
        name = "mlp_wide"
        base = "mlp"            # optional: start from a built-in model
        [experiment.model]
        hidden_sizes = [512, 128]
    """
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"study file {path} not found: check the path given to --study") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"study file {path} cannot be read: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"study file {path} is not valid TOML: {error}") from None

    known = ("name", "seeds", "equivalence_margin", "experiment")
    for key in raw:
        if key not in known:
            raise UserError(f"study file {path}: unknown key '{key}' (known: {', '.join(known)})")
    name = parse.coerce(raw.get("name", path.stem), str, f"{path}: name")
    seeds = parse.coerce(raw.get("seeds", 3), int, f"{path}: seeds")
    margin = parse.coerce(
        raw.get("equivalence_margin", StudySpec.equivalence_margin),
        float,
        f"{path}: equivalence_margin",
    )
    if not 0 < margin < 1:
        raise UserError(
            f"study file {path}: equivalence_margin must be in (0, 1) (a fraction of "
            f"accuracy, 0.01 = 1 point), got {margin}"
        )
    entries = raw.get("experiment", [])
    if not isinstance(entries, list) or not entries:
        raise UserError(f"study file {path}: needs at least one [[experiment]] table")

    experiments = []
    for index, entry in enumerate(entries):
        where = f"{path}: experiment[{index}]"
        entry = dict(entry)
        base_name = entry.pop("base", None)
        if base_name is None:
            base = ExperimentSpec(name="")
        elif base_name in MODELS or base_name in STUDY_EXPERIMENTS:
            base = builtin_experiment(base_name)
        else:
            raise UserError(
                f"{where}.base = {base_name!r} is not a built-in model "
                f"(known: {', '.join([*MODELS, *STUDY_EXPERIMENTS])})"
            )
        if "name" not in entry:
            raise UserError(f"{where} needs a name")
        experiments.append(parse.experiment_from_dict(entry, base, where))
    names = [e.name for e in experiments]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"study file {path}: experiment names repeat: {', '.join(duplicates)}")
    return StudySpec(
        name=name, experiments=tuple(experiments), seeds=seeds, equivalence_margin=margin
    )


def study_for(study: str | None, faithful: bool = False) -> StudySpec:
    """The study `run` runs: `--study` (a name or a file), `--faithful`, or the default."""
    if faithful and study not in (None, "faithful"):
        raise UserError(f"--faithful runs the faithful study: drop --study {study} or it")
    return resolve_study("faithful" if faithful else (study or "default"))


def resolve_study(study: str) -> StudySpec:
    """A built-in study name or a path to a TOML file."""
    if study in STUDIES:
        return builtin_study(study)
    path = pathlib.Path(study)
    if path.suffix == ".toml" or path.exists():
        return load_study_file(path)
    raise UserError(
        f"unknown study '{study}': give a built-in name ({', '.join(STUDIES)}) or a .toml file"
    )


def select_models(study: StudySpec, models: list[str] | None) -> StudySpec:
    """Keep only the named experiments (`--models`), in the order given."""
    if not models:
        return study
    by_name = {e.name: e for e in study.experiments}
    chosen = []
    for name in models:
        if name in by_name:
            chosen.append(by_name[name])
        elif name in MODELS or name in STUDY_EXPERIMENTS:
            chosen.append(builtin_experiment(name))
        else:
            known = sorted(set(by_name) | set(MODELS) | set(STUDY_EXPERIMENTS))
            raise UserError(f"unknown model '{name}' (known: {', '.join(known)})")
    return dataclasses.replace(study, experiments=tuple(chosen))
