"""The experiment spec: every hyperparameter and every framework default we override.

A spec is a tree of frozen dataclasses (data, model, training). Both implementations
build and train from it and from nothing else, so a number that is not here is not a
hyperparameter of the study. Where PyTorch and Keras disagree on a default (see
`../shared/parity-notes.md`), the field is set explicitly and commented `# Parity:`.

Stage: spec (the bottom of the import graph; it imports nothing else of the package
but `compare.errors`). Names every other stage shares live here: the frameworks, the
Keras backends, the execution modes, the image shape. Turning user input into specs is
`compare.spec.parse`; rejecting impossible values is `compare.spec.validate`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

from compare.errors import UserError

# Fashion-MNIST images are (height, width) = IMAGE_SHAPE, one channel, 10 classes.
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
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
# "densenet121": transfer learning (Part 8): DenseNet-121's features, frozen, under a
# dense head (hidden_sizes, then num_classes).
CLASSIFIERS = ("mlp", "logreg", "cnn", "densenet121")
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
# The same for RMSprop: "torch" makes the Keras side take torch's update (epsilon
# added outside the square root, momentum buffer scaled by lr at the step).
RMSPROP_FORMULAS = ("native", "torch")
# Where "densenet121" starts: "random" is torchvision's seeded initialisation
# (weights=None); "imagenet" is torchvision's IMAGENET1K_V1 checkpoint, read from the
# torch hub cache, never downloaded; "auto" is "imagenet" when that file is cached,
# else "random" (the runner decides before a run, so the run's spec says which).
FEATURES = ("random", "imagenet", "auto")


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
    # Keep only these classes, relabelled 0..k-1 in this order (empty: all ten).
    classes: tuple[int, ...] = ()
    # Images resized (bilinear, half-pixel centres) to image_size x image_size once, in
    # the shared preprocessing. 28 = as stored.
    image_size: int = 28
    # Augmentation of every training image, drawn anew each epoch from the run's seed
    # (`compare.data.augment`), applied by each framework (tutorial Part 2):
    # RandomRotation(rotation_degrees), RandomResizedCrop(image_size, crop_scale,
    # crop_ratio), RandomHorizontalFlip(flip_probability). 0 / () / 0 = off.
    rotation_degrees: float = 0.0
    crop_scale: tuple[float, ...] = ()
    crop_ratio: tuple[float, ...] = ()
    flip_probability: float = 0.0
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
    # --- "densenet121" only: the frozen features' start (FEATURES above).
    features: str = "random"
    # Parity: Keras's DenseNet121 builds its BatchNormalization layers with epsilon
    # 1.001e-5, torchvision's DenseNet 1e-5; both sides set this one.
    batchnorm_epsilon: float = 1e-5
    # The model's input is a grey (B, S, S) image in [0, 1]; its first step repeats it
    # to RGB and normalises channel c as (x - input_mean[c]) / input_std[c], the
    # statistics the pretrained features were trained with.
    input_mean: tuple[float, ...] = ()
    input_std: tuple[float, ...] = ()


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
    # Parity: stock Keras RMSprop adds epsilon inside the square root, torch outside;
    # "torch" swaps in torch's update on the Keras side (parity's lockstep uses it).
    rmsprop_formula: str = "native"
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
    # Enough for the TOST verdict (EQUIVALENCE_MIN_SEEDS), so the default study answers.
    seeds: int = 5
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
    # `python -m compare parity` checks under this many parity seeds (seed, seed + 1, ...:
    # other initial weights, batches and probes) by default; a level passes only if it
    # passes under every one (`--seeds`), so a verdict does not hang on one draw.
    seeds: int = 2
    # Examples in the forward/gradient batch (real Fashion-MNIST test images).
    batch_size: int = 256
    forward_rtol: float = 1e-5
    forward_atol: float = 1e-5
    loss_atol: float = 1e-5
    # Per tensor: |delta| <= gradient_rtol * max|g| + gradient_atol.
    gradient_rtol: float = 1e-5
    gradient_atol: float = 1e-7
    # Both sides' optimizers (the aligned ones) fed identical gradients of this scale for
    # `optimizer_steps` steps; the stock ones over a whole run: stock_optimizer below.
    optimizer_gradient_scale: float = 0.1
    optimizer_steps: int = 25
    optimizer_atol: float = 1e-5
    # Lockstep training: same initial weights, same batches, `steps` steps.
    steps: int = 100
    lockstep_atol: float = 1e-5
    # A user's pair's tolerances are the pair engine's own: compare.pair.spec.PairSpec.
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
    # Calibrated on unmodified code (python -m compare parity, every catalog model, three
    # Keras backends, 2026-12-03): past the horizon, Keras's gap over torch's own drift
    # had median 0.68 and maximum 11.9 over 78 checkpoints (logreg on Keras's torch
    # backend, whose per-step rounding differs more than a one-ulp nudge does, and grows
    # at the same exponential rate). 30 leaves 2.5x headroom over the largest seen. Bugs
    # show before the horizon (an update rule or hyperparameter moves the gap at step 1)
    # or in the float64 replay, which gates on TensorFlow.
    lockstep_floor_factor: float = 30.0
    # Independent one-ulp nudges of torch's start that sample its rounding drift (the
    # largest counts; see compare.parity.training.rounding_floor), in lockstep and on the
    # study path.
    rounding_nudges: int = 6
    # Steps at which optimizer and lockstep compare parameters (the last one is `steps`;
    # those past it are skipped).
    checkpoints: tuple[int, ...] = (1, 10, 25, 50)
    # The float64 replay agrees to ~1e-13 where the backend computes float64; above this,
    # a backend narrowed float64 to float32 (Keras on jax/torch) and the note says so.
    float64_replay_floor: float = 1e-9
    # Where Keras computes float64 (TensorFlow), the float64 replay gates lockstep: its
    # gap must stay within max(this, lockstep_floor_factor x torch's own float64 drift
    # from a one-ulp start). Measured on the catalog (seed 0, 100 steps): ~1e-13 for the
    # MLPs; 3e-7 for the CNNs (5.9e-9 after 10 steps, against a float64 drift of 4e-16: a
    # float64 difference in TensorFlow's convolution path, not located); logreg 1.7e-4
    # against a float64 drift of 4.3e-5 (SGD at lr 0.5 amplifies even float64 rounding).
    # An update rule that differs (a hyperparameter, a formula) moves it by 1e-4 or more.
    float64_gate_atol: float = 1e-6
    # Regression nets, step-by-step agreement of per-step losses (each framework against
    # the NumPy ground truth, and against each other). Float32 runs follow each other (and
    # the float64 NumPy reference) closely at first, then rounding differences grow:
    # - once the loss nears float32's resolution, updates fall below the weights' last
    #   bit and the runs plateau at different values (two_layer_net, seed 0: 5.5e-4
    #   relative at most while the reference is within 8 decades of its start, 2.6e-1
    #   past it);
    # - dynamic_net (momentum, random depth) amplifies any difference: PyTorch against
    #   itself with one weight nudged by one ulp drifts 1.3e-5 within 200 steps but
    #   3.6e-2 by step 500 (seed 2).
    # So losses are compared over the first `regression_compared_steps` steps, stopping
    # earlier where the reference falls below `regression_compared_down_to` x its first
    # value, and agree within `regression_loss_rtol`, relative.
    regression_compared_steps: int = 200
    regression_compared_down_to: float = 1e-8
    regression_loss_rtol: float = 1e-3
    # Initialisers: each side's own freshly built weights against the spec's
    # distribution, per tensor: every value within the distribution's bounds, and a
    # Kolmogorov-Smirnov test, the sample mean and variance (as z-scores) not rejecting
    # it. Both thresholds put a correct tensor's false-alarm rate near 1e-6 per test.
    init_p_min: float = 1e-6
    init_z_max: float = 5.0
    # Dropout in the built model, training mode: the share of dropped units among the
    # non-zero inputs is tested against the spec's rate (two-sided binomial test), and
    # survivors must be scaled by 1 / (1 - rate) to this relative tolerance.
    # On dropout_examples test images: with the headline nets' 64-256 units, 10^5 or
    # more units per layer, so a rate 10 % off (0.22 for 0.2) is ~10 standard errors out.
    dropout_examples: int = 2_000
    dropout_p_min: float = 1e-6
    dropout_scale_rtol: float = 1e-5
    # Study path: both sides trained through the worker's own epoch entry point
    # (compare.run.loop.epoch_function) from the same weights, on a stratified subset of
    # study_path_batches full batches plus a partial one (a third of a batch), for
    # study_path_epochs epochs, so the epoch boundary, the shared order and the last
    # partial batch all run. Held to the lockstep atol after every epoch.
    study_path_batches: int = 2
    study_path_epochs: int = 3
    # Stock optimizers against a float64 NumPy replay of their framework's documented
    # update (compare.parity.formulas): per gradient-scale group, the float32 trajectory
    # may differ from the reference by stock_optimizer_rtol x the group's displacement
    # from the start, plus stock_optimizer_atol.
    # Measured (compare.parity.formulas' probe, seeds 0-4, 2,000 and 25,800 steps, every
    # optimizer on torch and Keras's three backends): at most 0.11 of this bound; every
    # injected optimizer bug (class, lr x 1.1, betas/rho x 0.9, epsilon x 10, weight decay
    # 1e-4, nesterov or momentum dropped, dampening, a late schedule) 10x past it or more.
    stock_optimizer_rtol: float = 1e-3
    stock_optimizer_atol: float = 1e-7
    # Probe elements per gradient scale (nine scales, 1e-8 to 1), and how many
    # checkpoints, log-spaced from step 1 to the study's longest run, are compared.
    stock_optimizer_per_scale: int = 8
    stock_optimizer_checkpoints: int = 24


SECTIONS = {"data": DataSpec, "model": ModelSpec, "train": TrainSpec}


# --- arithmetic of a spec (used by validation and by both implementations) -------


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


def train_pool_size(data: DataSpec) -> int:
    """Training-pool images of the spec's classes (Fashion-MNIST: 6,000 per class)."""
    if not data.classes:
        return TRAIN_POOL_SIZE
    return TRAIN_POOL_SIZE // NUM_CLASSES * len(set(data.classes))


