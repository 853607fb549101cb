"""The one shared split: both frameworks receive the arrays this module returns, byte
for byte.

Stage: data. The split, the subsets and the preprocessing happen here, once, in NumPy.
Every run records the split manifest hash so two runs can be shown to have seen the
same data, and every epoch's example order comes from `epoch_order`.

`prepared` is what a worker calls: the arrays of `load_shared`, computed once per data
spec and kept as `.npy` files under the cache directory, each verified by its SHA-256
when read (memory-mapped), so every worker and run of a study shares one preparation.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import pathlib
import shutil
import tempfile

import numpy as np

from compare.data.fashion_mnist import FILES, cache_dir, load_raw
from compare.spec.schema import NUM_CLASSES, DataSpec


def _stratified_subset(indices: np.ndarray, labels: np.ndarray, size: int | None, seed: int):
    """A stratified, seeded subset of `indices` (all of them when size is None)."""
    from sklearn.model_selection import train_test_split

    if size is None or size >= len(indices):
        return np.sort(indices)
    subset, _rest = train_test_split(
        indices, train_size=size, stratify=labels[indices], random_state=seed
    )
    return np.sort(subset)


def _pool(labels: np.ndarray, data: DataSpec) -> np.ndarray:
    """Indices of the images of the spec's classes (all of them without classes)."""
    if not data.classes:
        return np.arange(len(labels))
    return np.flatnonzero(np.isin(labels, data.classes))


