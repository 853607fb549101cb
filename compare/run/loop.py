"""The one training loop a worker runs, for the classifiers and the regression nets.

Stage: run. An epoch is whatever the implementation's epoch entry point does (a pass
over the shared split in the shared order for a classifier; one full-batch step at the
shared depth for a regression net). The loop times it with the shared definition
(`compare.run.timing`), records it, reports it after the clock is read, and stops at
the first non-finite loss. It fills `result` in place, so a failure keeps everything
measured before it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from compare import files
from compare.data import augment, split
from compare.run import contract, devices, initial_weights, metrics, regression, timing
from compare.run.protocol import NOTICE, PROGRESS
from compare.spec import parse
from compare.spec.schema import REGRESSORS, ExperimentSpec


class Diverged(Exception):
    """The training or validation loss became NaN or infinite."""


def check_finite(epoch: dict) -> None:
    for key, name in (("train_loss", "training"), ("val_loss", "validation")):
        # val_loss is None without a validation set (the PyTorch seed scripts).
        if epoch[key] is not None and not math.isfinite(epoch[key]):
            raise Diverged(f"{name} loss is {epoch[key]} in epoch {epoch['epoch']}")


def train_epochs(
    num_epochs: int,
    epoch_of: Callable[[int], Callable[[], float]],
    after_epoch: Callable[[int], dict],
    phases: timing.PhaseTimer,
    result: dict,
    emit: Callable[[str, object], None],
) -> list[float]:
    """Time `epoch_of(epoch)()` for each epoch (only the call is timed: `epoch_of`
    prepares it, e.g. draws the epoch's order, outside the clock); `after_epoch(epoch)`
    adds to the epoch's record (validation scores, the depth), also outside. Returns
    the epoch seconds."""
    result["stage"] = "training"
    epochs = result["epochs"]
    for epoch in range(num_epochs):
        train_loss, seconds = phases.time(epoch_of(epoch))
        record = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "val_loss": None,
            "val_accuracy": None,
            "epoch_seconds": seconds,
            **after_epoch(epoch),
        }
        epochs.append(record)
        emit(PROGRESS, {**files.finite_or_none(record), "epochs": num_epochs})
        # A diverged model only produces NaN from here on: stop, and say where.
        check_finite(record)
    epoch_seconds = [e["epoch_seconds"] for e in epochs]
    phases.seconds["first_epoch"] = epoch_seconds[0]
    phases.seconds["steady_epochs"] = sum(epoch_seconds[1:])
    return epoch_seconds


def train_and_evaluate(request, result: dict, emit: Callable[[str, object], None]) -> None:
    """One run of `request` (a RunRequest): configure, load, build, train, score."""
    experiment = parse.from_dict(ExperimentSpec, request.experiment)
    phases = timing.PhaseTimer()
    result["phase_seconds"] = phases.seconds

    with phases.phase("imports"):
        impl = contract.load(request.framework)
        result["runtime"] = impl.configure(
            request.threads, request.seed, request.device, request.deterministic
        )
    phases.synchronize = impl.synchronize
    result["device"] = result["runtime"]["device"]
    result["device_notice"] = result["runtime"]["device_notice"]
    # Outside every timed phase: it may start CUDA and runs nvidia-smi.
    framework_view = impl.gpu_info(result["device"])
    result["gpu"] = None if framework_view is None else devices.gpu_record(**framework_view)
    if result["device_notice"]:
        emit(NOTICE, result["device_notice"])
    if experiment.model.architecture in REGRESSORS:
        train_regression(impl, experiment, request, phases, result, emit)
    else:
        train_classifier(impl, experiment, request, phases, result, emit)


def epoch_function(trainer, experiment, shared, seed: int, mode: str, epoch: int):
    """A call training `epoch` of a classifier run, as the worker trains it: the one
    entry point from a run to an implementation's epoch (parity's study-path level
    calls it too, so what it proves is what the study ran)."""
    if experiment.data.pipeline == "native":
        # Each framework's own input path shuffles (seeded from the run's seed).
        return lambda: trainer.train_epoch_native(
            shared.train_images, shared.y_train, experiment.data, seed
        )
    order = split.epoch_order(seed, epoch, len(shared.y_train))
    if mode == "idiomatic":
        # The tutorials' input path, in the shared order.
        return lambda: trainer.train_epoch_native(
            shared.train_images, shared.y_train, experiment.data, seed, order=order
        )
    # Each training image's transform for this epoch (None: no augmentation), the same
    # for both frameworks.
    augmentation = augment.draw(experiment.data, seed, epoch, len(shared.y_train))
    return lambda: trainer.train_epoch(shared.x_train, shared.y_train, order, augmentation)


def train_classifier(impl, experiment, request, phases, result, emit) -> None:
    seed, mode, train_spec = request.seed, request.mode, experiment.train
    with phases.phase("data"):
        shared = split.prepared(experiment.data, request.data_dir)
    result["split_manifest_hash"] = shared.manifest_hash
    result["split_manifest"] = shared.manifest

    with phases.phase("build"):
        model = impl.build_model(experiment.model)
        if initial_weights.shares_start(experiment.model):
            # Both sides start from torchvision's weights (compare.run.initial_weights).
            impl.set_weights(model, initial_weights.prepared(experiment.model, seed))
            result["features"] = experiment.model.features
        trainer = impl.Trainer(model, train_spec, mode, device=result["device"])
    result["parameter_count"] = impl.count_parameters(model)

    def dead_logits() -> int:
        """Classes whose logit is zero (or less) on every training image."""
        logits = impl.predict(model, shared.x_train, train_spec.eval_batch_size)
        return int((logits.max(axis=0) <= 0).sum())

    if experiment.model.output_activation == "relu":
        # A ReLU on the logits (mlp_512, as documented): a class whose logit is zero on
        # every training image gets no gradient through it from then on. How many are
        # dead at the start and at the end shows what drives such a model's seed-to-seed
        # spread (the report).
        with phases.phase("diagnostics"):
            result["dead_logits_at_init"] = dead_logits()

    def score(x, y):
        """(loss, accuracy) of the model on (x, y); (None, None) for an empty set."""
        if len(y) == 0:
            return None, None
        with phases.phase("evaluation"):
            logits = impl.predict(model, x, train_spec.eval_batch_size)
        return metrics.evaluate(logits, y)

    def epoch_of(epoch: int) -> Callable[[], float]:
        return epoch_function(trainer, experiment, shared, seed, mode, epoch)

    def after_epoch(epoch: int) -> dict:
        val_loss, val_accuracy = score(shared.x_val, shared.y_val)
        record = {"val_loss": val_loss, "val_accuracy": val_accuracy}
        if train_spec.test_every_epoch:
            record["test_loss"], record["test_accuracy"] = score(shared.x_test, shared.y_test)
        return record

    epoch_seconds = train_epochs(train_spec.epochs, epoch_of, after_epoch, phases, result, emit)
    if "dead_logits_at_init" in result:
        with phases.phase("diagnostics"):
            result["dead_logits_at_end"] = dead_logits()
    result["stage"] = "test"
    with phases.phase("evaluation"):
        test_logits = impl.predict(model, shared.x_test, train_spec.eval_batch_size)
    result["test_loss"], result["test_accuracy"] = metrics.evaluate(test_logits, shared.y_test)
    result["test_predictions"] = test_logits.argmax(axis=1).tolist()
    result["test_labels"] = shared.y_test.tolist()
    result["timing"] = timing.summarize_epochs(epoch_seconds, len(shared.y_train))
    result["timing"]["time_to_target_seconds"] = timing.time_to_target(
        epoch_seconds, [e["val_accuracy"] for e in result["epochs"]], train_spec.target_accuracy
    )


def train_regression(impl, experiment, request, phases, result, emit) -> None:
    """Random data and full-batch steps, one per "epoch" (`compare.run.regression`)."""
    seed = request.seed
    nets = contract.load_regression(request.framework)
    with phases.phase("data"):
        x, y = regression.make_data(experiment.data, seed)
        depths = regression.depth_sequence(experiment, seed)
    with phases.phase("build"):
        model = nets.build_model(experiment.model, x.shape[1], y.shape[1])
        nets.set_weights(model, regression.initial_weights(experiment, seed))
        trainer = nets.Trainer(model, experiment.train, device=result["device"])
    result["parameter_count"] = nets.count_parameters(model)

    def epoch_of(step: int) -> Callable[[], float]:
        return lambda: trainer.step(x, y, depths[step])

    def after_epoch(step: int) -> dict:
        return {"depth": depths[step]}

    try:
        seconds = train_epochs(len(depths), epoch_of, after_epoch, phases, result, emit)
    finally:
        # Recorded for a diverged run too: its losses up to the first non-finite one.
        regression.record(experiment, seed, [e["train_loss"] for e in result["epochs"]], result)
    result["timing"] = timing.summarize_epochs(seconds, len(x))
    result["timing"]["time_to_target_seconds"] = None