def train_size(data: DataSpec) -> int:
    """The number of training examples a data spec leaves."""
    if data.dataset == "random_normal":
        return data.num_samples
    size = train_pool_size(data) - data.validation_size
    return size if data.train_limit is None else min(size, data.train_limit)


def conv_output_shape(model: ModelSpec) -> tuple[int, int, int]:
    """(C, H, W) after the convolutions and the pooling of a "cnn" model spec.

    Raises UserError naming the key when a layer would leave no pixels.
    """
    channels, (height, width) = 1, IMAGE_SHAPE
    for index, filters in enumerate(model.conv_filters):
        # torch's (and "valid" after explicit padding) output size, floor division.
        height, width = (
            (size + 2 * model.conv_padding - model.conv_kernel_size) // model.conv_stride + 1
            for size in (height, width)
        )
        _require(
            height >= 1 and width >= 1,
            f"model.conv_filters[{index}]: the convolution leaves no pixels "
            f"(kernel {model.conv_kernel_size}, stride {model.conv_stride}, "
            f"padding {model.conv_padding}); use fewer layers, a smaller stride or kernel",
        )
        channels = filters
    if model.pooling == "avg":
        _require(
            model.pool_size <= min(height, width),
            f"model.pool_size = {model.pool_size} is larger than the {height}x{width} "
            "feature map the convolutions leave; use a smaller pool_size",
        )
        height, width = height // model.pool_size, width // model.pool_size
    elif model.pooling == "global_avg":
        height, width = 1, 1
    return channels, height, width
