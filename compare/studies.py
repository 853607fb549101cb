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

# How the tutorials scale the input, as (pixel / pixel_divisor - mean) / std.
NORMALIZED = {"pixel_divisor": 255.0, "mean": 0.5, "std": 0.5}  # ToTensor + Normalize(0.5, 0.5)
UNIT_RANGE = {"pixel_divisor": 255.0, "mean": 0.0, "std": 1.0}  # ToTensor only: [0, 1]
RAW_PIXELS = {"pixel_divisor": 1.0, "mean": 0.0, "std": 1.0}  # no scaling: 0..255

# The tutorials' regression data: N 64, D_in 1000, D_out 10 (H 100 is the model's).
RANDOM_DATA = DataSpec(dataset="random_normal", num_samples=64, input_size=1_000, output_size=10)

# Seed 004 `two_layer_net`: y = relu(x w1) w2, no biases, weights ~ N(0, 1), sum of
# squared errors, plain SGD 1e-6, 500 full-batch steps (the NumPy version's recipe).
TWO_LAYER_NET = ExperimentSpec(
    name="two_layer_net",
    data=RANDOM_DATA,
    model=ModelSpec(
        architecture="two_layer_net",
        hidden_sizes=(100,),
        activation="relu",
        use_bias=False,
        kernel_init="standard_normal",
    ),
    train=TrainSpec(
        optimizer="sgd",
        learning_rate=1e-6,
        batch_size=64,
        epochs=500,
        loss="sum_squared_error",
    ),
)

