"""Rejecting impossible specs before anything runs, with a message naming the key.

Stage: spec.
"""

from __future__ import annotations

import dataclasses

from compare.errors import UserError
from compare.spec.identity import FRAMEWORKS
from compare.spec.parse import resolve
from compare.spec.schema import (
    ACTIVATIONS,
    ADAM_FORMULAS,
    ARCHITECTURES,
    CLASSIFICATION_LOSSES,
    DATASETS,
    FEATURES,
    IMAGE_SHAPE,
    INITIALIZERS,
    LOGITS_FROM,
    LOSSES,
    NUM_CLASSES,
    OPTIMIZERS,
    OUTPUT_ACTIVATIONS,
    PIPELINES,
    POOLINGS,
    REGRESSORS,
    RMSPROP_FORMULAS,
    VALIDATION_SPLITS,
    DataSpec,
    ExperimentSpec,
    ModelSpec,
    TrainSpec,
    conv_output_shape,
    train_pool_size,
    train_size,
)

# Keras's DenseNet121 refuses smaller inputs: five halvings leave a 1x1 map at 32.
DENSENET_MIN_IMAGE_SIZE = 32


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


def _check_choice(value: str, choices: tuple[str, ...], key: str) -> None:
    _check(value in choices, f"{key} = {value!r} is unknown (choose one of: {', '.join(choices)})")


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
    pool = train_pool_size(data)
    _check(
        0 <= data.validation_size < pool,
        f"{where} data.validation_size must be between 0 and {pool - 1}, "
        f"got {data.validation_size} (it would leave no training data)",
    )
    _check_choice(data.validation_split, VALIDATION_SPLITS, f"{where} data.validation_split")
    _check_choice(data.pipeline, PIPELINES, f"{where} data.pipeline")
    for key in ("train_limit", "validation_limit", "test_limit"):
        value = getattr(data, key)
        _check(value is None or value >= 10, f"{where} data.{key} must be >= 10, got {value}")
    _check(data.pixel_divisor > 0, f"{where} data.pixel_divisor must be > 0")
    _check(data.std > 0, f"{where} data.std must be > 0, got {data.std}")
    _validate_images(data, model, where)
    if model.architecture == "logreg":
        _check(
            len(model.hidden_sizes) == 0,
            f"{where} model.architecture = 'logreg' has no hidden layers: "
            f"set model.hidden_sizes = [] (got {list(model.hidden_sizes)})",
        )
    elif model.architecture == "mlp":
        _check(len(model.hidden_sizes) > 0, f"{where} model.hidden_sizes must not be empty")
    classes = len(data.classes) or NUM_CLASSES
    _check(
        model.num_classes == classes,
        f"{where} model.num_classes must be {classes}, the number of classes the data keeps "
        f"(data.classes = {list(data.classes)}; empty: all {NUM_CLASSES})",
    )
    _check(
        model.use_bias,
        f"{where} model.use_bias = false applies to the regression nets only: set it to true",
    )
    _check_choice(train.loss, CLASSIFICATION_LOSSES, f"{where} train.loss")


def _validate_images(data: DataSpec, model: ModelSpec, where: str) -> None:
    """Classes, image size, augmentation, and the transfer model's own fields."""
    distinct = len(set(data.classes)) == len(data.classes)
    _check(
        distinct and len(data.classes) != 1 and all(0 <= c < NUM_CLASSES for c in data.classes),
        f"{where} data.classes must be distinct labels in 0..{NUM_CLASSES - 1}, at least "
        f"two (empty: all), got {list(data.classes)}",
    )
    if model.architecture == "densenet121":
        _check(
            data.image_size >= DENSENET_MIN_IMAGE_SIZE,
            f"{where} data.image_size must be >= {DENSENET_MIN_IMAGE_SIZE} for densenet121 "
            f"(Keras's minimum), got {data.image_size}",
        )
        _check_choice(model.features, FEATURES, f"{where} model.features")
        _check(model.batchnorm_epsilon > 0, f"{where} model.batchnorm_epsilon must be > 0")
        _check(
            len(model.input_mean) == len(model.input_std) == 3
            and all(std > 0 for std in model.input_std),
            f"{where} densenet121 takes RGB: model.input_mean and model.input_std need "
            f"three values each, std > 0 (got {list(model.input_mean)}, "
            f"{list(model.input_std)})",
        )
    else:
        _check(
            data.image_size == IMAGE_SHAPE[0],
            f"{where} data.image_size = {data.image_size}: only densenet121 takes resized "
            f"images; the other models are built for {IMAGE_SHAPE[0]}x{IMAGE_SHAPE[1]}",
        )
        _check(
            model.features == "random" and not model.input_mean and not model.input_std,
            f"{where} model.features, model.input_mean and model.input_std apply only to "
            "model.architecture = 'densenet121'",
        )
    _check(
        0 <= data.rotation_degrees <= 180,
        f"{where} data.rotation_degrees must be in [0, 180], got {data.rotation_degrees}",
    )
    _check(
        0 <= data.flip_probability <= 1,
        f"{where} data.flip_probability must be in [0, 1], got {data.flip_probability}",
    )
    crop = (list(data.crop_scale), list(data.crop_ratio))
    _check(
        crop == ([], [])
        or (
            len(data.crop_scale) == len(data.crop_ratio) == 2
            and 0 < data.crop_scale[0] <= data.crop_scale[1] <= 1
            and 0 < data.crop_ratio[0] <= data.crop_ratio[1]
        ),
        f"{where} data.crop_scale and data.crop_ratio are both empty (no random resized "
        "crop) or both [low, high], 0 < scale low <= high <= 1, 0 < ratio low <= high; "
        f"got {crop[0]}, {crop[1]}",
    )
    augments = data.rotation_degrees > 0 or data.flip_probability > 0 or data.crop_scale
    _check(
        data.pipeline == "shared" or not (augments or data.image_size != IMAGE_SHAPE[0]),
        f"{where} data.pipeline = 'native' feeds the stored 28x28 images: resizing and "
        "augmentation happen on the shared pipeline only",
    )


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
    _check_choice(train.rmsprop_formula, RMSPROP_FORMULAS, f"{where} train.rmsprop_formula")
    _check(0.0 < train.target_accuracy <= 1.0, f"{where} train.target_accuracy must be in (0, 1]")
    return experiment
