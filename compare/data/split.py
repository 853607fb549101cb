"""The one shared split: both frameworks receive the arrays this module returns, byte
for byte.

Stage: data. The split, the subsets and the preprocessing happen here, once, in NumPy.
Every run records the split manifest hash so two runs can be shown to have seen the
same data, and every epoch's example order comes from `epoch_order`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np

from compare.data.fashion_mnist import FILES, load_raw
from compare.spec.schema import DataSpec


def _stratified_subset(indices: np.ndarray, labels: np.ndarray, size: int | None, seed: int):
    """A stratified, seeded subset of `indices` (all of them when size is None)."""
    from sklearn.model_selection import train_test_split

    if size is None or size >= len(indices):
        return np.sort(indices)
    subset, _rest = train_test_split(
        indices, train_size=size, stratify=labels[indices], random_state=seed
    )
    return np.sort(subset)


def _holdout(train_labels: np.ndarray, data: DataSpec) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices of the training pool, as `data.validation_split` says."""
    from sklearn.model_selection import train_test_split

    pool = np.arange(len(train_labels))
    if data.validation_size == 0:
        return pool, pool[:0]
    if data.validation_split == "shuffled_head":
        # The seed-002 Keras script: shuffle, then hold out the first N. Its shuffle was
        # an unseeded tf.random.shuffle; this one is seeded so both sides can repeat it.
        shuffled = np.random.default_rng(data.split_seed).permutation(pool)
        return shuffled[data.validation_size :], shuffled[: data.validation_size]
    return train_test_split(
        pool, test_size=data.validation_size, stratify=train_labels, random_state=data.split_seed
    )


def split_indices(train_labels: np.ndarray, test_labels: np.ndarray, data: DataSpec):
    """(train, validation, test) index arrays: seeded, sorted; subsets stratified."""
    train, validation = _holdout(train_labels, data)
    train = _stratified_subset(train, train_labels, data.train_limit, data.split_seed)
    validation = _stratified_subset(
        validation, train_labels, data.validation_limit, data.split_seed
    )
    test = _stratified_subset(
        np.arange(len(test_labels)), test_labels, data.test_limit, data.split_seed
    )
    return train, validation, test


def preprocess(images: np.ndarray, data: DataSpec) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, 28, 28) float32, scaled as the spec says."""
    x = images.astype(np.float32) / np.float32(data.pixel_divisor)
    return (x - np.float32(data.mean)) / np.float32(data.std)


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


@dataclasses.dataclass(frozen=True)
class SharedData:
    """The arrays every framework trains and evaluates on, plus their manifest."""

    x_train: np.ndarray  # (N, 28, 28) float32
    y_train: np.ndarray  # (N,) int64
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    manifest: dict
    # The training images before preprocessing, (N, 28, 28) uint8: the "native"
    # PyTorch pipeline converts them per example, as torchvision's dataset does.
    train_images: np.ndarray | None = None

    @property
    def manifest_hash(self) -> str:
        return self.manifest["hash"]


def load_shared(data: DataSpec, data_dir: str | None = None) -> SharedData:
    """The shared split with preprocessing applied."""
    raw = load_raw(data_dir)
    train, validation, test = split_indices(raw.train_labels, raw.test_labels, data)
    manifest = {
        "files_sha256": dict(FILES),
        "validation_split": data.validation_split if data.validation_size else "none",
        "train_indices_sha256": _sha256(train.astype(np.int64)),
        "validation_indices_sha256": _sha256(validation.astype(np.int64)),
        "test_indices_sha256": _sha256(test.astype(np.int64)),
        "sizes": {"train": len(train), "validation": len(validation), "test": len(test)},
    }
    manifest["hash"] = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[
        :16
    ]
    return SharedData(
        x_train=preprocess(raw.train_images[train], data),
        y_train=raw.train_labels[train].astype(np.int64),
        x_val=preprocess(raw.train_images[validation], data),
        y_val=raw.train_labels[validation].astype(np.int64),
        x_test=preprocess(raw.test_images[test], data),
        y_test=raw.test_labels[test].astype(np.int64),
        manifest=manifest,
        train_images=raw.train_images[train],
    )


def epoch_order(seed: int, epoch: int, size: int) -> np.ndarray:
    """The shuffled example order for one epoch; both frameworks follow it."""
    return np.random.default_rng([seed, epoch]).permutation(size)
