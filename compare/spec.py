"""The experiment spec: every hyperparameter and every framework default we override.

A spec is a tree of frozen dataclasses (data, model, training). Both implementations
build and train from it and from nothing else, so a number that is not here is not a
hyperparameter of the study. Where PyTorch and Keras disagree on a default (see
`../shared/parity-notes.md`), the field is set explicitly and commented `# Parity:`.

This module also owns the generic machinery that turns user input (TOML study files,
`--set section.key=value` overrides) into specs, with type checks that name the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
import types
import typing

from compare.errors import UserError
from compare.results import FRAMEWORKS, KERAS_BACKENDS  # noqa: F401 - re-exported

# The full Fashion-MNIST training set; the split below carves validation out of it.
TRAIN_POOL_SIZE = 60_000
TEST_POOL_SIZE = 10_000

OPTIMIZERS = ("sgd", "adam", "rmsprop")
# "cross_entropy": on logits. "log_softmax_nll": a log-softmax output and NLL loss, as the
# PyTorch tutorials write it. "softmax_categorical_crossentropy": a softmax output and
# categorical cross-entropy on one-hot labels, as the seed-002 Keras script writes it.
# "sum_squared_error": the regression nets' loss (MSELoss(reduction="sum")).
CLASSIFICATION_LOSSES = ("cross_entropy", "log_softmax_nll", "softmax_categorical_crossentropy")
LOSSES = (*CLASSIFICATION_LOSSES, "sum_squared_error")
# "custom_relu": ReLU with a hand-written backward (torch.autograd.Function on one side,
# a custom gradient on the other), as in the "Learning PyTorch with Examples" tutorial.
ACTIVATIONS = ("relu", "sigmoid", "tanh", "custom_relu")
OUTPUT_ACTIVATIONS = ("none", "relu")
# Fashion-MNIST classifiers, and the tutorial's regression nets on random data.
CLASSIFIERS = ("mlp", "logreg", "cnn")
REGRESSORS = ("two_layer_net", "dynamic_net")
ARCHITECTURES = (*CLASSIFIERS, *REGRESSORS)
INITIALIZERS = ("uniform_fan_in", "glorot_uniform", "zeros", "standard_normal")
DATASETS = ("fashion_mnist", "random_normal")
# "stratified": a seeded stratified hold-out. "shuffled_head": a seeded shuffle of the
# training pool, then the first `validation_size` held out (the seed-002 Keras script).
VALIDATION_SPLITS = ("stratified", "shuffled_head")
# "shared": both frameworks slice the same preprocessed arrays in the shared order.
# "native": each framework's own input path as the seed scripts use it (PyTorch: a
# DataLoader applying ToTensor/Normalize per example; Keras: `fit(shuffle=True)`).
PIPELINES = ("shared", "native")
POOLINGS = ("none", "avg", "global_avg")
LOGITS_FROM = ("dense", "conv")
# "native": each framework's stock Adam (what the study trains with). "torch": the Keras
# side re-implements torch's update, so lockstep parity can hold (see parity-notes.md).
ADAM_FORMULAS = ("native", "torch")


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """The shared split and the preprocessing both frameworks receive."""

    dataset: str = "fashion_mnist"
    # 0 = no validation set: train on all 60,000 (the PyTorch tutorials do).
    validation_size: int = 5_000
    validation_split: str = "stratified"
    split_seed: int = 0
    # Stratified subsets (None = all); the quick profile uses them to stay fast.
    train_limit: int | None = None
    validation_limit: int | None = None
    test_limit: int | None = None
    # x = (pixel / pixel_divisor - mean) / std, in float32. The seed MLP: ToTensor()
    # (a division by 255, as torchvision does it) then Normalize((0.5,), (0.5,)).
    pixel_divisor: float = 255.0
    mean: float = 0.5
    std: float = 0.5
    pipeline: str = "shared"
    # dataset = "random_normal" (the regression nets): x (num_samples, input_size) and
    # y (num_samples, output_size), both standard normal, drawn from the run's seed.
    num_samples: int = 64
    input_size: int = 1_000
    output_size: int = 10


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """The architecture; models are built from these fields alone."""

    architecture: str = "mlp"
    hidden_sizes: tuple[int, ...] = (256, 64)
    activation: str = "relu"
    # "relu" reproduces mlp_512's documented ReLU on the logits.
    output_activation: str = "none"
    dropout_rate: float = 0.0
    num_classes: int = 10
    # Parity: Keras defaults to glorot_uniform kernels and zero biases, PyTorch to
    # U(+-1/sqrt(fan_in)) for both; the study picks one and both sides use it.
    kernel_init: str = "uniform_fan_in"
    bias_init: str = "uniform_fan_in"
    use_bias: bool = True
    # "dynamic_net": the shared middle layer runs a random 0..max_middle_repeats times
    # per forward pass, following a seeded sequence both frameworks share.
    max_middle_repeats: int = 3
    # --- "cnn" only: convolutions -> pooling -> flatten -> the dense layers above.
    # One conv per entry (out channels), each followed by `activation`. Dropout applies
    # to the dense layers only.
    conv_filters: tuple[int, ...] = ()
    conv_kernel_size: int = 3
    conv_stride: int = 1
    # Torch-style symmetric zero padding in pixels, on every side. Parity: not Keras's
    # "same", which pads the odd pixel bottom/right only (see parity-notes.md).
    conv_padding: int = 0
    # "avg": pool_size x pool_size windows at stride pool_size (torch AvgPool2d(k));
    # "global_avg": one average per channel (torch AdaptiveAvgPool2d(1)).
    pooling: str = "none"
    pool_size: int = 2
    # "dense": hidden_sizes, then a dense layer to num_classes. "conv": the flattened
    # pooled features are the logits (Mnist_CNN); needs hidden_sizes = [].
    logits_from: str = "dense"


@dataclasses.dataclass(frozen=True)
class TrainSpec:
    """The training recipe."""

    optimizer: str = "adam"
    learning_rate: float = 0.003
    batch_size: int = 64
    epochs: int = 20
    loss: str = "cross_entropy"
    # SGD
    momentum: float = 0.0
    nesterov: bool = False
    # Adam. Parity: Keras uses epsilon 1e-7, PyTorch 1e-8; set explicitly.
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    # Parity: stock Keras and torch Adam differ in epsilon placement and in the precision
    # of the bias correction, so no setting makes them agree step for step.
    adam_formula: str = "native"
    # RMSprop (also uses epsilon and momentum). Parity: Keras calls it rho (default
    # 0.9), PyTorch alpha (default 0.99); set explicitly.
    rho: float = 0.9
    # Batch size for validation/test predictions (does not affect results).
    eval_batch_size: int = 1_000
    # Validation accuracy a run must reach for "time to target" in the report.
    target_accuracy: float = 0.85
    # Also score the test set after every epoch (the tutorials print it per epoch).
    test_every_epoch: bool = False


@dataclasses.dataclass(frozen=True)
class ExperimentSpec:
    """One model with its data and recipe; a run is (experiment, framework, seed)."""

    name: str
    data: DataSpec = DataSpec()
    model: ModelSpec = ModelSpec()
    train: TrainSpec = TrainSpec()
    # Per-framework changes on top of data/model/train, for experiments whose two sides
    # deliberately differ (the seed-002 scripts, the ablation ladder):
    # {"keras": {"train": {"optimizer": "rmsprop"}}}. Empty for "the same model".
    # Not hashed (a dict cannot be); equality still compares it.
    framework_overrides: dict = dataclasses.field(default_factory=dict, hash=False)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def spec_hash(self) -> str:
        """A stable hash of everything that determines a run's outcome."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class StudySpec:
    """A named list of experiments, each run for `seeds` seeds in both frameworks."""

    name: str
    experiments: tuple[ExperimentSpec, ...]
    seeds: int = 3
    # Equivalence margin for the TOST verdict: +-1 percentage point of test accuracy.
    equivalence_margin: float = 0.01


