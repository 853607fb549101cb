"""The implementation contract: what `pytorch_impl` and `keras_impl` each provide, written
once, and the only way `compare` reaches them.

Stage: run (the runner, the parity suite and the benchmark all go through `load`). Both
implementations satisfy `Implementation` (and their `regression` module
`RegressionNets`) with the same names and signatures; `tests/test_impl_contract.py`
checks that on both sides. Arrays cross the contract as NumPy, weights and gradients in
the canonical layout (`get_weights`), so the caller never sees a framework tensor.
"""

from __future__ import annotations

import importlib
import pathlib
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import numpy as np

from compare.spec.identity import DEFAULT_MODE, FRAMEWORKS

PACKAGES = {"torch": "pytorch_impl", "keras": "keras_impl"}


class Trainer(Protocol):
    """Owns one model's optimizer state on the run's device ("cpu" or "gpu")."""

    def __init__(self, model: Any, train_spec, mode: str = DEFAULT_MODE, device: str = "cpu"): ...

    def train_epoch(self, x: np.ndarray, y: np.ndarray, order=None, augmentation=None) -> float:
        """One pass over the rows of (x, y) in `order`, each row first transformed with
        its `augmentation` parameters (`compare.data.augment.Augmentation`) when given;
        the mean training loss."""

    def train_epoch_native(
        self, images: np.ndarray, y: np.ndarray, data_spec, seed: int, order=None
    ) -> float:
        """One epoch through the framework's own input path, as the seed scripts feed it."""

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One optimizer step on one batch, as `train_epoch` takes it; its loss."""

    def loss_and_gradients(self, x: np.ndarray, y: np.ndarray) -> tuple[float, list[np.ndarray]]:
        """The loss of one batch as `train_step` computes it (the spec's loss and target
        form, training mode) and its canonical-layout gradients; no update."""

    def apply_gradients(self, gradients: list[np.ndarray]) -> None:
        """One optimizer step with the given canonical-layout gradients."""


@runtime_checkable
class Implementation(Protocol):
    """A framework's side of the study (`pytorch_impl`, `keras_impl`)."""

    FRAMEWORK: str
    Trainer: type[Trainer]

    def backend(self) -> str:
        """The library that computes: "torch" for PyTorch, Keras's backend for Keras."""

    def configure(self, threads: int, seed: int, device: str, deterministic: bool = False) -> dict:
        """Pin threads, seed, choose the device and determinism; what was set."""

    def synchronize(self) -> None:
        """Wait for queued device work, so a clock read after it is honest."""

    def gpu_info(self, device: str) -> dict | None:
        """What the framework says of its GPU (`compare.run.devices.gpu_record`'s
        arguments); None on the CPU."""

    def intra_op_threads(self, count: int | None):
        """A context: the block runs on `count` intra-op threads (None: unchanged); it
        yields the count in effect. Where the library fixes its pools at start, it
        raises RuntimeError."""

    def float_precision(self, dtype: str):
        """A context: models built inside it hold `dtype` parameters."""

    def build_model(self, model_spec) -> Any: ...

    def pair_model(self, name: str, **port) -> Any:
        """A model of the parity zoo (`compare.parity.zoo`), written as a user writes one,
        not from a spec (`pytorch_impl.pairs.PAIRS`); `port` injects a porting bug on the
        Keras side, `stock=True` takes a library model as it comes."""

    def make_optimizer_for(self, model, train_spec) -> Any:
        """The optimizer `train_spec` names, for a model's trainable parameters."""

    def count_parameters(self, model) -> int: ...

    def get_weights(self, model) -> list[np.ndarray]: ...

    def set_weights(self, model, weights: list[np.ndarray]) -> None: ...

    def optimizer_trajectory(
        self, train_spec, mode: str, start: np.ndarray, gradients: np.ndarray, checkpoints
    ) -> dict[int, np.ndarray]:
        """The stock optimizer `Trainer` builds for (train_spec, mode), on one float32
        parameter holding `start`, fed `gradients` (steps, n) a row a step: the
        parameter after each checkpoint step (and the last)."""

    def predict(self, model, x: np.ndarray, batch_size: int) -> np.ndarray:
        """Logits in inference mode."""

    def dropout_probe(self, model, x: np.ndarray) -> list[dict]:
        """Each dropout layer in forward order: `after_weighted_layers`, its `input` on x
        (inference mode up to it), its `training` and `inference` outputs on that input."""

    def mode_probe(self, model):
        """A context: every call of the model's dropout and normalisation layers while it
        runs, with whether it computed in training mode; yields (layers, calls), each
        layer {"layer", "kind", "trainable"}, each call {"layer", "active"}."""

    def training_batches(
        self, x: np.ndarray, y: np.ndarray, batch_size: int, order=None
    ) -> Iterator[tuple[Any, Any]]:
        """The batches `Trainer.train_epoch` feeds the model, in order."""

    def load_fashion_mnist(self, source: pathlib.Path, scratch: pathlib.Path, names) -> tuple:
        """The framework's own dataset loader on the local files `names` in `source`."""

    def framework_defaults(self) -> dict:
        """The framework's own defaults where the two differ (read from the library)."""


@runtime_checkable
class RegressionNets(Protocol):
    """A framework's regression nets (`pytorch_impl.regression`, `keras_impl.regression`)."""

    Trainer: type

    def build_model(self, model_spec, input_size: int, output_size: int) -> Any: ...

    def count_parameters(self, model) -> int: ...

    def get_weights(self, model) -> list[np.ndarray]: ...

    def set_weights(self, model, weights: list[np.ndarray]) -> None: ...

    def predict(self, model, x: np.ndarray, depth: int = 0) -> np.ndarray: ...


def load(framework: str) -> Implementation:
    """The implementation of `framework` (imports its framework, and only it)."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"unknown framework {framework!r}")
    return importlib.import_module(PACKAGES[framework])


def load_regression(framework: str) -> RegressionNets:
    """The regression nets of `framework`."""
    return importlib.import_module(f"{PACKAGES[framework]}.regression")
