"""Fashion-MNIST on disk: find, verify and parse the four IDX files.

Stage: data. The split both frameworks train on is `compare.data.split`.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import os
import pathlib
import shutil
import struct
import urllib.request
import zlib

import numpy as np

from compare.errors import UserError
from compare.spec.schema import IMAGE_SHAPE, NUM_CLASSES

# SHA-256 of the *decompressed* files: Debian recompressed the .gz files, so the
# compressed bytes differ from upstream while the content is identical.
FILES = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
EXPECTED_COUNT = {"train": 60_000, "t10k": 10_000}
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DEBIAN_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")
UPSTREAM_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
HOW_TO_GET = "run `make data` (or `python -m compare data --download`), or pass --data-dir"

IDX_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
IDX_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension


def cache_dir() -> pathlib.Path:
    """The project's cache: $KVP_CACHE_DIR, else ~/.cache/keras-vs-pytorch."""
    root = os.environ.get("KVP_CACHE_DIR")
    if root:
        return pathlib.Path(root)
    return pathlib.Path.home() / ".cache" / "keras-vs-pytorch"


def candidate_dirs(data_dir: str | os.PathLike | None) -> list[pathlib.Path]:
    """Where to look, in order: --data-dir / FASHION_MNIST_DIR, cache, Debian's path."""
    explicit = data_dir or os.environ.get("FASHION_MNIST_DIR")
    if explicit:
        # An explicit directory is the only place we look: silently using another
        # copy would hide the user's mistake.
        return [pathlib.Path(explicit)]
    return [cache_dir() / "fashion-mnist", DEBIAN_DIR]


def locate(data_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """The first candidate directory holding all four .gz files."""
    candidates = candidate_dirs(data_dir)
    for directory in candidates:
        if all((directory / f"{name}.gz").is_file() for name in FILES):
            return directory
    first = candidates[0]
    missing = next(name for name in FILES if not (first / f"{name}.gz").is_file())
    where = " or ".join(str(c) for c in candidates)
    raise UserError(f"Fashion-MNIST file {missing}.gz not found in {where}: {HOW_TO_GET}")


def read_idx(path: pathlib.Path, expected_sha256: str | None = None) -> np.ndarray:
    """Decompress, verify and parse one IDX file; every fault names the file."""
    fix = f"delete it and {HOW_TO_GET}"
    try:
        with gzip.open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise UserError(f"Fashion-MNIST file {path} not found: {HOW_TO_GET}") from None
    except (OSError, EOFError, zlib.error) as error:
        raise UserError(f"Fashion-MNIST file {path} is corrupt ({error}): {fix}") from None
    if expected_sha256 is not None:
        digest = hashlib.sha256(raw).hexdigest()
        if digest != expected_sha256:
            raise UserError(
                f"Fashion-MNIST file {path} fails its checksum "
                f"(sha256 {digest[:12]}..., expected {expected_sha256[:12]}...): {fix}"
            )
    if len(raw) < 8:
        raise UserError(f"Fashion-MNIST file {path} is too short for an IDX header: {fix}")
    (magic,) = struct.unpack(">I", raw[:4])
    if magic not in (IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC):
        raise UserError(f"Fashion-MNIST file {path} has wrong IDX magic {magic:#010x}: {fix}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"Fashion-MNIST file {path} is too short for its IDX header: {fix}")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) - header != int(np.prod(shape)):
        raise UserError(
            f"Fashion-MNIST file {path} holds {len(raw) - header} data bytes, "
            f"its header promises {int(np.prod(shape))}: {fix}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def check_arrays(images: np.ndarray, labels: np.ndarray, prefix: str, directory) -> None:
    """Check dimensions and the label range of one images/labels pair."""
    count = EXPECTED_COUNT[prefix]
    fix = f"delete it and {HOW_TO_GET}"
    if images.shape != (count, *IMAGE_SHAPE):
        raise UserError(
            f"Fashion-MNIST file {directory}/{prefix}-images-idx3-ubyte.gz has shape "
            f"{images.shape}, expected {(count, *IMAGE_SHAPE)}: {fix}"
        )
    if labels.shape != (count,):
        raise UserError(
            f"Fashion-MNIST file {directory}/{prefix}-labels-idx1-ubyte.gz has shape "
            f"{labels.shape}, expected ({count},): {fix}"
        )
    if labels.max() >= NUM_CLASSES:
        raise UserError(
            f"Fashion-MNIST file {directory}/{prefix}-labels-idx1-ubyte.gz has label "
            f"{int(labels.max())} outside 0..{NUM_CLASSES - 1}: {fix}"
        )


@dataclasses.dataclass(frozen=True)
class RawData:
    train_images: np.ndarray  # (60000, 28, 28) uint8
    train_labels: np.ndarray  # (60000,) uint8
    test_images: np.ndarray  # (10000, 28, 28) uint8
    test_labels: np.ndarray  # (10000,) uint8
    directory: str


@functools.lru_cache(maxsize=2)
def load_raw(data_dir: str | None = None, verify: bool = True) -> RawData:
    """All four files, verified. `verify=False` skips only the checksum (tests)."""
    directory = locate(data_dir)
    arrays = {}
    for name, digest in FILES.items():
        arrays[name] = read_idx(directory / f"{name}.gz", digest if verify else None)
    for prefix in ("train", "t10k"):
        check_arrays(
            arrays[f"{prefix}-images-idx3-ubyte"],
            arrays[f"{prefix}-labels-idx1-ubyte"],
            prefix,
            directory,
        )
    return RawData(
        train_images=arrays["train-images-idx3-ubyte"],
        train_labels=arrays["train-labels-idx1-ubyte"],
        test_images=arrays["t10k-images-idx3-ubyte"],
        test_labels=arrays["t10k-labels-idx1-ubyte"],
        directory=str(directory),
    )


def fetch(data_dir: str | None = None, download: bool = False) -> pathlib.Path:
    """Make sure the data is available and verified; download only when asked."""
    try:
        directory = locate(data_dir)
    except UserError:
        if not download or data_dir or os.environ.get("FASHION_MNIST_DIR"):
            raise
        directory = cache_dir() / "fashion-mnist"
        directory.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            target = directory / f"{name}.gz"
            partial = target.with_suffix(".gz.part")
            try:
                url = f"{UPSTREAM_URL}{name}.gz"
                with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as f:
                    shutil.copyfileobj(response, f)
            except OSError as error:
                raise UserError(
                    f"cannot download {name}.gz ({error}): install the Debian package "
                    "dataset-fashion-mnist or pass --data-dir"
                ) from None
            os.replace(partial, target)
    load_raw(str(directory))
    return directory