# TOST at the usual 5 % level, i.e. the 90 % interval of the difference inside the
# margin; "equivalent" needs at least this many seeds per framework (issue #3).
EQUIVALENCE_ALPHA = 0.05
EQUIVALENCE_MIN_SEEDS = 5


@dataclasses.dataclass(frozen=True)
class ParitySpec:
    """How `python -m compare parity` checks that both sides are the same model.

    Tolerances are those measured to fit float32 on a CPU (`../shared/parity-notes.md`).
    """

    seed: int = 0
    # Examples in the forward/gradient batch (real Fashion-MNIST test images).
    batch_size: int = 256
    forward_rtol: float = 1e-5
    forward_atol: float = 1e-5
    loss_atol: float = 1e-5
    # Per tensor: |delta| <= gradient_rtol * max|g| + gradient_atol.
    gradient_rtol: float = 1e-5
    gradient_atol: float = 1e-7
    # One optimizer fed identical gradients of this scale for `steps` steps.
    optimizer_gradient_scale: float = 0.1
    optimizer_atol: float = 1e-5
    # Lockstep training: same initial weights, same batches, `steps` steps.
    steps: int = 100
    lockstep_atol: float = 1e-5
    # Adam divides by sqrt(v) + eps, so where a gradient is near zero (|g| ~ eps) the
    # frameworks' ~1e-9 rounding differences become step differences of up to ~1 % of
    # the learning rate. Measured on the MLP (lr 0.003, aligned formula, 16 initial
    # weights): 2e-6 to 3.4e-5 after 1 step and the same after 100 for 14 of them; the
    # other 2 drift apart (5e-3, 6e-2) as rounding tips a ReLU or an update's sign. The
    # notes' 5e-5 bound applies. The float64 replay beside it stays within 1e-13.
    lockstep_adam_atol: float = 5e-5
    # Where training amplifies rounding, torch drifts from itself past atol when only
    # rounding changes: a one-ulp nudge of its start, or another thread count (the same
    # math summed in another order, as another framework's kernels do). The 4-layer MLP
    # with Adam drifts 9e-2 in 100 steps between 1 and 2 threads; logreg's SGD at lr 0.5,
    # 9e-2. The level bounds each loss and parameter gap by max(atol, this many times
    # torch's own drift): atol where the drift is tiny, the drift past the horizon (the
    # notes' "compare loss curves, not parameters" made measurable). Stock Adam still
    # fails (tests/test_parity.py).
    lockstep_floor_factor: float = 10.0


