"""Built-in models and studies, profiles, and loading a user's TOML study file.

The catalog below is `../shared/seed-models.md` in spec form: each entry is the
documented recipe, and nothing else in the code base repeats its numbers.
"""

from __future__ import annotations

import dataclasses
import pathlib
import tomllib

from compare import spec as spec_mod
from compare.errors import UserError
from compare.spec import DataSpec, ExperimentSpec, ModelSpec, StudySpec, TrainSpec

# `mlp`: the Udacity Fashion-MNIST MLP (seed 002, part 4): 784-256-64-10, ReLU,
# log-softmax + NLL (= cross-entropy on logits), Adam 0.003, batch 64, 20 epochs,
# input normalised to [-1, 1].
MODELS: dict[str, ExperimentSpec] = {
    "mlp": ExperimentSpec(
        name="mlp",
        data=DataSpec(pixel_divisor=255.0, mean=0.5, std=0.5),
        model=ModelSpec(architecture="mlp", hidden_sizes=(256, 64), activation="relu"),
        train=TrainSpec(optimizer="adam", learning_rate=0.003, batch_size=64, epochs=20),
    ),
}

# `cnn`: Mnist_CNN ("What is torch.nn really?", seeds 000/003): input viewed as
# 1x28x28, three 3x3 stride-2 padding-1 convolutions 1->16->16->10 with ReLU after each
# (28 -> 14 -> 7 -> 4), a 4x4 average pool, and the 10 channels are the logits. SGD
# lr 0.1, momentum 0.9, batch 64, 2 epochs; pixels in [0, 1] (no normalisation).
MODELS["cnn"] = ExperimentSpec(
    name="cnn",
    data=DataSpec(pixel_divisor=255.0, mean=0.0, std=1.0),
    model=ModelSpec(
        architecture="cnn",
        conv_filters=(16, 16, 10),
        conv_kernel_size=3,
        conv_stride=2,
        conv_padding=1,
        activation="relu",
        pooling="avg",
        pool_size=4,
        hidden_sizes=(),
        logits_from="conv",
    ),
    train=TrainSpec(optimizer="sgd", learning_rate=0.1, momentum=0.9, batch_size=64, epochs=2),
)
# `cnn_adaptive`: the same network with AdaptiveAvgPool2d(1) (a global average) in
# place of the fixed 4x4 pool, so it accepts any input size.
MODELS["cnn_adaptive"] = dataclasses.replace(
    MODELS["cnn"],
    name="cnn_adaptive",
    model=dataclasses.replace(MODELS["cnn"].model, pooling="global_avg"),
)

# The model the report leads with and the benchmark measures.
HEADLINE = "mlp"

STUDIES: dict[str, tuple[str, ...]] = {
    "default": ("mlp",),
}

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


def builtin_study(name: str) -> StudySpec:
    return StudySpec(name=name, experiments=tuple(MODELS[m] for m in STUDIES[name]))


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
    name = spec_mod.coerce(raw.get("name", path.stem), str, f"{path}: name")
    seeds = spec_mod.coerce(raw.get("seeds", 3), int, f"{path}: seeds")
    margin = spec_mod.coerce(
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
        elif base_name in MODELS:
            base = MODELS[base_name]
        else:
            raise UserError(
                f"{where}.base = {base_name!r} is not a built-in model (known: {', '.join(MODELS)})"
            )
        if "name" not in entry:
            raise UserError(f"{where} needs a name")
        experiments.append(spec_mod.experiment_from_dict(entry, base, where))
    names = [e.name for e in experiments]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"study file {path}: experiment names repeat: {', '.join(duplicates)}")
    return StudySpec(
        name=name, experiments=tuple(experiments), seeds=seeds, equivalence_margin=margin
    )


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
        elif name in MODELS:
            chosen.append(MODELS[name])
        else:
            known = sorted(set(by_name) | set(MODELS))
            raise UserError(f"unknown model '{name}' (known: {', '.join(known)})")
    return dataclasses.replace(study, experiments=tuple(chosen))