def _holdout(train_labels: np.ndarray, data: DataSpec) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices of the training pool, as `data.validation_split` says."""
    from sklearn.model_selection import train_test_split

    pool = _pool(train_labels, data)
    if data.validation_size == 0:
        return pool, pool[:0]
    if data.validation_split == "shuffled_head":
        # The seed-002 Keras script: shuffle, then hold out the first N. Its shuffle was
        # an unseeded tf.random.shuffle; this one is seeded so both sides can repeat it.
        shuffled = np.random.default_rng(data.split_seed).permutation(pool)
        return shuffled[data.validation_size :], shuffled[: data.validation_size]
    return train_test_split(
        pool,
        test_size=data.validation_size,
        stratify=train_labels[pool],
        random_state=data.split_seed,
    )


def split_indices(train_labels: np.ndarray, test_labels: np.ndarray, data: DataSpec):
    """(train, validation, test) index arrays: seeded, sorted; subsets stratified."""
    train, validation = _holdout(train_labels, data)
    train = _stratified_subset(train, train_labels, data.train_limit, data.split_seed)
    validation = _stratified_subset(
        validation, train_labels, data.validation_limit, data.split_seed
    )
    test = _stratified_subset(
        _pool(test_labels, data), test_labels, data.test_limit, data.split_seed
    )
    return train, validation, test


def relabel(labels: np.ndarray, data: DataSpec) -> np.ndarray:
    """Labels as int64 class indices: the position in `data.classes` when it is set."""
    if not data.classes:
        return labels.astype(np.int64)
    index = np.full(NUM_CLASSES, -1, dtype=np.int64)
    index[list(data.classes)] = np.arange(len(data.classes))
    return index[labels]


def resize_matrix(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) float64 weights of a bilinear resize with half-pixel centres
    (torch's align_corners=False): output pixel i samples the input at
    (i + 0.5) * size_in / size_out - 0.5, clamped to the edge pixels. For enlarging only
    (no antialiasing filter), which `validate` guarantees."""
    source = (np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5
    source = np.clip(source, 0, size_in - 1)
    low = np.floor(source).astype(np.int64)
    high = np.minimum(low + 1, size_in - 1)
    weight = source - low
    matrix = np.zeros((size_out, size_in))
    rows = np.arange(size_out)
    np.add.at(matrix, (rows, low), 1 - weight)
    np.add.at(matrix, (rows, high), weight)
    return matrix


def preprocess(images: np.ndarray, data: DataSpec) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, S, S) float32, S = data.image_size, scaled as the spec
    says (resized, in float64, between the division and the normalisation)."""
    x = images.astype(np.float32) / np.float32(data.pixel_divisor)
    if data.image_size != x.shape[-1]:
        rows = resize_matrix(x.shape[-2], data.image_size)
        columns = resize_matrix(x.shape[-1], data.image_size)
        x = (rows @ x.astype(np.float64) @ columns.T).astype(np.float32)
    return (x - np.float32(data.mean)) / np.float32(data.std)


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


@dataclasses.dataclass(frozen=True)
class SharedData:
    """The arrays every framework trains and evaluates on, plus their manifest."""

    x_train: np.ndarray  # (N, S, S) float32, S = data.image_size (28 as stored)
    y_train: np.ndarray  # (N,) int64: class indices (see `relabel`)
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
    if data.classes:  # only then, so every earlier manifest keeps its hash
        manifest["classes"] = list(data.classes)
    manifest["hash"] = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[
        :16
    ]
    return SharedData(
        x_train=preprocess(raw.train_images[train], data),
        y_train=relabel(raw.train_labels[train], data),
        x_val=preprocess(raw.train_images[validation], data),
        y_val=relabel(raw.train_labels[validation], data),
        x_test=preprocess(raw.test_images[test], data),
        y_test=relabel(raw.test_labels[test], data),
        manifest=manifest,
        train_images=raw.train_images[train],
    )


def epoch_order(seed: int, epoch: int, size: int) -> np.ndarray:
    """The shuffled example order for one epoch; both frameworks follow it."""
    return np.random.default_rng([seed, epoch]).permutation(size)


# --- the prepared arrays, cached ------------------------------------------------------

ARRAYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test", "train_images")
# Bump when what `load_shared` computes changes: old entries are then never read.
PREPARED_VERSION = 1


def prepared_key(data: DataSpec) -> str:
    """The cache key of a data spec's arrays: the source files' digests, the spec."""
    identity = {
        "version": PREPARED_VERSION,
        "files_sha256": dict(FILES),
        "data": dataclasses.asdict(data),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]


def _read_prepared(directory: pathlib.Path) -> SharedData | None:
    """The arrays cached in `directory` when every one matches its recorded SHA-256."""
    try:
        meta = json.loads((directory / "meta.json").read_text())
        arrays = {}
        for name in ARRAYS:
            # Copy-on-write: a framework may write into its input (never to the file).
            array = np.load(directory / f"{name}.npy", mmap_mode="c").view(np.ndarray)
            if _sha256(array) != meta["sha256"][name]:
                return None
            arrays[name] = array
        return SharedData(**arrays, manifest=meta["manifest"])
    except (OSError, ValueError, KeyError):
        return None


def _write_prepared(directory: pathlib.Path, shared: SharedData) -> None:
    """Write the arrays next to `directory`, then rename into place (atomic: a reader
    sees all of them or none; of two writers racing, one wins, both are equal)."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(dir=directory.parent, prefix=".staging-"))
    try:
        digests = {}
        for name in ARRAYS:
            array = getattr(shared, name)
            np.save(staging / f"{name}.npy", array)
            digests[name] = _sha256(array)
        meta = {"manifest": shared.manifest, "sha256": digests}
        (staging / "meta.json").write_text(json.dumps(meta, indent=1))
        if directory.exists():
            shutil.rmtree(directory)  # a damaged entry (it failed verification)
        os.rename(staging, directory)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # a read-only cache: nothing kept


@functools.lru_cache(maxsize=4)
def prepared(data: DataSpec, data_dir: str | None = None) -> SharedData:
    """`load_shared(data, data_dir)`, prepared once per data spec and cached on disk.

    The key holds the source files' digests, which `load_raw` verified the data
    against, so any directory with the right files gives the same entry.
    """
    directory = cache_dir() / "prepared" / prepared_key(data)
    cached = _read_prepared(directory)
    if cached is not None:
        return cached
    shared = load_shared(data, data_dir)
    _write_prepared(directory, shared)
    return shared