SECTIONS = {"data": DataSpec, "model": ModelSpec, "train": TrainSpec}


# --- building specs from user input -------------------------------------------------


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def coerce(value, tp, key: str):
    """Check `value` against the annotation `tp`; return it in the field's type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return coerce(value, option, key)
            except UserError as error:
                errors.append(error)
        raise errors[0]
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{key} must be a list, got {value!r}")
        (item_type, _ellipsis) = typing.get_args(tp)
        return tuple(coerce(item, item_type, f"{key}[{i}]") for i, item in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise UserError(f"{key} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{key} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{key} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise UserError(f"{key} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported field type {_type_name(tp)} for {key}")


def replace_fields(instance, values: dict, where: str):
    """`dataclasses.replace` with unknown keys and wrong types reported by name."""
    hints = typing.get_type_hints(type(instance))
    known = [f.name for f in dataclasses.fields(instance)]
    changes = {}
    for key, value in values.items():
        if key not in known:
            raise UserError(f"unknown key '{where}.{key}' (known: {', '.join(known)})")
        changes[key] = coerce(value, hints[key], f"{where}.{key}")
    return dataclasses.replace(instance, **changes)


def parse_value(text: str):
    """Parse an override's value as TOML (numbers, booleans, lists); else a string."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(experiment: ExperimentSpec, overrides: list[str]) -> ExperimentSpec:
    """Apply `section.key=value` overrides, e.g. `train.learning_rate=0.01`."""
    for override in overrides:
        path, sep, text = override.partition("=")
        section, dot, key = path.strip().partition(".")
        if not sep or not dot or not key:
            raise UserError(
                f"bad --set '{override}': use section.key=value, e.g. train.learning_rate=0.01"
            )
        if section not in SECTIONS:
            raise UserError(
                f"bad --set '{override}': unknown section '{section}' "
                f"(known: {', '.join(SECTIONS)})"
            )
        current = getattr(experiment, section)
        updated = replace_fields(current, {key: parse_value(text.strip())}, section)
        experiment = dataclasses.replace(experiment, **{section: updated})
    return experiment


def framework_overrides_from_dict(values, base: dict, where: str) -> dict:
    """Check a `framework_overrides` table ({framework: {section: {key: value}}}) and
    merge it over `base`; every unknown name or wrong type is an error naming the key."""
    if not isinstance(values, dict):
        raise UserError(f"{where}.framework_overrides must be a table")
    merged = {framework: dict(tables) for framework, tables in base.items()}
    for framework, tables in values.items():
        key = f"{where}.framework_overrides.{framework}"
        if framework not in FRAMEWORKS:
            raise UserError(f"unknown framework in '{key}' (known: {', '.join(FRAMEWORKS)})")
        if not isinstance(tables, dict):
            raise UserError(f"{key} must be a table of sections")
        for section, changes in tables.items():
            if section not in SECTIONS:
                raise UserError(f"unknown section '{key}.{section}' (known: {', '.join(SECTIONS)})")
            if not isinstance(changes, dict):
                raise UserError(f"{key}.{section} must be a table")
            # Coerce now, so a wrong type is reported when the study loads.
            checked = replace_fields(SECTIONS[section](), changes, f"{key}.{section}")
            coerced = {name: getattr(checked, name) for name in changes}
            merged.setdefault(framework, {})
            merged[framework][section] = {**merged[framework].get(section, {}), **coerced}
    return merged