MODELS: dict[str, ExperimentSpec] = {
    # Seed 000/003 `Mnist_Logistic`: 784 -> 10, cross-entropy, nn.Linear's default init,
    # SGD 0.5, batch 64, 2 epochs, floats in [0, 1].
    "logreg": ExperimentSpec(
        name="logreg",
        data=DataSpec(**UNIT_RANGE),
        model=ModelSpec(architecture="logreg", hidden_sizes=()),
        train=TrainSpec(optimizer="sgd", learning_rate=0.5, batch_size=64, epochs=2),
    ),
    # Seed 002 part 4, the headline: 784-256-64-10, ReLU, log-softmax + NLL (the same
    # function as cross-entropy on logits), Adam 0.003, batch 64, 20 epochs, [-1, 1].
    "mlp": ExperimentSpec(
        name="mlp",
        data=DataSpec(**NORMALIZED),
        model=ModelSpec(architecture="mlp", hidden_sizes=(256, 64), activation="relu"),
        train=TrainSpec(optimizer="adam", learning_rate=0.003, batch_size=64, epochs=20),
    ),
    # Seed 001 `NeuralNetwork`: 784-512-512-10 with a ReLU after every Linear, the last
    # one included (as documented); SGD 1e-3, batch 64, 10 epochs, ToTensor only.
    "mlp_512": ExperimentSpec(
        name="mlp_512",
        data=DataSpec(**UNIT_RANGE),
        model=ModelSpec(hidden_sizes=(512, 512), activation="relu", output_activation="relu"),
        train=TrainSpec(optimizer="sgd", learning_rate=1e-3, batch_size=64, epochs=10),
    ),
    # Seed 002 part 2: 784-256 sigmoid-10 softmax; no recipe given, so the `mlp` recipe.
    "mlp_sigmoid": ExperimentSpec(
        name="mlp_sigmoid",
        data=DataSpec(**NORMALIZED),
        model=ModelSpec(hidden_sizes=(256,), activation="sigmoid"),
        train=TrainSpec(optimizer="adam", learning_rate=0.003, batch_size=64, epochs=20),
    ),
    # Seed 002 part 3: 784-128-64-10, ReLU, log-softmax + NLL, SGD 0.003, batch 64,
    # 5 epochs (on MNIST in the notes; Fashion-MNIST here).
    "mlp_128_64": ExperimentSpec(
        name="mlp_128_64",
        data=DataSpec(**NORMALIZED),
        model=ModelSpec(hidden_sizes=(128, 64), activation="relu"),
        train=TrainSpec(optimizer="sgd", learning_rate=0.003, batch_size=64, epochs=5),
    ),
    # Seed 002 part 5: 784-256-128-64-10, ReLU, dropout 0.2 after each hidden layer,
    # log-softmax + NLL, Adam 0.003, batch 64. The notes give no epoch count; the
    # notebook they summarise trains 30 epochs, so 30.
    "mlp_dropout": ExperimentSpec(
        name="mlp_dropout",
        data=DataSpec(**NORMALIZED),
        model=ModelSpec(hidden_sizes=(256, 128, 64), activation="relu", dropout_rate=0.2),
        train=TrainSpec(optimizer="adam", learning_rate=0.003, batch_size=64, epochs=30),
    ),
    "two_layer_net": TWO_LAYER_NET,
    # Seed 004's `MyReLU` variant: the same net through a hand-written ReLU backward.
    "two_layer_net_custom_relu": dataclasses.replace(
        TWO_LAYER_NET,
        name="two_layer_net_custom_relu",
        model=dataclasses.replace(TWO_LAYER_NET.model, activation="custom_relu"),
    ),
    # Seed 004 `dynamic_net`: D_in -> H, a shared H -> H layer applied 0..3 times (a new
    # depth every forward pass), H -> D_out; nn.Linear's default init with biases,
    # MSELoss(sum), SGD 1e-4 with momentum 0.9, 500 steps.
    "dynamic_net": ExperimentSpec(
        name="dynamic_net",
        data=RANDOM_DATA,
        model=ModelSpec(architecture="dynamic_net", hidden_sizes=(100,), max_middle_repeats=3),
        train=TrainSpec(
            optimizer="sgd",
            learning_rate=1e-4,
            momentum=0.9,
            batch_size=64,
            epochs=500,
            loss="sum_squared_error",
        ),
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

# --- seed-002 as its author wrote it, and the ablation ladder ------------------------
#
# `mlp` is the PyTorch script's recipe on the shared data path. The two scripts differ
# from it, and from each other, in six ways; each is a framework_overrides table. The
# ladder removes them one at a time, so the last rung is `mlp`: both sides identical.
# Rung k has the first k differences removed. The input pipeline goes first: it changes
# neither the model nor a single input value, only how batches are produced (and so the
# shuffle stream), so its rung answers the speed half of "why did Keras look faster and
# worse?" on its own, and every later rung trains on preloaded arrays (the PyTorch
# script's per-example transforms cost 8.2 s per epoch here, against 1.25 s preloaded,
# in the faithful study's first two rungs).
# Then the suspected accuracy causes (input scale, optimizer, loss form,
# initialisation), then the validation hold-out, which changes the amount of data.
SEED002_DIFFERENCES: tuple[tuple[str, dict], ...] = (
    # PyTorch: DataLoader + per-example ToTensor/Normalize; Keras: fit(shuffle=True).
    (
        "data_pipeline",
        {"torch": {"data": {"pipeline": "native"}}, "keras": {"data": {"pipeline": "native"}}},
    ),
    # Keras script: raw 0..255 pixels; PyTorch: ToTensor + Normalize to [-1, 1].
    ("input_scaling", {"keras": {"data": RAW_PIXELS}}),
    # Keras script: compile(optimizer="rmsprop"), i.e. Keras's defaults, written out.
    (
        "optimizer",
        {
            "keras": {
                "train": {
                    "optimizer": "rmsprop",
                    "learning_rate": 1e-3,
                    "rho": 0.9,
                    "epsilon": 1e-7,
                    "momentum": 0.0,
                }
            }
        },
    ),
    # PyTorch: log-softmax output + NLLLoss; Keras: softmax output + categorical
    # cross-entropy on one-hot labels.
    (
        "output_loss",
        {
            "torch": {"train": {"loss": "log_softmax_nll"}},
            "keras": {"train": {"loss": "softmax_categorical_crossentropy"}},
        },
    ),
    # Each framework's default init: Keras glorot_uniform kernels and zero biases.
    (
        "initialisation",
        {"keras": {"model": {"kernel_init": "glorot_uniform", "bias_init": "zeros"}}},
    ),
    # PyTorch trains on all 60,000; Keras holds out the first 3,000 after a shuffle.
    (
        "validation_split",
        {
            "torch": {"data": {"validation_size": 0}},
            "keras": {"data": {"validation_split": "shuffled_head", "validation_size": 3_000}},
        },
    ),
)


def _merge_overrides(tables) -> dict:
    merged: dict = {}
    for table in tables:
        for framework, sections in table.items():
            for section, changes in sections.items():
                merged.setdefault(framework, {}).setdefault(section, {}).update(changes)
    return merged


def _seed002_rung(removed: int) -> ExperimentSpec:
    """`mlp` with every seed-002 difference after the first `removed` put back."""
    kept = SEED002_DIFFERENCES[removed:]
    if not kept:
        return MODELS["mlp"]
    name = "seed002" if removed == 0 else f"seed002_{removed}_{SEED002_DIFFERENCES[removed - 1][0]}"
    overrides = _merge_overrides(table for _, table in kept)
    return dataclasses.replace(MODELS["mlp"], name=name, framework_overrides=overrides)


# The ladder: (experiment, the difference its rung removed; None for the first rung).
ABLATION_RUNGS: tuple[tuple[ExperimentSpec, str | None], ...] = tuple(
    (_seed002_rung(k), None if k == 0 else SEED002_DIFFERENCES[k - 1][0])
    for k in range(len(SEED002_DIFFERENCES) + 1)
)

# Seed 001's mlp_512 as the tutorial ran it: on all 60,000 training images through a
# DataLoader, the test set scored after every epoch (the published per-epoch figures).
MLP_512_TUTORIAL = dataclasses.replace(
    MODELS["mlp_512"],
    name="mlp_512_tutorial",
    data=dataclasses.replace(MODELS["mlp_512"].data, validation_size=0, pipeline="native"),
    train=dataclasses.replace(MODELS["mlp_512"].train, test_every_epoch=True),
)

# Experiments of the built-in studies that are not catalog models.
STUDY_EXPERIMENTS: dict[str, ExperimentSpec] = {
    MLP_512_TUTORIAL.name: MLP_512_TUTORIAL,
    **{rung.name: rung for rung, _ in ABLATION_RUNGS if rung.name not in MODELS},
}

STUDIES: dict[str, tuple[str, ...]] = {
    # Every catalog model with its documented recipe.
    "default": tuple(MODELS),
    # The seed-002 scripts as written, mlp_512 as the tutorial ran it, and the ladder
    # from seed002 to mlp that explains the seed-002 gaps (the ablation study's rungs).
    "faithful": (
        "seed002",
        "mlp_512_tutorial",
        *(rung.name for rung, _ in ABLATION_RUNGS if rung.name != "seed002"),
    ),
    "ablation": tuple(rung.name for rung, _ in ABLATION_RUNGS),
}

# Figures the tutorials published, shown next to the measured ones. One entry per
# experiment: `figures` is a list of {framework, metric, epoch, value, value_high,
# text}; `metric` is a result field (test_accuracy, test_loss, val_loss) read at
# `epoch` (None = the end of training), or "speed" for a claim with no number.
# `value_high` is set when the text gives a range. Figures from MNIST are context.
MLP_512_ACCURACY = (0.523, 0.533, 0.552, 0.579, 0.602, 0.609, 0.619, 0.630, 0.636, 0.643)
MLP_512_LOSS = (2.200312, 2.048256, 1.841357, 1.632644, 1.468750, 1.345098, 1.255917,
                1.195613, 1.151816, 1.116730)  # fmt: skip


def _figure(framework, metric, value, text, epoch=None, value_high=None) -> dict:
    return {
        "framework": framework,
        "metric": metric,
        "epoch": epoch,
        "value": value,
        "value_high": value_high,
        "text": text,
    }


PUBLISHED: dict[str, dict] = {
    "seed002": {
        "source": "seed 002, Udacity Intro to PyTorch part 4: the author's two scripts",
        "dataset": "Fashion-MNIST",
        "figures": [
            _figure("torch", "test_accuracy", 0.86, "86-87 %", value_high=0.87),
            _figure("keras", "test_accuracy", 0.70, "about 70 %"),
            _figure("keras", "speed", None, "Keras trains much faster than PyTorch"),
        ],
    },
    "mlp_512_tutorial": {
        "source": "seed 001, PyTorch basics: test accuracy and loss printed after each epoch",
        "dataset": "Fashion-MNIST",
        "figures": [
            *(
                _figure("torch", "test_accuracy", value, f"{100 * value:.1f} %", epoch=i + 1)
                for i, value in enumerate(MLP_512_ACCURACY)
            ),
            *(
                _figure("torch", "test_loss", value, f"{value:.4f}", epoch=i + 1)
                for i, value in enumerate(MLP_512_LOSS)
            ),
        ],
    },
    "mlp_512": {
        "source": "seed 001, PyTorch basics: test accuracy after 10 epochs",
        "dataset": "Fashion-MNIST",
        "figures": [_figure("torch", "test_accuracy", 0.643, "64.3 %")],
    },
    "cnn": {
        "source": "seeds 000/003, What is torch.nn really?: validation loss per epoch "
        "(another run: 0.3732, 0.2651)",
        "dataset": "MNIST (context only: this study runs Fashion-MNIST)",
        "figures": [
            _figure("torch", "val_loss", 0.3528, "0.3528", epoch=1),
            _figure("torch", "val_loss", 0.2879, "0.2879", epoch=2),
        ],
    },
    "cnn_adaptive": {
        "source": "seeds 000/003, What is torch.nn really?: validation loss per epoch",
        "dataset": "MNIST (context only: this study runs Fashion-MNIST)",
        "figures": [
            _figure("torch", "val_loss", 0.4404, "0.4404", epoch=1),
            _figure("torch", "val_loss", 0.2957, "0.2957", epoch=2),
        ],
    },
    "logreg": {
        "source": "seeds 000/003, What is torch.nn really?: validation loss per epoch",
        "dataset": "MNIST (context only: this study runs Fashion-MNIST)",
        "figures": [
            _figure("torch", "val_loss", 0.3051, "0.3051", epoch=1),
            _figure("torch", "val_loss", 0.2858, "0.2858", epoch=2),
        ],
    },
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


def builtin_experiment(name: str) -> ExperimentSpec:
    return MODELS[name] if name in MODELS else STUDY_EXPERIMENTS[name]


def builtin_study(name: str) -> StudySpec:
    return StudySpec(name=name, experiments=tuple(builtin_experiment(n) for n in STUDIES[name]))


def published_for(study: StudySpec) -> dict[str, dict]:
    """The published figures of the study's experiments (see PUBLISHED)."""
    return {e.name: PUBLISHED[e.name] for e in study.experiments if e.name in PUBLISHED}


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
        elif base_name in MODELS or base_name in STUDY_EXPERIMENTS:
            base = builtin_experiment(base_name)
        else:
            raise UserError(
                f"{where}.base = {base_name!r} is not a built-in model "
                f"(known: {', '.join([*MODELS, *STUDY_EXPERIMENTS])})"
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
        elif name in MODELS or name in STUDY_EXPERIMENTS:
            chosen.append(builtin_experiment(name))
        else:
            known = sorted(set(by_name) | set(MODELS) | set(STUDY_EXPERIMENTS))
            raise UserError(f"unknown model '{name}' (known: {', '.join(known)})")
    return dataclasses.replace(study, experiments=tuple(chosen))