def resolve(experiment: ExperimentSpec, framework: str) -> ExperimentSpec:
    """The experiment as `framework` runs it: its framework_overrides applied.

    The table itself stays in the result, so each side's spec records both sides'
    deliberate differences.
    """
    for section, changes in experiment.framework_overrides.get(framework, {}).items():
        where = f"framework_overrides.{framework}.{section}"
        updated = replace_fields(getattr(experiment, section), changes, where)
        experiment = dataclasses.replace(experiment, **{section: updated})
    return experiment


def experiment_from_dict(values: dict, base: ExperimentSpec, where: str) -> ExperimentSpec:
    """Build an experiment from a mapping of sections on top of `base`."""
    experiment = base
    for key, value in values.items():
        if key == "name":
            experiment = dataclasses.replace(experiment, name=coerce(value, str, f"{where}.name"))
        elif key in SECTIONS:
            if not isinstance(value, dict):
                raise UserError(f"{where}.{key} must be a table")
            section = replace_fields(getattr(experiment, key), value, f"{where}.{key}")
            experiment = dataclasses.replace(experiment, **{key: section})
        elif key == "framework_overrides":
            merged = framework_overrides_from_dict(value, experiment.framework_overrides, where)
            experiment = dataclasses.replace(experiment, framework_overrides=merged)
        else:
            known = ", ".join(["name", "base", *SECTIONS, "framework_overrides"])
            raise UserError(f"unknown key '{where}.{key}' (known: {known})")
    return experiment


# --- validation --------------------------------------------------------------------


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


def _check_choice(value: str, choices: tuple[str, ...], key: str) -> None:
    _check(value in choices, f"{key} = {value!r} is unknown (choose one of: {', '.join(choices)})")


def train_size(data: DataSpec) -> int:
    """The number of training examples a data spec leaves."""
    if data.dataset == "random_normal":
        return data.num_samples
    size = TRAIN_POOL_SIZE - data.validation_size
    return size if data.train_limit is None else min(size, data.train_limit)


def conv_output_shape(model: ModelSpec) -> tuple[int, int, int]:
    """(C, H, W) after the convolutions and the pooling of a "cnn" model spec.

    Raises UserError naming the key when a layer would leave no pixels.
    """
    from compare.data import IMAGE_SHAPE  # here: compare.data imports this module

    channels, (height, width) = 1, IMAGE_SHAPE
    for index, filters in enumerate(model.conv_filters):
        # torch's (and "valid" after explicit padding) output size, floor division.
        height, width = (
            (size + 2 * model.conv_padding - model.conv_kernel_size) // model.conv_stride + 1
            for size in (height, width)
        )
        _check(
            height >= 1 and width >= 1,
            f"model.conv_filters[{index}]: the convolution leaves no pixels "
            f"(kernel {model.conv_kernel_size}, stride {model.conv_stride}, "
            f"padding {model.conv_padding}); use fewer layers, a smaller stride or kernel",
        )
        channels = filters
    if model.pooling == "avg":
        _check(
            model.pool_size <= min(height, width),
            f"model.pool_size = {model.pool_size} is larger than the {height}x{width} "
            "feature map the convolutions leave; use a smaller pool_size",
        )
        height, width = height // model.pool_size, width // model.pool_size
    elif model.pooling == "global_avg":
        height, width = 1, 1
    return channels, height, width


def _validate_cnn(model: ModelSpec, where: str) -> None:
    """The convolution fields: required for "cnn", left at their defaults otherwise."""
    _check_choice(model.pooling, POOLINGS, f"{where} model.pooling")
    _check_choice(model.logits_from, LOGITS_FROM, f"{where} model.logits_from")
    if model.architecture != "cnn":
        _check(
            not model.conv_filters and model.pooling == "none" and model.logits_from == "dense",
            f"{where} model.conv_filters, model.pooling and model.logits_from apply only to "
            f"model.architecture = 'cnn' (got {model.architecture!r}); set it to 'cnn'",
        )
        return
    _check(len(model.conv_filters) > 0, f"{where} model.conv_filters must not be empty for a cnn")
    _check(
        all(filters >= 1 for filters in model.conv_filters),
        f"{where} model.conv_filters must be positive, got {list(model.conv_filters)}",
    )
    _check(
        model.conv_kernel_size >= 1,
        f"{where} model.conv_kernel_size must be >= 1, got {model.conv_kernel_size}",
    )
    _check(
        model.conv_stride >= 1, f"{where} model.conv_stride must be >= 1, got {model.conv_stride}"
    )
    _check(
        model.conv_padding >= 0,
        f"{where} model.conv_padding must be >= 0, got {model.conv_padding}",
    )
    _check(model.pool_size >= 1, f"{where} model.pool_size must be >= 1, got {model.pool_size}")
    try:
        channels, height, width = conv_output_shape(model)
    except UserError as error:
        raise UserError(f"{where} {error}") from None
    if model.logits_from == "conv":
        _check(
            not model.hidden_sizes,
            f"{where} model.hidden_sizes must be [] when model.logits_from = 'conv' "
            "(the convolutions give the logits); use logits_from = 'dense' for a dense head",
        )
        _check(
            channels * height * width == model.num_classes,
            f"{where} model.logits_from = 'conv' needs {model.num_classes} features after "
            f"pooling, got {channels}x{height}x{width}; end conv_filters with "
            f"{model.num_classes} and pool to 1x1",
        )
    _check(
        all(size >= 1 for size in model.hidden_sizes),
        f"{where} model.hidden_sizes must be positive, got {list(model.hidden_sizes)}",
    )


def _validate_classifier(data: DataSpec, model: ModelSpec, train: TrainSpec, where: str) -> None:
    _check(
        data.dataset == "fashion_mnist",
        f"{where} model.architecture = {model.architecture!r} is a Fashion-MNIST classifier: "
        "set data.dataset = 'fashion_mnist'",
    )
    _check(
        0 <= data.validation_size < TRAIN_POOL_SIZE,
        f"{where} data.validation_size must be between 0 and {TRAIN_POOL_SIZE - 1}, "
        f"got {data.validation_size} (it would leave no training data)",
    )
    _check_choice(data.validation_split, VALIDATION_SPLITS, f"{where} data.validation_split")
    _check_choice(data.pipeline, PIPELINES, f"{where} data.pipeline")
    for key in ("train_limit", "validation_limit", "test_limit"):
        value = getattr(data, key)
        _check(value is None or value >= 10, f"{where} data.{key} must be >= 10, got {value}")
    _check(data.pixel_divisor > 0, f"{where} data.pixel_divisor must be > 0")
    _check(data.std > 0, f"{where} data.std must be > 0, got {data.std}")
    if model.architecture == "logreg":
        _check(
            len(model.hidden_sizes) == 0,
            f"{where} model.architecture = 'logreg' has no hidden layers: "
            f"set model.hidden_sizes = [] (got {list(model.hidden_sizes)})",
        )
    elif model.architecture == "mlp":
        _check(len(model.hidden_sizes) > 0, f"{where} model.hidden_sizes must not be empty")
    _check(model.num_classes == 10, f"{where} model.num_classes must be 10 for Fashion-MNIST")
    _check(
        model.use_bias,
        f"{where} model.use_bias = false applies to the regression nets only: set it to true",
    )
    _check_choice(train.loss, CLASSIFICATION_LOSSES, f"{where} train.loss")


def _validate_regressor(data: DataSpec, model: ModelSpec, train: TrainSpec, where: str) -> None:
    _check(
        data.dataset == "random_normal",
        f"{where} model.architecture = {model.architecture!r} trains on random data: "
        "set data.dataset = 'random_normal'",
    )
    for key in ("num_samples", "input_size", "output_size"):
        value = getattr(data, key)
        _check(value >= 1, f"{where} data.{key} must be >= 1, got {value}")
    _check(
        len(model.hidden_sizes) == 1,
        f"{where} model.architecture = {model.architecture!r} has one hidden width H: "
        f"set model.hidden_sizes = [H] (got {list(model.hidden_sizes)})",
    )
    _check(
        model.max_middle_repeats >= 0,
        f"{where} model.max_middle_repeats must be >= 0, got {model.max_middle_repeats}",
    )
    _check(
        train.loss == "sum_squared_error",
        f"{where} model.architecture = {model.architecture!r} is a regression net: "
        f"set train.loss = 'sum_squared_error' (got {train.loss!r})",
    )
    _check(
        train.batch_size == data.num_samples,
        f"{where} the regression nets train on the full batch: set train.batch_size = "
        f"data.num_samples = {data.num_samples} (got {train.batch_size})",
    )
    _check(
        model.dropout_rate == 0 and model.output_activation == "none",
        f"{where} model.dropout_rate and model.output_activation do not apply to "
        f"{model.architecture!r}: leave them at 0 and 'none'",
    )


def validate(experiment: ExperimentSpec) -> ExperimentSpec:
    """Reject impossible values with a message naming the key; return the spec.

    Each framework's side of the experiment (its framework_overrides applied) must be
    valid, so a bad override is reported before anything runs.
    """
    name, data, model, train = experiment.name, experiment.data, experiment.model, experiment.train
    where = f"experiment '{name}':"
    _check(bool(name), "an experiment needs a non-empty name")
    for framework in experiment.framework_overrides:
        _check(
            framework in FRAMEWORKS,
            f"{where} unknown framework '{framework}' in framework_overrides "
            f"(known: {', '.join(FRAMEWORKS)})",
        )
        side = resolve(experiment, framework)
        validate(dataclasses.replace(side, framework_overrides={}, name=f"{name}[{framework}]"))

    _check_choice(data.dataset, DATASETS, f"{where} data.dataset")
    _check_choice(model.architecture, ARCHITECTURES, f"{where} model.architecture")
    _check_choice(model.activation, ACTIVATIONS, f"{where} model.activation")
    _check_choice(model.output_activation, OUTPUT_ACTIVATIONS, f"{where} model.output_activation")
    _check_choice(model.kernel_init, INITIALIZERS, f"{where} model.kernel_init")
    _check_choice(model.bias_init, INITIALIZERS, f"{where} model.bias_init")
    _check(
        all(size >= 1 for size in model.hidden_sizes),
        f"{where} model.hidden_sizes must be positive, got {list(model.hidden_sizes)}",
    )
    _validate_cnn(model, where)
    _check(
        0.0 <= model.dropout_rate < 1.0,
        f"{where} model.dropout_rate must be in [0, 1), got {model.dropout_rate}",
    )
    _check_choice(train.optimizer, OPTIMIZERS, f"{where} train.optimizer")
    _check_choice(train.loss, LOSSES, f"{where} train.loss")
    if model.architecture in REGRESSORS:
        _validate_regressor(data, model, train, where)
    else:
        _validate_classifier(data, model, train, where)

    _check(
        train.learning_rate > 0,
        f"{where} train.learning_rate must be > 0, got {train.learning_rate}",
    )
    _check(train.epochs >= 1, f"{where} train.epochs must be >= 1, got {train.epochs}")
    size = train_size(data)
    _check(
        1 <= train.batch_size <= size,
        f"{where} train.batch_size must be between 1 and the training set size {size}, "
        f"got {train.batch_size}",
    )
    _check(train.eval_batch_size >= 1, f"{where} train.eval_batch_size must be >= 1")
    _check(0.0 <= train.momentum < 1.0, f"{where} train.momentum must be in [0, 1)")
    _check(0.0 <= train.beta_1 < 1.0, f"{where} train.beta_1 must be in [0, 1)")
    _check(0.0 <= train.beta_2 < 1.0, f"{where} train.beta_2 must be in [0, 1)")
    _check(0.0 <= train.rho < 1.0, f"{where} train.rho must be in [0, 1)")
    _check(train.epsilon > 0, f"{where} train.epsilon must be > 0")
    _check_choice(train.adam_formula, ADAM_FORMULAS, f"{where} train.adam_formula")
    _check(0.0 < train.target_accuracy <= 1.0, f"{where} train.target_accuracy must be in (0, 1]")
    return experiment


def from_dict(cls, values: dict):
    """Rebuild a dataclass tree written by `dataclasses.asdict` (result files)."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for field in dataclasses.fields(cls):
        value = values[field.name]
        tp = hints[field.name]
        if dataclasses.is_dataclass(tp):
            value = from_dict(tp, value)
        elif typing.get_origin(tp) is tuple:
            value = tuple(value)
        kwargs[field.name] = value
    return cls(**kwargs)
